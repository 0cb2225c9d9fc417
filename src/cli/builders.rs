//! The builders `scripts/build-role`, `scripts/build-initrd` and
//! `scripts/build-netboot` are shell scripts, installed by edeploy-tools
//! as `edeploy-build-role`, `edeploy-build-initrd` and
//! `edeploy-build-netboot`: their manual pages, as clap `Command`s used by
//! the generator only. Keep them in step with the scripts' usage lines.

use clap::{Arg, ArgAction, Command};

const INSTALLED: &str = "Installed by edeploy-tools, the packaged programs are used \
    (/usr/lib/edeploy) and the output goes under OUT, by default /var/lib/debootstrap; \
    run from a checkout (scripts/...), the programs are built there and OUT defaults to \
    target/edeploy. Needs root.";

fn page(name: &'static str, about: &'static str, long: String) -> Command {
    Command::new(name)
        .version(env!("CARGO_PKG_VERSION"))
        .about(about)
        .long_about(long)
        .disable_help_flag(true)
        .disable_version_flag(true)
}

/// `edeploy-build-role [--tree-only] ROLE VERS [--upgrade-from FROM]... [--sign-key SECRET.key]`
pub fn build_role() -> Command {
    page(
        "edeploy-build-role",
        "Build one role version's file tree from Debian's packages and pack it",
        format!(
            "Runs the recipe ROLE.install (/usr/share/edeploy/share/roles, or share/roles \
             in a checkout) with debootstrap and apt-get, adds the host client, then packs \
             the tree: OUT/install/VERS/ROLE/ (the tree rsyncd serves), \
             OUT/install/VERS/ROLE-VERS.edeploy (for HTTP), \
             OUT/install/VERS/ROLE-VERS.manifest, and for each --upgrade-from FROM the \
             upgrade path OUT/metadata/FROM/ROLE/VERS/ (exclude, add_only, pre, post) and a \
             delta. With --sign-key, each of them is signed (FILE.minisig beside it) and the \
             public key beside the secret one (SECRET.pub) goes into the tree as \
             etc/edeploy/trusted.d/.\n\nEnvironment: OUT (the output directory), \
             EDEPLOY_CACHE (debootstrap's cache, default /var/cache/edeploy), MIRROR (the \
             Debian mirror), EDEPLOY_SIGN_KEY (the default of --sign-key), \
             EDEPLOY_SIGN_PASSWORD_FILE (an encrypted key's password), EDEPLOY_SIGN_PUB (the \
             public key to ship).\n\n{INSTALLED}"
        ),
    )
    .arg(
        Arg::new("tree-only")
            .long("tree-only")
            .action(ArgAction::SetTrue)
            .help("Build the tree alone, in OUT/build/VERS/ROLE, not packed nor served"),
    )
    .arg(
        Arg::new("ROLE")
            .required(true)
            .help("The role: a recipe ROLE.install"),
    )
    .arg(Arg::new("VERS").required(true).help("The version to build"))
    .arg(
        Arg::new("upgrade-from")
            .long("upgrade-from")
            .value_name("FROM")
            .action(ArgAction::Append)
            .help("Write an upgrade path and a delta from this version (repeatable)"),
    )
    .arg(
        Arg::new("sign-key")
            .long("sign-key")
            .value_name("SECRET_KEY")
            .help("Sign the manifest, archive, deltas and metadata with this minisign key"),
    )
}

/// `edeploy-build-initrd [BASEVERS]`
pub fn build_initrd() -> Command {
    page(
        "edeploy-build-initrd",
        "Build the PXE initrd with eDeploy's installer, and the kernel beside it",
        format!(
            "Builds the base role of BASEVERS and the pxe package tree when missing \
             (edeploy-build-role), then OUT/pxe/vmlinuz, OUT/pxe/initrd.pxe (edeploy-init as \
             /init, busybox, parted, e2fsprogs, lvm2, rsync, kexec, the storage, network and \
             filesystem modules) and OUT/pxe/health.img (sysbench and fio for the health \
             check).\n\nEnvironment: OUT (the output directory).\n\n{INSTALLED}"
        ),
    )
    .arg(
        Arg::new("BASEVERS")
            .default_value("D12-1.0.0")
            .help("The version of the base role the initrd's programs come from"),
    )
}

/// `edeploy-build-netboot [--serv ADDR] [--port N] [--default LABEL] [--http] [--unsigned-grub] [BASEVERS]`
pub fn build_netboot() -> Command {
    page(
        "edeploy-build-netboot",
        "Lay out the network boot tree for BIOS and UEFI clients, Secure Boot included",
        format!(
            "Writes one directory to serve over TFTP and HTTP, NETBOOT (default OUT/netboot): \
             iPXE for BIOS and UEFI clients (undionly.kpxe, snponly.efi, ipxe.efi, \
             edeploy.ipxe), Debian's signed shim and GRUB for Secure Boot (shimx64.efi, \
             grubx64.efi, mmx64.efi, grub/grub.cfg), pxelinux.cfg/default, and the kernel \
             and initrd of edeploy-build-initrd (built when missing) under pxe/.\n\n\
             Environment: OUT, NETBOOT.\n\n{INSTALLED}"
        ),
    )
    .arg(
        Arg::new("serv")
            .long("serv")
            .value_name("ADDR")
            .default_value("10.0.0.1")
            .help("The eDeploy server's address, put in the menus"),
    )
    .arg(
        Arg::new("port")
            .long("port")
            .value_name("N")
            .help("The HTTP port of the server's web server (default 80)"),
    )
    .arg(
        Arg::new("default")
            .long("default")
            .value_name("LABEL")
            .help("The menu entry booted without a key (default: pxelinux's own default)"),
    )
    .arg(
        Arg::new("http")
            .long("http")
            .action(ArgAction::SetTrue)
            .help("GRUB loads the kernel and initrd over HTTP (port 80 only) instead of TFTP"),
    )
    .arg(
        Arg::new("unsigned-grub")
            .long("unsigned-grub")
            .action(ArgAction::SetTrue)
            .help("Serve GRUB's unsigned network image: a Secure Boot client must refuse it"),
    )
    .arg(
        Arg::new("BASEVERS")
            .default_value("D12-1.0.0")
            .help("The version of the base role"),
    )
}
