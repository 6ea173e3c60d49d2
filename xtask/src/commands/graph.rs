//! `cargo xtask graph`: its flags, turned into [`graph_cmd::Opts`].

use anyhow::Result;

use crate::core::context::Context;
use crate::ops::graph_cmd::{self, GraphFormat, Opts, View};

/// Options of `cargo xtask graph`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The diagram language. (Not `--format`: that global flag picks
    /// human or JSON output for every command, and one flag cannot take both
    /// sets of values.)
    /// Set by the global `--format mermaid|dot` (mermaid for the default `human`).
    #[arg(skip = GraphFormat::Mermaid)]
    pub graph_format: GraphFormat,
    /// `runtime`: services and the services they call (service-matrix.yaml);
    /// `charts`: charts and the charts they depend on.
    #[arg(long, value_enum, default_value = "runtime")]
    pub view: View,
    /// Regenerate every `<!-- graph:VIEW:start/end -->` block of README.md.
    #[arg(long, conflicts_with = "check")]
    pub write: bool,
    /// Fail (exit 1) when a diagram block of README.md is out of date.
    #[arg(long)]
    pub check: bool,
}

impl Args {
    fn opts(self) -> Result<Opts> {
        let args = self;
        Ok(Opts { graph_format: args.graph_format, view: args.view, write: args.write, check: args.check })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    graph_cmd::run(args.opts()?, ctx)
}
