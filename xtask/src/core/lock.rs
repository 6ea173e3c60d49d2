//! Locked dependencies: Helm's own `Chart.lock`, and `Chart.sum` beside it.
//!
//! `Chart.lock` is written in exactly Helm's format (what `helm dependency
//! update` writes: sigs.k8s.io/yaml of Helm's `chart.Lock`, keys in
//! alphabetical order, `generated` quoted) with Helm's digest (`HashReq`: the
//! SHA-256 of Go's JSON of Chart.yaml's dependencies and the locked ones), so
//! plain `helm dependency build`, Argo CD and Renovate take it as their own.
//! Helm's format has no place for the hash of an archive, so `Chart.sum`
//! holds one line per locked remote archive (name, version, the repository as
//! Chart.yaml names it, the `sha256:` of the archive's bytes), the way
//! `go.sum` sits beside `go.mod`; Helm ignores it.

use anyhow::Result;
use serde::Deserialize;

use crate::core::model::Dependency;
use crate::util::fs::sha256_hex;

/// Helm's lock file, in the chart folder.
pub const LOCK_FILE: &str = "Chart.lock";
/// The archives' digests, beside it.
pub const SUM_FILE: &str = "Chart.sum";

/// One entry of `Chart.lock`'s `dependencies`: what Helm locks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Locked {
    pub name: String,
    #[serde(default)]
    pub repository: String,
    #[serde(default)]
    pub version: String,
}

/// `Chart.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Lock {
    #[serde(default)]
    pub dependencies: Vec<Locked>,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub generated: String,
}

/// One line of `Chart.sum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sum {
    pub name: String,
    pub version: String,
    pub repository: String,
    /// `sha256:<hex>` of the archive's bytes.
    pub sha256: String,
}

impl Lock {
    /// Reads `Chart.lock`'s text (`shown_as` names it in errors, with line
    /// and column).
    pub fn parse(text: &str, shown_as: &str) -> Result<Lock> {
        Ok(crate::util::yaml::parse(text, shown_as)?)
    }

    /// The file, byte for byte as Helm 4 writes it.
    pub fn render(&self) -> String {
        let mut out = String::from("dependencies:\n");
        if self.dependencies.is_empty() {
            out = String::from("dependencies: []\n");
        }
        for dep in &self.dependencies {
            out.push_str(&format!("- name: {}\n", scalar(&dep.name)));
            out.push_str(&format!("  repository: {}\n", scalar(&dep.repository)));
            if !dep.version.is_empty() {
                out.push_str(&format!("  version: {}\n", scalar(&dep.version)));
            }
        }
        out.push_str(&format!("digest: {}\n", scalar(&self.digest)));
        // Go's YAML quotes a string that would read back as a timestamp.
        out.push_str(&format!("generated: {}\n", quoted(&self.generated)));
        out
    }

    /// The locked entry for a dependency of Chart.yaml (by position, as
    /// Helm's resolver writes them, then by name).
    pub fn entry(&self, index: usize, name: &str) -> Option<&Locked> {
        self.dependencies
            .get(index)
            .filter(|l| l.name == name)
            .or_else(|| self.dependencies.iter().find(|l| l.name == name))
    }
}

impl Lock {
    /// The lock after `bump` rewrote exact versions of `file://`
    /// dependencies (`changes`: name -> new version) in Chart.yaml, whose
    /// dependencies are now `requirements`: those entries follow and the
    /// digest is Helm's again, without the network (remote entries stay).
    pub fn follow(&self, requirements: &[Dependency], changes: &[(String, String)], generated: String) -> Lock {
        let mut dependencies = self.dependencies.clone();
        for (name, version) in changes {
            for entry in dependencies.iter_mut().filter(|e| &e.name == name && e.repository.starts_with("file://")) {
                entry.version = version.clone();
            }
        }
        let digest = digest(requirements, &dependencies);
        Lock { dependencies, digest, generated }
    }
}

/// Helm's `resolver.HashReq(req, lock)`: `sha256:` and the SHA-256 of
/// `json.Marshal([2][]*chart.Dependency{req, lock})`.
pub fn digest(requirements: &[Dependency], locked: &[Locked]) -> String {
    let req: Vec<String> = requirements.iter().map(go_json_requirement).collect();
    let lock: Vec<String> = locked
        .iter()
        .map(|l| {
            go_json_fields(&[
                ("name", Some(json_string(&l.name))),
                ("version", (!l.version.is_empty()).then(|| json_string(&l.version))),
                ("repository", Some(json_string(&l.repository))),
            ])
        })
        .collect();
    let json = format!("[[{}],[{}]]", req.join(","), lock.join(","));
    format!("sha256:{}", sha256_hex(go_html_escape(&json).as_bytes()))
}

/// Why Chart.yaml and Chart.lock disagree, naming the first dependency that
/// differs; `None` when Helm would take the lock (its digest matches).
pub fn disagreement(requirements: &[Dependency], lock: &Lock) -> Option<String> {
    if digest(requirements, &lock.dependencies) == lock.digest {
        return None;
    }
    for (index, dep) in requirements.iter().enumerate() {
        let Some(locked) = lock.entry(index, &dep.name) else {
            return Some(format!("dependency {} is in Chart.yaml but not in Chart.lock", dep.name));
        };
        let repository = dep.repository.clone().unwrap_or_default();
        if locked.repository.trim_end_matches('/') != repository.trim_end_matches('/') {
            return Some(format!(
                "dependency {}: Chart.yaml names repository {repository}, Chart.lock {}",
                dep.name, locked.repository
            ));
        }
        let range = dep.version.clone().unwrap_or_default();
        let allowed = semver::Version::parse(locked.version.trim_start_matches('v')).is_ok_and(|v| {
            !matches!(
                crate::core::versions::check_constraint(&range, &v),
                crate::core::versions::Constraint::Refuses(_)
            )
        });
        if !allowed {
            return Some(format!(
                "dependency {}: Chart.lock's version {} is not what Chart.yaml's {range:?} allows",
                dep.name, locked.version
            ));
        }
    }
    if let Some(extra) = lock.dependencies.iter().find(|l| !requirements.iter().any(|d| d.name == l.name)) {
        return Some(format!("dependency {} is in Chart.lock but no longer in Chart.yaml", extra.name));
    }
    Some(format!(
        "Chart.lock's digest {} is not Helm's digest of Chart.yaml's dependencies (a condition, alias, tag or import-values changed, or the lock was edited by hand)",
        lock.digest
    ))
}

impl Sum {
    /// Reads `Chart.sum` (`shown_as` names it, with the line, in errors).
    pub fn parse_all(text: &str, shown_as: &str) -> Result<Vec<Sum>> {
        let mut sums = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, version, repository, sha256] = fields[..] else {
                anyhow::bail!(
                    "{shown_as}:{}: expected `NAME VERSION REPOSITORY sha256:HEX`, found {line:?}",
                    number + 1
                );
            };
            let hex = sha256.strip_prefix("sha256:").unwrap_or_default();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!("{shown_as}:{}: {sha256:?} is not a sha256:HEX digest", number + 1);
            }
            sums.push(Sum {
                name: name.to_string(),
                version: version.to_string(),
                repository: repository.to_string(),
                sha256: sha256.to_string(),
            });
        }
        Ok(sums)
    }

    /// The file: a header saying what it is, then one line per archive.
    pub fn render_all(sums: &[Sum]) -> String {
        let mut out = String::from(
            "# Written by `cargo xtask deps update`: the sha256 of each remote archive Chart.lock locks\n# (Helm's lock has no place for it); lint, verify and package refuse an archive that differs.\n",
        );
        for sum in sums {
            out.push_str(&format!("{} {} {} {}\n", sum.name, sum.version, sum.repository, sum.sha256));
        }
        out
    }

    /// The recorded line for a dependency, if any.
    pub fn find<'s>(sums: &'s [Sum], name: &str, version: &str, repository: &str) -> Option<&'s Sum> {
        sums.iter().find(|s| {
            s.name == name
                && s.version == version
                && s.repository.trim_end_matches('/') == repository.trim_end_matches('/')
        })
    }
}

/// Go's JSON of Helm's `chart.Dependency`, fields in the struct's order with
/// its `omitempty`s; strings as Helm's `Validate` sanitises them.
fn go_json_requirement(dep: &Dependency) -> String {
    let text = |s: &Option<String>| s.as_deref().map(sanitize).filter(|s| !s.is_empty()).map(|s| json_string(&s));
    let tags: Vec<String> = dep.tags.iter().map(|t| sanitize(t)).collect();
    let import_values = dep
        .import_values
        .as_ref()
        .and_then(|v| serde_json::to_value(v).ok())
        .filter(|v| !matches!(v, serde_json::Value::Null) && v.as_array().is_none_or(|a| !a.is_empty()))
        .map(|v| v.to_string());
    go_json_fields(&[
        ("name", Some(json_string(&sanitize(&dep.name)))),
        ("version", text(&dep.version)),
        ("repository", Some(json_string(&dep.repository.as_deref().map(sanitize).unwrap_or_default()))),
        ("condition", text(&dep.condition)),
        ("tags", (!tags.is_empty()).then(|| serde_json::Value::from(tags).to_string())),
        ("enabled", dep.enabled.filter(|e| *e).map(|_| "true".to_string())),
        ("import-values", import_values),
        ("alias", text(&dep.alias)),
    ])
}

fn go_json_fields(fields: &[(&str, Option<String>)]) -> String {
    let body: Vec<String> =
        fields.iter().filter_map(|(key, value)| value.as_ref().map(|v| format!("\"{key}\":{v}"))).collect();
    format!("{{{}}}", body.join(","))
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Go's `encoding/json` escapes `<`, `>`, `&`, U+2028 and U+2029 in strings
/// (for HTML); outside strings JSON has none of them, so replacing them in
/// the whole text is exact.
fn go_html_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Helm's `sanitizeString`: white space becomes a space, what is not
/// printable goes.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            if c.is_whitespace() {
                Some(' ')
            } else if c.is_control() {
                None
            } else {
                Some(c)
            }
        })
        .collect()
}

/// A string as Go's YAML writes it: plain when it reads back as the same
/// string, double-quoted otherwise.
fn scalar(s: &str) -> String {
    let plain_safe = !s.is_empty()
        && s.trim() == s
        && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c))
        && !s.contains(": ")
        && !s.contains(" #")
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
        );
    if plain_safe {
        s.to_string()
    } else {
        quoted(s)
    }
}

fn quoted(s: &str) -> String {
    json_string(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(yaml: &str) -> Dependency {
        yaml_serde::from_str(yaml).expect("dependency")
    }

    #[test]
    fn the_lock_renders_as_helm_writes_it_and_reads_back() {
        let lock = Lock {
            dependencies: vec![Locked {
                name: "mongodb".into(),
                repository: "oci://registry-1.docker.io/bitnamicharts".into(),
                version: "17.0.2".into(),
            }],
            digest: "sha256:00".into(),
            generated: "2026-12-02T03:04:05.5Z".into(),
        };
        let text = lock.render();
        assert_eq!(
            text,
            "dependencies:\n- name: mongodb\n  repository: oci://registry-1.docker.io/bitnamicharts\n  version: 17.0.2\ndigest: sha256:00\ngenerated: \"2026-12-02T03:04:05.5Z\"\n"
        );
        assert_eq!(Lock::parse(&text, "Chart.lock").expect("parse"), lock);
        assert_eq!(scalar("1.0"), "\"1.0\"");
        assert_eq!(scalar(""), "\"\"");
    }

    #[test]
    fn the_digest_covers_every_field_helm_hashes() {
        let base = dep("{name: redis, version: 23.1.1, repository: 'oci://r/b', condition: redis.enabled}");
        let locked = [Locked { name: "redis".into(), repository: "oci://r/b".into(), version: "23.1.1".into() }];
        let one = digest(std::slice::from_ref(&base), &locked);
        let aliased =
            dep("{name: redis, version: 23.1.1, repository: 'oci://r/b', condition: redis.enabled, alias: cache}");
        assert_ne!(one, digest(&[aliased], &locked));
        let tagged =
            dep("{name: redis, version: 23.1.1, repository: 'oci://r/b', condition: redis.enabled, tags: [a]}");
        assert_ne!(one, digest(&[tagged], &locked));
        assert!(one.starts_with("sha256:") && one.len() == 71, "{one}");
    }

    #[test]
    fn the_digest_is_the_one_helm_writes() {
        // `helm dependency update` (Helm 4.3.1) wrote these digests for a
        // range from a registry with a condition and tags (one with `<`, which
        // Go's JSON escapes), or an alias, and a `file://` chart at 0.3.0
        // whose range has `>`, and `import-values` in both of its forms.
        let lib = dep("{name: lib, version: '>=0.1.0', repository: 'file://../lib'}");
        let locked = [
            Locked {
                name: "redis".into(),
                repository: "oci://127.0.0.1:5977/bitnamicharts".into(),
                version: "23.1.1".into(),
            },
            Locked { name: "lib".into(), repository: "file://../lib".into(), version: "0.3.0".into() },
        ];
        let tagged = dep("{name: redis, version: '^23.0.0', repository: 'oci://127.0.0.1:5977/bitnamicharts', condition: redis.enabled, tags: [cache, 'a<b']}");
        assert_eq!(
            digest(&[tagged, lib.clone()], &locked),
            "sha256:270b8ffaef187190efdac38d2cbd87e8a920c0ef464df7d46d224d1a36f39169"
        );
        let aliased = dep("{name: redis, version: '^23.0.0', repository: 'oci://127.0.0.1:5977/bitnamicharts', condition: redis.enabled, alias: cache}");
        assert_eq!(
            digest(&[aliased, lib], &locked),
            "sha256:3d8b928b1f132f77bab23a984e40be38ad99207049218ea288b0f09d1c011f04"
        );
        let importing = dep("{name: lib, version: '>=0.1.0', repository: 'file://../lib', import-values: [data, {parent: fromchild, child: exports.data}]}");
        let lib_only = [Locked { name: "lib".into(), repository: "file://../lib".into(), version: "0.3.0".into() }];
        assert_eq!(
            digest(&[importing], &lib_only),
            "sha256:b91eaba7f0c4a5ef4aa7d1666694f53e75787ec6061bb4b339b18ffb4c5b2c49"
        );
    }

    #[test]
    fn disagreements_name_the_dependency() {
        let req = [dep("{name: redis, version: '^23.0.0', repository: 'oci://r/b'}")];
        let mut lock = Lock {
            dependencies: vec![Locked {
                name: "redis".into(),
                repository: "oci://r/b".into(),
                version: "23.1.1".into(),
            }],
            digest: String::new(),
            generated: String::new(),
        };
        lock.digest = digest(&req, &lock.dependencies);
        assert_eq!(disagreement(&req, &lock), None);
        let raised = [dep("{name: redis, version: '^24.0.0', repository: 'oci://r/b'}")];
        let why = disagreement(&raised, &lock).expect("disagrees");
        assert!(why.contains("redis") && why.contains("23.1.1") && why.contains("^24.0.0"), "{why}");
        let more = [req[0].clone(), dep("{name: mysql, version: 14.0.5, repository: 'oci://r/b'}")];
        assert!(disagreement(&more, &lock)
            .expect("disagrees")
            .contains("mysql is in Chart.yaml but not in Chart.lock"));
    }

    #[test]
    fn sums_round_trip_and_bad_lines_are_named() {
        let sums = vec![Sum {
            name: "redis".into(),
            version: "23.1.1".into(),
            repository: "oci://r/b".into(),
            sha256: format!("sha256:{}", "a".repeat(64)),
        }];
        assert_eq!(Sum::parse_all(&Sum::render_all(&sums), "Chart.sum").expect("parse"), sums);
        let err = Sum::parse_all("# x\nredis 1.0.0\n", "helm/x/Chart.sum").unwrap_err().to_string();
        assert!(err.starts_with("helm/x/Chart.sum:2:"), "{err}");
    }
}
