//! `edeploy-admin db init | import | export` against a real PostgreSQL
//! (tests/fixtures/pg.rs: Debian's server, a cluster in a temporary
//! directory, a Unix socket there and 127.0.0.1 on a free port).
//!
//! Files → database → files gives back what the file backend reads the
//! same way: the same state, the same CMDB entries (used ones included),
//! the same decision for a node seen before and for a new one.

#[path = "fixtures/pg.rs"]
mod pg;

use edeploy::config::ServerConfig;
use edeploy::db;
use edeploy::hw::{self, Line};
use edeploy::provision::decide::{self, Cmdb};
use edeploy::state::State;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn hw_of(rel: &str) -> Vec<Line> {
    let text = fs::read_to_string(fixture(rel)).expect("read the hardware list");
    hw::parse(&text, rel).expect("parse the hardware list")
}

/// A CONFIGDIR with three profiles (`kvm-test` last, with the reference's
/// CMDB made with generate(), two of them used by real decisions).
fn configdir(dir: &Path) {
    fs::create_dir_all(dir).expect("mkdir");
    fs::write(
        dir.join("state"),
        "[('hp', 4), ('other', '2'), ['kvm-test', 9], ('spare', '*')]\n",
    )
    .expect("state");
    for p in ["hp", "other", "spare"] {
        fs::write(
            dir.join(format!("{p}.specs")),
            "[('system', 'product', 'vendor', 'nobody')]\n",
        )
        .expect("specs");
        fs::write(dir.join(format!("{p}.configure")), "run(\"true\");\n").expect("script");
    }
    fs::copy(
        fixture("reference-config/kvm-test.specs"),
        dir.join("kvm-test.specs"),
    )
    .expect("specs");
    fs::copy(
        fixture("reference-config/kvm-test.cmdb"),
        dir.join("kvm-test.cmdb"),
    )
    .expect("cmdb");
    fs::write(dir.join("kvm-test.configure"), "run(\"true\");\n").expect("script");
    // A CMDB in JSON, kept in JSON.
    fs::write(
        dir.join("other.cmdb"),
        "[{\"hostname\": \"o1\", \"ip\": \"10.9.0.1\"}, {\"hostname\": \"o2\", \"ip\": \"10.9.0.2\", \"used\": 1}]\n",
    )
    .expect("cmdb");
    let cfg = ServerConfig::with_configdir(dir);
    for serial in ["52:54:00:12:34:56", "52:54:00:12:34:57"] {
        let mut hw = hw_of("hw/kvm-test-vm.hw");
        for l in hw.iter_mut() {
            if l[0] == "network" && l[2] == "serial" && l[1] == "eth0" {
                l[3] = serial.to_string();
            }
        }
        decide::decide(&cfg, &hw, true, &mut |_| {}).expect("a decision on the files");
    }
}

fn tried(configdir: &Path, hw: &[Line]) -> String {
    let cfg = ServerConfig::with_configdir(configdir);
    let d = decide::preview(&cfg, hw, &mut |_| {}).expect("preview");
    format!("{:#}", decide::envelope(&d))
}

fn entries(path: &Path) -> Vec<edeploy::literal::Value> {
    Cmdb::load(path).expect("load the CMDB").entries
}

fn conf(dir: &Path, url: &str) -> PathBuf {
    let p = dir.join("edeploy.conf");
    fs::write(
        &p,
        format!(
            "[SERVER]\nCONFIGDIR = {}\nDATABASE = {url}\n",
            dir.join("unused").display()
        ),
    )
    .expect("conf");
    p
}

fn admin(conf: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edeploy-admin"))
        .env("EDEPLOY_CONF", conf)
        .args(args)
        .output()
        .expect("run edeploy-admin");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn files_to_the_database_and_back_decide_the_same() {
    let pg = pg::Postgres::start();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("files");
    configdir(&src);
    let conf = conf(work.path(), &pg.socket_url());

    let (code, out, err) = admin(&conf, &["db", "init"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("tables created (schema version 1)"), "{out}");
    let (code, out, err) = admin(&conf, &["db", "init"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("tables already there"), "{out}");

    let (code, out, err) = admin(&conf, &["db", "import", &src.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    // 3 entries generated, 2 used by the decisions; 2 in other.cmdb, 1 used.
    assert!(
        out.contains("4 profiles, 2 CMDB files, 5 entries (3 used), 1 nodes with hand-outs"),
        "{out}"
    );

    let back = work.path().join("back");
    fs::create_dir(&back).expect("mkdir");
    let (code, out, err) = admin(&conf, &["db", "export", &back.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("4 profiles, 2 CMDB files, 5 entries (3 used)"),
        "{out}"
    );

    // The same state, written as it was read.
    assert_eq!(
        State::load(&back.join("state")).expect("exported state"),
        State::load(&src.join("state")).expect("state")
    );
    assert_eq!(
        fs::read_to_string(back.join("state")).expect("read"),
        State::load(&src.join("state")).expect("state").to_text()
    );
    // The same entries, used ones included, in their dialect.
    for p in ["kvm-test", "other"] {
        let f = format!("{p}.cmdb");
        assert_eq!(entries(&back.join(&f)), entries(&src.join(&f)), "{f}");
    }
    assert!(fs::read_to_string(back.join("other.cmdb"))
        .expect("read")
        .starts_with("[{\""));
    assert!(fs::read_to_string(back.join("kvm-test.cmdb"))
        .expect("read")
        .starts_with("[{'"));

    // The failure-report ledger: the same hand-outs, node by node.
    let ledger = |dir: &Path| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = fs::read_dir(dir.join("handouts.d"))
            .expect("handouts.d")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read_to_string(e.path()).expect("read"),
                )
            })
            // The commit's spare files are hidden, not hand-outs.
            .filter(|(name, _)| !name.starts_with('.'))
            .collect();
        v.sort();
        v
    };
    let before = ledger(&src);
    assert!(!before.is_empty());
    assert_eq!(ledger(&back), before);

    // The file backend decides the same on what came back: a node seen
    // before gets its entry again, a new one the next free entry.
    for f in [
        "kvm-test.specs",
        "kvm-test.configure",
        "hp.specs",
        "hp.configure",
    ] {
        fs::copy(src.join(f), back.join(f)).expect("copy");
    }
    for p in ["other", "spare"] {
        for ext in ["specs", "configure"] {
            let f = format!("{p}.{ext}");
            fs::copy(src.join(&f), back.join(&f)).expect("copy");
        }
    }
    let seen = {
        let mut hw = hw_of("hw/kvm-test-vm.hw");
        for l in hw.iter_mut() {
            if l[0] == "network" && l[2] == "serial" && l[1] == "eth0" {
                l[3] = "52:54:00:12:34:57".into();
            }
        }
        hw
    };
    let new = hw_of("hw/kvm-test-vm.hw");
    for hw in [&seen, &new] {
        assert_eq!(tried(&back, hw), tried(&src, hw));
    }
    assert!(tried(&back, &seen).contains("10.0.2.4"));
}

#[test]
fn a_bad_file_changes_nothing_and_is_named() {
    let pg = pg::Postgres::start();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("files");
    configdir(&src);
    let conf = conf(work.path(), &pg.socket_url());
    assert_eq!(admin(&conf, &["db", "init"]).0, 0);
    let (code, out, err) = admin(&conf, &["db", "import", &src.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");

    // A CMDB that does not parse: refused, naming it; the database keeps
    // the previous import whole.
    let broken = work.path().join("broken");
    fs::create_dir(&broken).expect("mkdir");
    fs::write(broken.join("state"), "[('kvm-test', 1)]\n").expect("state");
    fs::write(broken.join("kvm-test.cmdb"), "[{'ip': '10.0.0.1',\n").expect("cmdb");
    let (code, _, err) = admin(&conf, &["db", "import", &broken.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("kvm-test.cmdb"), "{err}");
    let mut c = pg.client("edeploy");
    let n: i64 = c
        .query_one("SELECT count(*) FROM edeploy_cmdb_entries", &[])
        .expect("count")
        .get(0);
    assert_eq!(n, 5);
    let left: Option<i64> = c
        .query_one(
            "SELECT installs_left FROM edeploy_profiles WHERE profile = 'kvm-test'",
            &[],
        )
        .expect("row")
        .get(0);
    assert_eq!(left, Some(7));

    // Export into a directory that does not exist: refused, named.
    let missing = work.path().join("nowhere");
    let (code, _, err) = admin(&conf, &["db", "export", &missing.display().to_string()]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{}: not an existing directory", missing.display())),
        "{err}"
    );
    assert!(!missing.exists());

    // A symlink where the hand-outs go is not followed out of DIR.
    let out = work.path().join("out");
    let elsewhere = work.path().join("elsewhere");
    fs::create_dir(&out).expect("mkdir");
    fs::create_dir(&elsewhere).expect("mkdir");
    std::os::unix::fs::symlink(&elsewhere, out.join("handouts.d")).expect("symlink");
    let (code, _, err) = admin(&conf, &["db", "export", &out.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("handouts.d: not a directory"), "{err}");
    assert_eq!(fs::read_dir(&elsewhere).expect("list").count(), 0);
}

#[test]
fn tcp_with_the_password_from_a_file_and_clear_errors() {
    let mut pg = pg::Postgres::start();
    let work = tempfile::tempdir().expect("tempdir");
    let passfile = work.path().join("pgpass");
    fs::write(
        &passfile,
        format!(
            "127.0.0.1:{}:edeploy:edeploy:{}\n",
            pg.port,
            pg::PASSWORD.replace(':', "\\:")
        ),
    )
    .expect("pgpass");
    let conf = conf(work.path(), &pg.tcp_url(&passfile));
    let (code, out, err) = admin(&conf, &["db", "init"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("tables created"), "{out}");

    // A wrong password: refused by the server, the password never shown.
    fs::write(
        &passfile,
        format!("127.0.0.1:{}:edeploy:edeploy:wrong\n", pg.port),
    )
    .expect("pgpass");
    let (code, _, err) = admin(&conf, &["db", "init"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.contains("password authentication failed"), "{err}");

    // The database gone: an error within the connect timeout, naming it.
    pg.stop();
    let url = format!(
        "postgresql://edeploy:topsecret@127.0.0.1:{}/edeploy?connect_timeout=3",
        pg.port
    );
    let conf = conf_at(work.path(), &url);
    let started = std::time::Instant::now();
    let (code, _, err) = admin(&conf, &["db", "init"]);
    assert_eq!(code, 2);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(
        err.contains(&format!(
            "postgresql://edeploy:***@127.0.0.1:{}/edeploy?connect_timeout=3: cannot connect",
            pg.port
        )),
        "{err}"
    );
    assert!(!err.contains("topsecret"), "{err}");

    // Not set, or not a URI: named in the configuration file.
    let plain = work.path().join("plain.conf");
    fs::write(&plain, "[SERVER]\nCONFIGDIR = /x\n").expect("conf");
    let (code, _, err) = admin(&plain, &["db", "init"]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!(
            "{}: DATABASE is not set in section [SERVER]",
            plain.display()
        )),
        "{err}"
    );
    fs::write(
        &plain,
        "[SERVER]\nCONFIGDIR = /x\nDATABASE = mysql://u:pw@h/d\n",
    )
    .expect("conf");
    let (code, _, err) = admin(&plain, &["db", "init"]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!(
            "{}:3: DATABASE must be a postgresql:// URI",
            plain.display()
        )),
        "{err}"
    );
    assert!(!err.contains("pw@"), "{err}");
}

fn conf_at(dir: &Path, url: &str) -> PathBuf {
    let p = dir.join("other.conf");
    fs::write(&p, format!("[SERVER]\nCONFIGDIR = /x\nDATABASE = {url}\n")).expect("conf");
    p
}

#[test]
fn init_refuses_a_database_of_another_schema_version() {
    let pg = pg::Postgres::start();
    let mut d = db::connect(&pg.socket_url(), "SERVER").expect("connect");
    assert_eq!(db::init(&mut d).expect("init"), db::Init::Created);
    d.client
        .batch_execute("UPDATE edeploy_schema SET version = 99")
        .expect("update");
    let e = db::init(&mut d).expect_err("another version");
    assert!(
        format!("{e:#}").contains("schema version 99; this edeploy reads version 1"),
        "{e:#}"
    );
    let empty = tempfile::tempdir().expect("tempdir");
    let e = db::export(&mut d, empty.path()).expect_err("another version");
    assert!(format!("{e:#}").contains("schema version 99"), "{e:#}");
}

/// The fixtures' lists, each copied into `dir` as the file backend names
/// it (`<sysname>.hw`), mtimes a few minutes apart (to the microsecond):
/// (sysname, fixture, mtime), oldest first.
fn hw_files(dir: &Path) -> Vec<(String, PathBuf, std::time::SystemTime)> {
    let base = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_733_526_000_123_456);
    let mut out = Vec::new();
    for (i, f) in [
        "hw/kvm-test-vm.hw",
        "hw/dell-poweredge-m520.hw",
        "hw/hp-proliant-dl360p-gen8.hw",
    ]
    .into_iter()
    .enumerate()
    {
        let sysname = hw::sysname(&hw_of(f));
        let path = dir.join(format!("{sysname}.hw"));
        fs::copy(fixture(f), &path).expect("copy a list");
        let when = base + std::time::Duration::from_secs(300 * i as u64);
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(when))
            .expect("set the mtime");
        out.push((sysname, fixture(f), when));
    }
    out
}

/// The rows of `edeploy_hw`: (sysname, received in microseconds, list).
fn hw_rows(pg: &pg::Postgres) -> Vec<(String, i64, String)> {
    pg.client("edeploy")
        .query(
            "SELECT sysname, (extract(epoch FROM received) * 1000000)::int8, hw FROM edeploy_hw \
             ORDER BY sysname",
            &[],
        )
        .expect("select")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn micros(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros() as i64
}

fn mtime(path: &Path) -> std::time::SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

/// The uploads the status page lists: (sysname, mtime in seconds).
fn page_uploads(cfg: &ServerConfig) -> Vec<(String, i64)> {
    let page = edeploy::status::gather(cfg, &edeploy::status::Gather::default());
    assert!(page.problems.is_empty(), "{:?}", page.problems);
    page.uploads
        .items
        .iter()
        .map(|u| (u.sysname.clone(), u.mtime))
        .collect()
}

#[test]
fn hardware_lists_move_with_the_state_and_back() {
    let pg = pg::Postgres::start();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("files");
    configdir(&src);
    let lists = hw_files(&src);
    // What is not a node's list: a name the server never gives one, a
    // symbolic link (to a good list), a directory, a hidden file.
    fs::copy(fixture("hw/kvm-test-vm.hw"), src.join("kvm.old.hw")).expect("copy");
    let outside = work.path().join("outside.hw");
    fs::copy(fixture("hw/kvm-test-vm-bios.hw"), &outside).expect("copy");
    std::os::unix::fs::symlink(&outside, src.join("linked.hw")).expect("symlink");
    fs::create_dir(src.join("adir.hw")).expect("mkdir");
    fs::write(src.join(".spare.hw"), "not read").expect("hidden");
    let conf = conf(work.path(), &pg.socket_url());
    assert_eq!(admin(&conf, &["db", "init"]).0, 0);

    let (code, out, err) = admin(&conf, &["db", "import", &src.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("1 nodes with hand-outs, 3 hardware lists"),
        "{out}"
    );
    for (name, why) in [
        (
            "kvm.old.hw",
            "skipped: not a name the server gives a node's list",
        ),
        ("linked.hw", "skipped: a symbolic link, not followed"),
        ("adir.hw", "skipped: not a regular file"),
    ] {
        assert!(
            err.contains(&format!("warning: {}: {why}", src.join(name).display())),
            "{err}"
        );
    }
    assert!(!err.contains(".spare.hw"), "{err}");

    // One row a list: the list as kept, received at the file's mtime.
    let mut want: Vec<(String, i64, String)> = lists
        .iter()
        .map(|(s, f, t)| {
            let text = fs::read_to_string(f).expect("read");
            let kept = hw::to_literal(&hw::parse(&text, "fixture").expect("parse"));
            (s.clone(), micros(*t), kept)
        })
        .collect();
    want.sort();
    assert_eq!(hw_rows(&pg), want);

    // The status page on the database lists them as on the files, newest
    // first, at their times.
    let mut cfg = ServerConfig::with_configdir(&src);
    let on_files = page_uploads(&cfg);
    cfg.database = Some(pg.socket_url());
    let on_db = page_uploads(&cfg);
    let newest_first: Vec<(String, i64)> = lists
        .iter()
        .rev()
        .map(|(s, _, t)| (s.clone(), micros(*t) / 1_000_000))
        .collect();
    assert_eq!(on_db, newest_first);
    // The files' page also shows the file it cannot read as a node's
    // (the name the import skips): the rest is the same.
    let same: Vec<(String, i64)> = on_files
        .into_iter()
        .filter(|(s, _)| s != "kvm.old")
        .collect();
    assert_eq!(same, newest_first);

    // Back to files: the same bytes the file backend writes, the same
    // mtimes, where it reads them (HWDIR is CONFIGDIR: DIR itself).
    let back = work.path().join("back");
    fs::create_dir(&back).expect("mkdir");
    let (code, out, err) = admin(&conf, &["db", "export", &back.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 hardware lists"), "{out}");
    for (sysname, f, t) in &lists {
        let written = fs::read(back.join(format!("{sysname}.hw"))).expect("exported list");
        let text = fs::read_to_string(f).expect("read");
        let kept = hw::to_literal(&hw::parse(&text, "fixture").expect("parse"));
        assert_eq!(String::from_utf8_lossy(&written), kept, "{sysname}");
        assert_eq!(mtime(&back.join(format!("{sysname}.hw"))), *t, "{sysname}");
    }
    // A list the file backend wrote comes back identical; one in the
    // original's `pprint` layout (the Dell's, the HP's: tuples wrapped,
    // numbers unquoted) as the file backend writes that list.
    assert_eq!(
        fs::read(back.join(format!("{}.hw", lists[0].0))).expect("read"),
        fs::read(src.join(format!("{}.hw", lists[0].0))).expect("read")
    );
    for (sysname, f, _) in &lists[1..] {
        assert_ne!(
            fs::read(back.join(format!("{sysname}.hw"))).expect("read"),
            fs::read(f).expect("read")
        );
    }
    let leftovers: Vec<String> = fs::read_dir(&back)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The file backend's page on the export lists them the same.
    assert_eq!(
        page_uploads(&ServerConfig::with_configdir(&back)),
        newest_first
    );

    // Imported again from the export: the same rows.
    let (code, out, err) = admin(&conf, &["db", "import", &back.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(hw_rows(&pg), want);
}

#[test]
fn a_bad_hardware_list_refuses_the_import_and_links_the_export() {
    let pg = pg::Postgres::start();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("files");
    configdir(&src);
    hw_files(&src);
    let conf = conf(work.path(), &pg.socket_url());
    assert_eq!(admin(&conf, &["db", "init"]).0, 0);
    let (code, out, err) = admin(&conf, &["db", "import", &src.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    let before = hw_rows(&pg);
    assert_eq!(before.len(), 3);
    let entries = |pg: &pg::Postgres| -> i64 {
        pg.client("edeploy")
            .query_one("SELECT count(*) FROM edeploy_cmdb_entries", &[])
            .expect("count")
            .get(0)
    };
    assert_eq!(entries(&pg), 5);

    // Each of these refuses the whole import, naming the file and what is
    // wrong; the database keeps the previous import whole.
    let other = work.path().join("other");
    fs::create_dir(&other).expect("mkdir");
    fs::write(other.join("state"), "[('kvm-test', 1)]\n").expect("state");
    fs::copy(fixture("hw/kvm-test-vm.hw"), other.join("good-1.hw")).expect("copy");
    let big = "x".repeat(9000);
    for (name, text, why) in [
        (
            "broken-1.hw",
            b"[('system', 'product'\n".to_vec(),
            "expected",
        ),
        (
            "dict-1.hw",
            b"{'a': 1}\n".to_vec(),
            "expected a list of 4-tuples",
        ),
        ("empty-1.hw", b"[]\n".to_vec(), "the hardware list is empty"),
        (
            "long-1.hw",
            format!("[('system', 'product', 'name', '{big}')]\n").into_bytes(),
            "more than the 8192 the server accepts (HWMAXVALUE)",
        ),
        (
            "ctrl-1.hw",
            b"[('system', 'product', 'name', 'a\\nb')]\n".to_vec(),
            "control character U+000A",
        ),
        (
            "latin1-1.hw",
            b"[('a', 'b', 'c', '\xe9')]\n".to_vec(),
            "not valid UTF-8",
        ),
    ] {
        let path = other.join(name);
        fs::write(&path, text).expect("write");
        let (code, out, err) = admin(&conf, &["db", "import", &other.display().to_string()]);
        assert_eq!(code, 2, "{name}: {out}{err}");
        assert!(err.contains(&path.display().to_string()), "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
        assert_eq!(hw_rows(&pg), before, "{name}");
        assert_eq!(entries(&pg), 5, "{name}");
        fs::remove_file(&path).expect("rm");
    }
    // Over the section's MAXUPLOAD (the limit of an uploaded list).
    let small = work.path().join("small.conf");
    fs::write(
        &small,
        format!(
            "[SERVER]\nCONFIGDIR = /unused\nDATABASE = {}\nMAXUPLOAD = 1000\n",
            pg.socket_url()
        ),
    )
    .expect("conf");
    let (code, _, err) = admin(&small, &["db", "import", &other.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{}: 1635 bytes, more than the 1000 bytes the server accepts of an upload (MAXUPLOAD)",
            other.join("good-1.hw").display()
        )),
        "{err}"
    );
    assert_eq!(hw_rows(&pg), before);

    // A symbolic link where a list goes is refused before anything is
    // written; its target is untouched.
    let out = work.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    let target = work.path().join("target");
    fs::write(&target, "kept\n").expect("write");
    std::os::unix::fs::symlink(&target, out.join(format!("{}.hw", before[0].0))).expect("symlink");
    let (code, _, err) = admin(&conf, &["db", "export", &out.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{}: a symbolic link, not written through",
            out.join(format!("{}.hw", before[0].0)).display()
        )),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&target).expect("read"), "kept\n");
    assert!(!out.join("state").exists());
    assert_eq!(fs::read_dir(&out).expect("list").count(), 1);
}

/// A section whose HWDIR is not its CONFIGDIR: the import reads HWDIR,
/// the export writes `DIR/hw/` (a symbolic link there refused).
#[test]
fn a_hwdir_of_its_own_is_read_and_exported_to_dir_hw() {
    let pg = pg::Postgres::start();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("files");
    configdir(&src);
    let hwdir = work.path().join("hw-uploads");
    fs::create_dir(&hwdir).expect("mkdir");
    let lists = hw_files(&hwdir);
    // A list left in CONFIGDIR is not HWDIR's: not read.
    fs::copy(fixture("hw/kvm-test-vm-bios.hw"), src.join("stale.hw")).expect("copy");
    let conf = work.path().join("edeploy.conf");
    fs::write(
        &conf,
        format!(
            "[SERVER]\nCONFIGDIR = {}\nHWDIR = {}\nDATABASE = {}\n",
            src.display(),
            hwdir.display(),
            pg.socket_url()
        ),
    )
    .expect("conf");
    assert_eq!(admin(&conf, &["db", "init"]).0, 0);
    let (code, out, err) = admin(&conf, &["db", "import", &src.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("(hardware lists from {})", hwdir.display())),
        "{out}"
    );
    assert!(out.contains("3 hardware lists"), "{out}");
    let rows = hw_rows(&pg);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.0 != "stale"));

    let back = work.path().join("back");
    fs::create_dir(&back).expect("mkdir");
    std::os::unix::fs::symlink(&hwdir, back.join("hw")).expect("symlink");
    let (code, _, err) = admin(&conf, &["db", "export", &back.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{}: not a directory", back.join("hw").display())),
        "{err}"
    );
    fs::remove_file(back.join("hw")).expect("rm");
    let (code, out, err) = admin(&conf, &["db", "export", &back.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "(hardware lists in {})",
            back.join("hw").display()
        )),
        "{out}"
    );
    for (sysname, f, t) in &lists {
        let p = back.join("hw").join(format!("{sysname}.hw"));
        let text = fs::read_to_string(f).expect("read");
        let kept = hw::to_literal(&hw::parse(&text, "fixture").expect("parse"));
        assert_eq!(fs::read_to_string(&p).expect("read"), kept);
        assert_eq!(mtime(&p), *t);
        assert!(!back.join(format!("{sysname}.hw")).exists());
    }
}

/// The connections of `application_name` the server logged.
fn connections(pg: &pg::Postgres, application_name: &str) -> usize {
    pg.log()
        .lines()
        .filter(|l| {
            l.contains("connection authorized")
                && l.contains(&format!("application_name={application_name}"))
        })
        .count()
}

/// status.cgi on the database opens one connection for the page,
/// however many nodes it previews.
#[test]
fn the_status_page_connects_once_for_all_its_previews() {
    let pg = pg::Postgres::start();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("files");
    configdir(&src);
    hw_files(&src);
    // A VM none of the CMDB's entries knows: kvm-test would take it.
    let mut vm = hw_of("hw/kvm-test-vm.hw");
    for l in vm.iter_mut() {
        if l[0] == "network" && l[2] == "serial" {
            l[3] = l[3].replace("52:54:12:34", "52:54:77:77");
        }
    }
    let vm_name = hw::sysname(&vm);
    fs::write(src.join(format!("{vm_name}.hw")), hw::to_literal(&vm)).expect("write");
    let conf = conf(work.path(), &pg.socket_url());
    assert_eq!(admin(&conf, &["db", "init"]).0, 0);
    let (code, out, err) = admin(&conf, &["db", "import", &src.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("4 hardware lists"), "{out}");

    let app = "edeploy-status-test";
    let mut cfg = ServerConfig::with_configdir(&src);
    cfg.database = Some(format!("{}&application_name={app}", pg.socket_url()));
    assert_eq!(connections(&pg, app), 0, "{}", pg.log());
    let page = edeploy::status::gather(&cfg, &edeploy::status::Gather::default());
    assert!(page.problems.is_empty(), "{:?}", page.problems);
    let previewed = page
        .uploads
        .items
        .iter()
        .filter(|u| u.now.as_ref().is_some_and(|n| n.evaluated))
        .count();
    assert!(previewed >= 3, "{:?}", page.uploads.items);
    // The previews ran on the database: the new VM would get kvm-test.
    let now = page
        .uploads
        .items
        .iter()
        .find(|u| u.sysname == vm_name)
        .and_then(|u| u.now.clone())
        .expect("the VM previewed");
    assert_eq!(now.profile.as_deref(), Some("kvm-test"), "{now:?}");
    assert_eq!(connections(&pg, app), 1, "{}", pg.log());

    // What is counted: a decision on its own connects once more.
    decide::preview(&cfg, &hw_of("hw/kvm-test-vm.hw"), &mut |_| {}).expect("preview");
    assert_eq!(connections(&pg, app), 2);
}

/// A CONFIGDIR whose three profiles all take the KVM test VM: `a` (two
/// installs, no CMDB), `kvm-test` (five installs, a CMDB of 12 entries),
/// `spare` ('*').
fn three_takers(dir: &Path) {
    fs::create_dir_all(dir).expect("mkdir");
    fs::write(
        dir.join("state"),
        "[('a', 2), ('kvm-test', 5), ('spare', '*')]\n",
    )
    .expect("state");
    for p in ["a", "kvm-test", "spare"] {
        fs::copy(
            fixture("reference-config/kvm-test.specs"),
            dir.join(format!("{p}.specs")),
        )
        .expect("specs");
        fs::write(dir.join(format!("{p}.configure")), "run(\"true\");\n").expect("script");
    }
    fs::write(
        dir.join("kvm-test.cmdb"),
        "generate({'hostname': 'k1-12', 'ip': '10.7.0.1-12'})\n",
    )
    .expect("cmdb");
    // A profile's files left behind, not in the state: an error to read.
    fs::write(dir.join("old.specs"), "[('system', \n").expect("specs");
}

/// The KVM test VM with the `i`-th set of MACs.
fn vm(i: usize) -> Vec<Line> {
    let mut hw = hw_of("hw/kvm-test-vm.hw");
    for l in hw.iter_mut() {
        if l[0] == "network" && l[2] == "serial" {
            l[3] = l[3].replacen("52:54:", &format!("52:{:02x}:", 0x60 + i), 1);
        }
    }
    hw
}

/// What a decision answered, warnings included.
fn outcome(cfg: &ServerConfig, hw: &[Line]) -> String {
    let mut warned = Vec::new();
    let d = decide::decide(cfg, hw, true, &mut |w| warned.push(w));
    match d {
        Ok(d) => format!(
            "{} {:?} entry {:?} reused {} left {:?} warned {warned:?}",
            d.profile, d.vars, d.cmdb_entry, d.reused, d.left
        ),
        Err(e) => format!("{e} warned {warned:?}"),
    }
}

/// Each server keeps the list of the profiles in CONFIGDIR
/// (`.edeploy-profiles`) to spare a decision the statement that reads it.
/// A list that is out of date, or forged, never changes an answer: a site
/// whose list is replaced by a wrong one before most decisions answers as
/// a site that has none, decision after decision, while the counts change
/// under both. A list that is right is used: the decision does not read
/// the profiles from the database.
#[test]
fn a_kept_list_of_the_profiles_never_changes_an_answer() {
    let pg = pg::Postgres::start();
    pg.client("postgres")
        .batch_execute("CREATE DATABASE twin")
        .expect("create the second database");
    let work = tempfile::tempdir().expect("tempdir");
    let kept_dir = work.path().join("kept");
    let none_dir = work.path().join("none");
    three_takers(&kept_dir);
    three_takers(&none_dir);
    let site = |dir: &Path, db: &str| {
        let conf = dir.join("edeploy.conf");
        let url = pg.socket_url().replace("/edeploy?", &format!("/{db}?"));
        assert!(url.contains(&format!("/{db}?")), "{url}");
        fs::write(
            &conf,
            format!(
                "[SERVER]\nCONFIGDIR = {}\nDATABASE = {url}\n",
                dir.display()
            ),
        )
        .expect("conf");
        assert_eq!(admin(&conf, &["db", "init"]).0, 0);
        let (code, out, err) = admin(&conf, &["db", "import", &dir.display().to_string()]);
        assert_eq!(code, 0, "{out}{err}");
        let mut cfg = ServerConfig::with_configdir(dir);
        cfg.database = Some(url);
        cfg
    };
    let kept = site(&kept_dir, "edeploy");
    let none = site(&none_dir, "twin");
    let list = kept_dir.join(".edeploy-profiles");
    let line = |name: &str, cmdb: bool, exhausted: bool| {
        format!(
            "{}{} {name}\n",
            if cmdb { 'c' } else { '-' },
            if exhausted { '0' } else { '+' }
        )
    };
    let forged = |lines: &[String]| {
        let body = format!("edeploy-profiles 1\nSERVER\n{}", lines.concat());
        format!("{body}{:08x}\n", crc32fast::hash(body.as_bytes()))
    };
    let forgeries = [
        // `a` left out: kvm-test would be taken first.
        forged(&[line("kvm-test", true, false), line("spare", false, false)]),
        // `a` exhausted (it is not, at first), then not (it is, later).
        forged(&[
            line("a", false, true),
            line("kvm-test", true, false),
            line("spare", false, false),
        ]),
        forged(&[
            line("a", false, false),
            line("kvm-test", true, false),
            line("spare", false, false),
        ]),
        // Another order.
        forged(&[
            line("spare", false, false),
            line("kvm-test", true, false),
            line("a", false, false),
        ]),
        // A profile the state does not have, and no .specs of it; one
        // whose .specs is broken.
        forged(&[line("ghost", false, false), line("spare", false, false)]),
        forged(&[line("old", false, false), line("spare", false, false)]),
        // kvm-test without its CMDB (`a` has no installs left by then).
        forged(&[
            line("a", false, true),
            line("kvm-test", false, false),
            line("spare", false, false),
        ]),
        // No profile at all: no answer without the database's list.
        forged(&[]),
        // Another section's; junk.
        "edeploy-profiles 1\nlab\n-+ a\n00000000\n".to_string(),
        "junk".to_string(),
    ];
    let give_back = |db: &str| {
        pg.client(db)
            .batch_execute("UPDATE edeploy_profiles SET installs_left = 1 WHERE profile = 'a'")
            .expect("give an install back");
    };
    let mut kinds = std::collections::BTreeSet::new();
    let mut forging = forgeries.iter().cycle();
    for i in 0..16 {
        if i == 9 {
            // An operator gives `a` an install back on both: the kept
            // list says it has none.
            give_back("edeploy");
            give_back("twin");
        }
        if i % 4 != 3 {
            fs::write(&list, forging.next().expect("a forgery")).expect("forge");
        }
        let _ = fs::remove_file(none_dir.join(".edeploy-profiles"));
        let hw = vm(i);
        let got = outcome(&kept, &hw);
        let want = outcome(&none, &hw);
        assert_eq!(got, want, "node {i}");
        kinds.insert(got.split(' ').next().unwrap_or_default().to_string());
    }
    // Every profile was taken along the way.
    for p in ["a", "kvm-test", "spare"] {
        assert!(kinds.contains(p), "{p} never taken: {kinds:?}");
    }

    // The list kept is the database's, and it is used: a decision with it
    // does not read the profiles; without it, it does, and keeps it again.
    outcome(&kept, &vm(40));
    let text = fs::read_to_string(&list).expect("the kept list");
    assert!(
        text.starts_with("edeploy-profiles 1\nSERVER\n-0 a\nc0 kvm-test\n-+ spare\n"),
        "{text}"
    );
    pg.client("postgres")
        .batch_execute("ALTER DATABASE edeploy SET log_statement = 'all'")
        .expect("log statements");
    let reads = || {
        pg.log()
            .matches("SELECT p.profile, p.installs_left")
            .count()
    };
    let before = reads();
    let got = outcome(&kept, &vm(41));
    assert!(got.starts_with("spare "), "{got}");
    assert_eq!(reads(), before, "{}", pg.log());
    fs::remove_file(&list).expect("rm");
    let got = outcome(&kept, &vm(42));
    assert!(got.starts_with("spare "), "{got}");
    assert!(reads() > before, "{}", pg.log());
    assert_eq!(fs::read_to_string(&list).expect("kept again"), text);

    // A preview reads it but does not write it (`edeploy-admin try` runs
    // as root, and the list is the web server user's).
    fs::remove_file(&list).expect("rm");
    decide::preview(&kept, &vm(44), &mut |_| {}).expect("preview");
    assert!(!list.exists());
    fs::write(&list, &text).expect("restore");

    // A symlink in its place is replaced, never written through.
    let outside = work.path().join("outside");
    fs::write(&outside, "keep").expect("write");
    fs::remove_file(&list).expect("rm");
    std::os::unix::fs::symlink(&outside, &list).expect("symlink");
    let got = outcome(&kept, &vm(43));
    assert!(got.starts_with("spare "), "{got}");
    assert_eq!(fs::read_to_string(&outside).expect("read"), "keep");
    assert!(fs::symlink_metadata(&list).expect("stat").is_file());
    assert_eq!(fs::read_to_string(&list).expect("kept"), text);
}
