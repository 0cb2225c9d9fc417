//! What the server and its nodes agree on, written and read in one place:
//! the answer to a hardware upload ([`Envelope`]), and the names of the
//! files the server keeps for its nodes in LOGDIR (install logs, rotated
//! as `<stem>.YYYYmmddHHMMSS.log.gz`) and HEALTHDIR (health results,
//! `<sysname>-<YYYYmmddHHMMSS>.hw`, `-N` added for a second result in the
//! same second). The node names these files start with are
//! [`crate::hw::sysname`] and [`crate::hw::log_name`].

use crate::literal::Value;
use anyhow::{anyhow, bail, Result};
use indexmap::IndexMap;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

// ------------------------------------------------------------ the envelope

/// The server's answer to a hardware upload, as JSON
/// `{"profile", "vars", "script", "settings"}` in that order: what
/// `upload.cgi` sends and the installer reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub profile: String,
    /// The match's variables merged with the CMDB entry, with their JSON
    /// types; a missing or `null` `vars` is read as none.
    #[serde(
        default,
        serialize_with = "vars_to_json",
        deserialize_with = "vars_from_json"
    )]
    pub vars: IndexMap<String, Value>,
    /// The profile's configure script.
    pub script: String,
    /// `PXEMNGR_URL`, `METADATA_URL`; anything but an object of strings is
    /// read as none (values that are not strings are left out).
    #[serde(default, deserialize_with = "settings_from_json")]
    pub settings: IndexMap<String, String>,
}

impl Envelope {
    /// Reads the server's answer. `profile` (not empty) and `script` must
    /// be strings; `vars`, when present and not `null`, an object.
    pub fn parse(text: &str) -> Result<Envelope> {
        let j: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| anyhow!("the server's answer is not JSON ({e})"))?;
        for key in ["profile", "script"] {
            let present = j.get(key).and_then(|v| v.as_str());
            if present.is_none() || (key == "profile" && present == Some("")) {
                bail!("the server's answer has no \"{key}\"");
            }
        }
        Envelope::deserialize(j).map_err(|e| anyhow!("{e}"))
    }

    /// The answer as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        // Every field is a string or a map with string keys, and the
        // variables are already JSON: nothing here can fail to convert.
        serde_json::to_value(self).expect("an envelope is always representable as JSON")
    }
}

fn vars_to_json<S: Serializer>(vars: &IndexMap<String, Value>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(vars.iter().map(|(k, v)| (k, v.to_json())))
}

fn vars_from_json<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, Value>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Object(m) => Ok(m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect()),
        serde_json::Value::Null => Ok(IndexMap::new()),
        _ => Err(D::Error::custom("the server's \"vars\" is not an object")),
    }
}

fn settings_from_json<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Object(m) => m
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                _ => None,
            })
            .collect(),
        _ => IndexMap::new(),
    })
}

/// A JSON value as a literal value (objects keep their key order).
pub fn json_to_value(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::None,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Value::Int(i128::from(u))
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::Str(s.clone()),
        J::Array(items) => Value::List(items.iter().map(json_to_value).collect()),
        J::Object(map) => Value::Dict(
            map.iter()
                .map(|(k, v)| (Value::Str(k.clone()), json_to_value(v)))
                .collect(),
        ),
    }
}

// ------------------------------------------------------------ time stamps

/// Whether `s` is a `YYYYmmddHHMMSS` stamp (what [`crate::clock::Utc`]'s
/// `compact` writes): 14 ASCII digits.
fn is_stamp(s: &str) -> bool {
    s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit())
}

// ------------------------------------------------------------ LOGDIR

/// The end of every install log's name.
pub const LOG_SUFFIX: &str = ".log.gz";

/// The name a kept log `<stem>.log.gz` is rotated to:
/// `<stem>.<stamp>.log.gz`, or `<stem>.<stamp>-<n>.log.gz` for `n` ≥ 2
/// (a log of the same second is already kept).
pub fn rotated_log_name(stem: &str, stamp: &str, n: u32) -> String {
    if n < 2 {
        format!("{stem}.{stamp}{LOG_SUFFIX}")
    } else {
        format!("{stem}.{stamp}-{n}{LOG_SUFFIX}")
    }
}

/// The stem an install log was uploaded under, and whether the name is a
/// rotated one: `n.20260501123000-2.log.gz` → (`n`, true), `n.log.gz` →
/// (`n`, false).
pub fn log_stem(name: &str) -> (&str, bool) {
    let stem = name.strip_suffix(LOG_SUFFIX).unwrap_or(name);
    if let Some((base, stamp)) = stem.rsplit_once('.') {
        let digits = stamp.split_once('-').map_or(stamp, |(d, n)| {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                d
            } else {
                ""
            }
        });
        if is_stamp(digits) && !base.is_empty() {
            return (base, true);
        }
    }
    (stem, false)
}

// ------------------------------------------------------------ HEALTHDIR

/// The end of every health result's name (and of HWDIR's lists).
pub const HW_SUFFIX: &str = ".hw";

/// `<sysname>-<stamp>.hw`, or `<sysname>-<stamp>-<n>.hw` for the `n`th
/// further result of the same second (`n` ≥ 1).
pub fn health_result_name(sysname: &str, stamp: &str, n: u32) -> String {
    if n == 0 {
        format!("{sysname}-{stamp}{HW_SUFFIX}")
    } else {
        format!("{sysname}-{stamp}-{n}{HW_SUFFIX}")
    }
}

/// A health result's name, read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthName<'a> {
    /// The node's sysname.
    pub machine: &'a str,
    /// `YYYYmmddHHMMSS`, when the name has one.
    pub stamp: Option<&'a str>,
    /// The `-N` of a further result in the same second, 0 for the first.
    pub n: u32,
}

impl HealthName<'_> {
    /// A key that sorts a machine's results oldest first: the stamp, then
    /// the `-N` (zero-padded, so `-10` comes after `-2`); `None` (a name
    /// without a stamp) before any.
    pub fn order_key(&self) -> Option<String> {
        self.stamp.map(|ts| match self.n {
            0 => ts.to_string(),
            n => format!("{ts}-{n:010}"),
        })
    }
}

/// Reads `<sysname>-<YYYYmmddHHMMSS>[-N].hw`. A name without the stamp is
/// still a result whose stem is the machine; an empty or hidden stem, or
/// a name not ending in `.hw`, is none.
pub fn parse_health_name(file: &str) -> Option<HealthName<'_>> {
    let stem = file.strip_suffix(HW_SUFFIX)?;
    if stem.is_empty() || stem.starts_with('.') {
        return None;
    }
    if let Some((machine, ts)) = stem.rsplit_once('-') {
        if !machine.is_empty() && is_stamp(ts) {
            return Some(HealthName {
                machine,
                stamp: Some(ts),
                n: 0,
            });
        }
        // A further result in the same second: `<stamp>-N`.
        if let (Ok(n), Some((machine, ts))) = (ts.parse::<u32>(), machine.rsplit_once('-')) {
            if !machine.is_empty() && is_stamp(ts) {
                return Some(HealthName {
                    machine,
                    stamp: Some(ts),
                    n,
                });
            }
        }
    }
    Some(HealthName {
        machine: stem,
        stamp: None,
        n: 0,
    })
}

// ------------------------------------------------------------ signed answers

/// The header of `upload.cgi`'s answer to a hardware upload that holds its
/// signature: the base64 (standard alphabet) of the `.minisig` text, over
/// exactly the body's bytes (docs/trust.md, "Answers of upload.cgi").
pub const SIGNATURE_HEADER: &str = "X-Edeploy-Signature";

/// What the answer is called in every refusal of it.
pub const ANSWER: &str = "the answer of upload.cgi";

/// The form field that carries the installer's nonce.
pub const NONCE_FIELD: &str = "nonce";

/// The shortest and longest nonce accepted.
pub const NONCE_LEN: std::ops::RangeInclusive<usize> = 16..=64;

/// The trusted comment of a signed answer:
/// `edeploy-answer<TAB>node:<sysname>[<TAB>nonce:<nonce>]<TAB>time:<unix seconds>`.
pub fn answer_comment(sysname: &str, nonce: Option<&str>, time: u64) -> String {
    // A sysname is letters, digits and a few signs, but keep the comment
    // one line of fields whatever it holds.
    let node: String = sysname
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    match nonce {
        Some(n) => format!("edeploy-answer\tnode:{node}\tnonce:{n}\ttime:{time}"),
        None => format!("edeploy-answer\tnode:{node}\ttime:{time}"),
    }
}

/// Checks the form field `nonce`: 16 to 64 characters of `[0-9a-zA-Z]`.
/// The error is a sentence naming the field.
pub fn check_nonce(v: &str) -> Result<(), String> {
    let n = v.chars().count();
    if !NONCE_LEN.contains(&n) {
        return Err(format!(
            "the field \"{NONCE_FIELD}\" must be {} to {} letters and digits, found {n} characters",
            NONCE_LEN.start(),
            NONCE_LEN.end()
        ));
    }
    if let Some(c) = v.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Err(format!(
            "the field \"{NONCE_FIELD}\" must be letters and digits ([0-9a-zA-Z]), found {c:?}"
        ));
    }
    Ok(())
}

/// The value of [`SIGNATURE_HEADER`] for a `.minisig` text.
pub fn signature_header(minisig: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(minisig.as_bytes())
}

/// The `.minisig` text of a [`SIGNATURE_HEADER`] value.
pub fn signature_from_header(value: &str) -> Result<String, String> {
    use base64::Engine;
    let value = value.trim();
    // Base64 of at most trust::SIGNATURE_MAX bytes.
    if value.len() > crate::trust::SIGNATURE_MAX / 3 * 4 + 4 {
        return Err(format!("the {SIGNATURE_HEADER} header is too long"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|e| format!("the {SIGNATURE_HEADER} header is not base64 ({e})"))?;
    String::from_utf8(bytes)
        .map_err(|_| format!("the {SIGNATURE_HEADER} header does not hold a minisign signature"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_keeps_its_field_order_and_json_types() {
        let mut vars = IndexMap::new();
        vars.insert("n".to_string(), Value::Int(3));
        vars.insert("disk".to_string(), Value::Str("vda".into()));
        let e = Envelope {
            profile: "vm".into(),
            vars,
            script: "s".into(),
            settings: IndexMap::new(),
        };
        let text = e.to_json().to_string();
        assert_eq!(
            text,
            r#"{"profile":"vm","vars":{"n":3,"disk":"vda"},"script":"s","settings":{}}"#
        );
        assert_eq!(Envelope::parse(&text).unwrap(), e);
        let lax =
            Envelope::parse(r#"{"profile":"p","script":"","vars":null,"settings":[1]}"#).unwrap();
        assert!(lax.vars.is_empty() && lax.settings.is_empty());
        assert!(Envelope::parse(r#"{"profile":"","script":""}"#).is_err());
    }

    #[test]
    fn log_names_round_trip() {
        assert_eq!(
            rotated_log_name("n", "20260501123000", 0),
            "n.20260501123000.log.gz"
        );
        assert_eq!(
            rotated_log_name("n", "20260501123000", 3),
            "n.20260501123000-3.log.gz"
        );
        for n in [0, 2, 11] {
            assert_eq!(
                log_stem(&rotated_log_name("a.b", "20260501123000", n)),
                ("a.b", true)
            );
        }
    }

    #[test]
    fn health_names_round_trip() {
        for n in [0, 1, 2, 10] {
            let name = health_result_name("vm-kvm-52-54", "20261125101500", n);
            let h = parse_health_name(&name).unwrap();
            assert_eq!(
                (h.machine, h.stamp, h.n),
                ("vm-kvm-52-54", Some("20261125101500"), n)
            );
        }
        let key = |n| {
            parse_health_name(&health_result_name("m", "20261125101500", n))
                .and_then(|h| h.order_key())
        };
        assert!(key(0) < key(1) && key(2) < key(10));
        assert_eq!(parse_health_name("x.log.gz"), None);
    }

    #[test]
    fn nonces_are_checked_naming_the_field() {
        assert!(check_nonce("0123456789abcdefABCDEF").is_ok());
        assert!(check_nonce(&"a".repeat(16)).is_ok());
        assert!(check_nonce(&"Z".repeat(64)).is_ok());
        for bad in ["", "short", &"a".repeat(15), &"a".repeat(65)] {
            let e = check_nonce(bad).expect_err(bad);
            assert!(e.starts_with("the field \"nonce\" must be 16 to 64"), "{e}");
        }
        for bad in [
            "0123456789abcdef-",
            "0123456789abcdef\t",
            "0123456789abcdéf",
        ] {
            let e = check_nonce(bad).expect_err(bad);
            assert!(e.contains("\"nonce\"") && e.contains("[0-9a-zA-Z]"), "{e}");
        }
    }

    #[test]
    fn the_comment_and_the_header_round_trip() {
        assert_eq!(
            answer_comment("HP-X1", Some("ab12"), 7),
            "edeploy-answer\tnode:HP-X1\tnonce:ab12\ttime:7"
        );
        assert_eq!(
            answer_comment("a\tb", None, 7),
            "edeploy-answer\tnode:a_b\ttime:7"
        );
        let sig = "untrusted comment: x\nRWQ=\ntrusted comment: y\nZZ==\n";
        let h = signature_header(sig);
        assert!(!h.contains('\n'));
        assert_eq!(signature_from_header(&h).as_deref(), Ok(sig));
        assert!(signature_from_header("%%%").is_err());
    }
}
