//! The `cpu` family, from `proc/cpuinfo`, completed by the SMBIOS
//! processor records (`dmidecode -t processor`) when available.
//!
//! Sockets are the distinct `physical id`s of `proc/cpuinfo` (one socket
//! when the field is missing, as on some virtual machines and ARM systems),
//! named `physical_0`, `physical_1`… in the order of their ids; logical CPUs
//! are its `processor` entries. The names of the keys and the vendor names
//! (`Intel Corp.`) are those `lshw` gave eDeploy. The cache, architecture
//! and SMT lines of `hardware-detect` come from [`topology`].

use std::path::Path;

use super::dmi::{self, Record};
use super::topology::{self, Lscpu};
use super::{line, run_ok};
use crate::exec::Exec;
use crate::hw::Line;

/// One `processor` block of `proc/cpuinfo`, fields in file order.
pub type CpuInfo = Vec<(String, String)>;

/// Parses `proc/cpuinfo` into one entry per logical CPU; the lines before
/// the first `processor` (ARM prints some) are not a CPU.
pub fn parse_cpuinfo(text: &str) -> Vec<CpuInfo> {
    let mut cpus: Vec<CpuInfo> = Vec::new();
    let mut cur: Option<CpuInfo> = None;
    for l in text.lines() {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "processor" {
            if let Some(c) = cur.take() {
                cpus.push(c);
            }
            cur = Some(Vec::new());
        }
        if let Some(c) = cur.as_mut() {
            c.push((k.to_string(), v.to_string()));
        }
    }
    if let Some(c) = cur.take() {
        cpus.push(c);
    }
    cpus
}

fn field<'a>(cpu: &'a CpuInfo, key: &str) -> Option<&'a str> {
    cpu.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The vendor as `lshw` names it from the CPUID vendor string.
fn vendor_name(id: &str) -> String {
    match id {
        "GenuineIntel" => "Intel Corp.",
        "AuthenticAMD" => "Advanced Micro Devices [AMD]",
        "CentaurHauls" => "VIA Technologies",
        "CyrixInstead" => "Cyrix Corp.",
        "HygonGenuine" => "Hygon",
        other => other,
    }
    .to_string()
}

/// `cpu` lines from the text of `proc/cpuinfo` and the parsed
/// `dmidecode -t processor` records (empty when unavailable).
///
/// Per socket, in this order and when known: `physid` (SMBIOS handle),
/// `product`, `vendor`, `frequency` (Hz; SMBIOS current speed, else
/// `cpu MHz`), `cores`, `enabled_cores` (SMBIOS), `threads`, `family`,
/// `model`, `stepping`, `flags`; then `('cpu','physical','number', N)` and
/// `('cpu','logical','number', N)`.
pub fn cpu_lines(cpuinfo: &str, dmi_records: &[Record]) -> Vec<Line> {
    let cpus = parse_cpuinfo(cpuinfo);
    let mut sockets: Vec<(u64, &CpuInfo)> = Vec::new();
    for c in &cpus {
        let id = field(c, "physical id")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if !sockets.iter().any(|(s, _)| *s == id) {
            sockets.push((id, c));
        }
    }
    sockets.sort_by_key(|(id, _)| *id);
    // Unpopulated sockets are SMBIOS records too; the populated ones pair
    // with the kernel's sockets in order.
    let dmi_cpus: Vec<&Record> = dmi_records
        .iter()
        .filter(|r| r.dmi_type == 4)
        .filter(|r| r.get("Status").is_none_or(|s| s.starts_with("Populated")))
        .collect();
    let mut lines = Vec::new();
    for (i, (_, c)) in sockets.iter().enumerate() {
        let name = format!("physical_{i}");
        let d = dmi_cpus.get(i).copied();
        let dget = |k: &str| d.and_then(|r| r.get(k)).map(str::to_string);
        let dnum = |k: &str| dget(k).filter(|v| v.parse::<u64>().is_ok_and(|n| n > 0));
        let mut push = |key: &str, v: Option<String>| {
            if let Some(v) = v {
                lines.push(line("cpu", &name, key, v));
            }
        };
        push("physid", d.and_then(Record::physid));
        push(
            "product",
            field(c, "model name")
                .map(str::to_string)
                .or_else(|| dget("Version")),
        );
        push(
            "vendor",
            field(c, "vendor_id")
                .map(vendor_name)
                .or_else(|| dget("Manufacturer")),
        );
        let dmi_hz = dget("Current Speed")
            .and_then(|s| dmi::speed_mhz(&s))
            .map(|mhz| mhz * 1_000_000);
        let cpuinfo_hz = field(c, "cpu MHz")
            .and_then(|m| m.parse::<f64>().ok())
            .filter(|m| *m > 0.0)
            .map(|m| (m * 1_000_000.0).round() as u64);
        push("frequency", dmi_hz.or(cpuinfo_hz).map(|h| h.to_string()));
        push(
            "cores",
            dnum("Core Count").or_else(|| field(c, "cpu cores").map(str::to_string)),
        );
        push("enabled_cores", dnum("Core Enabled"));
        push(
            "threads",
            dnum("Thread Count").or_else(|| field(c, "siblings").map(str::to_string)),
        );
        push("family", field(c, "cpu family").map(str::to_string));
        push("model", field(c, "model").map(str::to_string));
        push("stepping", field(c, "stepping").map(str::to_string));
        push(
            "flags",
            field(c, "flags")
                .or_else(|| field(c, "Features"))
                .map(str::to_string),
        );
    }
    // A system whose cpuinfo has no "processor" line at all still has one
    // socket if SMBIOS says so; never report 0 sockets with CPUs present.
    let physical = if sockets.is_empty() {
        dmi_cpus.len()
    } else {
        sockets.len()
    };
    lines.push(line("cpu", "physical", "number", physical.to_string()));
    lines.push(line("cpu", "logical", "number", cpus.len().to_string()));
    lines
}

/// `cpu` lines of the system under `root`, `lscpu` run for the details.
pub fn cpu(root: &Path, exec: &dyn Exec) -> Vec<Line> {
    cpu_with(root, exec, Lscpu::run(exec).as_ref())
}

/// `cpu` lines of the system under `root`, given what `lscpu` said
/// (`None`: not installed): [`cpu_lines`], each socket followed by the
/// `hardware-detect` details ([`topology::socket_details`]),
/// `('cpu','physical','smt', …)` before the socket count, and the
/// governors of the logical CPUs ([`topology::governors`]) last.
pub fn cpu_with(root: &Path, exec: &dyn Exec, lscpu: Option<&Lscpu>) -> Vec<Line> {
    let cpuinfo = std::fs::read_to_string(root.join("proc/cpuinfo")).unwrap_or_default();
    let records = run_ok(exec, &["dmidecode", "-t", "processor"])
        .map(|o| dmi::parse(&o))
        .unwrap_or_default();
    let base = cpu_lines(&cpuinfo, &records);
    let details = topology::socket_details(root, lscpu);
    let mut lines: Vec<Line> = Vec::with_capacity(base.len() + details.len() * 2 + 1);
    for (i, l) in base.iter().enumerate() {
        if l[1] == "physical" && l[2] == "number" {
            lines.extend(topology::smt(root));
        }
        lines.push(l.clone());
        // After the last line of a socket, its details.
        let socket_ends =
            l[1].starts_with("physical_") && base.get(i + 1).is_none_or(|n| n[1] != l[1]);
        if socket_ends {
            lines.extend(
                details
                    .iter()
                    .map(|(k, v)| line("cpu", &l[1], k, v.as_str())),
            );
        }
        if l[1] == "logical" && l[2] == "number" {
            let count = l[3].parse().unwrap_or(0);
            lines.extend(topology::governors(root, count));
        }
    }
    lines
}
