//! Compiles fuzzer-built spec lines and matches them against fuzzer-built
//! hardware lines. Checks that a match pairs every spec line with its own
//! hardware line, that the explained and the indexed searches give the same
//! answer as the plain one, and:
//! * literal positions equal the paired hardware value, and plain `$name` /
//!   `$$name` positions are reported with the paired hardware value (unless
//!   the hardware line equals the spec line, which binds nothing);
//! * when the whole list has no match, no prefix of it has one (the
//!   complete search behind the reference's is complete).
//!
//! Input layout (bytes past the end read as 0):
//! * byte 0: number of spec lines, modulo 7 (0..=6); when its high bit is
//!   set, the input is a shape instead (see `shape`);
//! * byte 1: number of hardware lines, modulo 11 (0..=10);
//! * then each string of each line (specs first, 4 strings per line): one
//!   byte giving the number of fragments (modulo 5), then one byte per
//!   fragment indexing `FRAGMENTS` (modulo its length).
//!
//! Shapes (byte 1 even: linked lines, odd: wide lists), whose answer is
//! known without searching:
//! * linked: `links` = 1 + byte 2 % 8 lines `('disk', '$diskK', 'size',
//!   'gt(100)')`, then as many `('disk', '$diskK', 'model', '$model')`,
//!   against up to 40 disks whose size (byte & 1: 50 or 200) and model
//!   (byte / 2 % 4) come from the next bytes: a match exactly when `links`
//!   disks larger than 100 share a model;
//! * wide: `('disk', '$a', 'size', '$s')`, `('disk', '$b', 'model', '$m')`,
//!   `('disk', '$a', 'model', '$m')` against up to 2,000 disks with a size,
//!   a model or both (byte % 3): a match exactly when a disk has both and
//!   some other disk has a model.

#![no_main]

use edeploy::hw::Line;
use edeploy::matcher::{Hardware, Match, Specs};
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
    let first = d.byte();
    if first & 0x80 != 0 {
        shape(&mut d);
        return;
    }
    let n_specs = usize::from(first % 7);
    let n_hw = usize::from(d.byte() % 11);
    let specs: Vec<Line> = (0..n_specs).map(|_| d.line()).collect();
    let hw: Vec<Line> = (0..n_hw).map(|_| d.line()).collect();

    let Ok(compiled) = Specs::compile(&specs) else {
        return;
    };
    let found = compiled.find(&hw);
    assert_eq!(
        compiled.find_in(&Hardware::new(&hw)),
        found,
        "the indexed search differs\nspecs: {specs:?}\nhw: {hw:?}"
    );
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
    // `$$$name` is renamed twice over by the reference's `$$` handling
    // (`$$name`, then `$name`), in an order that depends on the other
    // variables: its name is not predictable from its text alone.
    if specs.iter().flatten().any(|t| t.starts_with("$$$")) {
        return;
    }
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
        if line == spec {
            continue;
        }
        for (p, text) in spec.iter().enumerate() {
            let value = &line[p];
            if !text.starts_with('$') && !text.contains(['(', ')']) {
                assert_eq!(
                    text, value,
                    "literal paired with another value\nspecs: {specs:?}\nhw: {hw:?}\nmatch: {m:?}"
                );
            } else if let Some(key) = plain_var(text) {
                // A variable held again later in the line takes its value
                // from the later position (as in the reference), unless an
                // earlier line bound it: only the last position is sure.
                if spec[p + 1..].iter().any(|t| plain_var(t) == Some(key)) {
                    continue;
                }
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

/// Linked lines or wide lists, checked against the answer known from the
/// shape.
fn shape(d: &mut Decoder<'_>) {
    let line = |a: &str, b: &str, c: &str, v: &str| -> Line {
        [a.to_owned(), b.to_owned(), c.to_owned(), v.to_owned()]
    };
    let kind = d.byte();
    let mut specs = Vec::new();
    let mut hw = Vec::new();
    let expected;
    if kind % 2 == 0 {
        let links = 1 + usize::from(d.byte() % 8);
        for k in 0..links {
            specs.push(line("disk", &format!("$disk{k}"), "size", "gt(100)"));
        }
        for k in 0..links {
            specs.push(line("disk", &format!("$disk{k}"), "model", "$model"));
        }
        let disks = usize::from(d.byte() % 41);
        let mut large = [0usize; 4];
        for k in 0..disks {
            let b = d.byte();
            let big = b & 1 == 1;
            let model = usize::from(b / 2 % 4);
            if big {
                large[model] += 1;
            }
            let size = if big { "200" } else { "50" };
            hw.push(line("disk", &format!("sd{k}"), "size", size));
            hw.push(line("disk", &format!("sd{k}"), "model", &format!("m{model}")));
        }
        expected = large.iter().any(|&n| n >= links);
    } else {
        specs.push(line("disk", "$a", "size", "$s"));
        specs.push(line("disk", "$b", "model", "$m"));
        specs.push(line("disk", "$a", "model", "$m"));
        let disks = usize::from(d.byte()) * 8;
        let (mut both, mut models) = (0, 0);
        for k in 0..disks {
            let name = format!("d{k}");
            match d.byte() % 3 {
                0 => hw.push(line("disk", &name, "size", "10")),
                1 => {
                    hw.push(line("disk", &name, "model", "m"));
                    models += 1;
                }
                _ => {
                    hw.push(line("disk", &name, "size", "10"));
                    hw.push(line("disk", &name, "model", "m"));
                    both += 1;
                    models += 1;
                }
            }
        }
        expected = both >= 1 && models >= 2;
    }
    let Ok(compiled) = Specs::compile(&specs) else {
        panic!("the shape's specs compile: {specs:?}");
    };
    let found = compiled.find(&hw);
    assert_eq!(
        found.is_ok(),
        expected,
        "the shape's answer\nspecs: {specs:?}\nhw: {hw:?}\nfound: {found:?}"
    );
    assert_eq!(compiled.find_in(&Hardware::new(&hw)), found, "the indexed search differs");
    if let Ok(m) = &found {
        check_values(&specs, &hw, m);
    }
}
