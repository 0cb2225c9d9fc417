//! The CMDB of a profile: the list of settings (IP addresses, hostnames,
//! …) handed out to the nodes that match the profile, one entry per node.
//!
//! A CMDB file holds a list of dicts, possibly written with
//! `generate({...})` and `+`. [`expand`] turns the parsed value into the
//! flat list of entries, [`generate`] expands one model (see its doc for
//! the range syntax), [`allocate`] hands an entry to a node and
//! [`check`] reports duplicated addresses and names.
//!
//! Everything here works on values only: reading the file, keeping the
//! `.orig` copy and saving atomically belong to the caller.
//!
//! # Allocation rules
//!
//! * A node is identified by its match variables, or only by the `$$`
//!   (forced) variables when the specs declared some. The first entry that
//!   holds all of them is the node's entry, whether or not it is `used`.
//! * Without forced variables, a node not found that way takes the first
//!   entry without a `used` key. With forced variables it never takes an
//!   arbitrary entry: the operator asked for a specific one.
//! * When no variable identifies the node at all (empty preference), the
//!   lookup step is skipped: otherwise every such node would be handed the
//!   first entry.
//! * **The entry wins**: when the entry and the match variables both have
//!   a key, the entry's value is kept. The CMDB is what the operator wrote
//!   down as the truth for that node; the original Python code let the
//!   variable win, but its README (and this contract) says the entry wins.
//! * **Numbers compare by their text**: a match variable is always a
//!   string, so an integer or float entry value equals a variable whose
//!   text is the number's decimal text (`5` matches `"5"`, `2.5` matches
//!   `"2.5"`). Operators who wrote `'port': 5` are not surprised that a
//!   node with `port=5` finds its entry. Other non-string values (booleans,
//!   `None`, containers) never equal a variable.

mod allocate;
mod check;
mod file;
mod generate;
pub mod skim;

pub use allocate::{allocate, choose, find_owner, locate, merge, Allocation, Entry, Located};
pub use check::{check, to_json, CheckReport, Duplicate, DuplicateKind};
pub use file::{Change, CmdbFile, FileAllocation, IndexWrite, Text};
pub use generate::{expand, expand_owned, generate, uses_generate, MAX_GENERATED};

use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// Where a CMDB's side index is kept: `.NAME.edeploy-index` beside it
/// ([`CmdbFile::index`]).
pub fn index_path(cmdb: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(cmdb.file_name().unwrap_or_default());
    name.push(".edeploy-index");
    cmdb.with_file_name(name)
}

/// Everything that can go wrong while evaluating or allocating a CMDB.
#[derive(Debug, thiserror::Error)]
pub enum CmdbError {
    #[error("generate() takes a dict, got {found}")]
    ModelNotDict { found: &'static str },

    #[error("the number {value} in the range of key '{key}' does not fit in 64 bits")]
    NumberTooLarge { key: String, value: String },

    #[error(
        "generate() would produce {count} entries for key '{key}', more than the limit of {limit}"
    )]
    TooManyEntries {
        key: String,
        count: u128,
        limit: u128,
    },

    #[error("a CMDB must be a list of dicts, generate({{...}}) or a sum of those, got {found}")]
    NotAList { found: &'static str },

    #[error("entry {index} of the CMDB is {found}, not a dict")]
    EntryNotDict { index: usize, found: &'static str },

    #[error("entry {index} of the CMDB has a key that is {found}, keys must be strings")]
    KeyNotString { index: usize, found: &'static str },

    #[error("no more entries in the CMDB of {profile}")]
    Exhausted { profile: String },

    #[error("no entry of {profile}'s CMDB matches {}", format_pairs(.forced))]
    NoForcedEntry {
        profile: String,
        forced: IndexMap<String, String>,
    },
}

/// `tag='TAG9', rack='2'`: the forced variables as an operator wrote them.
fn format_pairs(pairs: &IndexMap<String, String>) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}='{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
