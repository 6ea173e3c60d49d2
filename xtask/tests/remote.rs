//! The remote verdict cache against a real distribution registry on
//! loopback: clones with separate work folders share signed verdicts, a
//! reader writes nothing, untrusted and forged entries are ignored with a
//! warning naming the entry (and a trusted writer overwrites them), and a
//! registry that is down or never answers costs a warning and about a
//! second, never the lint.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{describe, run_ok, xtask, TestRegistry};

/// Charts of the synthetic repository: three services, the library, the umbrella.
const CHARTS: usize = 5;

/// A git repository of a small synthetic monorepo and clones of it.
struct Origin {
    dir: tempfile::TempDir,
}

impl Origin {
    fn new() -> Origin {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = support::synthetic_repo(dir.path(), 3);
        for args in [
            &["init", "--quiet", "--initial-branch", "main"][..],
            &["-c", "user.name=Remote Test", "-c", "user.email=remote@example.invalid", "add", "--all"],
            &[
                "-c",
                "user.name=Remote Test",
                "-c",
                "user.email=remote@example.invalid",
                "commit",
                "--quiet",
                "-m",
                "charts",
            ],
        ] {
            run_ok(Command::new("git").arg("-C").arg(&root).args(args));
        }
        Origin { dir }
    }

    /// A fresh clone with its own work folder.
    fn clone(&self, name: &str) -> Clone {
        let path = self.dir.path().join(name);
        run_ok(Command::new("git").arg("clone").arg("--quiet").arg(self.dir.path().join("repo")).arg(&path));
        Clone { root: path.clone(), work: path.join("target/xtask") }
    }

    /// A new signing key: its file and its public key.
    fn keygen(&self, name: &str) -> (PathBuf, String) {
        let file = self.dir.path().join(format!("{name}.key"));
        let output = run_ok(xtask().arg("cache").arg("keygen").arg("--out").arg(&file));
        let public = String::from_utf8_lossy(&output.stdout).trim().to_string();
        assert!(public.starts_with("ed25519:"), "{public}");
        (file, public)
    }
}

struct Clone {
    root: PathBuf,
    work: PathBuf,
}

impl Clone {
    /// `lint --format json` with these flags; the key file, if any, as
    /// XTASK_REMOTE_CACHE_KEY.
    fn lint(&self, args: &[&str], key: Option<&Path>) -> (Value, String, Output) {
        self.run("lint", args, key)
    }

    /// `<command> --format json` with these flags, which must pass.
    fn run(&self, subcommand: &str, args: &[&str], key: Option<&Path>) -> (Value, String, Output) {
        let mut command = xtask();
        command.env("XTASK_WORK_DIR", &self.work).env_remove("XTASK_REMOTE_CACHE_KEY");
        if let Some(key) = key {
            command.env("XTASK_REMOTE_CACHE_KEY", key);
        }
        let output = command
            .arg("--root")
            .arg(&self.root)
            .args(["--format", "json", subcommand])
            .args(args)
            .output()
            .expect(subcommand);
        assert!(output.status.success(), "{}", describe(&output));
        let json: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
        (json, String::from_utf8_lossy(&output.stderr).into_owned(), output)
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().proxy(None).http_status_as_error(false).build().into()
}

fn tags(host: &str, repository: &str) -> BTreeSet<String> {
    let mut response = agent().get(format!("http://{host}/v2/{repository}/tags/list")).call().expect("tag list");
    let list: Value = serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
    list["tags"].as_array().map(|t| t.iter().map(|t| t.as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

/// Each chart's (status, cache) from a report.
fn sources(report: &Value) -> Vec<(String, String, String)> {
    report["charts"]
        .as_array()
        .expect("charts")
        .iter()
        .map(|c| {
            let text = |v: &Value| v.as_str().unwrap_or("").to_string();
            (text(&c["name"]), text(&c["status"]), text(&c["cache"]))
        })
        .collect()
}

fn all(report: &Value, status: &str, cache: &str) -> bool {
    let charts = sources(report);
    charts.len() == CHARTS && charts.iter().all(|(_, s, c)| s == status && c == cache)
}

#[test]
fn a_second_clone_takes_every_verdict_from_the_registry_starts_nothing_and_writes_nothing() {
    let registry = TestRegistry::start();
    let url = format!("oci://{}/team/verdicts", registry.host());
    let origin = Origin::new();
    let (key, public) = origin.keygen("ci");

    let writer = origin.clone("writer");
    let (first, _, _) = writer.lint(&["--remote-cache", &url, "--remote-cache-write"], Some(&key));
    assert!(all(&first, "ok", ""), "{:?}", sources(&first));
    assert_eq!(first["remote_cache"]["written"], CHARTS, "{}", first["remote_cache"]);
    let written = tags(registry.host(), "team/verdicts");
    let keys: BTreeSet<String> =
        first["charts"].as_array().unwrap().iter().map(|c| c["cache_key"].as_str().unwrap().to_string()).collect();
    assert_eq!(written, keys, "one tag per chart, its content key");

    let reader = origin.clone("reader");
    let (second, stderr, _) = reader.lint(&["--remote-cache", &url, "--remote-cache-trust", &public], None);
    assert!(all(&second, "cached", "remote"), "{:?}\n{stderr}", sources(&second));
    assert_eq!(second["processes"], 0, "no tool process: {stderr}");
    assert_eq!(second["remote_cache"]["hits"], CHARTS);
    assert_eq!(second["remote_cache"]["written"], 0);
    assert!(stderr.contains("cached (remote)"), "{stderr}");
    assert!(stderr.contains(&format!("{CHARTS} cached ({CHARTS} from the remote cache)")), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(tags(registry.host(), "team/verdicts"), written, "a reader writes nothing");

    // The hits were stored locally: the next run needs no registry at all.
    drop(registry);
    let (third, stderr, _) = reader.lint(&["--remote-cache", &url, "--remote-cache-trust", &public], None);
    assert!(all(&third, "cached", "local"), "{:?}\n{stderr}", sources(&third));
    assert_eq!(third["processes"], 0);

    // Writing without the key is refused before anything runs.
    let output = xtask()
        .env("XTASK_WORK_DIR", &reader.work)
        .env_remove("XTASK_REMOTE_CACHE_KEY")
        .arg("--root")
        .arg(&reader.root)
        .args(["lint", "--remote-cache", &url, "--remote-cache-write"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    assert!(describe(&output).contains("XTASK_REMOTE_CACHE_KEY"), "{}", describe(&output));
}

/// `verify` shares its verdicts the same way: a reader starts no control
/// plane and no tool, and a verify verdict never answers for a lint.
#[test]
fn verify_verdicts_are_shared_and_a_reader_starts_no_control_plane() {
    support::cluster_tools();
    let registry = TestRegistry::start();
    let url = format!("oci://{}/team/verdicts", registry.host());
    let origin = Origin::new();
    let (key, public) = origin.keygen("ci");
    // The library chart is verified through the charts that render it.
    let verified = CHARTS - 1;

    let writer = origin.clone("writer");
    let (first, stderr, _) = writer.run("verify", &["--remote-cache", &url, "--remote-cache-write"], Some(&key));
    let charts = sources(&first);
    assert!(
        charts.len() == verified && charts.iter().all(|(_, s, c)| s == "ok" && c.is_empty()),
        "{charts:?}\n{stderr}"
    );
    assert_eq!(first["remote_cache"]["written"], verified, "{}", first["remote_cache"]);
    let written = tags(registry.host(), "team/verdicts");
    assert_eq!(written.len(), verified);

    let reader = origin.clone("reader");
    let trust = ["--remote-cache", url.as_str(), "--remote-cache-trust", public.as_str()];
    let (second, stderr, _) = reader.run("verify", &trust, None);
    let charts = sources(&second);
    assert!(
        charts.len() == verified && charts.iter().all(|(_, s, c)| s == "cached" && c == "remote"),
        "{charts:?}\n{stderr}"
    );
    assert_eq!(second["processes"], 0, "no control plane, no helm: {stderr}");
    assert_eq!(second["remote_cache"]["written"], 0);
    assert_eq!(tags(registry.host(), "team/verdicts"), written, "a reader writes nothing");

    // Keys of lint and verify differ: lint checks every chart itself.
    let (linted, stderr, _) = reader.lint(&trust, None);
    assert!(all(&linted, "ok", ""), "{:?}\n{stderr}", sources(&linted));
    assert_eq!(linted["remote_cache"]["hits"], 0);
}

#[test]
fn untrusted_and_forged_entries_are_ignored_with_a_warning_and_a_trusted_writer_overwrites_them() {
    let registry = TestRegistry::start();
    let host = registry.host().to_string();
    let url = format!("oci://{host}/verdicts");
    let origin = Origin::new();
    let (trusted_key, trusted) = origin.keygen("trusted");
    let (other_key, _) = origin.keygen("other");

    // Entries signed by a key the reader does not trust.
    origin.clone("stranger").lint(&["--remote-cache", &url, "--remote-cache-write"], Some(&other_key));
    let reader = origin.clone("reader");
    let (report, stderr, _) = reader.lint(&["--remote-cache", &url, "--remote-cache-trust", &trusted], None);
    assert!(all(&report, "ok", ""), "checked, not trusted: {:?}", sources(&report));
    assert_eq!(report["remote_cache"]["ignored"], CHARTS);
    for chart in report["charts"].as_array().unwrap() {
        let entry = format!(
            "{url}:{} ignored for chart {}",
            chart["cache_key"].as_str().unwrap(),
            chart["name"].as_str().unwrap()
        );
        let warnings = stderr.lines().filter(|l| l.contains(&entry)).collect::<Vec<_>>();
        assert_eq!(warnings.len(), 1, "one warning naming {entry}:\n{stderr}");
        assert!(warnings[0].contains("not a trusted key"), "{}", warnings[0]);
    }

    // The trusted writer overwrites every one of them.
    let writer = origin.clone("writer");
    let (written, _, _) = writer.lint(&["--remote-cache", &url, "--remote-cache-write"], Some(&trusted_key));
    assert_eq!(written["remote_cache"]["written"], CHARTS, "{}", written["remote_cache"]);

    // A forged entry: shop's tag now holds a validly signed entry of
    // another chart (a pass copied under the key of a chart that would fail).
    let charts = written["charts"].as_array().unwrap();
    let key_of =
        |name: &str| charts.iter().find(|c| c["name"] == name).unwrap()["cache_key"].as_str().unwrap().to_string();
    let (shop, service) = (key_of("shop"), key_of("svc-0000"));
    let manifest_type = "application/vnd.oci.image.manifest.v1+json";
    let mut got = agent()
        .get(format!("http://{host}/v2/verdicts/manifests/{service}"))
        .header("Accept", manifest_type)
        .call()
        .unwrap();
    let manifest = got.body_mut().read_to_vec().unwrap();
    let put = agent()
        .put(format!("http://{host}/v2/verdicts/manifests/{shop}"))
        .header("Content-Type", manifest_type)
        .send(&manifest[..])
        .unwrap();
    assert_eq!(put.status(), 201);

    let fresh = origin.clone("fresh");
    let (report, stderr, _) = fresh.lint(&["--remote-cache", &url, "--remote-cache-trust", &trusted], None);
    let shop_result = sources(&report).into_iter().find(|(name, _, _)| name == "shop").unwrap();
    assert_eq!(shop_result, ("shop".into(), "ok".into(), String::new()), "the forged entry is not used");
    assert_eq!(report["remote_cache"]["hits"], CHARTS - 1);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains(&format!("{url}:{shop} ignored for chart shop"))
            && warnings[0].contains(&format!("claims content key \"{service}\"")),
        "{}",
        warnings[0]
    );

    // The writer replaces exactly the bad entry; then every chart is a hit.
    let (again, _, _) = writer.lint(&["--remote-cache", &url, "--remote-cache-write"], Some(&trusted_key));
    assert_eq!(again["remote_cache"]["written"], 1, "{}", again["remote_cache"]);
    let (last, stderr, _) =
        origin.clone("last").lint(&["--remote-cache", &url, "--remote-cache-trust", &trusted], None);
    assert!(all(&last, "cached", "remote"), "{:?}\n{stderr}", sources(&last));
}

#[test]
fn a_stopped_or_silent_registry_costs_a_warning_and_about_a_second() {
    let origin = Origin::new();
    let (_, trusted) = origin.keygen("trusted");
    let stopped = {
        let registry = TestRegistry::start();
        registry.host().to_string()
    };
    // Accepts connections and never answers: the slowest registry there is.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_host = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });

    for (host, what) in [(stopped, "stopped"), (silent_host, "silent")] {
        let url = format!("oci://{host}/verdicts");
        let clone = origin.clone(what);
        let (report, stderr, _) = clone.lint(&["--remote-cache", &url, "--remote-cache-trust", &trusted], None);
        assert!(all(&report, "ok", ""), "{what}: checked: {:?}", sources(&report));
        assert_eq!(report["remote_cache"]["reachable"], false, "{what}");
        let lookup_ms = report["remote_cache"]["lookup_ms"].as_u64().unwrap();
        assert!(lookup_ms < 1500, "{what}: the lookups took {lookup_ms} ms");
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning: remote cache")).collect();
        assert_eq!(warnings.len(), 1, "{what}: {stderr}");
        assert!(warnings[0].contains(&url) && warnings[0].contains("checking without it"), "{}", warnings[0]);
    }
}

/// The registry's one login, as an htpasswd line: bcrypt (cost 4, the
/// registry reads no other form) of `HELPER_SECRET`, made with
/// `python3 -c "import crypt; print(crypt.crypt('helper-s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"`.
const HTPASSWD: &str = "xtask-ci:$2b$04$fl7BDSzOasBaJcx/TSlK..ID/7Y6C3CqkLy9O/G9hPRFlSoYiJilu";
const HELPER_SECRET: &str = "helper-s3cret";

/// A folder of credential helpers, real executables speaking docker's
/// protocol (`get`, the registry on stdin, JSON out), each noting the
/// registry it was asked about in `<name>.asked`.
struct Helpers {
    dir: tempfile::TempDir,
}

impl Helpers {
    fn new(host: &str) -> Helpers {
        let helpers = Helpers { dir: tempfile::tempdir().expect("temp dir") };
        let answer = |user: &str, secret: &str| {
            format!(
                "if [ \"$server\" = \"{host}\" ]; then printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\"; else echo 'credentials not found in native keychain'; exit 1; fi"
            )
        };
        helpers.add("team", &answer("xtask-ci", HELPER_SECRET));
        helpers.add("stale", &answer("xtask-ci", "an-old-s3cret"));
        // Hangs, with a child of its own: both must be stopped.
        helpers.add("stuck", "sleep 30 & echo $! > \"$0.child\"; wait");
        helpers
    }

    fn add(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(format!("docker-credential-{name}"));
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = get ] || {{ echo \"unsupported: $1\" >&2; exit 2; }}\nserver=$(cat)\nprintf '%s' \"$server\" > \"$0.asked\"\n{body}\n"
        );
        std::fs::write(&path, script).expect("write helper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod helper");
    }

    fn asked(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join(format!("docker-credential-{name}.asked"))).ok()
    }

    /// Helm's registry config with `config` as its JSON.
    fn config(&self, name: &str, config: Value) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&path, config.to_string()).expect("write registry config");
        path
    }

    /// `lint --format json` of `clone` with this folder first on PATH and
    /// `config` as Helm's registry config.
    fn lint(&self, clone: &Clone, config: &Path, args: &[&str], key: Option<&Path>) -> (Value, String) {
        let path = format!("{}:{}", self.dir.path().display(), std::env::var("PATH").unwrap_or_default());
        let mut command = xtask();
        command.env("XTASK_WORK_DIR", &clone.work).env("PATH", path).env("HELM_REGISTRY_CONFIG", config);
        command.env_remove("XTASK_REMOTE_CACHE_KEY");
        if let Some(key) = key {
            command.env("XTASK_REMOTE_CACHE_KEY", key);
        }
        let output = command.arg("--root").arg(&clone.root).args(["--format", "json", "lint"]).args(args).output();
        let output = output.expect("lint");
        assert!(output.status.success(), "{}", describe(&output));
        let json: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
        (json, String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn credentials_come_from_docker_credential_helpers_and_a_stuck_or_wrong_one_costs_a_warning() {
    use base64::Engine as _;
    let registry = TestRegistry::start_with_htpasswd(HTPASSWD);
    let host = registry.host().to_string();
    let url = format!("oci://{host}/verdicts");
    let origin = Origin::new();
    let (key, public) = origin.keygen("ci");
    let helpers = Helpers::new(&host);
    let trust = ["--remote-cache", url.as_str(), "--remote-cache-trust", public.as_str()];

    // `credHelpers` names the registry's own helper (over a store that has nothing).
    let own = helpers.config("own", serde_json::json!({"credsStore": "stale", "credHelpers": {host.clone(): "team"}}));
    let (written, stderr) =
        helpers.lint(&origin.clone("writer"), &own, &["--remote-cache", &url, "--remote-cache-write"], Some(&key));
    assert_eq!(written["remote_cache"]["written"], CHARTS, "{}\n{stderr}", written["remote_cache"]);
    assert_eq!(helpers.asked("team").as_deref(), Some(host.as_str()), "the helper is asked for the registry");
    assert_eq!(helpers.asked("stale"), None, "credHelpers wins over credsStore");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("xtask-ci:{HELPER_SECRET}"));
    let mut listed = agent()
        .get(format!("http://{host}/v2/verdicts/tags/list"))
        .header("Authorization", format!("Basic {basic}"))
        .call()
        .expect("tag list");
    let listed: Value = serde_json::from_slice(&listed.body_mut().read_to_vec().unwrap()).unwrap();
    assert_eq!(listed["tags"].as_array().map(Vec::len), Some(CHARTS), "{listed}");

    // `credsStore` for every registry: a reader takes every verdict; the one
    // process it starts is the helper.
    let store = helpers.config("store", serde_json::json!({"credsStore": "team"}));
    let (read, stderr) = helpers.lint(&origin.clone("reader"), &store, &trust, None);
    assert!(all(&read, "cached", "remote"), "{:?}\n{stderr}", sources(&read));
    assert_eq!(read["processes"], 1, "only the credential helper: {stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");

    // No credentials, a refused password, a helper that is not there, and
    // one that hangs: one warning each, naming the registry (and the
    // helper), never a secret; every chart checked, within the budget.
    let cases = [
        ("anonymous", serde_json::json!({}), vec!["wants a login", host.as_str()]),
        ("stale", serde_json::json!({"credsStore": "stale"}), vec!["answered 401"]),
        ("missing", serde_json::json!({"credsStore": "gone"}), vec!["docker-credential-gone", "not found on PATH"]),
        (
            "stuck",
            serde_json::json!({"credHelpers": {host.clone(): "stuck"}}),
            vec!["docker-credential-stuck", "no answer within"],
        ),
    ];
    for (what, config, words) in cases {
        let config = helpers.config(what, config);
        let (report, stderr) = helpers.lint(&origin.clone(what), &config, &trust, None);
        assert!(all(&report, "ok", ""), "{what}: checked: {:?}\n{stderr}", sources(&report));
        let lookup_ms = report["remote_cache"]["lookup_ms"].as_u64().unwrap();
        assert!(lookup_ms < 1500, "{what}: the lookups took {lookup_ms} ms");
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning: remote cache")).collect();
        assert_eq!(warnings.len(), 1, "{what}: {stderr}");
        assert!(warnings[0].contains(&url), "{what}: {}", warnings[0]);
        for word in words {
            assert!(warnings[0].contains(word), "{what}: {word:?} not in {}", warnings[0]);
        }
        for secret in [HELPER_SECRET, "an-old-s3cret"] {
            assert!(!stderr.contains(secret) && !report.to_string().contains(secret), "{what}: a secret shown");
        }
    }
    assert_eq!(helpers.asked("stuck").as_deref(), Some(host.as_str()));
    let child = std::fs::read_to_string(helpers.dir.path().join("docker-credential-stuck.child")).expect("child pid");
    let alive = || {
        std::fs::read_to_string(format!("/proc/{}/stat", child.trim()))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!alive(), "the stuck helper's child {} was left running", child.trim());
}
