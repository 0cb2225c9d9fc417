//! The delta format: one static archive per upgrade path.
//!
//! For each upgrade path FROM → TO the packer writes one static archive,
//! `install/TO/ROLE-FROM-TO.delta` (gzip'd tar), that any web server,
//! cache or CDN can serve. In this order it holds:
//!
//! - `delta.json`: role, versions, the SHA-256 of both manifests, and the
//!   lists: `changed` (every path of TO that differs from FROM in any
//!   way, new ones included), `content` (the files among them whose bytes
//!   are shipped), `deleted` (paths of FROM that TO lacks), `add_only`
//!   (the entries of TO at or below an `add_only` path);
//! - `manifest`: TO's manifest, which every shipped file is checked
//!   against;
//! - `meta/exclude`, `meta/add_only`, `meta/pre`, `meta/post`: the upgrade
//!   path's metadata, so one file carries the whole upgrade;
//! - `files/PATH`: the bytes of each `content` path.
//!
//! Paths the upgrade path excludes, and the host's own paths (`/proc`,
//! `/var/lib/edeploy`…), are left out at pack time ([`Selection`]) and
//! skipped again at apply time.
//!
//! [`write()`] makes an archive; [`unpack`] reads one into a directory
//! (`files/N` for the N-th `content` path, `meta/NAME`) while hashing
//! every file and checking it against the manifest, and refuses any
//! archive that is not whole and exactly the one its index describes.

use super::manifest::{self, Entry, Kind, Manifest};
use super::place::{self, Attrs, Content, How};
use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The format tag of `delta.json`.
pub const FORMAT: &str = "edeploy-delta/1";

/// The index member, first in the archive.
const INDEX: &str = "delta.json";

/// TO's manifest, second in the archive.
const MANIFEST: &str = "manifest";

/// The metadata files an archive may carry under `meta/`.
pub const META_FILES: [&str; 4] = ["exclude", "add_only", "pre", "post"];

/// `ROLE-FROM-TO.delta`
pub fn file_name(role: &str, from: &str, to: &str) -> String {
    format!("{role}-{from}-{to}.delta")
}

/// The index of a delta archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub format: String,
    pub role: String,
    pub from: String,
    pub to: String,
    pub from_manifest: String,
    pub to_manifest: String,
    pub changed: Vec<String>,
    pub content: Vec<String>,
    pub deleted: Vec<String>,
    pub add_only: Vec<String>,
}

impl Index {
    /// Each `content` path with its number, the name of its bytes once
    /// unpacked ([`unpacked_file`]).
    pub fn slots(&self) -> HashMap<&str, usize> {
        self.content
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i))
            .collect()
    }

    /// Refuses an index of another format or another upgrade, or with a
    /// path that could leave the root.
    fn check(&self, role: &str, from: &str, to: &str) -> Result<()> {
        if self.format != FORMAT {
            bail!(
                "delta format {:?} (this edeploy reads {FORMAT})",
                self.format
            );
        }
        if self.role != role || self.from != from || self.to != to {
            bail!(
                "the archive is the delta of {} {} -> {}, not {role} {from} -> {to}",
                self.role,
                self.from,
                self.to
            );
        }
        for p in self
            .changed
            .iter()
            .chain(&self.content)
            .chain(&self.deleted)
            .chain(&self.add_only)
        {
            manifest::check_path(p).context(INDEX)?;
            place::check_reserved(Path::new(p)).context(INDEX)?;
        }
        Ok(())
    }
}

/// What an upgrade path puts in its delta, beyond the two manifests.
pub trait Selection {
    /// The test of what the delta leaves out: a path, and whether it is a
    /// directory.
    fn skipped(&self) -> impl Fn(&str, bool) -> bool + '_;
    /// Whether the path is at or below an `add_only` path.
    fn is_add_only(&self, path: &str) -> bool;
    /// The directory holding the upgrade path's [`META_FILES`].
    fn meta_dir(&self) -> &Path;
}

/// Whether an entry of TO differs from the one of FROM in anything an
/// upgrade must change (directory mtimes do not count).
fn differs(a: &Entry, b: &Entry) -> bool {
    a.kind != b.kind
        || a.mode != b.mode
        || a.uid != b.uid
        || a.gid != b.gid
        || a.sha256 != b.sha256
        || a.target != b.target
        || a.rdev != b.rdev
        || (a.kind != Kind::Dir && a.mtime != b.mtime)
}

/// What an upgrade path's delta holds (pure: from the two manifests and
/// the selection).
pub fn plan<S: Selection>(from: &Manifest, to: &Manifest, sel: &S) -> Index {
    let skip = sel.skipped();
    let mut idx = Index {
        format: FORMAT.to_string(),
        role: to.role.clone(),
        from: from.version.clone(),
        to: to.version.clone(),
        from_manifest: String::new(),
        to_manifest: String::new(),
        changed: Vec::new(),
        content: Vec::new(),
        deleted: Vec::new(),
        add_only: Vec::new(),
    };
    for e in &to.entries {
        if skip(&e.path, e.kind == Kind::Dir) {
            continue;
        }
        if sel.is_add_only(&e.path) {
            idx.add_only.push(e.path.clone());
            if e.kind == Kind::File {
                idx.content.push(e.path.clone());
            }
            continue;
        }
        let old = from.get(&e.path);
        if old.is_some_and(|o| !differs(e, o)) {
            continue;
        }
        idx.changed.push(e.path.clone());
        let same_bytes = old.is_some_and(|o| o.kind == Kind::File && o.sha256 == e.sha256);
        if e.kind == Kind::File && !same_bytes {
            idx.content.push(e.path.clone());
        }
    }
    for e in &from.entries {
        if to.get(&e.path).is_none()
            && !skip(&e.path, e.kind == Kind::Dir)
            && !sel.is_add_only(&e.path)
        {
            idx.deleted.push(e.path.clone());
        }
    }
    idx.content.sort();
    idx
}

/// Adds one regular member of `len` bytes read from `data`.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    len: u64,
    mode: u32,
    data: impl Read,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    mode: u32,
) -> Result<()> {
    append(tar, name, data.len() as u64, mode, data)
        .with_context(|| format!("cannot add {name} to the delta"))
}

/// Writes the delta archive FROM → TO to `dest`, with the bytes taken
/// from the tree of TO at `to_tree` and the metadata from `sel`.
/// Returns its index.
pub fn write<S: Selection>(
    from: &Manifest,
    to: &Manifest,
    to_tree: &Path,
    sel: &S,
    dest: &Path,
) -> Result<Index> {
    let mut idx = plan(from, to, sel);
    idx.from_manifest = from.digest()?;
    idx.to_manifest = to.digest()?;
    // Written under a temporary name and renamed once synced
    // (`place::How::durable`): a reader sees no delta or a whole one.
    let mut fill = |file: &mut File| -> Result<()> {
        let gz = GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        append_bytes(&mut tar, INDEX, &serde_json::to_vec_pretty(&idx)?, 0o644)?;
        append_bytes(&mut tar, MANIFEST, to.to_text()?.as_bytes(), 0o644)?;
        for name in META_FILES {
            let p = sel.meta_dir().join(name);
            if p.is_file() {
                let data = fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))?;
                append_bytes(&mut tar, &format!("meta/{name}"), &data, 0o755)?;
            }
        }
        for path in &idx.content {
            let src = to_tree.join(path);
            let f = File::open(&src).with_context(|| format!("{}: cannot open", src.display()))?;
            let len = f
                .metadata()
                .with_context(|| format!("{}: cannot stat", src.display()))?
                .len();
            append(&mut tar, &format!("files/{path}"), len, 0o644, f)
                .with_context(|| format!("{}: cannot add to the delta", src.display()))?;
        }
        let gz = tar.into_inner().context("cannot finish the delta")?;
        let w = gz.finish().context("cannot finish the delta")?;
        w.into_inner()
            .map_err(|e| e.into_error())
            .context("cannot write the delta")?;
        Ok(())
    };
    place::put(
        dest,
        Content::File(&mut fill),
        &How::durable(Attrs {
            mode: Some(0o644),
            ..Attrs::default()
        }),
    )
    .with_context(|| format!("{}: cannot write the delta", dest.display()))?;
    Ok(idx)
}

/// Where [`unpack`] puts the bytes of the `slot`-th `content` path.
pub fn unpacked_file(dir: &Path, slot: usize) -> PathBuf {
    dir.join("files").join(slot.to_string())
}

/// Unpacks the archive at `archive` into `dir` (emptied first) and
/// checks it: the index names this upgrade, the manifest is whole and is
/// the one the index names, every shipped file has the manifest's hash,
/// and nothing is missing. Returns the index and manifest.
pub fn unpack(
    archive: &Path,
    dir: &Path,
    role: &str,
    from: &str,
    to: &str,
) -> Result<(Index, Manifest)> {
    let _ = fs::remove_dir_all(dir);
    for sub in ["files", "meta"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let f = File::open(archive).with_context(|| format!("{}: cannot open", archive.display()))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(f)));
    let mut index: Option<Index> = None;
    let mut manifest: Option<Manifest> = None;
    let mut slots: HashMap<String, usize> = HashMap::new();
    let mut seen: HashSet<usize> = HashSet::new();
    let mut buf = vec![0u8; manifest::HASH_BUFFER];
    for entry in tar.entries().context("not a tar archive")? {
        let mut entry = entry.context("the archive is damaged")?;
        let name = entry
            .path()
            .context("a bad name in the archive")?
            .to_string_lossy()
            .into_owned();
        if name == INDEX {
            let idx = read_index(&mut entry)?;
            idx.check(role, from, to)?;
            slots = idx
                .slots()
                .into_iter()
                .map(|(p, i)| (p.to_string(), i))
                .collect();
            index = Some(idx);
        } else if name == MANIFEST {
            let idx = index
                .as_ref()
                .context("the archive does not start with delta.json")?;
            manifest = Some(read_manifest(&mut entry, idx)?);
        } else if let Some(m) = name.strip_prefix("meta/") {
            unpack_meta(&mut entry, &name, m, dir)?;
        } else if let Some(path) = name.strip_prefix("files/") {
            let m = manifest
                .as_ref()
                .context("the archive's files come before its manifest")?;
            let slot = *slots
                .get(path)
                .with_context(|| format!("/{path} is in the archive but not in its index"))?;
            let want = m
                .get(path)
                .and_then(|e| e.sha256.clone())
                .with_context(|| format!("/{path} is not a file of the target manifest"))?;
            let dest = unpacked_file(dir, slot);
            let got = copy_hashed(&mut entry, &dest, path, &mut buf)?;
            if got != want {
                bail!("/{path}: its bytes do not have the manifest's SHA-256");
            }
            seen.insert(slot);
        } else {
            bail!("unexpected {name} in the archive");
        }
    }
    let index = index.context("the archive has no delta.json")?;
    let manifest = manifest.context("the archive has no manifest")?;
    if let Some(p) = index
        .content
        .iter()
        .enumerate()
        .find(|(i, _)| !seen.contains(i))
    {
        bail!("/{}: listed but missing from the archive", p.1);
    }
    for p in index.changed.iter().chain(&index.add_only) {
        if manifest.get(p).is_none() {
            bail!("/{p}: listed but not in the target manifest");
        }
        check_parents(&manifest, p)?;
    }
    Ok((index, manifest))
}

/// Refuses a path of TO under an entry that TO makes a symlink (or
/// anything but a directory): the upgrade would write through it.
fn check_parents(m: &Manifest, path: &str) -> Result<()> {
    let mut parent = Path::new(path).parent();
    while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
        match m.get(&p.to_string_lossy()) {
            Some(e) if e.kind == Kind::Symlink => {
                return Err(super::beneath::through_symlink(Path::new(path), p))
            }
            Some(e) if e.kind != Kind::Dir => {
                bail!("/{path}: {} is not a directory in the target", p.display())
            }
            _ => {}
        }
        parent = p.parent();
    }
    Ok(())
}

fn read_index(entry: &mut impl Read) -> Result<Index> {
    let mut data = Vec::new();
    entry
        .read_to_end(&mut data)
        .context("the archive is damaged")?;
    serde_json::from_slice(&data).context("delta.json is unreadable")
}

/// Reads TO's manifest and checks it is the one `idx` names.
fn read_manifest(entry: &mut impl Read, idx: &Index) -> Result<Manifest> {
    let mut text = String::new();
    entry
        .read_to_string(&mut text)
        .context("the archive is damaged")?;
    let m = Manifest::parse(&text, "the delta's manifest")?;
    if manifest::hex(&Sha256::digest(text.as_bytes())) != idx.to_manifest {
        bail!("the delta's manifest is not the one its index names");
    }
    Ok(m)
}

/// Writes the metadata file `m` (member `name`) under `dir/meta/`, the
/// scripts executable.
fn unpack_meta(entry: &mut impl Read, name: &str, m: &str, dir: &Path) -> Result<()> {
    if !META_FILES.contains(&m) {
        bail!("unexpected {name} in the archive");
    }
    let dest = dir.join("meta").join(m);
    let mut out =
        File::create(&dest).with_context(|| format!("{}: cannot create", dest.display()))?;
    std::io::copy(entry, &mut out).context("the archive is damaged")?;
    if matches!(m, "pre" | "post") {
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("{}: cannot chmod", dest.display()))?;
    }
    Ok(())
}

/// Copies the bytes of `/path` to `dest`, synced, and returns their
/// SHA-256.
fn copy_hashed(entry: &mut impl Read, dest: &Path, path: &str, buf: &mut [u8]) -> Result<String> {
    let mut out =
        File::create(dest).with_context(|| format!("{}: cannot create", dest.display()))?;
    let mut h = Sha256::new();
    loop {
        let n = entry
            .read(buf)
            .with_context(|| format!("the archive is damaged at /{path}"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("{}: cannot write", dest.display()))?;
    }
    out.sync_all()
        .with_context(|| format!("{}: cannot write", dest.display()))?;
    Ok(manifest::hex(&h.finalize()))
}

/// The index of the delta archive at `archive` (its first member), read
/// without unpacking anything: what a host checks before staging.
pub fn read_index_of(archive: &Path) -> Result<Index> {
    let f = File::open(archive).with_context(|| format!("{}: cannot open", archive.display()))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(f)));
    let mut entries = tar.entries().context("not a tar archive")?;
    let mut first = entries
        .next()
        .context("the archive is empty")?
        .context("the archive is damaged")?;
    let name = first
        .path()
        .context("a bad name in the archive")?
        .to_string_lossy()
        .into_owned();
    if name != INDEX {
        bail!("the archive does not start with {INDEX}");
    }
    read_index(&mut first)
}
