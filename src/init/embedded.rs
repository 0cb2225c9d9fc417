//! `EMBEDDED=`: installing from a local medium (a CD, a USB key, a
//! directory) without a server.
//!
//! The medium holds what a server would: `config/` (`state`, `P.specs`,
//! `P.configure`, `P.cmdb`) and `install/VERS/` with each role as
//! `ROLE-VERS.edeploy` or as a directory `ROLE/`. A device path
//! (`/dev/sr0`) is mounted read-only first; a directory is used as it is.
//!
//! The decision is `upload.cgi -f`'s (the same `cgi::provision`: the
//! hardware list kept, the profile chosen, the CMDB entry allocated and
//! written). On a writable medium the configuration is changed in place,
//! so the next node installed from the same USB key gets the next CMDB
//! entry; on a read-only one it is copied to `/run/edeploy/config` first.
//! A failed install gives its quota back there, and with `UPLOAD_LOG=1`
//! the log is kept in `logs/` of the medium (or of the copy).

use super::console::Console;
use crate::archive::layout;
use crate::cgi::RequestLog as Log;
use crate::config::ServerConfig;
use crate::exec::{CmdLine, Exec};
use crate::hw::Line;
use crate::protocol::Envelope;
use crate::provision;
use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// An opened medium and the configuration decisions use.
pub struct Medium {
    pub dir: PathBuf,
    pub cfg: ServerConfig,
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(".edeploy-write-test");
    let ok = fs::write(&probe, b"").is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

/// Opens the medium named by `EMBEDDED` (see the module doc).
pub fn open(root: &Path, exec: &dyn Exec, console: &Console, embedded: &str) -> Result<Medium> {
    let run = root.join("run/edeploy");
    let dir = if embedded.starts_with("/dev/") {
        let mp = run.join("medium");
        fs::create_dir_all(&mp).with_context(|| format!("cannot create {}", mp.display()))?;
        exec.run(&CmdLine::argv([
            "mount".to_string(),
            "-o".into(),
            "ro".into(),
            embedded.into(),
            mp.display().to_string(),
        ]))?;
        mp
    } else {
        root.join(embedded.trim_start_matches('/'))
    };
    let config = dir.join("config");
    if !config.join("state").exists() {
        bail!(
            "EMBEDDED={embedded}: no config/state on the medium ({})",
            config.display()
        );
    }
    let configdir = if writable(&config) {
        config
    } else {
        let copy = run.join("config");
        console.say(&format!(
            "the medium is read-only: deciding on a copy of its configuration in {}",
            copy.display()
        ));
        fs::create_dir_all(&copy).with_context(|| format!("cannot create {}", copy.display()))?;
        super::copy::copy_tree(&config, &copy)?;
        copy
    };
    let mut cfg = ServerConfig::with_configdir(&configdir);
    let logs = configdir
        .parent()
        .map(|p| p.join("logs"))
        .filter(|l| l.is_dir())
        .unwrap_or_else(|| configdir.clone());
    cfg.logdir = logs;
    fs::create_dir_all(&run).with_context(|| format!("cannot create {}", run.display()))?;
    cfg.lockfile = run.join("edeploy.lock");
    Ok(Medium { dir, cfg })
}

impl Medium {
    /// What `upload.cgi -f` decides for `lines`.
    pub fn decide(&self, lines: &[Line], console: &Console) -> Result<Envelope> {
        let mut buf = Vec::new();
        let result = {
            let mut log = Log::new("embedded", &mut buf);
            provision::provision(&self.cfg, lines, None, &mut log)
        };
        let text = String::from_utf8_lossy(&buf);
        for l in text.lines() {
            console.trace(l);
        }
        let p = result.map_err(|r| {
            anyhow!(
                "no configuration for this node (HTTP {}): {}",
                r.status,
                r.sentence
            )
        })?;
        Ok(Envelope {
            profile: p.decision.profile.clone(),
            vars: p.decision.vars.clone(),
            script: p.decision.script.clone(),
            settings: p.decision.settings.clone(),
        })
    }

    /// The role's tree on the medium: a `.edeploy` file or a directory.
    pub fn tree(&self, role: &str, vers: &str) -> Result<PathBuf> {
        let install = self.dir.join(layout::INSTALL);
        let file = layout::repo_archive(&install, role, vers);
        if file.is_file() {
            return Ok(file);
        }
        let dir = layout::repo_tree(&install, role, vers);
        if dir.is_dir() {
            return Ok(dir);
        }
        bail!(
            "the medium has neither {} nor {}/",
            file.display(),
            dir.display()
        )
    }
}
