//! The HTTP(S) client of the installer and of `edeploy` on hosts: one
//! builder, one trust anchor.
//!
//! `http://` works as it always did. For `https://` the server's
//! certificate must be signed by a certificate of the **pinned CA file**
//! (PEM: the operator's CA, or the server's own self-signed certificate),
//! and by nothing else: no built-in root store, no platform verifier, so
//! a certificate bought from any public CA is refused as well as a forged
//! one. Without a CA file an `https://` URL is refused before anything is
//! sent, with a sentence saying where to put one. The installer reads
//! [`CA_FILE`] under the initrd's root, a host under its own root;
//! docs/trust.md ("HTTPS") tells how to make and install one.
//!
//! TLS is rustls with the aws-lc-rs provider (docs/dependencies.md, "TLS").
//! An `https://` request never follows a redirect to `http://`.
//!
//! Every refusal is a [`NetError`] naming the URL (and the CA file).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use ureq::http::Response;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::Body;

/// Where the pinned CA is kept, relative to a root: `/` on a host, the
/// initrd's root in the installer (copied there by
/// `scripts/build-initrd --ca FILE`, and from there to the installed
/// host's).
pub const CA_FILE: &str = "etc/edeploy/ca.pem";

/// A CA file larger than this is not a CA file (a certificate is about
/// 2 KB in PEM; a chain of a few of them stays far below).
pub const CA_MAX: u64 = 1 << 20;

/// Why a request was refused or got no answer. Each text names the URL.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{path}: cannot use it as the pinned CA: {why}")]
    Ca { path: String, why: String },
    #[error(
        "{url}: refused: no CA certificate is configured to check the server's certificate; \
         put the operator's CA (or the server's own certificate), in PEM, in {place}; \
         the public CAs are never trusted for provisioning"
    )]
    NoCa { url: String, place: String },
    #[error(
        "{url}: refused: the server's certificate is not signed by the pinned CA ({ca}): {why}"
    )]
    NotPinned {
        url: String,
        ca: String,
        why: String,
    },
    #[error(
        "{url}: refused: the server's certificate is signed by the pinned CA ({ca}) \
         but is not valid for this server: {why}"
    )]
    WrongName {
        url: String,
        ca: String,
        why: String,
    },
    #[error("{url}: refused: the server's certificate is not acceptable (pinned CA {ca}): {why}")]
    Certificate {
        url: String,
        ca: String,
        why: String,
    },
    #[error("{url}: refused: an https:// request was redirected to plain http ({why})")]
    Downgrade { url: String, why: String },
    #[error("{url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("cannot reach the HTTP server for {url}: {why}")]
    Unreachable { url: String, why: String },
}

impl NetError {
    /// A refusal that waiting cannot mend on our side: the CA file or the
    /// server's certificate (everything but a status and no answer).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, NetError::Status { .. } | NetError::Unreachable { .. })
    }
}

/// How a [`Client`] is built.
#[derive(Debug, Clone)]
pub struct Options {
    /// The pinned CA file (PEM); `None`: `https://` is refused.
    pub ca: Option<PathBuf>,
    /// Where the CA file is expected, for the sentence refusing an
    /// `https://` URL when there is none.
    pub ca_place: String,
    pub connect_timeout: Option<Duration>,
    /// Longest silence while reading or writing.
    pub io_timeout: Option<Duration>,
    /// Whether a status other than 2xx is an error ([`NetError::Status`])
    /// or an answer to look at.
    pub status_as_error: bool,
}

impl Options {
    /// No timeouts, statuses as errors, and `ca` pinned.
    pub fn new(ca: Option<PathBuf>, ca_place: impl Into<String>) -> Options {
        Options {
            ca,
            ca_place: ca_place.into(),
            connect_timeout: None,
            io_timeout: None,
            status_as_error: true,
        }
    }
}

/// `ROOT/etc/edeploy/ca.pem` when it exists (a dangling link counts as
/// there, and is refused when read).
pub fn ca_under(root: &Path) -> Option<PathBuf> {
    let p = root.join(CA_FILE);
    p.symlink_metadata().is_ok().then_some(p)
}

/// Reads a CA file: one or more PEM certificates, each a usable trust
/// anchor, and nothing else (a private key there would be copied to
/// every host).
pub fn load_ca(path: &Path) -> Result<Vec<Certificate<'static>>, NetError> {
    let bad = |why: String| NetError::Ca {
        path: path.display().to_string(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > CA_MAX {
        return Err(bad(format!(
            "{} bytes: too large for a CA file (at most {CA_MAX})",
            meta.len()
        )));
    }
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let mut certs = Vec::new();
    for (i, item) in ureq::tls::parse_pem(&pem).enumerate() {
        match item {
            Ok(PemItem::Certificate(c)) => {
                let mut store = rustls::RootCertStore::empty();
                store
                    .add(rustls::pki_types::CertificateDer::from(c.der()))
                    .map_err(|e| {
                        bad(format!(
                            "PEM block {}: not a usable CA certificate: {e}",
                            i + 1
                        ))
                    })?;
                certs.push(c);
            }
            Ok(PemItem::PrivateKey(_)) => {
                return Err(bad(format!(
                    "PEM block {} is a private key: the file must hold certificates only",
                    i + 1
                )))
            }
            Ok(_) => return Err(bad(format!("PEM block {}: not a certificate", i + 1))),
            Err(e) => return Err(bad(format!("not PEM: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(bad(
            "no certificate in it (expected -----BEGIN CERTIFICATE----- blocks)".into(),
        ));
    }
    Ok(certs)
}

/// A ureq agent with the pinned CA, and the checks around its requests.
pub struct Client {
    agent: ureq::Agent,
    ca: Option<PathBuf>,
    /// Why the CA file is not usable (`path`, `why`): every `https://`
    /// request is refused with it; `http://` is not concerned.
    ca_error: Option<(String, String)>,
    ca_place: String,
}

impl Client {
    /// Builds the agent. A CA file that is not usable refuses every
    /// `https://` request, naming the file; plain `http://` still works.
    pub fn new(opts: &Options) -> Client {
        let (certs, ca_error) = match opts.ca.as_deref().map(load_ca) {
            Some(Ok(certs)) => (certs, None),
            Some(Err(NetError::Ca { path, why })) => (Vec::new(), Some((path, why))),
            Some(Err(e)) => (Vec::new(), Some((String::new(), e.to_string()))),
            // Nothing verifies: a request that slips past `check` (a
            // redirect to https://) fails closed.
            None => (Vec::new(), None),
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::Specific(Arc::new(certs)))
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(opts.status_as_error)
            .timeout_connect(opts.connect_timeout)
            .timeout_per_read(opts.io_timeout)
            .timeout_per_write(opts.io_timeout)
            .build()
            .into();
        Client {
            agent,
            ca: opts.ca.clone(),
            ca_error,
            ca_place: opts.ca_place.clone(),
        }
    }

    /// The agent itself (no `https://` check: prefer [`Client::get`] and
    /// [`Client::post`]).
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// The pinned CA file.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// GET `url`.
    pub fn get(&self, url: &str) -> Result<Response<Body>, NetError> {
        let https = self.check(url)?;
        let r = if https {
            self.agent.get(url).config().https_only(true).build().call()
        } else {
            self.agent.get(url).call()
        };
        r.map_err(|e| self.explain(url, e))
    }

    /// POST `body` to `url` with this Content-Type.
    pub fn post(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Response<Body>, NetError> {
        let https = self.check(url)?;
        let req = self.agent.post(url).header("Content-Type", content_type);
        let r = if https {
            req.config().https_only(true).build().send(body)
        } else {
            req.send(body)
        };
        r.map_err(|e| self.explain(url, e))
    }

    /// Whether `url` is `https://`; refused when it is and no usable CA
    /// is pinned.
    fn check(&self, url: &str) -> Result<bool, NetError> {
        let https = is_https(url);
        if https {
            if self.ca.is_none() {
                return Err(NetError::NoCa {
                    url: url.to_string(),
                    place: self.ca_place.clone(),
                });
            }
            if let Some((path, why)) = &self.ca_error {
                return Err(NetError::Ca {
                    path: path.clone(),
                    why: format!("{why}; {url} is not asked"),
                });
            }
        }
        Ok(https)
    }

    /// The sentence of a failed request.
    pub fn explain(&self, url: &str, e: ureq::Error) -> NetError {
        let url_s = url.to_string();
        if let ureq::Error::StatusCode(status) = e {
            return NetError::Status { url: url_s, status };
        }
        if let ureq::Error::RequireHttpsOnly(why) = &e {
            return NetError::Downgrade {
                url: url_s,
                why: why.clone(),
            };
        }
        let Some(tls) = rustls_error(&e) else {
            return NetError::Unreachable {
                url: url_s,
                why: e.to_string(),
            };
        };
        let Some(ca) = self.ca.as_ref().filter(|_| self.ca_error.is_none()) else {
            return NetError::NoCa {
                url: url_s,
                place: self.ca_place.clone(),
            };
        };
        let ca = ca.display().to_string();
        let why = tls.to_string();
        use rustls::CertificateError as C;
        match tls {
            rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
                NetError::NotPinned {
                    url: url_s,
                    ca,
                    why,
                }
            }
            rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            ) => NetError::WrongName {
                url: url_s,
                ca,
                why,
            },
            rustls::Error::InvalidCertificate(_) => NetError::Certificate {
                url: url_s,
                ca,
                why,
            },
            _ => NetError::Unreachable {
                url: url_s,
                why: format!("TLS: {why}"),
            },
        }
    }
}

/// Whether `url` starts with `https://` (in any case).
pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// `url` with its `http://` made `https://` when `https` (the URLs of
/// [`crate::archive::layout`] are written `http://`).
pub fn with_scheme(url: &str, https: bool) -> String {
    match url.strip_prefix("http://") {
        Some(rest) if https => format!("https://{rest}"),
        _ => url.to_string(),
    }
}

/// The rustls error under a ureq error: rustls reports a refused
/// handshake as an I/O error wrapping it.
fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => {
            let mut cur: Option<&(dyn std::error::Error + 'static)> = io
                .get_ref()
                .map(|r| r as &(dyn std::error::Error + 'static));
            for _ in 0..8 {
                let err = cur?;
                if let Some(r) = err.downcast_ref::<rustls::Error>() {
                    return Some(r);
                }
                cur = err.source();
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert!(is_https("https://x/"));
        assert!(is_https("HTTPS://x/"));
        assert!(!is_https("http://x/"));
        assert!(!is_https("http"));
        assert_eq!(with_scheme("http://h:443/a", true), "https://h:443/a");
        assert_eq!(with_scheme("http://h:80/a", false), "http://h:80/a");
        assert_eq!(with_scheme("rsync://h/a", true), "rsync://h/a");
    }

    #[test]
    fn https_without_a_ca_is_refused_before_connecting() {
        let c = Client::new(&Options::new(None, "/etc/edeploy/ca.pem"));
        // Port 9 on a reserved address: nothing is sent, so no timeout.
        let e = c.get("https://192.0.2.1:9/x").expect_err("refused");
        assert!(matches!(e, NetError::NoCa { .. }), "{e}");
        let s = e.to_string();
        assert!(s.starts_with("https://192.0.2.1:9/x: refused"), "{s}");
        assert!(s.contains("/etc/edeploy/ca.pem"), "{s}");
        assert!(e.is_refusal());
    }

    #[test]
    fn bad_ca_files_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cases: [(&str, &[u8], &str); 4] = [
            ("empty.pem", b"", "no certificate"),
            ("text.pem", b"hello\n", "no certificate"),
            (
                "key.pem",
                b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGtleWtleWtleWtleWtleWtleWtleWtleWtleWtleWtl\n-----END PRIVATE KEY-----\n",
                "private key",
            ),
            (
                "junk.pem",
                b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
                "not a usable CA certificate",
            ),
        ];
        for (name, text, want) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            let e = load_ca(&p).expect_err(name).to_string();
            assert!(e.starts_with(&p.display().to_string()), "{e}");
            assert!(e.contains(want), "{name}: {e}");
            // The client refuses https:// with it, before connecting.
            let c = Client::new(&Options::new(Some(p.clone()), "x"));
            let e = c.get("https://192.0.2.1:9/x").expect_err(name).to_string();
            assert!(e.starts_with(&p.display().to_string()), "{e}");
            assert!(
                e.contains(want) && e.contains("https://192.0.2.1:9/x"),
                "{e}"
            );
        }
        let missing = dir.path().join("missing.pem");
        let e = load_ca(&missing).expect_err("missing");
        assert!(e.to_string().contains("cannot read it"), "{e}");
    }
}
