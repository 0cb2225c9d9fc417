//! Fetching one file over HTTP or HTTPS, with a progress bar on a terminal.
//!
//! Deltas are static files, so any web server, cache or mirror serves
//! them; the client needs GET and nothing else. An `https://` server must
//! show a certificate of the host's pinned CA, `ROOT/etc/edeploy/ca.pem`
//! ([`crate::net`]). The download goes to its
//! temporary name (`.NAME.edeploy-new`, see [`crate::archive::place`]),
//! synced and renamed into place when complete, so a cut transfer never
//! looks like a whole archive.

use crate::archive::place::{self, Attrs, Content, How};
use crate::net::{self, NetError};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

/// The host's client: its pinned CA (`root/etc/edeploy/ca.pem`) when
/// there is one.
pub fn client(root: &Path) -> net::Client {
    net::Client::new(&net::Options {
        connect_timeout: Some(Duration::from_secs(15)),
        ..net::Options::new(
            net::ca_under(root),
            root.join(net::CA_FILE).display().to_string(),
        )
    })
}

/// Downloads `url` to `dest`; returns the number of bytes received. An
/// `https://` URL is checked against the pinned CA of the host at `root`.
/// Nothing is left behind when it fails.
pub fn download(url: &str, dest: &Path, root: &Path) -> Result<u64> {
    let mut resp = match client(root).get(url) {
        Ok(r) => r,
        Err(NetError::Status { status: 404, .. }) => {
            bail!("{url}: not found on the server (HTTP 404)")
        }
        Err(e) => return Err(e.into()),
    };
    let len = resp.body().content_length();
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) =
        ProgressStyle::with_template("{msg} {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let mut total = 0u64;
    let mut fill = |file: &mut File| -> Result<()> {
        let mut w = BufWriter::new(file);
        let mut reader = resp.body_mut().as_reader();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    bar.abandon();
                    return Err(e).with_context(|| format!("{url}: the transfer broke"));
                }
            };
            w.write_all(&buf[..n])
                .with_context(|| format!("{}: cannot write", dest.display()))?;
            total += n as u64;
            bar.set_position(total);
        }
        bar.finish_and_clear();
        if let Some(n) = len {
            if n != total {
                bail!("{url}: the transfer stopped after {total} of {n} bytes");
            }
        }
        w.flush()
            .with_context(|| format!("{}: cannot write", dest.display()))
    };
    place::put(
        dest,
        Content::File(&mut fill),
        &How::durable(Attrs::default()),
    )?;
    Ok(total)
}

/// Fetches a small file (a signature) into memory: `None` when the
/// server has none (HTTP 404), an error when it is larger than `max`
/// bytes or cannot be fetched. `https://` as [`download`].
pub fn fetch_small(url: &str, max: usize, root: &Path) -> Result<Option<Vec<u8>>> {
    let mut resp = match client(root).get(url) {
        Ok(r) => r,
        Err(NetError::Status { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut buf = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(max as u64 + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("{url}: the transfer broke"))?;
    if buf.len() > max {
        bail!("{url}: larger than {max} bytes");
    }
    Ok(Some(buf))
}
