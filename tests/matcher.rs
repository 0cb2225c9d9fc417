//! Behaviour of `edeploy::matcher` against hand-written cases, the kvm
//! fixture, adversarial disk lists and an independent brute-force reference.

use edeploy::hw::Line;
use edeploy::matcher::{format_line, Budget, Hardware, Match, Miss, NoMatch, Specs};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn line(a: &str, b: &str, c: &str, d: &str) -> Line {
    [a.into(), b.into(), c.into(), d.into()]
}

fn lines(rows: &[[&str; 4]]) -> Vec<Line> {
    rows.iter().map(|r| line(r[0], r[1], r[2], r[3])).collect()
}

fn compile(rows: &[[&str; 4]]) -> Specs {
    match Specs::compile(&lines(rows)) {
        Ok(specs) => specs,
        Err(e) => panic!("specs should compile: {e}"),
    }
}

fn found(specs: &Specs, hw: &[Line]) -> Match {
    match specs.find(hw) {
        Ok(m) => m,
        Err(e) => panic!("expected a match: {e}"),
    }
}

fn vars(m: &Match) -> Vec<(&str, &str)> {
    m.vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Whether the single-position spec `value` accepts the hardware value.
fn accepts(value: &str, hw_value: &str) -> bool {
    let specs = compile(&[["c", "n", "k", value]]);
    specs.find(&[line("c", "n", "k", hw_value)]).is_ok()
}

/// Reads a hardware list fixture with the project's reader.
fn read_hw_fixture(name: &str) -> Vec<Line> {
    let path = format!("{}/tests/fixtures/hw/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    edeploy::hw::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------- functions

#[test]
fn literal_must_be_equal() {
    assert!(accepts("abc", "abc"));
    assert!(!accepts("abc", "abcd"));
    assert!(!accepts("abc", " abc"));
}

#[test]
fn numeric_comparisons() {
    assert!(accepts("gt(1)", "2"));
    assert!(!accepts("gt(1)", "1"));
    assert!(accepts("ge(1)", "1"));
    assert!(!accepts("ge(1)", "0"));
    assert!(accepts("lt(10)", "9"));
    assert!(!accepts("lt(10)", "10"));
    assert!(accepts("le(10)", "10"));
    assert!(!accepts("le(10)", "11"));
}

#[test]
fn numeric_comparisons_with_decimals_and_spaces() {
    assert!(accepts("gt(1.5)", "2"));
    assert!(accepts("gt(1)", "1.01"));
    assert!(!accepts("lt(2.5)", "2.5"));
    assert!(accepts("ge( 4 )", " 4 "));
    assert!(accepts("gt(536870911)", "536870912"));
    assert!(!accepts("gt(18446744073709551616)", "18446744073709551616"));
}

#[test]
fn non_numeric_value_fails_numeric_tests() {
    for f in ["gt(1)", "ge(1)", "lt(1)", "le(1)", "range(0, 10)"] {
        assert!(!accepts(f, "abc"), "{f}");
        assert!(!accepts(f, ""), "{f}");
        assert!(!accepts(f, "1a"), "{f}");
    }
}

#[test]
fn range_is_inclusive() {
    assert!(accepts("range(2, 4)", "2"));
    assert!(accepts("range(2, 4)", "4"));
    assert!(accepts("range(2, 4)", "3.5"));
    assert!(!accepts("range(2, 4)", "4.5"));
    assert!(!accepts("range(2, 4)", "1"));
}

#[test]
fn network_membership() {
    assert!(accepts("network(10.0.2.0/24)", "10.0.2.15"));
    assert!(!accepts("network(10.0.2.0/24)", "10.0.3.15"));
    assert!(accepts("network(10.0.2.99/24)", "10.0.2.1"));
    assert!(accepts("network(10.0.2.15)", "10.0.2.15"));
    assert!(!accepts("network(10.0.2.15)", "10.0.2.16"));
    assert!(accepts("network('10.0.0.0/8')", "10.200.1.1"));
}

#[test]
fn network_on_non_address_is_false() {
    for v in ["", "eth0", "10.0.2", "10.0.2.256", "::1", "10.0.2.0/24"] {
        assert!(!accepts("network(10.0.0.0/8)", v), "{v}");
    }
}

#[test]
fn regexp_is_searched_anywhere() {
    assert!(accepts("regexp(Virtual)", "QEMU Virtual CPU"));
    assert!(!accepts("regexp(^Virtual)", "QEMU Virtual CPU"));
    assert!(accepts("regexp(^sd[a-c]$)", "sdb"));
    assert!(!accepts("regexp(^sd[a-c]$)", "sdd"));
}

#[test]
fn regexp_argument_keeps_commas_and_loses_quotes() {
    assert!(accepts("regexp(^a{1,2}$)", "aa"));
    assert!(!accepts("regexp(^a{1,2}$)", "aaa"));
    assert!(accepts("regexp('^x, y$')", "x, y"));
    assert!(accepts("regexp( \"^(a|b)$\" )", "b"));
}

#[test]
fn invalid_regexp_is_a_compile_error() {
    let err = Specs::compile(&lines(&[
        ["disk", "$d", "size", "gt(1)"],
        ["cpu", "regexp(([)", "k", "v"],
    ]))
    .expect_err("invalid regex");
    assert_eq!(err.line, 2);
    assert_eq!(err.field, "name");
    assert!(err.to_string().contains("spec line 2"), "{err}");
}

#[test]
fn in_with_spaces_and_quotes() {
    assert!(accepts("in(a, b, c)", "b"));
    assert!(accepts("in( a ,b,  c  )", "c"));
    assert!(accepts("in('x y', \"z\")", "x y"));
    assert!(accepts("in('a,b', c)", "a,b"));
    assert!(!accepts("in(a, b, c)", "d"));
    assert!(!accepts("in(a, b, c)", " a"));
}

#[test]
fn quoted_numeric_arguments() {
    assert!(accepts("gt('1')", "2"));
    assert!(accepts("range(\"1\", '3')", "2"));
}

#[test]
fn not_and_or() {
    assert!(accepts("not(gt(4))", "3"));
    assert!(!accepts("not(gt(4))", "5"));
    assert!(accepts("and(gt(1), lt(4))", "3"));
    assert!(!accepts("and(gt(1), lt(4))", "4"));
    assert!(accepts("and(gt(1), lt(9), in(3, 5))", "5"));
    assert!(!accepts("and(gt(1), lt(9), in(3, 5))", "4"));
    assert!(accepts("or(lt(2), gt(8))", "9"));
    assert!(!accepts("or(lt(2), gt(8))", "5"));
    assert!(accepts("or(regexp(^a,b$), in(x))", "a,b"));
}

#[test]
fn nested_combinators() {
    let f = "not(and(gt(1), lt(4)))";
    assert!(accepts(f, "1"));
    assert!(!accepts(f, "2"));
    assert!(accepts(f, "4"));
    let g = "or(not(network(10.0.0.0/8)), and(regexp(\\.1$), not(in(10.0.0.1))))";
    assert!(accepts(g, "192.168.0.1"));
    assert!(accepts(g, "10.1.1.1"));
    assert!(!accepts(g, "10.0.0.1"));
    assert!(!accepts(g, "10.1.1.2"));
}

#[test]
fn unknown_or_malformed_function_is_literal() {
    assert!(accepts("foo(x)", "foo(x)"));
    assert!(!accepts("foo(x)", "x"));
    assert!(accepts("gt()", "gt()"));
    assert!(!accepts("gt()", "5"));
    assert!(accepts("edeploy_test_vm ()", "edeploy_test_vm ()"));
    assert!(accepts("in(a'b)", "in(a'b)"));
}

#[test]
fn wrong_argument_count_is_a_compile_error() {
    for (text, field) in [
        ("gt(1,2)", "value"),
        ("range(1)", "key"),
        ("not(gt(1), lt(2))", "class"),
    ] {
        let mut row = ["c", "n", "k", "v"];
        let p = ["class", "name", "key", "value"]
            .iter()
            .position(|f| *f == field)
            .expect("field");
        row[p] = text;
        let err = Specs::compile(&lines(&[["a", "b", "c", "d"], row])).expect_err(text);
        assert_eq!((err.line, err.field), (2, field), "{text}");
        let shown = err.to_string();
        assert!(
            shown.contains("spec line 2") && shown.contains(field),
            "{shown}"
        );
    }
}

#[test]
fn bad_function_arguments_are_compile_errors() {
    for text in ["gt(x)", "network(300.0.0.0/8)", "and(gt(1))", "not(abc)"] {
        assert!(
            Specs::compile(&lines(&[["c", "n", "k", text]])).is_err(),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------- variables

#[test]
fn variable_binds_then_must_agree() {
    let specs = compile(&[["disk", "$d", "size", "$s"], ["disk", "$d", "slot", "$s"]]);
    let hw = lines(&[
        ["disk", "sda", "size", "1"],
        ["disk", "sda", "slot", "2"],
        ["disk", "sdb", "size", "3"],
        ["disk", "sdb", "slot", "3"],
    ]);
    let m = found(&specs, &hw);
    assert_eq!(vars(&m), vec![("d", "sdb"), ("s", "3")]);
    assert_eq!(m.pairing, vec![2, 3]);
    assert!(m.forced.is_empty());
}

#[test]
fn variable_twice_in_one_line_takes_the_last_value() {
    let specs = compile(&[["b", "$c", "$c", "1"]]);
    let m = found(&specs, &lines(&[["b", "x", "y", "1"]]));
    assert_eq!(vars(&m), vec![("c", "y")]);
    assert_eq!(m.pairing, vec![0]);
    assert!(!m.beyond_reference);

    // Bound by the line itself, the variable binds the next line.
    let specs = compile(&[["b", "$c", "$c", "1"], ["d", "n", "k", "$c"]]);
    let hw = lines(&[
        ["d", "n", "k", "x"],
        ["b", "x", "y", "1"],
        ["d", "n", "k", "y"],
    ]);
    let m = found(&specs, &hw);
    assert_eq!(vars(&m), vec![("c", "y")]);
    assert_eq!(m.pairing, vec![1, 2]);
}

#[test]
fn variable_twice_in_one_line_already_bound_must_agree_everywhere() {
    let specs = compile(&[["a", "n", "k", "$c"], ["b", "$c", "$c", "1"]]);
    let hw = lines(&[
        ["a", "n", "k", "y"],
        ["b", "x", "y", "1"],
        ["b", "y", "x", "1"],
        ["b", "y", "y", "1"],
    ]);
    let m = found(&specs, &hw);
    assert_eq!(vars(&m), vec![("c", "y")]);
    assert_eq!(m.pairing, vec![0, 3]);

    // No line has the bound value at both positions: no match, and the
    // failure names the line holding the variable twice.
    let m = specs.find(&hw[..3]);
    assert_eq!(m.map_err(|e| e.spec_index), Err(1));
}

#[test]
fn variable_names_with_dashes() {
    let specs = compile(&[
        ["network", "$eth-io", "link", "yes"],
        ["network", "$eth", "link", "yes"],
    ]);
    let hw = lines(&[
        ["network", "eth0", "link", "yes"],
        ["network", "eth1", "link", "yes"],
    ]);
    let m = found(&specs, &hw);
    assert_eq!(vars(&m), vec![("eth-io", "eth0"), ("eth", "eth1")]);
}

#[test]
fn var_with_function_binds() {
    let specs = compile(&[["disk", "$d", "size", "$size=gt(1)"]]);
    let hw = lines(&[["disk", "sda", "size", "1"], ["disk", "sdb", "size", "8"]]);
    let m = found(&specs, &hw);
    assert_eq!(vars(&m), vec![("d", "sdb"), ("size", "8")]);
}

#[test]
fn var_with_function_already_bound_must_agree() {
    let specs = compile(&[
        ["disk", "sda", "size", "$s"],
        ["disk", "$d", "size", "$s=gt(1)"],
    ]);
    let hw = lines(&[
        ["disk", "sda", "size", "4"],
        ["disk", "sdb", "size", "8"],
        ["disk", "sdc", "size", "4"],
    ]);
    let m = found(&specs, &hw);
    assert_eq!(vars(&m), vec![("s", "4"), ("d", "sdc")]);

    // Bound to a value the function rejects: no match at all.
    let hw_small = lines(&[["disk", "sda", "size", "1"], ["disk", "sdc", "size", "1"]]);
    assert_eq!(specs.find(&hw_small).map_err(|e| e.spec_index), Err(1));
}

#[test]
fn equals_sign_not_followed_by_function_is_part_of_the_name() {
    let specs = compile(&[["c", "n", "k", "$a=b"], ["c", "m", "k", "$a=foo(1)"]]);
    let hw = lines(&[["c", "n", "k", "x"], ["c", "m", "k", "y"]]);
    let m = found(&specs, &hw);
    assert_eq!(vars(&m), vec![("a=b", "x"), ("a=foo(1)", "y")]);
}

#[test]
fn forced_variable() {
    let specs = compile(&[["system", "product", "serial", "$$tag"]]);
    let hw = lines(&[
        ["system", "product", "name", "x"],
        ["system", "product", "serial", "ABC123"],
    ]);
    let m = found(&specs, &hw);
    assert_eq!(m.forced.get("tag").map(String::as_str), Some("ABC123"));
    assert_eq!(m.vars.get("tag").map(String::as_str), Some("ABC123"));
    assert_eq!(m.forced.len(), 1);
}

#[test]
fn forced_and_plain_same_name_are_distinct_and_forced_wins() {
    let specs = compile(&[
        ["system", "product", "name", "$tag"],
        ["system", "product", "serial", "$$tag"],
    ]);
    let hw = lines(&[
        ["system", "product", "name", "N"],
        ["system", "product", "serial", "S"],
    ]);
    let m = found(&specs, &hw);
    assert_eq!(vars(&m), vec![("tag", "S")]);
    assert_eq!(m.forced.get("tag").map(String::as_str), Some("S"));
}

#[test]
fn each_hardware_line_used_once() {
    let specs = compile(&[["disk", "$a", "size", "4"], ["disk", "$b", "size", "4"]]);
    let one = lines(&[["disk", "sda", "size", "4"]]);
    let err = specs.find(&one).expect_err("only one disk");
    assert_eq!(err.spec_index, 1);
    let two = lines(&[["disk", "sda", "size", "4"], ["disk", "sdb", "size", "4"]]);
    assert_eq!(found(&specs, &two).pairing, vec![0, 1]);
}

#[test]
fn empty_specs_match_anything() {
    let specs = compile(&[]);
    let m = found(&specs, &lines(&[["a", "b", "c", "d"]]));
    assert!(m.vars.is_empty() && m.forced.is_empty() && m.pairing.is_empty());
    assert!(specs.find(&[]).is_ok());
}

#[test]
fn lines_are_kept() {
    let rows = [["disk", "$d", "size", "gt(1)"]];
    assert_eq!(compile(&rows).lines(), lines(&rows).as_slice());
}

// ---------------------------------------------------------------- failures

#[test]
fn failure_names_first_line_without_static_candidate() {
    let specs = compile(&[
        ["disk", "$d", "size", "gt(100)"],
        ["cpu", "$c", "number", "1"],
        ["memory", "total", "size", "gt(1)"],
    ]);
    let hw = lines(&[
        ["disk", "sda", "size", "4"],
        ["memory", "total", "size", "0"],
    ]);
    let err = specs.find(&hw).expect_err("no big disk");
    assert_eq!(err.spec_index, 0);
    assert_eq!(err.spec, line("disk", "$d", "size", "gt(100)"));
}

#[test]
fn failure_names_deepest_blocking_line() {
    let specs = compile(&[
        ["network", "$eth", "ipv4", "network(10.0.2.0/24)"],
        ["network", "$eth", "serial", "$mac"],
        ["network", "$eth", "link", "yes"],
    ]);
    let hw = lines(&[
        ["network", "eth0", "ipv4", "10.0.2.15"],
        ["network", "eth0", "serial", "aa"],
        ["network", "eth0", "link", "no"],
        ["network", "eth1", "link", "yes"],
    ]);
    let err = specs.find(&hw).expect_err("eth0 has no link");
    assert_eq!(err.spec_index, 2);
}

#[test]
fn failure_with_too_few_identical_lines() {
    let specs = compile(&[
        ["disk", "$d1", "size", "gt(1)"],
        ["disk", "$d2", "size", "gt(1)"],
        ["disk", "$d3", "size", "gt(1)"],
    ]);
    let hw = lines(&[["disk", "sda", "size", "4"], ["disk", "sdb", "size", "4"]]);
    assert_eq!(specs.find(&hw).map_err(|e| e.spec_index), Err(2));
}

#[test]
fn no_match_display() {
    let err = NoMatch {
        spec_index: 3,
        spec: line("disk", "$disk", "size", "gt(1)"),
    };
    assert_eq!(
        err.to_string(),
        "spec line 4 ('disk', '$disk', 'size', 'gt(1)') could not be paired with any hardware line"
    );
}

#[test]
fn format_line_quotes_like_python() {
    assert_eq!(
        format_line(&line("disk", "sda", "size", "4")),
        "('disk', 'sda', 'size', '4')"
    );
    assert_eq!(
        format_line(&line("it's", "a\"b", "x'\"", "\\")),
        "(\"it's\", 'a\"b', 'x\\'\"', '\\\\')"
    );
}

// ---------------------------------------------------------------- kvm fixture

fn kvm_specs() -> Specs {
    compile(&[
        ["system", "product", "vendor", "kvm"],
        ["system", "product", "name", "edeploy_test_vm ()"],
        ["disk", "$disk", "size", "gt(1)"],
        ["network", "$eth", "ipv4", "network(10.0.2.0/24)"],
        ["network", "$eth", "serial", "$mac"],
        ["network", "$eth", "link", "yes"],
        ["network", "$eth-io", "ipv4", "network(10.0.3.0/24)"],
        ["network", "$eth-io", "serial", "$mac-io"],
        ["network", "$eth-io", "link", "yes"],
        ["network", "$eth-mgmt", "link", "yes"],
        ["network", "$eth-mgmt", "serial", "$mac-mgmt"],
        ["system", "ipmi-fake", "channel", "$ipmi-fake-channel"],
    ])
}

#[test]
fn kvm_example() {
    let hw = read_hw_fixture("kvm-test-vm.hw");
    assert_eq!(hw.len(), 36);
    let m = found(&kvm_specs(), &hw);
    assert_eq!(
        vars(&m),
        vec![
            ("disk", "vda"),
            ("eth", "eth0"),
            ("mac", "52:54:12:34:00:01"),
            ("eth-io", "eth1"),
            ("mac-io", "52:54:12:34:00:02"),
            ("eth-mgmt", "eth2"),
            ("mac-mgmt", "52:54:12:34:00:03"),
            ("ipmi-fake-channel", "0"),
        ]
    );
    assert!(m.forced.is_empty());
    assert_eq!(m.pairing.len(), 12);
    assert_eq!(m.pairing[0], 3);
}

#[test]
fn kvm_example_fails_without_management_link() {
    let hw: Vec<Line> = read_hw_fixture("kvm-test-vm.hw")
        .into_iter()
        .filter(|l| !(l[1] == "eth2" && l[2] == "link"))
        .collect();
    let err = kvm_specs().find(&hw).expect_err("eth2 link removed");
    assert_eq!(err.spec_index, 9);
}

// ---------------------------------------------------------------- JBOD

fn jbod(n: usize) -> (Specs, Vec<Line>) {
    let mut hw = Vec::new();
    for k in 0..n {
        let slot = if k + 1 == n {
            "X".to_owned()
        } else {
            k.to_string()
        };
        hw.push(line("disk", &format!("sd{k}"), "size", "2000"));
        hw.push(line("disk", &format!("sd{k}"), "slot", &slot));
    }
    let mut specs: Vec<Line> = (0..n)
        .map(|k| line("disk", &format!("$d{k}"), "size", "2000"))
        .collect();
    specs.push(line("disk", "$d0", "slot", "X"));
    match Specs::compile(&specs) {
        Ok(s) => (s, hw),
        Err(e) => panic!("{e}"),
    }
}

fn check_jbod(n: usize) {
    let (specs, hw) = jbod(n);
    let m = found(&specs, &hw);
    assert_eq!(m.vars.len(), n);
    assert_eq!(m.vars.get("d0"), Some(&format!("sd{}", n - 1)));
    for k in 1..n {
        assert_eq!(
            m.vars.get(&format!("d{k}")),
            Some(&format!("sd{}", k - 1)),
            "d{k}"
        );
    }
    assert_eq!(m.pairing[n], 2 * n - 1);
}

#[test]
fn jbod_8() {
    check_jbod(8);
}

#[test]
fn jbod_24() {
    check_jbod(24);
}

#[test]
fn jbod_60() {
    check_jbod(60);
}

#[test]
fn jbod_one_disk_short_fails_on_last_disk_spec() {
    let (specs, mut hw) = jbod(12);
    hw.retain(|l| l[1] != "sd3");
    let err = specs.find(&hw).expect_err("11 disks for 12 specs");
    assert_eq!(err.spec_index, 11);
}

#[test]
fn explain_jbod_mentions_prune_and_is_capped() {
    let (specs, hw) = jbod(8);
    let (result, events) = specs.find_explained(&hw, 10_000);
    assert_eq!(result, specs.find(&hw));
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .any(|e| e.contains("prune") && e.contains("spec line 9")),
        "{events:#?}"
    );
    assert!(events.iter().any(|e| e.starts_with("try ")));
    assert!(events.iter().any(|e| e.contains("bind $d0")));
    assert_eq!(events.last().map(String::as_str), Some("match found"));

    let (_, capped) = specs.find_explained(&hw, 5);
    assert_eq!(capped.len(), 6);
    let more = format!("... {} more steps", events.len() - 5);
    assert_eq!(capped.last(), Some(&more));
}

#[test]
fn backtracking_retries_earlier_candidates() {
    // With `$a` = p, spec lines 2 and 3 each still have a candidate but not
    // jointly, which forward checking cannot see; after backtracking to
    // `$a` = q, spec line 2 must start again from its first candidate.
    let specs = compile(&[
        ["s", "$a", "-", "-"],
        ["t", "$a", "$b", "-"],
        ["u", "$a", "$b", "-"],
    ]);
    let hw = lines(&[
        ["s", "p", "-", "-"],
        ["s", "q", "-", "-"],
        ["t", "q", "1", "-"],
        ["t", "p", "1", "-"],
        ["t", "p", "2", "-"],
        ["u", "p", "3", "-"],
        ["u", "q", "1", "-"],
    ]);
    let (result, events) = specs.find_explained(&hw, 1000);
    assert_eq!(result.map(|m| m.pairing), Ok(vec![1, 2, 6]));
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("retry spec line 1 ('s', '$a', '-', '-') at level 1")),
        "{events:#?}"
    );

    let (result, events) = specs.find_explained(&hw[..5], 1000);
    assert_eq!(result.map_err(|e| e.spec_index), Err(2));
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("no match: spec line 3")),
        "{events:#?}"
    );
}

// ---------------------------------------------------------------- reference

/// Variable bindings in order of first use.
type Bindings = Vec<(String, String)>;

/// One spec line against one hardware line, in the generated spec
/// language: literal, `$a`..`$c`, `gt(n)`, `$a=le(n)`. A variable bound
/// before the line must be equal at each of its positions; the others are
/// bound after the line fits, position by position, the last one winning
/// (the reference's `match_spec`).
fn line_ok(spec: &Line, hw: &Line, vars: &mut Vec<(String, String)>) -> bool {
    let mut binds = Vec::new();
    for p in 0..4 {
        match position_ok(&spec[p], &hw[p]) {
            Some(None) => {}
            Some(Some(name)) => match vars.iter().find(|(n, _)| n == name) {
                Some((_, bound)) if *bound != hw[p] => return false,
                Some(_) => {}
                None => binds.push((name, hw[p].as_str())),
            },
            None => return false,
        }
    }
    for (name, value) in binds {
        match vars.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.to_owned(),
            None => vars.push((name.to_owned(), value.to_owned())),
        }
    }
    true
}

/// Whether one position fits, ignoring bindings: `Some(Some(name))` when it
/// is the variable `name`.
fn position_ok<'s>(spec: &'s str, value: &str) -> Option<Option<&'s str>> {
    fn number(text: &str) -> Option<f64> {
        text.trim().parse::<f64>().ok()
    }
    if let Some(rest) = spec.strip_prefix('$') {
        if let Some((name, bound)) = rest.split_once("=le(") {
            let limit = bound.trim_end_matches(')');
            let fits = match (number(value), number(limit)) {
                (Some(v), Some(l)) => v <= l,
                _ => false,
            };
            return fits.then_some(Some(name));
        }
        return Some(Some(rest));
    }
    if let Some(limit) = spec.strip_prefix("gt(").and_then(|s| s.strip_suffix(')')) {
        return match (number(value), number(limit)) {
            (Some(v), Some(l)) if v > l => Some(None),
            _ => None,
        };
    }
    (spec == value).then_some(None)
}

/// Bindings in order of first use when `pairing` satisfies the specs.
fn verify(specs: &[Line], hw: &[Line], pairing: &[usize]) -> Option<Vec<(String, String)>> {
    if pairing.len() != specs.len() {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    if !pairing.iter().all(|&j| j < hw.len() && seen.insert(j)) {
        return None;
    }
    let mut vars = Vec::new();
    for (spec, &j) in specs.iter().zip(pairing) {
        if !line_ok(spec, &hw[j], &mut vars) {
            return None;
        }
    }
    Some(vars)
}

/// First injective assignment, in lexicographic order, that verifies.
fn brute_force(specs: &[Line], hw: &[Line]) -> Option<(Vec<usize>, Bindings)> {
    fn walk(
        specs: &[Line],
        hw: &[Line],
        chosen: &mut Vec<usize>,
    ) -> Option<(Vec<usize>, Bindings)> {
        if chosen.len() == specs.len() {
            return verify(specs, hw, chosen).map(|v| (chosen.clone(), v));
        }
        for j in 0..hw.len() {
            if chosen.contains(&j) {
                continue;
            }
            chosen.push(j);
            let found = walk(specs, hw, chosen);
            chosen.pop();
            if found.is_some() {
                return found;
            }
        }
        None
    }
    walk(specs, hw, &mut Vec::new())
}

fn spec_position() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec!["a", "b", "1", "2"]).prop_map(str::to_owned),
        3 => prop::sample::select(vec!["$a", "$b", "$c"]).prop_map(str::to_owned),
        1 => (0..4u8).prop_map(|n| format!("gt({n})")),
        1 => (0..4u8).prop_map(|n| format!("$a=le({n})")),
    ]
    .boxed()
}

fn hw_position() -> BoxedStrategy<String> {
    prop::sample::select(vec!["a", "b", "1", "2", "3"])
        .prop_map(str::to_owned)
        .boxed()
}

fn four(s: BoxedStrategy<String>) -> impl Strategy<Value = Line> {
    (s.clone(), s.clone(), s.clone(), s).prop_map(|(a, b, c, d)| [a, b, c, d])
}

/// How a spec position is derived from a chosen hardware line.
#[derive(Clone, Debug)]
enum Derive {
    Copy,
    Literal(&'static str),
    Var(&'static str),
    Gt(u8),
    BindLe(u8),
}

/// Weights of copy / literal / variable / `gt(n)` / `$a=le(n)`.
fn derive(weights: [u32; 5]) -> BoxedStrategy<Derive> {
    prop_oneof![
        weights[0] => Just(Derive::Copy),
        weights[1] => prop::sample::select(vec!["a", "1", "2"]).prop_map(Derive::Literal),
        weights[2] => prop::sample::select(vec!["$a", "$b", "$c"]).prop_map(Derive::Var),
        weights[3] => (0..4u8).prop_map(Derive::Gt),
        weights[4] => (0..4u8).prop_map(Derive::BindLe),
    ]
    .boxed()
}

/// Spec lines shaped like real ones (literal class and key, variable name,
/// value tested or bound), each derived from a hardware line so that most
/// cases get past the first line and exercise the search itself.
fn derived_case() -> impl Strategy<Value = (Vec<Line>, Vec<Line>)> {
    let template = (
        any::<prop::sample::Index>(),
        [
            derive([20, 1, 0, 0, 0]),
            derive([1, 0, 5, 0, 0]),
            derive([20, 0, 1, 0, 0]),
            derive([3, 1, 5, 1, 1]),
        ],
    );
    let value = prop::sample::select(vec!["a", "1", "2"]).prop_map(str::to_owned);
    let hw_line = [value.clone(), value.clone(), value.clone(), value];
    (
        prop::collection::vec(template, 1..=5),
        prop::collection::vec(hw_line, 1..=8),
    )
        .prop_map(|(templates, hw)| {
            let specs = templates
                .iter()
                .map(|(index, how)| {
                    let source = &hw[index.index(hw.len())];
                    std::array::from_fn(|p| {
                        let numeric = source[p].parse::<f64>().is_ok();
                        match how[p] {
                            Derive::Literal(s) => s.to_owned(),
                            Derive::Var(v) => v.to_owned(),
                            Derive::Gt(n) if numeric => format!("gt({n})"),
                            Derive::BindLe(n) if numeric => format!("$a=le({n})"),
                            _ => source[p].clone(),
                        }
                    })
                })
                .collect();
            (specs, hw)
        })
}

// ------------------------------------------------- the reference's order

/// An insertion-ordered map, like a Python dict.
type Dict = Vec<(String, String)>;

fn dict_set(dict: &mut Dict, key: &str, value: &str) {
    match dict.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.to_owned(),
        None => dict.push((key.to_owned(), value.to_owned())),
    }
}

/// The reference's `match_spec`: the first line equal to the spec line,
/// else the first line it fits (with the fit of the generated language),
/// removed from `lines`.
fn model_match_spec(
    spec: &Line,
    hw: &[Line],
    lines: &mut Vec<usize>,
    arr: &mut Dict,
) -> Option<usize> {
    if let Some(at) = lines.iter().position(|&j| hw[j] == *spec) {
        return Some(lines.remove(at));
    }
    for at in 0..lines.len() {
        let mut env = arr.clone();
        if line_ok(spec, &hw[lines[at]], &mut env) {
            *arr = env;
            return Some(lines.remove(at));
        }
    }
    None
}

/// What every call of the model shares.
struct Model<'a> {
    specs: &'a [Line],
    hw: &'a [Line],
    /// The reference's `arr2`.
    forced: Dict,
    /// The pairing of the call that matched.
    answer: Vec<usize>,
}

/// The reference's `match_all`, written plainly: copies of the list, the
/// retry points, the line moved to the end, the level cap and the `$$`
/// renaming. `pairing` holds the lines of the spec lines before `start`.
fn model_match_all(
    model: &mut Model<'_>,
    mut lines: Vec<usize>,
    start: usize,
    arr: &mut Dict,
    mut pairing: Vec<usize>,
    level: usize,
) -> bool {
    if level == 50 {
        return false;
    }
    let mut copy_arr = arr.clone();
    let mut points: Vec<(Vec<usize>, usize, Dict, Vec<usize>)> = Vec::new();
    for i in start..model.specs.len() {
        let before = pairing.clone();
        match model_match_spec(&model.specs[i], model.hw, &mut lines, arr) {
            Some(j) => {
                pairing.push(j);
                if *arr != copy_arr {
                    let mut copy_lines = lines.clone();
                    copy_lines.push(j);
                    points.push((copy_lines, i, copy_arr.clone(), before));
                    copy_arr = arr.clone();
                }
            }
            None => {
                while let Some((lines, at, mut new_arr, before)) = points.pop() {
                    if model_match_all(model, lines, at, &mut new_arr, before, level + 1) {
                        for (k, v) in &new_arr {
                            dict_set(arr, k, v);
                        }
                        return true;
                    }
                }
                return false;
            }
        }
    }
    let keys: Vec<String> = arr.iter().map(|(k, _)| k.clone()).collect();
    for key in keys {
        if let Some(name) = key.strip_prefix('$') {
            let value = arr
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            dict_set(arr, name, &value);
            dict_set(&mut model.forced, name, &value);
            arr.retain(|(k, _)| *k != key);
        }
    }
    model.answer = pairing;
    true
}

/// The reference's answer: `(pairing, vars, forced)`, or `None`.
fn model_reference(specs: &[Line], hw: &[Line]) -> Option<(Vec<usize>, Dict, Dict)> {
    let mut model = Model {
        specs,
        hw,
        forced: Dict::new(),
        answer: Vec::new(),
    };
    let mut arr = Dict::new();
    let lines = (0..hw.len()).collect();
    model_match_all(&mut model, lines, 0, &mut arr, Vec::new(), 0).then_some((
        model.answer,
        arr,
        model.forced,
    ))
}

fn check_against_brute_force(specs: &[Line], hw: &[Line]) -> Result<(), TestCaseError> {
    let compiled = Specs::compile(specs).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let first = brute_force(specs, hw);
    let reference = model_reference(specs, hw);
    // The indexed search gives the same answer, failures included.
    prop_assert_eq!(compiled.find_in(&Hardware::new(hw)), compiled.find(hw));
    match compiled.find(hw) {
        Ok(m) => {
            let bound = verify(specs, hw, &m.pairing);
            prop_assert!(
                bound.is_some(),
                "returned pairing {:?} does not satisfy the specs",
                m.pairing
            );
            let got: Dict = m.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let got_forced: Dict = m
                .forced
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            match reference {
                Some((pairing, vars, forced)) => {
                    prop_assert!(!m.beyond_reference);
                    prop_assert_eq!(m.pairing, pairing);
                    prop_assert_eq!(got, vars);
                    prop_assert_eq!(got_forced, forced);
                }
                None => {
                    // Beyond the reference: the first pairing in file order.
                    prop_assert!(m.beyond_reference);
                    let (pairing, _) = first.unwrap_or_default();
                    prop_assert_eq!(m.pairing, pairing);
                }
            }
        }
        Err(e) => {
            prop_assert!(first.is_none(), "brute force found {:?}", first);
            prop_assert!(reference.is_none(), "the reference found {:?}", reference);
            prop_assert!(e.spec_index < specs.len());
            prop_assert_eq!(&e.spec, &specs[e.spec_index]);
        }
    }
    Ok(())
}

/// Cases that backtrack: few names, the same variables on several lines,
/// near-duplicate hardware lines, numeric tests, `$$` variables.
fn linked_case() -> impl Strategy<Value = (Vec<Line>, Vec<Line>)> {
    let name =
        prop::sample::select(vec!["$a", "$b", "$c", "$$a", "x", "y"]).prop_map(str::to_owned);
    let key = prop::sample::select(vec!["s", "m", "$k"]).prop_map(str::to_owned);
    let value = prop_oneof![
        3 => prop::sample::select(vec!["1", "2", "$v", "$w", "$$v"]).prop_map(str::to_owned),
        1 => (0..3u8).prop_map(|n| format!("gt({n})")),
        1 => (1..4u8).prop_map(|n| format!("$w=le({n})")),
    ];
    let spec = (name, key, value).prop_map(|(n, k, v)| ["d".to_owned(), n, k, v]);
    let hw_line = (
        prop::sample::select(vec!["x", "y", "z", "w"]),
        prop::sample::select(vec!["s", "m"]),
        prop::sample::select(vec!["1", "2", "3"]),
    )
        .prop_map(|(n, k, v)| line("d", n, k, v));
    (
        prop::collection::vec(spec, 1..=5),
        prop::collection::vec(hw_line, 1..=8),
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/matcher.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn matcher_agrees_with_brute_force(
        specs in prop::collection::vec(four(spec_position()), 1..=5),
        hw in prop::collection::vec(four(hw_position()), 1..=8),
    ) {
        check_against_brute_force(&specs, &hw)?;
    }

    #[test]
    fn matcher_agrees_with_brute_force_on_derived_specs(case in derived_case()) {
        check_against_brute_force(&case.0, &case.1)?;
    }

    #[test]
    fn explained_search_gives_the_same_answer(
        specs in prop::collection::vec(four(spec_position()), 1..=5),
        hw in prop::collection::vec(four(hw_position()), 1..=8),
    ) {
        let compiled = Specs::compile(&specs).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (explained, events) = compiled.find_explained(&hw, 50);
        prop_assert_eq!(explained, compiled.find(&hw));
        prop_assert!(!events.is_empty() && events.len() <= 51);
    }

    #[test]
    fn arbitrary_text_never_panics(
        specs in prop::collection::vec(four(prop_oneof![
            any::<String>(),
            "[a-z$=(),'\" 0-9./]{0,14}",
            "(gt|ge|lt|le|in|range|network|regexp|not|and|or)\\([ -~]{0,10}\\)",
            "\\$[a-c]=(gt|in|not|and|or)\\([ -~]{0,10}\\)",
        ].boxed()), 0..=4),
        hw in prop::collection::vec(four(prop_oneof![
            any::<String>(),
            "[ab0-9. ]{0,6}",
        ].boxed()), 0..=6),
    ) {
        if let Ok(compiled) = Specs::compile(&specs) {
            let found = compiled.find(&hw);
            prop_assert_eq!(compiled.find_in(&Hardware::new(&hw)), found);
            let _ = compiled.find_explained(&hw, 20);
        }
    }

    #[test]
    fn regexp_without_special_characters_is_a_substring_search(
        pattern in "[a-cé .+*?()|^$#&~\\-]{1,6}",
        value in "[a-cé .+*?()|^$#&~\\-]{0,8}",
    ) {
        // Patterns without special characters skip the regex engine: the
        // answers must be the engine's.
        let pattern = pattern.trim();
        prop_assume!(!pattern.is_empty());
        let text = format!("regexp({pattern})");
        let spec = [["c", "n", "k", text.as_str()]];
        let hw = [line("c", "n", "k", &value)];
        match regex::Regex::new(pattern) {
            Ok(re) => {
                let specs = Specs::compile(&lines(&spec))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(specs.find(&hw).is_ok(), re.is_match(&value));
                // Compiled again (from the cache when it is a regex).
                let again = Specs::compile(&lines(&spec))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(again.find(&hw).is_ok(), re.is_match(&value));
            }
            Err(_) => prop_assert!(Specs::compile(&lines(&spec)).is_err()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/matcher.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn matcher_follows_the_reference_on_linked_specs(case in linked_case()) {
        check_against_brute_force(&case.0, &case.1)?;
    }
}

#[test]
fn indexed_search_on_the_kvm_example() {
    let hw = read_hw_fixture("kvm-test-vm.hw");
    let specs = kvm_specs();
    let index = Hardware::new(&hw);
    assert_eq!(index.lines().len(), hw.len());
    assert_eq!(specs.find_in(&index), specs.find(&hw));
    // A class absent from the list, and a class given by a variable.
    let absent = compile(&[["tape", "$t", "size", "gt(1)"]]);
    assert_eq!(absent.find_in(&index), absent.find(&hw));
    let any_class = compile(&[["$c", "$n", "size", "gt(1)"]]);
    assert_eq!(any_class.find_in(&index), any_class.find(&hw));
    assert!(any_class.find_in(&index).is_ok());
}

#[test]
fn plain_and_regex_patterns_side_by_side() {
    let specs = compile(&[
        ["system", "product", "name", "regexp(Standard PC)"],
        ["system", "product", "name", "regexp(^Standard PC)"],
    ]);
    let hw = lines(&[
        ["system", "product", "name", "Standard PC (i440FX)"],
        ["system", "product", "name", "Not a Standard PC"],
    ]);
    assert_eq!(found(&specs, &hw).pairing, vec![1, 0]);
}

/// A spent budget stops a search that has work left, whatever the input:
/// here spec lines that every one of 40,000 hardware lines fits, where
/// only the last line can satisfy the final spec line.
#[test]
fn spent_budget_stops_the_search() {
    let mut hw = Vec::new();
    for i in 0..20_000 {
        hw.push(line("disk", &format!("a{i}"), "size", "10"));
        hw.push(line("disk", &format!("b{i}"), "model", "m"));
    }
    let specs = compile(&[
        ["disk", "$a", "size", "$s"],
        ["disk", "$b", "model", "$m"],
        ["disk", "$a", "model", "$m"],
    ]);
    let index = Hardware::new(&hw);
    let spent = Budget::until(std::time::Instant::now());
    assert_eq!(specs.find_within(&index, &spent), Err(Miss::OverBudget));
    // The same search without a limit ends with an answer.
    assert!(matches!(
        specs.find_within(&index, &Budget::unlimited()),
        Ok(_) | Err(Miss::NoMatch(_))
    ));
}

/// The reference retries `$disk0` (whose slot must be 1) with the line it
/// took moved to the end of the list, and the later lines see that order:
/// `$disk1` takes sda, not the first 8 GB disk.
#[test]
fn reference_order_moves_retried_lines_to_the_end() {
    let specs = compile(&[
        ["disk", "$disk0", "size", "$size0"],
        ["disk", "$disk0", "slot", "1"],
        ["disk", "$disk1", "size", "range(8, 100)"],
        ["disk", "$disk2", "size", "$size2"],
    ]);
    let hw = lines(&[
        ["disk", "sdb", "size", "8"],
        ["disk", "sdb", "slot", "2"],
        ["disk", "sdc", "size", "8"],
        ["disk", "sdc", "slot", "2"],
        ["disk", "sdd", "size", "20"],
        ["disk", "sdd", "slot", "1"],
        ["disk", "sda", "size", "20"],
        ["disk", "sda", "slot", "0"],
    ]);
    let m = found(&specs, &hw);
    assert!(!m.beyond_reference);
    assert_eq!(
        vars(&m),
        vec![
            ("disk0", "sdd"),
            ("size0", "20"),
            ("disk1", "sda"),
            ("disk2", "sdb"),
            ("size2", "8"),
        ]
    );
    assert_eq!(m.pairing, vec![4, 5, 6, 0]);
}

/// A spec line binding no new variable is never retried by the reference:
/// here it takes the line the next spec line needed, and the match is
/// found by the complete search, marked as such.
#[test]
fn match_the_reference_misses_is_marked() {
    let specs = compile(&[
        ["disk", "sda", "size", "gt(1)"],
        ["disk", "sda", "size", "2"],
    ]);
    let hw = lines(&[["disk", "sda", "size", "2"], ["disk", "sda", "size", "3"]]);
    let m = found(&specs, &hw);
    assert!(m.beyond_reference);
    assert_eq!(m.pairing, vec![1, 0]);
    // With the lines the other way round the reference finds it.
    let hw = lines(&[["disk", "sda", "size", "3"], ["disk", "sda", "size", "2"]]);
    let m = found(&specs, &hw);
    assert!(!m.beyond_reference);
    assert_eq!(m.pairing, vec![0, 1]);
}

/// Beyond the reference's 50 levels of retries (60 identical disks, the
/// first one wanted last) the complete search answers.
#[test]
fn beyond_the_depth_cap_the_complete_search_answers() {
    let (specs, hw) = jbod(60);
    assert!(found(&specs, &hw).beyond_reference);
    let (specs, hw) = jbod(8);
    assert!(!found(&specs, &hw).beyond_reference);
}

/// A hardware line equal to the spec line is taken first, binding nothing,
/// even when a line before it fits the spec line's patterns.
#[test]
fn equal_line_is_taken_first() {
    let specs = compile(&[["disk", "$d", "size", "gt(1)"]]);
    let hw = lines(&[
        ["disk", "sda", "size", "5"],
        ["disk", "$d", "size", "gt(1)"],
    ]);
    let m = found(&specs, &hw);
    assert_eq!(m.pairing, vec![1]);
    assert!(m.vars.is_empty());
}

/// `edeploy-admin match --explain` says whether the match is the
/// reference's or beyond it.
#[test]
fn admin_explain_says_whether_the_reference_matches() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let specs = dir.path().join("two.specs");
    let hw = dir.path().join("two.hw");
    std::fs::write(
        &specs,
        "[\n  ('disk', 'sda', 'size', 'gt(1)'),\n  ('disk', 'sda', 'size', '2'),\n]\n",
    )
    .expect("write the specs");
    let explain = |lines: &str| {
        std::fs::write(&hw, lines).expect("write the hardware list");
        match edeploy::admin::match_cmd(&specs, &hw, false, true) {
            Ok(out) => out,
            Err(e) => panic!("match --explain: {e}"),
        }
    };
    let beyond =
        explain("[\n  ('disk', 'sda', 'size', '2'),\n  ('disk', 'sda', 'size', '3'),\n]\n");
    assert_eq!(beyond.code, 0, "{}", beyond.stderr);
    assert!(
        beyond.stderr.contains("beyond the reference"),
        "{}",
        beyond.stderr
    );
    let same = explain("[\n  ('disk', 'sda', 'size', '3'),\n  ('disk', 'sda', 'size', '2'),\n]\n");
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert!(
        same.stderr
            .contains("found in the reference's search order"),
        "{}",
        same.stderr
    );
    assert!(
        !same.stderr.contains("beyond the reference"),
        "{}",
        same.stderr
    );
}

// ------------------------------------------------- shapes that were slow

/// `links` spec lines `('disk', '$diskK', 'size', 'gt(100)')` then as many
/// `('disk', '$diskK', 'model', '$model')`.
fn linked_specs(links: usize) -> Vec<Line> {
    let mut specs: Vec<Line> = (0..links)
        .map(|k| line("disk", &format!("$disk{k}"), "size", "gt(100)"))
        .collect();
    specs.extend((0..links).map(|k| line("disk", &format!("$disk{k}"), "model", "$model")));
    specs
}

/// One disk per model given, each with a size line (small ones where
/// `small` says so) and a model line.
fn linked_hw(models: &[&str], small: &[bool]) -> Vec<Line> {
    let mut hw = Vec::new();
    for (k, model) in models.iter().enumerate() {
        let size = if small.get(k).copied().unwrap_or(false) {
            "50"
        } else {
            "200"
        };
        hw.push(line("disk", &format!("sd{k}"), "size", size));
        hw.push(line("disk", &format!("sd{k}"), "model", model));
    }
    hw
}

/// `d` disks with a size and `v` others with a model, and `both` disks
/// with both at the end.
fn wide_hw(d: usize, v: usize, both: usize) -> Vec<Line> {
    let mut hw = Vec::new();
    for k in 0..d.max(v) {
        if k < d {
            hw.push(line("disk", &format!("a{k}"), "size", "10"));
        }
        if k < v {
            hw.push(line("disk", &format!("b{k}"), "model", "m"));
        }
    }
    for k in 0..both {
        hw.push(line("disk", &format!("c{k}"), "size", "10"));
        hw.push(line("disk", &format!("c{k}"), "model", "m"));
    }
    hw
}

fn wide_specs() -> Vec<Line> {
    lines(&[
        ["disk", "$a", "size", "$s"],
        ["disk", "$b", "model", "$m"],
        ["disk", "$a", "model", "$m"],
    ])
}

fn agrees(specs: &[Line], hw: &[Line]) {
    if let Err(e) = check_against_brute_force(specs, hw) {
        panic!("{e}\nspecs {specs:?}\nhw {hw:?}");
    }
}

#[test]
fn linked_lines_agree_with_brute_force_at_tiny_sizes() {
    agrees(&linked_specs(2), &linked_hw(&["m0", "m1", "m2"], &[]));
    agrees(&linked_specs(2), &linked_hw(&["m0", "m1", "m0"], &[]));
    agrees(
        &linked_specs(2),
        &linked_hw(&["m0", "m1", "m0", "m1"], &[true]),
    );
    agrees(
        &linked_specs(3),
        &linked_hw(&["m1", "m0", "m0", "m0"], &[false, true]),
    );
}

#[test]
fn wide_lists_agree_with_brute_force_at_tiny_sizes() {
    agrees(&wide_specs(), &wide_hw(3, 3, 0));
    agrees(&wide_specs(), &wide_hw(3, 2, 1));
    agrees(&wide_specs(), &wide_hw(1, 3, 2));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/matcher.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn linked_lines_follow_the_reference(
        links in 1..=2usize,
        models in prop::collection::vec(prop::sample::select(vec!["m0", "m1", "m2"]), 1..=4),
        small in prop::collection::vec(any::<bool>(), 0..=4),
    ) {
        check_against_brute_force(&linked_specs(links), &linked_hw(&models, &small))?;
    }
}

/// Large versions of the shapes end (a hang guard, not a timing): 8 linked
/// lines against 60 disks of different models, and 20,000 + 20,000 wide
/// lines, both without a match; with one disk answering, a match.
#[test]
fn slow_shapes_end() {
    let names: Vec<String> = (0..60).map(|k| format!("model-{k}")).collect();
    let models: Vec<&str> = names.iter().map(String::as_str).collect();
    let specs = Specs::compile(&linked_specs(8)).expect("compiles");
    let err = specs
        .find(&linked_hw(&models, &[]))
        .expect_err("no 8 disks share a model");
    assert!(err.spec_index >= 8, "a model line is named: {err}");
    let mut same = models.clone();
    for m in same.iter_mut().skip(40).take(8) {
        *m = "shared";
    }
    let m = found(&specs, &linked_hw(&same, &[]));
    assert_eq!(m.vars.get("model").map(String::as_str), Some("shared"));

    let specs = Specs::compile(&wide_specs()).expect("compiles");
    let err = specs
        .find(&wide_hw(20_000, 20_000, 0))
        .expect_err("no disk has both");
    assert_eq!(err.spec_index, 2);
    let m = found(&specs, &wide_hw(20_000, 20_000, 1));
    assert_eq!(m.vars.get("a").map(String::as_str), Some("c0"));
}
