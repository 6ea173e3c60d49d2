//! `cargo xtask explain`: its flags, turned into [`explain::Opts`].

use std::path::PathBuf;

use anyhow::Result;

use crate::core::context::Context;
use crate::ops::explain::{self, Opts};

/// Options of `cargo xtask explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The chart to explain: a service chart (as its umbrella deploys it), or the umbrella.
    #[arg(value_name = "CHART")]
    pub chart: String,
    /// Show only this key and what is below it, dotted as in --set (`image`, `resources.limits`).
    #[arg(value_name = "KEY")]
    pub key: Option<String>,
    /// The environment: the umbrella's values-<env>.yaml (dev, staging, prod).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// A value as helm's --set takes it, keys relative to the umbrella (catalogue.replicaCount=5); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// A values file over the environment file, as helm's -f; repeatable.
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The umbrella to explain the chart in, when more than one deploys it.
    #[arg(long, value_name = "NAME")]
    pub umbrella: Option<String>,
    /// Print the values that look secret instead of `(hidden)`.
    #[arg(long)]
    pub show_secrets: bool,
}

impl Args {
    fn opts(self) -> Result<Opts> {
        let args = self;
        Ok(Opts {
            chart: args.chart,
            key: args.key,
            env: args.env,
            sets: args.sets,
            files: args.files,
            umbrella: args.umbrella,
            show_secrets: args.show_secrets,
        })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    explain::run(args.opts()?, ctx)
}
