//! Errors of configure scripts, reported as `name:line:column: message`.

use rhai::{EvalAltResult, ParseError, Position};
use std::fmt;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The script does not parse.
    Syntax,
    /// The script failed while running (a `throw`, a type error, a bad
    /// argument to a binding, a file that cannot be written…).
    Runtime,
    /// A `run(...)` command failed: exited non-zero (`status`) or could not
    /// be started (`status` is `None`).
    Command {
        command: String,
        status: Option<i32>,
    },
    /// The script went over one of its [`Limits`](super::Limits).
    Limit,
    /// The engine itself failed.
    Internal,
}

/// A script failure. Its `Display` is one line:
/// `name:line:column: message` (or `name: message` without a position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// The script's name, as given to `run_script`.
    pub name: String,
    /// 1-based line of the failing statement or call, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    pub kind: ErrorKind,
    pub message: String,
}

impl ScriptError {
    pub fn new(name: &str, kind: ErrorKind, message: impl Into<String>) -> ScriptError {
        ScriptError {
            name: name.to_string(),
            line: None,
            column: None,
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, pos: Position) -> ScriptError {
        self.line = pos.line();
        self.column = pos.position();
        self
    }

    pub(crate) fn from_parse(name: &str, err: &ParseError) -> ScriptError {
        ScriptError::new(name, ErrorKind::Syntax, format!("syntax error: {}", err.0)).at(err.1)
    }

    /// Converts an evaluation error. `failure` is the last `run` failure
    /// the bindings raised (command, status, message), used to recognise
    /// that the script died of it.
    pub(crate) fn from_eval(
        name: &str,
        err: &EvalAltResult,
        failure: Option<&(String, Option<i32>, String)>,
        limit_note: impl Fn(&EvalAltResult) -> Option<String>,
    ) -> ScriptError {
        // Report the innermost error, where it happened, and the chain of
        // script functions it happened in.
        let mut calls = Vec::new();
        let mut cur = err;
        let mut outer_pos = Position::NONE;
        while let EvalAltResult::ErrorInFunctionCall(fname, _, inner, pos)
        | EvalAltResult::ErrorInModule(fname, inner, pos) = cur
        {
            if outer_pos.is_none() {
                outer_pos = *pos;
            }
            calls.push(format!("'{fname}' called at {}", pos_text(*pos)));
            cur = inner;
        }
        let pos = if cur.position().is_none() {
            outer_pos
        } else {
            cur.position()
        };
        let (kind, mut message) = match cur {
            EvalAltResult::ErrorRuntime(value, _) => {
                let text = if value.is_unit() {
                    "runtime error".to_string()
                } else {
                    value.to_string()
                };
                match failure {
                    Some((command, status, msg)) if *msg == text => (
                        ErrorKind::Command {
                            command: command.clone(),
                            status: *status,
                        },
                        text,
                    ),
                    _ => (ErrorKind::Runtime, text),
                }
            }
            EvalAltResult::ErrorParsing(p, _) => (ErrorKind::Syntax, format!("syntax error: {p}")),
            EvalAltResult::ErrorTooManyOperations(_)
            | EvalAltResult::ErrorStackOverflow(_)
            | EvalAltResult::ErrorDataTooLarge(..)
            | EvalAltResult::ErrorTooManyVariables(_)
            | EvalAltResult::ErrorTooManyModules(_)
            | EvalAltResult::ErrorTerminated(..) => (
                ErrorKind::Limit,
                limit_note(cur).unwrap_or_else(|| without_position(cur)),
            ),
            other => (ErrorKind::Runtime, without_position(other)),
        };
        if !calls.is_empty() {
            message = format!("{message} (in function {})", calls.join(", in "));
        }
        ScriptError::new(name, kind, message).at(pos)
    }
}

fn pos_text(pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{l}:{c}"),
        (Some(l), None) => format!("line {l}"),
        _ => "an unknown place".into(),
    }
}

/// Rhai's message for an error, without its ` (line N, position M)` tail.
fn without_position(err: &EvalAltResult) -> String {
    let text = err.to_string();
    let pos = err.position();
    if pos.is_none() {
        return text;
    }
    match text.strip_suffix(&format!(" ({pos})")) {
        Some(t) => t.to_string(),
        None => text,
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = one_line(&self.message);
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {message}", self.name),
            (Some(l), None) => write!(f, "{}:{l}: {message}", self.name),
            _ => write!(f, "{}: {message}", self.name),
        }
    }
}

impl std::error::Error for ScriptError {}

/// Keeps a message on one line: line breaks are shown as `\n`.
pub(crate) fn one_line(s: &str) -> String {
    s.trim_end()
        .replace("\r\n", "\\n")
        .replace(['\n', '\r'], "\\n")
}
