//! A CMDB file as a decision reads and rewrites it (src/cmdb/file.rs,
//! src/cmdb/skim.rs, src/literal/skim.rs): the quick reader agrees with the full one, and an
//! allocation edits only the entry it hands out.

use edeploy::cmdb::{self, skim::skim, CmdbFile};
use edeploy::literal::{self, print_list, Dialect, ParseOptions, Value};
use indexmap::IndexMap;
use proptest::prelude::*;

fn map(items: &[(&str, &str)]) -> IndexMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn read(text: &str) -> CmdbFile {
    CmdbFile::read("test.cmdb", text.as_bytes().to_vec())
        .unwrap_or_else(|e| panic!("{text:?} was refused: {e}"))
}

fn parse_cmdb(text: &str) -> Vec<Value> {
    let doc = literal::parse_named(text, "test.cmdb", ParseOptions { calls: true })
        .unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"));
    cmdb::expand_owned(doc.value).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

// --- Random CMDB-like texts --------------------------------------------------

/// Pieces that stay inside the quick reader's subset and pieces that leave
/// it (the full reader must then be the one to answer).
fn arb_blank() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(String::new()),
        4 => Just(" ".to_string()),
        2 => Just("\n ".to_string()),
        1 => Just("\t".to_string()),
        1 => Just("\r\n".to_string()),
        1 => Just("  # a comment, 'quoted'\n".to_string()),
        1 => Just("\x0c".to_string()),
        1 => Just("\\\n".to_string()),
    ]
}

fn arb_string_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z0-9.:-]{0,8}",
        1 => Just("é中".to_string()),
        1 => Just("a\tb".to_string()),
        1 => Just("a\\nb".to_string()),
        1 => Just("it\\'s".to_string()),
        1 => Just("#x".to_string()),
    ]
}

fn arb_string() -> impl Strategy<Value = String> {
    (arb_string_text(), 0..12u8).prop_map(|(t, form)| match form {
        0..=5 => format!("'{t}'"),
        6..=9 => format!("\"{t}\""),
        10 => format!("u'{t}'"),
        _ => format!("'{t}' 'x'"),
    })
}

fn arb_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => arb_string(),
        3 => (-1000i64..100_000).prop_map(|n| n.to_string()),
        1 => Just("-0".to_string()),
        1 => Just("007".to_string()),
        1 => Just("1.5".to_string()),
        1 => Just("1_000".to_string()),
        1 => Just("0x1f".to_string()),
        1 => Just("True".to_string()),
        1 => Just("None".to_string()),
        1 => Just("123456789012345678901".to_string()),
        1 => Just("['a', 1]".to_string()),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["ip", "hostname", "mac", "used", "rack", "x"])
            .prop_map(|k| format!("'{k}'")),
        2 => prop::sample::select(vec!["ip", "used", "mac"]).prop_map(|k| format!("\"{k}\"")),
        1 => Just("5".to_string()),
    ]
}

fn arb_entry() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((arb_key(), arb_scalar(), arb_blank(), arb_blank()), 0..5),
        any::<bool>(),
    )
        .prop_map(|(pairs, trailing)| {
            let items: Vec<String> = pairs
                .into_iter()
                .map(|(k, v, b1, b2)| format!("{k}{b1}:{b2}{v}"))
                .collect();
            let comma = if trailing && !items.is_empty() {
                ","
            } else {
                ""
            };
            format!("{{{}{comma}}}", items.join(", "))
        })
}

fn arb_file() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((arb_entry(), arb_blank()), 0..6),
        arb_blank(),
        arb_blank(),
        any::<bool>(),
    )
        .prop_map(|(entries, before, after, trailing)| {
            let items: Vec<String> = entries
                .into_iter()
                .map(|(e, b)| format!("{e}{b}"))
                .collect();
            let comma = if trailing && !items.is_empty() {
                ","
            } else {
                ""
            };
            format!("{before}[{}{comma}]{after}\n", items.join(",\n "))
        })
}

/// Each entry's keys and values as text.
type Rows = Vec<Vec<(String, String)>>;

/// What the full reader says of a text, as comparable data: the entries
/// and whether the file is JSON.
fn full_reading(text: &str) -> Option<(Rows, bool)> {
    let doc = literal::parse_named(text, "t", ParseOptions { calls: true }).ok()?;
    let json = doc.dialect == Dialect::Json;
    let entries = cmdb::expand_owned(doc.value).ok()?;
    let rows = entries
        .iter()
        .map(|e| match e {
            Value::Dict(items) => items
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or("<not a string>").to_string(),
                        v.scalar_text().unwrap_or_else(|| "<container>".into()),
                    )
                })
                .collect(),
            _ => vec![("<not a dict>".into(), String::new())],
        })
        .collect();
    Some((rows, json))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the quick reader accepts, the full reader reads the same:
    /// entries, keys, values (as text), each entry's text, and the dialect.
    #[test]
    fn skim_agrees_with_the_full_reader(text in arb_file()) {
        if let Some(sk) = skim(&text) {
            let full = full_reading(&text);
            prop_assert!(full.is_some(), "skimmed but refused by the full reader: {:?}", text);
            let (rows, json) = full.unwrap();
            let views = sk.views(&text);
            prop_assert_eq!(views.len(), rows.len());
            for (i, (view, row)) in views.iter().zip(&rows).enumerate() {
                let got: Vec<(String, String)> = view
                    .pairs()
                    .map(|(k, v)| (k.to_string(), v.text().to_string()))
                    .collect();
                prop_assert_eq!(&got, row, "entry {} of {:?}", i, text);
                // The entry's own text reads as the same entry.
                let part = &text[sk.span(i)];
                let alone = full_reading(&format!("[{part}]"));
                prop_assert_eq!(alone.map(|(r, _)| r), Some(vec![row.clone()]));
                // Lookups find the first pair of a key, as Value::get does.
                for (k, _) in row {
                    let first = row.iter().find(|(k2, _)| k2 == k).map(|(_, v)| v.as_str());
                    prop_assert_eq!(view.get(k).map(|v| v.text()), first);
                }
            }
            prop_assert_eq!(sk.json, json, "dialect of {:?}", text);
        }
    }
}

/// A `.specs`-like text: lines of 2 to 5 fields, as tuples or lists,
/// with the same blanks and strings as the CMDB texts above.
fn arb_specs_file() -> impl Strategy<Value = String> {
    let field = prop_oneof![8 => arb_string(), 1 => arb_scalar()];
    let count = prop_oneof![8 => Just(4usize), 1 => 2..6usize];
    let line = (
        count.prop_flat_map(move |n| prop::collection::vec((field.clone(), arb_blank()), n)),
        any::<bool>(),
        0..8u8,
    )
        .prop_map(|(fields, trailing, form)| {
            let items: Vec<String> = fields.into_iter().map(|(f, b)| format!("{f}{b}")).collect();
            let comma = if trailing { "," } else { "" };
            let (open, close) = match form {
                0..=4 => ("(", ")"),
                5 | 6 => ("[", "]"),
                _ => ("(", "]"),
            };
            format!("{open}{}{comma}{close}", items.join(", "))
        });
    (
        prop::collection::vec((line, arb_blank()), 0..4),
        arb_blank(),
        any::<bool>(),
    )
        .prop_map(|(lines, before, trailing)| {
            let items: Vec<String> = lines.into_iter().map(|(l, b)| format!("{l}{b}")).collect();
            let comma = if trailing && !items.is_empty() {
                ","
            } else {
                ""
            };
            format!("{before}[{}{comma}]\n", items.join(",\n "))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The quick reader of spec lines gives what the full reader and
    /// `hw::from_document` give, for every text it accepts.
    #[test]
    fn skimmed_lines_agree_with_the_full_reader(text in arb_specs_file()) {
        if let Some(lines) = literal::skim::lines(&text) {
            let doc = literal::parse_named(&text, "t.specs", ParseOptions::default());
            prop_assert!(doc.is_ok(), "skimmed but refused by the full reader: {:?}", text);
            let full = edeploy::hw::from_document(&doc.unwrap(), "t.specs");
            prop_assert_eq!(Some(lines), full.ok(), "{:?}", text);
        }
    }
}

/// Of 500 texts from `files`, at least 50 are read by the quick reader
/// and 50 only by the full one; otherwise a property over them would
/// prove little.
fn reaches_both_readers(
    files: impl Strategy<Value = String>,
    quick: impl Fn(&str) -> bool,
    full: impl Fn(&str) -> bool,
) {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut skimmed, mut full_only) = (0, 0);
    for _ in 0..500 {
        let text = files
            .new_tree(&mut runner)
            .expect("a random file")
            .current();
        if quick(&text) {
            skimmed += 1;
        } else if full(&text) {
            full_only += 1;
        }
    }
    assert!(skimmed >= 50, "only {skimmed} of 500 files skimmed");
    assert!(
        full_only >= 50,
        "only {full_only} of 500 files left to the full reader"
    );
}

#[test]
fn random_specs_reach_both_readers() {
    reaches_both_readers(
        arb_specs_file(),
        |text| literal::skim::lines(text).is_some(),
        |text| {
            literal::parse_named(text, "t", ParseOptions::default())
                .ok()
                .and_then(|d| edeploy::hw::from_document(&d, "t").ok())
                .is_some()
        },
    );
}

#[test]
fn random_files_reach_both_readers() {
    reaches_both_readers(
        arb_file(),
        |text| skim(text).is_some(),
        |text| full_reading(text).is_some(),
    );
}

#[test]
fn what_the_writer_prints_is_skimmed() {
    let entries = parse_cmdb(
        "[{'ip': '10.0.0.1', 'hostname': 'n1', 'used': 1, 'mac': '52:54:00:00:00:01'},
          {'ip': '10.0.0.2', 'hostname': 'n2', 'port': 5}]",
    );
    for dialect in [Dialect::Python, Dialect::Json] {
        let text = print_list(&entries, dialect);
        let sk = skim(&text).unwrap_or_else(|| panic!("not skimmed: {text}"));
        assert_eq!(sk.len(), 2);
        assert_eq!(sk.json, dialect == Dialect::Json, "{text}");
    }
}

#[test]
fn skim_gives_up_outside_its_subset() {
    for text in [
        "[{'a': 'b' 'c'}]",     // adjacent literals concatenate
        "[{'a': '''b'''}]",     // triple quotes
        "[{'a': 'b\\'c'}]",     // an escape
        "[{'a': 1.5}]",         // a float
        "[{'a': 007}]",         // a leading zero
        "[{'a': -0}]",          // -0 reads as 0
        "[{'a': True}]",        // a boolean
        "[{5: 'b'}]",           // a key that is not a string
        "({'a': 'b'},)",        // a tuple
        "[{'a': 'b'}] + []",    // a sum
        "\u{feff}[{'a': 'b'}]", // a byte order mark
        "[{'a': 'b'}",          // not closed
        "[{'a': 'b'}] x",       // something after the list
        "[generate({'a': '1-3'})]",
    ] {
        assert!(skim(text).is_none(), "{text:?} was skimmed");
    }
}

// --- Allocation on files -----------------------------------------------------

/// The allocation on a file equals [`cmdb::allocate`] on its values.
fn check_same_as_values(
    text: &str,
    vars: &IndexMap<String, String>,
    forced: &IndexMap<String, String>,
) {
    let mut entries = parse_cmdb(text);
    let by_values = cmdb::allocate("p", &mut entries, vars, forced);
    let by_file = read(text).allocate("p", vars, forced, true, true);
    match (by_values, by_file) {
        (Ok(v), Ok(Some(f))) => {
            assert_eq!(f.index, v.index, "{text}");
            assert_eq!(f.vars, v.vars, "{text}");
            assert_eq!(f.reused, v.reused, "{text}");
            match f.text_over(text) {
                Some(new) => assert_eq!(parse_cmdb(&new), entries, "{new}"),
                None => assert!(!v.changed, "{text}: changed but not written"),
            }
            check_index(text, vars, forced, &f);
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("{text}: values gave {a:?}, the file {b:?}"),
    }
}

/// The side index of `text`, as a commit would write it.
fn index_of(text: &str) -> Option<Vec<u8>> {
    skim(text)?.to_index(text.len(), crc32fast::hash(text.as_bytes()), None)
}

/// `w` written over `old` as a decision writes an index.
fn written(old: &[u8], w: &cmdb::IndexWrite) -> Vec<u8> {
    let mut out = old.to_vec();
    for (at, bytes) in &w.pieces {
        let at = *at as usize;
        if out.len() < at + bytes.len() {
            out.resize(at + bytes.len(), 0);
        }
        out[at..at + bytes.len()].copy_from_slice(bytes);
    }
    out.truncate(w.len as usize);
    out
}

/// With the side index: reading `text` with its index hands out what
/// reading it without one handed out (`alloc`), and what either writes of
/// the index is the index of the file as the allocation leaves it.
fn check_index(
    text: &str,
    vars: &IndexMap<String, String>,
    forced: &IndexMap<String, String>,
    alloc: &cmdb::FileAllocation,
) {
    let Some(index) = index_of(text) else {
        return;
    };
    let plain = read(text);
    let text_of = |t: &str| cmdb::Text::read("test.cmdb", t.as_bytes().to_vec()).unwrap();
    let indexed = CmdbFile::open("test.cmdb", text_of(text), Some(index.clone())).unwrap();
    let again = indexed
        .allocate("p", vars, forced, true, true)
        .unwrap()
        .unwrap();
    assert_eq!(&again, alloc, "{text}");
    let after = alloc.text_over(text).unwrap_or_else(|| text.to_string());
    let expected = index_of(&after).expect("an edit stays in the subset");
    for (file, old) in [(&plain, Vec::new()), (&indexed, index.clone())] {
        let crc = file.crc_after(alloc);
        match file.index_write(alloc, crc) {
            Some(w) => assert_eq!(written(&old, &w), expected, "{text}"),
            None => assert_eq!(old, expected, "{text}: the index read stays"),
        }
    }
    // The index read is what is used: an index that says the first free
    // entry is used (its CRC made right) sends a new node past it.
    let sk = skim(text).unwrap();
    if let Some(free) = (0..sk.len()).find(|&i| !sk.is_used(i)) {
        let span = sk.span(free);
        let edit = cmdb::skim::Edited {
            entry: free,
            len: span.len(),
        };
        let crc = crc32fast::hash(text.as_bytes());
        let forged = written(
            &index,
            &cmdb::IndexWrite {
                pieces: sk.index_patch(&index, text.len(), crc, edit).unwrap(),
                len: index.len() as u64,
            },
        );
        let file = CmdbFile::open("test.cmdb", text_of(text), Some(forged)).unwrap();
        let none = IndexMap::new();
        let newcomer = map(&[("mac", "never-seen")]);
        if let Ok(Some(a)) = file.allocate("p", &newcomer, &none, true, false) {
            assert_ne!(a.index, free, "{text}: the forged index was not used");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// On random CMDBs and nodes, both readers hand out what the value
    /// allocation hands out, and write back the same entries.
    #[test]
    fn file_allocation_equals_value_allocation(
        rows in prop::collection::vec(
            (
                0..4u8,
                prop::option::of(0..3u8),
                any::<bool>(),
                prop::option::of(-1i64..2),
                prop::option::of(0..4u8),
            ),
            0..8,
        ),
        mac in 0..4u8,
        n_var in prop::sample::select(vec!["1", "-1", "100"]),
        tag in prop::option::of(0..3u8),
        outside in any::<bool>(),
    ) {
        // Variables' texts also appear where they identify nothing: in
        // other values (`xm1y`) and in comments between entries, which
        // the quick reader's search must see through.
        let entries: Vec<String> = rows
            .iter()
            .map(|(m, t, used, n, noise)| {
                let mut e = format!("{{'ip': '10.0.0.{m}'");
                if let Some(k) = noise {
                    e.push_str(&format!(", 'alias': 'xm{k}y'"));
                }
                if *m > 0 {
                    e.push_str(&format!(", 'mac': 'm{m}'"));
                }
                if let Some(t) = t {
                    e.push_str(&format!(", 'tag': 'T{t}'"));
                }
                if let Some(n) = n {
                    e.push_str(&format!(", 'n': {n}"));
                }
                if *used {
                    e.push_str(", 'used': 1");
                }
                e.push('}');
                if let Some(k) = noise {
                    e.push_str(&format!("  # m{k} T{k} 100\n"));
                }
                e
            })
            .collect();
        // A form feed before the list leaves the quick reader's subset.
        let lead = if outside { "\x0c" } else { "" };
        let text = format!("{lead}[{}]\n", entries.join(",\n "));
        prop_assert_eq!(skim(&text).is_some(), !outside);
        let vars = map(&[("mac", &format!("m{mac}")), ("n", n_var)]);
        let forced = match tag {
            Some(t) => map(&[("tag", &format!("T{t}"))]),
            None => IndexMap::new(),
        };
        check_same_as_values(&text, &vars, &forced);
    }
}

#[test]
fn only_the_entry_handed_out_changes() {
    let text = "# rack 1, row A\n[\n    {'ip': '10.0.0.1', 'hostname': 'n1', 'used': 1, 'mac': 'a'},  # taken\n    {'ip': '10.0.0.2',   'hostname': 'n2'},  # free\n    {\"ip\": \"10.0.0.3\", 'hostname': 'n3'},\n]\n";
    for lead in ["", "\x0c"] {
        let text = format!("{lead}{text}");
        let alloc = read(&text)
            .allocate("p", &map(&[("mac", "b")]), &IndexMap::new(), true, true)
            .expect("allocates")
            .expect("an entry");
        assert_eq!(alloc.index, 1);
        let new = alloc.text_over(&text).expect("the file changes");
        let entry = "{'ip': '10.0.0.2', 'hostname': 'n2', 'mac': 'b', 'used': 1}";
        let start = text.find("{'ip': '10.0.0.2'").expect("the entry");
        let end = start + "{'ip': '10.0.0.2',   'hostname': 'n2'}".len();
        let expected = format!("{}{entry}{}", &text[..start], &text[end..]);
        assert_eq!(new, expected, "form feed first: {}", !lead.is_empty());
        assert!(alloc.orig.is_none());
    }
}

#[test]
fn a_json_file_stays_json() {
    let text = "[\n  {\"ip\": \"10.0.0.1\", \"hostname\": \"n1\"},\n  {\"ip\": \"10.0.0.2\", \"hostname\": \"n2\"}\n]\n";
    let alloc = read(text)
        .allocate("p", &map(&[("mac", "b")]), &IndexMap::new(), true, true)
        .expect("allocates")
        .expect("an entry");
    let new = alloc.text_over(text).expect("the file changes");
    let json: serde_json::Value =
        serde_json::from_str(&new).unwrap_or_else(|e| panic!("not JSON any more: {e}\n{new}"));
    assert_eq!(json[0]["mac"], "b");
    assert_eq!(json[0]["used"], 1);
    assert_eq!(
        json[1],
        serde_json::json!({"ip": "10.0.0.2", "hostname": "n2"})
    );
    assert!(
        new.ends_with("\n  {\"ip\": \"10.0.0.2\", \"hostname\": \"n2\"}\n]\n"),
        "{new}"
    );
}

#[test]
fn a_generated_file_is_expanded_once_and_kept() {
    let text = "generate({'ip': '10.0.0.1-3', 'hostname': 'n1-3'})\n";
    let alloc = read(text)
        .allocate("p", &map(&[("mac", "b")]), &IndexMap::new(), true, true)
        .expect("allocates")
        .expect("an entry");
    assert_eq!(alloc.orig.as_deref(), Some(text));
    let new = alloc.text_over(text).expect("the file is expanded");
    let entries = parse_cmdb(&new);
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].get("used"), Some(&Value::Int(1)));
    // What it wrote is read quickly from then on.
    assert!(skim(&new).is_some(), "{new}");
}

#[test]
fn a_node_that_owns_an_entry_is_found_with_no_installs_left() {
    let text = "[{'ip': '1', 'mac': 'a', 'used': 1}, {'ip': '2'}]\n";
    let file = read(text);
    let none = IndexMap::new();
    let again = file
        .allocate("p", &map(&[("mac", "a")]), &none, false, true)
        .expect("allocates")
        .expect("its entry");
    assert_eq!((again.index, again.reused), (0, true));
    assert!(again.change.is_none(), "nothing changes");
    let new = file
        .allocate("p", &map(&[("mac", "b")]), &none, false, true)
        .expect("allocates");
    assert!(
        new.is_none(),
        "a new node takes nothing when no install is left"
    );
}

#[test]
fn errors_name_the_file_and_line() {
    for (text, want) in [
        ("[{'ip': '1'},\n {'ip' '2'}]\n", "test.cmdb:2:"),
        ("[{'ip': '1'},\n 'x']\n", "test.cmdb: entry 2"),
        ("[{'ip': '1}]\n", "test.cmdb:1:"),
    ] {
        let err = match CmdbFile::read("test.cmdb", text.as_bytes().to_vec()) {
            Ok(_) => panic!("{text:?} was accepted"),
            Err(e) => e,
        };
        assert!(err.starts_with(want), "{text:?}: {err}");
    }
    let err = match CmdbFile::read("test.cmdb", b"[{'ip': '1'},\n {'ip': '\xff'}]".to_vec()) {
        Ok(_) => panic!("invalid UTF-8 was accepted"),
        Err(e) => e,
    };
    assert_eq!(err, "test.cmdb:2: the file is not valid UTF-8");
}

#[test]
fn a_changed_byte_anywhere_makes_the_index_unused() {
    let text = "[{'ip': '10.0.0.1', 'used': 1},\n {'ip': '10.0.0.2'},\n {\"ip\": \"10.0.0.3\"}]\n";
    let index = index_of(text).unwrap();
    let crc = crc32fast::hash(text.as_bytes());
    let sk = cmdb::skim::Skim::from_index(&index, text.as_bytes(), crc);
    assert_eq!(sk, skim(text), "read back as skimmed");
    for at in 0..index.len() {
        for bit in 0..8 {
            let mut bad = index.clone();
            bad[at] ^= 1 << bit;
            assert_eq!(
                cmdb::skim::Skim::from_index(&bad, text.as_bytes(), crc),
                None,
                "byte {at}, bit {bit}"
            );
        }
    }
    // Cut short, or made for another text.
    assert_eq!(
        cmdb::skim::Skim::from_index(&index[..index.len() - 1], text.as_bytes(), crc),
        None
    );
    let other = text.replace("10.0.0.3", "10.0.0.4");
    let other_crc = crc32fast::hash(other.as_bytes());
    assert_eq!(
        cmdb::skim::Skim::from_index(&index, other.as_bytes(), other_crc),
        None
    );
}
