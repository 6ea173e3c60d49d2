//! The house keeps its layers (in the style of rust-analyzer's `tidy.rs`):
//! a `#[test]`, so `cargo test` and CI agree.
//!
//! `xtask/src/` is layers, each a folder (or one file), importing one way:
//! `main.rs` -> `commands/` -> `cli.rs` (the flag groups commands share) ->
//! `ops/` -> `exec/` -> `core/` -> `util/`.
//! This test reads every `crate::` path in the sources (in `use` items and
//! inline, comments left out) and fails, naming the file and the import,
//! when an import runs upward, when one command imports another, or when
//! two modules of the tree (a layer's direct children: `ops::lint`,
//! `core::model`, ...) form a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first; a file may import its own layer and those below.
const LAYERS: [&str; 6] = ["util", "core", "exec", "ops", "cli", "commands"];

/// Where a file sits: its layer (`cli` for cli.rs, `main` for the other
/// top-level files) and the module it belongs to (`ops::lint` for
/// `ops/lint/batch.rs`).
fn place(rel: &str) -> (String, String) {
    let parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
    match parts.as_slice() {
        ["cli"] => ("cli".to_string(), "cli".to_string()),
        [top] => ("main".to_string(), top.to_string()),
        [layer, rest @ ..] => {
            let module = rest.first().map(|m| m.trim_end_matches(".rs")).unwrap_or("mod");
            (layer.to_string(), format!("{layer}::{module}"))
        }
        [] => ("main".to_string(), String::new()),
    }
}

fn rank(layer: &str) -> usize {
    LAYERS.iter().position(|l| *l == layer).unwrap_or(LAYERS.len())
}

/// Every `crate::a::b` path a source names outside comments, as `[a, b]`
/// (the first two segments), with `use crate::{x, y::z}` groups expanded.
fn crate_paths(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            for path in expand(rest) {
                found.push((number + 1, path));
            }
        }
    }
    found
}

/// The paths at the start of `text` (just after `crate::`).
fn expand(text: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0;
        let mut item = String::new();
        let mut items = Vec::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(std::mem::take(&mut item));
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        items.push(item);
        return items.iter().flat_map(|item| expand(item.trim())).collect();
    }
    let first = ident(text);
    if first.is_empty() || first == "self" {
        return Vec::new();
    }
    let after = &text[first.len()..];
    let second = after.strip_prefix("::").map(ident).unwrap_or_default();
    vec![if second.is_empty() { vec![first] } else { vec![first, second] }]
}

/// Problems of a tree of sources, given as (path below `src/`, text).
fn check(files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut where_from: BTreeMap<(String, String), String> = BTreeMap::new();
    for (rel, text) in files {
        let (layer, module) = place(rel);
        for (line, path) in crate_paths(text) {
            let target_layer = path[0].clone();
            let shown = format!("xtask/src/{rel}:{line}: crate::{}", path.join("::"));
            if !LAYERS.contains(&target_layer.as_str()) {
                // main.rs's own modules (differential tests) are for main only.
                if layer != "main" {
                    problems.push(format!("{shown}: imports from main, the top of the tree"));
                }
                continue;
            }
            if layer != "main" && rank(&target_layer) > rank(&layer) {
                problems.push(format!("{shown}: {layer} imports upward from {target_layer}"));
            }
            let target = match path.get(1) {
                Some(second) => format!("{target_layer}::{second}"),
                None => target_layer.clone(),
            };
            if layer == "commands" && target_layer == "commands" && target != module {
                problems.push(format!("{shown}: a command imports another command"));
            }
            if target != module && layer != "main" {
                where_from.entry((module.clone(), target.clone())).or_insert(shown);
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    for cycle in cycles(&edges) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|pair| where_from.get(&(pair[0].clone(), pair[1].clone())).cloned().unwrap_or_default())
            .collect();
        problems.push(format!("import cycle {}:\n    {}", cycle.join(" -> "), steps.join("\n    ")));
    }
    problems
}

/// One cycle (closed: first = last) through each strongly connected group
/// of more than one module.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges.keys().chain(edges.values().flatten()).collect();
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(node) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> = nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for node in &nodes {
        if done.contains(*node) || !reachable[node].contains(*node) {
            continue;
        }
        let group: BTreeSet<String> =
            reachable[node].iter().filter(|other| reachable[*other].contains(*node)).cloned().collect();
        if group.len() < 2 {
            continue;
        }
        done.extend(group.iter().cloned());
        // A shortest way back to `node`, breadth first, inside the group.
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([(*node).clone()]);
        'search: while let Some(at) = queue.pop_front() {
            for next in edges.get(&at).into_iter().flatten().filter(|n| group.contains(*n)) {
                if next == *node {
                    previous.insert("END".into(), at.clone());
                    break 'search;
                }
                if !previous.contains_key(next) {
                    previous.insert(next.clone(), at.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let mut middle = Vec::new();
        let mut at = previous.get("END").cloned().unwrap_or_default();
        while at != **node && !at.is_empty() {
            middle.push(at.clone());
            at = previous.get(&at).cloned().unwrap_or_default();
        }
        middle.reverse();
        let mut path = vec![(*node).clone()];
        path.extend(middle);
        path.push((*node).clone());
        found.push(path);
    }
    found
}

fn sources(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("list the sources").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(base).expect("below src").display().to_string();
            out.push((rel, std::fs::read_to_string(&path).expect("read a source")));
        }
    }
}

#[test]
fn imports_run_one_way_and_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    let problems = check(&files);
    assert!(problems.is_empty(), "the layers of xtask/src are broken:\n{}", problems.join("\n"));
}

#[test]
fn an_upward_import_a_command_to_command_import_and_a_cycle_are_named() {
    let file = |rel: &str, text: &str| (rel.to_string(), text.to_string());
    let problems = check(&[
        file("core/model.rs", "use crate::ops::lint::Report;\nuse crate::util::{fs, yaml::Seg};\n"),
        file("commands/lint.rs", "fn f() { crate::commands::package::run(); }\n"),
        file("ops/a.rs", "use crate::{ops::b::x, core::model};\n// crate::ops::c is only a comment\n"),
        file("ops/b/mod.rs", "pub fn x() { crate::ops::a::y() }\n"),
    ]);
    let shown = problems.join("\n");
    assert!(shown.contains("xtask/src/core/model.rs:1: crate::ops::lint: core imports upward from ops"), "{shown}");
    assert!(
        shown.contains("xtask/src/commands/lint.rs:1: crate::commands::package: a command imports another"),
        "{shown}"
    );
    assert!(shown.contains("import cycle ops::a -> ops::b -> ops::a"), "{shown}");
    assert!(!shown.contains("ops::c") && !shown.contains("util"), "comments and downward imports are fine: {shown}");
    assert_eq!(problems.len(), 3, "{shown}");
}
