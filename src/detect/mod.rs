//! Hardware detection on the node: what `edeploy-detect` prints and the
//! installer uploads.
//!
//! Every reader takes the root directory of the tree to read
//! (`root.join("sys/class/net")`, `root.join("proc/cpuinfo")`, …), so the
//! same code reads a live system (`/`) or a small tree built by a test.
//! Every external program (`dmidecode`, `ipmitool`, `ethtool`, `ip`,
//! `lscpu`, `timedatectl`, `hpacucli`/`ssacli`, `megacli`) runs through the [`Exec`] seam; a program
//! that is not installed, or that fails, contributes nothing.
//!
//! The names of the lines are those of the original eDeploy (which existing
//! `.specs` files match on), completed with those of the `hardware-detect`
//! tool where eDeploy had none. `docs/detection.md` lists them all.

pub mod auxv;
pub mod cpu;
pub mod disk;
pub mod dmi;
pub mod hpacucli;
pub mod infiniband;
pub mod ipmi;
pub mod megacli;
pub mod memory;
pub mod network;
pub mod system;
pub mod topology;

use std::cmp::Ordering;
use std::path::Path;

use anyhow::bail;

use crate::exec::{CmdLine, CmdOutput, Exec};
use crate::hw::Line;

/// What to detect beyond the hardware itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectOptions {
    /// Report `('system','ipmi-fake','channel','0')` when no IPMI channel
    /// answers, for test VMs whose specs ask for an IPMI controller.
    pub ipmi_fake: bool,
    /// Load the IPMI kernel modules (`modprobe ipmi_si ipmi_devintf`) before
    /// looking for a BMC: udev loads `ipmi_si` from the firmware tables but
    /// nothing loads the character device driver `ipmitool` needs.
    pub load_modules: bool,
}

/// The whole hardware list, families in a fixed order: system, firmware,
/// memory, cpu, numa, disk (block devices, then RAID controllers' disks),
/// network, infiniband, hw (the auxiliary vector).
pub fn detect(root: &Path, exec: &dyn Exec, opts: &DetectOptions) -> Vec<Line> {
    let mut lines = system::system(root, exec, opts);
    lines.extend(system::firmware(root, exec));
    lines.extend(system::boot_mode(root));
    lines.extend(memory::memory(root, exec));
    let lscpu = topology::Lscpu::run(exec);
    lines.extend(cpu::cpu_with(root, exec, lscpu.as_ref()));
    lines.extend(topology::numa(root, lscpu.as_ref()));
    lines.extend(disk::disks(root));
    lines.extend(hpacucli::detect(exec));
    lines.extend(megacli::detect(exec));
    lines.extend(network::network(root, exec));
    lines.extend(infiniband::infiniband(root));
    lines.extend(auxv::auxv(exec));
    lines
}

/// An [`Exec`] that runs nothing, as if no tool were installed: detection
/// then reads only the files under its root.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCommands;

impl Exec for NoCommands {
    fn output(&self, cmd: &CmdLine, _stdin: Option<&[u8]>) -> anyhow::Result<CmdOutput> {
        bail!("{}: cannot start: commands are disabled", cmd.display())
    }
}

/// Builds one hardware line.
pub(crate) fn line(class: &str, name: &str, key: &str, value: impl Into<String>) -> Line {
    [class.into(), name.into(), key.into(), value.into()]
}

/// A sysfs/procfs attribute: the whole file, trimmed of whitespace and of
/// the NUL padding some firmware strings carry. `Some("")` when the file
/// exists but is empty (an empty DMI string is still information), `None`
/// when it is missing or unreadable (some attributes are root-only, some
/// fail with EINVAL while a link is down).
pub(crate) fn read_attr(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    Some(
        text.trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .to_string(),
    )
}

/// Like [`read_attr`], empty values being absent.
pub(crate) fn read_value(path: &Path) -> Option<String> {
    read_attr(path).filter(|v| !v.is_empty())
}

/// The last component of a symlink's target (`device/driver` →
/// `virtio_net`), without resolving it, so that relative links inside a
/// test tree work as well as the kernel's.
pub(crate) fn link_name(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    target.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The entries of a directory, by name, sorted with [`natural_cmp`];
/// empty when it cannot be read.
pub(crate) fn dir_names(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(path) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort_by(|a, b| natural_cmp(a, b));
    names
}

/// Runs a command; `None` when it cannot be started (not installed), its
/// output whatever the exit status otherwise.
pub(crate) fn run(exec: &dyn Exec, args: &[&str]) -> Option<CmdOutput> {
    exec.output(&CmdLine::argv(args.iter().copied()), None).ok()
}

/// Runs a command and returns its standard output when it exits 0.
pub(crate) fn run_ok(exec: &dyn Exec, args: &[&str]) -> Option<String> {
    run(exec, args).filter(|o| o.success()).map(|o| o.stdout)
}

/// Orders names the way people number devices: digit runs compare as
/// numbers (`eth2` < `eth10`, `nvme2n1` < `nvme10n1`), the rest as text.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        match (x.is_empty(), y.is_empty()) {
            (true, true) => return a.cmp(b),
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let (cx, rx) = split_chunk(x);
        let (cy, ry) = split_chunk(y);
        let digits = |s: &str| s.starts_with(|c: char| c.is_ascii_digit());
        let ord = if digits(cx) && digits(cy) {
            let (tx, ty) = (cx.trim_start_matches('0'), cy.trim_start_matches('0'));
            tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty))
        } else {
            cx.cmp(cy)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        x = rx;
        y = ry;
    }
}

/// Splits off the leading run of digits, or of non-digits.
fn split_chunk(s: &str) -> (&str, &str) {
    let digit = s.starts_with(|c: char| c.is_ascii_digit());
    let end = s
        .find(|c: char| c.is_ascii_digit() != digit)
        .unwrap_or(s.len());
    s.split_at(end)
}

/// A size as printed by the vendor tools (`300 GB`, `1.2 TB`, `278.875 GB`)
/// as a number of decimal gigabytes without the unit, like eDeploy:
/// terabytes are multiplied by 1000 and truncated, other text is kept.
pub fn size_in_gb(size: &str) -> String {
    let s: String = size.chars().filter(|c| *c != ' ').collect();
    if let Some(n) = s.strip_suffix("GB") {
        return n.to_string();
    }
    if let Some(n) = s.strip_suffix("TB") {
        if let Ok(v) = n.parse::<f64>() {
            return format!("{}", (v * 1000.0) as u64);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["eth10", "eth2", "eth1", "eno1", "nvme10n1", "nvme2n1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["eno1", "eth1", "eth2", "eth10", "nvme2n1", "nvme10n1"]);
        assert_eq!(natural_cmp("a01", "a1"), Ordering::Less);
    }

    #[test]
    fn sizes_in_gb() {
        assert_eq!(size_in_gb("300 GB"), "300");
        assert_eq!(size_in_gb("1.2 TB"), "1200");
        assert_eq!(size_in_gb("93.1 GB"), "93.1");
        assert_eq!(size_in_gb("512 MB"), "512MB");
    }
}
