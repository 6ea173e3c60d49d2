//! Artifact Hub's annotations, written into the packaged Chart.yaml (never
//! the one in git): `artifacthub.io/images` from what the chart renders,
//! `artifacthub.io/changes` from the commits since its last release, and
//! `artifacthub.io/signKey` when the archive is signed.
//!
//! helm packages a folder, so each chart is packaged from a folder of its
//! own under the scratch space: links to every entry of the staged chart
//! and a new Chart.yaml. The staged tree (whose files are hard links to the
//! repository's) is never written to, and a dependency packed inside an
//! umbrella is the chart as it is in git, whichever charts a run selects.
//!
//! Annotations already in Chart.yaml are kept; for these three keys, a value
//! computed here replaces the chart's own, and a key with nothing to say
//! (a library renders no image, no commit since the last release) keeps
//! whatever the chart wrote. Everything computed depends only on the chart's
//! content, its history up to the release and the signing key, so the same
//! input packs to the same bytes (see [`super::build::DEFAULT_SOURCE_DATE_EPOCH`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::core::context::Context;
use crate::core::model::{Chart, ChartKind};
use crate::exec::git::Git;
use crate::exec::tools::Tool;
use crate::ops::verify::manifest;

pub const IMAGES: &str = "artifacthub.io/images";
pub const CHANGES: &str = "artifacthub.io/changes";
pub const SIGN_KEY: &str = "artifacthub.io/signKey";

/// One entry of `artifacthub.io/images`: a container's name and its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub name: String,
    pub image: String,
}

/// One entry of `artifacthub.io/changes`, in Artifact Hub's structured form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// One of Artifact Hub's kinds: added, changed, deprecated, removed, fixed, security.
    pub kind: &'static str,
    pub description: String,
}

/// `artifacthub.io/signKey`.
#[derive(Debug, Clone, Serialize)]
pub struct SignKey {
    pub fingerprint: String,
    pub url: String,
}

/// What every chart of one run is annotated with, and how it is rendered.
pub struct Annotator<'a> {
    git: &'a Git,
    helm: &'a Tool,
    release: String,
    kube_version: String,
    sign_key: Option<SignKey>,
    /// Every tag on `HEAD`'s history, listed once per run.
    tags: Vec<String>,
}

impl<'a> Annotator<'a> {
    /// With `signing`, the key's fingerprint is read from its keyring (the key
    /// Helm will sign with) and paired with `[package] sign-key-url`; without a
    /// URL no `signKey` is written, with a warning, since Artifact Hub refuses
    /// the annotation then ("sign key url not provided").
    pub fn new(ctx: &Context, git: &'a Git, helm: &'a Tool, signing: Option<&super::build::Signing>) -> Result<Self> {
        let sign_key = match signing {
            None => None,
            Some(signing) => {
                let bytes = std::fs::read(&signing.keyring)
                    .with_context(|| format!("--keyring {}: cannot read it", signing.keyring.display()))?;
                let fingerprint = crate::util::openpgp::fingerprint(&bytes, &signing.key)
                    .map_err(|err| anyhow::anyhow!("--keyring {}: {err}", signing.keyring.display()))?;
                match &ctx.config.package.sign_key_url {
                    Some(url) => Some(SignKey { fingerprint, url: url.clone() }),
                    None => {
                        eprintln!(
                            "warning: {SIGN_KEY} not written (key {fingerprint}): Artifact Hub needs the public key's URL too; set `sign-key-url` in [package] of xtask.toml"
                        );
                        None
                    }
                }
            }
        };
        let kube_version = ctx.config.kube_versions.first().cloned().unwrap_or_default();
        let tags = git.tags_on_head()?;
        Ok(Annotator { git, helm, release: ctx.config.release_name.clone(), kube_version, sign_key, tags })
    }

    /// The folder to package for `chart` instead of its staged folder
    /// `staged`: made under `scratch`, holding links to every staged entry and
    /// a Chart.yaml with the annotations merged in.
    pub fn prepare(&self, chart: &Chart, staged: &Path, scratch: &Path) -> Result<PathBuf> {
        let mut computed: Vec<(&str, String)> = Vec::new();
        let images = self.images(chart, staged)?;
        if !images.is_empty() {
            computed.push((IMAGES, yaml_serde::to_string(&images)?));
        }
        let changes = changes(self.git, &self.tags, chart)?;
        if !changes.is_empty() {
            computed.push((CHANGES, yaml_serde::to_string(&changes)?));
        }
        if let Some(key) = &self.sign_key {
            computed.push((SIGN_KEY, yaml_serde::to_string(key)?));
        }
        let shown = format!("{}/Chart.yaml", chart.rel);
        let text = crate::util::yaml::read_text(&staged.join("Chart.yaml"), &shown)?;
        let merged = merge(&text, &shown, &computed)?;

        let dir = crate::util::fs::join_inside(&scratch.join("annotated"), &chart.name)?;
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for entry in std::fs::read_dir(staged).with_context(|| format!("cannot list {}", staged.display()))? {
            let entry = entry?;
            if entry.file_name() != "Chart.yaml" {
                std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name()))
                    .with_context(|| format!("cannot link {}", dir.join(entry.file_name()).display()))?;
            }
        }
        std::fs::write(dir.join("Chart.yaml"), merged)
            .with_context(|| format!("cannot write {shown} for packaging"))?;
        Ok(dir)
    }

    /// The images of the chart's render with its default values (a library
    /// renders nothing).
    fn images(&self, chart: &Chart, staged: &Path) -> Result<Vec<Image>> {
        if chart.kind == ChartKind::Library {
            return Ok(Vec::new());
        }
        let finished = crate::exec::helm::template_with(
            self.helm,
            &self.release,
            staged,
            &[],
            &[],
            &self.kube_version,
            &["--skip-tests"],
        )?;
        if !finished.success {
            anyhow::bail!(
                "{} ({}): listing the images it renders for {IMAGES}: `helm template` with its default values failed:\n{}",
                chart.name,
                chart.rel,
                crate::ops::stage::strip_registry_noise(&finished.combined())
            );
        }
        images(&finished.stdout).map_err(|err| anyhow::anyhow!("{}: listing the images it renders: {err}", chart.name))
    }
}

/// Every container and init container image of every workload of a render,
/// once each (sorted by image), named after the first container that runs it.
pub fn images(rendered: &str) -> Result<Vec<Image>, String> {
    let objects = manifest::objects(rendered)?;
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for (_, pod) in manifest::pods(&objects, "") {
        for list in ["initContainers", "containers"] {
            for container in pod["spec"][list].as_array().into_iter().flatten() {
                if let (Some(name), Some(image)) = (container["name"].as_str(), container["image"].as_str()) {
                    found.entry(image.to_string()).or_insert_with(|| name.to_string());
                }
            }
        }
    }
    Ok(found.into_iter().map(|(image, name)| Image { name, image }).collect())
}

/// The changes of the chart's release: the commits that touched its folder
/// after its last release tag (the newest `<chart>-<version>` below its
/// version, on `HEAD`'s history), up to the tag of this version if it is
/// tagged already (so packaging a release again gives the same archive),
/// else `HEAD`. A chart never released lists its whole history.
pub fn changes(git: &Git, tags: &[String], chart: &Chart) -> Result<Vec<Change>> {
    let mut last: Option<(semver::Version, &str)> = None;
    let mut this: Option<&str> = None;
    for tag in tags {
        let Some(version) = super::tag::version_of_tag(&chart.name, tag) else { continue };
        if version == chart.version {
            this = Some(tag);
        } else if version < chart.version && last.as_ref().is_none_or(|(newest, _)| &version > newest) {
            last = Some((version, tag));
        }
    }
    let from = last.map(|(_, tag)| format!("refs/tags/{tag}"));
    let to = this.map_or_else(|| "HEAD".to_string(), |tag| format!("refs/tags/{tag}"));
    let commits = git
        .subjects_touching(from.as_deref(), &to, &chart.rel)
        .with_context(|| format!("{}: reading the commits since its last release for {CHANGES}", chart.name))?;
    Ok(commits.iter().filter_map(|(_, subject)| change_of(subject)).collect())
}

/// A commit subject as a change: a conventional-commit type gives the kind
/// (`feat` added, `fix` fixed, `deprecate` deprecated, `remove` removed,
/// `security` or a fix scoped `security` security, any other type changed)
/// and the text after the colon the description; `!` marks it breaking. A
/// subject that is not a conventional commit is a change as it stands.
pub fn change_of(subject: &str) -> Option<Change> {
    let subject = subject.trim();
    if subject.is_empty() {
        return None;
    }
    let Some((kind, scope, breaking, description)) = conventional(subject) else {
        return Some(Change { kind: "changed", description: subject.to_string() });
    };
    let kind = match (kind.as_str(), scope) {
        (_, Some(scope)) if scope.eq_ignore_ascii_case("security") => "security",
        ("feat" | "feature" | "add", _) => "added",
        ("fix" | "bugfix", _) => "fixed",
        ("deprecate" | "deprecated", _) => "deprecated",
        ("remove" | "removed", _) => "removed",
        ("security" | "sec", _) => "security",
        _ => "changed",
    };
    let description = if breaking { format!("{description} (breaking change)") } else { description.to_string() };
    Some(Change { kind, description })
}

/// `type(scope)!: description` split up, the type lower-cased.
fn conventional(subject: &str) -> Option<(String, Option<&str>, bool, &str)> {
    let (head, description) = subject.split_once(':')?;
    let description = description.trim();
    let (head, breaking) = match head.strip_suffix('!') {
        Some(head) => (head, true),
        None => (head, false),
    };
    let (kind, scope) = match head.split_once('(') {
        Some((kind, rest)) => (kind, Some(rest.strip_suffix(')')?)),
        None => (head, None),
    };
    let word = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphabetic());
    (word && !description.is_empty()).then(|| (kind.to_ascii_lowercase(), scope, breaking, description))
}

/// Chart.yaml's text with `entries` set in its `annotations` (made when
/// missing), every other key and annotation kept.
pub fn merge(text: &str, shown: &str, entries: &[(&str, String)]) -> Result<String> {
    let mut document: yaml_serde::Value = crate::util::yaml::parse(text, shown)?;
    let top = document.as_mapping_mut().with_context(|| format!("{shown}: not a mapping"))?;
    let annotations = top
        .entry(yaml_serde::Value::from("annotations"))
        .or_insert_with(|| yaml_serde::Value::Mapping(Default::default()));
    if annotations.is_null() {
        *annotations = yaml_serde::Value::Mapping(Default::default());
    }
    let annotations = annotations.as_mapping_mut().with_context(|| {
        format!("{shown}: `annotations` is not a mapping of strings, so Helm cannot read it either")
    })?;
    for (key, value) in entries {
        annotations.insert(yaml_serde::Value::from(*key), yaml_serde::Value::from(value.as_str()));
    }
    Ok(yaml_serde::to_string(&document)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventional_prefixes_give_artifact_hubs_kinds() {
        let kind = |s: &str| change_of(s).map(|c| (c.kind, c.description));
        assert_eq!(kind("feat(cart): a readiness probe"), Some(("added", "a readiness probe".into())));
        assert_eq!(kind("fix: the port of the metrics"), Some(("fixed", "the port of the metrics".into())));
        assert_eq!(kind("fix(security): drop NET_RAW"), Some(("security", "drop NET_RAW".into())));
        assert_eq!(kind("deprecate: values.legacy"), Some(("deprecated", "values.legacy".into())));
        assert_eq!(kind("remove!: the v1 Ingress"), Some(("removed", "the v1 Ingress (breaking change)".into())));
        assert_eq!(kind("chore(deps): common 1.3.0"), Some(("changed", "common 1.3.0".into())));
        assert_eq!(kind("Tune the HPA: 3 replicas"), Some(("changed", "Tune the HPA: 3 replicas".into())));
        assert_eq!(kind("feat:"), Some(("changed", "feat:".into())));
        assert_eq!(kind("  "), None);
    }

    #[test]
    fn merge_keeps_other_annotations_and_replaces_ours() {
        let text = "apiVersion: v2\nname: a\nversion: 1.0.0\nannotations:\n  artifacthub.io/license: MIT\n  artifacthub.io/images: old\n";
        let merged = merge(text, "a/Chart.yaml", &[(IMAGES, "- name: a\n  image: a:1\n".into())]).unwrap();
        let value: yaml_serde::Value = yaml_serde::from_str(&merged).unwrap();
        assert_eq!(value["annotations"]["artifacthub.io/license"].as_str(), Some("MIT"));
        assert_eq!(value["annotations"][IMAGES].as_str(), Some("- name: a\n  image: a:1\n"));
        assert_eq!(value["version"].as_str(), Some("1.0.0"));
        let bare =
            merge("apiVersion: v2\nname: a\nversion: 1.0.0\nannotations:\n", "a/Chart.yaml", &[(CHANGES, "x".into())]);
        assert!(bare.unwrap().contains("artifacthub.io/changes: x"));
        let refused = merge("name: a\nannotations: [1]\n", "a/Chart.yaml", &[(CHANGES, "x".into())]).unwrap_err();
        assert!(format!("{refused:#}").contains("a/Chart.yaml: `annotations` is not a mapping"));
    }

    #[test]
    fn images_come_from_containers_and_init_containers_of_workloads() {
        let rendered = "---\n# Source: a/templates/d.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: wait\n          image: busybox:1.37\n      containers:\n        - name: a\n          image: robotshop/rs-a:2.1.0\n---\n# Source: a/templates/c.yaml\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: c\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - name: c\n              image: busybox:1.37\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  image: not-an-image\n";
        let found = images(rendered).unwrap();
        let pairs: Vec<(&str, &str)> = found.iter().map(|i| (i.name.as_str(), i.image.as_str())).collect();
        assert_eq!(pairs, [("wait", "busybox:1.37"), ("a", "robotshop/rs-a:2.1.0")]);
    }
}
