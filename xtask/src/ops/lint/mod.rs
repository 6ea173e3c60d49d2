//! `cargo xtask lint`: from the repository's charts to a verdict on every
//! chart.
//!
//! The run is planned, then executed:
//! 1. discover charts and build the dependency graph (problems become failed
//!    charts, never a crash of the whole run);
//! 2. select charts (`--chart`, `--changed`, or all);
//! 3. find the tools, stage every chart's dependency tree under the work
//!    folder, key each chart for the cache;
//! 4. check the charts that are not cached in topological order, in parallel
//!    batches ([`scheduler`], [`batch`]);
//! 5. report ([`report`]) and exit 1 if anything failed.

pub mod batch;
pub mod profile;
pub mod report;
pub mod scheduler;
pub mod tree;
pub mod umbrella;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::Result;

use std::time::Duration;

use crate::core::context::Context;
use crate::core::graph::ChartGraph;
use crate::core::model::{BrokenChart, Repo};
use crate::core::outcome::Step;
use crate::core::selection::Selection;
use crate::ops::affected::{self, Selected};
use crate::ops::cache::{self, Cache, KeyBuilder};
use crate::ops::remote_cache::{self, to_publish, Answers, RemoteCache};
use crate::ops::stage::Stager;
use crate::util::exit;
use profile::{ExtraChecks, Profile, RunInputs};
use report::{ChartResult, Progress, Report, Status, StepResult};

/// What a lint run is asked to do (the profile says how).
#[derive(Debug, Clone)]
pub struct Opts {
    /// Which charts, and the base a change is measured against.
    pub selection: Selection,
    /// Only these environments of charts that have values-<env>.yaml files; empty: all.
    pub envs: Vec<String>,
    /// Parallel batches (default: the number of cores).
    pub jobs: Option<usize>,
    /// Kubernetes versions to render and validate for (empty: xtask.toml's).
    pub kube_versions: Vec<String>,
    /// `FROM=TO` mirrors over xtask.toml's.
    pub mirrors: Vec<String>,
    /// Stop starting new checks after the first failure.
    pub fail_fast: bool,
    /// Ignore stored results (results are still stored).
    pub no_cache: bool,
    /// Check every chart on its own (the reference the batched run is tested against).
    pub no_batch: bool,
    /// The shared verdict cache on an OCI registry.
    pub remote: remote_cache::Opts,
}

impl Opts {
    fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

/// The charts a run checks, in the order it checks them, and what it
/// checks them with. Made by [`plan`], carried out by [`run`].
pub struct Plan {
    /// The context charts are read in (the profile's).
    pub ctx: Context,
    pub repo: Repo,
    pub graph: ChartGraph,
    pub selection: Selection,
    /// Selected readable charts, dependencies first; members of a cycle last.
    pub order: Vec<usize>,
    /// Selected charts whose Chart.yaml cannot be read.
    pub broken: Vec<BrokenChart>,
    pub kube_versions: Vec<String>,
    pub mirrors: BTreeMap<String, String>,
}

/// Step 1 and 2: discover, build the graph, select.
pub fn plan(opts: &Opts, profile: &dyn Profile, ctx: &Context) -> Result<Plan> {
    let ctx = profile.context(ctx);
    let mut selection = opts.selection.clone();
    if selection.base.is_none() {
        selection.base = profile.default_base();
    }
    let mut repo = Repo::discover(&ctx.root, &ctx.config)?;
    profile.adapt(&mut repo);
    let graph = ChartGraph::build(&repo);

    let kube_versions =
        if opts.kube_versions.is_empty() { ctx.config.kube_versions.clone() } else { opts.kube_versions.clone() };
    for version in &kube_versions {
        if !is_kube_version(version) {
            return exit::usage(format!("--kube-version {version:?}: expected three numbers, e.g. 1.37.0"));
        }
    }
    let mirrors = ctx.config.mirrors_with(&opts.mirrors)?;

    let Selected { charts: mut selected, mut broken } = affected::select(&ctx, &repo, &graph, &selection)?;
    profile.deselect(&repo, &mut selected, &mut broken);
    let mut order: Vec<usize> = graph.topological().into_iter().filter(|c| selected.contains(c)).collect();
    // Charts in a dependency cycle have no place in a topological order; they
    // are still reported (as failed, by their graph issue).
    let placed: BTreeSet<usize> = order.iter().copied().collect();
    order.extend(selected.iter().copied().filter(|c| !placed.contains(c)));
    Ok(Plan { ctx, repo, graph, selection, order, broken, kube_versions, mirrors })
}

/// Steps 3 to 5: stage, key, check what the cache does not answer, report.
pub fn run(opts: &Opts, profile: &dyn Profile, plan: Plan) -> Result<Report> {
    let epoch = Instant::now();
    let Plan { ctx, repo, graph, selection, order, broken, kube_versions, mirrors } = plan;
    let ctx = &ctx;
    let remote = RemoteCache::open(ctx, &opts.remote, "lint")?;
    let mut repository_checks = crate::ops::consistency::check_repository(ctx, &repo);
    repository_checks.extend(crate::ops::schema::check(ctx, &repo));
    let _work_lock = crate::util::fs::lock_folder(&ctx.work_dir)?;
    let tools = crate::exec::tools::ensure(ctx, &kube_versions)?;
    let jobs = opts.jobs();
    let extra =
        profile.prepare(&RunInputs { ctx, repo: &repo, graph: &graph, tools: &tools, selection: &selection, jobs })?;
    let stager = Stager::new(ctx, &tools.helm, mirrors);

    let selected: BTreeSet<usize> = order.iter().copied().collect();
    let needed = graph.with_dependencies(&selected);
    let stage_steps = stage_all(&repo, &graph, &stager, &needed);
    let keying = Keying {
        ctx,
        repo: &repo,
        graph: &graph,
        stager: &stager,
        tools: &tools,
        kube_versions: &kube_versions,
        envs: &opts.envs,
    };
    let keys = keying.keys(&needed, &stage_steps);
    let keys = match &extra {
        Some(extra) => with_extra_keys(&repo, extra.as_ref(), keys),
        None => keys,
    };

    let cache = Cache::new(ctx.work_dir.join("cache"));
    let progress = Progress::new(order.len() + broken.len());
    let wanted: BTreeMap<usize, (String, String)> = order
        .iter()
        .filter(|i| stage_steps.get(i).is_some_and(|s| s.status == Status::Ok))
        .filter_map(|&i| keys.get(&i).map(|key| (i, (key.clone(), repo.charts[i].name.clone()))))
        .collect();
    let answers = remote_cache::answers(&cache, remote.as_ref(), &wanted, !opts.no_cache);
    let (results, to_check) = answered(&repo, &order, &stage_steps, &keys, &answers, &progress, epoch);

    let libraries = to_check.iter().map(|&i| (i, batch::libraries_of(&repo, &graph, i))).collect();
    let validations = validate::Validations::new(&ctx.work_dir)?;
    let checker = batch::Checker {
        ctx,
        repo: &repo,
        tools: &tools,
        stager: &stager,
        kube_versions: kube_versions.clone(),
        strict: profile.strict(),
        env_filter: opts.envs.clone(),
        libraries,
        batching: !opts.no_batch,
        cache: &cache,
        keys: &keys,
        read_cache: !opts.no_cache,
        jobs,
        validations: &validations,
        trees: tree::Memo::default(),
    };
    // The profile's checks (ct's yamale and yamllint: one Python process)
    // run on a thread of their own while the engine's batches run, instead
    // of leaving a core idle before the first batch starts.
    let (results, never_ran) = std::thread::scope(|scope| {
        let extra_steps =
            ExtraSteps::start(extra.as_ref().map(|e| scope.spawn(|| e.check(ctx, &repo, &stager, &to_check))));
        check_all(opts, &graph, &repo, &checker, &cache, &progress, results, &to_check, &extra_steps, epoch)
    });
    progress.clear();
    if let Some(remote) = remote.as_ref().filter(|r| r.writes()) {
        remote.publish(to_publish(&results, &answers, &cache));
    }

    let mut charts = finish(results, never_ran, broken);
    // What `ci-matrix --max-jobs` balances the next CI run's jobs by.
    if let Err(err) = crate::ops::durations::record(&ctx.work_dir, &charts) {
        eprintln!("warning: cannot record how long the charts took: {err:#}");
    }
    // Tools saw the staged copies; people should see their own folders.
    let staged: Vec<(String, String)> =
        repo.charts.iter().map(|c| (stager.staged_dir(c).display().to_string(), c.rel.clone())).collect();
    for chart in &mut charts {
        for step in &mut chart.steps {
            for (from, to) in &staged {
                if step.message.contains(from.as_str()) {
                    step.message = step.message.replace(from.as_str(), to);
                }
            }
        }
    }

    let ok = charts.iter().all(|c| c.status != Status::Failed)
        && repository_checks.iter().all(|c| c.status != Status::Failed);
    Ok(Report {
        charts,
        repository: repository_checks,
        processes: crate::exec::process::started(),
        duration_ms: epoch.elapsed().as_millis() as u64,
        ok,
        remote_cache: remote.map(|r| r.summary()),
    })
}

/// Stages (dependencies first) every chart in `needed`. A chart with a graph
/// problem of its own, or depending on a chart that cannot be used, fails
/// its `dependencies` step and is not staged.
fn stage_all(
    repo: &Repo,
    graph: &ChartGraph,
    stager: &Stager,
    needed: &BTreeSet<usize>,
) -> BTreeMap<usize, StepResult> {
    let mut blocked: BTreeMap<usize, String> = BTreeMap::new();
    for issue in &graph.issues {
        if let Some(index) = repo.index_of(&issue.chart) {
            let entry = blocked.entry(index).or_default();
            if !entry.is_empty() {
                entry.push('\n');
            }
            entry.push_str(&issue.message);
        }
    }
    let mut steps: BTreeMap<usize, StepResult> = BTreeMap::new();
    let mut stage_order: Vec<usize> = graph.topological().into_iter().filter(|c| needed.contains(c)).collect();
    let staged_set: BTreeSet<usize> = stage_order.iter().copied().collect();
    stage_order.extend(needed.iter().copied().filter(|c| !staged_set.contains(c)));
    for index in stage_order {
        let chart = &repo.charts[index];
        let started = Instant::now();
        let broken_dep = graph
            .dependencies(index)
            .into_iter()
            .find(|d| blocked.contains_key(d) || steps.get(d).is_some_and(|s| s.status == Status::Failed));
        let result = match (blocked.get(&index), broken_dep) {
            (Some(message), _) => Err(message.clone()),
            (None, Some(dep)) => {
                Err(format!("dependency {} cannot be used (see its own error)", repo.charts[dep].name))
            }
            (None, None) => stager.stage(repo, chart).map(|_| ()).map_err(|e| format!("{e:#}")),
        };
        let (status, message) = match result {
            Ok(()) => (Status::Ok, String::new()),
            Err(message) => (Status::Failed, message),
        };
        steps.insert(index, StepResult::new(Step::Dependencies, None, None, status, started.elapsed(), message));
    }
    steps
}

/// What every chart's cache key is made of besides its own files.
struct Keying<'a> {
    ctx: &'a Context,
    repo: &'a Repo,
    graph: &'a ChartGraph,
    stager: &'a Stager<'a>,
    tools: &'a crate::exec::tools::Toolset,
    kube_versions: &'a [String],
    envs: &'a [String],
}

impl Keying<'_> {
    /// Cache keys of the staged charts, dependencies first so each key can
    /// include its dependencies' keys.
    fn keys(&self, needed: &BTreeSet<usize>, stage_steps: &BTreeMap<usize, StepResult>) -> BTreeMap<usize, String> {
        let mut keys: BTreeMap<usize, String> = BTreeMap::new();
        for index in self.graph.topological().into_iter().filter(|c| needed.contains(c)) {
            if stage_steps.get(&index).is_some_and(|s| s.status == Status::Ok) {
                if let Ok(key) = self.key(&keys, index) {
                    keys.insert(index, key);
                }
            }
        }
        keys
    }
}

/// Folds the profile's extra inputs into each key; a chart whose extra
/// inputs cannot be keyed is checked, not cached.
fn with_extra_keys(
    repo: &Repo,
    extra: &(dyn ExtraChecks + Send + Sync),
    keys: BTreeMap<usize, String>,
) -> BTreeMap<usize, String> {
    keys.into_iter()
        .filter_map(|(index, engine)| {
            let part = extra.key_part(repo, index).ok()?;
            let mut key = KeyBuilder::default();
            key.add("engine", engine.as_bytes()).add("ct", part.as_bytes());
            Some((index, key.finish()))
        })
        .collect()
}

/// A result for every chart of `order`: failed when it could not be staged,
/// cached when a cache (local, then remote) holds its key; the others are
/// left to check.
fn answered(
    repo: &Repo,
    order: &[usize],
    stage_steps: &BTreeMap<usize, StepResult>,
    keys: &BTreeMap<usize, String>,
    answers: &Answers,
    progress: &Progress,
    epoch: Instant,
) -> (BTreeMap<usize, ChartResult>, BTreeSet<usize>) {
    let mut results = BTreeMap::new();
    let mut to_check = BTreeSet::new();
    for &index in order {
        let chart = &repo.charts[index];
        let stage = stage_steps.get(&index).cloned();
        let now = elapsed_ms(epoch);
        let mut result = ChartResult {
            name: chart.name.clone(),
            path: chart.rel.clone(),
            kind: Some(chart.kind),
            status: Status::Ok,
            cache: None,
            cache_key: keys.get(&index).cloned(),
            batch: None,
            started_ms: now,
            finished_ms: now,
            steps: stage.clone().into_iter().collect(),
        };
        if stage.is_some_and(|s| s.status == Status::Failed) {
            result.status = Status::Failed;
            progress.finished(&result);
        } else if let Some((stored, source)) = answers.stored.get(&index) {
            result.status = Status::Cached;
            result.cache = Some(*source);
            result.steps = stored.iter().cloned().map(StepResult::cached).collect();
            progress.finished(&result);
        } else {
            to_check.insert(index);
        }
        results.insert(index, result);
    }
    (results, to_check)
}

/// Step 4: checks `to_check` in topological batches; a passing verdict is
/// stored in the cache. Returns the results and the charts `--fail-fast`
/// never started.
#[allow(clippy::too_many_arguments)]
fn check_all(
    opts: &Opts,
    graph: &ChartGraph,
    repo: &Repo,
    checker: &batch::Checker,
    cache: &Cache,
    progress: &Progress,
    results: BTreeMap<usize, ChartResult>,
    to_check: &BTreeSet<usize>,
    extra_steps: &ExtraSteps<'_>,
    epoch: Instant,
) -> (BTreeMap<usize, ChartResult>, BTreeSet<usize>) {
    let results_lock = std::sync::Mutex::new(results);
    // Charts whose engine steps are done while the profile's are still being
    // made: settled once those arrive, so that no batch (and none of its
    // dependents) waits for the profile's checks.
    let deferred = std::sync::Mutex::new(Vec::new());
    let settle = |index: usize, steps: Vec<StepResult>, (batch_id, started, finished): (usize, u64, u64)| {
        let mut results = results_lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(result) = results.get_mut(&index) else { return true };
        let failed = steps.iter().any(|s| s.status == Status::Failed);
        if !failed {
            if let Some(key) = &result.cache_key {
                if let Err(err) = cache.put(key, &result.name, &steps) {
                    eprintln!("warning: cannot store the result of {} in the cache: {err:#}", result.name);
                }
            }
        }
        result.steps.extend(steps);
        result.status = if failed { Status::Failed } else { Status::Ok };
        result.batch = Some(batch_id);
        result.started_ms = started;
        result.finished_ms = finished;
        progress.finished(result);
        !failed
    };
    let never_ran = scheduler::run(
        opts.jobs(),
        if opts.no_batch { 1 } else { usize::MAX },
        to_check,
        &|c| graph.dependencies(c),
        opts.fail_fast,
        |batch_id, charts| {
            let names: Vec<String> = charts.iter().map(|&c| repo.charts[c].name.clone()).collect();
            progress.working(&names);
            let started = elapsed_ms(epoch);
            let steps = checker.check(batch_id, &charts);
            let finished = elapsed_ms(epoch);
            let mut all_ok = true;
            for (index, chart_steps) in steps {
                match extra_steps.try_take(index) {
                    // The profile's checks come first, in the order it makes them.
                    Taken::Ready(first) => {
                        let mut all = first.unwrap_or_default();
                        all.extend(chart_steps);
                        all_ok &= settle(index, all, (batch_id, started, finished));
                    }
                    // --fail-fast sees a failure of the profile's checks
                    // only once they are made, at the end.
                    Taken::Pending => {
                        all_ok &= chart_steps.iter().all(|s| s.status != Status::Failed);
                        let mut deferred = deferred.lock().unwrap_or_else(|e| e.into_inner());
                        deferred.push((index, chart_steps, (batch_id, started, finished)));
                    }
                }
            }
            all_ok
        },
    );
    for (index, chart_steps, batch) in deferred.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let mut all = extra_steps.take(index).unwrap_or_default();
        all.extend(chart_steps);
        settle(index, all, batch);
    }
    (results_lock.into_inner().unwrap_or_else(|e| e.into_inner()), never_ran)
}

/// The profile's steps per chart, while they are still being made and once
/// they are. A chart's verdict (and what the cache stores) needs all of its
/// steps, so a chart whose engine steps finish first is settled later
/// ([`check_all`]); nothing in the scheduler waits for them.
struct ExtraSteps<'scope> {
    state: std::sync::Mutex<ExtraState<'scope>>,
}

type StepsByChart = BTreeMap<usize, Vec<StepResult>>;

/// What [`ExtraSteps::try_take`] found.
enum Taken {
    Ready(Option<Vec<StepResult>>),
    Pending,
}

enum ExtraState<'scope> {
    Running(std::thread::ScopedJoinHandle<'scope, StepsByChart>),
    Done(StepsByChart),
}

impl<'scope> ExtraSteps<'scope> {
    fn start(running: Option<std::thread::ScopedJoinHandle<'scope, StepsByChart>>) -> Self {
        let state = running.map_or_else(|| ExtraState::Done(BTreeMap::new()), ExtraState::Running);
        ExtraSteps { state: std::sync::Mutex::new(state) }
    }

    /// The steps of chart `index` if they are made (`Ready(None)`: the
    /// profile has none for it), without waiting.
    fn try_take(&self, index: usize) -> Taken {
        let finished = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match &*state {
                ExtraState::Running(handle) => handle.is_finished(),
                ExtraState::Done(_) => true,
            }
        };
        if finished {
            Taken::Ready(self.take(index))
        } else {
            Taken::Pending
        }
    }

    /// The steps of chart `index`, waiting for them if they are not made yet.
    fn take(&self, index: usize) -> Option<Vec<StepResult>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, ExtraState::Running(_)) {
            if let ExtraState::Running(handle) = std::mem::replace(&mut *state, ExtraState::Done(BTreeMap::new())) {
                // A panic there is a bug: carry it on rather than judge a
                // chart without its profile's checks.
                *state = ExtraState::Done(handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
            }
        }
        match &mut *state {
            ExtraState::Done(steps) => steps.remove(&index),
            ExtraState::Running(_) => None,
        }
    }
}

/// The chart results in order: `--fail-fast`'s skipped charts marked, and
/// the charts whose Chart.yaml could not be read at all appended.
fn finish(
    mut results: BTreeMap<usize, ChartResult>,
    never_ran: BTreeSet<usize>,
    broken: Vec<BrokenChart>,
) -> Vec<ChartResult> {
    for index in never_ran {
        if let Some(result) = results.get_mut(&index) {
            result.status = Status::Skipped;
            result.steps.push(StepResult::new(
                Step::Lint,
                None,
                None,
                Status::Skipped,
                Duration::ZERO,
                "not started: --fail-fast stopped the run after a failure",
            ));
        }
    }
    let mut charts: Vec<ChartResult> = results.into_values().collect();
    for broken in broken {
        charts.push(ChartResult {
            name: broken.name.clone(),
            path: broken.rel.clone(),
            kind: None,
            status: Status::Failed,
            cache: None,
            cache_key: None,
            batch: None,
            started_ms: 0,
            finished_ms: 0,
            steps: vec![StepResult::new(Step::Chart, None, None, Status::Failed, Duration::ZERO, broken.error.clone())],
        });
    }
    charts
}

fn elapsed_ms(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// Prints the plan (`--dry-run`): charts, order, batches possible.
pub fn print_plan(plan: &Plan) {
    let (repo, graph, order) = (&plan.repo, &plan.graph, &plan.order);
    let depths = graph.depths();
    eprintln!("plan: {} chart(s), dependencies first; charts of one depth can share tool processes", order.len());
    for &index in order {
        let chart = &repo.charts[index];
        let deps: Vec<String> = graph.dependencies(index).into_iter().map(|d| repo.charts[d].name.clone()).collect();
        let envs: Vec<&str> = chart.environments.iter().map(|e| e.name.as_str()).collect();
        eprintln!(
            "  depth {} {:<12} {:<11} envs [{}] after [{}]",
            depths.get(&index).copied().unwrap_or(0),
            chart.name,
            chart.kind.as_str(),
            envs.join(", "),
            deps.join(", ")
        );
    }
    for issue in &graph.issues {
        eprintln!("  problem: {}: {}", issue.chart, issue.message);
    }
}

fn is_kube_version(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

impl Keying<'_> {
    /// The cache key of a chart: see [`crate::ops::cache`] for what goes in.
    fn key(&self, keys: &BTreeMap<usize, String>, index: usize) -> Result<String> {
        let Keying { ctx, repo, graph, stager, tools, kube_versions, envs } = self;
        let chart = &repo.charts[index];
        let mut key = KeyBuilder::default();
        key.add("chart", chart.name.as_bytes());
        let ignore = crate::util::helmignore::HelmIgnore::load(&chart.dir);
        key.add(
            "files",
            cache::hash_chart_files(&chart.dir, &|rel, is_dir| ignore.is_ignored(rel, is_dir))?.as_bytes(),
        );
        for dep in graph.dependencies(index) {
            let dep_key =
                keys.get(&dep).ok_or_else(|| anyhow::anyhow!("dependency {} has no key", repo.charts[dep].name))?;
            key.add("dependency", dep_key.as_bytes());
        }
        for digest in stager.archive_digests(chart)? {
            key.add("archive", digest.as_bytes());
        }
        let mut env_names: Vec<&String> = envs.iter().collect();
        env_names.sort();
        for env in env_names {
            key.add("env", env.as_bytes());
        }
        for kube in kube_versions.iter() {
            key.add("kube", kube.as_bytes());
        }
        key.add("release", ctx.config.release_name.as_bytes());
        key.add("kind", chart.kind.as_str().as_bytes());
        key.add("helm", tools.helm.version.as_bytes());
        key.add("kubeconform", tools.kubeconform.version.as_bytes());
        key.add("schemas", tools.schemas.fingerprint.as_bytes());
        key.add("schema-locations", tools.schemas.locations.join("\n").as_bytes());
        Ok(key.finish())
    }
}
