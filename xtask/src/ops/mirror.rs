//! `cargo xtask mirror`: serve stand-ins for the umbrella's Bitnami charts
//! from a registry on loopback.
//!
//! This machine (and CI) cannot reach Bitnami's registry, so the four
//! Bitnami dependencies are packaged from the stand-in charts under
//! `fixtures/bitnami-standins` (same names and versions) and pushed to a
//! CNCF distribution registry on `127.0.0.1`. Other commands then fetch them
//! there through `--mirror oci://registry-1.docker.io/bitnamicharts=oci://127.0.0.1:PORT/bitnamicharts`,
//! which `mirror start` prints on stdout:
//!
//! ```text
//! MIRROR=$(cargo xtask mirror start --port 0)
//! cargo xtask lint $MIRROR
//! cargo xtask mirror stop
//! ```
//!
//! The registry runs detached, so it survives `mirror start`; its pid, log,
//! configuration and storage live in `<work dir>/mirror/`. `mirror serve` is
//! the variant for tests: a fresh registry on a free port that lives exactly
//! as long as the `mirror serve` process, which runs until its stdin closes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::core::context::{Context, Format};
use crate::core::model::ChartYaml;
use crate::exec::process;
use crate::exec::registry::{self, Registry};
use crate::exec::tools::Tool;
use crate::util::exit::{self, EnvironmentError};

/// The repository the stand-ins stand in for.
pub const BITNAMI: &str = "oci://registry-1.docker.io/bitnamicharts";
/// The registry path the stand-ins are pushed under.
pub const PATH_ON_MIRROR: &str = "bitnamicharts";
/// Where the stand-in charts are, relative to the repository root.
pub const DEFAULT_CHARTS: &str = "fixtures/bitnami-standins";

/// What `cargo xtask mirror` is asked to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Start the registry in the background on this loopback port (0: a
    /// free one) and push the charts of `charts` (default: the stand-ins).
    Start { port: u16, charts: Option<PathBuf> },
    /// Stop the registry `start` started and delete its storage.
    Stop,
    /// Say whether the registry runs.
    Status,
    /// Serve the stand-ins from a fresh registry until stdin closes.
    Serve,
}

/// What `<work dir>/mirror/state.json` records about the running registry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    pid: u32,
    host: String,
    /// The `FROM=TO` mirror value.
    mirror: String,
    charts: Vec<String>,
}

/// The `--format json` document.
#[derive(Debug, Serialize)]
struct Report<'a> {
    command: &'static str,
    running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a State>,
    /// The flag to pass to lint/package: `--mirror FROM=TO`.
    #[serde(skip_serializing_if = "Option::is_none")]
    flag: Option<String>,
}

pub fn run(action: Action, ctx: &Context) -> Result<()> {
    let dir = ctx.work_dir.join("mirror");
    match action {
        Action::Start { port, charts } => start(ctx, &dir, port, charts),
        Action::Stop => stop(ctx, &dir),
        Action::Status => status(ctx, &dir),
        Action::Serve => serve(ctx),
    }
}

fn flag(state: &State) -> String {
    format!("--mirror {}", state.mirror)
}

fn start(ctx: &Context, dir: &Path, port: u16, charts: Option<PathBuf>) -> Result<()> {
    let charts_dir = match charts {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => std::env::current_dir()?.join(dir),
        None => ctx.root.join(DEFAULT_CHARTS),
    };
    if !charts_dir.is_dir() {
        return exit::usage(format!("--charts {}: no such folder", charts_dir.display()));
    }
    if let Some(state) = running(dir) {
        if port != 0 && state.host != format!("127.0.0.1:{port}") {
            return exit::usage(format!(
                "a mirror already runs on {} (pid {}): run `cargo xtask mirror stop` first, or use that one",
                state.host, state.pid
            ));
        }
        eprintln!("mirror: already running on {} (pid {}); pushing the charts again", state.host, state.pid);
        let helm = crate::exec::tools::ensure(ctx, &[])?.helm;
        let pushed = package_and_push(&helm, &charts_dir, &state.host)?;
        let state = State { charts: pushed, ..state };
        save(dir, &state)?;
        return print_running(ctx, "start", &state);
    }
    // A stale state (the registry died or the machine restarted): start afresh.
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let port = if port == 0 { registry::free_port()? } else { port };
    let host = format!("127.0.0.1:{port}");
    if registry::answers(&host) {
        return Err(EnvironmentError(format!(
            "something already answers on {host}: pass another --port (or --port 0 for a free one)"
        ))
        .into());
    }
    let helm = crate::exec::tools::ensure(ctx, &[])?.helm;
    let pid = registry::spawn_daemon(ctx, dir, &host)?;
    let mut state = State { pid, host: host.clone(), mirror: mirror_value(&host), charts: Vec::new() };
    save(dir, &state)?;
    match package_and_push(&helm, &charts_dir, &host) {
        Ok(pushed) => state.charts = pushed,
        Err(err) => {
            // A registry without the charts would only make later errors
            // harder to read: stop it.
            let _ = terminate(dir, &state);
            return Err(err.context("mirror start: the registry was stopped again"));
        }
    }
    save(dir, &state)?;
    eprintln!(
        "mirror: registry on {host} (pid {pid}) serves {}; stop it with `cargo xtask mirror stop`",
        if state.charts.is_empty() { "no charts".to_string() } else { state.charts.join(", ") }
    );
    print_running(ctx, "start", &state)
}

fn print_running(ctx: &Context, command: &'static str, state: &State) -> Result<()> {
    match ctx.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&Report {
                command,
                running: true,
                state: Some(state),
                flag: Some(flag(state))
            })?
        ),
        _ => println!("{}", flag(state)),
    }
    Ok(())
}

fn stop(ctx: &Context, dir: &Path) -> Result<()> {
    let Some(state) = load(dir) else {
        eprintln!("mirror: not running (nothing recorded in {})", ctx.shown(dir));
        return report_stopped(ctx, "stop");
    };
    terminate(dir, &state)?;
    eprintln!("mirror: stopped the registry on {} (pid {})", state.host, state.pid);
    report_stopped(ctx, "stop")
}

/// `mirror serve`: the in-process registry of [`serve_standins`], until
/// stdin reaches its end (the parent closed it, or the parent died).
fn serve(ctx: &Context) -> Result<()> {
    let (registry, value) = serve_standins(ctx)?;
    eprintln!("mirror: serving the stand-ins on {} until stdin closes", registry.host());
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        match ctx.format {
            Format::Json => writeln!(
                stdout,
                "{}",
                serde_json::json!({ "command": "serve", "running": true, "host": registry.host(), "mirror": value, "flag": format!("--mirror {value}") })
            )?,
            _ => writeln!(stdout, "--mirror {value}")?,
        }
        stdout.flush()?;
    }
    process::wait_for_stdin_end();
    drop(registry);
    Ok(())
}

fn status(ctx: &Context, dir: &Path) -> Result<()> {
    match running(dir) {
        Some(state) => {
            eprintln!("mirror: running on {} (pid {}), serving {}", state.host, state.pid, state.charts.join(", "));
            print_running(ctx, "status", &state)
        }
        None => {
            eprintln!("mirror: not running; start it with `cargo xtask mirror start`");
            report_stopped(ctx, "status")?;
            Err(exit::ChecksFailed.into())
        }
    }
}

fn report_stopped(ctx: &Context, command: &'static str) -> Result<()> {
    if ctx.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&Report { command, running: false, state: None, flag: None })?);
    }
    Ok(())
}

/// `FROM=TO` for a registry on `host`.
fn mirror_value(host: &str) -> String {
    format!("{BITNAMI}=oci://{host}/{PATH_ON_MIRROR}")
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn save(dir: &Path, state: &State) -> Result<()> {
    crate::util::fs::write_atomic(&state_path(dir), serde_json::to_string_pretty(state)?.as_bytes())
}

fn load(dir: &Path) -> Option<State> {
    let text = std::fs::read_to_string(state_path(dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The recorded registry, if its process is still ours and answers.
fn running(dir: &Path) -> Option<State> {
    let state = load(dir)?;
    (is_our_registry(dir, state.pid) && registry::answers(&state.host)).then_some(state)
}

/// Whether `pid` is the registry serving `dir`'s config (and not some other
/// process that got the pid after ours ended).
fn is_our_registry(dir: &Path, pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let config = dir.join("config.yml").display().to_string();
    cmdline.split(|&b| b == 0).any(|arg| arg == config.as_bytes())
}

/// Stops the recorded registry (if it is still ours) and removes its folder.
fn terminate(dir: &Path, state: &State) -> Result<()> {
    if is_our_registry(dir, state.pid) {
        let pid = state.pid as libc::pid_t;
        // SAFETY: kill(2) on the pid we recorded, checked above to still be
        // the registry running our configuration.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_our_registry(dir, state.pid) && !is_zombie(state.pid) {
            if Instant::now() > deadline {
                // SAFETY: as above.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))
}

/// A process that exited but was not reaped yet (its parent is us, in
/// `mirror start`'s error path) still has its /proc entry.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}

/// Packages every chart folder directly under `charts_dir` (one `helm
/// package`) and pushes each archive to `oci://<host>/bitnamicharts`.
/// Returns `name-version` of each chart pushed.
pub fn package_and_push(helm: &Tool, charts_dir: &Path, host: &str) -> Result<Vec<String>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(charts_dir)
        .with_context(|| format!("cannot list {}", charts_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("Chart.yaml").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for dir in &dirs {
        let shown = format!("{}/Chart.yaml", dir.display());
        let meta: ChartYaml = crate::util::yaml::load(&dir.join("Chart.yaml"), &shown)?;
        match (meta.name, meta.version) {
            (Some(name), Some(version)) => names.push(format!("{name}-{version}")),
            _ => anyhow::bail!("{shown}: `name` and `version` are required"),
        }
    }
    let scratch = tempfile::tempdir().context("cannot create a scratch folder for packaging")?;
    let dest = scratch.path();
    let sh = xshell::Shell::new()?;
    let helm_path = &helm.path;
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .unwrap_or_else(|_| crate::ops::package::build::DEFAULT_SOURCE_DATE_EPOCH.to_string());
    let packaged = process::run(
        xshell::cmd!(sh, "{helm_path} package {dirs...} --destination {dest}").env("SOURCE_DATE_EPOCH", &epoch),
        None,
    )?;
    if !packaged.success {
        anyhow::bail!(
            "mirror: `helm package` of the charts in {} failed:\n{}\nfix: run `helm lint` on the chart named above",
            charts_dir.display(),
            packaged.combined()
        );
    }
    let target = format!("oci://{host}/{PATH_ON_MIRROR}");
    for name in &names {
        let archive = dest.join(format!("{name}.tgz"));
        let pushed = process::run(xshell::cmd!(sh, "{helm_path} push {archive} {target} --plain-http"), None)?;
        if !pushed.success {
            return Err(EnvironmentError(format!(
                "mirror: cannot push {name} to {target}:\n{}",
                crate::ops::stage::strip_registry_noise(&pushed.combined())
            ))
            .into());
        }
    }
    Ok(names)
}

/// For in-process callers: starts a fresh registry (stopped when the
/// returned value is dropped), pushes the stand-ins under
/// `fixtures/bitnami-standins`, and returns it with the `FROM=TO` mirror
/// value. `mirror serve` runs it for integration tests (see `tests/support`).
pub fn serve_standins(ctx: &Context) -> Result<(Registry, String)> {
    let registry = Registry::start(ctx)?;
    let helm = crate::exec::tools::ensure(ctx, &[])?.helm;
    package_and_push(&helm, &ctx.root.join(DEFAULT_CHARTS), registry.host())?;
    let value = mirror_value(registry.host());
    Ok((registry, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-process API end to end: a real registry on loopback serves the
    /// four stand-ins, and dropping it stops the process.
    #[test]
    fn serve_standins_pushes_the_four_charts_and_stops_on_drop() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let ctx = Context::new(Some(root), Format::Human).expect("context");
        let (registry, value) = serve_standins(&ctx).expect("serve the stand-ins");
        let host = registry.host().to_string();
        assert_eq!(value, format!("{BITNAMI}=oci://{host}/bitnamicharts"));
        let helm = crate::exec::tools::ensure(&ctx, &[]).expect("helm").helm;
        let pulled = tempfile::tempdir().expect("temp dir");
        let sh = xshell::Shell::new().expect("shell");
        let (helm, dest) = (&helm.path, pulled.path());
        for (name, version) in
            [("mongodb", "17.0.2"), ("mysql", "14.0.5"), ("redis", "23.1.1"), ("rabbitmq", "16.0.16")]
        {
            let reference = format!("oci://{host}/bitnamicharts/{name}");
            process::run_ok(
                xshell::cmd!(sh, "{helm} pull {reference} --version {version} --plain-http --destination {dest}"),
                None,
            )
            .expect("pull a stand-in");
        }
        drop(registry);
        assert!(!registry::answers(&host), "the registry still answers after drop");
    }
}
