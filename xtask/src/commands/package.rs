//! `cargo xtask package`: its flags, turned into [`package::Opts`].

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{MirrorFlags, SelectionFlags};
use crate::core::context::Context;
use crate::ops::package::{self, Opts};

/// Options of `cargo xtask package`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub selection: SelectionFlags,
    /// Where the archives and index.yaml go (default: target/xtask/packages).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Push the archives to this OCI registry: oci://HOST/PATH.
    #[arg(long, value_name = "oci://HOST/PATH")]
    pub publish: Option<String>,
    /// Speak plain HTTP to the registry (one on loopback always is), with --publish or --verify.
    #[arg(long)]
    pub plain_http: bool,
    /// Create a git tag `<chart>-<version>` at HEAD for each packaged chart.
    #[arg(long)]
    pub tag: bool,
    #[command(flatten)]
    pub mirrors: MirrorFlags,
    /// Print the plan (charts, versions, order) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Sign every archive with Helm's provenance (a `.prov` beside it, pushed with it by --publish).
    #[arg(long)]
    pub sign: bool,
    /// Name of the signing key (Helm's --key) [default: `key` of [package] in xtask.toml].
    #[arg(long, requires = "sign", value_name = "NAME")]
    pub key: Option<String>,
    /// With --sign: the secret keyring holding the key, as `gpg --export-secret-keys` writes it
    /// [default: `keyring` of [package]]; with --verify: the public keyring (`gpg --export`)
    /// [default: `keyring` of the [trust] entry for the registry].
    #[arg(long, value_name = "KEYRING")]
    pub keyring: Option<PathBuf>,
    /// File holding the key's passphrase (never the passphrase itself) [default: `passphrase-file` of [package]].
    #[arg(long, requires = "sign", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// With --publish: sign each pushed OCI digest with this cosign private key, offline
    /// (password from COSIGN_PASSWORD) [default: `cosign-key` of [package]].
    #[arg(long, requires = "publish", value_name = "FILE")]
    pub cosign_key: Option<PathBuf>,
    /// Check every version of every chart published at oci://HOST/PATH (and their registry
    /// dependencies) instead of packaging: Helm provenance, and cosign signatures with
    /// --cosign-pub; exit 1 naming each one unsigned or not verifying.
    #[arg(long, value_name = "oci://HOST/PATH", conflicts_with_all = ["publish", "sign", "tag", "dry_run", "out"])]
    pub verify: Option<String>,
    /// With --verify: the cosign public key [default: `cosign-key` of the [trust] entry].
    #[arg(long, requires = "verify", value_name = "FILE")]
    pub cosign_pub: Option<PathBuf>,
}

impl Args {
    fn opts(self, ctx: &Context) -> Result<Opts> {
        let args = self;
        if args.plain_http && args.publish.is_none() {
            return crate::util::exit::usage("--plain-http needs --publish or --verify");
        }
        if args.keyring.is_some() && !args.sign {
            return crate::util::exit::usage(
                "--keyring needs --sign (a secret keyring) or --verify (a public keyring)",
            );
        }
        let sign = if args.sign {
            let config = &ctx.config.package;
            let key = args.key.or_else(|| config.key.clone());
            let keyring = args.keyring.or_else(|| config.keyring.as_ref().map(PathBuf::from));
            let (Some(key), Some(keyring)) = (key, keyring) else {
                return crate::util::exit::usage(
                    "--sign needs --key NAME and --keyring SECRING (or `key` and `keyring` in [package] of xtask.toml)",
                );
            };
            let passphrase_file = args.passphrase_file.or_else(|| config.passphrase_file.as_ref().map(PathBuf::from));
            Some(package::build::Signing { key, keyring, passphrase_file })
        } else {
            None
        };
        let cosign_key = args.cosign_key.or_else(|| {
            args.publish.as_ref().and(ctx.config.package.cosign_key.as_ref()).map(|key| ctx.root.join(key))
        });
        Ok(Opts {
            cosign_key,
            sign,
            selection: args.selection.into(),
            out: args.out,
            publish: args.publish,
            plain_http: args.plain_http,
            tag: args.tag,
            mirrors: args.mirrors.mirrors,
            dry_run: args.dry_run,
        })
    }
}

pub fn run(mut args: Args, ctx: &Context) -> Result<()> {
    if let Some(url) = args.verify.take() {
        let opts = crate::ops::published::Opts {
            url,
            keyring: args.keyring.take(),
            cosign_pub: args.cosign_pub.take(),
            plain_http: args.plain_http,
            mirrors: std::mem::take(&mut args.mirrors.mirrors),
        };
        return crate::ops::published::run(opts, ctx);
    }
    package::run(args.opts(ctx)?, ctx)
}
