//! eDeploy core library.
//!
//! The data flows through the modules in this order:
//! hardware list ([`hw`]) → match against a profile's specs ([`matcher`]) →
//! allocate settings from the profile's CMDB ([`cmdb`]) → pick the profile by
//! priority and quota ([`state`]) → answer the node ([`decide`]).
//! All files operators bring from the original eDeploy are read with the
//! non-evaluating reader in [`literal`] and written back with [`persist`].

pub mod admin;
pub mod cgi;
pub mod cmdb;
pub mod config;
pub mod configure;
pub mod decide;
pub mod detect;
pub mod exec;
pub mod health;
pub mod host;
pub mod hw;
pub mod init;
pub mod literal;
pub mod matcher;
pub mod persist;
pub mod state;
pub mod status;
