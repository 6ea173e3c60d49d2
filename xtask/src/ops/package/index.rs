//! The chart repository `index.yaml` of the output folder, merged with the
//! one already there.
//!
//! `helm repo index --merge` is not used because it re-reads every archive
//! and stamps a new `created` on each entry and a new `generated` on the file
//! every run, so a second run would always change the file. Here an entry is
//! added for each archive the index does not list yet (or lists with another
//! digest), entries of other archives are kept as they are, and the file is
//! only rewritten, atomically, when an entry changed.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};
use yaml_serde::{Mapping, Value};

use crate::core::archive::ArchiveInfo;
use crate::util::fs;

/// The file name Helm looks for in a chart repository.
pub const FILE_NAME: &str = "index.yaml";

/// What merging changed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Merged {
    /// `name-version` of entries added or replaced.
    pub added: Vec<String>,
    pub written: bool,
}

/// Adds an entry for each `(file name, archive)` to `<dir>/index.yaml`.
pub fn merge(dir: &Path, archives: &[(String, ArchiveInfo)]) -> Result<Merged> {
    let path = dir.join(FILE_NAME);
    let shown = path.display().to_string();
    let mut index: Mapping = if path.is_file() { crate::util::yaml::load(&path, &shown)? } else { Mapping::new() };
    if index.get("apiVersion").is_none() {
        index.insert("apiVersion".into(), "v1".into());
    }
    let entries = index.entry("entries".into()).or_insert_with(|| Value::Mapping(Mapping::new()));
    if entries.is_null() {
        *entries = Value::Mapping(Mapping::new());
    }
    let entries =
        entries.as_mapping_mut().with_context(|| format!("{shown}: `entries` is not a mapping of chart names"))?;

    let now = crate::util::time::rfc3339_now();
    let mut merged = Merged::default();
    for (file_name, info) in archives {
        let name = string_field(&info.chart_yaml, "name")?;
        let version = string_field(&info.chart_yaml, "version")?;
        let list = entries.entry(name.clone().into()).or_insert_with(|| Value::Sequence(Vec::new()));
        let list = list.as_sequence_mut().with_context(|| format!("{shown}: entries.{name} is not a list"))?;
        let existing = list.iter().position(|e| e.get("version").and_then(Value::as_str) == Some(version.as_str()));
        if let Some(at) = existing {
            if list[at].get("digest").and_then(Value::as_str) == Some(info.digest.as_str()) {
                continue;
            }
            list.remove(at);
        }
        list.push(entry(info, file_name, &now));
        sort_newest_first(list);
        merged.added.push(format!("{name}-{version}"));
    }
    if merged.added.is_empty() && path.is_file() {
        return Ok(merged);
    }
    // Chart names in order, as Helm writes them, so the file diffs well.
    let mut sorted: Vec<(Value, Value)> = std::mem::take(entries).into_iter().collect();
    sorted.sort_by(|(a, _), (b, _)| a.as_str().cmp(&b.as_str()));
    *entries = sorted.into_iter().collect();
    index.insert("generated".into(), now.into());
    let text = yaml_serde::to_string(&index).context("cannot serialise index.yaml")?;
    let header = "# Chart repository index, written by `cargo xtask package`.\n";
    fs::write_atomic(&path, format!("{header}{text}").as_bytes())?;
    merged.written = true;
    Ok(merged)
}

fn string_field(chart: &Mapping, key: &str) -> Result<String> {
    chart
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("the archive's Chart.yaml has no `{key}`"))
}

/// An index entry as Helm writes one: the chart's metadata plus `created`,
/// `digest` and `urls`, with keys in alphabetical order (Helm marshals
/// through JSON, which sorts them).
fn entry(info: &ArchiveInfo, file_name: &str, created: &str) -> Value {
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    for (key, value) in &info.chart_yaml {
        if let Some(key) = key.as_str() {
            fields.insert(key.to_string(), value.clone());
        }
    }
    fields.insert("created".into(), created.into());
    fields.insert("digest".into(), info.digest.clone().into());
    fields.insert("urls".into(), Value::Sequence(vec![file_name.into()]));
    Value::Mapping(fields.into_iter().map(|(k, v)| (Value::String(k), v)).collect())
}

/// Newest version first, as Helm sorts each chart's entries.
fn sort_newest_first(list: &mut [Value]) {
    let key = |e: &Value| e.get("version").and_then(Value::as_str).and_then(|v| semver::Version::parse(v).ok());
    list.sort_by_key(|e| std::cmp::Reverse(key(e)));
}
