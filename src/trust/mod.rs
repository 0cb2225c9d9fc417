//! Keys and detached signatures: what lets a node or a host refuse bytes
//! the operator did not sign.
//!
//! The format is minisign's (ed25519, with a signed "trusted comment"):
//! operators make and check keys and signatures with Debian's `minisign`
//! as well as with our programs, and a signature is a text file beside
//! what it signs (`FILE.minisig`), so any web server, cache or rsync
//! module serves it unchanged. docs/trust.md tells how keys are made,
//! rotated and trusted; docs/dependencies.md why minisign.
//!
//! * [`SigningKey`] signs (a secret key file, encrypted or not).
//! * [`Trusted`] is a set of public keys (the installer's built into the
//!   initrd, a host's in `/etc/edeploy/trusted.d/`); [`Trusted::verify`]
//!   accepts a signature only by one of them, over exactly these bytes.
//! * [`Policy`] adds `REQUIRE_SIGNATURES`: whether a missing signature is
//!   refused, or accepted with a warning.
//!
//! Every refusal is a [`TrustError`] whose text names the artifact and the
//! key.

use std::io::{Cursor, Read, Seek};
use std::path::{Path, PathBuf};

/// The extension of a detached signature: `FILE` is signed by
/// `FILE.minisig`.
pub const SIGNATURE_EXT: &str = "minisig";

/// Where the installer (inside its initrd) and installed hosts keep the
/// public keys they trust, one minisign `.pub` file each.
pub const TRUSTED_DIR: &str = "etc/edeploy/trusted.d";

/// Signatures larger than this are not signatures (a minisig file is
/// about 300 bytes; the trusted comment is bounded by what we write).
pub const SIGNATURE_MAX: usize = 16 * 1024;

/// The path of the detached signature of `path`.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(SIGNATURE_EXT);
    PathBuf::from(s)
}

/// A key's identity as minisign prints it: 16 hexadecimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub u64);

impl KeyId {
    fn from_keynum(keynum: &[u8]) -> KeyId {
        let mut b = [0u8; 8];
        for (d, s) in b.iter_mut().zip(keynum) {
            *d = *s;
        }
        KeyId(u64::from_le_bytes(b))
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

/// Why bytes were refused, or a key could not be used. The text names the
/// artifact (`what`) and the key.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{what}: no signature ({sig}); nothing unsigned is accepted (REQUIRE_SIGNATURES)")]
    Missing { what: String, sig: String },
    #[error("{what}: the signature is not a minisign signature: {why}")]
    Malformed { what: String, why: String },
    #[error(
        "{what}: signed by key {key}, which is not trusted here (trusted: {})",
        key_list(.trusted)
    )]
    Untrusted {
        what: String,
        key: KeyId,
        trusted: Vec<KeyId>,
    },
    #[error(
        "{what}: the signature by key {key} does not match these bytes (altered or truncated)"
    )]
    Invalid { what: String, key: KeyId },
    #[error(
        "{what}: the signature by key {key} was made for {named:?}, not for this file: \
         a signed file served in place of another"
    )]
    OtherFile {
        what: String,
        key: KeyId,
        named: String,
    },
    #[error("{path}: {why}")]
    Key { path: String, why: String },
    #[error("{what}: {why}")]
    Refused { what: String, why: String },
}

fn key_list(keys: &[KeyId]) -> String {
    if keys.is_empty() {
        return "no key".into();
    }
    keys.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A secret key that signs.
pub struct SigningKey {
    pk: minisign::PublicKey,
    id: KeyId,
    /// The same key for ring's Ed25519 (see "Fast signing" below).
    fast: FastKey,
}

impl SigningKey {
    /// Reads a minisign secret key file (`minisign -G` writes one). An
    /// encrypted key needs `password`; an unencrypted one (`minisign -G
    /// -W`, what a CGI can use) none.
    pub fn load(path: &Path, password: Option<String>) -> Result<SigningKey, TrustError> {
        let err = |why: String| TrustError::Key {
            path: path.display().to_string(),
            why,
        };
        let text = read_bounded(path, 64 * 1024).map_err(|e| err(format!("cannot read: {e}")))?;
        let text = String::from_utf8(text).map_err(|_| err("not a minisign secret key".into()))?;
        SigningKey::from_text(&text, password).map_err(err)
    }

    /// [`SigningKey::load`] of a key already read.
    pub fn from_text(text: &str, password: Option<String>) -> Result<SigningKey, String> {
        let bx = minisign::SecretKeyBox::from_string(text)
            .map_err(|e| format!("not a minisign secret key: {e}"))?;
        let sk = match password {
            Some(p) => bx.into_secret_key(Some(p)),
            None => bx
                .into_unencrypted_secret_key()
                .or_else(|e| unencrypted_without_checksum(text).ok_or(e)),
        }
        .map_err(|e| match e.kind() {
            minisign::ErrorKind::EncryptedKey => {
                "the key is encrypted: give its password (or make an unencrypted one, minisign -G -W)"
                    .to_string()
            }
            _ => format!("cannot open the secret key (wrong password?): {e}"),
        })?;
        let pk = minisign::PublicKey::from_secret_key(&sk)
            .map_err(|e| format!("cannot derive the public key: {e}"))?;
        let id = KeyId::from_keynum(pk.keynum());
        let fast = FastKey::of(&sk)?;
        Ok(SigningKey { pk, id, fast })
    }

    /// A new unencrypted key pair (tests, `edeploy-admin key generate`).
    pub fn generate() -> Result<(SigningKey, String, String), String> {
        let minisign::KeyPair { pk, sk } = minisign::KeyPair::generate_unencrypted_keypair()
            .map_err(|e| format!("cannot make a key: {e}"))?;
        let id = KeyId::from_keynum(pk.keynum());
        let pk_text = pk.to_box().map_err(|e| e.to_string())?.into_string();
        let sk_text = sk.to_box(None).map_err(|e| e.to_string())?.into_string();
        let fast = FastKey::of(&sk)?;
        Ok((SigningKey { pk, id, fast }, pk_text, sk_text))
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The public key file's text (what `minisign -G` writes as `.pub`).
    pub fn public_text(&self) -> Result<String, String> {
        Ok(self.pk.to_box().map_err(|e| e.to_string())?.into_string())
    }

    /// The signature of `data` (the text of a `.minisig` file) with
    /// `trusted_comment` signed along (one line, no tab-less constraint).
    pub fn sign(&self, data: &[u8], trusted_comment: &str) -> Result<String, TrustError> {
        self.sign_reader(Cursor::new(data), trusted_comment)
    }

    /// [`SigningKey::sign`] of what `reader` gives (read once, hashed).
    pub fn sign_reader(
        &self,
        reader: impl Read,
        trusted_comment: &str,
    ) -> Result<String, TrustError> {
        if trusted_comment.contains('\n') {
            return Err(TrustError::Refused {
                what: "trusted comment".into(),
                why: "holds a line break".into(),
            });
        }
        let untrusted = format!("signature from eDeploy key {}", self.id);
        self.fast
            .sign(reader, trusted_comment, &untrusted)
            .map_err(|e| TrustError::Refused {
                what: "signing".into(),
                why: e.to_string(),
            })
    }

    /// Signs the file `path` into `path.minisig` (written to a temporary
    /// name and renamed), with minisign's own trusted comment
    /// (`timestamp:N\tfile:NAME`). Returns the signature's path.
    pub fn sign_file(&self, path: &Path) -> Result<PathBuf, TrustError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let io = |e: std::io::Error| TrustError::Key {
            path: path.display().to_string(),
            why: format!("cannot sign: {e}"),
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let comment = format!("timestamp:{}\tfile:{name}", unix_now());
        let sig = self.sign_reader(std::io::BufReader::new(file), &comment)?;
        let out = signature_path(path);
        let mut tmp = out.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, sig.as_bytes()).map_err(io)?;
        std::fs::rename(&tmp, &out).map_err(io)?;
        Ok(out)
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One trusted public key and where it came from.
#[derive(Clone)]
struct TrustedKey {
    id: KeyId,
    key: minisign::PublicKey,
}

/// A set of trusted public keys.
#[derive(Clone, Default)]
pub struct Trusted {
    keys: Vec<TrustedKey>,
}

/// What a good signature said.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub key: KeyId,
    /// The signed trusted comment.
    pub comment: String,
}

impl Verified {
    /// The value of `name:` in the trusted comment's tab-separated fields
    /// (`file`, `timestamp`, or ours: `node`, `nonce`, …).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.comment
            .split('\t')
            .find_map(|f| f.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
    }
}

impl Trusted {
    pub fn new() -> Trusted {
        Trusted::default()
    }

    /// Every `*.pub` file of `dir` (minisign public keys). A missing
    /// directory trusts nothing; a file that is not a key is an error
    /// naming it.
    pub fn load_dir(dir: &Path) -> Result<Trusted, TrustError> {
        let mut t = Trusted::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(t),
            Err(e) => {
                return Err(TrustError::Key {
                    path: dir.display().to_string(),
                    why: format!("cannot list: {e}"),
                })
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pub"))
            .collect();
        paths.sort();
        for p in paths {
            t.add_file(&p)?;
        }
        Ok(t)
    }

    /// Adds the public key in the file `path`.
    pub fn add_file(&mut self, path: &Path) -> Result<KeyId, TrustError> {
        let err = |why: String| TrustError::Key {
            path: path.display().to_string(),
            why,
        };
        let text = read_bounded(path, 64 * 1024).map_err(|e| err(format!("cannot read: {e}")))?;
        let text = String::from_utf8(text).map_err(|_| err("not a minisign public key".into()))?;
        self.add_text(&text).map_err(err)
    }

    /// Adds a public key given as a `.pub` file's text, or as the bare
    /// base64 line (`minisign -P`).
    pub fn add_text(&mut self, text: &str) -> Result<KeyId, String> {
        let key = if text.trim_start().starts_with("untrusted comment:") {
            minisign::PublicKeyBox::from_string(text).and_then(|b| b.into_public_key())
        } else {
            minisign::PublicKey::from_base64(text.trim())
        }
        .map_err(|e| format!("not a minisign public key: {e}"))?;
        let id = KeyId::from_keynum(key.keynum());
        if !self.keys.iter().any(|k| k.id == id) {
            self.keys.push(TrustedKey { id, key });
        }
        Ok(id)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The trusted keys' identities.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id).collect()
    }

    /// Checks `signature` (a `.minisig` text) over `data`, named `what` in
    /// errors. When the trusted comment names a file (`file:NAME`, as
    /// minisign and [`SigningKey::sign_file`] write it) and `file_name` is
    /// given, the names must agree.
    pub fn verify(
        &self,
        what: &str,
        data: &[u8],
        signature: &str,
        file_name: Option<&str>,
    ) -> Result<Verified, TrustError> {
        self.verify_reader(what, Cursor::new(data), signature, file_name)
    }

    /// [`Trusted::verify`] of what `reader` gives.
    pub fn verify_reader(
        &self,
        what: &str,
        reader: impl Read + Seek,
        signature: &str,
        file_name: Option<&str>,
    ) -> Result<Verified, TrustError> {
        if signature.len() > SIGNATURE_MAX {
            return Err(TrustError::Malformed {
                what: what.into(),
                why: format!("{} bytes, more than {SIGNATURE_MAX}", signature.len()),
            });
        }
        let bx =
            minisign::SignatureBox::from_string(signature).map_err(|e| TrustError::Malformed {
                what: what.into(),
                why: e.to_string(),
            })?;
        let key = KeyId::from_keynum(bx.keynum());
        let Some(trusted) = self.keys.iter().find(|k| k.id == key) else {
            return Err(TrustError::Untrusted {
                what: what.into(),
                key,
                trusted: self.ids(),
            });
        };
        minisign::verify(&trusted.key, &bx, reader, true, false, false).map_err(|_| {
            TrustError::Invalid {
                what: what.into(),
                key,
            }
        })?;
        let comment = bx.trusted_comment().map_err(|e| TrustError::Malformed {
            what: what.into(),
            why: e.to_string(),
        })?;
        let verified = Verified { key, comment };
        if let (Some(expected), Some(named)) = (file_name, verified.field("file")) {
            if named != expected {
                return Err(TrustError::OtherFile {
                    what: what.into(),
                    key,
                    named: named.to_string(),
                });
            }
        }
        Ok(verified)
    }

    /// Verifies the file `path` against `path.minisig`.
    pub fn verify_file(&self, path: &Path) -> Result<Verified, TrustError> {
        let what = path.display().to_string();
        let sig_path = signature_path(path);
        let sig = match read_bounded(&sig_path, SIGNATURE_MAX) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TrustError::Missing {
                    what,
                    sig: sig_path.display().to_string(),
                })
            }
            Err(e) => {
                return Err(TrustError::Malformed {
                    what,
                    why: format!("{}: {e}", sig_path.display()),
                })
            }
        };
        let sig = String::from_utf8(sig).map_err(|_| TrustError::Malformed {
            what: what.clone(),
            why: "not text".into(),
        })?;
        let file = std::fs::File::open(path).map_err(|e| TrustError::Refused {
            what: what.clone(),
            why: format!("cannot read: {e}"),
        })?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        self.verify_reader(&what, std::io::BufReader::new(file), &sig, name.as_deref())
    }
}

/// `REQUIRE_SIGNATURES` and the keys: what to do with a signature, or the
/// lack of one.
#[derive(Clone)]
pub struct Policy {
    pub trusted: Trusted,
    /// A missing signature is refused. The default as soon as a key is
    /// trusted; `REQUIRE_SIGNATURES = false` turns it off (with a warning
    /// at every artifact accepted unsigned).
    pub require: bool,
}

/// What [`Policy::check`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    Signed(Verified),
    /// Accepted without a signature: the warning to log.
    Unsigned(String),
}

impl Policy {
    /// Signatures required when `require` says so, else as soon as a key
    /// is trusted.
    pub fn new(trusted: Trusted, require: Option<bool>) -> Policy {
        let require = require.unwrap_or(!trusted.is_empty());
        Policy { trusted, require }
    }

    /// Checks `data` named `what` against `signature` (`None`: there is
    /// none; `sig_name` says where it was looked for). A signature that is
    /// present is always checked, required or not.
    pub fn check(
        &self,
        what: &str,
        data: &[u8],
        signature: Option<&str>,
        sig_name: &str,
        file_name: Option<&str>,
    ) -> Result<Checked, TrustError> {
        match signature {
            Some(sig) => self
                .trusted
                .verify(what, data, sig, file_name)
                .map(Checked::Signed),
            None => self.unsigned(what, sig_name),
        }
    }

    /// What a missing signature gives: refused when required, else
    /// accepted with the warning to log.
    pub fn unsigned(&self, what: &str, sig_name: &str) -> Result<Checked, TrustError> {
        if self.require {
            Err(TrustError::Missing {
                what: what.into(),
                sig: sig_name.into(),
            })
        } else {
            Ok(Checked::Unsigned(format!(
                "WARNING: {what}: accepted WITHOUT a signature (REQUIRE_SIGNATURES = false): \
                 anyone on the network could have sent it"
            )))
        }
    }
}

/// Reads at most `max` bytes of `path`; a longer file is an error.
fn read_bounded(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(max as u64 + 1)
        .read_to_end(&mut buf)?;
    if buf.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(buf)
}

/// An unencrypted secret key as Debian's `minisign -G -W` (0.11) writes
/// it: no key derivation and an all-zero checksum, which the crate's
/// reader takes for a corrupted key. Without a checksum, what checks the
/// key is [`FastKey::of`]: its seed must give the public key it holds (a
/// damaged seed or key fails); `None` for anything else.
fn unencrypted_without_checksum(text: &str) -> Option<minisign::SecretKey> {
    use base64::Engine;
    // sig_alg, kdf_alg, chk_alg (2 each), salt 32, opslimit 8, memlimit 8,
    // keynum 8, secret key 64, checksum 32.
    const LEN: usize = 158;
    let line = text.lines().nth(1)?.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .ok()?;
    if bytes.len() != LEN || bytes[2..4] != [0, 0] || bytes[LEN - 32..].iter().any(|b| *b != 0) {
        return None;
    }
    minisign::SecretKey::from_bytes(&bytes).ok()
}

// --- Fast signing
//
// minisign's format, made here with aws-lc-rs's Ed25519 (the provider
// rustls already builds) and the `blake2` crate: the data's BLAKE2b-512
// signed (algorithm `ED`, "prehashed"), then that signature and the
// trusted comment signed together (the "global signature"). The minisign
// crate and `minisign -V` check what this writes.

/// A secret key as aws-lc-rs's Ed25519 key pair, with its key number.
struct FastKey {
    pair: aws_lc_rs::signature::Ed25519KeyPair,
    keynum: [u8; 8],
}

impl FastKey {
    /// The key pair of `sk`, refused when its seed does not give the
    /// public key it holds (a damaged key).
    fn of(sk: &minisign::SecretKey) -> Result<FastKey, String> {
        // sig_alg, kdf_alg, chk_alg (2 each), salt 32, opslimit 8,
        // memlimit 8, keynum 8, then the secret key: seed 32, public 32.
        let b = sk.to_bytes();
        let (keynum, seed, public) = match (b.get(54..62), b.get(62..94), b.get(94..126)) {
            (Some(k), Some(s), Some(p)) => (k, s, p),
            _ => return Err("not a minisign secret key: too short".into()),
        };
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_and_public_key(seed, public)
            .map_err(|_| {
                "Corrupted key: its seed does not give the public key it holds".to_string()
            })?;
        let mut k = [0u8; 8];
        k.copy_from_slice(keynum);
        Ok(FastKey { pair, keynum: k })
    }

    /// The `.minisig` text of what `reader` gives.
    fn sign(
        &self,
        mut reader: impl Read,
        trusted_comment: &str,
        untrusted_comment: &str,
    ) -> std::io::Result<String> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        use blake2::Digest;
        let mut h = blake2::Blake2b512::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            h.update(&buf[..n]);
        }
        let sig = self.pair.sign(&h.finalize());
        let mut line = Vec::with_capacity(74);
        line.extend_from_slice(b"ED");
        line.extend_from_slice(&self.keynum);
        line.extend_from_slice(sig.as_ref());
        let mut global = sig.as_ref().to_vec();
        global.extend_from_slice(trusted_comment.as_bytes());
        let global = self.pair.sign(&global);
        Ok(format!(
            "untrusted comment: {untrusted_comment}\n{}\ntrusted comment: {trusted_comment}\n{}\n",
            b64.encode(&line),
            b64.encode(global.as_ref())
        ))
    }
}

// --- end of fast signing

impl SigningKey {
    /// [`SigningKey::load`]: kept for the callers that read a key file
    /// given on the command line; it also takes the unencrypted keys the
    /// minisign 0.11 CLI writes with a checksum of zeros
    /// ([`SigningKey::from_text`]).
    pub fn load_file(path: &Path, password: Option<String>) -> Result<SigningKey, TrustError> {
        SigningKey::load(path, password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SigningKey, Trusted) {
        let (key, pk, _) = SigningKey::generate().expect("a key");
        let mut t = Trusted::new();
        t.add_text(&pk).expect("the public key reads");
        (key, t)
    }

    #[test]
    fn a_signature_verifies_and_carries_its_comment() {
        let (key, trusted) = pair();
        let sig = key.sign(b"hello", "node:n1\tnonce:42").expect("signed");
        let v = trusted
            .verify("greeting", b"hello", &sig, None)
            .expect("verified");
        assert_eq!(v.key, key.id());
        assert_eq!(v.field("node"), Some("n1"));
        assert_eq!(v.field("nonce"), Some("42"));
        assert_eq!(v.field("time"), None);
    }

    #[test]
    fn a_flipped_byte_is_refused_naming_the_artifact_and_key() {
        let (key, trusted) = pair();
        let sig = key.sign(b"hello", "x").expect("signed");
        let e = trusted
            .verify("the answer", b"hellp", &sig, None)
            .expect_err("altered");
        let text = e.to_string();
        assert!(matches!(e, TrustError::Invalid { .. }), "{text}");
        assert!(
            text.contains("the answer") && text.contains(&key.id().to_string()),
            "{text}"
        );
    }

    #[test]
    fn another_key_is_untrusted() {
        let (_, trusted) = pair();
        let (other, _) = pair();
        let sig = other.sign(b"hello", "x").expect("signed");
        let e = trusted
            .verify("m", b"hello", &sig, None)
            .expect_err("untrusted");
        assert!(
            matches!(e, TrustError::Untrusted { key, .. } if key == other.id()),
            "{e}"
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let (_, trusted) = pair();
        for sig in ["", "untrusted comment: x\n", "untrusted comment: x\nAAAA\n"] {
            let e = trusted.verify("m", b"x", sig, None).expect_err("malformed");
            assert!(matches!(e, TrustError::Malformed { .. }), "{sig:?}: {e}");
        }
    }

    #[test]
    fn a_file_signature_names_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, trusted) = pair();
        let a = dir.path().join("a.edeploy");
        let b = dir.path().join("b.edeploy");
        std::fs::write(&a, b"same").expect("write");
        std::fs::write(&b, b"same").expect("write");
        key.sign_file(&a).expect("signed");
        assert!(trusted.verify_file(&a).is_ok());
        // a's signature served as b's.
        std::fs::copy(signature_path(&a), signature_path(&b)).expect("copy");
        let e = trusted.verify_file(&b).expect_err("other file");
        assert!(matches!(e, TrustError::OtherFile { .. }), "{e}");
        std::fs::remove_file(signature_path(&b)).expect("rm");
        let e = trusted.verify_file(&b).expect_err("missing");
        assert!(matches!(e, TrustError::Missing { .. }), "{e}");
    }

    #[test]
    fn the_policy_requires_signatures_once_a_key_is_trusted() {
        let (_, trusted) = pair();
        assert!(Policy::new(trusted.clone(), None).require);
        assert!(!Policy::new(Trusted::new(), None).require);
        let lax = Policy::new(trusted, Some(false));
        match lax.check("m", b"x", None, "m.minisig", None) {
            Ok(Checked::Unsigned(w)) => assert!(w.contains("WARNING") && w.contains('m')),
            other => panic!("expected a warning, got {other:?}"),
        }
        // A bad signature is refused even when signatures are optional.
        assert!(lax
            .check("m", b"x", Some("garbage"), "m.minisig", None)
            .is_err());
    }
}

#[cfg(test)]
mod cli_key_tests {
    use super::*;
    use base64::Engine;

    /// `sk_text` rewritten the way `minisign -G -W` writes keys (checksum
    /// all zeros), with `damage` applied to the decoded bytes.
    fn as_cli_writes(sk_text: &str, damage: impl Fn(&mut Vec<u8>)) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut lines: Vec<String> = sk_text.lines().map(String::from).collect();
        let mut bytes = b64.decode(lines[1].trim()).expect("base64");
        let n = bytes.len();
        bytes[n - 32..].fill(0);
        damage(&mut bytes);
        lines[1] = b64.encode(&bytes);
        lines.join("\n") + "\n"
    }

    #[test]
    fn a_key_without_checksum_loads_unless_damaged() {
        let (key, pk, sk) = SigningKey::generate().expect("a key");
        let cli = as_cli_writes(&sk, |_| {});
        let loaded = SigningKey::from_text(&cli, None).expect("minisign -W's key loads");
        assert_eq!(loaded.id(), key.id());
        let mut t = Trusted::new();
        t.add_text(&pk).expect("pk");
        let sig = loaded.sign(b"x", "c").expect("signs");
        assert!(t.verify("x", b"x", &sig, None).is_ok());
        // A damaged seed no longer matches the public key it holds.
        let bad = as_cli_writes(&sk, |b| b[70] ^= 1);
        let e = SigningKey::from_text(&bad, None).err().expect("damaged");
        assert!(e.contains("Corrupted"), "{e}");
    }

    #[test]
    fn fast_signatures_verify_whatever_the_length() {
        let (key, pk, _) = SigningKey::generate().expect("a key");
        let mut t = Trusted::new();
        t.add_text(&pk).expect("pk");
        // Around the 128-byte blocks and the 64 KiB reads.
        for n in [
            0usize, 1, 127, 128, 129, 256, 65_535, 65_536, 65_537, 200_000,
        ] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            let sig = key.sign(&data, "c\td").expect("signed");
            let v = t.verify("x", &data, &sig, None).expect("verified");
            assert_eq!(v.comment, "c\td", "{n}");
            if n > 0 {
                let mut bad = data.clone();
                bad[n / 2] ^= 1;
                assert!(t.verify("x", &bad, &sig, None).is_err(), "{n}");
            }
        }
    }
}
