//! Exit codes and the error kinds that choose them.
//!
//! Every command returns `anyhow::Result`; `main` maps the error to one of the
//! documented exit codes by looking for one of the marker types below in the
//! error chain. Anything unmarked is treated as a failed check (exit 1), which
//! is the safe default for CI: a red build, never a silent green.

use std::fmt;

/// Everything that was asked for succeeded.
pub const SUCCESS: u8 = 0;
/// A check failed (lint, validation, version discipline, drift, ...).
pub const CHECK_FAILED: u8 = 1;
/// The command line was wrong: unknown chart, bad flag value, conflicting flags.
pub const USAGE: u8 = 2;
/// A tool or the environment is missing or broken: helm not installable,
/// no git, a base ref that is not there, an unreachable registry.
pub const ENVIRONMENT: u8 = 3;

/// Marks an error as a usage error (exit 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

/// Marks an error as an environment or tool problem (exit 3).
#[derive(Debug)]
pub struct EnvironmentError(pub String);

impl fmt::Display for EnvironmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for EnvironmentError {}

/// Returned by a command whose failures were already reported in full (for
/// example lint's summary); `main` then prints nothing more and exits 1.
#[derive(Debug)]
pub struct ChecksFailed;

impl fmt::Display for ChecksFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one or more checks failed")
    }
}
impl std::error::Error for ChecksFailed {}

/// Shorthand for `Err(UsageError(..).into())`.
pub fn usage<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(UsageError(message.into()).into())
}

/// Shorthand for `Err(EnvironmentError(..).into())`.
pub fn environment<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(EnvironmentError(message.into()).into())
}

/// The exit code for an error: the first marker found in its chain decides.
pub fn code_for(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<UsageError>() {
            return USAGE;
        }
        if cause.is::<EnvironmentError>() {
            return ENVIRONMENT;
        }
        if cause.is::<ChecksFailed>() {
            return CHECK_FAILED;
        }
    }
    CHECK_FAILED
}
