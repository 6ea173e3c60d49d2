//! Repository configuration: `xtask.toml` at the repository root, overridden
//! by command-line flags.
//!
//! The file is optional, so the engine works on any Helm monorepo with the
//! defaults (`--root DIR`). Tool version pins are not here: they belong to the
//! tool, not to the repository it checks (see `tools/pins.toml`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

/// The name of the optional configuration file at the repository root.
pub const FILE_NAME: &str = "xtask.toml";

/// Settings read from `xtask.toml`; every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Folders (relative to the root) searched for charts.
    #[serde(default = "default_chart_dirs")]
    pub chart_dirs: Vec<String>,
    /// Kubernetes versions every render is validated against (X.Y.Z).
    #[serde(default = "default_kube_versions")]
    pub kube_versions: Vec<String>,
    /// Release name used for every render, so that output does not depend on
    /// whether a chart was rendered alone or in a batch.
    #[serde(default = "default_release_name")]
    pub release_name: String,
    /// Dependency repositories to fetch from somewhere else: `FROM = "TO"`.
    #[serde(default)]
    pub mirrors: BTreeMap<String, String>,
    /// The service inventory, relative to the root; absent file = no matrix checks.
    #[serde(default = "default_matrix")]
    pub service_matrix: String,
    /// Resolve a remote dependency whose name and version match a chart of
    /// the repository to that chart (see `inrepo.rs`); `false` pulls it.
    #[serde(default = "default_true")]
    pub in_repo_dependencies: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            chart_dirs: default_chart_dirs(),
            kube_versions: default_kube_versions(),
            release_name: default_release_name(),
            mirrors: BTreeMap::new(),
            service_matrix: default_matrix(),
            in_repo_dependencies: true,
        }
    }
}

fn default_chart_dirs() -> Vec<String> {
    vec!["charts".into(), "helm".into()]
}

/// The newest Kubernetes the pinned schema package knows, and one a year older.
fn default_kube_versions() -> Vec<String> {
    vec!["1.37.0".into(), "1.36.0".into()]
}

fn default_release_name() -> String {
    "robot-shop".into()
}

fn default_true() -> bool {
    true
}

fn default_matrix() -> String {
    "service-matrix.yaml".into()
}

impl Config {
    /// Loads `<root>/xtask.toml` if it exists, else the defaults.
    pub fn load(root: &Path) -> Result<Config> {
        let path = root.join(FILE_NAME);
        if !path.exists() {
            return Ok(Config::default());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("{FILE_NAME}: cannot read file"))?;
        toml::from_str(&text)
            .map_err(|err| crate::exit::UsageError(format!("{FILE_NAME}: {}", err.to_string().trim_end())).into())
    }
}

/// Parses `FROM=TO` mirror flags.
pub fn parse_mirror(flag: &str) -> Result<(String, String)> {
    match flag.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => {
            Ok((from.trim_end_matches('/').to_string(), to.trim_end_matches('/').to_string()))
        }
        _ => crate::exit::usage(format!(
            "--mirror {flag:?}: expected FROM=TO, e.g. oci://charts.example/bitnamicharts=oci://127.0.0.1:5000/bitnamicharts"
        )),
    }
}
