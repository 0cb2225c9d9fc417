//! `edeploy-admin`'s contracts, through the real binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/share/examples/config");

fn admin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edeploy-admin"))
        .args(args)
        .output()
        .expect("run edeploy-admin")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fix(p: &str) -> String {
    format!("{FIX}/{p}")
}

/// The KVM fixture as today's installer reports it, written in `dir`:
/// with the boot-mode line the example profile's vm.specs binds
/// (`$boot_mode`), which the captured list predates.
fn kvm_in(dir: &Path) -> String {
    let text = fs::read_to_string(fix("hw/kvm-test-vm.hw")).unwrap();
    let text = text.replacen('[', "[('firmware', 'boot', 'mode', 'bios'),\n ", 1);
    let p = dir.join("kvm-test-vm.hw");
    fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn match_json_prints_vars_and_forced() {
    let out = admin(&[
        "match",
        "--json",
        &fix("reference-config/kvm-test.specs"),
        &fix("hw/kvm-test-vm.hw"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["vars"]["disk"], "vda");
    assert_eq!(v["vars"]["eth"], "eth0");
    assert_eq!(v["vars"]["eth-io"], "eth1");
    assert_eq!(v["vars"]["mac-mgmt"], "52:54:12:34:00:03");
    assert_eq!(v["vars"]["ipmi-fake-channel"], "0");
    assert_eq!(v["forced"], serde_json::json!({}));
}

#[test]
fn match_plain_and_no_match() {
    let out = admin(&[
        "match",
        &fix("reference-config/devstack.specs"),
        &fix("hw/dell-poweredge-m520.hw"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("disk=sda\n"), "{stdout}");
    assert!(stdout.contains("mac="), "{stdout}");

    // The KVM guest's only disk has 4 GB: devstack's first line has no candidate.
    let out = admin(&[
        "match",
        &fix("reference-config/devstack.specs"),
        &fix("hw/kvm-test-vm.hw"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("spec line 1 ('disk', '$disk', 'size', 'gt(4)')"),
        "{stderr}"
    );
}

#[test]
fn match_explain_shows_the_search() {
    let out = admin(&[
        "match",
        "--explain",
        &fix("reference-config/kvm-test.specs"),
        &fix("hw/kvm-test-vm.hw"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(stderr.lines().count() >= 12, "{stderr}");
    assert!(stderr.contains("vda"), "{stderr}");
}

#[test]
fn bad_input_exits_2_with_the_location() {
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("bad.specs");
    fs::write(
        &specs,
        "[\n  ('disk', '$d', 'size', 'gt(1)')\n  ('network', '$e', 'serial', '$m'),\n]\n",
    )
    .unwrap();
    let out = admin(&["match", specs.to_str().unwrap(), &fix("hw/kvm-test-vm.hw")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("edeploy-admin: {}:3:3:", specs.display())),
        "{stderr}"
    );
    let out = admin(&["match", &fix("hw/kvm-test-vm.hw"), "/nonexistent.hw"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent.hw"));
}

fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let d = fs::read(&p).unwrap();
            (p, d)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn try_on_the_example_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new(EXAMPLE), dir.path());
    let hw_dir = tempfile::tempdir().unwrap();
    let kvm = kvm_in(hw_dir.path());
    let before = snapshot(dir.path());
    let out = admin(&["try", dir.path().to_str().unwrap(), &kvm]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("profile: vm\n"), "{stdout}");
    assert!(stdout.contains("cmdb entry: 1\n"), "{stdout}");
    assert!(stdout.contains("hostname = 'vm01'"), "{stdout}");
    assert!(
        stdout.contains("installs left after this one: 9"),
        "{stdout}"
    );
    assert_eq!(snapshot(dir.path()), before);

    let out = admin(&["try", "--json", dir.path().to_str().unwrap(), &kvm]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["profile"], "vm");
    assert_eq!(v["vars"]["ip"], "10.0.2.15");
    assert_eq!(v["vars"]["edeploy-profile"], "vm");
    assert!(v["script"].as_str().unwrap().contains("set_role("));

    let out = admin(&[
        "try",
        dir.path().to_str().unwrap(),
        &fix("hw/hp-proliant-dl360p-gen8.hw"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no profile matches"));
}

#[test]
fn cmdb_expand_prints_json() {
    let out = admin(&["cmdb", "expand", &fix("reference-config/kvm-test.cmdb")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = v.as_array().unwrap();
    // 'kvm1-3' is the shortest generator.
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2]["ip"], "10.0.2.5");
    assert_eq!(entries[2]["ip-mgmt"], "192.168.1.3");
    assert_eq!(entries[2]["hostname"], "kvm3");
    assert_eq!(entries[0]["gateway"], "10.0.2.2");
}

#[test]
fn cmdb_check_reports_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.cmdb");
    fs::write(
        &f,
        "[{'ip': '10.0.0.1', 'hostname': 'a', 'used': 1},\n {'ip': '10.0.0.1', 'hostname': 'b'}]",
    )
    .unwrap();
    let out = admin(&["cmdb", "check", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("10.0.0.1"), "{stdout}");
    let out = admin(&["cmdb", "check", &fix("reference-config/kvm-test.cmdb")]);
    assert_eq!(out.status.code(), Some(0));
    fs::write(&f, "[{'ip': '10.0.0.1'} {'ip': '10.0.0.2'}]").unwrap();
    let out = admin(&["cmdb", "check", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("x.cmdb:1:21"),
        "{}",
        text(&out.stderr)
    );
}
