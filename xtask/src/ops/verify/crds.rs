//! The pinned upstream CRDs (Argo CD's, the Prometheus operator's,
//! External Secrets'; see `exec/tools/crds.rs`) in the API server before
//! any chart, so a chart that renders a ServiceMonitor or an ExternalSecret
//! is checked against the real CRD; and `argocd/` itself, created in a
//! namespace `argocd` and reported like a chart.
//!
//! On the control plane we started the CRDs are created and waited for
//! until established. On a user's cluster nothing is written: each is
//! looked up, and a missing one is said once (the charts that render its
//! kinds then fail with the API server's own message).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use super::api::Api;
use crate::core::outcome::{ChartResult, Status, Step, StepResult};
use crate::exec::tools::crds::Crds;
use crate::util::exit::EnvironmentError;

/// How long the API server may take to serve a new CRD.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// Where the objects of a custom kind are created: by (apiVersion group, kind).
#[derive(Debug, Default)]
pub struct Kinds {
    /// (group, kind) -> (plural, namespaced).
    by_kind: BTreeMap<(String, String), (String, bool)>,
}

impl Kinds {
    /// The kinds of the pinned CRDs, read from their files.
    pub fn of(crds: &Crds) -> Result<Kinds> {
        Ok(kinds_of(&definitions(crds)?))
    }

    /// The collection path of `object` in `namespace`, if its kind is one
    /// of the pinned CRDs'.
    fn path(&self, object: &Value, namespace: &str) -> Option<String> {
        let api_version = object["apiVersion"].as_str()?;
        let kind = object["kind"].as_str()?;
        let group = api_version.split('/').next()?;
        let (plural, namespaced) = self.by_kind.get(&(group.to_string(), kind.to_string()))?;
        Some(if *namespaced {
            format!("/apis/{api_version}/namespaces/{namespace}/{plural}")
        } else {
            format!("/apis/{api_version}/{plural}")
        })
    }
}

/// Every CRD file's documents as JSON.
fn definitions(crds: &Crds) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for module in &crds.modules {
        for file in &module.files {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            for document in yaml_serde::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(document)
                    .with_context(|| format!("{}: not YAML", file.display()))?;
                if value["kind"] == "CustomResourceDefinition" {
                    out.push(value);
                }
            }
        }
    }
    Ok(out)
}

fn kinds_of(definitions: &[Value]) -> Kinds {
    let mut kinds = Kinds::default();
    for crd in definitions {
        let spec = &crd["spec"];
        if let (Some(group), Some(kind), Some(plural)) =
            (spec["group"].as_str(), spec["names"]["kind"].as_str(), spec["names"]["plural"].as_str())
        {
            let namespaced = spec["scope"].as_str() != Some("Cluster");
            kinds.by_kind.insert((group.into(), kind.into()), (plural.into(), namespaced));
        }
    }
    kinds
}

/// The (API group, kind) of every object in `objects`.
pub fn kinds_used<'o>(objects: impl Iterator<Item = &'o super::manifest::Object>) -> BTreeSet<(String, String)> {
    objects.filter_map(|object| group_kind(&object.value)).collect()
}

/// The (API group, kind) of every document in `argocd/`'s files (those
/// [`verify_argocd`] creates); unreadable files add nothing (its step says why).
pub fn argocd_kinds(root: &Path) -> BTreeSet<(String, String)> {
    let dir = root.join("argocd");
    let mut files = Vec::new();
    collect_yaml(&dir, &dir.join("values"), &mut files);
    let mut kinds = BTreeSet::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for document in yaml_serde::Deserializer::from_str(&text) {
            if let Ok(value) = <Value as serde::Deserialize>::deserialize(document) {
                kinds.extend(group_kind(&value));
            }
        }
    }
    kinds
}

fn group_kind(object: &Value) -> Option<(String, String)> {
    let api_version = object["apiVersion"].as_str()?;
    let group = if api_version.contains('/') { api_version.split('/').next()? } else { "" };
    Some((group.to_string(), object["kind"].as_str()?.to_string()))
}

/// Creates the pinned CRDs in our control plane (with `used`, only those
/// whose kinds it names: the nine pinned ones took 3.7 s to create and be
/// served on two cores, 2026-12-02, and most charts render none of them)
/// and waits until each is served. Returns the kinds created.
pub fn install(api: &Api, crds: &Crds, used: Option<&BTreeSet<(String, String)>>) -> Result<Kinds> {
    let mut definitions = definitions(crds)?;
    if let Some(used) = used {
        definitions.retain(|crd| {
            let spec = &crd["spec"];
            let key = (spec["group"].as_str().unwrap_or_default(), spec["names"]["kind"].as_str().unwrap_or_default());
            used.iter().any(|(group, kind)| (group.as_str(), kind.as_str()) == key)
        });
    }
    let fail = |what: String| -> anyhow::Error { EnvironmentError(format!("verify: CRDs: {what}")).into() };
    for crd in &definitions {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let answer = api.post(CRDS, crd)?;
        if !answer.ok() && answer.status != 409 {
            return Err(fail(format!("cannot create {name}: {}", answer.message())));
        }
    }
    let started = Instant::now();
    for crd in &definitions {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        loop {
            let answer = api.get(&format!("{CRDS}/{name}"))?;
            let established = serde_json::from_str::<Value>(&answer.body).ok().is_some_and(|v| {
                v["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Established" && c["status"] == "True"))
            });
            if established {
                break;
            }
            if started.elapsed() > ESTABLISH_TIMEOUT {
                return Err(fail(format!("{name} was not established within {ESTABLISH_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(kinds_of(&definitions))
}

/// The pinned CRDs a user's cluster does not have (looked up, never written).
pub fn missing(api: &Api, crds: &Crds) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for crd in definitions(crds)? {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if api.get(&format!("{CRDS}/{name}"))?.status == 404 {
            missing.push(name);
        }
    }
    Ok(missing)
}

/// `argocd/` (the app-of-apps and the ApplicationSets, every YAML file
/// outside `argocd/values/`) created in the namespace `argocd`, one step
/// per file; `dry_run` on a user's cluster.
pub fn verify_argocd(api: &Api, kinds: &Kinds, root: &Path, dry_run: bool) -> Option<ChartResult> {
    let dir = root.join("argocd");
    if !dir.is_dir() {
        return None;
    }
    let mut files = Vec::new();
    collect_yaml(&dir, &dir.join("values"), &mut files);
    files.sort();
    let mut steps = Vec::new();
    if !dry_run {
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}});
        if let Err(message) = api.post("/api/v1/namespaces", &namespace).map_err(|e| format!("{e:#}")).and_then(|a| {
            if a.ok() || a.status == 409 {
                Ok(())
            } else {
                Err(a.message())
            }
        }) {
            steps.push(StepResult::new(Step::Install, None, None, Status::Failed, Duration::ZERO, message));
        }
    }
    for file in &files {
        let rel = crate::core::model::relative(root, file);
        let started = Instant::now();
        let outcome = create_file(api, kinds, file, dry_run);
        let (status, message) = match outcome {
            Ok(count) => (Status::Ok, format!("{rel}: {count} object(s) created in namespace argocd")),
            Err(message) => (Status::Failed, format!("{rel}: {message}")),
        };
        steps.push(StepResult::new(Step::Install, None, None, status, started.elapsed(), message));
    }
    Some(super::argocd_result(steps))
}

fn collect_yaml(dir: &Path, skip: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == skip {
            continue;
        }
        if path.is_dir() {
            collect_yaml(&path, skip, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// Creates every object of one file; Err names the object and what the
/// API server said.
fn create_file(api: &Api, kinds: &Kinds, file: &Path, dry_run: bool) -> Result<usize, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    let mut count = 0;
    for document in yaml_serde::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document).map_err(|e| format!("not YAML: {e}"))?;
        if value.is_null() {
            continue;
        }
        let id =
            format!("{}/{}", value["kind"].as_str().unwrap_or("?"), value["metadata"]["name"].as_str().unwrap_or("?"));
        let Some(mut path) = kinds.path(&value, "argocd") else {
            return Err(format!("{id}: its kind is not one of the pinned CRDs' (xtask/src/exec/tools/pins.toml)"));
        };
        if dry_run {
            path.push_str("?dryRun=All");
        }
        path.push_str(if dry_run { "&fieldValidation=Strict" } else { "?fieldValidation=Strict" });
        let answer = api.post(&path, &value).map_err(|e| format!("{id}: {e:#}"))?;
        if !answer.ok() {
            return Err(format!("{id}: {}", answer.message()));
        }
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_named_by_api_group_and_core_kinds_have_none() {
        let objects = super::super::manifest::objects(
            "---\n# Source: a/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\n# Source: a/templates/es.yaml\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: e\n",
        )
        .expect("parse");
        let used = kinds_used(objects.iter());
        let expected: BTreeSet<(String, String)> = [("", "ConfigMap"), ("external-secrets.io", "ExternalSecret")]
            .into_iter()
            .map(|(g, k)| (g.to_string(), k.to_string()))
            .collect();
        assert_eq!(used, expected);
    }

    #[test]
    fn argocd_files_name_the_kinds_they_create() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::create_dir_all(dir.path().join("argocd/values")).expect("mkdir");
        std::fs::write(
            dir.path().join("argocd/app.yaml"),
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\n---\napiVersion: argoproj.io/v1alpha1\nkind: AppProject\n",
        )
        .expect("write");
        // Values files are not created in the cluster.
        std::fs::write(dir.path().join("argocd/values/x.yaml"), "apiVersion: v1\nkind: Secret\n").expect("write");
        let kinds: Vec<String> = argocd_kinds(dir.path()).into_iter().map(|(g, k)| format!("{g}/{k}")).collect();
        assert_eq!(kinds, ["argoproj.io/AppProject", "argoproj.io/Application"]);
    }
}
