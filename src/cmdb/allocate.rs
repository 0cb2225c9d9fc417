//! Handing a CMDB entry to a node. The rules are in the module doc of
//! [`crate::cmdb`].

use indexmap::IndexMap;

use super::generate::check_entry;
use super::CmdbError;
use crate::literal::Value;

/// The entry handed to a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// Position of the entry in the CMDB (0-based).
    pub index: usize,
    /// The entry merged with the match variables, without `used`.
    pub vars: IndexMap<String, Value>,
    /// The entry was already `used`: the node was seen before.
    pub reused: bool,
    /// The entry differs from what it was before: the CMDB must be saved.
    pub changed: bool,
}

/// Finds the entry for a node and marks it `used`.
///
/// The entry is looked up with `forced` when it is not empty, else with
/// `vars`; failing that, and only without `forced`, the first entry not
/// `used` is taken. The chosen entry is replaced in `entries` by its merge
/// with `vars` (entry values win) plus `used: 1`.
pub fn allocate(
    profile: &str,
    entries: &mut [Value],
    vars: &IndexMap<String, String>,
    forced: &IndexMap<String, String>,
) -> Result<Allocation, CmdbError> {
    for (i, entry) in entries.iter().enumerate() {
        check_entry(i + 1, entry)?;
    }
    let pref = preference(vars, forced);
    let index = match entries.iter().position(|e| holds(e, pref)) {
        Some(index) => index,
        None if !forced.is_empty() => {
            return Err(CmdbError::NoForcedEntry {
                profile: profile.to_string(),
                forced: forced.clone(),
            })
        }
        None => entries
            .iter()
            .position(|e| !is_used(e))
            .ok_or_else(|| CmdbError::Exhausted {
                profile: profile.to_string(),
            })?,
    };
    let reused = is_used(&entries[index]);

    let mut merged: IndexMap<String, Value> = IndexMap::new();
    if let Value::Dict(items) = &entries[index] {
        for (k, v) in items {
            if let Some(k) = k.as_str() {
                merged.insert(k.to_string(), v.clone());
            }
        }
    }
    for (k, v) in vars {
        merged
            .entry(k.clone())
            .or_insert_with(|| Value::Str(v.clone()));
    }
    // `insert` keeps the position of an existing `used` key.
    merged.insert("used".to_string(), Value::Int(1));
    let entry = Value::Dict(
        merged
            .iter()
            .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
            .collect(),
    );
    // Only this entry is replaced, so comparing it tells whether the CMDB
    // changed.
    let changed = entries[index] != entry;
    entries[index] = entry;
    merged.shift_remove("used");
    Ok(Allocation {
        index,
        vars: merged,
        reused,
        changed,
    })
}

/// The `used` entry that already belongs to the node, if any: lets the
/// caller re-provision a known node without counting it again.
pub fn find_owner(
    entries: &[Value],
    vars: &IndexMap<String, String>,
    forced: &IndexMap<String, String>,
) -> Option<usize> {
    let pref = preference(vars, forced);
    entries.iter().position(|e| is_used(e) && holds(e, pref))
}

fn preference<'a>(
    vars: &'a IndexMap<String, String>,
    forced: &'a IndexMap<String, String>,
) -> &'a IndexMap<String, String> {
    if forced.is_empty() {
        vars
    } else {
        forced
    }
}

fn is_used(entry: &Value) -> bool {
    entry.get("used").is_some()
}

/// Whether `entry` holds every key/value of `pref`. An empty `pref`
/// identifies no node, so it holds nowhere.
fn holds(entry: &Value, pref: &IndexMap<String, String>) -> bool {
    !pref.is_empty()
        && pref
            .iter()
            .all(|(k, text)| entry.get(k).is_some_and(|v| equals_var(v, text)))
}

/// A variable is a string; numbers in the CMDB compare by their text.
fn equals_var(value: &Value, text: &str) -> bool {
    match value {
        Value::Str(s) => s == text,
        Value::Int(_) | Value::Float(_) => value.scalar_text().is_some_and(|t| t == text),
        _ => false,
    }
}
