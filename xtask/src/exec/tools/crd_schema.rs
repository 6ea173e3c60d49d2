//! A CustomResourceDefinition's `openAPIV3Schema` turned into the JSON
//! schema kubeconform reads, one per served version, in the
//! `{group}/{kind}_{version}.json` layout of its CRD schema locations.
//!
//! The same idea as kubeconform's `openapi2jsonschema` script, written for
//! what the API server does with the schema rather than what the script
//! does:
//! - strict objects: an object schema that lists `properties` rejects other
//!   fields (`additionalProperties: false`) unless it says
//!   `x-kubernetes-preserve-unknown-fields: true`, where the API server keeps
//!   unknown fields too. The walk follows the schema's structure
//!   (`properties`, `items`, `additionalProperties`), never a property that
//!   happens to be named `properties`, and leaves `allOf`/`anyOf`/`oneOf`
//!   alone: their branches only add constraints and do not list every field;
//! - the root is strict too, with `apiVersion`, `kind` and `metadata`
//!   allowed where the CRD does not spell them out;
//! - `x-kubernetes-int-or-string: true` (and the older `format:
//!   int-or-string`) becomes "a string or an integer";
//! - `nullable: true` admits `null`.

use anyhow::{Context as _, Result};
use serde_json::{json, Map, Value};

/// One generated schema.
#[derive(Debug, Clone)]
pub struct Generated {
    pub group: String,
    pub kind: String,
    pub version: String,
    pub schema: Value,
}

impl Generated {
    /// `group/kind_version.json`, lower case: where kubeconform's
    /// `{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`
    /// location looks for it.
    pub fn relative_path(&self) -> String {
        format!("{}/{}_{}.json", self.group, self.kind.to_ascii_lowercase(), self.version).to_ascii_lowercase()
    }
}

/// The schemas of every served version of every CRD in `text` (a YAML
/// file, one or more documents); `shown_as` names the file in errors.
pub fn from_crd_file(text: &str, shown_as: &str) -> Result<Vec<Generated>> {
    let mut generated = Vec::new();
    for (index, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value: Value = serde::Deserialize::deserialize(document)
            .with_context(|| format!("{shown_as}: document {} is not YAML", index + 1))?;
        if value.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            continue;
        }
        generated.extend(from_crd(&value).with_context(|| format!("{shown_as}: document {}", index + 1))?);
    }
    anyhow::ensure!(!generated.is_empty(), "{shown_as}: holds no CustomResourceDefinition with a schema");
    Ok(generated)
}

fn from_crd(crd: &Value) -> Result<Vec<Generated>> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().context("spec.group is missing")?;
    let kind = spec["names"]["kind"].as_str().context("spec.names.kind is missing")?;
    let versions = spec["versions"].as_array().context("spec.versions is missing")?;
    let mut out = Vec::new();
    for version in versions {
        let name = version["name"].as_str().context("a version has no name")?;
        if version["served"].as_bool() == Some(false) {
            continue;
        }
        let Some(schema) = version["schema"].get("openAPIV3Schema") else { continue };
        out.push(Generated {
            group: group.into(),
            kind: kind.into(),
            version: name.into(),
            schema: root_schema(schema.clone()),
        });
    }
    Ok(out)
}

/// The version's schema as a strict JSON schema.
pub fn root_schema(mut schema: Value) -> Value {
    if let Value::Object(root) = &mut schema {
        let properties = root.entry("properties").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(properties) = properties {
            for (field, default) in [
                ("apiVersion", json!({"type": "string"})),
                ("kind", json!({"type": "string"})),
                ("metadata", json!({"type": "object"})),
            ] {
                properties.entry(field).or_insert(default);
            }
        }
    }
    strict(&mut schema);
    schema
}

/// Applies the rules of the module documentation to `node` and below.
fn strict(node: &mut Value) {
    let Value::Object(map) = node else { return };
    let flag = |map: &Map<String, Value>, key: &str| map.get(key).and_then(Value::as_bool) == Some(true);
    let int_or_string =
        flag(map, "x-kubernetes-int-or-string") || map.get("format").and_then(Value::as_str) == Some("int-or-string");
    if int_or_string {
        map.remove("type");
        if map.get("format").and_then(Value::as_str) == Some("int-or-string") {
            map.remove("format");
        }
        map.insert("anyOf".into(), json!([{"type": "string"}, {"type": "integer"}]));
    }
    if flag(map, "nullable") {
        if let Some(Value::String(kind)) = map.get("type").cloned() {
            map.insert("type".into(), json!([kind, "null"]));
        }
        if let Some(Value::Array(values)) = map.get_mut("enum") {
            values.push(Value::Null);
        }
        if int_or_string {
            if let Some(Value::Array(branches)) = map.get_mut("anyOf") {
                branches.push(json!({"type": "null"}));
            }
        }
    }
    if map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && !flag(map, "x-kubernetes-preserve-unknown-fields")
    {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(strict);
    }
    match map.get_mut("items") {
        Some(Value::Array(items)) => items.iter_mut().for_each(strict),
        Some(items) => strict(items),
        None => {}
    }
    if let Some(additional @ Value::Object(_)) = map.get_mut("additionalProperties") {
        strict(additional);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.io}
spec:
  group: example.io
  names: {kind: Widget, plural: widgets}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {x-kubernetes-int-or-string: true, pattern: '^[0-9]+$'}
                note: {type: string, nullable: true}
                values: {type: object, x-kubernetes-preserve-unknown-fields: true}
                labels: {type: object, additionalProperties: {type: string}}
                ports:
                  type: array
                  items:
                    type: object
                    properties:
                      properties: {type: object, properties: {x: {type: string}}}
              anyOf:
                - properties: {size: {}}
    - name: v0
      served: false
      schema: {openAPIV3Schema: {type: object}}
";

    #[test]
    fn served_versions_become_strict_schemas() {
        let generated = from_crd_file(CRD, "widgets.yaml").expect("converts");
        assert_eq!(generated.len(), 1, "v0 is not served");
        let widget = &generated[0];
        assert_eq!(widget.relative_path(), "example.io/widget_v1.json");
        let schema = &widget.schema;
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["kind"]["type"], "string");
        let spec = &schema["properties"]["spec"];
        assert_eq!(spec["additionalProperties"], false);
        assert_eq!(spec["properties"]["size"]["anyOf"], json!([{"type": "string"}, {"type": "integer"}]));
        assert_eq!(spec["properties"]["size"]["pattern"], "^[0-9]+$");
        assert_eq!(spec["properties"]["note"]["type"], json!(["string", "null"]));
        assert!(spec["properties"]["values"].get("additionalProperties").is_none(), "preserved");
        assert_eq!(spec["properties"]["labels"]["additionalProperties"], json!({"type": "string"}));
        let item = &spec["properties"]["ports"]["items"];
        assert_eq!(item["additionalProperties"], false);
        // A property named `properties` is a field, and its own schema is strict.
        assert_eq!(item["properties"]["properties"]["additionalProperties"], false);
        assert!(spec["anyOf"][0].get("additionalProperties").is_none(), "branches stay open");
    }

    #[test]
    fn a_file_without_a_crd_is_an_error() {
        let err = from_crd_file("kind: ConfigMap\n", "x.yaml").expect_err("no CRD");
        assert!(format!("{err:#}").contains("x.yaml"), "{err:#}");
    }
}
