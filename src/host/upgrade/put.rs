//! The operations of an HTTP upgrade and of its rollback on one path:
//! removing it, or making it what a manifest entry says.

use crate::archive::manifest::{Entry, Kind};
use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub(super) fn lstat(p: &Path) -> Option<fs::Metadata> {
    fs::symlink_metadata(p).ok()
}

/// Removes one path if it is there (a directory only when empty).
pub(super) fn remove(full: &Path, out: &mut dyn Write) -> Result<()> {
    let Some(md) = lstat(full) else {
        return Ok(());
    };
    if md.is_dir() {
        if let Err(e) = fs::remove_dir(full) {
            // rsync leaves a directory holding excluded files too.
            writeln!(out, "note: {} is kept: {e}", full.display())?;
        }
        Ok(())
    } else {
        fs::remove_file(full).with_context(|| format!("{}: cannot remove", full.display()))
    }
}

/// Makes one path what `e` says, a file's bytes taken from `bytes` when
/// they changed.
pub(super) fn put(root: &Path, e: &Entry, bytes: Option<&Path>, out: &mut dyn Write) -> Result<()> {
    let full = root.join(&e.path);
    match (e.kind, bytes) {
        (Kind::File, None) => match lstat(&full) {
            // Same bytes as before: only the attributes change.
            Some(md) if md.is_file() => set_attrs(&full, e),
            _ => {
                writeln!(
                    out,
                    "warning: /{} is missing here; verify will show it",
                    e.path
                )?;
                Ok(())
            }
        },
        (Kind::Dir | Kind::File | Kind::Symlink, _) => place(&full, e, bytes),
        _ => {
            writeln!(
                out,
                "warning: /{}: {} entries are not created by deltas",
                e.path,
                e.kind.name()
            )?;
            Ok(())
        }
    }
}

/// Places the directory, file or symlink `e` at `full` with its owner,
/// mode and mtime, a file's bytes copied from `bytes`. A file or link
/// replaces what is there by a rename from a temporary name beside it,
/// the file synced first; an empty directory in its way is removed, a
/// non-directory in the way of a directory is replaced.
pub(super) fn place(full: &Path, e: &Entry, bytes: Option<&Path>) -> Result<()> {
    match e.kind {
        Kind::Dir => {
            ensure_dir(full)?;
            set_attrs(full, e)
        }
        Kind::File => {
            let bytes = bytes.with_context(|| format!("/{}: no bytes to put", e.path))?;
            let tmp = prepare_replace(full)?;
            fs::copy(bytes, &tmp).with_context(|| format!("{}: cannot write", tmp.display()))?;
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("{}: cannot sync", tmp.display()))?;
            set_attrs(&tmp, e)?;
            fs::rename(&tmp, full).with_context(|| format!("{}: cannot replace", full.display()))
        }
        Kind::Symlink => {
            let tmp = prepare_replace(full)?;
            let target = e.target.as_deref().unwrap_or("");
            std::os::unix::fs::symlink(target, &tmp)
                .with_context(|| format!("{}: cannot create the link", tmp.display()))?;
            set_attrs(&tmp, e)?;
            fs::rename(&tmp, full).with_context(|| format!("{}: cannot replace", full.display()))
        }
        k => bail!("/{}: {} entries are not placed", e.path, k.name()),
    }
}

/// A temporary name beside `full`.
fn tmp_beside(full: &Path) -> PathBuf {
    let name = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    full.with_file_name(format!(".{name}.edeploy-new"))
}

/// Sets owner, mode and mtime as `e` says (owner first: chown clears the
/// setuid bits).
fn set_attrs(full: &Path, e: &Entry) -> Result<()> {
    std::os::unix::fs::lchown(full, Some(e.uid), Some(e.gid))
        .with_context(|| format!("{}: cannot chown", full.display()))?;
    let t = filetime::FileTime::from_unix_time(e.mtime, 0);
    if e.kind == Kind::Symlink {
        filetime::set_symlink_file_times(full, t, t)
            .with_context(|| format!("{}: cannot set times", full.display()))?;
        return Ok(());
    }
    fs::set_permissions(full, fs::Permissions::from_mode(e.mode))
        .with_context(|| format!("{}: cannot chmod", full.display()))?;
    filetime::set_file_times(full, t, t)
        .with_context(|| format!("{}: cannot set times", full.display()))
}

/// Makes `full` a directory, removing a non-directory in the way.
fn ensure_dir(full: &Path) -> Result<()> {
    match lstat(full) {
        Some(md) if md.is_dir() => Ok(()),
        Some(_) => {
            fs::remove_file(full).with_context(|| format!("{}: cannot remove", full.display()))?;
            fs::create_dir(full).with_context(|| format!("{}: cannot create", full.display()))
        }
        None => fs::create_dir(full).with_context(|| format!("{}: cannot create", full.display())),
    }
}

/// Makes way for a file or link at `full` (an empty directory there is
/// removed; a non-empty one is an error) and returns a fresh temporary
/// name beside it, to be renamed over `full`.
fn prepare_replace(full: &Path) -> Result<PathBuf> {
    if let Some(md) = lstat(full) {
        if md.is_dir() {
            fs::remove_dir(full).with_context(|| {
                format!("{}: cannot replace a non-empty directory", full.display())
            })?;
        }
    }
    let tmp = tmp_beside(full);
    let _ = fs::remove_file(&tmp);
    Ok(tmp)
}
