//! `cargo xtask gitops`: its flags, turned into [`gitops::Opts`].

use anyhow::Result;

use crate::core::context::Context;
use crate::ops::gitops::{self, Opts};

/// Options of `cargo xtask gitops`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Write nothing; fail (exit 1) when argocd/ is not what would be
    /// generated, and validate the Argo CD objects with kubeconform.
    #[arg(long)]
    pub check: bool,
    /// With --check: compare only, skip the kubeconform validation.
    #[arg(long, requires = "check")]
    pub no_validate: bool,
}

impl Args {
    fn opts(self) -> Result<Opts> {
        let args = self;
        Ok(Opts { check: args.check, no_validate: args.no_validate })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    gitops::run(args.opts()?, ctx)
}
