//! HTTP delta upgrades and rollback on the host.
//!
//! The upgrade of FROM → TO comes as one static archive (the format is in
//! [`crate::archive::delta`]). [`upgrade`] runs it in phases:
//!
//! 1. `fetch`: the archive is downloaded;
//! 2. `stage`: it is unpacked to a staging directory while every file is
//!    hashed and checked against the manifest, and every path against the
//!    format (no `..`, no reserved name, no entry under a symlink of TO);
//!    any mismatch stops the upgrade before anything is touched. The journal
//!    (`ROOT/var/lib/edeploy/journal`) is then written, phase `staged`;
//! 3. `journal::plan`: this host's operations, each path checked against
//!    the host's tree (no parent is a symlink, [`crate::archive::beneath`]);
//!    only then does `pre` run;
//! 4. `journal::save`, phase `saved`: every path the upgrade will touch
//!    is recorded (its type, mode, owner, times, or "absent") in
//!    `ROOT/var/lib/edeploy/rollback/FROM/saved.json`, and its bytes kept
//!    under `rollback/FROM/tree/` (a hard link when possible, else a
//!    copy); the journal then lists the exact operations to run;
//! 5. `journal::apply`, phase `applied`: deletions (deepest first), then
//!    each new or changed path in order, each file replaced by writing a
//!    temporary file beside it and renaming it over, so every path is at
//!    any instant wholly old or wholly new. Every operation can run
//!    twice, so an interrupted upgrade is finished by running the same
//!    command again;
//! 6. `journal::finish`: the manifest is installed, `post` runs, the
//!    version is recorded and the journal removed.
//!
//! [`rollback`] puts back every saved path exactly (bytes, type, mode,
//! owner, mtime), removes what the upgrade created, and records FROM
//! again. One level is kept: the next upgrade replaces it.

mod fetch;
mod journal;
mod put;
mod rollback;
mod stage;

pub use rollback::rollback;

use super::conf::Conf;
use super::exclude::{Rules, BUILTIN};
use super::meta::{self, Metadata};
use super::rsync::SyncOutcome;
use crate::archive::delta::Selection;
use crate::exec::Exec;
use anyhow::{bail, Result};
use journal::Phase;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An upgrade path of a role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Versions {
    role: String,
    from: String,
    to: String,
}

impl Versions {
    /// `upgrade ROLE FROM -> TO`, naming the upgrade path in errors.
    fn what(&self) -> String {
        format!("upgrade {} {} -> {}", self.role, self.from, self.to)
    }
}

/// Where things live under the host's root.
struct Paths {
    state: PathBuf,
}

impl Paths {
    fn new(root: &Path) -> Paths {
        Paths {
            state: meta::state_dir(root),
        }
    }
    fn journal(&self) -> PathBuf {
        self.state.join("journal")
    }
    fn staging(&self, to: &str) -> PathBuf {
        self.state.join("staging").join(to)
    }
    fn download(&self, name: &str) -> PathBuf {
        self.state.join("download").join(name)
    }
    fn rollbacks(&self) -> PathBuf {
        self.state.join("rollback")
    }
    fn rollback(&self, from: &str) -> PathBuf {
        self.rollbacks().join(from)
    }
    /// Where the rsync transport puts a version's metadata too, so verify
    /// finds its exclude and add_only in the same place.
    fn meta(&self, to: &str) -> PathBuf {
        self.state.join(to)
    }
}

/// The built-in exclusions, then the upgrade path's.
fn skip_rules(meta: &Metadata) -> Rules {
    let mut r = Rules::excluding(BUILTIN);
    r.extend(&meta.exclude);
    r
}

/// An upgrade path's metadata chooses what its delta holds, at pack time
/// and again on the host.
impl Selection for Metadata {
    fn skipped(&self) -> impl Fn(&str, bool) -> bool + '_ {
        let rules = skip_rules(self);
        move |path, is_dir| rules.excludes(path, is_dir)
    }
    fn is_add_only(&self, path: &str) -> bool {
        Metadata::is_add_only(self, path)
    }
    fn meta_dir(&self) -> &Path {
        &self.dir
    }
}

/// `edeploy upgrade --transport http TO`.
pub fn upgrade(exec: &dyn Exec, out: &mut dyn Write, root: &Path, to: &str) -> Result<SyncOutcome> {
    let conf = Conf::load(root)?;
    let from = conf.version()?.to_string();
    let v = Versions {
        role: conf.role()?.to_string(),
        from,
        to: to.to_string(),
    };
    let paths = Paths::new(root);
    let mut journal = match journal::interrupted(&paths, &v, out)? {
        Some(j) => j,
        None => {
            if v.to == v.from {
                bail!("{} is already at version {to}", v.role);
            }
            let fetched = fetch::fetch(root, &conf, &paths, &v, out)?;
            let j = stage::stage(&paths, &v, &fetched.archive)?;
            refuse_or(
                keep_manifest_signature(root, &conf, &paths, &v, fetched.manifest_sig),
                &paths,
                &v,
            )?;
            j
        }
    };
    let staged = stage::Staged::load(&paths, &v)?;
    let mut outcome = SyncOutcome::default();
    // Every check passes before `pre` runs.
    let plan = match journal.phase {
        Phase::Staged => Some(refuse_or(journal::plan(root, &staged), &paths, &v)?),
        _ => None,
    };
    if journal.phase != Phase::Applied {
        if let Some(pre) = &staged.meta.pre {
            meta::run_script(exec, out, root, pre, &v.role, &v.from, to)?;
        }
    }
    if let Some(plan) = plan {
        outcome.added = journal::save(root, &paths, plan, &mut journal)?;
    }
    if journal.phase == Phase::Saved {
        journal::apply(root, &paths, &staged, &mut journal, out)?;
    }
    outcome.reboot = journal::finish(exec, out, root, &paths, &v, &staged)?;
    Ok(outcome)
}

/// Checks the server's signature of TO's manifest against the manifest
/// the (authenticated) delta carries, and keeps it in the staging
/// directory; [`journal::finish`] installs it beside the manifest, for
/// `verify`.
fn keep_manifest_signature(
    root: &Path,
    conf: &Conf,
    paths: &Paths,
    v: &Versions,
    sig: Option<(String, String)>,
) -> Result<()> {
    let Some((sig, url)) = sig else {
        return Ok(());
    };
    let trust = super::signed::HostTrust::load(root, conf)?;
    let staging = paths.staging(&v.to);
    let text = std::fs::read(staging.join("manifest"))?;
    let name = crate::archive::layout::manifest_name(&v.role, &v.to);
    let what = url
        .strip_suffix(&format!(".{}", crate::trust::SIGNATURE_EXT))
        .unwrap_or(&url);
    trust.check_reader(
        what,
        std::io::Cursor::new(text),
        Some(&sig),
        &url,
        Some(&name),
    )?;
    crate::persist::write_atomic(&staging.join(MANIFEST_SIG), sig.as_bytes())
}

/// The name of the target manifest's signature in the staging directory.
const MANIFEST_SIG: &str = "manifest.minisig";

/// `r`, or its error once the staged upgrade is forgotten (nothing on the
/// host has changed yet).
fn refuse_or<T>(r: Result<T>, paths: &Paths, v: &Versions) -> Result<T> {
    if r.is_err() {
        let _ = std::fs::remove_file(paths.journal());
        let _ = std::fs::remove_dir_all(paths.staging(&v.to));
        let _ = std::fs::remove_dir_all(paths.meta(&v.to));
    }
    r.map_err(|e| e.context("refusing the delta; nothing was changed"))
}
