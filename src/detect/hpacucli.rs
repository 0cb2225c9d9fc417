//! HP Smart Array controllers through `ssacli`, `hpssacli` or `hpacucli`
//! (whichever is installed; they share their command language).
//!
//! Lines, with eDeploy's names: `('hpa','slots','count', N)`, the
//! controller's settings `('hpa','slot_2', key, value)`, per physical
//! drive `('disk','1I:1:1', 'type'|'slot'|'size'|…, …)` (size in decimal
//! GB without the unit), the logical drives
//! `('hpa','slot_2/ld_1', key, value)` (with `disk_name`, the block device
//! it appears as), then `('disk','hpa','size', total)` and
//! `('disk','hpa','count', N)`.
//!
//! The parsers are pure functions on the tools' text, so they are tested on
//! captured outputs.

use std::sync::OnceLock;

use regex::Regex;

use super::{line, run_ok, size_in_gb};
use crate::exec::Exec;
use crate::hw::Line;

/// The tools, newest first.
const TOOLS: [&str; 3] = ["ssacli", "hpssacli", "hpacucli"];

/// A controller of `ctrl all show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub slot: u32,
    pub name: String,
    pub serial: String,
}

/// A drive line of `pd all show` (`physicaldrive 1I:1:1 (port 1I:box 1:bay
/// 1, SATA, 1 TB, OK)`) or `ld all show` (`logicaldrive 1 (93.1 GB, RAID
/// 1, OK)`), with the array it belongs to (`A`, or `unassigned`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drive {
    pub array: String,
    pub id: String,
    /// Interface type of a physical drive, size of a logical one.
    pub first: String,
    /// Size of a physical drive, RAID level of a logical one.
    pub second: String,
    pub status: String,
}

fn regex(cell: &'static OnceLock<Option<Regex>>, re: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(re).ok()).as_ref()
}

/// Parses `ctrl all show`: `Smart Array P420 in Slot 2   (sn: PDKRH0…)`.
pub fn parse_ctrl_all_show(output: &str) -> Vec<Controller> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(re) = regex(&RE, r"^(.*) in Slot ([0-9]+).*\(sn: (.*)\)") else {
        return Vec::new();
    };
    output
        .lines()
        .filter_map(|l| {
            let c = re.captures(l)?;
            Some(Controller {
                slot: c[2].parse().ok()?,
                name: c[1].trim().to_string(),
                serial: c[3].trim().to_string(),
            })
        })
        .collect()
}

/// A `Key: value` line as a key in lower case with `_` between words and
/// without parentheses (`Current Temperature (C)` →
/// `current_temperature_c`), the value with its spaces collapsed; lines
/// with no value or more than one `: ` are not settings.
fn setting(l: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = l.split(": ").collect();
    if parts.len() != 2 {
        return None;
    }
    let key = parts[0]
        .trim()
        .to_lowercase()
        .replace(' ', "_")
        .replace(['(', ')'], "")
        .replace("__", "_");
    let value = parts[1].split_whitespace().collect::<Vec<_>>().join(" ");
    Some((key, value))
}

/// Parses `ctrl slot=N show`: the controller's settings, the `slot` line
/// left out (the name already says it).
pub fn parse_ctrl_show(output: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in output.lines().filter_map(setting) {
        if k == "slot" {
            continue;
        }
        // Repeated keys (one block per temperature sensor) keep the last
        // value, in the place of the first.
        match out.iter_mut().find(|(x, _)| *x == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// The name of the array an `array A` heading opens.
fn array_heading(t: &str) -> Option<String> {
    let head = t.get(..5)?;
    head.eq_ignore_ascii_case("array")
        .then(|| t[5..].trim().to_string())
}

/// Parses the array blocks of `pd all show` or `ld all show`.
fn parse_drives(output: &str, re: &Regex) -> Vec<Drive> {
    let mut array = String::new();
    let mut drives = Vec::new();
    for l in output.lines() {
        let t = l.trim();
        if let Some(a) = array_heading(t) {
            array = a;
        } else if t.eq_ignore_ascii_case("unassigned") {
            array = "unassigned".into();
        } else if let Some(c) = re.captures(t) {
            drives.push(Drive {
                array: array.clone(),
                id: c[1].to_string(),
                first: c[2].trim().to_string(),
                second: c[3].trim().to_string(),
                status: c[4].trim().to_string(),
            });
        }
    }
    drives
}

/// Parses `ctrl slot=N pd all show`.
pub fn parse_pd_all_show(output: &str) -> Vec<Drive> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    match regex(&RE, r"^physicaldrive (\S+) \(.*, (.*), (.*), (.*)\)") {
        Some(re) => parse_drives(output, re),
        None => Vec::new(),
    }
}

/// Parses `ctrl slot=N ld all show`.
pub fn parse_ld_all_show(output: &str) -> Vec<Drive> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    match regex(&RE, r"^logicaldrive (\S+) \((.*), (.*), (.*)\)") {
        Some(re) => parse_drives(output, re),
        None => Vec::new(),
    }
}

/// Parses `ctrl slot=N pd all show detail` (or `pd ID show`): for each
/// `physicaldrive ID` block its settings, `port`, `box` and `bay` left out
/// (the id holds them), `array` added from the heading above the block.
pub fn parse_pd_detail(output: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut array: Option<String> = None;
    for l in output.lines() {
        let t = l.trim();
        if let Some(a) = array_heading(t) {
            array = Some(a);
            continue;
        }
        if t.eq_ignore_ascii_case("unassigned") {
            array = None;
            continue;
        }
        if let Some(id) = t.strip_prefix("physicaldrive ") {
            let mut settings = Vec::new();
            if let Some(a) = &array {
                settings.push(("array".to_string(), a.clone()));
            }
            out.push((id.trim().to_string(), settings));
            continue;
        }
        let Some((_, settings)) = out.last_mut() else {
            continue;
        };
        if let Some((k, v)) = setting(t) {
            if !["port", "bay", "box"].contains(&k.as_str()) {
                settings.push((k, v));
            }
        }
    }
    out
}

/// Parses `ctrl slot=N ld ID show` into `(key, value)` pairs as printed
/// (`Disk Name` → `/dev/sda`); a key ending a line (`Mirror Group 0:`)
/// takes the drive id, or the text, of the next line; a line holding two
/// settings (`Disk Name: /dev/sda          Mount Points: None`) gives both.
pub fn parse_ld_show(output: &str) -> Vec<(String, String)> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let pd = regex(&RE, r"^physicaldrive (\S+) \(");
    fn set(out: &mut Vec<(String, String)>, k: String, v: String) {
        match out.iter_mut().find(|(x, _)| *x == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    let mut pending: Option<String> = None;
    for l in output.lines() {
        if let Some(k) = pending.take() {
            let t = l.trim();
            let v = pd
                .and_then(|re| re.captures(t))
                .map(|c| c[1].to_string())
                .unwrap_or_else(|| t.to_string());
            set(&mut out, k, v);
            continue;
        }
        let parts: Vec<&str> = l.split(':').collect();
        match parts.len() {
            2 if parts[1].is_empty() => pending = Some(parts[0].trim().to_string()),
            2 => set(
                &mut out,
                parts[0].trim().to_string(),
                parts[1].trim().to_string(),
            ),
            3 => {
                let middle = parts[1].trim();
                if let Some((v, k2)) = middle.split_once(char::is_whitespace) {
                    set(&mut out, parts[0].trim().to_string(), v.to_string());
                    set(&mut out, k2.trim().to_string(), parts[2].trim().to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// The settings of a logical drive as lines under `hpa`/`slot_N/ld_ID`,
/// keys in lower case with `_` (`disk_name`), sizes in GB.
pub fn ld_lines(slot: u32, id: &str, settings: &[(String, String)]) -> Vec<Line> {
    let name = format!("slot_{slot}/ld_{id}");
    settings
        .iter()
        .map(|(k, v)| {
            let key = k.trim().to_lowercase().replace(' ', "_");
            let value = if key == "size" {
                size_in_gb(v)
            } else {
                v.clone()
            };
            line("hpa", &name, &key, value)
        })
        .collect()
}

/// The lines of one controller from its tools' outputs (any may be empty):
/// `ctrl slot=N show`, `pd all show`, `pd all show detail`; returns them
/// with the number and total size of its physical drives.
pub fn controller_lines(
    slot: u32,
    ctrl_show: &str,
    pd_all: &str,
    pd_detail: &str,
) -> (Vec<Line>, usize, f64) {
    let slot_name = format!("slot_{slot}");
    let mut lines: Vec<Line> = parse_ctrl_show(ctrl_show)
        .into_iter()
        .map(|(k, v)| line("hpa", &slot_name, &k, v))
        .collect();
    let details = parse_pd_detail(pd_detail);
    let mut count = 0;
    let mut total = 0.0;
    for d in parse_pd_all_show(pd_all) {
        count += 1;
        lines.push(line("disk", &d.id, "type", d.first.as_str()));
        lines.push(line("disk", &d.id, "slot", slot.to_string()));
        let detail = details.iter().find(|(id, _)| *id == d.id).map(|(_, s)| s);
        let mut size = size_in_gb(&d.second);
        if let Some(s) = detail.and_then(|s| s.iter().find(|(k, _)| k == "size")) {
            size = size_in_gb(&s.1);
        }
        total += size.parse::<f64>().unwrap_or(0.0);
        lines.push(line("disk", &d.id, "size", size.as_str()));
        for (k, v) in detail.into_iter().flatten() {
            if k != "size" {
                lines.push(line("disk", &d.id, k, v.as_str()));
            }
        }
    }
    (lines, count, total)
}

/// HP RAID lines; nothing when no tool is installed or no controller
/// answers.
pub fn detect(exec: &dyn Exec) -> Vec<Line> {
    let Some((tool, all)) = TOOLS.iter().find_map(|t| {
        let out = super::run(exec, &[t, "ctrl", "all", "show"])?;
        Some((*t, out.stdout))
    }) else {
        return Vec::new();
    };
    let controllers = parse_ctrl_all_show(&all);
    if controllers.is_empty() {
        return Vec::new();
    }
    let cli = |args: &[&str]| -> String {
        let mut argv = vec![tool];
        argv.extend_from_slice(args);
        run_ok(exec, &argv).unwrap_or_default()
    };
    let mut lines = vec![line("hpa", "slots", "count", controllers.len().to_string())];
    let mut count = 0;
    let mut total = 0.0;
    let mut lds = Vec::new();
    for c in &controllers {
        let sel = format!("slot={}", c.slot);
        let (l, n, t) = controller_lines(
            c.slot,
            &cli(&["ctrl", &sel, "show"]),
            &cli(&["ctrl", &sel, "pd", "all", "show"]),
            &cli(&["ctrl", &sel, "pd", "all", "show", "detail"]),
        );
        lines.extend(l);
        count += n;
        total += t;
        for ld in parse_ld_all_show(&cli(&["ctrl", &sel, "ld", "all", "show"])) {
            let settings = parse_ld_show(&cli(&["ctrl", &sel, "ld", &ld.id, "show"]));
            lds.extend(ld_lines(c.slot, &ld.id, &settings));
        }
    }
    lines.extend(lds);
    if total > 0.0 {
        lines.push(line("disk", "hpa", "size", format!("{total:.2}")));
    }
    lines.push(line("disk", "hpa", "count", count.to_string()));
    lines
}
