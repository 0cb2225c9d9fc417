//! CMDB expansion, allocation and checks, on values built in Rust.

use edeploy::cmdb::{
    allocate, check, expand, expand_owned, find_owner, generate, to_json, uses_generate, CmdbError,
    DuplicateKind, MAX_GENERATED,
};
use edeploy::literal::Value;
use indexmap::IndexMap;
use proptest::prelude::*;

fn s(text: &str) -> Value {
    Value::Str(text.to_string())
}

fn int(n: i128) -> Value {
    Value::Int(n)
}

fn dict(items: &[(&str, Value)]) -> Value {
    Value::Dict(items.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

fn list(items: &[Value]) -> Value {
    Value::List(items.to_vec())
}

fn tuple(items: &[Value]) -> Value {
    Value::Tuple(items.to_vec())
}

fn strs(items: &[&str]) -> Vec<Value> {
    items.iter().map(|t| s(t)).collect()
}

fn map(items: &[(&str, &str)]) -> IndexMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The values of `key` across generated entries.
fn column(entries: &[Value], key: &str) -> Vec<Value> {
    entries
        .iter()
        .map(|e| e.get(key).cloned().unwrap_or(Value::None))
        .collect()
}

fn gen_ok(model: &Value) -> Vec<Value> {
    match generate(model) {
        Ok(entries) => entries,
        Err(e) => panic!("generate failed: {e}"),
    }
}

fn expand_ok(v: &Value) -> Vec<Value> {
    match expand(v) {
        Ok(entries) => entries,
        Err(e) => panic!("expand failed: {e}"),
    }
}

fn one_key(text: &str) -> Vec<Value> {
    column(&gen_ok(&dict(&[("k", s(text))])), "k")
}

// ---- generate ------------------------------------------------------------

#[test]
fn ip_and_hostname_ranges_stop_at_the_shortest() {
    let entries = gen_ok(&dict(&[
        ("ip", s("10.0.2.3-253")),
        ("hostname", s("kvm1-3")),
    ]));
    assert_eq!(
        entries,
        vec![
            dict(&[("ip", s("10.0.2.3")), ("hostname", s("kvm1"))]),
            dict(&[("ip", s("10.0.2.4")), ("hostname", s("kvm2"))]),
            dict(&[("ip", s("10.0.2.5")), ("hostname", s("kvm3"))]),
        ]
    );
}

#[test]
fn tuple_values_generate_and_empty_string_repeats() {
    let entries = gen_ok(&dict(&[
        ("tag", tuple(&strs(&["TAG1", "TAG2", "TAG3"]))),
        ("ip", s("")),
        ("hostname", s("host3-5")),
    ]));
    assert_eq!(
        entries,
        vec![
            dict(&[("tag", s("TAG1")), ("ip", s("")), ("hostname", s("host3"))]),
            dict(&[("tag", s("TAG2")), ("ip", s("")), ("hostname", s("host4"))]),
            dict(&[("tag", s("TAG3")), ("ip", s("")), ("hostname", s("host5"))]),
        ]
    );
}

#[test]
fn list_values_generate() {
    let entries = gen_ok(&dict(&[
        ("disk", list(&strs(&["sda", "vda"]))),
        ("hostname", s("n1-9")),
    ]));
    assert_eq!(column(&entries, "disk"), strs(&["sda", "vda"]));
    assert_eq!(column(&entries, "hostname"), strs(&["n1", "n2"]));
}

#[test]
fn zero_padding_follows_the_first_bound() {
    let entries = gen_ok(&dict(&[("ip", s("")), ("hostname", s("host03-07"))]));
    assert_eq!(
        column(&entries, "hostname"),
        strs(&["host03", "host04", "host05", "host06", "host07"])
    );
    assert_eq!(column(&entries, "ip"), strs(&["", "", "", "", ""]));
    assert_eq!(
        one_key("ceph001-006"),
        strs(&["ceph001", "ceph002", "ceph003", "ceph004", "ceph005", "ceph006"])
    );
    assert_eq!(one_key("n8-11"), strs(&["n8", "n9", "n10", "n11"]));
    assert_eq!(one_key("n0-2"), strs(&["n0", "n1", "n2"]));
    assert_eq!(one_key("n09-11"), strs(&["n09", "n10", "n11"]));
}

#[test]
fn reverse_ranges_count_down() {
    assert_eq!(one_key("host5-3"), strs(&["host5", "host4", "host3"]));
    assert_eq!(one_key("h010-008"), strs(&["h010", "h009", "h008"]));
    assert_eq!(one_key("h4-4"), strs(&["h4"]));
}

#[test]
fn colon_chains_ranges() {
    assert_eq!(
        one_key("node1-2:5-6"),
        strs(&["node1", "node2", "node5", "node6"])
    );
    assert_eq!(
        one_key("n3-2:7-7.lan"),
        strs(&["n3.lan", "n2.lan", "n7.lan"])
    );
}

#[test]
fn only_the_first_range_expands() {
    assert_eq!(
        one_key("rack1-2.node3-4"),
        strs(&["rack1.node3-4", "rack2.node3-4"])
    );
    assert_eq!(
        one_key("rack1-2.node3"),
        strs(&["rack1.node3", "rack2.node3"])
    );
}

#[test]
fn ipv4_octet_ranges() {
    assert_eq!(
        one_key("10.0.1-2.2-3"),
        strs(&["10.0.1.2", "10.0.1.3", "10.0.2.2", "10.0.2.3"])
    );
    assert_eq!(
        one_key("10-11.0.0.1-2"),
        strs(&["10.0.0.1", "10.0.0.2", "11.0.0.1", "11.0.0.2"])
    );
    assert_eq!(
        one_key("10.0.0.1-2:9-9"),
        strs(&["10.0.0.1", "10.0.0.2", "10.0.0.9"])
    );
    assert_eq!(
        one_key("192.168.1-3:7-7.10"),
        strs(&[
            "192.168.1.10",
            "192.168.2.10",
            "192.168.3.10",
            "192.168.7.10"
        ])
    );
    let huge = gen_ok(&dict(&[
        ("ip", s("10.0-255.0-255.1-254")),
        ("h", s("h1-2")),
    ]));
    assert_eq!(column(&huge, "ip"), strs(&["10.0.0.1", "10.0.0.2"]));
}

#[test]
fn ipv4_with_all_four_octets_ranging() {
    let entries = one_key("1-2.3-4.5-6.7-8");
    assert_eq!(entries.len(), 16);
    assert_eq!(entries[0], s("1.3.5.7"));
    assert_eq!(entries[1], s("1.3.5.8"));
    assert_eq!(entries[2], s("1.3.6.7"));
    assert_eq!(entries[15], s("2.4.6.8"));
}

#[test]
fn nested_dicts_expand_in_step() {
    let entries = gen_ok(&dict(&[
        ("hostname", s("h1-3")),
        (
            "net",
            dict(&[("ip", s("10.0.0.1-2")), ("mask", s("255.255.255.0"))]),
        ),
    ]));
    assert_eq!(
        entries,
        vec![
            dict(&[
                ("hostname", s("h1")),
                (
                    "net",
                    dict(&[("ip", s("10.0.0.1")), ("mask", s("255.255.255.0"))])
                ),
            ]),
            dict(&[
                ("hostname", s("h2")),
                (
                    "net",
                    dict(&[("ip", s("10.0.0.2")), ("mask", s("255.255.255.0"))])
                ),
            ]),
        ]
    );
}

#[test]
fn nested_dict_without_range_repeats() {
    let inner = dict(&[("gw", s("10.0.0.254")), ("vlan", int(12))]);
    let entries = gen_ok(&dict(&[("hostname", s("h1-3")), ("net", inner.clone())]));
    assert_eq!(
        column(&entries, "net"),
        vec![inner.clone(), inner.clone(), inner]
    );
}

#[test]
fn nothing_ranging_gives_the_model_once() {
    let model = dict(&[
        ("hostname", s("host-1")),
        ("ip", s("10.0.0.1")),
        ("port", int(5)),
        ("ratio", Value::Float(0.5)),
        ("pxe", Value::Bool(true)),
        ("none", Value::None),
        ("net", dict(&[("gw", s("10.0.0.254"))])),
    ]);
    assert_eq!(gen_ok(&model), vec![model]);
    let only_int = dict(&[("vlan", int(12))]);
    assert_eq!(gen_ok(&only_int), vec![only_int]);
    assert_eq!(gen_ok(&dict(&[])), vec![dict(&[])]);
}

#[test]
fn dash_without_digits_on_both_sides_is_not_a_range() {
    assert_eq!(one_key("D7-H.1.0.0"), strs(&["D7-H.1.0.0"]));
    assert_eq!(one_key("host-1"), strs(&["host-1"]));
    assert_eq!(one_key("host1-"), strs(&["host1-"]));
    assert_eq!(one_key("10.0.0.1:2"), strs(&["10.0.0.1:2"]));
}

#[test]
fn empty_list_gives_no_entries() {
    assert_eq!(gen_ok(&dict(&[("a", list(&[])), ("h", s("h1-3"))])), vec![]);
}

#[test]
fn model_must_be_a_dict() {
    let err = generate(&list(&[])).err();
    assert!(
        matches!(err, Some(CmdbError::ModelNotDict { found: "a list" })),
        "{err:?}"
    );
    let text = generate(&s("x")).err().map(|e| e.to_string());
    assert_eq!(
        text.as_deref(),
        Some("generate() takes a dict, got a string")
    );
}

#[test]
fn absurd_sizes_are_refused_quickly() {
    let err = generate(&dict(&[("hostname", s("h1-99999999999"))])).err();
    match err {
        Some(CmdbError::TooManyEntries { key, count, limit }) => {
            assert_eq!(key, "hostname");
            assert_eq!(count, 99_999_999_999);
            assert_eq!(limit, MAX_GENERATED);
        }
        other => panic!("expected TooManyEntries, got {other:?}"),
    }
    let err = generate(&dict(&[("ip", s("0-255.0-255.0-255.0-255"))])).err();
    assert!(
        matches!(err, Some(CmdbError::TooManyEntries { .. })),
        "{err:?}"
    );
    // A huge range next to a short one is fine: only the shortest counts.
    let ok = gen_ok(&dict(&[("a", s("h1-99999999999")), ("b", s("x1-2"))]));
    assert_eq!(column(&ok, "a"), strs(&["h1", "h2"]));
    // Exactly the limit is allowed.
    assert_eq!(gen_ok(&dict(&[("a", s("1-1000000"))])).len(), 1_000_000);
    let err = generate(&dict(&[("a", s("1-1000001"))])).err();
    assert!(
        matches!(err, Some(CmdbError::TooManyEntries { .. })),
        "{err:?}"
    );
}

#[test]
fn numbers_beyond_u64_are_errors_naming_the_value() {
    let err = generate(&dict(&[("hostname", s("h1-99999999999999999999"))])).err();
    match &err {
        Some(CmdbError::NumberTooLarge { key, value }) => {
            assert_eq!(key, "hostname");
            assert_eq!(value, "99999999999999999999");
        }
        other => panic!("expected NumberTooLarge, got {other:?}"),
    }
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("99999999999999999999"), "{text}");
    let err = generate(&dict(&[("ip", s("10.0.0.1-99999999999999999999"))])).err();
    assert!(
        matches!(err, Some(CmdbError::NumberTooLarge { .. })),
        "{err:?}"
    );
}

// ---- expand --------------------------------------------------------------

#[test]
fn expand_plain_list_and_tuple() {
    let a = dict(&[("ip", s("10.0.0.1"))]);
    let b = dict(&[("ip", s("10.0.0.2"))]);
    assert_eq!(
        expand_ok(&list(&[a.clone(), b.clone()])),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(expand_ok(&tuple(std::slice::from_ref(&a))), vec![a]);
    assert_eq!(expand_ok(&list(&[])), vec![]);
}

#[test]
fn expand_generate_and_concat() {
    let model = dict(&[("hostname", s("h1-2"))]);
    let extra = dict(&[("hostname", s("special"))]);
    let v = Value::Concat(vec![
        Value::Generate(Box::new(model.clone())),
        list(std::slice::from_ref(&extra)),
        Value::Generate(Box::new(dict(&[("hostname", s("z5-4"))]))),
    ]);
    assert!(uses_generate(&v));
    let entries = expand_ok(&v);
    assert_eq!(
        column(&entries, "hostname"),
        strs(&["h1", "h2", "special", "z5", "z4"])
    );
    assert!(uses_generate(&Value::Generate(Box::new(model))));
    assert!(!uses_generate(&list(&[extra])));
}

#[test]
fn expand_rejects_bad_entries_by_index() {
    let good = dict(&[("ip", s("10.0.0.1"))]);
    let err = expand(&list(&[good.clone(), good.clone(), s("oops")])).err();
    assert!(
        matches!(
            err,
            Some(CmdbError::EntryNotDict {
                index: 3,
                found: "a string"
            })
        ),
        "{err:?}"
    );
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("entry 3"), "{text}");

    let bad_key = Value::Dict(vec![(int(1), s("x"))]);
    let err = expand(&Value::Concat(vec![list(&[good]), list(&[bad_key])])).err();
    assert!(
        matches!(
            err,
            Some(CmdbError::KeyNotString {
                index: 2,
                found: "an integer"
            })
        ),
        "{err:?}"
    );
}

#[test]
fn expand_rejects_values_that_are_not_lists() {
    let err = expand(&dict(&[("ip", s("10.0.0.1"))])).err();
    assert!(
        matches!(err, Some(CmdbError::NotAList { found: "a dict" })),
        "{err:?}"
    );
    let err = expand(&Value::Concat(vec![list(&[]), int(3)])).err();
    assert!(
        matches!(
            err,
            Some(CmdbError::NotAList {
                found: "an integer"
            })
        ),
        "{err:?}"
    );
    let err = expand(&Value::Generate(Box::new(list(&[])))).err();
    assert!(
        matches!(err, Some(CmdbError::ModelNotDict { .. })),
        "{err:?}"
    );
}

// ---- allocate ------------------------------------------------------------

fn seed_cmdb() -> Vec<Value> {
    (3..=7)
        .map(|n| {
            dict(&[
                ("ip", s(&format!("10.0.0.{n}"))),
                ("hostname", s(&format!("host0{n}"))),
            ])
        })
        .collect()
}

fn seed_vars(mac: &str) -> IndexMap<String, String> {
    map(&[("disk", "vda"), ("eth", "eth0"), ("mac", mac)])
}

#[test]
fn allocation_merges_vars_and_marks_used() {
    let mut entries = seed_cmdb();
    let untouched = seed_cmdb();
    let none = IndexMap::new();
    let vars = seed_vars("52:54:00:88:17:3c");
    let got = allocate("kvm", &mut entries, &vars, &none);
    let got = match got {
        Ok(got) => got,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(got.index, 0);
    assert!(!got.reused);
    assert_eq!(
        entries[0],
        dict(&[
            ("ip", s("10.0.0.3")),
            ("hostname", s("host03")),
            ("disk", s("vda")),
            ("eth", s("eth0")),
            ("mac", s("52:54:00:88:17:3c")),
            ("used", int(1)),
        ])
    );
    assert_eq!(entries[1..], untouched[1..]);
    let keys: Vec<&str> = got.vars.keys().map(String::as_str).collect();
    assert_eq!(keys, ["ip", "hostname", "disk", "eth", "mac"]);
    assert_eq!(got.vars.get("hostname"), Some(&s("host03")));

    // Same node again: same entry, reused.
    let again = allocate("kvm", &mut entries, &vars, &none);
    assert!(
        matches!(&again, Ok(a) if a.index == 0 && a.reused),
        "{again:?}"
    );
    assert_eq!(entries[1..], untouched[1..]);

    // Another node: the next free entry.
    let other = allocate("kvm", &mut entries, &seed_vars("52:54:00:88:17:3d"), &none);
    assert!(
        matches!(&other, Ok(a) if a.index == 1 && !a.reused),
        "{other:?}"
    );
    assert_eq!(entries[1].get("hostname"), Some(&s("host04")));
    assert_eq!(entries[1].get("used"), Some(&int(1)));
    assert_eq!(find_owner(&entries, &vars, &none), Some(0));
    assert_eq!(
        find_owner(&entries, &seed_vars("52:54:00:88:17:3d"), &none),
        Some(1)
    );
    assert_eq!(find_owner(&entries, &seed_vars("aa:bb"), &none), None);
}

#[test]
fn entry_value_wins_over_var() {
    let mut entries = vec![dict(&[("hostname", s("db1")), ("eth", s("eth1"))])];
    let vars = map(&[("eth", "eth0"), ("disk", "sda")]);
    let got = allocate("db", &mut entries, &vars, &IndexMap::new());
    let got = match got {
        Ok(got) => got,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(got.vars.get("eth"), Some(&s("eth1")));
    assert_eq!(
        entries[0],
        dict(&[
            ("hostname", s("db1")),
            ("eth", s("eth1")),
            ("disk", s("sda")),
            ("used", int(1)),
        ])
    );
}

#[test]
fn used_key_is_replaced_in_place() {
    let mut entries = vec![dict(&[("used", int(0)), ("hostname", s("a"))])];
    let vars = map(&[("hostname", "a")]);
    let got = allocate("p", &mut entries, &vars, &IndexMap::new());
    assert!(matches!(&got, Ok(a) if a.index == 0 && a.reused), "{got:?}");
    assert_eq!(entries[0], dict(&[("used", int(1)), ("hostname", s("a"))]));
    assert!(matches!(&got, Ok(a) if !a.vars.contains_key("used")));
}

fn tag_cmdb() -> Vec<Value> {
    expand_ok(&Value::Generate(Box::new(dict(&[
        ("tag", tuple(&strs(&["TAG1", "TAG2", "TAG3"]))),
        ("ip", s("")),
        ("hostname", s("host3-5")),
    ]))))
}

#[test]
fn forced_tag_picks_its_entry() {
    let mut entries = tag_cmdb();
    let vars = map(&[("tag", "TAG2"), ("mac", "aa")]);
    let forced = map(&[("tag", "TAG2")]);
    let got = allocate("tagged", &mut entries, &vars, &forced);
    assert!(
        matches!(&got, Ok(a) if a.index == 1 && !a.reused),
        "{got:?}"
    );
    assert_eq!(entries[1].get("hostname"), Some(&s("host4")));
    assert_eq!(entries[1].get("mac"), Some(&s("aa")));
    assert_eq!(entries[0].get("used"), None);
    // The same tag again is the same (now used) entry.
    let again = allocate("tagged", &mut entries, &vars, &forced);
    assert!(
        matches!(&again, Ok(a) if a.index == 1 && a.reused),
        "{again:?}"
    );
    assert_eq!(find_owner(&entries, &vars, &forced), Some(1));
}

#[test]
fn forced_tag_without_entry_is_its_own_error() {
    let mut entries = tag_cmdb();
    let forced = map(&[("tag", "TAG9")]);
    let err = allocate("tagged", &mut entries, &forced, &forced).err();
    assert!(
        matches!(&err, Some(CmdbError::NoForcedEntry { profile, .. }) if profile == "tagged"),
        "{err:?}"
    );
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("no entry of tagged's CMDB matches tag='TAG9'")
    );
    // Nothing was consumed.
    assert!(entries.iter().all(|e| e.get("used").is_none()));
}

#[test]
fn exhausted_cmdb_is_its_own_error() {
    let mut entries = tag_cmdb();
    let none = IndexMap::new();
    for (i, mac) in ["m1", "m2", "m3"].iter().enumerate() {
        let got = allocate("tagged", &mut entries, &map(&[("mac", mac)]), &none);
        assert!(matches!(&got, Ok(a) if a.index == i), "{got:?}");
    }
    let err = allocate("tagged", &mut entries, &map(&[("mac", "m4")]), &none).err();
    assert!(
        matches!(&err, Some(CmdbError::Exhausted { profile }) if profile == "tagged"),
        "{err:?}"
    );
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("no more entries in the CMDB of tagged")
    );
}

#[test]
fn numbers_in_entries_match_var_text() {
    let mut entries = vec![
        dict(&[("slot", int(4)), ("hostname", s("a"))]),
        dict(&[("slot", int(5)), ("hostname", s("b"))]),
        dict(&[("slot", Value::Float(2.5)), ("hostname", s("c"))]),
        dict(&[("slot", Value::Bool(true)), ("hostname", s("d"))]),
    ];
    let none = IndexMap::new();
    let got = allocate("p", &mut entries, &map(&[("slot", "5")]), &none);
    assert!(matches!(&got, Ok(a) if a.index == 1), "{got:?}");
    assert!(matches!(&got, Ok(a) if a.vars.get("slot") == Some(&int(5))));
    let got = allocate("p", &mut entries, &none, &map(&[("slot", "2.5")]));
    assert!(matches!(&got, Ok(a) if a.index == 2), "{got:?}");
    // Booleans are not numbers: no entry for a forced "True".
    let err = allocate("p", &mut entries, &none, &map(&[("slot", "True")])).err();
    assert!(
        matches!(err, Some(CmdbError::NoForcedEntry { .. })),
        "{err:?}"
    );
}

#[test]
fn empty_vars_take_the_next_free_entry() {
    let mut entries = seed_cmdb();
    let none = IndexMap::new();
    for want in 0..2 {
        let got = allocate("p", &mut entries, &none, &none);
        assert!(
            matches!(&got, Ok(a) if a.index == want && !a.reused),
            "{got:?}"
        );
    }
    assert_eq!(find_owner(&entries, &none, &none), None);
}

#[test]
fn allocate_rejects_bad_entries() {
    let mut entries = vec![dict(&[("ip", s("1"))]), int(3)];
    let err = allocate("p", &mut entries, &IndexMap::new(), &IndexMap::new()).err();
    assert!(
        matches!(err, Some(CmdbError::EntryNotDict { index: 2, .. })),
        "{err:?}"
    );
}

// ---- check and JSON -------------------------------------------------------

#[test]
fn check_finds_duplicates_and_used_entries() {
    let entries = vec![
        dict(&[
            ("ip", s("10.0.0.1")),
            ("hostname", s("a")),
            ("mac", s("52:54:00:AA:00:01")),
            ("used", int(1)),
        ]),
        dict(&[
            ("ip", s("10.0.0.2")),
            ("hostname", s("b")),
            ("ip-ipmi", s("10.0.0.1")),
        ]),
        dict(&[
            ("ip", s("")),
            ("hostname", s("a")),
            ("bmc-mac", s("52:54:00:aa:00:01")),
            ("used", int(1)),
        ]),
        dict(&[
            ("ip", s("")),
            ("hostname", s("d")),
            ("ip-io", s("10.0.1.1")),
        ]),
    ];
    let report = check(&entries);
    assert!(report.has_duplicates());
    assert_eq!(report.total, 4);
    assert_eq!(report.used, vec![1, 3]);
    assert_eq!(report.duplicates.len(), 3, "{report}");

    let ip = &report.duplicates[0];
    assert_eq!(ip.kind, DuplicateKind::Ip);
    assert_eq!(ip.value, "10.0.0.1");
    assert_eq!(ip.keys, vec!["ip".to_string(), "ip-ipmi".to_string()]);
    assert_eq!(ip.entries, vec![1, 2]);

    let host = &report.duplicates[1];
    assert_eq!(host.kind, DuplicateKind::Hostname);
    assert_eq!(host.value, "a");
    assert_eq!(host.entries, vec![1, 3]);

    let mac = &report.duplicates[2];
    assert_eq!(mac.kind, DuplicateKind::Mac);
    assert_eq!(mac.entries, vec![1, 3]);
    assert_eq!(mac.keys, vec!["mac".to_string(), "bmc-mac".to_string()]);

    let text = report.to_string();
    assert!(text.contains("10.0.0.1"), "{text}");
    assert!(text.contains("entries 1, 3"), "{text}");
    assert!(text.contains("used entries: 1, 3"), "{text}");
}

#[test]
fn check_of_a_clean_cmdb() {
    let report = check(&tag_cmdb());
    assert!(!report.has_duplicates(), "{report}");
    assert!(report.used.is_empty());
    assert_eq!(report.total, 3);
    assert!(report.to_string().contains("no duplicates"));
}

#[test]
fn json_keeps_key_order_and_types() {
    let entries = vec![dict(&[
        ("z", s("last?")),
        ("a", int(1)),
        ("f", Value::Float(0.5)),
        ("b", Value::Bool(false)),
        ("n", Value::None),
        ("l", tuple(&[int(1), s("x")])),
        ("d", dict(&[("k", list(&[]))])),
    ])];
    let json = to_json(&entries);
    assert_eq!(
        json.to_string(),
        r#"[{"z":"last?","a":1,"f":0.5,"b":false,"n":null,"l":[1,"x"],"d":{"k":[]}}]"#
    );
}

// ---- properties -----------------------------------------------------------

proptest! {
    #[test]
    fn generate_length_is_the_shortest_generator(
        prefix in "[a-z]{1,6}",
        ranges in proptest::collection::vec((0u32..300, 0u32..300), 1..4),
        lists in proptest::collection::vec(0usize..400, 0..3),
    ) {
        let mut items = Vec::new();
        let mut lengths = Vec::new();
        for (i, (a, b)) in ranges.iter().enumerate() {
            items.push((format!("r{i}"), s(&format!("{prefix}{a:02}-{b:02}"))));
            lengths.push(a.abs_diff(*b) as usize + 1);
        }
        for (i, n) in lists.iter().enumerate() {
            let values: Vec<Value> = (0..*n).map(|k| int(k as i128)).collect();
            items.push((format!("l{i}"), list(&values)));
            lengths.push(*n);
        }
        items.push(("fixed".to_string(), s("same")));
        let model = Value::Dict(items.into_iter().map(|(k, v)| (s(&k), v)).collect());
        let entries = generate(&model);
        prop_assert!(entries.is_ok(), "{:?}", entries.err());
        let entries = entries.unwrap_or_default();
        let shortest = lengths.iter().copied().min().unwrap_or(1);
        prop_assert_eq!(entries.len(), shortest);
        for entry in &entries {
            prop_assert_eq!(entry.get("fixed"), Some(&s("same")));
        }
        if let (Some(first), Some((a, _))) = (entries.first(), ranges.first()) {
            prop_assert_eq!(first.get("r0"), Some(&s(&format!("{prefix}{a:02}"))));
        }
    }
}

#[test]
fn allocation_says_whether_the_entry_changed() {
    let mut entries = seed_cmdb();
    let none = IndexMap::new();
    let vars = seed_vars("52:54:00:88:17:3c");
    let first = allocate("kvm", &mut entries, &vars, &none).expect("an entry");
    assert!(first.changed);
    let after = entries.clone();
    // The same node again: the entry already holds everything.
    let again = allocate("kvm", &mut entries, &vars, &none).expect("the same entry");
    assert!(again.reused && !again.changed);
    assert_eq!(entries, after);
    // An entry marked used by hand with another value: `used` becomes 1.
    let mut entries = vec![dict(&[
        ("ip", s("10.0.0.1")),
        ("mac", s("m1")),
        ("used", s("yes")),
    ])];
    let got =
        allocate("kvm", &mut entries, &map(&[("mac", "m1")]), &none).expect("the node's entry");
    assert!(got.reused && got.changed);
    assert_eq!(entries[0].get("used"), Some(&int(1)));
}

#[test]
fn expand_owned_is_expand() {
    let cases = [
        list(&[
            dict(&[("ip", s("10.0.0.1"))]),
            dict(&[("ip", s("10.0.0.2"))]),
        ]),
        tuple(&[dict(&[("ip", s("10.0.0.1"))])]),
        Value::Generate(Box::new(dict(&[("ip", s("10.0.0.1-3"))]))),
        Value::Concat(vec![
            list(&[dict(&[("a", s("1"))])]),
            Value::Generate(Box::new(dict(&[("ip", s("10.0.0.1-2"))]))),
        ]),
        list(&[dict(&[("ip", s("x"))]), s("not a dict")]),
        list(&[Value::Dict(vec![(int(1), s("x"))])]),
        s("not a list"),
    ];
    for v in cases {
        let by_ref = expand(&v).map_err(|e| e.to_string());
        let owned = expand_owned(v.clone()).map_err(|e| e.to_string());
        assert_eq!(owned, by_ref, "{v:?}");
    }
}
