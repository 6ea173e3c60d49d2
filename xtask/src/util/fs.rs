//! File-system helpers that keep the repository and the caches consistent:
//! atomic writes, links and mirrors, locks, content hashing, and the checks
//! that keep what a pull request controls inside the repository.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Writes `bytes` to `path` through a temporary file in the same folder and a
/// rename, so readers (and an interrupted run) see either the old file or the
/// new one, never half of it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("path has no parent folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    std::io::Write::write_all(&mut temp, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    temp.persist(path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// `base` joined with `rel`, refused unless `rel` is a relative path of
/// plain names (no `..`, no root, no prefix): the second line of defence
/// behind the name rules, for every path joined from input.
pub fn join_inside(base: &Path, rel: impl AsRef<Path>) -> Result<PathBuf> {
    let rel = rel.as_ref();
    if !is_plain_relative(rel) {
        anyhow::bail!("path {:?} would leave {}: refused", rel.display().to_string(), base.display());
    }
    Ok(base.join(rel))
}

/// A non-empty relative path of plain names: no `..`, no root, no prefix.
pub fn is_plain_relative(rel: &Path) -> bool {
    !rel.as_os_str().is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Refuses `path` unless, with every link resolved, it lies inside `root`
/// (which must be canonical). Used for files a pull request controls
/// (`xtask.toml`, `ct.yaml`, the matrix, chart directories) before they are
/// read.
pub fn inside(root: &Path, path: &Path) -> Result<()> {
    match path.canonicalize() {
        Ok(real) if real.starts_with(root) => Ok(()),
        Ok(real) => anyhow::bail!(
            "{} is a symbolic link to {}, outside the repository: refused",
            shown_in(root, path),
            real.display()
        ),
        Err(_) if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) => {
            let target = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
            anyhow::bail!("{} is a symbolic link to {target}, which does not exist: refused", shown_in(root, path))
        }
        Err(err) => Err(err).with_context(|| format!("cannot read {}", shown_in(root, path))),
    }
}

/// Every symbolic link below `dir`, relative to `root` (canonical); an
/// error names the first link that leads outside `root`, nowhere, or to a
/// folder that holds it (a loop). Links to folders inside the repository are
/// followed, since Helm follows them, and what they lead to is checked too.
pub fn links_inside(root: &Path, dir: &Path) -> Result<Vec<String>> {
    let mut links = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    walk_links(root, dir, &mut links, &mut seen)?;
    Ok(links)
}

fn walk_links(
    root: &Path,
    dir: &Path,
    links: &mut Vec<String>,
    seen: &mut std::collections::BTreeSet<PathBuf>,
) -> Result<()> {
    let real_dir = dir.canonicalize().with_context(|| format!("cannot read {}", shown_in(root, dir)))?;
    if !seen.insert(real_dir.clone()) {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", shown_in(root, dir)))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().with_context(|| format!("cannot read {}", shown_in(root, &path)))?;
        if kind.is_symlink() {
            inside(root, &path)?;
            let target = path.canonicalize().with_context(|| format!("cannot resolve {}", shown_in(root, &path)))?;
            if target.is_dir() {
                if real_dir.starts_with(&target) {
                    anyhow::bail!(
                        "{} is a symbolic link to {}, a folder that holds it (a loop): refused",
                        shown_in(root, &path),
                        shown_in(root, &target)
                    );
                }
                walk_links(root, &target, links, seen)?;
            }
            links.push(shown_in(root, &path));
        } else if kind.is_dir() {
            walk_links(root, &path, links, seen)?;
        }
    }
    Ok(())
}

/// A path relative to `root` when it is below it, else as it is.
fn shown_in(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of any byte string.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Creates a symlink, replacing whatever was at `link`.
pub fn symlink_force(target: &Path, link: &Path) -> Result<()> {
    if link.symlink_metadata().is_ok() {
        remove_any(link)?;
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} -> {}", link.display(), target.display()))
}

/// Makes `to` show what `from` holds without copying a byte: a folder
/// becomes a real folder whose files are hard links to the originals, so an
/// edit in place shows through. Helm reads such a tree as plain files: every
/// symlink it meets costs it a full `EvalSymlinks` and a log line, which in
/// a tree of links was a tenth of all the CPU time of `cargo xtask lint`.
/// Symlinks in `from` become links to their place in `from`, and a file
/// that cannot be hard-linked (another file system, or not owned by us)
/// becomes a symlink. Whatever was at `to` is replaced.
pub fn mirror(from: &Path, to: &Path) -> Result<()> {
    if to.symlink_metadata().is_ok() {
        remove_any(to)?;
    }
    mirror_into(from, to)
}

fn mirror_into(from: &Path, to: &Path) -> Result<()> {
    let kind = from.symlink_metadata().with_context(|| format!("cannot read {}", from.display()))?.file_type();
    if kind.is_dir() {
        std::fs::create_dir(to).with_context(|| format!("cannot create {}", to.display()))?;
        for entry in std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))? {
            let entry = entry?;
            mirror_into(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else if kind.is_file() && std::fs::hard_link(from, to).is_ok() {
        Ok(())
    } else {
        std::os::unix::fs::symlink(from, to)
            .with_context(|| format!("cannot link {} -> {}", to.display(), from.display()))
    }
}

/// True when `to` is exactly what [`mirror`] makes of `from` now: the same
/// names everywhere, every file the same file (or a link to it). A file
/// replaced in `from` (an editor saving through a new file) is a new file,
/// so the mirror is stale.
pub fn is_mirror(from: &Path, to: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(source), Ok(copy)) = (from.symlink_metadata(), to.symlink_metadata()) else {
        return false;
    };
    let linked_back = || copy.file_type().is_symlink() && std::fs::read_link(to).is_ok_and(|t| t == from);
    if source.file_type().is_symlink() {
        return linked_back();
    }
    if source.is_dir() {
        if !copy.is_dir() {
            return false;
        }
        return match (sorted_names(from), sorted_names(to)) {
            (Some(a), Some(b)) => a == b && a.iter().all(|name| is_mirror(&from.join(name), &to.join(name))),
            _ => false,
        };
    }
    (copy.is_file() && copy.dev() == source.dev() && copy.ino() == source.ino()) || linked_back()
}

/// The names in a folder, sorted; `None` when it cannot be listed.
pub fn sorted_names(dir: &Path) -> Option<Vec<std::ffi::OsString>> {
    let mut names: Vec<_> = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    Some(names)
}

/// Removes a file, a link or a whole folder.
fn remove_any(path: &Path) -> Result<()> {
    let is_dir = path.symlink_metadata().is_ok_and(|m| m.is_dir());
    if is_dir { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }
        .with_context(|| format!("cannot remove {}", path.display()))
}

/// Creates `dir` with a `.gitignore` that ignores everything in it, so build
/// output in a repository that does not ignore `target/` still leaves
/// `git status` clean (cargo does the same for its own target folder).
pub fn ignore_folder(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let marker = dir.join(".gitignore");
    if !marker.exists() {
        write_atomic(&marker, b"# build output of cargo xtask\n*\n")?;
    }
    Ok(())
}

/// Holds the work folder for one run: two runs that share a work folder
/// would clear each other's staged charts, so the second waits (saying so)
/// until the first is done. The lock is released when the file is dropped,
/// also when the process dies.
pub fn lock_folder(dir: &Path) -> Result<std::fs::File> {
    ignore_folder(dir)?;
    lock_file(&dir.join(".lock"))
}

/// Takes an exclusive lock on the file `path` (created if missing), waiting
/// for another process that holds it and saying so.
pub fn lock_file(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!("waiting for another cargo xtask run that holds {}", path.display());
            file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_must_stay_in_the_repository() {
        let outside = tempfile::tempdir().expect("temp dir");
        std::fs::write(outside.path().join("secret"), "s3cret").expect("write");
        let repo = tempfile::tempdir().expect("temp dir");
        let root = repo.path().canonicalize().expect("canonical");
        let chart = root.join("charts").join("a");
        std::fs::create_dir_all(chart.join("templates")).expect("mkdir");
        std::fs::write(root.join("README.md"), "x").expect("write");
        std::os::unix::fs::symlink("../../../README.md", chart.join("templates").join("in.txt")).expect("link");
        assert_eq!(links_inside(&root, &chart).expect("inside"), ["charts/a/templates/in.txt"]);

        std::os::unix::fs::symlink(outside.path().join("secret"), chart.join("templates").join("NOTES.txt"))
            .expect("link");
        let err = format!("{:#}", links_inside(&root, &chart).unwrap_err());
        assert!(
            err.contains("charts/a/templates/NOTES.txt is a symbolic link to")
                && err.contains("outside the repository"),
            "{err}"
        );
        std::fs::remove_file(chart.join("templates").join("NOTES.txt")).expect("rm");

        // A folder link inside the repository is followed: what it holds counts.
        let other = root.join("other");
        std::fs::create_dir_all(&other).expect("mkdir");
        std::os::unix::fs::symlink(outside.path(), other.join("escape")).expect("link");
        std::os::unix::fs::symlink("../../other", chart.join("vendored")).expect("link");
        let err = format!("{:#}", links_inside(&root, &chart).unwrap_err());
        assert!(err.contains("other/escape is a symbolic link"), "{err}");
        std::fs::remove_file(other.join("escape")).expect("rm");
        std::fs::remove_file(chart.join("vendored")).expect("rm");

        std::os::unix::fs::symlink("..", chart.join("templates").join("up")).expect("link");
        let err = format!("{:#}", links_inside(&root, &chart).unwrap_err());
        assert!(err.contains("a loop"), "{err}");
        std::fs::remove_file(chart.join("templates").join("up")).expect("rm");

        std::os::unix::fs::symlink("/nonexistent/x", chart.join("dangling")).expect("link");
        let err = format!("{:#}", links_inside(&root, &chart).unwrap_err());
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn joins_refuse_to_climb() {
        let base = Path::new("/work/stage");
        assert_eq!(join_inside(base, "cart").expect("plain"), base.join("cart"));
        assert!(join_inside(base, "ci/dev.yaml").is_ok());
        for bad in ["../x", "a/../../x", "/etc/passwd", ""] {
            assert!(join_inside(base, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_mirror_follows_edits_in_place_and_notices_replaced_or_new_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (from, to) = (dir.path().join("chart"), dir.path().join("stage").join("chart"));
        std::fs::create_dir_all(from.join("templates")).expect("mkdir");
        std::fs::write(from.join("Chart.yaml"), "name: a\n").expect("write");
        std::fs::write(from.join("templates").join("cm.yaml"), "kind: ConfigMap\n").expect("write");
        std::os::unix::fs::symlink("Chart.yaml", from.join("alias.yaml")).expect("symlink");
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        mirror(&from, &to).expect("mirror");
        assert!(is_mirror(&from, &to));
        // Folders are real folders, files the same files, links lead back.
        assert!(!to.join("templates").symlink_metadata().expect("stat").file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(to.join("alias.yaml")).expect("read"), "name: a\n");

        // An edit in place shows through and keeps the mirror current.
        std::fs::write(from.join("Chart.yaml"), "name: b\n").expect("write");
        assert_eq!(std::fs::read_to_string(to.join("Chart.yaml")).expect("read"), "name: b\n");
        assert!(is_mirror(&from, &to));

        // A file saved through a new file is another file: the mirror is stale.
        write_atomic(&from.join("templates").join("cm.yaml"), b"kind: Secret\n").expect("replace");
        assert!(!is_mirror(&from, &to));
        mirror(&from, &to).expect("mirror again");
        assert!(is_mirror(&from, &to));
        assert_eq!(std::fs::read_to_string(to.join("templates").join("cm.yaml")).expect("read"), "kind: Secret\n");

        // A new file makes it stale too.
        std::fs::write(from.join("templates").join("svc.yaml"), "kind: Service\n").expect("write");
        assert!(!is_mirror(&from, &to));
    }
}
