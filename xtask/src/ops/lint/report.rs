//! Lint results and how they are shown: live progress while charts finish,
//! then a failure list and a per-step timing table on stderr, and with
//! `--format json` one JSON document on stdout.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

pub use crate::core::outcome::{CacheSource, ChartResult, RepoCheck, Status, Step, StepResult};

/// The whole run, as printed with `--format json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub charts: Vec<ChartResult>,
    pub repository: Vec<RepoCheck>,
    pub processes: usize,
    pub duration_ms: u64,
    pub ok: bool,
    /// The shared verdict cache, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_cache: Option<crate::ops::remote_cache::Summary>,
}

/// Live output while the run goes: an indicatif bar on an interactive
/// terminal (not under CI, which may pretend to be one), else one plain line
/// per finished step.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: Mutex<usize>,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bar = interactive.then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            let style = indicatif::ProgressStyle::with_template("{spinner} [{pos:>3}/{len:3}] {wide_msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar, total, done: Mutex::new(0) }
    }

    /// Says which charts a batch is working on.
    pub fn working(&self, names: &[String]) {
        if let Some(bar) = &self.bar {
            let shown = if names.len() > 4 {
                format!("{} and {} more", names[..3].join(", "), names.len() - 3)
            } else {
                names.join(", ")
            };
            bar.set_message(format!("checking {shown}"));
        }
    }

    /// Reports a finished chart (all its steps).
    pub fn finished(&self, chart: &ChartResult) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        *done += 1;
        let width = self.total.to_string().len();
        let mut lines = Vec::new();
        let remote = chart.cache == Some(CacheSource::Remote);
        for step in &chart.steps {
            let env = step.env.as_deref().map(|e| format!(" [{e}]")).unwrap_or_default();
            let kube = step.kube_version.as_deref().map(|k| format!(" k8s {k}")).unwrap_or_default();
            let status = match step.status {
                Status::Cached if remote => "cached (remote)",
                status => status.as_str(),
            };
            lines.push(format!(
                "[{:>width$}/{}] {} {}{}{} {} {:.1}s",
                *done,
                self.total,
                step.step,
                chart.name,
                env,
                kube,
                status,
                step.duration_ms as f64 / 1000.0
            ));
        }
        if chart.steps.is_empty() {
            lines.push(format!("[{:>width$}/{}] {} {}", *done, self.total, chart.name, chart.status.as_str()));
        }
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                if chart.failed() {
                    bar.println(format!("{} failed", chart.name));
                }
            }
            None => {
                for line in lines {
                    eprintln!("{line}");
                }
            }
        }
    }

    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The end of every human run: failures in full, then per-step timings.
pub fn print_summary(report: &Report, color: bool) {
    let red = |s: &str| if color { format!("\x1b[31m{s}\x1b[0m") } else { s.to_string() };
    let green = |s: &str| if color { format!("\x1b[32m{s}\x1b[0m") } else { s.to_string() };

    let mut failures = 0;
    for check in report.repository.iter().filter(|c| c.status == Status::Failed) {
        failures += 1;
        eprintln!("\n{} {} ({})\n{}", red("FAILED"), check.check, check.file, indent(&check.message));
    }
    for chart in report.charts.iter().filter(|c| c.failed()) {
        for step in chart.steps.iter().filter(|s| s.status == Status::Failed) {
            failures += 1;
            let env = step.env.as_deref().map(|e| format!(", env {e}")).unwrap_or_default();
            let kube = step.kube_version.as_deref().map(|k| format!(", kubernetes {k}")).unwrap_or_default();
            eprintln!(
                "\n{} chart {} ({}), step {}{}{}\n{}",
                red("FAILED"),
                chart.name,
                chart.path,
                step.step,
                env,
                kube,
                indent(&step.message)
            );
        }
    }

    // Per-step table: how many chart-steps, how many failed, summed time.
    let mut rows: Vec<(Step, usize, usize, usize, u64)> = Vec::new();
    for chart in &report.charts {
        for step in &chart.steps {
            let row = match rows.iter_mut().find(|r| r.0 == step.step) {
                Some(row) => row,
                None => {
                    rows.push((step.step, 0, 0, 0, 0));
                    rows.last_mut().expect("just pushed")
                }
            };
            row.1 += 1;
            match step.status {
                Status::Failed => row.2 += 1,
                Status::Cached => row.3 += 1,
                _ => {}
            }
            row.4 = row.4.max(step.duration_ms);
        }
    }
    eprintln!();
    eprintln!("{:<14} {:>6} {:>7} {:>7} {:>12}", "step", "runs", "failed", "cached", "slowest (s)");
    for (step, runs, failed, cached, slowest) in rows {
        eprintln!("{:<14} {:>6} {:>7} {:>7} {:>12.2}", step, runs, failed, cached, slowest as f64 / 1000.0);
    }
    let counts = |s: Status| report.charts.iter().filter(|c| c.status == s).count();
    if let Some(remote) = &report.remote_cache {
        eprintln!(
            "remote cache {}: {} hit(s), {} ignored, {} missed, {} written; lookups {:.2}s",
            remote.url,
            remote.hits,
            remote.ignored,
            remote.missed,
            remote.written,
            remote.lookup_ms as f64 / 1000.0
        );
    }
    let remote_hits = report.charts.iter().filter(|c| c.cache == Some(CacheSource::Remote)).count();
    let cached = match &report.remote_cache {
        Some(_) => format!("{} cached ({remote_hits} from the remote cache)", counts(Status::Cached)),
        None => format!("{} cached", counts(Status::Cached)),
    };
    let line = format!(
        "{} charts: {} ok, {cached}, {} failed, {} skipped; {} tool processes; {:.2}s",
        report.charts.len(),
        counts(Status::Ok),
        counts(Status::Failed),
        counts(Status::Skipped),
        report.processes,
        report.duration_ms as f64 / 1000.0
    );
    if failures == 0 && report.ok {
        eprintln!("{}", green(&line));
    } else {
        eprintln!("{}", red(&line));
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// The end of a lint or verify run: the JSON document on stdout with
/// `--format json`, the summary on stderr, and exit 1 if anything failed.
pub fn conclude(report: &Report, ctx: &crate::core::context::Context) -> anyhow::Result<()> {
    if ctx.format == crate::core::context::Format::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    print_summary(report, ctx.color);
    if report.ok {
        Ok(())
    } else {
        Err(crate::util::exit::ChecksFailed.into())
    }
}
