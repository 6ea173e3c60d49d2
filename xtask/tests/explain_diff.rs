//! Integration tests of `cargo xtask explain` and `cargo xtask diff`.
//!
//! explain is checked against the design document's worked example and,
//! case by case, against the values Helm itself computes: a dump template
//! (`toJson .Values` in a ConfigMap) is added to scratch copies of charts,
//! the real helm renders them with the same layers, and the two answers must
//! be equal. diff is checked on throw-away git histories: one that changes a
//! single memory limit in values-prod.yaml, and one that changes a Secret.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{describe, run_ok, toolset, xtask};

// ---------------------------------------------------------------- helpers

/// Writes `text` to `root/rel`, creating folders.
fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A template that dumps the chart's `.Values` as JSON on one line.
const DUMP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: dump-{{ .Chart.Name }}
data:
  values.json: |
    {{ toJson .Values }}
"#;

/// Runs the real helm on a chart folder and returns each dump by the chart
/// it came from (`shop`, `alpha`, ...). `helm dependency build` runs first in
/// `build` (subcharts with dependencies of their own, innermost first: a
/// packaged subchart carries only what its `charts/` folder holds) and then
/// in the chart.
fn helm_dumps(build: &[PathBuf], chart_dir: &Path, args: &[&str]) -> BTreeMap<String, Value> {
    let helm = &toolset().helm;
    for dir in build.iter().map(PathBuf::as_path).chain([chart_dir]) {
        run_ok(Command::new(helm).arg("dependency").arg("build").arg(dir));
    }
    let output = run_ok(Command::new(helm).arg("template").arg("release").arg(chart_dir).args(args));
    let text = String::from_utf8_lossy(&output.stdout);
    let mut dumps = BTreeMap::new();
    for document in text.split("\n---\n") {
        let Some(source) = document.lines().find_map(|l| l.strip_prefix("# Source: ")) else { continue };
        if !source.ends_with("templates/dump.yaml") {
            continue;
        }
        let parts: Vec<&str> = source.split('/').collect();
        let chart = if parts.len() >= 4 && parts[1] == "charts" { parts[2] } else { parts[0] };
        let mut lines = document.lines().skip_while(|l| !l.trim_start().starts_with("values.json: |"));
        lines.next();
        let json = lines.next().unwrap_or_default().trim();
        let value: Value = serde_json::from_str(json).unwrap_or_else(|err| panic!("dump of {chart}: {err}: {json}"));
        dumps.insert(chart.to_string(), value);
    }
    dumps
}

/// Numbers as f64, so that Helm's float64 `3` and our integer `3` compare equal.
fn normalize(value: &Value) -> Value {
    match value {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap_or_default()),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize(v))).collect()),
        other => other.clone(),
    }
}

/// `xtask --root ROOT --format json explain ARGS...`, parsed.
fn explain_json(root: &Path, args: &[&str]) -> (Value, Output) {
    let output = run_ok(xtask().arg("--root").arg(root).args(["--format", "json", "explain"]).args(args));
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("explain printed no JSON ({err}): {}", describe(&output)));
    (report, output)
}

fn leaf<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["leaves"]
        .as_array()
        .and_then(|leaves| leaves.iter().find(|l| l["path"] == path))
        .unwrap_or_else(|| panic!("no leaf {path} in {report:#}"))
}

/// Explains `target` and compares the merged values with Helm's dump.
fn assert_agrees(what: &str, explained: &Value, helm: &Value) {
    let ours = normalize(&explained["values"]);
    let theirs = normalize(helm);
    if ours != theirs {
        panic!(
            "{what}: explain and helm disagree\n--- explain\n{}\n--- helm\n{}",
            serde_json::to_string_pretty(&ours).unwrap(),
            serde_json::to_string_pretty(&theirs).unwrap()
        );
    }
}

// ---------------------------------------------------------------- explain

/// The design document's "Final Result for catalogue", field by field.
#[test]
fn explain_prints_the_documents_catalogue_example() {
    let root = support::repo_root();
    let args =
        ["catalogue", "--env", "prod", "--set", "catalogue.image.tag=1.2.6", "--set", "catalogue.replicaCount=5"];
    let (report, output) = explain_json(&root, &args);

    let replicas = leaf(&report, "replicaCount");
    assert_eq!(replicas["value"], 5);
    assert_eq!(replicas["source"], "--set");
    // It replaced prod's 3 and the chart's 1, lowest first.
    let overrode: Vec<(String, Value)> = replicas["overrode"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["source"].as_str().unwrap().to_string(), o["value"].clone()))
        .collect();
    assert_eq!(
        overrode,
        vec![
            ("charts/catalogue/values.yaml".to_string(), serde_json::json!(1)),
            ("helm/robot-shop/values-prod.yaml".to_string(), serde_json::json!(3)),
        ]
    );
    let tag = leaf(&report, "image.tag");
    assert_eq!(tag["value"], "1.2.6");
    assert_eq!(tag["source"], "--set");
    let memory = leaf(&report, "resources.limits.memory");
    assert_eq!(memory["value"], "512Mi");
    assert_eq!(memory["source"], "helm/robot-shop/values-prod.yaml");
    let log_level = leaf(&report, "env.LOG_LEVEL");
    assert_eq!(log_level["value"], "info");
    assert_eq!(log_level["source"], "helm/robot-shop/values.yaml");
    assert_eq!(log_level["overrode"][0]["value"], "debug");
    // The document writes robotshop/catalogue; the real image (and the chart) is rs-catalogue.
    let repository = leaf(&report, "image.repository");
    assert_eq!(repository["value"], "robotshop/rs-catalogue");
    assert_eq!(repository["source"], "charts/catalogue/values.yaml");
    assert!(repository["overrode"].as_array().unwrap().is_empty());

    let layers: Vec<&str> =
        report["layers"].as_array().unwrap().iter().map(|l| l["source"].as_str().unwrap()).collect();
    assert_eq!(
        layers,
        ["charts/catalogue/values.yaml", "helm/robot-shop/values.yaml", "helm/robot-shop/values-prod.yaml", "--set"]
    );

    // The people's format says the same on stderr.
    let human = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "catalogue, as helm/robot-shop deploys it in prod",
        "replicaCount: 5",
        "<- --set (was 3 in helm/robot-shop/values-prod.yaml, 1 in charts/catalogue/values.yaml)",
        "image.tag: 1.2.6",
        "resources.limits.memory: 512Mi",
        "env.LOG_LEVEL: info",
        "image.repository: robotshop/rs-catalogue",
    ] {
        assert!(human.contains(expected), "{expected:?} missing from:\n{human}");
    }

    // KEY narrows the output to one subtree.
    let (narrow, _) = explain_json(&root, &["catalogue", "image", "--env", "prod"]);
    let paths: Vec<&str> = narrow["leaves"].as_array().unwrap().iter().map(|l| l["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["image.pullPolicy", "image.repository", "image.tag"]);
}

/// Values under secretEnv are hidden unless asked for; unknown names and
/// bad --set flags are usage errors.
#[test]
fn explain_hides_secrets_and_rejects_bad_input() {
    let root = support::repo_root();
    let (report, output) = explain_json(&root, &["catalogue", "secretEnv", "--env", "dev"]);
    let url = leaf(&report, "secretEnv.MONGO_URL");
    assert_eq!(url["value"], "(hidden)");
    let everything = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!everything.contains("dev-only-catalogue"), "{everything}");
    let (shown, _) = explain_json(&root, &["catalogue", "secretEnv", "--env", "dev", "--show-secrets"]);
    assert!(leaf(&shown, "secretEnv.MONGO_URL")["value"].as_str().unwrap().contains("dev-only-catalogue"));

    for (args, needle) in [
        (vec!["nosuchchart"], "no such chart"),
        (vec!["catalogue", "--env", "qa"], "--env qa"),
        (vec!["catalogue", "--set", "catalogue.replicaCount=5,catalogue.replicaCount.x=1"], "is not a map"),
        (vec!["catalogue", "no.such.key"], "no value at no.such.key"),
        (vec!["common"], "library chart"),
    ] {
        let output = xtask().arg("explain").args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", describe(&output));
        assert!(String::from_utf8_lossy(&output.stderr).contains(needle), "{args:?}: {}", describe(&output));
    }
}

/// A fixture umbrella with two subcharts of its own (one deployed twice
/// under an alias) and a library below one of them: explain's values for
/// each chart equal Helm's for nested overrides, list replacement, null
/// deletion (including Helm's quirk for nulls in the umbrella's own file),
/// globals (including nested globals shared between siblings) and --set.
#[test]
fn explain_agrees_with_helm_on_a_fixture_umbrella() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "charts/lib/Chart.yaml", "apiVersion: v2\nname: lib\nversion: 1.0.0\ntype: library\n");
    write(root, "charts/lib/values.yaml", "libDefault: 1\nglobal:\n  fromLib: x\n");
    write(
        root,
        "charts/alpha/Chart.yaml",
        "apiVersion: v2\nname: alpha\nversion: 1.0.0\ndependencies:\n  - name: lib\n    version: 1.0.0\n    repository: file://../lib\n",
    );
    write(
        root,
        "charts/alpha/values.yaml",
        r#"replicaCount: 1
image:
  repository: example/alpha
  tag: "1.0"
resources:
  limits: {cpu: 200m, memory: 256Mi}
  requests: {cpu: 100m, memory: 64Mi}
list: [1, 2, 3]
ports:
  - {name: http, port: 80}
env: {A: a, B: b}
drop: {xkey: 1, zkey: 2}
keepme: {inner: kept}
nothing: null
ratio: 1.5
global:
  region: alpha-default
  own: alpha
  shared:
    nested:
      fromAlpha: 1
"#,
    );
    write(root, "charts/alpha/templates/dump.yaml", DUMP);
    write(root, "charts/beta/Chart.yaml", "apiVersion: v2\nname: beta\nversion: 1.0.0\n");
    write(
        root,
        "charts/beta/values.yaml",
        "gone: {x: 1}\nitems: [a, b]\nglobal:\n  shared:\n    fromBeta: 1\n    nested:\n      fromBeta: 1\n",
    );
    write(root, "charts/beta/templates/dump.yaml", DUMP);
    write(
        root,
        "helm/shop/Chart.yaml",
        r#"apiVersion: v2
name: shop
version: 1.0.0
dependencies:
  - name: alpha
    version: 1.0.0
    repository: file://../../charts/alpha
    condition: alpha.enabled
  - name: beta
    version: 1.0.0
    repository: file://../../charts/beta
  - name: beta
    alias: gamma
    version: 1.0.0
    repository: file://../../charts/beta
    condition: gamma.enabled
"#,
    );
    write(
        root,
        "helm/shop/values.yaml",
        r#"global:
  region: eu
  shared:
    flat: parent
    nested:
      fromParent: 1
alpha:
  enabled: true
  replicaCount: 2
  resources:
    limits: {memory: 512Mi}
  list: [9]
  drop: {xkey: null}
beta:
  items: [c]
gamma:
  enabled: true
  gone: null
"#,
    );
    write(
        root,
        "helm/shop/values-prod.yaml",
        r#"global:
  shared:
    nested:
      fromEnv: 1
alpha:
  env: {B: prod, C: c}
  ports:
    - {name: https, port: 443}
  keepme: null
  resources:
    requests: null
"#,
    );
    write(root, "helm/shop/templates/dump.yaml", DUMP);
    write(
        root,
        "extra.yaml",
        "alpha:\n  image: {tag: \"2.0\"}\n  nested: {a: {b: 1}}\nbeta:\n  global: {local: mine}\n",
    );

    let sets = [
        "alpha.replicaCount=5",
        "alpha.nested.a.c=2",
        "global.tier=gold",
        "alpha.env.A=null",
        "beta.items[1]=z",
        r"alpha.msg=a\,b,alpha.flag=true",
        "alpha.zero=0,alpha.octal=0123,alpha.big=12345678901",
        "alpha.list={7,8}",
    ];
    let extra = root.join("extra.yaml");
    let mut helm_args: Vec<String> = vec!["-f".into(), root.join("helm/shop/values-prod.yaml").display().to_string()];
    helm_args.extend(["-f".into(), extra.display().to_string()]);
    for set in sets {
        helm_args.extend(["--set".into(), set.into()]);
    }
    let helm_args: Vec<&str> = helm_args.iter().map(String::as_str).collect();
    let dumps = helm_dumps(&[root.join("charts/alpha")], &root.join("helm/shop"), &helm_args);
    assert_eq!(dumps.keys().cloned().collect::<Vec<_>>(), ["alpha", "beta", "gamma", "shop"], "{dumps:#?}");

    let extra_arg = extra.display().to_string();
    let mut args: Vec<&str> = vec!["--env", "prod", "-f", &extra_arg, "--show-secrets"];
    for set in &sets {
        args.extend(["--set", set]);
    }
    for chart in ["alpha", "beta", "gamma", "shop"] {
        let mut all = vec![chart];
        all.extend(&args);
        let (report, _) = explain_json(root, &all);
        assert_agrees(chart, &report, &dumps[chart]);
    }

    // The cases above really happened (so a regression cannot hide in an
    // empty comparison).
    let alpha = &dumps["alpha"];
    assert!(alpha.get("keepme").is_none(), "null in the env file deletes a default");
    assert!(alpha["drop"].get("xkey").is_none(), "null in the umbrella deletes when a user layer names alpha");
    assert_eq!(dumps["gamma"]["gone"], serde_json::json!({"x": 1}), "...and does not when none does");
    assert_eq!(alpha["list"], serde_json::json!([7, 8]));
    assert_eq!(alpha["ports"], serde_json::json!([{"name": "https", "port": 443}]));
    assert_eq!(dumps["beta"]["items"], serde_json::json!([null, "z"]), "--set with an index replaces the whole list");
    assert_eq!(alpha["global"]["tier"], "gold");
    assert_eq!(alpha["lib"]["global"]["region"], "eu");
    assert_eq!(dumps["beta"]["global"]["shared"]["nested"]["fromAlpha"], 1, "Helm shares nested global tables");
}

/// The real catalogue chart: explain on this repository agrees with Helm
/// rendering a scratch umbrella made of copies of the real values files and
/// the real catalogue and _common charts (without the Bitnami charts, which
/// cannot change catalogue's values: values only flow down).
#[test]
fn explain_agrees_with_helm_on_the_real_catalogue_chart() {
    let repo = support::repo_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::copy_dir(&repo.join("charts/catalogue"), &root.join("charts/catalogue"));
    support::copy_dir(&repo.join("charts/_common"), &root.join("charts/_common"));
    write(root, "charts/catalogue/templates/dump.yaml", DUMP);
    for file in ["values.yaml", "values-dev.yaml", "values-staging.yaml", "values-prod.yaml"] {
        write(
            root,
            &format!("helm/robot-shop/{file}"),
            &std::fs::read_to_string(repo.join("helm/robot-shop").join(file)).unwrap(),
        );
    }
    write(
        root,
        "helm/robot-shop/Chart.yaml",
        "apiVersion: v2\nname: robot-shop\nversion: 1.0.0\ndependencies:\n  - name: catalogue\n    version: 1.0.0\n    repository: file://../../charts/catalogue\n    condition: catalogue.enabled\n",
    );
    write(root, "extra.yaml", "catalogue:\n  networkPolicy:\n    allowedClients: null\n  tolerations:\n    - {key: dedicated, operator: Exists}\n  podAnnotations: {team: shop}\n");
    let extra = root.join("extra.yaml").display().to_string();

    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("prod", vec!["--set", "catalogue.image.tag=1.2.6", "--set", "catalogue.replicaCount=5"]),
        ("dev", vec!["-f", &extra, "--set", "catalogue.env.NODE_ENV=null,catalogue.resources.limits.memory=1Gi"]),
        ("staging", vec!["--set", "global.imagePullPolicy=Always", "--set", "catalogue.writablePaths.cache=/cache"]),
    ];
    for (env, extra_args) in cases {
        let values_file = root.join(format!("helm/robot-shop/values-{env}.yaml")).display().to_string();
        let mut helm_args = vec!["-f", &values_file];
        helm_args.extend(&extra_args);
        let dumps = helm_dumps(&[root.join("charts/catalogue")], &root.join("helm/robot-shop"), &helm_args);
        let mut args = vec!["catalogue", "--env", env, "--show-secrets"];
        args.extend(&extra_args);
        let (report, _) = explain_json(&repo, &args);
        assert_agrees(&format!("catalogue in {env} with {extra_args:?}"), &report, &dumps["catalogue"]);
    }
}

// ---------------------------------------------------------------- diff

fn git(dir: &Path, args: &[&str]) -> String {
    let output = run_ok(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"])
            .args(args),
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A git repository in a temp folder holding `paths` copied from this one,
/// committed on `main`.
fn scratch_repo(paths: &[&str]) -> tempfile::TempDir {
    let repo = support::repo_root();
    let dir = tempfile::tempdir().unwrap();
    for path in paths {
        support::copy_dir(&repo.join(path), &dir.path().join(path));
    }
    write(dir.path(), ".gitignore", "/target\n");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "base"]);
    dir
}

/// Replaces the first occurrence of `from` after the line `after`.
fn edit_after(file: &Path, after: &str, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let start = text.find(after).unwrap_or_else(|| panic!("{after:?} not in {}", file.display()));
    let offset = text[start..].find(from).unwrap_or_else(|| panic!("{from:?} not after {after:?}")) + start;
    let edited = format!("{}{to}{}", &text[..offset], &text[offset + from.len()..]);
    std::fs::write(file, edited).unwrap();
}

fn worktrees(dir: &Path) -> usize {
    git(dir, &["worktree", "list", "--porcelain"]).lines().filter(|l| l.starts_with("worktree ")).count()
}

fn diff(root: &Path, format: &[&str], args: &[&str]) -> Output {
    xtask().arg("--root").arg(root).args(format).arg("diff").args(args).output().unwrap()
}

/// Only values-prod.yaml changes catalogue's memory limit: the diff shows
/// that one field of catalogue's Deployment in prod, and nothing in dev or
/// staging. The umbrella's Bitnami charts come from the loopback mirror.
#[test]
fn diff_shows_exactly_the_prod_memory_limit_of_catalogue() {
    let repo = scratch_repo(&["charts", "helm"]);
    let root = repo.path();
    edit_after(
        &root.join("helm/robot-shop/values-prod.yaml"),
        "\ncatalogue:",
        "memory: \"512Mi\"",
        "memory: \"768Mi\"",
    );
    let mirror_dir = tempfile::tempdir().unwrap();
    let mirror = support::Mirror::start(mirror_dir.path());

    let output = diff(root, &["--format", "json"], &["--mirror", mirror.value()]);
    assert!(output.status.success(), "{}", describe(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let charts = report["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 1, "{report:#}");
    assert_eq!(charts[0]["chart"], "robot-shop");
    let envs: BTreeMap<String, &Value> = charts[0]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["environment"].as_str().unwrap().to_string(), e))
        .collect();
    assert_eq!(envs.keys().cloned().collect::<Vec<_>>(), ["dev", "prod", "staging"]);
    for env in ["dev", "staging"] {
        assert_eq!(envs[env]["status"], "unchanged", "{env}: {:#}", envs[env]);
        assert!(envs[env]["objects"].as_array().unwrap().is_empty());
    }
    let prod = envs["prod"];
    assert_eq!(prod["status"], "changed");
    let objects = prod["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1, "{prod:#}");
    let deployment = &objects[0];
    assert_eq!((deployment["kind"].as_str(), deployment["name"].as_str()), (Some("Deployment"), Some("catalogue")));
    assert_eq!(deployment["source"], "catalogue");
    assert_eq!(deployment["change"], "changed");
    let fields = deployment["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1, "{deployment:#}");
    assert_eq!(fields[0]["path"], "spec.template.spec.containers[name=catalogue].resources.limits.memory");
    assert_eq!((fields[0]["old"].as_str(), fields[0]["new"].as_str()), (Some("512Mi"), Some("768Mi")));

    // The same in the people's and the pull request's formats.
    let human = diff(root, &[], &["--mirror", mirror.value(), "--env", "prod"]);
    let text = String::from_utf8_lossy(&human.stderr);
    assert!(human.status.success(), "{}", describe(&human));
    assert!(text.contains("robot-shop prod: 1 object changed"), "{text}");
    assert!(text.contains("~ Deployment default/catalogue  (catalogue)"), "{text}");
    assert!(
        text.contains("spec.template.spec.containers[name=catalogue].resources.limits.memory: 512Mi -> 768Mi"),
        "{text}"
    );
    let markdown = diff(root, &["--format", "markdown"], &["--mirror", mirror.value()]);
    let md = String::from_utf8_lossy(&markdown.stdout);
    assert!(markdown.status.success(), "{}", describe(&markdown));
    assert!(md.contains("| robot-shop | dev | no changes |"), "{md}");
    assert!(md.contains("<code>512Mi</code> | <code>768Mi</code>"), "{md}");

    assert_eq!(worktrees(root), 1, "the base worktree was removed");
    let left: Vec<_> = std::fs::read_dir(root.join("target/xtask/diff")).unwrap().filter_map(|e| e.ok()).collect();
    assert!(left.is_empty(), "the run folders were removed: {left:?}");
    assert!(git(root, &["status", "--porcelain"]).lines().all(|l| l.contains("values-prod.yaml")));
}

/// Base64 as Kubernetes Secrets store data.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A Secret's value changes: every format says that the key changed, and
/// none prints the value, its base64 or the checksum computed from it.
/// A working tree that does not render fails the run (exit 1) and still
/// leaves no worktree behind.
#[test]
fn diff_never_prints_a_secret_value() {
    let before = "s3cr3t-before-4e1f9";
    let after = "s3cr3t-after-77ac2";
    let repo = scratch_repo(&["charts/catalogue", "charts/_common"]);
    let root = repo.path();
    let values = root.join("charts/catalogue/values.yaml");
    edit_after(&values, "\nsecretEnv:", "secretEnv: {}", &format!("secretEnv:\n  MONGO_URL: \"{before}\""));
    git(root, &["commit", "-q", "-am", "a secret"]);
    edit_after(&values, "\nsecretEnv:", before, after);

    // The checksums helm computes from the two values, to be sure they never show.
    let mut forbidden =
        vec![before.to_string(), after.to_string(), base64(before.as_bytes()), base64(after.as_bytes())];
    for secret in [before, after] {
        let chart = tempfile::tempdir().unwrap();
        support::copy_dir(&root.join("charts/catalogue"), &chart.path().join("charts/catalogue"));
        support::copy_dir(&root.join("charts/_common"), &chart.path().join("charts/_common"));
        let dir = chart.path().join("charts/catalogue");
        let helm = &toolset().helm;
        run_ok(Command::new(helm).arg("dependency").arg("build").arg(&dir));
        let set = format!("secretEnv.MONGO_URL={secret}");
        let output = run_ok(Command::new(helm).arg("template").arg("robot-shop").arg(&dir).args(["--set", &set]));
        let text = String::from_utf8_lossy(&output.stdout);
        let checksum = text.lines().find_map(|l| l.trim().strip_prefix("checksum/config: ")).expect("a checksum");
        forbidden.push(checksum.trim_matches('"').to_string());
    }

    for format in ["json", "human", "markdown"] {
        let output = diff(root, &["--format", format], &[]);
        assert!(output.status.success(), "{}", describe(&output));
        let everything =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        for secret in &forbidden {
            assert!(!everything.contains(secret.as_str()), "{secret} printed by --format {format}:\n{everything}");
        }
        assert!(everything.contains("data.MONGO_URL"), "--format {format}:\n{everything}");
        assert!(everything.contains("checksum/config"), "--format {format}:\n{everything}");
    }
    let output = diff(root, &["--format", "json"], &[]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let objects = report["charts"][0]["environments"][0]["objects"].as_array().unwrap();
    let secret = objects.iter().find(|o| o["kind"] == "Secret").expect("the Secret changed");
    assert_eq!(secret["fields"][0], serde_json::json!({"path": "data.MONGO_URL", "change": "changed", "hidden": true}));

    // A broken working tree: exit 1, the error names the chart, no worktree left.
    write(root, "charts/catalogue/templates/broken.yaml", "{{ .Values.nope.nope }}\n");
    let output = diff(root, &[], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("catalogue default: failed to render") && stderr.contains("broken.yaml"), "{stderr}");
    assert_eq!(worktrees(root), 1);
    // A run killed before it could clean up leaves its folder and worktree;
    // the next run removes them.
    let stale = root.join("target/xtask/diff/999999999");
    git(root, &["worktree", "add", "-q", "--detach", stale.join("base-tree").to_str().unwrap(), "HEAD"]);
    assert_eq!(worktrees(root), 2);
    let _ = diff(root, &[], &[]);
    assert_eq!(worktrees(root), 1, "the stale worktree was removed");
    assert!(!stale.exists());
    // A base that does not exist is an environment error (exit 3).
    let output = diff(root, &[], &["--base", "no-such-branch"]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
}
