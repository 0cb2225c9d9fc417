//! The one seam for running external commands.
//!
//! Everything that runs a program (`ipmitool`, `parted`, a configure
//! script's `run(...)`, `rsync`, `grub-install`, `pxemngr`) goes through an
//! [`Exec`]. Production code uses [`System`]; tests (feature
//! `test-hooks`) use `Fake`, which writes down the commands that would
//! touch devices or the machine's state and answers them by the rules the
//! test gives, so a test sees the true order of steps without a disk
//! being partitioned.
//!
//! Errors name the full command line and its exit status, and carry the
//! command's stderr, so a failure reads like
//! `parted -s /dev/vda mklabel msdos: exit status 1: Error: ...`.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};

#[cfg(any(test, feature = "test-hooks"))]
mod fake;
#[cfg(any(test, feature = "test-hooks"))]
pub use fake::{Fake, Reply, When};

/// A command to run: the program and its arguments, or a shell line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdLine {
    /// Run `argv[0]` with the rest as arguments (no shell).
    Argv(Vec<String>),
    /// Run a line with `/bin/sh -c`.
    Shell(String),
}

impl CmdLine {
    pub fn argv<I, S>(args: I) -> CmdLine
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CmdLine::Argv(args.into_iter().map(Into::into).collect())
    }

    pub fn shell(line: impl Into<String>) -> CmdLine {
        CmdLine::Shell(line.into())
    }

    /// The command as a human would type it.
    pub fn display(&self) -> String {
        match self {
            CmdLine::Argv(v) => v
                .iter()
                .map(|a| {
                    if a.is_empty()
                        || a.chars()
                            .any(|c| c.is_whitespace() || "'\"$`\\|&;<>()*?".contains(c))
                    {
                        format!("'{}'", a.replace('\'', "'\\''"))
                    } else {
                        a.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            CmdLine::Shell(s) => s.clone(),
        }
    }

    /// The program's name (first word), for deciding what to record.
    pub fn program(&self) -> &str {
        match self {
            CmdLine::Argv(v) => v.first().map(String::as_str).unwrap_or(""),
            CmdLine::Shell(s) => s.split_whitespace().next().unwrap_or(""),
        }
    }
}

/// What a finished command printed and how it exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// Runs commands.
pub trait Exec: Send + Sync {
    /// Runs `cmd` to completion; `Ok` whatever the exit status (an error is
    /// only "could not start").
    fn output(&self, cmd: &CmdLine, stdin: Option<&[u8]>) -> Result<CmdOutput>;

    /// Runs `cmd` and fails unless it exits 0, naming the command, its
    /// status and its stderr.
    fn run(&self, cmd: &CmdLine) -> Result<CmdOutput> {
        let out = self.output(cmd, None)?;
        if !out.success() {
            let err = out.stderr.trim();
            if err.is_empty() {
                bail!("{}: exit status {}", cmd.display(), out.status);
            }
            bail!("{}: exit status {}: {err}", cmd.display(), out.status);
        }
        Ok(out)
    }
}

/// Runs commands for real.
#[derive(Debug, Default, Clone)]
pub struct System {
    /// Extra environment for every command.
    pub env: Vec<(OsString, OsString)>,
}

impl Exec for System {
    fn output(&self, cmd: &CmdLine, stdin: Option<&[u8]>) -> Result<CmdOutput> {
        let mut c = match cmd {
            CmdLine::Argv(v) => {
                let Some((prog, args)) = v.split_first() else {
                    bail!("an empty command");
                };
                let mut c = Command::new(prog);
                c.args(args);
                c
            }
            CmdLine::Shell(s) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(s);
                c
            }
        };
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .with_context(|| format!("{}: cannot start", cmd.display()))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that exits without reading its input is not an error
            // of ours: ignore a broken pipe.
            let _ = pipe.write_all(data);
        }
        let out = child
            .wait_with_output()
            .with_context(|| format!("{}: cannot wait for it", cmd.display()))?;
        Ok(CmdOutput {
            // Killed by a signal: report 128 + signal, like a shell.
            status: out.status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + out.status.signal().unwrap_or(0)
            }),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_command_and_status() {
        let e = System::default()
            .run(&CmdLine::shell("echo oops >&2; exit 3"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "echo oops >&2; exit 3: exit status 3: oops");
        let e = System::default()
            .run(&CmdLine::argv(["/nonexistent/prog", "a b"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/prog 'a b': cannot start"),
            "{e}"
        );
    }

    #[test]
    fn output_and_stdin() {
        let out = System::default()
            .output(&CmdLine::argv(["tr", "a-z", "A-Z"]), Some(b"hello"))
            .unwrap();
        assert_eq!(out.stdout, "HELLO");
        assert!(out.success());
    }

    #[test]
    fn recorder_records_device_commands_and_runs_the_rest() {
        let r = Fake::new(["parted", "mkfs.ext4"]);
        r.run(&CmdLine::shell("parted -s /dev/vda mklabel msdos"))
            .unwrap();
        r.run(&CmdLine::argv(["/sbin/mkfs.ext4", "/dev/vda1"]))
            .unwrap();
        let out = r.run(&CmdLine::shell("echo real")).unwrap();
        assert_eq!(out.stdout, "real\n");
        assert_eq!(
            r.commands(),
            vec![
                CmdLine::shell("parted -s /dev/vda mklabel msdos"),
                CmdLine::argv(["/sbin/mkfs.ext4", "/dev/vda1"]),
            ]
        );
    }
}
