//! `generate(model)` and the evaluation of a CMDB file's value.

use std::sync::OnceLock;

use regex::Regex;

use super::CmdbError;
use crate::literal::Value;

/// The most entries one `generate()` call may produce. A typo such as
/// `1-99999999999` must end in an error, not in a machine out of memory.
pub const MAX_GENERATED: u128 = 1_000_000;

/// Expands a model dict into a list of dicts, keeping the key order.
///
/// Each value of the model is a generator:
///
/// * a string with a numeric range `a-b` (`host01-20`, `rack1-2.node3`)
///   gives one string per number. The range is the earliest
///   digits-dash-digits in the string, optionally chained with `:`
///   (`node1-2:5-6` gives node1, node2, node5, node6). Only that first
///   range expands; the rest of the string is literal text. A first bound
///   starting with `0` pads the numbers to its width (`ceph001-006`), and a
///   range whose end is below its start counts down (`host5-3`);
/// * a string made of exactly four dot-separated parts of digits, `-` and
///   `:` with at least one range (`10.0.1-2.2-254`) gives every address,
///   last part fastest; parts without a range stay fixed;
/// * a list or a tuple gives its items;
/// * a dict is expanded the same way, in step with the other values;
/// * anything else (including a string without a range) repeats.
///
/// The expansion stops with the shortest generator. A model where nothing
/// generates gives exactly one entry: a copy of the model.
pub fn generate(model: &Value) -> Result<Vec<Value>, CmdbError> {
    let Value::Dict(items) = model else {
        return Err(CmdbError::ModelNotDict {
            found: model.type_name(),
        });
    };
    let fields = build_fields("", items)?;
    let Some((count, key)) = shortest(&fields) else {
        return Ok(vec![model.clone()]);
    };
    if count > MAX_GENERATED {
        return Err(CmdbError::TooManyEntries {
            key,
            count,
            limit: MAX_GENERATED,
        });
    }
    Ok((0..count).map(|i| dict_nth(&fields, i)).collect())
}

/// Evaluates the value of a CMDB file into its flat list of entries.
///
/// The value is a list (or tuple) of dicts, `generate({...})`, or a sum of
/// those. Every entry must be a dict with string keys; the error names the
/// first one that is not (1-based).
pub fn expand(v: &Value) -> Result<Vec<Value>, CmdbError> {
    let entries = evaluate(v)?;
    for (i, entry) in entries.iter().enumerate() {
        check_entry(i + 1, entry)?;
    }
    Ok(entries)
}

/// [`expand`] taking the value, so that a plain list's entries are moved
/// rather than copied.
pub fn expand_owned(v: Value) -> Result<Vec<Value>, CmdbError> {
    let entries = match v {
        Value::List(items) | Value::Tuple(items) => items,
        other => evaluate(&other)?,
    };
    for (i, entry) in entries.iter().enumerate() {
        check_entry(i + 1, entry)?;
    }
    Ok(entries)
}

/// Whether the value holds a `generate()` call anywhere. Such a file is
/// written back expanded once entries are handed out, so the caller keeps
/// the original next to it.
pub fn uses_generate(v: &Value) -> bool {
    match v {
        Value::Generate(_) => true,
        Value::Concat(parts) | Value::List(parts) | Value::Tuple(parts) => {
            parts.iter().any(uses_generate)
        }
        Value::Dict(items) => items
            .iter()
            .any(|(k, v)| uses_generate(k) || uses_generate(v)),
        _ => false,
    }
}

/// A CMDB entry must be a dict with string keys.
pub(super) fn check_entry(index: usize, entry: &Value) -> Result<(), CmdbError> {
    let Value::Dict(items) = entry else {
        return Err(CmdbError::EntryNotDict {
            index,
            found: entry.type_name(),
        });
    };
    match items.iter().find(|(k, _)| k.as_str().is_none()) {
        Some((k, _)) => Err(CmdbError::KeyNotString {
            index,
            found: k.type_name(),
        }),
        None => Ok(()),
    }
}

/// The list a list-valued expression stands for, without checking items.
pub(super) fn evaluate(v: &Value) -> Result<Vec<Value>, CmdbError> {
    match v {
        Value::List(items) | Value::Tuple(items) => Ok(items.clone()),
        Value::Generate(model) => generate(model),
        Value::Concat(parts) => {
            let mut all = Vec::new();
            for part in parts {
                all.extend(evaluate(part)?);
            }
            Ok(all)
        }
        other => Err(CmdbError::NotAList {
            found: other.type_name(),
        }),
    }
}

/// One `a-b` of a range chain.
#[derive(Debug)]
struct Segment {
    start: u64,
    end: u64,
    /// Zero-padding width, 0 when the first bound has no leading zero.
    width: usize,
}

impl Segment {
    fn len(&self) -> u128 {
        u128::from(self.start.abs_diff(self.end)) + 1
    }

    fn nth(&self, i: u128) -> String {
        // `i < len()`, so the offset fits between the two u64 bounds.
        let offset = i as u64;
        let n = if self.start <= self.end {
            self.start + offset
        } else {
            self.start - offset
        };
        format!("{n:0width$}", width = self.width)
    }
}

/// `a-b:c-d:…`, all of a..b, then all of c..d, ….
#[derive(Debug)]
struct Chain(Vec<Segment>);

impl Chain {
    /// Parses a chain whose syntax was already checked by [`split_chain`].
    fn new(key: &str, bounds: &[(&str, &str)]) -> Result<Chain, CmdbError> {
        let number = |text: &str| {
            text.parse::<u64>().map_err(|_| CmdbError::NumberTooLarge {
                key: key.to_string(),
                value: text.to_string(),
            })
        };
        let mut segments = Vec::with_capacity(bounds.len());
        for &(start, end) in bounds {
            segments.push(Segment {
                start: number(start)?,
                end: number(end)?,
                width: if start.starts_with('0') {
                    start.len()
                } else {
                    0
                },
            });
        }
        Ok(Chain(segments))
    }

    fn len(&self) -> u128 {
        self.0
            .iter()
            .fold(0u128, |total, s| total.saturating_add(s.len()))
    }

    fn nth(&self, mut i: u128) -> String {
        for segment in &self.0 {
            let len = segment.len();
            if i < len {
                return segment.nth(i);
            }
            i -= len;
        }
        // Callers stay below `len()`; the last number is the safe answer.
        self.0
            .last()
            .map(|s| s.nth(s.len() - 1))
            .unwrap_or_default()
    }
}

/// The bounds of `a-b(:c-d)*` when `text` is exactly that, else `None`.
fn split_chain(text: &str) -> Option<Vec<(&str, &str)>> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    text.split(':')
        .map(|range| {
            let (start, end) = range.split_once('-')?;
            (digits(start) && digits(end)).then_some((start, end))
        })
        .collect()
}

#[derive(Debug)]
enum Octet {
    Fixed(String),
    Range(Chain),
}

/// One value of the model, as something that can be asked its length and
/// its n-th value, so that huge ranges cost nothing until they are used.
#[derive(Debug)]
enum Gen {
    Repeat(Value),
    Items(Vec<Value>),
    Range {
        head: String,
        chain: Chain,
        tail: String,
    },
    Ipv4(Vec<Octet>),
    Dict(Vec<Field>),
}

#[derive(Debug)]
struct Field {
    key: Value,
    /// For error messages: the key, prefixed by its parents' keys.
    path: String,
    gen: Gen,
}

impl Gen {
    /// `None` for a value that repeats forever.
    fn len(&self) -> Option<u128> {
        match self {
            Gen::Repeat(_) => None,
            Gen::Items(items) => Some(items.len() as u128),
            Gen::Range { chain, .. } => Some(chain.len()),
            Gen::Ipv4(octets) => Some(octets.iter().fold(1u128, |total, o| match o {
                Octet::Fixed(_) => total,
                Octet::Range(chain) => total.saturating_mul(chain.len()),
            })),
            Gen::Dict(fields) => shortest(fields).map(|(count, _)| count),
        }
    }

    fn nth(&self, i: u128) -> Value {
        match self {
            Gen::Repeat(v) => v.clone(),
            Gen::Items(items) => usize::try_from(i)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .unwrap_or(Value::None),
            Gen::Range { head, chain, tail } => Value::Str(format!("{head}{}{tail}", chain.nth(i))),
            Gen::Ipv4(octets) => {
                // Mixed radix, last octet fastest.
                let mut rest = i;
                let mut parts: Vec<String> = octets
                    .iter()
                    .rev()
                    .map(|octet| match octet {
                        Octet::Fixed(text) => text.clone(),
                        Octet::Range(chain) => {
                            let len = chain.len();
                            let digit = rest % len;
                            rest /= len;
                            chain.nth(digit)
                        }
                    })
                    .collect();
                parts.reverse();
                Value::Str(parts.join("."))
            }
            Gen::Dict(fields) => dict_nth(fields, i),
        }
    }
}

fn dict_nth(fields: &[Field], i: u128) -> Value {
    Value::Dict(
        fields
            .iter()
            .map(|f| (f.key.clone(), f.gen.nth(i)))
            .collect(),
    )
}

/// The length of the shortest generator among `fields` and its key path,
/// or `None` when nothing generates.
fn shortest(fields: &[Field]) -> Option<(u128, String)> {
    fields
        .iter()
        .filter_map(|f| f.gen.len().map(|n| (n, &f.path)))
        .min_by_key(|&(n, _)| n)
        .map(|(n, path)| (n, path.clone()))
}

fn build_fields(parent: &str, items: &[(Value, Value)]) -> Result<Vec<Field>, CmdbError> {
    items
        .iter()
        .map(|(key, value)| {
            let name = key.scalar_text().unwrap_or_else(|| key.type_name().into());
            let path = if parent.is_empty() {
                name
            } else {
                format!("{parent}.{name}")
            };
            let gen = build(&path, value)?;
            Ok(Field {
                key: key.clone(),
                path,
                gen,
            })
        })
        .collect()
}

fn build(path: &str, value: &Value) -> Result<Gen, CmdbError> {
    match value {
        Value::List(items) | Value::Tuple(items) => Ok(Gen::Items(items.clone())),
        Value::Generate(_) | Value::Concat(_) => Ok(Gen::Items(evaluate(value)?)),
        Value::Dict(items) => {
            let fields = build_fields(path, items)?;
            if shortest(&fields).is_some() {
                Ok(Gen::Dict(fields))
            } else {
                Ok(Gen::Repeat(value.clone()))
            }
        }
        Value::Str(text) => build_str(path, text),
        other => Ok(Gen::Repeat(other.clone())),
    }
}

fn range_regex() -> &'static Regex {
    static RANGE: OnceLock<Regex> = OnceLock::new();
    RANGE.get_or_init(|| {
        // The lazy head finds the earliest digits-dash-digits.
        Regex::new(r"^(?s)(.*?)([0-9]+-[0-9]+(?::[0-9]+-[0-9]+)*)(.*)$")
            .expect("the range pattern is a valid regex")
    })
}

fn build_str(path: &str, text: &str) -> Result<Gen, CmdbError> {
    if let Some(octets) = ipv4_octets(path, text)? {
        return Ok(Gen::Ipv4(octets));
    }
    let Some(caps) = range_regex().captures(text) else {
        return Ok(Gen::Repeat(Value::Str(text.to_string())));
    };
    let part = |i| caps.get(i).map_or("", |m| m.as_str());
    let Some(bounds) = split_chain(part(2)) else {
        return Ok(Gen::Repeat(Value::Str(text.to_string())));
    };
    Ok(Gen::Range {
        head: part(1).to_string(),
        chain: Chain::new(path, &bounds)?,
        tail: part(3).to_string(),
    })
}

/// The octets of an IPv4 address with ranges, or `None` when `text` is not
/// one (then the plain range rule applies).
fn ipv4_octets(path: &str, text: &str) -> Result<Option<Vec<Octet>>, CmdbError> {
    let charset = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b':' | b'-' | b'.'));
    let parts: Vec<&str> = text.split('.').collect();
    if text.is_empty() || !charset || parts.len() != 4 || !text.contains(['-', ':']) {
        return Ok(None);
    }
    let mut octets = Vec::with_capacity(4);
    for part in parts {
        octets.push(match split_chain(part) {
            Some(bounds) => Octet::Range(Chain::new(path, &bounds)?),
            None => Octet::Fixed(part.to_string()),
        });
    }
    // Without any range (`10.0.0.1:2`) the string is just text.
    if octets.iter().all(|o| matches!(o, Octet::Fixed(_))) {
        return Ok(None);
    }
    Ok(Some(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_chain_accepts_only_full_chains() {
        assert_eq!(split_chain("1-2"), Some(vec![("1", "2")]));
        assert_eq!(split_chain("1-2:05-7"), Some(vec![("1", "2"), ("05", "7")]));
        assert_eq!(split_chain("1"), None);
        assert_eq!(split_chain("1-"), None);
        assert_eq!(split_chain("1-2-3"), None);
        assert_eq!(split_chain("1-2:"), None);
        assert_eq!(split_chain("a-2"), None);
    }

    #[test]
    fn chain_counts_and_indexes_without_materialising() {
        let chain = Chain::new("k", &[("1", "99999999999"), ("5", "3")]);
        let chain = chain.expect("bounds fit in u64");
        assert_eq!(chain.len(), 99_999_999_999 + 3);
        assert_eq!(chain.nth(0), "1");
        assert_eq!(chain.nth(99_999_999_998), "99999999999");
        assert_eq!(chain.nth(99_999_999_999), "5");
        assert_eq!(chain.nth(99_999_999_999 + 2), "3");
    }

    #[test]
    fn ipv4_needs_a_ranging_octet() {
        assert!(ipv4_octets("k", "10.0.0.1:2").ok().flatten().is_none());
        assert!(ipv4_octets("k", "10.0.0.1-2").ok().flatten().is_some());
        assert!(ipv4_octets("k", "10.0.1-2").ok().flatten().is_none());
    }
}
