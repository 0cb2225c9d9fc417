//! The end of a run: kexec into the installed system, reboot, power off,
//! or a console, all through the seam.
//!
//! `reboot -f` and `poweroff -f` act at once (busybox syncs first) rather
//! than asking an init that the initrd does not run. A console is a shell
//! on `/dev/console` in a session of its own (so job control and Ctrl-C
//! work); when it exits the node reboots, since `/init` must never return.
//! An end that fails (no `kexec` in the initrd, a kernel that does not
//! load) falls back to rebooting.

use super::console::Console;
use super::install;
use crate::exec::{CmdLine, Exec};
use anyhow::Result;
use std::fmt;
use std::path::Path;

/// What the run ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kexec,
    Reboot,
    Halt,
    Console,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Kexec => "kexec",
            Action::Reboot => "reboot",
            Action::Halt => "halt",
            Action::Console => "console",
        })
    }
}

/// Where the installed system is, for kexec.
pub struct KexecPlan<'a> {
    pub target: &'a Path,
    pub disk: &'a str,
    pub kernel: Option<&'a str>,
    pub args: &'a [String],
}

/// `kexec -l KERNEL [--initrd=…] --append="root=… ro ARGS"`.
pub fn kexec_load(root: &Path, exec: &dyn Exec, plan: &KexecPlan<'_>) -> Result<()> {
    let version = install::kernel_version(plan.target, plan.kernel)?;
    let dev = install::root_device(root, plan.target, plan.disk);
    let mut append = vec![install::root_arg(exec, &dev), "ro".to_string()];
    append.extend(plan.args.iter().cloned());
    let mut argv = vec![
        "kexec".to_string(),
        "-l".into(),
        plan.target
            .join(format!("boot/vmlinuz-{version}"))
            .display()
            .to_string(),
    ];
    if let Some(initrd) = install::initrd_for(plan.target, &version) {
        argv.push(format!(
            "--initrd={}",
            plan.target.join(initrd.trim_start_matches('/')).display()
        ));
    }
    argv.push(format!("--append={}", append.join(" ")));
    exec.run(&CmdLine::Argv(argv))?;
    Ok(())
}

fn reboot(exec: &dyn Exec, console: &Console) {
    console.say("rebooting");
    if let Err(e) = exec.run(&CmdLine::argv(["reboot", "-f"])) {
        console.warn(&format!("{e:#}"));
    }
}

/// Starts an SSH server on port 2222 when the initrd has one (dropbear,
/// else OpenSSH), for a look at a failed node from afar.
pub fn start_ssh(root: &Path, exec: &dyn Exec, console: &Console) {
    let has = |name: &str| {
        ["usr/sbin", "sbin", "usr/bin", "bin"]
            .iter()
            .any(|d| root.join(d).join(name).exists())
    };
    // Daemons detach; their output goes nowhere so the seam does not wait
    // on their pipes.
    let cmd = if has("dropbear") {
        CmdLine::shell("dropbear -R -p 2222 </dev/null >/dev/null 2>&1")
    } else if has("sshd") {
        CmdLine::shell("/usr/sbin/sshd -p 2222 </dev/null >/dev/null 2>&1")
    } else {
        console.say("no SSH server in the installer: console only");
        return;
    };
    match exec.run(&cmd) {
        Ok(_) => console.say("SSH server listening on port 2222"),
        Err(e) => console.warn(&format!("{e:#}")),
    }
}

/// Does `action`. `kexec` is given when the installed tree is there to
/// boot; `ssh` starts an SSH server before a console (failures only).
pub fn end(
    root: &Path,
    exec: &dyn Exec,
    console: &Console,
    action: Action,
    kexec: Option<&KexecPlan<'_>>,
    ssh: bool,
) {
    match action {
        Action::Kexec => {
            let loaded = match kexec {
                Some(plan) => kexec_load(root, exec, plan),
                None => Err(anyhow::anyhow!("no installed system to kexec into")),
            };
            match loaded {
                Ok(()) => {
                    console.say("starting the installed system with kexec");
                    if let Err(e) = exec.run(&CmdLine::argv(["kexec", "-e"])) {
                        console.warn(&format!("{e:#}"));
                        reboot(exec, console);
                    }
                }
                Err(e) => {
                    console.warn(&format!("kexec: {e:#}"));
                    reboot(exec, console);
                }
            }
        }
        Action::Reboot => reboot(exec, console),
        Action::Halt => {
            console.say("powering off");
            if let Err(e) = exec.run(&CmdLine::argv(["poweroff", "-f"])) {
                console.warn(&format!("{e:#}"));
            }
        }
        Action::Console => {
            if ssh {
                start_ssh(root, exec, console);
            }
            console.say("starting a shell on the console; exit it to reboot");
            let dev = root.join("dev/console").display().to_string();
            let line = format!("exec sh -i <{dev} >{dev} 2>&1");
            if let Err(e) = exec.run(&CmdLine::argv(["setsid", "sh", "-c", &line])) {
                console.warn(&format!("{e:#}"));
            }
            reboot(exec, console);
        }
    }
}
