//! Reading a chart archive (`.tgz`) in-process: its Chart.yaml for the index,
//! its digest, and a digest of its content that ignores how it was packed.
//!
//! Two archives of the same chart content can differ in their bytes (file
//! times when `SOURCE_DATE_EPOCH` was not set, another gzip level), so "same
//! content" is decided on the files inside, not on the archive's hash.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::fsutil::sha256_hex;

/// Helm refuses charts that unpack to more than this (its
/// `MaxDecompressedChartSize`); so do we, so a hostile archive cannot fill memory.
const MAX_UNPACKED_BYTES: u64 = 100 * 1024 * 1024;

/// What the tool needs to know about one archive.
#[derive(Debug, Clone)]
pub struct ArchiveInfo {
    /// SHA-256 of the archive file: the `digest` in index.yaml and the OCI
    /// layer digest in a registry.
    pub digest: String,
    /// SHA-256 over the sorted (path, content hash) list of the files inside.
    pub content_digest: String,
    /// The top-level `Chart.yaml`, as Helm wrote it into the archive.
    pub chart_yaml: yaml_serde::Mapping,
}

/// Reads an archive file.
pub fn read(path: &Path) -> Result<ArchiveInfo> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    inspect(&bytes).with_context(|| format!("{}: not a readable chart archive", path.display()))
}

/// Reads archive bytes.
pub fn inspect(bytes: &[u8]) -> Result<ArchiveInfo> {
    let digest = sha256_hex(bytes);
    let decoder = flate2::read::GzDecoder::new(bytes).take(MAX_UNPACKED_BYTES + 1);
    let mut tar = tar::Archive::new(decoder);
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut chart_yaml = None;
    let mut total = 0u64;
    for entry in tar.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path()?.to_string_lossy().replace('\\', "/");
        let mut content = Vec::new();
        entry.read_to_end(&mut content)?;
        total += content.len() as u64;
        if total > MAX_UNPACKED_BYTES {
            anyhow::bail!("unpacks to more than {MAX_UNPACKED_BYTES} bytes");
        }
        // `<chart>/Chart.yaml` is the chart's own; deeper ones are dependencies'.
        if name.matches('/').count() == 1 && name.ends_with("/Chart.yaml") {
            chart_yaml = Some(yaml_serde::from_slice::<yaml_serde::Mapping>(&content)?);
        }
        files.insert(name, sha256_hex(&content));
    }
    let listing: String = files.iter().map(|(name, hash)| format!("{hash}  {name}\n")).collect();
    Ok(ArchiveInfo {
        digest,
        content_digest: sha256_hex(listing.as_bytes()),
        chart_yaml: chart_yaml.context("no <chart>/Chart.yaml at the top of the archive")?,
    })
}
