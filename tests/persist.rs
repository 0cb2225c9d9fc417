//! The write-ahead log of `src/persist/`: commits, the roll-forward of a
//! record a killed request left, the replay after a reboot (lost renames,
//! lost data, an operator's edit kept), checkpoints when the log is full,
//! a log grown for a large commit, torn records ignored, and the pause
//! inside commits that the binaries built for the tests make.

use edeploy::persist::{self, log, Transaction};
use std::fs;
use std::path::{Path, PathBuf};

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn commit(dir: &Path, files: &[(&str, &str)]) {
    let mut txn = Transaction::new();
    for (name, text) in files {
        txn.write(dir.join(name), text.as_bytes().to_vec());
    }
    txn.commit(dir).expect("commit");
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("state"), "[('vm', 3)]\n").unwrap();
    fs::write(dir.path().join("vm.cmdb"), "[{'ip': '10.0.0.1'}]\n").unwrap();
    dir
}

#[test]
fn a_commit_replaces_every_file_and_logs_one_record() {
    let dir = setup();
    let d = dir.path();
    commit(
        d,
        &[("state", "[('vm', 2)]\n"), ("vm.cmdb", "[{'used': 1}]\n")],
    );
    assert_eq!(read(d, "state"), "[('vm', 2)]\n");
    assert_eq!(read(d, "vm.cmdb"), "[{'used': 1}]\n");
    commit(d, &[("state", "[('vm', 1)]\n")]);
    let records = log::records(d).unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].paths, vec![d.join("state"), d.join("vm.cmdb")]);
    assert_eq!(records[1].seq, records[0].seq + 1);
    assert!(!persist::pending(d).unwrap());
    // The file replaced is now the spare, holding the previous version;
    // nothing else is left beside the files and the log.
    assert_eq!(read(d, ".state.edeploy-tmp"), "[('vm', 2)]\n");
    let mut names: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".edeploy-tmp"))
        .collect();
    names.sort();
    assert_eq!(names, [".state.edeploy-tmp", ".vm.cmdb.edeploy-tmp"]);
    // The spares are reused: same inodes, whatever lengths come.
    use std::os::unix::fs::MetadataExt;
    let inodes =
        |d: &Path| ["state", ".state.edeploy-tmp"].map(|n| fs::metadata(d.join(n)).unwrap().ino());
    let before = inodes(d);
    commit(d, &[("state", "[('vm', 12345678901234567890)]\n")]);
    commit(d, &[("state", "[]\n")]);
    assert_eq!(read(d, "state"), "[]\n");
    assert_eq!(
        read(d, ".state.edeploy-tmp"),
        "[('vm', 12345678901234567890)]\n"
    );
    let mut after = inodes(d);
    after.sort();
    let mut before = before;
    before.sort();
    assert_eq!(after, before, "no inode created");
}

#[test]
fn a_spare_left_garbled_or_replaced_by_a_link_is_not_trusted() {
    let dir = setup();
    let d = dir.path();
    commit(d, &[("state", "[('vm', 2)]\n")]);
    // Half-written by a request that died: overwritten and cut.
    fs::write(d.join(".state.edeploy-tmp"), "x".repeat(5000)).unwrap();
    commit(d, &[("state", "[('vm', 1)]\n")]);
    assert_eq!(read(d, "state"), "[('vm', 1)]\n");
    // A symlink in the spare's place is removed, not written through.
    let target = d.join("elsewhere");
    fs::write(&target, "keep").unwrap();
    fs::remove_file(d.join(".state.edeploy-tmp")).unwrap();
    std::os::unix::fs::symlink(&target, d.join(".state.edeploy-tmp")).unwrap();
    commit(d, &[("state", "[('vm', 0)]\n")]);
    assert_eq!(read(d, "state"), "[('vm', 0)]\n");
    assert_eq!(read(d, "elsewhere"), "keep");
    let spare = fs::symlink_metadata(d.join(".state.edeploy-tmp")).unwrap();
    assert!(spare.is_file(), "the spare is a file again");
    assert!(!persist::pending(d).unwrap());
}

#[test]
fn a_record_left_by_a_killed_request_is_finished_by_the_next() {
    let dir = setup();
    let d = dir.path();
    commit(d, &[("state", "[('vm', 2)]\n")]);
    log::commit_record_only(
        d,
        vec![
            (d.join("state"), b"[('vm', 1)]\n".to_vec()),
            (d.join("vm.cmdb"), b"[{'used': 1}]\n".to_vec()),
        ],
    )
    .unwrap();
    // Committed, not applied: the files are the old ones.
    assert!(persist::pending(d).unwrap());
    assert_eq!(read(d, "state"), "[('vm', 2)]\n");
    // One of the two renames had happened.
    fs::write(d.join("state"), "[('vm', 1)]\n").unwrap();
    assert_eq!(persist::recover(d).unwrap(), 1);
    assert_eq!(read(d, "state"), "[('vm', 1)]\n");
    assert_eq!(read(d, "vm.cmdb"), "[{'used': 1}]\n");
    assert!(!persist::pending(d).unwrap());
    // Finished once: the next recovery changes nothing, and the next
    // commit follows it.
    assert_eq!(persist::recover(d).unwrap(), 0);
    commit(d, &[("state", "[('vm', 0)]\n")]);
    assert_eq!(read(d, "state"), "[('vm', 0)]\n");
    assert_eq!(read(d, "vm.cmdb"), "[{'used': 1}]\n");
}

#[test]
fn a_torn_record_is_not_a_commit() {
    let dir = setup();
    let d = dir.path();
    commit(d, &[("state", "[('vm', 2)]\n")]);
    log::commit_record_only(d, vec![(d.join("state"), b"[('vm', 1)]\n".to_vec())]).unwrap();
    assert!(persist::pending(d).unwrap());
    // What a request killed while writing its record leaves: one byte of
    // the record is not what it wrote. The tail (at 512: "EDJU", the
    // 36-byte boot id, then the offset) says where the record starts.
    let mut bytes = fs::read(d.join(persist::LOG)).unwrap();
    let mut off = [0u8; 8];
    off.copy_from_slice(&bytes[552..560]);
    let at = u64::from_le_bytes(off) as usize;
    assert_eq!(&bytes[at..at + 4], b"EDJS");
    bytes[at + 40] ^= 0xff;
    fs::write(d.join(persist::LOG), &bytes).unwrap();
    assert!(!persist::pending(d).unwrap());
    assert_eq!(persist::recover(d).unwrap(), 0);
    assert_eq!(read(d, "state"), "[('vm', 2)]\n");
    // The next commit takes its place.
    commit(d, &[("state", "[('vm', 0)]\n")]);
    assert_eq!(read(d, "state"), "[('vm', 0)]\n");
    assert_eq!(log::records(d).unwrap().len(), 2);
}

#[test]
fn after_a_reboot_lost_renames_are_replayed_and_later_edits_kept() {
    let dir = setup();
    let d = dir.path();
    fs::write(d.join("other.cmdb"), "[{'ip': '10.0.1.1'}]\n").unwrap();
    commit(
        d,
        &[("state", "[('vm', 2)]\n"), ("vm.cmdb", "[{'a': 1}]\n")],
    );
    commit(
        d,
        &[("state", "[('vm', 1)]\n"), ("other.cmdb", "[{'b': 1}]\n")],
    );
    commit(
        d,
        &[("state", "[('vm', 0)]\n"), ("vm.cmdb", "[{'a': 2}]\n")],
    );
    // What a power cut can leave: state lost its last rename, vm.cmdb
    // lost all of them, other.cmdb's data never reached the disk, and a
    // file edited since by an operator (new.cmdb is not in the log and
    // must not be touched either).
    fs::write(d.join("state"), "[('vm', 1)]\n").unwrap();
    fs::write(d.join("vm.cmdb"), "[{'ip': '10.0.0.1'}]\n").unwrap();
    fs::write(d.join("other.cmdb"), "").unwrap();
    fs::write(d.join("new.cmdb"), "[]\n").unwrap();
    assert_eq!(log::recover_after_reboot(d).unwrap(), 4);
    assert_eq!(read(d, "state"), "[('vm', 0)]\n");
    assert_eq!(read(d, "vm.cmdb"), "[{'a': 2}]\n");
    assert_eq!(read(d, "other.cmdb"), "[{'b': 1}]\n");
    assert_eq!(read(d, "new.cmdb"), "[]\n");
    // The replay ended with a checkpoint: the lap is empty.
    assert!(log::records(d).unwrap().is_empty());

    // An operator's edit made after the last commit is kept by a replay.
    commit(d, &[("state", "[('vm', 5)]\n")]);
    fs::write(d.join("state"), "[('vm', 50)]\n").unwrap();
    assert_eq!(log::recover_after_reboot(d).unwrap(), 0);
    assert_eq!(read(d, "state"), "[('vm', 50)]\n");
}

#[test]
fn a_full_log_is_checkpointed_and_a_large_commit_grows_it() {
    let dir = setup();
    let d = dir.path();
    // 50 KB files: a 1 MiB log holds about 20 commits.
    let big = |i: usize| format!("[{}]\n", format!("'{i:07}', ").repeat(4_500));
    let mut laps = 0;
    let mut last = 0;
    for i in 0..80 {
        commit(
            d,
            &[("vm.cmdb", &big(i)), ("state", &format!("[('vm', {i})]\n"))],
        );
        let n = log::records(d).unwrap().len();
        if n < last {
            laps += 1;
        }
        last = n;
        assert_eq!(read(d, "state"), format!("[('vm', {i})]\n"));
    }
    assert!(laps >= 3, "{laps} checkpoints in 80 commits of 50 KB");
    let size = fs::metadata(d.join(persist::LOG)).unwrap().len();
    assert_eq!(size, 1 << 20);
    // A commit larger than the whole log: the log is made larger.
    let huge = "x".repeat(3 << 20);
    commit(d, &[("vm.cmdb", &huge)]);
    assert_eq!(read(d, "vm.cmdb").len(), huge.len());
    let size = fs::metadata(d.join(persist::LOG)).unwrap().len();
    assert!(size > 3 << 20 && size.is_power_of_two(), "{size}");
    // And a replay after that still lands on the latest contents.
    fs::write(d.join("vm.cmdb"), big(79)).unwrap();
    log::recover_after_reboot(d).unwrap();
    assert_eq!(read(d, "vm.cmdb").len(), huge.len());
}

#[test]
fn commits_from_many_processes_under_the_lock_keep_every_count() {
    // 8 threads × 25 increments of one counter file, each read and
    // written under the lock through the log: none is lost.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let lock = d.join("lock");
    fs::write(d.join("counter"), "0").unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (d, lock): (PathBuf, PathBuf) = (d.clone(), lock.clone());
            s.spawn(move || {
                for _ in 0..25 {
                    let _l = persist::Lock::exclusive(&lock).unwrap();
                    persist::recover(&d).unwrap();
                    let n: u64 = read(&d, "counter").parse().unwrap();
                    let mut txn = Transaction::new();
                    txn.write(d.join("counter"), (n + 1).to_string());
                    txn.commit(&d).unwrap();
                }
            });
        }
    });
    assert_eq!(read(&d, "counter"), "200");
}

/// A CMDB of `n` entries, the first `used` of them handed out.
fn cmdb(n: usize, used: usize) -> String {
    let entries: Vec<String> = (0..n)
        .map(|i| {
            if i < used {
                format!(
                    "{{'ip': '10.0.{}.{}', 'mac': 'm{i}', 'used': 1}}",
                    i / 250,
                    i % 250
                )
            } else {
                format!("{{'ip': '10.0.{}.{}'}}", i / 250, i % 250)
            }
        })
        .collect();
    format!("[{}]\n", entries.join(",\n "))
}

/// Whether each record of the lap writes its first file as a splice.
fn first_spliced(d: &Path) -> Vec<bool> {
    log::records(d)
        .unwrap()
        .iter()
        .map(|r| r.spliced[0])
        .collect()
}

/// Two commits of a 400-entry CMDB: the lap holds it whole, the second
/// is a splice.
fn cmdb_held_whole(d: &Path) {
    commit(d, &[("vm.cmdb", &cmdb(400, 0))]);
    commit(d, &[("vm.cmdb", &cmdb(400, 1))]);
    assert_eq!(first_spliced(d)[1..], [true]);
}

#[test]
fn a_large_file_changed_in_one_place_is_logged_as_a_splice() {
    let dir = setup();
    let d = dir.path();
    commit(d, &[("vm.cmdb", &cmdb(400, 0)), ("state", "[('vm', 9)]\n")]);
    commit(d, &[("vm.cmdb", &cmdb(400, 1)), ("state", "[('vm', 8)]\n")]);
    commit(d, &[("vm.cmdb", &cmdb(400, 2)), ("state", "[('vm', 7)]\n")]);
    assert_eq!(read(d, "vm.cmdb"), cmdb(400, 2));
    assert_eq!(read(d, "state"), "[('vm', 7)]\n");
    let records = log::records(d).unwrap();
    let size = cmdb(400, 2).len() as u64;
    // The first write of the lap is whole; later ones only carry the
    // entry that changed. A small file is always whole.
    let flags: Vec<Vec<bool>> = records.iter().map(|r| r.spliced.clone()).collect();
    assert_eq!(
        flags[flags.len() - 3..],
        [vec![false, false], vec![true, false], vec![true, false]],
        "{records:?}"
    );
    let last = records.last().unwrap();
    assert!(last.len < 600, "a splice record of {} bytes", last.len);
    assert!(records[records.len() - 3].len > size, "{records:?}");
}

#[test]
fn a_spliced_record_left_by_a_killed_request_is_finished() {
    let dir = setup();
    let d = dir.path();
    cmdb_held_whole(d);
    log::commit_record_only(
        d,
        vec![
            (d.join("vm.cmdb"), cmdb(400, 2).into_bytes()),
            (d.join("state"), b"[('vm', 1)]\n".to_vec()),
        ],
    )
    .unwrap();
    assert!(log::records(d).unwrap().last().unwrap().spliced[0]);
    assert_eq!(read(d, "vm.cmdb"), cmdb(400, 1));
    assert_eq!(persist::recover(d).unwrap(), 2);
    assert_eq!(read(d, "vm.cmdb"), cmdb(400, 2));
    assert_eq!(read(d, "state"), "[('vm', 1)]\n");
    // Already applied: finishing again changes nothing.
    assert_eq!(persist::recover(d).unwrap(), 0);
}

#[test]
fn after_a_reboot_splices_replay_from_the_whole_version() {
    for lost in ["empty", "zeros", "old", "middle"] {
        let dir = setup();
        let d = dir.path();
        for used in 0..=4 {
            commit(d, &[("vm.cmdb", &cmdb(400, used))]);
        }
        let flags = first_spliced(d);
        assert_eq!(flags, [false, true, true, true, true], "{lost}");
        // What a power cut can leave of the file.
        let left = match lost {
            "empty" => String::new(),
            "zeros" => "\0".repeat(4096),
            "old" => "[{'ip': '10.0.0.1'}]\n".into(),
            _ => cmdb(400, 2),
        };
        fs::write(d.join("vm.cmdb"), left).unwrap();
        log::recover_after_reboot(d).unwrap();
        assert_eq!(read(d, "vm.cmdb"), cmdb(400, 4), "{lost}");
        assert!(log::records(d).unwrap().is_empty());
        // The replay ended the lap: the next lap starts whole again.
        commit(d, &[("vm.cmdb", &cmdb(400, 5))]);
        commit(d, &[("vm.cmdb", &cmdb(400, 6))]);
        let flags = first_spliced(d);
        assert_eq!(flags, [false, true], "{lost}");
    }
}

#[test]
fn a_splice_never_lands_on_a_file_edited_since() {
    let dir = setup();
    let d = dir.path();
    cmdb_held_whole(d);
    log::commit_record_only(d, vec![(d.join("vm.cmdb"), cmdb(400, 2).into_bytes())]).unwrap();
    // An operator's edit of the same size and shape at the same place.
    let edited = cmdb(400, 1).replacen("10.0.0.5", "10.0.0.6", 1);
    fs::write(d.join("vm.cmdb"), &edited).unwrap();
    assert_eq!(persist::recover(d).unwrap(), 0);
    assert_eq!(read(d, "vm.cmdb"), edited);
    assert_eq!(log::recover_after_reboot(d).unwrap(), 0);
    assert_eq!(read(d, "vm.cmdb"), edited);
}

/// The binaries `cargo test` builds carry the test hooks (the crate's
/// dev-dependency on itself turns on `test-hooks`): `upload.cgi` pauses
/// `EDEPLOY_TEST_COMMIT_DELAY_MS` between the files of a commit, which
/// tests/cgi.rs needs to kill it there.
#[test]
fn binaries_built_for_the_tests_pause_inside_commits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = d.join("edeploy.conf");
    fs::write(
        &conf,
        format!(
            "[SERVER]\nCONFIGDIR = {0}/\nHWDIR = {0}/hw/\nLOGDIR = {0}/\nLOCKFILE = {0}/lock\n",
            d.display()
        ),
    )
    .unwrap();
    fs::create_dir(d.join("hw")).unwrap();
    fs::write(d.join("state"), "[('vm', 3)]\n").unwrap();
    fs::write(
        d.join("vm.specs"),
        "[('system', 'product', 'vendor', 'kvm'),\n ('network', '$eth', 'serial', '$mac')]\n",
    )
    .unwrap();
    fs::write(d.join("vm.configure"), "").unwrap();
    fs::write(d.join("vm.cmdb"), "[{'ip': '10.0.0.1'}]\n").unwrap();
    let hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hw/kvm-test-vm.hw");
    let start = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_upload-cgi"))
        .arg("-f")
        .arg(&hw)
        .env("EDEPLOY_CONF", &conf)
        .env("EDEPLOY_TEST_COMMIT_DELAY_MS", "1000")
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The state and the CMDB were written: one pause between them.
    assert_eq!(read(d, "state"), "[('vm', 2)]\n");
    assert!(
        read(d, "vm.cmdb").contains("'used': 1"),
        "{}",
        read(d, "vm.cmdb")
    );
    assert!(took >= std::time::Duration::from_secs(1), "{took:?}");
}

/// The names in `dir` that start with `prefix`.
fn names_starting(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// A config of `d` whose lock file is inside it.
fn config_of(d: &Path) -> edeploy::config::ServerConfig {
    let mut cfg = edeploy::config::ServerConfig::with_configdir(d);
    cfg.lockfile = d.join("lock");
    cfg.healthdir = d.join("health");
    cfg
}

/// A target whose own name fits in NAME_MAX (255 bytes) but whose spare
/// `.NAME.edeploy-tmp` does not: what a 250-byte sysname made of
/// `HWDIR/<sysname>.hw`. Before the record was set aside, every later
/// recovery failed on it with ENAMETOOLONG and the log stayed wedged.
#[test]
fn a_record_that_cannot_be_applied_is_set_aside_and_the_next_request_succeeds() {
    let dir = setup();
    let d = dir.path();
    let long = d.join(format!("{}.hw", "n".repeat(247)));
    log::commit_record_only(
        d,
        vec![
            (d.join("state"), b"[('vm', 2)]\n".to_vec()),
            (long.clone(), b"[]\n".to_vec()),
        ],
    )
    .unwrap();
    assert!(persist::pending(d).unwrap());
    // The next request recovers: the record is set aside, what could be
    // applied of it is, and its own commit goes through.
    commit(d, &[("vm.cmdb", "[{'ip': '10.0.0.2'}]\n")]);
    assert_eq!(read(d, "state"), "[('vm', 2)]\n");
    assert_eq!(read(d, "vm.cmdb"), "[{'ip': '10.0.0.2'}]\n");
    assert!(!persist::pending(d).unwrap());
    let aside = names_starting(d, ".edeploy-log.failed-");
    assert_eq!(aside.len(), 1, "{aside:?}");
    // The copy still holds the record, for the operator.
    let kept = fs::read(d.join(&aside[0])).unwrap();
    assert!(kept.windows(7).any(|w| w == b"nnnnnnn"));
    // Later requests work normally.
    for n in 0..5 {
        commit(d, &[("state", &format!("[('vm', {n})]\n"))]);
    }
    assert_eq!(read(d, "state"), "[('vm', 4)]\n");
    // The status page names the problem.
    let status = edeploy::status::gather(&config_of(d), &Default::default());
    let found: Vec<&str> = status
        .problems
        .iter()
        .map(|p| p.message.as_str())
        .filter(|m| m.contains("a write-ahead log record could not be applied and was set aside"))
        .collect();
    assert_eq!(found.len(), 1, "{:?}", status.problems);
    assert!(found[0].contains(&aside[0]), "{}", found[0]);
    assert!(found[0].contains("nnnn.hw"), "{}", found[0]);
}

/// After a reboot the whole lap is replayed: a record that cannot be
/// applied is set aside there too, and the records after it still are.
#[test]
fn after_a_reboot_a_record_that_cannot_be_applied_is_set_aside() {
    let dir = setup();
    let d = dir.path();
    let long = d.join(format!("{}.hw", "m".repeat(247)));
    log::commit_record_only(d, vec![(long, b"[]\n".to_vec())]).unwrap();
    assert_eq!(log::recover_after_reboot(d).unwrap(), 0);
    assert_eq!(names_starting(d, ".edeploy-log.failed-").len(), 1);
    commit(d, &[("state", "[('vm', 1)]\n")]);
    assert_eq!(read(d, "state"), "[('vm', 1)]\n");
}

/// A failure retrying can fix (here the target's directory missing, as
/// after an operator moved HWDIR away; ENOENT is not permanent) keeps the
/// record for the next request: nothing is set aside. Root cannot write
/// into a directory that is not there, so this runs in CI too.
#[test]
fn a_transient_failure_keeps_the_record() {
    let dir = setup();
    let d = dir.path();
    let sub = d.join("hw");
    log::commit_record_only(d, vec![(sub.join("node.hw"), b"[]\n".to_vec())]).unwrap();
    let first = persist::recover(d);
    assert!(first.is_err(), "{first:?}");
    assert!(persist::pending(d).unwrap());
    assert!(names_starting(d, ".edeploy-log.failed-").is_empty());
    // Once the directory is back, the record is applied.
    fs::create_dir(&sub).unwrap();
    assert_eq!(persist::recover(d).unwrap(), 1);
    assert_eq!(read(&sub, "node.hw"), "[]\n");
}

/// A commit whose target cannot be named (its spare file over NAME_MAX,
/// a NUL byte) is refused before its record is written: nothing of it is
/// applied and the log holds nothing. Before, the state and CMDB of such
/// a commit were replaced and its answer was an error.
#[test]
fn a_target_that_cannot_be_named_is_refused_before_the_commit() {
    let dir = setup();
    let d = dir.path();
    for bad in [d.join(format!("{}.hw", "x".repeat(247))), d.join("a\0b.hw")] {
        let mut txn = Transaction::new();
        txn.write(d.join("state"), b"[('vm', 0)]\n".to_vec());
        txn.write(&bad, b"[]\n".to_vec());
        let e = txn.commit(d).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("file name"), "{msg}");
        assert_eq!(read(d, "state"), "[('vm', 3)]\n");
        assert!(!persist::pending(d).unwrap());
    }
    assert!(log::records(d).map(|r| r.is_empty()).unwrap_or(true));
}

/// A decision whose commit is refused takes neither the install nor the
/// CMDB entry, and answers an error.
#[test]
fn a_decision_whose_commit_fails_consumes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = env!("CARGO_MANIFEST_DIR");
    for f in ["vm.specs", "vm.configure"] {
        fs::copy(format!("{root}/share/examples/config/{f}"), d.join(f)).unwrap();
    }
    fs::write(d.join("state"), "[('vm', 3)]\n").unwrap();
    let cmdb = "[{'ip': '10.0.0.1', 'hostname': 'n1'}]\n";
    fs::write(d.join("vm.cmdb"), cmdb).unwrap();
    let cfg = config_of(d);
    let text = fs::read_to_string(format!("{root}/tests/fixtures/hw/kvm-test-vm.hw")).unwrap();
    let text = text.replacen('[', "[('firmware', 'boot', 'mode', 'bios'),\n ", 1);
    let hw = edeploy::hw::parse(&text, "kvm").unwrap();
    // The same decision with a target that can be named is taken.
    let decided = edeploy::provision::decide::preview(&cfg, &hw, &mut |_| {});
    assert!(decided.is_ok(), "{decided:?}");
    let keep = (d.join(format!("{}.hw", "k".repeat(247))), b"[]\n".to_vec());
    let r = edeploy::provision::decide::decide_keeping(&cfg, &hw, None, Some(keep), &mut |_| {});
    let e = r.expect_err("a target over NAME_MAX");
    assert_eq!(e.http_status(), 500, "{e}");
    assert!(e.to_string().contains("file name"), "{e}");
    assert_eq!(read(d, "state"), "[('vm', 3)]\n");
    assert_eq!(read(d, "vm.cmdb"), cmdb);
    assert!(!persist::pending(d).unwrap());
}
