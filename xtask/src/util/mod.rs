//! The bottom layer: helpers that know nothing of charts (files, YAML and
//! its comment-keeping editor, `.helmignore` patterns, dates, exit codes, Ed25519 signatures, OpenPGP key fingerprints). Imports nothing of the crate.

pub mod exit;
pub mod fs;
pub mod helmignore;
pub mod openpgp;
pub mod signing;
pub mod time;
pub mod yaml;
pub mod yaml_edit;
