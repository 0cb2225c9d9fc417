//! A CMDB file as a decision reads it and writes it back.
//!
//! A file that is a list of entries is **edited in place**: handing out an
//! entry rewrites that entry's text and keeps every other byte of the file
//! (other entries as written, comments, layout). A file that uses
//! `generate(...)` or `+` is written back expanded, one entry per line, the
//! first time an entry is handed out; the caller keeps the original next to
//! it as `.orig`.
//!
//! Most files are read with [`skim`](super::skim), which records where
//! entries are without building their values; files outside its subset
//! are read with the full literal reader. Both give the same allocation.

use indexmap::IndexMap;
use std::ops::Range;

use super::allocate::locate_skimmed;
use super::skim::{self, Skim};
use super::{expand_owned, locate, merge, uses_generate, CmdbError};
use crate::literal::{self, Dialect, ParseOptions, Value};

/// A CMDB file read for an allocation.
pub struct CmdbFile {
    name: String,
    text: String,
    form: Form,
}

enum Form {
    /// In the skim subset.
    Skimmed(Skim),
    /// Read with the full reader.
    Parsed {
        entries: Vec<Value>,
        dialect: Dialect,
        /// Each entry's text, when the file is a plain list or tuple.
        spans: Option<Vec<Range<usize>>>,
        /// The file used `generate`: the original is kept as `.orig`.
        generated: bool,
    },
}

/// An entry handed out, and what the file becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct FileAllocation {
    /// Position of the entry (0-based).
    pub index: usize,
    /// The node already owned this entry.
    pub reused: bool,
    /// The entry merged with the match variables, without `used`.
    pub vars: IndexMap<String, Value>,
    /// The file's new text, when it changes.
    pub text: Option<String>,
    /// The file as it was, to keep as `.orig`, when it used `generate`.
    pub orig: Option<String>,
}

impl CmdbFile {
    /// Reads `bytes`, the contents of the file named `name`. Errors name
    /// the file and, for syntax errors, the line and column.
    pub fn read(name: &str, bytes: Vec<u8>) -> Result<CmdbFile, String> {
        let text = String::from_utf8(bytes).map_err(|e| {
            let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            format!("{name}:{line}: the file is not valid UTF-8")
        })?;
        if let Some(skim) = skim::skim(&text) {
            return Ok(CmdbFile {
                name: name.to_string(),
                text,
                form: Form::Skimmed(skim),
            });
        }
        let doc = literal::parse_named(&text, name, ParseOptions { calls: true })
            .map_err(|e| e.to_string())?;
        let generated = uses_generate(&doc.value);
        let plain = matches!(doc.value, Value::List(_) | Value::Tuple(_)) && !generated;
        let dialect = if generated {
            Dialect::Python
        } else {
            doc.dialect
        };
        let spans = plain.then_some(doc.item_span);
        let entries = expand_owned(doc.value).map_err(|e| format!("{name}: {e}"))?;
        Ok(CmdbFile {
            name: name.to_string(),
            text,
            form: Form::Parsed {
                entries,
                dialect,
                spans,
                generated,
            },
        })
    }

    /// The file's text as read.
    pub fn source(&self) -> &str {
        &self.text
    }

    /// Hands an entry to the node with these variables (the rules are in
    /// the module doc of [`crate::cmdb`]). With `may_take_new` false (the
    /// profile has no installs left) only an entry the node already owns
    /// is handed out: `Ok(None)` otherwise. `write` false leaves
    /// [`FileAllocation::text`] and `orig` empty (nothing will be saved).
    pub fn allocate(
        &self,
        profile: &str,
        vars: &IndexMap<String, String>,
        forced: &IndexMap<String, String>,
        may_take_new: bool,
        write: bool,
    ) -> Result<Option<FileAllocation>, CmdbError> {
        let (owner, index, old, dialect) = match &self.form {
            Form::Skimmed(skim) => {
                let found = locate_skimmed(skim, &self.text, vars, forced);
                let owner = found.owner;
                if owner.is_none() && !may_take_new {
                    return Ok(None);
                }
                let index = found.choice(profile, forced)?;
                let dialect = if skim.json {
                    Dialect::Json
                } else {
                    Dialect::Python
                };
                (owner, index, self.skimmed_entry(skim, index), dialect)
            }
            Form::Parsed {
                entries, dialect, ..
            } => {
                let found = locate(entries, vars, forced);
                let owner = found.owner;
                if owner.is_none() && !may_take_new {
                    return Ok(None);
                }
                let index = found.choice(profile, forced)?;
                (owner, index, entries[index].clone(), *dialect)
            }
        };
        let (entry, merged) = merge(&old, vars);
        let (text, orig) = if write {
            self.written(index, &old, &entry, dialect)
        } else {
            (None, None)
        };
        Ok(Some(FileAllocation {
            index,
            reused: owner == Some(index),
            vars: merged,
            text,
            orig,
        }))
    }

    /// Entry `index` of a skimmed file, read with the full reader.
    fn skimmed_entry(&self, skim: &Skim, index: usize) -> Value {
        let part = &self.text[skim.span(index)];
        match literal::parse_named(part, &self.name, ParseOptions::default()) {
            Ok(doc) => doc.value,
            // The skim subset is part of the dialect: cannot happen.
            Err(_) => Value::Dict(Vec::new()),
        }
    }

    /// The file's new text once entry `index` (`old`) is `entry`, and the
    /// original to keep when the file used `generate`.
    fn written(
        &self,
        index: usize,
        old: &Value,
        entry: &Value,
        dialect: Dialect,
    ) -> (Option<String>, Option<String>) {
        let span = match &self.form {
            Form::Skimmed(skim) => Some(skim.span(index)),
            Form::Parsed { spans, .. } => spans.as_ref().and_then(|s| s.get(index).cloned()),
        };
        match span {
            Some(_) if old == entry => (None, None),
            Some(span) => {
                let new = literal::to_inline(entry, dialect);
                let mut out = String::with_capacity(self.text.len() + new.len());
                out.push_str(&self.text[..span.start]);
                out.push_str(&new);
                out.push_str(&self.text[span.end..]);
                (Some(out), None)
            }
            // Expanded from `generate(...)` or `+`: written whole, with the
            // original kept when it used `generate` (then even when the
            // entry is unchanged: the file is expanded once).
            None => {
                let Form::Parsed {
                    entries, generated, ..
                } = &self.form
                else {
                    return (None, None);
                };
                if old == entry && !generated {
                    return (None, None);
                }
                let mut all = entries.clone();
                all[index] = entry.clone();
                let orig = generated.then(|| self.text.clone());
                (Some(literal::print_list(&all, dialect)), orig)
            }
        }
    }
}
