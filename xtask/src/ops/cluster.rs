//! `cargo xtask cluster start|stop|status|serve`: a throwaway Kubernetes
//! control plane on loopback (etcd and kube-apiserver, see
//! `exec/cluster.rs`) for installing the charts against a real API server.
//!
//! ```text
//! export KUBECONFIG=$(cargo xtask cluster start)
//! helm install shop helm/robot-shop ...
//! cargo xtask cluster stop
//! ```
//!
//! Everything lives in `<work dir>/cluster/`: `state.json` (pids with
//! their start times, ports, timings), `kubeconfig`, `serve.log`, and the
//! control plane's own `run-*` folder. `serve` owns the control plane and
//! runs in the foreground until its stdin closes (for tests: a parent that
//! dies closes it too) or it gets Ctrl-C/SIGTERM; either way it stops both
//! programs and removes its files before it exits. `start` runs that same
//! `serve` detached (its own session, stdin ignored), waits until it
//! recorded a ready control plane, and prints the kubeconfig path; `stop`
//! sends it SIGTERM and waits, and kills what is left after a grace period.
//! One control plane per work folder: a lock held by `serve` says so.

use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::core::context::{Context, Format};
use crate::exec::cluster::{self, ControlPlane, Endpoint, StartOptions, Timings};
use crate::exec::process;
use crate::util::exit::{self, EnvironmentError};

/// How long `start` waits for the detached `serve` to record a ready
/// control plane (the tools are built before it is started).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long `stop` waits for `serve` to clean up before it kills.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What `cluster` is asked to do, free of clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opts {
    Start,
    Stop,
    Status,
    Serve { detached: bool },
}

/// `<work dir>/cluster/state.json`: what `serve` records once ready.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// The `serve` process that owns the control plane.
    serve: Pid,
    etcd: Pid,
    kube_apiserver: Pid,
    endpoint: Endpoint,
    etcd_url: String,
    kubeconfig: PathBuf,
    /// The control plane's own folder.
    dir: PathBuf,
    timings: Timings,
}

/// A pid and its start time: together they name one process for good.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Pid {
    pid: u32,
    start_time: u64,
}

impl Pid {
    fn of(pid: u32) -> Option<Pid> {
        process::start_time(pid).map(|start_time| Pid { pid, start_time })
    }

    /// Whether the process recorded is still running.
    fn alive(&self) -> bool {
        process::start_time(self.pid) == Some(self.start_time)
    }

    fn signal(&self, signal: libc::c_int) {
        if self.alive() {
            // SAFETY: kill(2) on a pid checked just above to still be the
            // process we recorded.
            unsafe {
                libc::kill(self.pid as libc::pid_t, signal);
            }
        }
    }
}

/// The `--format json` document. Its state carries no token: output
/// ends up in CI logs; the token is in the kubeconfig (mode 0600).
#[derive(Debug, Serialize)]
struct Report<'a> {
    command: &'static str,
    running: bool,
    /// `/readyz` answered ok (status only).
    #[serde(skip_serializing_if = "Option::is_none")]
    ready: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kubeconfig: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'a str>,
    /// Start-to-ready, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    ready_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<State>,
}

impl<'a> Report<'a> {
    fn of(command: &'static str, state: Option<&'a State>) -> Report<'a> {
        Report {
            command,
            running: state.is_some(),
            ready: None,
            kubeconfig: state.map(|s| s.kubeconfig.as_path()),
            server: state.map(|s| s.endpoint.server.as_str()),
            ready_ms: state.map(|s| s.timings.ready_ms),
            state: state.cloned().map(|mut state| {
                state.endpoint.token = "(hidden)".into();
                state
            }),
        }
    }
}

pub fn run(opts: Opts, ctx: &Context) -> Result<()> {
    let dir = ctx.work_dir.join("cluster");
    match opts {
        Opts::Start => start(ctx, &dir),
        Opts::Stop => stop(ctx, &dir),
        Opts::Status => status(ctx, &dir),
        Opts::Serve { detached } => serve(ctx, &dir, detached),
    }
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn load(dir: &Path) -> Option<State> {
    serde_json::from_str(&std::fs::read_to_string(state_path(dir)).ok()?).ok()
}

/// The recorded control plane, if its `serve` process still runs.
fn running(dir: &Path) -> Option<State> {
    load(dir).filter(|state| state.serve.alive())
}

fn print(ctx: &Context, report: &Report<'_>) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match ctx.format {
        // `serve`'s one line is what a test reads before it goes on.
        Format::Json if report.command == "serve" => writeln!(stdout, "{}", serde_json::to_string(report)?)?,
        Format::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(report)?)?,
        _ => {
            if let Some(kubeconfig) = report.kubeconfig {
                writeln!(stdout, "{}", kubeconfig.display())?;
            }
        }
    }
    stdout.flush()?;
    Ok(())
}

/// `serve`: one control plane for the life of this process.
fn serve(ctx: &Context, dir: &Path, detached: bool) -> Result<()> {
    // Signals only raise a flag from here on: the loop below stops the
    // control plane in order and removes its files.
    let _deferred = process::defer_interrupts();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = std::fs::File::create(dir.join(".lock")).with_context(|| format!("cannot create {}", dir.display()))?;
    if lock.try_lock().is_err() {
        let shown = running(dir).map(|s| format!(" (serve pid {})", s.serve.pid)).unwrap_or_default();
        return exit::usage(format!(
            "a control plane already runs for {}{shown}: use it, or stop it with `cargo xtask cluster stop`",
            ctx.shown(dir)
        ));
    }
    // Nothing holds the lock, so whatever is recorded is left over.
    remove_leftovers(dir, load(dir).as_ref());

    let kubeconfig = dir.join("kubeconfig");
    let mut plane = ControlPlane::start(ctx, &StartOptions { kubeconfig: Some(kubeconfig.clone()) })?;
    let state = record(dir, &plane)?;
    eprintln!(
        "cluster: kube-apiserver on {} (etcd {}), ready in {:.1} s; kubeconfig {}",
        state.endpoint.server,
        state.etcd_url,
        state.timings.ready_ms as f64 / 1000.0,
        kubeconfig.display()
    );
    print(ctx, &Report::of("serve", Some(&state)))?;

    let stdin_closed = if detached { None } else { Some(watch_stdin()) };
    let outcome = loop {
        if process::interrupted() {
            break Ok(());
        }
        if stdin_closed.as_ref().is_some_and(|rx| rx.try_recv() != Err(std::sync::mpsc::TryRecvError::Empty)) {
            break Ok(());
        }
        if let Some(exited) = plane.exited() {
            break Err(EnvironmentError(format!("cluster: the control plane stopped by itself: {exited}")).into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // State first: once the processes are gone it would be a lie.
    let _ = std::fs::remove_file(state_path(dir));
    drop(plane);
    eprintln!("cluster: stopped");
    outcome
}

/// A channel that gets a message (or is closed) when stdin reaches its end.
fn watch_stdin() -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        process::wait_for_stdin_end();
        let _ = tx.send(());
    });
    rx
}

fn record(dir: &Path, plane: &ControlPlane) -> Result<State> {
    let pids = plane.pids();
    let pid = |pid: u32, name: &str| Pid::of(pid).with_context(|| format!("{name} (pid {pid}) is gone"));
    let state = State {
        serve: pid(std::process::id(), "this process")?,
        etcd: pid(pids[0], "etcd")?,
        kube_apiserver: pid(pids[1], "kube-apiserver")?,
        endpoint: plane.endpoint().clone(),
        etcd_url: plane.etcd_url().to_string(),
        kubeconfig: plane.kubeconfig().to_path_buf(),
        dir: plane.dir().to_path_buf(),
        timings: plane.timings(),
    };
    // write_atomic creates the file 0600: it holds the token.
    crate::util::fs::write_atomic(&state_path(dir), serde_json::to_string_pretty(&state)?.as_bytes())?;
    Ok(state)
}

/// `start`: `serve --detached` in its own session, then wait for its state.
fn start(ctx: &Context, dir: &Path) -> Result<()> {
    if let Some(state) = running(dir) {
        eprintln!("cluster: already running on {} (serve pid {})", state.endpoint.server, state.serve.pid);
        return print(ctx, &Report::of("start", Some(&state)));
    }
    // Built here, with progress on this terminal, not silently in the log.
    crate::exec::tools::ensure_cluster(ctx)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the running xtask binary")?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--root")
        .arg(&ctx.root)
        .args(["cluster", "serve", "--detached"])
        .env("XTASK_WORK_DIR", &ctx.work_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid(2) is async-signal-safe; a new session keeps the
    // terminal's Ctrl-C away from the control plane.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().context("cannot start `cargo xtask cluster serve`")?;
    // Until it is ready, Ctrl-C here stops it too.
    let tracked = process::track(child.id());
    let deadline = Instant::now() + START_TIMEOUT;
    let state = loop {
        if let Some(state) = load(dir).filter(|s| s.serve.pid == child.id() && s.serve.alive()) {
            break state;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(EnvironmentError(format!(
                "cluster start: `cluster serve` exited ({status}); the end of {}:\n{}",
                log_path.display(),
                process::tail(&log, 40)
            ))
            .into());
        }
        if Instant::now() > deadline {
            // SAFETY: kill(2) on our own child, not reaped yet.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = child.wait();
            return Err(EnvironmentError(format!(
                "cluster start: not ready within {}s; stopped it. Its log:\n{}",
                START_TIMEOUT.as_secs(),
                crate::exec::registry::tail(&log_path)
            ))
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(tracked);
    eprintln!(
        "cluster: kube-apiserver on {} ready in {:.1} s (serve pid {}); stop it with `cargo xtask cluster stop`",
        state.endpoint.server,
        state.timings.ready_ms as f64 / 1000.0,
        state.serve.pid
    );
    print(ctx, &Report::of("start", Some(&state)))
}

fn stop(ctx: &Context, dir: &Path) -> Result<()> {
    let Some(state) = load(dir) else {
        eprintln!("cluster: not running (nothing recorded in {})", ctx.shown(dir));
        return print(ctx, &Report::of("stop", None));
    };
    // `serve` stops its programs and removes its files on SIGTERM.
    state.serve.signal(libc::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    let all = [state.serve, state.kube_apiserver, state.etcd];
    while all.iter().any(Pid::alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed: Vec<u32> = all.iter().filter(|p| p.alive()).map(|p| p.pid).collect();
    for pid in &all {
        pid.signal(libc::SIGKILL);
    }
    remove_leftovers(dir, Some(&state));
    if killed.is_empty() {
        eprintln!("cluster: stopped the control plane on {}", state.endpoint.server);
    } else {
        eprintln!("cluster: stopped the control plane on {}; killed pids {killed:?}", state.endpoint.server);
    }
    print(ctx, &Report::of("stop", None))
}

/// Removes the files of a control plane that is no longer running.
fn remove_leftovers(dir: &Path, state: Option<&State>) {
    if let Some(state) = state {
        let _ = std::fs::remove_dir_all(&state.dir);
        let _ = std::fs::remove_file(&state.kubeconfig);
    }
    let _ = std::fs::remove_file(dir.join("kubeconfig"));
    let _ = std::fs::remove_file(state_path(dir));
}

fn status(ctx: &Context, dir: &Path) -> Result<()> {
    let Some(state) = running(dir) else {
        eprintln!("cluster: not running; start it with `cargo xtask cluster start`");
        print(ctx, &Report::of("status", None))?;
        return Err(exit::ChecksFailed.into());
    };
    let processes = state.etcd.alive() && state.kube_apiserver.alive();
    let ready = processes && cluster::is_ready(&state.endpoint);
    eprintln!(
        "cluster: {} on {} (serve pid {}, etcd pid {}, kube-apiserver pid {}), ready in {:.1} s after start",
        if ready { "running and ready" } else { "running but not ready" },
        state.endpoint.server,
        state.serve.pid,
        state.etcd.pid,
        state.kube_apiserver.pid,
        state.timings.ready_ms as f64 / 1000.0
    );
    let mut report = Report::of("status", Some(&state));
    report.ready = Some(ready);
    print(ctx, &report)?;
    if ready {
        Ok(())
    } else {
        Err(exit::ChecksFailed.into())
    }
}
