//! Locked dependencies: `cargo xtask deps update` resolves ranges through a
//! mirror (a real registry on loopback) and writes the same `Chart.lock` the
//! real `helm dependency update` writes, leaves it alone when nothing
//! changed; `lint` stages exactly the locked archives and refuses one whose
//! bytes changed under the same version, or a lock Chart.yaml no longer
//! matches; plain `helm dependency build` works from the committed lock.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{describe, repo_root, run_ok, xtask, Mirror, TestRegistry};

const BITNAMI: &str = "oci://registry-1.docker.io/bitnamicharts";

fn helm() -> &'static Path {
    &support::toolset().helm
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    format!("sha256:{}", hex(&sha2::Sha256::digest(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cp(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    let output = Command::new("cp").arg("-a").arg(from).arg(to).output().expect("cp");
    assert!(output.status.success(), "cp: {}", describe(&output));
}

/// Packages the redis stand-in as `version` (with `note` in its description,
/// so two pushes of one version differ in bytes) and pushes it; returns the
/// archive.
fn push_redis(registry: &TestRegistry, version: &str, note: &str, out: &Path) -> PathBuf {
    let dir = out.join(format!("redis-{version}-{note}"));
    cp(&repo_root().join("fixtures/bitnami-standins/redis"), &dir);
    let chart_yaml = dir.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).expect("Chart.yaml");
    let text = text
        .replace("\nversion: 23.1.1\n", &format!("\nversion: {version}\n"))
        .replace("description: Test stand-in", &format!("description: ({note}) Test stand-in"));
    std::fs::write(&chart_yaml, text).expect("write Chart.yaml");
    let packaged = out.join(format!("packaged-{version}-{note}"));
    run_ok(Command::new(helm()).arg("package").arg(&dir).arg("-d").arg(&packaged).env("SOURCE_DATE_EPOCH", "0"));
    let archive = packaged.join(format!("redis-{version}.tgz"));
    run_ok(
        Command::new(helm())
            .arg("push")
            .arg(&archive)
            .arg(format!("oci://{}/bitnamicharts", registry.host()))
            .arg("--plain-http"),
    );
    archive
}

/// A repository with a library chart `lib` (0.3.0) and a chart `app` that
/// depends on it (`file://`) and on redis `range` from `repository`.
fn fixture(dir: &Path, repository: &str, range: &str) -> PathBuf {
    let root = dir.join("repo");
    let lib = root.join("charts/lib");
    std::fs::create_dir_all(lib.join("templates")).expect("mkdir");
    std::fs::write(lib.join("Chart.yaml"), "apiVersion: v2\nname: lib\nversion: 0.3.0\ntype: library\n")
        .expect("write");
    std::fs::write(lib.join("templates/_x.tpl"), "{{- define \"lib.x\" -}}x{{- end -}}\n").expect("write");
    let app = root.join("charts/app");
    std::fs::create_dir_all(app.join("templates")).expect("mkdir");
    std::fs::write(
        app.join("Chart.yaml"),
        format!(
            "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n  - name: redis\n    version: \"{range}\"\n    repository: \"{repository}\"\n    condition: redis.enabled\n  - name: lib\n    version: 0.3.0\n    repository: \"file://../lib\"\n"
        ),
    )
    .expect("write");
    std::fs::write(app.join("values.yaml"), "redis:\n  enabled: true\n").expect("write");
    std::fs::write(
        app.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  x: {{ include \"lib.x\" . | quote }}\n",
    )
    .expect("write");
    root
}

fn mirror_flag(registry: &TestRegistry) -> String {
    format!("{BITNAMI}=oci://{}/bitnamicharts", registry.host())
}

fn xtask_in(root: &Path, work: &Path) -> Command {
    let mut command = xtask();
    command.arg("--root").arg(root).env("XTASK_WORK_DIR", work);
    command
}

fn combined(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn without_generated(lock: &str) -> String {
    lock.lines().filter(|l| !l.starts_with("generated:")).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_range_resolves_to_the_newest_match_is_locked_as_helm_locks_it_and_a_second_run_changes_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let registry = TestRegistry::start();
    let newest_match = push_redis(&registry, "23.2.0", "a", temp.path());
    push_redis(&registry, "23.1.1", "a", temp.path());
    push_redis(&registry, "24.0.0", "a", temp.path());
    let root = fixture(temp.path(), BITNAMI, "^23.0.0");
    let work = temp.path().join("work");

    let output = run_ok(xtask_in(&root, &work).args(["deps", "update", "--mirror", &mirror_flag(&registry)]));
    let app = root.join("charts/app");
    let lock = std::fs::read_to_string(app.join("Chart.lock")).expect("Chart.lock written");
    assert!(
        lock.contains(&format!("- name: redis\n  repository: {BITNAMI}\n  version: 23.2.0\n")),
        "the newest 23.x the mirror holds, under the repository Chart.yaml names:\n{lock}\n{}",
        describe(&output)
    );
    assert!(lock.contains("- name: lib\n  repository: file://../lib\n  version: 0.3.0\n"), "{lock}");
    let sum = std::fs::read_to_string(app.join("Chart.sum")).expect("Chart.sum written");
    assert!(sum.contains(&format!("redis 23.2.0 {BITNAMI} {}\n", sha256_of(&newest_match))), "{sum}");

    // The same lock as the real `helm dependency update`, digest included,
    // on a copy whose Chart.yaml names the registry itself (helm has no mirrors).
    let direct = fixture(&temp.path().join("direct"), &format!("oci://{}/bitnamicharts", registry.host()), "^23.0.0");
    run_ok(xtask_in(&direct, &work).args(["deps", "update"]));
    let ours = std::fs::read_to_string(direct.join("charts/app/Chart.lock")).expect("our lock");
    let by_helm = fixture(&temp.path().join("by-helm"), &format!("oci://{}/bitnamicharts", registry.host()), "^23.0.0");
    run_ok(Command::new(helm()).args(["dependency", "update", "--plain-http"]).arg(by_helm.join("charts/app")));
    let helms = std::fs::read_to_string(by_helm.join("charts/app/Chart.lock")).expect("helm's lock");
    assert_eq!(without_generated(&ours), without_generated(&helms));
    let generated = |text: &str| text.lines().find(|l| l.starts_with("generated: \"")).map(|l| l.len() > 30);
    assert_eq!(generated(&ours), generated(&helms), "generated: quoted, with a fraction:\n{ours}\n{helms}");

    // Twice in a row: byte for byte and not even rewritten.
    let before = std::fs::metadata(app.join("Chart.lock")).and_then(|m| m.modified()).expect("mtime");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = run_ok(xtask_in(&root, &work).args(["deps", "update", "--mirror", &mirror_flag(&registry)]));
    assert_eq!(std::fs::read_to_string(app.join("Chart.lock")).expect("lock"), lock);
    assert_eq!(std::fs::read_to_string(app.join("Chart.sum")).expect("sum"), sum);
    assert_eq!(std::fs::metadata(app.join("Chart.lock")).and_then(|m| m.modified()).expect("mtime"), before);
    assert!(String::from_utf8_lossy(&again.stderr).contains("Chart.lock unchanged"), "{}", describe(&again));

    // And lint stages exactly the locked version.
    let lint = run_ok(xtask_in(&root, &work).args(["--format", "json", "lint", "--mirror", &mirror_flag(&registry)]));
    let staged = work.join("stage/app/charts/redis-23.2.0.tgz");
    assert!(staged.exists(), "{}", describe(&lint));
}

#[test]
fn lint_refuses_an_archive_re_pushed_under_the_locked_version_and_a_lock_that_chart_yaml_left() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tested = TestRegistry::start();
    push_redis(&tested, "23.2.0", "tested", temp.path());
    let root = fixture(temp.path(), BITNAMI, "^23.0.0");
    let work = temp.path().join("work");
    run_ok(xtask_in(&root, &work).args(["deps", "update", "--mirror", &mirror_flag(&tested)]));
    run_ok(xtask_in(&root, &work).args(["lint", "--mirror", &mirror_flag(&tested)]));

    // Another registry serves other bytes under the same version.
    let repushed = TestRegistry::start();
    push_redis(&repushed, "23.2.0", "repushed", temp.path());
    let output = xtask_in(&root, &work).args(["lint", "--mirror", &mirror_flag(&repushed)]).output().expect("lint");
    let text = combined(&output);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(text.contains("dependency redis 23.2.0 from oci://registry-1.docker.io/bitnamicharts"), "{text}");
    assert!(text.contains("re-pushed") && text.contains("charts/app/Chart.sum"), "{text}");
    assert!(text.contains("cargo xtask deps update --chart app"), "{text}");

    // Chart.yaml moves on without the lock: named, with the command that fixes it.
    let chart_yaml = root.join("charts/app/Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).expect("Chart.yaml").replace("^23.0.0", "^24.0.0");
    std::fs::write(&chart_yaml, text).expect("write");
    let output = xtask_in(&root, &work).args(["lint", "--mirror", &mirror_flag(&tested)]).output().expect("lint");
    let text = combined(&output);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(text.contains("charts/app/Chart.lock: Chart.yaml and Chart.lock disagree: dependency redis"), "{text}");
    assert!(text.contains("\"^24.0.0\"") && text.contains("cargo xtask deps update --chart app"), "{text}");
}

#[test]
fn plain_helm_dependency_build_works_from_the_committed_lock() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mirror = Mirror::start(&temp.path().join("mirror-work"));
    let host = mirror.value().rsplit_once("oci://").expect("TO").1.split('/').next().expect("host").to_string();
    let root = temp.path().join("repo");
    cp(&repo_root().join("charts"), &root.join("charts"));
    cp(&repo_root().join("helm"), &root.join("helm"));
    let umbrella = root.join("helm/robot-shop");
    let committed = std::fs::read_to_string(umbrella.join("Chart.lock")).expect("a committed Chart.lock");
    let sums = std::fs::read_to_string(umbrella.join("Chart.sum")).expect("a committed Chart.sum");

    // The lock names Bitnami's registry, as Chart.yaml does; plain helm
    // reaches the mirror the way a client behind a proxy does (the
    // distribution registry answers absolute-URI requests), over plain HTTP.
    let output = run_ok(
        Command::new(helm())
            .args(["dependency", "build", "--plain-http"])
            .arg(&umbrella)
            .env("HTTP_PROXY", format!("http://{host}"))
            .env("http_proxy", format!("http://{host}"))
            .env_remove("NO_PROXY")
            .env_remove("no_proxy"),
    );
    for (name, version) in [("mongodb", "17.0.2"), ("mysql", "14.0.5"), ("redis", "23.1.1"), ("rabbitmq", "16.0.16")] {
        let archive = umbrella.join(format!("charts/{name}-{version}.tgz"));
        assert!(archive.is_file(), "{name}: {}", describe(&output));
        // What plain helm fetched is what Chart.sum recorded.
        assert!(sums.contains(&format!("{name} {version} {BITNAMI} {}\n", sha256_of(&archive))), "{name}:\n{sums}");
    }
    assert!(umbrella.join("charts/web-1.0.0.tgz").is_file(), "{}", describe(&output));
    // Helm took the lock as it was.
    assert_eq!(std::fs::read_to_string(umbrella.join("Chart.lock")).expect("lock"), committed);

    // The committed lock is current: `deps update` through the mirror leaves it byte for byte.
    std::fs::remove_dir_all(umbrella.join("charts")).expect("clean");
    run_ok(xtask_in(&root, &temp.path().join("work")).args(["deps", "update", "--mirror", mirror.value()]));
    assert_eq!(std::fs::read_to_string(umbrella.join("Chart.lock")).expect("lock"), committed);
    assert_eq!(std::fs::read_to_string(umbrella.join("Chart.sum")).expect("sum"), sums);
}
