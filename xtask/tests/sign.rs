//! `package --sign`: Helm's provenance with keys made in the test (gpg in
//! batch mode in a temporary GNUPGHOME, exported to the legacy secret
//! keyring Helm reads), published to a real registry on loopback, where
//! `helm pull --verify` with the public keyring passes on every pushed chart
//! and fails with another key's.

mod support;

use support::keys::{lib_and_app, make_gpg_key, pull_verify};
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
