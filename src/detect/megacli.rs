//! LSI MegaRAID controllers through `megacli` (`MegaCli`, `MegaCli64`).
//!
//! Lines: the controller's `('megaraid','Controller_0', key, value)`, its
//! enclosures' `('megaraid','Controller_0/Enclosure_0', key, value)`, per
//! physical drive `('pdisk','disk0', 'ctrl'|'type'|'id'|'size'|…, …)`, per
//! logical drive eDeploy's `('ldisk','disk0', 'raid_level'|'state'|'Size'|…,
//! …)`, then `('pdisk','all','size', total)` and
//! `('disk','megaraid','count', N)`. Sizes are decimal GB without the unit.
//!
//! `megacli` answers `Key : value` lines; keys are turned into the
//! `TitleCaseWithoutSpaces` form eDeploy used (`Coerced Size` →
//! `CoercedSize`). Its exit status is a result code (`-adpCount` exits
//! with the number of controllers), so it is ignored.

use std::sync::OnceLock;

use indexmap::IndexMap;
use regex::Regex;

use super::{line, run, size_in_gb};
use crate::exec::Exec;
use crate::hw::Line;

/// Names the tool is installed under.
const TOOLS: [&str; 4] = [
    "megacli",
    "MegaCli",
    "MegaCli64",
    "/opt/MegaRAID/MegaCli/MegaCli64",
];

/// The logical drive settings eDeploy reported, with its names.
const LD_KEYS: [(&str, &str); 11] = [
    ("current_access_policy", "CurrentAccessPolicy"),
    ("current_cache_policy", "CurrentCachePolicy"),
    ("disk_cache_policy", "DiskCachePolicy"),
    ("name", "Name"),
    ("number_of_drives", "NumberOfDrives"),
    ("number_of_drives_per_span", "NumberOfDrivesPerSpan"),
    ("raid_level", "RaidLevel"),
    ("sector_size", "SectorSize"),
    ("state", "State"),
    ("Size", "Size"),
    ("strip_size", "StripSize"),
];

/// Python's `str.title()`: a letter following a letter is lower case, any
/// other letter upper case.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if c.is_alphabetic() {
            if prev_letter {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            prev_letter = true;
        } else {
            out.push(c);
            prev_letter = false;
        }
    }
    out
}

/// Parses `Key : value` lines into an ordered map (a repeated key keeps
/// its first place and its last value). A line with no colon or more than
/// one is skipped; a final `.` is removed from values; integers are
/// written canonically.
pub fn parse_output(output: &str) -> IndexMap<String, String> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let mut res = IndexMap::new();
    let Some(re) = RE.get_or_init(|| Regex::new(r"\s*:\s*").ok()).as_ref() else {
        return res;
    };
    for l in output.lines() {
        let parts: Vec<&str> = re.split(l.trim()).collect();
        if parts.len() != 2 {
            continue;
        }
        let mut value = parts[1];
        if value.len() > 1 && value.ends_with('.') {
            value = &value[..value.len() - 1];
        }
        let value = match value.parse::<i64>() {
            Ok(n) => n.to_string(),
            Err(_) => value.to_string(),
        };
        res.insert(title(parts[0]).replace(' ', ""), value);
    }
    res
}

/// The number of controllers from `-adpCount`.
pub fn parse_adp_count(output: &str) -> usize {
    parse_output(output)
        .get("ControllerCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The enclosures of `-EncInfo -aN`, each a map with `Enclosure` (its
/// number), `DeviceId`, `NumberOfSlots`…
pub fn parse_enc_info(output: &str) -> Vec<IndexMap<String, String>> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(head) = RE
        .get_or_init(|| Regex::new(r" +Enclosure [0-9]+:").ok())
        .as_ref()
    else {
        return Vec::new();
    };
    let lines: Vec<&str> = output.lines().collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| head.is_match(lines[i]))
        .collect();
    let mut parts = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        // A part stops before the line preceding the next heading.
        let end = match starts.get(k + 1) {
            Some(&next) => next.saturating_sub(1).max(start),
            None => lines.len(),
        };
        let mut map = parse_output(&lines[start..end].join("\n"));
        let key = map
            .keys()
            .find(|k| {
                k.strip_prefix("Enclosure")
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            })
            .cloned();
        if let Some(key) = key {
            let n = key["Enclosure".len()..].to_string();
            map.shift_remove(&key);
            map.insert("Enclosure".into(), n);
        }
        parts.push(map);
    }
    parts
}

/// The physical drives of `-PDList -aN`, one map per drive (blocks start
/// at `Enclosure Device ID:`).
pub fn parse_pd_list(output: &str) -> Vec<IndexMap<String, String>> {
    let mut blocks: Vec<String> = Vec::new();
    for l in output.lines() {
        if l.trim_start().starts_with("Enclosure Device ID") {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(l);
            b.push('\n');
        }
    }
    blocks.iter().map(|b| parse_output(b)).collect()
}

/// `-LDGetNum -aN`: the number of logical drives.
pub fn parse_ld_get_num(output: &str, ctrl: usize) -> usize {
    parse_output(output)
        .get(&format!("NumberOfVirtualDrivesConfiguredOnAdapter{ctrl}"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The `pdisk` lines of one drive (a map of [`parse_pd_list`]); `None` for
/// a slot holding something else than a disk (no `PdType`). `ctrl_count`
/// is the number of controllers, which eDeploy wrote in the `ctrl` key.
pub fn pdisk_lines(
    name: &str,
    info: &IndexMap<String, String>,
    ctrl_count: usize,
) -> Option<(Vec<Line>, f64)> {
    let pd_type = info.get("PdType")?;
    let enclosure = info.get("EnclosureDeviceId").map_or("", String::as_str);
    let slot = info.get("SlotNumber").map_or("", String::as_str);
    let mut lines = vec![
        line("pdisk", name, "ctrl", ctrl_count.to_string()),
        line("pdisk", name, "type", pd_type.as_str()),
        line("pdisk", name, "id", format!("{enclosure}:{slot}")),
    ];
    let mut size = 0.0;
    if let Some(coerced) = info.get("CoercedSize") {
        // "278.875 GB [0x22ecb25c Sectors]"
        let words: Vec<&str> = coerced.split_whitespace().take(2).collect();
        let gb = size_in_gb(&words.join(" "));
        size = gb.parse().unwrap_or(0.0);
        lines.push(line("pdisk", name, "size", gb));
    }
    for (k, v) in info {
        if ["PdType", "EnclosureDeviceId", "CoercedSize", "ExitCode"].contains(&k.as_str()) {
            continue;
        }
        if k.contains("DriveTemperature") {
            // "32C (89.60 F)" → 32 Celsius
            let first = v.split_whitespace().next().unwrap_or("");
            if let Some(c) = first.strip_suffix('C') {
                lines.push(line("pdisk", name, k, c.trim()));
                lines.push(line("pdisk", name, &format!("{k}_units"), "Celsius"));
                continue;
            }
        } else if k.contains("InquiryData") {
            for (i, w) in v.split_whitespace().enumerate() {
                lines.push(line("pdisk", name, &format!("{k}[{i}]"), w));
            }
            continue;
        }
        lines.push(line("pdisk", name, k, v.trim()));
    }
    Some((lines, size))
}

/// The `ldisk` lines of `-LDInfo -Lk -aN` output, with eDeploy's names.
pub fn ldisk_lines(name: &str, info: &IndexMap<String, String>) -> Vec<Line> {
    LD_KEYS
        .iter()
        .filter_map(|(key, src)| {
            let v = info.get(*src)?;
            let v = if *key == "Size" {
                size_in_gb(v)
            } else {
                v.clone()
            };
            Some(line("ldisk", name, key, v))
        })
        .collect()
}

/// MegaRAID lines; nothing when `megacli` is not installed or sees no
/// controller.
pub fn detect(exec: &dyn Exec) -> Vec<Line> {
    let Some((tool, count)) = TOOLS.iter().find_map(|t| {
        let out = run(exec, &[t, "-adpCount", "-NoLog"])?;
        Some((*t, parse_adp_count(&out.stdout)))
    }) else {
        return Vec::new();
    };
    let cli = |args: &[&str]| -> String {
        let mut argv = vec![tool];
        argv.extend_from_slice(args);
        argv.push("-NoLog");
        run(exec, &argv).map(|o| o.stdout).unwrap_or_default()
    };
    let mut lines = Vec::new();
    let mut disks = 0;
    let mut total = 0.0;
    for ctrl in 0..count {
        let a = format!("-a{ctrl}");
        let cname = format!("Controller_{ctrl}");
        for (k, v) in parse_output(&cli(&["-AdpAllInfo", &a])) {
            lines.push(line("megaraid", &cname, &k, v));
        }
        for enc in parse_enc_info(&cli(&["-EncInfo", &a])) {
            let Some(n) = enc.get("Enclosure") else {
                continue;
            };
            let ename = format!("{cname}/Enclosure_{n}");
            for (k, v) in &enc {
                if k != "ExitCode" && k != "Enclosure" {
                    lines.push(line("megaraid", &ename, k, v.as_str()));
                }
            }
        }
        let mut names: Vec<String> = Vec::new();
        for info in parse_pd_list(&cli(&["-PDList", &a])) {
            let slot = info.get("SlotNumber").map_or("", String::as_str);
            // eDeploy named drives after their slot; two enclosures can
            // both have a slot 0, so the second is qualified.
            let mut name = format!("disk{slot}");
            if names.contains(&name) {
                let enc = info.get("EnclosureDeviceId").map_or("", String::as_str);
                name = format!("disk{enc}_{slot}");
            }
            if let Some((l, size)) = pdisk_lines(&name, &info, count) {
                names.push(name);
                lines.extend(l);
                disks += 1;
                total += size;
            }
        }
        let lds = parse_ld_get_num(&cli(&["-LDGetNum", &a]), ctrl);
        for ld in 0..lds {
            let info = parse_output(&cli(&["-LDInfo", &format!("-L{ld}"), &a]));
            lines.extend(ldisk_lines(&format!("disk{ld}"), &info));
        }
    }
    if count == 0 {
        return Vec::new();
    }
    if total > 0.0 {
        lines.push(line("pdisk", "all", "size", format!("{total:.2}")));
    }
    lines.push(line("disk", "megaraid", "count", disks.to_string()));
    lines
}
