//! The bottom layer: helpers that know nothing of charts (files, YAML,
//! `.helmignore` patterns, exit codes). Imports nothing of the crate.

pub mod exit;
pub mod fs;
pub mod helmignore;
pub mod yaml;
