//! `cargo xtask lint` as a drop-in for chart-testing: on a repository in
//! ct's layout, written here, the real `ct lint` (installed by `xtask tools
//! --chart-testing`, with the real yamllint, yamale and helm-unittest) and
//! `cargo xtask lint` must reach the same verdict for every chart and for
//! every values file ct got to, and fail each failing chart at the same check.
//!
//! The fixture has a chart that depends on its sibling `valkey` through an
//! OCI registry: ct pulls it from a real distribution registry on loopback
//! (the sibling is pushed there first), the xtask resolves it in the
//! repository and needs no registry at all (it runs before the registry
//! starts). Everything runs offline.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{describe, run_ok, xtask, TestRegistry};

/// What `xtask tools --chart-testing` reports.
struct CtTools {
    ct: PathBuf,
    etc: PathBuf,
    plugins: PathBuf,
    python_bin: PathBuf,
    helm: PathBuf,
}

fn ct_tools() -> CtTools {
    let output = run_ok(xtask().args(["tools", "--chart-testing"]));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |name: &str| -> PathBuf {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}\t")))
            .and_then(|rest| rest.split('\t').nth(1))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("no {name} line in:\n{stdout}"))
    };
    let yamllint = field("yamllint");
    CtTools {
        ct: field("ct"),
        etc: field("ct-etc"),
        plugins: field("helm-unittest"),
        python_bin: yamllint.parent().expect("bin folder").to_path_buf(),
        helm: field("helm"),
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn git(root: &Path, args: &[&str]) {
    run_ok(
        Command::new("git")
            .current_dir(root)
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"])
            .args(args),
    );
}

const DEPLOYMENT: &str = r#"{{- if not .Values.image.tag }}
{{- fail "image.tag must be set (the ci values set it)" }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-{{ .Chart.Name }}
  labels:
    app.kubernetes.io/name: {{ .Chart.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .Chart.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ .Chart.Name }}
    spec:
      containers:
        - name: {{ .Chart.Name }}
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          ports:
            - containerPort: {{ .Values.service.port }}
"#;

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-{{ .Chart.Name }}
spec:
  selector:
    app.kubernetes.io/name: {{ .Chart.Name }}
  ports:
    - port: {{ .Values.service.port }}
"#;

const VALUES: &str = "replicaCount: 1\nimage:\n  repository: nginx\n  tag: \"1.27\"\nservice:\n  port: 8080\n";

fn unit_test(replicas: u32, expected: u32) -> String {
    format!(
        "suite: deployment\ntemplates:\n  - deployment.yaml\ntests:\n  - it: runs the configured replicas\n    set:\n      replicaCount: {replicas}\n      image.tag: \"1.0\"\n    asserts:\n      - equal:\n          path: spec.replicas\n          value: {expected}\n"
    )
}

/// A plain chart that passes every check.
fn chart(root: &Path, name: &str, version: &str) {
    write(
        root,
        &format!("charts/{name}/Chart.yaml"),
        &format!("apiVersion: v2\nname: {name}\ndescription: {name} for the chart-testing comparison\nversion: {version}\nappVersion: \"1.0\"\nmaintainers:\n  - name: octocat\n"),
    );
    write(root, &format!("charts/{name}/values.yaml"), VALUES);
    write(root, &format!("charts/{name}/templates/deployment.yaml"), DEPLOYMENT);
    write(root, &format!("charts/{name}/templates/service.yaml"), SERVICE);
    write(root, &format!("charts/{name}/tests/deployment_test.yaml"), &unit_test(2, 2));
}

/// The fixture: ct's layout, one chart per check, a sibling dependency
/// through `registry`, a `main` history and a feature branch on top.
fn fixture(root: &Path, registry: &str) {
    write(
        root,
        "ct.yaml",
        "# chart-testing configuration of the fixture\n\
         chart-dirs:\n  - charts\n\
         target-branch: main\n\
         excluded-charts:\n  - excluded\n\
         # ct would look every maintainer up on the git host's website\n\
         validate-maintainers: false\n\
         additional-commands:\n  - helm unittest {{ .Path }}\n\
         # the sibling dependency comes from a plain-HTTP registry on loopback\n\
         helm-dependency-extra-args:\n  - --plain-http\n",
    );
    chart(root, "valkey", "1.0.0");
    chart(root, "bumped", "0.1.0");

    // Depends on its sibling through the registry. Its defaults cannot be
    // rendered (no image tag: the template fails), but ct lints only with the
    // ci values, which set one: the xtask must not render the defaults either.
    chart(root, "app", "0.2.0");
    write(root, "charts/app/values.yaml", &VALUES.replace("tag: \"1.27\"", "tag: \"\""));
    write(root, "charts/app/ci/default-values.yaml", "image:\n  tag: \"1.27\"\n");
    write(root, "charts/app/ci/ha-values.yaml", "replicaCount: 3\nimage:\n  tag: \"1.27\"\n");
    write(
        root,
        "charts/app/Chart.yaml",
        &format!(
            "apiVersion: v2\nname: app\ndescription: app for the chart-testing comparison\nversion: 0.2.0\nmaintainers:\n  - name: octocat\ndependencies:\n  - name: valkey\n    version: 1.0.0\n    repository: oci://{registry}/charts\n"
        ),
    );

    // One good and one failing ci values file: ct reaches both (glob order).
    // The bad one breaks the values schema, which helm lint checks (a
    // template's `fail` would not do: helm 4 lints in a mode that only logs it).
    chart(root, "web", "1.0.0");
    write(
        root,
        "charts/web/values.schema.json",
        "{\"type\": \"object\", \"properties\": {\"replicaCount\": {\"type\": \"integer\"}}}\n",
    );
    write(root, "charts/web/ci/good-values.yaml", "replicaCount: 2\n");
    write(root, "charts/web/ci/zz-bad-values.yaml", "replicaCount: many\n");

    // Chart.yaml with a key ct's schema does not know.
    chart(root, "extra", "0.1.0");
    let text = std::fs::read_to_string(root.join("charts/extra/Chart.yaml")).unwrap();
    write(root, "charts/extra/Chart.yaml", &format!("{text}team: payments\n"));

    // A maintainer written the wrong way (`mail` for `email`).
    chart(root, "maint", "0.1.0");
    let text = std::fs::read_to_string(root.join("charts/maint/Chart.yaml")).unwrap();
    write(
        root,
        "charts/maint/Chart.yaml",
        &text.replace("  - name: octocat\n", "  - name: octocat\n    mail: octocat@example.com\n"),
    );

    // yamllint: trailing spaces in values.yaml.
    chart(root, "spaces", "0.1.0");
    write(root, "charts/spaces/values.yaml", &VALUES.replace("replicaCount: 1\n", "replicaCount: 1   \n"));

    // yamllint: a ci values file that is not YAML (ct stops at yamllint).
    chart(root, "notyaml", "0.1.0");
    write(root, "charts/notyaml/ci/broken-values.yaml", "replicaCount: [1\nimage: {}\n");

    // A values-<env>.yaml file is not ct's: ct lints the defaults, which
    // render YAML that does not parse.
    chart(root, "envonly", "0.1.0");
    write(root, "charts/envonly/templates/region.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: region\ndata:\n  region: {{ .Values.region | default \"[unclosed\" }}\n");
    write(root, "charts/envonly/values-prod.yaml", "region: eu\n");
    std::fs::remove_dir_all(root.join("charts/envonly/tests")).unwrap();

    // A unit test that fails.
    chart(root, "untested", "0.1.0");
    write(root, "charts/untested/tests/deployment_test.yaml", &unit_test(2, 3));

    // helm lint fails with the defaults (a template that does not parse).
    chart(root, "lintfail", "0.1.0");
    write(root, "charts/lintfail/templates/broken.yaml", "data: {{ .Values.replicaCount | nosuchfunction }}\n");

    // Only a helm lint warning (no templates/): ct lints without --strict.
    write(root, "charts/notpl/Chart.yaml", "apiVersion: v2\nname: notpl\ndescription: values only\nversion: 0.1.0\n");
    write(root, "charts/notpl/values.yaml", "enabled: false\n");

    // A library chart without values.yaml: ct's yamllint fails on the
    // missing file (and never gets to its unit tests).
    write(
        root,
        "charts/library/Chart.yaml",
        "apiVersion: v2\nname: library\ndescription: named templates\ntype: library\nversion: 0.1.0\n",
    );
    write(root, "charts/library/templates/_name.tpl", "{{- define \"library.name\" -}}{{ .Chart.Name }}{{- end -}}\n");

    // Broken, but excluded in ct.yaml: neither tool looks at it.
    chart(root, "excluded", "0.1.0");
    write(root, "charts/excluded/templates/broken.yaml", "{{ nope }}\n");

    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "charts"]);
    // ct compares with <remote>/<target-branch>: origin/main.
    git(root, &["remote", "add", "origin", &root.join("origin.git").display().to_string()]);
    git(root, &["update-ref", "refs/remotes/origin/main", "HEAD"]);
    git(root, &["checkout", "-q", "-b", "feature"]);
    // app changes without a version bump; bumped changes with one.
    let values = std::fs::read_to_string(root.join("charts/app/values.yaml")).unwrap();
    write(root, "charts/app/values.yaml", &values.replace("replicaCount: 1", "replicaCount: 2"));
    let text = std::fs::read_to_string(root.join("charts/bumped/Chart.yaml")).unwrap();
    write(root, "charts/bumped/Chart.yaml", &text.replace("version: 0.1.0", "version: 0.2.0"));
    write(root, "charts/bumped/values.yaml", &VALUES.replace("replicaCount: 1", "replicaCount: 2"));
    git(root, &["commit", "-q", "-am", "change app and bumped"]);
}

/// A verdict: per chart `ok`/`failed` and the check that failed first (in
/// ct's order), and per values file that was linted, `ok`/`failed`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Verdicts {
    charts: BTreeMap<String, (bool, Option<String>)>,
    values: BTreeMap<(String, String), bool>,
}

/// Reads ct's output: the `Linting chart` sections and the result list.
fn parse_ct(stdout: &str) -> Verdicts {
    #[derive(Default)]
    struct Section {
        values_files: Vec<String>,
        lint_runs: usize,
        schema_failed: bool,
        yamllint_failed: bool,
    }
    let quoted_path = |line: &str| -> String {
        let start = line
            .find("path: \\\"")
            .map(|i| i + 8)
            .or_else(|| line.find("path: \"").map(|i| i + 7))
            .expect("path in ct line");
        line[start..].split(['"', '\\']).next().unwrap().to_string()
    };
    let yamllint_problem = |line: &str| {
        // A file yamllint cannot open (a chart without values.yaml).
        if line.starts_with("[Errno ") {
            return true;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        words.len() > 2
            && words[1] == "error"
            && words[0].split(':').count() == 2
            && words[0].split(':').all(|p| p.parse::<u32>().is_ok())
    };
    // `charts/<name>/...` -> `charts/<name>`.
    let chart_of = |file: &str| file.split('/').take(2).collect::<Vec<_>>().join("/");
    // yamllint prints the file's path alone on a line before its problems.
    let yamllint_file = |line: &str| {
        let line = line.trim();
        (line.starts_with("charts/") && (line.ends_with(".yaml") || line.ends_with(".yml")) && !line.contains(' '))
            .then(|| line.to_string())
    };
    let mut yaml_owner: Option<String> = None;
    let mut sections: BTreeMap<String, Section> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut verdicts = Verdicts::default();
    for line in stdout.lines() {
        if line.starts_with("Linting chart \"") {
            let path = quoted_path(line);
            sections.entry(path.clone()).or_default();
            current = Some(path);
        } else if let Some(rest) = line.strip_prefix("Linting chart with values file \"") {
            let file = rest.split('"').next().unwrap().to_string();
            if let Some(section) = current.as_ref().and_then(|c| sections.get_mut(c)) {
                section.values_files.push(file);
            }
        } else if line.starts_with("==> Linting ") {
            if let Some(section) = current.as_ref().and_then(|c| sections.get_mut(c)) {
                section.lint_runs += 1;
            }
        } else if line.contains("Validation failed!") {
            if let Some(section) = current.as_ref().and_then(|c| sections.get_mut(c)) {
                section.schema_failed = true;
            }
        } else if let Some(file) = yamllint_file(line) {
            // yamllint's own header: the file its next problem lines are about.
            yaml_owner = Some(chart_of(&file));
        } else if yamllint_problem(line) {
            // ct copies yamllint's output from a pipe, so a line can arrive
            // after ct has moved on to the next chart: credit it to the chart
            // of the file it names, not to the section it landed in.
            let owner = line
                .split('\'')
                .nth(1)
                .filter(|_| line.starts_with("[Errno "))
                .map(chart_of)
                .or_else(|| yaml_owner.clone())
                .or_else(|| current.clone());
            if let Some(owner) = owner {
                sections.entry(owner).or_default().yamllint_failed = true;
            }
        } else if let Some(rest) = line.trim_start().strip_prefix("✔︎ ").or_else(|| line.trim_start().strip_prefix("✖︎ "))
        {
            let ok = line.trim_start().starts_with("✔︎");
            let path = quoted_path(rest);
            let section = sections.remove(&path).unwrap_or_default();
            let stage = (!ok).then(|| {
                if rest.contains("Needs a version bump") {
                    "version-increment"
                } else if section.schema_failed {
                    "chart-schema"
                } else if section.yamllint_failed || (section.lint_runs == 0 && rest.ends_with("exit status 255")) {
                    // 255 is yamllint's `sys.exit(-1)` for a file it cannot open (a
                    // chart without values.yaml); its message reaches ct's output
                    // only sometimes. A failing helm plugin (a command) exits 1.
                    "yamllint"
                } else if rest.contains("maintainers") {
                    "maintainers"
                } else if section.lint_runs == 0 {
                    "command"
                } else {
                    "lint"
                }
                .to_string()
            });
            let reached_lint = section.lint_runs > 0;
            let files = if section.values_files.is_empty() {
                vec!["default".to_string()]
            } else {
                section.values_files.clone()
            };
            if reached_lint {
                // ct stops at the first failing values file: all before it passed.
                for (i, file) in files.iter().enumerate().take(section.lint_runs) {
                    let failed = !ok && stage.as_deref() == Some("lint") && i + 1 == section.lint_runs;
                    verdicts.values.insert((path.clone(), file.clone()), !failed);
                }
            }
            verdicts.charts.insert(path, (ok, stage));
        }
    }
    verdicts
}

/// Reads `xtask lint --format json`: chart verdicts, the first failing ct
/// check, and per environment (values file) the verdict of lint, render and
/// validate together. `reached` limits the values files to those ct got to.
fn parse_xtask(report: &serde_json::Value, reached: &BTreeMap<(String, String), bool>) -> Verdicts {
    const CT_ORDER: [&str; 5] = ["version-increment", "chart-schema", "yamllint", "maintainers", "command"];
    let mut verdicts = Verdicts::default();
    for chart in report["charts"].as_array().expect("charts in the report") {
        let path = chart["path"].as_str().unwrap().to_string();
        let ok = chart["status"] != "failed";
        let steps = chart["steps"].as_array().unwrap();
        let failed = |s: &&serde_json::Value| s["status"] == "failed";
        let stage = (!ok).then(|| {
            CT_ORDER
                .iter()
                .find(|name| steps.iter().filter(failed).any(|s| s["step"] == **name))
                .map(|s| s.to_string())
                .unwrap_or_else(|| "lint".to_string())
        });
        for ((chart_path, file), _) in reached.iter().filter(|((p, _), _)| *p == path) {
            let env = match file.as_str() {
                "default" => "default".to_string(),
                file => {
                    let name = Path::new(file).file_name().unwrap().to_string_lossy();
                    format!("ci/{}", name.trim_end_matches("-values.yaml"))
                }
            };
            let env_failed = steps.iter().filter(failed).any(|s| s["env"] == env.as_str());
            let env_ok = steps.iter().any(|s| s["env"] == env.as_str()) && !env_failed;
            verdicts.values.insert((chart_path.clone(), file.clone()), env_ok);
        }
        verdicts.charts.insert(path, (ok, stage));
    }
    verdicts
}

fn run_xtask(root: &Path, work: &Path, extra: &[&str]) -> serde_json::Value {
    let output = xtask()
        .env("XTASK_WORK_DIR", work)
        .arg("--root")
        .arg(root)
        .args(["--format", "json", "lint"])
        .args(extra)
        .output()
        .expect("run xtask lint");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| panic!("no JSON report ({err}): {}", describe(&output)))
}

fn run_ct(tools: &CtTools, root: &Path, helm_home: &Path, args: &[&str]) -> String {
    let mut path = vec![
        tools.helm.parent().unwrap().to_path_buf(),
        tools.python_bin.clone(),
        tools.ct.parent().unwrap().to_path_buf(),
    ];
    path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    let output = Command::new(&tools.ct)
        .current_dir(root)
        .args(args)
        .arg("--config")
        .arg("ct.yaml")
        .arg("--lint-conf")
        .arg(tools.etc.join("lintconf.yaml"))
        .arg("--chart-yaml-schema")
        .arg(tools.etc.join("chart_schema.yaml"))
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("HELM_PLUGINS", &tools.plugins)
        .env("HELM_CONFIG_HOME", helm_home.join("config"))
        .env("HELM_CACHE_HOME", helm_home.join("cache"))
        .env("HELM_DATA_HOME", helm_home.join("data"))
        .output()
        .expect("run ct");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stdout.contains("All charts linted")
            || stdout.contains("failed processing charts")
            || stdout.contains("No chart changes detected"),
        "ct did not get to its results (a dependency build failure stops it): {}",
        describe(&output)
    );
    // What ct's tools print on stderr (yamllint's "[Errno 2] ... 'charts/x/values.yaml'"
    // for a missing file) reaches ct's stdout or not depending on timing; put it
    // first, where the parser credits each such line to the chart of the file it names.
    format!("{stderr}\n{stdout}")
}

/// Copies a folder tree (the fixture, for ct, whose dependency builds
/// write into chart folders).
fn copy_tree(from: &Path, to: &Path) {
    run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

#[test]
fn xtask_lint_gives_ct_lints_verdicts() {
    let tools = ct_tools();
    let temp = tempfile::tempdir().unwrap();
    let xtask_root = temp.path().join("xtask");
    // The registry's address is in Chart.yaml, so it is chosen first; the
    // registry itself only starts after the xtask ran, which needs none.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    fixture(&xtask_root, &format!("127.0.0.1:{port}"));
    let ct_root = temp.path().join("ct");
    copy_tree(&xtask_root, &ct_root);

    let all = run_xtask(&xtask_root, &temp.path().join("work"), &[]);
    let changed = run_xtask(&xtask_root, &temp.path().join("work-changed"), &["--changed"]);

    // ct needs the sibling in the registry for `helm dependency build`.
    let registry = TestRegistry::start_on(port);
    let archives = temp.path().join("archives");
    run_ok(
        Command::new(&tools.helm)
            .args(["package", "--destination"])
            .arg(&archives)
            .arg(xtask_root.join("charts/valkey")),
    );
    run_ok(
        Command::new(&tools.helm)
            .arg("push")
            .arg(archives.join("valkey-1.0.0.tgz"))
            .arg(format!("oci://{}/charts", registry.host()))
            .arg("--plain-http")
            .env("HELM_CONFIG_HOME", temp.path().join("helm/config")),
    );
    let ct_all = run_ct(&tools, &ct_root, &temp.path().join("helm"), &["lint", "--all"]);
    let ct_changed = run_ct(&tools, &ct_root, &temp.path().join("helm"), &["lint"]);

    let expected_ct = parse_ct(&ct_all);
    let got = parse_xtask(&all, &expected_ct.values);
    assert_eq!(got, expected_ct, "ct lint --all and xtask lint disagree\n--- ct\n{ct_all}\n--- xtask\n{all:#}");

    // Not a comparison of two broken runs: the fixture's verdicts as designed.
    let verdict =
        |path: &str| expected_ct.charts.get(path).cloned().unwrap_or_else(|| panic!("{path} missing: {expected_ct:?}"));
    for ok in ["charts/app", "charts/valkey", "charts/bumped", "charts/notpl"] {
        assert_eq!(verdict(ok), (true, None), "{ok}");
    }
    for (path, stage) in [
        ("charts/extra", "chart-schema"),
        ("charts/maint", "chart-schema"),
        ("charts/spaces", "yamllint"),
        ("charts/notyaml", "yamllint"),
        ("charts/untested", "command"),
        ("charts/lintfail", "lint"),
        ("charts/envonly", "lint"),
        ("charts/library", "yamllint"),
        ("charts/web", "lint"),
    ] {
        assert_eq!(verdict(path), (false, Some(stage.to_string())), "{path}");
    }
    assert!(!expected_ct.charts.contains_key("charts/excluded"));
    // yamllint's own syntax problem, with its position, though libyaml looked first.
    let notyaml = all["charts"].as_array().unwrap().iter().find(|c| c["path"] == "charts/notyaml").expect("notyaml");
    let yamllint =
        notyaml["steps"].as_array().unwrap().iter().find(|s| s["step"] == "yamllint").expect("yamllint step");
    let message = yamllint["message"].as_str().unwrap_or_default();
    assert!(message.contains("syntax error") && message.contains("broken-values.yaml"), "{message}");
    assert_eq!(expected_ct.values.get(&("charts/web".into(), "charts/web/ci/good-values.yaml".into())), Some(&true));
    assert_eq!(expected_ct.values.get(&("charts/web".into(), "charts/web/ci/zz-bad-values.yaml".into())), Some(&false));
    assert!(
        !expected_ct.values.contains_key(&("charts/app".into(), "default".into())),
        "ct does not lint with the defaults when ci values exist"
    );

    // Changed charts against origin/main: the version-increment check.
    let expected_changed = parse_ct(&ct_changed);
    let got_changed = parse_xtask(&changed, &expected_changed.values);
    assert_eq!(
        got_changed, expected_changed,
        "ct lint and xtask lint --changed disagree\n--- ct\n{ct_changed}\n--- xtask\n{changed:#}"
    );
    assert_eq!(expected_changed.charts.get("charts/app"), Some(&(false, Some("version-increment".to_string()))));
    assert_eq!(expected_changed.charts.get("charts/bumped"), Some(&(true, None)));
}

#[test]
fn in_repo_resolution_can_be_turned_off() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("repo");
    // Nothing listens on this port: a pull must fail.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    fixture(&root, &format!("127.0.0.1:{port}"));

    let resolved = run_xtask(&root, &temp.path().join("work"), &["--chart", "app"]);
    let app = &resolved["charts"].as_array().unwrap()[0];
    assert_eq!(app["status"], "ok", "{resolved:#}");

    write(&root, "xtask.toml", "in-repo-dependencies = false\n");
    let pulled = run_xtask(&root, &temp.path().join("work-off"), &["--chart", "app"]);
    let app = &pulled["charts"].as_array().unwrap()[0];
    let dependencies =
        app["steps"].as_array().unwrap().iter().find(|s| s["step"] == "dependencies").expect("dependencies step");
    assert_eq!(dependencies["status"], "failed", "{pulled:#}");
    assert!(
        dependencies["message"].as_str().unwrap().contains(&format!("127.0.0.1:{port}")),
        "the failed pull names the registry: {pulled:#}"
    );
}

#[test]
fn ct_results_are_cached_and_keyed_on_files_outside_the_package() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("repo");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    fixture(&root, &format!("127.0.0.1:{port}"));
    // Unit tests and ci values are often left out of the package; the
    // checks read them all the same, so a change to them must count.
    write(&root, "charts/valkey/.helmignore", "tests/\nci/\n");
    let work = temp.path().join("work");
    let status = |report: &serde_json::Value| report["charts"][0]["status"].as_str().unwrap().to_string();

    let first = run_xtask(&root, &work, &["--chart", "valkey"]);
    assert_eq!(status(&first), "ok", "{first:#}");
    let warm = run_xtask(&root, &work, &["--chart", "valkey"]);
    assert_eq!(status(&warm), "cached", "{warm:#}");
    let steps: Vec<&str> =
        warm["charts"][0]["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(
        steps.contains(&"chart-schema") && steps.contains(&"command"),
        "ct's steps are stored with the rest: {steps:?}"
    );

    write(&root, "charts/valkey/tests/deployment_test.yaml", &unit_test(2, 3));
    let changed = run_xtask(&root, &work, &["--chart", "valkey"]);
    assert_eq!(status(&changed), "failed", "a changed unit test is run again: {changed:#}");
}
