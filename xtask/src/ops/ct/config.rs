//! chart-testing's configuration file (`ct.yaml`): which keys the xtask
//! honours, which it ignores, and the defaults `ct` uses for each.
//!
//! `ct` reads its configuration with viper: keys are case-insensitive, lists
//! may also be written as one string (split at white space), and booleans as
//! `"true"`/`"false"`. The same is accepted here so a file that works with
//! `ct` works with the xtask. Every key the xtask does not act on is listed
//! once in a warning, so nobody believes a setting took effect when it did
//! not; keys that only matter to `ct install` are ignored silently, since
//! linting never uses them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use yaml_serde::Value;

/// The file `ct` finds in the current folder (the repository root, where CI runs it).
pub const FILE_NAME: &str = "ct.yaml";

/// Keys whose meaning the xtask reproduces (`parse` acts on each), kept
/// for the test that `docs/chart-testing.md` names them all.
#[cfg(test)]
const HONOURED: &[&str] = &[
    "chart-dirs",
    "excluded-charts",
    "target-branch",
    "remote",
    "chart-repos",
    "additional-commands",
    "helm-lint-extra-args",
    "check-version-increment",
    "validate-maintainers",
    "validate-chart-schema",
    "validate-yaml",
    "lint-conf",
    "chart-yaml-schema",
    "exclude-deprecated",
    "use-helmignore",
];

/// Keys of `ct install` and `ct lint-and-install` that have no effect on
/// linting, in ct either: accepted without a word.
const INSTALL_ONLY: &[&str] = &[
    "build-id",
    "upgrade",
    "skip-missing-values",
    "namespace",
    "release-name",
    "release-label",
    "helm-extra-set-args",
    "skip-clean-up",
    "kubectl-timeout",
    "print-logs",
    "helm-extra-args",
];

/// The parts of `ct.yaml` that change what `cargo xtask lint` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtConfig {
    /// The file, relative to the root when it is inside it (for messages).
    pub file: String,
    pub chart_dirs: Vec<String>,
    /// Chart folder names (not chart names: ct compares the folder's base name).
    pub excluded_charts: Vec<String>,
    pub remote: String,
    pub target_branch: String,
    /// `name=url` pairs: `@name` and `alias:name` repository references resolve to `url`.
    pub chart_repos: Vec<(String, String)>,
    /// Go templates run per chart, such as `helm unittest {{ .Path }}`.
    pub additional_commands: Vec<String>,
    /// `--strict` in `helm-lint-extra-args` (ct lints without it by default).
    pub lint_strict: bool,
    pub check_version_increment: bool,
    pub validate_maintainers: bool,
    pub validate_chart_schema: bool,
    pub validate_yaml: bool,
    /// yamllint configuration; `None` is ct's bundled `lintconf.yaml`.
    pub lint_conf: Option<PathBuf>,
    /// yamale schema for Chart.yaml; `None` is ct's bundled `chart_schema.yaml`.
    pub chart_yaml_schema: Option<PathBuf>,
    pub exclude_deprecated: bool,
    /// Keys present in the file that the xtask does not act on.
    pub ignored: Vec<String>,
    /// Arguments of `helm-lint-extra-args` other than `--strict` (ignored).
    pub ignored_lint_args: Vec<String>,
}

impl CtConfig {
    /// ct's defaults, as `ct lint` has them with no configuration file.
    pub fn defaults(file: &str) -> CtConfig {
        CtConfig {
            file: file.to_string(),
            chart_dirs: vec!["charts".into()],
            excluded_charts: Vec::new(),
            remote: "origin".into(),
            target_branch: "main".into(),
            chart_repos: Vec::new(),
            additional_commands: Vec::new(),
            lint_strict: false,
            check_version_increment: true,
            validate_maintainers: true,
            validate_chart_schema: true,
            validate_yaml: true,
            lint_conf: None,
            chart_yaml_schema: None,
            exclude_deprecated: false,
            ignored: Vec::new(),
            ignored_lint_args: Vec::new(),
        }
    }

    /// Reads `--config FILE`, else `<root>/ct.yaml`; `None` when neither is
    /// given nor present (the repository does not use chart-testing).
    pub fn find(root: &Path, explicit: Option<&Path>) -> Result<Option<CtConfig>> {
        let path = match explicit {
            Some(path) if path.is_absolute() => path.to_path_buf(),
            Some(path) => std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf()),
            None => root.join(FILE_NAME),
        };
        if !path.is_file() {
            if let Some(given) = explicit {
                return crate::util::exit::usage(format!("--config {}: no such file", given.display()));
            }
            return Ok(None);
        }
        let shown = crate::core::model::relative(root, &path);
        if explicit.is_none() {
            // The ct.yaml of the checkout is a pull request's to change.
            crate::util::fs::inside(root, &path)?;
        }
        let text = crate::util::yaml::read_text(&path, &shown)?;
        let base = path.parent().unwrap_or(root);
        let config = CtConfig::parse(&text, &shown, root, base)?;
        config.check_inside(root)?;
        Ok(Some(config))
    }

    /// The folders and files ct.yaml names are read by the tool and by
    /// yamllint and yamale: refused unless they lie inside the repository,
    /// so a pull request cannot have another file of the runner read (and
    /// quoted in an error message).
    fn check_inside(&self, root: &Path) -> Result<()> {
        for dir in &self.chart_dirs {
            crate::core::config::check_relative(dir).map_err(|m| anyhow::anyhow!("{}: chart-dirs: {m}", self.file))?;
        }
        let root = root.canonicalize().with_context(|| format!("cannot resolve {}", root.display()))?;
        for (key, file) in [("lint-conf", &self.lint_conf), ("chart-yaml-schema", &self.chart_yaml_schema)] {
            if let Some(file) = file {
                let real = file.canonicalize().unwrap_or_else(|_| file.clone());
                if !real.starts_with(&root) {
                    anyhow::bail!("{}: {key}: {} is outside the repository: refused", self.file, real.display());
                }
            }
        }
        Ok(())
    }

    /// Parses the text of a ct configuration file. Relative paths in
    /// `lint-conf` and `chart-yaml-schema` are taken from `cwd` (the
    /// repository root, where ct runs), as ct takes them from its working folder.
    pub fn parse(text: &str, shown: &str, cwd: &Path, _file_dir: &Path) -> Result<CtConfig> {
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            crate::util::yaml::parse(text, shown).map_err(|e| crate::util::exit::UsageError(e.to_string()))?
        };
        let mut config = CtConfig::defaults(shown);
        let Value::Mapping(map) = value else {
            if value.is_null() {
                return Ok(config);
            }
            return crate::util::exit::usage(format!("{shown}: expected a mapping of ct settings"));
        };
        for (key, value) in &map {
            let Some(key) = key.as_str() else {
                return crate::util::exit::usage(format!("{shown}: every key must be a string"));
            };
            let key = key.to_ascii_lowercase();
            let bad = |what: &str| crate::util::exit::UsageError(format!("{shown}: `{key}` must be {what}"));
            match key.as_str() {
                "chart-dirs" => config.chart_dirs = strings(value).ok_or_else(|| bad("a list of folders"))?,
                "excluded-charts" => {
                    config.excluded_charts = strings(value).ok_or_else(|| bad("a list of chart folder names"))?
                }
                "remote" => config.remote = string(value).ok_or_else(|| bad("a git remote name"))?,
                "target-branch" => config.target_branch = string(value).ok_or_else(|| bad("a branch name"))?,
                "chart-repos" => {
                    let mut repos = Vec::new();
                    for entry in strings(value).ok_or_else(|| bad("a list of name=url"))? {
                        match entry.split_once('=') {
                            Some((name, url)) if !name.is_empty() && !url.is_empty() => {
                                repos.push((name.to_string(), url.to_string()))
                            }
                            _ => return Err(bad(&format!("a list of name=url (not {entry:?})")).into()),
                        }
                    }
                    config.chart_repos = repos;
                }
                "additional-commands" => {
                    config.additional_commands = commands(value).ok_or_else(|| bad("a list of commands"))?
                }
                "helm-lint-extra-args" => {
                    let text = string(value).ok_or_else(|| bad("a string of helm lint flags"))?;
                    config.lint_strict = false;
                    config.ignored_lint_args.clear();
                    for arg in text.split_whitespace() {
                        if arg == "--strict" || arg == "--strict=true" {
                            config.lint_strict = true;
                        } else if arg != "--strict=false" {
                            config.ignored_lint_args.push(arg.to_string());
                        }
                    }
                }
                "check-version-increment" => {
                    config.check_version_increment = boolean(value).ok_or_else(|| bad("true or false"))?
                }
                "validate-maintainers" => {
                    config.validate_maintainers = boolean(value).ok_or_else(|| bad("true or false"))?
                }
                "validate-chart-schema" => {
                    config.validate_chart_schema = boolean(value).ok_or_else(|| bad("true or false"))?
                }
                "validate-yaml" => config.validate_yaml = boolean(value).ok_or_else(|| bad("true or false"))?,
                "exclude-deprecated" => {
                    config.exclude_deprecated = boolean(value).ok_or_else(|| bad("true or false"))?
                }
                "lint-conf" => config.lint_conf = path(value, cwd).ok_or_else(|| bad("a file path"))?,
                "chart-yaml-schema" => config.chart_yaml_schema = path(value, cwd).ok_or_else(|| bad("a file path"))?,
                // The xtask always leaves out what .helmignore excludes when it
                // decides what changed, which is ct's `use-helmignore: true`.
                "use-helmignore" => {}
                other if INSTALL_ONLY.contains(&other) => {}
                other => config.ignored.push(other.to_string()),
            }
        }
        config.ignored.sort();
        Ok(config)
    }

    /// The one warning about settings without effect, or `None`.
    pub fn ignored_warning(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.ignored.is_empty() {
            parts.push(format!("{} (not supported by cargo xtask lint)", self.ignored.join(", ")));
        }
        if !self.ignored_lint_args.is_empty() {
            parts
                .push(format!("helm-lint-extra-args {} (only --strict is honoured)", self.ignored_lint_args.join(" ")));
        }
        (!parts.is_empty())
            .then(|| format!("warning: {}: ignoring {}; see docs/chart-testing.md", self.file, parts.join("; ")))
    }

    /// The git ref ct compares with: `<remote>/<target-branch>`.
    pub fn target_ref(&self) -> String {
        format!("{}/{}", self.remote, self.target_branch)
    }

    /// Whether ct would leave out the chart in `dir` (by its folder name).
    pub fn is_excluded(&self, dir: &Path) -> bool {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.excluded_charts.contains(&name)
    }

    /// Everything that can change a verdict, for the cache key.
    pub fn fingerprint(&self) -> String {
        format!(
            "strict={} version={} maintainers={} schema={} yaml={} deprecated={} commands={:?} repos={:?}",
            self.lint_strict,
            self.check_version_increment,
            self.validate_maintainers,
            self.validate_chart_schema,
            self.validate_yaml,
            self.exclude_deprecated,
            self.additional_commands,
            self.chart_repos
        )
    }
}

fn string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// A list, or one string split at white space (viper's string-to-slice cast).
fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Sequence(items) => items.iter().map(string).collect(),
        Value::Null => Some(Vec::new()),
        other => string(other).map(|s| s.split_whitespace().map(str::to_string).collect()),
    }
}

/// Like [`strings`], but a single string is one command: splitting a command
/// at its spaces (what viper would do) is never what its author meant, and
/// ct then fails on the fragments anyway.
fn commands(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Sequence(_) | Value::Null => strings(value),
        other => string(other).map(|s| vec![s]),
    }
}

fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "t" => Some(true),
            "false" | "0" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn path(value: &Value, cwd: &Path) -> Option<Option<PathBuf>> {
    let text = string(value)?;
    if text.trim().is_empty() {
        return Some(None);
    }
    let path = PathBuf::from(text.trim());
    Some(Some(if path.is_absolute() { path } else { cwd.join(path) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> CtConfig {
        CtConfig::parse(text, "ct.yaml", Path::new("/repo"), Path::new("/repo")).unwrap()
    }

    #[test]
    fn defaults_are_cts() {
        let config = parse("");
        assert_eq!(config.chart_dirs, vec!["charts"]);
        assert_eq!(config.target_ref(), "origin/main");
        assert!(config.check_version_increment && config.validate_maintainers && config.validate_yaml);
        assert!(!config.lint_strict);
    }

    #[test]
    fn honoured_and_ignored_keys_are_told_apart() {
        let config = parse(
            "Chart-Dirs: [charts, stable]\nexcluded-charts: old\ntarget-branch: develop\nremote: upstream\n\
             chart-repos: [bitnami=https://charts.example]\nadditional-commands: helm unittest {{ .Path }}\n\
             helm-lint-extra-args: --strict --quiet\nvalidate-maintainers: \"false\"\nlint-conf: lintconf.yaml\n\
             since: HEAD~1\nnamespace: x\ndebug: true\n",
        );
        assert_eq!(config.chart_dirs, vec!["charts", "stable"]);
        assert_eq!(config.excluded_charts, vec!["old"]);
        assert_eq!(config.target_ref(), "upstream/develop");
        assert_eq!(config.chart_repos, vec![("bitnami".to_string(), "https://charts.example".to_string())]);
        assert_eq!(config.additional_commands, vec!["helm unittest {{ .Path }}"]);
        assert!(config.lint_strict);
        assert!(!config.validate_maintainers);
        assert_eq!(config.lint_conf, Some(PathBuf::from("/repo/lintconf.yaml")));
        assert_eq!(config.ignored, vec!["debug", "since"], "install-only keys are not warned about");
        let warning = config.ignored_warning().unwrap();
        assert!(warning.contains("debug, since") && warning.contains("--quiet"), "{warning}");
        assert!(config.is_excluded(Path::new("/repo/charts/old")));
    }

    /// The README page is the user's list of what is honoured: it must
    /// name every key this module acts on (tidy-style, like rust-analyzer's).
    #[test]
    fn docs_name_every_honoured_key() {
        let docs =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/chart-testing.md")).unwrap();
        for key in HONOURED {
            assert!(docs.contains(&format!("`{key}`")), "docs/chart-testing.md does not mention `{key}`");
        }
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = CtConfig::parse("check-version-increment: maybe\n", "ct.yaml", Path::new("/r"), Path::new("/r"))
            .unwrap_err();
        assert!(err.to_string().contains("check-version-increment"), "{err}");
    }
}
