//! The command lines of the programs, one module per binary, so that one
//! place (`bin/edeploy-gen-docs.rs`) reaches every `clap::Command` and
//! writes the manual pages and shell completions from them
//! (docs/packaging.md). Only clap definitions live here; what a program
//! does stays in its own folder, which this module does not import.

pub mod admin;
pub mod builders;
pub mod detect;
pub mod host;
pub mod init;
pub mod status;
pub mod upload;
pub mod upload_health;

use anyhow::Context;
use clap::{Command, CommandFactory};
use std::path::Path;

/// A program's manual page: its `Command`, its section, and whether it is
/// run from a shell (and so gets completions).
pub struct Page {
    pub command: Command,
    /// 1 for commands, 8 for the CGIs and the installer.
    pub section: u8,
    pub completions: bool,
}

/// Every program shipped, in the order of the packages.
pub fn pages() -> Vec<Page> {
    let page = |command: Command, section, completions| Page {
        command,
        section,
        completions,
    };
    vec![
        page(upload::Cli::command(), 8, false),
        page(upload_health::Cli::command(), 8, false),
        page(status::command(), 8, false),
        page(host::Cli::command(), 1, true),
        page(admin::Cli::command(), 1, true),
        page(detect::Cli::command(), 1, true),
        page(init::Cli::command(), 8, false),
        page(builders::build_role(), 1, false),
        page(builders::build_initrd(), 1, false),
        page(builders::build_netboot(), 1, false),
    ]
}

/// Writes into `dir`: `man/NAME.SECTION` for every program (and
/// `man/NAME-SUB.SECTION` for each subcommand), and for the commands run
/// from a shell `bash/NAME`, `zsh/_NAME` and `fish/NAME.fish`. `date`
/// (`YYYY-MM-DD`) goes in the pages' title lines. Returns the paths
/// written, relative to `dir`.
pub fn generate(dir: &Path, date: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    let mut write = |rel: String, bytes: Vec<u8>| -> anyhow::Result<()> {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written.push(rel);
        Ok(())
    };
    for Page {
        command,
        section,
        completions,
    } in pages()
    {
        let mut command = command;
        command.build();
        let name = command.get_name().to_string();
        for (page_name, cmd) in with_subcommands(&name, &command) {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd.clone())
                .title(&page_name)
                .section(section.to_string())
                .manual("eDeploy")
                .source(format!("eDeploy {}", env!("CARGO_PKG_VERSION")))
                .date(date.unwrap_or_default())
                .render(&mut out)
                .with_context(|| format!("rendering the manual page of {page_name}"))?;
            write(format!("man/{page_name}.{section}"), out)?;
        }
        if completions {
            use clap_complete::Shell;
            for (shell, rel) in [
                (Shell::Bash, format!("bash/{name}")),
                (Shell::Zsh, format!("zsh/_{name}")),
                (Shell::Fish, format!("fish/{name}.fish")),
            ] {
                let mut out = Vec::new();
                clap_complete::generate(shell, &mut command, &name, &mut out);
                write(rel, out)?;
            }
        }
    }
    Ok(written)
}

/// The date of the manual pages from `SOURCE_DATE_EPOCH` (seconds since
/// 1970, set by dpkg-buildpackage from debian/changelog, so that a build
/// gives the same pages whenever it runs): `YYYY-MM-DD`.
pub fn page_date(source_date_epoch: &str) -> anyhow::Result<String> {
    let secs: i64 = source_date_epoch.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "SOURCE_DATE_EPOCH={source_date_epoch:?} is not a number of seconds since 1970"
        )
    })?;
    let t = crate::clock::Utc::from_unix(secs);
    Ok(format!("{:04}-{:02}-{:02}", t.year, t.month, t.day))
}

/// The command and, recursively, its subcommands (but `help`), each with
/// the name of its page: `edeploy-admin`, `edeploy-admin-cmdb`,
/// `edeploy-admin-cmdb-expand`, …
fn with_subcommands(name: &str, command: &Command) -> Vec<(String, Command)> {
    let mut out = vec![(name.to_string(), command.clone())];
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        out.extend(with_subcommands(&sub_name, sub));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_line_is_consistent() {
        // clap's own checks (conflicting names, missing requirements…).
        for p in pages() {
            p.command.debug_assert();
        }
    }

    #[test]
    fn pages_and_completions_for_every_program() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let written = generate(dir.path(), Some("2026-12-06")).expect("generate");
        for want in [
            "man/upload.cgi.8",
            "man/upload-health.cgi.8",
            "man/status.cgi.8",
            "man/edeploy.1",
            "man/edeploy-upgrade.1",
            "man/edeploy-admin.1",
            "man/edeploy-admin-health-compare.1",
            "man/edeploy-detect.1",
            "man/edeploy-init.8",
            "man/edeploy-build-role.1",
            "man/edeploy-build-initrd.1",
            "man/edeploy-build-netboot.1",
            "bash/edeploy-admin",
            "zsh/_edeploy",
            "fish/edeploy-detect.fish",
        ] {
            assert!(
                written.iter().any(|w| w == want),
                "{want} not in {written:?}"
            );
        }
        assert!(!written.iter().any(|w| w.contains("help")), "{written:?}");
        assert!(
            !written.iter().any(|w| w.starts_with("bash/upload")),
            "{written:?}"
        );
        let page = |rel: &str| std::fs::read_to_string(dir.path().join(rel)).expect(rel);
        // The title line, and what each page must say.
        let admin = page("man/edeploy-admin.1");
        assert!(admin.contains(".TH edeploy-admin 1 2026-12-06"), "{admin}");
        assert!(admin.contains("Exit status: 0 success"), "{admin}");
        let upload = page("man/upload.cgi.8");
        assert!(upload.contains(".TH upload.cgi 8"), "{upload}");
        assert!(upload.contains("HWFILE"), "{upload}");
        let role = page("man/edeploy-build-role.1");
        assert!(
            role.contains("upgrade\\-from") && role.contains("/var/lib/debootstrap"),
            "{role}"
        );
        let status = page("man/status.cgi.8");
        assert!(status.contains("uploads=N"), "{status}");
        assert!(!status.contains("\\-\\-help"), "{status}");
        let bash = page("bash/edeploy-admin");
        assert!(
            bash.contains("health") && bash.contains("--threshold"),
            "{bash}"
        );
        let fish = page("fish/edeploy-detect.fish");
        assert!(fish.contains("no-commands"), "{fish}");
    }

    #[test]
    fn an_unwritable_directory_is_named() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("file");
        std::fs::write(&file, "").expect("write");
        let err = generate(&file, None).expect_err("a file is not a directory");
        assert!(
            format!("{err:#}").contains(&file.display().to_string()),
            "{err:#}"
        );
    }

    #[test]
    fn the_page_date_comes_from_source_date_epoch() {
        assert_eq!(page_date("0").expect("0"), "1970-01-01");
        assert_eq!(page_date("1796558400\n").expect("a date"), "2026-12-06");
        let err = page_date("yesterday").expect_err("not a number");
        assert!(format!("{err}").contains("\"yesterday\""), "{err}");
    }
}
