//! The quick CMDB reader (`src/cmdb/skim.rs`) against the full literal
//! reader: whatever text the quick one accepts, the full one reads the
//! same entries, keys, values (as text), entry texts and dialect. Then an
//! allocation on the file must not panic, and the text it writes must read
//! back as the same entries with the handed-out one changed.

#![no_main]

use edeploy::cmdb::{expand_owned, skim::skim, CmdbFile};
use edeploy::literal::{parse_named, Dialect, Options, Value};
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

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(sk) = skim(text) {
        let doc = match parse_named(text, "fuzz", Options { calls: true }) {
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
            let part = parse_named(&text[sk.span(i)], "part", Options::default())
                .map(|d| d.value)
                .ok();
            assert_eq!(part.as_ref(), Some(entry), "entry {i} of {text:?}");
        }
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
            let back = parse_named(&new, "new", Options { calls: true })
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
