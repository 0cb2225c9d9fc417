//! HTTP delta upgrades against a real lighttpd on 127.0.0.1 serving the
//! packed `install/` directory as static files: the upgrade itself, an
//! interrupted apply finished by running it again, rollback to the exact
//! previous tree, and damaged deltas refused before anything changes.

#[path = "fixtures/host/support.rs"]
mod support;

use edeploy::archive::layout;
use edeploy::configure::Role;
use edeploy::exec::{CmdLine, Fake};
use edeploy::host;
use edeploy::init::{cmdline::Settings, install};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;
use support::*;

struct Setup {
    server: tempfile::TempDir,
    http: Lighttpd,
    root: tempfile::TempDir,
}

fn setup() -> Setup {
    let server = tempfile::tempdir().unwrap();
    server_files(server.path());
    pack_versions(server.path(), false);
    let http = Lighttpd::start(server.path());
    let root = host_root(
        &format!("HSERV=127.0.0.1\nHSERV_PORT={}\nHPATH=install\n", http.port),
        &server.path().join("install/V1/base"),
    );
    Setup { server, http, root }
}

fn env(s: &Setup) -> Vec<(String, String)> {
    vec![(
        "ORDER_LOG".to_string(),
        order_log(s.server.path()).display().to_string(),
    )]
}

fn run(s: &Setup, args: &[&str], extra: &[(&str, &str)]) -> (i32, String, String) {
    let e = env(s);
    let mut all: Vec<(&str, &str)> = e.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    all.extend_from_slice(extra);
    edeploy(s.root.path(), args, &all)
}

fn without_motd(mut snap: BTreeMap<String, String>) -> BTreeMap<String, String> {
    snap.remove("etc/motd");
    snap
}

#[test]
fn http_upgrade_applies_the_delta_and_verifies_clean() {
    let s = setup();
    let r = s.root.path();
    let delta = s.server.path().join("install/V2/base-V1-V2.delta");
    assert!(fs::metadata(&delta).unwrap().len() < 4096);
    let (code, out, err) = run(&s, &["upgrade", "--transport", "http", "V2"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("base is now at version V2"), "{out}");

    assert_eq!(read(r, "etc/app.conf"), "version=2\n");
    assert_eq!(read(r, "etc/ssh/sshd_config"), "Port 2222\n");
    assert_eq!(read(r, "etc/new.conf"), "brand new\n");
    assert!(!r.join("etc/old.conf").exists());
    assert!(!r.join("olddir").exists());
    assert!(!r.join("usr/lib/libx.so.1").exists());
    assert_eq!(
        fs::read_link(r.join("usr/lib/libx.so")).unwrap(),
        Path::new("libx.so.2")
    );
    // Excluded and add_only paths, as over rsync.
    assert_eq!(read(r, "etc/ssh/ssh_host_key"), "this host's own key\n");
    assert_eq!(read(r, "var/lib/data/db"), "precious data\n");
    assert_eq!(read(r, "var/lib/data/journal"), "more data\n");
    assert_eq!(read(r, "etc/myapp.local"), "customised here\n");
    assert_eq!(read(r, "etc/added.d/x"), "added when missing\n");
    assert_eq!(
        fs::read_to_string(order_log(s.server.path())).unwrap(),
        "pre V1 V2 version=1\npost V1 V2 version=2\n"
    );
    assert!(read(r, "var/lib/edeploy/conf").contains("\nVERS=V2\n"));
    assert!(read(r, "etc/motd").ends_with("eDeploy role base version V2\n"));
    assert!(!r.join("var/lib/edeploy/journal").exists());
    assert!(!r.join("var/lib/edeploy/staging/V2").exists());
    // Unchanged files keep their V1 bytes but take V2's mtime.
    let (code, out, err) = run(&s, &["verify"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("base V2: no difference"), "{out}");
}

#[test]
fn post_exiting_100_reboots_through_the_seam() {
    let s = setup();
    let mut rec = Fake::new(["reboot"]);
    rec.real
        .env
        .push(("ORDER_LOG".into(), order_log(s.server.path()).into()));
    rec.real.env.push(("POST_EXIT".into(), "100".into()));
    let o = host::upgrade::upgrade(&rec, &mut Vec::new(), s.root.path(), "V2").unwrap();
    assert!(o.reboot);
    assert_eq!(rec.commands(), vec![CmdLine::argv(["reboot"])]);
}

#[test]
fn an_interrupted_upgrade_completes_when_run_again() {
    let s = setup();
    let r = s.root.path();
    // The reference: the same upgrade on another host, in one go.
    let other = host_root(
        &format!("HSERV=127.0.0.1\nHSERV_PORT={}\n", s.http.port),
        &s.server.path().join("install/V1/base"),
    );
    let e = env(&s);
    let e: Vec<(&str, &str)> = e.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let (code, _, err) = edeploy(other.path(), &["upgrade", "--transport", "http", "V2"], &e);
    assert_eq!(code, 0, "{err}");

    let (code, _, err) = run(
        &s,
        &["upgrade", "--transport", "http", "V2"],
        &[("EDEPLOY_TEST_ABORT_AFTER", "4")],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("stopped by EDEPLOY_TEST_ABORT_AFTER after 4 operations"),
        "{err}"
    );
    assert!(r.join("var/lib/edeploy/journal").is_file());
    assert!(read(r, "var/lib/edeploy/conf").contains("VERS=V1"));
    // Half-way: some deletions done, nothing new yet.
    assert!(!r.join("usr/lib/libx.so.1").exists());
    assert!(!r.join("etc/new.conf").exists());
    // Another target or the rsync transport must wait.
    let (code, _, err) = run(&s, &["upgrade", "--transport", "http", "V3"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("an upgrade of base from V1 to V2 was interrupted"),
        "{err}"
    );
    let (code, _, err) = run(&s, &["upgrade", "V2"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("an HTTP upgrade was interrupted"), "{err}");

    // Even with the server gone, the staged delta finishes the job.
    drop(s.http);
    let (code, out, err) = edeploy(r, &["upgrade", "--transport", "http", "V2"], &e);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("finishing the interrupted upgrade of base from V1 to V2"),
        "{out}"
    );
    assert!(!r.join("var/lib/edeploy/journal").exists());
    assert_eq!(
        without_motd(snapshot(r)),
        without_motd(snapshot(other.path()))
    );
    let (code, out, _) = edeploy(r, &["verify"], &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn rollback_restores_the_previous_tree_exactly() {
    let s = setup();
    let r = s.root.path();
    put(r, "var/lib/edeploy/V1/exclude", EXCLUDE);
    put(r, "var/lib/edeploy/V1/add_only", ADD_ONLY);
    let before = without_motd(snapshot(r));
    let (code, out, err) = run(&s, &["verify"], &[]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, _, err) = run(&s, &["upgrade", "--transport", "http", "V2"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(without_motd(snapshot(r)), before);
    let (code, out, err) = run(&s, &["rollback"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("base is back at version V1"), "{out}");
    assert_eq!(without_motd(snapshot(r)), before);
    assert!(read(r, "var/lib/edeploy/conf").contains("VERS=V1"));
    assert!(read(r, "etc/motd").ends_with("eDeploy role base version V1\n"));
    let (code, out, _) = run(&s, &["verify"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("base V1: no difference"), "{out}");
    // Nothing left to roll back.
    let (code, _, err) = run(&s, &["rollback"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("nothing to roll back"), "{err}");

    // An interrupted upgrade rolls back too.
    let (code, _, _) = run(
        &s,
        &["upgrade", "--transport", "http", "V2"],
        &[("EDEPLOY_TEST_ABORT_AFTER", "6")],
    );
    assert_eq!(code, 2);
    let (code, out, err) = run(&s, &["rollback"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(without_motd(snapshot(r)), before);
    assert!(!r.join("var/lib/edeploy/journal").exists());
    let (code, out, _) = run(&s, &["verify"], &[]);
    assert_eq!(code, 0, "{out}");
}

/// Rewrites a delta with the bytes of one member replaced, as a valid
/// archive (only edeploy's checks can see it).
fn tamper(delta: &Path, member: &str, edit: impl Fn(Vec<u8>) -> Vec<u8>) {
    let mut data = Vec::new();
    fs::File::open(delta)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&data[..]));
    let out = fs::File::create(delta).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        out,
        flate2::Compression::default(),
    ));
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        if name == member {
            body = edit(body);
        }
        let mut h = e.header().clone();
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, &name, &body[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

#[test]
fn a_damaged_delta_is_refused_with_nothing_changed() {
    let s = setup();
    let r = s.root.path();
    let delta = s.server.path().join("install/V2/base-V1-V2.delta");
    let good = fs::read(&delta).unwrap();
    let before = snapshot(r);
    let conf = read(r, "var/lib/edeploy/conf");

    // Same size, valid archive, wrong bytes.
    tamper(&delta, "files/etc/app.conf", |_| b"version=X\n".to_vec());
    let (code, _, err) = run(&s, &["upgrade", "--transport", "http", "V2"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("refusing the delta; nothing was changed"),
        "{err}"
    );
    assert!(
        err.contains("/etc/app.conf: its bytes do not have the manifest's SHA-256"),
        "{err}"
    );

    // An index naming a path outside the tree.
    fs::write(&delta, &good).unwrap();
    tamper(&delta, "delta.json", |b| {
        String::from_utf8(b)
            .unwrap()
            .replacen(
                "\"deleted\": [",
                "\"deleted\": [\n    \"../../outside\",",
                1,
            )
            .into_bytes()
    });
    let (code, _, err) = run(&s, &["upgrade", "--transport", "http", "V2"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("not a plain path inside the tree"), "{err}");

    // A flipped byte in the compressed stream.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    fs::write(&delta, &bad).unwrap();
    let (code, _, err) = run(&s, &["upgrade", "--transport", "http", "V2"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("refusing the delta; nothing was changed"),
        "{err}"
    );

    // Cut short (the server may notice the new size or not: either the
    // transfer breaks or the archive is refused).
    fs::write(&delta, &good[..good.len() / 3]).unwrap();
    let (code, _, err) = run(&s, &["upgrade", "--transport", "http", "V2"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("refusing the delta") || err.contains("the transfer"),
        "{err}"
    );
    assert!(!r
        .join("var/lib/edeploy/download/.base-V1-V2.delta.edeploy-new")
        .exists());

    assert_eq!(snapshot(r), before);
    assert_eq!(read(r, "var/lib/edeploy/conf"), conf);
    assert!(!r.join("var/lib/edeploy/journal").exists());
    assert!(!r.join("var/lib/edeploy/staging/V2").exists());
    assert!(!order_log(s.server.path()).exists(), "pre must not run");

    // The good delta still works afterwards.
    fs::write(&delta, &good).unwrap();
    let (code, out, err) = run(&s, &["upgrade", "--transport", "http", "V2"], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn missing_delta_and_unreachable_server_are_named() {
    let s = setup();
    let r = s.root.path();
    let before = snapshot(r);
    let (code, _, err) = run(&s, &["upgrade", "--transport", "http", "V9"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("edeploy: no delta from V1 to V9 for role base on the server"),
        "{err}"
    );
    assert!(
        err.contains("/install/V9/base-V1-V9.delta: not found on the server (HTTP 404)"),
        "{err}"
    );
    let port = s.http.port;
    drop(s.http);
    let (code, _, err) = edeploy(r, &["upgrade", "--transport", "http", "V2"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!(
            "edeploy: cannot reach the HTTP server for http://127.0.0.1:{port}/install/V2/base-V1-V2.delta"
        )),
        "{err}"
    );
    assert_eq!(snapshot(r), before);
}

/// The installer keeps an IPv6 server in brackets, as the kernel command
/// line must give it (`HSERV=[fd00::1]`), and writes it so into
/// `/var/lib/edeploy/conf`; `edeploy` reads that file and builds its URLs
/// with the brackets once, never `[[fd00::1]]`.
#[test]
fn an_ipv6_server_from_the_installer_conf_is_bracketed_once() {
    let s = Settings::parse("SERV=[fd00::1] HSERV=[fd00::1]").expect("cmdline");
    let role = Role {
        role: "base".into(),
        version: "V1".into(),
        disk: "/dev/vda".into(),
    };
    let root = tempfile::tempdir().unwrap();
    install::write_conf(root.path(), &s, &role).unwrap();
    let conf = host::conf::Conf::load(root.path()).unwrap();
    assert_eq!(conf.get("HSERV"), Some("[fd00::1]"));

    // The HTTP transport's delta URL.
    let (h, port, hpath) = conf.http_server().unwrap();
    let want = "http://[fd00::1]:80/install/V2/base-V1-V2.delta";
    assert_eq!(
        edeploy::archive::layout::http_url(&h, port, &format!("{hpath}/V2/base-V1-V2.delta")),
        want
    );
    assert_eq!(
        layout::delta_url(&h, port, &hpath, "base", "V1", "V2"),
        want
    );

    // `edeploy list` asks the rsync daemon (RSERV falls back to SERV).
    let server = host::rsync::Server::from_conf(&conf).unwrap();
    assert_eq!(server.base(), "rsync://[fd00::1]:873/");
    let rec = Fake::new(["rsync"]);
    assert!(host::rsync::list(&rec, root.path()).unwrap().is_empty());
    let ran: Vec<String> = rec.commands().iter().map(|c| c.display()).collect();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert!(
        ran[0].ends_with(" rsync://[fd00::1]:873/metadata/V1/base/"),
        "{}",
        ran[0]
    );
}

/// The upgrade path metadata of a hand-made delta: nothing left out of
/// it, the usual `exclude` and `add_only`, and a `pre` that leaves a
/// marker.
struct Hostile {
    meta: std::path::PathBuf,
}

impl edeploy::archive::delta::Selection for Hostile {
    fn skipped(&self) -> impl Fn(&str, bool) -> bool + '_ {
        |_, _| false
    }
    fn is_add_only(&self, _: &str) -> bool {
        false
    }
    fn meta_dir(&self) -> &Path {
        &self.meta
    }
}

/// Writes the delta V1 → `to` of role base into the server's `install/`,
/// from the manifests of `from_tree` and `to_tree` (`edit` changes TO's
/// manifest after the scan, as a hostile packer could), with a `pre`
/// that creates `marker`.
fn hand_made_delta(
    s: &Setup,
    to: &str,
    from_tree: &Path,
    to_tree: &Path,
    edit: impl Fn(&mut Vec<edeploy::archive::manifest::Entry>),
    marker: &Path,
) {
    use edeploy::archive::manifest::{KeepAll, Manifest};
    let from = Manifest::build(from_tree, "base", "V1", &KeepAll).unwrap();
    let mut target = Manifest::build(to_tree, "base", to, &KeepAll).unwrap();
    edit(&mut target.entries);
    target.entries.sort_by(|a, b| a.path.cmp(&b.path));
    let meta = s.server.path().join(format!("hostile-meta-{to}"));
    fs::create_dir_all(&meta).unwrap();
    put(&meta, "exclude", EXCLUDE);
    put(&meta, "add_only", ADD_ONLY);
    let pre = meta.join("pre");
    fs::write(&pre, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
    fs::set_permissions(&pre, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dest = s
        .server
        .path()
        .join(format!("install/{to}/base-V1-{to}.delta"));
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    edeploy::archive::delta::write(&from, &target, to_tree, &Hostile { meta }, &dest).unwrap();
}

/// The refusal every hostile delta below must end in: exit 2, the
/// sentence, the host still at V1 with nothing changed, `pre` never run,
/// nothing left to roll back, and the outside directory as it was.
fn assert_refused(s: &Setup, to: &str, sentence: &str, marker: &Path, outside: &Path) {
    let r = s.root.path();
    let before = snapshot(r);
    let (code, out, err) = run(s, &["upgrade", "--transport", "http", to], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(sentence), "{err}");
    assert!(
        err.contains("refusing the delta; nothing was changed"),
        "{err}"
    );
    assert!(!marker.exists(), "pre must not run");
    assert_eq!(snapshot(r), before);
    assert!(read(r, "var/lib/edeploy/conf").contains("\nVERS=V1\n"));
    assert!(!r.join("var/lib/edeploy/journal").exists());
    let (code, _, err) = run(s, &["rollback"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("nothing to roll back"), "{err}");
    let left: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["pwn"]);
    assert_eq!(
        fs::read_to_string(outside.join("pwn")).unwrap(),
        "precious\n"
    );
}

/// A delta that makes `x` a symlink to a directory outside the root and
/// then puts `x/pwn`. Before the path checks, the upgrade ran `pre`, wrote
/// `/outside/pwn` over the file there, and `rollback` then deleted it.
#[test]
fn a_delta_writing_through_its_own_symlink_is_refused_before_pre() {
    let s = setup();
    let outside = tempfile::tempdir().unwrap();
    put(outside.path(), "pwn", "precious\n");
    let marker = s.server.path().join("pre-ran");
    let v1 = s.server.path().join("install/V1/base");
    let to_tree = s.server.path().join("hostile-V5");
    copy_tree(&v1, &to_tree);
    put(&to_tree, "x/pwn", "pwned\n");
    let link = outside.path().display().to_string();
    hand_made_delta(
        &s,
        "V5",
        &v1,
        &to_tree,
        |entries| {
            for e in entries.iter_mut().filter(|e| e.path == "x") {
                e.kind = edeploy::archive::manifest::Kind::Symlink;
                e.mode = 0o777;
                e.target = Some(link.clone());
            }
        },
        &marker,
    );
    assert_refused(
        &s,
        "V5",
        "/x/pwn: x is a symlink; an archive may not write through it",
        &marker,
        outside.path(),
    );
}

/// The host's tree holds `etc/foo → /outside` where V1 has a directory,
/// and the delta puts `etc/foo/bar`. Before, `pre` ran and the file went
/// to `/outside/bar`.
#[test]
fn a_delta_writing_through_a_symlink_of_the_host_is_refused_before_pre() {
    let s = setup();
    let outside = tempfile::tempdir().unwrap();
    put(outside.path(), "pwn", "precious\n");
    let marker = s.server.path().join("pre-ran");
    let from_tree = s.server.path().join("hostile-V1");
    copy_tree(&s.server.path().join("install/V1/base"), &from_tree);
    fs::create_dir(from_tree.join("etc/foo")).unwrap();
    let to_tree = s.server.path().join("hostile-V6");
    copy_tree(&from_tree, &to_tree);
    put(&to_tree, "etc/foo/bar", "through the link\n");
    let r = s.root.path();
    std::os::unix::fs::symlink(outside.path(), r.join("etc/foo")).unwrap();
    hand_made_delta(&s, "V6", &from_tree, &to_tree, |_| {}, &marker);
    assert_refused(
        &s,
        "V6",
        "/etc/foo/bar: etc/foo is a symlink; an archive may not write through it",
        &marker,
        outside.path(),
    );
}
