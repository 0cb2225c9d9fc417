//! `edeploy rollback`: back to the version before the last HTTP upgrade,
//! or an interrupted upgrade undone.

use super::journal::{load_json, Journal, Phase, Saved};
use super::put::{inside, lstat, place};
use super::Paths;
use crate::archive::beneath;
use crate::archive::manifest::Kind;
use crate::host::conf::Conf;
use crate::host::meta;
use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::path::Path;

/// `edeploy rollback`: puts back the version before the last HTTP
/// upgrade, or undoes an interrupted one. Returns the version the host is
/// at.
pub fn rollback(out: &mut dyn Write, root: &Path) -> Result<String> {
    let paths = Paths::new(root);
    let conf = Conf::load(root)?;
    let current = conf.version()?.to_string();
    let journal: Option<Journal> = if paths.journal().exists() {
        Some(load_json(&paths.journal())?)
    } else {
        None
    };
    let from = match &journal {
        Some(j) => j.v.from.clone(),
        None => saved_leading_to(&paths, &current)?,
    };
    let dir = paths.rollback(&from);
    let saved_path = dir.join("saved.json");
    if journal.as_ref().is_some_and(|j| j.phase == Phase::Staged) || !saved_path.exists() {
        // Interrupted before anything changed: forget the upgrade.
        let _ = fs::remove_file(paths.journal());
        if let Some(j) = &journal {
            let _ = fs::remove_dir_all(paths.staging(&j.v.to));
        }
        let _ = fs::remove_dir_all(&dir);
        writeln!(
            out,
            "the interrupted upgrade had changed nothing; still at {from}"
        )?;
        return Ok(from);
    }
    let saved: Saved = load_json(&saved_path)?;
    let v = &saved.v;
    writeln!(out, "rolling {} back from {} to {}", v.role, v.to, v.from)?;
    restore(root, &saved, &dir.join("tree"))?;
    meta::record_version(root, &v.role, &v.from)?;
    if let Some(j) = &journal {
        let _ = fs::remove_dir_all(paths.staging(&j.v.to));
        fs::remove_file(paths.journal())
            .with_context(|| format!("{}: cannot remove", paths.journal().display()))?;
    }
    fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot remove", dir.display()))?;
    writeln!(out, "{} is back at version {}", v.role, v.from)?;
    Ok(v.from.clone())
}

/// The version whose saved state leads to `current`.
fn saved_leading_to(paths: &Paths, current: &str) -> Result<String> {
    let mut found = None;
    if let Ok(dirs) = fs::read_dir(paths.rollbacks()) {
        for d in dirs.flatten() {
            if let Ok(s) = load_json::<Saved>(&d.path().join("saved.json")) {
                if s.v.to == current {
                    found = Some(s.v.from);
                }
            }
        }
    }
    found.with_context(|| {
        format!(
            "nothing to roll back: no saved state leads to {current} \
             (only upgrades made with --transport http keep one)"
        )
    })
}

/// Removes what the upgrade created (deepest first), then puts back what
/// it changed or deleted (parents first), bytes from `tree`. A path under
/// a symlink is refused, never removed or written through.
fn restore(root: &Path, saved: &Saved, tree: &Path) -> Result<()> {
    // All checked first: a directory put back replaces what is there.
    let made_dir = |a: &Path| {
        a.to_str()
            .and_then(|a| saved.paths.get(a))
            .is_some_and(|e| e.as_ref().is_some_and(|e| e.kind == Kind::Dir))
    };
    for (p, e) in &saved.paths {
        match e {
            None => beneath::check_parent(root, Path::new(p))?,
            Some(_) => beneath::check_parent_unless(root, Path::new(p), &made_dir)?,
        }
    }
    for (p, _) in saved.paths.iter().rev().filter(|(_, e)| e.is_none()) {
        let full = inside(root, p)?;
        if let Some(md) = lstat(&full) {
            if md.is_dir() {
                fs::remove_dir_all(&full)
                    .with_context(|| format!("{}: cannot remove", full.display()))?;
            } else {
                fs::remove_file(&full)
                    .with_context(|| format!("{}: cannot remove", full.display()))?;
            }
        }
    }
    for (p, e) in &saved.paths {
        let Some(e) = e else { continue };
        if matches!(e.kind, Kind::Dir | Kind::File | Kind::Symlink) {
            place(root, e, Some(&tree.join(p)))?;
        }
    }
    crate::persist::sync_dir(root)
}
