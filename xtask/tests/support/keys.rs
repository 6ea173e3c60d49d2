//! Signing keys made in the test, and the signed-chart fixture: gpg in batch
//! mode in a temporary GNUPGHOME (exported to the legacy keyrings Helm
//! reads) and cosign key pairs made by the pinned cosign. Used by
//! `tests/sign.rs` and `tests/trust.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::{pinned_tool, run_ok, TestRegistry};

/// A gpg key exported as Helm reads keys.
pub struct GpgKey {
    pub secring: PathBuf,
    pub pubring: PathBuf,
}

pub fn gpg(home: &Path, args: &[&str]) -> Output {
    run_ok(Command::new("gpg").env("GNUPGHOME", home).args(["--batch", "--pinentry-mode", "loopback"]).args(args))
}

/// An RSA signing key `name` in its own GNUPGHOME under `dir`, with
/// `passphrase` (empty: none), exported as Helm reads keys.
pub fn make_gpg_key(dir: &Path, name: &str, passphrase: &str) -> GpgKey {
    let home = dir.join(format!("gnupg-{}", name.replace(' ', "-")));
    std::fs::create_dir_all(&home).expect("mkdir");
    // gpg refuses a home others can read.
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
    let uid = format!("{name} <{}@example.invalid>", name.replace(' ', "."));
    gpg(&home, &["--passphrase", passphrase, "--quick-gen-key", &uid, "rsa2048", "sign", "never"]);
    let secret = gpg(&home, &["--passphrase", passphrase, "--export-secret-keys", &uid]);
    let public = gpg(&home, &["--export", &uid]);
    let secring = dir.join(format!("{}-secring.gpg", name.replace(' ', "-")));
    let pubring = dir.join(format!("{}-pubring.gpg", name.replace(' ', "-")));
    std::fs::write(&secring, secret.stdout).expect("write secring");
    std::fs::write(&pubring, public.stdout).expect("write pubring");
    GpgKey { secring, pubring }
}

/// The pinned cosign, as `xtask tools cosign` reports it (built on first
/// use, never skipped).
pub fn cosign_binary() -> &'static PathBuf {
    static COSIGN: OnceLock<PathBuf> = OnceLock::new();
    COSIGN.get_or_init(|| pinned_tool("cosign"))
}

/// A cosign key pair: `key` (encrypted with `password`) and `public`.
pub struct CosignKey {
    pub key: PathBuf,
    pub public: PathBuf,
    pub password: String,
}

/// `cosign generate-key-pair` in `dir/name/`, with COSIGN_PASSWORD set.
pub fn make_cosign_key(dir: &Path, name: &str, password: &str) -> CosignKey {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).expect("mkdir");
    run_ok(Command::new(cosign_binary()).current_dir(&home).env("COSIGN_PASSWORD", password).arg("generate-key-pair"));
    CosignKey { key: home.join("cosign.key"), public: home.join("cosign.pub"), password: password.to_string() }
}

/// Writes `files` (path, text) under `root` and commits them in a new git repository.
pub fn git_repo(root: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    let git = |args: &[&str]| run_ok(Command::new("git").arg("-C").arg(root).args(args));
    git(&["init", "--quiet", "--initial-branch", "main"]);
    git(&["config", "user.name", "Sign Test"]);
    git(&["config", "user.email", "sign-test@example.invalid"]);
    git(&["config", "commit.gpgsign", "false"]);
    git(&["add", "--all"]);
    git(&["commit", "--quiet", "--message", "charts"]);
}

/// A git repository under `dir/repo` with a library chart `lib` 0.3.0 and a
/// chart `app` 1.0.0 that depends on it.
pub fn lib_and_app(dir: &Path) -> PathBuf {
    let root = dir.join("repo");
    git_repo(
        &root,
        &[
            ("charts/lib/Chart.yaml", "apiVersion: v2\nname: lib\nversion: 0.3.0\ntype: library\n"),
            ("charts/lib/templates/_x.tpl", "{{- define \"lib.x\" -}}x{{- end -}}\n"),
            (
                "charts/app/Chart.yaml",
                "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n  - name: lib\n    version: 0.3.0\n    repository: \"file://../lib\"\n",
            ),
            (
                "charts/app/templates/configmap.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  x: {{ include \"lib.x\" . | quote }}\n",
            ),
            (".gitignore", "/target\n"),
        ],
    );
    root
}

/// `helm pull --verify` of `path/chart:version` from the registry with a public keyring.
pub fn pull_verify(
    registry: &TestRegistry,
    path: &str,
    chart: &str,
    version: &str,
    pubring: &Path,
    dest: &Path,
) -> Output {
    // `helm pull --verify` writes into the destination; it must exist.
    std::fs::create_dir_all(dest).expect("mkdir");
    Command::new(&super::toolset().helm)
        .arg("pull")
        .arg(format!("oci://{}/{path}/{chart}", registry.host()))
        .args(["--version", version, "--verify", "--plain-http", "--keyring"])
        .arg(pubring)
        .arg("--destination")
        .arg(dest)
        .output()
        .expect("helm pull")
}
