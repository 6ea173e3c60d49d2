//! Building the archives: stage each chart with its dependencies, run one
//! `helm package` over all of them into a scratch folder, compare with what
//! the output folder already holds, and only then move the new archives in.
//!
//! Nothing reaches the output folder until every chart has packaged and no
//! archive conflicts with one already there, so a failure leaves the folder
//! as it was: no partial archive and no half-updated set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::core::archive::{self, ArchiveInfo};
use crate::core::context::Context;
use crate::core::graph::ChartGraph;
use crate::core::model::Repo;
use crate::exec::process;
use crate::exec::tools::Tool;
use crate::ops::stage::Stager;

/// The file times Helm writes into archives when `SOURCE_DATE_EPOCH` is not
/// set by the caller: 1980-01-01, the usual reproducible-build epoch. With a
/// fixed time, the same chart content packs to the same bytes on every
/// machine, so an archive's digest identifies its content and a re-run in a
/// fresh clone finds the registry's copy identical.
pub const DEFAULT_SOURCE_DATE_EPOCH: &str = "315532800";

/// The outcome for one chart's archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A new archive was written.
    Packaged,
    /// The folder already held this version with the same content; kept.
    Unchanged,
}

/// Helm's provenance signing: `helm package --sign --key KEY --keyring
/// KEYRING [--passphrase-file FILE]` (a passphrase is never an argument).
#[derive(Debug, Clone)]
pub struct Signing {
    /// The signing key's name (its user id, or part of it).
    pub key: String,
    /// A secret keyring in the legacy format Helm reads (`gpg --export-secret-keys`).
    pub keyring: PathBuf,
    pub passphrase_file: Option<PathBuf>,
}

/// One chart's archive in the output folder.
#[derive(Debug, Clone)]
pub struct Built {
    pub chart: usize,
    pub file_name: String,
    pub path: PathBuf,
    pub info: ArchiveInfo,
    pub outcome: Outcome,
    /// `<archive>.prov` beside it, when signed: `helm push` uploads it with the archive.
    pub provenance: Option<PathBuf>,
}

/// Packages `selected` (indices, in topological order) into `out`.
#[allow(clippy::too_many_arguments)]
pub fn package(
    ctx: &Context,
    repo: &Repo,
    graph: &ChartGraph,
    stager: &Stager<'_>,
    annotator: &super::annotations::Annotator<'_>,
    selected: &[usize],
    out: &Path,
    signing: Option<&Signing>,
) -> Result<Vec<Built>> {
    // Stage the selected charts and everything they need, dependencies first.
    let wanted: BTreeSet<usize> = graph.with_dependencies(&selected.iter().copied().collect());
    let mut staged = Vec::new();
    for index in graph.topological().into_iter().filter(|i| wanted.contains(i)) {
        let chart = &repo.charts[index];
        let dir =
            stager.stage(repo, chart).with_context(|| format!("{}: staging its dependencies failed", chart.name))?;
        if selected.contains(&index) {
            staged.push((index, dir));
        }
    }

    std::fs::create_dir_all(out).with_context(|| format!("cannot create the output folder {}", out.display()))?;
    // Scratch space inside `out`, so moving an archive in is a rename on one
    // file system (atomic), never a copy that could be cut short.
    let scratch = tempfile::Builder::new()
        .prefix(".package-")
        .tempdir_in(out)
        .with_context(|| format!("cannot create a scratch folder in {}", out.display()))?;
    // Each chart is packaged from a copy whose Chart.yaml carries Artifact
    // Hub's annotations; the staged folder and the repository stay as they are.
    let sources = {
        use rayon::prelude::*;
        staged
            .par_iter()
            .map(|(index, dir)| Ok((*index, annotator.prepare(&repo.charts[*index], dir, scratch.path())?)))
            .collect::<Result<Vec<_>>>()?
    };
    // The helm that stages is the helm that packages.
    helm_package(repo, stager.helm(), &sources, scratch.path(), signing)?;

    let mut built = Vec::new();
    let mut conflicts = Vec::new();
    for (index, _) in &staged {
        let chart = &repo.charts[*index];
        let file_name = format!("{}-{}.tgz", chart.name, chart.version);
        let fresh = scratch.path().join(&file_name);
        let info = archive::read(&fresh)
            .with_context(|| format!("{}: helm package wrote no usable {file_name}", chart.name))?;
        let path = out.join(&file_name);
        let provenance = signing.map(|_| out.join(format!("{file_name}.prov")));
        let outcome = if path.is_file() {
            let existing = archive::read(&path)?;
            // A fresh signature is only good for the archive that is there
            // when the bytes are the same.
            let signable = signing.is_none() || existing.digest == info.digest;
            if signable && (existing.digest == info.digest || existing.content_digest == info.content_digest) {
                // Keep the archive that is there: its digest may already be in
                // an index or a registry.
                built.push(Built {
                    chart: *index,
                    file_name,
                    path,
                    info: existing,
                    outcome: Outcome::Unchanged,
                    provenance,
                });
                continue;
            }
            conflicts.push(format!(
                "  {}: {} already holds version {} with other content (digest {} there, {} now); {}",
                chart.name,
                ctx.shown(&path),
                chart.version,
                short(&existing.digest),
                short(&info.digest),
                super::version::raise_hint(chart)
            ));
            continue;
        } else {
            Outcome::Packaged
        };
        built.push(Built { chart: *index, file_name, path, info, outcome, provenance });
    }
    if !conflicts.is_empty() {
        anyhow::bail!(
            "same version, different content: nothing was written\n{}\nA version, once packaged, never changes. If those archives were only local trials, delete them instead.",
            conflicts.join("\n")
        );
    }
    for item in &built {
        // The signature first: an archive never sits in the folder without
        // the `.prov` that `--publish` would push with it.
        if let Some(provenance) = &item.provenance {
            let fresh = scratch.path().join(format!("{}.prov", item.file_name));
            std::fs::rename(&fresh, provenance)
                .with_context(|| format!("{}: helm package --sign wrote no {}.prov", item.file_name, item.file_name))?;
        }
        if item.outcome == Outcome::Packaged {
            let fresh = scratch.path().join(&item.file_name);
            std::fs::rename(&fresh, &item.path)
                .with_context(|| format!("cannot move {} into {}", item.file_name, out.display()))?;
        }
    }
    Ok(built)
}

/// One `helm package` for all staged charts (a helm process costs ~90 ms to
/// start); if it fails, each chart alone, to name the one that failed.
fn helm_package(
    repo: &Repo,
    helm: &Tool,
    staged: &[(usize, PathBuf)],
    dest: &Path,
    signing: Option<&Signing>,
) -> Result<()> {
    let sh = xshell::Shell::new()?;
    let helm = &helm.path;
    let epoch = std::env::var("SOURCE_DATE_EPOCH").unwrap_or_else(|_| DEFAULT_SOURCE_DATE_EPOCH.to_string());
    let mut sign_args: Vec<std::ffi::OsString> = Vec::new();
    if let Some(signing) = signing {
        sign_args.extend(["--sign".into(), "--key".into(), signing.key.clone().into(), "--keyring".into()]);
        sign_args.push(signing.keyring.clone().into());
        if let Some(file) = &signing.passphrase_file {
            sign_args.extend(["--passphrase-file".into(), file.clone().into_os_string()]);
        }
    }
    let sign_args = &sign_args;
    let command = |dirs: Vec<&PathBuf>| {
        xshell::cmd!(sh, "{helm} package {dirs...} --destination {dest} {sign_args...}")
            .env("SOURCE_DATE_EPOCH", &epoch)
    };
    let all = process::run(command(staged.iter().map(|(_, d)| d).collect()), None)?;
    if all.success {
        return Ok(());
    }
    let mut failures = Vec::new();
    for (index, dir) in staged {
        let alone = process::run(command(vec![dir]), None)?;
        if !alone.success {
            let chart = &repo.charts[*index];
            failures.push(format!(
                "  {} ({}): `helm package` failed:\n{}",
                chart.name,
                chart.rel,
                indent(&crate::ops::stage::strip_registry_noise(&alone.combined()))
            ));
        }
    }
    if failures.is_empty() {
        // Each chart packages alone but not together: report helm's own words.
        failures.push(indent(&all.combined()));
    }
    anyhow::bail!(
        "packaging failed, nothing was written:\n{}\nfix: run `cargo xtask lint --chart NAME` for the chart(s) above and correct what it reports",
        failures.join("\n")
    )
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
