//! The health check end to end: `upload-health.cgi` under a real Apache
//! and a real lighttpd (tests/support, requests sent by real `curl`), and
//! the installer in health-check mode (`HEALTH=1`) in a temporary root,
//! running the real `sysbench` and `fio` (read-only, on a file standing for
//! its disk) and sending its results to the real lighttpd.
//!
//! Needs `apache2`, `lighttpd`, `curl`, `sysbench` and `fio` (`.ci/run`
//! installs them); fails, rather than skips, without them.

#[macro_use]
mod support;

use edeploy::clock::Utc;
use edeploy::exec::{Fake, Reply, When};
use edeploy::hw::{self, Line};
use edeploy::init::{Action, Console, Installer, Tuning};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Kind, Options, Site, ROOT};

const CGI: &str = "upload-health.cgi";
/// `hw::sysname` of the KVM fixture: no serial, so its first MAC.
const KVM_SYSNAME: &str = "edeploy_test_vm-kvm-52-54-12-34-00-03";

fn kvm_lines() -> Vec<Line> {
    let p = Path::new(ROOT).join("tests/fixtures/hw/kvm-test-vm.hw");
    let text = fs::read_to_string(&p).expect("the KVM fixture");
    hw::parse(&text, "kvm-test-vm.hw").expect("the KVM fixture parses")
}

fn line(a: &str, b: &str, c: &str, d: &str) -> Line {
    [a.into(), b.into(), c.into(), d.into()]
}

/// The KVM fixture with the benchmark lines of a health check.
fn kvm_result() -> Vec<Line> {
    let mut l = kvm_lines();
    l.extend([
        line("health", "run", "date", "2026-11-25T10:00:00Z"),
        line("cpu", "logical_0", "loops_per_sec", "1618"),
        line("cpu", "logical", "loops_per_sec", "1618"),
        line("cpu", "logical_0", "bandwidth_1M", "24570"),
        line("cpu", "logical", "threaded_bandwidth_1M", "24570"),
        line("disk", "vda", "standalone_read_1M_KBps", "967580"),
        line("disk", "vda", "standalone_randread_4k_IOps", "68456"),
    ]);
    l
}

/// A file of the test's own, for curl to send.
fn scratch(site: &Site, name: &str, data: &[u8]) -> PathBuf {
    let p = site.path(&format!("www/{name}"));
    fs::write(&p, data).expect("write scratch file");
    p
}

/// `curl -s -S <args> …/upload-health.cgi`, headers into `headers` when
/// given.
fn curl(site: &Site, args: &[&str], headers: Option<&Path>) -> support::Answer {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "60", "-w", "\n%{http_code}"]);
    if let Some(h) = headers {
        cmd.arg("-D").arg(h);
    }
    let out = cmd
        .args(args)
        .arg(site.url_of(CGI))
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    support::parse_curl(&out.stdout, &out.stderr)
}

fn upload(site: &Site, file: &Path, fields: &[&str]) -> support::Answer {
    let f = format!("file=@{}", file.display());
    let mut args = vec!["-F", f.as_str()];
    for x in fields {
        args.push("-F");
        args.push(x);
    }
    curl(site, &args, None)
}

/// Every file under `dir` with its contents, for "nothing changed".
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("inside").display().to_string();
                out.insert(rel, fs::read(&p).expect("read"));
            }
        }
    }
    out
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `<sysname>-<14 digits>[-N].hw` → the 14 digits.
fn stamp_of<'a>(name: &'a str, sysname: &str) -> &'a str {
    let rest = name
        .strip_prefix(sysname)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".hw"))
        .unwrap_or_else(|| panic!("{name} is not {sysname}-<timestamp>.hw"));
    let stamp = rest.split('-').next().unwrap_or("");
    assert!(
        stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "{name}: timestamp {stamp:?}"
    );
    stamp
}

fn the_cgi_log(site: &Site, needle: &str) -> Vec<String> {
    // The web server may write a CGI's stderr after the answer went out.
    for _ in 0..250 {
        let log = site.error_log();
        if log.contains(needle) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    site.error_log()
        .lines()
        .filter_map(|l| l.find("upload-health.cgi[").map(|i| l[i..].to_string()))
        .collect()
}

fn results_are_kept_and_nothing_else_changes(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let config = snapshot(&site.path("config"));
    let result = kvm_result();

    let before = Utc::now().compact();
    let json = scratch(&site, "result.json", hw::to_json(&result).as_bytes());
    let a = upload(&site, &json, &[]);
    let after = Utc::now().compact();
    assert_eq!(a.status, 200, "{}", a.body);
    let first = a.json()["stored"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"stored\" in {}", a.body))
        .to_string();
    let stamp = stamp_of(&first, KVM_SYSNAME);
    assert!(
        before.as_str() <= stamp && stamp <= after.as_str(),
        "{before} <= {stamp} <= {after}"
    );
    let kept = site.read(&format!("health/{first}"));
    // The literal dialect, like HWDIR's files, and the same lines.
    assert!(kept.starts_with("[('"), "{kept}");
    assert_eq!(hw::parse(&kept, &first).expect("kept file parses"), result);

    // A second result (literal this time) is a second file.
    let literal = scratch(&site, "result.hw", hw::to_literal(&result).as_bytes());
    let a = upload(&site, &literal, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let second = a.json()["stored"].as_str().expect("stored").to_string();
    assert_ne!(second, first);
    stamp_of(&second, KVM_SYSNAME);
    assert_eq!(names_in(&site.path("health")), {
        let mut v = vec![first.clone(), second.clone()];
        v.sort();
        v
    });

    // One log line per request, naming the node and the file.
    let log = the_cgi_log(&site, &second);
    assert!(
        log.iter().any(|l| l.contains(&format!(
            ": 200 {KVM_SYSNAME}: health check with 6 figures kept as {first}"
        ))),
        "{log:?}"
    );

    // Nothing installed, nothing decided: CONFIGDIR, HWDIR and LOGDIR are
    // as they were.
    assert_eq!(snapshot(&site.path("config")), config);
    assert!(names_in(&site.path("hw")).is_empty());
    assert!(names_in(&site.path("logs")).is_empty());
}

fn errors_are_answered_like_upload_cgi(kind: Kind) {
    let site = Site::start(kind, Options::default());
    let config = snapshot(&site.path("config"));

    let headers = site.path("www/headers");
    let a = curl(&site, &[], Some(&headers));
    assert_eq!(a.status, 405, "{}", a.body);
    assert!(a.error().contains("only POST"), "{}", a.body);
    let h = fs::read_to_string(&headers)
        .expect("headers")
        .to_lowercase();
    assert!(h.contains("allow: post"), "{h}");

    let garbage = scratch(&site, "garbage", b"this is not a hardware list");
    let a = upload(&site, &garbage, &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.error().starts_with("bad hardware list: "), "{}", a.body);

    // An ordinary hardware list is no health-check result.
    let plain = scratch(&site, "plain.json", hw::to_json(&kvm_lines()).as_bytes());
    let a = upload(&site, &plain, &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.error().contains("no benchmark lines"), "{}", a.body);

    let mut bad = kvm_result();
    bad.push(line("disk", "vdb", "standalone_read_1M_KBps", "fast"));
    let n = bad.len();
    let file = scratch(&site, "bad.json", hw::to_json(&bad).as_bytes());
    let a = upload(&site, &file, &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.error(),
        format!(
            "item {n} of the hardware list, ('disk', 'vdb', 'standalone_read_1M_KBps', 'fast'): \
             a benchmark figure must be a whole decimal number"
        )
    );

    let a = curl(&site, &["-F", "section=lab"], None);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.error().contains("no \"file\" field"), "{}", a.body);

    let good = scratch(&site, "good.json", hw::to_json(&kvm_result()).as_bytes());
    let a = upload(&site, &good, &["section=nosuch"]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.error().contains("no configuration section [nosuch]"),
        "{}",
        a.body
    );

    // Larger than MAXUPLOAD (1 MiB here): refused, by the CGI or by the
    // web server's own limit, in the same JSON.
    let big = scratch(&site, "big.json", &vec![b' '; 2 << 20]);
    let a = upload(&site, &big, &[]);
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(a.error().contains("larger than"), "{}", a.body);

    // HEALTHDIR missing: the server's fault, said plainly.
    fs::remove_dir(site.path("health")).expect("remove HEALTHDIR");
    let a = upload(&site, &good, &[]);
    assert_eq!(a.status, 500, "{}", a.body);
    assert!(
        a.error().contains(&format!(
            "HEALTHDIR {} is not a directory",
            site.path("health").display()
        )),
        "{}",
        a.body
    );
    let log = the_cgi_log(&site, "is not a directory");
    assert!(log.iter().any(|l| l.contains(": 405 only POST")), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains(": 500 cannot keep the health check: HEALTHDIR")),
        "{log:?}"
    );
    assert_eq!(snapshot(&site.path("config")), config);
    assert!(names_in(&site.path("hw")).is_empty());
}

suite!(
    results_are_kept_and_nothing_else_changes,
    errors_are_answered_like_upload_cgi,
);

// ------------------------------------------------- the node's side

const MAC: &str = "52:54:00:12:34:56";
const SYSNAME: &str = "StandardPC-QEMU-VM0001";
const IP_ADDR: &str = "2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever\n";

/// The node's command runner: [`support::node_exec`], running `sysbench`
/// and `fio` for real unless `missing` names one.
fn node_exec(missing: Option<&str>) -> Fake {
    let mut fake = support::node_exec(IP_ADDR);
    for tool in ["sysbench", "fio"] {
        if missing != Some(tool) {
            fake = fake.on(When::program(tool), Reply::real());
        }
    }
    fake
}

#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Write for Screen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("screen").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, text).expect("write");
}

/// A node with two logical CPUs, a 10 GB virtio disk `vda` and `eth0`.
/// Its `dev/vda` is a 128 MiB file that fio reads (with O_DIRECT, so the
/// root is made in the build directory, on a real filesystem).
fn fake_node(cmdline: &str) -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("edeploy-health-node-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir");
    let r = t.path();
    put(r, "proc/cmdline", &format!("{cmdline}\n"));
    let cpu = "vendor_id\t: GenuineIntel\nmodel name\t: Test CPU\ncpu MHz\t\t: 2000.000\n";
    put(
        r,
        "proc/cpuinfo",
        &format!("processor\t: 0\n{cpu}\nprocessor\t: 1\n{cpu}\n"),
    );
    put(r, "sys/class/dmi/id/product_name", "Standard PC\n");
    put(r, "sys/class/dmi/id/sys_vendor", "QEMU\n");
    put(r, "sys/class/dmi/id/product_serial", "VM0001\n");
    put(r, "sys/block/vda/size", "20971520\n");
    put(r, "sys/block/vda/device/vendor", "0x1af4\n");
    fs::create_dir_all(r.join("dev")).expect("mkdir dev");
    let disk = fs::File::create(r.join("dev/vda")).expect("dev/vda");
    disk.set_len(128 << 20).expect("size dev/vda");
    let nic = "devices/pci0000:00/0000:00:03.0/virtio0";
    put(r, &format!("sys/{nic}/vendor"), "0x1af4\n");
    fs::create_dir_all(r.join("sys/class/net/eth0")).expect("mkdir eth0");
    std::os::unix::fs::symlink(
        format!("../../../{nic}"),
        r.join("sys/class/net/eth0/device"),
    )
    .expect("symlink");
    put(r, "sys/class/net/eth0/address", &format!("{MAC}\n"));
    put(r, "sys/class/net/eth0/carrier", "1\n");
    put(r, "sys/class/net/eth0/operstate", "up\n");
    t
}

struct Run {
    report: edeploy::init::RunReport,
    screen: String,
    commands: Vec<String>,
}

fn run_node(site: &Site, extra: &str, missing: Option<&'static str>) -> (tempfile::TempDir, Run) {
    let node = fake_node(&format!(
        "BOOT_IMAGE=vmlinuz SERV=127.0.0.1 HTTP_PORT={} HEALTH=1 HEALTH_TIME=1 {extra}",
        site.port
    ));
    let exec = node_exec(missing);
    let screen = Screen::default();
    let installer = Installer {
        root: node.path().to_path_buf(),
        cmdline: None,
        exec: &exec,
        console: Console::new(Box::new(screen.clone())),
        tuning: Tuning {
            upload_attempts: 2,
            backoff_first: Duration::from_millis(50),
            report_attempts: 1,
            carrier_wait: Duration::from_millis(200),
            poll: Duration::from_millis(20),
            ..Tuning::default()
        },
    };
    let report = installer.run();
    let root = node.path().display().to_string();
    let commands = exec
        .lines()
        .iter()
        .map(|c| c.replace(&root, "ROOT"))
        .collect();
    let screen = String::from_utf8_lossy(&screen.0.lock().expect("screen")).into_owned();
    (
        node,
        Run {
            report,
            screen,
            commands,
        },
    )
}

fn assert_tools_present() {
    for tool in ["sysbench", "fio"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "{tool} is not installed: the health-check tests need it \
             (apt-get install -y sysbench fio; .ci/run does this)"
        );
    }
}

#[test]
fn a_node_checks_its_health_and_the_server_keeps_the_results() {
    assert_tools_present();
    let site = Site::start(Kind::Lighttpd, Options::default());
    let config = snapshot(&site.path("config"));
    let (node, r) = run_node(&site, "", None);
    assert!(r.report.result.is_ok(), "{:?}\n{}", r.report, r.screen);
    // HEALTH=1 powers off by default.
    assert_eq!(r.report.action, Action::Halt);
    let checked = r.report.health.as_ref().expect("health results");

    // The benchmarks ran, read-only on the disk, and nothing was installed.
    let dev = "--filename=ROOT/dev/vda --readonly";
    assert_eq!(
        r.commands
            .iter()
            .filter(|c| c.starts_with("sysbench ") || c.starts_with("fio "))
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        [
            "sysbench cpu --cpu-max-prime=15000 --threads=1 --time=1 run".to_string(),
            "sysbench cpu --cpu-max-prime=15000 --threads=2 --time=1 run".into(),
            "sysbench memory --memory-block-size=1M --threads=1 --time=1 run".into(),
            "sysbench memory --memory-block-size=1M --threads=2 --time=1 run".into(),
            format!(
                "fio --name=read-vda {dev} --rw=read --bs=1M --direct=1 --ioengine=libaio \
                 --iodepth=32 --size=64M --runtime=1 --time_based --output-format=json"
            ),
            format!(
                "fio --name=randread-vda {dev} --rw=randread --bs=4k --direct=1 --ioengine=libaio \
                 --iodepth=32 --size=64M --runtime=1 --time_based --output-format=json"
            ),
        ]
    );
    assert!(
        !r.commands
            .iter()
            .any(|c| c.starts_with("parted") || c.starts_with("chroot") || c.starts_with("mkfs")),
        "{:#?}",
        r.commands
    );
    assert_eq!(r.commands.last().map(String::as_str), Some("poweroff -f"));
    assert!(!node.path().join("chroot").exists());
    let disk = fs::read(node.path().join("dev/vda")).expect("dev/vda");
    assert!(disk.iter().all(|b| *b == 0), "the disk was written");

    // The server keeps the list under the node's name, with every figure.
    assert_eq!(
        names_in(&site.path("health")),
        std::slice::from_ref(&checked.stored)
    );
    stamp_of(&checked.stored, SYSNAME);
    let kept = hw::parse(&site.read(&format!("health/{}", checked.stored)), "kept")
        .expect("kept result parses");
    assert_eq!(kept, checked.lines);
    for (name, key) in [
        ("logical_0", "loops_per_sec"),
        ("logical", "loops_per_sec"),
        ("logical_0", "bandwidth_1M"),
        ("logical", "threaded_bandwidth_1M"),
    ] {
        let v = hw::get(&kept, "cpu", name, key).unwrap_or_else(|| panic!("no cpu {name} {key}"));
        assert!(
            v.parse::<u64>().is_ok_and(|n| n > 0),
            "cpu {name} {key} = {v}"
        );
    }
    for key in ["standalone_read_1M_KBps", "standalone_randread_4k_IOps"] {
        let v = hw::get(&kept, "disk", "vda", key).unwrap_or_else(|| panic!("no disk vda {key}"));
        assert!(
            v.parse::<u64>().is_ok_and(|n| n > 0),
            "disk vda {key} = {v}"
        );
    }
    let date = hw::get(&kept, "health", "run", "date").expect("run date");
    assert!(date.len() == 20 && date.ends_with('Z'), "{date}");
    assert_eq!(
        hw::get(&kept, "system", "product", "serial"),
        Some("VM0001")
    );

    // The console shows the figures and where they went.
    for want in [
        "edeploy: running the health check: 6 benchmarks of 1 s (1 disk read, never written)",
        "edeploy: health check results (",
        "edeploy:   cpu, every CPU (2 threads):",
        "edeploy:   vda, random read, 4k:",
        &format!(
            "edeploy: health check done: the server keeps the results as {}",
            checked.stored
        ),
        "edeploy: powering off",
    ] {
        assert!(r.screen.contains(want), "{want:?} not in:\n{}", r.screen);
    }
    assert!(!r.screen.contains("install failed"), "{}", r.screen);

    // No decision was made: state, CMDB, HWDIR untouched.
    assert_eq!(snapshot(&site.path("config")), config);
    assert!(names_in(&site.path("hw")).is_empty());
}

#[test]
fn a_missing_tool_fails_the_check_with_its_name() {
    let site = Site::start(Kind::Lighttpd, Options::default());
    // fio is missing; the sysbench runs are real (one second each).
    assert_tools_present();
    let (_node, r) = run_node(&site, "UPLOAD_LOG=1", Some("fio"));
    let reason = r.report.result.clone().expect_err("must fail");
    assert!(
        reason.starts_with("benchmark vda, sequential read, 1M: fio --name=read-vda --filename="),
        "{reason}"
    );
    assert!(reason.contains("/dev/vda --readonly --rw=read"), "{reason}");
    assert!(reason.contains("cannot start: not installed"), "{reason}");
    assert!(
        r.screen
            .contains("edeploy: health check failed: benchmark vda"),
        "{}",
        r.screen
    );
    assert_eq!(r.report.action, Action::Halt);
    assert!(r.report.health.is_none());
    assert_eq!(r.commands.last().map(String::as_str), Some("poweroff -f"));
    // Nothing kept as a result; the log went to LOGDIR.
    assert!(names_in(&site.path("health")).is_empty());
    assert_eq!(
        names_in(&site.path("logs")),
        ["QEMU-StandardPC-VM0001.log.gz"]
    );
}

#[test]
fn a_refusal_fails_the_check_after_the_figures_are_shown() {
    assert_tools_present();
    let site = Site::start(Kind::Lighttpd, Options::default());
    // The CGI is gone: lighttpd answers 404 for it, which is final.
    fs::remove_file(site.path("cgi-bin/upload-health.cgi")).expect("remove the CGI");
    let (_node, r) = run_node(&site, "ONFAILURE=reboot", None);
    let reason = r.report.result.clone().expect_err("must fail");
    assert!(
        reason.starts_with("the eDeploy server refused the results (HTTP 404)"),
        "{reason}"
    );
    // The figures were shown before the upload was tried.
    assert!(
        r.screen.contains("edeploy:   cpu, 1 thread:"),
        "{}",
        r.screen
    );
    assert_eq!(r.report.action, Action::Reboot);
    assert_eq!(r.commands.last().map(String::as_str), Some("reboot -f"));
}
