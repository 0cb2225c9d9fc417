//! `edeploy-gen-docs DIR`: writes the manual pages and the bash, zsh and
//! fish completions of every program into DIR (`man/`, `bash/`, `zsh/`,
//! `fish/`), from their clap definitions in `edeploy::cli`. Run by the
//! Debian build (debian/rules); not installed. Exit status 0, or 2 when
//! DIR cannot be written.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: edeploy-gen-docs DIR");
        return ExitCode::from(2);
    };
    match edeploy::cli::generate(&PathBuf::from(dir)) {
        Ok(written) => {
            for w in written {
                println!("{w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edeploy-gen-docs: {e:#}");
            ExitCode::from(2)
        }
    }
}
