//! The synthetic monorepo the benchmark measures: N service charts on the
//! project's own library chart, and an umbrella over all of them.
//!
//! Nothing here is invented from scratch: `charts/_common` is copied as it
//! is, and every service chart is the project's reference service
//! (`charts/catalogue`: its templates, `values.schema.json` and the value
//! contract of its `values.yaml`) with its own name, image and port. So the
//! benchmark renders the same templates, through the same schema, that the
//! real charts do, and follows the project when those change. The layout is
//! the real repository's: `charts/_common`, `charts/<service>`,
//! `helm/<umbrella>` with per-environment values files.
//!
//! Kept as a plain function ([`generate`]) so the chart-testing comparison
//! (`--vs-ct`) can build the same repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use yaml_serde::{Mapping, Value};

use crate::util::fs;

/// The chart whose templates, schema and values the synthetic services copy.
const REFERENCE_SERVICE: &str = "charts/catalogue";
/// The library chart every service depends on.
const LIBRARY_DIR: &str = "charts/_common";
/// The synthetic umbrella's name (and folder under `helm/`).
pub const UMBRELLA: &str = "shop";
/// The umbrella's environments, each a `values-<env>.yaml` (like the real
/// umbrella's dev/staging/prod, two of them to keep the run short).
pub const ENVIRONMENTS: [&str; 2] = ["dev", "prod"];

/// What [`generate`] made.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// The repository root (pass it as `--root`).
    pub root: PathBuf,
    /// The library chart's name (`common`).
    pub library: String,
    /// Service chart names, in order (`svc-0000`, ...).
    pub services: Vec<String>,
    /// The umbrella chart's name.
    pub umbrella: String,
}

impl Synthetic {
    /// Folder of a service chart.
    pub fn service_dir(&self, name: &str) -> PathBuf {
        self.root.join("charts").join(name)
    }

    /// Folder of the umbrella chart.
    pub fn umbrella_dir(&self) -> PathBuf {
        self.root.join("helm").join(&self.umbrella)
    }

    /// Total number of charts (library + services + umbrella).
    pub fn chart_count(&self) -> usize {
        self.services.len() + 2
    }
}

/// The repository this xtask belongs to, whose charts are the templates of
/// the synthetic ones.
#[allow(dead_code)] // the reusable entry point of `generate`; commands pass --root instead
pub fn project_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Generates a monorepo of `n` service charts plus `_common` and an umbrella
/// in `dir` (created if missing; must not already hold charts), from this
/// project's charts.
#[allow(dead_code)] // reusable API (tests, `--vs-ct`); commands use `generate_from` with --root
pub fn generate(dir: &Path, n: usize) -> Result<Synthetic> {
    generate_from(&project_root(), dir, n)
}

/// [`generate`] with the reference charts taken from `project` (a checkout
/// of this repository).
pub fn generate_from(project: &Path, dir: &Path, n: usize) -> Result<Synthetic> {
    if n == 0 {
        anyhow::bail!("a synthetic repository needs at least one service chart");
    }
    if dir.join("charts").exists() || dir.join("helm").exists() {
        anyhow::bail!("{}: already holds charts; generate into an empty folder", dir.display());
    }
    let library_src = project.join(LIBRARY_DIR);
    let reference = project.join(REFERENCE_SERVICE);
    let library: Value =
        crate::util::yaml::load(&library_src.join("Chart.yaml"), &format!("{LIBRARY_DIR}/Chart.yaml"))?;
    let library_name = library
        .get("name")
        .and_then(Value::as_str)
        .with_context(|| format!("{LIBRARY_DIR}/Chart.yaml: no name"))?
        .to_string();
    let library_version = library
        .get("version")
        .and_then(Value::as_str)
        .with_context(|| format!("{LIBRARY_DIR}/Chart.yaml: no version"))?
        .to_string();
    let values: Value =
        crate::util::yaml::load(&reference.join("values.yaml"), &format!("{REFERENCE_SERVICE}/values.yaml"))?;

    copy_tree(&library_src, &dir.join(LIBRARY_DIR))?;

    let services: Vec<String> = (0..n).map(service_name).collect();
    // Who calls whom (the value contract's dependsOn, a runtime dependency,
    // not a chart dependency): every odd service calls the one before it.
    let callee = |i: usize| (i % 2 == 1).then(|| i - 1);
    let mut callers: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        if let Some(c) = callee(i) {
            callers.entry(c).or_default().push(i);
        }
    }
    for (i, name) in services.iter().enumerate() {
        let chart_dir = dir.join("charts").join(name);
        copy_tree(&reference.join("templates"), &chart_dir.join("templates"))?;
        for file in ["values.schema.json", ".helmignore"] {
            let src = reference.join(file);
            if src.is_file() {
                let bytes = std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?;
                fs::write_atomic(&chart_dir.join(file), &bytes)?;
            }
        }
        let chart_yaml = format!(
            "# Generated by `cargo xtask bench` from {REFERENCE_SERVICE}.\napiVersion: v2\nname: {name}\ndescription: synthetic service {i} of the benchmark\ntype: application\nversion: 1.0.0\nappVersion: \"2.1.0\"\ndependencies:\n  - name: {library_name}\n    version: {library_version}\n    repository: \"file://../_common\"\n"
        );
        fs::write_atomic(&chart_dir.join("Chart.yaml"), chart_yaml.as_bytes())?;
        let callers_of: Vec<String> =
            callers.get(&i).map(|c| c.iter().map(|&j| service_name(j)).collect()).unwrap_or_default();
        let service_values = service_values(&values, i, callee(i), &callers_of)?;
        let text = format!(
            "# Generated by `cargo xtask bench`: the value contract of {REFERENCE_SERVICE}/values.yaml.\n{}",
            yaml_serde::to_string(&service_values)?
        );
        fs::write_atomic(&chart_dir.join("values.yaml"), text.as_bytes())?;
    }

    write_umbrella(dir, &services)?;
    Ok(Synthetic { root: dir.to_path_buf(), library: library_name, services, umbrella: UMBRELLA.to_string() })
}

/// `svc-0007`: sorts like its index and is a valid DNS label.
pub fn service_name(index: usize) -> String {
    format!("svc-{index:04}")
}

/// The port of service `index`: distinct per service, like real services
/// that listen on different ports.
pub fn service_port(index: usize) -> u64 {
    8000 + (index as u64 % 50_000)
}

/// The reference values with this service's identity, its calls and some
/// variety (autoscaling, a disruption budget) so that the rendered kinds
/// resemble a real set of services.
fn service_values(reference: &Value, index: usize, callee: Option<usize>, callers: &[String]) -> Result<Value> {
    let name = service_name(index);
    let port = service_port(index);
    let mut values = reference.clone();
    set(&mut values, &["name"], Value::from(name.clone()))?;
    set(&mut values, &["image", "repository"], Value::from(format!("robotshop/rs-{name}")))?;
    set(&mut values, &["containerPort"], Value::from(port))?;
    set(&mut values, &["service", "port"], Value::from(port))?;

    let mut env = Mapping::new();
    env.insert(Value::from("LOG_LEVEL"), Value::from("info"));
    env.insert(Value::from("SERVICE_NAME"), Value::from(name.clone()));
    let mut depends_on = Mapping::new();
    if let Some(callee) = callee {
        let host = service_name(callee);
        let mut target = Mapping::new();
        target.insert(Value::from("host"), Value::from(host.clone()));
        target.insert(Value::from("port"), Value::from(service_port(callee)));
        depends_on.insert(Value::from(host.clone()), Value::Mapping(target));
        env.insert(Value::from("UPSTREAM_URL"), Value::from(format!("http://{host}:{}", service_port(callee))));
    }
    set(&mut values, &["env"], Value::Mapping(env))?;
    set(&mut values, &["dependsOn"], Value::Mapping(depends_on))?;
    let mut clients = Mapping::new();
    for caller in callers {
        clients.insert(Value::from(caller.clone()), Value::Mapping(Mapping::new()));
    }
    set(&mut values, &["networkPolicy", "allowedClients"], Value::Mapping(clients))?;
    if index.is_multiple_of(5) {
        set(&mut values, &["autoscaling", "enabled"], Value::from(true))?;
    }
    if index.is_multiple_of(7) {
        set(&mut values, &["podDisruptionBudget", "enabled"], Value::from(true))?;
    }
    Ok(values)
}

/// Sets `path` in a mapping tree, creating mappings on the way; an existing
/// non-mapping on the way is an error (the reference values changed shape).
pub fn set(root: &mut Value, path: &[&str], value: Value) -> Result<()> {
    let (last, parents) = path.split_last().context("empty values path")?;
    let mut node = root;
    for key in parents {
        let Value::Mapping(map) = node else {
            anyhow::bail!("{REFERENCE_SERVICE}/values.yaml: {} is not a mapping", path.join("."));
        };
        node = map.entry(Value::from(*key)).or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    let Value::Mapping(map) = node else {
        anyhow::bail!("{REFERENCE_SERVICE}/values.yaml: {} is not under a mapping", path.join("."));
    };
    map.insert(Value::from(*last), value);
    Ok(())
}

/// `helm/shop`: depends on every service (each behind `<svc>.enabled`, like
/// the real umbrella), with application-wide values and one values file per
/// environment that changes some services.
fn write_umbrella(dir: &Path, services: &[String]) -> Result<()> {
    let umbrella = dir.join("helm").join(UMBRELLA);
    let mut chart = format!(
        "# Generated by `cargo xtask bench`.\napiVersion: v2\nname: {UMBRELLA}\ndescription: synthetic umbrella over {} services\ntype: application\nversion: 1.0.0\nappVersion: \"2.1.0\"\ndependencies:\n",
        services.len()
    );
    let mut values = String::from("# Generated by `cargo xtask bench`.\nglobal:\n  imagePullPolicy: IfNotPresent\n");
    for name in services {
        chart.push_str(&format!(
            "  - name: {name}\n    version: 1.0.0\n    repository: \"file://../../charts/{name}\"\n    condition: {name}.enabled\n"
        ));
        values.push_str(&format!("{name}:\n  enabled: true\n"));
    }
    fs::write_atomic(&umbrella.join("Chart.yaml"), chart.as_bytes())?;
    fs::write_atomic(&umbrella.join("values.yaml"), values.as_bytes())?;
    fs::write_atomic(
        &umbrella.join("templates").join("NOTES.txt"),
        b"The synthetic shop is installed as {{ .Release.Name }}.\n",
    )?;
    for env in ENVIRONMENTS {
        let mut text = format!("# Generated by `cargo xtask bench`: the {env} environment.\n");
        for (i, name) in services.iter().enumerate() {
            match env {
                "dev" if i % 4 == 0 => text.push_str(&format!("{name}:\n  env:\n    LOG_LEVEL: debug\n")),
                "prod" => {
                    text.push_str(&format!("{name}:\n  replicaCount: 2\n"));
                    if i % 3 == 0 {
                        text.push_str("  podDisruptionBudget:\n    enabled: true\n");
                    }
                }
                _ => {}
            }
        }
        fs::write_atomic(&umbrella.join(format!("values-{env}.yaml")), text.as_bytes())?;
    }
    Ok(())
}

/// Copies a folder recursively (regular files and folders; links are
/// followed), skipping the build output a chart folder may hold in its
/// `charts/` (archives of `helm dependency build`).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let in_chart = from.join("Chart.yaml").is_file();
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))? {
        let entry = entry?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            if in_chart && (entry.file_name() == "charts" || entry.file_name() == "tmpcharts") {
                continue;
            }
            copy_tree(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)
                .with_context(|| format!("cannot copy {} to {}", path.display(), target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_services_on_the_library_and_an_umbrella() {
        let dir = tempfile::tempdir().unwrap();
        let synthetic = generate(dir.path(), 3).unwrap();
        assert_eq!(synthetic.services, ["svc-0000", "svc-0001", "svc-0002"]);
        assert_eq!(synthetic.chart_count(), 5);
        let values: Value =
            crate::util::yaml::load(&synthetic.service_dir("svc-0001").join("values.yaml"), "v").unwrap();
        assert_eq!(values["name"].as_str(), Some("svc-0001"));
        assert_eq!(values["containerPort"].as_u64(), Some(8001));
        assert_eq!(values["dependsOn"]["svc-0000"]["port"].as_u64(), Some(8000));
        let umbrella = std::fs::read_to_string(synthetic.umbrella_dir().join("Chart.yaml")).unwrap();
        assert!(umbrella.contains("file://../../charts/svc-0002"));
        assert!(generate(dir.path(), 3).is_err(), "refuses a folder that already holds charts");
    }
}
