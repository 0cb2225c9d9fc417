//! The quick CMDB reader (`src/cmdb/skim.rs`) against the full literal
//! reader: whatever text the quick one accepts, the full one reads the
//! same entries, keys, values (as text), entry texts and dialect, and the
//! allocation on the file picks what the allocation on the values picks.
//! Then an allocation on any file must not panic, and the text it writes
//! must read back as the same entries with the handed-out one changed.
//! The quick reader of spec lines (`literal::skim::lines`) must agree with the
//! full reader and `hw::from_document` on every text it accepts.

#![no_main]

use edeploy::cmdb::{self, expand_owned, skim::skim, CmdbFile};
use edeploy::literal::{parse_named, Dialect, ParseOptions, Value};
use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;

fn rows(entries: &[Value]) -> Vec<Vec<(String, String)>> {
    entries
        .iter()
        .map(|e| match e {
            Value::Dict(items) => items
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or("<key>").to_string(),
                        v.scalar_text().unwrap_or_else(|| "<container>".into()),
                    )
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> IndexMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(sk) = skim(text) {
        let doc = match parse_named(text, "fuzz", ParseOptions { calls: true }) {
            Ok(d) => d,
            Err(e) => panic!("skimmed but not read: {e}\n{text:?}"),
        };
        let json = doc.dialect == Dialect::Json;
        let entries = match expand_owned(doc.value) {
            Ok(e) => e,
            Err(e) => panic!("skimmed but not a CMDB: {e}\n{text:?}"),
        };
        let want = rows(&entries);
        let views = sk.views(text);
        let got: Vec<Vec<(String, String)>> = views
            .iter()
            .map(|v| {
                v.pairs()
                    .map(|(k, s)| (k.to_string(), s.text().to_string()))
                    .collect()
            })
            .collect();
        assert_eq!(got, want, "{text:?}");
        assert_eq!(sk.json, json, "dialect of {text:?}");
        for (i, entry) in entries.iter().enumerate() {
            let part = parse_named(&text[sk.span(i)], "part", ParseOptions::default())
                .map(|d| d.value)
                .ok();
            assert_eq!(part.as_ref(), Some(entry), "entry {i} of {text:?}");
        }
        // The same entry as the allocation on values, for a node whose
        // variables the input may hold anywhere (values, comments).
        let vars = pairs(&[("mac", "m1"), ("n", "1")]);
        for forced in [IndexMap::new(), pairs(&[("tag", "t1")])] {
            let mut values = entries.clone();
            let by_values = cmdb::allocate("p", &mut values, &vars, &forced);
            let file = CmdbFile::read("fuzz", data.to_vec()).expect("skimmed, so read");
            let by_file = file.allocate("p", &vars, &forced, true, true);
            match (by_values, by_file) {
                (Ok(v), Ok(Some(f))) => {
                    assert_eq!((f.index, f.reused), (v.index, v.reused), "{text:?}");
                    assert_eq!(f.vars, v.vars, "{text:?}");
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text:?}"),
                (a, b) => panic!("values gave {a:?}, the file {b:?}\n{text:?}"),
            }
        }
    }
    if let Some(lines) = edeploy::literal::skim::lines(text) {
        let doc = match parse_named(text, "fuzz", ParseOptions::default()) {
            Ok(d) => d,
            Err(e) => panic!("lines skimmed but not read: {e}\n{text:?}"),
        };
        let full = edeploy::hw::from_document(&doc, "fuzz");
        assert_eq!(Some(lines), full.ok(), "{text:?}");
    }
    // Allocation on any file the reader accepts.
    let Ok(file) = CmdbFile::read("fuzz", data.to_vec()) else {
        return;
    };
    let vars: IndexMap<String, String> = [("mac", "m1"), ("ip", "1")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(Some(alloc)) = file.allocate("p", &vars, &IndexMap::new(), true, true) {
        if let Some(new) = alloc.text {
            let back = parse_named(&new, "new", ParseOptions { calls: true })
                .ok()
                .and_then(|d| expand_owned(d.value).ok());
            let Some(back) = back else {
                panic!("written text does not read back\n{text:?}\n{new:?}");
            };
            assert_eq!(
                back[alloc.index].get("used"),
                Some(&Value::Int(1)),
                "{new:?}"
            );
        }
    }
});
