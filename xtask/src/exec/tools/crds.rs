//! The CustomResourceDefinitions the charts and `argocd/` use (Argo CD's,
//! the Prometheus operator's, External Secrets'), from the upstream
//! projects' Go modules at the versions `pins.toml` names, and the
//! kubeconform schemas generated from them (`crd_schema.rs`).
//!
//! Trust, in three steps, none of them the network at run time of `lint`
//! or `verify`: `go mod download -json MODULE@vVERSION` fetches the module
//! zip through the Go module proxy (the user's GOPROXY, GOFLAGS, GONOSUMDB
//! apply) and checks it against the checksum database; the xtask hashes the
//! zip itself (Go's `h1:` directory hash) against the pinned `sum`; and each
//! CRD file taken from it must have its pinned SHA-256. A mismatch refuses
//! the module and installs nothing.
//!
//! Only the pinned files are kept: `<cache>/crds/<name>-<version>/`, with
//! a marker listing them and their digests, written last. Every use that
//! reads the files (`tools crds`, `verify`) checks each digest again and
//! refuses a changed file, naming it. The generated schemas live in
//! `<cache>/crds/schemas-<fingerprint>/`; the fingerprint covers every pin
//! and the generator, so it changes (and `lint`'s cache key with it) when a
//! CRD pin changes. A warm `lint` reads one marker file and starts no
//! process.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::context::Context;
use crate::util::exit::EnvironmentError;

/// Bump when the generated schemas change for the same CRD files.
const GENERATOR: u32 = 1;

/// Written last into a prepared folder: present and current means complete.
const MARKER: &str = ".xtask-prepared";

/// One Go module and the CRD files taken from it (a `[crds.NAME]` table).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CrdPin {
    /// The table name, e.g. `argo-cd`.
    #[serde(skip)]
    pub name: String,
    pub module: String,
    /// Without a leading `v`.
    pub version: String,
    /// The checksum database's `h1:` hash of the module zip.
    pub sum: String,
    /// Path inside the module -> SHA-256 of the file.
    pub files: BTreeMap<String, String>,
}

impl CrdPin {
    fn spec(&self) -> String {
        format!("{}@v{}", self.module, self.version)
    }

    /// `<cache>/crds/<name>-<version>`.
    fn dir(&self, ctx: &Context) -> PathBuf {
        ctx.cache_dir.join("crds").join(format!("{}-{}", self.name, self.version))
    }

    /// The file name a pinned path is kept under (its last component).
    fn kept_name(path: &str) -> &str {
        path.rsplit('/').next().unwrap_or(path)
    }

    fn marker(&self) -> String {
        let mut text = format!("{} sum {}\n", self.spec(), self.sum);
        for (path, digest) in &self.files {
            text.push_str(&format!("{digest}  {path}\n"));
        }
        text
    }
}

/// One module's CRD files, checked.
#[derive(Debug, Clone, Serialize)]
pub struct CrdModule {
    pub name: String,
    pub module: String,
    pub version: String,
    /// The folder holding the files.
    pub dir: PathBuf,
    /// The CRD files, in pin order.
    pub files: Vec<PathBuf>,
}

/// Every pinned module's CRD files and the schemas generated from them.
#[derive(Debug, Clone, Serialize)]
pub struct Crds {
    pub modules: Vec<CrdModule>,
    /// kubeconform's `-schema-location` for the generated schemas.
    pub schema_location: String,
    /// Identifies the pins and the generator, for cache keys.
    pub fingerprint: String,
}

/// The lines `cargo xtask tools crds` prints: one per module.
pub fn lines(crds: &Crds) -> String {
    crds.modules.iter().map(|m| format!("crds-{}\t{}\t{}\n", m.name, m.version, m.dir.display())).collect()
}

/// Short SHA-256 over the generator and every pin.
pub fn fingerprint(pins: &BTreeMap<String, CrdPin>) -> String {
    let mut text = format!("generator {GENERATOR}\n");
    for pin in pins.values() {
        text.push_str(&pin.marker());
    }
    crate::util::fs::sha256_hex(text.as_bytes())[..16].to_string()
}

/// The generated schemas' location and fingerprint: one marker read when
/// they are prepared (every `lint`), else [`ensure`] first.
pub fn schema_location(ctx: &Context, pins: &BTreeMap<String, CrdPin>) -> Result<(String, String)> {
    let fingerprint = fingerprint(pins);
    let dir = schema_dir(ctx, &fingerprint);
    if !is_prepared(&dir, &fingerprint) {
        ensure(ctx, pins)?;
    }
    Ok((location(&dir), fingerprint))
}

fn schema_dir(ctx: &Context, fingerprint: &str) -> PathBuf {
    ctx.cache_dir.join("crds").join(format!("schemas-{fingerprint}"))
}

fn location(dir: &Path) -> String {
    format!("{}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json", dir.display())
}

fn is_prepared(dir: &Path, marker: &str) -> bool {
    std::fs::read_to_string(dir.join(MARKER)).is_ok_and(|text| text == marker)
}

/// Every module's files, fetched if missing and checked against their
/// digests, and the schemas generated from them.
pub fn ensure(ctx: &Context, pins: &BTreeMap<String, CrdPin>) -> Result<Crds> {
    let mut modules = Vec::new();
    for pin in pins.values() {
        modules.push(ensure_module(ctx, pin)?);
    }
    let fingerprint = fingerprint(pins);
    let dir = schema_dir(ctx, &fingerprint);
    if !is_prepared(&dir, &fingerprint) {
        let _lock = crate::util::fs::lock_file(&ctx.cache_dir.join(".crds.lock"))?;
        if !is_prepared(&dir, &fingerprint) {
            generate(&modules, &dir, &fingerprint)?;
        }
    }
    Ok(Crds { modules, schema_location: location(&dir), fingerprint })
}

fn refused(message: String) -> anyhow::Error {
    EnvironmentError(message).into()
}

/// One module's kept files: checked in the cache, else fetched.
fn ensure_module(ctx: &Context, pin: &CrdPin) -> Result<CrdModule> {
    let dir = pin.dir(ctx);
    let marker = pin.marker();
    if !is_prepared(&dir, &marker) {
        let _lock = crate::util::fs::lock_file(&ctx.cache_dir.join(".crds.lock"))?;
        if !is_prepared(&dir, &marker) {
            fetch(pin, &dir, &marker)?;
        }
    }
    let mut files = Vec::new();
    for (path, digest) in &pin.files {
        let file = dir.join(CrdPin::kept_name(path));
        let bytes = std::fs::read(&file).with_context(|| format!("crds: cannot read {}", file.display()))?;
        let actual = crate::util::fs::sha256_hex(&bytes);
        if &actual != digest {
            return Err(refused(format!(
                "crds: {} has sha256 {actual}, but {} {path} is pinned to {digest} (tools/pins.toml): the cached file was changed after it was checked, so it is not used; delete {} and run `cargo xtask tools crds` to fetch it again",
                file.display(),
                pin.spec(),
                dir.display()
            )));
        }
        files.push(file);
    }
    Ok(CrdModule { name: pin.name.clone(), module: pin.module.clone(), version: pin.version.clone(), dir, files })
}

/// What `go mod download -json` says of one module.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Downloaded {
    #[serde(default)]
    zip: Option<PathBuf>,
    #[serde(default)]
    error: Option<String>,
}

/// Downloads the module, checks its zip and the pinned files in it, and
/// puts the files into `dest` (through a temporary folder beside it).
fn fetch(pin: &CrdPin, dest: &Path, marker: &str) -> Result<()> {
    let spec = pin.spec();
    let Ok(go) = which::which("go") else {
        return Err(refused(format!(
            "crds: the CRDs of {spec} come from its Go module, and `go` is not on PATH to download it; install Go"
        )));
    };
    eprintln!("crds: downloading {spec} (once per version)");
    let sh = xshell::Shell::new()?;
    // A neutral folder: a go.mod or go.work around the caller must not
    // join in; GOTOOLCHAIN local: a module that asks for a newer Go must not
    // make the go command download a toolchain (only the zip is needed).
    sh.change_dir(std::env::temp_dir());
    let finished = crate::exec::process::run(
        xshell::cmd!(sh, "{go} mod download -json {spec}").env("GOWORK", "off").env("GOTOOLCHAIN", "local"),
        None,
    )?;
    let info: Downloaded = serde_json::from_str(&finished.stdout).unwrap_or_default();
    // A zip that is there was checked by the go command; an error beside it
    // can only be about unpacking it (argo-cd asks for a newer Go than the
    // one that fetched it), which is not needed.
    let Some(zip_path) = info.zip.filter(|path| path.is_file()) else {
        return Err(refused(format!(
            "crds: `{}` failed: {}",
            finished.display,
            info.error.unwrap_or_else(|| crate::exec::process::tail(&finished.combined(), 20))
        )));
    };
    let file = std::fs::File::open(&zip_path).with_context(|| format!("crds: cannot open {}", zip_path.display()))?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("crds: {} is not a zip", zip_path.display()))?;
    let sum = module_hash(&mut zip).with_context(|| format!("crds: cannot hash {}", zip_path.display()))?;
    if sum != pin.sum {
        return Err(refused(format!(
            "crds: the module zip of {spec} ({}) hashes to {sum}, but tools/pins.toml pins {}; refusing it (nothing was installed)",
            zip_path.display(),
            pin.sum
        )));
    }

    let staging = super::staging_beside(&format!("crds-{}", pin.name), dest)?;
    for (path, digest) in &pin.files {
        let inner = format!("{spec}/{path}");
        let mut bytes = Vec::new();
        zip.by_name(&inner)
            .with_context(|| format!("crds: {spec} has no {path}"))?
            .read_to_end(&mut bytes)
            .with_context(|| format!("crds: cannot read {path} from {}", zip_path.display()))?;
        let actual = crate::util::fs::sha256_hex(&bytes);
        if &actual != digest {
            return Err(refused(format!(
                "crds: {path} of {spec} has sha256 {actual}, but tools/pins.toml pins {digest}; refusing it (nothing was installed)"
            )));
        }
        let out = staging.path().join(CrdPin::kept_name(path));
        std::fs::write(&out, &bytes).with_context(|| format!("crds: cannot write {}", out.display()))?;
    }
    std::fs::write(staging.path().join(MARKER), marker)?;
    super::schemas::swap_into_place(staging, dest, marker)?;
    eprintln!("crds: {spec}: kept {} CRD file(s) in {}", pin.files.len(), dest.display());
    Ok(())
}

/// Go's `h1:` hash of a module zip (`dirhash.HashZip`): the SHA-256 of
/// the lines `<sha256 hex>  <name>\n` of every file, sorted by name, in
/// standard base64.
fn module_hash(zip: &mut zip::ZipArchive<std::fs::File>) -> Result<String> {
    let mut lines: Vec<(String, String)> = Vec::with_capacity(zip.len());
    let mut buffer = vec![0u8; 256 * 1024];
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index)?;
        let name = entry.name().to_string();
        anyhow::ensure!(!name.contains('\n'), "a file name holds a newline");
        let mut hasher = Sha256::new();
        loop {
            let n = entry.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        lines.push((name, crate::util::fs::hex(&hasher.finalize())));
    }
    lines.sort();
    let mut summary = Sha256::new();
    for (name, hash) in &lines {
        summary.update(format!("{hash}  {name}\n").as_bytes());
    }
    Ok(format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(summary.finalize())))
}

/// Writes the schemas of every CRD file into `dest`, through a temporary
/// folder beside it.
fn generate(modules: &[CrdModule], dest: &Path, marker: &str) -> Result<()> {
    let staging = super::staging_beside("crd-schemas", dest)?;
    let mut count = 0;
    for file in modules.iter().flat_map(|m| &m.files) {
        let text = std::fs::read_to_string(file).with_context(|| format!("crds: cannot read {}", file.display()))?;
        for generated in super::crd_schema::from_crd_file(&text, &file.display().to_string())? {
            let out = staging.path().join(generated.relative_path());
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&out, serde_json::to_vec(&generated.schema)?)
                .with_context(|| format!("crds: cannot write {}", out.display()))?;
            count += 1;
        }
    }
    std::fs::write(staging.path().join(MARKER), marker)?;
    super::schemas::swap_into_place(staging, dest, marker)?;
    eprintln!("crds: generated {count} kubeconform schema(s) in {}", dest.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_hash_is_gos_h1() {
        // A zip of one file `m@v1.0.0/a` holding "hello\n"; the expected
        // value is sha256("<sha256 of hello\n>  m@v1.0.0/a\n") in base64.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.zip");
        {
            let mut writer = zip::ZipWriter::new(std::fs::File::create(&path).expect("create"));
            writer.start_file("m@v1.0.0/a", zip::write::SimpleFileOptions::default()).expect("start");
            std::io::Write::write_all(&mut writer, b"hello\n").expect("write");
            writer.finish().expect("finish");
        }
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).expect("open")).expect("zip");
        let line = format!("{}  m@v1.0.0/a\n", crate::util::fs::sha256_hex(b"hello\n"));
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(line.as_bytes()));
        assert_eq!(module_hash(&mut zip).expect("hash"), format!("h1:{expected}"));
    }

    #[test]
    fn the_fingerprint_follows_every_pin() {
        let pins = super::super::pins::load().expect("pins").crds;
        let before = fingerprint(&pins);
        let mut changed = pins.clone();
        if let Some(pin) = changed.values_mut().next() {
            if let Some(digest) = pin.files.values_mut().next() {
                *digest = "0".repeat(64);
            }
        }
        assert_ne!(fingerprint(&changed), before);
        assert_eq!(fingerprint(&pins), before);
    }
}
