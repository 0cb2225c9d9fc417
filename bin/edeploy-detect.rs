//! `edeploy-detect`: prints this node's hardware list, as the installer
//! uploads it. Exit status 0, or 2 on a usage error.

use clap::Parser;
use edeploy::cli::detect::{Cli, Format};
use edeploy::detect::{self, DetectOptions, NoCommands};
use edeploy::exec::{Exec, System};
use edeploy::hw;

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
