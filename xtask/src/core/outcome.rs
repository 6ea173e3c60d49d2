//! Outcomes: the verdict of a chart, of one of its steps, and of a
//! repository-level check. Every check (lint's, chart-testing's, the
//! matrix's) speaks in these types, and the reports print them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::model::ChartKind;

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

/// What a step of a chart's check is. Serialized kebab-case (`lint`,
/// `version-increment`): the JSON report, the cache and the human report
/// all spell a step the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Chart.yaml could not be read.
    Chart,
    /// The dependency tree was staged (or could not be).
    Dependencies,
    /// The environment's values were read and merged.
    Values,
    /// `helm lint`.
    Lint,
    /// `helm template`.
    Render,
    /// The rendered documents against the Kubernetes schemas (kubeconform).
    Validate,
    /// chart-testing: the version is greater than on the target branch.
    VersionIncrement,
    /// chart-testing: Chart.yaml against ct's yamale schema.
    ChartSchema,
    /// chart-testing: yamllint over Chart.yaml and the values files.
    Yamllint,
    /// chart-testing: maintainers present (or absent when deprecated).
    Maintainers,
    /// chart-testing: one of `additional-commands`.
    Command,
    /// verify: `helm install` into the API server (validation, admission).
    Install,
    /// verify: a Pod built from each workload's pod template, dry-run in a
    /// namespace that enforces the chart's Pod Security level.
    PodSecurity,
    /// verify: the same kind/namespace/name rendered twice in one release.
    Duplicate,
    /// verify `--upgrade-from`: `helm upgrade` from the base's release.
    Upgrade,
    /// verify `--upgrade-from`: `helm rollback` to the base's release.
    Rollback,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Chart => "chart",
            Step::Dependencies => "dependencies",
            Step::Values => "values",
            Step::Lint => "lint",
            Step::Render => "render",
            Step::Validate => "validate",
            Step::VersionIncrement => "version-increment",
            Step::ChartSchema => "chart-schema",
            Step::Yamllint => "yamllint",
            Step::Maintainers => "maintainers",
            Step::Command => "command",
            Step::Install => "install",
            Step::PodSecurity => "pod-security",
            Step::Duplicate => "duplicate",
            Step::Upgrade => "upgrade",
            Step::Rollback => "rollback",
        }
    }

    /// Where the lint engine lists a step of its own (the order it makes
    /// them in); steps of a profile rank after.
    pub fn engine_rank(self) -> usize {
        match self {
            Step::Dependencies => 0,
            Step::Values => 1,
            Step::Lint => 2,
            Step::Render => 3,
            Step::Validate => 4,
            _ => 5,
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One step of one chart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    pub step: Step,
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
        step: Step,
        env: Option<&str>,
        kube: Option<&str>,
        status: Status,
        duration: Duration,
        message: impl Into<String>,
    ) -> Self {
        StepResult {
            step,
            env: env.map(str::to_string),
            kube_version: kube.map(str::to_string),
            status,
            duration_ms: duration.as_millis() as u64,
            message: message.into(),
        }
    }
}

impl StepResult {
    /// A stored verdict as a run that reused it shows it: cached, no time.
    pub fn cached(mut self) -> StepResult {
        self.status = Status::Cached;
        self.duration_ms = 0;
        self
    }
}

/// Everything known about one chart after the run.
#[derive(Debug, Clone, Serialize)]
pub struct ChartResult {
    pub name: String,
    pub path: String,
    /// `None` for a chart whose Chart.yaml could not be read: shown as
    /// `unknown`.
    #[serde(rename = "type", serialize_with = "kind_name")]
    pub kind: Option<ChartKind>,
    pub status: Status,
    /// Where a `cached` verdict came from: `local` (the work folder's
    /// cache) or `remote` (the shared OCI cache); absent for other statuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSource>,
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

/// Which cache answered a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSource {
    Local,
    Remote,
}

/// A repository-level check that belongs to no single chart (the service matrix).
#[derive(Debug, Clone, Serialize)]
pub struct RepoCheck {
    pub check: String,
    pub file: String,
    pub status: Status,
    pub message: String,
}

/// A chart kind as JSON shows it: `library`, `application`, `umbrella`, or
/// `unknown`.
fn kind_name<S: serde::Serializer>(kind: &Option<ChartKind>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.map_or("unknown", ChartKind::as_str))
}
