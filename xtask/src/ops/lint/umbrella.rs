//! Checking an umbrella chart in pieces, so that its cost follows what
//! changed instead of how many subcharts it has.
//!
//! An umbrella over N services is rendered by helm as one chart, and helm's
//! dependency processing copies the whole coalesced values tree once per
//! subchart (`processDependencyEnabled`): the cost of one umbrella render
//! grows with N², about 7 s for N = 200 on two cores, paid for `lint` and
//! `template` of every environment, and again after any one service changed.
//!
//! So a batched run checks an umbrella as:
//! - member shards: the umbrella (its values, the environment's values file,
//!   its partial templates) with only some of its subcharts, in parallel;
//!   each subchart's documents and verdicts are a *piece*, cached under the
//!   umbrella's own files, the environment and that subchart's key;
//! - the own part: the umbrella's own templates, rendered within the first
//!   member shard when they read nothing of the subcharts, else alone with
//!   every subchart as a stub (its Chart.yaml, values and partials, no
//!   manifests), so that `.Values` is exactly what the full render sees;
//! - the environment's output is the pieces' documents in helm's own order
//!   (kind order, then file path), byte for byte what `helm template` prints.
//!
//! A piece of a subchart equals its part of the full render when every
//! subchart sees only its own values and globals (no `import-values`, no
//! aliases, conditions on its own values), and every named template resolves
//! to the same text whichever subcharts are loaded (each name is defined by
//! one file content only). [`Plan::analyse`] checks exactly that and
//! otherwise declines: the umbrella is then checked whole. Whenever a shard
//! fails in any way (lint, render, a hook, output it cannot split), that
//! environment is checked whole as well, so a failure is always helm's own
//! verdict on the real chart. `--no-batch` never uses pieces; the
//! differential tests compare both.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::Checker;
use super::report::{Status, Step, StepResult};
use super::tree;
use crate::core::model::{ChartKind, Environment};
use crate::ops::cache::KeyBuilder;
use crate::util::fs;

/// Bump when the meaning of a stored piece changes.
const PIECE_FORMAT: &str = "umbrella piece v1";

/// Subcharts per member shard on a cold run: large enough that process
/// starts stay few, small enough that helm's N² values copying stays cheap
/// and both cores get work. Measured per subchart of the synthetic services
/// (lint and template of one shard): 10 -> 26 ms, 20 -> 20 ms, 40 -> 21 ms,
/// 80 -> 22 ms, the whole 200 -> 35 ms. With cheaper charts, perf put the
/// copying at ~0.1 ms per subchart and shard member and a process at ~78 ms
/// of CPU, whose balance is near 25 (between 20 and 40 the difference is
/// within the machine's noise).
const SHARD_SIZE: usize = 25;

/// A manifest added to every shard's own templates for the render only: its
/// unknown kind sorts after every other, so it is the record whose end helm
/// trims, and it is dropped again.
const SENTINEL_FILE: &str = "zz-xtask-shard-sentinel.yaml";
const SENTINEL: &str = "apiVersion: xtask.invalid/v1\nkind: \"~XtaskShardSentinel\"\nmetadata:\n  name: sentinel\n";

/// The key the render of a Kubernetes-independent tree is stored under.
const ANY_KUBE: &str = "any";

/// Dependency fields a shard reproduces faithfully; any other field
/// (`import-values`, `alias`, ...) makes subcharts see more than their own values.
const PLAIN_DEPENDENCY_FIELDS: [&str; 5] = ["name", "version", "repository", "condition", "tags"];

/// kubeconform's problems per file, or why it could not run.
type Validation = Result<BTreeMap<PathBuf, Vec<String>>, String>;

/// One subchart of the umbrella.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    /// Its entry in the staged umbrella's `charts/` (a folder link or an archive).
    entry: PathBuf,
    /// Its own cache key (a repository chart's key, or an archive's hash).
    key: String,
}

/// Why and how an umbrella is checked in pieces.
pub struct Plan {
    index: usize,
    name: String,
    chart_yaml: yaml_serde::Value,
    members: Vec<Member>,
    /// The umbrella's own templates read nothing of its subcharts: its own
    /// part renders without them.
    own_reads_no_subchart: bool,
    kube_dependent: bool,
    /// Key material shared by every piece of this umbrella.
    base_key: KeyBuilder,
}

/// A piece as stored: the documents per Kubernetes version (or [`ANY_KUBE`])
/// and kubeconform's problems per Kubernetes version.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Piece {
    docs: BTreeMap<String, Vec<Doc>>,
    problems: BTreeMap<String, Vec<String>>,
}

/// One manifest of `helm template` output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Doc {
    /// `# Source:` path, e.g. `shop/charts/svc-0001/templates/service.yaml`.
    source: String,
    kind: String,
    /// The record as helm printed it, from `# Source:` to its last newline.
    text: String,
}

/// What one shard task produced.
struct Outcome {
    env: String,
    /// A message when the shard cannot stand in for the whole chart.
    failure: Option<String>,
    /// Per render class: documents per part (a member's name, or `None` for own).
    docs: BTreeMap<String, BTreeMap<Option<String>, Vec<Doc>>>,
    duration: Duration,
}

/// What one shard renders: the umbrella's own templates, some members, or
/// both (own templates that read nothing of the subcharts ride along with
/// the first member shard of their environment: two processes fewer each).
#[derive(Debug, Clone)]
struct Part {
    own: bool,
    members: Vec<usize>,
}

impl Plan {
    /// Decides whether the umbrella `index` can be checked in pieces; `None`
    /// means check it whole (see the module docs for the conditions).
    pub fn analyse(checker: &Checker<'_>, index: usize) -> Result<Option<Plan>> {
        let chart = &checker.repo.charts[index];
        if chart.kind != ChartKind::Umbrella || chart.dir.join("values.schema.json").exists() {
            return Ok(None);
        }
        let chart_yaml: yaml_serde::Value =
            crate::util::yaml::load(&chart.dir.join("Chart.yaml"), &format!("{}/Chart.yaml", chart.rel))?;
        let Some(deps) = chart_yaml.get("dependencies").and_then(|d| d.as_sequence()) else {
            return Ok(None);
        };
        let staged = checker.staged(index);
        let entries: Vec<PathBuf> =
            std::fs::read_dir(staged.join("charts"))?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        let mut members = Vec::new();
        let mut names = BTreeSet::new();
        for dep in deps {
            let Some(map) = dep.as_mapping() else { return Ok(None) };
            if map.keys().any(|k| !k.as_str().is_some_and(|k| PLAIN_DEPENDENCY_FIELDS.contains(&k))) {
                return Ok(None);
            }
            let Some(name) = dep.get("name").and_then(|n| n.as_str()) else { return Ok(None) };
            if !names.insert(name.to_string()) {
                return Ok(None);
            }
            // A condition on another subchart's values would see different
            // values in a shard without that subchart.
            if let Some(condition) = dep.get("condition").and_then(|c| c.as_str()) {
                if condition.split(',').any(|path| !path.trim().starts_with(&format!("{name}."))) {
                    return Ok(None);
                }
            }
            let matching: Vec<&PathBuf> = entries
                .iter()
                .filter(|p| {
                    let file = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                    file == name || (file.starts_with(&format!("{name}-")) && file.ends_with(".tgz"))
                })
                .collect();
            let [entry] = matching[..] else { return Ok(None) };
            let key = if entry.is_dir() {
                match checker.repo.index_of(name).and_then(|i| checker.keys.get(&i)) {
                    Some(key) => key.clone(),
                    None => return Ok(None),
                }
            } else {
                fs::sha256_hex(&std::fs::read(entry)?)
            };
            members.push(Member { name: name.to_string(), entry: entry.clone(), key });
        }
        if members.is_empty() {
            return Ok(None);
        }
        let facts = tree::scan(&staged)?;
        if !facts.defines_are_unique() {
            return Ok(None);
        }
        let own_text = own_templates_text(&chart.dir.join("templates"))?;
        // `.Subcharts` exposes subcharts' files, which stubs do not carry.
        if own_text.contains("Subcharts") {
            return Ok(None);
        }
        let own_reads_no_subchart = reads_no_subchart(&own_text);
        if !own_reads_no_subchart && members.iter().any(|m| !m.entry.is_dir() || has_archive(&m.entry)) {
            // Stubs are built from folders; an archive would need unpacking.
            return Ok(None);
        }

        let ignore = crate::util::helmignore::HelmIgnore::load(&chart.dir);
        let own_files = crate::ops::cache::hash_chart_files(&chart.dir, &|rel, is_dir| ignore.is_ignored(rel, is_dir))?;
        let tools = checker.tools;
        let mut base_key = KeyBuilder::default();
        base_key
            .add("format", PIECE_FORMAT.as_bytes())
            .add("umbrella", chart.name.as_bytes())
            .add("files", own_files.as_bytes())
            .add("kube", checker.kube_versions.join(",").as_bytes())
            .add("release", checker.ctx.config.release_name.as_bytes())
            .add("helm", tools.helm.version.as_bytes())
            .add("kubeconform", tools.kubeconform.version.as_bytes())
            .add("schemas", tools.schemas.fingerprint.as_bytes())
            .add("schema-locations", tools.schemas.locations.join("\n").as_bytes())
            .add("defines", facts.defines_fingerprint().as_bytes())
            .add("kube-dependent", if facts.kube_dependent { b"yes" } else { b"no" })
            .add("strict", if checker.strict { b"yes" } else { b"no" });
        Ok(Some(Plan {
            index,
            name: chart.name.clone(),
            chart_yaml,
            members,
            own_reads_no_subchart,
            kube_dependent: facts.kube_dependent,
            base_key,
        }))
    }

    /// The umbrella's chart index.
    pub fn index(&self) -> usize {
        self.index
    }

    fn member_key(&self, env: &str, member: &Member) -> String {
        let mut key = self.base_key.clone();
        key.add("env", env.as_bytes()).add("member", member.name.as_bytes()).add("member-key", member.key.as_bytes());
        key.finish()
    }

    fn own_key(&self, env: &str) -> String {
        let mut key = self.base_key.clone();
        key.add("env", env.as_bytes()).add("own", b"");
        if !self.own_reads_no_subchart {
            for member in &self.members {
                key.add("member-key", member.key.as_bytes());
            }
        }
        key.finish()
    }

    /// The render classes: one render serves every Kubernetes version when
    /// nothing in the tree depends on it.
    fn classes(&self, kube_versions: &[String]) -> Vec<String> {
        if self.kube_dependent {
            kube_versions.to_vec()
        } else {
            vec![ANY_KUBE.to_string()]
        }
    }
}

/// Checks the umbrella of `plan` in every environment the run checks, adding
/// its steps to `steps`. Environments whose shards failed are checked whole;
/// their renders are returned for the batch's validation pass.
pub fn check(
    checker: &Checker<'_>,
    plan: &Plan,
    steps: &mut BTreeMap<usize, Vec<StepResult>>,
) -> Vec<super::batch::Rendered> {
    let chart = &checker.repo.charts[plan.index];
    let envs: Vec<Environment> = checker.environments(chart).into_iter().cloned().collect();
    let classes = plan.classes(&checker.kube_versions);
    let read_cache = checker.read_cache;
    let label = |env: &str, part: &str| format!("{}/{env}/{part}", plan.name);

    // What the cache already holds.
    let mut pieces: BTreeMap<(String, Option<String>), Piece> = BTreeMap::new();
    let mut tasks: Vec<(&Environment, Part)> = Vec::new();
    for env in &envs {
        let own_missing = match read_cache
            .then(|| checker.cache.get::<Piece>(&plan.own_key(&env.name), &label(&env.name, "-")))
            .flatten()
        {
            Some(piece) => {
                pieces.insert((env.name.clone(), None), piece);
                false
            }
            None => true,
        };
        let mut missing = Vec::new();
        for (i, member) in plan.members.iter().enumerate() {
            let key = plan.member_key(&env.name, member);
            match read_cache.then(|| checker.cache.get::<Piece>(&key, &label(&env.name, &member.name))).flatten() {
                Some(piece) => {
                    pieces.insert((env.name.clone(), Some(member.name.clone())), piece);
                }
                None => missing.push(i),
            }
        }
        let shards = missing.len().div_ceil(SHARD_SIZE).max(checker.jobs.min(missing.len()));
        let mut parts: Vec<Part> = Vec::new();
        if shards > 0 {
            let size = missing.len().div_ceil(shards);
            parts.extend(missing.chunks(size).map(|chunk| Part { own: false, members: chunk.to_vec() }));
        }
        if own_missing {
            match parts.first_mut() {
                Some(first) if plan.own_reads_no_subchart => first.own = true,
                _ => parts.push(Part { own: true, members: Vec::new() }),
            }
        }
        tasks.extend(parts.into_iter().map(|part| (env, part)));
    }

    let outcomes = run_shards(checker, plan, &tasks, &classes);

    // Environments in which some shard could not stand in for the whole.
    let mut whole: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for outcome in &outcomes {
        if let Some(failure) = &outcome.failure {
            whole.entry(outcome.env.clone()).or_default().push(failure.clone());
        }
    }
    let mut durations: BTreeMap<String, Duration> = BTreeMap::new();
    let mut fresh: BTreeMap<(String, Option<String>), Piece> = BTreeMap::new();
    for outcome in outcomes.into_iter().filter(|o| o.failure.is_none()) {
        let d = durations.entry(outcome.env.clone()).or_default();
        *d = (*d).max(outcome.duration);
        for (class, parts) in outcome.docs {
            for (part, docs) in parts {
                fresh.entry((outcome.env.clone(), part)).or_default().docs.insert(class.clone(), docs);
            }
        }
    }
    fresh.retain(|(env, _), _| !whole.contains_key(env));

    // Validate the new pieces: one file per piece and class, one kubeconform
    // per Kubernetes version over all of them.
    let validate_started = Instant::now();
    let mut files: Vec<(PathBuf, (String, Option<String>), String)> = Vec::new();
    let piece_dir = checker.ctx.work_dir.join("pieces").join(&plan.name);
    for ((env, part), piece) in &fresh {
        for (class, docs) in &piece.docs {
            let file = piece_dir.join(env).join(class).join(format!("{}.yaml", part.as_deref().unwrap_or("-own")));
            // Each document as kubeconform reads it inside helm's whole
            // output (a trailing separator cuts the last one where the next
            // record would): the same text as in the service's own render,
            // so the run judges it once.
            let text: String = docs.iter().map(|d| format!("---\n{}", d.text)).chain(["---\n".to_string()]).collect();
            if let Err(err) = fs::write_atomic(&file, text.as_bytes()) {
                whole.entry(env.clone()).or_default().push(format!("{err:#}"));
            }
            files.push((file, (env.clone(), part.clone()), class.clone()));
        }
    }
    let validations: Vec<(String, Validation)> = checker
        .kube_versions
        .par_iter()
        .map(|kube| {
            let paths: Vec<PathBuf> = files
                .iter()
                .filter(|(_, _, class)| class == ANY_KUBE || class == kube)
                .map(|(f, _, _)| f.clone())
                .collect();
            if paths.is_empty() {
                return (kube.clone(), Ok(BTreeMap::new()));
            }
            let result =
                checker.validations.validate(checker.tools, kube, &paths).map(|(_, p)| p).map_err(|e| format!("{e:#}"));
            (kube.clone(), result)
        })
        .collect();
    let validate_duration = validate_started.elapsed();
    for (kube, result) in validations {
        match result {
            Ok(problems) => {
                for (file, id, class) in &files {
                    if class == ANY_KUBE || class == &kube {
                        if let Some(piece) = fresh.get_mut(id) {
                            piece.problems.insert(kube.clone(), problems.get(file).cloned().unwrap_or_default());
                        }
                    }
                }
            }
            Err(message) => {
                for (_, (env, _), _) in &files {
                    whole.entry(env.clone()).or_default().push(message.clone());
                }
            }
        }
    }

    // Store what passed, then assemble each environment.
    for ((env, part), piece) in &fresh {
        if whole.contains_key(env) || piece.problems.values().any(|p| !p.is_empty()) {
            continue;
        }
        let (key, part_label) = match part {
            None => (plan.own_key(env), "-".to_string()),
            Some(name) => match plan.members.iter().find(|m| &m.name == name) {
                Some(member) => (plan.member_key(env, member), name.clone()),
                None => continue,
            },
        };
        if let Err(err) = checker.cache.put(&key, &label(env, &part_label), piece) {
            eprintln!("warning: cannot store a piece of {} in the cache: {err:#}", plan.name);
        }
    }
    pieces.extend(fresh.into_iter().filter(|((env, _), _)| !whole.contains_key(env)));
    // An environment is assembled only from a complete set of pieces.
    for env in &envs {
        let complete = std::iter::once(None)
            .chain(plan.members.iter().map(|m| Some(m.name.clone())))
            .all(|part| pieces.contains_key(&(env.name.clone(), part)));
        if !complete {
            whole.entry(env.name.clone()).or_default().push("a piece is missing".to_string());
        }
    }

    let mut rendered = Vec::new();
    for env in &envs {
        if whole.contains_key(&env.name) {
            rendered.extend(checker.check_environment_whole(plan.index, env, steps));
            continue;
        }
        let duration = durations.get(&env.name).copied().unwrap_or_default();
        steps.entry(plan.index).or_default().push(StepResult::new(
            Step::Lint,
            Some(&env.name),
            None,
            Status::Ok,
            duration,
            "",
        ));
        let parts: Vec<&Piece> = std::iter::once(None)
            .chain(plan.members.iter().map(|m| Some(m.name.clone())))
            .filter_map(|part| pieces.get(&(env.name.clone(), part)))
            .collect();
        for kube in &checker.kube_versions {
            let class = if plan.kube_dependent { kube.as_str() } else { ANY_KUBE };
            let mut docs: Vec<&Doc> = parts.iter().flat_map(|p| p.docs.get(class).into_iter().flatten()).collect();
            sort_like_helm(&mut docs);
            let records: Vec<crate::exec::helm::Record> = docs
                .iter()
                .map(|d| crate::exec::helm::Record { source: d.source.clone(), text: d.text.clone() })
                .collect();
            let text = crate::exec::helm::join_records(&records);
            let written = fs::join_inside(
                &checker.ctx.work_dir.join("rendered"),
                format!("{kube}/{}/{}.yaml", plan.name, env.name),
            )
            .and_then(|file| fs::write_atomic(&file, text.as_bytes()));
            let (status, message) = match written {
                Ok(()) => (Status::Ok, String::new()),
                Err(err) => (Status::Failed, format!("{err:#}")),
            };
            steps.entry(plan.index).or_default().push(StepResult::new(
                Step::Render,
                Some(&env.name),
                Some(kube),
                status,
                duration,
                message,
            ));
            let problems: Vec<String> =
                parts.iter().flat_map(|p| p.problems.get(kube).cloned().unwrap_or_default()).collect();
            let status = Status::from_ok(problems.is_empty());
            steps.entry(plan.index).or_default().push(StepResult::new(
                Step::Validate,
                Some(&env.name),
                Some(kube),
                status,
                validate_duration,
                problems.join("\n"),
            ));
        }
    }
    rendered
}

/// Runs every shard: one `helm lint` per environment over all of its shards
/// (helm gives each its own verdict, and a process start costs about as
/// much as linting three subcharts), and one render per shard, all in
/// parallel. Renders need nothing of the lint: each shard is built twice,
/// the render's copy with the sentinel.
fn run_shards(checker: &Checker<'_>, plan: &Plan, tasks: &[(&Environment, Part)], classes: &[String]) -> Vec<Outcome> {
    enum Job {
        Lint(Vec<usize>),
        Render(usize),
    }
    enum Done {
        Linted(Vec<ShardLint>),
        Rendered(usize, Outcome),
    }
    // Lint groups: the shards of one environment (the own part alone apart,
    // it is linted with every check), split so that every worker has one.
    let mut groups: BTreeMap<(&str, bool), Vec<usize>> = BTreeMap::new();
    for (n, (env, part)) in tasks.iter().enumerate() {
        groups.entry((env.name.as_str(), part.members.is_empty())).or_default().push(n);
    }
    let per_group = checker.jobs.div_ceil(groups.len().max(1)).max(1);
    let mut jobs: Vec<Job> = Vec::new();
    for shards in groups.into_values() {
        let size = shards.len().div_ceil(per_group).max(1);
        jobs.extend(shards.chunks(size).map(|chunk| Job::Lint(chunk.to_vec())));
    }
    // Longest first: the lint groups, then the renders fill in.
    jobs.extend((0..tasks.len()).map(Job::Render));

    let results: Vec<Done> = jobs
        .par_iter()
        .map(|job| match job {
            Job::Lint(shards) => Done::Linted(lint_shards(checker, plan, tasks, shards)),
            Job::Render(n) => {
                let (env, part) = &tasks[*n];
                Done::Rendered(*n, render_shard(checker, plan, *n, env, part, classes))
            }
        })
        .collect();

    let mut lint_results: BTreeMap<usize, (Option<String>, Duration)> = BTreeMap::new();
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    for done in results {
        match done {
            Done::Linted(linted) => {
                for (n, failure, duration) in linted {
                    lint_results.insert(n, (failure, duration));
                }
            }
            Done::Rendered(n, outcome) => {
                outcomes.insert(n, outcome);
            }
        }
    }
    outcomes
        .into_iter()
        .map(|(n, mut outcome)| {
            let (lint_failure, lint_duration) =
                lint_results.remove(&n).unwrap_or((Some("the shard was not linted".to_string()), Duration::ZERO));
            // A failed lint is the first thing wrong with the shard.
            if lint_failure.is_some() {
                outcome.failure = lint_failure;
            }
            outcome.duration += lint_duration;
            outcome
        })
        .collect()
}

/// A shard's lint: its number, its failure if any, the time of the process.
type ShardLint = (usize, Option<String>, Duration);

/// Lints the shards `shards` (of one environment) in one process; returns
/// each shard's failure, if any, and the time of that process.
fn lint_shards(checker: &Checker<'_>, plan: &Plan, tasks: &[(&Environment, Part)], shards: &[usize]) -> Vec<ShardLint> {
    let fail_all = |why: String| shards.iter().map(|&n| (n, Some(why.clone()), Duration::ZERO)).collect();
    let Some(&(env, _)) = shards.first().map(|&n| &tasks[n]) else {
        return Vec::new();
    };
    let dirs: Vec<PathBuf> = shards
        .iter()
        .map(|n| checker.ctx.work_dir.join("render").join(format!("{}-shard-{n}-lint", plan.name)))
        .collect();
    let result = (|| -> Result<Vec<ShardLint>> {
        for (&n, dir) in shards.iter().zip(&dirs) {
            build_shard(checker, plan, dir, &tasks[n].1)?;
        }
        let values = checker.values_paths(env);
        let kube = checker.newest_kube();
        // Member shards leave the subcharts' schemas to their render: both
        // validate the same coalesced values against the same schemas
        // (helm's ToRenderValuesWithSchemaValidation), and a shard's only
        // own schema check, values.yaml against an umbrella schema, has
        // nothing to check ([`Plan::analyse`] declines umbrellas with one).
        // A render that fails it sends the environment whole. Compiling
        // each subchart's schema once instead of twice saves about a tenth
        // of a shard's lint. The own part alone is linted with every check.
        let members = shards.iter().all(|&n| !tasks[n].1.members.is_empty());
        let flags: &[&str] = if members { &["--skip-schema-validation"] } else { &[] };
        let (finished, verdicts) =
            crate::exec::helm::lint_with(&checker.tools.helm, &dirs, &values, kube, checker.strict, flags)?;
        Ok(shards
            .iter()
            .zip(&dirs)
            .map(|(&n, dir)| {
                let failure = match verdicts.get(dir) {
                    Some(verdict) if verdict.ok => None,
                    Some(verdict) => Some(format!("shard lint failed: {}", verdict.message)),
                    None => Some(format!("shard lint failed: {}", crate::exec::helm::clean(&finished.combined()))),
                };
                (n, failure, finished.duration)
            })
            .collect())
    })();
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    result.unwrap_or_else(|err| fail_all(format!("{err:#}")))
}

/// Builds one shard with the sentinel and renders it for each class.
fn render_shard(
    checker: &Checker<'_>,
    plan: &Plan,
    n: usize,
    env: &Environment,
    part: &Part,
    classes: &[String],
) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome { env: env.name.clone(), failure: None, docs: BTreeMap::new(), duration: Duration::ZERO };
    let dir = checker.ctx.work_dir.join("render").join(format!("{}-shard-{n}", plan.name));
    let result = (|| -> Result<Option<String>> {
        build_shard(checker, plan, &dir, part)?;
        let values = checker.values_paths(env);
        let kube = checker.newest_kube();
        fs::write_atomic(&dir.join("templates").join(SENTINEL_FILE), SENTINEL.as_bytes())?;
        for class in classes {
            let render_kube = if class == ANY_KUBE { kube } else { class.as_str() };
            let release = &checker.ctx.config.release_name;
            let finished = crate::exec::helm::template(&checker.tools.helm, release, &dir, &values, &[], render_kube)?;
            if !finished.success {
                return Ok(Some(format!("shard render failed: {}", crate::exec::helm::clean(&finished.stderr))));
            }
            let docs = match shard_docs(&finished.stdout) {
                Ok(docs) => docs,
                Err(why) => return Ok(Some(why)),
            };
            let mut by_part: BTreeMap<Option<String>, Vec<Doc>> = BTreeMap::new();
            let charts_prefix = format!("{}/charts/", plan.name);
            for doc in docs {
                let owner = doc
                    .source
                    .strip_prefix(&charts_prefix)
                    .map(|rest| rest.split('/').next().unwrap_or_default().to_string());
                match owner {
                    Some(owner) if !part.members.is_empty() => by_part.entry(Some(owner)).or_default().push(doc),
                    // A shard of the own part alone has stubs, which render nothing.
                    Some(_) => {}
                    None if part.own => by_part.entry(None).or_default().push(doc),
                    None => return Ok(Some(format!("unexpected document {} in a member shard", doc.source))),
                }
            }
            // Every part of the shard gets a (possibly empty) document list.
            if part.own {
                by_part.entry(None).or_default();
            }
            for &i in &part.members {
                by_part.entry(Some(plan.members[i].name.clone())).or_default();
            }
            outcome.docs.insert(class.clone(), by_part);
        }
        Ok(None)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    outcome.failure = match result {
        Ok(failure) => failure,
        Err(err) => Some(format!("{err:#}")),
    };
    outcome.duration = started.elapsed();
    outcome
}

/// A shard folder: the umbrella's files, its Chart.yaml with only the
/// shard's dependencies, and `charts/` with those (own part: none, or stubs
/// of all).
fn build_shard(checker: &Checker<'_>, plan: &Plan, dir: &Path, part: &Part) -> Result<()> {
    if dir.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("charts")).with_context(|| format!("cannot create {}", dir.display()))?;
    let chart = &checker.repo.charts[plan.index];
    let (members, stubs): (Vec<usize>, bool) = if !part.members.is_empty() || plan.own_reads_no_subchart {
        (part.members.clone(), false)
    } else {
        ((0..plan.members.len()).collect(), true)
    };
    let keep: BTreeSet<&str> = members.iter().map(|&i| plan.members[i].name.as_str()).collect();
    let mut chart_yaml = plan.chart_yaml.clone();
    if let Some(deps) = chart_yaml.get_mut("dependencies").and_then(|d| d.as_sequence_mut()) {
        deps.retain(|d| d.get("name").and_then(|n| n.as_str()).is_some_and(|n| keep.contains(n)));
    }
    fs::write_atomic(&dir.join("Chart.yaml"), yaml_serde::to_string(&chart_yaml)?.as_bytes())?;
    for entry in std::fs::read_dir(&chart.dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if ["Chart.yaml", "Chart.lock", "charts", "tmpcharts", "templates"].iter().any(|n| name == *n) {
            continue;
        }
        fs::mirror(&entry.path(), &dir.join(&name))?;
    }
    // A folder of its own (not a link to the folder): the render adds its
    // sentinel here. Member shards keep only the umbrella's partials, the
    // named templates helm would load, none of its own manifests. Without
    // a templates/ of its own the shard has none either (lint warns about
    // that), until the sentinel is added after lint.
    let templates = chart.dir.join("templates");
    if templates.is_dir() {
        std::fs::create_dir_all(dir.join("templates"))?;
        for entry in std::fs::read_dir(&templates)? {
            let entry = entry?;
            if part.own || entry.file_name().to_string_lossy().starts_with('_') {
                fs::mirror(&entry.path(), &dir.join("templates").join(entry.file_name()))?;
            }
        }
    }
    for &i in &members {
        let member = &plan.members[i];
        let link = dir.join("charts").join(member.entry.file_name().unwrap_or_default());
        if stubs {
            stub(&member.entry, &link)?;
        } else {
            fs::symlink_force(&member.entry, &link)?;
        }
    }
    Ok(())
}

/// A chart that renders nothing but carries what the parent's values and
/// named templates see: Chart.yaml, values.yaml, partial templates, and its
/// own subcharts as stubs.
fn stub(chart: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to.join("templates"))?;
    for file in ["Chart.yaml", "values.yaml"] {
        if chart.join(file).is_file() {
            fs::mirror(&chart.join(file), &to.join(file))?;
        }
    }
    if let Ok(entries) = std::fs::read_dir(chart.join("templates")) {
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_name().to_string_lossy().starts_with('_') {
                fs::mirror(&entry.path(), &to.join("templates").join(entry.file_name()))?;
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(chart.join("charts")) {
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.path().is_dir() {
                stub(&entry.path(), &to.join("charts").join(entry.file_name()))?;
            }
        }
    }
    Ok(())
}

/// Whether a staged chart folder holds an archive anywhere in its tree.
fn has_archive(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("charts")).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let path = e.path();
            if path.is_dir() {
                has_archive(&path)
            } else {
                path.extension().is_some_and(|x| x == "tgz")
            }
        })
    })
}

/// Every file under the umbrella's own `templates/`, concatenated.
fn own_templates_text(dir: &Path) -> Result<String> {
    let mut text = String::new();
    if !dir.is_dir() {
        return Ok(text);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            text.push_str(&own_templates_text(&path)?);
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path)?));
            text.push('\n');
        }
    }
    Ok(text)
}

/// True when template text cannot read anything of a subchart: no
/// `.Values` (the parent's values hold every subchart's defaults), no call
/// of another template or `tpl` (which could), and the root context never
/// handed over whole (`toYaml .` would print `.Values` too).
fn reads_no_subchart(text: &str) -> bool {
    let forbidden = ["Values", "include", "template", "tpl", "Subcharts", "Dependencies", "lookup"];
    if forbidden.iter().any(|word| text.contains(word)) {
        return false;
    }
    // A bare `.` or `$` as an operand: `{{ . }}`, `(toYaml .)`, `| toJson $`.
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'.' && b != b'$' {
            continue;
        }
        let before = if i == 0 { b' ' } else { bytes[i - 1] };
        let after = bytes.get(i + 1).copied().unwrap_or(b' ');
        let operand_start = matches!(before, b' ' | b'(' | b'{' | b'\t' | b'\n' | b'|');
        let operand_end = matches!(after, b' ' | b')' | b'}' | b'\t' | b'\n' | b'|');
        if operand_start && operand_end {
            return false;
        }
    }
    true
}

/// The records of a shard's render, with their kinds, the sentinel last
/// and removed. Hooks are refused: helm prints them after the other
/// manifests, in an order this module does not rebuild.
fn shard_docs(output: &str) -> Result<Vec<Doc>, String> {
    let mut records = crate::exec::helm::records(output)?;
    // Helm trims the end of its whole output: only the sentinel, sorted
    // last, loses its trailing blank lines, never a real manifest.
    match records.pop() {
        Some(last) if last.source.ends_with(SENTINEL_FILE) => {}
        _ => return Err("the shard's render does not end with its sentinel".to_string()),
    }
    let mut docs = Vec::new();
    for record in records {
        let body = record.text.split_once('\n').map(|(_, b)| b).unwrap_or_default();
        #[derive(Deserialize)]
        struct Head {
            #[serde(default)]
            kind: Option<String>,
            #[serde(default)]
            metadata: Option<Meta>,
        }
        #[derive(Deserialize)]
        struct Meta {
            #[serde(default)]
            annotations: Option<BTreeMap<String, yaml_serde::Value>>,
        }
        let head: Head = crate::util::yaml::parse(body, &record.source)
            .map_err(|e| format!("{}: cannot read the manifest head: {}", record.source, e.reason()))?;
        if head.metadata.and_then(|m| m.annotations).is_some_and(|a| a.contains_key("helm.sh/hook")) {
            return Err(format!("{} is a hook", record.source));
        }
        docs.push(Doc { source: record.source, kind: head.kind.unwrap_or_default(), text: record.text });
    }
    Ok(docs)
}

/// Helm's install order (`pkg/release/v1/util/kind_sorter.go`, v4.3.1).
const INSTALL_ORDER: [&str; 38] = [
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Orders documents as `helm template` does: files by path (each file's
/// documents in their order), then a stable sort by kind: known kinds in
/// install order, unknown kinds after them alphabetically.
fn sort_like_helm(docs: &mut [&Doc]) {
    // Documents of one file come from one piece, already in helm's order.
    docs.sort_by(|a, b| a.source.cmp(&b.source));
    let rank = |kind: &str| match INSTALL_ORDER.iter().position(|k| *k == kind) {
        Some(i) => (0, i, String::new()),
        None => (1, 0, kind.to_string()),
    };
    docs.sort_by_cached_key(|d| rank(&d.kind));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_output_loses_only_its_sentinel_and_sorts_like_helm() {
        let out = format!(
            "---\n# Source: u/charts/b/templates/svc.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n\n---\n# Source: u/charts/a/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n\n---\n# Source: u/templates/{SENTINEL_FILE}\n{}",
            SENTINEL.trim_end()
        );
        let docs = shard_docs(&format!("{out}\n")).unwrap();
        assert_eq!(docs.len(), 2);
        assert!(docs[1].text.ends_with("name: a\n\n"), "a real manifest keeps its blank line");
        let mut refs: Vec<&Doc> = docs.iter().collect();
        sort_like_helm(&mut refs);
        assert_eq!(refs[0].kind, "ConfigMap");
        assert_eq!(refs[1].kind, "Service");
        let hook = format!("---\n# Source: u/templates/j.yaml\nkind: Job\nmetadata:\n  annotations:\n    helm.sh/hook: pre-install\n---\n# Source: u/templates/{SENTINEL_FILE}\nkind: x\n");
        assert!(shard_docs(&hook).is_err());
    }

    #[test]
    fn own_templates_that_read_values_need_the_subcharts() {
        assert!(reads_no_subchart("Installed as {{ .Release.Name }} ({{ .Chart.AppVersion }}).\n"));
        assert!(!reads_no_subchart("{{ .Values.web.host }}"));
        assert!(!reads_no_subchart("{{ toYaml . }}"));
        assert!(!reads_no_subchart("{{ include \"x\" $ }}"));
    }
}
