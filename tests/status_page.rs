//! `status.cgi` behind real web servers, read by a real browser.
//!
//! A small storm of uploads (12 concurrent `curl`s of distinct KVM nodes,
//! against quotas that leave three without a profile), a failure report,
//! an install log and four health-check results go to a real lighttpd;
//! then headless Chromium loads the page and the figures it renders are
//! compared with the JSON variant and with what the test computes itself
//! from the answers and the files. A screenshot is taken
//! (`EDEPLOY_STATUS_SCREENSHOT=docs/status-page.png` keeps it). The JSON
//! part also runs against Apache. Both check that reading changes no file,
//! that only GET and HEAD are answered, that log names are checked and
//! that the shipped configuration refuses other addresses.
//!
//! Needs `lighttpd`, `apache2`, `curl` and `chromium` (`.ci/run` installs
//! them): a missing one fails these tests, it does not skip them.

mod support;

use edeploy::hw;
use edeploy::provision::decide::Cmdb;
use edeploy::state::{Count, State};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use support::{parse_curl, scratch, Answer, Kind, Options, Site, ROOT};

const CHROMIUM: &str = "/usr/bin/chromium";
const NODES: usize = 12;
const VM_QUOTA: u64 = 6;
const OVERFLOW_QUOTA: u64 = 3;
const OVERFLOW_ENTRIES: usize = 4;

fn options() -> Options {
    let configure = fs::read_to_string(Path::new(ROOT).join("share/examples/config/vm.configure"))
        .expect("the example's configure script");
    Options {
        fixtures: Vec::new(),
        files: vec![
            (
                "state".into(),
                format!("[('vm', {VM_QUOTA}), ('overflow', {OVERFLOW_QUOTA})]\n"),
            ),
            (
                "overflow.specs".into(),
                "[('system', 'product', 'vendor', 'kvm'),\n \
                 ('network', '$eth', 'serial', '$mac')]\n"
                    .into(),
            ),
            (
                "overflow.cmdb".into(),
                format!(
                    "generate({{'hostname': 'spare1-{OVERFLOW_ENTRIES}', \
                     'ip': '10.0.9.1-{OVERFLOW_ENTRIES}'}})\n"
                ),
            ),
            ("overflow.configure".into(), configure),
        ],
        ..Options::default()
    }
}

/// The KVM fixture with MAC addresses of its own: node `i` of the storm,
/// with the boot-mode line today's installer adds (the example's vm.specs
/// binds `$boot_mode`; the captured list predates it).
fn kvm_node(i: usize) -> String {
    let text = fs::read_to_string(Path::new(ROOT).join("tests/fixtures/hw/kvm-test-vm.hw"))
        .expect("the KVM fixture");
    let mine = text.replace("52:54:12:34:00:0", &format!("52:54:00:{i:02x}:00:0"));
    assert_ne!(mine, text);
    mine.replacen('[', "[('firmware', 'boot', 'mode', 'bios'),\n ", 1)
}

/// `curl` on a URL of the site, with extra arguments.
fn get(url: &str, args: &[&str]) -> Answer {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    parse_curl(&out.stdout, &out.stderr)
}

/// The raw bytes of a GET (a log download).
fn get_bytes(url: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-s", "-S", "-f", "--max-time", "60"])
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).expect("gzip");
    e.finish().expect("gzip")
}

/// Four machines of one model, the last one slow: `(file, sysname)`.
fn write_health_results(site: &Site) -> String {
    let figures = [1000, 1012, 995, 420];
    let mut slow = String::new();
    for (i, loops) in figures.iter().enumerate() {
        let text = format!(
            "[('system', 'product', 'name', 'Health 9000'),\n \
             ('system', 'product', 'vendor', 'Synth'),\n \
             ('system', 'product', 'serial', 'HC{i:04}'),\n \
             ('cpu', 'logical', 'number', '8'),\n \
             ('cpu', 'logical', 'loops_per_sec', '{loops}'),\n \
             ('cpu', 'logical_0', 'loops_per_sec', '{}'),\n \
             ('health', 'run', 'date', '2026-11-25T10:00:0{i}Z')]\n",
            loops / 8
        );
        let lines = hw::parse(&text, "health").expect("health result");
        let sysname = hw::sysname(&lines);
        fs::write(
            site.path(&format!("health/{sysname}-2026112510000{i}.hw")),
            text,
        )
        .expect("health result file");
        slow = sysname;
    }
    site.hand_over();
    slow
}

// ---------------------------------------------------------------------------
// Chromium.

fn chromium() -> &'static str {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is not installed: the status page tests need it \
         (apt-get install -y chromium fonts-dejavu-core; .ci/run does this)"
    );
    CHROMIUM
}

/// Runs headless Chromium with `args` on `url`, at most 90 s; returns
/// its stdout.
fn run_chromium(args: &[&str], url: &str) -> String {
    let profile = tempfile::Builder::new()
        .prefix("edeploy-chromium-")
        .tempdir()
        .expect("profile dir");
    let out_path = profile.path().join("stdout");
    let err_path = profile.path().join("stderr");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            // Root (CI) cannot use Chromium's sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("ud").display()
        ))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout file"))
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within 90 s: {}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "chromium failed ({status}): {}",
        fs::read_to_string(&err_path).unwrap_or_default()
    );
    fs::read_to_string(&out_path).expect("chromium's output")
}

/// The page's DOM after Chromium rendered it.
fn dump_dom(url: &str) -> String {
    let dom = run_chromium(&["--dump-dom"], url);
    assert!(
        dom.contains("<h1>eDeploy status</h1>"),
        "not the page: {dom}"
    );
    dom
}

/// A screenshot of the page: checks it is a PNG of the window's width.
fn screenshot(url: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let png = dir.path().join("status.png");
    run_chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,1600",
        ],
        url,
    );
    let data = fs::read(&png).expect("the screenshot");
    assert!(data.len() > 10_000, "a {}-byte screenshot", data.len());
    assert_eq!(&data[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&data[12..16], b"IHDR");
    let width = u32::from_be_bytes(data[16..20].try_into().expect("width"));
    let height = u32::from_be_bytes(data[20..24].try_into().expect("height"));
    assert_eq!((width, height), (1280, 1600));
    data
}

// ---------------------------------------------------------------------------
// Reading the DOM.

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("pattern")
}

/// The text of the element with `id`.
fn by_id(dom: &str, id: &str) -> String {
    let r = re(&format!(r#"id="{}"[^>]*>([^<]*)<"#, regex::escape(id)));
    match r.captures(dom) {
        Some(c) => c[1].to_string(),
        None => panic!("no element #{id} in the page"),
    }
}

fn number(dom: &str, id: &str) -> usize {
    let text = by_id(dom, id);
    text.parse()
        .unwrap_or_else(|_| panic!("#{id} is {text:?}, not a number"))
}

/// The `<tr …>` rows whose opening tag starts with `attr`, as (opening
/// tag, body).
fn rows<'a>(dom: &'a str, attr: &str) -> Vec<(&'a str, &'a str)> {
    let r = re(&format!(r#"(?s)(<tr {attr}="[^"]*"[^>]*>)(.*?)</tr>"#));
    r.captures_iter(dom)
        .map(|c| {
            let tag = c.get(1).expect("tag").as_str();
            let body = c.get(2).expect("body").as_str();
            (tag, body)
        })
        .collect()
}

/// The value of `attr` in an opening tag or a row's cells.
fn attr(text: &str, attr: &str) -> Option<String> {
    re(&format!(r#"\b{attr}="([^"]*)""#))
        .captures(text)
        .map(|c| unescape(&c[1]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The text of the cell `data-k="key"` in a row or block.
fn cell(text: &str, key: &str) -> String {
    let r = re(&format!(r#"data-k="{key}"[^>]*>(?:<[^>]*>)*([^<]*)<"#));
    match r.captures(text) {
        Some(c) => c[1].to_string(),
        None => panic!("no data-k={key} in {text}"),
    }
}

/// The CMDB blocks: profile → (used, free, total, entry number → node).
fn cmdb_blocks(dom: &str) -> BTreeMap<String, (usize, usize, usize, BTreeMap<usize, String>)> {
    let starts: Vec<(usize, String)> = re(r#"<div class="cmdb" data-cmdb="([^"]*)""#)
        .captures_iter(dom)
        .map(|c| (c.get(0).expect("match").start(), unescape(&c[1])))
        .collect();
    let mut out = BTreeMap::new();
    for (k, (start, profile)) in starts.iter().enumerate() {
        let end = starts
            .get(k + 1)
            .map(|(s, _)| *s)
            .unwrap_or_else(|| start + dom[*start..].find("</section>").expect("end"));
        let block = &dom[*start..end];
        let n = |key: &str| -> usize { cell(block, key).parse().expect("a number") };
        let mut holders = BTreeMap::new();
        for (tag, _) in rows(block, "data-entry") {
            let entry: usize = attr(tag, "data-entry")
                .and_then(|e| e.parse().ok())
                .expect("entry number");
            holders.insert(entry, attr(tag, "data-node").unwrap_or_default());
        }
        out.insert(profile.clone(), (n("used"), n("free"), n("total"), holders));
    }
    out
}

// ---------------------------------------------------------------------------
// What the files say, computed here.

struct OnDisk {
    left: BTreeMap<String, Option<u64>>,
    /// profile → (used, free)
    cmdb: BTreeMap<String, (usize, usize)>,
    uploads: usize,
    logs: BTreeSet<String>,
}

fn on_disk(site: &Site) -> OnDisk {
    let state = State::load(&site.path("config/state")).expect("state parses");
    let left = state
        .entries
        .iter()
        .map(|e| {
            let n = match e.count {
                Count::Left(n) => Some(n),
                Count::Unlimited => None,
            };
            (e.profile.clone(), n)
        })
        .collect();
    let mut cmdb = BTreeMap::new();
    for entry in fs::read_dir(site.path("config")).expect("config dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        if let Some(profile) = name.strip_suffix(".cmdb") {
            let db = Cmdb::load(&site.path(&format!("config/{name}"))).expect("cmdb parses");
            let used = db
                .entries
                .iter()
                .filter(|e| e.get("used").is_some())
                .count();
            cmdb.insert(profile.to_string(), (used, db.entries.len() - used));
        }
    }
    let names = |dir: &str, suffix: &str| -> BTreeSet<String> {
        fs::read_dir(site.path(dir))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .filter(|n| n.ends_with(suffix) && !n.starts_with('.'))
            .collect()
    };
    OnDisk {
        left,
        cmdb,
        uploads: names("hw", ".hw").len(),
        logs: names("logs", ".log.gz"),
    }
}

/// Path → (bytes, mtime) of the site's data and lock file: what
/// `status.cgi` must never change. The web server's own logs are left out.
fn snapshot(site: &Site) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    for dir in ["config", "hw", "logs", "health", "lab"] {
        for e in walkdir::WalkDir::new(site.path(dir)) {
            let e = e.expect("walk");
            let meta = e.metadata().expect("metadata");
            let data = if meta.is_file() {
                fs::read(e.path()).expect("read")
            } else {
                Vec::new()
            };
            out.insert(
                e.path().to_path_buf(),
                (data, meta.modified().expect("mtime")),
            );
        }
    }
    let lock = site.path("run/edeploy.lock");
    if let Ok(meta) = fs::metadata(&lock) {
        out.insert(
            lock.clone(),
            (
                fs::read(&lock).expect("lock"),
                meta.modified().expect("mtime"),
            ),
        );
    }
    out
}

/// Requests that must change nothing, and their statuses.
fn read_only_requests(site: &Site, log: &str) {
    let page = site.url_of("status.cgi");
    let before = snapshot(site);
    let head = get(&page, &["-I"]);
    assert_eq!(head.status, 200);
    assert!(
        head.body
            .to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{}",
        head.body
    );
    assert!(!head.body.contains("<html"), "HEAD sent a body");
    for method in ["POST", "PUT", "DELETE"] {
        let a = get(&page, &["-X", method, "-d", "x=1"]);
        assert_eq!(a.status, 405, "{method}: {}", a.body);
    }
    let a = get(&page, &["-i", "-X", "POST", "-d", "x=1"]);
    assert!(a.body.contains("Allow: GET, HEAD"), "{}", a.body);
    for (query, status) in [
        ("?log=..%2Fedeploy.conf", 400),
        ("?log=../x", 400),
        ("?log=%2Fetc%2Fpasswd", 400),
        ("?log=absent.log.gz", 404),
        ("?section=nope", 400),
    ] {
        let a = get(
            &format!("{page}{query}"),
            &["-H", "Accept: application/json"],
        );
        assert_eq!(a.status, status, "{query}: {}", a.body);
        assert!(a.json()["error"].is_string(), "{query}");
    }
    for query in [
        String::new(),
        "?format=json".into(),
        "?uploads=all".into(),
        "?section=lab".into(),
        format!("?log={log}"),
        format!("?log={log}&view=text"),
    ] {
        assert_eq!(get(&format!("{page}{query}"), &[]).status, 200, "{query}");
    }
    assert_eq!(snapshot(site), before, "status.cgi changed a file");
}

/// The shipped configuration lets only the operators' network read the
/// page: from another loopback address (127.0.0.2, neither 127.0.0.1 nor
/// the operators' range) the server refuses it.
fn other_addresses_are_refused(site: &Site) {
    let a = get(&site.url_of("status.cgi"), &["--interface", "127.0.0.2"]);
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(get(&site.url_of("status.cgi"), &[]).status, 200);
}

// ---------------------------------------------------------------------------

struct Storm {
    /// sysname → (profile or HTTP status, hostname)
    nodes: BTreeMap<String, (String, Option<String>)>,
    failed: String,
    log: String,
    log_text: String,
    slow: String,
}

fn storm(site: &Site) -> Storm {
    let files: Vec<PathBuf> = (0..NODES)
        .map(|i| scratch(site, &format!("node{i}.hw"), kvm_node(i).as_bytes()))
        .collect();
    let answers: Vec<Answer> = site
        .upload_all(&files)
        .into_iter()
        .map(|a| a.expect("an HTTP answer"))
        .collect();
    let mut nodes = BTreeMap::new();
    let mut first_vm = None;
    for (i, a) in answers.iter().enumerate() {
        let lines = hw::parse(&kvm_node(i), "node").expect("node");
        let sysname = hw::sysname(&lines);
        let outcome = match a.status {
            200 => {
                let v = a.json();
                let profile = v["profile"].as_str().expect("profile").to_string();
                if profile == "vm" && first_vm.is_none() {
                    first_vm = Some(i);
                }
                let host = v["vars"]["hostname"].as_str().map(String::from);
                (profile, host)
            }
            404 => {
                assert!(a.error().contains("no installs left"), "{}", a.body);
                ("404".to_string(), None)
            }
            other => panic!("node {i}: {other} {}", a.body),
        };
        nodes.insert(sysname, outcome);
    }
    let count = |p: &str| nodes.values().filter(|(o, _)| o == p).count();
    assert_eq!(count("vm") as u64, VM_QUOTA, "{nodes:?}");
    assert_eq!(count("overflow") as u64, OVERFLOW_QUOTA, "{nodes:?}");
    assert_eq!(count("404"), NODES - (VM_QUOTA + OVERFLOW_QUOTA) as usize);

    // One install fails: the node reports it, then uploads its log.
    let i = first_vm.expect("a vm node");
    let a = site.upload(&files[i], &["failure=vm"]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["given_back"], true);
    let lines = hw::parse(&kvm_node(i), "node").expect("node");
    let log = hw::log_name(&lines);
    let log_text = "edeploy-init: partitioning /dev/vda failed\n<b>&amp; hostile</b>\n".to_string();
    let a = site.upload(&scratch(site, &log, &gzip(&log_text)), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["log"], log.as_str());

    let slow = write_health_results(site);
    Storm {
        nodes,
        failed: hw::sysname(&lines),
        log,
        log_text,
        slow,
    }
}

#[test]
fn page_in_chromium_after_a_storm_through_lighttpd() {
    chromium();
    let site = Site::start(Kind::Lighttpd, options());
    let storm = storm(&site);
    let disk = on_disk(&site);
    let url = site.url_of("status.cgi");

    let json_answer = get(&format!("{url}?format=json"), &[]);
    assert_eq!(json_answer.status, 200, "{}", json_answer.body);
    let json = json_answer.json();
    let dom = dump_dom(&url);

    // No problem reported.
    assert_eq!(number(&dom, "problems-total"), 0, "{}", json["problems"]);
    assert_eq!(json["problems"].as_array().map(Vec::len), Some(0));
    assert_eq!(json["lock"], "shared");

    // Profiles, in order, with their installs left.
    let profiles: Vec<(String, String)> = rows(&dom, "data-profile")
        .into_iter()
        .map(|(tag, body)| {
            (
                attr(tag, "data-profile").expect("profile"),
                attr(body, "data-v").expect("left"),
            )
        })
        .collect();
    let expected_left = [
        // Six taken, one given back by the failure report.
        ("vm".to_string(), "1".to_string()),
        ("overflow".to_string(), "0".to_string()),
    ];
    assert_eq!(profiles, expected_left);
    for (k, (profile, left)) in expected_left.iter().enumerate() {
        assert_eq!(json["profiles"][k]["profile"], profile.as_str());
        assert_eq!(json["profiles"][k]["left"].to_string(), *left);
        assert_eq!(
            disk.left[profile].map(|n| n.to_string()).as_deref(),
            Some(left.as_str())
        );
    }

    // CMDBs: used and free, and which node holds which entry.
    let blocks = cmdb_blocks(&dom);
    assert_eq!(
        blocks.keys().collect::<Vec<_>>(),
        ["overflow", "vm"],
        "{blocks:?}"
    );
    let taken = |p: &str| storm.nodes.values().filter(|(o, _)| o == p).count();
    for c in json["cmdbs"].as_array().expect("cmdbs") {
        let profile = c["profile"].as_str().expect("profile");
        let (used, free, total, holders) = &blocks[profile];
        assert_eq!(
            (c["used"].as_u64(), c["free"].as_u64()),
            (Some(*used as u64), Some(*free as u64))
        );
        assert_eq!(disk.cmdb[profile], (*used, *free), "{profile}");
        assert_eq!(
            *used,
            taken(profile),
            "{profile}: one entry per node served"
        );
        assert_eq!(used + free, *total);
        // Each used entry is held by the node that was told its hostname.
        assert_eq!(holders.len(), *used);
        for e in c["entries"].as_array().expect("entries") {
            if e["used"] != true {
                continue;
            }
            let number = e["number"].as_u64().expect("number") as usize;
            let host = e["hostname"].as_str().expect("hostname");
            let (node, _) = storm
                .nodes
                .iter()
                .find(|(_, (_, h))| h.as_deref() == Some(host))
                .unwrap_or_else(|| panic!("nobody was told {host}"));
            assert_eq!(&holders[&number], node, "{profile} entry {number}");
            assert_eq!(e["node"], node.as_str());
        }
    }
    assert_eq!(blocks["vm"].2, 20, "the example's generated CMDB");
    assert_eq!(blocks["overflow"].2, OVERFLOW_ENTRIES);

    // Uploads: all counted, each with what became of it.
    assert_eq!(number(&dom, "uploads-total"), NODES);
    assert_eq!(disk.uploads, NODES);
    assert_eq!(json["uploads"]["total"], NODES);
    let served = (VM_QUOTA + OVERFLOW_QUOTA) as usize;
    assert_eq!(number(&dom, "uploads-assigned"), served - 1);
    assert_eq!(number(&dom, "uploads-failed"), 1);
    assert_eq!(number(&dom, "uploads-unrecorded"), NODES - served);
    let upload_rows = rows(&dom, "data-upload");
    assert_eq!(upload_rows.len(), NODES);
    for (tag, body) in &upload_rows {
        let node = attr(tag, "data-upload").expect("node");
        let outcome = attr(tag, "data-outcome").expect("outcome");
        let profile = attr(tag, "data-profile").expect("profile");
        let (told, _) = &storm.nodes[&node];
        if node == storm.failed {
            assert_eq!((outcome.as_str(), profile.as_str()), ("failed", "vm"));
            assert!(body.contains(&storm.log), "no log link in {body}");
        } else if told == "404" {
            assert_eq!((outcome.as_str(), profile.as_str()), ("unrecorded", ""));
            // The failure gave an install of vm back: asking now would
            // get it.
            assert!(
                body.contains("if it asked now: would get profile vm"),
                "{body}"
            );
        } else {
            assert_eq!(
                (outcome.as_str(), profile.as_str()),
                ("assigned", told.as_str())
            );
        }
        let item = json["uploads"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["sysname"] == node.as_str())
            .expect("the node in the JSON");
        assert_eq!(item["outcome"], outcome.as_str());
    }

    // The failure log, linked; the link serves the log.
    assert_eq!(number(&dom, "logs-total"), 1);
    assert_eq!(disk.logs.iter().collect::<Vec<_>>(), [&storm.log]);
    let log_rows = rows(&dom, "data-log");
    assert_eq!(log_rows.len(), 1);
    let (tag, body) = log_rows[0];
    assert_eq!(attr(tag, "data-log").as_deref(), Some(storm.log.as_str()));
    let view = re(r#"<a class="view" href="([^"]*)""#)
        .captures(body)
        .map(|c| unescape(&c[1]))
        .expect("a view link");
    let download = re(r#"<a class="download" href="([^"]*)""#)
        .captures(body)
        .map(|c| unescape(&c[1]))
        .expect("a download link");
    assert_eq!(view, format!("?log={}&view=text", storm.log));
    let text = get_bytes(&format!("{url}{view}"));
    assert_eq!(String::from_utf8_lossy(&text), storm.log_text);
    assert_eq!(
        get_bytes(&format!("{url}{download}")),
        fs::read(site.path(&format!("logs/{}", storm.log))).expect("the log")
    );
    let logs_json = &json["logs"][0];
    assert_eq!(logs_json["name"], storm.log.as_str());
    assert_eq!(logs_json["node"], storm.failed.as_str());

    // The health outlier: the slow machine, and only it.
    assert_eq!(number(&dom, "health-results"), 4);
    assert_eq!(number(&dom, "health-machines"), 4);
    let outliers: BTreeSet<String> = rows(&dom, "data-outlier")
        .iter()
        .map(|(tag, _)| attr(tag, "data-outlier").expect("machine"))
        .collect();
    assert_eq!(
        outliers,
        BTreeSet::from([storm.slow.clone()]),
        "{}",
        json["health"]
    );
    assert_eq!(
        number(&dom, "outliers-total"),
        json["health"]["outliers"].as_array().map_or(0, Vec::len)
    );
    for o in json["health"]["outliers"].as_array().expect("outliers") {
        assert_eq!(o["machine"], storm.slow.as_str());
        assert!(o["deviation"].as_f64().expect("deviation") < -0.3, "{o}");
    }

    // The screenshot.
    let png = screenshot(&url);
    if let Some(dest) = std::env::var_os("EDEPLOY_STATUS_SCREENSHOT") {
        let dest = Path::new(ROOT).join(dest);
        fs::write(&dest, &png).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
        eprintln!("screenshot kept as {}", dest.display());
    }

    read_only_requests(&site, &storm.log);
    other_addresses_are_refused(&site);
}

#[test]
fn json_through_apache() {
    let site = Site::start(Kind::Apache, options());
    let url = site.url_of("status.cgi");
    // Before any upload: no lock file, and reading does not create one.
    let a = get(&url, &["-H", "Accept: application/json"]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["lock"], "no-lockfile");
    assert!(!site.path("run/edeploy.lock").exists());

    let mut told = BTreeMap::new();
    for i in 0..3 {
        let f = scratch(&site, &format!("node{i}.hw"), kvm_node(i).as_bytes());
        let a = site.upload(&f, &[]);
        assert_eq!(a.status, 200, "{}", a.body);
        let lines = hw::parse(&kvm_node(i), "node").expect("node");
        told.insert(
            hw::sysname(&lines),
            a.json()["profile"].as_str().map(String::from),
        );
    }
    let log = "node-x.log.gz";
    let a = site.upload(&scratch(&site, log, &gzip("x\n")), &[]);
    assert_eq!(a.status, 200, "{}", a.body);

    let disk = on_disk(&site);
    let v = get(&format!("{url}?format=json"), &[]).json();
    assert_eq!(v["lock"], "shared");
    assert_eq!(v["profiles"][0]["left"], disk.left["vm"].expect("a count"));
    assert_eq!(v["profiles"][0]["left"], VM_QUOTA - 3);
    let cmdb_vm = v["cmdbs"]
        .as_array()
        .expect("cmdbs")
        .iter()
        .find(|c| c["profile"] == "vm")
        .expect("vm.cmdb");
    assert_eq!(cmdb_vm["used"], disk.cmdb["vm"].0);
    assert_eq!(cmdb_vm["free"], disk.cmdb["vm"].1);
    assert_eq!(v["uploads"]["total"], disk.uploads);
    assert_eq!(v["uploads"]["assigned"], 3);
    for item in v["uploads"]["items"].as_array().expect("items") {
        let node = item["sysname"].as_str().expect("sysname");
        assert_eq!(item["profile"].as_str(), told[node].as_deref(), "{node}");
    }
    assert_eq!(v["logs"][0]["name"], log);

    read_only_requests(&site, log);
    other_addresses_are_refused(&site);
}

/// A stored hardware list no decision can finish within the budget
/// ([`support::costly_decision`]).
fn hostile_list() -> String {
    support::costly_decision("HOSTILE1").1
}

fn hostile_options() -> Options {
    let (specs, _) = support::costly_decision("HOSTILE1");
    Options {
        fixtures: Vec::new(),
        files: vec![
            ("state".into(), "[('vm', 6), ('costly', '*')]\n".into()),
            ("costly.specs".into(), specs),
            ("costly.configure".into(), String::new()),
        ],
        conf: "DECISIONBUDGET = 0.5\n".into(),
        ..Options::default()
    }
}

/// A stored hostile list does not keep the page from answering: the page
/// spends at most its budget on previews and names the node it could not
/// evaluate in time; the other nodes keep their rows.
fn page_answers_with_a_hostile_list_stored(kind: Kind) {
    let site = Site::start(kind, hostile_options());
    // An ordinary node, which gets vm and its CMDB entry; then the hostile
    // list, stored without a record, which the page previews.
    let f = scratch(&site, "node0.hw", kvm_node(0).as_bytes());
    assert_eq!(site.upload(&f, &[]).status, 200);
    let text = hostile_list();
    let lines = hw::parse(&text, "hostile").expect("the hostile list parses");
    let hostile = hw::sysname(&lines);
    site.write(&format!("hw/{hostile}.hw"), &text);
    let url = site.url_of("status.cgi");
    let v = get(&format!("{url}?format=json"), &[]).json();
    let items = v["uploads"]["items"].as_array().expect("items");
    let item = items
        .iter()
        .find(|i| i["sysname"] == hostile.as_str())
        .unwrap_or_else(|| panic!("{hostile} not listed: {items:?}"));
    assert_eq!(item["outcome"], "unrecorded", "{item}");
    assert_eq!(item["now"]["evaluated"], false, "{item}");
    let sentence = item["now"]["sentence"].as_str().expect("sentence");
    assert!(sentence.contains("not evaluated in time"), "{sentence}");
    // The ordinary node holds its entry and is shown with it.
    assert_eq!(v["uploads"]["assigned"], 1);
    // The HTML page names it too.
    let page = get(&url, &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&hostile), "{hostile} not on the page");
    assert!(page.body.contains("not evaluated in time"));
}

mod hostile_list_stored {
    #[test]
    fn lighttpd() {
        super::page_answers_with_a_hostile_list_stored(super::Kind::Lighttpd)
    }

    #[test]
    fn apache() {
        super::page_answers_with_a_hostile_list_stored(super::Kind::Apache)
    }
}
