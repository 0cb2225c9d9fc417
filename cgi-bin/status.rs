//! `status.cgi`: the read-only status page of the provisioning server,
//! run by Apache or lighttpd as a CGI script (see docs/status.md).
//!
//! It answers GET and HEAD only and never writes a file. The configuration
//! is `EDEPLOY_CONF` or `/etc/edeploy.conf`. Answers other than a clean
//! page (errors, pages listing problems) write one line to stderr, which
//! the web server keeps in its error log.

use edeploy::cgi::CgiEnv;
use edeploy::status::cgi;
use std::process::ExitCode;

fn main() -> ExitCode {
    let env = CgiEnv::from_process();
    // A method that is not UTF-8 still came from a web server (answered 405).
    if env.method.is_none() && env.not_utf8 != Some("REQUEST_METHOD") {
        eprintln!(
            "status.cgi is run by a web server (REQUEST_METHOD unset); see docs/status.md.\n\
             To see the page from a shell: REQUEST_METHOD=GET QUERY_STRING=format=json status.cgi"
        );
        return ExitCode::from(2);
    }
    let answer = cgi::serve(&env, &edeploy::config::conf_path());
    // A body (POST, PUT: answered 405) is read and dropped first, or
    // Apache's mod_cgid may drop the answer.
    edeploy::cgi::drain(&mut std::io::stdin().lock(), env.content_length.as_deref());
    answer.log_to(
        env.remote_addr.as_deref().unwrap_or(""),
        &mut std::io::stderr(),
    );
    let head = env.method.as_deref() == Some("HEAD");
    let mut stdout = std::io::stdout().lock();
    match answer.write_cgi(&mut stdout, head) {
        Ok(()) => ExitCode::SUCCESS,
        // The web server went away: nobody is left to answer.
        Err(_) => ExitCode::from(1),
    }
}
