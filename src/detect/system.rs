//! The `system` family (product, motherboard, kernel, OS, IPMI) and the
//! `firmware` family (BIOS strings, boot mode, Secure Boot), and the RTC
//! line of `hardware-detect`.
//!
//! DMI strings come from `sys/class/dmi/id`; when the kernel does not
//! export one (old kernels, some architectures) `dmidecode -s` is asked.

use std::path::Path;

use super::{ipmi, line, read_attr, read_value, run_ok, DetectOptions};
use crate::exec::Exec;
use crate::hw::Line;

/// Serial numbers some vendors (Tyan, Supermicro) burn into every board;
/// the system UUID replaces them so that nodes get distinct names.
const FAKE_SERIALS: [&str; 2] = ["0123456789", "0000000000"];

/// `system` lines: product, motherboard, kernel, os, rtc, then ipmi.
pub fn system(root: &Path, exec: &dyn Exec, opts: &DetectOptions) -> Vec<Line> {
    let mut lines = product(root, exec);
    lines.extend(motherboard(root, exec));
    lines.extend(kernel(root));
    lines.extend(os(root));
    lines.push(rtc(exec));
    lines.extend(ipmi::detect(root, exec, opts));
    lines
}

/// A DMI string: the sysfs attribute, or `dmidecode -s keyword` when the
/// kernel does not export it. Empty values are kept (see [`product`]).
fn dmi_string(root: &Path, exec: &dyn Exec, attr: &str, keyword: &str) -> Option<String> {
    let path = root.join("sys/class/dmi/id").join(attr);
    if path.exists() {
        return read_attr(&path);
    }
    let out = run_ok(exec, &["dmidecode", "-s", keyword])?;
    // dmidecode prints comments ("# No SMBIOS nor DMI entry point found")
    // on some failures, with a zero exit status.
    out.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
}

/// `('system','product', name|vendor|serial|version|uuid, …)`.
///
/// The name is followed by the SKU in parentheses when the firmware has a
/// SKU field (SMBIOS 2.4 and later), even an empty one
/// (`edeploy_test_vm ()`): that is how the `lshw` eDeploy used spelled it,
/// and existing specs match on it. The UUID is upper case, as `dmidecode`
/// prints it.
pub fn product(root: &Path, exec: &dyn Exec) -> Vec<Line> {
    let get = |attr, kw| dmi_string(root, exec, attr, kw);
    let mut lines = Vec::new();
    let name = get("product_name", "system-product-name").filter(|s| !s.is_empty());
    if let Some(name) = name {
        let sku = get("product_sku", "system-sku-number");
        let full = match sku {
            Some(sku) => format!("{name} ({sku})"),
            None => name,
        };
        lines.push(line("system", "product", "name", full));
    }
    if let Some(v) = get("sys_vendor", "system-manufacturer").filter(|s| !s.is_empty()) {
        lines.push(line("system", "product", "vendor", v));
    }
    let uuid = get("product_uuid", "system-uuid")
        .map(|u| u.to_ascii_uppercase())
        .filter(|u| !u.is_empty() && !u.starts_with("NOT "));
    let serial = get("product_serial", "system-serial-number")
        .filter(|s| !s.is_empty())
        .map(|s| match &uuid {
            Some(u) if FAKE_SERIALS.contains(&s.as_str()) => u.clone(),
            _ => s,
        });
    if let Some(s) = serial {
        lines.push(line("system", "product", "serial", s));
    }
    if let Some(v) = get("product_version", "system-version").filter(|s| !s.is_empty()) {
        lines.push(line("system", "product", "version", v));
    }
    if let Some(u) = uuid {
        lines.push(line("system", "product", "uuid", u));
    }
    lines
}

/// `('system','motherboard', name|vendor|version|serial, …)`.
pub fn motherboard(root: &Path, exec: &dyn Exec) -> Vec<Line> {
    [
        ("name", "board_name", "baseboard-product-name"),
        ("vendor", "board_vendor", "baseboard-manufacturer"),
        ("version", "board_version", "baseboard-version"),
        ("serial", "board_serial", "baseboard-serial-number"),
    ]
    .iter()
    .filter_map(|(key, attr, kw)| {
        dmi_string(root, exec, attr, kw)
            .filter(|v| !v.is_empty())
            .map(|v| line("system", "motherboard", key, v))
    })
    .collect()
}

/// `('firmware','bios', version|date|vendor, …)`.
pub fn firmware(root: &Path, exec: &dyn Exec) -> Vec<Line> {
    [
        ("version", "bios_version", "bios-version"),
        ("date", "bios_date", "bios-release-date"),
        ("vendor", "bios_vendor", "bios-vendor"),
    ]
    .iter()
    .filter_map(|(key, attr, kw)| {
        dmi_string(root, exec, attr, kw)
            .filter(|v| !v.is_empty())
            .map(|v| line("firmware", "bios", key, v))
    })
    .collect()
}

/// The EFI global-variable GUID, the vendor part of `SecureBoot`'s name.
pub const EFI_GLOBAL_GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// `('firmware','boot','mode', 'uefi'|'bios')`, then on UEFI
/// `('firmware','secureboot','state', 'enabled'|'disabled')`.
///
/// The node booted UEFI when the kernel exports `sys/firmware/efi`.
/// Secure Boot is the last byte of the efivarfs file of the `SecureBoot`
/// variable (4 bytes of attributes, then the one-byte value): 1 is
/// enabled. A firmware without the variable (OVMF built without Secure
/// Boot), a file that cannot be read (efivarfs not mounted) or one too
/// short to hold a value is `disabled`.
pub fn boot_mode(root: &Path) -> Vec<Line> {
    let efi = root.join("sys/firmware/efi");
    if !efi.exists() {
        return vec![line("firmware", "boot", "mode", "bios")];
    }
    let var = efi
        .join("efivars")
        .join(format!("SecureBoot-{EFI_GLOBAL_GUID}"));
    let enabled = std::fs::read(var)
        .ok()
        .filter(|b| b.len() > 4)
        .and_then(|b| b.last().copied())
        == Some(1);
    vec![
        line("firmware", "boot", "mode", "uefi"),
        line(
            "firmware",
            "secureboot",
            "state",
            if enabled { "enabled" } else { "disabled" },
        ),
    ]
}

/// `('system','kernel', version|arch|cmdline, …)`.
///
/// The architecture is the kernel's (`proc/sys/kernel/arch`), else the one
/// this program was built for; eDeploy's `uname -i` printed `unknown` on
/// Debian-based systems, which no spec can use.
pub fn kernel(root: &Path) -> Vec<Line> {
    let mut lines = Vec::new();
    if let Some(v) = read_value(&root.join("proc/sys/kernel/osrelease")) {
        lines.push(line("system", "kernel", "version", v));
    }
    let arch = read_value(&root.join("proc/sys/kernel/arch"))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    lines.push(line("system", "kernel", "arch", arch));
    if let Some(v) = read_attr(&root.join("proc/cmdline")) {
        lines.push(line("system", "kernel", "cmdline", v));
    }
    lines
}

/// `('system','rtc','utc', value)` as `hardware-detect` reports it: the
/// answer of `timedatectl status --no-pager` to `RTC in local TZ` (`no`
/// when the RTC keeps UTC, `yes` when it keeps local time), or `unknown`
/// when `timedatectl` cannot answer (not installed, no systemd).
pub fn rtc(exec: &dyn Exec) -> Line {
    let value = run_ok(exec, &["timedatectl", "status", "--no-pager"])
        .and_then(|out| rtc_in_local_tz(&out))
        .unwrap_or_else(|| "unknown".to_string());
    line("system", "rtc", "utc", value)
}

/// The lower-case word after `RTC in local TZ: ` when it ends the output
/// of `timedatectl status`. As in `hardware-detect`, only at the very
/// end: when the RTC keeps local time, `timedatectl` follows the line
/// with a warning, and the answer is then unknown.
pub fn rtc_in_local_tz(out: &str) -> Option<String> {
    let text = out.strip_suffix('\n').unwrap_or(out);
    let (_, after) = text.rsplit_once("RTC in local TZ: ")?;
    (!after.is_empty() && after.bytes().all(|b| b.is_ascii_lowercase())).then(|| after.to_string())
}

/// `('system','os', vendor|version, …)`, as `lsb_release -is` / `-ds`
/// would print them, from `etc/lsb-release`, `etc/os-release` and
/// `etc/redhat-release` (no `lsb_release` needed in the initrd).
///
/// The vendor is `DISTRIB_ID`, else `NAME`, else the `redhat-release`
/// text before ` release `, shortened like `lsb_release` does (`Debian`,
/// `RedHatEnterpriseServer`, `CentOS`). The version
/// is `DISTRIB_DESCRIPTION`, else the `redhat-release` line, else
/// `PRETTY_NAME`.
pub fn os(root: &Path) -> Vec<Line> {
    let lsb = read_kv(&root.join("etc/lsb-release"));
    let osr =
        read_kv(&root.join("etc/os-release")).or_else(|| read_kv(&root.join("usr/lib/os-release")));
    let rh = read_value(&root.join("etc/redhat-release"))
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()));
    let find = |kv: &Option<Vec<(String, String)>>, key: &str| -> Option<String> {
        kv.as_ref()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let vendor = find(&lsb, "DISTRIB_ID")
        .or_else(|| find(&osr, "NAME").map(|n| distributor(&n)))
        .or_else(|| {
            rh.as_ref()
                .and_then(|r| r.split(" release ").next())
                .map(distributor)
        });
    let version = find(&lsb, "DISTRIB_DESCRIPTION")
        .or_else(|| rh.clone())
        .or_else(|| find(&osr, "PRETTY_NAME"));
    let mut lines = Vec::new();
    if let Some(v) = vendor.filter(|v| !v.is_empty()) {
        lines.push(line("system", "os", "vendor", v));
    }
    if let Some(v) = version {
        lines.push(line("system", "os", "version", v));
    }
    lines
}

/// A distribution's name as `lsb_release -is` shortens it: the words
/// `Linux` and `GNU/Linux` dropped, the rest joined
/// (`Red Hat Enterprise Linux Server` → `RedHatEnterpriseServer`).
fn distributor(name: &str) -> String {
    name.split_whitespace()
        .filter(|w| *w != "Linux" && *w != "GNU/Linux")
        .collect()
}

/// A shell-style `KEY=value` file (os-release, lsb-release), quotes removed.
fn read_kv(path: &Path) -> Option<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let l = l.trim();
                if l.starts_with('#') {
                    return None;
                }
                let (k, v) = l.split_once('=')?;
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .unwrap_or(v);
                Some((k.trim().to_string(), v.replace("\\\"", "\"")))
            })
            .collect(),
    )
}
