//! `.edeploy` archives end to end: a tree with every kind of entry
//! (setuid and foreign-owned files, a 3-way hard link, symlinks, paths and
//! link targets over 100 bytes, character and block devices, a fifo, a
//! socket, `user.*` attributes and a file capability) packed by `edeploy
//! pack`, listed and extracted by GNU tar, unpacked by the installer, and
//! compared entry by entry with the original: type, mode, owner, size,
//! mtime, device numbers, link target, shared inodes, extended
//! attributes. GNU tar's own POSIX-format archive of the tree unpacks the
//! same way. Needs root (mknod, chown, capabilities), as CI runs it.

use edeploy::archive::layout;
use edeploy::archive::manifest::{Kind, Manifest};
use edeploy::archive::place::STAGING;
use edeploy::host::exclude::Rules;
use edeploy::host::pack::{self, PackOptions};
use edeploy::init::{fetch, Console, Tuning};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every entry's mtime but `etc/epoch`'s.
const T: i64 = 1_600_000_000;

fn long_dir() -> String {
    format!(
        "deep/{}/{}/{}",
        "d".repeat(60),
        "e".repeat(60),
        "f".repeat(40)
    )
}

fn long_file() -> String {
    format!("{}/long-file", long_dir())
}

fn long_target() -> String {
    format!("../../../{}/target", "t".repeat(110))
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path");
    let n = CString::new(name).expect("name");
    // SAFETY: NUL-terminated strings; `value` readable for its length.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "lsetxattr {} {name}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// The extended attributes of `path`, read with libc directly.
fn xattrs_of(path: &Path) -> Vec<(String, Vec<u8>)> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path");
    let mut list = vec![0u8; 65536];
    // SAFETY: `list` is writable for its length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
    assert!(
        n >= 0,
        "llistxattr {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    list.truncate(n as usize);
    let mut out = Vec::new();
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cn = CString::new(name).expect("name");
        let mut v = vec![0u8; 65536];
        // SAFETY: as above.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(m >= 0, "lgetxattr {}", path.display());
        v.truncate(m as usize);
        out.push((String::from_utf8_lossy(name).into_owned(), v));
    }
    out.sort();
    out
}

fn mknod(path: &Path, format: libc::mode_t, mode: u32, major: u32, minor: u32) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: NUL-terminated path.
    let r = unsafe {
        libc::mknod(
            c.as_ptr(),
            format | mode as libc::mode_t,
            libc::makedev(major, minor),
        )
    };
    assert_eq!(
        r,
        0,
        "mknod {}: {} (the tests run as root)",
        path.display(),
        std::io::Error::last_os_error()
    );
    // mknod applies the umask.
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn put(root: &Path, rel: &str, data: &str, mode: u32, owner: (u32, u32)) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, data).expect("write");
    std::os::unix::fs::lchown(&p, Some(owner.0), Some(owner.1)).expect("chown");
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

fn mkdir(root: &Path, rel: &str, mode: u32, owner: (u32, u32)) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(&p).expect("mkdir");
    std::os::unix::fs::lchown(&p, Some(owner.0), Some(owner.1)).expect("chown");
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

/// Gives a file the capability `cap_net_raw+ep`: with `setcap` when the
/// machine has it, else by writing `security.capability` (a version 2
/// capability: magic, effective flag, permitted bit 13, nothing
/// inheritable).
fn set_cap_net_raw(path: &Path) {
    if Path::new("/usr/sbin/setcap").exists() {
        let out = Command::new("/usr/sbin/setcap")
            .arg("cap_net_raw+ep")
            .arg(path)
            .output()
            .expect("setcap");
        assert!(out.status.success(), "setcap: {out:?}");
    } else {
        let mut v = Vec::new();
        v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
        v.extend_from_slice(&(1u32 << 13).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        set_xattr(path, "security.capability", &v);
    }
}

/// The tree to pack; returns it with the socket's listener (kept open
/// while the test runs).
fn build_tree(root: &Path) -> std::os::unix::net::UnixListener {
    for d in ["etc", "usr/bin", "usr/lib", "usr/share", "run", "srv/data"] {
        mkdir(root, d, 0o755, (0, 0));
    }
    mkdir(root, "root", 0o700, (0, 0));
    mkdir(root, "home/user", 0o750, (1234, 1234));
    let dev = mkdir(root, "dev", 0o755, (0, 0));
    set_xattr(&dev, "user.dir", b"dev");
    set_xattr(&root.join("srv/data"), "user.dir", b"data");
    put(root, "etc/plain", "hello\n", 0o644, (0, 0));
    put(root, "usr/bin/su", "su\n", 0o4755, (0, 0));
    put(root, "usr/bin/wall", "wall\n", 0o2755, (0, 5));
    put(root, "home/user/owned", "mine\n", 0o640, (1234, 2345));
    let a = put(root, "usr/lib/a", "shared\n", 0o644, (0, 0));
    fs::hard_link(&a, root.join("usr/lib/b")).expect("link b");
    fs::hard_link(&a, root.join("usr/share/c")).expect("link c");
    std::os::unix::fs::symlink("libx.so.2", root.join("usr/lib/libx.so")).expect("symlink");
    std::os::unix::fs::lchown(root.join("usr/lib/libx.so"), Some(1234), Some(1234))
        .expect("chown symlink");
    let long = put(root, &long_file(), "long\n", 0o600, (0, 0));
    set_xattr(&long, "user.test", b"long");
    fs::hard_link(&long, root.join("etc/long-twin")).expect("long link");
    std::os::unix::fs::symlink(long_target(), root.join(long_dir()).join("long-link"))
        .expect("long symlink");
    mknod(&root.join("dev/null"), libc::S_IFCHR, 0o666, 1, 3);
    mknod(&root.join("dev/loop0"), libc::S_IFBLK, 0o660, 7, 0);
    std::os::unix::fs::lchown(root.join("dev/loop0"), Some(0), Some(6)).expect("chown");
    mknod(&root.join("run/initctl"), libc::S_IFIFO, 0o600, 0, 0);
    let sock = std::os::unix::net::UnixListener::bind(root.join("run/sock")).expect("socket");
    let attr = put(root, "etc/attr", "attr\n", 0o644, (0, 0));
    set_xattr(&attr, "user.test", b"value");
    set_xattr(&attr, "user.binary", &[0, 1, 2, b'=', b'\n', 255]);
    let ping = put(root, "usr/bin/ping", "ping\n", 0o755, (0, 0));
    set_cap_net_raw(&ping);
    put(root, "etc/epoch", "1970\n", 0o644, (0, 0));
    // Times last, deepest first: each entry written changes its directory.
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.expect("walk").into_path())
        .collect();
    all.sort();
    all.reverse();
    for p in all {
        let t = if p.ends_with("etc/epoch") { 0 } else { T };
        let t = filetime::FileTime::from_unix_time(t, 0);
        filetime::set_symlink_file_times(&p, t, t).expect("mtime");
    }
    sock
}

/// One entry as compared between trees.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    rdev: u64,
    target: Option<PathBuf>,
    /// For a non-directory with several links: the first of its names.
    first_name: Option<String>,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Every entry under `root` (not `root` itself) by relative path.
fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut names: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.expect("walk").into_path())
        .collect();
    paths.sort();
    for p in paths {
        let rel = p
            .strip_prefix(root)
            .expect("inside")
            .to_string_lossy()
            .into_owned();
        let md = p.symlink_metadata().expect("lstat");
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_file() {
            'f'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_fifo() {
            'p'
        } else {
            's'
        };
        let first_name = (kind != 'd' && md.nlink() > 1).then(|| {
            names
                .entry((md.dev(), md.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        });
        out.insert(
            rel,
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: if kind == 'd' { 0 } else { md.len() },
                mtime: md.mtime(),
                rdev: if matches!(kind, 'c' | 'b') {
                    md.rdev()
                } else {
                    0
                },
                target: (kind == 'l').then(|| fs::read_link(&p).expect("readlink")),
                first_name,
                xattrs: xattrs_of(&p),
            },
        );
    }
    out
}

/// Packs the tree (manifest and archive); returns the archive's path.
fn pack_tree(tree: &Path, install: &Path) -> PathBuf {
    let opts = PackOptions {
        archive: true,
        ..PackOptions::default()
    };
    pack::pack(&mut Vec::new(), tree, "base", "V1", install, &opts).expect("pack");
    install.join("V1/base-V1.edeploy")
}

struct Packed {
    _dir: tempfile::TempDir,
    tree: PathBuf,
    install: PathBuf,
    archive: PathBuf,
    /// The tree as it should come out of the archive: the socket left out.
    want: BTreeMap<String, Node>,
    _sock: std::os::unix::net::UnixListener,
}

fn packed() -> Packed {
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).expect("mkdir");
    let sock = build_tree(&tree);
    let install = dir.path().join("install");
    let archive = pack_tree(&tree, &install);
    let mut want = snapshot(&tree);
    assert_eq!(want.remove("run/sock").map(|n| n.kind), Some('s'));
    // The tree is what the assertions say it is.
    let a = &want["usr/lib/a"];
    assert_eq!(a.first_name.as_deref(), Some("usr/lib/a"));
    assert_eq!(want["usr/share/c"].first_name.as_deref(), Some("usr/lib/a"));
    assert_eq!(want["usr/bin/su"].mode, 0o4755);
    assert_eq!(want["etc/epoch"].mtime, 0);
    assert!(long_file().len() > 150);
    assert!(want["usr/bin/ping"]
        .xattrs
        .iter()
        .any(|(n, v)| n == "security.capability" && !v.is_empty()));
    Packed {
        _dir: dir,
        tree,
        install,
        archive,
        want,
        _sock: sock,
    }
}

/// Compares two snapshots entry by entry, naming every difference.
fn assert_same(got: &BTreeMap<String, Node>, want: &BTreeMap<String, Node>, what: &str) {
    let mut diffs = Vec::new();
    for (path, w) in want {
        match got.get(path) {
            None => diffs.push(format!("{path}: missing")),
            Some(g) if g != w => diffs.push(format!("{path}: got {g:?}, want {w:?}")),
            Some(_) => {}
        }
    }
    for path in got.keys().filter(|p| !want.contains_key(*p)) {
        diffs.push(format!("{path}: extra"));
    }
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}

fn getcap(path: &Path) -> String {
    let out = Command::new("/usr/sbin/getcap")
        .arg(path)
        .output()
        .expect("getcap");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn gnu_tar(args: &[&str], archive: &Path, dir: Option<&Path>) -> String {
    let mut cmd = Command::new("tar");
    cmd.args(["--xattrs", "--xattrs-include=*", "--numeric-owner"])
        .args(args)
        .arg(archive);
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    let out = cmd.output().expect("run GNU tar");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tar {args:?}: {stderr}");
    assert!(stderr.is_empty(), "tar {args:?} warned: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The listing's line for `path` and the lines that follow it up to the
/// next entry (the `x:` lines of its extended attributes).
fn listed<'a>(listing: &'a str, path: &str) -> (&'a str, Vec<&'a str>) {
    let lines: Vec<&str> = listing.lines().collect();
    let i = lines
        .iter()
        .position(|l| {
            let name = l.split_once(" link to ").map_or(*l, |(n, _)| n);
            let name = name.split_once(" -> ").map_or(name, |(n, _)| n);
            name.ends_with(&format!(" {path}")) || name.ends_with(&format!(" {path}/"))
        })
        .unwrap_or_else(|| panic!("{path} not listed:\n{listing}"));
    let attrs = lines[i + 1..]
        .iter()
        .take_while(|l| l.starts_with("  "))
        .copied()
        .collect();
    (lines[i], attrs)
}

#[test]
fn gnu_tar_lists_hard_links_devices_fifos_and_xattrs() {
    let p = packed();
    let listing = gnu_tar(&["-tvvzf"], &p.archive, None);

    let (b, _) = listed(&listing, "usr/lib/b");
    assert!(b.starts_with('h'), "{b}");
    assert!(b.ends_with("usr/lib/b link to usr/lib/a"), "{b}");
    let (c, _) = listed(&listing, "usr/share/c");
    assert!(c.ends_with("usr/share/c link to usr/lib/a"), "{c}");
    let (a, _) = listed(&listing, "usr/lib/a");
    assert!(a.starts_with("-rw-r--r--"), "{a}");
    // The first name is the one with the data, the others are links.
    assert_eq!(listing.matches("link to usr/lib/a").count(), 2, "{listing}");
    let (twin, _) = listed(&listing, "etc/long-twin");
    assert!(
        twin.ends_with(&format!("etc/long-twin link to {}", long_file())),
        "{twin}"
    );

    let (null, _) = listed(&listing, "dev/null");
    assert!(null.starts_with("crw-rw-rw-"), "{null}");
    assert!(null.contains(" 1,3 "), "{null}");
    let (lp, _) = listed(&listing, "dev/loop0");
    assert!(lp.starts_with("brw-rw----"), "{lp}");
    assert!(lp.contains(" 0/6 "), "{lp}");
    assert!(lp.contains(" 7,0 "), "{lp}");
    let (fifo, _) = listed(&listing, "run/initctl");
    assert!(fifo.starts_with("prw-------"), "{fifo}");
    assert!(!listing.contains("run/sock"), "{listing}");

    let (su, _) = listed(&listing, "usr/bin/su");
    assert!(su.starts_with("-rwsr-xr-x"), "{su}");
    let (wall, _) = listed(&listing, "usr/bin/wall");
    assert!(wall.starts_with("-rwxr-sr-x"), "{wall}");
    assert!(wall.contains(" 0/5 "), "{wall}");
    let (owned, _) = listed(&listing, "home/user/owned");
    assert!(owned.contains(" 1234/2345 "), "{owned}");
    let (root, _) = listed(&listing, "root");
    assert!(root.starts_with("drwx------"), "{root}");
    let (link, _) = listed(&listing, "usr/lib/libx.so");
    assert!(link.starts_with('l'), "{link}");
    assert!(link.contains(" 1234/1234 "), "{link}");
    assert!(link.ends_with("usr/lib/libx.so -> libx.so.2"), "{link}");
    let (ll, _) = listed(&listing, &format!("{}/long-link", long_dir()));
    assert!(ll.ends_with(&format!(" -> {}", long_target())), "{ll}");

    // Extended attributes, each under its own entry (`x: SIZE NAME`).
    let (_, attrs) = listed(&listing, "etc/attr");
    assert_eq!(
        attrs,
        ["  x: 6 user.binary", "  x: 5 user.test"],
        "{listing}"
    );
    let (ping, attrs) = listed(&listing, "usr/bin/ping");
    assert!(ping.starts_with("-rwxr-xr-x*"), "{ping}");
    assert_eq!(attrs, ["  x: 20 security.capability"], "{listing}");
    let (_, attrs) = listed(&listing, &long_file());
    assert_eq!(attrs, ["  x: 4 user.test"], "{listing}");
    let (_, attrs) = listed(&listing, "dev");
    assert_eq!(attrs, ["  x: 3 user.dir"], "{listing}");
    let (_, attrs) = listed(&listing, "etc/plain");
    assert!(attrs.is_empty(), "{attrs:?}");
}

#[test]
fn gnu_tar_extracts_the_tree_as_it_was() {
    let p = packed();
    let out = tempfile::tempdir().expect("tmp");
    gnu_tar(&["-xpzf"], &p.archive, Some(out.path()));
    let got = snapshot(out.path());
    assert_same(&got, &p.want, "GNU tar's extraction");
    let a = out.path().join("usr/lib/a").metadata().expect("a");
    let c = out.path().join("usr/share/c").metadata().expect("c");
    assert_eq!((a.ino(), a.nlink()), (c.ino(), 3));
    assert!(getcap(&out.path().join("usr/bin/ping")).contains("cap_net_raw=ep"));
}

#[test]
fn the_installer_unpacks_the_tree_as_it_was() {
    let p = packed();
    let dest = tempfile::tempdir().expect("tmp");
    let d = dest.path();
    // A target that already has some of it: a regular file where the tree
    // has a device, a directory with other owner and mode, a file of its
    // own, a fifo where the tree has a file.
    mkdir(d, "dev", 0o700, (1234, 1234));
    put(d, "dev/null", "not a device", 0o600, (0, 0));
    put(d, "dev/keep", "kept", 0o600, (0, 0));
    mkdir(d, "etc", 0o700, (0, 0));
    mknod(&d.join("etc/plain"), libc::S_IFIFO, 0o600, 0, 0);

    let bytes = fs::read(&p.archive).expect("archive");
    let screen: Vec<u8> = Vec::new();
    let console = Console::new(Box::new(screen));
    let n = fetch::unpack_verified(
        &bytes[..],
        Some(bytes.len() as u64),
        d,
        "base-V1.edeploy",
        &console,
        &Tuning::default(),
    )
    .expect("unpack");
    assert_eq!(n, bytes.len() as u64);
    assert!(!d.join(STAGING).exists());
    assert_eq!(
        fs::read_to_string(d.join("dev/keep")).expect("keep"),
        "kept"
    );
    let mut got = snapshot(d);
    got.remove("dev/keep");
    assert_same(&got, &p.want, "the installer's unpacking");
    let null = d.join("dev/null").metadata().expect("null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert!(d
        .join("run/initctl")
        .metadata()
        .expect("fifo")
        .file_type()
        .is_fifo());
    let a = d.join("usr/lib/a").metadata().expect("a");
    let b = d.join("usr/lib/b").metadata().expect("b");
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 3));
    assert!(getcap(&d.join("usr/bin/ping")).contains("cap_net_raw=ep"));
}

#[test]
fn the_installer_unpacks_gnu_tars_own_archive() {
    // GNU tar's POSIX format puts long paths, times and attributes in PAX
    // headers of its own making.
    let p = packed();
    let gnu = p.install.join("gnu.tar.gz");
    let out = Command::new("tar")
        .args(["--format=posix", "--xattrs", "--xattrs-include=*"])
        .args(["--numeric-owner", "-czf"])
        .arg(&gnu)
        .arg("-C")
        .arg(&p.tree)
        .arg(".")
        .output()
        .expect("run GNU tar");
    // Its only complaint: the socket it leaves out.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.trim(), "tar: ./run/sock: socket ignored");
    let dest = tempfile::tempdir().expect("tmp");
    let bytes = fs::read(&gnu).expect("archive");
    fetch::unpack_verified(
        &bytes[..],
        Some(bytes.len() as u64),
        dest.path(),
        "gnu.tar.gz",
        &Console::new(Box::new(std::io::sink())),
        &Tuning::default(),
    )
    .expect("unpack");
    assert_same(&snapshot(dest.path()), &p.want, "GNU tar's archive");
}

#[test]
fn the_manifest_describes_what_is_unpacked() {
    let p = packed();
    let m = Manifest::load(&p.install.join("V1/base-V1.manifest")).expect("manifest");
    let null = m.get("dev/null").expect("dev/null");
    assert_eq!(
        (null.kind, null.rdev),
        (Kind::Char, Some(libc::makedev(1, 3)))
    );
    assert_eq!(m.get("dev/loop0").map(|e| e.kind), Some(Kind::Block));
    assert_eq!(m.get("run/initctl").map(|e| e.kind), Some(Kind::Fifo));
    assert_eq!(m.get("run/sock").map(|e| e.kind), Some(Kind::Socket));
    let a = m.get("usr/lib/a").expect("a");
    let c = m.get("usr/share/c").expect("c");
    assert_eq!((c.kind, &c.sha256), (Kind::File, &a.sha256));
    assert_eq!(m.get(&long_file()).map(|e| e.size), Some(5));

    // Both extractions scan to the packed manifest (the socket aside).
    let skip = Rules::excluding(&[format!("/{}", layout::MANIFESTS)]);
    let mut want = m.entries.clone();
    want.retain(|e| e.kind != Kind::Socket);
    let gnu = tempfile::tempdir().expect("tmp");
    gnu_tar(&["-xpzf"], &p.archive, Some(gnu.path()));
    let ours = tempfile::tempdir().expect("tmp");
    let bytes = fs::read(&p.archive).expect("archive");
    fetch::unpack_verified(
        &bytes[..],
        None,
        ours.path(),
        "base-V1.edeploy",
        &Console::new(Box::new(std::io::sink())),
        &Tuning::default(),
    )
    .expect("unpack");
    for (what, dir) in [("GNU tar", gnu.path()), ("the installer", ours.path())] {
        let got = Manifest::build(dir, "base", "V1", &skip).expect("scan");
        assert_eq!(got.entries.len(), want.len(), "{what}");
        for (g, w) in got.entries.iter().zip(&want) {
            assert_eq!(g, w, "{what}");
        }
        // The manifest copied into the tree came along.
        assert!(dir
            .join(layout::MANIFESTS)
            .join("base-V1.manifest")
            .is_file());
    }
    // Packing the tree again changes nothing.
    let again = tempfile::tempdir().expect("tmp");
    let archive = pack_tree(&p.tree, again.path());
    assert!(archive.is_file());
    assert_eq!(
        Manifest::load(&again.path().join("V1/base-V1.manifest")).expect("again"),
        m
    );
}

/// A gzip'd tar with one special entry named `name` (written into the
/// header as it is, so `..` stays), after `before`.
fn hostile(before: &[(&str, &str)], name: &[u8]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (path, target) in before {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(T as u64);
        h.set_size(0);
        b.append_link(&mut h, path, target).expect("symlink");
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_mode(0o666);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(T as u64);
    h.set_size(0);
    h.set_device_major(1).expect("major");
    h.set_device_minor(3).expect("minor");
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    b.append(&h, std::io::empty()).expect("device");
    b.into_inner().expect("tar").finish().expect("gzip")
}

#[test]
fn special_entries_never_leave_the_target() {
    let outside = tempfile::tempdir().expect("tmp");
    let o = outside.path().to_string_lossy().into_owned();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("dot-dot", hostile(&[], b"../escaped"), "outside the target"),
        (
            "through a symlink",
            hostile(&[("dev", &o)], b"dev/escaped"),
            "is not a directory",
        ),
    ];
    for (what, bytes, why) in cases {
        let d = tempfile::tempdir().expect("tmp");
        let target = d.path().join("root");
        fs::create_dir(&target).expect("mkdir");
        let err = fetch::unpack_verified(
            &bytes[..],
            None,
            &target,
            "t.edeploy",
            &Console::new(Box::new(std::io::sink())),
            &Tuning::default(),
        )
        .expect_err(what);
        let err = format!("{err:#}");
        assert!(err.contains(why), "{what}: {err}");
        assert!(err.contains("escaped"), "{what}: {err}");
        assert_eq!(fs::read_dir(&target).expect("ls").count(), 0, "{what}");
        assert!(!d.path().join("escaped").exists(), "{what}");
        assert_eq!(
            fs::read_dir(outside.path()).expect("ls").count(),
            0,
            "{what}"
        );
    }
}
