//! `cargo xtask package` and `bump` in temporary git repositories built from
//! this project's own charts (`charts/` and `helm/robot-shop`, the umbrella
//! without its four Bitnami dependencies, which need the mirror), with real
//! git, real helm and a real distribution registry on loopback.
//!
//! Each test starts from a repository whose `main` holds every chart at the
//! version it has here, and works on a branch, as a pull request would.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{describe, xtask, TestRegistry};

/// The service charts of the project, all built on `charts/_common`.
const SERVICES: [&str; 8] = ["cart", "catalogue", "dispatch", "payment", "ratings", "shipping", "user", "web"];
const BITNAMI: [&str; 4] = ["mongodb", "mysql", "redis", "rabbitmq"];

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// A git repository with the project's charts committed on `main`, and
    /// the branch `change` checked out.
    fn new() -> Repo {
        let repo = Repo { dir: tempfile::tempdir().expect("temp dir") };
        let source = support::repo_root();
        support::copy_dir(&source.join("charts"), &repo.path().join("charts"));
        support::copy_dir(&source.join("helm/robot-shop"), &repo.path().join("helm/robot-shop"));
        let umbrella = repo.path().join("helm/robot-shop/Chart.yaml");
        let text = std::fs::read_to_string(&umbrella).expect("umbrella Chart.yaml");
        std::fs::write(&umbrella, without_bitnami(&text)).expect("write umbrella");
        // The tool's output goes to target/ under the root: ignored, as here.
        repo.write(".gitignore", "/target\n");
        repo.write("README.md", "# a copy of the Robot-Shop charts\n");
        repo.git(&["init", "--quiet", "--initial-branch", "main"]);
        repo.git(&["config", "user.name", "Package Test"]);
        repo.git(&["config", "user.email", "package-test@example.invalid"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo.commit("charts at their released versions");
        repo.git(&["checkout", "--quiet", "-b", "change"]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn append(&self, rel: &str, text: &str) {
        let old = self.read(rel);
        self.write(rel, &format!("{old}{text}"));
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_else(|err| panic!("read {rel}: {err}"))
    }

    fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git").arg("-C").arg(self.path()).args(args).output().expect("run git");
        assert!(output.status.success(), "git {args:?}: {}", describe(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--message", message]);
    }

    /// Runs the xtask on this repository.
    fn xtask(&self, args: &[&str]) -> Output {
        xtask().env_remove("XTASK_WORK_DIR").arg("--root").arg(self.path()).args(args).output().expect("run xtask")
    }

    /// Runs the xtask with `--format json`; it must succeed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let output = self.xtask(&all);
        assert!(output.status.success(), "xtask {args:?}: {}", describe(&output));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| panic!("not JSON ({err}): {}", describe(&output)))
    }

    fn out(&self) -> PathBuf {
        self.path().join("target/xtask/packages")
    }

    /// Every file of the output folder with its content hash.
    fn out_snapshot(&self) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(self.out()) {
            for entry in entries.flatten() {
                let bytes = std::fs::read(entry.path()).expect("read output file");
                files.insert(entry.file_name().to_string_lossy().into_owned(), sha256(&bytes));
            }
        }
        files
    }

    /// Every Chart.yaml in the repository, by path.
    fn chart_files(&self) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        for name in std::iter::once("_common").chain(SERVICES) {
            let rel = format!("charts/{name}/Chart.yaml");
            files.insert(rel.clone(), self.read(&rel));
        }
        files.insert("helm/robot-shop/Chart.yaml".into(), self.read("helm/robot-shop/Chart.yaml"));
        files
    }
}

/// The umbrella's Chart.yaml without its Bitnami entries (each a `- name:`
/// line and the more-indented lines under it); comments stay.
fn without_bitnami(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- name:") {
            skipping = BITNAMI.contains(&name.trim());
        } else if !line.starts_with("    ") {
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
        }
    }
    assert!(!out.contains("bitnamicharts"), "Bitnami entries left in:\n{out}");
    out
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn all_charts() -> BTreeSet<String> {
    let mut all = set(&SERVICES);
    all.insert("common".into());
    all.insert("robot-shop".into());
    all
}

/// Names from a JSON list of objects with a `name`.
fn names(list: &Value) -> BTreeSet<String> {
    list.as_array().expect("a JSON list").iter().map(|c| c["name"].as_str().expect("name").to_string()).collect()
}

/// The affected set, as `bump --changed --dry-run` reports it (it writes nothing).
fn affected(repo: &Repo) -> BTreeSet<String> {
    names(&repo.json(&["bump", "--changed", "--dry-run"])["charts"])
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn affected_sets_follow_files_helmignore_and_the_graph() {
    let repo = Repo::new();
    assert_eq!(affected(&repo), BTreeSet::new(), "nothing changed yet");

    // Outside every chart: nothing.
    repo.append("README.md", "more words\n");
    repo.write("docs/notes.md", "untracked, outside the charts\n");
    assert_eq!(affected(&repo), BTreeSet::new());
    // ... so there is nothing to package, and no output folder appears.
    let report = repo.json(&["package", "--changed"]);
    assert_eq!(report["charts"], serde_json::json!([]), "{report}");
    assert!(!repo.out().exists());

    // A file the chart's .helmignore leaves out (`*.tmp`): nothing.
    repo.write("charts/cart/scratch.tmp", "editor leftovers\n");
    assert_eq!(affected(&repo), BTreeSet::new());

    // One service chart, uncommitted: that chart and the umbrella.
    repo.append("charts/cart/values.yaml", "# tuned\n");
    assert_eq!(affected(&repo), set(&["cart", "robot-shop"]));

    // An untracked (not ignored) file counts too.
    repo.git(&["checkout", "--quiet", "--", "charts/cart/values.yaml"]);
    repo.write("charts/catalogue/templates/extra.yaml", "# new template\n");
    assert_eq!(affected(&repo), set(&["catalogue", "robot-shop"]));

    // The library, committed on the branch: every service chart and the umbrella.
    std::fs::remove_file(repo.path().join("charts/catalogue/templates/extra.yaml")).expect("rm");
    repo.append("charts/_common/templates/_meta.tpl", "{{/* a comment */}}\n");
    repo.commit("change the library");
    assert_eq!(affected(&repo), all_charts());

    // A base that is not there: an environment error (exit 3) that says how to fix it.
    let output = repo.xtask(&["bump", "--changed", "--base", "origin/main", "--dry-run"]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    assert!(stderr(&output).contains("git fetch origin main"), "{}", describe(&output));
}

#[test]
fn an_unbumped_change_is_refused_and_nothing_is_written() {
    let repo = Repo::new();
    repo.append("charts/cart/values.yaml", "# tuned\n");
    let charts_before = repo.chart_files();

    for args in [
        &["package", "--changed"][..],
        &["package", "--chart", "cart"][..],
        &["package", "--chart", "robot-shop"][..],
        &["package"][..],
    ] {
        let output = repo.xtask(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", describe(&output));
        let err = stderr(&output);
        assert!(err.contains("version discipline"), "{args:?}: {err}");
        assert!(err.contains("cart (changed): charts/cart/Chart.yaml has version 1.0.0"), "{args:?}: {err}");
        assert!(err.contains("cargo xtask bump --changed"), "{args:?}: {err}");
        if args.contains(&"robot-shop") || args.len() == 1 || args.contains(&"--changed") {
            assert!(err.contains("robot-shop (dependency changed)"), "{args:?}: {err}");
        }
        assert!(!repo.path().join("target/xtask/packages").exists(), "{args:?} wrote the output folder");
        assert!(!repo.path().join("target/xtask/stage").exists(), "{args:?} staged before refusing");
    }
    assert_eq!(repo.chart_files(), charts_before);
    assert_eq!(repo.git(&["tag", "--list"]), "");

    // For machines: still one JSON object on stdout, saying what failed.
    let output = repo.xtask(&["--format", "json", "package", "--changed"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    assert_eq!(report["ok"], false);
    assert!(report["error"].as_str().unwrap().contains("version discipline"), "{report}");

    // A chart the change does not reach packages fine.
    let report = repo.json(&["package", "--chart", "payment"]);
    assert_eq!(names(&report["charts"]), set(&["payment"]));
}

#[test]
fn bump_cascades_from_common_keeping_comments_then_packages_every_chart() {
    let repo = Repo::new();
    repo.append("charts/_common/templates/_meta.tpl", "{{/* a comment */}}\n");
    let before = repo.chart_files();

    let report = repo.json(&["bump", "--changed"]);
    assert_eq!(names(&report["charts"]), all_charts());
    for chart in report["charts"].as_array().expect("charts") {
        assert_eq!(
            (chart["from"].as_str(), chart["to"].as_str(), chart["status"].as_str()),
            (Some("1.0.0"), Some("1.0.1"), Some("bumped")),
            "{chart}"
        );
    }
    // Each service's `common` and the umbrella's eight services follow.
    let deps: BTreeSet<(String, String)> = report["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .map(|d| (d["chart"].as_str().unwrap().to_string(), d["dependency"].as_str().unwrap().to_string()))
        .collect();
    let mut expected = BTreeSet::new();
    for service in SERVICES {
        expected.insert((service.to_string(), "common".to_string()));
        expected.insert(("robot-shop".to_string(), service.to_string()));
    }
    assert_eq!(deps, expected);

    // Exactly the version scalars changed: comments, order and layout stay.
    let after = repo.chart_files();
    for (path, old) in &before {
        let new = &after[path];
        let old_lines: Vec<&str> = old.lines().collect();
        let new_lines: Vec<&str> = new.lines().collect();
        assert_eq!(old_lines.len(), new_lines.len(), "{path}");
        for (o, n) in old_lines.iter().zip(&new_lines) {
            if o != n {
                assert!(o.trim_start().starts_with("version: 1.0.0"), "{path}: {o:?} -> {n:?}");
                assert_eq!(o.replace("1.0.0", "1.0.1"), *n, "{path}");
            }
        }
    }
    assert!(after["helm/robot-shop/Chart.yaml"].contains("# Dependencies render in this order"));
    assert!(
        after["charts/_common/Chart.yaml"].contains("# The directory is _common, but the chart must be named common")
    );

    // Bumping again changes nothing.
    let again = repo.json(&["bump", "--changed"]);
    assert!(again["written"].as_array().expect("written").is_empty(), "{again}");
    assert_eq!(repo.chart_files(), after);

    // Now every chart packages, dependencies first, and the index lists each.
    let report = repo.json(&["package", "--changed"]);
    let order: Vec<&str> = report["charts"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(order.first(), Some(&"common"), "{order:?}");
    assert_eq!(order.last(), Some(&"robot-shop"), "{order:?}");
    let mut expected_files: BTreeSet<String> = all_charts().iter().map(|c| format!("{c}-1.0.1.tgz")).collect();
    expected_files.insert("index.yaml".into());
    let files: BTreeSet<String> = repo.out_snapshot().keys().cloned().collect();
    assert_eq!(files, expected_files);
    check_index(&repo, &all_charts());

    // The umbrella archive carries the bumped services and the library.
    let umbrella = std::fs::read(repo.out().join("robot-shop-1.0.1.tgz")).expect("umbrella archive");
    let listing = archive_files(&umbrella);
    for service in SERVICES {
        assert!(listing.contains(&format!("robot-shop/charts/{service}/Chart.yaml")), "{listing:?}");
        assert!(listing.contains(&format!("robot-shop/charts/{service}/charts/common/Chart.yaml")), "{listing:?}");
    }
}

#[test]
fn a_service_change_packages_it_and_the_umbrella_and_a_second_run_changes_nothing() {
    let repo = Repo::new();
    repo.append("charts/cart/values.yaml", "# tuned\n");
    let bumped = repo.json(&["bump", "--chart", "cart"]);
    assert_eq!(names(&bumped["charts"]), set(&["cart", "robot-shop"]));

    let first = repo.json(&["package", "--changed"]);
    assert_eq!(names(&first["charts"]), set(&["cart", "robot-shop"]));
    for chart in first["charts"].as_array().unwrap() {
        assert_eq!(chart["status"], "packaged", "{chart}");
    }
    let snapshot = repo.out_snapshot();
    assert_eq!(
        snapshot.keys().cloned().collect::<BTreeSet<_>>(),
        set(&["cart-1.0.1.tgz", "robot-shop-1.0.1.tgz", "index.yaml"])
    );
    check_index(&repo, &set(&["cart", "robot-shop"]));

    // Same version, same content: nothing changes, not even index.yaml.
    let second = repo.json(&["package", "--changed"]);
    for chart in second["charts"].as_array().unwrap() {
        assert_eq!(chart["status"], "unchanged", "{chart}");
    }
    assert_eq!(second["index"]["written"], false);
    assert_eq!(repo.out_snapshot(), snapshot);

    // Same version, other content: refused, and the folder is as it was.
    repo.append("charts/cart/templates/service.yaml", "# changed after packaging\n");
    let output = repo.xtask(&["package", "--changed"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(err.contains("same version, different content"), "{err}");
    assert!(err.contains("cart: target/xtask/packages/cart-1.0.1.tgz already holds version 1.0.1"), "{err}");
    assert!(err.contains("cargo xtask bump --chart cart --base cart-1.0.1"), "{err}");
    assert_eq!(repo.out_snapshot(), snapshot);
    let leftovers: Vec<String> = std::fs::read_dir(repo.out())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "scratch files left: {leftovers:?}");
}

#[test]
fn publish_pushes_in_order_skips_what_is_there_and_pull_gives_back_the_digest() {
    let registry = TestRegistry::start();
    let url = format!("oci://{}/charts", registry.host());
    let repo = Repo::new();
    repo.append("charts/cart/values.yaml", "# tuned\n");
    repo.json(&["bump", "--changed"]);

    let first = repo.json(&["package", "--changed", "--publish", &url, "--plain-http"]);
    let published = first["published"].as_array().expect("published");
    let pushed: Vec<(&str, &str)> =
        published.iter().map(|p| (p["chart"].as_str().unwrap(), p["action"].as_str().unwrap())).collect();
    assert_eq!(pushed, [("cart", "pushed"), ("robot-shop", "pushed")], "dependency first");

    let second = repo.json(&["package", "--changed", "--publish", &url, "--plain-http"]);
    for p in second["published"].as_array().unwrap() {
        assert_eq!(p["action"], "skipped", "{p}");
    }

    // What the registry gives back is byte for byte what was packaged.
    let helm = &support::toolset().helm;
    let pulled = tempfile::tempdir().expect("temp dir");
    for chart in ["cart", "robot-shop"] {
        let output = Command::new(helm)
            .args(["pull", &format!("{url}/{chart}"), "--version", "1.0.1", "--plain-http", "--destination"])
            .arg(pulled.path())
            .output()
            .expect("helm pull");
        assert!(output.status.success(), "{}", describe(&output));
        let local = sha256(&std::fs::read(repo.out().join(format!("{chart}-1.0.1.tgz"))).unwrap());
        let remote = sha256(&std::fs::read(pulled.path().join(format!("{chart}-1.0.1.tgz"))).unwrap());
        assert_eq!(local, remote, "{chart}");
        let reported =
            first["charts"].as_array().unwrap().iter().find(|c| c["name"] == chart).unwrap()["digest"].clone();
        assert_eq!(reported, local.as_str(), "{chart}");
    }

    // Other content under a published version: refused before any push.
    repo.append("charts/cart/templates/service.yaml", "# changed after publishing\n");
    let other_out = tempfile::tempdir().expect("temp dir");
    let output = repo.xtask(&[
        "package",
        "--chart",
        "cart",
        "--out",
        other_out.path().to_str().unwrap(),
        "--publish",
        &url,
        "--plain-http",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(stderr(&output).contains("publish refused, nothing was pushed"), "{}", describe(&output));
    std::fs::create_dir_all(other_out.path().join("again")).unwrap();
    let output = Command::new(helm)
        .args(["pull", &format!("{url}/cart"), "--version", "1.0.1", "--plain-http", "--destination"])
        .arg(other_out.path().join("again"))
        .output()
        .expect("helm pull");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        sha256(&std::fs::read(other_out.path().join("again/cart-1.0.1.tgz")).unwrap()),
        sha256(&std::fs::read(repo.out().join("cart-1.0.1.tgz")).unwrap()),
        "the registry still holds the first cart 1.0.1"
    );
}

#[test]
fn tag_creates_one_tag_per_packaged_chart() {
    let repo = Repo::new();
    repo.append("charts/cart/values.yaml", "# tuned\n");
    repo.json(&["bump", "--changed"]);

    // Uncommitted charts cannot be tagged: HEAD is not what would be packaged.
    let output = repo.xtask(&["package", "--changed", "--tag"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(stderr(&output).contains("uncommitted changes"), "{}", describe(&output));
    assert_eq!(repo.git(&["tag", "--list"]), "");
    assert!(!repo.out().exists());

    repo.commit("raise cart");
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    let report = repo.json(&["package", "--changed", "--tag"]);
    let tags: Vec<(&str, &str)> = report["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| (t["tag"].as_str().unwrap(), t["action"].as_str().unwrap()))
        .collect();
    assert_eq!(tags, [("cart-1.0.1", "created"), ("robot-shop-1.0.1", "created")]);
    assert_eq!(repo.git(&["tag", "--list"]), "cart-1.0.1\nrobot-shop-1.0.1\n");
    for tag in ["cart-1.0.1", "robot-shop-1.0.1"] {
        assert_eq!(repo.git(&["rev-parse", &format!("{tag}^{{commit}}")]).trim(), head);
    }

    // Again: the tags are there and stay.
    let again = repo.json(&["package", "--changed", "--tag"]);
    for t in again["tags"].as_array().unwrap() {
        assert_eq!(t["action"], "exists", "{t}");
    }

    // A later commit that changes cart without a bump cannot reuse the tag.
    repo.append("charts/cart/templates/service.yaml", "# changed after the release\n");
    repo.commit("change cart again");
    let output = repo.xtask(&[
        "package",
        "--chart",
        "cart",
        "--tag",
        "--out",
        repo.path().join("target/other").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(stderr(&output).contains("cart-1.0.1 points at"), "{}", describe(&output));

    // The fix the message names works: bump against the release tag.
    let bumped = repo.json(&["bump", "--chart", "cart", "--base", "cart-1.0.1"]);
    let cart = bumped["charts"].as_array().unwrap().iter().find(|c| c["name"] == "cart").unwrap().clone();
    assert_eq!(cart["to"], "1.0.2", "{bumped}");
}

/// index.yaml lists each chart at 1.0.1 with its archive's digest and URL.
fn check_index(repo: &Repo, charts: &BTreeSet<String>) {
    let text = std::fs::read_to_string(repo.out().join("index.yaml")).expect("index.yaml");
    assert!(text.starts_with("# Chart repository index, written by `cargo xtask package`"), "{text}");
    let index: Value = yaml_serde::from_str(&text).expect("index.yaml parses");
    assert_eq!(index["apiVersion"], "v1");
    let entries = index["entries"].as_object().expect("entries");
    assert_eq!(entries.keys().cloned().collect::<BTreeSet<_>>(), *charts);
    for chart in charts {
        let entry = &entries[chart][0];
        let file = format!("{chart}-1.0.1.tgz");
        assert_eq!(entry["version"], "1.0.1");
        assert_eq!(entry["urls"][0], file.as_str());
        let digest = sha256(&std::fs::read(repo.out().join(&file)).expect("archive"));
        assert_eq!(entry["digest"], digest.as_str(), "{chart}");
    }
}

/// Paths inside a .tgz.
fn archive_files(bytes: &[u8]) -> BTreeSet<String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive
        .entries()
        .expect("tar entries")
        .map(|e| e.expect("entry").path().expect("path").to_string_lossy().into_owned())
        .collect()
}

/// A file inside a .tgz, as text.
fn archive_file(path: &Path, inner: &str) -> String {
    use std::io::Read;
    let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").to_string_lossy() == inner {
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("UTF-8");
            return text;
        }
    }
    panic!("{inner} is not in {}", path.display())
}

/// An annotation of a packaged Chart.yaml, itself YAML, parsed.
fn annotation(chart_yaml: &str, key: &str) -> Option<Value> {
    let chart: Value = yaml_serde::from_str(chart_yaml).expect("Chart.yaml parses");
    let text = chart["annotations"][key].as_str()?;
    Some(yaml_serde::from_str(text).unwrap_or_else(|err| panic!("{key} is not YAML ({err}):\n{text}")))
}

/// Two string fields of every entry of a list.
fn pairs(list: &Value, first: &str, second: &str) -> Vec<(String, String)> {
    let field =
        |entry: &Value, key: &str| entry[key].as_str().unwrap_or_else(|| panic!("no {key}: {entry}")).to_string();
    list.as_array().expect("a list").iter().map(|entry| (field(entry, first), field(entry, second))).collect()
}

#[test]
fn artifact_hub_annotations_follow_the_render_and_the_commits_since_the_last_release() {
    let repo = Repo::new();
    // cart 1.0.0 was released from main; the chart carries annotations of its own.
    repo.git(&["tag", "cart-1.0.0"]);
    repo.git(&["tag", "cart-0.9.0", "HEAD"]);
    repo.append(
        "charts/cart/Chart.yaml",
        "annotations:\n  artifacthub.io/license: Apache-2.0\n  artifacthub.io/changes: |\n    - kind: added\n      description: written by hand\n",
    );
    repo.commit("feat(cart): an Artifact Hub license");
    let values = repo.read("charts/cart/values.yaml").replace("tag: \"2.1.0\"", "tag: \"2.1.1\"");
    repo.write("charts/cart/values.yaml", &values);
    repo.commit("fix: cart runs the 2.1.1 image");
    repo.append("charts/web/values.yaml", "# tuned\n");
    repo.commit("feat(web): not cart's");
    repo.append("README.md", "more words\n");
    repo.commit("docs: outside every chart");
    repo.append("charts/cart/values.yaml", "# a note\n");
    repo.commit("Plain subject: no prefix");
    repo.json(&["bump", "--chart", "cart"]);
    repo.commit("chore(release)!: cart 1.0.1");
    let in_git = repo.chart_files();

    let report = repo.json(&["package", "--chart", "cart", "--chart", "common"]);
    let cart_archive = repo.out().join("cart-1.0.1.tgz");
    let packaged = archive_file(&cart_archive, "cart/Chart.yaml");

    let images = annotation(&packaged, "artifacthub.io/images").expect("images");
    let images: BTreeSet<(String, String)> = pairs(&images, "name", "image").into_iter().collect();
    assert!(images.contains(&("cart".into(), "robotshop/rs-cart:2.1.1".into())), "the render's image: {images:?}");
    assert!(images.iter().any(|(_, image)| image.starts_with("busybox:")), "init containers too: {images:?}");
    assert!(!images.iter().any(|(_, image)| image.ends_with(":2.1.0")), "{images:?}");

    let changes = pairs(&annotation(&packaged, "artifacthub.io/changes").expect("changes"), "kind", "description");
    let expected = [
        ("changed", "cart 1.0.1 (breaking change)"),
        ("changed", "Plain subject: no prefix"),
        ("fixed", "cart runs the 2.1.1 image"),
        ("added", "an Artifact Hub license"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(k, d)| (k.to_string(), d.to_string())).collect();
    assert_eq!(changes, expected, "cart's commits since cart-1.0.0, newest first, and nothing else");
    let chart: Value = yaml_serde::from_str(&packaged).unwrap();
    assert_eq!(chart["annotations"]["artifacthub.io/license"], "Apache-2.0", "the chart's own annotations stay");
    assert!(chart["annotations"].get("artifacthub.io/signKey").is_none(), "not signed: no signKey");

    // The library renders nothing and was never released: its whole history.
    let common = archive_file(&repo.out().join("common-1.0.0.tgz"), "common/Chart.yaml");
    assert_eq!(annotation(&common, "artifacthub.io/images"), None, "{common}");
    let history = annotation(&common, "artifacthub.io/changes").expect("changes");
    assert_eq!(history, serde_json::json!([{"kind": "changed", "description": "charts at their released versions"}]));

    // Git is untouched, and the same input packs to the same bytes, before
    // and after the release is tagged (the tag ends the range).
    assert_eq!(repo.chart_files(), in_git, "Chart.yaml in git is unchanged");
    assert_eq!(repo.git(&["status", "--porcelain"]), "", "git status stays clean");
    let digest = |report: &Value| {
        let cart = report["charts"].as_array().unwrap().iter().find(|c| c["name"] == "cart").unwrap().clone();
        cart["digest"].as_str().expect("digest").to_string()
    };
    let second = repo.path().join("target/second");
    let again = repo.json(&["package", "--chart", "cart", "--out", second.to_str().unwrap(), "--tag"]);
    assert_eq!(digest(&again), digest(&report), "same input, same bytes");
    // A commit in cart's folder after the tag that packs nothing new (the
    // chart's .helmignore leaves `*.tmp` out) is not part of 1.0.1.
    repo.write("charts/cart/notes.tmp", "after the release\n");
    repo.commit("feat(cart): not in 1.0.1");
    let third = repo.path().join("target/third");
    let tagged = repo.json(&["package", "--chart", "cart", "--out", third.to_str().unwrap()]);
    assert_eq!(digest(&tagged), digest(&report), "packaging the tagged release again gives the same archive");
}
