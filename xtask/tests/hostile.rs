//! Hostile pull requests: a corpus of repositories that try to write outside
//! the work folder or read outside the repository, each run through `lint`,
//! `diff` and `package --publish` (to a real registry on loopback).
//!
//! Every case starts from a git repository holding this project's charts on
//! `main` (the umbrella without its Bitnami dependencies, which need the
//! mirror) and changes it on a branch, as a pull request would. Beside the
//! repository lie a canary folder, whose every file and name is recorded
//! before and compared after, and a canary secret whose token must appear in
//! no output, no file the tool wrote, no archive and no registry blob. Each
//! run must exit 1 naming the file and the reason, and in `lint` the charts
//! the attack does not touch still get their verdict.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{describe, xtask, TestRegistry};

/// A service chart that no case touches: its verdict must still be given.
const BYSTANDER: &str = "catalogue";

struct Case {
    /// The repository (a temporary folder).
    repo: tempfile::TempDir,
    /// Outside the repository: `canary/` (must not change) and `secret`.
    outside: tempfile::TempDir,
    token: String,
}

impl Case {
    fn new() -> Case {
        let outside = tempfile::tempdir().expect("temp dir");
        let token = format!("CANARY-{}-{}", std::process::id(), outside.path().display().to_string().len());
        std::fs::create_dir_all(outside.path().join("canary/sub")).expect("mkdir");
        std::fs::write(outside.path().join("canary/sub/kept.txt"), "do not touch\n").expect("write");
        std::fs::write(outside.path().join("secret"), format!("password: {token}\n")).expect("write");
        let case = Case { repo: tempfile::tempdir().expect("temp dir"), outside, token };
        let source = support::repo_root();
        support::copy_dir(&source.join("charts"), &case.root().join("charts"));
        support::copy_dir(&source.join("helm/robot-shop"), &case.root().join("helm/robot-shop"));
        let umbrella = case.root().join("helm/robot-shop/Chart.yaml");
        let text = std::fs::read_to_string(&umbrella).expect("umbrella Chart.yaml");
        std::fs::write(&umbrella, without_remote(&text)).expect("write umbrella");
        case.write(".gitignore", "/target\n");
        case.git(&["init", "--quiet", "--initial-branch", "main"]);
        case.git(&["config", "user.name", "Hostile Test"]);
        case.git(&["config", "user.email", "hostile-test@example.invalid"]);
        case.git(&["config", "commit.gpgsign", "false"]);
        case.git(&["add", "--all"]);
        case.git(&["commit", "--quiet", "--message", "charts"]);
        case.git(&["checkout", "--quiet", "-b", "pull-request"]);
        case
    }

    fn root(&self) -> &Path {
        self.repo.path()
    }

    fn canary(&self) -> PathBuf {
        self.outside.path().join("canary")
    }

    fn secret(&self) -> PathBuf {
        self.outside.path().join("secret")
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn link(&self, rel: &str, target: &Path) {
        let path = self.root().join(rel);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(target, path).expect("symlink");
    }

    /// Puts `entry` (YAML lines of one list item) first in cart's dependencies.
    fn add_cart_dependency(&self, entry: &str) {
        let path = self.root().join("charts/cart/Chart.yaml");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("dependencies:\n"), "cart has dependencies");
        std::fs::write(&path, text.replacen("dependencies:\n", &format!("dependencies:\n{entry}"), 1)).expect("write");
    }

    fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git").arg("-C").arg(self.root()).args(args).output().expect("run git");
        assert!(output.status.success(), "git {args:?}: {}", describe(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn xtask(&self, args: &[&str]) -> Output {
        xtask().env_remove("XTASK_WORK_DIR").arg("--root").arg(self.root()).args(args).output().expect("run xtask")
    }

    /// Runs lint, diff and package --publish; each must refuse with exit 1
    /// and name `file` and `reason`; nothing outside may change or leak.
    fn attack(&self, file: &str, reason: &str) {
        let registry = TestRegistry::start();
        let before = snapshot(&self.canary());
        let url = format!("oci://{}/charts", registry.host());
        let runs: Vec<(&str, Output)> = vec![
            ("lint", self.xtask(&["--format", "json", "lint"])),
            ("diff", self.xtask(&["diff", "--base", "main"])),
            ("package", self.xtask(&["package", "--publish", &url, "--plain-http"])),
        ];
        for (command, output) in &runs {
            let shown = describe(output);
            assert_eq!(output.status.code(), Some(1), "{command} must refuse with exit 1: {shown}");
            assert!(shown.contains(file), "{command} must name {file}: {shown}");
            assert!(shown.contains(reason), "{command} must say {reason:?}: {shown}");
            assert!(!shown.contains(&self.token), "{command} printed the secret: {shown}");
        }
        // lint still judges the charts the attack does not reach.
        let lint: serde_json::Value = serde_json::from_slice(&runs[0].1.stdout)
            .unwrap_or_else(|err| panic!("lint --format json ({err}): {}", describe(&runs[0].1)));
        let bystander = lint["charts"].as_array().and_then(|c| c.iter().find(|c| c["name"] == BYSTANDER));
        let status = bystander.map(|c| c["status"].as_str().unwrap_or_default().to_string());
        assert_eq!(status.as_deref(), Some("ok"), "{BYSTANDER} keeps its verdict: {}", describe(&runs[0].1));

        assert_eq!(snapshot(&self.canary()), before, "the canary folder outside the repository changed");
        assert_eq!(std::fs::read_dir(self.outside.path()).expect("list").count(), 2, "nothing new beside it");
        let secret_free = |dir: &Path| {
            for (path, bytes) in readable_files(dir) {
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(&self.token),
                    "the secret leaked into {}",
                    path.display()
                );
            }
        };
        secret_free(&self.root().join("target"));
        secret_free(&registry.storage());
        // Nothing was published.
        assert!(readable_files(&registry.storage()).is_empty(), "a refused release pushed something");
    }
}

/// Every file below `dir` by path and content (a link's own target text).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in walk(dir) {
        let meta = entry.symlink_metadata().expect("stat");
        let bytes = if meta.is_file() { std::fs::read(&entry).expect("read") } else { Vec::new() };
        files.insert(entry.strip_prefix(dir).expect("below").display().to_string(), bytes);
    }
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&path));
        }
    }
    out
}

/// Every regular file below `dir` (links not followed), gzip streams
/// (archives, registry blobs) decompressed, so a secret inside is seen.
fn readable_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for path in walk(dir) {
        if !path.symlink_metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            match flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut plain) {
                Ok(_) => plain,
                Err(_) => bytes,
            }
        } else {
            bytes
        };
        files.push((path, bytes));
    }
    files
}

/// The umbrella's Chart.yaml without its remote (Bitnami) entries.
fn without_remote(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("- name:") {
            skipping = ["mongodb", "mysql", "redis", "rabbitmq"].iter().any(|b| trimmed == format!("- name: {b}"));
        } else if !line.starts_with(' ') && !line.is_empty() {
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn a_chart_name_that_climbs_out_of_the_stage_is_refused_where_it_is_read() {
    let case = Case::new();
    let climb = "../".repeat(30);
    let target = format!("{climb}{}", case.canary().join("pwned").display());
    case.write(
        "charts/evil/Chart.yaml",
        &format!("apiVersion: v2\nname: {target}\nversion: 1.0.0\ntype: application\n"),
    );
    case.write("charts/evil/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: evil\n");
    case.attack("charts/evil/Chart.yaml:2:7", "chart name");
}

#[test]
fn a_link_to_a_secret_outside_is_refused_and_its_content_goes_nowhere() {
    let case = Case::new();
    case.link("charts/cart/templates/NOTES.txt", &case.secret());
    case.write(
        "charts/cart/templates/leak.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\ndata:\n  notes: {{ .Files.Get \"templates/NOTES.txt\" | quote }}\n",
    );
    case.attack("charts/cart/templates/NOTES.txt", "outside the repository");
}

#[test]
fn a_linked_folder_that_leads_out_is_refused() {
    let case = Case::new();
    case.link("charts/cart/files", case.outside.path());
    case.attack("charts/cart/files", "outside the repository");
}

#[test]
fn a_dependency_alias_that_climbs_is_refused_with_its_place() {
    let case = Case::new();
    let path = case.root().join("helm/robot-shop/Chart.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let cart = "    repository: \"file://../../charts/cart\"\n";
    let text = text.replacen(cart, &format!("{cart}    alias: ../../../x\n"), 1);
    assert!(text.contains("alias: ../../../x"), "the umbrella lists cart as file://../../charts/cart");
    std::fs::write(&path, text).expect("write");
    case.attack("helm/robot-shop/Chart.yaml:", "dependency alias \"../../../x\" is not allowed");
}

#[test]
fn a_file_dependency_outside_the_repository_is_refused() {
    let case = Case::new();
    let outside_chart = case.outside.path().join("canary/sub");
    std::fs::write(outside_chart.join("Chart.yaml"), "apiVersion: v2\nname: sub\nversion: 1.0.0\n").expect("write");
    let climb = "../".repeat(30);
    case.add_cart_dependency(&format!(
        "  - name: sub\n    version: 1.0.0\n    repository: file://{climb}{}\n",
        outside_chart.display()
    ));
    case.attack("charts/cart/Chart.yaml:", "outside the repository");
}

#[test]
fn an_environment_named_dot_dot_is_refused() {
    let case = Case::new();
    case.write("helm/robot-shop/values-...yaml", "cart:\n  replicaCount: 2\n");
    case.attack("helm/robot-shop/values-...yaml", "environment name \"..\" is not allowed");
}

#[test]
fn a_vendored_archive_that_climbs_or_links_is_refused() {
    let case = Case::new();
    case.add_cart_dependency("  - name: evil\n    version: 1.0.0\n    repository: oci://127.0.0.1:9/charts\n");
    let archive = hostile_archive(&format!("{}/x", "../".repeat(30)), &case.secret());
    std::fs::create_dir_all(case.root().join("charts/cart/charts")).expect("mkdir");
    std::fs::write(case.root().join("charts/cart/charts/evil-1.0.0.tgz"), archive).expect("write");
    // Raised versions, so that `package` gets past version discipline to
    // the archive.
    let bumped = case.xtask(&["bump", "--changed", "--base", "main"]);
    assert!(bumped.status.success(), "{}", describe(&bumped));
    case.attack("evil-1.0.0.tgz", "climbs out with ..");
}

#[test]
fn hostile_configuration_files_are_refused_before_they_are_read() {
    // xtask.toml linked to the secret: a parse error would quote it.
    let case = Case::new();
    case.link("xtask.toml", &case.secret());
    let output = case.xtask(&["lint"]);
    let shown = describe(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("xtask.toml is a symbolic link to") && shown.contains("outside the repository"), "{shown}");
    assert!(!shown.contains(&case.token), "{shown}");

    // Chart folders outside the repository.
    std::fs::remove_file(case.root().join("xtask.toml")).expect("rm");
    case.write("xtask.toml", "chart-dirs = [\"charts\", \"../outside\"]\n");
    let shown = describe(&case.xtask(&["lint"]));
    assert!(shown.contains("xtask.toml") && shown.contains("inside the repository"), "{shown}");

    // ct.yaml naming a file of the runner for yamllint to read.
    std::fs::remove_file(case.root().join("xtask.toml")).expect("rm");
    case.write("ct.yaml", &format!("lint-conf: {}\n", case.secret().display()));
    let output = case.xtask(&["lint"]);
    let shown = describe(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("ct.yaml: lint-conf") && shown.contains("outside the repository"), "{shown}");
    assert!(!shown.contains(&case.token), "{shown}");
}

#[test]
fn nested_brackets_are_refused_with_the_file_named() {
    let case = Case::new();
    let deep = format!("services: {}\n", "[".repeat(100_000));
    case.write("service-matrix.yaml", &deep);
    case.write("charts/cart/values.yaml", &format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)));
    let output = case.xtask(&["--format", "json", "lint"]);
    let shown = describe(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("service-matrix.yaml:1:") && shown.contains("nested more than 64"), "{shown}");
    assert!(shown.contains("charts/cart/values.yaml:1:"), "{shown}");
    let lint: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let status = |name: &str| {
        lint["charts"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).map(|c| c["status"].clone())
    };
    assert_eq!(status("cart"), Some("failed".into()), "{shown}");
    assert_eq!(status(BYSTANDER), Some("ok".into()), "{shown}");
}

/// A chart archive with an entry at `climb`, a link to `secret`, and an
/// honest Chart.yaml: written by hand, since tar writers refuse such paths.
fn hostile_archive(climb: &str, secret: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut add = |name: &str, kind: tar::EntryType, link: Option<&Path>, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        header.as_gnu_mut().expect("gnu header").name[..bytes.len()].copy_from_slice(bytes);
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        if let Some(link) = link {
            header.set_link_name(link).expect("link name");
        }
        header.set_cksum();
        builder.append(&header, data).expect("append");
    };
    add("evil/Chart.yaml", tar::EntryType::Regular, None, b"apiVersion: v2\nname: evil\nversion: 1.0.0\n");
    add(climb, tar::EntryType::Regular, None, b"planted\n");
    add("evil/templates/NOTES.txt", tar::EntryType::Symlink, Some(secret), b"");
    builder.into_inner().expect("tar").finish().expect("gzip")
}

/// The trust model of docs/security.md, held by the workflow: pull requests
/// run with `pull_request` (never `pull_request_target`, which runs with
/// the base's secrets), every job that runs a pull request's code has a
/// read-only token, no secret and no persisted credentials, and the one job
/// that may write to a pull request runs none of its code.
#[test]
fn the_workflow_gives_pull_request_code_no_secret_and_no_write_token() {
    let path = support::repo_root().join(".github/workflows/charts.yml");
    let text = std::fs::read_to_string(&path).expect("read the workflow");
    let workflow: yaml_serde::Value = yaml_serde::from_str(&text).expect("the workflow parses");
    let triggers = &workflow["on"];
    assert!(triggers.get("pull_request").is_some(), "pull requests are checked");
    for forbidden in ["pull_request_target", "workflow_run"] {
        assert!(triggers.get(forbidden).is_none(), "the workflow must not use {forbidden}");
    }
    let read_only = |permissions: &yaml_serde::Value| {
        permissions
            .as_mapping()
            .is_some_and(|m| m.values().all(|v| v.as_str() == Some("read") || v.as_str() == Some("none")))
    };
    assert!(read_only(&workflow["permissions"]), "the default token is read-only");

    let jobs = workflow["jobs"].as_mapping().expect("jobs");
    let mut writers = Vec::new();
    for (name, job) in jobs {
        let name = name.as_str().expect("job name");
        let condition = job["if"].as_str().unwrap_or_default();
        let main_only = condition.contains("github.event_name == 'push'") && condition.contains("refs/heads/main");
        let steps = job["steps"].as_sequence().cloned().unwrap_or_default();
        let job_text = yaml_serde::to_string(job).expect("job as text");
        let runs_code = steps.iter().any(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/checkout")));
        if main_only {
            continue;
        }
        // Jobs that pull requests reach.
        assert!(!job_text.contains("secrets."), "job {name} runs for pull requests and must see no secret");
        if job.get("permissions").is_some() && !read_only(&job["permissions"]) {
            writers.push(name.to_string());
            assert!(!runs_code, "job {name} has a write token and must not check out the pull request's code");
            assert!(!job_text.contains("cargo "), "job {name} has a write token and must run no cargo");
        }
        for step in &steps {
            if step["uses"].as_str().is_some_and(|u| u.starts_with("actions/checkout")) {
                assert_eq!(
                    step["with"]["persist-credentials"].as_bool(),
                    Some(false),
                    "job {name}: a checkout of pull request code must not keep the token in .git/config"
                );
            }
        }
    }
    assert_eq!(writers, ["diff-comment"], "only the comment job may write, and only to pull requests");
    assert_eq!(jobs[&yaml_serde::Value::from("diff-comment")]["permissions"]["pull-requests"].as_str(), Some("write"));
}

/// A link that stays inside the repository is fine for `lint`, but
/// `package` refuses it unless xtask.toml allows it: the archive would
/// carry the bytes it leads to, not the link.
#[test]
fn package_refuses_links_inside_charts_unless_allowed() {
    let case = Case::new();
    case.write("docs/notes.txt", "shared notes\n");
    case.link("charts/cart/notes.txt", Path::new("../../docs/notes.txt"));
    case.git(&["add", "--all"]);
    case.git(&["commit", "--quiet", "--message", "a link"]);
    let lint = case.xtask(&["lint", "--chart", "cart"]);
    assert!(lint.status.success(), "a link inside the repository lints: {}", describe(&lint));
    let refused = case.xtask(&["package", "--chart", "cart", "--base", "HEAD"]);
    let shown = describe(&refused);
    assert_eq!(refused.status.code(), Some(1), "{shown}");
    assert!(shown.contains("symbolic link") && shown.contains("charts/cart/notes.txt"), "{shown}");
    assert!(shown.contains("allow-symlinks"), "the message says how to allow it: {shown}");
    let packages = walk(&case.root().join("target/xtask/packages"));
    assert!(packages.iter().all(|p| !p.display().to_string().ends_with(".tgz")), "nothing was packaged: {packages:?}");
    case.write("xtask.toml", "[package]\nallow-symlinks = true\n");
    let allowed = case.xtask(&["package", "--chart", "cart", "--base", "HEAD"]);
    assert!(allowed.status.success(), "{}", describe(&allowed));
}
