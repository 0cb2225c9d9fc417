//! The whole installer in a temporary root, against a real lighttpd
//! running `upload.cgi` (tests/support) and serving the role's tree.
//!
//! The node is a fake sysfs/procfs matching the shipped `vm.specs` (a
//! virtio disk `vda`, an `eth0` with a link and an address in
//! 10.0.2.0/24). Commands that would touch the machine are recorded by
//! [`Node`], a [`Fake`] that answers `ip -o -4 addr show` and `dmesg`
//! with canned text, runs `true`/`false` for real, and reports every other
//! program as not installed, so the test never depends on the tools of
//! the machine it runs on.

mod support;

use edeploy::exec::{CmdLine, CmdOutput, Fake, Reply, When};
use edeploy::init::{Action, Console, Installer, Tuning};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Kind, Options, Site};

const MAC: &str = "52:54:00:12:34:56";
const IP_ADDR: &str = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever\n";
/// What `log_name` makes of the fake DMI strings.
const LOG_NAME: &str = "QEMU-StandardPC-VM0001.log.gz";
/// `hw::sysname` of the fake node.
const SYSNAME: &str = "StandardPC-QEMU-VM0001";

/// Answers a command run in the chroot, or leaves it to the default.
type ChrootHook = Box<dyn Fn(&[String]) -> Option<anyhow::Result<CmdOutput>> + Send + Sync>;

/// The node's command runner (see the module doc), and for each `chroot`
/// it ran, whether the role's tree was there.
struct Node {
    exec: Fake,
    root: PathBuf,
    tree_seen: Arc<Mutex<Vec<bool>>>,
}

impl Node {
    fn new(root: &Path) -> Node {
        Node::with_rsync(root, None)
    }

    /// `rsync_from`: a directory `rsync` copies into its destination, as
    /// the real one would from the server.
    fn with_rsync(root: &Path, rsync_from: Option<&Path>) -> Node {
        Node::build(root, rsync_from, Vec::new(), None)
    }

    /// `rules` come before the node's own; `in_chroot` answers the
    /// commands run in the chroot (given the words after
    /// `chroot ROOT/chroot`) when it returns an answer, else they succeed.
    fn build(
        root: &Path,
        rsync_from: Option<&Path>,
        rules: Vec<(When, Reply)>,
        in_chroot: Option<ChrootHook>,
    ) -> Node {
        let tree_seen = Arc::new(Mutex::new(Vec::new()));
        let (seen, hello) = (Arc::clone(&tree_seen), root.join("chroot/bin/hello"));
        let mut exec = support::node_exec(IP_ADDR);
        for (when, reply) in rules {
            exec = exec.on(when, reply);
        }
        let mut exec = exec.on(
            When::program("chroot"),
            Reply::with(move |cmd, _| {
                if let Ok(mut s) = seen.lock() {
                    s.push(hello.exists());
                }
                if let (Some(hook), CmdLine::Argv(v)) = (&in_chroot, cmd) {
                    if let Some(answer) = hook(v.get(2..).unwrap_or_default()) {
                        return answer;
                    }
                }
                Ok(CmdOutput::default())
            }),
        );
        if let Some(src) = rsync_from {
            let src = src.to_path_buf();
            exec = exec.on(
                When::program("rsync"),
                Reply::with(move |cmd, _| {
                    if let CmdLine::Argv(v) = cmd {
                        // The server has no manifest (nor signature): the
                        // tree is installed unchecked, as without keys.
                        let src_url = v.get(v.len().saturating_sub(2)).cloned().unwrap_or_default();
                        if src_url.ends_with(".manifest") || src_url.ends_with(".minisig") {
                            return Ok(CmdOutput {
                                status: 23,
                                stdout: String::new(),
                                stderr: format!(
                                    "rsync: [sender] link_stat \"{src_url}\" failed: No such file or directory (2)\n"
                                ),
                            });
                        }
                        let dest = v.last().cloned().unwrap_or_default();
                        let st = std::process::Command::new("cp")
                            .arg("-a")
                            .arg(format!("{}/.", src.display()))
                            .arg(&dest)
                            .status()?;
                        anyhow::ensure!(st.success(), "cp failed");
                    }
                    Ok(CmdOutput::default())
                }),
            );
        }
        let exec = exec
            .on(When::program("true"), Reply::real().unrecorded())
            .on(When::program("false"), Reply::real().unrecorded())
            .otherwise(Reply::not_installed().unrecorded());
        Node {
            exec,
            root: root.to_path_buf(),
            tree_seen,
        }
    }

    /// The recorded commands with the root replaced by `ROOT`, each
    /// `chroot` run once the tree was there marked `[tree present]`.
    fn shown(&self) -> Vec<String> {
        let r = self.root.display().to_string();
        let seen = self.tree_seen.lock().map(|s| s.clone()).unwrap_or_default();
        let mut seen = seen.into_iter();
        self.exec
            .commands()
            .iter()
            .map(|c| {
                let mut text = c.display();
                if c.program().rsplit('/').next() == Some("chroot") && seen.next() == Some(true) {
                    text.push_str(" [tree present]");
                }
                text.replace(&r, "ROOT")
            })
            .collect()
    }
}

/// A console that keeps what was written.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Write for Screen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Screen {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, text).expect("write");
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(target, &p).expect("symlink");
}

/// The fake node: sysfs and procfs matching `vm.specs`.
fn fake_node(cmdline: &str) -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("edeploy-node-")
        .tempdir()
        .expect("temp dir");
    let r = t.path();
    write(r, "proc/cmdline", &format!("{cmdline}\n"));
    write(r, "proc/sys/kernel/osrelease", "6.1.0-1-amd64\n");
    write(r, "sys/class/dmi/id/product_name", "Standard PC\n");
    write(r, "sys/class/dmi/id/sys_vendor", "QEMU\n");
    write(r, "sys/class/dmi/id/product_serial", "VM0001\n");
    // 10 GB virtio disk.
    write(r, "sys/block/vda/size", "20971520\n");
    write(r, "sys/block/vda/device/vendor", "0x1af4\n");
    write(
        r,
        "sys/devices/pci0000:00/0000:00:04.0/modalias",
        "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
    );
    let nic = "devices/pci0000:00/0000:00:03.0/virtio0";
    write(
        r,
        "sys/devices/pci0000:00/0000:00:03.0/modalias",
        "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\n",
    );
    write(
        r,
        &format!("sys/{nic}/modalias"),
        "virtio:d00000001v00001AF4\n",
    );
    write(r, &format!("sys/{nic}/vendor"), "0x1af4\n");
    write(r, &format!("sys/{nic}/device"), "0x0001\n");
    link(r, &format!("sys/{nic}/subsystem"), "../../../../bus/virtio");
    link(
        r,
        &format!("sys/{nic}/driver"),
        "../../../../bus/virtio/drivers/virtio_net",
    );
    link(r, "sys/class/net/eth0/device", &format!("../../../{nic}"));
    write(r, "sys/class/net/eth0/address", &format!("{MAC}\n"));
    write(r, "sys/class/net/eth0/carrier", "1\n");
    write(r, "sys/class/net/eth0/operstate", "up\n");
    t
}

fn tuning() -> Tuning {
    Tuning {
        upload_attempts: 3,
        backoff_first: Duration::from_millis(50),
        backoff_max: Duration::from_millis(100),
        report_attempts: 2,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(20),
        carrier_wait: Duration::from_millis(300),
        poll: Duration::from_millis(20),
        ..Tuning::default()
    }
}

struct Run {
    report: edeploy::init::RunReport,
    screen: String,
    log: String,
    commands: Vec<String>,
}

fn run(root: &Path, node: &Node) -> Run {
    let screen = Screen::default();
    let console = Console::new(Box::new(screen.clone()));
    let installer = Installer {
        root: root.to_path_buf(),
        cmdline: None,
        exec: &node.exec,
        console: console.clone(),
        tuning: tuning(),
    };
    let report = installer.run();
    Run {
        report,
        screen: screen.text(),
        log: console.log_text(),
        commands: node.shown(),
    }
}

// ------------------------------------------------------------- the tree

const GRUB_DEFAULT: &str = "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"\"\n";

/// The role tree as a `.edeploy` file: files, a symlink, a hard link, a
/// file owned by uid 1234, an extended attribute, GRUB and a kernel.
fn edeploy_tarball() -> Vec<u8> {
    edeploy_tarball_with(&[])
}

/// [`edeploy_tarball`] with more files (`usr/lib/shim/…`), their parent
/// directories made.
fn edeploy_tarball_with(extra: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    let dir = |b: &mut tar::Builder<_>, path: &str, mode: u32, uid: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, std::io::empty()).expect("dir");
    };
    let file = |b: &mut tar::Builder<_>, path: &str, mode: u32, uid: u64, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, data).expect("file");
    };
    for d in [
        "bin",
        "boot",
        "etc",
        "etc/default",
        "etc/network",
        "home",
        "usr",
        "usr/bin",
        "usr/sbin",
        "var",
    ] {
        dir(&mut b, d, 0o755, 0);
    }
    dir(&mut b, "home/user", 0o750, 1234);
    file(&mut b, "bin/hello", 0o755, 0, b"#!/bin/sh\necho hello\n");
    file(&mut b, "etc/hostname", 0o644, 0, b"debian\n");
    file(&mut b, "etc/motd", 0o644, 0, b"the base role\n");
    file(
        &mut b,
        "etc/default/grub",
        0o644,
        0,
        GRUB_DEFAULT.as_bytes(),
    );
    file(&mut b, "usr/sbin/grub-install", 0o755, 0, b"#!/bin/sh\n");
    file(&mut b, "usr/sbin/grub-mkconfig", 0o755, 0, b"#!/bin/sh\n");
    file(&mut b, "boot/vmlinuz-6.1.0-1-amd64", 0o644, 0, b"kernel");
    file(&mut b, "boot/initrd.img-6.1.0-1-amd64", 0o644, 0, b"initrd");
    file(&mut b, "home/user/notes", 0o600, 1234, b"owned by 1234\n");
    // A setuid file: the mode must survive the owner being set.
    file(&mut b, "usr/bin/su", 0o4755, 0, b"#!/bin/sh\n");
    // Extended attributes travel as pax records.
    b.append_pax_extensions([("SCHILY.xattr.user.edeploy", b"tagged".as_slice())])
        .expect("pax");
    file(&mut b, "etc/tagged", 0o644, 0, b"with an xattr\n");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(0);
    b.append_link(&mut h, "usr/bin/hi", "../../bin/hello")
        .expect("symlink");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(0);
    b.append_link(&mut h, "bin/hello2", "bin/hello")
        .expect("hard link");
    // Bulk, so the download takes more than one read.
    let mut noise = Vec::with_capacity(300_000);
    let mut x: u32 = 12345;
    for _ in 0..300_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push((x >> 16) as u8);
    }
    file(&mut b, "var/bulk", 0o644, 0, &noise);
    let mut made: Vec<String> = Vec::new();
    for (path, data) in extra {
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|x| x.1)
            .unwrap_or_default()
        {
            parent = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}/{part}")
            };
            if !made.contains(&parent) {
                dir(&mut b, &parent, 0o755, 0);
                made.push(parent.clone());
            }
        }
        file(&mut b, path, 0o644, 0, data);
    }
    b.into_inner().expect("tar").finish().expect("gzip")
}

const TREE: &str = "www/install/D12-1.0.0/base-D12-1.0.0.edeploy";

/// A lighttpd site from the shipped example config serving `tarball`.
fn site(files: Vec<(String, String)>, tarball: &[u8]) -> Site {
    let site = Site::start(
        Kind::Lighttpd,
        Options {
            fixtures: Vec::new(),
            files,
            ..Options::default()
        },
    );
    let p = site.path(TREE);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, tarball).expect("write tree");
    site.hand_over();
    site
}

fn base_cmdline(site: &Site) -> String {
    format!(
        "BOOT_IMAGE=vmlinuz SERV=127.0.0.1 HTTP_PORT={p} HSERV=127.0.0.1 HSERV_PORT={p} \
         | console=ttyS0,115200 quiet |",
        p = site.port
    )
}

fn position(haystack: &[String], needle: &str) -> usize {
    haystack
        .iter()
        .position(|c| c.contains(needle))
        .unwrap_or_else(|| panic!("no command with {needle:?} in {haystack:#?}"))
}

fn text_position(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not on the console:\n{text}"))
}

fn state_of(site: &Site) -> String {
    site.read("config/state")
}

// ------------------------------------------------------------ the tests

#[test]
fn installs_a_node_end_to_end_over_http() {
    let site = site(Vec::new(), &edeploy_tarball());
    // pxemngr: a static file stands for its localboot page.
    let px = site.path(&format!("www/pxemngr/localboot/{MAC}"));
    fs::create_dir_all(px.parent().expect("parent")).expect("mkdir");
    fs::write(&px, "ok\n").expect("pxemngr page");
    let conf = site.read("edeploy.conf").replace(
        "[SERVER]\n",
        &format!(
            "[SERVER]\nUSEPXEMNGR = True\nPXEMNGR = /bin/true\n\
             PXEMNGRURL = http://127.0.0.1:{p}/pxemngr/\nMETADATAURL = http://127.0.0.1:{p}/meta/\n",
            p = site.port
        ),
    );
    site.write("edeploy.conf", &conf);

    let node = fake_node(&base_cmdline(&site));
    let root = node.path();
    let exec = Node::new(root);
    let r = run(root, &exec);
    assert!(r.report.result.is_ok(), "{:?}\n{}", r.report, r.screen);
    assert_eq!(r.report.action, Action::Reboot);
    let installed = r.report.result.as_ref().expect("installed");
    assert_eq!(installed.profile, "vm");
    assert_eq!(installed.role.role, "base");
    assert_eq!(installed.role.version, "D12-1.0.0");
    assert_eq!(installed.role.disk, "/dev/vda");

    // The order of the steps, in the commands...
    let c = &r.commands;
    assert_eq!(c[0], "mount -t proc proc ROOT/proc");
    assert_eq!(c[1], "mount -t sysfs sysfs ROOT/sys");
    assert_eq!(c[2], "mount -t devtmpfs devtmpfs ROOT/dev");
    assert_eq!(c[3], "mount -t tmpfs tmpfs ROOT/run");
    assert_eq!(
        c[4],
        "modprobe -abq pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00 \
         pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00 virtio:d00000001v00001AF4"
    );
    assert_eq!(c[5], "modprobe -aq ext4 xfs vfat");
    let dhcp = position(c, "udhcpc -i eth0 -n -q");
    assert!(position(c, "ip link set eth0 up") < dhcp);
    let parted = position(c, "parted -s /dev/vda mklabel msdos");
    assert!(dhcp < parted);
    assert!(parted < position(c, "mkfs.ext4 -q -F /dev/vda1"));
    let mount_chroot = position(c, "mkdir -p /chroot && mount /dev/vda1 /chroot");
    let bind = position(c, "mount -o bind ROOT/dev ROOT/chroot/dev");
    assert!(mount_chroot < bind);
    let grub = position(c, "chroot ROOT/chroot grub-install /dev/vda");
    assert!(bind < grub);
    assert!(
        c[grub].ends_with("[tree present]"),
        "grub-install ran before the tree was there: {c:#?}"
    );
    let mkconfig = position(c, "chroot ROOT/chroot grub-mkconfig -o /boot/grub/grub.cfg");
    assert!(grub < mkconfig);
    let umount = position(c, "umount ROOT/chroot/dev");
    assert!(mkconfig < umount);
    assert!(position(c, "umount ROOT/chroot/sys") < umount);
    assert_eq!(c.last().map(String::as_str), Some("reboot -f"));

    // ...and on the console.
    let s = &r.screen;
    let steps = [
        "edeploy: eDeploy installer starting",
        "edeploy: loading drivers",
        "edeploy: asking for DHCP leases on eth0",
        "edeploy: detecting the hardware",
        &format!(
            "edeploy: asking the eDeploy server at http://127.0.0.1:{}/cgi-bin/upload.cgi",
            site.port
        ),
        "edeploy: profile vm assigned",
        "+ parted -s /dev/vda mklabel msdos",
        "set_role: base D12-1.0.0 on /dev/vda",
        &format!(
            "edeploy: fetching http://127.0.0.1:{}/install/D12-1.0.0/base-D12-1.0.0.edeploy",
            site.port
        ),
        "base-D12-1.0.0.edeploy [####################] 100%",
        "edeploy: copying the configuration files over the tree",
        "edeploy: installing the boot loader on /dev/vda",
        "edeploy: pxemngr: local boot set",
        "edeploy: installed base D12-1.0.0 (profile vm) on /dev/vda",
        "edeploy: rebooting",
    ];
    assert_in_order(s, &steps);
    assert!(!s.contains("install failed"), "{s}");
    // Without VERBOSE the device commands are not echoed, but logged.
    assert!(!s.contains("+ mount -t proc"), "{s}");
    assert!(r.log.contains("+ mount -t proc proc"), "{}", r.log);

    let t = root.join("chroot");
    // conf
    assert_eq!(
        fs::read_to_string(t.join("var/lib/edeploy/conf")).expect("conf"),
        format!(
            "VERS=D12-1.0.0\nROLE=base\nSERV=127.0.0.1\nRSERV=127.0.0.1\nRSERV_PORT=873\n\
             RPATH=install\nHSERV=127.0.0.1\nHSERV_PORT={}\nHPATH=install\n",
            site.port
        )
    );
    // The overlay won over the tree's own files.
    assert_eq!(
        fs::read_to_string(t.join("etc/hostname")).expect("hostname"),
        "vm01\n"
    );
    let interfaces = fs::read_to_string(t.join("etc/network/interfaces")).expect("interfaces");
    assert!(interfaces.contains("auto eth0\n"), "{interfaces}");
    assert!(interfaces.contains("address 10.0.2.15\n"), "{interfaces}");
    assert!(
        interfaces.contains(&format!("hwaddress {MAC}\n")),
        "{interfaces}"
    );
    assert_eq!(
        fs::read_to_string(t.join("etc/resolv.conf")).expect("resolv"),
        "nameserver 10.0.2.3\n"
    );
    // The tree: files, symlink, hard link, owners, modes, xattr.
    assert_eq!(
        fs::read_to_string(t.join("etc/motd")).expect("motd"),
        "the base role\n"
    );
    assert_eq!(
        fs::read_link(t.join("usr/bin/hi")).expect("symlink"),
        PathBuf::from("../../bin/hello")
    );
    let a = fs::metadata(t.join("bin/hello")).expect("hello");
    let b = fs::metadata(t.join("bin/hello2")).expect("hello2");
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "not a hard link");
    assert_eq!(a.mode() & 0o7777, 0o755);
    let notes = fs::metadata(t.join("home/user/notes")).expect("notes");
    assert_eq!(
        (notes.uid(), notes.gid(), notes.mode() & 0o7777),
        (1234, 1234, 0o600)
    );
    let home = fs::metadata(t.join("home/user")).expect("home");
    assert_eq!((home.uid(), home.mode() & 0o7777), (1234, 0o750));
    assert_eq!(
        fs::metadata(t.join("usr/bin/su")).expect("su").mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::metadata(t.join("var/bulk")).expect("bulk").len(),
        300_000
    );
    assert_eq!(
        xattr(&t.join("etc/tagged"), "user.edeploy").as_deref(),
        Some(&b"tagged"[..])
    );
    assert!(!t.join(".edeploy-partial").exists());
    // GRUB's kernel command line: the kept words and cloud-init's source.
    let grub = fs::read_to_string(t.join("etc/default/grub")).expect("grub");
    assert_eq!(
        grub,
        format!(
            "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"console=ttyS0,115200 quiet \
             ds=nocloud-net\\\\;s=http://127.0.0.1:{}/meta/\"\n",
            site.port
        )
    );
    // The logs kept on the installed system.
    let logdir = t.join("var/log/edeploy");
    let log = fs::read_to_string(logdir.join("install.log")).expect("install.log");
    assert!(log.contains("edeploy: profile vm assigned"), "{log}");
    assert!(log.contains("+ mkfs.ext4 -q -F /dev/vda1"), "{log}");
    let hw = fs::read_to_string(logdir.join("hw.json")).expect("hw.json");
    assert!(
        hw.contains("[\"disk\",\"vda\",\"vendor\",\"0x1af4\"]"),
        "{hw}"
    );
    assert_eq!(
        fs::read_to_string(logdir.join("vm.configure")).expect("script"),
        fs::read_to_string(Path::new(support::ROOT).join("share/examples/config/vm.configure"))
            .expect("example")
    );

    // The server kept the hardware list and handed out the first entry.
    let kept = site.read(&format!("hw/{SYSNAME}.hw"));
    assert!(
        kept.contains("('network', 'eth0', 'ipv4', '10.0.2.15')"),
        "{kept}"
    );
    let cmdb = site.read("config/vm.cmdb");
    let first = cmdb
        .lines()
        .find(|l| l.contains("vm01"))
        .unwrap_or_else(|| panic!("{cmdb}"));
    assert!(first.contains("'used': 1"), "{cmdb}");
    assert!(cmdb.contains(MAC), "{cmdb}");
    assert!(state_of(&site).contains("('vm', 9)"), "{}", state_of(&site));
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and buf is as long as given.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(buf)
}

/// A profile whose script fails, ahead of `vm` in the state file.
fn broken_profile() -> Vec<(String, String)> {
    vec![
        ("state".into(), "[('broken', 3), ('vm', 10)]\n".into()),
        (
            "broken.specs".into(),
            "[('disk', '$disk', 'vendor', '0x1af4')]\n".into(),
        ),
        (
            "broken.configure".into(),
            "log(\"about to fail\");\nrun(\"false\");\nset_role(\"base\", \"D12-1.0.0\", \"/dev/\" + var.disk);\n".into(),
        ),
    ]
}

#[test]
fn a_failing_script_uploads_the_log_and_gives_the_install_back() {
    let site = site(broken_profile(), &edeploy_tarball());
    let node = fake_node(&format!("{} UPLOAD_LOG=1", base_cmdline(&site)));
    let root = node.path();
    let exec = Node::new(root);
    let r = run(root, &exec);
    let reason = r.report.result.clone().expect_err("must fail");
    assert!(reason.contains("false"), "{reason}");
    assert_eq!(r.report.action, Action::Halt);
    assert_eq!(r.commands.last().map(String::as_str), Some("poweroff -f"));
    assert!(
        r.screen
            .contains(&format!("edeploy: install failed: {reason}\n")),
        "{}",
        r.screen
    );
    assert!(r.screen.contains("about to fail"), "{}", r.screen);
    assert!(
        r.screen.contains(&format!(
            "edeploy: install log uploaded as {LOG_NAME} on the server"
        )),
        "{}",
        r.screen
    );
    assert!(
        r.screen
            .contains("edeploy: failure of profile broken reported"),
        "{}",
        r.screen
    );
    // Nothing was fetched or installed.
    assert!(!r.commands.iter().any(|c| c.contains("grub-install")));
    assert!(!root.join("chroot").exists());

    // The log reached LOGDIR, with the command line, script and dmesg.
    let gz = fs::read(site.path(&format!("logs/{LOG_NAME}"))).expect("log in LOGDIR");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("gunzip");
    assert!(text.contains("edeploy: install failed: "), "{text}");
    assert!(text.contains("+ false"), "{text}");
    assert!(
        text.contains("===== kernel command line\nBOOT_IMAGE=vmlinuz SERV=127.0.0.1"),
        "{text}"
    );
    assert!(
        text.contains("===== configure script\nlog(\"about to fail\");"),
        "{text}"
    );
    assert!(text.contains("(canned dmesg)"), "{text}");
    // The install was given back: 3 → 2 → 3.
    assert!(
        state_of(&site).contains("('broken', 3)"),
        "{}",
        state_of(&site)
    );
}

#[test]
fn a_cut_download_fails_and_leaves_nothing_half_installed() {
    let full = edeploy_tarball();
    let site = site(Vec::new(), &full[..full.len() / 2]);
    let node = fake_node(&base_cmdline(&site));
    let root = node.path();
    let exec = Node::new(root);
    let r = run(root, &exec);
    let reason = r.report.result.clone().expect_err("must fail");
    assert!(reason.contains("cut or corrupt"), "{reason}");
    assert_eq!(r.report.action, Action::Halt);
    assert_eq!(r.commands.last().map(String::as_str), Some("poweroff -f"));
    assert!(!r.commands.iter().any(|c| c.contains("grub-install")));
    // /chroot is as the script left it: empty.
    let left: Vec<_> = fs::read_dir(root.join("chroot"))
        .expect("chroot")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in /chroot: {left:?}");
    assert!(
        r.screen.contains("edeploy: install failed: "),
        "{}",
        r.screen
    );
    assert!(
        r.screen.contains("edeploy: failure of profile vm reported"),
        "{}",
        r.screen
    );
    assert!(
        state_of(&site).contains("('vm', 10)"),
        "{}",
        state_of(&site)
    );
}

#[test]
fn a_refusal_is_final_and_shows_the_servers_sentence() {
    let site = site(
        vec![(
            "vm.specs".into(),
            "[('disk', '$disk', 'vendor', 'NOPE')]\n".into(),
        )],
        &edeploy_tarball(),
    );
    let node = fake_node(&format!("{} ONFAILURE=reboot", base_cmdline(&site)));
    let root = node.path();
    let exec = Node::new(root);
    let r = run(root, &exec);
    let reason = r.report.result.clone().expect_err("must fail");
    assert!(
        reason.starts_with(&format!(
            "the eDeploy server refused this node (HTTP 404): {SYSNAME}: no profile matches this hardware (vm: "
        )),
        "{reason}"
    );
    assert!(!r.screen.contains("waiting for"), "{}", r.screen);
    assert!(!r.screen.contains("failure of profile"), "{}", r.screen);
    assert_eq!(r.report.action, Action::Reboot);
    assert_eq!(r.commands.last().map(String::as_str), Some("reboot -f"));
}

#[test]
fn an_unreachable_server_is_retried_then_the_console_opens() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    // Nothing listens there any more.
    let node = fake_node(&format!(
        "SERV=127.0.0.1 HTTP_PORT={closed} DEBUG=1 VERBOSE=1"
    ));
    let root = node.path();
    write(root, "usr/sbin/dropbear", "");
    let exec = Node::new(root);
    let r = run(root, &exec);
    let reason = r.report.result.clone().expect_err("must fail");
    let url = format!("http://127.0.0.1:{closed}/cgi-bin/upload.cgi");
    assert!(
        reason.starts_with(&format!(
            "the eDeploy server at {url} did not answer after 3 attempts"
        )),
        "{reason}"
    );
    for n in 1..=2 {
        assert!(
            r.screen.contains(&format!(
                "edeploy: waiting for the eDeploy server at {url}: "
            )),
            "{}",
            r.screen
        );
        assert!(
            r.screen.contains(&format!("(attempt {n}/3)\n")),
            "{}",
            r.screen
        );
    }
    assert!(!r.screen.contains("(attempt 3/3)"), "{}", r.screen);
    assert!(
        r.screen
            .contains("edeploy: warning: DEBUG=1 is deprecated: use ONFAILURE=console"),
        "{}",
        r.screen
    );
    // VERBOSE=1 shows the commands.
    assert!(r.screen.contains("+ mount -t proc proc "), "{}", r.screen);
    assert_eq!(r.report.action, Action::Console);
    let n = r.commands.len();
    assert!(n >= 3, "{:?}", r.commands);
    assert_eq!(
        r.commands[n - 3..],
        [
            "dropbear -R -p 2222 </dev/null >/dev/null 2>&1".to_string(),
            "setsid sh -c 'exec sh -i <ROOT/dev/console >ROOT/dev/console 2>&1'".to_string(),
            "reboot -f".to_string(),
        ]
    );
}

#[test]
fn rsync_extlinux_and_kexec() {
    let site = site(Vec::new(), b"");
    let conf = site.read("edeploy.conf").replace(
        "[SERVER]\n",
        "[SERVER]\nMETADATAURL = http://127.0.0.1/meta/\n",
    );
    site.write("edeploy.conf", &conf);
    let node = fake_node(&format!(
        "SERV=127.0.0.1 HTTP_PORT={} RSERV_PORT=8873 RPATH=/trees/ ONSUCCESS=kexec | console=ttyS0 |",
        site.port
    ));
    let root = node.path();
    // What the rsync server holds: a tree without GRUB.
    let src = tempfile::tempdir().expect("tmp");
    write(src.path(), "boot/vmlinuz-6.1.0-9-amd64", "kernel");
    write(src.path(), "boot/vmlinuz-6.1.0-10-amd64", "kernel");
    write(src.path(), "boot/initrd.img-6.1.0-10-amd64", "initrd");
    write(src.path(), "bin/hello", "hello");
    write(src.path(), "usr/lib/syslinux/mbr/mbr.bin", "mbr");
    let exec = Node::with_rsync(root, Some(src.path()));
    let r = run(root, &exec);
    assert!(r.report.result.is_ok(), "{:?}\n{}", r.report, r.screen);
    let c = &r.commands;
    let rsync = position(
        c,
        "rsync -aHAX --numeric-ids rsync://127.0.0.1:8873/trees/D12-1.0.0/base/ ROOT/chroot/",
    );
    let ext = position(c, "extlinux --install ROOT/chroot/boot/extlinux");
    assert!(rsync < ext);
    assert!(ext < position(c, "dd bs=440 count=1 conv=notrunc if=ROOT/chroot/usr/lib/syslinux/mbr/mbr.bin of=/dev/vda"));
    assert!(!c.iter().any(|x| x.contains("grub")));
    let conf = fs::read_to_string(root.join("chroot/boot/extlinux/extlinux.conf")).expect("conf");
    assert_eq!(
        conf,
        "DEFAULT edeploy\nTIMEOUT 0\nPROMPT 0\n\nLABEL edeploy\n    KERNEL /boot/vmlinuz-6.1.0-10-amd64\n\
         \x20   INITRD /boot/initrd.img-6.1.0-10-amd64\n\
         \x20   APPEND root=/dev/vda1 ro console=ttyS0 ds=nocloud-net;s=http://127.0.0.1/meta/\n"
    );
    assert_eq!(r.report.action, Action::Kexec);
    let n = c.len();
    assert_eq!(
        c[n - 2..],
        [
            "kexec -l ROOT/chroot/boot/vmlinuz-6.1.0-10-amd64 \
             --initrd=ROOT/chroot/boot/initrd.img-6.1.0-10-amd64 \
             '--append=root=/dev/vda1 ro console=ttyS0 ds=nocloud-net;s=http://127.0.0.1/meta/'"
                .to_string(),
            "kexec -e".to_string(),
        ]
    );
    let conf = fs::read_to_string(root.join("chroot/var/lib/edeploy/conf")).expect("conf");
    assert!(
        conf.contains("RSERV_PORT=8873\nRPATH=trees\nHSERV=\n"),
        "{conf}"
    );
}

#[test]
fn embedded_installs_from_a_medium_without_a_server() {
    let node = fake_node("EMBEDDED=/media/key IP=all:none ONSUCCESS=halt");
    let root = node.path();
    let medium = root.join("media/key");
    let example = Path::new(support::ROOT).join("share/examples/config");
    fs::create_dir_all(medium.join("config")).expect("mkdir");
    for e in fs::read_dir(&example).expect("example").flatten() {
        fs::copy(e.path(), medium.join("config").join(e.file_name())).expect("copy");
    }
    let tree = medium.join("install/D12-1.0.0/base-D12-1.0.0.edeploy");
    fs::create_dir_all(tree.parent().expect("parent")).expect("mkdir");
    fs::write(&tree, edeploy_tarball()).expect("tree");
    let exec = Node::new(root);
    let r = run(root, &exec);
    assert!(r.report.result.is_ok(), "{:?}\n{}", r.report, r.screen);
    assert!(
        r.screen
            .contains("edeploy: deciding locally from the medium /media/key"),
        "{}",
        r.screen
    );
    assert!(
        !r.commands.iter().any(|c| c.contains("udhcpc")),
        "{:?}",
        r.commands
    );
    assert_eq!(r.commands.last().map(String::as_str), Some("poweroff -f"));
    let t = root.join("chroot");
    assert_eq!(
        fs::read_to_string(t.join("etc/hostname")).expect("hostname"),
        "vm01\n"
    );
    assert_eq!(
        fs::metadata(t.join("home/user/notes"))
            .expect("notes")
            .uid(),
        1234
    );
    // The decision was committed on the medium, like upload.cgi -f.
    let cmdb = fs::read_to_string(medium.join("config/vm.cmdb")).expect("cmdb");
    assert!(cmdb.contains("'used': 1"), "{cmdb}");
    let state = fs::read_to_string(medium.join("config/state")).expect("state");
    assert!(state.contains("('vm', 9)"), "{state}");
    assert!(medium.join(format!("config/{SYSNAME}.hw")).exists());
    let mode = fs::metadata(t.join("bin/hello"))
        .expect("hello")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[test]
fn a_bad_command_line_fails_with_the_variable_named() {
    let node = fake_node("SERV=10.0.0.1 HTTP_PORT=eighty ONFAILURE=console");
    let root = node.path();
    let exec = Node::new(root);
    let r = run(root, &exec);
    let reason = r.report.result.clone().expect_err("must fail");
    assert_eq!(
        reason,
        "bad kernel command line: HTTP_PORT=eighty: expected a port number (1-65535)"
    );
    assert!(
        r.screen
            .contains(&format!("edeploy: install failed: {reason}\n")),
        "{}",
        r.screen
    );
    // The valid ONFAILURE still applies.
    assert_eq!(r.report.action, Action::Console);
}

// ------------------------------------------------------------- UEFI

const ESP_TYPE_UPPER: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n";
const LINUX_TYPE: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4\n";
/// The partition uuid of the second disk's `vdb1`, where another
/// install of this node lives.
const OTHER_DISK_PARTUUID: &str = "9b2d0e7a-1c4f-4e8b-b3a1-6f0c2d4e8a10";

/// `efibootmgr -v` on the node before the install: an old entry of ours
/// on this disk (0003), one on the other disk (0004), others' entries.
fn efibootmgr_before(order: bool) -> String {
    let mut t = String::from("BootCurrent: 0001\nTimeout: 0 seconds\n");
    if order {
        t.push_str("BootOrder: 0001,0003,0004,0000\n");
    }
    t.push_str(&format!(
        "Boot0000* UiApp\tFvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(462caa21-7614-4503-836e-8ab6f4662331)\n\
Boot0001* UEFI PXEv4 (MAC:525400123456)\tPciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)/IPv4(0.0.0.00.0.0.0,0,0)..BO\n\
Boot0003* eDeploy\tHD(2,GPT,5f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f,0x800,0x80000)/File(\\EFI\\debian\\shimx64.efi)\n\
Boot0004* eDeploy\tHD(1,GPT,{},0x800,0x80000)/File(\\EFI\\debian\\shimx64.efi)\n",
        OTHER_DISK_PARTUUID.to_uppercase()
    ));
    t
}

/// A UEFI node with Secure Boot on: the fake node, `sys/firmware/efi`,
/// `vda1` (the ESP when `esp`) and `vda2` (Linux), as the example script
/// lays them out,, and a second disk
/// whose `vdb1` holds another install.
fn uefi_node(cmdline: &str) -> tempfile::TempDir {
    let t = fake_node(cmdline);
    let r = t.path();
    let var = r.join("sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c");
    fs::create_dir_all(var.parent().expect("parent")).expect("mkdir");
    fs::write(&var, [0x06, 0, 0, 0, 1]).expect("efivar");
    write(r, "sys/block/vda/vda1/partition", "1\n");
    write(r, "sys/block/vda/vda2/partition", "2\n");
    write(r, "sys/block/vdb/vdb1/partition", "1\n");
    t
}

/// How the fake's `efibootmgr` behaves.
#[derive(Clone, Copy)]
enum Nvram {
    Works {
        order: bool,
    },
    /// Every write fails, as with a read-only NVRAM.
    ReadOnly,
}

/// The UEFI node's runner: blkid's answers (`vda1` is the ESP when
/// `esp`), `grub-install` laying Debian's files in `EFI/debian/` of the
/// mounted ESP (plus the `EFI/BOOT/fbx64.efi` `--force-extra-removable`
/// would leave), and `efibootmgr` per `nvram`.
fn uefi_exec(root: &Path, esp: bool, nvram: Nvram) -> Node {
    uefi_exec_from(root, esp, nvram, None)
}

/// [`uefi_exec`] with `rsync` copying `rsync_from`.
fn uefi_exec_from(root: &Path, esp: bool, nvram: Nvram, rsync_from: Option<&Path>) -> Node {
    let blkid = |dev: &str, key: &str, answer: &str| {
        (
            When::line(format!("blkid -p -s {key} -o value {dev}")),
            Reply::stdout(answer),
        )
    };
    let rules = vec![
        blkid(
            "/dev/vda1",
            "PART_ENTRY_TYPE",
            if esp { ESP_TYPE_UPPER } else { LINUX_TYPE },
        ),
        blkid("/dev/vda2", "PART_ENTRY_TYPE", LINUX_TYPE),
        blkid(
            "/dev/vdb1",
            "PART_ENTRY_UUID",
            &format!("{OTHER_DISK_PARTUUID}\n"),
        ),
        (
            When::line("blkid -s UUID -o value /dev/vda1"),
            Reply::stdout("3A1F-9C2E\n"),
        ),
    ];
    let esp_dir = root.join("chroot/boot/efi");
    let hook: ChrootHook = Box::new(move |argv| {
        let prog = argv.first().map(String::as_str);
        if prog == Some("grub-install") {
            let debian = esp_dir.join("EFI/debian");
            let boot = esp_dir.join("EFI/BOOT");
            let made = fs::create_dir_all(&debian).and_then(|_| fs::create_dir_all(&boot));
            if let Err(e) = made {
                return Some(Err(e.into()));
            }
            for (name, data) in [
                ("shimx64.efi", "shim"),
                ("grubx64.efi", "grub"),
                ("mmx64.efi", "mokmanager"),
                ("grub.cfg", "search.fs_uuid 1234 root\n"),
            ] {
                if let Err(e) = fs::write(debian.join(name), data) {
                    return Some(Err(e.into()));
                }
            }
            if let Err(e) = fs::write(boot.join("fbx64.efi"), "fallback") {
                return Some(Err(e.into()));
            }
            return None;
        }
        if prog != Some("efibootmgr") {
            return None;
        }
        let read = argv.get(1).map(String::as_str) == Some("-v");
        Some(Ok(match (nvram, read) {
            (Nvram::Works { order }, true) => CmdOutput {
                stdout: efibootmgr_before(order),
                ..CmdOutput::default()
            },
            (Nvram::Works { .. }, false) => CmdOutput::default(),
            (Nvram::ReadOnly, true) => CmdOutput {
                stdout: efibootmgr_before(true),
                ..CmdOutput::default()
            },
            (Nvram::ReadOnly, false) => CmdOutput {
                status: 5,
                stderr: "Could not delete variable: Read-only file system\n".into(),
                ..CmdOutput::default()
            },
        }))
    });
    Node::build(root, rsync_from, rules, Some(hook))
}

/// The commands from the first `blkid` of the boot-loader step on.
fn boot_loader_commands(c: &[String]) -> Vec<String> {
    let from = position(c, "blkid -p -s PART_ENTRY_TYPE");
    c[from..].to_vec()
}

const SHIM_TREE: &[(&str, &[u8])] = &[
    ("usr/lib/shim/shimx64.efi.signed", b"signed shim"),
    (
        "usr/lib/os-release",
        b"PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n",
    ),
];

fn esp_file(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join("chroot/boot/efi").join(rel))
        .unwrap_or_else(|e| panic!("{rel} on the ESP: {e}"))
}

#[test]
fn installs_a_uefi_node_with_secure_boot() {
    let site = site(Vec::new(), &edeploy_tarball_with(SHIM_TREE));
    let node = uefi_node(&base_cmdline(&site));
    let root = node.path();
    let exec = uefi_exec(root, true, Nvram::Works { order: true });
    let r = run(root, &exec);
    assert!(r.report.result.is_ok(), "{:?}\n{}", r.report, r.screen);
    let c = &r.commands;
    assert_eq!(c[0], "mount -t proc proc ROOT/proc");
    assert_eq!(c[3], "mount -t tmpfs tmpfs ROOT/run");
    assert_eq!(c[4], "modprobe efivarfs");
    assert_eq!(
        c[5],
        "mount -t efivarfs efivarfs ROOT/sys/firmware/efi/efivars"
    );
    assert!(c[6].starts_with("modprobe -abq "), "{c:#?}");
    assert_eq!(
        boot_loader_commands(c),
        [
            "blkid -p -s PART_ENTRY_TYPE -o value /dev/vda1",
            "mount -t vfat /dev/vda1 ROOT/chroot/boot/efi",
            "blkid -s UUID -o value /dev/vda1",
            "mount -o bind ROOT/dev ROOT/chroot/dev",
            "mount -o bind ROOT/proc ROOT/chroot/proc",
            "mount -o bind ROOT/sys ROOT/chroot/sys",
            "mount -o bind ROOT/sys/firmware/efi/efivars ROOT/chroot/sys/firmware/efi/efivars",
            "chroot ROOT/chroot grub-install --target=x86_64-efi --efi-directory=/boot/efi \
             --bootloader-id=debian --uefi-secure-boot --no-nvram [tree present]",
            "chroot ROOT/chroot grub-mkconfig -o /boot/grub/grub.cfg [tree present]",
            "chroot ROOT/chroot efibootmgr -v [tree present]",
            "blkid -p -s PART_ENTRY_UUID -o value /dev/vdb1",
            "chroot ROOT/chroot efibootmgr -b 0003 -B [tree present]",
            "chroot ROOT/chroot efibootmgr -c -d /dev/vda -p 1 -L eDeploy \
             -l '\\EFI\\debian\\shimx64.efi' [tree present]",
            "umount ROOT/chroot/sys/firmware/efi/efivars",
            "umount ROOT/chroot/sys",
            "umount ROOT/chroot/proc",
            "umount ROOT/chroot/dev",
            "umount ROOT/chroot/boot/efi",
            "sync",
            "reboot -f",
        ]
    );
    // The hardware list sent says how the node booted.
    let hw = fs::read_to_string(root.join("chroot/var/log/edeploy/hw.json")).expect("hw.json");
    assert!(
        hw.contains("[\"firmware\",\"boot\",\"mode\",\"uefi\"]"),
        "{hw}"
    );
    assert!(
        hw.contains("[\"firmware\",\"secureboot\",\"state\",\"enabled\"]"),
        "{hw}"
    );
    // The fallback path: shim as BOOTX64.EFI, GRUB, MokManager and the
    // config beside it, and no fbx64.efi.
    assert_eq!(esp_file(root, "EFI/BOOT/BOOTX64.EFI"), "shim");
    assert_eq!(esp_file(root, "EFI/BOOT/grubx64.efi"), "grub");
    assert_eq!(esp_file(root, "EFI/BOOT/mmx64.efi"), "mokmanager");
    assert_eq!(
        esp_file(root, "EFI/BOOT/grub.cfg"),
        "search.fs_uuid 1234 root\n"
    );
    assert!(!root.join("chroot/boot/efi/EFI/BOOT/fbx64.efi").exists());
    assert_eq!(esp_file(root, "EFI/debian/shimx64.efi"), "shim");
    // fstab: the script's line, then the ESP by UUID.
    assert_eq!(
        fs::read_to_string(root.join("chroot/etc/fstab")).expect("fstab"),
        "/dev/vda2 / ext4 errors=remount-ro 0 1\nUUID=3A1F-9C2E /boot/efi vfat umask=0077 0 1\n"
    );
    let s = &r.screen;
    let steps = [
        "edeploy: installing the boot loader on /dev/vda",
        "edeploy: this node boots UEFI: looking for the EFI system partition on /dev/vda",
        "edeploy: mounting the EFI system partition /dev/vda1 on /boot/efi",
        "edeploy: /etc/fstab: UUID=3A1F-9C2E on /boot/efi",
        "edeploy: installing GRUB for x86_64-efi in \\EFI\\debian\\",
        "edeploy: fallback boot path \\EFI\\BOOT\\BOOTX64.EFI: EFI/BOOT/BOOTX64.EFI, \
         EFI/BOOT/grubx64.efi, EFI/BOOT/mmx64.efi, EFI/BOOT/grub.cfg (shim)",
        "edeploy: NVRAM: removed the old entry Boot0003",
        "edeploy: NVRAM: keeping Boot0004 (eDeploy on another disk of this node)",
        "edeploy: NVRAM: entry eDeploy added for /dev/vda partition 1 (\\EFI\\debian\\shimx64.efi)",
        "edeploy: installed base D12-1.0.0 (profile vm) on /dev/vda",
    ];
    assert_in_order(s, &steps);
    // The one warning: the server has no manifest, and no key is trusted.
    assert!(
        !s.lines()
            .any(|l| l.contains("warning") && !l.contains("is installed UNCHECKED")),
        "{s}"
    );
}

#[test]
fn bootorder_keep_sets_the_order_back_and_grub_alone_boots_without_shim() {
    let site = site(Vec::new(), &edeploy_tarball());
    for (order, want) in [
        (
            true,
            "chroot ROOT/chroot efibootmgr -o 0001,0003,0004,0000 [tree present]",
        ),
        (false, "chroot ROOT/chroot efibootmgr -O [tree present]"),
    ] {
        let node = uefi_node(&format!("{} BOOTORDER=keep", base_cmdline(&site)));
        let root = node.path();
        let exec = uefi_exec(root, true, Nvram::Works { order });
        let r = run(root, &exec);
        assert!(r.report.result.is_ok(), "{:?}\n{}", r.report, r.screen);
        let c = &r.commands;
        let create = position(
            c,
            "efibootmgr -c -d /dev/vda -p 1 -L eDeploy -l '\\EFI\\debian\\grubx64.efi'",
        );
        assert_eq!(c[create + 1], want, "{c:#?}");
        assert_eq!(c[create + 2], "umount ROOT/chroot/sys/firmware/efi/efivars");
        // No shim in the tree: GRUB itself on the fallback path.
        assert_eq!(esp_file(root, "EFI/BOOT/BOOTX64.EFI"), "grub");
        assert!(!root.join("chroot/boot/efi/EFI/BOOT/fbx64.efi").exists());
        let kept = if order {
            "edeploy: NVRAM: BootOrder kept as it was (0001,0003,0004,0000)"
        } else {
            "edeploy: NVRAM: BootOrder removed, as there was none"
        };
        assert!(r.screen.contains(kept), "{}", r.screen);
    }
}

#[test]
fn a_uefi_node_without_an_esp_fails_and_says_what_to_add() {
    let site = site(Vec::new(), &edeploy_tarball_with(SHIM_TREE));
    let node = uefi_node(&format!("{} UPLOAD_LOG=1", base_cmdline(&site)));
    let root = node.path();
    let exec = uefi_exec(root, false, Nvram::Works { order: true });
    let r = run(root, &exec);
    let reason = r.report.result.clone().expect_err("must fail");
    let sentence = "/dev/vda has no EFI system partition (its partitions: vda1, vda2): this node \
                    boots UEFI, so its configure script must make one (GPT, a partition with \
                    \"set N esp on\", formatted with mkfs.vfat)";
    assert_eq!(reason, sentence);
    assert!(
        r.screen
            .contains(&format!("edeploy: install failed: {sentence}\n")),
        "{}",
        r.screen
    );
    assert!(
        r.screen.contains(&format!(
            "edeploy: install log uploaded as {LOG_NAME} on the server"
        )),
        "{}",
        r.screen
    );
    assert!(
        r.screen.contains("edeploy: failure of profile vm reported"),
        "{}",
        r.screen
    );
    assert_eq!(r.report.action, Action::Halt);
    assert_eq!(r.commands.last().map(String::as_str), Some("poweroff -f"));
    assert!(!r.commands.iter().any(|c| c.contains("grub-install")));
    assert!(!r.commands.iter().any(|c| c.contains("mount -t vfat")));
    let gz = fs::read(site.path(&format!("logs/{LOG_NAME}"))).expect("log in LOGDIR");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("gunzip");
    assert!(text.contains("has no EFI system partition"), "{text}");
    // The install was given back.
    assert!(
        state_of(&site).contains("('vm', 10)"),
        "{}",
        state_of(&site)
    );
}

#[test]
fn a_read_only_nvram_is_a_warning_and_the_fallback_path_boots() {
    let site = site(Vec::new(), &edeploy_tarball_with(SHIM_TREE));
    let node = uefi_node(&base_cmdline(&site));
    let root = node.path();
    let exec = uefi_exec(root, true, Nvram::ReadOnly);
    let r = run(root, &exec);
    assert!(r.report.result.is_ok(), "{:?}\n{}", r.report, r.screen);
    assert_eq!(r.report.action, Action::Reboot);
    let c = &r.commands;
    // The first write failed: nothing more was tried.
    let del = position(c, "efibootmgr -b 0003 -B");
    assert_eq!(c[del + 1], "umount ROOT/chroot/sys/firmware/efi/efivars");
    assert!(!c.iter().any(|x| x.contains("efibootmgr -c")), "{c:#?}");
    assert!(
        r.screen.contains(
            "edeploy: warning: cannot set the NVRAM boot entry (chroot ROOT/chroot efibootmgr \
             -b 0003 -B: exit status 5: Could not delete variable: Read-only file system): this \
             node will boot through the fallback path \\EFI\\BOOT\\BOOTX64.EFI"
                .replace("ROOT", &root.display().to_string())
                .as_str()
        ),
        "{}",
        r.screen
    );
    assert_eq!(esp_file(root, "EFI/BOOT/BOOTX64.EFI"), "shim");
    assert_eq!(esp_file(root, "EFI/BOOT/grubx64.efi"), "grub");
    assert!(!root.join("chroot/boot/efi/EFI/BOOT/fbx64.efi").exists());
}

#[test]
fn a_uefi_node_needs_grub_in_its_tree() {
    let site = site(Vec::new(), b"");
    let node = uefi_node(&format!(
        "SERV=127.0.0.1 HTTP_PORT={} RSERV_PORT=8873",
        site.port
    ));
    let root = node.path();
    // What the rsync server holds: a tree without GRUB.
    let src = tempfile::tempdir().expect("tmp");
    write(src.path(), "boot/vmlinuz-6.1.0-10-amd64", "kernel");
    write(src.path(), "bin/hello", "hello");
    let exec = uefi_exec_from(root, true, Nvram::Works { order: true }, Some(src.path()));
    let r = run(root, &exec);
    let reason = r.report.result.clone().expect_err("must fail");
    assert!(
        reason.starts_with(
            "this node boots UEFI but the tree has no grub-install: extlinux only boots BIOS nodes"
        ),
        "{reason}"
    );
    assert!(
        r.screen
            .contains("edeploy: install failed: this node boots UEFI"),
        "{}",
        r.screen
    );
    assert!(!r.commands.iter().any(|c| c.starts_with("extlinux")));
    assert!(!r.commands.iter().any(|c| c.contains("blkid")));
}

#[test]
fn a_bios_node_runs_no_uefi_step() {
    let site = site(Vec::new(), &edeploy_tarball_with(SHIM_TREE));
    let node = fake_node(&base_cmdline(&site));
    let root = node.path();
    // The same runner as a UEFI node's: only the firmware differs.
    let exec = uefi_exec(root, true, Nvram::Works { order: true });
    let r = run(root, &exec);
    assert!(r.report.result.is_ok(), "{:?}\n{}", r.report, r.screen);
    let c = &r.commands;
    let bind = position(c, "mount -o bind ROOT/dev ROOT/chroot/dev");
    assert_eq!(
        c[bind..].to_vec(),
        [
            "mount -o bind ROOT/dev ROOT/chroot/dev",
            "mount -o bind ROOT/proc ROOT/chroot/proc",
            "mount -o bind ROOT/sys ROOT/chroot/sys",
            "chroot ROOT/chroot grub-install /dev/vda [tree present]",
            "chroot ROOT/chroot grub-mkconfig -o /boot/grub/grub.cfg [tree present]",
            "umount ROOT/chroot/sys",
            "umount ROOT/chroot/proc",
            "umount ROOT/chroot/dev",
            "sync",
            "reboot -f",
        ]
    );
    assert_eq!(
        c[4],
        "modprobe -abq pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00 \
         pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00 virtio:d00000001v00001AF4"
    );
    assert!(
        !c.iter()
            .any(|x| x.contains("efivarfs") || x.contains("blkid") || x.contains("efibootmgr")),
        "{c:#?}"
    );
    // (The fake grub-install still writes its EFI files; nothing else is
    // laid, and fstab is the script's.)
    assert!(!root.join("chroot/boot/efi/EFI/BOOT/BOOTX64.EFI").exists());
    assert_eq!(
        fs::read_to_string(root.join("chroot/etc/fstab")).expect("fstab"),
        "/dev/vda1 / ext4 errors=remount-ro 0 1\n"
    );
    let hw = fs::read_to_string(root.join("chroot/var/log/edeploy/hw.json")).expect("hw.json");
    assert!(
        hw.contains("[\"firmware\",\"boot\",\"mode\",\"bios\"]"),
        "{hw}"
    );
    assert!(!hw.contains("secureboot"), "{hw}");
}

/// Each of `steps` is on the console `s`, in this order.
fn assert_in_order(s: &str, steps: &[&str]) {
    let mut last = 0;
    for step in steps {
        let at = text_position(s, step);
        assert!(at >= last, "{step:?} out of order on the console:\n{s}");
        last = at;
    }
}

// ------------------------------------------------------------ HTTPS

/// A lighttpd site over HTTPS (a certificate of `pki` for 127.0.0.1)
/// serving `tarball`.
fn tls_site(pki: &support::Pki, tarball: &[u8]) -> Site {
    let site = Site::start(
        Kind::Lighttpd,
        Options {
            fixtures: Vec::new(),
            tls: Some(pki.server("127.0.0.1")),
            ..Options::default()
        },
    );
    let p = site.path(TREE);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, tarball).expect("write tree");
    site.hand_over();
    site
}

fn https_cmdline(site: &Site) -> String {
    format!(
        "BOOT_IMAGE=vmlinuz SERV=127.0.0.1 HTTP_PORT={p} HSERV=127.0.0.1 HSERV_PORT={p} HTTPS=1 \
         | console=ttyS0,115200 quiet |",
        p = site.port
    )
}

#[test]
fn installs_a_node_over_https_with_the_initrd_ca_and_hands_the_ca_to_the_host() {
    let pki = support::Pki::new("edeploy test CA");
    let site = tls_site(&pki, &edeploy_tarball());
    let node = fake_node(&https_cmdline(&site));
    let root = node.path();
    let ca = fs::read(pki.ca()).expect("CA");
    write(root, "etc/edeploy/ca.pem", &String::from_utf8_lossy(&ca));
    let exec = Node::new(root);
    let r = run(root, &exec);
    assert!(
        r.report.result.is_ok(),
        "{:?}\n{}\n{}",
        r.report,
        r.screen,
        site.error_log()
    );
    assert_eq!(r.report.result.as_ref().expect("installed").profile, "vm");
    assert_in_order(
        &r.screen,
        &[
            &format!(
                "edeploy: asking the eDeploy server at https://127.0.0.1:{}/cgi-bin/upload.cgi",
                site.port
            ),
            "edeploy: profile vm assigned",
            &format!(
                "edeploy: fetching https://127.0.0.1:{}/install/D12-1.0.0/base-D12-1.0.0.edeploy",
                site.port
            ),
            "base-D12-1.0.0.edeploy [####################] 100%",
            "edeploy: installed base D12-1.0.0 (profile vm) on /dev/vda",
        ],
    );
    let t = root.join("chroot");
    // The host checks the same servers with the same CA.
    assert_eq!(fs::read(t.join("etc/edeploy/ca.pem")).expect("ca.pem"), ca);
    let mode = fs::metadata(t.join("etc/edeploy/ca.pem"))
        .expect("ca.pem")
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let conf = fs::read_to_string(t.join("var/lib/edeploy/conf")).expect("conf");
    assert!(conf.ends_with("HPATH=install\nHTTPS=1\n"), "{conf}");
    assert_eq!(
        fs::read_to_string(t.join("etc/motd")).expect("motd"),
        "the base role\n"
    );
}

#[test]
fn an_initrd_without_a_ca_refuses_https_and_says_where_the_ca_goes() {
    let pki = support::Pki::new("edeploy test CA");
    let site = tls_site(&pki, &edeploy_tarball());
    let node = fake_node(&https_cmdline(&site));
    let root = node.path();
    let exec = Node::new(root);
    let r = run(root, &exec);
    let why = r.report.result.expect_err("no CA in the initrd");
    assert!(
        why.contains(&format!(
            "https://127.0.0.1:{}/cgi-bin/upload.cgi: refused: no CA certificate is configured",
            site.port
        )),
        "{why}"
    );
    assert!(why.contains("scripts/build-initrd --ca"), "{why}");
    assert!(
        r.screen.contains("edeploy: install failed:"),
        "{}",
        r.screen
    );
    assert!(!root.join("chroot/etc/motd").exists());
}

// ------------------------------------------------------ signed answers

/// The site's `upload.cgi` signs with a new key; returns its public key.
fn signing_site(site: &Site) -> (edeploy::trust::KeyId, String) {
    let (key, pk, sk) = edeploy::trust::SigningKey::generate().expect("a key");
    site.write("server.key", &sk);
    let conf = site.read("edeploy.conf").replace(
        "[SERVER]\n",
        &format!(
            "[SERVER]\nSIGNKEY = {}\n",
            site.path("server.key").display()
        ),
    );
    site.write("edeploy.conf", &conf);
    (key.id(), pk)
}

/// Lays the signed manifest of `tarball` (the site's tree) beside it and
/// signs the archive, with a new operator key; returns its public key. An
/// initrd that trusts a key takes only a signed tree.
fn sign_tree(site: &Site, tarball: &[u8]) -> String {
    use edeploy::archive::manifest::{KeepAll, Manifest};
    let tree = tempfile::tempdir().expect("tempdir");
    edeploy::archive::unpack::unpack_verified(tarball, None, tree.path(), "t", |_| {})
        .expect("unpack");
    let m = Manifest::build(tree.path(), "base", "D12-1.0.0", &KeepAll).expect("manifest");
    let mpath = site.path("www/install/D12-1.0.0/base-D12-1.0.0.manifest");
    m.save(&mpath).expect("save");
    let (key, public, _) = edeploy::trust::SigningKey::generate().expect("a key");
    key.sign_file(&mpath).expect("sign the manifest");
    key.sign_file(&site.path(TREE)).expect("sign the archive");
    site.hand_over();
    public
}

#[test]
fn a_signed_answer_installs_and_the_trusted_keys_go_to_the_installed_tree() {
    let tarball = edeploy_tarball();
    let site = site(Vec::new(), &tarball);
    let (id, pk) = signing_site(&site);
    let ops = sign_tree(&site, &tarball);
    let node = fake_node(&base_cmdline(&site));
    let root = node.path();
    write(root, "etc/edeploy/trusted.d/server.pub", &pk);
    write(root, "etc/edeploy/trusted.d/ops.pub", &ops);
    let exec = Node::new(root);
    let r = run(root, &exec);
    assert!(r.report.result.is_ok(), "{:?}\n{}", r.report, r.screen);
    assert!(!r.screen.contains("WARNING"), "{}", r.screen);
    assert!(
        r.log.contains(&format!(
            "the answer of upload.cgi: signed by trusted key {id}"
        )),
        "{}",
        r.log
    );
    // On the console too (scripts/vm-test checks it there).
    assert!(
        r.screen.contains(&format!(
            "edeploy: the answer of upload.cgi: signed by trusted key {id}"
        )),
        "{}",
        r.screen
    );
    let copied = root.join("chroot/etc/edeploy/trusted.d/server.pub");
    assert_eq!(
        fs::read_to_string(&copied).expect("the key in the tree"),
        pk
    );
    assert_eq!(fs::metadata(&copied).expect("key").mode() & 0o7777, 0o644);
}

#[test]
fn an_unsigned_answer_is_refused_by_an_initrd_with_keys_and_nothing_runs() {
    let site = site(Vec::new(), &edeploy_tarball());
    let (_, pk) = edeploy::trust::SigningKey::generate()
        .map(|(k, pk, _)| (k, pk))
        .expect("a key");
    let mut trusted = edeploy::trust::Trusted::new();
    let id = trusted.add_text(&pk).expect("pk");
    let node = fake_node(&format!("{} ONFAILURE=reboot", base_cmdline(&site)));
    let root = node.path();
    write(root, "etc/edeploy/trusted.d/server.pub", &pk);
    let exec = Node::new(root);
    let r = run(root, &exec);
    let reason = r.report.result.clone().expect_err("must be refused");
    assert!(
        reason.starts_with("the answer of upload.cgi: no signature")
            && reason.contains(&id.to_string()),
        "{reason}"
    );
    assert!(
        r.screen.contains(&format!("install failed: {reason}")),
        "{}",
        r.screen
    );
    // Nothing of the answer was run, and it was not asked again.
    assert!(
        !r.screen.contains("running the configure script"),
        "{}",
        r.screen
    );
    assert!(!r.screen.contains("profile vm assigned"), "{}", r.screen);
    assert!(!r.screen.contains("waiting for"), "{}", r.screen);
    for c in &r.commands {
        assert!(
            !["parted", "mkfs", "chroot"].iter().any(|p| c.contains(p)),
            "{c} was run: {:#?}",
            r.commands
        );
    }
    assert!(!root.join("chroot/etc").exists());
    assert_eq!(r.report.action, Action::Reboot);

    // REQUIRE_SIGNATURES=0 on the command line: accepted, loudly.
    let node = fake_node(&format!("{} REQUIRE_SIGNATURES=0", base_cmdline(&site)));
    let root = node.path();
    write(root, "etc/edeploy/trusted.d/server.pub", &pk);
    let exec = Node::new(root);
    let r = run(root, &exec);
    assert!(r.report.result.is_ok(), "{:?}\n{}", r.report, r.screen);
    assert!(
        r.screen
            .contains("WARNING: the answer of upload.cgi: accepted WITHOUT a signature"),
        "{}",
        r.screen
    );
}

/// A node whose initrd trusts a key installs only the tree whose manifest
/// that key signed: an unsigned one ends in ONFAILURE with nothing in
/// /chroot and no boot loader; once signed (the manifest lists the tree's
/// extended attributes), the same tree installs.
#[test]
fn a_node_that_trusts_a_key_installs_only_the_signed_tree() {
    use edeploy::archive::manifest::{KeepAll, Manifest};
    use edeploy::trust::{SigningKey, TRUSTED_DIR};
    let tarball = edeploy_tarball();
    let site = site(Vec::new(), &tarball);
    // The tree's manifest, as `edeploy pack` would list it.
    let tree = tempfile::tempdir().expect("tempdir");
    edeploy::archive::unpack::unpack_verified(&tarball[..], None, tree.path(), "t", |_| {})
        .expect("unpack");
    let m = Manifest::build(tree.path(), "base", "D12-1.0.0", &KeepAll).expect("manifest");
    let mpath = site.path("www/install/D12-1.0.0/base-D12-1.0.0.manifest");
    m.save(&mpath).expect("save");
    let (key, public, _) = SigningKey::generate().expect("a key");
    // The answers are signed too: the node trusts the server's key.
    let (_, server_pub) = signing_site(&site);
    let trusting_node = || {
        let node = fake_node(&base_cmdline(&site));
        write(node.path(), &format!("{TRUSTED_DIR}/ops.pub"), &public);
        write(
            node.path(),
            &format!("{TRUSTED_DIR}/server.pub"),
            &server_pub,
        );
        node
    };

    let node = trusting_node();
    let root = node.path();
    let r = run(root, &Node::new(root));
    let reason = r.report.result.clone().expect_err("unsigned: refused");
    let murl = format!(
        "http://127.0.0.1:{}/install/D12-1.0.0/base-D12-1.0.0.manifest",
        site.port
    );
    assert!(
        reason.contains(&format!("{murl}: no signature ({murl}.minisig)")),
        "{reason}"
    );
    assert_eq!(r.report.action, Action::Halt);
    assert!(!r.commands.iter().any(|c| c.contains("grub-install")));
    assert_eq!(
        fs::read_dir(root.join("chroot")).expect("chroot").count(),
        0
    );
    assert!(
        r.screen
            .contains(&format!("edeploy: install failed: {murl}: no signature")),
        "{}",
        r.screen
    );

    key.sign_file(&mpath).expect("sign the manifest");
    key.sign_file(&site.path(TREE)).expect("sign the archive");
    site.hand_over();
    let node = trusting_node();
    let root = node.path();
    let r = run(root, &Node::new(root));
    assert!(
        r.report.result.is_ok(),
        "{:?}\n{}",
        r.report.result,
        r.screen
    );
    assert!(
        r.screen.contains(&format!(
            "{murl}: {} entries, the signed manifest of key {}",
            m.entries.len(),
            key.id()
        )),
        "{}",
        r.screen
    );
    // The manifest lists the tree's extended attributes: the archive's
    // own signature is not needed.
    assert!(
        r.screen.contains(
            "base-D12-1.0.0.edeploy: every entry, its extended attributes included, is \
             checked against the signed manifest"
        ),
        "{}",
        r.screen
    );
    assert!(root.join("chroot/bin/hello").exists());
}
