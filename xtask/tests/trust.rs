//! Signing with cosign and verifying what was published, against a real
//! registry on loopback with keys made in the test: `package --publish
//! --cosign-key` signs every pushed digest, `package --verify` passes on
//! what was published and names the chart and the reason for a tampered
//! archive, a missing `.prov` and a signature by another key; `[trust]`
//! makes `lint` refuse an unsigned remote dependency and accept it once it
//! is signed, and `package --verify` follows a published umbrella into it.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::keys::{cosign_binary, git_repo, lib_and_app, make_cosign_key, make_gpg_key, pull_verify, CosignKey};
use support::{describe, run_ok, toolset, xtask, TestRegistry};

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// `package --verify URL` with these key flags, in `root`.
fn verify(root: &Path, url: &str, keys: &[&std::ffi::OsStr]) -> Output {
    xtask().arg("--root").arg(root).args(["package", "--verify", url]).args(keys).output().expect("xtask")
}

/// `helm push` of `archive` (with a `.prov` beside it when there is one);
/// returns the manifest digest helm printed.
fn helm_push(archive: &Path, url: &str) -> String {
    let output = run_ok(Command::new(&toolset().helm).arg("push").arg(archive).args([url, "--plain-http"]));
    let all = text(&output);
    all.lines().find_map(|l| l.trim().strip_prefix("Digest:")).map(|d| d.trim().to_string()).expect("a digest")
}

fn cosign_sign(key: &CosignKey, reference: &str) {
    run_ok(Command::new(cosign_binary()).env("COSIGN_PASSWORD", &key.password).args([
        "sign",
        "--yes",
        "--key",
        &key.key.to_string_lossy(),
        "--use-signing-config=false",
        "--tlog-upload=false",
        "--allow-http-registry",
        reference,
    ]));
}

#[test]
fn published_charts_verify_and_tampering_a_missing_prov_and_other_keys_are_named() {
    let temp = tempfile::tempdir().expect("temp dir");
    let release = make_gpg_key(temp.path(), "Release Key", "");
    let stranger = make_gpg_key(temp.path(), "Stranger Key", "");
    let cosign = make_cosign_key(temp.path(), "cosign-release", "cosign pass");
    let other_cosign = make_cosign_key(temp.path(), "cosign-other", "other");
    let root = lib_and_app(temp.path());
    let registry = TestRegistry::start();
    let url = format!("oci://{}/charts", registry.host());

    let published = run_ok(
        xtask()
            .arg("--root")
            .arg(&root)
            .env_remove("XTASK_WORK_DIR")
            .env("COSIGN_PASSWORD", &cosign.password)
            .args(["package", "--sign", "--key", "Release Key", "--keyring"])
            .arg(&release.secring)
            .args(["--publish", &url, "--plain-http", "--cosign-key"])
            .arg(&cosign.key),
    );
    for (chart, version) in [("lib", "0.3.0"), ("app", "1.0.0")] {
        let pulled = pull_verify(
            &registry,
            "charts",
            chart,
            version,
            &release.pubring,
            &temp.path().join(format!("pull-{chart}")),
        );
        assert!(pulled.status.success(), "{chart}: {}\npublish said: {}", describe(&pulled), describe(&published));
    }

    let good: Vec<&std::ffi::OsStr> =
        vec!["--keyring".as_ref(), release.pubring.as_os_str(), "--cosign-pub".as_ref(), cosign.public.as_os_str()];
    let first = verify(&root, &url, &good);
    assert!(first.status.success(), "{}", describe(&first));
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    for chart in ["lib 0.3.0", "app 1.0.0"] {
        assert!(stdout.contains(&format!("ok    {chart}: sha256:")), "{chart}: {stdout}");
    }
    // cosign's signature tags (`sha256-<hex>`) are not chart versions.
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    // A re-run finds both digests verified before: nothing is run again.
    let again = verify(&root, &url, &good);
    assert!(again.status.success(), "{}", describe(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout).matches("(verified before)").count(), 2, "{}", describe(&again));

    // Another gpg key: both charts fail, each named with the reason.
    let wrong_gpg = verify(&root, &url, &["--keyring".as_ref(), stranger.pubring.as_os_str()]);
    assert_eq!(wrong_gpg.status.code(), Some(1), "{}", describe(&wrong_gpg));
    for chart in ["lib 0.3.0", "app 1.0.0"] {
        assert!(
            text(&wrong_gpg)
                .contains(&format!("FAIL  {chart}: the provenance is signed by a key that is not in the keyring")),
            "{chart}: {}",
            describe(&wrong_gpg)
        );
    }
    // Another cosign key.
    let wrong_cosign = verify(&root, &url, &["--cosign-pub".as_ref(), other_cosign.public.as_os_str()]);
    assert_eq!(wrong_cosign.status.code(), Some(1), "{}", describe(&wrong_cosign));
    assert!(
        text(&wrong_cosign).contains("FAIL  app 1.0.0: the cosign signature is not by the expected key"),
        "{}",
        describe(&wrong_cosign)
    );

    // A chart pushed without provenance.
    let bare_dir = temp.path().join("bare");
    std::fs::create_dir_all(bare_dir.join("templates")).expect("mkdir");
    std::fs::write(bare_dir.join("Chart.yaml"), "apiVersion: v2\nname: bare\nversion: 0.1.0\n").expect("write");
    let packed = temp.path().join("packed");
    run_ok(Command::new(&toolset().helm).arg("package").arg(&bare_dir).arg("--destination").arg(&packed));
    helm_push(&packed.join("bare-0.1.0.tgz"), &url);
    // A tampered app 1.0.0: other bytes under the same version, pushed with the old provenance.
    let tampered_dir = temp.path().join("tampered/app");
    std::fs::create_dir_all(tampered_dir.join("templates")).expect("mkdir");
    std::fs::write(tampered_dir.join("Chart.yaml"), "apiVersion: v2\nname: app\nversion: 1.0.0\n").expect("write");
    std::fs::write(
        tampered_dir.join("templates/evil.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: evil\n",
    )
    .expect("write");
    let tampered_out = temp.path().join("tampered-out");
    run_ok(Command::new(&toolset().helm).arg("package").arg(&tampered_dir).arg("--destination").arg(&tampered_out));
    std::fs::copy(root.join("target/xtask/packages/app-1.0.0.tgz.prov"), tampered_out.join("app-1.0.0.tgz.prov"))
        .expect("copy the old provenance");
    helm_push(&tampered_out.join("app-1.0.0.tgz"), &url);

    let after = verify(&root, &url, &good);
    assert_eq!(after.status.code(), Some(1), "{}", describe(&after));
    let all = text(&after);
    assert!(all.contains("ok    lib 0.3.0"), "{all}");
    assert!(all.contains("FAIL  bare 0.1.0: unsigned: the artifact has no Helm provenance (.prov) layer"), "{all}");
    assert!(all.contains("FAIL  app 1.0.0: the archive is not the one its provenance signed"), "{all}");
    assert!(all.contains("1 verified, 2 failed"), "{all}");
}

#[test]
fn lint_refuses_an_unsigned_dependency_under_trust_and_accepts_it_once_signed() {
    let temp = tempfile::tempdir().expect("temp dir");
    let release = make_gpg_key(temp.path(), "Upstream Key", "");
    let cosign = make_cosign_key(temp.path(), "cosign-upstream", "upstream pass");
    let registry = TestRegistry::start();
    let deps_url = format!("oci://{}/deps", registry.host());

    // The upstream chart, packaged and signed with Helm's provenance (not published).
    let upstream = temp.path().join("upstream");
    git_repo(
        &upstream,
        &[
            ("charts/dep/Chart.yaml", "apiVersion: v2\nname: dep\nversion: 0.1.0\n"),
            ("charts/dep/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dep\n"),
            (".gitignore", "/target\n"),
        ],
    );
    run_ok(
        xtask()
            .arg("--root")
            .arg(&upstream)
            .env_remove("XTASK_WORK_DIR")
            .args(["package", "--sign", "--key", "Upstream Key", "--keyring"])
            .arg(&release.secring),
    );
    let packages = upstream.join("target/xtask/packages");
    // First published without its provenance or a cosign signature.
    let unsigned = temp.path().join("unsigned");
    std::fs::create_dir_all(&unsigned).expect("mkdir");
    std::fs::copy(packages.join("dep-0.1.0.tgz"), unsigned.join("dep-0.1.0.tgz")).expect("copy");
    helm_push(&unsigned.join("dep-0.1.0.tgz"), &deps_url);

    // The umbrella trusts that registry path only with these keys.
    let umbrella = temp.path().join("umbrella");
    let pubring = std::fs::read(&release.pubring).expect("pubring");
    let cosign_pub = std::fs::read_to_string(&cosign.public).expect("cosign.pub");
    let chart_yaml = format!(
        "apiVersion: v2\nname: umb\nversion: 1.0.0\ndependencies:\n  - name: dep\n    version: 0.1.0\n    repository: {deps_url}\n"
    );
    let config =
        format!("[trust.\"{deps_url}\"]\nkeyring = \"keys/upstream.gpg\"\ncosign-key = \"keys/upstream.pub\"\n");
    git_repo(
        &umbrella,
        &[
            ("charts/umb/Chart.yaml", &chart_yaml),
            ("charts/umb/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: umb\n"),
            ("keys/upstream.pub", &cosign_pub),
            ("xtask.toml", &config),
            (".gitignore", "/target\n"),
        ],
    );
    std::fs::write(umbrella.join("keys/upstream.gpg"), pubring).expect("write the keyring");
    let work = temp.path().join("work");
    let lint = || {
        xtask()
            .arg("--root")
            .arg(&umbrella)
            .env("XTASK_WORK_DIR", &work)
            .args(["lint", "--chart", "umb"])
            .output()
            .expect("xtask lint")
    };

    let refused = lint();
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let all = text(&refused);
    for needle in [
        "charts/umb/Chart.yaml: dependency dep 0.1.0 from ",
        &deps_url,
        "refused by [trust]",
        "unsigned: the artifact has no Helm provenance (.prov) layer",
        "keys/upstream.gpg",
        "keys/upstream.pub",
    ] {
        assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
    }

    // Signed: the same archive re-pushed with its provenance, and its digest signed with cosign.
    std::fs::copy(packages.join("dep-0.1.0.tgz.prov"), unsigned.join("dep-0.1.0.tgz.prov")).expect("copy prov");
    let digest = helm_push(&unsigned.join("dep-0.1.0.tgz"), &deps_url);
    let half = lint();
    assert_eq!(half.status.code(), Some(1), "provenance alone is not enough: {}", describe(&half));
    assert!(text(&half).contains("unsigned: no cosign signature on this digest"), "{}", describe(&half));
    cosign_sign(&cosign, &format!("{}/deps/dep@{digest}", registry.host()));
    let accepted = lint();
    assert!(accepted.status.success(), "{}", describe(&accepted));

    // The umbrella, signed and published elsewhere: `package --verify` follows its
    // dependency into deps/ and checks it with the keys [trust] names there.
    let charts_url = format!("oci://{}/charts", registry.host());
    run_ok(
        xtask()
            .arg("--root")
            .arg(&umbrella)
            .env("XTASK_WORK_DIR", &work)
            .env("COSIGN_PASSWORD", &cosign.password)
            .args(["package", "--sign", "--key", "Upstream Key", "--keyring"])
            .arg(&release.secring)
            .args(["--publish", &charts_url, "--plain-http", "--cosign-key"])
            .arg(&cosign.key),
    );
    let audit = xtask()
        .arg("--root")
        .arg(&umbrella)
        .env("XTASK_WORK_DIR", &work)
        .args(["package", "--verify", &charts_url, "--keyring"])
        .arg(&release.pubring)
        .output()
        .expect("xtask package --verify");
    assert!(audit.status.success(), "{}", describe(&audit));
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert!(stdout.contains("ok    umb 1.0.0: sha256:"), "{stdout}");
    assert!(stdout.contains(&format!("ok    dep 0.1.0 (dependency of umb 1.0.0, {deps_url}): sha256:")), "{stdout}");

    // Remembered by content: with the registry gone a warm lint still passes.
    drop(registry);
    assert!(std::fs::read_dir(work.join("trust")).expect("the trust cache").count() >= 1);
    let warm = lint();
    assert!(warm.status.success(), "{}", describe(&warm));
}
