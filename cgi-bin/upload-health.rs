//! `upload-health.cgi`: run by Apache or lighttpd as a CGI script (no
//! arguments, `REQUEST_METHOD` set). It keeps the health-check results a
//! node sends (`HEALTH=1`) in HEALTHDIR; see `edeploy::upload::health` and
//! docs/health.md.
//!
//! As a CGI the exit status is 0 once an answer is written (the status is
//! in the answer). Run by hand it only says what it is (exit 2).

use clap::Parser;
use edeploy::cgi::CgiEnv;
use edeploy::cli::upload_health::Cli;
use edeploy::upload::health;
use std::process::ExitCode;

fn main() -> ExitCode {
    let env = CgiEnv::from_process();
    if std::env::args_os().len() <= 1 && env.is_cgi() {
        let mut stderr = std::io::stderr();
        let remote = env.remote_addr.clone().unwrap_or_default();
        let response = health::serve(
            &env,
            std::io::stdin(),
            &edeploy::config::conf_path(),
            &mut health::health_log(&remote, &mut stderr),
        );
        let mut stdout = std::io::stdout().lock();
        return match response.write_cgi(&mut stdout) {
            Ok(()) => ExitCode::SUCCESS,
            // The web server went away: nobody is left to answer.
            Err(_) => ExitCode::from(1),
        };
    }
    match Cli::try_parse() {
        Ok(Cli {}) => {
            eprintln!(
                "upload-health.cgi: a CGI script, run by the web server (REQUEST_METHOD is not set); \
                 see --help"
            );
            ExitCode::from(2)
        }
        Err(e) => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { 2 } else { 0 })
        }
    }
}
