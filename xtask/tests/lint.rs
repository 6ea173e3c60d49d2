//! `cargo xtask lint` on fixture monorepos made in temporary folders, with
//! the real helm and kubeconform: a clean repository passes; each kind of bad
//! input fails with an error that names the file or chart, never a panic,
//! while the charts it does not touch are still reported ok; charts run in
//! topological order and independent charts in parallel.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::{describe, xtask};

/// A small monorepo of our own: a library, three charts on it or not, and an
/// umbrella with two environments. It has no service matrix: the matrix
/// checks hold charts to this repository's value contract, which these
/// minimal charts do not follow; the matrix test writes its own.
struct Fixture {
    dir: tempfile::TempDir,
}

const LIB_CHART: &str = "apiVersion: v2\nname: lib\nversion: 1.0.0\ntype: library\n";
const LIB_TEMPLATE: &str = r#"{{/* lib.configmap: a ConfigMap of .Values.data. Usage: include "lib.configmap" . */}}
{{- define "lib.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Chart.Name }}
  labels:
    app.kubernetes.io/name: {{ .Chart.Name }}
data:
  {{- toYaml .Values.data | nindent 2 }}
{{- end -}}
"#;

fn app_chart(name: &str, deps: &[&str]) -> String {
    let mut text = format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\n");
    if !deps.is_empty() {
        text.push_str("dependencies:\n");
        for dep in deps {
            text.push_str(&format!("  - name: {dep}\n    version: 1.0.0\n    repository: file://../{dep}\n"));
        }
    }
    text
}

impl Fixture {
    fn new() -> Fixture {
        let fixture = Fixture { dir: tempfile::tempdir().expect("temp dir") };
        fixture.write("charts/lib/Chart.yaml", LIB_CHART);
        fixture.write("charts/lib/templates/_configmap.tpl", LIB_TEMPLATE);
        for name in ["alpha", "beta"] {
            fixture.write(&format!("charts/{name}/Chart.yaml"), &app_chart(name, &["lib"]));
            fixture.write(&format!("charts/{name}/values.yaml"), &format!("data:\n  greeting: hello from {name}\n"));
            fixture.write(&format!("charts/{name}/templates/configmap.yaml"), "{{ include \"lib.configmap\" . }}\n");
        }
        fixture.write("charts/gamma/Chart.yaml", &app_chart("gamma", &[]));
        fixture.write("charts/gamma/values.yaml", "replicaCount: 1\n");
        fixture.write(
            "charts/gamma/values.schema.json",
            r#"{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": false,
               "properties": {"replicaCount": {"type": "integer", "minimum": 0}, "global": {"type": "object"}, "enabled": {"type": "boolean"}}}"#,
        );
        fixture.write("charts/gamma/templates/deployment.yaml", GAMMA_DEPLOYMENT);
        fixture.write(
            "helm/shop/Chart.yaml",
            "apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n  - name: alpha\n    version: 0.1.0\n    repository: file://../../charts/alpha\n  - name: beta\n    version: 0.1.0\n    repository: file://../../charts/beta\n",
        );
        fixture.write("helm/shop/templates/NOTES.txt", "The shop is installed as {{ .Release.Name }}.\n");
        fixture.write("helm/shop/values.yaml", "alpha:\n  data:\n    greeting: hello from the shop\n");
        fixture.write("helm/shop/values-dev.yaml", "beta:\n  data:\n    level: dev\n");
        fixture.write("helm/shop/values-prod.yaml", "beta:\n  data:\n    level: prod\n");
        fixture
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        self.write_bytes(rel, text.as_bytes());
    }

    fn write_bytes(&self, rel: &str, bytes: &[u8]) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write fixture file");
    }

    /// Runs `xtask --format json --root <fixture> lint <args>`.
    fn lint(&self, args: &[&str]) -> (Output, Report) {
        let output = xtask()
            .args(["--format", "json", "--root"])
            .arg(self.root())
            .arg("lint")
            .args(args)
            .output()
            .expect("run xtask");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "xtask panicked: {}", describe(&output));
        let report = Report::parse(&output);
        (output, report)
    }
}

const GAMMA_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: gamma
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels: {app: gamma}
  template:
    metadata:
      labels: {app: gamma}
    spec:
      containers:
        - name: gamma
          image: "registry.invalid/gamma:1.0.0"
"#;

/// The JSON report, indexed by chart name.
struct Report {
    json: Value,
    charts: BTreeMap<String, Value>,
}

impl Report {
    fn parse(output: &Output) -> Report {
        let json: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|err| panic!("stdout is not one JSON document ({err}): {}", describe(output)));
        let charts = json["charts"]
            .as_array()
            .expect("charts array")
            .iter()
            .map(|c| (c["name"].as_str().expect("name").to_string(), c.clone()))
            .collect();
        Report { json, charts }
    }

    fn status(&self, chart: &str) -> &str {
        self.charts.get(chart).and_then(|c| c["status"].as_str()).unwrap_or("absent")
    }

    /// Every failed step's message of a chart, joined.
    fn failures(&self, chart: &str) -> String {
        self.charts[chart]["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter(|s| s["status"] == "failed")
            .map(|s| format!("[{}] {}", s["step"].as_str().unwrap_or(""), s["message"].as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn ms(&self, chart: &str, field: &str) -> u64 {
        self.charts[chart][field].as_u64().expect("timestamp")
    }
}

fn exit_code(output: &Output) -> i32 {
    output.status.code().expect("exit code")
}

/// Asserts that exactly `failed` failed and every other chart of the fixture is ok.
fn assert_only_failed(report: &Report, output: &Output, failed: &[&str]) {
    assert_eq!(exit_code(output), 1, "{}", describe(output));
    for name in ["lib", "alpha", "beta", "gamma", "shop"] {
        let expected = if failed.contains(&name) { "failed" } else { "ok" };
        assert_eq!(report.status(name), expected, "chart {name}: {}", describe(output));
    }
}

#[test]
fn clean_repository_passes_every_step() {
    let fixture = Fixture::new();
    let (output, report) = fixture.lint(&["--no-cache"]);
    assert_eq!(exit_code(&output), 0, "{}", describe(&output));
    for name in ["lib", "alpha", "beta", "gamma", "shop"] {
        assert_eq!(report.status(name), "ok", "{name}");
    }
    // The umbrella is checked in each environment, for both Kubernetes versions.
    let shop_steps = report.charts["shop"]["steps"].as_array().expect("steps");
    for env in ["dev", "prod"] {
        for step in ["lint", "render", "validate"] {
            assert!(
                shop_steps.iter().any(|s| s["step"] == step && s["env"] == env),
                "shop has no {step} step for {env}: {shop_steps:?}"
            );
        }
    }
    assert!(report.json["processes"].as_u64().expect("processes") > 0);
    // The rendered umbrella carries its environment's values.
    let rendered =
        std::fs::read_to_string(fixture.root().join("target/xtask/rendered/1.37.0/shop/prod.yaml")).expect("rendered");
    assert!(rendered.contains("level: prod") && rendered.contains("hello from the shop"), "{rendered}");
}

#[test]
fn broken_template_syntax_fails_that_chart_and_its_dependents_only() {
    let fixture = Fixture::new();
    fixture.write("charts/beta/templates/broken.yaml", "{{ .Values.data.greeting | quote }\n");
    let (output, report) = fixture.lint(&["--no-cache"]);
    assert_only_failed(&report, &output, &["beta", "shop"]);
    assert!(report.failures("beta").contains("broken.yaml"), "{}", report.failures("beta"));
}

#[test]
fn chart_yaml_that_is_not_yaml_is_located() {
    let fixture = Fixture::new();
    fixture.write("charts/gamma/Chart.yaml", "apiVersion: v2\nname: gamma\nversion: [0.1.0\n");
    let (output, report) = fixture.lint(&[]);
    assert_only_failed(&report, &output, &["gamma"]);
    let message = report.failures("gamma");
    assert!(message.contains("charts/gamma/Chart.yaml:"), "{message}");
    assert!(
        message.split("Chart.yaml:").nth(1).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())),
        "no line number: {message}"
    );
}

#[test]
fn chart_yaml_without_version_is_named() {
    let fixture = Fixture::new();
    fixture.write("charts/gamma/Chart.yaml", "apiVersion: v2\nname: gamma\n");
    let (output, report) = fixture.lint(&[]);
    assert_only_failed(&report, &output, &["gamma"]);
    assert!(
        report.failures("gamma").contains("charts/gamma/Chart.yaml") && report.failures("gamma").contains("`version`")
    );
}

#[test]
fn dependency_cycle_names_every_chart_in_it() {
    let fixture = Fixture::new();
    fixture.write("charts/alpha/Chart.yaml", &app_chart("alpha", &["lib", "beta"]));
    fixture.write("charts/beta/Chart.yaml", &app_chart("beta", &["lib", "alpha"]));
    let (output, report) = fixture.lint(&[]);
    assert_only_failed(&report, &output, &["alpha", "beta", "shop"]);
    for chart in ["alpha", "beta"] {
        assert!(
            report.failures(chart).contains("dependency cycle: alpha -> beta -> alpha"),
            "{}",
            report.failures(chart)
        );
    }
}

#[test]
fn missing_file_dependency_names_chart_and_path() {
    let fixture = Fixture::new();
    fixture.write("charts/gamma/Chart.yaml", "apiVersion: v2\nname: gamma\nversion: 0.1.0\ndependencies:\n  - name: nope\n    version: 1.0.0\n    repository: file://../nope\n");
    let (output, report) = fixture.lint(&[]);
    assert_only_failed(&report, &output, &["gamma"]);
    let message = report.failures("gamma");
    assert!(message.contains("charts/gamma/Chart.yaml") && message.contains("file://../nope"), "{message}");
}

#[test]
fn values_breaking_the_schema_name_the_key() {
    let fixture = Fixture::new();
    fixture.write("charts/gamma/values.yaml", "replicaCount: three\n");
    let (output, report) = fixture.lint(&[]);
    assert_only_failed(&report, &output, &["gamma"]);
    assert!(report.failures("gamma").contains("replicaCount"), "{}", report.failures("gamma"));
}

#[test]
fn manifest_kubeconform_rejects_is_reported_by_validate() {
    let fixture = Fixture::new();
    fixture.write(
        "charts/gamma/templates/deployment.yaml",
        &GAMMA_DEPLOYMENT.replace("          image:", "          imagePullPolcy: Always\n          image:"),
    );
    let (output, report) = fixture.lint(&[]);
    assert_only_failed(&report, &output, &["gamma"]);
    let message = report.failures("gamma");
    assert!(message.contains("[validate]") && message.contains("imagePullPolcy"), "{message}");
}

#[test]
fn matrix_dependency_on_unknown_service_names_the_file() {
    let fixture = Fixture::new();
    fixture.write("service-matrix.yaml", "services:\n  - name: alpha\n    dependencies: [ghost]\n");
    let (output, report) = fixture.lint(&[]);
    assert_only_failed(&report, &output, &[]);
    let checks = report.json["repository"].as_array().expect("repository checks");
    let failed: Vec<&Value> = checks.iter().filter(|c| c["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{checks:?}");
    let message = failed[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("service-matrix.yaml") && message.contains("\"ghost\""), "{message}");
}

#[test]
fn binary_garbage_in_values_is_located() {
    let fixture = Fixture::new();
    fixture.write_bytes("charts/gamma/values.yaml", b"replicaCount: 1\nnoise: \x00\xff\xfe\x01\n");
    let (output, report) = fixture.lint(&[]);
    assert_only_failed(&report, &output, &["gamma"]);
    let message = report.failures("gamma");
    assert!(message.contains("charts/gamma/values.yaml:2:8") && message.contains("binary"), "{message}");
}

#[test]
fn yaml_alias_bomb_is_rejected_without_expanding() {
    let fixture = Fixture::new();
    let mut bomb = String::from("replicaCount: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    fixture.write("charts/gamma/values.yaml", &bomb);
    let (output, report) = fixture.lint(&[]);
    assert_only_failed(&report, &output, &["gamma"]);
    let message = report.failures("gamma");
    assert!(message.contains("charts/gamma/values.yaml") && message.contains("repetition limit"), "{message}");
}

#[test]
fn dependents_start_after_dependencies_and_independent_charts_overlap() {
    let fixture = Fixture::new();
    let (output, report) = fixture.lint(&["--no-cache", "--jobs", "2"]);
    assert_eq!(exit_code(&output), 0, "{}", describe(&output));
    for (dependent, dependency) in [("alpha", "lib"), ("beta", "lib"), ("shop", "alpha"), ("shop", "beta")] {
        assert!(
            report.ms(dependent, "started_ms") >= report.ms(dependency, "finished_ms"),
            "{dependent} started at {} before {dependency} finished at {}",
            report.ms(dependent, "started_ms"),
            report.ms(dependency, "finished_ms")
        );
    }
    // lib and gamma are ready together and two workers are free: they run in
    // separate batches at the same time.
    assert_ne!(report.charts["lib"]["batch"], report.charts["gamma"]["batch"]);
    assert!(report.ms("gamma", "started_ms") < report.ms("lib", "finished_ms"), "gamma did not overlap lib");
    assert!(report.ms("lib", "started_ms") < report.ms("gamma", "finished_ms"), "lib did not overlap gamma");
}

#[test]
fn lint_leaves_git_status_clean_and_a_second_run_is_cached() {
    let fixture = Fixture::new();
    let git = |args: &[&str]| support::run_ok(std::process::Command::new("git").args(args).current_dir(fixture.root()));
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "fixture"]);
    let (output, _) = fixture.lint(&[]);
    assert_eq!(exit_code(&output), 0, "{}", describe(&output));
    let status = git(&["status", "--porcelain", "--ignored=no"]);
    assert!(status.stdout.is_empty(), "lint dirtied the checkout:\n{}", String::from_utf8_lossy(&status.stdout));

    let (output, report) = fixture.lint(&[]);
    assert_eq!(exit_code(&output), 0);
    for name in ["alpha", "beta", "gamma", "shop", "lib"] {
        assert_eq!(report.status(name), "cached", "{name}");
        assert!(report.charts[name]["cache_key"].as_str().is_some_and(|k| k.len() == 64));
    }
    assert_eq!(report.json["processes"], 0, "a warm run starts no process");
}

#[test]
fn unknown_chart_and_bad_kube_version_are_usage_errors() {
    let fixture = Fixture::new();
    let output = run_plain(&fixture, &["lint", "--chart", "nope"]);
    assert_eq!(exit_code(&output), 2, "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--chart nope: no such chart"));
    let output = run_plain(&fixture, &["lint", "--kube-version", "1.37"]);
    assert_eq!(exit_code(&output), 2, "{}", describe(&output));
}

fn run_plain(fixture: &Fixture, args: &[&str]) -> Output {
    xtask().arg("--root").arg(fixture.root()).args(args).output().expect("run xtask")
}

/// Processes whose command line mentions `needle` (other than ourselves).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!("{pid}: {cmdline}"));
            }
        }
    }
    found
}

#[test]
fn interrupt_stops_every_child_and_leaves_nothing_half_written() {
    let fixture = Fixture::new();
    // Enough charts that the run is still busy when the signal comes.
    for i in 0..40 {
        let name = format!("svc{i:02}");
        fixture.write(&format!("charts/{name}/Chart.yaml"), &app_chart(&name, &["lib"]));
        fixture.write(&format!("charts/{name}/values.yaml"), "data:\n  a: b\n");
        fixture.write(&format!("charts/{name}/templates/configmap.yaml"), "{{ include \"lib.configmap\" . }}\n");
    }
    let root = fixture.root().to_string_lossy().into_owned();
    let child = xtask()
        .arg("--root")
        .arg(fixture.root())
        .args(["lint", "--no-cache", "--no-batch", "--jobs", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start xtask");
    // Wait until it is running tools, then interrupt it as a terminal would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while processes_mentioning(&format!("{root}/target/xtask/stage")).is_empty() {
        assert!(std::time::Instant::now() < deadline, "lint never started a tool");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let output = child.wait_with_output().expect("wait for xtask");
    assert_eq!(output.status.code(), Some(130), "{}", describe(&output));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let left = processes_mentioning(&root);
    assert!(left.is_empty(), "processes survived the interrupt: {left:?}");
    // Renders and cache entries are written through a temporary file and a
    // rename: no temporary file may be left, and every render is complete YAML.
    let mut stack = vec![fixture.root().join("target/xtask")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".tmp"), "half-written file left: {}", path.display());
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml")
                && path.starts_with(fixture.root().join("target/xtask/rendered"))
            {
                let text = std::fs::read_to_string(&path).expect("render");
                assert!(
                    text.ends_with('\n') && text.contains("kind: ConfigMap"),
                    "incomplete render {}",
                    path.display()
                );
            }
        }
    }
}

/// Objects of the kinds the pinned upstream CRDs define (Argo CD,
/// Prometheus operator, External Secrets), as a chart would render them.
const CUSTOM_RESOURCES: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: gamma
spec:
  project: default
  source: {repoURL: "https://example.invalid/shop.git", path: charts/gamma, targetRevision: main}
  destination: {server: "https://kubernetes.default.svc", namespace: shop}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: gamma
spec:
  selector:
    matchLabels: {app: gamma}
  endpoints:
    - port: http
      interval: 30s
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: gamma
spec:
  refreshInterval: 1h
  secretStoreRef: {name: vault, kind: ClusterSecretStore}
  target: {name: gamma}
  data:
    - secretKey: password
      remoteRef: {key: shop/gamma, property: password}
"#;

#[test]
fn custom_resources_are_validated_against_the_upstream_crds() {
    let fixture = Fixture::new();
    fixture.write("charts/gamma/templates/custom.yaml", CUSTOM_RESOURCES);
    let (output, report) = fixture.lint(&["--chart", "gamma"]);
    assert_eq!(report.status("gamma"), "ok", "{}", describe(&output));

    // A field Argo CD's CRD does not have (its schema is strict where the
    // CRD does not preserve unknown fields).
    fixture.write(
        "charts/gamma/templates/custom.yaml",
        &CUSTOM_RESOURCES.replace("{prune: true, selfHeal: true}", "{prune: true, selfHeal: true, prunee: true}"),
    );
    let (output, report) = fixture.lint(&["--chart", "gamma"]);
    assert_eq!(report.status("gamma"), "failed", "{}", describe(&output));
    let message = report.failures("gamma");
    assert!(message.contains("[validate]") && message.contains("Application gamma"), "{message}");
    assert!(message.contains("prunee"), "{message}");
}
