//! Values as Helm holds them, plus where each one came from.
//!
//! Helm merges `map[string]any` trees in place, and some of its maps are
//! shared between several places of the result (a parent's nested `global`
//! tables are shallow-copied into every subchart, so a subchart's defaults
//! can show up in its siblings). To reproduce Helm's answer and not just its
//! documentation, tables here have Go's reference semantics: a [`Table`] is
//! an `Rc<RefCell<..>>`, cloning a [`Node`] shares its tables, and
//! [`deep_copy`] is Go's `copystructure.Copy`. Lists and scalars are values,
//! as they are in Go (Helm never mutates a list in place after parsing).
//!
//! Every node records the layer that set it ([`Node::origin`]) and the values
//! of lower layers it replaced ([`Node::overrode`]), which is what
//! `cargo xtask explain` prints.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value as Plain;

/// Index into the list of [`Layer`]s of one computation.
pub type LayerId = usize;

/// The layer that Helm itself creates values in (an empty table for a
/// subchart that no file mentions, a `global: {}`); never shown as a source.
pub const IMPLICIT: LayerId = 0;

/// What kind of input a layer is; decides its label in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    /// Created by Helm while merging, not written by anyone.
    Implicit,
    /// A chart's own `values.yaml` (a service chart's defaults, or the umbrella's).
    Chart,
    /// The environment file, `values-<env>.yaml`.
    Environment,
    /// A `-f FILE` given on the command line.
    File,
    /// All `--set` flags together, applied in order.
    Set,
}

/// One input of the merge.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Layer {
    /// How reports name it: a path relative to the repository root, or `--set`.
    pub source: String,
    pub kind: LayerKind,
}

/// A Helm table: shared and mutable, like a Go map.
pub type Table = Rc<RefCell<BTreeMap<String, Node>>>;

/// A value of the tree.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    Map(Table),
}

/// A value and its provenance.
#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    /// The layer that set this value.
    pub origin: LayerId,
    /// Values of lower layers that this one replaced, lowest layer first.
    pub overrode: Vec<Overridden>,
}

/// A value that a higher layer replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Overridden {
    pub layer: LayerId,
    pub value: Plain,
}

pub fn new_table() -> Table {
    Rc::new(RefCell::new(BTreeMap::new()))
}

impl Node {
    pub fn new(value: Value, origin: LayerId) -> Node {
        Node { value, origin, overrode: Vec::new() }
    }

    pub fn table(table: Table, origin: LayerId) -> Node {
        Node::new(Value::Map(table), origin)
    }

    /// The table, if this node is one (Go's `istable`).
    pub fn as_table(&self) -> Option<&Table> {
        match &self.value {
            Value::Map(table) => Some(table),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// Records that this node won over `loser` (a lower layer's value at the
    /// same place): the loser's own history comes first, then the loser.
    /// The same layer and value are not recorded twice: Helm merges some
    /// sections more than once (see `coalesce`), which is not news.
    pub fn note_override(&mut self, loser: &Node) {
        let mut history: Vec<Overridden> = Vec::new();
        let mut push = |entry: Overridden| {
            if !history.contains(&entry) {
                history.push(entry);
            }
        };
        for entry in &loser.overrode {
            push(entry.clone());
        }
        if loser.origin != IMPLICIT {
            push(Overridden { layer: loser.origin, value: to_plain(loser) });
        }
        for entry in self.overrode.drain(..) {
            push(entry);
        }
        let own = Overridden { layer: self.origin, value: to_plain(self) };
        history.retain(|entry| *entry != own);
        self.overrode = history;
    }
}

/// Go's `copystructure.Copy`: a copy that shares nothing with the original.
pub fn deep_copy(node: &Node) -> Node {
    let value = match &node.value {
        Value::Map(table) => Value::Map(deep_copy_table(table)),
        Value::List(items) => Value::List(items.iter().map(deep_copy).collect()),
        other => other.clone(),
    };
    Node { value, origin: node.origin, overrode: node.overrode.clone() }
}

pub fn deep_copy_table(table: &Table) -> Table {
    let copy: BTreeMap<String, Node> =
        table.borrow().iter().map(|(key, node)| (key.clone(), deep_copy(node))).collect();
    Rc::new(RefCell::new(copy))
}

/// Go's `maps.Copy` into a new map: a new table whose entries share their
/// nested tables with the original.
pub fn shallow_copy_table(table: &Table) -> Table {
    Rc::new(RefCell::new(table.borrow().clone()))
}

/// The entries of a table, copied out so that no borrow is held while the
/// caller mutates tables (which may be this one: Go allows that, RefCell
/// would panic).
pub fn entries(table: &Table) -> Vec<(String, Node)> {
    table.borrow().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn get(table: &Table, key: &str) -> Option<Node> {
    table.borrow().get(key).cloned()
}

/// The value without provenance, as JSON (what Helm's `toYaml .Values` shows).
pub fn to_plain(node: &Node) -> Plain {
    match &node.value {
        Value::Null => Plain::Null,
        Value::Bool(b) => Plain::Bool(*b),
        Value::Int(i) => Plain::from(*i),
        // JSON has no NaN or infinity; YAML's .nan and .inf are shown as text.
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or_else(|| Plain::String(f.to_string()), Plain::Number),
        Value::Str(s) => Plain::String(s.clone()),
        Value::List(items) => Plain::Array(items.iter().map(to_plain).collect()),
        Value::Map(table) => table_to_plain(table),
    }
}

pub fn table_to_plain(table: &Table) -> Plain {
    Plain::Object(table.borrow().iter().map(|(k, v)| (k.clone(), to_plain(v))).collect())
}

/// A leaf of the tree: a scalar, a list, or an empty table.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub path: Vec<String>,
    pub node: Node,
}

/// Every leaf under `table`, in key order, with paths relative to it.
pub fn leaves(table: &Table) -> Vec<Leaf> {
    let mut out = Vec::new();
    walk(table, &mut Vec::new(), &mut out, 0);
    out
}

/// Deeper than any real values file; guards against a table that contains
/// itself (Helm never builds one, but a bug must not become a stack overflow).
const MAX_DEPTH: usize = 200;

fn walk(table: &Table, path: &mut Vec<String>, out: &mut Vec<Leaf>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    for (key, node) in entries(table) {
        path.push(key);
        match node.as_table() {
            Some(inner) if !inner.borrow().is_empty() => walk(inner, path, out, depth + 1),
            _ => out.push(Leaf { path: path.clone(), node: node.clone() }),
        }
        path.pop();
    }
}

/// A dotted path for people: segments that contain a dot, a space or a
/// bracket are quoted (`mysql.initdbScripts."ratings.sh"`).
pub fn show_path(path: &[String]) -> String {
    path.iter()
        .map(|segment| {
            if segment.is_empty() || segment.contains(['.', ' ', '[', ']', '"']) {
                format!("{segment:?}")
            } else {
                segment.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A value on one line: strings bare unless they would read as something
/// else, everything else as compact JSON.
pub fn show_value(value: &Plain) -> String {
    match value {
        Plain::String(s) if is_plain_string(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether a string can be printed without quotes and still read as that
/// string (not a number, a boolean, null, empty, or padded).
fn is_plain_string(s: &str) -> bool {
    !s.is_empty()
        && s.trim() == s
        && !s.contains(['\n', '"', '#'])
        && !matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "null" | "~" | "yes" | "no" | "on" | "off")
        && s.parse::<f64>().is_err()
        && !s.starts_with(['{', '[', '&', '*', '!', '|', '>', '\'', '%', '@', '`'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloned_nodes_share_tables_like_go_maps() {
        let table = new_table();
        let a = Node::table(table.clone(), 1);
        let b = a.clone();
        b.as_table().unwrap().borrow_mut().insert("k".into(), Node::new(Value::Int(1), 1));
        assert!(a.as_table().unwrap().borrow().contains_key("k"));
        let c = deep_copy(&a);
        c.as_table().unwrap().borrow_mut().insert("only-c".into(), Node::new(Value::Null, 1));
        assert!(!a.as_table().unwrap().borrow().contains_key("only-c"));
    }

    #[test]
    fn override_history_is_lowest_first_without_repeats() {
        let mut low = Node::new(Value::Int(1), 1);
        let mut mid = Node::new(Value::Int(3), 2);
        mid.note_override(&low);
        let mut top = Node::new(Value::Int(5), 3);
        top.note_override(&mid);
        top.note_override(&mid);
        let layers: Vec<LayerId> = top.overrode.iter().map(|o| o.layer).collect();
        assert_eq!(layers, vec![1, 2]);
        low.note_override(&low.clone());
        assert!(low.overrode.is_empty());
    }

    #[test]
    fn paths_and_values_read_back() {
        assert_eq!(show_path(&["a".into(), "b.c".into()]), "a.\"b.c\"");
        assert_eq!(show_value(&Plain::String("512Mi".into())), "512Mi");
        assert_eq!(show_value(&Plain::String("1.2.6".into())), "1.2.6");
        assert_eq!(show_value(&Plain::String("5".into())), "\"5\"");
        assert_eq!(show_value(&Plain::String("true".into())), "\"true\"");
        assert_eq!(show_value(&Plain::from(5)), "5");
    }
}
