//! Manifests written by the packer, and `edeploy verify` offline against
//! them: modified, missing, extra, metadata changes, the version's
//! exclude, JSON output, tampered manifests; device nodes, fifos and hard
//! links packed as such.

#[path = "fixtures/host/support.rs"]
mod support;

use edeploy::archive::manifest::{Kind, Manifest};
use edeploy::exec::Fake;
use edeploy::host;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use support::*;

/// A server directory with both versions packed, and a host from V1.
fn packed() -> (tempfile::TempDir, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    server_files(dir.path());
    pack_versions(dir.path(), true);
    let root = host_root("", &dir.path().join("install/V1/base"));
    (dir, root)
}

#[test]
fn pack_writes_sorted_hashed_manifests_and_archives() {
    let (dir, _root) = packed();
    let install = dir.path().join("install");
    let m = Manifest::load(&install.join("V2/base-V2.manifest")).unwrap();
    assert_eq!((m.role.as_str(), m.version.as_str()), ("base", "V2"));
    let paths: Vec<&str> = m.entries.iter().map(|e| e.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("var/lib/edeploy/manifests")),
        "{paths:?}"
    );
    let app = m.get("etc/app.conf").unwrap();
    assert_eq!(app.kind, Kind::File);
    assert_eq!(app.size, 10);
    assert_eq!(app.mtime, V2_TIME);
    let tool = m.get("usr/bin/tool").unwrap();
    assert_eq!(tool.mode, 0o755);
    let link = m.get("usr/lib/libx.so").unwrap();
    assert_eq!(
        (link.kind, link.target.as_deref()),
        (Kind::Symlink, Some("libx.so.2"))
    );
    assert_eq!(m.get("etc").unwrap().kind, Kind::Dir);
    // The sha256 is the file's: compare with sha256sum.
    let out = std::process::Command::new("sha256sum")
        .arg(install.join("V2/base/etc/app.conf"))
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(app.sha256.as_deref(), Some(want.as_str()));
    // The same manifest inside the tree, for hosts installed from it.
    assert_eq!(
        fs::read(install.join("V2/base-V2.manifest")).unwrap(),
        fs::read(install.join("V2/base/var/lib/edeploy/manifests/base-V2.manifest")).unwrap()
    );
    // The archive holds the tree, manifest included.
    let f = fs::File::open(install.join("V2/base-V2.edeploy")).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"etc/app.conf".to_string()), "{names:?}");
    assert!(names.contains(&"var/lib/edeploy/manifests/base-V2.manifest".to_string()));
    assert!(install.join("V2/base-V1-V2.delta").is_file());
}

#[test]
fn verify_offline_is_clean_on_a_fresh_host() {
    let (_dir, root) = packed();
    // The host's own data differs from the tree: without the upgrade
    // path's exclude it shows, and nothing else does.
    let (code, out, err) = edeploy(root.path(), &["verify"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        out.contains("modified  /etc/myapp.local: content differs (size 16, expected 11)"),
        "{out}"
    );
    assert!(out.contains("modified  /etc/ssh/ssh_host_key"), "{out}");
    assert!(out.contains("modified  /var/lib/data/db"), "{out}");
    assert!(out.contains("extra     /var/lib/data/journal"), "{out}");
    // With the version's exclude and add_only in place, it is clean.
    put(root.path(), "var/lib/edeploy/V1/exclude", EXCLUDE);
    put(root.path(), "var/lib/edeploy/V1/add_only", ADD_ONLY);
    let (code, out, _) = edeploy(root.path(), &["verify"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("base V1: no difference ("), "{out}");
    assert!(out.contains("entries checked against"), "{out}");
    assert!(out.contains("base-V1.manifest"), "{out}");
}

#[test]
fn verify_leaves_out_what_the_role_says_belongs_to_each_host() {
    let (_dir, root) = packed();
    // A freshly installed host: no upgrade brought it to V1, so only the
    // role's own list (shipped in the tree) says what is the host's.
    put(root.path(), "var/lib/edeploy/exclude", EXCLUDE);
    let (code, out, err) = edeploy(root.path(), &["verify"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("/etc/ssh/ssh_host_key"), "{out}");
    assert!(!out.contains("/var/lib/data"), "{out}");
    assert!(
        out.contains("modified  /etc/myapp.local: content differs"),
        "not excluded, still shown: {out}"
    );
    assert!(out.contains("base V1: 1 difference ("), "{out}");
}

#[test]
fn verify_offline_reports_every_kind_of_difference() {
    let (_dir, root) = packed();
    let r = root.path();
    put(r, "var/lib/edeploy/V1/exclude", EXCLUDE);
    put(r, "var/lib/edeploy/V1/add_only", ADD_ONLY);
    // Same size, same mtime: only a hash sees it.
    let hosts = r.join("etc/hosts");
    fs::write(&hosts, "127.0.0.1 localhosT\n").unwrap();
    filetime::set_file_mtime(&hosts, filetime::FileTime::from_unix_time(V1_TIME, 0)).unwrap();
    fs::set_permissions(r.join("etc/app.conf"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::lchown(r.join("etc/ssh/sshd_config"), Some(1234), None).unwrap();
    fs::remove_file(r.join("usr/lib/libx.so")).unwrap();
    std::os::unix::fs::symlink("libx.so.2", r.join("usr/lib/libx.so")).unwrap();
    fs::remove_file(r.join("etc/old.conf")).unwrap();
    fs::remove_dir_all(r.join("olddir")).unwrap();
    put(r, "root/notes", "mine\n");
    put(r, "root/more", "mine\n");
    // Not compared: scratch space, edeploy's motd line, excluded data.
    put(r, "tmp/scratch", "x\n");
    put(r, "etc/motd", "changed\n");
    put(r, "etc/ssh/ssh_host_key", "regenerated\n");

    let (code, out, _) = edeploy(r, &["verify"], &[]);
    assert_eq!(code, 1, "{out}");
    let expected = [
        "metadata  /etc/app.conf: mode 0600, expected 0644",
        "modified  /etc/hosts: content differs (sha256 ",
        "missing   /etc/old.conf",
        "metadata  /etc/ssh/sshd_config: owner 1234, expected 0",
        "missing   /olddir: and 1 entries below",
        "extra     /root: and 2 entries below",
        "metadata  /usr/lib/libx.so: link target libx.so.2, expected libx.so.1",
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), expected.len() + 1, "{out}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(want),
            "{line:?} does not start with {want:?}\n{out}"
        );
    }
    assert!(lines[7].starts_with("base V1: 7 differences ("), "{out}");

    let (code, json, _) = edeploy(r, &["verify", "--json"], &[]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let kinds: Vec<&str> = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["metadata", "modified", "missing", "metadata", "missing", "extra", "metadata"]
    );
    assert_eq!(v["differences"][1]["path"], "etc/hosts");
    assert_eq!(v["role"], "base");
    assert_eq!(v["version"], "V1");
    assert!(v["checked"].as_u64().unwrap() > 10);
}

#[test]
fn a_tampered_or_foreign_manifest_is_refused() {
    let (_dir, root) = packed();
    let r = root.path();
    let mpath = r.join("var/lib/edeploy/manifests/base-V1.manifest");
    let text = fs::read_to_string(&mpath).unwrap();
    fs::write(
        &mpath,
        text.replace("\"mode\":\"0644\"", "\"mode\":\"0600\""),
    )
    .unwrap();
    let (code, _, err) = edeploy(r, &["verify"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("the manifest's checksum does not match its contents"),
        "{err}"
    );
    let v2 = _dir.path().join("install/V2/base-V2.manifest");
    let (code, _, err) = edeploy(r, &["verify", "--manifest", v2.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("a manifest of base V2, but this host runs base V1"),
        "{err}"
    );
}

#[test]
fn rsync_upgrade_fetches_the_manifest_for_offline_verify() {
    let daemon = RsyncDaemon::start(|d| pack_versions(d, false));
    let root = host_root(
        &format!("RSERV=127.0.0.1\nRSERV_PORT={}\n", daemon.port),
        &daemon.path().join("install/V1/base"),
    );
    let mut rec = Fake::new(["reboot"]);
    rec.real.env.push((
        "ORDER_LOG".into(),
        order_log(daemon.path()).into_os_string(),
    ));
    host::rsync::upgrade(&rec, &mut Vec::new(), root.path(), "V2").unwrap();
    assert!(root
        .path()
        .join("var/lib/edeploy/manifests/base-V2.manifest")
        .is_file());
    let (code, out, err) = edeploy(root.path(), &["verify"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("base-V2.manifest"), "{out}");
    // Stop the daemon: verify needs no server.
    drop(daemon);
    put(root.path(), "etc/new.conf", "brand NEW\n");
    let (code, out, _) = edeploy(root.path(), &["verify"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("modified  /etc/new.conf"), "{out}");
}

#[test]
fn pack_archives_device_nodes_fifos_and_hard_links() {
    // A debootstrap tree has /dev/console, /dev/null and hard-linked
    // files: `edeploy pack` archives them as such (numbers, link entries)
    // and the manifest lists them.
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    put(&tree, "usr/bin/a", "same\n");
    fs::hard_link(tree.join("usr/bin/a"), tree.join("usr/bin/b")).unwrap();
    fs::create_dir_all(tree.join("dev")).unwrap();
    for (name, kind, major, minor) in [
        ("dev/console", libc::S_IFCHR, 5, 1),
        ("dev/initctl", libc::S_IFIFO, 0, 0),
    ] {
        let c = std::ffi::CString::new(tree.join(name).to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        let r = unsafe { libc::mknod(c.as_ptr(), kind | 0o600, libc::makedev(major, minor)) };
        assert_eq!(r, 0, "mknod {name} (the tests run as root)");
    }
    let install = dir.path().join("install");
    let (code, out, err) = edeploy(
        dir.path(),
        &[
            "pack",
            tree.to_str().unwrap(),
            "--role",
            "base",
            "--version",
            "V1",
            "--install",
            install.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let m = Manifest::load(&install.join("V1/base-V1.manifest")).unwrap();
    let console = m.get("dev/console").unwrap();
    assert_eq!(
        (console.kind, console.rdev),
        (Kind::Char, Some(libc::makedev(5, 1)))
    );
    assert_eq!(m.get("dev/initctl").unwrap().kind, Kind::Fifo);
    let f = fs::File::open(install.join("V1/base-V1.edeploy")).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut seen = Vec::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        seen.push((
            path,
            h.entry_type(),
            h.device_major().unwrap(),
            h.device_minor().unwrap(),
            link,
        ));
    }
    let get = |p: &str| seen.iter().find(|s| s.0 == p).cloned().unwrap();
    assert_eq!(
        get("dev/console"),
        (
            "dev/console".into(),
            tar::EntryType::Char,
            Some(5),
            Some(1),
            None
        )
    );
    assert_eq!(get("dev/initctl").1, tar::EntryType::Fifo);
    assert_eq!(get("usr/bin/a").1, tar::EntryType::Regular);
    assert_eq!(
        get("usr/bin/b"),
        (
            "usr/bin/b".into(),
            tar::EntryType::Link,
            Some(0),
            Some(0),
            Some("usr/bin/a".into())
        )
    );
}
