//! `status.cgi` takes no command line: what its manual page says, as a
//! clap `Command` for the generator only (`cgi-bin/status.rs` does not
//! parse its arguments). Its parameters are those of the query string.

use clap::Command;

/// The manual page's `Command`: the query parameters, the answers.
pub fn command() -> Command {
    Command::new("status.cgi")
        .version(env!("CARGO_PKG_VERSION"))
        .about("eDeploy's read-only status page, run by a web server as a CGI script")
        .long_about(
            "eDeploy's read-only status page, run by Apache or lighttpd as a CGI script: \
             GET or HEAD /cgi-bin/status.cgi. It shows the profiles of state (priorities, \
             quotas, counts), the newest uploads, the install logs and the health results, \
             and never writes a file.\n\n\
             Query parameters (in QUERY_STRING; unknown ones are ignored, a known one given \
             twice is a 400):\n\n\
             section=NAME: the [NAME] section of edeploy.conf (default [SERVER]).\n\n\
             format=json, format=html: the form of the answer. Without it the answer is JSON \
             when the Accept header names application/json and not text/html, HTML otherwise.\n\n\
             uploads=N, uploads=all: how many of the newest uploads to list (default 50).\n\n\
             log=NAME: the install log LOGDIR/NAME as application/gzip; with view=text, \
             unpacked as text/plain.\n\n\
             Answers: 200 the page; 400 a bad query; 404 no such log; 405 a method other than \
             GET and HEAD; 500 edeploy.conf unreadable or wrong.\n\n\
             The configuration is EDEPLOY_CONF or /etc/edeploy.conf. Run from a shell: \
             REQUEST_METHOD=GET QUERY_STRING=format=json status.cgi",
        )
        .disable_help_flag(true)
        .disable_version_flag(true)
}
