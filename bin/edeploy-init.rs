//! `edeploy-init`: the installer, run as `/init` of the PXE initrd.
//!
//! `edeploy-init [--root DIR] [--cmdline TEXT]`: works in DIR (default
//! `/`), reads the kernel command line from `DIR/proc/cmdline` unless
//! `--cmdline` gives it, and runs every command for real. Everything else
//! is in `edeploy::init`; see `docs/installer.md`.
//!
//! `edeploy-init --fetch URL --into DIR`: only the installer's HTTP tree
//! step (`edeploy::init::fetch::fetch_http`, default tuning, progress on
//! stderr) into DIR, then exit; for measuring that step on its own.

use clap::Parser;
use edeploy::exec::System;
use edeploy::init::{fetch, Console, Installer, Tuning};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
                  Content-Length, nothing after) and moved into DIR, with the installer's default \
                  timeouts and its progress line on stderr; nothing else happens (no detection, no \
                  server, no end action). Used to benchmark that step (scripts/bench-fetch).\n\n\
                  Exit status (when it returns): 0 installed (or fetched), 1 failed."
)]
struct Cli {
    /// The root to work in (`/chroot` is DIR/chroot, the command line DIR/proc/cmdline).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// The kernel command line to use instead of DIR/proc/cmdline.
    #[arg(long, value_name = "TEXT")]
    cmdline: Option<String>,
    /// Only fetch and unpack this `.edeploy` URL (http://) as the installer does, then exit.
    #[arg(
        long,
        value_name = "URL",
        requires = "into",
        conflicts_with_all = ["root", "cmdline"]
    )]
    fetch: Option<String>,
    /// With --fetch: the directory to unpack into (created if missing).
    #[arg(long, value_name = "DIR", requires = "fetch")]
    into: Option<PathBuf>,
}

/// `--fetch URL --into DIR`: the installer's HTTP tree step alone.
fn fetch_only(url: &str, into: &Path) -> ExitCode {
    let console = Console::new(Box::new(std::io::stderr()));
    console.say(&format!("fetching {url}"));
    match fetch::fetch_http(url, into, &console, &Tuning::default()) {
        Ok(n) => {
            console.say(&format!("{n} bytes unpacked into {}", into.display()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            console.say(&format!("failed: {e:#}"));
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let pid1 = std::process::id() == 1;
    let cli = if pid1 {
        // As /init, the kernel hands over the command line's words that it
        // does not know (`|`, `net.ifnames=0`, …) as arguments, and no
        // PATH: the settings come from /proc/cmdline, and the programs
        // from the initrd's usual directories.
        if std::env::var_os("PATH").is_none() {
            std::env::set_var("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        }
        Cli {
            root: PathBuf::from("/"),
            cmdline: None,
            fetch: None,
            into: None,
        }
    } else {
        Cli::parse()
    };
    if let (Some(url), Some(into)) = (&cli.fetch, &cli.into) {
        return fetch_only(url, into);
    }
    let exec = System::default();
    let installer = Installer {
        root: cli.root,
        cmdline: cli.cmdline,
        exec: &exec,
        console: Console::new(Box::new(std::io::stderr())),
        tuning: Tuning::default(),
    };
    let report = installer.run();
    if pid1 {
        // As /init, returning would panic the kernel: the end action
        // should have rebooted or powered off; if it could not, wait for
        // the operator.
        eprintln!(
            "edeploy: {} did not happen; power the node off",
            report.action
        );
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    if report.result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
