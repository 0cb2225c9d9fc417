//! Requests answered in process, on a config dir built from the shipped
//! example (the web-server tests in `tests/cgi.rs` run the real binary).

use super::*;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const B: &str = "----edeployTestBoundary";

struct Server {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Server {
    fn new(extra_conf: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        fs::create_dir(&config).unwrap();
        for f in ["state", "vm.specs", "vm.cmdb", "vm.configure"] {
            fs::copy(format!("{ROOT}/share/examples/config/{f}"), config.join(f)).unwrap();
        }
        for d in ["hw", "logs"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let conf = dir.path().join("edeploy.conf");
        let p = dir.path().display();
        fs::write(
            &conf,
            format!(
                "[SERVER]\nCONFIGDIR = {p}/config\nHWDIR = {p}/hw\nLOGDIR = {p}/logs\n\
                 LOCKFILE = {p}/lock\n{extra_conf}"
            ),
        )
        .unwrap();
        Server { dir, conf }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn post(&self, parts: &[(&str, Option<&str>, &[u8])]) -> (Response, String) {
        let body = multipart(parts);
        let env = CgiEnv {
            method: Some("POST".into()),
            content_type: Some(format!("multipart/form-data; boundary={B}")),
            content_length: Some(body.len().to_string()),
            remote_addr: Some("192.0.2.9".into()),
            ..CgiEnv::default()
        };
        self.request(&env, &body)
    }

    fn request(&self, env: &CgiEnv, body: &[u8]) -> (Response, String) {
        let mut err = Vec::new();
        let r = serve(
            env,
            body,
            &self.conf,
            &mut RequestLog::new("192.0.2.9", &mut err),
        );
        (r, String::from_utf8(err).unwrap())
    }
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, data) in parts {
        out.extend_from_slice(format!("--{B}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        out.extend_from_slice(format!("Content-Disposition: {disposition}\r\n\r\n").as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{B}--\r\n").as_bytes());
    out
}

/// The KVM fixture as today's installer uploads it: with the boot-mode
/// line the example profile's vm.specs binds (`$boot_mode`), which the
/// captured list predates.
fn kvm() -> Vec<u8> {
    fs::read_to_string(format!("{ROOT}/tests/fixtures/hw/kvm-test-vm.hw"))
        .unwrap()
        .replacen('[', "[('firmware', 'boot', 'mode', 'bios'),\n ", 1)
        .into_bytes()
}

#[test]
fn a_hardware_upload_gets_the_envelope_and_its_hw_is_kept() {
    let s = Server::new("");
    let (r, log) = s.post(&[("file", Some("hw.py"), &kvm())]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["profile"], "vm");
    assert_eq!(r.body["vars"]["ip"], "10.0.2.15");
    assert_eq!(r.body["vars"]["edeploy-profile"], "vm");
    assert!(r.body["script"].as_str().unwrap().contains("set_role"));
    let saved = s.path("hw/edeploy_test_vm-kvm-52-54-12-34-00-03.hw");
    let text = fs::read_to_string(saved).unwrap();
    assert_eq!(
        hw::parse(&text, "saved").unwrap(),
        hw::parse(&String::from_utf8(kvm()).unwrap(), "k").unwrap()
    );
    assert!(log.contains(" 192.0.2.9: 200 edeploy_test_vm-kvm-52-54-12-34-00-03: profile vm, CMDB entry 1, installs left 9"), "{log}");
    assert_eq!(log.lines().count(), 1, "{log}");
}

#[test]
fn get_is_405_with_allow() {
    let s = Server::new("");
    let env = CgiEnv {
        method: Some("GET".into()),
        ..CgiEnv::default()
    };
    let (r, log) = s.request(&env, b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.headers, vec![("Allow".to_string(), "POST".to_string())]);
    assert!(log.contains(": 405 only POST"), "{log}");
}

/// A body that fails the test if it is read at all.
struct Untouchable(Arc<AtomicBool>);

impl Read for Untouchable {
    fn read(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.store(true, Ordering::SeqCst);
        Ok(0)
    }
}

#[test]
fn a_declared_length_over_the_limit_is_refused_unread() {
    let s = Server::new("MAXUPLOAD = 1000\n");
    let touched = Arc::new(AtomicBool::new(false));
    let env = CgiEnv {
        method: Some("POST".into()),
        content_type: Some(format!("multipart/form-data; boundary={B}")),
        content_length: Some("1073741824".into()),
        ..CgiEnv::default()
    };
    let mut err = Vec::new();
    let r = serve(
        &env,
        Untouchable(Arc::clone(&touched)),
        &s.conf,
        &mut RequestLog::new("x", &mut err),
    );
    assert_eq!(r.status, 413);
    assert!(!touched.load(Ordering::SeqCst), "the body was read");
    assert!(r.sentence().unwrap().contains("1073741824 bytes"));
}

#[test]
fn a_body_longer_than_declared_limit_without_length_is_413() {
    let s = Server::new("MAXUPLOAD = 1000\n");
    let big = vec![b'['; 5000];
    let body = multipart(&[("file", Some("hw"), &big)]);
    let env = CgiEnv {
        method: Some("POST".into()),
        content_type: Some(format!("multipart/form-data; boundary={B}")),
        ..CgiEnv::default()
    };
    let (r, _) = s.request(&env, &body);
    assert_eq!(r.status, 413, "{}", r.body);
}

#[test]
fn malformed_requests_are_400() {
    let s = Server::new("");
    let mut env = CgiEnv {
        method: Some("POST".into()),
        content_type: Some("application/x-www-form-urlencoded".into()),
        ..CgiEnv::default()
    };
    assert_eq!(s.request(&env, b"file=x").0.status, 400);
    env.content_type = Some(format!("multipart/form-data; boundary={B}"));
    env.content_length = Some("12abc".into());
    assert_eq!(s.request(&env, b"").0.status, 400);
    let (r, _) = s.post(&[("section", None, b"SERVER")]);
    assert_eq!(r.status, 400);
    assert_eq!(r.sentence(), Some("the upload has no \"file\" field"));
    let (r, _) = s.post(&[("file", Some("hw"), b"[('a', 'b', 'c')]")]);
    assert_eq!(r.status, 400);
    assert!(
        r.sentence().unwrap().starts_with("bad hardware list: "),
        "{}",
        r.body
    );
    let (r, _) = s.post(&[("file", Some("hw"), b"\xff\xfe")]);
    assert_eq!(r.status, 400);
    let (r, _) = s.post(&[("file", Some("hw"), b"[]")]);
    assert_eq!(r.sentence(), Some("the hardware list is empty"));
}

#[test]
fn code_in_an_upload_is_not_run() {
    let s = Server::new("");
    let marker = s.path("touched");
    let evil = format!("__import__('os').system('touch {}')", marker.display());
    let (r, _) = s.post(&[("file", Some("hw"), evil.as_bytes())]);
    assert_eq!(r.status, 400);
    assert!(!marker.exists());
    assert_eq!(fs::read_dir(s.path("hw")).unwrap().count(), 0);
}

#[test]
fn no_match_is_404_and_names_the_profiles_tried() {
    let s = Server::new("");
    let hp = fs::read(format!(
        "{ROOT}/tests/fixtures/hw/hp-proliant-dl360p-gen8.hw"
    ))
    .unwrap();
    let (r, _) = s.post(&[("file", Some("hw"), &hp)]);
    assert_eq!(r.status, 404);
    let msg = r.sentence().unwrap();
    assert!(
        msg.starts_with("ProLiantDL360pGen8654081B21-HP-CZ3323FDVK: no profile matches"),
        "{msg}"
    );
    assert!(msg.contains("vm: "), "{msg}");
    // The list is kept even when nothing matched, for the operator.
    assert!(s
        .path("hw/ProLiantDL360pGen8654081B21-HP-CZ3323FDVK.hw")
        .exists());
}

#[test]
fn configuration_problems_are_500() {
    let s = Server::new("");
    fs::write(s.path("config/vm.specs"), "[('disk', 'x'").unwrap();
    let (r, _) = s.post(&[("file", Some("hw"), &kvm())]);
    assert_eq!(r.status, 500);
    assert!(r.sentence().unwrap().contains("vm.specs"), "{}", r.body);

    let mut missing = Server::new("");
    missing.conf = missing.path("nowhere.conf");
    let (r, _) = missing.post(&[("file", Some("hw"), &kvm())]);
    assert_eq!(r.status, 500);
    assert!(r.sentence().unwrap().contains("nowhere.conf"));
}

#[test]
fn sections() {
    let s = Server::new("[lab]\nCONFIGDIR = /nonexistent/lab\n");
    let (r, _) = s.post(&[("section", None, b"nosuch"), ("file", Some("hw"), &kvm())]);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.sentence(),
        Some("there is no configuration section [nosuch]")
    );
    let (r, _) = s.post(&[("section", None, b"lab"), ("file", Some("hw"), &kvm())]);
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.sentence().unwrap().contains("/nonexistent/lab"),
        "{}",
        r.body
    );
}

#[test]
fn a_failure_report_gives_the_install_back() {
    let s = Server::new("");
    assert_eq!(s.post(&[("file", Some("hw"), &kvm())]).0.status, 200);
    let state = || fs::read_to_string(s.path("config/state")).unwrap();
    assert!(state().contains("('vm', 9)"), "{}", state());
    let (r, log) = s.post(&[("file", Some("hw"), &kvm()), ("failure", None, b"vm")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        serde_json::json!({"profile": "vm", "given_back": true})
    );
    assert!(state().contains("('vm', 10)"), "{}", state());
    assert!(
        log.contains("edeploy_test_vm-kvm-52-54-12-34-00-03: install of profile vm failed"),
        "{log}"
    );
    let (r, _) = s.post(&[("file", Some("hw"), b"x"), ("failure", None, b"nosuch")]);
    assert_eq!(r.status, 404);
    let (r, _) = s.post(&[("file", Some("hw"), b"x"), ("failure", None, b"../state")]);
    assert_eq!(r.status, 400);
}

#[test]
fn logs_are_kept_and_rotated() {
    let s = Server::new("");
    let (r, _) = s.post(&[("file", Some("node.log.gz"), b"\x1f\x8bfirst")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        serde_json::json!({"log": "node.log.gz", "rotated": null})
    );
    let (r, _) = s.post(&[("file", Some("node.log.gz"), b"\x1f\x8bsecond")]);
    let rotated = r.body["rotated"].as_str().unwrap().to_string();
    assert!(
        rotated.starts_with("node.") && rotated.len() == "node.20240101120000.log.gz".len(),
        "{rotated}"
    );
    assert_eq!(
        fs::read(s.path("logs").join(rotated)).unwrap(),
        b"\x1f\x8bfirst"
    );
    assert_eq!(
        fs::read(s.path("logs/node.log.gz")).unwrap(),
        b"\x1f\x8bsecond"
    );
    for bad in ["../escape.log.gz", "a/b.log.gz", "..log.gz"] {
        let (r, _) = s.post(&[("file", Some(bad), b"x")]);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    assert!(!s.path("escape.log.gz").exists());
}

/// A pxemngr that records its arguments, turned on in `s`'s
/// configuration. Returns the configuration as it was, and the record.
fn fake_pxemngr(s: &Server) -> (String, PathBuf) {
    let script = s.path("pxemngr");
    let record = s.path("pxemngr.args");
    fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", record.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let conf = fs::read_to_string(&s.conf).unwrap();
    fs::write(
        &s.conf,
        format!("{conf}USEPXEMNGR = True\nPXEMNGR = {}\n", script.display()),
    )
    .unwrap();
    (conf, record)
}

#[test]
fn pxemngr_is_called_with_sysname_and_macs_and_its_failure_is_not_fatal() {
    let s = Server::new("");
    let (conf, record) = fake_pxemngr(&s);
    assert_eq!(s.post(&[("file", Some("hw"), &kvm())]).0.status, 200);
    assert_eq!(
        fs::read_to_string(&record).unwrap(),
        "addsystem edeploy_test_vm-kvm-52-54-12-34-00-03 52:54:12:34:00:03 52:54:12:34:00:02 52:54:12:34:00:01\n"
    );
    fs::write(
        &s.conf,
        format!("{conf}USEPXEMNGR = True\nPXEMNGR = /nonexistent/pxemngr\n"),
    )
    .unwrap();
    let (r, log) = s.post(&[("file", Some("hw"), &kvm())]);
    assert_eq!(r.status, 200);
    assert!(
        log.contains("warning: pxemngr failed: /nonexistent/pxemngr addsystem"),
        "{log}"
    );
}

#[test]
fn local_mode_prints_the_envelope_and_can_be_restricted_to_a_profile() {
    let s = Server::new("");
    let hw = s.path("kvm.hw");
    fs::write(&hw, kvm()).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(local(&s.conf, &hw, None, None, &mut out, &mut err), 0);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["profile"], "vm");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        local(&s.conf, &hw, Some("other"), None, &mut out, &mut err),
        1
    );
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains("404") && err.contains("other: not in the state file"),
        "{err}"
    );
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        local(
            &s.conf,
            &s.path("missing.hw"),
            None,
            None,
            &mut out,
            &mut err
        ),
        2
    );
}

fn vm_count(s: &Server) -> crate::state::Count {
    let state = State::load(&s.path("config/state")).unwrap();
    state.get("vm").unwrap().count
}

#[test]
fn local_mode_with_a_failed_profile_gives_one_install_back_and_prints_nothing() {
    let s = Server::new("");
    let hw = s.path("kvm.hw");
    fs::write(&hw, kvm()).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(local(&s.conf, &hw, None, None, &mut out, &mut err), 0);
    let before = vm_count(&s);
    // Nothing to print (the original's `upload.py -f HW -F P` printed
    // nothing either): only the log line.
    let mut err = Vec::new();
    assert_eq!(local_failure(&s.conf, &hw, "vm", None, &mut err), 0);
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains(
            "local: 200 edeploy_test_vm-kvm-52-54-12-34-00-03: install of profile vm failed, \
             one install given back"
        ),
        "{err}"
    );
    let crate::state::Count::Left(n) = before else {
        panic!("vm's count is {before:?}")
    };
    assert_eq!(vm_count(&s), crate::state::Count::Left(n + 1));

    // A profile absent from `state`: said so, nothing changed.
    let mut err = Vec::new();
    assert_eq!(local_failure(&s.conf, &hw, "nosuch", None, &mut err), 1);
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("404") && err.contains("\"nosuch\""), "{err}");
    assert_eq!(vm_count(&s), crate::state::Count::Left(n + 1));
    // An unreadable file is bad input, as in the deciding mode.
    let mut err = Vec::new();
    let missing = s.path("missing.hw");
    assert_eq!(local_failure(&s.conf, &missing, "vm", None, &mut err), 2);
    assert_eq!(vm_count(&s), crate::state::Count::Left(n + 1));
}

#[test]
fn pxemngr_is_given_only_the_ethernet_macs() {
    let s = Server::new("");
    let (_, record) = fake_pxemngr(&s);
    // An InfiniBand port (20-byte address) among the Ethernet ones.
    let ib = "a0:00:02:20:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0d:1c:51";
    let hw = String::from_utf8(kvm()).unwrap().replacen(
        " ('network', 'eth0', 'serial',",
        &format!(" ('network', 'ib0', 'serial', '{ib}'),\n ('network', 'eth0', 'serial',"),
        1,
    );
    assert!(hw.contains(ib));
    let (r, log) = s.post(&[("file", Some("hw"), hw.as_bytes())]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!log.contains("warning"), "{log}");
    assert_eq!(
        fs::read_to_string(&record).unwrap(),
        "addsystem edeploy_test_vm-kvm-52-54-12-34-00-03 52:54:12:34:00:03 52:54:12:34:00:02 52:54:12:34:00:01\n"
    );
}

// --- Signed answers (docs/trust.md, "Answers of upload.cgi")

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn with_signkey_the_answer_is_signed_for_the_node_and_its_nonce() {
    let (key, pk, sk) = crate::trust::SigningKey::generate().unwrap();
    let s = Server::new("");
    fs::write(s.path("server.key"), sk).unwrap();
    let conf = fs::read_to_string(&s.conf).unwrap();
    let key_path = s.path("server.key");
    fs::write(&s.conf, format!("{conf}SIGNKEY = {}\n", key_path.display())).unwrap();
    let nonce = "0123456789abcdef0123456789ABCDEF";
    let (r, log) = s.post(&[
        ("file", Some("hw.py"), &kvm()),
        ("nonce", None, nonce.as_bytes()),
    ]);
    assert_eq!(r.status, 200, "{} {log}", r.body);
    let value = header(&r, protocol::SIGNATURE_HEADER).expect("signed");
    let sig = protocol::signature_from_header(value).unwrap();
    let mut trusted = crate::trust::Trusted::new();
    trusted.add_text(&pk).unwrap();
    // Over exactly the bytes written.
    let mut out = Vec::new();
    r.write_cgi(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    let v = trusted
        .verify("answer", body.as_bytes(), &sig, None)
        .unwrap();
    assert_eq!(v.key, key.id());
    assert_eq!(
        v.field("node"),
        Some("edeploy_test_vm-kvm-52-54-12-34-00-03")
    );
    assert_eq!(v.field("nonce"), Some(nonce));
    let t: u64 = v.field("time").unwrap().parse().unwrap();
    assert!(t.abs_diff(crate::trust::unix_now()) < 60, "{t}");
    assert!(v.comment.starts_with("edeploy-answer\t"), "{}", v.comment);

    // Without a nonce the comment has none.
    let (r, _) = s.post(&[("file", Some("hw.py"), &kvm())]);
    let sig = protocol::signature_from_header(header(&r, protocol::SIGNATURE_HEADER).unwrap());
    let v = trusted
        .verify("answer", &r.body_bytes(), &sig.unwrap(), None)
        .unwrap();
    assert_eq!(v.field("nonce"), None);
}

#[test]
fn a_bad_nonce_is_400_naming_the_field() {
    let s = Server::new("");
    for bad in ["short", "0123456789abcdef-0123"] {
        let (r, _) = s.post(&[
            ("file", Some("hw.py"), &kvm()),
            ("nonce", None, bad.as_bytes()),
        ]);
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.sentence().unwrap().contains("\"nonce\""), "{}", r.body);
    }
    // Nothing was handed out.
    assert!(!s
        .path("hw/edeploy_test_vm-kvm-52-54-12-34-00-03.hw")
        .exists());
}

#[test]
fn without_signkey_answers_are_unsigned_and_an_unreadable_key_takes_nothing() {
    let s = Server::new("");
    let (r, _) = s.post(&[("file", Some("hw.py"), &kvm())]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r, protocol::SIGNATURE_HEADER), None);

    let s = Server::new("");
    let conf = fs::read_to_string(&s.conf).unwrap();
    let missing = s.path("nowhere.key");
    fs::write(&s.conf, format!("{conf}SIGNKEY = {}\n", missing.display())).unwrap();
    let state_before = fs::read_to_string(s.path("config/state")).unwrap();
    let (r, _) = s.post(&[("file", Some("hw.py"), &kvm())]);
    assert_eq!(r.status, 500, "{}", r.body);
    let e = r.sentence().unwrap();
    assert!(
        e.contains("SIGNKEY") && e.contains(&missing.display().to_string()),
        "{e}"
    );
    assert_eq!(
        fs::read_to_string(s.path("config/state")).unwrap(),
        state_before
    );
    assert!(!s
        .path("hw/edeploy_test_vm-kvm-52-54-12-34-00-03.hw")
        .exists());
}
// --- end of signed answers
