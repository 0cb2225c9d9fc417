//! The operator's side: packing a role version's tree for hosts.
//!
//! `edeploy pack TREE --role ROLE --version VERS --install DIR` writes,
//! under `DIR/VERS/`:
//!
//! - `ROLE-VERS.manifest`, also copied into the tree as
//!   `var/lib/edeploy/manifests/ROLE-VERS.manifest`, so a host installed
//!   from the tree can verify itself offline (the manifest leaves out its
//!   own directory);
//! - `ROLE-VERS.edeploy`, the tree as a gzip'd tar for the installer's
//!   HTTP transport (unless `--no-archive`);
//! - for each `--from FROM`, `ROLE-FROM-VERS.delta` (see
//!   [`crate::archive::delta`]), from `DIR/FROM/ROLE-FROM.manifest` and the
//!   metadata in `--metadata MDIR` (`MDIR/FROM/ROLE/VERS/`).
//!
//! With a signing key ([`pack_signed`]), each of them gets its detached
//! signature beside it (`FILE.minisig`, the in-tree copy of the manifest
//! too), and so does each metadata file of the upgrade paths packed
//! ([`super::signed::sign_metadata`]).

use super::exclude::Rules;
use super::meta::Metadata;
use crate::archive::delta;
use crate::archive::layout;
use crate::archive::manifest::{Kind, Manifest};
use crate::archive::write::write_archive;
use crate::trust::SigningKey;
use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `edeploy pack` writes besides the manifest.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Write `ROLE-VERS.edeploy`.
    pub archive: bool,
    /// Versions to write a delta from.
    pub from: Vec<String>,
    /// The metadata tree (`FROM/ROLE/TO/` under it).
    pub metadata: Option<PathBuf>,
}

/// Packs the tree at `tree`, unsigned.
pub fn pack(
    out: &mut dyn Write,
    tree: &Path,
    role: &str,
    version: &str,
    install: &Path,
    opts: &PackOptions,
) -> Result<Manifest> {
    pack_signed(out, tree, role, version, install, opts, None)
}

/// Signs `path` with `key` when there is one, saying so on `out`;
/// without a key, removes a signature left by an earlier pack (it no
/// longer matches).
fn sign(out: &mut dyn Write, key: Option<&SigningKey>, path: &Path) -> Result<()> {
    match key {
        Some(key) => {
            let sig = super::signed::sign_file(key, path, &[])?;
            writeln!(out, "{} (key {})", sig.display(), key.id())?;
        }
        None => {
            let stale = crate::trust::signature_path(path);
            match fs::remove_file(&stale) {
                Ok(()) => writeln!(out, "{}: removed (stale)", stale.display())?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("{}: cannot remove", stale.display()))
                }
            }
        }
    }
    Ok(())
}

/// [`pack`], every file written signed by `key` when there is one.
pub fn pack_signed(
    out: &mut dyn Write,
    tree: &Path,
    role: &str,
    version: &str,
    install: &Path,
    opts: &PackOptions,
    key: Option<&SigningKey>,
) -> Result<Manifest> {
    let dir = layout::repo_version(install, version);
    fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    // The manifest's own directory exists before the scan, so its parents
    // (`/var`, `/var/lib`...) are in the manifest like any directory.
    let in_tree = tree.join(layout::MANIFESTS);
    fs::create_dir_all(&in_tree)
        .with_context(|| format!("{}: cannot create", in_tree.display()))?;
    let skip = Rules::excluding(&[format!("/{}", layout::MANIFESTS)]);
    let m = Manifest::build(tree, role, version, &skip)
        .with_context(|| format!("{}: cannot build the manifest", tree.display()))?;
    let name = layout::manifest_name(role, version);
    let path = dir.join(&name);
    m.save(&path)?;
    sign(out, key, &path)?;
    let in_tree_copy = in_tree.join(&name);
    m.save(&in_tree_copy)?;
    // Signed in place, so a host installed from the tree can check its
    // local manifest (the manifest leaves its own directory out).
    sign(&mut std::io::sink(), key, &in_tree_copy)?;
    let files = m.entries.iter().filter(|e| e.kind == Kind::File).count();
    writeln!(
        out,
        "{}: {} entries, {} files",
        path.display(),
        m.entries.len(),
        files
    )?;
    if opts.archive {
        let a = layout::repo_archive(install, role, version);
        write_archive(tree, &a)?;
        writeln!(out, "{}", a.display())?;
        sign(out, key, &a)?;
    }
    for from in &opts.from {
        let old = Manifest::load(&layout::repo_manifest(install, role, from))
            .with_context(|| format!("the delta from {from} needs {from}'s manifest"))?;
        let mdir = opts
            .metadata
            .as_ref()
            .context("--from needs --metadata (the upgrade path's exclude and add_only)")?
            .join(from)
            .join(role)
            .join(version);
        let meta = Metadata::load(&mdir, &format!("upgrade {role} {from} -> {version}"))?;
        if let Some(key) = key {
            let upgrade = format!("{from}/{role}/{version}");
            for sig in super::signed::sign_metadata_of(key, &mdir, &upgrade)? {
                writeln!(out, "{} (key {})", sig.display(), key.id())?;
            }
        }
        let dest = dir.join(layout::delta_name(role, from, version));
        let idx = delta::write(&old, &m, tree, &meta, &dest)?;
        let size = fs::metadata(&dest).map(|md| md.len()).unwrap_or(0);
        writeln!(
            out,
            "{}: {} changed, {} shipped, {} deleted, {size} bytes",
            dest.display(),
            idx.changed.len(),
            idx.content.len(),
            idx.deleted.len()
        )?;
        sign(out, key, &dest)?;
    }
    Ok(m)
}
