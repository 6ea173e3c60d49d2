//! Checks that the service matrix and the charts agree.
//!
//! THIS FILE IS BEING WRITTEN: the matrix-versus-chart checks (ports,
//! dependencies, init containers, NetworkPolicy edges, hosts in environment
//! variables) arrive with the CI/GitOps work.

use crate::context::Context;
use crate::matrix::ServiceMatrix;
use crate::model::Repo;

/// Every disagreement, each naming the service, the file and both values.
pub fn check(_ctx: &Context, _repo: &Repo, _matrix: &ServiceMatrix, _file: &str) -> Vec<String> {
    Vec::new()
}
