//! Bringing the node up: virtual filesystems, drivers, network.
//!
//! Everything runs through the [`Exec`] seam (`mount`, `modprobe`, `ip`,
//! busybox `udhcpc`), and every path is under the root the installer works
//! in, so a test drives the same code against a fake sysfs.

use super::cmdline::{IpConfig, IpMode};
use super::console::Console;
use super::Tuning;
use crate::detect::natural_cmp;
use crate::exec::{CmdLine, Exec};
use anyhow::{bail, Result};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

/// `(type, source, mount point under the root)` of the virtual
/// filesystems the installer and the tools it runs need.
pub const VIRTUAL_FS: [(&str, &str, &str); 4] = [
    ("proc", "proc", "proc"),
    ("sysfs", "sysfs", "sys"),
    ("devtmpfs", "devtmpfs", "dev"),
    ("tmpfs", "tmpfs", "run"),
];

/// Mounts proc, sys, dev and run. A failed mount is a warning: when the
/// installer runs again from a shell they are already there, and detection
/// tells soon enough if one is really missing.
pub fn mount_virtual(root: &Path, exec: &dyn Exec, console: &Console) {
    for (fstype, source, dir) in VIRTUAL_FS {
        let target = root.join(dir);
        if let Err(e) = std::fs::create_dir_all(&target) {
            console.warn(&format!("cannot create {}: {e}", target.display()));
        }
        let cmd = CmdLine::argv([
            "mount".to_string(),
            "-t".into(),
            fstype.into(),
            source.into(),
            target.display().to_string(),
        ]);
        if let Err(e) = exec.run(&cmd) {
            console.warn(&format!("{e:#}"));
        }
    }
    mount_efivarfs(root, exec, console);
}

/// Where the kernel shows UEFI variables, under the root.
pub const EFIVARS: &str = "sys/firmware/efi/efivars";

/// On a node booted by UEFI firmware (`sys/firmware/efi` exists):
/// `modprobe efivarfs` (its failure is traced only: the filesystem is
/// often built in) and `mount -t efivarfs efivarfs /sys/firmware/efi/efivars`,
/// which detection reads Secure Boot from and `efibootmgr` writes through.
/// A failed mount is a warning, like the other virtual filesystems.
pub fn mount_efivarfs(root: &Path, exec: &dyn Exec, console: &Console) {
    if !root.join("sys/firmware/efi").exists() {
        return;
    }
    if let Err(e) = exec.run(&CmdLine::argv(["modprobe", "efivarfs"])) {
        console.trace(&format!("{e:#}"));
    }
    let target = root.join(EFIVARS);
    let cmd = CmdLine::argv([
        "mount".to_string(),
        "-t".into(),
        "efivarfs".into(),
        "efivarfs".into(),
        target.display().to_string(),
    ]);
    if let Err(e) = exec.run(&cmd) {
        console.warn(&format!("{e:#}"));
    }
}

/// Every `modalias` under `root/sys/devices`, sorted, each once. Symlinks
/// are not followed: sysfs is full of links back up the tree.
pub fn modaliases(root: &Path) -> Vec<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root.join("sys/devices")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() && entry.file_name() == "modalias" {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    let alias = text.trim();
                    if !alias.is_empty() {
                        found.insert(alias.to_string());
                    }
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Loads the drivers of the present devices with
/// `modprobe -abq ALIAS…` (`-a` all, `-b` honour blacklists, `-q` quiet
/// about aliases no module claims), in rounds: a bus driver (virtio_pci,
/// a SAS HBA) brings up devices of its own, with modaliases that were not
/// there before. A round runs for the new aliases only, until none
/// appear (at most [`DRIVER_ROUNDS`] rounds). Returns how many aliases
/// were given in all.
pub fn load_drivers(root: &Path, exec: &dyn Exec, console: &Console) -> usize {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for _ in 0..DRIVER_ROUNDS {
        let new: Vec<String> = modaliases(root)
            .into_iter()
            .filter(|a| !seen.contains(a))
            .collect();
        if new.is_empty() {
            break;
        }
        let mut argv = vec!["modprobe".to_string(), "-abq".into()];
        argv.extend(new.iter().cloned());
        // modprobe exits non-zero when one module of many fails to load;
        // the others are loaded, and detection shows what is missing.
        if let Err(e) = exec.run(&CmdLine::Argv(argv)) {
            console.warn(&format!("{e:#}"));
        }
        seen.extend(new);
    }
    if seen.is_empty() {
        console.warn("no device reports a modalias: no driver loaded");
    }
    seen.len()
}

/// The filesystems loaded once the drivers are: busybox `mount` without
/// `-t` tries only those the kernel already knows (`/proc/filesystems`),
/// so a configure script's `mount /dev/sda1 /chroot` needs them loaded.
pub const FILESYSTEMS: [&str; 3] = ["ext4", "xfs", "vfat"];

/// Loads [`FILESYSTEMS`] with one `modprobe -aq`. One that the initrd
/// lacks (or that is built into the kernel) is no failure: it is traced.
pub fn load_filesystems(exec: &dyn Exec, console: &Console) {
    let mut argv = vec!["modprobe".to_string(), "-aq".into()];
    argv.extend(FILESYSTEMS.iter().map(|f| f.to_string()));
    if let Err(e) = exec.run(&CmdLine::Argv(argv)) {
        console.trace(&format!("{e:#}"));
    }
}

/// How many rounds of driver loading at most (PCI → virtio → …).
pub const DRIVER_ROUNDS: usize = 4;

/// The physical interfaces (those with a `device` link), natural order.
pub fn physical_interfaces(root: &Path) -> Vec<String> {
    let net = root.join("sys/class/net");
    let mut names: Vec<String> = std::fs::read_dir(&net)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lo" && net.join(n).join("device").exists())
                .collect()
        })
        .unwrap_or_default();
    names.sort_by(|a, b| natural_cmp(a, b));
    names
}

fn has_carrier(root: &Path, iface: &str) -> bool {
    std::fs::read_to_string(root.join("sys/class/net").join(iface).join("carrier"))
        .map(|c| c.trim() == "1")
        .unwrap_or(false)
}

fn ip_link_up(exec: &dyn Exec, iface: &str) -> Result<()> {
    exec.run(&CmdLine::argv(["ip", "link", "set", iface, "up"]))?;
    Ok(())
}

/// One DHCP lease with busybox `udhcpc`: `-n` exit when no lease, `-q`
/// exit once configured, `-t` discover packets, `-T` seconds between them;
/// the whole command is tried up to `tuning.dhcp_attempts` times.
fn dhcp(exec: &dyn Exec, iface: &str, tuning: &Tuning) -> Result<()> {
    let cmd = CmdLine::argv([
        "udhcpc".to_string(),
        "-i".into(),
        iface.into(),
        "-n".into(),
        "-q".into(),
        "-t".into(),
        tuning.dhcp_discover.to_string(),
        "-T".into(),
        tuning.dhcp_pause.to_string(),
    ]);
    let mut last = None;
    for _ in 0..tuning.dhcp_attempts.max(1) {
        match exec.run(&cmd) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e.context(format!(
            "{iface}: no DHCP lease after {} attempts",
            tuning.dhcp_attempts.max(1)
        ))),
        None => bail!("{iface}: no DHCP lease"),
    }
}

/// Brings interfaces up per `IP`. Named interfaces get their mode whatever
/// their link; with `all:dhcp` every other physical interface whose
/// carrier comes up within `tuning.carrier_wait` gets DHCP. All DHCP
/// clients run in parallel. Fails when no interface could be configured
/// while some were meant to be (the server cannot be reached then).
pub fn network(
    root: &Path,
    exec: &dyn Exec,
    console: &Console,
    ip: &IpConfig,
    tuning: &Tuning,
) -> Result<Vec<String>> {
    let present = physical_interfaces(root);
    let mut plan: Vec<(String, IpMode)> = Vec::new();
    for (name, mode) in &ip.interfaces {
        if !present.contains(name) && *mode != IpMode::None {
            console.warn(&format!(
                "IP names {name}, which is not a network interface of this node"
            ));
        }
        plan.push((name.clone(), mode.clone()));
    }
    let mut upped: Vec<String> = Vec::new();
    let others: Vec<&String> = present
        .iter()
        .filter(|n| !ip.interfaces.iter().any(|(m, _)| m == *n))
        .collect();
    if ip.all == IpMode::Dhcp && !others.is_empty() {
        for n in &others {
            if let Err(e) = ip_link_up(exec, n) {
                console.warn(&format!("{e:#}"));
            }
            upped.push(n.to_string());
        }
        // Autonegotiation takes a few seconds after the link is set up.
        let start = Instant::now();
        while !others.iter().all(|n| has_carrier(root, n)) && start.elapsed() < tuning.carrier_wait
        {
            std::thread::sleep(tuning.poll);
        }
        for n in others {
            if has_carrier(root, n) {
                plan.push((n.clone(), IpMode::Dhcp));
            } else {
                console.say(&format!("{n}: no link, left down"));
            }
        }
    }
    let wanted = plan.iter().filter(|(_, m)| *m != IpMode::None).count();
    let mut configured = Vec::new();
    let mut failures = Vec::new();
    for (name, mode) in &plan {
        if let IpMode::Static(addr, prefix) = mode {
            let r = exec
                .run(&CmdLine::argv([
                    "ip".to_string(),
                    "addr".into(),
                    "add".into(),
                    format!("{addr}/{prefix}"),
                    "dev".into(),
                    name.clone(),
                ]))
                .and_then(|_| ip_link_up(exec, name));
            match r {
                Ok(()) => {
                    console.say(&format!("{name}: {addr}/{prefix}"));
                    configured.push(name.clone());
                }
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
    }
    let dhcp_ifaces: Vec<&String> = plan
        .iter()
        .filter(|(_, m)| *m == IpMode::Dhcp)
        .map(|(n, _)| n)
        .collect();
    if !dhcp_ifaces.is_empty() {
        console.say(&format!(
            "asking for DHCP leases on {}",
            dhcp_ifaces
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let results: Vec<(String, Result<()>)> = std::thread::scope(|s| {
        let handles: Vec<_> = dhcp_ifaces
            .iter()
            .map(|n| {
                let n = (*n).clone();
                let up = upped.contains(&n);
                s.spawn(move || {
                    let r = if up { Ok(()) } else { ip_link_up(exec, &n) };
                    (n.clone(), r.and_then(|_| dhcp(exec, &n, tuning)))
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for (n, r) in results {
        match r {
            Ok(()) => {
                console.say(&format!("{n}: DHCP lease obtained"));
                configured.push(n);
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    for f in &failures {
        console.warn(f);
    }
    if configured.is_empty() {
        if wanted == 0 && present.is_empty() {
            bail!("this node has no network interface");
        }
        if wanted == 0 {
            bail!(
                "no network interface was brought up (IP={}; links: {})",
                describe(ip),
                present
                    .iter()
                    .map(|n| format!("{n} {}", if has_carrier(root, n) { "up" } else { "down" }))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        bail!(
            "no network interface could be configured: {}",
            failures.join("; ")
        );
    }
    Ok(configured)
}

fn describe(ip: &IpConfig) -> String {
    let mut parts: Vec<String> = ip
        .interfaces
        .iter()
        .map(|(n, m)| format!("{n}:{m}"))
        .collect();
    parts.push(format!("all:{}", ip.all));
    parts.join(",")
}
