//! `/var/lib/edeploy/conf`: what the installer recorded about this host.
//!
//! The file is shell-style `KEY=value` lines (SPEC §10), sourced by the
//! original's shell scripts, so values may be quoted with `'` or `"`. We
//! keep every line we do not change, in order, so rewriting `VERS` after
//! an upgrade leaves the rest of an operator's file as it was.

use crate::archive::layout::INSTALL;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where the file lives, relative to the host's root.
pub const CONF: &str = "var/lib/edeploy/conf";

/// The parsed file: its lines, and the values of its assignments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conf {
    lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Assign { key: String, value: String },
    Other(String),
}

/// Removes one level of shell quoting from a simple value.
fn unquote(raw: &str) -> String {
    let raw = raw.trim();
    let b = raw.as_bytes();
    if b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
        let inner = &raw[1..raw.len() - 1];
        if b[0] == b'"' {
            return inner.replace("\\\"", "\"").replace("\\\\", "\\");
        }
        return inner.to_string();
    }
    raw.to_string()
}

/// Quotes a value for a shell only when it needs it.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@+,".contains(c));
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

impl Conf {
    /// Parses the text of a conf file. Lines that are not assignments
    /// (comments, blank lines) are kept as they are.
    pub fn parse(text: &str) -> Conf {
        let lines = text
            .lines()
            .map(|line| {
                let t = line.trim_start();
                let t = t.strip_prefix("export ").unwrap_or(t);
                match t.split_once('=') {
                    Some((k, v))
                        if !t.starts_with('#')
                            && !k.is_empty()
                            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                    {
                        Line::Assign {
                            key: k.to_string(),
                            value: unquote(v),
                        }
                    }
                    _ => Line::Other(line.to_string()),
                }
            })
            .collect();
        Conf { lines }
    }

    /// The path of the conf file under `root`.
    pub fn path(root: &Path) -> PathBuf {
        root.join(CONF)
    }

    /// Reads `ROOT/var/lib/edeploy/conf`.
    pub fn load(root: &Path) -> Result<Conf> {
        let path = Conf::path(root);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: cannot read the host's eDeploy configuration (was this host installed by eDeploy?)",
                path.display()
            )
        })?;
        Ok(Conf::parse(&text))
    }

    /// Writes the file back atomically.
    pub fn save(&self, root: &Path) -> Result<()> {
        crate::persist::write_atomic(&Conf::path(root), self.to_text().as_bytes())
    }

    /// The text of the file.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Assign { key, value } => {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(&quote(value));
                }
                Line::Other(s) => out.push_str(s),
            }
            out.push('\n');
        }
        out
    }

    /// The value of the last assignment of `key` (as a shell would see it).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().rev().find_map(|l| match l {
            Line::Assign { key: k, value } if k == key => Some(value.as_str()),
            _ => None,
        })
    }

    /// A value that must be there and not empty.
    pub fn require(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => bail!("{CONF}: {key} is not set"),
        }
    }

    /// Sets `key`, replacing its assignments in place or appending one.
    pub fn set(&mut self, key: &str, value: &str) {
        let mut found = false;
        self.lines.retain_mut(|l| match l {
            Line::Assign { key: k, value: v } if k == key => {
                if found {
                    return false;
                }
                found = true;
                *v = value.to_string();
                true
            }
            _ => true,
        });
        if !found {
            self.lines.push(Line::Assign {
                key: key.to_string(),
                value: value.to_string(),
            });
        }
    }

    /// The installed version (`VERS`).
    pub fn version(&self) -> Result<&str> {
        self.require("VERS")
    }

    /// The host's role (`ROLE`).
    pub fn role(&self) -> Result<&str> {
        self.require("ROLE")
    }

    /// The rsync server, its port and the install module (`RSERV`, falling
    /// back to `SERV`; `RSERV_PORT` 873; `RPATH` `install`).
    pub fn rsync_server(&self) -> Result<(String, u16, String)> {
        let host = match self.get("RSERV").filter(|v| !v.is_empty()) {
            Some(h) => h,
            None => self
                .get("SERV")
                .filter(|v| !v.is_empty())
                .with_context(|| {
                    format!("{CONF}: neither RSERV nor SERV is set: no rsync server to ask")
                })?,
        };
        self.server(host, ("RSERV_PORT", 873), "RPATH")
    }

    /// The HTTP server, its port and the install path (`HSERV`;
    /// `HSERV_PORT` 80, 443 with `HTTPS=1`; `HPATH` `install`).
    pub fn http_server(&self) -> Result<(String, u16, String)> {
        let host = self
            .get("HSERV")
            .filter(|v| !v.is_empty())
            .with_context(|| format!("{CONF}: HSERV is not set: no HTTP server to ask"))?;
        let default = if self.https()? { 443 } else { 80 };
        self.server(host, ("HSERV_PORT", default), "HPATH")
    }

    /// `HTTPS=1` (written by the installer when it ran with `HTTPS=1`):
    /// the HTTP server is asked over `https://`, with the host's pinned CA
    /// (`/etc/edeploy/ca.pem`). Unset, empty or `0`: plain `http://`.
    pub fn https(&self) -> Result<bool> {
        match self.get("HTTPS").unwrap_or_default() {
            "" | "0" => Ok(false),
            "1" => Ok(true),
            v => bail!("{CONF}: HTTPS={v}: expected 0 or 1"),
        }
    }

    /// `host` with the port its key gives (the default when unset) and the
    /// install path its key gives (`install` when unset), without the
    /// path's outer slashes.
    fn server(
        &self,
        host: &str,
        (key, default): (&str, u16),
        path_key: &str,
    ) -> Result<(String, u16, String)> {
        let port = port(self.get(key), default, key)?;
        let path = self
            .get(path_key)
            .filter(|v| !v.is_empty())
            .unwrap_or(INSTALL);
        Ok((host.to_string(), port, path.trim_matches('/').to_string()))
    }
}

fn port(value: Option<&str>, default: u16, key: &str) -> Result<u16> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .with_context(|| format!("{CONF}: {key}={v} is not a port number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shell_assignments_and_keeps_the_rest() {
        let text = "# written by edeploy-init\nVERS=D7-F.1.0.0\nROLE='mysql'\nSERV=\"10.0.0.1\"\nexport RSERV_PORT=873\n\n";
        let mut c = Conf::parse(text);
        assert_eq!(c.version().unwrap(), "D7-F.1.0.0");
        assert_eq!(c.role().unwrap(), "mysql");
        assert_eq!(
            c.rsync_server().unwrap(),
            ("10.0.0.1".into(), 873, "install".into())
        );
        assert!(c.http_server().is_err());
        c.set("VERS", "D7-F.1.0.1");
        assert_eq!(
            c.to_text(),
            "# written by edeploy-init\nVERS=D7-F.1.0.1\nROLE=mysql\nSERV=10.0.0.1\nRSERV_PORT=873\n\n"
        );
        c.set("HSERV", "a b");
        assert!(c.to_text().ends_with("HSERV='a b'\n"));
        assert_eq!(Conf::parse(&c.to_text()).get("HSERV"), Some("a b"));
    }

    #[test]
    fn bad_port_is_named() {
        let c = Conf::parse("SERV=x\nRSERV_PORT=eight\n");
        let e = c.rsync_server().unwrap_err().to_string();
        assert!(e.contains("RSERV_PORT=eight"), "{e}");
    }
}
