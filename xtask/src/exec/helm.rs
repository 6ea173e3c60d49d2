//! Running helm and reading what it prints.
//!
//! Helm is called with many charts at once wherever its command line allows
//! (one `helm lint` over many paths, one `helm template` of a generated parent
//! chart whose `charts/` links many charts), because on a small machine the
//! ~90 ms each helm process costs to start dominates the run. This module
//! turns the combined output back into one verdict per chart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::exec::process::{self, Finished};
use crate::exec::tools::Tool;

/// Helm's own informational logging that is not about the chart.
fn is_noise(line: &str) -> bool {
    let line = line.trim();
    line.is_empty()
        || line.contains("found symbolic link in path")
        || line.starts_with("Use --debug flag")
        || line.starts_with("Pulled:")
        || line.starts_with("Digest:")
}

/// Removes helm's noise lines from a message.
pub fn clean(text: &str) -> String {
    text.lines().filter(|l| !is_noise(l)).collect::<Vec<_>>().join("\n").trim().to_string()
}

/// The verdict of `helm lint` for one chart path.
#[derive(Debug, Clone)]
pub struct LintVerdict {
    pub ok: bool,
    /// `[WARNING]` and `[ERROR]` lines (with `--strict` both fail).
    pub message: String,
}

/// The Go garbage collector's target for helm and kubeconform: `$GOGC` if
/// set, else 400. These processes live a few seconds at most and peak at a
/// few hundred MB, so a heap allowed to grow to five times the live data
/// (instead of twice) costs tens of MB and saves 15-25 % of their CPU
/// (measured: `helm lint` of 100 service charts, 6.3 s -> 4.5 s CPU, peak
/// 64 -> 80 MB). `cargo xtask bench` runs its baseline with the same setting.
pub fn go_gc() -> String {
    std::env::var("GOGC").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "400".to_string())
}

/// `helm lint` over many chart folders in one process, `--strict` when
/// `strict` (the default; chart-testing lints without it unless its
/// `helm-lint-extra-args` say so, and a repository set up for ct is linted
/// as ct would: the caller's lint profile decides). Returns one verdict per
/// path; a path helm said nothing about is missing from the map (the
/// caller then retries it alone).
pub fn lint(
    helm: &Tool,
    paths: &[PathBuf],
    values_files: &[PathBuf],
    kube_version: &str,
    strict: bool,
) -> Result<(Finished, BTreeMap<PathBuf, LintVerdict>)> {
    lint_with(helm, paths, values_files, kube_version, strict, &[])
}

/// [`lint`] with more flags for helm (e.g. `--skip-schema-validation`).
pub fn lint_with(
    helm: &Tool,
    paths: &[PathBuf],
    values_files: &[PathBuf],
    kube_version: &str,
    strict: bool,
    flags: &[&str],
) -> Result<(Finished, BTreeMap<PathBuf, LintVerdict>)> {
    let sh = xshell::Shell::new()?;
    let helm_path = &helm.path;
    let values = values_args(values_files);
    let strict_flag = strict.then_some("--strict");
    let finished = process::run(
        xshell::cmd!(
            sh,
            "{helm_path} lint {strict_flag...} {flags...} --kube-version {kube_version} {values...} {paths...}"
        )
        .env("GOGC", go_gc()),
        None,
    )?;
    Ok((finished.clone(), parse_lint(&finished.stdout, &finished.stderr, paths, strict)))
}

/// `--values <file>` for each file, in order (later files win in helm).
fn values_args(files: &[PathBuf]) -> Vec<String> {
    files.iter().flat_map(|file| ["--values".to_string(), file.display().to_string()]).collect()
}

/// Splits `helm lint` output at its `==> Linting <path>` headers.
pub fn parse_lint(stdout: &str, stderr: &str, paths: &[PathBuf], strict: bool) -> BTreeMap<PathBuf, LintVerdict> {
    let mut sections: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    let mut current: Option<PathBuf> = None;
    for line in stdout.lines() {
        if let Some(path) = line.strip_prefix("==> Linting ") {
            let path = PathBuf::from(path.trim());
            let matched = paths.iter().find(|p| **p == path).cloned();
            current = matched;
            if let Some(p) = &current {
                sections.entry(p.clone()).or_default();
            }
            continue;
        }
        if let Some(path) = &current {
            sections.entry(path.clone()).or_default().push(line.to_string());
        }
    }
    let mut verdicts = BTreeMap::new();
    for (path, lines) in sections {
        let problems: Vec<String> =
            lines.iter().filter(|l| l.starts_with("[ERROR]") || l.starts_with("[WARNING]")).cloned().collect();
        // Without --strict, warnings are reported but do not fail.
        let ok = !problems.iter().any(|l| l.starts_with("[ERROR]") || (strict && l.starts_with("[WARNING]")));
        verdicts.insert(path, LintVerdict { ok, message: problems.join("\n") });
    }
    // With a single path, an error helm printed only on stderr (for example a
    // Chart.yaml it could not load) still belongs to that chart.
    if paths.len() == 1 {
        let stderr = clean(stderr);
        let verdict = verdicts.entry(paths[0].clone()).or_insert(LintVerdict { ok: true, message: String::new() });
        if verdict.ok && !stderr.is_empty() && !stderr.contains("chart(s) linted, 0 chart(s) failed") {
            let summary_only = stderr.lines().all(|l| l.contains("chart(s) linted"));
            if !summary_only {
                verdict.ok = false;
                verdict.message = stderr;
            }
        }
    }
    verdicts
}

/// `helm template` of one chart folder with the given values files.
pub fn template(
    helm: &Tool,
    release: &str,
    chart_dir: &Path,
    values_files: &[PathBuf],
    set: &[String],
    kube_version: &str,
) -> Result<Finished> {
    template_with(helm, release, chart_dir, values_files, set, kube_version, &[])
}

/// [`template`] with more flags for helm (e.g. `--skip-schema-validation`).
pub fn template_with(
    helm: &Tool,
    release: &str,
    chart_dir: &Path,
    values_files: &[PathBuf],
    set: &[String],
    kube_version: &str,
    flags: &[&str],
) -> Result<Finished> {
    let sh = xshell::Shell::new()?;
    let helm_path = &helm.path;
    let mut extra = values_args(values_files);
    for s in set {
        extra.push("--set".to_string());
        extra.push(s.clone());
    }
    process::run(
        xshell::cmd!(
            sh,
            "{helm_path} template {release} {chart_dir} --kube-version {kube_version} {flags...} {extra...}"
        )
        .env("GOGC", go_gc()),
        None,
    )
}

/// Splits a multi-document render into documents keyed by the chart that
/// produced them, read from helm's `# Source: <parent>/charts/<chart>/...`
/// comments. `parent` is the rendered chart's name; documents of the parent's
/// own templates are keyed by `parent`.
pub fn split_by_chart(rendered: &str, parent: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for doc in split_documents(rendered) {
        let owner = doc
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .map(|source| owner_of(source, parent))
            .unwrap_or_else(|| parent.to_string());
        let entry = out.entry(owner).or_default();
        entry.push_str("---\n");
        entry.push_str(doc.trim_end());
        entry.push('\n');
    }
    out
}

/// `p/charts/a/templates/x.yaml` belongs to `a`; deeper subcharts
/// (`p/charts/a/charts/common/...`) still belong to `a`.
fn owner_of(source: &str, parent: &str) -> String {
    let rest = source.strip_prefix(&format!("{parent}/")).unwrap_or(source);
    match rest.strip_prefix("charts/") {
        Some(sub) => sub.split('/').next().unwrap_or(parent).to_string(),
        None => parent.to_string(),
    }
}

/// The YAML documents of a render, without empty ones.
pub fn split_documents(rendered: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in rendered.lines() {
        if line == "---" || line.starts_with("--- ") {
            if has_content(&current) {
                docs.push(std::mem::take(&mut current));
            }
            current.clear();
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    if has_content(&current) {
        docs.push(current);
    }
    docs
}

fn has_content(doc: &str) -> bool {
    doc.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
}

/// One manifest of `helm template` output, exactly as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The `# Source:` path, e.g. `parent/charts/a/templates/service.yaml`.
    pub source: String,
    /// From `# Source:` to the end of the manifest, blank lines included.
    pub text: String,
}

/// Splits `helm template` output into its records without changing a byte:
/// helm prints `---\n# Source: <path>\n<manifest>\n` per manifest (the
/// manifest keeps its own trailing blank lines) and then trims the whole
/// output and ends it with one newline. So `---\n` + every record, joined,
/// trimmed at the end, plus `\n`, is the output again ([`join_records`]).
pub fn records(output: &str) -> Result<Vec<Record>, String> {
    const MARK: &str = "---\n# Source: ";
    if output.trim().is_empty() {
        return Ok(Vec::new());
    }
    let Some(mut rest) = output.strip_prefix("---\n") else {
        return Err("the render does not start with a `# Source:` record".to_string());
    };
    if !rest.starts_with("# Source: ") {
        return Err("the render does not start with a `# Source:` record".to_string());
    }
    let mut records = Vec::new();
    loop {
        let end = rest.find(&format!("\n{MARK}")).map(|i| i + 1);
        let text = match end {
            Some(end) => &rest[..end],
            None => rest,
        };
        let source = text.strip_prefix("# Source: ").and_then(|r| r.lines().next()).unwrap_or_default().to_string();
        records.push(Record { source, text: text.to_string() });
        match end {
            Some(end) => rest = &rest[end + 4..],
            None => break,
        }
    }
    Ok(records)
}

/// What `helm template` prints for these records, in this order.
pub fn join_records<'r>(records: impl IntoIterator<Item = &'r Record>) -> String {
    let mut text = String::new();
    for record in records {
        text.push_str("---\n");
        text.push_str(&record.text);
    }
    let mut out = text.trim_end().to_string();
    out.push('\n');
    out
}

/// The output each subchart of a batched render would have had rendered on
/// its own: its records in the batch's order (helm orders by kind, then file
/// path, and every path of one subchart shares the prefix), with
/// `# Source: <parent>/charts/` cut to `# Source: `. A subchart with no
/// manifest gets what helm prints for none: a lone newline.
pub fn unbatch(records: &[Record], parent: &str) -> BTreeMap<String, String> {
    let prefix = format!("{parent}/charts/");
    let mut by_chart: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for record in records {
        let Some(rest) = record.source.strip_prefix(&prefix) else { continue };
        let owner = rest.split('/').next().unwrap_or_default().to_string();
        let text = record.text.replacen(&format!("# Source: {prefix}"), "# Source: ", 1);
        by_chart.entry(owner).or_default().push(Record { source: rest.to_string(), text });
    }
    by_chart.into_iter().map(|(owner, records)| (owner, join_records(&records))).collect()
}

/// Finds which subchart of a batched render a helm error is about, from the
/// template path in the message (`parent/charts/<chart>/templates/...`).
pub fn chart_in_error(message: &str, parent: &str) -> Option<String> {
    let marker = format!("{parent}/charts/");
    let start = message.find(&marker)? + marker.len();
    let name: String = message[start..].chars().take_while(|c| *c != '/' && *c != ':' && !c.is_whitespace()).collect();
    (!name.is_empty()).then_some(name)
}

/// `helm install|upgrade|rollback` against a cluster: `action` and its
/// arguments (release, chart, values, namespace, `--kubeconfig` ...) as the
/// caller builds them. Its own function so every cluster write of helm's is
/// one greppable place, and it goes through [`process::run`].
pub fn release_action(helm: &Tool, args: &[std::ffi::OsString]) -> Result<Finished> {
    let sh = xshell::Shell::new()?;
    let helm_path = &helm.path;
    process::run(xshell::cmd!(sh, "{helm_path} {args...}").env("GOGC", go_gc()), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint_output_is_split_per_chart() {
        let out = "==> Linting /s/a\n[INFO] Chart.yaml: icon is recommended\n\n==> Linting /s/b\n[ERROR] templates/: parse error\n";
        let paths = vec![PathBuf::from("/s/a"), PathBuf::from("/s/b")];
        let v = parse_lint(out, "Error: 2 chart(s) linted, 1 chart(s) failed", &paths, true);
        assert!(v[&paths[0]].ok);
        assert!(!v[&paths[1]].ok);
        assert!(v[&paths[1]].message.contains("parse error"));
    }

    #[test]
    fn render_is_split_by_subchart() {
        let out = "---\n# Source: p/charts/a/templates/s.yaml\nkind: Service\n---\n# Source: p/charts/b/charts/common/templates/x.yaml\nkind: ConfigMap\n---\n# Source: p/templates/n.yaml\nkind: Secret\n";
        let by = split_by_chart(out, "p");
        assert_eq!(by.keys().cloned().collect::<Vec<_>>(), vec!["a", "b", "p"]);
    }

    #[test]
    fn records_rejoin_to_the_exact_output() {
        let out = "---\n# Source: p/charts/a/templates/s.yaml\nkind: Service\n\n---\n# Source: p/charts/b/templates/c.yaml\nkind: ConfigMap\n---\n# Source: p/charts/a/templates/d.yaml\nkind: Deployment\n";
        let records = records(out).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(join_records(&records), out);
        let alone = unbatch(&records, "p");
        assert_eq!(
            alone["a"],
            "---\n# Source: a/templates/s.yaml\nkind: Service\n\n---\n# Source: a/templates/d.yaml\nkind: Deployment\n"
        );
        assert_eq!(alone["b"], "---\n# Source: b/templates/c.yaml\nkind: ConfigMap\n");
        assert_eq!(join_records(&[]), "\n");
    }

    #[test]
    fn error_is_attributed_to_its_subchart() {
        let msg = "Error: parse error at (p/charts/b/templates/bad.yaml:1): unexpected";
        assert_eq!(chart_in_error(msg, "p").as_deref(), Some("b"));
    }
}
