//! `edeploy-admin`: the operator's debugging tool. Its outputs and exit
//! codes are stable contracts that scripts and tests rely on:
//! 0 success, 1 "no" (no match, nothing to hand out, duplicates found,
//! health outliers found), 2 bad input or usage.

use clap::Parser;
use edeploy::admin;
use edeploy::cli::admin::{Cli, Cmd, CmdbCmd, DbCmd, HealthCmd};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = match cli.cmd {
        Cmd::Match {
            specs,
            hw,
            json,
            explain,
        } => admin::match_cmd(&specs, &hw, json, explain),
        Cmd::Try {
            configdir,
            hw,
            json,
        } => admin::try_cmd(&configdir, &hw, json),
        Cmd::Cmdb {
            cmd: CmdbCmd::Expand { file },
        } => admin::cmdb_expand(&file),
        Cmd::Cmdb {
            cmd: CmdbCmd::Check { file },
        } => admin::cmdb_check(&file),
        Cmd::Health {
            cmd:
                HealthCmd::Compare {
                    dir,
                    threshold,
                    json,
                    plot,
                },
        } => admin::health_compare(&dir, threshold, json, plot.as_deref()),
        Cmd::Db { section, cmd } => admin::db_cmd(
            &edeploy::config::conf_path(),
            section.as_deref(),
            match cmd {
                DbCmd::Init => admin::DbAction::Init,
                DbCmd::Import { configdir } => admin::DbAction::Import(configdir),
                DbCmd::Export { dir } => admin::DbAction::Export(dir),
            },
        ),
    };
    match out {
        Ok(report) => {
            print!("{}", report.stdout);
            eprint!("{}", report.stderr);
            ExitCode::from(report.code)
        }
        Err(e) => {
            eprintln!("edeploy-admin: {e:#}");
            ExitCode::from(2)
        }
    }
}
