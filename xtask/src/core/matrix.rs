//! `service-matrix.yaml`: the inventory of every service (the design
//! document's Challenge 2), and the runtime dependency graph it describes.
//!
//! The matrix is a second graph beside the chart graph: which service calls
//! which at run time. It is checked on its own (unknown services, cycles) and
//! against the charts (see `consistency`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;
use serde::{Deserialize, Serialize};

use crate::core::names::{self, NameKind};
use crate::util::yaml::{self, Seg};

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServiceMatrix {
    pub services: Vec<Service>,
}

/// One service. Unknown keys are kept so the file can grow without breaking the tool.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Service {
    pub name: String,
    #[serde(default, rename = "type")]
    pub workload: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    /// None for a service that listens on no port (dispatch).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default)]
    pub env_vars: Vec<yaml_serde::Value>,
    #[serde(default)]
    pub chart_source: Option<String>,
    #[serde(default)]
    pub chart_version: Option<String>,
    #[serde(default)]
    pub chart: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub health: Option<String>,
    #[serde(default)]
    pub exposed: Option<bool>,
    #[serde(flatten)]
    pub other: BTreeMap<String, yaml_serde::Value>,
}

impl Service {
    /// The Service name other services dial (`host:` in the matrix), if it
    /// has one; the name itself when the matrix does not say (the document's
    /// original format has no `host` key).
    pub fn host(&self) -> Option<String> {
        match self.other.get("host") {
            Some(yaml_serde::Value::String(host)) => Some(host.clone()),
            Some(yaml_serde::Value::Null) => None,
            Some(other) => crate::core::matrix::scalar_text(other),
            None => Some(self.name.clone()),
        }
    }

    /// Deployed from a third-party chart (`chart_source` other than `local`,
    /// e.g. `bitnami`) rather than from a chart of this repository.
    pub fn is_infrastructure(&self) -> bool {
        matches!(self.chart_source.as_deref(), Some(source) if source != "local")
    }

    /// The environment variables the matrix lists, as (name, value): an
    /// entry is either `NAME` or a one-key map `NAME: value`.
    pub fn env_pairs(&self) -> Vec<(String, Option<String>)> {
        let mut pairs = Vec::new();
        for entry in &self.env_vars {
            match entry {
                yaml_serde::Value::String(name) => pairs.push((name.clone(), None)),
                yaml_serde::Value::Mapping(map) => {
                    for (key, value) in map {
                        if let Some(name) = scalar_text(key) {
                            pairs.push((name, scalar_text(value)));
                        }
                    }
                }
                _ => {}
            }
        }
        pairs
    }
}

/// A YAML scalar as text (`8080` and `"8080"` both give `8080`); None for
/// null, maps and lists.
pub fn scalar_text(value: &yaml_serde::Value) -> Option<String> {
    match value {
        yaml_serde::Value::String(s) => Some(s.clone()),
        yaml_serde::Value::Number(n) => Some(n.to_string()),
        yaml_serde::Value::Bool(b) => Some(b.to_string()),
        yaml_serde::Value::Tagged(tagged) => scalar_text(&tagged.value),
        _ => None,
    }
}

impl ServiceMatrix {
    /// Loads the matrix; `Ok(None)` when the repository has none.
    pub fn load(root: &Path, file: &str) -> Result<Option<ServiceMatrix>> {
        let path = root.join(file);
        if path.symlink_metadata().is_err() {
            return Ok(None);
        }
        crate::util::fs::inside(root, &path)?;
        let text = yaml::read_text(&path, file)?;
        let matrix: ServiceMatrix = yaml::parse(&text, file)?;
        // Service names become Kubernetes names, file names of argocd/ and
        // chart folders (`new-service`): checked here, where they are read.
        for (index, service) in matrix.services.iter().enumerate() {
            if let Err(message) = names::check(NameKind::Service, &service.name) {
                let at = [Seg::Key("services"), Seg::Index(index), Seg::Key("name")];
                return Err(yaml::error_at(&text, file, &at, message).into());
            }
        }
        Ok(Some(matrix))
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Problems of the matrix on its own: duplicate names, dependencies on
    /// services it does not list, and cycles in the runtime graph.
    pub fn problems(&self, file: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = BTreeMap::new();
        for (i, service) in self.services.iter().enumerate() {
            if let Some(first) = seen.insert(service.name.as_str(), i) {
                problems.push(format!(
                    "{file}: service {:?} is listed twice (entries {} and {})",
                    service.name,
                    first + 1,
                    i + 1
                ));
            }
        }
        let mut graph = DiGraph::<&str, ()>::new();
        let nodes: BTreeMap<&str, _> =
            self.services.iter().map(|s| (s.name.as_str(), graph.add_node(s.name.as_str()))).collect();
        for service in &self.services {
            for dep in &service.dependencies {
                match nodes.get(dep.as_str()) {
                    Some(&target) => {
                        graph.update_edge(nodes[service.name.as_str()], target, ());
                    }
                    None => problems.push(format!(
                        "{file}: service {:?} depends on {:?}, which is not a service of the matrix (known: {})",
                        service.name,
                        dep,
                        nodes.keys().copied().collect::<Vec<_>>().join(", ")
                    )),
                }
            }
        }
        for component in tarjan_scc(&graph) {
            let self_loop = component.len() == 1 && graph.find_edge(component[0], component[0]).is_some();
            if component.len() > 1 || self_loop {
                let mut names: Vec<&str> = component.iter().map(|n| graph[*n]).collect();
                names.sort();
                problems.push(format!("{file}: runtime dependency cycle: {} -> {}", names.join(" -> "), names[0]));
            }
        }
        problems
    }

    /// Runtime edges (service, dependency), for graphs and policies.
    pub fn edges(&self) -> Vec<(String, String)> {
        self.services.iter().flat_map(|s| s.dependencies.iter().map(move |d| (s.name.clone(), d.clone()))).collect()
    }
}
