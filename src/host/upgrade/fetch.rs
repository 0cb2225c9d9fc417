//! The first phase of an HTTP upgrade: downloading the delta archive
//! (over `https://` with `HTTPS=1` in the conf, checked against the
//! host's pinned CA).

use super::{Paths, Versions};
use crate::archive::delta;
use crate::host::conf::Conf;
use crate::host::http;
use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Downloads `HSERV/.../TO/ROLE-FROM-TO.delta` to the download directory
/// and returns where it is. The server's "not found" names the missing
/// upgrade path.
pub(super) fn fetch(
    root: &Path,
    conf: &Conf,
    paths: &Paths,
    v: &Versions,
    out: &mut dyn Write,
) -> Result<PathBuf> {
    let Versions { role, from, to } = v;
    let (host, port, hpath) = conf.http_server()?;
    let name = delta::file_name(role, from, to);
    let url = crate::net::with_scheme(
        &crate::archive::layout::http_url(&host, port, &format!("{hpath}/{to}/{name}")),
        conf.https()?,
    );
    writeln!(out, "upgrading {role} from {from} to {to} over HTTP")?;
    let archive = paths.download(&name);
    if let Some(d) = archive.parent() {
        fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
    }
    let bytes = http::download(&url, &archive, root).map_err(|e| {
        if e.to_string().contains("HTTP 404") {
            e.context(format!(
                "no delta from {from} to {to} for role {role} on the server"
            ))
        } else {
            e
        }
    })?;
    writeln!(out, "fetched {url} ({bytes} bytes)")?;
    Ok(archive)
}
