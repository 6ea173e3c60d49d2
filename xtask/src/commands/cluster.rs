//! `cargo xtask cluster`: its subcommands, turned into [`cluster::Opts`].

use anyhow::Result;

use crate::core::context::Context;
use crate::ops::cluster::{self, Opts};

/// Options of `cargo xtask cluster`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: ActionArgs,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum ActionArgs {
    /// Start etcd and kube-apiserver in the background; print the kubeconfig path.
    Start,
    /// Stop the control plane of this work folder and remove its files.
    Stop,
    /// Say whether the control plane runs and answers /readyz (exit 1 if not).
    Status,
    /// Run the control plane in the foreground until stdin closes or Ctrl-C (for tests).
    Serve {
        /// Ignore stdin; stop only on SIGTERM (what `start` runs).
        #[arg(long, hide = true)]
        detached: bool,
    },
}

impl From<Args> for Opts {
    fn from(args: Args) -> Opts {
        match args.action {
            ActionArgs::Start => Opts::Start,
            ActionArgs::Stop => Opts::Stop,
            ActionArgs::Status => Opts::Status,
            ActionArgs::Serve { detached } => Opts::Serve { detached },
        }
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    cluster::run(args.into(), ctx)
}
