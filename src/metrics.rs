//! The counters of `upload.cgi` that outlive its process: requests and
//! decisions by HTTP status, failure reports, the decisions' durations,
//! write-ahead-log recoveries and records set aside. Each request is a
//! new process, so they are kept in a file of the section's CONFIGDIR,
//! [`FILE`], updated at the end of each request and read by
//! `status.cgi?format=prometheus` (docs/status.md, "Prometheus").
//!
//! # The file
//!
//! Two slots of [`SLOT`] bytes each: a magic string, a sequence number,
//! the [`WORDS`] counters (little-endian `u64`), and an FNV-1a checksum of
//! all that. An update, under an exclusive `flock` of the file itself
//! (never LOCKFILE), reads both slots, takes the valid one with the
//! highest sequence number, adds to it, and writes it with one `pwrite`
//! over the **other** slot. A write torn by a crash breaks only the slot
//! it was writing, whose checksum no longer matches: the other slot holds
//! the counters before that update, so a crash loses at most the update
//! it interrupted. The file is never fsync'd (an fsync would cost more
//! than the decision): a power loss may lose the last updates, and when
//! neither slot is valid the counters restart from zero, with a log line.
//!
//! The file's size is fixed whatever the nodes send: statuses are a closed
//! set ([`CODES`], anything else is `other`), and no request data becomes
//! a label.
//!
//! Nothing here may fail a decision: callers log an error and go on.

use fs4::fs_std::FileExt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The counters file, in CONFIGDIR (hidden, like the write-ahead log).
pub const FILE: &str = ".edeploy-metrics";

/// The HTTP statuses counted by their own label; any other is `other`.
pub const CODES: [u16; 9] = [200, 400, 404, 405, 409, 413, 500, 503, 507];

/// [`CODES`] and `other`.
pub const NCODES: usize = CODES.len() + 1;

/// The upper bounds of the decision duration histogram's buckets, in
/// nanoseconds (0.5 ms to 5 s), `+Inf` aside.
pub const BUCKETS_NS: [u64; 13] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

/// The counters, in the order they are stored.
pub const WORDS: usize = 3 * NCODES + BUCKETS_NS.len() + 1 + 3;

const MAGIC: &[u8; 8] = b"EDMETRC1";

/// One slot: magic, sequence number, counters, checksum.
pub const SLOT: usize = 8 + 8 + 8 * WORDS + 8;

/// The longest wait for the file's lock before the update is given up
/// (and logged): an update holds it for microseconds.
pub const LOCK_WAIT: Duration = Duration::from_millis(200);

/// The label of counter index `i` of a by-status family: the status, or
/// `other`.
pub fn code_label(i: usize) -> String {
    CODES
        .get(i)
        .map_or_else(|| "other".to_string(), |c| c.to_string())
}

/// The index of `status` in the by-status families.
pub fn code_index(status: u16) -> usize {
    CODES
        .iter()
        .position(|&c| c == status)
        .unwrap_or(CODES.len())
}

/// What an `upload.cgi` request was, once answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A hardware upload; `took` is how long the decision took (`None`
    /// when it was refused before deciding, e.g. a list that does not
    /// parse).
    Decision { took: Option<Duration> },
    /// `failure=P`.
    FailureReport,
    /// Anything else: an install log, or a request refused before its
    /// kind was known.
    Other,
}

/// Every counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Every `upload.cgi` request, by status.
    pub requests: [u64; NCODES],
    /// Hardware uploads, by status.
    pub decisions: [u64; NCODES],
    /// Failure reports, by status.
    pub failure_reports: [u64; NCODES],
    /// Decisions per bucket of [`BUCKETS_NS`], **not** cumulative: index
    /// `i` counts durations in `(BUCKETS_NS[i-1], BUCKETS_NS[i]]`, the last
    /// one those over 5 s.
    pub durations: [u64; BUCKETS_NS.len() + 1],
    /// The sum of the decisions' durations, in nanoseconds.
    pub duration_sum_ns: u64,
    /// Write-ahead-log recoveries that finished an update.
    pub wal_recoveries: u64,
    /// Write-ahead-log records set aside.
    pub wal_set_aside: u64,
}

impl Counters {
    /// Counts one answered request.
    pub fn count(&mut self, request: Request, status: u16) {
        let i = code_index(status);
        bump(&mut self.requests[i], 1);
        match request {
            Request::Decision { took } => {
                bump(&mut self.decisions[i], 1);
                if let Some(took) = took {
                    self.observe(took);
                }
            }
            Request::FailureReport => bump(&mut self.failure_reports[i], 1),
            Request::Other => {}
        }
    }

    /// Adds one decision's duration to the histogram.
    pub fn observe(&mut self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS_NS.len());
        bump(&mut self.durations[bucket], 1);
        bump(&mut self.duration_sum_ns, ns);
    }

    /// The histogram's count (all decisions timed).
    pub fn duration_count(&self) -> u64 {
        self.durations
            .iter()
            .fold(0u64, |a, &n| a.saturating_add(n))
    }

    /// The histogram's cumulative buckets (`le` = each of [`BUCKETS_NS`]).
    pub fn cumulative(&self) -> [u64; BUCKETS_NS.len()] {
        let mut out = [0; BUCKETS_NS.len()];
        let mut sum = 0u64;
        for (o, &n) in out.iter_mut().zip(&self.durations) {
            sum = sum.saturating_add(n);
            *o = sum;
        }
        out
    }

    fn words(&self) -> [u64; WORDS] {
        let mut out = [0; WORDS];
        let all = self
            .requests
            .iter()
            .chain(&self.decisions)
            .chain(&self.failure_reports)
            .chain(&self.durations)
            .chain([
                &self.duration_sum_ns,
                &self.wal_recoveries,
                &self.wal_set_aside,
            ]);
        for (o, &w) in out.iter_mut().zip(all) {
            *o = w;
        }
        out
    }

    /// Every counter, in the order of the file's words.
    fn words_mut(&mut self) -> impl Iterator<Item = &mut u64> {
        self.requests
            .iter_mut()
            .chain(self.decisions.iter_mut())
            .chain(self.failure_reports.iter_mut())
            .chain(self.durations.iter_mut())
            .chain([
                &mut self.duration_sum_ns,
                &mut self.wal_recoveries,
                &mut self.wal_set_aside,
            ])
    }

    fn from_words(w: &[u64; WORDS]) -> Counters {
        let mut c = Counters::default();
        let mut it = w.iter().copied();
        for t in c.words_mut() {
            *t = it.next().unwrap_or(0);
        }
        c
    }
}

fn bump(counter: &mut u64, n: u64) {
    *counter = counter.saturating_add(n);
}

/// FNV-1a, 64 bits: enough to tell a torn slot from a whole one.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn encode(seq: u64, c: &Counters) -> [u8; SLOT] {
    let mut out = [0u8; SLOT];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    for (i, w) in c.words().iter().enumerate() {
        out[16 + 8 * i..24 + 8 * i].copy_from_slice(&w.to_le_bytes());
    }
    let sum = fnv1a(&out[..SLOT - 8]);
    out[SLOT - 8..].copy_from_slice(&sum.to_le_bytes());
    out
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// A slot's sequence number and counters, when it is whole.
fn decode(slot: &[u8]) -> Option<(u64, Counters)> {
    if slot.len() < SLOT
        || &slot[..8] != MAGIC
        || le64(&slot[SLOT - 8..]) != fnv1a(&slot[..SLOT - 8])
    {
        return None;
    }
    let mut words = [0u64; WORDS];
    for (i, w) in words.iter_mut().enumerate() {
        *w = le64(&slot[16 + 8 * i..]);
    }
    Some((le64(&slot[8..]), Counters::from_words(&words)))
}

/// What the file holds: the newest whole slot, its index and sequence
/// number.
struct Current {
    counters: Counters,
    seq: u64,
    slot: Option<usize>,
    /// Why the counters start from zero (no whole slot), when they do.
    restarted: Option<String>,
}

fn read_current(file: &File, path: &Path) -> Result<Current, String> {
    let mut buf = vec![0u8; 2 * SLOT];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        }
    }
    let best = (0..2)
        .filter_map(|i| {
            let end = ((i + 1) * SLOT).min(got);
            decode(buf.get(i * SLOT..end)?).map(|(seq, c)| (i, seq, c))
        })
        .max_by_key(|(_, seq, _)| *seq);
    Ok(match best {
        Some((i, seq, counters)) => Current {
            counters,
            seq,
            slot: Some(i),
            restarted: None,
        },
        None => Current {
            counters: Counters::default(),
            seq: 0,
            slot: None,
            // No file yet (or an empty one, from an update that died
            // before writing) is how a new server starts: nothing to say.
            restarted: (got > 0).then(|| {
                format!(
                    "{}: the counters file is corrupt or truncated ({got} bytes, no whole \
                     record); counters restart from zero",
                    path.display()
                )
            }),
        },
    })
}

/// The counters file of CONFIGDIR `configdir`.
pub fn path(configdir: &Path) -> PathBuf {
    configdir.join(FILE)
}

/// `flock`s `file` (shared or exclusive), polling for at most `wait`.
fn lock(file: &File, exclusive: bool, wait: Duration) -> std::io::Result<bool> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_micros(50);
    loop {
        let got = if exclusive {
            FileExt::try_lock_exclusive(file)?
        } else {
            FileExt::try_lock_shared(file)?
        };
        if got {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// Adds to the counters of `configdir` under the file's own lock. Returns
/// a sentence to log when the counters restarted from zero (the file held
/// no whole record; a missing or empty file is a new server's and starts
/// from zero silently); an error when nothing could be written (the
/// caller logs it and goes on).
pub fn update(configdir: &Path, add: impl FnOnce(&mut Counters)) -> Result<Option<String>, String> {
    update_with(configdir, true, add)
}

fn update_with(
    configdir: &Path,
    create: bool,
    add: impl FnOnce(&mut Counters),
) -> Result<Option<String>, String> {
    let path = path(configdir);
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "{}: cannot open the counters file: {e}",
                path.display()
            ))
        }
    };
    match lock(&file, true, LOCK_WAIT) {
        Ok(true) => {}
        Ok(false) => {
            return Err(format!(
                "{}: still locked after {LOCK_WAIT:?}; this request is not counted",
                path.display()
            ))
        }
        Err(e) => return Err(format!("{}: cannot lock: {e}", path.display())),
    }
    let mut current = read_current(&file, &path)?;
    add(&mut current.counters);
    let target = match current.slot {
        Some(i) => 1 - i,
        None => 0,
    };
    let bytes = encode(current.seq.wrapping_add(1), &current.counters);
    if current.slot.is_none() {
        // Both slots from the first update on: the file's size never
        // changes after it.
        file.set_len(2 * SLOT as u64)
            .map_err(|e| format!("{}: cannot size: {e}", path.display()))?;
    }
    file.write_all_at(&bytes, (target * SLOT) as u64)
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    // The lock goes with the file.
    Ok(current.restarted)
}

/// [`update`] for the places that have no log of their own (the
/// write-ahead log's recovery): a problem goes to stderr, which the web
/// server keeps in its error log. The file is not created here: the
/// write-ahead log is also recovered by the operator's tools, run as
/// root, and a file they made would be root's, which `upload.cgi` (the
/// web server's user) could not write. `upload.cgi` makes it on its first
/// request, before any update of it can need recovering.
pub fn update_or_warn(configdir: &Path, add: impl FnOnce(&mut Counters)) {
    match update_with(configdir, false, add) {
        Ok(None) => {}
        Ok(Some(note)) | Err(note) => eprintln!("edeploy: {note}"),
    }
}

/// What `upload.cgi` learns of a request while answering it, to count
/// it once answered ([`Tally::record`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// The CONFIGDIR of the request's section, once the form is read.
    pub configdir: Option<PathBuf>,
    /// What the request is, once known (`None`: [`Request::Other`]).
    pub request: Option<Request>,
}

impl Tally {
    /// Counts the answered request in its section's CONFIGDIR, or in
    /// `[SERVER]`'s when it was refused before its section was known
    /// (405, 413, a malformed body, an unknown section). Returns the lines to log: counters that
    /// started from zero, or an update that could not be made (the
    /// request is then not counted; its answer is not changed).
    pub fn record(&self, conf_path: &Path, status: u16) -> Option<String> {
        let configdir = match &self.configdir {
            Some(d) => d.clone(),
            None => match crate::config::ConfFile::load(conf_path).and_then(|c| c.server(None)) {
                Ok(cfg) => cfg.configdir,
                Err(e) => return Some(format!("metrics: not counted: {e:#}")),
            },
        };
        let request = self.request.unwrap_or(Request::Other);
        match update(&configdir, |c| c.count(request, status)) {
            Ok(None) => None,
            Ok(Some(note)) => Some(format!("metrics: {note}")),
            Err(e) => Some(format!("metrics: not counted: {e}")),
        }
    }
}

/// The counters as read, with the problem met if any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub counters: Counters,
    /// Set when the file holds no whole record (the counters read as
    /// zero) or could not be read.
    pub problem: Option<String>,
}

/// Reads the counters of `configdir`, never creating or changing the
/// file: a missing file is all zeros. Taken under a shared lock when one
/// is had within [`LOCK_WAIT`], else read as it is (the checksums tell a
/// slot being written).
pub fn read(configdir: &Path) -> Loaded {
    let path = path(configdir);
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::default(),
        Err(e) => {
            return Loaded {
                counters: Counters::default(),
                problem: Some(format!("{}: cannot open: {e}", path.display())),
            }
        }
    };
    let _ = lock(&file, false, LOCK_WAIT);
    match read_current(&file, &path) {
        Ok(c) => Loaded {
            counters: c.counters,
            // An empty file is one just created: nothing to report.
            problem: c
                .restarted
                .filter(|_| file.metadata().is_ok_and(|m| m.len() > 0)),
        },
        Err(e) => Loaded {
            counters: Counters::default(),
            problem: Some(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    #[test]
    fn counts_by_status_with_a_closed_set_of_labels() {
        let mut c = Counters::default();
        c.count(
            Request::Decision {
                took: Some(Duration::from_micros(600)),
            },
            200,
        );
        c.count(Request::Decision { took: None }, 400);
        c.count(Request::FailureReport, 409);
        c.count(Request::Other, 599);
        c.count(Request::Other, 12345);
        assert_eq!(c.requests[code_index(200)], 1);
        assert_eq!(c.requests[code_index(400)], 1);
        assert_eq!(c.requests[code_index(409)], 1);
        assert_eq!(c.requests[NCODES - 1], 2, "unknown statuses are `other`");
        assert_eq!(code_label(NCODES - 1), "other");
        assert_eq!(code_label(0), "200");
        assert_eq!(c.decisions.iter().sum::<u64>(), 2);
        assert_eq!(c.failure_reports[code_index(409)], 1);
        assert_eq!(c.duration_count(), 1);
        assert_eq!(c.duration_sum_ns, 600_000);
        // 0.6 ms is over 0.5 ms, within 1 ms.
        assert_eq!(c.durations[1], 1);
        assert_eq!(c.cumulative()[0], 0);
        assert_eq!(c.cumulative()[1], 1);
    }

    #[test]
    fn bucket_bounds_are_inclusive_and_past_the_last_is_counted() {
        let mut c = Counters::default();
        c.observe(Duration::from_nanos(500_000));
        c.observe(Duration::from_secs(5));
        c.observe(Duration::from_secs(60));
        assert_eq!(c.durations[0], 1);
        assert_eq!(c.durations[BUCKETS_NS.len() - 1], 1);
        assert_eq!(c.durations[BUCKETS_NS.len()], 1);
        assert_eq!(c.cumulative()[BUCKETS_NS.len() - 1], 2);
        assert_eq!(c.duration_count(), 3);
    }

    #[test]
    fn slots_round_trip_and_a_torn_slot_is_refused() {
        let mut c = Counters::default();
        c.count(Request::FailureReport, 200);
        c.wal_recoveries = 7;
        c.wal_set_aside = u64::MAX;
        let bytes = encode(42, &c);
        assert_eq!(decode(&bytes), Some((42, c.clone())));
        for at in [0, 9, 100, SLOT - 1] {
            let mut torn = bytes;
            torn[at] ^= 0x40;
            assert_eq!(decode(&torn), None, "flipped byte {at}");
        }
        assert_eq!(decode(&bytes[..SLOT - 1]), None);
    }

    #[test]
    fn every_counter_has_its_own_word() {
        let mut c = Counters::default();
        let mut n = 1u64;
        for w in c.words_mut() {
            *w = n;
            n += 1;
        }
        assert_eq!(n - 1, WORDS as u64, "WORDS counts every field");
        assert_eq!(decode(&encode(3, &c)), Some((3, c)));
    }

    #[test]
    fn updates_alternate_slots_and_a_torn_write_loses_only_itself() {
        let d = dir();
        for i in 0..3u64 {
            if i == 1 {
                let len = fs::metadata(path(d.path())).expect("file").len();
                assert_eq!(
                    len,
                    2 * SLOT as u64,
                    "the size is fixed from the first update"
                );
            }
            let note = update(d.path(), |c| c.wal_recoveries += 1).expect("update");
            assert_eq!(note, None, "a new file starts from zero without a note");
        }
        assert_eq!(
            fs::metadata(path(d.path())).expect("file").len(),
            2 * SLOT as u64
        );
        assert_eq!(read(d.path()).counters.wal_recoveries, 3);
        // Tear the slot holding the newest counters (the 3rd update wrote
        // slot 0): the other one still has the 2nd update.
        let mut data = fs::read(path(d.path())).expect("read");
        data[SLOT / 2] ^= 0xff;
        fs::write(path(d.path()), &data).expect("write");
        let loaded = read(d.path());
        assert_eq!(loaded.counters.wal_recoveries, 2);
        assert_eq!(loaded.problem, None);
        // The next update goes on from there, over the torn slot.
        assert_eq!(update(d.path(), |c| c.wal_recoveries += 1), Ok(None));
        assert_eq!(read(d.path()).counters.wal_recoveries, 3);
    }

    #[test]
    fn a_corrupt_or_truncated_file_restarts_from_zero_and_says_so() {
        for (what, data) in [
            ("garbage", vec![0x5a; 2 * SLOT]),
            (
                "truncated",
                encode(1, &Counters::default())[..SLOT - 3].to_vec(),
            ),
            ("short", b"EDMETRC1".to_vec()),
        ] {
            let d = dir();
            fs::write(path(d.path()), &data).expect("write");
            let loaded = read(d.path());
            assert_eq!(loaded.counters, Counters::default(), "{what}");
            let problem = loaded
                .problem
                .unwrap_or_else(|| panic!("{what}: no problem"));
            assert!(
                problem.contains("corrupt or truncated"),
                "{what}: {problem}"
            );
            assert!(problem.contains(FILE), "{what}: {problem}");
            let note = update(d.path(), |c| c.count(Request::Other, 200))
                .expect("update")
                .unwrap_or_else(|| panic!("{what}: no note"));
            assert!(note.contains("restart from zero"), "{what}: {note}");
            let loaded = read(d.path());
            assert_eq!(loaded.problem, None, "{what}");
            assert_eq!(loaded.counters.requests[0], 1, "{what}");
        }
    }

    #[test]
    fn a_missing_file_reads_as_zeros_and_is_not_created_by_reading() {
        let d = dir();
        assert_eq!(read(d.path()), Loaded::default());
        assert!(!path(d.path()).exists());
    }

    #[test]
    fn the_write_ahead_log_counts_only_into_an_existing_file() {
        let d = dir();
        update_or_warn(d.path(), |c| c.wal_recoveries += 1);
        assert!(!path(d.path()).exists(), "made by the recovery");
        update(d.path(), |_| {}).expect("made by upload.cgi");
        update_or_warn(d.path(), |c| c.wal_recoveries += 1);
        assert_eq!(read(d.path()).counters.wal_recoveries, 1);
    }

    #[test]
    fn an_unwritable_place_is_an_error_not_a_panic() {
        let d = dir();
        let missing = d.path().join("no-such-dir");
        let e = update(&missing, |c| c.wal_set_aside += 1).expect_err("no directory");
        assert!(e.contains("cannot open the counters file"), "{e}");
        assert!(e.contains("no-such-dir"), "{e}");
    }

    #[test]
    fn concurrent_updates_from_threads_sum_exactly() {
        let d = dir();
        let threads = 8;
        let each = 200;
        std::thread::scope(|s| {
            for t in 0..threads {
                let p = d.path();
                s.spawn(move || {
                    for i in 0..each {
                        let status = if (t + i) % 2 == 0 { 200 } else { 404 };
                        update(p, |c| {
                            c.count(
                                Request::Decision {
                                    took: Some(Duration::from_millis(1)),
                                },
                                status,
                            )
                        })
                        .expect("update");
                    }
                });
            }
        });
        let c = read(d.path()).counters;
        let total = (threads * each) as u64;
        assert_eq!(c.requests.iter().sum::<u64>(), total);
        assert_eq!(c.decisions[code_index(200)], total / 2);
        assert_eq!(c.decisions[code_index(404)], total / 2);
        assert_eq!(c.duration_count(), total);
        assert_eq!(c.duration_sum_ns, total * 1_000_000);
    }

    #[test]
    fn a_held_lock_gives_up_within_the_bound() {
        let d = dir();
        update(d.path(), |_| {}).expect("create");
        let holder = File::open(path(d.path())).expect("open");
        FileExt::lock_exclusive(&holder).expect("lock");
        let started = Instant::now();
        let e = update(d.path(), |c| c.wal_recoveries += 1).expect_err("locked");
        assert!(e.contains("still locked"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(30), "a hang guard");
        // Reading does not wait for ever either, and sees the last counters.
        assert_eq!(read(d.path()).counters.wal_recoveries, 0);
        FileExt::unlock(&holder).expect("unlock");
        assert_eq!(update(d.path(), |c| c.wal_recoveries += 1), Ok(None));
        assert_eq!(read(d.path()).counters.wal_recoveries, 1);
    }
}
