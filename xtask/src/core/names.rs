//! The one rule for names that the tool turns into paths, OCI references,
//! namespaces or file names.
//!
//! Every name read from a file a pull request controls (Chart.yaml names,
//! dependency names and aliases, environment names from `values-<env>.yaml`
//! and `ci/*-values.yaml`, release names, service names of the matrix) is
//! checked here once, where it is read, before anything touches the file
//! system. The rules are Helm's own (`pkg/chart/v2/util/create.go`'s
//! `chartName`, `pkg/chart/v2/chart.go`'s `aliasNameFormat`,
//! `pkg/chart/v2/util/validate_name.go`'s release names), with Kubernetes'
//! DNS-1123 label where a name becomes a Kubernetes object's name.

/// What a name is used as; decides which rule applies and how errors say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A chart's `name`, or a dependency's `name`: Helm's `^[a-zA-Z0-9._-]+$`,
    /// and neither `.` nor `..` (Helm's `Metadata.Validate`).
    Chart,
    /// A dependency's `alias`: Helm's `^[a-zA-Z0-9_-]+$`.
    Alias,
    /// An environment (`values-<env>.yaml`, `ci/<env>-values.yaml`): a file
    /// and folder name here, a namespace suffix in `verify`; the chart rule
    /// and a DNS-1123 label.
    Environment,
    /// A release name: Helm's `ValidateReleaseName` (a DNS-1123 subdomain of
    /// at most 53 characters).
    Release,
    /// A service of the matrix: a Kubernetes Service name (DNS-1123 label).
    Service,
}

impl NameKind {
    fn what(self) -> &'static str {
        match self {
            NameKind::Chart => "chart name",
            NameKind::Alias => "dependency alias",
            NameKind::Environment => "environment name",
            NameKind::Release => "release name",
            NameKind::Service => "service name",
        }
    }

    fn rule(self) -> &'static str {
        match self {
            NameKind::Chart => "letters, digits, '.', '_' and '-' only, and not '.' or '..' (Helm's rule for chart names)",
            NameKind::Alias => "letters, digits, '_' and '-' only (Helm's rule for aliases)",
            NameKind::Environment | NameKind::Service => {
                "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters (a DNS-1123 label)"
            }
            NameKind::Release => {
                "lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit, at most 53 characters (Helm's rule for release names)"
            }
        }
    }
}

/// Checks `name` against the rule for `kind`; the error says what the name
/// is, shows it, and states the rule.
pub fn check(kind: NameKind, name: &str) -> Result<(), String> {
    let ok = match kind {
        NameKind::Chart => is_chart_name(name),
        NameKind::Alias => {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        NameKind::Environment | NameKind::Service => is_dns_label(name),
        NameKind::Release => name.len() <= 53 && is_dns_subdomain(name),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{} {:?} is not allowed: {}", kind.what(), name, kind.rule()))
    }
}

fn is_chart_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-')
}

/// Dot-separated DNS-1123 labels (without the 63-character limit per part,
/// as Helm's regular expression has none).
fn is_dns_subdomain(name: &str) -> bool {
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !name.is_empty()
        && name.split('.').all(|part| {
            let bytes = part.as_bytes();
            !bytes.is_empty()
                && bytes.first().is_some_and(edge)
                && bytes.last().is_some_and(edge)
                && bytes.iter().all(|b| edge(b) || *b == b'-')
        })
}

/// A dependency version (an exact version or a range such as `~1.2.0` or
/// `>= 1.0, < 2`) becomes part of an archive's file name: only the
/// characters a SemVer constraint can hold are allowed, so it can never
/// carry a path separator.
pub fn check_version_text(version: &str) -> Result<(), String> {
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '.' | '-' | '+' | '^' | '~' | '<' | '>' | '=' | '!' | '*' | '|' | ',' | ' ')
    };
    if !version.is_empty() && version.chars().all(allowed) && !version.contains("..") {
        Ok(())
    } else {
        Err(format!(
            "version {version:?} is not allowed: a SemVer version or range holds only letters, digits, spaces and . - + ^ ~ < > = ! * | ,"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_names_follow_helm() {
        for ok in ["cart", "common", "my_chart.v2", "A-b"] {
            assert!(check(NameKind::Chart, ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../../tmp/pwned", "a/b", "a\\b", "a b", "a\nb", "/abs", "ü"] {
            let err = check(NameKind::Chart, bad).unwrap_err();
            assert!(err.starts_with("chart name"), "{err}");
        }
    }

    #[test]
    fn aliases_refuse_dots() {
        assert!(check(NameKind::Alias, "redis_cache-2").is_ok());
        assert!(check(NameKind::Alias, "a.b").is_err());
        assert!(check(NameKind::Alias, "..").is_err());
    }

    #[test]
    fn kubernetes_names() {
        assert!(check(NameKind::Service, "rabbitmq").is_ok());
        assert!(check(NameKind::Environment, "prod").is_ok());
        for bad in ["Prod", "-a", "a-", "a.b", "a_b", &"x".repeat(64)] {
            assert!(check(NameKind::Service, bad).is_err(), "{bad}");
        }
        assert!(check(NameKind::Release, "robot-shop").is_ok());
        assert!(check(NameKind::Release, "a.b-c").is_ok());
        assert!(check(NameKind::Release, &"x".repeat(54)).is_err());
        assert!(check(NameKind::Release, "a..b").is_err());
    }

    #[test]
    fn versions_carry_no_path() {
        for ok in ["1.0.0", "~17.0.2", ">= 1.0, < 2", "^2.x", "1.0.0-rc.1+build.5", "*"] {
            assert!(check_version_text(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1.0.0/../../x", "../1", "1.0\\x", "1.0.0\n"] {
            assert!(check_version_text(bad).is_err(), "{bad:?}");
        }
    }
}
