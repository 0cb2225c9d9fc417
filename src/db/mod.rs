//! PostgreSQL as the store of a section's changing state, for several
//! servers deciding on one database (`DATABASE = postgresql://…` in a
//! section of edeploy.conf; docs/database.md).
//!
//! What moves into the database: the state counts, the CMDB entries and
//! which are used, the failure-report ledger (hand-outs), the hardware
//! lists and a log of decisions. Specs and configure scripts stay files.
//! Rows are keyed by the section's name, so sections can share one
//! database.
//!
//! This module holds the connection ([`connect`], with libpq's URI form
//! and its `passfile`), the schema ([`init`]) and the moves between files
//! and the database ([`import`], [`export`]; the hardware lists of HWDIR:
//! [`hwfiles`]). The export writes the original's formats: an operator
//! can always go back to files.

pub mod hwfiles;
pub mod pipe;
pub mod store;
pub mod url;

pub use hwfiles::HwSource;

use crate::literal::{self, Dialect, ParseOptions, Value};
use crate::state::{Count, State};
use anyhow::{bail, Context, Result};
use postgres::types::Type;
use postgres::{Client, NoTls, Transaction};
use std::path::Path;
use std::time::Duration;

/// The version of the schema this build writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// How long a connection may take when DATABASE does not say
/// (`connect_timeout`): a server that cannot reach its database answers
/// within seconds, and the node retries.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The tables, created by [`init`] when missing.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS edeploy_schema (
    version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS edeploy_sections (
    section text PRIMARY KEY,
    -- 'python' or 'json': how the state file is written back
    state_dialect text NOT NULL
);
CREATE TABLE IF NOT EXISTS edeploy_profiles (
    section text NOT NULL REFERENCES edeploy_sections ON DELETE CASCADE,
    profile text NOT NULL,
    -- the order of the state file: the first match wins
    position integer NOT NULL,
    -- installs left; NULL: no limit ('*')
    installs_left bigint CHECK (installs_left >= 0),
    -- the count was written as a string ('4'), or the pair as a list
    quoted boolean NOT NULL DEFAULT false,
    as_list boolean NOT NULL DEFAULT false,
    PRIMARY KEY (section, profile),
    UNIQUE (section, position)
);
CREATE TABLE IF NOT EXISTS edeploy_cmdbs (
    section text NOT NULL REFERENCES edeploy_sections ON DELETE CASCADE,
    profile text NOT NULL,
    dialect text NOT NULL,
    PRIMARY KEY (section, profile)
);
CREATE TABLE IF NOT EXISTS edeploy_cmdb_entries (
    section text NOT NULL,
    profile text NOT NULL,
    position integer NOT NULL,
    -- the entry, one dict, as a Python literal
    entry text NOT NULL,
    -- its scalar values as text, to find a node's entry by index
    fields jsonb NOT NULL,
    used boolean NOT NULL,
    PRIMARY KEY (section, profile, position),
    FOREIGN KEY (section, profile) REFERENCES edeploy_cmdbs ON DELETE CASCADE
);
-- fastupdate off: a pending list (what a bulk import or many decisions
-- leave until a vacuum) would be scanned whole by every lookup.
CREATE INDEX IF NOT EXISTS edeploy_cmdb_fields
    ON edeploy_cmdb_entries USING gin (fields jsonb_path_ops) WITH (fastupdate = off);
CREATE INDEX IF NOT EXISTS edeploy_cmdb_free
    ON edeploy_cmdb_entries (section, profile, position) WHERE NOT used;
CREATE TABLE IF NOT EXISTS edeploy_handouts (
    section text NOT NULL REFERENCES edeploy_sections ON DELETE CASCADE,
    sysname text NOT NULL,
    profile text NOT NULL,
    -- installs taken by hand-outs not reported failed yet
    taken bigint NOT NULL CHECK (taken >= 0),
    PRIMARY KEY (section, sysname, profile)
);
CREATE TABLE IF NOT EXISTS edeploy_hw (
    section text NOT NULL REFERENCES edeploy_sections ON DELETE CASCADE,
    sysname text NOT NULL,
    received timestamptz NOT NULL DEFAULT now(),
    hw text NOT NULL,
    PRIMARY KEY (section, sysname, received)
);
CREATE TABLE IF NOT EXISTS edeploy_decisions (
    id bigserial PRIMARY KEY,
    section text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    sysname text NOT NULL,
    profile text NOT NULL,
    cmdb_position integer,
    reused boolean NOT NULL,
    -- which server, and the hash of the profile files it decided with
    server text NOT NULL,
    files_sha256 text NOT NULL
);
";

/// A connection to the database of `url` (DATABASE's value), for the
/// section `section`.
pub struct Db {
    pub client: Client,
    pub section: String,
}

/// Connects to `url` (DATABASE's value: a libpq URI, `host=` and `port=`
/// query parameters and `passfile=` included; url::config).
pub fn connect(url_text: &str, section: &str) -> Result<Db> {
    let config = url::config(url_text)?;
    let client = config
        .connect(NoTls)
        .map_err(|e| anyhow::anyhow!("{}: cannot connect: {}", url::shown(url_text), why(&e)))?;
    Ok(Db {
        client,
        section: section.to_string(),
    })
}

/// What went wrong, in the server's words when it said something
/// (rust-postgres's own text is only "db error").
pub fn why(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => {
            let mut s = e.to_string();
            let mut cur = std::error::Error::source(e);
            while let Some(c) = cur {
                s.push_str(": ");
                s.push_str(&c.to_string());
                cur = c.source();
            }
            s
        }
    }
}

/// What [`init`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Init {
    Created,
    AlreadyThere,
}

/// Creates the tables when missing and records the schema's version; a
/// database of another version is refused, naming both.
pub fn init(db: &mut Db) -> Result<Init> {
    let mut tx = db.client.transaction()?;
    // One initialisation at a time, whoever runs it.
    tx.execute("SELECT pg_advisory_xact_lock(7461726565)", &[])?;
    tx.batch_execute(SCHEMA)
        .context("cannot create the tables")?;
    let rows = tx.query("SELECT version FROM edeploy_schema", &[])?;
    let made = match rows.as_slice() {
        [] => {
            tx.execute(
                "INSERT INTO edeploy_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )?;
            Init::Created
        }
        [row] => {
            let v: i32 = row.get(0);
            if v != SCHEMA_VERSION {
                bail!(
                    "the database holds eDeploy's schema version {v}; this edeploy reads \
                     version {SCHEMA_VERSION}"
                );
            }
            Init::AlreadyThere
        }
        _ => bail!("the table edeploy_schema has more than one row"),
    };
    tx.commit()?;
    ensure_section(db, Dialect::Python)?;
    Ok(made)
}

/// Checks the schema's version, naming what to run when it is missing.
pub fn check_schema(db: &mut Db) -> Result<()> {
    let rows = db
        .client
        .query("SELECT version FROM edeploy_schema", &[])
        .map_err(|e| match e.code() {
            Some(c) if *c == postgres::error::SqlState::UNDEFINED_TABLE => {
                anyhow::anyhow!("the database has no eDeploy tables: run `edeploy-admin db init`")
            }
            _ => e.into(),
        })?;
    match rows.as_slice() {
        [row] if row.get::<_, i32>(0) == SCHEMA_VERSION => Ok(()),
        [row] => bail!(
            "the database holds eDeploy's schema version {}; this edeploy reads version \
             {SCHEMA_VERSION}",
            row.get::<_, i32>(0)
        ),
        _ => bail!("the database has no eDeploy schema version: run `edeploy-admin db init`"),
    }
}

fn ensure_section(db: &mut Db, dialect: Dialect) -> Result<()> {
    db.client.execute(
        "INSERT INTO edeploy_sections (section, state_dialect) VALUES ($1, $2) \
         ON CONFLICT (section) DO NOTHING",
        &[&db.section, &dialect_name(dialect)],
    )?;
    Ok(())
}

fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Json => "json",
        Dialect::Python => "python",
    }
}

fn dialect_of(name: &str) -> Dialect {
    if name == "json" {
        Dialect::Json
    } else {
        Dialect::Python
    }
}

/// What [`import`] moved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub profiles: usize,
    pub cmdbs: usize,
    pub entries: usize,
    pub used: usize,
    /// Nodes with hand-outs (the failure-report ledger).
    pub handouts: usize,
    /// Hardware lists (one a node: its newest).
    pub hw: usize,
    /// Files of HWDIR the import skipped, each with why.
    pub skipped: Vec<String>,
}

/// The directory of hand-outs in CONFIGDIR (the file backend's
/// failure-report ledger: one file a node).
const HANDOUTS: &str = "handouts.d";

/// Whether `name` may name a node's file in a directory: not empty, no
/// `/` or NUL, not hidden, at most 255 bytes.
fn is_node_file_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && !name.starts_with('.') && !name.contains(['/', '\0'])
}

/// CONFIGDIR's hand-outs: (sysname, profile, installs taken), every file
/// checked (`[('PROFILE', N), …]`), errors naming the file.
fn read_handouts(configdir: &Path) -> Result<Vec<(String, String, i64)>> {
    let dir = configdir.join(HANDOUTS);
    let listing = match std::fs::read_dir(&dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot list", dir.display())),
    };
    let mut out = Vec::new();
    for item in listing {
        let item = item.with_context(|| format!("{}: cannot list", dir.display()))?;
        let Some(sysname) = item.file_name().to_str().map(String::from) else {
            continue;
        };
        if !is_node_file_name(&sysname) {
            continue;
        }
        let path = item.path();
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("{name}: cannot read"))?;
        let doc = literal::parse_named(&text, &name, ParseOptions::default())?;
        let Value::List(items) = &doc.value else {
            bail!("{name}: expected a list of ('PROFILE', N) hand-outs");
        };
        for item in items {
            match item.as_seq() {
                Some([Value::Str(p), Value::Int(k)]) if *k >= 0 => {
                    let k = i64::try_from(*k).with_context(|| format!("{name}: {p}: too large"))?;
                    out.push((sysname.clone(), p.clone(), k));
                }
                _ => bail!("{name}: expected ('PROFILE', N), N a count of installs"),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The CMDB files of `dir`: (profile, path), sorted by profile.
fn cmdb_files(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = Vec::new();
    let listing =
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?;
    for item in listing {
        let item = item.with_context(|| format!("{}: cannot list", dir.display()))?;
        let name = item.file_name();
        let Some(profile) = name.to_str().and_then(|n| n.strip_suffix(".cmdb")) else {
            continue;
        };
        if !crate::state::is_profile_name(profile) {
            continue;
        }
        out.push((profile.to_string(), item.path()));
    }
    out.sort();
    Ok(out)
}

/// The values of a CMDB entry a node's variable can equal (strings, and
/// numbers by their text: [`crate::cmdb`]'s rules), as text, for the
/// index that finds a node's entry.
fn fields(entry: &Value) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    if let Value::Dict(pairs) = entry {
        for (k, v) in pairs {
            let text = match v {
                Value::Str(_) | Value::Int(_) | Value::Float(_) => v.scalar_text(),
                _ => None,
            };
            if let (Some(k), Some(t)) = (k.as_str(), text) {
                map.insert(k.to_string(), serde_json::Value::String(t));
            }
        }
    }
    serde_json::Value::Object(map)
}

/// A CMDB file's entries (`generate()` and `+` expanded) and the dialect
/// it is written back in (Python once it used `generate()`).
struct CmdbRead {
    entries: Vec<Value>,
    dialect: Dialect,
}

fn read_cmdb(path: &Path) -> Result<CmdbRead> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("{name}: cannot read"))?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| anyhow::anyhow!("{name}: not valid UTF-8"))?;
    let doc = literal::parse_named(text, &name, ParseOptions { calls: true })?;
    let dialect = if crate::cmdb::uses_generate(&doc.value) {
        Dialect::Python
    } else {
        doc.dialect
    };
    let entries =
        crate::cmdb::expand_owned(doc.value).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    Ok(CmdbRead { entries, dialect })
}

/// [`import_with`] with the hardware lists of `configdir` (HWDIR's
/// default) and the default limits.
pub fn import(db: &mut Db, configdir: &Path) -> Result<Moved> {
    import_with(db, configdir, &HwSource::with_defaults(configdir))
}

/// Moves `configdir`'s `state`, every `P.cmdb`, the failure-report
/// ledger and the nodes' hardware lists of `hw.dir` into the database,
/// in one transaction, replacing what the section held: every file is
/// read and checked before anything is written.
pub fn import_with(db: &mut Db, configdir: &Path, hw: &HwSource) -> Result<Moved> {
    check_schema(db)?;
    let state_path = configdir.join("state");
    let state = State::load(&state_path)?;
    let mut cmdbs = Vec::new();
    for (profile, path) in cmdb_files(configdir)? {
        let cmdb = read_cmdb(&path)?;
        for (i, e) in cmdb.entries.iter().enumerate() {
            if !matches!(e, Value::Dict(_)) {
                bail!(
                    "{}: entry {} is a {}, not a dict",
                    path.display(),
                    i + 1,
                    e.type_name()
                );
            }
        }
        cmdbs.push((profile, cmdb));
    }
    let handouts = read_handouts(configdir)?;
    let lists = hwfiles::read(hw)?;
    let section = db.section.clone();
    let mut tx = db.client.transaction()?;
    tx.execute(
        "DELETE FROM edeploy_sections WHERE section = $1",
        &[&section],
    )?;
    tx.execute(
        "INSERT INTO edeploy_sections (section, state_dialect) VALUES ($1, $2)",
        &[&section, &dialect_name(state.dialect)],
    )?;
    let mut moved = Moved::default();
    for (i, e) in state.entries.iter().enumerate() {
        let left: Option<i64> = match e.count {
            Count::Unlimited => None,
            Count::Left(n) => Some(i64::try_from(n).with_context(|| {
                format!("{}: {}: count too large", state_path.display(), e.profile)
            })?),
        };
        let position = i32::try_from(i).context("too many profiles")?;
        tx.execute(
            "INSERT INTO edeploy_profiles (section, profile, position, installs_left, quoted, as_list) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&section, &e.profile, &position, &left, &e.quoted(), &e.as_list()],
        )
        .with_context(|| format!("{}: profile {}", state_path.display(), e.profile))?;
        moved.profiles += 1;
    }
    for (profile, cmdb) in &cmdbs {
        insert_cmdb(&mut tx, &section, profile, cmdb, &mut moved)?;
    }
    let mut nodes = std::collections::BTreeSet::new();
    for (sysname, profile, taken) in &handouts {
        tx.execute(
            "INSERT INTO edeploy_handouts (section, sysname, profile, taken) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (section, sysname, profile) \
             DO UPDATE SET taken = edeploy_handouts.taken + EXCLUDED.taken",
            &[&section, sysname, profile, taken],
        )?;
        nodes.insert(sysname);
    }
    moved.handouts = nodes.len();
    let stmt = tx.prepare_typed(
        "INSERT INTO edeploy_hw (section, sysname, received, hw) VALUES ($1, $2, $3, $4)",
        &[Type::TEXT, Type::TEXT, Type::TIMESTAMPTZ, Type::TEXT],
    )?;
    for l in &lists.lists {
        tx.execute(&stmt, &[&section, &l.sysname, &l.received, &l.text])
            .with_context(|| {
                format!(
                    "{}: cannot store",
                    hw.dir
                        .join(format!("{}{}", l.sysname, hwfiles::SUFFIX))
                        .display()
                )
            })?;
    }
    moved.hw = lists.lists.len();
    moved.skipped = lists.skipped;
    tx.commit()?;
    // Statistics for the planner, now that the tables changed whole.
    db.client.batch_execute(
        "ANALYZE edeploy_profiles, edeploy_cmdbs, edeploy_cmdb_entries, edeploy_hw",
    )?;
    Ok(moved)
}

fn insert_cmdb(
    tx: &mut Transaction<'_>,
    section: &str,
    profile: &str,
    cmdb: &CmdbRead,
    moved: &mut Moved,
) -> Result<()> {
    tx.execute(
        "INSERT INTO edeploy_cmdbs (section, profile, dialect) VALUES ($1, $2, $3)",
        &[&section, &profile, &dialect_name(cmdb.dialect)],
    )?;
    let stmt = tx.prepare(
        "INSERT INTO edeploy_cmdb_entries (section, profile, position, entry, fields, used) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )?;
    for (i, e) in cmdb.entries.iter().enumerate() {
        let position = i32::try_from(i).context("too many CMDB entries")?;
        let text = literal::print(e, Dialect::Python);
        let used = e.get("used").is_some();
        tx.execute(
            &stmt,
            &[&section, &profile, &position, &text, &fields(e), &used],
        )?;
        moved.entries += 1;
        moved.used += usize::from(used);
    }
    moved.cmdbs += 1;
    Ok(())
}

/// [`export_with`] writing the hardware lists into `dir` itself, where
/// the file backend keeps them when HWDIR is CONFIGDIR.
pub fn export(db: &mut Db, dir: &Path) -> Result<Moved> {
    export_with(db, dir, None)
}

/// Checks `dir/name`, where the export writes files: a directory or
/// nothing yet; anything else (a symbolic link included: never followed
/// out of `dir`) is refused. Returns it and whether it is to be made.
fn check_subdir(dir: &Path, name: &str) -> Result<(std::path::PathBuf, bool)> {
    let sub = dir.join(name);
    match std::fs::symlink_metadata(&sub) {
        Ok(m) if !m.is_dir() => bail!("{}: not a directory", sub.display()),
        Ok(_) => Ok((sub, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((sub, true)),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", sub.display())),
    }
}

/// Makes the directory `sub` when [`check_subdir`] found none.
fn make_subdir((sub, missing): &(std::path::PathBuf, bool)) -> Result<()> {
    if *missing {
        std::fs::create_dir(sub).with_context(|| format!("{}: cannot create", sub.display()))?;
    }
    Ok(())
}

/// Writes the section's state into `dir` (which must exist): `state`,
/// one `P.cmdb` per profile with all its entries, free ones included, in
/// the formats they were imported in (the original's by default),
/// `handouts.d/`, and each node's newest hardware list as
/// `<sysname>.hw` (the bytes the file backend writes, its mtime the time
/// it was received) into `dir`, or into `dir/<hw_subdir>` when given.
/// Every destination is checked before anything is written; each file
/// is written whole under a temporary name and renamed.
pub fn export_with(db: &mut Db, dir: &Path, hw_subdir: Option<&str>) -> Result<Moved> {
    check_schema(db)?;
    if !dir.is_dir() {
        bail!("{}: not an existing directory", dir.display());
    }
    let section = db.section.clone();
    // One snapshot of everything.
    let mut tx = db.snapshot()?;
    let Some(row) = tx.query_opt(
        "SELECT state_dialect FROM edeploy_sections WHERE section = $1",
        &[&section],
    )?
    else {
        bail!(
            "the database has nothing for the section {section:?}: run `edeploy-admin db import`"
        );
    };
    let state_dialect = dialect_of(row.get::<_, &str>(0));
    let mut moved = Moved::default();
    let mut entries = Vec::new();
    for row in tx.query(
        "SELECT profile, installs_left, quoted, as_list FROM edeploy_profiles \
         WHERE section = $1 ORDER BY position",
        &[&section],
    )? {
        let left: Option<i64> = row.get(1);
        let count = match left {
            None => Count::Unlimited,
            Some(n) => Count::Left(u64::try_from(n).context("a negative count")?),
        };
        entries.push(crate::state::Entry::with_form(
            row.get::<_, String>(0),
            count,
            row.get(2),
            row.get(3),
        ));
        moved.profiles += 1;
    }
    let state = State {
        entries,
        dialect: state_dialect,
    };
    let mut files = vec![("state".to_string(), state.to_text())];
    let cmdbs = tx.query(
        "SELECT profile, dialect FROM edeploy_cmdbs WHERE section = $1 ORDER BY profile",
        &[&section],
    )?;
    for c in cmdbs {
        let profile: String = c.get(0);
        let dialect = dialect_of(c.get::<_, &str>(1));
        let mut values = Vec::new();
        for row in tx.query(
            "SELECT entry, used FROM edeploy_cmdb_entries WHERE section = $1 AND profile = $2 \
             ORDER BY position",
            &[&section, &profile],
        )? {
            let text: &str = row.get(0);
            let doc = literal::parse_named(
                text,
                &format!("{profile}.cmdb entry"),
                ParseOptions::default(),
            )?;
            values.push(doc.value);
            moved.entries += 1;
            moved.used += usize::from(row.get::<_, bool>(1));
        }
        files.push((
            format!("{profile}.cmdb"),
            literal::print_list(&values, dialect),
        ));
        moved.cmdbs += 1;
    }
    let mut by_node: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for row in tx.query(
        "SELECT sysname, profile, taken FROM edeploy_handouts WHERE section = $1 AND taken > 0 \
         ORDER BY sysname, profile",
        &[&section],
    )? {
        let sysname: String = row.get(0);
        if !is_node_file_name(&sysname) {
            bail!("the hand-out of node {sysname:?} cannot be written: not a file name");
        }
        let pair = Value::Tuple(vec![
            Value::Str(row.get(1)),
            Value::Int(i128::from(row.get::<_, i64>(2))),
        ]);
        by_node.entry(sysname).or_default().push(pair);
    }
    moved.handouts = by_node.len();
    // Written into DIR only: a symlink there is not followed.
    let handouts_dir = if by_node.is_empty() {
        None
    } else {
        Some(check_subdir(dir, HANDOUTS)?)
    };
    if !by_node.is_empty() {
        for (sysname, items) in &by_node {
            files.push((
                format!("{HANDOUTS}/{sysname}"),
                literal::print_list(items, Dialect::Python),
            ));
        }
    }
    // The hardware lists: every destination checked first, then each
    // node's newest list written under its temporary name as it comes
    // (a few hundred at a time in memory), renamed at the end.
    let names: Vec<String> = tx
        .query(
            "SELECT DISTINCT sysname FROM edeploy_hw WHERE section = $1 ORDER BY sysname",
            &[&section],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let hw_sub = match hw_subdir {
        Some(sub) if !names.is_empty() => Some(check_subdir(dir, sub)?),
        _ => None,
    };
    let hw_dir = match &hw_sub {
        Some((sub, _)) => sub.clone(),
        None => dir.to_path_buf(),
    };
    hwfiles::check_destinations(&hw_dir, &names)?;
    // Checked: now made.
    if let Some(h) = &handouts_dir {
        make_subdir(h)?;
    }
    let mut staged = hwfiles::Staged::new(&hw_dir);
    if !names.is_empty() {
        if let Some(sub) = &hw_sub {
            make_subdir(sub)?;
        }
        let portal = tx.bind(
            "SELECT DISTINCT ON (sysname) sysname, received, hw FROM edeploy_hw \
             WHERE section = $1 ORDER BY sysname, received DESC",
            &[&section],
        )?;
        loop {
            let rows = tx.query_portal(&portal, 256)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let sysname: &str = row.try_get(0)?;
                let received: std::time::SystemTime = row.try_get(1)?;
                let text: &str = row.try_get(2)?;
                staged.add(sysname, received, text)?;
            }
        }
    }
    moved.hw = staged.len();
    tx.commit()?;
    for (name, text) in files {
        crate::persist::write_atomic(&dir.join(&name), text.as_bytes())
            .with_context(|| format!("{}: cannot write", dir.join(&name).display()))?;
    }
    staged.finish()?;
    Ok(moved)
}
