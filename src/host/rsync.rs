//! The rsync transport, exactly as the original: `list`, `upgrade`,
//! `test-upgrade` and `verify` against an rsync daemon with `[install]`
//! (`RPATH`) and `[metadata]` modules (SPEC §11).
//!
//! Every rsync run goes through the command seam. Errors say which server
//! could not be reached, or which version or upgrade path does not exist,
//! rather than rsync's exit code alone.

use super::conf::Conf;
use super::exclude::{BUILTIN, VERIFY_IGNORED};
use super::itemize::{parse_itemized, parse_listing_dirs, Change, What};
use super::meta::{self, Metadata, ScriptEnd};
use super::signed::HostTrust;
use crate::archive::layout;
use crate::archive::manifest::Manifest;
use crate::exec::{CmdLine, CmdOutput, Exec};
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Seconds to wait for the daemon to answer a connection.
const CONNECT_TIMEOUT: u32 = 15;

/// The daemon a host talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// The install module and path (`RPATH`).
    pub install: String,
}

impl Server {
    pub fn from_conf(conf: &Conf) -> Result<Server> {
        let (host, port, install) = conf.rsync_server()?;
        Ok(Server {
            host,
            port,
            install,
        })
    }

    /// `rsync://HOST:PORT/`
    pub fn base(&self) -> String {
        layout::rsync_base(&self.host, self.port)
    }

    /// `rsync://HOST:PORT/metadata/FROM/ROLE/` (+ `TO/`).
    pub fn metadata_url(&self, from: &str, role: &str, to: Option<&str>) -> String {
        layout::metadata_url(&self.host, self.port, from, role, to)
    }

    /// `rsync://HOST:PORT/RPATH/VERS/ROLE/`
    pub fn tree_url(&self, version: &str, role: &str) -> String {
        layout::tree_url(&self.host, self.port, &self.install, role, version)
    }

    /// `rsync://HOST:PORT/RPATH/VERS/ROLE-VERS.manifest`
    pub fn manifest_url(&self, version: &str, role: &str) -> String {
        layout::manifest_url(&self.host, self.port, &self.install, role, version)
    }
}

/// Runs rsync with `args` and turns its failures into sentences.
fn rsync(exec: &dyn Exec, server: &Server, args: Vec<String>) -> Result<CmdOutput> {
    let mut argv = vec![
        "rsync".to_string(),
        format!("--contimeout={CONNECT_TIMEOUT}"),
    ];
    argv.extend(args);
    let cmd = CmdLine::Argv(argv);
    let out = exec.output(&cmd, None)?;
    check(server, &cmd, out)
}

/// Passes a successful run through; explains a failed one.
fn check(server: &Server, cmd: &CmdLine, out: CmdOutput) -> Result<CmdOutput> {
    if out.success() {
        return Ok(out);
    }
    let err = out.stderr.trim();
    let first = err.lines().next().unwrap_or("").trim();
    if out.status == 10
        || out.status == 35
        || err.contains("failed to connect")
        || err.contains("Connection refused")
    {
        bail!("cannot reach the rsync server {} ({first})", server.base());
    }
    if let Some(l) = err.lines().find(|l| l.contains("@ERROR")) {
        bail!("the rsync server {} refused: {}", server.base(), l.trim());
    }
    if err.is_empty() {
        bail!("{}: exit status {}", cmd.display(), out.status);
    }
    bail!("{}: exit status {}: {err}", cmd.display(), out.status)
}

/// The upgrade targets the server offers from the host's version.
pub fn list(exec: &dyn Exec, root: &Path) -> Result<Vec<String>> {
    let conf = Conf::load(root)?;
    let server = Server::from_conf(&conf)?;
    targets(exec, &server, conf.version()?, conf.role()?)
}

fn targets(exec: &dyn Exec, server: &Server, from: &str, role: &str) -> Result<Vec<String>> {
    let cmd = CmdLine::argv([
        "rsync".to_string(),
        format!("--contimeout={CONNECT_TIMEOUT}"),
        "--list-only".to_string(),
        server.metadata_url(from, role, None),
    ]);
    let out = exec.output(&cmd, None)?;
    if !out.success() && out.stderr.contains("No such file or directory") {
        // No metadata directory at all for this version and role.
        return Ok(Vec::new());
    }
    let out = check(server, &cmd, out)?;
    Ok(parse_listing_dirs(&out.stdout))
}

/// Checks that `to` is an upgrade target and fetches its metadata into
/// `dest`.
fn fetch_metadata(
    exec: &dyn Exec,
    server: &Server,
    from: &str,
    role: &str,
    to: &str,
    dest: &Path,
) -> Result<Metadata> {
    if to == from {
        bail!("{role} is already at version {to}");
    }
    let available = targets(exec, server, from, role)?;
    if !available.iter().any(|t| t == to) {
        if available.is_empty() {
            bail!(
                "no upgrade path from {from} to {to} for role {role}: the server \
                 offers no upgrade from {from} ({})",
                server.metadata_url(from, role, None)
            );
        }
        bail!(
            "no upgrade path from {from} to {to} for role {role} (available: {})",
            available.join(", ")
        );
    }
    fs::create_dir_all(dest).with_context(|| format!("{}: cannot create", dest.display()))?;
    rsync(
        exec,
        server,
        vec![
            "-a".into(),
            "--delete".into(),
            server.metadata_url(from, role, Some(to)),
            format!("{}/", dest.display()),
        ],
    )?;
    Metadata::load(dest, &format!("upgrade {role} {from} -> {to}"))
}

/// The filters of a sync: the built-in list, the `add_only` paths (so
/// they are never replaced nor deleted), then the operator's file.
fn filters(meta: &Metadata) -> Vec<String> {
    let mut f: Vec<String> = BUILTIN.iter().map(|b| format!("--exclude={b}")).collect();
    f.extend(meta.add_only.iter().map(|a| format!("--exclude=/{a}")));
    f.push(format!(
        "--exclude-from={}",
        meta.dir.join("exclude").display()
    ));
    f
}

fn dest(root: &Path) -> String {
    let s = root.display().to_string();
    if s.ends_with('/') {
        s
    } else {
        s + "/"
    }
}

/// The `add_only` paths the host does not have yet.
fn missing_add_only(root: &Path, meta: &Metadata) -> Vec<String> {
    meta.add_only
        .iter()
        .filter(|p| fs::symlink_metadata(root.join(p)).is_err())
        .cloned()
        .collect()
}

/// A scratch directory removed on drop, outside the root: test-upgrade
/// changes nothing on the host, and an upgrade keeps nothing it fetched
/// before it is checked.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("edeploy-upgrade-{}-{nanos}", std::process::id()));
        // Made here, readable and writable by this user alone: what is
        // checked in it cannot be swapped before it is used.
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One line of a change report, as operators read it.
pub fn describe(c: &Change) -> String {
    let path = if c.is_dir {
        format!("/{}/", c.path)
    } else {
        format!("/{}", c.path)
    };
    match &c.what {
        What::New => format!("new       {path}"),
        What::Deleted => format!("deleted   {path}"),
        What::Changed(a) => format!("changed   {path} ({})", a.join(", ")),
    }
}

/// What an upgrade did or would do.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub changes: Vec<Change>,
    /// `add_only` paths that were (or would be) created.
    pub added: Vec<String>,
    pub reboot: bool,
}

fn sync_args(server: &Server, meta: &Metadata, role: &str, to: &str, root: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-aHAX".into(),
        "--numeric-ids".into(),
        "--delete".into(),
        "-i".into(),
    ];
    args.extend(filters(meta));
    args.push(server.tree_url(to, role));
    args.push(dest(root));
    args
}

/// `edeploy upgrade TO` over rsync: fetch the metadata and TO's manifest
/// to a scratch directory and check their signatures, keep the metadata
/// in `ROOT/var/lib/edeploy/TO/`, run `pre`, sync the tree, add the
/// missing `add_only` paths, check the tree against the manifest, install
/// the manifest, run `post`, record the version, reboot when `post` asks.
pub fn upgrade(exec: &dyn Exec, out: &mut dyn Write, root: &Path, to: &str) -> Result<SyncOutcome> {
    let conf = Conf::load(root)?;
    let server = Server::from_conf(&conf)?;
    let (from, role) = (conf.version()?.to_string(), conf.role()?.to_string());
    let meta_dir = meta::state_dir(root).join(to);
    if meta::state_dir(root).join("journal").exists() {
        bail!(
            "an HTTP upgrade was interrupted: finish it with `edeploy upgrade --transport http` \
             or undo it with `edeploy rollback` first"
        );
    }
    let trust = HostTrust::load(root, &conf)?;
    writeln!(out, "upgrading {role} from {from} to {to} over rsync")?;
    // Everything fetched lands outside the root and is checked before
    // anything is kept, run or synced.
    let scratch = Scratch::new()?;
    let meta_scratch = scratch.0.join("metadata");
    fetch_metadata(exec, &server, &from, &role, to, &meta_scratch)?;
    let refusing = "refusing the upgrade; nothing was changed";
    trust
        .check_metadata(
            &meta_scratch,
            &format!("{from}/{role}/{to}"),
            &server.metadata_url(&from, &role, Some(to)),
        )
        .context(refusing)?;
    let manifest =
        fetch_manifest(exec, out, &server, &trust, &scratch.0, &role, to).context(refusing)?;
    keep_metadata(&meta_scratch, &meta_dir)?;
    let meta = Metadata::load(&meta_dir, &format!("upgrade {role} {from} -> {to}"))?;
    if let Some(pre) = &meta.pre {
        meta::run_script(exec, out, root, pre, &role, &from, to)?;
    }
    let sync = rsync(exec, &server, sync_args(&server, &meta, &role, to, root))
        .context("syncing the tree")?;
    let mut outcome = SyncOutcome {
        changes: report_changes(out, &sync.stdout)?,
        ..SyncOutcome::default()
    };
    let missing = missing_add_only(root, &meta);
    if !missing.is_empty() {
        // One source per path, with `/./` marking where the path to
        // recreate starts (`--files-from` is not used: rsync 3.5 daemons
        // fail it with "file has vanished").
        let mut args: Vec<String> = vec!["-aHAXR".into(), "--numeric-ids".into()];
        let tree = server.tree_url(to, &role);
        args.extend(missing.iter().map(|p| format!("{tree}./{p}")));
        args.push(dest(root));
        match rsync(exec, &server, args) {
            Ok(_) => {}
            // A path listed in add_only that the new tree lacks is the
            // operator's slip, not a reason to stop half-way.
            Err(e) if e.to_string().contains("link_stat") => {
                writeln!(out, "warning: adding the add_only paths: {e}")?;
            }
            Err(e) => return Err(e).context("adding the add_only paths"),
        }
        for p in &missing {
            if fs::symlink_metadata(root.join(p)).is_ok() {
                writeln!(out, "added     /{p} (add_only)")?;
                outcome.added.push(p.clone());
            }
        }
    }
    if let Some(m) = &manifest {
        let diffs = check_synced(out, root, m, to)?;
        if let (Some(diffs), false) = (&diffs, trust.policy.require) {
            // As before signatures: the upgrade goes on, and says so.
            eprintln!(
                "edeploy: WARNING: INCONSISTENT TREE: the tree synced from {} does not match \
                 its manifest {} ({diffs}); going on, as signatures are not required here \
                 (`edeploy verify` shows the differences)",
                server.tree_url(to, &role),
                m.url
            );
        } else if let Some(diffs) = diffs {
            let after = match sync_back(exec, out, &server, &trust, root, &meta, &role, &from) {
                Ok(()) => format!(
                    "the tree was synced back from {} and matches this host's manifest of \
                     {from} again (pre ran: start again what it stopped)",
                    server.tree_url(&from, &role)
                ),
                Err(e) => format!(
                    "this host now holds a mix of {from} and {to}, and could not be put back \
                     ({e:#}): fix the server and run `edeploy upgrade {to}` again, or reinstall"
                ),
            };
            bail!(
                "INCONSISTENT TREE: the tree synced from {} does not match its manifest {} \
                 ({diffs}); post was not run and {role} is still recorded at {from}; {after}",
                server.tree_url(to, &role),
                m.url,
            );
        }
        install_manifest(root, &m.path, &role, to)?;
    }
    if let Some(post) = &meta.post {
        outcome.reboot =
            meta::run_script(exec, out, root, post, &role, &from, to)? == ScriptEnd::RebootNeeded;
    }
    meta::record_version(root, &role, to)?;
    // Rollback data of an earlier HTTP upgrade no longer matches the host.
    let _ = fs::remove_dir_all(meta::state_dir(root).join("rollback"));
    writeln!(out, "{role} is now at version {to}")?;
    if outcome.reboot {
        meta::reboot(exec, out)?;
    }
    Ok(outcome)
}

/// Replaces `dest` by the metadata files of `src` and their signatures
/// (what `rsync -a --delete` into it did before).
fn keep_metadata(src: &Path, dest: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(dest);
    fs::create_dir_all(dest).with_context(|| format!("{}: cannot create", dest.display()))?;
    for e in fs::read_dir(src).with_context(|| format!("{}: cannot list", src.display()))? {
        let e = e.with_context(|| format!("{}: cannot list", src.display()))?;
        if e.file_type().is_ok_and(|t| t.is_file()) {
            fs::copy(e.path(), dest.join(e.file_name()))
                .with_context(|| format!("{}: cannot copy", e.path().display()))?;
        }
    }
    Ok(())
}

/// TO's manifest, fetched and checked.
struct Fetched {
    manifest: Manifest,
    /// Where it was fetched (its signature beside it, when there is one).
    path: PathBuf,
    url: String,
}

impl std::ops::Deref for Fetched {
    type Target = Manifest;
    fn deref(&self) -> &Manifest {
        &self.manifest
    }
}

/// Whether an rsync error says the source does not exist.
fn is_absent(e: &anyhow::Error) -> bool {
    let t = e.to_string();
    t.contains("No such file or directory") || t.contains("link_stat")
}

/// Fetches `RPATH/TO/ROLE-TO.manifest` and its signature into `dir` and
/// checks them. Without a manifest on the server: refused when
/// signatures are required, else a note (the synced tree is then not
/// checked, and verify asks the server).
fn fetch_manifest(
    exec: &dyn Exec,
    out: &mut dyn Write,
    server: &Server,
    trust: &HostTrust,
    dir: &Path,
    role: &str,
    to: &str,
) -> Result<Option<Fetched>> {
    let url = server.manifest_url(to, role);
    let get = |src: String| {
        rsync(
            exec,
            server,
            vec!["-t".into(), src, format!("{}/", dir.display())],
        )
    };
    if let Err(e) = get(url.clone()) {
        if trust.policy.require {
            return Err(e.context(format!(
                "{url}: cannot fetch the manifest of {role} {to}, which signatures are \
                 required to check ({})",
                trust.keys()
            )));
        }
        writeln!(
            out,
            "note: no manifest for {role} {to} on the server ({e}); the synced tree is not \
             checked and verify will compare with the server"
        )?;
        return Ok(None);
    }
    let sig_url = format!("{url}.{}", crate::trust::SIGNATURE_EXT);
    match get(sig_url.clone()) {
        Ok(_) => {}
        Err(e) if is_absent(&e) => {}
        Err(e) => return Err(e.context(format!("{sig_url}: cannot fetch"))),
    }
    let path = dir.join(layout::manifest_name(role, to));
    if let Some(g) = trust.check_file(&path, &url)? {
        writeln!(out, "{url}: signature by key {} is good", g.key)?;
    }
    let manifest = Manifest::load(&path)?;
    if manifest.role != role || manifest.version != to {
        bail!(
            "{url}: a manifest of {} {}, not of {role} {to}",
            manifest.role,
            manifest.version
        );
    }
    Ok(Some(Fetched {
        manifest,
        path,
        url,
    }))
}

/// Checks the synced tree against TO's manifest (as `verify` does, with
/// TO's `exclude` and `add_only` left out) before `post` runs and the
/// version is recorded. Returns the differences, summed up, when there
/// are any (each written to `out`).
fn check_synced(out: &mut dyn Write, root: &Path, m: &Fetched, to: &str) -> Result<Option<String>> {
    let report = super::verify::offline(root, m, &super::verify::skip_rules(root, to), &m.url)?;
    if report.is_clean() {
        writeln!(out, "the synced tree matches {}", m.url)?;
        return Ok(None);
    }
    write!(out, "{}", report.render())?;
    let n = report.differences.len();
    let mut paths: Vec<String> = report
        .differences
        .iter()
        .take(10)
        .map(|d| format!("/{}", d.path))
        .collect();
    if n > paths.len() {
        paths.push(format!("and {} more", n - paths.len()));
    }
    Ok(Some(format!(
        "{n} difference{}: {}",
        if n == 1 { "" } else { "s" },
        paths.join(", ")
    )))
}

/// After a sync that does not match TO's manifest: syncs FROM's tree
/// back, with the same filters, and checks it against this host's own
/// manifest of FROM (its signature checked as `verify` does). Ok when the
/// host is FROM again.
#[allow(clippy::too_many_arguments)]
fn sync_back(
    exec: &dyn Exec,
    out: &mut dyn Write,
    server: &Server,
    trust: &HostTrust,
    root: &Path,
    meta: &Metadata,
    role: &str,
    from: &str,
) -> Result<()> {
    let local = layout::manifest_path(root, role, from);
    let what = local.display().to_string();
    if !local.is_file() {
        bail!("nothing to check a sync back against: {what} is missing");
    }
    trust.check_file(&local, &what)?;
    let m = Manifest::load(&local)?;
    writeln!(out, "syncing {} back", server.tree_url(from, role))?;
    rsync(exec, server, sync_args(server, meta, role, from, root))
        .context("syncing the tree back")?;
    let mut skip = super::verify::skip_rules(root, from);
    skip.extend(&meta.exclude);
    let add_only: Vec<String> = meta.add_only.iter().map(|a| format!("/{a}")).collect();
    skip.extend(&super::exclude::Rules::excluding(&add_only));
    let report = super::verify::offline(root, &m, &skip, &what)?;
    if !report.is_clean() {
        write!(out, "{}", report.render())?;
        bail!(
            "synced back, the tree still differs from {what} in {} paths",
            report.differences.len()
        );
    }
    writeln!(out, "the tree matches {what} again")?;
    Ok(())
}

/// Puts the checked manifest (and its signature, when it has one) in
/// `ROOT/var/lib/edeploy/manifests/`, for offline `verify`.
fn install_manifest(root: &Path, fetched: &Path, role: &str, to: &str) -> Result<()> {
    let dest = layout::manifest_path(root, role, to);
    if let Some(d) = dest.parent() {
        fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
    }
    let text = fs::read(fetched).with_context(|| format!("{}: cannot read", fetched.display()))?;
    crate::persist::write_atomic(&dest, &text)?;
    let sig = crate::trust::signature_path(fetched);
    let dest_sig = crate::trust::signature_path(&dest);
    match fs::read(&sig) {
        Ok(s) => crate::persist::write_atomic(&dest_sig, &s),
        Err(_) => {
            let _ = fs::remove_file(&dest_sig);
            Ok(())
        }
    }
}

/// `edeploy test-upgrade TO`: the upgrade's sync as a dry run. Nothing on
/// the host changes (the metadata goes to a scratch directory).
pub fn test_upgrade(
    exec: &dyn Exec,
    out: &mut dyn Write,
    root: &Path,
    to: &str,
) -> Result<SyncOutcome> {
    let conf = Conf::load(root)?;
    let server = Server::from_conf(&conf)?;
    let (from, role) = (conf.version()?.to_string(), conf.role()?.to_string());
    let trust = HostTrust::load(root, &conf)?;
    let scratch = Scratch::new()?;
    let meta = fetch_metadata(exec, &server, &from, &role, to, &scratch.0)?;
    trust.check_metadata(
        &scratch.0,
        &format!("{from}/{role}/{to}"),
        &server.metadata_url(&from, &role, Some(to)),
    )?;
    writeln!(
        out,
        "test-upgrade {role} from {from} to {to} (dry run: nothing is changed)"
    )?;
    if meta.pre.is_some() {
        writeln!(out, "would run pre")?;
    }
    let mut args = vec!["-n".to_string()];
    args.extend(sync_args(&server, &meta, &role, to, root));
    let sync = rsync(exec, &server, args)?;
    let mut outcome = SyncOutcome {
        changes: report_changes(out, &sync.stdout)?,
        ..SyncOutcome::default()
    };
    outcome.added = missing_add_only(root, &meta);
    for p in &outcome.added {
        writeln!(out, "add       /{p} (add_only, missing here)")?;
    }
    if meta.post.is_some() {
        writeln!(out, "would run post")?;
    }
    writeln!(
        out,
        "{} change(s), {} add_only path(s) to add",
        outcome.changes.len(),
        outcome.added.len()
    )?;
    Ok(outcome)
}

/// `edeploy verify` against the server: `rsync -n -c -i` from the
/// reference tree of the host's version, respecting that version's
/// `exclude` and `add_only` (kept in `ROOT/var/lib/edeploy/VERS/` by the
/// upgrade that brought the host there).
pub fn verify(exec: &dyn Exec, root: &Path) -> Result<super::verify::VerifyReport> {
    let conf = Conf::load(root)?;
    let server = Server::from_conf(&conf)?;
    let (version, role) = (conf.version()?.to_string(), conf.role()?.to_string());
    let mut args: Vec<String> = vec![
        "-n".into(),
        "-c".into(),
        "-i".into(),
        "-aHAX".into(),
        "-O".into(),
        "--numeric-ids".into(),
        "--delete".into(),
    ];
    args.extend(BUILTIN.iter().map(|b| format!("--exclude={b}")));
    args.extend(VERIFY_IGNORED.iter().map(|b| format!("--exclude={b}")));
    let meta_dir = meta::state_dir(root).join(&version);
    if let Ok(text) = fs::read_to_string(meta_dir.join("add_only")) {
        args.extend(
            meta::parse_add_only(&text)
                .iter()
                .map(|a| format!("--exclude=/{a}")),
        );
    }
    if meta_dir.join("exclude").is_file() {
        args.push(format!(
            "--exclude-from={}",
            meta_dir.join("exclude").display()
        ));
    }
    args.push(server.tree_url(&version, &role));
    args.push(dest(root));
    let out = rsync(exec, &server, args).context("comparing with the reference tree")?;
    let differences = super::verify::from_changes(parse_itemized(&out.stdout));
    Ok(super::verify::VerifyReport {
        version: version.clone(),
        against: server.tree_url(&version, &role),
        checked: None,
        differences,
        role,
    })
}

/// The changes rsync itemized (directories whose only change is their
/// time left out), each written to `out` as it will be shown.
fn report_changes(out: &mut dyn Write, itemized: &str) -> Result<Vec<Change>> {
    let changes: Vec<Change> = parse_itemized(itemized)
        .into_iter()
        .filter(|c| !(c.is_dir && c.times_only()))
        .collect();
    for c in &changes {
        writeln!(out, "{}", describe(c))?;
    }
    Ok(changes)
}
