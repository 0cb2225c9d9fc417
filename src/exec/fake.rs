//! A scriptable [`Exec`] for tests (feature `test-hooks`).
//!
//! A [`Fake`] answers each command by the first of its rules that
//! matches ([`When`] → [`Reply`]), then by its recorded programs
//! (answered with success), then by its fallback, and writes down the
//! commands it was given, so a test sees the true order of steps without
//! a disk being partitioned:
//!
//! ```
//! use edeploy::exec::{CmdLine, Exec, Fake, Reply, When};
//!
//! let fake = Fake::bare()
//!     .answer("dmidecode -s system-version", "1.0\n")
//!     .on(When::prefix(["ipmitool", "user", "test"]), Reply::exit(1, "", ""))
//!     .on(When::program("dmesg"), Reply::stdout("[0.0] Linux\n").unrecorded());
//! let out = fake.run(&CmdLine::shell("dmidecode -s system-version")).unwrap();
//! assert_eq!(out.stdout, "1.0\n");
//! assert!(fake.run(&CmdLine::argv(["ipmitool", "user", "test", "1"])).is_err());
//! fake.run(&CmdLine::argv(["dmesg"])).unwrap();
//! let e = fake.run(&CmdLine::argv(["lspci"])).unwrap_err();
//! assert_eq!(e.to_string(), "lspci: cannot start: not installed");
//! assert_eq!(fake.lines(), ["dmidecode -s system-version", "ipmitool user test 1", "lspci"]);
//! ```

use super::{CmdLine, CmdOutput, Exec, System};
use anyhow::{bail, Result};
use std::sync::Mutex;

type Test = Box<dyn Fn(&CmdLine) -> bool + Send + Sync>;
type Handler = Box<dyn Fn(&CmdLine, Option<&[u8]>) -> Result<CmdOutput> + Send + Sync>;

/// The base name of a program (`/sbin/parted` → `parted`).
fn base(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// The words of a command: its argv, or a shell line split on blanks.
fn words(cmd: &CmdLine) -> Vec<&str> {
    match cmd {
        CmdLine::Argv(v) => v.iter().map(String::as_str).collect(),
        CmdLine::Shell(s) => s.split_whitespace().collect(),
    }
}

/// Which commands a rule applies to: every condition given must hold
/// (none given: every command).
#[derive(Default)]
pub struct When {
    prefix: Vec<String>,
    line: Option<String>,
    containing: Vec<String>,
    test: Option<Test>,
}

impl When {
    /// Every command.
    pub fn any() -> When {
        When::default()
    }

    /// Commands of this program, by base name (`parted` matches
    /// `/sbin/parted -s …` and the shell line `parted -s …`).
    pub fn program(name: impl Into<String>) -> When {
        When::prefix([name])
    }

    /// Commands whose first words are these: the first one compared by
    /// base name, like [`When::program`], the others exactly.
    pub fn prefix<I, S>(words: I) -> When
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        When {
            prefix: words.into_iter().map(Into::into).collect(),
            ..When::default()
        }
    }

    /// The command whose [`CmdLine::display`] is exactly `text`.
    pub fn line(text: impl Into<String>) -> When {
        When {
            line: Some(text.into()),
            ..When::default()
        }
    }

    /// Commands `test` accepts.
    pub fn matching(test: impl Fn(&CmdLine) -> bool + Send + Sync + 'static) -> When {
        When {
            test: Some(Box::new(test)),
            ..When::default()
        }
    }

    /// And whose [`CmdLine::display`] contains `text`.
    pub fn containing(mut self, text: impl Into<String>) -> When {
        self.containing.push(text.into());
        self
    }

    fn matches(&self, cmd: &CmdLine) -> bool {
        if let Some((first, rest)) = self.prefix.split_first() {
            let w = words(cmd);
            let Some((prog, args)) = w.split_first() else {
                return false;
            };
            if base(prog) != first.as_str()
                || args.len() < rest.len()
                || rest.iter().zip(args).any(|(a, b)| a != b)
            {
                return false;
            }
        }
        if self.line.is_some() || !self.containing.is_empty() {
            let text = cmd.display();
            if self.line.as_ref().is_some_and(|l| *l != text)
                || self.containing.iter().any(|c| !text.contains(c.as_str()))
            {
                return false;
            }
        }
        self.test.as_ref().is_none_or(|t| t(cmd))
    }
}

enum Answer {
    Output(CmdOutput),
    /// `Err("{command}: {message}")`.
    Error(String),
    Real,
    With(Handler),
}

/// How a matched command is answered, and whether it is recorded
/// (by default it is).
pub struct Reply {
    answer: Answer,
    record: bool,
}

impl Reply {
    fn of(answer: Answer) -> Reply {
        Reply {
            answer,
            record: true,
        }
    }

    /// Exit status 0, no output.
    pub fn ok() -> Reply {
        Reply::output(CmdOutput::default())
    }

    /// Exit status 0 and this on stdout.
    pub fn stdout(text: impl Into<String>) -> Reply {
        Reply::exit(0, text, "")
    }

    /// This exit status, stdout and stderr.
    pub fn exit(status: i32, stdout: impl Into<String>, stderr: impl Into<String>) -> Reply {
        Reply::output(CmdOutput {
            status,
            stdout: stdout.into(),
            stderr: stderr.into(),
        })
    }

    pub fn output(out: CmdOutput) -> Reply {
        Reply::of(Answer::Output(out))
    }

    /// The command could not be run: an error naming it, then `message`.
    pub fn error(message: impl Into<String>) -> Reply {
        Reply::of(Answer::Error(message.into()))
    }

    /// The error of a program the machine does not have:
    /// `CMD: cannot start: not installed`.
    pub fn not_installed() -> Reply {
        Reply::error("cannot start: not installed")
    }

    /// Runs the command for real, with [`Fake::real`].
    pub fn real() -> Reply {
        Reply::of(Answer::Real)
    }

    /// Whatever `f` does with the command and its stdin: side effects
    /// (a file written, a call counted) and the answer.
    pub fn with(
        f: impl Fn(&CmdLine, Option<&[u8]>) -> Result<CmdOutput> + Send + Sync + 'static,
    ) -> Reply {
        Reply::of(Answer::With(Box::new(f)))
    }

    /// Answers without writing the command down.
    pub fn unrecorded(mut self) -> Reply {
        self.record = false;
        self
    }
}

/// A scriptable [`Exec`]: see the module's documentation.
pub struct Fake {
    rules: Vec<(When, Reply)>,
    /// Programs (base names) recorded and answered with success when no
    /// rule matched.
    recorded: Vec<String>,
    /// The answer to a recorded program: [`Reply::ok`].
    success: Reply,
    otherwise: Reply,
    log: Mutex<Vec<CmdLine>>,
    /// Runs the commands answered with [`Reply::real`].
    pub real: System,
}

impl Fake {
    /// Records the commands of the programs in `recorded` (by base name),
    /// answering them with success and no output, and runs every other
    /// one for real, unrecorded.
    pub fn new<I, S>(recorded: I) -> Fake
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Fake {
            rules: Vec::new(),
            recorded: recorded.into_iter().map(Into::into).collect(),
            success: Reply::ok(),
            otherwise: Reply::real().unrecorded(),
            log: Mutex::new(Vec::new()),
            real: System::default(),
        }
    }

    /// A machine with no programs: records every command, and one no rule
    /// answers fails to start ([`Reply::not_installed`]).
    pub fn bare() -> Fake {
        Fake::new(Vec::<String>::new()).otherwise(Reply::not_installed())
    }

    /// Adds a rule. Rules are tried in the order they were added, before
    /// the recorded programs; the first that matches answers.
    pub fn on(mut self, when: When, reply: Reply) -> Fake {
        self.rules.push((when, reply));
        self
    }

    /// Answers the command whose [`CmdLine::display`] is `line` with exit
    /// status 0 and `stdout`.
    pub fn answer(self, line: impl Into<String>, stdout: impl Into<String>) -> Fake {
        self.on(When::line(line), Reply::stdout(stdout))
    }

    /// How the commands no rule or recorded program matches are answered.
    pub fn otherwise(mut self, reply: Reply) -> Fake {
        self.otherwise = reply;
        self
    }

    /// The recorded commands, in order.
    pub fn commands(&self) -> Vec<CmdLine> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The recorded commands as [`CmdLine::display`] shows them.
    pub fn lines(&self) -> Vec<String> {
        self.commands().iter().map(CmdLine::display).collect()
    }
}

impl Exec for Fake {
    fn output(&self, cmd: &CmdLine, stdin: Option<&[u8]>) -> Result<CmdOutput> {
        let reply = match self.rules.iter().find(|(when, _)| when.matches(cmd)) {
            Some((_, reply)) => reply,
            None if self.recorded.iter().any(|r| r == base(cmd.program())) => &self.success,
            None => &self.otherwise,
        };
        if reply.record {
            if let Ok(mut log) = self.log.lock() {
                log.push(cmd.clone());
            }
        }
        match &reply.answer {
            Answer::Output(out) => Ok(out.clone()),
            Answer::Error(message) => bail!("{}: {message}", cmd.display()),
            Answer::Real => self.real.output(cmd, stdin),
            Answer::With(f) => f(cmd, stdin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_first_matching_rule_answers_then_the_recorded_programs() {
        let fake = Fake::new(["parted"])
            .on(
                When::program("parted").containing("print"),
                Reply::stdout("Disk /dev/vda\n"),
            )
            .on(When::line("dmesg"), Reply::stdout("boot\n").unrecorded())
            .on(When::any(), Reply::exit(3, "", "no such device"));
        let out = fake
            .run(&CmdLine::argv(["/sbin/parted", "-s", "/dev/vda", "print"]))
            .unwrap();
        assert_eq!(out.stdout, "Disk /dev/vda\n");
        // `any` comes before the recorded programs.
        let e = fake.run(&CmdLine::shell("parted -s /dev/vda mklabel msdos"));
        assert_eq!(
            e.unwrap_err().to_string(),
            "parted -s /dev/vda mklabel msdos: exit status 3: no such device"
        );
        assert_eq!(fake.run(&CmdLine::shell("dmesg")).unwrap().stdout, "boot\n");
        assert_eq!(
            fake.lines(),
            [
                "/sbin/parted -s /dev/vda print",
                "parted -s /dev/vda mklabel msdos"
            ]
        );
    }

    #[test]
    fn prefixes_compare_the_program_by_base_name_and_the_rest_exactly() {
        let w = When::prefix(["ipmitool", "user", "test"]);
        assert!(w.matches(&CmdLine::argv(["/usr/bin/ipmitool", "user", "test", "1"])));
        assert!(w.matches(&CmdLine::shell("ipmitool user test 1 16 pw")));
        assert!(!w.matches(&CmdLine::argv(["ipmitool", "user", "set"])));
        assert!(!w.matches(&CmdLine::argv(["ipmitool", "user"])));
        assert!(!w.matches(&CmdLine::argv(["xipmitool", "user", "test"])));
        assert!(!When::program("a").matches(&CmdLine::argv(Vec::<String>::new())));
        let w = When::matching(|c| matches!(c, CmdLine::Shell(_)));
        assert!(w.matches(&CmdLine::shell("true")));
        assert!(!w.matches(&CmdLine::argv(["true"])));
    }

    #[test]
    fn closures_see_the_command_and_its_input_and_keep_state() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&seen);
        let fake = Fake::bare().on(
            When::program("cat"),
            Reply::with(move |cmd, stdin| {
                let mut n = keep.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                n.push(cmd.display());
                Ok(CmdOutput {
                    status: i32::try_from(n.len())?,
                    stdout: String::from_utf8_lossy(stdin.unwrap_or_default()).into(),
                    stderr: String::new(),
                })
            }),
        );
        let out = fake.output(&CmdLine::argv(["cat"]), Some(b"in")).unwrap();
        assert_eq!((out.status, out.stdout.as_str()), (1, "in"));
        assert_eq!(
            fake.output(&CmdLine::argv(["cat", "-"]), None)
                .unwrap()
                .status,
            2
        );
        assert_eq!(*seen.lock().unwrap(), ["cat", "cat -"]);
        assert_eq!(fake.commands().len(), 2);
    }

    #[test]
    fn errors_and_real_runs() {
        let fake = Fake::bare()
            .on(When::program("mount"), Reply::error("cannot start: busy"))
            .on(When::program("echo"), Reply::real().unrecorded());
        let e = fake
            .run(&CmdLine::argv(["mount", "/dev/vda1"]))
            .unwrap_err();
        assert_eq!(e.to_string(), "mount /dev/vda1: cannot start: busy");
        let out = fake.run(&CmdLine::shell("echo real")).unwrap();
        assert_eq!(out.stdout, "real\n");
        let e = fake.run(&CmdLine::argv(["lspci"])).unwrap_err();
        assert_eq!(e.to_string(), "lspci: cannot start: not installed");
        assert_eq!(fake.lines(), ["mount /dev/vda1", "lspci"]);
    }
}
