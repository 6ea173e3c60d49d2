//! Fetching release files over HTTP(S): short timeouts so an unreachable
//! host fails in seconds (the caller then builds the tool instead), the
//! `XTASK_DOWNLOAD_BASE` override for mirrors and tests, and checksum files.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};

/// Replaces the scheme and host of every release URL, e.g.
/// `http://127.0.0.1:8080` or `https://mirror.example/helm`.
pub const BASE_ENV: &str = "XTASK_DOWNLOAD_BASE";

/// Checksum files are a few lines; anything bigger is not one.
const CHECKSUM_FILE_LIMIT: u64 = 1024 * 1024;

/// Why a download did not happen: the source is unreachable or does not
/// have the file. The caller may fall back to another source; anything
/// else (a checksum mismatch, a full disk) is an error and never a fallback.
#[derive(Debug)]
pub struct Unavailable(pub String);

/// An HTTP client that gives up quickly on unreachable hosts but lets a
/// slow, working download finish.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_resolve(Some(Duration::from_secs(3)))
        .timeout_connect(Some(Duration::from_secs(3)))
        .timeout_recv_response(Some(Duration::from_secs(20)))
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// `url` with its scheme and host replaced by `$XTASK_DOWNLOAD_BASE`, if set.
pub fn rebase(url: &str) -> String {
    match std::env::var(BASE_ENV) {
        Ok(base) if !base.trim().is_empty() => rebase_onto(url, &base),
        _ => url.to_string(),
    }
}

fn rebase_onto(url: &str, base: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path = url[after_scheme..].find('/').map_or("", |i| &url[after_scheme + i..]);
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// Downloads a small text file (a checksum list).
pub fn text(agent: &ureq::Agent, url: &str) -> Result<String, Unavailable> {
    let response = agent.get(url).call().map_err(|err| Unavailable(format!("{url}: {err}")))?;
    response
        .into_body()
        .with_config()
        .limit(CHECKSUM_FILE_LIMIT)
        .read_to_string()
        .map_err(|err| Unavailable(format!("{url}: {err}")))
}

/// Streams `url` into `dest` and returns the SHA-256 (lowercase hex) of
/// what was written. An unreachable host or an HTTP error is
/// `Ok(Err(Unavailable))`; failing to write `dest` is an `Err`.
pub fn to_file(agent: &ureq::Agent, url: &str, dest: &Path) -> Result<Result<String, Unavailable>> {
    let response = match agent.get(url).call() {
        Ok(response) => response,
        Err(err) => return Ok(Err(Unavailable(format!("{url}: {err}")))),
    };
    let mut reader = response.into_body().into_reader();
    let mut file = std::fs::File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            // A connection that breaks halfway is the source's problem, not ours.
            Err(err) => return Ok(Err(Unavailable(format!("{url}: {err}")))),
        };
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n]).with_context(|| format!("cannot write {}", dest.display()))?;
    }
    file.sync_all().with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(Ok(crate::util::fs::hex(&hasher.finalize())))
}

/// The expected SHA-256 for `file_name` in a checksum file: either
/// `<sha256>  <name>` lines (sha256sum and goreleaser format, `*name` for
/// binary mode) or a file holding just the hash.
pub fn expected_sha256(checksums: &str, file_name: &str) -> Option<String> {
    let is_hash = |word: &str| word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit());
    let lines: Vec<Vec<&str>> = checksums
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|words| !words.is_empty())
        .collect();
    for words in &lines {
        if let [hash, name] = words.as_slice() {
            if is_hash(hash) && name.trim_start_matches('*') == file_name {
                return Some(hash.to_ascii_lowercase());
            }
        }
    }
    match lines.as_slice() {
        [only] if only.len() == 1 && is_hash(only[0]) => Some(only[0].to_ascii_lowercase()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_replaces_scheme_and_host_only() {
        assert_eq!(
            rebase_onto("https://get.helm.sh/helm-v4.3.1-linux-amd64.tar.gz", "http://127.0.0.1:9/"),
            "http://127.0.0.1:9/helm-v4.3.1-linux-amd64.tar.gz"
        );
        assert_eq!(
            rebase_onto(
                "https://github.com/yannh/kubeconform/releases/download/v0.7.0/CHECKSUMS",
                "https://m.example/gh"
            ),
            "https://m.example/gh/yannh/kubeconform/releases/download/v0.7.0/CHECKSUMS"
        );
    }

    #[test]
    fn checksum_files_in_both_formats() {
        let hash = "a".repeat(64);
        let list = format!("{}  other.tar.gz\n{hash}  helm.tar.gz\n", "b".repeat(64));
        assert_eq!(expected_sha256(&list, "helm.tar.gz"), Some(hash.clone()));
        assert_eq!(expected_sha256(&format!("{hash} *helm.tar.gz"), "helm.tar.gz"), Some(hash.clone()));
        assert_eq!(expected_sha256(&format!("{hash}\n"), "helm.tar.gz"), Some(hash.clone()));
        assert_eq!(expected_sha256(&list, "missing.tar.gz"), None);
        assert_eq!(expected_sha256("<html>not found</html>", "helm.tar.gz"), None);
    }
}
