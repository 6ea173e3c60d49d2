//! `cargo xtask schema`: its flags, turned into [`schema::Opts`].

use anyhow::Result;

use crate::core::context::Context;
use crate::ops::schema::{self, Opts};

/// Options of `cargo xtask schema`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Write nothing; fail (exit 1) when a copy is not what would be generated.
    #[arg(long)]
    pub check: bool,
}

impl Args {
    fn opts(self) -> Result<Opts> {
        let args = self;
        Ok(Opts { check: args.check })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    schema::run(args.opts()?, ctx)
}
