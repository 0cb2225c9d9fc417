//! CPU caches and topology, NUMA nodes: the lines of the `hardware-detect`
//! tool that eDeploy did not have, with its names and values.
//!
//! `hardware-detect` reads them from `lscpu` and `lscpu -x`; so do we when
//! `lscpu` runs, so that both report the same text on the same machine
//! (older `lscpu` versions print caches as `32K` and NUMA masks as
//! `0x3f`, newer ones `96 KiB (2 instances)` and `3`). Without `lscpu` (the
//! installer's initrd has none) the same values are computed from sysfs,
//! in the format of the current `lscpu`:
//!
//! | value | sysfs |
//! |---|---|
//! | architecture | `proc/sys/kernel/arch` (the kernel's `uname -m`) |
//! | `l1d cache`… | `sys/devices/system/cpu/cpuN/cache/indexI/{level,type,size,shared_cpu_map}`: the sizes of the distinct caches of a level and type added up, and their number |
//! | `threads_per_core` | `sys/devices/system/cpu/cpu0/topology/thread_siblings_list`, else `siblings / cpu cores` of `proc/cpuinfo` |
//! | NUMA nodes | `sys/devices/system/node/nodeN/cpulist` |
//!
//! SMT control (`('cpu','physical','smt', …)`) is always
//! `sys/devices/system/cpu/smt/control`, as `hardware-detect` reads it.

use std::collections::BTreeSet;
use std::path::Path;

use super::{dir_names, line, read_attr, read_value, run};
use crate::exec::Exec;
use crate::hw::Line;

/// The fields of one `lscpu` output: `Key: value` lines, keys and values
/// trimmed, in order; a key given twice keeps its last value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// Parses `Key: value` lines; lines without a colon are ignored.
    pub fn parse(text: &str) -> Fields {
        let mut fields: Vec<(String, String)> = Vec::new();
        for l in text.lines() {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            fields.retain(|(x, _)| *x != k);
            fields.push((k, v));
        }
        Fields(fields)
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The NUMA nodes `lscpu` lists (`NUMA node3 CPU(s): …`), by number,
    /// with their CPU lists.
    fn numa_nodes(&self) -> Vec<(u32, &str, &str)> {
        let mut nodes: Vec<(u32, &str, &str)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix("NUMA node")?.strip_suffix(" CPU(s)")?;
                Some((n.parse().ok()?, k.as_str(), v.as_str()))
            })
            .collect();
        nodes.sort_by_key(|(n, _, _)| *n);
        nodes
    }
}

/// The two outputs of `lscpu`: the plain one, and `lscpu -x` (the same
/// with CPU lists written as hexadecimal masks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lscpu {
    pub plain: Fields,
    pub masks: Fields,
}

impl Lscpu {
    /// Both outputs from their text.
    pub fn parse(plain: &str, masks: &str) -> Lscpu {
        Lscpu {
            plain: Fields::parse(plain),
            masks: Fields::parse(masks),
        }
    }

    /// Runs `lscpu` and `lscpu -x` in the C locale (English labels);
    /// `None` when `lscpu` is not installed or fails.
    pub fn run(exec: &dyn Exec) -> Option<Lscpu> {
        let out = |args: &[&str]| {
            run(exec, args)
                .filter(|o| o.success() && o.stdout.contains(':'))
                .map(|o| o.stdout)
        };
        let plain = out(&["env", "LC_ALL=C", "lscpu"])?;
        let masks = out(&["env", "LC_ALL=C", "lscpu", "-x"]).unwrap_or_default();
        Some(Lscpu::parse(&plain, &masks))
    }
}

/// The four caches `hardware-detect` reports, with the `lscpu` labels.
const CACHES: [(&str, &str); 4] = [
    ("l1d cache", "L1d cache"),
    ("l1i cache", "L1i cache"),
    ("l2 cache", "L2 cache"),
    ("l3 cache", "L3 cache"),
];

/// The keys every `physical_N` socket gets (the same for all: `lscpu`
/// describes the whole machine), in this order when known: `boost`,
/// `architecture`, `l1d cache`, `l1i cache`, `l2 cache`, `l3 cache`,
/// `min_Mhz`, `max_Mhz`, `current_Mhz`, `threads_per_core`.
///
/// `boost` is `sys/devices/system/cpu/cpufreq/boost` (`1`: `enabled`,
/// else `disabled`). The clocks are `lscpu`'s `CPU min MHz`, `CPU max MHz`
/// and `CPU MHz` written as Python writes a float (`2300.0`, `1197.549`),
/// as `hardware-detect` prints them; without `lscpu`, min and max are the
/// lowest `cpuinfo_min_freq` and the highest `cpuinfo_max_freq` of
/// `sys/devices/system/cpu/cpuN/cpufreq` (kHz), and the current clock is
/// left out.
pub fn socket_details(root: &Path, lscpu: Option<&Lscpu>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(b) = read_attr(&root.join("sys/devices/system/cpu/cpufreq/boost")) {
        let v = if b == "1" { "enabled" } else { "disabled" };
        out.push(("boost".into(), v.into()));
    }
    match lscpu {
        Some(l) => {
            let f = &l.plain;
            if let Some(a) = f.get("Architecture") {
                out.push(("architecture".into(), a.into()));
            }
            for (key, label) in CACHES {
                if let Some(v) = f.get(label) {
                    out.push((key.into(), v.into()));
                }
            }
            for (key, label) in [
                ("min_Mhz", "CPU min MHz"),
                ("max_Mhz", "CPU max MHz"),
                ("current_Mhz", "CPU MHz"),
            ] {
                if let Some(v) = f.get(label).and_then(|v| v.parse::<f64>().ok()) {
                    out.push((key.into(), python_float(v)));
                }
            }
            // hardware-detect converts it to a number.
            if let Some(n) = f
                .get("Thread(s) per core")
                .and_then(|v| v.parse::<u64>().ok())
            {
                out.push(("threads_per_core".into(), n.to_string()));
            }
        }
        None => {
            let arch = read_value(&root.join("proc/sys/kernel/arch"))
                .unwrap_or_else(|| std::env::consts::ARCH.to_string());
            out.push(("architecture".into(), arch));
            let caches = sysfs_caches(root);
            for (key, _) in CACHES {
                if let Some((_, v)) = caches.iter().find(|(k, _)| k == key) {
                    out.push((key.into(), v.clone()));
                }
            }
            let khz = |file: &str| -> Vec<u64> {
                let dir = root.join("sys/devices/system/cpu");
                dir_names(&dir)
                    .iter()
                    .filter(|n| is_cpu_dir(n))
                    .filter_map(|n| read_value(&dir.join(n).join("cpufreq").join(file)))
                    .filter_map(|v| v.parse::<u64>().ok())
                    .collect()
            };
            let mhz = |k: u64| python_float(k as f64 / 1000.0);
            if let Some(min) = khz("cpuinfo_min_freq").into_iter().min() {
                out.push(("min_Mhz".into(), mhz(min)));
            }
            if let Some(max) = khz("cpuinfo_max_freq").into_iter().max() {
                out.push(("max_Mhz".into(), mhz(max)));
            }
            if let Some(n) = sysfs_threads_per_core(root) {
                out.push(("threads_per_core".into(), n.to_string()));
            }
        }
    }
    out
}

/// `('cpu','logical_N','governor', …)` for the logical CPUs 0 to
/// `count - 1` that have a cpufreq scaling governor:
/// `sys/devices/system/cpu/cpufreq/policyN/scaling_governor`, else
/// `sys/devices/system/cpu/cpuN/cpufreq/scaling_governor`, as
/// `hardware-detect` looks for them.
pub fn governors(root: &Path, count: usize) -> Vec<Line> {
    let cpu = root.join("sys/devices/system/cpu");
    (0..count)
        .filter_map(|n| {
            let v = read_attr(&cpu.join(format!("cpufreq/policy{n}/scaling_governor")))
                .or_else(|| read_attr(&cpu.join(format!("cpu{n}/cpufreq/scaling_governor"))))?;
            Some(line("cpu", &format!("logical_{n}"), "governor", v))
        })
        .collect()
}

/// A float as Python's `str` writes it for the values at hand: the
/// shortest text that reads back the same, with `.0` when whole
/// (`2300.0`, `1197.549`).
pub fn python_float(v: f64) -> String {
    let s = format!("{v}");
    if v.is_finite() && !s.contains('.') {
        format!("{s}.0")
    } else {
        s
    }
}

/// `cpu0`, `cpu12`: a logical CPU's directory in sysfs.
fn is_cpu_dir(name: &str) -> bool {
    name.strip_prefix("cpu")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `('cpu','physical','smt', value)`: the first line of
/// `sys/devices/system/cpu/smt/control` (`on`, `off`, `forceoff`,
/// `notsupported`, `notimplemented`), when the kernel has it.
pub fn smt(root: &Path) -> Option<Line> {
    let v = read_attr(&root.join("sys/devices/system/cpu/smt/control"))?;
    Some(line("cpu", "physical", "smt", v))
}

/// `('numa','nodes','count', N)`, then per node
/// `('numa','node_N','cpu_count'|'cpu_mask', …)` in node order.
///
/// From `lscpu` (the count from `NUMA node(s)`, the CPU lists from the
/// plain output, the masks from `lscpu -x`), else from
/// `sys/devices/system/node`. A kernel without NUMA support has no lines.
pub fn numa(root: &Path, lscpu: Option<&Lscpu>) -> Vec<Line> {
    let mut lines = Vec::new();
    match lscpu {
        Some(l) => {
            if let Some(n) = l
                .plain
                .get("NUMA node(s)")
                .and_then(|v| v.parse::<u64>().ok())
            {
                lines.push(line("numa", "nodes", "count", n.to_string()));
            }
            for (n, key, list) in l.plain.numa_nodes() {
                let Some(cpus) = parse_cpu_list(list) else {
                    continue;
                };
                let mask = l
                    .masks
                    .get(key)
                    .map(str::to_string)
                    .unwrap_or_else(|| cpu_mask(&cpus));
                let name = format!("node_{n}");
                lines.push(line("numa", &name, "cpu_count", cpus.len().to_string()));
                lines.push(line("numa", &name, "cpu_mask", mask));
            }
        }
        None => {
            let dir = root.join("sys/devices/system/node");
            let mut nodes: Vec<(u32, BTreeSet<u32>)> = dir_names(&dir)
                .iter()
                .filter_map(|n| {
                    let id: u32 = n.strip_prefix("node")?.parse().ok()?;
                    let list = read_attr(&dir.join(n).join("cpulist")).unwrap_or_default();
                    Some((id, parse_cpu_list(&list)?))
                })
                .collect();
            nodes.sort_by_key(|(id, _)| *id);
            if nodes.is_empty() {
                return lines;
            }
            lines.push(line("numa", "nodes", "count", nodes.len().to_string()));
            for (id, cpus) in nodes {
                let name = format!("node_{id}");
                lines.push(line("numa", &name, "cpu_count", cpus.len().to_string()));
                lines.push(line("numa", &name, "cpu_mask", cpu_mask(&cpus)));
            }
        }
    }
    lines
}

/// CPU numbers at or above this are not believed (Linux allows 8192).
const MAX_CPU: u32 = 1 << 20;

/// A kernel CPU list (`0-5,48-53`, `0,1`, empty) as a set; `None` when
/// it is not one (or names a CPU number of a million or more).
pub fn parse_cpu_list(text: &str) -> Option<BTreeSet<u32>> {
    let mut set = BTreeSet::new();
    let cpu = |t: &str| t.trim().parse::<u32>().ok().filter(|n| *n < MAX_CPU);
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (cpu(a)?, cpu(b)?);
                if b < a {
                    return None;
                }
                set.extend(a..=b);
            }
            None => {
                set.insert(cpu(item)?);
            }
        }
    }
    Some(set)
}

/// A CPU set as `lscpu -x` writes it: hexadecimal, CPU 0 the lowest bit,
/// without leading zeros (`0` for the empty set).
pub fn cpu_mask(cpus: &BTreeSet<u32>) -> String {
    let Some(&max) = cpus.iter().next_back() else {
        return "0".into();
    };
    let nibbles = max / 4 + 1;
    (0..nibbles)
        .rev()
        .map(|i| {
            let v: u32 = (0..4)
                .filter(|b| cpus.contains(&(i * 4 + b)))
                .map(|b| 1 << b)
                .sum();
            char::from_digit(v, 16).unwrap_or('0')
        })
        .collect::<String>()
        .trim_start_matches('0')
        .to_string()
}

/// A size as `lscpu` prints it (util-linux `size_to_human_string` with a
/// space and a three-letter suffix): `48 KiB`, `1.5 MiB`, `480 MiB`.
pub fn human_size(bytes: u64) -> String {
    let mut exp = 0u32;
    while exp < 60 && bytes >= 1u64 << (exp + 10) {
        exp += 10;
    }
    if exp == 0 {
        return format!("{bytes} B");
    }
    let letter = ["K", "M", "G", "T", "P", "E"][(exp / 10 - 1) as usize];
    let mut dec = bytes >> exp;
    let rest = bytes & ((1u64 << exp) - 1);
    // One decimal, rounded: the remainder in thousandths, then tenths.
    let mut frac = ((rest >> (exp - 10)) + 50) / 100;
    if frac >= 10 {
        dec += 1;
        frac = 0;
    }
    if frac == 0 {
        format!("{dec} {letter}iB")
    } else {
        format!("{dec}.{frac} {letter}iB")
    }
}

/// A sysfs cache size (`48K`, `4096K`, `32M`) in bytes.
fn cache_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 1u64 << 10),
        'M' => (&t[..t.len() - 1], 1 << 20),
        'G' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// The caches of sysfs as the current `lscpu` sums them up: per level and
/// type, the distinct caches (by the CPUs sharing them) added up,
/// `96 KiB (2 instances)`. Keys `l1d cache`, `l1i cache`, `l2 cache`…
pub fn sysfs_caches(root: &Path) -> Vec<(String, String)> {
    let cpu_dir = root.join("sys/devices/system/cpu");
    // (key, shared_cpu_map) → size, each distinct cache counted once.
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut totals: Vec<(String, u64, u32)> = Vec::new();
    for cpu in dir_names(&cpu_dir) {
        if !is_cpu_dir(&cpu) {
            continue;
        }
        let cache_dir = cpu_dir.join(&cpu).join("cache");
        for index in dir_names(&cache_dir) {
            if !index.starts_with("index") {
                continue;
            }
            let d = cache_dir.join(&index);
            let (Some(level), Some(kind), Some(size)) = (
                read_value(&d.join("level")),
                read_value(&d.join("type")),
                read_value(&d.join("size")).and_then(|s| cache_bytes(&s)),
            ) else {
                continue;
            };
            let key = match kind.as_str() {
                "Data" => format!("l{level}d cache"),
                "Instruction" => format!("l{level}i cache"),
                _ => format!("l{level} cache"),
            };
            let shared = read_value(&d.join("shared_cpu_map")).unwrap_or_else(|| cpu.clone());
            if !seen.insert((key.clone(), shared)) {
                continue;
            }
            match totals.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, total, count)) => {
                    *total += size;
                    *count += 1;
                }
                None => totals.push((key, size, 1)),
            }
        }
    }
    totals
        .into_iter()
        .map(|(key, total, count)| {
            let s = if count == 1 { "" } else { "s" };
            (key, format!("{} ({count} instance{s})", human_size(total)))
        })
        .collect()
}

/// Threads per core: the siblings of CPU 0's core in sysfs, else
/// `siblings / cpu cores` of `proc/cpuinfo`.
fn sysfs_threads_per_core(root: &Path) -> Option<usize> {
    let topo = root.join("sys/devices/system/cpu/cpu0/topology");
    let from_sysfs = ["thread_siblings_list", "core_cpus_list"]
        .iter()
        .find_map(|f| read_value(&topo.join(f)))
        .and_then(|l| parse_cpu_list(&l))
        .map(|s| s.len())
        .filter(|n| *n > 0);
    from_sysfs.or_else(|| {
        let text = std::fs::read_to_string(root.join("proc/cpuinfo")).ok()?;
        let cpus = super::cpu::parse_cpuinfo(&text);
        let first = cpus.first()?;
        let num = |k: &str| {
            first
                .iter()
                .find(|(x, _)| x == k)
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .filter(|n| *n > 0)
        };
        Some(num("siblings")? / num("cpu cores")?).filter(|n| *n > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_and_masks() {
        let s = parse_cpu_list("0-5,48-53").unwrap();
        assert_eq!(s.len(), 12);
        assert_eq!(cpu_mask(&s), "3f00000000003f");
        assert_eq!(cpu_mask(&parse_cpu_list("0,1").unwrap()), "3");
        assert_eq!(cpu_mask(&parse_cpu_list("").unwrap()), "0");
        assert_eq!(cpu_mask(&parse_cpu_list("4").unwrap()), "10");
        assert!(parse_cpu_list("a-b").is_none());
        assert!(parse_cpu_list("5-1").is_none());
        assert!(parse_cpu_list("4000000000").is_none());
        assert!(parse_cpu_list("0-4000000").is_none());
    }

    #[test]
    fn floats_like_python() {
        assert_eq!(python_float(2300.0), "2300.0");
        assert_eq!(python_float(1197.549), "1197.549");
        assert_eq!(python_float(3400000.0 / 1000.0), "3400.0");
    }

    #[test]
    fn sizes_like_lscpu() {
        assert_eq!(human_size(96 * 1024), "96 KiB");
        assert_eq!(human_size(4 << 20), "4 MiB");
        assert_eq!(human_size(1536 << 10), "1.5 MiB");
        assert_eq!(human_size(512), "512 B");
        // util-linux rounds the tenths, carrying into the units.
        assert_eq!(human_size((1 << 20) - 1), "1024 KiB");
        assert_eq!(cache_bytes("48K"), Some(48 << 10));
        assert_eq!(cache_bytes("x"), None);
    }
}
