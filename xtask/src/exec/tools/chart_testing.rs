//! chart-testing's tools: `ct` itself (the benchmark and the tests compare
//! against it), the helm-unittest plugin (`additional-commands` such as
//! `helm unittest {{ .Path }}`), and yamllint and yamale from PyPI (ct's
//! YAML and Chart.yaml checks, which `cargo xtask lint` runs too).
//!
//! All are pinned in `pins.toml` and installed into the per-user cache the
//! way `install.rs` installs helm: built in a temporary folder beside the
//! final one and renamed into place only when complete, so a folder named
//! after a version always holds a whole install.
//!
//! The two Go programs are built from their downloaded module (`go mod
//! download`, then `go build` inside it) rather than with `go install
//! module@version`: helm-unittest's go.mod has `replace` directives, which
//! `go install` refuses, and for chart-testing the module proxy here refuses
//! the version list `go install` asks for to report deprecations (measured:
//! 403), while the module itself downloads fine.
//!
//! The helm-unittest plugin is laid out as `helm plugin install` would lay
//! it out, without running the plugin's install hook (which downloads a
//! release from GitHub): `<dir>/plugins/unittest/plugin.yaml` from the
//! module, and next to it the binary under the name its `platformCommand`
//! gives for this machine. Commands then run with `HELM_PLUGINS` pointing
//! at `<dir>/plugins`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Deserialize;

use super::Tool;
use crate::core::context::Context;
use crate::util::exit::EnvironmentError;

/// A Go program built from its module source.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GoBuildPin {
    /// Without a leading `v`.
    pub version: String,
    /// An environment variable naming a binary to use instead.
    #[serde(default)]
    pub env: Option<String>,
    /// The Go module (what `go mod download` takes).
    pub module: String,
    /// The main package inside the module, relative (`./ct`).
    pub package: String,
    /// Template: `{version}`.
    pub ldflags: String,
    /// Arguments that make the binary print its version, when it has any.
    #[serde(default)]
    pub version_args: Vec<String>,
}

/// Python packages installed together with pip, each pinned exactly.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PythonPin {
    /// `name==version` lines; installed with `--no-deps`, so every
    /// dependency is listed and pinned here too.
    pub requirements: Vec<String>,
}

impl PythonPin {
    /// The pinned version of one package (`yamllint` -> `1.37.1`).
    pub fn version_of(&self, package: &str) -> String {
        self.requirements
            .iter()
            .find_map(|r| {
                r.split_once("==").filter(|(name, _)| name.eq_ignore_ascii_case(package)).map(|(_, v)| v.to_string())
            })
            .unwrap_or_default()
    }
}

/// yamllint and yamale, installed with pip into one folder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PythonTools {
    /// The interpreter the packages were installed for (compiled parts of
    /// PyYAML only load in it).
    pub python: PathBuf,
    /// Goes on `PYTHONPATH`.
    pub lib: PathBuf,
    /// Holds `yamllint` and `yamale` wrappers that run with that path, for
    /// ct (which starts them by name from PATH).
    pub bin: PathBuf,
    pub yamllint: String,
    pub yamale: String,
}

/// chart-testing's `ct` and the configuration files its image ships in
/// `/etc/ct` (ct looks for them there when a config names none).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CtTool {
    pub tool: Tool,
    /// Holds `chart_schema.yaml` and `lintconf.yaml` of the pinned release.
    pub etc: PathBuf,
}

/// Everything `cargo xtask tools --chart-testing` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChartTestingTools {
    pub ct: CtTool,
    /// `path` is the folder to use as `HELM_PLUGINS`.
    pub helm_unittest: Tool,
    pub python: PythonTools,
}

/// `ct`, helm-unittest and the Python linters, found or installed.
pub fn ensure_all(ctx: &Context) -> Result<ChartTestingTools> {
    Ok(ChartTestingTools { ct: ensure_ct(ctx)?, helm_unittest: ensure_unittest(ctx)?, python: ensure_python(ctx)? })
}

/// The lines `cargo xtask tools --chart-testing` prints.
pub fn lines(tools: &ChartTestingTools) -> String {
    format!(
        "ct\t{}\t{}\nct-etc\t{}\t{}\nhelm-unittest\t{}\t{}\nyamllint\t{}\t{}\nyamale\t{}\t{}\n",
        tools.ct.tool.version,
        tools.ct.tool.path.display(),
        tools.ct.tool.version,
        tools.ct.etc.display(),
        tools.helm_unittest.version,
        tools.helm_unittest.path.display(),
        tools.python.yamllint,
        tools.python.bin.join("yamllint").display(),
        tools.python.yamale,
        tools.python.bin.join("yamale").display(),
    )
}

/// `ct` at its pinned version (or `$XTASK_CT`), with ct's `etc/` files.
pub fn ensure_ct(ctx: &Context) -> Result<CtTool> {
    let pin = super::pins::load()?.ct;
    let dir = ctx.cache_dir.join("tools").join("ct").join(&pin.version);
    let env_binary = pin.env.as_deref().and_then(std::env::var_os).map(PathBuf::from);
    if let Some(binary) = &env_binary {
        if !binary.is_file() {
            return crate::util::exit::environment(format!(
                "{}={}: no such file (point it at a ct {} binary, or unset it)",
                pin.env.as_deref().unwrap_or_default(),
                binary.display(),
                pin.version
            ));
        }
    }
    if env_binary.is_none() && !dir.join("ct").is_file() {
        build_into("ct", &pin, &dir, |source, staging| {
            // ct finds these in /etc/ct in its own image; here they live
            // beside the binary and are passed with --lint-conf and
            // --chart-yaml-schema.
            let etc = staging.join("etc");
            std::fs::create_dir_all(&etc)?;
            for file in ["chart_schema.yaml", "lintconf.yaml"] {
                std::fs::copy(source.join("etc").join(file), etc.join(file))
                    .with_context(|| format!("ct {}: the module has no etc/{file}", pin.version))?;
            }
            Ok(staging.join("ct"))
        })?;
    }
    if env_binary.is_none() && !dir.join("etc").join("lintconf.yaml").is_file() {
        return crate::util::exit::environment(format!(
            "ct {}: {} is incomplete; remove it and run again",
            pin.version,
            dir.display()
        ));
    }
    let etc = if env_binary.is_some() { ensure_etc(ctx)? } else { dir.join("etc") };
    let path = env_binary.unwrap_or_else(|| dir.join("ct"));
    Ok(CtTool { tool: Tool { name: "ct".into(), version: pin.version.clone(), path }, etc })
}

/// ct's default `etc/chart_schema.yaml` and `etc/lintconf.yaml`, taken from
/// the pinned ct release's Go module (a download, no build): what `ct lint`
/// uses when ct.yaml names no other files. They are ct's files, so they are
/// fetched at their pinned version rather than copied into this repository.
pub fn ensure_etc(ctx: &Context) -> Result<PathBuf> {
    let pin = super::pins::load()?.ct;
    let dir = ctx.cache_dir.join("tools").join("ct").join(&pin.version);
    let etc = dir.join("etc");
    if etc.join("lintconf.yaml").is_file() && etc.join("chart_schema.yaml").is_file() {
        return Ok(etc);
    }
    let spec = format!("{}@v{}", pin.module, pin.version);
    let Ok(go) = which::which("go") else {
        return Err(EnvironmentError(format!(
            "ct {}: its default lint configuration comes from the Go module {spec}, and `go` is not on PATH; install Go, or set lint-conf and chart-yaml-schema in ct.yaml",
            pin.version
        ))
        .into());
    };
    let sh = xshell::Shell::new()?;
    let download =
        crate::exec::process::run(xshell::cmd!(sh, "{go} mod download -json {spec}").env("GOWORK", "off"), None)?;
    let source = serde_json::from_str::<serde_json::Value>(&download.stdout)
        .ok()
        .and_then(|v| v.get("Dir").and_then(|d| d.as_str()).map(PathBuf::from))
        .filter(|_| download.success)
        .ok_or_else(|| {
            EnvironmentError(format!("ct {}: `go mod download {spec}` failed:\n{}", pin.version, download.combined()))
        })?;
    for file in ["chart_schema.yaml", "lintconf.yaml"] {
        let text = std::fs::read(source.join("etc").join(file))
            .with_context(|| format!("ct {}: the module has no etc/{file}", pin.version))?;
        crate::util::fs::write_atomic(&etc.join(file), &text)?;
    }
    Ok(etc)
}

/// The helm-unittest plugin; the returned tool's `path` is its `HELM_PLUGINS` folder.
pub fn ensure_unittest(ctx: &Context) -> Result<Tool> {
    let pin = super::pins::load()?.helm_unittest;
    let dir = ctx.cache_dir.join("tools").join("helm-unittest").join(&pin.version);
    let plugins = dir.join("plugins");
    if !plugins.join("unittest").join("plugin.yaml").is_file() {
        build_into("helm-unittest", &pin, &dir, |source, staging| {
            let plugin_dir = staging.join("plugins").join("unittest");
            std::fs::create_dir_all(&plugin_dir)?;
            let manifest = std::fs::read_to_string(source.join("plugin.yaml"))
                .with_context(|| format!("helm-unittest {}: the module has no plugin.yaml", pin.version))?;
            let binary = platform_command(&manifest).with_context(|| {
                format!("helm-unittest {}: plugin.yaml has no platformCommand for this machine", pin.version)
            })?;
            std::fs::write(plugin_dir.join("plugin.yaml"), &manifest)?;
            Ok(plugin_dir.join(binary))
        })?;
    }
    Ok(Tool { name: "helm-unittest".into(), version: pin.version.clone(), path: plugins })
}

/// The file name of the plugin's command for this OS and CPU, from
/// `platformCommand` (`$HELM_PLUGIN_DIR/untt-linux-amd64` -> `untt-linux-amd64`).
fn platform_command(manifest: &str) -> Option<String> {
    let value: yaml_serde::Value = yaml_serde::from_str(manifest).ok()?;
    let (os, arch) = (go_os(), go_arch());
    value.get("platformCommand")?.as_sequence()?.iter().find_map(|entry| {
        let matches = entry.get("os")?.as_str()? == os && entry.get("arch")?.as_str()? == arch;
        let command = entry.get("command")?.as_str()?;
        matches.then(|| command.rsplit(['/', '\\']).next().unwrap_or(command).to_string())
    })
}

fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Downloads `pin.module`, builds `pin.package` in a temporary folder beside
/// `dest`, lets `lay_out(module_source, staging)` add files and name the
/// binary's place, and renames the folder to `dest`.
fn build_into(
    name: &str,
    pin: &GoBuildPin,
    dest: &Path,
    lay_out: impl FnOnce(&Path, &Path) -> Result<PathBuf>,
) -> Result<()> {
    let staging = super::staging_beside(name, dest)?;
    let how = format!(
        "cd $(go mod download -json {}@v{} | jq -r .Dir) && go build -trimpath -ldflags '{}' -o {name} {}",
        pin.module,
        pin.version,
        pin.ldflags.replace("{version}", &pin.version),
        pin.package
    );
    let Ok(go) = which::which("go") else {
        return Err(EnvironmentError(format!(
            "{name} {} is not installed and `go` is not on PATH to build it; install Go, or build it yourself: {how}",
            pin.version
        ))
        .into());
    };
    eprintln!("{name} {}: building from its Go module (takes a few minutes once)", pin.version);
    let sh = xshell::Shell::new()?;
    sh.change_dir(staging.path());
    let spec = format!("{}@v{}", pin.module, pin.version);
    let download =
        crate::exec::process::run(xshell::cmd!(sh, "{go} mod download -json {spec}").env("GOWORK", "off"), None)?;
    let source = serde_json::from_str::<serde_json::Value>(&download.stdout)
        .ok()
        .and_then(|v| v.get("Dir").and_then(|d| d.as_str()).map(PathBuf::from))
        .filter(|_| download.success);
    let Some(source) = source else {
        return Err(EnvironmentError(format!(
            "{name} {}: `go mod download {spec}` failed:\n{}\nbuild it yourself: {how}",
            pin.version,
            download.combined()
        ))
        .into());
    };
    let binary = lay_out(&source, staging.path())
        .with_context(|| format!("{name} {}: cannot lay out the install", pin.version))?;
    let ldflags = pin.ldflags.replace("{version}", &pin.version);
    let package = &pin.package;
    sh.change_dir(&source);
    let build = crate::exec::process::run(
        xshell::cmd!(sh, "{go} build -trimpath -ldflags {ldflags} -o {binary} {package}")
            .env("GOWORK", "off")
            .env("CGO_ENABLED", "0"),
        None,
    )?;
    if !build.success {
        return Err(EnvironmentError(format!(
            "{name} {}: `go build` in {} failed:\n{}\nbuild it yourself: {how}",
            pin.version,
            source.display(),
            build.combined()
        ))
        .into());
    }
    if !pin.version_args.is_empty() {
        let args = &pin.version_args;
        let probe = crate::exec::process::run(xshell::cmd!(sh, "{binary} {args...}"), None)?;
        let reported = super::pins::ToolPin::reported_version(&probe.stdout);
        if reported != pin.version {
            return Err(EnvironmentError(format!(
                "{name} {}: the new binary reports version {reported:?}, so it was not installed (is the ldflag in tools/pins.toml right?)",
                pin.version
            ))
            .into());
        }
    }
    match std::fs::rename(staging.path(), dest) {
        Ok(()) => {
            let _ = staging.keep();
        }
        // Another run got there first: its install is as good as ours.
        Err(_) if dest.is_dir() => {}
        Err(err) => {
            return Err(err)
                .with_context(|| format!("{name} {}: cannot move the build into {}", pin.version, dest.display()))
        }
    }
    eprintln!("{name} {}: installed {}", pin.version, dest.display());
    Ok(())
}

/// yamllint and yamale at their pins, installed with pip into
/// `<cache>/tools/chart-testing-python/<hash of the pins>/`.
pub fn ensure_python(ctx: &Context) -> Result<PythonTools> {
    let pin = super::pins::load()?.chart_testing_python;
    let id = crate::util::fs::sha256_hex(pin.requirements.join("\n").as_bytes());
    let dir = ctx.cache_dir.join("tools").join("chart-testing-python").join(&id[..16]);
    let marker = dir.join("python");
    if !marker.is_file() {
        install_python(&pin, &dir)?;
    }
    let python = std::fs::read_to_string(&marker)
        .with_context(|| format!("cannot read {}", marker.display()))?
        .trim()
        .to_string();
    Ok(PythonTools {
        python: PathBuf::from(python),
        lib: dir.join("lib"),
        bin: dir.join("bin"),
        yamllint: pin.version_of("yamllint"),
        yamale: pin.version_of("yamale"),
    })
}

fn install_python(pin: &PythonPin, dest: &Path) -> Result<()> {
    let Some(python) = ["python3", "python"].into_iter().find_map(|name| which::which(name).ok()) else {
        return Err(EnvironmentError(format!(
            "yamllint and yamale are needed for ct's checks, and there is no python3 on PATH to install them with pip: install Python 3, or install {} yourself and put them on PATH",
            pin.requirements.join(" ")
        ))
        .into());
    };
    let parent = dest.parent().context("cache path has no parent")?;
    std::fs::create_dir_all(parent)?;
    super::sweep_stale(parent, ".install-");
    let staging = tempfile::Builder::new().prefix(".install-").tempdir_in(parent)?;
    let lib = staging.path().join("lib");
    eprintln!("yamllint, yamale: installing {} with pip", pin.requirements.join(" "));
    let sh = xshell::Shell::new()?;
    let requirements = &pin.requirements;
    // The ordinary pip client, so the user's index, proxy and certificates apply.
    let finished = crate::exec::process::run(
        xshell::cmd!(
            sh,
            "{python} -m pip install --quiet --disable-pip-version-check --no-deps --target {lib} {requirements...}"
        ),
        None,
    )?;
    if !finished.success {
        return Err(EnvironmentError(format!(
            "cannot install {} with pip:\n{}",
            requirements.join(" "),
            finished.combined()
        ))
        .into());
    }
    // The interpreter itself, not a pyenv or venv shim that could switch
    // versions later: PyYAML's compiled part only loads in this one.
    let real = crate::exec::process::run(xshell::cmd!(sh, "{python} -c 'import sys; print(sys.executable)'"), None)?;
    let real = real.stdout.trim().to_string();
    let real = if real.is_empty() { python.display().to_string() } else { real };
    let bin = staging.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    // Absolute, because the wrappers run from any folder.
    let final_lib = std::path::absolute(dest.join("lib")).unwrap_or_else(|_| dest.join("lib"));
    for (name, entry) in [
        ("yamllint", "from yamllint.cli import run; run()".to_string()),
        ("yamale", "from yamale.command_line import main; main()".to_string()),
    ] {
        let script = format!(
            "#!/bin/sh\n# {name} for chart-testing, installed by cargo xtask (tools/chart_testing.rs)\nPYTHONPATH='{}'\"${{PYTHONPATH:+:$PYTHONPATH}}\" exec '{}' -c 'import sys; sys.argv[0] = \"{name}\"; {entry}' \"$@\"\n",
            final_lib.display(),
            real
        );
        let path = bin.join(name);
        std::fs::write(&path, script)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    // Written last: its presence says the folder is complete.
    std::fs::write(staging.path().join("python"), format!("{real}\n"))?;
    match std::fs::rename(staging.path(), dest) {
        Ok(()) => {
            let _ = staging.keep();
        }
        Err(_) if dest.join("python").is_file() => {}
        Err(err) => {
            return Err(err).with_context(|| format!("cannot move the Python packages into {}", dest.display()))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_binary_is_named_by_platform_command() {
        let manifest = "name: unittest\nplatformCommand:\n  - os: linux\n    arch: amd64\n    command: \"$HELM_PLUGIN_DIR/untt-linux-amd64\"\n  - os: darwin\n    arch: arm64\n    command: \"$HELM_PLUGIN_DIR/untt-macos-arm64\"\n";
        let expected = match (go_os(), go_arch()) {
            ("linux", "amd64") => Some("untt-linux-amd64".to_string()),
            ("darwin", "arm64") => Some("untt-macos-arm64".to_string()),
            _ => None,
        };
        assert_eq!(platform_command(manifest), expected);
    }

    #[test]
    fn python_pins_name_their_versions() {
        let pins = super::super::pins::load().unwrap();
        assert_eq!(pins.chart_testing_python.version_of("yamale"), "6.0.0");
        assert!(!pins.chart_testing_python.version_of("yamllint").is_empty());
        assert_eq!(pins.ct.version, "3.14.0");
    }
}
