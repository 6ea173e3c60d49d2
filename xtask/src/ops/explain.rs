//! `cargo xtask explain CHART [KEY]`: the values a chart's templates see when
//! the umbrella deploys it, each with the layer that set it and the values of
//! lower layers it replaced.
//!
//! Works from files alone (no helm, no registry): the merge engine in
//! [`crate::core::values`] reproduces Helm's rules, and a test compares its answer
//! with Helm's own for the same layers. `--set` keys are relative to the
//! umbrella (`catalogue.replicaCount=5`), exactly as they are given to helm.
//!
//! Values that look secret (everything under `secretEnv`, keys named like
//! passwords, `erlangCookie`) are shown as `(hidden)` unless
//! `--show-secrets` is given, so the output can be pasted into a ticket.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value as Plain;

use crate::core::context::{Context, Format};
use crate::core::model::{Chart, ChartKind, Repo, DEFAULT_ENV};
use crate::core::values::tree::{self, Layer, LayerKind, Node, IMPLICIT};
use crate::core::values::{self, Inputs};
use crate::util::exit;

/// Options of `cargo xtask explain`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// The chart to explain: a service chart (as its umbrella deploys it), or the umbrella.
    pub chart: String,
    /// Show only this key and what is below it, dotted as in --set (`image`, `resources.limits`).
    pub key: Option<String>,
    /// The environment: the umbrella's values-<env>.yaml (dev, staging, prod).
    pub env: Option<String>,
    /// A value as helm's --set takes it, keys relative to the umbrella (catalogue.replicaCount=5); repeatable.
    pub sets: Vec<String>,
    /// A values file over the environment file, as helm's -f; repeatable.
    pub files: Vec<PathBuf>,
    /// The umbrella to explain the chart in, when more than one deploys it.
    pub umbrella: Option<String>,
    /// Print the values that look secret instead of `(hidden)`.
    pub show_secrets: bool,
}

/// The `--format json` document.
#[derive(Debug, Serialize)]
struct Report {
    /// The chart explained (the name its umbrella knows it by).
    chart: String,
    /// The chart helm would be run on (the umbrella, or the chart itself).
    top: String,
    environment: Option<String>,
    key: Option<String>,
    /// The layers read, lowest priority first.
    layers: Vec<LayerReport>,
    /// The merged values (below `key` when one is given).
    values: Plain,
    /// One entry per leaf (scalar, list or empty map) below `key`.
    leaves: Vec<LeafReport>,
    /// Keys a `null` removed.
    deleted: Vec<DeletedReport>,
    notes: Vec<String>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct LayerReport {
    source: String,
    kind: LayerKind,
}

#[derive(Debug, Serialize)]
struct LeafReport {
    path: String,
    value: Plain,
    source: String,
    /// Lower layers' values this one replaced, lowest first.
    overrode: Vec<SourcedValue>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    hidden: bool,
}

#[derive(Debug, Serialize)]
struct SourcedValue {
    source: String,
    value: Plain,
}

#[derive(Debug, Serialize)]
struct DeletedReport {
    path: String,
    /// The layer whose `null` removed the key.
    by: String,
    was: SourcedValue,
}

const HIDDEN: &str = "(hidden)";

pub fn run(args: Opts, ctx: &Context) -> Result<()> {
    if !matches!(ctx.format, Format::Human | Format::Json) {
        return exit::usage(format!("explain prints human or json, not {}", ctx.format.name()));
    }
    let repo = Repo::discover(&ctx.root, &ctx.config)?;
    let place = locate(&repo, &args)?;
    let top = place.top;

    let environment = match &args.env {
        Some(name) => match top.environments.iter().find(|e| &e.name == name) {
            Some(env) if env.name != DEFAULT_ENV || !env.values_files.is_empty() => Some(env.clone()),
            _ => {
                let names: Vec<&str> =
                    top.environments.iter().filter(|e| !e.values_files.is_empty()).map(|e| e.name.as_str()).collect();
                return exit::usage(if names.is_empty() {
                    format!("--env {name}: {} has no values-<env>.yaml files", top.rel)
                } else {
                    format!("--env {name}: {} has the environments {}", top.rel, names.join(", "))
                });
            }
        },
        None => None,
    };
    let mut notes = Vec::new();
    if environment.is_none() && top.environments.iter().any(|e| !e.values_files.is_empty()) {
        let names: Vec<&str> = top.environments.iter().map(|e| e.name.as_str()).collect();
        notes.push(format!("no environment file: pass --env {} to add one", names.join("|")));
    }

    let cwd = std::env::current_dir()?;
    let mut files = Vec::new();
    for file in &args.files {
        let path = if file.is_absolute() { file.clone() } else { cwd.join(file) };
        if !path.is_file() {
            return exit::usage(format!("-f {}: no such file", file.display()));
        }
        let shown = match path.canonicalize().ok().and_then(|p| p.strip_prefix(&ctx.root).ok().map(|r| r.to_path_buf()))
        {
            Some(rel) => rel.display().to_string(),
            None => file.display().to_string(),
        };
        files.push((path, shown));
    }
    let inputs = Inputs {
        top_dir: top.dir.clone(),
        target: place.target.clone(),
        env_files: environment
            .iter()
            .flat_map(|e| e.values_files.iter().map(|f| (ctx.root.join(f), f.clone())))
            .collect(),
        files,
        sets: args.sets.clone(),
    };
    let merged = values::compute(&ctx.root, &repo, &inputs)?;
    notes.extend(merged.notes.iter().cloned());

    let key_path = match &args.key {
        Some(key) => split_key(key),
        None => Vec::new(),
    };
    let under = |path: &[String]| path.len() >= key_path.len() && path[..key_path.len()] == key_path[..];
    let leaves: Vec<tree::Leaf> = tree::leaves(&merged.values).into_iter().filter(|l| under(&l.path)).collect();
    let deletions: Vec<&values::coalesce::Deletion> = merged.deletions.iter().filter(|d| under(&d.path)).collect();
    if !key_path.is_empty() && leaves.is_empty() && deletions.is_empty() {
        let keys: Vec<String> = merged.values.borrow().keys().cloned().collect();
        return exit::usage(format!(
            "{}: no value at {}; its top-level keys are: {}",
            place.name,
            args.key.as_deref().unwrap_or_default(),
            keys.join(", ")
        ));
    }

    let masked = |path: &[String]| !args.show_secrets && looks_secret(path);
    // Nothing to hide in an empty value; showing `{}` says there is no secret.
    let hide = |path: &[String], value: &Plain| masked(path) && !is_empty(value);
    let source = |layer: usize| merged.layers.get(layer).map_or_else(|| "?".to_string(), |l| l.source.clone());
    let leaf_reports: Vec<LeafReport> = leaves
        .iter()
        .map(|leaf| {
            let hidden = hide(&leaf.path, &tree::to_plain(&leaf.node));
            let show = |v: Plain| if hidden && !is_empty(&v) { Plain::String(HIDDEN.into()) } else { v };
            LeafReport {
                path: tree::show_path(&leaf.path),
                value: show(tree::to_plain(&leaf.node)),
                source: source(leaf.node.origin),
                overrode: leaf
                    .node
                    .overrode
                    .iter()
                    .map(|o| SourcedValue { source: source(o.layer), value: show(o.value.clone()) })
                    .collect(),
                hidden,
            }
        })
        .collect();
    let deleted: Vec<DeletedReport> = deletions
        .iter()
        .map(|d| {
            let was = tree::to_plain(&d.was);
            DeletedReport {
                path: tree::show_path(&d.path),
                by: source(d.by),
                was: SourcedValue {
                    source: source(d.was.origin),
                    value: if hide(&d.path, &was) { Plain::String(HIDDEN.into()) } else { was },
                },
            }
        })
        .collect();

    let subtree = subtree_at(&merged.values, &key_path);
    let report = Report {
        chart: place.name.clone(),
        top: top.rel.clone(),
        environment: environment.as_ref().map(|e| e.name.clone()),
        key: args.key.clone(),
        layers: used_layers(&merged.layers, &leaves)
            .into_iter()
            .map(|l| LayerReport { source: l.source.clone(), kind: l.kind })
            .collect(),
        values: mask_plain(subtree, &key_path, &hide),
        leaves: leaf_reports,
        deleted,
        notes,
        warnings: merged.warnings.clone(),
    };
    if ctx.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    eprint!("{}", human(&report, &place, &leaves));
    Ok(())
}

/// Where the chart sits: the chart helm runs on and the path down to it.
struct Place<'a> {
    top: &'a Chart,
    target: Vec<String>,
    /// The name shown (the alias in the umbrella, if any).
    name: String,
    /// Whether the chart is shown inside an umbrella.
    in_umbrella: bool,
}

fn locate<'a>(repo: &'a Repo, args: &Opts) -> Result<Place<'a>> {
    let names = || repo.all_names().join(", ");
    // The chart may be named by its Chart.yaml name or by an umbrella's alias for it.
    let by_alias = |umbrella: &'a Chart| {
        umbrella
            .meta
            .dependencies
            .iter()
            .find(|d| d.alias.as_deref() == Some(args.chart.as_str()))
            .map(|d| (umbrella, d))
    };
    let umbrellas: Vec<&Chart> = match &args.umbrella {
        Some(name) => match repo.chart(name) {
            Some(chart) => vec![chart],
            None => return exit::usage(format!("--umbrella {name}: no such chart; the charts are: {}", names())),
        },
        None => repo.charts.iter().filter(|c| c.kind == ChartKind::Umbrella).collect(),
    };
    let chart = match repo.chart(&args.chart) {
        Some(chart) => chart,
        None => {
            // An alias, or a dependency from outside the repository (Bitnami).
            let by_name = |umbrella: &'a Chart| {
                umbrella
                    .meta
                    .dependencies
                    .iter()
                    .find(|d| d.alias.is_none() && d.name == args.chart)
                    .map(|d| (umbrella, d))
            };
            if let Some((umbrella, _)) = umbrellas.iter().find_map(|u| by_alias(u).or_else(|| by_name(u))) {
                return Ok(Place {
                    top: umbrella,
                    target: vec![args.chart.clone()],
                    name: args.chart.clone(),
                    in_umbrella: true,
                });
            }
            if let Some(broken) = repo.broken.iter().find(|b| b.name == args.chart) {
                return Err(anyhow::anyhow!("{}", broken.error));
            }
            return exit::usage(format!("{}: no such chart; the charts are: {}", args.chart, names()));
        }
    };
    if chart.kind == ChartKind::Library {
        return exit::usage(format!(
            "{} is a library chart: it has no values of its own to deploy; explain a chart that uses it",
            chart.name
        ));
    }
    if args.umbrella.is_none() && chart.kind == ChartKind::Umbrella {
        return Ok(Place { top: chart, target: Vec::new(), name: chart.name.clone(), in_umbrella: false });
    }
    let target_dir = chart.dir.canonicalize().ok();
    let mut found = Vec::new();
    for umbrella in &umbrellas {
        for dep in &umbrella.meta.dependencies {
            let points_here = dep
                .local_dir(&umbrella.dir)
                .and_then(|dir| dir.canonicalize().ok())
                .is_some_and(|dir| Some(dir) == target_dir);
            if points_here {
                found.push((*umbrella, dep.alias.clone().unwrap_or_else(|| dep.name.clone())));
            }
        }
    }
    // Deployed under its own name and under aliases: the name means the
    // entry without an alias.
    if found.len() > 1 {
        if let Some(own) = found.iter().position(|(_, name)| *name == args.chart) {
            found = vec![found.swap_remove(own)];
        }
    }
    match found.len() {
        0 if args.umbrella.is_some() => exit::usage(format!(
            "--umbrella {}: it does not deploy {}",
            args.umbrella.as_deref().unwrap_or_default(),
            chart.name
        )),
        0 => Ok(Place { top: chart, target: Vec::new(), name: chart.name.clone(), in_umbrella: false }),
        1 => {
            let (umbrella, name) = found.remove(0);
            Ok(Place { top: umbrella, target: vec![name.clone()], name, in_umbrella: true })
        }
        _ => {
            let listed: Vec<String> = found.iter().map(|(u, n)| format!("{n} in {}", u.name)).collect();
            exit::usage(format!(
                "{} is deployed more than once ({}): name the alias instead, or pass --umbrella",
                chart.name,
                listed.join(", ")
            ))
        }
    }
}

/// Splits a KEY on dots; `\.` is a dot inside a key, as in --set.
fn split_key(key: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            '.' => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Values that reports hide unless asked: the value contract's `secretEnv`,
/// and keys named like passwords (not `existing...` keys, which name a Secret).
pub fn looks_secret(path: &[String]) -> bool {
    if path.iter().any(|s| s == "secretEnv") {
        return true;
    }
    path.last().is_some_and(|last| {
        let lower = last.to_ascii_lowercase();
        (lower.contains("password") && !lower.starts_with("existing")) || lower == "erlangcookie"
    })
}

fn subtree_at(table: &tree::Table, path: &[String]) -> Plain {
    let mut node = Node::table(table.clone(), IMPLICIT);
    for key in path {
        match node.as_table().and_then(|t| tree::get(t, key)) {
            Some(next) => node = next,
            None => return Plain::Null,
        }
    }
    tree::to_plain(&node)
}

fn is_empty(value: &Plain) -> bool {
    match value {
        Plain::Null => true,
        Plain::String(s) => s.is_empty(),
        Plain::Object(map) => map.is_empty(),
        Plain::Array(items) => items.is_empty(),
        _ => false,
    }
}

fn mask_plain(value: Plain, path: &[String], hide: &dyn Fn(&[String], &Plain) -> bool) -> Plain {
    if hide(path, &value) && !matches!(value, Plain::Object(_)) {
        return Plain::String(HIDDEN.into());
    }
    match value {
        Plain::Object(map) => Plain::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let mut p = path.to_vec();
                    p.push(k.clone());
                    let v = mask_plain(v, &p, hide);
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// The layers that set or were overridden by a shown leaf, plus the user's
/// own layers (always listed, even when they changed nothing here).
fn used_layers<'a>(layers: &'a [Layer], leaves: &[tree::Leaf]) -> Vec<&'a Layer> {
    let mut used = std::collections::BTreeSet::new();
    for leaf in leaves {
        used.insert(leaf.node.origin);
        used.extend(leaf.node.overrode.iter().map(|o| o.layer));
    }
    // Lowest priority first: the chart's own defaults before the umbrella's,
    // which is the reverse of the order they were read in (top down).
    let mut charts: Vec<(usize, &Layer)> =
        layers.iter().enumerate().filter(|(i, l)| l.kind == LayerKind::Chart && used.contains(i)).collect();
    charts.reverse();
    let user = layers.iter().filter(|l| matches!(l.kind, LayerKind::Environment | LayerKind::File | LayerKind::Set));
    charts.into_iter().map(|(_, l)| l).chain(user).collect()
}

/// The people's format (stderr).
fn human(report: &Report, place: &Place, leaves: &[tree::Leaf]) -> String {
    let mut out = String::new();
    let context = if place.in_umbrella { format!(", as {} deploys it", report.top) } else { String::new() };
    let env = report.environment.as_deref().map_or(String::new(), |e| format!(" in {e}"));
    out.push_str(&format!("{}{context}{env}\n", report.chart));
    out.push_str("layers, lowest priority first:\n");
    for layer in &report.layers {
        let what = match layer.kind {
            LayerKind::Chart if place.in_umbrella && layer.source.starts_with(&format!("{}/", report.top)) => {
                "umbrella values"
            }
            LayerKind::Chart => "chart defaults",
            LayerKind::Environment => "environment file",
            LayerKind::File => "-f",
            LayerKind::Set => "command line",
            LayerKind::Implicit => "helm",
        };
        out.push_str(&format!("  {:<40} {what}\n", layer.source));
    }
    out.push('\n');
    let rows: Vec<(String, String)> = report
        .leaves
        .iter()
        .zip(leaves)
        // Empty maps Helm made up itself (a subchart section nobody wrote)
        // say nothing to a reader.
        .filter(|(_, leaf)| leaf.node.origin != IMPLICIT)
        .map(|(r, _)| {
            let left = format!("{}: {}", r.path, tree::show_value(&r.value));
            let mut right = r.source.clone();
            if !r.overrode.is_empty() {
                let was: Vec<String> = r
                    .overrode
                    .iter()
                    .rev()
                    .map(|o| format!("{} in {}", tree::show_value(&o.value), o.source))
                    .collect();
                right.push_str(&format!(" (was {})", was.join(", ")));
            }
            (left, right)
        })
        .collect();
    let width = rows.iter().map(|(l, _)| l.chars().count()).filter(|&w| w <= 60).max().unwrap_or(0);
    for (left, right) in rows {
        out.push_str(&format!("{left:<width$}  <- {right}\n"));
    }
    for d in &report.deleted {
        out.push_str(&format!(
            "{}: (deleted)  <- null in {} (was {} in {})\n",
            d.path,
            d.by,
            tree::show_value(&d.was.value),
            d.was.source
        ));
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_like_set() {
        assert_eq!(split_key("image.tag"), vec!["image", "tag"]);
        assert_eq!(split_key(r"initdbScripts.ratings\.sh"), vec!["initdbScripts", "ratings.sh"]);
    }

    #[test]
    fn secret_looking_paths() {
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert!(looks_secret(&p("secretEnv.MONGO_URL")));
        assert!(looks_secret(&p("auth.rootPassword")));
        assert!(!looks_secret(&p("auth.existingPasswordSecret")));
        assert!(!looks_secret(&p("existingSecret")));
        assert!(!looks_secret(&p("image.tag")));
    }
}
