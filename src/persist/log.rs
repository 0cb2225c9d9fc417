//! The write-ahead log behind [`Transaction`](super::Transaction).
//!
//! `DIR/.edeploy-log` is a file of fixed size (1 MiB at least), written
//! full of zeros once, so that later writes land in blocks the file system
//! has already allocated: making one durable is a flush of data
//! (`fdatasync`), not a journal commit of the file system.
//!
//! Its size is room for [`RECORDS_PER_LAP`] records of the largest commit
//! seen, rounded up to a power of two, but never more than the cap the
//! commit is given (`WALMAX`, [`DEFAULT_MAX`]): a commit whose record
//! alone would not fit under the cap is refused before anything is
//! written ([`super::TooLarge`]), and a log larger than the cap (made
//! before it existed) is made again at its size at the next commit.
//!
//! ```text
//! 0      header  "EDJH" start_seq capacity crc32        (synced at checkpoints)
//! 512    tail    "EDJU" boot_id next_off next_seq lap crc32 (never synced)
//! 4096   record  "EDJS" seq len crc32 payload            (one per commit)
//!        record  …
//! ```
//!
//! A record holds every new file of one commit: its path, the length and
//! CRC-32 of what the file held before, and the new bytes, in full or as a
//! splice. A splice (the bytes that differ from the old content, between
//! a common prefix and a common suffix, with the new length and CRC-32)
//! stands for a file of at least [`SPLICE_MIN`] bytes whose write is mostly
//! unchanged, such as a CMDB with one entry handed out. It is only used
//! for a file the current lap already holds in full (the tail lists
//! those), so that a replay after a power cut, which may find the file
//! empty, always meets the full version first.
//! Commit: append the record at `next_off` and `fdatasync` (the commit
//! point), then replace each file (spare file and swap, no fsync),
//! then advance the tail. The files themselves are made durable in
//! batches, at a checkpoint: when the log is full, every file its records
//! name is fsynced, then the directory, then the header moves `start_seq`
//! past them and the log starts again at 4096.
//!
//! Recovery, by the next request under the lock:
//! - same boot (the tail's boot id is the kernel's): the page cache holds
//!   every completed rename, so only the record at `next_off` can be
//!   unfinished; if it is whole and carries `next_seq`, it is finished
//!   (a splice is applied to the old content, which the page cache still
//!   holds);
//! - another boot (a power cut or a crash of the machine), or no valid
//!   tail: every record from `start_seq` on is applied again in order,
//!   then a checkpoint makes the result durable. A splice applies to the
//!   content the replay has just written from an earlier record.
//!
//! Applying a record to a file is guarded by the file's content: a file
//! that already holds the new bytes is left alone; one that holds what
//! the record says it held before is replaced; one that is empty or holds
//! NUL bytes (data lost in a power cut on a file system that does not
//! order renames after data) is replaced; anything else was changed since
//! by someone else (an operator's edit, made durable by their editor) and
//! is kept, with a warning. So replaying never undoes a later change. A
//! splice applies only to a file that holds exactly what it held before.
//!
//! A commit opens (creating them) the spare files of all its targets
//! before its commit point, so a target that cannot be written there (a
//! name too long, a directory missing or not writable) fails the commit
//! with nothing committed.
//!
//! A record that cannot be applied: when writing one of its files fails
//! for a reason retrying cannot fix ([`is_permanent`]: `ENAMETOOLONG`,
//! `EINVAL`, `ENOTDIR`, `EISDIR`, `ELOOP`, or a target that fails
//! [`check_target`](super::check_target)), the record's other files are
//! still written, the log is copied to `DIR/.edeploy-log.failed-<stamp>`,
//! a line `<that name> TAB <file>: <reason>` is added to
//! `DIR/.edeploy-log.set-aside` (what the status page shows), the error
//! goes to stderr, and the record counts as done: it never blocks later
//! requests. Any other error (`EIO`, `ENOSPC`, `EDQUOT`, `EACCES`,
//! `EROFS`, `ENOENT`…) may pass once the disk or the operator is fixed:
//! the record is kept, the request fails, and the next one tries again.

use super::{parent, sync_dir, tmp_name};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// The log's name inside the directory it protects.
pub const LOG: &str = ".edeploy-log";
/// [`LOG`] for `openat(2)`.
const LOG_C: &std::ffi::CStr = c".edeploy-log";
/// The notes of records set aside, one line each, beside the log.
pub const SET_ASIDE: &str = ".edeploy-log.set-aside";
/// The errors of a write that retrying cannot fix (see the module's
/// documentation).
const PERMANENT: [i32; 5] = [
    libc::ENAMETOOLONG,
    libc::EINVAL,
    libc::ENOTDIR,
    libc::EISDIR,
    libc::ELOOP,
];
const HEADER_AT: u64 = 0;
const TAIL_AT: u64 = 512;
const RECORDS_AT: u64 = 4096;
const MIN_CAPACITY: u64 = 1 << 20;
/// The largest log by default (`WALMAX`): 64 MiB.
pub const DEFAULT_MAX: u64 = 64 << 20;
/// How many records of the largest size a new log is made to hold.
const RECORDS_PER_LAP: u64 = 16;
const RECORD_HEAD: usize = 4 + 8 + 4 + 4;
/// Records of the current format; `EDJR` records (full writes only, from
/// before splices) are still read.
const RECORD_MAGIC: &[u8; 4] = b"EDJS";
const TAIL_MAGIC: &[u8; 4] = b"EDJU";
/// The smallest file written as a splice.
pub const SPLICE_MIN: usize = 4096;
/// Room for the lap's paths in the tail block (512..4096).
const LAP_ROOM: usize = 3000;
const BOOT_LEN: usize = 36;

/// What a file holds, as far as recovery needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    len: u64,
    crc: u32,
}

impl Identity {
    fn of(data: &[u8]) -> Identity {
        Identity {
            len: data.len() as u64,
            crc: crc32fast::hash(data),
        }
    }
}

/// The bytes a file held before a commit that edits it in place
/// ([`super::Transaction::write_edit`]): read or mapped by the caller,
/// shared with the commit until its files are written.
pub type Base = std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>;

/// The new content of a file of a commit.
pub(super) enum Data {
    Whole(Vec<u8>),
    /// `base`'s first `prefix` bytes, `mid`, then `base`'s last `suffix`
    /// bytes: written from those pieces, never gathered into one buffer.
    Edit {
        base: Base,
        prefix: usize,
        mid: Vec<u8>,
        suffix: usize,
        /// The CRC-32 of the new content, which the caller computed.
        crc: u32,
    },
}

impl Data {
    /// The content as its pieces, in order.
    fn pieces(&self) -> [&[u8]; 3] {
        match self {
            Data::Whole(d) => [d, &[], &[]],
            Data::Edit {
                base,
                prefix,
                mid,
                suffix,
                ..
            } => {
                let b = (**base).as_ref();
                [&b[..*prefix], mid, &b[b.len() - suffix..]]
            }
        }
    }

    fn len(&self) -> usize {
        self.pieces().iter().map(|p| p.len()).sum()
    }

    fn identity(&self) -> Identity {
        let crc = match self {
            Data::Whole(d) => crc32fast::hash(d),
            Data::Edit { crc, .. } => *crc,
        };
        Identity {
            len: self.len() as u64,
            crc,
        }
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.len())
    }
}

/// One file of a commit.
#[derive(Debug)]
pub(super) struct Write1 {
    path: PathBuf,
    /// What the file held before (`None`: it did not exist).
    old: Option<Identity>,
    data: Data,
    /// The lengths of the prefix and suffix `data` shares with the old
    /// content, when a splice would be much smaller than `data`.
    splice: Option<(usize, usize)>,
}

/// One file of a record read back from the log.
#[derive(Debug)]
struct Stored {
    path: PathBuf,
    old: Option<Identity>,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Full(Vec<u8>),
    /// The new content is the old one's first `prefix` bytes, `mid`, then
    /// its last `suffix` bytes; `new` is what that gives.
    Splice {
        prefix: u64,
        suffix: u64,
        new: Identity,
        mid: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tail {
    next_off: u64,
    next_seq: u64,
}

/// The kernel's boot id: a page cache that survived since the last
/// request belongs to the same boot. Read once per process: it cannot
/// change while the process runs.
fn boot_id() -> [u8; BOOT_LEN] {
    static ID: std::sync::OnceLock<[u8; BOOT_LEN]> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        let mut id = [0u8; BOOT_LEN];
        if let Ok(text) = fs::read_to_string("/proc/sys/kernel/random/boot_id") {
            let t = text.trim().as_bytes();
            if t.len() == BOOT_LEN {
                id.copy_from_slice(t);
            }
        }
        id
    })
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Reads a whole file; `None` when it does not exist.
fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
    }
}

/// How many bytes `a` and `b` share at their start.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    // Blocks first, large then small: most of a CMDB is unchanged, and
    // each comparison is a call.
    for block in [4096, 64] {
        while i + block <= n && a[i..i + block] == b[i..i + block] {
            i += block;
        }
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// How many bytes `a` and `b` share at their end, at most `max`.
fn common_suffix(a: &[u8], b: &[u8], max: usize) -> usize {
    let n = a.len().min(b.len()).min(max);
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut i = 0;
    for block in [4096, 64] {
        while i + block <= n && a[n - i - block..n - i] == b[n - i - block..n - i] {
            i += block;
        }
    }
    while i < n && a[n - i - 1] == b[n - i - 1] {
        i += 1;
    }
    i
}

impl Write1 {
    pub(super) fn new(path: PathBuf, data: Vec<u8>) -> Result<Write1> {
        let before = read_opt(&path)?;
        Ok(Write1::over(path, data, before.as_deref()))
    }

    /// [`Write1::new`] when the caller has read what the file holds now
    /// (`None`: it does not exist), under the same lock.
    pub(super) fn over(path: PathBuf, data: Vec<u8>, before: Option<&[u8]>) -> Write1 {
        let old = before.map(Identity::of);
        let splice = before.filter(|_| data.len() >= SPLICE_MIN).and_then(|b| {
            let prefix = common_prefix(b, &data);
            let suffix = common_suffix(b, &data, b.len().min(data.len()) - prefix);
            let mid = data.len() - prefix - suffix;
            (mid + 64 < data.len() / 2).then_some((prefix, suffix))
        });
        Write1 {
            path,
            old,
            data: Data::Whole(data),
            splice,
        }
    }

    /// A file whose old content `base` (of CRC-32 `base_crc`) becomes its
    /// bytes before `range`, `mid`, then its bytes after `range`: a
    /// splice known from the start, whose content is never gathered.
    pub(super) fn edit(
        path: PathBuf,
        (base, base_crc): (Base, u32),
        range: std::ops::Range<usize>,
        (mid, new_crc): (Vec<u8>, u32),
    ) -> Result<Write1> {
        let len = (*base).as_ref().len();
        if range.start > range.end || range.end > len {
            bail!(
                "{}: an edit of bytes {}..{} of a file of {len}",
                path.display(),
                range.start,
                range.end
            );
        }
        let (prefix, suffix) = (range.start, len - range.end);
        let new_len = prefix + mid.len() + suffix;
        // As [`Write1::over`]: a splice only where it is much smaller.
        let splice =
            (new_len >= SPLICE_MIN && mid.len() + 64 < new_len / 2).then_some((prefix, suffix));
        Ok(Write1 {
            path,
            old: Some(Identity {
                len: len as u64,
                crc: base_crc,
            }),
            data: Data::Edit {
                base,
                prefix,
                mid,
                suffix,
                crc: new_crc,
            },
            splice,
        })
    }

    /// The file it writes.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes this write takes in a record.
    pub(super) fn size(&self) -> u64 {
        4 + self.path.as_os_str().len() as u64 + 13 + 1 + 8 + self.data.len() as u64
    }
}

/// Encodes a record. A write is a splice when it can be one and `lap`
/// (the paths the lap holds in full) has its path.
fn encode(seq: u64, writes: &[Write1], lap: &[Vec<u8>]) -> Result<Vec<u8>> {
    let spliced = |w: &Write1| {
        let path = w.path.as_os_str().as_bytes();
        w.splice.filter(|_| lap.iter().any(|l| l == path))
    };
    // The room the record takes: a splice's middle, not the whole file.
    let mut p = Vec::with_capacity(
        64 + writes
            .iter()
            .map(|w| {
                let body = match spliced(w) {
                    Some((prefix, suffix)) => w.data.len() - prefix - suffix,
                    None => w.data.len(),
                };
                body + w.path.as_os_str().len() + 64
            })
            .sum::<usize>(),
    );
    p.extend_from_slice(RECORD_MAGIC);
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&[0; 8]); // length and CRC, below
    p.extend_from_slice(&(writes.len() as u32).to_le_bytes());
    for w in writes {
        let path = w.path.as_os_str().as_bytes();
        p.extend_from_slice(&u32::try_from(path.len())?.to_le_bytes());
        p.extend_from_slice(path);
        match w.old {
            Some(id) => {
                p.push(1);
                p.extend_from_slice(&id.len.to_le_bytes());
                p.extend_from_slice(&id.crc.to_le_bytes());
            }
            None => p.extend_from_slice(&[0; 13]),
        }
        match spliced(w) {
            Some((prefix, suffix)) => {
                let new = w.data.identity();
                let whole;
                let mid = match &w.data {
                    Data::Edit { mid, .. } => mid.as_slice(),
                    Data::Whole(d) => {
                        whole = d;
                        &whole[prefix..d.len() - suffix]
                    }
                };
                p.push(1);
                p.extend_from_slice(&(prefix as u64).to_le_bytes());
                p.extend_from_slice(&(suffix as u64).to_le_bytes());
                p.extend_from_slice(&new.len.to_le_bytes());
                p.extend_from_slice(&new.crc.to_le_bytes());
                p.extend_from_slice(&(mid.len() as u64).to_le_bytes());
                p.extend_from_slice(mid);
            }
            None => {
                p.push(0);
                p.extend_from_slice(&(w.data.len() as u64).to_le_bytes());
                for piece in w.data.pieces() {
                    p.extend_from_slice(piece);
                }
            }
        }
    }
    let len = u32::try_from(p.len() - RECORD_HEAD).context("a commit of more than 4 GiB")?;
    let crc = crc32fast::hash(&p[RECORD_HEAD..]) ^ crc32fast::hash(&seq.to_le_bytes());
    p[12..16].copy_from_slice(&len.to_le_bytes());
    p[16..20].copy_from_slice(&crc.to_le_bytes());
    Ok(p)
}

/// Decodes a record's payload (already checked by its CRC); `splices`:
/// the current format, where each write says whether it is a splice.
fn decode(payload: &[u8], splices: bool) -> Option<Vec<Stored>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = payload.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    let count = le32(take(4)?);
    let mut writes = Vec::new();
    for _ in 0..count {
        let plen = le32(take(4)?) as usize;
        let path = PathBuf::from(std::ffi::OsString::from_vec(take(plen)?.to_vec()));
        let flag = take(1)?[0];
        let olen = le64(take(8)?);
        let ocrc = le32(take(4)?);
        let old = (flag == 1).then_some(Identity {
            len: olen,
            crc: ocrc,
        });
        let splice = splices && take(1)?[0] == 1;
        let body = if splice {
            let prefix = le64(take(8)?);
            let suffix = le64(take(8)?);
            let new = Identity {
                len: le64(take(8)?),
                crc: le32(take(4)?),
            };
            let mlen = usize::try_from(le64(take(8)?)).ok()?;
            Body::Splice {
                prefix,
                suffix,
                new,
                mid: take(mlen)?.to_vec(),
            }
        } else {
            let dlen = usize::try_from(le64(take(8)?)).ok()?;
            Body::Full(take(dlen)?.to_vec())
        };
        writes.push(Stored { path, old, body });
    }
    Some(writes)
}

/// The open log of one directory.
pub(super) struct Wal {
    file: File,
    path: PathBuf,
    dir: PathBuf,
    start_seq: u64,
    capacity: u64,
    tail: Option<Tail>,
    boot: [u8; BOOT_LEN],
    /// The paths the lap holds a full record of (see [`encode`]); kept
    /// in the tail, so only trusted within the boot that wrote it.
    lap: Vec<Vec<u8>>,
    /// `dir` opened, through which a commit names the files under it.
    at: Option<Dir>,
}

/// A directory opened (`O_PATH`), through which the log and a commit's
/// files under it are named (`openat`, `renameat2`): the path leading to
/// it is looked up once rather than for each file, twice for each swap.
/// A path outside it is used whole.
struct Dir {
    path: PathBuf,
    fd: std::os::fd::OwnedFd,
}

impl Dir {
    fn open(path: &Path) -> Option<Dir> {
        use std::os::fd::FromRawFd;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: a NUL-terminated path that lives across the call.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        // SAFETY: a descriptor just opened, owned by nothing else.
        (fd >= 0).then(|| Dir {
            path: path.to_path_buf(),
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        })
    }

    /// `path` relative to the directory, when it is under it.
    fn rel(&self, path: &Path) -> Option<std::ffi::CString> {
        let rel = path.strip_prefix(&self.path).ok()?;
        let rel = std::ffi::CString::new(rel.as_os_str().as_bytes()).ok()?;
        (!rel.as_bytes().is_empty()).then_some(rel)
    }

    /// `openat(2)` of `path` (relative to the directory) with `flags`
    /// (and mode 0666 when they create it), retried when interrupted.
    fn open_file(&self, path: &std::ffi::CStr, flags: i32) -> std::io::Result<File> {
        use std::os::fd::{AsRawFd, FromRawFd};
        loop {
            // SAFETY: an open directory and a NUL-terminated path that
            // live across the call.
            let fd = unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    path.as_ptr(),
                    flags | libc::O_CLOEXEC,
                    0o666 as libc::c_uint,
                )
            };
            if fd >= 0 {
                // SAFETY: a descriptor just opened, owned by nothing else.
                return Ok(File::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Wal {
    fn log_path(dir: &Path) -> PathBuf {
        dir.join(LOG)
    }

    /// Opens the log of `dir`, if there is one.
    pub(super) fn open(dir: &Path) -> Result<Option<Wal>> {
        Wal::open_with(dir, true)
    }

    /// [`open`](Self::open) without the right to write, for readers.
    pub(super) fn open_readonly(dir: &Path) -> Result<Option<Wal>> {
        Wal::open_with(dir, false)
    }

    fn open_with(dir: &Path, write: bool) -> Result<Option<Wal>> {
        let path = Wal::log_path(dir);
        let at = Dir::open(dir);
        let opened = match &at {
            Some(at) => {
                let flags = if write { libc::O_RDWR } else { libc::O_RDONLY };
                at.open_file(LOG_C, flags)
            }
            None => OpenOptions::new().read(true).write(write).open(&path),
        };
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot open", path.display())),
        };
        let mut head = [0u8; RECORDS_AT as usize];
        file.read_exact_at(&mut head, 0)
            .with_context(|| format!("{}: cannot read the log's header", path.display()))?;
        let boot = boot_id();
        let (start_seq, capacity) = match parse_header(&head[..512]) {
            Some(h) => h,
            None => {
                // A header torn by a power cut: replay from the first whole
                // record (every apply is guarded by content, see above).
                let capacity = file
                    .metadata()
                    .with_context(|| format!("{}: cannot stat", path.display()))?
                    .len();
                let first = read_record_at(&file, RECORDS_AT, capacity)?
                    .map(|r| r.seq)
                    .unwrap_or(0);
                eprintln!(
                    "edeploy: {}: the log's header is damaged; replaying from record {first}",
                    path.display()
                );
                (first, capacity)
            }
        };
        let (tail, lap) = match parse_tail(&head[TAIL_AT as usize..]) {
            Some((b, t, lap)) if b == boot && boot != [0; BOOT_LEN] => {
                if t.next_seq == start_seq && t.next_off != RECORDS_AT {
                    // A checkpoint that wrote its header but died before
                    // its tail: the lap it started is empty.
                    let t = Tail {
                        next_off: RECORDS_AT,
                        next_seq: start_seq,
                    };
                    (Some(t), Vec::new())
                } else {
                    (Some(t), lap)
                }
            }
            _ => (None, Vec::new()),
        };
        Ok(Some(Wal {
            file,
            path,
            dir: dir.to_path_buf(),
            start_seq,
            capacity,
            tail,
            boot,
            lap,
            at,
        }))
    }

    /// Creates the log of `dir` (or a larger one in its place), whole and
    /// durable, starting at `start_seq`.
    fn create(dir: &Path, capacity: u64, start_seq: u64) -> Result<Wal> {
        let path = Wal::log_path(dir);
        let tmp = tmp_name(&path)?;
        let mut f =
            File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
        let zeros = vec![0u8; 1 << 16];
        let mut left = capacity;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])
                .with_context(|| format!("{}: cannot write", tmp.display()))?;
            left -= n as u64;
        }
        let boot = boot_id();
        let tail = Tail {
            next_off: RECORDS_AT,
            next_seq: start_seq,
        };
        f.write_all_at(&header_bytes(start_seq, capacity), HEADER_AT)
            .and_then(|_| f.write_all_at(&tail_bytes(&boot, tail, &[]), TAIL_AT))
            .and_then(|_| f.sync_all())
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
        drop(f);
        fs::rename(&tmp, &path).with_context(|| format!("{}: cannot create", path.display()))?;
        sync_dir(dir)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(Wal {
            file,
            path,
            dir: dir.to_path_buf(),
            start_seq,
            capacity,
            tail: Some(tail),
            boot,
            lap: Vec::new(),
            at: Dir::open(dir),
        })
    }

    /// Opens the log of `dir`, creating it when there is none, recovered.
    pub(super) fn open_recovered(dir: &Path, room: u64, cap: u64) -> Result<Wal> {
        match Wal::open(dir)? {
            Some(mut log) => {
                log.recover()?;
                Ok(log)
            }
            None => Wal::create(dir, capacity_for(room, cap), 1),
        }
    }

    /// Finishes what a crash left: see the module's documentation.
    /// Returns the number of files it changed.
    pub(super) fn recover(&mut self) -> Result<usize> {
        match self.tail {
            Some(tail) => {
                let Some(record) = read_record_at(&self.file, tail.next_off, self.capacity)? else {
                    return Ok(0);
                };
                if record.seq != tail.next_seq {
                    return Ok(0);
                }
                // A record of this boot, whole, not marked done: make it
                // durable (its writer may have died before its fdatasync),
                // then finish it.
                self.file
                    .sync_data()
                    .with_context(|| format!("{}: cannot sync", self.path.display()))?;
                let mut unapplied = Vec::new();
                let changed = apply_guarded(&record.writes, &mut unapplied)?;
                self.set_aside(record.seq, &unapplied)?;
                self.note_full(record.writes.iter().filter_map(|w| match &w.body {
                    Body::Full(data) => Some((&w.path, data.len())),
                    Body::Splice { .. } => None,
                }));
                self.set_tail(Tail {
                    next_off: tail.next_off + record.len,
                    next_seq: record.seq + 1,
                })?;
                crate::metrics::update_or_warn(&self.dir, |c| {
                    c.wal_recoveries = c.wal_recoveries.saturating_add(1)
                });
                Ok(changed)
            }
            None => {
                // Another boot, or no valid tail: replay the whole lap.
                let mut off = RECORDS_AT;
                let mut expect = self.start_seq;
                let mut changed = 0;
                while let Some(record) = read_record_at(&self.file, off, self.capacity)? {
                    if record.seq != expect {
                        break;
                    }
                    let mut unapplied = Vec::new();
                    changed += apply_guarded(&record.writes, &mut unapplied)?;
                    self.set_aside(record.seq, &unapplied)?;
                    off += record.len;
                    expect += 1;
                }
                self.tail = Some(Tail {
                    next_off: off,
                    next_seq: expect,
                });
                self.checkpoint(None)?;
                if off > RECORDS_AT {
                    crate::metrics::update_or_warn(&self.dir, |c| {
                        c.wal_recoveries = c.wal_recoveries.saturating_add(1)
                    });
                }
                Ok(changed)
            }
        }
    }

    /// Makes every file of the lap durable, then empties the log. With
    /// `resize` (a record's size and the cap), the log is made again at
    /// [`capacity_for`] that record when that is larger than it is, or
    /// when it is larger than the cap.
    fn checkpoint(&mut self, resize: Option<(u64, u64)>) -> Result<()> {
        let tail = self.tail.context("checkpoint without a tail")?;
        let mut paths = BTreeSet::new();
        let mut off = RECORDS_AT;
        let mut expect = self.start_seq;
        while off < tail.next_off {
            let Some(record) = read_record_at(&self.file, off, self.capacity)? else {
                break;
            };
            if record.seq != expect {
                break;
            }
            off += record.len;
            expect += 1;
            paths.extend(record.writes.into_iter().map(|w| w.path));
        }
        let mut dirs = BTreeSet::new();
        // A file a record set aside could not write is not there to sync.
        for p in paths.iter().filter(|p| super::check_target(p).is_ok()) {
            match File::open(p) {
                Ok(f) => f
                    .sync_all()
                    .with_context(|| format!("{}: cannot sync", p.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error().is_some_and(|n| PERMANENT.contains(&n)) => {}
                Err(e) => return Err(e).with_context(|| format!("{}: cannot open", p.display())),
            }
            dirs.insert(parent(p).to_path_buf());
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        // A log that holds fewer than RECORDS_PER_LAP records of this size
        // is made larger (checkpoints stay rare when the files grow), up
        // to the cap; one larger than the cap is made smaller.
        if let Some((room, cap)) = resize {
            let wanted = capacity_for(room, cap);
            if wanted > self.capacity || self.capacity > cap {
                *self = Wal::create(&self.dir, wanted, tail.next_seq)?;
                return Ok(());
            }
        }
        self.file
            .write_all_at(&header_bytes(tail.next_seq, self.capacity), HEADER_AT)
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("{}: cannot write", self.path.display()))?;
        self.start_seq = tail.next_seq;
        self.lap.clear();
        self.set_tail(Tail {
            next_off: RECORDS_AT,
            next_seq: tail.next_seq,
        })
    }

    /// Sets aside record `seq`, of which `unapplied` could not be
    /// written: a copy of the log, a note, a line on stderr (see the
    /// module's documentation). Nothing when `unapplied` is empty.
    fn set_aside(&self, seq: u64, unapplied: &[Unapplied]) -> Result<()> {
        if unapplied.is_empty() {
            return Ok(());
        }
        let stamp = crate::clock::Utc::now().compact();
        let mut name = format!("{LOG}.failed-{stamp}");
        let mut n = 2u32;
        while fs::symlink_metadata(self.dir.join(&name)).is_ok() {
            name = format!("{LOG}.failed-{stamp}-{n}");
            n += 1;
        }
        let copy = self.dir.join(&name);
        fs::copy(&self.path, &copy)
            .and_then(|_| File::open(&copy)?.sync_all())
            .with_context(|| format!("{}: cannot copy the log to it", copy.display()))?;
        let mut note = String::new();
        for u in unapplied {
            let reason = one_line(&format!("{}: {}", u.path.display(), u.reason));
            eprintln!(
                "edeploy: {}: a write-ahead log record (number {seq}) could not be applied \
                 and was set aside as {name}: {reason}",
                self.path.display()
            );
            note.push_str(&format!("{name}\t{reason}\n"));
        }
        let notes = self.dir.join(SET_ASIDE);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&notes)
            .and_then(|mut f| {
                f.write_all(note.as_bytes())?;
                f.sync_all()
            })
            .with_context(|| format!("{}: cannot write", notes.display()))?;
        crate::metrics::update_or_warn(&self.dir, |c| {
            c.wal_set_aside = c.wal_set_aside.saturating_add(1)
        });
        sync_dir(&self.dir)
    }

    fn set_tail(&mut self, tail: Tail) -> Result<()> {
        self.file
            .write_all_at(&tail_bytes(&self.boot, tail, &self.lap), TAIL_AT)
            .with_context(|| format!("{}: cannot write", self.path.display()))?;
        self.tail = Some(tail);
        Ok(())
    }

    /// Commits `writes`, the log taking at most `cap` bytes (the caller
    /// has checked that their record [`fits`]): see the module's
    /// documentation.
    pub(super) fn commit(&mut self, writes: &[Write1], cap: u64) -> Result<()> {
        let tail = self
            .tail
            .context("commit on a log that was not recovered")?;
        let mut record = encode(tail.next_seq, writes, &self.lap)?;
        if tail.next_off + record.len() as u64 > self.capacity || self.capacity > cap {
            // Splices were relative to the lap the checkpoint ends: the
            // record becomes the first of a new lap, in full.
            let full = encode(tail.next_seq, writes, &[])?;
            self.checkpoint(Some((full.len() as u64, cap)))?;
            record = full;
        }
        let len = record.len() as u64;
        let tail = self.tail.context("no tail after a checkpoint")?;
        // Before the commit point: a target that cannot be written fails
        // the commit, not the record's replay.
        let at = self.at.as_ref();
        let spares = writes
            .iter()
            .map(|w| open_spare(at, &w.path))
            .collect::<Result<Vec<_>>>()?;
        self.file
            .write_all_at(&record, tail.next_off)
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("{}: cannot write", self.path.display()))?;
        apply(at, writes, spares)?;
        self.note_full(writes.iter().map(|w| (&w.path, w.data.len())));
        self.set_tail(Tail {
            next_off: tail.next_off + len,
            next_seq: tail.next_seq + 1,
        })
    }

    /// Whether a committed record is not applied yet (read-only).
    pub(super) fn pending(&self) -> Result<bool> {
        let (off, seq) = match self.tail {
            Some(t) => (t.next_off, t.next_seq),
            None => (RECORDS_AT, self.start_seq),
        };
        Ok(matches!(read_record_at(&self.file, off, self.capacity)?, Some(r) if r.seq == seq))
    }

    /// Adds to the lap the paths just written in full that a later write
    /// could splice, while the tail has room for them.
    fn note_full<'a>(&mut self, written: impl Iterator<Item = (&'a PathBuf, usize)>) {
        for (path, len) in written {
            let path = path.as_os_str().as_bytes();
            if len < SPLICE_MIN || self.lap.iter().any(|l| l == path) {
                continue;
            }
            let used: usize = self.lap.iter().map(|l| 2 + l.len()).sum();
            if used + 2 + path.len() <= LAP_ROOM {
                self.lap.push(path.to_vec());
            }
        }
    }
}

/// The size of a log for records of `record` bytes: room for
/// [`RECORDS_PER_LAP`] of them, 1 MiB at least, a power of two, but at
/// most `cap`, and always room for one (the caller checks it [`fits`]).
fn capacity_for(record: u64, cap: u64) -> u64 {
    RECORDS_PER_LAP
        .saturating_mul(record)
        .saturating_add(RECORDS_AT)
        .max(MIN_CAPACITY)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
        .min(cap)
        .max(needed(record))
}

/// The bytes a log needs to hold one record of `record` bytes.
pub(super) fn needed(record: u64) -> u64 {
    RECORDS_AT.saturating_add(record)
}

/// Whether a record of `record` bytes fits in a log of at most `cap`.
pub(super) fn fits(record: u64, cap: u64) -> bool {
    needed(record) <= cap
}

/// The size of the record of `writes` written in full (the largest it
/// can be: a splice is smaller).
pub(super) fn record_size(writes: &[Write1]) -> u64 {
    RECORD_HEAD as u64 + 4 + writes.iter().map(|w| w.size()).sum::<u64>()
}

fn header_bytes(start_seq: u64, capacity: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(b"EDJH");
    h.extend_from_slice(&start_seq.to_le_bytes());
    h.extend_from_slice(&capacity.to_le_bytes());
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

fn parse_header(b: &[u8]) -> Option<(u64, u64)> {
    if &b[..4] != b"EDJH" || crc32fast::hash(&b[..20]) != le32(&b[20..24]) {
        return None;
    }
    Some((le64(&b[4..12]), le64(&b[12..20])))
}

fn tail_bytes(boot: &[u8; BOOT_LEN], t: Tail, lap: &[Vec<u8>]) -> Vec<u8> {
    let mut h = Vec::with_capacity(4 + BOOT_LEN + 24 + LAP_ROOM);
    h.extend_from_slice(TAIL_MAGIC);
    h.extend_from_slice(boot);
    h.extend_from_slice(&t.next_off.to_le_bytes());
    h.extend_from_slice(&t.next_seq.to_le_bytes());
    h.extend_from_slice(&(lap.len() as u16).to_le_bytes());
    for path in lap {
        h.extend_from_slice(&(path.len() as u16).to_le_bytes());
        h.extend_from_slice(path);
    }
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

type TailRead = ([u8; BOOT_LEN], Tail, Vec<Vec<u8>>);

fn parse_tail(b: &[u8]) -> Option<TailRead> {
    if b.get(..4)? != TAIL_MAGIC {
        return None;
    }
    let mut at = 4 + BOOT_LEN + 16;
    let count = u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?);
    at += 2;
    let mut lap = Vec::new();
    for _ in 0..count {
        let n = usize::from(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?));
        lap.push(b.get(at + 2..at + 2 + n)?.to_vec());
        at += 2 + n;
    }
    if crc32fast::hash(&b[..at]) != le32(b.get(at..at + 4)?) {
        return None;
    }
    let mut boot = [0u8; BOOT_LEN];
    boot.copy_from_slice(&b[4..4 + BOOT_LEN]);
    Some((
        boot,
        Tail {
            next_off: le64(&b[4 + BOOT_LEN..]),
            next_seq: le64(&b[12 + BOOT_LEN..]),
        },
        lap,
    ))
}

/// A record read back: its sequence number, its writes and its length in
/// the log.
struct Record {
    seq: u64,
    writes: Vec<Stored>,
    len: u64,
}

/// The whole, intact record at `off`, if there is one.
fn read_record_at(file: &File, off: u64, capacity: u64) -> Result<Option<Record>> {
    if off + RECORD_HEAD as u64 > capacity {
        return Ok(None);
    }
    let mut head = [0u8; RECORD_HEAD];
    file.read_exact_at(&mut head, off)
        .context("cannot read the log")?;
    let splices = match &head[..4] {
        m if m == RECORD_MAGIC => true,
        b"EDJR" => false,
        _ => return Ok(None),
    };
    let seq = le64(&head[4..12]);
    let len = u64::from(le32(&head[12..16]));
    let crc = le32(&head[16..20]);
    if off + RECORD_HEAD as u64 + len > capacity {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact_at(&mut payload, off + RECORD_HEAD as u64)
        .context("cannot read the log")?;
    if crc32fast::hash(&payload) ^ crc32fast::hash(&seq.to_le_bytes()) != crc {
        return Ok(None);
    }
    Ok(decode(&payload, splices).map(|writes| Record {
        seq,
        writes,
        len: RECORD_HEAD as u64 + len,
    }))
}

/// Writes each file of a commit into its open spare, under the lock that
/// read the old contents. Returns the number of files written.
fn apply(at: Option<&Dir>, writes: &[Write1], spares: Vec<(PathBuf, File)>) -> Result<usize> {
    for (i, (w, (tmp, f))) in writes.iter().zip(spares).enumerate() {
        if i > 0 {
            super::test_delay();
        }
        swap_in(at, &w.path, &tmp, f, w.data.pieces())?;
    }
    Ok(writes.len())
}

/// Whether an error writing a file is one retrying cannot fix (see the
/// module's documentation).
pub fn is_permanent(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<super::BadName>()
            || c.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
                .is_some_and(|n| PERMANENT.contains(&n))
    })
}

/// A file of a record that could not be written, and why.
struct Unapplied {
    path: PathBuf,
    reason: String,
}

/// Brings each file of a record read back to its new content, guarded
/// by what the file holds (see the module's documentation). A file that
/// fails for a permanent reason is noted in `unapplied` and the others
/// are still written; any other failure is returned. Returns the number
/// of files written.
fn apply_guarded(writes: &[Stored], unapplied: &mut Vec<Unapplied>) -> Result<usize> {
    let mut changed = 0;
    for (i, w) in writes.iter().enumerate() {
        if i > 0 {
            super::test_delay();
        }
        match apply_stored(w) {
            Ok(true) => changed += 1,
            Ok(false) => {}
            Err(e) if is_permanent(&e) => unapplied.push(Unapplied {
                path: w.path.clone(),
                reason: format!("{e:#}"),
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(changed)
}

/// [`apply_guarded`] of one file: whether it was written.
fn apply_stored(w: &Stored) -> Result<bool> {
    super::check_target(&w.path)?;
    let now = read_opt(&w.path)?;
    let now_id = now.as_deref().map(Identity::of);
    let new = match &w.body {
        Body::Full(data) => {
            let keep = match &now {
                None => w.old.is_some(),
                Some(d) if d.is_empty() || d.contains(&0) => false,
                Some(_) => now_id == Some(Identity::of(data)) || now_id != w.old,
            };
            if keep {
                if now_id != Some(Identity::of(data)) {
                    kept(&w.path);
                }
                return Ok(false);
            }
            std::borrow::Cow::Borrowed(data)
        }
        Body::Splice {
            prefix,
            suffix,
            new,
            mid,
        } => {
            if now_id == Some(*new) {
                return Ok(false);
            }
            match now.as_deref().filter(|_| now_id == w.old) {
                Some(d) => match splice(d, *prefix, *suffix, mid) {
                    Some(data) if Identity::of(&data) == *new => std::borrow::Cow::Owned(data),
                    _ => {
                        kept(&w.path);
                        return Ok(false);
                    }
                },
                None => {
                    kept(&w.path);
                    return Ok(false);
                }
            }
        }
    };
    replace(&w.path, &new)?;
    Ok(true)
}

/// `old`'s first `prefix` bytes, `mid`, then `old`'s last `suffix` bytes.
fn splice(old: &[u8], prefix: u64, suffix: u64, mid: &[u8]) -> Option<Vec<u8>> {
    let prefix = usize::try_from(prefix).ok()?;
    let suffix = usize::try_from(suffix).ok()?;
    if prefix.checked_add(suffix)? > old.len() {
        return None;
    }
    let mut out = Vec::with_capacity(prefix + mid.len() + suffix);
    out.extend_from_slice(&old[..prefix]);
    out.extend_from_slice(mid);
    out.extend_from_slice(&old[old.len() - suffix..]);
    Some(out)
}

/// `s` with its control characters escaped: one line of a note.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn kept(path: &Path) {
    eprintln!(
        "edeploy: {}: changed since an interrupted update; kept as it is",
        path.display()
    );
}

/// Spare file and atomic swap, without fsync: the log holds the data.
///
/// The new content is written into the spare file `.NAME.edeploy-tmp`,
/// which is swapped with the file (`renameat2` with `RENAME_EXCHANGE`);
/// the old file, now under the spare's name, is the spare of the next
/// write. So a decision creates and removes no inode
/// (`scripts/bench-replace` times both ways; ext4 without a journal also
/// checks recently removed inodes when it creates one). The spare is
/// overwritten in place and cut to the new length when it was longer,
/// never truncated to zero first: on ext4 that (like a rename over an
/// existing file) starts writing the data out at once (`auto_da_alloc`).
/// A spare left half-written by a crash is only a spare. The log is what
/// guards against a crash here (see the module's documentation: an empty or
/// zero-filled file is rewritten by the replay). Where the swap is not
/// supported, or there is no old file yet, it is a plain rename (and the
/// next write makes a new spare).
fn replace(path: &Path, data: &[u8]) -> Result<()> {
    let (tmp, f) = open_spare(None, path)?;
    swap_in(None, path, &tmp, f, [data, &[], &[]])
}

/// Opens (creating it) the spare file of `path`, through `at` when it is
/// under it: see [`replace`].
fn open_spare(at: Option<&Dir>, path: &Path) -> Result<(PathBuf, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = tmp_name(path)?;
    let rel = at.and_then(|d| Some((d, d.rel(&tmp)?)));
    // O_NOFOLLOW: a symlink put in the spare's place is removed, not
    // written through.
    let open = || match &rel {
        Some((d, rel)) => d.open_file(rel, libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW),
        None => OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp),
    };
    let f = match open() {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            fs::remove_file(&tmp).and_then(|_| open())
        }
        other => other,
    }
    .with_context(|| format!("{}: cannot open", tmp.display()))?;
    Ok((tmp, f))
}

/// Writes `pieces` (the new content, in order) into the open spare `tmp`
/// and swaps it with `path`: see [`replace`].
fn swap_in(at: Option<&Dir>, path: &Path, tmp: &Path, f: File, pieces: [&[u8]; 3]) -> Result<()> {
    let len: usize = pieces.iter().map(|p| p.len()).sum();
    // Cut only a spare longer than the new content: the write leaves a
    // shorter one exactly `len` long, and cutting a file to its own
    // length still rewrites its inode (the dearest step of replacing a
    // small file on ext4); asking its length is much cheaper.
    let longer = f.metadata().map_or(true, |m| m.len() > len as u64);
    let mut at_off = 0u64;
    pieces
        .iter()
        .try_for_each(|p| {
            f.write_all_at(p, at_off)?;
            at_off += p.len() as u64;
            Ok(())
        })
        .and_then(|_: ()| {
            if longer {
                f.set_len(len as u64)
            } else {
                Ok(())
            }
        })
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    drop(f);
    if exchange(at, tmp, path) {
        return Ok(());
    }
    fs::rename(tmp, path).with_context(|| format!("{}: cannot replace", path.display()))
}

/// Swaps two paths atomically, named through `at` when both are under
/// it; false when the kernel or the file system cannot (or `b` does not
/// exist), and nothing was changed.
fn exchange(at: Option<&Dir>, a: &Path, b: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let inside = at.and_then(|d| Some((d.fd.as_raw_fd(), d.rel(a)?, d.rel(b)?)));
    let (dirfd, a, b) = match inside {
        Some(names) => names,
        None => {
            let (Ok(a), Ok(b)) = (
                std::ffi::CString::new(a.as_os_str().as_bytes()),
                std::ffi::CString::new(b.as_os_str().as_bytes()),
            ) else {
                return false;
            };
            (libc::AT_FDCWD, a, b)
        }
    };
    // SAFETY: two NUL-terminated paths that live across the call, and a
    // directory open as long as `at` (or the working directory).
    let r = unsafe { libc::renameat2(dirfd, a.as_ptr(), dirfd, b.as_ptr(), libc::RENAME_EXCHANGE) };
    r == 0
}

/// Recovers `dir` as the first request after a reboot does: every record
/// of the lap is replayed, guarded by content, then checkpointed. For
/// tests and for an operator who restored files from a backup.
pub fn recover_after_reboot(dir: &Path) -> Result<usize> {
    match Wal::open(dir)? {
        Some(mut log) => {
            log.tail = None;
            log.recover()
        }
        None => Ok(0),
    }
}

/// Writes a commit's record and makes it durable, without applying it:
/// what a request killed right after its commit point leaves. For tests
/// (feature `test-hooks`).
#[cfg(any(test, feature = "test-hooks"))]
pub fn commit_record_only(dir: &Path, writes: Vec<(PathBuf, Vec<u8>)>) -> Result<()> {
    let writes = writes
        .into_iter()
        .map(|(p, d)| Write1::new(p, d))
        .collect::<Result<Vec<_>>>()?;
    let room = record_size(&writes);
    let log = Wal::open_recovered(dir, room, DEFAULT_MAX)?;
    let tail = log.tail.context("no tail")?;
    let record = encode(tail.next_seq, &writes, &log.lap)?;
    if tail.next_off + record.len() as u64 > log.capacity {
        bail!("the log is full");
    }
    log.file
        .write_all_at(&record, tail.next_off)
        .and_then(|_| log.file.sync_data())
        .context("cannot write the log")
}

/// A record of the current lap, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    pub seq: u64,
    /// The files it writes, in order.
    pub paths: Vec<PathBuf>,
    /// For each file, whether it is written as a splice.
    pub spliced: Vec<bool>,
    /// Bytes the record takes in the log.
    pub len: u64,
}

/// The records of the current lap.
pub fn records(dir: &Path) -> Result<Vec<RecordInfo>> {
    let path = dir.join(LOG);
    let mut f = File::open(&path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut head = [0u8; 512];
    f.read_exact(&mut head)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let Some((start, capacity)) = parse_header(&head) else {
        bail!("{}: damaged header", path.display());
    };
    let mut out = Vec::new();
    let mut off = RECORDS_AT;
    let mut expect = start;
    while let Some(record) = read_record_at(&f, off, capacity)? {
        if record.seq != expect {
            break;
        }
        off += record.len;
        expect += 1;
        out.push(RecordInfo {
            seq: record.seq,
            spliced: record
                .writes
                .iter()
                .map(|w| matches!(w.body, Body::Splice { .. }))
                .collect(),
            paths: record.writes.into_iter().map(|w| w.path).collect(),
            len: record.len,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(n: i32) -> anyhow::Error {
        anyhow::Error::from(std::io::Error::from_raw_os_error(n)).context("x: cannot open")
    }

    #[test]
    fn which_errors_set_a_record_aside() {
        for n in PERMANENT {
            assert!(is_permanent(&os(n)), "{n}");
        }
        let bad = super::super::check_target(Path::new("/a\0b")).unwrap_err();
        assert!(is_permanent(&anyhow::Error::from(bad)));
        for n in [
            libc::EIO,
            libc::ENOSPC,
            libc::EDQUOT,
            libc::EACCES,
            libc::EROFS,
            libc::ENOENT,
        ] {
            assert!(!is_permanent(&os(n)), "{n}");
        }
        assert!(!is_permanent(&anyhow::anyhow!("no os error")));
    }

    #[test]
    fn the_log_never_grows_past_its_cap() {
        const MIB: u64 = 1 << 20;
        assert_eq!(capacity_for(100, DEFAULT_MAX), MIB);
        assert_eq!(capacity_for(MIB, DEFAULT_MAX), 32 * MIB);
        // A record of 16 MiB stored 4 times larger made a 1 GiB log.
        assert_eq!(capacity_for(64 * MIB, u64::MAX), 2048 * MIB);
        assert_eq!(capacity_for(10 * MIB, DEFAULT_MAX), DEFAULT_MAX);
        assert!(fits(DEFAULT_MAX - RECORDS_AT, DEFAULT_MAX));
        assert!(!fits(DEFAULT_MAX - RECORDS_AT + 1, DEFAULT_MAX));
        assert_eq!(
            capacity_for(DEFAULT_MAX - RECORDS_AT, DEFAULT_MAX),
            DEFAULT_MAX
        );
        // A cap below 1 MiB is the size, room for one record kept.
        assert_eq!(capacity_for(100, 65536), 65536);
        assert_eq!(capacity_for(u64::MAX / 2, u64::MAX), u64::MAX);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn a_record_over_the_cap_is_refused_with_nothing_written() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let big = vec![b'x'; 2 << 20];
        let mut txn = super::super::Transaction::new();
        txn.write(dir.join("a"), big.clone());
        let e = txn.commit_within(dir, 1 << 20).unwrap_err();
        let too = e
            .downcast_ref::<super::super::TooLarge>()
            .expect("TooLarge");
        assert_eq!(too.cap, 1 << 20);
        assert!(too.need > 2 << 20, "{}", too.need);
        assert!(e.to_string().contains("WALMAX"), "{e}");
        assert!(names(dir).is_empty(), "{:?}", names(dir));

        // Within the cap: written, the log no larger than the cap.
        let cap = 3 << 20;
        let mut txn = super::super::Transaction::new();
        txn.write(dir.join("a"), big.clone());
        txn.commit_within(dir, cap).unwrap();
        assert_eq!(fs::read(dir.join("a")).unwrap(), big);
        let size = fs::metadata(dir.join(LOG)).unwrap().len();
        assert!(size <= cap && size > 2 << 20, "{size}");
    }

    #[test]
    fn a_log_larger_than_the_cap_is_made_smaller() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let mut txn = super::super::Transaction::new();
        txn.write(dir.join("a"), vec![b'a'; 3 << 20]);
        txn.commit(dir).unwrap();
        assert_eq!(fs::metadata(dir.join(LOG)).unwrap().len(), DEFAULT_MAX);
        for (i, cap) in [(1u8, 2u64 << 20), (2, 2 << 20)] {
            let mut txn = super::super::Transaction::new();
            txn.write(dir.join("b"), vec![i; 1000]);
            txn.commit_within(dir, cap).unwrap();
            assert_eq!(fs::metadata(dir.join(LOG)).unwrap().len(), 1 << 20);
            assert_eq!(fs::read(dir.join("b")).unwrap(), vec![i; 1000]);
        }
        assert_eq!(fs::read(dir.join("a")).unwrap().len(), 3 << 20);
        // What was committed survives a replay of the new log.
        assert_eq!(super::super::recover(dir).unwrap(), 0);
    }

    proptest::proptest! {
        /// The block-wise searches find what a byte loop finds, the
        /// difference anywhere in texts longer than a large block.
        #[test]
        fn common_prefix_and_suffix_are_the_byte_loops(
            len in 0usize..9000,
            at in 0usize..9000,
            cut in 0usize..3,
            max in 0usize..9000,
        ) {
            let a: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut b = a.clone();
            if at < len {
                b[at] ^= 0x55;
            }
            b.truncate(len.saturating_sub(cut));
            let n = a.len().min(b.len());
            let naive_prefix = (0..n).take_while(|&i| a[i] == b[i]).count();
            proptest::prop_assert_eq!(common_prefix(&a, &b), naive_prefix);
            let m = n.min(max);
            let naive_suffix = (1..=m)
                .take_while(|&i| a[a.len() - i] == b[b.len() - i])
                .count();
            proptest::prop_assert_eq!(common_suffix(&a, &b, max), naive_suffix);
        }
    }

    #[test]
    fn a_spare_longer_or_shorter_than_the_new_content_ends_as_it() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let a = dir.join("a");
        // Each write goes into the spare, which holds the version before
        // the last: longer, shorter or as long as the new one.
        for data in [
            &b"x".repeat(6000)[..],
            b"short",
            b"mid-length",
            b"tiny",
            b"xy",
            b"longer than the spare",
            b"abcd",
            b"ghij",
            b"klmn",
        ] {
            let mut txn = super::super::Transaction::new();
            txn.write(&a, data.to_vec());
            txn.commit(dir).unwrap();
            assert_eq!(fs::read(&a).unwrap(), data);
        }
    }

    #[test]
    fn commits_through_the_recovered_log_follow_the_record_it_finished() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let (a, b) = (dir.join("a"), dir.join("b"));
        // No log yet: the first commit makes it, the next ones reuse it.
        let mut open = super::super::recover_open(dir).unwrap();
        for n in 1..=2u8 {
            let mut txn = super::super::Transaction::new();
            txn.write(&a, vec![n; 5000]);
            txn.commit_recovered(&mut open, DEFAULT_MAX).unwrap();
        }
        drop(open);
        // A request killed after its commit point: the next one finishes
        // its record when it recovers, then commits after it.
        commit_record_only(dir, vec![(a.clone(), vec![3; 5000])]).unwrap();
        let mut open = super::super::recover_open(dir).unwrap();
        assert_eq!(fs::read(&a).unwrap(), vec![3; 5000]);
        let mut txn = super::super::Transaction::new();
        txn.write(&a, vec![4; 5000]);
        txn.write(&b, b"b".to_vec());
        txn.commit_recovered(&mut open, DEFAULT_MAX).unwrap();
        drop(open);
        let seqs: Vec<u64> = records(dir).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(fs::read(&a).unwrap(), vec![4; 5000]);
        // A replay of the whole lap after a reboot ends on the same files.
        fs::write(&a, b"").unwrap();
        fs::remove_file(&b).unwrap();
        recover_after_reboot(dir).unwrap();
        assert_eq!(fs::read(&a).unwrap(), vec![4; 5000]);
        assert_eq!(fs::read(&b).unwrap(), b"b");
    }

    #[test]
    fn an_edit_is_written_from_its_pieces_and_logged_as_a_splice() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let a = dir.join("a");
        let old: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut open = super::super::recover_open(dir).unwrap();
        // Written whole first: the lap holds it in full.
        let mut txn = super::super::Transaction::new();
        txn.write(&a, old.clone());
        txn.commit_recovered(&mut open, DEFAULT_MAX).unwrap();
        let mut want = old.clone();
        want.splice(100..110, b"EDITED, LONGER".iter().copied());
        let base: Base = std::sync::Arc::new(old.clone());
        let mut txn = super::super::Transaction::new();
        let crc = crc32fast::hash(&want);
        txn.write_edit(
            &a,
            (base.clone(), crc32fast::hash(&old)),
            100..110,
            (b"EDITED, LONGER".to_vec(), crc),
        )
        .unwrap();
        txn.commit_recovered(&mut open, DEFAULT_MAX).unwrap();
        drop(open);
        assert_eq!(fs::read(&a).unwrap(), want);
        let recs = records(dir).unwrap();
        assert_eq!(recs[1].spliced, [true]);
        assert!(recs[1].len < 200, "{} bytes", recs[1].len);
        // Replayed after a reboot from the file emptied: the same bytes.
        fs::write(&a, b"").unwrap();
        recover_after_reboot(dir).unwrap();
        assert_eq!(fs::read(&a).unwrap(), want);
        // A range outside the old content is refused before anything.
        let mut txn = super::super::Transaction::new();
        let e = txn
            .write_edit(&a, (base, 0), 19_990..20_001, (Vec::new(), 0))
            .unwrap_err();
        assert!(format!("{e:#}").contains("19990..20001"), "{e:#}");
        assert!(txn.is_empty());
    }
}
