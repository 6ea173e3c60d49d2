//! yamale (Chart.yaml schema) and yamllint (Chart.yaml, values.yaml, ci
//! values) for many charts in one Python process, through `check.py`.
//!
//! ct starts both command lines once per file: with 200 charts that is about
//! 800 Python interpreters. The helper makes the same library calls for all
//! files in one interpreter and answers per file, which this module turns
//! back into a `chart-schema` and a `yamllint` verdict per chart. Paths are
//! given relative to the repository root, as ct gives them, so yamllint's
//! `ignore` patterns match the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::core::context::Context;
use crate::core::model::Repo;
use crate::core::outcome::Step;
use crate::exec::tools::chart_testing::PythonTools;

/// The helper, passed to `python -c`.
const HELPER: &str = include_str!("check.py");

/// One yamllint problem.
#[derive(Debug, Clone, Deserialize)]
struct Problem {
    line: u64,
    column: u64,
    level: String,
    message: String,
    rule: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Answer {
    #[serde(default)]
    schema: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    yamllint: BTreeMap<String, Vec<Problem>>,
}

/// What the helper found, or why it could not run.
pub struct Found {
    answer: Result<Answer, String>,
    schema: bool,
    yamllint: bool,
}

/// Files ct lints for a chart: Chart.yaml, values.yaml, the ci values files.
fn yamllint_files(repo: &Repo, index: usize) -> Vec<String> {
    let chart = &repo.charts[index];
    let mut files = vec![format!("{}/Chart.yaml", chart.rel), format!("{}/values.yaml", chart.rel)];
    for env in crate::core::model::ci_environments(&chart.dir, &chart.rel) {
        files.extend(env.values_files);
    }
    files
}

/// Runs the helper once for `charts`: the schema check when `schema` is
/// given, yamllint when `lint_conf` is.
pub fn run(
    ctx: &Context,
    python: &PythonTools,
    schema: Option<&Path>,
    lint_conf: Option<&Path>,
    repo: &Repo,
    charts: &BTreeSet<usize>,
) -> Found {
    let schema_files: Vec<String> = if schema.is_some() {
        charts.iter().map(|&i| format!("{}/Chart.yaml", repo.charts[i].rel)).collect()
    } else {
        Vec::new()
    };
    let lint_files: Vec<String> =
        if lint_conf.is_some() { charts.iter().flat_map(|&i| yamllint_files(repo, i)).collect() } else { Vec::new() };
    let request = serde_json::json!({
        "schema": schema,
        "schema_files": schema_files,
        "lintconf": lint_conf,
        "yamllint_files": lint_files,
    });
    let answer = (|| -> anyhow::Result<Answer> {
        let sh = xshell::Shell::new()?;
        sh.change_dir(&ctx.root);
        let interpreter = &python.python;
        let cmd = xshell::cmd!(sh, "{interpreter} -c {HELPER}").env("PYTHONPATH", &python.lib);
        let finished = crate::exec::process::run(cmd, Some(request.to_string().as_bytes()))?;
        if !finished.success {
            anyhow::bail!("the yamale/yamllint helper failed (exit {:?}):\n{}", finished.code, finished.combined());
        }
        Ok(serde_json::from_str(&finished.stdout)?)
    })()
    .map_err(|e| format!("cannot run yamale and yamllint: {e:#}"));
    Found { answer, schema: schema.is_some(), yamllint: lint_conf.is_some() }
}

impl Found {
    /// The `chart-schema` and `yamllint` steps of one chart, as
    /// `(step, Ok(notes) | Err(problems))`.
    pub fn for_chart(&self, repo: &Repo, index: usize) -> Vec<(Step, Result<String, String>)> {
        let mut out = Vec::new();
        let answer = match &self.answer {
            Ok(answer) => answer,
            Err(message) => {
                if self.schema {
                    out.push((Step::ChartSchema, Err(message.clone())));
                }
                if self.yamllint {
                    out.push((Step::Yamllint, Err(message.clone())));
                }
                return out;
            }
        };
        let chart = &repo.charts[index];
        if self.schema {
            let file = format!("{}/Chart.yaml", chart.rel);
            let verdict = match answer.schema.get(&file) {
                Some(errors) if errors.is_empty() => Ok(String::new()),
                Some(errors) => {
                    Err(format!("{file}: does not match ct's Chart.yaml schema (yamale):\n{}", errors.join("\n")))
                }
                None => Err(format!("{file}: the schema check said nothing about it")),
            };
            out.push((Step::ChartSchema, verdict));
        }
        if self.yamllint {
            let mut errors = Vec::new();
            let mut warnings = Vec::new();
            for file in yamllint_files(repo, index) {
                let Some(problems) = answer.yamllint.get(&file) else {
                    errors.push(format!("{file}: yamllint said nothing about it"));
                    continue;
                };
                for p in problems {
                    let rule = p.rule.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                    let line = format!("{file}:{}:{}: [{}] {}{rule}", p.line, p.column, p.level, p.message);
                    if p.level == "error" {
                        errors.push(line);
                    } else {
                        warnings.push(line);
                    }
                }
            }
            let verdict = if errors.is_empty() {
                Ok(warnings.join("\n"))
            } else {
                errors.extend(warnings);
                Err(errors.join("\n"))
            };
            out.push((Step::Yamllint, verdict));
        }
        out
    }
}
