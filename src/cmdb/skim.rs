//! Reading the files of a decision without building their values.
//!
//! A decision needs, of every CMDB entry, only whether it is `used` and
//! whether it holds the node's variables; then the one entry it hands out.
//! The files this module's callers write (and most files operators write)
//! are a list of flat dicts of plain strings and integers. [`skim`] reads
//! exactly that shape, recording where each entry is in the text and
//! whether it is `used` (an entry's pairs are read again when asked for),
//! and gives up (`None`) on anything else: the caller then reads the file
//! with the full reader. So the shape it accepts is a subset of the
//! literal dialect, and for that subset it must agree with the full reader
//! on every entry, key, value and on the dialect. The tokens (strings,
//! integers, blanks, the list around the entries) are read by the
//! dialect's quick scanner, [`crate::literal::skim`], which also reads
//! `.specs` and hardware lists. tests/cmdb_file.rs checks both on random
//! files.
//!
//! The subset, with `list`, `string`, `int` and `ws` as in
//! [`crate::literal::skim`]:
//!
//! ```text
//! file   := list of entry
//! entry  := '{' ws (pair ws (',' ws pair ws)* (',' ws)?)? '}'
//! pair   := string ws ':' ws (string | int)
//! ```

use std::ops::Range;

use crate::literal::skim::{Scanner, Span};

/// One `key: value` of an entry.
#[derive(Debug, Clone, Copy)]
struct Pair {
    key: Span,
    value: Span,
}

/// A CMDB file read by [`skim`]: where its entries are, and which are
/// `used`. An entry's pairs are read again when asked for
/// ([`Skim::view`]): a decision looks into few entries (see
/// [`crate::cmdb::allocate::locate_skimmed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skim {
    /// Each entry's text, braces included.
    entries: Vec<Span>,
    /// Whether each entry has a `used` key.
    used: Vec<bool>,
    /// The whole file is strict JSON (double quotes only, no comment, no
    /// trailing comma, no control character in a string).
    pub json: bool,
}

/// A value of a skimmed entry: a string's text or an integer's digits,
/// both exactly as the full reader's value would print with `str()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'a> {
    Str(&'a str),
    Int(&'a str),
}

impl<'a> Scalar<'a> {
    /// The text a variable must equal: numbers compare by their text.
    pub fn text(self) -> &'a str {
        match self {
            Scalar::Str(s) | Scalar::Int(s) => s,
        }
    }
}

/// One entry of a skimmed file, borrowing its text.
#[derive(Debug, Clone)]
pub struct EntryView<'a> {
    text: &'a str,
    pairs: Vec<Pair>,
}

impl<'a> EntryView<'a> {
    /// The value of `key`: the first pair with that key, as
    /// [`crate::literal::Value::get`] finds it.
    pub fn get(&self, key: &str) -> Option<Scalar<'a>> {
        let text = self.text;
        let key = key.as_bytes();
        self.pairs
            .iter()
            // Lengths first: most keys differ in length.
            .find(|p| {
                (p.key.end - p.key.start) as usize == key.len()
                    && &text.as_bytes()[p.key.range()] == key
            })
            .map(|p| scalar(text, p.value))
    }

    /// The keys and values in the order written.
    pub fn pairs(&self) -> impl Iterator<Item = (&'a str, Scalar<'a>)> + '_ {
        let text = self.text;
        self.pairs
            .iter()
            .map(move |p| (&text[p.key.range()], scalar(text, p.value)))
    }
}

/// The value at `span`: a string's span includes its quotes, an
/// integer's starts on a digit or its sign.
fn scalar(text: &str, span: Span) -> Scalar<'_> {
    let (start, end) = (span.start as usize, span.end as usize);
    if matches!(text.as_bytes().get(start), Some(b'\'' | b'"')) {
        Scalar::Str(&text[start + 1..end - 1])
    } else {
        Scalar::Int(&text[start..end])
    }
}

impl Skim {
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Byte range of entry `i`'s text (from `{` to `}`).
    pub fn span(&self, i: usize) -> Range<usize> {
        self.entries[i].range()
    }

    /// Whether entry `i` has a `used` key.
    pub fn is_used(&self, i: usize) -> bool {
        self.used[i]
    }

    /// The first entry without a `used` key.
    pub fn first_free(&self) -> Option<usize> {
        self.used.iter().position(|&u| !u)
    }

    /// The entry whose text holds byte `at`, and otherwise the first
    /// entry after `at` (`Err`), as positions in the file.
    pub fn entry_at(&self, at: usize) -> Result<usize, usize> {
        let i = self.entries.partition_point(|e| (e.end as usize) <= at);
        match self.entries.get(i) {
            Some(e) if (e.start as usize) <= at => Ok(i),
            _ => Err(i),
        }
    }

    /// Entry `i` of `text`, the text [`skim`] read, with its pairs.
    pub fn view<'a>(&self, text: &'a str, i: usize) -> EntryView<'a> {
        let span = self.entries[i];
        let mut s = Scanner {
            b: &text.as_bytes()[..span.end as usize],
            i: span.start as usize,
            json: false,
        };
        let mut pairs = Vec::new();
        // [`skim`] read this entry already: it reads again.
        let _ = s.entry(|key, value| pairs.push(Pair { key, value }));
        EntryView { text, pairs }
    }

    /// Views of every entry over `text`, the text [`skim`] read.
    pub fn views<'a>(&self, text: &'a str) -> Vec<EntryView<'a>> {
        (0..self.entries.len())
            .map(|i| self.view(text, i))
            .collect()
    }
}

/// Reads `text` if it is in the subset described in the module doc.
pub fn skim(text: &str) -> Option<Skim> {
    // Offsets are kept in 32 bits.
    if u32::try_from(text.len()).is_err() {
        return None;
    }
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
        json: true,
    };
    // Entries look alike: a guess from the size spares regrowing.
    let guess = text.len() / 64;
    let mut out = Skim {
        entries: Vec::with_capacity(guess),
        used: Vec::with_capacity(guess),
        json: true,
    };
    s.list(|s| {
        let start = s.i;
        let used = match s.printed_entry() {
            Some(used) => used,
            None => {
                // Not in the printer's layout: the general reading, from
                // the entry's start.
                s.i = start;
                let mut used = false;
                let b = s.b;
                s.entry(|key, _| used |= is_used_key(&b[key.range()]))?;
                used
            }
        };
        out.entries.push(Span {
            start: start as u32,
            end: s.i as u32,
        });
        out.used.push(used);
        Some(())
    })?;
    out.json = s.json;
    Some(out)
}

/// Whether a key's text is `used`.
#[inline(always)]
fn is_used_key(key: &[u8]) -> bool {
    key.len() == 4 && key == b"used"
}

// The entries of a CMDB file, read with the dialect's scanner.
impl Scanner<'_> {
    /// An entry exactly as the printer writes one, `{'k': 'v', 'n': 1}`
    /// (or with double quotes): the usual file, read with fewer tests than
    /// [`Scanner::entry`]. Returns whether it has a `used` key; `None` at
    /// the first byte that differs from that layout (blanks, a comment, a
    /// trailing comma, an empty entry, anything outside the subset), and
    /// the caller reads the entry again with [`Scanner::entry`]. What it
    /// accepts, that one accepts the same way (same spans, same `json`).
    fn printed_entry(&mut self) -> Option<bool> {
        let b = self.b;
        let mut i = self.i;
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i += 1;
        let mut used = false;
        loop {
            // The key: a string, then `: `.
            let (start, end) = self.quoted_at(i)?;
            if b.get(end + 1) != Some(&b':') || b.get(end + 2) != Some(&b' ') {
                return None;
            }
            used |= is_used_key(&b[start..end]);
            i = end + 3;
            // The value: a string or an integer.
            match *b.get(i)? {
                b'\'' | b'"' => i = self.quoted_at(i)?.1 + 1,
                _ => {
                    self.i = i;
                    self.int_digits()?;
                    i = self.i;
                }
            }
            // `, ` and the next pair, or `}`.
            match b.get(i) {
                Some(b'}') => {
                    self.i = i + 1;
                    return Some(used);
                }
                Some(b',') if b.get(i + 1) == Some(&b' ') => i += 2,
                _ => return None,
            }
        }
    }

    /// `{ key: value, ... }`, each pair given to `pair` (the key's span
    /// without its quotes, the value's).
    #[inline(always)]
    fn entry(&mut self, mut pair: impl FnMut(Span, Span)) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat_if(b'}') {
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value = match self.peek()? {
                b'\'' | b'"' => self.string()?,
                _ => self.int()?,
            };
            pair(key, value);
            self.ws();
            if self.eat_if(b'}') {
                return Some(());
            }
            self.eat(b',')?;
            self.ws();
            if self.eat_if(b'}') {
                self.json = false;
                return Some(());
            }
        }
    }
}

// The side index: what [`skim`] found, kept beside the file.

/// The first bytes of a side index, its format's version included.
const INDEX_MAGIC: &[u8; 8] = b"EDCMDX02";
/// magic, the text's length (8) and CRC-32 (4), `json` (1), 3 bytes of
/// nothing, the entry count (4), the CRC-32 of the body (4). The body:
/// per entry, the bytes since the end of the one before (or the start of
/// the text) and its length, both 32 bits (so that an edit of one entry
/// changes its record only); then per entry, 1 when it is `used`.
const INDEX_HEAD: usize = 8 + 8 + 4 + 1 + 3 + 4 + 4;

/// An edit of entry `entry`'s text into `len` bytes, which makes it
/// `used` (what handing it out does).
#[derive(Debug, Clone, Copy)]
pub struct Edited {
    pub entry: usize,
    pub len: usize,
}

fn le32(b: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?))
}

/// An index's head, its CRC that of the head's other bytes followed by
/// what `body` gives the hasher.
fn index_head(
    text_len: usize,
    text_crc: u32,
    json: bool,
    n: u32,
    body: impl FnOnce(&mut crc32fast::Hasher),
) -> [u8; INDEX_HEAD] {
    let mut h = [0u8; INDEX_HEAD];
    h[..8].copy_from_slice(INDEX_MAGIC);
    h[8..16].copy_from_slice(&(text_len as u64).to_le_bytes());
    h[16..20].copy_from_slice(&text_crc.to_le_bytes());
    h[20] = u8::from(json);
    h[24..28].copy_from_slice(&n.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[..INDEX_HEAD - 4]);
    body(&mut crc);
    h[INDEX_HEAD - 4..].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

impl Skim {
    /// The side index of the text this skim read (of `text_len` bytes and
    /// CRC-32 `text_crc`), or, with `edit`, of that text once the edit is
    /// made (`text_len` and `text_crc` then being the edited text's).
    /// `None` when a length would not fit in 32 bits.
    pub fn to_index(
        &self,
        text_len: usize,
        text_crc: u32,
        edit: Option<Edited>,
    ) -> Option<Vec<u8>> {
        let n = self.entries.len();
        let mut out = Vec::with_capacity(INDEX_HEAD + n * 9);
        out.extend_from_slice(&[0; INDEX_HEAD]);
        let at = edit.map_or(n, |e| e.entry);
        let mut last_end = 0u32;
        for (i, s) in self.entries.iter().enumerate() {
            let len = match edit {
                Some(e) if i == at => u32::try_from(e.len).ok()?,
                _ => s.end - s.start,
            };
            out.extend_from_slice(&(s.start - last_end).to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            last_end = s.end;
        }
        out.extend(
            self.used
                .iter()
                .enumerate()
                .map(|(i, &u)| u8::from(u || i == at)),
        );
        let n = u32::try_from(n).ok()?;
        let head = index_head(text_len, text_crc, self.json, n, |h| {
            h.update(&out[INDEX_HEAD..])
        });
        out[..INDEX_HEAD].copy_from_slice(&head);
        Some(out)
    }

    /// What to write over `index` (the side index this skim was read
    /// from, [`Skim::from_index`]) so that it describes its text once
    /// `edit` is made (`text_len` and `text_crc`: the edited text's):
    /// the entry's record, its `used` byte, then the head, each as (its
    /// offset, its bytes), in the order to write them. The head comes
    /// last: until it is written the index fails its CRC.
    pub fn index_patch(
        &self,
        index: &[u8],
        text_len: usize,
        text_crc: u32,
        edit: Edited,
    ) -> Option<Vec<(u64, Vec<u8>)>> {
        let n = self.entries.len();
        let body = index.get(INDEX_HEAD..)?;
        if body.len() != n * 9 || edit.entry >= n {
            return None;
        }
        let k = edit.entry;
        let mut record = body.get(8 * k..8 * k + 8)?.to_vec();
        record[4..].copy_from_slice(&u32::try_from(edit.len).ok()?.to_le_bytes());
        let used_at = 8 * n + k;
        let head = index_head(text_len, text_crc, self.json, u32::try_from(n).ok()?, |h| {
            h.update(&body[..8 * k]);
            h.update(&record);
            h.update(&body[8 * k + 8..used_at]);
            h.update(&[1]);
            h.update(&body[used_at + 1..]);
        });
        Some(vec![
            ((INDEX_HEAD + 8 * k) as u64, record),
            ((INDEX_HEAD + used_at) as u64, vec![1]),
            (0, head.to_vec()),
        ])
    }

    /// The skim a side index records, when it was made for exactly `text`
    /// (its length and CRC-32 `text_crc`), is whole (its own CRC) and
    /// describes entries that can be in `text`: each inside it, in order,
    /// from a `{` to a `}`. `None` otherwise: the caller skims the text.
    pub fn from_index(index: &[u8], text: &[u8], text_crc: u32) -> Option<Skim> {
        let head = index.get(..INDEX_HEAD)?;
        if &head[..8] != INDEX_MAGIC
            || u64::from_le_bytes(head[8..16].try_into().ok()?) != text.len() as u64
            || le32(&head[16..20])? != text_crc
        {
            return None;
        }
        let json = match head[20..24] {
            [0, 0, 0, 0] => false,
            [1, 0, 0, 0] => true,
            _ => return None,
        };
        let n = usize::try_from(le32(&head[24..28])?).ok()?;
        let body = &index[INDEX_HEAD..];
        if body.len() != n.checked_mul(9)?
            || head[..]
                != index_head(text.len(), text_crc, json, le32(&head[24..28])?, |h| {
                    h.update(body)
                })
        {
            return None;
        }
        let (records, used) = body.split_at(n * 8);
        let mut entries = Vec::with_capacity(n);
        let mut last_end = 0u32;
        for record in records.chunks_exact(8) {
            let start = last_end.checked_add(le32(record)?)?;
            let end = start.checked_add(le32(&record[4..])?)?;
            if end <= start
                || text.get(start as usize) != Some(&b'{')
                || text.get(end as usize - 1) != Some(&b'}')
            {
                return None;
            }
            entries.push(Span { start, end });
            last_end = end;
        }
        let used = used
            .iter()
            .map(|&u| match u {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            })
            .collect::<Option<Vec<bool>>>()?;
        Some(Skim {
            entries,
            used,
            json,
        })
    }
}
