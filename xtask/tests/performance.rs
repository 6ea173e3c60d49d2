//! What the performance work must never change, tested (not timed):
//!
//! - differential: a batched run (`lint`: shared helm processes, one render
//!   per Kubernetes-independent tree, the umbrella in cached pieces) and the
//!   per-chart reference (`lint --no-batch`) give the same verdict for every
//!   chart, step, environment and Kubernetes version, and byte-identical
//!   rendered manifests: on the real repository (its Bitnami dependencies
//!   served by the stand-in mirror) and on synthetic repositories from
//!   `xtask bench --generate`, clean and with broken charts;
//! - cache: after a warm run, a change to a chart file, to the library, to an
//!   umbrella values file, to a tool's version or to the Kubernetes versions
//!   re-checks exactly the charts it should; a corrupt entry is re-checked,
//!   never trusted.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{describe, xtask, Mirror};

/// A verdict's place: chart, step, environment, Kubernetes version.
type StepId = (String, String, String, String);

/// One `xtask --format json lint` run.
struct Run {
    output: Output,
    report: Value,
}

impl Run {
    /// Runs lint on `root` with `work` as the work folder.
    fn lint(root: &Path, work: &Path, args: &[&str]) -> Run {
        Run::lint_with(root, work, args, |_| {})
    }

    fn lint_with(root: &Path, work: &Path, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Run {
        let mut command = xtask();
        command.env("XTASK_WORK_DIR", work).arg("--root").arg(root).args(["--format", "json", "lint"]).args(args);
        adjust(&mut command);
        let output = command.output().expect("run xtask lint");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "xtask panicked: {}", describe(&output));
        let report: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|err| panic!("no JSON report ({err}): {}", describe(&output)));
        Run { output, report }
    }

    fn charts(&self) -> &[Value] {
        self.report["charts"].as_array().map(Vec::as_slice).unwrap_or_default()
    }

    /// Chart name -> status.
    fn statuses(&self) -> BTreeMap<String, String> {
        self.charts()
            .iter()
            .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c["status"].as_str().unwrap_or("").to_string()))
            .collect()
    }

    /// Every step's verdict; `dependencies` and `values` are the same code in
    /// both modes, the others are what batching changes.
    fn verdicts(&self) -> BTreeMap<StepId, String> {
        let mut verdicts = BTreeMap::new();
        for chart in self.charts() {
            for step in chart["steps"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let id = (
                    chart["name"].as_str().unwrap_or("").to_string(),
                    step["step"].as_str().unwrap_or("").to_string(),
                    step["env"].as_str().unwrap_or("").to_string(),
                    step["kube_version"].as_str().unwrap_or("").to_string(),
                );
                let status = step["status"].as_str().unwrap_or("").to_string();
                assert!(verdicts.insert(id.clone(), status).is_none(), "step {id:?} reported twice");
            }
        }
        verdicts
    }

    fn processes(&self) -> u64 {
        self.report["processes"].as_u64().unwrap_or(0)
    }

    fn cache_key(&self, chart: &str) -> String {
        self.charts()
            .iter()
            .find(|c| c["name"] == chart)
            .and_then(|c| c["cache_key"].as_str())
            .unwrap_or_else(|| panic!("{chart} has no cache key"))
            .to_string()
    }
}

/// Every rendered file under `<work>/rendered`, by path relative to it.
fn rendered(work: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|x| x == "yaml") {
                let rel = path.strip_prefix(root).expect("below root").to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path).expect("read rendered file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    let root = work.join("rendered");
    walk(&root, &root, &mut out);
    out
}

/// Asserts that a batched and a per-chart run agree on every verdict and
/// every rendered byte.
fn assert_same(batched: &Run, batched_work: &Path, single: &Run, single_work: &Path) {
    assert_eq!(batched.output.status.code(), single.output.status.code(), "exit codes differ");
    let (a, b) = (batched.verdicts(), single.verdicts());
    assert!(!a.is_empty(), "no verdicts: {}", describe(&batched.output));
    let differing: Vec<String> = a
        .keys()
        .chain(b.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|id| a.get(*id) != b.get(*id))
        .map(|id| format!("{id:?}: batched {:?}, per chart {:?}", a.get(id), b.get(id)))
        .collect();
    assert!(differing.is_empty(), "verdicts differ:\n{}", differing.join("\n"));
    let (x, y) = (rendered(batched_work), rendered(single_work));
    assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "different files rendered");
    for (file, bytes) in &x {
        if bytes != &y[file] {
            let (left, right) = (String::from_utf8_lossy(bytes), String::from_utf8_lossy(&y[file]));
            let line = left.lines().zip(right.lines()).position(|(l, r)| l != r).unwrap_or(left.lines().count());
            panic!(
                "{file} differs from line {}: batched {} bytes, per chart {} bytes",
                line + 1,
                bytes.len(),
                y[file].len()
            );
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
}

/// Replaces the one occurrence of `from` in a file.
fn replace(path: &Path, from: &str, to: &str) {
    let content = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert_eq!(content.matches(from).count(), 1, "{}: {from:?} once", path.display());
    write(path, &content.replacen(from, to, 1));
}

fn append(path: &Path, text: &str) {
    let mut content = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    content.push_str(text);
    write(path, &content);
}

#[test]
fn batched_and_per_chart_runs_agree_on_the_real_repository() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mirror = Mirror::start(&dir.path().join("mirror"));
    let root = support::repo_root();
    let (batched_work, single_work) = (dir.path().join("batched"), dir.path().join("single"));
    let batched = Run::lint(&root, &batched_work, &["--no-cache", "--mirror", mirror.value()]);
    let single = Run::lint(&root, &single_work, &["--no-cache", "--no-batch", "--mirror", mirror.value()]);
    assert!(batched.output.status.success(), "the repository does not lint green: {}", describe(&batched.output));
    assert!(batched.statuses().contains_key("robot-shop"), "the umbrella was checked");
    assert_same(&batched, &batched_work, &single, &single_work);
    assert!(batched.processes() < single.processes(), "batching started fewer processes");
}

#[test]
fn batched_and_per_chart_runs_agree_on_a_synthetic_set() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = support::synthetic_repo(dir.path(), 12);
    let (batched_work, single_work) = (dir.path().join("batched"), dir.path().join("single"));
    let batched = Run::lint(&root, &batched_work, &["--no-cache"]);
    let single = Run::lint(&root, &single_work, &["--no-cache", "--no-batch"]);
    assert!(batched.output.status.success(), "{}", describe(&batched.output));
    assert_eq!(batched.statuses().len(), 14, "12 services, the library and the umbrella");
    // The umbrella was checked in pieces (far fewer processes than whole),
    // and its assembled output still equals helm's own, byte for byte.
    assert_same(&batched, &batched_work, &single, &single_work);
    assert!(batched_work.join("pieces").join("shop").is_dir(), "the umbrella was checked in pieces");
}

#[test]
fn batched_and_per_chart_runs_agree_when_charts_are_broken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = support::synthetic_repo(dir.path(), 12);
    // A template that does not parse, and values that break the schema.
    write(&root.join("charts/svc-0003/templates/broken.yaml"), "{{ if .Values.name }}\nkind: ConfigMap\n");
    append(&root.join("charts/svc-0006/values.yaml"), "replicaCount: many\n");
    // An environment value that only the umbrella's prod render sees.
    replace(
        &root.join("helm/shop/values-prod.yaml"),
        "svc-0010:\n  replicaCount: 2\n",
        "svc-0010:\n  replicaCount: many\n",
    );
    let (batched_work, single_work) = (dir.path().join("batched"), dir.path().join("single"));
    let batched = Run::lint(&root, &batched_work, &["--no-cache"]);
    let single = Run::lint(&root, &single_work, &["--no-cache", "--no-batch"]);
    assert_eq!(batched.output.status.code(), Some(1), "{}", describe(&batched.output));
    let statuses = batched.statuses();
    for (chart, status) in &statuses {
        let expected = if ["svc-0003", "svc-0006", "shop"].contains(&chart.as_str()) { "failed" } else { "ok" };
        assert_eq!(status, expected, "{chart}: {}", describe(&batched.output));
    }
    assert_same(&batched, &batched_work, &single, &single_work);
}

#[test]
fn a_document_judged_once_fails_everywhere_it_appears() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = support::synthetic_repo(dir.path(), 6);
    // A manifest kubeconform rejects (a number as ConfigMap data), rendered
    // alike by the service alone and by both environments of the umbrella.
    write(
        &root.join("charts/svc-0002/templates/odd.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: odd\ndata:\n  count: 3\n",
    );
    let (batched_work, single_work) = (dir.path().join("batched"), dir.path().join("single"));
    let batched = Run::lint(&root, &batched_work, &["--no-cache"]);
    let single = Run::lint(&root, &single_work, &["--no-cache", "--no-batch"]);
    assert_same(&batched, &batched_work, &single, &single_work);
    let verdicts = batched.verdicts();
    for (chart, env) in [("svc-0002", "default"), ("shop", "dev"), ("shop", "prod")] {
        for kube in ["1.37.0", "1.36.0"] {
            let id = (chart.to_string(), "validate".to_string(), env.to_string(), kube.to_string());
            assert_eq!(verdicts.get(&id).map(String::as_str), Some("failed"), "{id:?}: {}", describe(&batched.output));
        }
    }
    // The problem is told in the same words wherever the document appears.
    let messages: BTreeSet<String> = batched
        .charts()
        .iter()
        .flat_map(|c| c["steps"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["step"] == "validate" && s["status"] == "failed")
        .map(|s| s["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages.iter().all(|m| m.contains("ConfigMap odd") && m.contains("count")), "{messages:?}");
    // Each distinct document went to kubeconform once: far fewer than the
    // documents of every render (the service's own, and two environments).
    let judged = std::fs::read_dir(batched_work.join("validate")).expect("validate folder").count();
    let rendered_docs: usize = rendered(&batched_work)
        .iter()
        .filter(|(file, _)| file.starts_with("1.37.0/"))
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).matches("\n# Source: ").count())
        .sum();
    assert!(judged > 0 && judged * 2 < rendered_docs, "{judged} documents judged for {rendered_docs} rendered");
}

/// A helm that reports another version and does everything else with the
/// real one: a tool upgrade as far as the cache can tell.
fn helm_reporting(version: &str, dir: &Path) -> PathBuf {
    let real = &support::toolset().helm;
    let script = dir.join("helm");
    write(
        &script,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = version ]; then echo v{version}; exit 0; fi\nexec '{}' \"$@\"\n",
            real.display()
        ),
    );
    let mut permissions = std::fs::metadata(&script).expect("script").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).expect("chmod");
    script
}

#[test]
fn cache_reruns_exactly_the_charts_a_change_reaches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = support::synthetic_repo(dir.path(), 4);
    let work = dir.path().join("work");
    let all = ["common", "svc-0000", "svc-0001", "svc-0002", "svc-0003", "shop"];
    let expect = |run: &Run, checked: &[&str], what: &str| {
        assert!(run.output.status.success(), "{what}: {}", describe(&run.output));
        let statuses = run.statuses();
        for chart in all {
            let want = if checked.contains(&chart) { "ok" } else { "cached" };
            assert_eq!(statuses.get(chart).map(String::as_str), Some(want), "{what}: {chart}\n{statuses:?}");
        }
    };

    let cold = Run::lint(&root, &work, &["--no-cache"]);
    expect(&cold, &all, "cold run");
    let warm = Run::lint(&root, &work, &[]);
    expect(&warm, &[], "warm run");
    assert_eq!(warm.processes(), 0, "a warm run starts no tool process");

    // (i) a file of one service: it and the umbrella over it.
    replace(&root.join("charts/svc-0001/values.yaml"), "LOG_LEVEL: info", "LOG_LEVEL: warn");
    let changed = Run::lint(&root, &work, &[]);
    expect(&changed, &["svc-0001", "shop"], "a service's values changed");
    // The umbrella re-rendered only that service's piece: the service (1
    // lint, 1 render, 2 validations) and one shard per environment (lint
    // and render each) with one validation per Kubernetes version.
    assert!(changed.processes() <= 10, "{} processes after one service changed", changed.processes());

    // (ii) the library: everything that uses it.
    append(&root.join("charts/_common/templates/_meta.tpl"), "\n{{- /* changed by a test */ -}}\n");
    expect(&Run::lint(&root, &work, &[]), &all, "the library changed");

    // (iii) a values file of the umbrella: the umbrella only.
    replace(&root.join("helm/shop/values-prod.yaml"), "svc-0002:\n  replicaCount: 2", "svc-0002:\n  replicaCount: 3");
    expect(&Run::lint(&root, &work, &[]), &["shop"], "an umbrella values file changed");

    // (iv) the helm version (a wrapper that reports another one): all; and
    // back to the real helm, the earlier results are found again.
    let fake = helm_reporting("4.99.0", dir.path());
    let upgraded = Run::lint_with(&root, &work, &[], |c| {
        c.env("XTASK_HELM", &fake);
    });
    expect(&upgraded, &all, "helm reports another version");
    expect(&Run::lint(&root, &work, &[]), &[], "back to the pinned helm");

    // (v) the Kubernetes versions checked (another schema set): all.
    expect(&Run::lint(&root, &work, &["--kube-version", "1.37.0"]), &all, "other Kubernetes versions");

    // A corrupt entry is discarded and re-checked, never trusted; a corrupt
    // umbrella piece only costs that piece.
    let key = warm_key(&root, &work, "svc-0002");
    let entry = work.join("cache").join(&key[..2]).join(format!("{key}.json"));
    assert!(entry.is_file(), "{} is where the cache keeps svc-0002", entry.display());
    write(&entry, "{\"format\": \"robot-shop-xtask lint cache v1\", \"key\": ");
    let repaired = Run::lint(&root, &work, &[]);
    expect(&repaired, &["svc-0002"], "a corrupt entry");
    let text = std::fs::read_to_string(&entry).expect("entry written again");
    assert!(serde_json::from_str::<Value>(&text).is_ok(), "the entry was replaced by a sound one");

    // Every stored piece of svc-0000 in prod (older runs left some under
    // other keys) is truncated; then a change elsewhere makes the umbrella
    // be checked again, reading its pieces.
    let pieces = cache_entries(&work, "shop/prod/svc-0000");
    assert!(!pieces.is_empty(), "the umbrella was stored in pieces");
    for piece in &pieces {
        write(piece, "{\"truncated");
    }
    replace(&root.join("charts/svc-0001/values.yaml"), "LOG_LEVEL: warn", "LOG_LEVEL: error");
    expect(&Run::lint(&root, &work, &[]), &["svc-0001", "shop"], "a corrupt umbrella piece");
    assert!(!cache_entries(&work, "shop/prod/svc-0000").is_empty(), "the piece was recomputed and stored again");
    // And the umbrella assembled from pieces is still helm's own render.
    let whole = dir.path().join("whole");
    let reference = Run::lint(&root, &whole, &["--no-cache", "--no-batch", "--chart", "shop"]);
    assert!(reference.output.status.success(), "{}", describe(&reference.output));
    for kube in ["1.37.0", "1.36.0"] {
        for env in ["dev", "prod"] {
            let rel = format!("rendered/{kube}/shop/{env}.yaml");
            let (a, b) = (std::fs::read(work.join(&rel)).expect(&rel), std::fs::read(whole.join(&rel)).expect(&rel));
            assert!(a == b, "{rel}: the assembled umbrella differs from helm's render");
        }
    }
}

/// The sound cache files whose entry is labelled `chart` (umbrella pieces
/// are labelled `<umbrella>/<env>/<subchart>`).
fn cache_entries(work: &Path, chart: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for shard in std::fs::read_dir(work.join("cache")).expect("cache folder").flatten() {
        for file in std::fs::read_dir(shard.path()).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(file.path()).unwrap_or_default();
            if serde_json::from_str::<Value>(&text).is_ok_and(|v| v["chart"] == chart) {
                found.push(file.path());
            }
        }
    }
    found
}

/// The cache key of `chart` after a warm run (every chart cached).
fn warm_key(root: &Path, work: &Path, chart: &str) -> String {
    let run = Run::lint(root, work, &[]);
    assert!(run.statuses().values().all(|s| s == "cached"), "not warm: {:?}", run.statuses());
    run.cache_key(chart)
}
