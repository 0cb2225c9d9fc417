//! Installing only the tree the operator signed.
//!
//! The keys are the `*.pub` files of the initrd's
//! [`TRUSTED_DIR`](crate::trust::TRUSTED_DIR); `REQUIRE_SIGNATURES` on
//! the kernel command line says whether what is unsigned is refused (the
//! default once a key is trusted) or accepted with a warning
//! ([`policy`]).
//!
//! Before the tree, its manifest (`ROLE-VERS.manifest`) and the
//! manifest's signature (`ROLE-VERS.manifest.minisig`) are fetched the
//! same way as the tree: over HTTP beside the `.edeploy` archive, or with
//! rsync beside the tree's directory. The signature must be by a trusted
//! key, over these bytes, made for this file name (a manifest of another
//! role or version is refused), and the manifest must check (its closing
//! line) and name this role and version. Then:
//!
//! - over HTTP ([`install_http`]), the archive is streamed as before and
//!   every entry is checked against the manifest while it is staged
//!   ([`crate::archive::check`]), its extended attributes included when
//!   the manifest lists them; with a manifest from before they were
//!   listed, the archive's own signature (`ROLE-VERS.edeploy.minisig`)
//!   is checked too when the server has one, hashed as the bytes stream
//!   by, and vouches for them;
//! - with rsync ([`install_rsync`]), the tree is copied into the staging
//!   directory, checked whole against the manifest, and only then moved
//!   into the target.
//!
//! Either way a refusal leaves the target as it was: nothing of the tree
//! is moved in before everything is checked. docs/trust.md, "The
//! installer's trees".

use super::cmdline::Settings;
use super::console::Console;
use super::fetch;
use super::Tuning;
use crate::archive::check::Expected;
use crate::archive::layout;
use crate::archive::manifest::Manifest;
use crate::archive::unpack;
use crate::configure::Role;
use crate::exec::{CmdLine, Exec};
use crate::trust::{self, Checked, Policy, TrustError, Trusted};
use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::io::Read;
use std::path::Path;

/// The largest manifest fetched (a tree of a million entries).
pub const MANIFEST_MAX: u64 = 256 << 20;

/// The keys of `root`'s [`TRUSTED_DIR`](crate::trust::TRUSTED_DIR) and
/// `REQUIRE_SIGNATURES` (`require`).
pub fn policy(root: &Path, require: Option<bool>) -> Result<Policy> {
    let trusted = Trusted::load_dir(&root.join(trust::TRUSTED_DIR))?;
    Ok(Policy::new(trusted, require))
}

/// `url`'s body, at most `max` bytes; `None` when the server answers 404.
pub fn get_small(url: &str, max: u64, tuning: &Tuning) -> Result<Option<Vec<u8>>> {
    let resp = super::server::get(url, tuning)?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Ok(None),
        s => bail!("cannot fetch {url}: HTTP {s}"),
    }
    let mut data = Vec::new();
    resp.into_body()
        .into_reader()
        .take(max + 1)
        .read_to_end(&mut data)
        .map_err(|e| anyhow!("cannot fetch {url}: {e}"))?;
    if data.len() as u64 > max {
        bail!("cannot fetch {url}: larger than {max} bytes");
    }
    Ok(Some(data))
}

/// A signature's text, or an error naming `what`.
fn signature_text(what: &str, data: Option<Vec<u8>>) -> Result<Option<String>, TrustError> {
    data.map(|d| {
        String::from_utf8(d).map_err(|_| TrustError::Malformed {
            what: what.into(),
            why: "the signature is not text".into(),
        })
    })
    .transpose()
}

/// Judges a tree's manifest (`text` from `manifest_url`, `None` when the
/// server has none) and its signature: what the tree `tree_url` is then
/// checked against, or `None` when it is installed unchecked (no
/// manifest, and signatures not required).
#[allow(clippy::too_many_arguments)]
pub fn judge_manifest(
    manifest_url: &str,
    tree_url: &str,
    text: Option<Vec<u8>>,
    signature: Option<Vec<u8>>,
    role: &Role,
    policy: &Policy,
    console: &Console,
) -> Result<Option<Expected>> {
    let name = layout::manifest_name(&role.role, &role.version);
    let sig_url = format!("{manifest_url}.{}", trust::SIGNATURE_EXT);
    let Some(text) = text else {
        if policy.require {
            bail!(
                "{manifest_url}: no manifest; a tree is installed only against its signed \
                 manifest (REQUIRE_SIGNATURES)"
            );
        }
        console.warn(&format!(
            "{manifest_url}: no manifest: {tree_url} is installed UNCHECKED \
             (signatures are not required: {})",
            if policy.trusted.is_empty() {
                "no key is trusted"
            } else {
                "REQUIRE_SIGNATURES=0"
            }
        ));
        return Ok(None);
    };
    let sig = signature_text(manifest_url, signature)?;
    let (signer, signed) =
        match policy.check(manifest_url, &text, sig.as_deref(), &sig_url, Some(&name))? {
            Checked::Signed(v) => (format!("the signed manifest of key {}", v.key), true),
            Checked::Unsigned(w) => {
                console.warn(w.trim_start_matches("WARNING: "));
                (format!("the unsigned manifest {manifest_url}"), false)
            }
        };
    let body = std::str::from_utf8(&text)
        .map_err(|_| anyhow!("{manifest_url}: not a manifest (not UTF-8), {signer}"))?;
    let manifest = Manifest::parse(body, manifest_url)?;
    if manifest.role != role.role || manifest.version != role.version {
        bail!(
            "{manifest_url}: {signer} is of {} {}, not of {} {}",
            manifest.role,
            manifest.version,
            role.role,
            role.version
        );
    }
    console.say(&format!(
        "{manifest_url}: {} entries, {signer}",
        manifest.entries.len()
    ));
    let mut expected = Expected::new(manifest, &text, tree_url, &signer);
    expected.signed = signed;
    Ok(Some(expected))
}

/// The HTTP transport: the manifest and its signature, then the archive
/// checked entry by entry (and against its own signature when the server
/// has one). Returns the archive's bytes.
pub fn install_http(
    s: &Settings,
    role: &Role,
    target: &Path,
    policy: &Policy,
    console: &Console,
    tuning: &Tuning,
) -> Result<u64> {
    let h = s.hserv.as_deref().unwrap_or_default();
    let url = crate::net::with_scheme(
        &layout::archive_url(h, s.hserv_port, &s.hpath, &role.role, &role.version),
        s.https,
    );
    let murl = crate::net::with_scheme(
        &layout::manifest_http_url(h, s.hserv_port, &s.hpath, &role.role, &role.version),
        s.https,
    );
    install_http_urls(&url, &murl, role, target, policy, console, tuning)
}

/// [`install_http`] of the archive at `url` and the manifest at `murl`.
pub fn install_http_urls(
    url: &str,
    murl: &str,
    role: &Role,
    target: &Path,
    policy: &Policy,
    console: &Console,
    tuning: &Tuning,
) -> Result<u64> {
    let sig_of = |u: &str| format!("{u}.{}", trust::SIGNATURE_EXT);
    let text = get_small(murl, MANIFEST_MAX, tuning)?;
    let sig = match &text {
        Some(_) => get_small(&sig_of(murl), trust::SIGNATURE_MAX as u64, tuning)?,
        None => None,
    };
    let mut expected = judge_manifest(murl, url, text, sig, role, policy, console)?;
    // A signed manifest that lists every entry's extended attributes
    // vouches for every byte and attribute the archive puts on disk: the
    // archive's own signature adds nothing, and is not fetched (hashing
    // the whole compressed stream costs a core's time while it unpacks).
    let archive_sig = if expected
        .as_ref()
        .is_some_and(|x| x.signed && x.lists_xattrs())
    {
        console.say(&format!(
            "{url}: every entry, its extended attributes included, is checked against the \
             signed manifest"
        ));
        None
    } else {
        archive_signature(url, policy, console, tuning)?
    };
    if let Some(x) = expected.as_mut() {
        x.xattrs_allowed = archive_sig.is_some() || !policy.require;
        x.xattrs_why = format!(
            "they are accepted only from an archive whose own signature is checked, \
             and there is no {}",
            sig_of(url)
        );
    }
    console.say(&format!("fetching {url}"));
    fetch::fetch_http_checked(url, target, console, tuning, expected.as_mut(), archive_sig)
}

/// The archive's own signature (`URL.minisig`), when the server has one;
/// one that cannot be right (malformed, by a key not trusted) fails
/// before the download.
fn archive_signature(
    url: &str,
    policy: &Policy,
    console: &Console,
    tuning: &Tuning,
) -> Result<Option<fetch::ArchiveSignature>> {
    let sig_url = format!("{url}.{}", trust::SIGNATURE_EXT);
    let Some(sig) = signature_text(
        url,
        get_small(&sig_url, trust::SIGNATURE_MAX as u64, tuning)?,
    )?
    else {
        console.trace(&format!(
            "{url}: no signature of its own; every entry is checked against the manifest"
        ));
        return Ok(None);
    };
    match policy.trusted.verify(url, b"", &sig, None) {
        Ok(_) | Err(TrustError::Invalid { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Some(fetch::ArchiveSignature {
        text: sig,
        trusted: policy.trusted.clone(),
        name: url.rsplit('/').next().unwrap_or(url).to_string(),
    }))
}

/// `edeploy-init --fetch URL`: the installer's HTTP step for the archive
/// at `url` (`….edeploy`) and the manifest beside it (`….manifest`), the
/// role and version read from the manifest.
pub fn fetch_url(
    url: &str,
    target: &Path,
    policy: &Policy,
    console: &Console,
    tuning: &Tuning,
) -> Result<u64> {
    let Some(stem) = url.strip_suffix(".edeploy") else {
        bail!("{url}: not a .edeploy archive");
    };
    let murl = format!("{stem}.manifest");
    let peek = get_small(&murl, MANIFEST_MAX, tuning)?;
    let role = match &peek {
        Some(text) => {
            let m = Manifest::parse(&String::from_utf8_lossy(text), &murl)?;
            Role {
                role: m.role,
                version: m.version,
                disk: String::new(),
            }
        }
        // No manifest: judged (refused or warned about) as for a node.
        None => Role {
            role: String::new(),
            version: String::new(),
            disk: String::new(),
        },
    };
    install_http_urls(url, &murl, &role, target, policy, console, tuning)
}

/// `rsync URL DEST` of one file; `None` when the module has no such file.
fn rsync_small(exec: &dyn Exec, url: &str, dest: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let _ = fs::remove_file(dest);
    let cmd = CmdLine::argv([
        "rsync".to_string(),
        "--no-motd".into(),
        format!("--max-size={max}"),
        url.into(),
        dest.display().to_string(),
    ]);
    let out = exec.output(&cmd, None)?;
    if !out.success() {
        if out.stderr.contains("No such file or directory") {
            return Ok(None);
        }
        bail!(
            "{}: exit status {}: {}",
            cmd.display(),
            out.status,
            out.stderr.trim()
        );
    }
    match fs::metadata(dest) {
        // --max-size skips a larger file without an error.
        Err(_) => bail!("{url}: larger than {max} bytes"),
        Ok(m) if m.len() > max => bail!("{url}: larger than {max} bytes"),
        Ok(_) => fs::read(dest)
            .map(Some)
            .with_context(|| format!("cannot read {}", dest.display())),
    }
}

/// The rsync transport: the manifest and its signature from the same
/// module (fetched into `root/tmp`), then the tree into the target's
/// staging directory, checked whole, then moved in.
pub fn install_rsync(
    s: &Settings,
    role: &Role,
    root: &Path,
    target: &Path,
    policy: &Policy,
    exec: &dyn Exec,
    console: &Console,
) -> Result<()> {
    let url = layout::tree_url(&s.rserv, s.rserv_port, &s.rpath, &role.role, &role.version);
    let murl = layout::manifest_url(&s.rserv, s.rserv_port, &s.rpath, &role.role, &role.version);
    let tmp = root.join("tmp/edeploy-manifest");
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let name = layout::manifest_name(&role.role, &role.version);
    let fetched = (|| -> Result<_> {
        let text = rsync_small(exec, &murl, &tmp.join(&name), MANIFEST_MAX)?;
        let sig = match &text {
            Some(_) => rsync_small(
                exec,
                &format!("{murl}.{}", trust::SIGNATURE_EXT),
                &tmp.join(format!("{name}.{}", trust::SIGNATURE_EXT)),
                trust::SIGNATURE_MAX as u64,
            )?,
            None => None,
        };
        Ok((text, sig))
    })();
    let _ = fs::remove_dir_all(&tmp);
    let (text, sig) = fetched?;
    let expected = judge_manifest(&murl, &url, text, sig, role, policy, console)?;
    console.say(&format!("fetching {url}"));
    match expected {
        None => fetch::fetch_rsync(&url, target, exec),
        Some(mut x) => unpack::through_staging(target, |staging| {
            // The tree's ACLs and extended attributes (file capabilities,
            // systemd's journal ACLs) are copied when the manifest lists
            // them (then checked with the rest), or when nothing is
            // required. With signatures required and a manifest from
            // before they were listed, nothing vouches for them over
            // rsync: they are not copied.
            let lists = x.lists_xattrs();
            x.xattrs_allowed = !policy.require;
            x.xattrs_why = "rsync cannot have them checked against a manifest that does not \
                            list them; pack the role again (edeploy pack lists them)"
                .into();
            if policy.require && !lists {
                console.say(
                    "the tree's ACLs and extended attributes are not copied over rsync: its \
                     signed manifest does not list them (a manifest packed since lists them)",
                );
            }
            fetch::fetch_rsync_with(&url, staging, exec, !policy.require || lists)?;
            x.check_tree(staging)
        }),
    }
}
