//! The `memory` family: total size and, when `dmidecode` is available, the
//! banks (DIMM slots) named like `lshw` named them for eDeploy.
//!
//! The total is the installed memory, as `lshw` reported it to eDeploy
//! (`137438953472` for 128 GiB of DIMMs): the sum of the modules SMBIOS
//! lists, else the online memory blocks of `sys/devices/system/memory`,
//! else `MemTotal` from `proc/meminfo` (a little less than what is
//! installed: the kernel keeps some for itself).

use std::path::Path;

use super::dmi::{self, Record};
use super::{dir_names, line, read_value, run_ok};
use crate::exec::Exec;
use crate::hw::Line;

/// Memory type details `lshw` printed in a bank's description, in its
/// order; later SMBIOS bits (`Registered (Buffered)`…) it did not know.
const DETAILS: [&str; 10] = [
    "Fast-paged",
    "Static column",
    "Pseudo-static",
    "RAMBUS",
    "Synchronous",
    "CMOS",
    "EDO",
    "Window DRAM",
    "Cache DRAM",
    "Non-volatile",
];

/// `('memory','total','size', bytes)`, then the banks and
/// `('memory','banks','count', N)` when SMBIOS describes them.
pub fn memory(root: &Path, exec: &dyn Exec) -> Vec<Line> {
    let (banks, installed) = match run_ok(exec, &["dmidecode", "-t", "memory"]) {
        Some(out) => banks(&dmi::parse(&out)),
        None => (Vec::new(), 0),
    };
    let total = Some(installed)
        .filter(|t| *t > 0)
        .or_else(|| memory_blocks_total(root))
        .or_else(|| meminfo_total(root));
    let mut lines = Vec::new();
    if let Some(t) = total {
        lines.push(line("memory", "total", "size", t.to_string()));
    }
    lines.extend(banks);
    lines
}

/// The size of the online memory blocks of `sys/devices/system/memory`
/// (`block_size_bytes` is hexadecimal), in bytes.
pub fn memory_blocks_total(root: &Path) -> Option<u64> {
    let dir = root.join("sys/devices/system/memory");
    let block = read_value(&dir.join("block_size_bytes"))?;
    let block = u64::from_str_radix(block.trim_start_matches("0x"), 16).ok()?;
    let online = dir_names(&dir)
        .iter()
        .filter(|n| n.starts_with("memory"))
        .filter(|n| {
            let b = dir.join(n);
            read_value(&b.join("online")).as_deref() == Some("1")
                || read_value(&b.join("state")).as_deref() == Some("online")
        })
        .count() as u64;
    Some(block.saturating_mul(online)).filter(|t| *t > 0)
}

/// `MemTotal` of `proc/meminfo`, in bytes.
pub fn meminfo_total(root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(root.join("proc/meminfo")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// The bank lines of `dmidecode -t memory` output and the installed total
/// in bytes.
///
/// Banks are `bank:N` (N counting every slot of the array, empty ones
/// included), or `bank:A:N` when there are several memory arrays. A
/// populated bank has `size` (bytes), `clock` (Hz), `description`,
/// `vendor`, `product`, `serial`, `slot`; an empty one only its
/// `description` (`DIMM DDR3 Synchronous [empty]`) and `slot`. Flash chips,
/// which SMBIOS also lists as memory devices, are left out.
pub fn banks(records: &[Record]) -> (Vec<Line>, u64) {
    // Arrays used for something else than system memory (flash, cache)
    // hold no RAM.
    let not_ram: Vec<&str> = records
        .iter()
        .filter(|r| r.dmi_type == 16)
        .filter(|r| r.get("Use").is_some_and(|u| u != "System Memory"))
        .map(|r| r.handle.as_str())
        .collect();
    let devices: Vec<&Record> = records
        .iter()
        .filter(|r| r.dmi_type == 17)
        .filter(|r| r.get("Type") != Some("Flash"))
        .filter(|r| r.get("Array Handle").is_none_or(|a| !not_ram.contains(&a)))
        .collect();
    let mut arrays: Vec<&str> = Vec::new();
    for d in &devices {
        let a = d.get("Array Handle").unwrap_or("");
        if !arrays.contains(&a) {
            arrays.push(a);
        }
    }
    let mut counters = vec![0usize; arrays.len()];
    let mut lines = Vec::new();
    let mut total = 0u64;
    for d in &devices {
        let a = d.get("Array Handle").unwrap_or("");
        let ai = arrays.iter().position(|x| *x == a).unwrap_or(0);
        let index = counters[ai];
        counters[ai] += 1;
        let name = if arrays.len() > 1 {
            format!("bank:{ai}:{index}")
        } else {
            format!("bank:{index}")
        };
        let size = d.get("Size").and_then(dmi::size_bytes);
        let speed = d.get("Speed").and_then(dmi::speed_mhz);
        let mut desc: Vec<&str> = Vec::new();
        desc.extend(d.get("Form Factor"));
        desc.extend(d.get("Type").filter(|t| *t != "Other"));
        if let Some(detail) = d.get("Type Detail") {
            desc.extend(DETAILS.iter().copied().filter(|x| detail.contains(x)));
        }
        let mut description = desc.join(" ");
        let push = |lines: &mut Vec<Line>, key: &str, v: String| {
            lines.push(line("memory", &name, key, v));
        };
        match size {
            Some(size) => {
                total += size;
                push(&mut lines, "size", size.to_string());
                if let Some(mhz) = speed {
                    push(&mut lines, "clock", (mhz * 1_000_000).to_string());
                    description =
                        format!("{description} {mhz} MHz ({:.1} ns)", 1000.0 / mhz as f64);
                }
                push(&mut lines, "description", description.trim().to_string());
                for (key, field) in [
                    ("vendor", "Manufacturer"),
                    ("product", "Part Number"),
                    ("serial", "Serial Number"),
                ] {
                    if let Some(v) = d.get(field) {
                        push(&mut lines, key, v.to_string());
                    }
                }
            }
            None => {
                push(
                    &mut lines,
                    "description",
                    format!("{description} [empty]").trim().to_string(),
                );
            }
        }
        if let Some(slot) = d.get("Locator") {
            push(&mut lines, "slot", slot.to_string());
        }
    }
    if !devices.is_empty() {
        lines.push(line("memory", "banks", "count", devices.len().to_string()));
    }
    (lines, total)
}
