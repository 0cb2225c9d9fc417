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
//! expansion), the state change and the hand-out record together through
//! one [`Transaction`], or not at all.
//!
//! # The lock covers only what needs it
//!
//! Matching reads only the operator's files and the upload, so it runs
//! before the lock: the state is read, and the profiles are matched in
//! `state` order until one matches and has an install left in that
//! snapshot, every match result being remembered (the CMDB of that last
//! profile is left for the lock: with installs left, a matching profile
//! either hands an entry out or fails the decision). Under the lock the
//! state is read again and the profiles walked in order with the
//! remembered results, without reading their `.specs` again; the answer is
//! the one the whole decision under the lock would give for that state.
//! When the walk reaches a profile whose match was not computed (installs
//! changed meanwhile), the lock is dropped, the match computed, and the
//! walk retried, at most [`ROUNDS`] times (then 503).
//!
//! # The budget
//!
//! All the matches of one upload share one [`CpuBudget`], processor
//! time (`DECISIONBUDGET`, [`ServerConfig::decision_budget`]); past it the
//! upload is answered 503 naming the profile whose specs cost too much,
//! and nothing is taken. [`preview`] (`edeploy-admin try`) has no limit;
//! [`preview_within`] (the status page) has one.
//!
//! # Hand-outs and failure reports
//!
//! Every decision that takes an install records its hand-out in the
//! node's file `CONFIGDIR/handouts.d/<sysname>` (each profile and how
//! many installs it took and has not been given back), in the decision's
//! commit; one that takes none (a `'*'` profile, a re-used CMDB entry)
//! records nothing, so there are never more files than installs counted
//! in `state`, whatever the nodes send, and a decision reads and writes
//! its node's file only, whatever the size of the fleet. A failure report
//! ([`report_failure`]) counts only against such a record, and consumes
//! it: a node never handed the profile, or reporting twice, gives nothing
//! back (409).

use crate::cmdb::{self, CmdbError, CmdbFile};
use crate::config::ServerConfig;
use crate::hw::{self, Line};
use crate::literal::{self, Dialect, Document, ParseOptions, Value};
use crate::matcher::{Budget, Hardware, Match, Miss, NoMatch, Specs};
use crate::persist::{self, Lock, Transaction};
use crate::protocol::Envelope;
use crate::state::{Count, State};
use indexmap::IndexMap;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// How many times a decision computes matches before the lock and finds,
/// under it, that the installs left call for a match it has not computed,
/// before it gives up with [`DecideError::Busy`].
pub const ROUNDS: usize = 3;

/// The directory of hand-outs in CONFIGDIR: one file a node, named by its
/// sysname, `[('PROFILE', N), …]`, N the installs taken by hand-outs of
/// PROFILE to the node and not given back.
pub const HANDOUTS: &str = "handouts.d";

mod listed;
pub mod on_db;

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
    /// The matches took longer than the decision budget.
    #[error(
        "matching this hardware list against the specs of profile {profile} took more than \
         the {} of processor time the server gives a decision (DECISIONBUDGET); nothing was \
         taken",
        seconds(.budget)
    )]
    OverBudget {
        profile: String,
        budget: Option<Duration>,
    },
    /// The installs left kept changing between matching and the lock.
    #[error(
        "the installs left kept changing while this node was matched ({0} tries); nothing \
         was taken, ask again"
    )]
    Busy(usize),
    /// A failure report that does not count.
    #[error("{0}")]
    Refused(String),
    /// The database (`DATABASE`) cannot be reached or failed: nothing
    /// was taken, the node asks again.
    #[error("the database is unavailable, nothing was taken, ask again: {0}")]
    Unavailable(String),
    /// A failure report of a profile the state does not list.
    #[error("the profile {0:?} is not in the state")]
    NotInState(String),
}

fn seconds(budget: &Option<Duration>) -> String {
    match budget {
        Some(d) => format!("{} s", d.as_secs_f64()),
        None => "time".into(),
    }
}

/// Why a profile was passed over, before it is written out.
enum Passed {
    Because(&'static str),
    /// The profile's match result, a [`NoMatch`] (shared with the
    /// decision's [`Matches`]).
    Unmatched(Rc<Result<Match, NoMatch>>),
}

impl std::fmt::Display for Passed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Passed::Because(why) => f.write_str(why),
            Passed::Unmatched(result) => match &**result {
                Err(no) => no.fmt(f),
                Ok(_) => f.write_str("matched"),
            },
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
            DecideError::NoMatch(_) | DecideError::NotInState(_) => 404,
            DecideError::Cmdb(_) | DecideError::Refused(_) => 409,
            DecideError::Io(e) if e.is::<persist::TooLarge>() => 507,
            DecideError::Config(_) | DecideError::Io(_) => 500,
            DecideError::OverBudget { .. } | DecideError::Busy(_) | DecideError::Unavailable(_) => {
                503
            }
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
/// (what `edeploy-admin try` shows), however long matching takes.
pub fn preview(cfg: &ServerConfig, hw: &[Line], warn: Warn<'_>) -> Result<Decision, DecideError> {
    preview_within(cfg, hw, CpuBudget::unlimited(), warn)
}

/// [`preview`] that gives up with [`DecideError::OverBudget`] once
/// `budget` is spent.
pub fn preview_within(
    cfg: &ServerConfig,
    hw: &[Line],
    budget: CpuBudget,
    warn: Warn<'_>,
) -> Result<Decision, DecideError> {
    if cfg.database.is_some() {
        return on_db::decide(cfg, hw, None, false, budget, warn);
    }
    let dir = Configdir::open(cfg);
    let mut state = read_state(&dir, &cfg.configdir.join("state"))?;
    let mut matches = Matches::new(budget);
    let hw = Hardware::new(hw);
    pick(
        &dir,
        &mut state,
        &hw,
        None,
        Changes::Left,
        warn,
        &mut matches,
    )
    .map(|p| p.decision)
    .map_err(PickError::into_decide)
}

/// [`preview_within`] on `db`, an open connection to `cfg`'s database
/// (the status page's, one for all its previews).
pub fn preview_within_on(
    db: &mut crate::db::Db,
    cfg: &ServerConfig,
    hw: &[Line],
    budget: CpuBudget,
    warn: Warn<'_>,
) -> Result<Decision, DecideError> {
    on_db::preview_on(db, cfg, hw, budget, warn)
}

/// The decision, committed under the exclusive lock, considering only the
/// profile `only` when it is given (`upload.cgi --only PROFILE`; a profile
/// absent from `state` is no match), its matches computed before the lock
/// within `cfg.decision_budget`. `keep` (a path and its new contents:
/// `upload.cgi`'s `HWDIR/<sysname>.hw`) is written under the lock
/// whatever the outcome: with the decision's files in one commit when the
/// node gets a profile, alone otherwise.
pub fn decide_keeping(
    cfg: &ServerConfig,
    hw: &[Line],
    only: Option<&str>,
    keep: Option<(PathBuf, Vec<u8>)>,
    warn: Warn<'_>,
) -> Result<Decision, DecideError> {
    if cfg.database.is_some() {
        let budget = CpuBudget::starting_now(cfg.decision_budget);
        return on_db::decide(cfg, hw, only, true, budget, warn);
    }
    let mut matches = Matches::new(CpuBudget::starting_now(cfg.decision_budget));
    let hw_index = Hardware::new(hw);
    let mut keep = keep;
    let dir = Configdir::open(cfg);
    let state_path = cfg.configdir.join("state");
    // The same warning from the pass before the lock and the one under it
    // is given once.
    let mut seen = HashSet::new();
    let mut warn_once = |w: String| {
        if seen.insert(w.clone()) {
            warn(w)
        }
    };
    let mut answer = Err(DecideError::Busy(ROUNDS));
    for _ in 0..ROUNDS {
        // Before the lock: the matches this snapshot of `state` calls for
        // (a `Probe`: the walk stops at the first profile that matches and
        // has installs left, its CMDB read under the lock). Only running
        // out of budget ends the decision here; anything else the walk
        // under the lock finds again, on the files as they are then.
        matches.compute = true;
        let early = read_state(&dir, &state_path)
            .map_err(PickError::Decide)
            .and_then(|mut state| {
                let w: Warn<'_> = &mut warn_once;
                pick(
                    &dir,
                    &mut state,
                    &hw_index,
                    only,
                    Changes::Probe,
                    w,
                    &mut matches,
                )
            });
        if let Err(PickError::Decide(e @ DecideError::OverBudget { .. })) = early {
            answer = Err(e);
            break;
        }
        hooks::before_lock();
        let _lock = Lock::exclusive(&cfg.lockfile).map_err(io)?;
        // The log stays open for the commit under this lock.
        let mut log = persist::recover_open(&cfg.configdir).map_err(io)?;
        matches.compute = false;
        let result = read_state_source(&dir, &state_path)
            .map_err(PickError::Decide)
            .and_then(|(mut state, source)| {
                let w: Warn<'_> = &mut warn_once;
                let picked = pick(
                    &dir,
                    &mut state,
                    &hw_index,
                    only,
                    Changes::Prepared,
                    w,
                    &mut matches,
                )?;
                let read = (state_path.as_path(), source.as_slice());
                commit(&dir, &mut log, read, &state, picked, hw, &mut keep)
                    .map_err(PickError::Decide)
            });
        match result {
            Err(PickError::NeedsMatch) => continue,
            Ok(d) => return Ok(d),
            Err(PickError::Decide(e)) => {
                keep_alone(cfg, keep)?;
                return Err(e);
            }
            Err(PickError::Probed) => {
                keep_alone(cfg, keep)?;
                return Err(DecideError::Io(anyhow::anyhow!(
                    "the walk under the lock stopped as a probe"
                )));
            }
        }
    }
    let _lock = Lock::exclusive(&cfg.lockfile).map_err(io)?;
    persist::recover(&cfg.configdir).map_err(io)?;
    keep_alone(cfg, keep)?;
    answer
}

/// Writes `keep` alone (no profile, or an error), under the lock the
/// caller holds.
fn keep_alone(cfg: &ServerConfig, keep: Option<(PathBuf, Vec<u8>)>) -> Result<(), DecideError> {
    if let Some((path, data)) = keep {
        let mut txn = Transaction::new();
        txn.write(path, data);
        txn.commit_within(&cfg.configdir, cfg.wal_max).map_err(io)?;
    }
    Ok(())
}

/// A pause before the decision's lock is taken, for tests that change the
/// state between matching and locking (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
pub mod hooks {
    use std::cell::RefCell;

    type Hook = Box<dyn FnMut()>;

    thread_local! {
        static BEFORE_LOCK: RefCell<Option<Hook>> = RefCell::new(None);
    }

    /// Runs `f` in this thread each time a decision is about to take the
    /// lock, until [`clear`].
    pub fn set_before_lock(f: impl FnMut() + 'static) {
        BEFORE_LOCK.with(|h| *h.borrow_mut() = Some(Box::new(f)));
    }

    pub fn clear() {
        BEFORE_LOCK.with(|h| *h.borrow_mut() = None);
    }

    pub(super) fn before_lock() {
        let hook = BEFORE_LOCK.with(|h| h.borrow_mut().take());
        if let Some(mut f) = hook {
            f();
            BEFORE_LOCK.with(|h| {
                let mut slot = h.borrow_mut();
                if slot.is_none() {
                    *slot = Some(f);
                }
            });
        }
    }
}

/// Without the feature `test-hooks`, nothing.
#[cfg(not(feature = "test-hooks"))]
mod hooks {
    pub(super) fn before_lock() {}
}

// Reading.

fn read_state(dir: &Configdir<'_>, path: &Path) -> Result<State, DecideError> {
    read_state_source(dir, path).map(|(state, _)| state)
}

/// [`read_state`], with the bytes read (under the lock: what the commit
/// replaces, so that it need not read the file again).
fn read_state_source(dir: &Configdir<'_>, path: &Path) -> Result<(State, Vec<u8>), DecideError> {
    let bytes = dir
        .read_small(path)
        .map_err(|e| config(format!("{}: cannot read: {e}", path.display())))?;
    let state = State::from_bytes(&bytes, &path.display().to_string())
        .map_err(|e| config(format!("{e:#}")))?;
    Ok((state, bytes))
}

/// A profile's files as far as a decision reads them before matching.
struct ProfileFiles {
    /// `None` when the profile's match is already known (not read).
    specs: Option<Specs>,
    cmdb_path: PathBuf,
    /// Whether the profile has a CMDB, when already looked up.
    has_cmdb: Option<bool>,
}

/// Reads a profile's `.specs`, or says why the profile is passed over
/// without matching (no `.specs`, no installs left and no CMDB that could
/// hold an entry of this node).
fn read_profile(
    at: &Configdir<'_>,
    profile: &str,
    count: Count,
    warn: Warn<'_>,
    known: bool,
) -> Result<Result<ProfileFiles, Passed>, DecideError> {
    let dir = &at.cfg.configdir;
    let cmdb_path = dir.join(format!("{profile}.cmdb"));
    if known {
        // Matched by this decision's walk before the lock, the result
        // kept (`Matches`): the specs are not needed again.
        let has_cmdb = (count == Count::Left(0)).then(|| cmdb_path.exists());
        if has_cmdb == Some(false) {
            return Ok(Err(Passed::Because("no installs left")));
        }
        return Ok(Ok(ProfileFiles {
            specs: None,
            cmdb_path,
            has_cmdb,
        }));
    }
    let specs_path = dir.join(format!("{profile}.specs"));
    // Read at once rather than tested first: one system call less per
    // profile. A file that cannot be read but exists is an error, and
    // only once the count below has been looked at.
    let specs_bytes = match at.read_small(&specs_path) {
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
        specs: Some(specs),
        cmdb_path,
        has_cmdb,
    }))
}

/// The profile's configure script.
fn read_script(dir: &Configdir<'_>, profile: &str) -> Result<String, DecideError> {
    let script_path = dir.cfg.configdir.join(format!("{profile}.configure"));
    dir.read_small(&script_path)
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
    /// Before the lock: the walk stops ([`PickError::Probed`]) at the
    /// first profile that matches and has installs left, without reading
    /// its CMDB (unless it is out of installs, or its CMDB had no entry
    /// for the node the last time: then read as for `Left`).
    Probe,
}

/// The profile a node gets, and the CMDB files taking it changes (empty
/// for a preview).
struct Picked {
    decision: Decision,
    txn: Transaction,
    /// Side indexes of the CMDBs the commit changes, written once it is
    /// made (`CmdbFile::index`).
    indexes: Vec<(PathBuf, cmdb::IndexWrite)>,
    /// The state's count went down: the state file is to be written.
    state_changed: bool,
}

/// What a matching profile's CMDB gives the node.
struct Entry {
    vars: IndexMap<String, Value>,
    cmdb_entry: Option<usize>,
    reused: bool,
}

/// A limit on the CPU time this thread spends matching, from the moment
/// it is made: what `DECISIONBUDGET` sets. CPU time rather than time
/// passed, so a node's answer does not depend on how many others share
/// the processors (a boot storm of hundreds of uploads on two cores keeps
/// every CGI waiting for its turn, not working).
///
/// Each match is given the matcher's [`Budget`] on the same
/// processor-time clock ([`Budget::until_cpu`]), ending where this budget
/// ends.
#[derive(Debug, Clone, Copy)]
pub struct CpuBudget {
    limit: Option<Duration>,
    start: Duration,
}

impl CpuBudget {
    /// No limit (`edeploy-admin try`).
    pub fn unlimited() -> CpuBudget {
        CpuBudget {
            limit: None,
            start: Duration::ZERO,
        }
    }

    /// `limit` of CPU time from now, for this thread.
    pub fn starting_now(limit: Duration) -> CpuBudget {
        CpuBudget {
            limit: Some(limit),
            start: crate::matcher::thread_cpu_time(),
        }
    }

    /// The limit, `None` when unlimited.
    pub fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// The CPU time left (`None`: no limit).
    pub fn remaining(&self) -> Option<Duration> {
        let limit = self.limit?;
        let spent = crate::matcher::thread_cpu_time().saturating_sub(self.start);
        Some(limit.saturating_sub(spent))
    }

    /// Whether no CPU time is left.
    pub fn spent(&self) -> bool {
        self.remaining().is_some_and(|r| r.is_zero())
    }
}

/// How many matches may start without reading the processor-time clock
/// first (each stays within the matcher's own checks: a few thousand
/// steps between two readings).
const CLOCK_EVERY: usize = 8;

/// The match results of one decision, by profile, and the budget they
/// share.
struct Matches {
    budget: CpuBudget,
    done: HashMap<String, Rc<Result<Match, NoMatch>>>,
    /// The CMDBs that had no entry for the node under the lock: a probe
    /// reads them rather than assume they have one.
    no_entry: HashSet<PathBuf>,
    /// Matches computed so far: the processor-time clock, a system call,
    /// is read before every [`CLOCK_EVERY`]th (the matcher reads it while
    /// a match goes on).
    computed: usize,
    /// Whether a match not yet computed may be (before the lock), or is
    /// [`PickError::NeedsMatch`] (under it).
    compute: bool,
}

impl Matches {
    fn new(budget: CpuBudget) -> Matches {
        Matches {
            budget,
            done: HashMap::new(),
            no_entry: HashSet::new(),
            computed: 0,
            compute: true,
        }
    }

    /// `specs` (of `profile`) against `hw`, computed once.
    fn get(
        &mut self,
        profile: &str,
        specs: Option<&Specs>,
        hw: &Hardware<'_>,
    ) -> Result<Rc<Result<Match, NoMatch>>, PickError> {
        if let Some(done) = self.done.get(profile) {
            return Ok(Rc::clone(done));
        }
        if !self.compute {
            return Err(PickError::NeedsMatch);
        }
        let Some(specs) = specs else {
            return Err(PickError::Decide(DecideError::Io(anyhow::anyhow!(
                "profile {profile}: its specs were not read"
            ))));
        };
        let over = || {
            PickError::Decide(DecideError::OverBudget {
                profile: profile.to_string(),
                budget: self.budget.limit(),
            })
        };
        let check = self.computed % CLOCK_EVERY == 0;
        self.computed += 1;
        let budget = match self.budget.limit {
            None => Budget::unlimited(),
            Some(_) if check && self.budget.spent() => return Err(over()),
            Some(limit) => Budget::until_cpu(self.budget.start + limit),
        };
        let result = match specs.find_within(hw, &budget) {
            Ok(m) => Ok(m),
            Err(Miss::NoMatch(no)) => Err(no),
            Err(Miss::OverBudget) => return Err(over()),
        };
        let result = Rc::new(result);
        self.done.insert(profile.to_string(), Rc::clone(&result));
        Ok(result)
    }
}

/// Why a walk of the profiles stopped without a profile.
enum PickError {
    Decide(DecideError),
    /// Under the lock: a match not computed before it is needed.
    NeedsMatch,
    /// A [`Changes::Probe`] walk reached the profile it would stop at.
    Probed,
}

impl From<DecideError> for PickError {
    fn from(e: DecideError) -> PickError {
        PickError::Decide(e)
    }
}

impl PickError {
    /// The error of a walk that computes every match it needs.
    fn into_decide(self) -> DecideError {
        match self {
            PickError::Decide(e) => e,
            PickError::NeedsMatch => {
                DecideError::Io(anyhow::anyhow!("a match was needed and not computed"))
            }
            PickError::Probed => DecideError::Io(anyhow::anyhow!(
                "a walk that takes nothing stopped as a probe"
            )),
        }
    }
}

/// Tries the profiles in `state` order; the first that matches and still
/// lets the node in wins, and its install is taken from `state` (in
/// memory only).
fn pick(
    dir: &Configdir<'_>,
    state: &mut State,
    hw_index: &Hardware<'_>,
    only: Option<&str>,
    changes: Changes,
    warn: Warn<'_>,
    matches: &mut Matches,
) -> Result<Picked, PickError> {
    // Why each profile was passed over, formatted only when no profile
    // matches: a matching node does not pay for the others' reasons.
    let mut tried: Vec<(String, Passed)> = Vec::new();
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
        let known = matches.done.contains_key(&profile);
        let files = match read_profile(dir, &profile, count, warn, known)? {
            Ok(files) => files,
            Err(why) => {
                tried.push((profile, why));
                continue;
            }
        };
        let result = matches.get(&profile, files.specs.as_ref(), hw_index)?;
        let m = match &*result {
            Ok(m) => m,
            Err(_) => {
                tried.push((profile, Passed::Unmatched(result)));
                continue;
            }
        };
        if changes == Changes::Probe
            && count != Count::Left(0)
            && !matches.no_entry.contains(&files.cmdb_path)
        {
            // Installs left, and its CMDB (if any) had an entry the last
            // time: the walk under the lock reads the CMDB.
            return Err(PickError::Probed);
        }
        let mut txn = Transaction::new();
        let mut indexes = Vec::new();
        let cmdb = (files.cmdb_path.as_path(), read_cmdb(dir, &files, changes)?);
        let Some(mut entry) = take_entry(
            &profile,
            cmdb,
            m,
            count,
            changes,
            (&mut txn, &mut indexes),
            &mut matches.no_entry,
        )?
        else {
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
        if m.beyond_reference {
            warn(format!(
                "profile {profile}: matched beyond the original matcher's search, which finds \
                 no match here (it gives up after 50 levels of retries or never retries a line \
                 binding no new variable); the variables are the first pairing in file order"
            ));
        }
        return Ok(Picked {
            state_changed: !entry.reused && count != Count::Unlimited,
            txn,
            indexes,
            decision: Decision {
                profile,
                vars: entry.vars,
                script,
                settings: settings(dir.cfg),
                cmdb_entry: entry.cmdb_entry,
                reused: entry.reused,
                left: state.entries[i].count,
            },
        });
    }
    Err(PickError::Decide(no_match(tried)))
}

/// No profile lets the node in: why each was passed over.
fn no_match(tried: Vec<(String, Passed)>) -> DecideError {
    DecideError::NoMatch(
        tried
            .into_iter()
            .map(|(profile, why)| Tried {
                profile,
                reason: why.to_string(),
            })
            .collect(),
    )
}

/// A matching profile's CMDB as a decision reads it: its text, mapped
/// under the lock, and its side index when it has one.
struct CmdbRead {
    text: cmdb::Text,
    index: Option<Vec<u8>>,
}

/// A matching profile's CMDB, `None` when it has none.
fn read_cmdb(
    dir: &Configdir<'_>,
    files: &ProfileFiles,
    changes: Changes,
) -> Result<Option<CmdbRead>, DecideError> {
    // Opened at once rather than tested first (one system call less); not
    // found, when not known to exist, is a profile without a CMDB.
    let path = &files.cmdb_path;
    let cannot = |e: std::io::Error| config(format!("{}: cannot read: {e}", path.display()));
    let file = match files.has_cmdb {
        Some(false) => return Ok(None),
        known => match dir.open_file(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && known.is_none() => {
                return Ok(None)
            }
            Err(e) => return Err(cannot(e)),
        },
    };
    let name = path.display().to_string();
    // Mapped only under the lock, which every writer of the file takes.
    let mapped = match changes {
        Changes::Prepared => cmdb::Text::map(&name, &file),
        Changes::Left | Changes::Probe => None,
    };
    let text = match mapped {
        Some(text) => text,
        None => cmdb::Text::read(&name, read_whole(file).map_err(cannot)?),
    }
    .map_err(config)?;
    let index = dir.read_index(&cmdb::index_path(path), text.as_ref().len());
    Ok(Some(CmdbRead { text, index }))
}

/// The CMDB entry a matching profile hands out (`None`: none may be, the
/// profile has no installs left), its CMDB (`cmdb`: its path and what
/// [`read_cmdb`] read) changes put in `txn` when they are `Prepared`. A
/// profile without a CMDB gives the match's variables.
fn take_entry(
    profile: &str,
    cmdb: (&Path, Option<CmdbRead>),
    m: &crate::matcher::Match,
    count: Count,
    changes: Changes,
    (txn, indexes): (&mut Transaction, &mut Vec<(PathBuf, cmdb::IndexWrite)>),
    no_entry: &mut HashSet<PathBuf>,
) -> Result<Option<Entry>, DecideError> {
    let (cmdb_path, read) = cmdb;
    let name = cmdb_path.display().to_string();
    let Some(read) = read else {
        return Ok(Some(Entry {
            vars: m
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                .collect(),
            cmdb_entry: None,
            reused: false,
        }));
    };
    let db = CmdbFile::open(&name, read.text, read.index).map_err(config)?;
    let may_take_new = count != Count::Left(0);
    let write = changes == Changes::Prepared;
    let Some(alloc) = db.allocate(profile, &m.vars, &m.forced, may_take_new, write)? else {
        no_entry.insert(cmdb_path.to_path_buf());
        return Ok(None);
    };
    let new_crc = db.crc_after(&alloc);
    if write {
        if let Some(index) = db.index_write(&alloc, new_crc) {
            indexes.push((cmdb::index_path(cmdb_path), index));
        }
    }
    if let Some(orig) = alloc.orig {
        txn.write(orig_path(cmdb_path), orig);
    }
    match (alloc.change, new_crc) {
        (Some(cmdb::Change::Whole(text)), _) => {
            txn.write_over(cmdb_path, text, db.source().as_bytes());
        }
        (Some(cmdb::Change::Edit { range, entry }), Some(crc)) => {
            let base: persist::Base = db.shared();
            txn.write_edit(
                cmdb_path,
                (base, db.crc()),
                range,
                (entry.into_bytes(), crc),
            )
            .map_err(io)?;
        }
        _ => {}
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

/// Writes a pick's files, the state when its count went down (`read`:
/// its path and the bytes read under the lock), the hand-out record of
/// the node (`hw`) and `keep`, in one commit through `log` (CONFIGDIR's,
/// recovered under the lock).
fn commit(
    dir: &Configdir<'_>,
    log: &mut persist::Recovered,
    read: (&Path, &[u8]),
    state: &State,
    picked: Picked,
    hw: &[Line],
    keep: &mut Option<(PathBuf, Vec<u8>)>,
) -> Result<Decision, DecideError> {
    let mut txn = picked.txn;
    if picked.state_changed {
        let (state_path, source) = read;
        txn.write_over(state_path, state.to_text(), source);
    }
    // A hand-out that took no install (a `'*'` profile, a re-used CMDB
    // entry) leaves a failure report nothing to give back: it is not
    // recorded. So there is at most one file per install counted in
    // `state`, whatever the nodes send.
    if picked.state_changed {
        let mut handouts = Handouts::load(dir, &hw::sysname(hw))?;
        if handouts.record(&picked.decision.profile, 1) {
            handouts.make_dir()?;
            txn.write_over(&handouts.path, handouts.to_text(), &handouts.source);
        }
    }
    if let Some((path, data)) = keep.take() {
        txn.write(path, data);
    }
    txn.commit_recovered(log, dir.cfg.wal_max).map_err(io)?;
    // After the commit, outside the log: an index that is not written, or
    // half written, does not describe the file and is not used.
    for (path, w) in &picked.indexes {
        dir.write_index(path, w);
    }
    Ok(picked.decision)
}

/// Reads a small file (a `.specs`, a script, `state`) without asking its
/// size and position first, as `std::fs::read` and `File::read_to_end`
/// do (a `statx` and an `lseek`): two system calls less per file, and a
/// decision reads one file per profile. Through `Take`, `read_to_end` is
/// the generic one: it reads into the vector's spare room without
/// zeroing it first.
fn read_small(file: std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(8192);
    file.take(u64::MAX).read_to_end(&mut buf)?;
    Ok(buf)
}

/// CONFIGDIR, opened once for a decision (`O_PATH`): the files a decision
/// reads in it (`state`, every `.specs`, the CMDB, the script, the node's
/// hand-outs) are opened relative to it (`openat`), so the path leading
/// to it is looked up once rather than once per file. When it cannot be
/// opened, or for a path outside it, files are opened by their full
/// paths, with the errors that gives.
struct Configdir<'a> {
    cfg: &'a ServerConfig,
    fd: Option<std::os::fd::OwnedFd>,
}

impl<'a> Configdir<'a> {
    fn open(cfg: &'a ServerConfig) -> Configdir<'a> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let fd = std::ffi::CString::new(cfg.configdir.as_os_str().as_bytes())
            .ok()
            .and_then(|dir| {
                // SAFETY: a NUL-terminated path that lives across the call.
                let fd = unsafe {
                    libc::open(
                        dir.as_ptr(),
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    )
                };
                // SAFETY: a descriptor just opened, owned by nothing else.
                (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
            });
        Configdir { cfg, fd }
    }

    /// Opens `path` for reading, relative to CONFIGDIR when it is inside.
    fn open_file(&self, path: &Path) -> std::io::Result<std::fs::File> {
        self.open_with(path, libc::O_RDONLY, 0)
    }

    /// Opens `path` with `flags` (and `O_CLOEXEC`; `mode` when it
    /// creates), relative to CONFIGDIR when it is inside.
    fn open_with(&self, path: &Path, flags: i32, mode: u32) -> std::io::Result<std::fs::File> {
        use std::os::fd::{AsRawFd, FromRawFd};
        use std::os::unix::ffi::OsStrExt;
        let inside = self.fd.as_ref().and_then(|fd| {
            // `CONFIGDIR/NAME` as `Path::join` makes it: compared as bytes
            // (a component-wise `strip_prefix` costs more than the open
            // it spares a path walk).
            let dir = self.cfg.configdir.as_os_str().as_bytes();
            let rest = path.as_os_str().as_bytes().strip_prefix(dir)?;
            let rest = match dir.last() {
                Some(b'/') => rest,
                _ => rest.strip_prefix(b"/")?,
            };
            if rest.first().is_none_or(|&c| c == b'/') {
                return None;
            }
            Some((fd, std::ffi::CString::new(rest).ok()?))
        });
        let Some((fd, rel)) = inside else {
            use std::os::unix::fs::OpenOptionsExt;
            let access = flags & libc::O_ACCMODE;
            return std::fs::OpenOptions::new()
                .read(access != libc::O_WRONLY)
                .write(access != libc::O_RDONLY)
                .create(flags & libc::O_CREAT != 0)
                .truncate(false)
                .mode(mode)
                .custom_flags(flags & !(libc::O_ACCMODE | libc::O_CREAT))
                .open(path);
        };
        loop {
            // SAFETY: an open directory and a NUL-terminated path that
            // live across the call.
            let r = unsafe {
                libc::openat(
                    fd.as_raw_fd(),
                    rel.as_ptr(),
                    flags | libc::O_CLOEXEC,
                    mode as libc::c_uint,
                )
            };
            if r >= 0 {
                // SAFETY: a descriptor just opened, owned by nothing else.
                return Ok(std::fs::File::from(unsafe {
                    std::os::fd::OwnedFd::from_raw_fd(r)
                }));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// A small file ([`read_small`]).
    fn read_small(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        read_small(self.open_file(path)?)
    }

    /// A CMDB's side index (`index`, beside a CMDB of `text_len` bytes):
    /// `None` when there is none, or it is not a regular file, or larger
    /// than an index of such a CMDB can be (two bytes per entry at least,
    /// nine bytes of index each). Never through a symlink, nor waiting on
    /// a FIFO put in its place.
    fn read_index(&self, index: &Path, text_len: usize) -> Option<Vec<u8>> {
        self.read_own(index, 64 + (text_len / 2).saturating_mul(9))
    }

    /// A file this server writes beside the operator's ([`write_own`]):
    /// `None` when there is none, or it is not a regular file, or it is
    /// larger than `most` bytes. Never through a symlink, nor waiting on a
    /// FIFO put in its place.
    ///
    /// [`write_own`]: Configdir::write_own
    fn read_own(&self, path: &Path, most: usize) -> Option<Vec<u8>> {
        use std::io::Read;
        let file = self
            .open_with(
                path,
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
                0,
            )
            .ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > most as u64 {
            return None;
        }
        // Its length read at once (a file that changed since is torn and
        // fails its checks).
        let mut buf = Vec::new();
        buf.try_reserve_exact(meta.len() as usize).ok()?;
        buf.resize(meta.len() as usize, 0);
        (&file).read_exact(&mut buf).ok()?;
        Some(buf)
    }

    /// Writes a CMDB's side index in place (after the commit, under the
    /// lock; no `fsync`: a torn or lost index fails its checks and is
    /// made again). A failure leaves the decision as it is: the next one
    /// skims the CMDB.
    fn write_index(&self, index: &Path, w: &cmdb::IndexWrite) {
        self.write_own(index, &w.pieces, w.len);
    }

    /// Writes `pieces` (offset, bytes) of a file this server keeps beside
    /// the operator's, in place, and cuts it to `len` bytes; no `fsync`:
    /// what it holds carries its own check, and one torn or lost is made
    /// again. A symlink in its place is removed, not followed; a file this
    /// process may not write (another user's) is removed and made again.
    /// A failure is silent: such a file only spares work.
    fn write_own(&self, path: &Path, pieces: &[(u64, Vec<u8>)], len: u64) {
        use std::os::unix::fs::FileExt;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let file = match self.open_with(path, flags, 0o644) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EACCES)) => {
                std::fs::remove_file(path).and_then(|_| self.open_with(path, flags, 0o644))
            }
            other => other,
        };
        let Ok(file) = file else {
            return;
        };
        let _ = pieces
            .iter()
            .try_for_each(|(at, bytes)| file.write_all_at(bytes, *at))
            .and_then(|_| match file.metadata() {
                Ok(m) if m.len() > len => file.set_len(len),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            });
    }
}

/// The rest of `file`, its size asked first and read in one go, as
/// `std::fs::read` does (a `statx`, then one read and one at its end).
fn read_whole(mut file: std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let size = file
        .metadata()
        .ok()
        .and_then(|m| usize::try_from(m.len()).ok())
        .unwrap_or(0);
    let mut buf = Vec::new();
    buf.try_reserve_exact(size)?;
    buf.resize(size, 0);
    let mut got = 0;
    while got < size {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    // Then to its end, wherever that is now (one short read when the
    // size was right).
    file.take(u64::MAX).read_to_end(&mut buf)?;
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

/// The node whose hardware list is `hw` reports that its install of
/// `profile` failed: when the server handed it `profile` (a record in
/// [`HANDOUTS`] for its sysname), that record is consumed and the install
/// it took given back, in one commit. Returns whether the count changed
/// (a hand-out of a `'*'` profile, or one that re-used the node's CMDB
/// entry, took nothing). No record: [`DecideError::Refused`] (409),
/// nothing changed.
pub fn report_failure(cfg: &ServerConfig, profile: &str, hw: &[Line]) -> Result<bool, DecideError> {
    if cfg.database.is_some() {
        return on_db::report_failure(cfg, profile, hw);
    }
    let sysname = hw::sysname(hw);
    let _lock = Lock::exclusive(&cfg.lockfile).map_err(io)?;
    persist::recover(&cfg.configdir).map_err(io)?;
    let path = cfg.configdir.join("state");
    let mut state = State::load(&path).map_err(|e| config(format!("{e:#}")))?;
    if state.get(profile).is_none() {
        return Err(config(format!(
            "the profile {profile:?} is not in the state file"
        )));
    }
    let mut handouts = Handouts::load(&Configdir::open(cfg), &sysname)?;
    let Some(taken) = handouts.consume(profile) else {
        return Err(DecideError::Refused(format!(
            "{sysname} has no hand-out of profile {profile} to report a failure of (never handed \
             it, its failure was already reported, or its hand-out took no install: a '*' \
             profile or a re-used CMDB entry): nothing given back"
        )));
    };
    let mut txn = Transaction::new();
    txn.write_over(&handouts.path, handouts.to_text(), &handouts.source);
    let changed = taken
        && state
            .give_back(profile)
            .map_err(|e| DecideError::Config(e.to_string()))?;
    if changed {
        txn.write(&path, state.to_text());
    }
    txn.commit_within(&cfg.configdir, cfg.wal_max).map_err(io)?;
    Ok(changed)
}

/// A node's hand-outs file (`CONFIGDIR/`[`HANDOUTS`]`/<sysname>`) as read.
struct Handouts {
    path: PathBuf,
    /// `(profile, installs taken)` in file order.
    entries: Vec<(String, u64)>,
    /// The file's bytes (empty when it does not exist).
    source: Vec<u8>,
}

impl Handouts {
    /// Reads the file of `sysname`; a missing one holds no hand-out.
    /// Errors name the file and line.
    fn load(dir: &Configdir<'_>, sysname: &str) -> Result<Handouts, DecideError> {
        let path = dir.cfg.configdir.join(HANDOUTS).join(sysname);
        let source = match dir.read_small(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Handouts {
                    path,
                    entries: Vec::new(),
                    source: Vec::new(),
                })
            }
            Err(e) => return Err(config(format!("{}: cannot read: {e}", path.display()))),
        };
        let name = path.display().to_string();
        let text = std::str::from_utf8(&source)
            .map_err(|_| config(format!("{name}: the file is not valid UTF-8")))?;
        let doc = literal::parse_named(text, &name, ParseOptions::default()).map_err(config)?;
        let Value::List(items) = &doc.value else {
            return Err(config(format!(
                "{name}: expected a list of ('PROFILE', N) hand-outs"
            )));
        };
        let mut entries = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let entry = match item.as_seq() {
                Some([Value::Str(p), Value::Int(k)]) => {
                    u64::try_from(*k).ok().map(|k| (p.clone(), k))
                }
                _ => None,
            };
            let Some(entry) = entry else {
                return Err(config(format!(
                    "{name}:{}: expected ('PROFILE', N), N a count of installs",
                    doc.pos_of(i).line
                )));
            };
            entries.push(entry);
        }
        Ok(Handouts {
            path,
            entries,
            source,
        })
    }

    /// Makes the directory of hand-outs files when there is none yet (a
    /// file read from it says it exists).
    fn make_dir(&self) -> Result<(), DecideError> {
        let Some(dir) = self.path.parent().filter(|_| self.source.is_empty()) else {
            return Ok(());
        };
        match std::fs::create_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                Err(config(format!("{}: cannot make: {e}", dir.display())))
            }
            _ => Ok(()),
        }
    }

    /// Records a hand-out of `profile` that took `taken` installs.
    /// Returns whether the file changes.
    fn record(&mut self, profile: &str, taken: u64) -> bool {
        match self.entries.iter_mut().find(|(p, _)| p == profile) {
            Some(_) if taken == 0 => false,
            Some((_, k)) => {
                *k = k.saturating_add(taken);
                true
            }
            None => {
                self.entries.push((profile.to_string(), taken));
                true
            }
        }
    }

    /// Consumes one hand-out of `profile`: `None` when there is none,
    /// else whether it took an install (then given back).
    fn consume(&mut self, profile: &str) -> Option<bool> {
        let i = self.entries.iter().position(|(p, _)| p == profile)?;
        let k = &mut self.entries[i].1;
        if *k > 1 {
            *k -= 1;
            return Some(true);
        }
        let taken = *k == 1;
        self.entries.remove(i);
        Some(taken)
    }

    fn to_text(&self) -> String {
        let items: Vec<Value> = self
            .entries
            .iter()
            .map(|(p, k)| Value::Tuple(vec![Value::Str(p.clone()), Value::Int(i128::from(*k))]))
            .collect();
        literal::print_list(&items, Dialect::Python)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_through_configdir_or_by_their_full_paths() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("config/handouts.d")).unwrap();
        std::fs::create_dir_all(root.join("configx")).unwrap();
        std::fs::write(root.join("config/state"), b"in").unwrap();
        std::fs::write(root.join("config/handouts.d/n"), b"sub").unwrap();
        std::fs::write(root.join("configx/state"), b"beside").unwrap();
        std::fs::write(root.join("outside"), b"out").unwrap();
        for dir in [root.join("config"), root.join("config/")] {
            let cfg = ServerConfig::with_configdir(dir.clone());
            let at = Configdir::open(&cfg);
            assert!(at.fd.is_some(), "{}", dir.display());
            for (path, want) in [
                (dir.join("state"), &b"in"[..]),
                (dir.join("handouts.d").join("n"), b"sub"),
                (root.join("configx/state"), b"beside"),
                (root.join("outside"), b"out"),
                (dir.join("../outside"), b"out"),
            ] {
                assert_eq!(at.read_small(&path).unwrap(), want, "{}", path.display());
                let whole = read_whole(at.open_file(&path).unwrap()).unwrap();
                assert_eq!(whole, want, "{}", path.display());
            }
            let missing = at.read_small(&dir.join("nothing")).unwrap_err();
            assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
            // CONFIGDIR itself is no file of it.
            assert!(at.read_small(&dir).is_err());
        }
        // A CONFIGDIR that cannot be opened: full paths, their errors.
        let cfg = ServerConfig::with_configdir(root.join("none"));
        let at = Configdir::open(&cfg);
        assert!(at.fd.is_none());
        let whole = read_whole(at.open_file(&root.join("outside")).unwrap()).unwrap();
        assert_eq!(whole, b"out");
        // Written by their full paths too, with the flags asked for.
        let index = root.join("an-index");
        let w = crate::cmdb::IndexWrite {
            pieces: vec![(0, b"0123456789".to_vec()), (2, b"ab".to_vec())],
            len: 6,
        };
        at.write_index(&index, &w);
        assert_eq!(std::fs::read(&index).unwrap(), b"01ab45");
        assert_eq!(at.read_index(&index, 100).unwrap(), b"01ab45");
        let long = crate::cmdb::IndexWrite {
            pieces: vec![(0, vec![b'x'; 65])],
            len: 65,
        };
        at.write_index(&index, &long);
        assert_eq!(at.read_index(&index, 100).map(|b| b.len()), Some(65));
        assert_eq!(
            at.read_index(&index, 0),
            None,
            "larger than an index can be"
        );
        let e = at.read_small(&root.join("none/state")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
