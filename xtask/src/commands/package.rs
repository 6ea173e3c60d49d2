//! `cargo xtask package`: its flags, turned into [`package::Opts`].

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{MirrorFlags, SelectionFlags};
use crate::core::context::Context;
use crate::ops::package::{self, Opts};

/// Options of `cargo xtask package`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub selection: SelectionFlags,
    /// Where the archives and index.yaml go (default: target/xtask/packages).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Push the archives to this OCI registry: oci://HOST/PATH.
    #[arg(long, value_name = "oci://HOST/PATH")]
    pub publish: Option<String>,
    /// Speak plain HTTP to the registry (a local one on loopback).
    #[arg(long, requires = "publish")]
    pub plain_http: bool,
    /// Create a git tag `<chart>-<version>` at HEAD for each packaged chart.
    #[arg(long)]
    pub tag: bool,
    #[command(flatten)]
    pub mirrors: MirrorFlags,
    /// Print the plan (charts, versions, order) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Args {
    fn opts(self) -> Result<Opts> {
        let args = self;
        Ok(Opts {
            selection: args.selection.into(),
            out: args.out,
            publish: args.publish,
            plain_http: args.plain_http,
            tag: args.tag,
            mirrors: args.mirrors.mirrors,
            dry_run: args.dry_run,
        })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    package::run(args.opts()?, ctx)
}
