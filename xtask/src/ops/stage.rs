//! Staging: building each chart's dependency tree under the work folder
//! instead of inside the repository.
//!
//! `helm dependency build` writes `charts/*.tgz` and rewrites `Chart.lock`
//! (with a fresh timestamp) inside the chart folder, which dirties `git status`,
//! and it costs one helm process per chart. Staging does the same resolution
//! with links: `<work>/stage/<chart>/` mirrors every entry of the chart's
//! source folder except `charts/` (real folders, files hard-linked: see
//! [`fs::mirror`] for why not symlinks), and its own `charts/` links to the
//! staged folders of its `file://` dependencies and to the cached archives of
//! its remote ones. Helm sees exactly the tree `helm dependency build` would
//! have made. Remote archives are pulled once into the per-user cache, keyed
//! by where they came from and their version, and at most once per run for
//! version ranges.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context as _, Result};

use crate::core::context::Context;
use crate::core::lock::{self, Lock, Sum};
use crate::core::model::{Chart, Dependency, Repo};
use crate::exec::tools::Tool;
use crate::util::fs;

/// Resolves remote dependencies (through mirrors) and stages charts.
pub struct Stager<'a> {
    ctx: &'a Context,
    helm: &'a Tool,
    mirrors: BTreeMap<String, String>,
    /// Remote archives already resolved in this run: (source, name, version) -> file.
    pulled: Mutex<BTreeMap<(String, String, String), PathBuf>>,
    /// Checks the signatures `[trust]` asks of remote dependencies.
    trust: crate::ops::trust::Verifier<'a>,
    /// Canonical folder -> chart name, built once per run: resolving a
    /// `file://` dependency by canonicalising every chart folder again cost
    /// one `readlink` per path component per chart per dependency, which for
    /// an umbrella over 200 charts was ~300,000 system calls (0.6 s) per run.
    canonical: OnceLock<BTreeMap<PathBuf, String>>,
}

/// Where a dependency archive is fetched from after mirrors are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The repository named in Chart.yaml.
    pub declared: String,
    /// The repository actually used (a mirror's, or the declared one).
    pub effective: String,
}

impl<'a> Stager<'a> {
    pub fn new(ctx: &'a Context, helm: &'a Tool, mirrors: BTreeMap<String, String>) -> Self {
        let trust = crate::ops::trust::Verifier::new(ctx, helm);
        Stager { ctx, helm, mirrors, pulled: Mutex::new(BTreeMap::new()), trust, canonical: OnceLock::new() }
    }

    /// The helm this stager pulls with.
    pub fn helm(&self) -> &Tool {
        self.helm
    }

    /// The staged folder of a chart (whether or not it was staged yet).
    pub fn staged_dir(&self, chart: &Chart) -> PathBuf {
        self.ctx.work_dir.join("stage").join(&chart.name)
    }

    /// The SHA-256 of every archive in the chart's staged `charts/`, in name
    /// order: cache keys hold remote dependencies by content, so a re-pushed
    /// tag with new content is a change. Empty when nothing is staged.
    pub fn archive_digests(&self, chart: &Chart) -> Result<Vec<String>> {
        let Ok(entries) = std::fs::read_dir(self.staged_dir(chart).join("charts")) else {
            return Ok(Vec::new());
        };
        let mut archives: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "tgz")).collect();
        archives.sort();
        archives.iter().map(|archive| Ok(crate::util::fs::sha256_hex(&std::fs::read(archive)?))).collect()
    }

    /// Applies the longest matching mirror prefix to a repository URL.
    pub fn source_for(&self, repository: &str) -> Source {
        let declared = repository.trim_end_matches('/').to_string();
        let best = self
            .mirrors
            .iter()
            .filter(|(from, _)| declared == **from || declared.starts_with(&format!("{from}/")))
            .max_by_key(|(from, _)| from.len());
        let effective = match best {
            Some((from, to)) => format!("{to}{}", &declared[from.len()..]),
            None => declared.clone(),
        };
        Source { declared, effective }
    }

    /// Stages one chart. Its `file://` dependencies must have been staged
    /// first (the scheduler runs charts in topological order).
    pub fn stage(&self, repo: &Repo, chart: &Chart) -> Result<PathBuf> {
        // Chart names are checked where Chart.yaml is read; this is the
        // second line, where the name becomes a folder.
        let staged = fs::join_inside(&self.ctx.work_dir.join("stage"), &chart.name)?;
        // The chart's own entries, mirrored; `charts/` is rebuilt below, and
        // Chart.lock and Chart.sum are read by staging itself (as
        // `helm dependency build` reads the lock).
        let mut own: Vec<(PathBuf, PathBuf)> = Vec::new();
        for entry in
            std::fs::read_dir(&chart.dir).with_context(|| format!("{}: cannot list the chart folder", chart.rel))?
        {
            let entry = entry?;
            let name = entry.file_name();
            if name == "charts" || name == lock::LOCK_FILE || name == lock::SUM_FILE || name == "tmpcharts" {
                continue;
            }
            own.push((PathBuf::from(&name), entry.path()));
        }
        // Dependencies, linked: `charts/<name>` -> a staged folder or an archive.
        let mut wanted: Vec<(PathBuf, PathBuf)> = Vec::new();

        let vendored = chart.dir.join("charts");
        let locked = Locking::read(chart)?;
        for (index, dep) in chart.meta.dependencies.iter().enumerate() {
            // A sibling matched by in-repo resolution is linked like a
            // `file://` dependency: it is never pulled.
            if let Some(target) = dep.local_dir(&chart.dir) {
                let dep_name = target
                    .canonicalize()
                    .ok()
                    .and_then(|t| self.canonical_dirs(repo).get(&t).cloned())
                    .with_context(|| {
                        format!("{}/Chart.yaml: dependency {:?} is not a chart of the repository", chart.rel, dep.name)
                    })?;
                let dep_chart = repo.chart(&dep_name).with_context(|| format!("chart {dep_name} vanished"))?;
                wanted.push((Path::new("charts").join(&dep_chart.name), self.staged_dir(dep_chart)));
            } else if let Some(repository) = dep.remote_repository() {
                // A locked chart stages exactly the locked version; an
                // unlocked one what Chart.yaml names (a range: the newest).
                let version = match &locked {
                    Some(locking) => locking.version_of(index, dep)?,
                    None => dep.version.clone().unwrap_or_default(),
                };
                let archive_name = format!("{}-{}.tgz", dep.name, version);
                let vendored_archive = fs::join_inside(&vendored, &archive_name)?;
                let archive = if vendored_archive.is_file() {
                    // A vendored archive of exactly this version wins: no
                    // network. It came with the pull request: read it as
                    // untrusted, like a pulled one.
                    crate::core::archive::check_untrusted(&vendored_archive)
                        .with_context(|| format!("{}: dependency {}", chart.rel, dep.name))?;
                    vendored_archive
                } else {
                    self.fetch(chart, &dep.name, &version, repository)?
                };
                let source = self.source_for(repository);
                if let Some(locking) = &locked {
                    locking.check_archive(dep, &version, &archive, &source)?;
                }
                // The one place every remote dependency passes (lint,
                // verify, package, diff): `[trust]` is enforced here.
                self.trust.require(chart, dep, &version, &archive, &source.declared, &source.effective)?;
                wanted.push((Path::new("charts").join(archive.file_name().unwrap_or_default()), archive));
            }
        }

        // A warm run finds the staged tree as it left it: re-creating it for
        // 200 charts cost more than the rest of a cached run.
        if is_staged_as(&staged, &own, &wanted) {
            return Ok(staged);
        }
        if staged.symlink_metadata().is_ok() {
            std::fs::remove_dir_all(&staged).with_context(|| format!("cannot clear {}", staged.display()))?;
        }
        let charts_dir = staged.join("charts");
        std::fs::create_dir_all(&charts_dir).with_context(|| format!("cannot create {}", charts_dir.display()))?;
        for (name, source) in &own {
            fs::mirror(source, &staged.join(name))?;
        }
        for (link, target) in &wanted {
            fs::symlink_force(target, &staged.join(link))?;
        }
        Ok(staged)
    }

    /// Canonical chart folders of the repository, computed on first use.
    fn canonical_dirs(&self, repo: &Repo) -> &BTreeMap<PathBuf, String> {
        self.canonical.get_or_init(|| {
            repo.charts.iter().filter_map(|c| c.dir.canonicalize().ok().map(|d| (d, c.name.clone()))).collect()
        })
    }

    /// Resolves a remote dependency's version (a range: the newest version
    /// the repository, through the mirrors, holds that the range allows, as
    /// `helm pull` picks it) and fetches its archive: what `deps update` locks.
    pub fn resolve(&self, chart: &Chart, dep: &Dependency, repository: &str) -> Result<(PathBuf, String)> {
        let range = dep.version.clone().unwrap_or_default();
        let archive = self.fetch(chart, &dep.name, &range, repository)?;
        let info = crate::core::archive::read(&archive)?;
        let version =
            info.chart_yaml.get("version").and_then(|v| v.as_str()).map(str::to_string).with_context(|| {
                format!("{}: the archive of {} has no version in its Chart.yaml", chart.rel, dep.name)
            })?;
        Ok((archive, version))
    }

    /// Pulls a remote dependency into the per-user cache (or finds it there).
    fn fetch(&self, chart: &Chart, name: &str, version: &str, repository: &str) -> Result<PathBuf> {
        let version = version.to_string();
        let source = self.source_for(repository);
        let key = (source.effective.clone(), name.to_string(), version.clone());
        if let Some(path) = self.pulled.lock().ok().and_then(|p| p.get(&key).cloned()) {
            return Ok(path);
        }
        let exact = semver::Version::parse(version.trim_start_matches('v')).is_ok();
        let folder = self.ctx.cache_dir.join("charts").join(&fs::sha256_hex(source.effective.as_bytes())[..16]);
        let cached = fs::join_inside(&folder, format!("{name}-{}.tgz", version.trim_start_matches('v')))?;
        if exact && cached.is_file() {
            self.remember(key, &cached);
            return Ok(cached);
        }
        std::fs::create_dir_all(&folder)?;
        let temp = tempfile::tempdir_in(&folder)?;
        let out = temp.path().to_path_buf();
        let helm = &self.helm.path;
        let sh = xshell::Shell::new()?;
        let effective = &source.effective;
        let finished = if let Some(rest) = effective.strip_prefix("oci://") {
            let reference = format!("oci://{rest}/{name}");
            let plain_http = is_loopback(rest).then_some("--plain-http");
            crate::exec::process::run(
                xshell::cmd!(sh, "{helm} pull {reference} --version {version} --destination {out} {plain_http...}"),
                None,
            )?
        } else {
            crate::exec::process::run(
                xshell::cmd!(sh, "{helm} pull {name} --repo {effective} --version {version} --destination {out}"),
                None,
            )?
        };
        if !finished.success {
            let via = if source.effective != source.declared {
                format!(" (mirror of {})", source.declared)
            } else {
                String::new()
            };
            anyhow::bail!(
                "{}/Chart.yaml: cannot fetch dependency {name} {version} from {effective}{via}:\n{}\nhint: if this machine cannot reach that repository, pass --mirror {}=<reachable OCI registry or chart repository> (or set [mirrors] in xtask.toml); `cargo xtask mirror start` serves the repository's stand-in charts on loopback and prints the flag",
                chart.rel,
                strip_registry_noise(&finished.combined()),
                source.declared
            );
        }
        let pulled = std::fs::read_dir(&out)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "tgz"))
            .with_context(|| format!("helm pull of {name} {version} from {effective} wrote no archive"))?;
        // What a registry or mirror serves is untrusted: checked before it
        // enters the cache, so a cached archive was always checked once.
        crate::core::archive::check_untrusted(&pulled)
            .with_context(|| format!("{}/Chart.yaml: dependency {name} {version} from {effective}", chart.rel))?;
        let final_path = if exact { cached.clone() } else { folder.join(pulled.file_name().unwrap_or_default()) };
        std::fs::rename(&pulled, &final_path)
            .with_context(|| format!("cannot move the pulled archive to {}", final_path.display()))?;
        self.remember(key, &final_path);
        Ok(final_path)
    }

    fn remember(&self, key: (String, String, String), path: &Path) {
        if let Ok(mut pulled) = self.pulled.lock() {
            pulled.insert(key, path.to_path_buf());
        }
    }
}

/// A chart's `Chart.lock` and `Chart.sum`, checked against its Chart.yaml.
struct Locking<'c> {
    chart: &'c Chart,
    lock: Lock,
    sums: Vec<Sum>,
}

impl<'c> Locking<'c> {
    /// The chart's lock, or `None` when it has none (then Chart.yaml's
    /// versions are staged as they are). A lock that disagrees with
    /// Chart.yaml fails the chart, naming the dependency and the fix.
    fn read(chart: &'c Chart) -> Result<Option<Locking<'c>>> {
        let lock_path = chart.dir.join(lock::LOCK_FILE);
        if !lock_path.is_file() || chart.meta.dependencies.iter().all(|d| d.remote_repository().is_none()) {
            return Ok(None);
        }
        let shown = format!("{}/{}", chart.rel, lock::LOCK_FILE);
        let lock = Lock::parse(&crate::util::yaml::read_text(&lock_path, &shown)?, &shown)?;
        if let Some(why) = lock::disagreement(&chart.meta.dependencies, &lock) {
            anyhow::bail!(
                "{shown}: Chart.yaml and Chart.lock disagree: {why}\nfix: run `cargo xtask deps update --chart {}`",
                chart.name
            );
        }
        let sum_shown = format!("{}/{}", chart.rel, lock::SUM_FILE);
        let sums = match std::fs::read_to_string(chart.dir.join(lock::SUM_FILE)) {
            Ok(text) => Sum::parse_all(&text, &sum_shown)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err).with_context(|| format!("cannot read {sum_shown}")),
        };
        Ok(Some(Locking { chart, lock, sums }))
    }

    /// The locked version of Chart.yaml's dependency number `index`.
    fn version_of(&self, index: usize, dep: &Dependency) -> Result<String> {
        // `disagreement` found every dependency in the lock.
        self.lock
            .entry(index, &dep.name)
            .map(|l| l.version.clone())
            .with_context(|| format!("{}/{}: dependency {} is not locked", self.chart.rel, lock::LOCK_FILE, dep.name))
    }

    /// Refuses an archive whose bytes are not the ones `Chart.sum` recorded
    /// (a version re-pushed with other content, a mirror serving something
    /// else), or one it records nothing for.
    fn check_archive(&self, dep: &Dependency, version: &str, archive: &Path, source: &Source) -> Result<()> {
        let rel = &self.chart.rel;
        let fix = format!("cargo xtask deps update --chart {}", self.chart.name);
        let Some(sum) = Sum::find(&self.sums, &dep.name, version, &source.declared) else {
            anyhow::bail!(
                "{rel}/{}: no digest recorded for dependency {} {version} from {}\nfix: run `{fix}`",
                lock::SUM_FILE,
                dep.name,
                source.declared
            );
        };
        let bytes = std::fs::read(archive).with_context(|| format!("cannot read {}", archive.display()))?;
        let actual = format!("sha256:{}", fs::sha256_hex(&bytes));
        if actual != sum.sha256 {
            let via = if source.effective != source.declared {
                format!(" (through {})", source.effective)
            } else {
                String::new()
            };
            anyhow::bail!(
                "{rel}: dependency {} {version} from {}{via}: the archive's digest {actual} is not the {} that {}/{} recorded: the version was re-pushed with other content, or the repository serves another archive under it\nfix: if the new archive is the one you want, run `{fix}` and review the change",
                dep.name,
                source.declared,
                sum.sha256,
                rel,
                lock::SUM_FILE
            );
        }
        Ok(())
    }
}

/// True when `staged` holds exactly a mirror of each of the chart's own
/// entries (`own`: name -> source) and `charts/` holds exactly the links
/// `wanted` (relative path -> target), and nothing else.
fn is_staged_as(staged: &Path, own: &[(PathBuf, PathBuf)], wanted: &[(PathBuf, PathBuf)]) -> bool {
    let list =
        |dir: &Path| -> Option<Vec<PathBuf>> { Some(fs::sorted_names(dir)?.into_iter().map(PathBuf::from).collect()) };
    let (Some(top), Some(charts)) = (list(staged), list(&staged.join("charts"))) else {
        return false;
    };
    let mut expected_top: Vec<PathBuf> =
        own.iter().map(|(name, _)| name.clone()).chain(std::iter::once(PathBuf::from("charts"))).collect();
    expected_top.sort();
    let mut expected_charts: Vec<PathBuf> =
        wanted.iter().filter_map(|(link, _)| link.strip_prefix("charts").ok().map(Path::to_path_buf)).collect();
    expected_charts.sort();
    top == expected_top
        && charts == expected_charts
        && own.iter().all(|(name, source)| fs::is_mirror(source, &staged.join(name)))
        && wanted.iter().all(|(link, target)| std::fs::read_link(staged.join(link)).is_ok_and(|t| &t == target))
}

/// Registries on the loopback interface are spoken to over plain HTTP (a test
/// registry or a local mirror started by `cargo xtask mirror`).
pub fn is_loopback(host_and_path: &str) -> bool {
    let host = host_and_path.split('/').next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// Helm 4 prints registry chatter ("Pulled:", "Digest:") that is not part of
/// an error; drop it from messages.
pub fn strip_registry_noise(text: &str) -> String {
    text.lines().filter(|l| !l.starts_with("Pulled:") && !l.starts_with("Digest:")).collect::<Vec<_>>().join("\n")
}
