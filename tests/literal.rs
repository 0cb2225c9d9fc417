//! The literal dialect: what it accepts, where it points on errors, and that
//! printing then parsing gives the same value back.

use edeploy::literal::{self, parse, print, Dialect, ParseOptions, Value};
use proptest::prelude::*;
use std::path::Path;

fn p(text: &str) -> Value {
    match parse(text, ParseOptions::default()) {
        Ok(d) => d.value,
        Err(e) => panic!("{text:?} did not parse: {e}"),
    }
}

fn perr(text: &str) -> literal::ParseError {
    match parse(text, ParseOptions::default()) {
        Ok(d) => panic!("{text:?} parsed as {:?}", d.value),
        Err(e) => e,
    }
}

fn s(x: &str) -> Value {
    Value::Str(x.into())
}

#[test]
fn strings_escapes_and_concatenation() {
    assert_eq!(p(r#"'a\'b'"#), s("a'b"));
    assert_eq!(p(r#""a\"b""#), s("a\"b"));
    assert_eq!(p(r"'\x41\u00e9\n\t\\'"), s("Aé\n\t\\"));
    assert_eq!(p(r"'\U0001F600'"), s("😀"));
    assert_eq!(p(r#""\ud83d\ude00""#), s("😀"));
    assert_eq!(p("'ab' 'cd'"), s("abcd"));
    assert_eq!(p("('ab'\n  # comment\n 'cd')"), s("abcd"));
    assert_eq!(p("u'x' r'\\d+' b'y'"), s("x\\d+y"));
    assert_eq!(p(r"'\d'"), s("\\d"), "unknown escapes keep the backslash");
    assert_eq!(p("'''a'b\nc'''"), s("a'b\nc"));
    assert_eq!(p(r"'\101'"), s("A"));
}

#[test]
fn numbers_and_keywords() {
    assert_eq!(p("42"), Value::Int(42));
    assert_eq!(p("-7"), Value::Int(-7));
    assert_eq!(p("+7"), Value::Int(7));
    assert_eq!(p("10L"), Value::Int(10));
    assert_eq!(p("0x1f"), Value::Int(31));
    assert_eq!(p("278.875"), Value::Float(278.875));
    assert_eq!(p("1e3"), Value::Float(1000.0));
    assert_eq!(p(".5"), Value::Float(0.5));
    assert_eq!(p("True"), Value::Bool(true));
    assert_eq!(p("false"), Value::Bool(false));
    assert_eq!(p("None"), Value::None);
    assert_eq!(p("null"), Value::None);
}

#[test]
fn containers() {
    assert_eq!(p("('x')"), s("x"), "parentheses alone make no tuple");
    assert_eq!(p("('x',)"), Value::Tuple(vec![s("x")]));
    assert_eq!(p("()"), Value::Tuple(vec![]));
    assert_eq!(
        p("[1, 2,]"),
        Value::List(vec![Value::Int(1), Value::Int(2)])
    );
    assert_eq!(
        p("{'b': 1, 'a': [2], }"),
        Value::Dict(vec![
            (s("b"), Value::Int(1)),
            (s("a"), Value::List(vec![Value::Int(2)]))
        ]),
        "dict keys keep their order"
    );
}

#[test]
fn dialect_is_detected() {
    let j = parse(
        r#"[{"ip": "10.0.0.1", "used": 1}]"#,
        ParseOptions::default(),
    )
    .unwrap();
    assert_eq!(j.dialect, Dialect::Json);
    let py = parse("[{'ip': '10.0.0.1', 'used': 1}]", ParseOptions::default()).unwrap();
    assert_eq!(py.dialect, Dialect::Python);
    assert_eq!(j.value, py.value);
    assert_eq!(
        print(&j.value, Dialect::Json),
        "[{\"ip\": \"10.0.0.1\", \"used\": 1}]\n"
    );
    assert_eq!(
        print(&py.value, Dialect::Python),
        "[{'ip': '10.0.0.1', 'used': 1}]\n"
    );
}

#[test]
fn one_entry_per_line() {
    let v = p("[('hp', 4), ('vm', '*')]");
    assert_eq!(print(&v, Dialect::Python), "[('hp', 4),\n ('vm', '*')]\n");
}

#[test]
fn item_positions_are_kept() {
    let d = parse("[\n  ('a', 1),\n  ('b', 2)]", ParseOptions::default()).unwrap();
    assert_eq!(d.item_pos.len(), 2);
    assert_eq!((d.item_pos[1].line, d.item_pos[1].col), (3, 3));
}

#[test]
fn generate_and_plus_only_in_cmdb_mode() {
    let cmdb = ParseOptions { calls: true };
    let d = parse("generate({'ip': '10.0.0.1-3'}) + [{'ip': '1.1.1.1'}]", cmdb).unwrap();
    match d.value {
        Value::Concat(parts) => {
            assert!(matches!(parts[0], Value::Generate(_)));
            assert!(matches!(parts[1], Value::List(_)));
        }
        other => panic!("not a concat: {other:?}"),
    }
    let e = perr("generate({'ip': '10.0.0.1-3'})");
    assert!(e.msg.contains("only allowed in CMDB files"), "{e}");
    let e = perr("[1] + [2]");
    assert!(e.msg.contains("'+'"), "{e}");
}

#[test]
fn nothing_is_evaluated() {
    for text in [
        "__import__('os').system('touch /tmp/pwned')",
        "open('/etc/passwd')",
        "[x for x in range(3)]",
        "eval('1')",
    ] {
        let e = perr(text);
        assert_eq!(e.pos.line, 1, "{e}");
    }
    let e = perr("__import__('os')");
    assert!(e.msg.contains("nothing is evaluated"), "{e}");
}

#[test]
fn errors_name_line_column_and_expectation() {
    // The shipped bug: two spec tuples with no comma between them.
    let specs = "[\n    ('disk', '$disk', 'size', 'gt(4)'),\n    ('memory', 'total', 'size', 'ge(2)')\n    ('network', '$eth', 'serial', '$mac'),\n]\n";
    let e = perr(specs);
    assert_eq!((e.pos.line, e.pos.col), (4, 5), "{e}");
    assert!(e.msg.contains("expected ',' or ']'"), "{e}");
    assert!(e.msg.contains("comma is missing"), "{e}");

    let e = perr("[('a', 'b'");
    assert!(e.msg.contains("end of the file"), "{e}");
    let e = perr("{'a' 1}");
    assert_eq!((e.pos.line, e.pos.col), (1, 6), "{e}");
    assert!(e.msg.contains("expected ':'"), "{e}");
    let e = perr("'abc\n'");
    assert_eq!((e.pos.line, e.pos.col), (1, 1), "{e}");
    let e = perr("[1] 2");
    assert!(e.msg.contains("end of the file"), "{e}");
    let e = perr("0755");
    assert!(e.msg.contains("leading zero"), "{e}");
    let e = perr("");
    assert!(e.msg.contains("expected a value"), "{e}");
    let e = perr(&"[".repeat(1000));
    assert!(e.msg.contains("nested deeper"), "{e}");
    assert!(e.to_string().starts_with("<input>:1:"), "{e}");
}

#[test]
fn parse_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.specs");
    std::fs::write(&f, "[('a', 'b', 'c', 'd')\n ('e', 'f', 'g', 'h')]").unwrap();
    let e = literal::parse_file(&f, ParseOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{}:2:2:", f.display())), "{msg}");
    std::fs::write(&f, b"['\xff']").unwrap();
    let msg = literal::parse_file(&f, ParseOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not valid UTF-8"), "{msg}");
}

#[test]
fn real_fixtures_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for sub in ["hw", "reference-config"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let calls = path.extension().is_some_and(|e| e == "cmdb");
            let doc = literal::parse_file(&path, ParseOptions { calls }).unwrap();
            // Printing and parsing again gives the same value.
            let text = print(&doc.value, doc.dialect);
            let again = parse(&text, ParseOptions { calls }).unwrap();
            assert_eq!(again.value, doc.value, "{}", path.display());
        }
    }
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Int(i as i128)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        any::<String>().prop_map(Value::Str),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::List),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Tuple),
            prop::collection::vec((any::<String>().prop_map(Value::Str), inner), 0..5)
                .prop_map(Value::Dict),
        ]
    })
}

proptest! {
    #[test]
    fn print_parse_round_trip(v in arb_value()) {
        let text = print(&v, Dialect::Python);
        let back = parse(&text, ParseOptions::default());
        prop_assert!(back.is_ok(), "{text:?}: {:?}", back.err());
        prop_assert_eq!(back.unwrap().value, v);
    }

    #[test]
    fn json_round_trip_is_json(v in arb_value()) {
        let text = print(&v, Dialect::Json);
        let back = parse(&text, ParseOptions::default()).unwrap();
        prop_assert_eq!(back.dialect, Dialect::Json);
        // JSON has no tuples: they come back as lists.
        prop_assert_eq!(print(&back.value, Dialect::Json), text);
    }

    #[test]
    fn garbage_never_panics(text in "\\PC{0,64}") {
        let _ = parse(&text, ParseOptions { calls: true });
    }
}

#[test]
fn multibyte_after_a_digit_is_an_error_not_a_panic() {
    let e = perr("0\u{11728}");
    assert_eq!(e.pos.line, 1, "{e}");
    let e = perr("[0é]");
    assert!(e.msg.contains("inside it"), "{e}");
}

#[test]
fn floats_beyond_range_are_refused() {
    for text in ["1e400", "(1e653)", "[-1e999]"] {
        let e = perr(text);
        assert!(e.msg.contains("out of range"), "{text}: {e}");
    }
}

#[test]
fn plain_strings_next_to_other_tokens() {
    // Empty strings, triple quotes and adjacent literals around the
    // separators a plain string may be followed by.
    assert_eq!(p("['', \"\"]"), Value::List(vec![s(""), s("")]));
    assert_eq!(p("'''a'''"), s("a"));
    assert_eq!(p(r#"("'",)"#), Value::Tuple(vec![s("'")]));
    assert_eq!(
        p("['a''b', 'c' \"d\"]"),
        Value::List(vec![s("ab"), s("cd")])
    );
    assert_eq!(p("{'k':'v'}"), Value::Dict(vec![(s("k"), s("v"))]));
    assert_eq!(p("('x')"), s("x"));
    assert_eq!(p("'é'"), s("é"));
    // Columns count characters, not bytes, after a plain string.
    let e = perr("['é€', 'ü' x]");
    assert_eq!((e.pos.line, e.pos.col), (1, 12), "{e}");
    let e = perr("# é\n['ab', 'çd'");
    assert_eq!((e.pos.line, e.pos.col), (2, 12), "{e}");
}

#[test]
fn long_lists_keep_every_item_and_position() {
    let mut text = String::from("[");
    for i in 0..300 {
        if i > 0 {
            text.push_str(",\n ");
        }
        // Items of varied length, the first one the longest.
        let pad = if i == 0 {
            "x".repeat(40)
        } else {
            "y".repeat(i % 7)
        };
        text.push_str(&format!("{{'ip': '10.0.{i}', 'pad': '{pad}'}}"));
    }
    text.push(']');
    let doc = parse(&text, ParseOptions::default()).expect("parses");
    let items = doc.value.as_seq().expect("a list");
    assert_eq!(items.len(), 300);
    assert_eq!(doc.item_pos.len(), 300);
    assert_eq!(doc.pos_of(299).line, 300);
    assert_eq!(items[299].get("ip"), Some(&s("10.0.299")));
    assert_eq!(
        literal::print(&doc.value, Dialect::Python),
        format!("{text}\n")
    );
    assert_eq!(
        literal::print_list(items, Dialect::Python),
        format!("{text}\n")
    );
}
