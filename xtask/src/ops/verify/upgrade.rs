//! `--upgrade-from REF`: the chart as it was at REF is installed first,
//! then upgraded to the working tree (helm 4: server-side apply) and rolled
//! back, so what only an upgrade meets (immutable fields, field-ownership
//! conflicts, a rollback that cannot go back) fails the chart.
//!
//! The base is checked out with `diff`'s [`Worktree`] and staged in its own
//! work folder, once per run, before any chart is checked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{step, Checker, Job};
use crate::core::context::Context;
use crate::core::graph::ChartGraph;
use crate::core::model::{Environment, Repo};
use crate::core::outcome::{Step, StepResult};
use crate::exec::tools::Tool;
use crate::ops::diff::worktree::{RunDir, Worktree};
use crate::ops::stage::Stager;

/// The base, checked out and staged; removed when dropped.
pub struct Base {
    /// The commit upgraded from (the merge base of REF and HEAD).
    pub commit: String,
    root: PathBuf,
    /// Staged chart folders of the base by chart name; a chart that could
    /// not be staged there has its error instead.
    staged: BTreeMap<String, Result<PathBuf, String>>,
    // Dropped after the fields above: the worktree, then the run folder.
    _tree: Worktree,
    _run: RunDir,
}

impl Base {
    pub fn prepare(ctx: &Context, reference: &str, helm: &Tool, mirrors: BTreeMap<String, String>) -> Result<Base> {
        let git = crate::exec::git::Git::open(&ctx.root)?;
        let commit = git.base(Some(reference))?.merge_base;
        let run = RunDir::create(ctx)?;
        let tree = Worktree::add(ctx, &run, &commit)?;
        let base_ctx = Context { root: tree.root().to_path_buf(), work_dir: run.path().join("base"), ..ctx.clone() };
        let repo = Repo::discover(&base_ctx.root, &base_ctx.config)?;
        let graph = ChartGraph::build(&repo);
        let stager = Stager::new(&base_ctx, helm, mirrors);
        let mut staged = BTreeMap::new();
        for index in graph.topological() {
            let chart = &repo.charts[index];
            let result = stager.stage(&repo, chart).map_err(|e| format!("{e:#}"));
            staged.insert(chart.name.clone(), result);
        }
        Ok(Base { commit, root: tree.root().to_path_buf(), staged, _tree: tree, _run: run })
    }

    fn short(&self) -> &str {
        &self.commit[..self.commit.len().min(12)]
    }

    /// Install at the base, upgrade to the working tree; also whether the
    /// base's release was installed (then [`Base::rollback`] goes back to it).
    pub(super) fn upgrade(
        &self,
        checker: &Checker,
        job: &Job,
        env: &Environment,
        namespace: &str,
    ) -> (Vec<StepResult>, bool) {
        let name = env.name.as_str();
        let release = checker.ctx.config.release_name.as_str();
        let head_values = checker.values(env);
        let mut steps = Vec::new();
        let started = Instant::now();
        let base_dir = match self.staged.get(&job.chart.name) {
            // New since the base: there is nothing to upgrade from.
            None => {
                let result = checker.helm_release("install", release, &job.staged, &head_values, namespace);
                let ok = result.is_ok();
                steps.push(step(Step::Install, Some(name), ok, started.elapsed(), result.err().unwrap_or_default()));
                return (steps, false);
            }
            Some(Err(message)) => {
                steps.push(step(
                    Step::Install,
                    Some(name),
                    false,
                    Duration::ZERO,
                    format!("the chart at {} cannot be staged: {message}", self.short()),
                ));
                return (steps, false);
            }
            Some(Ok(dir)) => dir,
        };
        // The base's own values files, where it had them.
        let base_values: Vec<PathBuf> =
            env.values_files.iter().map(|f| self.root.join(f)).filter(|p| p.is_file()).collect();
        let installed = checker.helm_release("install", release, base_dir, &base_values, namespace);
        let ok = installed.is_ok();
        let message = installed.err().map(|m| format!("the chart at {}: {m}", self.short())).unwrap_or_default();
        steps.push(step(Step::Install, Some(name), ok, started.elapsed(), message));
        if !ok {
            return (steps, false);
        }

        let started = Instant::now();
        let upgraded = checker.helm_release("upgrade", release, &job.staged, &head_values, namespace);
        let ok = upgraded.is_ok();
        let message = match upgraded {
            Ok(()) => format!("from {}", self.short()),
            Err(message) => with_advice(&format!("from {}: {message}", self.short())),
        };
        steps.push(step(Step::Upgrade, Some(name), ok, started.elapsed(), message));
        (steps, true)
    }

    /// `helm rollback` to the base's release (revision 1).
    pub(super) fn rollback(&self, checker: &Checker, env: &Environment, namespace: &str) -> StepResult {
        let started = Instant::now();
        let rolled = checker.helm_rollback(&checker.ctx.config.release_name, namespace);
        let ok = rolled.is_ok();
        let message = rolled.err().map(|m| with_advice(&format!("back to {}: {m}", self.short()))).unwrap_or_default();
        step(Step::Rollback, Some(&env.name), ok, started.elapsed(), message)
    }
}

/// The API server's refusal, followed by what to do about the refusals an
/// upgrade usually meets.
pub fn with_advice(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    let mut advice = Vec::new();
    if lower.contains("volumeclaimtemplates") || lower.contains("updates to statefulset spec") {
        advice.push(
            "a StatefulSet's volumeClaimTemplates (e.g. the persistence size) cannot change: delete the StatefulSet \
             with --cascade=orphan before the upgrade (its Pods and volumes stay), or keep the size",
        );
    }
    if lower.contains("spec.selector") && lower.contains("immutable") {
        advice.push(
            "a workload's spec.selector cannot change (the selector labels of charts/_common): keep the selector \
             labels, or delete the workload with --cascade=orphan before the upgrade",
        );
    }
    if lower.contains("conflict") && lower.contains("manager") {
        advice.push(
            "another field manager owns these fields: remove them from the other manager (kubectl apply \
             --server-side --force-conflicts takes them over), or stop setting them in the chart",
        );
    }
    if advice.is_empty() {
        return message.to_string();
    }
    format!("{message}\nadvice: {}", advice.join("\nadvice: "))
}
