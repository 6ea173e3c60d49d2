//! The three ways a diff is printed: for people (stderr), as JSON (stdout)
//! and as Markdown for a pull request comment (stdout).
//!
//! No format ever prints a Secret's data or a checksum: the comparison
//! ([`super::semantic`]) never hands those values over.

use serde::Serialize;
use serde_json::Value as Plain;

use super::semantic::{Field, FieldChange, ObjectChange, ObjectDiff};

/// The whole diff: the `--format json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub base: BaseInfo,
    pub helm: String,
    pub kube_version: String,
    pub charts: Vec<ChartReport>,
    /// False when a chart or environment failed to render on either side.
    pub ok: bool,
}

#[derive(Debug, Serialize)]
pub struct BaseInfo {
    /// The ref as given or chosen (`origin/main`, `main`, a commit).
    pub name: String,
    /// The commit rendered as the base: the merge base of that ref and HEAD.
    pub merge_base: String,
}

#[derive(Debug, Serialize)]
pub struct ChartReport {
    pub chart: String,
    pub environments: Vec<EnvReport>,
}

/// What happened to one chart in one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Unchanged,
    Changed,
    /// The chart or environment is new in the working tree.
    Added,
    /// The chart or environment is gone from the working tree.
    Removed,
    /// A side failed to render; see `error`.
    Failed,
}

#[derive(Debug, Serialize)]
pub struct EnvReport {
    pub environment: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub objects: Vec<ObjectDiff>,
    /// Objects whose only difference is the `helm.sh/chart` label (not listed).
    pub chart_label_only: usize,
}

impl EnvReport {
    fn counts(&self) -> (usize, usize, usize) {
        let count = |c| self.objects.iter().filter(|o| o.change == c).count();
        (count(ObjectChange::Added), count(ObjectChange::Removed), count(ObjectChange::Changed))
    }

    fn summary(&self) -> String {
        match self.status {
            Status::Failed => "failed to render".to_string(),
            Status::Unchanged => "no changes".to_string(),
            _ => {
                let (added, removed, changed) = self.counts();
                let parts: Vec<String> = [(changed, "changed"), (added, "added"), (removed, "removed")]
                    .into_iter()
                    .filter(|(n, _)| *n > 0)
                    .enumerate()
                    .map(|(i, (n, word))| match i {
                        // "2 objects changed, 1 added"
                        0 => format!("{n} object{} {word}", if n == 1 { "" } else { "s" }),
                        _ => format!("{n} {word}"),
                    })
                    .collect();
                let what = match self.status {
                    Status::Added => "new in the working tree: ",
                    Status::Removed => "gone from the working tree: ",
                    _ => "",
                };
                format!("{what}{}", parts.join(", "))
            }
        }
    }

    fn ignored_note(&self) -> Option<String> {
        (self.chart_label_only > 0)
            .then(|| format!("{} object(s) differ only in the helm.sh/chart label (not shown)", self.chart_label_only))
    }
}

fn object_title(o: &ObjectDiff) -> String {
    let place = if o.namespace.is_empty() { o.name.clone() } else { format!("{}/{}", o.namespace, o.name) };
    format!("{} {place}", o.kind)
}

fn sign(change: ObjectChange) -> char {
    match change {
        ObjectChange::Added => '+',
        ObjectChange::Removed => '-',
        ObjectChange::Changed => '~',
    }
}

fn one_line(value: &Option<Plain>) -> String {
    match value {
        None => String::new(),
        Some(Plain::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn is_multiline(field: &Field) -> bool {
    let multi = |v: &Option<Plain>| matches!(v, Some(Plain::String(s)) if s.contains('\n'));
    multi(&field.old) || multi(&field.new)
}

/// The field as one line for people, or a header plus a line diff for text.
fn field_lines(field: &Field) -> Vec<String> {
    let path = &field.path;
    if field.hidden {
        let what = if path.contains("checksum/") { "the pods restart" } else { "value hidden" };
        return vec![format!("{path}: {} ({what})", change_word(field.change))];
    }
    if is_multiline(field) {
        let mut lines = vec![format!("{path}: {} text:", change_word(field.change))];
        lines.extend(text_diff(&text_of(&field.old), &text_of(&field.new)).into_iter().map(|l| format!("  {l}")));
        return lines;
    }
    vec![match field.change {
        FieldChange::Added => format!("{path}: added {}", one_line(&field.new)),
        FieldChange::Removed => format!("{path}: removed (was {})", one_line(&field.old)),
        FieldChange::Changed => format!("{path}: {} -> {}", one_line(&field.old), one_line(&field.new)),
        FieldChange::Reordered => format!("{path}: order {} -> {}", one_line(&field.old), one_line(&field.new)),
    }]
}

fn change_word(change: FieldChange) -> &'static str {
    match change {
        FieldChange::Added => "added",
        FieldChange::Removed => "removed",
        FieldChange::Changed => "changed",
        FieldChange::Reordered => "reordered",
    }
}

fn text_of(value: &Option<Plain>) -> String {
    match value {
        Some(Plain::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// A line diff of two texts (longest common subsequence; values are small),
/// as `-`/`+`/` ` lines with unchanged runs longer than six lines shortened.
pub fn text_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Texts in manifests are scripts and config files; past a few thousand
    // lines the quadratic table is not worth it: show both whole.
    if a.len() * b.len() > 4_000_000 {
        return a.iter().map(|l| format!("-{l}")).chain(b.iter().map(|l| format!("+{l}"))).collect();
    }
    let mut table = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            table[i][j] = if a[i] == b[j] { table[i + 1][j + 1] + 1 } else { table[i + 1][j].max(table[i][j + 1]) };
        }
    }
    let mut lines = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push(format!(" {}", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || table[i + 1][j] >= table[i][j + 1]) {
            lines.push(format!("-{}", a[i]));
            i += 1;
        } else {
            lines.push(format!("+{}", b[j]));
            j += 1;
        }
    }
    shorten_context(lines)
}

fn shorten_context(lines: Vec<String>) -> Vec<String> {
    const KEEP: usize = 3;
    let changed: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| !l.starts_with(' ')).map(|(i, _)| i).collect();
    let near = |i: usize| changed.iter().any(|&c| c.abs_diff(i) <= KEEP);
    let mut out = Vec::new();
    let mut skipped = 0;
    for (i, line) in lines.into_iter().enumerate() {
        if near(i) {
            if skipped > 0 {
                out.push(format!(" ... ({skipped} unchanged lines)"));
                skipped = 0;
            }
            out.push(line);
        } else {
            skipped += 1;
        }
    }
    if skipped > 0 {
        out.push(format!(" ... ({skipped} unchanged lines)"));
    }
    out
}

/// The people's format.
pub fn human(report: &Report) -> String {
    let mut out = format!(
        "diff of the working tree against {} (merge base {}), helm {}, Kubernetes {}\n",
        report.base.name,
        short(&report.base.merge_base),
        report.helm,
        report.kube_version
    );
    if report.charts.is_empty() {
        out.push_str("no chart changed\n");
    }
    for chart in &report.charts {
        for env in &chart.environments {
            out.push_str(&format!("{} {}: {}\n", chart.chart, env.environment, env.summary()));
            if let Some(error) = &env.error {
                for line in error.lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
            for object in &env.objects {
                let source =
                    if object.source == chart.chart { String::new() } else { format!("  ({})", object.source) };
                out.push_str(&format!("  {} {}{source}\n", sign(object.change), object_title(object)));
                for field in &object.fields {
                    for line in field_lines(field) {
                        out.push_str(&format!("      {line}\n"));
                    }
                }
            }
            if let Some(note) = env.ignored_note() {
                out.push_str(&format!("  ({note})\n"));
            }
        }
    }
    out
}

/// A one-line-per-environment summary, for stderr when the data goes to stdout.
pub fn summary(report: &Report) -> String {
    let mut out = String::new();
    for chart in &report.charts {
        for env in &chart.environments {
            out.push_str(&format!("diff: {} {}: {}\n", chart.chart, env.environment, env.summary()));
        }
    }
    if report.charts.is_empty() {
        out.push_str("diff: no chart changed\n");
    }
    out
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// GitHub refuses comments over 65536 characters; stay well below.
const MARKDOWN_LIMIT: usize = 60_000;

/// The pull request comment.
pub fn markdown(report: &Report) -> String {
    let mut out = String::from("### Rendered changes\n\n");
    out.push_str(&format!(
        "`cargo xtask diff` against `{}` (merge base `{}`), helm {}, Kubernetes {}. Secret values and checksums are never shown.\n\n",
        report.base.name,
        short(&report.base.merge_base),
        report.helm,
        report.kube_version
    ));
    if report.charts.is_empty() {
        out.push_str("No chart changed.\n");
        return out;
    }
    out.push_str("| chart | environment | result |\n|---|---|---|\n");
    for chart in &report.charts {
        for env in &chart.environments {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                cell(&chart.chart),
                cell(&env.environment),
                cell(&env.summary())
            ));
        }
    }
    let mut details = String::new();
    for chart in &report.charts {
        for env in &chart.environments {
            if env.objects.is_empty() && env.error.is_none() {
                continue;
            }
            details.push_str(&format!(
                "\n<details open><summary><b>{} · {}</b>: {}</summary>\n\n",
                html(&chart.chart),
                html(&env.environment),
                html(&env.summary())
            ));
            if let Some(error) = &env.error {
                details.push_str(&fenced("text", error));
            }
            for object in &env.objects {
                let source = if object.source == chart.chart {
                    String::new()
                } else {
                    format!(" (from {})", html(&object.source))
                };
                details.push_str(&format!("**{} {}**{source}\n\n", sign(object.change), html(&object_title(object))));
                if object.change == ObjectChange::Added {
                    if let Some(body) = &object.object {
                        let yaml = yaml_serde::to_string(body).unwrap_or_default();
                        details.push_str("<details><summary>manifest</summary>\n\n");
                        details.push_str(&fenced("yaml", &yaml));
                        details.push_str("</details>\n\n");
                    }
                }
                if object.fields.is_empty() {
                    continue;
                }
                details.push_str("| field | before | after |\n|---|---|---|\n");
                let mut texts = Vec::new();
                for field in &object.fields {
                    let (before, after) = if field.hidden {
                        hidden_cells(field)
                    } else if is_multiline(field) {
                        texts.push(field);
                        ("<i>text</i>".to_string(), "<i>see below</i>".to_string())
                    } else {
                        (code(&field.old), code(&field.new))
                    };
                    details.push_str(&format!(
                        "| {} | {before} | {after} |\n",
                        code(&Some(Plain::String(field.path.clone())))
                    ));
                }
                details.push('\n');
                for field in texts {
                    details.push_str(&format!("`{}`:\n\n", field.path.replace('`', "'")));
                    details
                        .push_str(&fenced("diff", &text_diff(&text_of(&field.old), &text_of(&field.new)).join("\n")));
                }
            }
            if let Some(note) = env.ignored_note() {
                details.push_str(&format!("<sub>{}</sub>\n", html(&note)));
            }
            // One blank line before the closing tag, whatever came last.
            details.truncate(details.trim_end_matches('\n').len());
            details.push_str("\n\n</details>\n");
        }
    }
    if out.len() + details.len() > MARKDOWN_LIMIT {
        out.push_str(
            "\nThe details do not fit in a comment; run `cargo xtask diff` locally (or read the job's JSON output).\n",
        );
    } else {
        out.push_str(&details);
    }
    out
}

/// Table cells for a value that is never shown: say only whether it exists.
fn hidden_cells(field: &Field) -> (String, String) {
    let (thing, new_thing) = if field.path.contains("checksum/") {
        ("hash", "new hash: the pods restart")
    } else {
        ("hidden", "hidden, changed")
    };
    let none = "<i>none</i>".to_string();
    match field.change {
        FieldChange::Added => (none, format!("<i>{thing}</i>")),
        FieldChange::Removed => (format!("<i>{thing}</i>"), none),
        _ => (format!("<i>{thing}</i>"), format!("<i>{new_thing}</i>")),
    }
}

fn html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('|', "&#124;")
}

fn cell(text: &str) -> String {
    html(text).replace('\n', " ")
}

/// A value in a table cell: `<code>` with everything escaped, since a
/// backtick code span cannot hold a `|` inside a GitHub table.
fn code(value: &Option<Plain>) -> String {
    match value {
        None => "<i>none</i>".to_string(),
        Some(_) => format!("<code>{}</code>", cell(&one_line(value))),
    }
}

/// A fenced block whose fence is longer than any backtick run inside.
fn fenced(lang: &str, text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{lang}\n{}\n{fence}\n\n", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_diff_marks_changed_lines() {
        let d = text_diff("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(d, vec![" a", "-b", "+B", " c"]);
    }

    #[test]
    fn markdown_cells_escape_pipes() {
        assert_eq!(code(&Some(Plain::String("a|b<c>".into()))), "<code>a&#124;b&lt;c&gt;</code>");
        assert!(fenced("text", "has ``` inside").starts_with("````text"));
    }
}
