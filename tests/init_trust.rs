//! The installer installs only the tree the operator signed: trees packed
//! by the real `edeploy pack` code, manifests and archives signed with a
//! fresh minisign key, served by a real lighttpd and a real
//! `rsync --daemon` on 127.0.0.1 (tests/fixtures/host/support.rs), and
//! fetched by the installer's own transports (`init::signed`) into a
//! temporary node root whose `etc/edeploy/trusted.d/` holds the key.
//!
//! The good tree installs; a flipped byte, an extra entry, a missing
//! entry, a missing signature, a signature by a key that is not trusted,
//! a manifest signed for another version and an archive whose own
//! signature does not match are each refused with a sentence naming the
//! artifact and the key, and the target is left as it was.

#[path = "fixtures/host/support.rs"]
mod support;

use edeploy::archive::layout;
use edeploy::archive::manifest::Manifest;
use edeploy::archive::write::write_archive;
use edeploy::configure::Role;
use edeploy::exec::System;
use edeploy::init::cmdline::Settings;
use edeploy::init::{signed, Console, Tuning};
use edeploy::trust::{signature_path, SigningKey, TRUSTED_DIR};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// A console whose text the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|v| v.clone()).unwrap_or_default()).into_owned()
    }
}

fn tuning() -> Tuning {
    Tuning {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        ..Tuning::default()
    }
}

fn role(version: &str) -> Role {
    Role {
        role: "base".into(),
        version: version.into(),
        disk: "/dev/vda".into(),
    }
}

/// The operator's side: `install/` with V1 and V2 of role `base` packed
/// (manifests, and archives with `archive`), both manifests and archives
/// signed with `key`.
fn packed(dir: &Path, key: &SigningKey, archive: bool) {
    pack_versions(dir, archive);
    let install = dir.join("install");
    for v in ["V1", "V2"] {
        key.sign_file(&layout::repo_manifest(&install, "base", v))
            .expect("sign the manifest");
        if archive {
            key.sign_file(&layout::repo_archive(&install, "base", v))
                .expect("sign the archive");
        }
    }
}

/// A node: its root, with `key`'s public half trusted, and an empty
/// `/chroot`.
fn node(key: &SigningKey) -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("edeploy-node-")
        .tempdir()
        .expect("tempdir");
    let dir = root.path().join(TRUSTED_DIR);
    fs::create_dir_all(&dir).expect("mkdir trusted.d");
    fs::write(dir.join("ops.pub"), key.public_text().expect("public key")).expect("write the key");
    fs::create_dir_all(root.path().join("chroot")).expect("mkdir chroot");
    root
}

/// What is in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.expect("walk")
                .path()
                .strip_prefix(dir)
                .expect("under")
                .display()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

struct Http {
    srv: tempfile::TempDir,
    http: Lighttpd,
    key: SigningKey,
}

impl Http {
    fn start() -> Http {
        let (key, _, _) = SigningKey::generate().expect("a key");
        let srv = tempfile::tempdir().expect("tempdir");
        server_files(srv.path());
        packed(srv.path(), &key, true);
        let http = Lighttpd::start(srv.path());
        Http { srv, http, key }
    }

    fn install(&self) -> PathBuf {
        self.srv.path().join("install")
    }

    fn tree(&self) -> PathBuf {
        self.install().join("V1/base")
    }

    fn archive(&self) -> PathBuf {
        layout::repo_archive(&self.install(), "base", "V1")
    }

    fn manifest(&self) -> PathBuf {
        layout::repo_manifest(&self.install(), "base", "V1")
    }

    fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/install/V1/base-V1.edeploy",
            self.http.port
        )
    }

    fn settings(&self, extra: &str) -> Settings {
        Settings::parse(&format!(
            "HSERV=127.0.0.1 HSERV_PORT={} HPATH=install {extra}",
            self.http.port
        ))
        .expect("settings")
    }

    /// Re-writes the V1 archive from its (changed) tree, signed again by
    /// the trusted key: only the per-entry check can tell.
    fn repack_archive(&self) {
        write_archive(&self.tree(), &self.archive()).expect("write the archive");
        self.key.sign_file(&self.archive()).expect("sign");
    }

    /// Packs V1 again from its (changed) tree, manifest and archive signed
    /// by the trusted key: what an operator does after a change.
    fn repack_signed(&self) {
        use edeploy::host::pack::{pack_signed, PackOptions};
        let opts = PackOptions {
            archive: true,
            ..PackOptions::default()
        };
        pack_signed(
            &mut Vec::new(),
            &self.tree(),
            "base",
            "V1",
            &self.install(),
            &opts,
            Some(&self.key),
        )
        .expect("pack V1");
    }

    /// Makes V1's manifest one written before manifests listed extended
    /// attributes (signed, served and in the tree), and its archive again:
    /// then only the archive's own signature vouches for attributes and
    /// mtimes.
    fn older_manifest(&self) {
        let mut m = Manifest::load(&self.manifest()).expect("manifest");
        m.xattrs = false;
        for e in &mut m.entries {
            e.xattrs.clear();
        }
        m.save(&self.manifest()).expect("save");
        self.key.sign_file(&self.manifest()).expect("sign");
        let own = layout::manifest_path(&self.tree(), "base", "V1");
        m.save(&own).expect("save in the tree");
        self.key.sign_file(&own).expect("sign in the tree");
        self.repack_archive();
    }

    /// Installs V1 into `root`'s `/chroot`.
    fn run(&self, root: &Path, extra: &str) -> (anyhow::Result<u64>, String) {
        let s = self.settings(extra);
        let out = Captured::default();
        let console = Console::new(Box::new(out.clone()));
        let result = signed::policy(root, s.require_signatures).and_then(|policy| {
            signed::install_http(
                &s,
                &role("V1"),
                &root.join("chroot"),
                &policy,
                &console,
                &tuning(),
            )
        });
        (result, out.text())
    }

    /// Installs V1 and expects a refusal holding every one of `needles`,
    /// with nothing left in `/chroot`. Returns the refusal.
    fn refused(&self, extra: &str, needles: &[&str]) -> String {
        let root = node(&self.key);
        let (result, console) = self.run(root.path(), extra);
        let err = match result {
            Ok(n) => panic!("installed ({n} bytes) where a refusal was expected:\n{console}"),
            Err(e) => format!("{e:#}"),
        };
        for n in needles {
            assert!(
                err.contains(n),
                "{n:?} not in the refusal: {err}\n{console}"
            );
        }
        assert_eq!(
            listing(&root.path().join("chroot")),
            Vec::<String>::new(),
            "{err}"
        );
        err
    }
}

fn key_id(k: &SigningKey) -> String {
    k.id().to_string()
}

#[test]
fn the_signed_tree_installs_over_http() {
    let h = Http::start();
    let root = node(&h.key);
    let (result, console) = h.run(root.path(), "");
    let n = result.unwrap_or_else(|e| panic!("{e:#}\n{console}"));
    assert_eq!(n, fs::metadata(h.archive()).expect("archive").len());
    let target = root.path().join("chroot");
    assert_eq!(snapshot(&target), snapshot(&h.tree()));
    assert_eq!(
        fs::read(layout::manifest_path(&target, "base", "V1")).expect("manifest in the tree"),
        fs::read(h.manifest()).expect("served manifest")
    );
    let id = key_id(&h.key);
    assert!(
        console.contains(&format!("the signed manifest of key {id}")),
        "{console}"
    );
    // The manifest lists every entry's extended attributes: the archive's
    // own signature is not needed.
    assert!(
        console.contains(&format!(
            "{}: every entry, its extended attributes included, is checked against the \
             signed manifest",
            h.url()
        )),
        "{console}"
    );
    assert!(!console.contains("warning"), "{console}");
}

/// Changes `path`'s bytes keeping its size and mtime: only the content's
/// hash can tell.
fn flip_byte(path: &Path, at: usize) -> Vec<u8> {
    let md = fs::metadata(path).expect("stat");
    let mut data = fs::read(path).expect("read");
    data[at] ^= 0x01;
    fs::write(path, &data).expect("write");
    let t = filetime::FileTime::from_last_modification_time(&md);
    filetime::set_file_mtime(path, t).expect("touch");
    data
}

#[test]
fn a_flipped_byte_in_a_file_of_the_archive_is_refused() {
    let h = Http::start();
    let data = flip_byte(&h.tree().join("etc/hosts"), 0);
    h.repack_archive();
    let id = key_id(&h.key);
    let err = h.refused(
        "",
        &[
            &format!("{}: entry etc/hosts has sha256 ", h.url()),
            &format!("where the signed manifest of key {id} says sha256 "),
        ],
    );
    assert!(err.contains(&edeploy::archive::manifest::hex(&{
        use sha2::Digest;
        sha2::Sha256::digest(&data)
    })));
}

#[test]
fn an_extra_entry_is_refused() {
    let h = Http::start();
    put(&h.tree(), "etc/cron.d/backdoor", "* * * * * root sh\n");
    h.repack_archive();
    h.refused(
        "",
        &[
            &format!("{}: entry etc/cron.d is not in the manifest", h.url()),
            &format!("the signed manifest of key {}", key_id(&h.key)),
        ],
    );
}

#[test]
fn a_missing_entry_is_refused() {
    let h = Http::start();
    fs::remove_file(h.tree().join("etc/motd")).expect("rm");
    h.repack_archive();
    h.refused(
        "",
        &[
            &format!("{}: entry etc/motd is missing", h.url()),
            &format!("the signed manifest of key {}", key_id(&h.key)),
        ],
    );
}

#[test]
fn a_changed_mode_or_link_target_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let h = Http::start();
    fs::set_permissions(
        h.tree().join("etc/hosts"),
        fs::Permissions::from_mode(0o4755),
    )
    .expect("chmod");
    h.repack_archive();
    h.refused(
        "",
        &["entry etc/hosts has mode 4755 where the signed manifest of key"],
    );

    let h = Http::start();
    let link = h.tree().join("usr/lib/libx.so");
    fs::remove_file(&link).expect("rm");
    std::os::unix::fs::symlink("/etc/shadow", &link).expect("symlink");
    h.repack_archive();
    h.refused(
        "",
        &["entry usr/lib/libx.so has link target \"/etc/shadow\" where the signed manifest"],
    );
}

#[test]
fn a_missing_signature_is_refused_unless_not_required() {
    let h = Http::start();
    fs::remove_file(signature_path(&h.manifest())).expect("rm");
    let murl = format!(
        "http://127.0.0.1:{}/install/V1/base-V1.manifest",
        h.http.port
    );
    h.refused(
        "",
        &[
            &format!("{murl}: no signature ({murl}.minisig)"),
            "REQUIRE_SIGNATURES",
        ],
    );
    h.refused("REQUIRE_SIGNATURES=1", &[&format!("{murl}: no signature")]);

    // Not required: installed with a warning, still checked entry by
    // entry against the manifest (its closing line checked).
    let root = node(&h.key);
    let (result, console) = h.run(root.path(), "REQUIRE_SIGNATURES=0");
    result.unwrap_or_else(|e| panic!("{e:#}\n{console}"));
    assert!(
        console.contains(&format!(
            "edeploy: warning: {murl}: accepted WITHOUT a signature"
        )),
        "{console}"
    );
    assert_eq!(snapshot(&root.path().join("chroot")), snapshot(&h.tree()));
    // … and a tampered tree is still refused against the unsigned manifest.
    put(&h.tree(), "etc/hosts", "10.6.6.6 localhost\n");
    h.repack_archive();
    h.refused(
        "REQUIRE_SIGNATURES=0",
        &[&format!("{}: entry etc/hosts has size", h.url())],
    );
}

#[test]
fn a_signature_by_an_untrusted_key_is_refused() {
    let h = Http::start();
    let (other, _, _) = SigningKey::generate().expect("a key");
    other.sign_file(&h.manifest()).expect("sign");
    let err = h.refused(
        "",
        &[
            "base-V1.manifest: signed by key ",
            &key_id(&other),
            "which is not trusted here",
            &format!("trusted: {}", key_id(&h.key)),
        ],
    );
    assert!(err.contains("http://127.0.0.1:"), "{err}");
}

#[test]
fn a_manifest_signed_for_another_version_is_refused() {
    let h = Http::start();
    let v2 = layout::repo_manifest(&h.install(), "base", "V2");
    fs::copy(&v2, h.manifest()).expect("cp");
    fs::copy(signature_path(&v2), signature_path(&h.manifest())).expect("cp");
    h.refused(
        "",
        &[
            "base-V1.manifest: the signature by key ",
            &key_id(&h.key),
            "was made for \"base-V2.manifest\", not for this file",
        ],
    );
}

#[test]
fn a_changed_mtime_is_refused() {
    let h = Http::start();
    let t = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_file_times(h.tree().join("etc/hosts"), t, t).expect("touch");
    h.repack_archive();
    h.refused(
        "",
        &[&format!(
            "{}: entry etc/hosts has mtime 1600000000 where the signed manifest of key {} says \
             mtime ",
            h.url(),
            key_id(&h.key)
        )],
    );
}

#[test]
fn an_archive_whose_own_signature_does_not_match_is_refused() {
    let h = Http::start();
    h.older_manifest();
    // Same entries (an older manifest's check leaves mtimes out), other
    // bytes: only the archive's own signature tells.
    let t = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_file_times(h.tree().join("etc/hosts"), t, t).expect("touch");
    write_archive(&h.tree(), &h.archive()).expect("write the archive");
    h.refused(
        "",
        &[
            &format!("{}: the signature by key {}", h.url(), key_id(&h.key)),
            "does not match these bytes",
        ],
    );
    // The signature of another archive does not match either.
    let v2 = layout::repo_archive(&h.install(), "base", "V2");
    fs::copy(signature_path(&v2), signature_path(&h.archive())).expect("cp");
    h.refused(
        "",
        &[
            &format!("{}: the signature by key", h.url()),
            "does not match",
        ],
    );
    // Without its own signature the archive is still checked entry by
    // entry, and this one installs.
    fs::remove_file(signature_path(&h.archive())).expect("rm");
    let root = node(&h.key);
    let (result, console) = h.run(root.path(), "");
    result.unwrap_or_else(|e| panic!("{e:#}\n{console}"));
    assert_eq!(snapshot(&root.path().join("chroot")), snapshot(&h.tree()));
}

#[test]
fn a_target_with_a_tree_already_keeps_it_when_refused() {
    let h = Http::start();
    put(&h.tree(), "etc/extra", "x\n");
    h.repack_archive();
    let root = node(&h.key);
    let target = root.path().join("chroot");
    put(&target, "etc/hosts", "before\n");
    let (result, _) = h.run(root.path(), "");
    assert!(result.is_err());
    assert_eq!(listing(&target), ["etc", "etc/hosts"]);
    assert_eq!(read(&target, "etc/hosts"), "before\n");
}

#[test]
fn the_keys_come_from_the_roots_trusted_dir() {
    let (key, _, _) = SigningKey::generate().expect("a key");
    let root = node(&key);
    let p = signed::policy(root.path(), None).expect("policy");
    assert_eq!(p.trusted.ids(), vec![key.id()]);
    assert!(p.require);
    assert!(
        !signed::policy(root.path(), Some(false))
            .expect("policy")
            .require
    );
    let bare = tempfile::tempdir().expect("tempdir");
    let p = signed::policy(bare.path(), None).expect("policy");
    assert!(p.trusted.is_empty() && !p.require);
    // A file that is not a key is an error naming it.
    fs::write(root.path().join(TRUSTED_DIR).join("bad.pub"), "nonsense").expect("write");
    let e = match signed::policy(root.path(), None) {
        Ok(_) => panic!("a file that is not a key was accepted"),
        Err(e) => e,
    };
    assert!(e.to_string().contains("bad.pub"), "{e}");
}

// ------------------------------------------------------------------ rsync

struct Rsync {
    daemon: RsyncDaemon,
    key: SigningKey,
}

impl Rsync {
    fn start() -> Rsync {
        let (key, _, _) = SigningKey::generate().expect("a key");
        let daemon = RsyncDaemon::start(|dir| packed(dir, &key, false));
        Rsync { daemon, key }
    }

    fn tree(&self) -> PathBuf {
        self.daemon.path().join("install/V1/base")
    }

    fn url(&self) -> String {
        format!("rsync://127.0.0.1:{}/install/V1/base/", self.daemon.port)
    }

    fn run(&self, root: &Path, extra: &str) -> (anyhow::Result<()>, String) {
        let s = Settings::parse(&format!(
            "RSERV=127.0.0.1 RSERV_PORT={} RPATH=install {extra}",
            self.daemon.port
        ))
        .expect("settings");
        let out = Captured::default();
        let console = Console::new(Box::new(out.clone()));
        let exec = System::default();
        let result = signed::policy(root, s.require_signatures).and_then(|policy| {
            signed::install_rsync(
                &s,
                &role("V1"),
                root,
                &root.join("chroot"),
                &policy,
                &exec,
                &console,
            )
        });
        (result, out.text())
    }

    fn refused(&self, needles: &[&str]) -> String {
        let root = node(&self.key);
        let (result, console) = self.run(root.path(), "");
        let err = match result {
            Ok(()) => panic!("installed where a refusal was expected:\n{console}"),
            Err(e) => format!("{e:#}"),
        };
        for n in needles {
            assert!(
                err.contains(n),
                "{n:?} not in the refusal: {err}\n{console}"
            );
        }
        assert_eq!(
            listing(&root.path().join("chroot")),
            Vec::<String>::new(),
            "{err}"
        );
        // The manifest fetched on the way is not left in the node's /tmp.
        assert!(!root.path().join("tmp/edeploy-manifest").exists());
        err
    }
}

#[test]
fn the_signed_tree_installs_over_rsync() {
    let r = Rsync::start();
    let root = node(&r.key);
    let (result, console) = r.run(root.path(), "");
    result.unwrap_or_else(|e| panic!("{e:#}\n{console}"));
    let target = root.path().join("chroot");
    assert_eq!(snapshot(&target), snapshot(&r.tree()));
    assert!(!target.join(".edeploy-partial").exists());
    assert!(
        console.contains(&format!("the signed manifest of key {}", r.key.id())),
        "{console}"
    );
}

#[test]
fn a_tree_tampered_with_after_signing_is_refused_over_rsync() {
    let id = {
        let r = Rsync::start();
        let id = r.key.id().to_string();
        let f = r.tree().join("usr/bin/tool");
        let last = fs::metadata(&f).expect("stat").len() as usize - 2;
        flip_byte(&f, last);
        r.refused(&[
            &format!("{}: entry usr/bin/tool has sha256 ", r.url()),
            &format!("where the signed manifest of key {id} says sha256 "),
        ]);
        id
    };
    let r = Rsync::start();
    put(
        &r.tree(),
        "etc/sudoers.d/x",
        "ALL ALL=(ALL) NOPASSWD: ALL\n",
    );
    r.refused(&[
        &format!("{}: entry etc/sudoers.d is not in the manifest", r.url()),
        "the signed manifest of key ",
    ]);
    assert_ne!(id, r.key.id().to_string());

    let r = Rsync::start();
    fs::remove_file(r.tree().join("etc/old.conf")).expect("rm");
    r.refused(&[&format!("{}: entry etc/old.conf is missing", r.url())]);
}

#[test]
fn a_missing_or_untrusted_signature_is_refused_over_rsync() {
    let r = Rsync::start();
    let m = layout::repo_manifest(&r.daemon.path().join("install"), "base", "V1");
    fs::remove_file(signature_path(&m)).expect("rm");
    let murl = format!(
        "rsync://127.0.0.1:{}/install/V1/base-V1.manifest",
        r.daemon.port
    );
    r.refused(&[&format!("{murl}: no signature ({murl}.minisig)")]);

    let (other, _, _) = SigningKey::generate().expect("a key");
    other.sign_file(&m).expect("sign");
    r.refused(&[
        &format!("{murl}: signed by key {}", other.id()),
        &format!("not trusted here (trusted: {})", r.key.id()),
    ]);
}

// ------------------------------------------------------ extended attributes

/// A manifest lists every entry's extended attributes: they install
/// without the archive's own signature, and one changed, added or taken
/// away after signing is refused.
#[test]
fn extended_attributes_are_checked_against_the_signed_manifest() {
    use edeploy::archive::xattr::{set_xattr, xattrs};
    let h = Http::start();
    let tool = h.tree().join("usr/bin/tool");
    set_xattr(&tool, b"user.note", b"signed\nalong\0").expect("xattr");
    set_xattr(&h.tree().join("etc"), b"user.dir", b"d").expect("xattr");
    h.repack_signed();
    fs::remove_file(signature_path(&h.archive())).expect("rm");
    let root = node(&h.key);
    let (result, console) = h.run(root.path(), "");
    result.unwrap_or_else(|e| panic!("{e:#}\n{console}"));
    let chroot = root.path().join("chroot");
    assert_eq!(
        xattrs(&chroot.join("usr/bin/tool")).expect("xattrs"),
        vec![(b"user.note".to_vec(), b"signed\nalong\0".to_vec())]
    );
    assert_eq!(
        xattrs(&chroot.join("etc")).expect("xattrs"),
        vec![(b"user.dir".to_vec(), b"d".to_vec())]
    );

    let id = key_id(&h.key);
    set_xattr(&tool, b"user.note", b"changed").expect("xattr");
    h.repack_archive();
    h.refused(
        "",
        &[&format!(
            "{}: entry usr/bin/tool has the extended attribute user.note={} where the signed \
             manifest of key {id} says the extended attribute user.note={}",
            h.url(),
            edeploy::archive::manifest::hex(b"changed"),
            edeploy::archive::manifest::hex(b"signed\nalong\0"),
        )],
    );
    set_xattr(&tool, b"user.note", b"signed\nalong\0").expect("xattr");
    set_xattr(&h.tree().join("etc/hosts"), b"user.extra", b"x").expect("xattr");
    h.repack_archive();
    h.refused(
        "",
        &["entry etc/hosts has the extended attribute user.extra=78 where the signed manifest"],
    );
}

/// A manifest from before they were listed says nothing of extended
/// attributes: over HTTP they come only from an archive whose own
/// signature is checked.
#[test]
fn extended_attributes_need_the_archives_own_signature_with_an_older_manifest() {
    use edeploy::archive::xattr::{set_xattr, xattrs};
    let h = Http::start();
    h.older_manifest();
    set_xattr(
        &h.tree().join("usr/bin/tool"),
        b"user.note",
        b"signed along",
    )
    .expect("xattr");
    h.repack_archive();
    let root = node(&h.key);
    let (result, console) = h.run(root.path(), "");
    result.unwrap_or_else(|e| panic!("{e:#}\n{console}"));
    assert_eq!(
        xattrs(&root.path().join("chroot/usr/bin/tool")).expect("xattrs"),
        vec![(b"user.note".to_vec(), b"signed along".to_vec())]
    );

    fs::remove_file(signature_path(&h.archive())).expect("rm");
    h.refused(
        "",
        &[
            &format!(
                "{}: entry usr/bin/tool carries the extended attribute user.note",
                h.url()
            ),
            &format!("there is no {}.minisig", h.url()),
        ],
    );
}

#[test]
fn extended_attributes_are_copied_over_rsync_and_checked_when_the_manifest_lists_them() {
    use edeploy::archive::xattr::{set_xattr, xattrs};
    use edeploy::host::pack::{pack_signed, PackOptions};
    let r = Rsync::start();
    let tool = r.tree().join("usr/bin/tool");
    set_xattr(&tool, b"user.note", b"x\0y").expect("xattr");
    let install = r.daemon.path().join("install");
    pack_signed(
        &mut Vec::new(),
        &r.tree(),
        "base",
        "V1",
        &install,
        &PackOptions::default(),
        Some(&r.key),
    )
    .expect("pack V1");
    let root = node(&r.key);
    let (result, console) = r.run(root.path(), "");
    assert!(result.is_ok(), "{result:?}\n{console}");
    assert_eq!(
        xattrs(&root.path().join("chroot/usr/bin/tool")).expect("list"),
        vec![(b"user.note".to_vec(), b"x\0y".to_vec())],
        "{console}"
    );
    assert!(!console.contains("not copied"), "{console}");
    // Changed on the server after signing: refused, nothing installed.
    set_xattr(&tool, b"user.note", b"z").expect("xattr");
    r.refused(&[&format!(
        "{}: entry usr/bin/tool has the extended attribute user.note=7a where the signed \
         manifest of key {} says the extended attribute user.note=780079",
        r.url(),
        r.key.id()
    )]);
}

#[test]
fn extended_attributes_are_not_copied_over_rsync_when_signatures_are_required() {
    use edeploy::archive::xattr::{set_xattr, xattrs};
    let r = Rsync::start();
    // A manifest from before they were listed (signed again as such).
    let m = layout::repo_manifest(&r.daemon.path().join("install"), "base", "V1");
    let mut old = Manifest::load(&m).expect("manifest");
    old.xattrs = false;
    old.save(&m).expect("save");
    r.key.sign_file(&m).expect("sign");
    let own = layout::manifest_path(&r.tree(), "base", "V1");
    old.save(&own).expect("save in the tree");
    r.key.sign_file(&own).expect("sign in the tree");
    set_xattr(&r.tree().join("usr/bin/tool"), b"user.note", b"x").expect("xattr");
    let root = node(&r.key);
    let (result, console) = r.run(root.path(), "");
    assert!(result.is_ok(), "{result:?}\n{console}");
    // The file is installed, checked against the manifest, without the
    // attribute nothing vouches for; the console says why.
    let tool = root.path().join("chroot/usr/bin/tool");
    assert!(tool.exists(), "{console}");
    assert_eq!(xattrs(&tool).expect("list"), Vec::new(), "{console}");
    assert!(
        console.contains("ACLs and extended attributes are not copied over rsync"),
        "{console}"
    );
    // Signatures not required: copied as before (`-aHAX`).
    let root = node(&r.key);
    let (result, console) = r.run(root.path(), "REQUIRE_SIGNATURES=0");
    assert!(result.is_ok(), "{result:?}\n{console}");
    let names: Vec<Vec<u8>> = xattrs(&root.path().join("chroot/usr/bin/tool"))
        .expect("list")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.contains(&b"user.note".to_vec()), "{console}");
}

// ------------------------------------------------- edeploy-init --fetch

fn fetch_command(url: &str, into: &Path, trusted: Option<&Path>) -> (i32, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_edeploy-init"));
    cmd.arg("--fetch").arg(url).arg("--into").arg(into);
    if let Some(t) = trusted {
        cmd.arg("--trusted").arg(t);
    }
    let out = cmd.output().expect("run edeploy-init");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_fetch_command_checks_against_the_manifest_beside_the_archive() {
    let h = Http::start();
    let root = node(&h.key);
    let keys = root.path().join(TRUSTED_DIR);
    let into = root.path().join("out");
    let (code, err) = fetch_command(&h.url(), &into, Some(&keys));
    assert_eq!(code, 0, "{err}");
    assert_eq!(snapshot(&into), snapshot(&h.tree()));
    assert!(
        err.contains(&format!("the signed manifest of key {}", h.key.id())),
        "{err}"
    );

    put(&h.tree(), "etc/extra", "x\n");
    h.repack_archive();
    let (code, err) = fetch_command(&h.url(), &root.path().join("out3"), Some(&keys));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "{}: entry etc/extra is not in the manifest",
            h.url()
        )),
        "{err}"
    );
    // Without keys or signatures: the manifest is accepted unsigned, with
    // a warning, and the tree is still checked against it.
    fs::remove_file(signature_path(&h.manifest())).expect("rm");
    fs::remove_file(signature_path(&h.archive())).expect("rm");
    let (code, err) = fetch_command(&h.url(), &root.path().join("out3"), None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("accepted WITHOUT a signature"), "{err}");
    assert!(
        err.contains("entry etc/extra is not in the manifest"),
        "{err}"
    );
    assert_eq!(listing(&root.path().join("out3")), Vec::<String>::new());
}

#[test]
fn require_signatures_is_read_from_the_command_line() {
    let parse = |t: &str| Settings::parse(t).map(|s| s.require_signatures);
    assert_eq!(parse("SERV=10.0.0.2"), Ok(None));
    assert_eq!(parse("REQUIRE_SIGNATURES=1"), Ok(Some(true)));
    assert_eq!(parse("REQUIRE_SIGNATURES=0"), Ok(Some(false)));
    // Empty is the default, as for every variable.
    assert_eq!(parse("REQUIRE_SIGNATURES=1 REQUIRE_SIGNATURES="), Ok(None));
    let e = Settings::parse("REQUIRE_SIGNATURES=yes").expect_err("bad value");
    assert_eq!(e.errors, vec!["REQUIRE_SIGNATURES=yes: expected 0 or 1"]);
}
