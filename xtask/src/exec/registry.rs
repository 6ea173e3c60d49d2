//! The CNCF distribution registry on loopback: an OCI registry for tests and
//! for `cargo xtask mirror`.
//!
//! Two ways to run it:
//! - [`Registry::start`]: for the life of a value, on a free port, with
//!   storage in a temporary folder; dropping the value stops the process and
//!   removes the storage. The process also gets `PR_SET_PDEATHSIG`, so it
//!   dies with the thread that started it even when that thread's process is
//!   killed and `Drop` never runs (Ctrl-C, a test harness timeout): no
//!   orphaned registries. Keep the value on the thread that created it.
//! - [`spawn_daemon`]: detached (its own session, output to a log file) so it
//!   outlives the command that started it; `mirror stop` ends it by pid.
//!
//! These and the control plane (`cluster.rs`) are the only child processes
//! not started through [`crate::exec::process::run`], which waits for its
//! child to finish: a server has to keep running while we use it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::core::context::Context;
use crate::util::exit::EnvironmentError;

/// How long a registry may take to answer after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A registry process that lives as long as this value.
pub struct Registry {
    child: Child,
    host: String,
    /// Config and storage; removed when dropped (after the process stopped).
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry on a free loopback port with temporary storage and
    /// waits until it answers.
    pub fn start(ctx: &Context) -> Result<Registry> {
        let binary = crate::exec::tools::ensure_registry(ctx)?.path;
        let mut last_error = None;
        // Another process may take the port between our probe and the
        // registry's bind; try a few ports before giving up.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("xtask-registry-")
                .tempdir()
                .context("cannot create a temporary folder for the registry")?;
            let port = free_port()?;
            let host = format!("127.0.0.1:{port}");
            let config = write_config(dir.path(), &host, &dir.path().join("storage"))?;
            let log = std::fs::File::create(dir.path().join("registry.log"))?;
            let mut command = command(&binary, &config)?;
            command.stdout(log.try_clone()?).stderr(log).stdin(Stdio::null());
            // SAFETY: prctl(2) is async-signal-safe and touches nothing but
            // the child's own process attributes.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
            let mut child =
                command.spawn().with_context(|| format!("cannot start the registry {}", binary.display()))?;
            match wait_ready(&host, Some(&mut child), &dir.path().join("registry.log")) {
                Ok(()) => return Ok(Registry { child, host, _dir: dir }),
                Err(err) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = Some(err);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("the registry did not start")))
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // SIGTERM first: the registry flushes nothing we need, but a polite
        // stop keeps its log readable.
        crate::exec::process::terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// Starts a registry that outlives this process: storage under `dir`,
/// output in `dir/registry.log`. Returns the pid once it answers on `host`.
pub fn spawn_daemon(ctx: &Context, dir: &Path, host: &str) -> Result<u32> {
    let binary = crate::exec::tools::ensure_registry(ctx)?.path;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let config = write_config(dir, host, &dir.join("storage"))?;
    let log_path = dir.join("registry.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut command = command(&binary, &config)?;
    command.stdout(log.try_clone()?).stderr(log).stdin(Stdio::null());
    // SAFETY: setsid(2) is async-signal-safe; a new session detaches the
    // registry from our terminal, so Ctrl-C in the shell does not reach it.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().with_context(|| format!("cannot start the registry {}", binary.display()))?;
    let pid = child.id();
    if let Err(err) = wait_ready(host, Some(&mut child), &log_path) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(err);
    }
    Ok(pid)
}

/// The registry command line. Tracing is switched off: distribution v3
/// otherwise tries to export traces to localhost:4318 and logs each failure.
fn command(binary: &Path, config: &Path) -> Result<Command> {
    let sh = xshell::Shell::new()?;
    let command: Command = xshell::cmd!(sh, "{binary} serve {config}")
        .env("OTEL_TRACES_EXPORTER", "none")
        .env("OTEL_SDK_DISABLED", "true")
        .into();
    Ok(command)
}

/// Writes the registry's configuration file into `dir`.
fn write_config(dir: &Path, host: &str, storage: &Path) -> Result<PathBuf> {
    let storage = storage.display().to_string();
    // JSON strings are valid YAML scalars and escape any odd path safely.
    let text = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {}\n",
        serde_json::to_string(&storage)?,
        serde_json::to_string(host)?
    );
    let path = dir.join("config.yml");
    crate::util::fs::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Whether something answers the registry API (`GET /v2/` with 200 or 401)
/// on `host`. Plain HTTP over a socket, not an HTTP client: a client would
/// honour `HTTP_PROXY` and send loopback traffic to a proxy.
pub fn answers(host: &str) -> bool {
    let Ok(addr) = host.parse() else { return false };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let Ok(n) = stream.read(&mut head) else { return false };
    let status = String::from_utf8_lossy(&head[..n]);
    status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") || status.contains(" 401 ")
}

/// Waits until the registry answers; fails early when the process exited.
fn wait_ready(host: &str, mut child: Option<&mut Child>, log: &Path) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        // Exit first: an answer from another server on the port is not ours.
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(EnvironmentError(format!(
                    "the registry exited ({status}) before answering on {host}:\n{}",
                    tail(log)
                ))
                .into());
            }
        }
        if answers(host) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(EnvironmentError(format!(
                "the registry did not answer on {host} within {}s:\n{}",
                READY_TIMEOUT.as_secs(),
                tail(log)
            ))
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last lines of a log file, for error messages.
pub fn tail(log: &Path) -> String {
    crate::exec::process::tail(&std::fs::read_to_string(log).unwrap_or_default(), 10)
}
