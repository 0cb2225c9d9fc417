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
use edeploy::upload;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "upload.cgi",
    version,
    about = "eDeploy's provisioning CGI; with -f, decide for a hardware list file",
    long_about = "eDeploy's provisioning CGI. Run by a web server (REQUEST_METHOD set) it answers one \
                  multipart/form-data upload. With -f it does what a hardware upload does, on a file, \
                  and prints the answer. With -f and -F PROFILE it reports that the node's install \
                  of PROFILE failed, as a failure=PROFILE upload does: one install is given back and \
                  nothing is printed.\n\nThe configuration is EDEPLOY_CONF or /etc/edeploy.conf.\n\n\
                  Exit status (local mode): 0 answered or failure reported, 1 no profile matches, \
                  nothing to hand out, or -F names a profile not in the state file, \
                  2 bad input, configuration or usage."
)]
struct Cli {
    /// The node's hardware list (JSON or the literal dialect).
    #[arg(short = 'f', value_name = "HWFILE")]
    file: PathBuf,
    /// Report that the node's install of PROFILE failed: give one install
    /// back (what the original installer's embedded mode runs).
    #[arg(short = 'F', value_name = "PROFILE", conflicts_with = "only")]
    failed: Option<String>,
    /// Decide considering only this profile.
    #[arg(long = "only", value_name = "PROFILE")]
    only: Option<String>,
    /// The configuration section to use (default SERVER).
    #[arg(short = 's', value_name = "SECTION")]
    section: Option<String>,
}

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
