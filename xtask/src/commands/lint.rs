//! `cargo xtask lint`: its flags, turned into [`lint::Opts`].

use anyhow::Result;

use crate::cli::{EnvFlags, MirrorFlags, RemoteCacheFlags, SelectionFlags};
use crate::core::context::Context;
use crate::ops::ct::Ct;
use crate::ops::lint::profile::{Plain, Profile};
use crate::ops::lint::{self, report, Opts};

/// Options of `cargo xtask lint`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub selection: SelectionFlags,
    #[command(flatten)]
    pub envs: EnvFlags,
    /// Parallel batches (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Kubernetes version to render and validate for, X.Y.Z (repeatable; default from xtask.toml).
    #[arg(long = "kube-version", value_name = "X.Y.Z")]
    pub kube_versions: Vec<String>,
    #[command(flatten)]
    pub mirrors: MirrorFlags,
    #[command(flatten)]
    pub remote: RemoteCacheFlags,
    /// Stop starting new checks after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Ignore stored results (results are still stored).
    #[arg(long)]
    pub no_cache: bool,
    /// Check every chart on its own: one set of tool processes per chart (the
    /// reference the batched run is tested against; slow).
    #[arg(long)]
    pub no_batch: bool,
    /// Print the plan (charts, order, batches possible) and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// chart-testing configuration to follow [default: ct.yaml at the root, if there is one].
    #[arg(long = "config", value_name = "FILE")]
    pub ct_config: Option<std::path::PathBuf>,
}

impl Args {
    fn opts(&self) -> Result<Opts> {
        let args = self.clone();
        Ok(Opts {
            selection: args.selection.changes_only("lint")?,
            envs: args.envs.envs,
            jobs: args.jobs,
            kube_versions: args.kube_versions,
            mirrors: args.mirrors.mirrors,
            fail_fast: args.fail_fast,
            no_cache: args.no_cache,
            no_batch: args.no_batch,
            remote: args.remote.into(),
        })
    }
}

/// A repository set up for chart-testing (a `ct.yaml`, or `--config`) is
/// linted with chart-testing's profile, as `ct lint` would lint it; any
/// other with the plain one.
pub fn run(args: Args, ctx: &Context) -> Result<()> {
    let opts = args.opts()?;
    let ct = Ct::load(ctx, args.ct_config.as_deref())?;
    let profile: &dyn Profile = match &ct {
        Some(ct) => ct,
        None => &Plain,
    };
    let plan = lint::plan(&opts, profile, ctx)?;
    if args.dry_run {
        lint::print_plan(&plan);
        return Ok(());
    }
    let report = lint::run(&opts, profile, plan)?;
    report::conclude(&report, ctx)
}
