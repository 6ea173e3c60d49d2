//! `cargo xtask package`: release charts, each with its own version.
//!
//! The run is planned, then carried out, and every check that can refuse it
//! runs before anything is written:
//! 1. discover charts, build the graph, find what changed since the base
//!    ([`crate::ops::affected`]);
//! 2. select charts (`--changed`, `--chart`, or all) and order them
//!    dependencies first;
//! 3. version discipline ([`version`]): an affected chart must carry a
//!    version greater than at the base; `--tag` also needs committed charts
//!    and tags that do not point at other content ([`tag`]);
//! 4. package ([`build`]): stage, annotate a copy of each Chart.yaml for
//!    Artifact Hub ([`annotations`]), one `helm package` into a scratch
//!    folder, compare with the output folder, move the new archives in;
//! 5. merge the output folder's `index.yaml` ([`index`]);
//! 6. `--publish`: look every version up in the registry, refuse conflicts,
//!    push the rest in topological order ([`publish`]);
//! 7. `--tag`: create the planned `<chart>-<version>` tags.

pub mod annotations;
pub mod build;
pub mod edit;
pub mod index;
pub mod publish;
pub mod tag;
pub mod version;

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::core::archive;
use crate::core::context::{Context, Format};
use crate::core::graph::ChartGraph;
use crate::core::model::Repo;
use crate::core::selection::Selection;
use crate::exec::git::Git;
use crate::ops::affected::{self, Affected};
use crate::ops::stage::Stager;
use crate::util::exit;

/// Options of `cargo xtask package`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Which charts, and the base a change is measured against.
    pub selection: Selection,
    /// Where the archives and index.yaml go (default: target/xtask/packages).
    pub out: Option<PathBuf>,
    /// Push the archives to this OCI registry: oci://HOST/PATH.
    pub publish: Option<String>,
    /// Speak plain HTTP to the registry (a local one on loopback).
    pub plain_http: bool,
    /// Create a git tag `<chart>-<version>` at HEAD for each packaged chart.
    pub tag: bool,
    /// Fetch a dependency repository's charts from another one: FROM=TO (repeatable).
    pub mirrors: Vec<String>,
    /// Print the plan (charts, versions, order) and write nothing.
    pub dry_run: bool,
    /// Sign every archive with Helm's provenance (`helm package --sign`).
    pub sign: Option<build::Signing>,
    /// With `--publish`: sign each pushed digest with this cosign key.
    pub cosign_key: Option<PathBuf>,
}

/// One chart in the JSON report.
#[derive(Debug, Serialize)]
struct ChartReport {
    name: String,
    version: String,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_version: Option<String>,
    /// `packaged`, `unchanged`, or `planned` with --dry-run.
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    archive: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
}

/// The `--format json` document.
#[derive(Debug, Serialize)]
struct Report {
    command: &'static str,
    ok: bool,
    base: crate::exec::git::Base,
    selection: &'static str,
    /// Charts holding a changed file.
    changed: Vec<String>,
    /// Changed charts and their dependents.
    affected: Vec<String>,
    /// Files changed since the merge base (relative to the root).
    files: Vec<String>,
    out: String,
    dry_run: bool,
    /// Selected charts in the order they were packaged (dependencies first).
    charts: Vec<ChartReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<index::Merged>,
    #[serde(skip_serializing_if = "Option::is_none")]
    published: Option<Vec<publish::Published>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<tag::Tagged>>,
}

pub fn run(args: Opts, ctx: &Context) -> Result<()> {
    let result = run_inner(args, ctx);
    if let Err(err) = &result {
        emit_error(ctx, "package", err);
    }
    result
}

/// With `--format json`, a failed run still prints one JSON object on stdout
/// (`ok: false` and the message); the message also goes to stderr as usual.
pub fn emit_error(ctx: &Context, command: &str, err: &anyhow::Error) {
    if ctx.format == Format::Json {
        let value = serde_json::json!({
            "command": command,
            "ok": false,
            "exit_code": exit::code_for(err),
            "error": format!("{err:#}"),
        });
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    }
}

fn run_inner(args: Opts, ctx: &Context) -> Result<()> {
    let repo = Repo::discover(&ctx.root, &ctx.config)?;
    let graph = ChartGraph::build(&repo);
    let publish_url = args.publish.as_deref().map(publish::check_url).transpose()?;
    let mirrors = ctx.config.mirrors_with(&args.mirrors)?;

    let git = Git::open(&ctx.root)?;
    let affected = affected::compute_in(&git, &repo, &graph, args.selection.base.as_deref())?;
    let (selection, selected) = select(&repo, &affected, &args)?;
    let broken: Vec<&crate::core::model::BrokenChart> = match selection {
        "all" => repo.broken.iter().collect(),
        "changed" => affected::broken_touched(&repo, &affected.files),
        _ => Vec::new(),
    };
    if !broken.is_empty() {
        let list: Vec<String> = broken.iter().map(|b| format!("  {} ({}): {}", b.name, b.rel, b.error)).collect();
        anyhow::bail!(
            "cannot package: {} chart(s) that would be part of this release cannot be read; nothing was written\n{}\nfix: correct the Chart.yaml named above (`cargo xtask lint` reports the same)",
            broken.len(),
            list.join("\n")
        );
    }
    check_usable(&repo, &graph, &selected)?;
    check_no_links(ctx, &repo, &graph, &selected)?;
    let order: Vec<usize> = graph.topological().into_iter().filter(|i| selected.contains(i)).collect();

    // Version discipline covers the selected charts and the repository charts
    // packed inside them: a chart archive embeds its dependencies, so an
    // unbumped changed dependency would ship under a version already released.
    let checked = graph.with_dependencies(&selected);
    let unbumped = version::unbumped(&git, &repo, &affected, &checked)?;
    if !unbumped.is_empty() {
        anyhow::bail!(version::unbumped_message(&unbumped, &affected, args.selection.base.as_deref()));
    }
    let base_versions = version::base_versions(&git, &repo, &affected.base.merge_base, &selected)?;
    let tag_plan = if args.tag && !args.dry_run {
        tag::preflight(&git, &repo, &graph, &selected)?;
        Some(tag::plan(&git, &repo, &graph, &order)?)
    } else {
        None
    };

    let out = match &args.out {
        Some(dir) if dir.is_absolute() => dir.clone(),
        Some(dir) => std::env::current_dir()?.join(dir),
        None => ctx.work_dir.join("packages"),
    };
    let mut report = Report {
        command: "package",
        ok: true,
        base: affected.base.clone(),
        selection,
        changed: names(&repo, &affected.changed),
        affected: names(&repo, &affected.affected),
        files: affected.files.clone(),
        out: out.display().to_string(),
        dry_run: args.dry_run,
        charts: order
            .iter()
            .map(|&i| {
                let chart = &repo.charts[i];
                ChartReport {
                    name: chart.name.clone(),
                    version: chart.version.to_string(),
                    path: chart.rel.clone(),
                    base_version: base_versions.get(&i).cloned().flatten().map(|v| v.to_string()),
                    status: "planned".into(),
                    archive: None,
                    digest: None,
                }
            })
            .collect(),
        index: None,
        published: None,
        tags: None,
    };
    let say = |line: &str| eprintln!("{line}");

    if order.is_empty() {
        say(&format!(
            "nothing to package: no chart changed since {} (merge base {})",
            affected.base.name,
            version::short(&affected.base.merge_base)
        ));
        return emit(ctx, &report);
    }
    if args.dry_run {
        say(&format!("plan: package {} chart(s) into {}, dependencies first:", order.len(), out.display()));
        for c in &report.charts {
            let was = c.base_version.as_deref().map_or("new".to_string(), |v| format!("{v} at the base"));
            say(&format!("  {} {} ({}; {was})", c.name, c.version, c.path));
        }
        if let Some(url) = &publish_url {
            say(&format!("then publish to {url}, skipping versions it already holds"));
        }
        return emit(ctx, &report);
    }

    let tools = crate::exec::tools::ensure(ctx, &[])?;
    let cosign = args.cosign_key.as_deref().map(|key| publish::Cosign::prepare(ctx, key)).transpose()?;
    let _work_lock = crate::util::fs::lock_folder(&ctx.work_dir)?;
    let stager = Stager::new(ctx, &tools.helm, mirrors);
    let annotator = annotations::Annotator::new(ctx, &git, &tools.helm, args.sign.as_ref())?;
    let built = build::package(ctx, &repo, &graph, &stager, &annotator, &order, &out, args.sign.as_ref())?;
    for item in &built {
        let name = &repo.charts[item.chart].name;
        let Some(chart_report) = report.charts.iter_mut().find(|c| &c.name == name) else { continue };
        chart_report.status = serde_json::to_value(item.outcome)?.as_str().unwrap_or_default().to_string();
        chart_report.archive = Some(item.path.display().to_string());
        chart_report.digest = Some(item.info.digest.clone());
        say(&format!(
            "{:<9} {} {} -> {}",
            chart_report.status,
            chart_report.name,
            chart_report.version,
            ctx.shown(&item.path)
        ));
    }
    let every_archive: Vec<(String, archive::ArchiveInfo)> =
        built.iter().map(|b| (b.file_name.clone(), b.info.clone())).collect();
    let merged = index::merge(&out, &every_archive)?;
    say(&format!(
        "index     {} ({})",
        ctx.shown(&out.join(index::FILE_NAME)),
        match (merged.written, merged.added.len()) {
            (false, _) => "unchanged".to_string(),
            (true, 1) => "1 entry added".to_string(),
            (true, n) => format!("{n} entries added"),
        }
    ));
    report.index = Some(merged);

    if let Some(url) = &publish_url {
        let published = publish::publish(&repo, &tools.helm, &built, url, args.plain_http, cosign.as_ref(), &say)?;
        let pushed = published.iter().filter(|p| p.action == "pushed").count();
        say(&format!("publish   {url}: {pushed} pushed, {} skipped", published.len() - pushed));
        report.published = Some(published);
    }
    if let Some(plan) = tag_plan {
        let tags = tag::apply(&git, plan)?;
        for t in &tags {
            say(&format!("tag       {} {}", t.tag, t.action));
        }
        report.tags = Some(tags);
    }
    emit(ctx, &report)
}

/// The selected charts and how they were chosen.
fn select(repo: &Repo, affected: &Affected, args: &Opts) -> Result<(&'static str, BTreeSet<usize>)> {
    if args.selection.changed {
        return Ok(("changed", affected.affected.clone()));
    }
    if args.selection.charts.is_empty() {
        return Ok(("all", (0..repo.charts.len()).collect()));
    }
    let mut selected = BTreeSet::new();
    for name in &args.selection.charts {
        match repo.index_of(name) {
            Some(index) => {
                selected.insert(index);
            }
            None if repo.broken.iter().any(|b| &b.name == name) => {
                let broken = repo.broken.iter().find(|b| &b.name == name).map(|b| b.error.clone()).unwrap_or_default();
                anyhow::bail!("--chart {name}: the chart cannot be read: {broken}");
            }
            None => {
                return exit::usage(format!("--chart {name}: no such chart; charts: {}", repo.all_names().join(", ")))
            }
        }
    }
    Ok(("chart", selected))
}

/// Refuses to package a chart whose place in the graph is broken (a cycle,
/// a dependency that is not a chart), naming each problem.
fn check_usable(repo: &Repo, graph: &ChartGraph, selected: &BTreeSet<usize>) -> Result<()> {
    let involved = graph.with_dependencies(selected);
    let problems: Vec<String> = graph
        .issues
        .iter()
        .filter(|issue| repo.index_of(&issue.chart).is_some_and(|i| involved.contains(&i)))
        .map(|issue| format!("  {}: {}", issue.chart, issue.message))
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "cannot package: the dependency graph of the selected charts is broken, nothing was written\n{}\nfix: correct the Chart.yaml files named above (`cargo xtask lint` reports the same)",
        problems.join("\n")
    )
}

/// Refuses to package a chart that holds a symbolic link, unless
/// `[package] allow-symlinks` says so: Helm's archive carries the bytes the
/// link leads to, not the link, so what is published is not what the
/// repository shows. (Links out of the repository are refused for every
/// command, when the chart is read.)
fn check_no_links(ctx: &Context, repo: &Repo, graph: &ChartGraph, selected: &BTreeSet<usize>) -> Result<()> {
    if ctx.config.package.allow_symlinks {
        return Ok(());
    }
    let links: Vec<String> = graph
        .with_dependencies(selected)
        .iter()
        .flat_map(|&i| repo.charts[i].links.iter().map(move |link| format!("  {}: {link}", repo.charts[i].name)))
        .collect();
    if links.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "cannot package: {} symbolic link(s) in the charts of this release, nothing was written\n{}\nfix: replace each link by the file it leads to, or set `[package] allow-symlinks = true` in xtask.toml",
        links.len(),
        links.join("\n")
    )
}

fn names(repo: &Repo, set: &BTreeSet<usize>) -> Vec<String> {
    set.iter().map(|&i| repo.charts[i].name.clone()).collect()
}

/// `--format json`: the report on stdout.
fn emit<T: Serialize>(ctx: &Context, report: &T) -> Result<()> {
    if ctx.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(())
}
