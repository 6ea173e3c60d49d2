//! Installing a pinned tool into the per-user cache: the official release
//! archive checked against its published SHA-256, or else `go install` with
//! the version stamped in.
//!
//! Everything happens in a temporary folder next to the final one, which is
//! renamed into place only when the binary is complete and reports the pinned
//! version: an interrupted or failed install leaves nothing behind, and a
//! folder `<cache>/tools/<name>/<version>/` always holds a good binary.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::download::{self, Unavailable};
use super::locate;
use super::pins::ToolPin;
use super::Tool;
use crate::core::context::Context;
use crate::util::exit::EnvironmentError;

/// Installs `pin` into `<cache>/tools/<name>/<version>/<name>`.
pub fn install(ctx: &Context, pin: &ToolPin) -> Result<Tool> {
    // Staged beside `<cache>/tools/<name>/` (same file system, so the final
    // rename is atomic), and that folder is only created on success.
    let parent = ctx.cache_dir.join("tools");
    std::fs::create_dir_all(&parent).with_context(|| format!("{}: cannot create {}", pin.name, parent.display()))?;
    let prefix = format!(".install-{}-", pin.name);
    super::sweep_stale(&parent, &prefix);
    let staging = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(&parent)
        .with_context(|| format!("{}: cannot create a temporary folder in {}", pin.name, parent.display()))?;
    let staged = staging.path().join(&pin.name);

    let mut tried = Vec::new();
    let mut installed = false;
    if pin.release.is_some() {
        match from_release(pin, staging.path(), &staged)? {
            Ok(()) => installed = true,
            Err(Unavailable(reason)) => {
                eprintln!("{} {}: release download unavailable ({reason}): trying go install", pin.name, pin.version);
                tried.push(format!("the release download failed: {reason}"));
            }
        }
    }
    if !installed {
        match with_go(pin, staging.path())? {
            Ok(()) => {}
            Err(Unavailable(reason)) => {
                tried.push(reason);
                return Err(how_to_install(ctx, pin, &tried).into());
            }
        }
    }

    // Checked before the rename, so a wrongly stamped build never lands in
    // the cache where its folder name would vouch for it.
    let reported = locate::probe(pin, &staged)?;
    if reported != pin.version {
        return Err(EnvironmentError(format!(
            "{} {}: the new binary reports version {reported:?}, so it was not installed (is the version ldflag in tools/pins.toml right?)",
            pin.name, pin.version
        ))
        .into());
    }
    let binary = place(pin, staging, &locate::cached_binary(ctx, pin))?;
    eprintln!("{} {}: installed {}", pin.name, pin.version, binary.display());
    Ok(Tool { name: pin.name.clone(), version: pin.version.clone(), path: binary })
}

/// Downloads and verifies the release archive and extracts the binary to
/// `staged`. `Ok(Err(_))` when the source is unreachable (fall back);
/// `Err` for everything that must stop the install, above all a checksum
/// mismatch.
fn from_release(pin: &ToolPin, staging: &Path, staged: &Path) -> Result<Result<(), Unavailable>> {
    let Some(release) = &pin.release else {
        return Ok(Err(Unavailable("no release download is configured".into())));
    };
    let (url, checksum_url, inner_path) = match release.for_this_machine(&pin.version) {
        Ok(urls) => urls,
        Err(err) => return Ok(Err(Unavailable(format!("{err:#}")))),
    };
    let (url, checksum_url) = (download::rebase(&url), download::rebase(&checksum_url));
    let file_name = url.rsplit('/').next().unwrap_or(&url).to_string();
    let agent = download::agent();

    // The small checksum file first: an unreachable host is found out
    // before anything big is transferred.
    let checksums = match download::text(&agent, &checksum_url) {
        Ok(text) => text,
        Err(unavailable) => return Ok(Err(unavailable)),
    };
    let Some(expected) = download::expected_sha256(&checksums, &file_name) else {
        anyhow::bail!(
            "{} {}: {checksum_url} lists no SHA-256 for {file_name}: refusing to install an unverified download",
            pin.name,
            pin.version
        );
    };

    eprintln!("{} {}: downloading {url}", pin.name, pin.version);
    let archive = staging.join(&file_name);
    let actual = match download::to_file(&agent, &url, &archive)
        .with_context(|| format!("{} {}: download", pin.name, pin.version))?
    {
        Ok(hash) => hash,
        Err(unavailable) => return Ok(Err(unavailable)),
    };
    if actual != expected {
        anyhow::bail!(
            "{} {}: checksum mismatch for {url}: {checksum_url} says sha256 {expected}, the download has {actual}; refusing to install it (nothing was installed)",
            pin.name,
            pin.version
        );
    }
    extract(&archive, &inner_path, staged)
        .with_context(|| format!("{} {}: cannot unpack {file_name}", pin.name, pin.version))?;
    std::fs::remove_file(&archive)
        .with_context(|| format!("{} {}: cannot remove {}", pin.name, pin.version, archive.display()))?;
    Ok(Ok(()))
}

/// Copies the regular file at `inner_path` out of a tar.gz into `dest`,
/// executable.
fn extract(archive: &Path, inner_path: &str, dest: &Path) -> Result<()> {
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().context("not a tar.gz archive")? {
        let mut entry = entry.context("broken tar.gz archive")?;
        let path = entry.path().context("broken tar.gz archive")?.into_owned();
        let path = path.strip_prefix("./").unwrap_or(&path);
        if path != Path::new(inner_path) || !entry.header().entry_type().is_file() {
            continue;
        }
        let mut out = create_executable(dest)?;
        std::io::copy(&mut entry, &mut out).with_context(|| format!("cannot write {}", dest.display()))?;
        out.flush().with_context(|| format!("cannot write {}", dest.display()))?;
        return Ok(());
    }
    anyhow::bail!("the archive has no file {inner_path}")
}

fn create_executable(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// `go install <module>@v<version>` into `staging` (GOBIN), with the
/// version ldflags. `Ok(Err(_))` when there is no go or the build fails.
fn with_go(pin: &ToolPin, staging: &Path) -> Result<Result<(), Unavailable>> {
    let Ok(go) = which::which("go") else {
        return Ok(Err(Unavailable("`go` is not on PATH, so it cannot be built from source".into())));
    };
    eprintln!("{} {}: building with `{}` (takes a few minutes once)", pin.name, pin.version, pin.go_install_line());
    let sh = xshell::Shell::new().context("cannot set up a shell for go install")?;
    // `go install module@version` ignores any go.mod around it: only the
    // pinned module's own go.mod decides the dependencies. A neutral
    // working folder keeps it that way for older Go versions too.
    sh.change_dir(staging);
    let (ldflags, spec) = (pin.go_ldflags(), pin.go_spec());
    let cmd = xshell::cmd!(sh, "{go} install -trimpath -ldflags {ldflags} {spec}").env("GOBIN", staging);
    let finished = crate::exec::process::run(cmd, None)
        .with_context(|| format!("{} {}: cannot start go install", pin.name, pin.version))?;
    if !finished.success {
        let log = finished.combined();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Ok(Err(Unavailable(format!("`{}` failed:\n{}", finished.display, tail.join("\n")))));
    }
    Ok(Ok(()))
}

/// Moves the staging folder to `<cache>/tools/<name>/<version>/` and
/// returns the binary's path there. If another process got there first,
/// its binary is as good as ours.
fn place(pin: &ToolPin, staging: tempfile::TempDir, binary: &Path) -> Result<PathBuf> {
    let dest = binary.parent().context("cache path has no parent")?;
    if let Some(tool_dir) = dest.parent() {
        std::fs::create_dir_all(tool_dir)
            .with_context(|| format!("{} {}: cannot create {}", pin.name, pin.version, tool_dir.display()))?;
    }
    match std::fs::rename(staging.path(), dest) {
        Ok(()) => {
            // Renamed away: there is nothing left for the guard to delete.
            let _ = staging.keep();
            Ok(binary.to_path_buf())
        }
        Err(_) if binary.is_file() => Ok(binary.to_path_buf()),
        Err(err) => Err(err).with_context(|| {
            format!("{} {}: cannot move the new binary into {}", pin.name, pin.version, dest.display())
        }),
    }
}

/// The exit-3 error when no source worked: what was tried, and every way
/// to get the tool by hand.
fn how_to_install(ctx: &Context, pin: &ToolPin, tried: &[String]) -> EnvironmentError {
    let mut message = format!("{} {} is not installed and cannot be installed here:\n", pin.name, pin.version);
    for reason in tried {
        message.push_str(&format!("  - {}\n", reason.replace('\n', "\n    ")));
    }
    message.push_str("get it in one of these ways, then run the command again:\n");
    message.push_str(&format!(
        "  - build it: {} (needs Go; the binary lands in $(go env GOPATH)/bin, put that on PATH)\n",
        pin.go_install_line()
    ));
    if let Some((url, checksum_url, _)) =
        pin.release.as_ref().and_then(|release| release.for_this_machine(&pin.version).ok())
    {
        message.push_str(&format!(
            "  - download {url}, check it against {checksum_url}, and put the {} binary on PATH or at {}\n",
            pin.name,
            locate::cached_binary(ctx, pin).display()
        ));
        message.push_str(&format!("  - or set {} to a mirror that serves the same paths\n", download::BASE_ENV));
    }
    message.push_str(&format!("  - or set {} to the path of a {} {} binary", pin.env, pin.name, pin.version));
    EnvironmentError(message)
}
