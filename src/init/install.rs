//! Finishing the installed tree: the post-install overlay, the
//! configuration `edeploy` reads on the host, the kept logs, the boot
//! loader, and the pxemngr local boot.

use super::cmdline::{BootOrder, Settings};
use super::console::Console;
use super::uefi;
use super::Tuning;
use crate::configure::Role;
use crate::detect::natural_cmp;
use crate::exec::{CmdLine, Exec};
use anyhow::{bail, Context, Result};
use indexmap::IndexMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Quotes a value for a shell-style `KEY=value` line when it needs it.
pub fn shell_value(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/@+,[]".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

/// The text of `/var/lib/edeploy/conf`.
pub fn conf_text(s: &Settings, role: &Role) -> String {
    let items: [(&str, String); 9] = [
        ("VERS", role.version.clone()),
        ("ROLE", role.role.clone()),
        ("SERV", s.serv.clone()),
        ("RSERV", s.rserv.clone()),
        ("RSERV_PORT", s.rserv_port.to_string()),
        ("RPATH", s.rpath.clone()),
        ("HSERV", s.hserv.clone().unwrap_or_default()),
        ("HSERV_PORT", s.hserv_port.to_string()),
        ("HPATH", s.hpath.clone()),
    ];
    items
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                format!("{k}=\n")
            } else {
                format!("{k}={}\n", shell_value(v))
            }
        })
        .chain(s.https.then(|| "HTTPS=1\n".to_string()))
        .collect()
}

/// Copies the pinned CA `ca` (checked first) to the installed tree's
/// `etc/edeploy/ca.pem`, where `edeploy` reads it for `https://`. Never
/// through a symlink of the tree: a link on the way is refused, one at
/// the file itself is replaced. Nothing is written without a CA.
pub fn write_ca(target: &Path, ca: Option<&Path>) -> Result<()> {
    use crate::archive::{beneath, place};
    let Some(ca) = ca else {
        return Ok(());
    };
    crate::net::load_ca(ca)?;
    let data = fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
    let rel = Path::new(crate::net::CA_FILE);
    beneath::check_parent(target, rel)?;
    let dst = target.join(rel);
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut fill = |f: &mut fs::File| -> Result<()> {
        std::io::Write::write_all(f, &data)
            .with_context(|| format!("cannot write {}", dst.display()))
    };
    place::put(
        &dst,
        place::Content::File(&mut fill),
        &place::How::durable(place::Attrs {
            owner: None,
            mode: Some(0o644),
            mtime: None,
        }),
    )
}

/// Writes `target/var/lib/edeploy/conf`.
pub fn write_conf(target: &Path, s: &Settings, role: &Role) -> Result<()> {
    let path = target.join("var/lib/edeploy/conf");
    write_file(&path, conf_text(s, role).as_bytes())
}

/// Copies the installer's trusted keys (`root/etc/edeploy/trusted.d/*.pub`)
/// into `target/etc/edeploy/trusted.d/`, where the installed host's
/// `edeploy` reads them. Never through a symlink of the target: a parent
/// that is one is refused, a key file that is one is replaced (each key is
/// written to a new file and renamed over). Returns the number of keys.
pub fn copy_trusted(root: &Path, target: &Path) -> Result<usize> {
    use crate::archive::beneath;
    use std::io::Write;
    let src = root.join(crate::trust::TRUSTED_DIR);
    let entries = match fs::read_dir(&src) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", src.display())),
    };
    let mut names: Vec<std::ffi::OsString> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| Path::new(n).extension().is_some_and(|x| x == "pub"))
        .collect();
    names.sort();
    let dir_rel = Path::new(crate::trust::TRUSTED_DIR);
    for name in &names {
        let from = src.join(name);
        let data = fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
        let rel = dir_rel.join(name);
        let mut tmp_name = name.clone();
        tmp_name.push(".edeploy-tmp");
        let tmp_rel = dir_rel.join(&tmp_name);
        beneath::check_parent(target, &rel)?;
        let dir = target.join(dir_rel);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Created just now, under no symlink: checked again.
        beneath::check_parent(target, &rel)?;
        let (path, tmp) = (target.join(&rel), target.join(&tmp_rel));
        if tmp.symlink_metadata().is_ok() {
            fs::remove_file(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
        }
        // create_new never follows a symlink (O_EXCL).
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(&data)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        drop(f);
        fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .with_context(|| format!("cannot set the mode of {}", tmp.display()))?;
        fs::rename(&tmp, &path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    }
    Ok(names.len())
}

pub(crate) fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(path, data).with_context(|| format!("cannot write {}", path.display()))
}

/// The kernel arguments of the installed system: the kept ` | … | ` words,
/// then cloud-init's datasource when the server gave a metadata URL.
pub fn kernel_args(kept: &[String], settings: &IndexMap<String, String>) -> Vec<String> {
    let mut args = kept.to_vec();
    if let Some(url) = settings.get("METADATA_URL").filter(|u| !u.is_empty()) {
        args.push(format!("ds=nocloud-net;s={url}"));
    }
    args
}

/// The `GRUB_CMDLINE_LINUX` line. GRUB's own parser reads `;` as the end
/// of a command, so it is escaped as `\;` in grub.cfg, which `\\;` inside
/// the shell's double quotes of `/etc/default/grub` gives.
pub fn grub_cmdline_line(args: &[String]) -> String {
    let text = args
        .join(" ")
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$")
        .replace('`', "\\`")
        .replace(';', "\\\\;");
    format!("GRUB_CMDLINE_LINUX=\"{text}\"")
}

/// `etc/default/grub` with its `GRUB_CMDLINE_LINUX` replaced (or added).
pub fn edit_default_grub(old: &str, args: &[String]) -> String {
    let line = grub_cmdline_line(args);
    let mut out = String::new();
    let mut done = false;
    for l in old.lines() {
        if l.trim_start().starts_with("GRUB_CMDLINE_LINUX=") {
            if !done {
                out.push_str(&line);
                out.push('\n');
                done = true;
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    if !done {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The kernel (`boot/vmlinuz-VERSION`) of the tree: `wanted` when given,
/// else the highest version. Returns the version.
pub fn kernel_version(target: &Path, wanted: Option<&str>) -> Result<String> {
    let boot = target.join("boot");
    let mut versions: Vec<String> = fs::read_dir(&boot)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("vmlinuz-"))
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by(|a, b| natural_cmp(a, b));
    match wanted {
        Some(w) if versions.iter().any(|v| v == w) => Ok(w.to_string()),
        Some(w) => bail!(
            "KEXEC_KERNEL={w}: no /boot/vmlinuz-{w} in the installed tree (it has: {})",
            if versions.is_empty() {
                "none".into()
            } else {
                versions.join(", ")
            }
        ),
        None => versions
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the installed tree has no /boot/vmlinuz-*")),
    }
}

/// The initrd of kernel `version`, as a path inside the tree.
pub fn initrd_for(target: &Path, version: &str) -> Option<String> {
    [
        format!("boot/initrd.img-{version}"),
        format!("boot/initramfs-{version}.img"),
        format!("boot/initrd-{version}"),
    ]
    .into_iter()
    .find(|p| target.join(p).exists())
    .map(|p| format!("/{p}"))
}

/// The device mounted on `target`, from `root/proc/mounts`, or the first
/// partition of `disk` (`/dev/vda` → `/dev/vda1`, `/dev/nvme0n1` →
/// `/dev/nvme0n1p1`).
pub fn root_device(root: &Path, target: &Path, disk: &str) -> String {
    let mounts = fs::read_to_string(root.join("proc/mounts")).unwrap_or_default();
    let want = target.display().to_string();
    let found = mounts.lines().rev().find_map(|l| {
        let mut w = l.split_whitespace();
        let (dev, mp) = (w.next()?, w.next()?);
        (mp.replace("\\040", " ") == want && dev.starts_with("/dev/")).then(|| dev.to_string())
    });
    found.unwrap_or_else(|| {
        if disk.ends_with(|c: char| c.is_ascii_digit()) {
            format!("{disk}p1")
        } else {
            format!("{disk}1")
        }
    })
}

/// `root=UUID=…` when `blkid` knows the filesystem, else `root=DEVICE`.
pub fn root_arg(exec: &dyn Exec, dev: &str) -> String {
    let uuid = exec
        .output(
            &CmdLine::argv(["blkid", "-s", "UUID", "-o", "value", dev]),
            None,
        )
        .ok()
        .filter(|o| o.success())
        .map(|o| o.stdout.trim().to_string())
        .filter(|u| !u.is_empty() && u.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    match uuid {
        Some(u) => format!("root=UUID={u}"),
        None => format!("root={dev}"),
    }
}

/// Bind mounts of the installer's `/dev`, `/proc`, `/sys` (and, on UEFI,
/// `/sys/firmware/efi/efivars`) into the tree, undone (in reverse) when
/// dropped.
pub struct Binds<'a> {
    exec: &'a dyn Exec,
    console: &'a Console,
    mounted: Vec<PathBuf>,
}

impl<'a> Binds<'a> {
    /// `dev`, `proc`, `sys`.
    pub fn mount(
        root: &Path,
        target: &Path,
        exec: &'a dyn Exec,
        console: &'a Console,
    ) -> Result<Binds<'a>> {
        Binds::mount_dirs(root, target, exec, console, &["dev", "proc", "sys"])
    }

    /// `dev`, `proc`, `sys`, then the efivars of `sys/firmware/efi`, which
    /// `grub-install` and `efibootmgr` read and write.
    pub fn mount_uefi(
        root: &Path,
        target: &Path,
        exec: &'a dyn Exec,
        console: &'a Console,
    ) -> Result<Binds<'a>> {
        Binds::mount_dirs(
            root,
            target,
            exec,
            console,
            &["dev", "proc", "sys", super::bringup::EFIVARS],
        )
    }

    fn mount_dirs(
        root: &Path,
        target: &Path,
        exec: &'a dyn Exec,
        console: &'a Console,
        dirs: &[&str],
    ) -> Result<Binds<'a>> {
        let mut b = Binds {
            exec,
            console,
            mounted: Vec::new(),
        };
        for d in dirs {
            let to = target.join(d);
            fs::create_dir_all(&to).with_context(|| format!("cannot create {}", to.display()))?;
            exec.run(&CmdLine::argv([
                "mount".to_string(),
                "-o".into(),
                "bind".into(),
                root.join(d).display().to_string(),
                to.display().to_string(),
            ]))?;
            b.mounted.push(to);
        }
        Ok(b)
    }
}

impl Drop for Binds<'_> {
    fn drop(&mut self) {
        while let Some(m) = self.mounted.pop() {
            let cmd = CmdLine::argv(["umount".to_string(), m.display().to_string()]);
            if let Err(e) = self.exec.run(&cmd) {
                self.console.warn(&format!("{e:#}"));
            }
        }
    }
}

/// Which boot loader the tree gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loader {
    /// `grub-install` and `grub-mkconfig` (or the `grub2-` names) of the
    /// tree, and the config file they write.
    Grub {
        install: String,
        mkconfig: String,
        cfg: String,
    },
    Extlinux,
}

/// GRUB when the tree has `grub-install` (Debian) or `grub2-install`
/// (Red Hat), else extlinux.
pub fn loader_of(target: &Path) -> Loader {
    for (install, mkconfig, cfg) in [
        ("grub-install", "grub-mkconfig", "/boot/grub/grub.cfg"),
        ("grub2-install", "grub2-mkconfig", "/boot/grub2/grub.cfg"),
    ] {
        for dir in ["usr/sbin", "sbin"] {
            if target.join(dir).join(install).exists() {
                return Loader::Grub {
                    install: install.into(),
                    mkconfig: mkconfig.into(),
                    cfg: cfg.into(),
                };
            }
        }
    }
    Loader::Extlinux
}

/// Installs the boot loader of `target` on `disk`: for BIOS, GRUB or
/// extlinux; on a node booted UEFI (`root/sys/firmware/efi`), GRUB for
/// x86_64-efi on the disk's EFI system partition ([`uefi::install_grub`]),
/// with `order` saying where its NVRAM entry goes.
pub fn bootloader(
    root: &Path,
    target: &Path,
    exec: &dyn Exec,
    console: &Console,
    disk: &str,
    args: &[String],
    order: BootOrder,
) -> Result<Loader> {
    let loader = loader_of(target);
    let efi = uefi::is_uefi(root);
    match &loader {
        Loader::Grub { install, .. } if efi && install != "grub-install" => bail!(
            "this node boots UEFI and the tree has {install}: UEFI installs use Debian's \
             grub-install (grub-efi-amd64-signed, shim-signed and efibootmgr in the tree)"
        ),
        Loader::Extlinux if efi => bail!(
            "this node boots UEFI but the tree has no grub-install: extlinux only boots BIOS \
             nodes; put GRUB for EFI in the role's tree (grub-efi-amd64-signed, shim-signed, \
             efibootmgr), or boot the node in legacy BIOS mode"
        ),
        _ => {}
    }
    match &loader {
        Loader::Grub {
            install,
            mkconfig,
            cfg,
        } => {
            let default = target.join("etc/default/grub");
            let old = fs::read_to_string(&default).unwrap_or_default();
            write_file(&default, edit_default_grub(&old, args).as_bytes())?;
            if efi {
                uefi::install_grub(
                    root, target, exec, console, disk, install, mkconfig, cfg, order,
                )?;
                return Ok(loader);
            }
            let _binds = Binds::mount(root, target, exec, console)?;
            let chroot = target.display().to_string();
            exec.run(&CmdLine::argv([
                "chroot".to_string(),
                chroot.clone(),
                install.clone(),
                disk.into(),
            ]))?;
            exec.run(&CmdLine::argv([
                "chroot".to_string(),
                chroot,
                mkconfig.clone(),
                "-o".into(),
                cfg.clone(),
            ]))?;
        }
        Loader::Extlinux => {
            let version = kernel_version(target, None)?;
            let dev = root_device(root, target, disk);
            let mut append = vec![root_arg(exec, &dev), "ro".to_string()];
            append.extend(args.iter().cloned());
            let mut conf = format!(
                "DEFAULT edeploy\nTIMEOUT 0\nPROMPT 0\n\nLABEL edeploy\n    KERNEL /boot/vmlinuz-{version}\n"
            );
            if let Some(initrd) = initrd_for(target, &version) {
                conf.push_str(&format!("    INITRD {initrd}\n"));
            }
            conf.push_str(&format!("    APPEND {}\n", append.join(" ")));
            let dir = target.join("boot/extlinux");
            write_file(&dir.join("extlinux.conf"), conf.as_bytes())?;
            exec.run(&CmdLine::argv([
                "extlinux".to_string(),
                "--install".into(),
                dir.display().to_string(),
            ]))?;
            // The MBR that jumps to the active partition's boot sector.
            if let Some(mbr) = [
                "usr/lib/syslinux/mbr/mbr.bin",
                "usr/lib/syslinux/mbr.bin",
                "usr/share/syslinux/mbr.bin",
            ]
            .iter()
            .map(|p| target.join(p))
            .find(|p| p.exists())
            {
                exec.run(&CmdLine::argv([
                    "dd".to_string(),
                    "bs=440".into(),
                    "count=1".into(),
                    "conv=notrunc".into(),
                    format!("if={}", mbr.display()),
                    format!("of={disk}"),
                ]))?;
            }
        }
    }
    Ok(loader)
}

/// Tells pxemngr to boot this node from its disk from now on:
/// `GET PXEMNGR_URL/localboot/<MAC>`. Returns what happened, for the log.
pub fn pxemngr_localboot(url: &str, mac: &str, tuning: &Tuning) -> Result<String> {
    let full = format!("{}/localboot/{mac}", url.trim_end_matches('/'));
    let resp = super::server::client(tuning)
        .get(&full)
        .map_err(|e| match e {
            crate::net::NetError::Unreachable { why, .. } => anyhow::anyhow!("{full}: {why}"),
            e => anyhow::anyhow!(e),
        })?;
    let status = resp.status().as_u16();
    if status != 200 {
        bail!("{full}: HTTP {status}");
    }
    Ok(full)
}
