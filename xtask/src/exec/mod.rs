//! Running tools: every child process (helm, kubeconform, git, the
//! registry, the control plane) and the pinned tools themselves. Imports
//! `core` and `util`.

pub mod cluster;
pub mod cosign;
pub mod git;
pub mod helm;
pub mod kubeconform;
pub mod oci;
pub mod process;
pub mod registry;
pub mod tools;
