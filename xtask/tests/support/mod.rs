//! Helpers shared by the integration tests: run the built `xtask`, and get
//! the pinned tools through `xtask tools` itself (installed on first use,
//! never skipped). Use with `mod support;` at the top of a test file.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod keys;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root: the repository the xtask checks by default.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The built `xtask` binary, run in the repository root. Developer overrides
/// of the tools (`XTASK_HELM`, ...) are removed so tests see the pins;
/// `XTASK_CACHE_DIR` is kept, so all tests share one warm cache.
pub fn xtask() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.current_dir(repo_root());
    for var in [
        "XTASK_HELM",
        "XTASK_KUBECONFORM",
        "XTASK_REGISTRY",
        "XTASK_DOWNLOAD_BASE",
        "XTASK_KUBERNETES_VALIDATE_WHEEL",
        "XTASK_KUBE_APISERVER",
        "XTASK_ETCD",
        "XTASK_CLUSTER_ETCD_PORT",
        "XTASK_CLUSTER_APISERVER_ARGS",
        "XTASK_VERIFY_PAUSE_BEFORE_UPGRADE",
    ] {
        command.env_remove(var);
    }
    command
}

/// Exit code, stdout and stderr of a finished command, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a command and panics with its output unless it succeeds.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(output.status.success(), "{command:?} failed: {}", describe(&output));
    output
}

/// The pinned tools as `cargo xtask tools` reports them.
#[derive(Debug, Clone)]
pub struct Tools {
    pub helm: PathBuf,
    pub kubeconform: PathBuf,
    /// Kubernetes versions the schemas were prepared for (X.Y.Z).
    pub kube_versions: Vec<String>,
    /// kubeconform's `-schema-location` for the built-in kinds (use with `-strict`).
    pub schema_location: String,
}

/// Runs `xtask tools` once per test binary, in the shared per-user cache,
/// and returns what it printed. Panics (failing the test) if the tools
/// cannot be provided: a missing tool is a failure, never a skip.
pub fn toolset() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let output = run_ok(xtask().arg("tools"));
        parse_tools(&String::from_utf8_lossy(&output.stdout))
    })
}

/// Parses `name<TAB>version<TAB>value` lines.
pub fn parse_tools(stdout: &str) -> Tools {
    let (mut helm, mut kubeconform, mut location) = (None, None, None);
    let mut kube_versions = Vec::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, version, value] = fields[..] else {
            panic!("not a name<TAB>version<TAB>value line: {line:?}");
        };
        match name {
            "helm" => helm = Some(PathBuf::from(value)),
            "kubeconform" => kubeconform = Some(PathBuf::from(value)),
            "kubeconform-schemas" => {
                kube_versions.push(version.to_string());
                location = Some(value.to_string());
            }
            _ => {}
        }
    }
    Tools {
        helm: helm.unwrap_or_else(|| panic!("no helm line in:\n{stdout}")),
        kubeconform: kubeconform.unwrap_or_else(|| panic!("no kubeconform line in:\n{stdout}")),
        kube_versions,
        schema_location: location.unwrap_or_else(|| panic!("no kubeconform-schemas line in:\n{stdout}")),
    }
}

/// A tool's pinned version, read from `xtask/src/exec/tools/pins.toml` so tests
/// follow an upgrade without edits.
pub fn pinned(tool: &str) -> String {
    let pins = include_str!("../../src/exec/tools/pins.toml");
    let header = format!("[{tool}]");
    let mut in_table = false;
    for line in pins.lines().map(str::trim) {
        if line.starts_with('[') {
            in_table = line == header;
        } else if in_table {
            if let Some(value) = line.strip_prefix("version = ") {
                return value.trim_matches('"').to_string();
            }
        }
    }
    panic!("no version for [{tool}] in pins.toml")
}

/// The pinned CNCF distribution registry binary, as `xtask tools registry`
/// reports it (built on first use, never skipped). Added by the package
/// engineer for `tests/package.rs` and `tests/mirror.rs`.
pub fn registry_binary() -> &'static PathBuf {
    static REGISTRY: OnceLock<PathBuf> = OnceLock::new();
    REGISTRY.get_or_init(|| pinned_tool("registry"))
}

/// The path `xtask tools NAME` prints for the pinned tool NAME, installing
/// it on first use (never skipped).
pub fn pinned_tool(name: &str) -> PathBuf {
    let output = run_ok(xtask().args(["tools", name]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    path_in(&stdout, name).unwrap_or_else(|| panic!("no {name} line in `xtask tools {name}`:\n{stdout}"))
}

/// The path on the `name<TAB>version<TAB>path` line of `name`.
pub fn path_in(stdout: &str, name: &str) -> Option<PathBuf> {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix('\t')))
        .and_then(|rest| rest.split('\t').nth(1))
        .map(PathBuf::from)
}

/// The pinned kube-apiserver and etcd (and helm), as `xtask tools --cluster`
/// reports them: built into the per-user cache on first use (several
/// CPU-minutes once per machine), never skipped. Added by the cluster
/// engineer for `tests/cluster.rs`.
#[derive(Debug, Clone)]
pub struct ClusterTools {
    pub tools: Tools,
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
}

pub fn cluster_tools() -> &'static ClusterTools {
    static TOOLS: OnceLock<ClusterTools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let output = run_ok(xtask().args(["tools", "--cluster"]));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let path_of = |name: &str| {
            path_in(&stdout, name).unwrap_or_else(|| panic!("no {name} line in `xtask tools --cluster`:\n{stdout}"))
        };
        ClusterTools { tools: parse_tools(&stdout), kube_apiserver: path_of("kube-apiserver"), etcd: path_of("etcd") }
    })
}

/// A real distribution registry on a free loopback port with temporary
/// storage, started by the test itself; killed when dropped. Plain HTTP, so
/// pass `--plain-http` to helm and `package --publish`.
pub struct TestRegistry {
    child: std::process::Child,
    host: String,
    _dir: tempfile::TempDir,
    /// Asks for a login: it answers `/v2/` with 401 once it is up.
    guarded: bool,
}

impl TestRegistry {
    pub fn start() -> TestRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        TestRegistry::start_on(port)
    }

    /// Like [`TestRegistry::start`] on a port chosen earlier (a fixture that
    /// names the registry in its Chart.yaml files before it runs). Added by
    /// the chart-testing engineer for `tests/chart_testing.rs`.
    pub fn start_on(port: u16) -> TestRegistry {
        TestRegistry::start_configured(port, None)
    }

    /// Like [`TestRegistry::start`], asking for Basic auth against one
    /// htpasswd line (`user:<bcrypt hash>`, the only form the registry
    /// reads). Added for the credential-helper tests of `tests/remote.rs`.
    pub fn start_with_htpasswd(line: &str) -> TestRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        TestRegistry::start_configured(port, Some(line))
    }

    fn start_configured(port: u16, htpasswd: Option<&str>) -> TestRegistry {
        let binary = registry_binary();
        let dir = tempfile::tempdir().expect("temp dir for the registry");
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let auth = match htpasswd {
            Some(line) => {
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, format!("{line}\n")).expect("write htpasswd");
                format!("auth:\n  htpasswd:\n    realm: xtask-test\n    path: {:?}\n", file.display().to_string())
            }
            None => String::new(),
        };
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {:?}\nhttp:\n  addr: {host:?}\n{auth}",
                dir.path().join("storage").display().to_string()
            ),
        )
        .expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        let registry = TestRegistry { child, host, _dir: dir, guarded: htpasswd.is_some() };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !registry.answers() {
            assert!(
                std::time::Instant::now() < deadline,
                "the registry on {} never answered; its log:\n{}",
                registry.host,
                std::fs::read_to_string(registry._dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        registry
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The registry's storage folder: every blob pushed to it, as files.
    /// Added by the security engineer for `tests/hostile.rs`.
    pub fn storage(&self) -> PathBuf {
        self._dir.path().join("storage")
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(&self.host) else { return false };
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.host);
        let mut head = [0u8; 16];
        // Go answers an HTTP/1.0 request with `HTTP/1.0 200 OK`.
        let status: &[u8] = if self.guarded { b" 401" } else { b" 200" };
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read(&mut head).is_ok_and(|n| n >= 12 && head.starts_with(b"HTTP/1.") && &head[8..12] == status)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Bitnami stand-ins served from a registry on loopback by
/// `cargo xtask mirror serve`, a child process that lives until its stdin
/// closes. `flag` is what it printed (`--mirror FROM=TO`). Dropping the value
/// closes stdin and waits; and because the OS closes the pipe when the test
/// process ends, the registry also goes away when the value is never dropped
/// (kept in a `static`, which Rust never drops) or the test is killed.
/// `work_dir` is the `XTASK_WORK_DIR` the server runs with. Added by the
/// package engineer; any test that needs the umbrella's Bitnami dependencies
/// can use it.
pub struct Mirror {
    pub flag: String,
    pub work_dir: PathBuf,
    child: std::process::Child,
}

impl Mirror {
    pub fn start(work_dir: &Path) -> Mirror {
        use std::io::BufRead;
        let mut child = xtask()
            .env("XTASK_WORK_DIR", work_dir)
            .args(["mirror", "serve"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start `xtask mirror serve`");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let flag = line.trim().to_string();
        if !flag.starts_with("--mirror oci://registry-1.docker.io/bitnamicharts=oci://127.0.0.1:") {
            drop(child.stdin.take());
            let output = child.wait_with_output().expect("wait for `xtask mirror serve`");
            panic!("`xtask mirror serve` printed {flag:?}: {}", describe(&output));
        }
        Mirror { flag, work_dir: work_dir.to_path_buf(), child }
    }

    /// The `FROM=TO` value without `--mirror `.
    pub fn value(&self) -> &str {
        self.flag.trim_start_matches("--mirror ").trim()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        // End of input is the server's signal to stop its registry and exit.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// One `xtask ... --no-cache --mirror FROM=TO` through a loopback mirror in a
/// temporary work folder, meant to be kept for the life of a test binary (in
/// a `static OnceLock`) so that its tests share one run's staged charts and
/// renders instead of each linting again. The mirror stays up with it.
pub struct Linted {
    pub mirror: Mirror,
    pub work: PathBuf,
    pub stdout: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Linted {
    /// Runs the xtask with `args`, then `--no-cache --mirror ...`; panics
    /// naming `what` ("the umbrella", "the repository") when it does not pass.
    pub fn run(args: &[&str], what: &str) -> Linted {
        let dir = tempfile::tempdir().expect("temp dir");
        let work = dir.path().join("work");
        let mirror = Mirror::start(&work);
        let output = xtask()
            .env("XTASK_WORK_DIR", &work)
            .args(args)
            .args(["--no-cache", "--mirror", mirror.value()])
            .output()
            .expect("run xtask lint");
        assert!(output.status.success(), "{what} does not lint green: {}", describe(&output));
        Linted { mirror, work, stdout: output.stdout, _dir: dir }
    }

    /// Every Kubernetes object of the render of `chart` in `env` against
    /// Kubernetes `kube` (X.Y.Z), parsed.
    pub fn rendered(&self, kube: &str, chart: &str, env: &str) -> Vec<yaml_serde::Value> {
        let path = self.work.join("rendered").join(kube).join(chart).join(format!("{env}.yaml"));
        objects(&std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display())))
    }
}

/// The value at `path` (mapping keys) in a parsed YAML document.
pub fn at<'a>(value: &'a yaml_serde::Value, path: &[&str]) -> Option<&'a yaml_serde::Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// The string at `path`, if it is one.
pub fn str_at<'a>(value: &'a yaml_serde::Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(yaml_serde::Value::as_str)
}

/// The items of a sequence, none when absent or not a sequence.
pub fn seq(value: Option<&yaml_serde::Value>) -> Vec<&yaml_serde::Value> {
    value.and_then(yaml_serde::Value::as_sequence).map(|s| s.iter().collect()).unwrap_or_default()
}

/// Every Kubernetes object (a document with a `kind`) of a multi-document
/// YAML text, parsed.
pub fn objects(text: &str) -> Vec<yaml_serde::Value> {
    text.split("\n---")
        .filter_map(|doc| yaml_serde::from_str::<yaml_serde::Value>(doc).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

/// The per-user cache the tool installs into (`$XTASK_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/robot-shop-xtask`, else `~/.cache/robot-shop-xtask`),
/// where tests keep what they build or download once per machine too.
pub fn cache_dir() -> PathBuf {
    match (std::env::var_os("XTASK_CACHE_DIR"), std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
        (Some(dir), _, _) => PathBuf::from(dir),
        (None, Some(dir), _) => PathBuf::from(dir).join("robot-shop-xtask"),
        (None, None, Some(home)) => PathBuf::from(home).join(".cache").join("robot-shop-xtask"),
        _ => panic!("no cache folder: set XTASK_CACHE_DIR or HOME"),
    }
}

/// The actionlint version the workflow test runs (a Go module; `go install`
/// builds it, since release downloads from GitHub are not reachable here).
/// Added by the CI/GitOps engineer for `tests/scaling.rs`.
pub const ACTIONLINT_VERSION: &str = "1.7.12";

/// actionlint at [`ACTIONLINT_VERSION`], built once with `go install` into
/// the per-user cache (`$XTASK_CACHE_DIR`, else `$XDG_CACHE_HOME` or
/// `~/.cache`, under `robot-shop-xtask/tools/actionlint-<version>/`) and
/// reused afterwards. Built in a temporary folder and renamed into place, so
/// two test binaries never see half a binary. Panics when Go is missing: a
/// missing tool fails the test, it is never skipped.
pub fn actionlint() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = cache_dir().join("tools").join(format!("actionlint-{ACTIONLINT_VERSION}"));
        let binary = dir.join("actionlint");
        if binary.is_file() {
            return binary;
        }
        std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        let staging = tempfile::tempdir_in(&dir).expect("staging folder for go install");
        let module = format!("github.com/rhysd/actionlint/cmd/actionlint@v{ACTIONLINT_VERSION}");
        run_ok(
            Command::new("go")
                .args(["install", "-trimpath", &module])
                .env("GOBIN", staging.path())
                // `go install module@version` ignores any go.mod around it; run
                // it outside the repository all the same.
                .current_dir(&dir),
        );
        std::fs::rename(staging.path().join("actionlint"), &binary)
            .unwrap_or_else(|err| panic!("cannot move actionlint into {}: {err}", binary.display()));
        binary
    })
    .clone()
}

/// A synthetic monorepo written by `xtask bench --generate`: `services`
/// service charts (`svc-0000`, ...) built from `charts/catalogue` on a copy of
/// `charts/_common`, and the umbrella `helm/shop` over all of them with
/// `values-dev.yaml` and `values-prod.yaml`. Written to `dir/repo`, whose
/// path is returned. Added by the performance engineer for
/// `tests/performance.rs`; any test that needs many charts can use it.
pub fn synthetic_repo(dir: &Path, services: usize) -> PathBuf {
    let root = dir.join("repo");
    run_ok(xtask().args(["bench", "--generate"]).arg(&root).args(["--charts", &services.to_string()]));
    root
}

/// A copy of the repository's charts, umbrella, fixtures, schemas, Argo CD
/// files and matrix in a temporary folder, for lint runs that break one thing
/// (`xtask --root COPY lint ...`). Used by `tests/shop.rs` and `tests/secrets.rs`.
pub fn repository_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = repo_root();
    // `schemas/` is optional (a repository's own CRD schemas): copied when present.
    for folder in ["charts", "helm", "fixtures", "schemas", "argocd"] {
        if root.join(folder).is_dir() {
            copy_dir(&root.join(folder), &dir.path().join(folder));
        }
    }
    std::fs::copy(root.join("service-matrix.yaml"), dir.path().join("service-matrix.yaml")).expect("copy the matrix");
    dir
}

/// Copies a folder of the repository into a test's temporary checkout,
/// leaving out build output Helm may have left in a developer's checkout
/// (a chart's vendored `charts/` and `Chart.lock`).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).unwrap_or_else(|err| panic!("list {}: {err}", from.display())) {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == "charts" && from.join("Chart.yaml").is_file() || name == "Chart.lock" {
            continue;
        }
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy");
        }
    }
}

/// A ureq agent for a control plane's HTTPS: it trusts only the CA file
/// the API server generated (nothing skips verification), ignores proxies
/// (the server is on loopback) and returns error statuses as answers.
/// Added by the verify engineer for `tests/cluster.rs` and `tests/verify.rs`.
pub fn api_agent(ca_file: &Path) -> ureq::Agent {
    let pem = std::fs::read(ca_file).unwrap_or_else(|err| panic!("read {}: {err}", ca_file.display()));
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::from(certs)).build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .build()
        .into()
}
