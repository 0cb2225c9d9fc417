//! InfiniBand adapters from `sys/class/infiniband`, with the names and
//! value formats eDeploy took from `ibstat` (so `ibstat` is not needed):
//! `('infiniband','card0', card_type|device_type|fw_version|hw_version|
//! nb_ports|sys_guid|node_guid, …)` and per port
//! `('infiniband','card0_port1', state|physical_state|rate|base_lid|lmc|
//! sm_lid|port_guid, …)`.
//!
//! Adapters whose ports all run Ethernet (RoCE) are not InfiniBand cards
//! and are left out.

use std::path::Path;

use super::{dir_names, line, read_value};
use crate::hw::Line;

/// `0002:c903:0010:f5c0` → `0x0002c9030010f5c0`, as `ibstat` prints GUIDs.
fn guid(sysfs: &str) -> String {
    format!("0x{}", sysfs.replace(':', "").to_lowercase())
}

/// `0x3` → `3`.
fn hex_to_dec(v: &str) -> Option<String> {
    let h = v.trim().strip_prefix("0x").unwrap_or(v.trim());
    u64::from_str_radix(h, 16).ok().map(|n| n.to_string())
}

/// The logical port state as `ibstat` names it (`4: ACTIVE` → `Active`).
fn port_state(v: &str) -> String {
    let code = v.split(':').next().unwrap_or("").trim();
    match code {
        "1" => "Down".into(),
        "2" => "Initializing".into(),
        "3" => "Armed".into(),
        "4" => "Active".into(),
        _ => v.split_once(':').map_or(v, |(_, t)| t).trim().to_string(),
    }
}

/// InfiniBand lines for the adapters under `root`.
pub fn infiniband(root: &Path) -> Vec<Line> {
    let class = root.join("sys/class/infiniband");
    let mut lines = Vec::new();
    let mut card = 0;
    for dev in dir_names(&class) {
        let dir = class.join(&dev);
        let ports = dir_names(&dir.join("ports"));
        let is_ib = ports.iter().any(|p| {
            read_value(&dir.join("ports").join(p).join("link_layer"))
                .is_none_or(|l| l == "InfiniBand")
        });
        if ports.is_empty() || !is_ib {
            continue;
        }
        let name = format!("card{card}");
        card += 1;
        let attr = |f: &str| read_value(&dir.join(f));
        let mut push = |key: &str, v: Option<String>| {
            if let Some(v) = v {
                lines.push(line("infiniband", &name, key, v));
            }
        };
        push("card_type", Some(dev.clone()));
        push("device_type", attr("hca_type"));
        push("fw_version", attr("fw_ver"));
        push("hw_version", attr("hw_rev"));
        push("nb_ports", Some(ports.len().to_string()));
        push("sys_guid", attr("sys_image_guid").map(|g| guid(&g)));
        push("node_guid", attr("node_guid").map(|g| guid(&g)));
        for p in &ports {
            let pdir = dir.join("ports").join(p);
            let pattr = |f: &str| read_value(&pdir.join(f));
            let pname = format!("{name}_port{p}");
            let mut push = |key: &str, v: Option<String>| {
                if let Some(v) = v {
                    lines.push(line("infiniband", &pname, key, v));
                }
            };
            push("state", pattr("state").map(|s| port_state(&s)));
            push(
                "physical_state",
                pattr("phys_state").map(|s| {
                    s.split_once(':')
                        .map_or(s.as_str(), |(_, t)| t)
                        .trim()
                        .to_string()
                }),
            );
            // "40 Gb/sec (4X QDR)" → "40"
            push(
                "rate",
                pattr("rate").and_then(|r| r.split_whitespace().next().map(str::to_string)),
            );
            push("base_lid", pattr("lid").and_then(|l| hex_to_dec(&l)));
            push("lmc", pattr("lid_mask_count"));
            push("sm_lid", pattr("sm_lid").and_then(|l| hex_to_dec(&l)));
            // The port GUID is the interface identifier of GID 0.
            push(
                "port_guid",
                pattr("gids/0").and_then(|g| {
                    let groups: Vec<&str> = g.split(':').collect();
                    (groups.len() == 8).then(|| guid(&groups[4..].join("")))
                }),
            );
        }
    }
    lines
}
