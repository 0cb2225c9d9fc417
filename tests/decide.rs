//! The server's decision on real files in a temp dir: profile order and
//! quota, CMDB allocation and write-back, re-provisioning, failure reports,
//! configuration errors, and crash recovery of the journaled writes.

use edeploy::config::{ConfFile, ServerConfig};
use edeploy::hw::{self, Line};
use edeploy::literal::Value;
use edeploy::persist;
use edeploy::provision::decide::{self, DecideError};
use edeploy::state::{Count, State};
use std::fs;
use std::path::{Path, PathBuf};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn kvm_hw() -> Vec<Line> {
    let text = fs::read_to_string(format!("{FIX}/hw/kvm-test-vm.hw")).unwrap();
    hw::parse(&text, "kvm-test-vm.hw").unwrap()
}

fn hp_hw() -> Vec<Line> {
    let text = fs::read_to_string(format!("{FIX}/hw/hp-proliant-dl360p-gen8.hw")).unwrap();
    hw::parse(&text, "hp.hw").unwrap()
}

/// A config dir with the given files, and a server config pointing at it.
fn setup(files: &[(&str, &str)]) -> (tempfile::TempDir, ServerConfig) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    let mut cfg = ServerConfig::with_configdir(dir.path());
    cfg.lockfile = dir.path().join("edeploy.lock");
    (dir, cfg)
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap()
}

fn decide(cfg: &ServerConfig, hw: &[Line]) -> Result<decide::Decision, DecideError> {
    decide::decide(cfg, hw, true, &mut |_| {})
}

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

const KVM_SPECS: &str = "[('system', 'product', 'vendor', 'kvm'),\n ('disk', '$disk', 'size', 'gt(1)'),\n ('network', '$eth', 'serial', '$mac')]\n";
const HP_SPECS: &str =
    "[('system', 'product', 'vendor', 'HP'),\n ('disk', '$disk', 'size', 'gt(100)')]\n";

#[test]
fn first_matching_profile_with_quota_wins_and_is_decremented() {
    let (dir, cfg) = setup(&[
        ("state", "[('hp', 4), ('vm', 2), ('any', '*')]"),
        ("hp.specs", HP_SPECS),
        ("hp.configure", "// hp"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", "set_role(\"base\", \"1\", \"/dev/vda\");"),
        ("any.specs", "[]"),
        ("any.configure", "// any"),
    ]);
    let d = decide(&cfg, &kvm_hw()).unwrap();
    assert_eq!(d.profile, "vm");
    assert_eq!(d.vars.get("disk"), Some(&s("vda")));
    assert_eq!(d.vars.get("edeploy-profile"), Some(&s("vm")));
    assert_eq!(d.script, "set_role(\"base\", \"1\", \"/dev/vda\");");
    assert_eq!(d.left, Count::Left(1));
    assert_eq!(
        read(dir.path(), "state"),
        "[('hp', 4),\n ('vm', 1),\n ('any', '*')]\n"
    );
    decide(&cfg, &kvm_hw()).unwrap();
    // vm is at 0 now: the node falls through to the catch-all.
    let d = decide(&cfg, &kvm_hw()).unwrap();
    assert_eq!(d.profile, "any");
    assert!(read(dir.path(), "state").contains("('vm', 0)"));
    let d = decide(&cfg, &hp_hw()).unwrap();
    assert_eq!((d.profile.as_str(), d.left), ("hp", Count::Left(3)));
}

#[test]
fn no_match_names_every_profile_and_its_reason() {
    let (dir, cfg) = setup(&[
        ("state", "[('hp', 4), ('gone', 1), ('vm', 0)]"),
        ("hp.specs", HP_SPECS),
        ("hp.configure", ""),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
    ]);
    let mut warnings = Vec::new();
    let e = decide::decide(&cfg, &kvm_hw(), true, &mut |w| warnings.push(w)).unwrap_err();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("gone.specs: missing"), "{warnings:?}");
    assert_eq!(e.http_status(), 404);
    let msg = e.to_string();
    assert!(
        msg.contains("hp: spec line 1 ('system', 'product', 'vendor', 'HP')"),
        "{msg}"
    );
    assert!(msg.contains("gone: no .specs file"), "{msg}");
    assert!(msg.contains("vm: no installs left"), "{msg}");
    assert_eq!(
        read(dir.path(), "state"),
        "[('hp', 4), ('gone', 1), ('vm', 0)]"
    );
}

#[test]
fn bad_specs_is_a_configuration_error_naming_file_and_line() {
    let (_dir, cfg) = setup(&[
        ("state", "[('vm', 1)]"),
        (
            "vm.specs",
            "[\n    ('disk', '$disk', 'size', 'gt(4)'),\n    ('memory', 'total', 'size', 'ge(2)')\n    ('network', '$eth', 'serial', '$mac'),\n]\n",
        ),
        ("vm.configure", ""),
    ]);
    let e = decide(&cfg, &kvm_hw()).unwrap_err();
    assert_eq!(e.http_status(), 500);
    let msg = e.to_string();
    assert!(msg.contains("vm.specs:4:5"), "{msg}");
    assert!(msg.contains("comma is missing"), "{msg}");

    let (_dir, cfg) = setup(&[
        ("state", "[('vm', 1)]"),
        (
            "vm.specs",
            "[('disk', '$d', 'size', 'gt(1)'),\n ('disk', '$d', 'size', 'regexp([)')]",
        ),
        ("vm.configure", ""),
    ]);
    let msg = decide(&cfg, &kvm_hw()).unwrap_err().to_string();
    assert!(msg.contains("vm.specs:2"), "{msg}");
}

#[test]
fn bad_state_names_its_line() {
    let (_dir, cfg) = setup(&[("state", "[('hp', 4),\n ('vm', 'many')]")]);
    let e = decide(&cfg, &kvm_hw()).unwrap_err();
    assert_eq!(e.http_status(), 500);
    let msg = e.to_string();
    assert!(msg.contains("state:2:"), "{msg}");
    assert!(msg.contains("count of \"vm\""), "{msg}");
    let (_dir, cfg) = setup(&[("state", "[('../etc/passwd', 4)]")]);
    let msg = decide(&cfg, &kvm_hw()).unwrap_err().to_string();
    assert!(msg.contains("not a usable profile name"), "{msg}");
}

#[test]
fn cmdb_generate_is_expanded_backed_up_and_allocated() {
    let cmdb = "generate({'ip': '10.0.2.3-5', 'hostname': 'kvm1-3'})\n";
    let (dir, cfg) = setup(&[
        ("state", "[('vm', '*')]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("vm.cmdb", cmdb),
    ]);
    let d = decide(&cfg, &kvm_hw()).unwrap();
    assert_eq!(d.cmdb_entry, Some(0));
    assert_eq!(d.vars.get("ip"), Some(&s("10.0.2.3")));
    assert_eq!(d.vars.get("hostname"), Some(&s("kvm1")));
    assert_eq!(read(dir.path(), "vm.cmdb.orig"), cmdb);
    let text = read(dir.path(), "vm.cmdb");
    assert_eq!(
        text,
        "[{'ip': '10.0.2.3', 'hostname': 'kvm1', 'disk': 'vda', 'eth': 'eth2', 'mac': '52:54:12:34:00:03', 'used': 1},\n {'ip': '10.0.2.4', 'hostname': 'kvm2'},\n {'ip': '10.0.2.5', 'hostname': 'kvm3'}]\n"
    );
    // Unlimited state is not rewritten.
    assert_eq!(read(dir.path(), "state"), "[('vm', '*')]");
}

#[test]
fn json_cmdb_stays_json() {
    let (dir, cfg) = setup(&[
        ("state", "[[\"vm\", 3]]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        (
            "vm.cmdb",
            "[{\"ip\": \"10.0.2.3\"}, {\"ip\": \"10.0.2.4\"}]",
        ),
    ]);
    decide(&cfg, &kvm_hw()).unwrap();
    let text = read(dir.path(), "vm.cmdb");
    assert!(
        text.starts_with("[{\"ip\": \"10.0.2.3\", \"disk\": \"vda\""),
        "{text}"
    );
    assert_eq!(read(dir.path(), "state"), "[[\"vm\", 2]]\n");
    assert!(!dir.path().join("vm.cmdb.orig").exists());
}

#[test]
fn reprovisioning_reuses_the_entry_without_consuming_quota() {
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 1), ('fallback', '*')]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("vm.cmdb", "generate({'ip': '10.0.2.3-5'})"),
        ("fallback.specs", "[]"),
        ("fallback.configure", ""),
    ]);
    let first = decide(&cfg, &kvm_hw()).unwrap();
    assert!(!first.reused);
    assert!(read(dir.path(), "state").contains("('vm', 0)"));
    let cmdb_after_first = read(dir.path(), "vm.cmdb");
    // Same node boots the installer again: same profile, same entry, even at 0.
    let again = decide(&cfg, &kvm_hw()).unwrap();
    assert_eq!(again.profile, "vm");
    assert!(again.reused);
    assert_eq!(again.cmdb_entry, first.cmdb_entry);
    assert_eq!(again.vars, first.vars);
    assert!(read(dir.path(), "state").contains("('vm', 0)"));
    assert_eq!(read(dir.path(), "vm.cmdb"), cmdb_after_first);
    // Another node of the same kind finds vm exhausted.
    let mut other = kvm_hw();
    for l in other.iter_mut() {
        if l[3] == "52:54:12:34:00:03" {
            l[3] = "52:54:12:34:00:99".into();
        }
    }
    assert_eq!(decide(&cfg, &other).unwrap().profile, "fallback");
}

#[test]
fn cmdb_exhaustion_is_409_and_changes_nothing() {
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 5)]"),
        ("vm.specs", "[('system', 'product', 'serial', '$$tag')]"),
        ("vm.configure", ""),
        ("vm.cmdb", "[{'tag': 'A', 'ip': '10.0.0.1'}]"),
    ]);
    let mut hw = kvm_hw();
    hw.push([
        "system".into(),
        "product".into(),
        "serial".into(),
        "B".into(),
    ]);
    let e = decide(&cfg, &hw).unwrap_err();
    assert_eq!(e.http_status(), 409);
    assert!(e.to_string().contains("tag='B'"), "{e}");
    assert_eq!(read(dir.path(), "state"), "[('vm', 5)]");
    hw.last_mut().unwrap()[3] = "A".into();
    let d = decide(&cfg, &hw).unwrap();
    assert_eq!(d.vars.get("ip"), Some(&s("10.0.0.1")));

    let (_dir, cfg) = setup(&[
        ("state", "[('vm', 5)]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("vm.cmdb", "[{'ip': '10.0.0.1', 'used': 1}]"),
    ]);
    let e = decide(&cfg, &kvm_hw()).unwrap_err();
    assert_eq!(e.http_status(), 409);
    assert!(
        e.to_string().contains("no more entries in the CMDB of vm"),
        "{e}"
    );
}

/// The KVM list with other MAC addresses: another node of the same kind.
fn other_kvm_hw() -> Vec<Line> {
    let mut other = kvm_hw();
    for l in other.iter_mut() {
        for f in l.iter_mut() {
            *f = f.replace("52:54:12:34:00:", "52:54:99:34:00:");
        }
    }
    other
}

#[test]
fn failure_report_gives_quota_back_once_per_hand_out() {
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 1), ('any', '*')]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("any.specs", "[]"),
        ("any.configure", ""),
    ]);
    let node = kvm_hw();
    let other = other_kvm_hw();
    assert_eq!(decide(&cfg, &node).unwrap().profile, "vm");
    assert_eq!(decide(&cfg, &other).unwrap().profile, "any");
    let state = read(dir.path(), "state");
    assert_eq!(state, "[('vm', 0),\n ('any', '*')]\n");
    // One file a node, named by its sysname.
    let node_file = format!("{}/{}", decide::HANDOUTS, hw::sysname(&node));
    let handouts = read(dir.path(), &node_file);
    assert_eq!(handouts, "[('vm', 1)]\n");
    let other_file = format!("{}/{}", decide::HANDOUTS, hw::sysname(&other));
    // A node never handed vm: refused, nothing changed.
    let e = decide::report_failure(&cfg, "vm", &other).unwrap_err();
    assert_eq!(e.http_status(), 409, "{e}");
    assert!(e.to_string().contains(&hw::sysname(&other)), "{e}");
    assert_eq!(read(dir.path(), "state"), state);
    assert_eq!(read(dir.path(), &node_file), handouts);
    // The node handed vm: counts once.
    assert!(decide::report_failure(&cfg, "vm", &node).unwrap());
    assert_eq!(read(dir.path(), &node_file), "[]\n");
    assert_eq!(read(dir.path(), "state"), "[('vm', 1),\n ('any', '*')]\n");
    let e = decide::report_failure(&cfg, "vm", &node).unwrap_err();
    assert_eq!(e.http_status(), 409, "{e}");
    assert_eq!(read(dir.path(), "state"), "[('vm', 1),\n ('any', '*')]\n");
    // A '*' profile took no install: no hand-out is recorded, and a
    // report has nothing to give back.
    assert!(!dir.path().join(&other_file).exists());
    let e = decide::report_failure(&cfg, "any", &other).unwrap_err();
    assert_eq!(e.http_status(), 409, "{e}");
    assert!(e.to_string().contains("took no install"), "{e}");
    assert!(decide::report_failure(&cfg, "nope", &node).is_err());
    assert_eq!(read(dir.path(), "state"), "[('vm', 1),\n ('any', '*')]\n");
}

#[test]
fn a_bad_handouts_file_names_its_line() {
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 1)]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
    ]);
    let sysname = hw::sysname(&kvm_hw());
    std::fs::create_dir(dir.path().join(decide::HANDOUTS)).unwrap();
    std::fs::write(
        dir.path().join(decide::HANDOUTS).join(&sysname),
        "[('other', 1),\n ('vm', -1)]\n",
    )
    .unwrap();
    let e = decide(&cfg, &kvm_hw()).unwrap_err();
    assert_eq!(e.http_status(), 500, "{e}");
    assert!(
        e.to_string()
            .contains(&format!("{}/{sysname}:2", decide::HANDOUTS)),
        "{e}"
    );
    assert_eq!(read(dir.path(), "state"), "[('vm', 1)]");
}

/// Runs `f` before each decision of this thread takes its lock, with the
/// number of the call (from 1).
fn before_lock(mut f: impl FnMut(usize) + 'static) -> std::rc::Rc<std::cell::Cell<usize>> {
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let c = calls.clone();
    decide::hooks::set_before_lock(move || {
        c.set(c.get() + 1);
        f(c.get());
    });
    calls
}

#[test]
fn installs_taken_between_matching_and_the_lock_send_the_node_on() {
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 1), ('any', '*')]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("any.specs", "[]"),
        ("any.configure", ""),
    ]);
    // Matched against vm, which had an install left; before the lock
    // another node takes it.
    let state = dir.path().join("state");
    let calls = before_lock(move |n| {
        if n == 1 {
            fs::write(&state, "[('vm', 0), ('any', '*')]").unwrap();
        }
    });
    let d = decide(&cfg, &kvm_hw());
    decide::hooks::clear();
    let d = d.unwrap();
    // What the decision under the lock gives for that state: `any`,
    // whose match was computed in a second round.
    assert_eq!(d.profile, "any");
    assert_eq!(calls.get(), 2);
    assert_eq!(read(dir.path(), "state"), "[('vm', 0), ('any', '*')]");
}

#[test]
fn installs_given_back_between_matching_and_the_lock_are_taken() {
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 0), ('any', '*')]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("any.specs", "[]"),
        ("any.configure", ""),
    ]);
    // vm had no install left and was not matched; one comes back before
    // the lock.
    let state = dir.path().join("state");
    let calls = before_lock(move |n| {
        if n == 1 {
            fs::write(&state, "[('vm', 1), ('any', '*')]").unwrap();
        }
    });
    let d = decide(&cfg, &kvm_hw());
    decide::hooks::clear();
    assert_eq!(d.unwrap().profile, "vm");
    assert_eq!(calls.get(), 2);
    assert_eq!(read(dir.path(), "state"), "[('vm', 0),\n ('any', '*')]\n");
}

#[test]
fn installs_that_keep_changing_give_up_after_some_rounds_taking_nothing() {
    let profiles = ["p1", "p2", "p3", "p4", "p5"];
    let one_left = move |k: usize| {
        let items: Vec<String> = profiles
            .iter()
            .enumerate()
            .map(|(i, p)| format!("('{p}', {})", u8::from(i == k)))
            .collect();
        format!("[{}]", items.join(", "))
    };
    let mut files = vec![("state".to_string(), one_left(0))];
    for p in profiles {
        files.push((format!("{p}.specs"), "[]".into()));
        files.push((format!("{p}.configure"), String::new()));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (dir, cfg) = setup(&files);
    // Each time before the lock, the install left moves to the next
    // profile: the walk under the lock always needs a match it did not
    // compute.
    let state = dir.path().join("state");
    let calls = before_lock(move |n| fs::write(&state, one_left(n)).unwrap());
    let e = decide(&cfg, &kvm_hw());
    decide::hooks::clear();
    let e = e.unwrap_err();
    assert_eq!(e.http_status(), 503, "{e}");
    assert!(e.to_string().contains("kept changing"), "{e}");
    assert_eq!(calls.get(), decide::ROUNDS);
    assert_eq!(read(dir.path(), "state"), one_left(decide::ROUNDS));
    assert!(!dir.path().join(decide::HANDOUTS).exists());
}

#[test]
fn over_budget_is_503_naming_the_profile_and_takes_nothing() {
    let (dir, mut cfg) = setup(&[
        ("state", "[('vm', 1)]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("vm.cmdb", "[{'ip': '10.0.0.1'}]"),
    ]);
    cfg.decision_budget = std::time::Duration::ZERO;
    let kept = dir.path().join("node.hw");
    let e = decide::decide_keeping(
        &cfg,
        &kvm_hw(),
        None,
        Some((kept.clone(), b"kept\n".to_vec())),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(e.http_status(), 503, "{e}");
    assert!(e.to_string().contains("profile vm"), "{e}");
    assert!(e.to_string().contains("DECISIONBUDGET"), "{e}");
    assert_eq!(read(dir.path(), "state"), "[('vm', 1)]");
    assert_eq!(read(dir.path(), "vm.cmdb"), "[{'ip': '10.0.0.1'}]");
    assert!(!dir.path().join(decide::HANDOUTS).exists());
    // As for every upload answered with an error, the list is kept.
    assert_eq!(read(dir.path(), "node.hw"), "kept\n");
    // A preview (edeploy-admin try) has no limit.
    assert_eq!(
        decide::preview(&cfg, &kvm_hw(), &mut |_| {})
            .unwrap()
            .profile,
        "vm"
    );
}

#[test]
fn dry_run_changes_nothing() {
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 1)]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("vm.cmdb", "generate({'ip': '10.0.2.3-5'})"),
    ]);
    let before: Vec<(PathBuf, Vec<u8>)> = listing(dir.path());
    let d = decide::decide(&cfg, &kvm_hw(), false, &mut |_| {}).unwrap();
    assert_eq!(d.vars.get("ip"), Some(&s("10.0.2.3")));
    assert_eq!(listing(dir.path()), before);
}

fn listing(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let data = fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn concurrent_decisions_never_share_an_entry() {
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 30), ('spare', '*')]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        (
            "vm.cmdb",
            "generate({'ip': '10.0.1.1-40', 'hostname': 'n1-40'})",
        ),
        ("spare.specs", "[]"),
        ("spare.configure", ""),
    ]);
    let threads: Vec<_> = (0..40)
        .map(|i| {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let mut hw = kvm_hw();
                for l in hw.iter_mut() {
                    if l[3] == "52:54:12:34:00:03" {
                        l[3] = format!("52:54:00:00:01:{i:02x}");
                    }
                }
                decide::decide(&cfg, &hw, true, &mut |_| {}).unwrap()
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let vm: Vec<_> = results.iter().filter(|d| d.profile == "vm").collect();
    assert_eq!(vm.len(), 30);
    let mut ips: Vec<_> = vm.iter().map(|d| d.vars.get("ip").cloned()).collect();
    ips.sort_by_key(|v| format!("{v:?}"));
    ips.dedup();
    assert_eq!(ips.len(), 30, "an IP was handed out twice");
    let state = State::load(&dir.path().join("state")).unwrap();
    assert_eq!(state.get("vm").unwrap().count, Count::Left(0));
    let text = read(dir.path(), "vm.cmdb");
    assert_eq!(text.matches("'used': 1").count(), 30);
}

#[test]
fn config_file_sections_and_defaults() {
    let text = "[SERVER]\nCONFIGDIR   = /var/lib/edeploy/config/   # state, specs\nhwdir = /var/lib/edeploy/hw/\n; comment\nLOCKFILE    = /var/lock/apache2/edeploy.lock\nUSEPXEMNGR  = True\nPXEMNGRURL  = http://pxemngr.example/\nMETADATAURL = http://metadata.example/\n\n[lab]\nCONFIGDIR = /srv/lab\n";
    let conf = ConfFile::parse(text, "edeploy.conf").unwrap();
    let srv = conf.server(None).unwrap();
    assert_eq!(srv.configdir, PathBuf::from("/var/lib/edeploy/config/"));
    assert_eq!(srv.hwdir, PathBuf::from("/var/lib/edeploy/hw/"));
    assert_eq!(srv.logdir, srv.configdir, "LOGDIR defaults to CONFIGDIR");
    assert!(srv.use_pxemngr);
    assert_eq!(srv.pxemngr_url.as_deref(), Some("http://pxemngr.example/"));
    let lab = conf.server(Some("lab")).unwrap();
    assert_eq!(lab.configdir, PathBuf::from("/srv/lab"));
    assert_eq!(
        lab.hwdir,
        PathBuf::from("/var/lib/edeploy/hw/"),
        "inherited"
    );
    assert_eq!(
        lab.lockfile,
        PathBuf::from("/var/lock/apache2/edeploy.lock")
    );
    let e = conf.server(Some("nope")).unwrap_err().to_string();
    assert!(e.contains("no section [nope]"), "{e}");
    let e = ConfFile::parse("[SERVER]\nCONFIGDIR /x\n", "c.conf")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("c.conf:2:"), "{e}");
    let e = ConfFile::parse("[SERVER]\nCONFIGDIR=/x\nUSEPXEMNGR = maybe\n", "c.conf")
        .unwrap()
        .server(None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("c.conf:3:"), "{e}");
    // The seed's form: keys without a section header.
    let seed = "HEALTHDIR   = /var/lib/edeploy/health/\nCONFIGDIR   = /var/lib/edeploy/config/\nLOGDIR      = /var/lib/edeploy/config/logs\n";
    let srv = ConfFile::parse(seed, "seed").unwrap().server(None).unwrap();
    assert_eq!(srv.logdir, PathBuf::from("/var/lib/edeploy/config/logs"));
}

#[test]
fn edeploy_conf_env_override() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edeploy.conf");
    fs::write(&path, "[SERVER]\nCONFIGDIR = /srv/x\n").unwrap();
    // Only this test touches EDEPLOY_CONF.
    std::env::set_var("EDEPLOY_CONF", &path);
    let cfg = edeploy::config::load(None).unwrap();
    std::env::remove_var("EDEPLOY_CONF");
    assert_eq!(cfg.configdir, PathBuf::from("/srv/x"));
    assert_eq!(
        edeploy::config::conf_path(),
        PathBuf::from("/etc/edeploy.conf")
    );
}

#[test]
fn hardware_lists_json_and_literal() {
    let json = fs::read_to_string(format!("{FIX}/hw/virtio-vm-hardware-detect.json")).unwrap();
    let lines = hw::parse(&json, "detect.json").unwrap();
    assert_eq!(lines.len(), 112);
    assert_eq!(
        lines
            .iter()
            .find(|l| l[1] == "physical" && l[2] == "number")
            .unwrap()[3],
        "1",
        "integers become their decimal text"
    );
    assert_eq!(
        lines[0],
        ["disk", "logical", "count", "1"].map(String::from)
    );
    let dell = fs::read_to_string(format!("{FIX}/hw/dell-poweredge-m520.hw")).unwrap();
    let lines = hw::parse(&dell, "dell.hw").unwrap();
    assert_eq!(lines[3][3], "278.875");
    // Round trip through the literal writer keeps every line in order.
    let again = hw::parse(&hw::to_literal(&lines), "again").unwrap();
    assert_eq!(again, lines);
    let e = hw::parse("[('a', 'b', 'c')]", "x.hw")
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.hw:1: item 1 has 3 fields"), "{e}");
    let e = hw::parse("[('a', 'b', 'c', 'd'),\n ('a', 'b', 'c', ['d'])]", "x.hw")
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.hw:2: item 2 holds a list"), "{e}");
    let e = hw::parse("[1.5, 'x']", "x.hw").unwrap_err().to_string();
    assert!(e.contains("item 1 is a float"), "{e}");
    let e = hw::parse("{'a': 1}", "x.hw").unwrap_err().to_string();
    assert!(e.contains("expected a list of 4-tuples"), "{e}");
}

#[test]
fn sysname_matches_the_original() {
    assert_eq!(
        hw::sysname(&hp_hw()),
        "ProLiantDL360pGen8654081B21-HP-CZ3323FDVK"
    );
    assert_eq!(
        hw::sysname(&kvm_hw()),
        "edeploy_test_vm-kvm-52-54-12-34-00-03"
    );
    let evil: Vec<Line> = vec![["system", "product", "name", "../../etc/x"].map(String::from)];
    assert_eq!(hw::sysname(&evil), "etcx");
    assert_eq!(hw::sysname(&[]), "unknown");
}

#[test]
fn unreadable_specs_is_an_error_only_when_the_profile_is_tried() {
    let (dir, cfg) = setup(&[
        ("state", "[('broken', 0), ('vm', 1)]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
    ]);
    // A directory where the specs file belongs exists but cannot be read.
    fs::create_dir(dir.path().join("broken.specs")).unwrap();
    // No install left and no CMDB: the profile is passed over unread.
    let d = decide(&cfg, &kvm_hw()).unwrap();
    assert_eq!(d.profile, "vm");
    fs::write(dir.path().join("state"), "[('broken', 1), ('vm', 1)]").unwrap();
    let e = decide(&cfg, &kvm_hw()).unwrap_err();
    assert_eq!(e.http_status(), 500);
    let msg = e.to_string();
    assert!(msg.contains("broken.specs: cannot read"), "{msg}");
}

#[test]
fn specs_with_numbers_and_shared_regexps() {
    // Numbers in specs compare by their text; two profiles share a regexp.
    let (_dir, cfg) = setup(&[
        ("state", "[('first', 1), ('second', 1)]"),
        (
            "first.specs",
            "[('system', 'product', 'vendor', 'regexp(^k.m$)'),\n ('disk', 'vda', 'size', 999)]",
        ),
        ("first.configure", ""),
        (
            "second.specs",
            "[('system', 'product', 'vendor', 'regexp(^k.m$)'),\n ('disk', '$disk', 'size', 'gt(1)')]",
        ),
        ("second.configure", ""),
    ]);
    let d = decide::decide(&cfg, &kvm_hw(), false, &mut |_| {}).unwrap();
    assert_eq!(d.profile, "second");
    let size = hw::get(&kvm_hw(), "disk", "vda", "size")
        .unwrap()
        .to_string();
    let (_dir, cfg) = setup(&[
        ("state", "[('first', 1)]"),
        (
            "first.specs",
            &format!("[('system', 'product', 'vendor', 'regexp(^k.m$)'),\n ('disk', 'vda', 'size', {size})]"),
        ),
        ("first.configure", ""),
    ]);
    let d = decide::decide(&cfg, &kvm_hw(), false, &mut |_| {}).unwrap();
    assert_eq!(d.profile, "first");
}

#[test]
fn an_unchanged_cmdb_is_not_rewritten() {
    use std::os::unix::fs::MetadataExt;
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 1)]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("vm.cmdb", "[{'ip': '10.0.2.3'}, {'ip': '10.0.2.4'}]"),
    ]);
    let inode = |name: &str| fs::metadata(dir.path().join(name)).unwrap().ino();
    let original = inode("vm.cmdb");
    let first = decide(&cfg, &kvm_hw()).unwrap();
    assert!(!first.reused);
    // The entry was handed out: the CMDB was replaced.
    let written = inode("vm.cmdb");
    assert_ne!(written, original);
    let text = read(dir.path(), "vm.cmdb");
    // The same node again: its entry is already complete, nothing changes.
    let again = decide(&cfg, &kvm_hw()).unwrap();
    assert!(again.reused);
    assert_eq!(inode("vm.cmdb"), written);
    assert_eq!(read(dir.path(), "vm.cmdb"), text);
}

#[test]
fn the_kept_file_lands_with_the_decision_or_alone() {
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 1)]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("vm.cmdb", "[{'ip': '10.0.0.1'}]"),
    ]);
    let kept = dir.path().join("node.hw");
    let d = edeploy::provision::decide::decide_keeping(
        &cfg,
        &kvm_hw(),
        None,
        Some((kept.clone(), b"first\n".to_vec())),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(d.profile, "vm");
    assert_eq!(read(dir.path(), "node.hw"), "first\n");
    assert_eq!(read(dir.path(), "state"), "[('vm', 0)]\n");
    // One commit held the four files: CMDB, state, hand-out record, list.
    let records = persist::log::records(dir.path()).unwrap();
    assert_eq!(
        records.last().map(|r| r.paths.len()),
        Some(4),
        "{records:?}"
    );

    // No installs left: no decision to commit, the file is kept anyway.
    let mut other = kvm_hw();
    for l in other.iter_mut() {
        for f in l.iter_mut() {
            *f = f.replace("52:54:12:34:00:", "52:54:99:34:00:");
        }
    }
    let e = edeploy::provision::decide::decide_keeping(
        &cfg,
        &other,
        None,
        Some((kept.clone(), b"second\n".to_vec())),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(e.http_status(), 404, "{e}");
    assert_eq!(read(dir.path(), "node.hw"), "second\n");
    assert_eq!(read(dir.path(), "state"), "[('vm', 0)]\n");
}

#[test]
fn the_node_is_told_its_cmdb_entry_is_used() {
    let (_dir, cfg) = setup(&[
        ("state", "[('vm', 3), ('hp', 2)]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("vm.cmdb", "[{'ip': '10.0.2.3'}, {'ip': '10.0.2.4'}]\n"),
        ("hp.specs", HP_SPECS),
        ("hp.configure", ""),
    ]);
    // As the original: `used` is an integer 1, before `edeploy-profile`.
    let d = decide(&cfg, &kvm_hw()).unwrap();
    assert_eq!(d.vars.get("used"), Some(&Value::Int(1)));
    let keys: Vec<&str> = d.vars.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["ip", "disk", "eth", "mac", "used", "edeploy-profile"],
        "{:?}",
        d.vars
    );
    // The same node again: the same vars, `used` once.
    let again = decide(&cfg, &kvm_hw()).unwrap();
    assert_eq!(again.vars, d.vars);
    // A profile without a CMDB hands out no entry: no `used`.
    let d = decide(&cfg, &hp_hw()).unwrap();
    assert_eq!(d.profile, "hp");
    assert!(!d.vars.contains_key("used"), "{:?}", d.vars);
}

#[test]
fn pxemngr_url_is_sent_only_with_usepxemngr() {
    let conf = |use_pxemngr: &str| {
        let text = format!(
            "[SERVER]\nCONFIGDIR = /x\nUSEPXEMNGR = {use_pxemngr}\n\
             PXEMNGRURL = http://pxemngr.example/\nMETADATAURL = http://metadata.example/\n"
        );
        ConfFile::parse(&text, "edeploy.conf")
            .unwrap()
            .server(None)
            .unwrap()
    };
    let off = decide::settings(&conf("False"));
    assert_eq!(off.get("PXEMNGR_URL"), None, "{off:?}");
    assert_eq!(
        off.get("METADATA_URL").map(String::as_str),
        Some("http://metadata.example/")
    );
    let on = decide::settings(&conf("True"));
    assert_eq!(
        on.get("PXEMNGR_URL").map(String::as_str),
        Some("http://pxemngr.example/")
    );

    // Through a decision: the answer's settings.
    let (_dir, mut cfg) = setup(&[
        ("state", "[('vm', '*')]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
    ]);
    cfg.pxemngr_url = Some("http://pxemngr.example/".into());
    let d = decide(&cfg, &kvm_hw()).unwrap();
    assert!(!d.settings.contains_key("PXEMNGR_URL"), "{:?}", d.settings);
    cfg.use_pxemngr = true;
    let d = decide(&cfg, &kvm_hw()).unwrap();
    assert_eq!(
        d.settings.get("PXEMNGR_URL").map(String::as_str),
        Some("http://pxemngr.example/")
    );
}

#[test]
fn decision_budget_is_read_in_seconds_and_checked() {
    let conf = |text: &str| ConfFile::parse(text, "edeploy.conf").and_then(|c| c.server(None));
    let default = conf("CONFIGDIR = /c\n").unwrap();
    assert_eq!(default.decision_budget, std::time::Duration::from_secs(2));
    let half = conf("CONFIGDIR = /c\nDECISIONBUDGET = 0.5\n").unwrap();
    assert_eq!(half.decision_budget, std::time::Duration::from_millis(500));
    for bad in ["soon", "-1", "nan", "1e9"] {
        let e = conf(&format!("CONFIGDIR = /c\n\nDECISIONBUDGET = {bad}\n")).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("edeploy.conf:3") && e.contains("DECISIONBUDGET"),
            "{e}"
        );
    }
}

/// A match the original matcher does not find (it never retries a line
/// binding no new variable) is given, and the server log says it comes
/// from beyond that matcher's search; a match it finds says nothing.
#[test]
fn a_match_beyond_the_original_search_is_logged() {
    let (_dir, cfg) = setup(&[
        ("state", "[('vm', '*')]"),
        (
            "vm.specs",
            "[('disk', 'sda', 'size', 'gt(1)'), ('disk', 'sda', 'size', '2')]",
        ),
        ("vm.configure", ""),
    ]);
    let line = |v: &str| -> Line { ["disk".into(), "sda".into(), "size".into(), v.into()] };
    let mut warnings = Vec::new();
    let d = decide::decide_keeping(&cfg, &[line("2"), line("3")], None, None, &mut |w| {
        warnings.push(w)
    })
    .unwrap();
    assert_eq!(d.profile, "vm");
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.contains("profile vm: matched beyond the original matcher's search"))
            .count(),
        1,
        "{warnings:?}"
    );
    warnings.clear();
    decide::decide_keeping(&cfg, &[line("3"), line("2")], None, None, &mut |w| {
        warnings.push(w)
    })
    .unwrap();
    assert!(
        warnings.iter().all(|w| !w.contains("beyond")),
        "{warnings:?}"
    );
}

// The CMDB's side index (`.NAME.edeploy-index`).

/// Node `i`: the KVM guest with its MACs made unique.
fn kvm_node(i: usize) -> Vec<Line> {
    let mut node = kvm_hw();
    for l in node.iter_mut() {
        for f in l.iter_mut() {
            *f = f.replace(
                "52:54:12:34:00:",
                &format!("52:{:02x}:{:02x}:34:00:", i / 256, i % 256),
            );
        }
    }
    node
}

/// A CMDB in the skim subset, with a comment, a used entry and entries
/// of different lengths.
fn indexed_cmdb(entries: usize) -> String {
    let mut text = String::from("# rack 4\n[{'ip': '10.0.9.1', 'hostname': 'taken', 'used': 1},\n");
    for i in 0..entries {
        text.push_str(&format!(
            " {{'ip': '10.1.{}.{}', 'hostname': 'n{}'}},\n",
            i / 200,
            i % 200 + 1,
            "x".repeat(i % 7)
        ));
    }
    text.push_str("]\n");
    text
}

fn index_of(dir: &Path) -> PathBuf {
    dir.join(".vm.cmdb.edeploy-index")
}

#[test]
fn the_side_index_gives_what_skimming_gives() {
    let files = |cmdb: &str| {
        setup(&[
            ("state", "[('vm', 100)]"),
            ("vm.specs", KVM_SPECS),
            ("vm.configure", ""),
            ("vm.cmdb", cmdb),
        ])
    };
    let cmdb = indexed_cmdb(40);
    // One site keeps its index; the other loses it before each decision.
    let (kept, kept_cfg) = files(&cmdb);
    let (lost, lost_cfg) = files(&cmdb);
    for i in 0..30 {
        // Every third node comes back: its entry is found, not taken.
        let node = kvm_node(if i % 3 == 2 { i - 2 } else { i });
        let _ = fs::remove_file(index_of(lost.path()));
        let a = decide(&kept_cfg, &node).unwrap();
        let b = decide(&lost_cfg, &node).unwrap();
        assert_eq!(
            (a.cmdb_entry, a.reused),
            (b.cmdb_entry, b.reused),
            "node {i}"
        );
        assert_eq!(a.vars, b.vars, "node {i}");
        assert_eq!(
            read(kept.path(), "vm.cmdb"),
            read(lost.path(), "vm.cmdb"),
            "node {i}"
        );
        assert!(index_of(kept.path()).is_file(), "the index is kept");
    }
    let text = read(kept.path(), "vm.cmdb");
    assert!(
        text.starts_with("# rack 4\n"),
        "the comment is kept: {text}"
    );
    assert_eq!(text.matches("'used': 1").count(), 1 + 20, "{text}");
}

#[test]
fn an_index_of_other_contents_is_not_used() {
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 100)]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("vm.cmdb", &indexed_cmdb(10)),
    ]);
    decide(&cfg, &kvm_node(1)).unwrap();
    let index = fs::read(index_of(dir.path())).unwrap();
    // An operator's edit of the CMDB (the first free entry is now used):
    // the index, made for the file before it, no longer describes it.
    let text = read(dir.path(), "vm.cmdb").replacen(
        "'hostname': 'nx'}",
        "'hostname': 'nx', 'used': 1}",
        1,
    );
    fs::write(dir.path().join("vm.cmdb"), &text).unwrap();
    let d = decide(&cfg, &kvm_node(2)).unwrap();
    assert_eq!(
        d.cmdb_entry,
        Some(3),
        "the operator's used entry is passed over"
    );
    assert_ne!(fs::read(index_of(dir.path())).unwrap(), index, "made again");
    // A damaged index (one byte of its body changed): not used either.
    let mut bad = fs::read(index_of(dir.path())).unwrap();
    let at = bad.len() - 3;
    bad[at] ^= 1;
    fs::write(index_of(dir.path()), &bad).unwrap();
    let d = decide(&cfg, &kvm_node(3)).unwrap();
    assert_eq!(d.cmdb_entry, Some(4));
    // An index that is not one, or is empty.
    for (i, junk) in [&b""[..], b"EDCMDX02", b"[('vm', 1)]\n"]
        .into_iter()
        .enumerate()
    {
        fs::write(index_of(dir.path()), junk).unwrap();
        let next = decide(&cfg, &kvm_node(4 + i)).unwrap();
        assert_eq!(next.cmdb_entry, Some(5 + i), "index {junk:?}");
    }
}

#[test]
fn the_index_path_is_never_followed_nor_waited_on() {
    use std::os::unix::fs::{symlink, FileTypeExt};
    let (dir, cfg) = setup(&[
        ("state", "[('vm', 100)]"),
        ("vm.specs", KVM_SPECS),
        ("vm.configure", ""),
        ("vm.cmdb", &indexed_cmdb(10)),
    ]);
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("victim");
    fs::write(&target, "keep me").unwrap();
    symlink(&target, index_of(dir.path())).unwrap();
    let d = decide(&cfg, &kvm_node(1)).unwrap();
    assert_eq!(d.cmdb_entry, Some(1));
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep me");
    let meta = fs::symlink_metadata(index_of(dir.path())).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the symlink was replaced by the index"
    );
    // A FIFO in its place: neither read nor written, and nothing waits.
    fs::remove_file(index_of(dir.path())).unwrap();
    let fifo =
        std::ffi::CString::new(index_of(dir.path()).into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let d = decide(&cfg, &kvm_node(2)).unwrap();
    assert_eq!(d.cmdb_entry, Some(2));
    let meta = fs::symlink_metadata(index_of(dir.path())).unwrap();
    assert!(meta.file_type().is_fifo(), "left as it is");
}
