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
use std::sync::Arc;

use super::allocate::locate_skimmed;
use super::skim::{self, Edited, Skim};
use super::{expand_owned, locate, merge, uses_generate, CmdbError};
use crate::literal::{self, Dialect, ParseOptions, Value};

/// A CMDB file read for an allocation.
pub struct CmdbFile {
    name: String,
    text: Arc<Text>,
    /// The CRC-32 of the text.
    crc: u32,
    form: Form,
    /// The side index read with the file, when it described it: the skim
    /// was read from it, the text not skimmed.
    index: Option<Vec<u8>>,
}

/// What to write of a CMDB's side index (`.NAME.edeploy-index`): each
/// piece at its offset, in order, then the file cut to `len` if longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexWrite {
    pub pieces: Vec<(u64, Vec<u8>)>,
    pub len: u64,
}

/// A CMDB's text, checked to be UTF-8: read into memory, or mapped (a
/// decision under the lock: a large CMDB is neither copied nor, with its
/// side index, read through, and its edit is written from the mapping).
pub struct Text {
    held: Held,
}

enum Held {
    Read(String),
    Mapped { at: *const u8, len: usize },
}

// SAFETY: a mapping is read-only and unmapped only on drop; nothing in
// the process writes through it.
unsafe impl Send for Text {}
// SAFETY: as above; shared reads of read-only memory.
unsafe impl Sync for Text {}

impl Drop for Text {
    fn drop(&mut self) {
        if let Held::Mapped { at, len } = self.held {
            // SAFETY: the mapping made in [`Text::map`], of this length,
            // unmapped once.
            unsafe { libc::munmap(at as *mut libc::c_void, len) };
        }
    }
}

/// `name:LINE: the file is not valid UTF-8`, for bytes that are not.
fn not_utf8(name: &str, bytes: &[u8], e: std::str::Utf8Error) -> String {
    let before = &bytes[..e.valid_up_to()];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    format!("{name}:{line}: the file is not valid UTF-8")
}

impl Text {
    /// The bytes read from the file named `name`.
    pub fn read(name: &str, bytes: Vec<u8>) -> Result<Text, String> {
        let text =
            String::from_utf8(bytes).map_err(|e| not_utf8(name, e.as_bytes(), e.utf8_error()))?;
        Ok(Text {
            held: Held::Read(text),
        })
    }

    /// The file `file` (named `name`) mapped read-only. Only under the
    /// lock that every writer of the file takes: the server replaces a
    /// CMDB by renaming another file over it, never by writing into it,
    /// but a file cut shorter in place by someone who ignores the lock
    /// would end the process (`SIGBUS`) before it commits anything.
    /// `None`: the file cannot be mapped (empty, not a regular file, or
    /// its size unknown); the caller reads it, which says why it failed.
    pub fn map(name: &str, file: &std::fs::File) -> Option<Result<Text, String>> {
        use std::os::fd::AsRawFd;
        let meta = file.metadata().ok()?;
        let len = usize::try_from(meta.len()).ok()?;
        if !meta.is_file() || len == 0 {
            return None;
        }
        // SAFETY: a read-only shared mapping of an open file, of its
        // length; checked for failure below.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if at == libc::MAP_FAILED {
            return None;
        }
        let text = Text {
            held: Held::Mapped {
                at: at as *const u8,
                len,
            },
        };
        Some(match std::str::from_utf8(text.bytes()) {
            Ok(_) => Ok(text),
            Err(e) => Err(not_utf8(name, text.bytes(), e)),
        })
    }

    fn bytes(&self) -> &[u8] {
        match &self.held {
            Held::Read(s) => s.as_bytes(),
            // SAFETY: the mapping lives as long as `self`, of this length.
            Held::Mapped { at, len } => unsafe { std::slice::from_raw_parts(*at, *len) },
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.held {
            Held::Read(s) => s,
            // SAFETY: checked to be UTF-8 when mapped ([`Text::map`]); a
            // read-only mapping that the server never writes into.
            Held::Mapped { .. } => unsafe { std::str::from_utf8_unchecked(self.bytes()) },
        }
    }
}

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

/// How a handed-out entry changes the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The file is written whole: this text.
    Whole(String),
    /// The bytes in `range` (the entry's text) become `entry`; every other
    /// byte is kept.
    Edit { range: Range<usize>, entry: String },
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
    /// How the file changes, when it does.
    pub change: Option<Change>,
    /// The file as it was, to keep as `.orig`, when it used `generate`.
    pub orig: Option<String>,
}

impl FileAllocation {
    /// The file's new text, `source` being its text as read, when it
    /// changes.
    pub fn text_over(&self, source: &str) -> Option<String> {
        match self.change.as_ref()? {
            Change::Whole(text) => Some(text.clone()),
            Change::Edit { range, entry } => {
                let mut out = String::with_capacity(source.len() + entry.len());
                out.push_str(&source[..range.start]);
                out.push_str(entry);
                out.push_str(&source[range.end..]);
                Some(out)
            }
        }
    }
}

impl CmdbFile {
    /// Reads `bytes`, the contents of the file named `name`. Errors name
    /// the file and, for syntax errors, the line and column.
    pub fn read(name: &str, bytes: Vec<u8>) -> Result<CmdbFile, String> {
        CmdbFile::open(name, Text::read(name, bytes)?, None)
    }

    /// [`CmdbFile::read`] of `text`, with the file's side index when there
    /// is one (`index`, see [`CmdbFile::index`]): when it was made for
    /// exactly this text, the text is not skimmed again.
    pub fn open(name: &str, text: Text, index: Option<Vec<u8>>) -> Result<CmdbFile, String> {
        let crc = crc32fast::hash(text.as_ref());
        let known = index
            .as_deref()
            .and_then(|i| Skim::from_index(i, text.as_ref(), crc));
        let index = index.filter(|_| known.is_some());
        if let Some(skim) = known.or_else(|| skim::skim(text.as_str())) {
            return Ok(CmdbFile {
                name: name.to_string(),
                text: Arc::new(text),
                crc,
                form: Form::Skimmed(skim),
                index,
            });
        }
        let doc = literal::parse_named(text.as_str(), name, ParseOptions { calls: true })
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
            text: Arc::new(text),
            crc,
            form: Form::Parsed {
                entries,
                dialect,
                spans,
                generated,
            },
            index: None,
        })
    }

    /// The file's text as read.
    pub fn source(&self) -> &str {
        self.text.as_str()
    }

    /// The file's text as read, to be shared with a commit that edits it.
    pub fn shared(&self) -> Arc<Text> {
        Arc::clone(&self.text)
    }

    /// The CRC-32 of the file's text as read.
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// The CRC-32 of the file as `alloc` leaves it, when it edits it.
    pub fn crc_after(&self, alloc: &FileAllocation) -> Option<u32> {
        let Some(Change::Edit { range, entry }) = &alloc.change else {
            return None;
        };
        let old = self.text.bytes();
        let mut h = crc32fast::Hasher::new();
        h.update(&old[..range.start]);
        h.update(entry.as_bytes());
        h.update(&old[range.end..]);
        Some(h.finalize())
    }

    /// What to write of the side index so that it describes the file as
    /// `alloc` leaves it (`new_crc`: [`CmdbFile::crc_after`]), when the
    /// file is in the skim subset: nothing when the index read already
    /// does; the edited entry's records when it did before the edit; else
    /// the whole index. A commit writes it beside the file so that the
    /// next decision need not skim the file ([`CmdbFile::open`]).
    pub fn index_write(&self, alloc: &FileAllocation, new_crc: Option<u32>) -> Option<IndexWrite> {
        let Form::Skimmed(skim) = &self.form else {
            return None;
        };
        let whole = |bytes: Vec<u8>| IndexWrite {
            len: bytes.len() as u64,
            pieces: vec![(0, bytes)],
        };
        let old_len = self.text.bytes().len();
        match (&alloc.change, new_crc) {
            (None, _) if self.index.is_some() => None,
            (None, _) => skim.to_index(old_len, self.crc, None).map(whole),
            (Some(Change::Edit { range, entry }), Some(crc)) => {
                let len = old_len - range.len() + entry.len();
                let edit = Edited {
                    entry: alloc.index,
                    len: entry.len(),
                };
                match &self.index {
                    Some(index) => {
                        skim.index_patch(index, len, crc, edit)
                            .map(|pieces| IndexWrite {
                                pieces,
                                len: index.len() as u64,
                            })
                    }
                    None => skim.to_index(len, crc, Some(edit)).map(whole),
                }
            }
            // Not what a skimmed file's allocation gives.
            _ => None,
        }
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
                let found = locate_skimmed(skim, self.source(), vars, forced);
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
        let (change, orig) = if write {
            self.written(index, &old, &entry, dialect)
        } else {
            (None, None)
        };
        Ok(Some(FileAllocation {
            index,
            reused: owner == Some(index),
            vars: merged,
            change,
            orig,
        }))
    }

    /// Entry `index` of a skimmed file, read with the full reader.
    fn skimmed_entry(&self, skim: &Skim, index: usize) -> Value {
        let part = &self.source()[skim.span(index)];
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
    ) -> (Option<Change>, Option<String>) {
        let span = match &self.form {
            Form::Skimmed(skim) => Some(skim.span(index)),
            Form::Parsed { spans, .. } => spans.as_ref().and_then(|s| s.get(index).cloned()),
        };
        match span {
            Some(_) if old == entry => (None, None),
            Some(range) => {
                let entry = literal::to_inline(entry, dialect);
                (Some(Change::Edit { range, entry }), None)
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
                let orig = generated.then(|| self.source().to_string());
                (
                    Some(Change::Whole(literal::print_list(&all, dialect))),
                    orig,
                )
            }
        }
    }
}
