//! Lint results and how they are shown: live progress while charts finish,
//! then a failure list and a per-step timing table on stderr, and with
//! `--format json` one JSON document on stdout.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Status of a chart or a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
    Cached,
}

impl Status {
    /// `Ok` when a check passed, `Failed` when it did not.
    pub fn from_ok(ok: bool) -> Status {
        if ok {
            Status::Ok
        } else {
            Status::Failed
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Cached => "cached",
        }
    }
}

/// One step of one chart: `dependencies`, `values`, `lint`, `render`,
/// `validate`, `graph`, `templates`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    pub step: String,
    /// The environment (`default` for charts without values-<env>.yaml).
    pub env: Option<String>,
    /// The Kubernetes version for render and validate steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    pub status: Status,
    /// Wall time of the tool call that produced this verdict; a batched call
    /// is shared by every chart in the batch.
    pub duration_ms: u64,
    pub message: String,
}

impl StepResult {
    pub fn new(
        step: &str,
        env: Option<&str>,
        kube: Option<&str>,
        status: Status,
        duration: Duration,
        message: impl Into<String>,
    ) -> Self {
        StepResult {
            step: step.to_string(),
            env: env.map(str::to_string),
            kube_version: kube.map(str::to_string),
            status,
            duration_ms: duration.as_millis() as u64,
            message: message.into(),
        }
    }
}

/// Everything known about one chart after the run.
#[derive(Debug, Clone, Serialize)]
pub struct ChartResult {
    pub name: String,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: Status,
    /// The content-addressed cache key (absent for charts that could not be keyed).
    pub cache_key: Option<String>,
    /// Which batch (tool invocation group) checked it; charts of one batch
    /// share helm and kubeconform processes.
    pub batch: Option<usize>,
    /// Milliseconds since the run started, when its checks started and ended.
    pub started_ms: u64,
    pub finished_ms: u64,
    pub steps: Vec<StepResult>,
}

impl ChartResult {
    pub fn failed(&self) -> bool {
        self.status == Status::Failed
    }
}

/// A repository-level check that belongs to no single chart (the service matrix).
#[derive(Debug, Clone, Serialize)]
pub struct RepoCheck {
    pub check: String,
    pub file: String,
    pub status: Status,
    pub message: String,
}

/// The whole run, as printed with `--format json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub charts: Vec<ChartResult>,
    pub repository: Vec<RepoCheck>,
    pub processes: usize,
    pub duration_ms: u64,
    pub ok: bool,
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
        for step in &chart.steps {
            let env = step.env.as_deref().map(|e| format!(" [{e}]")).unwrap_or_default();
            let kube = step.kube_version.as_deref().map(|k| format!(" k8s {k}")).unwrap_or_default();
            lines.push(format!(
                "[{:>width$}/{}] {} {}{}{} {} {:.1}s",
                *done,
                self.total,
                step.step,
                chart.name,
                env,
                kube,
                step.status.as_str(),
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
    let mut rows: Vec<(String, usize, usize, usize, u64)> = Vec::new();
    for chart in &report.charts {
        for step in &chart.steps {
            let row = match rows.iter_mut().find(|r| r.0 == step.step) {
                Some(row) => row,
                None => {
                    rows.push((step.step.clone(), 0, 0, 0, 0));
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
    let line = format!(
        "{} charts: {} ok, {} cached, {} failed, {} skipped; {} tool processes; {:.2}s",
        report.charts.len(),
        counts(Status::Ok),
        counts(Status::Cached),
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
