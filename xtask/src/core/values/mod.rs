//! The values merge engine: the values a chart's templates see, computed the
//! way Helm computes them, with the layer each value came from.
//!
//! The map of this folder:
//! - `tree.rs`: values with provenance, with Go's sharing semantics;
//! - `load.rs`: values files (multi-document, merge keys) and Helm's
//!   `MergeMaps` of `-f` files;
//! - `set.rs`: Helm's `--set` syntax;
//! - `charts.rs`: a chart and its subcharts read from the repository;
//! - `coalesce.rs`: Helm's coalescing, ported from Helm 4.3.1, in its
//!   three passes.
//!
//! [`compute`] is the entry point; `cargo xtask explain` prints its result.
//! The layers, lowest priority first, are those of the design document:
//! each chart's `values.yaml` (the service chart's defaults, then the
//! umbrella's), the environment file, `-f` files, then `--set`.

pub mod charts;
pub mod coalesce;
pub mod load;
pub mod set;
pub mod tree;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use coalesce::{Coalescer, Deletion};
use tree::{get, new_table, Layer, LayerKind, Table};

/// What to merge.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The chart Helm would be run on: the umbrella, or a chart on its own.
    pub top_dir: PathBuf,
    /// Subchart names from the top chart down to the chart whose values are
    /// wanted; empty for the top chart itself.
    pub target: Vec<String>,
    /// Environment files (`-f values-<env>.yaml`), with the names to show.
    pub env_files: Vec<(PathBuf, String)>,
    /// Further `-f` files, with the names to show.
    pub files: Vec<(PathBuf, String)>,
    /// `--set` flags, in order; keys relative to the top chart.
    pub sets: Vec<String>,
}

/// The merged values of the target chart and how they came about.
#[derive(Debug)]
pub struct Merged {
    /// Every layer that was read; [`tree::Node::origin`] indexes into it.
    pub layers: Vec<Layer>,
    /// The target chart's values (its `.Values`).
    pub values: Table,
    /// Keys a `null` removed, with paths relative to the target chart.
    pub deletions: Vec<Deletion>,
    /// Things a reader should know (a disabled chart, unsupported features).
    pub notes: Vec<String>,
    /// Helm's warnings about mismatched types, under the target chart.
    pub warnings: Vec<String>,
}

/// Computes the target chart's values from the layers in `inputs`.
pub fn compute(root: &Path, repo: &crate::core::model::Repo, inputs: &Inputs) -> Result<Merged> {
    let mut layers = vec![Layer { source: "helm".to_string(), kind: LayerKind::Implicit }];
    let mut top = charts::load_chart(root, repo, &inputs.top_dir, None, &mut layers)?;

    // The user's values: -f files merged in order, then --set on top.
    let mut user = new_table();
    for (path, shown, kind) in inputs
        .env_files
        .iter()
        .map(|(p, s)| (p, s, LayerKind::Environment))
        .chain(inputs.files.iter().map(|(p, s)| (p, s, LayerKind::File)))
    {
        layers.push(Layer { source: shown.clone(), kind });
        let table = load::load_file(path, shown, layers.len() - 1)?;
        user = load::merge_maps(&user, &table);
    }
    if !inputs.sets.is_empty() {
        layers.push(Layer { source: "--set".to_string(), kind: LayerKind::Set });
        let layer = layers.len() - 1;
        for flag in &inputs.sets {
            set::parse_into(flag, &user, layer).map_err(|err| crate::util::exit::UsageError(format!("{err:#}")))?;
        }
    }

    let mut notes = Vec::new();
    let mut coalescer = Coalescer::default();
    coalesce::process_enabled(&mut coalescer, &mut top, &user, "", &inputs.target, &mut notes)
        .context("evaluating the dependencies' conditions")?;
    coalesce::process_import_values(&mut coalescer, &mut top, &mut notes)?;
    let mut final_pass = Coalescer::default();
    let all = final_pass.coalesce_final(&top, &user)?;

    let mut values = all;
    let mut chart = &top;
    for name in &inputs.target {
        let Some(section) = get(&values, name).and_then(|n| n.as_table().cloned()) else {
            anyhow::bail!("{}: Helm computed no values for subchart {name}", chart.label);
        };
        values = section;
        if let Some(sub) = chart.deps.iter().find(|d| &d.name == name) {
            chart = sub;
            if let Some(repository) = &sub.remote {
                notes.push(format!(
                    "{name} comes from {repository}: its own values.yaml is inside the chart archive, which explain does not read, so only the layers above it are shown"
                ));
            }
        }
    }

    let n = inputs.target.len();
    let deletions = final_pass
        .deletions
        .into_iter()
        .filter(|d| d.path.len() > n && d.path[..n] == inputs.target[..])
        .map(|mut d| {
            d.path.drain(..n);
            d
        })
        .collect();
    let prefix = if n == 0 { String::new() } else { format!("{}.", tree::show_path(&inputs.target)) };
    let warnings = coalescer
        .warnings
        .into_iter()
        .chain(final_pass.warnings)
        .filter(|w| w.starts_with(&prefix))
        .map(|w| w[prefix.len()..].to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(Merged { layers, values, deletions, notes, warnings })
}
