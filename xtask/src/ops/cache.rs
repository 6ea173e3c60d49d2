//! The content-addressed result cache (in the spirit of Turborepo and Nx).
//!
//! A chart's key is a SHA-256 over everything that can change its verdict:
//! its files, the keys of its repository dependencies and the bytes of its
//! remote dependency archives, the values files and flags of the run, and the
//! versions of helm, kubeconform, the schemas and this tool. A result is
//! stored only when the chart passed (a failure is re-checked on the next run,
//! so a flaky network never sticks), written atomically, and re-read with its
//! key checked: an entry that does not parse or does not match is deleted and
//! the chart is checked again, never trusted.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::util::fs;

/// Bump when the meaning of a stored result changes.
const FORMAT: &str = "robot-shop-xtask lint cache v1";

/// One stored verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry<T> {
    pub format: String,
    pub key: String,
    pub chart: String,
    pub result: T,
}

/// The cache folder (`<work>/cache`): persist it between CI runs.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    /// The stored result for `key`, if there is a sound one.
    pub fn get<T: for<'de> Deserialize<'de>>(&self, key: &str, chart: &str) -> Option<T> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<Entry<T>>(&bytes) {
            Ok(entry) if entry.format == FORMAT && entry.key == key && entry.chart == chart => Some(entry.result),
            _ => {
                // Corrupt, truncated by a crash of another tool, or from an
                // older format: never trust it, and do not keep tripping on it.
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    pub fn put<T: Serialize>(&self, key: &str, chart: &str, result: &T) -> Result<()> {
        let entry = Entry { format: FORMAT.to_string(), key: key.to_string(), chart: chart.to_string(), result };
        fs::write_atomic(&self.path(key), &serde_json::to_vec_pretty(&entry)?)
    }
}

/// Builds a key from labelled parts; labels keep two different inputs that
/// happen to share bytes from colliding.
#[derive(Clone)]
pub struct KeyBuilder {
    hasher: Sha256,
}

impl Default for KeyBuilder {
    fn default() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(FORMAT.as_bytes());
        hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
        KeyBuilder { hasher }
    }
}

impl KeyBuilder {
    pub fn add(&mut self, label: &str, value: &[u8]) -> &mut Self {
        self.hasher.update((label.len() as u64).to_le_bytes());
        self.hasher.update(label.as_bytes());
        self.hasher.update((value.len() as u64).to_le_bytes());
        self.hasher.update(value);
        self
    }

    pub fn finish(self) -> String {
        fs::hex(&self.hasher.finalize())
    }
}

/// Hashes the files of a chart folder as Helm would package them: every file
/// below `dir` except the `charts/` folder (dependencies are keyed by their own
/// keys) and what the chart's `.helmignore` excludes.
pub fn hash_chart_files(dir: &Path, ignored: &dyn Fn(&str, bool) -> bool) -> Result<String> {
    let mut files = Vec::new();
    collect(dir, dir, ignored, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for (rel, path) in files {
        let bytes = std::fs::read(&path)?;
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update(Sha256::digest(&bytes));
    }
    Ok(fs::hex(&hasher.finalize()))
}

fn collect(
    root: &Path,
    dir: &Path,
    ignored: &dyn Fn(&str, bool) -> bool,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let rel = crate::core::model::relative(root, &path);
        let is_dir = path.is_dir();
        if (dir == root && (rel == "charts" || rel == "Chart.lock" || rel == "tmpcharts")) || ignored(&rel, is_dir) {
            continue;
        }
        if is_dir {
            collect(root, &path, ignored, out)?;
        } else {
            out.push((rel, path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_entries_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let key = "ab".repeat(32);
        cache.put(&key, "cart", &vec![1, 2, 3]).unwrap();
        assert_eq!(cache.get::<Vec<i32>>(&key, "cart"), Some(vec![1, 2, 3]));
        assert_eq!(cache.get::<Vec<i32>>(&key, "user"), None, "an entry for another chart is not trusted");
        cache.put(&key, "cart", &vec![1]).unwrap();
        std::fs::write(cache.path(&key), b"{\"format\": trunc").unwrap();
        assert_eq!(cache.get::<Vec<i32>>(&key, "cart"), None);
        assert!(!cache.path(&key).exists(), "corrupt entry is deleted");
    }

    #[test]
    fn labels_separate_inputs() {
        let mut a = KeyBuilder::default();
        a.add("x", b"ab").add("y", b"c");
        let mut b = KeyBuilder::default();
        b.add("x", b"a").add("y", b"bc");
        assert_ne!(a.finish(), b.finish());
    }
}
