//! `cargo xtask deps`: its subcommands, turned into [`deps::Opts`].

use anyhow::Result;

use crate::cli::MirrorFlags;
use crate::core::context::Context;
use crate::ops::deps::{self, Opts};

/// Options of `cargo xtask deps`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Resolve every remote dependency through the mirrors and write Chart.lock (Helm's format)
    /// and Chart.sum (the archives' sha256); files whose content would not change are left as they are.
    Update {
        /// Only this chart (repeatable) [default: every chart with remote dependencies].
        #[arg(long = "chart", value_name = "NAME")]
        charts: Vec<String>,
        #[command(flatten)]
        mirrors: MirrorFlags,
    },
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    match args.action {
        Action::Update { charts, mirrors } => deps::run(ctx, &Opts { charts, mirrors: mirrors.mirrors }),
    }
}
