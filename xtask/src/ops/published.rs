//! `cargo xtask package --verify oci://HOST/PATH`: check every version of
//! every chart published there, and the registry dependencies of each,
//! against the keys given (or those `[trust]` names for the registry).
//!
//! The charts are the registry's repositories right below PATH (the
//! distribution API's catalog); a registry that refuses the catalog (many
//! hosted ones do) is asked for the charts of this repository by name. The
//! versions are every tag that is a semantic version (cosign's
//! `sha256-....sig` tags are not charts). Each is checked by
//! [`trust::Verifier::check`]; a dependency under `oci://` is checked at its
//! exact version (a range: the newest matching tag), with the `[trust]` keys
//! of its repository when there are some, else with the same keys. Nothing
//! is pulled by tag into the chart cache and nothing is written but the
//! verified-digest cache.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::core::context::{Context, Format};
use crate::core::model::Repo;
use crate::exec::oci::{Client, Reference};
use crate::ops::stage::Stager;
use crate::ops::trust::{Keys, Verifier};
use crate::util::exit::{self, EnvironmentError, UsageError};

/// Options of `package --verify`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// `oci://HOST/PATH`.
    pub url: String,
    /// A gpg public keyring [default: the `[trust]` entry's].
    pub keyring: Option<PathBuf>,
    /// A cosign public key [default: the `[trust]` entry's].
    pub cosign_pub: Option<PathBuf>,
    /// Plain HTTP to a registry off loopback (one on loopback always is).
    pub plain_http: bool,
    /// FROM=TO, for dependencies declared in unreachable registries.
    pub mirrors: Vec<String>,
}

/// One checked chart version.
#[derive(Debug, Serialize)]
struct Checked {
    chart: String,
    version: String,
    /// `oci://HOST/PATH` it was read from.
    repository: String,
    /// `verified` or `failed`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Found in the verified-digest cache: nothing was run for it.
    cached: bool,
    /// `CHART VERSION` that depends on it, for dependencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    required_by: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    command: &'static str,
    ok: bool,
    url: String,
    verified: usize,
    failed: usize,
    charts: Vec<Checked>,
}

/// One chart version still to check.
struct Work {
    url: String,
    name: String,
    version: String,
    keys: Keys,
    required_by: Option<String>,
}

pub fn run(opts: Opts, ctx: &Context) -> Result<()> {
    let reference = Reference::parse(opts.url.trim_end_matches('/')).map_err(UsageError)?;
    let url = reference.to_string();
    let keys = keys_for(ctx, &url, opts.keyring.clone(), opts.cosign_pub.clone())?;
    let tools = crate::exec::tools::ensure(ctx, &[])?;
    let stager = Stager::new(ctx, &tools.helm, ctx.config.mirrors_with(&opts.mirrors)?);
    let verifier = Verifier::new(ctx, &tools.helm);
    let deadline = Instant::now() + Duration::from_secs(120);

    let mut queue: VecDeque<Work> = VecDeque::new();
    for name in chart_names(ctx, &reference, opts.plain_http, deadline)? {
        for version in versions(&url, &name, opts.plain_http, deadline)? {
            queue.push_back(Work {
                url: url.clone(),
                name: name.clone(),
                version,
                keys: keys.clone(),
                required_by: None,
            });
        }
    }
    if queue.is_empty() {
        return Err(UsageError(format!("{url}: no chart versions found there (nothing to verify)")).into());
    }

    let mut seen = BTreeSet::new();
    let mut checked = Vec::new();
    while let Some(work) = queue.pop_front() {
        if !seen.insert((work.url.clone(), work.name.clone(), work.version.clone())) {
            continue;
        }
        let outcome = verifier.check(&work.url, &work.name, &work.version, &work.keys, None, opts.plain_http)?;
        let parent = format!("{} {}", work.name, work.version);
        let mut entry = Checked {
            chart: work.name.clone(),
            version: work.version.clone(),
            repository: work.url.clone(),
            status: "verified",
            digest: None,
            reason: None,
            cached: false,
            required_by: work.required_by.clone(),
        };
        match outcome {
            Ok(verified) => {
                entry.digest = Some(verified.manifest_digest.clone());
                entry.cached = verified.cached;
                for dep in &verified.dependencies {
                    let Some(declared) = dep.repository.as_deref().filter(|r| r.starts_with("oci://")) else {
                        continue;
                    };
                    let source = stager.source_for(declared);
                    let range = dep.version.clone().unwrap_or_default();
                    let next = match exact_or_newest(&source.effective, &dep.name, &range, opts.plain_http, deadline) {
                        Ok(Some(version)) => version,
                        Ok(None) => {
                            checked.push(failed(
                                &dep.name,
                                &range,
                                &source.effective,
                                &parent,
                                "no version in the registry matches",
                            ));
                            continue;
                        }
                        Err(err) => return Err(err),
                    };
                    let dep_keys = match ctx.config.trust_for(&source.declared) {
                        Some((_, trusted)) => Keys::from_config(ctx, trusted)?,
                        None => work.keys.clone(),
                    };
                    queue.push_back(Work {
                        url: source.effective.clone(),
                        name: dep.name.clone(),
                        version: next,
                        keys: dep_keys,
                        required_by: Some(parent.clone()),
                    });
                }
            }
            Err(reason) => {
                entry.status = "failed";
                entry.reason = Some(reason);
            }
        }
        checked.push(entry);
    }

    let failed_count = checked.iter().filter(|c| c.status == "failed").count();
    let report = Report {
        command: "package --verify",
        ok: failed_count == 0,
        url: url.clone(),
        verified: checked.len() - failed_count,
        failed: failed_count,
        charts: checked,
    };
    match ctx.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        _ => {
            for c in &report.charts {
                let from = c
                    .required_by
                    .as_ref()
                    .map(|p| format!(" (dependency of {p}, {})", c.repository))
                    .unwrap_or_default();
                match &c.reason {
                    None => println!(
                        "ok    {} {}{from}: {}{}",
                        c.chart,
                        c.version,
                        c.digest.as_deref().unwrap_or(""),
                        if c.cached { " (verified before)" } else { "" }
                    ),
                    Some(reason) => println!("FAIL  {} {}{from}: {reason}", c.chart, c.version),
                }
            }
            eprintln!(
                "verify    {url}: {} verified, {} failed ({})",
                report.verified,
                report.failed,
                keys.describe(ctx)
            );
        }
    }
    if failed_count > 0 {
        return Err(exit::ChecksFailed.into());
    }
    Ok(())
}

fn failed(name: &str, version: &str, url: &str, parent: &str, reason: &str) -> Checked {
    Checked {
        chart: name.to_string(),
        version: version.to_string(),
        repository: url.to_string(),
        status: "failed",
        digest: None,
        reason: Some(reason.to_string()),
        cached: false,
        required_by: Some(parent.to_string()),
    }
}

/// The keys from the flags, else from the `[trust]` entry covering `url`.
fn keys_for(ctx: &Context, url: &str, keyring: Option<PathBuf>, cosign_pub: Option<PathBuf>) -> Result<Keys> {
    if keyring.is_some() || cosign_pub.is_some() {
        for path in [&keyring, &cosign_pub].into_iter().flatten() {
            if !path.is_file() {
                return exit::usage(format!("{}: no such key file", path.display()));
            }
        }
        return Ok(Keys { keyring, cosign_pub });
    }
    match ctx.config.trust_for(url) {
        Some((_, trusted)) => Keys::from_config(ctx, trusted),
        None => exit::usage(format!(
            "--verify {url}: no keys to verify with: give --keyring PUBRING and/or --cosign-pub FILE, or a [trust.\"{url}\"] entry in xtask.toml"
        )),
    }
}

/// The charts below the registry path: the catalog's repositories one
/// level below it, else (no catalog) this repository's chart names.
fn chart_names(ctx: &Context, reference: &Reference, plain_http: bool, deadline: Instant) -> Result<Vec<String>> {
    let client = Client::new(reference.clone(), plain_http, false, 1);
    client
        .ping(deadline)
        .map_err(|err| EnvironmentError(format!("{reference}: the registry does not answer: {err:#}")))?;
    let prefix = format!("{}/", reference.repository);
    if let Ok(repositories) = client.catalog(deadline) {
        let mut names: Vec<String> = repositories
            .iter()
            .filter_map(|r| r.strip_prefix(&prefix))
            .filter(|name| !name.contains('/'))
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        return Ok(names);
    }
    let repo = Repo::discover(&ctx.root, &ctx.config)?;
    Ok(repo.charts.iter().map(|c| c.name.clone()).collect())
}

/// The chart versions tagged in `url/name`, oldest first (OCI tags spell
/// a version's `+` as `_`; other tags are not chart versions).
fn versions(url: &str, name: &str, plain_http: bool, deadline: Instant) -> Result<Vec<String>> {
    let reference = Reference::parse(&format!("{url}/{name}")).map_err(UsageError)?;
    let client = Client::new(reference.clone(), plain_http, false, 1);
    client
        .ping(deadline)
        .map_err(|err| EnvironmentError(format!("{reference}: the registry does not answer: {err:#}")))?;
    let tags =
        client.tags(deadline).map_err(|err| EnvironmentError(format!("{reference}: cannot list its tags: {err:#}")))?;
    let mut versions: Vec<semver::Version> =
        tags.iter().filter_map(|tag| semver::Version::parse(&tag.replace('_', "+")).ok()).collect();
    versions.sort();
    Ok(versions.iter().map(ToString::to_string).collect())
}

/// An exact version as it is; a range: the newest tagged version it allows.
fn exact_or_newest(url: &str, name: &str, range: &str, plain_http: bool, deadline: Instant) -> Result<Option<String>> {
    let trimmed = range.trim().trim_start_matches('v');
    if semver::Version::parse(trimmed).is_ok() {
        return Ok(Some(trimmed.to_string()));
    }
    let Ok(req) = semver::VersionReq::parse(trimmed) else {
        return Ok(None);
    };
    let all = versions(url, name, plain_http, deadline)?;
    Ok(all.into_iter().rev().find(|v| semver::Version::parse(v).is_ok_and(|v| req.matches(&v))))
}
