//! The command line of `upload.cgi`'s local mode (`cgi-bin/upload.rs`).

use clap::Parser;
use std::path::PathBuf;

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
pub struct Cli {
    /// The node's hardware list (JSON or the literal dialect).
    #[arg(short = 'f', value_name = "HWFILE")]
    pub file: PathBuf,
    /// Report that the node's install of PROFILE failed: give one install
    /// back (what the original installer's embedded mode runs).
    #[arg(short = 'F', value_name = "PROFILE", conflicts_with = "only")]
    pub failed: Option<String>,
    /// Decide considering only this profile.
    #[arg(long = "only", value_name = "PROFILE")]
    pub only: Option<String>,
    /// The configuration section to use (default SERVER).
    #[arg(short = 's', value_name = "SECTION")]
    pub section: Option<String>,
}
