//! Signatures on both sides of an upgrade: the operator's `edeploy pack`
//! and `edeploy sign-metadata` write them, the host checks them.
//!
//! A host trusts the minisign public keys in `ROOT/etc/edeploy/trusted.d/`
//! ([`crate::trust::TRUSTED_DIR`]). As soon as one is there, everything an
//! upgrade fetches must be signed by one of them: the delta (HTTP), the
//! upgrade path's metadata files and the target manifest (rsync), and
//! `verify` checks the manifest it compares with. `REQUIRE_SIGNATURES=false`
//! in the host's conf file, or `EDEPLOY_REQUIRE_SIGNATURES=0` in the
//! environment (which wins), accepts unsigned artifacts with a warning
//! each. A signature that is present is always checked, except on a host
//! that trusts no key at all and does not require signatures: there is
//! nothing to check it with, and it is accepted with a warning, as an
//! unsigned one would be.
//!
//! The metadata files of an upgrade path are signed with a trusted comment
//! naming the path (`upgrade:FROM/ROLE/TO`), so that the `pre` of one
//! upgrade path cannot be served as the `pre` of another.

use super::conf::Conf;
use crate::archive::delta::META_FILES;
use crate::trust::{self, Checked, KeyId, Policy, SigningKey, TrustError, Trusted, Verified};
use anyhow::{anyhow, bail, Context, Result};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

/// The conf file's key (`/var/lib/edeploy/conf`).
pub const REQUIRE_KEY: &str = "REQUIRE_SIGNATURES";

/// The environment variable that overrides [`REQUIRE_KEY`].
pub const REQUIRE_ENV: &str = "EDEPLOY_REQUIRE_SIGNATURES";

/// The environment variables `edeploy pack` and `edeploy sign-metadata`
/// read when `--sign-key` and `--password-file` are not given.
pub const SIGN_KEY_ENV: &str = "EDEPLOY_SIGN_KEY";
pub const PASSWORD_FILE_ENV: &str = "EDEPLOY_SIGN_PASSWORD_FILE";

/// The trusted-comment field naming an upgrade path in metadata
/// signatures.
pub const UPGRADE_FIELD: &str = "upgrade";

/// Reads a yes/no value as a shell script writes it.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// What a host trusts, and whether it requires signatures.
pub struct HostTrust {
    pub policy: Policy,
    /// `ROOT/etc/edeploy/trusted.d`
    pub dir: PathBuf,
}

impl HostTrust {
    /// The keys of `ROOT/etc/edeploy/trusted.d/` and the policy of `conf`
    /// and the environment.
    pub fn load(root: &Path, conf: &Conf) -> Result<HostTrust> {
        let dir = root.join(trust::TRUSTED_DIR);
        let trusted = Trusted::load_dir(&dir).map_err(|e| anyhow!("{e}"))?;
        let require = match std::env::var(REQUIRE_ENV) {
            Ok(v) if !v.trim().is_empty() => Some(parse_bool(&v).with_context(|| {
                format!("{REQUIRE_ENV}={v}: not a yes/no value (1, true, yes, 0, false, no)")
            })?),
            _ => match conf.get(REQUIRE_KEY).filter(|v| !v.trim().is_empty()) {
                Some(v) => Some(parse_bool(v).with_context(|| {
                    format!(
                        "{}: {REQUIRE_KEY}={v} is not a yes/no value (true or false)",
                        super::conf::CONF
                    )
                })?),
                None => None,
            },
        };
        Ok(HostTrust {
            policy: Policy::new(trusted, require),
            dir,
        })
    }

    /// The trusted keys and where they come from, for refusals.
    pub fn keys(&self) -> String {
        let ids = self.policy.trusted.ids();
        if ids.is_empty() {
            format!("no key is trusted in {}", self.dir.display())
        } else {
            let ids: Vec<String> = ids.iter().map(KeyId::to_string).collect();
            format!("trusted: key {} in {}", ids.join(", "), self.dir.display())
        }
    }

    /// A refusal as a sentence naming the artifact and the keys.
    fn refusal(&self, e: TrustError) -> anyhow::Error {
        match e {
            TrustError::Untrusted { .. } => anyhow!("{e}"),
            _ => anyhow!("{e} ({})", self.keys()),
        }
    }

    /// Checks what `reader` gives, named `what` (a path or URL), against
    /// `signature` (`None`: there is none; `sig_name` says where it was
    /// looked for). `file_name` must be the name the signature's trusted
    /// comment gives, when it gives one. Returns the good signature, or
    /// `None` when accepted without one (a warning on stderr).
    pub fn check_reader(
        &self,
        what: &str,
        reader: impl Read + Seek,
        signature: Option<&str>,
        sig_name: &str,
        file_name: Option<&str>,
    ) -> Result<Option<Verified>> {
        match signature {
            Some(_) if self.policy.trusted.is_empty() && !self.policy.require => {
                warn(&format!(
                    "WARNING: {what}: signed, but {}: accepted without checking the signature \
                     (REQUIRE_SIGNATURES = false)",
                    self.keys()
                ));
                Ok(None)
            }
            Some(sig) => self
                .policy
                .trusted
                .verify_reader(what, reader, sig, file_name)
                .map(Some)
                .map_err(|e| self.refusal(e)),
            None => match self.policy.unsigned(what, sig_name) {
                Ok(Checked::Unsigned(w)) => {
                    warn(&w);
                    Ok(None)
                }
                Ok(Checked::Signed(v)) => Ok(Some(v)),
                Err(e) => Err(self.refusal(e)),
            },
        }
    }

    /// Checks the file `path` against `path.minisig` beside it; `what`
    /// names it in messages (the URL it came from, or the path).
    pub fn check_file(&self, path: &Path, what: &str) -> Result<Option<Verified>> {
        let sig_path = trust::signature_path(path);
        let sig = read_signature(&sig_path, what)?;
        let file = File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let sig_name = format!("{what}.{}", trust::SIGNATURE_EXT);
        self.check_reader(
            what,
            BufReader::new(file),
            sig.as_deref(),
            &sig_name,
            name.as_deref(),
        )
    }

    /// Checks every metadata file of `dir` (the upgrade path `upgrade`,
    /// `FROM/ROLE/TO`) against its signature beside it, which must name
    /// that upgrade path. `from` names the files' origin in messages
    /// (`rsync://…/metadata/FROM/ROLE/TO/`).
    pub fn check_metadata(&self, dir: &Path, upgrade: &str, from: &str) -> Result<()> {
        for name in META_FILES {
            let p = dir.join(name);
            let what = format!("{from}{name}");
            match std::fs::symlink_metadata(&p) {
                Err(_) => continue,
                Ok(md) if !md.file_type().is_file() => bail!(
                    "{what}: not a regular file (a symlink or a directory); refusing it \
                     ({})",
                    self.keys()
                ),
                Ok(_) => {}
            }
            if let Some(v) = self.check_file(&p, &what)? {
                match v.field(UPGRADE_FIELD) {
                    Some(u) if u == upgrade => {}
                    Some(u) => bail!(
                        "{what}: the signature by key {} was made for the upgrade path {u}, \
                         not {upgrade}: a signed file served in place of another",
                        v.key
                    ),
                    None => bail!(
                        "{what}: the signature by key {} does not name its upgrade path \
                         (sign metadata with `edeploy sign-metadata`, which adds \
                         {UPGRADE_FIELD}:{upgrade} to the trusted comment)",
                        v.key
                    ),
                }
            }
        }
        Ok(())
    }
}

fn warn(line: &str) {
    eprintln!("edeploy: {line}");
}

/// The text of the signature at `sig_path`, or `None` when there is none.
pub fn read_signature(sig_path: &Path, what: &str) -> Result<Option<String>> {
    let mut buf = Vec::new();
    match File::open(sig_path) {
        Ok(f) => {
            f.take(trust::SIGNATURE_MAX as u64 + 1)
                .read_to_end(&mut buf)
                .with_context(|| format!("{}: cannot read", sig_path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", sig_path.display())),
    }
    if buf.len() > trust::SIGNATURE_MAX {
        bail!(
            "{what}: its signature {} is larger than {} bytes: not a signature",
            sig_path.display(),
            trust::SIGNATURE_MAX
        );
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| anyhow!("{what}: its signature {} is not text", sig_path.display()))
}

/// The operator's signing key: `key` (or `EDEPLOY_SIGN_KEY`), opened with
/// the first line of `password_file` (or `EDEPLOY_SIGN_PASSWORD_FILE`)
/// when given. `None` when no key is named.
pub fn signing_key(key: Option<&Path>, password_file: Option<&Path>) -> Result<Option<SigningKey>> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let Some(key) = key
        .map(Path::to_path_buf)
        .or_else(|| from_env(SIGN_KEY_ENV))
    else {
        return Ok(None);
    };
    let password = match password_file
        .map(Path::to_path_buf)
        .or_else(|| from_env(PASSWORD_FILE_ENV))
    {
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("{}: cannot read the key's password", p.display()))?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        None => None,
    };
    let encrypted = password.is_none();
    SigningKey::load_file(&key, password)
        .map(Some)
        .map_err(|e| match e.to_string() {
            t if encrypted && t.contains("might be encrypted") => anyhow!(
                "{}: the key is encrypted: give its password in a file, --password-file FILE \
                 or {PASSWORD_FILE_ENV}=FILE",
                key.display()
            ),
            t => anyhow!("{t}"),
        })
}

/// Signs `path` into `path.minisig` with the trusted comment
/// `timestamp:N<TAB>file:NAME` and `extra` fields (tab-separated) after
/// them. Returns the signature's path.
pub fn sign_file(key: &SigningKey, path: &Path, extra: &[(&str, &str)]) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut comment = format!("timestamp:{}\tfile:{name}", trust::unix_now());
    for (k, v) in extra {
        comment.push_str(&format!("\t{k}:{v}"));
    }
    let file = File::open(path).with_context(|| format!("{}: cannot sign", path.display()))?;
    let sig = key
        .sign_reader(BufReader::new(file), &comment)
        .map_err(|e| anyhow!("{}: cannot sign: {e}", path.display()))?;
    let out = trust::signature_path(path);
    crate::persist::write_atomic(&out, sig.as_bytes())?;
    Ok(out)
}

/// `edeploy sign-metadata DIR`: signs each metadata file of the upgrade
/// path `DIR` (`METADATA/FROM/ROLE/TO`), naming the path in each
/// signature. Returns the signatures written.
pub fn sign_metadata(key: &SigningKey, dir: &Path) -> Result<Vec<PathBuf>> {
    // The path as given names the upgrade path (a symlinked directory
    // shared by several paths is signed for the one named); `..` or a
    // short relative path is resolved first.
    let lexical = upgrade_of(dir).ok().filter(|_| {
        !dir.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    });
    let upgrade = match lexical {
        Some(u) => u,
        None => upgrade_of(
            &dir.canonicalize()
                .with_context(|| format!("{}: not a metadata directory", dir.display()))?,
        )?,
    };
    sign_metadata_of(key, dir, &upgrade)
}

/// Signs each metadata file of `dir` for the upgrade path `upgrade`
/// (`FROM/ROLE/TO`).
pub fn sign_metadata_of(key: &SigningKey, dir: &Path, upgrade: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for name in META_FILES {
        let p = dir.join(name);
        if p.is_file() {
            out.push(sign_file(key, &p, &[(UPGRADE_FIELD, upgrade)])?);
        }
    }
    if out.is_empty() {
        bail!(
            "{}: no metadata file to sign (exclude, add_only, pre, post)",
            dir.display()
        );
    }
    Ok(out)
}

/// `FROM/ROLE/TO`, the last three components of a metadata directory.
pub fn upgrade_of(dir: &Path) -> Result<String> {
    let parts: Vec<String> = dir
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    if parts.len() < 3 {
        bail!(
            "{}: not an upgrade path's metadata directory (METADATA/FROM/ROLE/TO)",
            dir.display()
        );
    }
    Ok(parts[parts.len() - 3..].join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_and_no() {
        assert_eq!(parse_bool("False"), Some(false));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), Some(true));
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn the_upgrade_path_is_the_last_three_components() {
        assert_eq!(
            upgrade_of(Path::new("/srv/metadata/V1/base/V2/")).unwrap(),
            "V1/base/V2"
        );
        assert!(upgrade_of(Path::new("base/V2")).is_err());
    }
}
