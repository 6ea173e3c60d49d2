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
}

impl Args {
    fn opts(self) -> Result<Opts> {
        let args = self;
        Ok(Opts { selection: args.selection.changes_only("ci-matrix")? })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    ci_matrix::run(args.opts()?, ctx)
}
