//! `cargo xtask bump`: raise the versions of changed charts and of every
//! chart that depends on them, in one command.
//!
//! A chart is bumped when its version is not yet greater than at the base
//! (so running bump twice changes nothing the second time). The charts that
//! hold a `file://` dependency on a bumped chart get their
//! `dependencies[].version` set to the new version when it is an exact
//! version; a range that already allows the new version is left alone, and
//! one that does not is an error, because only a person knows whether the
//! range was meant to exclude it. Every edit is computed and verified before
//! any file is written, and each Chart.yaml keeps its comments, key order and
//! formatting ([`crate::ops::package::edit`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::core::context::{Context, Format};
use crate::core::graph::ChartGraph;
use crate::core::model::Repo;
use crate::core::selection::Selection;
use crate::exec::git::Git;
use crate::ops::affected;
use crate::ops::package::edit::{self, Edits};
use crate::ops::package::version::{self, check_constraint, Constraint, Level};
use crate::util::exit;
use crate::util::fs;

/// Options of `cargo xtask bump`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Which charts, and the base a change is measured against.
    pub selection: Selection,
    /// Which part of the version to raise.
    pub level: Level,
    /// Print what would change and write nothing.
    pub dry_run: bool,
}

/// One chart in the report.
#[derive(Debug, Serialize)]
struct ChartChange {
    name: String,
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_version: Option<String>,
    from: String,
    to: String,
    /// `bumped`, `already-raised` (greater than at the base), or `new` (not at the base).
    status: &'static str,
}

/// One `dependencies[].version` rewritten.
#[derive(Debug, Serialize)]
struct DependencyChange {
    chart: String,
    file: String,
    dependency: String,
    from: String,
    to: String,
}

#[derive(Debug, Serialize)]
struct Report {
    command: &'static str,
    ok: bool,
    base: crate::exec::git::Base,
    level: Level,
    dry_run: bool,
    charts: Vec<ChartChange>,
    dependencies: Vec<DependencyChange>,
    /// Files written (none with --dry-run).
    written: Vec<String>,
}

pub fn run(args: Opts, ctx: &Context) -> Result<()> {
    let result = run_inner(args, ctx);
    if let Err(err) = &result {
        crate::ops::package::emit_error(ctx, "bump", err);
    }
    result
}

fn run_inner(args: Opts, ctx: &Context) -> Result<()> {
    if !args.selection.changed && args.selection.charts.is_empty() {
        return exit::usage("bump needs a selection: --changed [--base REF], or --chart NAME (repeatable)");
    }
    let repo = Repo::discover(&ctx.root, &ctx.config)?;
    let graph = ChartGraph::build(&repo);
    let git = Git::open(&ctx.root)?;
    let affected = affected::compute_in(&git, &repo, &graph, args.selection.base.as_deref())?;

    let set = if args.selection.changed {
        affected.affected.clone()
    } else {
        let mut named = BTreeSet::new();
        for name in &args.selection.charts {
            match repo.index_of(name) {
                Some(index) => {
                    named.insert(index);
                }
                None => {
                    return exit::usage(format!(
                        "--chart {name}: no such (readable) chart; charts: {}",
                        repo.all_names().join(", ")
                    ))
                }
            }
        }
        graph.with_dependents(&named)
    };
    let order: Vec<usize> = graph.topological().into_iter().filter(|i| set.contains(i)).collect();
    let base_versions = version::base_versions(&git, &repo, &affected.base.merge_base, &set)?;

    // Each chart's version after the bump.
    let mut charts = Vec::new();
    let mut final_version: BTreeMap<usize, semver::Version> = BTreeMap::new();
    let mut edits: BTreeMap<usize, Edits> = BTreeMap::new();
    for &index in &order {
        let chart = &repo.charts[index];
        let base = base_versions.get(&index).cloned().flatten();
        let (to, status) = match &base {
            None => (chart.version.clone(), "new"),
            Some(base) if chart.version > *base => (chart.version.clone(), "already-raised"),
            Some(base) => {
                let to = args.level.raise(base.max(&chart.version));
                edits.entry(index).or_default().version = Some(to.to_string());
                (to, "bumped")
            }
        };
        charts.push(ChartChange {
            name: chart.name.clone(),
            file: format!("{}/Chart.yaml", chart.rel),
            base_version: base.map(|v| v.to_string()),
            from: chart.version.to_string(),
            to: to.to_string(),
            status,
        });
        final_version.insert(index, to);
    }

    // Constraints other charts hold on the charts in the set.
    let canonical: Vec<Option<PathBuf>> = repo.charts.iter().map(|c| c.dir.canonicalize().ok()).collect();
    let mut dependencies = Vec::new();
    let mut refused = Vec::new();
    for (holder_index, holder) in repo.charts.iter().enumerate() {
        for (k, dep) in holder.meta.dependencies.iter().enumerate() {
            let Some(path) = dep.file_path() else { continue };
            let target = holder.dir.join(path).canonicalize().ok();
            let Some(dep_index) = canonical.iter().position(|c| c.is_some() && *c == target) else { continue };
            let Some(new) = final_version.get(&dep_index) else { continue };
            let held = dep.version.clone().unwrap_or_default();
            let file = format!("{}/Chart.yaml", holder.rel);
            match check_constraint(&held, new) {
                Constraint::Exact(exact) if exact == *new => {}
                Constraint::Exact(_) => {
                    edits.entry(holder_index).or_default().dependencies.push((k, dep.name.clone(), new.to_string()));
                    dependencies.push(DependencyChange {
                        chart: holder.name.clone(),
                        file,
                        dependency: dep.name.clone(),
                        from: held,
                        to: new.to_string(),
                    });
                }
                Constraint::Allows => {}
                Constraint::Refuses(why) => refused.push(format!("  {file}: dependency {} version {why}", dep.name)),
            }
        }
    }
    if !refused.is_empty() {
        anyhow::bail!(
            "bump: these dependency constraints do not allow the new versions; nothing was written\n{}\nfix: write the new version (or a range that allows it) into those files by hand, then run bump again",
            refused.join("\n")
        );
    }

    // Compute and verify every edited text before writing any file.
    let mut texts = Vec::new();
    for (index, edit) in &edits {
        let chart = &repo.charts[*index];
        let path = chart.dir.join("Chart.yaml");
        let shown = format!("{}/Chart.yaml", chart.rel);
        let before = std::fs::read_to_string(&path).with_context(|| format!("{shown}: cannot read file"))?;
        let after = edit::apply(&before, &shown, edit)?;
        // A locked chart's Chart.lock follows its new `file://` pins, or
        // every command would find Chart.yaml and Chart.lock disagreeing.
        let lock_path = chart.dir.join(crate::core::lock::LOCK_FILE);
        if !edit.dependencies.is_empty() && lock_path.is_file() {
            let lock_shown = format!("{}/{}", chart.rel, crate::core::lock::LOCK_FILE);
            let lock =
                crate::core::lock::Lock::parse(&crate::util::yaml::read_text(&lock_path, &lock_shown)?, &lock_shown)?;
            let meta: crate::core::model::ChartYaml = crate::util::yaml::parse(&after, &shown)?;
            let changes: Vec<(String, String)> =
                edit.dependencies.iter().map(|(_, name, version)| (name.clone(), version.clone())).collect();
            let followed = lock.follow(&meta.dependencies, &changes, crate::util::time::rfc3339_nanos_now());
            texts.push((lock_path, lock_shown, followed.render()));
        }
        texts.push((path, shown.clone(), after));
    }
    let mut written = Vec::new();
    if !args.dry_run {
        for (path, shown, text) in &texts {
            fs::write_atomic(path, text.as_bytes()).with_context(|| {
                format!(
                    "{shown}: cannot write (already written: {})",
                    if written.is_empty() { "none".into() } else { written.join(", ") }
                )
            })?;
            written.push(shown.clone());
        }
    }

    for c in &charts {
        match c.status {
            "bumped" => eprintln!("bump  {} {} -> {} ({})", c.name, c.from, c.to, c.file),
            "already-raised" => eprintln!(
                "keep  {} {} (already raised from {})",
                c.name,
                c.from,
                c.base_version.as_deref().unwrap_or("?")
            ),
            _ => eprintln!("keep  {} {} (new since the base)", c.name, c.from),
        }
    }
    for d in &dependencies {
        eprintln!("dep   {}: {} {} -> {} ({})", d.chart, d.dependency, d.from, d.to, d.file);
    }
    if charts.is_empty() {
        eprintln!("nothing to bump: no chart changed since {}", affected.base.name);
    } else if texts.is_empty() {
        eprintln!("nothing to change: every affected chart is already raised");
    } else {
        let verb = if args.dry_run { "would write" } else { "wrote" };
        eprintln!("{verb} {} file(s)", texts.len());
    }

    if ctx.format == Format::Json {
        let report = Report {
            command: "bump",
            ok: true,
            base: affected.base,
            level: args.level,
            dry_run: args.dry_run,
            charts,
            dependencies,
            written,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
