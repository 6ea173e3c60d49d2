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
pub mod report;
pub mod scheduler;
pub mod tree;
pub mod umbrella;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::Result;

use crate::core::context::{Context, Format};
use crate::core::graph::ChartGraph;
use crate::core::model::Repo;
use crate::ops::cache::{self, Cache, KeyBuilder};
use crate::ops::stage::Stager;
use crate::util::exit;
use report::{ChartResult, Progress, Report, Status, StepResult};

/// Options of `cargo xtask lint`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Check only this chart (repeatable); its dependencies are staged, not checked.
    #[arg(long = "chart", value_name = "NAME")]
    pub charts: Vec<String>,
    /// Check the charts changed since the merge base with --base, and their dependents.
    #[arg(long)]
    pub changed: bool,
    /// The branch or commit --changed compares with (default: origin/main, else main).
    #[arg(long, value_name = "REF", requires = "changed")]
    pub base: Option<String>,
    /// Check only this environment of charts that have values-<env>.yaml files (repeatable).
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
    /// Parallel batches (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Kubernetes version to render and validate for, X.Y.Z (repeatable; default from xtask.toml).
    #[arg(long = "kube-version", value_name = "X.Y.Z")]
    pub kube_versions: Vec<String>,
    /// Fetch a dependency repository's charts from another one: FROM=TO (repeatable).
    #[arg(long = "mirror", value_name = "FROM=TO")]
    pub mirrors: Vec<String>,
    /// Stop starting new checks after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Ignore stored results (results are still stored).
    #[arg(long)]
    pub no_cache: bool,
    /// Check every chart on its own: one set of tool processes per chart (the
    /// reference the batched run is tested against; slow).
    #[arg(long)]
    pub no_batch: bool,
    /// Print the plan (charts, order, batches possible) and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// chart-testing configuration to follow [default: ct.yaml at the root, if there is one].
    #[arg(long = "config", value_name = "FILE")]
    pub ct_config: Option<std::path::PathBuf>,
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    let epoch = Instant::now();
    // A repository set up for chart-testing is linted as `ct lint` would
    // lint it: its chart folders, its target branch, its checks (ct/).
    let mut args = args;
    let ct = crate::ops::ct::Ct::load(ctx, args.ct_config.as_deref())?;
    // `helm lint --strict` unless ct's configuration lints without it.
    let strict = ct.as_ref().is_none_or(|ct| ct.config.lint_strict);
    let ct_ctx = ct.as_ref().map(|ct| ct.context(ctx));
    let ctx = ct_ctx.as_ref().unwrap_or(ctx);
    if let (Some(ct), None) = (&ct, &args.base) {
        args.base = Some(ct.config.target_ref());
    }
    let mut repo = Repo::discover(&ctx.root, &ctx.config)?;
    if let Some(ct) = &ct {
        ct.resolve_repository_names(&mut repo);
    }
    let repo = repo;
    let graph = ChartGraph::build(&repo);

    let kube_versions =
        if args.kube_versions.is_empty() { ctx.config.kube_versions.clone() } else { args.kube_versions.clone() };
    for version in &kube_versions {
        if !is_kube_version(version) {
            return exit::usage(format!("--kube-version {version:?}: expected three numbers, e.g. 1.37.0"));
        }
    }
    let mut mirrors = ctx.config.mirrors.clone();
    for flag in &args.mirrors {
        let (from, to) = crate::core::config::parse_mirror(flag)?;
        mirrors.insert(from, to);
    }

    let (mut selected, mut selected_broken) = select(&args, ctx, &repo, &graph)?;
    if let Some(ct) = &ct {
        ct.deselect(&repo, &mut selected, &mut selected_broken);
    }
    let mut order: Vec<usize> = graph.topological().into_iter().filter(|c| selected.contains(c)).collect();
    // Charts in a dependency cycle have no place in a topological order; they
    // are still reported (as failed, by their graph issue).
    let placed: BTreeSet<usize> = order.iter().copied().collect();
    order.extend(selected.iter().copied().filter(|c| !placed.contains(c)));
    if args.dry_run {
        print_plan(&repo, &graph, &order);
        return Ok(());
    }

    let mut repository_checks = crate::ops::consistency::check_repository(ctx, &repo);
    repository_checks.extend(crate::ops::schema::check(ctx, &repo));
    let _work_lock = crate::util::fs::lock_folder(&ctx.work_dir)?;
    let tools = crate::exec::tools::ensure(ctx, &kube_versions)?;
    let ct = match &ct {
        Some(ct) => {
            // ct checks versions only of the charts that hold a change.
            let changed = if args.changed && ct.config.check_version_increment {
                Some(crate::ops::affected::compute(ctx, &repo, &graph, args.base.as_deref())?.changed)
            } else {
                None
            };
            let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            Some(ct.prepare(ctx, &repo, &tools.helm, changed.as_ref(), jobs)?)
        }
        None => None,
    };
    let stager = Stager::new(ctx, &tools.helm, mirrors);

    // Charts that cannot be checked: a graph problem of their own, or of any
    // chart they depend on.
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

    // Stage (dependencies first) everything the selected charts need.
    let needed = graph.with_dependencies(&selected);
    let mut stage_steps: BTreeMap<usize, StepResult> = BTreeMap::new();
    let mut stage_order: Vec<usize> = graph.topological().into_iter().filter(|c| needed.contains(c)).collect();
    let staged_set: BTreeSet<usize> = stage_order.iter().copied().collect();
    stage_order.extend(needed.iter().copied().filter(|c| !staged_set.contains(c)));
    for index in stage_order {
        let chart = &repo.charts[index];
        let started = Instant::now();
        let broken_dep = graph
            .dependencies(index)
            .into_iter()
            .find(|d| blocked.contains_key(d) || stage_steps.get(d).is_some_and(|s| s.status == Status::Failed));
        let result = match (blocked.get(&index), broken_dep) {
            (Some(message), _) => Err(message.clone()),
            (None, Some(dep)) => {
                Err(format!("dependency {} cannot be used (see its own error)", repo.charts[dep].name))
            }
            (None, None) => stager.stage(&repo, chart).map(|_| ()).map_err(|e| format!("{e:#}")),
        };
        let step = match result {
            Ok(()) => StepResult::new("dependencies", None, None, Status::Ok, started.elapsed(), ""),
            Err(message) => StepResult::new("dependencies", None, None, Status::Failed, started.elapsed(), message),
        };
        stage_steps.insert(index, step);
    }

    // Cache keys, dependencies first so each key can include its dependencies' keys.
    let cache = Cache::new(ctx.work_dir.join("cache"));
    let mut keys: BTreeMap<usize, String> = BTreeMap::new();
    for index in graph.topological().into_iter().filter(|c| needed.contains(c)) {
        if stage_steps.get(&index).is_some_and(|s| s.status == Status::Ok) {
            if let Ok(key) = cache_key(ctx, &repo, &graph, &stager, &tools, &kube_versions, &args.envs, &keys, index) {
                keys.insert(index, key);
            }
        }
    }

    if let Some(ct) = &ct {
        // ct's checks read more than the packaged files (see ct/mod.rs); a
        // chart whose ct inputs cannot be keyed is checked, not cached.
        let charts: Vec<usize> = keys.keys().copied().collect();
        for index in charts {
            match ct.key_part(&repo, index) {
                Ok(part) => {
                    let mut key = KeyBuilder::default();
                    key.add("engine", keys[&index].as_bytes()).add("ct", part.as_bytes());
                    keys.insert(index, key.finish());
                }
                Err(_) => {
                    keys.remove(&index);
                }
            }
        }
    }

    let progress = Progress::new(order.len() + selected_broken.len());
    let mut results: BTreeMap<usize, ChartResult> = BTreeMap::new();
    let elapsed_ms = |epoch: Instant| epoch.elapsed().as_millis() as u64;
    let mut to_check = BTreeSet::new();
    for &index in &order {
        let chart = &repo.charts[index];
        let stage = stage_steps.get(&index).cloned();
        let mut result = ChartResult {
            name: chart.name.clone(),
            path: chart.rel.clone(),
            kind: Some(chart.kind),
            status: Status::Ok,
            cache_key: keys.get(&index).cloned(),
            batch: None,
            started_ms: elapsed_ms(epoch),
            finished_ms: elapsed_ms(epoch),
            steps: stage.clone().into_iter().collect(),
        };
        if stage.is_some_and(|s| s.status == Status::Failed) {
            result.status = Status::Failed;
            progress.finished(&result);
        } else if let Some(stored) =
            keys.get(&index).filter(|_| !args.no_cache).and_then(|k| cache.get::<Vec<StepResult>>(k, &chart.name))
        {
            result.status = Status::Cached;
            result.steps = stored
                .into_iter()
                .map(|mut s| {
                    s.status = Status::Cached;
                    s.duration_ms = 0;
                    s
                })
                .collect();
            progress.finished(&result);
        } else {
            to_check.insert(index);
        }
        results.insert(index, result);
    }

    let libraries = to_check.iter().map(|&i| (i, batch::libraries_of(&repo, &graph, i))).collect();
    let validations = validate::Validations::new(&ctx.work_dir)?;
    let checker = batch::Checker {
        ctx,
        repo: &repo,
        tools: &tools,
        stager: &stager,
        kube_versions: kube_versions.clone(),
        strict,
        env_filter: args.envs.clone(),
        libraries,
        batching: !args.no_batch,
        cache: &cache,
        keys: &keys,
        read_cache: !args.no_cache,
        jobs: args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        validations: &validations,
        trees: tree::Memo::default(),
    };
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let ct_steps =
        std::sync::Mutex::new(ct.as_ref().map(|ct| ct.check(ctx, &repo, &stager, &to_check)).unwrap_or_default());
    let results_lock = std::sync::Mutex::new(results);
    let never_ran = scheduler::run(
        jobs,
        if args.no_batch { 1 } else { usize::MAX },
        &to_check,
        &|c| graph.dependencies(c),
        args.fail_fast,
        |batch_id, charts| {
            let names: Vec<String> = charts.iter().map(|&c| repo.charts[c].name.clone()).collect();
            progress.working(&names);
            let started = elapsed_ms(epoch);
            let steps = checker.check(batch_id, &charts);
            let finished = elapsed_ms(epoch);
            let mut all_ok = true;
            let mut results = results_lock.lock().unwrap_or_else(|e| e.into_inner());
            for (index, chart_steps) in steps {
                let Some(result) = results.get_mut(&index) else { continue };
                // ct's checks come first, in the order ct makes them.
                let chart_steps = match ct_steps.lock().ok().and_then(|mut ct| ct.remove(&index)) {
                    Some(mut first) => {
                        first.extend(chart_steps);
                        first
                    }
                    None => chart_steps,
                };
                let failed = chart_steps.iter().any(|s| s.status == Status::Failed);
                if !failed {
                    if let Some(key) = &result.cache_key {
                        if let Err(err) = cache.put(key, &result.name, &chart_steps) {
                            eprintln!("warning: cannot store the result of {} in the cache: {err:#}", result.name);
                        }
                    }
                }
                all_ok &= !failed;
                result.steps.extend(chart_steps);
                result.status = if failed { Status::Failed } else { Status::Ok };
                result.batch = Some(batch_id);
                result.started_ms = started;
                result.finished_ms = finished;
                progress.finished(result);
            }
            all_ok
        },
    );
    progress.clear();
    let mut results = results_lock.into_inner().unwrap_or_else(|e| e.into_inner());
    for index in never_ran {
        if let Some(result) = results.get_mut(&index) {
            result.status = Status::Skipped;
            result.steps.push(StepResult::new(
                "lint",
                None,
                None,
                Status::Skipped,
                std::time::Duration::ZERO,
                "not started: --fail-fast stopped the run after a failure",
            ));
        }
    }

    // Charts whose Chart.yaml could not be read at all.
    let mut charts: Vec<ChartResult> = results.into_values().collect();
    for broken in selected_broken {
        charts.push(ChartResult {
            name: broken.name.clone(),
            path: broken.rel.clone(),
            kind: None,
            status: Status::Failed,
            cache_key: None,
            batch: None,
            started_ms: 0,
            finished_ms: 0,
            steps: vec![StepResult::new(
                "chart",
                None,
                None,
                Status::Failed,
                std::time::Duration::ZERO,
                broken.error.clone(),
            )],
        });
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
    let report = Report {
        charts,
        repository: repository_checks,
        processes: crate::exec::process::started(),
        duration_ms: elapsed_ms(epoch),
        ok,
    };
    if ctx.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    report::print_summary(&report, ctx.color);
    if report.ok {
        Ok(())
    } else {
        Err(exit::ChecksFailed.into())
    }
}

/// The charts to check: `--chart` names, `--changed`, or all of them.
fn select(
    args: &Args,
    ctx: &Context,
    repo: &Repo,
    graph: &ChartGraph,
) -> Result<(BTreeSet<usize>, Vec<crate::core::model::BrokenChart>)> {
    if !args.charts.is_empty() {
        let mut selected = BTreeSet::new();
        let mut broken = Vec::new();
        for name in &args.charts {
            if let Some(index) = repo.index_of(name) {
                selected.insert(index);
            } else if let Some(b) = repo.broken.iter().find(|b| &b.name == name) {
                broken.push(b.clone());
            } else {
                return exit::usage(format!(
                    "--chart {name}: no such chart; the charts are: {}",
                    repo.all_names().join(", ")
                ));
            }
        }
        return Ok((selected, broken));
    }
    if args.changed {
        let changed = crate::ops::affected::changed_charts(ctx, repo, graph, args.base.as_deref())?;
        return Ok((changed, Vec::new()));
    }
    Ok(((0..repo.charts.len()).collect(), repo.broken.clone()))
}

fn print_plan(repo: &Repo, graph: &ChartGraph, order: &[usize]) {
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

/// The cache key of a chart: see [`crate::ops::cache`] for what goes in.
#[allow(clippy::too_many_arguments)]
fn cache_key(
    ctx: &Context,
    repo: &Repo,
    graph: &ChartGraph,
    stager: &Stager,
    tools: &crate::exec::tools::Toolset,
    kube_versions: &[String],
    envs: &[String],
    keys: &BTreeMap<usize, String>,
    index: usize,
) -> Result<String> {
    let chart = &repo.charts[index];
    let mut key = KeyBuilder::default();
    key.add("chart", chart.name.as_bytes());
    let ignore = crate::util::helmignore::HelmIgnore::load(&chart.dir);
    key.add("files", cache::hash_chart_files(&chart.dir, &|rel, is_dir| ignore.is_ignored(rel, is_dir))?.as_bytes());
    for dep in graph.dependencies(index) {
        let dep_key =
            keys.get(&dep).ok_or_else(|| anyhow::anyhow!("dependency {} has no key", repo.charts[dep].name))?;
        key.add("dependency", dep_key.as_bytes());
    }
    // Remote archives by content: a re-pushed tag with new content is a change.
    let staged_charts = stager.staged_dir(chart).join("charts");
    if let Ok(entries) = std::fs::read_dir(&staged_charts) {
        let mut archives: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "tgz"))
            .collect();
        archives.sort();
        for archive in archives {
            key.add("archive", crate::util::fs::sha256_hex(&std::fs::read(&archive)?).as_bytes());
        }
    }
    let mut env_names: Vec<&String> = envs.iter().collect();
    env_names.sort();
    for env in env_names {
        key.add("env", env.as_bytes());
    }
    for kube in kube_versions {
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
