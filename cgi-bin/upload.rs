//! `upload.cgi`: run by Apache or lighttpd as a CGI script (no arguments,
//! `REQUEST_METHOD` set), or by hand in local mode:
//! `upload.cgi -f HWFILE [--only PROFILE] [-s SECTION]` decides for a
//! hardware list file; `upload.cgi -f HWFILE -F PROFILE [-s SECTION]`
//! reports that its install of PROFILE failed (one install given back, as
//! the original's `upload.py -f HWFILE -F PROFILE`).
//!
//! As a CGI the exit status is always 0 once an answer is written (the
//! status is in the answer); in local mode it is 0 answered (or the
//! failure reported), 1 no profile, nothing to hand out, or a failure
//! report for a profile not in `state`, 2 bad input, configuration or
//! usage.

use clap::Parser;
use edeploy::cgi::{CgiEnv, RequestLog};
use edeploy::cli::upload::Cli;
use edeploy::upload;
use std::process::ExitCode;

fn main() -> ExitCode {
    let env = CgiEnv::from_process();
    if std::env::args_os().len() <= 1 && env.is_cgi() {
        let mut stderr = std::io::stderr();
        let remote = env.remote_addr.clone().unwrap_or_default();
        let response = upload::serve(
            &env,
            std::io::stdin(),
            &edeploy::config::conf_path(),
            &mut RequestLog::new(&remote, &mut stderr),
        );
        let mut stdout = std::io::stdout().lock();
        return match response.write_cgi(&mut stdout) {
            Ok(()) => ExitCode::SUCCESS,
            // The web server went away: nobody is left to answer.
            Err(_) => ExitCode::from(1),
        };
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let conf = edeploy::config::conf_path();
    let section = cli.section.as_deref();
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let code = match cli.failed.as_deref() {
        Some(profile) => upload::local_failure(&conf, &cli.file, profile, section, &mut stderr),
        None => upload::local(
            &conf,
            &cli.file,
            cli.only.as_deref(),
            section,
            &mut stdout,
            &mut stderr,
        ),
    };
    ExitCode::from(code)
}
