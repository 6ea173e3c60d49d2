//! One file per subcommand: its clap flags, turned into the options of its
//! work in `ops/` (or, for `tools`, `exec/`), run, and printed. Commands
//! never import each other; what two of them share lives below.

pub mod bench;
pub mod bump;
pub mod cache;
pub mod ci_matrix;
pub mod cluster;
pub mod deps;
pub mod diff;
pub mod explain;
pub mod gitops;
pub mod graph;
pub mod lint;
pub mod mirror;
pub mod new_service;
pub mod package;
pub mod schema;
pub mod tools;
pub mod verify;
