//! A lint profile: what makes one kind of lint run differ from another, as
//! data the engine is handed rather than branches inside it.
//!
//! The engine ([`super::run`]) knows one way to check a chart (stage, helm
//! lint, render, validate, cache). A profile says how strictly helm lints,
//! what the context and default base are, which charts are left out, and
//! which checks run before the engine's own, with what they add to the cache
//! key. [`Plain`] is `cargo xtask lint` on its own; chart-testing's profile
//! (`ops::ct`) makes the run the drop-in for `ct lint`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use crate::core::context::Context;
use crate::core::model::{BrokenChart, Repo};
use crate::core::outcome::StepResult;
use crate::core::selection::Selection;
use crate::exec::tools::Toolset;
use crate::ops::stage::Stager;

/// How a lint run is shaped.
pub trait Profile {
    /// `helm lint --strict`.
    fn strict(&self) -> bool {
        true
    }

    /// The context charts are found in (a profile may read other chart folders).
    fn context(&self, ctx: &Context) -> Context {
        ctx.clone()
    }

    /// The base `--changed` compares with when no `--base` is given.
    fn default_base(&self) -> Option<String> {
        None
    }

    /// Adjusts the discovered repository before the graph is built.
    fn adapt(&self, _repo: &mut Repo) {}

    /// Leaves out selected charts the profile does not check (they stay in
    /// the repository, so charts that depend on them still stage).
    fn deselect(&self, _repo: &Repo, _selected: &mut BTreeSet<usize>, _broken: &mut Vec<BrokenChart>) {}

    /// Resolves what the extra checks need for this run (tools, old
    /// versions); `None` when the profile adds none.
    fn prepare(&self, run: &RunInputs<'_>) -> Result<Option<Box<dyn ExtraChecks + Send + Sync>>> {
        let _ = run;
        Ok(None)
    }
}

/// What a profile's `prepare` may look at.
pub struct RunInputs<'a> {
    pub ctx: &'a Context,
    pub repo: &'a Repo,
    pub graph: &'a crate::core::graph::ChartGraph,
    pub tools: &'a Toolset,
    pub selection: &'a Selection,
    pub jobs: usize,
}

/// Checks a profile runs before the engine's own, per chart.
pub trait ExtraChecks {
    /// What the checks read beyond the engine's key; an error means the
    /// chart is checked, never served from the cache.
    fn key_part(&self, repo: &Repo, index: usize) -> Result<String>;

    /// Each chart's steps, in the order they were made.
    fn check(
        &self,
        ctx: &Context,
        repo: &Repo,
        stager: &Stager,
        charts: &BTreeSet<usize>,
    ) -> BTreeMap<usize, Vec<StepResult>>;
}

/// `cargo xtask lint` as it is: strict, every chart, no extra checks.
pub struct Plain;

impl Profile for Plain {}
