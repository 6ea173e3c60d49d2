//! The service value contract: one JSON schema, kept once in the library
//! chart (`<library>/schema/service.values.schema.json`), and the copies
//! every service chart must carry as its own `values.schema.json` (Helm
//! validates a chart's values only against the chart's own schema, so a
//! packaged service chart needs one).
//!
//! A copy is the source with its `$comment` replaced by one that names the
//! source and the command that regenerates it, so it is derived byte for
//! byte and never edited by hand.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::core::model::{Chart, ChartKind, Repo};

/// The source, relative to the library chart's folder.
pub const SOURCE: &str = "schema/service.values.schema.json";

/// The file each service chart carries.
pub const COPY: &str = "values.schema.json";

/// The command that writes the copies.
pub const COMMAND: &str = "cargo xtask schema";

/// The contract of a repository: its source and the charts that copy it.
pub struct Contract<'a> {
    /// `<library>/schema/service.values.schema.json`, relative to the root.
    pub source_rel: String,
    pub source: PathBuf,
    /// Application charts that depend on the library (not umbrellas).
    pub services: Vec<&'a Chart>,
}

impl<'a> Contract<'a> {
    /// The contract of `repo`: `None` when no library chart holds a source.
    pub fn find(repo: &'a Repo) -> Option<Contract<'a>> {
        let library = repo.charts.iter().find(|c| c.kind == ChartKind::Library && c.dir.join(SOURCE).is_file())?;
        let library_dir = library.dir.canonicalize().ok()?;
        let services = repo
            .charts
            .iter()
            .filter(|c| c.kind == ChartKind::Application)
            .filter(|c| {
                c.meta.dependencies.iter().any(|dep| {
                    dep.local_dir(&c.dir).and_then(|d| d.canonicalize().ok()).is_some_and(|d| d == library_dir)
                })
            })
            .collect();
        Some(Contract { source_rel: format!("{}/{SOURCE}", library.rel), source: library.dir.join(SOURCE), services })
    }

    /// What every copy holds: the source with a `$comment` naming it.
    pub fn expected_copy(&self) -> Result<String> {
        let text = std::fs::read_to_string(&self.source)
            .with_context(|| format!("{}: cannot read the value contract", self.source_rel))?;
        copy_of(&text, &self.source_rel)
    }

    /// Where a service chart's copy lives.
    pub fn copy_path(chart: &Chart) -> PathBuf {
        chart.dir.join(COPY)
    }
}

/// The copy of a source text: the line `"$comment": ...` right after the
/// opening brace is replaced (or added) by the generated-file notice.
pub fn copy_of(source: &str, source_rel: &str) -> Result<String> {
    let body = source
        .strip_prefix("{\n")
        .with_context(|| format!("{source_rel}: the value contract must start with a line holding only {{"))?;
    let body = match body.split_once('\n') {
        Some((first, rest)) if first.trim_start().starts_with("\"$comment\"") => rest,
        _ => body,
    };
    let notice = format!(
        "Generated from {source_rel} by `{COMMAND}`: edit that file, not this one (`cargo xtask lint` fails when they differ)."
    );
    Ok(format!("{{\n  \"$comment\": {},\n{body}", serde_json::Value::String(notice)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_names_its_source_and_keeps_the_rest() {
        let source = "{\n  \"$comment\": \"the source\",\n  \"type\": \"object\"\n}\n";
        let copy = copy_of(source, "charts/_common/schema/service.values.schema.json").unwrap();
        assert!(
            copy.starts_with("{\n  \"$comment\": \"Generated from charts/_common/schema/service.values.schema.json")
        );
        assert!(copy.ends_with("\"type\": \"object\"\n}\n"));
        let value: serde_json::Value = serde_json::from_str(&copy).unwrap();
        assert_eq!(value["type"], "object");
        // Regenerating from a source without a comment gives the same shape.
        assert_eq!(copy_of("{\n  \"type\": \"object\"\n}\n", "s").unwrap().lines().count(), 4);
        assert!(copy_of("[]", "s").is_err());
    }
}
