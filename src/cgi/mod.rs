//! `upload.cgi`: what a node talks to. A CGI/1.1 script (RFC 3875) run by
//! a stock Apache (mod_cgi or mod_cgid) or lighttpd (mod_cgi).
//!
//! A request is a `multipart/form-data` POST with a `file` field and
//! optional `failure` and `section` fields. The `file` is, by priority:
//! an install log when its name ends in `.log.gz`; a failure report when
//! `failure=P` is given; otherwise the node's hardware list, answered
//! with the server's decision (profile, variables, configure script).
//!
//! Every answer is JSON; errors are `{"error": "<sentence>"}` with 400
//! (bad request or hardware list), 404 (no profile matches), 405 (not a
//! POST), 409 (the CMDB has nothing to give), 413 (too large) or 500 (the
//! server's configuration). Each request also writes one line to stderr,
//! which the web server puts in its error log (see [`Log`]).
//!
//! The size limit (`MAXUPLOAD` of `[SERVER]`, 16 MiB by default) is
//! checked against `CONTENT_LENGTH` before a byte of the body is read, and
//! again while reading, in case the length is absent or wrong.

pub mod clock;
pub mod form;
pub mod health;
pub mod logs;
pub mod response;

pub use form::{Form, FormError, Upload};
pub use response::{Log, Response};

use crate::config::{ConfFile, ServerConfig};
use crate::decide::{self, DecideError, Decision};
use crate::exec::{CmdLine, Exec, System};
use crate::hw::{self, Line};
use crate::state::{self, Count, State};
use std::io::{Read, Write};
use std::path::Path;

/// The CGI meta-variables the script reads (RFC 3875 §4.1). A value that
/// is not UTF-8 is kept as `None` for `REMOTE_ADDR` and refused for the
/// others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgiEnv {
    pub method: Option<String>,
    pub content_type: Option<String>,
    pub content_length: Option<String>,
    pub remote_addr: Option<String>,
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
        CgiEnv {
            method,
            content_type,
            content_length,
            remote_addr,
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

    fn bad(sentence: impl Into<String>) -> Reject {
        Reject::new(400, sentence)
    }

    fn server(sentence: impl Into<String>) -> Reject {
        Reject::new(500, sentence)
    }
}

impl From<DecideError> for Reject {
    fn from(e: DecideError) -> Reject {
        Reject::new(e.http_status(), e.to_string())
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

/// Answers one CGI request whose body is `body`, with the configuration
/// file at `conf_path`; logs one closing line (and any warnings) to `log`.
pub fn serve<R: Read + Send + Unpin>(
    env: &CgiEnv,
    mut body: R,
    conf_path: &Path,
    log: &mut Log<'_>,
) -> Response {
    let result = handle(env, &mut body, conf_path, log);
    close(result, &mut body, env, log)
}

/// A request's answer and its closing log line; after an error the rest of
/// the body is read first. Shared by the upload CGIs.
pub(crate) fn close<R: Read>(
    result: Result<(Response, String), Reject>,
    body: &mut R,
    env: &CgiEnv,
    log: &mut Log<'_>,
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
pub(crate) fn read_upload<R: Read + Send + Unpin>(
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

fn handle<R: Read + Send + Unpin>(
    env: &CgiEnv,
    body: &mut R,
    conf_path: &Path,
    log: &mut Log<'_>,
) -> Result<(Response, String), Reject> {
    let (cfg, form) = read_upload(env, body, conf_path)?;
    let Some(file) = form.file else {
        return Err(Reject::bad("the upload has no \"file\" field"));
    };
    if logs::is_log_name(file.filename.as_deref()) {
        let name = file.filename.as_deref().unwrap_or_default();
        return save_log(&cfg, name, &file.data);
    }
    if let Some(profile) = form.failure.as_deref() {
        return failure(&cfg, profile, &file.data);
    }
    let lines = parse_hw(&file.data)?;
    let outcome = provision(&cfg, &lines, None, log)?;
    Ok((
        Response::ok(decide::envelope(&outcome.decision)),
        outcome.reason,
    ))
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

/// Parses an uploaded hardware list (JSON or the literal dialect).
pub fn parse_hw(data: &[u8]) -> Result<Vec<Line>, Reject> {
    let text = std::str::from_utf8(data)
        .map_err(|e| Reject::bad(format!("the hardware list is not valid UTF-8 ({e})")))?;
    let lines = hw::parse(text, "the uploaded hardware list")
        .map_err(|e| Reject::bad(format!("bad hardware list: {e}")))?;
    if lines.is_empty() {
        return Err(Reject::bad("the hardware list is empty"));
    }
    Ok(lines)
}

/// What a hardware upload led to.
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioned {
    pub decision: Decision,
    pub sysname: String,
    /// The closing log line's text.
    pub reason: String,
}

/// A node asks for its configuration: keep its hardware list as
/// `HWDIR/<sysname>.hw`, decide (committing), register it with pxemngr.
/// `only` restricts the decision to one profile (`upload.cgi -F`).
pub fn provision(
    cfg: &ServerConfig,
    lines: &[Line],
    only: Option<&str>,
    log: &mut Log<'_>,
) -> Result<Provisioned, Reject> {
    let sysname = hw::sysname(lines);
    // `HWDIR/<sysname>.hw` is written in the decision's commit (or alone,
    // under the same lock, when there is no decision to commit).
    let keep = (
        cfg.hwdir.join(format!("{sysname}.hw")),
        hw::to_literal(lines).into_bytes(),
    );
    let mut warnings = Vec::new();
    let result = decide::decide_keeping(cfg, lines, only, Some(keep), &mut |w| warnings.push(w));
    for w in &warnings {
        log.warning(w);
    }
    let decision = result.map_err(|e| {
        let r = Reject::from(e);
        Reject::new(r.status, format!("{sysname}: {}", r.sentence))
    })?;
    if cfg.use_pxemngr {
        // The node is provisioned either way; a missing PXE entry is for
        // the operator to fix, not a reason to fail the install.
        if let Err(e) = pxemngr_addsystem(cfg, &System::default(), &sysname, lines) {
            log.warning(&format!("pxemngr failed: {e:#}"));
        }
    }
    let entry = match decision.cmdb_entry {
        Some(i) if decision.reused => format!(", CMDB entry {} (already this node's)", i + 1),
        Some(i) => format!(", CMDB entry {}", i + 1),
        None => String::new(),
    };
    let left = match decision.left {
        Count::Unlimited => "unlimited".to_string(),
        Count::Left(n) => n.to_string(),
    };
    let reason = format!(
        "{sysname}: profile {}{entry}, installs left {left}",
        decision.profile
    );
    Ok(Provisioned {
        decision,
        sysname,
        reason,
    })
}

/// `<PXEMNGR> addsystem <sysname> <MAC>…`
pub fn pxemngr_addsystem(
    cfg: &ServerConfig,
    exec: &dyn Exec,
    sysname: &str,
    lines: &[Line],
) -> anyhow::Result<()> {
    let mut argv = vec![
        cfg.pxemngr.to_string_lossy().into_owned(),
        "addsystem".to_string(),
        sysname.to_string(),
    ];
    argv.extend(hw::macs(lines).into_iter().map(String::from));
    exec.run(&CmdLine::Argv(argv))?;
    Ok(())
}

/// `file` + `failure=P`: the node's install of P failed; give it back.
fn failure(cfg: &ServerConfig, profile: &str, data: &[u8]) -> Result<(Response, String), Reject> {
    if !state::is_profile_name(profile) {
        return Err(Reject::bad(format!(
            "{profile:?} is not a profile name (letters, digits, '_', '-', '.')"
        )));
    }
    let state_path = cfg.configdir.join("state");
    let state = State::load(&state_path).map_err(|e| Reject::server(format!("{e:#}")))?;
    if state.get(profile).is_none() {
        return Err(Reject::new(
            404,
            format!("the profile {profile:?} is not in the state file"),
        ));
    }
    let given_back = decide::report_failure(cfg, profile)?;
    // The hardware list only names the node in the log; a report whose
    // list does not parse still gives the install back.
    let node = std::str::from_utf8(data)
        .ok()
        .and_then(|t| hw::parse(t, "upload").ok())
        .map(|l| hw::sysname(&l))
        .unwrap_or_else(|| "a node".into());
    let reason = if given_back {
        format!("{node}: install of profile {profile} failed, one install given back")
    } else {
        format!("{node}: install of profile {profile} failed, nothing to give back")
    };
    Ok((
        Response::ok(serde_json::json!({"profile": profile, "given_back": given_back})),
        reason,
    ))
}

fn save_log(cfg: &ServerConfig, name: &str, data: &[u8]) -> Result<(Response, String), Reject> {
    if let Some(why) = logs::refuse_name(name) {
        return Err(Reject::bad(why));
    }
    let saved = logs::save(&cfg.logdir, &cfg.lockfile, name, data)
        .map_err(|e| Reject::server(format!("cannot keep the log: {e:#}")))?;
    let reason = match &saved.rotated {
        Some(old) => format!("log {name} kept (the previous one is now {old})"),
        None => format!("log {name} kept"),
    };
    Ok((
        Response::ok(serde_json::json!({"log": saved.name, "rotated": saved.rotated})),
        reason,
    ))
}

/// Local mode, `upload.cgi -f HWFILE [-F PROFILE] [-s SECTION]`: what a
/// hardware upload does, on a file, with the configuration at
/// `conf_path`, printing the answer. Returns the exit
/// code: 0 answered, 1 no profile or nothing to give (404, 409), 2 bad
/// input or configuration.
pub fn local(
    conf_path: &Path,
    hw_path: &Path,
    only: Option<&str>,
    section: Option<&str>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    let mut log = Log::new("local", stderr);
    let result = (|| {
        let cfg = ConfFile::load(conf_path)
            .and_then(|c| c.server(section))
            .map_err(|e| Reject::server(format!("{e:#}")))?;
        let data = std::fs::read(hw_path)
            .map_err(|e| Reject::bad(format!("{}: cannot read: {e}", hw_path.display())))?;
        let lines = parse_hw(&data)?;
        provision(&cfg, &lines, only, &mut log)
    })();
    match result {
        Ok(p) => {
            log.status(200, &p.reason);
            let text = match serde_json::to_string_pretty(&decide::envelope(&p.decision)) {
                Ok(t) => t,
                Err(e) => {
                    log.status(500, &format!("cannot print the answer: {e}"));
                    return 2;
                }
            };
            if writeln!(stdout, "{text}").is_err() {
                return 2;
            }
            0
        }
        Err(r) => {
            log.status(r.status, &r.sentence);
            match r.status {
                404 | 409 => 1,
                _ => 2,
            }
        }
    }
}

#[cfg(test)]
mod tests;
