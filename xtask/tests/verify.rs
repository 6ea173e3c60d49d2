//! `cargo xtask verify` against a real control plane (etcd and
//! kube-apiserver built by `tools --cluster`), the real helm, and the
//! loopback mirror for the umbrella's Bitnami stand-ins: the repository
//! passes in every environment; an annotation key the API server refuses,
//! a privileged container under `restricted`, a ConfigMap rendered twice,
//! and upgrades that change immutable fields fail naming chart, env,
//! object and field while the other charts pass; and a run with nothing
//! changed starts no process.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::{describe, run_ok, xtask, Mirror};

/// A copy of the repository's charts in a temporary git repository, with
/// one commit on `main`.
fn scratch_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for path in ["charts", "helm"] {
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
    assert_eq!(steps, ["duplicate", "install", "pod-security"], "{report:#}");

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
            _ => self.agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut response = response.unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
    }
}
