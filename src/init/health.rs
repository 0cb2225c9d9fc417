//! The health check (`HEALTH=1`): benchmark the node, send the results to
//! the server, install nothing.
//!
//! The run starts like an install (drivers, network, detection), then runs
//! short benchmarks with Debian's tools through the [`Exec`] seam:
//! `sysbench cpu` and `sysbench memory` on one thread and on every logical
//! CPU, and `fio` on every detected disk, **read-only** (`--readonly`:
//! fio refuses to issue a single write), over the first [`DISK_REGION`]
//! of the disk. Each benchmark runs `HEALTH_TIME` seconds. Their figures
//! become lines of the hardware list, named as the original eDeploy's
//! health check named them (docs/health.md):
//!
//! ```text
//! ('cpu', 'logical_0', 'loops_per_sec', '1618')
//! ('disk', 'vda', 'standalone_randread_4k_IOps', '68456')
//! ```
//!
//! The list is POSTed as the multipart field `file` to
//! `http://SERV:HTTP_PORT{HTTP_PATH}upload-health.cgi`, retried like the
//! hardware upload of an install; the server keeps it as
//! `HEALTHDIR/<sysname>-<timestamp>.hw` and answers the file's name. A
//! summary goes to the console, then the run ends per `ONSUCCESS` (which
//! defaults to `halt` with `HEALTH=1`). A tool that fails, or prints what
//! cannot be read, fails the health check with the tool's command line
//! and its error, and the run ends per `ONFAILURE`.

use super::cmdline::{OnFailure, OnSuccess, Settings};
use super::console::Console;
use super::finish::{self, Action};
use super::server::{self, Part};
use super::{Installed, Installer, Known, RunReport, Tuning};
use crate::clock::Utc;
use crate::detect::disk::is_disk;
use crate::exec::{CmdLine, Exec};
use crate::hw::{self, Line};
use anyhow::{anyhow, bail, Context, Result};
use std::time::{Instant, SystemTime};

/// How much of each disk the disk benchmarks read: the first 64 MiB, so
/// every disk detection reports (1 GB and more) has it, and a run of
/// `HEALTH_TIME` seconds stays within it.
pub const DISK_REGION: &str = "64M";

/// `--cpu-max-prime` of the CPU benchmark: the original's value, so the
/// figures compare with its results.
pub const CPU_MAX_PRIME: u32 = 15000;

/// What a health check that succeeded produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The hardware list with the benchmark lines, as uploaded.
    pub lines: Vec<Line>,
    /// The name the server keeps it under, in HEALTHDIR.
    pub stored: String,
    /// How long the benchmarks took, in whole seconds.
    pub seconds: u64,
}

/// How a benchmark's output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// `sysbench cpu`: `events per second:`.
    CpuEvents,
    /// `sysbench memory`: `… MiB transferred (N MiB/sec)`.
    MemoryMiB,
    /// `fio --output-format=json`: the job's read bandwidth, KiB/s.
    FioKiBps,
    /// `fio --output-format=json`: the job's read IOPS.
    FioIops,
}

impl Reader {
    /// The figure in `stdout`, as a whole number.
    pub fn read(self, stdout: &str) -> Result<u64, String> {
        match self {
            Reader::CpuEvents => sysbench_cpu(stdout),
            Reader::MemoryMiB => sysbench_memory(stdout),
            Reader::FioKiBps => fio_read(stdout).map(|r| r.kib_per_sec),
            Reader::FioIops => fio_read(stdout).map(|r| r.iops),
        }
    }

    /// The unit of the figure, for the console.
    pub fn unit(self) -> &'static str {
        match self {
            Reader::CpuEvents => "events/s",
            Reader::MemoryMiB => "MiB/s",
            Reader::FioKiBps => "KiB/s",
            Reader::FioIops => "IOPS",
        }
    }
}

/// One benchmark to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Benchmark {
    /// What it measures, for the console (`cpu, 1 thread`).
    pub label: String,
    pub cmd: CmdLine,
    pub reader: Reader,
    /// The line's class, name and key; the figure is its value.
    pub class: &'static str,
    pub name: String,
    pub key: &'static str,
}

/// The number of logical CPUs detection found (`('cpu', 'logical',
/// 'number', N)`), at least 1.
pub fn logical_cpus(hw: &[Line]) -> u32 {
    hw::get(hw, "cpu", "logical", "number")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// The block-device disks detection found (`sda`, `vda`, `nvme0n1`; not
/// the physical drives a RAID controller reports), in list order.
pub fn disks(hw: &[Line]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in hw {
        if l[0] == "disk" && l[2] == "size" && is_disk(&l[1]) && !out.contains(&l[1]) {
            out.push(l[1].clone());
        }
    }
    out
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The benchmarks for a node with hardware list `hw`, each running
/// `seconds`; disks are read as `root/dev/<disk>`.
pub fn plan(root: &std::path::Path, hw: &[Line], seconds: u32) -> Vec<Benchmark> {
    let cpus = logical_cpus(hw);
    let time = format!("--time={seconds}");
    let sysbench = |args: &[&str], threads: u32| {
        let mut v = vec!["sysbench".to_string()];
        v.extend(args.iter().map(|a| a.to_string()));
        v.push(format!("--threads={threads}"));
        v.push(time.clone());
        v.push("run".into());
        CmdLine::Argv(v)
    };
    let prime = format!("--cpu-max-prime={CPU_MAX_PRIME}");
    let cpu: [&str; 2] = ["cpu", &prime];
    let memory: [&str; 2] = ["memory", "--memory-block-size=1M"];
    let mut out = vec![
        Benchmark {
            label: "cpu, 1 thread".into(),
            cmd: sysbench(&cpu, 1),
            reader: Reader::CpuEvents,
            class: "cpu",
            name: "logical_0".into(),
            key: "loops_per_sec",
        },
        Benchmark {
            label: format!("cpu, every CPU ({cpus} thread{})", plural(cpus)),
            cmd: sysbench(&cpu, cpus),
            reader: Reader::CpuEvents,
            class: "cpu",
            name: "logical".into(),
            key: "loops_per_sec",
        },
        Benchmark {
            label: "memory, 1 thread".into(),
            cmd: sysbench(&memory, 1),
            reader: Reader::MemoryMiB,
            class: "cpu",
            name: "logical_0".into(),
            key: "bandwidth_1M",
        },
        Benchmark {
            label: format!("memory, every CPU ({cpus} thread{})", plural(cpus)),
            cmd: sysbench(&memory, cpus),
            reader: Reader::MemoryMiB,
            class: "cpu",
            name: "logical".into(),
            key: "threaded_bandwidth_1M",
        },
    ];
    for disk in disks(hw) {
        let dev = root.join("dev").join(&disk);
        for (rw, bs, reader, key, what) in [
            (
                "read",
                "1M",
                Reader::FioKiBps,
                "standalone_read_1M_KBps",
                "sequential read, 1M",
            ),
            (
                "randread",
                "4k",
                Reader::FioIops,
                "standalone_randread_4k_IOps",
                "random read, 4k",
            ),
        ] {
            out.push(Benchmark {
                label: format!("{disk}, {what}"),
                cmd: CmdLine::Argv(vec![
                    "fio".into(),
                    format!("--name={rw}-{disk}"),
                    format!("--filename={}", dev.display()),
                    "--readonly".into(),
                    format!("--rw={rw}"),
                    format!("--bs={bs}"),
                    "--direct=1".into(),
                    "--ioengine=libaio".into(),
                    "--iodepth=32".into(),
                    format!("--size={DISK_REGION}"),
                    format!("--runtime={seconds}"),
                    "--time_based".into(),
                    "--output-format=json".into(),
                ]),
                reader,
                class: "disk",
                name: disk.clone(),
                key,
            });
        }
    }
    out
}

/// A figure as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    pub label: String,
    pub value: u64,
    pub unit: &'static str,
}

/// Runs `benchmarks` in order; returns their lines and figures. The first
/// that fails (cannot start, exits non-zero, prints no figure) stops the
/// check with its command line and why.
pub fn run_benchmarks(
    benchmarks: &[Benchmark],
    exec: &dyn Exec,
    console: &Console,
) -> Result<(Vec<Line>, Vec<Figure>)> {
    let mut lines = Vec::with_capacity(benchmarks.len());
    let mut figures = Vec::with_capacity(benchmarks.len());
    for (i, b) in benchmarks.iter().enumerate() {
        console.say(&format!(
            "benchmark {}/{}: {}",
            i + 1,
            benchmarks.len(),
            b.label
        ));
        let out = exec
            .run(&b.cmd)
            .with_context(|| format!("benchmark {}", b.label))?;
        let value = b
            .reader
            .read(&out.stdout)
            .map_err(|why| anyhow!("benchmark {}: {}: {why}", b.label, b.cmd.display()))?;
        lines.push([
            b.class.to_string(),
            b.name.clone(),
            b.key.to_string(),
            value.to_string(),
        ]);
        figures.push(Figure {
            label: b.label.clone(),
            value,
            unit: b.reader.unit(),
        });
    }
    Ok((lines, figures))
}

/// A figure printed as a decimal number, rounded to a whole number.
fn whole(v: f64, what: &str) -> Result<u64, String> {
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(format!("{what} is {v}, not a rate"));
    }
    Ok(v.round() as u64)
}

/// `events per second:  1617.86` of `sysbench cpu … run`.
pub fn sysbench_cpu(stdout: &str) -> Result<u64, String> {
    let line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("events per second:"))
        .ok_or("sysbench printed no \"events per second:\" line")?;
    let v: f64 = line.trim().parse().map_err(|_| {
        format!(
            "sysbench's \"events per second:\" is {:?}, not a number",
            line.trim()
        )
    })?;
    whole(v, "sysbench's \"events per second:\"")
}

/// `81206.00 MiB transferred (27059.96 MiB/sec)` of `sysbench memory … run`.
pub fn sysbench_memory(stdout: &str) -> Result<u64, String> {
    let inner = stdout
        .lines()
        .find(|l| l.contains(" MiB transferred ("))
        .and_then(|l| l.split_once(" MiB transferred (").map(|(_, r)| r))
        .ok_or("sysbench printed no \"MiB transferred (N MiB/sec)\" line")?;
    let rate = inner.strip_suffix(" MiB/sec)").unwrap_or(inner).trim();
    let v: f64 = rate
        .parse()
        .map_err(|_| format!("sysbench's memory rate is {rate:?}, not a number of MiB/sec"))?;
    whole(v, "sysbench's memory rate")
}

/// What one fio job read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FioRead {
    /// `read.bw`: KiB/s.
    pub kib_per_sec: u64,
    /// `read.iops`, rounded.
    pub iops: u64,
}

/// The first job of `fio --output-format=json`. fio may print notes
/// before the JSON document; they are skipped.
pub fn fio_read(stdout: &str) -> Result<FioRead, String> {
    let start = stdout
        .find("\n{")
        .map(|i| i + 1)
        .or_else(|| stdout.starts_with('{').then_some(0))
        .ok_or("fio printed no JSON document (was --output-format=json given?)")?;
    let j: serde_json::Value = serde_json::from_str(&stdout[start..])
        .map_err(|e| format!("fio's JSON output does not parse ({e})"))?;
    let job = j
        .get("jobs")
        .and_then(|v| v.as_array())
        .and_then(|a| a.first())
        .ok_or("fio's JSON output has no job")?;
    let name = job
        .get("jobname")
        .and_then(|v| v.as_str())
        .unwrap_or("(unnamed)");
    match job.get("error").and_then(|v| v.as_i64()) {
        Some(0) => {}
        Some(e) => return Err(format!("fio's job {name} ended with error {e}")),
        None => return Err(format!("fio's job {name} has no \"error\" field")),
    }
    let read = job
        .get("read")
        .ok_or_else(|| format!("fio's job {name} has no \"read\" figures"))?;
    let number = |field: &str| -> Result<f64, String> {
        read.get(field)
            .and_then(|v| v.as_f64())
            .ok_or_else(|| format!("fio's job {name} has no read.{field}"))
    };
    if number("io_bytes")? <= 0.0 {
        return Err(format!("fio's job {name} read nothing"));
    }
    Ok(FioRead {
        kib_per_sec: whole(number("bw")?, "fio's read.bw")?,
        iops: whole(number("iops")?, "fio's read.iops")?,
    })
}

/// `http://SERV:HTTP_PORT{HTTP_PATH}upload-health.cgi`, beside upload.cgi
/// (`https://` with `HTTPS=1`).
pub fn upload_url(s: &Settings) -> String {
    crate::net::with_scheme(
        &format!(
            "http://{}:{}{}upload-health.cgi",
            s.serv, s.http_port, s.http_path
        ),
        s.https,
    )
}

/// Sends the results and returns the name the server keeps them under.
/// Retried like the hardware upload of an install (unreachable or 5xx:
/// up to `tuning.upload_attempts` times, the pause doubling); a 4xx is
/// final.
pub fn upload(s: &Settings, hw_json: &str, console: &Console, tuning: &Tuning) -> Result<String> {
    let url = upload_url(s);
    let mut parts = vec![("file", Part::File("health.json", hw_json.as_bytes()))];
    if let Some(sec) = &s.section {
        parts.push(("section", Part::Text(sec)));
    }
    let body = server::post_retried(&url, &parts, "the results", console, tuning)?;
    let j: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| anyhow!("{url} answered something that is not JSON ({e})"))?;
    j.get("stored")
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .map(String::from)
        .ok_or_else(|| anyhow!("{url} answered without \"stored\": {body}"))
}

/// The console's summary: one line per figure, aligned.
pub fn summary(figures: &[Figure]) -> Vec<String> {
    let width = figures.iter().map(|f| f.label.len()).max().unwrap_or(0);
    let digits = figures
        .iter()
        .map(|f| f.value.to_string().len())
        .max()
        .unwrap_or(0);
    figures
        .iter()
        .map(|f| {
            format!(
                "  {:<width$}  {:>digits$} {}",
                format!("{}:", f.label),
                f.value,
                f.unit,
                width = width + 1
            )
        })
        .collect()
}

/// Drivers, network, detection, the benchmarks, the upload.
fn check(
    inst: &Installer<'_>,
    s: &Settings,
    known: &mut Known,
    exec: &dyn Exec,
) -> Result<Checked> {
    let console = &inst.console;
    if let Some(m) = &s.embedded {
        console.warn(&format!(
            "EMBEDDED={m} is not used by a health check: the results go to the server"
        ));
    }
    if inst.root == std::path::Path::new("/") {
        // The programs come in health.img, a second archive beside
        // initrd.pxe (scripts/build-initrd); an install does not carry them.
        for tool in ["sysbench", "fio"] {
            if !inst.root.join("usr/bin").join(tool).exists() {
                bail!(
                    "HEALTH=1 needs /usr/bin/{tool}, which comes in health.img: boot with \
                     `INITRD initrd.pxe,health.img` (pxelinux) or both files concatenated"
                );
            }
        }
    }
    let mut lines = inst.bring_up(s, known, exec, false)?;
    let started = Utc::of(SystemTime::now()).rfc3339();
    let benchmarks = plan(&inst.root, &lines, s.health_time);
    let disks = disks(&lines).len();
    console.say(&format!(
        "running the health check: {} benchmarks of {} s ({} disk{} read, never written)",
        benchmarks.len(),
        s.health_time,
        disks,
        if disks == 1 { "" } else { "s" }
    ));
    let t0 = Instant::now();
    let (bench, figures) = run_benchmarks(&benchmarks, exec, console)?;
    let seconds = t0.elapsed().as_secs();
    lines.push([
        "health".into(),
        "run".into(),
        "date".into(),
        started.clone(),
    ]);
    lines.extend(bench);
    known.hw = Some(lines.clone());
    console.say(&format!(
        "health check results ({} UTC, benchmarks took {seconds} s):",
        started.trim_end_matches('Z').replace('T', " ")
    ));
    for l in summary(&figures) {
        console.say(&l);
    }
    console.say(&format!("sending the results to {}", upload_url(s)));
    let stored = upload(s, &hw::to_json(&lines), console, &inst.tuning)?;
    console.say(&format!(
        "health check done: the server keeps the results as {stored}; nothing was installed"
    ));
    Ok(Checked {
        lines,
        stored,
        seconds,
    })
}

/// A whole `HEALTH=1` run, from the parsed command line to the end
/// action. `early` is a command-line error found before.
pub(super) fn run(
    inst: &Installer<'_>,
    s: &Settings,
    early: Option<anyhow::Error>,
    known: &mut Known,
    exec: &dyn Exec,
) -> RunReport {
    let console = &inst.console;
    let result = match early {
        Some(e) => Err(e),
        None => check(inst, s, known, exec),
    };
    match result {
        Ok(checked) => {
            let action = match s.onsuccess {
                OnSuccess::Kexec => {
                    console.warn("ONSUCCESS=kexec: a health check installs no system to start");
                    Action::Reboot
                }
                OnSuccess::Reboot => Action::Reboot,
                OnSuccess::Halt => Action::Halt,
                OnSuccess::Console => Action::Console,
            };
            finish::end(&inst.root, exec, console, action, None, false);
            RunReport {
                result: Ok(Installed::nothing()),
                action,
                health: Some(checked),
            }
        }
        Err(e) => {
            let reason = format!("{e:#}");
            console.say(&format!("health check failed: {reason}"));
            inst.report_failure(s, known, &reason);
            let action = match s.onfailure {
                OnFailure::Reboot => Action::Reboot,
                OnFailure::Halt => Action::Halt,
                OnFailure::Console => Action::Console,
            };
            finish::end(&inst.root, exec, console, action, None, true);
            RunReport {
                result: Err(reason),
                action,
                health: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Fake, Reply, When};
    use std::path::Path;

    fn fixture(name: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/health")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn sysbench_outputs() {
        assert_eq!(
            sysbench_cpu(&fixture("sysbench-cpu-1-thread.txt")),
            Ok(1618)
        );
        assert_eq!(
            sysbench_cpu(&fixture("sysbench-cpu-2-threads.txt")),
            Ok(2564)
        );
        assert_eq!(
            sysbench_memory(&fixture("sysbench-memory-1M-1-thread.txt")),
            Ok(24570)
        );
        assert_eq!(
            sysbench_memory(&fixture("sysbench-memory-1M-2-threads.txt")),
            Ok(27060)
        );
        // Each reader refuses the other's output, naming what it missed.
        let e = sysbench_cpu(&fixture("sysbench-memory-1M-1-thread.txt")).unwrap_err();
        assert!(e.contains("events per second"), "{e}");
        let e = sysbench_memory(&fixture("sysbench-cpu-1-thread.txt")).unwrap_err();
        assert!(e.contains("MiB transferred"), "{e}");
        let e = sysbench_cpu("    events per second:  lots\n").unwrap_err();
        assert!(e.contains("\"lots\", not a number"), "{e}");
    }

    #[test]
    fn fio_outputs() {
        assert_eq!(
            fio_read(&fixture("fio-read-1M.json")),
            Ok(FioRead {
                kib_per_sec: 967_580,
                iops: 945
            })
        );
        assert_eq!(
            fio_read(&fixture("fio-randread-4k.json")),
            Ok(FioRead {
                kib_per_sec: 273_823,
                iops: 68_456
            })
        );
        // A note before the document is skipped.
        let noted = format!("note: a warning\n{}", fixture("fio-read-1M.json"));
        assert_eq!(fio_read(&noted).map(|r| r.kib_per_sec), Ok(967_580));
        // The job of a device that could not be opened.
        let e = fio_read(&fixture("fio-eperm.json")).unwrap_err();
        assert_eq!(e, "fio's job read-vda ended with error 1");
        let e = fio_read("fio: unrecognized option '--bogus'\n").unwrap_err();
        assert!(e.contains("no JSON document"), "{e}");
        let e = fio_read("{\"jobs\": [}").unwrap_err();
        assert!(e.contains("does not parse"), "{e}");
    }

    fn hw_list() -> Vec<Line> {
        let l = |a: &str, b: &str, c: &str, d: &str| -> Line {
            [a.into(), b.into(), c.into(), d.into()]
        };
        vec![
            l("system", "product", "name", "Standard PC"),
            l("cpu", "logical", "number", "2"),
            l("disk", "logical", "count", "2"),
            l("disk", "vda", "size", "4"),
            l("disk", "vdb", "size", "8"),
            // A RAID controller's drive is not a block device.
            l("disk", "1I:1:1", "size", "300"),
            l("disk", "vda", "vendor", "0x1af4"),
        ]
    }

    /// Answers sysbench and fio with the captured outputs, records every
    /// command; `fail` makes the commands of that program fail like the
    /// real one did.
    fn tools(fail: Option<&str>) -> Fake {
        let fake = match fail {
            Some("fio") => Fake::bare().on(
                When::program("fio"),
                Reply::exit(1, fixture("fio-eperm.json"), fixture("fio-eperm.stderr")),
            ),
            Some("sysbench") => Fake::bare().on(
                When::program("sysbench"),
                Reply::exit(1, "", fixture("sysbench-invalid-option.stderr")),
            ),
            _ => Fake::bare(),
        };
        let sysbench = |what: &str, threads: &str, name: &str| {
            (
                When::program("sysbench")
                    .containing(what)
                    .containing(threads),
                Reply::stdout(fixture(name)),
            )
        };
        [
            sysbench(" cpu ", "--threads=1 ", "sysbench-cpu-1-thread.txt"),
            sysbench(" cpu ", "", "sysbench-cpu-2-threads.txt"),
            sysbench("", "--threads=1 ", "sysbench-memory-1M-1-thread.txt"),
            sysbench("", "", "sysbench-memory-1M-2-threads.txt"),
            (
                When::program("fio").containing("--rw=randread"),
                Reply::stdout(fixture("fio-randread-4k.json")),
            ),
            (
                When::program("fio"),
                Reply::stdout(fixture("fio-read-1M.json")),
            ),
        ]
        .into_iter()
        .fold(fake, |fake, (when, reply)| fake.on(when, reply))
    }

    #[test]
    fn the_benchmarks_issue_these_commands_and_lines() {
        let hw = hw_list();
        assert_eq!(logical_cpus(&hw), 2);
        assert_eq!(disks(&hw), ["vda", "vdb"]);
        let tools = tools(None);
        let console = Console::new(Box::new(std::io::sink()));
        let plan = plan(Path::new("/"), &hw, 3);
        let (lines, figures) = run_benchmarks(&plan, &tools, &console).expect("benchmarks");
        let fio = |rw: &str, bs: &str, disk: &str| {
            format!(
                "fio --name={rw}-{disk} --filename=/dev/{disk} --readonly --rw={rw} --bs={bs} \
                 --direct=1 --ioengine=libaio --iodepth=32 --size=64M --runtime=3 --time_based \
                 --output-format=json"
            )
        };
        assert_eq!(
            tools.lines(),
            [
                "sysbench cpu --cpu-max-prime=15000 --threads=1 --time=3 run".to_string(),
                "sysbench cpu --cpu-max-prime=15000 --threads=2 --time=3 run".into(),
                "sysbench memory --memory-block-size=1M --threads=1 --time=3 run".into(),
                "sysbench memory --memory-block-size=1M --threads=2 --time=3 run".into(),
                fio("read", "1M", "vda"),
                fio("randread", "4k", "vda"),
                fio("read", "1M", "vdb"),
                fio("randread", "4k", "vdb"),
            ]
        );
        let shown: Vec<String> = lines.iter().map(hw::format_line).collect();
        assert_eq!(
            shown,
            [
                "('cpu', 'logical_0', 'loops_per_sec', '1618')",
                "('cpu', 'logical', 'loops_per_sec', '2564')",
                "('cpu', 'logical_0', 'bandwidth_1M', '24570')",
                "('cpu', 'logical', 'threaded_bandwidth_1M', '27060')",
                "('disk', 'vda', 'standalone_read_1M_KBps', '967580')",
                "('disk', 'vda', 'standalone_randread_4k_IOps', '68456')",
                "('disk', 'vdb', 'standalone_read_1M_KBps', '967580')",
                "('disk', 'vdb', 'standalone_randread_4k_IOps', '68456')",
            ]
        );
        let sum = summary(&figures);
        assert_eq!(sum[0], "  cpu, 1 thread:                    1618 events/s");
        assert_eq!(sum[4], "  vda, sequential read, 1M:       967580 KiB/s");
        assert_eq!(sum[5], "  vda, random read, 4k:            68456 IOPS");
        assert_eq!(sum.len(), 8);
    }

    #[test]
    fn a_failing_tool_is_named_with_its_error() {
        let console = Console::new(Box::new(std::io::sink()));
        let plan = plan(Path::new("/"), &hw_list(), 3);
        for (tool, first, said) in [
            (
                "sysbench",
                "benchmark cpu, 1 thread: sysbench cpu --cpu-max-prime=15000 --threads=1 --time=3 run: exit status 1",
                "invalid option: --no-such-opt",
            ),
            (
                "fio",
                "benchmark vda, sequential read, 1M: fio --name=read-vda --filename=/dev/vda --readonly",
                "error=Operation not permitted",
            ),
        ] {
            let tools = tools(Some(tool));
            let e = format!(
                "{:#}",
                run_benchmarks(&plan, &tools, &console).expect_err("must fail")
            );
            assert!(e.starts_with(first), "{tool}: {e}");
            assert!(e.contains(said), "{tool}: {e}");
            // Nothing runs after the failure.
            let log = tools.lines();
            assert_eq!(log.last().map(|c| c.starts_with(tool)), Some(true), "{log:?}");
            assert!(log.len() == 1 || tool == "fio", "{log:?}");
        }
        // A tool that is not there at all.
        let none = crate::detect::NoCommands;
        let e = format!("{:#}", run_benchmarks(&plan, &none, &console).unwrap_err());
        assert!(
            e.starts_with("benchmark cpu, 1 thread: sysbench cpu"),
            "{e}"
        );
        assert!(e.contains("cannot start"), "{e}");
    }

    #[test]
    fn one_cpu_and_no_disk() {
        let plan = plan(Path::new("/root"), &[], 1);
        assert_eq!(plan.len(), 4);
        assert_eq!(plan[1].label, "cpu, every CPU (1 thread)");
        assert_eq!(
            plan[3].cmd.display(),
            "sysbench memory --memory-block-size=1M --threads=1 --time=1 run"
        );
    }

    #[test]
    fn the_url_is_beside_upload_cgi() {
        let s = Settings::parse("SERV=10.1.2.3 HTTP_PORT=8080 HTTP_PATH=/edeploy/").unwrap();
        assert_eq!(
            upload_url(&s),
            "http://10.1.2.3:8080/edeploy/upload-health.cgi"
        );
        assert_eq!(
            server::upload_url(&s),
            "http://10.1.2.3:8080/edeploy/upload.cgi"
        );
    }
}
