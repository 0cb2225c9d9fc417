//! The `network` family: one block of lines per physical interface of
//! `sys/class/net`.
//!
//! Virtual interfaces (no `device` link: loopback, bridges, bonds, VLANs,
//! tunnels) are skipped, like `lshw` skipped them for eDeploy. IPv4
//! addresses come from `ip -o -4 addr show`: procfs has no per-interface
//! IPv4 address (`proc/net/fib_trie` cannot tell two interfaces of the same
//! subnet apart), so this is the one part read from the live system even
//! when detection reads another root. `ethtool` adds the negotiation state
//! and the offload features when installed.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use super::{dir_names, line, link_name, read_value, run_ok};
use crate::exec::Exec;
use crate::hw::Line;

/// The first IPv4 address and prefix length of each interface in the
/// output of `ip -o -4 addr show` (one line per address:
/// `2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0\ …`).
pub fn parse_ip_addr(output: &str) -> Vec<(String, Ipv4Addr, u8)> {
    let mut out: Vec<(String, Ipv4Addr, u8)> = Vec::new();
    for l in output.lines() {
        let words: Vec<&str> = l.split_whitespace().collect();
        let Some(inet) = words.iter().position(|w| *w == "inet") else {
            continue;
        };
        let (Some(ifname), Some(addr)) = (words.get(1), words.get(inet + 1)) else {
            continue;
        };
        // VLAN interfaces are printed as "eth0.100@eth0".
        let ifname = ifname.split('@').next().unwrap_or(ifname);
        let (ip, prefix) = match addr.split_once('/') {
            Some((ip, p)) => (ip, p.parse().ok()),
            None => (*addr, Some(32)),
        };
        let (Ok(ip), Some(prefix)) = (ip.parse::<Ipv4Addr>(), prefix.filter(|p| *p <= 32)) else {
            continue;
        };
        if !out.iter().any(|(n, _, _)| n == ifname) {
            out.push((ifname.to_string(), ip, prefix));
        }
    }
    out
}

/// The netmask of a prefix length (`24` → `255.255.255.0`).
pub fn netmask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    Ipv4Addr::from(bits)
}

/// A link speed in Mb/s the way `lshw` printed it (`1000` → `1Gbit/s`,
/// `2500` → `2500Mbit/s`, `100` → `100Mbit/s`).
pub fn lshw_speed(mbps: u64) -> String {
    const PREFIXES: &[u8] = b"KMGTPEZY";
    let mut v = mbps.saturating_mul(1_000_000);
    let mut i = 0;
    while i <= PREFIXES.len() && (v > 10_000 || (v % 1000 == 0 && v > 0)) {
        v /= 1000;
        i += 1;
    }
    match i {
        0 => format!("{v}bit/s"),
        _ => format!(
            "{v}{}bit/s",
            PREFIXES[(i - 1).min(PREFIXES.len() - 1)] as char
        ),
    }
}

/// `Auto-negotiation: on|off` from the output of `ethtool IFACE`.
pub fn parse_autoneg(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let v = l.trim().strip_prefix("Auto-negotiation:")?.trim();
        Some(v.to_string()).filter(|v| !v.is_empty())
    })
}

/// The lines of `ethtool -k IFACE` (offload features) or `ethtool -a IFACE`
/// (pause parameters) as `('network', iface, feature, value)`, a
/// tab-indented sub-feature named `parent/child`, like `hardware-detect`.
pub fn parse_ethtool(iface: &str, output: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut parent = String::new();
    for l in output.lines() {
        // The heading names the interface ("Features for eth0:").
        if l.contains(iface) {
            continue;
        }
        let mut parts = l.split(':');
        let head = parts.next().unwrap_or("");
        let key = if l.starts_with('\t') {
            format!("{parent}/{}", head.replace('\t', "").trim())
        } else {
            parent = head.to_string();
            head.replace('\t', "").trim().to_string()
        };
        let value: String = parts
            .collect::<String>()
            .replace('\t', "")
            .trim()
            .to_string();
        if value.is_empty() || key.is_empty() {
            continue;
        }
        lines.push(line("network", iface, &key, value));
    }
    lines
}

/// Vendor and device names from a `pci.ids` database, when one is in the
/// tree (`lshw` printed names, and specs written for eDeploy used them).
#[derive(Debug, Default)]
pub struct PciIds {
    text: Option<String>,
}

impl PciIds {
    /// Loads the first `pci.ids` found under `root`.
    pub fn load(root: &Path) -> PciIds {
        let text = [
            "usr/share/misc/pci.ids",
            "usr/share/hwdata/pci.ids",
            "usr/share/pci.ids",
        ]
        .iter()
        .find_map(|p| std::fs::read(root.join(p)).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
        PciIds { text }
    }

    /// From a PCI database's text (for tests).
    pub fn from_text(text: &str) -> PciIds {
        PciIds {
            text: Some(text.to_string()),
        }
    }

    /// The names of vendor `vendor` and of its device `device` (hexadecimal,
    /// with or without `0x`).
    pub fn names(&self, vendor: &str, device: &str) -> (Option<String>, Option<String>) {
        let Some(text) = &self.text else {
            return (None, None);
        };
        let norm = |s: &str| s.trim_start_matches("0x").to_ascii_lowercase();
        let (vendor, device) = (norm(vendor), norm(device));
        let mut vname = None;
        for l in text.lines() {
            if l.starts_with('#') || l.trim().is_empty() {
                continue;
            }
            if vname.is_none() {
                if let Some((id, name)) = l.split_once("  ") {
                    if !l.starts_with('\t') && id == vendor {
                        vname = Some(name.trim().to_string());
                    }
                }
                continue;
            }
            if !l.starts_with('\t') {
                // The next vendor: the device is not listed.
                break;
            }
            if l.starts_with("\t\t") {
                continue;
            }
            if let Some((id, name)) = l.trim_start_matches('\t').split_once("  ") {
                if id == device {
                    return (vname, Some(name.trim().to_string()));
                }
            }
        }
        (vname, None)
    }
}

/// Network lines for every physical interface, in natural name order:
/// `serial` (MAC), `vendor`, `product`, `businfo`, `size` (bit/s),
/// `ipv4`, `ipv4-netmask`, `ipv4-cidr`, `ipv4-network`, `link` (`yes`/`no`),
/// `driver`, `duplex`, `speed`, `autonegotiation`, then the `ethtool -a`
/// and `-k` lines.
pub fn network(root: &Path, exec: &dyn Exec) -> Vec<Line> {
    let net = root.join("sys/class/net");
    let ifaces: Vec<String> = dir_names(&net)
        .into_iter()
        .filter(|n| n != "lo" && net.join(n).join("device").exists())
        .collect();
    if ifaces.is_empty() {
        return Vec::new();
    }
    let addrs: HashMap<String, (Ipv4Addr, u8)> = run_ok(exec, &["ip", "-o", "-4", "addr", "show"])
        .map(|o| {
            parse_ip_addr(&o)
                .into_iter()
                .map(|(n, ip, p)| (n, (ip, p)))
                .collect()
        })
        .unwrap_or_default();
    let pci = PciIds::load(root);
    let mut ethtool_missing = false;
    let mut lines = Vec::new();
    for name in &ifaces {
        let dir = net.join(name);
        let dev = dir.join("device");
        let mut push = |key: &str, v: String| lines.push(line("network", name, key, v));
        if let Some(mac) = read_value(&dir.join("address")) {
            push("serial", mac.to_lowercase());
        }
        let subsystem = link_name(&dev.join("subsystem"));
        if let (Some(v), Some(d)) = (
            read_value(&dev.join("vendor")),
            read_value(&dev.join("device")),
        ) {
            let (vn, dn) = if subsystem.as_deref() == Some("pci") {
                pci.names(&v, &d)
            } else {
                (None, None)
            };
            push("vendor", vn.unwrap_or(v));
            push("product", dn.unwrap_or(d));
        }
        if let (Some(sub), Some(bus)) = (subsystem.as_deref(), link_name(&dev)) {
            let id = match sub {
                "virtio" => bus.strip_prefix("virtio").unwrap_or(&bus).to_string(),
                _ => bus.clone(),
            };
            push("businfo", format!("{sub}@{id}"));
        }
        let carrier = read_value(&dir.join("carrier"));
        let up = match carrier.as_deref() {
            Some(c) => c == "1",
            None => read_value(&dir.join("operstate")).as_deref() == Some("up"),
        };
        let mbps = read_value(&dir.join("speed"))
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|s| *s > 0 && up)
            .map(|s| s as u64);
        if let Some(m) = mbps {
            push("size", (m * 1_000_000).to_string());
        }
        if let Some((ip, prefix)) = addrs.get(name.as_str()) {
            let mask = netmask(*prefix);
            push("ipv4", ip.to_string());
            push("ipv4-netmask", mask.to_string());
            push("ipv4-cidr", prefix.to_string());
            push(
                "ipv4-network",
                Ipv4Addr::from(u32::from(*ip) & u32::from(mask)).to_string(),
            );
        }
        push("link", if up { "yes" } else { "no" }.to_string());
        if let Some(d) = link_name(&dev.join("driver")) {
            push("driver", d);
        }
        if let Some(d) = read_value(&dir.join("duplex")).filter(|d| d == "full" || d == "half") {
            push("duplex", d);
        }
        if let Some(m) = mbps {
            push("speed", lshw_speed(m));
        }
        if ethtool_missing {
            continue;
        }
        match super::run(exec, &["ethtool", name]) {
            None => ethtool_missing = true,
            Some(out) => {
                if let Some(a) = parse_autoneg(&out.stdout) {
                    push("autonegotiation", a);
                }
                for opt in ["-a", "-k"] {
                    if let Some(out) = run_ok(exec, &["ethtool", opt, name]) {
                        lines.extend(parse_ethtool(name, &out));
                    }
                }
            }
        }
    }
    lines
}
