//! `/etc/edeploy.conf`: where the server finds its profiles and keeps what
//! nodes send. INI with a `[SERVER]` section; other sections hold the same
//! keys and are chosen per upload (form field `section`).
//!
//! Decisions beyond the original: keys are case-insensitive, `#` and `;`
//! start comments (also after a value, when preceded by a blank), and a
//! named section inherits every key it does not set from `[SERVER]`, so an
//! operator only writes what differs.

use anyhow::{bail, Context, Result};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// The path of the configuration file: `EDEPLOY_CONF` or `/etc/edeploy.conf`.
pub fn conf_path() -> PathBuf {
    std::env::var_os("EDEPLOY_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/edeploy.conf"))
}

/// The section every other one inherits from.
pub const DEFAULT_SECTION: &str = "SERVER";

/// The settings of one section, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub section: String,
    pub configdir: PathBuf,
    pub hwdir: PathBuf,
    pub logdir: PathBuf,
    pub healthdir: PathBuf,
    pub lockfile: PathBuf,
    pub use_pxemngr: bool,
    /// The `pxemngr` command (key `PXEMNGR`), so a site can point at its
    /// own path and tests can record the call.
    pub pxemngr: PathBuf,
    pub pxemngr_url: Option<String>,
    pub metadata_url: Option<String>,
    /// Largest upload accepted, in bytes (key `MAXUPLOAD`).
    pub max_upload: u64,
    // --- Limits on what nodes send and what the server keeps
    // (docs/server.md, "Limits").
    /// Lines of a hardware list (key `HWMAXLINES`).
    pub hw_max_lines: u64,
    /// Bytes of one string of a hardware line (key `HWMAXVALUE`).
    pub hw_max_value: u64,
    /// Size of CONFIGDIR's write-ahead log, `.edeploy-log` (key `WALMAX`).
    pub wal_max: u64,
    /// Bytes of install logs kept per node and in all in LOGDIR (keys
    /// `LOGMAXNODE`, `LOGMAX`).
    pub log_max_node: u64,
    pub log_max: u64,
    /// Bytes of health results kept per node and in all in HEALTHDIR
    /// (keys `HEALTHMAXNODE`, `HEALTHMAX`).
    pub health_max_node: u64,
    pub health_max: u64,
    // --- end of the limits
    // Decision budget.
    /// The processor time a hardware upload may spend matching specs,
    /// over all profiles, and the status page over all its previews (key
    /// `DECISIONBUDGET`, in seconds; default 2). Past it the upload is
    /// answered 503 naming the profile, and the page shows the nodes it
    /// could not evaluate in time.
    pub decision_budget: std::time::Duration,
    // --- Signed answers (docs/trust.md, "Answers of upload.cgi")
    /// The minisign secret key (unencrypted) that signs the answers to
    /// hardware uploads (key `SIGNKEY`); none: answers go unsigned.
    pub sign_key: Option<PathBuf>,
    /// Whether answers must be signed (key `REQUIRE_SIGNATURES`); unset:
    /// as soon as `SIGNKEY` is set. True without `SIGNKEY` is an error.
    pub require_signatures: Option<bool>,
    // --- end of signed answers
    // --- Shared state (docs/database.md)
    /// The PostgreSQL database holding this section's changing state (key
    /// `DATABASE`, a libpq URI: `crate::db::url`); none: the files of
    /// CONFIGDIR.
    pub database: Option<String>,
    // --- end of shared state
}

// --- Limits (docs/server.md, "Limits")
const MIB: u64 = 1024 * 1024;

/// The keys of the limits: (key, field), each a whole number (of bytes,
/// but `HWMAXLINES`), at least 1.
type LimitField = fn(&mut ServerConfig) -> &mut u64;
const LIMIT_KEYS: [(&str, LimitField); 7] = [
    ("HWMAXLINES", |c| &mut c.hw_max_lines),
    ("HWMAXVALUE", |c| &mut c.hw_max_value),
    ("WALMAX", |c| &mut c.wal_max),
    ("LOGMAXNODE", |c| &mut c.log_max_node),
    ("LOGMAX", |c| &mut c.log_max),
    ("HEALTHMAXNODE", |c| &mut c.health_max_node),
    ("HEALTHMAX", |c| &mut c.health_max),
];

impl ServerConfig {
    /// The limits on a hardware list a node sends.
    pub fn hw_limits(&self) -> crate::hw::Limits {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        crate::hw::Limits {
            max_lines: size(self.hw_max_lines),
            max_value: size(self.hw_max_value),
        }
    }
}
// --- end of the limits

impl ServerConfig {
    /// The defaults of the original, rooted at `configdir`.
    pub fn with_configdir(configdir: impl Into<PathBuf>) -> ServerConfig {
        let configdir = configdir.into();
        ServerConfig {
            section: DEFAULT_SECTION.into(),
            hwdir: configdir.clone(),
            logdir: configdir.clone(),
            healthdir: PathBuf::from("/var/lib/edeploy/health/"),
            lockfile: PathBuf::from("/var/lock/edeploy.lock"),
            use_pxemngr: false,
            pxemngr: PathBuf::from("pxemngr"),
            pxemngr_url: None,
            metadata_url: None,
            max_upload: 16 * 1024 * 1024,
            // --- Limits (docs/server.md, "Limits")
            hw_max_lines: 100_000,
            hw_max_value: 8192,
            wal_max: 64 * MIB,
            log_max_node: 64 * MIB,
            log_max: 2048 * MIB,
            health_max_node: 64 * MIB,
            health_max: 2048 * MIB,
            // --- end of the limits
            decision_budget: DEFAULT_DECISION_BUDGET,
            // --- Signed answers
            sign_key: None,
            require_signatures: None,
            database: None,
            // --- end of signed answers
            configdir,
        }
    }
}

/// A parsed configuration file.
#[derive(Debug, Clone, Default)]
pub struct ConfFile {
    name: String,
    /// Section name → (upper-cased key → (value, line)).
    sections: IndexMap<String, IndexMap<String, (String, usize)>>,
}

impl ConfFile {
    /// Reads the file at `path`.
    pub fn load(path: &Path) -> Result<ConfFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the configuration", path.display()))?;
        ConfFile::parse(&text, &path.display().to_string())
    }

    /// Parses configuration text, naming it `name` in errors.
    pub fn parse(text: &str, name: &str) -> Result<ConfFile> {
        let mut conf = ConfFile {
            name: name.into(),
            sections: IndexMap::new(),
        };
        // Keys before any header belong to [SERVER], as in the seed's example.
        let mut current = DEFAULT_SECTION.to_string();
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(sec) = rest.strip_suffix(']') else {
                    bail!("{name}:{lineno}: expected ']' to close the section header");
                };
                let sec = sec.trim();
                if sec.is_empty() {
                    bail!("{name}:{lineno}: empty section name");
                }
                current = sec.to_string();
                conf.sections.entry(current.clone()).or_default();
                continue;
            }
            let Some((k, v)) = line.split_once(['=', ':']) else {
                bail!("{name}:{lineno}: expected KEY = VALUE, found {line:?}");
            };
            let key = k.trim().to_ascii_uppercase();
            if key.is_empty() {
                bail!("{name}:{lineno}: a key is missing before '='");
            }
            conf.sections
                .entry(current.clone())
                .or_default()
                .insert(key, (v.trim().to_string(), lineno));
        }
        Ok(conf)
    }

    /// The section names, in file order.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(|s| s.as_str())
    }

    fn lookup(&self, section: &str, key: &str) -> Option<&(String, usize)> {
        self.sections
            .get(section)
            .and_then(|s| s.get(key))
            .or_else(|| self.sections.get(DEFAULT_SECTION).and_then(|s| s.get(key)))
    }

    /// The settings of `section` (`None`: `[SERVER]`).
    pub fn server(&self, section: Option<&str>) -> Result<ServerConfig> {
        let section = section.unwrap_or(DEFAULT_SECTION);
        if section != DEFAULT_SECTION && !self.sections.contains_key(section) {
            bail!(
                "{}: there is no section [{section}] (sections: {})",
                self.name,
                self.sections.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        let get = |k: &str| self.lookup(section, k).map(|(v, _)| v.as_str());
        let Some(configdir) = get("CONFIGDIR") else {
            bail!("{}: CONFIGDIR is not set", self.name);
        };
        let mut cfg = ServerConfig::with_configdir(configdir);
        cfg.section = section.to_string();
        if let Some(v) = get("HWDIR") {
            cfg.hwdir = v.into();
        }
        if let Some(v) = get("LOGDIR") {
            cfg.logdir = v.into();
        }
        if let Some(v) = get("HEALTHDIR") {
            cfg.healthdir = v.into();
        }
        if let Some(v) = get("LOCKFILE") {
            cfg.lockfile = v.into();
        }
        if let Some(v) = get("PXEMNGR") {
            cfg.pxemngr = v.into();
        }
        if let Some((v, line)) = self.lookup(section, "USEPXEMNGR") {
            cfg.use_pxemngr = match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => true,
                "false" | "no" | "off" | "0" | "" => false,
                _ => bail!(
                    "{}:{line}: USEPXEMNGR must be True or False, found {v:?}",
                    self.name
                ),
            };
        }
        if let Some((v, line)) = self.lookup(section, "MAXUPLOAD") {
            cfg.max_upload = v.parse().map_err(|_| {
                anyhow::anyhow!(
                    "{}:{line}: MAXUPLOAD must be a number of bytes, found {v:?}",
                    self.name
                )
            })?;
        }
        // --- Limits (docs/server.md, "Limits")
        for (key, field) in LIMIT_KEYS {
            if let Some((v, line)) = self.lookup(section, key) {
                *field(&mut cfg) = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}:{line}: {key} must be a whole number greater than 0, found {v:?}",
                        self.name
                    )
                })?;
            }
        }
        // --- end of the limits
        // Decision budget.
        if let Some((v, line)) = self.lookup(section, "DECISIONBUDGET") {
            cfg.decision_budget = parse_seconds(v).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}:{line}: DECISIONBUDGET must be a number of seconds (such as 2 or 0.5), \
                     found {v:?}",
                    self.name
                )
            })?;
        }
        // --- Signed answers (docs/trust.md, "Answers of upload.cgi")
        if let Some((v, line)) = self.lookup(section, "SIGNKEY") {
            if !v.is_empty() {
                if !v.starts_with('/') {
                    bail!(
                        "{}:{line}: SIGNKEY must be the absolute path of a minisign secret key \
                         (such as /etc/edeploy/server.key), found {v:?}",
                        self.name
                    );
                }
                cfg.sign_key = Some(v.into());
            }
        }
        if let Some((v, line)) = self.lookup(section, "REQUIRE_SIGNATURES") {
            cfg.require_signatures = match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                "" => None,
                _ => bail!(
                    "{}:{line}: REQUIRE_SIGNATURES must be true or false, found {v:?}",
                    self.name
                ),
            };
            if cfg.require_signatures == Some(true) && cfg.sign_key.is_none() {
                bail!(
                    "{}:{line}: REQUIRE_SIGNATURES is true but SIGNKEY is not set: \
                     the answers cannot be signed (set SIGNKEY to a minisign secret key)",
                    self.name
                );
            }
        }
        // --- end of signed answers
        // --- Shared state
        if let Some((v, line)) = self.lookup(section, "DATABASE") {
            if !v.is_empty() {
                if !(v.starts_with("postgresql://") || v.starts_with("postgres://")) {
                    // The value is not shown: it may hold a password.
                    bail!(
                        "{}:{line}: DATABASE must be a postgresql:// URI (such as \
                         postgresql://edeploy@/edeploy?host=/run/postgresql)",
                        self.name
                    );
                }
                cfg.database = Some(v.clone());
            }
        }
        // --- end of shared state
        cfg.pxemngr_url = get("PXEMNGRURL")
            .filter(|v| !v.is_empty())
            .map(String::from);
        cfg.metadata_url = get("METADATAURL")
            .filter(|v| !v.is_empty())
            .map(String::from);
        Ok(cfg)
    }
}

// --- Signed answers
impl ServerConfig {
    /// Whether answers to hardware uploads are signed: `REQUIRE_SIGNATURES`,
    /// or, unset, whether `SIGNKEY` is.
    pub fn signatures_required(&self) -> bool {
        self.require_signatures.unwrap_or(self.sign_key.is_some())
    }
}
// --- end of signed answers

// Decision budget.
/// `DECISIONBUDGET` when the file does not set it.
pub const DEFAULT_DECISION_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// A number of seconds, decimals allowed (`2`, `0.5`), at most a day.
fn parse_seconds(v: &str) -> Option<std::time::Duration> {
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && (0.0..=86_400.0).contains(&secs))
        .then(|| std::time::Duration::from_secs_f64(secs))
}

/// Drops a `#` or `;` comment: at the start of the line, or after a blank.
fn strip_comment(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with('#') || t.starts_with(';') {
        return "";
    }
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if (b == b'#' || b == b';') && i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            return &line[..i];
        }
    }
    line
}

/// Loads `[section]` of the file named by `EDEPLOY_CONF` (or the default).
pub fn load(section: Option<&str>) -> Result<ServerConfig> {
    ConfFile::load(&conf_path())?.server(section)
}

// --- Limits (docs/server.md, "Limits")
#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn the_shipped_file_gives_the_default_limits() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/edeploy.conf");
        let cfg = ConfFile::load(&path).unwrap().server(None).unwrap();
        let d = ServerConfig::with_configdir("");
        for (key, field) in LIMIT_KEYS {
            let mut a = cfg.clone();
            let mut b = d.clone();
            assert_eq!(*field(&mut a), *field(&mut b), "{key}");
        }
    }

    #[test]
    fn limits_are_read_and_checked() {
        let text = "[SERVER]\nCONFIGDIR = /c\nwalmax = 4096\n\n[lab]\nHWMAXLINES = 7\n";
        let conf = ConfFile::parse(text, "e.conf").unwrap();
        let lab = conf.server(Some("lab")).unwrap();
        assert_eq!((lab.wal_max, lab.hw_max_lines), (4096, 7));
        assert_eq!(lab.hw_limits().max_lines, 7);
        for bad in ["0", "-1", "1k", ""] {
            let text = format!("CONFIGDIR = /c\nLOGMAX = {bad}\n");
            let e = ConfFile::parse(&text, "e.conf")
                .unwrap()
                .server(None)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("e.conf:2: LOGMAX must be a whole number greater than 0"),
                "{e}"
            );
        }
    }
}
// --- end of the limits

// --- Signed answers
#[cfg(test)]
mod signing_tests {
    use super::*;

    fn server(text: &str) -> Result<ServerConfig> {
        ConfFile::parse(text, "e.conf")?.server(None)
    }

    #[test]
    fn signkey_and_require_signatures_are_read() {
        let c = server("CONFIGDIR = /c\n").unwrap();
        assert_eq!((c.sign_key.clone(), c.require_signatures), (None, None));
        assert!(!c.signatures_required());
        let c = server("CONFIGDIR = /c\nSIGNKEY = /etc/edeploy/server.key\n").unwrap();
        assert_eq!(
            c.sign_key.as_deref(),
            Some(Path::new("/etc/edeploy/server.key"))
        );
        assert!(c.signatures_required());
        let c = server("CONFIGDIR = /c\nSIGNKEY = /k\nREQUIRE_SIGNATURES = false\n").unwrap();
        assert_eq!(c.require_signatures, Some(false));
        assert!(!c.signatures_required());
        let c = server("CONFIGDIR = /c\nREQUIRE_SIGNATURES = False\n").unwrap();
        assert!(!c.signatures_required());
    }

    #[test]
    fn bad_values_name_the_file_line_and_key() {
        let e = server("CONFIGDIR = /c\nREQUIRE_SIGNATURES = maybe\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("e.conf:2: REQUIRE_SIGNATURES must be true or false"),
            "{e}"
        );
        let e = server("CONFIGDIR = /c\nREQUIRE_SIGNATURES = true\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("e.conf:2: REQUIRE_SIGNATURES is true but SIGNKEY is not set"),
            "{e}"
        );
        let e = server("CONFIGDIR = /c\nSIGNKEY = server.key\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("e.conf:2: SIGNKEY must be the absolute path"),
            "{e}"
        );
    }
}
// --- end of signed answers
