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
