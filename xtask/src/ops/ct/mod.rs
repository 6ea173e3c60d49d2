//! chart-testing compatibility: `cargo xtask lint` on a repository set up
//! for `ct lint` reads its `ct.yaml`, finds its `ci/*-values.yaml`, and makes
//! the checks ct makes, so a team can swap one for the other and get the
//! same verdicts (`docs/chart-testing.md` lists what is honoured).
//!
//! The checks, in ct's order, each a step of the lint report:
//! 1. `version-increment`: with `--changed`, a chart that holds a changed
//!    file must carry a version greater than on `<remote>/<target-branch>`
//!    (ct: only for changed charts; `ct lint --all` turns it off, and so
//!    does a run of every chart here);
//! 2. `chart-schema`: Chart.yaml against ct's yamale schema (required
//!    fields, maintainers' format, no unknown keys);
//! 3. `yamllint`: Chart.yaml, values.yaml and the ci values files with ct's
//!    lintconf;
//! 4. `maintainers`: present unless deprecated, absent when deprecated;
//!    the account look-up ct makes over the network is not made;
//! 5. `command`: each of `additional-commands` ([`commands`]).
//!
//! ct then runs `helm lint` once per ci values file (or once with the
//! defaults when there is none); here those, and only those, are the chart's
//! environments ([`ct_environments`]: no `values-<env>.yaml`) and go through
//! the batched engine like any other.
//! ct stops a chart at its first failing check; the xtask runs them all and
//! reports every failure, so the verdict per chart is the same and the report
//! says more. yamale and yamllint are the real PyPI packages, run for all
//! charts in one Python process ([`yamlcheck`]) instead of one per file.

pub mod commands;
pub mod config;
mod yamlcheck;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;

use crate::core::context::Context;
use crate::core::model::{BrokenChart, Repo};
use crate::core::outcome::{Status, Step, StepResult};
use crate::exec::tools::chart_testing::PythonTools;
use crate::exec::tools::Tool;
use crate::ops::lint::profile::{ExtraChecks, Profile, RunInputs};
use crate::ops::stage::Stager;
pub use config::CtConfig;

/// The repository's chart-testing setup, once its configuration is read.
#[derive(Debug, Clone)]
pub struct Ct {
    pub config: CtConfig,
}

/// Everything the checks need, resolved for one run.
pub struct Prepared {
    config: CtConfig,
    lint_conf: PathBuf,
    schema: PathBuf,
    python: Option<PythonTools>,
    plugins: Option<Tool>,
    helm: Tool,
    /// For the charts the version check applies to: their version on the
    /// target branch (`None`: a new chart).
    old_versions: BTreeMap<usize, Option<String>>,
    jobs: usize,
}

impl Ct {
    /// Reads `--config FILE` or `<root>/ct.yaml`; `None` when the repository
    /// has no ct configuration. Warns once about keys without effect.
    pub fn load(ctx: &Context, explicit: Option<&Path>) -> Result<Option<Ct>> {
        let Some(config) = CtConfig::find(&ctx.root, explicit)? else {
            return Ok(None);
        };
        if let Some(warning) = config.ignored_warning() {
            eprintln!("{warning}");
        }
        Ok(Some(Ct { config }))
    }

    /// The context for a ct repository: ct's `chart-dirs` unless xtask.toml
    /// names its own. (How strictly helm lints is the lint profile's
    /// `strict`, from `lint_strict` of the configuration.)
    fn with_chart_dirs(&self, ctx: &Context) -> Context {
        let mut ctx = ctx.clone();
        if !xtask_toml_sets(&ctx.root, "chart-dirs") {
            ctx.config.chart_dirs = self.config.chart_dirs.clone();
        }
        ctx
    }

    /// Rewrites `@name` and `alias:name` dependency repositories to the URL
    /// `chart-repos` gives that name (ct adds those repositories to helm
    /// under the name; the xtask pulls by URL).
    fn resolve_repository_names(&self, repo: &mut Repo) {
        for chart in &mut repo.charts {
            for dep in &mut chart.meta.dependencies {
                let Some(reference) = dep.repository.as_deref() else { continue };
                let Some(name) = reference.strip_prefix('@').or_else(|| reference.strip_prefix("alias:")) else {
                    continue;
                };
                if let Some((_, url)) = self.config.chart_repos.iter().find(|(n, _)| n == name) {
                    dep.repository = Some(url.clone());
                }
            }
        }
    }

    /// Removes what ct would not lint: `excluded-charts` (by folder name)
    /// and, with `exclude-deprecated`, deprecated charts. They stay in the
    /// repository model, so charts that depend on them still stage.
    fn leave_out(&self, repo: &Repo, selected: &mut BTreeSet<usize>, broken: &mut Vec<BrokenChart>) {
        selected.retain(|&index| {
            let chart = &repo.charts[index];
            let deprecated = self.config.exclude_deprecated && chart_yaml(&chart.dir).is_some_and(|y| y.deprecated);
            !self.config.is_excluded(&chart.dir) && !deprecated
        });
        broken.retain(|b| !self.config.is_excluded(&repo.root.join(&b.rel)));
    }

    /// Resolves tools and inputs for a run. `changed` is the set of charts
    /// that hold a changed file when the run is `--changed` (ct checks the
    /// version of those only), `None` for a run of all or named charts.
    fn resolve(
        &self,
        ctx: &Context,
        repo: &Repo,
        helm: &Tool,
        changed: Option<&BTreeSet<usize>>,
        jobs: usize,
    ) -> Result<Prepared> {
        let config = &self.config;
        // ct's defaults, from the pinned ct release, only when ct.yaml names none.
        let default_etc = || crate::exec::tools::chart_testing::ensure_etc(ctx);
        let lint_conf = match &config.lint_conf {
            Some(path) => existing(path, "lint-conf", &config.file)?,
            None => default_etc()?.join("lintconf.yaml"),
        };
        let schema = match &config.chart_yaml_schema {
            Some(path) => existing(path, "chart-yaml-schema", &config.file)?,
            None => default_etc()?.join("chart_schema.yaml"),
        };
        let python = if config.validate_yaml || config.validate_chart_schema {
            Some(crate::exec::tools::chart_testing::ensure_python(ctx)?)
        } else {
            None
        };
        let plugins = if commands::uses_unittest(&config.additional_commands) {
            Some(crate::exec::tools::chart_testing::ensure_unittest(ctx)?)
        } else {
            None
        };
        let mut old_versions = BTreeMap::new();
        if let (true, Some(changed)) = (config.check_version_increment, changed) {
            let git = crate::exec::git::Git::open(&ctx.root)?;
            let target = config.target_ref();
            for &index in changed {
                let chart = &repo.charts[index];
                let path = format!("{}/Chart.yaml", chart.rel);
                let old = git
                    .show(&target, &path)?
                    .map(|text| version_in(&text))
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("{path} on {target}: cannot read the old version: {e}"))?;
                old_versions.insert(index, old);
            }
        }
        Ok(Prepared {
            config: config.clone(),
            lint_conf,
            schema,
            python,
            plugins,
            helm: helm.clone(),
            old_versions,
            jobs,
        })
    }
}

/// chart-testing as a lint profile: ct's chart folders and target branch,
/// its strictness, its deselection and its checks before the engine's.
impl Profile for Ct {
    fn strict(&self) -> bool {
        self.config.lint_strict
    }

    fn context(&self, ctx: &Context) -> Context {
        self.with_chart_dirs(ctx)
    }

    fn default_base(&self) -> Option<String> {
        Some(self.config.target_ref())
    }

    fn adapt(&self, repo: &mut Repo) {
        self.resolve_repository_names(repo);
        ct_environments(repo);
    }

    fn deselect(&self, repo: &Repo, selected: &mut BTreeSet<usize>, broken: &mut Vec<BrokenChart>) {
        self.leave_out(repo, selected, broken);
    }

    fn prepare(&self, run: &RunInputs<'_>) -> Result<Option<Box<dyn ExtraChecks + Send + Sync>>> {
        // ct checks versions only of the charts that hold a change.
        let changed = if run.selection.changed && self.config.check_version_increment {
            Some(crate::ops::affected::compute(run.ctx, run.repo, run.graph, run.selection.base())?.changed)
        } else {
            None
        };
        let prepared = self.resolve(run.ctx, run.repo, &run.tools.helm, changed.as_ref(), run.jobs)?;
        Ok(Some(Box::new(prepared)))
    }
}

/// ct's environments of every chart: its `ci/*-values.yaml` files, else its
/// defaults alone. `values-<env>.yaml` files are this project's convention,
/// not ct's, and ct never reads them: checked instead of the defaults, a chart
/// whose defaults do not lint would pass here and fail in ct.
fn ct_environments(repo: &mut Repo) {
    for chart in &mut repo.charts {
        chart.environments.retain(|env| env.name.starts_with("ci/"));
        if chart.environments.is_empty() {
            chart.environments.push(crate::core::model::Environment {
                name: crate::core::model::DEFAULT_ENV.to_string(),
                values_files: Vec::new(),
            });
        }
    }
}

/// Whether `xtask.toml` sets `key` itself (then it wins over ct.yaml).
fn xtask_toml_sets(root: &Path, key: &str) -> bool {
    std::fs::read_to_string(root.join(crate::core::config::FILE_NAME))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|table| table.contains_key(key))
}

fn existing(path: &Path, key: &str, file: &str) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        crate::util::exit::usage(format!("{file}: {key} {}: no such file", path.display()))
    }
}

/// The fields of Chart.yaml that only ct's checks read.
#[derive(Debug, Default, serde::Deserialize)]
struct CtChartYaml {
    #[serde(default)]
    version: Option<yaml_serde::Value>,
    #[serde(default)]
    deprecated: bool,
    #[serde(default)]
    maintainers: Option<Vec<yaml_serde::Value>>,
}

fn chart_yaml(dir: &Path) -> Option<CtChartYaml> {
    let text = std::fs::read_to_string(dir.join("Chart.yaml")).ok()?;
    crate::util::yaml::parse(&text, "Chart.yaml").ok()
}

fn version_in(text: &str) -> Result<String, String> {
    let meta: CtChartYaml = crate::util::yaml::parse(text, "Chart.yaml").map_err(|e| e.message)?;
    Ok(match meta.version {
        Some(yaml_serde::Value::String(s)) => s,
        Some(yaml_serde::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    })
}

/// A version as ct (Masterminds semver) reads it: a leading `v` and missing
/// minor or patch numbers are allowed.
fn lenient_version(text: &str) -> Option<semver::Version> {
    let text = text.trim().trim_start_matches(['v', 'V']);
    if let Ok(v) = semver::Version::parse(text) {
        return Some(v);
    }
    let (core, rest) = match text.find(['-', '+']) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    let mut parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    while parts.len() < 3 {
        parts.push("0");
    }
    semver::Version::parse(&format!("{}{rest}", parts.join("."))).ok()
}

/// ct's version-increment verdict: `Ok(message)` or `Err(message)`.
fn version_verdict(old: Option<&str>, new: &str, target: &str) -> Result<String, String> {
    let Some(old) = old else {
        return Ok(format!("new chart: no Chart.yaml on {target}"));
    };
    let parse = |v: &str| lenient_version(v).ok_or_else(|| format!("failed parsing semantic version {v:?}"));
    let (old_v, new_v) = (parse(old)?, parse(new)?);
    if old_v.cmp_precedence(&new_v) != std::cmp::Ordering::Less {
        return Err(format!(
            "chart version not ok: {new} is not greater than {old} on {target}; needs a version bump (fix: `cargo xtask bump --changed --base {target}`)"
        ));
    }
    Ok(format!("{old} on {target} -> {new}"))
}

/// ct's maintainer rules without the network look-up of each account.
fn maintainers_verdict(meta: &CtChartYaml) -> Result<(), String> {
    let count = meta.maintainers.as_ref().map_or(0, Vec::len);
    if meta.deprecated {
        return if count > 0 { Err("deprecated chart must not have maintainers".into()) } else { Ok(()) };
    }
    if count == 0 {
        return Err("chart doesn't have maintainers (add `maintainers:` with a name per person, or set validate-maintainers: false in ct.yaml)".into());
    }
    for maintainer in meta.maintainers.iter().flatten() {
        let name = maintainer.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        // ct asks https://<git host>/<name>; a name that cannot be an account
        // there (empty, spaces, slashes) fails that look-up too.
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(format!("maintainer {name:?} is not an account name on the git host (ct looks each one up)"));
        }
    }
    Ok(())
}

impl ExtraChecks for Prepared {
    /// What the checks depend on beyond the chart's packaged files, for the
    /// cache key: the configuration, lintconf and schema, the tool versions,
    /// every file of the chart folder (ci values and unit tests are often
    /// left out of the package by .helmignore), and the version on the
    /// target branch when the version check applies.
    fn key_part(&self, repo: &Repo, index: usize) -> Result<String> {
        let chart = &repo.charts[index];
        let mut key = crate::ops::cache::KeyBuilder::default();
        key.add("ct-config", self.config.fingerprint().as_bytes());
        key.add("ct-lintconf", &std::fs::read(&self.lint_conf)?);
        key.add("ct-schema", &std::fs::read(&self.schema)?);
        if let Some(python) = &self.python {
            key.add("ct-python", format!("yamllint {} yamale {}", python.yamllint, python.yamale).as_bytes());
        }
        if let Some(plugins) = &self.plugins {
            key.add("ct-unittest", plugins.version.as_bytes());
        }
        key.add("helm", self.helm.version.as_bytes());
        key.add("ct-files", crate::ops::cache::hash_chart_files(&chart.dir, &|_, _| false)?.as_bytes());
        if let Some(old) = self.old_versions.get(&index) {
            key.add("ct-old-version", old.as_deref().unwrap_or("<new chart>").as_bytes());
        }
        Ok(key.finish())
    }

    /// Runs ct's checks for `charts`; each chart's steps in ct's order.
    fn check(
        &self,
        ctx: &Context,
        repo: &Repo,
        stager: &Stager,
        charts: &BTreeSet<usize>,
    ) -> BTreeMap<usize, Vec<StepResult>> {
        let mut steps: BTreeMap<usize, Vec<StepResult>> = charts.iter().map(|&c| (c, Vec::new())).collect();
        let target = self.config.target_ref();
        for &index in charts {
            let chart = &repo.charts[index];
            if let Some(old) = self.old_versions.get(&index) {
                let (status, message) = match version_verdict(old.as_deref(), &chart.version.to_string(), &target) {
                    Ok(message) => (Status::Ok, message),
                    Err(message) => (Status::Failed, format!("{}/Chart.yaml: {message}", chart.rel)),
                };
                push(
                    &mut steps,
                    index,
                    StepResult::new(Step::VersionIncrement, None, None, status, Default::default(), message),
                );
            }
        }

        if let Some(python) = &self.python {
            let started = Instant::now();
            let found = yamlcheck::run(
                ctx,
                python,
                self.config.validate_chart_schema.then_some(self.schema.as_path()),
                self.config.validate_yaml.then_some(self.lint_conf.as_path()),
                repo,
                charts,
            );
            let duration = started.elapsed();
            for &index in charts {
                for (name, outcome) in found.for_chart(repo, index) {
                    let (status, message) = match outcome {
                        Ok(message) => (Status::Ok, message),
                        Err(message) => (Status::Failed, message),
                    };
                    push(&mut steps, index, StepResult::new(name, None, None, status, duration, message));
                }
            }
        }

        if self.config.validate_maintainers {
            for &index in charts {
                let chart = &repo.charts[index];
                let shown = format!("{}/Chart.yaml", chart.rel);
                let verdict = match chart_yaml(&chart.dir) {
                    Some(meta) => maintainers_verdict(&meta).map_err(|m| format!("{shown}: {m}")),
                    None => Err(format!("{shown}: cannot read maintainers")),
                };
                let (status, message) = match verdict {
                    Ok(()) => (Status::Ok, String::new()),
                    Err(message) => (Status::Failed, message),
                };
                push(
                    &mut steps,
                    index,
                    StepResult::new(Step::Maintainers, None, None, status, Default::default(), message),
                );
            }
        }

        if !self.config.additional_commands.is_empty() {
            let facts: Vec<commands::ChartFacts> = charts
                .iter()
                .map(|&index| {
                    let chart = &repo.charts[index];
                    let app_version = match &chart.meta.app_version {
                        Some(yaml_serde::Value::String(s)) => s.clone(),
                        Some(other) => yaml_serde::to_string(other).unwrap_or_default().trim().to_string(),
                        None => String::new(),
                    };
                    commands::ChartFacts {
                        index,
                        path: stager.staged_dir(chart),
                        name: chart.name.clone(),
                        version: chart.version.to_string(),
                        app_version,
                    }
                })
                .collect();
            let mut path_prefix = Vec::new();
            if let Some(dir) = self.helm.path.parent() {
                path_prefix.push(dir.to_path_buf());
            }
            if let Some(python) = &self.python {
                path_prefix.push(python.bin.clone());
            }
            let runner = commands::Runner {
                helm: &self.helm,
                plugins: self.plugins.as_ref().map(|p| p.path.as_path()),
                cwd: &ctx.root,
                path_prefix,
                jobs: self.jobs,
            };
            for (index, chart_steps) in runner.run(&self.config.additional_commands, &facts) {
                steps.entry(index).or_default().extend(chart_steps);
            }
        }
        steps
    }
}

fn push(steps: &mut BTreeMap<usize, Vec<StepResult>>, index: usize, step: StepResult) {
    steps.entry(index).or_default().push(step);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_increment_follows_masterminds() {
        assert!(version_verdict(Some("1.0.0"), "1.0.1", "origin/main").is_ok());
        assert!(version_verdict(Some("1.0.0"), "1.0.0", "origin/main").unwrap_err().contains("needs a version bump"));
        assert!(version_verdict(Some("1.1"), "1.0.9", "origin/main").is_err(), "1.1 reads as 1.1.0");
        assert!(
            version_verdict(Some("v1.0.0"), "1.0.0+build.2", "origin/main").is_err(),
            "build metadata has no precedence"
        );
        assert!(version_verdict(Some("1.0.0-rc.1"), "1.0.0", "origin/main").is_ok());
        assert!(version_verdict(None, "0.1.0", "origin/main").is_ok(), "a new chart is not checked");
    }

    #[test]
    fn maintainers_rules_without_network() {
        let meta = |text: &str| -> CtChartYaml { yaml_serde::from_str(text).unwrap() };
        assert!(maintainers_verdict(&meta("name: a\nmaintainers:\n  - name: octocat\n")).is_ok());
        assert!(maintainers_verdict(&meta("name: a\n")).unwrap_err().contains("doesn't have maintainers"));
        assert!(maintainers_verdict(&meta("deprecated: true\nmaintainers:\n  - name: octocat\n")).is_err());
        assert!(maintainers_verdict(&meta("deprecated: true\n")).is_ok());
        assert!(maintainers_verdict(&meta("maintainers:\n  - name: Jane Doe\n")).is_err());
    }

    #[test]
    fn ci_values_files_become_environments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ci")).unwrap();
        for file in ["b-values.yaml", "a-values.yaml", "notes.yaml"] {
            std::fs::write(dir.path().join("ci").join(file), "x: 1\n").unwrap();
        }
        let envs = crate::core::model::ci_environments(dir.path(), "charts/x");
        let names: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, vec!["ci/a", "ci/b"]);
        assert_eq!(envs[0].values_files, vec!["charts/x/ci/a-values.yaml"]);
    }
}
