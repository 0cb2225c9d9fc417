//! Hardware lists: the ordered `(class, name, key, value)` lines a node
//! uploads, as JSON (what the `hardware-detect` tool prints) or in the
//! literal dialect (the original `.hw` files).
//!
//! Numbers in an upload become their decimal text (`4` → `"4"`,
//! `278.875` → `"278.875"`) because specs compare strings; the node's order
//! is kept because it decides which disk becomes `$disk`.

use crate::literal::{self, Dialect, ParseOptions, Value};

/// One hardware (or spec) line: class, name, key, value.
pub type Line = [String; 4];

/// A hardware list that is not a list of 4-tuples of scalars.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HwError {
    #[error(transparent)]
    Syntax(#[from] literal::ParseError),
    #[error("{file}:{line}: {msg}")]
    Shape {
        file: String,
        line: u32,
        msg: String,
    },
}

/// Parses a hardware list (JSON or literal), naming it `name` in errors.
pub fn parse(text: &str, name: &str) -> Result<Vec<Line>, HwError> {
    // Plain strings in 4-tuples, the usual list, read without building
    // values; the same lines (tests/cmdb_file.rs).
    if let Some(lines) = literal::skim::lines(text) {
        return Ok(lines);
    }
    let doc = literal::parse_named(text, name, ParseOptions::default())?;
    from_document(&doc, name)
}

/// What a hardware list a node sends may hold (keys `HWMAXLINES` and
/// `HWMAXVALUE` of `edeploy.conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most lines a list may have.
    pub max_lines: usize,
    /// The most bytes (UTF-8) any of the 4 strings of a line may hold.
    pub max_value: usize,
}

impl Default for Limits {
    /// 100,000 lines (a server with 60 disks has a few thousand), 8 KiB
    /// per string (the longest real one, a CPU's flags, is under 2 KiB).
    fn default() -> Limits {
        Limits {
            max_lines: 100_000,
            max_value: 8192,
        }
    }
}

/// The names of the 4 positions of a line, for errors.
pub const POSITIONS: [&str; 4] = ["class", "name", "key", "value"];

/// A hardware list over a [`Limits`], or with a control character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "the hardware list has {lines} lines, more than the {max} the server accepts (HWMAXLINES)"
    )]
    Lines { lines: usize, max: usize },
    #[error(
        "line {line} of the hardware list: its {position} is {len} bytes, more than the {max} \
         the server accepts (HWMAXVALUE)"
    )]
    Value {
        line: usize,
        position: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "line {line} of the hardware list: its {position} holds the control character \
         U+{code:04X} at byte {at}; a hardware list holds no control characters"
    )]
    Control {
        line: usize,
        position: &'static str,
        code: u32,
        at: usize,
    },
}

/// Checks `lines` against `limits` and refuses control characters (C0
/// including tab and newline, DEL, C1: what `char::is_control` says) in
/// any of the 4 positions. Lines are numbered from 1 in list order.
///
/// With no control character, the stored list (printed by
/// [`to_literal`]) is never much larger than the list sent: an escape
/// doubles a character at most (`\\`, a quote, `\xa0`), and the
/// 4-byte characters Python does not print take 10 bytes.
pub fn check(lines: &[Line], limits: &Limits) -> Result<(), LimitError> {
    if lines.len() > limits.max_lines {
        return Err(LimitError::Lines {
            lines: lines.len(),
            max: limits.max_lines,
        });
    }
    for (i, l) in lines.iter().enumerate() {
        for (s, position) in l.iter().zip(POSITIONS) {
            if s.len() > limits.max_value {
                return Err(LimitError::Value {
                    line: i + 1,
                    position,
                    len: s.len(),
                    max: limits.max_value,
                });
            }
            if let Some((at, c)) = s.char_indices().find(|(_, c)| c.is_control()) {
                return Err(LimitError::Control {
                    line: i + 1,
                    position,
                    code: u32::from(c),
                    at,
                });
            }
        }
    }
    Ok(())
}

/// Converts a parsed document into hardware lines.
pub fn from_document(doc: &literal::Document, name: &str) -> Result<Vec<Line>, HwError> {
    let shape = |i: Option<usize>, msg: String| HwError::Shape {
        file: name.to_string(),
        line: i.map(|i| doc.pos_of(i).line).unwrap_or(1),
        msg,
    };
    let items = doc.value.as_seq().ok_or_else(|| {
        shape(
            None,
            format!(
                "expected a list of 4-tuples, found {}",
                doc.value.type_name()
            ),
        )
    })?;
    let mut lines = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let fields = item.as_seq().ok_or_else(|| {
            shape(
                Some(i),
                format!("item {} is {}, not a 4-tuple", i + 1, item.type_name()),
            )
        })?;
        if fields.len() != 4 {
            return Err(shape(
                Some(i),
                format!(
                    "item {} has {} fields; a hardware line has 4 (class, name, key, value)",
                    i + 1,
                    fields.len()
                ),
            ));
        }
        let mut line: Line = Default::default();
        for (slot, f) in line.iter_mut().zip(fields) {
            *slot = f.scalar_text().ok_or_else(|| {
                shape(
                    Some(i),
                    format!(
                        "item {} holds {} where a string belongs",
                        i + 1,
                        f.type_name()
                    ),
                )
            })?;
        }
        lines.push(line);
    }
    Ok(lines)
}

/// The list in the literal dialect, one line per tuple (what HWDIR keeps).
pub fn to_literal(lines: &[Line]) -> String {
    let v = Value::List(
        lines
            .iter()
            .map(|l| Value::Tuple(l.iter().map(|s| Value::Str(s.clone())).collect()))
            .collect(),
    );
    literal::print(&v, Dialect::Python)
}

/// The list as JSON (what `edeploy-detect --format json` prints).
pub fn to_json(lines: &[Line]) -> String {
    let mut out = serde_json::to_string(lines).unwrap_or_else(|_| "[]".into());
    out.push('\n');
    out
}

/// The first value of `(class, name, key, *)`.
pub fn get<'a>(lines: &'a [Line], class: &str, name: &str, key: &str) -> Option<&'a str> {
    lines
        .iter()
        .find(|l| l[0] == class && l[1] == name && l[2] == key)
        .map(|l| l[3].as_str())
}

/// The MAC addresses of the network interfaces, in list order.
pub fn macs(lines: &[Line]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l[0] == "network" && l[2] == "serial")
        .map(|l| l[3].as_str())
        .collect()
}

/// The name a node's files are stored under on the server (HWDIR,
/// HEALTHDIR): `<product name>-<vendor>-<serial>`, each part stripped of
/// every non-word character, with the first MAC address (`:` → `-`) when
/// there is no serial. Only word characters and `-` can appear, so the
/// name can never leave the directory it is joined to. A name longer than
/// [`NAME_ROOM`] bytes is cut ([`fit`]).
pub fn sysname(lines: &[Line]) -> String {
    fit(node_name(lines, &SYSNAME))
}

/// The longest sysname or install log stem kept whole, in bytes: what
/// leaves room, within the 255 bytes of a file name, for the longest name
/// made from it, the spare file of a health result,
/// `.<sysname>-<YYYYmmddHHMMSS>-<N>.hw.edeploy-tmp` (42 bytes more, `N`
/// up to 10 digits). The others need less: `<sysname>.hw` 3,
/// `.<sysname>.hw.edeploy-tmp` 16, `.<stem>.log.gz.edeploy-tmp` 20, the
/// rotated `<stem>.<YYYYmmddHHMMSS>-<N>.log.gz` 33.
pub const NAME_ROOM: usize = 255 - 42;

/// The hex digits of the hash that ends a cut name.
const HASH_HEX: usize = 8;

/// `name` when it holds at most [`NAME_ROOM`] bytes; otherwise its first
/// bytes (cut on a character boundary), `-` and the first 8 hex digits of
/// the SHA-256 of the whole name, [`NAME_ROOM`] bytes at most: two long
/// names that share their start stay distinct.
pub fn fit(name: String) -> String {
    use sha2::{Digest, Sha256};
    if name.len() <= NAME_ROOM {
        return name;
    }
    let hash = Sha256::digest(name.as_bytes());
    let hex: String = hash
        .iter()
        .take(HASH_HEX / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut cut = NAME_ROOM - 1 - HASH_HEX;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hex}", &name[..cut])
}

/// The name the installer uploads its log under (LOGDIR):
/// `<vendor>-<product name>-<serial>.log.gz`, each part reduced to ASCII
/// word characters, the SKU lshw appends in parentheses left out, the
/// first MAC standing for a missing serial, the stem cut as the sysname
/// is ([`fit`]).
pub fn log_name(lines: &[Line]) -> String {
    format!(
        "{}{}",
        fit(node_name(lines, &LOG_NAME)),
        crate::protocol::LOG_SUFFIX
    )
}

/// One of the two ways a node is named.
struct Naming {
    /// The `system product` keys, in the order their values appear.
    keys: [&'static str; 2],
    /// The characters kept of each part.
    keep: fn(char) -> bool,
    /// Whether a ` (…)` after the value (lshw's SKU) is left out.
    drop_sku: bool,
    /// The name of a node with none of the parts.
    unknown: &'static str,
}

const SYSNAME: Naming = Naming {
    keys: ["name", "vendor"],
    keep: |c| c.is_alphanumeric() || c == '_',
    drop_sku: false,
    unknown: "unknown",
};

const LOG_NAME: Naming = Naming {
    keys: ["vendor", "name"],
    keep: |c| c.is_ascii_alphanumeric() || c == '_',
    drop_sku: true,
    unknown: "unknown-node",
};

fn node_name(lines: &[Line], naming: &Naming) -> String {
    let keep = naming.keep;
    let word = |s: &str| -> String { s.chars().filter(|c| keep(*c)).collect() };
    let mut parts = Vec::new();
    for key in naming.keys {
        if let Some(v) = get(lines, "system", "product", key) {
            let v = match v.split_once(" (") {
                Some((base, _)) if naming.drop_sku => base,
                _ => v,
            };
            let w = word(v);
            if !w.is_empty() {
                parts.push(w);
            }
        }
    }
    let serial = get(lines, "system", "product", "serial")
        .map(word)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let mac = macs(lines).first().map(|mac| {
                mac.chars()
                    .map(|c| if c == ':' { '-' } else { c })
                    .filter(|c| keep(*c) || *c == '-')
                    .collect::<String>()
            });
            mac.filter(|m| !m.is_empty())
        });
    parts.extend(serial);
    if parts.is_empty() {
        naming.unknown.into()
    } else {
        parts.join("-")
    }
}

/// A line rendered like Python's `repr` of a tuple of strings:
/// `('disk', 'sda', 'size', '4')`.
pub fn format_line(l: &Line) -> String {
    let parts: Vec<String> = l.iter().map(|s| literal::py_repr(s)).collect();
    format!("({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(product: &str, vendor: &str, serial: &str) -> Vec<Line> {
        [("name", product), ("vendor", vendor), ("serial", serial)]
            .iter()
            .map(|(k, v)| {
                [
                    "system".into(),
                    "product".into(),
                    k.to_string(),
                    v.to_string(),
                ]
            })
            .collect()
    }

    fn one(v: &str) -> Vec<Line> {
        vec![["disk".into(), "sda".into(), "size".into(), v.into()]]
    }

    #[test]
    fn limits_name_the_line_and_position() {
        let limits = Limits {
            max_lines: 3,
            max_value: 10,
        };
        assert_eq!(check(&one(&"x".repeat(10)), &limits), Ok(()));
        let long = check(&one(&"x".repeat(11)), &limits).unwrap_err();
        assert_eq!(
            long.to_string(),
            "line 1 of the hardware list: its value is 11 bytes, more than the 10 \
             the server accepts (HWMAXVALUE)"
        );
        // Bytes, not characters: 'é' is 2.
        assert!(check(&one(&"é".repeat(6)), &limits).is_err());
        let mut four: Vec<Line> = (0..3).map(|_| one("1")[0].clone()).collect();
        assert_eq!(check(&four, &limits), Ok(()));
        four.push(one("1")[0].clone());
        assert_eq!(
            check(&four, &limits),
            Err(LimitError::Lines { lines: 4, max: 3 })
        );
        let mut key = one("1");
        key[0][2] = "k".repeat(11);
        assert!(matches!(
            check(&key, &limits),
            Err(LimitError::Value {
                position: "key",
                ..
            })
        ));
    }

    #[test]
    fn control_characters_are_refused_wherever_they_are() {
        let limits = Limits::default();
        for (c, code) in [
            ('\u{7f}', 0x7f),
            ('\t', 9),
            ('\n', 10),
            ('\0', 0),
            ('\u{85}', 0x85),
        ] {
            let mut l = one("ok");
            l.push(["a".into(), format!("n{c}"), "k".into(), "v".into()]);
            assert_eq!(
                check(&l, &limits),
                Err(LimitError::Control {
                    line: 2,
                    position: "name",
                    code,
                    at: 1
                }),
                "{c:?}"
            );
        }
        let e = check(&one("\u{7f}"), &limits).unwrap_err().to_string();
        assert!(
            e.contains("line 1") && e.contains("value") && e.contains("U+007F"),
            "{e}"
        );
        // Printable text that is not ASCII is kept.
        assert_eq!(check(&one("Intel® Xeon® – ü"), &limits), Ok(()));
    }

    #[test]
    fn real_lists_are_within_the_default_limits() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hw");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let lines = parse(&text, &path.display().to_string()).unwrap();
            assert_eq!(check(&lines, &Limits::default()), Ok(()), "{path:?}");
            // Stored, a real list is about as large as sent.
            assert!(to_literal(&lines).len() < 2 * text.len() + 64, "{path:?}");
            seen += 1;
        }
        assert!(seen >= 4, "only {seen} fixtures");
    }

    #[test]
    fn stored_size_is_bounded_once_checked() {
        // The worst escapes left: backslashes, a quote of each kind, a
        // 4-byte character Python does not print.
        for v in ["\\".repeat(100), "'\"".repeat(50), "\u{f0000}".repeat(25)] {
            let lines = one(&v);
            assert_eq!(check(&lines, &Limits::default()), Ok(()));
            let sent = serde_json::to_string(&lines).unwrap().len();
            let stored = to_literal(&lines).len();
            assert!(stored <= 3 * sent, "{v:?}: {stored} stored for {sent}");
        }
    }

    #[test]
    fn names_that_fit_are_unchanged() {
        let n = node("ProLiant DL360", "HP", "CZ33");
        assert_eq!(sysname(&n), "ProLiantDL360-HP-CZ33");
        assert_eq!(log_name(&n), "HP-ProLiantDL360-CZ33.log.gz");
        let p = "p".repeat(NAME_ROOM - 4);
        let exact = node(&p, "v", "s");
        assert_eq!(sysname(&exact).len(), NAME_ROOM);
        assert_eq!(sysname(&exact), format!("{p}-v-s"));
    }

    #[test]
    fn long_names_are_cut_with_a_hash_and_stay_distinct() {
        let a = node(&"P".repeat(120), &"V".repeat(60), &"S".repeat(70));
        let b = node(&"P".repeat(120), &"V".repeat(60), &"T".repeat(70));
        let (sa, sb) = (sysname(&a), sysname(&b));
        assert_eq!(sa.len(), NAME_ROOM);
        assert_ne!(sa, sb);
        assert!(sa.starts_with(&"P".repeat(120)));
        let hash = &sa[sa.len() - HASH_HEX..];
        assert!(hash.bytes().all(|c| c.is_ascii_hexdigit()), "{sa}");
        assert_eq!(sa.as_bytes()[sa.len() - HASH_HEX - 1], b'-');
        // Every name made from it fits in 255 bytes.
        let longest = format!(".{sa}-20261206101500-4294967295.hw.edeploy-tmp");
        assert_eq!(longest.len(), 255);
        let log = log_name(&a);
        assert!(log.len() <= NAME_ROOM + crate::protocol::LOG_SUFFIX.len());
        assert_ne!(log, log_name(&b));
        // A cut never splits a character.
        let wide = node(&"é".repeat(200), "v", "s");
        assert!(sysname(&wide).len() <= NAME_ROOM);
    }
}
