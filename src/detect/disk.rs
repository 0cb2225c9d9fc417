//! The `disk` family for block devices, from `sys/block` and
//! `dev/disk/by-id`.
//!
//! Like eDeploy, only disks count: `sd*`, `hd*`, `vd*`, `xvd*` and `nvme*`
//! (not loop, ram, zram, dm-, md, sr… devices), and only those of at least
//! one decimal gigabyte. Sizes are whole decimal gigabytes rounded down
//! (`sectors × 512 / 10⁹`), as specs compare them.

use std::cmp::Ordering;
use std::path::Path;

use super::{dir_names, line, link_name, natural_cmp, read_value};
use crate::hw::Line;

/// Whether a `sys/block` entry is a disk eDeploy reports.
pub fn is_disk(name: &str) -> bool {
    let letters_then_digits = |rest: &str| {
        let letters = rest.trim_end_matches(|c: char| c.is_ascii_digit());
        !letters.is_empty() && letters.chars().all(|c| c.is_ascii_lowercase())
    };
    if let Some(rest) = name.strip_prefix("nvme") {
        // nvme0n1, not the controller's character device nvme0 nor the
        // multipath-hidden paths nvme0c0n1.
        return rest.contains('n') && !rest.contains('c');
    }
    ["sd", "hd", "vd", "xvd"]
        .iter()
        .any(|p| name.strip_prefix(p).is_some_and(letters_then_digits))
}

/// The order of disks: by kind, then as the kernel numbers them
/// (`sdz` before `sdaa`, `nvme2n1` before `nvme10n1`).
pub fn disk_cmp(a: &str, b: &str) -> Ordering {
    natural_cmp(&sort_key(a), &sort_key(b)).then_with(|| a.cmp(b))
}

/// `sdaa` → `sd000027`: letters as the bijective base-26 number the kernel
/// counts with, so that a natural comparison orders them.
fn sort_key(name: &str) -> String {
    for p in ["xvd", "sd", "hd", "vd"] {
        if let Some(rest) = name.strip_prefix(p) {
            let letters: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            let tail = &rest[letters.len()..];
            let n = letters.bytes().fold(0u64, |n, c| {
                n.saturating_mul(26).saturating_add(u64::from(c - b'a' + 1))
            });
            return format!("{p}{n:06}{tail}");
        }
    }
    name.to_string()
}

/// Disk size in whole decimal gigabytes from a count of 512-byte sectors.
pub fn size_gb(sectors: u64) -> u64 {
    sectors.saturating_mul(512) / 1_000_000_000
}

/// `('disk','logical','count', N)` then, per disk in [`disk_cmp`] order:
/// `size`, `vendor`, `model`, `rev`, `optimal_io_size`,
/// `physical_block_size`, `rotational`, `nr_requests`, `scheduler`,
/// `Write Cache Enable` and `Read Cache Disable` (SCSI disks), and one
/// `id` per `dev/disk/by-id` link to the disk.
pub fn disks(root: &Path) -> Vec<Line> {
    let block = root.join("sys/block");
    let mut names: Vec<(String, u64)> = dir_names(&block)
        .into_iter()
        .filter(|n| is_disk(n))
        .filter_map(|n| {
            let sectors: u64 = read_value(&block.join(&n).join("size"))?.parse().ok()?;
            Some((n, size_gb(sectors)))
        })
        .filter(|(_, gb)| *gb > 0)
        .collect();
    names.sort_by(|a, b| disk_cmp(&a.0, &b.0));
    let by_id = by_id_links(root);
    let mut lines = vec![line("disk", "logical", "count", names.len().to_string())];
    for (name, gb) in &names {
        let dir = block.join(name);
        let mut push = |key: &str, v: String| lines.push(line("disk", name, key, v));
        push("size", gb.to_string());
        for (key, files) in [
            ("vendor", &["device/vendor"][..]),
            ("model", &["device/model"][..]),
            // NVMe controllers call it firmware_rev.
            (
                "rev",
                &["device/rev", "device/revision", "device/firmware_rev"][..],
            ),
            ("optimal_io_size", &["queue/optimal_io_size"][..]),
            ("physical_block_size", &["queue/physical_block_size"][..]),
            ("rotational", &["queue/rotational"][..]),
            ("nr_requests", &["queue/nr_requests"][..]),
        ] {
            if let Some(v) = files.iter().find_map(|f| read_value(&dir.join(f))) {
                push(key, v);
            }
        }
        if let Some(s) = read_value(&dir.join("queue/scheduler")).and_then(|s| active_scheduler(&s))
        {
            push("scheduler", s);
        }
        if let Some((wce, rcd)) = cache_flags(&dir) {
            push("Write Cache Enable", wce.into());
            push("Read Cache Disable", rcd.into());
        }
        for (link, target) in &by_id {
            if target == name {
                push("id", link.clone());
            }
        }
    }
    lines
}

/// The scheduler in brackets (`none [mq-deadline] kyber` → `mq-deadline`).
fn active_scheduler(s: &str) -> Option<String> {
    let start = s.find('[')?;
    let end = s[start..].find(']')? + start;
    Some(s[start + 1..end].to_string()).filter(|s| !s.is_empty())
}

/// The SCSI write-cache-enable and read-cache-disable bits from
/// `device/scsi_disk/*/cache_type`, as `'1'`/`'0'`.
fn cache_flags(dir: &Path) -> Option<(&'static str, &'static str)> {
    let sd = dir.join("device/scsi_disk");
    let entry = dir_names(&sd).into_iter().next()?;
    let t = read_value(&sd.join(entry).join("cache_type"))?;
    Some(match t.as_str() {
        "write through" => ("0", "0"),
        "none" => ("0", "1"),
        t if t.contains("daft") => ("1", "1"),
        _ => ("1", "0"),
    })
}

/// `(link name, device name)` for every `dev/disk/by-id` symlink, sorted by
/// link name.
fn by_id_links(root: &Path) -> Vec<(String, String)> {
    let dir = root.join("dev/disk/by-id");
    let mut links: Vec<(String, String)> = dir_names(&dir)
        .into_iter()
        .filter_map(|n| {
            let target = link_name(&dir.join(&n))?;
            Some((n, target))
        })
        .collect();
    links.sort();
    links
}
