//! Finding an already present tool: the environment override, the per-user
//! cache, or PATH with a version check whose answer is remembered in
//! `<cache>/tools/probes.json`.
//!
//! A warm run must start no process at all (every `cargo xtask lint` goes
//! through here, and one helm start costs ~90 ms on two cores), so a
//! binary's version is known from the cache folder name, or from a probe
//! recorded under the binary's (path, size, mtime): replacing the binary
//! changes size or mtime and so asks again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::pins::ToolPin;
use super::Tool;
use crate::core::context::Context;
use crate::util::exit;

/// Where a tool lives in the per-user cache: `<cache>/tools/<name>/<version>/<name>`.
pub fn cached_binary(ctx: &Context, pin: &ToolPin) -> PathBuf {
    tool_dir(ctx, pin).join(&pin.version).join(&pin.name)
}

/// `<cache>/tools/<name>`: the parent of every installed version.
pub fn tool_dir(ctx: &Context, pin: &ToolPin) -> PathBuf {
    ctx.cache_dir.join("tools").join(&pin.name)
}

/// Looks for `pin` without installing anything: `$ENV`, the cache, PATH.
/// `None` means nothing usable was found: install the pin.
pub fn find(ctx: &Context, pin: &ToolPin, probes: &mut Probes) -> Result<Option<Tool>> {
    if let Some(value) = std::env::var_os(&pin.env) {
        return from_env(pin, PathBuf::from(value), probes).map(Some);
    }

    // The cache folder is named after the version and only ever holds a
    // binary that was checked when it was installed: no process needed.
    let cached = cached_binary(ctx, pin);
    if cached.is_file() {
        return Ok(Some(tool(pin, &pin.version, cached)));
    }

    let Ok(on_path) = which::which(&pin.name) else {
        return Ok(None);
    };
    let reported = probes.version(pin, &on_path)?;
    if reported == pin.version {
        return Ok(Some(tool(pin, &pin.version, on_path)));
    }
    // Said once: after the install the cache answers before PATH does.
    eprintln!(
        "{} {}: {} reports {}, not the pinned version: installing {} into {}",
        pin.name,
        pin.version,
        on_path.display(),
        shown_version(&reported),
        pin.version,
        tool_dir(ctx, pin).display()
    );
    Ok(None)
}

/// `$XTASK_<TOOL>` always wins: the person asked for that binary. A
/// different version is used anyway, with a note.
fn from_env(pin: &ToolPin, path: PathBuf, probes: &mut Probes) -> Result<Tool> {
    if !path.is_file() {
        return exit::environment(format!(
            "{}={}: no such file (point it at a {} {} binary, or unset it to let the xtask install one)",
            pin.env,
            path.display(),
            pin.name,
            pin.version
        ));
    }
    let reported = probes.version(pin, &path)?;
    if reported != pin.version {
        eprintln!(
            "{} {}: using {}={} although it reports {}",
            pin.name,
            pin.version,
            pin.env,
            path.display(),
            shown_version(&reported)
        );
    }
    Ok(tool(pin, &reported, path))
}

fn tool(pin: &ToolPin, version: &str, path: PathBuf) -> Tool {
    Tool { name: pin.name.clone(), version: version.to_string(), path }
}

fn shown_version(reported: &str) -> String {
    if reported.is_empty() {
        "no version".into()
    } else {
        format!("version {reported:?}")
    }
}

/// Runs `<binary> <version-args>` and returns the normalised version
/// (empty when the binary fails or prints nothing).
pub fn probe(pin: &ToolPin, binary: &Path) -> Result<String> {
    probe_line(&pin.name, &pin.version_args, pin.version_line.as_deref(), binary)
}

/// [`probe`] for tools that are not a [`ToolPin`] (the control plane's).
pub fn probe_with(name: &str, args: &[String], binary: &Path) -> Result<String> {
    probe_line(name, args, None, binary)
}

/// [`probe_with`], reading the version from the line that starts with `line`.
fn probe_line(name: &str, args: &[String], line: Option<&str>, binary: &Path) -> Result<String> {
    let sh = xshell::Shell::new().context("cannot set up a shell for the version check")?;
    let finished = crate::exec::process::run(xshell::cmd!(sh, "{binary} {args...}"), None)
        .with_context(|| format!("{name}: cannot run {} to check its version", binary.display()))?;
    if !finished.success {
        return Ok(String::new());
    }
    Ok(ToolPin::version_in(&finished.stdout, line))
}

/// The remembered version probes, `<cache>/tools/probes.json`.
#[derive(Debug, Default)]
pub struct Probes {
    file: PathBuf,
    entries: BTreeMap<String, ProbeEntry>,
    changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProbeEntry {
    size: u64,
    mtime_ns: u64,
    /// The normalised version the binary reported.
    version: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ProbeFile {
    /// Keyed by the binary's path.
    entries: BTreeMap<String, ProbeEntry>,
}

impl Probes {
    /// Reads the probe file; a missing or unreadable one is an empty cache
    /// (it only ever saves time, so it must never fail a run).
    pub fn load(ctx: &Context) -> Probes {
        let file = ctx.cache_dir.join("tools").join("probes.json");
        let entries = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<ProbeFile>(&bytes).ok())
            .map(|parsed| parsed.entries)
            .unwrap_or_default();
        Probes { file, entries, changed: false }
    }

    /// The version `binary` reports, from the record when the binary is
    /// unchanged, else by running it.
    pub fn version(&mut self, pin: &ToolPin, binary: &Path) -> Result<String> {
        self.probed(&pin.name, &pin.version_args, pin.version_line.as_deref(), binary)
    }

    /// [`Probes::version`] for tools that are not a [`ToolPin`].
    pub fn version_with(&mut self, name: &str, args: &[String], binary: &Path) -> Result<String> {
        self.probed(name, args, None, binary)
    }

    fn probed(&mut self, name: &str, args: &[String], line: Option<&str>, binary: &Path) -> Result<String> {
        let key = binary.to_string_lossy().into_owned();
        let stamp = stamp(binary);
        if let (Some((size, mtime_ns)), Some(entry)) = (stamp, self.entries.get(&key)) {
            if entry.size == size && entry.mtime_ns == mtime_ns {
                return Ok(entry.version.clone());
            }
        }
        let version = probe_line(name, args, line, binary)?;
        if let Some((size, mtime_ns)) = stamp {
            self.entries.insert(key, ProbeEntry { size, mtime_ns, version: version.clone() });
            self.changed = true;
        }
        Ok(version)
    }

    /// Writes the file back if a probe was added. Failing to write only
    /// costs a probe next time, so it is a note, not an error.
    pub fn save(&self) {
        if !self.changed {
            return;
        }
        let file = ProbeFile { entries: self.entries.clone() };
        let result = serde_json::to_vec_pretty(&file)
            .context("cannot encode the version probes")
            .and_then(|bytes| crate::util::fs::write_atomic(&self.file, &bytes));
        if let Err(err) = result {
            eprintln!("note: cannot remember tool versions in {}: {err:#}", self.file.display());
        }
    }
}

/// (size, mtime in ns) of the file a path resolves to.
fn stamp(binary: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(binary).ok()?;
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((meta.len(), u64::try_from(mtime.as_nanos()).ok()?))
}
