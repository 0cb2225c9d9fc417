//! The status page as one self-contained HTML document: inline CSS, no
//! script, no external resource. Every text that comes from a file is
//! escaped. The figures carry stable hooks for scripts and tests: `id`s
//! for the totals, `data-*` attributes on rows and cells (docs/status.md).

use super::{CmdbStatus, Outcome, Status, Upload};
use std::fmt::Write;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved
/// characters).
pub fn query_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `?k=v&…` for a link to this page, keeping the section when it is not
/// the default one.
fn link(status: &Status, params: &[(&str, &str)]) -> String {
    let mut all: Vec<(&str, &str)> = Vec::new();
    if status.section != crate::config::DEFAULT_SECTION {
        all.push(("section", &status.section));
    }
    all.extend_from_slice(params);
    if all.is_empty() {
        return "?".into();
    }
    let q: Vec<String> = all
        .iter()
        .map(|(k, v)| format!("{k}={}", query_encode(v)))
        .collect();
    format!("?{}", q.join("&"))
}

const CSS: &str = r#"
:root { --ink: #1d2430; --muted: #5d6878; --line: #d9dee6; --bg: #f4f6f9; --card: #fff;
  --ok: #1f7a44; --ok-bg: #e3f4ea; --bad: #b42318; --bad-bg: #fde8e6; --warn: #8a5a00;
  --warn-bg: #fff4d6; --idle: #4a5565; --idle-bg: #eceff3; --accent: #2557a7; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 "DejaVu Sans", "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg); }
header { background: #1d2a3d; color: #fff; padding: 14px 28px; display: flex;
  flex-wrap: wrap; align-items: baseline; gap: 6px 22px; }
header h1 { font-size: 20px; margin: 0; font-weight: 600; }
header .meta { color: #c3cddb; font-size: 13px; }
header a { color: #9cc2ff; }
header nav a { margin-right: 10px; }
header nav a.here { color: #fff; font-weight: 600; text-decoration: none; }
main { padding: 18px 28px 28px; max-width: 1400px; }
.banner { border: 1px solid #f0b4ac; background: var(--bad-bg); color: var(--bad);
  border-radius: 6px; padding: 10px 14px; margin-bottom: 16px; }
.banner ul { margin: 6px 0 0; padding-left: 20px; }
.banner li { color: var(--ink); font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.cards { display: grid; grid-template-columns: repeat(6, 1fr); gap: 12px; margin-bottom: 18px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .n { font-size: 26px; font-weight: 600; display: block; }
.card .l { color: var(--muted); font-size: 12.5px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 16px 14px; margin-bottom: 16px; }
h2 { font-size: 16px; margin: 0 0 8px; }
h2 small, h3 small { color: var(--muted); font-weight: normal; font-size: 12.5px; margin-left: 8px; }
h3 { font-size: 14px; margin: 12px 0 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 10px 4px 0; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12.5px; }
.nw { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; padding-right: 18px; }
tr:last-child td { border-bottom: none; }
code, .mono { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
.empty { color: var(--muted); font-style: italic; margin: 4px 0; }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600; }
.assigned { color: var(--ok); background: var(--ok-bg); }
.failed, .unreadable { color: var(--bad); background: var(--bad-bg); }
.unrecorded { color: var(--idle); background: var(--idle-bg); }
.zero { color: var(--bad); font-weight: 600; }
.error { color: var(--bad); background: var(--bad-bg); border-radius: 4px; padding: 6px 10px;
  font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; white-space: pre-wrap; }
.bar { display: inline-block; width: 160px; height: 9px; background: var(--idle-bg);
  border-radius: 5px; overflow: hidden; vertical-align: middle; margin-left: 8px; }
.bar i { display: block; height: 100%; background: #4f7fcf; }
.cmdbs { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 4px 24px; }
details summary { cursor: pointer; color: var(--accent); margin: 4px 0; }
.neg { color: var(--bad); font-weight: 600; }
footer { color: var(--muted); font-size: 12px; padding: 0 28px 24px; }
"#;

/// The whole page.
pub fn render(s: &Status) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let title = format!("eDeploy status · [{}]", s.section);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head>\n<body>\n",
        escape(&title)
    );
    header(&mut h, s);
    h.push_str("<main>\n");
    problems(&mut h, s);
    cards(&mut h, s);
    profiles(&mut h, s);
    cmdbs(&mut h, s);
    // The uploads grow longest: last.
    logs(&mut h, s);
    health(&mut h, s);
    uploads(&mut h, s);
    h.push_str("</main>\n");
    let _ = write!(
        h,
        "<footer>Read-only: this page changes no file. CONFIGDIR <code>{}</code> · HWDIR <code>{}</code> · \
         LOGDIR <code>{}</code> · HEALTHDIR <code>{}</code> · read {}.</footer>\n</body></html>\n",
        escape(&s.dirs.configdir),
        escape(&s.dirs.hwdir),
        escape(&s.dirs.logdir),
        escape(&s.dirs.healthdir),
        match s.lock {
            "shared" => "under the server's shared lock",
            "no-lockfile" => "without a lock (no lock file yet)",
            _ => "without the lock (it stayed busy)",
        }
    );
    h
}

fn header(h: &mut String, s: &Status) {
    let _ = write!(
        h,
        "<header><h1>eDeploy status</h1><span class=\"meta\">section <b id=\"section\">{}</b> · \
         generated <time id=\"generated\">{}</time> UTC</span>",
        escape(&s.section),
        escape(&s.generated.replace('T', " ").replace('Z', ""))
    );
    if s.sections.len() > 1 {
        h.push_str("<nav class=\"meta\">sections: ");
        for name in &s.sections {
            let href = if name == crate::config::DEFAULT_SECTION {
                "?".to_string()
            } else {
                format!("?section={}", query_encode(name))
            };
            let here = if *name == s.section {
                " class=\"here\""
            } else {
                ""
            };
            let _ = write!(
                h,
                "<a href=\"{}\"{here}>{}</a>",
                escape(&href),
                escape(name)
            );
        }
        h.push_str("</nav>");
    }
    let _ = writeln!(
        h,
        "<span class=\"meta\"><a href=\"{}\">JSON</a></span></header>",
        escape(&link(s, &[("format", "json")]))
    );
}

fn problems(h: &mut String, s: &Status) {
    let _ = write!(
        h,
        "<div class=\"banner\" id=\"problems\" data-count=\"{}\"{}>",
        s.problems.len(),
        if s.problems.is_empty() { " hidden" } else { "" }
    );
    let _ = write!(
        h,
        "<b><span id=\"problems-total\">{}</span> problem{} found</b> — the parts below show what could be read.<ul>",
        s.problems.len(),
        if s.problems.len() == 1 { "" } else { "s" }
    );
    for p in &s.problems {
        let _ = write!(
            h,
            "<li data-part=\"{}\"><a href=\"#{}\">{}</a>: {}</li>",
            p.part,
            p.part,
            p.part,
            escape(&p.message)
        );
    }
    h.push_str("</ul></div>\n");
}

fn cards(h: &mut String, s: &Status) {
    let left: u64 = s.profiles.iter().filter_map(|p| p.left).sum();
    let unlimited = s.profiles.iter().any(|p| p.unlimited);
    let free: usize = s.cmdbs.iter().map(|c| c.free).sum();
    let total: usize = s.cmdbs.iter().map(|c| c.total).sum();
    let cards = [
        (
            "cards-left",
            if s.profiles.is_empty() {
                "—".to_string()
            } else {
                format!("{left}{}", if unlimited { " + ∞" } else { "" })
            },
            "installs left",
        ),
        (
            "cards-free",
            format!("{free} / {total}"),
            "CMDB entries free",
        ),
        (
            "cards-uploads",
            s.uploads.total.to_string(),
            "uploads in HWDIR",
        ),
        (
            "cards-assigned",
            s.uploads.assigned.to_string(),
            "nodes holding an entry",
        ),
        ("cards-logs", s.logs.len().to_string(), "install logs"),
        (
            "cards-outliers",
            s.health.outliers.len().to_string(),
            "health outliers",
        ),
    ];
    h.push_str("<div class=\"cards\">");
    for (id, n, label) in cards {
        let _ = write!(
            h,
            "<div class=\"card\"><span class=\"n\" id=\"{id}\">{}</span><span class=\"l\">{label}</span></div>",
            escape(&n)
        );
    }
    h.push_str("</div>\n");
}

fn section_errors(h: &mut String, s: &Status, part: &str) {
    for p in s.problems.iter().filter(|p| p.part == part) {
        let _ = write!(h, "<div class=\"error\">{}</div>", escape(&p.message));
    }
}

fn profiles(h: &mut String, s: &Status) {
    let _ = write!(
        h,
        "<section id=\"profiles\"><h2>Profiles<small>in the order the server tries them · \
         <span id=\"profiles-total\">{}</span> in <code>state</code></small></h2>",
        s.profiles.len()
    );
    section_errors(h, s, "profiles");
    if s.profiles.is_empty() {
        if !s.problems.iter().any(|p| p.part == "profiles") {
            h.push_str("<p class=\"empty\">No profile in <code>state</code>.</p>");
        }
        h.push_str("</section>\n");
        return;
    }
    h.push_str(
        "<table><thead><tr><th class=\"num\">#</th><th>Profile</th><th class=\"num\">Installs left</th>\
         <th class=\"num\">CMDB used</th><th class=\"num\">CMDB free</th><th>Specs</th></tr></thead><tbody>",
    );
    for (i, p) in s.profiles.iter().enumerate() {
        let left = match p.left {
            Some(0) => "<span class=\"zero\">0</span>".to_string(),
            Some(n) => n.to_string(),
            None => "unlimited".to_string(),
        };
        let num = |v: Option<usize>| v.map_or("—".to_string(), |n| n.to_string());
        let _ = write!(
            h,
            "<tr data-profile=\"{name}\"><td class=\"num\">{}</td><td><b>{name}</b></td>\
             <td class=\"num\" data-k=\"left\" data-v=\"{}\">{left}</td>\
             <td class=\"num\" data-k=\"cmdb-used\">{}</td><td class=\"num\" data-k=\"cmdb-free\">{}</td><td>{}</td></tr>",
            i + 1,
            p.left.map_or("*".to_string(), |n| n.to_string()),
            num(p.cmdb_used),
            num(p.cmdb_free),
            if p.specs {
                "<span class=\"muted\">ok</span>"
            } else {
                "<span class=\"neg\">missing: skipped</span>"
            },
            name = escape(&p.profile),
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn cmdbs(h: &mut String, s: &Status) {
    let _ = write!(
        h,
        "<section id=\"cmdbs\"><h2>CMDBs<small><span id=\"cmdbs-total\">{}</span> file{} · \
         which node holds which entry</small></h2>",
        s.cmdbs.len(),
        if s.cmdbs.len() == 1 { "" } else { "s" }
    );
    // A CMDB's own error stands in its card; the others here.
    for p in s.problems.iter().filter(|p| p.part == "cmdbs") {
        if !s.cmdbs.iter().any(|c| c.error.as_ref() == Some(&p.message)) {
            let _ = write!(h, "<div class=\"error\">{}</div>", escape(&p.message));
        }
    }
    if s.cmdbs.is_empty() {
        h.push_str("<p class=\"empty\">No CMDB in CONFIGDIR.</p>");
    }
    h.push_str("<div class=\"cmdbs\">");
    for c in &s.cmdbs {
        cmdb(h, c);
    }
    h.push_str("</div></section>\n");
}

fn cmdb(h: &mut String, c: &CmdbStatus) {
    let pct = (c.used * 100).checked_div(c.total).unwrap_or(0);
    let _ = write!(
        h,
        "<div class=\"cmdb\" data-cmdb=\"{}\"><h3><code>{}</code>{}<small>",
        escape(&c.profile),
        escape(&c.file),
        if c.in_state {
            ""
        } else {
            " <span class=\"badge unrecorded\">not in state</span>"
        }
    );
    if let Some(e) = &c.error {
        let _ = write!(
            h,
            "</small></h3><div class=\"error\">{}</div></div>",
            escape(e)
        );
        return;
    }
    let _ = write!(
        h,
        "<b data-k=\"used\">{}</b> used · <b data-k=\"free\">{}</b> free · <b data-k=\"total\">{}</b> entries\
         <span class=\"bar\"><i style=\"width:{pct}%\"></i></span></small></h3>",
        c.used, c.free, c.total
    );
    let used: Vec<_> = c.entries.iter().filter(|e| e.used).collect();
    let free: Vec<_> = c.entries.iter().filter(|e| !e.used).collect();
    let opt = |v: &Option<String>| v.as_deref().map_or("—".to_string(), escape);
    if used.is_empty() {
        h.push_str("<p class=\"empty\">No entry used yet.</p>");
    } else {
        let _ = write!(
            h,
            "<details{}><summary>{} used entr{}</summary><table><thead><tr><th class=\"num\">#</th>\
             <th>Hostname</th><th>IP</th><th>Node</th></tr></thead><tbody>",
            if used.len() <= 40 { " open" } else { "" },
            used.len(),
            if used.len() == 1 { "y" } else { "ies" }
        );
        for e in used {
            let _ = write!(
                h,
                "<tr data-entry=\"{}\" data-node=\"{}\"><td class=\"num\">{}</td><td class=\"nw\">{}</td>\
                 <td class=\"mono nw\">{}</td><td class=\"mono nw\">{}</td></tr>",
                e.number,
                e.node.as_deref().map(escape).unwrap_or_default(),
                e.number,
                opt(&e.hostname),
                opt(&e.ip),
                e.node.as_deref().map_or(
                    "<span class=\"muted\">no upload in HWDIR</span>".to_string(),
                    |n| format!("<a href=\"#upload-{}\">{}</a>", escape(n), escape(n))
                ),
            );
        }
        h.push_str("</tbody></table></details>");
    }
    if !free.is_empty() {
        let _ = write!(
            h,
            "<details><summary>{} free entr{}</summary><table><thead><tr><th class=\"num\">#</th>\
             <th>Hostname</th><th>IP</th></tr></thead><tbody>",
            free.len(),
            if free.len() == 1 { "y" } else { "ies" }
        );
        for e in free {
            let _ = write!(
                h,
                "<tr data-free=\"{}\"><td class=\"num\">{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                e.number,
                e.number,
                opt(&e.hostname),
                opt(&e.ip)
            );
        }
        h.push_str("</tbody></table></details>");
    }
    h.push_str("</div>");
}

fn outcome_cell(s: &Status, u: &Upload) -> String {
    let badge = |class: &str, text: &str| format!("<span class=\"badge {class}\">{text}</span>");
    let log_link = |name: &str| {
        format!(
            "<a href=\"{}\">{}</a>",
            escape(&link(s, &[("log", name), ("view", "text")])),
            escape(name)
        )
    };
    match u.outcome {
        Outcome::Assigned => badge("assigned", "assigned"),
        Outcome::Failed => format!(
            "{} log {}",
            badge("failed", "failed"),
            u.log.as_deref().map(log_link).unwrap_or_default()
        ),
        Outcome::Unreadable => format!(
            "{} <span class=\"mono\">{}</span>",
            badge("unreadable", "unreadable"),
            escape(u.error.as_deref().unwrap_or(""))
        ),
        Outcome::Unrecorded => {
            let mut cell = badge("unrecorded", "no CMDB entry");
            if let Some(now) = &u.now {
                let _ = write!(
                    cell,
                    " <span class=\"muted\">if it asked now: {}</span>",
                    escape(&now.sentence)
                );
            }
            if let Some(l) = &u.log {
                let _ = write!(cell, " · earlier log {}", log_link(l));
            }
            cell
        }
    }
}

fn uploads(h: &mut String, s: &Status) {
    let u = &s.uploads;
    let _ = write!(
        h,
        "<section id=\"uploads\"><h2>Latest uploads<small><span id=\"uploads-total\">{}</span> in HWDIR · \
         <span id=\"uploads-assigned\">{}</span> holding a CMDB entry · <span id=\"uploads-failed\">{}</span> failed · \
         <span id=\"uploads-unrecorded\">{}</span> without a record · newest <span id=\"uploads-shown\">{}</span> shown",
        u.total, u.assigned, u.failed, u.unrecorded, u.shown
    );
    if u.shown < u.total {
        let _ = write!(
            h,
            " (<a href=\"{}\">all</a>)",
            escape(&link(s, &[("uploads", "all")]))
        );
    }
    h.push_str("</small></h2>");
    section_errors(h, s, "uploads");
    if u.items.is_empty() {
        h.push_str("<p class=\"empty\">No upload yet.</p></section>\n");
        return;
    }
    h.push_str(
        "<table><thead><tr><th>Time (UTC)</th><th>Node</th><th>Model</th><th>Profile</th>\
         <th>Entry</th><th>Outcome</th></tr></thead><tbody>",
    );
    for item in &u.items {
        let entry = match (&item.entry, &item.hostname, &item.ip) {
            (Some(n), host, ip) => format!(
                "#{n} {} <span class=\"mono\">{}</span>",
                host.as_deref().map(escape).unwrap_or_default(),
                ip.as_deref().map(escape).unwrap_or_default()
            ),
            _ => "—".to_string(),
        };
        let _ = write!(
            h,
            "<tr data-upload=\"{name}\" id=\"upload-{name}\" data-outcome=\"{outcome}\" data-profile=\"{profile}\">\
             <td class=\"mono nw\">{}</td><td class=\"mono nw\">{name}</td><td class=\"nw\">{}</td><td>{}</td>\
             <td class=\"nw\">{entry}</td><td>{}</td></tr>",
            escape(&item.time.replace('T', " ").replace('Z', "")),
            item.model.as_deref().map(escape).unwrap_or_default(),
            item.profile
                .as_deref()
                .map_or("—".to_string(), |p| format!("<b>{}</b>", escape(p))),
            outcome_cell(s, item),
            name = escape(&item.sysname),
            outcome = match item.outcome {
                Outcome::Assigned => "assigned",
                Outcome::Failed => "failed",
                Outcome::Unrecorded => "unrecorded",
                Outcome::Unreadable => "unreadable",
            },
            profile = item.profile.as_deref().map(escape).unwrap_or_default(),
        );
    }
    h.push_str("</tbody></table></section>\n");
}

/// `1.5 KiB`
fn size(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}

fn logs(h: &mut String, s: &Status) {
    let _ = write!(
        h,
        "<section id=\"logs\"><h2>Install logs<small><span id=\"logs-total\">{}</span> in LOGDIR · \
         uploaded by nodes whose install failed</small></h2>",
        s.logs.len()
    );
    section_errors(h, s, "logs");
    if s.logs.is_empty() {
        h.push_str("<p class=\"empty\">No log.</p></section>\n");
        return;
    }
    h.push_str(
        "<table><thead><tr><th>Time (UTC)</th><th>Log</th><th class=\"num\">Size</th><th>Node</th>\
         <th>Download</th></tr></thead><tbody>",
    );
    for l in &s.logs {
        let _ = write!(
            h,
            "<tr data-log=\"{name}\"><td class=\"mono nw\">{}</td><td><a class=\"view\" href=\"{}\">{name}</a>{}</td>\
             <td class=\"num\" data-k=\"size\">{}</td><td>{}</td><td><a class=\"download\" href=\"{}\">.gz</a></td></tr>",
            escape(&l.time.replace('T', " ").replace('Z', "")),
            escape(&link(s, &[("log", &l.name), ("view", "text")])),
            if l.rotated {
                " <span class=\"muted\">(earlier)</span>"
            } else {
                ""
            },
            size(l.size),
            l.node.as_deref().map_or("—".to_string(), |n| format!(
                "<a href=\"#upload-{}\">{}</a>",
                escape(n),
                escape(n)
            )),
            escape(&link(s, &[("log", &l.name)])),
            name = escape(&l.name),
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn health(h: &mut String, s: &Status) {
    let hl = &s.health;
    let _ = write!(
        h,
        "<section id=\"health\"><h2>Health-check outliers<small><span id=\"outliers-total\">{}</span> \
         outlier{} · <span id=\"health-results\">{}</span> results from <span id=\"health-machines\">{}</span> \
         machines in HEALTHDIR</small></h2>",
        hl.outliers.len(),
        if hl.outliers.len() == 1 { "" } else { "s" },
        hl.results,
        hl.machines
    );
    section_errors(h, s, "health");
    if hl.outliers.is_empty() {
        if hl.error.is_none() {
            h.push_str(if hl.results == 0 {
                "<p class=\"empty\">No health-check result yet.</p>"
            } else {
                "<p class=\"empty\">No outlier: every figure is close to its model's median.</p>"
            });
        }
        h.push_str("</section>\n");
        return;
    }
    h.push_str(
        "<table><thead><tr><th>Machine</th><th>Model</th><th>Metric</th><th class=\"num\">Value</th>\
         <th class=\"num\">Median</th><th class=\"num\">Deviation</th><th>Result</th></tr></thead><tbody>",
    );
    for o in &hl.outliers {
        let _ = write!(
            h,
            "<tr data-outlier=\"{}\" data-metric=\"{}\"><td class=\"mono nw\">{}</td><td class=\"nw\">{}</td><td class=\"mono nw\">{}</td>\
             <td class=\"num\" data-k=\"value\">{}</td><td class=\"num\" data-k=\"median\">{}</td>\
             <td class=\"num neg\" data-k=\"deviation\" data-v=\"{}\">{:+.0} %</td><td class=\"mono muted\">{}</td></tr>",
            escape(&o.machine),
            escape(&o.metric),
            escape(&o.machine),
            escape(&o.model),
            escape(&o.metric),
            o.value,
            o.median,
            o.deviation,
            o.deviation * 100.0,
            escape(&o.file),
        );
    }
    h.push_str("</tbody></table></section>\n");
}
