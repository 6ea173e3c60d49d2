//! Reading values files into trees, and merging the files a user passes.
//!
//! Follows Helm's `loader.LoadValues` (a file may hold several YAML
//! documents; they are merged in order) and `loader.MergeMaps` (how `-f`
//! files combine before anything else: maps merge, everything else is
//! replaced, `null` included; the null deletes a chart default later, in
//! `coalesce`). Errors name the file, line and column.

use std::path::Path;

use anyhow::Result;
use serde::Deserialize;

use super::tree::{new_table, LayerId, Node, Table, Value};
use crate::util::yaml::YamlError;

/// Reads a values file: a missing file is an error naming it.
pub fn load_file(path: &Path, shown_as: &str, layer: LayerId) -> Result<Table> {
    let text = crate::util::yaml::read_text(path, shown_as)?;
    parse(&text, shown_as, layer).map_err(Into::into)
}

/// Parses values text (all of its documents) into one table.
pub fn parse(text: &str, shown_as: &str, layer: LayerId) -> Result<Table, YamlError> {
    let mut merged = new_table();
    for document in yaml_serde::Deserializer::from_str(text) {
        let mut value = yaml_serde::Value::deserialize(document).map_err(|err| yaml_error(&err, shown_as))?;
        // YAML merge keys (`<<: *defaults`) are resolved by Helm's parser too.
        value.apply_merge().map_err(|err| yaml_error(&err, shown_as))?;
        let table = match value {
            // An empty document (or a file of comments) is an empty map to Helm.
            yaml_serde::Value::Null => new_table(),
            yaml_serde::Value::Mapping(mapping) => mapping_table(mapping, layer),
            other => {
                return Err(YamlError {
                    file: shown_as.to_string(),
                    line: None,
                    column: None,
                    message: format!("a values file must be a map of keys at the top, not {}", kind_of(&other)),
                })
            }
        };
        merged = merge_maps(&merged, &table);
    }
    Ok(merged)
}

fn kind_of(value: &yaml_serde::Value) -> &'static str {
    match value {
        yaml_serde::Value::Null => "null",
        yaml_serde::Value::Bool(_) => "a boolean",
        yaml_serde::Value::Number(_) => "a number",
        yaml_serde::Value::String(_) => "a string",
        yaml_serde::Value::Sequence(_) => "a list",
        yaml_serde::Value::Mapping(_) => "a map",
        yaml_serde::Value::Tagged(_) => "a tagged value",
    }
}

fn yaml_error(err: &yaml_serde::Error, shown_as: &str) -> YamlError {
    let location = err.location();
    let message = err.to_string();
    let message = match message.find(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message,
    };
    YamlError {
        file: shown_as.to_string(),
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        message,
    }
}

/// Converts parsed YAML into a tree whose every node has `layer` as origin.
/// Map keys that are not strings (`1:`, `true:`) become their text, as they
/// do when Helm's parser converts YAML to JSON.
pub fn from_yaml(value: yaml_serde::Value, layer: LayerId) -> Node {
    let value = match value {
        yaml_serde::Value::Null => Value::Null,
        yaml_serde::Value::Bool(b) => Value::Bool(b),
        yaml_serde::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        yaml_serde::Value::String(s) => Value::Str(s),
        yaml_serde::Value::Sequence(items) => Value::List(items.into_iter().map(|v| from_yaml(v, layer)).collect()),
        yaml_serde::Value::Mapping(mapping) => Value::Map(mapping_table(mapping, layer)),
        yaml_serde::Value::Tagged(tagged) => return from_yaml(tagged.value, layer),
    };
    Node::new(value, layer)
}

fn mapping_table(mapping: yaml_serde::Mapping, layer: LayerId) -> Table {
    let table = new_table();
    for (key, value) in mapping {
        table.borrow_mut().insert(key_text(&key), from_yaml(value, layer));
    }
    table
}

fn key_text(key: &yaml_serde::Value) -> String {
    match key {
        yaml_serde::Value::String(s) => s.clone(),
        yaml_serde::Value::Bool(b) => b.to_string(),
        yaml_serde::Value::Number(n) => n.to_string(),
        yaml_serde::Value::Null => "null".to_string(),
        other => yaml_serde::to_string(other).map(|s| s.trim().to_string()).unwrap_or_default(),
    }
}

/// The merge of plain YAML documents, in order, as `-f` files merge
/// ([`merge_maps`]), for callers that want the merged values and not where
/// each came from (`gitops`). A document that is not a map counts as empty,
/// as an empty values file does. Keys come out sorted.
pub fn merge_documents(documents: impl IntoIterator<Item = yaml_serde::Value>) -> yaml_serde::Value {
    let mut merged = new_table();
    for document in documents {
        if let Value::Map(table) = from_yaml(document, super::tree::IMPLICIT).value {
            merged = merge_maps(&merged, &table);
        }
    }
    // JSON to YAML cannot fail: every JSON value is a YAML value.
    yaml_serde::to_value(super::tree::table_to_plain(&merged)).unwrap_or(yaml_serde::Value::Null)
}

/// Helm's `loader.MergeMaps(a, b)`: a new table with `a`'s entries, then
/// `b`'s; where both hold a table the two are merged the same way, anything
/// else in `b` replaces what `a` had.
pub fn merge_maps(a: &Table, b: &Table) -> Table {
    let out = super::tree::shallow_copy_table(a);
    for (key, node) in super::tree::entries(b) {
        let existing = out.borrow().get(&key).cloned();
        let merged = match (&existing, node.as_table()) {
            (Some(old), Some(new_inner)) if old.as_table().is_some() => {
                let old_inner = old.as_table().cloned().unwrap_or_else(new_table);
                Node {
                    value: Value::Map(merge_maps(&old_inner, new_inner)),
                    origin: old.origin,
                    overrode: old.overrode.clone(),
                }
            }
            _ => {
                let mut node = node.clone();
                if let Some(old) = &existing {
                    node.note_override(old);
                }
                node
            }
        };
        out.borrow_mut().insert(key, merged);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tree::{table_to_plain, to_plain};
    use super::*;

    #[test]
    fn documents_merge_and_nulls_survive() {
        let table = parse("a: {b: 1, c: 2}\nl: [1, 2]\n---\na: {c: 3}\nl: [9]\nn: null\n", "v.yaml", 1).unwrap();
        assert_eq!(table_to_plain(&table), serde_json::json!({"a": {"b": 1, "c": 3}, "l": [9], "n": null}));
    }

    #[test]
    fn merge_keys_and_odd_keys() {
        let table = parse("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n1: one\n", "v.yaml", 1).unwrap();
        let plain = table_to_plain(&table);
        assert_eq!(plain["use"], serde_json::json!({"x": 1, "y": 2}));
        assert_eq!(plain["1"], serde_json::json!("one"));
    }

    #[test]
    fn errors_carry_file_line_and_column() {
        let err = parse("a: 1\nb: [1,\n", "values-prod.yaml", 1).unwrap_err();
        assert!(err.to_string().starts_with("values-prod.yaml:"), "{err}");
        assert!(err.line.is_some());
        let err = parse("- 1\n- 2\n", "v.yaml", 1).unwrap_err();
        assert!(err.to_string().contains("must be a map"), "{err}");
    }

    #[test]
    fn later_file_replaces_scalars_and_lists_and_remembers() {
        let a = parse("x: 1\nm: {k: v}\n", "a.yaml", 1).unwrap();
        let b = parse("x: 2\nm: 3\n", "b.yaml", 2).unwrap();
        let merged = merge_maps(&a, &b);
        let x = merged.borrow().get("x").cloned().unwrap();
        assert_eq!(to_plain(&x), serde_json::json!(2));
        assert_eq!(x.overrode.len(), 1);
        assert_eq!(x.overrode[0].layer, 1);
        assert_eq!(table_to_plain(&merged)["m"], serde_json::json!(3));
    }
}
