//! Which charts a command works on: the ones named, the ones a change
//! touches (and their dependents), or all of them; and the base a change is
//! measured against. Every command that selects charts takes this one value,
//! filled from the one flag group in `cli.rs`, so `--chart`, `--changed` and
//! `--base` mean the same everywhere.

/// A command's chart selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `--chart NAME` (repeatable): these charts only.
    pub charts: Vec<String>,
    /// `--changed`: the charts changed since the merge base with `base`,
    /// and their dependents. Never together with `charts`.
    pub changed: bool,
    /// `--base REF`: the branch or commit a change is measured against
    /// (default: `origin/main`, else `main`).
    pub base: Option<String>,
}

impl Selection {
    /// The base ref as the git helpers take it.
    pub fn base(&self) -> Option<&str> {
        self.base.as_deref()
    }
}
