//! Installing the boot loader on a node its firmware booted UEFI.
//!
//! The configure script made an EFI system partition (ESP) on the disk
//! given to `set_role`; the installer finds it by its GPT type, mounts it
//! at `/boot/efi` in the tree (and adds it to the tree's `/etc/fstab`),
//! runs the tree's `grub-install` for x86_64-efi with Debian's signed shim,
//! lays the same files on the removable fallback path
//! `\EFI\BOOT\BOOTX64.EFI`, and leaves exactly one NVRAM entry labelled
//! [`LABEL`] for this disk. Every command goes through the [`Exec`] seam;
//! the files on the ESP are written with `std::fs`, never through a
//! symbolic link.

use super::cmdline::BootOrder;
use super::console::Console;
use super::install::Binds;
use crate::exec::{CmdLine, Exec};
use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// The GPT type of an EFI system partition (lower case).
pub const ESP_TYPE: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

/// The label of the installer's NVRAM entry.
pub const LABEL: &str = "eDeploy";

/// The path the firmware boots when no NVRAM entry works.
pub const FALLBACK: &str = r"\EFI\BOOT\BOOTX64.EFI";

/// Debian's signed shim in the tree: with it, the ESP boots shim first.
pub const SHIM_IN_TREE: &str = "usr/lib/shim/shimx64.efi.signed";

/// Where the ESP is mounted in the tree.
pub const ESP_MOUNT: &str = "boot/efi";

/// Whether the node was booted by UEFI firmware: `root/sys/firmware/efi`.
pub fn is_uefi(root: &Path) -> bool {
    root.join("sys/firmware/efi").exists()
}

/// A partition of a disk, as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Its block device's name (`vda1`, `nvme0n1p1`).
    pub name: String,
    /// Its number in the partition table (sysfs's `partition` file).
    pub number: u32,
}

impl Partition {
    pub fn dev(&self) -> String {
        format!("/dev/{}", self.name)
    }
}

/// The kernel's name of a disk given as `/dev/NAME` (or `NAME`).
pub fn disk_name(disk: &str) -> &str {
    disk.strip_prefix("/dev/").unwrap_or(disk)
}

/// The partitions of disk `name`: the directories of
/// `root/sys/block/NAME` that hold a `partition` file (its number), in
/// number order. A name that is not a plain device name has none.
pub fn partitions(root: &Path, name: &str) -> Vec<Partition> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Vec::new();
    }
    let dir = root.join("sys/block").join(name);
    let mut found: Vec<Partition> = fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let part = e.file_name().to_str()?.to_string();
                    let number = fs::read_to_string(e.path().join("partition"))
                        .ok()?
                        .trim()
                        .parse()
                        .ok()?;
                    Some(Partition { name: part, number })
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|p| p.number);
    found
}

/// `blkid ARGS… DEV`'s value, when it answered one.
fn blkid(exec: &dyn Exec, args: &[&str], dev: &str) -> Option<String> {
    let mut argv = vec!["blkid"];
    argv.extend_from_slice(args);
    argv.push(dev);
    exec.output(&CmdLine::argv(argv), None)
        .ok()
        .filter(|o| o.success())
        .map(|o| o.stdout.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The GPT type of a partition (`blkid -p -s PART_ENTRY_TYPE`).
pub fn part_type(exec: &dyn Exec, dev: &str) -> Option<String> {
    blkid(exec, &["-p", "-s", "PART_ENTRY_TYPE", "-o", "value"], dev)
}

/// The GPT unique id of a partition (`blkid -p -s PART_ENTRY_UUID`),
/// lower case.
pub fn part_uuid(exec: &dyn Exec, dev: &str) -> Option<String> {
    blkid(exec, &["-p", "-s", "PART_ENTRY_UUID", "-o", "value"], dev).map(|u| u.to_lowercase())
}

/// The EFI system partition of `disk` (`/dev/vda`): the first of its
/// partitions whose GPT type is [`ESP_TYPE`].
pub fn find_esp(root: &Path, exec: &dyn Exec, disk: &str) -> Result<Partition> {
    let parts = partitions(root, disk_name(disk));
    for p in &parts {
        if part_type(exec, &p.dev()).is_some_and(|t| t.eq_ignore_ascii_case(ESP_TYPE)) {
            return Ok(p.clone());
        }
    }
    let seen = if parts.is_empty() {
        "the kernel shows no partition on it".to_string()
    } else {
        format!(
            "its partitions: {}",
            parts
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    bail!(
        "{disk} has no EFI system partition ({seen}): this node boots UEFI, so its configure \
         script must make one (GPT, a partition with \"set N esp on\", formatted with mkfs.vfat)"
    )
}

/// The GPT unique ids of the partitions of every disk but `disk`.
pub fn other_partuuids(root: &Path, exec: &dyn Exec, disk: &str) -> Vec<String> {
    let mine = disk_name(disk);
    let mut names: Vec<String> = fs::read_dir(root.join("sys/block"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| n != mine)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .flat_map(|n| partitions(root, n))
        .filter_map(|p| part_uuid(exec, &p.dev()))
        .collect()
}

/// The tree's distribution (`ID=` of its os-release, `debian` when it has
/// none): the directory of its boot loader on the ESP (`\EFI\debian\`),
/// where Debian's signed GRUB looks for its configuration. A symlinked
/// `etc/os-release` (Debian's points to `../usr/lib/os-release`) is not
/// followed: `usr/lib/os-release` is read instead.
pub fn distribution_id(target: &Path) -> String {
    let text = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .map(|p| target.join(p))
        .find(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
        .and_then(|p| fs::read_to_string(p).ok())
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("ID="))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
        .rfind(|v| {
            !v.is_empty()
                && !v.starts_with('.')
                && v.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        })
        .unwrap_or_else(|| "debian".into())
}

/// `base/rel` as a real directory, made when missing: no component may be
/// a symbolic link (it could lead out of the tree) or a file.
pub fn safe_dir(base: &Path, rel: &str) -> Result<PathBuf> {
    let mut p = base.to_path_buf();
    for c in Path::new(rel).components() {
        let Component::Normal(name) = c else {
            bail!("{rel}: not a plain relative path under {}", base.display());
        };
        p.push(name);
        match p.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => bail!(
                "{} is a symbolic link: refusing to write through it",
                p.display()
            ),
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("{} is not a directory", p.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&p).with_context(|| format!("cannot create {}", p.display()))?
            }
            Err(e) => bail!("cannot read {}: {e}", p.display()),
        }
    }
    Ok(p)
}

/// The fstab line of the ESP: `SPEC /boot/efi vfat umask=0077 0 1`.
pub fn fstab_line(spec: &str) -> String {
    format!("{spec} /boot/efi vfat umask=0077 0 1\n")
}

/// Appends the ESP's line to `target/etc/fstab` (made when missing)
/// unless a line already mounts something on `/boot/efi`. Returns whether
/// it was added.
pub fn add_to_fstab(target: &Path, spec: &str) -> Result<bool> {
    let path = safe_dir(target, "etc")?.join("fstab");
    let old = match path.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() => bail!(
            "{} is a symbolic link: refusing to write through it",
            path.display()
        ),
        Ok(_) => {
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?
        }
        Err(_) => String::new(),
    };
    let there = old.lines().any(|l| {
        let l = l.trim();
        !l.starts_with('#') && l.split_whitespace().nth(1) == Some("/boot/efi")
    });
    if there {
        return Ok(false);
    }
    let mut text = String::new();
    if !old.is_empty() && !old.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&fstab_line(spec));
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

/// Copies the regular file `from` to `to` (replacing what is there, never
/// writing through a link), synced.
fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let mut src = File::open(from).with_context(|| format!("cannot open {}", from.display()))?;
    if to.symlink_metadata().is_ok() {
        fs::remove_file(to).with_context(|| format!("cannot replace {}", to.display()))?;
    }
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    std::io::copy(&mut src, &mut dst)
        .and_then(|_| dst.sync_all())
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Lays the boot loader `grub-install` put in `EFI/ID/` of the ESP
/// (mounted at `esp`) on the removable fallback path `EFI/BOOT/`: with
/// shim, `shimx64.efi` as `BOOTX64.EFI` beside `grubx64.efi`, `mmx64.efi`
/// and `grub.cfg`; without, `grubx64.efi` as `BOOTX64.EFI` (and
/// `grub.cfg`). Never `fbx64.efi`: shim's fallback, found in `EFI/BOOT/`
/// without a `BOOTX64.CSV`, resets the machine forever on a fresh NVRAM;
/// one already there is removed. Returns the files written, as
/// `EFI/BOOT/NAME`.
pub fn lay_fallback(esp: &Path, id: &str, shim: bool) -> Result<Vec<String>> {
    let src = safe_dir(esp, &format!("EFI/{id}"))?;
    let boot = safe_dir(esp, "EFI/BOOT")?;
    let first = if shim { "shimx64.efi" } else { "grubx64.efi" };
    let required: &[&str] = if shim {
        &["shimx64.efi", "grubx64.efi"]
    } else {
        &["grubx64.efi"]
    };
    for r in required {
        if !src.join(r).symlink_metadata().is_ok_and(|m| m.is_file()) {
            bail!(
                "grub-install left no \\EFI\\{id}\\{r} on the EFI system partition{}",
                if shim {
                    format!(
                        " (the tree has shim, {SHIM_IN_TREE}: it needs grub-efi-amd64-signed too)"
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    let mut copies = vec![(first, "BOOTX64.EFI")];
    if shim {
        copies.push(("grubx64.efi", "grubx64.efi"));
    }
    copies.push(("mmx64.efi", "mmx64.efi"));
    copies.push(("grub.cfg", "grub.cfg"));
    let mut laid = Vec::new();
    for (from, to) in copies {
        let f = src.join(from);
        if !f.symlink_metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        copy_file(&f, &boot.join(to))?;
        laid.push(format!("EFI/BOOT/{to}"));
    }
    let fb = boot.join("fbx64.efi");
    if fb.symlink_metadata().is_ok() {
        fs::remove_file(&fb).with_context(|| format!("cannot remove {}", fb.display()))?;
    }
    File::open(&boot)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", boot.display()))?;
    Ok(laid)
}

/// One `BootXXXX` entry of `efibootmgr -v`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootEntry {
    /// Four hexadecimal digits, as printed (`0003`).
    pub num: String,
    /// Marked `*`.
    pub active: bool,
    pub label: String,
    /// The device path and what follows it, as printed.
    pub path: String,
}

impl BootEntry {
    /// The partition's GPT unique id of a `HD(N,GPT,UUID,START,SIZE)`
    /// device path, lower case.
    pub fn partuuid(&self) -> Option<String> {
        let at = self.path.find("HD(")?;
        let inner = &self.path[at + 3..];
        let inner = &inner[..inner.find(')')?];
        let fields: Vec<&str> = inner.split(',').map(str::trim).collect();
        match fields.as_slice() {
            [_, kind, uuid, ..] if kind.eq_ignore_ascii_case("GPT") && !uuid.is_empty() => {
                Some(uuid.to_lowercase())
            }
            _ => None,
        }
    }
}

/// What `efibootmgr -v` printed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootVars {
    pub current: Option<String>,
    /// `BootOrder`, when the variable exists.
    pub order: Option<Vec<String>>,
    pub entries: Vec<BootEntry>,
}

/// Where the device path begins in an entry printed without a tab (older
/// efibootmgr): the first word, after the label, that opens a node such
/// as `HD(`, `PciRoot(` or `FvVol(`.
fn path_start(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    (1..bytes.len()).find(|&i| {
        bytes[i - 1] == b' ' && {
            let word = &rest[i..];
            let n = word
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            n > 0 && word.as_bytes().get(n) == Some(&b'(')
        }
    })
}

/// Reads `efibootmgr -v`'s text: `BootCurrent`, `BootOrder` and the
/// `BootXXXX[*] LABEL<TAB>PATH` lines (a space instead of the tab in older
/// versions; lines it does not know are skipped).
pub fn parse_efibootmgr(text: &str) -> BootVars {
    let mut vars = BootVars::default();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(v) = line.strip_prefix("BootCurrent:") {
            vars.current = Some(v.trim().to_uppercase()).filter(|v| !v.is_empty());
        } else if let Some(v) = line.strip_prefix("BootOrder:") {
            vars.order = Some(
                v.split(',')
                    .map(|n| n.trim().to_uppercase())
                    .filter(|n| !n.is_empty())
                    .collect(),
            );
        } else if let Some(rest) = line.strip_prefix("Boot") {
            let Some(num) = rest
                .get(..4)
                .filter(|n| n.chars().all(|c| c.is_ascii_hexdigit()))
            else {
                continue;
            };
            let rest = &rest[4..];
            let (active, rest) = match rest.strip_prefix('*') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
                continue;
            }
            let rest = rest.trim_start_matches(' ');
            let (label, path) = match rest.split_once('\t') {
                Some((l, p)) => (l, p),
                None => match path_start(rest) {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, ""),
                },
            };
            vars.entries.push(BootEntry {
                num: num.to_uppercase(),
                active,
                label: label.trim().to_string(),
                path: path.trim().to_string(),
            });
        }
    }
    vars
}

/// `chroot TARGET efibootmgr ARGS…`: the tree carries efibootmgr.
fn efibootmgr(exec: &dyn Exec, target: &Path, args: &[&str]) -> Result<String> {
    let mut argv = vec![
        "chroot".to_string(),
        target.display().to_string(),
        "efibootmgr".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    Ok(exec.run(&CmdLine::Argv(argv))?.stdout)
}

/// Leaves exactly one NVRAM entry [`LABEL`] for this disk: every entry
/// so labelled is removed (`efibootmgr -b XXXX -B`) unless its `HD(…)`
/// names a partition of another disk of this node (another install of
/// this node, kept); entries with other labels are never touched. Then
/// `efibootmgr -c -d DISK -p N -L eDeploy -l LOADER`, which puts it first
/// in BootOrder; with [`BootOrder::Keep`] BootOrder is set back as it was
/// (`-o OLD`), or removed (`-O`) when there was none.
#[allow(clippy::too_many_arguments)]
pub fn set_entry(
    root: &Path,
    target: &Path,
    exec: &dyn Exec,
    console: &Console,
    disk: &str,
    esp: &Partition,
    loader: &str,
    order: BootOrder,
) -> Result<()> {
    let before = parse_efibootmgr(&efibootmgr(exec, target, &["-v"])?);
    let ours: Vec<&BootEntry> = before.entries.iter().filter(|e| e.label == LABEL).collect();
    if !ours.is_empty() {
        let others = other_partuuids(root, exec, disk);
        for e in ours {
            match e.partuuid() {
                Some(u) if others.contains(&u) => console.say(&format!(
                    "NVRAM: keeping Boot{} ({LABEL} on another disk of this node)",
                    e.num
                )),
                _ => {
                    efibootmgr(exec, target, &["-b", &e.num, "-B"])?;
                    console.say(&format!("NVRAM: removed the old entry Boot{}", e.num));
                }
            }
        }
    }
    let number = esp.number.to_string();
    efibootmgr(
        exec,
        target,
        &["-c", "-d", disk, "-p", &number, "-L", LABEL, "-l", loader],
    )?;
    console.say(&format!(
        "NVRAM: entry {LABEL} added for {disk} partition {number} ({loader})"
    ));
    if order == BootOrder::Keep {
        match before.order.as_ref().filter(|o| !o.is_empty()) {
            Some(o) => {
                let old = o.join(",");
                efibootmgr(exec, target, &["-o", &old])?;
                console.say(&format!("NVRAM: BootOrder kept as it was ({old})"));
            }
            None => {
                efibootmgr(exec, target, &["-O"])?;
                console.say("NVRAM: BootOrder removed, as there was none");
            }
        }
    }
    Ok(())
}

/// A mount undone (`umount`) when dropped.
pub struct Mounted<'a> {
    exec: &'a dyn Exec,
    console: &'a Console,
    path: PathBuf,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let cmd = CmdLine::argv(["umount".to_string(), self.path.display().to_string()]);
        if let Err(e) = self.exec.run(&cmd) {
            self.console.warn(&format!("{e:#}"));
        }
    }
}

/// Installs GRUB for x86_64-efi from the tree on `disk`'s ESP, the
/// fallback path, and the NVRAM entry (see the module's documentation).
/// `install` and `mkconfig` are the tree's programs, `cfg` GRUB's
/// configuration file. A failed NVRAM write is a warning: the fallback
/// path still boots the node.
#[allow(clippy::too_many_arguments)]
pub fn install_grub(
    root: &Path,
    target: &Path,
    exec: &dyn Exec,
    console: &Console,
    disk: &str,
    install: &str,
    mkconfig: &str,
    cfg: &str,
    order: BootOrder,
) -> Result<()> {
    console.say(&format!(
        "this node boots UEFI: looking for the EFI system partition on {disk}"
    ));
    let esp = find_esp(root, exec, disk)?;
    let dev = esp.dev();
    let dir = safe_dir(target, ESP_MOUNT)?;
    console.say(&format!(
        "mounting the EFI system partition {dev} on /boot/efi"
    ));
    exec.run(&CmdLine::argv([
        "mount".to_string(),
        "-t".into(),
        "vfat".into(),
        dev.clone(),
        dir.display().to_string(),
    ]))?;
    // Declared before the bind mounts: unmounted after them.
    let _esp = Mounted {
        exec,
        console,
        path: dir.clone(),
    };
    let spec = match blkid(exec, &["-s", "UUID", "-o", "value"], &dev)
        .filter(|u| u.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
    {
        Some(u) => format!("UUID={u}"),
        None => {
            console.warn(&format!(
                "blkid gives no UUID for {dev}: /etc/fstab names the device"
            ));
            dev.clone()
        }
    };
    if add_to_fstab(target, &spec)? {
        console.say(&format!("/etc/fstab: {spec} on /boot/efi"));
    } else {
        console.say("/etc/fstab already mounts something on /boot/efi: left as it is");
    }
    let id = distribution_id(target);
    let _binds = Binds::mount_uefi(root, target, exec, console)?;
    console.say(&format!(
        "installing GRUB for x86_64-efi in \\EFI\\{id}\\ (Secure Boot capable)"
    ));
    let chroot = target.display().to_string();
    exec.run(&CmdLine::argv([
        "chroot".to_string(),
        chroot.clone(),
        install.into(),
        "--target=x86_64-efi".into(),
        "--efi-directory=/boot/efi".into(),
        format!("--bootloader-id={id}"),
        "--uefi-secure-boot".into(),
        "--no-nvram".into(),
    ]))?;
    exec.run(&CmdLine::argv([
        "chroot".to_string(),
        chroot,
        mkconfig.into(),
        "-o".into(),
        cfg.into(),
    ]))?;
    let shim = target.join(SHIM_IN_TREE).exists();
    let laid = lay_fallback(&dir, &id, shim)?;
    console.say(&format!(
        "fallback boot path {FALLBACK}: {} ({})",
        laid.join(", "),
        if shim {
            "shim"
        } else {
            "GRUB, no shim in the tree"
        }
    ));
    let loader = format!(
        "\\EFI\\{id}\\{}",
        if shim { "shimx64.efi" } else { "grubx64.efi" }
    );
    if let Err(e) = set_entry(root, target, exec, console, disk, &esp, &loader, order) {
        console.warn(&format!(
            "cannot set the NVRAM boot entry ({e:#}): this node will boot through the \
             fallback path {FALLBACK}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// efibootmgr 17 on OVMF after an install (tabs before the paths).
    const V17: &str = "BootCurrent: 0001\n\
Timeout: 0 seconds\n\
BootOrder: 0003,0001,0000,0002\n\
Boot0000* UiApp\tFvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(462caa21-7614-4503-836e-8ab6f4662331)\n\
Boot0001* UEFI PXEv4 (MAC:525400123456)\tPciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)/IPv4(0.0.0.00.0.0.0,0,0)..BO\n\
Boot0002* EFI Internal Shell\tFvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(7c04a583-9e3e-4f1c-ad65-e05268d0b4d1)\n\
Boot0003* eDeploy\tHD(1,GPT,5f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f,0x800,0x80000)/File(\\EFI\\debian\\shimx64.efi)\n";

    #[test]
    fn efibootmgr_with_tabs() {
        let v = parse_efibootmgr(V17);
        assert_eq!(v.current.as_deref(), Some("0001"));
        assert_eq!(
            v.order,
            Some(vec![
                "0003".into(),
                "0001".into(),
                "0000".into(),
                "0002".into()
            ])
        );
        let labels: Vec<&str> = v.entries.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "UiApp",
                "UEFI PXEv4 (MAC:525400123456)",
                "EFI Internal Shell",
                "eDeploy"
            ]
        );
        let ours = &v.entries[3];
        assert_eq!((ours.num.as_str(), ours.active), ("0003", true));
        assert_eq!(
            ours.path,
            "HD(1,GPT,5f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f,0x800,0x80000)/File(\\EFI\\debian\\shimx64.efi)"
        );
        assert_eq!(
            ours.partuuid().as_deref(),
            Some("5f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f")
        );
        assert!(v.entries[1].path.ends_with("..BO"));
        assert_eq!(v.entries[1].partuuid(), None);
    }

    #[test]
    fn older_efibootmgr_prints_a_space_and_inactive_entries() {
        let text = "BootCurrent: 0004\r\n\
BootOrder: 0004,0000\r\n\
Boot0000* UEFI QEMU DVD-ROM QM00003  PciRoot(0x0)/Pci(0x1,0x1)/Ata(0,0,0)N.....YM....R,Y.\r\n\
Boot0004* eDeploy HD(2,GPT,AA1C2A4E-8D3B-4C1A-9E2F-0A1B2C3D4E5F,0x800,0x100000)/File(\\EFI\\debian\\shimx64.efi)\r\n\
Boot0005  eDeploy\tHD(1,MBR,0x1234abcd,0x800,0x80000)/File(\\EFI\\debian\\grubx64.efi)\r\n\
Boot0006* Windows Boot Manager\n\
BootNext: 0004\n\
      dp: 04 01 2a 00\n";
        let v = parse_efibootmgr(text);
        assert_eq!(v.current.as_deref(), Some("0004"));
        assert_eq!(v.order, Some(vec!["0004".into(), "0000".into()]));
        let got: Vec<(&str, bool, &str)> = v
            .entries
            .iter()
            .map(|e| (e.num.as_str(), e.active, e.label.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("0000", true, "UEFI QEMU DVD-ROM QM00003"),
                ("0004", true, "eDeploy"),
                ("0005", false, "eDeploy"),
                ("0006", true, "Windows Boot Manager"),
            ]
        );
        assert!(v.entries[0].path.starts_with("PciRoot(0x0)"));
        // Lower case, whatever the firmware printed.
        assert_eq!(
            v.entries[1].partuuid().as_deref(),
            Some("aa1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f")
        );
        // An MBR disk has no partition uuid.
        assert_eq!(v.entries[2].partuuid(), None);
        assert_eq!(v.entries[3].path, "");
    }

    #[test]
    fn efibootmgr_18_paths_and_no_boot_order() {
        let text = "BootCurrent: 0002\n\
Timeout: 3 seconds\n\
Boot0002* eDeploy\tHD(1,GPT,5f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f,0x800,0x80000)/\\EFI\\debian\\shimx64.efi\n\
Boot0003* UEFI Misc Device\tPciRoot(0x0)/Pci(0x2,0x0){auto_created_boot_option}\n";
        let v = parse_efibootmgr(text);
        assert_eq!(v.order, None);
        assert_eq!(v.entries.len(), 2);
        assert_eq!(
            v.entries[0].partuuid().as_deref(),
            Some("5f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f")
        );
        assert_eq!(parse_efibootmgr(""), BootVars::default());
        assert_eq!(parse_efibootmgr("BootOrder: \n").order, Some(Vec::new()));
    }

    #[test]
    fn distribution_ids_and_fstab() {
        let t = tempfile::tempdir().expect("tmp");
        assert_eq!(distribution_id(t.path()), "debian");
        fs::create_dir_all(t.path().join("usr/lib")).expect("mkdir");
        fs::write(
            t.path().join("usr/lib/os-release"),
            "NAME=\"Ubuntu\"\nID=ubuntu\n",
        )
        .expect("write");
        fs::create_dir_all(t.path().join("etc")).expect("mkdir");
        // Debian's etc/os-release is a relative link; an absolute one
        // would lead out of the tree: neither is followed.
        std::os::unix::fs::symlink("/etc/os-release", t.path().join("etc/os-release"))
            .expect("link");
        assert_eq!(distribution_id(t.path()), "ubuntu");
        fs::remove_file(t.path().join("etc/os-release")).expect("rm");
        fs::write(t.path().join("etc/os-release"), "ID=\"../x\"\n").expect("write");
        assert_eq!(distribution_id(t.path()), "debian");

        assert!(add_to_fstab(t.path(), "UUID=ABCD-1234").expect("add"));
        assert!(!add_to_fstab(t.path(), "UUID=ABCD-1234").expect("again"));
        assert_eq!(
            fs::read_to_string(t.path().join("etc/fstab")).expect("fstab"),
            "UUID=ABCD-1234 /boot/efi vfat umask=0077 0 1\n"
        );
        let u = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(u.path().join("etc")).expect("mkdir");
        fs::write(u.path().join("etc/fstab"), "/dev/vda2 / ext4 defaults 0 1").expect("w");
        assert!(add_to_fstab(u.path(), "UUID=ABCD-1234").expect("add"));
        assert_eq!(
            fs::read_to_string(u.path().join("etc/fstab")).expect("fstab"),
            "/dev/vda2 / ext4 defaults 0 1\nUUID=ABCD-1234 /boot/efi vfat umask=0077 0 1\n"
        );
        // A symlinked fstab is never written through.
        let outside = t.path().join("outside");
        fs::write(&outside, "").expect("w");
        let v = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(v.path().join("etc")).expect("mkdir");
        std::os::unix::fs::symlink(&outside, v.path().join("etc/fstab")).expect("link");
        let e = add_to_fstab(v.path(), "UUID=X").expect_err("symlink");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(&outside).expect("r"), "");
    }
}
