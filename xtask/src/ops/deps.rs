//! `cargo xtask deps update`: what `helm dependency update` does for the
//! lock, without its side effects.
//!
//! For every chart with remote dependencies (or the `--chart`s), each
//! dependency's version range is resolved through the mirrors (a `file://`
//! one to its chart's version, as Helm's resolver does), the archive fetched
//! and hashed, and `Chart.lock` written in Helm's own format with Helm's
//! digest, `Chart.sum` beside it ([`crate::core::lock`]). Unlike Helm, a
//! lock whose entries and digest are unchanged is left byte for byte as it
//! is (Helm rewrites `generated:` on every run, a diff in every pull
//! request), and no `charts/*.tgz` is written into the chart folder.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::core::context::{Context, Format};
use crate::core::lock::{self, Lock, Locked, Sum};
use crate::core::model::{Chart, ChartYaml, Dependency, Repo};
use crate::ops::stage::Stager;
use crate::util::fs;

/// What `deps update` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// Only these charts; none means every chart with remote dependencies.
    pub charts: Vec<String>,
    /// `--mirror FROM=TO` flags, over `[mirrors]` of xtask.toml.
    pub mirrors: Vec<String>,
}

/// What happened to one chart's lock.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub chart: String,
    /// `written` or `unchanged`.
    pub lock: &'static str,
    pub dependencies: Vec<LockedOut>,
}

#[derive(Debug, Serialize)]
pub struct LockedOut {
    pub name: String,
    pub version: String,
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

pub fn run(ctx: &Context, opts: &Opts) -> Result<()> {
    let repo = Repo::discover(&ctx.root, &ctx.config)?;
    for name in &opts.charts {
        if repo.chart(name).is_none() {
            return crate::util::exit::usage(format!("--chart {name}: no such chart in {}", ctx.root.display()));
        }
    }
    let charts: Vec<&Chart> = repo
        .charts
        .iter()
        .filter(|c| if opts.charts.is_empty() { has_remote(c) } else { opts.charts.contains(&c.name) })
        .collect();
    let mirrors = ctx.config.mirrors_with(&opts.mirrors)?;
    let _work_lock = fs::lock_folder(&ctx.work_dir)?;
    let helm = crate::exec::tools::ensure(ctx, &[])?.helm;
    let stager = Stager::new(ctx, &helm, mirrors);
    let mut outcomes = Vec::new();
    for chart in charts {
        let outcome = update(&stager, chart).with_context(|| format!("deps update: chart {}", chart.name))?;
        if ctx.format == Format::Human {
            eprintln!("{}: {} {}", chart.rel, lock::LOCK_FILE, outcome.lock);
            for dep in &outcome.dependencies {
                eprintln!("  {} {} {}", dep.name, dep.version, dep.repository);
            }
        }
        outcomes.push(outcome);
    }
    if ctx.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "command": "deps update", "charts": outcomes }))?
        );
    }
    Ok(())
}

fn has_remote(chart: &Chart) -> bool {
    chart.meta.dependencies.iter().any(|d| d.remote_repository().is_some())
}

/// Resolves and locks one chart; writes its files only when they change.
fn update(stager: &Stager, chart: &Chart) -> Result<Outcome> {
    let mut locked = Vec::new();
    let mut sums = Vec::new();
    let mut shown = Vec::new();
    for dep in &chart.meta.dependencies {
        let repository = dep.repository.clone().unwrap_or_default();
        if repository.starts_with('@') || repository.starts_with("alias:") {
            anyhow::bail!(
                "{}/Chart.yaml: dependency {}: repository {repository:?} names a `helm repo add` alias; name its URL instead",
                chart.rel,
                dep.name
            );
        }
        let (version, sha256) = if let Some(dir) = dep.local_dir(&chart.dir) {
            (local_version(chart, dep, &dir)?, None)
        } else if repository.is_empty() {
            // A chart vendored by hand under charts/: Helm locks its range as it is.
            (dep.version.clone().unwrap_or_default(), None)
        } else {
            let (archive, version) = stager.resolve(chart, dep, &repository)?;
            let bytes = std::fs::read(&archive).with_context(|| format!("cannot read {}", archive.display()))?;
            let sha256 = format!("sha256:{}", fs::sha256_hex(&bytes));
            let declared = stager.source_for(&repository).declared;
            sums.push(Sum {
                name: dep.name.clone(),
                version: version.clone(),
                repository: declared,
                sha256: sha256.clone(),
            });
            (version, Some(sha256))
        };
        shown.push(LockedOut {
            name: dep.name.clone(),
            version: version.clone(),
            repository: repository.clone(),
            sha256,
        });
        locked.push(Locked { name: dep.name.clone(), repository, version });
    }
    let digest = lock::digest(&chart.meta.dependencies, &locked);
    let lock_path = chart.dir.join(lock::LOCK_FILE);
    let shown_as = format!("{}/{}", chart.rel, lock::LOCK_FILE);
    let current = std::fs::read_to_string(&lock_path).ok().and_then(|text| Lock::parse(&text, &shown_as).ok());
    let same = current.as_ref().is_some_and(|c| c.dependencies == locked && c.digest == digest);
    if !same {
        let lock = Lock { dependencies: locked, digest, generated: crate::util::time::rfc3339_nanos_now() };
        fs::write_atomic(&lock_path, lock.render().as_bytes())?;
    }
    let sum_path = chart.dir.join(lock::SUM_FILE);
    let sum_text = Sum::render_all(&sums);
    let sums_same = std::fs::read_to_string(&sum_path).is_ok_and(|t| t == sum_text);
    if !sums_same {
        if sums.is_empty() {
            std::fs::remove_file(&sum_path).ok();
        } else {
            fs::write_atomic(&sum_path, sum_text.as_bytes())?;
        }
    }
    Ok(Outcome {
        chart: chart.name.clone(),
        lock: if same && sums_same { "unchanged" } else { "written" },
        dependencies: shown,
    })
}

/// A chart of this repository locks at its own version, which the range
/// must allow (Helm's resolver refuses it otherwise).
fn local_version(chart: &Chart, dep: &Dependency, dir: &Path) -> Result<String> {
    let shown = match dep.file_path() {
        Some(path) => format!("{}/{path}/Chart.yaml", chart.rel),
        None => format!("{}/Chart.yaml", dir.display()),
    };
    let meta: ChartYaml = crate::util::yaml::load(&dir.join("Chart.yaml"), &shown)?;
    let version = meta.version.unwrap_or_default();
    let range = dep.version.clone().unwrap_or_default();
    let allowed = semver::Version::parse(&version).is_ok_and(|v| {
        !matches!(crate::core::versions::check_constraint(&range, &v), crate::core::versions::Constraint::Refuses(_))
    });
    if !allowed {
        anyhow::bail!(
            "{}/Chart.yaml: dependency {}: the chart at {} is version {version}, which {range:?} does not allow",
            chart.rel,
            dep.name,
            dir.display()
        );
    }
    Ok(version)
}
