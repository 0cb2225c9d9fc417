//! HTTPS with a pinned CA (src/net.rs), against real lighttpd
//! (mod_openssl) and Apache (mod_ssl) serving the shipped TLS snippets on
//! 127.0.0.1, with a throw-away CA made by the `openssl` CLI:
//!
//! - the installer's own upload (`init::server::ask`) gets its answer
//!   over https with the CA pinned;
//! - `edeploy upgrade --transport http` on a host with `HTTPS=1` in its
//!   conf fetches its delta over https with the host's
//!   `/etc/edeploy/ca.pem`;
//! - a certificate of another CA is refused, naming the URL and the
//!   pinned CA; no CA at all is refused with the sentence telling where
//!   to put one; plain http keeps working.

#[macro_use]
mod support;

#[path = "fixtures/host/support.rs"]
mod host;

use edeploy::init::cmdline::Settings;
use edeploy::init::{server, Console, Tuning};
use std::fs;
use std::path::PathBuf;
use std::time::Duration;
use support::{Kind, Options, Pki, Site, Tls};

fn tuning(ca: Option<PathBuf>) -> Tuning {
    Tuning {
        upload_attempts: 3,
        backoff_first: Duration::from_millis(20),
        backoff_max: Duration::from_millis(40),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(20),
        ca,
        ..Tuning::default()
    }
}

fn console() -> Console {
    Console::new(Box::new(std::io::sink()))
}

fn tls_site(kind: Kind, tls: &Tls) -> Site {
    Site::start(
        kind,
        Options {
            tls: Some(tls.clone()),
            ..Options::default()
        },
    )
}

/// What the installer reads from `HTTPS=1 SERV=127.0.0.1 HTTP_PORT=…`.
fn settings(site: &Site, https: bool) -> Settings {
    let flag = if https { "HTTPS=1" } else { "" };
    Settings::parse(&format!(
        "SERV=127.0.0.1 HTTP_PORT={} {flag} quiet",
        site.port
    ))
    .expect("command line")
}

/// A node's hardware list, which the example configuration gives the
/// profile `vm`.
/// An initrd without trusted keys: answers are taken unsigned, with a
/// warning (tests/trust_answer.rs covers signed ones).
fn no_keys() -> edeploy::trust::Policy {
    edeploy::trust::Policy::new(edeploy::trust::Trusted::new(), None)
}

fn hw() -> String {
    support::kvm_node(1)
}

/// The profile upload.cgi gives [`hw`] when curl asks (what the
/// installer must get too).
fn profile_by_curl(site: &Site) -> String {
    let file = support::scratch(site, "node.hw", hw().as_bytes());
    let a = site.upload(&file, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["profile"].as_str().expect("a profile").to_string()
}

fn upload_over_https_with_the_pinned_ca(kind: Kind) {
    let pki = Pki::new("edeploy test CA");
    let site = tls_site(kind, &pki.server("127.0.0.1"));
    let s = settings(&site, true);
    let url = server::upload_url(&s);
    assert_eq!(
        url,
        format!("https://127.0.0.1:{}/cgi-bin/upload.cgi", site.port)
    );
    let envelope = server::ask(
        &s,
        &hw(),
        "node",
        &no_keys(),
        &console(),
        &tuning(Some(pki.ca())),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", site.error_log()));
    assert!(!envelope.script.is_empty());
    // The same node asked again with curl (the CGI keeps its decision):
    // the same profile, so the installer's answer was the CGI's.
    assert_eq!(envelope.profile, profile_by_curl(&site));
    let kept = fs::read_dir(site.path("hw")).expect("HWDIR").count();
    assert!(kept >= 1, "the CGI kept no hardware list");
}

fn a_certificate_of_another_ca_is_refused(kind: Kind) {
    let ours = Pki::new("edeploy test CA");
    let theirs = Pki::new("another CA");
    let site = tls_site(kind, &theirs.server("127.0.0.1"));
    let s = settings(&site, true);
    let url = server::upload_url(&s);
    let e = server::ask(
        &s,
        &hw(),
        "node",
        &no_keys(),
        &console(),
        &tuning(Some(ours.ca())),
    )
    .expect_err("a certificate of another CA")
    .to_string();
    assert!(e.starts_with(&format!("{url}: refused")), "{e}");
    assert!(e.contains("not signed by the pinned CA"), "{e}");
    assert!(e.contains(&ours.ca().display().to_string()), "{e}");
    // Final: not retried as a server that does not answer.
    assert!(!e.contains("did not answer"), "{e}");
    // Nothing reached the CGI.
    assert!(site.cgi_log().is_empty(), "{:?}", site.cgi_log());
    assert_eq!(fs::read_dir(site.path("hw")).expect("HWDIR").count(), 0);
}

fn host_upgrades_over_https(kind: Kind) {
    let pki = Pki::new("edeploy test CA");
    let site = tls_site(kind, &pki.server("127.0.0.1"));
    let www = site.path("www");
    host::server_files(&www);
    host::pack_versions(&www, false);
    let env = host::order_log(&www).display().to_string();
    let env = [("ORDER_LOG", env.as_str())];
    let conf = format!(
        "HSERV=127.0.0.1\nHSERV_PORT={}\nHPATH=install\nHTTPS=1\n",
        site.port
    );
    let delta_url = format!(
        "https://127.0.0.1:{}/install/V2/base-V1-V2.delta",
        site.port
    );

    // No CA on the host: refused before anything is sent.
    let root = host::host_root(&conf, &www.join("install/V1/base"));
    let (code, out, err) =
        host::edeploy(root.path(), &["upgrade", "--transport", "http", "V2"], &env);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains(&format!("{delta_url}: refused")), "{err}");
    assert!(err.contains("no CA certificate is configured"), "{err}");
    assert!(
        err.contains(&root.path().join("etc/edeploy/ca.pem").display().to_string()),
        "{err}"
    );
    assert_eq!(host::read(root.path(), "etc/app.conf"), "version=1\n");

    // Another CA's certificate pinned: refused, nothing changed.
    let other = Pki::new("another CA");
    host::put(
        root.path(),
        "etc/edeploy/ca.pem",
        &fs::read_to_string(other.ca()).expect("CA"),
    );
    let (code, out, err) =
        host::edeploy(root.path(), &["upgrade", "--transport", "http", "V2"], &env);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains(&format!("{delta_url}: refused")), "{err}");
    assert!(err.contains("not signed by the pinned CA"), "{err}");
    assert_eq!(host::read(root.path(), "etc/app.conf"), "version=1\n");

    // The right CA: the delta comes over https and is applied.
    host::put(
        root.path(),
        "etc/edeploy/ca.pem",
        &fs::read_to_string(pki.ca()).expect("CA"),
    );
    let (code, out, err) =
        host::edeploy(root.path(), &["upgrade", "--transport", "http", "V2"], &env);
    assert_eq!(code, 0, "{out}{err}\n{}", site.error_log());
    assert!(out.contains(&format!("fetched {delta_url}")), "{out}");
    assert!(out.contains("base is now at version V2"), "{out}");
    assert_eq!(host::read(root.path(), "etc/app.conf"), "version=2\n");
}

suite!(
    upload_over_https_with_the_pinned_ca,
    a_certificate_of_another_ca_is_refused,
    host_upgrades_over_https,
);

#[test]
fn https_without_a_ca_is_refused_with_where_to_put_one() {
    let pki = Pki::new("edeploy test CA");
    let site = tls_site(Kind::Lighttpd, &pki.server("127.0.0.1"));
    let s = settings(&site, true);
    let url = server::upload_url(&s);
    let e = server::ask(&s, &hw(), "node", &no_keys(), &console(), &tuning(None))
        .expect_err("no CA")
        .to_string();
    assert!(e.starts_with(&format!("{url}: refused")), "{e}");
    assert!(e.contains("no CA certificate is configured"), "{e}");
    assert!(e.contains("etc/edeploy/ca.pem of the initrd"), "{e}");
    assert!(e.contains("build-initrd --ca"), "{e}");
    assert!(site.cgi_log().is_empty(), "{:?}", site.cgi_log());
}

#[test]
fn a_certificate_for_another_address_is_refused() {
    let pki = Pki::new("edeploy test CA");
    // Signed by the pinned CA, but for another address than the URL's.
    let site = tls_site(Kind::Lighttpd, &pki.server("127.0.0.2"));
    let s = settings(&site, true);
    let e = server::ask(
        &s,
        &hw(),
        "node",
        &no_keys(),
        &console(),
        &tuning(Some(pki.ca())),
    )
    .expect_err("another address")
    .to_string();
    assert!(e.starts_with(&server::upload_url(&s)), "{e}");
    assert!(e.contains("is not valid for this server"), "{e}");
}

#[test]
fn plain_http_keeps_working_with_or_without_a_ca() {
    let pki = Pki::new("edeploy test CA");
    let site = Site::start(Kind::Lighttpd, Options::default());
    let s = settings(&site, false);
    assert!(server::upload_url(&s).starts_with("http://"));
    let expected = profile_by_curl(&site);
    // A CA file that is not one only concerns https://.
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("ca.pem");
    fs::write(&bad, "not a certificate\n").expect("write");
    for ca in [None, Some(pki.ca()), Some(bad)] {
        let envelope = server::ask(
            &s,
            &hw(),
            "node",
            &no_keys(),
            &console(),
            &tuning(ca.clone()),
        )
        .unwrap_or_else(|e| panic!("{ca:?}: {e:#}"));
        assert_eq!(envelope.profile, expected);
    }
}

#[test]
fn a_tls_server_asked_in_plain_http_gives_no_answer() {
    let pki = Pki::new("edeploy test CA");
    let site = tls_site(Kind::Lighttpd, &pki.server("127.0.0.1"));
    // HTTPS=1 forgotten on the command line.
    let s = settings(&site, false);
    let e = server::ask(
        &s,
        &hw(),
        "node",
        &no_keys(),
        &console(),
        &tuning(Some(pki.ca())),
    )
    .expect_err("plain http to a TLS port")
    .to_string();
    assert!(e.contains("did not answer after 3 attempts"), "{e}");
}

#[test]
fn the_command_line_and_the_host_conf_switch_to_https_and_port_443() {
    let s = Settings::parse("SERV=10.0.0.9 HSERV=10.0.0.8 HTTPS=1").expect("parse");
    assert!(s.https);
    assert_eq!(
        server::upload_url(&s),
        "https://10.0.0.9:443/cgi-bin/upload.cgi"
    );
    assert_eq!(s.hserv_port, 443);
    let s = Settings::parse("SERV=10.0.0.9 HTTPS=1 HTTP_PORT=8443 HSERV_PORT=9443").expect("parse");
    assert_eq!(
        server::upload_url(&s),
        "https://10.0.0.9:8443/cgi-bin/upload.cgi"
    );
    assert_eq!(s.hserv_port, 9443);
    let e = Settings::parse("HTTPS=yes").expect_err("bad flag");
    assert!(e.to_string().contains("HTTPS=yes: expected 0 or 1"), "{e}");
    let s = Settings::parse("SERV=10.0.0.9").expect("parse");
    assert!(!s.https);
    assert_eq!(s.http_port, 80);

    let conf = edeploy::host::conf::Conf::parse("HSERV=h\nHTTPS=1\n");
    assert!(conf.https().expect("HTTPS=1"));
    assert_eq!(conf.http_server().expect("server").1, 443);
    let conf = edeploy::host::conf::Conf::parse("HSERV=h\nHTTPS=maybe\n");
    let e = conf.https().expect_err("bad value").to_string();
    assert!(e.contains("HTTPS=maybe: expected 0 or 1"), "{e}");
}

/// A CA file on disk that is not one is named before anything is sent.
#[test]
fn a_bad_ca_file_is_named() {
    let pki = Pki::new("edeploy test CA");
    let site = tls_site(Kind::Lighttpd, &pki.server("127.0.0.1"));
    let s = settings(&site, true);
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("ca.pem");
    fs::write(&bad, "not a certificate\n").expect("write");
    let e = server::ask(
        &s,
        &hw(),
        "node",
        &no_keys(),
        &console(),
        &tuning(Some(bad.clone())),
    )
    .expect_err("bad CA file")
    .to_string();
    assert!(e.contains(&bad.display().to_string()), "{e}");
    assert!(e.contains("no certificate in it"), "{e}");
}

#[test]
fn a_self_signed_server_certificate_can_be_pinned_itself() {
    let (tls, _keep) = support::self_signed("127.0.0.1");
    let site = tls_site(Kind::Lighttpd, &tls);
    let s = settings(&site, true);
    let envelope = server::ask(
        &s,
        &hw(),
        "node",
        &no_keys(),
        &console(),
        &tuning(Some(tls.cert.clone())),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(envelope.profile, profile_by_curl(&site));
    // Another self-signed certificate pinned instead: refused.
    let (other, _keep2) = support::self_signed("127.0.0.1");
    let e = server::ask(
        &s,
        &hw(),
        "node",
        &no_keys(),
        &console(),
        &tuning(Some(other.cert.clone())),
    )
    .expect_err("another certificate")
    .to_string();
    assert!(e.contains("not signed by the pinned CA"), "{e}");
}

/// The installer copies its CA into the installed tree without ever
/// writing through a symlink the tree holds.
#[test]
fn the_ca_is_never_written_through_a_symlink_of_the_target() {
    use edeploy::init::install::write_ca;
    let pki = Pki::new("edeploy test CA");
    let ca = fs::read(pki.ca()).expect("CA");
    let outside = tempfile::tempdir().expect("outside");

    // etc/edeploy is a link out of the tree: refused, nothing written.
    let target = tempfile::tempdir().expect("target");
    fs::create_dir_all(target.path().join("etc")).expect("etc");
    std::os::unix::fs::symlink(outside.path(), target.path().join("etc/edeploy")).expect("link");
    let e = write_ca(target.path(), Some(&pki.ca())).expect_err("through a symlink");
    assert!(
        format!("{e:#}").contains("etc/edeploy is a symlink"),
        "{e:#}"
    );
    assert_eq!(fs::read_dir(outside.path()).expect("outside").count(), 0);

    // ca.pem itself a link out of the tree: replaced, not written through.
    let target = tempfile::tempdir().expect("target");
    fs::create_dir_all(target.path().join("etc/edeploy")).expect("etc/edeploy");
    let victim = outside.path().join("victim");
    fs::write(&victim, "precious\n").expect("victim");
    std::os::unix::fs::symlink(&victim, target.path().join("etc/edeploy/ca.pem")).expect("link");
    write_ca(target.path(), Some(&pki.ca())).expect("write_ca");
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious\n");
    let placed = target.path().join("etc/edeploy/ca.pem");
    assert!(!placed.symlink_metadata().expect("ca.pem").is_symlink());
    assert_eq!(fs::read(&placed).expect("ca.pem"), ca);

    // No CA: nothing written. A bad one: refused before anything is.
    let target = tempfile::tempdir().expect("target");
    write_ca(target.path(), None).expect("no CA");
    assert!(!target.path().join("etc").exists());
    let bad = outside.path().join("bad.pem");
    fs::write(&bad, "junk\n").expect("bad");
    let e = write_ca(target.path(), Some(&bad)).expect_err("bad CA");
    assert!(format!("{e:#}").contains("no certificate in it"), "{e:#}");
    assert!(!target.path().join("etc").exists());
}
