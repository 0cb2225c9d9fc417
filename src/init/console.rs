//! What the operator sees, and the install log.
//!
//! Every message goes to the install log (kept in memory: it is written
//! into the installed tree, or uploaded when the install fails) and,
//! depending on its kind, to the console: steps, warnings, the configure
//! script's output and failures always; each command run through the seam
//! and its output only with `VERBOSE=1`. The console is any writer (the
//! real console in production, a buffer in tests), shared by the threads
//! that bring interfaces up in parallel.

use crate::exec::{CmdLine, CmdOutput, Exec};
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

struct Sink {
    out: Box<dyn Write + Send>,
    log: Vec<u8>,
    verbose: bool,
    /// A progress line is on screen without its newline.
    progress: bool,
}

/// The console and the install log; cloning shares them.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Mutex<Sink>>,
}

impl Console {
    pub fn new(out: Box<dyn Write + Send>) -> Console {
        Console {
            inner: Arc::new(Mutex::new(Sink {
                out,
                log: Vec::new(),
                verbose: false,
                progress: false,
            })),
        }
    }

    fn sink(&self) -> MutexGuard<'_, Sink> {
        // A thread that panicked while holding the lock left a usable
        // buffer: keep logging.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `VERBOSE=1`: show every command on the console too.
    pub fn set_verbose(&self, verbose: bool) {
        self.sink().verbose = verbose;
    }

    pub fn verbose(&self) -> bool {
        self.sink().verbose
    }

    /// A line for the console and the log, prefixed `edeploy: `.
    pub fn say(&self, msg: &str) {
        self.write(&format!("edeploy: {msg}\n"), true);
    }

    /// A warning, on the console and in the log.
    pub fn warn(&self, msg: &str) {
        self.write(&format!("edeploy: warning: {msg}\n"), true);
    }

    /// A trace line: always in the log, on the console with `VERBOSE=1`.
    pub fn trace(&self, msg: &str) {
        let verbose = self.verbose();
        self.write(&format!("{msg}\n"), verbose);
    }

    /// Raw text for both (the configure script's output).
    pub fn text(&self, text: &str) {
        self.write(text, true);
    }

    /// A progress line on the console only, redrawn in place.
    pub fn progress(&self, line: &str) {
        let mut s = self.sink();
        let _ = write!(s.out, "\r{line}");
        let _ = s.out.flush();
        s.progress = true;
    }

    /// Ends a progress line.
    pub fn progress_done(&self) {
        let mut s = self.sink();
        if s.progress {
            let _ = writeln!(s.out);
            let _ = s.out.flush();
            s.progress = false;
        }
    }

    fn write(&self, text: &str, console: bool) {
        let mut s = self.sink();
        s.log.extend_from_slice(text.as_bytes());
        if console {
            if s.progress {
                let _ = writeln!(s.out);
                s.progress = false;
            }
            // A console that went away must not stop the install.
            let _ = s.out.write_all(text.as_bytes());
            let _ = s.out.flush();
        }
    }

    /// The install log so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.sink().log).into_owned()
    }

    /// A writer for the configure script: its lines reach both.
    pub fn writer(&self) -> ConsoleWriter {
        ConsoleWriter(self.clone())
    }
}

/// [`Console`] as an [`io::Write`].
pub struct ConsoleWriter(Console);

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.text(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An [`Exec`] that writes each command, its output and its status to the
/// install log (and the console with `VERBOSE=1`) before passing it on.
pub struct Traced<'a> {
    pub inner: &'a dyn Exec,
    pub console: Console,
}

impl Exec for Traced<'_> {
    fn output(&self, cmd: &CmdLine, stdin: Option<&[u8]>) -> anyhow::Result<CmdOutput> {
        self.console.trace(&format!("+ {}", cmd.display()));
        let res = self.inner.output(cmd, stdin);
        match &res {
            Ok(out) => {
                for text in [&out.stdout, &out.stderr] {
                    let t = text.trim_end();
                    if !t.is_empty() {
                        self.console.trace(t);
                    }
                }
                if !out.success() {
                    self.console.trace(&format!("exit status {}", out.status));
                }
            }
            Err(e) => self.console.trace(&format!("{e:#}")),
        }
        res
    }
}
