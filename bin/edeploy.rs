//! `edeploy`: moves an installed host between versions of its role's
//! tree, and checks the host against its version.
//!
//! Exit status (like `diff`): 0 success or no difference, 1 `verify`
//! found differences, 2 failure or bad usage. Errors are one line,
//! prefixed with `edeploy:`.

use clap::Parser;
use edeploy::cli::host::{Cli, Cmd, Transport};
use edeploy::exec::System;
use edeploy::host;
use std::io::Write;
use std::process::ExitCode;

fn run(cli: Cli) -> anyhow::Result<u8> {
    let exec = System::default();
    let root = cli.root.as_path();
    let mut out = std::io::stdout().lock();
    match cli.cmd {
        Cmd::List => {
            let targets = host::rsync::list(&exec, root)?;
            for t in targets {
                writeln!(out, "{t}")?;
            }
        }
        Cmd::Upgrade { to, transport } => match transport {
            Transport::Rsync => {
                host::rsync::upgrade(&exec, &mut out, root, &to)?;
            }
            Transport::Http => {
                host::upgrade::upgrade(&exec, &mut out, root, &to)?;
            }
        },
        Cmd::TestUpgrade { to } => {
            host::rsync::test_upgrade(&exec, &mut out, root, &to)?;
        }
        Cmd::Verify {
            json,
            rsync,
            manifest,
        } => {
            let report = if rsync || (manifest.is_none() && !host::verify::has_local_manifest(root))
            {
                host::rsync::verify(&exec, root)?
            } else {
                host::verify::verify_host(root, manifest.as_deref())?
            };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                write!(out, "{}", report.render())?;
            }
            return Ok(if report.is_clean() { 0 } else { 1 });
        }
        Cmd::Rollback => {
            host::upgrade::rollback(&mut out, root)?;
        }
        Cmd::Pack {
            tree,
            role,
            version,
            install,
            from,
            metadata,
            no_archive,
            sign_key,
            password_file,
        } => {
            let opts = host::pack::PackOptions {
                archive: !no_archive,
                from,
                metadata,
            };
            let key = host::signed::signing_key(sign_key.as_deref(), password_file.as_deref())?;
            if key.is_none() {
                eprintln!(
                    "edeploy: WARNING: no signing key (--sign-key or {}): {role} {version} is \
                     packed UNSIGNED; hosts that trust a key will refuse it",
                    host::signed::SIGN_KEY_ENV
                );
            }
            host::pack::pack_signed(
                &mut out,
                &tree,
                &role,
                &version,
                &install,
                &opts,
                key.as_ref(),
            )?;
        }
        Cmd::SignMetadata {
            dir,
            sign_key,
            password_file,
        } => {
            let key = host::signed::signing_key(sign_key.as_deref(), password_file.as_deref())?
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "sign-metadata needs a key: --sign-key SECRET_KEY or {}",
                        host::signed::SIGN_KEY_ENV
                    )
                })?;
            for sig in host::signed::sign_metadata(&key, &dir)? {
                writeln!(out, "{} (key {})", sig.display(), key.id())?;
            }
        }
        Cmd::Version => {
            let conf = host::conf::Conf::load(root)?;
            writeln!(out, "{}", conf.version()?)?;
        }
        Cmd::Role => {
            let conf = host::conf::Conf::load(root)?;
            writeln!(out, "{}", conf.role()?)?;
        }
    }
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("edeploy: {e:#}");
            ExitCode::from(2)
        }
    }
}
