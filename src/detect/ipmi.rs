//! The BMC: `('system','ipmi','channel', N)`, its LAN settings
//! `('ipmi','lan', key, value)`, or the fake channel of test VMs.
//!
//! Like eDeploy, the LAN channel is the first of 0..15 whose
//! `ipmitool channel info` mentions volatile settings, asked only when an
//! IPMI device node exists (without one, `ipmitool` can only time out).

use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;

use super::{line, read_attr, run, run_ok, DetectOptions};
use crate::exec::Exec;
use crate::hw::Line;

/// Where the IPMI character device appears, depending on udev rules.
const DEVICES: [&str; 3] = ["dev/ipmi0", "dev/ipmi/0", "dev/ipmidev/0"];

/// IPMI lines (see the module documentation).
pub fn detect(root: &Path, exec: &dyn Exec, opts: &DetectOptions) -> Vec<Line> {
    if opts.load_modules {
        for module in ["ipmi_si", "ipmi_devintf"] {
            // A module that does not exist (no BMC driver in this kernel) is
            // not an error: there is then no IPMI to report.
            let _ = run(exec, &["modprobe", module]);
        }
    }
    let mut lines = Vec::new();
    if DEVICES.iter().any(|d| root.join(d).exists()) {
        if let Some(channel) = lan_channel(exec) {
            let ch = channel.to_string();
            lines.push(line("system", "ipmi", "channel", ch.as_str()));
            if let Some(out) = run_ok(exec, &["ipmitool", "lan", "print", &ch]) {
                lines.extend(parse_lan_print(&out));
            }
            return lines;
        }
    }
    let fake_on_cmdline = read_attr(&root.join("proc/cmdline"))
        .is_some_and(|c| c.to_ascii_uppercase().contains("FAKEIPMI"));
    if opts.ipmi_fake || fake_on_cmdline {
        lines.push(line("system", "ipmi-fake", "channel", "0"));
    }
    lines
}

/// The first channel whose `ipmitool channel info N` mentions `Volatile`
/// (LAN channels have volatile and non-volatile access settings).
fn lan_channel(exec: &dyn Exec) -> Option<u32> {
    for channel in 0..16u32 {
        let out = run(exec, &["ipmitool", "channel", "info", &channel.to_string()])?;
        if out.stdout.contains("Volatile") || out.stderr.contains("Volatile") {
            return Some(channel);
        }
    }
    None
}

/// `ipmitool lan print` as `('ipmi','lan', key, value)` lines: the key in
/// lower case with `-` between words (`ip-address`, `mac-address`,
/// `802.1q-vlan-id`); continuation lines (starting with `:`) are skipped.
pub fn parse_lan_print(output: &str) -> Vec<Line> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(re) = RE
        .get_or_init(|| Regex::new(r"^([^:]+[^ ])\s*:\s*(.*[^ ])\s*$").ok())
        .as_ref()
    else {
        return Vec::new();
    };
    output
        .lines()
        .filter_map(|l| {
            let c = re.captures(l)?;
            let key = c[1]
                .split(' ')
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join("-");
            Some(line("ipmi", "lan", &key, &c[2]))
        })
        .collect()
}
