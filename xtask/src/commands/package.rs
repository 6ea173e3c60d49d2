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
    /// Speak plain HTTP to the registry (a local one on loopback).
    #[arg(long, requires = "publish")]
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
    /// Secret keyring holding the key, as `gpg --export-secret-keys` writes it [default: `keyring` of [package]].
    #[arg(long, requires = "sign", value_name = "SECRING")]
    pub keyring: Option<PathBuf>,
    /// File holding the key's passphrase (never the passphrase itself) [default: `passphrase-file` of [package]].
    #[arg(long, requires = "sign", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl Args {
    fn opts(self, ctx: &Context) -> Result<Opts> {
        let args = self;
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
        Ok(Opts {
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

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    package::run(args.opts(ctx)?, ctx)
}
