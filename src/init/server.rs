//! Talking to `upload.cgi`: the hardware upload and its answer (the
//! envelope), failure reports and log uploads.
//!
//! Requests are `multipart/form-data` POSTs shaped like `curl -F`'s, built
//! here (one `file` part and a few text fields do not need a library).
//! Answers are read with `ureq` through [`crate::net`] (`https://` with
//! the pinned CA). A hardware upload is retried with a
//! doubling pause when the server cannot be reached or answers 5xx (an
//! operator may be fixing the configuration while nodes wait); a 4xx is
//! final, and so is a TLS refusal (no CA, or a certificate the CA did not
//! sign). Failure reports and log uploads are tried a few times and never
//! fail the installer: they are reports about a failure already handled.

use super::cmdline::Settings;
use super::console::Console;
use super::Tuning;
/// The server's answer to a hardware upload (one type with the server's).
pub use crate::protocol::Envelope;
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// One part of a form.
pub enum Part<'a> {
    Text(&'a str),
    /// A file: its name and contents.
    File(&'a str, &'a [u8]),
}

/// Builds a `multipart/form-data` body; returns the Content-Type (with its
/// boundary) and the body. The boundary is chosen so it occurs in no part.
pub fn multipart(parts: &[(&str, Part<'_>)]) -> (String, Vec<u8>) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ u128::from(std::process::id());
    let mut n = 0u32;
    let boundary = loop {
        let b = format!("------------------------edeploy{:x}{n}", seed);
        let inside = parts.iter().any(|(_, p)| {
            let data: &[u8] = match p {
                Part::Text(t) => t.as_bytes(),
                Part::File(_, d) => d,
            };
            data.windows(b.len()).any(|w| w == b.as_bytes())
        });
        if !inside {
            break b;
        }
        n += 1;
    };
    let quote = |s: &str| s.replace(['"', '\r', '\n'], "_");
    let mut body = Vec::new();
    for (name, part) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match part {
            Part::Text(t) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                        quote(name)
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(t.as_bytes());
            }
            Part::File(filename, data) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n",
                        quote(name),
                        quote(filename)
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(data);
            }
        }
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `http://SERV:HTTP_PORT{HTTP_PATH}upload.cgi` (`https://` with `HTTPS=1`).
pub fn upload_url(s: &Settings) -> String {
    let scheme = if s.https { "https" } else { "http" };
    format!(
        "{scheme}://{}:{}{}upload.cgi",
        s.serv, s.http_port, s.http_path
    )
}

/// What one POST gave.
pub enum PostOutcome {
    /// The HTTP status and body.
    Http(u16, String),
    /// No HTTP answer: connection refused, timeout, name not found.
    Unreachable(String),
    /// Not asked: the CA is missing or unusable, or the server's
    /// certificate is not the pinned CA's (final, not retried).
    Refused(String),
}

/// The HTTP client every installer request uses: statuses are answers,
/// not errors, every wait is bounded by `tuning`, and `https://` servers
/// must show a certificate of the pinned CA `tuning.ca` ([`crate::net`]).
pub(crate) fn client(tuning: &Tuning) -> crate::net::Client {
    crate::net::Client::new(&crate::net::Options {
        connect_timeout: Some(tuning.connect_timeout),
        io_timeout: Some(tuning.read_timeout),
        status_as_error: false,
        ..crate::net::Options::new(
            tuning.ca.clone(),
            "etc/edeploy/ca.pem of the initrd (scripts/build-initrd --ca FILE)",
        )
    })
}

/// POSTs a form once.
pub fn post(url: &str, parts: &[(&str, Part<'_>)], tuning: &Tuning) -> PostOutcome {
    let (ct, body) = multipart(parts);
    match client(tuning).post(url, &ct, &body) {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            match resp.body_mut().read_to_string() {
                Ok(text) => PostOutcome::Http(status, text),
                Err(e) => PostOutcome::Unreachable(format!("the answer was cut off ({e})")),
            }
        }
        Err(crate::net::NetError::Unreachable { why, .. }) => PostOutcome::Unreachable(why),
        Err(e) => PostOutcome::Refused(e.to_string()),
    }
}

/// The `error` sentence of an error answer, or its text.
fn sentence(status: u16, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|j| j.get("error").and_then(|e| e.as_str()).map(String::from))
        .unwrap_or_else(|| {
            let t = body.trim();
            if t.is_empty() {
                format!("HTTP {status}")
            } else {
                t.chars().take(300).collect()
            }
        })
}

/// Uploads the hardware list and returns the envelope.
pub fn ask(s: &Settings, hw_json: &str, console: &Console, tuning: &Tuning) -> Result<Envelope> {
    let url = upload_url(s);
    let mut parts = vec![("file", Part::File("hw.json", hw_json.as_bytes()))];
    if let Some(sec) = &s.section {
        parts.push(("section", Part::Text(sec)));
    }
    let body = post_retried(&url, &parts, "this node", console, tuning)?;
    Envelope::parse(&body).with_context(|| format!("{url} answered"))
}

/// POSTs until the server answers 200 and returns the answer's body: an
/// unreachable server or a 5xx is retried up to `tuning.upload_attempts`
/// times, the pause doubling up to `tuning.backoff_max`; a 4xx is final
/// ("the eDeploy server refused `what`").
pub fn post_retried(
    url: &str,
    parts: &[(&str, Part<'_>)],
    what: &str,
    console: &Console,
    tuning: &Tuning,
) -> Result<String> {
    let attempts = tuning.upload_attempts.max(1);
    let mut pause = tuning.backoff_first;
    for attempt in 1..=attempts {
        let reason = match post(url, parts, tuning) {
            PostOutcome::Http(200, body) => return Ok(body),
            PostOutcome::Http(status, body) if (400..500).contains(&status) => {
                bail!(
                    "the eDeploy server refused {what} (HTTP {status}): {}",
                    sentence(status, &body)
                );
            }
            PostOutcome::Http(status, body) => {
                format!("HTTP {status}: {}", sentence(status, &body))
            }
            PostOutcome::Unreachable(why) => why,
            PostOutcome::Refused(why) => bail!("{why}"),
        };
        if attempt == attempts {
            bail!("the eDeploy server at {url} did not answer after {attempts} attempts: {reason}");
        }
        console.say(&format!(
            "waiting for the eDeploy server at {url}: {reason} (attempt {attempt}/{attempts})"
        ));
        std::thread::sleep(pause);
        pause = (pause * 2).min(tuning.backoff_max);
    }
    bail!("the eDeploy server at {url} did not answer")
}

/// A best-effort POST (failure report, log): a few tries, then the reason.
pub fn report(
    url: &str,
    parts: &[(&str, Part<'_>)],
    tuning: &Tuning,
) -> std::result::Result<String, String> {
    let mut last = String::new();
    for i in 0..tuning.report_attempts.max(1) {
        if i > 0 {
            std::thread::sleep(tuning.backoff_first.min(Duration::from_secs(5)));
        }
        match post(url, parts, tuning) {
            PostOutcome::Http(200, body) => return Ok(body),
            PostOutcome::Http(status, body) if (400..500).contains(&status) => {
                return Err(format!("HTTP {status}: {}", sentence(status, &body)));
            }
            PostOutcome::Http(status, body) => {
                last = format!("HTTP {status}: {}", sentence(status, &body))
            }
            PostOutcome::Unreachable(why) => last = why,
            PostOutcome::Refused(why) => return Err(why),
        }
    }
    Err(last)
}
