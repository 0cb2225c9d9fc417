//! `status.cgi?format=prometheus`: the figures alerts need, in the
//! Prometheus text exposition format (version 0.0.4). See docs/status.md,
//! "Prometheus", for every metric.
//!
//! The gauges are read from the files as the page reads them (`state` and
//! the CMDBs under a shared `flock` of LOCKFILE, waited for a bounded
//! time); the counters from `upload.cgi`'s counters file
//! ([`crate::metrics`]). The sizes of HWDIR, LOGDIR and HEALTHDIR are
//! summed within a budget: at most [`MAX_ENTRIES`] entries per directory
//! and, for the three, `DECISIONBUDGET` of processor time (the page's
//! budget); a sum cut short says so in `edeploy_dir_truncated`.
//!
//! Nothing here writes a file, and no hardware list is parsed: a scrape
//! costs the reading of `state`, the CMDBs and three directory listings.

use super::{read_cmdbs, CmdbStatus, Problem, Profile, SharedLock};
use crate::config::ServerConfig;
use crate::metrics::{self, code_label, Counters, BUCKETS_NS, NCODES};
use crate::protocol::{HW_SUFFIX, LOG_SUFFIX};
use crate::provision::decide::CpuBudget;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// The answer's `Content-Type`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The most entries of one directory looked at for its size.
pub const MAX_ENTRIES: u64 = 200_000;

/// The size of one directory's files, as far as it was summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirUsage {
    /// `hwdir`, `logdir` or `healthdir`.
    pub dir: &'static str,
    pub bytes: u64,
    pub files: u64,
    /// The sum stopped early: the entry limit or the budget was reached,
    /// or the listing failed part way.
    pub truncated: bool,
}

/// Everything a scrape exports.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub section: String,
    pub profiles: Vec<Profile>,
    pub cmdbs: Vec<CmdbStatus>,
    pub counters: Counters,
    pub dirs: Vec<DirUsage>,
    pub problems: Vec<Problem>,
}

/// Reads what a scrape exports for `cfg`'s section. Never writes; never
/// fails: what cannot be read is a problem (and `edeploy_status_problems`).
pub fn gather(cfg: &ServerConfig, lock_wait: Duration, max_entries: u64) -> Snapshot {
    let mut problems = Vec::new();
    let lock = SharedLock::acquire(&cfg.lockfile, lock_wait);
    match &lock {
        Err(e) => problems.push(Problem {
            part: "profiles",
            message: e.clone(),
        }),
        Ok(l) if l.state() == "busy" => problems.push(Problem {
            part: "profiles",
            message: format!(
                "{}: still locked after {lock_wait:?}; the figures were read while files may change",
                cfg.lockfile.display()
            ),
        }),
        Ok(_) => {}
    }
    let state = super::read_state(cfg, &mut problems);
    // No node is looked up: only the counts of each CMDB are exported.
    let (cmdbs, _) = read_cmdbs(&cfg.configdir, state.as_ref(), &[], &mut problems);
    let profiles = super::profiles(&cfg.configdir, state.as_ref(), &cmdbs);
    drop(lock);

    let loaded = metrics::read(&cfg.configdir);
    if let Some(p) = loaded.problem {
        problems.push(Problem {
            part: "profiles",
            message: p,
        });
    }
    let budget = CpuBudget::starting_now(cfg.decision_budget);
    let dirs = [
        ("hwdir", &cfg.hwdir, HW_SUFFIX),
        ("logdir", &cfg.logdir, LOG_SUFFIX),
        ("healthdir", &cfg.healthdir, HW_SUFFIX),
    ]
    .into_iter()
    .map(|(name, dir, suffix)| {
        let (usage, problem) = dir_usage(name, dir, suffix, max_entries, budget);
        if let Some(message) = problem {
            problems.push(Problem {
                part: "uploads",
                message,
            });
        }
        usage
    })
    .collect();
    Snapshot {
        section: cfg.section.clone(),
        profiles,
        cmdbs,
        counters: loaded.counters,
        dirs,
        problems,
    }
}

/// The bytes and number of the regular, not hidden files of `dir` whose
/// names end in `suffix` (the files the status page lists), looking at
/// most at `max_entries` entries and stopping once `budget` is spent.
/// A directory that does not exist is empty; one that cannot be listed is
/// a problem.
fn dir_usage(
    name: &'static str,
    dir: &Path,
    suffix: &str,
    max_entries: u64,
    budget: CpuBudget,
) -> (DirUsage, Option<String>) {
    let mut usage = DirUsage {
        dir: name,
        bytes: 0,
        files: 0,
        truncated: false,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (usage, None),
        Err(e) => {
            usage.truncated = true;
            return (usage, Some(format!("{}: cannot list: {e}", dir.display())));
        }
    };
    for (seen, entry) in (0u64..).zip(entries) {
        if seen >= max_entries || (seen % 256 == 0 && budget.spent()) {
            usage.truncated = true;
            break;
        }
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                usage.truncated = true;
                return (usage, Some(format!("{}: cannot list: {e}", dir.display())));
            }
        };
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if n.starts_with('.') || !n.ends_with(suffix) || n.len() == suffix.len() {
            continue;
        }
        // Not followed: a symlink is not one of the server's files.
        match entry.metadata() {
            Ok(m) if m.is_file() => {
                usage.bytes = usage.bytes.saturating_add(m.len());
                usage.files += 1;
            }
            _ => {}
        }
    }
    (usage, None)
}

/// A label value or a HELP text escaped as the text format asks: `\` as
/// `\\`, a newline as `\n`, and (`quote`: in a label value) `"` as `\"`.
fn escape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A sample's value: integers as they are, `+Inf`/`-Inf`/`NaN` spelt as
/// the format spells them.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// The text of an exposition, family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v, true));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    pub fn text(self) -> String {
        self.out
    }
}

/// Seconds from nanoseconds.
fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The exposition of a snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut e = Exposition::default();
    let section = s.section.as_str();
    let by_code = |e: &mut Exposition, name: &str, help: &str, counts: &[u64; NCODES]| {
        e.family(name, "counter", help);
        for (i, &n) in counts.iter().enumerate() {
            let code = code_label(i);
            e.sample(name, &[("section", section), ("code", &code)], n as f64);
        }
    };

    e.family(
        "edeploy_installs_left",
        "gauge",
        "Installs left per profile of state; +Inf for an unlimited ('*') profile.",
    );
    for p in &s.profiles {
        let left = p.left.map_or(f64::INFINITY, |n| n as f64);
        e.sample(
            "edeploy_installs_left",
            &[("section", section), ("profile", &p.profile)],
            left,
        );
    }
    let cmdbs: Vec<&CmdbStatus> = s.cmdbs.iter().filter(|c| c.error.is_none()).collect();
    for (name, help, used) in [
        (
            "edeploy_cmdb_entries_used",
            "CMDB entries handed out (with a used key), per profile.",
            true,
        ),
        (
            "edeploy_cmdb_entries_free",
            "CMDB entries left to hand out, per profile.",
            false,
        ),
    ] {
        e.family(name, "gauge", help);
        for c in &cmdbs {
            let n = if used { c.used } else { c.free };
            e.sample(
                name,
                &[("section", section), ("profile", &c.profile)],
                n as f64,
            );
        }
    }
    let c = &s.counters;
    by_code(
        &mut e,
        "edeploy_upload_requests_total",
        "upload.cgi requests answered, by HTTP status (other: a status not listed).",
        &c.requests,
    );
    by_code(
        &mut e,
        "edeploy_decisions_total",
        "Hardware uploads answered by upload.cgi, by HTTP status.",
        &c.decisions,
    );
    by_code(
        &mut e,
        "edeploy_failure_reports_total",
        "Failure reports (failure=PROFILE) answered by upload.cgi, by HTTP status.",
        &c.failure_reports,
    );

    let name = "edeploy_decision_duration_seconds";
    e.family(
        name,
        "histogram",
        "Time upload.cgi took to decide for a hardware upload (keep the list, decide, commit, pxemngr).",
    );
    let bucket = format!("{name}_bucket");
    for (&le, n) in BUCKETS_NS.iter().zip(c.cumulative()) {
        let le = number(seconds(le));
        e.sample(&bucket, &[("section", section), ("le", &le)], n as f64);
    }
    let count = c.duration_count();
    e.sample(
        &bucket,
        &[("section", section), ("le", "+Inf")],
        count as f64,
    );
    e.sample(
        &format!("{name}_sum"),
        &[("section", section)],
        seconds(c.duration_sum_ns),
    );
    e.sample(
        &format!("{name}_count"),
        &[("section", section)],
        count as f64,
    );

    for (name, help, n) in [
        (
            "edeploy_wal_recoveries_total",
            "Write-ahead-log recoveries: an update a crash left unfinished, finished by a later request, or the log replayed after a reboot.",
            c.wal_recoveries,
        ),
        (
            "edeploy_wal_records_set_aside_total",
            "Write-ahead-log records that could not be applied and were set aside.",
            c.wal_set_aside,
        ),
    ] {
        e.family(name, "counter", help);
        e.sample(name, &[("section", section)], n as f64);
    }

    for (name, help, value) in [
        (
            "edeploy_dir_bytes",
            "Bytes of the server's files in a directory (*.hw of HWDIR and HEALTHDIR, *.log.gz of LOGDIR).",
            (|d: &DirUsage| d.bytes) as fn(&DirUsage) -> u64,
        ),
        (
            "edeploy_dir_files",
            "Number of the server's files in a directory, as edeploy_dir_bytes counts them.",
            |d: &DirUsage| d.files,
        ),
        (
            "edeploy_dir_truncated",
            "1 when the directory's sums stopped early (entry limit or time budget): they are lower bounds.",
            |d: &DirUsage| u64::from(d.truncated),
        ),
    ] {
        e.family(name, "gauge", help);
        for d in &s.dirs {
            e.sample(
                name,
                &[("section", section), ("dir", d.dir)],
                value(d) as f64,
            );
        }
    }

    e.family(
        "edeploy_status_problems",
        "gauge",
        "Problems met reading the section's files (see status.cgi?format=json).",
    );
    e.sample(
        "edeploy_status_problems",
        &[("section", section)],
        s.problems.len() as f64,
    );
    e.text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{code_index, Request};
    use std::collections::HashMap;
    use std::fs;

    /// The samples of an exposition: `name{labels}` → value, and the
    /// families' HELP and TYPE, checked to come before their samples.
    fn parse(text: &str) -> (HashMap<String, String>, HashMap<String, String>) {
        let mut samples = HashMap::new();
        let mut types = HashMap::new();
        let mut helped = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                helped.push(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert_eq!(helped.last().map(String::as_str), Some(name), "{line}");
                assert!(types.insert(name.to_string(), kind.to_string()).is_none());
            } else {
                let (series, value) = line.rsplit_once(' ').expect("series value");
                let name = series.split('{').next().unwrap_or_default();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        name.strip_suffix(s)
                            .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
                    })
                    .unwrap_or(name);
                assert!(types.contains_key(family), "sample before its TYPE: {line}");
                samples.insert(series.to_string(), value.to_string());
            }
        }
        (samples, types)
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape("a\\b\"c\nd", true), "a\\\\b\\\"c\\nd");
        assert_eq!(escape("a\\b\"c\nd", false), "a\\\\b\"c\\nd");
        let mut e = Exposition::default();
        e.family("x_total", "counter", "with \\ and\nnewline");
        e.sample("x_total", &[("profile", "v\"m\\\n")], 3.0);
        assert_eq!(
            e.text(),
            "# HELP x_total with \\\\ and\\nnewline\n# TYPE x_total counter\n\
             x_total{profile=\"v\\\"m\\\\\\n\"} 3\n"
        );
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(0.0005), "0.0005");
        assert_eq!(number(12.0), "12");
    }

    fn snapshot(counters: Counters) -> Snapshot {
        let profile = |name: &str, left: Option<u64>| Profile {
            profile: name.into(),
            left,
            unlimited: left.is_none(),
            specs: true,
            cmdb_used: None,
            cmdb_free: None,
        };
        Snapshot {
            section: "SERVER".into(),
            profiles: vec![profile("vm", Some(4)), profile("odd\"one\\", None)],
            cmdbs: vec![CmdbStatus {
                profile: "vm".into(),
                file: "vm.cmdb".into(),
                in_state: true,
                error: None,
                total: 5,
                used: 2,
                free: 3,
                entries: Vec::new(),
            }],
            counters,
            dirs: vec![DirUsage {
                dir: "hwdir",
                bytes: 1234,
                files: 2,
                truncated: true,
            }],
            problems: Vec::new(),
        }
    }

    #[test]
    fn every_family_is_typed_and_the_histogram_is_cumulative() {
        let mut c = Counters::default();
        for ms in [0.2, 0.7, 0.7, 3.0, 40.0, 7000.0] {
            c.count(
                Request::Decision {
                    took: Some(Duration::from_secs_f64(ms / 1000.0)),
                },
                200,
            );
        }
        c.count(Request::Decision { took: None }, 404);
        c.count(Request::FailureReport, 409);
        c.count(Request::Other, 302);
        c.wal_recoveries = 2;
        c.wal_set_aside = 1;
        let text = render(&snapshot(c.clone()));
        let (samples, types) = parse(&text);
        let get = |k: &str| -> &str {
            samples
                .get(k)
                .map(String::as_str)
                .unwrap_or_else(|| panic!("no {k} in\n{text}"))
        };
        assert_eq!(types["edeploy_installs_left"], "gauge");
        assert_eq!(types["edeploy_decisions_total"], "counter");
        assert_eq!(types["edeploy_decision_duration_seconds"], "histogram");
        assert_eq!(
            get(r#"edeploy_installs_left{section="SERVER",profile="vm"}"#),
            "4"
        );
        assert_eq!(
            get(r#"edeploy_installs_left{section="SERVER",profile="odd\"one\\"}"#),
            "+Inf"
        );
        assert_eq!(
            get(r#"edeploy_cmdb_entries_used{section="SERVER",profile="vm"}"#),
            "2"
        );
        assert_eq!(
            get(r#"edeploy_cmdb_entries_free{section="SERVER",profile="vm"}"#),
            "3"
        );
        assert_eq!(
            get(r#"edeploy_decisions_total{section="SERVER",code="200"}"#),
            "6"
        );
        assert_eq!(
            get(r#"edeploy_decisions_total{section="SERVER",code="404"}"#),
            "1"
        );
        assert_eq!(
            get(r#"edeploy_upload_requests_total{section="SERVER",code="other"}"#),
            "1"
        );
        assert_eq!(
            get(r#"edeploy_failure_reports_total{section="SERVER",code="409"}"#),
            "1"
        );
        // Every status of the closed set is there, at zero when unseen.
        assert_eq!(
            get(r#"edeploy_decisions_total{section="SERVER",code="507"}"#),
            "0"
        );
        let bucket = |le: &str| -> u64 {
            get(&format!(
                "edeploy_decision_duration_seconds_bucket{{section=\"SERVER\",le=\"{le}\"}}"
            ))
            .parse()
            .expect("a count")
        };
        assert_eq!(bucket("0.0005"), 1);
        assert_eq!(bucket("0.001"), 3);
        assert_eq!(bucket("0.005"), 4);
        assert_eq!(bucket("0.05"), 5);
        assert_eq!(bucket("5"), 5);
        assert_eq!(bucket("+Inf"), 6);
        let mut last = 0;
        for &le in &BUCKETS_NS {
            let n = bucket(&number(seconds(le)));
            assert!(n >= last, "not cumulative at {le}");
            last = n;
        }
        assert_eq!(
            get(r#"edeploy_decision_duration_seconds_count{section="SERVER"}"#),
            "6"
        );
        let sum: f64 = get(r#"edeploy_decision_duration_seconds_sum{section="SERVER"}"#)
            .parse()
            .expect("a number");
        assert!((sum - 7.0446).abs() < 1e-6, "{sum}");
        assert_eq!(
            get(r#"edeploy_wal_recoveries_total{section="SERVER"}"#),
            "2"
        );
        assert_eq!(
            get(r#"edeploy_wal_records_set_aside_total{section="SERVER"}"#),
            "1"
        );
        assert_eq!(
            get(r#"edeploy_dir_bytes{section="SERVER",dir="hwdir"}"#),
            "1234"
        );
        assert_eq!(
            get(r#"edeploy_dir_truncated{section="SERVER",dir="hwdir"}"#),
            "1"
        );
        assert_eq!(get(r#"edeploy_status_problems{section="SERVER"}"#), "0");
        assert_eq!(c.decisions[code_index(200)], 6);
    }

    fn site() -> (tempfile::TempDir, ServerConfig) {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        for d in ["config", "hw", "logs", "health"] {
            fs::create_dir(root.join(d)).expect("mkdir");
        }
        let mut cfg = ServerConfig::with_configdir(root.join("config"));
        cfg.hwdir = root.join("hw");
        cfg.logdir = root.join("logs");
        cfg.healthdir = root.join("health");
        cfg.lockfile = root.join("lock");
        (dir, cfg)
    }

    #[test]
    fn a_site_is_read_without_writing() {
        let (dir, cfg) = site();
        let c = &cfg.configdir;
        fs::write(c.join("state"), "[('vm', 3), ('spare', '*')]\n").expect("state");
        fs::write(
            c.join("vm.cmdb"),
            "[{'ip': '10.0.0.1', 'used': 1}, {'ip': '10.0.0.2'}]\n",
        )
        .expect("cmdb");
        fs::write(cfg.hwdir.join("a.hw"), "x".repeat(100)).expect("hw");
        fs::write(cfg.hwdir.join("b.hw"), "x".repeat(50)).expect("hw");
        fs::write(cfg.hwdir.join(".tmp.hw"), "x".repeat(999)).expect("hidden");
        fs::write(cfg.hwdir.join("notes.txt"), "x".repeat(999)).expect("other");
        fs::write(cfg.logdir.join("n.log.gz"), "x".repeat(7)).expect("log");
        metrics::update(c, |m| m.count(Request::FailureReport, 200)).expect("counters");
        let before: Vec<_> = walk(dir.path());
        let s = gather(&cfg, Duration::from_secs(1), MAX_ENTRIES);
        assert_eq!(walk(dir.path()), before, "a scrape changed a file");
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        let text = render(&s);
        let (samples, _) = parse(&text);
        for (k, v) in [
            (
                r#"edeploy_installs_left{section="SERVER",profile="vm"}"#,
                "3",
            ),
            (
                r#"edeploy_installs_left{section="SERVER",profile="spare"}"#,
                "+Inf",
            ),
            (
                r#"edeploy_cmdb_entries_used{section="SERVER",profile="vm"}"#,
                "1",
            ),
            (
                r#"edeploy_cmdb_entries_free{section="SERVER",profile="vm"}"#,
                "1",
            ),
            (
                r#"edeploy_failure_reports_total{section="SERVER",code="200"}"#,
                "1",
            ),
            (r#"edeploy_dir_bytes{section="SERVER",dir="hwdir"}"#, "150"),
            (r#"edeploy_dir_files{section="SERVER",dir="hwdir"}"#, "2"),
            (r#"edeploy_dir_bytes{section="SERVER",dir="logdir"}"#, "7"),
            (
                r#"edeploy_dir_bytes{section="SERVER",dir="healthdir"}"#,
                "0",
            ),
            (
                r#"edeploy_dir_truncated{section="SERVER",dir="hwdir"}"#,
                "0",
            ),
        ] {
            assert_eq!(
                samples.get(k).map(String::as_str),
                Some(v),
                "{k} in\n{text}"
            );
        }
    }

    #[test]
    fn a_large_directory_is_cut_at_the_entry_limit_and_says_so() {
        let (_dir, cfg) = site();
        for i in 0..50 {
            fs::write(cfg.hwdir.join(format!("n{i}.hw")), "12345").expect("hw");
        }
        let s = gather(&cfg, Duration::from_secs(1), 20);
        let hw = &s.dirs[0];
        assert_eq!(hw.dir, "hwdir");
        assert!(hw.truncated);
        assert_eq!(hw.files, 20);
        assert_eq!(hw.bytes, 100);
        let whole = gather(&cfg, Duration::from_secs(1), MAX_ENTRIES);
        assert!(!whole.dirs[0].truncated);
        assert_eq!(whole.dirs[0].bytes, 250);
    }

    #[test]
    fn unreadable_files_are_problems_not_failures() {
        let (_dir, cfg) = site();
        fs::write(cfg.configdir.join("state"), "[('vm', 3\n").expect("state");
        fs::write(cfg.configdir.join(metrics::FILE), "torn").expect("counters");
        let s = gather(&cfg, Duration::from_secs(1), MAX_ENTRIES);
        let text = render(&s);
        let (samples, _) = parse(&text);
        assert_eq!(
            samples
                .get(r#"edeploy_status_problems{section="SERVER"}"#)
                .map(String::as_str),
            Some("2"),
            "{:?}",
            s.problems
        );
        assert!(s.problems.iter().any(|p| p.message.contains("state")));
        assert!(s
            .problems
            .iter()
            .any(|p| p.message.contains("corrupt or truncated")));
        assert_eq!(
            samples
                .get(r#"edeploy_decisions_total{section="SERVER",code="200"}"#)
                .map(String::as_str),
            Some("0")
        );
    }

    fn walk(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).expect("list").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.clone(), fs::read(&p).expect("read")));
                }
            }
        }
        out.sort();
        out
    }
}
