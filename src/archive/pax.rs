//! PAX extended headers (tar type `x`): their records, written and read in
//! one place, and the tap that keeps each header's data whole while
//! tar-rs reads the stream.
//!
//! A record is `"LEN KEY=VALUE\n"`, LEN counting the whole record, itself
//! included, so a value may hold any byte, newlines included. The archive
//! writer puts extended attributes in `SCHILY.xattr.NAME` records, as GNU
//! tar does; the unpacker reads them back from the tap ([`PaxTap`]),
//! because tar-rs 0.4 splits records on newline bytes, which breaks binary
//! values (a file capability or an ACL holding a 0x0a byte).

use super::xattr::set_xattr;
use anyhow::{bail, Context, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

/// The key prefix of an extended attribute's record.
pub const XATTR_KEY: &[u8] = b"SCHILY.xattr.";

/// The name GNU tar's readers accept for a PAX header (the entry it
/// describes comes next and has its own name).
const PAX_NAME: &[u8] = b"././@PaxHeader";

/// Appends the record `KEY=VALUE` to `out`.
pub fn push_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // " " KEY "=" VALUE "\n"
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while rest + len.to_string().len() != len {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The records of a PAX extended header's data, read by their length.
pub fn records(data: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|b| *b == b' ')
            .context("a PAX record without a length")?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|l| l.parse().ok())
            .context("a PAX record with a bad length")?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            bail!("a PAX record whose length does not match");
        }
        let record = &rest[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .context("a PAX record without '='")?;
        out.push((&record[..eq], &record[eq + 1..]));
        rest = &rest[len..];
    }
    Ok(out)
}

/// The PAX extended header (type `x`) holding `attrs` as
/// `SCHILY.xattr.NAME=VALUE` records, and its data.
pub fn xattr_header(attrs: &[(Vec<u8>, Vec<u8>)]) -> Result<(tar::Header, Vec<u8>)> {
    let mut data = Vec::new();
    for (name, value) in attrs {
        if name.contains(&b'=') || name.contains(&0) {
            bail!(
                "the extended attribute {:?} has a name a tar record cannot hold",
                String::from_utf8_lossy(name)
            );
        }
        push_record(&mut data, &[XATTR_KEY, name].concat(), value);
    }
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..PAX_NAME.len()].copy_from_slice(PAX_NAME);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_cksum();
    Ok((h, data))
}

/// Sets the `SCHILY.xattr.*` records of the PAX header `pax` as extended
/// attributes of `dst` (not following a symlink).
pub fn set_xattrs(pax: &[u8], dst: &Path) -> Result<()> {
    let records =
        records(pax).with_context(|| format!("{}: a bad PAX extended header", dst.display()))?;
    for (key, value) in records {
        if let Some(attr) = key.strip_prefix(XATTR_KEY) {
            set_xattr(dst, attr, value)?;
        }
    }
    Ok(())
}

/// The PAX records of `entry` as the tap kept them; an error when the tap
/// and tar-rs disagree on whether the entry has any.
pub fn tapped<R: Read>(
    entry: &mut tar::Entry<R>,
    framing: &RefCell<Framing>,
    name: &str,
) -> Result<Option<Vec<u8>>> {
    let tapped = framing
        .borrow_mut()
        .by_entry
        .remove(&entry.raw_header_position());
    let has = matches!(entry.pax_extensions(), Ok(Some(_)));
    if has != tapped.is_some() {
        bail!(
            "{name}: {}: cannot read the archive's extended headers",
            String::from_utf8_lossy(&entry.path_bytes())
        );
    }
    Ok(tapped)
}

/// Passes a tar stream through unchanged and keeps the data of its PAX
/// extended headers (type `x`) whole, by the stream position of the
/// header of the entry each describes (tar-rs 0.4 splits those records on
/// newline bytes, which breaks binary values: a file capability or an ACL
/// holding a 0x0a byte).
pub struct PaxTap<R> {
    pub inner: R,
    pub framing: Rc<RefCell<Framing>>,
}

impl<R: Read> Read for PaxTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.framing.borrow_mut().feed(&buf[..n]);
        Ok(n)
    }
}

/// The tap's view of the tar stream: 512-byte headers, each followed by
/// its data padded to 512 bytes, as tar-rs reads them (a GNU sparse
/// header by its extension headers; a PAX `size` record overriding the
/// next entry's size).
#[derive(Default)]
pub struct Framing {
    /// Stream position of the next byte.
    pos: u64,
    /// The header being read.
    block: Vec<u8>,
    /// Data and padding still to pass before the next header.
    data_left: u64,
    /// Bytes of an `x` header's data still to keep, and those kept.
    keep_left: u64,
    kept: Vec<u8>,
    /// The last `x` header's data and its `size` record, for the next
    /// entry.
    pending: Option<Vec<u8>>,
    pending_size: Option<u64>,
    /// In a GNU sparse entry's extension headers: the entry's data size.
    sparse: Option<u64>,
    /// PAX data by the position of the header it describes.
    by_entry: HashMap<u64, Vec<u8>>,
}

fn padded(size: u64) -> u64 {
    size.div_ceil(512).saturating_mul(512)
}

impl Framing {
    fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            if self.data_left > 0 {
                let n = usize::try_from(self.data_left).map_or(buf.len(), |d| d.min(buf.len()));
                if self.keep_left > 0 {
                    let k = usize::try_from(self.keep_left).map_or(n, |l| l.min(n));
                    self.kept.extend_from_slice(&buf[..k]);
                    self.keep_left -= k as u64;
                    if self.keep_left == 0 {
                        self.pax_done();
                    }
                }
                self.data_left -= n as u64;
                self.pos += n as u64;
                buf = &buf[n..];
                continue;
            }
            let n = (512 - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..n]);
            self.pos += n as u64;
            buf = &buf[n..];
            if self.block.len() == 512 {
                let block = std::mem::take(&mut self.block);
                self.header(&block, self.pos - 512);
            }
        }
    }

    /// One 512-byte header, read by tar-rs's own header type, so its
    /// fields mean here what they mean to the reader it runs under.
    fn header(&mut self, block: &[u8], at: u64) {
        if let Some(size) = self.sparse {
            let mut ext = tar::GnuExtSparseHeader::new();
            ext.as_mut_bytes().copy_from_slice(block);
            if !ext.is_extended() {
                self.sparse = None;
                self.data_left = padded(size);
            }
            return;
        }
        if block.iter().all(|b| *b == 0) {
            return;
        }
        let h = tar::Header::from_byte_slice(block);
        // An unreadable size stops tar-rs too.
        let size = h.entry_size().unwrap_or(0);
        let kind = h.entry_type();
        if kind.is_pax_local_extensions() {
            self.kept.clear();
            self.keep_left = size;
            self.data_left = padded(size);
            if size == 0 {
                self.pax_done();
            }
        } else if kind.is_pax_global_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            self.data_left = padded(size);
        } else {
            let size = self.pending_size.take().unwrap_or(size);
            if let Some(pax) = self.pending.take() {
                self.by_entry.insert(at, pax);
            }
            // A GNU sparse header flagged "extended": extension headers
            // follow before the data.
            if kind.is_gnu_sparse() && h.as_gnu().is_some_and(|g| g.is_extended()) {
                self.sparse = Some(size);
            } else {
                self.data_left = padded(size);
            }
        }
    }

    fn pax_done(&mut self) {
        let data = std::mem::take(&mut self.kept);
        self.pending_size = records(&data).ok().and_then(|records| {
            records
                .iter()
                .find(|(k, _)| *k == b"size")
                .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
        });
        self.pending = Some(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Trickle;

    fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut data = Vec::new();
        for (k, v) in records {
            push_record(&mut data, k.as_bytes(), v);
        }
        data
    }

    #[test]
    fn pax_records_are_read_by_length() {
        let data = pax(&[("SCHILY.xattr.user.a", b"x\n9 y=z\n"), ("k", b"")]);
        let r = records(&data).expect("records");
        assert_eq!(
            r,
            [
                (&b"SCHILY.xattr.user.a"[..], &b"x\n9 y=z\n"[..]),
                (&b"k"[..], &b""[..])
            ]
        );
        for bad in [&b"5 a=b"[..], b"x a=b\n", b"3 a\n", b"99 a=b\n", b"4 ab\n"] {
            assert!(records(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_tap_keeps_each_pax_header_for_its_entry() {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/file", "d".repeat(120));
        // Path, data, the PAX header's data.
        type Member<'a> = (&'a str, &'a [u8], Option<Vec<u8>>);
        let entries: [Member; 4] = [
            ("a", b"one", Some(pax(&[("SCHILY.xattr.user.v", b"1\n2")]))),
            ("b", &[7u8; 1000], None),
            (&long, b"", Some(pax(&[("SCHILY.xattr.user.w", b"")]))),
            ("c", b"x", Some(Vec::new())),
        ];
        for (path, data, records) in &entries {
            if let Some(r) = records {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::XHeader);
                h.set_path("PaxHeader").expect("name");
                h.set_mode(0o644);
                h.set_size(r.len() as u64);
                h.set_cksum();
                b.append(&h, &r[..]).expect("pax");
            }
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).expect("file");
        }
        let bytes = b.into_inner().expect("tar");
        for step in [1, 7, 512, 4096] {
            let framing = Rc::new(RefCell::new(Framing::default()));
            let mut a = tar::Archive::new(PaxTap {
                inner: Trickle(&bytes, step),
                framing: Rc::clone(&framing),
            });
            let mut seen = Vec::new();
            for e in a.entries().expect("entries") {
                let mut e = e.expect("entry");
                let path = e.path().expect("path").to_string_lossy().into_owned();
                seen.push((path, tapped(&mut e, &framing, "t").expect("tap")));
            }
            let want: Vec<(String, Option<Vec<u8>>)> = entries
                .iter()
                .map(|(p, _, r)| (p.to_string(), r.clone()))
                .collect();
            assert_eq!(seen, want, "reads of {step} bytes");
        }
    }
}
