//! The operations of an HTTP upgrade and of its rollback on one path:
//! removing it, or making it what a manifest entry says.

use crate::archive::beneath;
use crate::archive::manifest::{Entry, Kind};
use crate::archive::place::{self, Attrs, Content, Durability, How, Naming};
use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub(super) fn lstat(p: &Path) -> Option<fs::Metadata> {
    fs::symlink_metadata(p).ok()
}

/// `root/rel`, once every parent of `rel` is known to be a real directory
/// ([`beneath::check_parent`]): nothing is written or removed through a
/// symlink.
pub(super) fn inside(root: &Path, rel: &str) -> Result<PathBuf> {
    beneath::check_parent(root, Path::new(rel))?;
    Ok(root.join(rel))
}

/// Removes one path if it is there (a directory only when empty).
pub(super) fn remove(root: &Path, rel: &str, out: &mut dyn Write) -> Result<()> {
    let full = &inside(root, rel)?;
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
    let full = inside(root, &e.path)?;
    match (e.kind, bytes) {
        (Kind::File, None) => match lstat(&full) {
            // Same bytes as before: only the attributes change.
            Some(md) if md.is_file() => place::set(&full, &attrs(e)),
            _ => {
                writeln!(
                    out,
                    "warning: /{} is missing here; verify will show it",
                    e.path
                )?;
                Ok(())
            }
        },
        (Kind::Dir | Kind::File | Kind::Symlink, _) => place(root, e, bytes),
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

/// Places the directory, file or symlink `e` under `root` with its owner,
/// mode and mtime, a file's bytes copied from `bytes`, through
/// [`place::put`]: a file or link replaces what is there by a rename from
/// its temporary name beside it, the file synced first. An empty
/// directory in the way of a file or link is removed, a non-directory in
/// the way of a directory is replaced. A symlink among its parents is
/// refused ([`inside`]).
pub(super) fn place(root: &Path, e: &Entry, bytes: Option<&Path>) -> Result<()> {
    let full = &inside(root, &e.path)?;
    let how = How {
        attrs: attrs(e),
        naming: Naming::Beside,
        sync: Durability::Data,
    };
    match e.kind {
        Kind::Dir => {
            if lstat(full).is_some_and(|md| !md.is_dir()) {
                fs::remove_file(full)
                    .with_context(|| format!("{}: cannot remove", full.display()))?;
            }
            place::put(full, Content::Dir, &how)
        }
        Kind::File => {
            let bytes = bytes.with_context(|| format!("/{}: no bytes to put", e.path))?;
            remove_empty_dir(full)?;
            let mut src =
                File::open(bytes).with_context(|| format!("{}: cannot open", bytes.display()))?;
            let mut fill = |f: &mut File| -> Result<()> {
                io::copy(&mut src, f)
                    .with_context(|| format!("{}: cannot write", full.display()))?;
                Ok(())
            };
            place::put(full, Content::File(&mut fill), &how)
        }
        Kind::Symlink => {
            remove_empty_dir(full)?;
            let target = e.target.as_deref().unwrap_or("");
            place::put(full, Content::Symlink(Path::new(target)), &how)
        }
        k => bail!("/{}: {} entries are not placed", e.path, k.name()),
    }
}

/// The owner, mode and mtime a manifest entry gives.
fn attrs(e: &Entry) -> Attrs {
    Attrs {
        owner: Some((e.uid, e.gid)),
        mode: Some(e.mode),
        mtime: Some(filetime::FileTime::from_unix_time(e.mtime, 0)),
    }
}

/// Removes the directory at `full`, which must be empty, to make way for a
/// file or link.
fn remove_empty_dir(full: &Path) -> Result<()> {
    if lstat(full).is_some_and(|md| md.is_dir()) {
        fs::remove_dir(full)
            .with_context(|| format!("{}: cannot replace a non-empty directory", full.display()))?;
    }
    Ok(())
}
