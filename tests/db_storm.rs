//! Three eDeploy servers (three real lighttpd, each with its own
//! CONFIGDIR holding the specs and scripts) deciding on one real
//! PostgreSQL (tests/fixtures/pg.rs), on a Unix socket: boot storms of
//! distinct nodes spread over the servers, a node moving from one server
//! to another, upload.cgi processes SIGKILLed mid-storm, PostgreSQL
//! stopped mid-storm, and the state exported back to files.

#[path = "fixtures/pg.rs"]
mod pg;
mod support;

use edeploy::db;
use edeploy::literal::Value;
use edeploy::provision::decide::Cmdb;
use edeploy::state::{Count, State};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{scratch, synth_hw, Answer, Kind, Options, Site};

const RACK: u64 = 1000;
const ENTRIES: usize = 1250;

const CMDB: &str = "generate({'hostname': 'rack0001-1250',
          'ip': '10.1.0-4.1-250',
          'netmask': '255.255.248.0'})
";

/// The operator's files as imported: rack first (a quota and a CMDB),
/// spare for everyone else.
fn import(pg: &pg::Postgres) {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("state"),
        format!("[('rack', {RACK}), ('spare', '*')]\n"),
    )
    .expect("state");
    fs::write(dir.path().join("rack.cmdb"), CMDB).expect("cmdb");
    let mut d = db::connect(&pg.socket_url(), "SERVER").expect("connect");
    db::init(&mut d).expect("init");
    let moved = db::import(&mut d, dir.path()).expect("import");
    assert_eq!(moved.entries, ENTRIES);
}

/// A server on the database: the specs and scripts in its CONFIGDIR, and
/// a `state` and a CMDB there that say otherwise (ignored with DATABASE).
fn server(pg: &pg::Postgres) -> Site {
    Site::start(
        Kind::Lighttpd,
        Options {
            fixtures: vec![
                "rack.specs",
                "rack.configure",
                "spare.specs",
                "spare.configure",
            ],
            files: vec![
                ("state".into(), "[('rack', 0)]\n".into()),
                ("rack.cmdb".into(), "[{'ip': '192.0.2.1'}]\n".into()),
            ],
            conf: format!("DATABASE = {}\n", pg.socket_url()),
            ..Options::default()
        },
    )
}

fn node_mac(i: usize) -> String {
    format!(
        "02:00:00:{:02x}:{:02x}:{:02x}",
        i / 65536,
        (i / 256) % 256,
        i % 256
    )
}

fn write_nodes(site: &Site, range: std::ops::Range<usize>) -> Vec<(usize, PathBuf)> {
    range
        .map(|i| {
            let text = synth_hw(&format!("SN{i:06}"), &node_mac(i));
            (i, scratch(site, &format!("node{i}.hw"), text.as_bytes()))
        })
        .collect()
}

fn var<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v["vars"][key].as_str().unwrap_or("")
}

/// Uploads every node of `nodes[k]` to `sites[k]`, the three servers at
/// once, in waves of `wave` concurrent requests each.
fn storm(
    sites: &[Site],
    nodes: &[Vec<(usize, PathBuf)>],
    wave: usize,
) -> Vec<(usize, Option<Answer>)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = sites
            .iter()
            .zip(nodes)
            .map(|(site, mine)| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    for chunk in mine.chunks(wave) {
                        let files: Vec<PathBuf> = chunk.iter().map(|(_, p)| p.clone()).collect();
                        for ((i, _), a) in chunk.iter().zip(site.upload_all(&files)) {
                            out.push((*i, a));
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a storm thread"))
            .collect()
    })
}

/// The database's view: rack's installs left, its used entries by MAC
/// (failing on an entry or an address given twice), the hand-outs.
struct Seen {
    left: Option<i64>,
    by_mac: HashMap<String, String>,
    handouts: i64,
}

fn seen(pg: &pg::Postgres) -> Seen {
    let mut c = pg.client("edeploy");
    let left: Option<i64> = c
        .query_one(
            "SELECT installs_left FROM edeploy_profiles WHERE profile = 'rack'",
            &[],
        )
        .expect("rack")
        .get(0);
    let total: i64 = c
        .query_one("SELECT count(*) FROM edeploy_cmdb_entries", &[])
        .expect("count")
        .get(0);
    assert_eq!(total as usize, ENTRIES, "entries lost or gained");
    let mut by_mac = HashMap::new();
    let mut ips = HashSet::new();
    for row in c
        .query(
            "SELECT fields->>'mac', fields->>'ip' FROM edeploy_cmdb_entries WHERE used",
            &[],
        )
        .expect("used")
    {
        let mac: String = row
            .get::<_, Option<String>>(0)
            .expect("a used entry has its MAC");
        let ip: String = row.get::<_, Option<String>>(1).expect("ip");
        assert!(ips.insert(ip.clone()), "{ip} handed out twice");
        assert!(
            by_mac.insert(mac.clone(), ip).is_none(),
            "{mac} owns two entries"
        );
    }
    let handouts: i64 = c
        .query_one(
            "SELECT coalesce(sum(taken), 0)::bigint FROM edeploy_handouts",
            &[],
        )
        .expect("handouts")
        .get(0);
    Seen {
        left,
        by_mac,
        handouts,
    }
}

#[test]
fn a_storm_over_three_servers_hands_out_exactly_the_quota() {
    const NODES: usize = 1500;
    let pg = pg::Postgres::start();
    import(&pg);
    let sites: Vec<Site> = (0..3).map(|_| server(&pg)).collect();
    let nodes: Vec<Vec<(usize, PathBuf)>> = (0..3)
        .map(|k| write_nodes(&sites[k], k * NODES / 3..(k + 1) * NODES / 3))
        .collect();
    let started = Instant::now();
    let answers = storm(&sites, &nodes, 50);
    let took = started.elapsed();
    let mut rack = HashMap::new();
    let mut spare = 0;
    for (i, a) in &answers {
        let a = a
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} got no answer"));
        assert_eq!(a.status, 200, "node {i}: {}", a.body);
        let v = a.json();
        match v["profile"].as_str() {
            Some("rack") => {
                rack.insert(node_mac(*i), var(&v, "ip").to_string());
            }
            Some("spare") => spare += 1,
            other => panic!("node {i} got {other:?}"),
        }
    }
    assert_eq!(rack.len() as u64, RACK, "took {took:?}");
    assert_eq!(spare, NODES - RACK as usize);
    let s = seen(&pg);
    assert_eq!(s.left, Some(0));
    assert_eq!(s.handouts, RACK as i64);
    assert_eq!(
        s.by_mac, rack,
        "what the nodes were told is what the database holds"
    );
    let ips: HashSet<&String> = rack.values().collect();
    assert_eq!(ips.len() as u64, RACK);
    // The decision log names the three servers' decisions, one hash of
    // the profile's files.
    let mut c = pg.client("edeploy");
    let logged: i64 = c
        .query_one("SELECT count(*) FROM edeploy_decisions", &[])
        .expect("log")
        .get(0);
    assert_eq!(logged as usize, NODES);
    let hashes: i64 = c
        .query_one(
            "SELECT count(DISTINCT files_sha256) FROM edeploy_decisions WHERE profile = 'rack'",
            &[],
        )
        .expect("hashes")
        .get(0);
    assert_eq!(hashes, 1);
    let hw: i64 = c
        .query_one("SELECT count(DISTINCT sysname) FROM edeploy_hw", &[])
        .expect("hw")
        .get(0);
    assert_eq!(hw as usize, NODES);

    // A node server A served asks server B: the same entry, no install.
    let (i, path) = nodes[0]
        .iter()
        .find(|(i, _)| rack.contains_key(&node_mac(*i)))
        .expect("a rack node on the first server");
    let text = fs::read(path).expect("read");
    let again = sites[1].upload(&scratch(&sites[1], "moved.hw", &text), &[]);
    assert_eq!(again.status, 200, "{}", again.body);
    let v = again.json();
    assert_eq!(v["profile"], "rack");
    assert_eq!(var(&v, "ip"), rack[&node_mac(*i)]);
    assert_eq!(seen(&pg).left, Some(0));
    assert_eq!(seen(&pg).handouts, RACK as i64);

    // A failure report on server C gives that install back, once.
    let failed = sites[2].upload(&scratch(&sites[2], "failed.hw", &text), &["failure=rack"]);
    assert_eq!(failed.status, 200, "{}", failed.body);
    assert_eq!(failed.json()["given_back"], true);
    assert_eq!(seen(&pg).left, Some(1));
    let twice = sites[0].upload(path, &["failure=rack"]);
    assert_eq!(twice.status, 409, "{}", twice.body);
    assert_eq!(seen(&pg).left, Some(1));

    // Back to files: the export reads as the file backend reads it.
    let out = tempfile::tempdir().expect("tempdir");
    let mut d = db::connect(&pg.socket_url(), "SERVER").expect("connect");
    db::export(&mut d, out.path()).expect("export");
    let state = State::load(&out.path().join("state")).expect("state");
    assert_eq!(state.get("rack").map(|e| e.count), Some(Count::Left(1)));
    assert_eq!(state.get("spare").map(|e| e.count), Some(Count::Unlimited));
    let cmdb = Cmdb::load(&out.path().join("rack.cmdb")).expect("rack.cmdb");
    assert_eq!(cmdb.entries.len(), ENTRIES);
    let used: HashMap<String, String> = cmdb
        .entries
        .iter()
        .filter(|e| e.get("used").is_some())
        .map(|e| {
            let s = |k: &str| match e.get(k) {
                Some(Value::Str(s)) => s.clone(),
                other => panic!("{k}: {other:?}"),
            };
            (s("mac"), s("ip"))
        })
        .collect();
    assert_eq!(used, rack);
    eprintln!("storm: {NODES} uploads over 3 servers on PostgreSQL in {took:?}");
}

/// Our sites' running `upload.cgi` processes.
fn cgi_pids(sites: &[Site]) -> Vec<i32> {
    let exes: Vec<PathBuf> = sites.iter().map(|s| s.path("cgi-bin/upload.cgi")).collect();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| exes.contains(&p)))
        .collect()
}

/// After whatever happened: the quota, the entries, the hand-outs and
/// what the nodes were told agree.
fn consistent(pg: &pg::Postgres, answers: &[(usize, Option<Answer>)]) -> Seen {
    let s = seen(pg);
    let left = s.left.expect("rack has a count") as u64;
    assert_eq!(
        RACK - left,
        s.by_mac.len() as u64,
        "installs taken vs entries used"
    );
    assert_eq!(
        s.handouts as usize,
        s.by_mac.len(),
        "hand-outs vs entries used"
    );
    for (i, a) in answers {
        let Some(a) = a.as_ref().filter(|a| a.status == 200) else {
            continue;
        };
        // A CGI killed while it wrote its answer: the web server had sent
        // the status, the body is cut.
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&a.body) else {
            continue;
        };
        if v["profile"] == "rack" {
            assert_eq!(
                s.by_mac.get(&node_mac(*i)).map(String::as_str),
                Some(var(&v, "ip")),
                "node {i} was told an address the database does not give it"
            );
        }
    }
    s
}

#[test]
fn killed_uploads_and_a_stopped_database_leave_it_consistent() {
    const NODES: usize = 600;
    let mut pg = pg::Postgres::start();
    import(&pg);
    let sites: Vec<Site> = (0..3).map(|_| server(&pg)).collect();
    let nodes: Vec<Vec<(usize, PathBuf)>> = (0..3)
        .map(|k| write_nodes(&sites[k], k * NODES / 3..(k + 1) * NODES / 3))
        .collect();

    // SIGKILL to upload.cgi processes while the storm runs.
    let done = std::sync::atomic::AtomicBool::new(false);
    let (answers, kills) = std::thread::scope(|s| {
        let killer = s.spawn(|| {
            let mut kills = 0;
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut n: u64 = 0x2545_f491;
            while !done.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                let pids = cgi_pids(&sites);
                if !pids.is_empty() {
                    n ^= n << 13;
                    n ^= n >> 7;
                    n ^= n << 17;
                    let pid = pids[(n % pids.len() as u64) as usize];
                    // SAFETY: kill(2) on a pid just read from /proc whose
                    // executable is one of our sites' upload.cgi.
                    if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                        kills += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(3 + n % 10));
            }
            kills
        });
        let answers = storm(&sites, &nodes, 30);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (answers, killer.join().expect("killer"))
    });
    assert!(kills > 20, "only {kills} kills");
    let killed = answers
        .iter()
        .filter(|(_, a)| {
            a.as_ref().is_none_or(|a| {
                a.status != 200 || serde_json::from_str::<serde_json::Value>(&a.body).is_err()
            })
        })
        .count();
    assert!(killed > 0, "no request was cut");
    let s = consistent(&pg, &answers);
    eprintln!(
        "kill storm: {kills} kills, {killed} requests cut, {} entries used",
        s.by_mac.len()
    );

    // PostgreSQL stopped while a storm runs: every answer is a decision
    // or a 503 with a sentence; nothing is half-done.
    let more: Vec<Vec<(usize, PathBuf)>> = (0..3)
        .map(|k| write_nodes(&sites[k], NODES + k * 100..NODES + (k + 1) * 100))
        .collect();
    let decided = |pg: &pg::Postgres| -> i64 {
        pg.client("edeploy")
            .query_one("SELECT count(*) FROM edeploy_decisions", &[])
            .expect("count")
            .get(0)
    };
    let before = decided(&pg);
    let pg_ref = &mut pg;
    let answers2 = std::thread::scope(|s| {
        let stopper = s.spawn(move || {
            // Stopped once the storm is well under way: 30 decisions in
            // (or after 60 s).
            let deadline = Instant::now() + Duration::from_secs(60);
            while decided(pg_ref) < before + 30 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            pg_ref.stop();
            pg_ref
        });
        let answers = storm(&sites, &more, 20);
        let pg_back = stopper.join().expect("stopper");
        (answers, pg_back)
    });
    let (answers2, pg_back) = answers2;
    let mut unavailable = 0;
    for (i, a) in &answers2 {
        let a = a.as_ref().unwrap_or_else(|| panic!("node {i}: no answer"));
        match a.status {
            200 => {}
            503 => {
                let e = a.error();
                assert!(e.contains("the database is unavailable"), "node {i}: {e}");
                unavailable += 1;
            }
            s => panic!("node {i}: {s} {}", a.body),
        }
    }
    assert!(
        unavailable > 0,
        "the database stopped before any request saw it"
    );
    // An upload while it is down: 503 within 10 s.
    let probe = &more[0][0].1;
    let started = Instant::now();
    let a = sites[0].upload(probe, &[]);
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(started.elapsed() < Duration::from_secs(10));
    pg_back.start_server();
    let all: Vec<(usize, Option<Answer>)> = answers.into_iter().chain(answers2).collect();
    consistent(pg_back, &all);
    // Everything right after the restart: the nodes that got 503 get
    // their entries.
    let again = storm(&sites, &more, 20);
    for (i, a) in &again {
        let a = a.as_ref().unwrap_or_else(|| panic!("node {i}: no answer"));
        assert_eq!(a.status, 200, "node {i}: {}", a.body);
    }
    let all: Vec<(usize, Option<Answer>)> = all.into_iter().chain(again).collect();
    let s = consistent(pg_back, &all);
    eprintln!(
        "database stopped mid-storm: {unavailable} answers 503, then {} entries used",
        s.by_mac.len()
    );
}

fn get_json(url: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-s", "-S", "--max-time", "60", "-w", "\n%{http_code}"])
        .arg(url)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run curl");
    let a = support::parse_curl(&out.stdout, &out.stderr);
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()
}

/// status.cgi and `edeploy-admin try` read the database; a server whose
/// specs differ from the others' shows on every server's page.
#[test]
fn status_and_try_read_the_database() {
    let pg = pg::Postgres::start();
    import(&pg);
    let sites: Vec<Site> = (0..2).map(|_| server(&pg)).collect();
    let nodes = write_nodes(&sites[0], 0..3);
    for (_, p) in &nodes {
        let a = sites[0].upload(p, &[]);
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["profile"], "rack");
    }
    let page = get_json(&format!("{}?format=json", sites[1].url_of("status.cgi")));
    assert_eq!(page["lock"], "database");
    assert_eq!(
        page["problems"].as_array().map(Vec::len),
        Some(0),
        "{}",
        page["problems"]
    );
    let rack = page["profiles"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["profile"] == "rack"))
        .expect("rack on the page")
        .clone();
    assert_eq!(rack["left"], RACK - 3, "{rack}");
    assert_eq!(rack["cmdb_used"], 3, "{rack}");
    assert_eq!(rack["cmdb_free"], ENTRIES - 3, "{rack}");
    let uploads = page["uploads"]["items"].as_array().expect("uploads").len();
    assert_eq!(uploads, 3, "{}", page["uploads"]);

    // `try` on server 1's CONFIGDIR, with its edeploy.conf: what the
    // database would give a node seen before and a new one.
    let try_on = |hw: &PathBuf| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_edeploy-admin"))
            .env("EDEPLOY_CONF", sites[1].path("edeploy.conf"))
            .arg("try")
            .arg(sites[1].path("config"))
            .arg(hw)
            .output()
            .expect("run edeploy-admin");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let seen_before = try_on(&nodes[1].1);
    assert!(
        seen_before.contains("cmdb entry: 2 (already this node's: no install consumed)"),
        "{seen_before}"
    );
    let new = write_nodes(&sites[1], 10..11);
    let fresh = try_on(&new[0].1);
    assert!(fresh.contains("profile: rack"), "{fresh}");
    assert!(fresh.contains("cmdb entry: 4\n"), "{fresh}");
    assert!(
        fresh.contains(&format!("installs left after this one: {}", RACK - 4)),
        "{fresh}"
    );

    // Server 1 gets other specs (same match), decides once: both pages
    // say the servers disagree.
    let specs = sites[1].path("config/rack.specs");
    let mut text = fs::read_to_string(&specs).expect("specs");
    text.push_str("# changed on one server only\n");
    fs::write(&specs, text).expect("specs");
    let a = sites[1].upload(&new[0].1, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    for site in &sites {
        let page = get_json(&format!("{}?format=json", site.url_of("status.cgi")));
        let problems = page["problems"].to_string();
        assert!(
            problems
                .contains("profile rack: servers decided with different .specs or configure files"),
            "{problems}"
        );
    }
}
