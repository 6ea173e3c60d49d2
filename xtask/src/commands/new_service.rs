//! `cargo xtask new-service`: its flags, turned into [`new_service::Opts`].

use anyhow::Result;

use crate::core::context::Context;
use crate::ops::new_service::{self, Opts, Workload};

/// Options of `cargo xtask new-service`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The service name: a DNS-1123 label (lowercase letters, digits, `-`), at most 50 characters.
    pub name: String,
    /// The port the service listens on.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Services it calls, comma-separated; each must be in the service matrix.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub deps: Vec<String>,
    /// The workload: a Deployment, or a StatefulSet with a volume per pod.
    #[arg(long = "type", value_enum, default_value = "deployment")]
    pub workload: Workload,
    /// The language, which picks the default resources (nodejs, java, python, nginx, php, go).
    #[arg(long, default_value = "nodejs")]
    pub language: String,
    /// The image, REPOSITORY:TAG (default: robotshop/rs-NAME:0.1.0; the tag must not be `latest`).
    #[arg(long, value_name = "REPOSITORY:TAG")]
    pub image: Option<String>,
    /// The HTTP path of the liveness and readiness probes.
    #[arg(long, default_value = "/health", value_name = "PATH")]
    pub health: String,
    /// Print the files that would be written and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Args {
    fn opts(self) -> Result<Opts> {
        let args = self;
        Ok(Opts {
            name: args.name,
            port: args.port,
            deps: args.deps,
            workload: args.workload,
            language: args.language,
            image: args.image,
            health: args.health,
            dry_run: args.dry_run,
        })
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    new_service::run(args.opts()?, ctx)
}
