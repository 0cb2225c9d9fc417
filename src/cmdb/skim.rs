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
//! on every entry, key, value and on the dialect. [`lines`] does the same
//! for `.specs` and hardware lists of 4-tuples of plain strings.
//! tests/cmdb_file.rs checks both on random files.
//!
//! The subset:
//!
//! ```text
//! file   := ws '[' ws (entry ws (',' ws entry ws)* (',' ws)?)? ']' ws
//! entry  := '{' ws (pair ws (',' ws pair ws)* (',' ws)?)? '}'
//! pair   := string ws ':' ws (string | int)
//! string := "'" text "'" | '"' text '"'   (no backslash, no line break)
//! int    := '-'? ('0' | [1-9][0-9]{0,17})  (not -0)
//! ws     := (' ' | '\t' | '\r' | '\n' | '#' comment)*
//! ```
//!
//! A token must be followed by blanks or by the next punctuation, so that
//! `'a' 'b'` (two literals that concatenate), `'''x'''`, `1.5` or `0x10`
//! all leave the subset.

use std::ops::Range;

/// Where a key or value is in the text (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

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
#[derive(Debug, Clone)]
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

/// Reads `text` if it is a list of 4-tuples (or 4-lists) of strings in the
/// subset of the module doc: a `.specs` or `.hw` file as operators write
/// them. Gives up (`None`) on anything else, for the full reader to answer
/// (and to name the place of an error). For the files it accepts it gives
/// the lines [`crate::hw::from_document`] gives.
///
/// ```text
/// file := ws '[' ws (line ws (',' ws line ws)* (',' ws)?)? ']' ws
/// line := ('(' | '[') ws string ws (',' ws string ws){3} (',' ws)? (')' | ']')
/// ```
///
/// A line opened with `(` closes with `)`, with `[` with `]`.
pub fn lines(text: &str) -> Option<Vec<crate::hw::Line>> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
        json: false,
    };
    let mut out = Vec::with_capacity(text.len() / 40);
    s.list(|s| {
        out.push(s.line(text)?);
        Some(())
    })?;
    Some(out)
}

/// Whether a key's text is `used`.
#[inline(always)]
fn is_used_key(key: &[u8]) -> bool {
    key.len() == 4 && key == b"used"
}

/// The position of the first `q`, backslash or line feed in `b`: where a
/// plain string's text stops. Keys and values are short, so rather than
/// a vector search (whose set-up costs more than such a string) this
/// tests eight bytes at a time: in `x ^ c*0x01..01` a byte equal to `c`
/// is zero, and `(y - 0x01..01) & !y & 0x80..80` marks zero bytes; the
/// lowest mark is exact, as borrows only run upwards from a zero byte.
fn string_end(b: &[u8], q: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |y: u64| y.wrapping_sub(LO) & !y & HI;
    let (mq, mb, mn) = (
        LO * u64::from(q),
        LO * u64::from(b'\\'),
        LO * u64::from(b'\n'),
    );
    let mut i = 0;
    while let Some(chunk) = b.get(i..).and_then(|r| r.first_chunk::<8>()) {
        let x = u64::from_le_bytes(*chunk);
        let hit = zero(x ^ mq) | zero(x ^ mb) | zero(x ^ mn);
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == q || c == b'\\' || c == b'\n')
        .map(|n| i + n)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    json: bool,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    fn eat_if(&mut self, c: u8) -> bool {
        self.eat(c).is_some()
    }

    /// Blanks and comments.
    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.i += 1,
                b'#' => {
                    self.json = false;
                    self.i = memchr::memchr(b'\n', &self.b[self.i..])
                        .map_or(self.b.len(), |n| self.i + n);
                }
                _ => return,
            }
        }
    }

    /// `[ item, ... ]` and nothing else in the text but blanks and
    /// comments; `item` reads one item. A trailing comma is not JSON.
    fn list(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.ws();
        self.eat(b'[')?;
        self.ws();
        if !self.eat_if(b']') {
            loop {
                item(self)?;
                self.ws();
                if self.eat_if(b']') {
                    break;
                }
                self.eat(b',')?;
                self.ws();
                if self.eat_if(b']') {
                    self.json = false;
                    break;
                }
            }
        }
        self.ws();
        (self.i == self.b.len()).then_some(())
    }

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

    /// What a string's quote and text say of the file's dialect.
    #[inline(always)]
    fn note_string(&mut self, q: u8, text: &[u8]) {
        if q == b'\'' || (self.json && text.iter().any(|&c| c < 0x20)) {
            self.json = false;
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

    /// The quoted string without escape or line break that starts at
    /// byte `i`: where its text starts and ends (the closing quote's
    /// position). Notes what it says of the dialect; does not move.
    #[inline(always)]
    fn quoted_at(&mut self, i: usize) -> Option<(usize, usize)> {
        let b = self.b;
        let q = *b.get(i)?;
        if q != b'\'' && q != b'"' {
            return None;
        }
        let start = i + 1;
        let end = start + string_end(&b[start..], q)?;
        if b[end] != q || (end == start && b.get(end + 1) == Some(&q)) {
            // An escape or a line break, or the opening of a
            // triple-quoted string.
            return None;
        }
        self.note_string(q, &b[start..end]);
        Some((start, end))
    }

    /// A quoted string without escape or line break, quotes included.
    #[inline(always)]
    fn string(&mut self) -> Option<Span> {
        let (start, end) = self.quoted_at(self.i)?;
        self.i = end + 1;
        self.end_of_token()?;
        Some(Span {
            start: (start - 1) as u32,
            end: self.i as u32,
        })
    }

    /// A 4-tuple or 4-list of strings: [`lines`].
    fn line(&mut self, text: &str) -> Option<crate::hw::Line> {
        let close = match self.peek()? {
            b'(' => b')',
            b'[' => b']',
            _ => return None,
        };
        self.i += 1;
        let mut line = crate::hw::Line::default();
        for (n, field) in line.iter_mut().enumerate() {
            self.ws();
            if n > 0 {
                self.eat(b',')?;
                self.ws();
            }
            let s = self.key()?;
            *field = text[s.range()].to_string();
        }
        self.ws();
        if self.eat_if(b',') {
            self.ws();
        }
        self.eat(close)?;
        Some(line)
    }

    /// A key: a string's text, without the quotes.
    fn key(&mut self) -> Option<Span> {
        let s = self.string()?;
        Some(Span {
            start: s.start + 1,
            end: s.end - 1,
        })
    }

    /// A decimal integer the full reader reads as the same text.
    fn int(&mut self) -> Option<Span> {
        let start = self.i;
        self.int_digits()?;
        self.end_of_token()?;
        Some(Span {
            start: start as u32,
            end: self.i as u32,
        })
    }

    /// The sign and digits of [`Scanner::int`], without what follows.
    #[inline(always)]
    fn int_digits(&mut self) -> Option<()> {
        let neg = self.eat_if(b'-');
        let digits = self.i;
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        let n = self.i - digits;
        if n > 18 || (neg && self.b[digits] == b'0') {
            return None;
        }
        Some(())
    }

    /// A token ends before blanks, a comment or punctuation; anything else
    /// (a letter, a digit after `0`, a dot, a quote) leaves the subset.
    fn end_of_token(&self) -> Option<()> {
        match self.peek() {
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b'#' | b',' | b':' | b'}' | b']' | b')') => {
                Some(())
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The eight-bytes-at-a-time search finds what a byte loop finds,
        /// wherever the stops fall and whatever bytes surround them.
        #[test]
        fn string_end_is_the_first_stop(
            bytes in prop::collection::vec(
                prop_oneof![
                    4 => any::<u8>(),
                    1 => prop::sample::select(vec![b'\'', b'"', b'\\', b'\n', 0, 1, 0x80, 0xff]),
                ],
                0..40,
            ),
            start in 0usize..9,
            double in any::<bool>(),
        ) {
            let q = if double { b'"' } else { b'\'' };
            let b = &bytes[start.min(bytes.len())..];
            let naive = b.iter().position(|&c| c == q || c == b'\\' || c == b'\n');
            prop_assert_eq!(string_end(b, q), naive);
        }
    }

    #[test]
    fn lines_reads_specs_and_leaves_the_rest() {
        let text = "# c\n[('disk', '$d', 'size', 'gt(100)'),\n ['a', \"b\", 'c', 'd',],]\n";
        let got = lines(text).expect("in the subset");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], ["disk", "$d", "size", "gt(100)"].map(String::from));
        assert_eq!(got[1], ["a", "b", "c", "d"].map(String::from));
        for outside in [
            "[('a', 'b', 'c')]",                           // three fields
            "[('a', 'b', 'c', 'd', 'e')]",                 // five
            "[('a', 'b', 'c', 'd']",                       // a tuple closed as a list
            "[('a', 'b', 'c', 1)]",                        // a number
            "[('a', 'b', 'c', 'd' 'e')]",                  // concatenated literals
            "[('a', 'b', 'c', 'd\\n')]",                   // an escape
            "[('a', 'b', 'c', u'd')]",                     // a prefix
            "[('a', 'b', 'c', 'd') ('e', 'f', 'g', 'h')]", // a missing comma
            "(('a', 'b', 'c', 'd'),)",                     // a tuple of lines
        ] {
            assert!(lines(outside).is_none(), "{outside:?} was read");
        }
    }
}
