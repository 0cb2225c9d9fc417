//! The command line of `edeploy-init` (`bin/edeploy-init.rs`).

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "edeploy-init",
    version,
    about = "eDeploy's installer: detect, ask the server, configure, install the tree and the boot loader",
    long_about = "eDeploy's installer, run as /init of the PXE initrd. It reads its settings from the \
                  kernel command line (SERV, HTTP_PORT, HTTP_PATH, HSERV, RSERV, ONSUCCESS, ONFAILURE, \
                  VERBOSE, UPLOAD_LOG, IP, EMBEDDED, SECTION, …), installs this node, then reboots, \
                  kexecs, halts or opens a console.\n\nWith --fetch URL --into DIR it runs only the \
                  installer's HTTP tree step: URL (a gzip'd tar .edeploy) is streamed through gunzip \
                  and untar into DIR/.edeploy-partial, verified (tar end, gzip trailer, \
                  Content-Length, nothing after) and moved into DIR, every entry checked against the \
                  manifest beside URL (….manifest, signed by a key of --trusted DIR when given), \
                  with the installer's default \
                  timeouts and its progress line on stderr; nothing else happens (no detection, no \
                  server, no end action). Used to benchmark that step (scripts/bench-fetch).\n\n\
                  Exit status (when it returns): 0 installed (or fetched), 1 failed."
)]
pub struct Cli {
    /// The root to work in (`/chroot` is DIR/chroot, the command line DIR/proc/cmdline).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The kernel command line to use instead of DIR/proc/cmdline.
    #[arg(long, value_name = "TEXT")]
    pub cmdline: Option<String>,
    /// Only fetch and unpack this `.edeploy` URL (http://) as the installer does, then exit.
    #[arg(
        long,
        value_name = "URL",
        requires = "into",
        conflicts_with_all = ["root", "cmdline"]
    )]
    pub fetch: Option<String>,
    /// With --fetch: the directory to unpack into (created if missing).
    #[arg(long, value_name = "DIR", requires = "fetch")]
    pub into: Option<PathBuf>,
    /// With --fetch: the trusted minisign public keys (`*.pub`); the
    /// manifest must then be signed by one of them.
    #[arg(long, value_name = "DIR", requires = "fetch")]
    pub trusted: Option<PathBuf>,
}
