//! `cargo xtask tools`: its flags, turned into [`tools::Opts`].

use anyhow::Result;

use crate::core::context::Context;
use crate::exec::tools::{self, Opts, Part};

/// `cargo xtask tools`: find (or install) the pinned tools and print
/// `name<TAB>version<TAB>path` per tool on stdout.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Resolve only these [default: helm, kubeconform, schemas and crds].
    #[arg(value_enum, value_name = "TOOL")]
    pub only: Vec<Part>,
    /// A Kubernetes version to prepare schemas for, X.Y.Z; repeatable
    /// [default: `kube-versions` in xtask.toml].
    #[arg(long = "kube-version", value_name = "X.Y.Z")]
    pub kube_versions: Vec<String>,
    /// Also find or build the CNCF distribution registry (tests, `mirror`).
    #[arg(long)]
    pub registry: bool,
    /// Also find or build chart-testing (`ct`), the helm-unittest plugin,
    /// yamllint and yamale (see `chart_testing.rs`).
    #[arg(long)]
    pub chart_testing: bool,
    /// Also find or build the control plane: kube-apiserver and etcd (see
    /// `cluster.rs`; the first build takes several CPU-minutes).
    #[arg(long)]
    pub cluster: bool,
    /// Also find or build cosign, which signs and verifies published charts.
    #[arg(long)]
    pub signing: bool,
}

impl Args {
    fn opts(self) -> Opts {
        Opts {
            only: self.only,
            kube_versions: self.kube_versions,
            registry: self.registry,
            chart_testing: self.chart_testing,
            cluster: self.cluster,
            signing: self.signing,
        }
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    tools::run(args.opts(), ctx)
}
