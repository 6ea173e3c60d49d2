//! Validating rendered manifests with kubeconform, each distinct document
//! once per run and Kubernetes version.
//!
//! kubeconform judges every document of a file on its own: the verdict is a
//! function of the document's text, the schema it picks for the document's
//! kind at one Kubernetes version, and the flags. The renders of one run
//! repeat documents a lot: an environment of an umbrella renders each
//! service's Service, ServiceAccount and NetworkPolicy exactly as the
//! service's own check did, unless that environment changes them. Measured on
//! the benchmark's 200 services with two environments: of 3,264 documents
//! validated per Kubernetes version, 1,386 were distinct.
//!
//! So a batched run splits each rendered file into the documents kubeconform
//! reads from it (its own splitting rule, ported in [`documents`]), keys each
//! by its text (the `# Source:` path helm prints, a comment, left out), and
//! hands kubeconform one file per document it has not judged yet in this run.
//! A file's problems are its documents' problems in file order. One file per
//! document makes every problem belong to exactly one document, whatever
//! kubeconform can or cannot read of it.
//!
//! `--no-batch` does not come here: it runs kubeconform on each rendered file
//! as it is, the reference the differential tests compare this with.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::exec::kubeconform;
use crate::exec::tools::Toolset;
use crate::util::fs;

/// The documents judged in this run: (Kubernetes version, document key) ->
/// kubeconform's problems with it.
pub struct Validations {
    dir: PathBuf,
    judged: Mutex<HashMap<(String, String), Vec<String>>>,
}

impl Validations {
    /// Documents are written under `<work>/validate/`, emptied first so that
    /// the folder holds one run's documents only.
    pub fn new(work_dir: &Path) -> Result<Validations> {
        let dir = work_dir.join("validate");
        if dir.symlink_metadata().is_ok() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        Ok(Validations { dir, judged: Mutex::new(HashMap::new()) })
    }

    /// Validates `files` for `kube`: every file gets an entry, empty when all
    /// its documents are valid. Starts at most one kubeconform process, none
    /// when every document was judged before. The duration is kubeconform's.
    pub fn validate(
        &self,
        tools: &Toolset,
        kube: &str,
        files: &[PathBuf],
    ) -> Result<(Duration, BTreeMap<PathBuf, Vec<String>>)> {
        // Read and key every document first, without holding the table:
        // the other Kubernetes version validates at the same time.
        let mut keys_per_file: Vec<(PathBuf, Vec<String>)> = Vec::new();
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        for file in files {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            let mut keys = Vec::new();
            // An empty document is reported empty by kubeconform, never a problem.
            for document in documents(&text).into_iter().filter(|d| !d.trim().is_empty()) {
                let key = key_of(document);
                texts.entry(key.clone()).or_insert_with(|| document.to_string());
                keys.push(key);
            }
            keys_per_file.push((file.clone(), keys));
        }
        {
            let judged = self.judged.lock().unwrap_or_else(|e| e.into_inner());
            texts.retain(|key, _| !judged.contains_key(&(kube.to_string(), key.clone())));
        }
        // Documents to judge now: key -> the file holding it alone. The file
        // name is the key: the text is the same for every Kubernetes
        // version, written once per run.
        let mut fresh: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (key, document) in texts {
            let path = self.dir.join(format!("{key}.yaml"));
            if !path.exists() {
                fs::write_atomic(&path, document.as_bytes())?;
            }
            fresh.insert(key, path);
        }

        let mut duration = Duration::ZERO;
        if !fresh.is_empty() {
            let paths: Vec<PathBuf> = fresh.values().cloned().collect();
            let (finished, problems) = kubeconform::validate(tools, kube, &paths)?;
            duration = finished.duration;
            let mut judged = self.judged.lock().unwrap_or_else(|e| e.into_inner());
            for (key, path) in fresh {
                let found = problems.get(&path).cloned().unwrap_or_default();
                judged.insert((kube.to_string(), key), found);
            }
        }

        let judged = self.judged.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = BTreeMap::new();
        for (file, keys) in keys_per_file {
            let problems: Vec<String> = keys
                .iter()
                .flat_map(|key| judged.get(&(kube.to_string(), key.clone())).cloned().unwrap_or_default())
                .collect();
            out.insert(file, problems);
        }
        Ok((duration, out))
    }
}

/// The documents kubeconform reads from a file, in order (its
/// `SplitYAMLDocument`, from Kubernetes' YAML reader): a document ends
/// before a line that starts with `---`, and that line is dropped. A last
/// separator line without a newline ends the reading there: kubeconform's
/// scanner stops without returning the document before it either.
fn documents(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(at) = rest.find("\n---") else {
            found.push(rest);
            break;
        };
        let after = &rest[at + 4..];
        if after.is_empty() {
            found.push(&rest[..at]);
            break;
        }
        let Some(end) = after.find('\n') else { break };
        found.push(&rest[..at]);
        rest = &after[end + 1..];
    }
    found
}

/// A document's key: the hash of its text with the path of helm's leading
/// `# Source:` comment left out, so that a service's Service rendered alone
/// and inside an umbrella is one document. Only a comment in the document's
/// first line (or the line after a bare `---`) is helm's: anywhere else the
/// same text could be the content of a block scalar.
fn key_of(document: &str) -> String {
    let (marker, body) = match document.strip_prefix("---\n") {
        Some(body) => ("---\n", body),
        None => ("", document),
    };
    let normalised = match body.strip_prefix("# Source: ") {
        Some(after) => format!("{marker}# Source:\n{}", after.split_once('\n').map(|(_, rest)| rest).unwrap_or("")),
        None => document.to_string(),
    };
    fs::sha256_hex(normalised.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_like_kubeconform() {
        let text = "---\n# Source: a/x.yaml\nkind: A\n---\n# Source: a/y.yaml\nkind: B\n\n";
        assert_eq!(documents(text), vec!["---\n# Source: a/x.yaml\nkind: A", "# Source: a/y.yaml\nkind: B\n\n"]);
        // Any line starting with --- separates; the rest of that line is dropped.
        assert_eq!(documents("a: 1\n--- # note\nb: 2\n"), vec!["a: 1", "b: 2\n"]);
        assert_eq!(documents("a: 1\n----\nb: 2"), vec!["a: 1", "b: 2"]);
        // A separator at the very end ends the last document.
        assert_eq!(documents("a: 1\n---"), vec!["a: 1"]);
        // An unterminated separator line at the end: kubeconform reads nothing more.
        assert_eq!(documents("a: 1\n---x"), Vec::<&str>::new());
        assert_eq!(documents(""), Vec::<&str>::new());
    }

    #[test]
    fn keys_ignore_only_helms_source_path() {
        let alone = "# Source: svc/templates/service.yaml\nkind: Service\n";
        let inside = "# Source: shop/charts/svc/templates/service.yaml\nkind: Service\n";
        assert_eq!(key_of(alone), key_of(inside));
        assert_eq!(key_of(&format!("---\n{alone}")), key_of(&format!("---\n{inside}")));
        // Leading marker, other content, or a comment further down keep documents apart.
        assert_ne!(key_of(alone), key_of(&format!("---\n{alone}")));
        assert_ne!(key_of(alone), key_of("# Source: svc/templates/service.yaml\nkind: Secret\n"));
        assert_ne!(key_of("kind: A\n# Source: x\n"), key_of("kind: A\n# Source: y\n"));
        assert_ne!(key_of("--- |\n# Source: x\n"), key_of("--- |\n# Source: y\n"));
    }
}
