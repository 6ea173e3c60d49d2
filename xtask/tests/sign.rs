//! `package --sign`: Helm's provenance with keys made in the test (gpg in
//! batch mode in a temporary GNUPGHOME, exported to the legacy secret
//! keyring Helm reads), published to a real registry on loopback, where
//! `helm pull --verify` with the public keyring passes on every pushed chart
//! and fails with another key's.

mod support;

use std::path::Path;

use support::keys::{gpg, lib_and_app, make_gpg_key, pull_verify};
use support::{describe, run_ok, xtask, TestRegistry};

#[test]
fn signed_charts_are_published_with_their_provenance_and_verify_only_with_the_right_key() {
    let temp = tempfile::tempdir().expect("temp dir");
    let release = make_gpg_key(temp.path(), "Release Key", "correct horse");
    let stranger = make_gpg_key(temp.path(), "Stranger Key", "");
    let passphrase = temp.path().join("passphrase");
    std::fs::write(&passphrase, "correct horse\n").expect("write passphrase");
    let root = lib_and_app(temp.path());
    let registry = TestRegistry::start();

    let mut package = xtask();
    package
        .arg("--root")
        .arg(&root)
        .env_remove("XTASK_WORK_DIR")
        .args(["package", "--sign", "--key", "Release Key", "--keyring"])
        .arg(&release.secring)
        .arg("--passphrase-file")
        .arg(&passphrase)
        .args(["--publish", &format!("oci://{}/charts", registry.host()), "--plain-http"]);
    let output = run_ok(&mut package);
    let out = root.join("target/xtask/packages");
    for archive in ["lib-0.3.0.tgz", "app-1.0.0.tgz"] {
        let prov = out.join(format!("{archive}.prov"));
        let text = std::fs::read_to_string(&prov)
            .unwrap_or_else(|err| panic!("{}: {err}\n{}", prov.display(), describe(&output)));
        assert!(text.contains("-----BEGIN PGP SIGNATURE-----") && text.contains(archive), "{text}");
    }

    for (chart, version) in [("lib", "0.3.0"), ("app", "1.0.0")] {
        let good = pull_verify(
            &registry,
            "charts",
            chart,
            version,
            &release.pubring,
            &temp.path().join(format!("good-{chart}")),
        );
        assert!(good.status.success(), "{chart}: {}", describe(&good));
        let bad = pull_verify(
            &registry,
            "charts",
            chart,
            version,
            &stranger.pubring,
            &temp.path().join(format!("bad-{chart}")),
        );
        assert!(!bad.status.success(), "{chart} verified with another key: {}", describe(&bad));
    }

    // Without a key the flag is refused before anything is written.
    let refused = xtask().arg("--root").arg(&root).args(["package", "--sign"]).output().expect("xtask");
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--sign needs --key NAME and --keyring SECRING"));
}

/// A packaged chart's Chart.yaml.
fn packaged_chart_yaml(archive: &Path, chart: &str) -> serde_json::Value {
    use std::io::Read;
    let bytes = std::fs::read(archive).unwrap_or_else(|err| panic!("{}: {err}", archive.display()));
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    for entry in tar.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").to_string_lossy() == format!("{chart}/Chart.yaml") {
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("UTF-8");
            return yaml_serde::from_str(&text).expect("Chart.yaml parses");
        }
    }
    panic!("no Chart.yaml in {}", archive.display())
}

#[test]
fn a_signed_archive_names_its_key_for_artifact_hub_when_the_key_url_is_configured() {
    let temp = tempfile::tempdir().expect("temp dir");
    let release = make_gpg_key(temp.path(), "Release Key", "");
    let colons = gpg(&temp.path().join("gnupg-Release-Key"), &["--with-colons", "--fingerprint", "Release Key"]);
    let colons = String::from_utf8_lossy(&colons.stdout).into_owned();
    let fingerprint = colons.lines().find_map(|l| l.strip_prefix("fpr:")).expect("gpg prints the fingerprint");
    let fingerprint = fingerprint.trim_matches(':').to_string();
    let root = lib_and_app(temp.path());
    let sign = |out: &str| {
        let mut package = xtask();
        package.arg("--root").arg(&root).env_remove("XTASK_WORK_DIR");
        package.args(["package", "--chart", "app", "--out"]).arg(root.join("target").join(out));
        package.args(["--sign", "--key", "Release Key", "--keyring"]).arg(&release.secring);
        run_ok(&mut package)
    };

    // No URL: Artifact Hub would refuse the annotation, so it is left out, with a warning.
    let output = sign("without-url");
    let chart = packaged_chart_yaml(&root.join("target/without-url/app-1.0.0.tgz"), "app");
    assert!(chart["annotations"].get("artifacthub.io/signKey").is_none(), "{chart}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("artifacthub.io/signKey not written") && stderr.contains(&fingerprint), "{stderr}");
    assert!(stderr.contains("sign-key-url"), "{stderr}");

    let url = "https://charts.example.invalid/release-key.asc";
    std::fs::write(root.join("xtask.toml"), format!("[package]\nsign-key-url = {url:?}\n")).expect("xtask.toml");
    sign("with-url");
    let chart = packaged_chart_yaml(&root.join("target/with-url/app-1.0.0.tgz"), "app");
    let text = chart["annotations"]["artifacthub.io/signKey"].as_str().expect("signKey");
    let key: serde_json::Value = yaml_serde::from_str(text).expect("signKey is YAML");
    assert_eq!(key, serde_json::json!({"fingerprint": fingerprint, "url": url}), "gpg's own fingerprint of the key");
}
