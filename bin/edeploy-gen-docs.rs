//! `edeploy-gen-docs DIR`: writes the manual pages and the bash, zsh and
//! fish completions of every program into DIR (`man/`, `bash/`, `zsh/`,
//! `fish/`), from their clap definitions in `edeploy::cli`; the pages are
//! dated from `SOURCE_DATE_EPOCH` when it is set (dpkg-buildpackage sets
//! it). Run by the Debian build (debian/rules); not installed. Exit
//! status 0, or 2 when DIR cannot be written or `SOURCE_DATE_EPOCH` is
//! not a number.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: edeploy-gen-docs DIR");
        return ExitCode::from(2);
    };
    let date = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => match edeploy::cli::page_date(&epoch) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("edeploy-gen-docs: {e:#}");
                return ExitCode::from(2);
            }
        },
        Err(_) => None,
    };
    match edeploy::cli::generate(&PathBuf::from(dir), date.as_deref()) {
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
