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
//!   [`super::delta`]), from `DIR/FROM/ROLE-FROM.manifest` and the
//!   metadata in `--metadata MDIR` (`MDIR/FROM/ROLE/VERS/`).

use super::delta;
use super::exclude::Rules;
use super::manifest::{self, Kind, Manifest};
use super::meta::Metadata;
use anyhow::{Context, Result};
use flate2::write::GzEncoder;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to write besides the manifest.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Write `ROLE-VERS.edeploy`.
    pub archive: bool,
    /// Versions to write a delta from.
    pub from: Vec<String>,
    /// The metadata tree (`FROM/ROLE/TO/` under it).
    pub metadata: Option<PathBuf>,
}

/// Where the manifest sits inside a tree.
pub const IN_TREE: &str = "var/lib/edeploy/manifests";

/// Packs the tree at `tree`.
pub fn pack(
    out: &mut dyn Write,
    tree: &Path,
    role: &str,
    version: &str,
    install: &Path,
    opts: &Options,
) -> Result<Manifest> {
    let dir = install.join(version);
    fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    // The manifest's own directory exists before the scan, so its parents
    // (`/var`, `/var/lib`...) are in the manifest like any directory.
    let in_tree = tree.join(IN_TREE);
    fs::create_dir_all(&in_tree)
        .with_context(|| format!("{}: cannot create", in_tree.display()))?;
    let skip = Rules::excluding(&[format!("/{IN_TREE}")]);
    let m = Manifest::build(tree, role, version, &skip)
        .with_context(|| format!("{}: cannot build the manifest", tree.display()))?;
    let name = manifest::file_name(role, version);
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
        let a = dir.join(format!("{role}-{version}.edeploy"));
        write_archive(tree, &a)?;
        writeln!(out, "{}", a.display())?;
    }
    for from in &opts.from {
        let old = Manifest::load(&install.join(from).join(manifest::file_name(role, from)))
            .with_context(|| format!("the delta from {from} needs {from}'s manifest"))?;
        let mdir = opts
            .metadata
            .as_ref()
            .context("--from needs --metadata (the upgrade path's exclude and add_only)")?
            .join(from)
            .join(role)
            .join(version);
        let meta = Metadata::load(&mdir, &format!("upgrade {role} {from} -> {version}"))?;
        let dest = dir.join(delta::file_name(role, from, version));
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

/// Writes the whole tree as a gzip'd tar (numeric owners, modes, times,
/// symlinks not followed).
pub fn write_archive(tree: &Path, dest: &Path) -> Result<()> {
    let tmp = dest.with_extension("edeploy-tmp");
    let f = File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    let gz = GzEncoder::new(std::io::BufWriter::new(f), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    let entries = manifest::scan(tree, &Rules::default(), false)?;
    for e in &entries {
        if matches!(e.kind, Kind::Socket) {
            continue;
        }
        tar.append_path_with_name(tree.join(&e.path), &e.path)
            .with_context(|| format!("{}: cannot archive", tree.join(&e.path).display()))?;
    }
    let w = tar
        .into_inner()
        .context("cannot finish the archive")?
        .finish()
        .context("cannot finish the archive")?;
    let f = w
        .into_inner()
        .map_err(|e| e.into_error())
        .context("cannot write the archive")?;
    f.sync_all().context("cannot write the archive")?;
    fs::rename(&tmp, dest).with_context(|| format!("{}: cannot rename", dest.display()))
}
