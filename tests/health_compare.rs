//! `edeploy-admin health compare`: result files built in a temp dir from the
//! real hardware lists in tests/fixtures/hw (one model's list copied with
//! other serials and MACs, benchmark lines added per the health-check
//! format), compared through the library and through the real binary.

use edeploy::health;
use edeploy::hw::{self, Line};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hw");

fn admin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edeploy-admin"))
        .args(args)
        .output()
        .expect("run edeploy-admin")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A real hardware list without its benchmark lines (the HP one carries
/// the original health check's figures).
fn base(fixture: &str) -> Vec<Line> {
    let path = format!("{FIX}/{fixture}");
    let lines = hw::parse(&fs::read_to_string(&path).unwrap(), &path).unwrap();
    lines
        .into_iter()
        .filter(|l| {
            !(l[2] == "loops_per_sec"
                || l[2].contains("bandwidth_")
                || l[2].ends_with("_KBps")
                || l[2].ends_with("_IOps"))
        })
        .collect()
}

fn line(c: &str, n: &str, k: &str, v: &str) -> Line {
    [c.into(), n.into(), k.into(), v.into()]
}

/// The figures of one machine, in the format's units.
#[derive(Clone, Copy)]
struct Bench {
    cpu1: u64,
    cpu_all: u64,
    mem1: u64,
    mem_all: u64,
    read: u64,
    iops: u64,
}

const CPU1: &str = "cpu logical_0 loops_per_sec";
const CPU_ALL: &str = "cpu logical loops_per_sec";
const MEM1: &str = "cpu logical_0 bandwidth_1M";
const MEM_ALL: &str = "cpu logical threaded_bandwidth_1M";

fn read_metric(disk: &str) -> String {
    format!("disk {disk} standalone_read_1M_KBps")
}
fn iops_metric(disk: &str) -> String {
    format!("disk {disk} standalone_randread_4k_IOps")
}

impl Bench {
    fn figures(&self, disk: &str) -> Vec<(String, u64)> {
        vec![
            (CPU1.into(), self.cpu1),
            (CPU_ALL.into(), self.cpu_all),
            (MEM1.into(), self.mem1),
            (MEM_ALL.into(), self.mem_all),
            (read_metric(disk), self.read),
            (iops_metric(disk), self.iops),
        ]
    }
}

/// One machine: `base` with serial `serial` (None: keep none), every MAC's
/// fifth byte set to `id`, and the benchmark lines of `b` for `disk`.
fn machine(base: &[Line], serial: Option<&str>, id: u8, disk: &str, b: &Bench) -> Vec<Line> {
    let mut lines: Vec<Line> = base
        .iter()
        .filter(|l| !(l[0] == "system" && l[1] == "product" && l[2] == "serial"))
        .cloned()
        .map(|mut l| {
            if l[0] == "network" && l[2] == "serial" {
                let mut parts: Vec<String> = l[3].split(':').map(String::from).collect();
                parts[4] = format!("{id:02x}");
                l[3] = parts.join(":");
            }
            l
        })
        .collect();
    if let Some(s) = serial {
        lines.push(line("system", "product", "serial", s));
    }
    lines.push(line("health", "run", "date", "2026-11-25T10:00:00Z"));
    for (metric, v) in b.figures(disk) {
        let p: Vec<&str> = metric.split(' ').collect();
        lines.push(line(p[0], p[1], p[2], &v.to_string()));
    }
    lines
}

/// Writes `lines` as HEALTHDIR does: `<sysname>-<timestamp>.hw`, literal.
fn store(dir: &Path, lines: &[Line], ts: &str) -> String {
    let name = format!("{}-{ts}.hw", hw::sysname(lines));
    fs::write(dir.join(&name), hw::to_literal(lines)).unwrap();
    name
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

const HP: &str = "HP ProLiant DL360p Gen8 (654081-B21)";
const DELL: &str = "Dell Inc. PowerEdge M520 (SKU=NotProvided;ModelName=PowerEdge M520)";
const KVM: &str = "kvm edeploy_test_vm ()";

/// model → machine → (file, [(metric, figure)])
type Models = BTreeMap<&'static str, BTreeMap<String, (String, Vec<(String, u64)>)>>;

/// What the fleet holds, to compute the expectations from.
struct Fleet {
    dir: tempfile::TempDir,
    /// model → machine → (file, figures)
    models: Models,
    /// The older result of a machine that has a newer one.
    old_file: String,
    slow_disk: String,
    slow_cpu: String,
    fast_iops: String,
}

impl Fleet {
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn p(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
    fn values(&self, model: &str, metric: &str) -> Vec<f64> {
        self.models[model]
            .values()
            .filter_map(|(_, f)| f.iter().find(|(m, _)| m == metric))
            .map(|(_, v)| *v as f64)
            .collect()
    }
}

/// Six HP machines (one slow on disk, one slow on CPU, one with fast random
/// reads, one with an older result too), two Dells (too few to judge, one
/// far off), three KVM guests, one of which has a second disk.
fn fleet() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let mut models = Models::new();
    let mut add = |model: &'static str, lines: Vec<Line>, ts: &str, disks: &[(&str, &Bench)]| {
        let file = store(dir.path(), &lines, ts);
        let figures: Vec<(String, u64)> = disks.iter().flat_map(|(d, b)| b.figures(d)).collect();
        let mut seen = BTreeSet::new();
        let figures = figures
            .into_iter()
            .filter(|(m, _)| seen.insert(m.clone()))
            .collect();
        models
            .entry(model)
            .or_default()
            .insert(hw::sysname(&lines), (file.clone(), figures));
        (hw::sysname(&lines), file)
    };

    let hp = base("hp-proliant-dl360p-gen8.hw");
    let b = |cpu1, cpu_all, mem1, mem_all, read, iops| Bench {
        cpu1,
        cpu_all,
        mem1,
        mem_all,
        read,
        iops,
    };
    let hp_bench = [
        b(1000, 8000, 9000, 30000, 500_000, 20000),
        b(1010, 8100, 9100, 30500, 510_000, 20500),
        b(990, 7900, 8900, 29500, 490_000, 19500),
        b(1005, 8050, 9050, 30200, 250_000, 20100), // slow disk
        b(600, 4800, 9000, 30000, 505_000, 20000),  // slow CPU
        b(1020, 8200, 9200, 31000, 520_000, 27000), // fast random reads
    ];
    // The older result of the first machine: far off, and not compared.
    let old = machine(
        &hp,
        Some("CZ0000HP01"),
        1,
        "sda",
        &b(10, 10, 10, 10, 10, 10),
    );
    let old_file = store(dir.path(), &old, "20261120080000");
    let mut names = Vec::new();
    for (i, bench) in hp_bench.iter().enumerate() {
        let serial = format!("CZ0000HP{:02}", i + 1);
        let lines = machine(&hp, Some(&serial), i as u8 + 1, "sda", bench);
        names.push(add(HP, lines, "20261125101500", &[("sda", bench)]).0);
    }

    let dell = base("dell-poweredge-m520.hw");
    for (i, bench) in [
        b(700, 5000, 7000, 20000, 300_000, 9000),
        b(200, 1000, 1000, 2000, 30_000, 900),
    ]
    .iter()
    .enumerate()
    {
        let serial = format!("DELL{:03}", i + 1);
        let lines = machine(&dell, Some(&serial), 0x40 + i as u8, "sda", bench);
        add(DELL, lines, "20261125101600", &[("sda", bench)]);
    }

    let kvm = base("kvm-test-vm.hw");
    for (i, bench) in [
        b(400, 800, 5000, 9000, 100_000, 5000),
        b(410, 820, 5100, 9100, 101_000, 5100),
        b(395, 790, 4950, 8950, 99_000, 4950),
    ]
    .iter()
    .enumerate()
    {
        let mut lines = machine(&kvm, None, 0x80 + i as u8, "vda", bench);
        let mut disks = vec![("vda", bench)];
        let second = b(0, 0, 0, 0, 50_000, 2000);
        if i == 0 {
            // A second disk on one guest only: listed, not judged.
            lines.push(line("disk", "vdb", "standalone_read_1M_KBps", "50000"));
            lines.push(line("disk", "vdb", "standalone_randread_4k_IOps", "2000"));
            disks.push(("vdb", &second));
        }
        let file = store(dir.path(), &lines, "20261125101700");
        let figures: Vec<(String, u64)> = disks
            .iter()
            .flat_map(|(d, b)| {
                let mut f = b.figures(d);
                if *d == "vdb" {
                    f.retain(|(m, _)| m.starts_with("disk"));
                }
                f
            })
            .collect();
        models
            .entry(KVM)
            .or_default()
            .insert(hw::sysname(&lines), (file, figures));
    }

    Fleet {
        old_file,
        slow_disk: names[3].clone(),
        slow_cpu: names[4].clone(),
        fast_iops: names[5].clone(),
        models,
        dir,
    }
}

/// The outliers the fleet was built with: (machine, metric).
fn planted(f: &Fleet) -> BTreeSet<(String, String)> {
    [
        (f.slow_disk.clone(), read_metric("sda")),
        (f.slow_cpu.clone(), CPU1.to_string()),
        (f.slow_cpu.clone(), CPU_ALL.to_string()),
        (f.fast_iops.clone(), iops_metric("sda")),
    ]
    .into_iter()
    .collect()
}

#[test]
fn groups_medians_and_outliers_through_the_library() {
    let f = fleet();
    let r = health::compare(f.path(), &health::CompareOptions::default()).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    // 6 HP + 1 older HP + 2 Dell + 3 KVM files.
    assert_eq!(r.files, 12);
    assert_eq!(r.superseded, vec![f.old_file.clone()]);

    let models: Vec<&str> = r.groups.iter().map(|g| g.model.as_str()).collect();
    let expected: Vec<&str> = f.models.keys().copied().collect();
    assert_eq!(models, expected);
    for g in &r.groups {
        let machines: Vec<&str> = g.machines.iter().map(|m| m.machine.as_str()).collect();
        let want: Vec<&str> = f.models[g.model.as_str()]
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(machines, want, "{}", g.model);
        for m in &g.metrics {
            let values = f.values(&g.model, &m.metric);
            assert_eq!(m.samples.len(), values.len(), "{} {}", g.model, m.metric);
            assert_eq!(m.median, median(&values), "{} {}", g.model, m.metric);
            let min = values.iter().copied().fold(f64::MAX, f64::min);
            let max = values.iter().copied().fold(0.0, f64::max);
            assert_eq!((m.min, m.max), (min, max), "{} {}", g.model, m.metric);
            assert_eq!(m.judged, values.len() >= 3, "{} {}", g.model, m.metric);
        }
    }

    // The older, far-off result of the first HP machine is not compared.
    let hp = r.groups.iter().find(|g| g.model == HP).unwrap();
    assert!(hp.machines.iter().all(|m| m.file != f.old_file));
    assert_eq!(hp.metrics.len(), 6);

    // Two Dells: listed with their figures, never judged, however far apart.
    let dell = r.groups.iter().find(|g| g.model == DELL).unwrap();
    assert!(dell
        .metrics
        .iter()
        .all(|m| !m.judged && m.outliers.is_empty()));
    assert!(dell.metrics[0]
        .not_judged
        .as_deref()
        .unwrap()
        .contains("2 machines"));

    // The second disk of one guest: a metric of its own, on 1 of 3 machines.
    let kvm = r.groups.iter().find(|g| g.model == KVM).unwrap();
    let vdb = kvm
        .metrics
        .iter()
        .find(|m| m.metric == read_metric("vdb"))
        .unwrap();
    assert_eq!(vdb.samples.len(), 1);
    assert!(!vdb.judged);
    assert!(
        kvm.metrics
            .iter()
            .find(|m| m.metric == read_metric("vda"))
            .unwrap()
            .judged
    );

    let found: BTreeSet<(String, String)> = r
        .outliers
        .iter()
        .map(|o| (o.machine.clone(), o.metric.clone()))
        .collect();
    assert_eq!(found, planted(&f));
    for o in &r.outliers {
        let values = f.values(&o.model, &o.metric);
        let med = median(&values);
        assert_eq!(o.median, med);
        assert!(((o.deviation - (o.value - med) / med).abs()) < 1e-12);
        assert!(o.deviation.abs() > 0.15);
        assert_eq!(o.model, HP);
        assert!(o.file.starts_with(&o.machine) && o.file.ends_with("-20261125101500.hw"));
    }
    // Worst first: the slow ones, slowest first, then the fast one.
    let devs: Vec<f64> = r.outliers.iter().map(|o| o.deviation).collect();
    assert!(
        devs[0] < devs[1] && devs[1] < devs[2] && devs[2] < 0.0,
        "{devs:?}"
    );
    assert!(devs[3] > 0.0);
    assert_eq!(r.outliers[0].machine, f.slow_disk);
    assert_eq!(r.outliers[3].side(), "fast");

    // The figures of the normal machines lie within 15% of their medians.
    for g in &r.groups {
        for m in g.metrics.iter().filter(|m| m.judged) {
            for s in &m.samples {
                let flagged = m.outliers.iter().any(|o| o.machine == s.machine);
                let far = (s.value - m.median).abs() / m.median > 0.15;
                assert_eq!(flagged, far, "{} {} {}", g.model, m.metric, s.machine);
            }
        }
    }

    // The API the status page uses gives the same list.
    let list = health::outliers(f.path()).unwrap();
    let a: Vec<(&str, &str)> = list
        .iter()
        .map(|o| (o.file.as_str(), o.metric.as_str()))
        .collect();
    let b: Vec<(&str, &str)> = r
        .outliers
        .iter()
        .map(|o| (o.file.as_str(), o.metric.as_str()))
        .collect();
    assert_eq!(a, b);
}

#[test]
fn text_table_and_exit_status() {
    let f = fleet();
    let out = admin(&["health", "compare", f.p()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with("11 machines of 3 models compared (12 result files"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 older result of the same machines not compared"),
        "{stdout}"
    );
    let header = stdout.lines().find(|l| l.starts_with("MODEL")).unwrap();
    for col in ["MACHINES", "METRIC", "MEDIAN", "MIN", "MAX", "OUTLIERS"] {
        assert!(header.contains(col), "{header}");
    }
    // One row per model and metric, with its median.
    let hp_read = stdout
        .lines()
        .find(|l| l.starts_with(HP) && l.contains(&read_metric("sda")))
        .unwrap();
    let med = median(&f.values(HP, &read_metric("sda")));
    assert!(hp_read.contains(&health::fmt_value(med)), "{hp_read}");
    assert!(hp_read.ends_with("1 slow"), "{hp_read}");
    let hp_iops = stdout
        .lines()
        .find(|l| l.starts_with(HP) && l.contains(&iops_metric("sda")))
        .unwrap();
    assert!(hp_iops.ends_with("1 fast"), "{hp_iops}");
    let dell_row = stdout.lines().find(|l| l.starts_with(DELL)).unwrap();
    assert!(
        dell_row.ends_with("not judged: 2 machines, 3 needed"),
        "{dell_row}"
    );
    let vdb = stdout
        .lines()
        .find(|l| l.contains(&read_metric("vdb")))
        .unwrap();
    assert!(vdb.contains("1 of 3"), "{vdb}");

    // The outlier list names exactly the planted machines.
    let list: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Outliers (4)"))
        .skip(2)
        .collect();
    assert_eq!(list.len(), 4, "{stdout}");
    assert!(
        list[0].contains(&f.slow_disk) && list[0].contains("slow"),
        "{stdout}"
    );
    assert!(list
        .iter()
        .any(|l| l.contains(&f.slow_cpu) && l.contains(CPU1)));
    assert!(list[3].contains(&f.fast_iops) && list[3].contains("fast"));
    for name in f.models[HP].keys() {
        if ![&f.slow_disk, &f.slow_cpu, &f.fast_iops].contains(&name) {
            assert!(
                !list.iter().any(|l| l.contains(name.as_str())),
                "{name} flagged"
            );
        }
    }

    // A looser threshold keeps the -50% disk only; looser still, nothing.
    let out = admin(&["health", "compare", "--threshold", "0.45", f.p()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Outliers (1)") && stdout.contains(&f.slow_disk),
        "{stdout}"
    );
    assert!(
        stdout.contains("more than 45% from its model's median"),
        "{stdout}"
    );
    let out = admin(&["health", "compare", "--threshold", "0.6", f.p()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("No outliers."));
}

#[test]
fn json_for_scripts() {
    let f = fleet();
    let out = admin(&["health", "compare", "--json", f.p()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["threshold"], 0.15);
    assert_eq!(v["min_group"], 3);
    assert_eq!(v["files"], 12);
    assert_eq!(v["superseded"], serde_json::json!([f.old_file]));
    assert_eq!(v["problems"], serde_json::json!([]));
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    let hp = groups.iter().find(|g| g["model"] == HP).unwrap();
    assert_eq!(hp["machines"].as_array().unwrap().len(), 6);
    let cpu = hp["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == CPU1)
        .unwrap();
    assert_eq!(cpu["unit"], "events/s");
    assert_eq!(cpu["median"], median(&f.values(HP, CPU1)));
    assert_eq!(cpu["judged"], true);
    assert_eq!(cpu["samples"].as_array().unwrap().len(), 6);
    assert_eq!(cpu["outliers"][0]["machine"], f.slow_cpu.as_str());

    let outliers = v["outliers"].as_array().unwrap();
    let got: BTreeSet<(String, String)> = outliers
        .iter()
        .map(|o| {
            (
                o["machine"].as_str().unwrap().to_string(),
                o["metric"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, planted(&f));
    let o = &outliers[0];
    for key in [
        "file",
        "machine",
        "model",
        "metric",
        "value",
        "median",
        "deviation",
    ] {
        assert!(!o[key].is_null(), "{key} missing in {o}");
    }
    assert_eq!(o["value"], 250000.0);
    let dev = o["deviation"].as_f64().unwrap();
    let med = o["median"].as_f64().unwrap();
    assert!((dev - (250000.0 - med) / med).abs() < 1e-12);
}

/// Width, height and RGB pixels of a PNG.
fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let bytes = fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    let dec = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn has_color(rgb: &[u8], c: [u8; 3]) -> bool {
    rgb.chunks(3).any(|p| p == c)
}

const RED: [u8; 3] = [0xd6, 0x27, 0x28];
const ORANGE: [u8; 3] = [0xf0, 0x8c, 0x00];

#[test]
fn one_png_per_model_and_metric() {
    let f = fleet();
    let plots = tempfile::tempdir().unwrap();
    let outdir = plots.path().join("plots");
    let out = admin(&[
        "health",
        "compare",
        "--json",
        "--plot",
        outdir.to_str().unwrap(),
        f.p(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = v["plots"].as_array().unwrap();
    let metrics: usize = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["metrics"].as_array().unwrap().len())
        .sum();
    assert_eq!(listed.len(), metrics);
    let on_disk = fs::read_dir(&outdir).unwrap().count();
    assert_eq!(on_disk, metrics, "only the PNGs, no temporary files left");

    let mut pixels = BTreeSet::new();
    for p in listed {
        let path = PathBuf::from(p["path"].as_str().unwrap());
        assert!(path.starts_with(&outdir), "{}", path.display());
        let (w, h, rgb) = decode(&path);
        assert_eq!(
            (w, h),
            (
                p["width"].as_u64().unwrap() as u32,
                p["height"].as_u64().unwrap() as u32
            )
        );
        assert!(w >= 800 && h >= 460, "{w}x{h}");
        assert!(
            pixels.insert(rgb.clone()),
            "{} looks like another plot",
            path.display()
        );
        // Outliers are drawn red (slow) or orange (fast), and only they.
        let model = p["model"].as_str().unwrap();
        let metric = p["metric"].as_str().unwrap();
        let slow = v["outliers"].as_array().unwrap().iter().any(|o| {
            o["model"] == model && o["metric"] == metric && o["deviation"].as_f64().unwrap() < 0.0
        });
        let fast = v["outliers"].as_array().unwrap().iter().any(|o| {
            o["model"] == model && o["metric"] == metric && o["deviation"].as_f64().unwrap() > 0.0
        });
        assert_eq!(has_color(&rgb, RED), slow, "{model} {metric}");
        assert_eq!(has_color(&rgb, ORANGE), fast, "{model} {metric}");
    }
    let names: BTreeSet<String> = fs::read_dir(&outdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains("HP-ProLiant-DL360p-Gen8-654081-B21--disk-sda-standalone_read_1M_KBps.png"),
        "{names:?}"
    );

    // The text output lists the files with their sizes.
    let out = admin(&[
        "health",
        "compare",
        "--plot",
        outdir.to_str().unwrap(),
        f.p(),
    ]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("Plots ({metrics}):")), "{stdout}");
}

/// The result of the original eDeploy's health check, unchanged but for
/// the serial: every logical CPU's figures are metrics too.
#[test]
fn results_of_the_original_health_check_compare() {
    let dir = tempfile::tempdir().unwrap();
    let path = format!("{FIX}/hp-proliant-dl360p-gen8.hw");
    let lines = hw::parse(&fs::read_to_string(&path).unwrap(), &path).unwrap();
    for serial in ["A1", "A2", "A3"] {
        let mut l = lines.clone();
        for x in l.iter_mut() {
            if x[0] == "system" && x[2] == "serial" {
                x[3] = serial.into();
            }
        }
        store(dir.path(), &l, "20261125101500");
    }
    let r = health::compare(dir.path(), &health::CompareOptions::default()).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.groups.len(), 1);
    let metrics: Vec<&str> = r.groups[0]
        .metrics
        .iter()
        .map(|m| m.metric.as_str())
        .collect();
    // The original writes some of sda's figures twice ('561 ' then
    // '2393 ', with the space): one metric each, the first figure used.
    let bench: BTreeSet<(&str, &str, &str)> = lines
        .iter()
        .filter(|l| {
            l[2] == "loops_per_sec"
                || l[2].contains("bandwidth_")
                || l[2].ends_with("_KBps")
                || l[2].ends_with("_IOps")
        })
        .map(|l| (l[0].as_str(), l[1].as_str(), l[2].as_str()))
        .collect();
    let bench = bench.len();
    assert_eq!(metrics.len(), bench, "{metrics:?}");
    assert!(metrics.contains(&"cpu logical_7 loops_per_sec"));
    assert!(metrics.contains(&"cpu logical forked_bandwidth_1G"));
    assert!(metrics.contains(&"disk sdb simultaneous_randread_4k_IOps"));
    let randwrite = r.groups[0]
        .metrics
        .iter()
        .find(|m| m.metric == "disk sda standalone_randwrite_4k_IOps")
        .unwrap();
    assert_eq!(randwrite.median, 561.0);
    assert!(r.outliers.is_empty());
    let out = admin(&["health", "compare", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_bad_file_is_named_and_the_others_are_compared() {
    let f = fleet();
    // A syntax error on line 4 of a new machine's result.
    let hp = base("hp-proliant-dl360p-gen8.hw");
    let b = Bench {
        cpu1: 1000,
        cpu_all: 8000,
        mem1: 9000,
        mem_all: 30000,
        read: 500_000,
        iops: 20000,
    };
    let lines = machine(&hp, Some("CZ0000HP77"), 77, "sda", &b);
    let good = hw::to_literal(&lines);
    let mut broken: Vec<&str> = good.lines().collect();
    broken.insert(3, " oops,");
    let bad = format!("{}-20261125101500.hw", hw::sysname(&lines));
    fs::write(f.path().join(&bad), broken.join("\n")).unwrap();

    let out = admin(&["health", "compare", f.p()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let shown = f.path().join(&bad);
    assert!(
        stderr.contains(&format!("{}:4:", shown.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 13 result files could not be read"),
        "{stderr}"
    );
    // The rest is compared and printed as usual.
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("11 machines of 3 models compared"),
        "{stdout}"
    );
    assert!(stdout.contains("Outliers (4)"), "{stdout}");

    // The library: `compare` has the problem, `outliers` refuses.
    let r = health::compare(f.path(), &health::CompareOptions::default()).unwrap();
    assert_eq!(r.problems.len(), 1);
    assert_eq!(r.problems[0].file, bad);
    assert_eq!(r.outliers.len(), 4);
    let e = health::outliers(f.path()).unwrap_err().to_string();
    assert!(e.contains(&format!("{}:4:", shown.display())), "{e}");
}

#[test]
fn a_non_numeric_figure_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let kvm = base("kvm-test-vm.hw");
    let b = Bench {
        cpu1: 400,
        cpu_all: 800,
        mem1: 5000,
        mem_all: 9000,
        read: 100_000,
        iops: 5000,
    };
    // The machine's newer result is bad: its older one is compared instead.
    let lines = machine(&kvm, None, 1, "vda", &b);
    let older = store(dir.path(), &lines, "20261124000000");
    let mut bad_lines = lines.clone();
    for l in bad_lines.iter_mut() {
        if l[2] == "standalone_read_1M_KBps" {
            l[3] = "fast".into();
        }
    }
    let bad = store(dir.path(), &bad_lines, "20261125000000");
    let text_bad = fs::read_to_string(dir.path().join(&bad)).unwrap();
    let lineno = text_bad.lines().position(|l| l.contains("'fast'")).unwrap() + 1;

    let out = admin(&["health", "compare", dir.path().to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = format!(
        "{}:{lineno}: value of ('disk', 'vda', 'standalone_read_1M_KBps') is 'fast': not a number",
        dir.path().join(&bad).display()
    );
    assert!(stderr.contains(&want), "{stderr}\nwant: {want}");
    let r = health::compare(dir.path(), &health::CompareOptions::default()).unwrap();
    assert_eq!(r.groups[0].machines[0].file, older);
    assert!(r.superseded.is_empty());
}

#[test]
fn empty_and_missing_directories_and_bad_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), "not a result").unwrap();
    let out = admin(&["health", "compare", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no health-check results (*.hw files)"),
        "{stderr}"
    );
    assert!(stderr.contains(dir.path().to_str().unwrap()), "{stderr}");
    // The library has nothing to say about an empty directory.
    assert!(health::outliers(dir.path()).unwrap().is_empty());

    let missing = dir.path().join("missing");
    let out = admin(&["health", "compare", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot list"));
    assert!(health::outliers(&missing).is_err());

    for t in ["0", "-0.1", "x", "inf"] {
        // `--threshold=-0.1`: glued, so that clap reads a value, not a flag.
        let arg = format!("--threshold={t}");
        let out = admin(&["health", "compare", &arg, dir.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "--threshold {t}");
        assert!(
            text(&out.stderr).contains("not a fraction above 0"),
            "{}",
            text(&out.stderr)
        );
    }
}

/// Regenerates docs/health-plot-example.png from the fleet above:
/// `cargo test --test health_compare -- --ignored docs_example_plot`.
#[test]
#[ignore]
fn docs_example_plot() {
    let f = fleet();
    let plots = tempfile::tempdir().unwrap();
    let out = admin(&[
        "health",
        "compare",
        "--plot",
        plots.path().to_str().unwrap(),
        f.p(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    println!("{}", text(&out.stdout));
    let src = plots
        .path()
        .join("HP-ProLiant-DL360p-Gen8-654081-B21--disk-sda-standalone_read_1M_KBps.png");
    let (w, h, rgb) = decode(&src);
    assert!(has_color(&rgb, RED), "{w}x{h}");
    let dest = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/health-plot-example.png");
    fs::copy(&src, &dest).unwrap();
}
