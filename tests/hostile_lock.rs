//! Hostile uploads behind real web servers (Apache with mod_cgid and
//! lighttpd with mod_cgi, requests sent by the real `curl`): a hardware
//! list that costs more than the decision budget does not keep ordinary
//! nodes waiting, is answered 503 naming the profile and takes nothing;
//! failure reports count only from the node handed the profile, once per
//! hand-out.
//!
//! Nothing here measures time: the ordering of answers is what is
//! asserted (see scripts/bench-lock for the figures).

#[macro_use]
mod support;

use edeploy::hw;
use edeploy::provision::decide::HANDOUTS;
use edeploy::state::{Count, State};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{kvm_node, local_upload_cgi, parse_curl, scratch, Answer, Kind, Options, Site};

/// The budget of the sites here, in seconds: far more than an ordinary
/// node needs, far less than the costly decision would take.
const BUDGET_S: u64 = 6;

fn options() -> Options {
    let (specs, _) = support::costly_decision("HOSTILE1");
    Options {
        fixtures: Vec::new(),
        files: vec![
            ("state".into(), "[('vm', 100), ('wide', '*')]\n".into()),
            ("wide.specs".into(), specs),
            ("wide.configure".into(), String::new()),
        ],
        conf: format!("DECISIONBUDGET = {BUDGET_S}\n"),
        max_upload: 16 << 20,
        ..Options::default()
    }
}

/// The hostile list: no decision on it ends within the budget
/// ([`support::costly_decision`]).
fn wide_list() -> String {
    support::costly_decision("HOSTILE1").1
}

fn count(site: &Site, profile: &str) -> Count {
    State::load(&site.path("config/state"))
        .unwrap_or_else(|e| panic!("state: {e:#}"))
        .get(profile)
        .unwrap_or_else(|| panic!("{profile} not in state"))
        .count
}

fn read_or_empty(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Starts `curl -F file=@FILE` in the background.
fn start_upload(site: &Site, file: &Path) -> Child {
    Command::new("curl")
        .args(["-s", "-S", "--max-time", "120", "-w", "\n%{http_code}"])
        .arg("-F")
        .arg(format!("file=@{}", file.display()))
        .arg(site.url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start curl")
}

fn finish(child: Child) -> Answer {
    let out = child.wait_with_output().expect("wait for curl");
    parse_curl(&out.stdout, &out.stderr)
}

/// Whether a process runs the site's `upload.cgi` (the hostile request
/// has reached its CGI).
fn cgi_running(site: &Site) -> bool {
    let cgi = site.path("cgi-bin/upload.cgi");
    let Ok(dir) = fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        fs::read_link(e.path().join("exe")).is_ok_and(|exe| exe == cgi)
            || fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.starts_with(cgi.as_os_str().as_encoded_bytes()))
    })
}

fn hostile_upload_does_not_hold_the_others(kind: Kind) {
    let site = Site::start(kind, options());
    let hostile_text = wide_list();
    let hostile_lines = hw::parse(&hostile_text, "wide").expect("the wide list parses");
    let hostile_name = hw::sysname(&hostile_lines);
    let hostile = scratch(&site, "wide.hw", hostile_text.as_bytes());
    let nodes: Vec<PathBuf> = (0..10)
        .map(|i| scratch(&site, &format!("node{i}.hw"), kvm_node(i).as_bytes()))
        .collect();
    let cmdb_before = read_or_empty(&site.path("config/vm.cmdb"));

    let attack = start_upload(&site, &hostile);
    // Once its CGI runs (reading, parsing, then matching), the ordinary
    // nodes ask. The wait is a hang guard, not a measure.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cgi_running(&site) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        cgi_running(&site),
        "the hostile upload never reached upload.cgi"
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut attack = attack;
    assert!(
        attack.try_wait().expect("curl").is_none(),
        "the hostile upload ended before the others were sent"
    );
    let answers = site.upload_all(&nodes);

    // Every ordinary node has its answer, and the hostile one is still
    // being matched.
    let still_running = attack.try_wait().expect("curl").is_none();
    for (i, a) in answers.iter().enumerate() {
        let a = a.as_ref().unwrap_or_else(|| panic!("node {i}: no answer"));
        assert_eq!(a.status, 200, "node {i}: {}", a.body);
        assert_eq!(a.json()["profile"], "vm", "node {i}");
    }
    assert!(
        still_running,
        "the ordinary nodes were answered only after the hostile upload ended"
    );

    let a = finish(attack);
    assert_eq!(a.status, 503, "{}", a.body);
    let sentence = a.error();
    assert!(
        sentence.contains("profile wide") && sentence.contains("DECISIONBUDGET"),
        "{sentence}"
    );
    let log = site.log_with("profile wide");
    assert!(
        log.iter()
            .any(|l| l.contains(" 503 ") && l.contains("profile wide")),
        "{log:?}"
    );

    // It took nothing: only the ten ordinary nodes changed the state, the
    // CMDB holds ten new entries, no hand-out names it.
    assert_eq!(count(&site, "vm"), Count::Left(90));
    assert_eq!(count(&site, "wide"), Count::Unlimited);
    let cmdb = read_or_empty(&site.path("config/vm.cmdb"));
    assert_ne!(cmdb, cmdb_before);
    assert_eq!(cmdb.matches("'used': 1").count(), 10, "{cmdb}");
    let handouts = site.path(&format!("config/{HANDOUTS}"));
    assert!(!handouts.join(&hostile_name).exists());
    let files: Vec<String> = std::fs::read_dir(&handouts)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| read_or_empty(&e.path()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(files.len(), 10, "{files:?}");
    assert!(files.iter().all(|f| f == "[('vm', 1)]\n"), "{files:?}");
    // Its list is kept in HWDIR, as every upload's is, errors included.
    let kept = read_or_empty(&site.path(&format!("hw/{hostile_name}.hw")));
    assert_eq!(
        kept.matches("'edge'").count(),
        hostile_text.matches("'edge'").count(),
        "{} bytes kept",
        kept.len()
    );
}

fn failure_reports_count_only_from_the_node_handed_the_profile(kind: Kind) {
    let site = Site::start(kind, options());
    let node = scratch(&site, "node.hw", kvm_node(1).as_bytes());
    let stranger = scratch(&site, "stranger.hw", kvm_node(2).as_bytes());
    assert_eq!(site.upload(&node, &[]).status, 200);
    assert_eq!(count(&site, "vm"), Count::Left(99));
    let state_before = site.read("config/state");

    // A client never handed vm: twenty reports, all refused.
    for i in 0..20 {
        let a = site.upload(&stranger, &["failure=vm"]);
        assert_eq!(a.status, 409, "report {i}: {}", a.body);
        assert!(
            a.error().contains("no hand-out of profile vm"),
            "{}",
            a.error()
        );
    }
    assert_eq!(site.read("config/state"), state_before);
    assert_eq!(count(&site, "vm"), Count::Left(99));

    // The node handed vm: its first report counts, its second does not.
    let a = site.upload(&node, &["failure=vm"]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["given_back"], true);
    assert_eq!(count(&site, "vm"), Count::Left(100));
    let a = site.upload(&node, &["failure=vm"]);
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(count(&site, "vm"), Count::Left(100));
    // A list that cannot be read names no node.
    let junk = scratch(&site, "junk.hw", b"not a list");
    let a = site.upload(&junk, &["failure=vm"]);
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(count(&site, "vm"), Count::Left(100));
    let log = site.log_with("no hand-out of profile vm");
    assert!(log.iter().any(|l| l.contains(" 409 ")), "{log:?}");

    // Asked again, the node gets its CMDB entry back without taking an
    // install; that hand-out took nothing and is not recorded, so its
    // report has nothing to give back.
    let a = site.upload(&node, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(count(&site, "vm"), Count::Left(100));
    let a = site.upload(&node, &["failure=vm"]);
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(a.error().contains("took no install"), "{}", a.body);
    assert_eq!(count(&site, "vm"), Count::Left(100));
}

suite!(
    hostile_upload_does_not_hold_the_others,
    failure_reports_count_only_from_the_node_handed_the_profile,
);

/// `upload.cgi -f HW -F PROFILE` on the command line follows the same
/// rule.
#[test]
fn local_failure_reports_follow_the_same_rule() {
    let site = Site::start(Kind::Lighttpd, options());
    let node = scratch(&site, "node.hw", kvm_node(3).as_bytes());
    let stranger = scratch(&site, "stranger.hw", kvm_node(4).as_bytes());
    let run = |args: &[&str]| local_upload_cgi(&site, args);
    let path = |p: &Path| p.to_str().expect("UTF-8 path").to_string();
    let out = run(&["-f", &path(&node)]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(count(&site, "vm"), Count::Left(99));
    for _ in 0..3 {
        let out = run(&["-f", &path(&stranger), "-F", "vm"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("local: 409 "), "{err}");
    }
    assert_eq!(count(&site, "vm"), Count::Left(99));
    let out = run(&["-f", &path(&node), "-F", "vm"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(count(&site, "vm"), Count::Left(100));
    let out = run(&["-f", &path(&node), "-F", "vm"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(count(&site, "vm"), Count::Left(100));
}
