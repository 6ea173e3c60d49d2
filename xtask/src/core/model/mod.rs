//! The repository model: which charts exist, what their Chart.yaml says, and
//! which environments each chart is checked in.
//!
//! A chart is any folder under a chart directory that holds a `Chart.yaml`.
//! Folders inside a chart (its `templates/`, its vendored `charts/`) are never
//! charts of the repository, and neither are packaged `.tgz` dependencies.
//! A chart whose Chart.yaml cannot be read is kept as a [`BrokenChart`] so the
//! commands can report it as failed while still checking every other chart.

pub mod inrepo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::core::config::Config;
use crate::core::names::{self, NameKind};
use crate::util::yaml::{self, Seg};

/// The fields of Chart.yaml that the tool uses; others are ignored.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ChartYaml {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default, rename = "type")]
    pub chart_type: Option<String>,
    #[serde(default)]
    pub app_version: Option<yaml_serde::Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
}

/// One entry of Chart.yaml's `dependencies`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub alias: Option<String>,
    /// Read only for Helm's lock digest, which hashes every field Helm knows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, rename = "import-values", skip_serializing_if = "Option::is_none")]
    pub import_values: Option<yaml_serde::Value>,
    /// The folder of the chart of this repository that a remote dependency
    /// resolves to (set by [`crate::core::model::inrepo::resolve`]); never read from YAML.
    #[serde(skip)]
    pub in_repo: Option<PathBuf>,
}

impl Dependency {
    /// The folder of a dependency that is a chart of this repository: a
    /// `file://` path, or a sibling matched by in-repo resolution.
    pub fn local_dir(&self, chart_dir: &Path) -> Option<PathBuf> {
        match self.file_path() {
            Some(path) => Some(chart_dir.join(path)),
            None => self.in_repo.clone(),
        }
    }

    /// The folder of a `file://` dependency, relative to the depending chart.
    pub fn file_path(&self) -> Option<&str> {
        self.repository.as_deref().and_then(|r| r.strip_prefix("file://"))
    }

    /// The repository of a remote dependency (OCI or HTTP), if any.
    pub fn remote_repository(&self) -> Option<&str> {
        match self.repository.as_deref() {
            Some(r) if !r.is_empty() && !r.starts_with("file://") => Some(r),
            _ => None,
        }
    }
}

/// What role a chart plays; decides how it is checked and how CI lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartKind {
    /// `type: library`: named templates only, checked through its users.
    Library,
    /// A deployable chart of one service.
    Application,
    /// An application chart that depends on other application charts of the repo.
    Umbrella,
}

impl ChartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChartKind::Library => "library",
            ChartKind::Application => "application",
            ChartKind::Umbrella => "umbrella",
        }
    }
}

/// One environment a chart is checked in: its name and the values files that
/// are layered over the chart's own `values.yaml`, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub name: String,
    /// Paths relative to the repository root.
    pub values_files: Vec<String>,
}

/// The environment used for charts without `values-<env>.yaml` files.
pub const DEFAULT_ENV: &str = "default";

/// A chart of the repository whose Chart.yaml was read.
#[derive(Debug, Clone)]
pub struct Chart {
    /// `name` from Chart.yaml.
    pub name: String,
    /// The version string from Chart.yaml, checked to be SemVer.
    pub version: semver::Version,
    /// Absolute folder.
    pub dir: PathBuf,
    /// Folder relative to the repository root, with `/` separators.
    pub rel: String,
    pub meta: ChartYaml,
    pub kind: ChartKind,
    pub environments: Vec<Environment>,
    /// Symbolic links inside the chart folder (all lead inside the
    /// repository: a chart with any other is a [`BrokenChart`]), relative to
    /// the repository root. `package` refuses them unless allowed.
    pub links: Vec<String>,
}

/// A chart folder whose Chart.yaml could not be used.
#[derive(Debug, Clone)]
pub struct BrokenChart {
    /// The folder name, standing in for the chart name.
    pub name: String,
    pub rel: String,
    pub error: String,
}

/// Every chart found under the configured chart directories.
#[derive(Debug, Clone)]
pub struct Repo {
    pub root: PathBuf,
    pub charts: Vec<Chart>,
    pub broken: Vec<BrokenChart>,
}

impl Repo {
    /// Finds and reads every chart under `config.chart_dirs`.
    pub fn discover(root: &Path, config: &Config) -> Result<Repo> {
        let root = &root.canonicalize().with_context(|| format!("cannot resolve {}", root.display()))?;
        let mut folders = Vec::new();
        for dir in &config.chart_dirs {
            // `chart-dirs` is checked to be a relative path without `..` when
            // xtask.toml is read; a chart directory that is a link must still
            // lead inside the repository.
            let path = root.join(dir);
            if path.is_dir() {
                crate::util::fs::inside(root, &path)
                    .with_context(|| format!("{}: chart directory {dir:?}", crate::core::config::FILE_NAME))?;
                find_chart_folders(&path, &mut folders)?;
            }
        }
        folders.sort();
        folders.dedup();

        let mut charts = Vec::new();
        let mut broken = Vec::new();
        for dir in folders {
            let rel = relative(root, &dir);
            match read_chart(root, &dir, &rel) {
                Ok(chart) => charts.push(chart),
                Err(err) => broken.push(BrokenChart {
                    name: dir.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                    rel,
                    error: format!("{err:#}"),
                }),
            }
        }
        let mut repo = Repo { root: root.to_path_buf(), charts, broken };
        repo.reject_duplicate_names();
        // After the duplicate check, so a name matches at most one sibling;
        // before classify, so a sibling reached through a registry counts.
        crate::core::model::inrepo::resolve(&mut repo, config);
        classify(&mut repo.charts);
        Ok(repo)
    }

    /// Two charts with one name cannot both be dependencies of anything, nor
    /// be packaged side by side; the later one (by path) is reported broken.
    fn reject_duplicate_names(&mut self) {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut keep = Vec::new();
        for chart in std::mem::take(&mut self.charts) {
            if let Some(first) = seen.get(&chart.name) {
                self.broken.push(BrokenChart {
                    name: chart.name.clone(),
                    rel: chart.rel.clone(),
                    error: format!("{}/Chart.yaml: chart name {:?} is already used by {first}", chart.rel, chart.name),
                });
            } else {
                seen.insert(chart.name.clone(), chart.rel.clone());
                keep.push(chart);
            }
        }
        self.charts = keep;
    }

    pub fn chart(&self, name: &str) -> Option<&Chart> {
        self.charts.iter().find(|c| c.name == name)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.charts.iter().position(|c| c.name == name)
    }

    /// Every chart name the repository knows, readable or not.
    pub fn all_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.charts.iter().map(|c| c.name.clone()).collect();
        names.extend(self.broken.iter().map(|b| b.name.clone()));
        names.sort();
        names
    }
}

/// Path of `path` relative to `root`, with forward slashes.
pub fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let text = rel.to_string_lossy().replace('\\', "/");
    if text.is_empty() {
        ".".to_string()
    } else {
        text
    }
}

fn find_chart_folders(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if dir.join("Chart.yaml").is_file() {
        // A chart's own subfolders (templates/, charts/, ci/) hold no charts of
        // the repository: dependencies vendored into charts/ are build output.
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).collect(),
        Err(_) => return Ok(()),
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "node_modules" || name == "target" {
            continue;
        }
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            find_chart_folders(&entry.path(), out)?;
        }
    }
    Ok(())
}

fn read_chart(root: &Path, dir: &Path, rel: &str) -> Result<Chart> {
    // Links first: Chart.yaml itself may be one, and nothing is read through
    // a link that leads out of the repository.
    let links = crate::util::fs::links_inside(root, dir)?;
    let shown = format!("{rel}/Chart.yaml");
    let text = yaml::read_text(&dir.join("Chart.yaml"), &shown)?;
    let meta: ChartYaml = yaml::parse(&text, &shown)?;
    let name = match meta.name.as_deref() {
        Some(name) if !name.trim().is_empty() => name.to_string(),
        _ => anyhow::bail!("{shown}: required field `name` is missing"),
    };
    check_names(root, dir, &meta, &text, &shown)?;
    let version_text = match meta.version.as_deref() {
        Some(v) if !v.trim().is_empty() => v.to_string(),
        _ => anyhow::bail!("{shown}: required field `version` is missing (a SemVer 2 version such as 1.0.0)"),
    };
    let version = semver::Version::parse(&version_text)
        .map_err(|err| anyhow::anyhow!("{shown}: version {version_text:?} is not SemVer 2 ({err})"))?;
    match meta.api_version.as_deref() {
        Some("v2") => {}
        Some(other) => anyhow::bail!("{shown}: apiVersion {other:?} is not supported (use v2)"),
        None => anyhow::bail!("{shown}: required field `apiVersion` is missing (use v2)"),
    }
    for dep in &meta.dependencies {
        if dep.version.as_deref().is_none_or(|v| v.trim().is_empty()) {
            anyhow::bail!("{shown}: dependency {:?} has no `version`", dep.name);
        }
    }
    let kind = if meta.chart_type.as_deref() == Some("library") { ChartKind::Library } else { ChartKind::Application };
    let environments = environments(root, dir, rel)?;
    Ok(Chart { name, version, dir: dir.to_path_buf(), rel: rel.to_string(), meta, kind, environments, links })
}

/// Every name of Chart.yaml that becomes a path or a reference, checked
/// against Helm's rules, and every `file://` dependency checked to stay in
/// the repository: refused at the value's line and column.
fn check_names(root: &Path, dir: &Path, meta: &ChartYaml, text: &str, shown: &str) -> Result<()> {
    let refuse =
        |path: &[Seg<'_>], message: String| -> anyhow::Error { yaml::error_at(text, shown, path, message).into() };
    if let Some(name) = &meta.name {
        names::check(NameKind::Chart, name).map_err(|m| refuse(&[Seg::Key("name")], m))?;
    }
    for (index, dep) in meta.dependencies.iter().enumerate() {
        let at = |key| [Seg::Key("dependencies"), Seg::Index(index), Seg::Key(key)];
        names::check(NameKind::Chart, &dep.name).map_err(|m| refuse(&at("name"), format!("dependency: {m}")))?;
        if let Some(alias) = &dep.alias {
            names::check(NameKind::Alias, alias).map_err(|m| refuse(&at("alias"), m))?;
        }
        if let Some(version) = &dep.version {
            names::check_version_text(version.trim())
                .map_err(|m| refuse(&at("version"), format!("dependency {:?}: {m}", dep.name)))?;
        }
        if let Some(path) = dep.file_path() {
            // A folder that does not exist is the graph's to report; one
            // that exists must not lie outside the repository.
            if let Ok(target) = dir.join(path).canonicalize() {
                if !target.starts_with(root) {
                    return Err(refuse(
                        &at("repository"),
                        format!(
                            "dependency {:?}: file://{path} leads to {}, outside the repository",
                            dep.name,
                            target.display()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `values-<env>.yaml` files beside `values.yaml` are the chart's environments
/// (the design document's level 3), and so is each `ci/<name>-values.yaml`
/// (as `ci/<name>`); a chart without any is checked once with its defaults,
/// as the environment `default`.
fn environments(_root: &Path, dir: &Path, rel: &str) -> Result<Vec<Environment>> {
    let mut envs = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(env) = file.strip_prefix("values-").and_then(|f| f.strip_suffix(".yaml")) {
                if !env.is_empty() {
                    envs.push(Environment { name: env.to_string(), values_files: vec![format!("{rel}/{file}")] });
                }
            }
        }
    }
    // dev, staging, prod in promotion order; anything else after, by name.
    let rank = |name: &str| match name {
        "dev" => 0,
        "staging" => 1,
        "prod" => 2,
        _ => 3,
    };
    envs.sort_by(|a, b| (rank(&a.name), &a.name).cmp(&(rank(&b.name), &b.name)));
    // chart-testing's convention: each `ci/*-values.yaml` is one more
    // environment, and like `ct lint` the defaults alone are then not checked.
    envs.extend(ci_environments(dir, rel));
    // An environment's name becomes folder and file names of the work folder
    // (and a namespace), so it follows the same rule as every other name.
    for env in &envs {
        let name = env.name.strip_prefix("ci/").unwrap_or(&env.name);
        if let Err(message) = names::check(NameKind::Environment, name) {
            anyhow::bail!("{}: {message}", env.values_files.join(", "));
        }
    }
    if envs.is_empty() {
        envs.push(Environment { name: DEFAULT_ENV.to_string(), values_files: Vec::new() });
    }
    Ok(envs)
}

/// Environments of a chart's `ci/*-values.yaml` files (ct's convention),
/// named `ci/<name>` after `ci/<name>-values.yaml`, in file name order (ct's
/// glob order).
pub fn ci_environments(dir: &Path, rel: &str) -> Vec<Environment> {
    let mut files: Vec<String> = std::fs::read_dir(dir.join("ci"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with("-values.yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let stem = file.trim_end_matches("-values.yaml");
            Environment { name: format!("ci/{stem}"), values_files: vec![format!("{rel}/ci/{file}")] }
        })
        .collect()
}

/// An application chart that depends (through `file://` or in-repo
/// resolution) on another application chart of the repository is an umbrella.
fn classify(charts: &mut [Chart]) {
    let application_dirs: Vec<PathBuf> =
        charts.iter().filter(|c| c.kind == ChartKind::Application).filter_map(|c| c.dir.canonicalize().ok()).collect();
    for chart in charts.iter_mut() {
        if chart.kind != ChartKind::Application {
            continue;
        }
        let umbrella = chart.meta.dependencies.iter().any(|dep| {
            dep.local_dir(&chart.dir)
                .and_then(|p| p.canonicalize().ok())
                .is_some_and(|target| application_dirs.contains(&target))
        });
        if umbrella {
            chart.kind = ChartKind::Umbrella;
        }
    }
}
