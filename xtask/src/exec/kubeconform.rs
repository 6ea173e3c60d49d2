//! Running kubeconform over rendered manifests, offline, and reading its
//! JSON report back into per-file verdicts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde::Deserialize;

use crate::exec::process::{self, Finished};
use crate::exec::tools::Toolset;

#[derive(Debug, Deserialize)]
struct Report {
    #[serde(default)]
    resources: Vec<Resource>,
}

#[derive(Debug, Deserialize)]
struct Resource {
    filename: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    status: String,
    #[serde(default)]
    msg: String,
}

/// `-schema-location L` for every location of the toolset, Kubernetes
/// built-ins first, then CRDs.
pub fn schema_location_args(tools: &Toolset) -> Vec<String> {
    tools.schemas.locations.iter().flat_map(|l| ["-schema-location".to_string(), l.clone()]).collect()
}

/// Problems found in one file; empty when every resource is valid.
pub type Problems = Vec<String>;

/// Validates many files in one kubeconform process (`-strict`, all the
/// schema locations of the toolset) against one Kubernetes version.
/// Every file given gets an entry; files without problems map to an empty list.
pub fn validate(
    tools: &Toolset,
    kube_version: &str,
    files: &[PathBuf],
) -> Result<(Finished, BTreeMap<PathBuf, Problems>)> {
    let sh = xshell::Shell::new()?;
    let kc = &tools.kubeconform.path;
    let locations = crate::exec::kubeconform::schema_location_args(tools);
    let finished = process::run(
        xshell::cmd!(sh, "{kc} -strict -output json -kubernetes-version {kube_version} {locations...} {files...}")
            .env("GOGC", crate::exec::helm::go_gc()),
        None,
    )?;
    let report: Report = serde_json::from_str(&finished.stdout).with_context(|| {
        format!("kubeconform printed something that is not its JSON report:\n{}", finished.combined())
    })?;
    let mut problems: BTreeMap<PathBuf, Problems> = files.iter().map(|f| (f.clone(), Vec::new())).collect();
    for resource in report.resources {
        if resource.status == "statusValid" || resource.status == "statusSkipped" || resource.status == "statusEmpty" {
            continue;
        }
        let message = format!("{} {}: {}", resource.kind, resource.name, tidy(&resource.msg));
        problems.entry(PathBuf::from(resource.filename)).or_default().push(message);
    }
    Ok((finished, problems))
}

/// kubeconform wraps the interesting part of a schema error in boilerplate.
fn tidy(msg: &str) -> String {
    match msg.find(" - at '") {
        Some(index) => msg[index + 3..].to_string(),
        None => msg.to_string(),
    }
}
