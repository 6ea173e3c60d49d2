//! Publishing archives to an OCI registry with `helm push`.
//!
//! First every chart is looked up in the registry (a `helm pull` of that
//! version into a scratch folder): absent means push, present with the same
//! archive digest or the same content means skip, present with other content
//! is a conflict. Conflicts stop the run before anything is pushed. Then the
//! absent ones are pushed in topological order, so a registry never holds a
//! chart whose repository dependency is missing. Credentials are Helm's own
//! (`helm registry login`, Helm's registry config file), never handled here.
//!
//! With a cosign key, each chart is signed by its manifest digest right
//! after its push, before the next chart is pushed; the key is loaded (its
//! password checked) before anything is pushed, and a version already in
//! the registry is signed when it carries no signature by this key yet, so
//! running the same command again finishes a run that stopped half-way.

use anyhow::{Context as _, Result};

use super::build::Built;
use crate::core::archive;
use crate::core::model::Repo;
use crate::exec::process;
use crate::exec::tools::Tool;
use crate::util::exit::{EnvironmentError, UsageError};

/// What happened to one chart in the registry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub chart: String,
    pub version: String,
    /// `pushed` or `skipped`.
    pub action: &'static str,
    /// `oci://HOST/PATH/NAME:VERSION`.
    pub reference: String,
    /// The OCI manifest digest Helm reported (`sha256:...`), when pushed or pulled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Checks that `url` is an `oci://HOST/PATH` reference; returns it without a
/// trailing `/`.
pub fn check_url(url: &str) -> Result<String> {
    let trimmed = url.trim_end_matches('/');
    match trimmed.strip_prefix("oci://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(trimmed.to_string()),
        _ => Err(UsageError(format!(
            "--publish {url:?}: expected oci://HOST/PATH, e.g. oci://ghcr.io/acme/charts or oci://127.0.0.1:5000/charts"
        ))
        .into()),
    }
}

/// cosign signing of the pushed digests (`--cosign-key`).
pub struct Cosign {
    tool: Tool,
    key: std::path::PathBuf,
    /// The key's public half, derived from it, for checking what is already signed.
    public: tempfile::NamedTempFile,
}

impl Cosign {
    /// Installs cosign if needed and loads the key (with `COSIGN_PASSWORD`):
    /// a wrong password fails here, before anything is packaged or pushed.
    pub fn prepare(ctx: &crate::core::context::Context, key: &std::path::Path) -> Result<Cosign> {
        if !key.is_file() {
            return crate::util::exit::usage(format!("--cosign-key {}: no such file", key.display()));
        }
        let tool = crate::exec::tools::ensure_cosign(ctx)?;
        let pem = crate::exec::cosign::public_key(&tool, key)?;
        let mut public = tempfile::NamedTempFile::new().context("cannot create a file for the cosign public key")?;
        std::io::Write::write_all(&mut public, pem.as_bytes())?;
        Ok(Cosign { tool, key: key.to_path_buf(), public })
    }

    /// Signs `name@digest` in `url` unless (`check`) a signature by this key is there.
    fn sign(&self, url: &str, name: &str, digest: Option<&str>, plain_http: bool, check: bool) -> Result<bool> {
        let digest = digest.with_context(|| format!("{name}: helm printed no digest, so there is nothing to sign"))?;
        let reference = crate::exec::cosign::by_digest(url, name, digest);
        if check && crate::exec::cosign::verify(&self.tool, self.public.path(), &reference, plain_http)?.is_ok() {
            return Ok(false);
        }
        crate::exec::cosign::sign(&self.tool, &self.key, &reference, plain_http)?;
        Ok(true)
    }
}

enum Found {
    Absent,
    Same { manifest_digest: Option<String>, note: Option<String> },
    Different { remote_digest: String },
}

/// Publishes `built` (in topological order) to `url`.
pub fn publish(
    repo: &Repo,
    helm: &Tool,
    built: &[Built],
    url: &str,
    plain_http: bool,
    cosign: Option<&Cosign>,
    progress: &dyn Fn(&str),
) -> Result<Vec<Published>> {
    let scratch = tempfile::tempdir().context("cannot create a scratch folder for registry look-ups")?;
    let mut plan = Vec::new();
    let mut conflicts = Vec::new();
    for item in built {
        let chart = &repo.charts[item.chart];
        let found = look_up(helm, url, plain_http, &chart.name, &chart.version.to_string(), item, scratch.path())?;
        if let Found::Different { remote_digest } = &found {
            conflicts.push(format!(
                "  {}: {url}/{}:{} holds other content (archive digest {} there, {} here); {}",
                chart.name,
                chart.name,
                chart.version,
                short(remote_digest),
                short(&item.info.digest),
                super::version::raise_hint(chart)
            ));
        }
        plan.push((item, found));
    }
    if !conflicts.is_empty() {
        anyhow::bail!(
            "publish refused, nothing was pushed: the registry already has these versions with other content\n{}\nA published version never changes: commit the raised versions and publish again.",
            conflicts.join("\n")
        );
    }

    let mut done: Vec<Published> = Vec::new();
    for (item, found) in plan {
        let chart = &repo.charts[item.chart];
        let version = chart.version.to_string();
        let reference = format!("{url}/{}:{version}", chart.name);
        match found {
            Found::Same { manifest_digest, note } => {
                progress(&format!("skip {} {version}: {reference} already holds it", chart.name));
                if let Some(cosign) = cosign {
                    if cosign.sign(url, &chart.name, manifest_digest.as_deref(), plain_http, true)? {
                        progress(&format!(
                            "signed {} {version} with cosign (it had no signature by this key)",
                            chart.name
                        ));
                    }
                }
                done.push(Published {
                    chart: chart.name.clone(),
                    version,
                    action: "skipped",
                    reference,
                    manifest_digest,
                    note,
                });
            }
            Found::Absent => {
                let signed = |digest: Option<String>| match cosign {
                    Some(cosign) => cosign.sign(url, &chart.name, digest.as_deref(), plain_http, false).map(|_| digest),
                    None => Ok(digest),
                };
                let manifest_digest = push(helm, url, plain_http, item).and_then(signed).map_err(|err| {
                    let pushed: Vec<String> = done
                        .iter()
                        .filter(|p| p.action == "pushed")
                        .map(|p| format!("{} {}", p.chart, p.version))
                        .collect();
                    err.context(format!(
                        "{}: push to {url} failed{}; run the same command again: versions already there are skipped (and signed if they are not)",
                        chart.name,
                        if pushed.is_empty() {
                            String::new()
                        } else {
                            format!(" (already pushed: {})", pushed.join(", "))
                        }
                    ))
                })?;
                progress(&format!("pushed {} {version} to {reference}", chart.name));
                done.push(Published {
                    chart: chart.name.clone(),
                    version,
                    action: "pushed",
                    reference,
                    manifest_digest,
                    note: None,
                });
            }
            // Conflicts stopped the run above, before anything was pushed.
            Found::Different { .. } => {}
        }
    }
    Ok(done)
}

/// Is this version in the registry, and with what content?
fn look_up(
    helm: &Tool,
    url: &str,
    plain_http: bool,
    name: &str,
    version: &str,
    item: &Built,
    scratch: &std::path::Path,
) -> Result<Found> {
    let dest = scratch.join(format!("{name}-{version}"));
    std::fs::create_dir_all(&dest)?;
    let sh = xshell::Shell::new()?;
    let helm_path = &helm.path;
    let reference = format!("{url}/{name}");
    let plain = plain_http.then_some("--plain-http");
    let finished = process::run(
        xshell::cmd!(sh, "{helm_path} pull {reference} --version {version} --destination {dest} {plain...}"),
        None,
    )?;
    if !finished.success {
        let output = finished.combined();
        // The registry answers 404 for an unknown tag or repository; Helm
        // (through oras) reports it as "...: not found".
        if output.lines().any(|l| l.trim_end().ends_with("not found")) {
            return Ok(Found::Absent);
        }
        let host = url.trim_start_matches("oci://").split('/').next().unwrap_or_default();
        return Err(EnvironmentError(format!(
            "{name}: cannot look up {reference}:{version} in the registry:\n{}\nhint: check that the registry is reachable; if it needs credentials run `helm registry login {host}`; a registry over plain HTTP (e.g. on loopback) needs --plain-http",
            crate::ops::stage::strip_registry_noise(&output)
        ))
        .into());
    }
    let manifest_digest = digest_line(&finished.stdout);
    let pulled = std::fs::read_dir(&dest)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .with_context(|| format!("{name}: helm pull of {reference}:{version} wrote no archive"))?;
    let remote = archive::read(&pulled)?;
    if remote.digest == item.info.digest {
        Ok(Found::Same { manifest_digest, note: None })
    } else if remote.content_digest == item.info.content_digest {
        Ok(Found::Same {
            manifest_digest,
            note: Some("same files, archive packed differently (another SOURCE_DATE_EPOCH or Helm version)".into()),
        })
    } else {
        Ok(Found::Different { remote_digest: remote.digest })
    }
}

/// `helm push`; returns the manifest digest Helm prints.
fn push(helm: &Tool, url: &str, plain_http: bool, item: &Built) -> Result<Option<String>> {
    let sh = xshell::Shell::new()?;
    let helm_path = &helm.path;
    let archive = &item.path;
    let plain = plain_http.then_some("--plain-http");
    let finished = process::run_ok(xshell::cmd!(sh, "{helm_path} push {archive} {url} {plain...}"), None)?;
    Ok(digest_line(&finished.stdout).or_else(|| digest_line(&finished.stderr)))
}

/// The `Digest: sha256:...` line Helm prints after a push or pull.
fn digest_line(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.trim().strip_prefix("Digest:")).map(|d| d.trim().to_string())
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}
