//! Compiles fuzzer-built spec lines and matches them against fuzzer-built
//! hardware lines. Checks that a match pairs every spec line with its own
//! hardware line, and that the explained search gives the same answer as
//! the plain one. Also checks what the documented search order implies:
//! * literal positions equal the paired hardware value, and plain `$name` /
//!   `$$name` positions are reported with the paired hardware value;
//! * keeping only the paired hardware lines (in their order) gives the same
//!   match;
//! * on a prefix of the hardware list, a match exists only if one exists on
//!   the whole list, it is never before the whole list's answer in search
//!   order, and it is the same once the prefix holds every paired line.
//!
//! Input layout (bytes past the end read as 0):
//! * byte 0: number of spec lines, modulo 7 (0..=6);
//! * byte 1: number of hardware lines, modulo 11 (0..=10);
//! * then each string of each line (specs first, 4 strings per line): one
//!   byte giving the number of fragments (modulo 5), then one byte per
//!   fragment indexing `FRAGMENTS` (modulo its length).

#![no_main]

use edeploy::hw::Line;
use edeploy::matcher::{Match, Specs};
use libfuzzer_sys::fuzz_target;

/// Order matters: the corpus refers to fragments by index.
#[rustfmt::skip]
const FRAGMENTS: &[&str] = &[
    "", "a", "b", "c", "x", "0", "1", "2", "5", "10", "255", "1.5", "-", ".", " ", "$a",
    "$b", "$c", "$$a", "$$b", "$", "=", "gt(", "ge(", "lt(", "le(", "range(",
    "network(10.0.0.0/8)", "network(", "regexp(", "in(", "not(", "and(", "or(", ")", "(",
    ",", "'", "\"", "10.0.0.0/8", "10.1.2.3", "192.168.0.1", "/", "*", ".*", "^", "[",
    "\\", "é", "disk", "sda", "size", "$x=gt(1)", "gt(1)", "in(a, b)", "foo(",
];

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn string(&mut self) -> String {
        let n = self.byte() % 5;
        (0..n)
            .map(|_| FRAGMENTS[usize::from(self.byte()) % FRAGMENTS.len()])
            .collect()
    }

    fn line(&mut self) -> Line {
        std::array::from_fn(|_| self.string())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder { data, pos: 0 };
    let n_specs = usize::from(d.byte() % 7);
    let n_hw = usize::from(d.byte() % 11);
    let specs: Vec<Line> = (0..n_specs).map(|_| d.line()).collect();
    let hw: Vec<Line> = (0..n_hw).map(|_| d.line()).collect();

    let Ok(compiled) = Specs::compile(&specs) else {
        return;
    };
    let found = compiled.find(&hw);
    match &found {
        Ok(m) => {
            assert_eq!(
                m.pairing.len(),
                specs.len(),
                "one hardware line per spec line\nspecs: {specs:?}\nhw: {hw:?}\nmatch: {m:?}"
            );
            let mut seen = vec![false; hw.len()];
            for &i in &m.pairing {
                assert!(
                    i < hw.len(),
                    "hardware index out of range\nspecs: {specs:?}\nhw: {hw:?}\nmatch: {m:?}"
                );
                assert!(
                    !seen[i],
                    "hardware line used twice\nspecs: {specs:?}\nhw: {hw:?}\nmatch: {m:?}"
                );
                seen[i] = true;
            }
        }
        Err(no) => {
            assert!(
                no.spec_index < specs.len() && no.spec == specs[no.spec_index],
                "failure names a wrong spec line\nspecs: {specs:?}\nhw: {hw:?}\nerr: {no:?}"
            );
        }
    }
    if let Ok(m) = &found {
        check_values(&specs, &hw, m);
        check_subsets(&compiled, &specs, &hw, m);
    } else {
        for k in 0..hw.len() {
            assert!(
                compiled.find(&hw[..k]).is_err(),
                "a prefix of the hardware matches but the whole list does not\nspecs: {specs:?}\nhw: {hw:?}\nprefix: {k}"
            );
        }
    }
    let (explained, events) = compiled.find_explained(&hw, 100);
    assert_eq!(
        explained, found,
        "find_explained differs from find\nspecs: {specs:?}\nhw: {hw:?}"
    );
    assert!(
        events.len() <= 101,
        "more than 100 events plus a summary line: {}",
        events.len()
    );
});

/// Positions whose meaning is clear from the text alone: literals (no `$`,
/// no parenthesis) and plain variables (`$name` without `=` or parentheses).
fn check_values(specs: &[Line], hw: &[Line], m: &Match) {
    // Names that may belong to a `$$` variable (with or without a test),
    // whose value wins over the plain variable of the same name.
    let forced_names: Vec<&str> = specs
        .iter()
        .flatten()
        .filter_map(|t| t.strip_prefix("$$"))
        .flat_map(|k| [k, k.split('=').next().unwrap_or(k)])
        .collect();
    for (i, spec) in specs.iter().enumerate() {
        let line = &hw[m.pairing[i]];
        for (p, text) in spec.iter().enumerate() {
            let value = &line[p];
            if !text.starts_with('$') && !text.contains(['(', ')']) {
                assert_eq!(
                    text, value,
                    "literal paired with another value\nspecs: {specs:?}\nhw: {hw:?}\nmatch: {m:?}"
                );
            } else if let Some(key) = plain_var(text) {
                let (name, map) = match key.strip_prefix('$') {
                    Some(name) => (name, &m.forced),
                    None if forced_names.contains(&key) => continue,
                    None => (key, &m.vars),
                };
                assert_eq!(
                    map.get(name),
                    Some(value),
                    "variable {text} not reported with its value\nspecs: {specs:?}\nhw: {hw:?}\nmatch: {m:?}"
                );
                assert_eq!(
                    m.vars.get(name),
                    Some(value),
                    "variable {text} missing from vars\nspecs: {specs:?}\nhw: {hw:?}\nmatch: {m:?}"
                );
            }
        }
    }
}

/// The key of a plain variable position (`$a` → `a`, `$$a` → `$a`).
fn plain_var(text: &str) -> Option<&str> {
    let key = text.strip_prefix('$')?;
    (!text.contains(['=', '(', ')'])).then_some(key)
}

fn check_subsets(compiled: &Specs, specs: &[Line], hw: &[Line], m: &Match) {
    let mut used = m.pairing.clone();
    used.sort_unstable();
    let sub: Vec<Line> = used.iter().map(|&i| hw[i].clone()).collect();
    match compiled.find(&sub) {
        Ok(s) => {
            let back: Vec<usize> = s.pairing.iter().map(|&j| used[j]).collect();
            assert!(
                back == m.pairing && s.vars == m.vars && s.forced == m.forced,
                "keeping only the paired hardware lines changes the match\nspecs: {specs:?}\nhw: {hw:?}\nmatch: {m:?}\non {used:?}: {s:?}"
            );
        }
        Err(e) => panic!(
            "keeping only the paired hardware lines loses the match: {e}\nspecs: {specs:?}\nhw: {hw:?}\nmatch: {m:?}"
        ),
    }
    let needed = used.last().map_or(0, |&i| i + 1);
    for k in 0..hw.len() {
        let prefix = compiled.find(&hw[..k]);
        if k >= needed {
            assert!(
                prefix.as_ref() == Ok(m),
                "a prefix holding the whole match gives another answer\nspecs: {specs:?}\nhw: {hw:?}\nmatch: {m:?}\nprefix {k}: {prefix:?}"
            );
        } else if let Ok(p) = &prefix {
            assert!(
                p.pairing > m.pairing,
                "a prefix gives an earlier match than the whole list\nspecs: {specs:?}\nhw: {hw:?}\nmatch: {m:?}\nprefix {k}: {p:?}"
            );
        }
    }
}
