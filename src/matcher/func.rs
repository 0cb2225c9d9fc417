//! Value tests written in spec positions: `gt(1)`, `network(10.0.0.0/24)`,
//! `regexp(^sd)`, `in(a, b)`, `range(1, 4)`, `not(…)`, `and(…)`, `or(…)`.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, OnceLock};

use ipnet::Ipv4Net;
use regex::Regex;

/// Names recognised as functions; any other `word(…)` is a literal.
const FUNCTION_NAMES: [&str; 11] = [
    "gt", "ge", "lt", "le", "network", "regexp", "in", "range", "not", "and", "or",
];

/// Deeper nesting is refused so that parsing and evaluating a hostile spec
/// cannot exhaust the stack.
const MAX_NESTING: usize = 64;

/// A compiled test on one hardware value.
#[derive(Debug, Clone)]
pub(crate) enum Func {
    Compare(CmpOp, Num),
    Range(Num, Num),
    Network(Ipv4Net),
    /// Shared, so that the copies of a cached pattern also share the
    /// regex's search cache (a cloned [`Regex`] starts with an empty one).
    Regexp(Arc<Regex>),
    /// A `regexp` whose pattern has no special character: a plain
    /// substring search, with the same answers.
    Contains(String),
    In(Vec<String>),
    Not(Box<Func>),
    And(Vec<Func>),
    Or(Vec<Func>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
}

/// A number as written in a spec or a hardware value. Integers are kept
/// exact so that large sizes (bytes of a disk) compare correctly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    /// Parses an integer or decimal, ignoring surrounding spaces.
    pub(crate) fn parse(text: &str) -> Option<Num> {
        let t = text.trim();
        if let Ok(i) = t.parse::<i128>() {
            return Some(Num::Int(i));
        }
        t.parse::<f64>().ok().map(Num::Float)
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// `None` when either side is NaN.
    pub(crate) fn compare(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }
}

impl Func {
    /// Whether the hardware value passes the test. Values of the wrong
    /// shape (not a number, not an address) simply fail.
    pub(crate) fn eval(&self, value: &str) -> bool {
        match self {
            Func::Compare(op, bound) => Num::parse(value)
                .and_then(|v| v.compare(*bound))
                .is_some_and(|o| match op {
                    CmpOp::Gt => o == Ordering::Greater,
                    CmpOp::Ge => o != Ordering::Less,
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::Le => o != Ordering::Greater,
                }),
            Func::Range(lo, hi) => Num::parse(value).is_some_and(|v| {
                v.compare(*lo).is_some_and(|o| o != Ordering::Less)
                    && v.compare(*hi).is_some_and(|o| o != Ordering::Greater)
            }),
            Func::Network(net) => value
                .trim()
                .parse::<Ipv4Addr>()
                .is_ok_and(|addr| net.contains(&addr)),
            Func::Regexp(re) => re.is_match(value),
            Func::Contains(text) => value.contains(text.as_str()),
            Func::In(items) => items.iter().any(|item| item == value),
            Func::Not(inner) => !inner.eval(value),
            Func::And(all) => all.iter().all(|f| f.eval(value)),
            Func::Or(any) => any.iter().any(|f| f.eval(value)),
        }
    }
}

/// Parses `text` as a function call.
///
/// `Ok(None)` means the text is not a call (unknown word, no parentheses,
/// empty or unbalanced arguments) and is to be compared literally.
/// `Err` means it is a call of a known function whose arguments are wrong.
pub(crate) fn parse_call(text: &str) -> Result<Option<Func>, String> {
    parse_nested(text, 0)
}

fn parse_nested(text: &str, depth: usize) -> Result<Option<Func>, String> {
    let Some(open) = text.find('(') else {
        return Ok(None);
    };
    let name = &text[..open];
    if !FUNCTION_NAMES.contains(&name) || !text.ends_with(')') {
        return Ok(None);
    }
    let inner = &text[open + 1..text.len() - 1];
    if inner.trim().is_empty() {
        return Ok(None);
    }
    if depth >= MAX_NESTING {
        return Err(format!(
            "functions nested more than {MAX_NESTING} levels deep"
        ));
    }
    if name == "regexp" {
        // The whole text is the pattern so that commas and parentheses
        // inside it need no escaping.
        return compile_regexp(unquote(inner)).map(Some);
    }
    let Some(args) = split_args(inner) else {
        return Ok(None);
    };
    let func = match name {
        "gt" | "ge" | "lt" | "le" => {
            expect_count(name, &args, 1)?;
            let op = match name {
                "gt" => CmpOp::Gt,
                "ge" => CmpOp::Ge,
                "lt" => CmpOp::Lt,
                _ => CmpOp::Le,
            };
            Func::Compare(op, number_arg(name, args[0])?)
        }
        "range" => {
            expect_count(name, &args, 2)?;
            Func::Range(number_arg(name, args[0])?, number_arg(name, args[1])?)
        }
        "network" => {
            expect_count(name, &args, 1)?;
            Func::Network(network_arg(args[0])?)
        }
        "in" => Func::In(args.iter().map(|a| unquote(a).to_owned()).collect()),
        "not" => {
            expect_count(name, &args, 1)?;
            Func::Not(Box::new(call_arg(name, args[0], depth)?))
        }
        _ => {
            if args.len() < 2 {
                return Err(format!(
                    "{name}() takes at least 2 arguments, got {}",
                    args.len()
                ));
            }
            let parts = args
                .iter()
                .map(|a| call_arg(name, a, depth))
                .collect::<Result<Vec<_>, _>>()?;
            if name == "and" {
                Func::And(parts)
            } else {
                Func::Or(parts)
            }
        }
    };
    Ok(Some(func))
}

/// Longest pattern taken as a plain substring: far below the size where
/// the regex crate refuses a pattern, so no error is lost that way.
const MAX_PLAIN_PATTERN: usize = 256;

/// The characters [`regex::escape`] escapes: every character with a
/// meaning in a pattern. A pattern without any is a plain text.
const REGEX_META: &[u8] = b"\\.+*?()|[]{}^$#&-~";

/// Compiled regular expressions still held for reuse, at most.
const MAX_CACHED_REGEXES: usize = 256;

/// Patterns already compiled in this process. Profiles often repeat the
/// same `regexp(...)` lines, and building a regex's automata (and the
/// lazy DFA states its searches fill in) costs more than matching with it.
static REGEX_CACHE: OnceLock<Mutex<HashMap<String, Arc<Regex>>>> = OnceLock::new();

/// `regexp(pattern)`: a substring test when the pattern has no special
/// character, else a regex (reused when the same pattern was compiled
/// before).
fn compile_regexp(pattern: &str) -> Result<Func, String> {
    if pattern.len() <= MAX_PLAIN_PATTERN && !pattern.bytes().any(|b| REGEX_META.contains(&b)) {
        return Ok(Func::Contains(pattern.to_owned()));
    }
    let cache = REGEX_CACHE.get_or_init(Default::default);
    let cached = {
        let map = cache.lock().unwrap_or_else(|e| e.into_inner());
        map.get(pattern).cloned()
    };
    if let Some(re) = cached {
        return Ok(Func::Regexp(re));
    }
    let re = Arc::new(Regex::new(pattern).map_err(|e| {
        let reason = e.to_string().replace('\n', " ");
        format!("invalid regular expression {pattern:?}: {reason}")
    })?);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_CACHED_REGEXES {
        map.clear();
    }
    map.insert(pattern.to_owned(), re.clone());
    Ok(Func::Regexp(re))
}

fn expect_count(name: &str, args: &[&str], count: usize) -> Result<(), String> {
    if args.len() == count {
        Ok(())
    } else {
        let plural = if count == 1 { "" } else { "s" };
        Err(format!(
            "{name}() takes {count} argument{plural}, got {}",
            args.len()
        ))
    }
}

fn number_arg(name: &str, arg: &str) -> Result<Num, String> {
    let text = unquote(arg);
    Num::parse(text).ok_or_else(|| format!("{name}() argument {text:?} is not a number"))
}

fn network_arg(arg: &str) -> Result<Ipv4Net, String> {
    let text = unquote(arg);
    let parsed = if text.contains('/') {
        text.parse::<Ipv4Net>().map_err(|e| e.to_string())
    } else {
        text.parse::<Ipv4Addr>()
            .map(Ipv4Net::from)
            .map_err(|e| e.to_string())
    };
    parsed
        .map(|net| net.trunc())
        .map_err(|e| format!("network() argument {text:?} is not an IPv4 network: {e}"))
}

fn call_arg(name: &str, arg: &str, depth: usize) -> Result<Func, String> {
    let text = unquote(arg);
    parse_nested(text, depth + 1)?
        .ok_or_else(|| format!("{name}() arguments must be function calls, got {text:?}"))
}

/// Splits an argument list at commas outside parentheses and quotes.
/// `None` when parentheses or quotes are unbalanced.
pub(crate) fn split_args(inner: &str) -> Option<Vec<&str>> {
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                args.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() || depth != 0 {
        return None;
    }
    args.push(&inner[start..]);
    Some(args)
}

/// Trims spaces, then removes one level of matching `'` or `"` quotes.
pub(crate) fn unquote(text: &str) -> &str {
    let t = text.trim();
    for q in ['\'', '"'] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return &t[1..t.len() - 1];
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(text: &str) -> Func {
        match parse_call(text) {
            Ok(Some(f)) => f,
            other => panic!("{text}: expected a function, got {other:?}"),
        }
    }

    #[test]
    fn split_respects_parentheses_and_quotes() {
        assert_eq!(
            split_args("gt(1), 'a,b', \"c)\", (x,y)"),
            Some(vec!["gt(1)", " 'a,b'", " \"c)\"", " (x,y)"])
        );
        assert_eq!(split_args("a)b"), None);
        assert_eq!(split_args("'a"), None);
        assert_eq!(split_args("(a"), None);
    }

    #[test]
    fn unquote_strips_one_level() {
        assert_eq!(unquote("  'a b' "), "a b");
        assert_eq!(unquote("\"'x'\""), "'x'");
        assert_eq!(unquote("'"), "'");
        assert_eq!(unquote("'a\""), "'a\"");
    }

    #[test]
    fn integers_compare_exactly() {
        let big = "170141183460469231731687303715884105727";
        let f = call(&format!("ge({big})"));
        assert!(f.eval(big));
        assert!(!f.eval("170141183460469231731687303715884105726"));
    }

    #[test]
    fn decimals_and_spaces() {
        assert!(call("gt(1.5)").eval(" 2 "));
        assert!(!call("gt(1.5)").eval("1.5"));
        assert!(call("le(' 1.5 ')").eval("1.5"));
        assert!(!call("lt(1)").eval("nan"));
    }

    #[test]
    fn empty_or_unbalanced_arguments_are_not_calls() {
        assert!(matches!(parse_call("gt()"), Ok(None)));
        assert!(matches!(parse_call("gt(  )"), Ok(None)));
        assert!(matches!(parse_call("in(a'b)"), Ok(None)));
        assert!(matches!(parse_call("foo(1)"), Ok(None)));
        assert!(matches!(parse_call("gt(1"), Ok(None)));
        assert!(matches!(parse_call(" gt(1)"), Ok(None)));
    }

    #[test]
    fn bad_arguments_are_errors() {
        for text in [
            "gt(1,2)",
            "range(1)",
            "gt(abc)",
            "network(10.0.0.0/33)",
            "network(fe80::/10)",
            "not(x)",
            "not(gt(1), lt(2))",
            "and(gt(1))",
            "or(gt(1), foo)",
            "regexp([)",
        ] {
            assert!(parse_call(text).is_err(), "{text} should be an error");
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let deep = format!("{}gt(1){}", "not(".repeat(10_000), ")".repeat(10_000));
        assert!(parse_call(&deep).is_err());
        let ok = format!("{}gt(1){}", "not(".repeat(10), ")".repeat(10));
        assert!(call(&ok).eval("2"));
    }

    #[test]
    fn network_ignores_host_bits() {
        let f = call("network(10.0.2.77/24)");
        assert!(f.eval("10.0.2.1"));
        assert!(!f.eval("10.0.3.1"));
        let single = call("network(10.0.2.5)");
        assert!(single.eval("10.0.2.5"));
        assert!(!single.eval("10.0.2.6"));
    }
}
