//! `edeploy-init`: the installer, run as `/init` of the PXE initrd.
//!
//! `edeploy-init [--root DIR] [--cmdline TEXT]`: works in DIR (default
//! `/`), reads the kernel command line from `DIR/proc/cmdline` unless
//! `--cmdline` gives it, and runs every command for real. Everything else
//! is in `edeploy::init`; see `docs/installer.md`.

use clap::Parser;
use edeploy::exec::System;
use edeploy::init::{Console, Installer, Tuning};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "edeploy-init",
    version,
    about = "eDeploy's installer: detect, ask the server, configure, install the tree and the boot loader",
    long_about = "eDeploy's installer, run as /init of the PXE initrd. It reads its settings from the \
                  kernel command line (SERV, HTTP_PORT, HTTP_PATH, HSERV, RSERV, ONSUCCESS, ONFAILURE, \
                  VERBOSE, UPLOAD_LOG, IP, EMBEDDED, SECTION, …), installs this node, then reboots, \
                  kexecs, halts or opens a console.\n\nExit status (when it returns): 0 installed, \
                  1 failed."
)]
struct Cli {
    /// The root to work in (`/chroot` is DIR/chroot, the command line DIR/proc/cmdline).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// The kernel command line to use instead of DIR/proc/cmdline.
    #[arg(long, value_name = "TEXT")]
    cmdline: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let exec = System::default();
    let installer = Installer {
        root: cli.root,
        cmdline: cli.cmdline,
        exec: &exec,
        console: Console::new(Box::new(std::io::stderr())),
        tuning: Tuning::default(),
    };
    let report = installer.run();
    if std::process::id() == 1 {
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
