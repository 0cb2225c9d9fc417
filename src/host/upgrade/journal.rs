//! The journal of an HTTP upgrade and the phases it drives: `saved`
//! (what rollback needs), `applied` (the operations), then the finish.

use super::put::{self, lstat};
use super::stage::Staged;
use super::{skip_rules, Paths, Versions};
use crate::archive::beneath;
use crate::archive::delta::{self, Index};
use crate::archive::manifest::{self, Entry, Kind, Manifest};
use crate::exec::Exec;
use crate::host::meta::{self, Metadata, ScriptEnd};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Phase {
    Staged,
    Saved,
    Applied,
}

/// The journal of an upgrade in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Journal {
    #[serde(flatten)]
    pub v: Versions,
    pub phase: Phase,
    /// Paths to delete, deepest first.
    #[serde(default)]
    pub deletes: Vec<String>,
    /// Paths to create or change, parents first.
    #[serde(default)]
    pub puts: Vec<String>,
}

/// What rollback needs of each path the upgrade touches: how it was, or
/// `None` when the upgrade created it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Saved {
    #[serde(flatten)]
    pub v: Versions,
    pub paths: BTreeMap<String, Option<Entry>>,
}

pub(super) fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    crate::persist::write_atomic(path, &serde_json::to_vec_pretty(value)?)
}

pub(super) fn load_json<T: for<'a> Deserialize<'a>>(path: &Path) -> Result<T> {
    let data = fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("{}: unreadable", path.display()))
}

/// The journal of an interrupted upgrade to finish, if any. Refuses when
/// it is the upgrade of another path.
pub(super) fn interrupted(
    paths: &Paths,
    v: &Versions,
    out: &mut dyn Write,
) -> Result<Option<Journal>> {
    let path = paths.journal();
    if !path.exists() {
        return Ok(None);
    }
    let j: Journal = load_json(&path)?;
    if j.v != *v {
        let Versions { role, from, to } = &j.v;
        bail!(
            "an upgrade of {role} from {from} to {to} was interrupted: run `edeploy upgrade --transport http {to}` \
             to finish it or `edeploy rollback` to undo it"
        );
    }
    writeln!(
        out,
        "finishing the interrupted upgrade of {} from {} to {}",
        v.role, v.from, v.to
    )?;
    Ok(Some(j))
}

/// This host's operations, planned and checked before anything runs.
pub(super) struct Plan {
    deletes: Vec<String>,
    puts: Vec<String>,
    added: Vec<String>,
}

/// Plans this host's operations and checks them against the tree: no
/// path is under a symlink of the host ([`beneath::check_parent_unless`]),
/// except one the upgrade itself first replaces by a directory of TO.
pub(super) fn plan(root: &Path, staged: &Staged) -> Result<Plan> {
    let (deletes, puts, added) = host_plan(root, &staged.index, &staged.target, &staged.meta)?;
    let made_dirs: HashSet<&str> = puts
        .iter()
        .filter(|p| staged.target.get(p).is_some_and(|e| e.kind == Kind::Dir))
        .map(String::as_str)
        .collect();
    let replaced = |a: &Path| a.to_str().is_some_and(|a| made_dirs.contains(a));
    for p in deletes.iter().chain(&puts) {
        beneath::check_parent_unless(root, Path::new(p), &replaced)?;
    }
    Ok(Plan {
        deletes,
        puts,
        added,
    })
}

/// Phase `saved`: keeps what rollback needs of the planned operations,
/// and records them in the journal. Returns the `add_only` paths the
/// upgrade creates.
pub(super) fn save(
    root: &Path,
    paths: &Paths,
    plan: Plan,
    journal: &mut Journal,
) -> Result<Vec<String>> {
    let Plan {
        deletes,
        puts,
        added,
    } = plan;
    save_for_rollback(root, paths, &journal.v, &deletes, &puts)?;
    journal.deletes = deletes;
    journal.puts = puts;
    journal.phase = Phase::Saved;
    save_json(&paths.journal(), journal)?;
    Ok(added)
}

/// Phase `applied`: runs the journal's operations. Each can run twice.
pub(super) fn apply(
    root: &Path,
    paths: &Paths,
    staged: &Staged,
    journal: &mut Journal,
    out: &mut dyn Write,
) -> Result<()> {
    let slots = staged.index.slots();
    let mut tick = abort_hook();
    for p in &journal.deletes {
        put::remove(root, p, out)?;
        tick()?;
    }
    for p in &journal.puts {
        let e = staged
            .target
            .get(p)
            .with_context(|| format!("/{p}: not in the target manifest"))?;
        let bytes = slots
            .get(p.as_str())
            .map(|i| delta::unpacked_file(&staged.dir, *i));
        put::put(root, e, bytes.as_deref(), out)?;
        tick()?;
    }
    crate::persist::sync_dir(root)?;
    journal.phase = Phase::Applied;
    save_json(&paths.journal(), journal)
}

/// The end: installs TO's manifest, runs `post`, records TO, removes the
/// journal, the staging directory and older rollback levels, and reboots
/// when `post` asks. Returns whether it did.
pub(super) fn finish(
    exec: &dyn Exec,
    out: &mut dyn Write,
    root: &Path,
    paths: &Paths,
    v: &Versions,
    staged: &Staged,
) -> Result<bool> {
    let Versions { role, from, to } = v;
    let installed = crate::archive::layout::manifest_path(root, role, to);
    staged.target.save(&installed)?;
    // The server's signature of the manifest, checked when staged.
    let sig = crate::trust::signature_path(&installed);
    match fs::read(staged.dir.join(super::MANIFEST_SIG)) {
        Ok(bytes) => crate::persist::write_atomic(&sig, &bytes)?,
        Err(_) => {
            let _ = fs::remove_file(&sig);
        }
    }
    let reboot = match &staged.meta.post {
        Some(post) => {
            meta::run_script(exec, out, root, post, role, from, to)? == ScriptEnd::RebootNeeded
        }
        None => false,
    };
    meta::record_version(root, role, to)?;
    let journal = paths.journal();
    fs::remove_file(&journal).with_context(|| format!("{}: cannot remove", journal.display()))?;
    let _ = fs::remove_dir_all(&staged.dir);
    // One level of rollback: drop older ones.
    if let Ok(dirs) = fs::read_dir(paths.rollbacks()) {
        for d in dirs.flatten() {
            if d.file_name().to_string_lossy() != from.as_str() {
                let _ = fs::remove_dir_all(d.path());
            }
        }
    }
    writeln!(out, "{role} is now at version {to}")?;
    if reboot {
        meta::reboot(exec, out)?;
    }
    Ok(reboot)
}

/// What to call after each operation of the apply phase. A test hook,
/// built with the `test-hooks` feature only: `EDEPLOY_TEST_ABORT_AFTER=N`
/// fails the N-th call, leaving the host as a crash would.
#[cfg(feature = "test-hooks")]
fn abort_hook() -> impl FnMut() -> Result<()> {
    let limit: Option<usize> = std::env::var("EDEPLOY_TEST_ABORT_AFTER")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut done = 0usize;
    move || {
        done += 1;
        if limit == Some(done) {
            bail!("stopped by EDEPLOY_TEST_ABORT_AFTER after {done} operations");
        }
        Ok(())
    }
}

/// Without the `test-hooks` feature, nothing.
#[cfg(not(feature = "test-hooks"))]
fn abort_hook() -> impl FnMut() -> Result<()> {
    || Ok(())
}

/// The operations of this host's upgrade: deletions (deepest first,
/// including what the host added inside a deleted directory), then the
/// paths to create or change (parents first), then the `add_only` paths
/// the host lacks.
fn host_plan(
    root: &Path,
    index: &Index,
    target: &Manifest,
    meta: &Metadata,
) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let skip = skip_rules(meta);
    let mut deletes: Vec<String> = Vec::new();
    for p in &index.deleted {
        let full = root.join(p);
        let Some(md) = lstat(&full) else { continue };
        if skip.excludes(p, md.is_dir()) || meta.is_add_only(p) {
            continue;
        }
        deletes.push(p.clone());
        if md.is_dir() {
            for e in manifest::scan(&full, &skip, true)? {
                let rel = format!("{p}/{}", e.path);
                if !skip.excludes(&rel, e.kind == Kind::Dir) && !meta.is_add_only(&rel) {
                    deletes.push(rel);
                }
            }
        }
    }
    deletes.sort();
    deletes.dedup();
    deletes.reverse();
    let mut puts: Vec<String> = index
        .changed
        .iter()
        .filter(|p| !meta.is_add_only(p))
        .cloned()
        .collect();
    let mut added = Vec::new();
    for a in &meta.add_only {
        if lstat(&root.join(a)).is_some() {
            continue;
        }
        let mine: Vec<&String> = index
            .add_only
            .iter()
            .filter(|p| *p == a || p.starts_with(&format!("{a}/")))
            .collect();
        if !mine.is_empty() {
            added.push(a.clone());
        }
        // Parents of an add_only path that the tree has but the host
        // lacks come first.
        let mut parent = Path::new(a).parent();
        while let Some(pp) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let ps = pp.to_string_lossy().into_owned();
            if lstat(&root.join(&ps)).is_none() && target.get(&ps).is_some() {
                puts.push(ps);
            }
            parent = pp.parent();
        }
        puts.extend(mine.into_iter().cloned());
    }
    puts.sort();
    puts.dedup();
    Ok((deletes, puts, added))
}

/// Records how every path the upgrade touches is now, and keeps its
/// bytes, under `rollback/FROM/`. Run again from scratch when
/// interrupted: nothing on the host has changed yet.
fn save_for_rollback(
    root: &Path,
    paths: &Paths,
    v: &Versions,
    deletes: &[String],
    puts: &[String],
) -> Result<()> {
    let dir = paths.rollback(&v.from);
    let _ = fs::remove_dir_all(&dir);
    let tree = dir.join("tree");
    fs::create_dir_all(&tree).with_context(|| format!("{}: cannot create", tree.display()))?;
    let mut saved = Saved {
        v: v.clone(),
        paths: BTreeMap::new(),
    };
    for p in deletes.iter().chain(puts) {
        let full = root.join(p);
        let entry = match lstat(&full) {
            None => None,
            Some(_) => Some(manifest::entry_of(&full, p.clone())?),
        };
        if entry.as_ref().is_some_and(|e| e.kind == Kind::File) {
            keep_bytes(&full, &tree.join(p))?;
        }
        saved.paths.insert(p.clone(), entry);
    }
    save_json(&dir.join("saved.json"), &saved)?;
    crate::persist::sync_dir(&dir)
}

/// Keeps the bytes of the file `full` at `keep`: a hard link when
/// possible, else a copy.
fn keep_bytes(full: &Path, keep: &Path) -> Result<()> {
    if let Some(d) = keep.parent() {
        fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
    }
    if fs::hard_link(full, keep).is_err() {
        fs::copy(full, keep).with_context(|| format!("{}: cannot keep a copy", full.display()))?;
    }
    Ok(())
}
