//! Manifests: what a role version's tree holds, file by file.
//!
//! The packer writes one manifest per ROLE-VERS. It is text, one JSON
//! object a line, so `grep`, `diff` and `jq` work on it:
//!
//! ```text
//! {"edeploy-manifest":1,"role":"base","version":"V2"}
//! {"path":"etc","type":"d","mode":"0755","uid":0,"gid":0,"size":0,"mtime":1700000000}
//! {"path":"etc/hosts","type":"f","mode":"0644","uid":0,"gid":0,"size":9,"mtime":1700000000,"sha256":"…"}
//! {"path":"lib/libx.so","type":"l","mode":"0777","uid":0,"gid":0,"size":9,"mtime":1700000000,"target":"libx.so.2"}
//! {"entries":3,"sha256":"…"}
//! ```
//!
//! Entries are sorted by path (relative to the tree's root, no leading
//! `/`; the root itself is not listed). `type` is `f` file, `d` directory,
//! `l` symlink, `c`/`b` device (with `rdev`), `p` fifo, `s` socket; `mode`
//! holds the permission bits in octal (with setuid, setgid, sticky);
//! `mtime` is in seconds. The last line counts the entries and holds the
//! SHA-256 of every byte before it, so a truncated or edited manifest is
//! refused. The SHA-256 of the whole file ([`Manifest::digest`]) names a
//! manifest in delta archives.
//!
//! A manifest whose first line says `"xattrs":true` lists every entry's
//! extended attributes (ACLs, file capabilities, `user.*`…), name to
//! value in hex, and an entry without an `xattrs` field has none:
//!
//! ```text
//! {"edeploy-manifest":1,"role":"base","version":"V2","xattrs":true}
//! {"path":"var/log/journal","type":"d",…,"xattrs":{"system.posix_acl_access":"0200…"}}
//! ```
//!
//! `edeploy pack` writes them so; the installer then checks every entry's
//! attributes against the signed manifest as it checks the rest. A
//! manifest without that field (written before it existed) says nothing of
//! them. Readers that predate the field ignore it.
//!
//! Hashing runs on one worker thread per core, each reading through its
//! own fixed buffer, so memory stays bounded whatever the file sizes.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a scan leaves out: the host's exclude rules, or nothing
/// ([`KeepAll`]).
pub trait Skip {
    /// Whether `path` (relative to the tree, a directory when `is_dir`) is
    /// left out, with everything below it.
    fn excludes(&self, path: &str, is_dir: bool) -> bool;
}

/// A scan that leaves nothing out.
pub struct KeepAll;

impl Skip for KeepAll {
    fn excludes(&self, _: &str, _: bool) -> bool {
        false
    }
}

/// The format's version, in the first line.
pub const FORMAT: u32 = 1;

/// Bytes each hashing worker reads at a time.
pub const HASH_BUFFER: usize = 256 * 1024;

/// The kind of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "f")]
    File,
    #[serde(rename = "d")]
    Dir,
    #[serde(rename = "l")]
    Symlink,
    #[serde(rename = "c")]
    Char,
    #[serde(rename = "b")]
    Block,
    #[serde(rename = "p")]
    Fifo,
    #[serde(rename = "s")]
    Socket,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Char => "character device",
            Kind::Block => "block device",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

/// One path of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(with = "octal")]
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u64>,
    /// Extended attributes, name to value in hex (only in a manifest that
    /// lists them: [`Manifest::xattrs`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
}

mod octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = String::deserialize(d)?;
        u32::from_str_radix(&s, 8).map_err(serde::de::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    #[serde(rename = "edeploy-manifest")]
    format: u32,
    role: String,
    version: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    xattrs: bool,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    entries: usize,
    sha256: String,
}

/// A role version's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub role: String,
    pub version: String,
    /// Sorted by path.
    pub entries: Vec<Entry>,
    /// Whether every entry lists its extended attributes (an entry without
    /// any then has none); a manifest written before they were listed
    /// says nothing of them.
    pub xattrs: bool,
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl Manifest {
    /// The manifest's text (see the module's documentation).
    pub fn to_text(&self) -> Result<String> {
        let mut body = serde_json::to_string(&Header {
            format: FORMAT,
            role: self.role.clone(),
            version: self.version.clone(),
            xattrs: self.xattrs,
        })?;
        body.push('\n');
        for e in &self.entries {
            body.push_str(&serde_json::to_string(e)?);
            body.push('\n');
        }
        let trailer = Trailer {
            entries: self.entries.len(),
            sha256: hex(&Sha256::digest(body.as_bytes())),
        };
        body.push_str(&serde_json::to_string(&trailer)?);
        body.push('\n');
        Ok(body)
    }

    /// Reads a manifest's text; `name` (a file name) is used in errors.
    pub fn parse(text: &str, name: &str) -> Result<Manifest> {
        let body_end = text
            .trim_end_matches('\n')
            .rfind('\n')
            .map(|i| i + 1)
            .with_context(|| format!("{name}: not an eDeploy manifest (too short)"))?;
        let (body, last) = text.split_at(body_end);
        let trailer: Trailer = serde_json::from_str(last.trim_end())
            .with_context(|| format!("{name}: no closing line: the manifest is truncated"))?;
        if hex(&Sha256::digest(body.as_bytes())) != trailer.sha256 {
            bail!("{name}: the manifest's checksum does not match its contents");
        }
        let mut lines = body.lines();
        let header: Header = serde_json::from_str(lines.next().unwrap_or(""))
            .with_context(|| format!("{name}: line 1: not an eDeploy manifest header"))?;
        if header.format != FORMAT {
            bail!(
                "{name}: manifest format {} (this edeploy reads {FORMAT})",
                header.format
            );
        }
        let mut entries = Vec::with_capacity(trailer.entries);
        for (i, line) in lines.enumerate() {
            let e: Entry = serde_json::from_str(line)
                .with_context(|| format!("{name}: line {}: bad entry", i + 2))?;
            check_path(&e.path).with_context(|| format!("{name}: line {}", i + 2))?;
            entries.push(e);
        }
        if entries.len() != trailer.entries {
            bail!(
                "{name}: {} entries, the closing line says {}",
                entries.len(),
                trailer.entries
            );
        }
        if entries.windows(2).any(|w| w[0].path >= w[1].path) {
            bail!("{name}: entries are not sorted by path");
        }
        Ok(Manifest {
            role: header.role,
            version: header.version,
            entries,
            xattrs: header.xattrs,
        })
    }

    /// Reads a manifest file.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        Manifest::parse(&text, &path.display().to_string())
    }

    /// Writes it atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
        }
        crate::persist::write_atomic(path, self.to_text()?.as_bytes())
    }

    /// The SHA-256 of the whole text: the manifest's identity.
    pub fn digest(&self) -> Result<String> {
        Ok(hex(&Sha256::digest(self.to_text()?.as_bytes())))
    }

    /// The entry for `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Scans and hashes the tree at `tree`, skipping what `skip` excludes,
    /// with every entry's extended attributes.
    pub fn build(tree: &Path, role: &str, version: &str, skip: &dyn Skip) -> Result<Manifest> {
        let mut entries = scan(tree, skip, false)?;
        hash_entries(tree, &mut entries, workers())?;
        for e in &mut entries {
            e.xattrs = xattrs_of(&tree.join(&e.path))?;
        }
        Ok(Manifest {
            role: role.to_string(),
            version: version.to_string(),
            entries,
            xattrs: true,
        })
    }
}

/// Refuses a path that could leave the tree it is joined to: absolute,
/// empty, or with `.`, `..` or empty components.
pub fn check_path(path: &str) -> Result<()> {
    if path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        bail!("{path:?}: not a plain path inside the tree");
    }
    Ok(())
}

/// How many hashing workers: one per core, or `EDEPLOY_HASH_WORKERS`.
pub fn workers() -> usize {
    std::env::var("EDEPLOY_HASH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The entry for one path, from its `lstat`, without a hash.
pub fn entry_of(full: &Path, rel: String) -> Result<Entry> {
    let md = std::fs::symlink_metadata(full)
        .with_context(|| format!("{}: cannot stat", full.display()))?;
    let ft = md.file_type();
    let kind = if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_char_device() {
        Kind::Char
    } else if ft.is_block_device() {
        Kind::Block
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    };
    let target = if kind == Kind::Symlink {
        let t = std::fs::read_link(full)
            .with_context(|| format!("{}: cannot read the link", full.display()))?;
        Some(t.to_string_lossy().into_owned())
    } else {
        None
    };
    Ok(Entry {
        path: rel,
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: if kind == Kind::Dir { 0 } else { md.len() },
        mtime: md.mtime(),
        sha256: None,
        target,
        rdev: matches!(kind, Kind::Char | Kind::Block).then(|| md.rdev()),
        xattrs: BTreeMap::new(),
    })
}

/// The extended attributes of `full` (not followed) as a manifest lists
/// them; a name that is not UTF-8 cannot be listed and is an error.
pub fn xattrs_of(full: &Path) -> Result<BTreeMap<String, String>> {
    super::xattr::xattrs(full)?
        .into_iter()
        .map(|(name, value)| match String::from_utf8(name) {
            Ok(n) => Ok((n, hex(&value))),
            Err(e) => bail!(
                "{}: the extended attribute {:?} has a name a manifest cannot hold (not UTF-8)",
                full.display(),
                String::from_utf8_lossy(e.as_bytes())
            ),
        })
        .collect()
}

/// Lists the tree at `tree` (not following symlinks, not descending into
/// excluded directories), sorted by path, without hashes. Names that are
/// not UTF-8 are an error, or, with `lossy`, kept with replacement
/// characters (verify reports them rather than stopping).
pub fn scan(tree: &Path, skip: &dyn Skip, lossy: bool) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let walker = walkdir::WalkDir::new(tree)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| match e.path().strip_prefix(tree) {
            Ok(rel) => !skip.excludes(&rel.to_string_lossy(), e.file_type().is_dir()),
            Err(_) => true,
        });
    for item in walker {
        let item = item.with_context(|| format!("{}: cannot walk the tree", tree.display()))?;
        let rel = item
            .path()
            .strip_prefix(tree)
            .with_context(|| format!("{}: outside the tree", item.path().display()))?;
        let rel = match rel.to_str() {
            Some(s) => s.to_string(),
            None if lossy => rel.to_string_lossy().into_owned(),
            None => bail!("{}: the name is not UTF-8", item.path().display()),
        };
        entries.push(entry_of(item.path(), rel)?);
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// The SHA-256 of a file, read through `buf`.
pub fn sha256_file(path: &Path, buf: &mut [u8]) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Hashes the files among `entries` (paths relative to `tree`) on
/// `workers` threads and stores the hashes in the entries.
pub fn hash_entries(tree: &Path, entries: &mut [Entry], workers: usize) -> Result<()> {
    let todo: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].kind == Kind::File)
        .collect();
    let paths: Vec<PathBuf> = todo.iter().map(|&i| tree.join(&entries[i].path)).collect();
    let hashes = hash_paths(&paths, workers);
    for (slot, (i, h)) in todo.into_iter().zip(hashes).enumerate() {
        let h = h.with_context(|| format!("{}: cannot read", paths[slot].display()))?;
        entries[i].sha256 = Some(h);
    }
    Ok(())
}

/// Hashes `paths` on `workers` threads, each pulling the next path from a
/// shared counter and reading through its own [`HASH_BUFFER`]; results
/// come back in the order of `paths`.
pub fn hash_paths(paths: &[PathBuf], workers: usize) -> Vec<std::io::Result<String>> {
    let next = AtomicUsize::new(0);
    let workers = workers.clamp(1, paths.len().max(1));
    let mut parts: Vec<Vec<(usize, std::io::Result<String>)>> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut buf = vec![0u8; HASH_BUFFER];
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = paths.get(i) else { break };
                        done.push((i, sha256_file(p, &mut buf)));
                    }
                    done
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(d) => parts.push(d),
                Err(_) => parts.push(Vec::new()),
            }
        }
    });
    let mut out: Vec<Option<std::io::Result<String>>> = (0..paths.len()).map(|_| None).collect();
    for (i, r) in parts.into_iter().flatten() {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(std::io::Error::other("a hashing worker died"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            role: "base".into(),
            version: "V1".into(),
            entries: vec![
                Entry {
                    path: "etc".into(),
                    kind: Kind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    size: 0,
                    mtime: 1,
                    sha256: None,
                    target: None,
                    rdev: None,
                    xattrs: BTreeMap::new(),
                },
                Entry {
                    path: "etc/hosts".into(),
                    kind: Kind::File,
                    mode: 0o4755,
                    uid: 0,
                    gid: 5,
                    size: 3,
                    mtime: 2,
                    sha256: Some("ab".into()),
                    target: None,
                    rdev: None,
                    xattrs: [("security.capability".to_string(), "0100000002".to_string())]
                        .into_iter()
                        .collect(),
                },
            ],
            xattrs: true,
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let m = sample();
        let text = m.to_text().unwrap();
        assert!(text.contains("\"mode\":\"4755\""), "{text}");
        assert_eq!(Manifest::parse(&text, "m").unwrap(), m);
        let bad = text.replace("\"gid\":5", "\"gid\":6");
        let e = Manifest::parse(&bad, "m").unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        for bad in ["/etc/x", "../x", "a/../../x", "a//b", "./a", ""] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_path("etc/ssh/sshd_config").is_ok());
        assert!(Manifest::parse(&cut, "m").is_err());
        assert_eq!(m.get("etc/hosts").map(|e| e.gid), Some(5));
        assert!(m.get("etc/x").is_none());
    }

    #[test]
    fn listed_xattrs_round_trip_and_older_manifests_say_nothing() {
        let m = sample();
        let text = m.to_text().unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.ends_with(",\"xattrs\":true}"), "{first}");
        assert!(
            text.contains(r#""xattrs":{"security.capability":"0100000002"}"#),
            "{text}"
        );
        // Only the entry that has some lists them.
        assert_eq!(text.matches("security.capability").count(), 1, "{text}");
        assert_eq!(Manifest::parse(&text, "m").unwrap(), m);
        // A manifest of before: no field in its header, none in entries.
        let mut old = sample();
        old.xattrs = false;
        old.entries[1].xattrs.clear();
        let text = old.to_text().unwrap();
        assert!(!text.contains("xattrs"), "{text}");
        let back = Manifest::parse(&text, "m").unwrap();
        assert!(!back.xattrs);
        assert_eq!(back, old);
    }

    #[test]
    fn build_lists_a_files_extended_attributes() {
        let dir = std::env::temp_dir().join(format!("edeploy-mx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/a"), "a").unwrap();
        std::fs::write(dir.join("etc/b"), "b").unwrap();
        super::super::xattr::set_xattr(&dir.join("etc/a"), b"user.role", b"db\n\x00").unwrap();
        let m = Manifest::build(&dir, "base", "V1", &KeepAll).unwrap();
        assert!(m.xattrs);
        let a = m.get("etc/a").unwrap();
        assert_eq!(
            a.xattrs.get("user.role").map(String::as_str),
            Some("64620a00")
        );
        assert!(m.get("etc/b").unwrap().xattrs.is_empty());
        assert!(m.get("etc").unwrap().xattrs.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parallel_hashes_keep_order() {
        let dir = std::env::temp_dir().join(format!("edeploy-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths: Vec<PathBuf> = (0..50)
            .map(|i| {
                let p = dir.join(format!("f{i}"));
                std::fs::write(&p, format!("{i}")).unwrap();
                p
            })
            .collect();
        let h = hash_paths(&paths, 4);
        for (i, r) in h.iter().enumerate() {
            let want = hex(&Sha256::digest(format!("{i}").as_bytes()));
            assert_eq!(r.as_ref().unwrap(), &want);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
