//! Comparing health-check results: `edeploy-admin health compare DIR`.
//!
//! A result is a node's hardware list with benchmark lines added, stored as
//! `HEALTHDIR/<sysname>-<YYYYmmddHHMMSS>.hw`. Machines of the same model
//! (`system product vendor` + `system product name`) should perform alike,
//! so each benchmark figure is compared with the median of its model's
//! group; a figure more than `threshold` away from it is an [`Outlier`].
//! The rules are written up in docs/health.md, "Comparing results".
//!
//! Reading and judging live here; [`plot`] draws one PNG per model and
//! metric; `edeploy-admin` (src/admin.rs) only chooses what to print.

pub mod plot;

use crate::hw::{self, Line};
use crate::literal;
use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The default threshold: a figure more than 15% from its group's median.
pub const DEFAULT_THRESHOLD: f64 = 0.15;
/// Fewer machines than this with a metric: listed, not judged. With two
/// machines the median sits halfway between them, so both or neither
/// would be flagged and nothing says which one is wrong.
pub const MIN_GROUP: usize = 3;

/// One figure far from its group's median.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outlier {
    /// The result's file name in DIR.
    pub file: String,
    /// The sysname part of the file name.
    pub machine: String,
    /// `<vendor> <product name>`.
    pub model: String,
    /// e.g. `cpu logical loops_per_sec`, `disk sda standalone_read_1M_KBps`.
    pub metric: String,
    pub value: f64,
    pub median: f64,
    /// `(value - median) / median`, e.g. -0.32.
    pub deviation: f64,
}

impl Outlier {
    /// Every metric is a throughput: below the median is the bad side.
    pub fn is_slow(&self) -> bool {
        self.deviation < 0.0
    }

    /// `slow` or `fast`, as the text and the plots say it.
    pub fn side(&self) -> &'static str {
        if self.is_slow() {
            "slow"
        } else {
            "fast"
        }
    }
}

/// Reads every `*.hw` in `dir` and returns the outliers, worst first.
///
/// Strict: a result that cannot be read is an error naming its file and
/// line (all of them, when several are bad). [`compare`] gives the outliers
/// of the readable results together with the problems.
pub fn outliers(dir: &std::path::Path) -> anyhow::Result<Vec<Outlier>> {
    let report = compare(dir, &CompareOptions::default())?;
    if !report.problems.is_empty() {
        let all: Vec<&str> = report.problems.iter().map(|p| p.error.as_str()).collect();
        anyhow::bail!("{}", all.join("; "));
    }
    Ok(report.outliers)
}

/// How to judge.
#[derive(Debug, Clone, Copy)]
pub struct CompareOptions {
    /// Flag `|value - median| / median > threshold`.
    pub threshold: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

/// The result file used for one machine.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub machine: String,
    pub file: String,
}

/// One machine's figure for one metric.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub machine: String,
    pub file: String,
    pub value: f64,
}

/// One metric of one model: its figures and what was made of them.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub metric: String,
    /// `events/s`, `MiB/s`, `KiB/s` or `IOPS`.
    pub unit: &'static str,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Whether outliers were looked for (enough machines, median above 0).
    pub judged: bool,
    /// Why not, when not judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_judged: Option<String>,
    /// One per machine that has the metric, by machine name.
    pub samples: Vec<Sample>,
    /// Worst first.
    pub outliers: Vec<Outlier>,
}

/// The machines of one model.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub model: String,
    /// By machine name.
    pub machines: Vec<Machine>,
    /// By metric name.
    pub metrics: Vec<Metric>,
}

/// A result file that could not be used.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub file: String,
    /// `path:line: what is wrong`.
    pub error: String,
}

/// One PNG written by [`plot::write_plots`].
#[derive(Debug, Clone, Serialize)]
pub struct PlotFile {
    pub path: String,
    pub model: String,
    pub metric: String,
    pub width: u32,
    pub height: u32,
}

/// Everything `health compare` found.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub dir: String,
    pub threshold: f64,
    pub min_group: usize,
    /// `*.hw` files found in the directory.
    pub files: usize,
    /// By model.
    pub groups: Vec<Group>,
    /// All groups' outliers, worst first.
    pub outliers: Vec<Outlier>,
    /// Older results of machines that have a newer readable one: not compared.
    pub superseded: Vec<String>,
    /// Results that could not be read, named with file and line.
    pub problems: Vec<Problem>,
    /// Filled by the caller after [`plot::write_plots`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plots: Vec<PlotFile>,
}

impl Comparison {
    /// Number of machines compared.
    pub fn machines(&self) -> usize {
        self.groups.iter().map(|g| g.machines.len()).sum()
    }
}

/// A benchmark line of the health-check format (docs/health.md) or of the
/// original's other benchmark modes: CPU and memory figures on `cpu` lines,
/// disk figures on `disk` lines. Everything else in the hardware list is
/// inventory and is not compared.
fn is_benchmark(l: &Line) -> bool {
    match l[0].as_str() {
        "cpu" => l[2] == "loops_per_sec" || l[2].contains("bandwidth_"),
        "disk" => l[2].ends_with("_KBps") || l[2].ends_with("_IOps"),
        _ => false,
    }
}

/// The unit of a benchmark key, for the table and the plots' y axis.
pub fn unit_of(metric: &str) -> &'static str {
    let key = metric.rsplit(' ').next().unwrap_or(metric);
    if key == "loops_per_sec" {
        "events/s"
    } else if key.ends_with("_KBps") {
        "KiB/s"
    } else if key.ends_with("_IOps") {
        "IOPS"
    } else if key.contains("bandwidth_") {
        "MiB/s"
    } else {
        ""
    }
}

/// `<sysname>-<YYYYmmddHHMMSS>[-N].hw` → (sysname, a key ordering the
/// machine's results), read by [`crate::protocol::parse_health_name`]. A
/// name without the timestamp is still a result: its stem is the machine,
/// older than any timestamped result of the same machine.
fn split_name(file: &str) -> Option<(&str, Option<String>)> {
    crate::protocol::parse_health_name(file).map(|h| (h.machine, h.order_key()))
}

/// A readable result.
struct Parsed {
    model: String,
    /// (metric, value), in file order, first occurrence of each metric.
    figures: Vec<(String, f64)>,
}

fn read_result(path: &Path) -> Result<Parsed, String> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let doc = literal::parse_named(&text, &shown, literal::ParseOptions::default())
        .map_err(|e| e.to_string())?;
    let lines = hw::from_document(&doc, &shown).map_err(|e| e.to_string())?;
    let mut figures: Vec<(String, f64)> = Vec::new();
    // `from_document` turns item i into line i, so the document's item
    // positions are the lines' positions in the file.
    for (i, l) in lines.iter().enumerate() {
        if !is_benchmark(l) {
            continue;
        }
        let metric = format!("{} {} {}", l[0], l[1], l[2]);
        let value = parse_figure(&l[3]).map_err(|why| {
            format!(
                "{shown}:{}: value of ({}, {}, {}) is {}: {why}",
                doc.pos_of(i).line,
                literal::py_repr(&l[0]),
                literal::py_repr(&l[1]),
                literal::py_repr(&l[2]),
                literal::py_repr(&l[3]),
            )
        })?;
        if !figures.iter().any(|(m, _)| *m == metric) {
            figures.push((metric, value));
        }
    }
    Ok(Parsed {
        model: model_of(&lines),
        figures,
    })
}

fn parse_figure(s: &str) -> Result<f64, &'static str> {
    let v: f64 = s.trim().parse().map_err(|_| "not a number")?;
    if !v.is_finite() {
        Err("not a finite number")
    } else if v < 0.0 {
        Err("a throughput cannot be negative")
    } else {
        Ok(v)
    }
}

/// `<vendor> <product name>`; a missing part is left out.
fn model_of(lines: &[Line]) -> String {
    let parts: Vec<&str> = ["vendor", "name"]
        .iter()
        .filter_map(|k| hw::get(lines, "system", "product", k))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        "unknown model".into()
    } else {
        parts.join(" ")
    }
}

/// The median of a non-empty slice.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Slow ones first, the slowest first; then fast ones, the fastest first.
fn worst_first(a: &Outlier, b: &Outlier) -> std::cmp::Ordering {
    let key = |o: &Outlier| {
        if o.is_slow() {
            (0, o.deviation)
        } else {
            (1, -o.deviation)
        }
    };
    let (ka, kb) = (key(a), key(b));
    ka.0.cmp(&kb.0)
        .then(ka.1.total_cmp(&kb.1))
        .then_with(|| a.model.cmp(&b.model))
        .then_with(|| a.machine.cmp(&b.machine))
        .then_with(|| a.metric.cmp(&b.metric))
}

/// Reads `dir` and compares the latest result of each machine with the
/// other machines of its model. Fails only when the directory cannot be
/// listed; unreadable results are in [`Comparison::problems`].
pub fn compare(dir: &Path, opts: &CompareOptions) -> anyhow::Result<Comparison> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?;
    // machine → [(timestamp, file name)]
    let mut by_machine: BTreeMap<String, Vec<(Option<String>, String)>> = BTreeMap::new();
    let mut files = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((machine, ts)) = split_name(&name) else {
            continue;
        };
        if !entry.path().is_file() {
            continue;
        }
        files += 1;
        by_machine
            .entry(machine.to_string())
            .or_default()
            .push((ts, name.clone()));
    }

    let mut problems = Vec::new();
    let mut superseded = Vec::new();
    // model → [(machine, file, parsed)]
    let mut by_model: BTreeMap<String, Vec<(String, String, Parsed)>> = BTreeMap::new();
    for (machine, mut results) in by_machine {
        // Newest first; `None` (no timestamp) sorts below every timestamp.
        results.sort_by(|a, b| b.cmp(a));
        let mut chosen = false;
        for (_, file) in results {
            if chosen {
                superseded.push(file);
                continue;
            }
            match read_result(&dir.join(&file)) {
                Ok(p) => {
                    chosen = true;
                    by_model
                        .entry(p.model.clone())
                        .or_default()
                        .push((machine.clone(), file, p));
                }
                Err(error) => problems.push(Problem { file, error }),
            }
        }
    }
    superseded.sort();

    let mut groups = Vec::new();
    let mut all_outliers = Vec::new();
    for (model, members) in by_model {
        let mut per_metric: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
        for (machine, file, p) in &members {
            for (metric, value) in &p.figures {
                per_metric.entry(metric.clone()).or_default().push(Sample {
                    machine: machine.clone(),
                    file: file.clone(),
                    value: *value,
                });
            }
        }
        let mut metrics = Vec::new();
        for (metric, samples) in per_metric {
            let m = judge(&model, metric, samples, opts.threshold);
            all_outliers.extend(m.outliers.iter().cloned());
            metrics.push(m);
        }
        groups.push(Group {
            model,
            machines: members
                .into_iter()
                .map(|(machine, file, _)| Machine { machine, file })
                .collect(),
            metrics,
        });
    }
    all_outliers.sort_by(worst_first);

    Ok(Comparison {
        dir: dir.display().to_string(),
        threshold: opts.threshold,
        min_group: MIN_GROUP,
        files,
        groups,
        outliers: all_outliers,
        superseded,
        problems,
        plots: Vec::new(),
    })
}

fn judge(model: &str, metric: String, samples: Vec<Sample>, threshold: f64) -> Metric {
    let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    let med = median(&values);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let not_judged = if samples.len() < MIN_GROUP {
        Some(format!(
            "{} machine{}, {MIN_GROUP} needed",
            samples.len(),
            if samples.len() == 1 { "" } else { "s" }
        ))
    } else if med <= 0.0 {
        Some("median is 0".to_string())
    } else {
        None
    };
    let mut outliers = Vec::new();
    if not_judged.is_none() {
        for s in &samples {
            // Compared as a difference, not a quotient, with a margin for
            // rounding, so that exactly `threshold` away is not flagged.
            if (s.value - med).abs() > threshold * med * (1.0 + 1e-9) {
                outliers.push(Outlier {
                    file: s.file.clone(),
                    machine: s.machine.clone(),
                    model: model.to_string(),
                    metric: metric.clone(),
                    value: s.value,
                    median: med,
                    deviation: (s.value - med) / med,
                });
            }
        }
        outliers.sort_by(worst_first);
    }
    Metric {
        unit: unit_of(&metric),
        metric,
        median: med,
        min,
        max,
        judged: not_judged.is_none(),
        not_judged,
        samples,
        outliers,
    }
}

/// A figure as the table prints it: integers without decimals.
pub fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A deviation as a signed percentage: `-32.0%`.
pub fn fmt_deviation(d: f64) -> String {
    format!("{:+.1}%", d * 100.0)
}

/// Left-aligned columns separated by two spaces; `right` marks the
/// columns aligned right (numbers).
fn table(rows: &[Vec<String>], right: &[usize]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = width[i] - c.chars().count();
            if right.contains(&i) {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                if i + 1 < r.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

impl Comparison {
    /// The text `health compare` prints: a summary, the table of groups
    /// and metrics, then the outliers.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{} machine{} of {} model{} compared ({} result file{} in {}",
            self.machines(),
            plural(self.machines()),
            self.groups.len(),
            plural(self.groups.len()),
            self.files,
            plural(self.files),
            self.dir,
        );
        if !self.superseded.is_empty() {
            s.push_str(&format!(
                "; {} older result{} of the same machines not compared, the latest of each machine is used",
                self.superseded.len(),
                plural(self.superseded.len())
            ));
        }
        if !self.problems.is_empty() {
            s.push_str(&format!(
                "; {} unreadable, see the errors",
                self.problems.len()
            ));
        }
        s.push_str(").\n");
        s.push_str(&format!(
            "Outlier: a figure more than {}% from its model's median, judged where {} or more machines of the model have the metric.\n\n",
            fmt_percent(self.threshold),
            self.min_group
        ));

        let mut rows = vec![vec![
            "MODEL".to_string(),
            "MACHINES".into(),
            "METRIC".into(),
            "MEDIAN".into(),
            "MIN".into(),
            "MAX".into(),
            "OUTLIERS".into(),
        ]];
        for g in &self.groups {
            for m in &g.metrics {
                let machines = if m.samples.len() == g.machines.len() {
                    m.samples.len().to_string()
                } else {
                    format!("{} of {}", m.samples.len(), g.machines.len())
                };
                let verdict = match &m.not_judged {
                    Some(why) => format!("not judged: {why}"),
                    None => {
                        let slow = m.outliers.iter().filter(|o| o.is_slow()).count();
                        let fast = m.outliers.len() - slow;
                        match (slow, fast) {
                            (0, 0) => "none".to_string(),
                            (s, 0) => format!("{s} slow"),
                            (0, f) => format!("{f} fast"),
                            (s, f) => format!("{s} slow, {f} fast"),
                        }
                    }
                };
                rows.push(vec![
                    g.model.clone(),
                    machines,
                    format!("{} ({})", m.metric, m.unit),
                    fmt_value(m.median),
                    fmt_value(m.min),
                    fmt_value(m.max),
                    verdict,
                ]);
            }
            if g.metrics.is_empty() {
                rows.push(vec![
                    g.model.clone(),
                    g.machines.len().to_string(),
                    "(no benchmark lines)".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
        }
        s.push_str(&table(&rows, &[1, 3, 4, 5]));

        s.push('\n');
        if self.outliers.is_empty() {
            s.push_str("No outliers.\n");
        } else {
            s.push_str(&format!(
                "Outliers ({}), worst first:\n",
                self.outliers.len()
            ));
            let mut rows = vec![vec![
                "DEVIATION".to_string(),
                "SIDE".into(),
                "MACHINE".into(),
                "METRIC".into(),
                "VALUE".into(),
                "MEDIAN".into(),
                "FILE".into(),
            ]];
            for o in &self.outliers {
                rows.push(vec![
                    fmt_deviation(o.deviation),
                    o.side().into(),
                    o.machine.clone(),
                    o.metric.clone(),
                    fmt_value(o.value),
                    fmt_value(o.median),
                    o.file.clone(),
                ]);
            }
            s.push_str(&table(&rows, &[0, 4, 5]));
        }
        if !self.plots.is_empty() {
            s.push_str(&format!("\nPlots ({}):\n", self.plots.len()));
            for p in &self.plots {
                s.push_str(&format!("{} ({}x{})\n", p.path, p.width, p.height));
            }
        }
        s
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `0.15` → `15`, `0.125` → `12.5`.
pub fn fmt_percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{}", p.round())
    } else {
        format!("{p}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_timestamp() {
        assert_eq!(
            split_name("vm-kvm-52-54-00-12-34-56-20261125101500.hw"),
            Some(("vm-kvm-52-54-00-12-34-56", Some("20261125101500".into())))
        );
        // Two results in one second: `-N` after the stamp, same machine,
        // ordered after the stamp alone and by N (10 after 2).
        let (m, first) = split_name("vm-20261125101500.hw").unwrap();
        let (m2, second) = split_name("vm-20261125101500-2.hw").unwrap();
        let (m10, tenth) = split_name("vm-20261125101500-10.hw").unwrap();
        assert_eq!((m, m2, m10), ("vm", "vm", "vm"));
        assert!(
            first < second && second < tenth,
            "{first:?} {second:?} {tenth:?}"
        );
        assert_eq!(split_name("a-b-c.hw"), Some(("a-b-c", None)));
        assert_eq!(split_name("a-7.hw"), Some(("a-7", None)));
        assert_eq!(split_name("a-2026.hw"), Some(("a-2026", None)));
        assert_eq!(split_name(".upload.hw"), None);
        assert_eq!(split_name("a.hw.tmp"), None);
    }

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn figures_must_be_finite_non_negative_numbers() {
        assert_eq!(parse_figure("12345"), Ok(12345.0));
        assert_eq!(parse_figure("12.5"), Ok(12.5));
        assert!(parse_figure("fast").is_err());
        assert!(parse_figure("").is_err());
        assert!(parse_figure("inf").is_err());
        assert!(parse_figure("NaN").is_err());
        assert!(parse_figure("-3").is_err());
    }

    #[test]
    fn exactly_at_the_threshold_is_not_flagged() {
        let s = |m: &str, v: f64| Sample {
            machine: m.into(),
            file: format!("{m}.hw"),
            value: v,
        };
        let cpu = || "cpu logical loops_per_sec".to_string();
        let m = judge(
            "x",
            cpu(),
            vec![s("a", 100.0), s("b", 115.0), s("c", 85.0), s("d", 100.0)],
            0.15,
        );
        assert_eq!(m.median, 100.0);
        assert!(m.outliers.is_empty(), "{:?}", m.outliers);
        let m = judge(
            "x",
            cpu(),
            vec![s("a", 100.0), s("b", 115.1), s("c", 84.9), s("d", 100.0)],
            0.15,
        );
        let flagged: Vec<(&str, &str)> = m
            .outliers
            .iter()
            .map(|o| (o.machine.as_str(), o.side()))
            .collect();
        assert_eq!(flagged, [("c", "slow"), ("b", "fast")]);
    }

    #[test]
    fn units() {
        assert_eq!(unit_of("cpu logical loops_per_sec"), "events/s");
        assert_eq!(unit_of("cpu logical threaded_bandwidth_1M"), "MiB/s");
        assert_eq!(unit_of("disk sda standalone_read_1M_KBps"), "KiB/s");
        assert_eq!(unit_of("disk sda standalone_randread_4k_IOps"), "IOPS");
    }
}
