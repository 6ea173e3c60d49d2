//! Rendering one side of a diff (the base worktree or the working tree):
//! stage each chart with its dependencies under that side's own work
//! folder, then `helm template` it once per environment.
//!
//! Both sides use the same helm, release name, Kubernetes version and
//! mirrors, so that only the repository's content differs. A chart or
//! environment that does not exist on a side is [`Rendered::Missing`]
//! (added or removed by the change); one that fails to render is
//! [`Rendered::Failed`] with helm's message, and the rest still render.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::semantic::{self, Object};
use crate::core::context::Context;
use crate::core::graph::ChartGraph;
use crate::core::model::{ChartKind, Repo, DEFAULT_ENV};
use crate::exec::tools::Tool;
use crate::ops::stage::Stager;

/// The repository at one commit, ready to render.
pub struct Side {
    /// `base` or `working tree`, for messages.
    pub label: &'static str,
    /// The side's context: its root, and a work folder of its own.
    pub ctx: Context,
    pub repo: Repo,
    pub graph: ChartGraph,
}

impl Side {
    pub fn new(label: &'static str, ctx: Context) -> Result<Side> {
        let repo = Repo::discover(&ctx.root, &ctx.config)?;
        let graph = ChartGraph::build(&repo);
        Ok(Side { label, ctx, repo, graph })
    }

    /// Renderable charts (not libraries) by name.
    pub fn has_chart(&self, name: &str) -> bool {
        self.repo.chart(name).is_some_and(|c| c.kind != ChartKind::Library)
    }

    /// The environments of a chart on this side, after the `--env` filter:
    /// charts without values-<env>.yaml files always render once, as
    /// `default`, like lint does.
    pub fn environments(&self, name: &str, filter: &[String]) -> Vec<String> {
        let Some(chart) = self.repo.chart(name) else { return Vec::new() };
        chart
            .environments
            .iter()
            .filter(|e| filter.is_empty() || e.name == DEFAULT_ENV || filter.contains(&e.name))
            .map(|e| e.name.clone())
            .collect()
    }
}

/// The render of one chart in one environment on one side.
#[derive(Debug, Clone)]
pub enum Rendered {
    Objects(Vec<Object>),
    Missing,
    Failed(String),
}

/// Settings shared by both sides.
pub struct Settings<'a> {
    pub helm: &'a Tool,
    pub mirrors: BTreeMap<String, String>,
    pub kube_version: String,
}

/// Renders `charts` in each of `envs[chart]` on `side`.
pub fn render_side(
    side: &Side,
    settings: &Settings,
    charts: &[String],
    envs: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<(String, String), Rendered> {
    let mut out = BTreeMap::new();
    crate::util::fs::ignore_folder(&side.ctx.work_dir).ok();
    let stager = Stager::new(&side.ctx, settings.helm, settings.mirrors.clone());
    let mut staged: BTreeMap<usize, Result<(), String>> = BTreeMap::new();
    for name in charts {
        let wanted = envs.get(name).cloned().unwrap_or_default();
        let Some(index) = side.repo.index_of(name).filter(|_| side.has_chart(name)) else {
            for env in wanted {
                out.insert((name.clone(), env), Rendered::Missing);
            }
            continue;
        };
        let chart = &side.repo.charts[index];
        let ready = stage_with_dependencies(side, &stager, index, &mut staged);
        let available: BTreeSet<String> = chart.environments.iter().map(|e| e.name.clone()).collect();
        for env in wanted {
            let rendered = if !available.contains(&env) {
                Rendered::Missing
            } else if let Err(message) = &ready {
                Rendered::Failed(message.clone())
            } else {
                let files = chart
                    .environments
                    .iter()
                    .find(|e| e.name == env)
                    .map(|e| e.values_files.iter().map(|f| side.ctx.root.join(f)).collect::<Vec<_>>())
                    .unwrap_or_default();
                render_one(side, settings, &stager, index, &files)
            };
            out.insert((name.clone(), env), rendered);
        }
    }
    out
}

/// Stages a chart after everything it depends on (each chart once per side).
fn stage_with_dependencies(
    side: &Side,
    stager: &Stager,
    index: usize,
    staged: &mut BTreeMap<usize, Result<(), String>>,
) -> Result<(), String> {
    let needed = side.graph.with_dependencies(&BTreeSet::from([index]));
    let issues: Vec<String> = side
        .graph
        .issues
        .iter()
        .filter(|issue| side.repo.index_of(&issue.chart).is_some_and(|i| needed.contains(&i)))
        .map(|issue| issue.message.clone())
        .collect();
    if !issues.is_empty() {
        return Err(issues.join("\n"));
    }
    for chart in side.graph.topological().into_iter().filter(|c| needed.contains(c)) {
        let result = staged
            .entry(chart)
            .or_insert_with(|| {
                stager.stage(&side.repo, &side.repo.charts[chart]).map(|_| ()).map_err(|err| {
                    format!(
                        "{}: cannot prepare {} and its dependencies: {err:#}",
                        side.label, side.repo.charts[chart].name
                    )
                })
            })
            .clone();
        result?;
    }
    Ok(())
}

fn render_one(
    side: &Side,
    settings: &Settings,
    stager: &Stager,
    index: usize,
    files: &[std::path::PathBuf],
) -> Rendered {
    let chart = &side.repo.charts[index];
    let dir = stager.staged_dir(chart);
    let finished = match crate::exec::helm::template(
        settings.helm,
        &side.ctx.config.release_name,
        &dir,
        files,
        &[],
        &settings.kube_version,
    ) {
        Ok(finished) => finished,
        Err(err) => return Rendered::Failed(format!("{err:#}")),
    };
    if !finished.success {
        return Rendered::Failed(format!(
            "{}: helm template {} failed:\n{}",
            side.label,
            chart.rel,
            crate::exec::helm::clean(&finished.stderr)
        ));
    }
    match semantic::parse_render(&finished.stdout, &chart.name) {
        Ok(objects) => Rendered::Objects(objects),
        Err(message) => Rendered::Failed(format!("{}: {}: {message}", side.label, chart.rel)),
    }
}
