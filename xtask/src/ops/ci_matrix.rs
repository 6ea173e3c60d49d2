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
//!
//! `--max-jobs N` groups the same charts into at most N jobs instead, so 200
//! charts need not be 200 runners: `{"include": [{"job", "name", "charts",
//! "estimate_ms"}, ...]}`, where `charts` is what the job passes to
//! `lint --chart` (one flag per name). Jobs are balanced by each chart's last
//! measured duration ([`crate::ops::durations`]) with longest-processing-time
//! greedy: charts from the longest down, each to the job with the least work
//! so far. Each assignment keeps the busiest job within the largest chart's
//! duration of the idlest (it only ever adds to the idlest one), and LPT's
//! longest job is within 4/3 of the best possible. A job lints its own charts
//! and stages, without checking, what they depend on from the checkout, just
//! as `lint --chart` does for one chart, so a chart's verdict does not depend
//! on which job its dependencies land in; within a job, charts keep the
//! dependency order.

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
    /// Group the charts into at most this many jobs (`None`: one job per chart).
    pub max_jobs: Option<usize>,
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
    let names: Vec<&str> = matrix.include.iter().map(|e| e.chart.as_str()).collect();
    match args.max_jobs {
        None => {
            println!("{}", serde_json::to_string(&matrix)?);
            if names.is_empty() {
                eprintln!("ci-matrix: no chart to check");
            } else {
                eprintln!("ci-matrix: {} chart(s): {}", names.len(), names.join(", "));
            }
        }
        Some(max_jobs) => {
            let durations = crate::ops::durations::Durations::load(&ctx.work_dir);
            let jobs = group(&matrix.include, &durations, max_jobs);
            println!("{}", serde_json::to_string(&Jobs { include: jobs.clone() })?);
            let guessed = durations.estimate(names.iter().copied()).values().filter(|e| !e.measured).count();
            eprintln!(
                "ci-matrix: {} chart(s) in {} job(s) (at most {max_jobs}); {guessed} chart(s) never measured, estimated",
                names.len(),
                jobs.len()
            );
            for job in &jobs {
                eprintln!("  job {}: {:.1} s: {}", job.job, job.estimate_ms as f64 / 1000.0, job.charts.join(", "));
            }
        }
    }
    Ok(())
}

/// One job of `--max-jobs`: the charts it lints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// 1, 2, ...: the job's number, for cache keys and artifact names.
    pub job: usize,
    /// For the job's title: its charts, shortened when there are many.
    pub name: String,
    /// The charts, in dependency order: `lint --chart` once per name.
    pub charts: Vec<String>,
    /// The sum of the charts' expected durations.
    pub estimate_ms: u64,
}

/// The document GitHub Actions reads with `--max-jobs`.
#[derive(Debug, Clone, Serialize)]
pub struct Jobs {
    pub include: Vec<Job>,
}

/// Groups `entries` (in dependency order) into at most `max_jobs` jobs,
/// longest-processing-time first; no job is empty. Ties go to the earlier
/// chart and the lower job, so the same inputs always give the same jobs.
pub fn group(entries: &[Entry], durations: &crate::ops::durations::Durations, max_jobs: usize) -> Vec<Job> {
    let estimates = durations.estimate(entries.iter().map(|e| e.chart.as_str()));
    let cost = |e: &Entry| estimates.get(&e.chart).map_or(0, |est| est.ms);
    let count = max_jobs.max(1).min(entries.len());
    let mut by_cost: Vec<usize> = (0..entries.len()).collect();
    by_cost.sort_by_key(|&i| (std::cmp::Reverse(cost(&entries[i])), i));
    let mut loads = vec![0u64; count];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); count];
    for i in by_cost {
        let idlest = (0..count).min_by_key(|&j| (loads[j], j)).unwrap_or(0);
        loads[idlest] += cost(&entries[i]);
        members[idlest].push(i);
    }
    members
        .into_iter()
        .zip(loads)
        .enumerate()
        .map(|(j, (mut charts, load))| {
            charts.sort_unstable();
            let charts: Vec<String> = charts.into_iter().map(|i| entries[i].chart.clone()).collect();
            Job { job: j + 1, name: title(&charts), charts, estimate_ms: load }
        })
        .collect()
}

/// A job's title: up to three chart names, then how many more.
fn title(charts: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut title = charts.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if charts.len() > SHOWN {
        title.push_str(&format!(" +{}", charts.len() - SHOWN));
    }
    title
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::ops::durations::Durations;

    fn entries(n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry { chart: format!("c{i:03}"), path: format!("charts/c{i:03}"), kind: "application".into() })
            .collect()
    }

    proptest! {
        // A fixed seed, so a run is reproducible, and no regression files.
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(13),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// At most N jobs, none empty, every chart in exactly one, in the
        /// given order within its job, each job's estimate its charts' sum,
        /// and the busiest job within the largest chart of the idlest.
        #[test]
        fn jobs_partition_the_charts_and_stay_balanced(
            costs in proptest::collection::vec(proptest::option::of(0u64..20_000), 0..60),
            max_jobs in 1usize..8,
        ) {
            let entries = entries(costs.len());
            let known: BTreeMap<String, u64> = entries
                .iter()
                .zip(&costs)
                .filter_map(|(e, c)| c.map(|c| (e.chart.clone(), c)))
                .collect();
            let durations = Durations::from_map(known);
            let estimates = durations.estimate(entries.iter().map(|e| e.chart.as_str()));
            let jobs = group(&entries, &durations, max_jobs);
            prop_assert!(jobs.len() <= max_jobs);
            prop_assert_eq!(jobs.len(), max_jobs.min(entries.len()));
            let mut seen: Vec<String> = jobs.iter().flat_map(|j| j.charts.clone()).collect();
            seen.sort();
            prop_assert_eq!(seen, entries.iter().map(|e| e.chart.clone()).collect::<Vec<_>>());
            for job in &jobs {
                prop_assert!(!job.charts.is_empty());
                prop_assert!(job.charts.windows(2).all(|w| w[0] < w[1]), "dependency order kept");
                prop_assert_eq!(job.estimate_ms, job.charts.iter().map(|c| estimates[c].ms).sum::<u64>());
            }
            let largest = estimates.values().map(|e| e.ms).max().unwrap_or(0);
            let (most, least) = (
                jobs.iter().map(|j| j.estimate_ms).max().unwrap_or(0),
                jobs.iter().map(|j| j.estimate_ms).min().unwrap_or(0),
            );
            prop_assert!(most - least <= largest, "{most} - {least} > {largest}");
        }
    }

    #[test]
    fn the_longest_chart_gets_a_job_of_its_own() {
        let entries = entries(5);
        let durations = Durations::from_map(
            [("c000", 100), ("c001", 100), ("c002", 9_000), ("c003", 100), ("c004", 100)]
                .into_iter()
                .map(|(c, ms)| (c.to_string(), ms))
                .collect(),
        );
        let jobs = group(&entries, &durations, 2);
        assert_eq!(jobs[0].charts, ["c002"]);
        assert_eq!(jobs[1].charts, ["c000", "c001", "c003", "c004"]);
        assert_eq!(jobs[1].name, "c000, c001, c003 +1");
        assert!(group(&entries, &durations, 9).iter().all(|j| j.charts.len() == 1), "never an empty job");
        assert!(group(&[], &durations, 3).is_empty());
    }
}
