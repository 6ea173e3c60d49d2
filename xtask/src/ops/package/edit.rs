//! Comment-preserving edits of Chart.yaml: the chart's `version` and the
//! `version` of its `dependencies[]` entries.
//!
//! The edits are made and proved by the one comment-keeping editor,
//! [`crate::util::yaml_edit`]; this file knows Chart.yaml's shape (a
//! top-level `version:`, `dependencies:` a block sequence of block
//! mappings) and refuses any other.

use anyhow::Result;

use crate::util::yaml_edit::{indent, is_content, key_scalar, split_lines, top_level_scalar, Line, Scalar};

/// The edits to make to one Chart.yaml.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    /// The chart's new `version`.
    pub version: Option<String>,
    /// `(index in dependencies, expected name, new version)`.
    pub dependencies: Vec<(usize, String, String)>,
}

/// Applies `edits` to the text of a Chart.yaml; `shown` names it in errors.
pub fn apply(text: &str, shown: &str, edits: &Edits) -> Result<String> {
    let lines = split_lines(text);
    let mut replacements: Vec<(usize, usize, String)> = Vec::new();

    if let Some(version) = &edits.version {
        let span = top_level_scalar(&lines, "version").ok_or_else(|| {
            refuse(shown, "the top-level `version:` line is not a plain or quoted scalar on one line")
        })?;
        replacements.push(span.replaced_by(version));
    }
    if !edits.dependencies.is_empty() {
        let items = dependency_items(&lines)
            .ok_or_else(|| refuse(shown, "`dependencies:` is not a block sequence of block mappings"))?;
        for (index, name, version) in &edits.dependencies {
            let item = items.get(*index).ok_or_else(|| {
                refuse(shown, &format!("dependency #{} ({name}) was not found in the text", index + 1))
            })?;
            let found_name = item.name.as_ref().map(|s| s.value.clone());
            if found_name.as_deref() != Some(name.as_str()) {
                return Err(refuse(
                    shown,
                    &format!("dependency #{} is {found_name:?} in the text, expected {name:?}", index + 1),
                ));
            }
            let span = item
                .version
                .as_ref()
                .ok_or_else(|| refuse(shown, &format!("dependency {name}: `version:` is not a scalar on one line")))?;
            replacements.push(span.replaced_by(version));
        }
    }

    // Replace from the end so earlier offsets stay valid.
    replacements.sort_by_key(|(start, _, _)| std::cmp::Reverse(*start));
    let mut edited = text.to_string();
    for (start, end, with) in replacements {
        edited.replace_range(start..end, &with);
    }
    verify(text, &edited, shown, edits)?;
    Ok(edited)
}

fn refuse(shown: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!("{shown}: cannot edit this file without rewriting it ({why}); change the versions by hand")
}

/// Proves the edit (see [`crate::util::yaml_edit::verify`]).
fn verify(before: &str, after: &str, shown: &str, edits: &Edits) -> Result<()> {
    use yaml_serde::Value;
    crate::util::yaml_edit::verify(before, after, shown, |expected| {
        if let Some(version) = &edits.version {
            match expected.get_mut("version") {
                Some(slot) => *slot = Value::String(version.clone()),
                None => return false,
            }
        }
        for (index, _, version) in &edits.dependencies {
            let slot = expected
                .get_mut("dependencies")
                .and_then(|deps| deps.get_mut(*index))
                .and_then(|dep| dep.get_mut("version"));
            match slot {
                Some(slot) => *slot = Value::String(version.clone()),
                None => return false,
            }
        }
        true
    })
    .map_err(|why: String| refuse(shown, &why))
}

/// One `- ` item of the dependencies sequence.
#[derive(Debug, Default)]
struct Item {
    name: Option<Scalar>,
    version: Option<Scalar>,
}

/// The items of the top-level `dependencies:` block sequence.
fn dependency_items(lines: &[Line<'_>]) -> Option<Vec<Item>> {
    let header = lines.iter().position(|l| {
        l.text.strip_prefix("dependencies").is_some_and(|rest| {
            let rest = rest.trim_start_matches(' ');
            rest.strip_prefix(':').is_some_and(|rest| !is_content(rest))
        })
    })?;
    let body: Vec<&Line<'_>> = lines[header + 1..].iter().collect();
    let first = body.iter().find(|l| is_content(l.text))?;
    let seq_indent = indent(first.text);
    if !first.text[seq_indent..].starts_with('-') {
        return None;
    }
    let mut items: Vec<Item> = Vec::new();
    let mut key_indent: Option<usize> = None;
    for line in body {
        if !is_content(line.text) {
            continue;
        }
        let indent = indent(line.text);
        let rest = &line.text[indent..];
        let is_dash = rest == "-" || rest.starts_with("- ");
        if indent < seq_indent || (indent == seq_indent && !is_dash) {
            break; // the next top-level key
        }
        let mut at = indent;
        if indent == seq_indent {
            items.push(Item::default());
            let after = rest[1..].trim_start_matches(' ');
            if after.is_empty() || after.starts_with('#') {
                key_indent = None; // keys start on the next line
                continue;
            }
            at = line.text.len() - after.len();
            key_indent = Some(at);
        } else if key_indent.is_none() {
            key_indent = Some(indent);
        }
        if Some(at) != key_indent {
            continue; // a nested value of the item
        }
        let item = items.last_mut()?;
        if let Some(s) = key_scalar(line, at, "name") {
            item.name = Some(s);
        } else if let Some(s) = key_scalar(line, at, "version") {
            item.version = Some(s);
        }
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHART: &str = "\
apiVersion: v2
# The chart's name.
name: robot-shop
description: >-
  version: 9.9.9 is text here, not a key
version: \"0.1.0\"   # raised by `cargo xtask bump`
dependencies:
  # the library
  - name: common
    version: 1.0.0
    repository: file://../charts/_common
  -
    repository: file://../charts/cart
    name: cart
    version: '1.0.0' # keep in step
    tags: [x]
";

    #[test]
    fn edits_keep_comments_quotes_and_order() {
        let text = CHART;
        let edits = Edits {
            version: Some("0.1.1".into()),
            dependencies: vec![(0, "common".into(), "1.0.1".into()), (1, "cart".into(), "1.0.1".into())],
        };
        let out = apply(text, "helm/Chart.yaml", &edits).unwrap();
        let expected = text
            .replace("version: \"0.1.0\"", "version: \"0.1.1\"")
            .replace("version: 1.0.0", "version: 1.0.1")
            .replace("version: '1.0.0'", "version: '1.0.1'");
        assert_eq!(out, expected);
    }

    #[test]
    fn a_sequence_at_column_zero_is_found() {
        let text = "apiVersion: v2\nname: a\nversion: 1.0.0\ndependencies:\n- name: b\n  version: 2.0.0 # pin\nkeywords:\n- x\n";
        let edits = Edits { version: None, dependencies: vec![(0, "b".into(), "2.1.0".into())] };
        let out = apply(text, "a/Chart.yaml", &edits).unwrap();
        assert_eq!(out, text.replace("2.0.0 # pin", "2.1.0 # pin"));
    }

    #[test]
    fn unusual_layouts_are_refused() {
        let flow = "apiVersion: v2\nname: a\nversion: 1.0.0\ndependencies: [{name: b, version: 1.0.0}]\n";
        let edits = Edits { version: None, dependencies: vec![(0, "b".into(), "1.0.1".into())] };
        let err = apply(flow, "a/Chart.yaml", &edits).unwrap_err().to_string();
        assert!(err.contains("a/Chart.yaml") && err.contains("by hand"), "{err}");

        let anchored = "apiVersion: v2\nname: a\nversion: &v 1.0.0\n";
        let edits = Edits { version: Some("1.0.1".into()), dependencies: vec![] };
        assert!(apply(anchored, "a/Chart.yaml", &edits).is_err());
    }

    #[test]
    fn crlf_files_keep_their_line_ends() {
        let text = "apiVersion: v2\r\nname: a\r\nversion: 1.0.0\r\n";
        let edits = Edits { version: Some("1.0.1".into()), dependencies: vec![] };
        assert_eq!(apply(text, "a", &edits).unwrap(), text.replace("1.0.0", "1.0.1"));
    }
}
