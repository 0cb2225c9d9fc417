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
//!
//! The answer to a hardware upload is authenticated before anything in it
//! is read ([`check_answer`]): signed by a key of the initrd's
//! `etc/edeploy/trusted.d/`, over exactly its bytes, for this node and
//! the fresh nonce sent with this upload (docs/trust.md, "Answers of
//! upload.cgi"). A refusal is final, like a 4xx.

use super::cmdline::Settings;
use super::console::Console;
use super::Tuning;
/// The server's answer to a hardware upload (one type with the server's).
pub use crate::protocol::Envelope;
use crate::protocol::{self, ANSWER, SIGNATURE_HEADER};
use crate::trust::{Checked, Policy, TrustError, Trusted, TRUSTED_DIR};
use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::path::Path;
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
    /// The HTTP status, the body and the signature header
    /// ([`SIGNATURE_HEADER`]) when there is one.
    Http(u16, String, Option<String>),
    /// No HTTP answer: connection refused, timeout, name not found.
    Unreachable(String),
    /// Not asked: the CA is missing or unusable, or the server's
    /// certificate is not the pinned CA's (final, not retried).
    Refused(String),
}

/// GET `url` with the installer's [`client`]: any HTTP status is an
/// answer; a server that cannot be reached is `cannot fetch URL: why`.
pub(crate) fn get(url: &str, tuning: &Tuning) -> Result<ureq::http::Response<ureq::Body>> {
    client(tuning).get(url).map_err(|e| match e {
        crate::net::NetError::Unreachable { why, .. } => {
            anyhow::anyhow!("cannot fetch {url}: {why}")
        }
        e => anyhow::anyhow!(e),
    })
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
            let signature = resp
                .headers()
                .get(SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            match resp.body_mut().read_to_string() {
                Ok(text) => PostOutcome::Http(status, text, signature),
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

/// Uploads the hardware list with a fresh nonce, checks the answer
/// against `policy` for this node (`sysname`), and returns the envelope.
/// Nothing of an answer that does not pass [`check_answer`] is read.
pub fn ask(
    s: &Settings,
    hw_json: &str,
    sysname: &str,
    policy: &Policy,
    console: &Console,
    tuning: &Tuning,
) -> Result<Envelope> {
    let url = upload_url(s);
    let nonce = nonce()?;
    let mut parts = vec![("file", Part::File("hw.json", hw_json.as_bytes()))];
    if let Some(sec) = &s.section {
        parts.push(("section", Part::Text(sec)));
    }
    parts.push((protocol::NONCE_FIELD, Part::Text(&nonce)));
    let (body, signature) = post_answered(&url, &parts, "this node", console, tuning)?;
    match check_answer(
        policy,
        body.as_bytes(),
        signature.as_deref(),
        sysname,
        &nonce,
    ) {
        // On the console too: the operator sees which key vouched for
        // what the node is about to run.
        Ok(Checked::Signed(v)) => console.say(&format!(
            "{ANSWER}: signed by trusted key {} ({})",
            v.key,
            v.comment.replace('\t', " ")
        )),
        // Already loud: `edeploy: WARNING: …`.
        Ok(Checked::Unsigned(warning)) => console.say(&warning),
        Err(e) => return Err(anyhow!("{e}")),
    }
    Envelope::parse(&body).with_context(|| format!("{url} answered"))
}

/// The installer's policy for answers: the keys of
/// `root/etc/edeploy/trusted.d/*.pub`, signatures required as soon as
/// there is one unless the command line says `REQUIRE_SIGNATURES=0`. A
/// file there that is not a key is an error naming it.
pub fn answer_policy(root: &Path, s: &Settings) -> Result<Policy> {
    let trusted = Trusted::load_dir(&root.join(TRUSTED_DIR)).map_err(|e| anyhow!("{e}"))?;
    Ok(Policy::new(trusted, s.require_signatures))
}

/// A fresh nonce: 16 bytes of `/dev/urandom` in hexadecimal (32 digits).
pub fn nonce() -> Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| anyhow!("cannot read /dev/urandom for the upload's nonce: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Checks the answer to a hardware upload before anything in it is read:
/// its signature (`header`, the [`SIGNATURE_HEADER`] value, `None` when
/// absent) made by a key `policy` trusts over exactly `body`, and its
/// trusted comment an answer's, for node `sysname` and this upload's
/// `nonce`. A missing signature is refused when the policy requires one,
/// else accepted with the warning to show; an installer that trusts no
/// key cannot check a signature and accepts it with a warning too. Every
/// refusal names [`ANSWER`], the key and what is wrong.
pub fn check_answer(
    policy: &Policy,
    body: &[u8],
    header: Option<&str>,
    sysname: &str,
    nonce: &str,
) -> std::result::Result<Checked, TrustError> {
    let trusted = |ids: &[crate::trust::KeyId]| {
        if ids.is_empty() {
            "no key".to_string()
        } else {
            ids.iter()
                .map(|k| format!("key {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let Some(header) = header else {
        if policy.trusted.is_empty() && !policy.require {
            return Ok(Checked::Unsigned(format!(
                "WARNING: {ANSWER}: accepted WITHOUT a signature: this initrd trusts no key \
                 ({TRUSTED_DIR} is empty; scripts/build-initrd --trust KEY.pub): anyone on the \
                 network could have sent it"
            )));
        }
        return policy.unsigned(
            ANSWER,
            &format!(
                "no {SIGNATURE_HEADER} header; this installer trusts {}",
                trusted(&policy.trusted.ids())
            ),
        );
    };
    if policy.trusted.is_empty() && !policy.require {
        return Ok(Checked::Unsigned(format!(
            "WARNING: {ANSWER}: its signature was NOT checked: this initrd trusts no key \
             ({TRUSTED_DIR} is empty; scripts/build-initrd --trust KEY.pub): anyone on the \
             network could have sent it"
        )));
    }
    let sig = protocol::signature_from_header(header).map_err(|why| TrustError::Malformed {
        what: ANSWER.into(),
        why,
    })?;
    let v = policy.trusted.verify(ANSWER, body, &sig, None)?;
    let refused = |why: String| TrustError::Refused {
        what: ANSWER.into(),
        why,
    };
    if v.comment.split('\t').next() != Some("edeploy-answer") {
        return Err(refused(format!(
            "the signature by key {} is not one of an answer of upload.cgi (trusted comment {:?})",
            v.key, v.comment
        )));
    }
    match v.field("node") {
        Some(n) if n == sysname => {}
        other => {
            return Err(refused(format!(
                "the signature by key {} was made for node {}, not for this node ({sysname}): \
                 an answer for another node replayed",
                v.key,
                other.unwrap_or("(none)")
            )))
        }
    }
    match v.field("nonce") {
        Some(n) if n == nonce => {}
        other => {
            return Err(refused(format!(
                "the signature by key {} was made for another upload (nonce {}, this upload's \
                 is {nonce}): an old answer replayed",
                v.key,
                other.unwrap_or("(none)")
            )))
        }
    }
    Ok(Checked::Signed(v))
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
    post_answered(url, parts, what, console, tuning).map(|(body, _)| body)
}

/// [`post_retried`], with the answer's signature header when it has one.
pub fn post_answered(
    url: &str,
    parts: &[(&str, Part<'_>)],
    what: &str,
    console: &Console,
    tuning: &Tuning,
) -> Result<(String, Option<String>)> {
    let attempts = tuning.upload_attempts.max(1);
    let mut pause = tuning.backoff_first;
    for attempt in 1..=attempts {
        let reason = match post(url, parts, tuning) {
            PostOutcome::Http(200, body, signature) => return Ok((body, signature)),
            PostOutcome::Http(status, body, _) if (400..500).contains(&status) => {
                bail!(
                    "the eDeploy server refused {what} (HTTP {status}): {}",
                    sentence(status, &body)
                );
            }
            PostOutcome::Http(status, body, _) => {
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
            PostOutcome::Http(200, body, _) => return Ok(body),
            PostOutcome::Http(status, body, _) if (400..500).contains(&status) => {
                return Err(format!("HTTP {status}: {}", sentence(status, &body)));
            }
            PostOutcome::Http(status, body, _) => {
                last = format!("HTTP {status}: {}", sentence(status, &body))
            }
            PostOutcome::Unreachable(why) => last = why,
            PostOutcome::Refused(why) => return Err(why),
        }
    }
    Err(last)
}
