//! The server's one decision: given a node's hardware list and a config
//! section, which profile it gets, which CMDB settings, and which script.
//!
//! Profiles are tried in `state` order. A profile whose `.specs` file is
//! missing is skipped with a warning; one whose `.specs` does not parse is a
//! configuration error the operator must see. The first profile whose specs
//! match and that still has installs left wins; its CMDB hands out an entry
//! and its count goes down by one.
//!
//! Re-provisioning (a difference from the original): a node that already
//! owns a `used` entry of a matching profile's CMDB gets that profile and
//! that entry again without consuming an install, even when the count is 0.
//! The original took one more install each time a node booted the
//! installer again, and sent it to the next profile once the count was 0.
//!
//! A decision reads (the state, each profile's `.specs`, `.cmdb` and
//! script), matches (picks the profile and its CMDB entry, taking the
//! install in memory), and, when it is not a [`preview`], commits: under
//! the exclusive lock, the CMDB (with its `.orig` backup on first
//! expansion) and the state change together through one [`Transaction`],
//! or not at all.

use crate::cmdb::{self, CmdbError, CmdbFile};
use crate::config::ServerConfig;
use crate::hw::{self, Line};
use crate::literal::{self, Dialect, Document, ParseOptions, Value};
use crate::matcher::{Hardware, Specs};
use crate::persist::{self, Lock, Transaction};
use crate::protocol::Envelope;
use crate::state::{Count, State};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// What the node is told.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub profile: String,
    /// The match's variables merged with the CMDB entry and `used: 1`
    /// (when the profile has a CMDB), plus `edeploy-profile`.
    pub vars: IndexMap<String, Value>,
    /// The profile's configure script (Rhai source).
    pub script: String,
    pub settings: IndexMap<String, String>,
    /// The 0-based CMDB entry handed out, when the profile has a CMDB.
    pub cmdb_entry: Option<usize>,
    /// The node already owned that entry: no install was consumed.
    pub reused: bool,
    /// What the state says is left for the profile after this decision.
    pub left: Count,
}

/// Why a profile was passed over.
#[derive(Debug, Clone, PartialEq)]
pub struct Tried {
    pub profile: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no profile matches this hardware ({})", tried_list(.0))]
    NoMatch(Vec<Tried>),
    #[error(transparent)]
    Cmdb(#[from] CmdbError),
    #[error("{0}")]
    Config(String),
    #[error("{0:#}")]
    Io(anyhow::Error),
}

/// Why a profile was passed over, before it is written out.
enum Passed {
    Because(&'static str),
    Unmatched(crate::matcher::NoMatch),
}

impl std::fmt::Display for Passed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Passed::Because(why) => f.write_str(why),
            Passed::Unmatched(no) => no.fmt(f),
        }
    }
}

fn tried_list(tried: &[Tried]) -> String {
    if tried.is_empty() {
        return "the state file lists no profile".into();
    }
    tried
        .iter()
        .map(|t| format!("{}: {}", t.profile, t.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A decision that failed is answered with its HTTP status.
impl From<DecideError> for crate::cgi::Reject {
    fn from(e: DecideError) -> crate::cgi::Reject {
        crate::cgi::Reject::new(e.http_status(), e.to_string())
    }
}

impl DecideError {
    /// The HTTP status the CGI answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            DecideError::NoMatch(_) => 404,
            DecideError::Cmdb(_) => 409,
            DecideError::Io(e) if e.is::<persist::TooLarge>() => 507,
            DecideError::Config(_) | DecideError::Io(_) => 500,
        }
    }
}

fn io(e: anyhow::Error) -> DecideError {
    DecideError::Io(e)
}

fn config(e: impl std::fmt::Display) -> DecideError {
    DecideError::Config(e.to_string())
}

/// A warning for the server log (the web server's error log).
pub type Warn<'a> = &'a mut dyn FnMut(String);

/// Decides for `hw`. With `commit`, takes the lock and writes the result
/// ([`decide_keeping`]); without, changes nothing ([`preview`]).
pub fn decide(
    cfg: &ServerConfig,
    hw: &[Line],
    commit: bool,
    warn: Warn<'_>,
) -> Result<Decision, DecideError> {
    if commit {
        decide_keeping(cfg, hw, None, None, warn)
    } else {
        preview(cfg, hw, warn)
    }
}

/// What the node would get now, without the lock and changing nothing
/// (what `edeploy-admin try` and the status page show).
pub fn preview(cfg: &ServerConfig, hw: &[Line], warn: Warn<'_>) -> Result<Decision, DecideError> {
    let mut state = read_state(&cfg.configdir.join("state"))?;
    pick(cfg, &mut state, hw, None, Changes::Left, warn).map(|p| p.decision)
}

/// The decision, committed under the exclusive lock, considering only the
/// profile `only` when it is given (`upload.cgi --only PROFILE`; a profile
/// absent from `state` is no match). `keep` (a path and its new contents:
/// `upload.cgi`'s `HWDIR/<sysname>.hw`) is written under the same lock
/// whatever the outcome: with the decision's files in one commit when the
/// node gets a profile, alone otherwise.
pub fn decide_keeping(
    cfg: &ServerConfig,
    hw: &[Line],
    only: Option<&str>,
    keep: Option<(PathBuf, Vec<u8>)>,
    warn: Warn<'_>,
) -> Result<Decision, DecideError> {
    let _lock = Lock::exclusive(&cfg.lockfile).map_err(io)?;
    persist::recover(&cfg.configdir).map_err(io)?;
    let mut keep = keep;
    let state_path = cfg.configdir.join("state");
    let result = read_state(&state_path).and_then(|mut state| {
        let picked = pick(cfg, &mut state, hw, only, Changes::Prepared, warn)?;
        commit(cfg, &state_path, &state, picked, &mut keep)
    });
    if let Some((path, data)) = keep {
        // Not taken into the decision's commit: no profile, or an error.
        let mut txn = Transaction::new();
        txn.write(path, data);
        txn.commit_within(&cfg.configdir, cfg.wal_max).map_err(io)?;
    }
    result
}

// Reading.

fn read_state(path: &Path) -> Result<State, DecideError> {
    State::load(path).map_err(|e| config(format!("{e:#}")))
}

/// A profile's files as far as a decision reads them before matching.
struct ProfileFiles {
    specs: Specs,
    cmdb_path: PathBuf,
    /// Whether the profile has a CMDB, when already looked up.
    has_cmdb: Option<bool>,
}

/// Reads a profile's `.specs`, or says why the profile is passed over
/// without matching (no `.specs`, no installs left and no CMDB that could
/// hold an entry of this node).
fn read_profile(
    dir: &Path,
    profile: &str,
    count: Count,
    warn: Warn<'_>,
) -> Result<Result<ProfileFiles, Passed>, DecideError> {
    let specs_path = dir.join(format!("{profile}.specs"));
    // Read at once rather than tested first: one system call less per
    // profile. A file that cannot be read but exists is an error, and
    // only once the count below has been looked at.
    let specs_bytes = match read_small(&specs_path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound && specs_path.exists() => Err(e),
        Err(_) => {
            warn(format!(
                "{}: missing, profile {profile} skipped",
                specs_path.display()
            ));
            return Ok(Err(Passed::Because("no .specs file")));
        }
    };
    let cmdb_path = dir.join(format!("{profile}.cmdb"));
    let mut has_cmdb = None;
    if count == Count::Left(0) {
        if !cmdb_path.exists() {
            // Nothing could let this node in: skip the match.
            return Ok(Err(Passed::Because("no installs left")));
        }
        has_cmdb = Some(true);
    }
    let specs_bytes =
        specs_bytes.map_err(|e| config(format!("{}: cannot read: {e}", specs_path.display())))?;
    let specs = specs_from_bytes(&specs_path, &specs_bytes)?;
    Ok(Ok(ProfileFiles {
        specs,
        cmdb_path,
        has_cmdb,
    }))
}

/// The profile's configure script.
fn read_script(dir: &Path, profile: &str) -> Result<String, DecideError> {
    let script_path = dir.join(format!("{profile}.configure"));
    read_small(&script_path)
        .and_then(|b| {
            String::from_utf8(b)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
        .map_err(|e| {
            config(format!(
                "{}: cannot read the configure script of profile {profile}: {e}",
                script_path.display()
            ))
        })
}

// Matching.

/// Whether a pick prepares the files it changes (to commit them) or
/// leaves them out (a preview).
#[derive(Clone, Copy, PartialEq)]
enum Changes {
    Prepared,
    Left,
}

/// The profile a node gets, and the CMDB files taking it changes (empty
/// for a preview).
struct Picked {
    decision: Decision,
    txn: Transaction,
    /// The state's count went down: the state file is to be written.
    state_changed: bool,
}

/// What a matching profile's CMDB gives the node.
struct Entry {
    vars: IndexMap<String, Value>,
    cmdb_entry: Option<usize>,
    reused: bool,
}

/// Tries the profiles in `state` order; the first that matches and still
/// lets the node in wins, and its install is taken from `state` (in
/// memory only).
fn pick(
    cfg: &ServerConfig,
    state: &mut State,
    hw: &[Line],
    only: Option<&str>,
    changes: Changes,
    warn: Warn<'_>,
) -> Result<Picked, DecideError> {
    let dir = &cfg.configdir;
    // Why each profile was passed over, formatted only when no profile
    // matches: a matching node does not pay for the others' reasons.
    let mut tried: Vec<(String, Passed)> = Vec::new();
    let hw_index = Hardware::new(hw);
    if let Some(p) = only {
        if state.get(p).is_none() {
            tried.push((p.to_string(), Passed::Because("not in the state file")));
        }
    }
    for i in 0..state.entries.len() {
        let profile = state.entries[i].profile.clone();
        if only.is_some_and(|p| p != profile) {
            continue;
        }
        let count = state.entries[i].count;
        let files = match read_profile(dir, &profile, count, warn)? {
            Ok(files) => files,
            Err(why) => {
                tried.push((profile, why));
                continue;
            }
        };
        let m = match files.specs.find_in(&hw_index) {
            Ok(m) => m,
            Err(no) => {
                tried.push((profile, Passed::Unmatched(no)));
                continue;
            }
        };
        let mut txn = Transaction::new();
        let Some(mut entry) = take_entry(&profile, &files, &m, count, changes, &mut txn)? else {
            tried.push((profile, Passed::Because("no installs left")));
            continue;
        };
        if !entry.reused && !state.consume(&profile) {
            tried.push((profile, Passed::Because("no installs left")));
            continue;
        }
        entry
            .vars
            .insert("edeploy-profile".into(), Value::Str(profile.clone()));
        let script = read_script(dir, &profile)?;
        return Ok(Picked {
            state_changed: !entry.reused && count != Count::Unlimited,
            txn,
            decision: Decision {
                profile,
                vars: entry.vars,
                script,
                settings: settings(cfg),
                cmdb_entry: entry.cmdb_entry,
                reused: entry.reused,
                left: state.entries[i].count,
            },
        });
    }
    Err(DecideError::NoMatch(
        tried
            .into_iter()
            .map(|(profile, why)| Tried {
                profile,
                reason: why.to_string(),
            })
            .collect(),
    ))
}

/// The CMDB entry a matching profile hands out (`None`: none may be, the
/// profile has no installs left), its CMDB's changes put in `txn` when
/// they are `Prepared`. A profile without a CMDB gives the match's
/// variables.
fn take_entry(
    profile: &str,
    files: &ProfileFiles,
    m: &crate::matcher::Match,
    count: Count,
    changes: Changes,
    txn: &mut Transaction,
) -> Result<Option<Entry>, DecideError> {
    let cmdb_path = &files.cmdb_path;
    if !files.has_cmdb.unwrap_or_else(|| cmdb_path.exists()) {
        return Ok(Some(Entry {
            vars: m
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                .collect(),
            cmdb_entry: None,
            reused: false,
        }));
    }
    let name = cmdb_path.display().to_string();
    let bytes =
        std::fs::read(cmdb_path).map_err(|e| config(format!("{name}: cannot read: {e}")))?;
    let db = CmdbFile::read(&name, bytes).map_err(config)?;
    let may_take_new = count != Count::Left(0);
    let write = changes == Changes::Prepared;
    let Some(alloc) = db.allocate(profile, &m.vars, &m.forced, may_take_new, write)? else {
        return Ok(None);
    };
    if let Some(orig) = alloc.orig {
        txn.write(orig_path(cmdb_path), orig);
    }
    if let Some(text) = alloc.text {
        txn.write_over(cmdb_path, text, db.source().as_bytes());
    }
    // The node is told its entry is taken, as the original did
    // (`var['used'] = 1`); the CMDB's own copy has it in its place.
    let mut vars = alloc.vars;
    vars.insert("used".into(), Value::Int(1));
    Ok(Some(Entry {
        vars,
        cmdb_entry: Some(alloc.index),
        reused: alloc.reused,
    }))
}

// Committing.

/// Writes a pick's files, the state when its count went down, and `keep`,
/// in one commit.
fn commit(
    cfg: &ServerConfig,
    state_path: &Path,
    state: &State,
    picked: Picked,
    keep: &mut Option<(PathBuf, Vec<u8>)>,
) -> Result<Decision, DecideError> {
    let mut txn = picked.txn;
    if picked.state_changed {
        txn.write(state_path, state.to_text());
    }
    if let Some((path, data)) = keep.take() {
        txn.write(path, data);
    }
    txn.commit_within(&cfg.configdir, cfg.wal_max).map_err(io)?;
    Ok(picked.decision)
}

/// Reads a small file (a `.specs`, a script) without first asking its
/// size, as `std::fs::read` does: one system call less per file, and a
/// decision reads one file per profile.
fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(8192);
    std::fs::File::open(path)?.read_to_end(&mut buf)?;
    Ok(buf)
}

/// `PXEMNGR_URL` (only with `USEPXEMNGR = True`, as the original: the
/// installer then tells pxemngr to boot the node locally) and
/// `METADATA_URL` for the node, when configured.
pub fn settings(cfg: &ServerConfig) -> IndexMap<String, String> {
    let mut s = IndexMap::new();
    if let Some(u) = cfg.pxemngr_url.as_ref().filter(|_| cfg.use_pxemngr) {
        s.insert("PXEMNGR_URL".into(), u.clone());
    }
    if let Some(u) = &cfg.metadata_url {
        s.insert("METADATA_URL".into(), u.clone());
    }
    s
}

/// A node's install of `profile` failed: give the install back. Returns
/// whether the count changed (`'*'` profiles have nothing to give back).
pub fn report_failure(cfg: &ServerConfig, profile: &str) -> Result<bool, DecideError> {
    let _lock = Lock::exclusive(&cfg.lockfile).map_err(io)?;
    persist::recover(&cfg.configdir).map_err(io)?;
    let path = cfg.configdir.join("state");
    let mut state = State::load(&path).map_err(|e| config(format!("{e:#}")))?;
    let changed = state
        .give_back(profile)
        .map_err(|e| DecideError::Config(e.to_string()))?;
    if changed {
        let mut txn = Transaction::new();
        txn.write(&path, state.to_text());
        txn.commit_within(&cfg.configdir, cfg.wal_max).map_err(io)?;
    }
    Ok(changed)
}

/// Reads and compiles a `.specs` file; errors name the file and line.
pub fn load_specs(path: &Path) -> Result<Specs, DecideError> {
    let doc =
        literal::parse_file(path, ParseOptions::default()).map_err(|e| config(format!("{e:#}")))?;
    specs_from_document(doc, path)
}

/// [`load_specs`] of a file already read.
fn specs_from_bytes(path: &Path, bytes: &[u8]) -> Result<Specs, DecideError> {
    // The usual file, plain strings in 4-tuples, read without building
    // values; anything else, or a line that does not compile, goes through
    // the full reader, which also names the line of an error.
    if let Some(lines) = std::str::from_utf8(bytes)
        .ok()
        .and_then(literal::skim::lines)
    {
        if let Ok(specs) = Specs::compile_owned(lines) {
            return Ok(specs);
        }
    }
    let name = path.display().to_string();
    let doc = literal::parse_bytes(bytes, &name, ParseOptions::default())
        .map_err(|e| config(format!("{e:#}")))?;
    specs_from_document(doc, path)
}

fn specs_from_document(mut doc: Document, path: &Path) -> Result<Specs, DecideError> {
    let name = path.display().to_string();
    let lines = spec_lines(&mut doc, &name)?;
    Specs::compile_owned(lines).map_err(|e| {
        let line = doc.pos_of(e.line.saturating_sub(1)).line;
        config(format!("{name}:{line}: {e}"))
    })
}

/// The lines of a specs document, as [`hw::from_document`] gives them.
/// When every field is already a string (the usual case) the strings are
/// moved out of the document instead of copied.
fn spec_lines(doc: &mut Document, name: &str) -> Result<Vec<Line>, DecideError> {
    let is_text_line = |item: &Value| {
        item.as_seq()
            .is_some_and(|f| f.len() == 4 && f.iter().all(|v| matches!(v, Value::Str(_))))
    };
    if let Value::List(items) | Value::Tuple(items) = &mut doc.value {
        if items.iter().all(is_text_line) {
            return Ok(items.iter_mut().map(take_line).collect());
        }
    }
    hw::from_document(doc, name).map_err(config)
}

/// Moves the four strings out of a 4-tuple of strings.
fn take_line(item: &mut Value) -> Line {
    let mut line = Line::default();
    if let Value::List(fields) | Value::Tuple(fields) = item {
        for (slot, field) in line.iter_mut().zip(fields.iter_mut()) {
            if let Value::Str(s) = field {
                *slot = std::mem::take(s);
            }
        }
    }
    line
}

/// `P.cmdb.orig`, where the file as the operator wrote it is kept.
pub fn orig_path(cmdb: &Path) -> PathBuf {
    let mut s = cmdb.as_os_str().to_owned();
    s.push(".orig");
    PathBuf::from(s)
}

/// A CMDB file as loaded: its expanded entries, and the original bytes
/// when it used `generate` (to keep as `.orig`).
pub struct Cmdb {
    pub entries: Vec<Value>,
    pub dialect: Dialect,
    pub orig: Option<Vec<u8>>,
}

impl Cmdb {
    pub fn load(path: &Path) -> Result<Cmdb, DecideError> {
        let bytes = std::fs::read(path)
            .map_err(|e| config(format!("{}: cannot read: {e}", path.display())))?;
        let name = path.display().to_string();
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| config(format!("{name}: the file is not valid UTF-8")))?;
        let doc =
            literal::parse_named(text, &name, ParseOptions { calls: true }).map_err(config)?;
        let generated = cmdb::uses_generate(&doc.value);
        let dialect = if generated {
            Dialect::Python
        } else {
            doc.dialect
        };
        let entries = cmdb::expand_owned(doc.value).map_err(|e| config(format!("{name}: {e}")))?;
        Ok(Cmdb {
            entries,
            dialect,
            orig: generated.then_some(bytes),
        })
    }

    pub fn to_text(&self) -> String {
        literal::print_list(&self.entries, self.dialect)
    }
}

impl Decision {
    /// What the node is told.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            profile: self.profile.clone(),
            vars: self.vars.clone(),
            script: self.script.clone(),
            settings: self.settings.clone(),
        }
    }
}

/// The JSON answer: `{"profile", "vars", "script", "settings"}`.
pub fn envelope(d: &Decision) -> serde_json::Value {
    d.envelope().to_json()
}
