//! Version discipline: a chart that changed must carry a version greater
//! than the one it had at the base, and what a dependency constraint on a
//! chart of the repository allows.
//!
//! Every chart is released on its own (the design document), so a registry
//! and a chart repository hold one archive per (chart, version) forever. A
//! changed chart that kept its version would either be refused by the
//! registry or, worse, replace what users already pulled under that version.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use crate::core::model::{ChartYaml, Repo};
pub use crate::core::versions::{check_constraint, Constraint};
use crate::exec::git::Git;
use crate::ops::affected::Affected;

/// How much `bump` raises a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Patch,
    Minor,
    Major,
}

impl Level {
    /// The next version at this level; pre-release and build parts are dropped.
    pub fn raise(self, from: &semver::Version) -> semver::Version {
        let (major, minor, patch) = match self {
            Level::Patch => (from.major, from.minor, from.patch + 1),
            Level::Minor => (from.major, from.minor + 1, 0),
            Level::Major => (from.major + 1, 0, 0),
        };
        semver::Version::new(major, minor, patch)
    }
}

/// Each chart's version at the merge base, for the charts asked about; `None`
/// when the chart's Chart.yaml did not exist there (a new chart) or had no
/// readable version (nothing can have been released from it).
pub fn base_versions(
    git: &Git,
    repo: &Repo,
    merge_base: &str,
    charts: &BTreeSet<usize>,
) -> Result<BTreeMap<usize, Option<semver::Version>>> {
    let mut versions = BTreeMap::new();
    for &index in charts {
        let chart = &repo.charts[index];
        let path = format!("{}/Chart.yaml", chart.rel);
        let text = git.show(merge_base, &path)?;
        let version = text.and_then(|text| {
            let meta: ChartYaml = crate::util::yaml::parse(&text, &path).ok()?;
            semver::Version::parse(meta.version?.trim()).ok()
        });
        versions.insert(index, version);
    }
    Ok(versions)
}

/// One affected chart whose version was not raised.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unbumped {
    pub chart: String,
    pub file: String,
    pub version: String,
    pub base_version: String,
    /// `changed` (holds a changed file) or `dependency changed` (embeds a changed chart).
    pub reason: &'static str,
}

/// The affected charts among `check` whose version is not greater than at
/// the base.
pub fn unbumped(git: &Git, repo: &Repo, affected: &Affected, check: &BTreeSet<usize>) -> Result<Vec<Unbumped>> {
    let relevant: BTreeSet<usize> = check.intersection(&affected.affected).copied().collect();
    let base = base_versions(git, repo, &affected.base.merge_base, &relevant)?;
    let mut found = Vec::new();
    for (index, base_version) in base {
        let chart = &repo.charts[index];
        if let Some(base_version) = base_version {
            if chart.version <= base_version {
                found.push(Unbumped {
                    chart: chart.name.clone(),
                    file: format!("{}/Chart.yaml", chart.rel),
                    version: chart.version.to_string(),
                    base_version: base_version.to_string(),
                    reason: if affected.changed.contains(&index) { "changed" } else { "dependency changed" },
                });
            }
        }
    }
    Ok(found)
}

/// The message for [`unbumped`] charts: each chart, and the command that fixes it.
pub fn unbumped_message(found: &[Unbumped], affected: &Affected, base_flag: Option<&str>) -> String {
    let mut message = format!(
        "version discipline: {} affected chart(s) keep the version they have at {} (merge base {}), so their release would clash with the one already made:",
        found.len(),
        affected.base.name,
        short(&affected.base.merge_base)
    );
    for u in found {
        message.push_str(&format!(
            "\n  {} ({}): {} has version {}, not greater than {} at the base",
            u.chart, u.reason, u.file, u.version, u.base_version
        ));
    }
    let base = base_flag.map(|b| format!(" --base {b}")).unwrap_or_default();
    message.push_str(&format!(
        "\nfix: run `cargo xtask bump --changed{base}` (add --level minor or major if the change calls for it), review and commit the Chart.yaml changes, then run this again"
    ));
    message
}

/// How to raise a chart past a version that was already released: `bump`
/// measured against the release's tag, or an edit by hand.
pub fn raise_hint(chart: &crate::core::model::Chart) -> String {
    format!(
        "fix: raise {} above {}: `cargo xtask bump --chart {} --base {}` (its release tag, if it has one) or edit {}/Chart.yaml",
        chart.name,
        chart.version,
        chart.name,
        super::tag::tag_name(&chart.name, &chart.version),
        chart.rel
    )
}

/// The first 12 characters of a commit id, for messages.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn levels_raise_and_drop_prerelease() {
        assert_eq!(Level::Patch.raise(&v("1.2.3")), v("1.2.4"));
        assert_eq!(Level::Minor.raise(&v("1.2.3")), v("1.3.0"));
        assert_eq!(Level::Major.raise(&v("1.2.3-rc.1")), v("2.0.0"));
    }

    #[test]
    fn constraints_read_like_helm() {
        assert_eq!(check_constraint("1.0.0", &v("1.0.1")), Constraint::Exact(v("1.0.0")));
        assert_eq!(check_constraint("=v1.0.0", &v("1.0.1")), Constraint::Exact(v("1.0.0")));
        assert_eq!(check_constraint("~1.0.0", &v("1.0.1")), Constraint::Allows);
        assert_eq!(check_constraint(">=1.0.0 <2.0.0", &v("1.4.0")), Constraint::Allows);
        assert_eq!(check_constraint("1.x.x", &v("1.4.0")), Constraint::Allows);
        assert_eq!(check_constraint("^0.1 || ^1", &v("1.4.0")), Constraint::Allows);
        assert!(matches!(check_constraint("~1.0.0", &v("1.1.0")), Constraint::Refuses(_)));
        assert!(matches!(check_constraint("latest please", &v("1.1.0")), Constraint::Refuses(_)));
    }
}
