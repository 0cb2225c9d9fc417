//! Gathering and rendering on sites built in temporary directories, with
//! real decisions (`provision::provision`) making the files the page reads.
//! `tests/status_page.rs` runs the real binary behind real web servers.

use super::cgi::{parse_query, serve, Format};
use super::*;
use crate::cgi::{CgiEnv, RequestLog};
use crate::config::ConfFile;
use crate::persist::Lock;
use crate::provision::{logs, provision};
use std::fs;
use std::io::Write as _;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    /// The shipped example's `vm` profile with `state` and `vm.cmdb` given.
    fn new(state: &str, cmdb: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        for d in ["config", "hw", "logs", "health", "lab"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        for f in ["vm.specs", "vm.configure"] {
            fs::copy(format!("{ROOT}/share/examples/config/{f}"), config.join(f)).unwrap();
        }
        fs::write(config.join("state"), state).unwrap();
        fs::write(config.join("vm.cmdb"), cmdb).unwrap();
        let p = dir.path().display();
        fs::write(
            dir.path().join("edeploy.conf"),
            format!(
                "[SERVER]\nCONFIGDIR = {p}/config\nHWDIR = {p}/hw\nLOGDIR = {p}/logs\n\
                 HEALTHDIR = {p}/health\nLOCKFILE = {p}/lock\n\n[lab]\nCONFIGDIR = {p}/lab\n"
            ),
        )
        .unwrap();
        Site { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cfg(&self) -> ServerConfig {
        ConfFile::load(&self.path("edeploy.conf"))
            .unwrap()
            .server(None)
            .unwrap()
    }

    fn status(&self) -> Status {
        gather(&self.cfg(), &Gather::default())
    }

    /// A node asks, as upload.cgi does; returns its profile or the error.
    fn ask(&self, lines: &[Line]) -> Result<String, u16> {
        let mut sink = Vec::new();
        provision(
            &self.cfg(),
            lines,
            None,
            &mut RequestLog::new("test", &mut sink),
        )
        .map(|p| p.decision.profile)
        .map_err(|r| r.status)
    }

    fn get(&self, query: &str, accept: Option<&str>) -> cgi::StatusAnswer {
        let env = CgiEnv {
            method: Some("GET".into()),
            query: Some(query.into()),
            accept: accept.map(String::from),
            remote_addr: Some("198.51.100.7".into()),
            ..CgiEnv::default()
        };
        serve(&env, &self.path("edeploy.conf"))
    }
}

/// The KVM fixture with MAC addresses of its own (node `i`), and the
/// boot-mode line today's installer adds (the example's vm.specs binds
/// `$boot_mode`; the captured list predates it).
fn kvm(i: u8) -> Vec<Line> {
    let text = fs::read_to_string(format!("{ROOT}/tests/fixtures/hw/kvm-test-vm.hw")).unwrap();
    let text = text.replace("52:54:12:34:00:0", &format!("52:54:00:{i:02x}:00:0"));
    let text = text.replacen('[', "[('firmware', 'boot', 'mode', 'bios'),\n ", 1);
    hw::parse(&text, "kvm").unwrap()
}

const TWO_ENTRIES: &str = "[{'hostname': 'vm01', 'ip': '10.0.2.15'},\n \
                           {'hostname': 'vm02', 'ip': '10.0.2.16'},\n \
                           {'hostname': 'vm03', 'ip': '10.0.2.17'}]\n";

fn gz(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

#[test]
fn profiles_cmdbs_and_uploads_follow_the_decisions() {
    let site = Site::new("[('vm', 2), ('db', '*')]\n", TWO_ENTRIES);
    let nodes: Vec<_> = (1..=3).map(kvm).collect();
    assert_eq!(site.ask(&nodes[0]).as_deref(), Ok("vm"));
    assert_eq!(site.ask(&nodes[1]).as_deref(), Ok("vm"));
    // No install left, and `db` has no specs: no profile.
    assert_eq!(site.ask(&nodes[2]), Err(404));

    let s = site.status();
    assert_eq!(s.lock, "shared", "upload.cgi made the lock file");
    assert_eq!(
        s.profiles
            .iter()
            .map(|p| (p.profile.as_str(), p.left, p.unlimited, p.specs))
            .collect::<Vec<_>>(),
        [("vm", Some(0), false, true), ("db", None, true, false)]
    );
    assert_eq!(s.profiles[0].cmdb_used, Some(2));
    assert_eq!(s.profiles[0].cmdb_free, Some(1));
    assert_eq!(s.profiles[1].cmdb_used, None);

    assert_eq!(s.cmdbs.len(), 1);
    let c = &s.cmdbs[0];
    assert_eq!((c.total, c.used, c.free), (3, 2, 1));
    let sysnames: Vec<String> = nodes.iter().map(|n| hw::sysname(n)).collect();
    let holders: Vec<Option<&str>> = c.entries.iter().map(|e| e.node.as_deref()).collect();
    assert_eq!(
        holders,
        [Some(sysnames[0].as_str()), Some(sysnames[1].as_str()), None]
    );
    assert_eq!(c.entries[1].hostname.as_deref(), Some("vm02"));

    let u = &s.uploads;
    assert_eq!(
        (u.total, u.shown, u.assigned, u.failed, u.unrecorded),
        (3, 3, 2, 0, 1)
    );
    let by_name = |n: &str| u.items.iter().find(|i| i.sysname == n).unwrap();
    let first = by_name(&sysnames[0]);
    assert_eq!(first.outcome, Outcome::Assigned);
    assert_eq!(first.profile.as_deref(), Some("vm"));
    assert_eq!(first.entry, Some(1));
    assert_eq!(first.ip.as_deref(), Some("10.0.2.15"));
    assert_eq!(first.model.as_deref(), Some("kvm edeploy_test_vm ()"));
    let third = by_name(&sysnames[2]);
    assert_eq!(third.outcome, Outcome::Unrecorded);
    let now = third
        .now
        .as_ref()
        .expect("a decision for the unrecorded node");
    assert_eq!(now.profile, None);
    assert!(now.sentence.contains("vm: no installs left"), "{now:?}");
    assert!(s.problems.is_empty(), "{:?}", s.problems);
}

#[test]
fn a_log_after_the_upload_is_a_failure_and_is_linked() {
    let site = Site::new("[('vm', 5)]\n", TWO_ENTRIES);
    let node = kvm(7);
    assert_eq!(site.ask(&node).as_deref(), Ok("vm"));
    let name = hw::log_name(&node);
    logs::save(&site.path("logs"), &name, &gz("boom")).unwrap();
    // Another node's log, and an earlier log of the same node (rotated).
    logs::save(&site.path("logs"), &name, &gz("boom 2")).unwrap();
    logs::save(&site.path("logs"), "other.log.gz", &gz("x")).unwrap();

    let s = site.status();
    assert_eq!(s.logs.len(), 3);
    let mine: Vec<_> = s
        .logs
        .iter()
        .filter(|l| l.node.as_deref() == Some(&hw::sysname(&node)))
        .collect();
    assert_eq!(mine.len(), 2, "{:?}", s.logs);
    assert_eq!(mine.iter().filter(|l| l.rotated).count(), 1);
    let other = s.logs.iter().find(|l| l.name == "other.log.gz").unwrap();
    assert_eq!(other.node, None);

    let up = &s.uploads.items[0];
    assert_eq!(up.outcome, Outcome::Failed);
    assert_eq!(
        up.profile.as_deref(),
        Some("vm"),
        "the entry stays the node's"
    );
    assert_eq!(up.log.as_deref(), Some(name.as_str()));
    assert_eq!((s.uploads.failed, s.uploads.assigned), (1, 0));

    let page = html::render(&s);
    let href = format!("href=\"?log={}&amp;view=text\"", html::query_encode(&name));
    assert!(page.contains(&href), "{href} not in the page");
    assert!(page.contains("data-outcome=\"failed\""));

    // The node asks again after its log: its failure is history.
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(site.ask(&node).as_deref(), Ok("vm"));
    let s = site.status();
    assert_eq!(s.uploads.items[0].outcome, Outcome::Assigned);
    assert_eq!(s.uploads.items[0].log.as_deref(), Some(name.as_str()));
}

#[test]
fn malformed_files_are_shown_where_their_part_is() {
    let site = Site::new(
        "[('vm', 2),\n ('db' 3)]\n",
        "[{'hostname': 'a'},\n {'hostname' 'b'}]\n",
    );
    fs::write(
        site.path("config/db.cmdb"),
        "[{'hostname': 'db1', 'used': 1}]\n",
    )
    .unwrap();
    fs::write(site.path("hw/broken.hw"), "[('system', 'product'\n").unwrap();
    let s = site.status();
    let messages: Vec<&str> = s.problems.iter().map(|p| p.message.as_str()).collect();
    let state = format!("{}:2:", site.path("config/state").display());
    let cmdb = format!("{}:2:", site.path("config/vm.cmdb").display());
    assert!(
        s.problems
            .iter()
            .any(|p| p.part == "profiles" && p.message.starts_with(&state)),
        "{messages:?}"
    );
    assert!(
        s.problems
            .iter()
            .any(|p| p.part == "cmdbs" && p.message.starts_with(&cmdb)),
        "{messages:?}"
    );
    assert!(s.profiles.is_empty());
    // Without a state, every CMDB is listed by name, and the good one read.
    let names: Vec<&str> = s.cmdbs.iter().map(|c| c.profile.as_str()).collect();
    assert_eq!(names, ["db", "vm"]);
    assert_eq!((s.cmdbs[0].used, s.cmdbs[0].error.is_none()), (1, true));
    assert!(s.cmdbs[1].error.as_deref().unwrap().starts_with(&cmdb));
    let broken = &s.uploads.items[0];
    assert_eq!(broken.outcome, Outcome::Unreadable);
    assert!(broken.error.as_deref().unwrap().contains("broken.hw:"));

    let page = html::render(&s);
    assert!(page.contains(&format!(
        "<span id=\"problems-total\">{}</span>",
        s.problems.len()
    )));
    let shown = html::escape(&s.cmdbs[1].error.clone().unwrap());
    // In the banner and in its card, not a third time.
    assert_eq!(page.matches(&shown).count(), 2);
    // Still a page: 200, the problems in the banner.
    let a = site.get("", None);
    assert_eq!(a.status, 200);
    assert!(a.log.as_deref().unwrap().contains("problem(s)"));
}

#[test]
fn hostile_values_are_escaped() {
    let evil = "<script>alert(\"x\")</script>' onmouseover='x' &amp;";
    let cmdb = format!(
        "[{{'hostname': {}, 'ip': '10.0.2.15', 'used': 1, 'mac': '<b>m</b>'}}]\n",
        crate::literal::py_repr(evil)
    );
    let site = Site::new("[('vm', 2)]\n", &cmdb);
    fs::write(site.path("logs/a<i>&\"b.log.gz"), gz("log")).unwrap();
    let s = site.status();
    assert_eq!(s.cmdbs[0].entries[0].hostname.as_deref(), Some(evil));
    let page = html::render(&s);
    assert!(!page.contains("<script>"), "raw markup in the page");
    assert!(!page.contains("<b>m</b>"));
    assert!(!page.contains("' onmouseover"));
    assert!(page.contains(
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;x&#39; &amp;amp;"
    ));
    // The log name is escaped as text and encoded in its link.
    assert!(page.contains("a&lt;i&gt;&amp;&quot;b.log.gz"));
    assert!(page.contains("?log=a%3Ci%3E%26%22b.log.gz"));
    // The JSON holds the value as it is.
    let json: serde_json::Value =
        serde_json::from_slice(&site.get("format=json", None).body).unwrap();
    assert_eq!(json["cmdbs"][0]["entries"][0]["hostname"], evil);
}

/// Path → (bytes, mtime, mode) of every file and directory under `dir`.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, SystemTime, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        let data = if m.is_file() {
            fs::read(e.path()).unwrap()
        } else {
            Vec::new()
        };
        out.push((
            e.path().to_path_buf(),
            data,
            m.modified().unwrap(),
            m.mode(),
        ));
    }
    out
}

#[test]
fn reading_changes_nothing_and_creates_no_lock_file() {
    let site = Site::new("[('vm', 2)]\n", "generate({'hostname': 'vm01-03'})\n");
    fs::write(
        site.path("hw/x.hw"),
        fs::read_to_string(format!("{ROOT}/tests/fixtures/hw/kvm-test-vm.hw")).unwrap(),
    )
    .unwrap();
    fs::write(site.path("logs/x.log.gz"), gz("x")).unwrap();
    let before = snapshot(site.dir.path());
    for q in [
        "",
        "format=json",
        "log=x.log.gz",
        "log=x.log.gz&view=text",
        "section=lab",
        "log=../x",
    ] {
        let _ = site.get(q, None);
    }
    assert!(!site.path("lock").exists(), "the lock file was created");
    assert!(
        !site.path("config/vm.cmdb.orig").exists(),
        "generate() was written back"
    );
    assert_eq!(snapshot(site.dir.path()), before);
    let s = site.status();
    assert_eq!(s.lock, "no-lockfile");
    // The generated CMDB is read expanded.
    assert_eq!((s.cmdbs[0].total, s.cmdbs[0].free), (3, 3));
}

#[test]
fn a_held_lock_is_waited_for_a_bounded_time() {
    let site = Site::new("[('vm', 2)]\n", TWO_ENTRIES);
    let lock = Lock::exclusive(&site.path("lock")).unwrap();
    let opts = Gather {
        lock_wait: Duration::from_millis(100),
        ..Gather::default()
    };
    let started = Instant::now();
    let s = gather(&site.cfg(), &opts);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(s.lock, "busy");
    assert!(s
        .problems
        .iter()
        .any(|p| p.message.contains("still locked")));
    // Everything was still read.
    assert_eq!(s.profiles[0].left, Some(2));
    drop(lock);
    assert_eq!(gather(&site.cfg(), &opts).lock, "shared");
}

#[test]
fn requests() {
    let site = Site::new("[('vm', 2)]\n", TWO_ENTRIES);
    fs::write(site.path("logs/n1.log.gz"), gz("hello\nworld\n")).unwrap();

    let page = site.get("", Some("text/html,application/xhtml+xml,*/*;q=0.8"));
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page
        .header("Content-Security-Policy")
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(page.log, None, "a clean page is not logged");
    let text = String::from_utf8(page.body).unwrap();
    assert!(text.starts_with("<!DOCTYPE html>"));
    assert!(!text.contains("<script"));
    assert!(
        !text.contains("http://") && !text.contains("https://"),
        "external resource"
    );

    for (q, accept) in [("format=json", None), ("", Some("application/json"))] {
        let a = site.get(q, accept);
        assert_eq!(
            a.header("Content-Type"),
            Some("application/json"),
            "{q} {accept:?}"
        );
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["profiles"][0]["left"], 2);
        assert_eq!(v["section"], "SERVER");
    }
    let lab: serde_json::Value =
        serde_json::from_slice(&site.get("section=lab&format=json", None).body).unwrap();
    assert_eq!(lab["section"], "lab");
    assert_eq!(
        lab["dirs"]["configdir"],
        site.path("lab").display().to_string()
    );

    let gz_answer = site.get("log=n1.log.gz", None);
    assert_eq!(gz_answer.status, 200);
    assert_eq!(gz_answer.header("Content-Type"), Some("application/gzip"));
    assert_eq!(
        gz_answer.header("Content-Disposition"),
        Some("attachment; filename=\"n1.log.gz\"")
    );
    assert_eq!(
        gz_answer.body,
        fs::read(site.path("logs/n1.log.gz")).unwrap()
    );
    let text = site.get("log=n1.log.gz&view=text", None);
    assert_eq!(
        text.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(text.body, b"hello\nworld\n");

    fs::write(site.path("logs/bad.log.gz"), b"not gzip").unwrap();
    let bad = site.get("log=bad.log.gz&view=text", None);
    assert_eq!(bad.status, 200);
    assert!(String::from_utf8_lossy(&bad.body).contains("is not a whole gzip file"));

    std::os::unix::fs::symlink(site.path("edeploy.conf"), site.path("logs/link.log.gz")).unwrap();
    for (q, status) in [
        ("log=..%2Fedeploy.conf", 400),
        ("log=..%2Fx.log.gz", 400),
        ("log=%2Fetc%2Fpasswd", 400),
        ("log=.hidden.log.gz", 400),
        ("log=absent.log.gz", 404),
        ("log=link.log.gz", 404),
        ("section=nope", 400),
        ("format=xml", 400),
        ("uploads=many", 400),
        ("log=a&log=b", 400),
        ("log=%zz", 400),
    ] {
        let a = site.get(q, Some("application/json"));
        assert_eq!(
            a.status,
            status,
            "{q}: {}",
            String::from_utf8_lossy(&a.body)
        );
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert!(v["error"].is_string(), "{q}");
        assert!(a.log.is_some(), "{q}: errors are logged");
    }

    let post = serve(
        &CgiEnv {
            method: Some("POST".into()),
            ..CgiEnv::default()
        },
        &site.path("edeploy.conf"),
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("Allow"), Some("GET, HEAD"));
    let mut out = Vec::new();
    post.write_cgi(&mut out, false).unwrap();
    assert!(String::from_utf8(out)
        .unwrap()
        .starts_with("Status: 405 Method Not Allowed\r\n"));

    let broken = serve(
        &CgiEnv {
            method: Some("GET".into()),
            ..CgiEnv::default()
        },
        &site.path("absent.conf"),
    );
    assert_eq!(broken.status, 500);
    assert!(String::from_utf8(broken.body)
        .unwrap()
        .contains("absent.conf: cannot read"));

    // HEAD: the headers only.
    let mut out = Vec::new();
    site.get("", None).write_cgi(&mut out, true).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.ends_with("\r\n\r\n"), "{out}");
}

#[test]
fn queries() {
    let q =
        parse_query("section=la%62&format=json&uploads=all&log=a+b%2Bc.log.gz&x=1&x=2").unwrap();
    assert_eq!(q.section.as_deref(), Some("lab"));
    assert_eq!(q.format, Some(Format::Json));
    assert_eq!(q.uploads, Some(None));
    assert_eq!(q.log.as_deref(), Some("a b+c.log.gz"));
    assert_eq!(parse_query("uploads=7").unwrap().uploads, Some(Some(7)));
    assert_eq!(parse_query("").unwrap(), cgi::Query::default());
    assert!(parse_query("section=a&section=b").is_err());
    assert!(parse_query("log=%ff").is_err());
    assert!(parse_query("log=%4").is_err());
    // What the page links to comes back as it was.
    for name in ["n.log.gz", "a b&c=d%e+f.log.gz", "é.log.gz"] {
        let q = parse_query(&format!("log={}", html::query_encode(name))).unwrap();
        assert_eq!(q.log.as_deref(), Some(name));
    }
}

#[test]
fn names_of_rotated_logs_and_health_results() {
    assert_eq!(log_stem("n.log.gz"), ("n", false));
    assert_eq!(log_stem("n.20260501123000.log.gz"), ("n", true));
    assert_eq!(log_stem("n.x.20260501123000-2.log.gz"), ("n.x", true));
    assert_eq!(log_stem("n.2026.log.gz"), ("n.2026", false));
    assert_eq!(
        log_stem("n.20260501123000-x.log.gz"),
        ("n.20260501123000-x", false)
    );
    assert_eq!(health_machine("Synth-N1-20261125100000.hw"), "Synth-N1");
    assert_eq!(health_machine("odd.hw"), "odd");
}

#[test]
fn only_the_newest_uploads_are_listed_but_all_are_counted() {
    let site = Site::new("[('vm', 10)]\n", TWO_ENTRIES);
    for i in 1..=4 {
        let _ = site.ask(&kvm(i));
    }
    let s = gather(
        &site.cfg(),
        &Gather {
            uploads: Some(2),
            ..Gather::default()
        },
    );
    assert_eq!(
        (s.uploads.total, s.uploads.shown, s.uploads.items.len()),
        (4, 2, 2)
    );
    // Three entries for four nodes: the fourth got 409 and holds nothing.
    assert_eq!((s.uploads.assigned, s.uploads.unrecorded), (3, 1));
    assert!(html::render(&s).contains("?uploads=all"));
}

/// 300 nodes, 250 holding an entry of a 300-entry CMDB, 50 without a
/// record (each gets a decision that commits nothing). Prints how long
/// gathering took, the time the shared lock is held:
/// `cargo test --release --lib status::tests::a_large_site -- --nocapture`.
#[test]
fn a_large_site() {
    let site = Site::new("[('rack', 0), ('spare', '*')]\n", "[]\n");
    for f in ["rack.specs", "spare.specs", "spare.configure"] {
        fs::copy(
            format!("{ROOT}/tests/fixtures/cgi/{f}"),
            site.path("config").join(f),
        )
        .unwrap();
    }
    let mac = |i: usize| format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256);
    let mut entries = Vec::new();
    for i in 0..300 {
        fs::write(
            site.path(&format!("hw/Synth1000-Synth-SN{i:05}.hw")),
            format!(
                "[('system', 'product', 'name', 'Synth 1000'),\n \
                 ('system', 'product', 'vendor', 'Synth'),\n \
                 ('system', 'product', 'serial', 'SN{i:05}'),\n \
                 ('disk', 'sda', 'size', '500'),\n \
                 ('network', 'eth0', 'serial', '{}')]\n",
                mac(i)
            ),
        )
        .unwrap();
        let used = if i < 250 {
            format!(
                ", 'serial': 'SN{i:05}', 'eth': 'eth0', 'mac': '{}', 'used': 1",
                mac(i)
            )
        } else {
            String::new()
        };
        entries.push(format!(
            "{{'hostname': 'rack{:03}', 'ip': '10.1.{}.{}'{used}}}",
            i + 1,
            i / 200,
            i % 200 + 1
        ));
    }
    fs::write(
        site.path("config/rack.cmdb"),
        format!("[{}]\n", entries.join(",\n ")),
    )
    .unwrap();
    let started = Instant::now();
    let s = gather(
        &site.cfg(),
        &Gather {
            uploads: None,
            ..Gather::default()
        },
    );
    let took = started.elapsed();
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    let c = &s.cmdbs[0];
    assert_eq!((c.total, c.used, c.free), (300, 250, 50));
    assert!(c.entries[..250].iter().all(|e| e.node.is_some()));
    assert_eq!(
        (s.uploads.total, s.uploads.assigned, s.uploads.unrecorded),
        (300, 250, 50)
    );
    let now: Vec<_> = s
        .uploads
        .items
        .iter()
        .filter_map(|u| u.now.as_ref())
        .collect();
    assert_eq!(now.len(), 50);
    assert!(now.iter().all(|n| n.profile.as_deref() == Some("spare")));
    let started = Instant::now();
    let page = html::render(&s);
    let render = started.elapsed();
    // Without listed uploads there is no decision: what is left is the
    // reading done under the shared lock.
    let started = Instant::now();
    let files = gather(
        &site.cfg(),
        &Gather {
            uploads: Some(0),
            ..Gather::default()
        },
    );
    let read = started.elapsed();
    assert_eq!(files.uploads.items.len(), 0);
    eprintln!(
        "300 uploads, 300-entry CMDB: files read in {read:?}; with 50 decisions, gathered in {took:?}; \
         rendered ({} KiB) in {render:?}",
        page.len() / 1024
    );
}

#[test]
fn two_health_results_of_one_node_in_one_second_are_one_machine() {
    let site = Site::new("[('vm', 5)]\n", TWO_ENTRIES);
    let result = "[('system', 'product', 'name', 'NODE'),\n \
                  ('cpu', 'logical', 'bogomips', '4000')]\n";
    for name in ["NODE-20260101000000.hw", "NODE-20260101000000-1.hw"] {
        fs::write(site.path(&format!("health/{name}")), result).unwrap();
    }
    let s = site.status();
    assert_eq!(s.health.results, 2);
    assert_eq!(s.health.machines, 1, "{:?}", s.health);
}
