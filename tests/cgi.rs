//! `upload.cgi` behind real web servers: one suite, run against Apache
//! (event MPM, mod_cgid) and lighttpd (mod_cgi), every request sent by the
//! real `curl` as a node sends it; then a boot storm and a crash storm
//! through lighttpd, and hostile requests.
//!
//! Apache and lighttpd must be installed (`.ci/run` installs them): a
//! missing server fails these tests, it does not skip them.

#[macro_use]
mod support;

use edeploy::hw;
use edeploy::literal::Value;
use edeploy::provision::decide::Cmdb;
use edeploy::state::{Count, State};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{local_upload_cgi, scratch, synth_hw, Answer, Kind, Options, Site, ROOT};

fn fixture(name: &str) -> PathBuf {
    Path::new(ROOT).join("tests/fixtures/hw").join(name)
}

const KVM: &str = "kvm-test-vm.hw";
const HP: &str = "hp-proliant-dl360p-gen8.hw";
const DELL: &str = "dell-poweredge-m520.hw";
const JSON: &str = "virtio-vm-hardware-detect.json";

/// The KVM fixture as today's installer uploads it: with the boot-mode
/// line the example profile's vm.specs binds (`$boot_mode`), which the
/// captured list predates.
fn kvm(site: &Site) -> PathBuf {
    let text = fs::read_to_string(fixture(KVM)).expect("fixture");
    let text = text.replacen('[', "[('firmware', 'boot', 'mode', 'bios'),\n ", 1);
    scratch(site, KVM, text.as_bytes())
}

fn state_of(site: &Site, rel: &str) -> State {
    State::load(&site.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e:#}"))
}

fn count(site: &Site, profile: &str) -> Count {
    state_of(site, "config/state")
        .get(profile)
        .unwrap_or_else(|| panic!("{profile} not in state"))
        .count
}

// ---------------------------------------------------------------------------
// The suite, identical for both servers.

fn hardware_detect_json_upload(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let a = site.upload(&fixture(JSON), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["profile"], "virtio");
    assert_eq!(v["vars"]["disk"], "vda");
    assert_eq!(v["vars"]["mac"], "02:fc:00:00:00:01");
    assert_eq!(v["vars"]["edeploy-profile"], "virtio");
    assert!(v["script"].as_str().unwrap_or("").contains("set_role"));
    assert!(v["settings"].is_object());
    // No DMI product in a container: the first MAC names the node. The
    // JSON upload is kept in the literal dialect, every value a string.
    let saved = site.read("hw/02-fc-00-00-00-01.hw");
    assert!(
        saved.starts_with("[('disk', 'logical', 'count', '1'),"),
        "{saved}"
    );
    let lines = hw::parse(&saved, "saved").expect("saved list parses");
    assert_eq!(lines[1], ["disk", "vda", "size", "274"].map(String::from));
    assert_eq!(count(&site, "virtio"), Count::Left(2));
    let needle = " 127.0.0.1: 200 02-fc-00-00-00-01: profile virtio";
    let log = site.log_with(needle);
    assert!(log.iter().any(|l| l.contains(needle)), "{log:?}");
}

fn literal_uploads_are_kept_under_their_sysname(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let a = site.upload(&kvm(&site), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["profile"], "vm");
    assert_eq!(a.json()["vars"]["ip"], "10.0.2.15");
    assert!(site
        .path("hw/edeploy_test_vm-kvm-52-54-12-34-00-03.hw")
        .exists());

    let a = site.upload(&fixture(HP), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["profile"], "hp");
    assert_eq!(v["vars"]["hostname"], "hp-1");
    assert_eq!(v["vars"]["serial"], "CZ3323FDVK");
    let saved = site.read("hw/ProLiantDL360pGen8654081B21-HP-CZ3323FDVK.hw");
    let original = fs::read_to_string(fixture(HP)).expect("fixture");
    assert_eq!(
        hw::parse(&saved, "saved").expect("saved"),
        hw::parse(&original, "fixture").expect("fixture")
    );
    assert_eq!(count(&site, "hp"), Count::Left(1));

    // The same node again: same entry, no install consumed.
    let again = site.upload(&fixture(HP), &[]);
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["vars"], v["vars"]);
    assert_eq!(count(&site, "hp"), Count::Left(1));
}

fn garbage_hardware_is_400(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let junk = scratch(&site, "junk.hw", b"[('system', 'product', 'vendor')");
    let a = site.upload(&junk, &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.error().starts_with("bad hardware list: "), "{}", a.body);
    let not_a_list = scratch(&site, "dict.hw", b"{\"a\": 1}");
    assert_eq!(site.upload(&not_a_list, &[]).status, 400);
    assert_eq!(fs::read_dir(site.path("hw")).expect("hw").count(), 0);
    let log = site.log_with(": 400 bad hardware list");
    assert!(
        log.iter().any(|l| l.contains(": 400 bad hardware list")),
        "{log:?}"
    );
}

fn no_match_is_404_naming_the_profiles(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let nobody = scratch(
        &site,
        "nobody.hw",
        b"[('system', 'product', 'vendor', 'Nobody'), ('system', 'product', 'serial', 'N1')]",
    );
    let a = site.upload(&nobody, &[]);
    assert_eq!(a.status, 404, "{}", a.body);
    let e = a.error();
    assert!(
        e.starts_with("Nobody-N1: no profile matches this hardware"),
        "{e}"
    );
    for p in ["vm: ", "virtio: ", "hp: ", "dell: "] {
        assert!(e.contains(p), "{p} missing from {e}");
    }
}

fn exhausted_cmdb_is_409(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let a = site.upload(&fixture(DELL), &[]);
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(
        a.error().contains("no more entries in the CMDB of dell"),
        "{}",
        a.body
    );
    assert_eq!(count(&site, "dell"), Count::Left(5));
    // Every non-word character of each part is dropped.
    assert!(site
        .path("hw/PowerEdgeM520SKUNotProvidedModelNamePowerEdgeM520-DellInc-9K9PW02.hw")
        .exists());
}

fn oversized_body_is_413(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let big = scratch(&site, "big.hw", &vec![b' '; 2 << 20]);
    let a = site.upload(&big, &[]);
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(a.error().contains("larger than"), "{}", a.body);
    assert_eq!(fs::read_dir(site.path("hw")).expect("hw").count(), 0);
}

fn get_is_405(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let a = site.curl(&[]);
    assert_eq!(a.status, 405, "{}", a.body);
    assert!(a.error().contains("only POST"), "{}", a.body);
}

fn bad_specs_is_500_naming_file_and_line(kind: Kind) {
    let site = Site::start(kind, Options::default());
    site.write(
        "config/vm.specs",
        "[\n    ('disk', '$disk', 'size', 'gt(1)')\n    ('network', '$eth', 'serial', '$mac'),\n]\n",
    );
    let a = site.upload(&kvm(&site), &[]);
    assert_eq!(a.status, 500, "{}", a.body);
    let e = a.error();
    assert!(e.contains("vm.specs:3"), "{e}");
    let log = site.log_with("vm.specs:3");
    assert!(
        log.iter()
            .any(|l| l.contains(": 500 ") && l.contains("vm.specs:3")),
        "{log:?}"
    );
}

fn failure_report_gives_the_install_back(kind: Kind) {
    let site = Site::start(kind, Options::default());
    assert_eq!(site.upload(&kvm(&site), &[]).status, 200);
    assert_eq!(count(&site, "vm"), Count::Left(9));
    let a = site.upload(&kvm(&site), &["failure=vm"]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        serde_json::json!({"profile": "vm", "given_back": true})
    );
    assert_eq!(count(&site, "vm"), Count::Left(10));
    // The CMDB entry stays the node's: its next attempt gets it again.
    let again = site.upload(&kvm(&site), &[]);
    assert_eq!(again.json()["vars"]["ip"], "10.0.2.15");
    assert_eq!(count(&site, "vm"), Count::Left(10));
    let unknown = site.upload(&kvm(&site), &["failure=nosuch"]);
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

fn logs_are_kept_and_rotated(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let first = scratch(&site, "node7.log.gz", b"\x1f\x8b first attempt");
    let a = site.upload(&first, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        serde_json::json!({"log": "node7.log.gz", "rotated": null})
    );
    let second = scratch(&site, "node7.log.gz", b"\x1f\x8b second attempt");
    let a = site.upload(&second, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let rotated = a.json()["rotated"].as_str().unwrap_or("").to_string();
    let stamp = rotated
        .strip_prefix("node7.")
        .and_then(|r| r.strip_suffix(".log.gz"))
        .unwrap_or_else(|| panic!("rotated as {rotated:?}"));
    assert!(
        stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "{stamp}"
    );
    let names: HashSet<String> = fs::read_dir(site.path("logs"))
        .expect("logs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        HashSet::from(["node7.log.gz".to_string(), rotated.clone()])
    );
    assert_eq!(
        fs::read(site.path("logs").join(&rotated)).expect("rotated"),
        b"\x1f\x8b first attempt"
    );
    assert_eq!(
        fs::read(site.path("logs/node7.log.gz")).expect("log"),
        b"\x1f\x8b second attempt"
    );
}

fn a_section_selects_another_config_set(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let a = site.upload(&kvm(&site), &["section=lab"]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["profile"], "labvm");
    // [lab] keeps [SERVER]'s HWDIR and leaves [SERVER]'s state alone.
    assert!(site
        .path("hw/edeploy_test_vm-kvm-52-54-12-34-00-03.hw")
        .exists());
    assert_eq!(count(&site, "vm"), Count::Left(10));
    let a = site.upload(&kvm(&site), &["section=nosuch"]);
    assert_eq!(a.status, 400, "{}", a.body);
}

fn pxemngr_is_told_about_the_node(kind: Kind) {
    let opts = Options {
        conf: "USEPXEMNGR = True\nPXEMNGR = {root}/pxemngr.sh\n".into(),
        ..Options::default()
    };
    let site = Site::start(kind, opts);
    site.write(
        "pxemngr.sh",
        &format!(
            "#!/bin/sh\necho \"$@\" >> {}\n",
            site.path("pxemngr.calls").display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(site.path("pxemngr.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(site.upload(&kvm(&site), &[]).status, 200);
    assert_eq!(site.upload(&fixture(HP), &[]).status, 200);
    assert_eq!(
        site.read("pxemngr.calls"),
        "addsystem edeploy_test_vm-kvm-52-54-12-34-00-03 52:54:12:34:00:03 52:54:12:34:00:02 52:54:12:34:00:01\n\
         addsystem ProLiantDL360pGen8654081B21-HP-CZ3323FDVK d8:9d:67:1a:d0:fc d8:9d:67:1a:d0:fd d8:9d:67:1a:d0:fe d8:9d:67:1a:d0:ff\n"
    );
}

// Hostile input: each a clear 4xx, nothing run, nothing written outside
// its directory.

fn code_in_an_upload_is_refused_not_run(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let marker = site.path("pwned");
    let evil = format!("__import__('os').system('touch {}')", marker.display());
    let f = scratch(&site, "evil.hw", evil.as_bytes());
    let a = site.upload(&f, &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    // The same with the literal path of the classic exploit.
    let classic = scratch(
        &site,
        "classic.hw",
        b"__import__('os').system('touch /tmp/x')",
    );
    let had_x = Path::new("/tmp/x").exists();
    assert_eq!(site.upload(&classic, &[]).status, 400);
    assert!(!marker.exists(), "the upload was evaluated");
    assert!(
        had_x || !Path::new("/tmp/x").exists(),
        "the upload was evaluated"
    );
    assert_eq!(fs::read_dir(site.path("hw")).expect("hw").count(), 0);
}

fn a_log_name_with_dotdot_is_refused(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let f = scratch(&site, "x.log.gz", b"data");
    for name in ["../escape.log.gz", "../../escape.log.gz", "sub/x.log.gz"] {
        let arg = format!("file=@{};filename={name}", f.display());
        let a = site.curl(&["-F", &arg]);
        assert_eq!(a.status, 400, "{name}: {}", a.body);
        assert!(a.error().contains("log file name"), "{}", a.body);
    }
    assert!(!site.path("escape.log.gz").exists());
    assert!(!site.root().join("../escape.log.gz").exists());
    assert_eq!(fs::read_dir(site.path("logs")).expect("logs").count(), 0);
}

fn a_gigabyte_declared_body_is_refused_unread(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let small = scratch(
        &site,
        "part.bin",
        b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n",
    );
    let started = Instant::now();
    let data = format!("@{}", small.display());
    let a = site.curl(&[
        "-H",
        "Content-Type: multipart/form-data; boundary=x",
        "-H",
        "Content-Length: 1073741824",
        "--data-binary",
        &data,
    ]);
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(a.error().contains("larger than"), "{}", a.body);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}: the body was waited for",
        started.elapsed()
    );
}

fn a_broken_boundary_is_400(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let hw = fs::read(kvm(&site)).expect("fixture");
    let mut body =
        b"--real\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hw\"\r\n\r\n"
            .to_vec();
    body.extend_from_slice(&hw);
    let mut whole = body.clone();
    whole.extend_from_slice(b"\r\n--real--\r\n");
    let whole = scratch(&site, "whole.bin", &whole);
    let cut = scratch(&site, "cut.bin", &body);
    let post = |content_type: &str, file: &Path| {
        let data = format!("@{}", file.display());
        let header = format!("Content-Type: {content_type}");
        site.curl(&["-H", &header, "--data-binary", &data])
    };
    // The control: this body is well formed.
    let a = post("multipart/form-data; boundary=real", &whole);
    assert_eq!(a.status, 200, "{}", a.body);
    // The header names another boundary than the body uses.
    let a = post("multipart/form-data; boundary=other", &whole);
    assert_eq!(a.status, 400, "{}", a.body);
    // The closing boundary never comes.
    let a = post("multipart/form-data; boundary=real", &cut);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.error().contains("closing boundary"), "{}", a.body);
    // No boundary at all, or not multipart.
    let a = post("multipart/form-data", &whole);
    assert_eq!(a.status, 400, "{}", a.body);
    let a = post("application/x-www-form-urlencoded", &whole);
    assert_eq!(a.status, 400, "{}", a.body);
}

fn non_utf8_values_are_400(kind: Kind) {
    let site = Site::start(kind, Options::default());
    // A section name that is not UTF-8 (curl reads the value from a file).
    let bad = scratch(&site, "section.txt", b"l\xffb");
    let section = format!("section=<{}", bad.display());
    let file = format!("file=@{}", kvm(&site).display());
    let a = site.curl(&["-F", &section, "-F", &file]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.error().contains("not valid UTF-8"), "{}", a.body);
    // A hardware list with invalid bytes.
    let f = scratch(
        &site,
        "latin1.hw",
        b"[('system', 'product', 'vendor', 'Caf\xe9')]",
    );
    let a = site.upload(&f, &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    // A log file name with invalid bytes.
    let log = scratch(&site, "n.log.gz", b"x");
    let mut arg = format!("file=@{};filename=n", log.display()).into_bytes();
    arg.extend_from_slice(b"\xff.log.gz");
    let a = curl_os(&site, vec![OsString::from("-F"), OsString::from_vec(arg)]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(fs::read_dir(site.path("logs")).expect("logs").count(), 0);
    assert_eq!(fs::read_dir(site.path("hw")).expect("hw").count(), 0);
}

fn curl_os(site: &Site, args: Vec<OsString>) -> Answer {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(args)
        .arg(site.url())
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    support::parse_curl(&out.stdout, &out.stderr)
}

suite!(
    hardware_detect_json_upload,
    literal_uploads_are_kept_under_their_sysname,
    garbage_hardware_is_400,
    no_match_is_404_naming_the_profiles,
    exhausted_cmdb_is_409,
    oversized_body_is_413,
    get_is_405,
    bad_specs_is_500_naming_file_and_line,
    failure_report_gives_the_install_back,
    logs_are_kept_and_rotated,
    a_section_selects_another_config_set,
    pxemngr_is_told_about_the_node,
    code_in_an_upload_is_refused_not_run,
    a_log_name_with_dotdot_is_refused,
    a_gigabyte_declared_body_is_refused_unread,
    a_broken_boundary_is_400,
    non_utf8_values_are_400,
);

// ---------------------------------------------------------------------------
// Boot storms through lighttpd.

const RACK: u64 = 250;
const NODES: usize = 300;

fn storm_options(env: Vec<(String, String)>) -> Options {
    Options {
        fixtures: vec![
            "rack.specs",
            "rack.configure",
            "rack.cmdb",
            "spare.specs",
            "spare.configure",
        ],
        files: vec![(
            "state".into(),
            format!("[('rack', {RACK}), ('spare', '*')]\n"),
        )],
        env,
        ..Options::default()
    }
}

/// A synthetic node: its own serial and MAC.
fn node_mac(i: usize) -> String {
    format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256)
}

fn write_nodes(site: &Site, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let text = synth_hw(&format!("SN{i:05}"), &node_mac(i));
            scratch(site, &format!("node{i}.hw"), text.as_bytes())
        })
        .collect()
}

fn str_of<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v["vars"][key].as_str().unwrap_or("")
}

fn entry_str<'a>(e: &'a Value, key: &str) -> Option<&'a str> {
    e.get(key).and_then(|v| v.as_str())
}

/// The rack CMDB's used entries, by MAC, failing on any entry given twice.
fn used_entries(site: &Site) -> HashMap<String, (String, String)> {
    let db = Cmdb::load(&site.path("config/rack.cmdb")).expect("rack.cmdb parses");
    assert_eq!(db.entries.len(), NODES, "the CMDB lost or gained entries");
    let mut by_mac = HashMap::new();
    let mut ips = HashSet::new();
    let mut names = HashSet::new();
    for e in &db.entries {
        if e.get("used").is_none() {
            continue;
        }
        let mac = entry_str(e, "mac").expect("a used entry records its node's MAC");
        let ip = entry_str(e, "ip").expect("ip").to_string();
        let host = entry_str(e, "hostname").expect("hostname").to_string();
        assert!(ips.insert(ip.clone()), "{ip} handed out twice");
        assert!(names.insert(host.clone()), "{host} handed out twice");
        assert!(
            by_mac.insert(mac.to_string(), (ip, host)).is_none(),
            "node {mac} owns two CMDB entries"
        );
    }
    by_mac
}

#[test]
fn boot_storm_through_lighttpd() {
    let site = Site::start(Kind::Lighttpd, storm_options(Vec::new()));
    let nodes = write_nodes(&site, NODES);
    let started = Instant::now();
    let answers = site.upload_all(&nodes);
    let took = started.elapsed();
    let mut rack = Vec::new();
    let mut spare = 0;
    for (i, a) in answers.iter().enumerate() {
        let a = a
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} got no answer"));
        assert_eq!(a.status, 200, "node {i}: {}", a.body);
        let v = a.json();
        match v["profile"].as_str() {
            Some("rack") => rack.push((i, v)),
            Some("spare") => spare += 1,
            other => panic!("node {i} got {other:?}"),
        }
    }
    assert_eq!(rack.len() as u64, RACK, "took {took:?}");
    assert_eq!(spare, NODES - RACK as usize);
    assert_eq!(count(&site, "rack"), Count::Left(0));
    let ips: HashSet<&str> = rack.iter().map(|(_, v)| str_of(v, "ip")).collect();
    let names: HashSet<&str> = rack.iter().map(|(_, v)| str_of(v, "hostname")).collect();
    assert_eq!(ips.len() as u64, RACK, "an IP was handed out twice");
    assert_eq!(names.len() as u64, RACK, "a hostname was handed out twice");
    // What the nodes were told is what the CMDB says.
    let used = used_entries(&site);
    assert_eq!(used.len() as u64, RACK);
    for (i, v) in &rack {
        let (ip, host) = &used[&node_mac(*i)];
        assert_eq!(
            (str_of(v, "ip"), str_of(v, "hostname")),
            (ip.as_str(), host.as_str())
        );
    }

    // A served node boots the installer again: same answer, nothing taken.
    let cmdb_before = site.read("config/rack.cmdb");
    let (i, first) = &rack[0];
    let again = site.upload(&nodes[*i], &[]);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["vars"], first["vars"]);
    assert_eq!(count(&site, "rack"), Count::Left(0));
    assert_eq!(site.read("config/rack.cmdb"), cmdb_before);
    let spare_node = (0..NODES)
        .find(|i| !rack.iter().any(|(r, _)| r == i))
        .expect("a spare node");
    let again = site.upload(&nodes[spare_node], &[]);
    assert_eq!(again.json()["profile"], "spare");
    assert_eq!(site.read("config/rack.cmdb"), cmdb_before);
    eprintln!("boot storm: {NODES} concurrent uploads answered in {took:?}");
}

/// Our site's running `upload.cgi` processes (by the path of their
/// executable, so other tests' processes are never touched).
fn cgi_pids(site: &Site) -> Vec<i32> {
    let exe = site.path("cgi-bin/upload.cgi");
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe))
        .collect()
}

/// The pid holding the site's `flock` on LOCKFILE, from `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`; waiters are marked
/// `->` and skipped).
fn lock_holder(site: &Site) -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let ino = fs::metadata(site.path("run/edeploy.lock")).ok()?.ino();
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 6 || f[1] != "FLOCK" {
            return None;
        }
        let file_ino: u64 = f[5].rsplit(':').next()?.parse().ok()?;
        (file_ino == ino).then(|| f[4].parse().ok()).flatten()
    })
}

/// A small xorshift generator: random enough to spread kills over time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn killed_uploads_leave_consistent_files() {
    const KILLS: usize = 200;
    let env = vec![("EDEPLOY_TEST_COMMIT_DELAY_MS".to_string(), "15".to_string())];
    let site = Site::start(Kind::Lighttpd, storm_options(env));
    let nodes = write_nodes(&site, NODES + 1);
    let fresh = nodes[NODES].clone();
    let deadline = Instant::now() + Duration::from_secs(150);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (mut kills, mut in_commit) = (0, 0);
    let mut answers: Vec<(usize, Answer)> = Vec::new();
    std::thread::scope(|s| {
        let killer = s.spawn(|| {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
            let (mut kills, mut in_commit) = (0, 0);
            while kills < KILLS && Instant::now() < deadline {
                let pids = cgi_pids(&site);
                // Half the time aim at the request inside the critical
                // section, the one whose death could tear something.
                let holder = lock_holder(&site).filter(|p| pids.contains(p));
                let target = match holder {
                    Some(p) if rng.next() % 2 == 0 => Some(p),
                    _ if pids.is_empty() => None,
                    _ => Some(pids[(rng.next() % pids.len() as u64) as usize]),
                };
                if let Some(pid) = target {
                    // A record committed and not yet applied: the holder
                    // is between its commit point and its last rename.
                    let mid_commit =
                        edeploy::persist::pending(&site.path("config")).unwrap_or(false);
                    // SAFETY: kill(2) on a pid just read from /proc whose
                    // executable is this site's upload.cgi.
                    if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                        kills += 1;
                        if Some(pid) == holder && mid_commit {
                            in_commit += 1;
                        }
                    }
                }
                std::thread::sleep(Duration::from_micros(rng.next() % 20_000));
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            (kills, in_commit)
        });
        // Waves of concurrent uploads, cycling through the nodes, until the
        // killer has killed enough.
        let mut next = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
            let wave: Vec<usize> = (0..40).map(|k| (next + k) % NODES).collect();
            next += 40;
            let files: Vec<PathBuf> = wave.iter().map(|&i| nodes[i].clone()).collect();
            for (i, a) in wave.into_iter().zip(site.upload_all(&files)) {
                if let Some(a) = a {
                    answers.push((i, a));
                }
            }
        }
        (kills, in_commit) = killer.join().expect("killer thread");
    });
    assert!(kills >= KILLS, "only {kills} kills before the deadline");
    assert!(
        in_commit > 0,
        "no kill landed inside a commit: the test did not test the journal"
    );

    // Every file parses, before any recovery runs.
    State::load(&site.path("config/state")).expect("state parses");
    Cmdb::load(&site.path("config/rack.cmdb")).expect("rack.cmdb parses");
    for e in fs::read_dir(site.path("hw")).expect("hw").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // a temporary file of a killed request
        }
        let text = fs::read_to_string(e.path()).expect("hw file");
        hw::parse(&text, &name).unwrap_or_else(|err| panic!("{name}: {err}"));
    }

    // A request killed between its renames leaves its record for the
    // next one to finish.
    let interrupted = edeploy::persist::pending(&site.path("config")).unwrap_or(false);

    // No stale lock: a node never seen before is served at once (and its
    // request finishes what a killed one left half done).
    let started = Instant::now();
    let a = site.upload(&fresh, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Quota and CMDB agree, no entry has two owners, and what a node was
    // told is what the CMDB holds for it.
    let used = used_entries(&site);
    let left = match count(&site, "rack") {
        Count::Left(n) => n,
        Count::Unlimited => panic!("rack became unlimited"),
    };
    assert_eq!(
        RACK - left,
        used.len() as u64,
        "installs taken vs entries used"
    );
    let mut told: HashMap<String, String> = HashMap::new();
    for (i, a) in &answers {
        if a.status != 200 {
            continue; // killed mid-request: the web server answered for it
        }
        let v = a.json();
        if v["profile"] != "rack" {
            continue;
        }
        let mac = node_mac(*i);
        let ip = str_of(&v, "ip").to_string();
        assert_eq!(used.get(&mac).map(|(ip, _)| ip.as_str()), Some(ip.as_str()));
        if let Some(before) = told.insert(mac.clone(), ip.clone()) {
            assert_eq!(before, ip, "node {mac} was told two addresses");
        }
    }
    let ok = answers.iter().filter(|(_, a)| a.status == 200).count();
    eprintln!(
        "crash storm: {kills} kills ({in_commit} of the lock holder mid-commit), {} requests ({ok} answered 200), {} entries used, \
         update left unfinished: {interrupted}",
        answers.len(),
        used.len()
    );
}

// ---------------------------------------------------------------------------
// Names too long for a file: a system product name, vendor and serial that
// make a sysname of 250 bytes. Before sysnames were cut, the commit's
// spare `.NAME.hw.edeploy-tmp` went over NAME_MAX after the commit point:
// the upload answered 500 having taken an install, and every later upload
// answered 500 on the record it could not replay.

/// The KVM fixture (as [`kvm`] sends it) with the given system product
/// name, vendor and serial, its MACs ending in `mac`.
fn long_named(site: &Site, file: &str, name: &str, vendor: &str, serial: &str, mac: u8) -> PathBuf {
    let text = fs::read_to_string(kvm(site)).expect("kvm fixture");
    let text = text
        .replace("'edeploy_test_vm ()'", &format!("'{name}'"))
        .replace(
            "('system', 'product', 'vendor', 'kvm'),",
            &format!(
                "('system', 'product', 'vendor', '{vendor}'),\n \
                 ('system', 'product', 'serial', '{serial}'),"
            ),
        )
        .replace("52:54:12:34:00:0", &format!("52:54:00:{mac:02x}:00:0"));
    scratch(site, file, text.as_bytes())
}

/// The sysname the server gives the hardware list in `file`.
fn sysname_of(file: &Path) -> String {
    let text = fs::read_to_string(file).expect("hardware list");
    hw::sysname(&hw::parse(&text, "upload").expect("parses"))
}

fn a_long_sysname_is_cut_and_later_uploads_answer_200(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let (p, v, s) = ("P".repeat(100), "V".repeat(80), "S".repeat(68));
    let file = long_named(&site, "long.hw", &p, &v, &s, 0x21);
    let a = site.upload(&file, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["profile"], "vm");
    let name = sysname_of(&file);
    assert!(name.len() <= hw::NAME_ROOM, "{} bytes", name.len());
    assert!(name.starts_with(&format!("{p}-{v}-")), "{name}");
    let (head, hash) = name.split_at(name.len() - 9);
    assert!(head.len() < 250 && hash.starts_with('-'), "{name}");
    assert!(hash[1..].bytes().all(|c| c.is_ascii_hexdigit()), "{name}");
    assert!(site.path(&format!("hw/{name}.hw")).exists(), "{name}.hw");
    assert_eq!(count(&site, "vm"), Count::Left(9));
    // Later uploads work, and the log holds nothing left to apply.
    for i in 0..5 {
        let a = site.upload(&kvm(&site), &[]);
        assert_eq!(a.status, 200, "upload {i}: {}", a.body);
    }
    assert!(!edeploy::persist::pending(&site.path("config")).expect("log"));
    assert!(!site.path("config/.edeploy-log.set-aside").exists());
}

fn two_long_names_stay_distinct_after_cutting(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let (p, v) = ("P".repeat(100), "V".repeat(80));
    // The serials differ only in their last byte, which the cut drops.
    let files: Vec<PathBuf> = (1..=2u8)
        .map(|i| {
            let serial = format!("{}{i}", "S".repeat(67));
            long_named(&site, &format!("{i}.hw"), &p, &v, &serial, 0x30 + i)
        })
        .collect();
    let names: Vec<String> = files.iter().map(|f| sysname_of(f)).collect();
    assert_ne!(names[0], names[1]);
    for (file, name) in files.iter().zip(&names) {
        let a = site.upload(file, &[]);
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(site.path(&format!("hw/{name}.hw")).exists(), "{name}.hw");
    }
    // Two nodes, two installs.
    assert_eq!(count(&site, "vm"), Count::Left(8));
}

mod long_names {
    use super::*;

    suite!(
        a_long_sysname_is_cut_and_later_uploads_answer_200,
        two_long_names_stay_distinct_after_cutting,
    );
}

// ---------------------------------------------------------------------------
// What the original's installer and tests rely on.

fn the_node_is_told_its_cmdb_entry_is_used(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let a = site.upload(&fixture(HP), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    // An integer, as the original's `var['used'] = 1`.
    assert_eq!(v["vars"]["used"], serde_json::json!(1), "{}", a.body);
    assert!(v["vars"]["used"].is_i64(), "{}", a.body);
    assert_eq!(v["vars"]["hostname"], "hp-1");
    // A profile without a CMDB hands out no entry.
    let a = site.upload(&fixture(JSON), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["profile"], "virtio");
    assert!(a.json()["vars"].get("used").is_none(), "{}", a.body);
}

mod compat {
    use super::*;
    suite!(the_node_is_told_its_cmdb_entry_is_used);
}

#[test]
fn local_mode_big_f_reports_a_failure_and_only_restricts() {
    let site = Site::start(Kind::Lighttpd, Options::default());
    let hw = kvm(&site);
    let hw = hw.to_str().expect("UTF-8 path");

    // --only: the decision considers that profile alone.
    let out = local_upload_cgi(&site, &["-f", hw, "--only", "hp"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert!(err.contains("local: 404 ") && err.contains("hp: "), "{err}");
    assert_eq!(count(&site, "vm"), Count::Left(10));
    let out = local_upload_cgi(&site, &["-f", hw, "--only", "vm"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert_eq!(v["profile"], "vm");
    assert_eq!(count(&site, "vm"), Count::Left(9));

    // -F: the install of vm failed, one install back, nothing printed.
    let out = local_upload_cgi(&site, &["-f", hw, "-F", "vm"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("local: 200 edeploy_test_vm-kvm-52-54-12-34-00-03: install of profile vm failed, one install given back"),
        "{err}"
    );
    assert_eq!(count(&site, "vm"), Count::Left(10));

    // The two cannot be mixed; a profile not in `state` is said so.
    let out = local_upload_cgi(&site, &["-f", hw, "-F", "vm", "--only", "vm"]);
    assert_eq!(out.status.code(), Some(2));
    let out = local_upload_cgi(&site, &["-f", hw, "-F", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(count(&site, "vm"), Count::Left(10));
}
