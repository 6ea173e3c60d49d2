//! Which Pod Security level a chart is held to, and the namespace a chart
//! and environment are installed into.
//!
//! Every chart is held to `restricted` unless its Chart.yaml says otherwise
//! with two annotations, so a weaker level is visible in review and always
//! comes with its reason:
//!
//! ```yaml
//! annotations:
//!   robot-shop.dev/pod-security: baseline
//!   robot-shop.dev/pod-security-reason: nginx binds port 80 as root
//! ```

use std::path::Path;

use crate::ops::cache::KeyBuilder;

pub const LEVEL_ANNOTATION: &str = "robot-shop.dev/pod-security";
pub const REASON_ANNOTATION: &str = "robot-shop.dev/pod-security-reason";
const LEVELS: [&str; 3] = ["restricted", "baseline", "privileged"];

/// A chart's level and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    pub level: String,
    /// `None` for the default.
    pub reason: Option<String>,
}

impl Level {
    /// As the report shows it: `restricted (default)` or `baseline: <reason>`.
    pub fn describe(&self) -> String {
        match &self.reason {
            Some(reason) => format!("{} ({LEVEL_ANNOTATION}): {reason}", self.level),
            None => format!("{} (default)", self.level),
        }
    }
}

/// The level a chart declares in its Chart.yaml; an unknown level or one
/// without a reason is an error naming the annotation.
pub fn level_of(chart_dir: &Path) -> Result<Level, String> {
    let text = std::fs::read_to_string(chart_dir.join("Chart.yaml")).map_err(|e| format!("Chart.yaml: {e}"))?;
    let yaml: serde_json::Value = yaml_serde::from_str(&text).map_err(|e| format!("Chart.yaml: {e}"))?;
    let annotations = &yaml["annotations"];
    let Some(level) = annotations[LEVEL_ANNOTATION].as_str() else {
        return Ok(Level { level: "restricted".into(), reason: None });
    };
    if !LEVELS.contains(&level) {
        return Err(format!(
            "Chart.yaml: annotation {LEVEL_ANNOTATION}: {level:?} is not one of {}",
            LEVELS.join(", ")
        ));
    }
    match annotations[REASON_ANNOTATION].as_str().map(str::trim).filter(|r| !r.is_empty()) {
        Some(reason) => Ok(Level { level: level.into(), reason: Some(reason.into()) }),
        None => {
            Err(format!("Chart.yaml: annotation {LEVEL_ANNOTATION}: {level} needs a reason in {REASON_ANNOTATION}"))
        }
    }
}

/// A DNS-1123 label for a chart and environment: `v-<chart>-<env>`, lower
/// case, other characters as `-`; names over 63 characters are cut and end
/// with a hash of the whole, so two long names never meet.
pub fn namespace_for(chart: &str, env: &str) -> String {
    let raw = format!("v-{chart}-{env}").to_ascii_lowercase();
    let mut name: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    if name.len() > 63 {
        let mut key = KeyBuilder::default();
        key.add("namespace", raw.as_bytes());
        let hash = key.finish();
        name = format!("{}-{}", name[..50].trim_end_matches('-'), &hash[..12]);
    }
    name.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_dns_labels() {
        assert_eq!(namespace_for("robot-shop", "dev"), "v-robot-shop-dev");
        assert_eq!(namespace_for("My_Chart", "default"), "v-my-chart-default");
        let long = namespace_for(&"x".repeat(80), "prod");
        assert!(long.len() <= 63 && long.starts_with("v-xxx"), "{long}");
        assert_ne!(long, namespace_for(&"x".repeat(81), "prod"));
    }

    #[test]
    fn a_weaker_level_needs_a_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |text: &str| std::fs::write(dir.path().join("Chart.yaml"), text).expect("write");
        write("name: a\n");
        assert_eq!(level_of(dir.path()), Ok(Level { level: "restricted".into(), reason: None }));
        write("name: a\nannotations:\n  robot-shop.dev/pod-security: baseline\n");
        assert!(level_of(dir.path()).unwrap_err().contains("needs a reason"));
        write("name: a\nannotations:\n  robot-shop.dev/pod-security: baseline\n  robot-shop.dev/pod-security-reason: root nginx\n");
        assert_eq!(
            level_of(dir.path()).map(|l| l.describe()),
            Ok("baseline (robot-shop.dev/pod-security): root nginx".into())
        );
    }
}
