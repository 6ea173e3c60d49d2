//! `cargo xtask mirror`: the Bitnami stand-ins served from a real
//! distribution registry on loopback, used by `package` to build the real
//! umbrella chart with its four Bitnami dependencies, then stopped; and
//! `mirror serve`, whose registry lives exactly as long as its stdin.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{describe, run_ok, xtask, Mirror};

/// `mirror start` for this test's work folder: the flag it printed.
fn start(work: &Path) -> String {
    let output = run_ok(xtask().env("XTASK_WORK_DIR", work).args(["mirror", "start", "--port", "0"]));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Stops the daemon even when an assertion fails half-way.
struct StopOnDrop<'a>(&'a Path);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = xtask().env("XTASK_WORK_DIR", self.0).args(["mirror", "stop"]).output();
    }
}

const STANDINS: [(&str, &str); 4] =
    [("mongodb", "17.0.2"), ("mysql", "14.0.5"), ("redis", "23.1.1"), ("rabbitmq", "16.0.16")];

fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git").arg("-C").arg(dir).args(args).output().expect("git");
    assert!(output.status.success(), "git {args:?}: {}", describe(&output));
}

#[test]
fn mirror_serves_the_standins_to_package_the_real_umbrella_and_stops() {
    let work = tempfile::tempdir().expect("temp dir");
    let flag = start(work.path());
    let _stop = StopOnDrop(work.path());
    assert!(flag.starts_with("--mirror oci://registry-1.docker.io/bitnamicharts=oci://127.0.0.1:"), "{flag}");
    let value = flag.trim_start_matches("--mirror ").to_string();
    let host = value.rsplit_once("oci://").unwrap().1.split('/').next().unwrap().to_string();

    // status: running, the same flag on stdout, the state in JSON.
    let status = run_ok(xtask().env("XTASK_WORK_DIR", work.path()).args(["mirror", "status"]));
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), flag);
    let json = run_ok(xtask().env("XTASK_WORK_DIR", work.path()).args(["--format", "json", "mirror", "status"]));
    let json: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(json["running"], true);
    assert_eq!(json["state"]["charts"].as_array().map(Vec::len), Some(4), "{json}");
    let pid = json["state"]["pid"].as_u64().expect("pid");

    // Starting again reuses the running registry.
    assert_eq!(start(work.path()), flag);

    // Each stand-in is there under its Bitnami name and version.
    let helm = &support::toolset().helm;
    let pulled = tempfile::tempdir().expect("temp dir");
    for (name, version) in STANDINS {
        let output = Command::new(helm)
            .args(["pull", &format!("oci://{host}/bitnamicharts/{name}"), "--version", version, "--plain-http"])
            .arg("--destination")
            .arg(pulled.path())
            .output()
            .expect("helm pull");
        assert!(output.status.success(), "{name}: {}", describe(&output));
    }

    // The real umbrella, Bitnami dependencies and all, packages through the mirror.
    let repo = tempfile::tempdir().expect("temp dir");
    let root = support::repo_root();
    support::copy_dir(&root.join("charts"), &repo.path().join("charts"));
    support::copy_dir(&root.join("helm/robot-shop"), &repo.path().join("helm/robot-shop"));
    std::fs::write(repo.path().join(".gitignore"), "/target\n").expect("write");
    git(repo.path(), &["init", "--quiet", "--initial-branch", "main"]);
    git(repo.path(), &["config", "user.name", "Mirror Test"]);
    git(repo.path(), &["config", "user.email", "mirror-test@example.invalid"]);
    git(repo.path(), &["add", "--all"]);
    git(repo.path(), &["commit", "--quiet", "--message", "charts"]);
    let output = xtask()
        .env_remove("XTASK_WORK_DIR")
        .arg("--root")
        .arg(repo.path())
        .args(["package", "--chart", "robot-shop", "--mirror", &value])
        .output()
        .expect("xtask package");
    assert!(output.status.success(), "{}", describe(&output));
    let archive = repo.path().join("target/xtask/packages/robot-shop-1.0.0.tgz");
    let bytes = std::fs::read(&archive).expect("umbrella archive");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let files: Vec<String> =
        tar.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
    for (name, _) in STANDINS {
        assert!(files.contains(&format!("robot-shop/charts/{name}/Chart.yaml")), "{name} missing: {files:?}");
    }

    // stop: the process ends and its folder goes; status then exits 1.
    run_ok(xtask().env("XTASK_WORK_DIR", work.path()).args(["mirror", "stop"]));
    assert!(!Path::new(&format!("/proc/{pid}/cmdline")).exists() || is_zombie(pid), "registry {pid} still runs");
    assert!(!work.path().join("mirror").exists());
    let status = xtask().env("XTASK_WORK_DIR", work.path()).args(["mirror", "status"]).output().expect("status");
    assert_eq!(status.status.code(), Some(1), "{}", describe(&status));
}

#[test]
fn mirror_serve_lives_as_long_as_its_stdin() {
    let work = tempfile::tempdir().expect("temp dir");
    let mirror = Mirror::start(work.path());
    let host = mirror.value().rsplit_once("oci://").unwrap().1.split('/').next().unwrap().to_string();
    let helm = &support::toolset().helm;
    let pulled = tempfile::tempdir().expect("temp dir");
    let output = Command::new(helm)
        .args(["pull", &format!("oci://{host}/bitnamicharts/redis"), "--version", "23.1.1", "--plain-http"])
        .arg("--destination")
        .arg(pulled.path())
        .output()
        .expect("helm pull");
    assert!(output.status.success(), "{}", describe(&output));
    // No daemon state: nothing is left to stop by hand.
    assert!(!work.path().join("mirror").exists());
    drop(mirror);
    assert!(std::net::TcpStream::connect(&host).is_err(), "the registry on {host} still listens");
}

/// A process that ended but was not reaped by its parent yet.
fn is_zombie(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}
