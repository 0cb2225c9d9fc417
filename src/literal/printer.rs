//! Writes values back in the dialect they were read in: strict JSON stays
//! JSON, anything else becomes Python-literal text the original tools can
//! still `eval`. A top-level list or tuple is written one item per line so
//! that CMDB and state files stay readable and diff well.

use super::{Dialect, Value};
use std::fmt::Write;

/// The most bytes reserved in advance for a file's text.
const MAX_RESERVE: usize = 1 << 24;

/// The text of a whole file holding `v`, ending with a newline.
pub fn print(v: &Value, dialect: Dialect) -> String {
    match v {
        Value::List(items) if !items.is_empty() => print_seq(items, false, dialect),
        Value::Tuple(items) if !items.is_empty() => print_seq(items, true, dialect),
        _ => {
            let mut out = String::new();
            write_value(&mut out, v, dialect);
            out.push('\n');
            out
        }
    }
}

/// The text of a whole file holding the list `items`, ending with a
/// newline: the same as [`print`] of `Value::List(items)`, without building
/// that value.
pub fn print_list(items: &[Value], dialect: Dialect) -> String {
    if items.is_empty() {
        return "[]\n".into();
    }
    print_seq(items, false, dialect)
}

/// A non-empty top-level list or tuple, one item per line.
fn print_seq(items: &[Value], tuple: bool, dialect: Dialect) -> String {
    let (open, close) = if tuple && dialect == Dialect::Python {
        ('(', ')')
    } else {
        ('[', ']')
    };
    let mut out = String::new();
    out.push(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(",\n ");
        }
        write_value(&mut out, item, dialect);
        if i == 0 {
            // The items of a file are much alike (CMDB entries, state
            // pairs): sizing the text from the first one spares most of the
            // copies of a growing string.
            let guess = out.len().saturating_add(3).saturating_mul(items.len());
            out.reserve(guess.min(MAX_RESERVE));
        }
    }
    if tuple && items.len() == 1 && dialect == Dialect::Python {
        out.push(',');
    }
    out.push(close);
    out.push('\n');
    out
}

/// One value on one line.
pub fn to_inline(v: &Value, dialect: Dialect) -> String {
    let mut out = String::new();
    write_value(&mut out, v, dialect);
    out
}

fn write_value(out: &mut String, v: &Value, d: Dialect) {
    match v {
        Value::None => out.push_str(if d == Dialect::Json { "null" } else { "None" }),
        Value::Bool(b) => out.push_str(match (b, d) {
            (true, Dialect::Json) => "true",
            (false, Dialect::Json) => "false",
            (true, Dialect::Python) => "True",
            (false, Dialect::Python) => "False",
        }),
        Value::Int(i) => write_int(out, *i),
        Value::Float(f) => {
            if d == Dialect::Json && !f.is_finite() {
                out.push_str("null");
            } else {
                out.push_str(&py_float_repr(*f));
            }
        }
        Value::Str(s) => match d {
            Dialect::Json => write_json_str(out, s),
            Dialect::Python => write_py_str(out, s),
        },
        Value::List(items) => write_seq(out, items, '[', ']', false, d),
        Value::Tuple(items) => {
            if d == Dialect::Json {
                write_seq(out, items, '[', ']', false, d)
            } else {
                write_seq(out, items, '(', ')', items.len() == 1, d)
            }
        }
        Value::Dict(items) => {
            out.push('{');
            for (i, (k, val)) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match (d, k) {
                    // JSON keys must be strings.
                    (Dialect::Json, Value::Str(_)) => write_value(out, k, d),
                    (Dialect::Json, other) => {
                        write_value(out, &Value::Str(other.scalar_text().unwrap_or_default()), d)
                    }
                    _ => write_value(out, k, d),
                }
                out.push_str(": ");
                write_value(out, val, d);
            }
            out.push('}');
        }
        Value::Generate(arg) => {
            out.push_str("generate(");
            write_value(out, arg, Dialect::Python);
            out.push(')');
        }
        Value::Concat(parts) => {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push_str(" + ");
                }
                write_value(out, p, Dialect::Python);
            }
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], open: char, close: char, one: bool, d: Dialect) {
    out.push(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_value(out, item, d);
    }
    if one {
        out.push(',');
    }
    out.push(close);
}

/// Appends an integer's decimal text.
fn write_int(out: &mut String, i: i128) {
    // Formatting an i128 is several times slower than an i64, and CMDB and
    // state numbers fit in 64 bits.
    let _ = match i64::try_from(i) {
        Ok(small) => write!(out, "{small}"),
        Err(_) => write!(out, "{i}"),
    };
}

/// Appends a JSON string (the escapes of `serde_json`).
fn write_json_str(out: &mut String, s: &str) {
    // serde_json escapes `"`, `\` and the control characters below 0x20
    // only: text without them is written as it is.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    match serde_json::to_string(s) {
        Ok(text) => out.push_str(&text),
        // Serializing a string cannot fail; keep the output well formed.
        Err(_) => out.push_str("\"\""),
    }
}

/// Appends Python's `repr()` of a string to `out`.
pub fn write_py_str(out: &mut String, s: &str) {
    // Printable ASCII without `'` or `\` is written as it is, in single
    // quotes.
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'\'' && b != b'\\')
    {
        out.reserve(s.len() + 2);
        out.push('\'');
        out.push_str(s);
        out.push('\'');
        return;
    }
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.reserve(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c => {
                let code = u32::from(c);
                // Writing to a String cannot fail.
                let _ = if code <= 0xff {
                    write!(out, "\\x{code:02x}")
                } else if code <= 0xffff {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
        }
    }
    out.push(quote);
}

/// Python's `repr` of a string: single quotes unless the text contains `'`
/// and no `"`, with backslash escapes for the quote, `\` and unprintable
/// characters.
pub fn py_repr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_py_str(&mut out, s);
    out
}

/// Approximates Python's `str.isprintable`: control, format, separator
/// (other than space) and private-use characters are escaped.
fn is_printable(c: char) -> bool {
    if c.is_control() {
        return false;
    }
    !matches!(
        u32::from(c),
        0xa0 | 0xad
            | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x1680
            | 0x180e
            | 0x2000..=0x200f
            | 0x2028..=0x202f
            | 0x205f..=0x2064
            | 0x2066..=0x206f
            | 0x3000
            | 0xd800..=0xf8ff
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
            | 0xf0000..
    )
}

/// Python's `repr()` of a float: the shortest text that reads back as the
/// same number, in exponent form below 1e-4 and from 1e16 on.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // `{:e}` gives the shortest round-trip digits, e.g. "1.2345e3".
    let sci = format!("{:e}", f);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        for (f, s) in [
            (278.875, "278.875"),
            (2.0, "2.0"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
            (-0.5, "-0.5"),
            (1e22, "1e+22"),
        ] {
            assert_eq!(py_float_repr(f), s, "{f}");
        }
    }

    #[test]
    fn strings_print_like_python() {
        let mut out = String::new();
        write_py_str(&mut out, "it's");
        assert_eq!(out, "\"it's\"");
        out.clear();
        write_py_str(&mut out, "a'b\"c\\\n");
        assert_eq!(out, "'a\\'b\"c\\\\\\n'");
    }
}
