//! `cargo xtask bench --verify`: `cargo xtask verify` on the synthetic
//! monorepo against its floor, for each N (default 10, 25, 50 services).
//!
//! The floor is the least an install of every chart into a real API server
//! costs: one `helm install` of the umbrella (all N services in one
//! release, its first environment) into a control plane that is already
//! up. verify does more than that by design (every service installed as a
//! release of its own, the umbrella in each environment, a rendered copy
//! for the duplicate check, a Pod dry-run per workload, its own control
//! plane started and stopped), so the ratio says what that costs.
//!
//! verify runs cold (`--no-cache`, fresh work folder) as a child process,
//! measured by [`measure`] like every other scenario; the floor's control
//! plane is started (and its start timed) here, the umbrella staged before
//! the clock starts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::measure::{self, Measured};
use super::synth;
use crate::core::context::{Context, Format};
use crate::core::graph::ChartGraph;
use crate::core::model::Repo;
use crate::exec::cluster::{ControlPlane, StartOptions};

/// The target: verify within this factor of the floor at N = 50.
const TARGET_RATIO: f64 = 2.0;

/// One size's measurements.
#[derive(Debug, Clone, Serialize)]
struct Row {
    services: usize,
    charts: usize,
    /// Starting the floor's control plane (etcd and kube-apiserver ready).
    control_plane_start_ms: u64,
    /// One `helm install` of the umbrella: every service in one release.
    floor_ms: u64,
    /// `cargo xtask verify --no-cache`, control plane start included.
    verify_ms: u64,
    verify_cpu_ms: u64,
    verify_processes: usize,
    /// verify over the floor.
    ratio: f64,
    /// verify over the floor plus a control plane start.
    ratio_with_start: f64,
}

pub fn run(sizes: &[usize], keep: bool, ctx: &Context) -> Result<()> {
    let tools = crate::exec::tools::ensure(ctx, &[])?;
    crate::exec::tools::ensure_cluster(ctx)?;
    crate::exec::tools::ensure_crds(ctx)?;
    let mut machine = measure::Machine::describe(&tools);
    let exe = std::env::current_exe().context("cannot find the running xtask binary")?;
    let (base, _guard) = super::scratch("xtask-bench-verify-", keep, "bench --verify")?;
    eprintln!(
        "bench --verify: {} core(s), load {:.2}; helm {}, kube-apiserver {}",
        machine.cores,
        machine.load_before,
        machine.helm,
        crate::exec::tools::cluster_version()?
    );
    let mut rows = Vec::new();
    for &n in sizes {
        let dir = base.join(format!("n{n}"));
        let synthetic = synth::generate_from(&ctx.root, &dir.join("repo"), n)?;
        let charts = synthetic.chart_count();
        eprintln!("bench --verify: N={n}: the floor (one helm install of {})...", synthetic.umbrella);
        let (start_ms, floor) = floor(ctx, &tools.helm, &synthetic, &dir.join("floor-work"))?;
        eprintln!(
            "bench --verify: N={n}: control plane {:.2} s, floor {:.2} s; cargo xtask verify...",
            start_ms as f64 / 1000.0,
            floor.wall.as_secs_f64()
        );
        let (verified, processes) = verify(&exe, &synthetic.root, &dir.join("verify-work"))?;
        let floor_ms = floor.wall.as_millis() as u64;
        let verify_ms = verified.wall.as_millis() as u64;
        eprintln!("bench --verify: N={n}: verify {:.2} s, {processes} processes", verified.wall.as_secs_f64());
        rows.push(Row {
            services: n,
            charts,
            control_plane_start_ms: start_ms,
            floor_ms,
            verify_ms,
            verify_cpu_ms: verified.cpu.as_millis() as u64,
            verify_processes: processes,
            ratio: verify_ms as f64 / floor_ms.max(1) as f64,
            ratio_with_start: verify_ms as f64 / (floor_ms + start_ms).max(1) as f64,
        });
    }
    machine.load_after = measure::load_average();
    let mut command = String::from("cargo xtask bench --verify");
    for n in sizes {
        command.push_str(&format!(" --charts {n}"));
    }
    eprintln!(
        "\n{command} ({} cores, load {:.2} before, {:.2} after, {})",
        machine.cores,
        machine.load_before,
        machine.load_after,
        crate::util::time::today()
    );
    eprintln!(
        "{:>4} {:>6} {:>10} {:>9} {:>9} {:>6} {:>11} {:>9}",
        "N", "charts", "cp start", "floor", "verify", "ratio", "w/ start", "processes"
    );
    for row in &rows {
        eprintln!(
            "{:>4} {:>6} {:>9.2}s {:>8.2}s {:>8.2}s {:>5.1}x {:>10.1}x {:>9}",
            row.services,
            row.charts,
            row.control_plane_start_ms as f64 / 1000.0,
            row.floor_ms as f64 / 1000.0,
            row.verify_ms as f64 / 1000.0,
            row.ratio,
            row.ratio_with_start,
            row.verify_processes
        );
    }
    if let Some(row) = rows.iter().find(|r| r.services == 50) {
        let met = row.ratio <= TARGET_RATIO;
        eprintln!(
            "target: verify within {TARGET_RATIO}x of the floor at N = 50: {} ({:.1}x)",
            if met { "met" } else { "missed" },
            row.ratio
        );
    }
    if ctx.format == Format::Json {
        let doc = serde_json::json!({ "machine": machine, "command": command, "sizes": rows });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}

/// Starts a control plane (timed), stages the umbrella (not timed) and
/// measures one `helm install` of it with its first environment's values.
fn floor(
    ctx: &Context,
    helm: &crate::exec::tools::Tool,
    synthetic: &synth::Synthetic,
    work: &Path,
) -> Result<(u64, Measured)> {
    let synth_ctx = Context { root: synthetic.root.clone(), work_dir: work.to_path_buf(), ..ctx.clone() };
    let repo = Repo::discover(&synth_ctx.root, &synth_ctx.config)?;
    let graph = ChartGraph::build(&repo);
    let stager = crate::ops::stage::Stager::new(&synth_ctx, helm, BTreeMap::new());
    let mut umbrella_dir = None;
    for index in graph.topological() {
        let chart = &repo.charts[index];
        stager.stage(&repo, chart).with_context(|| format!("staging {} for the floor", chart.name))?;
        if chart.name == synthetic.umbrella {
            umbrella_dir = Some(stager.staged_dir(chart));
        }
    }
    let umbrella_dir = umbrella_dir.context("the synthetic umbrella was not staged")?;
    let plane = ControlPlane::start(&synth_ctx, &StartOptions::default())?;
    let start_ms = plane.timings().ready_ms;
    let values = synthetic.umbrella_dir().join(format!("values-{}.yaml", synth::ENVIRONMENTS[0]));
    let mut install = Command::new(&helm.path);
    install
        .args(["install", "floor"])
        .arg(&umbrella_dir)
        .arg("--values")
        .arg(&values)
        .args(["--namespace", "floor", "--create-namespace", "--no-hooks", "--timeout", "5m", "--kubeconfig"])
        .arg(plane.kubeconfig());
    let measured = measure::run(install)?;
    if measured.code != Some(0) {
        anyhow::bail!("the floor's helm install failed:\n{}", measured.stderr.trim());
    }
    drop(plane);
    Ok((start_ms, measured))
}

/// `cargo xtask verify --no-cache` over the synthetic repository; its
/// measurement and the tool processes its report counts. Every chart must pass.
fn verify(exe: &Path, root: &Path, work: &Path) -> Result<(Measured, usize)> {
    let mut command = Command::new(exe);
    command.env("XTASK_WORK_DIR", work).arg("--root").arg(root).args(["--format", "json", "verify", "--no-cache"]);
    let measured = measure::run(command)?;
    let report: serde_json::Value = serde_json::from_str(&measured.stdout)
        .with_context(|| format!("verify printed no JSON report:\n{}", measured.stderr.trim()))?;
    if report["ok"] != true {
        anyhow::bail!("verify failed on the synthetic repository:\n{}", measured.stderr.trim());
    }
    Ok((measured, report["processes"].as_u64().unwrap_or(0) as usize))
}
