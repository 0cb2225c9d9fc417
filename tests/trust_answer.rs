//! Signed answers of `upload.cgi` (docs/trust.md, "Answers of
//! upload.cgi"), on a real Apache and a real lighttpd (tests/support),
//! with keys made by Debian's `minisign` and signatures checked by it:
//! the header, what the installer's check ([`server::check_answer`],
//! [`server::ask`]) refuses, and unsigned answers under
//! `REQUIRE_SIGNATURES`.

#[macro_use]
mod support;

use edeploy::hw;
use edeploy::init::cmdline::Settings;
use edeploy::init::server::{self, Part, PostOutcome};
use edeploy::init::{Console, Tuning};
use edeploy::protocol::{self, ANSWER, SIGNATURE_HEADER};
use edeploy::trust::{Checked, KeyId, Policy, TrustError, Trusted, TRUSTED_DIR};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{scratch, Kind, Options, Site, ROOT};

/// A key pair made by the `minisign` CLI: (public key file, secret key
/// file, its id).
struct CliKey {
    _dir: tempfile::TempDir,
    public: PathBuf,
    secret: PathBuf,
    id: KeyId,
}

fn minisign() -> &'static str {
    assert!(
        Path::new("/usr/bin/minisign").exists(),
        "minisign is not installed: apt-get install -y minisign (.ci/run does this)"
    );
    "/usr/bin/minisign"
}

fn cli_key() -> CliKey {
    let dir = tempfile::tempdir().expect("tempdir");
    let public = dir.path().join("server.pub");
    let secret = dir.path().join("server.key");
    let out = Command::new(minisign())
        .arg("-G")
        .arg("-W")
        .arg("-p")
        .arg(&public)
        .arg("-s")
        .arg(&secret)
        .stdin(Stdio::null())
        .output()
        .expect("run minisign -G");
    assert!(
        out.status.success(),
        "minisign -G: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = Trusted::new()
        .add_file(&public)
        .expect("minisign's public key reads");
    CliKey {
        _dir: dir,
        public,
        secret,
        id,
    }
}

fn trusting(keys: &[&CliKey]) -> Trusted {
    let mut t = Trusted::new();
    for k in keys {
        t.add_file(&k.public).expect("a public key");
    }
    t
}

/// The KVM fixture as the installer uploads it (the JSON of its lines),
/// and the node's sysname.
fn node() -> (String, String) {
    let text = fs::read_to_string(Path::new(ROOT).join("tests/fixtures/hw/kvm-test-vm.hw"))
        .expect("fixture");
    let text = text.replacen('[', "[('firmware', 'boot', 'mode', 'bios'),\n ", 1);
    let lines = hw::parse(&text, "kvm").expect("the fixture parses");
    (hw::to_json(&lines), hw::sysname(&lines))
}

/// A site whose `upload.cgi` signs with `key` (none: `conf` alone).
fn site(kind: Kind, key: Option<&CliKey>, conf: &str) -> Site {
    let mut conf = conf.to_string();
    if key.is_some() {
        conf.push_str("\nSIGNKEY = {root}/server.key\n");
    }
    let site = Site::start(
        kind,
        Options {
            conf,
            ..Options::default()
        },
    );
    if let Some(k) = key {
        let text = fs::read_to_string(&k.secret).expect("secret key");
        site.write("server.key", &text);
    }
    site
}

fn tuning() -> Tuning {
    Tuning {
        upload_attempts: 2,
        backoff_first: Duration::from_millis(50),
        backoff_max: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(20),
        ..Tuning::default()
    }
}

/// One hardware upload through the installer's own POST: (body,
/// signature header).
fn answer(site: &Site, hw_json: &str, nonce: &str) -> (String, Option<String>) {
    let parts = [
        ("file", Part::File("hw.json", hw_json.as_bytes())),
        (protocol::NONCE_FIELD, Part::Text(nonce)),
    ];
    match server::post(&site.url(), &parts, &tuning()) {
        PostOutcome::Http(200, body, sig) => (body, sig),
        PostOutcome::Http(status, body, _) => panic!("HTTP {status}: {body}"),
        PostOutcome::Unreachable(why) => panic!("unreachable: {why}"),
        PostOutcome::Refused(why) => panic!("refused: {why}"),
    }
}

/// A console that keeps what was written.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Screen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Screen {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

fn settings(site: &Site, extra: &str) -> Settings {
    Settings::parse(&format!("SERV=127.0.0.1 HTTP_PORT={} {extra}", site.port))
        .expect("a good command line")
}

/// A fake initrd root whose trusted.d holds `keys`.
fn initrd_root(keys: &[&CliKey]) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join(TRUSTED_DIR);
    fs::create_dir_all(&dir).expect("trusted.d");
    for (i, k) in keys.iter().enumerate() {
        fs::copy(&k.public, dir.join(format!("key{i}.pub"))).expect("copy key");
    }
    root
}

fn assert_names_answer_and_key(e: &TrustError, key: KeyId) {
    let text = e.to_string();
    assert!(
        text.starts_with(ANSWER) && text.contains(&key.to_string()),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// The suite, identical for both servers.

/// The header is there, `minisign -V` accepts it over the body curl got,
/// and so does `Trusted::verify`; the trusted comment names the node and
/// the nonce sent.
fn the_header_verifies_with_the_minisign_cli(kind: Kind) {
    let key = cli_key();
    let site = site(kind, Some(&key), "");
    let (hw_json, sysname) = node();
    let hw_file = scratch(&site, "hw.json", hw_json.as_bytes());
    let (head, body) = (site.path("scratch/head"), site.path("scratch/body"));
    let nonce = "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5";
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "60", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .arg("-F")
        .arg(format!("file=@{}", hw_file.display()))
        .arg("-F")
        .arg(format!("nonce={nonce}"))
        .arg(site.url())
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head_text = fs::read_to_string(&head).expect("headers");
    assert!(head_text.starts_with("HTTP/1.1 200"), "{head_text}");
    let prefix = format!("{}:", SIGNATURE_HEADER.to_ascii_lowercase());
    let value = head_text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with(&prefix)
                .then(|| l[prefix.len()..].trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {SIGNATURE_HEADER} in {head_text}"));
    let sig = protocol::signature_from_header(&value).expect("base64 of a signature");
    let sig_file = site.path("scratch/body.minisig");
    fs::write(&sig_file, &sig).expect("write the signature");

    let v = Command::new(minisign())
        .arg("-V")
        .arg("-p")
        .arg(&key.public)
        .arg("-m")
        .arg(&body)
        .arg("-x")
        .arg(&sig_file)
        .stdin(Stdio::null())
        .output()
        .expect("run minisign -V");
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success(),
        "minisign -V: {said} {}",
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(
        said.contains(&format!(
            "edeploy-answer\tnode:{sysname}\tnonce:{nonce}\ttime:"
        )),
        "{said}"
    );
    // The same bytes with one changed: minisign refuses them too.
    let mut bytes = fs::read(&body).expect("body");
    bytes[2] ^= 1;
    fs::write(&body, &bytes).expect("write");
    let v = Command::new(minisign())
        .args(["-V", "-q", "-p"])
        .arg(&key.public)
        .arg("-m")
        .arg(&body)
        .arg("-x")
        .arg(&sig_file)
        .stdin(Stdio::null())
        .output()
        .expect("run minisign -V");
    assert!(!v.status.success(), "a changed body verified");
    bytes[2] ^= 1;

    let verified = trusting(&[&key])
        .verify(ANSWER, &bytes, &sig, None)
        .expect("Trusted::verify accepts it");
    assert_eq!(verified.key, key.id);
    assert_eq!(verified.field("node"), Some(sysname.as_str()));
    assert_eq!(verified.field("nonce"), Some(nonce));
    let json: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(json["profile"], "vm");
}

/// What the installer accepts, then each thing it refuses, each refusal
/// naming the answer and the key.
fn the_installer_refuses_what_is_not_its_answer(kind: Kind) {
    let key = cli_key();
    let other = cli_key();
    let site = site(kind, Some(&key), "");
    let (hw_json, sysname) = node();
    let policy = Policy::new(trusting(&[&key]), None);
    let nonce = server::nonce().expect("a nonce");
    assert_eq!(nonce.len(), 32);
    assert!(nonce.chars().all(|c| c.is_ascii_hexdigit()), "{nonce}");
    assert_ne!(server::nonce().expect("a nonce"), nonce);
    let (body, sig) = answer(&site, &hw_json, &nonce);
    let sig = sig.expect("the answer is signed");

    // The answer as it came.
    match server::check_answer(&policy, body.as_bytes(), Some(&sig), &sysname, &nonce) {
        Ok(Checked::Signed(v)) => assert_eq!(v.key, key.id),
        other => panic!("expected a signed answer, got {other:?}"),
    }

    // A flipped byte in the body.
    let mut flipped = body.clone().into_bytes();
    let at = body.find("set_role").expect("the script is in the answer");
    flipped[at] ^= 0x20;
    let e = server::check_answer(&policy, &flipped, Some(&sig), &sysname, &nonce)
        .expect_err("a flipped byte");
    assert!(matches!(e, TrustError::Invalid { .. }), "{e}");
    assert_names_answer_and_key(&e, key.id);

    // No header.
    let e = server::check_answer(&policy, body.as_bytes(), None, &sysname, &nonce)
        .expect_err("unsigned");
    assert!(matches!(e, TrustError::Missing { .. }), "{e}");
    assert_names_answer_and_key(&e, key.id);
    assert!(e.to_string().contains(SIGNATURE_HEADER), "{e}");

    // Signed by a key this installer does not trust.
    let stranger = Policy::new(trusting(&[&other]), None);
    let e = server::check_answer(&stranger, body.as_bytes(), Some(&sig), &sysname, &nonce)
        .expect_err("untrusted");
    assert!(matches!(e, TrustError::Untrusted { .. }), "{e}");
    assert_names_answer_and_key(&e, key.id);

    // Another node's answer replayed to this one.
    let e = server::check_answer(
        &policy,
        body.as_bytes(),
        Some(&sig),
        "Other-Node-0002",
        &nonce,
    )
    .expect_err("another node");
    assert_names_answer_and_key(&e, key.id);
    assert!(
        e.to_string().contains(&format!("made for node {sysname}")),
        "{e}"
    );

    // An old answer of this node replayed to a new upload.
    let fresh = server::nonce().expect("a nonce");
    let e = server::check_answer(&policy, body.as_bytes(), Some(&sig), &sysname, &fresh)
        .expect_err("an old nonce");
    assert_names_answer_and_key(&e, key.id);
    assert!(e.to_string().contains("replayed"), "{e}");

    // A header that is not base64 is refused, not a panic.
    let e = server::check_answer(&policy, body.as_bytes(), Some("%%%"), &sysname, &nonce)
        .expect_err("garbage");
    assert!(e.to_string().starts_with(ANSWER), "{e}");

    // The whole ask: the good answer's envelope; with a stranger's key,
    // the refusal and no envelope (nothing of it is read, let alone run).
    let s = settings(&site, "");
    let screen = Screen::default();
    let console = Console::new(Box::new(screen.clone()));
    let env = server::ask(&s, &hw_json, &sysname, &policy, &console, &tuning())
        .expect("a signed answer is accepted");
    assert_eq!(env.profile, "vm");
    let e =
        server::ask(&s, &hw_json, &sysname, &stranger, &console, &tuning()).expect_err("untrusted");
    let text = format!("{e:#}");
    assert!(
        text.starts_with(ANSWER) && text.contains(&key.id.to_string()),
        "{text}"
    );
    // Refused once, not retried as a 5xx would be.
    assert!(!screen.text().contains("waiting for"), "{}", screen.text());
}

/// `REQUIRE_SIGNATURES = false` and no key on the server: answers come
/// unsigned; an installer with keys refuses them unless its command line
/// says `REQUIRE_SIGNATURES=0`, and one without keys warns.
fn unsigned_answers_and_require_signatures(kind: Kind) {
    let key = cli_key();
    let site = site(kind, None, "REQUIRE_SIGNATURES = false");
    let (hw_json, sysname) = node();
    let (_, sig) = answer(&site, &hw_json, &server::nonce().expect("nonce"));
    assert_eq!(sig, None, "an unsigned server sent a signature");

    let with_keys = initrd_root(&[&key]);
    let screen = Screen::default();
    let console = Console::new(Box::new(screen.clone()));
    let strict = settings(&site, "");
    let policy = server::answer_policy(with_keys.path(), &strict).expect("the initrd's keys");
    assert!(policy.require);
    assert_eq!(policy.trusted.ids(), vec![key.id]);
    let e = server::ask(&strict, &hw_json, &sysname, &policy, &console, &tuning())
        .expect_err("unsigned, keys trusted");
    let text = format!("{e:#}");
    assert!(
        text.starts_with(&format!("{ANSWER}: no signature")) && text.contains(&key.id.to_string()),
        "{text}"
    );

    let lax = settings(&site, "REQUIRE_SIGNATURES=0");
    let policy = server::answer_policy(with_keys.path(), &lax).expect("the initrd's keys");
    let env = server::ask(&lax, &hw_json, &sysname, &policy, &console, &tuning())
        .expect("REQUIRE_SIGNATURES=0 accepts it");
    assert_eq!(env.profile, "vm");
    assert!(
        screen
            .text()
            .contains(&format!("WARNING: {ANSWER}: accepted WITHOUT a signature")),
        "{}",
        screen.text()
    );

    // No keys in the initrd: accepted, with a warning at every upload.
    let bare = initrd_root(&[]);
    let policy = server::answer_policy(bare.path(), &strict).expect("no keys");
    assert!(!policy.require);
    let screen = Screen::default();
    let console = Console::new(Box::new(screen.clone()));
    for _ in 0..2 {
        server::ask(&strict, &hw_json, &sysname, &policy, &console, &tuning())
            .expect("no keys, no check");
    }
    assert_eq!(
        screen.text().matches("this initrd trusts no key").count(),
        2,
        "{}",
        screen.text()
    );

    // A file in trusted.d that is not a key is named.
    let broken = initrd_root(&[]);
    let bad = broken.path().join(TRUSTED_DIR).join("junk.pub");
    fs::write(&bad, "not a key\n").expect("write");
    let Err(e) = server::answer_policy(broken.path(), &strict) else {
        panic!("{} is not a key, and was accepted", bad.display());
    };
    assert!(
        format!("{e:#}").contains(&bad.display().to_string()),
        "{e:#}"
    );
}

/// A bad nonce is 400 naming the field; nothing is handed out.
fn a_bad_nonce_is_refused(kind: Kind) {
    let key = cli_key();
    let site = site(kind, Some(&key), "");
    let (hw_json, _) = node();
    let parts = [
        ("file", Part::File("hw.json", hw_json.as_bytes())),
        (protocol::NONCE_FIELD, Part::Text("not-a-nonce")),
    ];
    match server::post(&site.url(), &parts, &tuning()) {
        PostOutcome::Http(400, body, sig) => {
            assert!(body.contains("\\\"nonce\\\""), "{body}");
            assert_eq!(sig, None);
        }
        PostOutcome::Http(status, body, _) => panic!("HTTP {status}: {body}"),
        PostOutcome::Unreachable(why) => panic!("unreachable: {why}"),
        PostOutcome::Refused(why) => panic!("refused: {why}"),
    }
    assert!(fs::read_dir(site.path("hw"))
        .expect("HWDIR")
        .next()
        .is_none());
}

suite!(
    the_header_verifies_with_the_minisign_cli,
    the_installer_refuses_what_is_not_its_answer,
    unsigned_answers_and_require_signatures,
    a_bad_nonce_is_refused,
);

/// `scripts/build-initrd --trust`: each file is checked before anything
/// is built; a secret key, a file that is not a key, or two keys of one
/// name are refused naming the file. (`bad:vers` makes the build itself
/// stop at once when the keys pass.)
#[test]
fn build_initrd_checks_its_trusted_keys() {
    let key = cli_key();
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.pub");
    fs::write(&junk, "hello\n").expect("write");
    let run = |args: &[&Path]| {
        let out = Command::new(Path::new(ROOT).join("scripts/build-initrd"))
            .args(args.iter().flat_map(|a| [Path::new("--trust"), a]))
            .arg("bad:vers")
            .env("OUT", dir.path().join("out"))
            .stdin(Stdio::null())
            .output()
            .expect("run build-initrd");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[&key.secret]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "--trust {}: not a minisign public key",
            key.secret.display()
        )) && err.contains("secret key"),
        "{err}"
    );
    let (code, err) = run(&[&junk]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "--trust {}: not a minisign public key",
            junk.display()
        )),
        "{err}"
    );
    let (code, err) = run(&[&key.public, &key.public]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("another key is also named server.pub"),
        "{err}"
    );
    // A good key passes: what stops the build is the version.
    let (code, err) = run(&[&key.public]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("--trust"), "{err}");
    assert!(err.contains("ROLE and VERS take letters"), "{err}");
}
