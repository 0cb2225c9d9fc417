//! The commands of `edeploy-admin`, as functions returning what to print
//! and the exit code, so the binary stays a thin argument parser and the
//! contracts can be tested in process.

use crate::cmdb;
use crate::config::ServerConfig;
use crate::hw::{self, Line};
use crate::literal::{self, Dialect};
use crate::provision::decide::{self, Cmdb, DecideError};
use anyhow::{Context, Result};
use std::path::Path;

/// What a command prints and how it exits.
#[derive(Debug, Default, PartialEq)]
pub struct AdminOutput {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

/// Reads a hardware list file (JSON or literal).
pub fn read_hw(path: &Path) -> Result<Vec<Line>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(hw::parse(&text, &path.display().to_string())?)
}

/// The settings of the section of the server's configuration file
/// (`EDEPLOY_CONF` or /etc/edeploy.conf) whose CONFIGDIR is `configdir`,
/// so that `try` answers what that server would (on its database when it
/// has one); the defaults for `configdir` when no section names it.
pub fn server_of(configdir: &Path) -> ServerConfig {
    let same = |a: &Path| match (a.canonicalize(), configdir.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == configdir,
    };
    let conf = crate::config::conf_path();
    if let Ok(file) = crate::config::ConfFile::load(&conf) {
        let names: Vec<String> = file.section_names().map(String::from).collect();
        for name in names {
            if let Ok(cfg) = file.server(Some(&name)) {
                if same(&cfg.configdir) {
                    return cfg;
                }
            }
        }
    }
    ServerConfig::with_configdir(configdir)
}

/// `match SPECS HW [--json] [--explain]`.
pub fn match_cmd(specs: &Path, hw_path: &Path, json: bool, explain: bool) -> Result<AdminOutput> {
    let compiled = decide::load_specs(specs)?;
    let lines = read_hw(hw_path)?;
    let mut report = AdminOutput::default();
    let result = if explain {
        let (r, steps) = compiled.find_explained(&lines, 10_000);
        for s in steps {
            report.stderr.push_str(&s);
            report.stderr.push('\n');
        }
        if let Ok(m) = &r {
            report.stderr.push_str(if m.beyond_reference {
                "beyond the reference: the original matcher (hardware 0.33) finds no match \
                 here (it gives up after 50 levels of retries or never retries a line \
                 binding no new variable); this one is the first in file order\n"
            } else {
                "found in the reference's search order\n"
            });
        }
        r
    } else {
        compiled.find(&lines)
    };
    match result {
        Ok(m) => {
            if json {
                let v = serde_json::json!({"vars": m.vars, "forced": m.forced});
                report.stdout = format!("{v}\n");
            } else {
                for (k, v) in &m.vars {
                    report.stdout.push_str(&format!("{k}={v}\n"));
                }
            }
        }
        Err(no) => {
            report.stderr.push_str(&format!("no match: {no}\n"));
            report.code = 1;
        }
    }
    Ok(report)
}

/// `try CONFIGDIR HW [--json]`: the server's decision, changing nothing.
pub fn try_cmd(configdir: &Path, hw_path: &Path, json: bool) -> Result<AdminOutput> {
    let lines = read_hw(hw_path)?;
    let cfg = server_of(configdir);
    let mut report = AdminOutput::default();
    let mut warnings = String::new();
    let mut warn = |w: String| {
        warnings.push_str("warning: ");
        warnings.push_str(&w);
        warnings.push('\n');
    };
    match decide::preview(&cfg, &lines, &mut warn) {
        Ok(d) => {
            if json {
                report.stdout = format!("{:#}\n", decide::envelope(&d));
            } else {
                let mut s = format!("profile: {}\n", d.profile);
                match d.cmdb_entry {
                    Some(i) if d.reused => s.push_str(&format!(
                        "cmdb entry: {} (already this node's: no install consumed)\n",
                        i + 1
                    )),
                    Some(i) => s.push_str(&format!("cmdb entry: {}\n", i + 1)),
                    None => s.push_str("cmdb entry: none (the profile has no CMDB)\n"),
                }
                s.push_str(&format!(
                    "installs left after this one: {}\n",
                    match d.left {
                        crate::state::Count::Unlimited => "unlimited".to_string(),
                        crate::state::Count::Left(n) => n.to_string(),
                    }
                ));
                s.push_str(&format!("hardware saved as: {}.hw\n", hw::sysname(&lines)));
                s.push_str("vars:\n");
                for (k, v) in &d.vars {
                    s.push_str(&format!(
                        "  {k} = {}\n",
                        literal::to_inline(v, Dialect::Python)
                    ));
                }
                report.stdout = s;
            }
        }
        Err(e @ (DecideError::NoMatch(_) | DecideError::Cmdb(_))) => {
            report.stderr = format!("{e}\n");
            report.code = 1;
        }
        Err(e) => return Err(e.into()),
    }
    report.stderr.insert_str(0, &warnings);
    Ok(report)
}

fn load_cmdb(file: &Path) -> Result<Cmdb> {
    Ok(Cmdb::load(file)?)
}

/// `cmdb expand FILE`: the entries as a JSON list.
pub fn cmdb_expand(file: &Path) -> Result<AdminOutput> {
    let db = load_cmdb(file)?;
    let json = cmdb::to_json(&db.entries);
    Ok(AdminOutput {
        stdout: format!("{}\n", serde_json::to_string_pretty(&json)?),
        ..AdminOutput::default()
    })
}

/// `cmdb check FILE`: duplicates and used entries; exit 1 on duplicates.
pub fn cmdb_check(file: &Path) -> Result<AdminOutput> {
    let db = load_cmdb(file)?;
    let report = cmdb::check(&db.entries);
    Ok(AdminOutput {
        stdout: format!("{report}"),
        code: if report.has_duplicates() { 1 } else { 0 },
        ..AdminOutput::default()
    })
}

/// `health compare DIR [--threshold T] [--json] [--plot OUTDIR]`: exit 0
/// without outliers, 1 with outliers, 2 when a result cannot be read (the
/// others are still compared and printed) or DIR holds no result.
pub fn health_compare(
    dir: &Path,
    threshold: f64,
    json: bool,
    plot: Option<&Path>,
) -> Result<AdminOutput> {
    use crate::health;
    let mut found = health::compare(dir, &health::CompareOptions { threshold })?;
    if found.files == 0 {
        anyhow::bail!(
            "{}: no health-check results (*.hw files) in this directory",
            dir.display()
        );
    }
    if let Some(outdir) = plot {
        found.plots = health::plot::write_plots(&found, outdir)?;
    }
    let mut report = AdminOutput {
        stdout: if json {
            format!("{}\n", serde_json::to_string_pretty(&found)?)
        } else {
            found.to_text()
        },
        ..AdminOutput::default()
    };
    let mut errors = String::new();
    for p in &found.problems {
        errors.push_str(&format!("edeploy-admin: {}\n", p.error));
    }
    report.code = if found.problems.is_empty() {
        u8::from(!found.outliers.is_empty())
    } else if found.problems.len() == found.files {
        errors.push_str("edeploy-admin: no result could be read\n");
        2
    } else {
        errors.push_str(&format!(
            "edeploy-admin: {} of {} result files could not be read; the others are compared\n",
            found.problems.len(),
            found.files
        ));
        2
    };
    report.stderr = errors;
    Ok(report)
}

/// Where `db export DIR` writes the hardware lists of a section whose
/// HWDIR is not its CONFIGDIR: `DIR/hw/`.
pub const EXPORT_HW: &str = "hw";

/// What `edeploy-admin db` does.
pub enum DbAction {
    Init,
    Import(std::path::PathBuf),
    Export(std::path::PathBuf),
}

/// Whether the section keeps its hardware lists in its CONFIGDIR (HWDIR
/// not set, or set to CONFIGDIR).
fn hw_in_configdir(cfg: &ServerConfig) -> bool {
    match (cfg.hwdir.canonicalize(), cfg.configdir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => cfg.hwdir == cfg.configdir,
    }
}

/// `db init | import CONFIGDIR | export DIR`, on the database of
/// `section`'s DATABASE in the configuration file `conf`.
///
/// The hardware lists: when the section's HWDIR is its CONFIGDIR, the
/// import reads the `*.hw` files of CONFIGDIR (the one given) and the
/// export writes them into DIR; else the import reads the section's
/// HWDIR and the export writes them into `DIR/hw/`.
pub fn db_cmd(conf: &Path, section: Option<&str>, action: DbAction) -> Result<AdminOutput> {
    let cfg = crate::config::ConfFile::load(conf).and_then(|c| c.server(section))?;
    let Some(url) = cfg.database.as_deref() else {
        anyhow::bail!(
            "{}: DATABASE is not set in section [{}]",
            conf.display(),
            cfg.section
        );
    };
    let mut db = crate::db::connect(url, &cfg.section)?;
    let mut out = AdminOutput::default();
    let moved = |m: &crate::db::Moved| {
        format!(
            "{} profiles, {} CMDB files, {} entries ({} used), {} nodes with hand-outs, {} \
             hardware lists",
            m.profiles, m.cmdbs, m.entries, m.used, m.handouts, m.hw
        )
    };
    let in_configdir = hw_in_configdir(&cfg);
    out.stdout = match action {
        DbAction::Init => match crate::db::init(&mut db)? {
            crate::db::Init::Created => format!(
                "{}: tables created (schema version {})\n",
                crate::db::url::shown(url),
                crate::db::SCHEMA_VERSION
            ),
            crate::db::Init::AlreadyThere => format!(
                "{}: tables already there (schema version {})\n",
                crate::db::url::shown(url),
                crate::db::SCHEMA_VERSION
            ),
        },
        DbAction::Import(dir) => {
            let hwdir = if in_configdir {
                dir.clone()
            } else {
                cfg.hwdir.clone()
            };
            let source = crate::db::HwSource::of(&cfg, hwdir);
            let m = crate::db::import_with(&mut db, &dir, &source)?;
            for w in &m.skipped {
                out.stderr.push_str(&format!("warning: {w}\n"));
            }
            let from = if in_configdir {
                String::new()
            } else {
                format!(" (hardware lists from {})", source.dir.display())
            };
            format!(
                "{}{from} -> section [{}]: {}\n",
                dir.display(),
                cfg.section,
                moved(&m)
            )
        }
        DbAction::Export(dir) => {
            let sub = (!in_configdir).then_some(EXPORT_HW);
            let m = crate::db::export_with(&mut db, &dir, sub)?;
            let to = match sub {
                Some(sub) if m.hw > 0 => {
                    format!(" (hardware lists in {})", dir.join(sub).display())
                }
                _ => String::new(),
            };
            format!(
                "section [{}] -> {}{to}: {}\n",
                cfg.section,
                dir.display(),
                moved(&m)
            )
        }
    };
    Ok(out)
}
