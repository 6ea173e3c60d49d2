//! Verifying signed charts in OCI registries: Helm's provenance (the `.prov`
//! layer `helm push` uploads, checked by `helm verify` with a gpg public
//! keyring) and cosign signatures on the manifest digest (checked by
//! `cosign verify` with a public key, offline).
//!
//! Two callers: staging, which refuses a remote dependency under a
//! `[trust]` prefix of xtask.toml unless it verifies ([`Verifier::require`]),
//! and `package --verify` (`ops/published.rs`), which checks every version
//! in a registry ([`Verifier::check`]). Both remember what verified under
//! `<work>/trust/`, keyed by content and keys: the archive's SHA-256 (staging,
//! so a warm lint reads a file and starts no process and no request) or the
//! manifest digest (`--verify`, which lists the registry anyway), each with
//! the fingerprint of the key files. A failure is never remembered.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::core::config::TrustKeys;
use crate::core::context::Context;
use crate::core::model::{Chart, Dependency};
use crate::exec::oci::{self, Client, Reference};
use crate::exec::tools::{self, Tool};
use crate::exec::{cosign, process};
use crate::util::fs;

/// Helm's OCI layer of the chart archive.
pub const CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// Helm's OCI layer of the provenance file (`helm push` adds it when the
/// archive has a `.prov` beside it).
pub const PROV_LAYER: &str = "application/vnd.cncf.helm.chart.provenance.v1.prov";
/// How long one chart's registry requests may take in all.
const REGISTRY_DEADLINE: Duration = Duration::from_secs(60);

/// The public keys a chart must be signed with; at least one is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// A gpg public keyring: the Helm provenance must verify with it.
    pub keyring: Option<PathBuf>,
    /// A cosign public key: the manifest digest's signature must verify with it.
    pub cosign_pub: Option<PathBuf>,
}

impl Keys {
    /// The keys of a `[trust]` entry, as files inside the repository (a
    /// link out of it is refused like any other hostile path).
    pub fn from_config(ctx: &Context, keys: &TrustKeys) -> Result<Keys> {
        let file = |rel: &Option<String>| -> Result<Option<PathBuf>> {
            let Some(rel) = rel else { return Ok(None) };
            let path = fs::join_inside(&ctx.root, rel)?;
            fs::inside(&ctx.root, &path).with_context(|| format!("xtask.toml [trust]: key file {rel}"))?;
            Ok(Some(path))
        };
        Ok(Keys { keyring: file(&keys.keyring)?, cosign_pub: file(&keys.cosign_key)? })
    }

    /// What a message names as the expected keys.
    pub fn describe(&self, ctx: &Context) -> String {
        let mut parts = Vec::new();
        if let Some(keyring) = &self.keyring {
            parts.push(format!("Helm provenance by a key of the gpg keyring {}", ctx.shown(keyring)));
        }
        if let Some(public) = &self.cosign_pub {
            parts.push(format!("a cosign signature by the key {}", ctx.shown(public)));
        }
        parts.join(" and ")
    }

    /// The SHA-256 of the key files' bytes: a changed key is a new cache key.
    fn fingerprint(&self) -> Result<String> {
        let mut text = String::new();
        for (kind, path) in [("gpg", &self.keyring), ("cosign", &self.cosign_pub)] {
            if let Some(path) = path {
                let bytes =
                    std::fs::read(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
                text.push_str(&format!("{kind}:{}\n", fs::sha256_hex(&bytes)));
            }
        }
        Ok(fs::sha256_hex(text.as_bytes()))
    }
}

/// A chart version that verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verified {
    /// The OCI manifest digest (what cosign signed).
    pub manifest_digest: String,
    /// The chart archive's digest (the chart layer).
    pub archive_digest: String,
    /// Its Chart.yaml dependencies, for `--verify` to follow.
    pub dependencies: Vec<Dependency>,
    /// Found in the cache: no process was started.
    #[serde(skip)]
    pub cached: bool,
}

/// Checks signatures; one per run, shared by the charts staged at once.
pub struct Verifier<'a> {
    ctx: &'a Context,
    helm: &'a Tool,
    /// cosign, installed on first need (a `[trust]` with only gpg keys never needs it).
    cosign: OnceLock<Result<Tool, String>>,
}

impl<'a> Verifier<'a> {
    pub fn new(ctx: &'a Context, helm: &'a Tool) -> Self {
        Verifier { ctx, helm, cosign: OnceLock::new() }
    }

    fn cosign(&self) -> Result<&Tool> {
        self.cosign
            .get_or_init(|| tools::ensure_cosign(self.ctx).map_err(|err| format!("{err:#}")))
            .as_ref()
            .map_err(|err| crate::util::exit::EnvironmentError(err.clone()).into())
    }

    fn marker(&self, kind: &str, digest: &str, keys: &Keys) -> Result<PathBuf> {
        let key = fs::sha256_hex(format!("{kind}\n{digest}\n{}", keys.fingerprint()?).as_bytes());
        Ok(self.ctx.work_dir.join("trust").join(key))
    }

    /// Staging's check of a remote dependency (`declared` in Chart.yaml,
    /// fetched from `effective`, a mirror's or the same): nothing unless its declared
    /// repository is under a `[trust]` prefix; then the archive about to be
    /// staged must be the one the registry holds under that version,
    /// signed with the prefix's keys. The error names the chart, the
    /// dependency, its version, the repository and the keys expected.
    pub fn require(
        &self,
        chart: &Chart,
        dep: &Dependency,
        version: &str,
        archive: &Path,
        declared: &str,
        effective: &str,
    ) -> Result<()> {
        let Some((prefix, trusted)) = self.ctx.config.trust_for(declared) else {
            return Ok(());
        };
        let keys = Keys::from_config(self.ctx, trusted)?;
        let bytes = std::fs::read(archive).with_context(|| format!("cannot read {}", archive.display()))?;
        let archive_digest = oci::sha256_digest(&bytes);
        let marker = self.marker("archive", &archive_digest, &keys)?;
        if marker.is_file() {
            return Ok(());
        }
        let refuse = |reason: String| {
            let via = if effective != declared { format!(" (fetched through {effective})") } else { String::new() };
            anyhow::anyhow!(
                "{}/Chart.yaml: dependency {} {version} from {}{via} refused by [trust] {prefix:?} of xtask.toml: {reason}\nexpected: {}",
                chart.rel,
                dep.name,
                declared,
                keys.describe(self.ctx)
            )
        };
        if !effective.starts_with("oci://") {
            return Err(refuse(format!("{effective} is not an OCI registry, so it carries no signatures to check")));
        }
        match self.check(effective, &dep.name, version, &keys, Some(&archive_digest), false)? {
            Ok(_) => fs::write_atomic(&marker, archive_digest.as_bytes()),
            Err(reason) => Err(refuse(reason)),
        }
    }

    /// Checks `name:version` in the OCI repository `url` (`oci://HOST/PATH`)
    /// against `keys`: `Ok(Err(reason))` when it is unsigned or does not
    /// verify; `Err` when the registry cannot be asked (exit 3). With
    /// `archive_digest`, the chart layer must be exactly those bytes.
    pub fn check(
        &self,
        url: &str,
        name: &str,
        version: &str,
        keys: &Keys,
        archive_digest: Option<&str>,
        plain_http: bool,
    ) -> Result<Result<Verified, String>> {
        let deadline = Instant::now() + REGISTRY_DEADLINE;
        let reference = Reference::parse(&format!("{}/{name}", url.trim_end_matches('/')))
            .map_err(crate::util::exit::UsageError)?;
        let client = Client::new(reference.clone(), plain_http, false, 1);
        let unreachable = |err: anyhow::Error| {
            crate::util::exit::EnvironmentError(format!("cannot read {reference}:{version} from the registry: {err:#}"))
        };
        client.ping(deadline).map_err(unreachable)?;
        // Helm tags `+` in a version as `_` (OCI tags cannot hold `+`).
        let tag = version.replace('+', "_");
        let Some((manifest, manifest_digest)) = client.manifest(&tag, deadline).map_err(unreachable)? else {
            return Ok(Err(format!("{reference}:{version} is not in the registry")));
        };
        let layers = Layers::read(&manifest).map_err(|err| format!("{reference}:{version}: {err}"));
        let layers = match layers {
            Ok(layers) => layers,
            Err(reason) => return Ok(Err(reason)),
        };
        if let Some(expected) = archive_digest {
            if layers.chart != expected {
                return Ok(Err(format!(
                    "the registry's archive of this version ({}) is not the one being used ({expected}): re-pushed with other content, or another archive under the same version",
                    layers.chart
                )));
            }
        }
        let marker = self.marker("manifest", &manifest_digest, keys)?;
        if let Some(mut verified) =
            std::fs::read(&marker).ok().and_then(|bytes| serde_json::from_slice::<Verified>(&bytes).ok())
        {
            verified.cached = true;
            return Ok(Ok(verified));
        }

        let archive = client.blob_up_to(&layers.chart, oci::ARCHIVE_LIMIT, deadline).map_err(unreachable)?;
        let info = match crate::core::archive::inspect(&archive) {
            Ok(info) => info,
            Err(err) => return Ok(Err(format!("the chart layer is not a chart archive: {err:#}"))),
        };
        if let Some(keyring) = &keys.keyring {
            let Some(prov) = &layers.prov else {
                return Ok(Err("unsigned: the artifact has no Helm provenance (.prov) layer".into()));
            };
            let prov = client.blob(prov, deadline).map_err(unreachable)?;
            if let Err(reason) = self.helm_verify(name, version, &archive, &prov, keyring)? {
                return Ok(Err(reason));
            }
        }
        if let Some(public) = &keys.cosign_pub {
            let signed = cosign::by_digest(url, name, &manifest_digest);
            let plain = plain_http || reference.is_loopback();
            if let Err(reason) = cosign::verify(self.cosign()?, public, &signed, plain)? {
                return Ok(Err(reason));
            }
        }
        let dependencies = info
            .chart_yaml
            .get("dependencies")
            .cloned()
            .and_then(|deps| yaml_serde::from_value::<Vec<Dependency>>(deps).ok())
            .unwrap_or_default();
        let verified = Verified { manifest_digest, archive_digest: layers.chart, dependencies, cached: false };
        fs::write_atomic(&marker, &serde_json::to_vec(&verified)?)?;
        Ok(Ok(verified))
    }

    /// `helm verify` of the archive with its provenance beside it, as Helm
    /// checks a chart it pulls with `--verify`.
    fn helm_verify(
        &self,
        name: &str,
        version: &str,
        archive: &[u8],
        prov: &[u8],
        keyring: &Path,
    ) -> Result<Result<(), String>> {
        let scratch = tempfile::tempdir().context("cannot create a scratch folder for helm verify")?;
        let file = scratch.path().join(format!("{name}-{version}.tgz"));
        std::fs::write(&file, archive)?;
        std::fs::write(scratch.path().join(format!("{name}-{version}.tgz.prov")), prov)?;
        let sh = xshell::Shell::new()?;
        let helm = &self.helm.path;
        let finished = process::run(xshell::cmd!(sh, "{helm} verify {file} --keyring {keyring}"), None)?;
        if finished.success {
            return Ok(Ok(()));
        }
        let output = finished.combined();
        let line = output.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("helm verify failed");
        let line = line.trim_start_matches("Error:").trim();
        let why = if line.contains("sha256 sum does not match") {
            "the archive is not the one its provenance signed (tampered or re-pushed)"
        } else if line.contains("unknown entity") || line.contains("signature") {
            "the provenance is signed by a key that is not in the keyring"
        } else {
            "the Helm provenance does not verify"
        };
        Ok(Err(format!("{why} (helm verify: {line})")))
    }
}

/// The digests of a Helm chart manifest's layers.
struct Layers {
    chart: String,
    prov: Option<String>,
}

impl Layers {
    fn read(manifest: &[u8]) -> Result<Layers, String> {
        let value: serde_json::Value =
            serde_json::from_slice(manifest).map_err(|err| format!("the manifest is not JSON: {err}"))?;
        let layer = |kind: &str| {
            value["layers"].as_array().into_iter().flatten().find_map(|layer| {
                (layer["mediaType"].as_str() == Some(kind)).then(|| layer["digest"].as_str().map(str::to_string))?
            })
        };
        let chart =
            layer(CHART_LAYER).ok_or_else(|| "not a Helm chart: the manifest has no chart layer".to_string())?;
        Ok(Layers { chart, prov: layer(PROV_LAYER) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_manifests_name_their_chart_and_provenance_layers() {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": "sha256:c"},
            "layers": [
                {"mediaType": PROV_LAYER, "digest": "sha256:p"},
                {"mediaType": CHART_LAYER, "digest": "sha256:a"}
            ]
        });
        let layers = Layers::read(manifest.to_string().as_bytes()).expect("a chart");
        assert_eq!((layers.chart.as_str(), layers.prov.as_deref()), ("sha256:a", Some("sha256:p")));
        let unsigned = serde_json::json!({"layers": [{"mediaType": CHART_LAYER, "digest": "sha256:a"}]});
        assert_eq!(Layers::read(unsigned.to_string().as_bytes()).expect("a chart").prov, None);
        let image = serde_json::json!({"layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:x"}]});
        assert!(Layers::read(image.to_string().as_bytes()).err().unwrap_or_default().contains("no chart layer"));
    }
}
