//! Extended attributes (`user.*`, `security.*` such as file capabilities,
//! `trusted.*`, `system.*` ACLs), read and set on an entry itself, never
//! through a symlink: what the archive writer records as PAX
//! `SCHILY.xattr.*` records and the unpacker puts back.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{}: the path holds a NUL byte", path.display()))
}

/// Whether an extended attribute call failed because the filesystem has
/// none (then the entry has none either).
fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTSUP)
}

/// The extended attributes of `path` (of a symlink itself, not followed),
/// sorted by name: every namespace the caller may read (`user.*`,
/// `security.*` such as file capabilities, `trusted.*` as root,
/// `system.*` ACLs).
pub fn xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = c_path(path)?;
    let list = match read_sized(|buf: &mut [u8]| {
        // SAFETY: `c` is NUL-terminated; `buf` is writable for its length
        // (a null pointer with length 0 asks for the size).
        unsafe { libc::llistxattr(c.as_ptr(), buf_ptr(buf), buf.len()) }
    }) {
        Ok(l) => l,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("{}: cannot list extended attributes", path.display()))
        }
    };
    let mut out = Vec::new();
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).context("an attribute name holds a NUL byte")?;
        let value = read_sized(|buf: &mut [u8]| {
            // SAFETY: as above; `cname` is NUL-terminated.
            unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf_ptr(buf).cast(), buf.len()) }
        });
        match value {
            Ok(v) => out.push((name.to_vec(), v)),
            // Removed since it was listed.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "{}: cannot read the extended attribute {}",
                        path.display(),
                        String::from_utf8_lossy(name)
                    )
                })
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `lsetxattr(path, name, value)`.
pub fn set_xattr(path: &Path, name: &[u8], value: &[u8]) -> Result<()> {
    let what = || {
        format!(
            "{}: cannot set the extended attribute {}",
            path.display(),
            String::from_utf8_lossy(name)
        )
    };
    let c = c_path(path).with_context(what)?;
    let n = CString::new(name).with_context(what)?;
    // SAFETY: both strings are NUL-terminated; `value` is readable for its
    // length.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error()).with_context(what);
    }
    Ok(())
}

/// Gives `dst` every extended attribute of `src` (neither followed).
pub fn copy_xattrs(src: &Path, dst: &Path) -> Result<()> {
    for (name, value) in xattrs(src)? {
        set_xattr(dst, &name, &value)?;
    }
    Ok(())
}

fn buf_ptr(buf: &mut [u8]) -> *mut libc::c_char {
    if buf.is_empty() {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    }
}

/// Calls `f` first with an empty buffer for the size, then with a buffer
/// that large, again if the value grew in between.
fn read_sized(mut f: impl FnMut(&mut [u8]) -> libc::ssize_t) -> io::Result<Vec<u8>> {
    loop {
        let n = f(&mut []);
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; n];
        let m = f(&mut buf);
        match usize::try_from(m) {
            Ok(m) => {
                buf.truncate(m);
                return Ok(buf);
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ERANGE) {
                    return Err(e);
                }
            }
        }
    }
}
