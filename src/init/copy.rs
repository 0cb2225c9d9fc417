//! Copying local trees: a role's tree from a medium into `/chroot`
//! (through staging, like a download), the `/post_rsync` overlay over the
//! installed tree, and a read-only medium's configuration to a writable
//! place. Every entry is put in place by [`crate::archive::place`].

use crate::archive::beneath;
use crate::archive::place::{self, Attrs, Content, How};
use crate::archive::unpack;
use anyhow::{anyhow, Context, Result};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Copies a directory tree from a local medium into `dest` through
/// staging, like a download.
/// Returns the special files left out (see [`copy_tree`]).
pub fn copy_verified(src: &Path, dest: &Path) -> Result<Vec<PathBuf>> {
    unpack::through_staging(dest, |staging| copy_tree(src, staging))
}

/// Copies `src` over `dst` keeping modes (setuid included), numeric owners,
/// symlinks and hard links (within the copy) of what it creates;
/// directories already in `dst` keep their own mode and owner. A file or
/// symlink in `dst` is replaced, never written through: a symlink in the
/// installed tree must not send a file outside it. A directory of `src`
/// that is a symlink in `dst` is refused for the same reason, as is any
/// entry under a symlink of `dst` ([`beneath::check_parent`]); all of
/// `src` is checked before the first entry is copied.
/// Returns the special files (devices, fifos, sockets) left out.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<Vec<PathBuf>> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut skipped = Vec::new();
    check_tree(src, dst, dst)?;
    copy_dir(src, dst, &mut links, &mut skipped)?;
    Ok(skipped)
}

/// What a copy keeps of `meta`: owner and mode (the mtime is the copy's).
fn kept(meta: &fs::Metadata) -> How {
    How::staged(Attrs {
        mtime: None,
        ..Attrs::of(meta)
    })
}

/// Refuses the copy of `src` over `dst` (inside `top`) when a directory
/// of `src` is a symlink in `dst`, or an entry would go under one.
fn check_tree(src: &Path, dst: &Path, top: &Path) -> Result<()> {
    if let Ok(m) = dst.symlink_metadata() {
        if m.file_type().is_symlink() {
            return Err(through_link(dst, src));
        }
    }
    for entry in fs::read_dir(src).with_context(|| format!("cannot read {}", src.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", src.display()))?;
        let d = dst.join(entry.file_name());
        beneath::check_parent(top, d.strip_prefix(top).unwrap_or(&d))?;
        let is_dir = entry
            .file_type()
            .with_context(|| format!("cannot read {}", entry.path().display()))?
            .is_dir();
        if is_dir {
            check_tree(&entry.path(), &d, top)?;
        }
    }
    Ok(())
}

/// The refusal of a directory `src` of the copy that is a symlink `dst`
/// in the tree.
fn through_link(dst: &Path, src: &Path) -> anyhow::Error {
    anyhow!(
        "{} is a symlink in the tree; the copy of {} would go through it",
        dst.display(),
        src.display()
    )
}

fn copy_dir(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    skipped: &mut Vec<PathBuf>,
) -> Result<()> {
    let smeta = src
        .symlink_metadata()
        .with_context(|| format!("cannot read {}", src.display()))?;
    // A directory already in the target keeps its mode and owner (the
    // overlay's /root must not turn the tree's 0700 /root into 0755).
    let created = match dst.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() => return Err(through_link(dst, src)),
        Ok(m) if !m.is_dir() => {
            fs::remove_file(dst).with_context(|| format!("cannot replace {}", dst.display()))?;
            true
        }
        Ok(_) => false,
        Err(_) => true,
    };
    if created {
        fs::create_dir(dst).with_context(|| format!("cannot create {}", dst.display()))?;
    }
    let mut names: Vec<_> = fs::read_dir(src)
        .with_context(|| format!("cannot read {}", src.display()))?
        .collect::<io::Result<Vec<_>>>()
        .with_context(|| format!("cannot read {}", src.display()))?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let meta = s
            .symlink_metadata()
            .with_context(|| format!("cannot read {}", s.display()))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            copy_dir(&s, &d, links, skipped)?;
            continue;
        }
        if ft.is_symlink() || ft.is_file() {
            if let Ok(dm) = d.symlink_metadata() {
                if dm.is_dir() {
                    fs::remove_dir_all(&d)
                        .with_context(|| format!("cannot replace {}", d.display()))?;
                }
            }
        }
        if ft.is_symlink() {
            let target =
                fs::read_link(&s).with_context(|| format!("cannot read {}", s.display()))?;
            place::put(&d, Content::Symlink(&target), &kept(&meta))?;
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&key) {
                    let _ = fs::remove_file(&d);
                    fs::hard_link(first, &d)
                        .with_context(|| format!("cannot link {}", d.display()))?;
                    continue;
                }
                links.insert(key, d.clone());
            }
            let mut fill = |f: &mut fs::File| -> Result<()> {
                let mut from =
                    fs::File::open(&s).with_context(|| format!("cannot open {}", s.display()))?;
                io::copy(&mut from, f)
                    .with_context(|| format!("cannot copy {} to {}", s.display(), d.display()))?;
                Ok(())
            };
            place::put(&d, Content::File(&mut fill), &kept(&meta))?;
        } else {
            // Device nodes, fifos, sockets: a tree gets its /dev from
            // devtmpfs at boot; the caller says what was left out.
            skipped.push(s.clone());
        }
    }
    if created {
        place::set(dst, &kept(&smeta).attrs)?;
    }
    Ok(())
}
