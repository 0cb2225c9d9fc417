//! The installer, `edeploy-init`: `/init` of the PXE initrd.
//!
//! One run: mount the virtual filesystems, read the kernel command line
//! ([`cmdline`]), load drivers and bring the network up ([`bringup`]),
//! detect the hardware, ask `upload.cgi` ([`server`]) or decide locally
//! from a medium ([`embedded`]), run the profile's configure script, fetch
//! the role's tree into `/chroot` ([`fetch`], [`copy`]), copy the `/post_rsync`
//! overlay, write `/var/lib/edeploy/conf`, keep the logs, install the boot
//! loader (on UEFI nodes with [`uefi`]) and tell pxemngr ([`install`]),
//! then end per `ONSUCCESS` ([`finish`]). Any failure is logged, reported (log upload with
//! `UPLOAD_LOG=1`, `failure=P` when a profile was assigned) and ends per
//! `ONFAILURE`; the console always shows `edeploy: install failed: <why>`.
//!
//! With `HEALTH=1` the same start (drivers, network, detection) leads to
//! the health check instead ([`health`]): benchmarks, the results sent to
//! `upload-health.cgi`, nothing installed.
//!
//! Every path is under [`Installer::root`] (`/` on a node, a temporary
//! directory in tests), every command goes through the [`Exec`] seam, and
//! every URL comes from the command line, so the whole flow runs in a test
//! against a real web server on 127.0.0.1. See `docs/installer.md`.

pub mod bringup;
pub mod cmdline;
pub mod console;
pub mod copy;
pub mod embedded;
pub mod fetch;
pub mod finish;
pub mod health;
pub mod install;
pub mod server;
pub mod signed;
pub mod uefi;

pub use cmdline::{OnFailure, OnSuccess, Settings};
pub use console::Console;
pub use finish::Action;

use crate::configure::{self, Role, ScriptEnv};
use crate::detect;
use crate::exec::{CmdLine, Exec};
use crate::hw::{self, Line};
use anyhow::{anyhow, bail, Context, Result};
use console::Traced;
use server::{Envelope, Part};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Retry counts, pauses and timeouts. The defaults are for real nodes;
/// tests shorten them.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Hardware uploads before giving up.
    pub upload_attempts: u32,
    /// The first pause between uploads; it doubles up to `backoff_max`.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    /// Tries of a failure report or a log upload.
    pub report_attempts: u32,
    pub connect_timeout: Duration,
    /// Longest silence while reading an answer or a tree.
    pub read_timeout: Duration,
    /// `udhcpc` runs per interface, and its `-t` and `-T`.
    pub dhcp_attempts: u32,
    pub dhcp_discover: u32,
    pub dhcp_pause: u32,
    /// How long links may take to come up after `ip link set up`.
    pub carrier_wait: Duration,
    pub poll: Duration,
    /// How often the progress line is redrawn.
    pub progress_every: Duration,
    /// The pinned CA (PEM) of every `https://` server ([`crate::net`]):
    /// [`Installer::run`] sets the initrd's `etc/edeploy/ca.pem` when
    /// present and this is unset.
    pub ca: Option<PathBuf>,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            upload_attempts: 12,
            backoff_first: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            report_attempts: 3,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            dhcp_attempts: 3,
            dhcp_discover: 5,
            dhcp_pause: 3,
            carrier_wait: Duration::from_secs(8),
            poll: Duration::from_millis(200),
            progress_every: Duration::from_millis(500),
            ca: None,
        }
    }
}

/// One run of the installer.
pub struct Installer<'a> {
    /// The root to work in: `/chroot` is `root/chroot`, the command line is
    /// `root/proc/cmdline`.
    pub root: PathBuf,
    /// The command line to use instead of `root/proc/cmdline`.
    pub cmdline: Option<String>,
    pub exec: &'a dyn Exec,
    pub console: Console,
    pub tuning: Tuning,
}

/// What was installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub profile: String,
    pub role: Role,
}

impl Installed {
    /// What a health check (`HEALTH=1`) reports: it installs nothing, so
    /// no profile and an empty role; its results are [`RunReport::health`].
    pub fn nothing() -> Installed {
        Installed {
            profile: String::new(),
            role: Role {
                role: String::new(),
                version: String::new(),
                disk: String::new(),
            },
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The installation, or why it failed.
    pub result: std::result::Result<Installed, String>,
    /// What the run ended with.
    pub action: Action,
    /// A health check that succeeded: its results and where the server
    /// keeps them (`result` is then [`Installed::nothing`]).
    pub health: Option<health::Checked>,
}

/// What is known so far, for reporting a failure.
#[derive(Default)]
struct Known {
    cmdline: String,
    hw: Option<Vec<Line>>,
    envelope: Option<Envelope>,
    medium: Option<embedded::Medium>,
}

impl Installer<'_> {
    fn target(&self) -> PathBuf {
        self.root.join("chroot")
    }

    /// Runs the installer to its end action.
    pub fn run(&self) -> RunReport {
        match crate::net::ca_under(&self.root).filter(|_| self.tuning.ca.is_none()) {
            Some(ca) => Installer {
                root: self.root.clone(),
                cmdline: self.cmdline.clone(),
                exec: self.exec,
                console: self.console.clone(),
                tuning: Tuning {
                    ca: Some(ca),
                    ..self.tuning.clone()
                },
            }
            .run_tuned(),
            None => self.run_tuned(),
        }
    }

    /// [`Installer::run`] once the CA is known.
    fn run_tuned(&self) -> RunReport {
        let console = &self.console;
        let traced = Traced {
            inner: self.exec,
            console: console.clone(),
        };
        console.say("eDeploy installer starting");
        // /proc is usually not mounted yet; when the command line can be
        // read already, VERBOSE=1 traces the mounts too.
        let early = self
            .cmdline
            .clone()
            .or_else(|| std::fs::read_to_string(self.root.join("proc/cmdline")).ok());
        if let Some(Ok(s)) = early.map(|t| Settings::parse(&t)) {
            console.set_verbose(s.verbose);
        }
        bringup::mount_virtual(&self.root, &traced, console);
        let text = match &self.cmdline {
            Some(t) => Ok(t.clone()),
            None => {
                let p = self.root.join("proc/cmdline");
                std::fs::read_to_string(&p).map_err(|e| {
                    anyhow!("cannot read the kernel command line {}: {e}", p.display())
                })
            }
        };
        let mut known = Known {
            cmdline: text.as_deref().unwrap_or_default().trim().to_string(),
            ..Known::default()
        };
        let (settings, early) = match text.map(|t| Settings::parse(&t)) {
            Ok(Ok(s)) => (s, None),
            Ok(Err(e)) => (*e.partial.clone(), Some(anyhow!(e))),
            Err(e) => (Settings::default(), Some(e)),
        };
        console.set_verbose(settings.verbose);
        console.trace(&format!("kernel command line: {}", known.cmdline));
        for w in &settings.warnings {
            console.warn(w);
        }
        if settings.health {
            return health::run(self, &settings, early, &mut known, &traced);
        }
        let result = match early {
            Some(e) => Err(e),
            None => self.install(&settings, &mut known, &traced),
        };
        match result {
            Ok(installed) => {
                console.say(&format!(
                    "installed {} {} (profile {}) on {}",
                    installed.role.role,
                    installed.role.version,
                    installed.profile,
                    installed.role.disk
                ));
                let action = match settings.onsuccess {
                    OnSuccess::Kexec => Action::Kexec,
                    OnSuccess::Reboot => Action::Reboot,
                    OnSuccess::Halt => Action::Halt,
                    OnSuccess::Console => Action::Console,
                };
                let target = self.target();
                let args = install::kernel_args(
                    &settings.kept,
                    known
                        .envelope
                        .as_ref()
                        .map(|e| &e.settings)
                        .unwrap_or(&Default::default()),
                );
                let plan = finish::KexecPlan {
                    target: &target,
                    disk: &installed.role.disk,
                    kernel: settings.kexec_kernel.as_deref(),
                    args: &args,
                };
                finish::end(&self.root, &traced, console, action, Some(&plan), false);
                RunReport {
                    result: Ok(installed),
                    action,
                    health: None,
                }
            }
            Err(e) => {
                let reason = format!("{e:#}");
                console.say(&format!("install failed: {reason}"));
                self.report_failure(&settings, &known, &reason);
                let action = match settings.onfailure {
                    OnFailure::Reboot => Action::Reboot,
                    OnFailure::Halt => Action::Halt,
                    OnFailure::Console => Action::Console,
                };
                finish::end(&self.root, &traced, console, action, None, true);
                RunReport {
                    result: Err(reason),
                    action,
                    health: None,
                }
            }
        }
    }

    /// Drivers, network, detection: how an install and a health check
    /// both begin. A network that does not come up is a warning only when
    /// `network_optional` (an install from a medium).
    fn bring_up(
        &self,
        s: &Settings,
        known: &mut Known,
        exec: &dyn Exec,
        network_optional: bool,
    ) -> Result<Vec<Line>> {
        let console = &self.console;
        let root = &self.root;

        console.say("loading drivers");
        let n = bringup::load_drivers(root, exec, console);
        console.trace(&format!("{n} device aliases given to modprobe"));
        bringup::load_filesystems(exec, console);

        console.say("bringing the network up");
        match bringup::network(root, exec, console, &s.ip, &self.tuning) {
            Ok(_) => {}
            // A medium needs no network.
            Err(e) if network_optional => console.warn(&format!("{e:#}")),
            Err(e) => return Err(e.context("network")),
        }

        console.say("detecting the hardware");
        let lines = detect::detect(
            root,
            exec,
            &detect::DetectOptions {
                ipmi_fake: false,
                load_modules: true,
            },
        );
        if lines.is_empty() {
            bail!("hardware detection found nothing (are /sys and /proc mounted?)");
        }
        known.hw = Some(lines.clone());
        console.trace(&format!("{} hardware lines", lines.len()));
        Ok(lines)
    }

    fn install(&self, s: &Settings, known: &mut Known, exec: &dyn Exec) -> Result<Installed> {
        let console = &self.console;
        let root = &self.root;
        let lines = self.bring_up(s, known, exec, s.embedded.is_some())?;
        let hw_json = hw::to_json(&lines);

        let env = match &s.embedded {
            Some(m) => {
                console.say(&format!("deciding locally from the medium {m}"));
                let medium = embedded::open(root, exec, console, m)?;
                let env = medium.decide(&lines, console);
                known.medium = Some(medium);
                env?
            }
            None => {
                let policy = server::answer_policy(root, s)?;
                console.say(&format!(
                    "asking the eDeploy server at {}",
                    server::upload_url(s)
                ));
                let sysname = hw::sysname(&lines);
                server::ask(s, &hw_json, &sysname, &policy, console, &self.tuning)?
            }
        };
        console.say(&format!("profile {} assigned", env.profile));
        known.envelope = Some(env.clone());

        console.say(&format!("running the configure script of {}", env.profile));
        let overlay = root.join("post_rsync");
        if overlay.symlink_metadata().is_ok() {
            std::fs::remove_dir_all(&overlay)
                .with_context(|| format!("cannot empty {}", overlay.display()))?;
        }
        let script_name = format!("{}.configure", env.profile);
        let mut log = console.writer();
        let outcome = configure::run_script(
            &env.script,
            &script_name,
            ScriptEnv {
                vars: &env.vars,
                exec: self.exec,
                overlay: &overlay,
                log: &mut log,
            },
        )
        .map_err(|e| anyhow!("configure script: {e}"))?;
        let role = outcome.role.ok_or_else(|| {
            anyhow!(
                "the configure script of {} did not call set_role(role, version, disk)",
                env.profile
            )
        })?;

        let target = self.target();
        std::fs::create_dir_all(&target)
            .with_context(|| format!("cannot create {}", target.display()))?;
        self.fetch(s, known, &role, &target, exec)?;

        if overlay.is_dir() {
            console.say("copying the configuration files over the tree");
            let skipped = copy::copy_tree(&overlay, &target)?;
            for p in skipped {
                console.warn(&format!("{}: special file not copied", p.display()));
            }
        }
        install::write_conf(&target, s, &role)?;
        install::write_ca(&target, self.tuning.ca.as_deref())?;
        let keys = install::copy_trusted(root, &target)?;
        if keys > 0 {
            console.say(&format!(
                "{keys} trusted key(s) copied to /{}",
                crate::trust::TRUSTED_DIR
            ));
        }

        let args = install::kernel_args(&s.kept, &env.settings);
        console.say(&format!("installing the boot loader on {}", role.disk));
        let loader =
            install::bootloader(root, &target, exec, console, &role.disk, &args, s.bootorder)?;
        console.trace(&format!("boot loader: {loader:?}"));

        if let Some(url) = env.settings.get("PXEMNGR_URL").filter(|u| !u.is_empty()) {
            let mac = env
                .vars
                .get("mac")
                .and_then(|v| v.as_str())
                .map(String::from)
                .or_else(|| hw::macs(&lines).first().map(|m| m.to_string()));
            match mac {
                Some(mac) => match install::pxemngr_localboot(url, &mac, &self.tuning) {
                    Ok(u) => console.say(&format!("pxemngr: local boot set ({u})")),
                    Err(e) => console.warn(&format!("pxemngr: {e:#}")),
                },
                None => console.warn("pxemngr: this node has no MAC address to name"),
            }
        }

        let logdir = target.join("var/log/edeploy");
        install::write_file(&logdir.join("hw.json"), hw_json.as_bytes())?;
        install::write_file(&logdir.join(&script_name), env.script.as_bytes())?;
        let vars = serde_json::to_string_pretty(&serde_json::Value::Object(
            env.vars
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        ))
        .unwrap_or_default();
        install::write_file(&logdir.join("vars.json"), vars.as_bytes())?;
        console.say("installation done; the log is kept in /var/log/edeploy/install.log");
        install::write_file(&logdir.join("install.log"), console.log_text().as_bytes())?;
        if let Err(e) = exec.run(&CmdLine::argv(["sync"])) {
            console.warn(&format!("{e:#}"));
        }
        Ok(Installed {
            profile: env.profile,
            role,
        })
    }

    fn fetch(
        &self,
        s: &Settings,
        known: &Known,
        role: &Role,
        target: &Path,
        exec: &dyn Exec,
    ) -> Result<()> {
        let console = &self.console;
        if let Some(medium) = &known.medium {
            let src = medium.tree(&role.role, &role.version)?;
            console.say(&format!("copying the tree from {}", src.display()));
            if src.is_dir() {
                for p in copy::copy_verified(&src, target)? {
                    console.warn(&format!("{}: special file not copied", p.display()));
                }
            } else {
                let f = std::fs::File::open(&src)
                    .with_context(|| format!("cannot open {}", src.display()))?;
                let len = f.metadata().ok().map(|m| m.len());
                let name = src
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                fetch::unpack_verified(f, len, target, &name, console, &self.tuning)?;
            }
            return Ok(());
        }
        let policy = signed::policy(&self.root, s.require_signatures)?;
        let keys: Vec<String> = policy.trusted.ids().iter().map(|k| k.to_string()).collect();
        console.trace(&format!(
            "trusted keys: {}; signatures {}",
            if keys.is_empty() {
                "none".to_string()
            } else {
                keys.join(", ")
            },
            if policy.require {
                "required"
            } else {
                "optional"
            }
        ));
        match &s.hserv {
            Some(_) => {
                let n = signed::install_http(s, role, target, &policy, console, &self.tuning)?;
                console.trace(&format!("{n} bytes unpacked"));
            }
            None => signed::install_rsync(s, role, &self.root, target, &policy, exec, console)?,
        }
        Ok(())
    }

    /// The log to upload: the install log, the command line, the script
    /// and the kernel log.
    fn failure_log(&self, known: &Known) -> Vec<u8> {
        let mut text = self.console.log_text();
        text.push_str("\n===== kernel command line\n");
        text.push_str(&known.cmdline);
        text.push_str("\n\n===== configure script\n");
        match &known.envelope {
            Some(e) => text.push_str(&e.script),
            None => text.push_str("(none: no profile was assigned)"),
        }
        text.push_str("\n\n===== kernel log (dmesg)\n");
        match self.exec.output(&CmdLine::argv(["dmesg"]), None) {
            Ok(o) if o.success() => text.push_str(&o.stdout),
            Ok(o) => text.push_str(&format!("dmesg: exit status {}: {}", o.status, o.stderr)),
            Err(e) => text.push_str(&format!("{e:#}")),
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = gz.write_all(text.as_bytes());
        gz.finish().unwrap_or_default()
    }

    fn report_failure(&self, s: &Settings, known: &Known, reason: &str) {
        let console = &self.console;
        let hw_json = known.hw.as_deref().map(hw::to_json).unwrap_or_default();
        if s.upload_log {
            let name = log_name(known.hw.as_deref().unwrap_or_default());
            let data = self.failure_log(known);
            let sent = match &known.medium {
                Some(m) => crate::provision::logs::save(&m.cfg.logdir, &name, &data)
                    .map(|_| m.cfg.logdir.join(&name).display().to_string())
                    .map_err(|e| format!("{e:#}")),
                None => server::report(
                    &server::upload_url(s),
                    &[("file", Part::File(&name, &data))],
                    &self.tuning,
                )
                .map(|_| format!("{} on the server", name)),
            };
            match sent {
                Ok(w) => console.say(&format!("install log uploaded as {w}")),
                Err(e) => console.warn(&format!("cannot upload the install log: {e}")),
            }
        }
        if let Some(env) = &known.envelope {
            let sent = match &known.medium {
                Some(m) => crate::provision::decide::report_failure(
                    &m.cfg,
                    &env.profile,
                    known.hw.as_deref().unwrap_or_default(),
                )
                .map(|_| ())
                .map_err(|e| e.to_string()),
                None => server::report(
                    &server::upload_url(s),
                    &[
                        ("file", Part::File("hw.json", hw_json.as_bytes())),
                        ("failure", Part::Text(&env.profile)),
                    ],
                    &self.tuning,
                )
                .map(|_| ()),
            };
            match sent {
                Ok(()) => console.say(&format!(
                    "failure of profile {} reported ({reason})",
                    env.profile
                )),
                Err(e) => console.warn(&format!("cannot report the failure: {e}")),
            }
        }
    }
}

/// The installer's log name (one rule with the server's names, in [`hw`]).
pub use crate::hw::log_name;
