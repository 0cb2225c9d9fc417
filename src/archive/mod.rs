//! The `.edeploy` and delta formats shared by the packer, the installer and the host.

pub mod delta;
