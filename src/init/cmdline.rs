//! The kernel command line (`/proc/cmdline`) as typed installer settings.
//!
//! Variables are `NAME=value` words; every other word (`console=ttyS0`,
//! `quiet`, `initrd=…`) belongs to the kernel and is ignored. Words between
//! `|` markers are not read as variables: they are kept, in order, for the
//! installed system's kernel command line (`… SERV=10.0.0.1 | console=ttyS0
//! quiet | VERBOSE=1`). A single `|` keeps everything after it.
//!
//! Rules where SPEC §10 is silent, written down in `docs/installer.md`: a
//! variable given twice takes its last value (what the original's shell
//! did); a variable given empty (`HSERV=`) takes its default, like the
//! shell's `${VAR:-default}`; a bad value is an error naming the variable,
//! and all bad values are reported together.

use std::fmt;

/// What to do once the installation succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSuccess {
    Kexec,
    Reboot,
    Halt,
    Console,
}

/// What to do once the installation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    Reboot,
    Halt,
    Console,
}

/// `BOOTORDER`: where a UEFI install puts its NVRAM entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootOrder {
    /// First in BootOrder (what `efibootmgr -c` does).
    First,
    /// BootOrder set back exactly as it was before the install.
    Keep,
}

/// How one interface is brought up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpMode {
    Dhcp,
    /// An address with its prefix length (`10.0.0.5/24`).
    Static(std::net::Ipv4Addr, u8),
    None,
}

impl fmt::Display for IpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpMode::Dhcp => write!(f, "dhcp"),
            IpMode::Static(a, p) => write!(f, "{a}/{p}"),
            IpMode::None => write!(f, "none"),
        }
    }
}

/// `IP=`: per-interface modes, and the mode of every interface not named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Named interfaces, in command-line order.
    pub interfaces: Vec<(String, IpMode)>,
    /// `all:…`; when `IP` names interfaces without `all`, the others are
    /// left alone (`None`).
    pub all: IpMode,
}

impl Default for IpConfig {
    fn default() -> IpConfig {
        IpConfig {
            interfaces: Vec::new(),
            all: IpMode::Dhcp,
        }
    }
}

impl IpConfig {
    /// The mode of interface `name`.
    pub fn mode(&self, name: &str) -> &IpMode {
        self.interfaces
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m)
            .unwrap_or(&self.all)
    }
}

/// Every installer variable, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub serv: String,
    pub http_port: u16,
    /// Always starts and ends with `/` (`/cgi-bin/`).
    pub http_path: String,
    /// Trees over HTTP when set.
    pub hserv: Option<String>,
    pub hserv_port: u16,
    /// Without leading or trailing `/` (`install`).
    pub hpath: String,
    pub rserv: String,
    pub rserv_port: u16,
    /// Without leading or trailing `/` (`install`).
    pub rpath: String,
    pub onsuccess: OnSuccess,
    pub onfailure: OnFailure,
    pub verbose: bool,
    pub upload_log: bool,
    pub kexec_kernel: Option<String>,
    pub ip: IpConfig,
    pub embedded: Option<String>,
    pub section: Option<String>,
    /// `HEALTH=1`: run the health check (benchmarks, results to
    /// `upload-health.cgi`) instead of installing.
    pub health: bool,
    /// `HEALTH_TIME`: seconds each benchmark of the health check runs.
    pub health_time: u32,
    /// `BOOTORDER`: the UEFI install's entry first, or the order kept.
    pub bootorder: BootOrder,
    /// `HTTPS=1`: `upload.cgi` and the `HSERV` trees over `https://`, with
    /// the initrd's pinned CA; the default ports become 443.
    pub https: bool,
    /// `REQUIRE_SIGNATURES`: whether the answer of `upload.cgi` must be
    /// signed; unset: as soon as the initrd trusts a key.
    pub require_signatures: Option<bool>,
    /// The words between `|` markers, for the installed system.
    pub kept: Vec<String>,
    /// Deprecated variables that were translated, one sentence each.
    pub warnings: Vec<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            serv: "10.0.0.1".into(),
            http_port: 80,
            http_path: "/cgi-bin/".into(),
            hserv: None,
            hserv_port: 80,
            hpath: "install".into(),
            rserv: "10.0.0.1".into(),
            rserv_port: 873,
            rpath: "install".into(),
            onsuccess: OnSuccess::Reboot,
            onfailure: OnFailure::Halt,
            verbose: false,
            upload_log: false,
            kexec_kernel: None,
            ip: IpConfig::default(),
            embedded: None,
            section: None,
            health: false,
            health_time: DEFAULT_HEALTH_TIME,
            bootorder: BootOrder::First,
            https: false,
            require_signatures: None,
            kept: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// A command line with bad values. `partial` holds the settings with each
/// bad variable at its default, so the installer still knows where to
/// report and what to do on failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdlineError {
    pub errors: Vec<String>,
    pub partial: Box<Settings>,
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad kernel command line: {}", self.errors.join("; "))
    }
}

impl std::error::Error for CmdlineError {}

/// Splits a command line into words, honouring the kernel's double quotes
/// (`foo="a b"` is one word, quotes removed).
pub fn words(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Seconds each health-check benchmark runs unless `HEALTH_TIME` says.
pub const DEFAULT_HEALTH_TIME: u32 = 5;
/// The longest `HEALTH_TIME` accepted: an hour per benchmark.
pub const MAX_HEALTH_TIME: u32 = 3600;

/// One installer variable: its name, what it sets, and how. `set` gets
/// the settings, the variable's name (for messages) and its value (never
/// empty: an empty value keeps the default); it returns the message of a
/// bad value.
struct Key {
    name: &'static str,
    #[allow(dead_code)] // Read by people: the one place a variable is described.
    doc: &'static str,
    set: fn(&mut Settings, &str, &str) -> Result<(), String>,
}

/// The installer's variables, in the order they are applied (a later one
/// overrides what an earlier one set: `ONFAILURE` wins over `DEBUG`) and
/// their errors reported.
const KEYS: &[Key] = &[
    Key {
        name: "SERV",
        doc: "The server of `upload.cgi`; also the rsync server unless `RSERV` says.",
        set: |s, k, v| {
            let h = host(k, v)?;
            s.rserv = h.clone();
            s.serv = h;
            Ok(())
        },
    },
    Key {
        name: "RSERV",
        doc: "The rsync server of the trees (`rsync://RSERV:RSERV_PORT/RPATH/…`).",
        set: |s, k, v| host(k, v).map(|h| s.rserv = h),
    },
    Key {
        name: "HSERV",
        doc: "Trees over HTTP from this server (`http://HSERV:HSERV_PORT/HPATH/…`); rsync when unset.",
        set: |s, k, v| host(k, v).map(|h| s.hserv = Some(h)),
    },
    Key {
        name: "HTTPS",
        doc: "`1`: `upload.cgi` and the `HSERV` trees over `https://`, checked against the initrd's `etc/edeploy/ca.pem`; `HTTP_PORT` and `HSERV_PORT` then default to 443.",
        set: |s, k, v| {
            flag(k, v).map(|b| {
                s.https = b;
                if b {
                    s.http_port = 443;
                    s.hserv_port = 443;
                }
            })
        },
    },
    Key {
        name: "HTTP_PORT",
        doc: "The port of `upload.cgi`'s server.",
        set: |s, k, v| port(k, v).map(|p| s.http_port = p),
    },
    Key {
        name: "HSERV_PORT",
        doc: "The port of the trees' HTTP server.",
        set: |s, k, v| port(k, v).map(|p| s.hserv_port = p),
    },
    Key {
        name: "RSERV_PORT",
        doc: "The port of the rsync server.",
        set: |s, k, v| port(k, v).map(|p| s.rserv_port = p),
    },
    Key {
        name: "HTTP_PATH",
        doc: "Where `upload.cgi` lives (slashes added as needed).",
        set: |s, k, v| {
            url_path(k, v).map(|p| {
                s.http_path = if p.is_empty() {
                    "/".into()
                } else {
                    format!("/{p}/")
                }
            })
        },
    },
    Key {
        name: "HPATH",
        doc: "The path of the trees on the HTTP server.",
        set: |s, k, v| url_path(k, v).map(|p| s.hpath = p),
    },
    Key {
        name: "RPATH",
        doc: "The path of the trees on the rsync server.",
        set: |s, k, v| url_path(k, v).map(|p| s.rpath = p),
    },
    Key {
        name: "DEBUG",
        doc: "Deprecated: anything but 0 is ONFAILURE=console.",
        set: |s, _, v| {
            deprecated(s, v, "DEBUG=1 is deprecated: use ONFAILURE=console", |s| {
                s.onfailure = OnFailure::Console
            })
        },
    },
    Key {
        name: "NOREBOOT",
        doc: "Deprecated: anything but 0 is ONSUCCESS=kexec.",
        set: |s, _, v| {
            deprecated(s, v, "NOREBOOT=1 is deprecated: use ONSUCCESS=kexec", |s| {
                s.onsuccess = OnSuccess::Kexec
            })
        },
    },
    Key {
        name: "ONSUCCESS",
        doc: "What to do after an installation: kexec, reboot, halt or console.",
        set: |s, k, v| {
            let actions = [
                ("kexec", OnSuccess::Kexec),
                ("reboot", OnSuccess::Reboot),
                ("halt", OnSuccess::Halt),
                ("console", OnSuccess::Console),
            ];
            choice(k, v, &actions).map(|a| s.onsuccess = a)
        },
    },
    Key {
        name: "ONFAILURE",
        doc: "What to do after a failure: reboot, halt or console.",
        set: |s, k, v| {
            let actions = [
                ("reboot", OnFailure::Reboot),
                ("halt", OnFailure::Halt),
                ("console", OnFailure::Console),
            ];
            choice(k, v, &actions).map(|a| s.onfailure = a)
        },
    },
    Key {
        name: "VERBOSE",
        doc: "`1`: every command and its output on the console.",
        set: |s, k, v| flag(k, v).map(|b| s.verbose = b),
    },
    Key {
        name: "UPLOAD_LOG",
        doc: "`1`: upload the gzip'd install log when the install fails.",
        set: |s, k, v| flag(k, v).map(|b| s.upload_log = b),
    },
    Key {
        name: "HEALTH",
        doc: "`1`: run the health check instead of installing.",
        set: |s, k, v| flag(k, v).map(|b| s.health = b),
    },
    Key {
        name: "KEXEC_KERNEL",
        doc: "The kernel version to kexec into (the newest when unset).",
        set: |s, k, v| name_value(k, v).map(|n| s.kexec_kernel = Some(n)),
    },
    Key {
        name: "SECTION",
        doc: "The configuration section to ask the server for.",
        set: |s, k, v| name_value(k, v).map(|n| s.section = Some(n)),
    },
    Key {
        name: "EMBEDDED",
        doc: "Install from a local medium: an absolute path (a device or a directory).",
        set: |s, _, v| {
            if v.starts_with('/') && !v.split('/').any(|c| c == "..") {
                s.embedded = Some(v.to_string());
                Ok(())
            } else {
                Err(format!(
                    "EMBEDDED={v}: expected an absolute path (a device such as /dev/sr0, or a directory)"
                ))
            }
        },
    },
    Key {
        name: "IP",
        doc: "How interfaces come up: `eth0:dhcp,eth1:10.0.0.5/24,all:none`.",
        set: |s, _, v| parse_ip(v).map(|ip| s.ip = ip),
    },
    Key {
        name: "HEALTH_TIME",
        doc: "Seconds each benchmark of the health check runs.",
        set: |s, _, v| match v.parse::<u32>() {
            Ok(n) if (1..=MAX_HEALTH_TIME).contains(&n) => {
                s.health_time = n;
                Ok(())
            }
            _ => Err(format!(
                "HEALTH_TIME={v}: expected a number of seconds (1-{MAX_HEALTH_TIME})"
            )),
        },
    },
    Key {
        name: "BOOTORDER",
        doc: "On UEFI nodes: `first` puts the installed system's NVRAM entry first in BootOrder; `keep` sets BootOrder back as it was (the network first, say).",
        set: |s, k, v| {
            let orders = [("first", BootOrder::First), ("keep", BootOrder::Keep)];
            choice(k, v, &orders).map(|o| s.bootorder = o)
        },
    },
    Key {
        name: "REQUIRE_SIGNATURES",
        doc: "`1`: refuse anything unsigned (the answer of `upload.cgi`, the tree), even without keys; `0`: accept it with a warning although the initrd trusts keys. Unset: required as soon as the initrd trusts a key.",
        set: |s, k, v| flag(k, v).map(|b| s.require_signatures = Some(b)),
    },
];

impl Settings {
    /// Parses the text of `/proc/cmdline`.
    pub fn parse(cmdline: &str) -> Result<Settings, CmdlineError> {
        let mut vars: Vec<(String, String)> = Vec::new();
        let mut kept = Vec::new();
        let mut keeping = false;
        for w in words(cmdline) {
            if w == "|" {
                keeping = !keeping;
                continue;
            }
            if keeping {
                kept.push(w);
                continue;
            }
            if let Some((k, v)) = w.split_once('=') {
                if KEYS.iter().any(|key| key.name == k) {
                    // The last one wins, as in the original's shell.
                    vars.retain(|(n, _)| n != k);
                    vars.push((k.to_string(), v.to_string()));
                }
            }
        }
        let get = |name: &str| -> Option<&str> {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let mut s = Settings {
            kept,
            ..Settings::default()
        };
        let mut errors = Vec::new();
        for key in KEYS {
            if let Some(v) = get(key.name) {
                if let Err(e) = (key.set)(&mut s, key.name, v) {
                    errors.push(e);
                }
            }
        }
        // A health check installs nothing to start or reboot into: unless
        // told otherwise, the node powers off once its results are kept
        // (a reboot would boot the health check again from PXE).
        if s.health && get("ONSUCCESS").is_none() && get("NOREBOOT").is_none_or(|v| v == "0") {
            s.onsuccess = OnSuccess::Halt;
        }
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(CmdlineError {
                errors,
                partial: Box::new(s),
            })
        }
    }
}

/// A host name or an IPv4/IPv6 address (IPv6 in brackets for URLs).
fn host(name: &str, v: &str) -> Result<String, String> {
    let ok = if let Some(inner) = v.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !v.starts_with(['-', '.'])
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{name}={v}: expected a host name or an IP address (IPv6 in brackets)"
        ))
    }
}

fn port(name: &str, v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{name}={v}: expected a port number (1-65535)")),
    }
}

/// A path on a web or rsync server, returned without its outer slashes.
fn url_path(name: &str, v: &str) -> Result<String, String> {
    let bad = v
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "?#%\"'\\".contains(c))
        || v.split('/').any(|c| c == "..");
    if bad {
        return Err(format!(
            "{name}={v}: expected a plain path (no '..', '?', '#', '%', quotes or spaces)"
        ));
    }
    Ok(v.trim_matches('/').to_string())
}

/// One of the words of `choices`; the message lists them
/// (`expected reboot, halt or console`).
fn choice<T: Copy>(name: &str, v: &str, choices: &[(&str, T)]) -> Result<T, String> {
    if let Some(&(_, t)) = choices.iter().find(|(w, _)| *w == v) {
        return Ok(t);
    }
    let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
    let expected = match words.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(format!("{name}={v}: expected {expected}"))
}

/// A deprecated switch: anything but `0` applies its replacement, with a
/// warning.
fn deprecated(
    s: &mut Settings,
    v: &str,
    warning: &str,
    apply: fn(&mut Settings),
) -> Result<(), String> {
    if v != "0" {
        apply(s);
        s.warnings.push(warning.into());
    }
    Ok(())
}

fn flag(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(format!("{name}={v}: expected 0 or 1")),
    }
}

/// A kernel version or a section name: one word, no path.
fn name_value(name: &str, v: &str) -> Result<String, String> {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c))
        && v != "."
        && v != ".."
    {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{name}={v}: expected a name of letters, digits and '.', '_', '+', '-', '~'"
        ))
    }
}

/// `eth0:dhcp,eth1:10.0.0.5/24,eth2:none,all:dhcp`.
pub fn parse_ip(v: &str) -> Result<IpConfig, String> {
    let mut ip = IpConfig {
        interfaces: Vec::new(),
        all: IpMode::None,
    };
    let mut all_seen = false;
    for item in v.split(',') {
        let Some((iface, mode)) = item.split_once(':') else {
            return Err(format!(
                "IP={v}: '{item}' is not INTERFACE:MODE (MODE is dhcp, none or ADDRESS/PREFIX)"
            ));
        };
        let valid_name = !iface.is_empty()
            && iface.len() <= 15
            && iface
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
        if !valid_name {
            return Err(format!("IP={v}: '{iface}' is not an interface name"));
        }
        let mode = match mode {
            "dhcp" => IpMode::Dhcp,
            "none" => IpMode::None,
            m => {
                let parsed = m.split_once('/').and_then(|(a, p)| {
                    let a = a.parse::<std::net::Ipv4Addr>().ok()?;
                    let p = p.parse::<u8>().ok().filter(|p| (1..=32).contains(p))?;
                    Some((a, p))
                });
                match parsed {
                    Some((a, p)) => IpMode::Static(a, p),
                    None => {
                        return Err(format!(
                            "IP={v}: '{m}' for {iface} is not dhcp, none or ADDRESS/PREFIX (10.0.0.5/24)"
                        ))
                    }
                }
            }
        };
        if iface == "all" {
            if matches!(mode, IpMode::Static(..)) {
                return Err(format!(
                    "IP={v}: all:{mode} would give one address to every interface"
                ));
            }
            if all_seen {
                return Err(format!("IP={v}: 'all' is given twice"));
            }
            all_seen = true;
            ip.all = mode;
        } else {
            if ip.interfaces.iter().any(|(n, _)| n == iface) {
                return Err(format!("IP={v}: {iface} is given twice"));
            }
            ip.interfaces.push((iface.to_string(), mode));
        }
    }
    Ok(ip)
}

#[cfg(test)]
mod signature_tests {
    use super::*;

    #[test]
    fn require_signatures_is_read() {
        let s = Settings::parse("SERV=10.0.0.2 quiet").unwrap();
        assert_eq!(s.require_signatures, None);
        let s = Settings::parse("REQUIRE_SIGNATURES=0").unwrap();
        assert_eq!(s.require_signatures, Some(false));
        let s = Settings::parse("REQUIRE_SIGNATURES=0 REQUIRE_SIGNATURES=1").unwrap();
        assert_eq!(s.require_signatures, Some(true));
        // Empty: the default.
        let s = Settings::parse("REQUIRE_SIGNATURES=").unwrap();
        assert_eq!(s.require_signatures, None);
        // Kept for the installed system, not read.
        let s = Settings::parse("| REQUIRE_SIGNATURES=0 |").unwrap();
        assert_eq!(s.require_signatures, None);
        let e = Settings::parse("REQUIRE_SIGNATURES=no").unwrap_err();
        assert_eq!(
            e.errors,
            vec!["REQUIRE_SIGNATURES=no: expected 0 or 1".to_string()]
        );
    }
}
