//! The repository's own charts, end to end: the whole repository lints green
//! (helm lint --strict, helm template and kubeconform -strict for two
//! Kubernetes versions, umbrella in dev, staging and prod) with the Bitnami
//! dependencies served by a real registry on loopback holding our stand-ins;
//! then assertions on what the charts render: the design document's values
//! hierarchy, hardened workloads, init containers and NetworkPolicies that
//! follow the service matrix, the prod HPA, images that exist, and schemas
//! that reject bad values by name.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value as Json;
use support::{at, describe, objects, str_at, Linted};
use yaml_serde::Value;

/// One lint of the whole repository, shared by every test of this file: the
/// mirror, the work folder (staged charts, renders) and the JSON report.
fn linted() -> &'static Linted {
    static LINTED: OnceLock<Linted> = OnceLock::new();
    LINTED.get_or_init(|| Linted::run(&["--format", "json", "lint"], "the repository"))
}

fn report() -> &'static Json {
    static REPORT: OnceLock<Json> = OnceLock::new();
    REPORT.get_or_init(|| serde_json::from_slice(&linted().stdout).expect("JSON report"))
}

fn rendered(chart: &str, env: &str, kube: &str) -> Vec<Value> {
    linted().rendered(kube, chart, env)
}

fn umbrella(env: &str) -> Vec<Value> {
    rendered("robot-shop", env, "1.37.0")
}

fn kind_named<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| str_at(o, &["kind"]) == Some(kind) && str_at(o, &["metadata", "name"]) == Some(name))
}

/// The eight Robot-Shop services with their own charts, from the matrix.
fn matrix() -> Vec<Value> {
    let text = std::fs::read_to_string(support::repo_root().join("service-matrix.yaml")).expect("matrix");
    let matrix: Value = yaml_serde::from_str(&text).expect("matrix parses");
    matrix["services"].as_sequence().expect("services").clone()
}

fn own_services() -> Vec<Value> {
    matrix().into_iter().filter(|s| str_at(s, &["chart_source"]) != Some("bitnami")).collect()
}

fn name_of(service: &Value) -> String {
    str_at(service, &["name"]).expect("service name").to_string()
}

/// The workload (Deployment or StatefulSet) of a service in a render.
fn workload<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    kind_named(objects, "Deployment", name)
        .or_else(|| kind_named(objects, "StatefulSet", name))
        .unwrap_or_else(|| panic!("no workload named {name}"))
}

fn pod_spec(workload: &Value) -> &Value {
    at(workload, &["spec", "template", "spec"]).expect("pod spec")
}

fn main_container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    pod_spec(workload)["containers"]
        .as_sequence()
        .expect("containers")
        .iter()
        .find(|c| str_at(c, &["name"]) == Some(name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

#[test]
fn whole_repository_lints_green_through_the_mirror() {
    let report = report();
    let charts = report["charts"].as_array().expect("charts");
    let names: BTreeSet<&str> = charts.iter().filter_map(|c| c["name"].as_str()).collect();
    let expected: BTreeSet<&str> =
        ["common", "web", "catalogue", "user", "cart", "shipping", "payment", "ratings", "dispatch", "robot-shop"]
            .into();
    assert_eq!(names, expected);
    for chart in charts {
        assert_eq!(chart["status"], "ok", "{chart}");
    }
    // The umbrella was rendered and validated in every environment for both versions.
    let umbrella = charts.iter().find(|c| c["name"] == "robot-shop").expect("umbrella");
    for env in ["dev", "staging", "prod"] {
        for kube in ["1.37.0", "1.36.0"] {
            for step in ["render", "validate"] {
                assert!(
                    umbrella["steps"].as_array().expect("steps").iter().any(|s| s["step"] == step
                        && s["env"] == env
                        && s["kube_version"] == kube
                        && s["status"] == "ok"),
                    "no {step} {env} {kube} for the umbrella"
                );
            }
        }
    }
}

/// The design document's level-4 example: `-f values-prod.yaml --set
/// catalogue.image.tag=1.2.6 --set catalogue.replicaCount=5`.
#[test]
fn values_hierarchy_holds_to_the_letter() {
    let tools = support::toolset();
    let staged = linted().work.join("stage").join("robot-shop");
    let output = Command::new(&tools.helm)
        .args(["template", "robot-shop"])
        .arg(&staged)
        .arg("--values")
        .arg(support::repo_root().join("helm/robot-shop/values-prod.yaml"))
        .args(["--set", "catalogue.image.tag=1.2.6", "--set", "catalogue.replicaCount=5"])
        .output()
        .expect("helm template");
    assert!(output.status.success(), "{}", describe(&output));
    let prod = objects(&String::from_utf8_lossy(&output.stdout));

    let deployment = workload(&prod, "catalogue");
    let container = main_container(deployment, "catalogue");
    assert_eq!(str_at(container, &["image"]), Some("robotshop/rs-catalogue:1.2.6"), "image.tag from --set");
    assert_eq!(str_at(container, &["resources", "limits", "memory"]), Some("512Mi"), "limit from values-prod.yaml");
    assert_eq!(
        str_at(container, &["image"]).map(|i| i.starts_with("robotshop/rs-catalogue:")),
        Some(true),
        "repository from the chart default"
    );
    // prod turns autoscaling on: the HPA owns the count and --set replicaCount is its floor.
    assert!(at(deployment, &["spec", "replicas"]).is_none(), "the Deployment must not fight the HPA over replicas");
    let hpa = kind_named(&prod, "HorizontalPodAutoscaler", "catalogue").expect("catalogue HPA in prod");
    assert_eq!(at(hpa, &["spec", "minReplicas"]).and_then(Value::as_u64), Some(5), "replicaCount from --set");
    let config = kind_named(&prod, "ConfigMap", "catalogue-config").expect("catalogue ConfigMap");
    assert_eq!(str_at(config, &["data", "LOG_LEVEL"]), Some("info"), "LOG_LEVEL from the umbrella's values.yaml");

    // Without the environment file the chart default (the document's level 1) shows through.
    let base = rendered("catalogue", "default", "1.37.0");
    let container = main_container(workload(&base, "catalogue"), "catalogue");
    assert_eq!(str_at(container, &["resources", "limits", "memory"]), Some("256Mi"));
    let config = kind_named(&base, "ConfigMap", "catalogue-config").expect("ConfigMap");
    assert_eq!(str_at(config, &["data", "LOG_LEVEL"]), Some("debug"), "the chart default");
}

#[test]
fn every_workload_has_probes_resources_and_a_hardened_security_context() {
    for env in ["dev", "staging", "prod"] {
        let objects = umbrella(env);
        for service in own_services() {
            let name = name_of(&service);
            let workload = workload(&objects, &name);
            let pod = pod_spec(workload);
            assert_eq!(
                str_at(pod, &["securityContext", "seccompProfile", "type"]),
                Some("RuntimeDefault"),
                "{name} {env}"
            );
            assert_eq!(pod.get("automountServiceAccountToken").and_then(Value::as_bool), Some(false), "{name} {env}");
            let containers = pod["containers"].as_sequence().expect("containers").iter();
            let inits = pod.get("initContainers").and_then(Value::as_sequence).into_iter().flatten();
            for container in containers.clone().chain(inits) {
                let cname = str_at(container, &["name"]).unwrap_or("?");
                let sc = container
                    .get("securityContext")
                    .unwrap_or_else(|| panic!("{name}/{cname} {env}: no securityContext"));
                assert_eq!(
                    sc.get("allowPrivilegeEscalation").and_then(Value::as_bool),
                    Some(false),
                    "{name}/{cname} {env}"
                );
                let drops: Vec<&str> = at(sc, &["capabilities", "drop"])
                    .and_then(Value::as_sequence)
                    .expect("drop")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert_eq!(drops, vec!["ALL"], "{name}/{cname} {env}");
                for kind in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] {
                        assert!(
                            at(container, &["resources", kind, resource]).is_some(),
                            "{name}/{cname} {env}: no {kind}.{resource}"
                        );
                    }
                }
            }
            let main = main_container(workload, &name);
            for probe in ["livenessProbe", "readinessProbe"] {
                assert!(main.get(probe).is_some(), "{name} {env}: no {probe}");
            }
            // Images that run as a fixed non-root user keep a read-only root.
            let sc = &main["securityContext"];
            if sc.get("runAsNonRoot").and_then(Value::as_bool) == Some(true)
                || pod["securityContext"].get("runAsNonRoot").and_then(Value::as_bool) == Some(true)
            {
                assert_eq!(sc.get("readOnlyRootFilesystem").and_then(Value::as_bool), Some(true), "{name} {env}");
            }
        }
    }
}

#[test]
fn one_init_container_waits_for_each_dependency() {
    let objects = umbrella("dev");
    for service in own_services() {
        let name = name_of(&service);
        let expected: BTreeSet<String> = service["dependencies"]
            .as_sequence()
            .expect("deps")
            .iter()
            .filter_map(Value::as_str)
            .map(|d| format!("wait-for-{d}"))
            .collect();
        let pod = pod_spec(workload(&objects, &name));
        let found: BTreeSet<String> = pod
            .get("initContainers")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|c| str_at(c, &["name"]).map(str::to_string))
            .collect();
        assert_eq!(found, expected, "init containers of {name}");
        for init in pod.get("initContainers").and_then(Value::as_sequence).into_iter().flatten() {
            let image = str_at(init, &["image"]).expect("image");
            assert!(image.starts_with("busybox:") && !image.ends_with(":latest"), "{name}: {image}");
            let script = format!("{:?}", init);
            assert!(script.contains("nc -z"), "{name}: init container does not probe the port: {script}");
        }
    }
}

/// (client, server) pairs a set of NetworkPolicies allows, read from their
/// pod selectors on `app.kubernetes.io/name`.
type Edges = BTreeSet<(String, String)>;

/// Egress and ingress edges.
fn policy_edges(objects: &[Value]) -> (Edges, Edges) {
    let mut egress = BTreeSet::new();
    let mut ingress = BTreeSet::new();
    let label = |selector: &Value| str_at(selector, &["matchLabels", "app.kubernetes.io/name"]).map(str::to_string);
    for policy in objects.iter().filter(|o| str_at(o, &["kind"]) == Some("NetworkPolicy")) {
        let Some(owner) = at(policy, &["spec", "podSelector"]).and_then(label) else { continue };
        for rule in at(policy, &["spec", "egress"]).and_then(Value::as_sequence).into_iter().flatten() {
            for peer in rule.get("to").and_then(Value::as_sequence).into_iter().flatten() {
                if let Some(target) = peer.get("podSelector").and_then(label) {
                    egress.insert((owner.clone(), target));
                }
            }
        }
        for rule in at(policy, &["spec", "ingress"]).and_then(Value::as_sequence).into_iter().flatten() {
            for peer in rule.get("from").and_then(Value::as_sequence).into_iter().flatten() {
                if let Some(client) = peer.get("podSelector").and_then(label) {
                    ingress.insert((client, owner.clone()));
                }
            }
        }
    }
    (egress, ingress)
}

#[test]
fn network_policy_edges_equal_the_matrix_edges() {
    let own: BTreeSet<String> = own_services().iter().map(name_of).collect();
    let matrix_edges: BTreeSet<(String, String)> = matrix()
        .iter()
        .flat_map(|s| {
            let name = name_of(s);
            s["dependencies"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |d| d.as_str().map(|d| (name.clone(), d.to_string())))
        })
        .collect();
    for env in ["dev", "prod"] {
        let (egress, ingress) = policy_edges(&umbrella(env));
        assert_eq!(egress, matrix_edges, "egress edges in {env}");
        // Ingress is enforced by our own charts into our services, and by the stores' own
        // policies as the umbrella narrows them (each also admits its own pods, for replication).
        let mut expected = matrix_edges.clone();
        for store in matrix().iter().map(name_of).filter(|name| !own.contains(name)) {
            expected.insert((store.clone(), store));
        }
        assert_eq!(ingress, expected, "ingress edges in {env}");
    }
    // Every own service has a policy, so nothing is reachable by default.
    let objects = umbrella("prod");
    for name in &own {
        let policy = objects.iter().find(|o| {
            str_at(o, &["kind"]) == Some("NetworkPolicy")
                && at(o, &["spec", "podSelector", "matchLabels", "app.kubernetes.io/name"]).and_then(Value::as_str)
                    == Some(name.as_str())
        });
        let types: Vec<&str> = policy
            .and_then(|p| at(p, &["spec", "policyTypes"]))
            .and_then(Value::as_sequence)
            .expect("policyTypes")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(types, vec!["Ingress", "Egress"], "{name}");
    }
}

#[test]
fn prod_scales_with_an_hpa_and_dev_does_not() {
    let prod = umbrella("prod");
    let hpa = kind_named(&prod, "HorizontalPodAutoscaler", "catalogue").expect("catalogue HPA in prod");
    assert_eq!(str_at(hpa, &["apiVersion"]), Some("autoscaling/v2"));
    let metrics: BTreeSet<&str> = at(hpa, &["spec", "metrics"])
        .and_then(Value::as_sequence)
        .expect("metrics")
        .iter()
        .filter_map(|m| str_at(m, &["resource", "name"]))
        .collect();
    assert_eq!(metrics, ["cpu", "memory"].into());
    assert!(at(workload(&prod, "catalogue"), &["spec", "replicas"]).is_none());
    let dev = umbrella("dev");
    assert!(kind_named(&dev, "HorizontalPodAutoscaler", "catalogue").is_none());
    assert!(at(workload(&dev, "catalogue"), &["spec", "replicas"]).is_some());
}

/// Every `image:` string of a render, wherever it is.
fn images(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                if k.as_str() == Some("image") {
                    if let Some(image) = v.as_str() {
                        out.insert(image.to_string());
                    }
                }
                images(v, out);
            }
        }
        Value::Sequence(seq) => seq.iter().for_each(|v| images(v, out)),
        _ => {}
    }
}

#[test]
fn no_latest_tag_and_no_image_from_a_deleted_repository() {
    for env in ["dev", "staging", "prod"] {
        let mut found = BTreeSet::new();
        for object in umbrella(env) {
            images(&object, &mut found);
        }
        assert!(found.iter().any(|i| i.contains("bitnamilegacy/mongodb")), "{env}: {found:?}");
        for image in &found {
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(!tag.is_empty() && tag != "latest" && !tag.contains('/'), "{env}: {image} has no pinned tag");
            let path = image.trim_start_matches("docker.io/");
            assert!(!path.starts_with("bitnami/"), "{env}: {image} is from a repository deleted in 2025");
        }
    }
    // The stand-ins list every image key they have, used or not, in an
    // annotation: an override forgotten for a feature that is off shows there.
    let text = std::fs::read_to_string(linted().work.join("rendered/1.37.0/robot-shop/prod.yaml")).expect("render");
    assert!(!text.contains("docker.io/bitnami/") && !text.contains(" bitnami/"), "a deleted image is referenced");
}

fn helm_template_catalogue(extra: &[&str], values: Option<&Path>) -> std::process::Output {
    let tools = support::toolset();
    let mut command = Command::new(&tools.helm);
    command.args(["template", "robot-shop"]).arg(linted().work.join("stage").join("catalogue")).args(extra);
    if let Some(file) = values {
        command.arg("--values").arg(file);
    }
    command.output().expect("helm template")
}

#[test]
fn values_schema_rejects_wrong_types_and_misspelled_keys_by_name() {
    let output = helm_template_catalogue(&["--set", "replicaCount=three"], None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("replicaCount"), "{stderr}");

    let dir = tempfile::tempdir().expect("temp");
    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, "replicaCont: 2\n").expect("write");
    let output = helm_template_catalogue(&[], Some(&typo));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("replicaCont"), "{stderr}");

    let output = helm_template_catalogue(&["--set", "profile=cobol"], None);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("profile"), "{}", describe(&output));
}

#[test]
fn the_matrix_agrees_with_the_rendered_ports_and_hosts() {
    let objects = umbrella("dev");
    let own: BTreeMap<String, Value> = own_services().into_iter().map(|s| (name_of(&s), s)).collect();
    for (name, service) in &own {
        let port = service.get("port").and_then(Value::as_u64);
        let rendered_port = kind_named(&objects, "Service", name)
            .and_then(|svc| at(svc, &["spec", "ports"]))
            .and_then(Value::as_sequence)
            .and_then(|ports| ports.first())
            .and_then(|p| p.get("port"))
            .and_then(Value::as_u64);
        assert_eq!(rendered_port, port, "{name}: Service port vs the matrix");
    }
}
