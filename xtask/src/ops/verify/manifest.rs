//! What `verify` reads from a rendered release: its objects with the
//! template each came from, the objects rendered twice, and a Pod built from
//! every workload's pod template.
//!
//! Duplicates are found here, before anything is installed, because the API
//! server cannot see them: helm applies the second copy over the first and
//! the release silently keeps one of them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// One object of a render.
#[derive(Debug, Clone)]
pub struct Object {
    /// The `# Source:` path, e.g. `web/templates/deployment.yaml`.
    pub source: String,
    pub kind: String,
    pub name: String,
    /// As rendered (empty: the release namespace).
    pub namespace: String,
    pub value: Value,
}

impl Object {
    /// `Kind/name`, as the report names an object.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// The objects of a `helm template` output; documents that are not a
/// mapping with a kind (empty, comments only) are left out.
pub fn objects(rendered: &str) -> Result<Vec<Object>, String> {
    let mut found = Vec::new();
    for doc in crate::exec::helm::split_documents(rendered) {
        let source = doc
            .lines()
            .find_map(|l| l.trim().strip_prefix("# Source: "))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "(unknown template)".to_string());
        let value: Value = yaml_serde::from_str(&doc).map_err(|e| format!("{source}: not YAML: {e}"))?;
        let Some(kind) = value.get("kind").and_then(Value::as_str) else { continue };
        let meta = &value["metadata"];
        found.push(Object {
            source,
            kind: kind.to_string(),
            name: meta["name"].as_str().unwrap_or_default().to_string(),
            namespace: meta["namespace"].as_str().unwrap_or_default().to_string(),
            value: value.clone(),
        });
    }
    Ok(found)
}

/// Every kind/namespace/name rendered more than once, one line each naming
/// every template that rendered it.
pub fn duplicates(objects: &[Object]) -> Vec<String> {
    let mut seen: BTreeMap<(String, String, String), Vec<&str>> = BTreeMap::new();
    for object in objects {
        seen.entry((object.kind.clone(), object.namespace.clone(), object.name.clone()))
            .or_default()
            .push(&object.source);
    }
    seen.into_iter()
        .filter(|(_, sources)| sources.len() > 1)
        .map(|((kind, namespace, name), sources)| {
            let namespace = if namespace.is_empty() { String::new() } else { format!(" in namespace {namespace}") };
            format!("{kind}/{name}{namespace} is rendered {} times: by {}", sources.len(), sources.join(" and by "))
        })
        .collect()
}

/// The pod template of a workload kind, if it is one.
fn pod_template(object: &Object) -> Option<&Value> {
    let spec = &object.value["spec"];
    let template = match object.kind.as_str() {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => &spec["template"],
        "CronJob" => &spec["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    template.is_object().then_some(template)
}

/// A Pod for every workload: its pod template's metadata and spec, named
/// after the workload (the API server would name the real ones alike), in
/// `namespace`. Returned with the workload's `Kind/name`.
pub fn pods(objects: &[Object], namespace: &str) -> Vec<(String, Value)> {
    objects
        .iter()
        .filter_map(|object| {
            let template = pod_template(object)?;
            let mut metadata = template.get("metadata").cloned().unwrap_or_else(|| json!({}));
            if !metadata.is_object() {
                metadata = json!({});
            }
            let name: String = format!("{}-verify", object.name).chars().take(63).collect();
            metadata["name"] = json!(name.trim_end_matches('-'));
            metadata["namespace"] = json!(namespace);
            let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
            if object.kind == "StatefulSet" {
                add_claim_volumes(&mut spec, &object.value["spec"]["volumeClaimTemplates"], &name);
            }
            let pod = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec });
            Some((object.id(), pod))
        })
        .collect()
}

/// The volumes the StatefulSet controller adds to its Pods, one per claim
/// template (unless the pod template has one of that name): without them
/// the Pod is invalid for its mounts before Pod Security even looks.
fn add_claim_volumes(spec: &mut Value, claims: &Value, pod_name: &str) {
    let Some(claims) = claims.as_array() else { return };
    if !spec.is_object() {
        return;
    }
    if !spec["volumes"].is_array() {
        spec["volumes"] = json!([]);
    }
    let Some(volumes) = spec["volumes"].as_array_mut() else { return };
    for claim in claims {
        let Some(claim_name) = claim["metadata"]["name"].as_str() else { continue };
        if volumes.iter().any(|v| v["name"].as_str() == Some(claim_name)) {
            continue;
        }
        volumes.push(json!({
            "name": claim_name,
            "persistentVolumeClaim": { "claimName": format!("{claim_name}-{pod_name}") },
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDER: &str = "---\n# Source: a/templates/one.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n---\n# Source: a/templates/two.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n---\n# Source: a/templates/job.yaml\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: nightly\nspec:\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n          labels: {app: a}\n        spec:\n          containers: [{name: c, image: busybox}]\n";

    #[test]
    fn duplicates_name_both_templates_and_cronjobs_give_a_pod() {
        let objects = objects(RENDER).expect("parse");
        assert_eq!(objects.len(), 3);
        assert_eq!(
            duplicates(&objects),
            vec!["ConfigMap/cfg is rendered 2 times: by a/templates/one.yaml and by a/templates/two.yaml"]
        );
        let pods = pods(&objects, "ns");
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].0, "CronJob/nightly");
        assert_eq!(pods[0].1["metadata"]["name"], "nightly-verify");
        assert_eq!(pods[0].1["metadata"]["labels"]["app"], "a");
        assert_eq!(pods[0].1["spec"]["containers"][0]["name"], "c");
    }
}
