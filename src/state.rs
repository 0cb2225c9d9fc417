//! The `state` file: profiles in priority order with how many more times
//! each may be installed, e.g. `[('hp', 4), ('vm', '*')]`.
//!
//! A count is an integer, a string of digits, or `'*'` (no limit). It is
//! written back the way it was written (`4` stays `4`, `'4'` stays `'4'`),
//! in the dialect the file was read in.

use crate::literal::{self, Dialect, Document, ParseOptions, Value};
use anyhow::{bail, Result};
use std::path::Path;

/// How many more installs a profile allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Unlimited,
    Left(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub profile: String,
    pub count: Count,
    /// The count was written as a string (`'4'`): keep writing it so.
    quoted: bool,
    /// The entry was a list (`['hp', 4]`, as JSON has no tuples).
    list: bool,
}

impl Entry {
    /// An entry written as the original writes it: `('hp', 4)`.
    pub fn new(profile: String, count: Count) -> Entry {
        Entry::with_form(profile, count, false, false)
    }

    /// An entry with the form it was read in: the count `quoted` (`'4'`),
    /// the pair a list (`['hp', 4]`).
    pub fn with_form(profile: String, count: Count, quoted: bool, list: bool) -> Entry {
        Entry {
            profile,
            count,
            quoted,
            list,
        }
    }

    /// Whether the count was written as a string.
    pub fn quoted(&self) -> bool {
        self.quoted
    }

    /// Whether the pair was written as a list.
    pub fn as_list(&self) -> bool {
        self.list
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub entries: Vec<Entry>,
    pub dialect: Dialect,
}

impl State {
    /// Parses state text, naming it `name` in errors.
    pub fn parse(text: &str, name: &str) -> Result<State> {
        let doc = literal::parse_named(text, name, ParseOptions::default())?;
        State::from_document(&doc, name)
    }

    pub fn load(path: &Path) -> Result<State> {
        let doc = literal::parse_file(path, ParseOptions::default())?;
        State::from_document(&doc, &path.display().to_string())
    }

    /// [`State::load`] of the bytes of the file `name`, already read.
    /// The usual file (pairs of plain strings and integers) is read
    /// without building values ([`literal::skim::pairs`]); anything else,
    /// or an entry that is not right, goes through the full reader,
    /// which also names the line of an error.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<State> {
        if let Some(state) = std::str::from_utf8(bytes).ok().and_then(State::skim) {
            return Ok(state);
        }
        let doc = literal::parse_bytes(bytes, name, ParseOptions::default())?;
        State::from_document(&doc, name)
    }

    /// [`State::from_bytes`]'s quick reading: the same state as the full
    /// reader for the files it accepts, `None` for the others.
    fn skim(text: &str) -> Option<State> {
        let (pairs, json) = literal::skim::pairs(text)?;
        let mut entries = Vec::with_capacity(pairs.len());
        for (profile, value, quoted, list) in pairs {
            if !is_profile_name(profile) {
                return None;
            }
            let count = match (quoted, value) {
                (true, "*") => Count::Unlimited,
                (_, v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                    Count::Left(v.parse().ok()?)
                }
                _ => return None,
            };
            entries.push(Entry {
                profile: profile.to_string(),
                count,
                quoted,
                list,
            });
        }
        Some(State {
            entries,
            dialect: if json { Dialect::Json } else { Dialect::Python },
        })
    }

    fn from_document(doc: &Document, name: &str) -> Result<State> {
        let Some(items) = doc.value.as_seq() else {
            bail!(
                "{name}:1: expected a list of (profile, count) pairs, found {}",
                doc.value.type_name()
            );
        };
        let mut entries = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let line = doc.pos_of(i).line;
            let pair = match item.as_seq() {
                Some(p) if p.len() == 2 => p,
                _ => bail!(
                    "{name}:{line}: entry {} must be a (profile, count) pair, found {}",
                    i + 1,
                    literal::to_inline(item, Dialect::Python)
                ),
            };
            let Some(profile) = pair[0].as_str() else {
                bail!(
                    "{name}:{line}: the profile name of entry {} must be a string, found {}",
                    i + 1,
                    pair[0].type_name()
                );
            };
            if !is_profile_name(profile) {
                bail!(
                    "{name}:{line}: {profile:?} is not a usable profile name (letters, digits, '_', '-', '.'; not starting with '.')"
                );
            }
            let bad = || {
                anyhow::anyhow!(
                    "{name}:{line}: the count of {profile:?} must be a number, a string of digits or '*', found {}",
                    literal::to_inline(&pair[1], Dialect::Python)
                )
            };
            let (count, quoted) = match &pair[1] {
                Value::Int(n) => (Count::Left(u64::try_from(*n).map_err(|_| bad())?), false),
                Value::Str(s) if s == "*" => (Count::Unlimited, true),
                Value::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                    (Count::Left(s.parse().map_err(|_| bad())?), true)
                }
                _ => return Err(bad()),
            };
            entries.push(Entry {
                profile: profile.to_string(),
                count,
                quoted,
                list: matches!(item, Value::List(_)),
            });
        }
        Ok(State {
            entries,
            dialect: doc.dialect,
        })
    }

    /// The file's new text.
    pub fn to_text(&self) -> String {
        let items = self
            .entries
            .iter()
            .map(|e| {
                let count = match (e.count, e.quoted) {
                    (Count::Unlimited, _) => Value::Str("*".into()),
                    (Count::Left(n), true) => Value::Str(n.to_string()),
                    (Count::Left(n), false) => Value::Int(n as i128),
                };
                let pair = vec![Value::Str(e.profile.clone()), count];
                if e.list {
                    Value::List(pair)
                } else {
                    Value::Tuple(pair)
                }
            })
            .collect();
        literal::print(&Value::List(items), self.dialect)
    }

    pub fn get(&self, profile: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.profile == profile)
    }

    /// Takes one install from `profile`; false when none is left.
    pub fn consume(&mut self, profile: &str) -> bool {
        match self.entries.iter_mut().find(|e| e.profile == profile) {
            Some(Entry {
                count: Count::Unlimited,
                ..
            }) => true,
            Some(Entry {
                count: Count::Left(n),
                ..
            }) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Gives one install back to `profile` after a failure report. Returns
    /// whether the count changed (`'*'` has nothing to give back).
    pub fn give_back(&mut self, profile: &str) -> Result<bool> {
        match self.entries.iter_mut().find(|e| e.profile == profile) {
            Some(Entry {
                count: Count::Left(n),
                ..
            }) => {
                *n += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => bail!("the profile {profile:?} is not in the state file"),
        }
    }
}

/// Profile names become file names (`P.specs`): keep them inside CONFIGDIR.
pub fn is_profile_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The full reader's state of `text`, when it reads one.
    fn full(text: &str) -> Option<State> {
        let doc = literal::parse_named(text, "state", ParseOptions::default()).ok()?;
        State::from_document(&doc, "state").ok()
    }

    #[test]
    fn the_quick_reading_agrees_with_the_full_reader() {
        for text in [
            "[('hp', 4), ('db', '2'), ('vm', '*')]",
            "[[\"hp\", 4], [\"vm\", \"*\"]]",
            "[[\"hp\", 4], [\"vm\", \"*\"],]",
            "# comment\n[\n ('hp', 0),  # left\n ('x-1.y', '12',),\n]\n",
            "[]",
            "[['a', 1], ('b', 2)]",
            "[[\"a\", 007]]",
            "[('a', -1)]",
            "[('.a', 1)]",
            "[('a', 'x')]",
            "[('a', '')]",
            "[('a', 99999999999999999999)]",
            "[('a', 1.5)]",
            "[('a', 1, 2)]",
            "[(\"a\", '*')]",
            "[[\"a\",\t1]]",
        ] {
            let quick = literal::skim::pairs(text).and_then(|_| State::skim(text));
            if let Some(q) = &quick {
                assert_eq!(Some(q), full(text).as_ref(), "{text}");
            }
            // Whatever the path, the answer is the full reader's.
            let via = State::from_bytes(text.as_bytes(), "state").ok();
            assert_eq!(via, full(text), "{text}");
        }
        assert!(State::skim("[('hp', 4)]").is_some());
        assert!(State::skim("[[\"hp\", 4]]").is_some_and(|s| s.dialect == Dialect::Json));
    }

    proptest! {
        /// Random state files in and around the quick reader's subset:
        /// where it answers, the full reader gives the same state.
        #[test]
        fn quick_and_full_readers_agree(
            items in prop::collection::vec(
                (
                    "[a-z.][a-z0-9._-]{0,6}",
                    prop_oneof![
                        Just("'*'".to_string()),
                        Just("\"*\"".to_string()),
                        "0|[1-9][0-9]{0,3}",
                        "'[0-9]{1,3}'",
                        "\"[0-9x]{0,3}\"",
                        "-[1-9]",
                    ],
                    any::<bool>(),
                    any::<bool>(),
                    any::<bool>(),
                ),
                0..6,
            ),
            trailing in any::<bool>(),
            comment in any::<bool>(),
        ) {
            let mut text = String::new();
            if comment {
                text.push_str("# the profiles\n");
            }
            text.push('[');
            for (i, (name, count, list, dq, inner_comma)) in items.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                let q = if *dq { '"' } else { '\'' };
                let (open, close) = if *list { ('[', ']') } else { ('(', ')') };
                text.push(open);
                text.push(q);
                text.push_str(name);
                text.push(q);
                text.push_str(", ");
                text.push_str(count);
                if *inner_comma {
                    text.push(',');
                }
                text.push(close);
            }
            if trailing && !items.is_empty() {
                text.push(',');
            }
            text.push_str("]\n");
            if let Some(q) = State::skim(&text) {
                prop_assert_eq!(Some(q), full(&text), "{}", text);
            }
            prop_assert_eq!(State::from_bytes(text.as_bytes(), "state").ok(), full(&text), "{}", text);
        }
    }

    #[test]
    fn counts_keep_their_form() {
        let mut s = State::parse("[('hp', 4), ('db', '2'), ('vm', '*')]", "state").unwrap();
        assert!(s.consume("hp"));
        assert!(s.consume("db"));
        assert!(s.consume("vm"));
        assert_eq!(s.to_text(), "[('hp', 3),\n ('db', '1'),\n ('vm', '*')]\n");
    }
}
