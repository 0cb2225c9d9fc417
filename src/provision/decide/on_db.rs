//! The decision on PostgreSQL (`DATABASE`, docs/database.md): the same
//! answer as on files, for any number of servers sharing the database.
//!
//! The profiles and their installs left are read; the profiles are
//! matched in state order, outside any transaction (what the input costs
//! is never paid under a lock), each match computed once per request.
//! For the first profile that matches and may let the node in, one
//! transaction locks that profile's row (`SELECT … FOR UPDATE`), checks
//! that no profile before it changed meanwhile (else it starts the walk
//! again with the matches kept, at most [`ROUNDS`] times: 503), finds the
//! node's CMDB entry by index, and writes the entry, the count, the
//! hand-out, the hardware list and a line of the decision log, and
//! commits. Decisions for different profiles do not wait for each other;
//! two for the same profile take turns for a few statements. A server or
//! a database that goes away mid-decision leaves nothing half-done: the
//! transaction is not committed.

use super::listed::{self, Listed};
use super::{
    config, read_script, settings, specs_from_bytes, Configdir, CpuBudget, DecideError, Decision,
    Matches, Passed, Warn, ROUNDS,
};
use crate::cmdb;
use crate::config::ServerConfig;
use crate::db::{self, store, Db};
use crate::hw::{self, Line};
use crate::literal::Value;
use crate::matcher::{Hardware, Match};
use crate::state::Count;
use indexmap::IndexMap;
use sha2::{Digest, Sha256};
use store::Decisions;

/// The database could not be reached or failed mid-decision: 503, the
/// node asks again.
fn unavailable(e: anyhow::Error) -> DecideError {
    DecideError::Unavailable(format!("{e:#}"))
}

/// Connects to `cfg`'s database.
pub fn connect(cfg: &ServerConfig) -> Result<Db, DecideError> {
    let url = cfg
        .database
        .as_deref()
        .ok_or_else(|| config("DATABASE is not set"))?;
    db::connect(url, &cfg.section).map_err(unavailable)
}

/// What a profile's files say before matching.
enum Read {
    Specs(crate::matcher::Specs),
    Known,
    Passed(Passed),
}

fn read_specs(
    cfg: &ServerConfig,
    dir: &Configdir<'_>,
    p: &Listed,
    known: bool,
    warn: Warn<'_>,
) -> Result<Read, DecideError> {
    if p.exhausted && !p.has_cmdb {
        return Ok(Read::Passed(Passed::Because("no installs left")));
    }
    if known {
        return Ok(Read::Known);
    }
    let path = cfg.configdir.join(format!("{}.specs", p.profile));
    match dir.read_small(&path) {
        Ok(bytes) => Ok(Read::Specs(specs_from_bytes(&path, &bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            warn(format!(
                "{}: missing, profile {} skipped",
                path.display(),
                p.profile
            ));
            Ok(Read::Passed(Passed::Because("no .specs file")))
        }
        Err(e) => Err(config(format!("{}: cannot read: {e}", path.display()))),
    }
}

/// The hash of a profile's files (its `.specs` and configure script), for
/// the decision log: two servers deciding with different files show.
fn files_sha256(cfg: &ServerConfig, dir: &Configdir<'_>, profile: &str) -> String {
    let mut h = Sha256::new();
    for ext in ["specs", "configure"] {
        h.update(ext.as_bytes());
        let path = cfg.configdir.join(format!("{profile}.{ext}"));
        h.update(dir.read_small(&path).unwrap_or_default());
    }
    crate::archive::manifest::hex(&h.finalize())
}

/// This server's name, for the decision log: the host's name, and the
/// web server's port when run as a CGI (`SERVER_PORT`), so that two web
/// servers on one host are told apart.
fn server_name() -> String {
    let host = host_name();
    match std::env::var("SERVER_PORT") {
        Ok(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{host}:{port}")
        }
        _ => host,
    }
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; gethostname NUL-terminates
    // within it or truncates.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The variables that identify the node in a CMDB, as the index reads
/// them.
fn preference(m: &Match) -> serde_json::Value {
    let pref: &IndexMap<String, String> = if m.forced.is_empty() {
        &m.vars
    } else {
        &m.forced
    };
    serde_json::Value::Object(
        pref.iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

/// What a committed decision keeps of the node and of this server.
struct Kept {
    sysname: String,
    /// The hardware list as kept ([`hw::to_literal`]).
    text: String,
    /// This server, for the decision log.
    server: String,
}

/// The decision for `hw` on `cfg`'s database, committed (`commit`) or
/// not (a preview), considering only `only` when given; `hw_text` (the
/// list as kept) goes into the database with the decision, or alone
/// when there is none.
pub fn decide(
    cfg: &ServerConfig,
    hw: &[Line],
    only: Option<&str>,
    commit: bool,
    budget: CpuBudget,
    warn: Warn<'_>,
) -> Result<Decision, DecideError> {
    let url = cfg
        .database
        .as_deref()
        .ok_or_else(|| config("DATABASE is not set"))?;
    let mut db = db::pipe::connect(url, &cfg.section).map_err(unavailable)?;
    decide_on(&mut db, cfg, hw, only, commit, true, budget, warn)
}

/// The decision for `hw` that commits nothing (what the node would get
/// now), on `db`, an open connection to `cfg`'s database: a caller
/// previewing many nodes (the status page) connects once. A preview
/// that fails leaves `db` usable (its transaction rolled back).
pub fn preview_on(
    db: &mut Db,
    cfg: &ServerConfig,
    hw: &[Line],
    budget: CpuBudget,
    warn: Warn<'_>,
) -> Result<Decision, DecideError> {
    decide_on(db, cfg, hw, None, false, false, budget, warn)
}

/// [`decide`] on `db`; with `keep_list`, walking first the list of the
/// profiles this server keeps ([`walk`]).
#[allow(clippy::too_many_arguments)]
fn decide_on(
    db: &mut dyn Decisions,
    cfg: &ServerConfig,
    hw: &[Line],
    only: Option<&str>,
    commit: bool,
    keep_list: bool,
    budget: CpuBudget,
    warn: Warn<'_>,
) -> Result<Decision, DecideError> {
    // Made once, before anything is locked: the list as kept is as long
    // as the node made it.
    let kept = Kept {
        sysname: hw::sysname(hw),
        text: if commit {
            hw::to_literal(hw)
        } else {
            String::new()
        },
        server: if commit { server_name() } else { String::new() },
    };
    let hw_index = Hardware::new(hw);
    let mut matches = Matches::new(budget);
    let result = walk(
        cfg,
        db,
        &hw_index,
        &kept,
        only,
        commit,
        keep_list,
        &mut matches,
        warn,
    );
    if commit && result.is_err() {
        db.keep_hw(&kept.sysname, &kept.text).map_err(unavailable)?;
    }
    result
}

/// What one profile that matches gives, its row locked.
enum Step {
    /// A profile before it changed meanwhile, or it left the state: the
    /// walk starts again.
    Again,
    /// It does not let the node in.
    Passed(Passed),
    Decided(Box<Decision>),
}

/// How a walk over one list of the profiles ends.
enum Round {
    Again,
    NoMatch(Vec<(String, Passed)>),
    Decided(Box<Decision>),
}

/// The copy of the profiles' list this server keeps in CONFIGDIR
/// (`listed`): read once, written when a list read from the database
/// differs from it, by decisions that commit (`upload.cgi`, as the web
/// server's user), not by previews (`edeploy-admin try`, often run as
/// root).
struct KeptList {
    path: std::path::PathBuf,
    section: String,
    list: Option<Vec<Listed>>,
    writes: bool,
}

impl KeptList {
    fn read(cfg: &ServerConfig, dir: &Configdir<'_>, section: &str, writes: bool) -> KeptList {
        let path = listed::path(&cfg.configdir);
        let list = dir
            .read_own(&path, listed::MOST)
            .and_then(|b| listed::from_text(&b, section));
        KeptList {
            path,
            section: section.to_string(),
            list,
            writes,
        }
    }

    /// Keeps `list`, read from the database, unless it is kept already.
    fn saw(&mut self, dir: &Configdir<'_>, list: Vec<Listed>) {
        if !self.writes || self.list.as_ref() == Some(&list) {
            return;
        }
        let text = listed::to_text(&self.section, &list).into_bytes();
        let len = text.len() as u64;
        dir.write_own(&self.path, &[(0, text)], len);
        self.list = Some(list);
    }
}

/// Walks the profiles in state order. With `keep_list`, the first walk
/// is over the list this server keeps (`listed`), which spares reading
/// it from the database; a walk over it that decides nothing, or fails,
/// is made again over the database's.
#[allow(clippy::too_many_arguments)]
fn walk(
    cfg: &ServerConfig,
    db: &mut dyn Decisions,
    hw_index: &Hardware<'_>,
    kept: &Kept,
    only: Option<&str>,
    commit: bool,
    keep_list: bool,
    matches: &mut Matches,
    warn: Warn<'_>,
) -> Result<Decision, DecideError> {
    let dir = Configdir::open(cfg);
    let mut kept_list = keep_list.then(|| KeptList::read(cfg, &dir, db.section(), commit));
    let mut next = kept_list.as_ref().and_then(|k| k.list.clone());
    let rounds = ROUNDS + usize::from(next.is_some());
    for _ in 0..rounds {
        let (profiles, from_copy) = match next.take() {
            Some(list) => (list, true),
            None => {
                let list = listed::listed(&db.profiles().map_err(unavailable)?);
                if let Some(k) = kept_list.as_mut() {
                    k.saw(&dir, list.clone());
                }
                (list, false)
            }
        };
        // A walk over the kept copy says what it warns of only once it
        // stands.
        let mut held = Vec::new();
        let mut hold = |w: String| held.push(w);
        let round_warn: Warn<'_> = if from_copy { &mut hold } else { &mut *warn };
        let mut seen = None;
        let round = walk_once(
            cfg, db, &dir, &profiles, hw_index, kept, only, commit, matches, &mut seen, round_warn,
        );
        if let (Some(k), Some(list)) = (kept_list.as_mut(), seen) {
            k.saw(&dir, list);
        }
        match round {
            Ok(Round::Decided(d)) => {
                held.into_iter().for_each(&mut *warn);
                return Ok(*d);
            }
            Ok(Round::Again) => continue,
            Ok(Round::NoMatch(_)) | Err(_) if from_copy => continue,
            Ok(Round::NoMatch(tried)) => return Err(super::no_match(tried)),
            Err(e) => return Err(e),
        }
    }
    Err(DecideError::Busy(ROUNDS))
}

/// One walk over `profiles`; `seen` gets the list as read under the row
/// lock, when one was taken.
#[allow(clippy::too_many_arguments)]
fn walk_once(
    cfg: &ServerConfig,
    db: &mut dyn Decisions,
    dir: &Configdir<'_>,
    profiles: &[Listed],
    hw_index: &Hardware<'_>,
    kept: &Kept,
    only: Option<&str>,
    commit: bool,
    matches: &mut Matches,
    seen: &mut Option<Vec<Listed>>,
    warn: Warn<'_>,
) -> Result<Round, DecideError> {
    let mut tried: Vec<(String, Passed)> = Vec::new();
    if let Some(p) = only {
        if !profiles.iter().any(|x| x.profile == p) {
            tried.push((p.to_string(), Passed::Because("not in the state file")));
        }
    }
    for (i, p) in profiles.iter().enumerate() {
        if only.is_some_and(|o| o != p.profile) {
            continue;
        }
        let known = matches.done.contains_key(&p.profile);
        let specs = match read_specs(cfg, dir, p, known, warn)? {
            Read::Passed(why) => {
                tried.push((p.profile.clone(), why));
                continue;
            }
            Read::Specs(s) => Some(s),
            Read::Known => None,
        };
        let result = matches
            .get(&p.profile, specs.as_ref(), hw_index)
            .map_err(super::PickError::into_decide)?;
        let m = match &*result {
            Ok(m) => m.clone(),
            Err(_) => {
                tried.push((p.profile.clone(), Passed::Unmatched(result)));
                continue;
            }
        };
        // What the commit needs of the files, read before the row lock
        // (an error in them counts only once the profile lets the node
        // in, as on files).
        let files = Files {
            script: read_script(dir, &p.profile),
            sha256: if commit {
                files_sha256(cfg, dir, &p.profile)
            } else {
                String::new()
            },
        };
        // The profile matches: its CMDB and count, under its row lock,
        // in a transaction that ends here whatever happens.
        let step = locked_step(
            cfg,
            db,
            &profiles[..i],
            p,
            &m,
            files,
            kept,
            commit,
            seen,
            warn,
        );
        if !matches!(step, Ok(Step::Decided(_))) || !commit {
            let rolled_back = db.rollback().map_err(unavailable);
            if step.is_ok() {
                rolled_back?;
            }
        }
        match step? {
            Step::Again => return Ok(Round::Again),
            Step::Passed(why) => tried.push((p.profile.clone(), why)),
            Step::Decided(d) => return Ok(Round::Decided(d)),
        }
    }
    Ok(Round::NoMatch(tried))
}

/// A profile's files as the commit needs them.
struct Files {
    script: Result<String, DecideError>,
    sha256: String,
}

/// Locks profile `p` (matched with `m`; `before` the profiles before it
/// when the walk began), reads what it may hand out and, when it lets the
/// node in, writes the decision and commits when `commit`. The caller
/// ends the transaction otherwise.
#[allow(clippy::too_many_arguments)]
fn locked_step(
    cfg: &ServerConfig,
    db: &mut dyn Decisions,
    before: &[Listed],
    p: &Listed,
    m: &Match,
    files: Files,
    kept: &Kept,
    commit: bool,
    seen: &mut Option<Vec<Listed>>,
    warn: Warn<'_>,
) -> Result<Step, DecideError> {
    let pref = p.has_cmdb.then(|| preference(m));
    let locked = db.lock(&p.profile, pref.as_ref()).map_err(unavailable)?;
    *seen = Some(listed::listed(&locked.profiles));
    let Some(left) = locked.left else {
        return Ok(Step::Again);
    };
    // The profiles before this one as they are now: one that may now let
    // the node in first, or this one changed (its CMDB), and the walk
    // starts again.
    if !listed::same_before(&locked.profiles, before, p) {
        return Ok(Step::Again);
    }
    let Some((vars, position, reused, value)) = take(p, left, m, locked.located)? else {
        return Ok(Step::Passed(Passed::Because("no installs left")));
    };
    if !reused && left == Count::Left(0) {
        return Ok(Step::Passed(Passed::Because("no installs left")));
    }
    let consumes = !reused && left != Count::Unlimited;
    let left_after = match left {
        Count::Left(n) if consumes => Count::Left(n - 1),
        other => other,
    };
    let mut vars = vars;
    vars.insert("edeploy-profile".into(), Value::Str(p.profile.clone()));
    let script = files.script?;
    if m.beyond_reference {
        warn(format!(
            "profile {}: matched beyond the original matcher's search, which finds no match here \
             (it gives up after 50 levels of retries or never retries a line binding no new \
             variable); the variables are the first pairing in file order",
            p.profile
        ));
    }
    if commit {
        let entry = match (position, &value) {
            (Some(pos), Some(v)) => Some((pos, v)),
            _ => None,
        };
        db.commit(&store::Commit {
            profile: &p.profile,
            sysname: &kept.sysname,
            entry,
            consumes,
            hw: &kept.text,
            cmdb_position: position,
            reused,
            server: &kept.server,
            files_sha256: &files.sha256,
        })
        .map_err(unavailable)?;
    }
    Ok(Step::Decided(Box::new(Decision {
        profile: p.profile.clone(),
        vars,
        script,
        settings: settings(cfg),
        cmdb_entry: position.and_then(|n| usize::try_from(n).ok()),
        reused,
        left: left_after,
    })))
}

type Handed = (IndexMap<String, Value>, Option<i32>, bool, Option<Value>);

/// What profile `p` (matched with `m`, `left` installs left, its row
/// locked, `found` the node's entry in its CMDB when it has one) hands
/// the node: its variables with the CMDB entry merged, the entry's
/// position, whether the node already owned it, and the entry as it
/// becomes; `None` when it may not (no installs left and no entry of the
/// node's).
fn take(
    p: &Listed,
    left: Count,
    m: &Match,
    found: Option<store::Located>,
) -> Result<Option<Handed>, DecideError> {
    let may_take_new = left != Count::Left(0);
    let Some(found) = found else {
        if !may_take_new {
            return Ok(None);
        }
        let vars = m
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect();
        return Ok(Some((vars, None, false, None)));
    };
    if found.owner.is_none() && !may_take_new {
        return Ok(None);
    }
    let entry = match (found.holding, found.free) {
        (Some(e), _) => e,
        (None, _) if !m.forced.is_empty() => {
            return Err(DecideError::Cmdb(cmdb::CmdbError::NoForcedEntry {
                profile: p.profile.clone(),
                forced: m.forced.clone(),
            }))
        }
        (None, Some(e)) => e,
        (None, None) => {
            return Err(DecideError::Cmdb(cmdb::CmdbError::Exhausted {
                profile: p.profile.clone(),
            }))
        }
    };
    let reused = found.owner == Some(entry.position);
    let (value, mut vars) = cmdb::merge(&entry.value, &m.vars);
    vars.insert("used".into(), Value::Int(1));
    let changed = value != entry.value || !entry.used;
    Ok(Some((
        vars,
        Some(entry.position),
        reused,
        changed.then_some(value),
    )))
}

/// A failure report on the database: the hand-out of `profile` to the
/// node is consumed and its install given back, in one transaction.
pub fn report_failure(cfg: &ServerConfig, profile: &str, hw: &[Line]) -> Result<bool, DecideError> {
    let sysname = hw::sysname(hw);
    let mut db = connect(cfg)?;
    let mut tx = db.client.transaction().map_err(|e| unavailable(e.into()))?;
    let section = cfg.section.clone();
    if store::lock_profile(&mut tx, &section, profile)
        .map_err(unavailable)?
        .is_none()
    {
        return Err(DecideError::NotInState(profile.to_string()));
    }
    let Some(changed) =
        store::consume_handout(&mut tx, &section, &sysname, profile).map_err(unavailable)?
    else {
        return Err(DecideError::Refused(format!(
            "{sysname} has no hand-out of profile {profile} to report a failure of (never handed \
             it, its failure was already reported, or its hand-out took no install: a '*' \
             profile or a re-used CMDB entry): nothing given back"
        )));
    };
    tx.commit().map_err(|e| unavailable(e.into()))?;
    Ok(changed)
}
