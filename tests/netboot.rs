//! `scripts/build-netboot` on a package tree laid out in a temporary
//! directory: which file goes where, the absolute symlink Debian's `ipxe`
//! ships resolved inside the tree, GRUB's menu made from the pxelinux menu
//! entry for entry with the same kernel arguments, the server's address
//! and port put in, and bad options refused. The files' contents are
//! stand-ins: that shim, GRUB and the kernel boot is what
//! `scripts/vm-test uefi secureboot` proves on OVMF.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A package tree and an initrd where the script looks for them.
fn out_dir() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    let pkgs = t.path().join("build/D12-1.0.0/pxe");
    for (path, data) in [
        ("usr/lib/ipxe/undionly.kpxe", "undionly"),
        ("usr/lib/ipxe/snponly.efi", "snponly"),
        ("boot/ipxe.efi", "ipxe-efi"),
        ("usr/lib/shim/shimx64.efi.signed", "shim-signed"),
        ("usr/lib/shim/mmx64.efi.signed", "mm-signed"),
        (
            "usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
            "grubnet-signed",
        ),
        (
            "usr/lib/grub/x86_64-efi/monolithic/grubnetx64.efi",
            "grubnet-unsigned",
        ),
    ] {
        let p = pkgs.join(path);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, data).expect("write");
    }
    // As Debian's ipxe package ships it: an absolute link, to be read
    // inside the tree (this machine's /boot/ipxe.efi is not the tree's).
    symlink("/boot/ipxe.efi", pkgs.join("usr/lib/ipxe/ipxe.efi")).expect("symlink");
    let pxe = t.path().join("pxe");
    fs::create_dir_all(&pxe).expect("mkdir");
    for f in ["vmlinuz", "initrd.pxe", "health.img"] {
        fs::write(pxe.join(f), f).expect("write");
    }
    t
}

fn build(out: &Path, args: &[&str]) -> Output {
    Command::new(Path::new(ROOT).join("scripts/build-netboot"))
        .args(args)
        .env("OUT", out)
        .env_remove("NETBOOT")
        .output()
        .expect("run scripts/build-netboot")
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// (label, kernel line) of each menu entry of a grub.cfg.
fn grub_entries(cfg: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut label = None;
    for line in cfg.lines() {
        if let Some(rest) = line.strip_prefix("menuentry \"") {
            label = rest.split('"').next().map(str::to_string);
        } else if let (Some(l), Some(k)) = (&label, line.trim().strip_prefix("linux ")) {
            // The words GRUB hands the kernel: single quotes removed.
            let words: Vec<&str> = k
                .split_whitespace()
                .map(|w| {
                    w.strip_prefix('\'')
                        .and_then(|w| w.strip_suffix('\''))
                        .unwrap_or(w)
                })
                .collect();
            out.push((l.clone(), words.join(" ")));
        } else if let (Some(l), "exit") = (&label, line.trim()) {
            out.push((l.clone(), "exit".to_string()));
        }
    }
    out
}

/// (label, KERNEL APPEND) of each entry of a pxelinux menu.
fn pxelinux_entries(cfg: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (mut label, mut kernel) = (String::new(), String::new());
    for line in cfg.lines().map(str::trim) {
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match word.to_ascii_uppercase().as_str() {
            "LABEL" => label = rest.trim().to_string(),
            "KERNEL" => kernel = rest.trim().to_string(),
            "APPEND" => out.push((label.clone(), format!("{kernel} {}", rest.trim()))),
            "LOCALBOOT" => out.push((label.clone(), "exit".to_string())),
            _ => {}
        }
    }
    out
}

#[test]
fn the_tree_has_every_loader_under_its_served_name() {
    let out = out_dir();
    let r = build(out.path(), &["--serv", "192.0.2.7"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let net = out.path().join("netboot");
    for (name, data) in [
        ("undionly.kpxe", "undionly"),
        ("snponly.efi", "snponly"),
        ("ipxe.efi", "ipxe-efi"),
        ("shimx64.efi", "shim-signed"),
        ("grubx64.efi", "grubnet-signed"),
        ("mmx64.efi", "mm-signed"),
        ("pxe/vmlinuz", "vmlinuz"),
        ("pxe/initrd.pxe", "initrd.pxe"),
        ("pxe/health.img", "health.img"),
    ] {
        assert_eq!(read(&net.join(name)), data, "{name}");
    }
    assert!(!net.join("fbx64.efi").exists());
    let ipxe = read(&net.join("edeploy.ipxe"));
    assert!(ipxe.contains("\nset serv 192.0.2.7\n"), "{ipxe}");
    assert!(ipxe.contains("\nset port 80\n"), "{ipxe}");
}

#[test]
fn grub_has_the_pxelinux_entries_with_the_same_arguments() {
    let out = out_dir();
    let r = build(out.path(), &["--serv", "192.0.2.7"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let net = out.path().join("netboot");
    let pxelinux = read(&net.join("pxelinux.cfg/default"));
    let grub = read(&net.join("grub/grub.cfg"));
    let want: Vec<(String, String)> = pxelinux_entries(&pxelinux)
        .into_iter()
        .map(|(l, k)| {
            let k = if k == "exit" { k } else { format!("/{k}") };
            (l, k)
        })
        .collect();
    assert_eq!(grub_entries(&grub), want, "{grub}");
    let labels: Vec<&str> = want.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["eDeploy", "eDeploy-http", "health", "local"]);
    // The shipped menu's arguments, with the server's address put in.
    let shipped = read(&Path::new(ROOT).join("share/pxelinux.cfg/default"));
    let http = shipped
        .lines()
        .skip_while(|l| !l.contains("LABEL eDeploy-http"))
        .find_map(|l| l.trim().strip_prefix("APPEND "))
        .expect("eDeploy-http's APPEND");
    let http = http.replace("10.0.0.1", "192.0.2.7");
    // A bare `|` is GRUB syntax, and GRUB drops the entry holding it.
    assert!(
        !grub.lines().any(|l| l.split_whitespace().any(|w| w == "|")),
        "{grub}"
    );
    assert!(
        grub.contains(&format!(
            "linux /pxe/vmlinuz {}\n",
            http.replace('|', "'|'")
        )),
        "{grub}"
    );
    assert!(
        grub.contains("initrd /pxe/initrd.pxe /pxe/health.img\n"),
        "{grub}"
    );
    assert!(grub.contains("set default=0\n"), "{grub}");
    assert!(!grub.contains("10.0.0.1"), "{grub}");
}

#[test]
fn port_default_http_and_the_unsigned_image() {
    let out = out_dir();
    let r = build(
        out.path(),
        &[
            "--serv",
            "10.0.2.2",
            "--port",
            "8080",
            "--default",
            "eDeploy-http",
            "--unsigned-grub",
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let net = out.path().join("netboot");
    let grub = read(&net.join("grub/grub.cfg"));
    assert!(grub.contains("set default=1\n"), "{grub}");
    assert!(
        grub.contains("SERV=10.0.2.2 HTTP_PORT=8080 HSERV=10.0.2.2 HSERV_PORT=8080 "),
        "{grub}"
    );
    assert_eq!(read(&net.join("grubx64.efi")), "grubnet-unsigned");
    assert!(read(&net.join("edeploy.ipxe")).contains("\nset port 8080\n"));

    let r = build(out.path(), &["--serv", "10.0.2.2", "--http"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let grub = read(&net.join("grub/grub.cfg"));
    assert!(
        grub.contains("linux (http,10.0.2.2)/pxe/vmlinuz "),
        "{grub}"
    );
    assert!(
        grub.contains("initrd (http,10.0.2.2)/pxe/initrd.pxe (http,10.0.2.2)/pxe/health.img\n"),
        "{grub}"
    );
}

#[test]
fn bad_options_are_refused_and_the_old_tree_kept() {
    let out = out_dir();
    let r = build(out.path(), &["--serv", "10.0.2.2"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let before = read(&out.path().join("netboot/grub/grub.cfg"));
    for (args, says) in [
        (&["--http", "--port", "8080"][..], "port 80 only"),
        (&["--port", "80a"][..], "not a port number"),
        (&["--serv", "a;b"][..], "not an address"),
        (&["--default", "nosuch"][..], "--default nosuch"),
    ] {
        let r = build(out.path(), args);
        assert_eq!(r.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(read(&out.path().join("netboot/grub/grub.cfg")), before);
    }
    // A loader missing from the package tree names itself and the recipe.
    fs::remove_file(out.path().join("build/D12-1.0.0/pxe/boot/ipxe.efi")).expect("rm");
    let r = build(out.path(), &["--serv", "10.0.2.2"]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("/usr/lib/ipxe/ipxe.efi") && err.contains("share/roles/pxe.install"),
        "{err}"
    );
    assert_eq!(read(&out.path().join("netboot/grub/grub.cfg")), before);
}
