//! Affected sets: which charts a change reaches.
//!
//! The files changed between the merge base of `--base` and the work tree
//! (committed, staged, unstaged and untracked-but-not-ignored) are mapped to
//! the chart folder that holds them. A file the chart's `.helmignore` leaves
//! out of the chart does not count: it cannot change the package. Every chart
//! that depends on a changed chart, transitively, is affected too, because
//! its package embeds the dependency.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::core::context::Context;
use crate::core::graph::ChartGraph;
use crate::core::model::Repo;
use crate::core::selection::Selection;
use crate::exec::git::{Base, Git};
use crate::util::helmignore::HelmIgnore;

/// What changed since the base, and which charts that reaches.
#[derive(Debug, Clone)]
pub struct Affected {
    pub base: Base,
    /// Changed files relative to the repository root.
    pub files: Vec<String>,
    /// Charts (indices into `Repo::charts`) that hold a changed file.
    pub changed: BTreeSet<usize>,
    /// `changed` plus all their dependents, transitively.
    pub affected: BTreeSet<usize>,
}

/// The charts a [`Selection`] picks, resolved against the repository.
pub struct Selected {
    /// Readable charts, by index into `repo.charts`.
    pub charts: BTreeSet<usize>,
    /// Charts whose Chart.yaml cannot be read that the selection names or
    /// the change touches: reported as failed, never silently left out.
    pub broken: Vec<crate::core::model::BrokenChart>,
}

/// Resolves `--chart` names (a name no chart has is a usage error listing
/// the charts), `--changed` (the affected charts and the broken ones the
/// change touches), or every chart.
pub fn select(ctx: &Context, repo: &Repo, graph: &ChartGraph, selection: &Selection) -> Result<Selected> {
    if !selection.charts.is_empty() {
        let mut charts = BTreeSet::new();
        let mut broken = Vec::new();
        for name in &selection.charts {
            if let Some(index) = repo.index_of(name) {
                charts.insert(index);
            } else if let Some(b) = repo.broken.iter().find(|b| &b.name == name) {
                broken.push(b.clone());
            } else {
                return crate::util::exit::usage(format!(
                    "--chart {name}: no such chart; the charts are: {}",
                    repo.all_names().join(", ")
                ));
            }
        }
        return Ok(Selected { charts, broken });
    }
    if selection.changed {
        let affected = compute(ctx, repo, graph, selection.base())?;
        let broken = broken_touched(repo, &affected.files).into_iter().cloned().collect();
        return Ok(Selected { charts: affected.affected, broken });
    }
    Ok(Selected { charts: (0..repo.charts.len()).collect(), broken: repo.broken.clone() })
}

/// The full answer behind [`changed_charts`], for commands that report it.
pub fn compute(ctx: &Context, repo: &Repo, graph: &ChartGraph, base: Option<&str>) -> Result<Affected> {
    compute_in(&Git::open(&ctx.root)?, repo, graph, base)
}

/// [`compute`] with a work tree the caller already opened.
pub fn compute_in(git: &Git, repo: &Repo, graph: &ChartGraph, base: Option<&str>) -> Result<Affected> {
    let base = git.base(base)?;
    let files = git.changed_since(&base.merge_base)?;
    let changed = charts_of(repo, &files);
    let affected = graph.with_dependents(&changed);
    Ok(Affected { base, files, changed, affected })
}

/// Unreadable charts (see [`crate::core::model::BrokenChart`]) whose folder holds
/// one of `files`: a change there cannot be released until it is fixed.
pub fn broken_touched<'r>(repo: &'r Repo, files: &[String]) -> Vec<&'r crate::core::model::BrokenChart> {
    repo.broken
        .iter()
        .filter(|b| files.iter().any(|f| f.strip_prefix(&b.rel).is_some_and(|rest| rest.starts_with('/'))))
        .collect()
}

/// The charts that hold at least one of `files` (relative to the root) that
/// Helm would put into the chart.
pub fn charts_of(repo: &Repo, files: &[String]) -> BTreeSet<usize> {
    let ignores: Vec<HelmIgnore> = repo.charts.iter().map(|c| HelmIgnore::load(&c.dir)).collect();
    let mut changed = BTreeSet::new();
    for file in files {
        // Chart folders never nest (a folder with a Chart.yaml is not searched
        // further), so at most one chart holds a file.
        let owner = repo.charts.iter().enumerate().find_map(|(index, chart)| {
            file.strip_prefix(&chart.rel).and_then(|rest| rest.strip_prefix('/')).map(|inside| (index, inside))
        });
        if let Some((index, inside)) = owner {
            if !ignores[index].is_ignored(inside, false) {
                changed.insert(index);
            }
        }
    }
    changed
}
