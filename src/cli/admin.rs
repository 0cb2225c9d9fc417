//! The command line of `edeploy-admin` (`bin/edeploy-admin.rs`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "edeploy-admin",
    version,
    about = "Debug eDeploy specs, profiles and CMDBs",
    long_about = "Debug eDeploy specs, profiles and CMDBs.\n\nExit status: 0 success, 1 no match / nothing to hand out / duplicates / health outliers, 2 bad input."
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Match a .specs file against a hardware list and print the variables.
    Match {
        specs: PathBuf,
        hw: PathBuf,
        /// Print {"vars": {...}, "forced": {...}}.
        #[arg(long)]
        json: bool,
        /// Show the search step by step on stderr.
        #[arg(long)]
        explain: bool,
    },
    /// Show which profile and CMDB entry the server would hand out, changing nothing (on the
    /// database of the section of EDEPLOY_CONF whose CONFIGDIR this is, when it has DATABASE).
    Try {
        configdir: PathBuf,
        hw: PathBuf,
        /// Print the answer the node would get, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Expand and check CMDB files.
    Cmdb {
        #[command(subcommand)]
        cmd: CmdbCmd,
    },
    /// Compare health-check results.
    Health {
        #[command(subcommand)]
        cmd: HealthCmd,
    },
    /// Move a section's state between its files and its PostgreSQL
    /// database (DATABASE in the file EDEPLOY_CONF names, or
    /// /etc/edeploy.conf).
    Db {
        /// The section of edeploy.conf (default: [SERVER]).
        #[arg(long, short = 's', global = true)]
        section: Option<String>,
        #[command(subcommand)]
        cmd: DbCmd,
    },
}

#[derive(Subcommand)]
pub enum DbCmd {
    /// Create the tables when missing (run once per database; safe to run again).
    Init,
    /// Replace the section's state in the database with CONFIGDIR's `state` and `*.cmdb`.
    Import { configdir: PathBuf },
    /// Write the section's `state` and one `P.cmdb` per profile into DIR (which must exist),
    /// in the original's formats.
    Export { dir: PathBuf },
}

#[derive(Subcommand)]
pub enum HealthCmd {
    /// Group results by model and flag figures far from the group's median
    /// (exit 1 when there are outliers, 2 when a result cannot be read).
    Compare {
        /// Directory of results, <sysname>-<YYYYmmddHHMMSS>.hw (HEALTHDIR).
        dir: PathBuf,
        /// Flag a figure more than this fraction away from its model's median.
        #[arg(long, default_value_t = crate::health::DEFAULT_THRESHOLD, value_parser = threshold)]
        threshold: f64,
        /// Print the groups, figures and outliers as JSON.
        #[arg(long)]
        json: bool,
        /// Write one PNG per model and metric into OUTDIR.
        #[arg(long, value_name = "OUTDIR")]
        plot: Option<PathBuf>,
    },
}

fn threshold(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 => Ok(t),
        _ => Err(format!(
            "{s:?} is not a fraction above 0 (0.15 flags figures more than 15% from the median)"
        )),
    }
}

#[derive(Subcommand)]
pub enum CmdbCmd {
    /// Print the expanded entries as a JSON list.
    Expand { file: PathBuf },
    /// Report duplicate IPs, hostnames and MACs, and used entries.
    Check { file: PathBuf },
}
