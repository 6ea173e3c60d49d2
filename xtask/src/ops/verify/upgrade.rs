//! `--upgrade-from REF`: the chart as it was at REF is installed first,
//! then upgraded to the working tree (helm 4: server-side apply) and rolled
//! back, so what only an upgrade meets (immutable fields, field-ownership
//! conflicts, a rollback that cannot go back) fails the chart.
//!
//! Helm 4 installs with server-side apply (field manager `helm`) and
//! upgrades the same way, without `--force-conflicts`: a field another
//! manager set since (`kubectl scale`, an autoscaler) is a conflict the API
//! server refuses, naming the manager and the field.
//!
//! The base is checked out with `diff`'s [`Worktree`] and staged in its own
//! work folder, once per run, before any chart is checked; or, when REF is
//! `oci://HOST/PATH`, the last published version of each chart (its highest
//! semver tag there) is pulled instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{step, Checker, Job};
use crate::core::context::Context;
use crate::core::graph::ChartGraph;
use crate::core::model::{Chart, Environment, Repo};
use crate::core::outcome::{Step, StepResult};
use crate::exec::tools::Tool;
use crate::ops::diff::worktree::{RunDir, Worktree};
use crate::ops::stage::Stager;

/// The base, checked out and staged (or pulled); removed when dropped.
pub struct Base {
    /// What the verdicts were checked against: the commit upgraded from
    /// (the merge base of REF and HEAD), or the registry with the version
    /// found there of every chart.
    pub commit: String,
    /// Staged chart folders of the base by chart name; a chart that could
    /// not be staged (or pulled) there has its error instead.
    staged: BTreeMap<String, Result<PathBuf, String>>,
    source: Source,
}

/// Where the base came from, and what holds its files until dropped.
enum Source {
    /// A git worktree of the commit: values files are read from it.
    // Dropped in this order: the worktree, then the run folder.
    Git { root: PathBuf, _tree: Worktree, _run: RunDir },
    /// Charts pulled from `oci://...`: each carries its own values files.
    Registry { url: String, versions: BTreeMap<String, String>, _pulled: tempfile::TempDir },
}

impl Base {
    /// The base named by REF: `oci://HOST/PATH` is the registry charts are
    /// published to (`package --publish`), any other REF a git revision.
    pub fn prepare(
        ctx: &Context,
        reference: &str,
        helm: &Tool,
        mirrors: BTreeMap<String, String>,
        charts: &[String],
    ) -> Result<Base> {
        if reference.starts_with("oci://") {
            return Base::pull(ctx, reference, helm, charts);
        }
        let git = crate::exec::git::Git::open(&ctx.root)?;
        let commit = git.base(Some(reference))?.merge_base;
        let run = RunDir::create(ctx)?;
        let tree = Worktree::add(ctx, &run, &commit)?;
        let base_ctx = Context { root: tree.root().to_path_buf(), work_dir: run.path().join("base"), ..ctx.clone() };
        let repo = Repo::discover(&base_ctx.root, &base_ctx.config)?;
        let graph = ChartGraph::build(&repo);
        let stager = Stager::new(&base_ctx, helm, mirrors);
        let mut staged = BTreeMap::new();
        for index in graph.topological() {
            let chart = &repo.charts[index];
            let result = stager.stage(&repo, chart).map_err(|e| format!("{e:#}"));
            staged.insert(chart.name.clone(), result);
        }
        let root = tree.root().to_path_buf();
        Ok(Base { commit, staged, source: Source::Git { root, _tree: tree, _run: run } })
    }

    /// The last published version of each of `charts`: the highest semver
    /// tag of `URL/NAME`, pulled (with the dependencies packed inside it).
    /// A chart the registry has no version of is new: only installed.
    fn pull(ctx: &Context, url: &str, helm: &Tool, charts: &[String]) -> Result<Base> {
        let url = url.trim_end_matches('/').to_string();
        let registry = crate::exec::oci::Reference::parse(&url).map_err(crate::util::exit::UsageError)?;
        std::fs::create_dir_all(&ctx.work_dir)?;
        let pulled = tempfile::Builder::new().prefix("upgrade-from-").tempdir_in(&ctx.work_dir)?;
        let mut staged = BTreeMap::new();
        let mut versions = BTreeMap::new();
        for name in charts {
            let repository = crate::exec::oci::Reference {
                host: registry.host.clone(),
                repository: format!("{}/{name}", registry.repository),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            let client = crate::exec::oci::Client::new(repository, false, false, 1);
            let tags = client.ping(deadline).and_then(|()| client.tags(deadline)).map_err(|err| {
                crate::util::exit::EnvironmentError(format!(
                    "--upgrade-from {url}: cannot list the versions of {name}: {err:#}\nhint: if the registry needs \
                     credentials run `helm registry login {}`",
                    registry.host
                ))
            })?;
            let Some(version) = highest_version(&tags) else { continue };
            let dest = pulled.path().join(format!("{name}-{version}"));
            std::fs::create_dir_all(&dest)?;
            let result = pull_chart(helm, &format!("{url}/{name}"), &version, registry.is_loopback(), &dest)
                .map(|()| dest.join(name));
            versions.insert(name.clone(), version);
            staged.insert(name.clone(), result);
        }
        let listed: Vec<String> = versions.iter().map(|(name, version)| format!("{name}:{version}")).collect();
        let commit = format!("{url} {}", listed.join(" "));
        Ok(Base { commit, staged, source: Source::Registry { url, versions, _pulled: pulled } })
    }

    /// What a message names as the base of `chart`.
    fn label(&self, chart: &str) -> String {
        match &self.source {
            Source::Git { .. } => self.commit[..self.commit.len().min(12)].to_string(),
            Source::Registry { url, versions, .. } => {
                format!("{url}/{chart}:{}", versions.get(chart).map(String::as_str).unwrap_or("?"))
            }
        }
    }

    /// The base's own values files of `env`, where it had them: from the
    /// worktree, or from the pulled chart (its values-ENV.yaml files are
    /// packed with it).
    fn values(&self, chart: &Chart, dir: &Path, env: &Environment) -> Vec<PathBuf> {
        let files = env.values_files.iter().map(|file| match &self.source {
            Source::Git { root, .. } => root.join(file),
            Source::Registry { .. } => {
                let inside = Path::new(file).strip_prefix(&chart.rel).unwrap_or(Path::new(file));
                dir.join(inside)
            }
        });
        files.filter(|p| p.is_file()).collect()
    }

    /// Install at the base, upgrade to the working tree; also whether the
    /// base's release was installed (then [`Base::rollback`] goes back to it).
    pub(super) fn upgrade(
        &self,
        checker: &Checker,
        job: &Job,
        env: &Environment,
        namespace: &str,
    ) -> (Vec<StepResult>, bool) {
        let name = env.name.as_str();
        let release = checker.ctx.config.release_name.as_str();
        let head_values = checker.values(env);
        let mut steps = Vec::new();
        let started = Instant::now();
        let base_dir = match self.staged.get(&job.chart.name) {
            // New since the base: there is nothing to upgrade from.
            None => {
                let result = checker.helm_release("install", release, &job.staged, &head_values, namespace);
                let ok = result.is_ok();
                steps.push(step(Step::Install, Some(name), ok, started.elapsed(), result.err().unwrap_or_default()));
                return (steps, false);
            }
            Some(Err(message)) => {
                steps.push(step(
                    Step::Install,
                    Some(name),
                    false,
                    Duration::ZERO,
                    format!("the chart at {} cannot be staged: {message}", self.label(&job.chart.name)),
                ));
                return (steps, false);
            }
            Some(Ok(dir)) => dir,
        };
        let base_values = self.values(job.chart, base_dir, env);
        let from = self.label(&job.chart.name);
        let installed = checker.helm_release("install", release, base_dir, &base_values, namespace);
        let ok = installed.is_ok();
        let message = installed.err().map(|m| format!("the chart at {from}: {m}")).unwrap_or_default();
        steps.push(step(Step::Install, Some(name), ok, started.elapsed(), message));
        if !ok {
            return (steps, false);
        }

        pause_before_upgrade(checker, namespace);
        let started = Instant::now();
        let upgraded = checker.helm_release("upgrade", release, &job.staged, &head_values, namespace);
        let ok = upgraded.is_ok();
        let message = match upgraded {
            Ok(()) => format!("from {from}"),
            Err(message) => with_advice(&format!("from {from}: {message}")),
        };
        steps.push(step(Step::Upgrade, Some(name), ok, started.elapsed(), message));
        (steps, true)
    }

    /// `helm rollback` to the base's release (revision 1).
    pub(super) fn rollback(&self, checker: &Checker, job: &Job, env: &Environment, namespace: &str) -> StepResult {
        let started = Instant::now();
        let rolled = checker.helm_rollback(&checker.ctx.config.release_name, namespace);
        let ok = rolled.is_ok();
        let from = self.label(&job.chart.name);
        let message = rolled.err().map(|m| with_advice(&format!("back to {from}: {m}"))).unwrap_or_default();
        step(Step::Rollback, Some(&env.name), ok, started.elapsed(), message)
    }
}

/// The highest semver of a repository's tags (OCI tags cannot hold `+`:
/// helm writes build metadata as `_`); tags that are no version are
/// not charts of ours.
fn highest_version(tags: &[String]) -> Option<String> {
    tags.iter()
        .filter_map(|tag| semver::Version::parse(&tag.replace('_', "+")).ok())
        .max_by(|a, b| a.cmp_precedence(b).then_with(|| a.cmp(b)))
        .map(|v| v.to_string())
}

/// `helm pull REF --version V --untar` into `dest`.
fn pull_chart(helm: &Tool, reference: &str, version: &str, plain_http: bool, dest: &Path) -> Result<(), String> {
    let sh = xshell::Shell::new().map_err(|e| format!("{e:#}"))?;
    let helm_path = &helm.path;
    let plain = plain_http.then_some("--plain-http");
    let command =
        xshell::cmd!(sh, "{helm_path} pull {reference} --version {version} --untar --untardir {dest} {plain...}");
    match crate::exec::process::run(command, None) {
        Ok(done) if done.success => Ok(()),
        Ok(done) => Err(format!(
            "helm pull {reference} --version {version}: {}",
            crate::ops::stage::strip_registry_noise(&done.combined())
        )),
        Err(err) => Err(format!("{err:#}")),
    }
}

/// Test hook, for proving that a field another manager took over fails
/// the upgrade: with `XTASK_VERIFY_PAUSE_BEFORE_UPGRADE=DIR`, once the base
/// is installed verify writes `DIR/<namespace>.json` (the control plane's
/// endpoint and the namespace) and waits, at most two minutes, until that
/// file is gone, which gives whoever removes it a moment to change the
/// objects as a person or a controller of a real cluster would.
fn pause_before_upgrade(checker: &Checker, namespace: &str) {
    let Some(dir) = std::env::var_os("XTASK_VERIFY_PAUSE_BEFORE_UPGRADE") else { return };
    let Some(plane) = checker.target.cluster.writable() else { return };
    let file = PathBuf::from(dir).join(format!("{namespace}.json"));
    let endpoint = plane.endpoint();
    let note = serde_json::json!({
        "server": endpoint.server,
        "ca_file": endpoint.ca_file,
        "token": endpoint.token,
        "namespace": namespace,
    });
    if crate::util::fs::write_atomic(&file, note.to_string().as_bytes()).is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while file.exists() && Instant::now() < deadline && !crate::exec::process::interrupted() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&file);
}

/// The API server's refusal, followed by what to do about the refusals an
/// upgrade usually meets.
pub fn with_advice(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    let mut advice = Vec::new();
    if lower.contains("volumeclaimtemplates") || lower.contains("updates to statefulset spec") {
        advice.push(
            "a StatefulSet's volumeClaimTemplates (e.g. the persistence size) cannot change: delete the StatefulSet \
             with --cascade=orphan before the upgrade (its Pods and volumes stay), or keep the size",
        );
    }
    if lower.contains("spec.selector") && lower.contains("immutable") {
        advice.push(
            "a workload's spec.selector cannot change (the selector labels of charts/_common): keep the selector \
             labels, or delete the workload with --cascade=orphan before the upgrade",
        );
    }
    // Server-side apply's refusal: "Apply failed with 1 conflict: conflict
    // with \"MANAGER\" using apps/v1: .spec.replicas".
    if lower.contains("conflict with") || (lower.contains("conflict") && lower.contains("manager")) {
        advice.push(
            "another field manager (named above, e.g. kubectl scale or an autoscaler) owns the field(s) named: \
             stop setting them in the chart (e.g. no replicas when an autoscaler owns them), or take them over with \
             `helm upgrade --force-conflicts` once you know the other manager will not set them back",
        );
    }
    if advice.is_empty() {
        return message.to_string();
    }
    format!("{message}\nadvice: {}", advice.join("\nadvice: "))
}
