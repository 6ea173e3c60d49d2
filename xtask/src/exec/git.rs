//! Asking git what changed, what a file said at a commit, and making tags.
//!
//! Every call is one `git -C <top level> ...` process through
//! [`crate::exec::process::run`]. Paths git prints are relative to the top level of
//! the work tree, which need not be the repository root the tool works on
//! (`--root` may be a folder inside a larger checkout), so this module speaks
//! in paths relative to the tool's root and converts at the boundary.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::exec::process;
use crate::util::exit::EnvironmentError;

/// A git work tree that contains the tool's root folder.
#[derive(Debug, Clone)]
pub struct Git {
    /// The top level of the work tree (`git rev-parse --show-toplevel`).
    top: PathBuf,
    /// The tool's root, relative to `top`, with `/` separators ("" when equal).
    prefix: String,
}

/// The base a change set is measured against.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Base {
    /// The ref as given or chosen (`origin/main`, `main`, a commit).
    pub name: String,
    /// The merge base of that ref and `HEAD`: the commit changes are measured from.
    pub merge_base: String,
}

impl Git {
    /// Opens the work tree around `root`. No git, or no work tree, is an
    /// environment error.
    pub fn open(root: &Path) -> Result<Git> {
        let sh = xshell::Shell::new()?;
        let finished =
            process::run(xshell::cmd!(sh, "git -C {root} rev-parse --show-toplevel"), None).map_err(|err| {
                EnvironmentError(format!("cannot run git ({err:#}): install git, which finds what changed"))
            })?;
        if !finished.success {
            return Err(EnvironmentError(format!(
                "{} is not inside a git work tree ({}): run this in a clone of the repository",
                root.display(),
                finished.stderr.trim()
            ))
            .into());
        }
        let top = PathBuf::from(finished.stdout.trim_end_matches(['\n', '\r']));
        let top = top.canonicalize().unwrap_or(top);
        let prefix = crate::core::model::relative(&top, root);
        let prefix = if prefix == "." { String::new() } else { prefix };
        Ok(Git { top, prefix })
    }

    /// Runs `git -C <top> <args>`; a failure is an error carrying git's output.
    fn git(&self, args: &[&str]) -> Result<String> {
        let finished = self.try_git(args)?;
        if !finished.success {
            anyhow::bail!("`{}` failed: {}", finished.display, finished.combined());
        }
        Ok(finished.stdout)
    }

    fn try_git(&self, args: &[&str]) -> Result<process::Finished> {
        let sh = xshell::Shell::new()?;
        let top = &self.top;
        process::run(xshell::cmd!(sh, "git -C {top} {args...}"), None)
    }

    /// Resolves `--base` (default `origin/main` when it exists, else `main`)
    /// and its merge base with `HEAD`. A base that is not there is an
    /// environment error that says how to get it.
    pub fn base(&self, requested: Option<&str>) -> Result<Base> {
        if !self.resolves("HEAD") {
            return Err(EnvironmentError(
                "this repository has no commit yet (HEAD is unborn): commit first, then compare against a base".into(),
            )
            .into());
        }
        let name = match requested {
            Some(name) => name.to_string(),
            None if self.resolves("origin/main") => "origin/main".to_string(),
            None if self.resolves("main") => "main".to_string(),
            None => {
                return Err(EnvironmentError(format!(
                    "no base to compare with: neither origin/main nor main exists here{}; run `git fetch origin main`, or pass --base REF (a branch, tag or commit)",
                    self.shallow_hint()
                ))
                .into())
            }
        };
        if !self.resolves(&name) {
            return Err(EnvironmentError(format!(
                "base {name:?} is not a commit in this clone{}; run `git fetch origin {}` (or pass another --base)",
                self.shallow_hint(),
                name.strip_prefix("origin/").unwrap_or(&name)
            ))
            .into());
        }
        let finished = self.try_git(&["merge-base", &name, "HEAD"])?;
        if !finished.success {
            return Err(EnvironmentError(format!(
                "HEAD and base {name:?} have no common commit in this clone{}; run `git fetch --unshallow` (or `git fetch --deepen=100`), or pass --base REF",
                self.shallow_hint()
            ))
            .into());
        }
        Ok(Base { name, merge_base: finished.stdout.trim().to_string() })
    }

    fn resolves(&self, name: &str) -> bool {
        let spec = format!("{name}^{{commit}}");
        self.try_git(&["rev-parse", "--verify", "--quiet", &spec]).is_ok_and(|f| f.success)
    }

    fn shallow_hint(&self) -> &'static str {
        let shallow = self.try_git(&["rev-parse", "--is-shallow-repository"]).is_ok_and(|f| f.stdout.trim() == "true");
        if shallow {
            " (this is a shallow clone: CI checkouts often fetch one commit; use `git fetch --unshallow` or a full-depth checkout)"
        } else {
            ""
        }
    }

    /// Files that differ between `commit` and the work tree: committed since,
    /// staged, unstaged, and untracked files that are not git-ignored. Paths
    /// are relative to the tool's root; files outside it are left out. A
    /// rename counts as both its old and its new path.
    pub fn changed_since(&self, commit: &str) -> Result<Vec<String>> {
        let spec = self.pathspec();
        let diff = self.git(&["diff", "--name-only", "--no-renames", "-z", commit, "--", &spec])?;
        let untracked = self.git(&["ls-files", "--others", "--exclude-standard", "-z", "--", &spec])?;
        let mut files: Vec<String> = diff
            .split('\0')
            .chain(untracked.split('\0'))
            .filter(|p| !p.is_empty())
            .filter_map(|p| self.top_to_root(p))
            .collect();
        files.sort();
        files.dedup();
        Ok(files)
    }

    /// Files that differ between two commits, relative to the tool's root.
    pub fn changed_between(&self, from: &str, to: &str) -> Result<Vec<String>> {
        let spec = self.pathspec();
        let diff = self.git(&["diff", "--name-only", "--no-renames", "-z", from, to, "--", &spec])?;
        Ok(diff.split('\0').filter(|p| !p.is_empty()).filter_map(|p| self.top_to_root(p)).collect())
    }

    /// Files with uncommitted changes (staged, unstaged or untracked), relative
    /// to the tool's root.
    pub fn uncommitted(&self) -> Result<Vec<String>> {
        self.changed_since("HEAD")
    }

    /// The text of `path` (relative to the tool's root) at `commit`, or `None`
    /// when the file did not exist there.
    pub fn show(&self, commit: &str, path: &str) -> Result<Option<String>> {
        let object = format!("{commit}:{}", self.root_to_top(path));
        let exists = self.try_git(&["cat-file", "-e", &object])?;
        if !exists.success {
            return Ok(None);
        }
        self.git(&["show", &object]).map(Some)
    }

    /// The commit a tag points at, if the tag exists.
    pub fn tag_commit(&self, tag: &str) -> Result<Option<String>> {
        let spec = format!("refs/tags/{tag}^{{commit}}");
        let finished = self.try_git(&["rev-parse", "--verify", "--quiet", &spec])?;
        Ok(finished.success.then(|| finished.stdout.trim().to_string()))
    }

    /// Tags whose commit is `HEAD` or an ancestor of it (`git tag --merged`).
    pub fn tags_on_head(&self) -> Result<Vec<String>> {
        let listed = self.git(&["tag", "--list", "--merged", "HEAD"])?;
        Ok(listed.lines().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect())
    }

    /// The subjects of the commits (merges left out) reachable from `to` and
    /// not from `from` that touched `path` (relative to the tool's root),
    /// newest first, as `(commit, subject)`.
    pub fn subjects_touching(&self, from: Option<&str>, to: &str, path: &str) -> Result<Vec<(String, String)>> {
        let range = match from {
            Some(from) => format!("{from}..{to}"),
            None => to.to_string(),
        };
        let spec = format!(":/{}", self.root_to_top(path));
        let log = self.git(&["log", "--no-merges", "--format=%H%x00%s%x00", &range, "--", &spec])?;
        let fields: Vec<&str> = log.split('\0').map(|f| f.trim_start_matches(['\n', '\r'])).collect();
        Ok(fields
            .chunks(2)
            .filter(|c| c.len() == 2 && !c[0].is_empty())
            .map(|c| (c[0].to_string(), c[1].to_string()))
            .collect())
    }

    /// `HEAD`'s commit.
    pub fn head(&self) -> Result<String> {
        Ok(self.git(&["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// Creates a lightweight tag at `HEAD`. Lightweight, because an annotated
    /// tag needs a committer identity that CI runners often lack, and the
    /// release's metadata lives in the chart and the registry anyway.
    pub fn create_tag(&self, tag: &str) -> Result<()> {
        self.git(&["tag", tag, "HEAD"]).with_context(|| format!("cannot create git tag {tag}"))?;
        Ok(())
    }

    /// The tool's root as a git pathspec, so git lists nothing outside it.
    fn pathspec(&self) -> String {
        if self.prefix.is_empty() {
            ":/".to_string()
        } else {
            format!(":/{}", self.prefix)
        }
    }

    fn top_to_root(&self, path: &str) -> Option<String> {
        if self.prefix.is_empty() {
            return Some(path.to_string());
        }
        path.strip_prefix(&self.prefix).and_then(|p| p.strip_prefix('/')).map(str::to_string)
    }

    fn root_to_top(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }
}
