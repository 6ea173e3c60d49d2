//! `cargo xtask verify`: its flags, turned into [`verify::Opts`].

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{EnvFlags, MirrorFlags, RemoteCacheFlags, SelectionFlags};
use crate::core::context::Context;
use crate::ops::lint::report;
use crate::ops::verify::{self, Opts};
use crate::util::exit;

/// Options of `cargo xtask verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub selection: SelectionFlags,
    #[command(flatten)]
    pub envs: EnvFlags,
    #[command(flatten)]
    pub mirrors: MirrorFlags,
    #[command(flatten)]
    pub remote: RemoteCacheFlags,
    /// Install each chart as it was at REF first (the merge base with HEAD), then upgrade to
    /// the working tree and roll back.
    #[arg(long, value_name = "REF")]
    pub upgrade_from: Option<String>,
    /// Check against this cluster instead of a throwaway control plane: server-side dry-run
    /// only, nothing is written to it.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Ignore stored verdicts (verdicts are still stored).
    #[arg(long)]
    pub no_cache: bool,
    /// How many charts are installed at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}

impl Args {
    fn opts(self) -> Result<Opts> {
        if let (Some(_), Some(_)) = (&self.upgrade_from, &self.kubeconfig) {
            return exit::usage("--upgrade-from installs and upgrades, which --kubeconfig (dry-run only) never does");
        }
        Ok(Opts {
            selection: self.selection.changes_only("verify")?,
            envs: self.envs.envs,
            mirrors: self.mirrors.mirrors,
            upgrade_from: self.upgrade_from,
            kubeconfig: self.kubeconfig,
            no_cache: self.no_cache,
            jobs: self.jobs,
            remote: self.remote.into(),
        })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    let opts = args.opts()?;
    let report = verify::run(&opts, ctx)?;
    report::conclude(&report, ctx)
}
