//! `cargo xtask verify` against a real control plane (etcd and
//! kube-apiserver built by `tools --cluster`), the real helm, and the
//! loopback mirror for the umbrella's Bitnami stand-ins: the repository
//! passes in every environment; an annotation key the API server refuses,
//! a privileged container under `restricted`, a ConfigMap rendered twice,
//! and upgrades that change immutable fields fail naming chart, env,
//! object and field while the other charts pass; a ServiceMonitor installs
//! against the pinned prometheus-operator CRD (and a bad one is refused);
//! `argocd/` is an entry of its own that a broken Application fails;
//! services are installed before the umbrella; and a run with nothing
//! changed starts no process.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::{describe, run_ok, xtask, Mirror};

/// A copy of the repository's charts and `argocd/` in a temporary git
/// repository, with one commit on `main`.
fn scratch_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for path in ["charts", "helm", "argocd"] {
        support::copy_dir(&support::repo_root().join(path), &dir.path().join(path));
    }
    std::fs::write(dir.path().join(".gitignore"), "/target\n").expect("write");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    commit(dir.path(), "base");
    dir
}

fn git(dir: &Path, args: &[&str]) {
    run_ok(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"])
            .args(args),
    );
}

fn commit(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

/// Replaces the first `from` after the text `after` in a file.
fn edit_after(file: &Path, after: &str, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("read");
    let start = text.find(after).unwrap_or_else(|| panic!("{after:?} not in {}", file.display()));
    let offset = text[start..].find(from).unwrap_or_else(|| panic!("{from:?} not after {after:?}")) + start;
    std::fs::write(file, format!("{}{to}{}", &text[..offset], &text[offset + from.len()..])).expect("write");
}

/// `xtask --root ROOT --format json verify ARGS` with its own work folder;
/// the output and the parsed report.
fn verify(root: &Path, work: &Path, args: &[&str]) -> (Output, Value) {
    support::cluster_tools();
    let output = xtask()
        .env("XTASK_WORK_DIR", work)
        .arg("--root")
        .arg(root)
        .args(["--format", "json", "verify"])
        .args(args)
        .output()
        .expect("run xtask verify");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("no JSON report ({err}): {}", describe(&output)));
    (output, report)
}

fn chart<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["charts"]
        .as_array()
        .and_then(|charts| charts.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no chart {name} in {report:#}"))
}

/// The failed steps of a chart as `step env: message`.
fn failures(report: &Value, name: &str) -> Vec<String> {
    chart(report, name)["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["status"] == "failed")
        .map(|s| {
            format!(
                "{} {}: {}",
                s["step"].as_str().unwrap_or(""),
                s["env"].as_str().unwrap_or(""),
                s["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The `[done/total]` of every progress line.
fn progress_counters(stderr: &str) -> Vec<(usize, usize)> {
    stderr
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix('[')?.split_once(']'))
        .filter_map(|(counter, _)| counter.split_once('/'))
        .filter_map(|(done, total)| Some((done.trim().parse().ok()?, total.trim().parse().ok()?)))
        .collect()
}

fn assert_passes(report: &Value, name: &str) {
    let status = &chart(report, name)["status"];
    assert!(status == "ok" || status == "cached", "{name}: {status}: {:#?}", failures(report, name));
}

/// The whole repository in every environment, from a cold cache with the
/// control plane started: every chart is installed and admitted, and every
/// workload's Pod passes Pod Security `restricted` (web and ratings run
/// non-root since #14). A second run of charts that passed starts no
/// process at all.
#[test]
fn the_repository_verifies_in_every_environment_and_a_rerun_starts_no_process() {
    let repo = scratch_repo();
    let work = repo.path().join("work");
    let mirror = Mirror::start(&repo.path().join("mirror"));
    let (output, report) = verify(repo.path(), &work, &["--mirror", mirror.value()]);
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    let names: Vec<&str> =
        report["charts"].as_array().expect("charts").iter().filter_map(|c| c["name"].as_str()).collect();
    for expected in ["robot-shop", "web", "cart", "catalogue", "user", "ratings", "payment", "shipping", "dispatch"] {
        assert!(names.contains(&expected), "{expected} not verified: {names:?}");
    }
    assert!(!names.contains(&"common"), "the library is not installable: {names:?}");
    let umbrella = chart(&report, "robot-shop");
    let envs: Vec<&str> =
        umbrella["steps"].as_array().expect("steps").iter().filter_map(|s| s["env"].as_str()).collect();
    for env in ["dev", "staging", "prod"] {
        assert!(envs.contains(&env), "robot-shop not verified in {env}: {envs:?}");
    }
    assert!(output.status.success(), "{}", describe(&output));
    for name in ["robot-shop", "web", "cart", "catalogue", "user", "ratings", "payment", "shipping", "dispatch"] {
        assert_passes(&report, name);
    }
    // argocd/ is an entry of its own, and the progress counts it.
    assert_passes(&report, "argocd");
    let entries = report["charts"].as_array().expect("charts").len();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let counters = progress_counters(&stderr);
    assert!(counters.iter().all(|&(done, total)| done <= total && total == entries), "{counters:?} of {entries}");
    assert_eq!(counters.iter().map(|c| c.0).max(), Some(entries), "{stderr}");
    // Dependency order: the umbrella is installed once every service it
    // embeds is done (they would run alongside it otherwise).
    let started = umbrella["started_ms"].as_u64().expect("started_ms");
    for service in ["web", "cart", "catalogue", "user", "ratings", "payment", "shipping", "dispatch"] {
        let finished = chart(&report, service)["finished_ms"].as_u64().expect("finished_ms");
        assert!(finished <= started, "robot-shop started at {started} ms, before {service} finished at {finished} ms");
    }
    let levels: Vec<&str> = umbrella["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["step"] == "pod-security")
        .filter_map(|s| s["message"].as_str())
        .collect();
    assert_eq!(levels.len(), 3, "one Pod Security step per environment: {umbrella:#}");

    let (output, again) =
        verify(repo.path(), &work, &["--chart", "cart", "--chart", "catalogue", "--chart", "dispatch"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(again["processes"], 0, "{again:#}");
    for name in ["cart", "catalogue", "dispatch"] {
        assert_eq!(chart(&again, name)["status"], "cached");
    }
}

/// Three mistakes the offline schemas do not catch, each in its own chart,
/// in one run: each fails with chart, env, object and field named; the
/// chart left alone passes. (`privileged` comes with
/// `allowPrivilegeEscalation: true`: next to the library's default `false`
/// the API server's own validation refuses it before Pod Security looks.)
#[test]
fn a_bad_annotation_key_a_privileged_container_and_a_duplicated_configmap_fail_by_name() {
    let repo = scratch_repo();
    let root = repo.path();
    edit_after(&root.join("charts/cart/values.yaml"), "\npodAnnotations:", " {}", "\n  \"bad key!\": \"x\"");
    edit_after(
        &root.join("charts/catalogue/values.yaml"),
        "\nsecurityContext:",
        " {}",
        "\n  privileged: true\n  allowPrivilegeEscalation: true",
    );
    let configmap = |file: &str| {
        std::fs::write(
            root.join("charts/dispatch/templates").join(file),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dispatch-extra\ndata:\n  a: \"1\"\n",
        )
        .expect("write template")
    };
    configmap("extra-one.yaml");
    configmap("extra-two.yaml");

    let work = root.join("work");
    let args = ["--chart", "cart", "--chart", "catalogue", "--chart", "dispatch", "--chart", "payment"];
    let (output, report) = verify(root, &work, &args);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_passes(&report, "payment");

    let cart = failures(&report, "cart").join("\n");
    assert!(cart.starts_with("install default:") && cart.contains("Deployment") && cart.contains("bad key!"), "{cart}");
    let catalogue = failures(&report, "catalogue").join("\n");
    assert!(
        catalogue.starts_with("pod-security default:")
            && catalogue.contains("Deployment/catalogue")
            && catalogue.contains("container \"catalogue\"")
            && catalogue.contains("privileged"),
        "{catalogue}"
    );
    let dispatch = failures(&report, "dispatch").join("\n");
    assert!(
        dispatch.starts_with("duplicate default:")
            && dispatch.contains("ConfigMap/dispatch-extra")
            && dispatch.contains("dispatch/templates/extra-one.yaml")
            && dispatch.contains("dispatch/templates/extra-two.yaml"),
        "{dispatch}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FAILED chart cart (charts/cart), step install, env default"), "{stderr}");
}

/// `--upgrade-from` the commit before: a larger MongoDB volume in prod is
/// refused on upgrade (a StatefulSet's volumeClaimTemplates are immutable)
/// with the advice, while cart upgrades; then a change of the library's
/// selector labels makes every service's Deployment refuse the upgrade.
#[test]
fn upgrades_that_change_immutable_fields_fail_naming_object_field_and_advice() {
    let repo = scratch_repo();
    let root = repo.path();
    let work = root.join("work");
    let mirror = Mirror::start(&root.join("mirror"));

    edit_after(&root.join("helm/robot-shop/values-prod.yaml"), "\nmongodb:", "size: 100Gi", "size: 200Gi");
    commit(root, "mongodb: 200Gi in prod");
    let args = ["--upgrade-from", "HEAD~1", "--chart", "robot-shop", "--env", "prod", "--chart", "cart", "--mirror"];
    let (output, report) = verify(root, &work, &[&args[..], &[mirror.value()]].concat());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_passes(&report, "cart");
    let umbrella = failures(&report, "robot-shop").join("\n");
    assert!(
        umbrella.starts_with("upgrade prod:")
            && umbrella.contains("StatefulSet")
            && umbrella.contains("mongodb")
            && umbrella.contains("--cascade=orphan"),
        "{umbrella}"
    );
    // The refused upgrade left the release rollbackable.
    let rollbacks: Vec<&Value> = chart(&report, "robot-shop")["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["step"] == "rollback")
        .collect();
    assert!(!rollbacks.is_empty() && rollbacks.iter().all(|s| s["status"] == "ok"), "{report:#}");

    edit_after(
        &root.join("charts/_common/templates/_meta.tpl"),
        "define \"common.meta.selectorLabels\"",
        "app.kubernetes.io/instance: {{ .Release.Name }}",
        "app.kubernetes.io/instance: {{ .Release.Name }}\napp.kubernetes.io/tier: {{ .Values.component | default \"backend\" }}",
    );
    commit(root, "library: one more selector label");
    let (output, report) = verify(root, &work, &["--upgrade-from", "HEAD~1", "--chart", "cart"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let cart = failures(&report, "cart").join("\n");
    assert!(
        cart.starts_with("upgrade default:")
            && cart.contains("Deployment")
            && cart.contains("spec.selector")
            && cart.contains("immutable"),
        "{cart}"
    );
}

/// `--kubeconfig`: a cluster verify did not start (here one of `cluster
/// start`, standing in for a user's) gets server-side dry-runs only: cart
/// passes, and afterwards the cluster holds no namespace, Deployment or
/// release Secret of it.
#[test]
fn a_users_cluster_gets_dry_runs_only() {
    let repo = scratch_repo();
    let root = repo.path();
    let cluster_work = root.join("cluster-work");
    support::cluster_tools();
    struct Stop<'a>(&'a Path);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = xtask().env("XTASK_WORK_DIR", self.0).args(["cluster", "stop"]).output();
        }
    }
    let started = run_ok(xtask().env("XTASK_WORK_DIR", &cluster_work).args(["cluster", "start"]));
    let _stop = Stop(&cluster_work);
    let kubeconfig = String::from_utf8_lossy(&started.stdout).trim().to_string();
    let api = Api::new(Path::new(&kubeconfig));
    // A real cluster's controller-manager makes it; this one has none.
    let account =
        serde_json::json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": "default" } });
    assert_eq!(api.call("POST", "/api/v1/namespaces/default/serviceaccounts", Some(&account)).0, 201);

    let (output, report) = verify(root, &root.join("work"), &["--kubeconfig", &kubeconfig, "--chart", "cart"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_passes(&report, "cart");
    let steps: Vec<&str> =
        chart(&report, "cart")["steps"].as_array().expect("steps").iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(steps, ["render", "duplicate", "install", "pod-security"], "{report:#}");

    assert_eq!(api.call("GET", "/api/v1/namespaces/v-cart-default", None).0, 404);
    for path in ["/apis/apps/v1/namespaces/default/deployments", "/api/v1/namespaces/default/secrets"] {
        let (status, body) = api.call("GET", path, None);
        let list: Value = serde_json::from_str(&body).expect("a list");
        assert_eq!((status, list["items"].as_array().map(Vec::len)), (200, Some(0)), "{path}: {body}");
    }
}

/// Bearer token and CA file from a kubeconfig `cluster start` wrote.
struct Api {
    agent: ureq::Agent,
    server: String,
    token: String,
}

impl Api {
    /// From the note verify's pause before an upgrade writes.
    fn from_note(note: &Value) -> Api {
        let agent = support::api_agent(Path::new(note["ca_file"].as_str().expect("CA file")));
        Api {
            agent,
            server: note["server"].as_str().expect("server").to_string(),
            token: note["token"].as_str().expect("token").to_string(),
        }
    }

    fn new(kubeconfig: &Path) -> Api {
        let config: Value =
            yaml_serde::from_str(&std::fs::read_to_string(kubeconfig).expect("read the kubeconfig")).expect("YAML");
        let cluster = &config["clusters"][0]["cluster"];
        let agent = support::api_agent(Path::new(cluster["certificate-authority"].as_str().expect("CA file")));
        Api {
            agent,
            server: cluster["server"].as_str().expect("server").to_string(),
            token: config["users"][0]["user"]["token"].as_str().expect("token").to_string(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let url = format!("{}{path}", self.server);
        let auth = format!("Bearer {}", self.token);
        let response = match (method, body) {
            ("POST", Some(body)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
            ("PATCH", Some(body)) => self
                .agent
                .patch(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/merge-patch+json")
                .send(body.to_string()),
            _ => self.agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut response = response.unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
    }
}

/// A ServiceMonitor enabled through values installs into the control plane
/// because verify created the pinned prometheus-operator CRD first, and one
/// with an interval of the wrong type is refused by that CRD's schema,
/// naming the object and the field. Then `argocd/` alone (`--changed` with
/// no chart changed): an Application with an unknown field fails the
/// `argocd` entry naming the file, the Application and the field.
#[test]
fn a_servicemonitor_installs_against_the_pinned_crd_and_a_broken_application_fails_argocd() {
    let repo = scratch_repo();
    let root = repo.path();
    let monitor = |chart: &str, interval: &str| {
        std::fs::write(
            root.join("charts").join(chart).join("templates/servicemonitor.yaml"),
            format!(
                "{{{{- if .Values.serviceMonitor.enabled }}}}\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n\
                 metadata:\n  name: {chart}\nspec:\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {chart}\n\
                 \x20 endpoints:\n    - port: http\n      interval: {interval}\n{{{{- end }}}}\n"
            ),
        )
        .expect("write template");
        let values = root.join("charts").join(chart).join("values.yaml");
        let text = std::fs::read_to_string(&values).expect("read values");
        std::fs::write(&values, format!("{text}\nserviceMonitor:\n  enabled: true\n")).expect("write values");
        // The services' values schemas refuse keys they do not list.
        let schema_file = root.join("charts").join(chart).join("values.schema.json");
        let mut schema: Value = serde_json::from_slice(&std::fs::read(&schema_file).expect("read")).expect("JSON");
        schema["properties"]["serviceMonitor"] = serde_json::json!({ "type": "object" });
        std::fs::write(&schema_file, schema.to_string()).expect("write schema");
    };
    monitor("cart", "30s");
    monitor("dispatch", "30");
    let work = root.join("work");
    let (output, report) = verify(root, &work, &["--chart", "cart", "--chart", "dispatch"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_passes(&report, "cart");
    let dispatch = failures(&report, "dispatch").join("\n");
    assert!(
        dispatch.starts_with("install default:")
            && dispatch.contains("ServiceMonitor")
            && dispatch.contains("interval"),
        "{dispatch}"
    );

    commit(root, "ServiceMonitors");
    edit_after(&root.join("argocd/app-of-apps.yaml"), "\nspec:", "  project:", "  projectt:");
    let (output, report) = verify(root, &work, &["--changed", "--base", "HEAD"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let names: Vec<&str> =
        report["charts"].as_array().expect("charts").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["argocd"], "{report:#}");
    let argocd = failures(&report, "argocd").join("\n");
    assert!(
        argocd.contains("app-of-apps.yaml") && argocd.contains("Application") && argocd.contains("projectt"),
        "{argocd}"
    );
}

/// `--upgrade-from` after someone scaled the Deployment by hand between the
/// install and the upgrade (here the test, as `kubectl scale` does: a patch
/// with its own field manager): helm's server-side apply refuses to take
/// `.spec.replicas` back, and the chart fails naming the Deployment, the
/// field, the other manager and what to do.
#[test]
fn a_field_another_manager_owns_fails_the_upgrade_naming_manager_field_and_advice() {
    let repo = scratch_repo();
    let root = repo.path();
    edit_after(&root.join("charts/cart/values.yaml"), "\npodAnnotations:", " {}", "\n  example.com/changed: \"yes\"");
    commit(root, "cart: one more annotation");
    let pause = tempfile::tempdir().expect("temp dir");
    support::cluster_tools();
    let child = xtask()
        .env("XTASK_WORK_DIR", root.join("work"))
        .env("XTASK_VERIFY_PAUSE_BEFORE_UPGRADE", pause.path())
        .arg("--root")
        .arg(root)
        .args(["--format", "json", "verify", "--upgrade-from", "HEAD~1", "--chart", "cart"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start xtask verify");
    let note_file = pause.path().join("v-cart-default.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !note_file.exists() {
        assert!(std::time::Instant::now() < deadline, "verify never paused before the upgrade");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let note: Value = serde_json::from_slice(&std::fs::read(&note_file).expect("read")).expect("JSON");
    let api = Api::from_note(&note);
    let scaled = api.call(
        "PATCH",
        "/apis/apps/v1/namespaces/v-cart-default/deployments/cart?fieldManager=kubectl-scale",
        Some(&serde_json::json!({ "spec": { "replicas": 3 } })),
    );
    assert_eq!(scaled.0, 200, "{}", scaled.1);
    std::fs::remove_file(&note_file).expect("let verify go on");

    let output = child.wait_with_output().expect("wait for verify");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    let cart = failures(&report, "cart").join("\n");
    assert!(
        cart.starts_with("upgrade default:")
            && cart.contains("Deployment")
            && cart.contains("kubectl-scale")
            && cart.contains(".spec.replicas")
            && cart.contains("--force-conflicts"),
        "{cart}"
    );
}

/// `--upgrade-from oci://HOST/PATH`: the last published version of each
/// chart (the highest semver tag: 1.10.0, although 1.9.0 was pushed last
/// and is the higher string) from a real registry on loopback (`package --publish`),
/// installed, upgraded to the working tree and rolled back; a chart never
/// published (dispatch) is only installed.
#[test]
fn upgrade_from_a_registry_takes_the_highest_published_version() {
    let repo = scratch_repo();
    let root = repo.path();
    let registry = support::TestRegistry::start();
    let url = format!("oci://{}/charts", registry.host());
    let chart_yaml = root.join("charts/cart/Chart.yaml");
    for (version, annotation) in [("1.10.0", "ten"), ("1.9.0", "nine")] {
        let text = std::fs::read_to_string(&chart_yaml).expect("read");
        let (before, after) = text.split_once("\nversion: ").expect("a version line");
        let rest = after.split_once('\n').map_or("", |(_, rest)| rest);
        std::fs::write(&chart_yaml, format!("{before}\nversion: {version}\n{rest}")).expect("write");
        let values = root.join("charts/cart/values.yaml");
        let original = std::fs::read_to_string(&values).expect("read");
        edit_after(&values, "\npodAnnotations:", " {}", &format!("\n  example.com/release: {annotation}"));
        run_ok(xtask().env("XTASK_WORK_DIR", root.join("package-work")).arg("--root").arg(root).args([
            "package",
            "--chart",
            "cart",
            "--publish",
            &url,
            "--plain-http",
        ]));
        std::fs::write(&values, original).expect("restore values");
    }
    let (output, report) =
        verify(root, &root.join("work"), &["--upgrade-from", &url, "--chart", "cart", "--chart", "dispatch"]);
    assert!(output.status.success(), "{}", describe(&output));
    let steps = |name: &str| -> Vec<(String, String)> {
        chart(&report, name)["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| (s["step"].as_str().unwrap_or("").to_string(), s["message"].as_str().unwrap_or("").to_string()))
            .collect()
    };
    let cart = steps("cart");
    let upgrade = cart.iter().find(|(step, _)| step == "upgrade").unwrap_or_else(|| panic!("{cart:?}"));
    assert_eq!(upgrade.1, format!("from {url}/cart:1.10.0"), "{cart:?}");
    assert!(cart.iter().any(|(step, _)| step == "rollback"), "{cart:?}");
    let dispatch: Vec<String> = steps("dispatch").into_iter().map(|(step, _)| step).collect();
    assert!(dispatch.contains(&"install".to_string()) && !dispatch.contains(&"upgrade".to_string()), "{dispatch:?}");
}
