//! An upgrade path's metadata, and the steps every transport shares.
//!
//! `metadata/FROM/ROLE/TO/` holds `exclude` (required: paths an upgrade
//! never touches), `add_only` (required, not empty: paths only created
//! when missing, never replaced or deleted) and optional `pre` and `post`
//! scripts. Both transports copy it to `ROOT/var/lib/edeploy/TO/` and then
//! use this module to check it, run the scripts through the command seam
//! and record the new version.

use super::exclude::Rules;
use crate::exec::{CmdLine, Exec};
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The directory eDeploy keeps its state in, under the host's root.
pub const STATE: &str = "var/lib/edeploy";

/// `ROOT/var/lib/edeploy`.
pub fn state_dir(root: &Path) -> PathBuf {
    root.join(STATE)
}

/// `post` exits with this status to ask for a reboot.
pub const REBOOT_STATUS: i32 = 100;

/// A checked metadata directory.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub dir: PathBuf,
    /// The raw text of `exclude`, handed to rsync as is.
    pub exclude_text: String,
    pub exclude: Rules,
    /// The `add_only` paths, relative to the root, without a leading `/`.
    pub add_only: Vec<String>,
    pub pre: Option<PathBuf>,
    pub post: Option<PathBuf>,
}

/// Reads the path list of an `add_only` file (one path a line; blank and
/// `#` lines ignored).
pub fn parse_add_only(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

impl Metadata {
    /// Reads and checks `dir`; `what` names the upgrade path in errors.
    /// Refuses when `exclude` is missing or `add_only` is missing or empty:
    /// an upgrade without them would overwrite the host's data.
    pub fn load(dir: &Path, what: &str) -> Result<Metadata> {
        let exclude_path = dir.join("exclude");
        let exclude_text = match fs::read_to_string(&exclude_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{what}: the metadata has no exclude file; refusing to upgrade \
                 (it lists the host's data that an upgrade must never touch)"
            ),
            Err(e) => {
                return Err(e).with_context(|| format!("{}: cannot read", exclude_path.display()))
            }
        };
        let add_only_path = dir.join("add_only");
        let add_only = match fs::read_to_string(&add_only_path) {
            Ok(t) => parse_add_only(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("{}: cannot read", add_only_path.display()))
            }
        };
        if add_only.is_empty() {
            bail!(
                "{what}: the metadata's add_only file is missing or empty; refusing to upgrade \
                 (it lists the paths an upgrade only creates and never replaces)"
            );
        }
        for p in &add_only {
            if p.split('/').any(|c| c == "..") {
                bail!("{what}: add_only path {p:?} leaves the tree");
            }
        }
        let script = |name: &str| {
            let p = dir.join(name);
            p.is_file().then_some(p)
        };
        Ok(Metadata {
            dir: dir.to_path_buf(),
            exclude: Rules::parse(&exclude_text),
            exclude_text,
            add_only,
            pre: script("pre"),
            post: script("post"),
        })
    }

    /// Whether `path` is one of the `add_only` paths or inside one.
    pub fn is_add_only(&self, path: &str) -> bool {
        let path = path.trim_start_matches('/');
        self.add_only
            .iter()
            .any(|a| path == a || path.starts_with(&format!("{a}/")))
    }
}

/// How a script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptEnd {
    Done,
    RebootNeeded,
}

/// Runs `pre` or `post` through the seam. The script gets FROM and TO as
/// arguments and `EDEPLOY_ROOT`, `EDEPLOY_ROLE`, `EDEPLOY_FROM`,
/// `EDEPLOY_TO` in its environment. Exit 0 is success; for `post`, exit
/// 100 asks for a reboot; anything else fails the upgrade.
pub fn run_script(
    exec: &dyn Exec,
    out: &mut dyn Write,
    root: &Path,
    script: &Path,
    role: &str,
    from: &str,
    to: &str,
) -> Result<ScriptEnd> {
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cmd = CmdLine::argv([
        "env".to_string(),
        format!("EDEPLOY_ROOT={}", root.display()),
        format!("EDEPLOY_ROLE={role}"),
        format!("EDEPLOY_FROM={from}"),
        format!("EDEPLOY_TO={to}"),
        script.display().to_string(),
        from.to_string(),
        to.to_string(),
    ]);
    writeln!(out, "running {name}")?;
    let res = exec.output(&cmd, None)?;
    out.write_all(res.stdout.as_bytes())?;
    eprint!("{}", res.stderr);
    match res.status {
        0 => Ok(ScriptEnd::Done),
        REBOOT_STATUS if name == "post" => Ok(ScriptEnd::RebootNeeded),
        s => bail!(
            "the {name} script failed (exit status {s}){}",
            match res.stderr.trim() {
                "" => String::new(),
                e => format!(": {e}"),
            }
        ),
    }
}

/// Records that the host now runs `role` `version`: `VERS` in the conf
/// file and the eDeploy line of `/etc/motd`.
pub fn record_version(root: &Path, role: &str, version: &str) -> Result<()> {
    let mut conf = super::conf::Conf::load(root)?;
    conf.set("VERS", version);
    conf.save(root)?;
    let motd = root.join("etc/motd");
    let old = match fs::read_to_string(&motd) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", motd.display())),
    };
    let line = motd_line(role, version);
    let mut lines: Vec<&str> = old
        .lines()
        .filter(|l| !l.starts_with(MOTD_PREFIX))
        .collect();
    lines.push(&line);
    let text = lines.join("\n") + "\n";
    if let Some(dir) = motd.parent() {
        fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    crate::persist::write_atomic(&motd, text.as_bytes())
}

const MOTD_PREFIX: &str = "eDeploy role ";

/// The line `/etc/motd` carries for a role and version.
pub fn motd_line(role: &str, version: &str) -> String {
    format!("{MOTD_PREFIX}{role} version {version}")
}

/// Asks the machine to reboot, through the seam.
pub fn reboot(exec: &dyn Exec, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "post asked for a reboot: rebooting")?;
    exec.run(&CmdLine::argv(["reboot"])).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_only_lines() {
        assert_eq!(
            parse_add_only("# keys\n/etc/ssh/ssh_host_rsa_key\n\n etc/myapp.conf \n/\n"),
            vec!["etc/ssh/ssh_host_rsa_key", "etc/myapp.conf"]
        );
    }
}
