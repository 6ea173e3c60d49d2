//! `--tag`: one git tag per packaged chart, `<chart>-<version>`, at `HEAD`.
//!
//! A tag says "this commit is that release", so it is only made when the
//! chart's folder and those of its dependencies have no uncommitted changes
//! (checked before anything is packaged). A tag that already exists is kept
//! when the chart has not changed between the tagged commit and `HEAD` (the
//! usual case for a chart that was not bumped this time), and is an error
//! when it has: the version was released from other content.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::core::graph::ChartGraph;
use crate::core::model::Repo;
use crate::exec::git::Git;
use crate::ops::affected::charts_of;

/// The tag name of a chart version.
pub fn tag_name(chart: &str, version: &semver::Version) -> String {
    format!("{chart}-{version}")
}

/// What every tag of a chart's releases starts with.
fn tag_prefix(chart: &str) -> String {
    format!("{chart}-")
}

/// The version a tag names, if it is one of `chart`'s release tags (a
/// chart `cart` does not claim `cart-api-1.0.0`: `api-1.0.0` is no version).
pub fn version_of_tag(chart: &str, tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix(&tag_prefix(chart))?).ok()
}

/// Refuses `--tag` while a selected chart or one of its dependencies has
/// uncommitted changes.
pub fn preflight(git: &Git, repo: &Repo, graph: &ChartGraph, selected: &BTreeSet<usize>) -> Result<()> {
    let involved = graph.with_dependencies(selected);
    let dirty: BTreeSet<usize> = charts_of(repo, &git.uncommitted()?).intersection(&involved).copied().collect();
    if dirty.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = dirty.iter().map(|&i| repo.charts[i].name.as_str()).collect();
    anyhow::bail!(
        "--tag: {} {} uncommitted changes, so HEAD is not what would be packaged; nothing was written\nfix: commit (or stash) the changes, then run this again",
        names.join(", "),
        if names.len() == 1 { "has" } else { "have" }
    )
}

/// What happened to one chart's tag.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Tagged {
    pub chart: String,
    pub tag: String,
    /// `created` or `exists`.
    pub action: &'static str,
    pub commit: String,
}

/// The tags to create and those that already exist, checked before anything
/// is packaged or pushed.
#[derive(Debug, Clone)]
pub struct Plan {
    head: String,
    /// `(chart name, tag, commit of an existing tag)`.
    tags: Vec<(String, String, Option<String>)>,
}

/// Checks every chart's tag: missing (to create), at a commit with the same
/// chart content (kept), or at other content (an error).
pub fn plan(git: &Git, repo: &Repo, graph: &ChartGraph, charts: &[usize]) -> Result<Plan> {
    let head = git.head()?;
    let mut plan = Vec::new();
    let mut conflicts = Vec::new();
    for &index in charts {
        let chart = &repo.charts[index];
        let tag = tag_name(&chart.name, &chart.version);
        match git.tag_commit(&tag)? {
            None => plan.push((chart.name.clone(), tag, None)),
            Some(commit) if commit == head => plan.push((chart.name.clone(), tag, Some(commit))),
            Some(commit) => {
                let involved = graph.with_dependencies(&BTreeSet::from([index]));
                let changed = charts_of(repo, &git.changed_between(&commit, &head)?);
                if changed.intersection(&involved).next().is_some() {
                    conflicts.push(format!(
                        "  {tag} points at {}, and {} (or a dependency) changed since; {}",
                        super::version::short(&commit),
                        chart.name,
                        super::version::raise_hint(chart)
                    ));
                } else {
                    plan.push((chart.name.clone(), tag, Some(commit)));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        anyhow::bail!(
            "--tag: these versions were already tagged on other content; nothing was written\n{}",
            conflicts.join("\n")
        );
    }
    Ok(Plan { head, tags: plan })
}

/// Creates the missing tags of a [`Plan`] at `HEAD`.
pub fn apply(git: &Git, plan: Plan) -> Result<Vec<Tagged>> {
    let mut done = Vec::new();
    for (chart, tag, existing) in plan.tags {
        match existing {
            Some(commit) => done.push(Tagged { chart, tag, action: "exists", commit }),
            None => {
                git.create_tag(&tag)?;
                done.push(Tagged { chart, tag, action: "created", commit: plan.head.clone() });
            }
        }
    }
    Ok(done)
}
