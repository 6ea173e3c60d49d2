//! What a staged chart tree contains that decides how it may be rendered:
//! whether any template reads `.Capabilities` (or any chart declares
//! `kubeVersion`), and which files define which named templates.
//!
//! Read from the staged tree (following its links) and from inside remote
//! dependency archives, so it sees every file helm loads. The answers are
//! conservative: a file helm would skip (`.helmignore`) is still read, which
//! can only make a render look less safe to share, never more.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// Facts about one chart tree (a chart and everything under its `charts/`).
#[derive(Debug, Clone, Default)]
pub struct TreeFacts {
    /// Some template mentions `Capabilities`, or some Chart.yaml declares
    /// `kubeVersion`: its render may differ between Kubernetes versions.
    pub kube_dependent: bool,
    /// Named template (`define` or `block`) -> SHA-256 of each distinct file
    /// that defines it. One hash per name means that whichever subset of the
    /// tree helm loads, a name resolves to the same text.
    pub defines: BTreeMap<String, BTreeSet<String>>,
    /// An archive inside an archive: not looked into, so nothing is known.
    pub opaque: bool,
    /// Some Chart.yaml mentions `import-values`: rendering merges subchart
    /// values into the parent's, which `helm lint` does not do.
    pub imports_values: bool,
}

impl TreeFacts {
    /// Every named template is defined by one file content only.
    pub fn defines_are_unique(&self) -> bool {
        !self.opaque && self.defines.values().all(|files| files.len() == 1)
    }

    /// A digest of the define table, for cache keys: a change to any file
    /// that defines a template changes it.
    pub fn defines_fingerprint(&self) -> String {
        let mut text = String::new();
        for (name, files) in &self.defines {
            text.push_str(name);
            for file in files {
                text.push(' ');
                text.push_str(file);
            }
            text.push('\n');
        }
        crate::util::fs::sha256_hex(text.as_bytes())
    }

    fn visit(&mut self, rel: &str, bytes: &[u8]) {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if name == "Chart.yaml" {
            let text = String::from_utf8_lossy(bytes);
            if text.lines().any(|l| l.trim_start().starts_with("kubeVersion:")) {
                self.kube_dependent = true;
            }
            if text.contains("import-values") {
                self.imports_values = true;
            }
        } else if rel.split('/').any(|part| part == "templates") {
            let text = String::from_utf8_lossy(bytes);
            if text.contains("Capabilities") {
                self.kube_dependent = true;
            }
            let defined = defined_names(&text);
            if !defined.is_empty() {
                let hash = crate::util::fs::sha256_hex(bytes);
                for name in defined {
                    self.defines.entry(name).or_default().insert(hash.clone());
                }
            }
        }
    }
}

/// Each staged tree read once per run: a batch asks about a chart's tree
/// when it plans the renders and again when it decides whether lint has
/// validated the chart's schemas. `None` when the tree cannot be read,
/// which callers treat as the unsafe answer.
#[derive(Default)]
pub struct Memo(std::sync::Mutex<BTreeMap<PathBuf, Option<std::sync::Arc<TreeFacts>>>>);

impl Memo {
    pub fn scan(&self, dir: &Path) -> Option<std::sync::Arc<TreeFacts>> {
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(dir).cloned();
        if let Some(facts) = known {
            return facts;
        }
        // Read outside the lock; two workers reading one tree at once only
        // repeat work.
        let facts = scan(dir).ok().map(std::sync::Arc::new);
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(dir.to_path_buf(), facts.clone());
        facts
    }
}

/// Reads the tree of the chart at `dir` (a staged folder: links are followed).
pub fn scan(dir: &Path) -> Result<TreeFacts> {
    let mut facts = TreeFacts::default();
    let mut seen = BTreeSet::new();
    scan_dir(dir, "", &mut facts, &mut seen)?;
    Ok(facts)
}

/// Reads a remote dependency archive (`.tgz`) as a tree.
pub fn scan_archive(path: &Path, facts: &mut TreeFacts) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().with_context(|| format!("{}: not a chart archive", path.display()))? {
        let mut entry = entry.with_context(|| format!("{}: unreadable archive entry", path.display()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let rel = entry.path()?.to_string_lossy().into_owned();
        if rel.ends_with(".tgz") {
            facts.opaque = true;
            continue;
        }
        let interesting = rel.ends_with("Chart.yaml") || rel.split('/').any(|p| p == "templates");
        if interesting {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            facts.visit(&rel, &bytes);
        }
    }
    Ok(())
}

/// `seen` holds the folders (by where their links lead) already read: every
/// service of an umbrella links the same staged library, which is read once
/// instead of once per service (the facts are the same either way).
fn scan_dir(dir: &Path, rel: &str, facts: &mut TreeFacts, seen: &mut BTreeSet<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        // `is_dir`/`is_file` follow links, as helm does in a staged tree.
        if path.is_dir() {
            if name.starts_with('.') {
                continue;
            }
            // Only links can lead to a folder read before.
            if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                let target = std::fs::read_link(&path).map(|t| dir.join(t)).unwrap_or_else(|_| path.clone());
                if !seen.insert(target) {
                    continue;
                }
            }
            scan_dir(&path, &child_rel, facts, seen)?;
        } else if name.ends_with(".tgz") && rel.ends_with("charts") {
            scan_archive(&path, facts)?;
        } else if name == "Chart.yaml" || child_rel.split('/').any(|p| p == "templates") {
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            facts.visit(&child_rel, &bytes);
        }
    }
    Ok(())
}

/// The names a template file defines with `define "name"` or `block "name"`.
fn defined_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for keyword in ["define", "block"] {
        let mut rest = text;
        while let Some(at) = rest.find(keyword) {
            let after = &rest[at + keyword.len()..];
            // Only inside an action: `{{ define`, `{{- define`.
            let before = rest[..at].trim_end_matches([' ', '\t', '-']);
            if before.ends_with("{{") {
                let trimmed = after.trim_start();
                if let Some(quoted) = trimmed.strip_prefix('"') {
                    if let Some(end) = quoted.find('"') {
                        names.push(quoted[..end].to_string());
                    }
                }
            }
            rest = after;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_defines_and_kube_dependence() {
        let text = "{{/* x */}}\n{{- define \"a.b\" -}}x{{- end -}}\n{{ block \"c\" . }}y{{ end }}\n{{ include \"not.a.define\" . }}";
        assert_eq!(defined_names(text), ["a.b", "c"]);
        let mut facts = TreeFacts::default();
        facts.visit("x/templates/_a.tpl", text.as_bytes());
        assert!(!facts.kube_dependent);
        facts.visit("x/charts/y/templates/_b.tpl", b"{{ define \"a.b\" }}other{{ end }}");
        assert!(!facts.defines_are_unique(), "two different files define a.b");
        facts.visit("x/templates/d.yaml", b"{{ if .Capabilities.APIVersions.Has \"x\" }}{{ end }}");
        assert!(facts.kube_dependent);
        assert!(!facts.imports_values);
        facts.visit("x/charts/y/Chart.yaml", b"dependencies:\n  - name: z\n    import-values: [data]\n");
        assert!(facts.imports_values, "a subchart that imports values is seen");
    }
}
