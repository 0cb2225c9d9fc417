//! Signed role versions on installed hosts: `edeploy pack --sign-key`
//! and `edeploy sign-metadata` on the operator's side; on the host, the
//! keys of `ROOT/etc/edeploy/trusted.d/` checked against every delta
//! (real lighttpd), every metadata file and manifest (real rsync daemon),
//! and the manifest `verify` compares with. Every refusal names the
//! artifact and the key, and leaves the host's root exactly as it was;
//! `pre` never runs. One key pair is made by Debian's `minisign` CLI, and
//! the CLI checks the signatures we write.

#[path = "fixtures/host/support.rs"]
mod support;

use edeploy::archive::layout;
use edeploy::host;
use edeploy::host::pack::{pack_signed, PackOptions};
use edeploy::host::signed::HostTrust;
use edeploy::trust::{signature_path, SigningKey};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

/// A new key pair: the key and its public key file's text.
fn keypair() -> (SigningKey, String) {
    let (key, public, _) = SigningKey::generate().expect("a key pair");
    (key, public)
}

/// Puts the operator's public key in both trees, as a role ships it
/// (`etc/edeploy/trusted.d/operator.pub`, so that `verify` is clean).
fn ship_key(dir: &Path, public: &str) {
    for (v, t) in [("V1", V1_TIME), ("V2", V2_TIME)] {
        let tree = dir.join("install").join(v).join("base");
        trust(&tree, public);
        stamp(&tree.join("etc/edeploy"), t);
    }
}

/// Packs V1 and V2 (and the V1 → V2 delta, its metadata signed) under
/// `dir`, every file signed by `key`, the trees holding its public key.
fn pack_signed_versions(dir: &Path, key: &SigningKey, archive: bool) {
    ship_key(dir, &key.public_text().expect("public key"));
    let install = dir.join("install");
    let opts = PackOptions {
        archive,
        ..PackOptions::default()
    };
    let v1 = install.join("V1/base");
    pack_signed(
        &mut Vec::new(),
        &v1,
        "base",
        "V1",
        &install,
        &opts,
        Some(key),
    )
    .expect("pack V1");
    let opts = PackOptions {
        archive,
        from: vec!["V1".into()],
        metadata: Some(dir.join("metadata")),
    };
    let v2 = install.join("V2/base");
    pack_signed(
        &mut Vec::new(),
        &v2,
        "base",
        "V2",
        &install,
        &opts,
        Some(key),
    )
    .expect("pack V2");
}

/// Trusts the public key `public` on the host at `root`.
fn trust(root: &Path, public: &str) {
    put(root, "etc/edeploy/trusted.d/operator.pub", public);
}

/// Everything under `root`, eDeploy's state included: kind, mode, owner,
/// mtime (not of directories: creating and removing an entry changes
/// them) and the SHA-256 of the content or the link target.
fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.expect("walk");
        let rel = e.path().strip_prefix(root).expect("under root");
        let md = fs::symlink_metadata(e.path()).expect("lstat");
        let what = if md.file_type().is_symlink() {
            format!("l {:?}", fs::read_link(e.path()).expect("readlink"))
        } else if md.is_dir() {
            format!("d {:o} {}:{}", md.mode(), md.uid(), md.gid())
        } else {
            let data = fs::read(e.path()).expect("read");
            format!(
                "f {:o} {}:{} {} {:x}",
                md.mode(),
                md.uid(),
                md.gid(),
                md.mtime(),
                Sha256::digest(&data)
            )
        };
        out.insert(rel.to_string_lossy().into_owned(), what);
    }
    out
}

fn flip_byte(path: &Path) {
    let mut data = fs::read(path).expect("read");
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    fs::write(path, data).expect("write");
}

/// The three ways a signed artifact can be bad, each undone afterwards:
/// a flipped byte, no signature, a signature by a key nobody trusts.
/// `check` gets the case's name and the id of the key the refusal must
/// name.
fn each_bad_signature(
    file: &Path,
    trusted: &SigningKey,
    comment: &[(&str, &str)],
    mut check: impl FnMut(&str, String),
) {
    let sig = signature_path(file);
    let good = fs::read(file).expect("read");
    let good_sig = fs::read(&sig).expect("the signature is there");

    flip_byte(file);
    check("a flipped byte", trusted.id().to_string());
    fs::write(file, &good).expect("restore");

    fs::remove_file(&sig).expect("rm");
    check("no signature", trusted.id().to_string());

    let (other, _) = keypair();
    host::signed::sign_file(&other, file, comment).expect("signed by another key");
    check("an untrusted key", other.id().to_string());
    fs::write(&sig, &good_sig).expect("restore");
}

struct Http {
    server: tempfile::TempDir,
    http: Lighttpd,
    root: tempfile::TempDir,
    key: SigningKey,
}

fn http_setup() -> Http {
    let (key, _) = keypair();
    let server = tempfile::tempdir().expect("tempdir");
    server_files(server.path());
    pack_signed_versions(server.path(), &key, false);
    let http = Lighttpd::start(server.path());
    let root = host_root(
        &format!("HSERV=127.0.0.1\nHSERV_PORT={}\n", http.port),
        &server.path().join("install/V1/base"),
    );
    Http {
        server,
        http,
        root,
        key,
    }
}

fn run_http(s: &Http, args: &[&str], extra: &[(&str, &str)]) -> (i32, String, String) {
    let log = order_log(s.server.path()).display().to_string();
    let mut env = vec![("ORDER_LOG", log.as_str())];
    env.extend_from_slice(extra);
    edeploy(s.root.path(), args, &env)
}

#[test]
fn a_signed_delta_upgrades_and_verify_checks_the_manifest_signature() {
    let s = http_setup();
    let r = s.root.path();
    // The local manifest of V1 and the key came with the tree.
    assert!(r
        .join("var/lib/edeploy/manifests/base-V1.manifest.minisig")
        .is_file());
    assert!(r.join("etc/edeploy/trusted.d/operator.pub").is_file());

    let (code, out, err) = run_http(&s, &["upgrade", "--transport", "http", "V2"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "base-V1-V2.delta: signature by key {} is good",
            s.key.id()
        )),
        "{out}"
    );
    assert!(!err.contains("WARNING"), "{err}");
    assert_eq!(read(r, "etc/app.conf"), "version=2\n");
    let installed = r.join("var/lib/edeploy/manifests/base-V2.manifest");
    assert!(signature_path(&installed).is_file());
    let (code, out, err) = run_http(&s, &["verify"], &[]);
    assert_eq!(code, 0, "{out}{err}");

    // verify refuses a manifest whose signature does not match.
    each_bad_signature(&installed, &s.key, &[], |case, key| {
        let (code, out, err) = run_http(&s, &["verify"], &[]);
        assert_eq!(code, 2, "{case}: {out}{err}");
        assert!(
            err.contains("refusing to verify against this manifest")
                && err.contains(&installed.display().to_string())
                && err.contains(&key),
            "{case}: {err}"
        );
    });
}

#[test]
fn a_bad_delta_signature_is_refused_before_anything_is_written() {
    let s = http_setup();
    let r = s.root.path();
    let delta = s.server.path().join("install/V2/base-V1-V2.delta");
    let url = format!(
        "http://127.0.0.1:{}/install/V2/base-V1-V2.delta",
        s.http.port
    );
    let before = listing(r);
    each_bad_signature(&delta, &s.key, &[], |case, key| {
        let (code, out, err) = run_http(&s, &["upgrade", "--transport", "http", "V2"], &[]);
        assert_eq!(code, 2, "{case}: {out}{err}");
        assert!(
            err.contains("refusing the delta; nothing was changed")
                && err.contains(&url)
                && err.contains(&key),
            "{case}: {err}"
        );
        assert_eq!(listing(r), before, "{case}: the root changed");
        assert!(!order_log(s.server.path()).exists(), "{case}: pre ran");
    });
    // The good delta still goes through.
    let (code, out, err) = run_http(&s, &["upgrade", "--transport", "http", "V2"], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Rewrites the delta's index with `from_manifest` all zeros, as a valid
/// archive, and gives it a `pre` that creates `marker`.
fn hostile_delta(delta: &Path, marker: &Path) {
    let mut data = Vec::new();
    fs::File::open(delta)
        .expect("open")
        .read_to_end(&mut data)
        .expect("read");
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&data[..]));
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        fs::File::create(delta).expect("create"),
        flate2::Compression::default(),
    ));
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("name").to_string_lossy().into_owned();
        let mut body = Vec::new();
        e.read_to_end(&mut body).expect("read");
        if name == "delta.json" {
            let mut idx: serde_json::Value = serde_json::from_slice(&body).expect("json");
            idx["from_manifest"] = "0".repeat(64).into();
            body = serde_json::to_vec_pretty(&idx).expect("json");
        } else if name == "meta/pre" {
            body = format!("#!/bin/sh\ntouch '{}'\n", marker.display()).into_bytes();
        }
        let mut h = e.header().clone();
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, &name, &body[..]).expect("append");
    }
    b.into_inner().expect("tar").finish().expect("gzip");
}

#[test]
fn a_hostile_delta_from_nowhere_is_refused_and_its_pre_never_runs() {
    let s = http_setup();
    let r = s.root.path();
    let delta = s.server.path().join("install/V2/base-V1-V2.delta");
    let marker = s.server.path().join("pre-ran");
    hostile_delta(&delta, &marker);
    let before = listing(r);
    let refused = |what: &str, sentence: &str| {
        let (code, out, err) = run_http(&s, &["upgrade", "--transport", "http", "V2"], &[]);
        assert_eq!(code, 2, "{what}: {out}{err}");
        assert!(err.contains(sentence), "{what}: {err}");
        assert!(
            err.contains("refusing the delta; nothing was changed"),
            "{what}: {err}"
        );
        assert!(!marker.exists(), "{what}: pre ran");
        assert_eq!(listing(r), before, "{what}: the root changed");
    };
    // Unsigned (the hand-made delta has the old signature beside it, which
    // no longer matches; without it, nothing signs it at all).
    refused(
        "the old signature",
        &format!(
            "the signature by key {} does not match these bytes",
            s.key.id()
        ),
    );
    fs::remove_file(signature_path(&delta)).expect("rm");
    refused(
        "unsigned",
        &format!(
            "no signature (http://127.0.0.1:{}/install/V2/base-V1-V2.delta.minisig)",
            s.http.port
        ),
    );
    // Signed by a key the host does not trust.
    let (other, _) = keypair();
    other.sign_file(&delta).expect("sign");
    refused(
        "an untrusted key",
        &format!(
            "signed by key {}, which is not trusted here (trusted: {})",
            other.id(),
            s.key.id()
        ),
    );
    // Even signed by the trusted key, it does not start from this host.
    s.key.sign_file(&delta).expect("sign");
    refused(
        "another starting point",
        &format!(
            "base-V1-V2.delta (signed by key {}): a delta from the manifest 000000000000…, \
             but this host's",
            s.key.id()
        ),
    );
}

#[test]
fn unsigned_deltas_pass_with_a_warning_when_signatures_are_not_required() {
    let s = http_setup();
    let r = s.root.path();
    let delta = s.server.path().join("install/V2/base-V1-V2.delta");
    fs::remove_file(signature_path(&delta)).expect("rm");
    // Through the environment, then through the conf file.
    let (code, out, err) = run_http(
        &s,
        &["upgrade", "--transport", "http", "V2"],
        &[("EDEPLOY_REQUIRE_SIGNATURES", "0")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("base-V1-V2.delta: accepted WITHOUT a signature (REQUIRE_SIGNATURES = false)"),
        "{err}"
    );
    let (code, out, err) = run_http(&s, &["rollback"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let conf = read(r, "var/lib/edeploy/conf");
    put(
        r,
        "var/lib/edeploy/conf",
        &format!("{conf}REQUIRE_SIGNATURES=false\n"),
    );
    let (code, out, err) = run_http(&s, &["upgrade", "--transport", "http", "V2"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("WARNING"), "{err}");
    // A value that is not yes or no is named.
    put(
        r,
        "var/lib/edeploy/conf",
        &format!("{conf}REQUIRE_SIGNATURES=perhaps\n"),
    );
    let (code, _, err) = run_http(&s, &["verify"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("REQUIRE_SIGNATURES=perhaps is not a yes/no value"),
        "{err}"
    );
}

struct Rsync {
    daemon: RsyncDaemon,
    root: tempfile::TempDir,
    key: SigningKey,
}

fn rsync_setup() -> Rsync {
    let (key, _) = keypair();
    let daemon = RsyncDaemon::start(|d| pack_signed_versions(d, &key, false));
    let root = host_root(
        &format!("RSERV=127.0.0.1\nRSERV_PORT={}\n", daemon.port),
        &daemon.path().join("install/V1/base"),
    );
    Rsync { daemon, root, key }
}

fn run_rsync(s: &Rsync, args: &[&str]) -> (i32, String, String) {
    let log = order_log(s.daemon.path()).display().to_string();
    edeploy(s.root.path(), args, &[("ORDER_LOG", log.as_str())])
}

#[test]
fn a_signed_rsync_upgrade_checks_the_synced_tree() {
    let s = rsync_setup();
    let r = s.root.path();
    let (code, out, err) = run_rsync(&s, &["upgrade", "V2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("WARNING"), "{err}");
    assert!(out.contains("the synced tree matches rsync://"), "{out}");
    assert!(
        out.contains(&format!("signature by key {} is good", s.key.id())),
        "{out}"
    );
    assert!(signature_path(&r.join("var/lib/edeploy/manifests/base-V2.manifest")).is_file());
    for f in ["exclude", "add_only", "pre", "post"] {
        assert!(
            r.join(format!("var/lib/edeploy/V2/{f}.minisig")).is_file(),
            "{f}"
        );
    }
    let (code, out, err) = run_rsync(&s, &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_synced_tree_unlike_its_signed_manifest_stops_before_post() {
    let s = rsync_setup();
    let r = s.root.path();
    // The server's tree changed after it was packed and signed.
    let served = s.daemon.path().join("install/V2/base/etc/app.conf");
    fs::write(&served, "version=X\n").expect("write");
    let t = filetime::FileTime::from_unix_time(V2_TIME, 0);
    filetime::set_file_times(&served, t, t).expect("mtime");
    let (code, out, err) = run_rsync(&s, &["upgrade", "V2"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("INCONSISTENT TREE"), "{err}");
    assert!(err.contains("1 difference: /etc/app.conf"), "{err}");
    assert!(
        err.contains("post was not run and base is still recorded at V1"),
        "{err}"
    );
    assert!(
        out.contains("modified  /etc/app.conf: content differs"),
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(order_log(s.daemon.path())).expect("order log"),
        "pre V1 V2 version=1\n",
        "post must not run"
    );
    assert!(read(r, "var/lib/edeploy/conf").contains("\nVERS=V1\n"));
    assert!(!r
        .join("var/lib/edeploy/manifests/base-V2.manifest")
        .exists());
    // V1 synced back and checked against the host's own manifest of V1.
    assert!(
        err.contains("the tree was synced back from rsync://127.0.0.1:")
            && err.contains("matches this host's manifest of V1 again"),
        "{err}"
    );
    assert_eq!(read(r, "etc/app.conf"), "version=1\n");
    assert_eq!(read(r, "etc/old.conf"), "going away\n");
    assert!(!r.join("etc/new.conf").exists());
    assert_eq!(read(r, "etc/ssh/ssh_host_key"), "this host's own key\n");

    // Where signatures are not required, the upgrade goes on, as it did
    // before, with the warning.
    let log = order_log(s.daemon.path()).display().to_string();
    let (code, out, err) = edeploy(
        r,
        &["upgrade", "V2"],
        &[("ORDER_LOG", &log), ("EDEPLOY_REQUIRE_SIGNATURES", "no")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("WARNING: INCONSISTENT TREE")
            && err.contains("(1 difference: /etc/app.conf); going on"),
        "{err}"
    );
    assert!(read(r, "var/lib/edeploy/conf").contains("\nVERS=V2\n"));
    let (code, out, _) = edeploy(r, &["verify"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("modified  /etc/app.conf"), "{out}");
}

/// A signed file of the server, its URL, and the trusted comment's own
/// fields.
type Artifact = (PathBuf, String, Vec<(&'static str, &'static str)>);

#[test]
fn bad_metadata_or_manifest_signatures_are_refused_over_rsync() {
    let s = rsync_setup();
    let r = s.root.path();
    let port = s.daemon.port;
    let before = listing(r);
    let mut artifacts: Vec<Artifact> = Vec::new();
    for f in ["exclude", "add_only", "pre", "post"] {
        artifacts.push((
            s.daemon.path().join("metadata/V1/base/V2").join(f),
            format!("rsync://127.0.0.1:{port}/metadata/V1/base/V2/{f}"),
            vec![("upgrade", "V1/base/V2")],
        ));
    }
    artifacts.push((
        s.daemon.path().join("install/V2/base-V2.manifest"),
        format!("rsync://127.0.0.1:{port}/install/V2/base-V2.manifest"),
        vec![],
    ));
    for (file, what, comment) in &artifacts {
        each_bad_signature(file, &s.key, comment, |case, key| {
            let (code, out, err) = run_rsync(&s, &["upgrade", "V2"]);
            assert_eq!(code, 2, "{what}, {case}: {out}{err}");
            assert!(
                err.contains("refusing the upgrade; nothing was changed")
                    && err.contains(what.as_str())
                    && err.contains(&key),
                "{what}, {case}: {err}"
            );
            assert_eq!(listing(r), before, "{what}, {case}: the root changed");
            assert!(
                !order_log(s.daemon.path()).exists(),
                "{what}, {case}: pre ran"
            );
        });
    }
    // A `pre` signed for another upgrade path is not this one's.
    let pre = s.daemon.path().join("metadata/V1/base/V2/pre");
    host::signed::sign_file(&s.key, &pre, &[("upgrade", "V1/base/V3")]).expect("sign");
    let (code, _, err) = run_rsync(&s, &["upgrade", "V2"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("was made for the upgrade path V1/base/V3, not V1/base/V2"),
        "{err}"
    );
    // test-upgrade checks the same signatures.
    let (code, _, err) = run_rsync(&s, &["test-upgrade", "V2"]);
    assert_eq!(code, 2);
    assert!(err.contains("not V1/base/V2"), "{err}");
    assert_eq!(listing(r), before);
    // A `pre` that is a symlink (to a signed file) is not a script.
    fs::remove_file(&pre).expect("rm");
    std::os::unix::fs::symlink("post", &pre).expect("symlink");
    let (code, _, err) = run_rsync(&s, &["upgrade", "V2"]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!(
            "rsync://127.0.0.1:{port}/metadata/V1/base/V2/pre: not a regular file"
        )) && err.contains(&s.key.id().to_string()),
        "{err}"
    );
    assert_eq!(listing(r), before);
    assert!(!order_log(s.daemon.path()).exists(), "pre ran");
}

/// The archive is checked by the installer; here, that what `pack` writes
/// beside it refuses the same three ways with a sentence naming it and
/// the key.
#[test]
fn the_archive_signature_refuses_a_flipped_byte_a_missing_signature_and_another_key() {
    let (key, public) = keypair();
    let server = tempfile::tempdir().expect("tempdir");
    server_files(server.path());
    pack_signed_versions(server.path(), &key, true);
    let root = tempfile::tempdir().expect("tempdir");
    trust(root.path(), &public);
    let conf = host::conf::Conf::parse("ROLE=base\nVERS=V1\n");
    let ht = HostTrust::load(root.path(), &conf).expect("trust");
    let archive = layout::repo_archive(&server.path().join("install"), "base", "V2");
    let what = archive.display().to_string();
    assert!(ht.check_file(&archive, &what).expect("good").is_some());
    each_bad_signature(&archive, &key, &[], |case, id| {
        let e = ht.check_file(&archive, &what).expect_err(case).to_string();
        assert!(e.contains(&what) && e.contains(&id), "{case}: {e}");
    });
}

/// `minisign -G -W -p PUB -s SEC` in `dir`.
fn minisign_keys(dir: &Path) -> (PathBuf, PathBuf) {
    let (public, secret) = (dir.join("op.pub"), dir.join("op.key"));
    let out = Command::new("minisign")
        .args(["-G", "-W", "-p"])
        .arg(&public)
        .arg("-s")
        .arg(&secret)
        .output()
        .expect("minisign is not installed: apt-get install -y minisign (.ci/run does this)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (public, secret)
}

/// `minisign -Vm FILE -p PUB`: whether it accepts, and what it printed.
fn minisign_verify(file: &Path, public: &Path) -> (bool, String) {
    let out = Command::new("minisign")
        .arg("-Vm")
        .arg(file)
        .arg("-p")
        .arg(public)
        .output()
        .expect("run minisign");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_key_made_by_the_minisign_cli_signs_what_minisign_checks_and_hosts_trust() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (public, secret) = minisign_keys(keys.path());
    let server = tempfile::tempdir().expect("tempdir");
    server_files(server.path());
    ship_key(
        server.path(),
        &fs::read_to_string(&public).expect("the public key"),
    );
    let install = server.path().join("install");
    let metadata = server.path().join("metadata");
    // `edeploy pack --sign-key`, then the key from the environment.
    let sk = secret.display().to_string();
    let (code, out, err) = edeploy(
        Path::new("/"),
        &[
            "pack",
            install.join("V1/base").to_str().expect("utf-8"),
            "--role",
            "base",
            "--version",
            "V1",
            "--install",
            install.to_str().expect("utf-8"),
            "--sign-key",
            &sk,
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("UNSIGNED"), "{err}");
    let (code, out, err) = edeploy(
        Path::new("/"),
        &[
            "pack",
            install.join("V2/base").to_str().expect("utf-8"),
            "--role",
            "base",
            "--version",
            "V2",
            "--install",
            install.to_str().expect("utf-8"),
            "--from",
            "V1",
            "--metadata",
            metadata.to_str().expect("utf-8"),
        ],
        &[("EDEPLOY_SIGN_KEY", &sk)],
    );
    assert_eq!(code, 0, "{out}{err}");
    // `edeploy sign-metadata` on an upgrade path pack did not touch.
    let v3 = metadata.join("V1/base/V3");
    let (code, out, err) = edeploy(
        Path::new("/"),
        &[
            "sign-metadata",
            "--sign-key",
            &sk,
            v3.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("add_only.minisig"), "{out}");

    let mut signed = vec![
        install.join("V1/base-V1.manifest"),
        install.join("V1/base-V1.edeploy"),
        install.join("V2/base-V2.manifest"),
        install.join("V2/base-V2.edeploy"),
        install.join("V2/base-V1-V2.delta"),
        install.join("V2/base/var/lib/edeploy/manifests/base-V2.manifest"),
        v3.join("add_only"),
    ];
    for f in ["exclude", "add_only", "pre", "post"] {
        signed.push(metadata.join("V1/base/V2").join(f));
    }
    for f in &signed {
        let (ok, said) = minisign_verify(f, &public);
        assert!(ok, "{}: {said}", f.display());
        assert!(
            said.contains("Signature and comment signature verified"),
            "{said}"
        );
    }
    let (_, said) = minisign_verify(&v3.join("add_only"), &public);
    assert!(said.contains("upgrade:V1/base/V3"), "{said}");
    // Signed by the CLI itself, with the comment docs/trust.md gives,
    // the host accepts it; without the upgrade path, it is refused.
    let cli_root = tempfile::tempdir().expect("tempdir");
    trust(cli_root.path(), &fs::read_to_string(&public).expect("read"));
    let ht = HostTrust::load(cli_root.path(), &host::conf::Conf::parse("")).expect("trust");
    let cli_sign = |comment: &str| {
        let out = Command::new("minisign")
            .arg("-S")
            .arg("-s")
            .arg(&secret)
            .arg("-m")
            .arg(v3.join("add_only"))
            .arg("-t")
            .arg(comment)
            .output()
            .expect("minisign -S");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli_sign("file:add_only\tupgrade:V1/base/V3");
    ht.check_metadata(&v3, "V1/base/V3", "metadata/V1/base/V3/")
        .expect("signed by the CLI");
    cli_sign("file:add_only");
    let e = ht
        .check_metadata(&v3, "V1/base/V3", "metadata/V1/base/V3/")
        .expect_err("no upgrade path")
        .to_string();
    assert!(e.contains("does not name its upgrade path"), "{e}");
    // The CLI refuses a flipped byte too.
    let copy = server.path().join("copy.delta");
    fs::copy(install.join("V2/base-V1-V2.delta"), &copy).expect("copy");
    fs::copy(
        signature_path(&install.join("V2/base-V1-V2.delta")),
        signature_path(&copy),
    )
    .expect("copy");
    flip_byte(&copy);
    assert!(!minisign_verify(&copy, &public).0);

    // A host trusting the CLI's public key upgrades over HTTP.
    let http = Lighttpd::start(server.path());
    let root = host_root(
        &format!("HSERV=127.0.0.1\nHSERV_PORT={}\n", http.port),
        &install.join("V1/base"),
    );
    assert!(root
        .path()
        .join("etc/edeploy/trusted.d/operator.pub")
        .is_file());
    let log = order_log(server.path()).display().to_string();
    let (code, out, err) = edeploy(
        root.path(),
        &["upgrade", "--transport", "http", "V2"],
        &[("ORDER_LOG", &log)],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signature by key"), "{out}");
    assert!(!err.contains("WARNING"), "{err}");
    let (code, out, err) = edeploy(root.path(), &["verify"], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn without_a_trusted_key_hosts_upgrade_as_before_with_a_warning() {
    let server = tempfile::tempdir().expect("tempdir");
    server_files(server.path());
    pack_versions(server.path(), false);
    let http = Lighttpd::start(server.path());
    let root = host_root(
        &format!("HSERV=127.0.0.1\nHSERV_PORT={}\n", http.port),
        &server.path().join("install/V1/base"),
    );
    let log = order_log(server.path()).display().to_string();
    let (code, out, err) = edeploy(
        root.path(),
        &["upgrade", "--transport", "http", "V2"],
        &[("ORDER_LOG", &log)],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("base-V1-V2.delta: accepted WITHOUT a signature"),
        "{err}"
    );
    assert_eq!(read(root.path(), "etc/app.conf"), "version=2\n");
}

#[test]
fn an_encrypted_key_signs_with_its_password_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (public, secret) = (dir.path().join("enc.pub"), dir.path().join("enc.key"));
    let mut child = Command::new("minisign")
        .args(["-G", "-p"])
        .arg(&public)
        .arg("-s")
        .arg(&secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("minisign");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"s3cret\ns3cret\n").expect("password");
    }
    assert!(child.wait().expect("minisign").success());
    let mdir = dir.path().join("metadata/V1/base/V2");
    put(&mdir, "exclude", EXCLUDE);
    let sk = secret.display().to_string();
    let m = mdir.display().to_string();
    let (code, _, err) = edeploy(
        Path::new("/"),
        &["sign-metadata", "--sign-key", &sk, &m],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{sk}: the key is encrypted: give its password")),
        "{err}"
    );
    put(dir.path(), "wrong", "guess\n");
    let wrong = dir.path().join("wrong").display().to_string();
    let (code, _, err) = edeploy(
        Path::new("/"),
        &[
            "sign-metadata",
            "--sign-key",
            &sk,
            "--password-file",
            &wrong,
            &m,
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("Wrong password"), "{err}");
    assert!(!signature_path(&mdir.join("exclude")).exists());
    put(dir.path(), "pw", "s3cret\n");
    let pw = dir.path().join("pw").display().to_string();
    let (code, out, err) = edeploy(
        Path::new("/"),
        &["sign-metadata", &m],
        &[
            ("EDEPLOY_SIGN_KEY", &sk),
            ("EDEPLOY_SIGN_PASSWORD_FILE", &pw),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (ok, said) = minisign_verify(&mdir.join("exclude"), &public);
    assert!(ok && said.contains("upgrade:V1/base/V2"), "{said}");
}
