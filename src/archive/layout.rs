//! The repository layout, and every URL built to reach it.
//!
//! The operator's install directory (`edeploy pack --install DIR`, served
//! as `HPATH` over HTTP and as the `RPATH` module over rsync, and found as
//! `install/` on an installation medium) holds, per version:
//!
//! ```text
//! DIR/VERS/ROLE/                 the tree (rsync, a medium)
//! DIR/VERS/ROLE-VERS.edeploy     the tree as a gzip'd tar (HTTP, a medium)
//! DIR/VERS/ROLE-VERS.manifest    what the tree holds
//! DIR/VERS/ROLE-FROM-VERS.delta  an upgrade from FROM over HTTP
//! ```
//!
//! The rsync daemon's `metadata` module holds each upgrade path's
//! `FROM/ROLE/TO/` (exclude, add_only, pre, post). An installed tree keeps
//! its manifests in `var/lib/edeploy/manifests/`.
//!
//! Server names come from the kernel command line and
//! `/var/lib/edeploy/conf`, where an IPv6 address may be written bare or
//! in brackets; [`bracket`] puts it in brackets exactly once, and every URL
//! here goes through it.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The install directory's default path on a server (`HPATH`, `RPATH`),
/// and its name on an installation medium.
pub const INSTALL: &str = "install";

/// The rsync daemon's module of upgrade paths (fixed by the original's
/// rsyncd.conf).
pub const METADATA_MODULE: &str = "metadata";

/// Where a tree keeps its manifests, relative to its root.
pub const MANIFESTS: &str = "var/lib/edeploy/manifests";

/// `fd00::1` → `[fd00::1]`; a name, an IPv4 address and an address
/// already in brackets are kept as they are.
pub fn bracket(host: &str) -> Cow<'_, str> {
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        Cow::Owned(format!("[{host}]"))
    } else {
        Cow::Borrowed(host)
    }
}

/// `PREFIX/REST`, or `REST` with an empty prefix (its outer slashes
/// dropped).
fn under(prefix: &str, rest: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}/{rest}")
    }
}

/// `http://HOST:PORT/PATH` (IPv6 hosts bracketed once).
pub fn http_url(host: &str, port: u16, path: &str) -> String {
    let path = path.trim_start_matches('/');
    format!("http://{}:{port}/{path}", bracket(host))
}

/// `rsync://HOST:PORT/` (IPv6 hosts bracketed once).
pub fn rsync_base(host: &str, port: u16) -> String {
    format!("rsync://{}:{port}/", bracket(host))
}

/// `ROLE-VERS.edeploy`
pub fn archive_name(role: &str, vers: &str) -> String {
    format!("{role}-{vers}.edeploy")
}

/// `ROLE-VERS.manifest`
pub fn manifest_name(role: &str, vers: &str) -> String {
    format!("{role}-{vers}.manifest")
}

/// `ROLE-FROM-TO.delta`
pub fn delta_name(role: &str, from: &str, to: &str) -> String {
    format!("{role}-{from}-{to}.delta")
}

/// `DIR/VERS/`: a version's directory in an install directory.
pub fn repo_version(install: &Path, vers: &str) -> PathBuf {
    install.join(vers)
}

/// `DIR/VERS/ROLE-VERS.edeploy`
pub fn repo_archive(install: &Path, role: &str, vers: &str) -> PathBuf {
    repo_version(install, vers).join(archive_name(role, vers))
}

/// `DIR/VERS/ROLE-VERS.manifest`
pub fn repo_manifest(install: &Path, role: &str, vers: &str) -> PathBuf {
    repo_version(install, vers).join(manifest_name(role, vers))
}

/// `DIR/VERS/ROLE/`
pub fn repo_tree(install: &Path, role: &str, vers: &str) -> PathBuf {
    repo_version(install, vers).join(role)
}

/// `ROOT/var/lib/edeploy/manifests`
pub fn manifest_dir(root: &Path) -> PathBuf {
    root.join(MANIFESTS)
}

/// `ROOT/var/lib/edeploy/manifests/ROLE-VERS.manifest`
pub fn manifest_path(root: &Path, role: &str, vers: &str) -> PathBuf {
    manifest_dir(root).join(manifest_name(role, vers))
}

/// `http://HSERV:HSERV_PORT/HPATH/VERS/ROLE-VERS.edeploy`
pub fn archive_url(hserv: &str, port: u16, hpath: &str, role: &str, vers: &str) -> String {
    let rest = format!("{vers}/{}", archive_name(role, vers));
    http_url(hserv, port, &under(hpath, &rest))
}

/// `http://HSERV:HSERV_PORT/HPATH/TO/ROLE-FROM-TO.delta`
pub fn delta_url(hserv: &str, port: u16, hpath: &str, role: &str, from: &str, to: &str) -> String {
    let rest = format!("{to}/{}", delta_name(role, from, to));
    http_url(hserv, port, &under(hpath, &rest))
}

/// `rsync://RSERV:RSERV_PORT/RPATH/VERS/ROLE/`
pub fn tree_url(rserv: &str, port: u16, rpath: &str, role: &str, vers: &str) -> String {
    let rest = format!("{vers}/{role}/");
    format!("{}{}", rsync_base(rserv, port), under(rpath, &rest))
}

/// `rsync://RSERV:RSERV_PORT/RPATH/VERS/ROLE-VERS.manifest`
pub fn manifest_url(rserv: &str, port: u16, rpath: &str, role: &str, vers: &str) -> String {
    let rest = format!("{vers}/{}", manifest_name(role, vers));
    format!("{}{}", rsync_base(rserv, port), under(rpath, &rest))
}

/// `http://HSERV:HSERV_PORT/HPATH/VERS/ROLE-VERS.manifest`
pub fn manifest_http_url(hserv: &str, port: u16, hpath: &str, role: &str, vers: &str) -> String {
    let rest = format!("{vers}/{}", manifest_name(role, vers));
    http_url(hserv, port, &under(hpath, &rest))
}

/// `rsync://RSERV:RSERV_PORT/metadata/FROM/ROLE/`, and `TO/` under it.
pub fn metadata_url(rserv: &str, port: u16, from: &str, role: &str, to: Option<&str>) -> String {
    let base = rsync_base(rserv, port);
    match to {
        Some(to) => format!("{base}{METADATA_MODULE}/{from}/{role}/{to}/"),
        None => format!("{base}{METADATA_MODULE}/{from}/{role}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_address_is_bracketed_once() {
        assert_eq!(bracket("fd00::1"), "[fd00::1]");
        assert_eq!(bracket("[fd00::1]"), "[fd00::1]");
        assert_eq!(bracket("host.example"), "host.example");
        assert_eq!(bracket("10.0.0.1"), "10.0.0.1");
        for host in ["fd00::1", "[fd00::1]"] {
            assert_eq!(http_url(host, 80, "/a"), "http://[fd00::1]:80/a");
            assert_eq!(rsync_base(host, 873), "rsync://[fd00::1]:873/");
            assert_eq!(
                metadata_url(host, 873, "V1", "base", None),
                "rsync://[fd00::1]:873/metadata/V1/base/"
            );
        }
        assert_eq!(http_url("10.0.0.1", 80, "x"), "http://10.0.0.1:80/x");
    }

    #[test]
    fn urls_follow_the_layout() {
        let cases = [
            (
                archive_url("h", 80, "install", "base", "V1"),
                "http://h:80/install/V1/base-V1.edeploy",
            ),
            (
                archive_url("h", 80, "", "base", "V1"),
                "http://h:80/V1/base-V1.edeploy",
            ),
            (
                delta_url("h", 80, "install", "base", "V1", "V2"),
                "http://h:80/install/V2/base-V1-V2.delta",
            ),
            (
                tree_url("h", 873, "install", "base", "V1"),
                "rsync://h:873/install/V1/base/",
            ),
            (
                tree_url("h", 873, "", "base", "V1"),
                "rsync://h:873/V1/base/",
            ),
            (
                manifest_url("h", 873, "install", "base", "V1"),
                "rsync://h:873/install/V1/base-V1.manifest",
            ),
            (
                metadata_url("h", 873, "V1", "base", Some("V2")),
                "rsync://h:873/metadata/V1/base/V2/",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        let d = Path::new("/srv/install");
        assert_eq!(
            repo_archive(d, "base", "V1"),
            Path::new("/srv/install/V1/base-V1.edeploy")
        );
        assert_eq!(
            repo_tree(d, "base", "V1"),
            Path::new("/srv/install/V1/base")
        );
        assert_eq!(
            manifest_path(Path::new("/"), "base", "V1"),
            Path::new("/var/lib/edeploy/manifests/base-V1.manifest")
        );
    }
}
