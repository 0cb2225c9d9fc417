//! Fetching one file over plain HTTP, with a progress bar on a terminal.
//!
//! Deltas are static files, so any web server, cache or mirror serves
//! them; the client needs GET and nothing else. The download goes to a
//! `.part` file renamed into place when complete, so a cut transfer never
//! looks like a whole archive.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

/// `http://HOST:PORT/PATH` (IPv6 hosts bracketed).
pub fn url(host: &str, port: u16, path: &str) -> String {
    let path = path.trim_start_matches('/');
    if host.contains(':') {
        format!("http://[{host}]:{port}/{path}")
    } else {
        format!("http://{host}:{port}/{path}")
    }
}

/// Downloads `url` to `dest`; returns the number of bytes received.
/// Nothing is left behind when it fails.
pub fn download(url: &str, dest: &Path) -> Result<u64> {
    let part = dest.with_extension("part");
    let res = fetch(url, dest, &part);
    if res.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    res
}

fn fetch(url: &str, dest: &Path, part: &Path) -> Result<u64> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .build()
        .into();
    let mut resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::StatusCode(404)) => {
            bail!("{url}: not found on the server (HTTP 404)")
        }
        Err(ureq::Error::StatusCode(code)) => bail!("{url}: the server answered HTTP {code}"),
        Err(e) => bail!("cannot reach the HTTP server for {url}: {e}"),
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
    let file = File::create(part).with_context(|| format!("{}: cannot create", part.display()))?;
    let mut w = BufWriter::new(file);
    let mut reader = resp.body_mut().as_reader();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
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
            .with_context(|| format!("{}: cannot write", part.display()))?;
        total += n as u64;
        bar.set_position(total);
    }
    bar.finish_and_clear();
    if let Some(n) = len {
        if n != total {
            bail!("{url}: the transfer stopped after {total} of {n} bytes");
        }
    }
    let file = w
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("{}: cannot write", part.display()))?;
    file.sync_all()
        .with_context(|| format!("{}: cannot write", part.display()))?;
    std::fs::rename(part, dest).with_context(|| format!("{}: cannot rename", dest.display()))?;
    Ok(total)
}
