//! A Kubernetes control plane on loopback: etcd and kube-apiserver, no
//! kubelet, no controller-manager, no scheduler. Enough for `helm install`
//! and server-side validation (schemas, admission, Pod Security) of what the
//! charts render; nothing ever runs a Pod.
//!
//! [`ControlPlane::start`] gives each control plane a fresh folder under
//! `<work dir>/cluster/` (etcd data, the API server's self-signed serving
//! certificate, a bearer token, the service-account key pair, logs), waits
//! until `/readyz` says ok over HTTPS that trusts the generated certificate,
//! and writes a kubeconfig through a temporary name. The value stops both
//! processes when dropped (SIGTERM, then SIGKILL) and removes the kubeconfig
//! and the folder; a start that fails does the same before it returns, and
//! says which program failed with the end of its log.
//!
//! The processes are registered with [`crate::exec::process`], so Ctrl-C
//! stops them, and get `PR_SET_PDEATHSIG`, so they die with the thread that
//! started them even when that process is killed and `Drop` never runs:
//! keep the value on the thread that created it (as with the registry).
//!
//! [`Cluster`] is what later commands take: a control plane we started
//! (anything may be written to it) or a user's cluster, to which only
//! server-side dry-run requests may be sent. The type makes the second
//! impossible to write to by accident: only [`Cluster::writable`] hands out
//! a [`ControlPlane`].
//!
//! Two environment variables are test hooks, for proving that a failed
//! start cleans up: `XTASK_CLUSTER_ETCD_PORT` fixes etcd's client port (a
//! taken one makes etcd fail), `XTASK_CLUSTER_APISERVER_ARGS` appends
//! whitespace-separated flags to kube-apiserver's command line.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::core::context::Context;
use crate::util::exit::EnvironmentError;

/// How long etcd and then the API server may take to become ready. The
/// API server is ready in about 2 s on two idle cores; a loaded CI machine
/// gets far more room.
const ETCD_TIMEOUT: Duration = Duration::from_secs(30);
const APISERVER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopped process may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The flags that make this API server behave like a real cluster's: the
/// admission plugins kubeadm's clusters run (most are on by default; named
/// so a default that changes cannot quietly drop one), RBAC, service
/// accounts, and privileged containers allowed at the API server so that
/// Pod Security admission, not the API server's own check, decides.
pub const ADMISSION_PLUGINS: &str = "NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,\
DefaultTolerationSeconds,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,\
ResourceQuota,PodSecurity,Priority,RuntimeClass,DefaultIngressClass,StorageObjectInUseProtection,\
PersistentVolumeClaimResize";

/// The service IP range; the API server needs one to allocate ClusterIPs.
const SERVICE_CIDR: &str = "10.96.0.0/16";

/// The user the generated token authenticates, and its groups:
/// `system:masters` is allowed everything by the RBAC authorizer itself.
const ADMIN_USER: &str = "xtask-admin";

/// Where a control plane listens and how to talk to it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// The API server's generated certificate file, which ends with the
    /// CA that signed it: what clients trust.
    pub ca_file: PathBuf,
    /// A bearer token of a `system:masters` user.
    pub token: String,
}

/// How long the parts of a start took.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Timings {
    /// From the start of [`ControlPlane::start`] until etcd was ready.
    pub etcd_ready_ms: u64,
    /// From the start until `/readyz` answered ok: start-to-ready.
    pub ready_ms: u64,
}

/// Knobs of [`ControlPlane::start`].
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Where to write the kubeconfig [default: `kubeconfig` in the control
    /// plane's own folder].
    pub kubeconfig: Option<PathBuf>,
}

/// A running etcd and kube-apiserver that live as long as this value.
pub struct ControlPlane {
    parts: Parts,
    kubeconfig: PathBuf,
    endpoint: Endpoint,
    etcd_url: String,
    timings: Timings,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver on free loopback ports (building
    /// them first if this machine has not yet, see `tools --cluster`),
    /// waits until the API server is ready and writes the kubeconfig.
    pub fn start(ctx: &Context, options: &StartOptions) -> Result<ControlPlane> {
        let began = Instant::now();
        let tools = crate::exec::tools::ensure_cluster(ctx)?;
        let base = ctx.work_dir.join("cluster");
        std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
        sweep_abandoned(&base);
        let dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&base)
            .with_context(|| format!("cannot create a folder for the control plane in {}", base.display()))?
            .keep();
        // From here on `parts` owns the folder: every early return below
        // drops it, which stops what was started and removes the files.
        let mut parts = Parts {
            dir: dir.clone(),
            kubeconfig: None,
            children: Vec::new(),
            _on_interrupt: crate::exec::process::remove_on_interrupt(&dir),
        };
        std::fs::write(dir.join("owner"), std::process::id().to_string())?;

        let etcd_port = test_hook("XTASK_CLUSTER_ETCD_PORT").unwrap_or_else(|| "0".into());
        let address_file = dir.join("etcd.address");
        let etcd_data = dir.join("etcd");
        let mut etcd = Command::new(&tools.etcd.path);
        etcd.arg("--data-dir")
            .arg(&etcd_data)
            .args(["--client-port", &etcd_port])
            .arg("--address-file")
            .arg(&address_file);
        parts.spawn("etcd", etcd)?;

        // The key pair and token while etcd starts: RSA key generation is
        // the one slow step of ours (a few hundred ms).
        let secrets = Secrets::generate()?;
        secrets.write(&dir)?;
        let etcd_url = wait_for_file(&mut parts, 0, &address_file, ETCD_TIMEOUT)?;
        let etcd_ready = began.elapsed();

        let pki = dir.join("pki");
        let port = crate::exec::registry::free_port()?;
        let mut apiserver = Command::new(&tools.kube_apiserver.path);
        apiserver.args(apiserver_flags(&dir, &pki, &etcd_url, port));
        if let Some(extra) = test_hook("XTASK_CLUSTER_APISERVER_ARGS") {
            apiserver.args(extra.split_whitespace());
        }
        parts.spawn("kube-apiserver", apiserver)?;
        let endpoint = Endpoint {
            server: format!("https://127.0.0.1:{port}"),
            ca_file: pki.join("apiserver.crt"),
            token: secrets.token.clone(),
        };
        wait_ready(&mut parts, 1, &endpoint, APISERVER_TIMEOUT)?;
        let timings = Timings { etcd_ready_ms: millis(etcd_ready), ready_ms: millis(began.elapsed()) };

        let kubeconfig = options.kubeconfig.clone().unwrap_or_else(|| dir.join("kubeconfig"));
        // Recorded before the write, so a failed write is cleaned up too.
        parts.kubeconfig = Some(kubeconfig.clone());
        crate::util::fs::write_atomic(&kubeconfig, kubeconfig_text(&endpoint).as_bytes())?;
        Ok(ControlPlane { parts, kubeconfig, endpoint, etcd_url, timings })
    }

    /// The kubeconfig to hand to helm and kubectl.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `http://127.0.0.1:PORT`.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The control plane's own folder (data, certificates, logs).
    pub fn dir(&self) -> &Path {
        &self.parts.dir
    }

    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// The pids of etcd and kube-apiserver, in that order.
    pub fn pids(&self) -> Vec<u32> {
        self.parts.children.iter().map(|c| c.child.id()).collect()
    }

    /// A program that exited although nobody stopped it, with the end of
    /// its log: the control plane is no longer whole.
    pub fn exited(&mut self) -> Option<String> {
        self.parts.children.iter_mut().find_map(|server| match server.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status}):\n{}", server.name, server.log_tail())),
            _ => None,
        })
    }
}

/// Whether the API server at `endpoint` answers `/readyz` with ok.
pub fn is_ready(endpoint: &Endpoint) -> bool {
    ready_check(endpoint).is_ok()
}

/// A cluster later commands work against.
pub enum Cluster {
    /// Started by us, thrown away afterwards: anything may be written.
    Started(ControlPlane),
    /// A user's cluster: only server-side dry-run requests may be sent.
    External(External),
}

/// A cluster we did not start, named by a kubeconfig and a context.
#[derive(Debug, Clone)]
pub struct External {
    pub kubeconfig: PathBuf,
    /// The context to use [default: the kubeconfig's current context].
    pub context: Option<String>,
}

impl External {
    /// `--kubeconfig FILE`, else `$KUBECONFIG` (its first file), else
    /// `~/.kube/config`; the file must exist.
    pub fn new(kubeconfig: Option<PathBuf>, context: Option<String>) -> Result<External> {
        let path = kubeconfig
            .or_else(|| {
                std::env::var_os("KUBECONFIG")
                    .and_then(|list| std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty()))
            })
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube").join("config")));
        match path {
            Some(path) if path.is_file() => Ok(External { kubeconfig: path, context }),
            Some(path) => crate::util::exit::usage(format!("kubeconfig {}: no such file", path.display())),
            None => crate::util::exit::usage("no kubeconfig: pass --kubeconfig FILE or set KUBECONFIG"),
        }
    }
}

impl Cluster {
    pub fn kubeconfig(&self) -> &Path {
        match self {
            Cluster::Started(plane) => plane.kubeconfig(),
            Cluster::External(external) => &external.kubeconfig,
        }
    }

    pub fn context(&self) -> Option<&str> {
        match self {
            Cluster::Started(_) => None,
            Cluster::External(external) => external.context.as_deref(),
        }
    }

    /// True for a cluster we did not start: send only `dryRun=All`
    /// requests (`helm ... --dry-run=server`).
    pub fn dry_run_only(&self) -> bool {
        matches!(self, Cluster::External(_))
    }

    /// The control plane to write to, if we started it.
    pub fn writable(&self) -> Option<&ControlPlane> {
        match self {
            Cluster::Started(plane) => Some(plane),
            Cluster::External(_) => None,
        }
    }

    /// `--kubeconfig FILE [--kube-context NAME]` for helm.
    pub fn helm_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = vec!["--kubeconfig".into(), self.kubeconfig().as_os_str().to_owned()];
        if let Some(context) = self.context() {
            args.extend(["--kube-context".into(), context.into()]);
        }
        args
    }
}

/// What was started so far; dropping it undoes all of it.
struct Parts {
    dir: PathBuf,
    kubeconfig: Option<PathBuf>,
    /// In start order; stopped in reverse (the API server before etcd).
    children: Vec<Server>,
    /// Ctrl-C exits without dropping this: the handler removes the folder
    /// (and the kubeconfig in it) once the servers are gone.
    _on_interrupt: crate::exec::process::RemovedOnInterrupt,
}

struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
    _tracked: crate::exec::process::Tracked,
}

impl Server {
    fn log_tail(&self) -> String {
        let tail = crate::exec::process::tail(std::fs::read_to_string(&self.log).unwrap_or_default().trim_end(), 15);
        if tail.is_empty() {
            format!("(nothing in {})", self.log.display())
        } else {
            tail
        }
    }
}

impl Parts {
    /// Starts `command` with its output in `<dir>/<name>.log`.
    fn spawn(&mut self, name: &'static str, mut command: Command) -> Result<()> {
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        command.stdout(file.try_clone()?).stderr(file).stdin(Stdio::null());
        // SAFETY: prctl(2) is async-signal-safe and changes only the
        // child's own attributes.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        if crate::exec::process::interrupted() {
            anyhow::bail!("interrupted before {name} started");
        }
        let child = command.spawn().with_context(|| format!("cannot start {name} ({:?})", command.get_program()))?;
        let tracked = crate::exec::process::track(child.id());
        self.children.push(Server { name, child, log, _tracked: tracked });
        Ok(())
    }

    /// The error for a program that failed to come up, with its log; the
    /// caller returns it, which drops `self` and so cleans up.
    fn failed(&mut self, index: usize, what: String) -> anyhow::Error {
        let server = &mut self.children[index];
        let status = match server.child.try_wait() {
            Ok(Some(status)) => format!("exited ({status})"),
            _ => "still running; stopped".to_string(),
        };
        EnvironmentError(format!(
            "the control plane did not start: {} {what} ({status}); the end of its log:\n{}",
            server.name,
            server.log_tail()
        ))
        .into()
    }

    fn has_exited(&mut self, index: usize) -> bool {
        matches!(self.children[index].child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Parts {
    fn drop(&mut self) {
        for server in self.children.iter_mut().rev() {
            crate::exec::process::terminate(&mut server.child, STOP_GRACE);
        }
        if let Some(kubeconfig) = &self.kubeconfig {
            let _ = std::fs::remove_file(kubeconfig);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits for etcd to write its client URL to `file`.
fn wait_for_file(parts: &mut Parts, index: usize, file: &Path, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            return Ok(text.trim().to_string());
        }
        if parts.has_exited(index) {
            return Err(parts.failed(index, "exited before it was ready".into()));
        }
        if crate::exec::process::interrupted() || Instant::now() > deadline {
            return Err(parts.failed(index, format!("was not ready within {}s", timeout.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `/readyz` until it says ok.
fn wait_ready(parts: &mut Parts, index: usize, endpoint: &Endpoint, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match ready_check(endpoint) {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        if parts.has_exited(index) {
            return Err(parts.failed(index, "exited before it was ready".into()));
        }
        if crate::exec::process::interrupted() || Instant::now() > deadline {
            return Err(parts.failed(
                index,
                format!("did not answer /readyz with ok within {}s (last: {last})", timeout.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The certificates of a PEM file (anything else in it is left out).
pub fn certificates(pem: &[u8]) -> Vec<ureq::tls::Certificate<'static>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert.to_owned()),
            _ => None,
        })
        .collect()
}

/// An HTTPS client for an API server: it trusts only `roots` (nothing skips
/// verification), never uses a proxy (the server is on loopback or named by
/// the user's kubeconfig: an `HTTPS_PROXY` meant for the internet must not
/// carry the token), and returns error statuses as answers.
pub fn https_agent(roots: Vec<ureq::tls::Certificate<'static>>, timeout: Duration) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::from(roots)).build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// One `/readyz` request, trusting only the API server's own certificate
/// file (it appears once the server has generated it), with short timeouts
/// and no proxy: loopback traffic must never go to `HTTPS_PROXY`.
fn ready_check(endpoint: &Endpoint) -> std::result::Result<(), String> {
    let pem = std::fs::read(&endpoint.ca_file).map_err(|_| "no serving certificate yet".to_string())?;
    let certs = certificates(&pem);
    if certs.is_empty() {
        return Err("the serving certificate file has no certificate yet".into());
    }
    let agent = https_agent(certs, Duration::from_secs(2));
    let mut response = agent
        .get(format!("{}/readyz", endpoint.server))
        .header("Authorization", format!("Bearer {}", endpoint.token))
        .call()
        .map_err(|err| err.to_string())?;
    let status = response.status();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if status == 200 && body.trim() == "ok" {
        Ok(())
    } else {
        Err(format!("HTTP {status}: {}", body.lines().last().unwrap_or_default()))
    }
}

/// kube-apiserver's command line.
fn apiserver_flags(dir: &Path, pki: &Path, etcd_url: &str, port: u16) -> Vec<String> {
    let path = |p: PathBuf| p.display().to_string();
    vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".into(),
        // Loopback is refused as an advertised address by the reconciler
        // that publishes it as the `kubernetes` Service's endpoint; with no
        // Pods nothing would use that endpoint, so no reconciler, and no
        // dependence on the machine's network.
        "--advertise-address=127.0.0.1".into(),
        "--endpoint-reconciler-type=none".into(),
        format!("--secure-port={port}"),
        // It generates a self-signed CA and a serving certificate for
        // 127.0.0.1 and localhost here: no certificate code of ours.
        format!("--cert-dir={}", path(pki.to_path_buf())),
        format!("--token-auth-file={}", path(dir.join("tokens.csv"))),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", path(dir.join("sa.pub"))),
        format!("--service-account-signing-key-file={}", path(dir.join("sa.key"))),
        "--authorization-mode=RBAC".into(),
        format!("--enable-admission-plugins={ADMISSION_PLUGINS}"),
        "--allow-privileged=true".into(),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--profiling=false".into(),
    ]
}

/// The bearer token and the service-account signing key pair.
struct Secrets {
    token: String,
    key_pem: String,
    public_pem: String,
}

impl Secrets {
    /// A 256-bit random token and a 2048-bit RSA key pair (the size
    /// kubeadm uses for `sa.key`), PKCS#8 and SubjectPublicKeyInfo PEM, the
    /// forms the API server reads.
    fn generate() -> Result<Secrets> {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|err| anyhow::anyhow!("no random numbers from the system: {err}"))?;
        let token = crate::util::fs::hex(&bytes);
        let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).context("cannot generate an RSA key")?;
        let key_pem = key.to_pkcs8_pem(LineEnding::LF).context("cannot encode the RSA key")?.to_string();
        let public_pem =
            key.to_public_key().to_public_key_pem(LineEnding::LF).context("cannot encode the RSA public key")?;
        Ok(Secrets { token, key_pem, public_pem })
    }

    /// `tokens.csv` (`token,user,uid,"groups"`), `sa.key`, `sa.pub`, each
    /// readable by this user only.
    fn write(&self, dir: &Path) -> Result<()> {
        let tokens = format!("{},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n", self.token);
        for (name, text) in [("tokens.csv", tokens.as_str()), ("sa.key", &self.key_pem), ("sa.pub", &self.public_pem)] {
            // write_atomic's temporary file is created 0600 and keeps it.
            crate::util::fs::write_atomic(&dir.join(name), text.as_bytes())?;
        }
        Ok(())
    }
}

/// A kubeconfig for `endpoint`, with the token and the CA file. Strings
/// are written as JSON strings, which YAML reads as they are.
pub fn kubeconfig_text(endpoint: &Endpoint) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: xtask\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {ADMIN_USER}\n  user:\n    token: {}\ncontexts:\n- name: xtask\n  context:\n    cluster: xtask\n    user: {ADMIN_USER}\n    namespace: default\ncurrent-context: xtask\n",
        q(&endpoint.server),
        q(&endpoint.ca_file.display().to_string()),
        q(&endpoint.token)
    )
}

/// Removes `run-*` folders whose owner process is gone: control planes of
/// runs that were killed before their `Drop` ran (their processes died with
/// them through `PR_SET_PDEATHSIG`).
fn sweep_abandoned(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("run-") {
            continue;
        }
        let owner = std::fs::read_to_string(entry.path().join("owner")).ok().and_then(|t| t.trim().parse().ok());
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age < Duration::from_secs(60));
        // A folder without an owner file may be one being set up right now.
        let abandoned = match owner {
            Some(pid) => crate::exec::process::start_time(pid).is_none(),
            None => !young,
        };
        if abandoned {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn test_hook(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_pem_and_hex() {
        let (a, b) = (Secrets::generate().expect("secrets"), Secrets::generate().expect("secrets"));
        assert_eq!(a.token.len(), 64);
        assert_ne!(a.token, b.token);
        assert!(a.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{}", a.key_pem);
        assert!(a.public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{}", a.public_pem);
    }

    #[test]
    fn kubeconfig_quotes_what_it_names() {
        let endpoint = Endpoint {
            server: "https://127.0.0.1:6443".into(),
            ca_file: PathBuf::from("/tmp/a \"b\"/apiserver.crt"),
            token: "abc".into(),
        };
        let text = kubeconfig_text(&endpoint);
        let value: yaml_serde::Value = yaml_serde::from_str(&text).expect("YAML");
        assert_eq!(
            value["clusters"][0]["cluster"]["certificate-authority"].as_str(),
            Some("/tmp/a \"b\"/apiserver.crt")
        );
        assert_eq!(value["users"][0]["user"]["token"].as_str(), Some("abc"));
        assert_eq!(value["current-context"].as_str(), Some("xtask"));
    }

    #[test]
    fn only_a_started_cluster_is_writable() {
        let file = tempfile::NamedTempFile::new().expect("file");
        let external = External::new(Some(file.path().to_path_buf()), Some("prod".into())).expect("external");
        let cluster = Cluster::External(external);
        assert!(cluster.dry_run_only());
        assert!(cluster.writable().is_none());
        let args: Vec<String> = cluster.helm_args().iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args[2..], ["--kube-context".to_string(), "prod".to_string()]);
        assert!(External::new(Some(PathBuf::from("/nonexistent/kubeconfig")), None).is_err());
    }
}
