//! Answers arbitrary CGI requests in process with `cgi::serve`, on a fresh
//! copy of the shipped example configuration, and checks the answer and
//! the files it left.
//!
//! Input layout: byte 0 picks the request's shape, the bytes up to the
//! first `\n` are a header line (a boundary, or a whole Content-Type), the
//! rest is the body.
//!
//! * bits 0-2, `CONTENT_TYPE`: `multipart/form-data; boundary=LINE`, the
//!   same quoted, `multipart/form-data` (no boundary),
//!   `Multipart/Form-Data; charset=utf-8; boundary=LINE`,
//!   `application/x-www-form-urlencoded`, LINE itself,
//!   `multipart/form-data; boundary=LINE; x=y`, or no `CONTENT_TYPE`;
//!   LINE not UTF-8 sets it as a non-UTF-8 meta-variable;
//! * bits 3-5, `CONTENT_LENGTH`: the body's length (twice as likely),
//!   absent, empty, one more, one less, `12x`, or 1 GiB;
//! * bits 6-7: a POST, a POST on an empty CMDB (`[]`: a node that
//!   matches gets 409), a POST with small limits (`MAXUPLOAD = 1024`,
//!   `HWMAXLINES = 40`, `HWMAXVALUE = 64`, `WALMAX = 65536`,
//!   `LOGMAXNODE = 512`, `LOGMAX = 768`), or a GET.
//!
//! The configuration also has a `[lab]` section with `MAXUPLOAD = 400`.
//! Checks: `serve` returns (no panic); the status is one of 200, 400, 404,
//! 405, 409, 413, 500, 503 (the decision budget), 507; the CGI output has a `Status:` line exactly when the
//! status is not 200, `Content-Type: application/json`, `Allow: POST` on a
//! 405, and a body that parses as JSON: an object with a non-empty `error`
//! string on errors, with `profile` or `log` on success; every log line is
//! one `upload.cgi[pid] …` line, the last one giving the status; no file or
//! directory appears outside the site's config, hw and logs directories
//! (nor a `.hw` or `.log.gz` file in the working directory or next to the
//! scratch directory); a saved log is in LOGDIR under the answered name;
//! the write-ahead log is never larger than WALMAX, LOGDIR never holds
//! more than LOGMAX, and a hardware answer's kept list is within the
//! hardware limits (lines, string length, no control character).

#![no_main]

use edeploy::cgi::{CgiEnv, RequestLog};
use edeploy::literal::{parse, Dialect, ParseOptions, Value};
use edeploy::upload::serve;
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const STATE: &[u8] = include_bytes!("../../share/examples/config/state");
const SPECS: &[u8] = include_bytes!("../../share/examples/config/vm.specs");
const CMDB: &[u8] = include_bytes!("../../share/examples/config/vm.cmdb");
const CONFIGURE: &[u8] = include_bytes!("../../share/examples/config/vm.configure");

const STATUSES: [u16; 9] = [200, 400, 404, 405, 409, 413, 500, 503, 507];

/// The small limits of bits 6-7 = 2 (see the top of the file).
const SMALL_LIMITS: &str = "MAXUPLOAD = 1024\nHWMAXLINES = 40\nHWMAXVALUE = 64\n\
                            WALMAX = 65536\nLOGMAXNODE = 512\nLOGMAX = 768\n";

/// The scratch directory of this process: `$EDEPLOY_FUZZ_TMP`, else
/// `/dev/shm` (no disk writes for the fsyncs), else the temp dir. Each
/// input gets a fresh tree there, removed after the checks.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("EDEPLOY_FUZZ_TMP")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        base.join(format!("edeploy-fuzz-cgi.{}", std::process::id()))
    })
}

/// `root/a/b/site`: a request that escaped LOGDIR or HWDIR with `..`
/// would land in one of the levels the checks look at.
struct Site {
    root: PathBuf,
    site: PathBuf,
    conf: PathBuf,
}

fn make_site(small_limit: bool, empty_cmdb: bool) -> Site {
    let root = scratch().clone();
    let _ = fs::remove_dir_all(&root);
    let site = root.join("a").join("b").join("site");
    let config = site.join("config");
    for d in [
        &config,
        &site.join("hw"),
        &site.join("logs"),
        &site.join("health"),
    ] {
        fs::create_dir_all(d).expect("cannot create the scratch site");
    }
    for (name, data) in [
        ("state", STATE),
        ("vm.specs", SPECS),
        ("vm.cmdb", if empty_cmdb { &b"[]\n"[..] } else { CMDB }),
        ("vm.configure", CONFIGURE),
    ] {
        fs::write(config.join(name), data).expect("cannot write the scratch config");
    }
    let p = site.display();
    let limit = if small_limit { SMALL_LIMITS } else { "" };
    let conf = site.join("edeploy.conf");
    fs::write(
        &conf,
        format!(
            "[SERVER]\nCONFIGDIR = {p}/config\nHWDIR = {p}/hw\nLOGDIR = {p}/logs\n\
             HEALTHDIR = {p}/health\nLOCKFILE = {p}/lock\n{limit}\n[lab]\nMAXUPLOAD = 400\n"
        ),
    )
    .expect("cannot write the scratch edeploy.conf");
    Site { root, site, conf }
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Names in `dir` that look like something the CGI writes.
fn cgi_like(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".hw") || n.contains(".log.gz"))
        .collect()
}

fn only_files(dir: &Path, what: &str) -> Vec<String> {
    let list = names(dir);
    for n in &list {
        let p = dir.join(n);
        let meta = fs::symlink_metadata(&p).expect("cannot stat");
        assert!(meta.is_file(), "{what} holds a non-file entry {p:?}");
    }
    list
}

/// Everything under the scratch root is where it belongs.
fn check_tree(s: &Site) {
    assert_eq!(
        names(&s.root),
        ["a"],
        "something was written in {:?}",
        s.root
    );
    assert_eq!(
        names(&s.root.join("a")),
        ["b"],
        "something was written in a/"
    );
    assert_eq!(
        names(&s.root.join("a/b")),
        ["site"],
        "something was written in a/b/"
    );
    for n in names(&s.site) {
        assert!(
            ["config", "edeploy.conf", "health", "hw", "lock", "logs"].contains(&n.as_str()),
            "unexpected entry {n:?} in the site directory"
        );
    }
    only_files(&s.site.join("config"), "config/");
    for n in only_files(&s.site.join("hw"), "hw/") {
        assert!(n.ends_with(".hw"), "hw/ holds {n:?}");
    }
    only_files(&s.site.join("logs"), "logs/");
    assert!(
        names(&s.site.join("health")).is_empty(),
        "health/ was written"
    );
}

fn dict_get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Dict(items) => items
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

struct Request {
    env: CgiEnv,
    body: Vec<u8>,
    small_limit: bool,
    empty_cmdb: bool,
}

fn decode(data: &[u8]) -> Option<Request> {
    let (&sel, rest) = data.split_first()?;
    let (line, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let mut env = CgiEnv {
        method: Some("POST".into()),
        remote_addr: Some("192.0.2.9".into()),
        ..CgiEnv::default()
    };
    let kind = sel & 7;
    match std::str::from_utf8(line) {
        Ok(line) => {
            env.content_type = match kind {
                0 => Some(format!("multipart/form-data; boundary={line}")),
                1 => Some(format!("multipart/form-data; boundary=\"{line}\"")),
                2 => Some("multipart/form-data".into()),
                3 => Some(format!(
                    "Multipart/Form-Data; charset=utf-8; boundary={line}"
                )),
                4 => Some("application/x-www-form-urlencoded".into()),
                5 => Some(line.to_string()),
                6 => Some(format!("multipart/form-data; boundary={line}; x=y")),
                _ => None,
            }
        }
        // CgiEnv::from_process keeps a non-UTF-8 meta-variable as None and
        // names it.
        Err(_) => env.not_utf8 = Some("CONTENT_TYPE"),
    }
    let len = body.len();
    env.content_length = match (sel >> 3) & 7 {
        0 | 1 => Some(len.to_string()),
        2 => None,
        3 => Some(String::new()),
        4 => Some((len + 1).to_string()),
        5 => Some(len.saturating_sub(1).to_string()),
        6 => Some("12x".into()),
        _ => Some("1073741824".into()),
    };
    let variant = sel >> 6;
    if variant == 3 {
        env.method = Some("GET".into());
    }
    Some(Request {
        env,
        body: body.to_vec(),
        small_limit: variant == 2,
        empty_cmdb: variant == 1,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = decode(data) else {
        return;
    };
    let cwd = std::env::current_dir().ok();
    let outside = scratch().parent().map(Path::to_path_buf);
    let before: Vec<Vec<String>> = [&cwd, &outside]
        .iter()
        .map(|d| d.as_deref().map(cgi_like).unwrap_or_default())
        .collect();

    let site = make_site(req.small_limit, req.empty_cmdb);
    let mut err = Vec::new();
    let response = {
        let mut log = RequestLog::new("192.0.2.9", &mut err);
        serve(&req.env, &req.body[..], &site.conf, &mut log)
    };
    let status = response.status;
    assert!(
        STATUSES.contains(&status),
        "status {status}: {:?}",
        response.body
    );

    // The CGI output.
    let mut out = Vec::new();
    response.write_cgi(&mut out).expect("write_cgi into a Vec");
    let out = String::from_utf8(out).expect("the CGI output is not UTF-8");
    let (head, body) = out
        .split_once("\r\n\r\n")
        .expect("no blank line after the headers");
    let headers: Vec<&str> = head.split("\r\n").collect();
    let status_line = headers.iter().find(|h| h.starts_with("Status: "));
    if status == 200 {
        assert!(status_line.is_none(), "a 200 with a Status line: {head:?}");
    } else {
        let line = status_line.unwrap_or_else(|| panic!("no Status line for {status}: {head:?}"));
        assert!(line.starts_with(&format!("Status: {status} ")), "{line:?}");
    }
    assert!(
        headers.contains(&"Content-Type: application/json"),
        "{head:?}"
    );
    if status == 405 {
        assert!(
            headers.contains(&"Allow: POST"),
            "405 without Allow: {head:?}"
        );
    }
    for h in &headers {
        assert!(
            !h.contains('\n') && !h.contains('\r'),
            "a header holds a line break: {h:?}"
        );
    }
    let body = body
        .strip_suffix('\n')
        .expect("the body does not end with a newline");
    let doc = parse(body, ParseOptions::default())
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {body:?}"));
    assert_eq!(doc.dialect, Dialect::Json, "the body is not JSON: {body:?}");
    assert!(
        matches!(doc.value, Value::Dict(_)),
        "the body is not an object: {body:?}"
    );
    if status == 200 {
        if dict_get(&doc.value, "vars").is_some() {
            assert!(
                !names(&site.site.join("hw")).is_empty(),
                "a hardware answer without its list kept in HWDIR"
            );
        }
        let log_name = dict_get(&doc.value, "log");
        assert!(
            dict_get(&doc.value, "profile").is_some() || log_name.is_some(),
            "a 200 without profile or log: {body:?}"
        );
        if let Some(name) = log_name {
            let name = name.as_str().expect("log is not a string");
            assert!(
                !name.contains('/') && !name.starts_with('.'),
                "log name {name:?}"
            );
            assert!(
                site.site.join("logs").join(name).is_file(),
                "the answered log {name:?} is not in LOGDIR"
            );
        }
    } else {
        match dict_get(&doc.value, "error") {
            Some(Value::Str(s)) if !s.is_empty() => {}
            _ => panic!("an error answer without a sentence: {body:?}"),
        }
    }

    // What is kept stays within the limits.
    let (wal_max, log_max, limits) = if req.small_limit {
        (
            65536,
            768,
            edeploy::hw::Limits {
                max_lines: 40,
                max_value: 64,
            },
        )
    } else {
        (64 << 20, 2048 << 20, edeploy::hw::Limits::default())
    };
    if let Ok(meta) = fs::metadata(site.site.join("config/.edeploy-log")) {
        assert!(meta.len() <= wal_max, "the log is {} bytes", meta.len());
    }
    let logs: u64 = names(&site.site.join("logs"))
        .iter()
        .filter_map(|n| fs::metadata(site.site.join("logs").join(n)).ok())
        .map(|m| m.len())
        .sum();
    assert!(logs <= log_max, "LOGDIR holds {logs} bytes");
    for n in names(&site.site.join("hw")) {
        let text = fs::read_to_string(site.site.join("hw").join(&n)).expect("a kept list is UTF-8");
        let lines = edeploy::hw::parse(&text, &n).expect("a kept list parses");
        assert_eq!(edeploy::hw::check(&lines, &limits), Ok(()), "{n}");
    }

    // The server log: whole lines, one closing line with the status.
    let err = String::from_utf8(err).expect("the log is not UTF-8");
    assert!(err.ends_with('\n'), "the log does not end a line: {err:?}");
    let prefix = format!("upload.cgi[{}] ", std::process::id());
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty(), "nothing logged");
    for l in &lines {
        assert!(
            l.starts_with(&prefix),
            "a log line that is not one: {l:?}\n{err}"
        );
        assert!(!l.contains('\r'), "a carriage return in the log: {l:?}");
    }
    let last = lines[lines.len() - 1];
    assert!(
        last.contains(&format!(" 192.0.2.9: {status} ")),
        "the last log line does not give the status {status}: {last:?}"
    );

    // The files.
    check_tree(&site);
    if status == 405 {
        assert!(
            names(&site.site.join("hw")).is_empty() && names(&site.site.join("logs")).is_empty(),
            "a refused GET wrote files"
        );
    }
    let after: Vec<Vec<String>> = [&cwd, &outside]
        .iter()
        .map(|d| d.as_deref().map(cgi_like).unwrap_or_default())
        .collect();
    assert_eq!(
        before, after,
        "a .hw or .log.gz file appeared outside the site"
    );
    let _ = fs::remove_dir_all(&site.root);
});
