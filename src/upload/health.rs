//! `upload-health.cgi`: where a node in health-check mode (`HEALTH=1`)
//! sends its results. A CGI/1.1 script beside `upload.cgi`, run by the same
//! web servers with the same configuration file.
//!
//! A request is a `multipart/form-data` POST with a `file` field: the
//! node's hardware list with its benchmark lines (JSON or the literal
//! dialect), and optionally `section`, which picks the configuration
//! section whose HEALTHDIR is used. The list must parse, must hold at least
//! one benchmark line, and every benchmark figure must be a whole decimal
//! number (docs/health.md). It is kept, in the literal dialect, as
//! `HEALTHDIR/<sysname>-<YYYYmmddHHMMSS>.hw` (the server's UTC time; a
//! second result of the same node within the same second gets `-1`, `-2`,
//! … before `.hw` rather than replacing the first), written atomically
//! under the `flock` of HEALTHDIR itself (never LOCKFILE, which the
//! decisions take). The answer is `{"stored": "<file name>"}`.
//!
//! What HEALTHDIR keeps is capped in bytes (`HEALTHMAXNODE` per node,
//! `HEALTHMAX` in all): a node's new result first makes room by deleting
//! that node's own oldest results; when HEALTHDIR as a whole would still
//! pass its cap, the answer is 507 and nothing is written or deleted. A
//! node never deletes another node's results: they are measurements an
//! operator compares, and a node (or one pretending to be many) must not
//! be able to erase them. Only regular files named as results, with
//! their stamp ([`crate::protocol::parse_health_name`]), are counted or
//! deleted.
//!
//! Nothing else is read or written: not CONFIGDIR, the state, the CMDB or
//! HWDIR. Errors are answered as `upload.cgi` answers them (400, 405, 413,
//! 500 with `{"error": "<sentence>"}`, same size limit; 507 when HEALTHDIR
//! is full), and each request
//! writes one line to stderr, `upload-health.cgi[<pid>] <time> <address>:
//! <status> <reason>`.

use crate::cgi::{CgiEnv, Reject, Response};
use crate::clock::Utc;
use crate::config::ServerConfig;
use crate::hw::{self, Line};
use crate::persist::{self, Lock};
use crate::protocol::{health_result_name, parse_health_name};
use crate::provision::parse_hw;
use std::io::{Read, Write};
use std::path::Path;

/// The program name in the log lines.
pub const NAME: &str = "upload-health.cgi";

/// The health CGI's log: one line per request on stderr (the web server's
/// error log), `upload-health.cgi[<pid>] <time> <address>: <status> <reason>`.
pub type HealthLog<'a> = crate::cgi::RequestLog<'a>;

/// [`HealthLog`] writing to `out`.
pub fn health_log<'a>(remote: &str, out: &'a mut dyn Write) -> HealthLog<'a> {
    crate::cgi::RequestLog::named(NAME, remote, out)
}

/// Answers one CGI request whose body is `body`, with the configuration
/// file at `conf_path`; logs one line to `log`.
pub fn serve<R: Read + Send + Unpin>(
    env: &CgiEnv,
    mut body: R,
    conf_path: &Path,
    log: &mut HealthLog<'_>,
) -> Response {
    let result = handle(env, &mut body, conf_path);
    crate::cgi::close(result, &mut body, env, log)
}

fn handle<R: Read + Send + Unpin>(
    env: &CgiEnv,
    body: &mut R,
    conf_path: &Path,
) -> Result<(Response, String), Reject> {
    let (cfg, form) = crate::cgi::read_upload(env, body, conf_path)?;
    let Some(file) = form.file else {
        return Err(Reject::bad("the upload has no \"file\" field"));
    };
    let lines = parse_hw(&file.data, &cfg.hw_limits())?;
    let figures = check_figures(&lines).map_err(Reject::bad)?;
    let sysname = hw::sysname(&lines);
    let name = store(&cfg, &sysname, &lines, &Utc::now().compact()).map_err(|e| {
        let status = if e.is::<Full>() { 507 } else { 500 };
        Reject::new(status, format!("cannot keep the health check: {e:#}"))
    })?;
    Ok((
        Response::ok(serde_json::json!({ "stored": name })),
        format!("{sysname}: health check with {figures} figures kept as {name}"),
    ))
}

/// Whether a line is a benchmark figure: CPU and memory figures on `cpu`
/// lines (`loops_per_sec`, `…bandwidth_…`), disk figures on `disk` lines
/// (`…_KBps`, `…_IOps`).
pub fn is_figure(l: &Line) -> bool {
    match l[0].as_str() {
        "cpu" => l[2] == "loops_per_sec" || l[2].contains("bandwidth_"),
        "disk" => l[2].ends_with("_KBps") || l[2].ends_with("_IOps"),
        _ => false,
    }
}

/// Checks the benchmark figures of a result; returns how many there are.
/// Refused: a list without any, or a figure that is not a whole decimal
/// number (named with its position in the list).
pub fn check_figures(lines: &[Line]) -> Result<usize, String> {
    let mut n = 0;
    for (i, l) in lines.iter().enumerate() {
        if !is_figure(l) {
            continue;
        }
        let v = &l[3];
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "item {} of the hardware list, {}: a benchmark figure must be a whole decimal number",
                i + 1,
                hw::format_line(l)
            ));
        }
        n += 1;
    }
    if n == 0 {
        return Err(
            "the hardware list has no benchmark lines (('cpu', 'logical', 'loops_per_sec', N), \
             …): it is not a health-check result (hardware lists go to upload.cgi)"
                .into(),
        );
    }
    Ok(n)
}

/// A health result HEALTHDIR has no room for (see the module's
/// documentation).
#[derive(Debug, thiserror::Error)]
pub enum Full {
    #[error(
        "the result is {size} bytes, more than the {cap} bytes HEALTHDIR keeps per node \
         (HEALTHMAXNODE); nothing was written"
    )]
    Node { size: u64, cap: u64 },
    #[error(
        "HEALTHDIR is full: it keeps {kept} bytes of results of other nodes, and this one \
         ({size} bytes) would pass the {cap} bytes it may hold (HEALTHMAX); nothing was written"
    )]
    Total { kept: u64, size: u64, cap: u64 },
}

/// Keeps `lines` as `HEALTHDIR/<sysname>-<stamp>.hw` (or `-<stamp>-N.hw`
/// when taken), atomically and under HEALTHDIR's flock, after deleting the oldest
/// results of the same node the caps require; returns the file name. A
/// result with no room is a [`Full`] error, nothing changed.
pub fn store(
    cfg: &ServerConfig,
    sysname: &str,
    lines: &[Line],
    stamp: &str,
) -> anyhow::Result<String> {
    let data = hw::to_literal(lines);
    let size = data.len() as u64;
    if size > cfg.health_max_node {
        return Err(Full::Node {
            size,
            cap: cfg.health_max_node,
        }
        .into());
    }
    let dir = &cfg.healthdir;
    if !dir.is_dir() {
        anyhow::bail!(
            "HEALTHDIR {} is not a directory (create it, owned by the web server's user)",
            dir.display()
        );
    }
    // The flock of HEALTHDIR itself, not LOCKFILE: listing and trimming
    // what the nodes sent never holds the decisions back.
    let _lock = Lock::directory(dir)?;
    make_room(cfg, sysname, size)?;
    let mut name = health_result_name(sysname, stamp, 0);
    let mut n = 0u32;
    while dir.join(&name).symlink_metadata().is_ok() {
        n += 1;
        name = health_result_name(sysname, stamp, n);
    }
    persist::write_atomic(&dir.join(&name), data.as_bytes())?;
    Ok(name)
}

/// One result HEALTHDIR holds: (order key, file name, size).
type Kept = (Option<String>, std::time::SystemTime, String, u64);

/// Deletes `sysname`'s oldest results until one of `size` more bytes
/// fits both caps; deletes nothing and fails when HEALTHDIR would still
/// be over `HEALTHMAX` without any of this node's results.
fn make_room(cfg: &ServerConfig, sysname: &str, size: u64) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = &cfg.healthdir;
    let mut own: Vec<Kept> = Vec::new();
    let mut others = 0u64;
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?
    {
        let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
        let Ok(file) = entry.file_name().into_string() else {
            continue;
        };
        // Only the names results are stored under: a `<name>.hw` without
        // a stamp (HWDIR's lists, should HEALTHDIR be HWDIR) is not one.
        let Some(parsed) = parse_health_name(&file).filter(|p| p.stamp.is_some()) else {
            continue;
        };
        // `DirEntry::metadata` does not follow a symbolic link.
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        if parsed.machine == sysname {
            let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            own.push((parsed.order_key(), mtime, file.clone(), meta.len()));
        } else {
            others += meta.len();
        }
    }
    if others + size > cfg.health_max {
        return Err(Full::Total {
            kept: others,
            size,
            cap: cfg.health_max,
        }
        .into());
    }
    // Oldest first: by the stamp in the name, then by modification time.
    own.sort();
    let mut mine: u64 = own.iter().map(|k| k.3).sum();
    for (_, _, file, len) in &own {
        if mine + size <= cfg.health_max_node && others + mine + size <= cfg.health_max {
            break;
        }
        let path = dir.join(file);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot delete", path.display())),
        }
        mine -= len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(a: &str, b: &str, c: &str, d: &str) -> Line {
        [a.into(), b.into(), c.into(), d.into()]
    }

    #[test]
    fn figures_are_whole_numbers() {
        let good = vec![
            line("system", "product", "name", "x"),
            line("cpu", "logical", "number", "2"),
            line("cpu", "logical_0", "loops_per_sec", "1618"),
            line("disk", "sda", "standalone_randread_4k_IOps", "68456"),
        ];
        assert_eq!(check_figures(&good), Ok(2));
        let mut bad = good.clone();
        bad.push(line("cpu", "logical", "threaded_bandwidth_1M", "27059.96"));
        assert_eq!(
            check_figures(&bad).unwrap_err(),
            "item 5 of the hardware list, ('cpu', 'logical', 'threaded_bandwidth_1M', '27059.96'): \
             a benchmark figure must be a whole decimal number"
        );
        let e = check_figures(&good[..2]).unwrap_err();
        assert!(e.contains("no benchmark lines"), "{e}");
    }

    #[test]
    fn a_second_result_in_the_same_second_gets_a_suffix() {
        let t = tempfile::tempdir().unwrap();
        let mut cfg = ServerConfig::with_configdir(t.path().join("config"));
        cfg.healthdir = t.path().join("health");
        cfg.lockfile = t.path().join("lock");
        let lines = vec![line("cpu", "logical", "loops_per_sec", "5")];
        let e = store(&cfg, "node", &lines, "20261125100000").unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
        std::fs::create_dir(&cfg.healthdir).unwrap();
        let names: Vec<String> = (0..3)
            .map(|_| store(&cfg, "node", &lines, "20261125100000").unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "node-20261125100000.hw",
                "node-20261125100000-1.hw",
                "node-20261125100000-2.hw"
            ]
        );
        let text = std::fs::read_to_string(cfg.healthdir.join(&names[2])).unwrap();
        assert_eq!(hw::parse(&text, "stored").unwrap(), lines);
        // Only the results: no temporary file left, nothing else written.
        let mut all: Vec<String> = std::fs::read_dir(&cfg.healthdir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        all.sort();
        let mut want = names.clone();
        want.sort();
        assert_eq!(all, want);
        assert!(!cfg.configdir.exists());
    }

    #[test]
    fn a_result_is_stored_while_a_decision_holds_lockfile() {
        let t = tempfile::tempdir().unwrap();
        let mut cfg = ServerConfig::with_configdir(t.path().join("config"));
        cfg.healthdir = t.path().join("health");
        cfg.lockfile = t.path().join("lock");
        std::fs::create_dir(&cfg.healthdir).unwrap();
        let held = Lock::exclusive(&cfg.lockfile).unwrap();
        let lines = vec![line("cpu", "logical", "loops_per_sec", "5")];
        let (tx, rx) = std::sync::mpsc::channel();
        let c = cfg.clone();
        std::thread::spawn(move || {
            let _ = tx.send(store(&c, "node", &lines, "20261125100000").map_err(|e| e.to_string()));
        });
        // Bounded: the store either finishes or this fails.
        let stored = rx.recv_timeout(std::time::Duration::from_secs(20));
        drop(held);
        assert_eq!(
            stored.expect("stored while LOCKFILE is held").unwrap(),
            "node-20261125100000.hw"
        );
    }

    #[test]
    fn log_lines_name_the_program() {
        let mut out = Vec::new();
        health_log("10.0.0.7", &mut out).status(400, "bad\nlist");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(&format!("upload-health.cgi[{}] ", std::process::id())),
            "{text}"
        );
        assert!(text.ends_with("Z 10.0.0.7: 400 bad\\nlist\n"), "{text}");
    }

    #[test]
    fn caps_rotate_a_nodes_own_results_and_refuse_when_full() {
        let t = tempfile::tempdir().unwrap();
        let mut cfg = ServerConfig::with_configdir(t.path().join("config"));
        cfg.healthdir = t.path().join("health");
        cfg.lockfile = t.path().join("lock");
        std::fs::create_dir(&cfg.healthdir).unwrap();
        let lines = vec![line("cpu", "logical", "loops_per_sec", "5")];
        let one = hw::to_literal(&lines).len() as u64;
        cfg.health_max_node = 2 * one;
        cfg.health_max = 4 * one;
        // Not ours: never counted, never deleted.
        std::fs::write(
            cfg.healthdir.join("notes.txt"),
            vec![0u8; 10 * one as usize],
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/hostname", cfg.healthdir.join("a-20260101000000.hw"))
            .unwrap();
        // HWDIR's list of the same node, should HEALTHDIR be HWDIR.
        std::fs::write(cfg.healthdir.join("a.hw"), vec![0u8; 10 * one as usize]).unwrap();
        let stamps = ["20261125100000", "20261125100001", "20261125100002"];
        let names: Vec<String> = stamps
            .iter()
            .map(|s| store(&cfg, "a", &lines, s).unwrap())
            .collect();
        // Two results per node: the first went when the third came.
        assert!(!cfg.healthdir.join(&names[0]).exists());
        assert!(cfg.healthdir.join(&names[1]).is_file());
        assert!(cfg.healthdir.join(&names[2]).is_file());
        assert!(cfg.healthdir.join("a-20260101000000.hw").is_symlink());
        assert!(cfg.healthdir.join("notes.txt").is_file());
        assert!(cfg.healthdir.join("a.hw").is_file());
        // Node b fills HEALTHDIR (a 2, b 2); c is refused, nothing changes.
        store(&cfg, "b", &lines, stamps[0]).unwrap();
        store(&cfg, "b", &lines, stamps[1]).unwrap();
        let before = std::fs::read_dir(&cfg.healthdir).unwrap().count();
        let e = store(&cfg, "c", &lines, stamps[0]).unwrap_err();
        assert!(
            matches!(e.downcast_ref::<Full>(), Some(Full::Total { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("HEALTHMAX"), "{e}");
        let after = std::fs::read_dir(&cfg.healthdir).unwrap().count();
        assert_eq!(before, after);
        // a can still send: its own oldest makes room.
        store(&cfg, "a", &lines, "20261125100003").unwrap();
        assert!(!cfg.healthdir.join(&names[1]).exists());
        // Larger than a node may keep: refused.
        cfg.health_max_node = one - 1;
        let e = store(&cfg, "a", &lines, "20261125100004").unwrap_err();
        assert!(e.to_string().contains("HEALTHMAXNODE"), "{e}");
    }
}
