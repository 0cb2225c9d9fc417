//! `edeploy verify`: what differs on this host from its version's tree.
//!
//! Offline, against the local manifest
//! (`ROOT/var/lib/edeploy/manifests/ROLE-VERS.manifest`): every file is
//! hashed (in parallel, see [`crate::archive::manifest`]), so a change that keeps
//! the size and the mtime is still found. Online, against the server's
//! tree with `rsync -n -c` ([`super::rsync::verify`]). Both give a
//! [`VerifyReport`] that prints for humans or as JSON.
//!
//! What is not compared: the built-in exclusions (kernel filesystems,
//! `/tmp`, `/run`, eDeploy's state), `/etc/motd` (edeploy writes its
//! role line there), and the `exclude` and `add_only` paths of the upgrade
//! that brought the host to its version. Directory mtimes are not
//! compared either: every file created in a directory changes it.

use super::exclude::{Rules, BUILTIN, VERIFY_IGNORED};
use super::itemize::{Change, What};
use super::meta;
use crate::archive::layout;
use crate::archive::manifest::{self, Entry, Kind, Manifest};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How a path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    /// Its content or its type differs.
    Modified,
    /// The reference has it, the host does not.
    Missing,
    /// The host has it, the reference does not.
    Extra,
    /// Same content; mode, owner, group, link target or mtime differ.
    Metadata,
}

/// One path that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub path: String,
    pub kind: DiffKind,
    pub details: Vec<String>,
}

impl Difference {
    /// Reads an rsync itemized change (reference → host) as a difference.
    pub fn from_change(c: Change) -> Difference {
        let (kind, details) = match c.what {
            What::New => (DiffKind::Missing, Vec::new()),
            What::Deleted => (DiffKind::Extra, Vec::new()),
            What::Changed(a) => {
                let kind = if a.iter().any(|x| *x == "content" || *x == "type") {
                    DiffKind::Modified
                } else {
                    DiffKind::Metadata
                };
                (kind, a.iter().map(|s| s.to_string()).collect())
            }
        };
        Difference {
            path: c.path,
            kind,
            details,
        }
    }
}

/// Reads rsync's itemized changes (reference → host) as differences,
/// folding what lies below a missing or extra directory into that
/// directory's line, as the offline check does.
pub fn from_changes(changes: Vec<Change>) -> Vec<Difference> {
    let mut dirs: Vec<String> = changes
        .iter()
        .filter(|c| c.is_dir && matches!(c.what, What::New | What::Deleted))
        .map(|c| c.path.clone())
        .collect();
    dirs.sort();
    let mut below: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for c in changes {
        if c.is_dir && c.times_only() {
            continue;
        }
        if let Some(top) = top_below(&c.path, &dirs) {
            *below.entry(top).or_default() += 1;
            continue;
        }
        out.push(Difference::from_change(c));
    }
    for d in &mut out {
        if let Some(n) = below.get(&d.path) {
            d.details.push(format!("and {n} entries below"));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The outermost of `dirs` (sorted) that `path` lies below.
fn top_below(path: &str, dirs: &[String]) -> Option<String> {
    let mut found = None;
    let mut p = path;
    while let Some(i) = p.rfind('/') {
        p = &p[..i];
        if dirs.binary_search_by(|d| d.as_str().cmp(p)).is_ok() {
            found = Some(p.to_string());
        }
    }
    found
}

/// The result of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub role: String,
    pub version: String,
    /// The manifest file or the server's tree compared against.
    pub against: String,
    /// How many entries were compared (offline only).
    pub checked: Option<usize>,
    pub differences: Vec<Difference>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }

    /// The report for humans: one line per difference, then a summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.differences {
            let kind = match d.kind {
                DiffKind::Modified => "modified",
                DiffKind::Missing => "missing ",
                DiffKind::Extra => "extra   ",
                DiffKind::Metadata => "metadata",
            };
            out.push_str(&format!("{kind}  /{}", d.path));
            if !d.details.is_empty() {
                out.push_str(": ");
                out.push_str(&d.details.join("; "));
            }
            out.push('\n');
        }
        let checked = match self.checked {
            Some(n) => format!("{n} entries checked against {}", self.against),
            None => format!("compared with {}", self.against),
        };
        match self.differences.len() {
            0 => out.push_str(&format!(
                "{} {}: no difference ({checked})\n",
                self.role, self.version
            )),
            n => out.push_str(&format!(
                "{} {}: {n} difference{} ({checked})\n",
                self.role,
                self.version,
                if n == 1 { "" } else { "s" }
            )),
        }
        out
    }
}

/// What verify leaves out on a host at `version`: the built-in list,
/// `/etc/motd`, the role's own list of what belongs to each host
/// (`ROOT/var/lib/edeploy/exclude`, shipped in the tree: a freshly
/// installed host has no upgrade's `exclude` yet), and the `add_only` and
/// `exclude` of `ROOT/var/lib/edeploy/VERSION/` when the host was
/// upgraded there.
pub fn skip_rules(root: &Path, version: &str) -> Rules {
    let mut rules = Rules::excluding(BUILTIN);
    rules.extend(&Rules::excluding(VERIFY_IGNORED));
    if let Ok(text) = std::fs::read_to_string(meta::state_dir(root).join("exclude")) {
        rules.extend(&Rules::parse(&text));
    }
    let dir = meta::state_dir(root).join(version);
    if let Ok(text) = std::fs::read_to_string(dir.join("add_only")) {
        let add: Vec<String> = meta::parse_add_only(&text)
            .into_iter()
            .map(|p| format!("/{p}"))
            .collect();
        rules.extend(&Rules::excluding(&add));
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("exclude")) {
        rules.extend(&Rules::parse(&text));
    }
    rules
}

fn octal(m: u32) -> String {
    format!("{m:04o}")
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// Compares one path; `found_hash` is the host file's hash when both are
/// files of the same size.
fn compare(exp: &Entry, found: &Entry, found_hash: Option<&str>) -> Option<Difference> {
    let mut content = Vec::new();
    let mut meta = Vec::new();
    if exp.kind != found.kind {
        content.push(format!(
            "a {}, expected a {}",
            found.kind.name(),
            exp.kind.name()
        ));
    } else {
        match exp.kind {
            Kind::File => {
                if exp.size != found.size {
                    content.push(format!(
                        "content differs (size {}, expected {})",
                        found.size, exp.size
                    ));
                } else if let (Some(e), Some(f)) = (exp.sha256.as_deref(), found_hash) {
                    if e != f {
                        content.push(format!(
                            "content differs (sha256 {}…, expected {}…)",
                            short(f),
                            short(e)
                        ));
                    }
                }
                if exp.mtime != found.mtime {
                    meta.push(format!("mtime {}, expected {}", found.mtime, exp.mtime));
                }
            }
            Kind::Symlink if exp.target != found.target => {
                meta.push(format!(
                    "link target {}, expected {}",
                    found.target.as_deref().unwrap_or("?"),
                    exp.target.as_deref().unwrap_or("?")
                ));
            }
            Kind::Char | Kind::Block if exp.rdev != found.rdev => {
                content.push(format!(
                    "device {}, expected {}",
                    found.rdev.unwrap_or(0),
                    exp.rdev.unwrap_or(0)
                ));
            }
            _ => {}
        }
        // Symlink permissions mean nothing on Linux.
        if exp.kind != Kind::Symlink && exp.mode != found.mode {
            meta.push(format!(
                "mode {}, expected {}",
                octal(found.mode),
                octal(exp.mode)
            ));
        }
        if exp.uid != found.uid {
            meta.push(format!("owner {}, expected {}", found.uid, exp.uid));
        }
        if exp.gid != found.gid {
            meta.push(format!("group {}, expected {}", found.gid, exp.gid));
        }
    }
    if content.is_empty() && meta.is_empty() {
        return None;
    }
    let kind = if content.is_empty() {
        DiffKind::Metadata
    } else {
        DiffKind::Modified
    };
    content.extend(meta);
    Some(Difference {
        path: exp.path.clone(),
        kind,
        details: content,
    })
}

/// Records `e` as missing or extra; a directory also goes in `dirs`
/// (kept sorted), so what is below it is counted rather than listed.
fn push_absent(
    differences: &mut Vec<Difference>,
    dirs: &mut Vec<String>,
    e: &Entry,
    kind: DiffKind,
) {
    if e.kind == Kind::Dir {
        let pos = dirs.binary_search(&e.path).unwrap_or_else(|p| p);
        dirs.insert(pos, e.path.clone());
    }
    differences.push(Difference {
        path: e.path.clone(),
        kind,
        details: Vec::new(),
    });
}

/// Checks the tree at `root` against `manifest`, offline, leaving out
/// what `skip` excludes. Entries below a missing or extra directory are
/// counted into that directory's line rather than listed one by one.
pub fn offline(
    root: &Path,
    manifest: &Manifest,
    skip: &Rules,
    against: &str,
) -> Result<VerifyReport> {
    let host = manifest::scan(root, skip, true)?;
    let expected: Vec<&Entry> = manifest
        .entries
        .iter()
        .filter(|e| !skip.excludes(&e.path, e.kind == Kind::Dir))
        .collect();
    let by_path: HashMap<&str, &Entry> = host.iter().map(|e| (e.path.as_str(), e)).collect();
    // Hash the host's files where the manifest expects a file of that size.
    let mut to_hash: Vec<PathBuf> = Vec::new();
    let mut hash_slot: HashMap<&str, usize> = HashMap::new();
    for e in &expected {
        if let (Kind::File, Some(f)) = (e.kind, by_path.get(e.path.as_str())) {
            if f.kind == Kind::File && f.size == e.size {
                hash_slot.insert(e.path.as_str(), to_hash.len());
                to_hash.push(root.join(&e.path));
            }
        }
    }
    let hashes = manifest::hash_paths(&to_hash, manifest::workers());
    let mut differences = Vec::new();
    let mut missing_dirs: Vec<String> = Vec::new();
    let mut below: HashMap<String, usize> = HashMap::new();
    for e in &expected {
        if let Some(top) = top_below(&e.path, &missing_dirs) {
            *below.entry(top).or_default() += 1;
            continue;
        }
        match by_path.get(e.path.as_str()) {
            None => push_absent(&mut differences, &mut missing_dirs, e, DiffKind::Missing),
            Some(found) => {
                let hash = match hash_slot.get(e.path.as_str()) {
                    Some(&i) => match &hashes[i] {
                        Ok(h) => Some(h.as_str()),
                        Err(err) => {
                            differences.push(Difference {
                                path: e.path.clone(),
                                kind: DiffKind::Modified,
                                details: vec![format!("cannot read: {err}")],
                            });
                            continue;
                        }
                    },
                    None => None,
                };
                if let Some(d) = compare(e, found, hash) {
                    differences.push(d);
                }
            }
        }
    }
    let mut extra_dirs: Vec<String> = Vec::new();
    for f in &host {
        if manifest.get(&f.path).is_some() {
            continue;
        }
        if let Some(top) = top_below(&f.path, &extra_dirs) {
            *below.entry(top).or_default() += 1;
            continue;
        }
        push_absent(&mut differences, &mut extra_dirs, f, DiffKind::Extra);
    }
    for d in &mut differences {
        if let Some(n) = below.get(&d.path) {
            d.details.push(format!("and {n} entries below"));
        }
    }
    differences.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(VerifyReport {
        role: manifest.role.clone(),
        version: manifest.version.clone(),
        against: against.to_string(),
        checked: Some(expected.len()),
        differences,
    })
}

/// `edeploy verify` offline: the host's version and role from its conf,
/// the local manifest (or `manifest_file`), the usual leave-outs.
pub fn verify_host(root: &Path, manifest_file: Option<&Path>) -> Result<VerifyReport> {
    let conf = super::conf::Conf::load(root)?;
    let (version, role) = (conf.version()?, conf.role()?);
    let path = match manifest_file {
        Some(p) => p.to_path_buf(),
        None => layout::manifest_path(root, role, version),
    };
    // The manifest's signature, beside it, when present or required.
    let trust = super::signed::HostTrust::load(root, &conf)?;
    let what = path.display().to_string();
    trust
        .check_file(&path, &what)
        .context("refusing to verify against this manifest")?;
    let m = Manifest::load(&path)?;
    if m.role != role || m.version != version {
        anyhow::bail!(
            "{}: a manifest of {} {}, but this host runs {role} {version}",
            path.display(),
            m.role,
            m.version
        );
    }
    offline(
        root,
        &m,
        &skip_rules(root, version),
        &path.display().to_string(),
    )
}

/// Whether the host has a local manifest for its version.
pub fn has_local_manifest(root: &Path) -> bool {
    super::conf::Conf::load(root)
        .ok()
        .and_then(|c| {
            Some(layout::manifest_path(root, c.role().ok()?, c.version().ok()?).is_file())
        })
        .unwrap_or(false)
}
