//! `cargo xtask verify`: install every chart, in every environment, into a
//! real API server, and report what it said that the offline schemas could
//! not (see docs/verify.md).
//!
//! 1. discover and select charts as lint does; library charts are not
//!    installable and are left out;
//! 2. stage them ([`Stager`]) and key each chart's verdict by content
//!    ([`key`]); a chart whose key is in the cache is answered from it;
//! 3. only if something is left to check: render every chart's
//!    environments while a control plane starts (or take the user's
//!    `--kubeconfig`: dry-run only, the CRDs only looked up), then create
//!    the pinned CRDs whose kinds the renders or `argocd/` use ([`crds`]);
//!    `argocd/` is created in a namespace `argocd` and reported as its own
//!    entry;
//! 4. per chart and environment, in parallel and in dependency order (lint's
//!    [`scheduler`]: a chart starts when the charts it depends on are
//!    done; a chart's environments at once): look for duplicated objects
//!    in its render ([`manifest`]), create a namespace enforcing the chart's
//!    Pod Security level ([`security`]) and its `default` ServiceAccount
//!    ([`api`]), `helm install`, and dry-run a Pod from every workload;
//!    with `--upgrade-from`, first install the base's chart, then upgrade
//!    and roll back ([`upgrade`]);
//! 5. report in lint's shape and exit 1 if anything failed.

pub mod api;
pub mod crds;
pub mod manifest;
pub mod security;
pub mod upgrade;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::core::context::Context;
use crate::core::graph::ChartGraph;
use crate::core::model::{Chart, ChartKind, Environment, Repo};
use crate::core::outcome::{ChartResult, Status, Step, StepResult};
use crate::core::selection::Selection;
use crate::exec::cluster::{Cluster, ControlPlane, External, StartOptions};
use crate::exec::tools::Tool;
use crate::ops::affected::{self, Selected};
use crate::ops::cache::{self, Cache, KeyBuilder};
use crate::ops::lint::report::{Progress, Report};
use crate::ops::lint::scheduler;
use crate::ops::remote_cache::{self, to_publish, RemoteCache};
use crate::ops::stage::Stager;
use anyhow::Result;
use rayon::prelude::*;

/// Bumped when what a verdict means changes, so old verdicts are not reused.
const ENGINE: &str = "verify-2";

/// What a verify run is asked to do.
#[derive(Debug, Clone)]
pub struct Opts {
    pub selection: Selection,
    /// Only these environments of charts that have values-<env>.yaml files; empty: all.
    pub envs: Vec<String>,
    /// `FROM=TO` mirrors over xtask.toml's.
    pub mirrors: Vec<String>,
    /// Install the chart as it was at this commit first, then upgrade to
    /// the working tree and roll back.
    pub upgrade_from: Option<String>,
    /// A user's cluster: server-side dry-run only, nothing is written.
    pub kubeconfig: Option<PathBuf>,
    /// Ignore stored verdicts (verdicts are still stored).
    pub no_cache: bool,
    /// How many charts are installed at once; None: the number of cores.
    pub jobs: Option<usize>,
    /// The shared verdict cache on an OCI registry.
    pub remote: remote_cache::Opts,
}

impl Opts {
    fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

/// One chart to check, with everything the parallel part needs.
struct Job<'a> {
    index: usize,
    chart: &'a Chart,
    staged: PathBuf,
    envs: Vec<Environment>,
    level: Result<security::Level, String>,
}

/// Where the charts go: the control plane we started (with an API client)
/// or the user's cluster.
struct Target {
    cluster: Cluster,
    api: Option<api::Api>,
}

pub fn run(opts: &Opts, ctx: &Context) -> Result<Report> {
    let epoch = Instant::now();
    let repo = Repo::discover(&ctx.root, &ctx.config)?;
    let graph = ChartGraph::build(&repo);
    let Selected { charts: selected, broken } = affected::select(ctx, &repo, &graph, &opts.selection)?;
    let mirrors = ctx.config.mirrors_with(&opts.mirrors)?;
    let _work_lock = crate::util::fs::lock_folder(&ctx.work_dir)?;
    let cluster_version = crate::exec::tools::cluster_version()?;
    let tools = crate::exec::tools::ensure(ctx, &[])?;
    let pinned_crds = crate::exec::tools::ensure_crds(ctx)?;
    let order: Vec<usize> = graph
        .topological()
        .into_iter()
        .filter(|c| selected.contains(c) && repo.charts[*c].kind != ChartKind::Library)
        .collect();
    let base = match &opts.upgrade_from {
        Some(reference) => {
            let names: Vec<String> = order.iter().map(|&c| repo.charts[c].name.clone()).collect();
            Some(upgrade::Base::prepare(ctx, reference, &tools.helm, mirrors.clone(), &names)?)
        }
        None => None,
    };
    let stager = Stager::new(ctx, &tools.helm, mirrors);

    let needed = graph.with_dependencies(&order.iter().copied().collect());
    let stage_failures = stage(&repo, &graph, &stager, &needed);

    let cache = Cache::new(ctx.work_dir.join("cache").join("verify"));
    let remote = RemoteCache::open(ctx, &opts.remote, "verify")?;
    // argocd/ unless charts were named: cached by its files, the CRDs and
    // the API server like a chart. Known before the progress is sized, as
    // it is one of the entries counted.
    let argocd_key = (opts.selection.charts.is_empty() && ctx.root.join("argocd").is_dir())
        .then(|| argocd_key(ctx, &pinned_crds, &cluster_version, opts))
        .and_then(Result::ok);
    let progress = Progress::new(order.len() + broken.len() + usize::from(argocd_key.is_some()));
    let mut results: BTreeMap<usize, ChartResult> = BTreeMap::new();
    let mut candidates: Vec<(Job, Option<String>)> = Vec::new();
    for &index in &order {
        let chart = &repo.charts[index];
        let mut result = empty_result(chart);
        if let Some(message) = stage_failures.get(&index) {
            result.status = Status::Failed;
            result.steps.push(step(Step::Dependencies, None, false, Duration::ZERO, message.clone()));
            progress.finished(&result);
            results.insert(index, result);
            continue;
        }
        let envs = environments(chart, &opts.envs);
        let level = security::level_of(&chart.dir);
        let key = key(ctx, &repo, &graph, &stager, index, &envs, &level, &tools.helm, &cluster_version, opts, &base)
            .ok()
            .map(|k| format!("{k}-{}", pinned_crds.fingerprint));
        result.cache_key = key.clone();
        candidates.push((Job { index, chart, staged: stager.staged_dir(chart), envs, level }, key));
        results.insert(index, result);
    }
    let wanted: BTreeMap<usize, (String, String)> = candidates
        .iter()
        .filter_map(|(job, key)| key.clone().map(|key| (job.index, (key, job.chart.name.clone()))))
        .collect();
    let answers = remote_cache::answers(&cache, remote.as_ref(), &wanted, !opts.no_cache);
    let mut jobs: Vec<(Job, Option<String>)> = Vec::new();
    for (job, key) in candidates {
        match (answers.stored.get(&job.index), results.get_mut(&job.index)) {
            (Some((stored, source)), Some(result)) => {
                result.status = Status::Cached;
                result.cache = Some(*source);
                result.steps = stored.iter().cloned().map(StepResult::cached).collect();
                progress.finished(result);
            }
            _ => jobs.push((job, key)),
        }
    }

    let mut argocd: Option<ChartResult> = None;
    if let Some(key) = argocd_key.as_ref().filter(|_| !opts.no_cache) {
        if let Some(stored) = cache.get::<Vec<StepResult>>(key, "argocd") {
            let mut result = argocd_result(Vec::new());
            result.status = Status::Cached;
            result.steps = stored.into_iter().map(StepResult::cached).collect();
            progress.finished(&result);
            argocd = Some(result);
        }
    }
    let argocd_pending = argocd_key.is_some() && argocd.is_none();

    // The control plane only when something is left to check, and on this
    // thread: its processes die with the thread that started them. Every
    // chart is rendered meanwhile (renders need no cluster, and the start
    // leaves the cores half idle), which also tells which CRDs are used.
    if !jobs.is_empty() || argocd_pending {
        let dry_run = opts.kubeconfig.is_some();
        let (target, renders) = std::thread::scope(|scope| -> Result<(Target, Renders)> {
            let rendering = scope.spawn(|| render_all(ctx, &tools.helm, &cluster_version, &jobs, dry_run));
            let target = match &opts.kubeconfig {
                Some(path) => {
                    let external = External::new(Some(path.clone()), None)?;
                    let api = api::Api::from_kubeconfig(&external.kubeconfig, None);
                    Target { cluster: Cluster::External(external), api }
                }
                None => {
                    let plane = ControlPlane::start(ctx, &StartOptions::default())?;
                    let endpoint = plane.endpoint().clone();
                    let api = Some(api::Api::new(&endpoint.server, &endpoint.ca_file, &endpoint.token)?);
                    Target { cluster: Cluster::Started(plane), api }
                }
            };
            let renders = rendering.join().map_err(|_| anyhow::anyhow!("verify: a render thread panicked"))?;
            Ok((target, renders))
        })?;
        // The CRDs before any chart, only those whose kinds are used: by a
        // render, by `argocd/`, or (with --upgrade-from, whose base is not
        // rendered beforehand) all of them.
        let used = match &opts.upgrade_from {
            Some(_) => None,
            None => {
                let mut used = crds::kinds_used(renders.values().filter_map(|(r, _)| r.as_ref().ok()).flatten());
                if argocd_pending {
                    used.extend(crds::argocd_kinds(&ctx.root));
                }
                Some(used)
            }
        };
        let kinds = match (&target.api, target.cluster.dry_run_only()) {
            (Some(api), false) => crds::install(api, &pinned_crds, used.as_ref())?,
            (Some(api), true) => {
                for name in crds::missing(api, &pinned_crds)? {
                    eprintln!("note: the cluster has no CRD {name}: objects of its kind fail to install");
                }
                crds::Kinds::of(&pinned_crds)?
            }
            (None, _) => crds::Kinds::default(),
        };
        if let (true, Some(api)) = (argocd_pending, &target.api) {
            if let Some(result) = crds::verify_argocd(api, &kinds, &ctx.root, target.cluster.dry_run_only()) {
                if let (Some(key), Status::Ok) = (&argocd_key, result.status) {
                    if let Err(err) = cache.put(key, "argocd", &result.steps) {
                        eprintln!("warning: cannot store the verdict of argocd in the cache: {err:#}");
                    }
                }
                progress.finished(&result);
                argocd = Some(result);
            }
        }
        let checker = Checker { ctx, helm: &tools.helm, target: &target, base: &base, renders: &renders };
        // Dependencies before the charts that need them (lint's scheduler,
        // one chart per unit: each is its own helm release), so a broken
        // service is reported before the umbrella that embeds it fails too.
        let by_index: BTreeMap<usize, &(Job, Option<String>)> = jobs.iter().map(|j| (j.0.index, j)).collect();
        let nodes: BTreeSet<usize> = by_index.keys().copied().collect();
        let checked = std::sync::Mutex::new(Vec::new());
        scheduler::run(opts.jobs(), 1, &nodes, &|c| graph.dependencies(c), false, |batch, charts| {
            let mut passed = true;
            for index in charts {
                let Some((job, key)) = by_index.get(&index).copied() else { continue };
                progress.working(std::slice::from_ref(&job.chart.name));
                let started = elapsed_ms(epoch);
                let steps = checker.check(job);
                let failed = steps.iter().any(|s| s.status == Status::Failed);
                passed &= !failed;
                if let (false, Some(key)) = (failed, key) {
                    if let Err(err) = cache.put(key, &job.chart.name, &steps) {
                        eprintln!("warning: cannot store the verdict of {} in the cache: {err:#}", job.chart.name);
                    }
                }
                let finished = elapsed_ms(epoch);
                if let Some(result) = results.get(&job.index) {
                    let mut shown = result.clone();
                    shown.steps = steps.clone();
                    shown.status = Status::from_ok(!failed);
                    progress.finished(&shown);
                }
                checked.lock().unwrap_or_else(|e| e.into_inner()).push((index, batch, steps, started, finished));
            }
            passed
        });
        for (index, batch, steps, started, finished) in checked.into_inner().unwrap_or_else(|e| e.into_inner()) {
            if let Some(result) = results.get_mut(&index) {
                result.status = Status::from_ok(steps.iter().all(|s| s.status != Status::Failed));
                result.steps = steps;
                result.batch = Some(batch);
                result.started_ms = started;
                result.finished_ms = finished;
            }
        }
        drop(target);
    }
    if let Some(remote) = remote.as_ref().filter(|r| r.writes()) {
        remote.publish(to_publish(&results, &answers, &cache));
    }

    let mut charts: Vec<ChartResult> = results.into_values().collect();
    charts.extend(argocd);
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
            steps: vec![step(Step::Chart, None, false, Duration::ZERO, broken.error.clone())],
        });
        if let Some(shown) = charts.last() {
            progress.finished(shown);
        }
    }
    progress.clear();
    // Tools saw the staged copies; people should see their own folders.
    for chart in &mut charts {
        for s in &mut chart.steps {
            for c in &repo.charts {
                let staged = stager.staged_dir(c).display().to_string();
                if s.message.contains(&staged) {
                    s.message = s.message.replace(&staged, &c.rel);
                }
            }
        }
    }
    let ok = charts.iter().all(|c| c.status != Status::Failed);
    Ok(Report {
        charts,
        repository: Vec::new(),
        processes: crate::exec::process::started(),
        duration_ms: epoch.elapsed().as_millis() as u64,
        ok,
        remote_cache: remote.map(|r| r.summary()),
    })
}

fn empty_result(chart: &Chart) -> ChartResult {
    ChartResult {
        name: chart.name.clone(),
        path: chart.rel.clone(),
        kind: Some(chart.kind),
        status: Status::Ok,
        cache: None,
        cache_key: None,
        batch: None,
        started_ms: 0,
        finished_ms: 0,
        steps: Vec::new(),
    }
}

fn step(kind: Step, env: Option<&str>, ok: bool, duration: Duration, message: impl Into<String>) -> StepResult {
    StepResult::new(kind, env, None, Status::from_ok(ok), duration, message)
}

/// A Pod Security step that could not be checked, and why.
fn skipped(env: &str, why: &str) -> StepResult {
    StepResult::new(Step::PodSecurity, Some(env), None, Status::Skipped, Duration::ZERO, why)
}

fn elapsed_ms(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// The chart's environments, filtered by `--env` where it has named ones.
fn environments(chart: &Chart, only: &[String]) -> Vec<Environment> {
    let named = chart.environments.iter().any(|e| !e.values_files.is_empty());
    chart.environments.iter().filter(|e| only.is_empty() || !named || only.contains(&e.name)).cloned().collect()
}

/// Stages `needed` dependencies first; returns the charts that could not
/// be staged (or depend on one), with why.
fn stage(repo: &Repo, graph: &ChartGraph, stager: &Stager, needed: &BTreeSet<usize>) -> BTreeMap<usize, String> {
    let mut failed: BTreeMap<usize, String> = BTreeMap::new();
    for issue in &graph.issues {
        if let Some(index) = repo.index_of(&issue.chart) {
            failed.insert(index, issue.message.clone());
        }
    }
    for index in graph.topological().into_iter().filter(|c| needed.contains(c)) {
        if failed.contains_key(&index) {
            continue;
        }
        if let Some(dep) = graph.dependencies(index).into_iter().find(|d| failed.contains_key(d)) {
            failed.insert(index, format!("dependency {} cannot be used (see its own error)", repo.charts[dep].name));
            continue;
        }
        if let Err(err) = stager.stage(repo, &repo.charts[index]) {
            failed.insert(index, format!("{err:#}"));
        }
    }
    failed
}

/// A chart's verdict key: lint's inputs (its files and its dependencies'
/// files, remote archives by content, the values files of its
/// environments, the release name, helm) and verify's own (the control
/// plane version, the admission plugins, the Pod Security level, the mode,
/// the `--upgrade-from` commit). Computed without starting a process.
#[allow(clippy::too_many_arguments)]
fn key(
    ctx: &Context,
    repo: &Repo,
    graph: &ChartGraph,
    stager: &Stager,
    index: usize,
    envs: &[Environment],
    level: &Result<security::Level, String>,
    helm: &Tool,
    cluster_version: &str,
    opts: &Opts,
    base: &Option<upgrade::Base>,
) -> Result<String> {
    let chart = &repo.charts[index];
    let mut key = KeyBuilder::default();
    key.add("engine", ENGINE.as_bytes()).add("chart", chart.name.as_bytes());
    for member in graph.with_dependencies(&BTreeSet::from([index])) {
        let dep = &repo.charts[member];
        let ignore = crate::util::helmignore::HelmIgnore::load(&dep.dir);
        key.add("chart-files", dep.name.as_bytes());
        key.add("files", cache::hash_chart_files(&dep.dir, &|rel, is_dir| ignore.is_ignored(rel, is_dir))?.as_bytes());
    }
    for digest in stager.archive_digests(chart)? {
        key.add("archive", digest.as_bytes());
    }
    for env in envs {
        key.add("env", env.name.as_bytes());
        for file in &env.values_files {
            key.add("values", file.as_bytes()).add("content", &std::fs::read(ctx.root.join(file))?);
        }
    }
    key.add("level", format!("{level:?}").as_bytes());
    key.add("release", ctx.config.release_name.as_bytes());
    key.add("helm", helm.version.as_bytes());
    key.add("kube-apiserver", cluster_version.as_bytes());
    key.add("admission", crate::exec::cluster::ADMISSION_PLUGINS.as_bytes());
    key.add("mode", if opts.kubeconfig.is_some() { b"dry-run".as_slice() } else { b"install".as_slice() });
    if let Some(base) = base {
        key.add("upgrade-from", base.commit.as_bytes());
    }
    Ok(key.finish())
}

/// The key of `argocd/`'s verdict: its files, the CRD pins, the API server.
fn argocd_key(
    ctx: &Context,
    crds: &crate::exec::tools::crds::Crds,
    cluster_version: &str,
    opts: &Opts,
) -> Result<String> {
    let mut key = KeyBuilder::default();
    key.add("engine", ENGINE.as_bytes()).add("argocd", b"argocd");
    key.add("files", cache::hash_chart_files(&ctx.root.join("argocd"), &|_, _| false)?.as_bytes());
    key.add("crds", crds.fingerprint.as_bytes());
    key.add("kube-apiserver", cluster_version.as_bytes());
    key.add("mode", if opts.kubeconfig.is_some() { b"dry-run".as_slice() } else { b"install".as_slice() });
    Ok(key.finish())
}

fn argocd_result(steps: Vec<StepResult>) -> ChartResult {
    ChartResult {
        name: "argocd".into(),
        path: "argocd".into(),
        kind: None,
        status: Status::from_ok(steps.iter().all(|s| s.status != Status::Failed)),
        cache: None,
        cache_key: None,
        batch: None,
        started_ms: 0,
        finished_ms: 0,
        steps,
    }
}

/// What the parallel checks share.
struct Checker<'a> {
    ctx: &'a Context,
    helm: &'a Tool,
    target: &'a Target,
    base: &'a Option<upgrade::Base>,
    renders: &'a Renders,
}

/// Each chart's render per environment (by chart index and environment
/// name): its objects or helm's error, and how long it took.
type Renders = BTreeMap<(usize, String), (Result<Vec<manifest::Object>, String>, Duration)>;

/// The namespace a chart's environment is installed into: a fresh one of its
/// own on our control plane, `default` on a user's cluster (nothing created).
fn namespace_of(dry_run: bool, chart: &Chart, env: &Environment) -> String {
    if dry_run {
        "default".to_string()
    } else {
        security::namespace_for(&chart.name, &env.name)
    }
}

/// Renders every job's environments, in parallel, for the duplicates, the
/// pod templates and the CRDs they use.
fn render_all(
    ctx: &Context,
    helm: &Tool,
    kube_version: &str,
    jobs: &[(Job, Option<String>)],
    dry_run: bool,
) -> Renders {
    let work: Vec<(&Job, &Environment)> =
        jobs.iter().flat_map(|(job, _)| job.envs.iter().map(move |env| (job, env))).collect();
    work.par_iter()
        .map(|(job, env)| {
            let values: Vec<PathBuf> = env.values_files.iter().map(|f| ctx.root.join(f)).collect();
            let namespace = namespace_of(dry_run, job.chart, env);
            let started = Instant::now();
            let rendered = crate::exec::helm::template_with(
                helm,
                &ctx.config.release_name,
                &job.staged,
                &values,
                &[],
                kube_version,
                &["--namespace", &namespace],
            );
            let objects = match rendered {
                Ok(done) if done.success => manifest::objects(&done.stdout),
                Ok(done) => Err(crate::exec::helm::clean(&done.stderr)),
                Err(err) => Err(format!("{err:#}")),
            };
            ((job.index, env.name.clone()), (objects, started.elapsed()))
        })
        .collect()
}

impl Checker<'_> {
    /// Every step of one chart, its environments in parallel, reported in order.
    fn check(&self, job: &Job) -> Vec<StepResult> {
        let level = match &job.level {
            Ok(level) => level.clone(),
            Err(message) => return vec![step(Step::PodSecurity, None, false, Duration::ZERO, message.clone())],
        };
        // Environments at once (each has a namespace of its own): the
        // umbrella, which waits for every service, is the last job of a
        // run, and its environments would otherwise leave cores idle.
        let per_env: Vec<Vec<StepResult>> = job.envs.par_iter().map(|env| self.check_env(job, env, &level)).collect();
        per_env.concat()
    }

    fn values(&self, env: &Environment) -> Vec<PathBuf> {
        env.values_files.iter().map(|f| self.ctx.root.join(f)).collect()
    }

    fn check_env(&self, job: &Job, env: &Environment, level: &security::Level) -> Vec<StepResult> {
        let name = env.name.as_str();
        let release = self.ctx.config.release_name.as_str();
        let dry_run = self.target.cluster.dry_run_only();
        let namespace = namespace_of(dry_run, job.chart, env);
        let values = self.values(env);
        let mut steps = Vec::new();

        // The render ([`render_all`]), a step of its own so the report's
        // durations include it.
        let objects = match self.renders.get(&(job.index, env.name.clone())) {
            Some((Ok(objects), took)) => {
                steps.push(step(Step::Render, Some(name), true, *took, String::new()));
                objects
            }
            Some((Err(message), took)) => {
                steps.push(step(Step::Render, Some(name), false, *took, message.clone()));
                return steps;
            }
            None => {
                steps.push(step(Step::Render, Some(name), false, Duration::ZERO, "not rendered".to_string()));
                return steps;
            }
        };
        let duplicates = manifest::duplicates(objects);
        steps.push(step(Step::Duplicate, Some(name), duplicates.is_empty(), Duration::ZERO, duplicates.join("\n")));

        if let (Some(plane), Some(api)) = (self.target.cluster.writable(), &self.target.api) {
            let _ = plane;
            if let Err(message) = prepare_namespace(api, &namespace, &level.level) {
                steps.push(step(Step::Install, Some(name), false, Duration::ZERO, message));
                return steps;
            }
        }

        let (installed, base_installed) = match self.base {
            Some(base) if !dry_run => {
                let (outcome, base_installed) = base.upgrade(self, job, env, &namespace);
                let ok = outcome.iter().all(|s| s.status != Status::Failed);
                steps.extend(outcome);
                (ok, base_installed)
            }
            _ => {
                let started = Instant::now();
                let result = self.helm_release("install", release, &job.staged, &values, &namespace);
                let ok = result.is_ok();
                steps.push(step(Step::Install, Some(name), ok, started.elapsed(), result.err().unwrap_or_default()));
                (ok, false)
            }
        };
        steps.push(self.pod_security(name, level, objects, &namespace, installed));
        // Rolled back after the Pod dry-runs, which need the working tree's
        // ServiceAccounts in place.
        if let (Some(base), true) = (self.base, base_installed) {
            steps.push(base.rollback(self, job, env, &namespace));
        }
        steps
    }

    /// Pod Security: a Pod from every workload, dry-run, once what the Pods
    /// need (their ServiceAccounts) was installed; on a user's cluster in
    /// whatever its `default` namespace enforces.
    fn pod_security(
        &self,
        name: &str,
        level: &security::Level,
        objects: &[manifest::Object],
        namespace: &str,
        installed: bool,
    ) -> StepResult {
        let started = Instant::now();
        let Some(api) = &self.target.api else {
            return skipped(name, "the kubeconfig does not authenticate with a bearer token and a CA file");
        };
        if !installed {
            return skipped(name, "not checked: the install failed");
        }
        let mut refused = Vec::new();
        let mut pods = manifest::pods(objects, namespace);
        if self.target.cluster.dry_run_only() {
            // The chart's own ServiceAccounts were only dry-run installed, so
            // they do not exist there: the namespace's `default` one stands
            // in (Pod Security does not look at the account).
            for (_, pod) in &mut pods {
                if let Some(spec) = pod["spec"].as_object_mut() {
                    spec.remove("serviceAccountName");
                    spec.remove("serviceAccount");
                }
            }
        }
        for (workload, pod) in &pods {
            match api.dry_run_pod(namespace, pod) {
                Ok(answer) if answer.ok() => {}
                Ok(answer) => refused.push(format!("{workload}: {}", answer.message())),
                Err(err) => refused.push(format!("{workload}: {err:#}")),
            }
        }
        let message = if refused.is_empty() {
            format!("{}: {} pod template(s) admitted", level.describe(), pods.len())
        } else {
            format!("{}:\n{}", level.describe(), refused.join("\n"))
        };
        step(Step::PodSecurity, Some(name), refused.is_empty(), started.elapsed(), message)
    }

    /// `helm install|upgrade` of a chart folder into `namespace`: on our
    /// control plane for real (no hooks: nothing would run their Jobs, and
    /// no waiting: no Pod ever becomes ready), on a user's cluster with
    /// `--dry-run=server`. Err is helm's message.
    fn helm_release(
        &self,
        action: &str,
        release: &str,
        chart: &Path,
        values: &[PathBuf],
        namespace: &str,
    ) -> Result<(), String> {
        let mut args: Vec<OsString> = vec![action.into(), release.into(), chart.into()];
        for file in values {
            args.extend(["--values".into(), file.into()]);
        }
        args.extend(["--namespace".into(), namespace.into(), "--no-hooks".into(), "--timeout".into(), "2m".into()]);
        if self.target.cluster.dry_run_only() {
            args.push("--dry-run=server".into());
        } else {
            // Our API server checks every field itself: helm applies with
            // `fieldValidation=Strict`, and this server version supports it,
            // so helm's client-side validation would only be skipped after
            // fetching and parsing the server's OpenAPI documents to find
            // that out, in every process: half of a small chart's install
            // (0.50 -> 0.21 s of helm's CPU for one service, measured
            // 2026-12-02) and work for the API server too. The server's
            // refusals (an undeclared field, a string for a port) read the
            // same either way. A user's cluster, of any version, keeps
            // helm's default.
            args.push("--disable-openapi-validation".into());
        }
        self.helm_write(args)
    }

    /// Runs helm against the target; Err is helm's message.
    fn helm_write(&self, mut args: Vec<OsString>) -> Result<(), String> {
        args.extend(self.target.cluster.helm_args());
        match crate::exec::helm::release_action(self.helm, &args) {
            Ok(done) if done.success => Ok(()),
            Ok(done) => Err(helm_error(&done.stderr)),
            Err(err) => Err(format!("{err:#}")),
        }
    }

    /// `helm rollback RELEASE 1` in `namespace`.
    fn helm_rollback(&self, release: &str, namespace: &str) -> Result<(), String> {
        let mut args: Vec<OsString> =
            vec!["rollback".into(), release.into(), "1".into(), "--namespace".into(), namespace.into()];
        args.extend(["--no-hooks".into(), "--timeout".into(), "2m".into()]);
        self.helm_write(args)
    }
}

/// helm's error without what it logged before it: the API server's
/// warnings (Pod Security `warn` on every Deployment, which the Pod
/// dry-runs report as verdicts) and helm's own `level=WARN` copy of the
/// error.
fn helm_error(stderr: &str) -> String {
    let cleaned = crate::exec::helm::clean(stderr);
    match cleaned.find("Error: ") {
        Some(start) if start == 0 || cleaned[..start].ends_with('\n') => cleaned[start..].to_string(),
        _ => cleaned,
    }
}

/// A fresh namespace enforcing `level`, with its `default` ServiceAccount.
fn prepare_namespace(api: &api::Api, namespace: &str, level: &str) -> Result<(), String> {
    let created = api.create_namespace(namespace, level).map_err(|e| format!("{e:#}"))?;
    if !created.ok() {
        return Err(format!("cannot create namespace {namespace}: {}", created.message()));
    }
    let account = api.create_default_account(namespace).map_err(|e| format!("{e:#}"))?;
    if !account.ok() {
        return Err(format!("cannot create the default ServiceAccount of {namespace}: {}", account.message()));
    }
    Ok(())
}
