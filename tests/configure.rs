//! The configure-script engine: bindings, errors, limits, and the example
//! scripts.

use edeploy::configure::{
    run_script, run_script_with_limits, ErrorKind, Limits, Role, ScriptEnv, ScriptError,
    ScriptOutcome,
};
use edeploy::exec::{CmdLine, Exec, Fake, Reply, System, When};
use edeploy::literal::Value;
use indexmap::IndexMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn vars(pairs: &[(&str, Value)]) -> IndexMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

/// A script run: its result, its log, and the overlay it wrote into.
struct Run {
    result: Result<ScriptOutcome, ScriptError>,
    log: String,
    overlay: PathBuf,
    _dir: tempfile::TempDir,
}

impl Run {
    fn ok(&self) -> &ScriptOutcome {
        match &self.result {
            Ok(o) => o,
            Err(e) => panic!("script failed: {e}\nlog:\n{}", self.log),
        }
    }

    fn err(&self) -> &ScriptError {
        match &self.result {
            Ok(o) => panic!("script succeeded: {o:?}\nlog:\n{}", self.log),
            Err(e) => e,
        }
    }

    fn file(&self, path: &str) -> String {
        let p = self.overlay.join(path.trim_start_matches('/'));
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }
}

fn run_with(source: &str, vars: &IndexMap<String, Value>, exec: &dyn Exec, limits: &Limits) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let overlay = dir.path().join("post_rsync");
    let mut log = Vec::new();
    let result = run_script_with_limits(
        source,
        "t.configure",
        ScriptEnv {
            vars,
            exec,
            overlay: &overlay,
            log: &mut log,
        },
        limits,
    );
    Run {
        result,
        log: String::from_utf8_lossy(&log).into_owned(),
        overlay,
        _dir: dir,
    }
}

fn run(source: &str, vars: &IndexMap<String, Value>, exec: &dyn Exec) -> Run {
    run_with(source, vars, exec, &Limits::default())
}

fn run_plain(source: &str) -> Run {
    run(source, &IndexMap::new(), &System::default())
}

// ---------------------------------------------------------------- var

#[test]
fn var_gives_the_envelope_values_with_their_types() {
    let v = vars(&[
        ("disk", s("vda")),
        ("eth-io", s("eth1")),
        ("size", Value::Int(40)),
        ("big", Value::Int(1 << 70)),
        ("ok", Value::Bool(true)),
        ("list", Value::List(vec![s("a"), s("b")])),
        ("tuple", Value::Tuple(vec![Value::Int(1), Value::Int(2)])),
        (
            "dict",
            Value::Dict(vec![(s("k"), s("v")), (Value::Int(3), s("three"))]),
        ),
        ("none", Value::None),
    ]);
    let r = run(
        r#"
        log("/dev/" + var.disk);
        log(var["eth-io"]);
        log(`${var.size + 2} ${type_of(var.size)}`);
        log(`${var.big} ${type_of(var.big)}`);
        log(`${var.ok} ${var.list.len()} ${var.list[1]} ${var.tuple[0] + var.tuple[1]}`);
        log(var.dict.k + " " + var.dict["3"]);
        log(`${var.none == ()} ${"disk" in var} ${"nope" in var}`);
        let v = var;        // a copy: changing it is allowed
        v.disk = "sdb";
        log(v.disk + " " + var.disk);
        fn in_a_function() { var.disk }
        log(in_a_function());
        "#,
        &v,
        &System::default(),
    );
    r.ok();
    assert_eq!(
        r.log,
        "/dev/vda\neth1\n42 i64\n1180591620717411303424 string\ntrue 2 b 3\nv three\n\
         true true false\nsdb vda\nvda\n"
    );
}

#[test]
fn a_missing_var_key_is_an_error_not_an_empty_value() {
    let v = vars(&[("disk", s("vda"))]);
    let r = run("let d = \"/dev/\" + var.dsik;", &v, &System::default());
    let e = r.err();
    assert_eq!(e.kind, ErrorKind::Runtime);
    assert_eq!((e.line, e.column), (Some(1), Some(23)), "{e}");
    assert!(e.to_string().contains("dsik"), "{e}");
}

#[test]
fn an_undefined_variable_is_refused_before_anything_runs() {
    let rec = Fake::new(["parted"]);
    let r = run(
        "run(\"parted -s /dev/vda mklabel msdos\");\nrun(\"mkfs \" + dsik);\n",
        &IndexMap::new(),
        &rec,
    );
    let e = r.err();
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.to_string().contains("dsik"), "{e}");
    assert!(rec.commands().is_empty());
}

// ---------------------------------------------------------------- run

#[test]
fn run_returns_stdout_and_logs_the_command_and_its_output() {
    let r = run_plain(
        r#"let out = run("echo hello; echo warning >&2");
log("got [" + out + "]");
"#,
    );
    r.ok();
    assert_eq!(
        r.log,
        "+ echo hello; echo warning >&2\nhello\nwarning\ngot [hello\n]\n"
    );
}

#[test]
fn a_failing_command_aborts_with_the_command_its_status_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("after");
    let v = vars(&[("marker", s(&marker.display().to_string()))]);
    let r = run(
        "run(\"echo before\");\nlet x = 1;\n    run(\"echo oops >&2; exit 3\");\nrun(\"touch \" + var.marker);\n",
        &v,
        &System::default(),
    );
    let e = r.err();
    assert_eq!(
        e.kind,
        ErrorKind::Command {
            command: "echo oops >&2; exit 3".into(),
            status: Some(3)
        }
    );
    assert_eq!(
        e.to_string(),
        "t.configure:3:5: run: 'echo oops >&2; exit 3' failed with exit status 3: oops"
    );
    assert!(!marker.exists(), "the script went on after the failure");
    assert!(
        r.log
            .contains("+ echo oops >&2; exit 3\noops\nexit status 3\n"),
        "{}",
        r.log
    );
}

#[test]
fn a_failure_inside_a_function_points_at_the_command() {
    let r = run_plain("fn part(d) {\n  run(\"exit 1\");\n}\n\npart(\"/dev/vda\");\n");
    let e = r.err();
    assert_eq!((e.line, e.column), (Some(2), Some(3)), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("t.configure:2:3: run: 'exit 1' failed with exit status 1"),
        "{text}"
    );
    assert!(text.contains("in function 'part' called at 5:1"), "{text}");
    assert!(!text.contains('\n'));
}

#[test]
fn a_script_can_catch_a_failing_command() {
    let r = run_plain(
        r#"try { run("exit 4"); } catch (e) { log("caught: " + e); }
log("went on");"#,
    );
    r.ok();
    assert!(
        r.log
            .ends_with("caught: run: 'exit 4' failed with exit status 4\nwent on\n"),
        "{}",
        r.log
    );
}

#[test]
fn commands_go_through_the_seam_in_order() {
    let rec = Fake::new(["parted", "mkfs.ext4", "mount"]);
    let v = vars(&[("disk", s("vda"))]);
    let r = run(
        r#"
        let disk = "/dev/" + var.disk;
        for p in [1, 2] {
            run(`parted -s ${disk} mkpart primary ext4 ${p}`);
        }
        let real = run("echo not recorded");
        run(`mkfs.ext4 ${disk}1`);
        run(`mount ${disk}1 /chroot`);
        log(real);
        "#,
        &v,
        &rec,
    );
    r.ok();
    assert_eq!(
        rec.commands(),
        vec![
            CmdLine::shell("parted -s /dev/vda mkpart primary ext4 1"),
            CmdLine::shell("parted -s /dev/vda mkpart primary ext4 2"),
            CmdLine::shell("mkfs.ext4 /dev/vda1"),
            CmdLine::shell("mount /dev/vda1 /chroot"),
        ]
    );
    assert!(
        r.log.contains("+ echo not recorded\nnot recorded\n"),
        "{}",
        r.log
    );
    assert!(r.log.contains("+ mount /dev/vda1 /chroot\n"), "{}", r.log);
}

#[test]
fn run_really_runs_with_the_system_seam() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sub dir").join("touched");
    let v = vars(&[("target", s(&target.display().to_string()))]);
    let r = run(
        r#"run(`mkdir -p "$(dirname '${var.target}')" && touch '${var.target}'`);"#,
        &v,
        &System::default(),
    );
    r.ok();
    assert!(target.is_file());
}

// ---------------------------------------------------------------- set_role

#[test]
fn set_role_records_the_last_call() {
    let r = run_plain(
        r#"set_role("base", "D7-1.0", "/dev/sda");
set_role("mysql", "D7-F.1.0.0", "/dev/vda");"#,
    );
    assert_eq!(
        r.ok().role,
        Some(Role {
            role: "mysql".into(),
            version: "D7-F.1.0.0".into(),
            disk: "/dev/vda".into()
        })
    );
    assert!(
        r.log
            .contains("set_role: replacing base D7-1.0 on /dev/sda\n"),
        "{}",
        r.log
    );
    assert!(
        r.log.contains("set_role: mysql D7-F.1.0.0 on /dev/vda\n"),
        "{}",
        r.log
    );

    assert_eq!(run_plain("let a = 1;").ok().role, None);
    let e = run_plain(r#"set_role("../etc", "1.0", "/dev/sda");"#)
        .result
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("t.configure:1:1: set_role: role '../etc'"),
        "{e}"
    );
}

// ---------------------------------------------------------------- config

#[test]
fn config_writes_under_the_overlay_in_w_and_a_modes() {
    let r = run_plain(
        r#"
        let f = config("/etc/hostname");
        f.write("vm01");
        f.write("\n");                       // same handle: appended
        config("/etc/motd").write("old\n");
        config("/etc/motd", "w").write("new\n");   // reopened in w: truncated
        config("/etc/motd", "a").write("more\n");
        config("/var/lib/deep/tree/file", #{mode: "a"}).write("x");
        config("/var/lib/deep/tree/file", #{mode: "a"}).write("y");
        config("/etc/empty");
        let h = config("/etc//./hostname", "a");
        log(h.path);
        h.close();
        "#,
    );
    let o = r.ok();
    assert_eq!(r.file("/etc/hostname"), "vm01\n");
    assert_eq!(r.file("/etc/motd"), "new\nmore\n");
    assert_eq!(r.file("/var/lib/deep/tree/file"), "xy");
    assert_eq!(r.file("/etc/empty"), "");
    assert_eq!(
        o.files,
        [
            "/etc/hostname",
            "/etc/motd",
            "/var/lib/deep/tree/file",
            "/etc/empty"
        ]
        .iter()
        .map(PathBuf::from)
        .collect::<Vec<_>>()
    );
    assert!(r.log.contains("config: /etc/motd\n"), "{}", r.log);
    assert!(
        r.log.ends_with("config: /etc/hostname\n/etc/hostname\n"),
        "{}",
        r.log
    );
}

#[test]
fn config_applies_perm_and_owner() {
    // As root, give the files away; otherwise keep our own ids (chown to
    // oneself still goes through the call).
    let probe = tempfile::NamedTempFile::new().unwrap();
    let me = fs::metadata(probe.path()).unwrap();
    let (uid, gid) = if me.uid() == 0 {
        (1234, 5678)
    } else {
        (me.uid(), me.gid())
    };
    let r = run_plain(&format!(
        r##"
        config("/etc/shadow-ish", #{{perm: "0600"}}).write("secret");
        config("/etc/script", #{{perm: 0o750, mode: "w"}}).write("#!/bin/sh");
        config("/etc/owned", #{{uid: {uid}, gid: {gid}, fmod: "640"}}).write("x");
        "##
    ));
    r.ok();
    let mode = |p: &str| {
        fs::metadata(r.overlay.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("etc/shadow-ish"), 0o600);
    assert_eq!(mode("etc/script"), 0o750);
    assert_eq!(mode("etc/owned"), 0o640);
    let m = fs::metadata(r.overlay.join("etc/owned")).unwrap();
    assert_eq!((m.uid(), m.gid()), (uid, gid));
    assert_eq!(r.file("/etc/owned"), "x");

    for (opts, msg) in [
        (
            r#"#{perm: "rw-r--r--"}"#,
            "perm 'rw-r--r--' is not an octal mode",
        ),
        (r#"#{perm: 0o17777}"#, "is not a file mode"),
        (r#"#{uid: -1}"#, "uid -1 is out of range"),
        (r#"#{mode: "r"}"#, "mode 'r' is not"),
        (r#"#{owner: 0}"#, "unknown option 'owner'"),
    ] {
        let e = run_plain(&format!("config(\"/etc/x\", {opts});"))
            .result
            .unwrap_err();
        assert!(e.to_string().contains(msg), "{opts}: {e}");
        assert_eq!((e.line, e.column), (Some(1), Some(1)), "{e}");
    }
}

#[test]
fn config_refuses_paths_outside_the_overlay() {
    let r = run_plain(r#"config("/etc/../../escaped").write("x");"#);
    let e = r.err();
    assert_eq!(e.kind, ErrorKind::Runtime);
    assert!(e.to_string().contains("'/etc/../../escaped'"), "{e}");
    assert!(e.to_string().contains("'..'"), "{e}");
    assert!(!r.overlay.parent().unwrap().join("escaped").exists());
    assert!(!r.overlay.exists(), "nothing is created for a refused path");

    let e = run_plain(r#"config("etc/hostname").write("x");"#)
        .result
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("'etc/hostname' is not an absolute path"),
        "{e}"
    );

    let e = run_plain(r#"config("/").write("x");"#).result.unwrap_err();
    assert!(e.to_string().contains("names no file"), "{e}");
}

#[test]
fn config_does_not_follow_symbolic_links_out_of_the_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("post_rsync");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&overlay).unwrap();
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, overlay.join("etc")).unwrap();
    std::os::unix::fs::symlink(outside.join("f"), overlay.join("file")).unwrap();
    for script in [
        r#"config("/etc/passwd").write("x");"#,
        r#"config("/file").write("x");"#,
    ] {
        let mut log = Vec::new();
        let e = run_script(
            script,
            "t.configure",
            ScriptEnv {
                vars: &IndexMap::new(),
                exec: &System::default(),
                overlay: &overlay,
                log: &mut log,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
    }
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

// ---------------------------------------------------------------- format

#[test]
fn format_fills_python_style_templates() {
    let v = vars(&[
        ("eth", s("eth0")),
        ("ip", s("10.0.0.5")),
        ("n", Value::Int(2)),
    ]);
    let r = run(
        r#"
        log(format("auto %(eth)s\n    address %(ip)s (%(n)s, %(n)d) 100%%", var));
        log(format("mount %s1 %s", ["/dev/vda", "/chroot"]));
        let m = var;
        m.extra = "added";
        log(format("%(extra)s", m));
        "#,
        &v,
        &System::default(),
    );
    r.ok();
    assert_eq!(
        r.log,
        "auto eth0\n    address 10.0.0.5 (2, 2) 100%\nmount /dev/vda1 /chroot\nadded\n"
    );

    let r = run(
        "let t = `iface %(eth)s\n  gateway %(gateway)s`;\nlet text = format(t, var);\n",
        &v,
        &System::default(),
    );
    let e = r.err();
    assert_eq!(
        e.to_string(),
        "t.configure:3:12: format: unknown key 'gateway'"
    );

    let e = run_plain(r#"format("50% off", #{});"#).result.unwrap_err();
    assert!(e.to_string().contains("unsupported '% '"), "{e}");
}

// ---------------------------------------------------------------- log, print

#[test]
fn log_print_and_debug_go_to_the_log() {
    let r = run_plain("log(\"one\");\nprint(\"two\");\nprint(3);\ndebug(\"four\");\n");
    r.ok();
    assert_eq!(r.log, "one\ntwo\n3\nt.configure:4: \"four\"\n");
}

// ---------------------------------------------------------------- errors

#[test]
fn syntax_errors_name_the_script_line_and_column() {
    let rec = Fake::new(["parted"]);
    let r = run(
        "run(\"parted -s /dev/vda mklabel msdos\");\nlet x = (1 + ;\n",
        &IndexMap::new(),
        &rec,
    );
    let e = r.err();
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.column.is_some(), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "t.configure:2:{}: syntax error: ",
            e.column.unwrap()
        )),
        "{text}"
    );
    assert!(!text.contains('\n'));
    assert!(
        rec.commands().is_empty(),
        "nothing runs when the script does not parse"
    );
}

#[test]
fn a_thrown_error_is_reported_with_its_position() {
    let e = run_plain("let a = 1;\n  throw \"no disk found\";\n")
        .result
        .unwrap_err();
    assert_eq!(e.to_string(), "t.configure:2:3: no disk found");
    assert_eq!(e.kind, ErrorKind::Runtime);
}

// ---------------------------------------------------------------- limits

#[test]
fn the_default_limits_are_generous_but_finite() {
    let l = Limits::default();
    assert_eq!(l.max_operations, 50_000_000);
    assert_eq!(l.max_call_levels, 64);
    assert_eq!(l.max_string_size, 16 * 1024 * 1024);
    assert_eq!(l.max_array_size, 1_000_000);
    assert_eq!(l.max_map_size, 1_000_000);
    assert!(l.max_script_time > Duration::ZERO);
}

#[test]
fn an_endless_loop_ends_with_a_limit_error() {
    let limits = Limits {
        max_operations: 200_000,
        ..Limits::default()
    };
    let r = run_with(
        "let n = 0;\nloop { n += 1; }\n",
        &IndexMap::new(),
        &System::default(),
        &limits,
    );
    let e = r.err();
    assert_eq!(e.kind, ErrorKind::Limit);
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.to_string().contains("limit of 200000 operations"), "{e}");
}

#[test]
fn an_endless_loop_with_the_default_limits_ends_too() {
    let r = run_plain("loop {}");
    let e = r.err();
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
}

#[test]
fn the_wall_clock_guard_stops_a_slow_script() {
    let limits = Limits {
        max_script_time: Duration::from_millis(200),
        max_operations: 0, // Rhai: 0 means no operation limit
        ..Limits::default()
    };
    let started = std::time::Instant::now();
    let r = run_with("loop { }", &IndexMap::new(), &System::default(), &limits);
    let e = r.err();
    assert_eq!(e.kind, ErrorKind::Limit);
    assert!(e.to_string().contains("ran for more than 200ms"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn time_spent_in_commands_does_not_count_as_script_time() {
    let limits = Limits {
        max_script_time: Duration::from_millis(500),
        ..Limits::default()
    };
    let r = run_with(
        "run(\"sleep 1\");\nlet n = 0;\nfor i in 0..2000 { n += i; }\nlog(`${n}`);",
        &IndexMap::new(),
        &System::default(),
        &limits,
    );
    r.ok();
    assert!(r.log.ends_with("1999000\n"), "{}", r.log);
}

#[test]
fn runaway_recursion_and_huge_data_end_with_limit_errors() {
    let e = run_plain("fn f(n) { f(n + 1) }\nf(0);\n")
        .result
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    assert!(e.to_string().contains("deeper than 64 levels"), "{e}");

    let limits = Limits {
        max_string_size: 1000,
        ..Limits::default()
    };
    let r = run_with(
        "let s = \"x\";\nloop { s += s; }\n",
        &IndexMap::new(),
        &System::default(),
        &limits,
    );
    let e = r.err();
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    assert!(e.to_string().contains("1000 bytes in a string"), "{e}");
}

// ---------------------------------------------------------------- IPMI

#[test]
fn ipmi_helpers_run_the_ipmitool_sequences() {
    let rec = Fake::new(["ipmitool"]);
    let r = run(
        r#"
        let ok = ipmi_setup_user(1, "admin", "s3cr3t pass");
        log(`user ok: ${ok}`);
        ipmi_setup_network("2", "10.0.0.5", "255.255.255.0", "10.0.0.1");
        ipmi_setup_user(1, "root", "a-password-of-20-byt", 2);
        ipmi_setup_network(1, "10.0.0.6", "255.255.0.0", "10.0.0.1", 100);
        "#,
        &IndexMap::new(),
        &rec,
    );
    r.ok();
    let argv = |line: &str| CmdLine::argv(line.split(' '));
    let mut expected = vec![
        argv("ipmitool user set name 1 admin"),
        CmdLine::argv(["ipmitool", "user", "set", "password", "1", "s3cr3t pass"]),
        argv("ipmitool user priv 1 4 1"),
        argv("ipmitool channel setaccess 1 1 link=on ipmi=on callin=on privilege=4"),
        argv("ipmitool user enable 1"),
        CmdLine::argv(["ipmitool", "user", "test", "1", "16", "s3cr3t pass"]),
        argv("ipmitool lan set 2 ipsrc static"),
        argv("ipmitool lan set 2 ipaddr 10.0.0.5"),
        argv("ipmitool lan set 2 netmask 255.255.255.0"),
        argv("ipmitool lan set 2 defgw ipaddr 10.0.0.1"),
        argv("ipmitool lan set 2 arp respond on"),
        argv("ipmitool lan set 2 vlan id off"),
        argv("ipmitool bmc reset cold"),
    ];
    expected.extend(
        [
            "ipmitool user set name 2 root",
            "ipmitool user set password 2 a-password-of-20-byt 20",
            "ipmitool user priv 2 4 1",
            "ipmitool channel setaccess 1 2 link=on ipmi=on callin=on privilege=4",
            "ipmitool user enable 2",
            "ipmitool user test 2 20 a-password-of-20-byt",
            "ipmitool lan set 1 ipsrc static",
            "ipmitool lan set 1 ipaddr 10.0.0.6",
            "ipmitool lan set 1 netmask 255.255.0.0",
            "ipmitool lan set 1 defgw ipaddr 10.0.0.1",
            "ipmitool lan set 1 arp respond on",
            "ipmitool lan set 1 vlan id 100",
            "ipmitool bmc reset cold",
        ]
        .map(argv),
    );
    assert_eq!(rec.commands(), expected);
    assert!(r.log.contains("user ok: true\n"), "{}", r.log);
    // Passwords are masked in the log.
    assert!(
        !r.log.contains("s3cr3t") && !r.log.contains("a-password"),
        "{}",
        r.log
    );
    assert!(
        r.log
            .contains("+ ipmitool user set password 1 '********'\n"),
        "{}",
        r.log
    );
}

#[test]
fn ipmi_helpers_check_their_arguments_and_report_failures() {
    let rec = Fake::new(["ipmitool"]);
    for (call, msg) in [
        (
            r#"ipmi_setup_network(1, "10.0.0.300", "255.255.255.0", "10.0.0.1")"#,
            "ip '10.0.0.300' is not an IPv4 address",
        ),
        (
            r#"ipmi_setup_network(16, "10.0.0.3", "255.255.255.0", "10.0.0.1")"#,
            "channel 16 is not an IPMI channel",
        ),
        (
            r#"ipmi_setup_network(1, "10.0.0.3", "255.255.255.0", "10.0.0.1", 5000)"#,
            "vlan id 5000",
        ),
        (r#"ipmi_setup_user(1, "admin", "")"#, "password is empty"),
        (
            r#"ipmi_setup_user(1, "admin", "x; reboot", 0)"#,
            "user id 0",
        ),
        (
            r#"ipmi_setup_user("one", "admin", "pw")"#,
            "channel 'one' is not a number",
        ),
    ] {
        let e = run(call, &IndexMap::new(), &rec).result.unwrap_err();
        assert!(
            e.to_string().starts_with("t.configure:1:1: ipmi_setup_"),
            "{e}"
        );
        assert!(e.to_string().contains(msg), "{call}: {e}");
    }
    assert!(rec.commands().is_empty());

    // A failing ipmitool aborts like run(), naming the command.
    let e = run(
        r#"ipmi_setup_network(1, "10.0.0.3", "255.255.255.0", "10.0.0.1")"#,
        &IndexMap::new(),
        &failing(),
    )
    .result
    .unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Command {
            command: "ipmitool lan set 1 ipsrc static".into(),
            status: Some(1)
        }
    );
    assert_eq!(
        e.to_string(),
        "t.configure:1:1: ipmi_setup_network: 'ipmitool lan set 1 ipsrc static' \
         failed with exit status 1: Could not open device"
    );

    // A password the BMC refuses makes ipmi_setup_user return false.
    let r = run(
        r#"log(`${ipmi_setup_user(1, "admin", "pw")}`);"#,
        &IndexMap::new(),
        &failing_test(),
    );
    r.ok();
    assert!(
        r.log
            .ends_with("did not accept the password of user 1\nfalse\n"),
        "{}",
        r.log
    );
}

/// Every command fails.
fn failing() -> Fake {
    Fake::bare().otherwise(Reply::exit(1, "", "Could not open device\n"))
}

/// Only `ipmitool user test` fails.
fn failing_test() -> Fake {
    Fake::bare()
        .on(
            When::prefix(["ipmitool", "user", "test"]),
            Reply::exit(1, "", ""),
        )
        .otherwise(Reply::ok())
}

// ---------------------------------------------------------------- examples

fn project_file(rel: &str) -> (String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (text, name)
}

/// What the example profile binds for the QEMU guest: a BIOS boot.
fn vm_vars() -> IndexMap<String, Value> {
    vars(&[
        ("boot_mode", s("bios")),
        ("disk", s("vda")),
        ("eth", s("eth0")),
        ("ip", s("10.0.2.15")),
        ("netmask", s("255.255.255.0")),
        ("gateway", s("10.0.2.2")),
        ("mac", s("52:54:00:12:34:56")),
        ("hostname", s("vm01")),
        ("dns", s("10.0.2.3")),
    ])
}

/// `vm_vars()` with some values replaced.
fn vm_vars_with(changes: &[(&str, &str)]) -> IndexMap<String, Value> {
    let mut v = vm_vars();
    for (k, x) in changes {
        v.insert(k.to_string(), s(x));
    }
    v
}

fn run_file(rel: &str, rec: &Fake) -> Run {
    run_file_with(rel, rec, &vm_vars())
}

fn run_file_with(rel: &str, rec: &Fake, v: &IndexMap<String, Value>) -> Run {
    let (text, name) = project_file(rel);
    let dir = tempfile::tempdir().expect("temp dir");
    let overlay = dir.path().join("post_rsync");
    let mut log = Vec::new();
    let result = run_script(
        &text,
        &name,
        ScriptEnv {
            vars: v,
            exec: rec,
            overlay: &overlay,
            log: &mut log,
        },
    );
    Run {
        result,
        log: String::from_utf8_lossy(&log).into_owned(),
        overlay,
        _dir: dir,
    }
}

#[test]
fn the_example_vm_configure_runs() {
    // A BIOS node (vm_vars' boot_mode): the msdos layout, no ESP
    // (mkfs.vfat is recorded, so a stray one would show).
    let rec = Fake::new(["parted", "mkfs.ext4", "mkfs.vfat", "mount", "mkdir"]);
    let r = run_file("share/examples/config/vm.configure", &rec);
    let o = r.ok();
    assert_eq!(
        rec.commands(),
        [
            "parted -s /dev/vda mklabel msdos",
            "parted -s /dev/vda mkpart primary ext4 1MiB 100%",
            "parted -s /dev/vda set 1 boot on",
            "mkfs.ext4 -q -F /dev/vda1",
            "mkdir -p /chroot && mount /dev/vda1 /chroot",
        ]
        .map(CmdLine::shell)
    );
    assert_eq!(
        o.role,
        Some(Role {
            role: "base".into(),
            version: "D12-1.0.0".into(),
            disk: "/dev/vda".into()
        })
    );
    assert_eq!(
        o.files,
        [
            "/etc/hostname",
            "/etc/network/interfaces",
            "/etc/resolv.conf",
            "/etc/fstab"
        ]
        .map(PathBuf::from)
    );
    assert_eq!(r.file("/etc/hostname"), "vm01\n");
    assert_eq!(
        r.file("/etc/fstab"),
        "/dev/vda1 / ext4 errors=remount-ro 0 1\n"
    );
    assert_eq!(r.file("/etc/resolv.conf"), "nameserver 10.0.2.3\n");
    let interfaces = r.file("/etc/network/interfaces");
    assert!(
        interfaces.contains("    address 10.0.2.15\n"),
        "{interfaces}"
    );
    assert!(interfaces.contains("auto eth0\nallow-hotplug eth0\niface eth0 inet static\n"));
    assert!(
        interfaces.contains("    hwaddress 52:54:00:12:34:56\n"),
        "{interfaces}"
    );
    assert!(!interfaces.contains("%("), "{interfaces}");
    assert!(
        r.log.contains("+ parted -s /dev/vda mklabel msdos\n"),
        "{}",
        r.log
    );
}

#[test]
fn the_example_vm_configure_makes_gpt_and_an_esp_on_uefi() {
    let rec = Fake::new(["parted", "mkfs.ext4", "mkfs.vfat", "mount", "mkdir"]);
    let r = run_file_with(
        "share/examples/config/vm.configure",
        &rec,
        &vm_vars_with(&[("boot_mode", "uefi")]),
    );
    let o = r.ok();
    assert_eq!(
        rec.commands(),
        [
            "parted -s /dev/vda mklabel gpt",
            "parted -s /dev/vda mkpart ESP fat32 1MiB 257MiB",
            "parted -s /dev/vda set 1 esp on",
            "parted -s /dev/vda mkpart root ext4 257MiB 100%",
            "mkfs.vfat -F 32 /dev/vda1",
            "mkfs.ext4 -q -F /dev/vda2",
            "mkdir -p /chroot && mount /dev/vda2 /chroot",
        ]
        .map(CmdLine::shell)
    );
    // The root line only: the installer adds the ESP's own line.
    assert_eq!(
        r.file("/etc/fstab"),
        "/dev/vda2 / ext4 errors=remount-ro 0 1\n"
    );
    assert_eq!(
        o.role,
        Some(Role {
            role: "base".into(),
            version: "D12-1.0.0".into(),
            disk: "/dev/vda".into()
        })
    );
}

#[test]
fn the_example_vm_configure_names_nvme_partitions_with_a_p() {
    let rec = Fake::new(["parted", "mkfs.ext4", "mkfs.vfat", "mount", "mkdir"]);
    let r = run_file_with(
        "share/examples/config/vm.configure",
        &rec,
        &vm_vars_with(&[("boot_mode", "uefi"), ("disk", "nvme0n1")]),
    );
    let o = r.ok();
    let commands = rec.commands();
    assert_eq!(
        commands[0],
        CmdLine::shell("parted -s /dev/nvme0n1 mklabel gpt")
    );
    assert_eq!(
        commands[4..],
        [
            "mkfs.vfat -F 32 /dev/nvme0n1p1",
            "mkfs.ext4 -q -F /dev/nvme0n1p2",
            "mkdir -p /chroot && mount /dev/nvme0n1p2 /chroot",
        ]
        .map(CmdLine::shell)
    );
    assert_eq!(
        r.file("/etc/fstab"),
        "/dev/nvme0n1p2 / ext4 errors=remount-ro 0 1\n"
    );
    assert_eq!(
        o.role.as_ref().map(|r| r.disk.as_str()),
        Some("/dev/nvme0n1")
    );

    // On BIOS too.
    let rec = Fake::new(["parted", "mkfs.ext4", "mount", "mkdir"]);
    let r = run_file_with(
        "share/examples/config/vm.configure",
        &rec,
        &vm_vars_with(&[("boot_mode", "bios"), ("disk", "nvme0n1")]),
    );
    r.ok();
    assert_eq!(
        rec.commands()[3..],
        [
            "mkfs.ext4 -q -F /dev/nvme0n1p1",
            "mkdir -p /chroot && mount /dev/nvme0n1p1 /chroot",
        ]
        .map(CmdLine::shell)
    );
}

#[test]
fn the_seed_example_ported_to_rhai_gives_the_same_result() {
    let rec = Fake::new(["parted", "mkfs.ext4", "mount", "mkdir"]);
    let r = run_file("tests/fixtures/configure/seed-vm.configure", &rec);
    let o = r.ok();
    // What the Python script ran, in order.
    assert_eq!(
        rec.commands(),
        [
            "parted -s /dev/vda mklabel msdos",
            "parted -s /dev/vda mkpart primary ext2 0% 100%",
            "mkfs.ext4 /dev/vda1",
            "mkdir -p /chroot; mount /dev/vda1 /chroot",
        ]
        .map(CmdLine::shell)
    );
    assert_eq!(
        o.role,
        Some(Role {
            role: "mysql".into(),
            version: "D7-F.1.0.0".into(),
            disk: "/dev/vda".into()
        })
    );
    assert_eq!(o.files, vec![PathBuf::from("/etc/network/interfaces")]);
    // What Python's '''...''' % var gave.
    assert_eq!(
        r.file("/etc/network/interfaces"),
        "\nauto lo\niface lo inet loopback\n\nauto eth0\nallow-hotplug eth0\n\
         iface eth0 inet static\n     address 10.0.2.15\n     netmask 255.255.255.0\n\
         \x20    gateway 10.0.2.2\n     hwaddress 52:54:00:12:34:56\n"
    );
}
