//! `config(path, ...)`: files written into the post-install overlay.

use rhai::{Dynamic, Map};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Where the installed system's absolute `path` goes under `overlay`.
/// Returns the normalised path (`/etc//x/./y` → `/etc/x/y`) and the file
/// under the overlay. A relative path, a `..` component, a NUL byte, or a
/// path naming no file is refused with a message naming the path.
pub fn overlay_path(overlay: &Path, path: &str) -> Result<(PathBuf, PathBuf), String> {
    if path.contains('\0') {
        return Err(format!("config: {path:?} contains a NUL byte"));
    }
    if !path.starts_with('/') {
        return Err(format!(
            "config: '{path}' is not an absolute path (write it as on the installed system, e.g. /etc/hostname)"
        ));
    }
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                return Err(format!(
                    "config: '{path}' has a '..' component: files stay inside the overlay"
                ))
            }
            Component::Prefix(_) => {
                return Err(format!("config: '{path}' is not a Unix path"));
            }
        }
    }
    if parts.is_empty() {
        return Err(format!("config: '{path}' names no file"));
    }
    let mut rel = PathBuf::from("/");
    let mut full = overlay.to_path_buf();
    for p in parts {
        rel.push(p);
        full.push(p);
    }
    Ok((rel, full))
}

/// How `config` opens a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OverlayOptions {
    pub append: bool,
    pub perm: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl OverlayOptions {
    pub fn from_mode(mode: &str) -> Result<OverlayOptions, String> {
        Ok(OverlayOptions {
            append: parse_mode(mode)?,
            ..OverlayOptions::default()
        })
    }

    /// `#{mode: "a", perm: "0600", uid: 0, gid: 0}` (`fmod` is accepted for
    /// `perm`, the name of the original's keyword argument).
    pub fn from_map(map: &Map) -> Result<OverlayOptions, String> {
        let mut o = OverlayOptions::default();
        for (k, v) in map {
            match k.as_str() {
                "mode" => {
                    let mode = v
                        .clone()
                        .into_string()
                        .map_err(|t| format!("config: mode must be a string, not {t}"))?;
                    o.append = parse_mode(&mode)?;
                }
                "perm" | "fmod" => o.perm = Some(parse_perm(v)?),
                "uid" => o.uid = Some(parse_id("uid", v)?),
                "gid" => o.gid = Some(parse_id("gid", v)?),
                other => {
                    return Err(format!(
                        "config: unknown option '{other}' (known: mode, perm, uid, gid)"
                    ))
                }
            }
        }
        Ok(o)
    }
}

fn parse_mode(mode: &str) -> Result<bool, String> {
    match mode {
        "w" | "wb" => Ok(false),
        "a" | "ab" => Ok(true),
        _ => Err(format!("config: mode '{mode}' is not \"w\" or \"a\"")),
    }
}

/// An octal string (`"0600"`, `"600"`, `"0o600"`) or an integer mode
/// (`0o600`).
fn parse_perm(v: &Dynamic) -> Result<u32, String> {
    let n = if let Ok(i) = v.as_int() {
        u32::try_from(i).map_err(|_| format!("config: perm {i} is not a file mode"))?
    } else if let Ok(s) = v.clone().into_string() {
        let digits = s.trim();
        let digits = digits.strip_prefix("0o").unwrap_or(digits);
        u32::from_str_radix(digits, 8)
            .map_err(|_| format!("config: perm '{s}' is not an octal mode like \"0644\""))?
    } else {
        return Err(format!(
            "config: perm must be an octal string or an integer, not {}",
            v.type_name()
        ));
    };
    if n > 0o7777 {
        return Err(format!("config: perm {n:#o} is not a file mode"));
    }
    Ok(n)
}

fn parse_id(what: &str, v: &Dynamic) -> Result<u32, String> {
    let i = v
        .as_int()
        .map_err(|t| format!("config: {what} must be an integer, not {t}"))?;
    u32::try_from(i).map_err(|_| format!("config: {what} {i} is out of range"))
}

/// A file opened with `config()`; `write(text)` appends to it (the open
/// itself truncated it in mode `"w"`, as Python's `open` did).
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    /// The path on the installed system, e.g. `/etc/hostname`.
    pub rel: PathBuf,
    /// The file under the overlay.
    pub full: PathBuf,
}

/// Creates the overlay, the file's parents and the file (truncated in mode
/// `"w"`), then applies the owner and mode. No symbolic link is followed
/// below `overlay`, so nothing is written outside it.
pub(crate) fn open(
    overlay: &Path,
    path: &str,
    opts: &OverlayOptions,
) -> Result<ConfigFile, String> {
    let (rel, full) = overlay_path(overlay, path)?;
    let io =
        |what: &str, p: &Path, e: io::Error| format!("config: {path}: {what} {}: {e}", p.display());
    fs::create_dir_all(overlay).map_err(|e| io("cannot create", overlay, e))?;
    let mut dir = overlay.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    // The last component is the file itself.
    for c in &parents[1..parents.len().saturating_sub(1)] {
        dir.push(c);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "config: {path}: {} is a symbolic link: files stay inside the overlay",
                    dir.display()
                ))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "config: {path}: {} is not a directory",
                    dir.display()
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(io("cannot create", &dir, e)),
            },
            Err(e) => return Err(io("cannot inspect", &dir, e)),
        }
    }
    check_not_link(path, &full)?;
    let mut oo = OpenOptions::new();
    oo.create(true);
    if opts.append {
        oo.append(true);
    } else {
        oo.write(true).truncate(true);
    }
    oo.open(&full).map_err(|e| io("cannot open", &full, e))?;
    if opts.uid.is_some() || opts.gid.is_some() {
        std::os::unix::fs::chown(&full, opts.uid, opts.gid)
            .map_err(|e| io("cannot change the owner of", &full, e))?;
    }
    if let Some(perm) = opts.perm {
        fs::set_permissions(&full, fs::Permissions::from_mode(perm))
            .map_err(|e| io("cannot change the mode of", &full, e))?;
    }
    Ok(ConfigFile { rel, full })
}

fn check_not_link(path: &str, full: &Path) -> Result<(), String> {
    match fs::symlink_metadata(full) {
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "config: {path}: {} is a symbolic link: files stay inside the overlay",
            full.display()
        )),
        Ok(m) if m.is_dir() => Err(format!("config: {path}: {} is a directory", full.display())),
        _ => Ok(()),
    }
}

impl ConfigFile {
    /// Appends `text`.
    pub fn write(&self, text: &str) -> Result<(), String> {
        let path = self.rel.display().to_string();
        check_not_link(&path, &self.full)?;
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.full)
            .map_err(|e| format!("write: {path}: cannot open {}: {e}", self.full.display()))?;
        f.write_all(text.as_bytes())
            .map_err(|e| format!("write: {path}: {}: {e}", self.full.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        let o = Path::new("/r/post_rsync");
        let (rel, full) = overlay_path(o, "/etc//network/./interfaces").unwrap();
        assert_eq!(rel, Path::new("/etc/network/interfaces"));
        assert_eq!(full, Path::new("/r/post_rsync/etc/network/interfaces"));
        assert!(overlay_path(o, "/etc/../../x")
            .unwrap_err()
            .contains("'..'"));
        assert!(overlay_path(o, "etc/x")
            .unwrap_err()
            .contains("not an absolute"));
        assert!(overlay_path(o, "/").unwrap_err().contains("names no file"));
        assert!(overlay_path(o, "/./")
            .unwrap_err()
            .contains("names no file"));
    }

    #[test]
    fn perms() {
        assert_eq!(parse_perm(&"0600".into()).unwrap(), 0o600);
        assert_eq!(parse_perm(&"0o755".into()).unwrap(), 0o755);
        assert_eq!(parse_perm(&Dynamic::from_int(0o640)).unwrap(), 0o640);
        assert!(parse_perm(&"rw".into()).is_err());
        assert!(parse_perm(&Dynamic::from_int(0o17777)).is_err());
        assert!(parse_perm(&Dynamic::from_int(-1)).is_err());
    }
}
