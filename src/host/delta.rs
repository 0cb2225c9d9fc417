//! HTTP delta upgrades and rollback.
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
//! `/var/lib/edeploy`…), are left out at pack time and skipped again at
//! apply time.
//!
//! On the host ([`upgrade`]) the archive is downloaded, then unpacked to a
//! staging directory while every file is hashed and checked against the
//! manifest; any mismatch stops the upgrade before anything is touched.
//! The work is then driven by a journal (`ROOT/var/lib/edeploy/journal`)
//! whose phase moves `staged` → `saved` → `applied`:
//!
//! 1. `saved`: every path the upgrade will touch is recorded (its type,
//!    mode, owner, times, or "absent") in
//!    `ROOT/var/lib/edeploy/rollback/FROM/saved.json`, and its bytes kept
//!    under `rollback/FROM/tree/` (a hard link when possible, else a
//!    copy); the journal then lists the exact operations to run;
//! 2. `applied`: deletions (deepest first), then each new or changed path
//!    in order, each file replaced by writing a temporary file beside it
//!    and renaming it over, so every path is at any instant wholly old or
//!    wholly new. Every operation can run twice, so an interrupted
//!    upgrade is finished by running the same command again;
//! 3. the manifest is installed, `post` runs, the version is recorded and
//!    the journal removed.
//!
//! [`rollback`] puts back every saved path exactly (bytes, type, mode,
//! owner, mtime), removes what the upgrade created, and records FROM
//! again. One level is kept: the next upgrade replaces it.

use super::conf::Conf;
use super::exclude::{Rules, BUILTIN};
use super::manifest::{self, Entry, Kind, Manifest};
use super::meta::{self, Metadata, ScriptEnd};
use crate::exec::Exec;
use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The format tag of `delta.json`.
pub const FORMAT: &str = "edeploy-delta/1";

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
/// the metadata).
pub fn plan(from: &Manifest, to: &Manifest, meta: &Metadata) -> Index {
    let skip = skip_rules(meta);
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
        if skip.excludes(&e.path, e.kind == Kind::Dir) {
            continue;
        }
        if meta.is_add_only(&e.path) {
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
            && !skip.excludes(&e.path, e.kind == Kind::Dir)
            && !meta.is_add_only(&e.path)
        {
            idx.deleted.push(e.path.clone());
        }
    }
    idx.content.sort();
    idx
}

/// The built-in exclusions, then the upgrade path's.
fn skip_rules(meta: &Metadata) -> Rules {
    let mut r = Rules::excluding(BUILTIN);
    r.extend(&meta.exclude);
    r
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    mode: u32,
) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)
        .with_context(|| format!("cannot add {name} to the delta"))
}

/// Writes the delta archive FROM → TO to `dest`, with the bytes taken
/// from the tree of TO at `to_tree` and the metadata from `meta`.
/// Returns its index.
pub fn write(
    from: &Manifest,
    to: &Manifest,
    to_tree: &Path,
    meta: &Metadata,
    dest: &Path,
) -> Result<Index> {
    let mut idx = plan(from, to, meta);
    idx.from_manifest = from.digest()?;
    idx.to_manifest = to.digest()?;
    let tmp = dest.with_extension("delta-tmp");
    let file = File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    let gz = GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    append_bytes(
        &mut tar,
        "delta.json",
        &serde_json::to_vec_pretty(&idx)?,
        0o644,
    )?;
    append_bytes(&mut tar, "manifest", to.to_text()?.as_bytes(), 0o644)?;
    for name in ["exclude", "add_only", "pre", "post"] {
        let p = meta.dir.join(name);
        if p.is_file() {
            let data = fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))?;
            append_bytes(&mut tar, &format!("meta/{name}"), &data, 0o755)?;
        }
    }
    for path in &idx.content {
        let src = to_tree.join(path);
        let mut f = File::open(&src).with_context(|| format!("{}: cannot open", src.display()))?;
        let len = f
            .metadata()
            .with_context(|| format!("{}: cannot stat", src.display()))?
            .len();
        let mut h = tar::Header::new_gnu();
        h.set_size(len);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("files/{path}"), &mut f)
            .with_context(|| format!("{}: cannot add to the delta", src.display()))?;
    }
    let gz = tar.into_inner().context("cannot finish the delta")?;
    let w = gz.finish().context("cannot finish the delta")?;
    let f = w
        .into_inner()
        .map_err(|e| e.into_error())
        .context("cannot write the delta")?;
    f.sync_all().context("cannot write the delta")?;
    fs::rename(&tmp, dest).with_context(|| format!("{}: cannot rename", dest.display()))?;
    Ok(idx)
}

// ---------------------------------------------------------------------------
// The host side.

/// Where things live under the host's root.
struct Paths {
    state: PathBuf,
}

impl Paths {
    fn new(root: &Path) -> Paths {
        Paths {
            state: meta::state_dir(root),
        }
    }
    fn journal(&self) -> PathBuf {
        self.state.join("journal")
    }
    fn staging(&self, to: &str) -> PathBuf {
        self.state.join("staging").join(to)
    }
    fn download(&self, name: &str) -> PathBuf {
        self.state.join("download").join(name)
    }
    fn rollback(&self, from: &str) -> PathBuf {
        self.state.join("rollback").join(from)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Staged,
    Saved,
    Applied,
}

/// The journal of an upgrade in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    role: String,
    from: String,
    to: String,
    phase: Phase,
    /// Paths to delete, deepest first.
    #[serde(default)]
    deletes: Vec<String>,
    /// Paths to create or change, parents first, with whether the bytes
    /// come from the staging directory.
    #[serde(default)]
    puts: Vec<String>,
}

fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    crate::persist::write_atomic(path, &serde_json::to_vec_pretty(value)?)
}

fn load_json<T: for<'a> Deserialize<'a>>(path: &Path) -> Result<T> {
    let data = fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("{}: unreadable", path.display()))
}

/// What rollback needs of one path: how it was, or `None` when the
/// upgrade created it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    role: String,
    from: String,
    to: String,
    paths: BTreeMap<String, Option<Entry>>,
}

/// Unpacks the archive at `archive` into `staging` and checks it: the
/// index names this upgrade, the manifest is whole and is the one the
/// index names, every shipped file has the manifest's hash, nothing is
/// missing, and the metadata is complete. Returns the index and manifest.
fn stage(
    archive: &Path,
    staging: &Path,
    role: &str,
    from: &str,
    to: &str,
) -> Result<(Index, Manifest)> {
    let _ = fs::remove_dir_all(staging);
    fs::create_dir_all(staging.join("files"))
        .with_context(|| format!("{}: cannot create", staging.display()))?;
    fs::create_dir_all(staging.join("meta"))
        .with_context(|| format!("{}: cannot create", staging.display()))?;
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
        if name == "delta.json" {
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .context("the archive is damaged")?;
            let idx: Index = serde_json::from_slice(&data).context("delta.json is unreadable")?;
            if idx.format != FORMAT {
                bail!(
                    "delta format {:?} (this edeploy reads {FORMAT})",
                    idx.format
                );
            }
            if idx.role != role || idx.from != from || idx.to != to {
                bail!(
                    "the archive is the delta of {} {} -> {}, not {role} {from} -> {to}",
                    idx.role,
                    idx.from,
                    idx.to
                );
            }
            for p in idx
                .changed
                .iter()
                .chain(&idx.content)
                .chain(&idx.deleted)
                .chain(&idx.add_only)
            {
                manifest::check_path(p).context("delta.json")?;
            }
            slots = idx
                .content
                .iter()
                .enumerate()
                .map(|(i, p)| (p.clone(), i))
                .collect();
            index = Some(idx);
        } else if name == "manifest" {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .context("the archive is damaged")?;
            let m = Manifest::parse(&text, "the delta's manifest")?;
            let idx = index
                .as_ref()
                .context("the archive does not start with delta.json")?;
            if manifest::hex(&Sha256::digest(text.as_bytes())) != idx.to_manifest {
                bail!("the delta's manifest is not the one its index names");
            }
            manifest = Some(m);
        } else if let Some(m) = name.strip_prefix("meta/") {
            if !matches!(m, "exclude" | "add_only" | "pre" | "post") {
                bail!("unexpected {name} in the archive");
            }
            let dest = staging.join("meta").join(m);
            let mut out = File::create(&dest)
                .with_context(|| format!("{}: cannot create", dest.display()))?;
            std::io::copy(&mut entry, &mut out).context("the archive is damaged")?;
            if matches!(m, "pre" | "post") {
                fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("{}: cannot chmod", dest.display()))?;
            }
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
            let dest = staging.join("files").join(slot.to_string());
            let mut out = File::create(&dest)
                .with_context(|| format!("{}: cannot create", dest.display()))?;
            let mut h = Sha256::new();
            loop {
                let n = entry
                    .read(&mut buf)
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
            if manifest::hex(&h.finalize()) != want {
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
    }
    save_json(&staging.join("index.json"), &index)?;
    Ok((index, manifest))
}

fn refuse_or<T>(r: Result<T>, cleanup: &[&Path]) -> Result<T> {
    if r.is_err() {
        for p in cleanup {
            let _ = fs::remove_dir_all(p);
            let _ = fs::remove_file(p);
        }
    }
    r.map_err(|e| e.context("refusing the delta; nothing was changed"))
}

/// `edeploy upgrade --transport http TO`.
pub fn upgrade(
    exec: &dyn Exec,
    out: &mut dyn Write,
    root: &Path,
    to: &str,
) -> Result<super::rsync::Outcome> {
    let conf = Conf::load(root)?;
    let (from, role) = (conf.version()?.to_string(), conf.role()?.to_string());
    let paths = Paths::new(root);
    let journal_path = paths.journal();
    let mut journal: Journal = if journal_path.exists() {
        let j: Journal = load_json(&journal_path)?;
        if j.to != to || j.from != from || j.role != role {
            bail!(
                "an upgrade of {} from {} to {} was interrupted: run `edeploy upgrade --transport http {}` \
                 to finish it or `edeploy rollback` to undo it",
                j.role,
                j.from,
                j.to,
                j.to
            );
        }
        writeln!(
            out,
            "finishing the interrupted upgrade of {role} from {from} to {to}"
        )?;
        j
    } else {
        if to == from {
            bail!("{role} is already at version {to}");
        }
        let (host, port, hpath) = conf.http_server()?;
        let name = file_name(&role, &from, to);
        let url = super::http::url(&host, port, &format!("{hpath}/{to}/{name}"));
        writeln!(out, "upgrading {role} from {from} to {to} over HTTP")?;
        let archive = paths.download(&name);
        if let Some(d) = archive.parent() {
            fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
        }
        let bytes = super::http::download(&url, &archive).map_err(|e| {
            if e.to_string().contains("HTTP 404") {
                e.context(format!(
                    "no delta from {from} to {to} for role {role} on the server"
                ))
            } else {
                e
            }
        })?;
        writeln!(out, "fetched {url} ({bytes} bytes)")?;
        let staging = paths.staging(to);
        let (_, m) = refuse_or(
            stage(&archive, &staging, &role, &from, to),
            &[&staging, &archive],
        )?;
        refuse_or(
            Metadata::load(
                &staging.join("meta"),
                &format!("upgrade {role} {from} -> {to}"),
            ),
            &[&staging, &archive],
        )?;
        m.save(&staging.join("manifest"))?;
        let _ = fs::remove_file(&archive);
        // The metadata goes where the rsync transport puts it, so verify
        // finds the version's exclude and add_only in the same place.
        let meta_dir = paths.state.join(to);
        let _ = fs::remove_dir_all(&meta_dir);
        copy_dir_files(&staging.join("meta"), &meta_dir)?;
        let j = Journal {
            role: role.clone(),
            from: from.clone(),
            to: to.to_string(),
            phase: Phase::Staged,
            deletes: Vec::new(),
            puts: Vec::new(),
        };
        save_json(&journal_path, &j)?;
        j
    };
    let staging = paths.staging(to);
    let index: Index = load_json(&staging.join("index.json"))?;
    let target = Manifest::load(&staging.join("manifest"))?;
    let meta = Metadata::load(
        &paths.state.join(to),
        &format!("upgrade {role} {from} -> {to}"),
    )?;
    let mut outcome = super::rsync::Outcome::default();

    if journal.phase != Phase::Applied {
        if let Some(pre) = &meta.pre {
            meta::run_script(exec, out, root, pre, &role, &from, to)?;
        }
    }
    if journal.phase == Phase::Staged {
        let (deletes, puts, added) = host_plan(root, &index, &target, &meta)?;
        save_for_rollback(root, &paths, &role, &from, to, &deletes, &puts)?;
        journal.deletes = deletes;
        journal.puts = puts;
        journal.phase = Phase::Saved;
        save_json(&journal_path, &journal)?;
        outcome.added = added;
    }
    if journal.phase == Phase::Saved {
        apply(root, &staging, &index, &target, &journal, out)?;
        journal.phase = Phase::Applied;
        save_json(&journal_path, &journal)?;
    }
    target.save(&manifest::local_path(root, &role, to))?;
    if let Some(post) = &meta.post {
        outcome.reboot =
            meta::run_script(exec, out, root, post, &role, &from, to)? == ScriptEnd::RebootNeeded;
    }
    meta::record_version(root, &role, to)?;
    fs::remove_file(&journal_path)
        .with_context(|| format!("{}: cannot remove", journal_path.display()))?;
    let _ = fs::remove_dir_all(&staging);
    // One level of rollback: drop older ones.
    if let Ok(dirs) = fs::read_dir(paths.state.join("rollback")) {
        for d in dirs.flatten() {
            if d.file_name().to_string_lossy() != from {
                let _ = fs::remove_dir_all(d.path());
            }
        }
    }
    writeln!(out, "{role} is now at version {to}")?;
    if outcome.reboot {
        meta::reboot(exec, out)?;
    }
    Ok(outcome)
}

fn copy_dir_files(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("{}: cannot create", to.display()))?;
    for e in fs::read_dir(from).with_context(|| format!("{}: cannot list", from.display()))? {
        let e = e.with_context(|| format!("{}: cannot list", from.display()))?;
        fs::copy(e.path(), to.join(e.file_name()))
            .with_context(|| format!("{}: cannot copy", e.path().display()))?;
    }
    Ok(())
}

fn lstat(p: &Path) -> Option<fs::Metadata> {
    fs::symlink_metadata(p).ok()
}

/// The operations of this host's upgrade: deletions (deepest first,
/// including what the host added inside a deleted directory), then the
/// paths to create or change (parents first), then the `add_only` paths
/// the host lacks.
fn host_plan(
    root: &Path,
    index: &Index,
    target: &Manifest,
    meta: &Metadata,
) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let skip = skip_rules(meta);
    let mut deletes: Vec<String> = Vec::new();
    for p in &index.deleted {
        let full = root.join(p);
        let Some(md) = lstat(&full) else { continue };
        if skip.excludes(p, md.is_dir()) || meta.is_add_only(p) {
            continue;
        }
        deletes.push(p.clone());
        if md.is_dir() {
            for e in manifest::scan(&full, &skip, true)? {
                let rel = format!("{p}/{}", e.path);
                if !skip.excludes(&rel, e.kind == Kind::Dir) && !meta.is_add_only(&rel) {
                    deletes.push(rel);
                }
            }
        }
    }
    deletes.sort();
    deletes.dedup();
    deletes.reverse();
    let mut puts: Vec<String> = index
        .changed
        .iter()
        .filter(|p| !meta.is_add_only(p))
        .cloned()
        .collect();
    let mut added = Vec::new();
    for a in &meta.add_only {
        if lstat(&root.join(a)).is_some() {
            continue;
        }
        let mine: Vec<&String> = index
            .add_only
            .iter()
            .filter(|p| *p == a || p.starts_with(&format!("{a}/")))
            .collect();
        if !mine.is_empty() {
            added.push(a.clone());
        }
        // Parents of an add_only path that the tree has but the host
        // lacks come first.
        let mut parent = Path::new(a).parent();
        while let Some(pp) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let ps = pp.to_string_lossy().into_owned();
            if lstat(&root.join(&ps)).is_none() && target.get(&ps).is_some() {
                puts.push(ps);
            }
            parent = pp.parent();
        }
        puts.extend(mine.into_iter().cloned());
    }
    puts.sort();
    puts.dedup();
    Ok((deletes, puts, added))
}

/// Records how every path the upgrade touches is now, and keeps its
/// bytes, under `rollback/FROM/`. Run again from scratch when
/// interrupted: nothing on the host has changed yet.
fn save_for_rollback(
    root: &Path,
    paths: &Paths,
    role: &str,
    from: &str,
    to: &str,
    deletes: &[String],
    puts: &[String],
) -> Result<()> {
    let dir = paths.rollback(from);
    let _ = fs::remove_dir_all(&dir);
    let tree = dir.join("tree");
    fs::create_dir_all(&tree).with_context(|| format!("{}: cannot create", tree.display()))?;
    let mut saved = Saved {
        role: role.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        paths: BTreeMap::new(),
    };
    for p in deletes.iter().chain(puts) {
        let full = root.join(p);
        let entry = match lstat(&full) {
            None => None,
            Some(_) => Some(manifest::entry_of(&full, p.clone())?),
        };
        if let Some(e) = &entry {
            if e.kind == Kind::File {
                let keep = tree.join(p);
                if let Some(d) = keep.parent() {
                    fs::create_dir_all(d)
                        .with_context(|| format!("{}: cannot create", d.display()))?;
                }
                if fs::hard_link(&full, &keep).is_err() {
                    fs::copy(&full, &keep)
                        .with_context(|| format!("{}: cannot keep a copy", full.display()))?;
                }
            }
        }
        saved.paths.insert(p.clone(), entry);
    }
    save_json(&dir.join("saved.json"), &saved)?;
    crate::persist::sync_dir(&dir)
}

/// A test hook: `EDEPLOY_TEST_ABORT_AFTER=N` stops the apply phase after
/// N operations, leaving the host as a crash would.
fn abort_after() -> Option<usize> {
    std::env::var("EDEPLOY_TEST_ABORT_AFTER")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// Runs the journal's operations. Each can run twice.
fn apply(
    root: &Path,
    staging: &Path,
    index: &Index,
    target: &Manifest,
    journal: &Journal,
    out: &mut dyn Write,
) -> Result<()> {
    let slots: HashMap<&str, usize> = index
        .content
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect();
    let limit = abort_after();
    let mut done = 0usize;
    let tick = |done: &mut usize| -> Result<()> {
        *done += 1;
        if limit == Some(*done) {
            bail!("stopped by EDEPLOY_TEST_ABORT_AFTER after {done} operations");
        }
        Ok(())
    };
    for p in &journal.deletes {
        remove(&root.join(p), out)?;
        tick(&mut done)?;
    }
    for p in &journal.puts {
        let e = target
            .get(p)
            .with_context(|| format!("/{p}: not in the target manifest"))?;
        let staged = slots
            .get(p.as_str())
            .map(|i| staging.join("files").join(i.to_string()));
        put(root, e, staged.as_deref(), out)?;
        tick(&mut done)?;
    }
    crate::persist::sync_dir(root)?;
    Ok(())
}

/// Removes one path if it is there (a directory only when empty).
fn remove(full: &Path, out: &mut dyn Write) -> Result<()> {
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

/// Puts `full` in place with `bytes` (a file to copy) and `e`'s attributes,
/// replacing what is there by a rename.
fn place_file(full: &Path, bytes: &Path, e: &Entry) -> Result<()> {
    let tmp = prepare_replace(full)?;
    fs::copy(bytes, &tmp).with_context(|| format!("{}: cannot write", tmp.display()))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("{}: cannot sync", tmp.display()))?;
    set_attrs(&tmp, e)?;
    fs::rename(&tmp, full).with_context(|| format!("{}: cannot replace", full.display()))
}

fn place_symlink(full: &Path, e: &Entry) -> Result<()> {
    let tmp = prepare_replace(full)?;
    let target = e.target.as_deref().unwrap_or("");
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("{}: cannot create the link", tmp.display()))?;
    set_attrs(&tmp, e)?;
    fs::rename(&tmp, full).with_context(|| format!("{}: cannot replace", full.display()))
}

/// Makes one path what `e` says.
fn put(root: &Path, e: &Entry, staged: Option<&Path>, out: &mut dyn Write) -> Result<()> {
    let full = root.join(&e.path);
    match e.kind {
        Kind::Dir => {
            ensure_dir(&full)?;
            set_attrs(&full, e)
        }
        Kind::File => match staged {
            Some(bytes) => place_file(&full, bytes, e),
            None => match lstat(&full) {
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
        },
        Kind::Symlink => place_symlink(&full, e),
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

/// `edeploy rollback`: puts back the version before the last HTTP
/// upgrade, or undoes an interrupted one.
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
        Some(j) => j.from.clone(),
        None => {
            let mut found = None;
            if let Ok(dirs) = fs::read_dir(paths.state.join("rollback")) {
                for d in dirs.flatten() {
                    if let Ok(s) = load_json::<Saved>(&d.path().join("saved.json")) {
                        if s.to == current {
                            found = Some(s.from);
                        }
                    }
                }
            }
            found.with_context(|| {
                format!(
                    "nothing to roll back: no saved state leads to {current} \
                     (only upgrades made with --transport http keep one)"
                )
            })?
        }
    };
    let dir = paths.rollback(&from);
    let saved_path = dir.join("saved.json");
    if journal.as_ref().is_some_and(|j| j.phase == Phase::Staged) || !saved_path.exists() {
        // Interrupted before anything changed: forget the upgrade.
        let _ = fs::remove_file(paths.journal());
        if let Some(j) = &journal {
            let _ = fs::remove_dir_all(paths.staging(&j.to));
        }
        let _ = fs::remove_dir_all(&dir);
        writeln!(
            out,
            "the interrupted upgrade had changed nothing; still at {from}"
        )?;
        return Ok(from);
    }
    let saved: Saved = load_json(&saved_path)?;
    writeln!(
        out,
        "rolling {} back from {} to {}",
        saved.role, saved.to, saved.from
    )?;
    let tree = dir.join("tree");
    // What the upgrade created goes, deepest first.
    for (p, _) in saved.paths.iter().rev().filter(|(_, e)| e.is_none()) {
        let full = root.join(p);
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
    // What it changed or deleted comes back, parents first.
    for (p, e) in &saved.paths {
        let Some(e) = e else { continue };
        let full = root.join(p);
        match e.kind {
            Kind::Dir => {
                ensure_dir(&full)?;
                set_attrs(&full, e)?;
            }
            Kind::File => place_file(&full, &tree.join(p), e)?,
            Kind::Symlink => place_symlink(&full, e)?,
            _ => {}
        }
    }
    crate::persist::sync_dir(root)?;
    meta::record_version(root, &saved.role, &saved.from)?;
    if let Some(j) = &journal {
        let _ = fs::remove_dir_all(paths.staging(&j.to));
        fs::remove_file(paths.journal())
            .with_context(|| format!("{}: cannot remove", paths.journal().display()))?;
    }
    fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot remove", dir.display()))?;
    writeln!(out, "{} is back at version {}", saved.role, saved.from)?;
    Ok(saved.from)
}
