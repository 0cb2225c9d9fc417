//! The installer's parts on their own: the kernel command line (table
//! driven), the multipart body read back by the server's own form reader,
//! the verified unpacking of trees (cut, corrupt, padded, over-long
//! streams), tree copies, and the files written into the installed system.

use edeploy::configure::Role;
use edeploy::exec::{CmdLine, CmdOutput, Fake, Reply, When};
use edeploy::init::cmdline::{
    parse_ip, BootOrder, IpConfig, IpMode, OnFailure, OnSuccess, Settings,
};
use edeploy::init::server::{multipart, Envelope, Part};
use edeploy::init::{copy, fetch, install, log_name, Console, Tuning};
use edeploy::literal::Value;
use indexmap::IndexMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

// ------------------------------------------------------- command line

#[test]
fn defaults() {
    let s = Settings::parse("BOOT_IMAGE=/vmlinuz initrd=initrd.pxe quiet").expect("parse");
    assert_eq!(s, Settings::default());
    assert_eq!(s.serv, "10.0.0.1");
    assert_eq!(s.http_port, 80);
    assert_eq!(s.http_path, "/cgi-bin/");
    assert_eq!(
        (s.hserv.as_deref(), s.hserv_port, s.hpath.as_str()),
        (None, 80, "install")
    );
    assert_eq!(
        (s.rserv.as_str(), s.rserv_port, s.rpath.as_str()),
        ("10.0.0.1", 873, "install")
    );
    assert_eq!(
        (s.onsuccess, s.onfailure),
        (OnSuccess::Reboot, OnFailure::Halt)
    );
    assert!(!s.verbose && !s.upload_log);
    assert_eq!(s.ip, IpConfig::default());
    assert_eq!(s.ip.mode("eth7"), &IpMode::Dhcp);
    assert!(s.kept.is_empty() && s.warnings.is_empty());
    assert_eq!(s.bootorder, BootOrder::First);
}

#[test]
fn every_variable_is_read() {
    type Check = fn(&Settings) -> bool;
    let table: &[(&str, Check)] = &[
        ("SERV=192.0.2.5", |s| {
            s.serv == "192.0.2.5" && s.rserv == "192.0.2.5"
        }),
        ("SERV=a RSERV=b", |s| s.serv == "a" && s.rserv == "b"),
        ("RSERV=b SERV=a", |s| s.rserv == "b"),
        ("SERV=[fd00::1]", |s| s.serv == "[fd00::1]"),
        ("HTTP_PORT=9000", |s| s.http_port == 9000),
        ("HTTP_PATH=/cgi-bin/edeploy/", |s| {
            s.http_path == "/cgi-bin/edeploy/"
        }),
        ("HTTP_PATH=cgi-bin/edeploy", |s| {
            s.http_path == "/cgi-bin/edeploy/"
        }),
        ("HTTP_PATH=/", |s| s.http_path == "/"),
        ("HSERV=web HSERV_PORT=8080 HPATH=/trees/", |s| {
            s.hserv.as_deref() == Some("web") && s.hserv_port == 8080 && s.hpath == "trees"
        }),
        ("HSERV=", |s| s.hserv.is_none()),
        ("RSERV_PORT=1515 RPATH=x/y", |s| {
            s.rserv_port == 1515 && s.rpath == "x/y"
        }),
        ("ONSUCCESS=kexec", |s| s.onsuccess == OnSuccess::Kexec),
        ("ONSUCCESS=halt", |s| s.onsuccess == OnSuccess::Halt),
        ("ONSUCCESS=console", |s| s.onsuccess == OnSuccess::Console),
        ("ONFAILURE=reboot", |s| s.onfailure == OnFailure::Reboot),
        ("ONFAILURE=console", |s| s.onfailure == OnFailure::Console),
        ("VERBOSE=1 UPLOAD_LOG=1", |s| s.verbose && s.upload_log),
        ("VERBOSE=1 VERBOSE=0", |s| !s.verbose),
        ("KEXEC_KERNEL=6.1.0-10-amd64", |s| {
            s.kexec_kernel.as_deref() == Some("6.1.0-10-amd64")
        }),
        ("EMBEDDED=/dev/sr0", |s| {
            s.embedded.as_deref() == Some("/dev/sr0")
        }),
        ("SECTION=lab", |s| s.section.as_deref() == Some("lab")),
        ("SERV= HTTP_PORT=", |s| {
            s.serv == "10.0.0.1" && s.http_port == 80
        }),
        ("IP=eth0:dhcp,eth1:10.0.0.5/24,eth2:none", |s| {
            s.ip.interfaces
                == vec![
                    ("eth0".to_string(), IpMode::Dhcp),
                    ("eth1".to_string(), IpMode::Static([10, 0, 0, 5].into(), 24)),
                    ("eth2".to_string(), IpMode::None),
                ]
                && s.ip.all == IpMode::None
        }),
        ("IP=eth1:none,all:dhcp", |s| {
            s.ip.mode("eth1") == &IpMode::None && s.ip.mode("eth0") == &IpMode::Dhcp
        }),
        // Words that are not ours are the kernel's.
        ("console=ttyS0 serv=1.2.3.4 SERVX=1", |s| {
            s.serv == "10.0.0.1"
        }),
        // Quoted values.
        ("SECTION=\"lab\"", |s| s.section.as_deref() == Some("lab")),
        // The health check: it powers off by default, as it installs
        // nothing to boot into.
        ("HEALTH=1", |s| {
            s.health && s.health_time == 5 && s.onsuccess == OnSuccess::Halt
        }),
        ("HEALTH=1 ONSUCCESS=reboot", |s| {
            s.health && s.onsuccess == OnSuccess::Reboot
        }),
        ("ONSUCCESS=console HEALTH=1", |s| {
            s.health && s.onsuccess == OnSuccess::Console
        }),
        ("HEALTH=1 NOREBOOT=1", |s| s.onsuccess == OnSuccess::Kexec),
        ("HEALTH=1 NOREBOOT=0", |s| s.onsuccess == OnSuccess::Halt),
        ("HEALTH=0", |s| {
            !s.health && s.onsuccess == OnSuccess::Reboot
        }),
        ("HEALTH=1 HEALTH=0", |s| !s.health),
        ("HEALTH=", |s| !s.health),
        ("HEALTH=1 HEALTH_TIME=30", |s| {
            s.health && s.health_time == 30
        }),
        ("HEALTH_TIME=3600", |s| !s.health && s.health_time == 3600),
        ("BOOTORDER=keep", |s| s.bootorder == BootOrder::Keep),
        ("BOOTORDER=first", |s| s.bootorder == BootOrder::First),
        ("BOOTORDER=keep BOOTORDER=", |s| {
            s.bootorder == BootOrder::First
        }),
        ("| HEALTH=1 |", |s| {
            !s.health && s.onsuccess == OnSuccess::Reboot
        }),
    ];
    for (line, check) in table {
        let s = Settings::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(check(&s), "{line}: {s:#?}");
    }
}

#[test]
fn kept_arguments_between_markers() {
    let table: &[(&str, &[&str])] = &[
        (
            "SERV=a | console=ttyS0 quiet | VERBOSE=1",
            &["console=ttyS0", "quiet"],
        ),
        ("| a b", &["a", "b"]),
        ("x | a | y | b |", &["a", "b"]),
        ("x | SERV=kept \"b c\" |", &["SERV=kept", "b c"]),
        ("no markers", &[]),
    ];
    for (line, kept) in table {
        let s = Settings::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(s.kept, *kept, "{line}");
    }
    // A variable inside the markers is not the installer's.
    let s = Settings::parse("SERV=a | SERV=b |").expect("parse");
    assert_eq!(s.serv, "a");
}

#[test]
fn deprecated_aliases_warn() {
    let s = Settings::parse("DEBUG=1 NOREBOOT=1").expect("parse");
    assert_eq!(
        (s.onfailure, s.onsuccess),
        (OnFailure::Console, OnSuccess::Kexec)
    );
    assert_eq!(
        s.warnings,
        [
            "DEBUG=1 is deprecated: use ONFAILURE=console",
            "NOREBOOT=1 is deprecated: use ONSUCCESS=kexec"
        ]
    );
    // The new names win over the old ones.
    let s = Settings::parse("NOREBOOT=1 ONSUCCESS=halt DEBUG=1 ONFAILURE=reboot").expect("parse");
    assert_eq!(
        (s.onfailure, s.onsuccess),
        (OnFailure::Reboot, OnSuccess::Halt)
    );
    let s = Settings::parse("DEBUG=0").expect("parse");
    assert_eq!(s.onfailure, OnFailure::Halt);
    assert!(s.warnings.is_empty());
}

#[test]
fn bad_values_name_the_variable() {
    let table: &[(&str, &str)] = &[
        ("HTTP_PORT=eighty", "HTTP_PORT=eighty: expected a port number (1-65535)"),
        ("HSERV_PORT=0", "HSERV_PORT=0: expected a port number (1-65535)"),
        ("RSERV_PORT=70000", "RSERV_PORT=70000: expected a port number (1-65535)"),
        ("SERV=a/b", "SERV=a/b: expected a host name or an IP address (IPv6 in brackets)"),
        ("HSERV=-x", "HSERV=-x: expected a host name or an IP address (IPv6 in brackets)"),
        ("ONSUCCESS=poweroff", "ONSUCCESS=poweroff: expected kexec, reboot, halt or console"),
        ("ONFAILURE=kexec", "ONFAILURE=kexec: expected reboot, halt or console"),
        ("VERBOSE=yes", "VERBOSE=yes: expected 0 or 1"),
        ("UPLOAD_LOG=2", "UPLOAD_LOG=2: expected 0 or 1"),
        ("HPATH=../etc", "HPATH=../etc: expected a plain path (no '..', '?', '#', '%', quotes or spaces)"),
        ("HTTP_PATH=/a?b", "HTTP_PATH=/a?b: expected a plain path (no '..', '?', '#', '%', quotes or spaces)"),
        ("KEXEC_KERNEL=../x", "KEXEC_KERNEL=../x: expected a name of letters, digits and '.', '_', '+', '-', '~'"),
        ("SECTION=a/b", "SECTION=a/b: expected a name of letters, digits and '.', '_', '+', '-', '~'"),
        ("EMBEDDED=sr0", "EMBEDDED=sr0: expected an absolute path (a device such as /dev/sr0, or a directory)"),
        ("IP=eth0", "IP=eth0: 'eth0' is not INTERFACE:MODE (MODE is dhcp, none or ADDRESS/PREFIX)"),
        ("IP=eth0:static", "IP=eth0:static: 'static' for eth0 is not dhcp, none or ADDRESS/PREFIX (10.0.0.5/24)"),
        ("IP=eth0:10.0.0.5", "IP=eth0:10.0.0.5: '10.0.0.5' for eth0 is not dhcp, none or ADDRESS/PREFIX (10.0.0.5/24)"),
        ("IP=eth0:10.0.0.5/33", "IP=eth0:10.0.0.5/33: '10.0.0.5/33' for eth0 is not dhcp, none or ADDRESS/PREFIX (10.0.0.5/24)"),
        ("IP=all:10.0.0.5/24", "IP=all:10.0.0.5/24: all:10.0.0.5/24 would give one address to every interface"),
        ("IP=eth0:dhcp,eth0:none", "IP=eth0:dhcp,eth0:none: eth0 is given twice"),
        ("IP=all:dhcp,all:none", "IP=all:dhcp,all:none: 'all' is given twice"),
        ("IP=e/0:dhcp", "IP=e/0:dhcp: 'e/0' is not an interface name"),
        ("HEALTH=yes", "HEALTH=yes: expected 0 or 1"),
        ("HEALTH_TIME=0", "HEALTH_TIME=0: expected a number of seconds (1-3600)"),
        ("HEALTH_TIME=3601", "HEALTH_TIME=3601: expected a number of seconds (1-3600)"),
        ("HEALTH_TIME=5s", "HEALTH_TIME=5s: expected a number of seconds (1-3600)"),
        ("HEALTH_TIME=-1", "HEALTH_TIME=-1: expected a number of seconds (1-3600)"),
        ("BOOTORDER=last", "BOOTORDER=last: expected first or keep"),
        ("BOOTORDER=Keep", "BOOTORDER=Keep: expected first or keep"),
    ];
    for (line, want) in table {
        match Settings::parse(line) {
            Ok(s) => panic!("{line}: accepted as {s:#?}"),
            Err(e) => {
                assert_eq!(e.errors, vec![want.to_string()], "{line}");
                assert_eq!(e.to_string(), format!("bad kernel command line: {want}"));
            }
        }
    }
    // Every bad value at once, the good ones kept in the partial settings.
    let e = Settings::parse("HTTP_PORT=x VERBOSE=2 ONFAILURE=console SERV=s").expect_err("bad");
    assert_eq!(e.errors.len(), 2, "{e}");
    assert_eq!(e.partial.onfailure, OnFailure::Console);
    assert_eq!(e.partial.serv, "s");
    assert_eq!(e.partial.http_port, 80);
}

#[test]
fn a_health_check_with_a_bad_value_still_knows_it_is_one() {
    // The run must fail as a health check (ONFAILURE, no install), and
    // power off by default once done.
    let e = Settings::parse("HEALTH=1 HEALTH_TIME=soon HTTP_PORT=x").expect_err("bad");
    assert_eq!(
        e.errors,
        [
            "HTTP_PORT=x: expected a port number (1-65535)",
            "HEALTH_TIME=soon: expected a number of seconds (1-3600)"
        ]
    );
    assert!(e.partial.health);
    assert_eq!(e.partial.health_time, 5);
    assert_eq!(e.partial.onsuccess, OnSuccess::Halt);
}

#[test]
fn ip_all_defaults_to_none_once_interfaces_are_named() {
    let ip = parse_ip("eth1:10.0.0.5/24").expect("ip");
    assert_eq!(ip.mode("eth0"), &IpMode::None);
    assert_eq!(ip.mode("eth1").to_string(), "10.0.0.5/24");
}

// ----------------------------------------------------------- multipart

#[test]
fn multipart_bodies_are_read_back_by_the_servers_form_reader() {
    // A boundary-looking line inside the data must not cut it.
    let data = b"--------------------------edeploy\r\n[[\"a\",\"b\",\"c\",\"d\"]]\r\n".to_vec();
    let (ct, body) = multipart(&[
        ("file", Part::File("hw.json", &data)),
        ("failure", Part::Text("vm")),
        ("section", Part::Text("lab")),
    ]);
    let boundary = edeploy::cgi::form::boundary(&ct).expect("boundary");
    let form =
        edeploy::cgi::form::read_form(&body[..], &boundary, Some(body.len() as u64), 1 << 20)
            .expect("form");
    let file = form.file.expect("file");
    assert_eq!(file.filename.as_deref(), Some("hw.json"));
    assert_eq!(file.data, data);
    assert_eq!(form.failure.as_deref(), Some("vm"));
    assert_eq!(form.section.as_deref(), Some("lab"));
}

#[test]
fn envelopes_are_read_with_their_json_types() {
    let e = Envelope::parse(
        r#"{"profile": "vm", "vars": {"disk": "vda", "n": 3, "big": 18446744073709551615,
            "f": 1.5, "ok": true, "none": null, "l": [1, "x"], "d": {"k": "v"}},
            "script": "set_role(\"a\", \"b\", \"c\");", "settings": {"PXEMNGR_URL": "http://p/"}}"#,
    )
    .expect("envelope");
    assert_eq!(e.profile, "vm");
    assert_eq!(e.vars["disk"], Value::Str("vda".into()));
    assert_eq!(e.vars["n"], Value::Int(3));
    assert_eq!(e.vars["big"], Value::Int(18_446_744_073_709_551_615));
    assert_eq!(e.vars["f"], Value::Float(1.5));
    assert_eq!(e.vars["ok"], Value::Bool(true));
    assert_eq!(e.vars["none"], Value::None);
    assert_eq!(
        e.vars["l"],
        Value::List(vec![Value::Int(1), Value::Str("x".into())])
    );
    assert_eq!(
        e.vars["d"],
        Value::Dict(vec![(Value::Str("k".into()), Value::Str("v".into()))])
    );
    assert_eq!(e.settings["PXEMNGR_URL"], "http://p/");
    for (text, why) in [
        ("not json", "is not JSON"),
        (r#"{"vars": {}, "script": ""}"#, "has no \"profile\""),
        (r#"{"profile": "vm", "vars": {}}"#, "has no \"script\""),
        (
            r#"{"profile": "vm", "vars": [], "script": ""}"#,
            "\"vars\" is not an object",
        ),
    ] {
        let err = Envelope::parse(text).expect_err(text).to_string();
        assert!(err.contains(why), "{text}: {err}");
    }
}

// ------------------------------------------------------------- unpacking

fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, *data).expect("append");
    }
    b.into_inner().expect("tar").finish().expect("gzip")
}

fn quiet() -> Console {
    Console::new(Box::new(std::io::sink()))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A reader that ends early, as a connection that drops.
struct Cut<'a>(&'a [u8]);

impl Read for Cut<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(buf.len()).min(1000);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn unpacking_is_all_or_nothing() {
    let good = tarball(&[("etc/a", b"a\n"), ("etc/b", &[7u8; 50_000])]);
    let t = Tuning::default();
    let run = |bytes: &[u8], total: Option<u64>| {
        let d = tempfile::tempdir().expect("tmp");
        fs::write(d.path().join("lost+found"), "kept").expect("seed");
        let r = fetch::unpack_verified(Cut(bytes), total, d.path(), "t.edeploy", &quiet(), &t);
        (r.map_err(|e| format!("{e:#}")), entries(d.path()), d)
    };

    let (r, names, d) = run(&good, Some(good.len() as u64));
    assert_eq!(r, Ok(good.len() as u64));
    assert_eq!(names, ["etc", "lost+found"]);
    assert_eq!(fs::read(d.path().join("etc/b")).expect("b").len(), 50_000);

    let bad: Vec<(&str, Vec<u8>, Option<u64>, &str)> = vec![
        // Cut in the middle of the tar.
        (
            "cut",
            good[..good.len() / 2].to_vec(),
            None,
            "cut or corrupt",
        ),
        // Cut in the gzip trailer only: the tar itself is complete.
        (
            "trailer",
            good[..good.len() - 4].to_vec(),
            None,
            "cut or corrupt",
        ),
        // Fewer bytes than Content-Length said.
        (
            "short",
            good[..good.len() - 4].to_vec(),
            Some(good.len() as u64),
            "cut or corrupt",
        ),
        // A wrong CRC.
        (
            "crc",
            {
                let mut v = good.clone();
                let n = v.len();
                v[n - 8] ^= 0xff;
                v
            },
            None,
            "cut or corrupt",
        ),
        // Garbage after the stream.
        (
            "extra",
            {
                let mut v = good.clone();
                v.extend_from_slice(b"junk");
                v
            },
            None,
            "",
        ),
        // More than Content-Length announced.
        ("long", good.clone(), Some(good.len() as u64 - 1), ""),
        (
            "not gzip",
            b"plain text, not an archive".to_vec(),
            None,
            "cut or corrupt",
        ),
    ];
    for (what, bytes, total, why) in bad {
        let (r, names, _d) = run(&bytes, total);
        let err = r.expect_err(what);
        assert!(err.contains(why), "{what}: {err}");
        assert_eq!(names, ["lost+found"], "{what}: left {names:?}");
    }
}

#[test]
fn unpacking_replaces_what_is_there_and_merges_directories() {
    let d = tempfile::tempdir().expect("tmp");
    let r = d.path();
    fs::create_dir_all(r.join("etc/old")).expect("mkdir");
    fs::write(r.join("etc/keep"), "keep").expect("keep");
    fs::write(r.join("etc/a"), "old").expect("a");
    std::os::unix::fs::symlink("/etc/passwd", r.join("etc/link")).expect("symlink");
    fs::write(r.join("etc/dir"), "a file where the tree has a directory").expect("dir");
    let tb = tarball(&[
        ("etc/a", b"new"),
        ("etc/link", b"file"),
        ("etc/dir/x", b"x"),
    ]);
    fetch::unpack_verified(&tb[..], None, r, "t", &quiet(), &Tuning::default()).expect("unpack");
    assert_eq!(fs::read_to_string(r.join("etc/a")).expect("a"), "new");
    assert_eq!(
        fs::read_to_string(r.join("etc/keep")).expect("keep"),
        "keep"
    );
    assert!(r.join("etc/old").is_dir());
    assert!(!r
        .join("etc/link")
        .symlink_metadata()
        .expect("link")
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_to_string(r.join("etc/dir/x")).expect("x"), "x");
}

// ----------------------------------------------------------- tree copies

#[test]
fn overlay_copies_keep_modes_owners_links_and_never_write_through_symlinks() {
    let src = tempfile::tempdir().expect("src");
    let dst = tempfile::tempdir().expect("dst");
    let outside = tempfile::tempdir().expect("outside");
    let s = src.path();
    let d = dst.path();
    fs::create_dir_all(s.join("root/.ssh")).expect("mkdir");
    fs::write(s.join("root/.ssh/authorized_keys"), "key").expect("key");
    fs::set_permissions(
        s.join("root/.ssh/authorized_keys"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::os::unix::fs::chown(s.join("root/.ssh/authorized_keys"), Some(1234), Some(99))
        .expect("chown");
    fs::write(s.join("a"), "a").expect("a");
    fs::hard_link(s.join("a"), s.join("b")).expect("hard link");
    std::os::unix::fs::symlink("a", s.join("c")).expect("symlink");
    fs::write(s.join("resolv.conf"), "nameserver 1.1.1.1\n").expect("resolv");
    // In the tree: /root is 0700 and resolv.conf points outside.
    fs::create_dir(d.join("root")).expect("root");
    fs::set_permissions(d.join("root"), fs::Permissions::from_mode(0o700)).expect("chmod");
    let target = outside.path().join("victim");
    fs::write(&target, "untouched").expect("victim");
    std::os::unix::fs::symlink(&target, d.join("resolv.conf")).expect("symlink");

    let skipped = copy::copy_tree(s, d).expect("copy");
    assert!(skipped.is_empty());
    assert_eq!(fs::read_to_string(&target).expect("victim"), "untouched");
    assert_eq!(
        fs::read_to_string(d.join("resolv.conf")).expect("resolv"),
        "nameserver 1.1.1.1\n"
    );
    assert_eq!(
        fs::metadata(d.join("root")).expect("root").mode() & 0o7777,
        0o700
    );
    let k = fs::metadata(d.join("root/.ssh/authorized_keys")).expect("key");
    assert_eq!((k.mode() & 0o7777, k.uid(), k.gid()), (0o600, 1234, 99));
    let (a, b) = (
        fs::metadata(d.join("a")).expect("a"),
        fs::metadata(d.join("b")).expect("b"),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(fs::read_link(d.join("c")).expect("c"), Path::new("a"));

    // A directory of the overlay that is a symlink in the tree is refused.
    let d2 = tempfile::tempdir().expect("dst2");
    std::os::unix::fs::symlink(outside.path(), d2.path().join("root")).expect("symlink");
    let err = format!("{:#}", copy::copy_tree(s, d2.path()).expect_err("refused"));
    assert!(err.contains("is a symlink in the tree"), "{err}");
    assert!(!outside.path().join(".ssh").exists());
}

/// The tree holds `etc → /outside` and the overlay has `a` and
/// `etc/hostname`: the overlay is refused as a whole, naming the link, and
/// the link is kept (the operator made it; replacing it would silently
/// change what the tree means). Before, `a` was already copied when the
/// refusal came.
#[test]
fn an_overlay_under_a_symlink_of_the_tree_is_refused_before_any_copy() {
    let src = tempfile::tempdir().expect("src");
    let dst = tempfile::tempdir().expect("dst");
    let outside = tempfile::tempdir().expect("outside");
    let (s, d) = (src.path(), dst.path());
    fs::write(s.join("a"), "a").expect("a");
    fs::create_dir(s.join("etc")).expect("mkdir");
    fs::write(s.join("etc/hostname"), "vm01\n").expect("hostname");
    std::os::unix::fs::symlink(outside.path(), d.join("etc")).expect("symlink");

    let err = format!("{:#}", copy::copy_tree(s, d).expect_err("refused"));
    assert_eq!(
        err,
        format!(
            "{}/etc is a symlink in the tree; the copy of {}/etc would go through it",
            d.display(),
            s.display()
        )
    );
    assert!(!d.join("a").exists(), "nothing copied before the refusal");
    assert_eq!(fs::read_link(d.join("etc")).expect("link"), outside.path());
    assert_eq!(fs::read_dir(outside.path()).expect("ls").count(), 0);
}

// ------------------------------------------------------ installed files

fn role() -> Role {
    Role {
        role: "base".into(),
        version: "D12-1.0.0".into(),
        disk: "/dev/vda".into(),
    }
}

#[test]
fn conf_file_is_shell_style() {
    let s = Settings::parse("SERV=10.0.0.2 HSERV=web HSERV_PORT=8080").expect("parse");
    assert_eq!(
        install::conf_text(&s, &role()),
        "VERS=D12-1.0.0\nROLE=base\nSERV=10.0.0.2\nRSERV=10.0.0.2\nRSERV_PORT=873\n\
         RPATH=install\nHSERV=web\nHSERV_PORT=8080\nHPATH=install\n"
    );
    assert_eq!(install::shell_value("a b'c"), "'a b'\\''c'");
}

#[test]
fn grub_command_line() {
    let mut settings = IndexMap::new();
    let args = install::kernel_args(&["console=ttyS0".to_string()], &settings);
    assert_eq!(args, ["console=ttyS0"]);
    settings.insert("METADATA_URL".to_string(), "http://meta/".to_string());
    let args = install::kernel_args(&["console=ttyS0".to_string()], &settings);
    assert_eq!(args, ["console=ttyS0", "ds=nocloud-net;s=http://meta/"]);
    assert_eq!(
        install::grub_cmdline_line(&args),
        "GRUB_CMDLINE_LINUX=\"console=ttyS0 ds=nocloud-net\\\\;s=http://meta/\""
    );
    // What a shell makes of it: the backslash GRUB needs before ';'.
    let line = install::grub_cmdline_line(&["a\"$b`".to_string(), "x;y".to_string()]);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{line}; printf %s \"$GRUB_CMDLINE_LINUX\""))
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\"$b` x\\;y");
    assert_eq!(
        install::edit_default_grub(
            "A=1\nGRUB_CMDLINE_LINUX=\"old\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n",
            &["new".into()]
        ),
        "A=1\nGRUB_CMDLINE_LINUX=\"new\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
    );
    assert_eq!(
        install::edit_default_grub("A=1\n", &[]),
        "A=1\nGRUB_CMDLINE_LINUX=\"\"\n"
    );
}

#[test]
fn root_device_and_kernel_choice() {
    let d = tempfile::tempdir().expect("tmp");
    let r = d.path();
    let target = r.join("chroot");
    assert_eq!(install::root_device(r, &target, "/dev/vda"), "/dev/vda1");
    assert_eq!(
        install::root_device(r, &target, "/dev/nvme0n1"),
        "/dev/nvme0n1p1"
    );
    fs::create_dir_all(r.join("proc")).expect("proc");
    fs::write(
        r.join("proc/mounts"),
        format!(
            "proc /proc proc rw 0 0\n/dev/sda2 {} ext4 rw 0 0\n",
            target.display()
        ),
    )
    .expect("mounts");
    assert_eq!(install::root_device(r, &target, "/dev/sda"), "/dev/sda2");

    fs::create_dir_all(target.join("boot")).expect("boot");
    assert!(install::kernel_version(&target, None).is_err());
    for v in ["6.1.0-9-amd64", "6.1.0-10-amd64", "5.10.0-1-amd64"] {
        fs::write(target.join(format!("boot/vmlinuz-{v}")), "k").expect("kernel");
    }
    assert_eq!(
        install::kernel_version(&target, None).expect("k"),
        "6.1.0-10-amd64"
    );
    assert_eq!(
        install::kernel_version(&target, Some("5.10.0-1-amd64")).expect("k"),
        "5.10.0-1-amd64"
    );
    let err = install::kernel_version(&target, Some("4.0"))
        .expect_err("missing")
        .to_string();
    assert!(
        err.starts_with("KEXEC_KERNEL=4.0: no /boot/vmlinuz-4.0"),
        "{err}"
    );
}

#[test]
fn log_names() {
    let l = |c: &str, n: &str, k: &str, v: &str| [c.into(), n.into(), k.into(), v.into()];
    let lines = vec![
        l(
            "system",
            "product",
            "name",
            "ProLiant DL360p Gen8 (654081-B21)",
        ),
        l("system", "product", "vendor", "HP"),
        l("system", "product", "serial", "CZ3323FDVK"),
        l("network", "eth0", "serial", "d8:9d:67:1a:d0:fc"),
    ];
    assert_eq!(log_name(&lines), "HP-ProLiantDL360pGen8-CZ3323FDVK.log.gz");
    assert_eq!(log_name(&lines[3..]), "d8-9d-67-1a-d0-fc.log.gz");
    assert_eq!(log_name(&[]), "unknown-node.log.gz");
    for name in [log_name(&lines), log_name(&lines[3..]), log_name(&[])] {
        assert_eq!(edeploy::provision::logs::refuse_name(&name), None, "{name}");
    }
}

// ------------------------------------------------------- drivers

/// A modprobe that, like the kernel, makes the devices of a bus appear
/// once the bus driver is loaded: loading the PCI alias of the virtio
/// controller creates `virtio0` with a modalias of its own.
fn bus_modprobe(root: &Path) -> Fake {
    let dev = root.join("sys/devices/pci0000:00/0000:00:04.0/virtio0");
    Fake::bare().on(
        When::program("modprobe"),
        Reply::with(move |cmd, _stdin| {
            if cmd.display().contains("pci:v00001AF4") {
                fs::create_dir_all(&dev)?;
                fs::write(dev.join("modalias"), "virtio:d00000002v00001AF4\n")?;
            }
            Ok(CmdOutput::default())
        }),
    )
}

#[test]
fn drivers_load_in_rounds_until_no_new_device_appears() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pci = dir.path().join("sys/devices/pci0000:00/0000:00:04.0");
    fs::create_dir_all(&pci).expect("sysfs");
    fs::write(
        pci.join("modalias"),
        "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
    )
    .expect("modalias");
    let exec = bus_modprobe(dir.path());
    let n = edeploy::init::bringup::load_drivers(dir.path(), &exec, &quiet());
    let calls = exec.commands();
    assert_eq!(n, 2, "both aliases given: {calls:?}");
    assert_eq!(
        calls.len(),
        2,
        "a second round for the bus's device: {calls:?}"
    );
    assert_eq!(
        calls[1],
        CmdLine::argv(["modprobe", "-abq", "virtio:d00000002v00001AF4"]),
        "the second round names only the new alias"
    );
}

// ------------------------------------------------- trusted keys copied

#[test]
fn trusted_keys_are_copied_into_the_tree_never_through_a_symlink() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("etc/edeploy/trusted.d");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("a.pub"), "key a\n").expect("write");
    fs::write(dir.join("b.pub"), "key b\n").expect("write");
    fs::write(dir.join("README"), "not a key\n").expect("write");

    // A plain tree: both keys, nothing else.
    let target = tempfile::tempdir().expect("tempdir");
    let t = target.path();
    assert_eq!(install::copy_trusted(root.path(), t).expect("copied"), 2);
    let got = t.join("etc/edeploy/trusted.d");
    assert_eq!(fs::read_to_string(got.join("a.pub")).expect("a"), "key a\n");
    assert_eq!(fs::read_to_string(got.join("b.pub")).expect("b"), "key b\n");
    assert!(!got.join("README").exists());

    // A key file that is a symlink out of the tree is replaced, and what
    // it pointed to is left alone.
    let outside = tempfile::tempdir().expect("tempdir");
    let victim = outside.path().join("victim");
    fs::write(&victim, "precious\n").expect("write");
    fs::remove_file(got.join("a.pub")).expect("rm");
    std::os::unix::fs::symlink(&victim, got.join("a.pub")).expect("symlink");
    install::copy_trusted(root.path(), t).expect("copied");
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious\n");
    assert!(!fs::symlink_metadata(got.join("a.pub"))
        .expect("a")
        .file_type()
        .is_symlink());

    // A parent that is a symlink out of the tree is refused, naming it.
    let target = tempfile::tempdir().expect("tempdir");
    let t = target.path();
    fs::create_dir_all(t.join("etc")).expect("mkdir");
    std::os::unix::fs::symlink(outside.path(), t.join("etc/edeploy")).expect("symlink");
    let e = install::copy_trusted(root.path(), t).expect_err("through a symlink");
    assert!(
        format!("{e:#}").contains("etc/edeploy is a symlink"),
        "{e:#}"
    );
    assert!(!outside.path().join("trusted.d").exists());

    // No trusted.d in the initrd: nothing to copy.
    let bare = tempfile::tempdir().expect("tempdir");
    assert_eq!(install::copy_trusted(bare.path(), t).expect("none"), 0);
}
