//! Flag groups shared by several subcommands (`#[command(flatten)]`), so a
//! flag is spelled, documented and checked the same way in every command
//! that takes it.

use crate::core::selection::Selection;
use crate::util::exit;

/// `--chart NAME...`, `--changed` and `--base REF`: which charts a command
/// works on. The rules, the same everywhere: `--chart` and `--changed`
/// exclude each other; neither means every chart (or, for `diff`, the
/// charts the change affects); `--base` is what a change is measured
/// against, for `--changed` and for whatever else the command compares
/// with the base (`package` and `bump` versions, `diff` renders).
#[derive(Debug, Clone, clap::Args)]
pub struct SelectionFlags {
    /// Only this chart (repeatable); its dependencies are staged, not selected.
    #[arg(long = "chart", value_name = "NAME")]
    pub charts: Vec<String>,
    /// The charts changed since the merge base with --base, and their dependents.
    #[arg(long, conflicts_with = "charts")]
    pub changed: bool,
    /// The branch or commit a change is measured against (default: origin/main, else main).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
}

impl SelectionFlags {
    /// The selection, for a command that compares with the base only to find
    /// changed charts: there `--base` without `--changed` would be ignored,
    /// so it is refused instead.
    pub fn changes_only(self, command: &str) -> anyhow::Result<Selection> {
        if let (Some(base), false) = (&self.base, self.changed) {
            return exit::usage(format!(
                "--base {base}: {command} compares with a base only to find changed charts; add --changed"
            ));
        }
        Ok(self.into())
    }
}

impl From<SelectionFlags> for Selection {
    fn from(flags: SelectionFlags) -> Selection {
        Selection { charts: flags.charts, changed: flags.changed, base: flags.base }
    }
}

/// `--mirror FROM=TO` (repeatable), over the `[mirrors]` of xtask.toml.
#[derive(Debug, Clone, clap::Args)]
pub struct MirrorFlags {
    /// Fetch a dependency repository's charts from another one: FROM=TO (repeatable), e.g. the
    /// `--mirror` that `cargo xtask mirror start` prints, for the umbrella's Bitnami charts.
    #[arg(long = "mirror", value_name = "FROM=TO")]
    pub mirrors: Vec<String>,
}

/// `--env ENV` (repeatable): only these environments of the charts that
/// have `values-<env>.yaml` files (or ci values files); none means all.
#[derive(Debug, Clone, clap::Args)]
pub struct EnvFlags {
    /// Only this environment of charts that have values-<env>.yaml files (repeatable).
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
}

/// `--remote-cache`, `--remote-cache-write`, `--remote-cache-trust`: the
/// shared verdict cache on an OCI registry (see `ops::remote_cache`).
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteCacheFlags {
    /// Look verdicts up in this OCI repository, oci://HOST/PATH [default: [cache] remote of xtask.toml].
    #[arg(long = "remote-cache", value_name = "oci://HOST/PATH")]
    pub url: Option<String>,
    /// Also push passing verdicts, signed with the private key file named by XTASK_REMOTE_CACHE_KEY
    /// (CI on the main branch only).
    #[arg(long = "remote-cache-write")]
    pub write: bool,
    /// Trust entries signed by this public key, ed25519:<base64> (repeatable), besides
    /// [cache] trusted-keys.
    #[arg(long = "remote-cache-trust", value_name = "KEY")]
    pub trust: Vec<String>,
}

impl From<RemoteCacheFlags> for crate::ops::remote_cache::Opts {
    fn from(flags: RemoteCacheFlags) -> Self {
        crate::ops::remote_cache::Opts { url: flags.url, write: flags.write, trust: flags.trust }
    }
}
