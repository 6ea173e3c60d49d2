//! The pinned tool versions: `pins.toml`, compiled into the binary, and the
//! small amount of logic that turns its templates into URLs and commands.

use anyhow::{Context as _, Result};
use serde::Deserialize;

/// The text of `pins.toml`, the single source of tool versions.
const PINS_TOML: &str = include_str!("pins.toml");

/// Everything `pins.toml` pins.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Pins {
    pub helm: ToolPin,
    pub kubeconform: ToolPin,
    pub registry: ToolPin,
    pub cosign: ToolPin,
    pub kubernetes_validate: PackagePin,
    /// chart-testing and its helpers (see `chart_testing.rs`).
    pub ct: super::chart_testing::GoBuildPin,
    pub helm_unittest: super::chart_testing::GoBuildPin,
    pub chart_testing_python: super::chart_testing::PythonPin,
    /// The control plane (see `cluster.rs`).
    pub kube_apiserver: super::cluster::WrapperPin,
    pub etcd: super::cluster::WrapperPin,
    /// The CRD files taken from upstream Go modules, by name (see `crds.rs`).
    pub crds: std::collections::BTreeMap<String, super::crds::CrdPin>,
}

/// One binary tool at one version, and the ways to get it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ToolPin {
    /// The binary's file name; filled in from the table name.
    #[serde(skip)]
    pub name: String,
    /// Without a leading `v`.
    pub version: String,
    /// The environment variable that points at a binary to use instead.
    pub env: String,
    /// Arguments that make the binary print its version.
    pub version_args: Vec<String>,
    /// The start of the output line that holds the version, when it is not
    /// the first line (cosign prints a banner first).
    #[serde(default)]
    pub version_line: Option<String>,
    pub go_module: String,
    /// Template: `{version}`.
    go_ldflags: String,
    /// The official release archive, when there is one.
    pub release: Option<Release>,
}

/// An official release: a tar.gz archive and its published checksum file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Release {
    url: String,
    checksum_url: String,
    /// The binary's path inside the archive.
    binary: String,
}

/// A PyPI package pinned by version and wheel hash.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PackagePin {
    pub version: String,
    pub wheel_sha256: String,
}

/// Reads the compiled-in pins. Cheap (a few microseconds), so callers need
/// not cache it.
pub fn load() -> Result<Pins> {
    let mut pins: Pins = toml::from_str(PINS_TOML).context("tools/pins.toml is not valid")?;
    pins.helm.name = "helm".into();
    pins.kubeconform.name = "kubeconform".into();
    pins.registry.name = "registry".into();
    pins.cosign.name = "cosign".into();
    for (name, pin) in &mut pins.crds {
        pin.name = name.clone();
    }
    Ok(pins)
}

impl ToolPin {
    /// `go install`'s `-ldflags` value, which stamps the release version
    /// into the binary.
    pub fn go_ldflags(&self) -> String {
        self.go_ldflags.replace("{version}", &self.version)
    }

    /// `<module>@v<version>`.
    pub fn go_spec(&self) -> String {
        format!("{}@v{}", self.go_module, self.version)
    }

    /// The full `go install` command line, for messages that tell people
    /// how to install the tool themselves.
    pub fn go_install_line(&self) -> String {
        format!("go install -trimpath -ldflags '{}' {}", self.go_ldflags(), self.go_spec())
    }

    /// The version in a binary's output: on the line that starts with
    /// `line` when given, else on the first line (see [`Self::reported_version`]).
    pub fn version_in(output: &str, line: Option<&str>) -> String {
        match line {
            Some(prefix) => output
                .lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix(prefix))
                .map_or_else(String::new, Self::reported_version),
            None => Self::reported_version(output),
        }
    }

    /// The version a binary reported, reduced to `X.Y.Z` when it is one:
    /// the last word of the first line, without a leading `v` and without
    /// semver build metadata (`+unknown`).
    pub fn reported_version(output: &str) -> String {
        let line = output.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        let word = line.split_whitespace().last().unwrap_or("");
        let word = word.strip_prefix('v').unwrap_or(word);
        word.split('+').next().unwrap_or(word).to_string()
    }
}

impl Release {
    /// The archive URL, the checksum file URL and the binary's path inside
    /// the archive, for this machine's OS and CPU.
    pub fn for_this_machine(&self, version: &str) -> Result<(String, String, String)> {
        let (os, arch) = platform()?;
        let fill = |template: &str| template.replace("{version}", version).replace("{os}", os).replace("{arch}", arch);
        Ok((fill(&self.url), fill(&self.checksum_url), fill(&self.binary)))
    }
}

/// This machine as release files name it (Go's GOOS/GOARCH spelling).
fn platform() -> Result<(&'static str, &'static str)> {
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "darwin",
        other => {
            anyhow::bail!("no release archives are configured for the {other} operating system")
        }
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => anyhow::bail!("no release archives are configured for the {other} processor"),
    };
    Ok((os, arch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_and_name_their_tools() {
        let pins = load().expect("pins.toml parses");
        assert_eq!(pins.helm.name, "helm");
        assert_eq!(pins.helm.version, "4.3.1");
        assert_eq!(pins.helm.go_ldflags(), "-X helm.sh/helm/v4/internal/version.version=v4.3.1");
        assert_eq!(pins.kubeconform.go_spec(), "github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0");
        assert!(pins.registry.release.is_none());
        assert_eq!(pins.cosign.go_spec(), "github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3");
        assert_eq!(pins.cosign.version_line.as_deref(), Some("GitVersion:"));
    }

    #[test]
    fn reported_versions_are_normalised() {
        assert_eq!(ToolPin::reported_version("v4.3.1\n"), "4.3.1");
        assert_eq!(ToolPin::reported_version("v4.3"), "4.3");
        assert_eq!(ToolPin::reported_version("development"), "development");
        assert_eq!(
            ToolPin::reported_version("registry github.com/distribution/distribution/v3 v3.1.2+unknown"),
            "3.1.2"
        );
        assert_eq!(ToolPin::reported_version(""), "");
        let cosign = "  ______  \n / ____/\ncosign: A tool for Container Signing\n\nGitVersion:    v3.1.3\nGitCommit:     unknown\n";
        assert_eq!(ToolPin::version_in(cosign, Some("GitVersion:")), "3.1.3");
        assert_eq!(ToolPin::version_in("GitCommit: x\n", Some("GitVersion:")), "");
    }
}
