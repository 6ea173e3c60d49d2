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

use crate::util::fs::sha256_hex;

/// Helm refuses charts that unpack to more than this (its
/// `MaxDecompressedChartSize`); so do we, so a hostile archive cannot fill memory.
const MAX_UNPACKED_BYTES: u64 = 100 * 1024 * 1024;

/// An archive may unpack to at most this many times its own size (and at
/// least [`MIN_UNPACKED_ALLOWANCE`]): chart text compresses 5 to 10 times, a
/// decompression bomb a thousand times and more.
const MAX_EXPANSION: u64 = 200;

/// Small archives may always unpack to this much.
const MIN_UNPACKED_ALLOWANCE: u64 = 16 * 1024 * 1024;

/// Checks an archive that came from outside (a registry, a mirror, a
/// vendored `charts/*.tgz` of a pull request) before anything uses it:
/// every entry is a plain file or folder whose path is relative and has no
/// `..`, and the whole unpacks to no more than [`MAX_EXPANSION`] times the
/// archive's size (and Helm's own limit). The error names the entry.
pub fn check_untrusted(path: &Path) -> Result<()> {
    let size = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    let limit = size.saturating_mul(MAX_EXPANSION).clamp(MIN_UNPACKED_ALLOWANCE, MAX_UNPACKED_BYTES);
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let shown = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let decoder = Bounded { inner: flate2::read::GzDecoder::new(file), left: limit, limit, size };
    let mut tar = tar::Archive::new(decoder);
    for entry in tar.entries().with_context(|| format!("{shown}: not a chart archive"))? {
        let mut entry = entry.with_context(|| format!("{shown}: unreadable archive entry"))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        check_entry(&entry, &name).map_err(|reason| anyhow::anyhow!("{shown}: entry {name:?} {reason}: refused"))?;
        std::io::copy(&mut entry, &mut std::io::sink())
            .with_context(|| format!("{shown}: entry {name:?} cannot be read"))?;
    }
    Ok(())
}

/// A reader that fails, saying why, once more than `limit` bytes came
/// through: the tar reader then stops at once, whichever entry it is in.
struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
    size: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(n)
            }
            None => Err(std::io::Error::other(format!(
                "unpacks to more than {} bytes ({MAX_EXPANSION} times its {} bytes, or Helm's limit): refused",
                self.limit, self.size
            ))),
        }
    }
}

/// Why an entry of an untrusted archive cannot be used, if it cannot.
fn check_entry<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<(), &'static str> {
    let kind = entry.header().entry_type();
    if !(kind.is_file() || kind.is_dir() || kind.is_pax_global_extensions() || kind.is_pax_local_extensions()) {
        return Err(if kind.is_symlink() || kind.is_hard_link() { "is a link" } else { "is not a file or folder" });
    }
    let path = Path::new(name);
    if name.starts_with('/') || name.starts_with('\\') || path.is_absolute() {
        return Err("has an absolute path");
    }
    if path.components().any(|c| matches!(c, std::path::Component::ParentDir)) || name.split('\\').any(|p| p == "..") {
        return Err("climbs out with ..");
    }
    Ok(())
}

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
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        check_entry(&entry, &raw).map_err(|reason| anyhow::anyhow!("entry {raw:?} {reason}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive of raw entries: (name, kind, link target, content).
    fn archive(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> tempfile::NamedTempFile {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best()));
        for (name, kind, link, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_gnu_mut().expect("gnu").name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            if !link.is_empty() {
                header.set_link_name(link).expect("link");
            }
            header.set_cksum();
            builder.append(&header, *data).expect("append");
        }
        let bytes = builder.into_inner().expect("tar").finish().expect("gzip");
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), bytes).expect("write");
        file
    }

    const CHART: (&str, tar::EntryType, &str, &[u8]) =
        ("a/Chart.yaml", tar::EntryType::Regular, "", b"apiVersion: v2\nname: a\nversion: 1.0.0\n");

    #[test]
    fn untrusted_archives_hold_plain_files_below_their_root() {
        let reason = |entry| format!("{:#}", check_untrusted(archive(&[CHART, entry]).path()).unwrap_err());
        assert!(check_untrusted(archive(&[CHART, ("a/templates/", tar::EntryType::Directory, "", b"")]).path()).is_ok());
        assert!(reason(("a/../../x", tar::EntryType::Regular, "", b"x")).contains("climbs out with .."));
        assert!(reason(("/etc/cron.d/x", tar::EntryType::Regular, "", b"x")).contains("absolute path"));
        assert!(reason(("a/NOTES.txt", tar::EntryType::Symlink, "/etc/passwd", b"")).contains("is a link"));
        assert!(reason(("a/x", tar::EntryType::Link, "a/Chart.yaml", b"")).contains("is a link"));
        assert!(reason(("a/dev", tar::EntryType::Char, "", b"")).contains("not a file or folder"));
        // `inspect` (our own and registry archives) refuses the same.
        let bytes =
            std::fs::read(archive(&[CHART, ("a/../../x", tar::EntryType::Regular, "", b"x")]).path()).expect("read");
        assert!(format!("{:#}", inspect(&bytes).unwrap_err()).contains("climbs out"));
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let zeros = vec![0u8; (MIN_UNPACKED_ALLOWANCE + 1024) as usize];
        let bomb = archive(&[CHART, ("a/templates/zeros.yaml", tar::EntryType::Regular, "", &zeros)]);
        assert!(std::fs::metadata(bomb.path()).expect("stat").len() < 100 * 1024, "it compresses well");
        let err = format!("{:#}", check_untrusted(bomb.path()).unwrap_err());
        assert!(err.contains("unpacks to more than"), "{err}");
    }
}
