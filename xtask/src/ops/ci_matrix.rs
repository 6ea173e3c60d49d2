//! `cargo xtask ci-matrix`: the charts to check, as a GitHub Actions matrix.
//!
//! Prints one JSON document on stdout, `{"include": [{"chart", "path",
//! "type"}, ...]}`, which a workflow passes to `strategy.matrix` with
//! `fromJSON`, so that every chart becomes its own job (the design
//! document's "scaling to 42+ services": one pipeline per chart instead of
//! one for the whole repository). Charts come in dependency order, so the
//! job list reads the way the charts build on each other.
//!
//! `--changed` lists only what a change reaches (see [`crate::ops::affected`]):
//! the charts holding a changed file and everything that depends on them.
//! The list may be empty; GitHub refuses a matrix without entries, so the
//! workflow skips the per-chart jobs then (see `.github/workflows/charts.yml`).
//!
//! A chart whose Chart.yaml cannot be read, or that is part of a dependency
//! cycle, is still listed (type `broken` for the former): its lint job is
//! where the problem is reported, and leaving it out would turn a broken chart
//! into a silently green pipeline.

use std::collections::BTreeSet;

use anyhow::Result;
use serde::Serialize;

use crate::core::context::Context;
use crate::core::graph::ChartGraph;
use crate::core::model::Repo;
use crate::core::selection::Selection;

/// Options of `cargo xtask ci-matrix`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Which charts, and the base a change is measured against.
    pub selection: Selection,
}

/// One matrix entry: one CI job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The chart's name (what `cargo xtask lint --chart` takes).
    pub chart: String,
    /// The chart folder relative to the repository root.
    pub path: String,
    /// `library`, `application`, `umbrella`, or `broken` when Chart.yaml cannot be read.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The document GitHub Actions reads.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub include: Vec<Entry>,
}

pub fn run(args: Opts, ctx: &Context) -> Result<()> {
    let matrix = compute(ctx, &args)?;
    // Always JSON on stdout (whatever --format says): this command exists to
    // feed a workflow. People get a one-line summary on stderr.
    println!("{}", serde_json::to_string(&matrix)?);
    let names: Vec<&str> = matrix.include.iter().map(|e| e.chart.as_str()).collect();
    if names.is_empty() {
        eprintln!("ci-matrix: no chart to check");
    } else {
        eprintln!("ci-matrix: {} chart(s): {}", names.len(), names.join(", "));
    }
    Ok(())
}

/// The matrix for the repository at `ctx.root`.
pub fn compute(ctx: &Context, args: &Opts) -> Result<Matrix> {
    let repo = Repo::discover(&ctx.root, &ctx.config)?;
    let graph = ChartGraph::build(&repo);
    let picked = crate::ops::affected::select(ctx, &repo, &graph, &args.selection)?;
    let broken_selected: BTreeSet<usize> =
        (0..repo.broken.len()).filter(|&i| picked.broken.iter().any(|b| b.rel == repo.broken[i].rel)).collect();
    let selected = picked.charts;
    Ok(Matrix { include: entries(&repo, &graph, &selected, &broken_selected) })
}

/// Selected charts in topological order, then charts the order leaves out
/// (members of a cycle), then broken ones.
fn entries(repo: &Repo, graph: &ChartGraph, selected: &BTreeSet<usize>, broken: &BTreeSet<usize>) -> Vec<Entry> {
    let mut order: Vec<usize> = graph.topological().into_iter().filter(|c| selected.contains(c)).collect();
    let placed: BTreeSet<usize> = order.iter().copied().collect();
    order.extend(selected.iter().copied().filter(|c| !placed.contains(c)));
    let mut include: Vec<Entry> = order
        .into_iter()
        .map(|index| {
            let chart = &repo.charts[index];
            Entry { chart: chart.name.clone(), path: chart.rel.clone(), kind: chart.kind.as_str().to_string() }
        })
        .collect();
    include.extend(broken.iter().map(|&i| {
        let b = &repo.broken[i];
        Entry { chart: b.name.clone(), path: b.rel.clone(), kind: "broken".to_string() }
    }));
    include
}
