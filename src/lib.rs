//! eDeploy core library.
//!
//! The data flows through the modules in this order:
//! hardware list ([`hw`]) → match against a profile's specs ([`matcher`]) →
//! allocate settings from the profile's CMDB ([`cmdb`]) → pick the profile by
//! priority and quota ([`state`]) → answer the node ([`provision`]).
//! All files operators bring from the original eDeploy are read with the
//! non-evaluating reader in [`literal`] and written back with [`persist`].
//!
//! Two kinds of module (docs/architecture.md; `tests/layout.rs` holds the
//! rule): one folder per program, which no other module imports
//! ([`upload`]: `upload.cgi` and `upload-health.cgi`; [`status`]:
//! `status.cgi`; [`init`]: the installer; [`host`]: `edeploy` on installed
//! hosts; [`admin`]: `edeploy-admin`), and the vocabularies they share,
//! which never import a program.

// Programs.
pub mod admin;
pub mod host;
pub mod init;
pub mod status;
pub mod upload;

// Shared vocabularies.
pub mod archive;
pub mod cgi;
pub mod cli;
pub mod clock;
pub mod cmdb;
pub mod config;
pub mod configure;
pub mod db;
pub mod detect;
pub mod exec;
pub mod health;
pub mod hw;
pub mod literal;
pub mod matcher;
pub mod metrics;
pub mod net;
pub mod persist;
pub mod protocol;
pub mod provision;
pub mod state;
pub mod trust;
