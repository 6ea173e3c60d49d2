//! The two reference points the xtask is measured against, run inside a
//! child process of the benchmark (hidden `bench --scenario ...`) so that its
//! wall time and peak memory are measured like the xtask's own runs.
//!
//! - baseline: one chart at a time, the way chart-testing-style CI works:
//!   per chart `helm dependency build`, `helm lint --strict`, and per
//!   Kubernetes version `helm template | kubeconform -strict`; an umbrella
//!   with `values-<env>.yaml` files is linted and rendered once per
//!   environment, a library chart is linted only (it cannot be rendered).
//!   It does the same checks as `cargo xtask lint`: both Kubernetes versions,
//!   the same offline schemas, the same `--kube-version` for lint.
//! - floor: the least any tool could start to do that work: one `helm lint`
//!   over every chart, then per Kubernetes version one `helm template` of the
//!   umbrella (which renders every service) and one kubeconform over it: five
//!   processes for two Kubernetes versions. It runs on the baseline's copy
//!   after the baseline, whose `helm dependency build` left every chart's
//!   `charts/` filled.
//!
//! Both start helm and kubeconform exactly as the xtask does (through
//! [`crate::exec::helm`], with the same `GOGC`), so the comparison measures how
//! the work is planned, not how the tools are tuned.

use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::core::context::Context;
use crate::core::graph::ChartGraph;
use crate::core::model::{ChartKind, Repo};
use crate::exec::process;
use crate::exec::tools::Toolset;

/// What the child prints on stdout for the parent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Tool processes started.
    pub processes: usize,
    /// Charts checked.
    pub charts: usize,
    /// One line per failed check; the benchmark refuses to compare against a
    /// reference that did not pass.
    pub failures: Vec<String>,
}

/// Release name of every render, as `cargo xtask lint` uses.
fn release(ctx: &Context) -> &str {
    &ctx.config.release_name
}

/// The chart-testing-style run over `ctx.root`.
pub fn baseline(ctx: &Context, tools: &Toolset, kube_versions: &[String]) -> Result<Outcome> {
    let repo = Repo::discover(&ctx.root, &ctx.config)?;
    let graph = ChartGraph::build(&repo);
    let newest = kube_versions.first().map(String::as_str).unwrap_or("1.37.0");
    let helm = &tools.helm.path;
    let sh = xshell::Shell::new()?;
    let mut outcome = Outcome::default();
    for index in graph.topological() {
        let chart = &repo.charts[index];
        outcome.charts += 1;
        let dir = &chart.dir;
        let built = process::run(
            xshell::cmd!(sh, "{helm} dependency build {dir}").env("GOGC", crate::exec::helm::go_gc()),
            None,
        )?;
        if !built.success {
            outcome.failures.push(format!("{}: dependency build: {}", chart.name, built.combined()));
            continue;
        }
        for env in &chart.environments {
            let values: Vec<PathBuf> = env.values_files.iter().map(|f| ctx.root.join(f)).collect();
            let (_, verdicts) = crate::exec::helm::lint(&tools.helm, std::slice::from_ref(dir), &values, newest, true)?;
            if verdicts.values().any(|v| !v.ok) {
                outcome.failures.push(format!("{} [{}]: lint failed", chart.name, env.name));
            }
            if chart.kind == ChartKind::Library {
                continue;
            }
            for kube in kube_versions {
                let rendered = crate::exec::helm::template(&tools.helm, release(ctx), dir, &values, &[], kube)?;
                if !rendered.success {
                    outcome.failures.push(format!(
                        "{} [{}] {kube}: render: {}",
                        chart.name,
                        env.name,
                        rendered.stderr.trim()
                    ));
                    continue;
                }
                if !validate(tools, kube, &rendered.stdout)? {
                    outcome.failures.push(format!("{} [{}] {kube}: kubeconform failed", chart.name, env.name));
                }
            }
        }
    }
    outcome.processes = process::started();
    Ok(outcome)
}

/// The floor over `ctx.root` (dependencies already built in place).
pub fn floor(ctx: &Context, tools: &Toolset, kube_versions: &[String]) -> Result<Outcome> {
    let repo = Repo::discover(&ctx.root, &ctx.config)?;
    let newest = kube_versions.first().map(String::as_str).unwrap_or("1.37.0");
    let mut outcome = Outcome { charts: repo.charts.len(), ..Outcome::default() };
    let paths: Vec<PathBuf> = repo.charts.iter().map(|c| c.dir.clone()).collect();
    let (_, verdicts) = crate::exec::helm::lint(&tools.helm, &paths, &[], newest, true)?;
    for (path, verdict) in &verdicts {
        if !verdict.ok {
            outcome.failures.push(format!("{}: lint failed: {}", path.display(), verdict.message));
        }
    }
    let umbrellas: Vec<_> = repo.charts.iter().filter(|c| c.kind == ChartKind::Umbrella).collect();
    let [umbrella] = umbrellas[..] else {
        anyhow::bail!("the floor needs exactly one umbrella chart, found {}", umbrellas.len());
    };
    for kube in kube_versions {
        let rendered = crate::exec::helm::template(&tools.helm, release(ctx), &umbrella.dir, &[], &[], kube)?;
        if !rendered.success {
            outcome.failures.push(format!("{} {kube}: render: {}", umbrella.name, rendered.stderr.trim()));
            continue;
        }
        if !validate(tools, kube, &rendered.stdout)? {
            outcome.failures.push(format!("{} {kube}: kubeconform failed", umbrella.name));
        }
    }
    outcome.processes = process::started();
    Ok(outcome)
}

/// `... | kubeconform -strict -summary -kubernetes-version K -`: the render
/// is handed over on stdin, like a shell pipe (the render is complete before
/// kubeconform starts, which costs a pipe nothing: kubeconform reads all of
/// stdin before validating).
fn validate(tools: &Toolset, kube: &str, manifests: &str) -> Result<bool> {
    let sh = xshell::Shell::new()?;
    let kc = &tools.kubeconform.path;
    let locations = crate::exec::kubeconform::schema_location_args(tools);
    let finished = process::run(
        xshell::cmd!(sh, "{kc} -strict -summary -kubernetes-version {kube} {locations...} -")
            .env("GOGC", crate::exec::helm::go_gc()),
        Some(manifests.as_bytes()),
    )?;
    Ok(finished.success)
}
