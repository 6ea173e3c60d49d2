//! cosign, key-based and offline: signing a pushed chart's OCI manifest by
//! its digest, and checking such a signature with a public key.
//!
//! Never a transparency log, a certificate authority or the public TUF
//! root: `--use-signing-config=false --tlog-upload=false` when signing
//! (cosign v3 otherwise fetches a signing configuration from the network),
//! `--insecure-ignore-tlog` when verifying (the signatures were never
//! logged, so there is nothing to look up). The key's password comes from
//! `COSIGN_PASSWORD`, cosign's own variable, which the child inherits: it is
//! never on a command line. Registry credentials are cosign's (docker's
//! config), and a registry on loopback is spoken to over plain HTTP.

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::exec::process;
use crate::exec::tools::Tool;

/// `HOST/PATH/NAME@sha256:...`: what cosign signs, by digest, never by tag
/// (a tag can be moved to other content after it was signed).
pub fn by_digest(url: &str, chart: &str, digest: &str) -> String {
    format!("{}/{chart}@{digest}", url.trim_start_matches("oci://").trim_end_matches('/'))
}

/// The registry flags: plain HTTP for a registry on loopback, or when
/// asked for (as `exec/oci.rs` speaks to registries).
fn registry_flags(reference: &str, plain_http: bool) -> Vec<&'static str> {
    if plain_http || super::oci::is_loopback_host(reference.split('/').next().unwrap_or_default()) {
        vec!["--allow-http-registry"]
    } else {
        Vec::new()
    }
}

/// The public key of a private key file: loads (and so decrypts with
/// `COSIGN_PASSWORD`) the key, so a wrong password or a broken file stops a
/// publish before anything is pushed.
pub fn public_key(cosign: &Tool, key: &Path) -> Result<String> {
    let sh = xshell::Shell::new()?;
    let bin = &cosign.path;
    let finished = process::run(xshell::cmd!(sh, "{bin} public-key --key {key}"), None)?;
    if !finished.success {
        anyhow::bail!(
            "cosign cannot load the key {} (is COSIGN_PASSWORD set to its password?):\n{}",
            key.display(),
            finished.combined().trim()
        );
    }
    Ok(finished.stdout)
}

/// Signs `reference` (by digest) with `key`, uploading the signature to
/// the registry beside it.
pub fn sign(cosign: &Tool, key: &Path, reference: &str, plain_http: bool) -> Result<()> {
    let sh = xshell::Shell::new()?;
    let bin = &cosign.path;
    let registry = registry_flags(reference, plain_http);
    let finished = process::run(
        xshell::cmd!(
            sh,
            "{bin} sign --yes --key {key} --use-signing-config=false --tlog-upload=false {registry...} {reference}"
        ),
        None,
    )
    .context("cannot start cosign sign")?;
    if !finished.success {
        anyhow::bail!("cosign sign {reference} failed:\n{}", finished.combined().trim());
    }
    Ok(())
}

/// Checks the signature on `reference` (by digest) with the public key
/// `public`: `Ok(Err(reason))` when it is missing or made by another key.
pub fn verify(cosign: &Tool, public: &Path, reference: &str, plain_http: bool) -> Result<Result<(), String>> {
    let sh = xshell::Shell::new()?;
    let bin = &cosign.path;
    let registry = registry_flags(reference, plain_http);
    let finished = process::run(
        xshell::cmd!(sh, "{bin} verify --key {public} --insecure-ignore-tlog=true {registry...} {reference}"),
        None,
    )
    .context("cannot start cosign verify")?;
    if finished.success {
        return Ok(Ok(()));
    }
    Ok(Err(reason(&finished.combined())))
}

/// The line of cosign's output that says why, without its warnings.
fn reason(output: &str) -> String {
    let lines: Vec<&str> =
        output.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("WARNING")).collect();
    let error = lines.iter().rev().find(|l| l.starts_with("Error:")).or(lines.last());
    let text = error.map_or("cosign verify failed", |l| l.trim_start_matches("Error:").trim());
    if text.contains("no signatures found") {
        format!("unsigned: no cosign signature on this digest (cosign: {text})")
    } else if text.contains("do not match threshold") || text.contains("no matching") {
        format!("the cosign signature is not by the expected key (cosign: {text})")
    } else {
        format!("the cosign signature does not verify (cosign: {text})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_say_unsigned_or_other_key() {
        // What cosign v3.1.3 prints, checked against a loopback registry.
        let unsigned = "WARNING: Skipping tlog verification is an insecure practice\nError: no signatures found\nerror during command execution: no signatures found\n";
        assert!(reason(unsigned).starts_with("unsigned: "), "{}", reason(unsigned));
        let other = "Error: no matching attestations: failed to verify signature: could not verify envelope: accepted signatures do not match threshold, Found: 0, Expected 1\nerror during command execution: x\n";
        assert!(reason(other).starts_with("the cosign signature is not by the expected key"), "{}", reason(other));
        assert_eq!(
            by_digest("oci://127.0.0.1:5000/charts/", "app", "sha256:ab"),
            "127.0.0.1:5000/charts/app@sha256:ab"
        );
    }
}
