//! The `.edeploy` and delta formats and the repository layout, shared by the
//! installer (which unpacks a role's tree) and the host client (which
//! packs trees, and reads manifests to verify and upgrade a host).
//!
//! A `.edeploy` file is a role version's whole tree as a gzip'd tar, in
//! the form GNU `tar --xattrs --numeric-owner` writes: numeric owners,
//! modes with setuid, setgid and sticky bits, mtimes, symlinks, hard links
//! as link entries, character and block devices and fifos with their
//! numbers, and extended attributes as PAX `SCHILY.xattr.*` records.
//! Beside it, a manifest lists what the tree holds, file by file.
//!
//! - [`layout`]: where archives, trees and manifests sit on a server, a
//!   medium and a host, and every URL to them;
//! - [`write`]: the archive writer;
//! - [`unpack`]: the verified streaming unpack, through a staging
//!   directory, with [`inflate`] (the two-thread inflate pipeline);
//! - [`pax`]: PAX extended header records, written and read;
//! - [`xattr`]: extended attributes, read and set;
//! - [`beneath`]: the check that no parent of a written path is a
//!   symlink;
//! - [`place`]: putting one entry in place (owner, mode, mtime, temporary
//!   names, syncing), for every writer of a tree;
//! - [`manifest`]: manifests, built, written and read;
//! - [`check`]: a tree checked entry by entry against its (signed)
//!   manifest, while it is unpacked or once it is copied;
//! - [`delta`]: deltas between two versions of a role, written by the
//!   packer and read by the host's upgrade.

pub mod beneath;
pub mod check;
pub mod delta;
pub mod inflate;
pub mod layout;
pub mod manifest;
pub mod pax;
pub mod place;
pub mod unpack;
pub mod write;
pub mod xattr;

/// A reader handing out at most `.1` bytes per read.
#[cfg(test)]
pub(crate) struct Trickle<'a>(pub &'a [u8], pub usize);

#[cfg(test)]
impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(buf.len()).min(self.1);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}
