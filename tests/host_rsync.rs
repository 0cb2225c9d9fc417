//! `edeploy` over the rsync transport, against a real `rsync --daemon`
//! on 127.0.0.1 with `[install]` and `[metadata]` modules (SPEC §11).
//! The host is a temporary directory installed from version 1; commands
//! that would touch the machine (`reboot`) are recorded by the seam.

#[path = "fixtures/host/support.rs"]
mod support;

use edeploy::exec::{CmdLine, Fake};
use edeploy::host::{self, itemize::What};
use std::fs;
use std::path::Path;
use support::*;

struct Setup {
    daemon: RsyncDaemon,
    root: tempfile::TempDir,
    rec: Fake,
}

fn setup() -> Setup {
    let daemon = RsyncDaemon::start(|_| {});
    let root = host_root(
        &format!("RSERV=127.0.0.1\nRSERV_PORT={}\n", daemon.port),
        &daemon.path().join("install/V1/base"),
    );
    let mut rec = Fake::new(["reboot"]);
    rec.real.env.push((
        "ORDER_LOG".into(),
        order_log(daemon.path()).into_os_string(),
    ));
    Setup { daemon, root, rec }
}

fn r(s: &Setup) -> &Path {
    s.root.path()
}

#[test]
fn list_shows_the_upgrade_targets() {
    let s = setup();
    assert_eq!(
        host::rsync::list(&s.rec, r(&s)).unwrap(),
        vec!["V2", "V3", "V4"]
    );
    let (code, out, err) = edeploy(r(&s), &["list"], &[]);
    assert_eq!((code, out.as_str()), (0, "V2\nV3\nV4\n"), "{err}");
    assert_eq!(edeploy(r(&s), &["version"], &[]).1, "V1\n");
    assert_eq!(edeploy(r(&s), &["role"], &[]).1, "base\n");
}

#[test]
fn upgrade_syncs_the_tree_and_keeps_the_host_data() {
    let s = setup();
    let root = r(&s);
    let mut out = Vec::new();
    let outcome = host::rsync::upgrade(&s.rec, &mut out, root, "V2").unwrap();
    let out = String::from_utf8(out).unwrap();

    // Changed, new and deleted files.
    assert_eq!(read(root, "etc/app.conf"), "version=2\n");
    assert_eq!(read(root, "etc/ssh/sshd_config"), "Port 2222\n");
    assert_eq!(read(root, "etc/new.conf"), "brand new\n");
    assert!(!root.join("etc/old.conf").exists());
    assert!(!root.join("olddir").exists());
    assert!(!root.join("usr/lib/libx.so.1").exists());
    assert_eq!(
        fs::read_link(root.join("usr/lib/libx.so")).unwrap(),
        Path::new("libx.so.2")
    );
    let change = |p: &str| outcome.changes.iter().find(|c| c.path == p).cloned();
    assert!(matches!(change("etc/new.conf").unwrap().what, What::New));
    assert!(matches!(
        change("etc/old.conf").unwrap().what,
        What::Deleted
    ));
    assert!(change("etc/app.conf").unwrap().content());
    assert!(out.contains("changed   /etc/app.conf"), "{out}");
    assert!(out.contains("deleted   /etc/old.conf"), "{out}");

    // Excluded paths are left alone, even host files the tree lacks.
    assert_eq!(read(root, "etc/ssh/ssh_host_key"), "this host's own key\n");
    assert_eq!(read(root, "var/lib/data/db"), "precious data\n");
    assert_eq!(read(root, "var/lib/data/journal"), "more data\n");

    // add_only: never replaced, added when missing.
    assert_eq!(read(root, "etc/myapp.local"), "customised here\n");
    assert_eq!(read(root, "etc/added.d/x"), "added when missing\n");
    assert_eq!(outcome.added, vec!["etc/added.d"]);

    // pre saw the old tree, post the new one, in that order.
    assert_eq!(
        fs::read_to_string(order_log(s.daemon.path())).unwrap(),
        "pre V1 V2 version=1\npost V1 V2 version=2\n"
    );
    // The version is recorded; the rest of the conf is kept.
    let conf = read(root, "var/lib/edeploy/conf");
    assert!(
        conf.starts_with("# written by edeploy-init\nROLE=base\nVERS=V2\n"),
        "{conf}"
    );
    assert!(conf.contains(&format!("RSERV_PORT={}", s.daemon.port)));
    assert_eq!(
        read(root, "etc/motd"),
        "Welcome to base\neDeploy role base version V2\n"
    );
    assert_eq!(read(root, "var/lib/edeploy/V2/exclude"), EXCLUDE);
    assert!(!outcome.reboot);
    assert!(s.rec.commands().is_empty(), "{:?}", s.rec.commands());
    assert_eq!(edeploy(root, &["version"], &[]).1, "V2\n");
    // From V2 nothing more is offered.
    assert!(host::rsync::list(&s.rec, root).unwrap().is_empty());
}

#[test]
fn post_exiting_100_reboots_through_the_seam() {
    let mut s = setup();
    s.rec.real.env.push(("POST_EXIT".into(), "100".into()));
    let mut out = Vec::new();
    let outcome = host::rsync::upgrade(&s.rec, &mut out, r(&s), "V2").unwrap();
    assert!(outcome.reboot);
    assert_eq!(s.rec.commands(), vec![CmdLine::argv(["reboot"])]);
    assert!(read(r(&s), "var/lib/edeploy/conf").contains("VERS=V2"));
}

#[test]
fn post_failing_fails_the_upgrade() {
    let mut s = setup();
    s.rec.real.env.push(("POST_EXIT".into(), "3".into()));
    let e = host::rsync::upgrade(&s.rec, &mut Vec::new(), r(&s), "V2")
        .unwrap_err()
        .to_string();
    assert!(e.contains("post script failed (exit status 3)"), "{e}");
    assert!(s.rec.commands().is_empty());
    assert!(read(r(&s), "var/lib/edeploy/conf").contains("VERS=V1"));
}

#[test]
fn refuses_without_exclude_or_with_empty_add_only() {
    let s = setup();
    let before = snapshot(r(&s));
    let e = host::rsync::upgrade(&s.rec, &mut Vec::new(), r(&s), "V3")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no exclude file; refusing to upgrade"), "{e}");
    let e = host::rsync::upgrade(&s.rec, &mut Vec::new(), r(&s), "V4")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("add_only file is missing or empty; refusing"),
        "{e}"
    );
    assert_eq!(snapshot(r(&s)), before);
    assert!(!order_log(s.daemon.path()).exists(), "pre must not run");
    assert!(read(r(&s), "var/lib/edeploy/conf").contains("VERS=V1"));
    // Through the binary: one line on stderr, exit status 2.
    let (code, _, err) = edeploy(r(&s), &["upgrade", "V3"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("edeploy: upgrade base V1 -> V3: the metadata has no exclude"),
        "{err}"
    );
}

#[test]
fn unknown_version_and_unreachable_daemon_are_named() {
    let s = setup();
    let e = host::rsync::upgrade(&s.rec, &mut Vec::new(), r(&s), "V9")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "no upgrade path from V1 to V9 for role base (available: V2, V3, V4)"
    );
    // A host whose own version the server does not know.
    let conf = read(r(&s), "var/lib/edeploy/conf").replace("VERS=V1", "VERS=V0");
    put(r(&s), "var/lib/edeploy/conf", &conf);
    let e = host::rsync::upgrade(&s.rec, &mut Vec::new(), r(&s), "V2")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "no upgrade path from V0 to V2 for role base: the server offers no upgrade from V0"
        ),
        "{e}"
    );

    let closed = free_port();
    let conf = read(r(&s), "var/lib/edeploy/conf").replace(
        &format!("RSERV_PORT={}", s.daemon.port),
        &format!("RSERV_PORT={closed}"),
    );
    put(r(&s), "var/lib/edeploy/conf", &conf);
    let before = snapshot(r(&s));
    let (code, _, err) = edeploy(r(&s), &["upgrade", "V2"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!(
            "edeploy: cannot reach the rsync server rsync://127.0.0.1:{closed}/"
        )),
        "{err}"
    );
    let (code, _, err) = edeploy(r(&s), &["list"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach the rsync server"), "{err}");
    assert_eq!(snapshot(r(&s)), before);
}

#[test]
fn test_upgrade_prints_the_changes_and_changes_nothing() {
    let s = setup();
    let before = snapshot(r(&s));
    let state_before: Vec<_> = fs::read_dir(r(&s).join("var/lib/edeploy"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let (code, out, err) = edeploy(r(&s), &["test-upgrade", "V2"], &[]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "would run pre",
        "changed   /etc/app.conf (sent, mtime)",
        "new       /etc/new.conf",
        "deleted   /etc/old.conf",
        "deleted   /olddir/",
        "add       /etc/added.d (add_only, missing here)",
        "would run post",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    assert!(!out.contains("ssh_host_key"), "{out}");
    assert!(!out.contains("myapp.local"), "{out}");
    assert!(!out.contains("var/lib/data"), "{out}");
    assert_eq!(snapshot(r(&s)), before);
    let state_after: Vec<_> = fs::read_dir(r(&s).join("var/lib/edeploy"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(state_before, state_after);
    assert!(!order_log(s.daemon.path()).exists(), "scripts must not run");
}

#[test]
fn verify_over_rsync_finds_a_same_size_same_mtime_change() {
    let s = setup();
    host::rsync::upgrade(&s.rec, &mut Vec::new(), r(&s), "V2").unwrap();
    // No manifest on this server: verify compares with the server's tree.
    let (code, out, err) = edeploy(r(&s), &["verify"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("base V2: no difference (compared with rsync://127.0.0.1:"),
        "{out}"
    );

    let hosts = r(&s).join("etc/hosts");
    let mtime = fs::metadata(&hosts).unwrap().modified().unwrap();
    fs::write(&hosts, "127.0.0.1 localhosT\n").unwrap();
    filetime::set_file_mtime(&hosts, filetime::FileTime::from_system_time(mtime)).unwrap();
    put(r(&s), "root/notes", "mine\n");
    fs::remove_file(r(&s).join("etc/new.conf")).unwrap();

    let (code, out, _) = edeploy(r(&s), &["verify"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("modified  /etc/hosts: content"), "{out}");
    assert!(out.contains("missing   /etc/new.conf"), "{out}");
    assert!(
        out.contains("extra     /root: and 1 entries below"),
        "{out}"
    );
    assert!(out.contains("base V2: 3 differences"), "{out}");
    let (_, json, _) = edeploy(r(&s), &["verify", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["differences"][0]["kind"], "modified");
}
