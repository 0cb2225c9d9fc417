//! Consistency report of a CMDB and its JSON form.

use std::fmt;

use indexmap::IndexMap;

use crate::literal::Value;

/// What kind of setting two entries share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DuplicateKind {
    /// `ip`, `ip-*` or `*-ip` keys.
    Ip,
    /// The `hostname` key.
    Hostname,
    /// `mac`, `mac-*` or `*-mac` keys, compared case-insensitively.
    Mac,
}

impl fmt::Display for DuplicateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DuplicateKind::Ip => "IP address",
            DuplicateKind::Hostname => "hostname",
            DuplicateKind::Mac => "MAC address",
        })
    }
}

/// One value found in several entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    pub kind: DuplicateKind,
    /// The value as first written (MAC addresses compare lower-cased).
    pub value: String,
    /// The keys holding it, in order of appearance.
    pub keys: Vec<String>,
    /// The entries holding it, 1-based, ascending.
    pub entries: Vec<usize>,
}

/// The result of [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    pub duplicates: Vec<Duplicate>,
    /// Entries with a `used` key, 1-based.
    pub used: Vec<usize>,
    /// Number of entries.
    pub total: usize,
}

impl CheckReport {
    pub fn has_duplicates(&self) -> bool {
        !self.duplicates.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} entries, {} used", self.total, self.used.len())?;
        for d in &self.duplicates {
            writeln!(
                f,
                "duplicate {} '{}' (key {}) in entries {}",
                d.kind,
                d.value,
                d.keys.join(", "),
                join_numbers(&d.entries)
            )?;
        }
        if !self.used.is_empty() {
            writeln!(f, "used entries: {}", join_numbers(&self.used))?;
        }
        if self.duplicates.is_empty() {
            writeln!(f, "no duplicates")?;
        }
        Ok(())
    }
}

fn join_numbers(numbers: &[usize]) -> String {
    numbers
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind_of(key: &str) -> Option<DuplicateKind> {
    let key = key.to_ascii_lowercase();
    let named = |base: &str| {
        key == base
            || key
                .strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('-'))
            || key
                .strip_suffix(base)
                .is_some_and(|rest| rest.ends_with('-'))
    };
    if named("ip") {
        Some(DuplicateKind::Ip)
    } else if key == "hostname" {
        Some(DuplicateKind::Hostname)
    } else if named("mac") {
        Some(DuplicateKind::Mac)
    } else {
        None
    }
}

/// Reports IP addresses, hostnames and MAC addresses held by more than one
/// entry, and the entries already `used`. Empty values are not settings
/// yet (`'ip': ''` in every entry is common) and are not reported.
pub fn check(entries: &[Value]) -> CheckReport {
    let mut seen: IndexMap<(DuplicateKind, String), Duplicate> = IndexMap::new();
    let mut used = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let number = i + 1;
        let Value::Dict(items) = entry else {
            continue;
        };
        if entry.get("used").is_some() {
            used.push(number);
        }
        for (key, value) in items {
            let Some(key) = key.as_str() else { continue };
            let Some(kind) = kind_of(key) else { continue };
            let text = match value {
                Value::Str(s) => s.clone(),
                Value::Int(_) | Value::Float(_) => value.scalar_text().unwrap_or_default(),
                _ => continue,
            };
            if text.is_empty() {
                continue;
            }
            let normalized = match kind {
                DuplicateKind::Mac => text.to_ascii_lowercase(),
                _ => text.clone(),
            };
            let dup = seen.entry((kind, normalized)).or_insert_with(|| Duplicate {
                kind,
                value: text,
                keys: Vec::new(),
                entries: Vec::new(),
            });
            if !dup.keys.iter().any(|k| k == key) {
                dup.keys.push(key.to_string());
            }
            if dup.entries.last() != Some(&number) {
                dup.entries.push(number);
            }
        }
    }
    CheckReport {
        duplicates: seen.into_values().filter(|d| d.entries.len() > 1).collect(),
        used,
        total: entries.len(),
    }
}

/// The entries as JSON: dicts become objects in key order, lists and
/// tuples arrays, scalars JSON scalars.
pub fn to_json(entries: &[Value]) -> serde_json::Value {
    serde_json::Value::Array(entries.iter().map(Value::to_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_kinds() {
        for key in ["ip", "ip-io", "ip-ipmi", "admin-ip", "IP"] {
            assert_eq!(kind_of(key), Some(DuplicateKind::Ip), "{key}");
        }
        for key in ["mac", "mac-eth1", "bmc-mac"] {
            assert_eq!(kind_of(key), Some(DuplicateKind::Mac), "{key}");
        }
        assert_eq!(kind_of("hostname"), Some(DuplicateKind::Hostname));
        for key in ["ipmi", "ship", "macro", "hostnames", "gateway"] {
            assert_eq!(kind_of(key), None, "{key}");
        }
    }
}
