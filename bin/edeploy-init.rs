//! `edeploy-init`: the installer, run as `/init` of the PXE initrd.
//!
//! `edeploy-init [--root DIR] [--cmdline TEXT]`: works in DIR (default
//! `/`), reads the kernel command line from `DIR/proc/cmdline` unless
//! `--cmdline` gives it, and runs every command for real. Everything else
//! is in `edeploy::init`; see `docs/installer.md`.
//!
//! `edeploy-init --fetch URL --into DIR [--trusted KEYS]`: only the
//! installer's HTTP tree step (`edeploy::init::signed::fetch_url`: the
//! manifest beside URL, then the archive checked entry by entry; default
//! tuning, progress on stderr) into DIR, then exit; for measuring that
//! step on its own.

use clap::Parser;
use edeploy::cli::init::Cli;
use edeploy::exec::System;
use edeploy::init::{signed, Console, Installer, Tuning};
use edeploy::trust::{Policy, Trusted};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `--fetch URL --into DIR [--trusted KEYS]`: the installer's HTTP tree
/// step alone, checked against the manifest beside URL.
fn fetch_only(url: &str, into: &Path, trusted: Option<&Path>) -> ExitCode {
    let console = Console::new(Box::new(std::io::stderr()));
    let policy = match trusted.map(Trusted::load_dir).transpose() {
        Ok(t) => Policy::new(t.unwrap_or_default(), None),
        Err(e) => {
            console.say(&format!("failed: {e}"));
            return ExitCode::from(1);
        }
    };
    match signed::fetch_url(url, into, &policy, &console, &Tuning::default()) {
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
            trusted: None,
        }
    } else {
        Cli::parse()
    };
    if let (Some(url), Some(into)) = (&cli.fetch, &cli.into) {
        return fetch_only(url, into, cli.trusted.as_deref());
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
