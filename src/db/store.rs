//! What a decision reads and writes in the database: the profiles and
//! their installs left, the node's CMDB entry, the hand-out ledger, the
//! hardware lists and the decision log. Matching happens before any of
//! this, outside any lock; a decision then holds the row lock of the one
//! profile it takes from, for a few indexed statements
//! (`crate::provision::on_db`).

use super::{dialect_of, fields, Db};
use crate::literal::{self, Dialect, ParseOptions, Value};
use crate::state::Count;
use anyhow::{Context, Result};
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, Row};

/// A parameter with its type: statements sent with their types
/// (`query_typed`) skip the round trip that asks the server for them.
pub(super) type P<'a> = (&'a (dyn ToSql + Sync), Type);

pub(super) fn text(v: &(dyn ToSql + Sync)) -> P<'_> {
    (v, Type::TEXT)
}

/// A profile of the section's state, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub profile: String,
    pub left: Count,
    /// Whether the profile has a CMDB in the database.
    pub has_cmdb: bool,
}

fn count_of(left: Option<i64>) -> Result<Count> {
    Ok(match left {
        None => Count::Unlimited,
        Some(n) => Count::Left(u64::try_from(n).context("a negative count of installs")?),
    })
}

/// The section's profiles in state order: `$1` the section.
pub(super) const PROFILES: &str = "SELECT p.profile, p.installs_left, c.profile IS NOT NULL \
     FROM edeploy_profiles p LEFT JOIN edeploy_cmdbs c \
       ON c.section = p.section AND c.profile = p.profile \
     WHERE p.section = $1 ORDER BY p.position";

pub(super) fn profile_at(r: &Row) -> Result<Profile> {
    Ok(Profile {
        profile: r.get(0),
        left: count_of(r.get(1))?,
        has_cmdb: r.get(2),
    })
}

/// The section's profiles in state order.
pub fn profiles(c: &mut impl GenericClient, section: &str) -> Result<Vec<Profile>> {
    let rows = c.query_typed(PROFILES, &[text(&section)])?;
    rows.iter().map(profile_at).collect()
}

/// Locks `profile`'s row until the transaction ends and returns its
/// installs left (`None`: the profile is no longer in the state).
pub fn lock_profile(
    c: &mut impl GenericClient,
    section: &str,
    profile: &str,
) -> Result<Option<Count>> {
    let row = c.query_typed_opt(
        "SELECT installs_left FROM edeploy_profiles WHERE section = $1 AND profile = $2 \
         FOR UPDATE",
        &[text(&section), text(&profile)],
    )?;
    row.map(|r| count_of(r.get(0))).transpose()
}

/// A CMDB entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub position: i32,
    pub value: Value,
    pub used: bool,
}

/// Where the node's entry is, as [`crate::cmdb::locate`] finds it in a
/// file: the first entry holding every `pref` variable (`holding`), the
/// first `used` one that does (`owner`); the first free entry (`free`,
/// `None` when an entry holds the node's variables).
#[derive(Debug, Default)]
pub struct Located {
    pub holding: Option<Entry>,
    pub owner: Option<i32>,
    pub free: Option<Entry>,
}

/// Finds the node's entry in a profile's CMDB, in one statement: `$1`
/// the section, `$2` the profile, `$3` the variables that identify the
/// node (jsonb), `$4` whether any does; and the first free entry.
///
/// The entries holding the node's variables come from the index on
/// `fields` first (materialized: never a walk of every entry in position
/// order looking for a node that has none), then the first of them and
/// the first used one; and the first free entry.
pub(super) const LOCATE: &str = "WITH holding AS MATERIALIZED ( \
       SELECT position, entry, used FROM edeploy_cmdb_entries \
       WHERE $4 AND section = $1 AND profile = $2 AND fields @> $3) \
     (SELECT 'h', * FROM holding ORDER BY position LIMIT 1) \
     UNION ALL \
     (SELECT 'o', * FROM holding WHERE used ORDER BY position LIMIT 1) \
     UNION ALL \
     (SELECT 'f', position, entry, used FROM edeploy_cmdb_entries \
      WHERE section = $1 AND profile = $2 AND NOT used ORDER BY position LIMIT 1)";

/// What [`LOCATE`] found, from its rows.
pub(super) fn located(rows: &[Row]) -> Result<Located> {
    let mut found = Located::default();
    for row in rows {
        match row.get::<_, &str>(0) {
            "h" => found.holding = Some(entry_at(row, 1)?),
            "o" => found.owner = Some(row.get(1)),
            _ => found.free = Some(entry_at(row, 1)?),
        }
    }
    if found.holding.is_some() {
        found.free = None;
    }
    Ok(found)
}

/// Whether any variable identifies the node in `pref`.
pub(super) fn identifies(pref: &serde_json::Value) -> bool {
    pref.as_object().is_some_and(|o| !o.is_empty())
}

/// Finds the node's entry in `profile`'s CMDB, and the first free one,
/// in one statement. `pref` are the variables that identify the node
/// (empty: none does).
pub fn locate(
    c: &mut impl GenericClient,
    section: &str,
    profile: &str,
    pref: &serde_json::Value,
) -> Result<Located> {
    let identifies = identifies(pref);
    let rows = c.query_typed(
        LOCATE,
        &[
            text(&section),
            text(&profile),
            (pref, Type::JSONB),
            (&identifies, Type::BOOL),
        ],
    )?;
    located(&rows)
}

/// Locks a profile's row until the transaction ends, in the statement
/// that reads every profile: `$1` the section, `$2` the profile. Its rows:
/// the profiles in state order, with the locked profile's installs left as
/// they are once locked, and whether it is still there.
pub(super) const LOCK_AND_LIST: &str = "WITH locked AS ( \
       SELECT installs_left FROM edeploy_profiles \
       WHERE section = $1 AND profile = $2 FOR UPDATE) \
     SELECT p.profile, \
            CASE WHEN p.profile = $2 THEN (SELECT installs_left FROM locked) \
                 ELSE p.installs_left END, \
            c.profile IS NOT NULL, \
            EXISTS (SELECT 1 FROM locked) \
     FROM edeploy_profiles p LEFT JOIN edeploy_cmdbs c \
       ON c.section = p.section AND c.profile = p.profile \
     WHERE p.section = $1 ORDER BY p.position";

/// What [`LOCK_AND_LIST`] read of `profile`, from its rows.
pub(super) fn locked(rows: &[Row], profile: &str) -> Result<(Option<Count>, Vec<Profile>)> {
    let mut mine = None;
    let mut list = Vec::with_capacity(rows.len());
    for r in rows {
        let p = profile_at(r)?;
        if p.profile == profile && r.get::<_, bool>(3) {
            mine = Some(p.left);
        }
        list.push(p);
    }
    Ok((mine, list))
}

/// Locks `profile`'s row until the transaction ends, in the statement
/// that reads every profile: its installs left (`None`: the profile is no
/// longer in the state, its row as it is once locked) and the profiles in
/// state order.
pub fn lock_and_list(
    c: &mut impl GenericClient,
    section: &str,
    profile: &str,
) -> Result<(Option<Count>, Vec<Profile>)> {
    let rows = c.query_typed(LOCK_AND_LIST, &[text(&section), text(&profile)])?;
    locked(&rows, profile)
}

/// What a committed decision writes, in one statement.
pub struct Commit<'a> {
    pub profile: &'a str,
    pub sysname: &'a str,
    /// The CMDB entry handed out and what it becomes (when it changes).
    pub entry: Option<(i32, &'a Value)>,
    /// The decision takes an install (and is recorded as a hand-out).
    pub consumes: bool,
    /// The hardware list as kept.
    pub hw: &'a str,
    pub cmdb_position: Option<i32>,
    pub reused: bool,
    pub server: &'a str,
    pub files_sha256: &'a str,
}

/// Writes a decision: the entry, the count, the hand-out, the hardware
/// list and the decision log, in one statement (one round trip); its
/// parameters are [`CommitValues::params`].
pub(super) const COMMIT_DECISION: &str = "WITH e AS ( \
       UPDATE edeploy_cmdb_entries SET entry = $4, fields = $5, used = true \
       WHERE $3::int4 IS NOT NULL AND section = $1 AND profile = $2 AND position = $3), \
     t AS ( \
       UPDATE edeploy_profiles SET installs_left = installs_left - 1 \
       WHERE $6 AND section = $1 AND profile = $2 AND installs_left > 0), \
     h AS ( \
       INSERT INTO edeploy_handouts (section, sysname, profile, taken) \
       SELECT $1, $7, $2, 1 WHERE $6 \
       ON CONFLICT (section, sysname, profile) \
       DO UPDATE SET taken = edeploy_handouts.taken + 1), \
     w AS ( \
       INSERT INTO edeploy_hw (section, sysname, hw) VALUES ($1, $7, $8) \
       ON CONFLICT (section, sysname, received) DO UPDATE SET hw = EXCLUDED.hw) \
     INSERT INTO edeploy_decisions \
       (section, sysname, profile, cmdb_position, reused, server, files_sha256) \
     VALUES ($1, $7, $2, $9, $10, $11, $12)";

/// What [`COMMIT_DECISION`] writes of the entry, as sent.
pub(super) struct CommitValues {
    position: Option<i32>,
    entry_text: Option<String>,
    fields: Option<serde_json::Value>,
}

impl CommitValues {
    pub(super) fn new(d: &Commit<'_>) -> CommitValues {
        match d.entry {
            Some((pos, value)) => CommitValues {
                position: Some(pos),
                entry_text: Some(literal::print(value, Dialect::Python)),
                fields: Some(fields(value)),
            },
            None => CommitValues {
                position: None,
                entry_text: None,
                fields: None,
            },
        }
    }

    pub(super) fn params<'a>(&'a self, section: &'a String, d: &'a Commit<'_>) -> [P<'a>; 12] {
        [
            (section, Type::TEXT),
            (&d.profile, Type::TEXT),
            (&self.position, Type::INT4),
            (&self.entry_text, Type::TEXT),
            (&self.fields, Type::JSONB),
            (&d.consumes, Type::BOOL),
            (&d.sysname, Type::TEXT),
            (&d.hw, Type::TEXT),
            (&d.cmdb_position, Type::INT4),
            (&d.reused, Type::BOOL),
            (&d.server, Type::TEXT),
            (&d.files_sha256, Type::TEXT),
        ]
    }
}

/// Writes a decision: the entry, the count, the hand-out, the hardware
/// list and the decision log, in one statement (one round trip).
pub fn commit_decision(c: &mut impl GenericClient, section: &str, d: &Commit<'_>) -> Result<()> {
    let values = CommitValues::new(d);
    let section = section.to_string();
    c.execute_typed(COMMIT_DECISION, &values.params(&section, d))?;
    Ok(())
}

/// Consumes one hand-out of `profile` to `sysname`: `None` when there is
/// none, else whether it took an install (then given back to the
/// profile's count, unless `'*'`). The profile's row must be locked.
pub fn consume_handout(
    c: &mut impl GenericClient,
    section: &str,
    sysname: &str,
    profile: &str,
) -> Result<Option<bool>> {
    let row = c.query_opt(
        "SELECT taken FROM edeploy_handouts WHERE section = $1 AND sysname = $2 AND profile = $3 \
         FOR UPDATE",
        &[&section, &sysname, &profile],
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let taken: i64 = row.get(0);
    if taken > 1 {
        c.execute(
            "UPDATE edeploy_handouts SET taken = taken - 1 \
             WHERE section = $1 AND sysname = $2 AND profile = $3",
            &[&section, &sysname, &profile],
        )?;
    } else {
        c.execute(
            "DELETE FROM edeploy_handouts WHERE section = $1 AND sysname = $2 AND profile = $3",
            &[&section, &sysname, &profile],
        )?;
    }
    if taken < 1 {
        return Ok(Some(false));
    }
    let n = c.execute(
        "UPDATE edeploy_profiles SET installs_left = installs_left + 1 \
         WHERE section = $1 AND profile = $2 AND installs_left IS NOT NULL",
        &[&section, &profile],
    )?;
    Ok(Some(n == 1))
}

/// Keeps a node's hardware list: `$1` the section, `$2` the node's
/// name, `$3` the list as kept. One statement, atomic on its own.
pub(super) const KEEP_HW: &str =
    "INSERT INTO edeploy_hw (section, sysname, hw) VALUES ($1, $2, $3) \
     ON CONFLICT (section, sysname, received) DO UPDATE SET hw = EXCLUDED.hw";

/// Keeps the node's hardware list.
pub fn keep_hw(c: &mut impl GenericClient, section: &str, sysname: &str, hw: &str) -> Result<()> {
    c.execute_typed(KEEP_HW, &[text(&section), text(&sysname), text(&hw)])?;
    Ok(())
}

/// What a decision has read once it holds its profile's row lock.
#[derive(Debug)]
pub struct Locked {
    /// The profile's installs left (`None`: no longer in the state).
    pub left: Option<Count>,
    /// The section's profiles as they are once the lock is held.
    pub profiles: Vec<Profile>,
    /// The node's entry in the profile's CMDB, when asked for.
    pub located: Option<Located>,
}

/// What a decision asks of the database, in the order it asks it: the
/// profiles ([`Decisions::profiles`], outside any transaction); then, for
/// the profile it takes from, a transaction that locks the profile's row
/// and reads its CMDB ([`Decisions::lock`]) and ends with
/// [`Decisions::commit`] or [`Decisions::rollback`].
///
/// On [`Db`] (the status page's previews, over the one connection of the
/// page) each statement is a round trip; on [`super::pipe::Pipe`]
/// (upload.cgi) the statements of each step go together.
pub trait Decisions {
    fn section(&self) -> &str;
    /// The section's profiles in state order.
    fn profiles(&mut self) -> Result<Vec<Profile>>;
    /// Starts a transaction, locks `profile`'s row, reads the profiles as
    /// they are then and, with `pref` (the variables that identify the
    /// node, [`locate`]), finds the node's entry and the first free one.
    fn lock(&mut self, profile: &str, pref: Option<&serde_json::Value>) -> Result<Locked>;
    /// Writes the decision and commits.
    fn commit(&mut self, d: &Commit<'_>) -> Result<()>;
    /// Ends the transaction of [`Decisions::lock`] without writing.
    fn rollback(&mut self) -> Result<()>;
    /// Keeps a node's hardware list (outside any transaction).
    fn keep_hw(&mut self, sysname: &str, hw: &str) -> Result<()>;
}

impl Decisions for Db {
    fn section(&self) -> &str {
        &self.section
    }

    fn profiles(&mut self) -> Result<Vec<Profile>> {
        profiles(&mut self.client, &self.section)
    }

    fn lock(&mut self, profile: &str, pref: Option<&serde_json::Value>) -> Result<Locked> {
        self.client.batch_execute("START TRANSACTION")?;
        let (left, profiles) = lock_and_list(&mut self.client, &self.section, profile)?;
        let located = match pref {
            Some(pref) => Some(locate(&mut self.client, &self.section, profile, pref)?),
            None => None,
        };
        Ok(Locked {
            left,
            profiles,
            located,
        })
    }

    fn commit(&mut self, d: &Commit<'_>) -> Result<()> {
        commit_decision(&mut self.client, &self.section, d)?;
        self.client.batch_execute("COMMIT")?;
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        Ok(self.client.batch_execute("ROLLBACK")?)
    }

    fn keep_hw(&mut self, sysname: &str, hw: &str) -> Result<()> {
        keep_hw(&mut self.client, &self.section, sysname, hw)
    }
}

/// The dialect `profile`'s CMDB is written back in.
pub fn cmdb_dialect(c: &mut impl GenericClient, section: &str, profile: &str) -> Result<Dialect> {
    let row = c.query_opt(
        "SELECT dialect FROM edeploy_cmdbs WHERE section = $1 AND profile = $2",
        &[&section, &profile],
    )?;
    Ok(row.map_or(Dialect::Python, |r| dialect_of(r.get::<_, &str>(0))))
}

impl Db {
    /// A read-only transaction that sees one snapshot of everything
    /// (`REPEATABLE READ`): what the status page and `db export` read.
    pub fn snapshot(&mut self) -> Result<postgres::Transaction<'_>> {
        Ok(self
            .client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?)
    }
}

/// The newest hardware list of every node: (sysname, when, the list as
/// kept), newest first.
pub fn hw_lists(
    c: &mut impl GenericClient,
    section: &str,
) -> Result<Vec<(String, std::time::SystemTime, String)>> {
    let rows = c.query(
        "SELECT DISTINCT ON (sysname) sysname, \
                extract(epoch FROM received)::float8, hw \
         FROM edeploy_hw WHERE section = $1 ORDER BY sysname, received DESC",
        &[&section],
    )?;
    let mut out: Vec<(String, std::time::SystemTime, String)> = rows
        .iter()
        .map(|r| {
            let secs: f64 = r.get(1);
            let when = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs_f64(if secs.is_finite() && secs > 0.0 {
                    secs
                } else {
                    0.0
                });
            (r.get(0), when, r.get(2))
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// Every CMDB of the section: (profile, its entries in order).
pub fn cmdbs(c: &mut impl GenericClient, section: &str) -> Result<Vec<(String, Vec<Value>)>> {
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for row in c.query(
        "SELECT profile, position, entry, used FROM edeploy_cmdb_entries \
         WHERE section = $1 ORDER BY profile, position",
        &[&section],
    )? {
        let profile: String = row.get(0);
        let e = entry_at(&row, 1)?;
        match out.last_mut() {
            Some((p, v)) if *p == profile => v.push(e.value),
            _ => out.push((profile, vec![e.value])),
        }
    }
    for row in c.query(
        "SELECT profile FROM edeploy_cmdbs c WHERE section = $1 AND NOT EXISTS \
         (SELECT 1 FROM edeploy_cmdb_entries e WHERE e.section = c.section \
          AND e.profile = c.profile) ORDER BY profile",
        &[&section],
    )? {
        out.push((row.get(0), Vec::new()));
    }
    Ok(out)
}

/// The entry in `row`'s columns `at` (position), `at + 1` (the entry's
/// text) and `at + 2` (used).
fn entry_at(row: &postgres::Row, at: usize) -> Result<Entry> {
    let text: &str = row.get(at + 1);
    let doc = literal::parse_named(
        text,
        "a CMDB entry of the database",
        ParseOptions::default(),
    )?;
    Ok(Entry {
        position: row.get(at),
        value: doc.value,
        used: row.get(at + 2),
    })
}

/// A profile and the servers that decided it, each with the hash of the
/// files it used last.
pub type Disagreement = (String, Vec<(String, String)>);

/// The profiles whose recent decisions (the last day) were made with
/// different files by different servers.
pub fn disagreements(c: &mut impl GenericClient, section: &str) -> Result<Vec<Disagreement>> {
    let rows = c.query(
        "SELECT profile, server, files_sha256 FROM ( \
           SELECT DISTINCT ON (profile, server) profile, server, files_sha256 \
           FROM edeploy_decisions WHERE section = $1 AND at > now() - interval '1 day' \
           ORDER BY profile, server, at DESC) last \
         ORDER BY profile, server",
        &[&section],
    )?;
    let mut out: Vec<Disagreement> = Vec::new();
    for r in rows {
        let profile: String = r.get(0);
        let pair = (r.get::<_, String>(1), r.get::<_, String>(2));
        match out.last_mut() {
            Some((p, v)) if *p == profile => v.push(pair),
            _ => out.push((profile, vec![pair])),
        }
    }
    out.retain(|(_, v)| v.iter().any(|(_, h)| *h != v[0].1));
    Ok(out)
}
