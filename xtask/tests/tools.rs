//! `cargo xtask tools` and the tool installer, end to end: the real binary,
//! real helm and kubeconform, and release downloads from an HTTP server on
//! loopback (the real release hosts are not reachable from CI machines like
//! this one, and tests must not depend on them anyway).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::{describe, pinned, run_ok, toolset, xtask};

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: robotshop/rs-web:2.1.0
          ports:
            - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - port: 8080
      targetPort: 8080
";

// ---------------------------------------------------------------- (a)

#[test]
fn tools_prints_one_line_per_tool_and_the_tools_run() {
    let tools = toolset();
    let output = run_ok(xtask().args(["tools", "--kube-version", "1.36.0", "--kube-version", "1.37.0"]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('\t').collect()).collect();
    // helm, kubeconform, two schema lines, the generated CRD schemas, and
    // one line per pinned CRD module.
    let crds = crd_pins();
    assert_eq!(lines.len(), 5 + crds.len(), "{stdout}");
    assert_eq!(lines[4][..2], ["kubeconform-crds", "any"]);
    assert!(lines[4][2].ends_with("/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"), "{stdout}");
    for (line, (name, pin)) in lines[5..].iter().zip(&crds) {
        assert_eq!(line[..2], [format!("crds-{name}").as_str(), pin["version"].as_str().expect("version")]);
    }
    assert_eq!(lines[0][..2], ["helm", pinned("helm").as_str()]);
    assert_eq!(lines[1][..2], ["kubeconform", pinned("kubeconform").as_str()]);
    assert_eq!(lines[2][..2], ["kubeconform-schemas", "1.36.0"]);
    assert_eq!(lines[3][..2], ["kubeconform-schemas", "1.37.0"]);
    assert!(lines[2][2].ends_with(
        "/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
    ));

    let helm = run_ok(Command::new(&tools.helm).args(["version", "--template", "{{.Version}}"]));
    assert_eq!(String::from_utf8_lossy(&helm.stdout).trim(), format!("v{}", pinned("helm")));
    let kubeconform = run_ok(Command::new(&tools.kubeconform).arg("-v"));
    assert_eq!(String::from_utf8_lossy(&kubeconform.stdout).trim(), format!("v{}", pinned("kubeconform")));
}

#[test]
fn tools_format_json_prints_one_document() {
    toolset();
    let output = run_ok(xtask().args(["--format", "json", "tools"]));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    assert_eq!(json["helm"]["version"], pinned("helm"));
    assert_eq!(json["kubeconform"]["version"], pinned("kubeconform"));
    assert!(json["schemas"]["fingerprint"].as_str().is_some_and(|f| f.contains("kubernetes-validate-")));
    assert!(json.get("registry").is_none(), "registry only with --registry");
}

#[test]
fn a_kube_version_without_three_numbers_is_a_usage_error() {
    let output = xtask().args(["tools", "--kube-version", "1.37"]).output().expect("xtask runs");
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected X.Y.Z"), "{}", describe(&output));
}

#[test]
fn a_kube_version_the_package_lacks_lists_the_available_ones() {
    toolset();
    let output = xtask().args(["tools", "schemas", "--kube-version", "1.24.0"]).output().expect("xtask runs");
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no schemas for Kubernetes 1.24.0; it has 1.25.0, "), "{stderr}");
}

#[test]
fn a_warm_run_is_fast() {
    toolset();
    // Best of three, so a busy machine does not fail the test.
    let best = (0..3)
        .map(|_| {
            let started = Instant::now();
            run_ok(xtask().arg("tools"));
            started.elapsed()
        })
        .min()
        .unwrap_or_default();
    assert!(best < Duration::from_millis(500), "a warm `xtask tools` took {best:?}");
}

// ---------------------------------------------------------------- (b)

#[test]
fn release_download_installs_a_verified_helm() {
    let tools = toolset();
    let version = pinned("helm");
    let (os, arch) = platform();
    let archive_name = format!("helm-v{version}-{os}-{arch}.tar.gz");
    let archive = tar_gz(&format!("{os}-{arch}/helm"), &std::fs::read(&tools.helm).expect("read helm"));
    let checksum = format!("{}  {archive_name}\n", sha256(&archive));
    let server = Server::start(BTreeMap::from([
        (format!("/{archive_name}"), archive),
        (format!("/{archive_name}.sha256sum"), checksum.into_bytes()),
    ]));

    // PATH holds an old helm: it must be noticed and not used.
    let cache = tempfile::tempdir().expect("temp dir");
    let bin = tempfile::tempdir().expect("temp dir");
    fake_tool(bin.path(), "helm", "echo v3.20.0", None);
    let run = || {
        xtask()
            .args(["tools", "helm"])
            .env("XTASK_CACHE_DIR", cache.path())
            .env("XTASK_DOWNLOAD_BASE", server.base())
            .env("PATH", bin.path())
            .output()
            .expect("xtask runs")
    };

    let output = run();
    assert!(output.status.success(), "{}", describe(&output));
    let installed = cache.path().join("tools/helm").join(&version).join("helm");
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("helm\t{version}\t{}\n", installed.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not the pinned version"), "{stderr}");
    let reported = run_ok(Command::new(&installed).args(["version", "--template", "{{.Version}}"]));
    assert_eq!(String::from_utf8_lossy(&reported.stdout).trim(), format!("v{version}"));
    assert_eq!(server.requests().len(), 2, "checksum and archive: {:?}", server.requests());

    // Installed once: the next run finds it in the cache, says nothing and
    // downloads nothing.
    let again = run();
    assert!(again.status.success(), "{}", describe(&again));
    assert_eq!(again.stdout, output.stdout);
    assert!(again.stderr.is_empty(), "{}", describe(&again));
    assert_eq!(server.requests().len(), 2);
}

// ---------------------------------------------------------------- (c)

#[test]
fn a_wrong_checksum_is_refused_and_nothing_is_installed() {
    let version = pinned("helm");
    let (os, arch) = platform();
    let archive_name = format!("helm-v{version}-{os}-{arch}.tar.gz");
    let archive = tar_gz(&format!("{os}-{arch}/helm"), b"#!/bin/sh\necho v4.3.1\n");
    let checksum = format!("{}  {archive_name}\n", sha256(b"something else"));
    let server = Server::start(BTreeMap::from([
        (format!("/{archive_name}"), archive),
        (format!("/{archive_name}.sha256sum"), checksum.into_bytes()),
    ]));
    let cache = tempfile::tempdir().expect("temp dir");
    let empty = tempfile::tempdir().expect("temp dir");

    let output = xtask()
        .args(["tools", "helm"])
        .env("XTASK_CACHE_DIR", cache.path())
        .env("XTASK_DOWNLOAD_BASE", server.base())
        .env("PATH", empty.path())
        .output()
        .expect("xtask runs");
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(!stderr.contains("go install"), "a mismatch must never fall back: {stderr}");
    assert_eq!(files_under(cache.path()), Vec::<PathBuf>::new());
}

// ---------------------------------------------------------------- (d)

#[test]
fn the_schemas_validate_offline() {
    let tools = toolset();
    assert!(!tools.kube_versions.is_empty());
    let bad = DEPLOYMENT.replace("  replicas: 1\n", "  replicas: 1\n  replicaz: 2\n");
    for version in &tools.kube_versions {
        let good = kubeconform(tools, version, &[&tools.schema_location], DEPLOYMENT);
        assert!(good.status.success(), "Kubernetes {version}: {}", describe(&good));
        assert!(String::from_utf8_lossy(&good.stdout).contains("Valid: 2, Invalid: 0"), "{}", describe(&good));

        let rejected = kubeconform(tools, version, &[&tools.schema_location], &bad);
        assert_eq!(rejected.status.code(), Some(1), "Kubernetes {version}: {}", describe(&rejected));
        assert!(
            String::from_utf8_lossy(&rejected.stdout).contains("'replicaz' not allowed"),
            "{}",
            describe(&rejected)
        );
    }
}

/// The `[crds.NAME]` tables of pins.toml.
fn crd_pins() -> BTreeMap<String, toml::Value> {
    let pins: toml::Table = include_str!("../src/exec/tools/pins.toml").parse().expect("pins.toml");
    pins["crds"].as_table().expect("[crds]").iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `tools crds` with this cache folder: its exit and `crds-NAME` lines.
fn tools_crds(cache: &Path) -> (std::process::Output, BTreeMap<String, PathBuf>) {
    let output = xtask().args(["tools", "crds"]).env("XTASK_CACHE_DIR", cache).output().expect("xtask runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let folders = stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            Some((fields[0].strip_prefix("crds-")?.to_string(), PathBuf::from(fields.get(2)?)))
        })
        .collect();
    (output, folders)
}

#[test]
fn pinned_crds_are_kept_with_their_digests_and_a_changed_one_is_refused() {
    toolset();
    // The shared cache: fetched through the Go module proxy once per machine.
    let cache = support::cache_dir();
    let (output, folders) = tools_crds(&cache);
    assert!(output.status.success(), "{}", describe(&output));
    let pins = crd_pins();
    assert_eq!(folders.keys().collect::<Vec<_>>(), pins.keys().collect::<Vec<_>>(), "{}", describe(&output));
    for (name, pin) in &pins {
        let folder = &folders[name];
        let files = pin["files"].as_table().expect("files");
        for (path, digest) in files {
            let kept = folder.join(path.rsplit('/').next().expect("file name"));
            let bytes = std::fs::read(&kept).unwrap_or_else(|err| panic!("{}: {err}", kept.display()));
            assert_eq!(sha256(&bytes), digest.as_str().expect("digest"), "{}", kept.display());
            assert!(String::from_utf8_lossy(&bytes).contains("kind: CustomResourceDefinition"), "{}", kept.display());
        }
        // Only the pinned files (and the marker) are kept.
        let mut kept: Vec<String> = std::fs::read_dir(folder)
            .expect("read folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        kept.retain(|n| !n.starts_with('.'));
        assert_eq!(kept.len(), files.len(), "{kept:?}");
    }

    // A copy of the cache with one CRD file changed: refused, named, and
    // nothing is generated from it.
    let copy = tempfile::tempdir().expect("temp dir");
    let copied = copy.path().join("crds");
    std::fs::create_dir_all(&copied).expect("mkdir");
    for folder in folders.values() {
        let dest = copied.join(folder.file_name().expect("name"));
        std::fs::create_dir_all(&dest).expect("mkdir");
        for entry in std::fs::read_dir(folder).expect("read") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), dest.join(entry.file_name())).expect("copy");
        }
    }
    let argo = copied.join(folders["argo-cd"].file_name().expect("name")).join("application-crd.yaml");
    let text = std::fs::read_to_string(&argo).expect("read");
    std::fs::write(&argo, text.replacen("kind: Application", "kind: Applicatio", 1)).expect("tamper");
    let (output, _) = tools_crds(copy.path());
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&argo.display().to_string()) && stderr.contains("is pinned to"), "{stderr}");
    assert!(stderr.contains("delete") && stderr.contains("cargo xtask tools crds"), "{stderr}");
    let generated = std::fs::read_dir(&copied)
        .expect("read")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("schemas-"));
    assert!(!generated, "schemas were generated from a changed file");
}

#[test]
fn generated_crd_schemas_are_strict_and_keep_what_the_crd_preserves() {
    let tools = toolset();
    let output = run_ok(xtask().args(["tools", "schemas"]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let crds = stdout
        .lines()
        .find_map(|line| line.strip_prefix("kubeconform-crds\tany\t"))
        .unwrap_or_else(|| panic!("no kubeconform-crds line:\n{stdout}"));
    let locations = [tools.schema_location.as_str(), crds];
    let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: shop}\nspec:\n  project: default\n  destination: {server: 'https://kubernetes.default.svc'}\n  source:\n    repoURL: https://example.invalid/x.git\n    helm:\n      valuesObject: {anything: {goes: here}}\n";
    let good = kubeconform(tools, &tools.kube_versions[0], &locations, app);
    assert!(good.status.success(), "{}", describe(&good));
    for bad in [app.replace("project:", "projekt:"), app.replace("  source:\n", "  source:\n    revison: main\n")] {
        let rejected = kubeconform(tools, &tools.kube_versions[0], &locations, &bad);
        assert_eq!(rejected.status.code(), Some(1), "{}", describe(&rejected));
    }
    // ExternalSecret as external-secrets.io/v1, and a ServiceMonitor.
    let others = "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: db}\nspec:\n  secretStoreRef: {name: vault, kind: ClusterSecretStore}\n  data: [{secretKey: pw, remoteRef: {key: db}}]\n---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  endpoints: [{port: http, interval: 30s}]\n";
    let checked = kubeconform(tools, &tools.kube_versions[0], &locations, others);
    assert!(
        checked.status.success() && String::from_utf8_lossy(&checked.stdout).contains("Valid: 2"),
        "{}",
        describe(&checked)
    );
}

// ---------------------------------------------------------------- (e)

#[test]
fn an_unreachable_source_without_go_exits_3_and_says_how_to_install() {
    let cache = tempfile::tempdir().expect("temp dir");
    let empty = tempfile::tempdir().expect("temp dir");
    let output = xtask()
        .args(["tools", "helm"])
        .env("XTASK_CACHE_DIR", cache.path())
        .env("XTASK_DOWNLOAD_BASE", format!("http://127.0.0.1:{}", closed_port()))
        .env("PATH", empty.path())
        .output()
        .expect("xtask runs");
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let version = pinned("helm");
    for hint in [
        format!("go install -trimpath -ldflags '-X helm.sh/helm/v4/internal/version.version=v{version}' helm.sh/helm/v4/cmd/helm@v{version}"),
        "`go` is not on PATH".to_string(),
        "XTASK_HELM".to_string(),
    ] {
        assert!(stderr.contains(&hint), "missing {hint:?} in:\n{stderr}");
    }
    assert_eq!(files_under(cache.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_missing_env_override_is_an_environment_error() {
    let output = xtask().args(["tools", "helm"]).env("XTASK_HELM", "/nonexistent/helm").output().expect("xtask runs");
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("XTASK_HELM=/nonexistent/helm: no such file"));
}

// ---------------------------------------------------------------- probes

#[test]
fn a_path_binary_is_version_checked_once() {
    let cache = tempfile::tempdir().expect("temp dir");
    let bin = tempfile::tempdir().expect("temp dir");
    let log = bin.path().join("calls.log");
    let helm = fake_tool(bin.path(), "helm", &format!("echo v{}", pinned("helm")), Some(&log));
    for _ in 0..2 {
        let output = xtask()
            .args(["tools", "helm"])
            .env("XTASK_CACHE_DIR", cache.path())
            .env("PATH", bin.path())
            .output()
            .expect("xtask runs");
        assert!(output.status.success(), "{}", describe(&output));
        assert_eq!(String::from_utf8_lossy(&output.stdout), format!("helm\t{}\t{}\n", pinned("helm"), helm.display()));
    }
    let calls = std::fs::read_to_string(&log).expect("the fake helm ran");
    assert_eq!(calls.lines().count(), 1, "probed more than once: {calls}");
}

// ---------------------------------------------------------------- helpers

/// kubeconform as the lint runs it: strict, offline (a proxy that refuses
/// every connection catches any attempt to fetch a schema).
fn kubeconform(tools: &support::Tools, version: &str, locations: &[&str], yaml: &str) -> std::process::Output {
    let mut command = Command::new(&tools.kubeconform);
    command.args(["-strict", "-summary", "-kubernetes-version", version]);
    for location in locations {
        command.args(["-schema-location", location]);
    }
    let closed = format!("http://127.0.0.1:{}", closed_port());
    command
        .arg("-")
        .env("HTTPS_PROXY", &closed)
        .env("HTTP_PROXY", &closed)
        .env_remove("NO_PROXY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("kubeconform starts");
    child.stdin.take().expect("stdin").write_all(yaml.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("kubeconform finishes")
}

/// The OS and CPU as release archives name them.
fn platform() -> (&'static str, &'static str) {
    let os = if cfg!(target_os = "macos") { "darwin" } else { "linux" };
    let arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" };
    (os, arch)
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A tar.gz with one executable file.
fn tar_gz(path: &str, contents: &[u8]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(contents.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, path, contents).expect("append to tar");
    tar.into_inner().expect("finish tar").finish().expect("finish gzip")
}

/// A shell script named `name` in `dir` that runs `body`, and appends a
/// line to `log` on each call if given.
fn fake_tool(dir: &Path, name: &str, body: &str, log: Option<&Path>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let record = log.map(|log| format!("echo \"$@\" >> '{}'\n", log.display())).unwrap_or_default();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{record}{body}\n")).expect("write fake tool");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod fake tool");
    path
}

/// A loopback port with nothing listening: connections are refused at once.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local address").port()
}

/// Every file below `dir` (empty folders do not count).
/// Every file below `dir` except lock files: the empty `.install.lock` that
/// serialises installs is not an installed tool.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_none_or(|e| e != "lock") {
                files.push(path);
            }
        }
    }
    files
}

/// A minimal HTTP/1.1 file server on loopback: GET of a known path answers
/// 200 with the bytes, anything else 404. Runs until dropped, at most two
/// minutes, one connection at a time.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(files: BTreeMap<String, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let port = listener.local_addr().expect("local address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => Server::answer(stream, &files, &seen).unwrap_or_default(),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Server { port, requests, stop }
    }

    /// Answers one request; `None` when the client went away.
    fn answer(stream: TcpStream, files: &BTreeMap<String, Vec<u8>>, seen: &Mutex<Vec<String>>) -> Option<()> {
        stream.set_nonblocking(false).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).ok()?;
        // Read the headers to the blank line; the request has no body.
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
                break;
            }
        }
        let path = request_line.split_whitespace().nth(1)?.to_string();
        // Logged before answering, so the log is complete when the client is done.
        seen.lock().ok()?.push(path.clone());
        let mut stream = stream;
        let (status, body): (&str, &[u8]) = match files.get(&path) {
            Some(body) => ("200 OK", body),
            None => ("404 Not Found", b"not found"),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body).ok()?;
        stream.flush().ok()?;
        // Let the client close first, so it never sees a reset.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let _ = stream.read(&mut [0u8; 1]);
        Some(())
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("request log").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
