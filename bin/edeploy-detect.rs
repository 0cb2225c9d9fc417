//! `edeploy-detect`: prints this node's hardware list, as the installer
//! uploads it. Exit status 0, or 2 on a usage error.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use edeploy::detect::{self, DetectOptions, NoCommands};
use edeploy::exec::{Exec, System};
use edeploy::hw;

#[derive(Clone, Copy, ValueEnum)]
enum Format {
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
struct Cli {
    /// Read sysfs, procfs, /dev and /etc under this directory.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Report ('system','ipmi-fake','channel','0') when no IPMI channel answers.
    #[arg(long)]
    ipmi_fake: bool,
    /// Load the IPMI kernel modules before looking for a BMC.
    #[arg(long)]
    load_modules: bool,
    /// Run no external program (dmidecode, ip, ethtool, RAID tools…).
    #[arg(long)]
    no_commands: bool,
}

fn main() {
    let cli = Cli::parse();
    let opts = DetectOptions {
        ipmi_fake: cli.ipmi_fake,
        load_modules: cli.load_modules,
    };
    let exec: Box<dyn Exec> = if cli.no_commands {
        Box::new(NoCommands)
    } else {
        Box::new(System::default())
    };
    let lines = detect::detect(&cli.root, exec.as_ref(), &opts);
    let text = match cli.format {
        Format::Json => hw::to_json(&lines),
        Format::Literal => hw::to_literal(&lines),
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
}
