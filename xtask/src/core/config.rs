//! Repository configuration: `xtask.toml` at the repository root, overridden
//! by command-line flags.
//!
//! The file is optional, so the engine works on any Helm monorepo with the
//! defaults (`--root DIR`). Tool version pins are not here: they belong to the
//! tool, not to the repository it checks (see `tools/pins.toml`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

/// The name of the optional configuration file at the repository root.
pub const FILE_NAME: &str = "xtask.toml";

/// Settings read from `xtask.toml`; every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Folders (relative to the root) searched for charts.
    #[serde(default = "default_chart_dirs", deserialize_with = "relative_paths")]
    pub chart_dirs: Vec<String>,
    /// Kubernetes versions every render is validated against (X.Y.Z).
    #[serde(default = "default_kube_versions")]
    pub kube_versions: Vec<String>,
    /// Release name used for every render, so that output does not depend on
    /// whether a chart was rendered alone or in a batch.
    #[serde(default = "default_release_name", deserialize_with = "release_name")]
    pub release_name: String,
    /// Dependency repositories to fetch from somewhere else: `FROM = "TO"`.
    #[serde(default)]
    pub mirrors: BTreeMap<String, String>,
    /// The service inventory, relative to the root; absent file = no matrix checks.
    #[serde(default = "default_matrix", deserialize_with = "relative_path")]
    pub service_matrix: String,
    /// Resolve a remote dependency whose name and version match a chart of
    /// the repository to that chart (see `inrepo.rs`); `false` pulls it.
    #[serde(default = "default_true")]
    pub in_repo_dependencies: bool,
    /// How charts are packaged.
    #[serde(default)]
    pub package: PackageConfig,
    /// The shared verdict cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Per dependency repository prefix (`oci://HOST/PATH`), the keys its
    /// charts must be signed with; a remote dependency under a prefix is
    /// refused unless its signatures verify (see `ops/trust.rs`).
    #[serde(default, deserialize_with = "trust_prefixes")]
    pub trust: BTreeMap<String, TrustKeys>,
}

/// One `[trust."oci://HOST/PATH"]` table: the public keys, as files in the
/// repository (committed, so every clone trusts the same keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrustKeys {
    /// A gpg public keyring (`gpg --export`): every chart needs Helm
    /// provenance (a `.prov` layer) that verifies with it.
    #[serde(default, deserialize_with = "optional_relative_path")]
    pub keyring: Option<String>,
    /// A cosign public key: every chart's OCI digest needs a cosign
    /// signature that verifies with it.
    #[serde(default, deserialize_with = "optional_relative_path")]
    pub cosign_key: Option<String>,
}

/// Trust prefixes are OCI repositories naming at least one key: a table
/// that names none would trust everything under it without saying so.
fn trust_prefixes<'de, D: serde::Deserializer<'de>>(de: D) -> Result<BTreeMap<String, TrustKeys>, D::Error> {
    let raw = BTreeMap::<String, TrustKeys>::deserialize(de)?;
    let mut out = BTreeMap::new();
    for (prefix, keys) in raw {
        if !prefix.starts_with("oci://") || prefix.trim_end_matches('/').len() <= "oci://".len() {
            return Err(serde::de::Error::custom(format!(
                "[trust] {prefix:?}: expected an OCI repository prefix, e.g. \"oci://ghcr.io/acme/charts\" (only OCI registries carry the signatures checked here)"
            )));
        }
        if keys.keyring.is_none() && keys.cosign_key.is_none() {
            return Err(serde::de::Error::custom(format!(
                "[trust] {prefix:?}: names no key: give `keyring` (a gpg public keyring) and/or `cosign-key` (a cosign public key), files in the repository"
            )));
        }
        out.insert(prefix.trim_end_matches('/').to_string(), keys);
    }
    Ok(out)
}

fn optional_relative_path<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    relative_path(de).map(Some)
}

/// `[cache]` in xtask.toml: the remote verdict cache every clone shares.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CacheConfig {
    /// `oci://HOST/PATH`: the repository of an OCI registry that holds
    /// signed verdicts (read-only unless `--remote-cache-write`).
    #[serde(default)]
    pub remote: Option<String>,
    /// The writers whose signatures readers accept: `ed25519:<base64>`.
    /// Committed, so every clone trusts the same writers.
    #[serde(default, deserialize_with = "public_keys")]
    pub trusted_keys: Vec<String>,
}

/// Public keys are checked where they are read, so a typo fails with the
/// file's line and column rather than silently trusting nobody.
fn public_keys<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    let keys = Vec::<String>::deserialize(de)?;
    for key in &keys {
        crate::util::signing::PublicKey::parse(key).map_err(serde::de::Error::custom)?;
    }
    Ok(keys)
}

/// `[package]` in xtask.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PackageConfig {
    /// Package charts that hold symbolic links (inside the repository).
    /// Off by default: Helm's archive carries the bytes a link leads to,
    /// not the link, so a link in a chart publishes another file's content.
    #[serde(default)]
    pub allow_symlinks: bool,
    /// `package --sign`'s Helm flags, when not given on the command line:
    /// `key` (the signing key's name), `keyring` (a secret keyring, as
    /// `gpg --export-secret-keys` writes it), `passphrase-file`. Read only
    /// when `--sign` is given (a release job), never otherwise.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub keyring: Option<String>,
    #[serde(default)]
    pub passphrase_file: Option<String>,
    /// Where users fetch the signing key's public half (an `https://` URL
    /// of the armored key): written with its fingerprint into the packaged
    /// Chart.yaml as `artifacthub.io/signKey`, which Artifact Hub refuses
    /// without a URL.
    #[serde(default)]
    pub sign_key_url: Option<String>,
    /// `package --publish --cosign-key`'s key file, when not given on the
    /// command line (its password always comes from `COSIGN_PASSWORD`).
    #[serde(default)]
    pub cosign_key: Option<String>,
}

/// A path from xtask.toml that is joined onto the root: relative, without
/// `..`, so the file can only name places inside the repository.
fn relative_path<'de, D: serde::Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let path = String::deserialize(de)?;
    check_relative(&path).map_err(serde::de::Error::custom)?;
    Ok(path)
}

fn relative_paths<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    let paths = Vec::<String>::deserialize(de)?;
    for path in &paths {
        check_relative(path).map_err(serde::de::Error::custom)?;
    }
    Ok(paths)
}

pub fn check_relative(path: &str) -> Result<(), String> {
    if !crate::util::fs::is_plain_relative(Path::new(path)) {
        return Err(format!("{path:?} must be a path inside the repository (relative, without ..)"));
    }
    Ok(())
}

fn release_name<'de, D: serde::Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let name = String::deserialize(de)?;
    crate::core::names::check(crate::core::names::NameKind::Release, &name).map_err(serde::de::Error::custom)?;
    Ok(name)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            chart_dirs: default_chart_dirs(),
            kube_versions: default_kube_versions(),
            release_name: default_release_name(),
            mirrors: BTreeMap::new(),
            service_matrix: default_matrix(),
            in_repo_dependencies: true,
            package: PackageConfig::default(),
            cache: CacheConfig::default(),
            trust: BTreeMap::new(),
        }
    }
}

fn default_chart_dirs() -> Vec<String> {
    vec!["charts".into(), "helm".into()]
}

/// The newest Kubernetes the pinned schema package knows, and one a year older.
fn default_kube_versions() -> Vec<String> {
    vec!["1.37.0".into(), "1.36.0".into()]
}

fn default_release_name() -> String {
    "robot-shop".into()
}

fn default_true() -> bool {
    true
}

fn default_matrix() -> String {
    "service-matrix.yaml".into()
}

impl Config {
    /// The mirrors of `xtask.toml` with `--mirror FROM=TO` flags over them
    /// (a flag wins for the repository it names).
    pub fn mirrors_with(&self, flags: &[String]) -> Result<BTreeMap<String, String>> {
        let mut mirrors = self.mirrors.clone();
        for flag in flags {
            let (from, to) = parse_mirror(flag)?;
            mirrors.insert(from, to);
        }
        Ok(mirrors)
    }

    /// The `[trust]` entry for a dependency repository as Chart.yaml
    /// declares it: the longest prefix that is the repository or a parent
    /// of it (`oci://h/a` covers `oci://h/a/b`, not `oci://h/ab`).
    pub fn trust_for(&self, repository: &str) -> Option<(&str, &TrustKeys)> {
        let repository = repository.trim_end_matches('/');
        self.trust
            .iter()
            .filter(|(prefix, _)| repository == prefix.as_str() || repository.starts_with(&format!("{prefix}/")))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(prefix, keys)| (prefix.as_str(), keys))
    }

    /// Loads `<root>/xtask.toml` if it exists, else the defaults.
    pub fn load(root: &Path) -> Result<Config> {
        let path = root.join(FILE_NAME);
        if path.symlink_metadata().is_err() {
            return Ok(Config::default());
        }
        // A pull request controls this file: a link out of the repository is
        // refused like any other hostile input (a failed check, exit 1).
        crate::util::fs::inside(root, &path)?;
        let text = std::fs::read_to_string(&path).with_context(|| format!("{FILE_NAME}: cannot read file"))?;
        toml::from_str(&text)
            .map_err(|err| crate::util::exit::UsageError(format!("{FILE_NAME}: {}", err.to_string().trim_end())).into())
    }
}

/// Parses `FROM=TO` mirror flags.
pub fn parse_mirror(flag: &str) -> Result<(String, String)> {
    match flag.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => {
            Ok((from.trim_end_matches('/').to_string(), to.trim_end_matches('/').to_string()))
        }
        _ => crate::util::exit::usage(format!(
            "--mirror {flag:?}: expected FROM=TO, e.g. oci://charts.example/bitnamicharts=oci://127.0.0.1:5000/bitnamicharts"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> String {
        match toml::from_str::<Config>(text) {
            Ok(_) => String::new(),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn paths_and_names_from_the_file_stay_inside() {
        assert_eq!(parse("chart-dirs = [\"charts\", \"helm/sub\"]\nrelease-name = \"shop\"\n"), "");
        for (text, line) in [
            ("chart-dirs = [\"charts\", \"../../outside\"]\n", 1),
            ("\nservice-matrix = \"/etc/passwd\"\n", 2),
            ("release-name = \"../x\"\n", 1),
        ] {
            let err = parse(text);
            assert!(
                err.contains(&format!("line {line}")) && err.contains("not allowed")
                    || err.contains("inside the repository"),
                "{err}"
            );
        }
        assert!(parse("[package]\nallow-symlinks = true\n").is_empty());
        let key = crate::util::signing::PrivateKey::generate().unwrap().public();
        assert_eq!(parse(&format!("[cache]\nremote = \"oci://ghcr.io/acme/cache\"\ntrusted-keys = [\"{key}\"]\n")), "");
        let err = parse("[cache]\ntrusted-keys = [\"ed25519:nope\"]\n");
        assert!(err.contains("line 2") && err.contains("ed25519:nope"), "{err}");
        assert!(parse("[cache]\nremote-write = true\n").contains("unknown field"));
    }

    #[test]
    fn trust_prefixes_name_keys_inside_the_repository() {
        let text = "[trust.\"oci://127.0.0.1:5000/bitnamicharts\"]\nkeyring = \"keys/bitnami.gpg\"\n[trust.\"oci://127.0.0.1:5000/bitnamicharts/special/\"]\ncosign-key = \"keys/cosign.pub\"\n";
        let config: Config = toml::from_str(text).expect("parses");
        let (prefix, keys) = config.trust_for("oci://127.0.0.1:5000/bitnamicharts").expect("covered");
        assert_eq!((prefix, keys.keyring.as_deref()), ("oci://127.0.0.1:5000/bitnamicharts", Some("keys/bitnami.gpg")));
        let (prefix, _) = config.trust_for("oci://127.0.0.1:5000/bitnamicharts/special/x").expect("covered");
        assert!(prefix.ends_with("/special"), "{prefix}");
        assert!(config.trust_for("oci://127.0.0.1:5000/bitnamichartsx").is_none());
        for (bad, says) in [
            ("[trust.\"oci://h/a\"]\nkeyring = \"../outside.gpg\"\n", "inside the repository"),
            ("[trust.\"oci://h/a\"]\ncosign-key = \"/etc/key.pub\"\n", "inside the repository"),
            ("[trust.\"https://h/a\"]\nkeyring = \"k.gpg\"\n", "OCI repository prefix"),
            ("[trust.\"oci://h/a\"]\n", "names no key"),
            ("[trust.\"oci://h/a\"]\nkey = \"k\"\n", "unknown field"),
        ] {
            let err = parse(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
