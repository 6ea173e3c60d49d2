//! `cargo xtask bump`: its flags, turned into [`bump::Opts`].

use anyhow::Result;

use crate::cli::SelectionFlags;
use crate::core::context::Context;
use crate::ops::bump::{self, Opts};
use crate::ops::package::version::Level;

/// Options of `cargo xtask bump`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub selection: SelectionFlags,
    /// Which part of the version to raise.
    #[arg(long, value_enum, default_value = "patch")]
    pub level: Level,
    /// Print what would change and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Args {
    fn opts(self) -> Result<Opts> {
        let args = self;
        Ok(Opts { selection: args.selection.into(), level: args.level, dry_run: args.dry_run })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    bump::run(args.opts()?, ctx)
}
