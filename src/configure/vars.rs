//! The envelope's variables as Rhai values.

use crate::literal::{to_inline, Dialect, Value};
use indexmap::IndexMap;
use rhai::{Array, Dynamic, Map};

/// Converts a literal value: strings stay strings, integers integers
/// (beyond 64 bits: their decimal text), floats floats, booleans booleans,
/// `None` unit, lists and tuples arrays, dicts object maps (keys as their
/// text).
pub fn to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::None | Value::Generate(_) | Value::Concat(_) => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Int(i) => match i64::try_from(*i) {
            Ok(n) => Dynamic::from_int(n),
            Err(_) => Dynamic::from(i.to_string()),
        },
        Value::Float(f) => Dynamic::from_float(*f),
        Value::Str(s) => Dynamic::from(s.clone()),
        Value::List(items) | Value::Tuple(items) => {
            Dynamic::from_array(items.iter().map(to_dynamic).collect::<Array>())
        }
        Value::Dict(items) => {
            let map: Map = items
                .iter()
                .map(|(k, v)| (key_text(k).into(), to_dynamic(v)))
                .collect();
            Dynamic::from_map(map)
        }
    }
}

fn key_text(k: &Value) -> String {
    k.scalar_text()
        .unwrap_or_else(|| to_inline(k, Dialect::Python))
}

/// The `var` map of a script.
pub(crate) fn var_map(vars: &IndexMap<String, Value>) -> Map {
    vars.iter()
        .map(|(k, v)| (k.as_str().into(), to_dynamic(v)))
        .collect()
}
