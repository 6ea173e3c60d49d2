//! `cargo xtask cache`: keys for the remote verdict cache.

use std::path::PathBuf;

use anyhow::Result;

use crate::core::context::{Context, Format};
use crate::ops::remote_cache;

/// Options of `cargo xtask cache`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Write a new Ed25519 private key for a remote cache writer and print its public key.
    ///
    /// The file is created readable by its owner only and never replaces an
    /// existing one. Give the writer the file (XTASK_REMOTE_CACHE_KEY), and
    /// add the printed ed25519:<base64> to [cache] trusted-keys in xtask.toml.
    Keygen {
        /// The private key file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

pub fn run(args: Args, ctx: &Context) -> Result<()> {
    match args.action {
        Action::Keygen { out } => {
            let public = remote_cache::keygen(&out)?;
            match ctx.format {
                Format::Json => println!("{}", serde_json::json!({ "public_key": public, "file": out })),
                _ => {
                    println!("{public}");
                    eprintln!(
                        "wrote the private key to {} (a secret: the writer names it in {})",
                        out.display(),
                        remote_cache::KEY_VARIABLE
                    );
                }
            }
            Ok(())
        }
    }
}
