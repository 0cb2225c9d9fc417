//! `status.cgi`: the read-only status page of a provisioning server, as
//! HTML for operators and as JSON for scripts (see docs/status.md).
//!
//! [`gather`] reads one configuration section's files into a [`Status`]:
//! the profiles of `state` with their installs left, each CMDB with its
//! used and free entries and the node holding each used one, the uploads
//! kept in HWDIR (newest first) with what became of each node, the install
//! logs in LOGDIR, and the health-check outliers of HEALTHDIR.
//! [`html::render`] turns it into a self-contained page; [`cgi::serve`]
//! answers a request. [`prometheus`] exports the figures alerts need
//! (`format=prometheus`) from a lighter reading of the same files and
//! `upload.cgi`'s counters ([`crate::metrics`]).
//!
//! Nothing here writes a file. The server's files are read under a shared
//! `flock` of LOCKFILE, so the figures of `state`, the CMDBs and HWDIR
//! belong to one instant between two decisions; the lock is waited for at
//! most [`Gather::lock_wait`], the file is opened read-only and never
//! created, and a crash's leftovers are reported rather than recovered.
//!
//! A file that cannot be read or parsed does not stop the page: its error
//! (file and line) is shown where its part would be and listed in
//! [`Status::problems`].

pub mod cgi;
pub mod html;
pub mod prometheus;

use crate::clock::Utc;
use crate::config::ServerConfig;
use crate::health::{self, Outlier};
use crate::hw::{self, Line};
use crate::literal::Value;
use crate::persist;
use crate::protocol::{log_stem, parse_health_name, HW_SUFFIX, LOG_SUFFIX};
use crate::provision::decide::{self, Cmdb, CpuBudget};
use crate::state::{Count, State};
use fs4::fs_std::FileExt;
use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How many uploads the page lists unless asked for another number.
pub const DEFAULT_UPLOADS: usize = 50;

/// What [`gather`] is asked for.
#[derive(Debug, Clone)]
pub struct Gather {
    /// The sections of `edeploy.conf`, for the page's section links.
    pub sections: Vec<String>,
    /// How many of the newest uploads to list (`None`: all).
    pub uploads: Option<usize>,
    /// The longest wait for the shared lock before reading without it.
    pub lock_wait: Duration,
}

impl Default for Gather {
    fn default() -> Gather {
        Gather {
            sections: Vec::new(),
            uploads: Some(DEFAULT_UPLOADS),
            lock_wait: Duration::from_secs(3),
        }
    }
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// When the files were read (RFC 3339, UTC).
    pub generated: String,
    pub section: String,
    pub sections: Vec<String>,
    pub dirs: Dirs,
    /// How the files were read: `"shared"` (under the shared lock),
    /// `"no-lockfile"` (LOCKFILE absent: no upload has taken it yet) or
    /// `"busy"` (not obtained in time: figures may be mid-update).
    pub lock: &'static str,
    /// Every file that could not be read or parsed, and other warnings.
    pub problems: Vec<Problem>,
    pub profiles: Vec<Profile>,
    pub cmdbs: Vec<CmdbStatus>,
    pub uploads: Uploads,
    pub logs: Vec<LogFile>,
    pub health: Health,
}

/// The directories of the section.
#[derive(Debug, Clone, Serialize)]
pub struct Dirs {
    pub configdir: String,
    pub hwdir: String,
    pub logdir: String,
    pub healthdir: String,
}

/// A problem and the part of the page it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// `profiles`, `cmdbs`, `uploads`, `logs` or `health`.
    pub part: &'static str,
    /// The sentence, naming the file (and line when there is one).
    pub message: String,
}

/// One profile of `state`, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub profile: String,
    /// Installs left; `None` when unlimited.
    pub left: Option<u64>,
    pub unlimited: bool,
    /// `P.specs` exists (without it the server skips the profile).
    pub specs: bool,
    /// `P.cmdb`: used and free entries, when the profile has a CMDB that
    /// parses.
    pub cmdb_used: Option<usize>,
    pub cmdb_free: Option<usize>,
}

/// One CMDB file of CONFIGDIR.
#[derive(Debug, Clone, Serialize)]
pub struct CmdbStatus {
    pub profile: String,
    pub file: String,
    /// The profile is listed in `state`.
    pub in_state: bool,
    /// Why the file could not be read (file and line), if it could not.
    pub error: Option<String>,
    pub total: usize,
    pub used: usize,
    pub free: usize,
    pub entries: Vec<CmdbEntry>,
}

/// One entry of a CMDB.
#[derive(Debug, Clone, Serialize)]
pub struct CmdbEntry {
    /// 1-based, as `edeploy-admin cmdb check` and the server log count.
    pub number: usize,
    pub used: bool,
    pub hostname: Option<String>,
    pub ip: Option<String>,
    pub mac: Option<String>,
    /// The sysname of the HWDIR upload whose MAC address or serial number
    /// the entry holds (used entries only).
    pub node: Option<String>,
    /// The whole entry.
    pub settings: serde_json::Value,
}

/// The uploads kept in HWDIR.
#[derive(Debug, Clone, Serialize)]
pub struct Uploads {
    /// `*.hw` files in HWDIR.
    pub total: usize,
    /// How many are listed in `items` (the newest).
    pub shown: usize,
    /// Of all uploads: how many nodes hold a CMDB entry, have a failure
    /// log newer than their upload, or neither.
    pub assigned: usize,
    pub failed: usize,
    pub unrecorded: usize,
    pub items: Vec<Upload>,
}

/// What became of a node, as its files tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It holds a used CMDB entry of a profile.
    Assigned,
    /// An install log named after it arrived after its upload.
    Failed,
    /// Neither: it matched no profile, found no install left, or got a
    /// profile without a CMDB (see [`Upload::now`]).
    Unrecorded,
    /// The kept hardware list does not parse.
    Unreadable,
}

/// One upload in HWDIR.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    pub file: String,
    pub sysname: String,
    /// The file's mtime: when the node last asked (RFC 3339, UTC).
    pub time: String,
    pub mtime: i64,
    /// `<vendor> <product name>`.
    pub model: Option<String>,
    pub macs: Vec<String>,
    pub outcome: Outcome,
    /// The profile whose CMDB holds the node, its entry (1-based),
    /// hostname and address.
    pub profile: Option<String>,
    pub entry: Option<usize>,
    pub hostname: Option<String>,
    pub ip: Option<String>,
    /// The newest install log named after the node.
    pub log: Option<String>,
    /// For a node no CMDB records: what the server would answer if it
    /// asked now (a decision that commits nothing).
    pub now: Option<Now>,
    /// Why the hardware list cannot be read.
    pub error: Option<String>,
    /// Its place among the nodes read.
    #[serde(skip)]
    node: usize,
}

/// A decision made for the page, committing nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Now {
    /// The profile the node would get.
    pub profile: Option<String>,
    /// The server's sentence: the profile, or why none.
    pub sentence: String,
    /// False when the page's decision budget ran out before this node's
    /// decision ended (`profile` is then `None`).
    pub evaluated: bool,
}

/// An install log in LOGDIR.
#[derive(Debug, Clone, Serialize)]
pub struct LogFile {
    pub name: String,
    pub size: u64,
    pub time: String,
    pub mtime: i64,
    /// The HWDIR upload it is named after (`edeploy-init`'s log name).
    pub node: Option<String>,
    /// An earlier log of the same name, renamed on the next upload.
    pub rotated: bool,
    /// The mtime to the nanosecond, to order a log and an upload of the
    /// same second.
    #[serde(skip)]
    modified: SystemTime,
}

/// Health-check results in HEALTHDIR.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `*.hw` result files.
    pub results: usize,
    /// Distinct machines among them.
    pub machines: usize,
    pub outliers: Vec<Outlier>,
    pub error: Option<String>,
}

/// Reads the status of `cfg`'s section. Never writes; never fails: what
/// cannot be read is in [`Status::problems`] and in its part.
pub fn gather(cfg: &ServerConfig, opts: &Gather) -> Status {
    let mut problems = Vec::new();
    // On the database, the page's one connection, kept for the previews.
    let ((lock_state, state, nodes, cmdbs, holdings), mut db) = if cfg.database.is_some() {
        on_db::read(cfg, &mut problems)
    } else {
        (read_files(cfg, opts, &mut problems), None)
    };
    let profiles = profiles(&cfg.configdir, state.as_ref(), &cmdbs);
    gather_rest(
        cfg,
        opts,
        problems,
        lock_state,
        nodes,
        cmdbs,
        holdings,
        profiles,
        db.as_mut(),
    )
}

/// What the page reads from the files, under the shared lock: how the
/// lock went, the state, the nodes (HWDIR), the CMDBs.
type Read = (
    &'static str,
    Option<State>,
    Vec<Node>,
    Vec<CmdbStatus>,
    Holdings,
);

fn read_files(cfg: &ServerConfig, opts: &Gather, problems: &mut Vec<Problem>) -> Read {
    let lock = SharedLock::acquire(&cfg.lockfile, opts.lock_wait);
    if let Err(e) = &lock {
        problems.push(Problem {
            part: "profiles",
            message: e.clone(),
        });
    }
    let lock_state = match &lock {
        Ok(l) => l.state(),
        Err(_) => "busy",
    };
    if lock_state == "busy" {
        problems.push(Problem {
            part: "profiles",
            message: format!(
                "{}: still locked after {:?}; the figures were read while files may change",
                cfg.lockfile.display(),
                opts.lock_wait
            ),
        });
    }
    match persist::pending(&cfg.configdir) {
        Ok(false) => {}
        Ok(true) => problems.push(Problem {
            part: "profiles",
            message: format!(
                "{}: an update was interrupted; the next upload completes it, until then \
                 state and CMDB may disagree",
                cfg.configdir.display()
            ),
        }),
        Err(e) => problems.push(Problem {
            part: "profiles",
            message: format!("{e:#}"),
        }),
    }

    match persist::set_aside(&cfg.configdir) {
        Ok(records) => problems.extend(records.into_iter().map(|r| Problem {
            part: "profiles",
            message: format!(
                "a write-ahead log record could not be applied and was set aside: {}: {}",
                r.file.display(),
                r.reason
            ),
        })),
        Err(e) => problems.push(Problem {
            part: "profiles",
            message: format!("{e:#}"),
        }),
    }

    let state = read_state(cfg, problems);
    let nodes = read_nodes(&cfg.hwdir, problems);
    let (cmdbs, holdings) = read_cmdbs(&cfg.configdir, state.as_ref(), &nodes, problems);
    drop(lock);
    (lock_state, state, nodes, cmdbs, holdings)
}

#[allow(clippy::too_many_arguments)]
fn gather_rest(
    cfg: &ServerConfig,
    opts: &Gather,
    mut problems: Vec<Problem>,
    lock_state: &'static str,
    nodes: Vec<Node>,
    cmdbs: Vec<CmdbStatus>,
    holdings: Holdings,
    profiles: Vec<Profile>,
    mut db: Option<&mut crate::db::Db>,
) -> Status {
    // LOGDIR is written under its own flock, not LOCKFILE: listed out of
    // the lock, so its size never holds a decision back.
    let logs = read_logs(&cfg.logdir, &nodes, &mut problems);
    let mut uploads = uploads(&nodes, &cmdbs, &holdings, &logs, opts.uploads);
    // The decisions read the files again and take most of the time: out
    // of the lock, so uploads wait only for the reading above. They share
    // one budget for the whole page, an upload's (DECISIONBUDGET): a
    // stored list that costs more than that is shown as not evaluated,
    // and so are the nodes after it.
    let budget = CpuBudget::starting_now(cfg.decision_budget);
    for item in &mut uploads.items {
        if item.outcome == Outcome::Unrecorded {
            if let Some(Ok(lines)) = nodes.get(item.node).map(|n| &n.lines) {
                item.now = Some(decide_now(cfg, lines, budget, db.as_deref_mut()));
            }
        }
    }

    let health = read_health(&cfg.healthdir);
    if let Some(e) = &health.error {
        problems.push(Problem {
            part: "health",
            message: e.clone(),
        });
    }
    Status {
        generated: Utc::now().rfc3339(),
        section: cfg.section.clone(),
        sections: opts.sections.clone(),
        dirs: Dirs {
            configdir: cfg.configdir.display().to_string(),
            hwdir: cfg.hwdir.display().to_string(),
            logdir: cfg.logdir.display().to_string(),
            healthdir: cfg.healthdir.display().to_string(),
        },
        lock: lock_state,
        problems,
        profiles,
        cmdbs,
        uploads,
        logs,
        health,
    }
}

/// A shared `flock` of LOCKFILE, opened read-only: never created, and
/// waited for at most a given time.
enum SharedLock {
    Held(File),
    NoFile,
    Busy,
}

impl SharedLock {
    fn acquire(path: &Path, wait: Duration) -> Result<SharedLock, String> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SharedLock::NoFile),
            Err(e) => {
                return Err(format!(
                    "{}: cannot open the lock file: {e}",
                    path.display()
                ))
            }
        };
        let deadline = Instant::now() + wait;
        loop {
            // A decision holds the exclusive lock for milliseconds: poll
            // rather than block, so the wait stays bounded.
            match FileExt::try_lock_shared(&file) {
                Ok(true) => return Ok(SharedLock::Held(file)),
                Ok(false) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Ok(false) => return Ok(SharedLock::Busy),
                Err(e) => return Err(format!("{}: cannot lock: {e}", path.display())),
            }
        }
    }

    fn state(&self) -> &'static str {
        match self {
            SharedLock::Held(_) => "shared",
            SharedLock::NoFile => "no-lockfile",
            SharedLock::Busy => "busy",
        }
    }
}

impl Drop for SharedLock {
    fn drop(&mut self) {
        if let SharedLock::Held(f) = self {
            let _ = FileExt::unlock(f);
        }
    }
}

/// Seconds since the epoch (negative before it).
/// The section's `state`; one that cannot be read is a problem of the
/// profiles.
pub(crate) fn read_state(cfg: &ServerConfig, problems: &mut Vec<Problem>) -> Option<State> {
    match State::load(&cfg.configdir.join("state")) {
        Ok(s) => Some(s),
        Err(e) => {
            problems.push(Problem {
                part: "profiles",
                message: format!("{e:#}"),
            });
            None
        }
    }
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A regular file of a directory, with its mtime. Hidden files (the
/// server's temporary files among them) are left out.
struct Listed {
    name: String,
    path: PathBuf,
    modified: SystemTime,
    size: u64,
}

/// The regular files of `dir` whose names end in `suffix`, newest first
/// (then by name).
fn list(dir: &Path, suffix: &str) -> std::io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(suffix) || name.len() == suffix.len() {
            continue;
        }
        // `DirEntry::metadata` does not follow symlinks: a link is not
        // one of the server's files.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        out.push(Listed {
            name,
            path: entry.path(),
            modified: meta.modified().unwrap_or(UNIX_EPOCH),
            size: meta.len(),
        });
    }
    out.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// [`list`], or nothing with the reason noted as a problem of `part`.
fn list_or_note(
    dir: &Path,
    suffix: &str,
    part: &'static str,
    problems: &mut Vec<Problem>,
) -> Vec<Listed> {
    list(dir, suffix).unwrap_or_else(|e| {
        problems.push(Problem {
            part,
            message: format!("{}: cannot list: {e}", dir.display()),
        });
        Vec::new()
    })
}

/// A node that uploaded its hardware list.
struct Node {
    file: String,
    sysname: String,
    modified: SystemTime,
    lines: Result<Vec<Line>, String>,
}

impl Node {
    fn model(&self) -> Option<String> {
        let lines = self.lines.as_ref().ok()?;
        let parts: Vec<&str> = [
            hw::get(lines, "system", "product", "vendor"),
            hw::get(lines, "system", "product", "name"),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

fn read_nodes(hwdir: &Path, problems: &mut Vec<Problem>) -> Vec<Node> {
    let listed = list_or_note(hwdir, HW_SUFFIX, "uploads", problems);
    listed
        .into_iter()
        .map(|f| {
            let lines = std::fs::read(&f.path)
                .map_err(|e| format!("{}: cannot read: {e}", f.path.display()))
                .and_then(|bytes| {
                    let name = f.path.display().to_string();
                    let text = String::from_utf8(bytes)
                        .map_err(|_| format!("{name}: the file is not valid UTF-8"))?;
                    hw::parse(&text, &name).map_err(|e| e.to_string())
                });
            let sysname = f.name[..f.name.len() - HW_SUFFIX.len()].to_string();
            Node {
                file: f.name,
                sysname,
                modified: f.modified,
                lines,
            }
        })
        .collect()
}

/// Finds the node a CMDB entry belongs to by the values that identify a
/// node: its MAC addresses (any case) and its serial number.
struct NodeIndex {
    by_value: HashMap<String, usize>,
}

impl NodeIndex {
    fn new(nodes: &[Node]) -> NodeIndex {
        let mut by_value = HashMap::new();
        // Oldest first, so the newest upload of a MAC wins.
        for (i, node) in nodes.iter().enumerate().rev() {
            let Ok(lines) = &node.lines else { continue };
            for mac in hw::macs(lines) {
                if !mac.is_empty() {
                    by_value.insert(mac.to_ascii_lowercase(), i);
                }
            }
            if let Some(serial) = hw::get(lines, "system", "product", "serial") {
                // Short serials ("0", "None") would match unrelated values.
                if serial.len() >= 4 {
                    by_value.insert(serial.to_ascii_lowercase(), i);
                }
            }
        }
        NodeIndex { by_value }
    }

    /// The node whose MAC or serial is one of the entry's values.
    fn owner(&self, entry: &Value) -> Option<usize> {
        let Value::Dict(items) = entry else {
            return None;
        };
        items.iter().find_map(|(_, v)| {
            let text = v.as_str()?;
            self.by_value.get(&text.to_ascii_lowercase()).copied()
        })
    }
}

/// The CMDB files: those of `state`'s profiles in its order, then any
/// other `*.cmdb` of CONFIGDIR by name.
fn read_cmdbs(
    configdir: &Path,
    state: Option<&State>,
    nodes: &[Node],
    problems: &mut Vec<Problem>,
) -> (Vec<CmdbStatus>, Holdings) {
    let index = NodeIndex::new(nodes);
    let mut holdings = Holdings::new();
    let mut names: Vec<(String, bool)> = Vec::new();
    if let Some(state) = state {
        for e in &state.entries {
            if configdir.join(format!("{}.cmdb", e.profile)).is_file()
                && !names.iter().any(|(n, _)| n == &e.profile)
            {
                names.push((e.profile.clone(), true));
            }
        }
    }
    match list(configdir, ".cmdb") {
        Ok(mut files) => {
            files.sort_by(|a, b| a.name.cmp(&b.name));
            for f in files {
                let profile = f.name[..f.name.len() - ".cmdb".len()].to_string();
                if !names.iter().any(|(n, _)| n == &profile) {
                    names.push((profile, false));
                }
            }
        }
        Err(e) => problems.push(Problem {
            part: "cmdbs",
            message: format!("{}: cannot list: {e}", configdir.display()),
        }),
    }
    let cmdbs = names
        .into_iter()
        .enumerate()
        .map(|(ci, (profile, in_state))| {
            let path = configdir.join(format!("{profile}.cmdb"));
            let loaded = Cmdb::load(&path)
                .map(|db| db.entries)
                .map_err(|e| e.to_string());
            let at = Placed {
                nodes,
                index: &index,
                ci,
            };
            cmdb_status(profile, in_state, loaded, &at, &mut holdings, problems)
        })
        .collect();
    (cmdbs, holdings)
}

/// Where a CMDB's entries are placed: the nodes, who owns what, the
/// CMDB's position.
struct Placed<'a> {
    nodes: &'a [Node],
    index: &'a NodeIndex,
    ci: usize,
}

/// One CMDB's status from its entries (or why they could not be read),
/// each used entry's owner among the nodes recorded in `holdings`.
fn cmdb_status(
    profile: String,
    in_state: bool,
    loaded: Result<Vec<Value>, String>,
    at: &Placed<'_>,
    holdings: &mut Holdings,
    problems: &mut Vec<Problem>,
) -> CmdbStatus {
    let mut status = CmdbStatus {
        file: format!("{profile}.cmdb"),
        profile,
        in_state,
        error: None,
        total: 0,
        used: 0,
        free: 0,
        entries: Vec::new(),
    };
    match loaded {
        Ok(entries) => {
            for (ei, e) in entries.iter().enumerate() {
                let owner = at.index.owner(e).filter(|_| e.get("used").is_some());
                if let Some(n) = owner {
                    // A node holding entries of several CMDBs is shown
                    // with the first, in state order.
                    holdings.entry(n).or_insert((at.ci, ei));
                }
                let node = owner.map(|n| at.nodes[n].sysname.clone());
                status.entries.push(cmdb_entry(ei, e, node));
            }
            status.total = status.entries.len();
            status.used = status.entries.iter().filter(|e| e.used).count();
            status.free = status.total - status.used;
        }
        Err(message) => {
            problems.push(Problem {
                part: "cmdbs",
                message: message.clone(),
            });
            status.error = Some(message);
        }
    }
    status
}

/// Node (index in HWDIR order) → (CMDB, entry) it holds, both 0-based.
type Holdings = HashMap<usize, (usize, usize)>;

fn cmdb_entry(i: usize, entry: &Value, node: Option<String>) -> CmdbEntry {
    let text = |key: &str| entry.get(key).and_then(Value::scalar_text);
    let used = entry.get("used").is_some();
    CmdbEntry {
        number: i + 1,
        used,
        hostname: text("hostname"),
        ip: text("ip"),
        mac: text("mac"),
        node,
        settings: entry.to_json(),
    }
}

fn read_logs(logdir: &Path, nodes: &[Node], problems: &mut Vec<Problem>) -> Vec<LogFile> {
    let listed = list_or_note(logdir, LOG_SUFFIX, "logs", problems);
    // The installer names its log after the node (hw::log_name).
    let mut by_log: HashMap<String, &str> = HashMap::new();
    for node in nodes.iter().rev() {
        if let Ok(lines) = &node.lines {
            let name = hw::log_name(lines);
            by_log.insert(log_stem(&name).0.to_string(), &node.sysname);
        }
    }
    listed
        .into_iter()
        .map(|f| {
            let (stem, rotated) = log_stem(&f.name);
            LogFile {
                node: by_log.get(stem).map(|s| s.to_string()),
                rotated,
                size: f.size,
                time: Utc::of(f.modified).rfc3339(),
                mtime: unix(f.modified),
                modified: f.modified,
                name: f.name,
            }
        })
        .collect()
}

fn profiles(configdir: &Path, state: Option<&State>, cmdbs: &[CmdbStatus]) -> Vec<Profile> {
    let Some(state) = state else {
        return Vec::new();
    };
    state
        .entries
        .iter()
        .map(|e| {
            let cmdb = cmdbs
                .iter()
                .find(|c| c.in_state && c.profile == e.profile && c.error.is_none());
            Profile {
                profile: e.profile.clone(),
                left: match e.count {
                    Count::Left(n) => Some(n),
                    Count::Unlimited => None,
                },
                unlimited: e.count == Count::Unlimited,
                specs: configdir.join(format!("{}.specs", e.profile)).is_file(),
                cmdb_used: cmdb.map(|c| c.used),
                cmdb_free: cmdb.map(|c| c.free),
            }
        })
        .collect()
}

fn uploads(
    nodes: &[Node],
    cmdbs: &[CmdbStatus],
    holdings: &Holdings,
    logs: &[LogFile],
    shown: Option<usize>,
) -> Uploads {
    // The newest log of each node (logs are listed newest first).
    let mut newest_log: HashMap<&str, &LogFile> = HashMap::new();
    for l in logs {
        if let Some(n) = l.node.as_deref() {
            newest_log.entry(n).or_insert(l);
        }
    }
    let limit = shown.unwrap_or(usize::MAX);
    let mut out = Uploads {
        total: nodes.len(),
        shown: nodes.len().min(limit),
        assigned: 0,
        failed: 0,
        unrecorded: 0,
        items: Vec::new(),
    };
    for (i, node) in nodes.iter().enumerate() {
        let holds = holdings
            .get(&i)
            .map(|&(c, e)| (&cmdbs[c], &cmdbs[c].entries[e]));
        let log = newest_log.get(node.sysname.as_str());
        let failed = log.is_some_and(|l| l.modified >= node.modified);
        let outcome = match (&node.lines, failed, holds) {
            (Err(_), _, _) => Outcome::Unreadable,
            (_, true, _) => Outcome::Failed,
            (_, false, Some(_)) => Outcome::Assigned,
            (_, false, None) => Outcome::Unrecorded,
        };
        match outcome {
            Outcome::Assigned => out.assigned += 1,
            Outcome::Failed => out.failed += 1,
            Outcome::Unrecorded | Outcome::Unreadable => out.unrecorded += 1,
        }
        if i >= limit {
            continue;
        }
        out.items.push(Upload {
            file: node.file.clone(),
            sysname: node.sysname.clone(),
            time: Utc::of(node.modified).rfc3339(),
            mtime: unix(node.modified),
            model: node.model(),
            macs: node
                .lines
                .as_ref()
                .map(|l| hw::macs(l).into_iter().map(String::from).collect())
                .unwrap_or_default(),
            outcome,
            profile: holds.map(|(c, _)| c.profile.clone()),
            entry: holds.map(|(_, e)| e.number),
            hostname: holds.and_then(|(_, e)| e.hostname.clone()),
            ip: holds.and_then(|(_, e)| e.ip.clone()),
            log: log.map(|l| l.name.clone()),
            now: None,
            node: i,
            error: node.lines.as_ref().err().cloned(),
        });
    }
    out
}

/// What the server would answer the node now, committing nothing, within
/// what is left of the page's `budget`; on `db` when given (the page's
/// connection to its database).
fn decide_now(
    cfg: &ServerConfig,
    lines: &[Line],
    budget: CpuBudget,
    db: Option<&mut crate::db::Db>,
) -> Now {
    if budget.spent() {
        return Now {
            profile: None,
            sentence: format!(
                "not evaluated in time: the page's decision budget ({} s of processor time, \
                 DECISIONBUDGET) was spent before this node",
                cfg.decision_budget.as_secs_f64()
            ),
            evaluated: false,
        };
    }
    let preview = match db {
        Some(db) => decide::preview_within_on(db, cfg, lines, budget, &mut |_| {}),
        None => decide::preview_within(cfg, lines, budget, &mut |_| {}),
    };
    match preview {
        Ok(d) => Now {
            sentence: format!("would get profile {}", d.profile),
            profile: Some(d.profile),
            evaluated: true,
        },
        Err(e @ decide::DecideError::OverBudget { .. }) => Now {
            profile: None,
            sentence: format!("not evaluated in time: {e}"),
            evaluated: false,
        },
        Err(e) => Now {
            profile: None,
            sentence: e.to_string(),
            evaluated: true,
        },
    }
}

/// The machine a health result is of: `<sysname>-<YYYYmmddHHMMSS>.hw`
/// and `<sysname>-<YYYYmmddHHMMSS>-N.hw` → `<sysname>`; the stem of any
/// other name.
fn health_machine(name: &str) -> &str {
    parse_health_name(name).map_or_else(
        || name.strip_suffix(HW_SUFFIX).unwrap_or(name),
        |h| h.machine,
    )
}

fn read_health(dir: &Path) -> Health {
    let mut health = Health {
        results: 0,
        machines: 0,
        outliers: Vec::new(),
        error: None,
    };
    match list(dir, HW_SUFFIX) {
        Ok(files) => {
            health.results = files.len();
            let mut machines: Vec<&str> = files.iter().map(|f| health_machine(&f.name)).collect();
            machines.sort_unstable();
            machines.dedup();
            health.machines = machines.len();
        }
        // No results yet is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return health,
        Err(e) => {
            health.error = Some(format!("{}: cannot list: {e}", dir.display()));
            return health;
        }
    }
    match health::outliers(dir) {
        Ok(o) => health.outliers = o,
        Err(e) => health.error = Some(format!("{e:#}")),
    }
    health
}

mod on_db;

#[cfg(test)]
mod tests;
