//! `cargo xtask schema`: writes every service chart's `values.schema.json`
//! from the value contract's one source in the library chart
//! ([`crate::core::contract`]); `--check` writes nothing and fails when a
//! copy differs. `cargo xtask lint` runs the same check as a repository
//! check, naming each copy and the command that regenerates it.

use anyhow::Result;

use crate::core::context::{Context, Format};
use crate::core::contract::{Contract, COMMAND};
use crate::core::model::Repo;
use crate::core::outcome::{RepoCheck, Status};
use crate::util::{exit, fs};

/// Options of `cargo xtask schema`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Write nothing; fail (exit 1) when a copy is not what would be generated.
    pub check: bool,
}

/// One copy and whether it is current.
struct Copy {
    rel: String,
    path: std::path::PathBuf,
    current: bool,
}

/// The copies of `contract` and the text each must hold.
fn copies(ctx: &Context, contract: &Contract<'_>) -> Result<(String, Vec<Copy>)> {
    let expected = contract.expected_copy()?;
    let copies = contract
        .services
        .iter()
        .map(|chart| {
            let path = Contract::copy_path(chart);
            let current = std::fs::read_to_string(&path).is_ok_and(|text| text == expected);
            Copy { rel: ctx.shown(&path), path, current }
        })
        .collect();
    Ok((expected, copies))
}

pub fn run(args: Opts, ctx: &Context) -> Result<()> {
    if ctx.format != Format::Human {
        return exit::usage("schema prints for people only (--format human)");
    }
    let repo = Repo::discover(&ctx.root, &ctx.config)?;
    let Some(contract) = Contract::find(&repo) else {
        eprintln!("no value contract: no library chart holds {}", crate::core::contract::SOURCE);
        return Ok(());
    };
    let (expected, copies) = copies(ctx, &contract)?;
    let stale: Vec<&Copy> = copies.iter().filter(|c| !c.current).collect();
    if args.check {
        if stale.is_empty() {
            eprintln!("{} copies of {} are current", copies.len(), contract.source_rel);
            return Ok(());
        }
        for copy in &stale {
            eprintln!("{}: differs from {} (run `{COMMAND}`)", copy.rel, contract.source_rel);
        }
        return Err(exit::ChecksFailed.into());
    }
    for copy in &stale {
        fs::write_atomic(&copy.path, expected.as_bytes())?;
        eprintln!("wrote {} from {}", copy.rel, contract.source_rel);
    }
    eprintln!("{} copies current, {} written", copies.len() - stale.len(), stale.len());
    Ok(())
}

/// The repository check `lint` runs: every copy equals the source.
pub fn check(ctx: &Context, repo: &Repo) -> Vec<RepoCheck> {
    let Some(contract) = Contract::find(repo) else { return Vec::new() };
    let (status, message) = match copies(ctx, &contract) {
        Ok((_, copies)) => {
            let stale: Vec<String> = copies
                .iter()
                .filter(|c| !c.current)
                .map(|c| format!("{}: differs from {}, the value contract's one source", c.rel, contract.source_rel))
                .collect();
            if stale.is_empty() {
                (Status::Ok, String::new())
            } else {
                (Status::Failed, format!("{}\nfix: run `{COMMAND}` to regenerate the copies", stale.join("\n")))
            }
        }
        Err(err) => (Status::Failed, format!("{err:#}")),
    };
    vec![RepoCheck { check: "value-contract".into(), file: contract.source_rel.clone(), status, message }]
}
