//! The second phase of an HTTP upgrade: the downloaded archive unpacked
//! and checked in a staging directory, then the journal started.

use super::journal::{self, Journal, Phase};
use super::{Paths, Versions};
use crate::archive::delta::{self, Index};
use crate::archive::manifest::Manifest;
use crate::host::meta::Metadata;
use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// What a staged upgrade works from.
pub(super) struct Staged {
    /// The staging directory, as [`delta::unpack`] fills it.
    pub dir: PathBuf,
    pub index: Index,
    /// TO's manifest.
    pub target: Manifest,
    pub meta: Metadata,
}

impl Staged {
    /// Reads back what [`stage`] kept.
    pub fn load(paths: &Paths, v: &Versions) -> Result<Staged> {
        let dir = paths.staging(&v.to);
        Ok(Staged {
            index: journal::load_json(&dir.join("index.json"))?,
            target: Manifest::load(&dir.join("manifest"))?,
            meta: Metadata::load(&paths.meta(&v.to), &v.what())?,
            dir,
        })
    }
}

/// Unpacks and checks `archive` (removed once staged), puts the upgrade
/// path's metadata in place and starts the journal. A refused archive
/// leaves nothing behind.
pub(super) fn stage(paths: &Paths, v: &Versions, archive: &Path) -> Result<Journal> {
    let staging = paths.staging(&v.to);
    let cleanup = [staging.as_path(), archive];
    let unpacked = delta::unpack(archive, &staging, &v.role, &v.from, &v.to).and_then(|(i, m)| {
        journal::save_json(&staging.join("index.json"), &i)?;
        Ok(m)
    });
    let m = refuse_or(unpacked, &cleanup)?;
    refuse_or(Metadata::load(&staging.join("meta"), &v.what()), &cleanup)?;
    m.save(&staging.join("manifest"))?;
    let _ = fs::remove_file(archive);
    let meta_dir = paths.meta(&v.to);
    let _ = fs::remove_dir_all(&meta_dir);
    copy_dir_files(&staging.join("meta"), &meta_dir)?;
    let j = Journal {
        v: v.clone(),
        phase: Phase::Staged,
        deletes: Vec::new(),
        puts: Vec::new(),
    };
    journal::save_json(&paths.journal(), &j)?;
    Ok(j)
}

/// `r`, or its error once `cleanup` is removed.
fn refuse_or<T>(r: Result<T>, cleanup: &[&Path]) -> Result<T> {
    if r.is_err() {
        for p in cleanup {
            let _ = fs::remove_dir_all(p);
            let _ = fs::remove_file(p);
        }
    }
    r.map_err(|e| e.context("refusing the delta; nothing was changed"))
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
