//! `cargo xtask`: the Robot-Shop chart monorepo's orchestrator.
//!
//! A flat dispatcher: parse flags, build one [`Context`], run the subcommand.
//! Each command lives in its own module with a `run` function; see the
//! README's map for where each concern lives.

mod affected;
mod cache;
mod config;
mod consistency;
mod context;
mod exit;
mod fsutil;
mod git;
mod graph;
mod helm;
mod helmignore;
mod kubeconform;
mod lint;
mod matrix;
mod model;
mod process;
mod stage;
mod tools;
mod yaml;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::context::{Context, Format};

/// Lint, render, validate, version and publish a monorepo of Helm charts.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about, propagate_version = true)]
struct Cli {
    /// The repository checkout to work on (default: this one).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// `human` for people (stderr), `json` for machines (stdout).
    #[arg(long, global = true, value_enum, default_value = "human")]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lint, render and validate every chart (or the selected ones).
    Lint(lint::Args),
    /// Find, check and install helm, kubeconform and the offline schemas.
    Tools(tools::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version on stdout with exit 0, usage errors with 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { exit::USAGE } else { exit::SUCCESS });
        }
    };
    process::install_interrupt_handler();
    match dispatch(cli) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(err) => {
            let code = exit::code_for(&err);
            if !err.is::<exit::ChecksFailed>() {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(code)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context::new(cli.root.as_deref(), cli.format)?;
    match cli.command {
        Command::Lint(args) => lint::run(args, &ctx),
        Command::Tools(args) => tools::run(args, &ctx),
    }
}
