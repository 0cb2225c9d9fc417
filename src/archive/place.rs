//! Putting one entry of a tree in place, with its owner, mode and mtime.
//!
//! Every writer of a tree (the unpacker, the local tree copy, the archive
//! writer, the HTTP download) goes through [`put`] for what it creates and
//! [`set`] for the attributes of what is already there, so the rules are
//! written once:
//!
//! - **Never through a symlink.** An existing file or symlink at the
//!   destination is replaced, never written through; the mode of a symlink
//!   is never set (`chmod` would follow it); owner and mtime are set on the
//!   link itself (`lchown`, `lutimes`).
//! - **A directory is never replaced** by a file, a symlink or a device:
//!   that fails. A directory already there is kept (it gets the attributes).
//! - **Owner first, then mode, then mtime**: `chown` clears the setuid and
//!   setgid bits, so the mode comes after it; owners are numeric.
//! - **Temporary names.** Two conventions, both hidden from a reader of the
//!   finished tree:
//!   - a single file or link written with [`Naming::Beside`] is first
//!     created as `.NAME.edeploy-new` ([`temporary_name`]) beside its
//!     destination, then renamed over it: a reader sees the old entry or
//!     the whole new one, never half of it. A stale `.NAME.edeploy-new`
//!     left by a crash is removed first;
//!   - a whole tree is unpacked or copied into the staging directory
//!     [`STAGING`] (`.edeploy-partial`) inside its target, on the same
//!     filesystem, and moved into place by renames once complete (see
//!     [`super::unpack`]). Entries written inside the staging directory use
//!     [`Naming::InPlace`]: the staging directory is their temporary name.
//!
//!   (The server's crash-safe files keep their own spare files,
//!   `.NAME.edeploy-tmp`, owned by [`crate::persist`].)
//! - **Durability** ([`Durability`]): nothing is synced by default (a tree
//!   is synced once, at the end of the install); [`Durability::Data`]
//!   fsyncs a file's data before it gets its name, and
//!   [`Durability::DataAndDir`] also fsyncs the directory after the rename,
//!   so the new name survives a power cut.

use anyhow::{bail, Context, Result};
use filetime::FileTime;
use std::ffi::{CString, OsString};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The staging directory a whole tree goes to, inside its target, before
/// its entries are moved into place.
pub const STAGING: &str = ".edeploy-partial";

/// The suffix of a file's temporary name: `.NAME.edeploy-new`.
pub const NEW_SUFFIX: &str = ".edeploy-new";

/// Whether a file name is one of the format's own: the staging directory
/// [`STAGING`] or a temporary name `.NAME.edeploy-new`. An archive holding
/// one would collide with the unpack's own files.
pub fn is_reserved(name: &std::ffi::OsStr) -> bool {
    let b = name.as_bytes();
    b == STAGING.as_bytes()
        || (b.len() > 1 + NEW_SUFFIX.len() && b[0] == b'.' && b.ends_with(NEW_SUFFIX.as_bytes()))
}

/// Refuses a path (relative to its tree) with a component [`is_reserved`].
pub fn check_reserved(path: &Path) -> Result<()> {
    if let Some(c) = path.iter().find(|c| is_reserved(c)) {
        bail!(
            "/{}: {} is a name edeploy reserves for its own temporary files",
            path.display(),
            c.to_string_lossy()
        );
    }
    Ok(())
}

/// `.NAME.edeploy-new` beside `path`.
pub fn temporary_name(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(NEW_SUFFIX);
    Ok(path.with_file_name(tmp))
}

/// The attributes an entry gets; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Numeric user and group.
    pub owner: Option<(u32, u32)>,
    /// Permission bits, setuid, setgid and sticky included (never set on a
    /// symlink).
    pub mode: Option<u32>,
    /// Modification time (the access time gets the same).
    pub mtime: Option<FileTime>,
}

impl Attrs {
    /// The owner, mode and mtime of `meta`.
    pub fn of(meta: &fs::Metadata) -> Attrs {
        Attrs {
            owner: Some((meta.uid(), meta.gid())),
            mode: Some(meta.mode() & 0o7777),
            mtime: Some(FileTime::from_last_modification_time(meta)),
        }
    }

    /// A time in seconds since 1970 as tar headers hold it.
    pub fn seconds(secs: u64) -> FileTime {
        FileTime::from_unix_time(i64::try_from(secs).unwrap_or(i64::MAX), 0)
    }
}

/// Where a file or symlink is created before it has its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// At its name: what is there (not a directory) is removed first. For
    /// entries inside a staging directory.
    InPlace,
    /// As `.NAME.edeploy-new` beside it, renamed over it when complete
    /// (directories and devices are always made in place).
    Beside,
}

/// What is synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Nothing,
    /// A file's data, before it gets its name.
    Data,
    /// The data, then the directory holding the new name.
    DataAndDir,
}

/// How [`put`] places an entry.
#[derive(Debug, Clone, Copy)]
pub struct How {
    pub attrs: Attrs,
    pub naming: Naming,
    pub sync: Durability,
}

impl How {
    /// In place, nothing synced: entries inside a staging directory.
    pub fn staged(attrs: Attrs) -> How {
        How {
            attrs,
            naming: Naming::InPlace,
            sync: Durability::Nothing,
        }
    }

    /// Beside, renamed, data and directory synced: a single file that must
    /// be whole or absent after a crash.
    pub fn durable(attrs: Attrs) -> How {
        How {
            attrs,
            naming: Naming::Beside,
            sync: Durability::DataAndDir,
        }
    }
}

/// The content of the entry [`put`] creates.
pub enum Content<'a> {
    /// A regular file whose bytes the function writes into the new file.
    File(&'a mut dyn FnMut(&mut File) -> Result<()>),
    /// A symlink to this target.
    Symlink(&'a Path),
    /// A directory (one already there is kept).
    Dir,
    /// A character or block device or a fifo: the file type
    /// (`S_IFCHR`, `S_IFBLK`, `S_IFIFO`) and the device number.
    Special {
        format: libc::mode_t,
        rdev: libc::dev_t,
    },
}

/// Creates `dst` with `content` and gives it `how.attrs` (see the module
/// doc for the rules).
pub fn put(dst: &Path, content: Content, how: &How) -> Result<()> {
    match content {
        Content::Dir => {
            make_dir(dst)?;
            set_on(dst, &how.attrs, false)
        }
        Content::Special { format, rdev } => {
            make_way(dst)?;
            mknod(dst, format, how.attrs.mode.unwrap_or(0o600), rdev)?;
            set_on(dst, &how.attrs, false)
        }
        Content::File(fill) => named(dst, how, |at| {
            let mut f = create_file(at)?;
            fill(&mut f)?;
            set_file(&f, at, &how.attrs)?;
            if how.sync != Durability::Nothing {
                f.sync_all()
                    .with_context(|| format!("cannot write {}", at.display()))?;
            }
            Ok(())
        }),
        Content::Symlink(target) => named(dst, how, |at| {
            let made = match std::os::unix::fs::symlink(target, at) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    fs::remove_file(at).and_then(|()| std::os::unix::fs::symlink(target, at))
                }
                r => r,
            };
            made.with_context(|| format!("cannot create {}", at.display()))?;
            set_on(at, &how.attrs, true)
        }),
    }
}

/// Gives what is at `path` (not following a symlink) the attributes
/// `attrs`.
pub fn set(path: &Path, attrs: &Attrs) -> Result<()> {
    let link = attrs.mode.is_some()
        && path
            .symlink_metadata()
            .with_context(|| format!("cannot read {}", path.display()))?
            .file_type()
            .is_symlink();
    set_on(path, attrs, link)
}

/// Runs `make` at the name `how.naming` says, then renames and syncs.
fn named(dst: &Path, how: &How, make: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    match how.naming {
        Naming::InPlace => make(dst),
        Naming::Beside => {
            let tmp = temporary_name(dst)?;
            match fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("cannot remove {}", tmp.display()))
                }
                _ => {}
            }
            let done = make(&tmp).and_then(|()| {
                fs::rename(&tmp, dst)
                    .with_context(|| format!("cannot move {} to {}", tmp.display(), dst.display()))
            });
            if done.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            done?;
            if how.sync == Durability::DataAndDir {
                let dir = match dst.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .with_context(|| format!("cannot sync the directory {}", dir.display()))?;
            }
            Ok(())
        }
    }
}

/// A new inode at `path`: a file or symlink there is removed first, a
/// directory is an error.
fn create_file(path: &Path) -> Result<File> {
    let open = || {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::remove_file(path) {
            Ok(()) => open(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => open(),
            Err(e) => Err(e),
        },
        r => r,
    }
    .with_context(|| format!("cannot create {}", path.display()))
}

/// A directory at `path`: one there is kept, anything else is an error.
fn make_dir(path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                Err(e).with_context(|| format!("cannot create {}", path.display()))
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Removes a file, symlink or device at `path`; a directory is an error.
fn make_way(path: &Path) -> Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => bail!("{} is a directory", path.display()),
        Ok(_) => {
            fs::remove_file(path).with_context(|| format!("cannot replace {}", path.display()))
        }
        Err(_) => Ok(()),
    }
}

fn mknod(path: &Path, format: libc::mode_t, mode: u32, rdev: libc::dev_t) -> Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{}: the path holds a NUL byte", path.display()))?;
    // SAFETY: `c` is a NUL-terminated path.
    if unsafe { libc::mknod(c.as_ptr(), format | (mode & 0o7777) as libc::mode_t, rdev) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("cannot create {}", path.display()));
    }
    Ok(())
}

/// Owner, mode (unless `link`), mtime of the entry at `path`.
fn set_on(path: &Path, attrs: &Attrs, link: bool) -> Result<()> {
    if let Some((uid, gid)) = attrs.owner {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot chown {}", path.display()))?;
    }
    if let (Some(mode), false) = (attrs.mode, link) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
            .with_context(|| format!("cannot chmod {}", path.display()))?;
    }
    if let Some(t) = attrs.mtime {
        filetime::set_symlink_file_times(path, t, t)
            .with_context(|| format!("{}: cannot set the mtime", path.display()))?;
    }
    Ok(())
}

/// The same through an open file.
fn set_file(f: &File, path: &Path, attrs: &Attrs) -> Result<()> {
    if let Some((uid, gid)) = attrs.owner {
        std::os::unix::fs::fchown(f, Some(uid), Some(gid))
            .with_context(|| format!("cannot chown {}", path.display()))?;
    }
    if let Some(mode) = attrs.mode {
        f.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
            .with_context(|| format!("cannot chmod {}", path.display()))?;
    }
    if let Some(t) = attrs.mtime {
        filetime::set_file_handle_times(f, Some(t), Some(t))
            .with_context(|| format!("{}: cannot set the mtime", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(data: &'static [u8]) -> impl FnMut(&mut File) -> Result<()> {
        move |f: &mut File| Ok(f.write_all(data)?)
    }

    #[test]
    fn a_file_beside_replaces_a_symlink_without_writing_through() {
        let tmp = tempfile::tempdir().expect("tmp");
        let outside = tmp.path().join("outside");
        fs::write(&outside, b"keep").expect("write");
        let dst = tmp.path().join("f");
        for naming in [Naming::Beside, Naming::InPlace] {
            let _ = fs::remove_file(&dst);
            std::os::unix::fs::symlink(&outside, &dst).expect("link");
            let how = How {
                attrs: Attrs {
                    mode: Some(0o640),
                    mtime: Some(FileTime::from_unix_time(5, 0)),
                    ..Attrs::default()
                },
                naming,
                sync: Durability::DataAndDir,
            };
            put(&dst, Content::File(&mut write(b"new")), &how).expect("put");
            assert_eq!(fs::read(&outside).expect("read"), b"keep");
            assert_eq!(fs::read(&dst).expect("read"), b"new");
            let m = dst.symlink_metadata().expect("stat");
            assert_eq!((m.mode() & 0o7777, m.mtime()), (0o640, 5));
            assert!(!temporary_name(&dst).expect("name").exists());
        }
    }

    #[test]
    fn a_directory_is_never_replaced() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dst = tmp.path().join("d");
        fs::create_dir(&dst).expect("mkdir");
        let how = How::staged(Attrs::default());
        assert!(put(&dst, Content::File(&mut write(b"x")), &how).is_err());
        assert!(put(&dst, Content::Symlink(Path::new("x")), &how).is_err());
        assert!(put(
            &dst,
            Content::Special {
                format: libc::S_IFIFO,
                rdev: 0
            },
            &how
        )
        .is_err());
        put(&dst, Content::Dir, &how).expect("kept");
        assert!(dst.is_dir());
    }

    #[test]
    fn the_format_s_own_names_are_reserved() {
        for bad in [
            ".edeploy-partial",
            "x/.edeploy-partial/y",
            "etc/.motd.edeploy-new",
        ] {
            let err = check_reserved(Path::new(bad)).expect_err(bad);
            assert!(err.to_string().starts_with(&format!("/{bad}: ")), "{err}");
        }
        for ok in [
            "etc/motd",
            "x/edeploy-partial",
            ".edeploy-new",
            "a.edeploy-new",
        ] {
            check_reserved(Path::new(ok)).expect(ok);
        }
    }

    #[test]
    fn the_temporary_name_is_hidden_beside() {
        assert_eq!(
            temporary_name(Path::new("/a/b.delta")).expect("name"),
            Path::new("/a/.b.delta.edeploy-new")
        );
        assert!(temporary_name(Path::new("/")).is_err());
    }
}
