//! `cargo xtask diff`: its flags, turned into [`diff::Opts`].

use anyhow::Result;

use crate::cli::{EnvFlags, MirrorFlags, SelectionFlags};
use crate::core::context::Context;
use crate::ops::diff::{self, Opts};

/// Options of `cargo xtask diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub selection: SelectionFlags,
    #[command(flatten)]
    pub envs: EnvFlags,
    #[command(flatten)]
    pub mirrors: MirrorFlags,
    /// The Kubernetes version to render for, X.Y.Z (default: the first in xtask.toml).
    #[arg(long = "kube-version", value_name = "X.Y.Z")]
    pub kube_version: Option<String>,
}

impl Args {
    fn opts(self) -> Result<Opts> {
        let args = self;
        Ok(Opts {
            selection: args.selection.into(),
            envs: args.envs.envs,
            mirrors: args.mirrors.mirrors,
            kube_version: args.kube_version,
        })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    diff::run(args.opts()?, ctx)
}
