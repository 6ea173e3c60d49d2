//! The offline Kubernetes JSON schemas for kubeconform, prepared once per
//! Kubernetes version from the `kubernetes-validate` wheel on PyPI, plus the
//! repository's own CRD schemas.
//!
//! The package's schemas point their `$ref`s at
//! `/api/_definitions.json#/$defs/...` under an `https://kubernetes.io` `$id`,
//! so used as they are kubeconform would fetch every reference over the
//! network. Each kind's schema is therefore rewritten to be self-contained:
//! the definitions it reaches (transitively) are copied under its own
//! `$defs`, references become `#/$defs/...` and `$id` goes. That also makes
//! kubeconform fast: with references into the shared 1.8 MB
//! `_definitions.json` it compiles that file again for every kind, bundled
//! it reads ~200 KB per kind. Measured on a busy 2-core machine, one
//! `kubeconform -strict` call, mean of 20: Deployment + Service 0.32 s with
//! references, 0.05 s bundled; eight kinds 0.82 s against 0.06 s. The price
//! is disk (about 17 MB per Kubernetes version instead of 5 MB) and ~1.3 s of
//! preparation per version, once.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};

use super::pins::{PackagePin, Pins};
use super::Schemas;
use crate::core::context::Context;
use crate::util::exit::{self, EnvironmentError, UsageError};

/// Bump when the prepared files change for the same package version: the
/// marker then no longer matches and every folder is prepared again.
const PREPARATION: u32 = 1;

/// A path to a downloaded `kubernetes-validate` wheel, for machines
/// without pip (its SHA-256 is still checked against the pin).
const WHEEL_ENV: &str = "XTASK_KUBERNETES_VALIDATE_WHEEL";

/// Written last into a prepared folder: present and current means complete.
const MARKER: &str = ".xtask-prepared";

/// Where the schemas live inside the wheel.
const PACKAGE_DIR: &str = "kubernetes_validate/kubernetes-json-schema/";

/// References in the package's kind schemas, and inside `_definitions.json`.
const REMOTE_DEFS: &str = "/api/_definitions.json#/$defs/";
const LOCAL_DEFS: &str = "#/$defs/";

/// Checks an `X.Y.Z` Kubernetes version (what kubeconform's
/// `-kubernetes-version` takes): a usage error otherwise.
pub fn check_kube_version(version: &str) -> Result<()> {
    let parts: Vec<&str> = version.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() == 3 && parts.iter().all(numeric) {
        return Ok(());
    }
    exit::usage(format!("kubernetes version {version:?}: expected X.Y.Z, e.g. 1.37.0"))
}

/// Makes sure the schemas for `kube_versions` and the pinned CRDs are
/// prepared and returns the kubeconform locations. A warm run reads one
/// marker file per version and one for the CRDs.
pub fn ensure(ctx: &Context, pins: &Pins, kube_versions: &[String]) -> Result<Schemas> {
    let pin = &pins.kubernetes_validate;
    let mut versions: Vec<String> = Vec::new();
    for version in kube_versions {
        check_kube_version(version)?;
        if !versions.contains(version) {
            versions.push(version.clone());
        }
    }
    let dir = ctx.cache_dir.join("schemas").join(format!("kubernetes-validate-{}", pin.version));
    let marker = marker_text(pin);
    let missing: Vec<&String> = versions.iter().filter(|v| !is_prepared(&dir.join(folder_name(v)), &marker)).collect();
    if !missing.is_empty() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("kubeconform schemas: cannot create {}", dir.display()))?;
        // One preparation at a time; whoever waited finds the work done.
        let _lock = crate::util::fs::lock_file(&ctx.cache_dir.join(".schemas.lock"))?;
        let missing: Vec<&String> =
            missing.into_iter().filter(|v| !is_prepared(&dir.join(folder_name(v)), &marker)).collect();
        for prefix in [".download-", ".prepare-", ".stale-"] {
            super::sweep_stale(&dir, prefix);
        }
        let wheel = wheel(pin, &dir)?;
        let file = std::fs::File::open(&wheel)
            .with_context(|| format!("kubeconform schemas: cannot open {}", wheel.display()))?;
        let mut zip = zip::ZipArchive::new(file)
            .with_context(|| format!("kubeconform schemas: {} is not a wheel (zip)", wheel.display()))?;
        for version in missing {
            prepare(&mut zip, pin, version, &dir, &marker).context("kubeconform schemas")?;
        }
    }

    let mut locations = vec![format!(
        "{}/{{{{ .NormalizedKubernetesVersion }}}}-local{{{{ .StrictSuffix }}}}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        dir.display()
    )];
    let mut fingerprint = format!("kubernetes-validate-{}+prep{PREPARATION}", pin.version);
    // A repository's own CRD schemas come before the upstream ones, so it
    // can stand in for a kind it knows better.
    let own = ctx.root.join("schemas").join("crds");
    if own.is_dir() {
        locations.push(format!(
            "{}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
            own.display()
        ));
        fingerprint.push_str(&format!("+own-crds-{}", folder_hash(&own)?));
    }
    let (upstream, crds_fingerprint) = super::crds::schema_location(ctx, &pins.crds)?;
    locations.push(upstream);
    fingerprint.push_str(&format!("+crds-{crds_fingerprint}"));
    Ok(Schemas { kube_versions: versions, locations, fingerprint })
}

/// `v1.37.0-local-strict`: the folder kubeconform's location template
/// resolves to with `-strict` (the only mode the xtask runs it in).
fn folder_name(version: &str) -> String {
    format!("v{version}-local-strict")
}

fn marker_text(pin: &PackagePin) -> String {
    format!("kubernetes-validate {}, preparation {PREPARATION}\n", pin.version)
}

fn is_prepared(folder: &Path, marker: &str) -> bool {
    std::fs::read_to_string(folder.join(MARKER)).is_ok_and(|text| text == marker)
}

/// The pinned wheel: `$XTASK_KUBERNETES_VALIDATE_WHEEL`, the copy kept in
/// the cache folder, or a fresh `pip download`. Its SHA-256 must match the pin.
fn wheel(pin: &PackagePin, dir: &Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(WHEEL_ENV) {
        let path = PathBuf::from(path);
        check_wheel(pin, &path).with_context(|| format!("kubeconform schemas: {WHEEL_ENV}"))?;
        return Ok(path);
    }
    // Kept so that preparing another Kubernetes version later needs no network.
    let kept = dir.join(format!("kubernetes_validate-{}-py3-none-any.whl", pin.version));
    if kept.is_file() && check_wheel(pin, &kept).is_ok() {
        return Ok(kept);
    }

    let python = which::which("python3").map_err(|_| {
        EnvironmentError(format!(
            "kubeconform schemas: python3 is not on PATH; it is needed once to download kubernetes-validate {} from PyPI ({})",
            pin.version,
            wheel_alternative(pin)
        ))
    })?;
    let download = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(dir)
        .with_context(|| format!("kubeconform schemas: cannot create a temporary folder in {}", dir.display()))?;
    let dest = download.path();
    let requirement = format!("kubernetes-validate=={}", pin.version);
    eprintln!("kubeconform schemas: downloading {requirement} with pip");
    let sh = xshell::Shell::new().context("cannot set up a shell for pip")?;
    // The ordinary pip client, so the user's index, proxy and certificate
    // settings apply.
    let cmd = xshell::cmd!(sh, "{python} -m pip download --no-deps --only-binary=:all: --dest {dest} {requirement}");
    let finished = crate::exec::process::run(cmd, None).context("kubeconform schemas: cannot start pip")?;
    if !finished.success {
        return Err(EnvironmentError(format!(
            "kubeconform schemas: `{}` failed:\n{}\n({})",
            finished.display,
            finished.combined(),
            wheel_alternative(pin)
        ))
        .into());
    }
    let downloaded = std::fs::read_dir(dest)
        .with_context(|| format!("kubeconform schemas: cannot read {}", dest.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .context("kubeconform schemas: pip reported success but downloaded no wheel")?;
    check_wheel(pin, &downloaded).context("kubeconform schemas: the wheel pip downloaded")?;
    std::fs::rename(&downloaded, &kept)
        .with_context(|| format!("kubeconform schemas: cannot move the wheel to {}", kept.display()))?;
    Ok(kept)
}

fn wheel_alternative(pin: &PackagePin) -> String {
    format!(
        "or download kubernetes_validate-{v}-py3-none-any.whl from https://pypi.org/project/kubernetes-validate/{v}/#files and set {WHEEL_ENV} to its path",
        v = pin.version
    )
}

fn check_wheel(pin: &PackagePin, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let actual = crate::util::fs::sha256_hex(&bytes);
    if actual != pin.wheel_sha256 {
        anyhow::bail!(
            "{} has sha256 {actual}, but kubernetes-validate {} is pinned to {} (tools/pins.toml)",
            path.display(),
            pin.version,
            pin.wheel_sha256
        );
    }
    Ok(())
}

/// Prepares `<dir>/v<version>-local-strict/` from the wheel: in a temporary
/// folder, renamed into place when complete.
fn prepare(
    zip: &mut zip::ZipArchive<std::fs::File>,
    pin: &PackagePin,
    version: &str,
    dir: &Path,
    marker: &str,
) -> Result<()> {
    let started = Instant::now();
    let folder = folder_name(version);
    let prefix = format!("{PACKAGE_DIR}{folder}/");
    let names: Vec<String> = zip
        .file_names()
        .filter(|name| name.strip_prefix(&prefix).is_some_and(|rest| !rest.contains('/') && rest.ends_with(".json")))
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Err(UsageError(format!(
            "kubernetes-validate {} has no schemas for Kubernetes {version}; it has {} (set kube-versions in xtask.toml or pass --kube-version)",
            pin.version,
            available_versions(zip).join(", ")
        ))
        .into());
    }
    eprintln!("kubeconform schemas: preparing Kubernetes {version} from kubernetes-validate {}", pin.version);

    let read_json = |zip: &mut zip::ZipArchive<std::fs::File>, name: &str| -> Result<Value> {
        let mut text = String::new();
        zip.by_name(name)
            .with_context(|| format!("{name}: missing from the wheel"))?
            .read_to_string(&mut text)
            .with_context(|| format!("{name}: cannot read from the wheel"))?;
        serde_json::from_str(&text).with_context(|| format!("{name}: not JSON"))
    };
    let definitions_name = format!("{prefix}_definitions.json");
    let mut definitions = read_json(zip, &definitions_name)?;
    let definitions = match definitions.get_mut("$defs").map(Value::take) {
        Some(Value::Object(defs)) => defs,
        _ => anyhow::bail!("{definitions_name}: has no $defs object"),
    };

    let staging = tempfile::Builder::new()
        .prefix(&format!(".prepare-{folder}-"))
        .tempdir_in(dir)
        .with_context(|| format!("kubeconform schemas: cannot create a temporary folder in {}", dir.display()))?;
    let mut count = 0usize;
    for name in &names {
        let file_name = &name[prefix.len()..];
        // `_definitions.json` is bundled into each kind; `all.json` is a
        // oneOf over every definition that no kubeconform lookup reaches.
        if file_name == "_definitions.json" || file_name == "all.json" {
            continue;
        }
        let schema = read_json(zip, name)?;
        let bundled = bundle(schema, &definitions).with_context(|| format!("{name}: cannot bundle"))?;
        let bytes = serde_json::to_vec(&bundled).with_context(|| format!("{name}: cannot encode"))?;
        let out = staging.path().join(file_name);
        std::fs::write(&out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
        count += 1;
    }
    let marker_path = staging.path().join(MARKER);
    std::fs::write(&marker_path, marker).with_context(|| format!("cannot write {}", marker_path.display()))?;
    swap_into_place(staging, &dir.join(&folder), marker)?;
    eprintln!(
        "kubeconform schemas: prepared Kubernetes {version} ({count} schemas, {:.1}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The Kubernetes versions the wheel has strict schemas for, oldest first.
fn available_versions(zip: &zip::ZipArchive<std::fs::File>) -> Vec<String> {
    let mut versions: Vec<semver::Version> = zip
        .file_names()
        .filter_map(|name| name.strip_prefix(PACKAGE_DIR))
        .filter_map(|rest| rest.split('/').next())
        .filter_map(|folder| folder.strip_prefix('v')?.strip_suffix("-local-strict"))
        .filter_map(|v| semver::Version::parse(v).ok())
        .collect();
    versions.sort();
    versions.dedup();
    versions.iter().map(ToString::to_string).collect()
}

/// Renames the finished `staging` folder to `dest`, replacing an outdated
/// one. If another process finished the same folder first, keeps theirs.
pub(super) fn swap_into_place(staging: tempfile::TempDir, dest: &Path, marker: &str) -> Result<()> {
    if std::fs::rename(staging.path(), dest).is_ok() {
        let _ = staging.keep();
        return Ok(());
    }
    if is_prepared(dest, marker) {
        return Ok(());
    }
    // An outdated folder: move it aside (renaming onto a non-empty folder
    // fails), put the new one in, then delete the old one.
    let parent = dest.parent().context("schema folder has no parent")?;
    let stale = tempfile::Builder::new()
        .prefix(".stale-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a temporary folder in {}", parent.display()))?;
    std::fs::rename(dest, stale.path().join("old"))
        .with_context(|| format!("cannot move the outdated {} aside", dest.display()))?;
    std::fs::rename(staging.path(), dest)
        .with_context(|| format!("cannot move the new schemas to {}", dest.display()))?;
    let _ = staging.keep();
    Ok(())
}

/// Makes one kind's schema self-contained: references point into its own
/// `$defs`, which holds every definition reachable from it.
fn bundle(mut schema: Value, definitions: &Map<String, Value>) -> Result<Value> {
    let mut needed = BTreeSet::new();
    collect_refs(&schema, definitions, &mut needed)?;
    rewrite(&mut schema)?;
    if needed.is_empty() {
        return Ok(schema);
    }
    let Value::Object(object) = &mut schema else {
        anyhow::bail!("the schema is not a JSON object");
    };
    let defs = object.entry("$defs").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(defs) = defs else {
        anyhow::bail!("its $defs is not an object");
    };
    for name in needed {
        let mut definition = definitions.get(&name).cloned().with_context(|| format!("no definition {name:?}"))?;
        rewrite(&mut definition)?;
        defs.insert(name, definition);
    }
    Ok(schema)
}

/// The `$defs` entry a reference names (decoded from JSON-pointer
/// escaping), or an error for references that would leave the file.
fn def_name(reference: &str) -> Result<String> {
    let token = reference
        .strip_prefix(REMOTE_DEFS)
        .or_else(|| reference.strip_prefix(LOCAL_DEFS))
        .filter(|token| !token.is_empty() && !token.contains('/'))
        .with_context(|| {
            format!("unexpected $ref {reference:?}: only {REMOTE_DEFS}... and {LOCAL_DEFS}... are known")
        })?;
    Ok(token.replace("~1", "/").replace("~0", "~"))
}

/// Adds every definition reachable from `node` to `needed`.
fn collect_refs(node: &Value, definitions: &Map<String, Value>, needed: &mut BTreeSet<String>) -> Result<()> {
    match node {
        Value::Object(object) => {
            for (key, value) in object {
                match (key.as_str(), value) {
                    // Only a string is a reference: `$ref` with an object
                    // value is a property of that name (CRD schemas have one).
                    ("$ref", Value::String(reference)) => {
                        let name = def_name(reference)?;
                        let definition = definitions
                            .get(&name)
                            .with_context(|| format!("$ref {reference:?} names no definition"))?;
                        if needed.insert(name) {
                            collect_refs(definition, definitions, needed)?;
                        }
                    }
                    _ => collect_refs(value, definitions, needed)?,
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_refs(item, definitions, needed)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Points every reference at the local `$defs` and drops `$id`, whose
/// remote base URL would otherwise send reference resolution to the network.
fn rewrite(node: &mut Value) -> Result<()> {
    match node {
        Value::Object(object) => {
            if matches!(object.get("$id"), Some(Value::String(_))) {
                object.remove("$id");
            }
            for (key, value) in object.iter_mut() {
                match (key.as_str(), &mut *value) {
                    ("$ref", Value::String(reference)) => {
                        let token = reference
                            .strip_prefix(REMOTE_DEFS)
                            .or_else(|| reference.strip_prefix(LOCAL_DEFS))
                            .with_context(|| format!("unexpected $ref {reference:?}"))?;
                        *reference = format!("{LOCAL_DEFS}{token}");
                    }
                    _ => rewrite(value)?,
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite(item)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// SHA-256 over the relative paths and contents of every file below `dir`,
/// in a stable order; short, for a fingerprint.
fn folder_hash(dir: &Path) -> Result<String> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let path = entry.with_context(|| format!("cannot read {}", dir.display()))?.path();
            if path.is_dir() {
                walk(&path, files)?;
            } else {
                files.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut all = Vec::new();
    for file in files {
        let relative = file.strip_prefix(dir).unwrap_or(&file);
        all.extend_from_slice(relative.to_string_lossy().as_bytes());
        all.push(0);
        all.extend(std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?);
        all.push(0);
    }
    Ok(crate::util::fs::sha256_hex(&all)[..16].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kube_versions_must_have_three_numbers() {
        assert!(check_kube_version("1.37.0").is_ok());
        for bad in ["1.37", "v1.37.0", "1.37.0.1", "1.x.0", ""] {
            assert!(check_kube_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bundling_copies_reachable_definitions_and_drops_ids() {
        let definitions = json!({
            "a": {"properties": {"b": {"$ref": "#/$defs/b"}}},
            "b": {"type": "string"},
            "unused": {"type": "integer"},
            "crd": {"properties": {"$ref": {"type": "string"}}}
        });
        let Value::Object(definitions) = definitions else { unreachable!() };
        let schema = json!({
            "$id": "https://kubernetes.io/api/x",
            "properties": {
                "a": {"$ref": "/api/_definitions.json#/$defs/a"},
                "c": {"$ref": "/api/_definitions.json#/$defs/crd"},
                "$id": {"type": "string"}
            }
        });
        let bundled = bundle(schema, &definitions).unwrap();
        assert_eq!(bundled["properties"]["a"]["$ref"], "#/$defs/a");
        assert!(bundled.get("$id").is_none());
        assert!(bundled["properties"].get("$id").is_some(), "a property named $id stays");
        let defs = bundled["$defs"].as_object().unwrap();
        let names: Vec<&str> = defs.keys().map(String::as_str).collect();
        assert_eq!(names, ["a", "b", "crd"]);
    }

    #[test]
    fn foreign_references_are_refused() {
        let schema = json!({"$ref": "https://example.com/x.json"});
        assert!(bundle(schema, &Map::new()).is_err());
    }
}
