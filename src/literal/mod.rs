//! The literal file dialect: the Python-literal (and JSON) syntax of the
//! `.hw`, `.specs`, `.cmdb` and `state` files operators bring from the
//! original eDeploy.
//!
//! Nothing here evaluates code. [`parse`] turns text into a [`Value`] tree
//! (or a [`ParseError`] naming line, column and what was expected), and
//! [`print`] writes a value back in the dialect the file was read in.
//! [`skim`] reads the plainest files (lists of plain strings) without
//! building values, for the full reader to answer the rest.

mod parser;
mod printer;
pub mod skim;

pub use parser::{parse, parse_bytes, parse_file, parse_named, Document, ParseError, Pos};
pub use printer::{print, print_list, py_float_repr, py_repr, to_inline, write_py_str};

/// One literal value. Dicts keep their key order; tuples and lists stay
/// distinct so a file can be written back the way it was read.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// `generate({...})`, only accepted where [`ParseOptions::calls`] is set
    /// (CMDB files). The argument is kept unevaluated.
    Generate(Box<Value>),
    /// `a + b + ...` between list-valued expressions, only with
    /// [`ParseOptions::calls`]. Kept unevaluated so the CMDB module decides.
    Concat(Vec<Value>),
}

/// How a document was written, so it can be written back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Strict JSON: written back as JSON.
    Json,
    /// Anything else: written back in Python-literal style.
    Python,
}

/// What the parser accepts beyond plain literals.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// Accept `generate(...)` calls and `+` (CMDB files only).
    pub calls: bool,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Items of a list or a tuple.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// Looks a string key up in a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text a scalar stands for, as Python's `str()` would give it
    /// (`4` → `"4"`, `2.5` → `"2.5"`, `True` → `"True"`). Containers give
    /// `None`.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(py_float_repr(*f)),
            Value::Bool(true) => Some("True".into()),
            Value::Bool(false) => Some("False".into()),
            Value::None => Some("None".into()),
            _ => None,
        }
    }

    /// The value as JSON: dicts become objects in key order (keys as their
    /// text), tuples arrays, integers beyond JSON's range strings, NaN and
    /// infinities `null`. Unevaluated `generate`/`+` become `null`: callers
    /// expand CMDB values before converting them.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::None | Value::Generate(_) | Value::Concat(_) => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => {
                if let Ok(n) = i64::try_from(*i) {
                    J::from(n)
                } else if let Ok(n) = u64::try_from(*i) {
                    J::from(n)
                } else {
                    J::String(i.to_string())
                }
            }
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::List(items) | Value::Tuple(items) => {
                J::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Dict(items) => J::Object(
                items
                    .iter()
                    .map(|(k, v)| {
                        let key = k.scalar_text().unwrap_or_else(|| k.type_name().into());
                        (key, v.to_json())
                    })
                    .collect(),
            ),
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Tuple(_) => "a tuple",
            Value::Dict(_) => "a dict",
            Value::Generate(_) => "a generate() call",
            Value::Concat(_) => "a sum of lists",
        }
    }
}
