//! `cargo xtask cluster`: a real etcd and kube-apiserver (built by `tools
//! --cluster`, never skipped) on loopback, driven with the real helm and
//! plain HTTPS: a chart installs, Pod Security refuses a privileged Pod,
//! and stopping (`cluster stop`, closing `serve`'s stdin, Ctrl-C on `serve`
//! or on `verify`) or a failed start leaves no process, no kubeconfig and
//! no data folder behind.

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::{describe, run_ok, xtask};

/// `cargo xtask cluster serve` for one test's work folder, stopped (by
/// closing its stdin) when dropped.
struct Serve {
    child: Option<Child>,
    /// The JSON line `serve` printed once ready.
    report: Value,
}

impl Serve {
    fn start(work: &Path) -> Serve {
        support::cluster_tools();
        let mut child = xtask()
            .env("XTASK_WORK_DIR", work)
            .args(["--format", "json", "cluster", "serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start `xtask cluster serve`");
        let mut line = String::new();
        let _ = std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        let Ok(report) = serde_json::from_str::<Value>(&line) else {
            drop(child.stdin.take());
            let output = child.wait_with_output().expect("wait for serve");
            panic!("`cluster serve` printed {line:?}: {}", describe(&output));
        };
        Serve { child: Some(child), report }
    }

    fn kubeconfig(&self) -> PathBuf {
        PathBuf::from(self.report["kubeconfig"].as_str().expect("kubeconfig"))
    }

    fn pids(&self) -> Vec<u64> {
        pids_of(&self.report["state"])
    }

    /// Closes stdin and waits for `serve` to exit.
    fn stop(&mut self) -> std::process::Output {
        let mut child = self.child.take().expect("running");
        drop(child.stdin.take());
        child.wait_with_output().expect("wait for serve")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// serve, etcd and kube-apiserver pids from a state object.
fn pids_of(state: &Value) -> Vec<u64> {
    ["serve", "etcd", "kube_apiserver"]
        .iter()
        .map(|name| state[name]["pid"].as_u64().unwrap_or_else(|| panic!("no {name} pid in {state}")))
        .collect()
}

/// Processes whose command line names `work` (etcd's and the API server's
/// flags name their data folder), apart from zombies.
fn processes_in(work: &Path) -> Vec<String> {
    let needle = work.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// Whether a process with this pid exists (a zombie counts as gone).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Waits a little for processes that were just stopped to be gone.
fn assert_gone(pids: &[u64], work: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (pids.iter().any(|p| alive(*p)) || !processes_in(work).is_empty()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u64> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
    assert_eq!(processes_in(work), Vec::<String>::new(), "processes left in {}", work.display());
}

/// Nothing of a control plane is left in the work folder.
fn assert_no_files(work: &Path) {
    let dir = work.join("cluster");
    let left: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name != ".lock" && name != "serve.log")
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(left, Vec::<String>::new(), "left in {}", dir.display());
}

/// Plain HTTPS to the API server with the token, trusting its CA file.
struct Api {
    agent: ureq::Agent,
    server: String,
    token: String,
}

impl Api {
    /// For the control plane `state` describes, with the token from its
    /// kubeconfig (the JSON output hides it).
    fn new(state: &Value, kubeconfig: &Path) -> Api {
        let endpoint = &state["endpoint"];
        let config: yaml_serde::Value =
            yaml_serde::from_str(&std::fs::read_to_string(kubeconfig).expect("read the kubeconfig")).expect("YAML");
        let token = config["users"][0]["user"]["token"].as_str().expect("a token in the kubeconfig").to_string();
        assert_eq!(endpoint["token"], "(hidden)", "the JSON output shows the token");
        let agent = support::api_agent(Path::new(endpoint["ca_file"].as_str().expect("ca_file")));
        Api { agent, server: endpoint["server"].as_str().expect("server").to_string(), token }
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut response = self
            .agent
            .get(format!("{}{path}", self.server))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
    }

    fn post(&self, path: &str, body: &Value) -> (u16, String) {
        let mut response = self
            .agent
            .post(format!("{}{path}", self.server))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
    }
}

/// A chart with a Deployment and a Service, written into `dir`.
fn write_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("demo");
    std::fs::create_dir_all(chart.join("templates")).expect("mkdir");
    let files = [
        ("Chart.yaml", "apiVersion: v2\nname: demo\nversion: 0.1.0\n"),
        (
            "templates/deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: demo}\n  template:\n    metadata:\n      labels: {app: demo}\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n          ports: [{containerPort: 80}]\n",
        ),
        (
            "templates/service.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  selector: {app: demo}\n  ports: [{port: 80, targetPort: 80}]\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(chart.join(name), text).expect("write chart");
    }
    chart
}

/// A Pod in `namespace`; `privileged` or else compliant with `restricted`.
fn pod(namespace: &str, privileged: bool) -> Value {
    let security = if privileged {
        json!({ "privileged": true })
    } else {
        json!({
            "allowPrivilegeEscalation": false,
            "runAsNonRoot": true,
            "runAsUser": 1000,
            "capabilities": { "drop": ["ALL"] },
            "seccompProfile": { "type": "RuntimeDefault" }
        })
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": if privileged { "privileged" } else { "restricted" }, "namespace": namespace },
        "spec": { "containers": [{ "name": "c", "image": "busybox:1.37", "securityContext": security }] }
    })
}

#[test]
fn serve_installs_a_chart_pod_security_refuses_a_privileged_pod_and_closing_stdin_cleans_up() {
    let work = tempfile::tempdir().expect("temp dir");
    let mut serve = Serve::start(work.path());
    let state = serve.report["state"].clone();
    let kubeconfig = serve.kubeconfig();
    assert!(kubeconfig.starts_with(work.path()), "{}", kubeconfig.display());
    assert!(kubeconfig.is_file());
    eprintln!("start-to-ready: {} ms", serve.report["ready_ms"]);

    let api = Api::new(&state, &kubeconfig);
    assert_eq!(api.get("/readyz"), (200, "ok".to_string()));

    // helm installs a Deployment and a Service through the written kubeconfig.
    let helm = &support::cluster_tools().tools.helm;
    let charts = tempfile::tempdir().expect("temp dir");
    let chart = write_chart(charts.path());
    run_ok(
        Command::new(helm)
            .args(["install", "demo"])
            .arg(&chart)
            .args(["--namespace", "shop", "--create-namespace", "--kubeconfig"])
            .arg(&kubeconfig),
    );
    let (status, body) = api.get("/apis/apps/v1/namespaces/shop/deployments/demo");
    assert_eq!(status, 200, "{body}");
    let (status, body) = api.get("/api/v1/namespaces/shop/services/demo");
    assert_eq!(status, 200, "{body}");
    let service: Value = serde_json::from_str(&body).expect("service JSON");
    assert!(service["spec"]["clusterIP"].as_str().is_some_and(|ip| ip.starts_with("10.96.")), "{service}");

    // Pod Security: a namespace that enforces `restricted` refuses a
    // privileged Pod sent with dryRun=All and takes a compliant one. With
    // no controller-manager nothing creates the namespace's `default`
    // ServiceAccount, which ServiceAccount admission (it runs first) needs.
    let namespace = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": "locked", "labels": { "pod-security.kubernetes.io/enforce": "restricted" } }
    });
    assert_eq!(api.post("/api/v1/namespaces", &namespace).0, 201);
    let account = json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": "default" } });
    assert_eq!(api.post("/api/v1/namespaces/locked/serviceaccounts", &account).0, 201);
    let (status, body) = api.post("/api/v1/namespaces/locked/pods?dryRun=All", &pod("locked", true));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("violates PodSecurity \\\"restricted:latest\\\"") && body.contains("privileged"), "{body}");
    let (status, body) = api.post("/api/v1/namespaces/locked/pods?dryRun=All", &pod("locked", false));
    assert_eq!(status, 201, "{body}");
    // dryRun=All wrote nothing.
    assert_eq!(api.get("/api/v1/namespaces/locked/pods/restricted").0, 404);

    // Closing stdin stops everything and removes every file.
    let pids = serve.pids();
    let output = serve.stop();
    assert!(output.status.success(), "{}", describe(&output));
    assert_gone(&pids, work.path());
    assert!(!kubeconfig.exists(), "the kubeconfig is left");
    assert_no_files(work.path());
}

#[test]
fn start_status_and_stop_manage_a_detached_control_plane() {
    let work = tempfile::tempdir().expect("temp dir");
    support::cluster_tools();
    let cluster = |args: &[&str]| {
        let mut command = xtask();
        command.env("XTASK_WORK_DIR", work.path()).args(args);
        command
    };
    /// Stops the control plane even when an assertion fails half-way.
    struct StopOnDrop<'a>(&'a Path);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            let _ = xtask().env("XTASK_WORK_DIR", self.0).args(["cluster", "stop"]).output();
        }
    }

    let started = run_ok(&mut cluster(&["cluster", "start"]));
    let _stop = StopOnDrop(work.path());
    let kubeconfig = PathBuf::from(String::from_utf8_lossy(&started.stdout).trim());
    assert!(kubeconfig.is_file(), "{}", describe(&started));

    let status = run_ok(&mut cluster(&["--format", "json", "cluster", "status"]));
    let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!((status["running"].as_bool(), status["ready"].as_bool()), (Some(true), Some(true)), "{status}");
    assert_eq!(status["kubeconfig"].as_str().map(PathBuf::from), Some(kubeconfig.clone()));
    assert!(status["ready_ms"].as_u64().is_some(), "{status}");
    eprintln!("start-to-ready: {} ms", status["ready_ms"]);
    let pids = pids_of(&status["state"]);

    // helm talks to it through the kubeconfig.
    let helm = &support::cluster_tools().tools.helm;
    run_ok(Command::new(helm).args(["list", "--all-namespaces", "--kubeconfig"]).arg(&kubeconfig));

    // A second start finds the running one.
    let again = run_ok(&mut cluster(&["cluster", "start"]));
    assert_eq!(PathBuf::from(String::from_utf8_lossy(&again.stdout).trim()), kubeconfig);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"), "{}", describe(&again));

    run_ok(&mut cluster(&["cluster", "stop"]));
    assert_gone(&pids, work.path());
    assert!(!kubeconfig.exists(), "the kubeconfig is left");
    assert_no_files(work.path());
    let after = cluster(&["cluster", "status"]).output().expect("status");
    assert_eq!(after.status.code(), Some(1), "{}", describe(&after));
}

/// `cluster serve` (and `start`, through its detached serve) with a test
/// hook that makes one program fail: exit 3 naming it with its log, and
/// nothing left.
fn assert_failed_start(work: &Path, hook: (&str, &str), command: &str, expected: &[&str]) {
    support::cluster_tools();
    let output = xtask()
        .env("XTASK_WORK_DIR", work)
        .env(hook.0, hook.1)
        .args(["cluster", command])
        .stdin(Stdio::null())
        .output()
        .expect("run xtask cluster");
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for text in expected {
        assert!(stderr.contains(text), "no {text:?} in: {}", describe(&output));
    }
    assert!(output.stdout.is_empty(), "{}", describe(&output));
    assert_gone(&[], work);
    assert_no_files(work);
}

#[test]
fn a_failed_start_leaves_no_process_and_no_kubeconfig() {
    // kube-apiserver refuses a flag it does not know.
    let work = tempfile::tempdir().expect("temp dir");
    assert_failed_start(
        work.path(),
        ("XTASK_CLUSTER_APISERVER_ARGS", "--no-such-flag=1"),
        "serve",
        &["kube-apiserver exited before it was ready", "unknown flag: --no-such-flag"],
    );

    // etcd cannot listen on a port that is taken; through `start` too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    for command in ["serve", "start"] {
        let work = tempfile::tempdir().expect("temp dir");
        assert_failed_start(
            work.path(),
            ("XTASK_CLUSTER_ETCD_PORT", &port),
            command,
            &["etcd exited before it was ready", "address already in use"],
        );
    }
}

/// Sends SIGINT (Ctrl-C) to a child process.
fn interrupt(child: &Child) {
    run_ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
}

/// Waits until a kube-apiserver runs whose command line names `work`.
fn wait_for_apiserver(work: &Path, child: &mut Child) {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !processes_in(work).iter().any(|p| p.contains("kube-apiserver")) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("exited ({status}) before its kube-apiserver started");
        }
        assert!(std::time::Instant::now() < deadline, "no kube-apiserver after 180 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ctrl-C on `cluster serve` once it is ready, and on `verify` while its
/// own control plane is up: both exit, and neither leaves etcd,
/// kube-apiserver, a kubeconfig or a data folder behind.
#[test]
fn ctrl_c_on_serve_and_on_verify_leaves_no_process_and_no_kubeconfig() {
    let work = tempfile::tempdir().expect("temp dir");
    let mut serve = Serve::start(work.path());
    let (kubeconfig, pids) = (serve.kubeconfig(), serve.pids());
    let child = serve.child.take().expect("running");
    interrupt(&child);
    let output = child.wait_with_output().expect("wait for serve");
    // Ctrl-C is serve's ordinary way to stop, as closing stdin is.
    assert!(String::from_utf8_lossy(&output.stderr).contains("cluster: stopped"), "{}", describe(&output));
    assert_gone(&pids, work.path());
    assert!(!kubeconfig.exists(), "the kubeconfig is left");
    assert_no_files(work.path());

    let work = tempfile::tempdir().expect("temp dir");
    let mut child = xtask()
        .env("XTASK_WORK_DIR", work.path())
        .args(["verify", "--no-cache", "--chart", "cart"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start `xtask verify`");
    wait_for_apiserver(work.path(), &mut child);
    interrupt(&child);
    let output = child.wait_with_output().expect("wait for verify");
    assert!(!output.status.success(), "verify ignored Ctrl-C: {}", describe(&output));
    assert_gone(&[], work.path());
    assert_no_files(work.path());
}
