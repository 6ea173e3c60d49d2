//! Loading a chart and its subcharts from the repository into the tree the
//! merge works on ([`ChartNode`]).
//!
//! Only files are read (no helm, no network): `file://` dependencies (and
//! remote ones that in-repo resolution maps to a sibling) are followed into
//! the repository, a subchart unpacked under the chart's own
//! `charts/` folder is used as Helm would, and a dependency from a remote
//! repository (the umbrella's Bitnami charts) becomes a node without
//! defaults: its own values.yaml is inside an archive this does not fetch.
//! That changes nothing for the other subcharts: values only flow from a
//! parent down into each subchart, never sideways (except Helm's nested
//! `global` sharing, see `coalesce`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Deserialize;

use super::coalesce::{ChartNode, DependencyDecl};
use super::load;
use super::tree::{new_table, Layer, LayerKind};
use crate::core::model::Repo;

/// The parts of Chart.yaml the merge needs.
#[derive(Debug, Deserialize)]
struct ChartFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    dependencies: Vec<DependencyFile>,
}

#[derive(Debug, Deserialize)]
struct DependencyFile {
    name: String,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    condition: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    alias: Option<String>,
    #[serde(default, rename = "import-values")]
    import_values: Option<yaml_serde::Value>,
}

/// Deeper than any real chart tree: a dependency cycle stops here with an
/// error instead of recursing forever.
const MAX_DEPTH: usize = 16;

/// Loads the chart in `dir` and its subcharts. `name_as` is the name its
/// parent uses (an alias); each values.yaml read becomes a layer. `repo`
/// resolves dependencies the way staging does: `file://` paths, and remote
/// dependencies that a chart of the repository satisfies (in-repo resolution).
pub fn load_chart(
    root: &Path,
    repo: &Repo,
    dir: &Path,
    name_as: Option<&str>,
    layers: &mut Vec<Layer>,
) -> Result<ChartNode> {
    load_at(root, repo, dir, name_as, layers, 0)
}

/// The folder of a dependency that is a chart of the repository, as the
/// repository model resolved it.
fn local_dir(repo: &Repo, dir: &Path, dep: &DependencyFile) -> Option<PathBuf> {
    let canonical = dir.canonicalize().ok()?;
    let chart = repo.charts.iter().find(|c| c.dir.canonicalize().ok().as_ref() == Some(&canonical))?;
    chart
        .meta
        .dependencies
        .iter()
        .find(|d| d.name == dep.name && d.alias == dep.alias)
        .and_then(|d| d.local_dir(&chart.dir))
}

fn load_at(
    root: &Path,
    repo: &Repo,
    dir: &Path,
    name_as: Option<&str>,
    layers: &mut Vec<Layer>,
    depth: usize,
) -> Result<ChartNode> {
    // `helm/robot-shop/../../charts/catalogue` is charts/catalogue to a reader.
    let dir = &dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let label = crate::core::model::relative(root, dir);
    if depth > MAX_DEPTH {
        anyhow::bail!("{label}: subcharts nested deeper than {MAX_DEPTH} levels; is there a dependency cycle?");
    }
    let shown = format!("{label}/Chart.yaml");
    let file: ChartFile = crate::util::yaml::load(&dir.join("Chart.yaml"), &shown)?;
    let own_name =
        file.name.clone().unwrap_or_else(|| dir.file_name().unwrap_or_default().to_string_lossy().into_owned());
    let name = name_as.map_or(own_name, str::to_string);

    let values_path = dir.join("values.yaml");
    let values = if values_path.is_file() {
        let source = format!("{label}/values.yaml");
        layers.push(Layer { source: source.clone(), kind: LayerKind::Chart });
        load::load_file(&values_path, &source, layers.len() - 1)?
    } else {
        new_table()
    };

    let mut decls = Vec::new();
    let mut deps = Vec::new();
    for dep in &file.dependencies {
        let dep_name = dep.alias.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| dep.name.clone());
        decls.push(DependencyDecl {
            name: dep_name.clone(),
            condition: dep.condition.clone().filter(|c| !c.trim().is_empty()),
            tags: dep.tags.clone(),
            import_values: dep.import_values.as_ref().is_some_and(|v| !v.is_null()),
            enabled: true,
        });
        let repository = dep.repository.as_deref().unwrap_or_default();
        let unpacked = dir.join("charts").join(&dep.name);
        let local = local_dir(repo, dir, dep).or_else(|| repository.strip_prefix("file://").map(|path| dir.join(path)));
        let node = if let Some(target) = local {
            if !target.join("Chart.yaml").is_file() {
                anyhow::bail!("{shown}: dependency {} points at {repository}, which has no Chart.yaml", dep.name);
            }
            load_at(root, repo, &target, Some(&dep_name), layers, depth + 1)
                .with_context(|| format!("{shown}: dependency {}", dep.name))?
        } else if unpacked.join("Chart.yaml").is_file() {
            load_at(root, repo, &unpacked, Some(&dep_name), layers, depth + 1)?
        } else {
            ChartNode {
                name: dep_name.clone(),
                label: format!("{} {}", repository, dep.name),
                values: new_table(),
                decls: Vec::new(),
                deps: Vec::new(),
                remote: Some(repository.to_string()),
            }
        };
        deps.push(node);
    }
    Ok(ChartNode { name, label, values, decls, deps, remote: None })
}
