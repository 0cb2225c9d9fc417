//! The host client: what `edeploy` does on an installed machine.
//!
//! A machine runs one version of its role's file tree and moves between
//! versions (SPEC §11). The pieces, in the order an upgrade uses them:
//!
//! - [`conf`]: `/var/lib/edeploy/conf`, what the installer recorded;
//! - [`meta`]: an upgrade path's `exclude`, `add_only`, `pre`, `post`, and
//!   the steps both transports share (scripts, recording the version);
//! - [`exclude`]: rsync's exclude rules, for the work done without rsync;
//! - [`rsync`] and [`itemize`]: the original transport, through the real
//!   `rsync` client, and the reading of its output;
//! - [`crate::archive::manifest`]: what a version's tree holds, hashed in
//!   parallel;
//! - [`verify`]: the host against its version, offline or via rsync;
//! - [`pack`]: the operator's side: `.edeploy` archive, manifest, deltas;
//! - [`signed`]: their signatures, written by the operator and checked
//!   by the host against the keys it trusts;
//! - [`upgrade`] and [`http`]: upgrades over plain HTTP from one static
//!   delta archive ([`crate::archive::delta`]), applied under a journal,
//!   with rollback.
//!
//! Everything that touches files takes the root to work in (`/` on a
//! host; tests pass a temporary directory); every command runs through
//! the [`crate::exec::Exec`] seam.

pub mod conf;
pub mod exclude;
pub mod http;
pub mod itemize;
pub mod meta;
pub mod pack;
pub mod rsync;
pub mod signed;
pub mod upgrade;
pub mod verify;
