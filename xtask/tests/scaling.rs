//! The scaling chapter end to end: the CI matrix on real git histories, the
//! workflow under actionlint, the Argo CD files (drift check, kubeconform,
//! and rendering like the umbrella), the service generator, the consistency
//! checks of `lint`, and the diagrams. Every test runs the built binary with
//! `--root` on a copy of the repository, with real git, helm and kubeconform.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{describe, repo_root, run_ok, xtask, Mirror};

/// The parts of the repository these tests copy: everything the commands
/// read, nothing of the Rust crate or its build output.
const PARTS: [&str; 7] = ["charts", "helm", "service-matrix.yaml", "argocd", "schemas", "README.md", ".github"];

/// A temporary copy of the repository's charts, matrix and generated files.
struct Copy {
    dir: tempfile::TempDir,
}

impl Copy {
    fn new() -> Copy {
        let copy = Copy { dir: tempfile::tempdir().expect("temp dir") };
        for part in PARTS {
            let from = repo_root().join(part);
            if from.is_dir() {
                support::copy_dir(&from, &copy.path().join(part));
            } else if from.is_file() {
                std::fs::copy(&from, copy.path().join(part)).expect("copy file");
            }
        }
        copy
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_else(|err| panic!("read {rel}: {err}"))
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// Replaces exactly one occurrence of `from` in a file.
    fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert_eq!(text.matches(from).count(), 1, "{rel} should contain {from:?} exactly once");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// `xtask --root <copy> <args>`, with the tool's work folder inside the copy.
    fn xtask(&self, args: &[&str]) -> Output {
        xtask().arg("--root").arg(self.path()).args(args).output().expect("run xtask")
    }

    fn git(&self, args: &[&str]) -> String {
        let output = run_ok(
            Command::new("git")
                .args([
                    "-c",
                    "user.name=Scaling Test",
                    "-c",
                    "user.email=scaling@example.invalid",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args)
                .current_dir(self.path()),
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Every file under the copy (but the tool's own output) and its bytes.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("list").map(|e| e.expect("entry")) {
                let path = entry.path();
                if path == self.path().join("target") {
                    continue;
                }
                if entry.file_type().expect("type").is_dir() {
                    stack.push(path);
                } else {
                    files.insert(
                        path.strip_prefix(self.path()).expect("inside").to_path_buf(),
                        std::fs::read(&path).expect("read"),
                    );
                }
            }
        }
        files
    }
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exit code")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The chart names of a `ci-matrix` document, in order, checking its shape.
fn matrix_charts(output: &Output) -> Vec<(String, String, String)> {
    assert_eq!(code(output), 0, "{}", describe(output));
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| panic!("not JSON ({err}): {}", describe(output)));
    let include = json["include"].as_array().unwrap_or_else(|| panic!("no include list: {json}"));
    include
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_else(|| panic!("entry without {k}: {e}")).to_string();
            (field("chart"), field("path"), field("type"))
        })
        .collect()
}

fn names(entries: &[(String, String, String)]) -> Vec<&str> {
    entries.iter().map(|(name, _, _)| name.as_str()).collect()
}

const SERVICES: [&str; 8] = ["web", "catalogue", "user", "cart", "shipping", "payment", "ratings", "dispatch"];

#[test]
fn ci_matrix_lists_what_a_change_reaches_in_dependency_order() {
    let repo = Copy::new();
    repo.write(".gitignore", "/target\n");
    repo.git(&["init", "--quiet", "--initial-branch", "main"]);
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "--quiet", "-m", "the charts"]);

    // Every chart, dependencies first, with its path and kind.
    let all = matrix_charts(&repo.xtask(&["ci-matrix"]));
    assert_eq!(all.len(), 10, "{all:?}");
    assert_eq!(all.first(), Some(&("common".to_string(), "charts/_common".to_string(), "library".to_string())));
    assert_eq!(all.last(), Some(&("robot-shop".to_string(), "helm/robot-shop".to_string(), "umbrella".to_string())));
    for service in SERVICES {
        assert!(
            all.contains(&(service.to_string(), format!("charts/{service}"), "application".to_string())),
            "{service}: {all:?}"
        );
    }

    // Nothing changed: an empty list, which the workflow handles.
    repo.git(&["checkout", "--quiet", "-b", "cart-change"]);
    let none = repo.xtask(&["ci-matrix", "--changed", "--base", "main"]);
    assert_eq!(String::from_utf8_lossy(&none.stdout).trim(), r#"{"include":[]}"#, "{}", describe(&none));

    // Only cart changed: cart and the umbrella that embeds it, in that order.
    let values = repo.read("charts/cart/values.yaml");
    repo.write("charts/cart/values.yaml", &format!("{values}# a change to cart\n"));
    repo.git(&["commit", "--quiet", "-am", "change cart"]);
    let cart = matrix_charts(&repo.xtask(&["ci-matrix", "--changed", "--base", "main"]));
    assert_eq!(names(&cart), ["cart", "robot-shop"]);
    // The default base is main when there is no origin/main.
    assert_eq!(names(&matrix_charts(&repo.xtask(&["ci-matrix", "--changed"]))), ["cart", "robot-shop"]);

    // The library changed: all ten charts, the library first and the umbrella last.
    repo.git(&["checkout", "--quiet", "main"]);
    repo.git(&["checkout", "--quiet", "-b", "library-change"]);
    let template = repo.read("charts/_common/templates/_meta.tpl");
    repo.write("charts/_common/templates/_meta.tpl", &format!("{template}{{{{- /* a change to the library */ -}}}}\n"));
    repo.git(&["commit", "--quiet", "-am", "change the library"]);
    let library = matrix_charts(&repo.xtask(&["ci-matrix", "--changed", "--base", "main"]));
    assert_eq!(library.len(), 10, "{library:?}");
    assert_eq!(library.first().map(|e| e.0.as_str()), Some("common"));
    assert_eq!(library.last().map(|e| e.0.as_str()), Some("robot-shop"));
    let mut sorted = names(&library);
    sorted.sort();
    let mut expected: Vec<&str> = SERVICES.iter().copied().chain(["common", "robot-shop"]).collect();
    expected.sort();
    assert_eq!(sorted, expected);
}

/// `ci-matrix --max-jobs 3` on the repository after a real lint measured
/// every chart: at most three jobs, every chart of the plain matrix in
/// exactly one, each job's estimate the sum of its charts' recorded
/// durations, and the jobs within the largest chart's duration of each other.
#[test]
fn ci_matrix_groups_the_repository_into_three_jobs_balanced_by_measured_durations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let work = dir.path().join("work");
    let mirror = Mirror::start(&work);
    let lint = xtask().env("XTASK_WORK_DIR", &work).args(["lint", "--mirror", mirror.value()]).output().expect("lint");
    assert_eq!(code(&lint), 0, "{}", describe(&lint));

    let charts: Vec<String> = names(&matrix_charts(&xtask().args(["ci-matrix"]).output().expect("ci-matrix")))
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut durations: BTreeMap<String, u64> = BTreeMap::new();
    for chart in &charts {
        let path = work.join("durations").join(format!("{chart}.json"));
        let record: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("lint recorded no duration for {chart}: {err}")),
        )
        .expect("a record is JSON");
        assert_eq!(record["chart"], chart.as_str());
        durations.insert(chart.clone(), record["duration_ms"].as_u64().expect("duration_ms"));
    }

    let output = xtask().env("XTASK_WORK_DIR", &work).args(["ci-matrix", "--max-jobs", "3"]).output().expect("run");
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(stderr(&output).contains("0 chart(s) never measured"), "{}", describe(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let jobs = json["include"].as_array().expect("include");
    assert!(!jobs.is_empty() && jobs.len() <= 3, "{json}");
    let mut seen: Vec<String> = Vec::new();
    let mut loads = Vec::new();
    for job in jobs {
        let members: Vec<String> =
            job["charts"].as_array().expect("charts").iter().map(|c| c.as_str().expect("name").to_string()).collect();
        assert!(!members.is_empty(), "an empty job: {json}");
        let load: u64 = members.iter().map(|c| durations[c]).sum();
        assert_eq!(job["estimate_ms"].as_u64(), Some(load), "{job}");
        // Within a job the charts keep the matrix's dependency order.
        let positions: Vec<usize> =
            members.iter().map(|m| charts.iter().position(|c| c == m).expect("known")).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{job}");
        seen.extend(members);
        loads.push(load);
    }
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    sorted_seen.dedup();
    assert_eq!(sorted_seen.len(), seen.len(), "a chart in two jobs: {json}");
    let mut expected = charts.clone();
    expected.sort();
    assert_eq!(sorted_seen, expected, "every planned chart in a job");
    let largest = durations.values().copied().max().expect("charts");
    let (most, least) = (loads.iter().max().expect("jobs"), loads.iter().min().expect("jobs"));
    assert!(most - least <= largest, "jobs {loads:?} differ by more than the largest chart ({largest} ms)");
}

#[test]
fn ci_matrix_with_a_missing_base_is_an_environment_error() {
    let repo = Copy::new();
    repo.git(&["init", "--quiet", "--initial-branch", "main"]);
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "--quiet", "-m", "the charts"]);
    let output = repo.xtask(&["ci-matrix", "--changed", "--base", "origin/no-such-branch"]);
    assert_eq!(code(&output), 3, "{}", describe(&output));
    assert!(stderr(&output).contains("origin/no-such-branch"), "{}", describe(&output));
    assert!(output.stdout.is_empty(), "no matrix on stdout when there is none: {}", describe(&output));
}

#[test]
fn workflow_passes_actionlint() {
    let workflow = repo_root().join(".github/workflows/charts.yml");
    let text = std::fs::read_to_string(&workflow).expect("the workflow exists");
    for needle in [
        "ci-matrix --changed --base \"$base\" --max-jobs \"$MAX_JOBS\"",
        "fromJSON(needs.plan.outputs.matrix)",
        "CHARTS: ${{ join(matrix.charts, ' ') }}",
        "args+=(--chart \"$chart\")",
        "args+=(--remote-cache \"$REMOTE_CACHE\")",
        "args+=(--remote-cache-write)",
        "REMOTE_CACHE: ${{ vars.XTASK_REMOTE_CACHE }}",
        "SIGNING_KEY: ${{ secrets.XTASK_REMOTE_CACHE_SIGNING_KEY }}",
        "XTASK_REMOTE_CACHE_KEY=",
        "hashFiles('xtask/src/exec/tools/pins.toml')",
        "~/.cache/robot-shop-xtask",
        "target/xtask/cache",
        "target/xtask/durations",
        "registry login",
        "xtask package --changed --base \"$BASE\" --publish \"$REGISTRY\"",
        "xtask gitops --check",
        "xtask graph --check",
        "xtask tools --cluster",
        "--upgrade-from \"$BASE\"",
    ] {
        assert!(text.contains(needle), "the workflow lacks {needle:?}");
    }

    // Built once: only plan runs cargo, every other job that runs the xtask
    // takes plan's binary and tools (.github/actions/xtask) and compiles nothing.
    let parsed: yaml_serde::Value = yaml_serde::from_str(&text).expect("the workflow parses");
    let jobs = parsed["jobs"].as_mapping().expect("jobs");
    let mut using_binary = Vec::new();
    for (name, job) in jobs {
        let name = name.as_str().expect("job name");
        let job_text = yaml_serde::to_string(job).expect("job as text");
        if name == "plan" {
            assert!(job_text.contains("cargo build --release --locked -p xtask"), "plan builds the xtask");
            continue;
        }
        assert!(!job_text.contains("cargo "), "job {name} must not compile: {job_text}");
        if job_text.contains("xtask ") {
            let steps = job["steps"].as_sequence().expect("steps");
            assert!(
                steps.iter().any(|s| s["uses"].as_str() == Some("./.github/actions/xtask")),
                "job {name} runs the xtask without plan's binary"
            );
            assert!(job["needs"].as_str() == Some("plan") || job_text.contains("- plan"), "job {name} needs plan");
            using_binary.push(name.to_string());
        }
    }
    for job in ["generated", "lint", "lint-main", "verify", "diff", "release"] {
        assert!(using_binary.iter().any(|j| j == job), "{job} runs plan's binary: {using_binary:?}");
    }
    // Pull requests read the remote cache; only main's lint jobs hold the key that writes it.
    let lint = yaml_serde::to_string(&jobs[&yaml_serde::Value::from("lint")]).expect("lint");
    let lint_main = &jobs[&yaml_serde::Value::from("lint-main")];
    assert!(!lint.contains("SIGNING_KEY:"), "pull request jobs must not get the signing key");
    assert!(lint_main["if"].as_str().is_some_and(|c| c.contains("refs/heads/main")));
    assert_eq!(jobs[&yaml_serde::Value::from("lint")]["steps"], lint_main["steps"], "one set of lint steps");
    let action = std::fs::read_to_string(repo_root().join(".github/actions/xtask/action.yml")).expect("the action");
    assert!(action.contains("name: xtask") && action.contains("hashFiles('xtask/src/exec/tools/pins.toml')"));

    let actionlint = support::actionlint();
    let output = Command::new(&actionlint).arg(&workflow).current_dir(repo_root()).output().expect("run actionlint");
    assert!(output.status.success(), "actionlint: {}", describe(&output));

    // actionlint really reads the file: a job that needs a job that does not exist fails.
    let broken = tempfile::tempdir().expect("temp dir");
    let path = broken.path().join(".github/workflows/charts.yml");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, text.replace("    needs: plan\n", "    needs: plann\n")).expect("write");
    let output = Command::new(&actionlint).arg(&path).current_dir(broken.path()).output().expect("run actionlint");
    assert!(
        !output.status.success() && String::from_utf8_lossy(&output.stdout).contains("plann"),
        "{}",
        describe(&output)
    );
}

#[test]
fn gitops_check_passes_on_the_repository_and_its_files_pass_kubeconform() {
    let work = tempfile::tempdir().expect("temp dir");
    // A work folder of its own: other tests may be linting the repository at the same time.
    let output = xtask().env("XTASK_WORK_DIR", work.path()).args(["gitops", "--check"]).output().expect("run xtask");
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let err = stderr(&output);
    assert!(err.contains("argocd/ is up to date") && err.contains("valid against Argo CD's CRDs"), "{err}");
    // Each generated file names the command that generates it.
    for file in
        ["argocd/app-of-apps.yaml", "argocd/applications/infrastructure.yaml", "argocd/values/prod/catalogue.yaml"]
    {
        let text = std::fs::read_to_string(repo_root().join(file)).expect(file);
        assert!(text.starts_with("# Generated by `cargo xtask gitops`"), "{file}");
    }
}

#[test]
fn gitops_check_fails_when_the_matrix_changes_and_passes_after_regenerating() {
    let repo = Copy::new();
    repo.edit("service-matrix.yaml", "chart_version: 17.0.2", "chart_version: 17.0.3");
    let before = repo.snapshot();
    let output = repo.xtask(&["gitops", "--check", "--no-validate"]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let err = stderr(&output);
    assert!(err.contains("argocd/applications/infrastructure.yaml differs"), "{err}");
    assert!(err.contains("run `cargo xtask gitops`"), "{err}");
    assert!(before == repo.snapshot(), "--check wrote files");

    run_ok(Command::new(env!("CARGO_BIN_EXE_xtask")).arg("--root").arg(repo.path()).arg("gitops"));
    assert!(repo.read("argocd/applications/infrastructure.yaml").contains("version: 17.0.3"));
    // With the kubeconform validation this time.
    let output = repo.xtask(&["gitops", "--check"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));

    // A store the umbrella no longer installs in an environment loses its
    // Application there, and its values file is removed.
    repo.edit(
        "helm/robot-shop/values-prod.yaml",
        "rabbitmq:\n  # rabbitmq: a three-node cluster.\n",
        "rabbitmq:\n  enabled: false\n",
    );
    run_ok(Command::new(env!("CARGO_BIN_EXE_xtask")).arg("--root").arg(repo.path()).arg("gitops"));
    assert!(!repo.path().join("argocd/values/prod/rabbitmq.yaml").exists());
    assert!(repo.path().join("argocd/values/dev/rabbitmq.yaml").exists());
    let infrastructure = repo.read("argocd/applications/infrastructure.yaml");
    assert_eq!(infrastructure.matches("component: rabbitmq").count(), 2, "{infrastructure}");
}

/// The documents of a `helm template` output, keyed by their `# Source:`.
fn documents(rendered: &str) -> Vec<(String, serde_json::Value)> {
    let mut docs = Vec::new();
    for chunk in rendered.split("\n---\n").map(|c| c.trim_start_matches("---\n")) {
        let source = chunk.lines().find_map(|l| l.strip_prefix("# Source: ")).unwrap_or_default().to_string();
        let value: yaml_serde::Value =
            yaml_serde::from_str(chunk).unwrap_or_else(|err| panic!("not YAML ({err}):\n{chunk}"));
        if !value.is_null() {
            docs.push((source, serde_json::to_value(&value).expect("as JSON")));
        }
    }
    docs
}

/// The claim behind argocd/values: Argo CD deploying one service chart with
/// its generated values file renders exactly what the umbrella renders for
/// that service, in every environment.
#[test]
fn gitops_values_render_each_service_like_the_umbrella() {
    let repo = Copy::new();
    let helm = &support::toolset().helm;
    // The data stores are not compared (their charts come from a registry);
    // without them the umbrella builds offline.
    let chart = repo.read("helm/robot-shop/Chart.yaml");
    let mut kept = Vec::new();
    let mut skip = false;
    for line in chart.lines() {
        if line.trim_start().starts_with("- name:") {
            skip = false;
        }
        if line.contains("oci://") {
            // Drop this entry: its `- name:` and `version:` lines were kept already.
            kept.truncate(kept.len() - 2);
            skip = true;
        }
        if !skip {
            kept.push(line);
        }
    }
    repo.write("helm/robot-shop/Chart.yaml", &(kept.join("\n") + "\n"));
    for service in SERVICES {
        run_ok(Command::new(helm).args(["dependency", "build", &format!("charts/{service}")]).current_dir(repo.path()));
    }
    run_ok(Command::new(helm).args(["dependency", "build", "helm/robot-shop"]).current_dir(repo.path()));

    for env in ["dev", "staging", "prod"] {
        let umbrella = run_ok(
            Command::new(helm)
                .args([
                    "template",
                    "robot-shop",
                    "helm/robot-shop",
                    "-f",
                    &format!("helm/robot-shop/values-{env}.yaml"),
                ])
                .current_dir(repo.path()),
        );
        let umbrella = documents(&String::from_utf8_lossy(&umbrella.stdout));
        for service in SERVICES {
            let prefix = format!("robot-shop/charts/{service}/");
            let mut expected: Vec<String> =
                umbrella.iter().filter(|(s, _)| s.starts_with(&prefix)).map(|(_, v)| v.to_string()).collect();
            let alone = run_ok(
                Command::new(helm)
                    .args([
                        "template",
                        "robot-shop",
                        &format!("charts/{service}"),
                        "-f",
                        &format!("argocd/values/{env}/{service}.yaml"),
                    ])
                    .current_dir(repo.path()),
            );
            let mut actual: Vec<String> =
                documents(&String::from_utf8_lossy(&alone.stdout)).into_iter().map(|(_, v)| v.to_string()).collect();
            expected.sort();
            actual.sort();
            assert!(!expected.is_empty(), "the umbrella rendered nothing for {service} in {env}");
            assert!(expected == actual, "{service} in {env}: Argo CD's render differs from the umbrella's\numbrella: {expected:#?}\nargo cd: {actual:#?}");
        }
    }
}

#[test]
fn new_service_refuses_bad_names_taken_names_and_unknown_dependencies_writing_nothing() {
    let repo = Copy::new();
    let before = repo.snapshot();
    for (args, expected) in [
        (&["../evil", "--port", "8080"][..], "not a valid service name"),
        (&["Bad_Name", "--port", "8080"][..], "not a valid service name"),
        (&["web", "--port", "8080"][..], "the name is in use"),
        (&["loadgen", "--port", "8080", "--deps", "web,nosuch"][..], "has no service nosuch"),
    ] {
        let output = repo.xtask(&[&["new-service"][..], args].concat());
        assert_eq!(code(&output), 2, "{args:?}: {}", describe(&output));
        assert!(stderr(&output).contains(expected), "{args:?}: {}", describe(&output));
        assert!(before == repo.snapshot(), "{args:?} wrote files");
    }
}

#[test]
fn new_service_adds_a_service_that_lints_and_keeps_every_comment() {
    let repo = Copy::new();
    let edited =
        ["service-matrix.yaml", "helm/robot-shop/Chart.yaml", "helm/robot-shop/values.yaml", "charts/web/values.yaml"];
    let originals: Vec<String> = edited.iter().map(|f| repo.read(f)).collect();

    let output = repo.xtask(&["new-service", "loadgen", "--port", "8080", "--deps", "web"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));

    // The chart: one-line templates over the library.
    for file in
        ["Chart.yaml", "values.yaml", "values.schema.json", "templates/deployment.yaml", "templates/networkpolicy.yaml"]
    {
        assert!(repo.path().join("charts/loadgen").join(file).is_file(), "charts/loadgen/{file}");
    }
    for entry in std::fs::read_dir(repo.path().join("charts/loadgen/templates")).expect("templates") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("template");
        assert_eq!(text.trim().lines().count(), 1, "{text}");
    }
    // Every comment of every edited file is still there, and each gained the service.
    for (file, original) in edited.iter().zip(&originals) {
        let now = repo.read(file);
        for line in original.lines().filter(|l| l.trim_start().starts_with('#')) {
            assert!(now.contains(line), "{file} lost the comment {line:?}");
        }
        assert!(now.contains("loadgen"), "{file} does not mention loadgen");
    }
    let web: yaml_serde::Value = yaml_serde::from_str(&repo.read("charts/web/values.yaml")).expect("web values");
    assert!(web["networkPolicy"]["allowedClients"]["loadgen"].is_mapping(), "web does not admit loadgen");

    // The new chart and web (which now admits it) lint; lint's consistency
    // check compares the new matrix entry with the charts.
    let output = repo.xtask(&["lint", "--chart", "loadgen", "--chart", "web"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    // The derived files were regenerated.
    let output = repo.xtask(&["gitops", "--check"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(repo.read("argocd/applications/backend-services.yaml").contains("component: loadgen"));
    let output = repo.xtask(&["graph", "--check"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(repo.read("README.md").contains("loadgen --> web"));

    // The same name a second time is refused.
    let output = repo.xtask(&["new-service", "loadgen", "--port", "8080"]);
    assert_eq!(code(&output), 2, "{}", describe(&output));
}

#[test]
fn lint_fails_naming_both_values_when_the_matrix_and_a_chart_disagree_on_a_port() {
    let repo = Copy::new();
    repo.edit(
        "service-matrix.yaml",
        "  - name: cart\n    type: deployment\n    tier: backend\n    port: 8080",
        "  - name: cart\n    type: deployment\n    tier: backend\n    port: 9090",
    );
    let output = repo.xtask(&["lint", "--chart", "cart"]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains("cart: port: charts/cart/values.yaml containerPort is 8080, service-matrix.yaml says port 9090"),
        "{err}"
    );
    // The clients that dial cart on 8080 are named too.
    assert!(err.contains("shipping: dependsOn.cart.port: charts/shipping/values.yaml says 8080, service-matrix.yaml says cart's port is 9090"), "{err}");
}

#[test]
fn lint_fails_naming_both_values_when_the_matrix_and_a_chart_disagree_on_a_network_policy() {
    // The chart leaves out a client the matrix has.
    let repo = Copy::new();
    repo.edit("charts/catalogue/values.yaml", "    cart: {}\n", "");
    let output = repo.xtask(&["lint", "--chart", "catalogue"]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains("catalogue: NetworkPolicy clients: charts/catalogue/values.yaml networkPolicy.allowedClients is [ratings, web], service-matrix.yaml says [cart, ratings, web]"),
        "{err}"
    );

    // The matrix drops an edge the charts still have.
    let repo = Copy::new();
    repo.edit("service-matrix.yaml", "      - mysql\n      - catalogue\n", "      - mysql\n");
    let output = repo.xtask(&["lint", "--chart", "ratings"]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains("catalogue: NetworkPolicy clients: charts/catalogue/values.yaml networkPolicy.allowedClients is [cart, ratings, web], service-matrix.yaml says [cart, web]"),
        "{err}"
    );
    assert!(err.contains("ratings: dependencies: charts/ratings/values.yaml dependsOn (init containers and egress rules) is [catalogue, mysql], service-matrix.yaml says [mysql]"), "{err}");
}

#[test]
fn the_repository_matrix_agrees_with_the_charts() {
    let work = tempfile::tempdir().expect("temp dir");
    let output = xtask()
        .env("XTASK_WORK_DIR", work.path())
        .args(["--format", "json", "lint", "--chart", "cart"])
        .output()
        .expect("run xtask");
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    let checks = report["repository"].as_array().expect("repository checks");
    assert!(checks.iter().any(|c| c["check"] == "service-matrix" && c["status"] == "ok"), "{checks:?}");
}

#[test]
fn graph_draws_both_views_and_keeps_the_readme_diagram_current() {
    let repo = Copy::new();
    let runtime = run_ok(xtask().arg("--root").arg(repo.path()).arg("graph"));
    let runtime = String::from_utf8_lossy(&runtime.stdout);
    assert!(runtime.starts_with("flowchart LR\n"), "{runtime}");
    for edge in ["ingress --> web", "cart --> redis", "cart --> catalogue", "dispatch --> rabbitmq"] {
        assert!(runtime.contains(edge), "no {edge:?} in:\n{runtime}");
    }
    let dot = run_ok(xtask().arg("--root").arg(repo.path()).args(["graph", "--format", "dot", "--view", "charts"]));
    let dot = String::from_utf8_lossy(&dot.stdout);
    for edge in [
        "\"robot_shop\" -> \"cart\";",
        "\"cart\" -> \"common\";",
        "\"robot_shop\" -> \"mongodb_17_0_2\" [style=dashed];",
    ] {
        assert!(dot.contains(edge), "no {edge:?} in:\n{dot}");
    }

    let output = repo.xtask(&["graph", "--check"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    // A new edge in the matrix makes the README stale until it is regenerated.
    repo.edit("service-matrix.yaml", "    dependencies:\n      - rabbitmq\n    env_vars:\n      - AMQP_HOST: \"rabbitmq\"\n      - DISPATCH", "    dependencies:\n      - rabbitmq\n      - redis\n    env_vars:\n      - AMQP_HOST: \"rabbitmq\"\n      - DISPATCH");
    let output = repo.xtask(&["graph", "--check"]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert!(
        stderr(&output).contains("README.md") && stderr(&output).contains("cargo xtask graph --write"),
        "{}",
        describe(&output)
    );
    run_ok(xtask().arg("--root").arg(repo.path()).args(["graph", "--write"]));
    assert!(repo.read("README.md").contains("dispatch --> redis"));
    let output = repo.xtask(&["graph", "--check"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
}
