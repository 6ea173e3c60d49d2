//! `cargo xtask mirror`: its subcommands, turned into [`mirror::Action`].

use std::path::PathBuf;

use anyhow::Result;

use crate::core::context::Context;
use crate::ops::mirror;

/// Options of `cargo xtask mirror`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Start the registry in the background, push the charts, print the --mirror flag.
    Start {
        /// Loopback port to listen on; 0 picks a free one.
        #[arg(long, default_value_t = 5000)]
        port: u16,
        /// Folder whose chart subfolders are packaged and pushed [default: fixtures/bitnami-standins].
        #[arg(long, value_name = "DIR")]
        charts: Option<PathBuf>,
    },
    /// Stop the registry started by `mirror start` and delete its storage.
    Stop,
    /// Say whether the registry runs; print its --mirror flag if it does (exit 1 if not).
    Status,
    /// Serve the stand-ins from a fresh registry on a free port until stdin closes (for tests).
    ///
    /// Prints the --mirror flag on stdout, then waits. The registry lives
    /// exactly as long as this process, so a test that spawns it with a piped
    /// stdin never leaves a registry behind, even when it is killed.
    Serve,
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    let action = match args.action {
        Action::Start { port, charts } => mirror::Action::Start { port, charts },
        Action::Stop => mirror::Action::Stop,
        Action::Status => mirror::Action::Status,
        Action::Serve => mirror::Action::Serve,
    };
    mirror::run(action, ctx)
}
