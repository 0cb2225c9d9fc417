//! Timings of the matcher and of one full decision (see docs/benchmarks.md).
//!
//! A self-timing bench without extra crates: each case is run for enough
//! iterations that one batch lasts at least 0.5 s, then 5 such batches are
//! timed and the median time per operation is printed as one JSON line:
//! `{"case": ..., "ns_per_op": ..., "iters": ...}` (`iters` per batch).
//!
//! Cases:
//!
//! * `kvm`: the reference example (`kvm-test.specs` against a KVM guest),
//!   `find` only, and `kvm-compile+find`;
//! * `jbod-N`: N identical disks whose slots are 0, 1, … except the last
//!   one's `X`; the specs name N disks then ask for `$d0`'s slot to be `X`,
//!   so the first N choices must all be undone. Compile and find;
//! * `linked-8+8-N`: 8 spec lines `('disk', '$diskK', 'size', 'gt(100)')`
//!   then 8 lines `('disk', '$diskK', 'model', '$model')` against N disks
//!   of different models (no match);
//! * `wide-80k+80k`: 80,000 disks with a size and 80,000 others with a
//!   model, specs asking for one disk with both (no match);
//! * `large-16MiB`: reading a 16 MiB hardware list (memory banks, then the
//!   KVM guest's lines) and matching the KVM example's specs on it;
//! * `decision`: one full decision on a configuration of 20 profiles (19
//!   fail on their last spec line, the 20th matches and hands out an entry
//!   of a 1000-entry CMDB), a new node each time, with the lock, the
//!   journal and every fsync; `decision-nowrite` is the same without
//!   writing (what `edeploy-admin try` does);
//! * `metrics-update`: what `upload.cgi` adds to each request to count it
//!   (one update of `CONFIGDIR/.edeploy-metrics`, `edeploy::metrics`).
//! * `answer-sign`: what `SIGNKEY` adds to each answer of `upload.cgi`
//!   (the key file read, as `minisign -G -W` writes it, and the example
//!   `vm` profile's answer signed into its header); `answer-check`: the
//!   installer's check of that answer (docs/trust.md).
//!
//! Arguments: an optional word; only cases whose name contains it run
//! (`cargo bench --bench core -- jbod`).
//!
//! Two other modes, used by `scripts/bench-core`:
//!
//! * `EDEPLOY_BENCH_DUMP=DIR` writes the generated inputs to DIR (so the
//!   reference is timed on the very same data) and exits;
//! * `EDEPLOY_BENCH_DIFF=FILE.jsonl` reads cases, one JSON object per line
//!   `{"specs": [[4 strings], ...], "hw": [[4 strings], ...]}`, and prints
//!   one answer per line: `{"vars": {...}, "beyond_reference": bool}`,
//!   `{"nomatch": true}` or
//!   `{"error": "..."}`.
//!
//! `EDEPLOY_BENCH_DIR` chooses where the decision's files are written
//! (default: `target/tmp`, on the disk holding the build).

use std::hint::black_box;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edeploy::cmdb::CmdbFile;
use edeploy::config::ServerConfig;
use edeploy::hw::{self, format_line, Line};
use edeploy::matcher::Specs;
use edeploy::provision::decide::{decide, Decision};
use indexmap::IndexMap;

/// Shortest batch.
const MIN_BATCH: Duration = Duration::from_millis(500);
/// Timed batches per case; the median is reported.
const BATCHES: usize = 5;
/// Disk counts of the JBOD cases.
const JBOD_SIZES: [usize; 6] = [4, 5, 6, 8, 24, 60];
/// Profiles in the decision's state file; the last one matches.
const PROFILES: usize = 20;
/// Entries in the matching profile's CMDB.
const CMDB_ENTRIES: usize = 1000;
/// The configuration is written again once this many entries are used.
const CMDB_REFILL_AT: usize = CMDB_ENTRIES - 10;
/// Installs allowed for the matching profile (never reached).
const MATCHING_COUNT: u64 = 1_000_000;
/// Lines of the decision's hardware list.
const HW_LINES: usize = 200;

fn line(class: &str, name: &str, key: &str, value: &str) -> Line {
    [class.into(), name.into(), key.into(), value.into()]
}

fn main() {
    if let Some(path) = std::env::var_os("EDEPLOY_BENCH_DIFF") {
        differential(Path::new(&path));
        return;
    }
    if let Some(dir) = std::env::var_os("EDEPLOY_BENCH_DUMP") {
        dump(Path::new(&dir));
        return;
    }
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    // `--exact`: only the case of that name (`decision` without
    // `decision-nowrite`).
    let exact = std::env::args().any(|a| a == "--exact");
    let wanted = |case: &str| {
        if exact {
            case == filter
        } else {
            case.contains(filter.as_str())
        }
    };

    if wanted("kvm") || wanted("kvm-compile+find") {
        bench_kvm(&wanted);
    }
    for n in JBOD_SIZES {
        let case = format!("jbod-{n}");
        if wanted(&case) {
            bench_jbod(&case, n);
        }
    }
    for n in LINKED_SIZES {
        let case = format!("linked-8+8-{n}");
        if wanted(&case) {
            bench_linked(&case, n);
        }
    }
    if wanted("wide-80k+80k") {
        bench_wide("wide-80k+80k");
    }
    if wanted("large-16MiB") {
        bench_large("large-16MiB");
    }
    if wanted("decision") || wanted("decision-nowrite") {
        bench_decision(&wanted);
    }
    if wanted("cmdb-allocate") {
        bench_cmdb_allocate();
    }
    if wanted("metrics-update") {
        bench_metrics_update();
    }
    if wanted("answer-sign") || wanted("answer-check") {
        bench_answer(&wanted);
    }
}

/// Times `run(iters)` (which returns the time it measured for `iters`
/// operations) and prints the median of [`BATCHES`] batches.
fn measure(case: &str, mut run: impl FnMut(u64) -> Duration) {
    let mut iters: u64 = 1;
    loop {
        let took = run(iters);
        if took >= MIN_BATCH {
            break;
        }
        // Aim 20% past the minimum, growing at most tenfold per step.
        let scaled = if took.is_zero() {
            iters * 10
        } else {
            (iters as f64 * MIN_BATCH.as_secs_f64() * 1.2 / took.as_secs_f64()).ceil() as u64
        };
        iters = scaled.clamp(iters + 1, iters * 10);
    }
    // Processor time too (the process's, user and system): unlike the
    // time passed, it hardly moves with what else runs on the machine.
    let mut cpu_per_op = Vec::with_capacity(BATCHES);
    let mut per_op: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let cpu = process_cpu_time();
            let took = run(iters);
            cpu_per_op.push((process_cpu_time() - cpu).as_nanos() as f64 / iters as f64);
            took.as_nanos() as f64 / iters as f64
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    cpu_per_op.sort_by(f64::total_cmp);
    let out = serde_json::json!({
        "case": case,
        "ns_per_op": per_op[BATCHES / 2],
        "cpu_ns_per_op": cpu_per_op[BATCHES / 2],
        "iters": iters,
        "batches": BATCHES,
        "min_ns": per_op[0],
        "max_ns": per_op[BATCHES - 1],
    });
    println!("{out}");
}

/// The processor time this process has used (`CLOCK_PROCESS_CPUTIME_ID`).
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes only the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Times a closure without side effects.
fn measure_pure<T>(case: &str, mut op: impl FnMut() -> T) {
    measure(case, |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(op());
        }
        start.elapsed()
    });
}

fn fixture(rel: &str) -> Vec<Line> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: cannot read: {e}", path.display()));
    hw::parse(&text, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"))
}

const KVM_SPECS: &str = "tests/fixtures/reference-config/kvm-test.specs";
const KVM_HW: &str = "tests/fixtures/hw/kvm-test-vm.hw";

fn bench_kvm(wanted: &dyn Fn(&str) -> bool) {
    let spec_lines = fixture(KVM_SPECS);
    let hw_lines = fixture(KVM_HW);
    let specs = Specs::compile(&spec_lines).expect("kvm-test.specs compiles");
    let m = specs.find(&hw_lines).expect("kvm-test matches");
    assert_eq!(m.vars.get("eth").map(String::as_str), Some("eth0"));
    assert_eq!(m.vars.get("eth-io").map(String::as_str), Some("eth1"));
    if wanted("kvm") {
        measure_pure("kvm", || specs.find(black_box(&hw_lines)));
    }
    if wanted("kvm-compile+find") {
        measure_pure("kvm-compile+find", || {
            Specs::compile(black_box(&spec_lines))
                .expect("compiles")
                .find(black_box(&hw_lines))
        });
    }
}

/// N disks of the same size; slots 0, 1, … except the last disk's `X`.
fn jbod_hw(n: usize) -> Vec<Line> {
    let mut lines = Vec::with_capacity(2 * n);
    for k in 0..n {
        let name = format!("sd{k}");
        let slot = if k + 1 == n {
            "X".to_string()
        } else {
            k.to_string()
        };
        lines.push(line("disk", &name, "size", "2000"));
        lines.push(line("disk", &name, "slot", &slot));
    }
    lines
}

/// N disks, then `$d0` must be the disk in slot `X`.
fn jbod_specs(n: usize) -> Vec<Line> {
    let mut lines: Vec<Line> = (0..n)
        .map(|k| line("disk", &format!("$d{k}"), "size", "2000"))
        .collect();
    lines.push(line("disk", "$d0", "slot", "X"));
    lines
}

fn bench_jbod(case: &str, n: usize) {
    let spec_lines = jbod_specs(n);
    let hw_lines = jbod_hw(n);
    let m = Specs::compile(&spec_lines)
        .expect("jbod specs compile")
        .find(&hw_lines)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let last = format!("sd{}", n - 1);
    assert_eq!(m.vars.get("d0"), Some(&last), "{case}: d0 is the last disk");
    measure_pure(case, || {
        Specs::compile(black_box(&spec_lines))
            .expect("compiles")
            .find(black_box(&hw_lines))
    });
}

/// Disk counts of the linked-lines cases.
const LINKED_SIZES: [usize; 3] = [13, 24, 60];
/// Lines of each kind in the wide case.
const WIDE_LINES: usize = 80_000;
/// Size of the large hardware list read and matched.
const LARGE_BYTES: usize = 16 << 20;

/// `disks` disks of different models, each with a size over 100.
fn linked_hw(disks: usize) -> Vec<Line> {
    let mut lines = Vec::with_capacity(2 * disks);
    for k in 0..disks {
        let name = format!("sd{k}");
        lines.push(line("disk", &name, "size", "200"));
        lines.push(line("disk", &name, "model", &format!("model-{k}")));
    }
    lines
}

/// 8 disks larger than 100, then all 8 of one model: never satisfied by
/// disks of different models.
fn linked_specs() -> Vec<Line> {
    let mut lines: Vec<Line> = (0..8)
        .map(|k| line("disk", &format!("$disk{k}"), "size", "gt(100)"))
        .collect();
    lines.extend((0..8).map(|k| line("disk", &format!("$disk{k}"), "model", "$model")));
    lines
}

fn bench_linked(case: &str, disks: usize) {
    let spec_lines = linked_specs();
    let hw_lines = linked_hw(disks);
    let specs = Specs::compile(&spec_lines).expect("linked specs compile");
    let failure = specs
        .find(&hw_lines)
        .expect_err("disks of different models never match");
    assert!(failure.spec_index >= 8, "{case}: a model line is named");
    measure_pure(case, || specs.find(black_box(&hw_lines)));
}

/// `n` disks with a size and `n` others with a model: no disk has both.
fn wide_hw(n: usize) -> Vec<Line> {
    let mut lines = Vec::with_capacity(2 * n);
    for k in 0..n {
        lines.push(line("disk", &format!("a{k}"), "size", "10"));
        lines.push(line("disk", &format!("b{k}"), "model", "m"));
    }
    lines
}

fn wide_specs() -> Vec<Line> {
    vec![
        line("disk", "$a", "size", "$s"),
        line("disk", "$b", "model", "$m"),
        line("disk", "$a", "model", "$m"),
    ]
}

fn bench_wide(case: &str) {
    let hw_lines = wide_hw(WIDE_LINES);
    let specs = Specs::compile(&wide_specs()).expect("wide specs compile");
    let failure = specs.find(&hw_lines).expect_err("no disk has both");
    assert_eq!(failure.spec_index, 2, "{case}");
    measure_pure(case, || specs.find(black_box(&hw_lines)));
}

/// A hardware list of about `bytes` bytes in the file dialect: memory
/// banks, then the disks and interfaces of the KVM example's specs.
fn large_text(bytes: usize) -> String {
    let mut text = String::from("[\n");
    let mut bank = 0usize;
    while text.len() < bytes {
        text.push_str(&format!(
            "  ('memory', 'bank:{bank}', 'size', '{}'),\n  ('memory', 'bank:{bank}', 'slot', 'DIMM {bank}'),\n",
            8 << 30
        ));
        bank += 1;
    }
    for l in fixture(KVM_HW) {
        text.push_str(&format!("  {},\n", format_line(&l)));
    }
    text.push_str("]\n");
    text
}

fn bench_large(case: &str) {
    let text = large_text(LARGE_BYTES);
    let specs = Specs::compile(&fixture(KVM_SPECS)).expect("kvm-test.specs compiles");
    let read_and_match = || {
        let lines = hw::parse(black_box(&text), "large.hw").expect("the large list parses");
        specs.find(&lines).map(|m| m.vars.len())
    };
    assert!(read_and_match().is_ok(), "{case}: the KVM specs match");
    eprintln!("{case}: {} bytes", text.len());
    measure_pure(case, read_and_match);
}

// ---------------------------------------------------------------------------
// The decision

/// The MAC of the matched interface of node `node`.
fn node_mac(node: u64) -> String {
    format!(
        "52:54:{:02x}:{:02x}:{:02x}:{:02x}",
        (node >> 24) & 0xff,
        (node >> 16) & 0xff,
        (node >> 8) & 0xff,
        node & 0xff
    )
}

/// A two-socket server: 8 disks (4 SSD, 4 HDD), 4 interfaces, memory
/// banks up to [`HW_LINES`] lines. `mac` is eth0's address.
fn server_hw(mac: &str) -> Vec<Line> {
    let mut v = vec![
        line("system", "product", "vendor", "Dell Inc."),
        line(
            "system",
            "product",
            "name",
            "PowerEdge R630 (SKU=NotProvided;ModelName=PowerEdge R630)",
        ),
        line("system", "product", "serial", "CZJ4410"),
        line(
            "system",
            "product",
            "uuid",
            "4c4c4544-0042-3110-8035-b2c04f4c3132",
        ),
        line("firmware", "bios", "version", "2.4.3"),
        line("firmware", "bios", "date", "01/09/2017"),
        line("firmware", "bios", "vendor", "Dell Inc."),
        line("ipmi", "lan", "ip-address", "10.3.0.17"),
        line("ipmi", "lan", "mac-address", "18:66:da:5f:0a:11"),
        line("ipmi", "lan", "ip-address-source", "static"),
        line("cpu", "physical", "number", "2"),
        line("cpu", "logical", "number", "32"),
    ];
    for p in 0..2 {
        let name = format!("physical_{p}");
        for (key, value) in [
            ("vendor", "Intel Corp."),
            ("product", "Intel(R) Xeon(R) CPU E5-2630 v3 @ 2.40GHz"),
            ("frequency", "2400000000"),
            ("cores", "8"),
            ("threads", "16"),
            ("physid", if p == 0 { "400" } else { "401" }),
        ] {
            v.push(line("cpu", &name, key, value));
        }
    }
    v.push(line("memory", "total", "size", "137438953472"));
    v.push(line("disk", "logical", "count", "8"));
    for (i, name) in ["sda", "sdb", "sdc", "sdd", "sde", "sdf", "sdg", "sdh"]
        .iter()
        .enumerate()
    {
        let ssd = i < 4;
        v.push(line("disk", name, "size", if ssd { "480" } else { "4000" }));
        v.push(line(
            "disk",
            name,
            "vendor",
            if ssd { "INTEL" } else { "SEAGATE" },
        ));
        v.push(line(
            "disk",
            name,
            "model",
            if ssd { "SSD-480" } else { "HDD-4000" },
        ));
        v.push(line(
            "disk",
            name,
            "rotational",
            if ssd { "0" } else { "1" },
        ));
        v.push(line("disk", name, "slot", &i.to_string()));
    }
    let nics = [
        ("eth0", mac, Some("10.1.0.17"), "tg3", "1000", "yes"),
        (
            "eth1",
            "18:66:da:5f:0a:02",
            Some("10.2.0.17"),
            "tg3",
            "1000",
            "yes",
        ),
        ("eth2", "a0:36:9f:3c:1e:10", None, "ixgbe", "10000", "yes"),
        ("eth3", "a0:36:9f:3c:1e:12", None, "ixgbe", "10000", "no"),
    ];
    for (name, serial, ipv4, driver, speed, link) in nics {
        v.push(line("network", name, "serial", serial));
        if let Some(ip) = ipv4 {
            v.push(line("network", name, "ipv4", ip));
            v.push(line("network", name, "ipv4-netmask", "255.255.0.0"));
            v.push(line("network", name, "ipv4-cidr", "16"));
        }
        v.push(line("network", name, "link", link));
        v.push(line("network", name, "driver", driver));
        v.push(line("network", name, "speed", speed));
        v.push(line("network", name, "duplex", "full"));
        v.push(line("network", name, "autonegotiation", "on"));
    }
    // Fill up with memory banks, one line at a time.
    let mut bank = 0;
    while v.len() < HW_LINES {
        let name = format!("bank{bank}");
        let slot = format!("DIMM_{}{}", if bank % 2 == 0 { 'A' } else { 'B' }, bank / 2);
        for (key, value) in [
            ("size", "8589934592"),
            ("slot", slot.as_str()),
            ("description", "DIMM DDR4 Synchronous 2133 MHz (0.5 ns)"),
            ("vendor", "Hynix Semiconductor"),
            ("serial", "12345678"),
        ] {
            if v.len() < HW_LINES {
                v.push(line("memory", &name, key, value));
            }
        }
        bank += 1;
    }
    v
}

/// Index of eth0's serial line in [`server_hw`].
fn mac_line(hw: &[Line]) -> usize {
    hw.iter()
        .position(|l| l[0] == "network" && l[1] == "eth0" && l[2] == "serial")
        .expect("eth0 has a serial line")
}

/// The 14 lines every failing profile pairs: 12 without variables, then
/// an interface bound by its address.
fn common_lines() -> Vec<Line> {
    vec![
        line("system", "product", "vendor", "Dell Inc."),
        line("system", "product", "name", "regexp(^PowerEdge R6[0-9]0)"),
        line("system", "product", "serial", "regexp(^[A-Z0-9]{7}$)"),
        line("firmware", "bios", "version", "in(2.4.3, 2.5.4)"),
        line("cpu", "physical", "number", "2"),
        line("cpu", "logical", "number", "ge(32)"),
        line("cpu", "physical_0", "product", "regexp(Xeon)"),
        line("memory", "total", "size", "ge(137438953472)"),
        line("disk", "sda", "size", "gt(400)"),
        line("disk", "sde", "size", "ge(4000)"),
        line("ipmi", "lan", "ip-address", "network(10.3.0.0/16)"),
        line("disk", "logical", "count", "8"),
        line("network", "$eth", "ipv4", "network(10.1.0.0/16)"),
        line("network", "$eth", "link", "yes"),
    ]
}

/// The specs of profile `k`: profiles before the last fail on their 15th
/// line, which some hardware line fits but not the interface bound above.
fn profile_specs(k: usize) -> Vec<Line> {
    if k + 1 < PROFILES {
        let mut v = common_lines();
        v.push(match k % 3 {
            0 => line("network", "$eth", "driver", "ixgbe"),
            1 => line("network", "$eth", "speed", "10000"),
            _ => line("network", "$eth", "link", "no"),
        });
        return v;
    }
    let mut v = common_lines()[..8].to_vec();
    v.extend([
        line("disk", "$disk", "size", "gt(400)"),
        line("disk", "$disk", "rotational", "0"),
        line("disk", "$disk2", "size", "ge(4000)"),
        line("network", "$eth", "ipv4", "network(10.1.0.0/16)"),
        line("network", "$eth", "serial", "$mac"),
        line("network", "$eth-io", "ipv4", "network(10.2.0.0/16)"),
        line("network", "$eth-io", "link", "yes"),
    ]);
    v
}

fn profile_name(k: usize) -> String {
    format!("p{k:02}")
}

/// Writes the decision's configuration into `dir` (created if needed).
fn write_config(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create the configuration directory");
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).expect("write a configuration file");
    };
    let mut state = String::from("[");
    for k in 0..PROFILES {
        let name = profile_name(k);
        if k > 0 {
            state.push_str(",\n ");
        }
        if k + 1 < PROFILES {
            state.push_str(&format!("('{name}', '*')"));
        } else {
            state.push_str(&format!("('{name}', {MATCHING_COUNT})"));
        }
        let mut specs = format!("# -*- python -*-\n# profile {name}\n\n[\n");
        for l in profile_specs(k) {
            specs.push_str(&format!("    {},\n", format_line(&l)));
        }
        specs.push_str("]\n");
        write(&format!("{name}.specs"), specs);
        write(
            &format!("{name}.configure"),
            format!(
                "// profile {name}\nlet disk = var[\"disk\"];\nconfig(\"/etc/hostname\").write(var[\"hostname\"]);\nrun(\"parted -s /dev/\" + disk + \" mklabel gpt\");\n"
            ),
        );
    }
    state.push_str("]\n");
    write("state", state);
    let mut cmdb = String::from("[");
    for i in 0..CMDB_ENTRIES {
        if i > 0 {
            cmdb.push_str(",\n ");
        }
        cmdb.push_str(&format!(
            "{{'ip': '10.1.{}.{}', 'hostname': 'node{:04}'}}",
            i / 250,
            i % 250 + 1,
            i + 1
        ));
    }
    cmdb.push_str("]\n");
    write(&format!("{}.cmdb", profile_name(PROFILES - 1)), cmdb);
}

fn bench_root() -> PathBuf {
    std::env::var_os("EDEPLOY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

struct DecisionBench {
    root: tempfile::TempDir,
    cfg: ServerConfig,
    hw: Vec<Line>,
    mac_line: usize,
    node: u64,
    /// Entries handed out since the configuration was written.
    used: usize,
}

impl DecisionBench {
    fn new() -> DecisionBench {
        let base = bench_root();
        std::fs::create_dir_all(&base).expect("create the bench directory");
        let root = tempfile::Builder::new()
            .prefix("edeploy-bench-")
            .tempdir_in(&base)
            .expect("create a temporary directory");
        let mut cfg = ServerConfig::with_configdir(root.path().join("config"));
        cfg.lockfile = root.path().join("edeploy.lock");
        let hw = server_hw(&node_mac(0));
        assert_eq!(hw.len(), HW_LINES);
        let mac_line = mac_line(&hw);
        let mut bench = DecisionBench {
            root,
            cfg,
            hw,
            mac_line,
            node: 0,
            used: 0,
        };
        bench.reset();
        bench
    }

    /// A fresh configuration: every CMDB entry free again.
    fn reset(&mut self) {
        let dir = &self.cfg.configdir;
        if dir.exists() {
            std::fs::remove_dir_all(dir).expect("remove the old configuration");
        }
        write_config(dir);
        self.used = 0;
    }

    /// One decision for a node never seen before; returns its duration.
    fn decide_new_node(&mut self, commit: bool) -> (Duration, Decision) {
        if commit && self.used >= CMDB_REFILL_AT {
            self.reset();
        }
        self.node += 1;
        self.hw[self.mac_line][3] = node_mac(self.node);
        // `TIMING` set: each decision's processor time on stderr (read
        // only then: the clock is a system call the bench would add to
        // every decision).
        let timing = std::env::var_os("TIMING").is_some();
        let start = Instant::now();
        let c0 = timing.then(process_cpu_time);
        let d = decide(&self.cfg, black_box(&self.hw), commit, &mut |_w: String| {})
            .unwrap_or_else(|e| panic!("the decision failed: {e}"));
        if let Some(c0) = c0 {
            eprintln!("D {}", (process_cpu_time() - c0).as_micros());
        }
        let took = start.elapsed();
        // A new node: a fresh entry, the next free one when writing.
        assert!(!d.reused, "node {} was not new", self.node);
        if commit {
            assert_eq!(d.cmdb_entry, Some(self.used), "the next free entry");
            self.used += 1;
        }
        (took, d)
    }
}

fn bench_decision(wanted: &dyn Fn(&str) -> bool) {
    let mut bench = DecisionBench::new();

    // The answer, checked once on each path.
    for commit in [false, true] {
        let (_, d) = bench.decide_new_node(commit);
        let last = profile_name(PROFILES - 1);
        assert_eq!(d.profile, last);
        assert_eq!(d.cmdb_entry, Some(bench.used.saturating_sub(1)));
        let mac = node_mac(bench.node);
        assert_eq!(
            d.vars.get("mac").and_then(|v| v.as_str()),
            Some(mac.as_str())
        );
        assert_eq!(d.vars.get("disk").and_then(|v| v.as_str()), Some("sda"));
        assert_eq!(d.vars.get("eth-io").and_then(|v| v.as_str()), Some("eth1"));
        assert!(d.vars.contains_key("hostname"));
    }
    let written = std::fs::read_to_string(
        bench
            .cfg
            .configdir
            .join(format!("{}.cmdb", profile_name(PROFILES - 1))),
    )
    .expect("read the CMDB back");
    assert!(
        written.contains(&node_mac(bench.node)),
        "the CMDB was written"
    );

    for (case, commit) in [("decision", true), ("decision-nowrite", false)] {
        if !wanted(case) {
            continue;
        }
        measure(case, |iters| {
            if commit {
                bench.reset();
            }
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += bench.decide_new_node(commit).0;
            }
            total
        });
    }
    drop(bench.root);
}

/// The CMDB part of a decision alone: reading the decision's CMDB, once
/// half its entries are handed out, and choosing an entry for a new node.
fn bench_cmdb_allocate() {
    let mut bench = DecisionBench::new();
    let mut last = None;
    for _ in 0..CMDB_ENTRIES / 2 {
        last = Some(bench.decide_new_node(true).1);
    }
    let last = last.expect("decisions were made");
    let path = bench
        .cfg
        .configdir
        .join(format!("{}.cmdb", profile_name(PROFILES - 1)));
    let bytes = std::fs::read(&path).expect("read the CMDB");
    // The match variables of a node not seen yet.
    let vars: IndexMap<String, String> = last
        .vars
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "ip" | "hostname" | "edeploy-profile" | "used"))
        .map(|(k, v)| {
            let v = if k == "mac" {
                node_mac(bench.node + 1)
            } else {
                v.as_str().expect("string variables").to_string()
            };
            (k.clone(), v)
        })
        .collect();
    let forced = IndexMap::new();
    let allocate = || {
        let db = CmdbFile::read("bench.cmdb", bytes.clone()).expect("the CMDB reads");
        db.allocate("p19", &vars, &forced, true, true)
            .expect("an entry is free")
            .expect("an entry is handed out")
    };
    let a = allocate();
    assert_eq!(a.index, CMDB_ENTRIES / 2, "the first free entry");
    assert!(!a.reused);
    eprintln!("cmdb-allocate: a CMDB of {} bytes", bytes.len());
    measure_pure("cmdb-allocate", allocate);
}

/// What `upload.cgi` adds to each request to count it: one update of the
/// counters file (open, `flock`, read both slots, `pwrite` one, close),
/// in a directory of `bench_root()` as CONFIGDIR.
fn bench_metrics_update() {
    let root = tempfile::tempdir_in(bench_root()).expect("a temporary CONFIGDIR");
    let dir = root.path();
    let update = || {
        edeploy::metrics::update(dir, |c| {
            c.count(
                edeploy::metrics::Request::Decision {
                    took: Some(Duration::from_micros(600)),
                },
                200,
            )
        })
        .expect("the counters are written")
    };
    update();
    measure_pure("metrics-update", update);
    let n = edeploy::metrics::read(dir).counters.decisions[0];
    eprintln!("metrics-update: {n} updates counted");
}

// --- Signed answers (docs/trust.md, "Answers of upload.cgi")
fn bench_answer(wanted: &dyn Fn(&str) -> bool) {
    use base64::Engine;
    use edeploy::cgi::Response;
    use edeploy::trust::{Checked, Policy, SigningKey, Trusted};
    let root = tempfile::tempdir_in(bench_root()).expect("a temporary directory");
    let (_, pk, sk) = SigningKey::generate().expect("a key");
    // As `minisign -G -W` writes it: the checksum left at zero.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut lines: Vec<String> = sk.lines().map(String::from).collect();
    let mut bytes = b64.decode(lines[1].trim()).expect("base64");
    let n = bytes.len();
    bytes[n - 32..].fill(0);
    lines[1] = b64.encode(&bytes);
    let key_path = root.path().join("server.key");
    std::fs::write(&key_path, lines.join("\n") + "\n").expect("write the key");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("share/examples/config");
    let script = std::fs::read_to_string(example.join("vm.configure")).expect("vm.configure");
    let answer = serde_json::json!({
        "profile": "vm",
        "vars": {"disk": "vda", "ip": "10.0.2.15", "netmask": "255.255.255.0",
                 "gateway": "10.0.2.2", "hostname": "vm01", "edeploy-profile": "vm"},
        "script": script,
        "settings": {},
    });
    let sysname = "StandardPC-QEMU-VM0001";
    let nonce = "0123456789abcdef0123456789abcdef";
    let sign = || {
        let key = SigningKey::load(&key_path, None).expect("the key loads");
        edeploy::upload::sign_answer(&key, Response::ok(answer.clone()), sysname, Some(nonce))
            .expect("signed")
    };
    if wanted("answer-sign") {
        measure_pure("answer-sign", sign);
    }
    if wanted("answer-check") {
        let signed = sign();
        let header = signed.headers[0].1.clone();
        let body = signed.body_bytes();
        let mut trusted = Trusted::new();
        trusted.add_text(&pk).expect("the public key");
        let policy = Policy::new(trusted, None);
        let check = || {
            let c =
                edeploy::init::server::check_answer(&policy, &body, Some(&header), sysname, nonce);
            assert!(matches!(c, Ok(Checked::Signed(_))), "{c:?}");
        };
        measure_pure("answer-check", check);
    }
}
// --- end of signed answers

// ---------------------------------------------------------------------------
// Inputs for the reference, and the differential mode

fn lines_json(lines: &[Line]) -> serde_json::Value {
    serde_json::to_value(lines).expect("lines are JSON")
}

/// Writes every generated input to `dir`, for the reference to time.
fn dump(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create the dump directory");
    for n in JBOD_SIZES {
        let case = serde_json::json!({
            "specs": lines_json(&jbod_specs(n)),
            "hw": lines_json(&jbod_hw(n)),
            "answer_d0": format!("sd{}", n - 1),
        });
        std::fs::write(dir.join(format!("jbod-{n}.json")), case.to_string())
            .expect("write a jbod case");
    }
    write_config(&dir.join("decision-config"));
    let hw = server_hw(&node_mac(0));
    let decision = serde_json::json!({
        "hw": lines_json(&hw),
        "mac_line": mac_line(&hw),
        "matching_profile": profile_name(PROFILES - 1),
        "cmdb_entries": CMDB_ENTRIES,
        "refill_at": CMDB_REFILL_AT,
    });
    std::fs::write(dir.join("decision.json"), decision.to_string())
        .expect("write the decision case");
    let fixtures = serde_json::json!({
        "kvm_specs": Path::new(env!("CARGO_MANIFEST_DIR")).join(KVM_SPECS),
        "kvm_hw": Path::new(env!("CARGO_MANIFEST_DIR")).join(KVM_HW),
    });
    std::fs::write(dir.join("kvm.json"), fixtures.to_string()).expect("write the kvm case");
}

fn json_lines(value: &serde_json::Value, what: &str) -> Result<Vec<Line>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("{what}: not a list"))?;
    items
        .iter()
        .map(|item| {
            let fields = item
                .as_array()
                .filter(|f| f.len() == 4)
                .ok_or_else(|| format!("{what}: {item} is not a list of 4 strings"))?;
            let mut l: Line = Default::default();
            for (slot, f) in l.iter_mut().zip(fields) {
                *slot = f
                    .as_str()
                    .ok_or_else(|| format!("{what}: {f} is not a string"))?
                    .to_string();
            }
            Ok(l)
        })
        .collect()
}

fn answer(case: &serde_json::Value) -> serde_json::Value {
    let parsed = json_lines(&case["specs"], "specs")
        .and_then(|s| Ok((s, json_lines(&case["hw"], "hw")?)))
        .and_then(|(s, h)| Ok((Specs::compile(&s).map_err(|e| e.to_string())?, h)));
    match parsed {
        Err(e) => serde_json::json!({ "error": e }),
        Ok((specs, hw)) => match specs.find(&hw) {
            Ok(m) => serde_json::json!({ "vars": m.vars, "beyond_reference": m.beyond_reference }),
            Err(_) => serde_json::json!({ "nomatch": true }),
        },
    }
}

/// Answers every case of a JSON-lines file on stdout.
fn differential(path: &Path) {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("{}: cannot open: {e}", path.display()));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (i, text) in std::io::BufReader::new(file).lines().enumerate() {
        let text = text.unwrap_or_else(|e| panic!("{}: cannot read: {e}", path.display()));
        if text.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(case) => answer(&case),
            Err(e) => serde_json::json!({ "error": format!("line {}: {e}", i + 1) }),
        };
        writeln!(out, "{reply}").expect("write an answer");
    }
    out.flush().expect("flush the answers");
}
