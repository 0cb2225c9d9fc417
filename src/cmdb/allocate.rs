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
    /// The entry merged with the match variables, without `used` (the
    /// decision adds `used: 1` to what the node is told).
    pub vars: IndexMap<String, Value>,
    /// The entry was already `used`: the node was seen before.
    pub reused: bool,
    /// The entry differs from what it was before: the CMDB must be saved.
    pub changed: bool,
}

/// What allocation needs to know of an entry: the parsed [`Value`] of a
/// dict, or a [`super::skim::EntryView`] of a file not parsed.
pub trait Entry {
    /// Whether the entry has a `used` key.
    fn is_used(&self) -> bool;
    /// Whether the entry's value of `key` equals the variable `text`
    /// (numbers compare by their text).
    fn equals(&self, key: &str, text: &str) -> bool;
}

impl Entry for Value {
    fn is_used(&self) -> bool {
        self.get("used").is_some()
    }

    fn equals(&self, key: &str, text: &str) -> bool {
        self.get(key).is_some_and(|v| equals_var(v, text))
    }
}

impl Entry for super::skim::EntryView<'_> {
    fn is_used(&self) -> bool {
        self.get("used").is_some()
    }

    fn equals(&self, key: &str, text: &str) -> bool {
        self.get(key).is_some_and(|v| v.text() == text)
    }
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
    let index = choose(profile, entries, vars, forced)?;
    let reused = entries[index].is_used();
    let (entry, merged) = merge(&entries[index], vars);
    // Only this entry is replaced, so comparing it tells whether the CMDB
    // changed.
    let changed = entries[index] != entry;
    entries[index] = entry;
    Ok(Allocation {
        index,
        vars: merged,
        reused,
        changed,
    })
}

/// The index of the entry [`allocate`] hands out, changing nothing.
pub fn choose<E: Entry>(
    profile: &str,
    entries: &[E],
    vars: &IndexMap<String, String>,
    forced: &IndexMap<String, String>,
) -> Result<usize, CmdbError> {
    locate(entries, vars, forced).choice(profile, forced)
}

/// Where the node's entries are, found in one pass over the CMDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The first entry that holds the node's variables.
    pub holding: Option<usize>,
    /// The first `used` entry that holds them: [`find_owner`].
    pub owner: Option<usize>,
    /// The first entry not `used`.
    pub free: Option<usize>,
}

impl Located {
    /// The entry to hand out: [`choose`].
    pub fn choice(
        &self,
        profile: &str,
        forced: &IndexMap<String, String>,
    ) -> Result<usize, CmdbError> {
        match self.holding {
            Some(index) => Ok(index),
            None if !forced.is_empty() => Err(CmdbError::NoForcedEntry {
                profile: profile.to_string(),
                forced: forced.clone(),
            }),
            None => self.free.ok_or_else(|| CmdbError::Exhausted {
                profile: profile.to_string(),
            }),
        }
    }
}

/// [`find_owner`] and [`choose`] at once.
pub fn locate<E: Entry>(
    entries: &[E],
    vars: &IndexMap<String, String>,
    forced: &IndexMap<String, String>,
) -> Located {
    let pref = ordered_preference(vars, forced);
    let mut found = Located {
        holding: None,
        owner: None,
        free: None,
    };
    for (i, e) in entries.iter().enumerate() {
        let used = e.is_used();
        if !used && found.free.is_none() {
            found.free = Some(i);
        }
        if found.owner.is_none() && holds(e, &pref) {
            found.holding.get_or_insert(i);
            if used {
                found.owner = Some(i);
            }
        }
        // Then `holding` is known too, and `free` no longer matters.
        if found.owner.is_some() {
            break;
        }
    }
    found
}

/// [`locate`] on a file read by [`skim`](super::skim::skim), with the
/// same answer. An entry holds the node's variables only if the text of
/// the longest one appears in the entry's text (a skimmed string has no
/// escapes, and an integer is written as it compares), so the text is
/// searched for it, and only the entries where it appears are read into
/// pairs and compared.
pub fn locate_skimmed(
    skim: &super::skim::Skim,
    text: &str,
    vars: &IndexMap<String, String>,
    forced: &IndexMap<String, String>,
) -> Located {
    let pref = ordered_preference(vars, forced);
    let first_free = skim.first_free();
    let mut found = Located {
        holding: None,
        owner: None,
        free: first_free,
    };
    let Some(&(_, needle)) = pref.first() else {
        return found;
    };
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    let mut from = 0;
    while let Some(at) = text
        .get(from..)
        .and_then(|rest| finder.find(rest.as_bytes()))
    {
        let at = from + at;
        let i = match skim.entry_at(at) {
            Ok(i) => i,
            // Between entries (a comment): search on from the next one,
            // whose text may hold it.
            Err(next) if next < skim.len() => {
                from = skim.span(next).start;
                continue;
            }
            Err(_) => break,
        };
        if holds(&skim.view(text, i), &pref) {
            found.holding.get_or_insert(i);
            if skim.is_used(i) {
                found.owner = Some(i);
                // As [`locate`] stops there: a free entry after the
                // owner is not seen.
                found.free = first_free.filter(|&f| f < i);
                break;
            }
        }
        // An occurrence that starts in this entry and ends in the next
        // is not one of the next entry's values: search on from its start.
        from = skim.span(i).end;
    }
    found
}

/// The variables that identify the node (`forced` if any, else `vars`),
/// longest values first: they tell nodes apart (a MAC, a serial) where
/// short ones (`sda`) are shared, so most entries fail on the first test.
/// The order of the tests does not change the answer.
fn ordered_preference<'a>(
    vars: &'a IndexMap<String, String>,
    forced: &'a IndexMap<String, String>,
) -> Vec<(&'a str, &'a str)> {
    let mut pref: Vec<(&str, &str)> = preference(vars, forced)
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pref.sort_by_key(|&(_, v)| std::cmp::Reverse(v.len()));
    pref
}

/// The entry `entry` (a dict) becomes once handed out with `vars`: its
/// keys, then the variables it lacks, and `used: 1`. Also returns the
/// node's variables: the same without `used`.
pub fn merge(entry: &Value, vars: &IndexMap<String, String>) -> (Value, IndexMap<String, Value>) {
    let mut merged: IndexMap<String, Value> = IndexMap::new();
    if let Value::Dict(items) = entry {
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
    merged.shift_remove("used");
    (entry, merged)
}

/// The `used` entry that already belongs to the node, if any: lets the
/// caller re-provision a known node without counting it again.
pub fn find_owner<E: Entry>(
    entries: &[E],
    vars: &IndexMap<String, String>,
    forced: &IndexMap<String, String>,
) -> Option<usize> {
    locate(entries, vars, forced).owner
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

/// Whether `entry` holds every key/value of `pref`. An empty `pref`
/// identifies no node, so it holds nowhere.
fn holds<E: Entry>(entry: &E, pref: &[(&str, &str)]) -> bool {
    !pref.is_empty() && pref.iter().all(|&(k, text)| entry.equals(k, text))
}

/// A variable is a string; numbers in the CMDB compare by their text.
fn equals_var(value: &Value, text: &str) -> bool {
    match value {
        Value::Str(s) => s == text,
        Value::Int(_) | Value::Float(_) => value.scalar_text().is_some_and(|t| t == text),
        _ => false,
    }
}
