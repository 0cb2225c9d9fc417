//! The configure-script engine: runs a profile's `P.configure` (a Rhai
//! script) on the node being installed.
//!
//! A script sees the matched variables as `var`, runs commands with
//! `run(cmd)`, writes files into the post-install overlay with
//! `config(path).write(text)`, fills Python-style `%(key)s` templates with
//! `format(template, map)` and says what to install with
//! `set_role(role, version, disk)`. See `docs/configure-scripts.md`.
//!
//! Every command goes through the [`Exec`] seam as [`CmdLine::Shell`] (the
//! IPMI helpers use [`CmdLine::Argv`]), and everything the script prints or
//! runs is written to the install log.
//!
//! The Rhai engine runs on a worker thread of its own while the calling
//! thread serves its requests: the commands run, and the log is written,
//! on the caller's thread with the caller's borrowed `exec` and `log`, so
//! neither has to be `'static`.
//!
//! [`CmdLine::Shell`]: crate::exec::CmdLine::Shell
//! [`CmdLine::Argv`]: crate::exec::CmdLine::Argv

mod engine;
mod error;
mod format;
mod ipmi;
mod overlay;
mod vars;

pub use error::{ErrorKind, ScriptError};
pub use format::format_template;
pub use overlay::overlay_path;
pub use vars::to_dynamic;

use crate::exec::{CmdLine, CmdOutput, Exec};
use crate::literal::Value;
use indexmap::IndexMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// What a script is given.
pub struct ScriptEnv<'a> {
    /// The envelope's variables (the matched spec merged with the CMDB entry).
    pub vars: &'a IndexMap<String, Value>,
    /// Where commands run.
    pub exec: &'a dyn Exec,
    /// The post-install overlay root (the installer passes `<root>/post_rsync`).
    pub overlay: &'a Path,
    /// The install log / console.
    pub log: &'a mut dyn Write,
}

/// What a script decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptOutcome {
    /// From the last `set_role` call.
    pub role: Option<Role>,
    /// The overlay files written, as given to `config()` (absolute paths
    /// inside the installed system, e.g. `/etc/hostname`), in the order they
    /// were first opened, each once.
    pub files: Vec<PathBuf>,
}

/// What to install, and where the boot loader goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub role: String,
    pub version: String,
    pub disk: String,
}

/// The bounds a script runs within. The defaults are generous for any
/// configure script and still stop a runaway one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Rhai operations (roughly: expressions evaluated).
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Bytes in one string.
    pub max_string_size: usize,
    /// Items in one array.
    pub max_array_size: usize,
    /// Entries in one object map.
    pub max_map_size: usize,
    /// Wall-clock time spent in the script itself, not counting the time
    /// its commands take (a `mkfs` of a large disk is not runaway).
    pub max_script_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 50_000_000,
            max_call_levels: 64,
            max_string_size: 16 * 1024 * 1024,
            max_array_size: 1_000_000,
            max_map_size: 1_000_000,
            max_script_time: Duration::from_secs(300),
        }
    }
}

/// Runs a configure script with the default [`Limits`]. `name` is used in
/// error messages (`name:line:column: message`).
pub fn run_script(source: &str, name: &str, env: ScriptEnv) -> Result<ScriptOutcome, ScriptError> {
    run_script_with_limits(source, name, env, &Limits::default())
}

/// Stack of the script thread: deep enough for `max_call_levels` nested
/// calls even in an unoptimised build.
const SCRIPT_STACK: usize = 256 * 1024 * 1024;

/// Runs a configure script within `limits`.
pub fn run_script_with_limits(
    source: &str,
    name: &str,
    env: ScriptEnv,
    limits: &Limits,
) -> Result<ScriptOutcome, ScriptError> {
    let ScriptEnv {
        vars,
        exec,
        overlay,
        log,
    } = env;
    let (tx, rx) = mpsc::channel::<Request>();
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("configure-script".into())
            .stack_size(SCRIPT_STACK)
            .spawn_scoped(s, move || {
                engine::run(source, name, vars, overlay, limits, tx)
            })
            .map_err(|e| {
                ScriptError::new(
                    name,
                    ErrorKind::Internal,
                    format!("cannot start the script thread: {e}"),
                )
            })?;
        // Served until the script ends (its engine, which holds the last
        // sender, is dropped).
        for req in rx {
            serve(req, exec, log);
        }
        let _ = log.flush();
        worker.join().unwrap_or_else(|_| {
            Err(ScriptError::new(
                name,
                ErrorKind::Internal,
                "the script engine failed unexpectedly",
            ))
        })
    })
}

/// A request from the script thread to the caller's thread.
pub(crate) enum Request {
    /// Write a line to the log.
    Log(String),
    /// Run a command; `shown` is what the log shows of it (secrets masked).
    Run {
        cmd: CmdLine,
        shown: String,
        reply: mpsc::Sender<Result<CmdOutput, String>>,
    },
}

fn serve(req: Request, exec: &dyn Exec, log: &mut dyn Write) {
    // The log is best effort: a console that went away must not change
    // what the script does.
    match req {
        Request::Log(line) => {
            let _ = writeln!(log, "{line}");
        }
        Request::Run { cmd, shown, reply } => {
            let _ = writeln!(log, "+ {shown}");
            let _ = log.flush();
            let res = exec.output(&cmd, None);
            if let Ok(out) = &res {
                for text in [&out.stdout, &out.stderr] {
                    if !text.is_empty() {
                        let _ = log.write_all(text.as_bytes());
                        if !text.ends_with('\n') {
                            let _ = log.write_all(b"\n");
                        }
                    }
                }
                if !out.success() {
                    let _ = writeln!(log, "exit status {}", out.status);
                }
            }
            if let Err(e) = &res {
                let _ = writeln!(log, "{e:#}");
            }
            let _ = log.flush();
            // The script thread waits for this answer; it only goes away
            // if it failed, and then there is nobody to tell.
            let _ = reply.send(res.map_err(|e| format!("{e:#}")));
        }
    }
}
