//! `cargo xtask bench --vs-ct`: the synthetic monorepo under chart-testing's
//! `ct lint --all` and under `cargo xtask lint`, one run each on this
//! machine; the verdicts per chart must be equal, and the wall times and
//! their ratio are printed (the table in `docs/chart-testing.md`).
//!
//! The repository is [`super::synth`]'s, made ready for ct the way a team
//! would: a `ct.yaml` naming both chart folders (and turning off ct's
//! maintainer look-ups, which go to the network), and a `values.yaml` for the
//! library chart (ct runs yamllint on every chart's values.yaml and fails
//! when there is none). Each tool gets its own copy, because ct's
//! `helm dependency build` writes archives into the chart folders. The xtask
//! runs cold (`--no-cache`, fresh work folder), so both do all the work; its
//! run is short next to ct's, so it runs three times and the median counts.
//!
//! Next to both, the floor of ct's own checks: exactly the checks ct makes,
//! as ct starts them (`yamale` on every Chart.yaml, `yamllint` on every
//! file ct lints, one `helm lint` per chart and values file), one after
//! another on ct's copy once ct has built its dependencies, with nothing of
//! ct around them. However ct is tuned, it cannot go below that without
//! starting fewer processes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::measure::{self, Measured, COLD_RUNS};
use super::synth;
use crate::core::context::{Context, Format};

/// The ct configuration written into the synthetic repository.
const CT_YAML: &str = "# Written by `cargo xtask bench --vs-ct`.\nchart-dirs:\n  - charts\n  - helm\n# ct looks every maintainer up on the git host's website; the synthetic\n# charts have none, and this machine reaches no such host.\nvalidate-maintainers: false\n";

/// One size's measurements.
#[derive(Debug, Clone, Serialize)]
struct Comparison {
    services: usize,
    charts: usize,
    ct_wall_ms: u64,
    ct_peak_rss_mib: f64,
    /// The median of the xtask's cold runs.
    xtask_wall_ms: u64,
    /// Every cold run of the xtask, fastest first.
    xtask_walls_ms: Vec<u64>,
    xtask_peak_rss_mib: f64,
    xtask_processes: usize,
    /// ct's wall time over the xtask's.
    ratio: f64,
    /// ct's own checks alone, as ct starts them (see the module docs).
    ct_floor_ms: u64,
    ct_floor_processes: usize,
    charts_ok: usize,
    charts_failed: usize,
}

pub fn run(sizes: &[usize], keep: bool, ctx: &Context) -> Result<()> {
    let kube_versions = crate::core::config::Config::default().kube_versions;
    // Every tool is found or installed before anything is timed.
    let tools = crate::exec::tools::ensure(ctx, &kube_versions)?;
    let ct_tools = crate::exec::tools::chart_testing::ensure_all(ctx)?;
    let machine = measure::Machine::describe(&tools);
    let exe = std::env::current_exe().context("cannot find the running xtask binary")?;
    let (base, _guard) = super::scratch("xtask-vs-ct-", keep, "bench --vs-ct")?;
    eprintln!(
        "bench --vs-ct: {} core(s), load {:.2}; ct {}, helm {}, yamllint {}, yamale {}",
        machine.cores,
        machine.load_before,
        ct_tools.ct.tool.version,
        machine.helm,
        ct_tools.python.yamllint,
        ct_tools.python.yamale
    );

    let mut results = Vec::new();
    for &n in sizes {
        let dir = base.join(format!("n{n}"));
        let xtask_root = dir.join("xtask");
        let synthetic = synth::generate_from(&ctx.root, &xtask_root, n)?;
        crate::util::fs::write_atomic(&xtask_root.join("ct.yaml"), CT_YAML.as_bytes())?;
        let library_values = xtask_root.join("charts").join("_common").join("values.yaml");
        if !library_values.exists() {
            crate::util::fs::write_atomic(
                &library_values,
                b"# The library chart has no values of its own; ct lints this file.\n{}\n",
            )?;
        }
        let ct_root = dir.join("ct");
        synth::copy_tree(&xtask_root, &ct_root)?;
        let charts = synthetic.chart_count();

        eprintln!("bench --vs-ct: N={n}: ct lint --all over {charts} charts...");
        let (ct_run, ct_verdicts) = run_ct(&ct_tools, &tools.helm, &ct_root, &dir.join("helm-home"))?;
        eprintln!("bench --vs-ct: N={n}: ct {:.2} s; cargo xtask lint...", ct_run.wall.as_secs_f64());
        // The xtask's run is short next to ct's, so it is cheap to take the
        // median of a few: each cold, in a fresh work folder, same verdicts.
        let mut xtask_runs = Vec::new();
        for run in 0..COLD_RUNS {
            let (measured, verdicts, processes) = run_xtask(&exe, &xtask_root, &dir.join(format!("work-{run}")))?;
            xtask_runs.push((measured, (verdicts, processes)));
        }
        if let Some((_, (first, _))) = xtask_runs.first() {
            if let Some((_, (other, _))) = xtask_runs.iter().find(|(_, (verdicts, _))| verdicts != first) {
                anyhow::bail!("N={n}: two cold runs of the xtask gave different verdicts: {first:?} and {other:?}");
            }
        }
        let ((xtask_run, (xtask_verdicts, processes)), walls) = measure::median(xtask_runs)?;
        let xtask_walls_ms: Vec<u64> = walls.iter().map(|wall| wall.as_millis() as u64).collect();
        eprintln!(
            "bench --vs-ct: N={n}: xtask {:.2} s (median of {COLD_RUNS}: {}); the floor of ct's checks...",
            xtask_run.wall.as_secs_f64(),
            seconds(&xtask_walls_ms)
        );
        let folders: Vec<&String> = ct_verdicts.keys().collect();
        let (floor, floor_processes) = ct_floor(&ct_tools, &tools.helm, &ct_root, &dir.join("helm-home"), &folders)?;
        eprintln!("bench --vs-ct: N={n}: floor {:.2} s, {floor_processes} processes", floor.as_secs_f64());

        if ct_verdicts != xtask_verdicts || ct_verdicts.len() != charts {
            let mut lines = Vec::new();
            let names: std::collections::BTreeSet<&String> = ct_verdicts.keys().chain(xtask_verdicts.keys()).collect();
            for name in names {
                let (c, x) = (ct_verdicts.get(name), xtask_verdicts.get(name));
                if c != x {
                    lines.push(format!("  {name}: ct {}, xtask {}", shown(c), shown(x)));
                }
            }
            anyhow::bail!(
                "N={n}: the verdicts differ ({} charts by ct, {} by the xtask, {charts} in the repository):\n{}\n--- ct (tail)\n{}\n--- xtask (tail)\n{}",
                ct_verdicts.len(),
                xtask_verdicts.len(),
                lines.join("\n"),
                tail(&ct_run.stdout, 30),
                tail(&xtask_run.stderr, 30)
            );
        }
        let failed = ct_verdicts.values().filter(|ok| !**ok).count();
        results.push(Comparison {
            services: n,
            charts,
            ct_wall_ms: ct_run.wall.as_millis() as u64,
            ct_peak_rss_mib: ct_run.peak_rss_kib as f64 / 1024.0,
            xtask_wall_ms: xtask_run.wall.as_millis() as u64,
            xtask_walls_ms,
            xtask_peak_rss_mib: xtask_run.peak_rss_kib as f64 / 1024.0,
            xtask_processes: processes,
            ratio: ct_run.wall.as_secs_f64() / xtask_run.wall.as_secs_f64().max(0.001),
            ct_floor_ms: floor.as_millis() as u64,
            ct_floor_processes: floor_processes,
            charts_ok: charts - failed,
            charts_failed: failed,
        });
    }

    let mut command = String::from("cargo xtask bench --vs-ct");
    for n in sizes {
        command.push_str(&format!(" --charts {n}"));
    }
    eprintln!();
    eprintln!(
        "machine: {} x {} core(s), {:.1} GiB RAM, {}; load average {:.2} before, {:.2} after",
        machine.cpu,
        machine.cores,
        machine.memory_gib,
        machine.os,
        machine.load_before,
        measure::load_average()
    );
    eprintln!(
        "tools: ct {}, helm {}, kubeconform {}, yamllint {}, yamale {}",
        ct_tools.ct.tool.version, machine.helm, machine.kubeconform, ct_tools.python.yamllint, ct_tools.python.yamale
    );
    eprintln!("command: {command}");
    eprintln!();
    eprintln!("| services | charts | verdicts (equal) | `ct lint --all` | floor of ct's checks (processes) | `cargo xtask lint` (cold, median of {COLD_RUNS}) | ct / xtask | xtask processes | peak MiB ct / xtask |");
    eprintln!("|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        eprintln!(
            "| {} | {} | {} ok, {} failed | {:.1} s | {:.1} s ({}) | {:.1} s | {:.1}x | {} | {:.0} / {:.0} |",
            r.services,
            r.charts,
            r.charts_ok,
            r.charts_failed,
            r.ct_wall_ms as f64 / 1000.0,
            r.ct_floor_ms as f64 / 1000.0,
            r.ct_floor_processes,
            r.xtask_wall_ms as f64 / 1000.0,
            r.ratio,
            r.xtask_processes,
            r.ct_peak_rss_mib,
            r.xtask_peak_rss_mib
        );
    }
    if ctx.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "command": command, "machine": machine, "comparisons": results })
            )?
        );
    }
    Ok(())
}

fn shown(verdict: Option<&bool>) -> &'static str {
    match verdict {
        Some(true) => "ok",
        Some(false) => "failed",
        None => "not linted",
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `ct lint --all` in `root`, with the pinned helm, yamllint, yamale and
/// helm-unittest first on PATH and helm's own folders kept apart in
/// `helm_home`; returns its verdict per chart folder.
fn run_ct(
    tools: &crate::exec::tools::chart_testing::ChartTestingTools,
    helm: &crate::exec::tools::Tool,
    root: &Path,
    helm_home: &Path,
) -> Result<(Measured, BTreeMap<String, bool>)> {
    let mut path = Vec::new();
    if let Some(dir) = helm.path.parent() {
        path.push(dir.to_path_buf());
    }
    path.push(tools.python.bin.clone());
    if let Some(existing) = std::env::var_os("PATH") {
        path.extend(std::env::split_paths(&existing));
    }
    let mut command = Command::new(&tools.ct.tool.path);
    command
        .current_dir(root)
        .args(["lint", "--all", "--config", "ct.yaml", "--lint-conf"])
        .arg(tools.ct.etc.join("lintconf.yaml"))
        .arg("--chart-yaml-schema")
        .arg(tools.ct.etc.join("chart_schema.yaml"))
        .env("PATH", std::env::join_paths(path)?)
        .env("HELM_PLUGINS", &tools.helm_unittest.path)
        .env("HELM_CONFIG_HOME", helm_home.join("config"))
        .env("HELM_CACHE_HOME", helm_home.join("cache"))
        .env("HELM_DATA_HOME", helm_home.join("data"));
    let measured = measure::run(command)?;
    let verdicts = ct_verdicts(&measured.stdout);
    if verdicts.is_empty() {
        anyhow::bail!(
            "ct lint --all reported no chart (exit {:?}); a failed dependency build stops it:\n{}\n{}",
            measured.code,
            tail(&measured.stdout, 30),
            tail(&measured.stderr, 30)
        );
    }
    Ok((measured, verdicts))
}

/// ct's own checks without ct, as ct starts them, one after another in ct's
/// copy (its dependencies built by ct): per chart folder `yamale` on
/// Chart.yaml, `yamllint` on Chart.yaml, values.yaml and each ci values
/// file, and `helm lint` once per ci values file (once with the defaults
/// when there is none). Returns the wall time and the processes started.
fn ct_floor(
    tools: &crate::exec::tools::chart_testing::ChartTestingTools,
    helm: &crate::exec::tools::Tool,
    root: &Path,
    helm_home: &Path,
    folders: &[&String],
) -> Result<(std::time::Duration, usize)> {
    let (schema, lint_conf) = (tools.ct.etc.join("chart_schema.yaml"), tools.ct.etc.join("lintconf.yaml"));
    let mut commands: Vec<Command> = Vec::new();
    for folder in folders {
        let ci_values = crate::core::model::ci_environments(&root.join(folder.as_str()), folder);
        let mut yamale = Command::new(tools.python.bin.join("yamale"));
        yamale.arg("--schema").arg(&schema).arg(format!("{folder}/Chart.yaml"));
        commands.push(yamale);
        let mut linted = vec![format!("{folder}/Chart.yaml"), format!("{folder}/values.yaml")];
        linted.extend(ci_values.iter().flat_map(|e| e.values_files.clone()));
        for file in linted {
            let mut yamllint = Command::new(tools.python.bin.join("yamllint"));
            yamllint.arg("--config-file").arg(&lint_conf).arg(file);
            commands.push(yamllint);
        }
        let values: Vec<Option<&String>> = if ci_values.is_empty() {
            vec![None]
        } else {
            ci_values.iter().flat_map(|e| e.values_files.iter().map(Some)).collect()
        };
        for file in values {
            let mut lint = Command::new(&helm.path);
            lint.arg("lint").arg(folder.as_str());
            if let Some(file) = file {
                lint.arg("--values").arg(file);
            }
            lint.env("HELM_CONFIG_HOME", helm_home.join("config"))
                .env("HELM_CACHE_HOME", helm_home.join("cache"))
                .env("HELM_DATA_HOME", helm_home.join("data"));
            commands.push(lint);
        }
    }
    let count = commands.len();
    let started = std::time::Instant::now();
    for mut command in commands {
        let output = command.current_dir(root).output().with_context(|| format!("cannot start {command:?}"))?;
        // The synthetic charts pass ct; a check that fails here measures
        // something else than the passing run it is the floor of.
        if !output.status.success() {
            anyhow::bail!(
                "the floor of ct's checks: {command:?} failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok((started.elapsed(), count))
}

/// ct's result list: ` ✔︎ name => (version: "1.0.0", path: "charts/x")` or
/// ` ✖︎ ... > error`, by chart folder.
pub fn ct_verdicts(stdout: &str) -> BTreeMap<String, bool> {
    let mut verdicts = BTreeMap::new();
    for line in stdout.lines() {
        let line = line.trim_start();
        let ok = line.starts_with("✔︎ ");
        if !ok && !line.starts_with("✖︎ ") {
            continue;
        }
        if let Some(start) = line.find("path: \"") {
            let path = line[start + 7..].split('"').next().unwrap_or_default();
            verdicts.insert(path.to_string(), ok);
        }
    }
    verdicts
}

/// `xtask --root <root> --format json lint --no-cache` with a fresh work folder.
/// Milliseconds as `9.9, 10.1, 12.0 s`.
fn seconds(ms: &[u64]) -> String {
    let shown: Vec<String> = ms.iter().map(|ms| format!("{:.1}", *ms as f64 / 1000.0)).collect();
    format!("{} s", shown.join(", "))
}

fn run_xtask(exe: &Path, root: &Path, work: &Path) -> Result<(Measured, BTreeMap<String, bool>, usize)> {
    let mut command = Command::new(exe);
    command.arg("--root").arg(root).args(["--format", "json", "lint", "--no-cache"]).env("XTASK_WORK_DIR", work);
    let measured = measure::run(command)?;
    let json: serde_json::Value = serde_json::from_str(&measured.stdout).with_context(|| {
        format!("`xtask lint` printed no JSON report (exit {:?}):\n{}", measured.code, tail(&measured.stderr, 40))
    })?;
    let verdicts = json["charts"]
        .as_array()
        .map(|charts| {
            charts
                .iter()
                .map(|c| (c["path"].as_str().unwrap_or_default().to_string(), c["status"] != "failed"))
                .collect()
        })
        .unwrap_or_default();
    let processes = json["processes"].as_u64().unwrap_or(0) as usize;
    Ok((measured, verdicts, processes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_results_are_read_per_chart_folder() {
        let out = "Linting chart \"a\"\n ✔︎ a => (version: \"1.0.0\", path: \"charts/a\")\n ✖︎ b => (version: \"0.1.0\", path: \"helm/b\") > failed waiting for process: exit status 1\n";
        let verdicts = ct_verdicts(out);
        assert_eq!(verdicts.get("charts/a"), Some(&true));
        assert_eq!(verdicts.get("helm/b"), Some(&false));
        assert_eq!(verdicts.len(), 2);
    }
}
