//! The module rule (docs/architecture.md): each program has its own
//! folder, which no other module imports; what programs share lives in
//! shared modules, which never import a program; and the shared modules
//! import each other without a cycle. Read from the source: every
//! `crate::NAME` path in `src/` (in `use` lines and inline), with
//! `use crate::{a, b}` groups expanded, gives an edge from the file's
//! top-level module to NAME.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The programs' folders (or files): `upload.cgi` and `upload-health.cgi`,
/// `status.cgi`, the installer, the host client, `edeploy-admin`.
const PROGRAMS: [&str; 5] = ["upload", "status", "init", "host", "admin"];

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read src/")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `text` without its line comments (`//`, `///`, `//!`): a doc link names
/// a module without importing it.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module names that `text` reaches through `crate::`.
fn targets(text: &str) -> BTreeSet<String> {
    let text = &code(text);
    let mut found = BTreeSet::new();
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in text.match_indices("crate::") {
        // `edeploy::crate::` cannot occur; skip `$crate::` in macros.
        if text[..at].ends_with('$') {
            continue;
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Nested groups `{a::{x, y}, b}`: only the first word of each
            // top-level item names a module; the group ends at its own `}`.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 0 => {
                        let w = word(&group[i..]);
                        if !w.is_empty() {
                            found.insert(w);
                        }
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let w = word(rest);
            if !w.is_empty() {
                found.insert(w);
            }
        }
    }
    found
}

/// module → (module it imports → files that import it).
fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g = Graph::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src/");
        let top = rel
            .components()
            .next()
            .expect("a path")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let text = fs::read_to_string(&f).expect("read a source file");
        for t in targets(&text) {
            if t != top {
                g.entry(top.clone())
                    .or_default()
                    .entry(t)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
        g.entry(top).or_default();
    }
    g
}

#[test]
fn no_module_imports_another_program() {
    let g = graph();
    let mut bad = Vec::new();
    for (from, tos) in &g {
        for (to, files) in tos {
            if PROGRAMS.contains(&to.as_str()) {
                bad.push(format!("{from} imports the program {to} ({files:?})"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn shared_modules_import_each_other_without_a_cycle() {
    let g = graph();
    // Depth-first search for a back edge among the shared modules.
    fn visit(
        g: &Graph,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for to in g.get(n).into_iter().flat_map(|m| m.keys()) {
            if let Some(c) = visit(g, to, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(cycle) = visit(&g, n, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn every_program_and_shared_module_exists() {
    // A program renamed without this list would make the rule vacuous.
    let g = graph();
    for p in PROGRAMS {
        assert!(g.contains_key(p), "no module {p} in src/");
    }
    assert!(g.len() > PROGRAMS.len() + 5, "too few modules read: {g:?}");
}

#[test]
fn the_reader_sees_groups_nested_paths_and_inline_uses() {
    let t = targets(
        "use crate::{a::{x, y}, b, c::d};\nlet z = crate::e::f(); // crate::g\n/// [`crate::h`]\n",
    );
    let want: BTreeSet<String> = ["a", "b", "c", "e"].iter().map(|s| s.to_string()).collect();
    assert_eq!(t, want);
}
