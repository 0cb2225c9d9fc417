//! Quick reading of the literal dialect's plainest tokens, without
//! building values.
//!
//! Most files operators write hold only plain strings and integers in
//! lists, tuples and flat dicts. [`Scanner`] reads those tokens in place,
//! recording where each is in the text (a [`Span`]) and what it says of
//! the file's dialect, and gives up (`None`) on anything else: the caller
//! then reads the file with the full reader ([`super::parse`]), which also
//! names the place of an error. So what it accepts is a subset of the
//! dialect, and for that subset it must agree with the full reader.
//! [`lines`] reads `.specs` and hardware lists of 4-tuples of strings
//! this way; the CMDB's quick reader builds its flat dicts on the same
//! scanner. tests/cmdb_file.rs checks both against the full reader on
//! random files.
//!
//! The tokens:
//!
//! ```text
//! list   := ws '[' ws (item ws (',' ws item ws)* (',' ws)?)? ']' ws
//! string := "'" text "'" | '"' text '"'   (no backslash, no line break)
//! int    := '-'? ('0' | [1-9][0-9]{0,17})  (not -0)
//! ws     := (' ' | '\t' | '\r' | '\n' | '#' comment)*
//! ```
//!
//! A token must be followed by blanks or by the next punctuation, so that
//! `'a' 'b'` (two literals that concatenate), `'''x'''`, `1.5` or `0x10`
//! all leave the subset.

use std::ops::Range;

/// Where a token is in the text (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(crate) fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Reads `text` if it is a list of 4-tuples (or 4-lists) of strings in the
/// subset of the module doc: a `.specs` or `.hw` file as operators write
/// them, each line as (class, name, key, value). Gives up (`None`) on
/// anything else, for the full reader to answer (and to name the place of
/// an error). For the files it accepts it gives the lines the hardware
/// module's `from_document` gives.
///
/// ```text
/// file := ws '[' ws (line ws (',' ws line ws)* (',' ws)?)? ']' ws
/// line := ('(' | '[') ws string ws (',' ws string ws){3} (',' ws)? (')' | ']')
/// ```
///
/// A line opened with `(` closes with `)`, with `[` with `]`.
pub fn lines(text: &str) -> Option<Vec<[String; 4]>> {
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

/// One `(string, string-or-int)` pair of [`pairs`]: the first string's
/// text, the second item's text (without quotes when it is a string),
/// whether it was a string, and whether the pair was a list.
pub type Pair<'t> = (&'t str, &'t str, bool, bool);

/// Reads `text` if it is a list of pairs `(string, string or int)` (or
/// 2-lists) in the subset of the module doc: a `state` file as operators
/// write it. Gives up (`None`) on anything else, for the full reader.
/// Also says whether the text is strict JSON (what the full reader's
/// dialect would be).
///
/// ```text
/// file := ws '[' ws (pair ws (',' ws pair ws)* (',' ws)?)? ']' ws
/// pair := ('(' | '[') ws string ws ',' ws (string | int) ws (',' ws)? (')' | ']')
/// ```
pub fn pairs(text: &str) -> Option<(Vec<Pair<'_>>, bool)> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
        json: true,
    };
    let mut out = Vec::with_capacity(text.len() / 16);
    s.list(|s| {
        let close = match s.peek()? {
            b'(' => {
                s.json = false;
                b')'
            }
            b'[' => b']',
            _ => return None,
        };
        s.i += 1;
        s.ws();
        let name = s.key()?;
        s.ws();
        s.eat(b',')?;
        s.ws();
        let (value, quoted) = match s.peek()? {
            b'\'' | b'"' => (s.key()?, true),
            _ => (s.int()?, false),
        };
        s.ws();
        if s.eat_if(b',') {
            s.json = false;
            s.ws();
        }
        s.eat(close)?;
        out.push((
            &text[name.range()],
            &text[value.range()],
            quoted,
            close == b']',
        ));
        Some(())
    })?;
    Some((out, s.json))
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

/// A reader of the tokens of the module doc over `b`, at byte `i`.
/// `json` stays true while everything read is strict JSON (double quotes
/// only, no comment, no trailing comma, no control character in a
/// string); start it false when that is not asked.
pub(crate) struct Scanner<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
    pub(crate) json: bool,
}

impl Scanner<'_> {
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(crate) fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    pub(crate) fn eat_if(&mut self, c: u8) -> bool {
        self.eat(c).is_some()
    }

    /// Blanks and comments.
    pub(crate) fn ws(&mut self) {
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
    pub(crate) fn list(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
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

    /// What a string's quote and text say of the file's dialect.
    #[inline(always)]
    fn note_string(&mut self, q: u8, text: &[u8]) {
        if q == b'\'' || (self.json && text.iter().any(|&c| c < 0x20)) {
            self.json = false;
        }
    }

    /// The quoted string without escape or line break that starts at
    /// byte `i`: where its text starts and ends (the closing quote's
    /// position). Notes what it says of the dialect; does not move.
    #[inline(always)]
    pub(crate) fn quoted_at(&mut self, i: usize) -> Option<(usize, usize)> {
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
    pub(crate) fn string(&mut self) -> Option<Span> {
        let (start, end) = self.quoted_at(self.i)?;
        self.i = end + 1;
        self.end_of_token()?;
        Some(Span {
            start: (start - 1) as u32,
            end: self.i as u32,
        })
    }

    /// A 4-tuple or 4-list of strings: [`lines`].
    fn line(&mut self, text: &str) -> Option<[String; 4]> {
        let close = match self.peek()? {
            b'(' => b')',
            b'[' => b']',
            _ => return None,
        };
        self.i += 1;
        let mut line = <[String; 4]>::default();
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
    pub(crate) fn key(&mut self) -> Option<Span> {
        let s = self.string()?;
        Some(Span {
            start: s.start + 1,
            end: s.end - 1,
        })
    }

    /// A decimal integer the full reader reads as the same text.
    pub(crate) fn int(&mut self) -> Option<Span> {
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
    pub(crate) fn int_digits(&mut self) -> Option<()> {
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
