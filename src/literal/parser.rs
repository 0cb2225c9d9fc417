//! A recursive-descent reader for the literal dialect. It recognises only
//! literal syntax (and, for CMDB files, `generate(...)` and `+`), so a file
//! can never make the reader run anything.

use super::{Dialect, ParseOptions, Value};
use std::path::Path;

/// Containers nested deeper than this are refused, so a hostile upload cannot
/// exhaust the stack.
const MAX_DEPTH: usize = 128;

/// The most top-level items reserved in advance from the first one's size.
const MAX_ITEMS_HINT: usize = 1 << 16;

/// A position in a file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// A parsed file: its value, the dialect it was written in, and the
/// position of each item of a top-level list or tuple, so that later checks
/// (a bad state entry, a spec line that is not a 4-tuple) can name a line.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub dialect: Dialect,
    pub item_pos: Vec<Pos>,
    /// The byte range of each item of a top-level list or tuple.
    pub item_span: Vec<std::ops::Range<usize>>,
}

impl Document {
    /// The position of top-level item `i`, or the start of the file.
    pub fn pos_of(&self, i: usize) -> Pos {
        self.item_pos
            .get(i)
            .copied()
            .unwrap_or(Pos { line: 1, col: 1 })
    }
}

/// A syntax error: where it is and what was expected there.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{}:{}: {msg}", pos.line, pos.col)]
pub struct ParseError {
    pub file: String,
    pub pos: Pos,
    pub msg: String,
}

/// Parses `text`; errors name the file as `<input>`.
pub fn parse(text: &str, opts: ParseOptions) -> Result<Document, ParseError> {
    parse_named(text, "<input>", opts)
}

/// Parses `text`, naming it `name` in errors.
pub fn parse_named(text: &str, name: &str, opts: ParseOptions) -> Result<Document, ParseError> {
    let mut p = Parser {
        src: text,
        pos: 0,
        line: 1,
        col: 1,
        opts,
        file: name,
        depth: 0,
        item_pos: Vec::new(),
        item_span: Vec::new(),
        value_end: 0,
    };
    p.skip_ws();
    if p.peek().is_none() {
        return Err(p.err("expected a value, found the end of the file"));
    }
    let value = p.expr(true)?;
    p.skip_ws();
    if let Some(c) = p.peek() {
        return Err(p.err(format!(
            "expected the end of the file after the value, found {}",
            describe(c)
        )));
    }
    // Strict JSON is written back as JSON; deciding it with a JSON parser
    // keeps the two dialects' edge cases (escapes, numbers) exact.
    let dialect = if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        Dialect::Json
    } else {
        Dialect::Python
    };
    Ok(Document {
        value,
        dialect,
        item_pos: p.item_pos,
        item_span: p.item_span,
    })
}

/// Reads and parses a file; errors name the file.
pub fn parse_file(path: &Path, opts: ParseOptions) -> anyhow::Result<Document> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    parse_bytes(&bytes, &path.display().to_string(), opts)
}

/// Parses the bytes of a file already read, naming it `name` in errors
/// (the same errors as [`parse_file`] once the file is read).
pub fn parse_bytes(bytes: &[u8], name: &str, opts: ParseOptions) -> anyhow::Result<Document> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let before = &bytes[..e.valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow::anyhow!("{name}:{line}: the file is not valid UTF-8")
    })?;
    Ok(parse_named(text, name, opts)?)
}

/// A number's text without its `_` separators.
fn without_underscores(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('_') {
        std::borrow::Cow::Owned(text.replace('_', ""))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn describe(c: char) -> String {
    match c {
        '\n' => "a line break".into(),
        c if c.is_control() => format!("the control character {:?}", c),
        c => format!("'{c}'"),
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
    opts: ParseOptions,
    file: &'a str,
    depth: usize,
    item_pos: Vec<Pos>,
    item_span: Vec<std::ops::Range<usize>>,
    /// Where the last item's text ended, before the blanks after it.
    value_end: usize,
}

impl<'a> Parser<'a> {
    fn here(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        self.err_at(self.here(), msg)
    }

    fn err_at(&self, pos: Pos, msg: impl Into<String>) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            pos,
            msg: msg.into(),
        }
    }

    #[inline]
    fn peek(&self) -> Option<char> {
        match self.src.as_bytes().get(self.pos) {
            Some(&b) if b.is_ascii() => Some(char::from(b)),
            Some(_) => self.src[self.pos..].chars().next(),
            None => None,
        }
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.src[self.pos..].chars();
        it.next();
        it.next()
    }

    #[inline]
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    #[inline]
    fn skip_ws(&mut self) {
        // Most calls find a token right away.
        match self.src.as_bytes().get(self.pos) {
            Some(&b) if b.is_ascii_graphic() && b != b'#' && b != b'\\' => {}
            None => {}
            Some(_) => self.skip_ws_run(),
        }
    }

    #[inline(never)]
    fn skip_ws_run(&mut self) {
        // ASCII blanks and comments byte by byte; anything else (Unicode
        // spaces, the byte order mark) through the general loop below.
        let bytes = self.src.as_bytes();
        loop {
            match bytes.get(self.pos) {
                Some(b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c') => {
                    self.pos += 1;
                    self.col += 1;
                }
                Some(b'\n') => {
                    self.pos += 1;
                    self.line += 1;
                    self.col = 1;
                }
                Some(b'#') => {
                    let rest = &bytes[self.pos..];
                    let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                    let chars = rest[..len].iter().filter(|&&b| b & 0xc0 != 0x80).count();
                    self.pos += len;
                    self.col = self
                        .col
                        .saturating_add(u32::try_from(chars).unwrap_or(u32::MAX));
                }
                Some(&b) if b.is_ascii() && b != b'\\' => return,
                None => return,
                Some(_) => break,
            }
        }
        while let Some(c) = self.peek() {
            if c == '#' {
                while let Some(c) = self.peek() {
                    if c == '\n' {
                        break;
                    }
                    self.bump();
                }
            } else if c == '\\' && matches!(self.peek2(), Some('\n')) {
                // Python's explicit line continuation.
                self.bump();
                self.bump();
            } else if c.is_whitespace() || c == '\u{feff}' {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("values nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    /// An item of a list, tuple or dict: [`Parser::expr`], with the plain
    /// string taken directly.
    #[inline]
    fn item(&mut self) -> Result<Value, ParseError> {
        // A plain string is followed by `,`, `:` or a closing bracket, so
        // `expr` would return it as it is. (Blanks first: a dict's value
        // follows `: `.)
        self.skip_ws();
        if let Some(s) = self.plain_string() {
            self.value_end = self.pos;
            return Ok(Value::Str(s));
        }
        self.expr(false)
    }

    /// expr := primary ('+' primary)*, the `+` only for CMDB files.
    fn expr(&mut self, top: bool) -> Result<Value, ParseError> {
        let first = self.primary(top)?;
        self.value_end = self.pos;
        self.skip_ws();
        if self.peek() != Some('+') {
            return Ok(first);
        }
        if !self.opts.calls {
            return Err(self.err("'+' is only allowed in CMDB files"));
        }
        let mut parts = vec![first];
        while self.peek() == Some('+') {
            self.bump();
            self.skip_ws();
            parts.push(self.primary(false)?);
            self.value_end = self.pos;
            self.skip_ws();
        }
        Ok(Value::Concat(parts))
    }

    fn primary(&mut self, top: bool) -> Result<Value, ParseError> {
        self.skip_ws();
        let start = self.here();
        let Some(c) = self.peek() else {
            return Err(self.err("expected a value, found the end of the file"));
        };
        match c {
            '[' => {
                self.enter()?;
                self.bump();
                let items = self.seq(']', "list", top)?;
                self.depth -= 1;
                Ok(Value::List(items))
            }
            '(' => {
                self.enter()?;
                let v = self.paren(top)?;
                self.depth -= 1;
                Ok(v)
            }
            '{' => {
                self.enter()?;
                let v = self.dict()?;
                self.depth -= 1;
                Ok(v)
            }
            '\'' | '"' => self.strings(),
            '0'..='9' | '-' | '+' | '.' => self.number(),
            c if c.is_alphabetic() || c == '_' => {
                let word = self.ident();
                // A prefixed string: u'...', r"...", b'...', ur'...'.
                if matches!(self.peek(), Some('\'' | '"'))
                    && word.len() <= 2
                    && word.chars().all(|c| "uUrRbB".contains(c))
                {
                    self.pos -= word.len();
                    self.col -= word.len() as u32;
                    return self.strings();
                }
                match word {
                    "True" | "true" => Ok(Value::Bool(true)),
                    "False" | "false" => Ok(Value::Bool(false)),
                    "None" | "null" => Ok(Value::None),
                    "generate" if self.opts.calls => self.generate(start),
                    "generate" => Err(self.err_at(
                        start,
                        "generate(...) is only allowed in CMDB files",
                    )),
                    _ => Err(self.err_at(
                        start,
                        format!(
                            "expected a value, found the name '{word}' (only literals{} are allowed; nothing is evaluated)",
                            if self.opts.calls { " and generate(...)" } else { "" }
                        ),
                    )),
                }
            }
            c => Err(self.err(format!("expected a value, found {}", describe(c)))),
        }
    }

    fn ident(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' {
                self.bump();
            } else {
                break;
            }
        }
        &self.src[start..self.pos]
    }

    fn generate(&mut self, start: Pos) -> Result<Value, ParseError> {
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.err("expected '(' after generate"));
        }
        self.bump();
        self.enter()?;
        let arg = self.expr(false)?;
        self.depth -= 1;
        self.skip_ws();
        if self.peek() == Some(',') {
            self.bump();
            self.skip_ws();
        }
        match self.peek() {
            Some(')') => {
                self.bump();
            }
            Some(c) => {
                return Err(self.err(format!(
                    "expected ')' to close generate( opened at line {}, found {}",
                    start.line,
                    describe(c)
                )))
            }
            None => {
                return Err(self.err(format!(
                    "expected ')' to close generate( opened at line {}, found the end of the file",
                    start.line
                )))
            }
        }
        Ok(Value::Generate(Box::new(arg)))
    }

    /// Items up to `close`, with an optional trailing comma.
    fn seq(&mut self, close: char, what: &str, top: bool) -> Result<Vec<Value>, ParseError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                None => {
                    return Err(self.err(format!(
                        "expected a {what} item or '{close}', found the end of the file"
                    )))
                }
                _ => {}
            }
            let start = self.pos;
            items.push(self.item_of(top)?);
            if top && items.len() == 1 {
                // The items of a file (CMDB entries, spec lines) are much
                // alike: sizing the list from the first one spares the
                // copies of a long list grown step by step.
                let first = (self.pos - start).max(1);
                let hint = (self.src.len() - self.pos) / first;
                let hint = hint.min(MAX_ITEMS_HINT);
                items.reserve(hint);
                self.item_pos.reserve(hint);
                self.item_span.reserve(hint);
            }
            self.sep(close, what)?;
        }
    }

    /// An item of a list or a tuple; of the file's top-level container
    /// (`top`), also its position and span.
    #[inline]
    fn item_of(&mut self, top: bool) -> Result<Value, ParseError> {
        if top {
            self.item_pos.push(self.here());
        }
        let start = self.pos;
        let item = self.item()?;
        if top {
            self.item_span.push(start..self.value_end);
        }
        Ok(item)
    }

    /// After an item: ',' or the closing bracket (left for the caller).
    fn sep(&mut self, close: char, what: &str) -> Result<(), ParseError> {
        self.skip_ws();
        match self.peek() {
            Some(',') => {
                self.bump();
                Ok(())
            }
            Some(c) if c == close => Ok(()),
            Some(c) => {
                let hint = if matches!(c, '(' | '[' | '{' | '\'' | '"') {
                    " (a comma is missing between two items)"
                } else {
                    ""
                };
                Err(self.err(format!(
                    "expected ',' or '{close}' after a {what} item, found {}{hint}",
                    describe(c)
                )))
            }
            None => Err(self.err(format!(
                "expected ',' or '{close}' after a {what} item, found the end of the file"
            ))),
        }
    }

    /// `(...)`: a tuple, or a parenthesised value when there is one item and
    /// no trailing comma (`('x')` is just a string, as in Python).
    fn paren(&mut self, top: bool) -> Result<Value, ParseError> {
        self.bump();
        let mut items = Vec::new();
        let mut trailing_comma = false;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(')') => {
                    self.bump();
                    break;
                }
                None => {
                    return Err(self.err("expected a tuple item or ')', found the end of the file"))
                }
                _ => {}
            }
            items.push(self.item_of(top)?);
            self.skip_ws();
            trailing_comma = self.peek() == Some(',');
            self.sep(')', "tuple")?;
        }
        if items.len() == 1 && !trailing_comma {
            if top {
                self.item_pos.clear();
                self.item_span.clear();
            }
            return Ok(items.pop().unwrap_or(Value::None));
        }
        Ok(Value::Tuple(items))
    }

    fn dict(&mut self) -> Result<Value, ParseError> {
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some('}') => {
                    self.bump();
                    return Ok(Value::Dict(items));
                }
                None => {
                    return Err(self.err("expected a dict key or '}', found the end of the file"))
                }
                _ => {}
            }
            let key = self.item()?;
            if matches!(
                key,
                Value::List(_) | Value::Dict(_) | Value::Generate(_) | Value::Concat(_)
            ) {
                return Err(self.err(format!("a dict key cannot be {}", key.type_name())));
            }
            self.skip_ws();
            match self.peek() {
                Some(':') => {
                    self.bump();
                }
                Some(c) => {
                    return Err(self.err(format!(
                        "expected ':' after a dict key, found {}",
                        describe(c)
                    )))
                }
                None => {
                    return Err(self.err("expected ':' after a dict key, found the end of the file"))
                }
            }
            let value = self.item()?;
            items.push((key, value));
            self.sep('}', "dict")?;
        }
    }

    /// One or more adjacent string literals, concatenated.
    fn strings(&mut self) -> Result<Value, ParseError> {
        if let Some(s) = self.plain_string() {
            return Ok(Value::Str(s));
        }
        let mut out = String::new();
        loop {
            self.one_string(&mut out)?;
            // Adjacent literals concatenate, across whitespace and comments.
            let save = (self.pos, self.line, self.col);
            self.skip_ws();
            let next_is_string = match self.peek() {
                Some('\'' | '"') => true,
                Some(c) if "uUrRbB".contains(c) => {
                    let r = self.rest();
                    let n = r.chars().take_while(|c| "uUrRbB".contains(*c)).count();
                    n <= 2 && matches!(r[n..].chars().next(), Some('\'' | '"'))
                }
                _ => false,
            };
            if !next_is_string {
                (self.pos, self.line, self.col) = save;
                return Ok(Value::Str(out));
            }
        }
    }

    fn one_string(&mut self, out: &mut String) -> Result<(), ParseError> {
        let start = self.here();
        let mut raw = false;
        while let Some(c) = self.peek() {
            match c {
                'r' | 'R' => raw = true,
                'u' | 'U' | 'b' | 'B' => {}
                _ => break,
            }
            self.bump();
        }
        let Some(q) = self.bump() else {
            return Err(self.err("expected a string"));
        };
        let triple = self
            .rest()
            .starts_with(if q == '"' { "\"\"" } else { "''" });
        if triple {
            self.bump();
            self.bump();
        }
        let quote_byte = u8::try_from(q).ok().filter(u8::is_ascii);
        loop {
            if let Some(qb) = quote_byte {
                self.plain_run(qb, out);
            }
            let Some(c) = self.peek() else {
                return Err(self.err_at(
                    start,
                    "this string is not closed before the end of the file",
                ));
            };
            if c == q {
                if !triple {
                    self.bump();
                    return Ok(());
                }
                let close: String = std::iter::repeat_n(q, 3).collect();
                if self.rest().starts_with(&close) {
                    for _ in 0..3 {
                        self.bump();
                    }
                    return Ok(());
                }
                self.bump();
                out.push(c);
                continue;
            }
            if c == '\n' && !triple {
                return Err(self.err_at(
                    start,
                    "this string is not closed before the end of its line",
                ));
            }
            if c == '\\' {
                self.bump();
                if raw {
                    // Raw strings keep the backslash; it still protects a quote.
                    out.push('\\');
                    if let Some(n) = self.bump() {
                        out.push(n);
                    }
                    continue;
                }
                self.escape(out)?;
                continue;
            }
            self.bump();
            out.push(c);
        }
    }

    /// The common string literal in one step: `'text'` or `"text"` without
    /// prefix, escape or line break, directly followed by `,`, `:` or a
    /// closing bracket (so not by another literal to concatenate). `None`
    /// (with nothing consumed) for anything else.
    fn plain_string(&mut self) -> Option<String> {
        let bytes = self.src.as_bytes();
        let quote = *bytes.get(self.pos)?;
        if quote != b'\'' && quote != b'"' {
            return None;
        }
        let body = &bytes[self.pos + 1..];
        let len = body
            .iter()
            .position(|&b| b == quote || b == b'\\' || b == b'\n')?;
        if body[len] != quote || (len == 0 && body.get(1) == Some(&quote)) {
            // An escape, a line break, or the opening of a triple quote.
            return None;
        }
        let end = self.pos + len + 2;
        if !matches!(
            bytes.get(end),
            None | Some(b',' | b':' | b')' | b']' | b'}')
        ) {
            return None;
        }
        let text = &body[..len];
        // Columns count characters: UTF-8 continuation bytes do not.
        let chars = if text.is_ascii() {
            len
        } else {
            text.iter().filter(|&&b| b & 0xc0 != 0x80).count()
        };
        // Both ends of the text are ASCII bytes: character boundaries.
        let s = self.src[self.pos + 1..self.pos + 1 + len].to_owned();
        self.pos = end;
        self.col = self
            .col
            .saturating_add(u32::try_from(chars + 2).unwrap_or(u32::MAX));
        Some(s)
    }

    /// Copies the string text up to the next `quote`, backslash or line
    /// break (or the end of the input) to `out` in one step.
    fn plain_run(&mut self, quote: u8, out: &mut String) {
        let rest = &self.src.as_bytes()[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == quote || b == b'\\' || b == b'\n')
            .unwrap_or(rest.len());
        if len == 0 {
            return;
        }
        let run = &rest[..len];
        // Columns count characters: UTF-8 continuation bytes do not.
        let chars = if run.is_ascii() {
            len
        } else {
            run.iter().filter(|&&b| b & 0xc0 != 0x80).count()
        };
        // The run stops at an ASCII byte or the end: a character boundary.
        out.push_str(&self.src[self.pos..self.pos + len]);
        self.pos += len;
        self.col = self
            .col
            .saturating_add(u32::try_from(chars).unwrap_or(u32::MAX));
    }

    fn escape(&mut self, out: &mut String) -> Result<(), ParseError> {
        let at = self.here();
        let Some(c) = self.bump() else {
            return Err(self.err("expected an escape after '\\', found the end of the file"));
        };
        match c {
            '\n' => {}
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            // JSON's escaped slash; Python would keep the backslash, but no
            // operator file means a literal backslash there.
            '/' => out.push('/'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '0'..='7' => {
                let mut n = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            n = n * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(n).unwrap_or('\u{fffd}'));
            }
            'x' => {
                let n = self.hex_digits(2, at)?;
                out.push(char::from_u32(n).unwrap_or('\u{fffd}'));
            }
            'u' => {
                let n = self.hex_digits(4, at)?;
                if (0xD800..0xDC00).contains(&n) && self.rest().starts_with("\\u") {
                    // A JSON surrogate pair.
                    let save = (self.pos, self.line, self.col);
                    self.bump();
                    self.bump();
                    let lo = self.hex_digits(4, at)?;
                    if (0xDC00..0xE000).contains(&lo) {
                        let cp = 0x10000 + ((n - 0xD800) << 10) + (lo - 0xDC00);
                        out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                        return Ok(());
                    }
                    (self.pos, self.line, self.col) = save;
                }
                out.push(char::from_u32(n).unwrap_or('\u{fffd}'));
            }
            'U' => {
                let n = self.hex_digits(8, at)?;
                match char::from_u32(n) {
                    Some(ch) => out.push(ch),
                    None => {
                        return Err(self.err_at(at, format!("\\U{n:08x} is not a valid character")))
                    }
                }
            }
            other => {
                // Python keeps unknown escapes as they are ('\d' is two
                // characters), which regexps in specs rely on.
                out.push('\\');
                out.push(other);
            }
        }
        Ok(())
    }

    fn hex_digits(&mut self, n: usize, at: Pos) -> Result<u32, ParseError> {
        let mut v = 0u32;
        for _ in 0..n {
            match self.peek().and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    self.bump();
                }
                None => {
                    return Err(self.err_at(at, format!("expected {n} hex digits in this escape")))
                }
            }
        }
        Ok(v)
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.here();
        let mut neg = false;
        if let Some(s @ ('-' | '+')) = self.peek() {
            neg = s == '-';
            self.bump();
            while matches!(self.peek(), Some(' ' | '\t')) {
                self.bump();
            }
        }
        let body_start = self.pos;
        let r = self.rest();
        let bad = |p: &Self, what: &str| p.err_at(start, what.to_string());
        // Bytes, not str slices: the next character may be multi-byte.
        let radix = match r.as_bytes() {
            [b'0', b'x' | b'X', ..] => Some(16),
            [b'0', b'o' | b'O', ..] => Some(8),
            [b'0', b'b' | b'B', ..] => Some(2),
            _ => None,
        };
        if let Some(radix) = radix {
            self.bump();
            self.bump();
            let ds = self.pos;
            while self.peek().is_some_and(|c| c.is_digit(radix) || c == '_') {
                self.bump();
            }
            let digits = without_underscores(&self.src[ds..self.pos]);
            if matches!(self.peek(), Some('l' | 'L')) {
                self.bump();
            }
            let v = i128::from_str_radix(&digits, radix)
                .map_err(|_| bad(self, "expected digits of a number"))?;
            return Ok(Value::Int(if neg { -v } else { v }));
        }
        let mut saw_digit = false;
        let mut is_float = false;
        while let Some(c) = self.peek() {
            match c {
                '0'..='9' => saw_digit = true,
                '_' if saw_digit => {}
                '.' => is_float = true,
                'e' | 'E' if saw_digit => {
                    is_float = true;
                    self.bump();
                    if matches!(self.peek(), Some('+' | '-')) {
                        self.bump();
                    }
                    continue;
                }
                _ => break,
            }
            self.bump();
        }
        let text = without_underscores(&self.src[body_start..self.pos]);
        if !saw_digit {
            return Err(self.err_at(start, "expected a value, found a lone sign or dot"));
        }
        if let Some(c) = self.peek() {
            if c.is_alphanumeric() && !matches!(c, 'l' | 'L') {
                return Err(self.err(format!(
                    "expected a number, found {} inside it",
                    describe(c)
                )));
            }
        }
        if is_float {
            let f: f64 = text
                .parse()
                .map_err(|_| bad(self, &format!("'{text}' is not a valid number")))?;
            if !f.is_finite() {
                // Python would read infinity, which no dialect can write back.
                return Err(bad(self, &format!("the number '{text}' is out of range")));
            }
            return Ok(Value::Float(if neg { -f } else { f }));
        }
        if matches!(self.peek(), Some('l' | 'L')) {
            self.bump();
        }
        if text.len() > 1 && text.starts_with('0') && text.bytes().any(|b| b != b'0') {
            return Err(self.err_at(
                start,
                format!("'{text}': an integer with a leading zero is ambiguous (octal in Python 2); write it without the zero or as a string"),
            ));
        }
        let v: i128 = text
            .parse()
            .map_err(|_| bad(self, &format!("the integer '{text}' is too large")))?;
        Ok(Value::Int(if neg { -v } else { v }))
    }
}
