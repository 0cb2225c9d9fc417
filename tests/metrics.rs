//! `status.cgi?format=prometheus` behind a real lighttpd, after real
//! uploads through `upload.cgi`: the counts it exports are those of the
//! requests sent, `promtool check metrics` accepts the page, and a real
//! Prometheus scrapes it.
//!
//! Needs `lighttpd`, `curl` and `prometheus` (which provides `promtool`);
//! `.ci/run` installs them. A missing one fails these tests, it does not
//! skip them.

#[macro_use]
mod support;

use edeploy::persist::log::commit_record_only;
use edeploy::provision::decide::Cmdb;
use edeploy::state::{Count, State};
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{kvm_node, scratch, Answer, Kind, Options, Site, ROOT};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

fn require(binary: &str) {
    assert!(
        Path::new(binary).exists(),
        "{binary} is not installed: these tests need it \
         (apt-get install -y prometheus; .ci/run does this)"
    );
}

/// `GET status.cgi?<query>` with `curl -i`: status, headers, body.
fn get_status(site: &Site, query: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "60"])
        .arg(format!("{}?{query}", site.url_of("status.cgi")))
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 answer");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

/// The samples of an exposition, `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let v = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("not a value: {line:?}")),
        };
        assert!(
            out.insert(series.to_string(), v).is_none(),
            "twice: {series}"
        );
    }
    out
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    match samples.get(series) {
        Some(v) => *v,
        None => {
            let mut known: Vec<&String> = samples.keys().collect();
            known.sort();
            panic!("no {series} among {known:#?}")
        }
    }
}

fn by_code(samples: &HashMap<String, f64>, family: &str, code: &str) -> f64 {
    value(
        samples,
        &format!("{family}{{section=\"SERVER\",code=\"{code}\"}}"),
    )
}

/// `promtool check metrics` on an exposition: its verdict and output.
fn promtool(text: &str) -> (bool, String) {
    require(PROMTOOL);
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    let mut said = String::from_utf8_lossy(&out.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

fn node(site: &Site, i: usize) -> PathBuf {
    scratch(site, &format!("node{i}.hw"), kvm_node(i).as_bytes())
}

fn left(site: &Site, profile: &str) -> Count {
    State::load(&site.path("config/state"))
        .expect("state")
        .get(profile)
        .unwrap_or_else(|| panic!("{profile} not in state"))
        .count
}

/// The bytes and number of files of `dir` whose names end in `suffix`.
fn bytes_of(dir: &Path, suffix: &str) -> (f64, f64) {
    let (mut bytes, mut files) = (0u64, 0u64);
    for e in fs::read_dir(dir).expect("list").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = e.metadata().expect("stat");
        if meta.is_file() && !name.starts_with('.') && name.ends_with(suffix) {
            bytes += meta.len();
            files += 1;
        }
    }
    (bytes as f64, files as f64)
}

fn status_of(a: &Option<Answer>) -> u16 {
    a.as_ref().map_or(0, |a| a.status)
}

#[test]
fn counts_through_lighttpd_are_those_sent() {
    let site = Site::start(Kind::Lighttpd, Options::default());

    // Six nodes at once: six upload.cgi processes counting together.
    let nodes: Vec<PathBuf> = (1..=6).map(|i| node(&site, i)).collect();
    let answers = site.upload_all(&nodes);
    let statuses: Vec<u16> = answers.iter().map(status_of).collect();
    assert_eq!(statuses, vec![200; 6], "{answers:?}");

    let nobody = scratch(
        &site,
        "nobody.hw",
        b"[('system', 'product', 'vendor', 'Nobody'), ('system', 'product', 'serial', 'N1')]",
    );
    let dell = Path::new(ROOT).join("tests/fixtures/hw/dell-poweredge-m520.hw");
    let broken = scratch(&site, "broken.hw", b"[('system', ");
    let log = scratch(&site, "node1.log.gz", b"\x1f\x8b a log");
    let sent: Vec<(Answer, u16)> = vec![
        (site.upload(&nobody, &[]), 404),
        (site.upload(&dell, &[]), 409),
        (site.upload(&broken, &[]), 400),
        (site.upload(&nodes[0], &["failure=vm"]), 200),
        (site.upload(&nodes[0], &["failure=vm"]), 409),
        (site.upload(&nodes[1], &["failure=nosuch"]), 404),
        (site.upload(&log, &[]), 200),
        (site.curl(&[]), 405),
    ];
    for (a, want) in &sent {
        assert_eq!(a.status, *want, "{}", a.body);
    }
    assert_eq!(left(&site, "vm"), Count::Left(5));

    let (status, head, body) = get_status(&site, "format=prometheus");
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let (ok, said) = promtool(&body);
    assert!(
        ok,
        "promtool check metrics refused the page: {said}\n{body}"
    );
    let s = samples(&body);

    // The decisions: six 200s, the 404, the 409, the 400.
    for (code, n) in [
        ("200", 6.0),
        ("404", 1.0),
        ("409", 1.0),
        ("400", 1.0),
        ("500", 0.0),
    ] {
        assert_eq!(
            by_code(&s, "edeploy_decisions_total", code),
            n,
            "decisions {code}"
        );
    }
    for (code, n) in [("200", 1.0), ("409", 1.0), ("404", 1.0), ("400", 0.0)] {
        assert_eq!(
            by_code(&s, "edeploy_failure_reports_total", code),
            n,
            "failure reports {code}"
        );
    }
    // Every request: the above, the log and the GET.
    for (code, n) in [
        ("200", 8.0),
        ("404", 2.0),
        ("409", 2.0),
        ("400", 1.0),
        ("405", 1.0),
        ("other", 0.0),
    ] {
        assert_eq!(
            by_code(&s, "edeploy_upload_requests_total", code),
            n,
            "requests {code}"
        );
    }
    // The decisions that ran (not the 400, refused before deciding).
    let count = value(
        &s,
        r#"edeploy_decision_duration_seconds_count{section="SERVER"}"#,
    );
    assert_eq!(count, 8.0);
    assert_eq!(
        value(
            &s,
            r#"edeploy_decision_duration_seconds_bucket{section="SERVER",le="+Inf"}"#
        ),
        count
    );
    let sum = value(
        &s,
        r#"edeploy_decision_duration_seconds_sum{section="SERVER"}"#,
    );
    assert!(sum > 0.0 && sum < 8.0 * 60.0, "{sum}");

    // The gauges, against the files.
    assert_eq!(
        value(
            &s,
            r#"edeploy_installs_left{section="SERVER",profile="vm"}"#
        ),
        5.0
    );
    for profile in ["vm", "hp", "dell"] {
        let db = Cmdb::load(&site.path(&format!("config/{profile}.cmdb"))).expect("cmdb");
        let used = db
            .entries
            .iter()
            .filter(|e| e.get("used").is_some())
            .count() as f64;
        let total = db.entries.len() as f64;
        let series = |what: &str| {
            format!("edeploy_cmdb_entries_{what}{{section=\"SERVER\",profile=\"{profile}\"}}")
        };
        assert_eq!(value(&s, &series("used")), used, "{profile}");
        assert_eq!(value(&s, &series("free")), total - used, "{profile}");
    }
    assert_eq!(
        value(
            &s,
            r#"edeploy_cmdb_entries_used{section="SERVER",profile="vm"}"#
        ),
        6.0,
        "the failed node keeps its entry"
    );
    for (dir, rel, suffix) in [
        ("hwdir", "hw", ".hw"),
        ("logdir", "logs", ".log.gz"),
        ("healthdir", "health", ".hw"),
    ] {
        let (bytes, files) = bytes_of(&site.path(rel), suffix);
        let series = |f: &str| format!("{f}{{section=\"SERVER\",dir=\"{dir}\"}}");
        assert_eq!(value(&s, &series("edeploy_dir_bytes")), bytes, "{dir}");
        assert_eq!(value(&s, &series("edeploy_dir_files")), files, "{dir}");
        assert_eq!(value(&s, &series("edeploy_dir_truncated")), 0.0, "{dir}");
    }
    assert!(bytes_of(&site.path("hw"), ".hw").1 >= 8.0);
    assert_eq!(
        value(&s, r#"edeploy_wal_recoveries_total{section="SERVER"}"#),
        0.0
    );

    // A crash's leftovers: a committed record, one of whose targets
    // cannot be written. The next decision finishes it and sets it aside.
    let config = site.path("config");
    let long = config.join(format!("{}.hw", "n".repeat(247)));
    commit_record_only(
        &config,
        vec![
            (config.join("notes"), b"kept\n".to_vec()),
            (long, b"[]\n".to_vec()),
        ],
    )
    .expect("a record left unapplied");
    site.hand_over();
    let a = site.upload(&node(&site, 7), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(site.read("config/notes"), "kept\n");
    let (_, _, body) = get_status(&site, "format=prometheus");
    let s = samples(&body);
    assert_eq!(
        value(&s, r#"edeploy_wal_recoveries_total{section="SERVER"}"#),
        1.0
    );
    assert_eq!(
        value(
            &s,
            r#"edeploy_wal_records_set_aside_total{section="SERVER"}"#
        ),
        1.0
    );
    assert_eq!(by_code(&s, "edeploy_decisions_total", "200"), 7.0);
    assert_eq!(
        value(
            &s,
            r#"edeploy_installs_left{section="SERVER",profile="vm"}"#
        ),
        4.0
    );

    // Another section has counters of its own; an unknown one is a 400
    // in plain text; a bad format names the choices.
    let (status, _, body) = get_status(&site, "format=prometheus&section=lab");
    assert_eq!(status, 200, "{body}");
    let lab = samples(&body);
    assert_eq!(
        value(&lab, r#"edeploy_decisions_total{section="lab",code="200"}"#),
        0.0
    );
    let (status, head, body) = get_status(&site, "format=prometheus&section=nosuch");
    assert_eq!(status, 400, "{body}");
    assert!(head.contains("text/plain"), "{head}");
    assert!(body.contains("[nosuch]"), "{body}");
    let (status, _, body) = get_status(&site, "format=openmetrics");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("json, html or prometheus"), "{body}");

    // A corrupt counters file: the next upload restarts them from zero,
    // says so in the log, and is answered as usual.
    site.write("config/.edeploy-metrics", "not counters");
    let a = site.upload(&node(&site, 8), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let log = site.log_with("restart from zero");
    assert!(
        log.iter().any(|l| l.contains("restart from zero")),
        "{log:?}"
    );
    let (_, _, body) = get_status(&site, "format=prometheus");
    let s = samples(&body);
    assert_eq!(by_code(&s, "edeploy_decisions_total", "200"), 1.0);
    assert_eq!(by_code(&s, "edeploy_upload_requests_total", "200"), 1.0);
}

/// Many `upload.cgi` processes counting at once into one file: 8
/// processes at a time, 200 in all, each a GET (405, counted in
/// `[SERVER]`'s CONFIGDIR); the counters hold exactly 200.
#[test]
fn concurrent_processes_sum_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config");
    fs::create_dir(&config).expect("config dir");
    let conf = dir.path().join("edeploy.conf");
    fs::write(
        &conf,
        format!("[SERVER]\nCONFIGDIR = {}\n", config.display()),
    )
    .expect("edeploy.conf");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_upload-cgi"))
            .env("EDEPLOY_CONF", &conf)
            .env("REQUEST_METHOD", "GET")
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start upload.cgi")
    };
    for _ in 0..25 {
        let children: Vec<Child> = (0..8).map(|_| run()).collect();
        for c in children {
            let out = c.wait_with_output().expect("wait for upload.cgi");
            let answer = String::from_utf8_lossy(&out.stdout);
            assert!(answer.starts_with("Status: 405"), "{answer}");
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(!log.contains("warning"), "{log}");
        }
    }
    let c = edeploy::metrics::read(&config);
    assert_eq!(c.problem, None);
    let i = edeploy::metrics::code_index(405);
    assert_eq!(c.counters.requests[i], 200);
    assert_eq!(c.counters.requests.iter().sum::<u64>(), 200);
    assert_eq!(c.counters.decisions.iter().sum::<u64>(), 0);
}

#[test]
fn promtool_refuses_a_broken_exposition() {
    // The check the page passes above can fail.
    let (ok, said) = promtool("# TYPE x counter\nx{a=\"b} 1\n");
    assert!(!ok, "promtool accepted a broken exposition: {said}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local address")
        .port()
}

/// A Prometheus server started for a test, stopped (by its PID) when
/// dropped.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Prometheus {
        require(PROMETHEUS);
        let dir = tempfile::Builder::new()
            .prefix("edeploy-prometheus-")
            .tempdir()
            .expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: edeploy\n    metrics_path: /cgi-bin/status.cgi\n\
                 \x20   params:\n      format: [prometheus]\n\
                 \x20   static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .expect("prometheus.yml");
        let port = free_port();
        let log = fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PROMETHEUS}: {e}"));
        Prometheus { child, port, dir }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/query?query=...` (curl URL-encodes it).
    fn query(&self, query: &str) -> Option<serde_json::Value> {
        let out = Command::new("curl")
            .args(["-s", "-G", "--max-time", "5"])
            .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .arg("--data-urlencode")
            .arg(format!("query={query}"))
            .stdin(Stdio::null())
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The first result's value of an instant query, once there is one.
    fn scalar(&self, query: &str) -> Option<f64> {
        let answer = self.query(query)?;
        let v = answer.pointer("/data/result/0/value/1")?.as_str()?;
        v.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_the_page() {
    let site = Site::start(Kind::Lighttpd, Options::default());
    for i in 1..=3 {
        let a = site.upload(&node(&site, i), &[]);
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let nobody = scratch(
        &site,
        "nobody.hw",
        b"[('system', 'product', 'vendor', 'Nobody')]",
    );
    assert_eq!(site.upload(&nobody, &[]).status, 404);
    assert_eq!(left(&site, "vm"), Count::Left(7));

    let mut prometheus = Prometheus::start(site.port);
    let deadline = Instant::now() + Duration::from_secs(60);
    let left_query = r#"edeploy_installs_left{job="edeploy",profile="vm"}"#;
    let got = loop {
        if let Ok(Some(status)) = prometheus.child.try_wait() {
            let mut err = prometheus.log();
            if let Some(mut e) = prometheus.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("prometheus exited with {status}:\n{err}");
        }
        if let Some(v) = prometheus.scalar(left_query) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus had no {left_query} within 60 s; its targets: {:?}\nits log:\n{}",
            prometheus
                .query("up")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(got, 7.0);
    assert_eq!(
        prometheus.scalar(r#"edeploy_decisions_total{job="edeploy",code="200"}"#),
        Some(3.0)
    );
    assert_eq!(
        prometheus.scalar(r#"edeploy_decisions_total{job="edeploy",code="404"}"#),
        Some(1.0)
    );
    assert_eq!(prometheus.scalar(r#"up{job="edeploy"}"#), Some(1.0));
    // The alert rule of docs/status.md, as an expression.
    assert_eq!(
        prometheus.scalar(r#"count(edeploy_installs_left < 5)"#),
        Some(2.0),
        "hp (2) and virtio (3) are under 5"
    );
}
