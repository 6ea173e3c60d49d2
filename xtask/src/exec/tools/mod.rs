//! Finding, checking and installing the external tools: helm, kubeconform,
//! the CNCF distribution registry (tests and mirrors), the offline
//! Kubernetes JSON schemas for kubeconform, and the control plane's
//! kube-apiserver and etcd, the pinned upstream CRDs and their schemas,
//! cosign (signing and verifying published charts); and
//! `cargo xtask tools`, which prints what was found.
//!
//! The map: `pins.toml` holds every version (read by `pins.rs`);
//! `locate.rs` finds a present binary ($XTASK_<TOOL>, the per-user cache,
//! PATH) without starting a process on warm runs; `install.rs` installs the
//! pin (checked release download, else `go install`) through `download.rs`;
//! `schemas.rs` prepares the kubeconform schema folder; `crds.rs` takes the
//! pinned CRD files from Go modules and `crd_schema.rs` turns them into
//! kubeconform schemas; `chart_testing.rs`
//! and `cluster.rs` build Go programs from their downloaded modules.

pub mod chart_testing;
pub mod cluster;
mod crd_schema;
pub mod crds;
mod download;
mod install;
mod locate;
mod pins;
mod schemas;

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::core::context::{Context, Format};
use crate::util::exit::{self, EnvironmentError};

/// One resolved tool.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Tool {
    pub name: String,
    /// Version without a leading `v`, e.g. `4.3.1`.
    pub version: String,
    pub path: PathBuf,
}

/// The prepared offline schema folder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Schemas {
    /// Kubernetes versions (X.Y.Z) the folder has schemas for.
    pub kube_versions: Vec<String>,
    /// Values for kubeconform's `-schema-location`, in order (Kubernetes
    /// built-ins first, then CRDs). The built-in one only resolves with
    /// kubeconform's `-strict`: only the strict schemas are prepared.
    pub locations: Vec<String>,
    /// Identifies the schema content (package version + preparation), for cache keys.
    pub fingerprint: String,
}

/// What `lint` and friends need.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Toolset {
    pub helm: Tool,
    pub kubeconform: Tool,
    pub schemas: Schemas,
}

/// What `cargo xtask tools` resolves and prints.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Resolve only these [default: helm, kubeconform, schemas and crds].
    pub only: Vec<Part>,
    /// A Kubernetes version to prepare schemas for, X.Y.Z; repeatable
    /// [default: `kube-versions` in xtask.toml].
    pub kube_versions: Vec<String>,
    /// Also find or build the CNCF distribution registry (tests, `mirror`).
    pub registry: bool,
    /// Also find or build chart-testing (`ct`), the helm-unittest plugin,
    /// yamllint and yamale (see `chart_testing.rs`).
    pub chart_testing: bool,
    /// Also find or build the control plane: kube-apiserver and etcd (see
    /// `cluster.rs`; the first build takes several CPU-minutes).
    pub cluster: bool,
    /// Also find or build cosign (`package --cosign-key`, `--verify`, `[trust]`).
    pub signing: bool,
}

/// What `cargo xtask tools` can resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Helm,
    Kubeconform,
    /// The kubeconform schema folder (with the schemas of the pinned CRDs).
    Schemas,
    /// The pinned CRD files themselves, which `verify` installs.
    Crds,
    Registry,
    /// Signs and verifies the published charts' OCI digests (also `--signing`).
    Cosign,
}

/// The `--format json` document: the parts that were asked for.
#[derive(Debug, Serialize)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    helm: Option<Tool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kubeconform: Option<Tool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schemas: Option<Schemas>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crds: Option<crds::Crds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry: Option<Tool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cosign: Option<Tool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chart_testing: Option<chart_testing::ChartTestingTools>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<cluster::ClusterTools>,
}

/// Finds or installs helm and kubeconform at their pinned versions and
/// prepares schemas for `kube_versions`. Errors are `EnvironmentError` (exit 3)
/// and say how to get the missing tool.
pub fn ensure(ctx: &Context, kube_versions: &[String]) -> Result<Toolset> {
    let pins = pins::load()?;
    let mut probes = locate::Probes::load(ctx);
    let toolset = (|| {
        Ok(Toolset {
            helm: resolve(ctx, &pins.helm, &mut probes)?,
            kubeconform: resolve(ctx, &pins.kubeconform, &mut probes)?,
            schemas: schemas::ensure(ctx, &pins, kube_versions)?,
        })
    })();
    probes.save();
    toolset.map_err(environment_marked)
}

/// Finds or builds the CNCF distribution registry at its pinned version.
pub fn ensure_registry(ctx: &Context) -> Result<Tool> {
    ensure_one(ctx, |pins| &pins.registry)
}

/// Finds or builds cosign at its pinned version.
pub fn ensure_cosign(ctx: &Context) -> Result<Tool> {
    ensure_one(ctx, |pins| &pins.cosign)
}

/// One pinned binary tool, found or installed.
fn ensure_one(ctx: &Context, pick: fn(&pins::Pins) -> &pins::ToolPin) -> Result<Tool> {
    let pins = pins::load()?;
    let mut probes = locate::Probes::load(ctx);
    let tool = resolve(ctx, pick(&pins), &mut probes);
    probes.save();
    tool.map_err(environment_marked)
}

/// The pinned kube-apiserver version, read without starting anything: what
/// a verdict of `verify` depends on, known before a control plane runs.
pub fn cluster_version() -> Result<String> {
    Ok(pins::load()?.kube_apiserver.version)
}

/// The pinned CRD files, checked against their digests (fetched once).
pub fn ensure_crds(ctx: &Context) -> Result<crds::Crds> {
    crds::ensure(ctx, &pins::load()?.crds).map_err(environment_marked)
}

/// Finds or builds kube-apiserver and etcd at their pinned versions.
pub fn ensure_cluster(ctx: &Context) -> Result<cluster::ClusterTools> {
    cluster::ensure(ctx).map_err(environment_marked)
}

/// `cargo xtask tools`.
pub fn run(args: Opts, ctx: &Context) -> Result<()> {
    let kube_versions =
        if args.kube_versions.is_empty() { ctx.config.kube_versions.clone() } else { args.kube_versions.clone() };
    for version in &kube_versions {
        schemas::check_kube_version(version)?;
    }
    let wanted = |part: Part| {
        let extra = matches!(part, Part::Registry | Part::Cosign);
        let listed = if args.only.is_empty() { !extra } else { args.only.contains(&part) };
        listed || (part == Part::Registry && args.registry) || (part == Part::Cosign && args.signing)
    };

    let pins = pins::load()?;
    let mut probes = locate::Probes::load(ctx);
    let report = (|| {
        let mut tool = |part: Part, pin: &pins::ToolPin| {
            if wanted(part) {
                resolve(ctx, pin, &mut probes).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok::<_, anyhow::Error>(Report {
            helm: tool(Part::Helm, &pins.helm)?,
            kubeconform: tool(Part::Kubeconform, &pins.kubeconform)?,
            registry: tool(Part::Registry, &pins.registry)?,
            cosign: tool(Part::Cosign, &pins.cosign)?,
            schemas: if wanted(Part::Schemas) { Some(schemas::ensure(ctx, &pins, &kube_versions)?) } else { None },
            crds: if wanted(Part::Crds) { Some(crds::ensure(ctx, &pins.crds)?) } else { None },
            chart_testing: if args.chart_testing { Some(chart_testing::ensure_all(ctx)?) } else { None },
            cluster: if args.cluster { Some(cluster::ensure(ctx)?) } else { None },
        })
    })();
    probes.save();
    let report = report.map_err(environment_marked)?;

    match ctx.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        _ => {
            print!("{}", lines(&report));
            if let Some(tools) = &report.chart_testing {
                print!("{}", chart_testing::lines(tools));
            }
            if let Some(tools) = &report.cluster {
                print!("{}", cluster::lines(tools));
            }
        }
    }
    Ok(())
}

/// The human (and script) format: one `name<TAB>version<TAB>value` line per
/// tool, per Kubernetes version's schema location, and for CRD schemas.
fn lines(report: &Report) -> String {
    let mut out = String::new();
    for tool in [&report.helm, &report.kubeconform].into_iter().flatten() {
        out.push_str(&format!("{}\t{}\t{}\n", tool.name, tool.version, tool.path.display()));
    }
    if let Some(schemas) = &report.schemas {
        if let Some((builtin, crds)) = schemas.locations.split_first() {
            for version in &schemas.kube_versions {
                out.push_str(&format!("kubeconform-schemas\t{version}\t{builtin}\n"));
            }
            for location in crds {
                out.push_str(&format!("kubeconform-crds\tany\t{location}\n"));
            }
        }
    }
    if let Some(crds) = &report.crds {
        out.push_str(&crds::lines(crds));
    }
    for tool in [&report.registry, &report.cosign].into_iter().flatten() {
        out.push_str(&format!("{}\t{}\t{}\n", tool.name, tool.version, tool.path.display()));
    }
    out
}

/// One tool: found, or else installed.
fn resolve(ctx: &Context, pin: &pins::ToolPin, probes: &mut locate::Probes) -> Result<Tool> {
    if let Some(tool) = locate::find(ctx, pin, probes)? {
        return Ok(tool);
    }
    // Several first runs at once (parallel tests, two terminals) would each
    // download or build the same tool: one installs, the others wait and then
    // find it in the cache.
    let _lock = crate::util::fs::lock_file(&ctx.cache_dir.join(".install.lock"))?;
    match locate::find(ctx, pin, probes)? {
        Some(tool) => Ok(tool),
        None => install::install(ctx, pin),
    }
}

/// A temporary folder beside `dest` (same file system, so the finished
/// install is renamed into place whole), after sweeping away those of
/// killed runs.
fn staging_beside(name: &str, dest: &std::path::Path) -> Result<tempfile::TempDir> {
    use anyhow::Context as _;
    let parent = dest.parent().context("cache path has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("{name}: cannot create {}", parent.display()))?;
    let prefix = format!(".install-{name}-");
    sweep_stale(parent, &prefix);
    tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(parent)
        .with_context(|| format!("{name}: cannot create a temporary folder in {}", parent.display()))
}

/// Removes `<dir>/<prefix>*` folders older than an hour: temporary folders
/// of runs that were killed (Ctrl-C exits without unwinding, so their
/// guards never ran). Younger ones may belong to a run still in progress.
fn sweep_stale(dir: &std::path::Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600));
        if old && entry.file_name().to_string_lossy().starts_with(prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Every failure to provide a tool is an environment problem (exit 3),
/// unless it is already marked (a bad `--kube-version` stays a usage error).
fn environment_marked(err: anyhow::Error) -> anyhow::Error {
    match exit::code_for(&err) {
        exit::USAGE | exit::ENVIRONMENT => err,
        _ => EnvironmentError(format!("{err:#}")).into(),
    }
}
