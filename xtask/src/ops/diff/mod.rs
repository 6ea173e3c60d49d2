//! `cargo xtask diff`: what a change does to the rendered manifests, per
//! chart, environment and Kubernetes object.
//!
//! The plan:
//! 1. find the base (`--base`, default `origin/main`, else `main`) and its
//!    merge base with HEAD, and the charts to compare: `--chart`, or the
//!    charts changed since the merge base and everything that depends on
//!    them ([`crate::ops::affected`]), plus charts the change deleted;
//! 2. check the merge base out as a detached `git worktree` in this run's
//!    own folder under the work folder ([`worktree`]), removed again when the
//!    run ends, also on error;
//! 3. render both sides with the same helm, release name, Kubernetes
//!    version and mirrors ([`render`]);
//! 4. compare object by object ([`semantic`]) and print ([`report`]).
//!
//! `--format markdown` prints a report that fits a pull request comment.
//!
//! The exit code is 0 when both sides rendered (whatever the differences),
//! 1 when something failed to render, 2 for usage errors and 3 when git,
//! the base or a tool is missing.

mod render;
mod report;
mod semantic;
pub mod worktree;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use crate::core::context::{Context, Format};
use crate::core::selection::Selection;
use crate::exec::git::Git;
use crate::util::exit;
use render::{Rendered, Settings, Side};
use report::{BaseInfo, ChartReport, EnvReport, Report, Status};

/// Options of `cargo xtask diff`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Which charts, and the base a change is measured against.
    pub selection: Selection,
    /// Compare only this environment of charts that have values-<env>.yaml files (repeatable).
    pub envs: Vec<String>,
    /// Fetch a dependency repository's charts from another one: FROM=TO (repeatable), e.g. the
    /// `--mirror` that `cargo xtask mirror start` prints, for the umbrella's Bitnami charts.
    pub mirrors: Vec<String>,
    /// The Kubernetes version to render for, X.Y.Z (default: the first in xtask.toml).
    pub kube_version: Option<String>,
}

pub fn run(args: Opts, ctx: &Context) -> Result<()> {
    if !matches!(ctx.format, Format::Human | Format::Json | Format::Markdown) {
        return exit::usage(format!("diff prints human, json or markdown, not {}", ctx.format.name()));
    }
    let kube_version = match &args.kube_version {
        Some(v) => v.clone(),
        None => ctx.config.kube_versions.first().cloned().unwrap_or_else(|| "1.37.0".to_string()),
    };
    let parts: Vec<&str> = kube_version.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return exit::usage(format!("--kube-version {kube_version:?}: expected three numbers, e.g. 1.37.0"));
    }
    let mirrors = ctx.config.mirrors_with(&args.mirrors)?;

    // 1. The base and the charts.
    let git = Git::open(&ctx.root)?;
    crate::util::fs::ignore_folder(&ctx.work_dir)?;
    let run = worktree::RunDir::create(ctx)?;
    let head = Side::new("working tree", Context { work_dir: run.path().join("head"), ..ctx.clone() })?;
    let (base, changed_files, mut names) = if args.selection.charts.is_empty() {
        let affected = crate::ops::affected::compute_in(&git, &head.repo, &head.graph, args.selection.base.as_deref())?;
        let names: BTreeSet<String> = affected.affected.iter().map(|&i| head.repo.charts[i].name.clone()).collect();
        (affected.base, affected.files, names)
    } else {
        (git.base(args.selection.base.as_deref())?, Vec::new(), args.selection.charts.iter().cloned().collect())
    };

    let tools = crate::exec::tools::ensure(ctx, &[])?;
    // 2. The base as a worktree; dropped (removed) on every way out of here.
    let tree = worktree::Worktree::add(ctx, &run, &base.merge_base)?;
    let base_side = Side::new(
        "base",
        Context { root: tree.root().to_path_buf(), work_dir: run.path().join("base"), ..ctx.clone() },
    )?;
    if args.selection.charts.is_empty() {
        // Charts the change deleted exist only at the base.
        for chart in &base_side.repo.charts {
            let touched = changed_files.iter().any(|f| f.starts_with(&format!("{}/", chart.rel)));
            if touched && head.repo.chart(&chart.name).is_none() {
                names.insert(chart.name.clone());
            }
        }
    } else {
        for name in &names {
            if !head.has_chart(name) && !base_side.has_chart(name) {
                let why = match head.repo.chart(name) {
                    Some(_) => {
                        "is a library chart: it renders nothing itself; compare a chart that uses it".to_string()
                    }
                    None => format!("no such chart; the charts are: {}", head.repo.all_names().join(", ")),
                };
                return exit::usage(format!("--chart {name}: {why}"));
            }
        }
    }
    // Libraries render nothing; their users are in the set already.
    let names: Vec<String> = names.into_iter().filter(|n| head.has_chart(n) || base_side.has_chart(n)).collect();
    let mut envs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in &names {
        let mut list = head.environments(name, &args.envs);
        for env in base_side.environments(name, &args.envs) {
            if !list.contains(&env) {
                list.push(env);
            }
        }
        envs.insert(name.clone(), list);
    }

    // 3. Render both sides at once: they share nothing but the tools.
    let settings = Settings { helm: &tools.helm, mirrors, kube_version: kube_version.clone() };
    let (old, new) = std::thread::scope(|scope| {
        let old = scope.spawn(|| render::render_side(&base_side, &settings, &names, &envs));
        let new = render::render_side(&head, &settings, &names, &envs);
        (old.join().unwrap_or_default(), new)
    });
    drop(tree);
    drop(run);

    // 4. Compare and print.
    let mut charts = Vec::new();
    let mut ok = true;
    // A chart of the working tree that cannot be read (refused input, a
    // broken Chart.yaml) and that the change touches, or that was asked
    // for, fails the diff with its reason: it has nothing to render.
    for broken in &head.repo.broken {
        let touched = changed_files.iter().any(|f| f.starts_with(&format!("{}/", broken.rel)));
        if touched || args.selection.charts.contains(&broken.name) {
            ok = false;
            charts.push(ChartReport {
                chart: broken.name.clone(),
                environments: vec![EnvReport {
                    environment: crate::core::model::DEFAULT_ENV.to_string(),
                    status: Status::Failed,
                    error: Some(format!("working tree: {}", broken.error)),
                    objects: Vec::new(),
                    chart_label_only: 0,
                }],
            });
        }
    }
    for name in &names {
        let mut environments = Vec::new();
        for env in envs.get(name).into_iter().flatten() {
            let key = (name.clone(), env.clone());
            let report = compare(old.get(&key), new.get(&key), env);
            ok &= report.status != Status::Failed;
            environments.push(report);
        }
        charts.push(ChartReport { chart: name.clone(), environments });
    }
    let report = Report {
        base: BaseInfo { name: base.name.clone(), merge_base: base.merge_base.clone() },
        helm: tools.helm.version.clone(),
        kube_version,
        charts,
        ok,
    };
    if ctx.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        eprint!("{}", report::summary(&report));
    } else if ctx.format == Format::Markdown {
        print!("{}", report::markdown(&report));
        eprint!("{}", report::summary(&report));
    } else {
        eprint!("{}", report::human(&report));
    }
    if ok {
        Ok(())
    } else {
        Err(exit::ChecksFailed.into())
    }
}

/// A render error without its `<side>: ` prefix.
fn strip_side<'a>(message: &'a str, side: &str) -> Option<&'a str> {
    message.strip_prefix(side).and_then(|rest| rest.strip_prefix(": "))
}

/// One chart and environment: both renders compared.
fn compare(old: Option<&Rendered>, new: Option<&Rendered>, env: &str) -> EnvReport {
    let missing = Rendered::Missing;
    let (old, new) = (old.unwrap_or(&missing), new.unwrap_or(&missing));
    let mut report = EnvReport {
        environment: env.to_string(),
        status: Status::Unchanged,
        error: None,
        objects: Vec::new(),
        chart_label_only: 0,
    };
    let error = match (old, new) {
        // The same failure on both sides (a missing mirror, most often) is told once.
        (Rendered::Failed(a), Rendered::Failed(b)) => {
            Some(match (strip_side(a, "base"), strip_side(b, "working tree")) {
                (Some(x), Some(y)) if x == y => format!("base and working tree: {x}"),
                _ => format!("{a}\n{b}"),
            })
        }
        (Rendered::Failed(message), _) | (_, Rendered::Failed(message)) => Some(message.clone()),
        _ => None,
    };
    if error.is_some() {
        report.status = Status::Failed;
        report.error = error;
        return report;
    }
    let objects = |r: &Rendered| match r {
        Rendered::Objects(objects) => objects.clone(),
        _ => Vec::new(),
    };
    let comparison = semantic::compare(&objects(old), &objects(new));
    report.status = match (old, new) {
        (Rendered::Missing, Rendered::Missing) => Status::Unchanged,
        (Rendered::Missing, _) => Status::Added,
        (_, Rendered::Missing) => Status::Removed,
        _ if comparison.objects.is_empty() => Status::Unchanged,
        _ => Status::Changed,
    };
    report.objects = comparison.objects;
    report.chart_label_only = comparison.chart_label_only;
    report
}
