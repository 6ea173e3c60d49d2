//! `cargo xtask ci-matrix`: its flags, turned into [`ci_matrix::Opts`].

use anyhow::Result;

use crate::cli::SelectionFlags;
use crate::core::context::Context;
use crate::ops::ci_matrix::{self, Opts};

/// Options of `cargo xtask ci-matrix`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub selection: SelectionFlags,
    /// Group the charts into at most N jobs, balanced by each chart's last
    /// measured duration (`{"include": [{"job", "name", "charts", "estimate_ms"}]}`)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_jobs: Option<u16>,
}

impl Args {
    fn opts(self) -> Result<Opts> {
        let args = self;
        Ok(Opts { selection: args.selection.changes_only("ci-matrix")?, max_jobs: args.max_jobs.map(usize::from) })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    ci_matrix::run(args.opts()?, ctx)
}
