//! The work of each command, and the engines they share (staging, the
//! cache, the lint engine, packaging). Imports `exec`, `core` and `util`.

pub mod affected;
pub mod bench;
pub mod bump;
pub mod cache;
pub mod ci_matrix;
pub mod cluster;
pub mod consistency;
pub mod ct;
pub mod deps;
pub mod diff;
pub mod durations;
pub mod explain;
pub mod gitops;
pub mod graph_cmd;
pub mod lint;
pub mod mirror;
pub mod new_service;
pub mod package;
pub mod published;
pub mod remote_cache;
pub mod schema;
pub mod seeds;
pub mod stage;
pub mod trust;
pub mod verify;
