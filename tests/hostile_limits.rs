//! The limits on what nodes send and on what the server keeps
//! (docs/server.md, "Limits"), through a real Apache and a real lighttpd
//! (tests/support, requests sent by real `curl`): a hardware list over
//! HWMAXLINES or HWMAXVALUE, or with a control character, is a 400 naming
//! the limit (and the line and position) with nothing written; a list at
//! the limit is served; a commit over WALMAX is a 507 with nothing
//! written and the write-ahead log no larger than WALMAX; LOGDIR rotates
//! its oldest logs out within LOGMAXNODE and LOGMAX; HEALTHDIR rotates a
//! node's own oldest results within HEALTHMAXNODE and answers 507 at
//! HEALTHMAX.
//!
//! Needs `apache2`, `lighttpd` and `curl`; fails, rather than skips,
//! without them.

#[macro_use]
mod support;

use edeploy::hw::{self, Line};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use support::{scratch, Answer, Kind, Options, Site, ROOT};

suite!(
    a_del_filled_list_is_refused_with_nothing_written,
    line_count_over_the_limit_is_400_and_at_it_served,
    a_long_string_is_400_naming_its_line_and_position,
    control_characters_are_400_naming_line_and_position,
    a_commit_over_walmax_is_507_and_the_log_stays_within_it,
    logdir_rotates_its_oldest_logs_within_its_caps,
    healthdir_rotates_a_nodes_own_results_and_is_507_when_full,
);

/// The KVM fixture with the boot-mode line the example profile binds
/// (what today's installer sends; see tests/cgi.rs).
fn kvm_lines() -> Vec<Line> {
    let p = Path::new(ROOT).join("tests/fixtures/hw/kvm-test-vm.hw");
    let text = fs::read_to_string(&p).expect("the KVM fixture");
    let mut lines = hw::parse(&text, "kvm-test-vm.hw").expect("the KVM fixture parses");
    lines.insert(0, line("firmware", "boot", "mode", "bios"));
    lines
}

fn line(a: &str, b: &str, c: &str, d: &str) -> Line {
    [a.into(), b.into(), c.into(), d.into()]
}

fn send(site: &Site, name: &str, lines: &[Line]) -> Answer {
    let f = scratch(site, name, hw::to_json(lines).as_bytes());
    site.upload(&f, &[])
}

/// Every file the server may write (CONFIGDIR with its write-ahead log,
/// HWDIR, LOGDIR, HEALTHDIR) with its size.
fn snapshot(site: &Site) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for d in ["config", "hw", "logs", "health"] {
        for e in fs::read_dir(site.path(d)).expect("site dir").flatten() {
            let meta = e.metadata().expect("stat");
            out.insert(
                format!("{d}/{}", e.file_name().to_string_lossy()),
                meta.len(),
            );
        }
    }
    out
}

fn options(conf: &str, max_upload: u64) -> Options {
    Options {
        conf: conf.to_string(),
        max_upload,
        ..Options::default()
    }
}

/// A first node served, so that the write-ahead log and HWDIR exist
/// before the refusals are checked to change nothing.
fn served_once(site: &Site) {
    let a = send(site, "first.json", &kvm_lines());
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(site.path("config/.edeploy-log").is_file());
}

fn a_del_filled_list_is_refused_with_nothing_written(kind: Kind) {
    let site = Site::start(kind, options("", 17 << 20));
    served_once(&site);
    let before = snapshot(&site);
    // 16 MiB of DEL: 2048 lines of 8 KiB values (what a hardware list
    // may hold of each), which used to be kept 4 times larger.
    let del = "\u{7f}".repeat(8192);
    let lines: Vec<Line> = (0..2048)
        .map(|i| line("disk", &format!("sd{i}"), "model", &del))
        .collect();
    let text = hw::to_json(&lines);
    assert!(text.len() >= 16 << 20, "{}", text.len());
    let a = site.upload(&scratch(&site, "del.json", text.as_bytes()), &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    let e = a.error();
    assert!(
        e.contains("line 1 of the hardware list")
            && e.contains("its value")
            && e.contains("U+007F"),
        "{e}"
    );
    assert_eq!(snapshot(&site), before);
}

fn line_count_over_the_limit_is_400_and_at_it_served(kind: Kind) {
    let site = Site::start(kind, options("HWMAXLINES = 60", 1 << 20));
    served_once(&site);
    let mut lines = kvm_lines();
    let start = lines.len();
    for i in start..61 {
        lines.push(line("extra", &format!("e{i}"), "k", "v"));
    }
    assert_eq!(lines.len(), 61);
    let before = snapshot(&site);
    let a = send(&site, "61.json", &lines);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.error(),
        "the hardware list has 61 lines, more than the 60 the server accepts (HWMAXLINES)"
    );
    assert_eq!(snapshot(&site), before);
    lines.pop();
    let a = send(&site, "60.json", &lines);
    assert_eq!(a.status, 200, "{}", a.body);
    let kept = fs::read_to_string(site.path("hw/edeploy_test_vm-kvm-52-54-12-34-00-03.hw"))
        .expect("the list kept in HWDIR");
    assert_eq!(hw::parse(&kept, "kept").expect("kept parses").len(), 60);
}

fn a_long_string_is_400_naming_its_line_and_position(kind: Kind) {
    let site = Site::start(kind, options("HWMAXVALUE = 100", 1 << 20));
    served_once(&site);
    let before = snapshot(&site);
    let mut lines = kvm_lines();
    lines.insert(4, line("extra", "x", "k", &"v".repeat(101)));
    let a = send(&site, "long-value.json", &lines);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.error(),
        "line 5 of the hardware list: its value is 101 bytes, more than the 100 \
         the server accepts (HWMAXVALUE)"
    );
    lines[4] = line("extra", &"n".repeat(101), "k", "v");
    let a = send(&site, "long-name.json", &lines);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a
        .error()
        .starts_with("line 5 of the hardware list: its name is 101 bytes"));
    assert_eq!(snapshot(&site), before);
    // At the limit, in every position: served.
    lines[4] = line(&"c".repeat(100), &"n".repeat(100), "k", &"v".repeat(100));
    let a = send(&site, "at-limit.json", &lines);
    assert_eq!(a.status, 200, "{}", a.body);
}

fn control_characters_are_400_naming_line_and_position(kind: Kind) {
    let site = Site::start(kind, Options::default());
    served_once(&site);
    let before = snapshot(&site);
    for (at, pos, c, code) in [
        (2, 1, '\t', "U+0009"),
        (7, 3, '\u{1b}', "U+001B"),
        (1, 2, '\u{85}', "U+0085"),
        (9, 0, '\0', "U+0000"),
    ] {
        let mut lines = kvm_lines();
        lines[at][pos] = format!("ab{c}cd");
        let a = send(&site, "control.json", &lines);
        assert_eq!(a.status, 400, "{}", a.body);
        let want = format!(
            "line {} of the hardware list: its {} holds the control character {code} at byte 2",
            at + 1,
            hw::POSITIONS[pos]
        );
        assert!(a.error().starts_with(&want), "{} vs {want}", a.error());
    }
    // The same in the literal dialect (an escape in a Python string).
    let text = "[('system', 'product', 'name', 'a\\x7fb')]";
    let a = site.upload(&scratch(&site, "control.hw", text.as_bytes()), &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.error().contains("U+007F"), "{}", a.error());
    assert_eq!(snapshot(&site), before);
}

fn a_commit_over_walmax_is_507_and_the_log_stays_within_it(kind: Kind) {
    const WALMAX: u64 = 1 << 20;
    let site = Site::start(kind, options(&format!("WALMAX = {WALMAX}"), 4 << 20));
    served_once(&site);
    let before = snapshot(&site);
    let mut lines = kvm_lines();
    for i in 0..150 {
        lines.push(line("extra", &format!("e{i}"), "k", &"x".repeat(8000)));
    }
    let big = scratch(&site, "big.json", hw::to_json(&lines).as_bytes());
    let head = site.path("scratch/head.txt");
    let arg = format!("file=@{}", big.display());
    let a = site.curl(&["-D", &head.display().to_string(), "-F", &arg]);
    assert_eq!(a.status, 507, "{}", a.body);
    let head = fs::read_to_string(&head).expect("the answer's head");
    assert!(
        head.lines()
            .any(|l| l == "HTTP/1.1 507 Insufficient Storage"),
        "{head}"
    );
    let e = a.error();
    assert!(
        e.contains("WALMAX") && e.contains("nothing was written"),
        "{e}"
    );
    assert_eq!(snapshot(&site), before);
    // Under the cap: served, and the log no larger than the cap.
    lines.truncate(kvm_lines().len() + 100);
    let a = send(&site, "smaller.json", &lines);
    assert_eq!(a.status, 200, "{}", a.body);
    let log = fs::metadata(site.path("config/.edeploy-log"))
        .expect("the log")
        .len();
    assert!(log <= WALMAX, "{log}");
}

/// `curl -F file=@<data>;filename=<name>`, a log upload.
fn send_log(site: &Site, name: &str, data: &[u8]) -> Answer {
    site.upload(&scratch(site, name, data), &[])
}

fn logs_of(site: &Site, stem: &str) -> BTreeMap<String, u64> {
    snapshot(site)
        .into_iter()
        .filter(|(n, _)| n.starts_with(&format!("logs/{stem}.")))
        .collect()
}

fn logdir_rotates_its_oldest_logs_within_its_caps(kind: Kind) {
    let conf = "LOGMAXNODE = 3000\nLOGMAX = 5000";
    let site = Site::start(kind, options(conf, 1 << 20));
    // Not ours: a file and a symbolic link in LOGDIR, never deleted.
    fs::write(site.path("logs/README"), vec![b'r'; 4000]).expect("README");
    fs::write(site.path("scratch-outside.log.gz"), vec![b'o'; 4000]).expect("outside");
    std::os::unix::fs::symlink(
        site.path("scratch-outside.log.gz"),
        site.path("logs/link.log.gz"),
    )
    .expect("symlink");
    site.hand_over();
    for i in 0..5u8 {
        let a = send_log(&site, "a.log.gz", &[b'0' + i; 1000]);
        assert_eq!(a.status, 200, "{}", a.body);
        let a_logs = logs_of(&site, "a");
        assert!(a_logs.values().sum::<u64>() <= 3000, "{a_logs:?}");
        assert_eq!(
            fs::read(site.path("logs/a.log.gz")).expect("a.log.gz"),
            vec![b'0' + i; 1000]
        );
    }
    assert_eq!(logs_of(&site, "a").len(), 3);
    // Node b: the total passes 5000, so a's oldest go.
    for _ in 0..3 {
        let a = send_log(&site, "b.log.gz", &[b'b'; 1000]);
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let ours: u64 =
        logs_of(&site, "a").values().sum::<u64>() + logs_of(&site, "b").values().sum::<u64>();
    assert!(ours <= 5000, "{:?}", snapshot(&site));
    assert_eq!(logs_of(&site, "b").len(), 3);
    assert_eq!(logs_of(&site, "a").len(), 2);
    assert!(site.path("logs/a.log.gz").is_file());
    assert_eq!(
        fs::metadata(site.path("logs/README"))
            .expect("README")
            .len(),
        4000
    );
    assert!(fs::symlink_metadata(site.path("logs/link.log.gz")).is_ok());
    assert_eq!(
        fs::metadata(site.path("scratch-outside.log.gz"))
            .expect("outside")
            .len(),
        4000
    );
    // Larger than a node may keep: 507, nothing changed.
    let before = snapshot(&site);
    let a = send_log(&site, "c.log.gz", &[b'c'; 3001]);
    assert_eq!(a.status, 507, "{}", a.body);
    assert!(a.error().contains("LOGMAXNODE"), "{}", a.error());
    assert_eq!(snapshot(&site), before);
}

/// A health result of the KVM node with serial `serial`.
fn health_result(serial: &str) -> Vec<Line> {
    let mut l = kvm_lines();
    l.extend([
        line("system", "product", "serial", serial),
        line("cpu", "logical_0", "loops_per_sec", "1618"),
        line("disk", "vda", "standalone_randread_4k_IOps", "68456"),
    ]);
    l
}

fn send_health(site: &Site, lines: &[Line]) -> Answer {
    let f = scratch(site, "health.json", hw::to_json(lines).as_bytes());
    let arg = format!("file=@{}", f.display());
    let out = std::process::Command::new("curl")
        .args(["-s", "-S", "--max-time", "60", "-w", "\n%{http_code}", "-F"])
        .arg(arg)
        .arg(site.url_of("upload-health.cgi"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run curl");
    support::parse_curl(&out.stdout, &out.stderr)
}

fn health_files(site: &Site) -> BTreeMap<String, u64> {
    snapshot(site)
        .into_iter()
        .filter(|(n, _)| n.starts_with("health/"))
        .collect()
}

fn healthdir_rotates_a_nodes_own_results_and_is_507_when_full(kind: Kind) {
    let one = hw::to_literal(&health_result("A")).len() as u64;
    let conf = format!("HEALTHMAXNODE = {}\nHEALTHMAX = {}", 2 * one, 4 * one);
    let site = Site::start(kind, options(&conf, 1 << 20));
    for _ in 0..4 {
        let a = send_health(&site, &health_result("A"));
        assert_eq!(a.status, 200, "{}", a.body);
        let files = health_files(&site);
        assert!(files.len() <= 2, "{files:?}");
        assert!(files.contains_key(&format!(
            "health/{}",
            a.json()["stored"].as_str().unwrap_or("")
        )));
    }
    for _ in 0..2 {
        let a = send_health(&site, &health_result("B"));
        assert_eq!(a.status, 200, "{}", a.body);
    }
    assert_eq!(health_files(&site).len(), 4);
    assert!(health_files(&site).values().sum::<u64>() <= 4 * one);
    // HEALTHDIR is full of other nodes' results: 507, nothing changed.
    let before = snapshot(&site);
    let a = send_health(&site, &health_result("C"));
    assert_eq!(a.status, 507, "{}", a.body);
    assert!(a.error().contains("HEALTHMAX"), "{}", a.error());
    assert_eq!(snapshot(&site), before);
    // A node already there still makes room out of its own results.
    let a = send_health(&site, &health_result("B"));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(health_files(&site).len(), 4);
}
