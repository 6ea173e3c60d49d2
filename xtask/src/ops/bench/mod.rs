//! `cargo xtask bench`: how fast `cargo xtask lint` is against the
//! one-chart-at-a-time way, on synthetic monorepos of N service charts.
//!
//! For each N (default 10, 50, 200) it generates a repository ([`synth`])
//! in a temporary folder and measures, one after another on this machine:
//! 1. baseline: one chart at a time, chart-testing style ([`baseline`]);
//! 2. floor: one `helm lint` over every chart, one render and one
//!    kubeconform per Kubernetes version: the least work possible;
//! 3. `cargo xtask lint --no-cache` (cold: fresh work folder), three times,
//!    the median counting;
//! 4. the same again with nothing changed (warm: every chart from the cache);
//! 5. a fresh copy and work folder against a warm remote cache (a registry
//!    on loopback that a writer filled): every chart a remote hit;
//! 6. again after one leaf service chart changed: only it and the umbrella
//!    may be checked, which the benchmark asserts from the JSON statuses.
//!
//! Every scenario is a child process measured by [`measure`]: wall time,
//! tool processes started, peak memory. The table goes to stderr, `--format
//! json` puts the results on stdout. A scenario whose verdicts are wrong is
//! an error (exit 1); the timing targets are printed as met or
//! missed but do not fail the run, since they depend on the machine and on
//! whatever else runs on it.

mod baseline;
mod hostile;
pub mod measure;
mod plot;
pub mod synth;
mod verify;
mod vs_ct;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::core::context::{Context, Format};
use measure::{Machine, Measured, COLD_RUNS};

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Number of service charts of a synthetic repository (repeatable) [default: 10, 50, 200].
    pub charts: Vec<usize>,
    /// Keep the synthetic repositories and work folders (their place is printed).
    pub keep: bool,
    /// Skip the one-chart-at-a-time baseline (minutes at N=200); no speed-ups are shown then.
    pub no_baseline: bool,
    /// Only write the synthetic repository of the first --charts N (default 10) to DIR, measure nothing.
    pub generate: Option<std::path::PathBuf>,
    /// Internal: run one reference scenario in this process over --root and
    /// print its outcome as JSON (the benchmark measures it from outside).
    pub scenario: Option<Reference>,
    /// Compare with chart-testing instead: `ct lint --all` against
    /// `cargo xtask lint` on the synthetic monorepo, verdicts equal, wall
    /// times and ratio [default size: 50 services].
    pub vs_ct: bool,
    /// Measure `cargo xtask verify` instead: against one `helm install` of
    /// every service in one release [default sizes: 10, 25, 50 services].
    pub verify: bool,
    /// Measure how fast hostile files (100,000 nested brackets in the matrix
    /// and a values file) are refused, against a clean lint.
    pub hostile: bool,
    /// Also draw wall time against N for every scenario as an SVG here.
    pub plot: Option<std::path::PathBuf>,
}

/// The reference scenarios that run inside a child of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reference {
    Baseline,
    Floor,
}

/// The targets (issue 6), checked at every N, required at N = 200.
const TARGET_SPEEDUP: f64 = 10.0;
const TARGET_WARM: Duration = Duration::from_millis(500);
const TARGET_LEAF: Duration = Duration::from_secs(2);
const TARGET_FLOOR_RATIO: f64 = 1.5;
/// Issue 13: a fresh clone and work folder against a warm remote cache.
const TARGET_REMOTE: Duration = Duration::from_secs(2);

/// One measured scenario.
#[derive(Debug, Clone, Serialize)]
struct Row {
    scenario: &'static str,
    wall_ms: u64,
    /// CPU time (user + system) of the scenario's whole process tree.
    cpu_ms: u64,
    /// Baseline wall time divided by this one (absent without a baseline).
    speedup: Option<f64>,
    /// Tool processes (helm, kubeconform) started.
    processes: usize,
    peak_rss_mib: f64,
    /// Charts whose checks ran (not taken from the cache).
    charts_checked: usize,
}

/// One target of the issue, as measured.
#[derive(Debug, Clone, Serialize)]
struct Target {
    name: String,
    met: bool,
}

/// Everything measured for one repository size.
#[derive(Debug, Clone, Serialize)]
struct SizeResult {
    services: usize,
    charts: usize,
    scenarios: Vec<Row>,
    /// Wall times of every cold run, fastest first; the table shows the median.
    cold_runs_s: Vec<f64>,
    /// Cold `lint --no-cache` wall time (median) over the floor's.
    cold_over_floor: f64,
    /// Charts re-checked after the leaf change (asserted: the leaf and the umbrella).
    rechecked_after_leaf_change: Vec<String>,
    targets: Vec<Target>,
}

/// The `--format json` document.
#[derive(Debug, Clone, Serialize)]
struct Results {
    machine: Machine,
    kube_versions: Vec<String>,
    /// How to run it again.
    command: String,
    sizes: Vec<SizeResult>,
}

pub fn run(args: Opts, ctx: &Context) -> Result<()> {
    // The synthetic repositories have no xtask.toml: they are checked for the
    // default Kubernetes versions, and so is everything compared with them.
    let kube_versions = crate::core::config::Config::default().kube_versions;
    if let Some(reference) = args.scenario {
        return run_reference(reference, ctx, &kube_versions);
    }
    if args.hostile {
        return hostile::run(ctx);
    }
    if args.verify {
        let sizes = if args.charts.is_empty() { vec![10, 25, 50] } else { args.charts.clone() };
        if sizes.contains(&0) {
            return crate::util::exit::usage("--charts 0: a synthetic repository needs at least one service chart");
        }
        return verify::run(&sizes, args.keep, ctx);
    }
    if args.vs_ct {
        let sizes = if args.charts.is_empty() { vec![50] } else { args.charts.clone() };
        if sizes.contains(&0) {
            return crate::util::exit::usage("--charts 0: a synthetic repository needs at least one service chart");
        }
        return vs_ct::run(&sizes, args.keep, ctx);
    }
    let sizes = if args.charts.is_empty() { vec![10, 50, 200] } else { args.charts.clone() };
    if sizes.contains(&0) {
        return crate::util::exit::usage("--charts 0: a synthetic repository needs at least one service chart");
    }
    if let Some(dir) = &args.generate {
        let n = args.charts.first().copied().unwrap_or(10);
        let synthetic = synth::generate_from(&ctx.root, dir, n)?;
        eprintln!(
            "bench: wrote {} services on the library chart {:?} and the umbrella {} ({}) to {}",
            synthetic.services.len(),
            synthetic.library,
            synthetic.umbrella,
            synthetic.umbrella_dir().display(),
            synthetic.root.display()
        );
        return Ok(());
    }
    // Installs or finds the tools once, before anything is timed.
    let tools = crate::exec::tools::ensure(ctx, &kube_versions)?;
    let mut machine = Machine::describe(&tools);
    let exe = std::env::current_exe().context("cannot find the running xtask binary")?;
    let (base, _guard) = scratch("xtask-bench-", args.keep, "bench")?;
    eprintln!(
        "bench: {} core(s), {:.1} GiB, load {:.2}; helm {}, kubeconform {}; Kubernetes {}",
        machine.cores,
        machine.memory_gib,
        machine.load_before,
        machine.helm,
        machine.kubeconform,
        kube_versions.join(", ")
    );
    let project = ctx.root.clone();
    let mut results = Vec::new();
    for &n in &sizes {
        let dir = base.join(format!("n{n}"));
        results.push(bench_size(ctx, &exe, &project, &dir, n, !args.no_baseline)?);
    }
    machine.load_after = measure::load_average();
    let command = command_line(&args);
    print_table(&machine, &results, &command);
    if let Some(file) = &args.plot {
        let title = format!("{command} ({} cores, {})", machine.cores, crate::util::time::today());
        crate::util::fs::write_atomic(file, plot::svg(&series(&results), &title).as_bytes())?;
        eprintln!("bench: plot written to {}", file.display());
    }
    if ctx.format == Format::Json {
        let doc = Results { machine, kube_versions, command, sizes: results };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}

/// A temporary folder for the synthetic repositories (removed when the
/// guard drops), or with `keep` one that outlives the run even when a
/// scenario fails: that is when it is most worth a look.
fn scratch(prefix: &str, keep: bool, who: &str) -> Result<(std::path::PathBuf, Option<tempfile::TempDir>)> {
    let temp = tempfile::Builder::new().prefix(prefix).tempdir().context("cannot create a temporary folder")?;
    if keep {
        let kept = temp.keep();
        eprintln!("{who}: the synthetic repositories stay in {}", kept.display());
        return Ok((kept, None));
    }
    Ok((temp.path().to_path_buf(), Some(temp)))
}

/// One plot line per scenario, in the order they were measured.
fn series(results: &[SizeResult]) -> Vec<plot::Series> {
    let mut series: Vec<plot::Series> = Vec::new();
    for size in results {
        for row in &size.scenarios {
            let point = (size.services as f64, row.wall_ms as f64 / 1000.0);
            match series.iter_mut().find(|s| s.name == row.scenario) {
                Some(line) => line.points.push(point),
                None => series.push(plot::Series { name: row.scenario.to_string(), points: vec![point] }),
            }
        }
    }
    series
}

/// The command that reproduces this run, for the table and the README.
fn command_line(args: &Opts) -> String {
    let mut line = String::from("cargo xtask bench");
    for n in &args.charts {
        line.push_str(&format!(" --charts {n}"));
    }
    if args.no_baseline {
        line.push_str(" --no-baseline");
    }
    line
}

fn run_reference(reference: Reference, ctx: &Context, kube_versions: &[String]) -> Result<()> {
    let tools = crate::exec::tools::ensure(ctx, kube_versions)?;
    let outcome = match reference {
        Reference::Baseline => baseline::baseline(ctx, &tools, kube_versions)?,
        Reference::Floor => baseline::floor(ctx, &tools, kube_versions)?,
    };
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

/// Generates the repository of `n` services under `dir` and measures every scenario.
fn bench_size(
    ctx: &Context,
    exe: &Path,
    project: &Path,
    dir: &Path,
    n: usize,
    with_baseline: bool,
) -> Result<SizeResult> {
    let synthetic = synth::generate_from(project, &dir.join("repo"), n)?;
    let charts = synthetic.chart_count();
    eprintln!("bench: N={n}: {charts} charts in {}", synthetic.root.display());
    let mut rows = Vec::new();

    // The references get their own copy: `helm dependency build` writes
    // archives into every chart folder, which the xtask runs must not see.
    let reference_root = dir.join("reference");
    synth::copy_tree(&synthetic.root, &reference_root)?;
    let baseline = if with_baseline {
        let (measured, outcome) = reference(exe, &reference_root, Reference::Baseline)?;
        progress(n, "baseline", &measured);
        rows.push(row("baseline: one chart at a time", &measured, outcome.processes, outcome.charts));
        Some(measured.wall)
    } else {
        // The floor needs the archives `helm dependency build` leaves behind.
        prepare_dependencies(&reference_root)?;
        None
    };
    let (floor, outcome) = reference(exe, &reference_root, Reference::Floor)?;
    progress(n, "floor", &floor);
    rows.push(row("floor: 1 lint + 1 render/kube", &floor, outcome.processes, outcome.charts));

    // Cold runs, each in a fresh work folder; their median is the cold figure.
    let mut colds = Vec::new();
    for run in 1..=COLD_RUNS {
        let work = dir.join(format!("work-{run}"));
        let (cold, report) = lint(exe, &synthetic.root, &work, true)?;
        progress(n, &format!("cold {run}/{COLD_RUNS}"), &cold);
        let checked = report.expect_statuses(Expect::AllChecked, "cold `lint --no-cache`", &cold)?;
        colds.push((cold, (report.processes, checked, work)));
    }
    let ((cold, (processes, checked, work)), walls) = measure::median(colds)?;
    let cold_runs_s: Vec<f64> = walls.iter().map(Duration::as_secs_f64).collect();
    rows.push(row("xtask lint --no-cache (cold)", &cold, processes, checked));

    let (warm, report) = lint(exe, &synthetic.root, &work, false)?;
    progress(n, "warm", &warm);
    let checked = report.expect_statuses(Expect::Checked(&BTreeSet::new()), "warm re-run", &warm)?;
    rows.push(row("xtask lint, warm, no change", &warm, report.processes, checked));

    let (remote, report) = remote_hit(ctx, exe, &synthetic.root, &work, dir)?;
    progress(n, "remote hit", &remote);
    let checked = report.expect_statuses(Expect::Checked(&BTreeSet::new()), "remote hit", &remote)?;
    rows.push(row("xtask lint, remote hit", &remote, report.processes, checked));

    let leaf = synthetic.services.last().cloned().context("no service charts")?;
    touch_leaf(&synthetic, &leaf)?;
    let (changed, report) = lint(exe, &synthetic.root, &work, false)?;
    progress(n, "one leaf changed", &changed);
    let expected: BTreeSet<String> = [leaf.clone(), synthetic.umbrella.clone()].into_iter().collect();
    let checked = report.expect_statuses(Expect::Checked(&expected), "re-run after one leaf changed", &changed)?;
    rows.push(row("xtask lint, one leaf changed", &changed, report.processes, checked));
    let rechecked: Vec<String> = expected.into_iter().collect();
    eprintln!("bench: N={n}: after changing {leaf}, re-checked exactly: {}", rechecked.join(", "));

    if let Some(base) = baseline {
        for r in &mut rows {
            r.speedup = Some(base.as_secs_f64() / (r.wall_ms.max(1) as f64 / 1000.0));
        }
    }
    let cold_over_floor = cold.wall.as_secs_f64() / floor.wall.as_secs_f64().max(0.001);
    let mut targets = vec![
        Target { name: format!("warm re-run under {:.1} s", TARGET_WARM.as_secs_f64()), met: warm.wall < TARGET_WARM },
        Target {
            name: format!("one-leaf change under {:.0} s", TARGET_LEAF.as_secs_f64()),
            met: changed.wall < TARGET_LEAF,
        },
        Target {
            name: format!("remote hit under {:.0} s", TARGET_REMOTE.as_secs_f64()),
            met: remote.wall < TARGET_REMOTE,
        },
        Target {
            name: format!("cold within {TARGET_FLOOR_RATIO}x of the floor"),
            met: cold_over_floor <= TARGET_FLOOR_RATIO,
        },
    ];
    if let Some(base) = baseline {
        let speedup = base.as_secs_f64() / cold.wall.as_secs_f64().max(0.001);
        targets.insert(
            0,
            Target {
                name: format!("cold at least {TARGET_SPEEDUP:.0}x faster than the baseline"),
                met: speedup >= TARGET_SPEEDUP,
            },
        );
    }
    Ok(SizeResult {
        services: n,
        charts,
        scenarios: rows,
        cold_runs_s,
        cold_over_floor,
        rechecked_after_leaf_change: rechecked,
        targets,
    })
}

fn progress(n: usize, what: &str, measured: &Measured) {
    eprintln!(
        "bench: N={n}: {what} {:.2} s ({:.1} s CPU, load {:.2})",
        measured.wall.as_secs_f64(),
        measured.cpu.as_secs_f64(),
        measure::load_average()
    );
}

fn row(scenario: &'static str, measured: &Measured, processes: usize, charts_checked: usize) -> Row {
    Row {
        scenario,
        wall_ms: measured.wall.as_millis() as u64,
        cpu_ms: measured.cpu.as_millis() as u64,
        speedup: None,
        processes,
        peak_rss_mib: measured.peak_rss_kib as f64 / 1024.0,
        charts_checked,
    }
}

/// Runs a reference scenario in a child of this binary over `root`.
fn reference(exe: &Path, root: &Path, which: Reference) -> Result<(Measured, baseline::Outcome)> {
    let name = match which {
        Reference::Baseline => "baseline",
        Reference::Floor => "floor",
    };
    let mut command = Command::new(exe);
    command.arg("--root").arg(root).args(["--format", "json", "bench", "--scenario", name]);
    let measured = measure::run(command)?;
    if measured.code != Some(0) {
        anyhow::bail!("the {name} run failed (exit {:?}):\n{}", measured.code, measured.stderr.trim());
    }
    let outcome: baseline::Outcome = serde_json::from_str(measured.stdout.trim())
        .with_context(|| format!("the {name} run printed no outcome:\n{}", measured.stdout))?;
    if !outcome.failures.is_empty() {
        anyhow::bail!(
            "the {name} run found failures, so it cannot serve as a reference:\n{}",
            outcome.failures.join("\n")
        );
    }
    Ok((measured, outcome))
}

/// `helm dependency build` in every chart of `root`, dependencies first:
/// what the baseline would have left behind, for the floor.
fn prepare_dependencies(root: &Path) -> Result<()> {
    let ctx = Context::new(Some(root), Format::Human)?;
    let tools = crate::exec::tools::ensure(&ctx, &crate::core::config::Config::default().kube_versions)?;
    let repo = crate::core::model::Repo::discover(&ctx.root, &ctx.config)?;
    let graph = crate::core::graph::ChartGraph::build(&repo);
    let sh = xshell::Shell::new()?;
    let helm = &tools.helm.path;
    for index in graph.topological() {
        let dir = &repo.charts[index].dir;
        crate::exec::process::run_ok(xshell::cmd!(sh, "{helm} dependency build {dir}"), None)?;
    }
    Ok(())
}

/// Which charts a run must check (status `ok`); all others must be `cached`.
#[derive(Clone, Copy)]
enum Expect<'a> {
    AllChecked,
    Checked(&'a BTreeSet<String>),
}

/// The parts of `lint --format json` the benchmark reads.
struct LintReport {
    processes: usize,
    statuses: BTreeMap<String, String>,
}

impl LintReport {
    /// Checks that the charts `expect` names are `ok` and every other one is
    /// `cached`; returns how many charts were checked.
    fn expect_statuses(&self, expect: Expect<'_>, what: &str, measured: &Measured) -> Result<usize> {
        let mut wrong = Vec::new();
        if self.statuses.is_empty() {
            wrong.push("no charts in the report".to_string());
        }
        for (name, status) in &self.statuses {
            let checked = match expect {
                Expect::AllChecked => true,
                Expect::Checked(names) => names.contains(name),
            };
            let expected = if checked { "ok" } else { "cached" };
            if status != expected {
                wrong.push(format!("{name}: {status} (expected {expected})"));
            }
        }
        if !wrong.is_empty() || measured.code != Some(0) {
            anyhow::bail!(
                "{what}: unexpected verdicts (exit {:?}):\n{}\n{}",
                measured.code,
                wrong.join("\n"),
                tail(&measured.stderr, 40)
            );
        }
        Ok(self.statuses.values().filter(|s| *s == "ok").count())
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The remote hit: a registry on loopback, filled by a writer from the warm
/// work folder `work` (not timed), then a fresh copy of the repository with
/// a fresh work folder reading every verdict from it (timed).
fn remote_hit(ctx: &Context, exe: &Path, root: &Path, work: &Path, dir: &Path) -> Result<(Measured, LintReport)> {
    let registry = crate::exec::registry::Registry::start(ctx)?;
    let url = format!("oci://{}/bench/verdicts", registry.host());
    let key_file = dir.join("remote-cache.key");
    let _ = std::fs::remove_file(&key_file);
    let public = crate::ops::remote_cache::keygen(&key_file)?;
    let (written, _) = lint_with(
        exe,
        root,
        work,
        &["--remote-cache", &url, "--remote-cache-write"],
        Some((crate::ops::remote_cache::KEY_VARIABLE, &key_file)),
    )?;
    if written.code != Some(0) {
        anyhow::bail!("the remote cache writer failed (exit {:?}):\n{}", written.code, tail(&written.stderr, 40));
    }
    let clone = dir.join("clone");
    synth::copy_tree(root, &clone)?;
    lint_with(exe, &clone, &dir.join("work-clone"), &["--remote-cache", &url, "--remote-cache-trust", &public], None)
}

/// Runs `xtask --root <root> --format json lint [--no-cache]` with `work` as
/// its work folder.
fn lint(exe: &Path, root: &Path, work: &Path, no_cache: bool) -> Result<(Measured, LintReport)> {
    lint_with(exe, root, work, if no_cache { &["--no-cache"] } else { &[] }, None)
}

/// `lint` with these flags and, for a writer, its key in the environment.
fn lint_with(
    exe: &Path,
    root: &Path,
    work: &Path,
    flags: &[&str],
    env: Option<(&str, &Path)>,
) -> Result<(Measured, LintReport)> {
    let mut command = Command::new(exe);
    command.arg("--root").arg(root).args(["--format", "json", "lint"]).args(flags);
    command.env("XTASK_WORK_DIR", work);
    if let Some((name, value)) = env {
        command.env(name, value);
    }
    let measured = measure::run(command)?;
    let json: serde_json::Value = serde_json::from_str(&measured.stdout).with_context(|| {
        format!("`xtask lint` printed no JSON report (exit {:?}):\n{}", measured.code, tail(&measured.stderr, 40))
    })?;
    let processes = json["processes"].as_u64().unwrap_or(0) as usize;
    let statuses = json["charts"]
        .as_array()
        .map(|charts| {
            charts
                .iter()
                .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c["status"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok((measured, LintReport { processes, statuses }))
}

/// Changes one leaf service the way a developer would: a new environment
/// variable in its values.yaml (changes its render, so its checks and the
/// umbrella's must run again).
fn touch_leaf(synthetic: &synth::Synthetic, leaf: &str) -> Result<()> {
    let file = synthetic.service_dir(leaf).join("values.yaml");
    let mut values: yaml_serde::Value = crate::util::yaml::load(&file, &format!("charts/{leaf}/values.yaml"))?;
    synth::set(&mut values, &["env", "BENCH_CHANGED"], yaml_serde::Value::from("true"))?;
    let text = format!("# Changed by the benchmark's one-leaf scenario.\n{}", yaml_serde::to_string(&values)?);
    crate::util::fs::write_atomic(&file, text.as_bytes())
}

fn print_table(machine: &Machine, results: &[SizeResult], command: &str) {
    eprintln!();
    eprintln!(
        "machine: {} x {} core(s), {:.1} GiB RAM, {}",
        machine.cpu, machine.cores, machine.memory_gib, machine.os
    );
    eprintln!(
        "tools: helm {}, kubeconform {}; load average {:.2} before, {:.2} after",
        machine.helm, machine.kubeconform, machine.load_before, machine.load_after
    );
    eprintln!("command: {command}");
    for result in results {
        eprintln!();
        eprintln!("N = {} services ({} charts)", result.services, result.charts);
        eprintln!(
            "  {:<32} {:>9} {:>12} {:>8} {:>10} {:>9} {:>8}",
            "scenario", "wall (s)", "vs baseline", "cpu (s)", "processes", "peak MiB", "checked"
        );
        for r in &result.scenarios {
            let speedup = r.speedup.map(|s| format!("{s:.1}x")).unwrap_or_else(|| "-".to_string());
            eprintln!(
                "  {:<32} {:>9.2} {:>12} {:>8.1} {:>10} {:>9.0} {:>8}",
                r.scenario,
                r.wall_ms as f64 / 1000.0,
                speedup,
                r.cpu_ms as f64 / 1000.0,
                r.processes,
                r.peak_rss_mib,
                r.charts_checked
            );
        }
        let runs: Vec<String> = result.cold_runs_s.iter().map(|s| format!("{s:.2}")).collect();
        eprintln!("  cold: median of {} runs ({} s)", runs.len(), runs.join(", "));
        eprintln!("  cold / floor = {:.2}", result.cold_over_floor);
        eprintln!("  re-checked after one leaf changed: {}", result.rechecked_after_leaf_change.join(", "));
        for target in &result.targets {
            eprintln!("  target: {:<44} {}", target.name, if target.met { "met" } else { "MISSED" });
        }
    }
}
