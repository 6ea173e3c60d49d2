//! `cargo xtask bench --hostile`: how long the tool takes to refuse files a
//! pull request made to stall it (issue 16), measured, never in a test.
//!
//! A synthetic repository of ten services gets a `service-matrix.yaml` and
//! a service `values.yaml` of 100,000 nested bracket pairs each (200 KB). Measured: parsing each file in this process
//! (the refusal itself, the median of five), and a whole cold
//! `cargo xtask lint` of the repository against the same lint without the
//! hostile files, in a child process each.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::{measure, synth};
use crate::core::context::Context;

/// The depth of the hostile files: what the issue measured at 19 s and 38 s.
const BRACKETS: usize = 100_000;

pub fn run(ctx: &Context) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the running xtask binary")?;
    let scratch = tempfile::tempdir().context("cannot create a scratch folder")?;
    let synthetic = synth::generate_from(&ctx.root, &scratch.path().join("repo"), 10)?;
    let leaf = synthetic.services.first().cloned().context("the synthetic repository has no service")?;

    let clean = lint_wall(&exe, &synthetic.root, &scratch.path().join("work-clean"))?;
    let matrix = format!("services: {}{}\n", "[".repeat(BRACKETS), "]".repeat(BRACKETS));
    let values = format!("a: {}{}\n", "[".repeat(BRACKETS), "]".repeat(BRACKETS));
    let files = [("service-matrix.yaml".to_string(), matrix), (format!("charts/{leaf}/values.yaml"), values)];
    eprintln!("hostile input (refused before parsing), {} brackets deep:", BRACKETS);
    for (rel, text) in &files {
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let started = Instant::now();
                let refused = crate::util::yaml::parse::<yaml_serde::Value>(text, rel).is_err();
                (started.elapsed(), refused)
            })
            .map(|(elapsed, refused)| if refused { Ok(elapsed) } else { Err(anyhow::anyhow!("{rel} was accepted")) })
            .collect::<Result<_>>()?;
        times.sort();
        eprintln!(
            "  {rel:<28} {:>8} bytes  refused in {:.2} ms (median of 5)",
            text.len(),
            times[2].as_secs_f64() * 1e3
        );
        crate::util::fs::write_atomic(&synthetic.root.join(rel), text.as_bytes())?;
    }
    let hostile = lint_wall(&exe, &synthetic.root, &scratch.path().join("work-hostile"))?;
    eprintln!(
        "  cold lint of the 12 charts: {:.2} s with the hostile files (exit {:?}), {:.2} s without",
        hostile.0.as_secs_f64(),
        hostile.1,
        clean.0.as_secs_f64()
    );
    if hostile.1 != Some(1) {
        anyhow::bail!("lint of the hostile repository exited {:?}, not 1", hostile.1);
    }
    Ok(())
}

fn lint_wall(exe: &std::path::Path, root: &std::path::Path, work: &std::path::Path) -> Result<(Duration, Option<i32>)> {
    let mut command = Command::new(exe);
    command.arg("--root").arg(root).args(["--format", "json", "lint", "--no-cache"]).env("XTASK_WORK_DIR", work);
    let measured = measure::run(command)?;
    Ok((measured.wall, measured.code))
}
