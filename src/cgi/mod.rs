//! The CGI toolkit the three CGIs share (CGI/1.1, RFC 3875): the
//! request's meta-variables ([`CgiEnv`]), the `multipart/form-data` body
//! ([`form`]), the answer and the one log line per request ([`response`]),
//! and the steps every upload CGI takes first ([`read_upload`]) and last
//! ([`close`]).
//!
//! The size limit (`MAXUPLOAD` of `[SERVER]`, 16 MiB by default) is
//! checked against `CONTENT_LENGTH` before a byte of the body is read, and
//! again while reading, in case the length is absent or wrong.

pub mod form;
pub mod response;

pub use form::{Form, FormError, Upload};
pub use response::{write_answer, RequestLog, Response};

use crate::config::{ConfFile, ServerConfig};
use std::io::Read;
use std::path::Path;

/// The CGI meta-variables the scripts read (RFC 3875 §4.1). A value that
/// is not UTF-8 is kept as `None` for `REMOTE_ADDR` and refused for the
/// others, but `QUERY_STRING` and `HTTP_ACCEPT`, which are read with any
/// byte that is not UTF-8 replaced by U+FFFD (`status.cgi` answers the
/// query it can read).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgiEnv {
    pub method: Option<String>,
    pub content_type: Option<String>,
    pub content_length: Option<String>,
    pub remote_addr: Option<String>,
    /// `QUERY_STRING` (what `status.cgi` reads).
    pub query: Option<String>,
    /// `HTTP_ACCEPT`, the request's `Accept` header.
    pub accept: Option<String>,
    /// A meta-variable that was not UTF-8, by name.
    pub not_utf8: Option<&'static str>,
}

impl CgiEnv {
    pub fn from_process() -> CgiEnv {
        let mut env = CgiEnv::default();
        let mut get = |name: &'static str| match std::env::var_os(name) {
            None => None,
            Some(v) => match v.into_string() {
                Ok(s) => Some(s),
                Err(_) => {
                    env.not_utf8.get_or_insert(name);
                    None
                }
            },
        };
        let method = get("REQUEST_METHOD");
        let content_type = get("CONTENT_TYPE");
        let content_length = get("CONTENT_LENGTH");
        let remote_addr = get("REMOTE_ADDR");
        let lossy = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        CgiEnv {
            method,
            content_type,
            content_length,
            remote_addr,
            query: lossy("QUERY_STRING"),
            accept: lossy("HTTP_ACCEPT"),
            ..env
        }
    }

    /// Whether a web server started us (rather than a person without `-f`).
    pub fn is_cgi(&self) -> bool {
        self.method.is_some()
    }
}

/// A refused request: the status and the one sentence saying why.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub status: u16,
    pub sentence: String,
}

impl Reject {
    pub fn new(status: u16, sentence: impl Into<String>) -> Reject {
        Reject {
            status,
            sentence: sentence.into(),
        }
    }

    pub fn bad(sentence: impl Into<String>) -> Reject {
        Reject::new(400, sentence)
    }

    pub fn server(sentence: impl Into<String>) -> Reject {
        Reject::new(500, sentence)
    }
}

impl From<FormError> for Reject {
    fn from(e: FormError) -> Reject {
        match e {
            FormError::TooLarge { .. } => Reject::new(413, e.to_string()),
            FormError::Malformed(s) => Reject::bad(s),
        }
    }
}
/// A request's answer and its closing log line; after an error the rest of
/// the body is read first. Shared by the upload CGIs.
pub fn close<R: Read>(
    result: Result<(Response, String), Reject>,
    body: &mut R,
    env: &CgiEnv,
    log: &mut RequestLog<'_>,
) -> Response {
    match result {
        Ok((response, reason)) => {
            log.status(response.status, &reason);
            response
        }
        Err(r) => {
            log.status(r.status, &r.sentence);
            if r.status != 413 {
                // A web server that is still writing the body when the CGI
                // exits drops the connection (Apache's mod_cgid answers
                // nothing at all): read what is left, within the limit, so
                // the node gets its error.
                drain(body, env.content_length.as_deref());
            }
            let response = Response::error(r.status, &r.sentence);
            if r.status == 405 {
                response.with_header("Allow", "POST")
            } else {
                response
            }
        }
    }
}

/// Reads and drops the rest of a body whose declared length is within the
/// default upload limit; an oversized or unknown length is left unread.
/// A CGI that answers without reading a body it was sent can make the web
/// server (Apache's mod_cgid) drop the answer: every CGI here calls this
/// before answering.
pub fn drain<R: Read>(body: &mut R, declared: Option<&str>) {
    let Some(n) = declared.and_then(|v| v.trim().parse::<u64>().ok()) else {
        return;
    };
    if n <= crate::config::ServerConfig::with_configdir("").max_upload {
        let _ = std::io::copy(&mut body.take(n), &mut std::io::sink());
    }
}

/// What every upload CGI does first: only POST, the environment's values
/// UTF-8, the configuration read, the body's declared length checked
/// against MAXUPLOAD before a byte of it is read, the form read, and the
/// `section` field applied (with that section's own limit). Returns the
/// configuration to use and the form.
pub fn read_upload<R: Read + Send + Unpin>(
    env: &CgiEnv,
    body: &mut R,
    conf_path: &Path,
) -> Result<(ServerConfig, form::Form), Reject> {
    let method = env.method.as_deref().unwrap_or("");
    if method != "POST" {
        return Err(Reject::new(
            405,
            format!("only POST uploads are accepted, not {method:?}"),
        ));
    }
    if let Some(name) = env.not_utf8 {
        return Err(Reject::bad(format!("{name} is not valid UTF-8")));
    }
    let conf = ConfFile::load(conf_path).map_err(|e| Reject::server(format!("{e:#}")))?;
    // The section is inside the body, so the body's limit is [SERVER]'s.
    let base = conf
        .server(None)
        .map_err(|e| Reject::server(format!("{e:#}")))?;
    let content_type = env.content_type.as_deref().unwrap_or("");
    let boundary = form::boundary(content_type)?;
    let declared = content_length(env.content_length.as_deref())?;
    if let Some(n) = declared {
        if n > base.max_upload {
            return Err(Reject::new(
                413,
                format!(
                    "the upload is {n} bytes, larger than the {} bytes the server accepts",
                    base.max_upload
                ),
            ));
        }
    }
    let form = form::read_form(body, &boundary, declared, base.max_upload)?;
    let cfg = match form.section.as_deref() {
        None => base,
        Some(section) => {
            if !conf.section_names().any(|s| s == section) {
                return Err(Reject::bad(format!(
                    "there is no configuration section [{section}]"
                )));
            }
            let cfg = conf
                .server(Some(section))
                .map_err(|e| Reject::server(format!("{e:#}")))?;
            if form.body_len > cfg.max_upload {
                return Err(Reject::new(
                    413,
                    format!(
                        "the upload is {} bytes, larger than the {} bytes section [{section}] accepts",
                        form.body_len, cfg.max_upload
                    ),
                ));
            }
            cfg
        }
    };
    Ok((cfg, form))
}

/// CONTENT_LENGTH: absent or empty means unknown (RFC 3875 §4.1.2).
fn content_length(v: Option<&str>) -> Result<Option<u64>, Reject> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Reject::bad(format!("CONTENT_LENGTH {s:?} is not a number of bytes"))),
    }
}
