//! `upload.cgi`: what a node talks to. A CGI/1.1 script (RFC 3875) run by
//! a stock Apache (mod_cgi or mod_cgid) or lighttpd (mod_cgi).
//!
//! A request is a `multipart/form-data` POST with a `file` field and
//! optional `failure` and `section` fields. The `file` is, by priority:
//! an install log when its name ends in `.log.gz`; a failure report when
//! `failure=P` is given; otherwise the node's hardware list, answered
//! with the server's decision (profile, variables, configure script).
//! With `SIGNKEY` set that answer is signed ([`sign_answer`]): its body's
//! exact bytes, for the node's sysname and the `nonce` field the node
//! sent, in the header `X-Edeploy-Signature` (docs/trust.md).
//!
//! Every answer is JSON; errors are `{"error": "<sentence>"}` with 400
//! (bad request or hardware list), 404 (no profile matches), 405 (not a
//! POST), 409 (the CMDB has nothing to give, or a failure report that does
//! not count: the node was not handed that profile, or already reported
//! it), 413 (too large), 500 (the server's configuration), 503 (matching
//! took longer than `DECISIONBUDGET`, or the installs left kept changing)
//! or 507 (no room within `WALMAX` or LOGDIR's caps, docs/server.md
//! "Limits"). Each request also writes one line to stderr,
//! which the web server puts in its error log (see [`RequestLog`]).

pub mod health;

use crate::cgi::{close, read_upload, CgiEnv, Reject, RequestLog, Response};
use crate::config::{ConfFile, ServerConfig};
use crate::hw;
use crate::metrics;
use crate::protocol;
use crate::provision::{decide, logs, parse_hw, provision};
use crate::state::{self, State};
use crate::trust::SigningKey;
use std::io::{Read, Write};
use std::path::Path;

/// Answers one CGI request whose body is `body`, with the configuration
/// file at `conf_path`; logs one closing line (and any warnings) to `log`.
pub fn serve<R: Read + Send + Unpin>(
    env: &CgiEnv,
    mut body: R,
    conf_path: &Path,
    log: &mut RequestLog<'_>,
) -> Response {
    let mut tally = metrics::Tally::default();
    let result = handle(env, &mut body, conf_path, log, &mut tally);
    let response = close(result, &mut body, env, log);
    if let Some(note) = tally.record(conf_path, response.status) {
        log.warning(&note);
    }
    response
}

fn handle<R: Read + Send + Unpin>(
    env: &CgiEnv,
    body: &mut R,
    conf_path: &Path,
    log: &mut RequestLog<'_>,
    tally: &mut metrics::Tally,
) -> Result<(Response, String), Reject> {
    let (cfg, form) = read_upload(env, body, conf_path)?;
    tally.configdir = Some(cfg.configdir.clone());
    if let Some(nonce) = form.nonce.as_deref() {
        protocol::check_nonce(nonce).map_err(Reject::bad)?;
    }
    let Some(file) = form.file else {
        return Err(Reject::bad("the upload has no \"file\" field"));
    };
    if logs::is_log_name(file.filename.as_deref()) {
        let name = file.filename.as_deref().unwrap_or_default();
        return save_log(&cfg, name, &file.data);
    }
    if let Some(profile) = form.failure.as_deref() {
        tally.request = Some(metrics::Request::FailureReport);
        return failure(&cfg, profile, &file.data);
    }
    tally.request = Some(metrics::Request::Decision { took: None });
    let lines = parse_hw(&file.data, &cfg.hw_limits())?;
    // The key is read before the decision: a server that cannot sign
    // takes nothing.
    let signer = signing_key(&cfg, conf_path)?;
    let started = std::time::Instant::now();
    let outcome = provision(&cfg, &lines, None, log);
    let took = Some(started.elapsed());
    tally.request = Some(metrics::Request::Decision { took });
    let outcome = outcome?;
    let response = Response::ok(decide::envelope(&outcome.decision));
    let response = match &signer {
        Some(key) => sign_answer(key, response, &hw::sysname(&lines), form.nonce.as_deref())?,
        None => response,
    };
    Ok((response, outcome.reason))
}

/// The key that signs answers: `SIGNKEY`'s (none when it is not set).
/// An unreadable key is a 500 naming the configuration file, the key and
/// why.
pub fn signing_key(cfg: &ServerConfig, conf_path: &Path) -> Result<Option<SigningKey>, Reject> {
    match &cfg.sign_key {
        Some(path) => SigningKey::load(path, None).map(Some).map_err(|e| {
            Reject::server(format!(
                "{}: SIGNKEY cannot be used to sign answers: {e}",
                conf_path.display()
            ))
        }),
        None if cfg.signatures_required() => Err(Reject::server(format!(
            "{}: REQUIRE_SIGNATURES is true but SIGNKEY is not set",
            conf_path.display()
        ))),
        None => Ok(None),
    }
}

/// `response` with its signature in [`protocol::SIGNATURE_HEADER`]: the
/// exact body bytes signed by `key`, the trusted comment naming the node
/// (`sysname`), the installer's `nonce` and the time.
pub fn sign_answer(
    key: &SigningKey,
    response: Response,
    sysname: &str,
    nonce: Option<&str>,
) -> Result<Response, Reject> {
    let comment = protocol::answer_comment(sysname, nonce, crate::trust::unix_now());
    let sig = key
        .sign(&response.body_bytes(), &comment)
        .map_err(|e| Reject::server(format!("cannot sign the answer: {e}")))?;
    Ok(response.with_header(
        protocol::SIGNATURE_HEADER,
        &protocol::signature_header(&sig),
    ))
}

/// `file` + `failure=P`: the node's install of P failed; give it back,
/// when the server handed P to this node (recognised by its hardware
/// list's sysname) and this hand-out was not reported yet; 409 otherwise.
fn failure(cfg: &ServerConfig, profile: &str, data: &[u8]) -> Result<(Response, String), Reject> {
    if !state::is_profile_name(profile) {
        return Err(Reject::bad(format!(
            "{profile:?} is not a profile name (letters, digits, '_', '-', '.')"
        )));
    }
    // On a database, the report's own transaction finds the profile.
    if cfg.database.is_none() {
        let state_path = cfg.configdir.join("state");
        let state = State::load(&state_path).map_err(|e| Reject::server(format!("{e:#}")))?;
        if state.get(profile).is_none() {
            return Err(Reject::new(
                404,
                format!("the profile {profile:?} is not in the state file"),
            ));
        }
    }
    // The hardware list is how the node is recognised: one that does not
    // parse cannot be, and the report changes nothing.
    let lines = parse_hw(data, &cfg.hw_limits()).map_err(|r| {
        Reject::new(
            409,
            format!(
                "{}; the node cannot be recognised, nothing given back for profile {profile}",
                r.sentence
            ),
        )
    })?;
    let node = hw::sysname(&lines);
    let given_back = decide::report_failure(cfg, profile, &lines)?;
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
    let saved = logs::save_within(&cfg.logdir, name, data, &logs::Caps::of(cfg)).map_err(|e| {
        let status = if e.is::<logs::Full>() { 507 } else { 500 };
        Reject::new(status, format!("cannot keep the log: {e:#}"))
    })?;
    let reason = match &saved.rotated {
        Some(old) => format!("log {name} kept (the previous one is now {old})"),
        None => format!("log {name} kept"),
    };
    Ok((
        Response::ok(serde_json::json!({"log": saved.name, "rotated": saved.rotated})),
        reason,
    ))
}

/// Local mode, `upload.cgi -f HWFILE [--only PROFILE] [-s SECTION]`:
/// what a hardware upload does, on a file, with the configuration at
/// `conf_path`, printing the answer. `only` restricts the decision to one
/// profile. Returns the exit code: 0 answered, 1 no profile or nothing to
/// give (404, 409), 2 bad input or configuration.
pub fn local(
    conf_path: &Path,
    hw_path: &Path,
    only: Option<&str>,
    section: Option<&str>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    run_local(
        conf_path,
        hw_path,
        section,
        stdout,
        stderr,
        |cfg, data, log| {
            let lines = parse_hw(data, &cfg.hw_limits())?;
            let p = provision(cfg, &lines, only, log)?;
            Ok((Some(decide::envelope(&p.decision)), p.reason))
        },
    )
}

/// Local mode, `upload.cgi -f HWFILE -F PROFILE [-s SECTION]`: the node
/// whose hardware list is HWFILE failed to install PROFILE; one install
/// is given back, as with the CGI's `failure=PROFILE`, when the server
/// handed PROFILE to that node and the hand-out was not reported yet. As
/// the original, nothing is printed on stdout; the log line goes to
/// stderr. Returns 0 reported (the install given back), 1 PROFILE not
/// in `state` (404) or a report that does not count (409: no hand-out of
/// PROFILE to that node left, or one that took no install), 2 bad input
/// or configuration.
pub fn local_failure(
    conf_path: &Path,
    hw_path: &Path,
    profile: &str,
    section: Option<&str>,
    stderr: &mut dyn Write,
) -> u8 {
    run_local(
        conf_path,
        hw_path,
        section,
        &mut std::io::sink(),
        stderr,
        |cfg, data, _| failure(cfg, profile, data).map(|(_, reason)| (None, reason)),
    )
}

/// What local modes share: the configuration and the file read, `act`
/// run, its answer (if any) printed pretty, one log line, the exit code.
fn run_local(
    conf_path: &Path,
    hw_path: &Path,
    section: Option<&str>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    act: impl FnOnce(
        &ServerConfig,
        &[u8],
        &mut RequestLog<'_>,
    ) -> Result<(Option<serde_json::Value>, String), Reject>,
) -> u8 {
    let mut log = RequestLog::new("local", stderr);
    let result = (|| {
        let cfg = ConfFile::load(conf_path)
            .and_then(|c| c.server(section))
            .map_err(|e| Reject::server(format!("{e:#}")))?;
        let data = std::fs::read(hw_path)
            .map_err(|e| Reject::bad(format!("{}: cannot read: {e}", hw_path.display())))?;
        act(&cfg, &data, &mut log)
    })();
    match result {
        Ok((answer, reason)) => {
            log.status(200, &reason);
            let Some(answer) = answer else {
                return 0;
            };
            let text = match serde_json::to_string_pretty(&answer) {
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
