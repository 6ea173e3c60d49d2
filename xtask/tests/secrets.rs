//! Secrets that never live in git (issue #15), shown on the umbrella's renders
//! of dev, staging and prod through the mirror of stand-ins, as `lint` renders
//! and validates them:
//! - no Secret of the staging or prod render holds a literal credential, and
//!   no ConfigMap or container env value carries a URL with a password in it
//!   (dev does, with its placeholders: the same check finds them there);
//! - every workload that reads a credential in dev (the services whose dev
//!   values carry one, and the data stores) reads it in staging and prod from
//!   a Secret that an ExternalSecret of the same render produces, with every
//!   key it reads, through the environment's one store;
//! - kubeconform validates the ExternalSecrets against the pinned CRD schema:
//!   the lint passes, and an ExternalSecret the schema does not allow fails it,
//!   named.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use support::{at, describe, seq, str_at, xtask, Linted};
use yaml_serde::Value;

/// The environments whose credentials must come from a secret store.
const STORED: [&str; 2] = ["staging", "prod"];

/// The workloads that read a credential in dev, at the least: the two services
/// whose MONGO_URL carries a password, and the three stores with passwords.
/// (The test derives the full set from the dev render; this is its floor, so
/// a render that lost its Secrets cannot pass by needing none.)
const NEED_CREDENTIALS: [&str; 5] = ["catalogue", "user", "mongodb", "mysql", "rabbitmq"];

/// One lint of the umbrella in every environment, shared by the tests.
fn linted() -> &'static Linted {
    static LINTED: OnceLock<Linted> = OnceLock::new();
    LINTED.get_or_init(|| Linted::run(&["lint", "--chart", "robot-shop"], "the umbrella"))
}

fn umbrella(env: &str) -> Vec<Value> {
    linted().rendered("1.37.0", "robot-shop", env)
}

fn keys(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_mapping)
        .map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn kind_of(object: &Value) -> &str {
    str_at(object, &["kind"]).unwrap_or_default()
}

fn name_of(object: &Value) -> &str {
    str_at(object, &["metadata", "name"]).unwrap_or_default()
}

/// Whether a text holds a URL with a password in it (`scheme://user:password@host`).
fn has_url_password(text: &str) -> bool {
    text.match_indices("://").any(|(at, _)| {
        let rest = &text[at + 3..];
        let authority = rest.split(['/', '?', '#', ' ', '\n', '"', '\'']).next().unwrap_or_default();
        authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.split_once(':').is_some_and(|(_, p)| !p.is_empty()))
    })
}

/// Every literal credential of a render, each as `Kind/name: where`. A literal
/// credential is any data or stringData entry of a Secret (whatever its value:
/// Helm wrote it, so it was in values or in the chart), and any ConfigMap value
/// or container env value with a URL that carries a password. None is allowed:
/// the Secrets a pod reads in staging and prod are written by the operator, not
/// rendered.
fn literal_credentials(objects: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    for object in objects {
        let shown = format!("{}/{}", kind_of(object), name_of(object));
        match kind_of(object) {
            "Secret" => {
                for field in ["data", "stringData"] {
                    for key in keys(object.get(field)) {
                        found.push(format!("{shown}: {field}.{key}"));
                    }
                }
            }
            "ConfigMap" => {
                if let Some(data) = object.get("data").and_then(Value::as_mapping) {
                    for (key, value) in data {
                        if value.as_str().is_some_and(has_url_password) {
                            found.push(format!(
                                "{shown}: data.{} is a URL with a password",
                                key.as_str().unwrap_or("?")
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
        if let Some((_, spec)) = pod_spec(object) {
            for container in containers(spec) {
                for env in seq(container.get("env")) {
                    if str_at(env, &["value"]).is_some_and(has_url_password) {
                        found.push(format!(
                            "{shown}: container {} env {} is a URL with a password",
                            str_at(container, &["name"]).unwrap_or("?"),
                            str_at(env, &["name"]).unwrap_or("?")
                        ));
                    }
                }
            }
        }
    }
    found
}

/// The pod template of a workload object (Deployment, StatefulSet, DaemonSet,
/// ReplicaSet, Job, CronJob, Pod), if it is one.
fn pod_spec(object: &Value) -> Option<(String, &Value)> {
    let path: &[&str] = match kind_of(object) {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => &["spec", "template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        "Pod" => &["spec"],
        _ => return None,
    };
    at(object, path).map(|spec| (format!("{}/{}", kind_of(object), name_of(object)), spec))
}

fn containers(spec: &Value) -> Vec<&Value> {
    let mut all = seq(spec.get("initContainers"));
    all.extend(seq(spec.get("containers")));
    all
}

/// A Secret a pod reads: by name, and the key when it reads one key
/// (`secretKeyRef`), none when it loads them all (`envFrom`, a volume).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SecretRead {
    secret: String,
    key: Option<String>,
}

/// Every Secret a pod spec reads, from env, envFrom and volumes (projected too).
fn secret_reads(spec: &Value) -> BTreeSet<SecretRead> {
    let mut reads = BTreeSet::new();
    let mut add = |secret: Option<&str>, key: Option<&str>| {
        if let Some(secret) = secret {
            reads.insert(SecretRead { secret: secret.to_string(), key: key.map(str::to_string) });
        }
    };
    for container in containers(spec) {
        for env in seq(container.get("env")) {
            if let Some(reference) = at(env, &["valueFrom", "secretKeyRef"]) {
                add(str_at(reference, &["name"]), str_at(reference, &["key"]));
            }
        }
        for source in seq(container.get("envFrom")) {
            add(str_at(source, &["secretRef", "name"]), None);
        }
    }
    for volume in seq(spec.get("volumes")) {
        add(str_at(volume, &["secret", "secretName"]), None);
        for source in seq(at(volume, &["projected", "sources"])) {
            add(str_at(source, &["secret", "name"]), None);
        }
    }
    reads
}

/// Each workload of a render that reads a Secret, by `app.kubernetes.io/name`
/// of its pods (a store's primary and secondaries are one store), with what it reads.
fn readers(objects: &[Value]) -> BTreeMap<String, BTreeSet<SecretRead>> {
    let mut out: BTreeMap<String, BTreeSet<SecretRead>> = BTreeMap::new();
    for object in objects {
        let Some((shown, spec)) = pod_spec(object) else { continue };
        let reads = secret_reads(spec);
        if reads.is_empty() {
            continue;
        }
        let owner = str_at(object, &["spec", "template", "metadata", "labels", "app.kubernetes.io/name"])
            .map(str::to_string)
            .unwrap_or(shown);
        out.entry(owner).or_default().extend(reads);
    }
    out
}

/// An ExternalSecret of a render.
#[derive(Debug)]
struct External {
    name: String,
    api_version: String,
    store: (String, String),
    refresh: String,
    keys: BTreeSet<String>,
}

/// The ExternalSecrets of a render, by the Secret each makes (`spec.target.name`,
/// else the ExternalSecret's own name, as the operator does).
fn externals(objects: &[Value]) -> BTreeMap<String, External> {
    objects
        .iter()
        .filter(|o| kind_of(o) == "ExternalSecret")
        .map(|o| {
            let target = str_at(o, &["spec", "target", "name"]).unwrap_or(name_of(o)).to_string();
            let store = (
                str_at(o, &["spec", "secretStoreRef", "kind"]).unwrap_or("SecretStore").to_string(),
                str_at(o, &["spec", "secretStoreRef", "name"]).unwrap_or_default().to_string(),
            );
            let keys = seq(at(o, &["spec", "data"]))
                .into_iter()
                .filter(|entry| str_at(entry, &["remoteRef", "key"]).is_some_and(|k| !k.is_empty()))
                .filter_map(|entry| str_at(entry, &["secretKey"]).map(str::to_string))
                .collect();
            let external = External {
                name: name_of(o).to_string(),
                api_version: str_at(o, &["apiVersion"]).unwrap_or_default().to_string(),
                store,
                refresh: str_at(o, &["spec", "refreshInterval"]).unwrap_or_default().to_string(),
                keys,
            };
            (target, external)
        })
        .collect()
}

/// The data keys of each Secret the dev render writes (what a pod that loads a
/// whole Secret there gets, and must get in the other environments too).
fn dev_secret_keys(objects: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    objects
        .iter()
        .filter(|o| kind_of(o) == "Secret")
        .map(|o| {
            let mut all: BTreeSet<String> = keys(o.get("data")).into_iter().collect();
            all.extend(keys(o.get("stringData")));
            (name_of(o).to_string(), all)
        })
        .collect()
}

/// `global.externalSecrets.secretStoreRef` of an environment's values file:
/// (kind, name).
fn environment_store(env: &str) -> (String, String) {
    let path = support::repo_root().join(format!("helm/robot-shop/values-{env}.yaml"));
    let values: Value = yaml_serde::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let store = at(&values, &["global", "externalSecrets", "secretStoreRef"])
        .unwrap_or_else(|| panic!("{} names no global.externalSecrets.secretStoreRef", path.display()));
    (
        str_at(store, &["kind"]).unwrap_or("SecretStore").to_string(),
        str_at(store, &["name"]).unwrap_or_default().to_string(),
    )
}

#[test]
fn the_literal_credential_check_finds_the_dev_placeholders() {
    // Dev keeps development values in Secrets the chart renders: the check must see them,
    // or it proves nothing about staging and prod.
    let found = literal_credentials(&umbrella("dev"));
    for expected in [
        "Secret/catalogue-secret: data.MONGO_URL",
        "Secret/user-secret: data.MONGO_URL",
        "Secret/mongodb: data.mongodb-root-password",
        "Secret/mysql: data.mysql-root-password",
        "Secret/rabbitmq: data.rabbitmq-password",
    ] {
        assert!(found.iter().any(|f| f == expected), "dev: {expected:?} not found among {found:#?}");
    }
    assert!(externals(&umbrella("dev")).is_empty(), "dev renders ExternalSecrets: it keeps development values");
    assert!(has_url_password("MONGO_URL=mongodb://catalogue:pw@mongodb:27017/catalogue"));
    assert!(!has_url_password("mongodb://mongodb-0.mongodb-headless:27017,mongodb-1:27017/users?replicaSet=rs0"));
    assert!(!has_url_password("https://user@example.com/"));
}

#[test]
fn no_secret_in_staging_or_prod_holds_a_literal_credential() {
    for env in STORED {
        let objects = umbrella(env);
        let found = literal_credentials(&objects);
        assert!(found.is_empty(), "{env}: literal credentials in the render:\n{}", found.join("\n"));
        // Nor does the render write a Secret an ExternalSecret makes (two owners of one Secret).
        let made = externals(&objects);
        for secret in objects.iter().filter(|o| kind_of(o) == "Secret") {
            assert!(
                !made.contains_key(name_of(secret)),
                "{env}: Secret {} is rendered and made by an ExternalSecret",
                name_of(secret)
            );
        }
    }
}

#[test]
fn every_service_that_needs_a_credential_gets_it_from_an_externalsecret() {
    let dev = umbrella("dev");
    let dev_keys = dev_secret_keys(&dev);
    let needs = readers(&dev);
    let needing: BTreeSet<&str> = needs.keys().map(String::as_str).collect();
    for name in NEED_CREDENTIALS {
        assert!(needing.contains(name), "dev: {name} reads no Secret; the workloads that do: {needing:?}");
    }
    for env in STORED {
        let objects = umbrella(env);
        let made = externals(&objects);
        let reads = readers(&objects);
        let store = environment_store(env);
        assert!(!store.1.is_empty(), "values-{env}.yaml names no store");

        for (workload, dev_reads) in &needs {
            let Some(env_reads) = reads.get(workload) else {
                panic!("{env}: {workload} reads a credential in dev ({dev_reads:?}) but no Secret in {env}")
            };
            // Every key the workload reads in dev, it reads in this environment.
            let wanted = |read: &SecretRead| match &read.key {
                Some(key) => BTreeSet::from([key.clone()]),
                None => dev_keys.get(&read.secret).cloned().unwrap_or_default(),
            };
            let dev_wanted: BTreeSet<String> = dev_reads.iter().flat_map(wanted).collect();
            let mut provided = BTreeSet::new();
            for read in env_reads {
                let Some(external) = made.get(&read.secret) else {
                    panic!(
                        "{env}: {workload} reads Secret {}, which no ExternalSecret of the render makes (ExternalSecrets make {:?})",
                        read.secret,
                        made.keys().collect::<Vec<_>>()
                    )
                };
                if let Some(key) = &read.key {
                    assert!(
                        external.keys.contains(key),
                        "{env}: {workload} reads {key} of Secret {}, which ExternalSecret {} does not fetch ({:?})",
                        read.secret,
                        external.name,
                        external.keys
                    );
                    provided.insert(key.clone());
                } else {
                    provided.extend(external.keys.iter().cloned());
                }
            }
            let missing: Vec<&String> = dev_wanted.difference(&provided).collect();
            assert!(
                missing.is_empty(),
                "{env}: {workload} read {missing:?} in dev, and no ExternalSecret gives it them here"
            );
        }

        // One store per environment, as its values file names it; the operator's v1 API.
        for (target, external) in &made {
            assert_eq!(external.api_version, "external-secrets.io/v1", "{env}: ExternalSecret {}", external.name);
            assert_eq!(
                external.store, store,
                "{env}: ExternalSecret {} (Secret {target}) reads another store",
                external.name
            );
            assert!(!external.refresh.is_empty(), "{env}: ExternalSecret {} has no refreshInterval", external.name);
            assert!(!external.keys.is_empty(), "{env}: ExternalSecret {} fetches nothing", external.name);
        }
    }
    assert_ne!(environment_store("staging"), environment_store("prod"), "staging and prod share a store");
}

fn lint_staging(copy: &Path) -> std::process::Output {
    xtask()
        .arg("--root")
        .arg(copy)
        .env("XTASK_WORK_DIR", copy.join("target/xtask"))
        .args(["lint", "--chart", "robot-shop", "--env", "staging", "--kube-version", "1.37.0", "--no-cache"])
        .args(["--mirror", linted().mirror.value()])
        .output()
        .expect("run xtask lint")
}

#[test]
fn kubeconform_refuses_an_externalsecret_the_pinned_crd_schema_does_not_allow() {
    let copy = support::repository_copy();
    let values = copy.path().join("helm/robot-shop/values-staging.yaml");
    let text = std::fs::read_to_string(&values).unwrap();
    // The store's Secret made under a policy the operator does not know.
    let broken = text.replacen("          creationPolicy: Owner\n", "          creationPolicy: Sometimes\n", 1);
    assert_ne!(broken, text, "values-staging.yaml has no creationPolicy: Owner to break");
    std::fs::write(&values, broken).unwrap();
    let output = lint_staging(copy.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr.contains("ExternalSecret")
            && stderr.contains("mongodb-credentials")
            && stderr.contains("creationPolicy"),
        "the failure does not name the ExternalSecret and the field: {stderr}"
    );
}
