//! Answering one `status.cgi` request (CGI/1.1, RFC 3875).
//!
//! `GET status.cgi` is the page; the query string chooses:
//!
//! | parameter | meaning |
//! |---|---|
//! | `section=NAME` | the `[NAME]` section of `edeploy.conf` (400 when absent) |
//! | `format=json` / `format=html` | the answer's form; without it, JSON when `Accept` names `application/json` and not `text/html` |
//! | `format=prometheus` | the figures alerts need in the Prometheus text format ([`super::prometheus`]); errors as `text/plain` |
//! | `uploads=N` / `uploads=all` | how many of the newest uploads to list (default 50) |
//! | `log=NAME` | the install log `LOGDIR/NAME` as `application/gzip`, to download |
//! | `log=NAME&view=text` | the same log unpacked, as `text/plain` |
//!
//! Only GET and HEAD are answered (405 otherwise). A log name must be a
//! name `upload.cgi` accepts (400 otherwise) of a regular file in LOGDIR
//! (404 otherwise). An unreadable `edeploy.conf` is a 500; a file of the
//! section that does not parse is shown on the page, which is still a 200.

use super::{gather, html, prometheus, Gather, Status};
use crate::cgi::response::reason_phrase;
use crate::cgi::{write_answer, CgiEnv, RequestLog};
use crate::config::{ConfFile, ServerConfig};
use crate::provision::logs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// The program name in the log lines.
pub const NAME: &str = "status.cgi";

/// `status.cgi`'s answer: status, headers (Content-Type first), body
/// bytes (any type, where the upload CGIs' [`crate::cgi::Response`] is
/// JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The line for the server log: errors and pages listing problems
    /// (the web server's access log has the rest).
    pub log: Option<String>,
}

impl StatusAnswer {
    fn new(status: u16, content_type: &str, body: Vec<u8>, log: Option<String>) -> StatusAnswer {
        StatusAnswer {
            status,
            headers: vec![
                ("Content-Type".into(), content_type.into()),
                // The page is live: never serve an old copy.
                ("Cache-Control".into(), "no-store".into()),
                ("X-Content-Type-Options".into(), "nosniff".into()),
            ],
            body,
            log,
        }
    }

    fn with_header(mut self, name: &str, value: &str) -> StatusAnswer {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Writes the CGI response; `head` leaves the body out.
    pub fn write_cgi(&self, out: &mut dyn Write, head: bool) -> std::io::Result<()> {
        let headers = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        write_answer(out, self.status, headers, (!head).then_some(&self.body[..]))
    }

    /// Writes the server log line of this answer, when it has one:
    /// `status.cgi[<pid>] <time> <address>: <status> <reason>`.
    pub fn log_to(&self, remote: &str, out: &mut dyn Write) {
        if let Some(reason) = &self.log {
            RequestLog::named(NAME, remote, out).status(self.status, reason);
        }
    }
}

/// HTML, JSON, or the Prometheus text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Prometheus,
}

/// The parsed query string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub section: Option<String>,
    pub format: Option<Format>,
    pub uploads: Option<Option<usize>>,
    pub log: Option<String>,
    pub view_text: bool,
}

/// Decodes `%XX` and `+` of one query component.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("{s:?}: a '%' is not followed by two hex digits"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// Parses `QUERY_STRING`. Unknown parameters are ignored (links may carry
/// more); a known one given twice is an error.
pub fn parse_query(q: &str) -> Result<Query, String> {
    let mut query = Query::default();
    let mut seen: Vec<String> = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k)?;
        let value = percent_decode(v)?;
        if ["section", "format", "uploads", "log", "view"].contains(&key.as_str()) {
            if seen.contains(&key) {
                return Err(format!("the parameter {key:?} is given twice"));
            }
            seen.push(key.clone());
        }
        match key.as_str() {
            "section" => query.section = Some(value),
            "format" => {
                query.format = Some(match value.as_str() {
                    "json" => Format::Json,
                    "html" => Format::Html,
                    "prometheus" => Format::Prometheus,
                    _ => {
                        return Err(format!(
                            "format must be json, html or prometheus, not {value:?}"
                        ))
                    }
                })
            }
            "uploads" => {
                query.uploads = Some(if value == "all" {
                    None
                } else {
                    Some(value.parse::<usize>().map_err(|_| {
                        format!("uploads must be a number or \"all\", not {value:?}")
                    })?)
                })
            }
            "log" => query.log = Some(value),
            "view" => {
                query.view_text = match value.as_str() {
                    "text" => true,
                    "gz" | "" => false,
                    _ => return Err(format!("view must be text, not {value:?}")),
                }
            }
            _ => {}
        }
    }
    Ok(query)
}

/// JSON when asked by `format`, else when `Accept` names
/// `application/json` but not `text/html` (a browser names both kinds or
/// only HTML; `curl` sends `*/*` and gets the page).
fn format_of(query: Option<&Query>, accept: Option<&str>) -> Format {
    if let Some(f) = query.and_then(|q| q.format) {
        return f;
    }
    let accept = accept.unwrap_or("").to_ascii_lowercase();
    if accept.contains("application/json") && !accept.contains("text/html") {
        Format::Json
    } else {
        Format::Html
    }
}

/// An error answer in the requested form.
fn error(status: u16, format: Format, sentence: &str) -> StatusAnswer {
    match format {
        // A scraper shows the body of a failed scrape as it is.
        Format::Prometheus => StatusAnswer::new(
            status,
            "text/plain; charset=utf-8",
            format!("{sentence}\n").into_bytes(),
            Some(sentence.to_string()),
        ),
        Format::Json => StatusAnswer::new(
            status,
            "application/json",
            format!("{}\n", serde_json::json!({ "error": sentence })).into_bytes(),
            Some(sentence.to_string()),
        ),
        Format::Html => {
            let body = format!(
                "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>eDeploy status: {status}</title>\
                 <style>body{{font:15px/1.5 \"DejaVu Sans\",sans-serif;margin:40px;color:#1d2430}}\
                 pre{{background:#fde8e6;color:#b42318;padding:10px 14px;border-radius:6px;white-space:pre-wrap}}</style>\
                 </head><body><h1>eDeploy status: {status} {}</h1><pre id=\"error\">{}</pre></body></html>\n",
                reason_phrase(status),
                html::escape(sentence)
            );
            StatusAnswer::new(
                status,
                "text/html; charset=utf-8",
                body.into_bytes(),
                Some(sentence.to_string()),
            )
        }
    }
}

/// Answers one request with the configuration at `conf_path`.
pub fn serve(env: &CgiEnv, conf_path: &Path) -> StatusAnswer {
    let parsed = parse_query(env.query.as_deref().unwrap_or(""));
    let format = format_of(parsed.as_ref().ok(), env.accept.as_deref());
    let method = env.method.as_deref().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return error(
            405,
            format,
            &format!("status.cgi only reads: GET or HEAD, not {method:?}"),
        )
        .with_header("Allow", "GET, HEAD");
    }
    let query = match parsed {
        Ok(q) => q,
        Err(e) => return error(400, format, &e),
    };
    let conf = match ConfFile::load(conf_path) {
        Ok(c) => c,
        Err(e) => return error(500, format, &format!("{e:#}")),
    };
    let sections: Vec<String> = {
        let mut s: Vec<String> = conf.section_names().map(String::from).collect();
        if !s.iter().any(|n| n == crate::config::DEFAULT_SECTION) {
            s.insert(0, crate::config::DEFAULT_SECTION.into());
        }
        s
    };
    if let Some(name) = query.section.as_deref() {
        if !sections.iter().any(|s| s == name) {
            return error(
                400,
                format,
                &format!("there is no configuration section [{name}]"),
            );
        }
    }
    let cfg = match conf.server(query.section.as_deref()) {
        Ok(c) => c,
        Err(e) => return error(500, format, &format!("{e:#}")),
    };
    if let Some(name) = &query.log {
        return serve_log(&cfg, name, query.view_text, format);
    }
    if format == Format::Prometheus {
        let snapshot = prometheus::gather(&cfg, Duration::from_secs(3), prometheus::MAX_ENTRIES);
        return metrics_page(&snapshot);
    }
    let opts = Gather {
        sections,
        uploads: query.uploads.unwrap_or(Some(super::DEFAULT_UPLOADS)),
        lock_wait: Duration::from_secs(3),
    };
    let status = gather(&cfg, &opts);
    page(&status, format)
}

/// `format=prometheus`: the exposition of a snapshot. Problems are logged
/// as for the page, and counted in `edeploy_status_problems`.
pub fn metrics_page(snapshot: &prometheus::Snapshot) -> StatusAnswer {
    let reason = snapshot.problems.first().map(|first| {
        format!(
            "metrics of [{}]: {} problem(s), the first: {}",
            snapshot.section,
            snapshot.problems.len(),
            first.message
        )
    });
    StatusAnswer::new(
        200,
        prometheus::CONTENT_TYPE,
        prometheus::render(snapshot).into_bytes(),
        reason,
    )
}

/// The page (or its JSON) of a gathered status.
pub fn page(status: &Status, format: Format) -> StatusAnswer {
    let reason = status.problems.first().map(|first| {
        format!(
            "status of [{}]: {} problem(s), the first: {}",
            status.section,
            status.problems.len(),
            first.message
        )
    });
    let answer = match format {
        Format::Json => match serde_json::to_string_pretty(status) {
            Ok(mut text) => {
                text.push('\n');
                StatusAnswer::new(200, "application/json", text.into_bytes(), reason)
            }
            Err(e) => return error(500, format, &format!("cannot print the status: {e}")),
        },
        // The exposition is made from its own snapshot (`metrics_page`): a
        // gathered status is shown as the page.
        Format::Html | Format::Prometheus => StatusAnswer::new(
            200,
            "text/html; charset=utf-8",
            html::render(status).into_bytes(),
            reason,
        )
        // Nothing but the inline style may load or run.
        .with_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
        ),
    };
    answer
        .with_header("Vary", "Accept")
        .with_header("Referrer-Policy", "no-referrer")
}

/// Decompressed text shown inline at most (a larger log is cut, with a
/// note): a small gzip can unpack to far more than a browser should get.
pub const MAX_LOG_TEXT: u64 = 16 * 1024 * 1024;

/// `?log=NAME`: one install log of LOGDIR, read-only.
fn serve_log(cfg: &ServerConfig, name: &str, view_text: bool, format: Format) -> StatusAnswer {
    if let Some(why) = logs::refuse_name(name) {
        return error(400, format, &why);
    }
    let path = cfg.logdir.join(name);
    // Not followed: a symlink in LOGDIR is not a log a node uploaded.
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return error(404, format, &format!("there is no log {name:?} in LOGDIR"));
    }
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => {
            return error(
                500,
                format,
                &format!("{}: cannot read: {e}", path.display()),
            )
        }
    };
    if !view_text {
        let disposition = content_disposition(name);
        return StatusAnswer::new(200, "application/gzip", data, None)
            .with_header("Content-Disposition", &disposition);
    }
    let mut text = Vec::new();
    let mut gz = flate2::read::GzDecoder::new(&data[..]).take(MAX_LOG_TEXT);
    let note = match gz.read_to_end(&mut text) {
        Ok(_) if text.len() as u64 >= MAX_LOG_TEXT => {
            format!("\n[… cut at {MAX_LOG_TEXT} bytes; download the .gz for the rest]\n")
        }
        Ok(_) => String::new(),
        Err(e) => format!(
            "\n[… {name} is not a whole gzip file after {} bytes: {e}]\n",
            text.len()
        ),
    };
    text.extend_from_slice(note.as_bytes());
    StatusAnswer::new(200, "text/plain; charset=utf-8", text, None).with_header(
        "Content-Disposition",
        &content_disposition(name).replacen("attachment", "inline", 1),
    )
}

/// `attachment; filename="NAME"`, with RFC 6266's `filename*` when the
/// name is not plain ASCII.
fn content_disposition(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ');
    if plain {
        format!("attachment; filename=\"{name}\"")
    } else {
        let ascii: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!(
            "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
            html::query_encode(name)
        )
    }
}
