//! `cargo xtask new-service NAME --port PORT [--deps a,b] ...`: the design
//! document's chart generator script, done so that the result lints.
//!
//! One command adds service number 43 everywhere it must appear:
//! - `charts/NAME/`: Chart.yaml (depending on the library chart), values.yaml
//!   following the value contract, and, copied from an existing service chart
//!   because every service chart shares them, values.schema.json, the
//!   one-line templates and .helmignore;
//! - `service-matrix.yaml`: a new entry that agrees with the chart;
//! - the umbrella chart: a `file://` dependency with its condition, and a
//!   section in values.yaml that enables it;
//! - each dependency that is a service of this repository admits the new
//!   service in `networkPolicy.allowedClients` (its zero-trust policy would
//!   drop the new traffic otherwise; the Bitnami stores admit their
//!   namespace, so they need no edit);
//! - the derived files: `argocd/` (when the repository has it) and the
//!   diagram blocks of README.md.
//!
//! Everything is checked and computed before anything is written: a refused
//! command (a name that is not a DNS-1123 label, a name in use, an unknown
//! dependency) writes nothing and exits 2. Existing YAML files are edited as
//! text, by inserting lines, so every comment and the layout stay as they
//! were; each edit is then parsed and compared with the intended change to
//! the parsed original, so a file whose shape the edit did not expect is
//! refused instead of damaged.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use yaml_serde::Value;

use crate::core::context::Context;
use crate::core::matrix::{Service, ServiceMatrix};
use crate::core::model::{Chart, ChartKind, Repo};
use crate::util::exit;
use crate::util::yaml_edit::{self, block_end, indent, is_content, join_lines, top_level_line};

/// Options of `cargo xtask new-service`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// The service name: a DNS-1123 label (lowercase letters, digits, `-`), at most 50 characters.
    pub name: String,
    /// The port the service listens on.
    pub port: u16,
    /// Services it calls, comma-separated; each must be in the service matrix.
    pub deps: Vec<String>,
    /// The workload: a Deployment, or a StatefulSet with a volume per pod.
    pub workload: Workload,
    /// The language, which picks the default resources (nodejs, java, python, nginx, php, go).
    pub language: String,
    /// The image, REPOSITORY:TAG (default: robotshop/rs-NAME:0.1.0; the tag must not be `latest`).
    pub image: Option<String>,
    /// The HTTP path of the liveness and readiness probes.
    pub health: String,
    /// Print the files that would be written and write nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    Deployment,
    Statefulset,
}

impl Workload {
    fn as_str(self) -> &'static str {
        match self {
            Workload::Deployment => "deployment",
            Workload::Statefulset => "statefulset",
        }
    }
}

/// The value contract limits `name` to 50 characters (`maxLength` next to its pattern in the
/// service charts' values.schema.json), so that names with suffixes
/// (`-headless`, `wait-for-`) stay within Kubernetes' 63.
const MAX_NAME: usize = 50;

/// The version a new chart starts at: below 1.0.0 until its first release.
const FIRST_VERSION: &str = "0.1.0";

/// Language spellings people use, mapped to the library's resource profiles.
fn profile_for(language: &str) -> &str {
    match language.to_ascii_lowercase().as_str() {
        "node" | "node.js" | "javascript" | "typescript" => "nodejs",
        "golang" => "go",
        "python3" => "python",
        "kotlin" | "spring" => "java",
        _ => language,
    }
}

pub fn run(args: Opts, ctx: &Context) -> Result<()> {
    let plan = plan(ctx, &args)?;
    if args.dry_run {
        eprintln!("new-service {} (dry run): would write", args.name);
        for (rel, _) in &plan.files {
            eprintln!("  {rel}");
        }
        if plan.gitops {
            eprintln!("  and regenerate {}/", crate::ops::gitops::DIR);
        }
        if plan.readme {
            eprintln!("  and regenerate the diagram blocks of {}", crate::ops::graph_cmd::README);
        }
        return Ok(());
    }
    for (rel, text) in &plan.files {
        crate::util::fs::write_atomic(&ctx.root.join(rel), text.as_bytes())
            .with_context(|| format!("new-service: cannot write {rel}"))?;
    }
    for rel in &plan.files.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>() {
        eprintln!("new-service: wrote {rel}");
    }
    // The derived files, from the repository as it is now.
    if plan.gitops {
        let files = crate::ops::gitops::generate(ctx, &Default::default())?;
        for line in crate::ops::gitops::write(ctx, &files)? {
            eprintln!("new-service: gitops: {line}");
        }
    }
    if plan.readme {
        let path = ctx.root.join(crate::ops::graph_cmd::README);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read file", crate::ops::graph_cmd::README))?;
        let (updated, _) = crate::ops::graph_cmd::updated_readme(ctx, &text)?;
        if updated != text {
            crate::util::fs::write_atomic(&path, updated.as_bytes())?;
            eprintln!("new-service: updated the diagram in {}", crate::ops::graph_cmd::README);
        }
    }
    eprintln!(
        "new-service: {name} added. Next: set its real image in {dir}/values.yaml, run `cargo xtask lint --chart {name}`, and `cargo xtask bump --changed` before releasing (the umbrella{deps} changed)",
        name = args.name,
        dir = plan.chart_dir,
        deps = if plan.edited_deps.is_empty() { String::new() } else { format!(" and {}", plan.edited_deps.join(", ")) },
    );
    Ok(())
}

/// Everything to write, computed and verified up front.
struct Plan {
    /// (path relative to the root, new text), new files and edited ones.
    files: Vec<(String, String)>,
    chart_dir: String,
    edited_deps: Vec<String>,
    /// Regenerate argocd/ afterwards.
    gitops: bool,
    /// Regenerate the diagram blocks of README.md afterwards.
    readme: bool,
}

fn plan(ctx: &Context, args: &Opts) -> Result<Plan> {
    let name = args.name.as_str();
    check_name(name)?;
    let matrix_file = ctx.config.service_matrix.clone();
    let matrix = match ServiceMatrix::load(&ctx.root, &matrix_file)? {
        Some(matrix) => matrix,
        None => {
            return exit::usage(format!("{matrix_file} does not exist: new-service adds the service to the matrix"))
        }
    };
    let problems = matrix.problems(&matrix_file);
    if !problems.is_empty() {
        anyhow::bail!("{matrix_file} has problems; fix them before adding a service:\n{}", problems.join("\n"));
    }
    let repo = Repo::discover(&ctx.root, &ctx.config)?;

    let umbrella =
        match repo.charts.iter().filter(|c| c.kind == ChartKind::Umbrella).collect::<Vec<_>>().as_slice() {
            [one] => *one,
            [] => return exit::usage(
                "new-service needs the umbrella chart (the chart that depends on every service chart); there is none",
            ),
            many => {
                return exit::usage(format!(
                    "new-service found several umbrella charts ({}); it adds the service to exactly one",
                    many.iter().map(|c| c.rel.as_str()).collect::<Vec<_>>().join(", ")
                ))
            }
        };
    let library = repo.charts.iter().find(|c| c.kind == ChartKind::Library).ok_or_else(|| {
        exit::UsageError(
            "new-service needs the library chart the service charts render with (type: library); there is none".into(),
        )
    })?;
    // The chart new charts are modelled on: the first service chart of the
    // matrix that uses the library (schema, templates, .helmignore).
    let reference = matrix
        .services
        .iter()
        .filter(|s| !s.is_infrastructure())
        .filter_map(|s| repo.chart(&s.name))
        .find(|c| c.kind == ChartKind::Application && c.dir.join("values.schema.json").is_file() && uses(c, library))
        .ok_or_else(|| exit::UsageError("new-service copies the schema and templates of an existing service chart that uses the library chart; there is none".into()))?;

    // Refusals: the name is taken, a dependency is unknown.
    let parent =
        reference.dir.parent().map(|p| crate::core::model::relative(&ctx.root, p)).unwrap_or_else(|| "charts".into());
    let chart_dir = format!("{parent}/{name}");
    let mut taken = Vec::new();
    if matrix.service(name).is_some() {
        taken.push(format!("{matrix_file} has a service {name}"));
    }
    if repo.all_names().iter().any(|n| n == name) {
        taken.push(format!("a chart named {name} exists"));
    }
    if ctx.root.join(&chart_dir).exists() {
        taken.push(format!("{chart_dir} exists"));
    }
    if umbrella.meta.dependencies.iter().any(|d| d.alias.as_deref().unwrap_or(&d.name) == name) {
        taken.push(format!("{}/Chart.yaml already has a dependency {name}", umbrella.rel));
    }
    let umbrella_values_path = umbrella.dir.join("values.yaml");
    if umbrella_values_path.is_file() {
        let shown = format!("{}/values.yaml", umbrella.rel);
        let values: Value = crate::util::yaml::load(&umbrella_values_path, &shown)?;
        if crate::ops::consistency::lookup(&values, &[name]).is_some() {
            taken.push(format!("{shown} already has a section {name}:"));
        }
    }
    if !taken.is_empty() {
        return exit::usage(format!(
            "new-service {name}: the name is in use ({}); choose another name",
            taken.join("; ")
        ));
    }
    let mut deps: Vec<&Service> = Vec::new();
    for dep in &args.deps {
        let dep = dep.trim();
        if dep.is_empty() {
            continue;
        }
        let Some(service) = matrix.service(dep) else {
            return exit::usage(format!(
                "--deps {dep}: {matrix_file} has no service {dep}; the services are {}",
                matrix.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            ));
        };
        if service.port.is_none() || service.host().is_none() {
            return exit::usage(format!(
                "--deps {dep}: {dep} listens on no port ({matrix_file} says port null), so nothing can call it"
            ));
        }
        if !deps.iter().any(|d| d.name == service.name) {
            deps.push(service);
        }
    }
    let profile = profile_for(&args.language).to_string();
    let profiles = schema_enum(&reference.dir.join("values.schema.json"), "profile")?;
    if !profiles.is_empty() && !profiles.contains(&profile) {
        return exit::usage(format!(
            "--language {}: not a resource profile of the library; choose one of {}",
            args.language,
            profiles.join(", ")
        ));
    }
    let (image_repository, image_tag) = image(args, name)?;
    if !args.health.starts_with('/') {
        return exit::usage(format!("--health {}: an HTTP path starts with /", args.health));
    }

    let service = NewService {
        name: name.to_string(),
        port: args.port,
        workload: args.workload,
        profile,
        image_repository,
        image_tag,
        health: args.health.clone(),
        deps: deps.iter().map(|d| (d.name.clone(), d.host().unwrap_or_default(), d.port.unwrap_or_default())).collect(),
        chart_dir: chart_dir.clone(),
        library_version: library.version.to_string(),
        library_path: relative_path(&chart_dir, &library.rel),
    };

    let mut files: Vec<(String, String)> = Vec::new();
    files.push((format!("{chart_dir}/Chart.yaml"), service.chart_yaml()));
    files.push((format!("{chart_dir}/values.yaml"), service.values_yaml()));
    for (rel, text) in copied_files(ctx, &repo, reference)? {
        files.push((format!("{chart_dir}/{rel}"), text));
    }

    // service-matrix.yaml
    let matrix_text = crate::util::yaml::read_text(&ctx.root.join(&matrix_file), &matrix_file)?;
    let new_matrix = append_to_sequence(&matrix_text, &matrix_file, "services", &service.matrix_entry_lines(), |v| {
        push_to(v, &["services"], service.matrix_entry_value())
    })?;
    files.push((matrix_file.clone(), new_matrix));

    // The umbrella: dependency and values.
    let umbrella_chart = format!("{}/Chart.yaml", umbrella.rel);
    let text = crate::util::yaml::read_text(&ctx.root.join(&umbrella_chart), &umbrella_chart)?;
    let repository = format!("file://{}", relative_path(&umbrella.rel, &chart_dir));
    let entry = vec![
        format!("- name: {name}"),
        format!("  version: {FIRST_VERSION}"),
        format!("  repository: \"{repository}\""),
        format!("  condition: {name}.enabled"),
    ];
    let mut dep_value = yaml_serde::Mapping::new();
    dep_value.insert("name".into(), name.into());
    dep_value.insert("version".into(), FIRST_VERSION.into());
    dep_value.insert("repository".into(), repository.clone().into());
    dep_value.insert("condition".into(), format!("{name}.enabled").into());
    let new_chart = append_to_sequence(&text, &umbrella_chart, "dependencies", &entry, |v| {
        push_to(v, &["dependencies"], Value::Mapping(dep_value.clone()))
    })?;
    files.push((umbrella_chart, new_chart));

    let umbrella_values = format!("{}/values.yaml", umbrella.rel);
    let values_path = ctx.root.join(&umbrella_values);
    let text = if values_path.is_file() {
        crate::util::yaml::read_text(&values_path, &umbrella_values)?
    } else {
        String::new()
    };
    let service_keys: Vec<String> =
        matrix.services.iter().filter(|s| !s.is_infrastructure()).map(|s| s.name.clone()).collect();
    let new_values = add_top_level_section(&text, &umbrella_values, name, &service_keys)?;
    files.push((umbrella_values, new_values));

    // Each dependency of this repository admits the new client.
    let mut edited_deps = Vec::new();
    for dep in deps.iter().filter(|d| !d.is_infrastructure()) {
        let Some(chart) = dep
            .chart
            .as_deref()
            .and_then(|folder| repo.charts.iter().find(|c| c.rel == folder))
            .or_else(|| repo.chart(&dep.name))
        else {
            continue;
        };
        let rel = format!("{}/values.yaml", chart.rel);
        let text = crate::util::yaml::read_text(&chart.dir.join("values.yaml"), &rel)?;
        files.push((rel.clone(), add_allowed_client(&text, &rel, name)?));
        edited_deps.push(dep.name.clone());
    }

    // Derived files: generate once now (from the edited texts) so that a
    // problem there refuses the command before anything is written.
    let overrides: crate::ops::gitops::Overrides = files.iter().cloned().collect();
    let gitops = ctx.root.join(crate::ops::gitops::DIR).is_dir();
    if gitops {
        crate::ops::gitops::generate(ctx, &overrides)
            .context("new-service: the GitOps files could not be generated for the new service")?;
    }
    let readme_path = ctx.root.join(crate::ops::graph_cmd::README);
    let readme =
        readme_path.is_file() && std::fs::read_to_string(&readme_path).is_ok_and(|t| t.contains("<!-- graph:"));
    if readme {
        let text = std::fs::read_to_string(&readme_path)?;
        crate::ops::graph_cmd::updated_readme(ctx, &text)
            .context("new-service: README.md's diagram blocks cannot be regenerated")?;
    }
    Ok(Plan { files, chart_dir, edited_deps, gitops, readme })
}

/// A DNS-1123 label no longer than the value contract allows.
fn check_name(name: &str) -> Result<()> {
    // The rule every matrix service name follows, plus what a new one also
    // needs: a leading letter and room in the value contract's names.
    let valid = crate::core::names::is_dns_label(name)
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if valid {
        Ok(())
    } else {
        exit::usage(format!(
            "new-service {name:?}: not a valid service name; use a DNS-1123 label: lowercase letters, digits and '-', starting with a letter, ending with a letter or digit, at most {MAX_NAME} characters (e.g. loadgen)"
        ))
    }
}

fn uses(chart: &Chart, library: &Chart) -> bool {
    chart
        .meta
        .dependencies
        .iter()
        .any(|d| d.file_path().and_then(|p| chart.dir.join(p).canonicalize().ok()) == library.dir.canonicalize().ok())
}

fn image(args: &Opts, name: &str) -> Result<(String, String)> {
    let Some(image) = &args.image else {
        return Ok((format!("robotshop/rs-{name}"), FIRST_VERSION.to_string()));
    };
    // The tag follows the last ':' after the last '/', so a registry port is not a tag.
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(colon) if !image[slash + colon + 1..].is_empty() && &image[slash + colon + 1..] != "latest" => {
            Ok((image[..slash + colon].to_string(), image[slash + colon + 1..].to_string()))
        }
        _ => exit::usage(format!(
            "--image {image}: give REPOSITORY:TAG with a pinned tag (not latest), e.g. robotshop/rs-{name}:1.0.0"
        )),
    }
}

/// The `enum` of a property in a values.schema.json (empty when absent).
fn schema_enum(path: &Path, property: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let schema: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(schema
        .pointer(&format!("/properties/{property}/enum"))
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default())
}

/// `to` relative to the folder `from` (both relative to the root).
fn relative_path(from: &str, to: &str) -> String {
    let from: Vec<&str> = from.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let to: Vec<&str> = to.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to[common..]);
    parts.join("/")
}

/// The reference chart's files every service chart shares: the schema, the
/// templates (each one line: an include of the library), and .helmignore.
fn copied_files(ctx: &Context, repo: &Repo, reference: &Chart) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    // The schema comes from the value contract's one source where the
    // library holds one (what `cargo xtask schema` writes), else from the
    // reference chart.
    let schema = match crate::core::contract::Contract::find(repo) {
        Some(contract) => contract.expected_copy()?,
        None => std::fs::read_to_string(reference.dir.join("values.schema.json"))
            .with_context(|| format!("cannot read {}/values.schema.json", reference.rel))?,
    };
    files.push(("values.schema.json".to_string(), schema));
    if let Ok(text) = std::fs::read_to_string(reference.dir.join(".helmignore")) {
        files.push((".helmignore".to_string(), text));
    }
    let templates = reference.dir.join("templates");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&templates)
        .with_context(|| format!("cannot read {}/templates", reference.rel))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path)?;
        let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        // Copying is only right when the template holds nothing of the
        // reference service itself: one include per non-empty line.
        let generic = text.lines().filter(|l| !l.trim().is_empty()).all(|l| {
            let l = l.trim();
            l.starts_with("{{") && l.ends_with("}}") && l.contains("include") && !l.contains(&reference.name)
        });
        if !generic {
            anyhow::bail!(
                "{}/templates/{file} is not a one-line include of the library chart, so it cannot serve as the template of a new chart",
                crate::core::model::relative(&ctx.root, &reference.dir)
            );
        }
        files.push((format!("templates/{file}"), text));
    }
    Ok(files)
}

/// What the generated chart and matrix entry say about the new service.
struct NewService {
    name: String,
    port: u16,
    workload: Workload,
    profile: String,
    image_repository: String,
    image_tag: String,
    health: String,
    /// (name, host, port) of each dependency.
    deps: Vec<(String, String, u16)>,
    chart_dir: String,
    library_version: String,
    library_path: String,
}

impl NewService {
    /// `CATALOGUE_HOST: catalogue` for each dependency.
    fn env(&self) -> Vec<(String, String)> {
        self.deps
            .iter()
            .map(|(name, host, _)| (format!("{}_HOST", name.to_ascii_uppercase().replace('-', "_")), host.clone()))
            .collect()
    }

    fn chart_yaml(&self) -> String {
        format!(
            "apiVersion: v2\nname: {name}\ndescription: \"Robot-Shop {name} (generated by cargo xtask new-service; describe what it does).\"\ntype: application\nversion: {FIRST_VERSION}\nappVersion: \"{tag}\"\nkeywords:\n  - robot-shop\ndependencies:\n  - name: common\n    version: {lib}\n    repository: \"file://{path}\"\n",
            name = self.name,
            tag = self.image_tag,
            lib = self.library_version,
            path = self.library_path,
        )
    }

    fn values_yaml(&self) -> String {
        let name = &self.name;
        let port = self.port;
        let env = if self.env().is_empty() {
            "env: {}\n".to_string()
        } else {
            let mut text = "env:\n".to_string();
            for (var, host) in self.env() {
                text.push_str(&format!("  {var}: {}\n", quote(&host)));
            }
            text
        };
        let depends = if self.deps.is_empty() {
            "dependsOn: {}\n".to_string()
        } else {
            let mut text = "dependsOn:\n".to_string();
            for (dep, host, port) in &self.deps {
                text.push_str(&format!("  {dep}:\n    host: {host}\n    port: {port}\n"));
            }
            text
        };
        let stateful = self.workload == Workload::Statefulset;
        format!(
            r#"# Default values of the {name} chart, generated by `cargo xtask new-service`.
#
# Every chart under charts/ takes the same keys (the value contract), rendered by the library
# chart; values.schema.json rejects wrong types and unknown keys. These defaults suit a
# development cluster; the umbrella chart overrides them per environment. Keep
# service-matrix.yaml in step: `cargo xtask lint` compares the two.

# name is the name of every resource and the host name other services use.
name: {name}
# component is the app.kubernetes.io/component label: frontend, backend or worker.
component: backend
# partOf is the app.kubernetes.io/part-of label.
partOf: robot-shop
# profile picks the default resources: nodejs, java, python, nginx, php or go.
profile: {profile}
# replicaCount is the number of pods (the HPA's floor when autoscaling.enabled).
replicaCount: 1

image:
  # image.repository is the image of this service.
  repository: {repository}
  # image.tag is pinned; an empty tag or "latest" fails the render.
  tag: {tag}
  # image.pullPolicy: Always, IfNotPresent or Never; "" takes global.imagePullPolicy.
  pullPolicy: ""

# containerPort is the port the process listens on, named "http".
containerPort: {port}

service:
  # service.enabled renders the Service {name}.
  enabled: true
  # service.type: ClusterIP, NodePort or LoadBalancer.
  type: ClusterIP
  # service.port is the Service port; keep it equal to containerPort.
  port: {port}

# probes: liveness restarts the container, readiness takes it out of the Service, startup holds
# both back while a slow service starts.
probes:
  liveness:
    enabled: true
    httpGet:
      path: {health}
    initialDelaySeconds: 30
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
  readiness:
    enabled: true
    httpGet:
      path: {health}
    initialDelaySeconds: 10
    periodSeconds: 5
    timeoutSeconds: 3
    failureThreshold: 3
    successThreshold: 1
  startup:
    enabled: false
    httpGet:
      path: {health}
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 30

# resources are merged over the profile's defaults.
resources: {{}}

# env is the non-sensitive environment (a ConfigMap loaded with envFrom): the host of each
# dependency.
{env}
# secretEnv is the sensitive environment (a Secret); never commit real values. existingSecret
# names a Secret managed outside the chart; externalSecret.data has the External Secrets
# Operator make one from the environment's store (global.externalSecrets). Set one of the three.
secretEnv: {{}}
existingSecret: ""
externalSecret:
  secretStoreRef:
    kind: ""
    name: ""
  refreshInterval: ""
  data: {{}}

# dependsOn maps each dependency to the host and port {name} uses: an init container waits for
# it and the NetworkPolicy allows egress to it.
{depends}
waitImage:
  # waitImage.repository is the image of the wait-for-dependency init containers (it needs nc).
  repository: busybox
  # waitImage.tag is pinned.
  tag: "1.37.0"

networkPolicy:
  # networkPolicy.enabled renders a zero-trust NetworkPolicy.
  enabled: true
  # networkPolicy.allowedClients maps each service that calls {name} to {{}}.
  allowedClients: {{}}
  # networkPolicy.allowIngressController admits the ingress controller's pods.
  allowIngressController: false
  # networkPolicy.ingressControllerNamespace is the namespace of the ingress controller.
  ingressControllerNamespace: ingress-nginx
  # networkPolicy.ingressControllerPodLabels narrows the admitted pods of that namespace.
  ingressControllerPodLabels: {{}}
  # networkPolicy.dnsNamespace is where the cluster DNS runs.
  dnsNamespace: kube-system
  # networkPolicy.allowedExternal maps a name to {{cidr, except, port}}: egress outside the cluster.
  allowedExternal: {{}}

autoscaling:
  # autoscaling.enabled renders a HorizontalPodAutoscaler.
  enabled: false
  minReplicas: 2
  maxReplicas: 5
  targetCPUUtilizationPercentage: 70
  targetMemoryUtilizationPercentage: 80

podDisruptionBudget:
  # podDisruptionBudget.enabled renders a PodDisruptionBudget; set exactly one of minAvailable
  # and maxUnavailable.
  enabled: false
  minAvailable: null
  maxUnavailable: 1

serviceAccount:
  # serviceAccount.create renders a ServiceAccount of its own.
  create: true
  name: ""
  annotations: {{}}
  # serviceAccount.automountToken mounts the Kubernetes API token; off unless the service calls
  # the API.
  automountToken: false

ingress:
  # ingress.enabled renders an Ingress; only web is exposed.
  enabled: false
  className: nginx
  host: robot-shop.local
  path: /
  pathType: Prefix
  annotations: {{}}
  tls:
    enabled: false
    secretName: ""

persistence:
  # persistence.enabled runs the service as a StatefulSet with a volume per pod.
  enabled: {stateful}
  size: 1Gi
  storageClass: ""
  accessMode: ReadWriteOnce
  mountPath: /data

# writablePaths maps a volume name to a path where the image writes (the root filesystem is
# read-only).
writablePaths:
  tmp: /tmp

# podSecurityContext is merged over the pod defaults (runAsNonRoot, seccomp RuntimeDefault).
podSecurityContext:
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
# securityContext is merged over the container defaults (read-only root, no escalation, no
# capabilities).
securityContext: {{}}

podAnnotations: {{}}
nodeSelector: {{}}
tolerations: []
affinity: {{}}
"#,
            profile = self.profile,
            repository = self.image_repository,
            tag = quote(&self.image_tag),
            health = self.health,
        )
    }

    /// The matrix entry, as lines without the list's indentation.
    fn matrix_entry_lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("- name: {}", self.name),
            format!("  type: {}", self.workload.as_str()),
            "  tier: backend".to_string(),
            format!("  port: {}", self.port),
            format!("  host: {}", self.name),
            format!("  language: {}", self.profile),
            format!("  image: {}", quote(&format!("{}:{}", self.image_repository, self.image_tag))),
            format!("  health: {}", quote(&self.health)),
            "  exposed: false".to_string(),
        ];
        if self.deps.is_empty() {
            lines.push("  dependencies: []".into());
            lines.push("  env_vars: []".into());
        } else {
            lines.push("  dependencies:".into());
            lines.extend(self.deps.iter().map(|(d, _, _)| format!("    - {d}")));
            lines.push("  env_vars:".into());
            lines.extend(self.env().iter().map(|(var, host)| format!("    - {var}: {}", quote(host))));
        }
        lines.push("  chart_source: local".into());
        lines.push(format!("  chart: {}", self.chart_dir));
        lines
    }

    /// The same entry as the parser reads it, to verify the edit.
    fn matrix_entry_value(&self) -> Value {
        yaml_serde::from_str(&self.matrix_entry_lines().join("\n"))
            .map(|v: Value| match v {
                Value::Sequence(mut items) if items.len() == 1 => items.remove(0),
                other => other,
            })
            .unwrap_or(Value::Null)
    }
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// Appends `value` to the sequence at `path` of a parsed document.
fn push_to(document: &mut Value, path: &[&str], value: Value) -> bool {
    let mut current = document;
    for key in path {
        match current.as_mapping_mut().and_then(|m| m.get_mut(*key)) {
            Some(next) => current = next,
            None => return false,
        }
    }
    match current {
        Value::Sequence(items) => {
            items.push(value);
            true
        }
        _ => false,
    }
}

fn refuse(file: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!("new-service: cannot edit {file} without rewriting it ({why}); nothing was written: add the entry by hand, or reshape the file as a block list")
}

/// Proves an edit (see [`crate::util::yaml_edit::verify`]).
fn verify(before: &str, after: &str, file: &str, change: impl FnOnce(&mut Value) -> bool) -> Result<()> {
    yaml_edit::verify(before, after, file, change).map_err(|why: String| refuse(file, &why))
}

/// Appends an item to the block sequence under a top-level key, after its
/// last item, with the indentation of its first item.
fn append_to_sequence(
    text: &str,
    file: &str,
    key: &str,
    item: &[String],
    change: impl FnOnce(&mut Value) -> bool,
) -> Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = top_level_line(&lines, key).ok_or_else(|| refuse(file, &format!("no top-level `{key}:` line")))?;
    if !lines[start][key.len() + 1..].trim().is_empty() && !lines[start][key.len() + 1..].trim().starts_with('#') {
        return Err(refuse(file, &format!("`{key}:` is not a block list")));
    }
    let end = block_end(&lines, start);
    let first_item = lines[start + 1..=end].iter().find(|l| is_content(l)).copied();
    let item_indent = match first_item {
        Some(line) if line.trim_start().starts_with('-') => indent(line),
        Some(_) => return Err(refuse(file, &format!("`{key}:` is not a block list"))),
        None => 2,
    };
    // Keep the file's style: a blank line between entries when it has them.
    let spaced = lines[start + 1..=end].iter().any(|l| l.trim().is_empty());
    let pad = " ".repeat(item_indent);
    let mut out: Vec<String> = lines[..=end].iter().map(|l| l.to_string()).collect();
    if spaced {
        out.push(String::new());
    }
    out.extend(item.iter().map(|l| format!("{pad}{l}")));
    out.extend(lines[end + 1..].iter().map(|l| l.to_string()));
    let edited = join_lines(&out, text.ends_with('\n') || text.is_empty());
    verify(text, &edited, file, change)?;
    Ok(edited)
}

/// Adds `name: {enabled: true}` to the umbrella's values, after the last
/// section of a service (so it sits with the services, not the data stores).
fn add_top_level_section(text: &str, file: &str, name: &str, services: &[String]) -> Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    let section = vec![
        format!("{name}:"),
        format!("  # {name}.enabled installs {name} (added by `cargo xtask new-service`)."),
        "  enabled: true".to_string(),
    ];
    let last_service = services.iter().filter_map(|s| top_level_line(&lines, s)).max();
    let mut out: Vec<String> = Vec::new();
    match last_service {
        Some(start) => {
            let end = block_end(&lines, start);
            out.extend(lines[..=end].iter().map(|l| l.to_string()));
            out.push(String::new());
            out.extend(section);
            out.extend(lines[end + 1..].iter().map(|l| l.to_string()));
        }
        None => {
            out.extend(lines.iter().map(|l| l.to_string()));
            if !out.is_empty() {
                out.push(String::new());
            }
            out.extend(section);
        }
    }
    let edited = join_lines(&out, true);
    verify(text, &edited, file, |v| {
        if v.is_null() {
            *v = Value::Mapping(Default::default());
        }
        let mut enabled = yaml_serde::Mapping::new();
        enabled.insert("enabled".into(), true.into());
        match v.as_mapping_mut() {
            Some(map) => map.insert(name.into(), Value::Mapping(enabled)).is_none(),
            None => false,
        }
    })?;
    Ok(edited)
}

/// Adds `client: {}` to `networkPolicy.allowedClients` of a service chart's values.
fn add_allowed_client(text: &str, file: &str, client: &str) -> Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = top_level_line(&lines, "networkPolicy").ok_or_else(|| refuse(file, "no top-level `networkPolicy:`"))?;
    let end = block_end(&lines, start);
    let child = lines[start + 1..=end].iter().find(|l| is_content(l)).map(|l| indent(l)).unwrap_or(2);
    let at = (start + 1..=end)
        .find(|&i| indent(lines[i]) == child && lines[i].trim_start().starts_with("allowedClients:"))
        .ok_or_else(|| refuse(file, "no `networkPolicy.allowedClients:`"))?;
    let rest = lines[at].trim_start()["allowedClients:".len()..].to_string();
    let (value, comment) = match rest.find(" #") {
        Some(i) => (rest[..i].trim().to_string(), rest[i..].to_string()),
        None => (rest.trim().to_string(), String::new()),
    };
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match value.as_str() {
        "{}" => {
            out[at] = format!("{}allowedClients:{comment}", " ".repeat(child));
            out.insert(at + 1, format!("{}{client}: {{}}", " ".repeat(child + 2)));
        }
        "" => {
            // A block map: after its last entry.
            let mut last = at;
            let mut entry_indent = None;
            for (i, line) in lines.iter().enumerate().skip(at + 1) {
                if !is_content(line) {
                    continue;
                }
                if indent(line) <= child {
                    break;
                }
                entry_indent.get_or_insert(indent(line));
                last = i;
            }
            let Some(entry_indent) = entry_indent else {
                return Err(refuse(file, "`networkPolicy.allowedClients:` has no entries and no `{}`"));
            };
            out.insert(last + 1, format!("{}{client}: {{}}", " ".repeat(entry_indent)));
        }
        _ => return Err(refuse(file, "`networkPolicy.allowedClients` is written in flow style")),
    }
    let edited = join_lines(&out, text.ends_with('\n'));
    verify(text, &edited, file, |v| {
        let Some(clients) = v.get_mut("networkPolicy").and_then(|n| n.get_mut("allowedClients")) else { return false };
        if clients.is_null() {
            *clients = Value::Mapping(Default::default());
        }
        match clients.as_mapping_mut() {
            Some(map) => map.insert(client.into(), Value::Mapping(Default::default())).is_none(),
            None => false,
        }
    })?;
    Ok(edited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_dns_labels() {
        for bad in ["../evil", "Bad_Name", "", "-a", "a-", "1abc", &"a".repeat(51)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["loadgen", "a", "web-2"] {
            assert!(check_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_path("helm/robot-shop", "charts/loadgen"), "../../charts/loadgen");
        assert_eq!(relative_path("charts/loadgen", "charts/_common"), "../_common");
    }

    #[test]
    fn allowed_clients_are_added_in_both_styles() {
        let flow = "networkPolicy:\n  # c\n  enabled: true\n  allowedClients: {}\n  other: 1\nnext: 2\n";
        let out = add_allowed_client(flow, "v.yaml", "loadgen").unwrap();
        assert!(out.contains("  allowedClients:\n    loadgen: {}\n  other: 1"), "{out}");
        let block = "networkPolicy:\n  allowedClients:\n    web: {}\n    # trailing comment\n  other: 1\n";
        let out = add_allowed_client(block, "v.yaml", "loadgen").unwrap();
        assert!(out.contains("    web: {}\n    loadgen: {}\n    # trailing comment"), "{out}");
    }

    #[test]
    fn sequences_grow_at_their_end_keeping_comments() {
        let text = "# head\nitems:\n  - a: 1\n\n  - a: 2\n# about next\nnext: 1\n";
        let out = append_to_sequence(text, "f.yaml", "items", &["- a: 3".to_string()], |v| {
            push_to(v, &["items"], yaml_serde::from_str("a: 3").unwrap())
        })
        .unwrap();
        assert_eq!(out, "# head\nitems:\n  - a: 1\n\n  - a: 2\n\n  - a: 3\n# about next\nnext: 1\n");
    }
}
