//! Helm's coalescing of values, ported from Helm 4.3.1
//! (`pkg/chart/common/util/coalesce.go` and the dependency processing of
//! `pkg/chart/v2/util/dependencies.go`), on trees that remember provenance.
//!
//! A render computes values in three passes, and all three are reproduced
//! because each changes the answer in some case:
//! 1. [`process_enabled`]: coalesce once to evaluate each dependency's
//!    `condition` and `tags`, and drop disabled subcharts.
//! 2. [`process_import_values`]: every chart with dependencies has its own
//!    values replaced by `MergeValues(chart)`, which keeps `null`s. This is
//!    why a `null` in the umbrella's own values.yaml for a subchart key does
//!    not delete that subchart's default unless a user layer also mentions
//!    the subchart (Helm 4.3.1 behaves so; the tests pin it).
//! 3. [`coalesce_values`] of the user's values (`-f` files merged, then
//!    `--set`) over the chart tree: maps merge, scalars and lists replace,
//!    `null` deletes, `global` is copied into every subchart.
//!
//! Helm's maps are shared where Go shares them ([`super::tree`]), so its
//! quirks come along: nested tables of a parent's `global` are shallow
//! copies, and a subchart's defaults under `global.<a>.<b>` appear in its
//! siblings and the parent too.
//!
//! `import-values` is not applied (no chart of this repository uses it); a
//! dependency that declares it is reported as a note.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use serde_json::Value as Plain;

use super::tree::{
    deep_copy_table, entries, get, new_table, shallow_copy_table, show_path, to_plain, LayerId, Node, Table, Value,
    IMPLICIT,
};

/// A chart as the merge sees it: its values and its (enabled) subcharts.
#[derive(Debug, Clone)]
pub struct ChartNode {
    /// The name its parent knows it by: the dependency's alias, else its name.
    pub name: String,
    /// Where it is, for messages (relative to the repository root).
    pub label: String,
    /// Its values: values.yaml at first, replaced in pass 2.
    pub values: Table,
    /// Chart.yaml's dependencies, in order, aliases applied.
    pub decls: Vec<DependencyDecl>,
    /// The loaded subcharts, in the order of `decls`.
    pub deps: Vec<ChartNode>,
    /// Set for a dependency from a remote repository, whose files are not
    /// read: its own defaults are unknown here.
    pub remote: Option<String>,
}

/// One entry of a Chart.yaml's `dependencies`, as the merge needs it.
#[derive(Debug, Clone)]
pub struct DependencyDecl {
    /// The alias if there is one, else the name.
    pub name: String,
    pub condition: Option<String>,
    pub tags: Vec<String>,
    pub import_values: bool,
    pub enabled: bool,
}

/// A key that a `null` removed from the result.
#[derive(Debug, Clone)]
pub struct Deletion {
    /// Path from the top chart's values.
    pub path: Vec<String>,
    /// The layer whose `null` removed it.
    pub by: LayerId,
    /// What it was, and where that came from.
    pub was: Node,
}

/// Runs the passes; collects deletions (in the final pass only) and Helm's
/// warnings about values of mismatched types.
#[derive(Debug, Default)]
pub struct Coalescer {
    record: bool,
    pub deletions: Vec<Deletion>,
    pub warnings: BTreeSet<String>,
}

impl Coalescer {
    /// Helm's `CoalesceValues(chart, vals)`: a new table, `vals` over the
    /// chart's values and its subcharts'; nulls delete.
    pub fn coalesce_values(&mut self, chart: &ChartNode, vals: &Table) -> Result<Table> {
        let copy = deep_copy_table(vals);
        self.coalesce(chart, &copy, &[], false)?;
        Ok(copy)
    }

    /// Helm's `MergeValues`: like [`Self::coalesce_values`] but nulls are kept.
    fn merge_values(&mut self, chart: &ChartNode, vals: &Table) -> Result<Table> {
        let copy = deep_copy_table(vals);
        self.coalesce(chart, &copy, &[], true)?;
        Ok(copy)
    }

    /// The final pass, whose deletions are recorded for the report.
    pub fn coalesce_final(&mut self, chart: &ChartNode, vals: &Table) -> Result<Table> {
        self.record = true;
        let result = self.coalesce_values(chart, vals);
        self.record = false;
        result
    }

    fn coalesce(&mut self, chart: &ChartNode, dest: &Table, path: &[String], merge: bool) -> Result<()> {
        self.coalesce_chart_values(chart, dest, path, merge);
        self.coalesce_deps(chart, dest, path, merge)
    }

    fn coalesce_deps(&mut self, chart: &ChartNode, dest: &Table, path: &[String], merge: bool) -> Result<()> {
        for sub in &chart.deps {
            let sub_path = join(path, &sub.name);
            let section = match get(dest, &sub.name) {
                None => {
                    let table = new_table();
                    dest.borrow_mut().insert(sub.name.clone(), Node::table(table.clone(), IMPLICIT));
                    table
                }
                Some(node) => match node.as_table() {
                    Some(table) => table.clone(),
                    None => bail!(
                        "{}: the values for subchart {} must be a map, not {} (Helm fails with \"type mismatch on {}\")",
                        show_path(&sub_path),
                        sub.name,
                        serde_json::to_string(&to_plain(&node)).unwrap_or_default(),
                        sub.name
                    ),
                },
            };
            self.coalesce_globals(&section, dest, &sub_path);
            self.coalesce(sub, &section, &sub_path, merge)?;
        }
        Ok(())
    }

    /// Copies the parent's `global` (in `src`) into a subchart's section
    /// (`dest`): the parent's entries win.
    fn coalesce_globals(&mut self, dest: &Table, src: &Table, path: &[String]) {
        let global_path = join(path, "global");
        let dg = match get(dest, "global") {
            None => new_table(),
            Some(node) => match node.as_table() {
                Some(table) => table.clone(),
                None => {
                    self.warn(format!("{}: skipping globals because it is not a map", show_path(&global_path)));
                    return;
                }
            },
        };
        let sg = match get(src, "global") {
            None => new_table(),
            Some(node) => match node.as_table() {
                Some(table) => table.clone(),
                None => {
                    self.warn("global: skipping globals because it is not a map".to_string());
                    return;
                }
            },
        };
        for (key, val) in entries(&sg) {
            if let Some(val_table) = val.as_table() {
                // A shallow copy: its nested tables stay shared with the
                // parent's (Go's `copyMap`), which is where Helm's global
                // leaks between siblings come from.
                let vv = shallow_copy_table(val_table);
                let vv_node =
                    Node { value: Value::Map(vv.clone()), origin: val.origin, overrode: val.overrode.clone() };
                match get(&dg, &key) {
                    None => {
                        dg.borrow_mut().insert(key, vv_node);
                    }
                    Some(existing) => match existing.as_table() {
                        Some(dest_table) => {
                            let dest_table = dest_table.clone();
                            self.coalesce_tables(&vv, &dest_table, &join(&global_path, &key), true);
                            dg.borrow_mut().insert(key, vv_node);
                        }
                        None => self.warn(format!(
                            "{}: cannot merge a map onto a value that is not a map; skipped",
                            show_path(&join(&global_path, &key))
                        )),
                    },
                }
            } else if get(&dg, &key).is_some_and(|n| n.as_table().is_some()) {
                self.warn(format!("{}: is a map; skipped the parent's value", show_path(&join(&global_path, &key))));
            } else {
                let mut node = val.clone();
                if let Some(old) = get(&dg, &key) {
                    node.note_override(&old);
                }
                dg.borrow_mut().insert(key, node);
            }
        }
        let origin = get(dest, "global").map_or(IMPLICIT, |n| n.origin);
        dest.borrow_mut().insert("global".to_string(), Node::table(dg, origin));
    }

    /// `v` (higher priority) over a copy of the chart's own values.
    fn coalesce_chart_values(&mut self, chart: &ChartNode, v: &Table, path: &[String], merge: bool) {
        let vc = deep_copy_table(&chart.values);
        for (key, val) in entries(&vc) {
            let key_path = join(path, &key);
            match get(v, &key) {
                Some(value) => {
                    if value.is_null() && !merge {
                        // A null from a values file or --set removes the
                        // chart's key.
                        v.borrow_mut().remove(&key);
                        self.deleted(key_path, value.origin, val);
                    } else if let Some(dest) = value.as_table() {
                        match val.as_table() {
                            Some(src) => {
                                let merge = merge || chart.deps.iter().any(|d| d.name == key);
                                if !merge {
                                    clean_nil_values(src);
                                }
                                self.coalesce_tables(dest, src, &key_path, merge);
                            }
                            None => {
                                if !val.is_null() {
                                    self.warn(format!(
                                        "{}: skipped the chart's value: not a map",
                                        show_path(&key_path)
                                    ));
                                }
                                self.note(v, &key, &val);
                            }
                        }
                    } else {
                        self.note(v, &key, &val);
                    }
                }
                None => {
                    if !merge {
                        if val.is_null() {
                            continue;
                        }
                        if let Some(table) = val.as_table() {
                            clean_nil_values(table);
                        }
                    }
                    v.borrow_mut().insert(key, val);
                }
            }
        }
    }

    /// Helm's `coalesceTablesFullKey`: `dst` has priority; `src` fills in.
    fn coalesce_tables(&mut self, dst: &Table, src: &Table, path: &[String], merge: bool) {
        if std::rc::Rc::ptr_eq(dst, src) {
            return;
        }
        let src_non_nil: BTreeSet<String> =
            src.borrow().iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k.clone()).collect();
        // Helm overwrites src's entries with the nulls below; the report
        // wants the values they replaced.
        let original = if self.record { entries(src) } else { Vec::new() };
        for (key, val) in entries(dst) {
            if val.is_null() {
                src.borrow_mut().insert(key, Node::new(Value::Null, val.origin));
            }
        }
        for (key, val) in entries(src) {
            let key_path = join(path, &key);
            match get(dst, &key) {
                Some(dv) if !merge && dv.is_null() && src_non_nil.contains(&key) => {
                    dst.borrow_mut().remove(&key);
                    let was = original.iter().find(|(k, _)| *k == key).map_or(val, |(_, v)| v.clone());
                    self.deleted(key_path, dv.origin, was);
                }
                None => {
                    dst.borrow_mut().insert(key, val);
                }
                Some(dv) => {
                    if let Some(val_table) = val.as_table() {
                        match dv.as_table() {
                            Some(dv_table) => {
                                let dv_table = dv_table.clone();
                                self.coalesce_tables(&dv_table, val_table, &key_path, merge);
                            }
                            None => {
                                if !dv.is_null() {
                                    self.warn(format!(
                                        "{}: a value that is not a map replaced the map below it",
                                        show_path(&key_path)
                                    ));
                                }
                                self.note(dst, &key, &val);
                            }
                        }
                    } else {
                        if dv.as_table().is_some() && !val.is_null() {
                            self.warn(format!(
                                "{}: is a map here; a lower layer's value {} was ignored",
                                show_path(&key_path),
                                serde_json::to_string(&to_plain(&val)).unwrap_or_default()
                            ));
                        }
                        if !val.is_null() {
                            self.note(dst, &key, &val);
                        }
                    }
                }
            }
        }
    }

    /// Records that `table[key]` won over `loser`.
    fn note(&mut self, table: &Table, key: &str, loser: &Node) {
        if let Some(winner) = table.borrow_mut().get_mut(key) {
            winner.note_override(loser);
        }
    }

    fn deleted(&mut self, path: Vec<String>, by: LayerId, was: Node) {
        if self.record {
            self.deletions.push(Deletion { path, by, was });
        }
    }

    fn warn(&mut self, message: String) {
        self.warnings.insert(message);
    }
}

fn join(path: &[String], key: &str) -> Vec<String> {
    let mut out = path.to_vec();
    out.push(key.to_string());
    out
}

/// Helm's `cleanNilValues`: removes nulls from a table and the tables in it.
fn clean_nil_values(table: &Table) {
    let mut nested = Vec::new();
    table.borrow_mut().retain(|_, node| {
        if let Some(inner) = node.as_table() {
            nested.push(inner.clone());
        }
        !node.is_null()
    });
    for inner in nested {
        if !std::rc::Rc::ptr_eq(&inner, table) {
            clean_nil_values(&inner);
        }
    }
}

/// Pass 1, Helm's `processDependencyEnabled`: evaluates `tags` and each
/// dependency's `condition` against the coalesced values and removes the
/// disabled subcharts, recursively. A subchart on `keep` (the path to the
/// chart being explained) stays, with a note that Helm would drop it.
pub fn process_enabled(
    coalescer: &mut Coalescer,
    chart: &mut ChartNode,
    vals: &Table,
    path: &str,
    keep: &[String],
    notes: &mut Vec<String>,
) -> Result<()> {
    if chart.decls.is_empty() {
        return Ok(());
    }
    for decl in &mut chart.decls {
        decl.enabled = true;
    }
    let cvals = coalescer.coalesce_values(chart, vals)?;
    process_tags(&mut chart.decls, &cvals);
    process_conditions(&mut chart.decls, &cvals, path);
    let disabled: BTreeSet<String> = chart.decls.iter().filter(|d| !d.enabled).map(|d| d.name.clone()).collect();
    let mut kept_anyway = BTreeSet::new();
    if let Some(first) = keep.first() {
        if disabled.contains(first) {
            notes.push(format!(
                "Helm would not render {first}: its condition or tags disable it in these layers (shown as if enabled)"
            ));
            kept_anyway.insert(first.clone());
        }
    }
    let removed: BTreeSet<String> = disabled.difference(&kept_anyway).cloned().collect();
    chart.deps.retain(|d| !removed.contains(&d.name));
    chart.decls.retain(|d| !removed.contains(&d.name));
    for sub in &mut chart.deps {
        let sub_path = format!("{path}{}.", sub.name);
        let sub_keep: &[String] = if keep.first() == Some(&sub.name) { &keep[1..] } else { &[] };
        process_enabled(coalescer, sub, &cvals, &sub_path, sub_keep, notes)?;
    }
    Ok(())
}

/// Helm's `processDependencyTags`.
fn process_tags(decls: &mut [DependencyDecl], cvals: &Table) {
    let Some(tags) = get(cvals, "tags").and_then(|n| n.as_table().cloned()) else { return };
    for decl in decls.iter_mut() {
        let (mut has_true, mut has_false) = (false, false);
        for tag in &decl.tags {
            if let Some(Node { value: Value::Bool(b), .. }) = get(&tags, tag) {
                if b {
                    has_true = true;
                } else {
                    has_false = true;
                }
            }
        }
        // Helm: disabled only when some tag is false and none is true.
        decl.enabled = has_true || !has_false;
    }
}

/// Helm's `processDependencyConditions`: the first condition path that
/// holds a boolean decides.
fn process_conditions(decls: &mut [DependencyDecl], cvals: &Table, path: &str) {
    for decl in decls.iter_mut() {
        let Some(condition) = decl.condition.as_deref() else { continue };
        for part in condition.trim().split(',') {
            if part.is_empty() {
                continue;
            }
            if let Some(Plain::Bool(b)) = path_value(cvals, &format!("{path}{part}")) {
                decl.enabled = b;
                break;
            }
        }
    }
}

/// Helm's `Values.PathValue`: the value at a dotted path, if it is not a table.
fn path_value(table: &Table, path: &str) -> Option<Plain> {
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last()?;
    let mut current = table.clone();
    for part in parents {
        let next = get(&current, part)?.as_table()?.clone();
        current = next;
    }
    let node = get(&current, last)?;
    match node.value {
        Value::Map(_) => None,
        _ => Some(to_plain(&node)),
    }
}

/// Pass 2, Helm's `processDependencyImportValues` without import-values:
/// children first, every chart that has dependencies gets
/// `MergeValues(chart, {})` as its values.
pub fn process_import_values(coalescer: &mut Coalescer, chart: &mut ChartNode, notes: &mut Vec<String>) -> Result<()> {
    for sub in &mut chart.deps {
        process_import_values(coalescer, sub, notes)?;
    }
    if chart.decls.is_empty() {
        return Ok(());
    }
    for decl in &chart.decls {
        if decl.import_values {
            notes.push(format!(
                "{}: dependency {} declares import-values, which explain does not apply",
                chart.label, decl.name
            ));
        }
    }
    let merged = coalescer.merge_values(chart, &new_table())?;
    chart.values = deep_copy_table(&merged);
    Ok(())
}
