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

use super::exclude::Rules;
use super::meta::Metadata;
use crate::archive::delta;
use crate::archive::layout;
use crate::archive::manifest::{Kind, Manifest};
use crate::archive::write::write_archive;
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

/// Packs the tree at `tree`.
pub fn pack(
    out: &mut dyn Write,
    tree: &Path,
    role: &str,
    version: &str,
    install: &Path,
    opts: &PackOptions,
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
    m.save(&in_tree.join(&name))?;
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
    }
    Ok(m)
}
