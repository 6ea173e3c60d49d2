//! In-repository dependency resolution: a dependency that names a registry
//! (or a chart repository) but whose name and version match a chart of this
//! repository resolves to that chart.
//!
//! Monorepos often publish every chart and let siblings depend on each other
//! through the published copy (`repository: oci://registry.example/charts`),
//! because that is what a release must reference. Pulling the sibling back
//! from the registry while checking a change is wrong twice over: it checks
//! against the last published copy instead of the one in the change, and it
//! needs the network. So such a dependency becomes a graph edge like a
//! `file://` one: the sibling is checked first (topological order) and staged
//! as a link to its folder, never pulled. `in-repo-dependencies = false` in
//! `xtask.toml` turns this off (the registry copy is pulled as declared).
//!
//! A match needs the same chart name and a version constraint the sibling's
//! version satisfies (Helm's constraint syntax); anything else stays remote,
//! so a dependency pinned to an older release of a sibling still gets that
//! release.

use std::path::PathBuf;

use crate::core::config::Config;
use crate::core::model::Repo;
use crate::core::versions::{check_constraint, Constraint};

/// Marks every remote dependency that a chart of the repository satisfies
/// (see the module docs). Does nothing when the setting is off.
pub fn resolve(repo: &mut Repo, config: &Config) {
    if !config.in_repo_dependencies {
        return;
    }
    let siblings: Vec<(String, semver::Version, PathBuf)> =
        repo.charts.iter().map(|c| (c.name.clone(), c.version.clone(), c.dir.clone())).collect();
    for chart in &mut repo.charts {
        let own_dir = chart.dir.clone();
        for dep in &mut chart.meta.dependencies {
            if dep.remote_repository().is_none() {
                continue;
            }
            let Some(constraint) = dep.version.as_deref() else { continue };
            let found = siblings
                .iter()
                .find(|(name, version, dir)| *name == dep.name && *dir != own_dir && satisfies(constraint, version));
            dep.in_repo = found.map(|(_, _, dir)| dir.clone());
        }
    }
}

/// Whether a Helm version constraint allows `version`.
fn satisfies(constraint: &str, version: &semver::Version) -> bool {
    match check_constraint(constraint, version) {
        Constraint::Exact(exact) => exact == *version,
        Constraint::Allows => true,
        Constraint::Refuses(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> semver::Version {
        semver::Version::parse(text).unwrap()
    }

    #[test]
    fn exact_versions_and_ranges_match_like_helm() {
        assert!(satisfies("1.2.0", &v("1.2.0")));
        assert!(satisfies("v1.2.0", &v("1.2.0")));
        assert!(!satisfies("1.1.0", &v("1.2.0")), "a pin to an older release stays remote");
        assert!(satisfies("1.x.x", &v("1.2.0")));
        assert!(satisfies("~1.2.0", &v("1.2.3")));
        assert!(!satisfies("^2.0.0", &v("1.2.0")));
    }
}
