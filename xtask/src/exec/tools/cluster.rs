//! The control plane's two programs, kube-apiserver and etcd, built from
//! their published Go modules by `cargo xtask tools --cluster` into the
//! per-user cache, at the versions `pins.toml` names.
//!
//! Neither can be had otherwise here: release downloads are out of reach,
//! and `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.N.M` is refused
//! because k8s.io/kubernetes's go.mod replaces its staging modules
//! (`k8s.io/api`, `k8s.io/apiserver`, ...) with `./staging/...` folders that
//! a module zip does not carry. So each program is a small wrapper module
//! of our own:
//! - `cluster/apiserver/main.go`: upstream's `cmd/kube-apiserver` main in
//!   five lines, with a go.mod written here at build time: it requires the
//!   pinned k8s.io/kubernetes, and each of that version's own `k8s.io/X =>
//!   ./staging/src/k8s.io/X` lines becomes `k8s.io/X => k8s.io/X v0.N.M`
//!   (the published staging tags of Kubernetes 1.N.M), so a version bump is
//!   one line in pins.toml and the list of staging modules follows it.
//! - `cluster/etcd/main.go`: a single-member etcd on `embed`, loopback
//!   only, that can pick its own client port and tell the caller.
//!
//! The Go sources are files in the repository, not strings in this file, so
//! they are read, reviewed and highlighted as Go; `include_str!` compiles
//! them into the xtask, so a build works from any checkout (`--root`). The
//! go.mod is generated because its content belongs to the pinned version.
//!
//! A build goes into `<cache>/tools/<name>/<version>-<hash>/`, where the
//! hash covers the wrapper's source and ldflags: editing a main.go builds
//! anew, anything else finds the binary by its folder name without
//! starting a process. The folder also keeps the wrapper's `src/` (main.go,
//! go.mod, go.sum): the exact dependency set that was built.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Deserialize;

use super::Tool;
use crate::core::context::Context;
use crate::util::exit::EnvironmentError;

const APISERVER_MAIN: &str = include_str!("cluster/apiserver/main.go");
const ETCD_MAIN: &str = include_str!("cluster/etcd/main.go");

/// A program built from a wrapper module of ours around a pinned module.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WrapperPin {
    /// Without a leading `v`.
    pub version: String,
    /// An environment variable naming a binary to use instead.
    pub env: String,
    /// The Go module the wrapper requires.
    pub module: String,
    /// Template: `{version}`, `{major}`, `{minor}`, `{build-date}`.
    #[serde(default)]
    pub ldflags: String,
    /// Arguments that make the binary print its version.
    pub version_args: Vec<String>,
}

/// kube-apiserver and etcd, found or built.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterTools {
    pub kube_apiserver: Tool,
    pub etcd: Tool,
}

/// The lines `cargo xtask tools --cluster` prints.
pub fn lines(tools: &ClusterTools) -> String {
    [&tools.kube_apiserver, &tools.etcd]
        .iter()
        .map(|tool| format!("{}\t{}\t{}\n", tool.name, tool.version, tool.path.display()))
        .collect()
}

/// Both programs, from `$XTASK_KUBE_APISERVER`/`$XTASK_ETCD`, the cache, or
/// a build (several minutes once; see `pins.toml`).
pub fn ensure(ctx: &Context) -> Result<ClusterTools> {
    let pins = super::pins::load()?;
    let mut probes = super::locate::Probes::load(ctx);
    let tools = (|| {
        Ok(ClusterTools {
            kube_apiserver: ensure_one(ctx, &Wrapper::apiserver(&pins.kube_apiserver), &mut probes)?,
            etcd: ensure_one(ctx, &Wrapper::etcd(&pins.etcd), &mut probes)?,
        })
    })();
    probes.save();
    tools
}

/// One wrapped program: its pin, binary name, main.go, and how its go.mod
/// is written from the pinned module's own go.mod.
struct Wrapper<'a> {
    pin: &'a WrapperPin,
    name: &'static str,
    main_go: &'static str,
    go_mod: fn(&WrapperPin, &ModFile) -> Result<String>,
    /// What a first build costs, measured on two cores, for the message.
    cost: &'static str,
}

impl<'a> Wrapper<'a> {
    fn apiserver(pin: &'a WrapperPin) -> Wrapper<'a> {
        Wrapper {
            pin,
            name: "kube-apiserver",
            main_go: APISERVER_MAIN,
            go_mod: apiserver_go_mod,
            cost: "about 12 CPU-minutes and 3 GB of Go build cache",
        }
    }

    fn etcd(pin: &'a WrapperPin) -> Wrapper<'a> {
        Wrapper { pin, name: "etcd", main_go: ETCD_MAIN, go_mod: plain_go_mod, cost: "a minute or two" }
    }

    /// `<cache>/tools/<name>/<version>-<hash of main.go and ldflags>`.
    fn dir(&self, ctx: &Context) -> PathBuf {
        let hash = crate::util::fs::sha256_hex(format!("{}\n{}", self.main_go, self.pin.ldflags).as_bytes());
        ctx.cache_dir.join("tools").join(self.name).join(format!("{}-{}", self.pin.version, &hash[..12]))
    }
}

fn ensure_one(ctx: &Context, wrapper: &Wrapper<'_>, probes: &mut super::locate::Probes) -> Result<Tool> {
    let pin = wrapper.pin;
    let tool = |path: PathBuf, version: &str| Tool { name: wrapper.name.into(), version: version.into(), path };
    if let Some(value) = std::env::var_os(&pin.env) {
        let path = PathBuf::from(value);
        if !path.is_file() {
            return crate::util::exit::environment(format!(
                "{}={}: no such file (point it at a {} {} binary, or unset it)",
                pin.env,
                path.display(),
                wrapper.name,
                pin.version
            ));
        }
        let reported = probes.version_with(wrapper.name, &pin.version_args, &path)?;
        if reported != pin.version {
            eprintln!(
                "{} {}: using {}={} although it reports version {reported:?}",
                wrapper.name,
                pin.version,
                pin.env,
                path.display()
            );
        }
        return Ok(tool(path, &reported));
    }
    // Not PATH: an etcd there is upstream's, whose flags are not the
    // wrapper's, and the folder name below is what vouches for a version.
    let dir = wrapper.dir(ctx);
    let binary = dir.join(wrapper.name);
    if !binary.is_file() {
        // Parallel first runs build once: the others wait, then find it.
        let _lock = crate::util::fs::lock_file(&ctx.cache_dir.join(".install.lock"))?;
        if !binary.is_file() {
            build(wrapper, &dir)?;
        }
    }
    Ok(tool(binary, &pin.version))
}

/// What `go mod edit -json` says of a go.mod.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ModFile {
    #[serde(default)]
    go: Option<String>,
    #[serde(default)]
    godebug: Vec<Godebug>,
    #[serde(default)]
    replace: Vec<Replace>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Godebug {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Replace {
    old: ModuleVersion,
    new: ModuleVersion,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ModuleVersion {
    path: String,
    #[serde(default)]
    version: Option<String>,
}

/// The pinned k8s.io/kubernetes with its staging modules replaced by their
/// published `v0.N.M` versions, its other replacements kept, and its
/// `go` and `godebug` lines (which only a main module's go.mod applies).
fn apiserver_go_mod(pin: &WrapperPin, upstream: &ModFile) -> Result<String> {
    let staging = staging_version(&pin.version)?;
    let mut replace = String::new();
    for entry in &upstream.replace {
        let old = &entry.old.path;
        let line = match &entry.new.version {
            Some(version) => format!("{old} => {} {version}", entry.new.path),
            None if entry.new.path == format!("./staging/src/{old}") => format!("{old} => {old} v{staging}"),
            None => anyhow::bail!(
                "{}@v{}'s go.mod replaces {old} with the folder {}, which is neither a staging module nor published: teach tools/cluster.rs about it",
                pin.module,
                pin.version,
                entry.new.path
            ),
        };
        replace.push_str(&format!("\t{line}\n"));
    }
    let mut text = plain_go_mod(pin, upstream)?;
    for godebug in &upstream.godebug {
        text.push_str(&format!("\ngodebug {}={}\n", godebug.key, godebug.value));
    }
    if !replace.is_empty() {
        text.push_str(&format!("\nreplace (\n{replace})\n"));
    }
    Ok(text)
}

/// A module that requires the pinned one, at the Go version it asks for.
/// (etcd's go.mod replaces its sibling modules with folders too, but its
/// requirements already name the published siblings at the same version.)
fn plain_go_mod(pin: &WrapperPin, upstream: &ModFile) -> Result<String> {
    let go = upstream.go.as_deref().unwrap_or("1.22");
    Ok(format!(
        "// Written by `cargo xtask tools --cluster` (xtask/src/exec/tools/cluster.rs).\nmodule robot-shop.invalid/xtask-wrapper\n\ngo {go}\n\nrequire {} v{}\n",
        pin.module, pin.version
    ))
}

/// Kubernetes 1.N.M's staging modules are tagged v0.N.M.
fn staging_version(version: &str) -> Result<String> {
    match version.split('.').collect::<Vec<_>>()[..] {
        ["1", minor, patch] => Ok(format!("0.{minor}.{patch}")),
        _ => anyhow::bail!("kube-apiserver version {version:?} in pins.toml is not 1.N.M"),
    }
}

/// The ldflags with their placeholders filled in.
fn ldflags(pin: &WrapperPin, build_date: &str) -> String {
    let mut parts = pin.version.split('.');
    let (major, minor) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    pin.ldflags
        .replace("{version}", &pin.version)
        .replace("{major}", major)
        .replace("{minor}", minor)
        .replace("{build-date}", build_date)
}

/// Writes the wrapper module in a temporary folder beside `dest`, resolves
/// its dependencies (`go mod tidy`), builds it, checks the version the new
/// binary reports, and renames the folder to `dest`.
fn build(wrapper: &Wrapper<'_>, dest: &Path) -> Result<()> {
    let (pin, name) = (wrapper.pin, wrapper.name);
    let spec = format!("{}@v{}", pin.module, pin.version);
    let fail = |what: String| -> anyhow::Error {
        EnvironmentError(format!(
            "{name} {}: {what}\n(it is built from the Go module {spec} by `cargo xtask tools --cluster`; or set {} to a {name} {} binary)",
            pin.version, pin.env, pin.version
        ))
        .into()
    };
    let staging = super::staging_beside(name, dest)?;
    let Ok(go) = which::which("go") else {
        return Err(fail("`go` is not on PATH to build it; install Go".into()));
    };
    eprintln!("{name} {}: building from {spec} (once per machine: {})", pin.version, wrapper.cost);
    let sh = xshell::Shell::new()?;
    let src = staging.path().join("src");
    std::fs::create_dir_all(&src)?;
    sh.change_dir(&src);
    // GOWORK off: a go.work around the cache must not join in; GOTOOLCHAIN
    // local: a too old Go says so instead of trying to download a newer one.
    let go_cmd = |args: &[&str]| {
        xshell::cmd!(sh, "{go} {args...}").env("GOWORK", "off").env("GOTOOLCHAIN", "local").env("CGO_ENABLED", "0")
    };
    let run = |args: &[&str], what: &str| -> Result<crate::exec::process::Finished> {
        let finished = crate::exec::process::run(go_cmd(args), None)?;
        if finished.success {
            Ok(finished)
        } else {
            Err(fail(format!(
                "`{}` failed ({what}):\n{}",
                finished.display,
                crate::exec::process::tail(&finished.combined(), 20)
            )))
        }
    };

    let download = run(&["mod", "download", "-json", &spec], "download the pinned module")?;
    let info: serde_json::Value = serde_json::from_str(&download.stdout).context("go mod download -json")?;
    let field = |key: &str| info.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let (upstream_mod, info_file) = (field("GoMod"), field("Info"));
    let edited = run(&["mod", "edit", "-json", &upstream_mod], "read the pinned module's go.mod")?;
    let upstream: ModFile = serde_json::from_str(&edited.stdout).context("go mod edit -json")?;
    // The release's tag time from the module proxy: the build date the
    // binary reports, the same on every machine.
    let build_date = std::fs::read_to_string(&info_file)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v.get("Time").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());

    std::fs::write(src.join("go.mod"), (wrapper.go_mod)(pin, &upstream)?)?;
    std::fs::write(src.join("main.go"), wrapper.main_go)?;
    run(&["mod", "tidy"], "resolve the wrapper module's dependencies")?;
    let binary = staging.path().join(name);
    let flags = ldflags(pin, &build_date);
    let out = binary.display().to_string();
    run(&["build", "-trimpath", "-ldflags", &flags, "-o", &out, "."], "build")?;

    let reported = super::locate::probe_with(name, &pin.version_args, &binary)?;
    if reported != pin.version {
        return Err(fail(format!(
            "the new binary reports version {reported:?}, so it was not installed (are the ldflags in tools/pins.toml right?)"
        )));
    }
    match std::fs::rename(staging.path(), dest) {
        Ok(()) => {
            let _ = staging.keep();
        }
        // Another run got there first: its build is as good as ours.
        Err(_) if dest.join(name).is_file() => {}
        Err(err) => {
            return Err(err)
                .with_context(|| format!("{name} {}: cannot move the build into {}", pin.version, dest.display()))
        }
    }
    eprintln!("{name} {}: installed {}", pin.version, dest.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin() -> WrapperPin {
        super::super::pins::load().expect("pins").kube_apiserver
    }

    #[test]
    fn staging_modules_become_their_published_versions() {
        let upstream: ModFile = serde_json::from_str(
            r#"{"Go":"1.26.0","Godebug":[{"Key":"default","Value":"go1.26"}],"Replace":[
                {"Old":{"Path":"k8s.io/api"},"New":{"Path":"./staging/src/k8s.io/api"}},
                {"Old":{"Path":"example.com/x"},"New":{"Path":"example.com/y","Version":"v1.2.3"}}]}"#,
        )
        .expect("mod json");
        let mut pin = pin();
        pin.version = "1.37.2".into();
        let text = apiserver_go_mod(&pin, &upstream).expect("go.mod");
        assert!(text.contains("\ngo 1.26.0\n"), "{text}");
        assert!(text.contains("require k8s.io/kubernetes v1.37.2\n"), "{text}");
        assert!(text.contains("godebug default=go1.26"), "{text}");
        assert!(text.contains("\tk8s.io/api => k8s.io/api v0.37.2\n"), "{text}");
        assert!(text.contains("\texample.com/x => example.com/y v1.2.3\n"), "{text}");
    }

    #[test]
    fn an_unknown_local_replacement_is_refused() {
        let upstream: ModFile =
            serde_json::from_str(r#"{"Replace":[{"Old":{"Path":"k8s.io/api"},"New":{"Path":"../elsewhere"}}]}"#)
                .expect("mod json");
        let err = apiserver_go_mod(&pin(), &upstream).expect_err("refused");
        assert!(format!("{err:#}").contains("../elsewhere"), "{err:#}");
    }

    #[test]
    fn ldflags_stamp_major_minor_and_date() {
        let flags = ldflags(&pin(), "2026-10-27T12:01:04Z");
        let version = pin().version;
        assert!(flags.contains(&format!("gitVersion=v{version}")), "{flags}");
        assert!(flags.contains("gitMajor=1 "), "{flags}");
        assert!(flags.contains(&format!("gitMinor={} ", version.split('.').nth(1).unwrap())), "{flags}");
        assert!(flags.contains("buildDate=2026-10-27T12:01:04Z"), "{flags}");
        assert!(!flags.contains('{'), "{flags}");
        assert_eq!(staging_version("1.37.2").unwrap(), "0.37.2");
        assert!(staging_version("2.0").is_err());
    }
}
