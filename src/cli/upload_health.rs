//! The command line of `upload-health.cgi` (`cgi-bin/upload-health.rs`): only
//! `--help` and `--version`.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "upload-health.cgi",
    version,
    about = "eDeploy's health-check CGI: keeps a node's benchmark results in HEALTHDIR",
    long_about = "eDeploy's health-check CGI. Run by a web server (REQUEST_METHOD set) it answers one \
                  multipart/form-data POST whose field `file` is a hardware list with benchmark \
                  lines, and keeps it as HEALTHDIR/<sysname>-<YYYYmmddHHMMSS>.hw. The answer is \
                  {\"stored\": \"<file name>\"}, or {\"error\": …} with 400, 405, 413 or 500.\n\n\
                  The configuration is EDEPLOY_CONF or /etc/edeploy.conf. See docs/health.md."
)]
pub struct Cli {}
