//! The context every command gets: where the repository is, its
//! configuration, where build output and caches go, and how to print.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::core::config::Config;

/// Output format. One global flag serves every command, and each command
/// accepts the subset that makes sense for it (`main.rs` checks): lint and
/// the release commands take human|json, `graph` mermaid|dot, `diff`
/// human|json|markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people, on stderr.
    Human,
    /// One JSON document on stdout; people's output still goes to stderr.
    Json,
    /// Markdown on stdout, e.g. for a pull-request comment.
    Markdown,
    /// A Mermaid diagram on stdout.
    Mermaid,
    /// A Graphviz diagram on stdout.
    Dot,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Human => "human",
            Format::Json => "json",
            Format::Markdown => "markdown",
            Format::Mermaid => "mermaid",
            Format::Dot => "dot",
        }
    }
}

/// Shared by all commands; built once in `main`.
#[derive(Debug, Clone)]
pub struct Context {
    /// The repository checkout that is checked (`--root`, default: this one).
    pub root: PathBuf,
    pub config: Config,
    pub format: Format,
    /// Build output of this tool (staged charts, renders, packages): never
    /// inside tracked files, so a run leaves `git status` clean.
    pub work_dir: PathBuf,
    /// Per-user cache shared across checkouts: tools keyed by version,
    /// pulled dependency charts, prepared schemas.
    pub cache_dir: PathBuf,
    /// Whether colour may be used on stderr (`NO_COLOR` unset, a terminal).
    pub color: bool,
}

impl Context {
    pub fn new(root: Option<&Path>, format: Format) -> Result<Context> {
        let root = match root {
            Some(root) => root.to_path_buf(),
            None => default_root()?,
        };
        let root = root
            .canonicalize()
            .map_err(|_| crate::util::exit::UsageError(format!("--root {}: no such folder", root.display())))?;
        let config = Config::load(&root)?;
        let work_dir = match std::env::var_os("XTASK_WORK_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => std::path::absolute(PathBuf::from(dir)).context("cannot resolve XTASK_WORK_DIR")?,
            None => root.join("target").join("xtask"),
        };
        Ok(Context {
            root,
            config,
            format,
            work_dir,
            cache_dir: cache_dir()?,
            color: std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        })
    }

    /// A path relative to the repository root, for messages.
    pub fn shown(&self, path: &Path) -> String {
        crate::core::model::relative(&self.root, path)
    }
}

/// The repository this xtask belongs to: the workspace root above the crate
/// when run through cargo, else the current folder.
fn default_root() -> Result<PathBuf> {
    if let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR") {
        let crate_dir = PathBuf::from(manifest);
        if let Some(parent) = crate_dir.parent() {
            if parent.join("Cargo.toml").is_file() {
                return Ok(parent.to_path_buf());
            }
        }
    }
    std::env::current_dir().context("cannot read the current folder")
}

/// `$XTASK_CACHE_DIR`, else `$XDG_CACHE_HOME/robot-shop-xtask`, else
/// `~/.cache/robot-shop-xtask`.
pub fn cache_dir() -> Result<PathBuf> {
    // An empty or relative value is treated as unset: a cache relative to
    // wherever the command runs would land inside checkouts.
    let absolute = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(dir) = absolute("XTASK_CACHE_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = absolute("XDG_CACHE_HOME") {
        return Ok(dir.join("robot-shop-xtask"));
    }
    match absolute("HOME") {
        Some(home) => Ok(home.join(".cache").join("robot-shop-xtask")),
        None => crate::util::exit::environment(
            "cannot find a cache folder: set XTASK_CACHE_DIR (or HOME or XDG_CACHE_HOME) to an absolute path",
        ),
    }
}
