//! Matching a profile's specs against a node's hardware list.
//!
//! A spec list is a list of `(class, name, key, value)` lines, like a
//! hardware list. The specs match when every spec line can be paired with a
//! *different* hardware line such that all four positions agree and all
//! variables are bound consistently.
//!
//! # Spec positions
//!
//! * a literal string equals the hardware value;
//! * `$name` is a variable. A variable bound by an earlier spec line must
//!   equal the hardware value at each of its positions; one not bound yet
//!   is bound once the line fits, to the value at the *last* position of
//!   the line holding it (like the reference, the positions of one line
//!   are not compared with each other: `('b', '$c', '$c', '1')` against
//!   `('b', 'x', 'y', '1')` gives `c = 'y'`). Names may contain any character
//!   (`$eth-io`, `$ipmi-fake-channel`);
//! * `$$name` is a variable that is also a CMDB key. `$$tag` and `$tag` are
//!   distinct variables; both are reported as `tag`, the `$$` one also in
//!   [`Match::forced`], and its value wins in [`Match::vars`];
//! * `func(args)` tests the hardware value: `gt`, `ge`, `lt`, `le`,
//!   `range(min, max)` (numeric, exact on integers, inclusive range),
//!   `network(10.0.0.0/24)` (IPv4 address inside the network, host bits of
//!   the network ignored, no prefix means `/32`), `regexp(re)` (found
//!   anywhere; the argument is the whole text between the parentheses,
//!   trimmed, one level of quotes removed), `in(a, b)` (equal to one of the
//!   items, each trimmed and unquoted), and `not(f)`, `and(f, g, …)`,
//!   `or(f, g, …)`. Arguments are split at commas outside parentheses and
//!   quotes. A value of the wrong shape makes the test false;
//! * `$name=func(args)`: the test must hold, then the variable is bound
//!   (or, if already bound, must be equal).
//!
//! `word(…)` where `word` is not a function, or whose argument text is empty
//! or has unbalanced quotes or parentheses, is a literal. A known function
//! with the wrong number or kind of arguments, or an invalid regular
//! expression, is an error from [`Specs::compile`].
//!
//! # Search order
//!
//! The answer is the one the reference matcher (`match_all` of the
//! `hardware` package, 0.33, as the original eDeploy used it) gives,
//! wherever it gives one:
//!
//! * spec lines are taken in file order; each takes the first unused
//!   hardware line *equal* to it (binding nothing), else the first unused
//!   line it fits with the bindings so far, in the current list order;
//! * a spec line that binds a variable not bound before is a retry point;
//!   no other line is ever retried;
//! * when a spec line finds nothing, the retry points are tried, latest
//!   first; a retry starts again at its spec line with the bindings it had
//!   then, the hardware line it had taken moved to the end of the list (for
//!   that line and every later one), one level deeper; a retry 50 levels
//!   deep fails at once;
//! * the variables are those of the retry that matched, `$$name` renamed
//!   to `name` (also in [`Match::forced`]), copied over the variables the
//!   enclosing retries held when they failed, as the reference does: a
//!   `$$name` bound on a failed path can stay in [`Match::vars`] under its
//!   key `$name`.
//!
//! How it is computed: a complete search runs first (spec lines in file
//! order, hardware lines in list order, backtracking to the most recent
//! spec line with another candidate; its answer is the first complete
//! pairing in that order, the lexicographically smallest sequence of
//! hardware line indexes).
//!
//! * If it finds no match, none exists, and the reference finds none.
//! * If it found its match without ever taking a choice back, and no spec
//!   line holding a variable or a test is equal to a hardware line, the
//!   reference makes the very same choices: that is the answer.
//! * Otherwise the reference's search is replayed. Its retries are skipped
//!   when the remaining spec lines cannot all be paired at all (the checks
//!   below only say so when it is true), since the reference's retry would
//!   fail too; its other dead ends are replayed, so the answer stays its
//!   answer. When the reference finds no match (it gave up at its depth
//!   limit, or a spec line that bound nothing new kept a line a later spec
//!   line needed), or the replay passes a few million steps, the answer is
//!   the complete search's, with [`Match::beyond_reference`] set.
//!
//! The checks: every remaining spec line keeps an unused hardware line
//! consistent with the bindings (candidates are grouped by the value of a
//! bound variable, so that this is not a scan of the whole list); the
//! remaining lines can get pairwise distinct hardware lines (a bipartite
//! matching kept up to date); and, once the complete search has met 16
//! dead ends (the replay: 4096),
//! every unbound variable shared by several remaining lines has a value
//! all of them can give it, and the one shared by the most lines (with at
//! most 256 such values) has a value with which the remaining lines can
//! still get distinct hardware lines. All of them only discard states
//! holding no solution.
//!
//! # Which spec line a failure names
//!
//! The failure comes from the complete search.
//!
//! 1. If some spec line has no hardware line it could ever pair with
//!    (ignoring variables and the other spec lines), the first such line in
//!    file order.
//! 2. Otherwise the line that blocked the complete search at the greatest
//!    depth, the depth being the number of spec lines paired when the block
//!    was found; on ties the first block found wins. A block is a remaining
//!    spec line left with no unused hardware line consistent with the
//!    bindings (the first such line in file order), or, when every remaining
//!    line still has one, the first remaining line that could not be given
//!    its own hardware line while giving distinct lines to the remaining
//!    lines in file order; after 16 dead ends also the line where a shared
//!    variable's possible values ran out (the first line holding that
//!    variable that leaves it no value in common with the earlier ones), or
//!    the first remaining line holding the variable tried with each value.

mod func;
mod search;

use std::collections::HashMap;

use indexmap::IndexMap;

use crate::hw::Line;
use func::{parse_call, Func};

const FIELD_NAMES: [&str; 4] = ["class", "name", "key", "value"];

/// One compiled spec position.
#[derive(Debug, Clone)]
enum Pattern {
    /// Equal to the spec line's text at this position.
    Literal,
    Var(usize),
    Func(Func),
    VarFunc(usize, Func),
}

impl Pattern {
    fn var(&self) -> Option<usize> {
        match self {
            Pattern::Var(v) | Pattern::VarFunc(v, _) => Some(*v),
            Pattern::Literal | Pattern::Func(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
struct CompiledLine {
    patterns: [Pattern; 4],
    /// `(position, variable)` for every variable position.
    var_positions: Vec<(usize, usize)>,
    /// Position `p` holds a variable that a later position of the line
    /// holds too (the later one gives the variable its value).
    not_last: [bool; 4],
    /// Bit `p` set: position `p` is a literal.
    literal_mask: u8,
    /// Bit `p` set: position `p` needs [`Func::eval`](func::Func).
    func_mask: u8,
}

impl CompiledLine {
    /// The literal text at position `p` of `spec` (this line's text), if
    /// that position is a literal.
    fn literal<'s>(&self, spec: &'s Line, p: usize) -> Option<&'s str> {
        match self.patterns[p] {
            Pattern::Literal => Some(&spec[p]),
            _ => None,
        }
    }

    /// `Some(equal)` when [`CompiledLine::fits_statically`] holds or the
    /// hardware line is equal to `spec` (the reference takes such a line
    /// whatever its patterns say); `equal` tells which.
    ///
    /// Called for every (spec line, hardware line) pair of a search: the
    /// literal positions, which reject most pairs, are compared inline;
    /// the rest only for lines that pass them.
    #[inline]
    fn fits_or_equal(&self, spec: &Line, hw: &Line) -> Option<bool> {
        let mask = self.literal_mask;
        for p in 0..4 {
            if mask & (1 << p) != 0 && !same_text(&spec[p], &hw[p]) {
                return None;
            }
        }
        self.fits_past_literals(spec, hw)
    }

    /// [`CompiledLine::fits_or_equal`] once the literal positions agree.
    #[inline(never)]
    fn fits_past_literals(&self, spec: &Line, hw: &Line) -> Option<bool> {
        let mask = self.literal_mask;
        let equal = (0..4).all(|p| mask & (1 << p) != 0 || same_text(&spec[p], &hw[p]));
        (equal || self.fits_beyond_literals(hw)).then_some(equal)
    }

    /// The checks of [`CompiledLine::fits_statically`] after the literal
    /// positions.
    fn fits_beyond_literals(&self, hw: &Line) -> bool {
        if self.func_mask == 0 {
            return true;
        }
        self.patterns
            .iter()
            .enumerate()
            .all(|(p, pattern)| match pattern {
                Pattern::Func(f) | Pattern::VarFunc(_, f) => f.eval(&hw[p]),
                Pattern::Literal | Pattern::Var(_) => true,
            })
    }

    /// Whether the hardware line fits, ignoring bindings made by other spec
    /// lines.
    /// `spec` is the text this line was compiled from.
    fn fits_statically(&self, spec: &Line, hw: &Line) -> bool {
        // Cheapest checks first: most hardware lines fail on the class.
        for (p, pattern) in self.patterns.iter().enumerate() {
            if let Pattern::Literal = pattern {
                if !same_text(&spec[p], &hw[p]) {
                    return false;
                }
            }
        }
        self.fits_beyond_literals(hw)
    }
}

/// `a == b`, rejecting most different texts on their first byte (a
/// variable's text starts with `$`, which values seldom do).
fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

#[derive(Debug, Clone)]
struct VarInfo {
    /// Distinguishes `$$tag` (key `$tag`) from `$tag` (key `tag`).
    key: String,
    /// Reported name, without `$`.
    name: String,
    forced: bool,
}

impl VarInfo {
    /// The variable as written in specs.
    fn spelling(&self) -> String {
        format!("${}", self.key)
    }
}

/// Compiled spec lines, ready to be matched against many hardware lists.
#[derive(Debug, Clone)]
pub struct Specs {
    lines: Vec<Line>,
    compiled: Vec<CompiledLine>,
    vars: Vec<VarInfo>,
}

/// A spec line that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec line {line} {spec_text}, {field} {value:?}: {message}")]
pub struct SpecError {
    /// 1-based index of the spec line.
    pub line: usize,
    /// `class`, `name`, `key` or `value`.
    pub field: &'static str,
    /// The text of that position.
    pub value: String,
    /// The whole spec line, rendered like Python.
    pub spec_text: String,
    pub message: String,
}

/// The first solution in search order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Match {
    /// All variables without `$`, in order of first binding.
    pub vars: IndexMap<String, String>,
    /// The `$$` variables (also in `vars`).
    pub forced: IndexMap<String, String>,
    /// Hardware line index chosen for each spec line.
    pub pairing: Vec<usize>,
    /// The reference's search (see the module documentation) gave up or
    /// missed this match: it was found by the complete search.
    pub beyond_reference: bool,
}

/// Why specs do not match: the spec line chosen by the rule in the module
/// documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoMatch {
    /// 0-based index of the spec line that could not be paired.
    pub spec_index: usize,
    pub spec: Line,
}

impl std::fmt::Display for NoMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "spec line {} {} could not be paired with any hardware line",
            self.spec_index + 1,
            format_line(&self.spec)
        )
    }
}

impl std::error::Error for NoMatch {}

/// A limit on the time one match may take ([`Specs::find_within`]). The
/// search looks at the clock every few hundred steps, so it stops soon
/// after the deadline whatever the shape of the input.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    deadline: Option<Deadline>,
}

/// Which clock a [`Budget`]'s deadline is on.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    Wall(std::time::Instant),
    /// On this thread's processor-time clock ([`thread_cpu_time`]).
    Cpu(std::time::Duration),
}

impl Budget {
    /// No limit (the command-line tools).
    pub fn unlimited() -> Budget {
        Budget { deadline: None }
    }

    /// Work stops at `deadline`.
    pub fn until(deadline: std::time::Instant) -> Budget {
        Budget {
            deadline: Some(Deadline::Wall(deadline)),
        }
    }

    /// Work stops `limit` from now.
    pub fn lasting(limit: std::time::Duration) -> Budget {
        Budget::until(std::time::Instant::now() + limit)
    }

    /// Work stops once this thread's processor time ([`thread_cpu_time`])
    /// reaches `deadline`: time spent waiting for a processor does not
    /// count.
    pub fn until_cpu(deadline: std::time::Duration) -> Budget {
        Budget {
            deadline: Some(Deadline::Cpu(deadline)),
        }
    }

    /// Whether the deadline has passed.
    pub fn exceeded(&self) -> bool {
        match self.deadline {
            None => false,
            Some(Deadline::Wall(d)) => std::time::Instant::now() >= d,
            Some(Deadline::Cpu(d)) => thread_cpu_time() >= d,
        }
    }
}

/// The processor time this thread has used (`CLOCK_THREAD_CPUTIME_ID`);
/// should that clock be unavailable, the time since the first call, which
/// bounds it.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes only the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        if let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
            return std::time::Duration::new(secs, nanos);
        }
    }
    static FIRST: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    FIRST.get_or_init(std::time::Instant::now).elapsed()
}

/// Why [`Specs::find_within`] gave no match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// The specs do not match.
    NoMatch(NoMatch),
    /// The budget ran out before the search ended.
    OverBudget,
}

impl Specs {
    /// Compiles spec lines. Errors name the 1-based spec line index, the
    /// position (class/name/key/value) and what is wrong.
    pub fn compile(lines: &[Line]) -> Result<Specs, SpecError> {
        Specs::compile_owned(lines.to_vec())
    }

    /// [`Specs::compile`] keeping the lines it is given.
    pub fn compile_owned(lines: Vec<Line>) -> Result<Specs, SpecError> {
        let mut vars = VarTable::default();
        let mut compiled = Vec::with_capacity(lines.len());
        for (index, line) in lines.iter().enumerate() {
            let mut patterns: [Pattern; 4] = std::array::from_fn(|_| Pattern::Literal);
            for (p, text) in line.iter().enumerate() {
                patterns[p] = compile_position(text, &mut vars).map_err(|message| SpecError {
                    line: index + 1,
                    field: FIELD_NAMES[p],
                    value: text.clone(),
                    spec_text: format_line(line),
                    message,
                })?;
            }
            let var_positions: Vec<(usize, usize)> = patterns
                .iter()
                .enumerate()
                .filter_map(|(p, pattern)| pattern.var().map(|v| (p, v)))
                .collect();
            let mut not_last = [false; 4];
            for (i, &(pa, va)) in var_positions.iter().enumerate() {
                not_last[pa] = var_positions[i + 1..].iter().any(|&(_, vb)| vb == va);
            }
            let mask = |f: fn(&Pattern) -> bool| {
                (0..4)
                    .filter(|&p| f(&patterns[p]))
                    .fold(0u8, |m, p| m | 1 << p)
            };
            let literal_mask = mask(|p| matches!(p, Pattern::Literal));
            let func_mask = mask(|p| matches!(p, Pattern::Func(_) | Pattern::VarFunc(..)));
            compiled.push(CompiledLine {
                patterns,
                var_positions,
                not_last,
                literal_mask,
                func_mask,
            });
        }
        Ok(Specs {
            lines,
            compiled,
            vars: vars.vars,
        })
    }

    /// The spec lines as given to [`Specs::compile`].
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The first solution in search order, or why not.
    pub fn find(&self, hw: &[Line]) -> Result<Match, NoMatch> {
        unbudgeted(search::run(
            self,
            hw,
            None,
            &mut search::Silent,
            &Budget::unlimited(),
        ))
    }

    /// [`Specs::find`] on a hardware list indexed once for several specs:
    /// the same answer, without testing every spec line against every
    /// hardware line.
    pub fn find_in(&self, hw: &Hardware<'_>) -> Result<Match, NoMatch> {
        unbudgeted(search::run(
            self,
            hw.lines,
            Some(hw),
            &mut search::Silent,
            &Budget::unlimited(),
        ))
    }

    /// [`Specs::find_in`] that gives up with [`Miss::OverBudget`] once
    /// `budget` is spent.
    pub fn find_within(&self, hw: &Hardware<'_>, budget: &Budget) -> Result<Match, Miss> {
        search::run(self, hw.lines, Some(hw), &mut search::Silent, budget)
    }

    /// Same as [`Specs::find`], also describing the search for humans: every
    /// try, binding, prune (naming the blocking spec line) and backtrack, one
    /// line of text each, at most `max_events` of them followed by a
    /// `... N more steps` line when there were more.
    pub fn find_explained(
        &self,
        hw: &[Line],
        max_events: usize,
    ) -> (Result<Match, NoMatch>, Vec<String>) {
        let mut recorder = search::Recorder::new(max_events);
        let result = unbudgeted(search::run(
            self,
            hw,
            None,
            &mut recorder,
            &Budget::unlimited(),
        ));
        (result, recorder.finish())
    }
}

/// The answer of a search whose budget cannot run out.
fn unbudgeted(result: Result<Match, Miss>) -> Result<Match, NoMatch> {
    result.map_err(|miss| match miss {
        Miss::NoMatch(no) => no,
        // Unreachable with `Budget::unlimited()`; named like a miss of
        // the first line rather than a panic.
        Miss::OverBudget => NoMatch {
            spec_index: 0,
            spec: Line::default(),
        },
    })
}

/// A hardware list with its lines grouped by class and by (class, key),
/// for matching several specs against it ([`Specs::find_in`]).
#[derive(Debug, Clone)]
pub struct Hardware<'h> {
    lines: &'h [Line],
    classes: HashMap<&'h str, ClassIndex<'h>>,
}

/// The lines of one class.
#[derive(Debug, Clone, Default)]
struct ClassIndex<'h> {
    /// Line indexes in list order.
    all: Vec<usize>,
    /// Line indexes in list order, per key.
    by_key: HashMap<&'h str, Vec<usize>>,
}

impl<'h> Hardware<'h> {
    pub fn new(lines: &'h [Line]) -> Hardware<'h> {
        let mut classes: HashMap<&'h str, ClassIndex<'h>> = HashMap::new();
        for (j, line) in lines.iter().enumerate() {
            let class = classes.entry(line[0].as_str()).or_default();
            class.all.push(j);
            class.by_key.entry(line[2].as_str()).or_default().push(j);
        }
        Hardware { lines, classes }
    }

    pub fn lines(&self) -> &'h [Line] {
        self.lines
    }

    /// Indexes, in list order, of the lines whose class is `class` and,
    /// when given, whose key is `key`; `None` when the index cannot narrow
    /// the search (no literal class).
    fn narrow(&self, class: Option<&str>, key: Option<&str>) -> Option<&[usize]> {
        let Some(found) = self.classes.get(class?) else {
            return Some(&[]);
        };
        Some(match key {
            Some(key) => found.by_key.get(key).map_or(&[], Vec::as_slice),
            None => &found.all,
        })
    }
}

#[derive(Default)]
struct VarTable {
    vars: Vec<VarInfo>,
    ids: std::collections::HashMap<String, usize>,
}

impl VarTable {
    /// `spelling` starts with `$`.
    fn intern(&mut self, spelling: &str) -> usize {
        let key = &spelling[1..];
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let (name, forced) = match key.strip_prefix('$') {
            Some(name) => (name, true),
            None => (key, false),
        };
        let id = self.vars.len();
        self.vars.push(VarInfo {
            key: key.to_owned(),
            name: name.to_owned(),
            forced,
        });
        self.ids.insert(key.to_owned(), id);
        id
    }
}

fn compile_position(text: &str, vars: &mut VarTable) -> Result<Pattern, String> {
    if text.starts_with('$') {
        if let Some(eq) = text.find('=') {
            let head = &text[..eq];
            if !head.contains(['(', ')']) {
                if let Some(f) = parse_call(&text[eq + 1..])? {
                    return Ok(Pattern::VarFunc(vars.intern(head), f));
                }
            }
        }
        return Ok(Pattern::Var(vars.intern(text)));
    }
    Ok(match parse_call(text)? {
        Some(f) => Pattern::Func(f),
        None => Pattern::Literal,
    })
}

pub use crate::hw::format_line;
pub use crate::literal::py_repr as repr_str;

#[cfg(test)]
mod tests {
    use super::*;

    fn line(a: &str, b: &str, c: &str, d: &str) -> Line {
        [a.into(), b.into(), c.into(), d.into()]
    }

    fn patterns(text: &str) -> Pattern {
        let mut vars = VarTable::default();
        match compile_position(text, &mut vars) {
            Ok(p) => p,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn position_kinds() {
        assert!(matches!(patterns("sda"), Pattern::Literal));
        assert!(matches!(patterns("$disk"), Pattern::Var(0)));
        assert!(matches!(patterns("gt(1)"), Pattern::Func(_)));
        assert!(matches!(patterns("$v=gt(1)"), Pattern::VarFunc(0, _)));
        assert!(matches!(patterns("$v=foo(1)"), Pattern::Var(_)));
        assert!(matches!(patterns("$v(x)=gt(1)"), Pattern::Var(_)));
        assert!(matches!(patterns("foo(1)"), Pattern::Literal));
        assert!(matches!(patterns("gt()"), Pattern::Literal));
    }

    #[test]
    fn forced_and_plain_variables_are_distinct() {
        let mut vars = VarTable::default();
        let plain = vars.intern("$tag");
        let forced = vars.intern("$$tag");
        assert_ne!(plain, forced);
        assert_eq!(vars.intern("$tag"), plain);
        assert_eq!(vars.vars[forced].name, "tag");
        assert!(vars.vars[forced].forced);
        assert_eq!(vars.vars[forced].spelling(), "$$tag");
        assert!(!vars.vars[plain].forced);
    }

    #[test]
    fn repeated_variable_in_one_line_takes_its_last_value() {
        let specs = Specs::compile(&[line("disk", "$x", "$x", "1")]).expect("compiles");
        assert_eq!(specs.compiled[0].not_last, [false, true, false, false]);
        let m = specs.find(&[line("disk", "a", "b", "1")]).expect("matches");
        assert_eq!(m.vars.get("x").map(String::as_str), Some("b"));
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(repr_str("abc"), "'abc'");
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("'\""), "'\\'\"'");
        assert_eq!(repr_str("a\\b\n\t\u{1}"), "'a\\\\b\\n\\t\\x01'");
        assert_eq!(repr_str("é\u{a0}\u{200b}"), "'é\\xa0\\u200b'");
        assert_eq!(
            format_line(&line("disk", "sda", "size", "4")),
            "('disk', 'sda', 'size', '4')"
        );
    }

    #[test]
    fn error_names_line_and_field() {
        let err = Specs::compile(&[
            line("disk", "$d", "size", "gt(1)"),
            line("disk", "$d", "size", "gt(1,2)"),
        ])
        .expect_err("wrong arity");
        assert_eq!(err.line, 2);
        assert_eq!(err.field, "value");
        let text = err.to_string();
        assert!(text.starts_with("spec line 2 ('disk', '$d', 'size', 'gt(1,2)'), value"));
        assert!(text.contains("takes 1 argument, got 2"), "{text}");
    }
}
