//! Checks that the service matrix and the charts agree.
//!
//! `service-matrix.yaml` is the inventory people read (and the source of the
//! GitOps files and the runtime diagram); the charts are what is deployed.
//! Nothing forces the two to agree, so this module compares them and reports
//! every disagreement, each naming the service, the file and both values.
//! It runs as part of `cargo xtask lint` (through [`check_repository`]).
//!
//! What is compared, and why:
//! - inventory: every matrix service has a chart of this repository or is a
//!   dependency of the umbrella chart (the Bitnami stores, at the version the
//!   matrix states); every service chart and umbrella dependency is in the
//!   matrix;
//! - each service chart's defaults (`charts/<name>/values.yaml`, the level
//!   the matrix describes): name, host, port, image, health path, tier,
//!   language, workload type, environment variables;
//! - runtime edges: `dependsOn` (one init container and one NetworkPolicy
//!   egress rule per entry) equals the matrix's dependencies, with each
//!   dependency's host and port (and `targetPort`, the pods' port, where the
//!   matrix gives a `container_port`); `networkPolicy.allowedClients` equals the
//!   services that depend on this one, and the ingress controller is admitted
//!   exactly when the service is exposed. An edge in the matrix without both
//!   rules is traffic the NetworkPolicies drop; a rule without an edge is a
//!   hole in the zero-trust policy;
//! - hosts in environment variables (`MONGO_URL`, `CART_ENDPOINT`, ...): each
//!   host a service dials must belong to one of its dependencies, on that
//!   dependency's port;
//! - the umbrella's values files (levels 2 and 3) may change hosts (prod's
//!   `mongodb-headless`) but must not add or remove an edge or change a port.
//!
//! The Bitnami charts' own NetworkPolicies admit every pod of the namespace
//! by default; where an umbrella narrows one (`<store>.networkPolicy.
//! extraIngress`), the services it admits must be the store's clients in the
//! matrix. Otherwise those charts are checked for version and image only.
//!
//! Each point is compared only when the chart's values have the key it is
//! about (`containerPort`, `dependsOn`, `networkPolicy.allowedClients`, ...):
//! the Robot-Shop charts have them all (their schema requires them), and a
//! monorepo whose charts follow other conventions is not failed for keys its
//! charts never had.

use std::collections::{BTreeMap, BTreeSet};

use yaml_serde::Value;

use crate::core::context::Context;
use crate::core::matrix::{scalar_text, Service, ServiceMatrix};
use crate::core::model::{Chart, ChartKind, Repo};
use crate::core::outcome::{RepoCheck, Status};

/// The repository-level checks lint runs: the matrix on its own, then the
/// matrix against the charts, and what the services read against the seeds.
pub fn check_repository(ctx: &Context, repo: &Repo) -> Vec<RepoCheck> {
    let file = ctx.config.service_matrix.clone();
    let matrix = match ServiceMatrix::load(&ctx.root, &file) {
        Ok(Some(matrix)) => matrix,
        Ok(None) => return Vec::new(),
        Err(err) => {
            return vec![RepoCheck {
                check: "service-matrix".into(),
                file,
                status: Status::Failed,
                message: format!("{err:#}"),
            }];
        }
    };
    let mut problems = matrix.problems(&file);
    if problems.is_empty() {
        problems.extend(check(ctx, repo, &matrix, &file));
    }
    let status = Status::from_ok(problems.is_empty());
    // What the services read against what the umbrella seeds (`seeds`).
    let seeds = crate::ops::seeds::check(ctx, repo, &matrix, &file);
    let seeds = RepoCheck {
        check: "seeds".into(),
        file: file.clone(),
        status: Status::from_ok(seeds.is_empty()),
        message: seeds.join("\n"),
    };
    vec![RepoCheck { check: "service-matrix".into(), file, status, message: problems.join("\n") }, seeds]
}

/// Every disagreement, each naming the service, the file and both values.
pub fn check(ctx: &Context, repo: &Repo, matrix: &ServiceMatrix, file: &str) -> Vec<String> {
    let mut checker = Checker { ctx, repo, matrix, file, problems: Vec::new() };
    checker.inventory();
    for service in matrix.services.iter().filter(|s| !s.is_infrastructure()) {
        checker.service_chart(service);
    }
    for umbrella in repo.charts.iter().filter(|c| c.kind == ChartKind::Umbrella) {
        checker.umbrella_values(umbrella);
    }
    checker.problems
}

struct Checker<'a> {
    ctx: &'a Context,
    repo: &'a Repo,
    matrix: &'a ServiceMatrix,
    /// The matrix file as shown in messages.
    file: &'a str,
    problems: Vec<String>,
}

impl<'a> Checker<'a> {
    fn problem(&mut self, service: &str, message: String) {
        self.problems.push(format!("{service}: {message}"));
    }

    /// The chart of a service of this repository: the folder the matrix
    /// names in `chart:`, else the chart with the service's name.
    fn chart_of(&self, service: &Service) -> Option<&'a Chart> {
        match service.chart.as_deref() {
            Some(folder) => self.repo.charts.iter().find(|c| c.rel == folder.trim_end_matches('/')),
            None => self.repo.chart(&service.name),
        }
    }

    fn umbrellas(&self) -> Vec<&'a Chart> {
        self.repo.charts.iter().filter(|c| c.kind == ChartKind::Umbrella).collect()
    }

    /// Every service has a chart (or an umbrella dependency), and every
    /// service chart and umbrella dependency is a service of the matrix.
    fn inventory(&mut self) {
        let file = self.file;
        let umbrellas = self.umbrellas();
        for service in &self.matrix.services {
            let name = service.name.as_str();
            // The umbrella dependency standing for this service (by alias or name).
            let in_umbrella: Vec<(&Chart, &crate::core::model::Dependency)> = umbrellas
                .iter()
                .flat_map(|u| u.meta.dependencies.iter().map(move |d| (*u, d)))
                .filter(|(_, d)| d.alias.as_deref().unwrap_or(&d.name) == name)
                .collect();
            if service.is_infrastructure() {
                match in_umbrella.first() {
                    None => self.problem(
                        name,
                        format!(
                            "{file} lists it as a {} chart, but no umbrella chart ({}) depends on it: add it to the umbrella's dependencies",
                            service.chart_source.as_deref().unwrap_or("third-party"),
                            names(&umbrellas)
                        ),
                    ),
                    Some((umbrella, dep)) => {
                        if dep.remote_repository().is_none() {
                            self.problem(
                                name,
                                format!(
                                    "{}/Chart.yaml takes it from {:?}, but {file} says chart_source {:?} (a published chart)",
                                    umbrella.rel,
                                    dep.repository.as_deref().unwrap_or_default(),
                                    service.chart_source.as_deref().unwrap_or_default()
                                ),
                            );
                        }
                        self.version(service, umbrella, dep);
                    }
                }
                continue;
            }
            let Some(chart) = self.chart_of(service) else {
                let wanted = service.chart.clone().unwrap_or_else(|| format!("a chart named {name}"));
                self.problem(
                    name,
                    format!("{file} says its chart is {wanted}, which is not a chart of this repository (no readable Chart.yaml there): create it with `cargo xtask new-service` or fix `chart:`"),
                );
                continue;
            };
            if chart.name != service.name {
                self.problem(
                    name,
                    format!(
                        "{}/Chart.yaml names the chart {:?}, {file} names the service {name:?}",
                        chart.rel, chart.name
                    ),
                );
            }
            // A service of this repository needs its chart, not an umbrella
            // entry (a monorepo may deploy some charts on their own). Its
            // version is not compared either: `cargo xtask bump` raises it in
            // the umbrella, and the matrix would then fail lint until edited by
            // hand. The version that decides a deployment, a published store
            // chart's, is compared above.
        }

        // The other direction: charts and umbrella dependencies the matrix does not know.
        let known: BTreeSet<&str> = self.matrix.services.iter().map(|s| s.name.as_str()).collect();
        let charted: BTreeSet<&str> = self
            .matrix
            .services
            .iter()
            .filter(|s| !s.is_infrastructure())
            .filter_map(|s| self.chart_of(s).map(|c| c.rel.as_str()))
            .collect();
        for chart in self.repo.charts.iter().filter(|c| c.kind == ChartKind::Application) {
            if !charted.contains(chart.rel.as_str()) {
                self.problem(
                    &chart.name,
                    format!("{}/Chart.yaml is a service chart, but {file} has no service for it: add an entry (`cargo xtask new-service` does both)", chart.rel),
                );
            }
        }
        for umbrella in &umbrellas {
            for dep in &umbrella.meta.dependencies {
                let name = dep.alias.as_deref().unwrap_or(&dep.name);
                if !known.contains(name) {
                    self.problem(
                        name,
                        format!("{}/Chart.yaml depends on it, but {file} has no service {name:?}: add it to the matrix or remove the dependency", umbrella.rel),
                    );
                }
            }
        }
    }

    /// `chart_version` against the version the umbrella pins.
    fn version(&mut self, service: &Service, umbrella: &Chart, dep: &crate::core::model::Dependency) {
        let pinned = dep.version.as_deref().unwrap_or_default();
        match service.chart_version.as_deref() {
            Some(version) if version == pinned => {}
            Some(version) => self.problem(
                &service.name,
                format!("chart version: {}/Chart.yaml pins {pinned}, {} says chart_version {version}", umbrella.rel, self.file),
            ),
            None => self.problem(
                &service.name,
                format!("chart version: {}/Chart.yaml pins {pinned}, {} has no chart_version: add `chart_version: {pinned}`", umbrella.rel, self.file),
            ),
        }
    }

    /// One service chart's defaults against its matrix entry.
    fn service_chart(&mut self, service: &Service) {
        let Some(chart) = self.chart_of(service) else { return };
        let shown = format!("{}/values.yaml", chart.rel);
        let values: Value = match crate::util::yaml::load(&chart.dir.join("values.yaml"), &shown) {
            Ok(values) => values,
            Err(err) => return self.problem(&service.name, format!("cannot compare with {}: {err:#}", self.file)),
        };
        let name = service.name.as_str();
        let file = self.file;
        let differ = |this: &mut Self, what: &str, key: &str, chart_value: String, matrix_value: String| {
            this.problem(name, format!("{what}: {shown} {key} is {chart_value}, {file} says {matrix_value}"));
        };

        // Each point is compared only when the chart's values have the key it
        // is about: charts that follow the value contract have them all, and a
        // monorepo whose charts follow other conventions is not failed for
        // keys it never had.
        let has = |path: &[&str]| lookup(&values, path).is_some();

        // Identity and shape.
        let chart_name = text_at(&values, &["name"]);
        if has(&["name"]) && chart_name.as_deref() != Some(name) {
            differ(self, "name", "name", show_opt(&chart_name), name.to_string());
        }
        let service_enabled = bool_at(&values, &["service", "enabled"]).unwrap_or(false);
        if has(&["service", "enabled"]) {
            match service.host() {
                Some(host) if !service_enabled => {
                    differ(self, "host", "service.enabled", "false (no Service to dial)".into(), format!("host {host}"))
                }
                Some(host) if has(&["name"]) && chart_name.as_deref() != Some(host.as_str()) => {
                    differ(self, "host", "name (the Service name)", show_opt(&chart_name), format!("host {host}"))
                }
                None if service_enabled => {
                    differ(self, "host", "service.enabled", "true".into(), "host null (no Service)".into())
                }
                _ => {}
            }
        }
        let matrix_port = service.port.map(|p| p.to_string());
        let pod_port = container_port(service).map(|p| p.to_string());
        for key in [&["containerPort"][..], &["service", "port"][..]] {
            // service.port only matters when the Service exists.
            if !has(key) || (key.len() == 2 && !service_enabled) {
                continue;
            }
            let chart_port = text_at(&values, key);
            // The pods listen on container_port when the matrix gives one (a Service that maps
            // its port to another), the Service on port.
            let (expected, said) = if key.len() == 1 && pod_port != matrix_port {
                (&pod_port, format!("container_port {}", show_opt(&pod_port)))
            } else {
                (&matrix_port, format!("port {}", show_opt(&matrix_port)))
            };
            if &chart_port != expected {
                differ(self, "port", &key.join("."), show_opt(&chart_port), said);
            }
        }
        if let (Some(image), true) = (&service.image, has(&["image", "repository"])) {
            let repository = text_at(&values, &["image", "repository"]).unwrap_or_default();
            let tag = text_at(&values, &["image", "tag"]).unwrap_or_default();
            let chart_image = format!("{repository}:{tag}");
            if &chart_image != image {
                differ(self, "image", "image", chart_image, format!("image {image}"));
            }
        }
        if bool_at(&values, &["probes", "liveness", "enabled"]).unwrap_or(false) {
            let liveness_path = text_at(&values, &["probes", "liveness", "httpGet", "path"]);
            let health = service.health.clone();
            if liveness_path != health {
                differ(
                    self,
                    "health",
                    "probes.liveness.httpGet.path",
                    show_opt(&liveness_path),
                    format!("health {}", show_opt(&health)),
                );
            }
        }
        if let (Some(tier), true) = (&service.tier, has(&["component"])) {
            let component = text_at(&values, &["component"]);
            if component.as_deref() != Some(tier.as_str()) {
                differ(self, "tier", "component", show_opt(&component), format!("tier {tier}"));
            }
        }
        if let (Some(language), true) = (&service.language, has(&["profile"])) {
            let profile = text_at(&values, &["profile"]);
            if profile.as_deref() != Some(language.as_str()) {
                differ(self, "language", "profile", show_opt(&profile), format!("language {language}"));
            }
        }
        if let (Some(workload), true) = (&service.workload, has(&["persistence", "enabled"])) {
            let stateful = bool_at(&values, &["persistence", "enabled"]).unwrap_or(false);
            let chart_kind = if stateful { "statefulset" } else { "deployment" };
            if workload != chart_kind {
                differ(
                    self,
                    "type",
                    "persistence.enabled",
                    format!("{stateful} (a {chart_kind})"),
                    format!("type {workload}"),
                );
            }
        }

        if has(&["env"]) {
            self.env(service, &shown, &values);
        }
        self.edges(service, &shown, &values);
    }

    /// The matrix's env_vars against the chart's `env`, both ways, and every
    /// host the service dials against its dependencies.
    fn env(&mut self, service: &Service, shown: &str, values: &Value) {
        let name = service.name.as_str();
        let chart_env = string_map(lookup(values, &["env"]));
        let secret_env = string_map(lookup(values, &["secretEnv"]));
        let listed = service.env_pairs();
        for (var, expected) in &listed {
            match (chart_env.get(var).or_else(|| secret_env.get(var)), expected) {
                (None, _) => self.problem(
                    name,
                    format!(
                        "env {var}: {shown} env has no {var}, {} lists it{}",
                        self.file,
                        expected.as_ref().map(|v| format!(" as {v:?}")).unwrap_or_default()
                    ),
                ),
                (Some(actual), Some(expected)) if actual != expected => self.problem(
                    name,
                    format!("env {var}: {shown} env.{var} is {actual:?}, {} says {expected:?}", self.file),
                ),
                _ => {}
            }
        }
        let listed_names: BTreeSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
        for var in chart_env.keys().filter(|v| !listed_names.contains(v.as_str())) {
            self.problem(
                name,
                format!("env {var}: {shown} sets env.{var}, {} does not list it in env_vars: add it there", self.file),
            );
        }
        let mut all: Vec<(String, String)> = chart_env.into_iter().collect();
        all.extend(secret_env);
        self.hosts(service, shown, &all, true);
    }

    /// Each host in the environment must be one of the service's
    /// dependencies, on its port; `exact` also asks for the matrix's host
    /// name (the chart defaults), while environment files may use another
    /// Service of the same dependency (prod's `mongodb-headless`).
    fn hosts(&mut self, service: &Service, shown: &str, env: &[(String, String)], exact: bool) {
        let file = self.file;
        for (var, value) in env {
            for (host, port) in hosts_in(var, value) {
                let Some(target) = self.service_for_host(&host) else { continue };
                if target.name == service.name {
                    continue;
                }
                if !service.dependencies.contains(&target.name) {
                    self.problem(
                        &service.name,
                        format!(
                            "env {var}: {shown} dials {host}{}, which is not among its dependencies in {file} [{}]: add it there (the NetworkPolicy drops this traffic otherwise)",
                            if host == target.name { String::new() } else { format!(" (a Service of {})", target.name) },
                            service.dependencies.join(", ")
                        ),
                    );
                    continue;
                }
                if exact {
                    if let Some(expected) = target.host() {
                        if host != expected {
                            self.problem(
                                &service.name,
                                format!(
                                    "env {var}: {shown} dials host {host}, {file} says {}'s host is {expected}",
                                    target.name
                                ),
                            );
                        }
                    }
                }
                if let (Some(port), Some(expected)) = (port, target.port) {
                    if port != expected {
                        self.problem(
                            &service.name,
                            format!(
                                "env {var}: {shown} dials {host} on port {port}, {file} says {}'s port is {expected}",
                                target.name
                            ),
                        );
                    }
                }
            }
        }
    }

    /// The matrix service a host name belongs to: the one whose host or
    /// name it is, else one whose name prefixes a label of it (`mysql-primary`,
    /// `mongodb-0.mongodb-headless`: the other Services and pods the Bitnami
    /// charts create for a store).
    fn service_for_host(&self, host: &str) -> Option<&'a Service> {
        let services = &self.matrix.services;
        if let Some(exact) = services.iter().find(|s| s.host().as_deref() == Some(host) || s.name == host) {
            return Some(exact);
        }
        host.split('.')
            .flat_map(|label| {
                services.iter().filter(move |s| label == s.name || label.starts_with(&format!("{}-", s.name)))
            })
            .max_by_key(|s| s.name.len())
    }

    /// dependsOn and the NetworkPolicy against the runtime edges.
    fn edges(&mut self, service: &Service, shown: &str, values: &Value) {
        let name = service.name.as_str();
        let file = self.file;
        let depends_on = lookup(values, &["dependsOn"]);
        let chart_deps: BTreeSet<String> = keys(depends_on);
        let matrix_deps: BTreeSet<String> = service.dependencies.iter().cloned().collect();
        let clients: BTreeSet<String> = self
            .matrix
            .services
            .iter()
            .filter(|s| s.dependencies.iter().any(|d| d == name))
            .map(|s| s.name.clone())
            .collect();
        if service.port.is_none() && !clients.is_empty() {
            self.problem(
                name,
                format!(
                    "clients: {file} says [{}] depend on it, but it listens on no port (port null)",
                    join(&clients)
                ),
            );
        }
        if depends_on.is_none() {
            // A chart without `dependsOn` has no init containers or egress
            // rules of the value contract to compare.
        } else if chart_deps != matrix_deps {
            self.problem(
                name,
                format!(
                    "dependencies: {shown} dependsOn (init containers and egress rules) is [{}], {file} says [{}]{}",
                    join(&chart_deps),
                    join(&matrix_deps),
                    fix_hint(&chart_deps, &matrix_deps, "dependsOn")
                ),
            );
        }
        for dep in chart_deps.intersection(&matrix_deps).filter(|_| depends_on.is_some()) {
            let Some(target) = self.matrix.service(dep) else { continue };
            let host = text_at(values, &["dependsOn", dep, "host"]);
            if host != target.host() {
                self.problem(
                    name,
                    format!(
                        "dependsOn.{dep}.host: {shown} says {}, {file} says {dep}'s host is {}",
                        show_opt(&host),
                        show_opt(&target.host())
                    ),
                );
            }
            let port = text_at(values, &["dependsOn", dep, "port"]);
            let expected = target.port.map(|p| p.to_string());
            if port != expected {
                self.problem(
                    name,
                    format!(
                        "dependsOn.{dep}.port: {shown} says {}, {file} says {dep}'s port is {}",
                        show_opt(&port),
                        show_opt(&expected)
                    ),
                );
            }
            // The egress rule allows the pods' port: targetPort when the dependency's Service
            // maps its port to another one, else port.
            let egress = text_at(values, &["dependsOn", dep, "targetPort"]).or_else(|| port.clone());
            let pod_port = container_port(target).map(|p| p.to_string());
            if port == expected && egress != pod_port {
                self.problem(
                    name,
                    format!(
                        "dependsOn.{dep}.targetPort: {shown} lets the egress rule allow port {}, {file} says {dep}'s pods listen on {}: set dependsOn.{dep}.targetPort to it",
                        show_opt(&egress),
                        show_opt(&pod_port)
                    ),
                );
            }
        }

        // Ingress side: who may connect to this service.
        let allowed: BTreeSet<String> = keys(lookup(values, &["networkPolicy", "allowedClients"]));
        if lookup(values, &["networkPolicy", "allowedClients"]).is_some() && allowed != clients {
            self.problem(
                name,
                format!(
                    "NetworkPolicy clients: {shown} networkPolicy.allowedClients is [{}], {file} says [{}] (the services whose dependencies name {name}){}",
                    join(&allowed),
                    join(&clients),
                    fix_hint(&allowed, &clients, "networkPolicy.allowedClients")
                ),
            );
        }
        let exposed = service.exposed.unwrap_or(false);
        let admits_ingress = bool_at(values, &["networkPolicy", "allowIngressController"]).unwrap_or(false);
        if lookup(values, &["networkPolicy", "allowIngressController"]).is_some() && exposed != admits_ingress {
            self.problem(
                name,
                format!("NetworkPolicy ingress: {shown} networkPolicy.allowIngressController is {admits_ingress}, {file} says exposed {exposed}"),
            );
        }
    }

    /// The umbrella's values files may change hosts but not the graph: no
    /// new or removed dependency or client, no other port.
    fn umbrella_values(&mut self, umbrella: &Chart) {
        let mut files = vec![format!("{}/values.yaml", umbrella.rel)];
        files.extend(umbrella.environments.iter().flat_map(|e| e.values_files.iter().cloned()));
        for shown in files {
            let path = self.ctx.root.join(&shown);
            if !path.is_file() {
                continue;
            }
            let values: Value = match crate::util::yaml::load(&path, &shown) {
                Ok(values) => values,
                Err(err) => {
                    self.problems.push(format!("{shown}: cannot compare with {}: {err:#}", self.file));
                    continue;
                }
            };
            for service in self.matrix.services.iter() {
                let Some(section) = lookup(&values, &[&service.name]) else { continue };
                if service.is_infrastructure() {
                    self.store_image(service, &shown, section);
                    self.store_clients(service, &shown, section);
                } else {
                    self.service_override(service, &shown, section);
                }
            }
        }
    }

    fn service_override(&mut self, service: &Service, shown: &str, section: &Value) {
        let name = service.name.as_str();
        let file = self.file;
        let prefix = |key: &str| format!("{name}.{key}");
        for key in [&["containerPort"][..], &["service", "port"][..]] {
            let expected_port =
                if key.len() == 1 { container_port(service) } else { service.port }.map(|p| p.to_string());
            if let Some(value) = lookup(section, key) {
                let port = scalar_text(value);
                if port != expected_port {
                    self.problem(
                        name,
                        format!(
                            "port: {shown} sets {} to {}, {file} says port {}",
                            prefix(&key.join(".")),
                            show_opt(&port),
                            show_opt(&expected_port)
                        ),
                    );
                }
            }
        }
        if let Some(Value::Mapping(map)) = lookup(section, &["dependsOn"]) {
            for (key, value) in map {
                let Some(dep) = scalar_text(key) else { continue };
                if !service.dependencies.contains(&dep) {
                    self.problem(
                        name,
                        format!(
                            "dependencies: {shown} adds {} , {file} does not list {dep} among its dependencies [{}]",
                            prefix(&format!("dependsOn.{dep}")),
                            service.dependencies.join(", ")
                        ),
                    );
                    continue;
                }
                if value.is_null() {
                    self.problem(
                        name,
                        format!(
                            "dependencies: {shown} removes {} (null), {file} lists {dep} as a dependency",
                            prefix(&format!("dependsOn.{dep}"))
                        ),
                    );
                    continue;
                }
                let Some(target) = self.matrix.service(&dep) else { continue };
                if let Some(host) = text_at(value, &["host"]) {
                    if self.service_for_host(&host).map(|s| s.name.as_str()) != Some(dep.as_str()) {
                        self.problem(name, format!("dependsOn.{dep}.host: {shown} sets {host}, which is not a Service of {dep} ({file} says {dep}'s host is {})", show_opt(&target.host())));
                    }
                }
                if let Some(port) = text_at(value, &["port"]) {
                    if Some(port.clone()) != target.port.map(|p| p.to_string()) {
                        self.problem(
                            name,
                            format!(
                                "dependsOn.{dep}.port: {shown} sets {port}, {file} says {dep}'s port is {}",
                                show_opt(&target.port.map(|p| p.to_string()))
                            ),
                        );
                    }
                }
            }
        }
        if let Some(Value::Mapping(map)) = lookup(section, &["networkPolicy", "allowedClients"]) {
            for (key, value) in map {
                let Some(client) = scalar_text(key) else { continue };
                let depends = self.matrix.service(&client).is_some_and(|c| c.dependencies.iter().any(|d| d == name));
                if value.is_null() && depends {
                    self.problem(name, format!("NetworkPolicy clients: {shown} removes {} (null), but {file} says {client} depends on {name}", prefix(&format!("networkPolicy.allowedClients.{client}"))));
                } else if !value.is_null() && !depends {
                    self.problem(name, format!("NetworkPolicy clients: {shown} admits {client} ({}), but {file} does not list {name} among {client}'s dependencies", prefix(&format!("networkPolicy.allowedClients.{client}"))));
                }
            }
        }
        let mut env = Vec::new();
        for key in ["env", "secretEnv"] {
            env.extend(string_map(lookup(section, &[key])));
        }
        let shown_env = format!("{shown} ({name}.env)");
        self.hosts(service, &shown_env, &env, false);
    }

    /// The services a data store's own NetworkPolicy admits (the Bitnami charts'
    /// `networkPolicy.extraIngress`, pods by `app.kubernetes.io/name`), where the
    /// umbrella sets it, against the services whose dependencies name the store.
    fn store_clients(&mut self, service: &Service, shown: &str, section: &Value) {
        let Some(rules) = lookup(section, &["networkPolicy", "extraIngress"]) else { return };
        let admitted: BTreeSet<String> = rules
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|rule| lookup(rule, &["from"]).and_then(Value::as_sequence).into_iter().flatten())
            .filter_map(|peer| text_at(peer, &["podSelector", "matchLabels", "app.kubernetes.io/name"]))
            .collect();
        let clients: BTreeSet<String> = self
            .matrix
            .services
            .iter()
            .filter(|s| s.dependencies.contains(&service.name))
            .map(|s| s.name.clone())
            .collect();
        if admitted != clients {
            self.problem(
                &service.name,
                format!(
                    "NetworkPolicy clients: {shown} {}.networkPolicy.extraIngress admits [{}], {} says [{}] depend on it{}",
                    service.name,
                    join(&admitted),
                    self.file,
                    join(&clients),
                    fix_hint(&admitted, &clients, &format!("{}.networkPolicy.extraIngress", service.name))
                ),
            );
        }
    }

    /// A data store's image as the umbrella sets it, against the matrix.
    fn store_image(&mut self, service: &Service, shown: &str, section: &Value) {
        let (Some(image), Some(repository), Some(tag)) =
            (&service.image, text_at(section, &["image", "repository"]), text_at(section, &["image", "tag"]))
        else {
            return;
        };
        let set = format!("{repository}:{tag}");
        if &set != image {
            self.problem(
                &service.name,
                format!("image: {shown} {}.image is {set}, {} says image {image}", service.name, self.file),
            );
        }
    }
}

/// The hosts (and ports, where given) an environment variable's value dials:
/// URLs (`mongodb://user:pw@a:27017,b:27017/db`), PDO-style DSNs
/// (`mysql:host=mysql;dbname=x`), `host:port`, and bare host names in
/// variables named `*_HOST`.
pub fn hosts_in(var: &str, value: &str) -> Vec<(String, Option<u16>)> {
    let value = value.trim();
    let mut found = Vec::new();
    let host_port = |text: &str| -> Option<(String, Option<u16>)> {
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => {
                (host, port.parse().ok())
            }
            _ => (text, None),
        };
        is_host_name(host).then(|| (host.to_ascii_lowercase(), port))
    };
    if let Some((_, rest)) = value.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        found.extend(authority.split(',').filter_map(&host_port));
    } else if value.contains("host=") {
        let params: BTreeMap<&str, &str> = value
            .split([';', ':'])
            .filter_map(|part| part.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        if let Some(host) = params.get("host").filter(|h| is_host_name(h)) {
            found.push((host.to_ascii_lowercase(), params.get("port").and_then(|p| p.parse().ok())));
        }
    } else if value.contains(':') {
        found.extend(host_port(value).filter(|(_, port)| port.is_some()));
    } else if var.ends_with("_HOST") {
        found.extend(host_port(value));
    }
    found
}

fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && text.chars().any(|c| c.is_ascii_alphabetic())
}

/// The port a service's pods listen on: `container_port` of the matrix when the Service maps
/// its port to another one, else `port`.
fn container_port(service: &Service) -> Option<u16> {
    match service.other.get("container_port") {
        Some(value) => scalar_text(value).and_then(|p| p.parse().ok()),
        None => service.port,
    }
}

/// `value[path[0]][path[1]]...`, if every step is a map key.
pub fn lookup<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    let mut current = value;
    for key in path {
        current = current.as_mapping()?.get(*key)?;
    }
    Some(current)
}

fn text_at(value: &Value, path: &[&str]) -> Option<String> {
    lookup(value, path).and_then(scalar_text)
}

fn bool_at(value: &Value, path: &[&str]) -> Option<bool> {
    lookup(value, path).and_then(Value::as_bool)
}

/// The keys of a map value whose entries are not null (a null entry is how
/// a values file removes a key).
fn keys(value: Option<&Value>) -> BTreeSet<String> {
    match value {
        Some(Value::Mapping(map)) => {
            map.iter().filter(|(_, v)| !v.is_null()).filter_map(|(k, _)| scalar_text(k)).collect()
        }
        _ => BTreeSet::new(),
    }
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    match value {
        Some(Value::Mapping(map)) => map.iter().filter_map(|(k, v)| Some((scalar_text(k)?, scalar_text(v)?))).collect(),
        _ => BTreeMap::new(),
    }
}

fn show_opt(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "null".to_string())
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn names(charts: &[&Chart]) -> String {
    if charts.is_empty() {
        "there is none".to_string()
    } else {
        charts.iter().map(|c| c.rel.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// "; add x to dependsOn; remove y from dependsOn".
fn fix_hint(chart: &BTreeSet<String>, matrix: &BTreeSet<String>, key: &str) -> String {
    let mut hint = String::new();
    let missing: Vec<&String> = matrix.difference(chart).collect();
    let extra: Vec<&String> = chart.difference(matrix).collect();
    if !missing.is_empty() {
        hint.push_str(&format!(
            "; the chart lacks {}",
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if !extra.is_empty() {
        hint.push_str(&format!(
            "; the matrix lacks {}",
            extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if !hint.is_empty() {
        hint.push_str(&format!(" (fix {key} or the matrix, whichever is wrong)"));
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::hosts_in;

    #[test]
    fn hosts_are_found_in_urls_dsns_and_host_vars() {
        assert_eq!(hosts_in("MONGO_URL", "mongodb://mongodb:27017/catalogue"), vec![("mongodb".into(), Some(27017))]);
        assert_eq!(
            hosts_in(
                "MONGO_URL",
                "mongodb://u:p@mongodb-0.mongodb-headless:27017,mongodb-1.mongodb-headless:27017/x?replicaSet=rs0"
            ),
            vec![
                ("mongodb-0.mongodb-headless".into(), Some(27017)),
                ("mongodb-1.mongodb-headless".into(), Some(27017))
            ]
        );
        assert_eq!(
            hosts_in("PDO_URL", "mysql:host=mysql;dbname=ratings;charset=utf8mb4"),
            vec![("mysql".into(), None)]
        );
        assert_eq!(hosts_in("CART_ENDPOINT", "cart:8080"), vec![("cart".into(), Some(8080))]);
        assert_eq!(hosts_in("REDIS_HOST", "redis-master"), vec![("redis-master".into(), None)]);
        assert_eq!(hosts_in("CATALOGUE_URL", "http://catalogue:8080/"), vec![("catalogue".into(), Some(8080))]);
        assert!(hosts_in("LOG_LEVEL", "debug").is_empty());
        assert!(hosts_in("DISPATCH_ERROR_PERCENT", "0").is_empty());
    }
}
