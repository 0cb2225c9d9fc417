//! Hardware detection: each family on small sysfs/procfs trees built in
//! temporary directories, the vendor tools' parsers on captured outputs
//! (answered through a fake command runner), and the real `edeploy-detect`
//! on this machine, matched with a spec written for it.

use std::fs;
use std::path::Path;
use std::process::Command;

use edeploy::detect::{
    self, auxv, cpu, disk, dmi, hpacucli, ipmi, megacli, memory, network, topology, DetectOptions,
};
use edeploy::exec::{Fake, Reply, When};
use edeploy::hw::{self, Line};
use edeploy::matcher::Specs;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(p: &str) -> String {
    fs::read_to_string(format!("{FIX}/{p}")).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn l(c: &str, n: &str, k: &str, v: &str) -> Line {
    [c.into(), n.into(), k.into(), v.into()]
}

/// The lines of `lines` whose class and name are given.
fn of<'a>(lines: &'a [Line], class: &str, name: &str) -> Vec<&'a Line> {
    lines
        .iter()
        .filter(|x| x[0] == class && x[1] == name)
        .collect()
}

fn get<'a>(lines: &'a [Line], c: &str, n: &str, k: &str) -> Option<&'a str> {
    hw::get(lines, c, n, k)
}

/// A directory tree standing for `/`.
struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Tree {
        Tree(tempfile::tempdir().expect("temp dir"))
    }

    fn root(&self) -> &Path {
        self.0.path()
    }

    fn file(&self, rel: &str, content: &str) -> &Tree {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, content).expect("write");
        self
    }

    fn dir(&self, rel: &str) -> &Tree {
        fs::create_dir_all(self.root().join(rel)).expect("mkdir");
        self
    }

    fn link(&self, rel: &str, target: &str) -> &Tree {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, &p).expect("symlink");
        self
    }
}

// ---------------------------------------------------------------- system

#[test]
fn system_product_firmware_kernel_os_from_the_tree() {
    let t = Tree::new();
    t.file("sys/class/dmi/id/product_name", "ProLiant DL360p Gen8\n")
        .file("sys/class/dmi/id/product_sku", "654081-B21\n")
        .file("sys/class/dmi/id/sys_vendor", "HP\n")
        .file("sys/class/dmi/id/product_serial", "CZ3323FDVK  \n")
        .file("sys/class/dmi/id/product_version", "\n")
        .file(
            "sys/class/dmi/id/product_uuid",
            "30313436-3631-5a43-3333-323346445648\n",
        )
        .file("sys/class/dmi/id/board_name", "ProLiant DL360p Gen8\n")
        .file("sys/class/dmi/id/board_vendor", "HP\n")
        .file("sys/class/dmi/id/bios_version", "P71\n")
        .file("sys/class/dmi/id/bios_date", "05/24/2019\n")
        .file("sys/class/dmi/id/bios_vendor", "HP\n")
        .file("proc/sys/kernel/osrelease", "3.10.0-1160.el7.x86_64\n")
        .file("proc/sys/kernel/arch", "x86_64\n")
        .file(
            "proc/cmdline",
            "BOOT_IMAGE=vmlinuz SERV=10.0.0.1 IP=all:dhcp\n",
        )
        .file(
            "etc/os-release",
            "NAME=\"CentOS Linux\"\nVERSION=\"7 (Core)\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\n",
        )
        .file(
            "etc/redhat-release",
            "CentOS Linux release 7.9.2009 (Core)\n",
        );
    let fake = Fake::bare();
    let mut lines = detect::system::system(t.root(), &fake, &DetectOptions::default());
    lines.extend(detect::system::firmware(t.root(), &fake));
    assert_eq!(
        lines,
        vec![
            l(
                "system",
                "product",
                "name",
                "ProLiant DL360p Gen8 (654081-B21)"
            ),
            l("system", "product", "vendor", "HP"),
            l("system", "product", "serial", "CZ3323FDVK"),
            l(
                "system",
                "product",
                "uuid",
                "30313436-3631-5A43-3333-323346445648"
            ),
            l("system", "motherboard", "name", "ProLiant DL360p Gen8"),
            l("system", "motherboard", "vendor", "HP"),
            l("system", "kernel", "version", "3.10.0-1160.el7.x86_64"),
            l("system", "kernel", "arch", "x86_64"),
            l(
                "system",
                "kernel",
                "cmdline",
                "BOOT_IMAGE=vmlinuz SERV=10.0.0.1 IP=all:dhcp"
            ),
            l("system", "os", "vendor", "CentOS"),
            l(
                "system",
                "os",
                "version",
                "CentOS Linux release 7.9.2009 (Core)"
            ),
            // No timedatectl on this fake machine.
            l("system", "rtc", "utc", "unknown"),
            l("firmware", "bios", "version", "P71"),
            l("firmware", "bios", "date", "05/24/2019"),
            l("firmware", "bios", "vendor", "HP"),
        ]
    );
    // The files that exist are never asked to dmidecode; the missing board
    // strings are.
    let calls = fake.lines();
    assert!(!calls.iter().any(|c| c.contains("system-product-name")));
    assert!(calls.contains(&"dmidecode -s baseboard-version".to_string()));
}

#[test]
fn product_name_carries_the_sku_like_edeploy_and_fake_serials_are_replaced() {
    let t = Tree::new();
    t.file("sys/class/dmi/id/product_name", "edeploy_test_vm\n")
        .file("sys/class/dmi/id/product_sku", "\n")
        .file("sys/class/dmi/id/sys_vendor", "kvm\n")
        .file("sys/class/dmi/id/product_serial", "0123456789\n")
        .file(
            "sys/class/dmi/id/product_uuid",
            "abcdef01-2345-6789-abcd-ef0123456789\n",
        );
    let lines = detect::system::product(t.root(), &Fake::bare());
    assert_eq!(
        get(&lines, "system", "product", "name"),
        Some("edeploy_test_vm ()")
    );
    assert_eq!(
        get(&lines, "system", "product", "serial"),
        Some("ABCDEF01-2345-6789-ABCD-EF0123456789")
    );
    // The reference KVM profile's specs match the name with its empty SKU.
    let kvm = hw::parse(&fixture("hw/kvm-test-vm.hw"), "kvm").unwrap();
    assert_eq!(
        get(&lines, "system", "product", "name"),
        get(&kvm, "system", "product", "name")
    );

    let t = Tree::new();
    t.file(
        "sys/class/dmi/id/product_name",
        "Standard PC (i440FX + PIIX, 1996)\n",
    );
    let lines = detect::system::product(t.root(), &Fake::bare());
    assert_eq!(
        lines,
        vec![l(
            "system",
            "product",
            "name",
            "Standard PC (i440FX + PIIX, 1996)"
        )]
    );
}

#[test]
fn dmi_strings_fall_back_to_dmidecode_when_the_kernel_has_none() {
    let t = Tree::new();
    let fake = Fake::bare()
        .answer("dmidecode -s system-product-name", "PowerEdge M520\n")
        .answer("dmidecode -s system-manufacturer", "Dell Inc.\n")
        .answer("dmidecode -s system-serial-number", "9K9PW02\n")
        .on(
            When::line("dmidecode -s system-version"),
            Reply::exit(1, "", ""),
        )
        .answer(
            "dmidecode -s system-uuid",
            "# SMBIOS implementations newer than version 2.7 are not\n\
             # fully supported by this version of dmidecode.\n\
             4C4C4544-004B-3910-8050-B9C04F573032\n",
        )
        .answer("dmidecode -s bios-version", "2.1.3\n")
        .answer("dmidecode -s bios-release-date", "01/20/2014\n")
        .answer("dmidecode -s bios-vendor", "Dell Inc.\n");
    let mut lines = detect::system::product(t.root(), &fake);
    lines.extend(detect::system::firmware(t.root(), &fake));
    assert_eq!(
        lines,
        vec![
            l("system", "product", "name", "PowerEdge M520"),
            l("system", "product", "vendor", "Dell Inc."),
            l("system", "product", "serial", "9K9PW02"),
            l(
                "system",
                "product",
                "uuid",
                "4C4C4544-004B-3910-8050-B9C04F573032"
            ),
            l("firmware", "bios", "version", "2.1.3"),
            l("firmware", "bios", "date", "01/20/2014"),
            l("firmware", "bios", "vendor", "Dell Inc."),
        ]
    );
    // Nothing at all: no line, no error.
    assert!(detect::system::product(t.root(), &Fake::bare()).is_empty());
}

#[test]
fn os_vendor_and_version_like_lsb_release() {
    let cases = [
        (
            vec![(
                "etc/os-release",
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n",
            )],
            "Debian",
            "Debian GNU/Linux 12 (bookworm)",
        ),
        (
            vec![
                ("etc/os-release", "NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 22.04.3 LTS\"\n"),
                (
                    "etc/lsb-release",
                    "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_DESCRIPTION=\"Ubuntu 22.04.3 LTS\"\n",
                ),
            ],
            "Ubuntu",
            "Ubuntu 22.04.3 LTS",
        ),
        (
            vec![(
                "etc/redhat-release",
                "Red Hat Enterprise Linux Server release 6.5 (Santiago)\n",
            )],
            "RedHatEnterpriseServer",
            "Red Hat Enterprise Linux Server release 6.5 (Santiago)",
        ),
        (
            vec![(
                "usr/lib/os-release",
                "NAME='Red Hat Enterprise Linux'\nPRETTY_NAME='Red Hat Enterprise Linux 8.4 (Ootpa)'\n",
            )],
            "RedHatEnterprise",
            "Red Hat Enterprise Linux 8.4 (Ootpa)",
        ),
    ];
    for (files, vendor, version) in cases {
        let t = Tree::new();
        for (p, c) in &files {
            t.file(p, c);
        }
        assert_eq!(
            detect::system::os(t.root()),
            vec![
                l("system", "os", "vendor", vendor),
                l("system", "os", "version", version)
            ],
            "{files:?}"
        );
    }
    // The Dell profile was taken on RHEL 6.5: same values.
    let dell = hw::parse(&fixture("hw/dell-poweredge-m520.hw"), "dell").unwrap();
    assert_eq!(
        get(&dell, "system", "os", "vendor"),
        Some("RedHatEnterpriseServer")
    );
    assert!(detect::system::os(Tree::new().root()).is_empty());
}

#[test]
fn kernel_arch_falls_back_to_the_build_target() {
    let t = Tree::new();
    t.file("proc/sys/kernel/osrelease", "6.1.0-13-amd64\n");
    assert_eq!(
        detect::system::kernel(t.root()),
        vec![
            l("system", "kernel", "version", "6.1.0-13-amd64"),
            l("system", "kernel", "arch", std::env::consts::ARCH),
        ]
    );
}

// ------------------------------------------------------------------ ipmi

const CHANNEL_IPMB: &str = "Channel 0x0 info:\n  Channel Medium Type   : IPMB (I2C)\n  \
                            Channel Protocol Type : IPMB-1.0\n";
const CHANNEL_LAN: &str = "Channel 0x1 info:\n  Channel Medium Type   : 802.3 LAN\n  \
                           Channel Protocol Type : IPMB-1.0\n  Volatile(active) Settings\n    \
                           Alerting            : enabled\n";

#[test]
fn ipmi_channel_and_lan_settings() {
    let t = Tree::new();
    t.file("dev/ipmi0", "");
    let fake = Fake::bare()
        .answer("ipmitool channel info 0", CHANNEL_IPMB)
        .answer("ipmitool channel info 1", CHANNEL_LAN)
        .answer("ipmitool lan print 1", fixture("tool-output/ipmi_lan_info"));
    let opts = DetectOptions {
        ipmi_fake: true,
        load_modules: true,
    };
    let lines = ipmi::detect(t.root(), &fake, &opts);
    assert_eq!(lines[0], l("system", "ipmi", "channel", "1"));
    assert_eq!(
        get(&lines, "ipmi", "lan", "ip-address"),
        Some("10.151.68.13")
    );
    assert_eq!(
        get(&lines, "ipmi", "lan", "mac-address"),
        Some("00:30:48:f4:4d:83")
    );
    assert_eq!(
        get(&lines, "ipmi", "lan", "auth-type-enable"),
        Some("Callback : MD2 MD5 OEM")
    );
    assert_eq!(
        get(&lines, "ipmi", "lan", "802.1q-vlan-id"),
        Some("Disabled")
    );
    assert_eq!(
        get(&lines, "ipmi", "lan", "cipher-suite-priv-max"),
        Some("aaaaXXaaaXXaaXX")
    );
    // Continuation lines (": User : …") are not settings.
    assert_eq!(lines.len(), 1 + 19, "{lines:#?}");
    assert!(!lines.iter().any(|x| x[1] == "ipmi-fake"));
    let calls = fake.lines();
    assert_eq!(calls[..2], ["modprobe ipmi_si", "modprobe ipmi_devintf"]);
    assert!(!calls.iter().any(|c| c == "ipmitool channel info 2"));
}

#[test]
fn ipmi_fake_channel_only_without_a_bmc() {
    let t = Tree::new();
    t.file("proc/cmdline", "SERV=10.0.0.1\n");
    let fake = Fake::bare();
    let on = DetectOptions {
        ipmi_fake: true,
        ..DetectOptions::default()
    };
    assert_eq!(
        ipmi::detect(t.root(), &fake, &on),
        vec![l("system", "ipmi-fake", "channel", "0")]
    );
    assert!(ipmi::detect(t.root(), &fake, &DetectOptions::default()).is_empty());
    // No device node: ipmitool is never run (it could only time out).
    assert!(fake.lines().is_empty());
    // eDeploy's kernel argument asks for it too.
    t.file("proc/cmdline", "SERV=10.0.0.1 fakeipmi\n");
    assert_eq!(
        ipmi::detect(t.root(), &fake, &DetectOptions::default()).len(),
        1
    );
    // A device but no ipmitool: the fake channel is still given when asked.
    t.file("dev/ipmi/0", "");
    assert_eq!(
        ipmi::detect(t.root(), &Fake::bare(), &on),
        vec![l("system", "ipmi-fake", "channel", "0")]
    );
}

// ---------------------------------------------------------------- memory

#[test]
fn memory_total_from_meminfo_then_memory_blocks() {
    let t = Tree::new();
    t.file(
        "proc/meminfo",
        "MemTotal:        2048000 kB\nMemFree:          100000 kB\n",
    );
    assert_eq!(
        memory::memory(t.root(), &Fake::bare()),
        vec![l("memory", "total", "size", "2097152000")]
    );
    // Online hotplug blocks are what is installed (offline ones are not).
    t.file("sys/devices/system/memory/block_size_bytes", "8000000\n")
        .file("sys/devices/system/memory/memory0/online", "1\n")
        .file("sys/devices/system/memory/memory1/online", "1\n")
        .file("sys/devices/system/memory/memory2/online", "0\n");
    assert_eq!(
        memory::memory(t.root(), &Fake::bare()),
        vec![l("memory", "total", "size", "268435456")]
    );
}

#[test]
fn memory_banks_from_dmidecode_are_named_like_edeploy() {
    let t = Tree::new();
    t.file("proc/meminfo", "MemTotal:        2048000 kB\n");
    let fake = Fake::bare().answer("dmidecode -t memory", fixture("detect/dmidecode_memory"));
    let lines = memory::memory(t.root(), &fake);
    // The installed total, not MemTotal.
    assert_eq!(lines[0], l("memory", "total", "size", "34359738368"));
    // A populated bank reads exactly as in the Dell profile eDeploy took.
    let dell = hw::parse(&fixture("hw/dell-poweredge-m520.hw"), "dell").unwrap();
    assert_eq!(
        of(&lines, "memory", "bank:0"),
        of(&dell, "memory", "bank:0")
    );
    assert_eq!(
        of(&lines, "memory", "bank:2"),
        vec![
            &l(
                "memory",
                "bank:2",
                "description",
                "DIMM DDR3 Synchronous [empty]"
            ),
            &l("memory", "bank:2", "slot", "DIMM_A3"),
        ]
    );
    // The flash chip is not a bank.
    assert_eq!(lines.last(), Some(&l("memory", "banks", "count", "3")));
    assert!(of(&lines, "memory", "bank:3").is_empty());
}

#[test]
fn dmidecode_parser_on_several_arrays() {
    let text = "Handle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n\tUse: System Memory\n\n\
                Handle 0x1001, DMI type 16, 23 bytes\nPhysical Memory Array\n\tUse: System Memory\n\n\
                Handle 0x1100, DMI type 17, 40 bytes\nMemory Device\n\tArray Handle: 0x1000\n\
                \tSize: 8 GB\n\tLocator: A1\n\n\
                Handle 0x1101, DMI type 17, 40 bytes\nMemory Device\n\tArray Handle: 0x1001\n\
                \tSize: 8 GB\n\tLocator: B1\n";
    let (lines, total) = memory::banks(&dmi::parse(text));
    assert_eq!(total, 2 * 8 * (1 << 30));
    assert_eq!(get(&lines, "memory", "bank:0:0", "slot"), Some("A1"));
    assert_eq!(get(&lines, "memory", "bank:1:0", "slot"), Some("B1"));
}

// ------------------------------------------------------------------- cpu

/// A `proc/cpuinfo` of `sockets` × `cores` × `threads` Xeons.
fn cpuinfo(sockets: u32, cores: u32, threads: u32, physical_id: bool) -> String {
    let mut s = String::new();
    let mut n = 0;
    for socket in 0..sockets {
        for core in 0..cores {
            for _ in 0..threads {
                s.push_str(&format!("processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 62\n\
                     model name\t: Intel(R) Xeon(R) CPU E5-2420 v2 @ 2.20GHz\nstepping\t: 4\ncpu MHz\t\t: 1200.000\n"));
                if physical_id {
                    s.push_str(&format!("physical id\t: {socket}\n"));
                }
                s.push_str(&format!(
                    "siblings\t: {}\ncore id\t\t: {core}\ncpu cores\t: {cores}\nflags\t\t: fpu vme ht\n\n",
                    cores * threads
                ));
                n += 1;
            }
        }
    }
    s
}

#[test]
fn cpu_sockets_and_logical_cpus_from_cpuinfo() {
    let lines = cpu::cpu_lines(&cpuinfo(2, 2, 2, true), &[]);
    assert_eq!(
        of(&lines, "cpu", "physical_1"),
        vec![
            &l(
                "cpu",
                "physical_1",
                "product",
                "Intel(R) Xeon(R) CPU E5-2420 v2 @ 2.20GHz"
            ),
            &l("cpu", "physical_1", "vendor", "Intel Corp."),
            &l("cpu", "physical_1", "frequency", "1200000000"),
            &l("cpu", "physical_1", "cores", "2"),
            &l("cpu", "physical_1", "threads", "4"),
            &l("cpu", "physical_1", "family", "6"),
            &l("cpu", "physical_1", "model", "62"),
            &l("cpu", "physical_1", "stepping", "4"),
            &l("cpu", "physical_1", "flags", "fpu vme ht"),
        ]
    );
    assert_eq!(get(&lines, "cpu", "physical", "number"), Some("2"));
    assert_eq!(get(&lines, "cpu", "logical", "number"), Some("8"));
    assert!(of(&lines, "cpu", "physical_2").is_empty());
    // No "physical id" (some hypervisors): one socket.
    let lines = cpu::cpu_lines(&cpuinfo(1, 4, 1, false), &[]);
    assert_eq!(get(&lines, "cpu", "physical", "number"), Some("1"));
    assert_eq!(get(&lines, "cpu", "logical", "number"), Some("4"));
}

#[test]
fn cpu_smbios_completes_cpuinfo_like_the_dell_profile() {
    let t = Tree::new();
    t.file("proc/cpuinfo", &cpuinfo(2, 6, 2, true));
    let fake = Fake::bare().answer(
        "dmidecode -t processor",
        fixture("detect/dmidecode_processor"),
    );
    let lines = cpu::cpu(t.root(), &fake);
    let dell = hw::parse(&fixture("hw/dell-poweredge-m520.hw"), "dell").unwrap();
    for key in [
        "physid",
        "product",
        "vendor",
        "frequency",
        "cores",
        "enabled_cores",
        "threads",
    ] {
        for socket in ["physical_0", "physical_1"] {
            assert_eq!(
                get(&lines, "cpu", socket, key),
                get(&dell, "cpu", socket, key),
                "{socket} {key}"
            );
        }
    }
    // The unpopulated third socket is no CPU.
    assert_eq!(get(&lines, "cpu", "physical", "number"), Some("2"));
    assert_eq!(get(&lines, "cpu", "logical", "number"), Some("24"));
}

// ------------------------------------------------------------------ disk

fn block(t: &Tree, name: &str, sectors: u64) {
    t.file(&format!("sys/block/{name}/size"), &format!("{sectors}\n"));
}

#[test]
fn disks_sizes_order_skips_and_ids() {
    let t = Tree::new();
    // 1 TB drive: 1000204886016 bytes → 1000.
    block(&t, "sda", 1_953_525_168);
    t.file("sys/block/sda/device/vendor", "ATA     \n")
        .file("sys/block/sda/device/model", "ST1000NM0033-9ZM\n")
        .file("sys/block/sda/device/rev", "SN04\n")
        .file("sys/block/sda/queue/rotational", "1\n")
        .file("sys/block/sda/queue/scheduler", "noop deadline [cfq] \n")
        .file(
            "sys/block/sda/device/scsi_disk/0:0:0:0/cache_type",
            "write back\n",
        );
    // Exactly 10^9 bytes is 1 GB; one sector less rounds down to 0 and the
    // device is left out, as eDeploy did.
    block(&t, "sdb", 1_953_125);
    block(&t, "sdc", 1_953_124);
    block(&t, "sdaa", 3_907_029_168);
    block(&t, "vda", 8_388_608);
    t.file("sys/block/vda/device/vendor", "0x1af4\n");
    block(&t, "nvme0n1", 1_000_215_216);
    t.file(
        "sys/block/nvme0n1/device/model",
        "Samsung SSD 970 PRO 512GB               \n",
    )
    .file("sys/block/nvme0n1/device/firmware_rev", "1B2QEXP7\n")
    .file("sys/block/nvme0n1/queue/rotational", "0\n");
    for skipped in ["loop0", "ram0", "zram0", "dm-0", "sr0", "md0", "nvme0c0n1"] {
        block(&t, skipped, 100_000_000);
    }
    t.link("dev/disk/by-id/wwn-0x5000c500abcdef01", "../../sda")
        .link("dev/disk/by-id/ata-ST1000NM0033-9ZM_Z1W0ABCD", "../../sda")
        .link(
            "dev/disk/by-id/ata-ST1000NM0033-9ZM_Z1W0ABCD-part1",
            "../../sda1",
        )
        .link(
            "dev/disk/by-id/nvme-Samsung_SSD_970_PRO_512GB_S463NF0M1",
            "../../nvme0n1",
        );
    let lines = disk::disks(t.root());
    let names: Vec<&str> = lines
        .iter()
        .filter(|x| x[2] == "size")
        .map(|x| x[1].as_str())
        .collect();
    assert_eq!(names, ["nvme0n1", "sda", "sdb", "sdaa", "vda"]);
    assert_eq!(lines[0], l("disk", "logical", "count", "5"));
    assert_eq!(
        of(&lines, "disk", "sda"),
        vec![
            &l("disk", "sda", "size", "1000"),
            &l("disk", "sda", "vendor", "ATA"),
            &l("disk", "sda", "model", "ST1000NM0033-9ZM"),
            &l("disk", "sda", "rev", "SN04"),
            &l("disk", "sda", "rotational", "1"),
            &l("disk", "sda", "scheduler", "cfq"),
            &l("disk", "sda", "Write Cache Enable", "1"),
            &l("disk", "sda", "Read Cache Disable", "0"),
            &l("disk", "sda", "id", "ata-ST1000NM0033-9ZM_Z1W0ABCD"),
            &l("disk", "sda", "id", "wwn-0x5000c500abcdef01"),
        ]
    );
    assert_eq!(get(&lines, "disk", "sdb", "size"), Some("1"));
    assert_eq!(get(&lines, "disk", "sdaa", "size"), Some("2000"));
    assert_eq!(
        of(&lines, "disk", "vda"),
        vec![
            &l("disk", "vda", "size", "4"),
            &l("disk", "vda", "vendor", "0x1af4")
        ]
    );
    assert_eq!(get(&lines, "disk", "nvme0n1", "size"), Some("512"));
    assert_eq!(get(&lines, "disk", "nvme0n1", "rev"), Some("1B2QEXP7"));
    assert_eq!(get(&lines, "disk", "nvme0n1", "rotational"), Some("0"));
    assert_eq!(
        get(&lines, "disk", "nvme0n1", "id"),
        Some("nvme-Samsung_SSD_970_PRO_512GB_S463NF0M1")
    );
    assert!(lines.iter().all(|x| !x[1].starts_with("sdc")
        && !["loop0", "ram0", "zram0", "dm-0", "sr0", "md0", "nvme0c0n1"]
            .contains(&x[1].as_str())));
}

#[test]
fn disk_sizes_round_down_to_decimal_gigabytes() {
    assert_eq!(disk::size_gb(0), 0);
    assert_eq!(disk::size_gb(1_953_124), 0);
    assert_eq!(disk::size_gb(1_953_125), 1);
    // The KVM guest's 4 GiB disk and the virtio VM's 256 GiB disk.
    assert_eq!(disk::size_gb(8_388_608), 4);
    assert_eq!(disk::size_gb(536_870_912), 274);
    assert!(disk::is_disk("xvdb") && disk::is_disk("hdc") && !disk::is_disk("nvme0"));
    assert!(!disk::is_disk("sda1x") && !disk::is_disk("sr0") && !disk::is_disk("mmcblk0"));
}

#[test]
fn no_disks_is_a_count_of_zero() {
    assert_eq!(
        disk::disks(Tree::new().root()),
        vec![l("disk", "logical", "count", "0")]
    );
}

// --------------------------------------------------------------- network

const PCI_IDS: &str = "# pci.ids excerpt\n\
14e4  Broadcom Inc. and subsidiaries\n\
\t1657  NetXtreme BCM5719 Gigabit Ethernet PCIe\n\
\t\t103c 169d  Ethernet 1Gb 4-port 331FLR Adapter\n\
\t1659  NetXtreme BCM5721 Gigabit Ethernet PCI Express\n\
1af4  Red Hat, Inc.\n\
\t1000  Virtio network device\n";

fn nic(t: &Tree, name: &str, dev: &str, subsystem: &str, driver: &str, ids: (&str, &str)) {
    t.dir(&format!("sys/{dev}"))
        .file(&format!("sys/{dev}/vendor"), &format!("{}\n", ids.0))
        .file(&format!("sys/{dev}/device"), &format!("{}\n", ids.1))
        .link(
            &format!("sys/{dev}/subsystem"),
            &format!("../../../bus/{subsystem}"),
        )
        .link(
            &format!("sys/{dev}/driver"),
            &format!("../../../bus/{subsystem}/drivers/{driver}"),
        )
        .link(
            &format!("sys/class/net/{name}/device"),
            &format!("../../../{dev}"),
        );
}

fn network_tree() -> Tree {
    let t = Tree::new();
    nic(
        &t,
        "eth0",
        "devices/pci0000:00/0000:03:00.0",
        "pci",
        "tg3",
        ("0x14e4", "0x1657"),
    );
    t.file("sys/class/net/eth0/address", "D8:9D:67:1A:D0:FC\n")
        .file("sys/class/net/eth0/carrier", "1\n")
        .file("sys/class/net/eth0/operstate", "up\n")
        .file("sys/class/net/eth0/speed", "1000\n")
        .file("sys/class/net/eth0/duplex", "full\n");
    nic(
        &t,
        "eth1",
        "devices/pci0000:00/0000:03:00.1",
        "pci",
        "tg3",
        ("0x14e4", "0x1657"),
    );
    t.file("sys/class/net/eth1/address", "d8:9d:67:1a:d0:fd\n")
        .file("sys/class/net/eth1/carrier", "0\n")
        .file("sys/class/net/eth1/speed", "-1\n")
        .file("sys/class/net/eth1/duplex", "unknown\n");
    // virtio: the virtio device's own ids, no pci.ids lookup.
    nic(
        &t,
        "ens3",
        "devices/pci0000:00/0000:00:03.0/virtio0",
        "virtio",
        "virtio_net",
        ("0x1af4", "0x0001"),
    );
    t.file("sys/class/net/ens3/address", "52:54:00:12:34:56\n")
        .file("sys/class/net/ens3/operstate", "down\n");
    // Virtual interfaces have no device.
    t.file("sys/class/net/lo/address", "00:00:00:00:00:00\n")
        .file("sys/class/net/br0/address", "d8:9d:67:1a:d0:fc\n")
        .file("usr/share/misc/pci.ids", PCI_IDS);
    t
}

const IP_ADDR: &str = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
2: eth0    inet 10.66.6.249/24 brd 10.66.6.255 scope global eth0\\       valid_lft forever preferred_lft forever\n\
2: eth0    inet 10.66.6.250/24 scope global secondary eth0\\       valid_lft forever preferred_lft forever\n\
5: br0    inet 192.168.122.1/24 brd 192.168.122.255 scope global br0\\       valid_lft forever preferred_lft forever\n";

#[test]
fn network_interfaces_from_sysfs_ip_and_ethtool() {
    let t = network_tree();
    let fake = Fake::bare()
        .answer("ip -o -4 addr show", IP_ADDR)
        .answer(
            "ethtool ens3",
            "Settings for ens3:\n\tLink detected: no\n",
        )
        .answer(
            "ethtool eth0",
            "Settings for eth0:\n\tSpeed: 1000Mb/s\n\tDuplex: Full\n\tAuto-negotiation: on\n\tLink detected: yes\n",
        )
        .answer(
            "ethtool -a eth0",
            "Pause parameters for eth0:\nAutonegotiate:\ton\nRX:\t\ton\nTX:\t\toff\n",
        )
        .answer("ethtool -k eth0", fixture("tool-output/ethtool_k"))
        .answer("ethtool eth1", "Settings for eth1:\n\tAuto-negotiation: on\n");
    let lines = network::network(t.root(), &fake);
    let ifaces: Vec<&str> = lines
        .iter()
        .filter(|x| x[2] == "serial")
        .map(|x| x[1].as_str())
        .collect();
    assert_eq!(ifaces, ["ens3", "eth0", "eth1"]);
    let eth0 = of(&lines, "network", "eth0");
    assert_eq!(
        eth0[..17],
        [
            &l("network", "eth0", "serial", "d8:9d:67:1a:d0:fc"),
            &l(
                "network",
                "eth0",
                "vendor",
                "Broadcom Inc. and subsidiaries"
            ),
            &l(
                "network",
                "eth0",
                "product",
                "NetXtreme BCM5719 Gigabit Ethernet PCIe"
            ),
            &l("network", "eth0", "businfo", "pci@0000:03:00.0"),
            &l("network", "eth0", "size", "1000000000"),
            &l("network", "eth0", "ipv4", "10.66.6.249"),
            &l("network", "eth0", "ipv4-netmask", "255.255.255.0"),
            &l("network", "eth0", "ipv4-cidr", "24"),
            &l("network", "eth0", "ipv4-network", "10.66.6.0"),
            &l("network", "eth0", "link", "yes"),
            &l("network", "eth0", "driver", "tg3"),
            &l("network", "eth0", "duplex", "full"),
            &l("network", "eth0", "speed", "1Gbit/s"),
            &l("network", "eth0", "autonegotiation", "on"),
            &l("network", "eth0", "Autonegotiate", "on"),
            &l("network", "eth0", "RX", "on"),
            &l("network", "eth0", "TX", "off"),
        ]
    );
    assert_eq!(
        get(
            &lines,
            "network",
            "eth0",
            "tx-checksumming/tx-checksum-ipv4"
        ),
        Some("off [fixed]")
    );
    assert_eq!(
        get(&lines, "network", "eth0", "rx-checksumming"),
        Some("on")
    );
    assert_eq!(
        of(&lines, "network", "eth1"),
        vec![
            &l("network", "eth1", "serial", "d8:9d:67:1a:d0:fd"),
            &l(
                "network",
                "eth1",
                "vendor",
                "Broadcom Inc. and subsidiaries"
            ),
            &l(
                "network",
                "eth1",
                "product",
                "NetXtreme BCM5719 Gigabit Ethernet PCIe"
            ),
            &l("network", "eth1", "businfo", "pci@0000:03:00.1"),
            &l("network", "eth1", "link", "no"),
            &l("network", "eth1", "driver", "tg3"),
            &l("network", "eth1", "autonegotiation", "on"),
        ]
    );
    assert_eq!(
        of(&lines, "network", "ens3"),
        vec![
            &l("network", "ens3", "serial", "52:54:00:12:34:56"),
            &l("network", "ens3", "vendor", "0x1af4"),
            &l("network", "ens3", "product", "0x0001"),
            &l("network", "ens3", "businfo", "virtio@0"),
            &l("network", "ens3", "link", "no"),
            &l("network", "ens3", "driver", "virtio_net"),
        ]
    );
}

#[test]
fn network_without_tools_still_reports_sysfs() {
    let t = network_tree();
    fs::remove_file(t.root().join("usr/share/misc/pci.ids")).unwrap();
    let fake = Fake::bare();
    let lines = network::network(t.root(), &fake);
    assert_eq!(get(&lines, "network", "eth0", "vendor"), Some("0x14e4"));
    assert_eq!(get(&lines, "network", "eth0", "link"), Some("yes"));
    assert_eq!(get(&lines, "network", "eth0", "ipv4"), None);
    // ethtool is looked for once, not once per interface.
    let ethtool = fake
        .lines()
        .iter()
        .filter(|c| c.starts_with("ethtool"))
        .count();
    assert_eq!(ethtool, 1);
}

#[test]
fn network_helpers() {
    assert_eq!(network::netmask(23).to_string(), "255.255.254.0");
    assert_eq!(network::netmask(0).to_string(), "0.0.0.0");
    assert_eq!(network::netmask(32).to_string(), "255.255.255.255");
    for (mbps, text) in [
        (10, "10Mbit/s"),
        (100, "100Mbit/s"),
        (1000, "1Gbit/s"),
        (2500, "2500Mbit/s"),
        (10_000, "10Gbit/s"),
        (25_000, "25Gbit/s"),
        (100_000, "100Gbit/s"),
    ] {
        assert_eq!(network::lshw_speed(mbps), text);
    }
    let addrs = network::parse_ip_addr(
        "7: eth0.100@eth0    inet 10.1.0.2/16 brd 10.1.255.255 scope global eth0.100\n\
         8: tun0    inet 10.8.0.1 peer 10.8.0.2/32 scope global tun0\n",
    );
    assert_eq!(addrs[0].0, "eth0.100");
    assert_eq!(addrs[0].2, 16);
    assert_eq!(
        (addrs[1].1.to_string(), addrs[1].2),
        ("10.8.0.1".into(), 32)
    );
    // The Dell profile's speeds were printed the same way.
    let dell = hw::parse(&fixture("hw/dell-poweredge-m520.hw"), "dell").unwrap();
    assert_eq!(get(&dell, "network", "eth0", "speed"), Some("1Gbit/s"));
}

// ------------------------------------------------------------ hpacucli

#[test]
fn hpacucli_parsers_on_captures() {
    assert_eq!(
        hpacucli::parse_ctrl_all_show(&fixture("detect/hpacucli_ctrl_all_show")),
        vec![hpacucli::Controller {
            slot: 2,
            name: "Smart Array P420".into(),
            serial: "PDKRH0ARH4F1R6".into(),
        }]
    );
    assert_eq!(
        hpacucli::parse_ctrl_all_show(
            "\nSmart Array P420i in Slot 0 (Embedded)    (sn: 5001438025E9D500)\n\n"
        )[0]
        .slot,
        0
    );
    let pds = hpacucli::parse_pd_all_show(&fixture("detect/hpacucli_pd_all_show"));
    assert_eq!(pds.len(), 8);
    assert_eq!(
        pds[0],
        hpacucli::Drive {
            array: "A".into(),
            id: "2I:1:7".into(),
            first: "Solid State SATA".into(),
            second: "100 GB".into(),
            status: "OK".into(),
        }
    );
    assert_eq!((pds[2].id.as_str(), pds[2].array.as_str()), ("1I:1:1", "B"));
    let lds = hpacucli::parse_ld_all_show(&fixture("detect/hpacucli_ld_all_show"));
    assert_eq!(lds.len(), 7);
    assert_eq!(
        (lds[0].id.as_str(), lds[0].first.as_str()),
        ("1", "93.1 GB")
    );

    let ld = hpacucli::parse_ld_show(&fixture("tool-output/ctrl_ld_show"));
    let want = [
        ("Logical Drive", "1"),
        ("Size", "93.1 GB"),
        ("Fault Tolerance", "1"),
        ("Heads", "255"),
        ("Sectors Per Track", "32"),
        ("Cylinders", "23934"),
        ("Strip Size", "256 KB"),
        ("Full Stripe Size", "256 KB"),
        ("Status", "OK"),
        ("Caching", "Enabled"),
        ("Unique Identifier", "600508B1001CE81A48ACAE0E3331C2F6"),
        ("Disk Name", "/dev/sda"),
        ("Mount Points", "None"),
        ("Logical Drive Label", "A299BBB1PDKRH0ARH4F1R6D4B9"),
        ("Mirror Group 0", "2I:1:7"),
        ("Mirror Group 1", "2I:1:8"),
        ("Drive Type", "Data"),
        ("Caching Association", "None"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(ld, want);
    // hpssacli prints two settings on one line.
    let ld = hpacucli::parse_ld_show(&fixture("detect/hpssacli_ld_show"));
    let find = |k: &str| ld.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    assert_eq!(find("Disk Name"), Some("/dev/sda"));
    assert_eq!(find("Mount Points"), Some("None"));
    assert_eq!(
        find("Logical Drive Label"),
        Some("01B8A4585001438025E9D500  21EF")
    );

    let ctrl = hpacucli::parse_ctrl_show(&fixture("detect/hpacucli_ctrl_show"));
    let find = |k: &str| ctrl.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    assert_eq!(ctrl.len(), 45);
    assert_eq!(find("controller_temperature_c"), Some("49"));
    assert_eq!(
        find("pci_address_domain:bus:device.function"),
        Some("0000:23:00.0")
    );
    assert_eq!(find("battery/capacitor_count"), Some("1"));
    // Repeated sensor blocks keep the last value.
    assert_eq!(find("sensor_id"), Some("2"));
    assert_eq!(find("slot"), None);

    let pd = hpacucli::parse_pd_detail(&fixture("detect/hpacucli_pd_show"));
    assert_eq!(pd.len(), 1);
    assert_eq!(pd[0].0, "2I:1:8");
    assert_eq!(pd[0].1.len(), 20);
    assert_eq!(pd[0].1[0], ("array".to_string(), "A".to_string()));
    assert!(pd[0]
        .1
        .contains(&("model".to_string(), "ATA MK0100GCTYU".to_string())));
    assert!(pd[0]
        .1
        .contains(&("current_temperature_c".to_string(), "11".to_string())));
}

#[test]
fn hpacucli_detect_through_the_seam() {
    let fake = Fake::bare()
        .answer(
            "hpacucli ctrl all show",
            fixture("detect/hpacucli_ctrl_all_show"),
        )
        .answer(
            "hpacucli ctrl slot=2 show",
            fixture("detect/hpacucli_ctrl_show"),
        )
        .answer(
            "hpacucli ctrl slot=2 pd all show",
            fixture("detect/hpacucli_pd_all_show"),
        )
        .answer(
            "hpacucli ctrl slot=2 pd all show detail",
            fixture("detect/hpacucli_pd_show"),
        )
        .answer(
            "hpacucli ctrl slot=2 ld all show",
            fixture("detect/hpacucli_ld_all_show"),
        )
        .answer(
            "hpacucli ctrl slot=2 ld 1 show",
            fixture("tool-output/ctrl_ld_show"),
        );
    let lines = hpacucli::detect(&fake);
    assert_eq!(lines[0], l("hpa", "slots", "count", "1"));
    assert_eq!(
        get(&lines, "hpa", "slot_2", "firmware_version"),
        Some("1.65-0")
    );
    assert_eq!(
        of(&lines, "disk", "1I:1:1"),
        vec![
            &l("disk", "1I:1:1", "type", "SATA"),
            &l("disk", "1I:1:1", "slot", "2"),
            &l("disk", "1I:1:1", "size", "1000"),
        ]
    );
    let d8 = of(&lines, "disk", "2I:1:8");
    assert_eq!(d8[2], &l("disk", "2I:1:8", "size", "100"));
    assert_eq!(
        get(&lines, "disk", "2I:1:8", "model"),
        Some("ATA MK0100GCTYU")
    );
    assert_eq!(
        get(&lines, "hpa", "slot_2/ld_1", "disk_name"),
        Some("/dev/sda")
    );
    assert_eq!(get(&lines, "hpa", "slot_2/ld_1", "size"), Some("93.1"));
    assert_eq!(
        get(&lines, "hpa", "slot_2/ld_1", "mirror_group_1"),
        Some("2I:1:8")
    );
    let n = lines.len();
    assert_eq!(lines[n - 2], l("disk", "hpa", "size", "6200.00"));
    assert_eq!(lines[n - 1], l("disk", "hpa", "count", "8"));
    // The newer tools were looked for first.
    let calls = fake.lines();
    assert_eq!(
        calls[..2],
        ["ssacli ctrl all show", "hpssacli ctrl all show"]
    );
    // The HP profile eDeploy took has the same shape for its drives.
    let hp = hw::parse(&fixture("hw/hp-proliant-dl360p-gen8.hw"), "hp").unwrap();
    let keys = |ls: Vec<&Line>| ls.iter().map(|x| x[2].clone()).collect::<Vec<_>>();
    assert_eq!(
        keys(of(&hp, "disk", "1I:1:1")),
        keys(of(&lines, "disk", "1I:1:1"))
    );
}

#[test]
fn no_raid_tool_no_lines() {
    let fake = Fake::bare();
    assert!(hpacucli::detect(&fake).is_empty());
    assert!(megacli::detect(&fake).is_empty());
    // A tool that answers but sees no controller.
    let fake = Fake::bare()
        .answer(
            "ssacli ctrl all show",
            "\nError: No controllers detected.\n",
        )
        .answer(
            "megacli -adpCount -NoLog",
            " \nController Count: 0.\n \nExit Code: 0x00",
        );
    assert!(hpacucli::detect(&fake).is_empty());
    assert!(megacli::detect(&fake).is_empty());
}

// -------------------------------------------------------------- megacli

#[test]
fn megacli_parsers_on_captures() {
    assert_eq!(
        megacli::parse_adp_count(&fixture("tool-output/megacli_adpcount")),
        1
    );
    let info = megacli::parse_output(&fixture("tool-output/megacli_adp_all_info"));
    let got: Vec<(&str, &str)> = info.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        got,
        [
            ("ProductName", "PERC H710 Mini"),
            ("SerialNo", "29F026R"),
            ("FwPackageBuild", "21.1.0-0007"),
            ("VirtualDrives", "1"),
            ("Degraded", "0"),
            ("Offline", "0"),
            ("PhysicalDevices", "7"),
            ("Disks", "6"),
            ("CriticalDisks", "0"),
            ("FailedDisks", "0"),
        ]
    );
    let enc = megacli::parse_enc_info(&fixture("tool-output/megacli_enc"));
    assert_eq!(enc.len(), 2);
    let e = |i: usize, k: &str| enc[i].get(k).map(String::as_str);
    assert_eq!(
        (e(0, "Enclosure"), e(0, "DeviceId")),
        (Some("0"), Some("6"))
    );
    assert_eq!(e(0, "NumberOfSlots"), Some("12"));
    assert_eq!(
        (e(1, "Enclosure"), e(1, "DeviceId")),
        (Some("1"), Some("252"))
    );
    assert_eq!(e(1, "NumberOfSlots"), Some("8"));
    assert_eq!(e(0, "Enclosure0"), None);

    let ld = megacli::parse_output(&fixture("tool-output/megacli_ld_get_info"));
    assert_eq!(ld.get("Size").map(String::as_str), Some("465.25 GB"));
    assert_eq!(ld.get("Name").map(String::as_str), Some(""));
    assert_eq!(
        ld.get("CanSpinUpIn1Minute").map(String::as_str),
        Some("Yes")
    );
    assert_eq!(
        ld.get("Ld'SIoProfileSupportsMaxPowerSavingsWithCachedWrites")
            .map(String::as_str),
        Some("No")
    );
    assert_eq!(ld.len(), 24);
    // The logical drive lines carry eDeploy's names, in its order.
    let lines = megacli::ldisk_lines("disk0", &ld);
    let dell = hw::parse(&fixture("hw/dell-poweredge-m520.hw"), "dell").unwrap();
    let keys = |ls: Vec<&Line>| ls.iter().map(|x| x[2].clone()).collect::<Vec<_>>();
    assert_eq!(
        keys(lines.iter().collect()),
        keys(of(&dell, "ldisk", "disk0"))
    );
    assert_eq!(get(&lines, "ldisk", "disk0", "Size"), Some("465.25"));
    assert_eq!(
        get(&lines, "ldisk", "disk0", "raid_level"),
        Some("Primary-1, Secondary-0, RAID Level Qualifier-0")
    );

    let pds = megacli::parse_pd_list(&fixture("detect/megacli_pdlist"));
    assert_eq!(pds.len(), 2);
    let (lines, size) = megacli::pdisk_lines("disk1", &pds[0], 1).unwrap();
    assert_eq!(
        lines[..4],
        [
            l("pdisk", "disk1", "ctrl", "1"),
            l("pdisk", "disk1", "type", "SAS"),
            l("pdisk", "disk1", "id", "32:1"),
            l("pdisk", "disk1", "size", "278.875"),
        ]
    );
    assert_eq!(size, 278.875);
    assert_eq!(
        get(&lines, "pdisk", "disk1", "InquiryData[1]"),
        Some("ST300MM0006")
    );
    assert_eq!(
        get(&lines, "pdisk", "disk1", "Wwn"),
        Some("5000C5007272C288")
    );
    let (lines, _) = megacli::pdisk_lines("disk25", &pds[1], 1).unwrap();
    assert_eq!(
        get(&lines, "pdisk", "disk25", "DriveTemperature"),
        Some("42")
    );
    assert_eq!(
        get(&lines, "pdisk", "disk25", "DriveTemperature_units"),
        Some("Celsius")
    );
    assert!(!lines.iter().any(|x| x[2] == "ExitCode"));
    // The Dell profile's physical drives read the same way.
    let dell_keys: Vec<String> = of(&dell, "pdisk", "disk0")
        .iter()
        .map(|x| x[2].clone())
        .collect();
    assert_eq!(dell_keys, ["ctrl", "type", "id", "size"]);
}

#[test]
fn megacli_detect_through_the_seam() {
    let fake = Fake::bare()
        .on(
            When::line("megacli -adpCount -NoLog"),
            Reply::exit(1, fixture("tool-output/megacli_adpcount"), ""),
        )
        .answer(
            "megacli -AdpAllInfo -a0 -NoLog",
            fixture("tool-output/megacli_adp_all_info"),
        )
        .answer(
            "megacli -EncInfo -a0 -NoLog",
            fixture("tool-output/megacli_enc"),
        )
        .answer(
            "megacli -PDList -a0 -NoLog",
            fixture("detect/megacli_pdlist"),
        )
        .on(
            When::line("megacli -LDGetNum -a0 -NoLog"),
            Reply::exit(
                1,
                "\nNumber of Virtual Drives Configured on Adapter 0: 1\n\nExit Code: 0x01\n",
                "",
            ),
        )
        .answer(
            "megacli -LDInfo -L0 -a0 -NoLog",
            fixture("tool-output/megacli_ld_get_info"),
        );
    let lines = megacli::detect(&fake);
    assert_eq!(
        get(&lines, "megaraid", "Controller_0", "ProductName"),
        Some("PERC H710 Mini")
    );
    assert_eq!(
        get(&lines, "megaraid", "Controller_0/Enclosure_1", "DeviceId"),
        Some("252")
    );
    assert_eq!(get(&lines, "pdisk", "disk1", "id"), Some("32:1"));
    assert_eq!(get(&lines, "pdisk", "disk25", "id"), Some("32:25"));
    assert_eq!(get(&lines, "ldisk", "disk0", "state"), Some("Optimal"));
    let n = lines.len();
    assert_eq!(lines[n - 2], l("pdisk", "all", "size", "557.75"));
    assert_eq!(lines[n - 1], l("disk", "megaraid", "count", "2"));
}

// ----------------------------------------------------------- infiniband

#[test]
fn infiniband_ports_from_sysfs() {
    let t = Tree::new();
    let ca = "sys/class/infiniband/mlx4_0";
    t.file(&format!("{ca}/hca_type"), "MT4099\n")
        .file(&format!("{ca}/fw_ver"), "2.11.500\n")
        .file(&format!("{ca}/hw_rev"), "0\n")
        .file(&format!("{ca}/node_guid"), "0002:c903:0010:f5c0\n")
        .file(&format!("{ca}/sys_image_guid"), "0002:c903:0010:f5c3\n");
    for (port, state, phys, rate, lid, gid) in [
        (
            "1",
            "4: ACTIVE",
            "5: LinkUp",
            "40 Gb/sec (4X QDR)",
            "0xa",
            "f5c1",
        ),
        (
            "2",
            "1: DOWN",
            "2: Polling",
            "10 Gb/sec (4X)",
            "0x0",
            "f5c2",
        ),
    ] {
        let p = format!("{ca}/ports/{port}");
        t.file(&format!("{p}/state"), state)
            .file(&format!("{p}/phys_state"), phys)
            .file(&format!("{p}/rate"), rate)
            .file(&format!("{p}/lid"), lid)
            .file(&format!("{p}/lid_mask_count"), "0")
            .file(&format!("{p}/sm_lid"), "0x1")
            .file(&format!("{p}/link_layer"), "InfiniBand")
            .file(
                &format!("{p}/gids/0"),
                &format!("fe80:0000:0000:0000:0002:c903:0010:{gid}\n"),
            );
    }
    // A RoCE adapter runs Ethernet: not an InfiniBand card.
    t.file(
        "sys/class/infiniband/mlx5_0/ports/1/link_layer",
        "Ethernet\n",
    );
    let lines = detect::infiniband::infiniband(t.root());
    assert_eq!(
        lines[..7],
        [
            l("infiniband", "card0", "card_type", "mlx4_0"),
            l("infiniband", "card0", "device_type", "MT4099"),
            l("infiniband", "card0", "fw_version", "2.11.500"),
            l("infiniband", "card0", "hw_version", "0"),
            l("infiniband", "card0", "nb_ports", "2"),
            l("infiniband", "card0", "sys_guid", "0x0002c9030010f5c3"),
            l("infiniband", "card0", "node_guid", "0x0002c9030010f5c0"),
        ]
    );
    assert_eq!(
        of(&lines, "infiniband", "card0_port1"),
        vec![
            &l("infiniband", "card0_port1", "state", "Active"),
            &l("infiniband", "card0_port1", "physical_state", "LinkUp"),
            &l("infiniband", "card0_port1", "rate", "40"),
            &l("infiniband", "card0_port1", "base_lid", "10"),
            &l("infiniband", "card0_port1", "lmc", "0"),
            &l("infiniband", "card0_port1", "sm_lid", "1"),
            &l(
                "infiniband",
                "card0_port1",
                "port_guid",
                "0x0002c9030010f5c1"
            ),
        ]
    );
    assert_eq!(
        get(&lines, "infiniband", "card0_port2", "state"),
        Some("Down")
    );
    assert!(!lines.iter().any(|x| x[1] == "card1"));
    assert!(detect::infiniband::infiniband(Tree::new().root()).is_empty());
}

// --------------------------------------------------------------- whole

/// A small but complete node.
fn node_tree() -> Tree {
    let t = network_tree();
    t.file("sys/class/dmi/id/product_name", "edeploy_test_vm\n")
        .file("sys/class/dmi/id/sys_vendor", "kvm\n")
        .file("sys/class/dmi/id/bios_vendor", "Bochs\n")
        .file("proc/sys/kernel/osrelease", "6.1.0-13-amd64\n")
        .file("proc/cmdline", "SERV=10.0.0.1\n")
        .file("proc/meminfo", "MemTotal:        524288 kB\n")
        .file("proc/cpuinfo", &cpuinfo(1, 1, 1, true))
        .file(
            "etc/os-release",
            "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        );
    block(&t, "vda", 8_388_608);
    t
}

#[test]
fn detect_orders_families_and_round_trips() {
    let t = node_tree();
    let fake = Fake::bare().answer("ip -o -4 addr show", IP_ADDR);
    let opts = DetectOptions {
        ipmi_fake: true,
        ..DetectOptions::default()
    };
    let lines = detect::detect(t.root(), &fake, &opts);
    let mut classes: Vec<&str> = lines.iter().map(|x| x[0].as_str()).collect();
    classes.dedup();
    assert_eq!(
        classes,
        ["system", "firmware", "memory", "cpu", "disk", "network"]
    );
    assert!(lines.contains(&l("system", "ipmi-fake", "channel", "0")));
    assert!(lines.contains(&l("memory", "total", "size", "536870912")));
    assert_eq!(hw::parse(&hw::to_json(&lines), "json").unwrap(), lines);
    assert_eq!(
        hw::parse(&hw::to_literal(&lines), "literal").unwrap(),
        lines
    );
    // Same tree, same answer.
    assert_eq!(detect::detect(t.root(), &fake, &opts), lines);
    // The reference KVM specs' own lines match this node's detection.
    let specs = Specs::compile(&[
        l("system", "product", "vendor", "kvm"),
        l("disk", "$disk", "size", "gt(1)"),
        l("network", "$eth", "ipv4", "network(10.66.6.0/24)"),
        l("network", "$eth", "serial", "$mac"),
        l("system", "ipmi-fake", "channel", "$ipmi-fake-channel"),
    ])
    .unwrap();
    let m = specs.find(&lines).unwrap();
    assert_eq!(m.vars["disk"], "vda");
    assert_eq!(m.vars["eth"], "eth0");
    assert_eq!(m.vars["mac"], "d8:9d:67:1a:d0:fc");
}

// ------------------------------------------------------------ the binary

fn detect_bin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edeploy-detect"))
        .args(args)
        .output()
        .expect("run edeploy-detect")
}

#[test]
fn binary_reads_another_root_without_commands() {
    let t = node_tree();
    let root = t.root().to_str().unwrap();
    let out = detect_bin(&["--root", root, "--no-commands", "--format", "literal"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines = hw::parse(&text, "stdout").unwrap();
    assert_eq!(
        lines,
        detect::detect(t.root(), &detect::NoCommands, &DetectOptions::default())
    );
    assert!(text.starts_with("[('system', 'product', 'name', 'edeploy_test_vm'),\n"));
    let out = detect_bin(&["--root", root, "--no-commands", "--ipmi-fake"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json.as_array().unwrap().contains(&serde_json::json!([
        "system",
        "ipmi-fake",
        "channel",
        "0"
    ])));
    assert_eq!(detect_bin(&["--format", "xml"]).status.code(), Some(2));
}

/// The logical CPUs `/proc/cpuinfo` lists.
fn cpuinfo_processors() -> usize {
    fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
}

#[test]
fn binary_on_this_machine_matches_a_spec_for_it() {
    let out = detect_bin(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = hw::parse(&String::from_utf8_lossy(&out.stdout), "json").unwrap();
    let specs = Specs::compile(&[
        l("cpu", "logical", "number", "$ncpu"),
        l("cpu", "physical", "number", "ge(1)"),
        l("memory", "total", "size", "gt(1000000000)"),
        l("disk", "logical", "count", "ge(1)"),
        l("disk", "$disk", "size", "gt(0)"),
        l("network", "$eth", "serial", "$mac"),
        l("network", "$eth", "link", "in(yes, no)"),
        l("system", "kernel", "arch", std::env::consts::ARCH),
        l("system", "kernel", "version", "$kernel"),
    ])
    .unwrap();
    let m = specs
        .find(&lines)
        .unwrap_or_else(|e| panic!("{e}\n{}", hw::to_literal(&lines)));
    let ncpu: usize = m.vars["ncpu"].parse().unwrap();
    assert_eq!(ncpu, cpuinfo_processors());
    let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(ncpu >= usable, "{ncpu} < {usable}");
    // The disk is a block device of this machine, the MAC a real one.
    assert!(Path::new("/sys/block").join(&m.vars["disk"]).exists());
    assert!(m.vars["mac"].len() == 17 && m.vars["mac"].matches(':').count() == 5);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(m.vars["kernel"], kernel.trim());
    // The literal form says the same.
    let lit = detect_bin(&["--format", "literal"]);
    let again = hw::parse(&String::from_utf8_lossy(&lit.stdout), "literal").unwrap();
    assert!(specs.find(&again).is_ok());
}

// ------------------------------------------------------- boot firmware

const SECUREBOOT_VAR: &str =
    "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// A tree whose `SecureBoot` variable holds `data` (efivarfs: 4 bytes of
/// attributes, then the value), or a UEFI tree without it.
fn efi_tree(data: Option<&[u8]>) -> Tree {
    let t = Tree::new();
    t.dir("sys/firmware/efi/efivars");
    if let Some(d) = data {
        fs::write(t.root().join(SECUREBOOT_VAR), d).expect("efivar");
    }
    t
}

fn uefi_lines(secureboot: &str) -> Vec<Line> {
    vec![
        l("firmware", "boot", "mode", "uefi"),
        l("firmware", "secureboot", "state", secureboot),
    ]
}

#[test]
fn boot_mode_and_secure_boot_from_sysfs_and_efivarfs() {
    // Attributes NV|BS|RT (0x06), then the value.
    let on = efi_tree(Some(&[0x06, 0, 0, 0, 1]));
    assert_eq!(detect::system::boot_mode(on.root()), uefi_lines("enabled"));
    let off = efi_tree(Some(&[0x06, 0, 0, 0, 0]));
    assert_eq!(
        detect::system::boot_mode(off.root()),
        uefi_lines("disabled")
    );
    // OVMF without Secure Boot has no SecureBoot variable at all.
    let none = efi_tree(None);
    assert_eq!(
        detect::system::boot_mode(none.root()),
        uefi_lines("disabled")
    );
    // A file too short to hold a value, or an empty one: disabled.
    let short = efi_tree(Some(&[0x06, 0, 0, 1]));
    assert_eq!(
        detect::system::boot_mode(short.root()),
        uefi_lines("disabled")
    );
    let empty = efi_tree(Some(&[]));
    assert_eq!(
        detect::system::boot_mode(empty.root()),
        uefi_lines("disabled")
    );
    // Unreadable: a directory where the file should be.
    let odd = efi_tree(None);
    odd.dir(SECUREBOOT_VAR);
    assert_eq!(
        detect::system::boot_mode(odd.root()),
        uefi_lines("disabled")
    );
    // No sys/firmware/efi: BIOS, and no Secure Boot line.
    let bios = Tree::new();
    bios.dir("sys/firmware/acpi");
    assert_eq!(
        detect::system::boot_mode(bios.root()),
        vec![l("firmware", "boot", "mode", "bios")]
    );
}

#[test]
fn detect_reports_the_boot_mode_among_the_firmware_lines() {
    let t = node_tree();
    t.file("sys/class/dmi/id/bios_version", "1.16.2\n");
    fs::create_dir_all(t.root().join("sys/firmware/efi/efivars")).expect("mkdir");
    fs::write(t.root().join(SECUREBOOT_VAR), [0x06, 0, 0, 0, 1]).expect("efivar");
    let fake = Fake::bare().answer("ip -o -4 addr show", IP_ADDR);
    let lines = detect::detect(t.root(), &fake, &DetectOptions::default());
    let firmware: Vec<&Line> = lines.iter().filter(|x| x[0] == "firmware").collect();
    assert_eq!(
        firmware,
        [
            &l("firmware", "bios", "version", "1.16.2"),
            &l("firmware", "bios", "vendor", "Bochs"),
            &l("firmware", "boot", "mode", "uefi"),
            &l("firmware", "secureboot", "state", "enabled"),
        ]
    );
    // The specs can match on them.
    let specs = Specs::compile(&[
        l("firmware", "boot", "mode", "uefi"),
        l("firmware", "secureboot", "state", "$sb"),
    ])
    .unwrap();
    assert_eq!(specs.find(&lines).unwrap().vars["sb"], "enabled");
}

// ------------------------------------- the keys of hardware-detect

/// The captures of the CI machine (a 2-CPU virtual machine): `lscpu`,
/// `lscpu -x`, the loader's auxv, `timedatectl`'s failure without
/// systemd, what `hardware-detect` 0.33 printed there, and a copy of the
/// sysfs/procfs files the CPU and NUMA readers use.
const CI: &str = "detect/ci-vm";

/// A fake machine answering the CI machine's captured outputs.
fn ci_fake() -> Fake {
    Fake::bare()
        .answer("env LC_ALL=C lscpu", fixture(&format!("{CI}/lscpu")))
        .answer("env LC_ALL=C lscpu -x", fixture(&format!("{CI}/lscpu_x")))
        .answer(
            "env LD_SHOW_AUXV=1 /bin/true",
            fixture(&format!("{CI}/ld_show_auxv")),
        )
        .on(
            When::line("timedatectl status --no-pager"),
            Reply::exit(
                fixture(&format!("{CI}/timedatectl_status.rc"))
                    .trim()
                    .parse()
                    .expect("exit status"),
                fixture(&format!("{CI}/timedatectl_status.out")),
                fixture(&format!("{CI}/timedatectl_status.err")),
            ),
        )
}

fn ci_root() -> std::path::PathBuf {
    Path::new(FIX).join(CI).join("tree")
}

/// `hardware-detect`'s JSON as lines of text (it prints some numbers as
/// JSON numbers).
fn hardware_detect_lines(path: &str) -> Vec<Line> {
    let v: serde_json::Value = serde_json::from_str(&fixture(path)).expect("json");
    let text = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    v.as_array()
        .expect("a list")
        .iter()
        .map(|t| {
            let t = t.as_array().expect("a tuple");
            [text(&t[0]), text(&t[1]), text(&t[2]), text(&t[3])]
        })
        .collect()
}

/// The lines of the families this comparison covers: cpu, numa, hw and
/// the RTC.
fn topology_family(x: &Line) -> bool {
    ["cpu", "numa", "hw"].contains(&x[0].as_str()) || (x[0] == "system" && x[1] == "rtc")
}

/// The keys `hardware-detect` has and eDeploy had not.
const NEW_KEYS: [(&str, &str, &str); 16] = [
    ("numa", "nodes", "count"),
    ("numa", "node_0", "cpu_count"),
    ("numa", "node_0", "cpu_mask"),
    ("cpu", "physical_0", "l1d cache"),
    ("cpu", "physical_0", "l1i cache"),
    ("cpu", "physical_0", "l2 cache"),
    ("cpu", "physical_0", "l3 cache"),
    ("cpu", "physical_0", "threads_per_core"),
    ("cpu", "physical_0", "architecture"),
    ("cpu", "physical", "smt"),
    ("system", "rtc", "utc"),
    ("hw", "auxv", "hwcap"),
    ("hw", "auxv", "hwcap2"),
    ("hw", "auxv", "pagesz"),
    ("hw", "auxv", "platform"),
    ("hw", "auxv", "flags"),
];

#[test]
fn ci_machine_captures_give_hardware_detects_cpu_numa_rtc_auxv_lines() {
    let theirs = hardware_detect_lines(&format!("{CI}/hardware-detect.json"));
    let ours = detect::detect(&ci_root(), &ci_fake(), &DetectOptions::default());
    let mut compared = 0;
    for t in theirs.iter().filter(|x| topology_family(x)) {
        // The vendor keeps eDeploy's lshw name (docs/detection.md).
        if t[1] == "physical_0" && t[2] == "vendor" {
            assert_eq!(t[3], "GenuineIntel");
            assert_eq!(
                get(&ours, "cpu", "physical_0", "vendor"),
                Some("Intel Corp.")
            );
            continue;
        }
        assert_eq!(
            get(&ours, &t[0], &t[1], &t[2]),
            Some(t[3].as_str()),
            "{t:?}"
        );
        compared += 1;
    }
    // 16 cpu lines (the vendor aside), 3 numa, the RTC, 5 auxv.
    assert_eq!(compared, 25);
    for (c, n, k) in NEW_KEYS {
        assert!(
            get(&theirs, c, n, k).is_some(),
            "hardware-detect has no {c}/{n}/{k}"
        );
        assert!(get(&ours, c, n, k).is_some(), "no {c}/{n}/{k}");
    }
    assert_eq!(get(&ours, "system", "rtc", "utc"), Some("unknown"));
    assert_eq!(get(&ours, "hw", "auxv", "platform"), Some("x86_64"));
    assert_eq!(get(&ours, "numa", "node_0", "cpu_mask"), Some("3"));
    // The socket's details follow its own lines, SMT the sockets.
    let cpu: Vec<&str> = ours
        .iter()
        .filter(|x| x[0] == "cpu")
        .map(|x| x[2].as_str())
        .collect();
    let flags = cpu.iter().position(|k| *k == "flags").expect("flags");
    assert_eq!(
        cpu[flags + 1..],
        [
            "architecture",
            "l1d cache",
            "l1i cache",
            "l2 cache",
            "l3 cache",
            "threads_per_core",
            "smt",
            "number",
            "number"
        ]
    );
    let classes: Vec<&str> = ours.iter().map(|x| x[0].as_str()).collect();
    assert_eq!(classes.last(), Some(&"hw"));
    let numa = classes.iter().position(|c| *c == "numa").expect("numa");
    assert_eq!(classes[numa - 1], "cpu");
}

#[test]
fn without_lscpu_sysfs_gives_the_same_cpu_and_numa_values() {
    let with = detect::detect(&ci_root(), &ci_fake(), &DetectOptions::default());
    let fake = Fake::bare();
    let without = detect::detect(&ci_root(), &fake, &DetectOptions::default());
    assert!(fake.lines().contains(&"env LC_ALL=C lscpu".to_string()));
    let pick = |lines: &[Line]| -> Vec<Line> {
        lines
            .iter()
            .filter(|x| x[0] == "cpu" || x[0] == "numa")
            .cloned()
            .collect()
    };
    assert_eq!(pick(&without), pick(&with));
    assert_eq!(
        get(&without, "cpu", "physical_0", "l1d cache"),
        Some("96 KiB (2 instances)")
    );
    // No loader output without the program: no hw lines; the RTC unknown.
    assert!(of(&without, "hw", "auxv").is_empty());
    assert_eq!(get(&without, "system", "rtc", "utc"), Some("unknown"));
}

#[test]
fn numa_and_socket_details_from_a_two_socket_lscpu_without_masks() {
    // A 2-socket, 8-node EPYC; its `lscpu -x` is not available.
    let fake = Fake::bare()
        .answer("env LC_ALL=C lscpu", fixture("tool-output/lscpu"))
        .on(
            When::line("env LC_ALL=C lscpu -x"),
            Reply::exit(1, "", "lscpu: invalid option -- 'x'"),
        );
    let t = Tree::new();
    t.file("proc/cpuinfo", &cpuinfo(2, 24, 2, true));
    let lscpu = topology::Lscpu::run(&fake).expect("lscpu");
    let lines = cpu::cpu_with(t.root(), &fake, Some(&lscpu));
    for socket in ["physical_0", "physical_1"] {
        assert_eq!(get(&lines, "cpu", socket, "architecture"), Some("x86_64"));
        assert_eq!(get(&lines, "cpu", socket, "l1d cache"), Some("32K"));
        assert_eq!(get(&lines, "cpu", socket, "l1i cache"), Some("64K"));
        assert_eq!(get(&lines, "cpu", socket, "l2 cache"), Some("512K"));
        assert_eq!(get(&lines, "cpu", socket, "l3 cache"), Some("8192K"));
        assert_eq!(get(&lines, "cpu", socket, "threads_per_core"), Some("2"));
        // Floats, as hardware-detect prints them.
        assert_eq!(get(&lines, "cpu", socket, "min_Mhz"), Some("1200.0"));
        assert_eq!(get(&lines, "cpu", socket, "max_Mhz"), Some("2300.0"));
        assert_eq!(get(&lines, "cpu", socket, "current_Mhz"), Some("1197.549"));
    }
    // No smt/control in this tree: no SMT line.
    assert_eq!(get(&lines, "cpu", "physical", "smt"), None);
    let numa = topology::numa(t.root(), Some(&lscpu));
    assert_eq!(numa.len(), 1 + 8 * 2);
    assert_eq!(get(&numa, "numa", "nodes", "count"), Some("8"));
    for n in 0..8 {
        assert_eq!(
            get(&numa, "numa", &format!("node_{n}"), "cpu_count"),
            Some("12")
        );
    }
    // 0-5,48-53 and 42-47,90-95, written as lscpu -x writes masks.
    assert_eq!(
        get(&numa, "numa", "node_0", "cpu_mask"),
        Some("3f00000000003f")
    );
    assert_eq!(
        get(&numa, "numa", "node_7", "cpu_mask"),
        Some("fc0000000000fc0000000000")
    );
    // The VM capture: one node, CPUs 0 and 1.
    let vm = topology::Lscpu::parse(&fixture("tool-output/lscpu-vm"), "");
    let numa = topology::numa(t.root(), Some(&vm));
    assert_eq!(
        numa,
        vec![
            l("numa", "nodes", "count", "1"),
            l("numa", "node_0", "cpu_count", "2"),
            l("numa", "node_0", "cpu_mask", "3"),
        ]
    );
}

#[test]
fn sysfs_caches_add_up_distinct_instances_and_numa_nodes_in_order() {
    // Two sockets of two CPUs: private L1d of 32K, an L2 of 1.5M shared
    // by both CPUs of a socket, a unified L3 of 16M per socket.
    let t = Tree::new();
    for cpu in 0..4u32 {
        let sock_map = if cpu < 2 { "3" } else { "c" };
        let own_map = format!("{:x}", 1 << cpu);
        for (i, (level, kind, size, map)) in [
            ("1", "Data", "32K", own_map.as_str()),
            ("2", "Unified", "1536K", sock_map),
            ("3", "Unified", "16384K", sock_map),
        ]
        .iter()
        .enumerate()
        {
            let d = format!("sys/devices/system/cpu/cpu{cpu}/cache/index{i}");
            t.file(&format!("{d}/level"), &format!("{level}\n"))
                .file(&format!("{d}/type"), &format!("{kind}\n"))
                .file(&format!("{d}/size"), &format!("{size}\n"))
                .file(&format!("{d}/shared_cpu_map"), &format!("{map}\n"));
        }
    }
    // Not a CPU directory.
    t.dir("sys/devices/system/cpu/cpufreq");
    // Nodes numbered like people count (node10 after node2); a node
    // without CPUs.
    t.file("sys/devices/system/node/node0/cpulist", "0-1\n")
        .file("sys/devices/system/node/node2/cpulist", "2-3\n")
        .file("sys/devices/system/node/node10/cpulist", "\n")
        .file("sys/devices/system/node/online", "0,2,10\n");
    // One core of two threads per socket in cpuinfo.
    t.file("proc/cpuinfo", &cpuinfo(2, 1, 2, true));
    assert_eq!(
        topology::sysfs_caches(t.root()),
        vec![
            ("l1d cache".to_string(), "128 KiB (4 instances)".to_string()),
            ("l2 cache".to_string(), "3 MiB (2 instances)".to_string()),
            ("l3 cache".to_string(), "32 MiB (2 instances)".to_string()),
        ]
    );
    let details = topology::socket_details(t.root(), None);
    assert!(details.contains(&("l2 cache".into(), "3 MiB (2 instances)".into())));
    assert!(!details.iter().any(|(k, _)| k == "l1i cache"));
    // No topology files: siblings / cpu cores of cpuinfo.
    assert!(details.contains(&("threads_per_core".into(), "2".into())));
    // With them, the siblings of CPU 0.
    t.file(
        "sys/devices/system/cpu/cpu0/topology/thread_siblings_list",
        "0\n",
    );
    let details = topology::socket_details(t.root(), None);
    assert!(details.contains(&("threads_per_core".into(), "1".into())));
    assert_eq!(
        topology::numa(t.root(), None),
        vec![
            l("numa", "nodes", "count", "3"),
            l("numa", "node_0", "cpu_count", "2"),
            l("numa", "node_0", "cpu_mask", "3"),
            l("numa", "node_2", "cpu_count", "2"),
            l("numa", "node_2", "cpu_mask", "c"),
            l("numa", "node_10", "cpu_count", "0"),
            l("numa", "node_10", "cpu_mask", "0"),
        ]
    );
    // A kernel without NUMA: no lines.
    assert!(topology::numa(Tree::new().root(), None).is_empty());
}

#[test]
fn auxv_entries_as_the_loader_prints_them() {
    let lines = auxv::parse(&fixture(&format!("{CI}/ld_show_auxv")));
    assert_eq!(
        lines,
        vec![
            l("hw", "auxv", "hwcap", "1f8bfbff"),
            l("hw", "auxv", "pagesz", "4096"),
            l("hw", "auxv", "flags", "0x0"),
            l("hw", "auxv", "hwcap2", "0x2"),
            l("hw", "auxv", "platform", "x86_64"),
        ]
    );
    // POWER names its capabilities; a name with no space after the colon.
    let power = "AT_HWCAP:        true_le archpmu vsx\nAT_PAGESZ:       65536\n\
                 AT_UID:          0\nAT_PLATFORM:     power8\nAT_BASE_PLATFORM:power8\n";
    assert_eq!(
        auxv::parse(power),
        vec![
            l("hw", "auxv", "hwcap", "true_le archpmu vsx"),
            l("hw", "auxv", "pagesz", "65536"),
            l("hw", "auxv", "platform", "power8"),
            l("hw", "auxv", "base_platform", "power8"),
        ]
    );
    // A static /bin/true prints nothing; a missing env, no lines either.
    let fake = Fake::bare().answer("env LD_SHOW_AUXV=1 /bin/true", "");
    assert!(auxv::auxv(&fake).is_empty());
    assert!(auxv::auxv(&Fake::bare()).is_empty());
}

#[test]
fn rtc_from_timedatectl_or_unknown() {
    // Written in the format of systemd 252's `timedatectl status`.
    let utc = "               Local time: Sun 2026-12-06 11:53:43 UTC\n\
                          Universal time: Sun 2026-12-06 11:53:43 UTC\n\
                                RTC time: Sun 2026-12-06 11:53:43\n\
                               Time zone: Etc/UTC (UTC, +0000)\n\
               System clock synchronized: yes\n\
                             NTP service: active\n\
                         RTC in local TZ: no\n";
    assert_eq!(detect::system::rtc_in_local_tz(utc).as_deref(), Some("no"));
    let fake = Fake::bare().answer("timedatectl status --no-pager", utc);
    assert_eq!(detect::system::rtc(&fake), l("system", "rtc", "utc", "no"));
    // A local-time RTC is followed by a warning: hardware-detect finds no
    // answer at the end, and neither do we.
    let local = format!(
        "{}\nWarning: The system is configured to read the RTC time in the local time zone.\n",
        utc.replace("TZ: no", "TZ: yes")
    );
    assert_eq!(detect::system::rtc_in_local_tz(&local), None);
    let fake = Fake::bare().answer("timedatectl status --no-pager", local);
    assert_eq!(
        detect::system::rtc(&fake),
        l("system", "rtc", "utc", "unknown")
    );
    // The CI machine has no systemd: timedatectl fails.
    assert_eq!(
        detect::system::rtc(&ci_fake()),
        l("system", "rtc", "utc", "unknown")
    );
    assert_eq!(
        detect::system::rtc(&Fake::bare()),
        l("system", "rtc", "utc", "unknown")
    );
}

#[test]
fn binary_on_this_machine_reports_the_topology_keys() {
    let out = detect_bin(&[]);
    assert_eq!(out.status.code(), Some(0));
    let lines = hw::parse(&String::from_utf8_lossy(&out.stdout), "json").unwrap();
    assert!(get(&lines, "system", "rtc", "utc").is_some());
    let arch = get(&lines, "cpu", "physical_0", "architecture");
    assert_eq!(arch, Some(std::env::consts::ARCH));
    assert!(get(&lines, "cpu", "physical_0", "threads_per_core")
        .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 1)));
    if Path::new("/sys/devices/system/cpu/smt/control").exists() {
        assert!(get(&lines, "cpu", "physical", "smt").is_some());
    }
    if Path::new("/sys/devices/system/node/node0").exists() {
        let n: usize = get(&lines, "numa", "nodes", "count")
            .and_then(|n| n.parse().ok())
            .expect("numa count");
        assert!(n >= 1);
    }
}

#[test]
fn boost_clocks_and_governors_from_cpufreq() {
    let t = Tree::new();
    t.file("proc/cpuinfo", &cpuinfo(1, 2, 1, true))
        .file("sys/devices/system/cpu/cpufreq/boost", "1\n")
        // The policy directory for CPU 0, the per-CPU one for CPU 1.
        .file(
            "sys/devices/system/cpu/cpufreq/policy0/scaling_governor",
            "performance\n",
        )
        .file(
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
            "powersave\n",
        );
    for (cpu, min, max) in [(0, "800000", "3400000"), (1, "1200000", "3600500")] {
        let d = format!("sys/devices/system/cpu/cpu{cpu}/cpufreq");
        t.file(&format!("{d}/cpuinfo_min_freq"), &format!("{min}\n"))
            .file(&format!("{d}/cpuinfo_max_freq"), &format!("{max}\n"));
    }
    let lines = cpu::cpu(t.root(), &Fake::bare());
    let socket: Vec<(&str, &str)> = of(&lines, "cpu", "physical_0")
        .iter()
        .map(|x| (x[2].as_str(), x[3].as_str()))
        .collect();
    assert!(socket.contains(&("boost", "enabled")));
    // Without lscpu: the lowest minimum, the highest maximum, no current.
    assert!(socket.contains(&("min_Mhz", "800.0")));
    assert!(socket.contains(&("max_Mhz", "3600.5")));
    assert!(!socket.iter().any(|(k, _)| *k == "current_Mhz"));
    assert_eq!(
        lines[lines.len() - 2..],
        [
            l("cpu", "logical_0", "governor", "performance"),
            l("cpu", "logical_1", "governor", "powersave"),
        ]
    );
    t.file("sys/devices/system/cpu/cpufreq/boost", "0\n");
    let lines = cpu::cpu(t.root(), &Fake::bare());
    assert_eq!(get(&lines, "cpu", "physical_0", "boost"), Some("disabled"));
    // No cpufreq at all: none of these lines.
    let bare = Tree::new();
    bare.file("proc/cpuinfo", &cpuinfo(1, 2, 1, true));
    let lines = cpu::cpu(bare.root(), &Fake::bare());
    for key in ["boost", "min_Mhz", "max_Mhz", "governor"] {
        assert!(!lines.iter().any(|x| x[2] == key), "{key}");
    }
}

// ------------------------------------------------- scripts/detect-diff

/// Runs `scripts/detect-diff --compare` on three hardware lists; its exit
/// status and standard output.
fn detect_diff(hw1: &serde_json::Value, hw2: &serde_json::Value, ours: &[Line]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name);
    fs::write(path("hw1.json"), hw1.to_string()).expect("write");
    fs::write(path("hw2.json"), hw2.to_string()).expect("write");
    fs::write(path("ours.json"), hw::to_json(ours)).expect("write");
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/detect-diff"))
        .arg("--compare")
        .args([path("hw1.json"), path("hw2.json"), path("ours.json")])
        .output()
        .expect("run scripts/detect-diff (bash, python3)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "{code}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, stdout)
}

/// Replaces the value of a (class, name, key) in a `hardware-detect` list.
fn set_value(
    list: &serde_json::Value,
    key: [&str; 3],
    value: serde_json::Value,
) -> serde_json::Value {
    let mut list = list.clone();
    for t in list.as_array_mut().expect("list") {
        let t = t.as_array_mut().expect("tuple");
        if (0..3).all(|i| t[i] == key[i]) {
            t[3] = value.clone();
        }
    }
    list
}

#[test]
fn detect_diff_fails_on_missing_or_different_keys_except_the_listed_ones() {
    let hw: serde_json::Value =
        serde_json::from_str(&fixture(&format!("{CI}/hardware-detect.json"))).expect("json");
    // What edeploy-detect would print where it agrees: the same lines as
    // text, but the vendor and the architecture are ours (listed as
    // deliberate in docs/detection.md).
    let same: Vec<Line> = hardware_detect_lines(&format!("{CI}/hardware-detect.json"))
        .into_iter()
        .map(|mut x| {
            if x[2] == "vendor" && x[1] == "physical_0" {
                x[3] = "Intel Corp.".into();
            }
            if x[1] == "kernel" && x[2] == "arch" {
                x[3] = "x86_64".into();
            }
            x
        })
        .collect();
    let (code, out) = detect_diff(&hw, &hw, &same);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("('cpu', 'physical_0', 'vendor'): deliberate"),
        "{out}"
    );

    // A key missing, a value different: both named, exit 1.
    let mut broken: Vec<Line> = same
        .iter()
        .filter(|x| !(x[0] == "numa" && x[2] == "cpu_mask"))
        .cloned()
        .collect();
    for x in broken.iter_mut().filter(|x| x[2] == "threads_per_core") {
        x[3] = "2".into();
    }
    let (code, out) = detect_diff(&hw, &hw, &broken);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("MISSING from edeploy-detect: 1\n  ('numa', 'node_0', 'cpu_mask') = ['3']"),
        "{out}"
    );
    assert!(out.contains("('cpu', 'physical_0', 'threads_per_core'): hardware-detect ['1'], edeploy-detect ['2']"), "{out}");

    // A value that changed between the two hardware-detect runs and is
    // not listed fails; a listed volatile one (the current clock) must be
    // present, its value is not compared.
    let moved = set_value(
        &hw,
        ["cpu", "physical_0", "l2 cache"],
        "8 MiB (2 instances)".into(),
    );
    let (code, out) = detect_diff(&hw, &moved, &same);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("CHANGED between two hardware-detect runs, not listed: 1"),
        "{out}"
    );
    let mut clocked = hw.clone();
    clocked
        .as_array_mut()
        .expect("list")
        .push(serde_json::json!([
            "cpu",
            "physical_0",
            "current_Mhz",
            1197.549
        ]));
    let reclocked = set_value(
        &clocked,
        ["cpu", "physical_0", "current_Mhz"],
        2100.0.into(),
    );
    let mut with_clock = same.clone();
    with_clock.push(l("cpu", "physical_0", "current_Mhz", "1800.0"));
    let (code, out) = detect_diff(&clocked, &reclocked, &with_clock);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("current_Mhz'): volatile"), "{out}");
    let (code, out) = detect_diff(&clocked, &reclocked, &same);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("('cpu', 'physical_0', 'current_Mhz') = ['1197.549']"),
        "{out}"
    );
}
