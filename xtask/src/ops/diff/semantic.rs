//! Comparing two renders object by object and field by field.
//!
//! Objects are matched by kind, namespace and name; fields are compared as
//! data, so key order and YAML formatting never show. Lists of maps that all
//! carry a distinct `name` (containers, env, ports, volumes) are matched by
//! name and shown as `containers[name=catalogue]`; other lists by position.
//!
//! What is left out or hidden, and why:
//! - the `helm.sh/chart` label: it changes with every chart version bump
//!   and says nothing about the workload; an object whose only difference is
//!   that label is counted, not listed;
//! - `checksum/*` annotations are listed as changed (they restart the pods)
//!   but never with their values: the hash is computed over Secret data;
//! - a Secret's `data` and `stringData` values are never printed: each key
//!   shows as added, removed or changed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value as Plain;

/// One Kubernetes object of a render.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The chart whose templates produced it (a subchart of an umbrella).
    pub source: String,
    pub body: Plain,
}

impl Object {
    fn key(&self) -> (String, String, String, String) {
        (self.source.clone(), self.kind.clone(), self.namespace.clone(), self.name.clone())
    }

    fn is_secret(&self) -> bool {
        self.kind == "Secret"
    }
}

/// Splits a render of `chart` into objects. A document that is not YAML is
/// an error naming the template it came from.
pub fn parse_render(rendered: &str, chart: &str) -> Result<Vec<Object>, String> {
    let mut objects = Vec::new();
    for (owner, text) in crate::exec::helm::split_by_chart(rendered, chart) {
        for (index, document) in crate::exec::helm::split_documents(&text).into_iter().enumerate() {
            let template = document.lines().find_map(|l| l.strip_prefix("# Source: ")).unwrap_or("?").to_string();
            // A template can print anything, 100,000 nested brackets too:
            // read through the bounded parser.
            let value: yaml_serde::Value = crate::util::yaml::parse(&document, &template)
                .map_err(|err| format!("{template}: the rendered document is not YAML: {}", err.reason()))?;
            let body = to_plain(value);
            if body.is_null() {
                continue;
            }
            let text_at = |p: &str| body.pointer(p).and_then(Plain::as_str).unwrap_or_default().to_string();
            let kind = text_at("/kind");
            let name = text_at("/metadata/name");
            objects.push(Object {
                kind: if kind.is_empty() { "(no kind)".into() } else { kind },
                namespace: text_at("/metadata/namespace"),
                name: if name.is_empty() { format!("({template} #{})", index + 1) } else { name },
                source: owner.clone(),
                body,
            });
        }
    }
    Ok(objects)
}

/// YAML to JSON data; non-string keys become their text.
fn to_plain(value: yaml_serde::Value) -> Plain {
    match value {
        yaml_serde::Value::Null => Plain::Null,
        yaml_serde::Value::Bool(b) => Plain::Bool(b),
        yaml_serde::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Plain::from(i)
            } else if let Some(u) = n.as_u64() {
                Plain::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| Plain::String(n.to_string()), Plain::Number)
            }
        }
        yaml_serde::Value::String(s) => Plain::String(s),
        yaml_serde::Value::Sequence(items) => Plain::Array(items.into_iter().map(to_plain).collect()),
        yaml_serde::Value::Mapping(mapping) => Plain::Object(
            mapping
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        yaml_serde::Value::String(s) => s,
                        other => yaml_serde::to_string(&other).map(|s| s.trim().to_string()).unwrap_or_default(),
                    };
                    (key, to_plain(v))
                })
                .collect(),
        ),
        yaml_serde::Value::Tagged(tagged) => to_plain(tagged.value),
    }
}

/// How an object differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectChange {
    Added,
    Removed,
    Changed,
}

/// How a field differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldChange {
    Added,
    Removed,
    Changed,
    /// A list keyed by name whose entries are the same but in another order.
    Reordered,
}

/// One changed field. `old` and `new` are absent where the field did not
/// exist, and for hidden values.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub path: String,
    pub change: FieldChange,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Plain>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Plain>,
    /// The values exist but are not shown (Secret data, checksums).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// The difference of one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectDiff {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub source: String,
    pub change: ObjectChange,
    /// For a changed object: its changed fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    /// For an added or removed object: the object, with Secret data and
    /// checksums hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Plain>,
}

/// Everything that differs between two renders of one chart and environment.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub objects: Vec<ObjectDiff>,
    /// Objects whose only difference is the `helm.sh/chart` label.
    pub chart_label_only: usize,
}

/// Compares the objects of two renders.
pub fn compare(old: &[Object], new: &[Object]) -> Comparison {
    let index = |objects: &[Object]| {
        let mut map: BTreeMap<(String, String, String, String), Object> = BTreeMap::new();
        for object in objects {
            let mut key = object.key();
            // The same object twice in one render is an error Helm's install
            // reports; keep both here so neither hides the other.
            let mut n = 2;
            while map.contains_key(&key) {
                key.3 = format!("{} #{n}", object.name);
                n += 1;
            }
            map.insert(key, object.clone());
        }
        map
    };
    let (old, new) = (index(old), index(new));
    let keys: BTreeSet<_> = old.keys().chain(new.keys()).cloned().collect();
    let mut comparison = Comparison::default();
    for key in keys {
        let diff = |change, fields, object| ObjectDiff {
            kind: key.1.clone(),
            namespace: key.2.clone(),
            name: key.3.clone(),
            source: key.0.clone(),
            change,
            fields,
            object,
        };
        match (old.get(&key), new.get(&key)) {
            (None, Some(added)) => {
                comparison.objects.push(diff(ObjectChange::Added, Vec::new(), Some(redacted(added))))
            }
            (Some(removed), None) => {
                comparison.objects.push(diff(ObjectChange::Removed, Vec::new(), Some(redacted(removed))))
            }
            (Some(a), Some(b)) => {
                let mut fields = Vec::new();
                let mut label_only = false;
                compare_object(a, b, &mut fields, &mut label_only);
                if !fields.is_empty() {
                    comparison.objects.push(diff(ObjectChange::Changed, fields, None));
                } else if label_only {
                    comparison.chart_label_only += 1;
                }
            }
            (None, None) => {}
        }
    }
    comparison
}

/// A path segment.
#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Named(String),
    Index(usize),
}

fn show(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) if key.is_empty() || key.contains(['.', '[', ']', ' ', '"']) => {
                out.push_str(&format!("[{key:?}]"))
            }
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Named(name) => out.push_str(&format!("[name={name}]")),
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn compare_object(old: &Object, new: &Object, out: &mut Vec<Field>, label_only: &mut bool) {
    if old.is_secret() || new.is_secret() {
        // Secret values: compared, never shown.
        let mut old_body = old.body.clone();
        let mut new_body = new.body.clone();
        for section in ["data", "stringData"] {
            let a = take(&mut old_body, section);
            let b = take(&mut new_body, section);
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let change = match (a.get(key), b.get(key)) {
                    (None, Some(_)) => FieldChange::Added,
                    (Some(_), None) => FieldChange::Removed,
                    (Some(x), Some(y)) if x != y => FieldChange::Changed,
                    _ => continue,
                };
                let path = vec![Segment::Key(section.to_string()), Segment::Key(key.clone())];
                out.push(Field { path: show(&path), change, old: None, new: None, hidden: true });
            }
        }
        walk(&old_body, &new_body, &mut Vec::new(), out, label_only);
    } else {
        walk(&old.body, &new.body, &mut Vec::new(), out, label_only);
    }
}

/// Removes a map-valued field from an object body.
fn take(body: &mut Plain, field: &str) -> serde_json::Map<String, Plain> {
    match body.as_object_mut().and_then(|o| o.remove(field)) {
        Some(Plain::Object(map)) => map,
        Some(other) => {
            // Not a map (an invalid Secret): compare it as one opaque entry.
            let mut map = serde_json::Map::new();
            map.insert("(value)".into(), other);
            map
        }
        None => serde_json::Map::new(),
    }
}

fn is_chart_label(path: &[Segment], key: &str) -> bool {
    key == "helm.sh/chart" && matches!(path.last(), Some(Segment::Key(k)) if k == "labels")
}

fn is_checksum(path: &[Segment], key: &str) -> bool {
    key.starts_with("checksum/") && matches!(path.last(), Some(Segment::Key(k)) if k == "annotations")
}

fn walk(old: &Plain, new: &Plain, path: &mut Vec<Segment>, out: &mut Vec<Field>, label_only: &mut bool) {
    if old == new {
        return;
    }
    match (old, new) {
        (Plain::Object(a), Plain::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                if is_chart_label(path, key) {
                    if a.get(key) != b.get(key) {
                        *label_only = true;
                    }
                    continue;
                }
                path.push(Segment::Key(key.clone()));
                let hidden = is_checksum(&path[..path.len() - 1], key);
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) if hidden => {
                        if x != y {
                            out.push(Field {
                                path: show(path),
                                change: FieldChange::Changed,
                                old: None,
                                new: None,
                                hidden,
                            })
                        }
                    }
                    (Some(x), Some(y)) => walk(x, y, path, out, label_only),
                    (None, Some(y)) => out.push(field(path, FieldChange::Added, None, Some(y), hidden)),
                    (Some(x), None) => out.push(field(path, FieldChange::Removed, Some(x), None, hidden)),
                    (None, None) => {}
                }
                path.pop();
            }
        }
        (Plain::Array(a), Plain::Array(b)) => walk_list(a, b, path, out, label_only),
        _ => out.push(field(path, FieldChange::Changed, Some(old), Some(new), false)),
    }
}

fn field(path: &[Segment], change: FieldChange, old: Option<&Plain>, new: Option<&Plain>, hidden: bool) -> Field {
    let keep = |v: Option<&Plain>| if hidden { None } else { v.map(|v| scrubbed_subtree(path, v.clone())) };
    Field { path: show(path), change, old: keep(old), new: keep(new), hidden }
}

/// An added or removed subtree shown whole still leaves out the chart label
/// and checksum values, like everything else; `path` is where it sits, so a
/// whole `annotations` map is recognised as one.
fn scrubbed_subtree(path: &[Segment], mut value: Plain) -> Plain {
    let mut context: Vec<String> = match path.last() {
        Some(Segment::Key(key)) => vec![key.clone()],
        _ => Vec::new(),
    };
    scrub(&mut value, &mut context, false);
    value
}

/// The names of a list whose entries are all maps with distinct string
/// `name`s: such lists are compared entry by entry, by name.
fn names(list: &[Plain]) -> Option<Vec<String>> {
    let names: Vec<String> =
        list.iter().map(|v| v.get("name").and_then(Plain::as_str).map(str::to_string)).collect::<Option<_>>()?;
    let distinct: BTreeSet<&String> = names.iter().collect();
    (distinct.len() == names.len()).then_some(names)
}

fn walk_list(a: &[Plain], b: &[Plain], path: &mut Vec<Segment>, out: &mut Vec<Field>, label_only: &mut bool) {
    if let (Some(old_names), Some(new_names)) = (names(a), names(b)) {
        if !a.is_empty() && !b.is_empty() {
            let all: BTreeSet<&String> = old_names.iter().chain(new_names.iter()).collect();
            for name in all {
                let x = old_names.iter().position(|n| n == name).map(|i| &a[i]);
                let y = new_names.iter().position(|n| n == name).map(|i| &b[i]);
                path.push(Segment::Named(name.clone()));
                match (x, y) {
                    (Some(x), Some(y)) => walk(x, y, path, out, label_only),
                    (None, Some(y)) => out.push(field(path, FieldChange::Added, None, Some(y), false)),
                    (Some(x), None) => out.push(field(path, FieldChange::Removed, Some(x), None, false)),
                    (None, None) => {}
                }
                path.pop();
            }
            let common_old: Vec<&String> = old_names.iter().filter(|n| new_names.contains(n)).collect();
            let common_new: Vec<&String> = new_names.iter().filter(|n| old_names.contains(n)).collect();
            if common_old != common_new {
                let list =
                    |names: Vec<&String>| Plain::Array(names.into_iter().map(|n| Plain::String(n.clone())).collect());
                out.push(Field {
                    path: show(path),
                    change: FieldChange::Reordered,
                    old: Some(list(common_old)),
                    new: Some(list(common_new)),
                    hidden: false,
                });
            }
            return;
        }
    }
    let scalars = |l: &[Plain]| l.iter().all(|v| !v.is_object() && !v.is_array());
    if scalars(a) && scalars(b) {
        // Arguments, commands, policy types: one change for the whole list
        // reads better than a shifted index per element.
        out.push(field(
            path,
            FieldChange::Changed,
            Some(&Plain::Array(a.to_vec())),
            Some(&Plain::Array(b.to_vec())),
            false,
        ));
        return;
    }
    for i in 0..a.len().max(b.len()) {
        path.push(Segment::Index(i));
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => walk(x, y, path, out, label_only),
            (None, Some(y)) => out.push(field(path, FieldChange::Added, None, Some(y), false)),
            (Some(x), None) => out.push(field(path, FieldChange::Removed, Some(x), None, false)),
            (None, None) => {}
        }
        path.pop();
    }
}

/// An object as it may be shown: Secret data values and checksum
/// annotations replaced by `(hidden)`, the chart label removed.
pub fn redacted(object: &Object) -> Plain {
    let mut body = object.body.clone();
    scrub(&mut body, &mut Vec::new(), object.is_secret());
    body
}

const HIDDEN: &str = "(hidden)";

fn scrub(value: &mut Plain, path: &mut Vec<String>, secret: bool) {
    if let Plain::Object(map) = value {
        let parent = path.last().cloned().unwrap_or_default();
        if parent == "labels" {
            map.remove("helm.sh/chart");
        }
        for (key, inner) in map.iter_mut() {
            let top_level_data = secret && path.is_empty() && (key == "data" || key == "stringData");
            if top_level_data {
                if let Plain::Object(entries) = inner {
                    for entry in entries.values_mut() {
                        *entry = Plain::String(HIDDEN.into());
                    }
                } else {
                    *inner = Plain::String(HIDDEN.into());
                }
                continue;
            }
            if parent == "annotations" && key.starts_with("checksum/") {
                *inner = Plain::String(HIDDEN.into());
                continue;
            }
            path.push(key.clone());
            scrub(inner, path, secret);
            path.pop();
        }
    } else if let Plain::Array(items) = value {
        for item in items {
            path.push("[]".into());
            scrub(item, path, secret);
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(kind: &str, body: Plain) -> Object {
        Object { kind: kind.into(), namespace: "default".into(), name: "x".into(), source: "c".into(), body }
    }

    #[test]
    fn containers_are_matched_by_name() {
        let a = object(
            "Deployment",
            json!({"spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "512Mi"}}}, {"name": "side"}]}}),
        );
        let b = object(
            "Deployment",
            json!({"spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "768Mi"}}}, {"name": "side"}]}}),
        );
        let c = compare(&[a], &[b]);
        assert_eq!(c.objects.len(), 1);
        let f = &c.objects[0].fields;
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].path, "spec.containers[name=app].resources.limits.memory");
        assert_eq!(f[0].old, Some(json!("512Mi")));
    }

    #[test]
    fn chart_label_alone_is_not_a_change() {
        let a = object("Service", json!({"metadata": {"labels": {"helm.sh/chart": "c-1.0.0", "app": "x"}}}));
        let b = object("Service", json!({"metadata": {"labels": {"helm.sh/chart": "c-1.0.1", "app": "x"}}}));
        let c = compare(&[a], &[b]);
        assert!(c.objects.is_empty());
        assert_eq!(c.chart_label_only, 1);
    }

    #[test]
    fn secrets_and_checksums_never_show_values() {
        let a = object(
            "Secret",
            json!({"data": {"K": "b2xk", "same": "eA=="}, "metadata": {"annotations": {"checksum/x": "aaa"}}}),
        );
        let b = object(
            "Secret",
            json!({"data": {"K": "bmV3", "same": "eA==", "N": "bg=="}, "metadata": {"annotations": {"checksum/x": "bbb"}}}),
        );
        let c = compare(&[a], std::slice::from_ref(&b));
        let text = serde_json::to_string(&c.objects).unwrap();
        for secret in ["b2xk", "bmV3", "bg==", "aaa", "bbb"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(c.objects[0].fields.len(), 3, "{text}");
        let added = compare(&[], &[b]);
        let text = serde_json::to_string(&added.objects).unwrap();
        assert!(!text.contains("bmV3") && !text.contains("bbb"), "{text}");
    }

    #[test]
    fn key_order_and_reordering() {
        let a = object("ConfigMap", json!({"data": {"a": "1", "b": "2"}}));
        let b = object("ConfigMap", json!({"data": {"b": "2", "a": "1"}}));
        assert!(compare(&[a], &[b]).objects.is_empty());
        let a = object("Pod", json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}));
        let b = object("Pod", json!({"env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}));
        let c = compare(&[a], &[b]);
        assert_eq!(c.objects[0].fields[0].change, FieldChange::Reordered);
    }
}
