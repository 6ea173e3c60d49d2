//! `cargo xtask`: the Robot-Shop chart monorepo's orchestrator.
//!
//! A flat dispatcher: parse flags, build one [`Context`], run the subcommand,
//! turn the outcome into an exit code. Below it the crate is five layers,
//! each a folder, importing one way (`xtask/tests/tidy.rs` holds it):
//! `commands` (one file per subcommand: flags -> options -> work -> print;
//! shared flag groups in `cli.rs`) -> `ops` (the work, and the engines the
//! commands share) -> `exec` (tool processes) -> `core` (the model) ->
//! `util` (files, YAML, exit codes).

mod cli;
mod commands;
mod core;
#[cfg(test)]
mod differential;
mod exec;
mod ops;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{
    bench, bump, cache, ci_matrix, cluster, deps, diff, explain, gitops, graph, lint, mirror, new_service, package,
    schema, tools, verify,
};
use crate::core::context::{Context, Format};
use crate::exec::process;
use crate::util::exit;

/// Lint, render, validate, version and publish a monorepo of Helm charts.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about, propagate_version = true)]
struct Cli {
    /// The repository checkout to work on (default: this one).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// `human` for people (stderr), `json` for machines (stdout); `graph` prints `mermaid` or `dot`, `diff` also `markdown`.
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
    /// Package charts (each with its own version), index them, publish and tag them.
    Package(package::Args),
    /// Raise the versions of changed charts and of every chart that depends on them.
    Bump(bump::Args),
    /// Serve stand-ins for the Bitnami charts from a registry on loopback.
    Mirror(mirror::Args),
    /// Lock remote dependencies: Chart.lock in Helm's format, the archives' digests in Chart.sum.
    Deps(deps::Args),
    /// Run a throwaway control plane (etcd, kube-apiserver) on loopback; print its kubeconfig.
    Cluster(cluster::Args),
    /// Measure lint against the one-chart-at-a-time baseline on synthetic monorepos.
    Bench(bench::Args),
    /// Print the charts to check as a GitHub Actions matrix (JSON on stdout).
    CiMatrix(ci_matrix::Args),
    /// Generate the Argo CD app-of-apps in argocd/ from the service matrix (--check: drift check).
    Gitops(gitops::Args),
    /// Add a service: its chart, its matrix entry, the umbrella and the NetworkPolicy edges.
    NewService(new_service::Args),
    /// Draw the runtime or chart graph (Mermaid or DOT); keep README.md's diagram up to date.
    Graph(graph::Args),
    /// Show a chart's merged values, each with the layer that set it and the ones it overrode.
    Explain(explain::Args),
    /// Write every service chart's values.schema.json from the library's value contract (--check: drift check).
    Schema(schema::Args),
    /// Render the affected charts at the base and in the working tree; print what changes.
    Diff(diff::Args),
    /// Install the charts into a throwaway API server: admission, Pod Security, duplicates, upgrades.
    Verify(verify::Args),
    /// Keys of the remote verdict cache (keygen).
    Cache(cache::Args),
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

/// The `--format` values each command understands.
fn formats_of(command: &Command) -> &'static [Format] {
    match command {
        Command::Graph(_) => &[Format::Human, Format::Mermaid, Format::Dot],
        Command::Diff(_) => &[Format::Human, Format::Json, Format::Markdown],
        _ => &[Format::Human, Format::Json],
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let allowed = formats_of(&cli.command);
    if !allowed.contains(&cli.format) {
        let names: Vec<&str> = allowed.iter().map(|f| f.name()).collect();
        return exit::usage(format!("--format {}: this command prints {}", cli.format.name(), names.join(", ")));
    }
    let ctx = Context::new(cli.root.as_deref(), cli.format)?;
    match cli.command {
        Command::Lint(args) => lint::run(args, &ctx),
        Command::Tools(args) => tools::run(args, &ctx),
        Command::Package(args) => package::run(args, &ctx),
        Command::Bump(args) => bump::run(args, &ctx),
        Command::Mirror(args) => mirror::run(args, &ctx),
        Command::Deps(args) => deps::run(args, &ctx),
        Command::Cluster(args) => cluster::run(args, &ctx),
        Command::Bench(args) => bench::run(args, &ctx),
        Command::CiMatrix(args) => ci_matrix::run(args, &ctx),
        Command::Gitops(args) => gitops::run(args, &ctx),
        Command::NewService(args) => new_service::run(args, &ctx),
        Command::Graph(args) => graph::run(args, &ctx),
        Command::Explain(args) => explain::run(args, &ctx),
        Command::Diff(args) => diff::run(args, &ctx),
        Command::Schema(args) => schema::run(args, &ctx),
        Command::Verify(args) => verify::run(args, &ctx),
        Command::Cache(args) => cache::run(args, &ctx),
    }
}
