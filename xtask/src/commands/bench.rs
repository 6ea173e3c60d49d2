//! `cargo xtask bench`: its flags, turned into [`bench::Opts`].

use anyhow::Result;

use crate::core::context::Context;
use crate::ops::bench::{self, Opts, Reference};

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Number of service charts of a synthetic repository (repeatable) [default: 10, 50, 200].
    #[arg(long = "charts", value_name = "N")]
    pub charts: Vec<usize>,
    /// Keep the synthetic repositories and work folders (their place is printed).
    #[arg(long)]
    pub keep: bool,
    /// Skip the one-chart-at-a-time baseline (minutes at N=200); no speed-ups are shown then.
    #[arg(long)]
    pub no_baseline: bool,
    /// Only write the synthetic repository of the first --charts N (default 10) to DIR, measure nothing.
    #[arg(long, value_name = "DIR")]
    pub generate: Option<std::path::PathBuf>,
    /// Internal: run one reference scenario in this process over --root and
    /// print its outcome as JSON (the benchmark measures it from outside).
    #[arg(long, value_enum, hide = true)]
    pub scenario: Option<Reference>,
    /// Compare with chart-testing instead: `ct lint --all` against
    /// `cargo xtask lint` on the synthetic monorepo, verdicts equal, wall
    /// times and ratio [default size: 50 services].
    #[arg(long)]
    pub vs_ct: bool,
    /// Measure `cargo xtask verify` against its floor, one `helm install` of
    /// every service in one release into a running control plane [default
    /// sizes: 10, 25, 50 services].
    #[arg(long, conflicts_with = "vs_ct")]
    pub verify: bool,
    /// Measure how fast hostile files (100,000 nested brackets in the matrix
    /// and a values file) are refused, against a clean lint.
    #[arg(long)]
    pub hostile: bool,
    /// Also draw wall time against the number of charts, one line per
    /// scenario, as an SVG to FILE (docs/performance.svg in the docs).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<std::path::PathBuf>,
}

impl Args {
    fn opts(self) -> Result<Opts> {
        let args = self;
        Ok(Opts {
            charts: args.charts,
            keep: args.keep,
            no_baseline: args.no_baseline,
            generate: args.generate,
            scenario: args.scenario,
            vs_ct: args.vs_ct,
            verify: args.verify,
            hostile: args.hostile,
            plot: args.plot,
        })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    bench::run(args.opts()?, ctx)
}
