//! The command line of `edeploy-detect` (`bin/edeploy-detect.rs`).

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// A JSON list of 4-element lists of strings.
    Json,
    /// The literal dialect of `.hw` files, one tuple per line.
    Literal,
}

#[derive(Parser)]
#[command(
    name = "edeploy-detect",
    version,
    about = "Print this node's hardware as (class, name, key, value) lines"
)]
pub struct Cli {
    /// Read sysfs, procfs, /dev and /etc under this directory.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Report ('system','ipmi-fake','channel','0') when no IPMI channel answers.
    #[arg(long)]
    pub ipmi_fake: bool,
    /// Load the IPMI kernel modules before looking for a BMC.
    #[arg(long)]
    pub load_modules: bool,
    /// Run no external program (dmidecode, ip, ethtool, RAID tools…).
    #[arg(long)]
    pub no_commands: bool,
}
