//! Checking a tree, entry by entry, against the manifest it was signed
//! with: what the installer does while it unpacks a `.edeploy` archive
//! ([`super::unpack::unpack_checked`]) and once rsync has copied a tree
//! ([`Expected::check_tree`]).
//!
//! Every entry must be in the manifest with the same type, mode (not for
//! symlinks: Linux ignores theirs), owner, group, link target, device
//! numbers and, for files, the same size and SHA-256; with a manifest
//! that lists extended attributes ([`Manifest::xattrs`]), exactly those
//! attributes and, for files, the same mtime; an entry not in the
//! manifest, or given twice, is refused; at the end every entry of the
//! manifest must have been seen. The root itself is not in a manifest
//! (an archive's `./` entry is accepted and changes nothing).
//!
//! One exception, because the packer puts it there: the manifest's own
//! directory ([`layout::MANIFESTS`]) is left out of the manifest, and the
//! tree holds the manifest itself in it
//! (`var/lib/edeploy/manifests/ROLE-VERS.manifest`). That directory is
//! accepted, and in it only that file, whose bytes must be those of the
//! signed manifest, and its detached signature (`ROLE-VERS.manifest.minisig`,
//! which `edeploy pack` writes there for the host's `verify`: a regular
//! file of at most [`crate::trust::SIGNATURE_MAX`] bytes, never run, and
//! checked by the host against its own keys); anything else there is an
//! entry not in the manifest.
//!
//! Every refusal names the artifact (`what`, a URL or a path) and who
//! vouches for the manifest (`signer`, e.g. "the signed manifest of key
//! 0123456789ABCDEF").

use super::layout;
use super::manifest::{self, hex, Entry, Kind, Manifest};
use super::xattr;
use anyhow::{anyhow, bail, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// What a tree must hold, and what has been seen of it so far.
pub struct Expected {
    manifest: Manifest,
    seen: Vec<bool>,
    /// Entries that are files whose content was hashed and matched.
    content_ok: Vec<bool>,
    /// `var/lib/edeploy/manifests/ROLE-VERS.manifest`: its size and hash.
    own_path: String,
    own_size: u64,
    own_sha256: String,
    /// The artifact, for messages.
    pub what: String,
    /// Who vouches for the manifest, for messages.
    pub signer: String,
    /// Whether entries may carry extended attributes, which a manifest
    /// does not list: only when something else vouches for them (the
    /// archive's own signature), or nothing is required.
    pub xattrs_allowed: bool,
    /// Why they are not, for the refusal.
    pub xattrs_why: String,
    /// Whether the manifest's signature was checked (by a trusted key).
    pub signed: bool,
}

/// Where an entry of the tree stands against the manifest, once its
/// header is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The manifest's entry number `0`.
    Listed(usize),
    /// The manifest's own file in the tree.
    OwnManifest,
    /// The manifest's own directory, or the root: nothing to check.
    Free,
}

/// A tree path as the manifest writes it: `Normal` components joined by
/// `/` (a leading `/` or `./`, a trailing `/` dropped); `None` with a
/// `..` or a name that is not UTF-8.
pub fn normal_path(path: &Path) -> Option<String> {
    let mut out = String::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(p.to_str()?);
            }
            Component::ParentDir => return None,
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
        }
    }
    Some(out)
}

fn octal(m: u32) -> String {
    format!("{m:04o}")
}

impl Expected {
    /// `manifest` as read from `manifest_text` (the signed bytes), for the
    /// artifact `what`, vouched for by `signer`.
    pub fn new(manifest: Manifest, manifest_text: &[u8], what: &str, signer: &str) -> Expected {
        let n = manifest.entries.len();
        let own_path = format!(
            "{}/{}",
            layout::MANIFESTS,
            layout::manifest_name(&manifest.role, &manifest.version)
        );
        Expected {
            manifest,
            seen: vec![false; n],
            content_ok: vec![false; n],
            own_path,
            own_size: manifest_text.len() as u64,
            own_sha256: hex(&Sha256::digest(manifest_text)),
            what: what.to_string(),
            signer: signer.to_string(),
            xattrs_allowed: false,
            xattrs_why: "nothing else vouches for them".into(),
            signed: false,
        }
    }

    /// Whether the manifest lists every entry's extended attributes: they
    /// are then checked with the rest of the entry ([`Expected::header`]),
    /// and nothing else needs to vouch for them.
    pub fn lists_xattrs(&self) -> bool {
        self.manifest.xattrs
    }

    /// Refuses extended attributes (`names`) on the entry at `path` unless
    /// they are allowed, or the manifest lists them (then
    /// [`Expected::header`] compares them).
    pub fn check_xattrs(&self, path: &str, names: &[String]) -> Result<()> {
        match names.first() {
            Some(first) if !self.xattrs_allowed && !self.manifest.xattrs => Err(self.refuse(
                path,
                format!(
                    "carries the extended attribute {first}, which a manifest does not list: {}",
                    self.xattrs_why
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn refuse(&self, path: &str, why: impl std::fmt::Display) -> anyhow::Error {
        anyhow!(
            "{}: entry {path} {why} (checked against {})",
            self.what,
            self.signer
        )
    }

    fn says(&self, path: &str, what: &str, found: impl std::fmt::Display) -> anyhow::Error {
        anyhow!(
            "{}: entry {path} has {found} where {} says {what}",
            self.what,
            self.signer
        )
    }

    /// Checks the header of the entry at `path` (normalized), as `found`
    /// describes it (its `sha256` unused: the content comes after). When
    /// the manifest lists extended attributes (one `edeploy pack` wrote
    /// since), `found`'s are compared, and a file's mtime.
    pub fn header(&mut self, path: &str, found: &Entry) -> Result<Slot> {
        let slot = self.header_only(path, found)?;
        if self.manifest.xattrs {
            let none = BTreeMap::new();
            let exp = match slot {
                Slot::Listed(i) => &self.manifest.entries[i].xattrs,
                Slot::OwnManifest | Slot::Free => &none,
            };
            self.same_xattrs(path, exp, &found.xattrs)?;
            // A file's mtime too (a time before 1970 is archived as 0).
            if let Slot::Listed(i) = slot {
                let want = self.manifest.entries[i].mtime.max(0);
                if found.kind == Kind::File && found.mtime != want {
                    return Err(self.says(
                        path,
                        &format!("mtime {want}"),
                        format!("mtime {}", found.mtime),
                    ));
                }
            }
        }
        Ok(slot)
    }

    /// `found`'s extended attributes are exactly `exp`.
    fn same_xattrs(
        &self,
        path: &str,
        exp: &BTreeMap<String, String>,
        found: &BTreeMap<String, String>,
    ) -> Result<()> {
        let shown = |name: &str, v: Option<&String>| match v {
            Some(v) => format!("the extended attribute {name}={v}"),
            None => format!("no extended attribute {name}"),
        };
        for name in exp.keys().chain(found.keys()) {
            let (e, f) = (exp.get(name), found.get(name));
            if e != f {
                return Err(self.says(path, &shown(name, e), shown(name, f)));
            }
        }
        Ok(())
    }

    fn header_only(&mut self, path: &str, found: &Entry) -> Result<Slot> {
        if path.is_empty() {
            // The root: a manifest does not list it.
            if found.kind != Kind::Dir {
                return Err(self.refuse("/", format!("is a {}", found.kind.name())));
            }
            return Ok(Slot::Free);
        }
        let Ok(i) = self
            .manifest
            .entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
        else {
            if path == layout::MANIFESTS && found.kind == Kind::Dir {
                return Ok(Slot::Free);
            }
            if path == self.own_path && found.kind == Kind::File {
                if found.size != self.own_size {
                    return Err(self.says(
                        path,
                        &format!("size {} (the manifest itself)", self.own_size),
                        format!("size {}", found.size),
                    ));
                }
                return Ok(Slot::OwnManifest);
            }
            if found.kind == Kind::File
                && path
                    .strip_suffix(crate::trust::SIGNATURE_EXT)
                    .and_then(|p| p.strip_suffix('.'))
                    == Some(self.own_path.as_str())
            {
                if found.size > crate::trust::SIGNATURE_MAX as u64 {
                    return Err(self.refuse(
                        path,
                        format!(
                            "is {} bytes, more than a signature may be ({})",
                            found.size,
                            crate::trust::SIGNATURE_MAX
                        ),
                    ));
                }
                return Ok(Slot::Free);
            }
            return Err(self.refuse(path, "is not in the manifest"));
        };
        if self.seen[i] {
            return Err(self.refuse(path, "appears twice"));
        }
        self.seen[i] = true;
        let exp = &self.manifest.entries[i];
        if exp.kind != found.kind {
            return Err(self.says(
                path,
                &format!("a {}", exp.kind.name()),
                format!("type {}", found.kind.name()),
            ));
        }
        if exp.kind != Kind::Symlink && exp.mode != found.mode {
            return Err(self.says(
                path,
                &format!("mode {}", octal(exp.mode)),
                format!("mode {}", octal(found.mode)),
            ));
        }
        if exp.uid != found.uid || exp.gid != found.gid {
            return Err(self.says(
                path,
                &format!("owner {}:{}", exp.uid, exp.gid),
                format!("owner {}:{}", found.uid, found.gid),
            ));
        }
        match exp.kind {
            Kind::File if exp.size != found.size => {
                return Err(self.says(
                    path,
                    &format!("size {}", exp.size),
                    format!("size {}", found.size),
                ))
            }
            Kind::Symlink if exp.target != found.target => {
                return Err(self.says(
                    path,
                    &format!("link target {:?}", exp.target.as_deref().unwrap_or("")),
                    format!(
                        "link target {:?}",
                        found.target.as_deref().unwrap_or_default()
                    ),
                ))
            }
            Kind::Char | Kind::Block if exp.rdev != found.rdev => {
                return Err(self.says(
                    path,
                    &format!("device {}", exp.rdev.unwrap_or(0)),
                    format!("device {}", found.rdev.unwrap_or(0)),
                ))
            }
            _ => {}
        }
        Ok(Slot::Listed(i))
    }

    /// Checks the SHA-256 (hex) of the content of the file at `slot`.
    pub fn content(&mut self, path: &str, slot: Slot, sha256: &str) -> Result<()> {
        let want = match slot {
            Slot::Listed(i) => self.manifest.entries[i].sha256.clone().unwrap_or_default(),
            Slot::OwnManifest => self.own_sha256.clone(),
            Slot::Free => return Ok(()),
        };
        if want != sha256 {
            return Err(self.says(path, &format!("sha256 {want}"), format!("sha256 {sha256}")));
        }
        if let Slot::Listed(i) = slot {
            self.content_ok[i] = true;
        }
        Ok(())
    }

    /// Checks a hard link `path` to `target` (both normalized): both are
    /// the same file in the manifest (size, hash, mode, owner), and the
    /// target's content was checked already.
    pub fn hard_link(&mut self, path: &str, target: &str) -> Result<()> {
        let find = |p: &str| {
            self.manifest
                .entries
                .binary_search_by(|e| e.path.as_str().cmp(p))
                .ok()
        };
        let Some(i) = find(path) else {
            return Err(self.refuse(path, "is not in the manifest"));
        };
        let Some(t) = find(target).filter(|&t| self.content_ok[t]) else {
            return Err(self.refuse(
                path,
                format!("is a hard link to {target}, which is not a file checked before it"),
            ));
        };
        if self.seen[i] {
            return Err(self.refuse(path, "appears twice"));
        }
        self.seen[i] = true;
        let (e, f) = (&self.manifest.entries[i], &self.manifest.entries[t]);
        let same = e.kind == Kind::File
            && e.size == f.size
            && e.sha256 == f.sha256
            && e.mode == f.mode
            && e.uid == f.uid
            && e.gid == f.gid
            && e.xattrs == f.xattrs;
        if !same {
            return Err(self.refuse(
                path,
                format!(
                    "is a hard link to {target}, which the manifest does not list as the same file"
                ),
            ));
        }
        self.content_ok[i] = true;
        Ok(())
    }

    /// Every entry of the manifest has been seen (but sockets, which an
    /// archive leaves out: [`super::write::write_archive`]).
    pub fn finish(&self) -> Result<()> {
        let missing: Vec<&str> = self
            .seen
            .iter()
            .zip(&self.manifest.entries)
            .filter(|(s, e)| !**s && e.kind != Kind::Socket)
            .map(|(_, e)| e.path.as_str())
            .collect();
        if let Some(first) = missing.first() {
            bail!(
                "{}: entry {first} is missing{} (checked against {})",
                self.what,
                match missing.len() {
                    1 => String::new(),
                    n => format!(", and {} more", n - 1),
                },
                self.signer
            );
        }
        Ok(())
    }

    /// Checks the whole tree at `root` (a copy, e.g. by rsync): every
    /// entry's metadata, then every file's hash (on
    /// [`manifest::workers`] threads), then what is missing.
    pub fn check_tree(&mut self, root: &Path) -> Result<()> {
        let mut found = manifest::scan(root, &manifest::KeepAll, false)
            .map_err(|e| anyhow!("{}: {e:#} (checked against {})", self.what, self.signer))?;
        let mut files: Vec<(String, Slot)> = Vec::new();
        for f in &mut found {
            if self.manifest.xattrs {
                f.xattrs = manifest::xattrs_of(&root.join(&f.path))
                    .map_err(|e| anyhow!("{}: {e:#}", self.what))?;
            }
            let slot = self.header(&f.path, f)?;
            if !self.xattrs_allowed && !self.manifest.xattrs {
                let names: Vec<String> = xattr::xattrs(&root.join(&f.path))?
                    .into_iter()
                    .map(|(n, _)| String::from_utf8_lossy(&n).into_owned())
                    .collect();
                self.check_xattrs(&f.path, &names)?;
            }
            if f.kind == Kind::File {
                files.push((f.path.clone(), slot));
            }
        }
        let paths: Vec<_> = files.iter().map(|(p, _)| root.join(p)).collect();
        let hashes = manifest::hash_paths(&paths, manifest::workers());
        for ((path, slot), h) in files.into_iter().zip(hashes) {
            let h = h.map_err(|e| self.refuse(&path, format!("cannot be read: {e}")))?;
            self.content(&path, slot, &h)?;
        }
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: Kind, size: u64, sha: Option<&str>) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size,
            mtime: 1,
            sha256: sha.map(String::from),
            target: None,
            rdev: None,
            xattrs: BTreeMap::new(),
        }
    }

    fn expected() -> Expected {
        let m = Manifest {
            role: "base".into(),
            version: "V1".into(),
            entries: vec![
                entry("etc", Kind::Dir, 0, None),
                entry("etc/a", Kind::File, 1, Some("aa")),
                entry("etc/b", Kind::File, 1, Some("aa")),
                entry("etc/c", Kind::File, 1, Some("cc")),
                entry("run.sock", Kind::Socket, 0, None),
            ],
            xattrs: false,
        };
        Expected::new(
            m,
            b"MANIFEST",
            "the archive",
            "the signed manifest of key K",
        )
    }

    #[test]
    fn paths_are_normalized_as_a_manifest_writes_them() {
        assert_eq!(
            normal_path(Path::new("./etc/hosts")).as_deref(),
            Some("etc/hosts")
        );
        assert_eq!(normal_path(Path::new("/a/b/")).as_deref(), Some("a/b"));
        assert_eq!(normal_path(Path::new("./")).as_deref(), Some(""));
        assert_eq!(normal_path(Path::new("a/../b")), None);
    }

    #[test]
    fn entries_are_checked_once_each_and_all_must_come() {
        let mut x = expected();
        let a = x.header("etc/a", &entry("etc/a", Kind::File, 1, None));
        let a = a.expect("listed");
        let e = x.content("etc/a", a, "bb").expect_err("other hash");
        assert_eq!(
            e.to_string(),
            "the archive: entry etc/a has sha256 bb where the signed manifest of key K says sha256 aa"
        );
        x.content("etc/a", a, "aa").expect("same hash");
        let e = x
            .header("etc/a", &entry("etc/a", Kind::File, 1, None))
            .expect_err("twice");
        assert!(e.to_string().contains("entry etc/a appears twice"), "{e}");
        let e = x
            .header("etc/x", &entry("etc/x", Kind::File, 1, None))
            .expect_err("extra");
        assert!(
            e.to_string().contains("etc/x is not in the manifest"),
            "{e}"
        );
        let bigger = entry("etc/c", Kind::File, 2, None);
        let e = x.header("etc/c", &bigger).expect_err("size");
        assert!(e.to_string().contains("has size 2 where"), "{e}");
        // A hard link only to a file checked before it, listed the same.
        let e = x.hard_link("etc/b", "etc/c").expect_err("unchecked target");
        assert!(
            e.to_string().contains("not a file checked before it"),
            "{e}"
        );
        x.hard_link("etc/b", "etc/a").expect("same file");
        let e = x.finish().expect_err("etc is missing");
        assert_eq!(
            e.to_string(),
            "the archive: entry etc is missing (checked against the signed manifest of key K)"
        );
        x.header("etc", &entry("etc", Kind::Dir, 0, None))
            .expect("dir");
        // etc/c was seen (its header refused); the socket may be absent.
        x.finish().expect("all seen");
    }

    #[test]
    fn the_trees_own_manifest_must_be_the_signed_one() {
        let mut x = expected();
        let own = "var/lib/edeploy/manifests/base-V1.manifest";
        let dir = entry("var/lib/edeploy/manifests", Kind::Dir, 0, None);
        assert_eq!(x.header(&dir.path, &dir).expect("dir"), Slot::Free);
        let slot = x
            .header(own, &entry(own, Kind::File, 8, None))
            .expect("same size");
        assert_eq!(slot, Slot::OwnManifest);
        let sha = hex(&Sha256::digest(b"MANIFEST"));
        x.content(own, slot, &sha).expect("same bytes");
        let other = hex(&Sha256::digest(b"MANIFESX"));
        assert!(x.content(own, slot, &other).is_err());
        assert!(x.header(own, &entry(own, Kind::File, 9, None)).is_err());
        let old = "var/lib/edeploy/manifests/base-V0.manifest";
        assert!(x.header(old, &entry(old, Kind::File, 8, None)).is_err());
        // Its signature, which the packer lays beside it for the host,
        // is accepted; another one, or a signature too large, is not.
        let sig = "var/lib/edeploy/manifests/base-V1.manifest.minisig";
        assert_eq!(
            x.header(sig, &entry(sig, Kind::File, 300, None))
                .expect("the manifest's signature"),
            Slot::Free
        );
        let other = "var/lib/edeploy/manifests/base-V0.manifest.minisig";
        assert!(x
            .header(other, &entry(other, Kind::File, 300, None))
            .is_err());
        let big = crate::trust::SIGNATURE_MAX as u64 + 1;
        assert!(x.header(sig, &entry(sig, Kind::File, big, None)).is_err());
        assert!(x.header(sig, &entry(sig, Kind::Dir, 0, None)).is_err());
    }

    #[test]
    fn extended_attributes_are_refused_unless_allowed() {
        let mut x = expected();
        assert!(x.check_xattrs("etc/a", &[]).is_ok());
        let e = x
            .check_xattrs("etc/a", &["security.capability".into()])
            .expect_err("not allowed");
        assert!(
            e.to_string()
                .contains("etc/a carries the extended attribute security.capability"),
            "{e}"
        );
        x.xattrs_allowed = true;
        assert!(x.check_xattrs("etc/a", &["user.x".into()]).is_ok());
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn listed_extended_attributes_must_be_exactly_those_of_the_manifest() {
        let mut m = expected().manifest;
        m.xattrs = true;
        m.entries[1].xattrs = attrs(&[("security.capability", "01"), ("user.a", "02")]);
        m.entries[2].xattrs = m.entries[1].xattrs.clone();
        let fresh = || Expected::new(m.clone(), b"MANIFEST", "the archive", "the key K");
        let with = |path: &str, x: &[(&str, &str)]| Entry {
            xattrs: attrs(x),
            ..entry(path, Kind::File, 1, None)
        };
        // Listed: nothing else needs to vouch for them.
        let mut x = fresh();
        assert!(x.lists_xattrs());
        assert!(x.check_xattrs("etc/a", &["user.a".into()]).is_ok());
        let ok = [("security.capability", "01"), ("user.a", "02")];
        assert!(x.header("etc/a", &with("etc/a", &ok)).is_ok());
        // A value changed, one missing, one added: each refused, naming it.
        for (found, says) in [
            (
                vec![("security.capability", "ff"), ("user.a", "02")],
                "has the extended attribute security.capability=ff where the key K says \
                 the extended attribute security.capability=01",
            ),
            (
                vec![("user.a", "02")],
                "has no extended attribute security.capability where the key K says the \
                 extended attribute security.capability=01",
            ),
            (
                vec![
                    ("security.capability", "01"),
                    ("user.a", "02"),
                    ("user.z", "00"),
                ],
                "has the extended attribute user.z=00 where the key K says no extended \
                 attribute user.z",
            ),
        ] {
            let e = fresh()
                .header("etc/a", &with("etc/a", &found))
                .expect_err("refused");
            assert!(e.to_string().contains(says), "{e}");
        }
        // A file's mtime is checked with them.
        let moved = Entry {
            mtime: 7,
            ..with("etc/a", &ok)
        };
        let e = fresh().header("etc/a", &moved).expect_err("refused");
        assert!(
            e.to_string()
                .contains("etc/a has mtime 7 where the key K says mtime 1"),
            "{e}"
        );
        // An entry the manifest lists none for has none.
        let e = fresh()
            .header("etc/c", &with("etc/c", &[("user.a", "02")]))
            .expect_err("refused");
        assert!(
            e.to_string()
                .contains("etc/c has the extended attribute user.a=02"),
            "{e}"
        );
        assert!(fresh().header("etc/c", &with("etc/c", &[])).is_ok());
        // Hard links: the same file has the same attributes.
        let mut x = fresh();
        x.header("etc/a", &with("etc/a", &ok)).unwrap();
        x.content("etc/a", Slot::Listed(1), "aa").unwrap();
        assert!(x.hard_link("etc/b", "etc/a").is_ok());
        let mut m2 = m.clone();
        m2.entries[2].xattrs.clear();
        let mut x = Expected::new(m2, b"MANIFEST", "the archive", "the key K");
        x.header("etc/a", &with("etc/a", &ok)).unwrap();
        x.content("etc/a", Slot::Listed(1), "aa").unwrap();
        assert!(x.hard_link("etc/b", "etc/a").is_err());
    }
}
