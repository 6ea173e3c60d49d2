//! The base commit checked out beside the working tree, for as long as a
//! value lives.
//!
//! Each run works in `<work dir>/diff/<pid>/` ([`RunDir`]): the base is
//! checked out there with `git worktree add --detach` (git's own checkout,
//! so .gitattributes, symlinks and file modes are those of the commit),
//! without touching the user's working tree, index or branches, and both
//! sides stage their charts there, so two runs never share a folder.
//! Dropping a [`Worktree`] removes it (`git worktree remove --force`, then
//! the folder and `git worktree prune` if git refused), and dropping the
//! [`RunDir`] removes the rest, so nothing stays behind on errors and panics
//! either. A run killed by a signal cannot clean up; the next run removes the
//! folders (and worktrees) of runs whose process is gone.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::core::context::Context;
use crate::exec::process;
use crate::util::exit::EnvironmentError;

/// `<work dir>/diff/<pid>/`, removed when dropped.
pub struct RunDir {
    top: PathBuf,
    dir: PathBuf,
}

impl RunDir {
    /// Creates this run's folder, after removing those of dead runs.
    pub fn create(ctx: &Context) -> Result<RunDir> {
        let top = PathBuf::from(git_line(&ctx.root, &["rev-parse", "--show-toplevel"])?);
        let parent = ctx.work_dir.join("diff");
        std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
        remove_stale(&top, &parent);
        let dir = parent.join(std::process::id().to_string());
        if dir.exists() {
            // Our own pid, left by an earlier run that was killed.
            remove_run(&top, &dir);
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(RunDir { top, dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        remove_run(&self.top, &self.dir);
    }
}

pub struct Worktree {
    /// The top level of the user's work tree (where git is run).
    top: PathBuf,
    /// The worktree's folder.
    dir: PathBuf,
    /// The tool's root inside the worktree (the same relative place as in
    /// the user's work tree).
    root: PathBuf,
}

impl Worktree {
    /// Checks `commit` out in `<run dir>/base-tree`.
    pub fn add(ctx: &Context, run: &RunDir, commit: &str) -> Result<Worktree> {
        let prefix = git_line(&ctx.root, &["rev-parse", "--show-prefix"])?;
        let top = run.top.clone();
        let dir = run.dir.join(BASE_TREE);
        let sh = xshell::Shell::new()?;
        let finished =
            process::run(xshell::cmd!(sh, "git -C {top} worktree add --detach --quiet {dir} {commit}"), None)?;
        if !finished.success {
            return Err(EnvironmentError(format!(
                "cannot check out the base {commit} with `git worktree add`: {}",
                finished.combined()
            ))
            .into());
        }
        let root = dir.join(prefix.trim_end_matches('/'));
        Ok(Worktree { top, dir, root })
    }

    /// The repository root at the base commit.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        remove(&self.top, &self.dir);
    }
}

fn git_line(root: &Path, args: &[&str]) -> Result<String> {
    let sh = xshell::Shell::new()?;
    let finished = process::run(xshell::cmd!(sh, "git -C {root} {args...}"), None)?;
    if !finished.success {
        return Err(EnvironmentError(format!("`{}` failed: {}", finished.display, finished.combined())).into());
    }
    Ok(finished.stdout.trim_end_matches(['\n', '\r']).to_string())
}

/// Removes a worktree; falls back to deleting the folder and pruning git's
/// record of it, so that nothing is left even if git refuses.
fn remove(top: &Path, dir: &Path) {
    let Ok(sh) = xshell::Shell::new() else { return };
    let removed =
        process::run(xshell::cmd!(sh, "git -C {top} worktree remove --force {dir}"), None).is_ok_and(|f| f.success);
    if !removed || dir.exists() {
        let _ = std::fs::remove_dir_all(dir);
        let _ = process::run(xshell::cmd!(sh, "git -C {top} worktree prune"), None);
    }
}

/// The worktree's folder inside a run's folder.
const BASE_TREE: &str = "base-tree";

/// Removes a run's folder, its worktree first.
fn remove_run(top: &Path, dir: &Path) {
    if dir.join(BASE_TREE).exists() {
        remove(top, &dir.join(BASE_TREE));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Removes the folders of runs whose process no longer exists.
fn remove_stale(top: &Path, parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<u32>() else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_run(top, &entry.path());
        }
    }
}
