//! Never through a symlink: the check every writer of a tree runs before
//! it writes or removes a path inside a root.
//!
//! An archive may make a symlink (`x → /outside`) and then name a path
//! under it (`x/pwn`); a tree may already hold one (`etc/foo → /outside`)
//! under a path an archive or an overlay writes. Following either would
//! write outside the root, so every parent directory of a path written or
//! removed must be a real directory under the root:
//!
//! - [`check_parent`] opens the parent relative to the root with Linux
//!   `openat2(2)` and `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (kernel ≥ 5.6),
//!   which fails on any symlink or `..` on the way; on a refusal, or where
//!   the kernel lacks `openat2` (or a sandbox denies it), the components
//!   are walked with `lstat` from the root to name the culprit;
//! - [`check_parent_unless`] is the same walk where some components are
//!   about to be replaced by the operation itself (an upgrade that turns a
//!   symlink into a directory before it fills it).
//!
//! The final component is not checked: it is what the caller replaces,
//! and [`super::place`] removes a symlink there, never writes through it.
//! Missing components are fine (the caller creates them, as real
//! directories). The root itself may be a symlink: it is the caller's.
//!
//! The check runs right before each write; it guards against what an
//! archive or a tree holds, not against another process swapping
//! directories under the root at the same instant.

use anyhow::{anyhow, Context, Result};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The refusal of `path` (shown with a leading `/`) because `link` (one of
/// its parent components, relative to the root) is a symlink.
pub fn through_symlink(path: &Path, link: &Path) -> anyhow::Error {
    anyhow!(
        "/{}: {} is a symlink; an archive may not write through it",
        path.display(),
        link.display()
    )
}

/// Refuses `rel` (a path relative to `root`) unless each of its parent
/// components is a real directory under `root` or is missing. Errors name
/// the path and the component: `/x/pwn: x is a symlink; an archive may not
/// write through it`.
pub fn check_parent(root: &Path, rel: &Path) -> Result<()> {
    let rel = plain(rel)?;
    let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    match open_beneath(root, parent) {
        Ok(_) => Ok(()),
        // A missing component: nothing under it exists, and what the
        // caller creates there is a real directory.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        // Refused, or no openat2 here: the walk names why.
        Err(_) => check_parent_unless(root, &rel, &|_| false),
    }
}

/// The walk of [`check_parent`] by `lstat`, where a component for which
/// `replaced` holds may be anything (the operation replaces it by a real
/// directory before it writes below it; nothing deeper is then looked at,
/// as it will be new).
pub fn check_parent_unless(
    root: &Path,
    rel: &Path,
    replaced: &dyn Fn(&Path) -> bool,
) -> Result<()> {
    let rel = plain(rel)?;
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    let mut cur = PathBuf::new();
    for c in parent.components() {
        cur.push(c);
        let full = root.join(&cur);
        let md = match full.symlink_metadata() {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot stat", full.display())),
        };
        if md.is_dir() {
            continue;
        }
        if replaced(&cur) {
            return Ok(());
        }
        if md.file_type().is_symlink() {
            return Err(through_symlink(&rel, &cur));
        }
        anyhow::bail!("/{}: {} is not a directory", rel.display(), cur.display());
    }
    Ok(())
}

/// `rel` with only normal components; an absolute path or `..` is
/// refused.
fn plain(rel: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => anyhow::bail!("{}: not a plain path inside the tree", rel.display()),
        }
    }
    Ok(out)
}

/// Opens the directory `rel` under `root` (`O_PATH`) with `openat2(2)`,
/// following no symlink and never leaving `root`.
fn open_beneath(root: &Path, rel: &Path) -> io::Result<OwnedFd> {
    let dir = File::open(root)?;
    let c = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // `open_how` is non-exhaustive in `libc`: zeroed, then its fields set.
    // SAFETY: an all-zero `open_how` is valid (no flags, no mode).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
    // SAFETY: a valid directory descriptor, a NUL-terminated path and a
    // pointer to `how` with its size, as openat2(2) takes them.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` was just returned by the kernel and is ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_symlinked_parent_is_named_and_the_last_component_is_free() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::os::unix::fs::symlink(tmp.path(), root.join("a/x")).expect("link");
        std::os::unix::fs::symlink("b", root.join("a/inside")).expect("link");
        fs::write(root.join("f"), "").expect("file");
        for ok in ["top", "a/b/c", "a/x", "missing/y/z", "a/b/missing/z"] {
            check_parent(&root, Path::new(ok)).expect(ok);
        }
        let err = check_parent(&root, Path::new("a/x/pwn")).expect_err("link");
        assert_eq!(
            err.to_string(),
            "/a/x/pwn: a/x is a symlink; an archive may not write through it"
        );
        // Even a link staying inside the root is not followed.
        let err = check_parent(&root, Path::new("a/inside/c")).expect_err("inside");
        assert!(err.to_string().contains("a/inside is a symlink"), "{err}");
        let err = check_parent(&root, Path::new("f/g")).expect_err("file");
        assert_eq!(err.to_string(), "/f/g: f is not a directory");
        assert!(check_parent(&root, Path::new("../a/b")).is_err());
        assert!(check_parent(&root, Path::new("/a/b")).is_err());
        // A component the operation replaces first is not looked through.
        check_parent_unless(&root, Path::new("a/x/pwn"), &|p| p == Path::new("a/x"))
            .expect("replaced");
    }
}
