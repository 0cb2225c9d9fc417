//! The first phase of an HTTP upgrade: downloading the delta archive
//! (over `https://` with `HTTPS=1` in the conf, checked against the
//! host's pinned CA) and authenticating it before anything is staged.

use super::{Paths, Versions};
use crate::archive::delta;
use crate::archive::layout;
use crate::archive::manifest;
use crate::host::conf::Conf;
use crate::host::http;
use crate::host::signed::HostTrust;
use crate::trust;
use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What [`fetch`] brings: the authenticated delta, and the signature of
/// the target manifest to keep beside it once installed.
pub(super) struct Fetched {
    pub archive: PathBuf,
    /// The signature of TO's manifest and its URL.
    pub manifest_sig: Option<(String, String)>,
}

/// Downloads `HSERV/.../TO/ROLE-FROM-TO.delta` to the download directory,
/// checks its signature (`….delta.minisig`, fetched next to it) and that
/// it starts from this host's manifest, and returns where it is. The
/// server's "not found" names the missing upgrade path. A refused delta
/// is removed: nothing was changed.
pub(super) fn fetch(
    root: &Path,
    conf: &Conf,
    paths: &Paths,
    v: &Versions,
    out: &mut dyn Write,
) -> Result<Fetched> {
    let Versions { role, from, to } = v;
    let trust = HostTrust::load(root, conf)?;
    let (host, port, hpath) = conf.http_server()?;
    let name = delta::file_name(role, from, to);
    let url = crate::net::with_scheme(
        &layout::http_url(&host, port, &format!("{hpath}/{to}/{name}")),
        conf.https()?,
    );
    writeln!(out, "upgrading {role} from {from} to {to} over HTTP")?;
    let archive = paths.download(&name);
    let download_dir = archive.parent().map(Path::to_path_buf);
    let made_dir = match &download_dir {
        Some(d) if !d.exists() => {
            fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
            true
        }
        _ => false,
    };
    let forget = || {
        let _ = fs::remove_file(&archive);
        if made_dir {
            if let Some(d) = &download_dir {
                let _ = fs::remove_dir(d);
            }
        }
    };
    let bytes = match http::download(&url, &archive, root) {
        Ok(b) => b,
        Err(e) => {
            forget();
            if e.to_string().contains("HTTP 404") {
                return Err(e.context(format!(
                    "no delta from {from} to {to} for role {role} on the server"
                )));
            }
            return Err(e);
        }
    };
    writeln!(out, "fetched {url} ({bytes} bytes)")?;
    match authenticate(
        root, &trust, v, &url, &name, &archive, &hpath, &host, port, out,
    ) {
        Ok(manifest_sig) => Ok(Fetched {
            archive,
            manifest_sig,
        }),
        Err(e) => {
            forget();
            Err(e.context("refusing the delta; nothing was changed"))
        }
    }
}

/// The checks of a downloaded delta, before it is unpacked: its
/// signature, then its starting point. Returns the signature of TO's
/// manifest from the server, when there is one.
#[allow(clippy::too_many_arguments)]
fn authenticate(
    root: &Path,
    trust: &HostTrust,
    v: &Versions,
    url: &str,
    name: &str,
    archive: &Path,
    hpath: &str,
    host: &str,
    port: u16,
    out: &mut dyn Write,
) -> Result<Option<(String, String)>> {
    let sig_url = format!("{url}.{}", trust::SIGNATURE_EXT);
    let sig = fetch_signature(&sig_url, root)?;
    let file =
        fs::File::open(archive).with_context(|| format!("{}: cannot read", archive.display()))?;
    let good = trust.check_reader(
        url,
        std::io::BufReader::new(file),
        sig.as_deref(),
        &sig_url,
        Some(name),
    )?;
    if let Some(g) = &good {
        writeln!(out, "{url}: signature by key {} is good", g.key)?;
    }
    check_starting_point(root, trust, v, url, archive, good.as_ref().map(|g| g.key))?;
    // TO's manifest is installed for `verify`: its signature goes with it.
    let mname = layout::manifest_name(&v.role, &v.to);
    let msig_url = crate::net::with_scheme(
        &layout::http_url(
            host,
            port,
            &format!("{hpath}/{}/{mname}.{}", v.to, trust::SIGNATURE_EXT),
        ),
        crate::net::is_https(url),
    );
    let msig = fetch_signature(&msig_url, root)?;
    if msig.is_none() && trust.policy.require {
        bail!(
            "{msig_url}: no signature of the target manifest on the server; `verify` \
             would refuse the manifest this upgrade installs ({})",
            trust.keys()
        );
    }
    Ok(msig.map(|s| (s, msig_url)))
}

fn fetch_signature(url: &str, root: &Path) -> Result<Option<String>> {
    match http::fetch_small(url, trust::SIGNATURE_MAX, root)? {
        None => Ok(None),
        Some(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| anyhow!("{url}: not a signature (not text)")),
    }
}

/// The delta must start from the manifest this host has for FROM
/// (`var/lib/edeploy/manifests/ROLE-FROM.manifest`): its `from_manifest`
/// is that file's SHA-256. Refused when signatures are required; a
/// warning otherwise (an unsigned index proves nothing anyway).
fn check_starting_point(
    root: &Path,
    trust: &HostTrust,
    v: &Versions,
    url: &str,
    archive: &Path,
    signed_by: Option<trust::KeyId>,
) -> Result<()> {
    let signed = match signed_by {
        Some(k) => format!("signed by key {k}"),
        None => format!("unsigned; {}", trust.keys()),
    };
    let index = delta::read_index_of(archive).with_context(|| format!("{url}: unreadable"))?;
    let mine = layout::manifest_path(root, &v.role, &v.from);
    let problem = match fs::read(&mine) {
        Ok(bytes) => {
            let sha = manifest::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            if sha == index.from_manifest {
                return Ok(());
            }
            format!(
                "{url} ({signed}): a delta from the manifest {}…, but this host's {} is {}…: \
                 a delta for another starting point",
                index
                    .from_manifest
                    .get(..12)
                    .unwrap_or(&index.from_manifest),
                mine.display(),
                &sha[..12]
            )
        }
        Err(e) => format!(
            "{url} ({signed}): cannot check the delta's starting point: {}: {e}",
            mine.display()
        ),
    };
    if trust.policy.require {
        bail!("{problem}");
    }
    eprintln!("edeploy: WARNING: {problem} (accepted: signatures are not required here)");
    Ok(())
}
