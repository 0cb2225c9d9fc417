//! Parses arbitrary text with the literal reader (with and without CMDB
//! calls), prints what parsed, and checks that the printed text parses back
//! to an equal value, in the same dialect when it was JSON, and that
//! printing it again in the same dialect gives the same text.

#![no_main]

use edeploy::literal::{parse, print, Dialect, ParseOptions, Value};
use libfuzzer_sys::fuzz_target;

/// Values whose printed form is not expected to read back as an equal
/// value: unevaluated CMDB expressions, and NaN (never equal to itself).
fn comparable(v: &Value) -> bool {
    match v {
        Value::Generate(_) | Value::Concat(_) => false,
        Value::Float(f) => !f.is_nan(),
        Value::None | Value::Bool(_) | Value::Int(_) | Value::Str(_) => true,
        Value::List(items) | Value::Tuple(items) => items.iter().all(comparable),
        Value::Dict(items) => items.iter().all(|(k, v)| comparable(k) && comparable(v)),
    }
}

fn check(text: &str, opts: ParseOptions) {
    let Ok(doc) = parse(text, opts) else {
        return;
    };
    // Printing must never panic, whatever the value holds.
    let printed = print(&doc.value, doc.dialect);
    if !comparable(&doc.value) {
        return;
    }
    let again = match parse(&printed, opts) {
        Ok(d) => d,
        Err(e) => panic!(
            "printed text does not parse back: {e}\ninput: {text:?}\nvalue: {:?}\nprinted: {printed:?}",
            doc.value
        ),
    };
    assert_eq!(
        again.value, doc.value,
        "value changed through print/parse\ninput: {text:?}\nprinted: {printed:?}"
    );
    if doc.dialect == Dialect::Json {
        assert_eq!(
            again.dialect,
            Dialect::Json,
            "JSON written back is not JSON\ninput: {text:?}\nprinted: {printed:?}"
        );
    }
    // Python-style text can happen to be valid JSON (`"\uf600"`, `1.0`):
    // it then reads back as JSON, which may be written differently.
    if again.dialect == doc.dialect {
        let reprinted = print(&again.value, again.dialect);
        assert_eq!(
            reprinted, printed,
            "printing is not stable\ninput: {text:?}\nfirst: {printed:?}\nsecond: {reprinted:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text, ParseOptions { calls: true });
    check(text, ParseOptions::default());
});
