//! Versions and Helm's version constraints: what a `dependencies[].version`
//! range (Masterminds semver, as Helm reads it) allows. Part of the model,
//! used by in-repo resolution, `bump` and `package`.

/// What a `dependencies[].version` constraint says about a new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// One exact version (`1.0.0`, `=1.0.0`, `v1.0.0`): rewritten by `bump`.
    Exact(semver::Version),
    /// A range that allows the version: left as it is.
    Allows,
    /// A range that does not allow the version, or one we cannot read.
    Refuses(String),
}

/// Reads a Helm (Masterminds semver) constraint against `version`.
pub fn check_constraint(constraint: &str, version: &semver::Version) -> Constraint {
    let text = constraint.trim();
    let bare = text.strip_prefix('=').unwrap_or(text).trim();
    let bare = bare.strip_prefix('v').unwrap_or(bare);
    if let Ok(exact) = semver::Version::parse(bare) {
        return Constraint::Exact(exact);
    }
    // Masterminds separates AND-ed comparators with spaces or commas and
    // OR-ed groups with `||`; the `semver` crate wants commas only.
    let mut readable = true;
    for group in text.split("||") {
        let comparators: Vec<&str> = group.split([',', ' ']).filter(|p| !p.is_empty()).collect();
        // Masterminds reads a bare version as exact, the semver crate as `^`.
        let joined = comparators
            .iter()
            .map(|c| {
                if c.starts_with(|ch: char| ch.is_ascii_digit()) && !c.contains(['x', 'X', '*']) {
                    format!("={c}")
                } else {
                    c.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        match semver::VersionReq::parse(&joined) {
            Ok(req) if req.matches(version) => return Constraint::Allows,
            Ok(_) => {}
            Err(_) => readable = false,
        }
    }
    if readable {
        Constraint::Refuses(format!("{text:?} does not allow {version}"))
    } else {
        Constraint::Refuses(format!("{text:?} is not a constraint this tool can read"))
    }
}
