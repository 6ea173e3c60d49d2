//! Checking one batch of charts: values, `helm lint`, `helm template`,
//! kubeconform, with as few tool processes as the batch allows and every
//! verdict attributed to its chart.
//!
//! - lint: one `helm lint --strict` over every chart that uses its default
//!   values; one call per environment for charts with `values-<env>.yaml`.
//! - render: one `helm template` per Kubernetes version of a generated parent
//!   chart whose `charts/` links every batchable chart; charts whose named
//!   templates could collide (different versions of one library) go to
//!   separate parents. When a batched render fails, the chart named in helm's
//!   error is rendered alone (its verdict then is exactly the per-chart one)
//!   and the rest is rendered again; an error that names no chart splits the
//!   batch in halves until it does.
//! - validate: one kubeconform process per Kubernetes version over every
//!   document of the batch's renders not judged before in this run
//!   ([`validate`]).
//! - a chart tree that never reads `.Capabilities` (nor declares
//!   `kubeVersion`) renders the same for every Kubernetes version: it is
//!   rendered once and that output validated for each version ([`tree`]).
//! - an umbrella is checked in pieces where that is sound ([`umbrella`]).
//!
//! `--no-batch` (`batching: false`) does none of this: one set of processes
//! per chart, environment and Kubernetes version, the reference the
//! differential tests compare the batched run with.
//!
//! [`tree`]: super::tree
//! [`umbrella`]: super::umbrella
//! [`validate`]: super::validate

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use rayon::prelude::*;

use super::report::{Status, Step, StepResult};
use crate::core::context::Context;
use crate::core::model::{Chart, ChartKind, Environment, Repo};
use crate::exec::helm;
use crate::exec::kubeconform;
use crate::exec::tools::Toolset;
use crate::ops::stage::Stager;
use crate::util::fs;
use crate::util::yaml;

/// Fixed name of generated parent charts; it only shows up in `# Source:`
/// comments, which are rewritten back to the per-chart form.
const PARENT: &str = "xtask-batch";

/// Everything a batch needs; shared by all workers.
pub struct Checker<'a> {
    pub ctx: &'a Context,
    pub repo: &'a Repo,
    pub tools: &'a Toolset,
    pub stager: &'a Stager<'a>,
    pub kube_versions: Vec<String>,
    /// `helm lint --strict` (the default) or not (a ct repository whose
    /// `helm-lint-extra-args` do not ask for it): part of the lint profile.
    pub strict: bool,
    /// Environments to check; empty means all.
    pub env_filter: Vec<String>,
    /// Charts (by index) whose named-template libraries, as (name, version).
    pub libraries: BTreeMap<usize, BTreeMap<String, String>>,
    pub batching: bool,
    /// The result cache: umbrella pieces are read from and stored in it.
    pub cache: &'a crate::ops::cache::Cache,
    /// Cache keys of the charts (by index), for umbrella piece keys.
    pub keys: &'a BTreeMap<usize, String>,
    /// False with `--no-cache`: pieces are computed, and still stored.
    pub read_cache: bool,
    /// Parallel workers of the run (an umbrella spreads its shards over them).
    pub jobs: usize,
    /// Documents kubeconform has judged in this run (batched runs only).
    pub validations: &'a super::validate::Validations,
    /// What each staged chart tree contains, read once.
    pub trees: super::tree::Memo,
}

/// A rendered file waiting for validation.
pub struct Rendered {
    pub chart: usize,
    pub env: String,
    pub kube: String,
    pub file: PathBuf,
}

impl Checker<'_> {
    /// The environments of a chart this run checks.
    pub fn environments<'c>(&self, chart: &'c Chart) -> Vec<&'c Environment> {
        chart
            .environments
            .iter()
            .filter(|e| {
                e.name == crate::core::model::DEFAULT_ENV
                    || self.env_filter.is_empty()
                    || self.env_filter.contains(&e.name)
            })
            .collect()
    }

    /// Checks `charts` and returns every chart's steps.
    pub fn check(&self, batch_id: usize, charts: &[usize]) -> BTreeMap<usize, Vec<StepResult>> {
        let mut steps: BTreeMap<usize, Vec<StepResult>> = charts.iter().map(|&c| (c, Vec::new())).collect();

        // Values files are parsed here first: a broken file gets an error with
        // its line and column, and helm is spared input it would choke on.
        let mut healthy = Vec::new();
        for &index in charts {
            let chart = &self.repo.charts[index];
            let started = Instant::now();
            let mut problems = Vec::new();
            let mut files = vec![format!("{}/values.yaml", chart.rel)];
            for env in self.environments(chart) {
                files.extend(env.values_files.iter().cloned());
            }
            for file in &files {
                let path = self.ctx.root.join(file);
                if !path.exists() {
                    continue;
                }
                if let Err(err) = yaml::read_text(&path, file)
                    .and_then(|text| yaml::parse::<yaml_serde::Value>(&text, file).map_err(Into::into))
                {
                    problems.push(format!("{err:#}"));
                }
            }
            let status = Status::from_ok(problems.is_empty());
            steps.get_mut(&index).expect("chart of this batch").push(StepResult::new(
                Step::Values,
                None,
                None,
                status,
                started.elapsed(),
                problems.join("\n"),
            ));
            if problems.is_empty() {
                healthy.push(index);
            }
        }

        // Umbrellas that can be checked in pieces leave the shared path.
        let mut plans = Vec::new();
        if self.batching {
            for &index in &healthy {
                if self.repo.charts[index].kind == ChartKind::Umbrella {
                    // A tree that cannot be analysed is simply checked whole.
                    if let Ok(Some(plan)) = super::umbrella::Plan::analyse(self, index) {
                        plans.push(plan);
                    }
                }
            }
        }
        let in_pieces: BTreeSet<usize> = plans.iter().map(|p| p.index()).collect();
        let whole: Vec<usize> = healthy.iter().copied().filter(|i| !in_pieces.contains(i)).collect();

        // Lint and render need nothing of each other: batched, an idle
        // worker takes the render while this one lints (a lone chart, or the
        // end of a large batch, then uses both cores).
        let lint = || {
            let mut found = BTreeMap::new();
            self.lint(&whole, &mut found);
            found
        };
        let render = || {
            let mut found = BTreeMap::new();
            let rendered = self.render(batch_id, &whole, &mut found, self.batching);
            (found, rendered)
        };
        let (linted, (mut render_steps, mut rendered)) =
            if self.batching { rayon::join(lint, render) } else { (lint(), render()) };
        // A batched render leaves the charts' schemas to their lint (see
        // [`Checker::render`]); a chart whose lint did not validate its
        // values is rendered again with the schema, for its own verdict.
        let unproven: Vec<usize> = whole
            .iter()
            .copied()
            .filter(|&i| self.batching && self.renders_with_defaults(i) && !self.lint_validated_schema(i, &linted))
            .collect();
        if !unproven.is_empty() {
            for index in &unproven {
                render_steps.remove(index);
            }
            rendered.retain(|r| !unproven.contains(&r.chart));
            rendered.extend(self.render(batch_id, &unproven, &mut render_steps, false));
        }
        merge(&mut steps, linted);
        merge(&mut steps, render_steps);
        for plan in &plans {
            rendered.extend(super::umbrella::check(self, plan, &mut steps));
        }
        self.validate(&rendered, &mut steps);
        for plan in &plans {
            self.order_steps(plan.index(), &mut steps);
        }
        steps
    }

    /// Puts a chart's steps in the order a whole check makes them: by step,
    /// then Kubernetes version, then environment.
    fn order_steps(&self, index: usize, steps: &mut BTreeMap<usize, Vec<StepResult>>) {
        let chart = &self.repo.charts[index];
        let rank = |s: &StepResult| {
            let step = s.step.engine_rank();
            let kube = s
                .kube_version
                .as_ref()
                .and_then(|k| self.kube_versions.iter().position(|v| v == k))
                .map_or(0, |p| p + 1);
            let env = s.env.as_ref().and_then(|e| chart.environments.iter().position(|v| &v.name == e)).unwrap_or(0);
            (step, kube, env)
        };
        if let Some(list) = steps.get_mut(&index) {
            list.sort_by_key(rank);
        }
    }

    /// Lints and renders one chart in one environment on its own (the whole
    /// umbrella); returns the renders for the validation pass.
    pub fn check_environment_whole(
        &self,
        index: usize,
        env: &Environment,
        steps: &mut BTreeMap<usize, Vec<StepResult>>,
    ) -> Vec<Rendered> {
        let chart_env = if env.values_files.is_empty() { None } else { Some(env) };
        self.lint_group(&[index], chart_env, steps);
        let mut rendered = Vec::new();
        for kube in &self.kube_versions {
            let started = Instant::now();
            let result = helm::template(
                &self.tools.helm,
                &self.ctx.config.release_name,
                &self.staged(index),
                &self.values_paths(env),
                &[],
                kube,
            )
            .map_err(|e| format!("{e:#}"))
            .and_then(|f| if f.success { Ok(f.stdout) } else { Err(helm::clean(&f.stderr)) });
            self.record_render(index, &env.name, kube, result, started.elapsed(), steps, &mut rendered);
        }
        rendered
    }

    /// Whether a chart's staged tree renders differently per Kubernetes
    /// version; unknown counts as yes.
    fn kube_dependent(&self, index: usize) -> bool {
        self.trees.scan(&self.staged(index)).is_none_or(|facts| facts.kube_dependent)
    }

    pub fn staged(&self, index: usize) -> PathBuf {
        self.stager.staged_dir(&self.repo.charts[index])
    }

    pub fn values_paths(&self, env: &Environment) -> Vec<PathBuf> {
        env.values_files.iter().map(|f| self.ctx.root.join(f)).collect()
    }

    pub fn newest_kube(&self) -> &str {
        self.kube_versions.first().map(String::as_str).unwrap_or("1.37.0")
    }

    fn lint(&self, charts: &[usize], steps: &mut BTreeMap<usize, Vec<StepResult>>) {
        // Charts checked with their defaults share one helm process.
        let mut shared = Vec::new();
        let mut per_env = Vec::new();
        for &index in charts {
            let chart = &self.repo.charts[index];
            for env in self.environments(chart) {
                if env.values_files.is_empty() {
                    shared.push(index);
                } else {
                    per_env.push((index, env.clone()));
                }
            }
        }
        let groups: Vec<Vec<usize>> =
            if self.batching { vec![shared.clone()] } else { shared.iter().map(|&c| vec![c]).collect() };
        for group in groups.into_iter().filter(|g| !g.is_empty()) {
            self.lint_group(&group, None, steps);
        }
        for (index, env) in per_env {
            self.lint_group(&[index], Some(&env), steps);
        }
    }

    fn lint_group(&self, group: &[usize], env: Option<&Environment>, steps: &mut BTreeMap<usize, Vec<StepResult>>) {
        let paths: Vec<PathBuf> = group.iter().map(|&c| self.staged(c)).collect();
        let values = env.map(|e| self.values_paths(e)).unwrap_or_default();
        let env_name = env.map_or(crate::core::model::DEFAULT_ENV, |e| e.name.as_str());
        let step =
            |status, duration, message| StepResult::new(Step::Lint, Some(env_name), None, status, duration, message);
        match helm::lint(&self.tools.helm, &paths, &values, self.newest_kube(), self.strict) {
            Ok((finished, verdicts)) => {
                for (&index, path) in group.iter().zip(&paths) {
                    match verdicts.get(path) {
                        Some(verdict) => push(
                            steps,
                            index,
                            step(Status::from_ok(verdict.ok), finished.duration, verdict.message.clone()),
                        ),
                        // Helm said nothing about this path in a shared run:
                        // ask again for it alone so the verdict is its own.
                        None if group.len() > 1 => self.lint_group(&[index], env, steps),
                        None => push(
                            steps,
                            index,
                            step(Status::Failed, finished.duration, helm::clean(&finished.combined())),
                        ),
                    }
                }
            }
            Err(err) => {
                for &index in group {
                    push(steps, index, step(Status::Failed, Duration::ZERO, format!("{err:#}")));
                }
            }
        }
    }

    /// Whether the chart is rendered with its default values (and so, in a
    /// batch, through a parent chart).
    fn renders_with_defaults(&self, index: usize) -> bool {
        let chart = &self.repo.charts[index];
        chart.kind != ChartKind::Library && self.environments(chart).iter().any(|e| e.values_files.is_empty())
    }

    /// True when `helm lint` passed the chart with its default values and got
    /// as far as validating them against every schema of its tree (its
    /// templates rule does that before rendering; it stops earlier only
    /// without a templates/ folder). Rendering the chart with the same
    /// values then validates the same values against the same schemas,
    /// unless `import-values` somewhere in the tree adds values on render
    /// that lint never sees.
    fn lint_validated_schema(&self, index: usize, linted: &BTreeMap<usize, Vec<StepResult>>) -> bool {
        let passed = linted.get(&index).is_some_and(|steps| {
            steps.iter().any(|s| {
                s.step == Step::Lint
                    && s.env.as_deref() == Some(crate::core::model::DEFAULT_ENV)
                    && s.status == Status::Ok
            })
        });
        passed
            && self.staged(index).join("templates").is_dir()
            && self.trees.scan(&self.staged(index)).is_some_and(|facts| !facts.imports_values && !facts.opaque)
    }

    /// Renders every non-library chart of the batch for every Kubernetes
    /// version and environment; returns the files to validate.
    ///
    /// With `skip_schema`, a render of many charts through a parent passes
    /// `--skip-schema-validation`: compiling and applying every chart's
    /// schema again repeats what lint of the same charts with the same
    /// (default) values did, and a chart whose lint did not is rendered
    /// again with it ([`Checker::check`]). Charts rendered alone or with
    /// environment values files always validate.
    fn render(
        &self,
        batch_id: usize,
        charts: &[usize],
        steps: &mut BTreeMap<usize, Vec<StepResult>>,
        skip_schema: bool,
    ) -> Vec<Rendered> {
        let mut rendered = Vec::new();
        let mut batchable = Vec::new();
        let mut per_env = Vec::new();
        for &index in charts {
            let chart = &self.repo.charts[index];
            if chart.kind == ChartKind::Library {
                continue; // "library charts are not installable": checked through their users
            }
            for env in self.environments(chart) {
                if env.values_files.is_empty() {
                    batchable.push(index);
                } else {
                    per_env.push((index, env.clone()));
                }
            }
        }
        let groups = if self.batching {
            self.compatible_groups(&batchable)
        } else {
            batchable.iter().map(|&c| vec![c]).collect()
        };
        // Batched, a tree that does not depend on the Kubernetes version is
        // rendered for the first version only and that output reused.
        let independent: BTreeSet<usize> = if self.batching {
            batchable
                .iter()
                .chain(per_env.iter().map(|(i, _)| i))
                .copied()
                .filter(|&i| !self.kube_dependent(i))
                .collect()
        } else {
            BTreeSet::new()
        };
        let mut reusable: BTreeMap<(usize, String), Result<String, String>> = BTreeMap::new();
        for kube in &self.kube_versions {
            for (group_id, group) in groups.iter().enumerate() {
                let mut outcomes = BTreeMap::new();
                let (known, to_render): (Vec<usize>, Vec<usize>) = group
                    .iter()
                    .copied()
                    .partition(|&i| reusable.contains_key(&(i, crate::core::model::DEFAULT_ENV.to_string())));
                self.render_group(&format!("{batch_id}-{group_id}"), &to_render, kube, skip_schema, &mut outcomes);
                for index in known {
                    if let Some(result) = reusable.get(&(index, crate::core::model::DEFAULT_ENV.to_string())) {
                        outcomes.insert(index, (result.clone(), Duration::ZERO));
                    }
                }
                for (index, (result, duration)) in outcomes {
                    if independent.contains(&index) {
                        reusable
                            .entry((index, crate::core::model::DEFAULT_ENV.to_string()))
                            .or_insert_with(|| result.clone());
                    }
                    self.record_render(
                        index,
                        crate::core::model::DEFAULT_ENV,
                        kube,
                        result,
                        duration,
                        steps,
                        &mut rendered,
                    );
                }
            }
            for (index, env) in &per_env {
                if let Some(result) = reusable.get(&(*index, env.name.clone())) {
                    self.record_render(*index, &env.name, kube, result.clone(), Duration::ZERO, steps, &mut rendered);
                    continue;
                }
                let started = Instant::now();
                let result = helm::template(
                    &self.tools.helm,
                    &self.ctx.config.release_name,
                    &self.staged(*index),
                    &self.values_paths(env),
                    &[],
                    kube,
                )
                .map_err(|e| format!("{e:#}"))
                .and_then(|f| if f.success { Ok(f.stdout) } else { Err(helm::clean(&f.stderr)) });
                if independent.contains(index) {
                    reusable.insert((*index, env.name.clone()), result.clone());
                }
                self.record_render(*index, &env.name, kube, result, started.elapsed(), steps, &mut rendered);
            }
        }
        rendered
    }

    #[allow(clippy::too_many_arguments)]
    fn record_render(
        &self,
        index: usize,
        env: &str,
        kube: &str,
        result: Result<String, String>,
        duration: Duration,
        steps: &mut BTreeMap<usize, Vec<StepResult>>,
        rendered: &mut Vec<Rendered>,
    ) {
        let chart = &self.repo.charts[index];
        match result {
            Ok(text) => {
                // Names were checked where they were read; joined here again
                // so a render can never be written outside the work folder.
                let written =
                    fs::join_inside(&self.ctx.work_dir.join("rendered"), format!("{kube}/{}/{env}.yaml", chart.name))
                        .and_then(|file| fs::write_atomic(&file, text.as_bytes()).map(|()| file));
                match written {
                    Ok(file) => {
                        push(
                            steps,
                            index,
                            StepResult::new(Step::Render, Some(env), Some(kube), Status::Ok, duration, ""),
                        );
                        rendered.push(Rendered { chart: index, env: env.to_string(), kube: kube.to_string(), file });
                    }
                    Err(err) => push(
                        steps,
                        index,
                        StepResult::new(
                            Step::Render,
                            Some(env),
                            Some(kube),
                            Status::Failed,
                            duration,
                            format!("{err:#}"),
                        ),
                    ),
                }
            }
            Err(message) => push(
                steps,
                index,
                StepResult::new(Step::Render, Some(env), Some(kube), Status::Failed, duration, message),
            ),
        }
    }

    /// Splits charts so that no render mixes two versions of one library:
    /// named templates are global in a render and the last one loaded wins.
    fn compatible_groups(&self, charts: &[usize]) -> Vec<Vec<usize>> {
        let mut groups: Vec<(BTreeMap<String, String>, Vec<usize>)> = Vec::new();
        for &index in charts {
            let libs = self.libraries.get(&index).cloned().unwrap_or_default();
            let fits =
                |known: &BTreeMap<String, String>| libs.iter().all(|(name, v)| known.get(name).is_none_or(|k| k == v));
            match groups.iter_mut().find(|(known, _)| fits(known)) {
                Some((known, members)) => {
                    known.extend(libs);
                    members.push(index);
                }
                None => groups.push((libs, vec![index])),
            }
        }
        groups.into_iter().map(|(_, members)| members).collect()
    }

    /// Renders a group (alone if it has one chart, else through a parent
    /// chart), attributing failures as described in the module docs.
    fn render_group(
        &self,
        id: &str,
        group: &[usize],
        kube: &str,
        skip_schema: bool,
        out: &mut BTreeMap<usize, (Result<String, String>, Duration)>,
    ) {
        if group.is_empty() {
            return;
        }
        if group.len() == 1 {
            let index = group[0];
            let result =
                helm::template(&self.tools.helm, &self.ctx.config.release_name, &self.staged(index), &[], &[], kube);
            let entry = match result {
                Ok(f) if f.success => (Ok(f.stdout), f.duration),
                Ok(f) => (Err(helm::clean(&f.stderr)), f.duration),
                Err(err) => (Err(format!("{err:#}")), Duration::ZERO),
            };
            out.insert(index, entry);
            return;
        }
        let parent = match self.parent_chart(id, group) {
            Ok(parent) => parent,
            Err(err) => {
                for &index in group {
                    out.insert(index, (Err(format!("cannot prepare the batch render: {err:#}")), Duration::ZERO));
                }
                return;
            }
        };
        let flags: &[&str] = if skip_schema { &["--skip-schema-validation"] } else { &[] };
        let result =
            helm::template_with(&self.tools.helm, &self.ctx.config.release_name, &parent, &[], &[], kube, flags);
        let _ = std::fs::remove_dir_all(&parent);
        match result {
            Ok(f) if f.success => {
                // Exact records, so that each chart's text is byte for byte
                // what rendering it alone prints (blank lines included).
                let by_chart = match helm::records(&f.stdout) {
                    Ok(records) => helm::unbatch(&records, PARENT),
                    // Never expected of a successful render; each chart
                    // rendered alone still gets its own verdict.
                    Err(_) => {
                        for (n, &index) in group.iter().enumerate() {
                            self.render_group(&format!("{id}s{n}"), &[index], kube, skip_schema, out);
                        }
                        return;
                    }
                };
                for &index in group {
                    let name = &self.repo.charts[index].name;
                    let text = by_chart.get(name).cloned().unwrap_or_else(|| "\n".to_string());
                    out.insert(index, (Ok(text), f.duration));
                }
            }
            Ok(f) => {
                let message = helm::clean(&f.stderr);
                let culprit = helm::chart_in_error(&message, PARENT)
                    .and_then(|name| group.iter().copied().find(|&i| self.repo.charts[i].name == name));
                match culprit {
                    Some(index) => {
                        self.render_group(id, &[index], kube, skip_schema, out);
                        let rest: Vec<usize> = group.iter().copied().filter(|&i| i != index).collect();
                        self.render_group(&format!("{id}r"), &rest, kube, skip_schema, out);
                    }
                    None => {
                        let (left, right) = group.split_at(group.len() / 2);
                        self.render_group(&format!("{id}a"), left, kube, skip_schema, out);
                        self.render_group(&format!("{id}b"), right, kube, skip_schema, out);
                    }
                }
            }
            Err(err) => {
                for &index in group {
                    out.insert(index, (Err(format!("{err:#}")), Duration::ZERO));
                }
            }
        }
    }

    /// `<work>/render/<id>/` with a Chart.yaml and `charts/<name>` links to
    /// the staged charts of the group. Without `dependencies` in Chart.yaml,
    /// helm renders every chart found in `charts/`.
    fn parent_chart(&self, id: &str, group: &[usize]) -> Result<PathBuf> {
        let dir = self.ctx.work_dir.join("render").join(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(dir.join("charts"))?;
        std::fs::write(
            dir.join("Chart.yaml"),
            format!("apiVersion: v2\nname: {PARENT}\nversion: 0.0.0\ndescription: generated by cargo xtask lint to render many charts in one helm process\n"),
        )?;
        for &index in group {
            let chart = &self.repo.charts[index];
            fs::symlink_force(&self.staged(index), &dir.join("charts").join(&chart.name))?;
        }
        Ok(dir)
    }

    fn validate(&self, rendered: &[Rendered], steps: &mut BTreeMap<usize, Vec<StepResult>>) {
        // Batched, the Kubernetes versions are validated in parallel (an
        // idle worker takes one); their steps are added in version order.
        let per_kube: Vec<BTreeMap<usize, Vec<StepResult>>> = if self.batching {
            self.kube_versions.par_iter().map(|kube| self.validate_kube(rendered, kube)).collect()
        } else {
            self.kube_versions.iter().map(|kube| self.validate_kube(rendered, kube)).collect()
        };
        for found in per_kube {
            merge(steps, found);
        }
    }

    /// One kubeconform per chunk (batched: one for all files) for `kube`.
    fn validate_kube(&self, rendered: &[Rendered], kube: &str) -> BTreeMap<usize, Vec<StepResult>> {
        let mut steps = BTreeMap::new();
        let files: Vec<&Rendered> = rendered.iter().filter(|r| r.kube == kube).collect();
        let chunks: Vec<Vec<&Rendered>> =
            if self.batching { vec![files] } else { files.into_iter().map(|f| vec![f]).collect() };
        for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
            let paths: Vec<PathBuf> = chunk.iter().map(|r| r.file.clone()).collect();
            let validated = if self.batching {
                self.validations.validate(self.tools, kube, &paths)
            } else {
                kubeconform::validate(self.tools, kube, &paths)
                    .map(|(finished, problems)| (finished.duration, problems))
            };
            match validated {
                Ok((duration, problems)) => {
                    for r in chunk {
                        let found = problems.get(&r.file).cloned().unwrap_or_default();
                        let status = Status::from_ok(found.is_empty());
                        let message = found.join("\n");
                        push(
                            &mut steps,
                            r.chart,
                            StepResult::new(Step::Validate, Some(&r.env), Some(kube), status, duration, message),
                        );
                    }
                }
                Err(err) => {
                    for r in chunk {
                        push(
                            &mut steps,
                            r.chart,
                            StepResult::new(
                                Step::Validate,
                                Some(&r.env),
                                Some(kube),
                                Status::Failed,
                                Duration::ZERO,
                                format!("{err:#}"),
                            ),
                        );
                    }
                }
            }
        }
        steps
    }
}

/// Appends every chart's steps of `more` to `steps`.
fn merge(steps: &mut BTreeMap<usize, Vec<StepResult>>, more: BTreeMap<usize, Vec<StepResult>>) {
    for (index, list) in more {
        steps.entry(index).or_default().extend(list);
    }
}

fn push(steps: &mut BTreeMap<usize, Vec<StepResult>>, index: usize, step: StepResult) {
    steps.entry(index).or_default().push(step);
}

/// The charts (name -> version) whose named templates a chart renders with:
/// every library chart among its transitive repository dependencies, and
/// every remote dependency (an archive may be a library, or carry one; without
/// opening it we assume it does, which only ever makes batches smaller).
pub fn libraries_of(repo: &Repo, graph: &crate::core::graph::ChartGraph, index: usize) -> BTreeMap<String, String> {
    let mut libs = BTreeMap::new();
    for d in graph.with_dependencies(&[index].into_iter().collect()) {
        let chart = &repo.charts[d];
        if d != index && chart.kind == ChartKind::Library {
            libs.insert(chart.name.clone(), chart.version.to_string());
        }
        for dep in chart.meta.dependencies.iter().filter(|dep| dep.remote_repository().is_some()) {
            libs.insert(dep.name.clone(), dep.version.clone().unwrap_or_default());
        }
    }
    libs
}
