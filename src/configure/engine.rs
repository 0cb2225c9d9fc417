//! The Rhai engine of configure scripts and its bindings. Runs on the
//! script thread; commands and log lines are sent to the caller's thread.

use super::error::ScriptError;
use super::overlay::{self, ConfigFile, OverlayOptions};
use super::{format, ipmi, vars, Limits, Request, Role, ScriptOutcome};
use crate::exec::{CmdLine, CmdOutput};
use crate::literal::Value;
use indexmap::IndexMap;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Scope};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// What the bindings share.
#[derive(Default)]
struct State {
    role: Option<Role>,
    files: Vec<PathBuf>,
    /// The last command failure raised: (command, status, message).
    failure: Option<(String, Option<i32>, String)>,
}

/// The script thread's side of the log and of the command seam. (Shared
/// with `Arc`/`Mutex`, so the bindings also build with Rhai's `sync`
/// feature; without it nothing here crosses a thread.)
#[derive(Clone)]
struct Host {
    tx: Sender<Request>,
    state: Arc<Mutex<State>>,
    /// Nanoseconds spent waiting for commands, not counted as script time.
    in_commands: Arc<AtomicU64>,
}

impl Host {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; take the data regardless.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log(&self, line: impl Into<String>) {
        let _ = self.tx.send(Request::Log(line.into()));
    }

    /// Runs `cmd` on the caller's thread; `Err` if it could not be started.
    fn exec(&self, cmd: CmdLine, shown: String) -> Result<CmdOutput, String> {
        let (reply, answer) = mpsc::channel();
        let started = Instant::now();
        self.tx
            .send(Request::Run { cmd, shown, reply })
            .map_err(|_| "the installer stopped serving the script".to_string())?;
        let res = answer
            .recv()
            .map_err(|_| "the installer stopped serving the script".to_string())
            .and_then(|r| r);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.in_commands.fetch_add(nanos, Ordering::Relaxed);
        res
    }

    /// Runs `cmd` and fails unless it exits 0. `what` names the binding.
    fn run_checked(
        &self,
        ctx: &NativeCallContext,
        what: &str,
        cmd: CmdLine,
        shown: String,
    ) -> Fallible<CmdOutput> {
        match self.exec(cmd, shown.clone()) {
            Ok(out) if out.success() => Ok(out),
            Ok(out) => {
                let mut msg = format!("{what}: '{shown}' failed with exit status {}", out.status);
                if let Some(last) = out.stderr.lines().map(str::trim).rfind(|l| !l.is_empty()) {
                    msg.push_str(": ");
                    msg.push_str(last);
                }
                Err(self.command_failure(ctx, shown, Some(out.status), msg))
            }
            Err(e) => {
                let msg = format!("{what}: cannot run '{shown}': {e}");
                Err(self.command_failure(ctx, shown, None, msg))
            }
        }
    }

    fn command_failure(
        &self,
        ctx: &NativeCallContext,
        command: String,
        status: Option<i32>,
        msg: String,
    ) -> Box<EvalAltResult> {
        self.state().failure = Some((command, status, msg.clone()));
        fail(ctx, msg)
    }
}

fn fail(ctx: &NativeCallContext, msg: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(msg.into()),
        ctx.call_position(),
    ))
}

/// Runs the script to its end.
pub(crate) fn run(
    source: &str,
    name: &str,
    vars: &IndexMap<String, Value>,
    overlay: &Path,
    limits: &Limits,
    tx: Sender<Request>,
) -> Result<ScriptOutcome, ScriptError> {
    let host = Host {
        tx,
        state: Arc::default(),
        in_commands: Arc::default(),
    };
    let engine = build(name, vars::var_map(vars), overlay, limits, &host)
        .map_err(|e| ScriptError::new(name, super::ErrorKind::Internal, e))?;
    let mut scope = Scope::new();
    let mut ast = engine
        .compile_with_scope(&scope, source)
        .map_err(|e| ScriptError::from_parse(name, &e))?;
    ast.set_source(name);
    let result = engine.run_ast_with_scope(&mut scope, &ast);
    drop(engine);
    let state = std::mem::take(&mut *host.state());
    match result {
        Ok(()) => Ok(ScriptOutcome {
            role: state.role,
            files: state.files,
        }),
        Err(e) => Err(ScriptError::from_eval(
            name,
            &e,
            state.failure.as_ref(),
            |err| limit_note(err, limits),
        )),
    }
}

fn limit_note(err: &EvalAltResult, limits: &Limits) -> Option<String> {
    Some(match err {
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "the script went over its limit of {} operations (an endless loop?)",
            limits.max_operations
        ),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "function calls nested deeper than {} levels (endless recursion?)",
            limits.max_call_levels
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => format!(
            "{what} too large (limits: {} bytes in a string, {} items in an array, {} entries in a map)",
            limits.max_string_size, limits.max_array_size, limits.max_map_size
        ),
        EvalAltResult::ErrorTerminated(..) => format!(
            "the script ran for more than {:?}, not counting its commands (an endless loop?)",
            limits.max_script_time
        ),
        _ => return None,
    })
}

/// The engine of one script: its limits, then each family of bindings.
fn build(
    name: &str,
    var: Map,
    overlay: &Path,
    limits: &Limits,
    host: &Host,
) -> Result<Engine, String> {
    let mut engine = limited(limits);
    register_output(&mut engine, name, limits, host);
    register_var(&mut engine, var)?;
    register_commands(&mut engine, host);
    register_role(&mut engine, host);
    register_config(&mut engine, overlay, host);
    register_format(&mut engine);
    register_ipmi(&mut engine, host);
    Ok(engine)
}

/// An engine held to `limits`, with nothing registered.
fn limited(limits: &Limits) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        // An undefined variable is an error before anything runs, and a
        // missing `var.key` an error rather than a silent `()`.
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true)
        // A configure script is one self-contained file.
        .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine
}

/// `print` and `debug` to the log; the time limit, not counting the time
/// spent waiting for commands.
fn register_output(engine: &mut Engine, name: &str, limits: &Limits, host: &Host) {
    {
        let h = host.clone();
        engine.on_print(move |s| h.log(s));
    }
    {
        let h = host.clone();
        let name = name.to_string();
        engine.on_debug(move |s, _, pos| match pos.line() {
            Some(l) => h.log(format!("{name}:{l}: {s}")),
            None => h.log(format!("{name}: {s}")),
        });
    }
    {
        let started = Instant::now();
        let in_commands = host.in_commands.clone();
        let max = limits.max_script_time;
        engine.on_progress(move |ops| {
            if ops % 4096 == 0 {
                let waited = Duration::from_nanos(in_commands.load(Ordering::Relaxed));
                if started.elapsed().saturating_sub(waited) > max {
                    return Some(Dynamic::from("time limit"));
                }
            }
            None
        });
    }
}

/// `var`, the node's variables.
fn register_var(engine: &mut Engine, var: Map) -> Result<(), String> {
    // `var`: `var` is a reserved word of Rhai, so it cannot name a
    // variable; a one-word custom syntax makes it an expression that gives
    // (a copy of) the map, usable anywhere, also inside functions.
    engine
        .register_custom_syntax(["var"], false, move |_, _| {
            Ok(Dynamic::from_map(var.clone()))
        })
        .map_err(|e| format!("cannot define `var`: {e}"))?;
    Ok(())
}

/// Commands and the log: `log(msg)`, `run(cmd)`.
fn register_commands(engine: &mut Engine, host: &Host) {
    // log(msg)
    {
        let h = host.clone();
        engine.register_fn("log", move |msg: &str| h.log(msg));
    }

    // run(cmd)
    {
        let h = host.clone();
        engine.register_fn(
            "run",
            move |ctx: NativeCallContext, cmd: &str| -> Fallible<String> {
                let out = h.run_checked(&ctx, "run", CmdLine::shell(cmd), cmd.to_string())?;
                Ok(out.stdout)
            },
        );
    }
}

/// The role to install: `set_role(role, version, disk)`.
fn register_role(engine: &mut Engine, host: &Host) {
    let h = host.clone();
    engine.register_fn(
        "set_role",
        move |ctx: NativeCallContext, role: &str, version: &str, disk: &str| -> Fallible<()> {
            for (what, v) in [("role", role), ("version", version)] {
                if v.is_empty()
                    || v == "."
                    || v == ".."
                    || v.chars()
                        .any(|c| c == '/' || c.is_whitespace() || c.is_control())
                {
                    return Err(fail(
                        &ctx,
                        format!(
                            "set_role: {what} '{v}' must be a non-empty name without '/' or spaces"
                        ),
                    ));
                }
            }
            if disk.is_empty() || disk.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(fail(
                    &ctx,
                    format!("set_role: disk '{disk}' is not a device path"),
                ));
            }
            let mut st = h.state();
            if let Some(old) = &st.role {
                h.log(format!(
                    "set_role: replacing {} {} on {}",
                    old.role, old.version, old.disk
                ));
            }
            h.log(format!("set_role: {role} {version} on {disk}"));
            st.role = Some(Role {
                role: role.to_string(),
                version: version.to_string(),
                disk: disk.to_string(),
            });
            Ok(())
        },
    );
}

/// Configuration files of the overlay: `config(path [, mode | options])`
/// and the file handle's methods.
fn register_config(engine: &mut Engine, overlay: &Path, host: &Host) {
    engine.register_type_with_name::<ConfigFile>("ConfigFile");
    {
        let open = {
            let h = host.clone();
            let overlay = overlay.to_path_buf();
            move |ctx: &NativeCallContext,
                  path: &str,
                  opts: Result<OverlayOptions, String>|
                  -> Fallible<ConfigFile> {
                let file = opts
                    .and_then(|o| overlay::open(&overlay, path, &o))
                    .map_err(|m| fail(ctx, m))?;
                let mut st = h.state();
                if !st.files.contains(&file.rel) {
                    st.files.push(file.rel.clone());
                }
                h.log(format!("config: {}", file.rel.display()));
                Ok(file)
            }
        };
        let o = open.clone();
        engine.register_fn("config", move |ctx: NativeCallContext, path: &str| {
            o(&ctx, path, Ok(OverlayOptions::default()))
        });
        let o = open.clone();
        engine.register_fn(
            "config",
            move |ctx: NativeCallContext, path: &str, mode: &str| {
                o(&ctx, path, OverlayOptions::from_mode(mode))
            },
        );
        engine.register_fn(
            "config",
            move |ctx: NativeCallContext, path: &str, opts: Map| {
                open(&ctx, path, OverlayOptions::from_map(&opts))
            },
        );
    }
    engine.register_fn(
        "write",
        |ctx: NativeCallContext, f: &mut ConfigFile, text: &str| -> Fallible<()> {
            f.write(text).map_err(|m| fail(&ctx, m))
        },
    );
    // Python's `f.close()` ports unchanged: every write is already on disk.
    engine.register_fn("close", |_: &mut ConfigFile| {});
    engine.register_get("path", |f: &mut ConfigFile| f.rel.display().to_string());
    engine.register_fn("to_string", |f: &mut ConfigFile| {
        format!("config({})", f.rel.display())
    });
}

/// `format(template, map | array)`.
fn register_format(engine: &mut Engine) {
    engine.register_fn(
        "format",
        |ctx: NativeCallContext, template: &str, values: Map| -> Fallible<String> {
            format::named(template, &values).map_err(|m| fail(&ctx, m))
        },
    );
    engine.register_fn(
        "format",
        |ctx: NativeCallContext, template: &str, values: Array| -> Fallible<String> {
            format::positional(template, &values).map_err(|m| fail(&ctx, m))
        },
    );
}

/// The IPMI helpers: `ipmi_setup_user`, `ipmi_setup_network`.
fn register_ipmi(engine: &mut Engine, host: &Host) {
    {
        let h = host.clone();
        let setup_user = move |ctx: &NativeCallContext,
                               ch: &Dynamic,
                               user: &str,
                               password: &str,
                               id: i64|
              -> Fallible<bool> {
            let what = "ipmi_setup_user";
            let ch = ipmi::channel(ch).map_err(|m| fail(ctx, format!("{what}: {m}")))?;
            let steps = ipmi::setup_user(ch, id, user, password)
                .map_err(|m| fail(ctx, format!("{what}: {m}")))?;
            let test =
                ipmi::user_test(id, password).map_err(|m| fail(ctx, format!("{what}: {m}")))?;
            h.log(format!("{what}: user {id} '{user}' on channel {ch}"));
            for s in steps {
                h.run_checked(ctx, what, s.cmd, s.shown)?;
            }
            let ok = matches!(h.exec(test.cmd, test.shown), Ok(out) if out.success());
            h.log(if ok {
                format!("{what}: the BMC accepted the password of user {id}")
            } else {
                format!("{what}: the BMC did not accept the password of user {id}")
            });
            Ok(ok)
        };
        let su = setup_user.clone();
        engine.register_fn(
            "ipmi_setup_user",
            move |ctx: NativeCallContext, ch: Dynamic, user: &str, password: &str| {
                su(&ctx, &ch, user, password, 1)
            },
        );
        engine.register_fn(
            "ipmi_setup_user",
            move |ctx: NativeCallContext, ch: Dynamic, user: &str, password: &str, id: i64| {
                setup_user(&ctx, &ch, user, password, id)
            },
        );
    }
    {
        let h = host.clone();
        let setup_network = move |ctx: &NativeCallContext,
                                  ch: &Dynamic,
                                  ip: &str,
                                  netmask: &str,
                                  gateway: &str,
                                  vlan: Option<i64>|
              -> Fallible<()> {
            let what = "ipmi_setup_network";
            let ch = ipmi::channel(ch).map_err(|m| fail(ctx, format!("{what}: {m}")))?;
            let steps = ipmi::setup_network(ch, ip, netmask, gateway, vlan)
                .map_err(|m| fail(ctx, format!("{what}: {m}")))?;
            h.log(format!(
                "{what}: {ip} netmask {netmask} gateway {gateway} on channel {ch}"
            ));
            for s in steps {
                h.run_checked(ctx, what, s.cmd, s.shown)?;
            }
            Ok(())
        };
        let sn = setup_network.clone();
        engine.register_fn(
            "ipmi_setup_network",
            move |ctx: NativeCallContext, ch: Dynamic, ip: &str, netmask: &str, gateway: &str| {
                sn(&ctx, &ch, ip, netmask, gateway, None)
            },
        );
        engine.register_fn(
            "ipmi_setup_network",
            move |ctx: NativeCallContext,
                  ch: Dynamic,
                  ip: &str,
                  netmask: &str,
                  gateway: &str,
                  vlan: i64| {
                setup_network(&ctx, &ch, ip, netmask, gateway, Some(vlan))
            },
        );
    }
}
