//! The command line of `edeploy`, the host client (`bin/edeploy.rs`).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "edeploy",
    version,
    about = "Upgrade, test and verify an eDeploy host against its role's trees",
    long_about = "Upgrade, test and verify an eDeploy host against its role's trees.\n\n\
The host's role, version and servers come from ROOT/var/lib/edeploy/conf, written by the installer \
(VERS, ROLE, RSERV, RSERV_PORT, RPATH, HSERV, HSERV_PORT, HPATH).\n\n\
Exit status: 0 success (verify: no difference), 1 verify found differences, 2 failure or bad usage.",
    after_help = "Upgrade paths live on the rsync server as metadata/FROM/ROLE/TO/ with exclude, add_only, pre and post. See docs/host.md."
)]
pub struct Cli {
    /// The host's root directory (tests and chroots use another one).
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// rsync against the [install] and [metadata] modules of RSERV.
    Rsync,
    /// One static delta archive from HSERV (see docs/host.md).
    Http,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// List the versions this host can upgrade to.
    List,
    /// Upgrade the host to version TO.
    ///
    /// Fetches the upgrade path's metadata, refuses without exclude or with an empty
    /// add_only, runs pre, syncs the tree (deleting what TO no longer has, except excluded
    /// and add_only paths), adds missing add_only paths, runs post (exit 100: reboot),
    /// records TO in the conf file and /etc/motd.
    Upgrade {
        /// The version to move to.
        to: String,
        /// How to fetch the new tree.
        #[arg(long, value_enum, default_value = "rsync")]
        transport: Transport,
    },
    /// Show what an upgrade to TO would change, changing nothing.
    TestUpgrade {
        /// The version to try.
        to: String,
    },
    /// Show what differs on this host from the tree of its version.
    ///
    /// Offline against ROOT/var/lib/edeploy/manifests/ROLE-VERS.manifest when the host has
    /// it, otherwise with rsync -n -c against the server's tree.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Compare with the server's tree over rsync even when a manifest is here.
        #[arg(long)]
        rsync: bool,
        /// Compare with this manifest file.
        #[arg(long, value_name = "FILE", conflicts_with = "rsync")]
        manifest: Option<PathBuf>,
    },
    /// Put back the version before the last HTTP upgrade, exactly.
    ///
    /// Also undoes an interrupted HTTP upgrade. One level is kept.
    Rollback,
    /// Pack a role version's tree: manifest, .edeploy archive, deltas (run on the server).
    ///
    /// Writes INSTALL/VERSION/ROLE-VERSION.manifest (also copied into the tree under
    /// var/lib/edeploy/manifests/), INSTALL/VERSION/ROLE-VERSION.edeploy and, for each
    /// --from FROM, INSTALL/VERSION/ROLE-FROM-VERSION.delta using
    /// METADATA/FROM/ROLE/VERSION/ and INSTALL/FROM/ROLE-FROM.manifest.
    Pack {
        /// The tree to pack (usually INSTALL/VERSION/ROLE).
        tree: PathBuf,
        #[arg(long)]
        role: String,
        #[arg(long)]
        version: String,
        /// The install directory served to hosts.
        #[arg(long, value_name = "INSTALL")]
        install: PathBuf,
        /// Write a delta from this version (repeatable).
        #[arg(long, value_name = "FROM")]
        from: Vec<String>,
        /// The metadata directory (upgrade paths).
        #[arg(long, value_name = "METADATA")]
        metadata: Option<PathBuf>,
        /// Do not write the .edeploy archive.
        #[arg(long)]
        no_archive: bool,
        /// Sign everything written (FILE.minisig beside each, and the metadata files of
        /// each --from path) with this minisign secret key [env: EDEPLOY_SIGN_KEY].
        #[arg(long, value_name = "SECRET_KEY")]
        sign_key: Option<PathBuf>,
        /// The first line of FILE is the signing key's password
        /// [env: EDEPLOY_SIGN_PASSWORD_FILE].
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Sign an upgrade path's metadata files (run on the server).
    ///
    /// Writes NAME.minisig beside each of exclude, add_only, pre and post in
    /// METADATA/FROM/ROLE/TO, the trusted comment naming the upgrade path (upgrade:FROM/ROLE/TO).
    SignMetadata {
        /// The upgrade path's directory, METADATA/FROM/ROLE/TO.
        dir: PathBuf,
        /// The minisign secret key [env: EDEPLOY_SIGN_KEY].
        #[arg(long, value_name = "SECRET_KEY")]
        sign_key: Option<PathBuf>,
        /// The first line of FILE is the key's password [env: EDEPLOY_SIGN_PASSWORD_FILE].
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Print the installed version.
    Version,
    /// Print the host's role.
    Role,
}
