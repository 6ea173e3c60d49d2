//! ct's `additional-commands`: Go-template command lines such as
//! `helm unittest {{ .Path }}`, run once per chart; a non-zero exit fails
//! the chart (as in ct).
//!
//! The templates see what ct's see: `.Path` (the chart folder) and
//! `.Yaml.Name`, `.Yaml.Version`, `.Yaml.AppVersion`. `.Path` is the chart's
//! staged folder under the work folder, the chart as `helm dependency build`
//! would have left it (dependencies in `charts/`), because that is the state
//! ct runs the commands in; the staged folder links every file of the real
//! one, so a command that writes (a snapshot update) writes into the
//! repository as it would under ct. A template using anything else is an
//! error that names the command, never a silent empty string.
//!
//! `helm` as the program is the pinned helm, with the helm-unittest plugin
//! on `HELM_PLUGINS` when a command uses it. `helm unittest` takes many
//! charts at once, so a command whose only template is a trailing
//! `{{ .Path }}` runs once over every chart; when that run fails, each chart
//! runs alone so the failure lands on the charts that caused it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::core::outcome::{Status, Step, StepResult};
use crate::exec::tools::Tool;

/// The step name of an additional command in the lint report.
pub const STEP: Step = Step::Command;

/// What a template may refer to for one chart.
#[derive(Debug, Clone)]
pub struct ChartFacts {
    pub index: usize,
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub app_version: String,
}

/// Runs the configured commands for charts.
pub struct Runner<'a> {
    pub helm: &'a Tool,
    /// `HELM_PLUGINS` for the commands, when one uses a plugin we provide.
    pub plugins: Option<&'a Path>,
    /// Working folder of the commands (the repository root, where ct runs).
    pub cwd: &'a Path,
    /// Added in front of PATH (the pinned helm's folder, the Python linters).
    pub path_prefix: Vec<PathBuf>,
    pub jobs: usize,
}

/// Renders one command template for one chart.
pub fn render(template: &str, chart: &ChartFacts) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("{template:?}: `{{{{` without `}}}}`"))?;
        let inner = after[..end].trim().trim_start_matches('-').trim_end_matches('-').trim();
        let value = match inner {
            ".Path" => chart.path.display().to_string(),
            ".Yaml.Name" => chart.name.clone(),
            ".Yaml.Version" => chart.version.clone(),
            ".Yaml.AppVersion" => chart.app_version.clone(),
            other => {
                return Err(format!(
                    "{template:?}: the template `{{{{ {other} }}}}` is not supported (use .Path, .Yaml.Name, .Yaml.Version or .Yaml.AppVersion)"
                ))
            }
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits a command line into words as ct's shellwords does: white space
/// separates, single and double quotes group, a backslash escapes.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => match chars.next() {
                Some(next) => {
                    word.push(next);
                    in_word = true;
                }
                None => return Err(format!("{line:?}: ends with a backslash")),
            },
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("{line:?}: a quote is not closed"));
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(format!("{line:?}: empty command"));
    }
    Ok(words)
}

/// The words before a trailing `{{ .Path }}` of a `helm unittest` command
/// with no other template: such a command can take many charts at once.
fn batchable_prefix(template: &str) -> Option<Vec<String>> {
    let body = template.trim_end().strip_suffix("}}")?;
    let open = body.rfind("{{")?;
    let inner = body[open + 2..].trim().trim_start_matches('-').trim_end_matches('-').trim();
    let head = &body[..open];
    // The path must be a word of its own, and the only template.
    if inner != ".Path" || head.contains("{{") || !head.ends_with(char::is_whitespace) {
        return None;
    }
    let words = split_words(head).ok()?;
    (words.len() >= 2 && words[0] == "helm" && words[1] == "unittest").then_some(words)
}

/// Whether any command runs the helm-unittest plugin.
pub fn uses_unittest(commands: &[String]) -> bool {
    commands.iter().any(|c| split_words(c).is_ok_and(|w| w.len() >= 2 && w[0] == "helm" && w[1] == "unittest"))
}

impl Runner<'_> {
    /// Runs every command for every chart; returns each chart's steps, one
    /// per command, in the configured order.
    pub fn run(&self, commands: &[String], charts: &[ChartFacts]) -> BTreeMap<usize, Vec<StepResult>> {
        let mut steps: BTreeMap<usize, Vec<StepResult>> = charts.iter().map(|c| (c.index, Vec::new())).collect();
        for template in commands {
            let results = match batchable_prefix(template) {
                Some(prefix) if charts.len() > 1 => self.run_batched(template, &prefix, charts),
                _ => self.run_each(template, charts),
            };
            for (index, step) in results {
                steps.entry(index).or_default().push(step);
            }
        }
        steps
    }

    fn run_batched(&self, template: &str, prefix: &[String], charts: &[ChartFacts]) -> Vec<(usize, StepResult)> {
        let mut words = prefix.to_vec();
        words.extend(charts.iter().map(|c| c.path.display().to_string()));
        let started = Instant::now();
        match self.exec(&words) {
            Ok((true, _)) => {
                let duration = started.elapsed();
                charts.iter().map(|c| (c.index, step(template, Status::Ok, duration, String::new()))).collect()
            }
            // A failure (or a start failure) is found out chart by chart.
            _ => self.run_each(template, charts),
        }
    }

    fn run_each(&self, template: &str, charts: &[ChartFacts]) -> Vec<(usize, StepResult)> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(self.jobs.max(1)).build();
        let one = |chart: &ChartFacts| {
            let started = Instant::now();
            let outcome = render(template, chart)
                .and_then(|line| split_words(&line))
                .and_then(|words| self.exec(&words).map_err(|e| format!("{e:#}")));
            let duration = started.elapsed();
            let step = match outcome {
                Ok((true, _)) => step(template, Status::Ok, duration, String::new()),
                Ok((false, output)) => step(template, Status::Failed, duration, output),
                Err(message) => step(template, Status::Failed, duration, message),
            };
            (chart.index, step)
        };
        match pool {
            Ok(pool) => pool.install(|| {
                use rayon::prelude::*;
                charts.par_iter().map(one).collect()
            }),
            Err(_) => charts.iter().map(one).collect(),
        }
    }

    /// Runs one command line; `(success, output)`.
    fn exec(&self, words: &[String]) -> Result<(bool, String)> {
        let program = if words[0] == "helm" { self.helm.path.display().to_string() } else { words[0].clone() };
        let args = &words[1..];
        let sh = xshell::Shell::new()?;
        sh.change_dir(self.cwd);
        let mut path: Vec<PathBuf> = self.path_prefix.clone();
        if let Some(existing) = std::env::var_os("PATH") {
            path.extend(std::env::split_paths(&existing));
        }
        let mut cmd = xshell::cmd!(sh, "{program} {args...}").env("PATH", std::env::join_paths(path)?);
        if let Some(plugins) = self.plugins {
            cmd = cmd.env("HELM_PLUGINS", plugins);
        }
        let finished = crate::exec::process::run(cmd, None)?;
        Ok((finished.success, crate::exec::process::tail(&crate::exec::helm::clean(&finished.combined()), 60)))
    }
}

fn step(template: &str, status: Status, duration: Duration, output: String) -> StepResult {
    let message = if output.is_empty() { format!("`{template}`") } else { format!("`{template}`:\n{output}") };
    StepResult::new(STEP, None, None, status, duration, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> ChartFacts {
        ChartFacts {
            index: 0,
            path: PathBuf::from("/w/stage/cart"),
            name: "cart".into(),
            version: "1.2.0".into(),
            app_version: "2.1.0".into(),
        }
    }

    #[test]
    fn templates_render_like_cts() {
        assert_eq!(render("helm unittest {{ .Path }}", &facts()).unwrap(), "helm unittest /w/stage/cart");
        assert_eq!(render("echo {{.Yaml.Name}}@{{- .Yaml.Version -}}", &facts()).unwrap(), "echo cart@1.2.0");
        let err = render("echo {{ .Chart.Name }}", &facts()).unwrap_err();
        assert!(err.contains(".Chart.Name") && err.contains("echo"), "{err}");
    }

    #[test]
    fn words_split_like_shellwords() {
        assert_eq!(
            split_words(r#"helm unittest -f 'tests/*_test.yaml' "a b" c\ d"#).unwrap(),
            vec!["helm", "unittest", "-f", "tests/*_test.yaml", "a b", "c d"]
        );
        assert!(split_words("echo 'open").is_err());
    }

    #[test]
    fn only_plain_unittest_commands_are_batched() {
        assert_eq!(
            batchable_prefix("helm unittest --strict {{ .Path }}"),
            Some(vec!["helm".into(), "unittest".into(), "--strict".into()])
        );
        assert_eq!(batchable_prefix("helm unittest -f {{ .Path }}/x {{ .Path }}"), None);
        assert_eq!(batchable_prefix("./check.sh {{ .Path }}"), None);
        assert!(uses_unittest(&["helm unittest {{ .Path }}".to_string()]));
    }
}
