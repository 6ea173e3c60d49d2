//! The shop works when installed (issue #14), shown on the umbrella's renders
//! of dev, staging and prod (through the mirror of stand-ins, as `lint`
//! renders them):
//! - every pod template passes the Pod Security Standards' `restricted`
//!   profile, checked by rules of our own written from the published standard;
//! - web and ratings run as non-root on a read-only root filesystem, with the
//!   server configuration the chart provides;
//! - the seed scripts exist for every database the matrix names, are wired
//!   into the Bitnami values in every environment, and create (parsed with an
//!   SQL and a JavaScript parser, not searched for words) what the services
//!   read;
//! - the MySQL seed runs on a real MySQL-compatible server (go-mysql-server,
//!   built once from its Go module and cached), and the queries shipping and
//!   ratings make, logged in as the users the seed creates, return rows.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use support::{at, describe, run_ok, seq, str_at, xtask, Linted};
use yaml_serde::Value;

const ENVS: [&str; 3] = ["dev", "staging", "prod"];

/// One lint of the umbrella, shared by the tests of this file.
fn linted() -> &'static Linted {
    static LINTED: OnceLock<Linted> = OnceLock::new();
    LINTED.get_or_init(|| Linted::run(&["lint", "--chart", "robot-shop"], "the umbrella"))
}

fn umbrella(env: &str) -> Vec<Value> {
    linted().rendered("1.37.0", "robot-shop", env)
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| str_at(o, &["kind"]) == Some(kind) && str_at(o, &["metadata", "name"]) == Some(name))
}

/// Every pod template of a render: (kind/name, pod spec).
fn pod_specs(objects: &[Value]) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for object in objects {
        let kind = str_at(object, &["kind"]).unwrap_or_default();
        let name = str_at(object, &["metadata", "name"]).unwrap_or_default();
        let spec = match kind {
            "Pod" => at(object, &["spec"]),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "ReplicationController" => {
                at(object, &["spec", "template", "spec"])
            }
            "CronJob" => at(object, &["spec", "jobTemplate", "spec", "template", "spec"]),
            _ => None,
        };
        if let Some(spec) = spec {
            out.push((format!("{kind}/{name}"), spec));
        }
    }
    out
}

/// The Pod Security Standards' `restricted` profile (which includes
/// `baseline`), as published for Kubernetes 1.25 and later: every violation
/// of one pod spec, each naming the container and the field.
fn restricted_violations(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let pod_sc = spec.get("securityContext");
    let pod_bool = |key: &str| pod_sc.and_then(|s| s.get(key)).and_then(Value::as_bool);
    // baseline: host namespaces.
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(key).and_then(Value::as_bool) == Some(true) {
            out.push(format!("{key}: true"));
        }
    }
    // restricted: volume types.
    const VOLUMES: [&str; 8] =
        ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
    for volume in seq(spec.get("volumes")) {
        let map = volume.as_mapping().expect("volume is a map");
        let types: Vec<String> =
            map.keys().filter_map(Value::as_str).filter(|k| *k != "name").map(str::to_string).collect();
        for t in types.iter().filter(|t| !VOLUMES.contains(&t.as_str())) {
            out.push(format!("volume {}: type {t} is not allowed", str_at(volume, &["name"]).unwrap_or("?")));
        }
    }
    // baseline: sysctls outside the safe set.
    const SAFE_SYSCTLS: [&str; 8] = [
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
    ];
    for sysctl in seq(pod_sc.and_then(|s| s.get("sysctls"))) {
        let name = str_at(sysctl, &["name"]).unwrap_or_default();
        if !SAFE_SYSCTLS.contains(&name) {
            out.push(format!("sysctl {name} is not in the safe set"));
        }
    }
    let pod_seccomp = pod_sc.and_then(|s| str_at(s, &["seccompProfile", "type"]));
    if pod_seccomp == Some("Unconfined") {
        out.push("pod seccompProfile Unconfined".into());
    }
    if pod_sc.and_then(|s| s.get("runAsUser")).and_then(Value::as_u64) == Some(0) {
        out.push("pod runAsUser: 0".into());
    }
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|key| seq(spec.get(*key)))
        .collect::<Vec<_>>();
    for container in containers {
        let name = str_at(container, &["name"]).unwrap_or("?");
        let sc = container.get("securityContext");
        let get = |path: &[&str]| sc.and_then(|s| at(s, path));
        if get(&["privileged"]).and_then(Value::as_bool) == Some(true) {
            out.push(format!("{name}: privileged"));
        }
        for port in seq(container.get("ports")) {
            if port.get("hostPort").and_then(Value::as_u64).unwrap_or(0) != 0 {
                out.push(format!("{name}: hostPort"));
            }
        }
        if get(&["procMount"]).and_then(Value::as_str).is_some_and(|p| p != "Default") {
            out.push(format!("{name}: procMount"));
        }
        // restricted: privilege escalation, non-root, capabilities, seccomp.
        if get(&["allowPrivilegeEscalation"]).and_then(Value::as_bool) != Some(false) {
            out.push(format!("{name}: allowPrivilegeEscalation is not false"));
        }
        let non_root = get(&["runAsNonRoot"]).and_then(Value::as_bool).or(pod_bool("runAsNonRoot"));
        if non_root != Some(true) {
            out.push(format!("{name}: runAsNonRoot is not true (container or pod)"));
        }
        if get(&["runAsUser"]).and_then(Value::as_u64) == Some(0) {
            out.push(format!("{name}: runAsUser: 0"));
        }
        let drops: Vec<&str> = seq(get(&["capabilities", "drop"])).into_iter().filter_map(Value::as_str).collect();
        if !drops.contains(&"ALL") {
            out.push(format!("{name}: capabilities.drop lacks ALL"));
        }
        for add in seq(get(&["capabilities", "add"])).into_iter().filter_map(Value::as_str) {
            if add != "NET_BIND_SERVICE" {
                out.push(format!("{name}: capability {add} added"));
            }
        }
        let seccomp = get(&["seccompProfile", "type"]).and_then(Value::as_str).or(pod_seccomp);
        if !matches!(seccomp, Some("RuntimeDefault") | Some("Localhost")) {
            out.push(format!("{name}: seccompProfile is {seccomp:?}, not RuntimeDefault or Localhost"));
        }
    }
    out
}

#[test]
fn the_restricted_rules_catch_each_violation() {
    let bad: Value = yaml_serde::from_str(
        r#"
hostNetwork: true
securityContext: {runAsUser: 0, seccompProfile: {type: Unconfined}}
volumes: [{name: host, hostPath: {path: /}}]
containers:
  - name: app
    ports: [{containerPort: 80, hostPort: 80}]
    securityContext:
      privileged: true
      capabilities: {add: [SYS_ADMIN]}
"#,
    )
    .unwrap();
    let found = restricted_violations(&bad).join("\n");
    for expected in [
        "hostNetwork",
        "hostPath",
        "pod runAsUser: 0",
        "Unconfined",
        "app: privileged",
        "app: hostPort",
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "drop lacks ALL",
        "SYS_ADMIN",
    ] {
        assert!(found.contains(expected), "no violation mentions {expected:?}:\n{found}");
    }
    let good: Value = yaml_serde::from_str(
        r#"
securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
volumes: [{name: tmp, emptyDir: {}}]
containers:
  - name: app
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}
"#,
    )
    .unwrap();
    assert_eq!(restricted_violations(&good), Vec::<String>::new());
}

#[test]
fn every_pod_template_of_every_environment_passes_restricted() {
    for env in ENVS {
        let objects = umbrella(env);
        let pods = pod_specs(&objects);
        // The eight services and the four stores (prod's Redis as Sentinel nodes).
        assert!(pods.len() >= 12, "{env}: only {} pod templates", pods.len());
        let mut failures = Vec::new();
        for (what, spec) in &pods {
            for violation in restricted_violations(spec) {
                failures.push(format!("{env} {what}: {violation}"));
            }
        }
        assert!(failures.is_empty(), "Pod Security restricted is violated:\n{}", failures.join("\n"));
    }
}

#[test]
fn every_workload_is_non_root_without_escalation_or_added_capabilities_on_runtime_default() {
    for env in ENVS {
        for (what, spec) in pod_specs(&umbrella(env)) {
            let pod_sc = spec.get("securityContext");
            for container in seq(spec.get("initContainers")).into_iter().chain(seq(spec.get("containers"))) {
                let name = str_at(container, &["name"]).unwrap_or("?");
                let sc = container.get("securityContext");
                let field = |path: &[&str]| sc.and_then(|s| at(s, path)).or_else(|| pod_sc.and_then(|p| at(p, path)));
                assert_eq!(field(&["runAsNonRoot"]).and_then(Value::as_bool), Some(true), "{env} {what}/{name}");
                assert_eq!(
                    sc.and_then(|s| s.get("allowPrivilegeEscalation")).and_then(Value::as_bool),
                    Some(false),
                    "{env} {what}/{name}"
                );
                assert_eq!(
                    field(&["seccompProfile", "type"]).and_then(Value::as_str),
                    Some("RuntimeDefault"),
                    "{env} {what}/{name}"
                );
                let added: Vec<&str> = seq(sc.and_then(|s| at(s, &["capabilities", "add"])))
                    .into_iter()
                    .filter_map(Value::as_str)
                    .filter(|c| *c != "NET_BIND_SERVICE")
                    .collect();
                assert!(added.is_empty(), "{env} {what}/{name} adds {added:?}");
            }
        }
    }
}

#[test]
fn web_and_ratings_run_as_their_users_on_a_read_only_root_with_the_charts_configuration() {
    for env in ENVS {
        let objects = umbrella(env);
        for (name, uid, files) in [
            (
                "web",
                101,
                vec!["/etc/nginx/nginx.conf", "/etc/nginx/conf.d/default.conf", "/usr/share/nginx/html/eum.html"],
            ),
            ("ratings", 33, vec!["/etc/apache2/ports.conf", "/etc/apache2/sites-available/000-default.conf"]),
        ] {
            let workload = named(&objects, "Deployment", name).unwrap_or_else(|| panic!("{env}: no Deployment {name}"));
            let spec = at(workload, &["spec", "template", "spec"]).unwrap();
            assert_eq!(at(spec, &["securityContext", "runAsUser"]).and_then(Value::as_u64), Some(uid), "{env} {name}");
            let main = seq(spec.get("containers")).into_iter().find(|c| str_at(c, &["name"]) == Some(name)).unwrap();
            let sc = main.get("securityContext").unwrap();
            assert_eq!(sc.get("readOnlyRootFilesystem").and_then(Value::as_bool), Some(true), "{env} {name}");
            assert!(at(sc, &["capabilities", "add"]).is_none(), "{env} {name} adds capabilities");
            let mounts: BTreeMap<&str, &Value> =
                seq(main.get("volumeMounts")).into_iter().map(|m| (str_at(m, &["mountPath"]).unwrap(), m)).collect();
            for file in files {
                let mount = mounts.get(file).unwrap_or_else(|| panic!("{env} {name}: nothing mounted at {file}"));
                assert_eq!(str_at(mount, &["name"]), Some("config-files"), "{env} {name} {file}");
                assert_eq!(mount.get("readOnly").and_then(Value::as_bool), Some(true), "{env} {name} {file}");
            }
            // Every other mount is an emptyDir (writable) or the read-only files.
            let volumes: BTreeMap<&str, &Value> =
                seq(spec.get("volumes")).into_iter().map(|v| (str_at(v, &["name"]).unwrap(), v)).collect();
            for mount in mounts.values() {
                let volume = volumes[str_at(mount, &["name"]).unwrap()];
                assert!(
                    volume.get("emptyDir").is_some() || volume.get("configMap").is_some(),
                    "{env} {name}: {mount:?}"
                );
            }
            assert!(named(&objects, "ConfigMap", &format!("{name}-files")).is_some(), "{env}: no {name}-files");
        }
        let ratings = named(&objects, "Service", "ratings").unwrap();
        assert_eq!(at(ratings, &["spec", "ports"]).and_then(|p| p[0].get("port")).and_then(Value::as_u64), Some(80));
        assert_eq!(
            at(ratings, &["spec", "ports"]).and_then(|p| p[0].get("targetPort")).and_then(Value::as_str),
            Some("http")
        );
        let web_policy = named(&objects, "NetworkPolicy", "web").unwrap();
        let to_ratings = seq(at(web_policy, &["spec", "egress"]))
            .into_iter()
            .find(|rule| {
                str_at(&rule["to"][0], &["podSelector", "matchLabels", "app.kubernetes.io/name"]) == Some("ratings")
            })
            .expect("web has an egress rule to ratings");
        assert_eq!(to_ratings["ports"][0]["port"].as_u64(), Some(8080), "{env}: web's egress to ratings' pods");
    }
}

#[test]
fn the_stores_admit_only_their_clients_so_the_built_in_logins_are_reachable_only_by_them() {
    let text = std::fs::read_to_string(support::repo_root().join("service-matrix.yaml")).unwrap();
    let matrix: Value = yaml_serde::from_str(&text).unwrap();
    let services = matrix["services"].as_sequence().unwrap();
    for env in ENVS {
        let objects = umbrella(env);
        for store in services.iter().filter(|s| str_at(s, &["chart_source"]) == Some("bitnami")) {
            let name = str_at(store, &["name"]).unwrap();
            let clients: BTreeSet<String> = services
                .iter()
                .filter(|s| seq(s.get("dependencies")).iter().any(|d| d.as_str() == Some(name)))
                .map(|s| str_at(s, &["name"]).unwrap().to_string())
                .collect();
            let policy =
                named(&objects, "NetworkPolicy", name).unwrap_or_else(|| panic!("{env}: no NetworkPolicy {name}"));
            let mut admitted = BTreeSet::new();
            for rule in seq(at(policy, &["spec", "ingress"])) {
                let from = seq(rule.get("from"));
                assert!(!from.is_empty(), "{env}: {name}'s policy admits every pod to {:?}", rule.get("ports"));
                for peer in from {
                    if let Some(app) = str_at(peer, &["podSelector", "matchLabels", "app.kubernetes.io/name"]) {
                        if app != name {
                            admitted.insert(app.to_string());
                        }
                    }
                }
            }
            assert_eq!(admitted, clients, "{env}: the services {name} admits");
        }
    }
}

/// The seed files of a store, from the repository, by name.
fn seed_files(store: &str) -> BTreeMap<String, String> {
    let dir = support::repo_root().join("helm/robot-shop/seed").join(store);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

/// The init scripts a store's pods run in a render: the ConfigMap mounted at
/// /docker-entrypoint-initdb.d of its first StatefulSet, by file name.
fn mounted_scripts(objects: &[Value], store: &str, statefulset: &str) -> BTreeMap<String, String> {
    let sts = named(objects, "StatefulSet", statefulset).unwrap_or_else(|| panic!("no StatefulSet {statefulset}"));
    let spec = at(sts, &["spec", "template", "spec"]).unwrap();
    let container = seq(spec.get("containers")).into_iter().find(|c| str_at(c, &["name"]) == Some(store)).unwrap();
    let mount = seq(container.get("volumeMounts"))
        .into_iter()
        .find(|m| str_at(m, &["mountPath"]) == Some("/docker-entrypoint-initdb.d"))
        .unwrap_or_else(|| panic!("{statefulset} mounts no init scripts"));
    let volume = seq(spec.get("volumes"))
        .into_iter()
        .find(|v| v.get("name") == mount.get("name"))
        .expect("the init scripts' volume");
    let configmap = str_at(volume, &["configMap", "name"]).expect("init scripts from a ConfigMap");
    let data =
        at(named(objects, "ConfigMap", configmap).unwrap_or_else(|| panic!("no ConfigMap {configmap}")), &["data"])
            .and_then(Value::as_mapping)
            .expect("ConfigMap data");
    data.iter().map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string())).collect()
}

fn matrix_reads() -> BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<String>>>> {
    let text = std::fs::read_to_string(support::repo_root().join("service-matrix.yaml")).unwrap();
    let matrix: Value = yaml_serde::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for service in matrix["services"].as_sequence().unwrap() {
        if let Some(reads) = service.get("reads") {
            out.insert(service["name"].as_str().unwrap().to_string(), yaml_serde::from_value(reads.clone()).unwrap());
        }
    }
    out
}

#[test]
fn the_seed_is_wired_into_the_bitnami_values_in_every_environment() {
    let reads = matrix_reads();
    let stores: BTreeSet<String> = reads.values().flat_map(|r| r.keys().cloned()).collect();
    assert_eq!(stores, BTreeSet::from(["mongodb".to_string(), "mysql".to_string()]));
    for env in ENVS {
        let objects = umbrella(env);
        for store in &stores {
            // Standalone in dev and staging, the primary in prod's replication.
            let sts = if named(&objects, "StatefulSet", &format!("{store}-primary")).is_some() {
                format!("{store}-primary")
            } else {
                store.clone()
            };
            let scripts = mounted_scripts(&objects, store, &sts);
            assert_eq!(scripts, seed_files(store), "{env}: {sts} runs other scripts than seed/{store}/");
        }
        // Replicas never run the seed (they copy the primary).
        if let Some(secondary) = named(&objects, "StatefulSet", "mysql-secondary") {
            assert!(
                !format!("{secondary:?}").contains("docker-entrypoint-initdb.d"),
                "{env}: mysql-secondary runs the seed"
            );
        }
    }
}

/// `xtask --root COPY lint --chart web` (the repository checks run whatever charts are linted).
fn lint_copy(copy: &std::path::Path) -> std::process::Output {
    xtask()
        .arg("--root")
        .arg(copy)
        .env("XTASK_WORK_DIR", copy.join("target/xtask"))
        .args(["lint", "--chart", "web", "--no-cache"])
        .output()
        .expect("run xtask lint")
}

#[test]
fn lint_names_the_service_and_what_the_seed_does_not_create() {
    let copy = support::repository_copy();
    let clean = lint_copy(copy.path());
    assert!(clean.status.success(), "the copy does not lint green: {}", describe(&clean));

    // A table shipping would read that no script creates.
    let matrix = copy.path().join("service-matrix.yaml");
    let text = std::fs::read_to_string(&matrix).unwrap();
    std::fs::write(&matrix, text.replace("cities: [cities, codes]", "cities: [cities, codes, warehouses]")).unwrap();
    let output = lint_copy(copy.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr.contains("shipping: service-matrix.yaml says it reads mysql cities.warehouses, but no script of helm/robot-shop/seed/mysql/ creates cities.warehouses"),
        "{stderr}"
    );
    std::fs::write(&matrix, &text).unwrap();

    // A store read but no longer seeded.
    let values = copy.path().join("helm/robot-shop/values.yaml");
    let original = std::fs::read_to_string(&values).unwrap();
    std::fs::write(&values, original.replace("initdbScriptsConfigMap: mongodb-seed", "initdbScriptsConfigMap: \"\""))
        .unwrap();
    let output = lint_copy(copy.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    for service in ["catalogue", "user"] {
        assert!(stderr.contains(&format!("{service}: service-matrix.yaml says it reads mongodb database")), "{stderr}");
    }
    assert!(stderr.contains("seeds no mongodb"), "{stderr}");
    std::fs::write(&values, &original).unwrap();

    // A script that does not parse, named.
    let script = copy.path().join("helm/robot-shop/seed/mongodb/20-users.js");
    std::fs::write(&script, "const users = db.getSiblingDB(\"users\";\n").unwrap();
    let output = lint_copy(copy.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("helm/robot-shop/seed/mongodb/20-users.js: does not parse as JavaScript"), "{stderr}");
}

// --- The MySQL seed, parsed ----------------------------------------------------------------

/// Columns of each table the MySQL scripts create: (db, table) -> column -> type as written.
fn mysql_tables(scripts: &BTreeMap<String, String>) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    use sqlparser::ast::Statement;
    let mut tables = BTreeMap::new();
    for (name, text) in scripts {
        for text in statements(text) {
            if is_account_statement(&text) {
                // MySQL's account syntax, which sqlparser lacks: run on the server below.
                continue;
            }
            let parsed = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MySqlDialect {}, &text)
                .unwrap_or_else(|err| panic!("{name} does not parse as MySQL: {err}: {text}"));
            assert_eq!(parsed.len(), 1, "{name}: {text}");
            let statement = parsed.into_iter().next().unwrap();
            if let Statement::CreateTable(table) = statement {
                let parts: Vec<String> = table.name.0.iter().map(|p| p.to_string()).collect();
                assert_eq!(parts.len(), 2, "{name}: {} is not database.table", table.name);
                let columns = table
                    .columns
                    .iter()
                    .map(|c| (c.name.value.clone(), c.data_type.to_string().to_uppercase()))
                    .collect();
                tables.insert((parts[0].clone(), parts[1].clone()), columns);
            }
        }
    }
    tables
}

/// The statements of a script as the mysql client sends them: the text
/// between the `;` tokens of sqlparser's tokenizer (quotes and comments
/// respected), comment lines dropped.
fn statements(text: &str) -> Vec<String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens =
        Tokenizer::new(&sqlparser::dialect::MySqlDialect {}, text).tokenize_with_location().expect("tokenizes");
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    let mut from = (1u64, 1u64);
    for token in tokens.iter().filter(|t| t.token == Token::SemiColon) {
        let to = (token.span.start.line, token.span.start.column);
        let mut piece = String::new();
        for line in from.0..=to.0 {
            let chars: Vec<char> = lines[(line - 1) as usize].chars().collect();
            let start = if line == from.0 { (from.1 - 1) as usize } else { 0 };
            let end = if line == to.0 { (to.1 - 1) as usize } else { chars.len() };
            piece.extend(&chars[start.min(chars.len())..end.min(chars.len())]);
            piece.push('\n');
        }
        let piece: String = piece.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
        if !piece.trim().is_empty() {
            out.push(piece.trim().to_string());
        }
        from = (to.0, to.1 + 1);
    }
    out
}

/// `CREATE USER` and its kin, by their first two words.
fn is_account_statement(text: &str) -> bool {
    let words: Vec<String> = text.split_whitespace().take(2).map(|w| w.to_ascii_uppercase()).collect();
    matches!(words.as_slice(), [verb, user] if user == "USER" && ["CREATE", "ALTER", "DROP"].contains(&verb.as_str()))
}

#[test]
fn the_mysql_seed_creates_the_tables_and_columns_shipping_and_ratings_read() {
    let scripts = mounted_scripts(&umbrella("dev"), "mysql", "mysql");
    let tables = mysql_tables(&scripts);
    // (database, table, [(column, type)])
    type Wanted<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let wanted: [Wanted; 3] = [
        (
            "cities",
            "cities",
            &[
                ("uuid", "BIGINT"),
                ("country_code", "VARCHAR(2)"),
                ("city", "VARCHAR(100)"),
                ("name", "VARCHAR(100)"),
                ("region", "VARCHAR(100)"),
                ("latitude", "DOUBLE"),
                ("longitude", "DOUBLE"),
            ],
        ),
        ("cities", "codes", &[("uuid", "BIGINT"), ("code", "VARCHAR(2)"), ("name", "VARCHAR(100)")]),
        ("ratings", "ratings", &[("sku", "VARCHAR(80)"), ("avg_rating", "DECIMAL(3,2)"), ("rating_count", "INT")]),
    ];
    for (db, table, columns) in wanted {
        let found = tables.get(&(db.to_string(), table.to_string())).unwrap_or_else(|| panic!("no table {db}.{table}"));
        for (column, ty) in columns {
            assert_eq!(found.get(*column).map(|t| t.replace(' ', "")), Some(ty.to_string()), "{db}.{table}.{column}");
        }
    }
    // Every table the matrix says a service reads from MySQL is among them.
    for (service, stores) in matrix_reads() {
        for (db, names) in stores.get("mysql").cloned().unwrap_or_default() {
            for name in names {
                assert!(tables.contains_key(&(db.clone(), name.clone())), "{service} reads mysql {db}.{name}");
            }
        }
    }
}

// --- The MongoDB seed, parsed --------------------------------------------------------------

/// A JavaScript literal (object, array, string, number, boolean) as JSON.
fn literal(expression: &oxc_ast::ast::Expression<'_>) -> serde_json::Value {
    use oxc_ast::ast::{ArrayExpressionElement, Expression, ObjectPropertyKind, PropertyKey};
    match expression {
        Expression::StringLiteral(s) => serde_json::Value::String(s.value.to_string()),
        Expression::NumericLiteral(n) => serde_json::json!(n.value),
        Expression::BooleanLiteral(b) => serde_json::Value::Bool(b.value),
        Expression::ArrayExpression(array) => serde_json::Value::Array(
            array
                .elements
                .iter()
                .map(|e| match e {
                    ArrayExpressionElement::SpreadElement(_) | ArrayExpressionElement::Elision(_) => {
                        panic!("not a literal array")
                    }
                    other => literal(other.to_expression()),
                })
                .collect(),
        ),
        Expression::ObjectExpression(object) => serde_json::Value::Object(
            object
                .properties
                .iter()
                .map(|p| match p {
                    ObjectPropertyKind::ObjectProperty(p) => {
                        let key = match &p.key {
                            PropertyKey::StaticIdentifier(id) => id.name.to_string(),
                            PropertyKey::StringLiteral(s) => s.value.to_string(),
                            other => panic!("not a literal key: {other:?}"),
                        };
                        (key, literal(&p.value))
                    }
                    ObjectPropertyKind::SpreadProperty(_) => panic!("not a literal object"),
                })
                .collect(),
        ),
        other => panic!("not a literal: {other:?}"),
    }
}

/// Every `<db>.<collection>.<method>(literal, ...)` and `<db>.createCollection("c")`
/// call of a mongosh script, with `<db>` bound by `const x = db.getSiblingDB("d")`:
/// (database, collection, method, arguments as JSON).
fn mongo_calls(name: &str, text: &str) -> Vec<(String, String, String, Vec<serde_json::Value>)> {
    use oxc_ast::ast::{BindingPatternKind, Expression, Statement};
    let allocator = oxc_allocator::Allocator::default();
    let parsed = oxc_parser::Parser::new(&allocator, text, oxc_span::SourceType::cjs()).parse();
    assert!(parsed.errors.is_empty(), "{name} does not parse as JavaScript: {:?}", parsed.errors);
    let mut databases = BTreeMap::new();
    let mut calls = Vec::new();
    let args = |call: &oxc_ast::ast::CallExpression<'_>| -> Vec<serde_json::Value> {
        call.arguments.iter().map(|a| literal(a.to_expression())).collect()
    };
    for statement in &parsed.program.body {
        match statement {
            Statement::VariableDeclaration(declaration) => {
                for d in &declaration.declarations {
                    let (BindingPatternKind::BindingIdentifier(id), Some(Expression::CallExpression(call))) =
                        (&d.id.kind, &d.init)
                    else {
                        panic!("{name}: a declaration other than const x = db.getSiblingDB(\"name\")")
                    };
                    let Expression::StaticMemberExpression(member) = &call.callee else { panic!("{name}") };
                    assert_eq!(member.property.name, "getSiblingDB", "{name}");
                    databases.insert(id.name.to_string(), args(call)[0].as_str().unwrap().to_string());
                }
            }
            Statement::ExpressionStatement(statement) => {
                let Expression::CallExpression(call) = &statement.expression else { panic!("{name}: not a call") };
                let Expression::StaticMemberExpression(method) = &call.callee else { panic!("{name}: not a method") };
                let db_of = |e: &Expression<'_>| match e {
                    Expression::Identifier(id) => databases.get(id.name.as_str()).cloned(),
                    _ => None,
                };
                if method.property.name == "createCollection" {
                    let db = db_of(&method.object).unwrap_or_else(|| panic!("{name}: createCollection on no database"));
                    calls.push((db, args(call)[0].as_str().unwrap().to_string(), "createCollection".into(), vec![]));
                } else if let Expression::StaticMemberExpression(collection) = &method.object {
                    let db = db_of(&collection.object).unwrap_or_else(|| panic!("{name}: a call on no database"));
                    calls.push((
                        db,
                        collection.property.name.to_string(),
                        method.property.name.to_string(),
                        args(call),
                    ));
                } else {
                    panic!("{name}: a call of another shape");
                }
            }
            _ => panic!("{name}: a statement other than a declaration or a call"),
        }
    }
    calls
}

#[test]
fn the_mongodb_seed_creates_the_collections_fields_and_indexes_catalogue_and_user_read() {
    let scripts = mounted_scripts(&umbrella("dev"), "mongodb", "mongodb");
    let calls: Vec<_> = scripts.iter().flat_map(|(name, text)| mongo_calls(name, text)).collect();
    let on = |db: &str, coll: &str, method: &str| -> Vec<Vec<serde_json::Value>> {
        calls.iter().filter(|c| c.0 == db && c.1 == coll && c.2 == method).map(|c| c.3.clone()).collect()
    };
    // Products: the fields catalogue reads, unique SKUs, the two indexes.
    let products: Vec<serde_json::Value> =
        on("catalogue", "products", "insertMany").iter().flat_map(|a| a[0].as_array().unwrap().clone()).collect();
    assert!(products.len() >= 10, "only {} products", products.len());
    let mut skus = BTreeSet::new();
    for product in &products {
        assert!(
            product["sku"].is_string() && product["name"].is_string() && product["description"].is_string(),
            "{product}"
        );
        assert!(product["price"].is_number() && product["instock"].as_f64().is_some_and(|n| n >= 0.0), "{product}");
        assert!(
            product["categories"].as_array().is_some_and(|c| !c.is_empty() && c.iter().all(|c| c.is_string())),
            "{product}"
        );
        assert!(skus.insert(product["sku"].as_str().unwrap().to_string()), "duplicate sku {}", product["sku"]);
    }
    let indexes = on("catalogue", "products", "createIndex");
    assert!(
        indexes.contains(&vec![serde_json::json!({"sku": 1.0}), serde_json::json!({"unique": true})]),
        "{indexes:?}"
    );
    assert!(indexes.contains(&vec![serde_json::json!({"name": "text", "description": "text"})]), "{indexes:?}");
    // Users: name, password and email; one per name; the orders collection.
    let users: Vec<serde_json::Value> =
        on("users", "users", "insertMany").iter().flat_map(|a| a[0].as_array().unwrap().clone()).collect();
    assert!(!users.is_empty());
    for user in &users {
        for field in ["name", "password", "email"] {
            assert!(user[field].is_string(), "{user}: no {field}");
        }
    }
    assert!(on("users", "users", "createIndex")
        .contains(&vec![serde_json::json!({"name": 1.0}), serde_json::json!({"unique": true})]));
    // Every collection the matrix says a service reads is created or written.
    for (service, stores) in matrix_reads() {
        for (db, names) in stores.get("mongodb").cloned().unwrap_or_default() {
            for name in names {
                assert!(calls.iter().any(|c| c.0 == db && c.1 == name), "{service} reads mongodb {db}.{name}");
            }
        }
    }
    // The ratings seed rates products of this catalogue only.
    let mysql = mounted_scripts(&umbrella("dev"), "mysql", "mysql");
    for sku in mysql["20-ratings.sql"].split('\'').skip(1).step_by(2).filter(|s| s.starts_with("RS-")) {
        assert!(skus.contains(sku), "20-ratings.sql rates {sku}, which the catalogue does not sell");
    }
}

// --- The MySQL seed on a real server -------------------------------------------------------

/// go-mysql-server's version, as pinned in xtask/tests/support/mysql-server/go.mod.
fn gms_version() -> String {
    let go_mod = std::fs::read_to_string(support::repo_root().join("xtask/tests/support/mysql-server/go.mod")).unwrap();
    go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("require github.com/dolthub/go-mysql-server "))
        .expect("go.mod requires go-mysql-server")
        .trim()
        .to_string()
}

/// The server of support/mysql-server, built once per version into the
/// per-user cache (like the other tools) and reused; never skipped.
fn mysql_server_binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let source = support::repo_root().join("xtask/tests/support/mysql-server");
        let main = std::fs::read(source.join("main.go")).unwrap();
        let digest: u64 = main.iter().fold(1469598103934665603u64, |h, b| (h ^ *b as u64).wrapping_mul(1099511628211));
        let dir = support::cache_dir().join("tools").join(format!("go-mysql-server-{}-{digest:016x}", gms_version()));
        let binary = dir.join("mysql-server");
        if binary.is_file() {
            return binary;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let staging = tempfile::tempdir_in(&dir).unwrap();
        run_ok(
            Command::new("go")
                .args(["build", "-trimpath", "-mod=readonly", "-o"])
                .arg(staging.path().join("mysql-server"))
                .arg(".")
                .current_dir(&source),
        );
        std::fs::rename(staging.path().join("mysql-server"), &binary).unwrap();
        binary
    })
    .clone()
}

struct Server {
    child: std::process::Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_mysql() -> Server {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(mysql_server_binary())
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the MySQL-compatible server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let server = Server { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the MySQL-compatible server does not accept connections on {port}");
}

fn connect(port: u16, user: &str, password: &str, db: Option<&str>) -> Result<mysql::Conn, mysql::Error> {
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .db_name(db);
    mysql::Conn::new(opts)
}

#[test]
fn the_mysql_seed_runs_and_answers_the_queries_of_shipping_and_ratings() {
    use mysql::prelude::Queryable;
    let scripts = mounted_scripts(&umbrella("dev"), "mysql", "mysql");
    let server = start_mysql();
    // As Bitnami's image does: every script, in name order, as root.
    let mut root = connect(server.port, "root", "", None).expect("root logs in");
    for (name, text) in &scripts {
        for statement in statements(text) {
            root.query_drop(&statement).unwrap_or_else(|err| panic!("{name}: {statement}: {err}"));
        }
    }
    drop(root);

    // shipping, logged in as its image does (shipping / secret, database cities).
    let mut shipping = connect(server.port, "shipping", "secret", Some("cities")).expect("shipping logs in");
    let codes: Vec<(u64, String, String)> = shipping.query("SELECT uuid, code, name FROM codes ORDER BY name").unwrap();
    assert!(codes.len() >= 30, "{} country codes", codes.len());
    assert!(codes.iter().any(|(_, code, name)| code == "gb" && name == "United Kingdom"));
    let cities: Vec<(u64, String, String, String, String, f64, f64)> = shipping
        .exec(
            "SELECT uuid, country_code, city, name, region, latitude, longitude FROM cities WHERE country_code = ?",
            ("gb",),
        )
        .unwrap();
    assert!(cities.len() >= 5 && cities.iter().any(|c| c.2 == "London"), "{cities:?}");
    // Every country shipping lists has cities to choose from.
    for (_, code, _) in &codes {
        let count: Option<u64> =
            shipping.exec_first("SELECT COUNT(*) FROM cities WHERE country_code = ?", (code,)).unwrap();
        assert!(count.unwrap_or(0) >= 3, "country {code} has {count:?} cities");
    }
    // The autocomplete: country code and the first letters of the city.
    let matched: Vec<String> = shipping
        .exec_map("SELECT city FROM cities WHERE country_code = ? AND city LIKE ?", ("de", "Bo%"), |city: String| city)
        .unwrap();
    assert_eq!(
        matched.iter().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["Bochum".to_string(), "Bonn".to_string()])
    );
    let (uuid, ..) = cities[0].clone();
    let one: Option<(f64, f64)> =
        shipping.exec_first("SELECT latitude, longitude FROM cities WHERE uuid = ?", (uuid,)).unwrap();
    assert!(one.is_some_and(|(lat, lon)| (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)));
    // Read only: shipping cannot write, nor read ratings.
    assert!(shipping.query_drop("INSERT INTO codes (code, name) VALUES ('zz', 'Nowhere')").is_err());
    assert!(shipping.query_drop("SELECT * FROM ratings.ratings").is_err());
    drop(shipping);

    // ratings, logged in as its image does (ratings / iloveit, database ratings).
    let mut ratings = connect(server.port, "ratings", "iloveit", Some("ratings")).expect("ratings logs in");
    let rated: Option<(String, u32)> =
        ratings.exec_first("select avg_rating, rating_count from ratings where sku = ?", ("RS-TUTOR-05",)).unwrap();
    assert_eq!(rated, Some(("4.90".to_string(), 31)));
    ratings
        .exec_drop("insert into ratings(sku, avg_rating, rating_count) values(?, ?, ?)", ("RS-DRONE-04", 4, 1))
        .unwrap();
    ratings
        .exec_drop("update ratings set avg_rating = ?, rating_count = ? where sku = ?", (4.5, 2, "RS-DRONE-04"))
        .unwrap();
    let updated: Option<u32> =
        ratings.exec_first("select rating_count from ratings where sku = ?", ("RS-DRONE-04",)).unwrap();
    assert_eq!(updated, Some(2));
    assert!(ratings.query_drop("SELECT * FROM cities.cities").is_err(), "ratings reads shipping's cities");
    drop(ratings);

    // The built-in passwords are the only ones: a wrong one is refused.
    assert!(connect(server.port, "shipping", "not-secret", Some("cities")).is_err());
}

// --- nginx and Apache with the chart's configuration, as real processes ----------------------

/// The Debian packages of each server, pinned; extracted (never installed) into the cache.
const NGINX_PACKAGES: &[(&str, &str)] = &[("nginx", "1.22.1-9+deb12u11"), ("nginx-common", "1.22.1-9+deb12u11")];
const APACHE_PACKAGES: &[(&str, &str)] = &[
    ("apache2", "2.4.71-1~deb12u1"),
    ("apache2-bin", "2.4.71-1~deb12u1"),
    ("apache2-data", "2.4.71-1~deb12u1"),
    ("libapr1", "1.7.2-3+deb12u1"),
    ("libaprutil1", "1.6.3-1+deb12u1"),
    ("libaprutil1-dbd-sqlite3", "1.6.3-1+deb12u1"),
    ("libaprutil1-ldap", "1.6.3-1+deb12u1"),
    ("liblua5.3-0", "5.3.6-2"),
];

/// The packages downloaded with `apt-get download NAME=VERSION` and extracted
/// with `dpkg -x` into one folder of the per-user cache, once per pin set.
fn debian_packages(set: &str, packages: &[(&str, &str)]) -> PathBuf {
    let pins: Vec<String> = packages.iter().map(|(name, version)| format!("{name}={version}")).collect();
    let digest = pins.join(" ").bytes().fold(1469598103934665603u64, |h, b| (h ^ b as u64).wrapping_mul(1099511628211));
    let dir = support::cache_dir().join("tools").join(format!("debian-{set}-{digest:016x}"));
    if dir.join("root").is_dir() {
        return dir.join("root");
    }
    std::fs::create_dir_all(&dir).unwrap();
    let staging = tempfile::tempdir_in(&dir).unwrap();
    let download = || {
        Command::new("apt-get").arg("download").args(&pins).current_dir(staging.path()).output().expect("run apt-get")
    };
    let mut output = download();
    if !output.status.success() {
        // Stale package lists: refresh them once (as the machine's README says to).
        run_ok(Command::new("apt-get").args(["update", "-qq"]));
        output = download();
    }
    assert!(output.status.success(), "apt-get download {}: {}", pins.join(" "), describe(&output));
    let root = staging.path().join("root");
    for entry in std::fs::read_dir(staging.path()).unwrap().map(|e| e.unwrap().path()) {
        if entry.extension().is_some_and(|e| e == "deb") {
            run_ok(Command::new("dpkg").arg("-x").arg(&entry).arg(&root));
        }
    }
    std::fs::rename(&root, dir.join("root")).unwrap();
    dir.join("root")
}

/// The data of a ConfigMap, the same in every environment.
fn config_files(name: &str) -> BTreeMap<String, String> {
    let mut seen: Option<BTreeMap<String, String>> = None;
    for env in ENVS {
        let objects = umbrella(env);
        let data =
            at(named(&objects, "ConfigMap", name).unwrap_or_else(|| panic!("{env}: no ConfigMap {name}")), &["data"])
                .and_then(Value::as_mapping)
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string()))
                .collect::<BTreeMap<_, _>>();
        if let Some(first) = &seen {
            assert_eq!(first, &data, "{env}: {name} differs from dev's");
        }
        seen = Some(data);
    }
    seen.unwrap()
}

/// The chart's container of a service in dev: its mounts of configFiles
/// (mount path -> ConfigMap key), emptyDir paths, user and command line.
struct Container {
    files: Vec<(String, String)>,
    writable: Vec<String>,
    uid: u64,
    command: Vec<String>,
}

fn container(name: &str) -> Container {
    let objects = umbrella("dev");
    let spec = at(named(&objects, "Deployment", name).unwrap(), &["spec", "template", "spec"]).unwrap().clone();
    let main = seq(spec.get("containers")).into_iter().find(|c| str_at(c, &["name"]) == Some(name)).unwrap().clone();
    let volumes: BTreeMap<String, Value> =
        seq(spec.get("volumes")).into_iter().map(|v| (str_at(v, &["name"]).unwrap().to_string(), v.clone())).collect();
    let (mut files, mut writable) = (Vec::new(), Vec::new());
    for mount in seq(main.get("volumeMounts")) {
        let path = str_at(mount, &["mountPath"]).unwrap().to_string();
        let volume = &volumes[str_at(mount, &["name"]).unwrap()];
        if volume.get("emptyDir").is_some() {
            writable.push(path);
        } else if str_at(volume, &["configMap", "name"]) == Some(&format!("{name}-files")) {
            files.push((path, str_at(mount, &["subPath"]).unwrap().to_string()));
        } else {
            panic!("{name}: unexpected volume {volume:?}");
        }
    }
    let strings =
        |key: &str| seq(main.get(key)).into_iter().map(|s| s.as_str().unwrap().to_string()).collect::<Vec<_>>();
    let mut command = strings("command");
    command.extend(strings("args"));
    Container { files, writable, uid: at(&spec, &["securityContext", "runAsUser"]).unwrap().as_u64().unwrap(), command }
}

/// Single-quotes a word for /bin/sh.
fn shell_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

struct Sandboxed {
    out: tempfile::TempDir,
    statuses: Vec<String>,
    bodies: Vec<String>,
    log: String,
}

/// Runs support/sandbox.sh (as root, in new mount, network and pid namespaces).
fn sandbox(
    packages: &std::path::Path,
    files: &std::path::Path,
    c: &Container,
    command: &str,
    env: &[(&str, String)],
    requests: &[String],
) -> Sandboxed {
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the server sandbox needs root (mount, network and pid namespaces, chroot)"
    );
    let out = tempfile::tempdir().unwrap();
    let script = support::repo_root().join("xtask/tests/support/sandbox.sh");
    let output = Command::new("unshare")
        .args(["--mount", "--net", "--pid", "--fork", "--kill-child", "--", "bash"])
        .arg(&script)
        .env("PACKAGES", packages)
        .env("FILES", files)
        .env("WRITABLE", c.writable.join(" "))
        .env("RUN_UID", c.uid.to_string())
        .env("COMMAND", command)
        .env("REQUESTS", requests.join("\n"))
        .env("OUT", out.path())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run the sandbox");
    let log = std::fs::read_to_string(out.path().join("server.log")).unwrap_or_default();
    assert!(output.status.success(), "the sandbox failed: {}\nserver output:\n{log}", describe(&output));
    assert!(!out.path().join("writable-root.txt").exists(), "the pod's user could write outside the emptyDirs");
    let read = |name: String| std::fs::read_to_string(out.path().join(name)).unwrap_or_default();
    let statuses = (1..=requests.len()).map(|n| read(format!("status-{n}.txt"))).collect();
    let bodies = (1..=requests.len()).map(|n| read(format!("response-{n}.txt"))).collect();
    Sandboxed { out, statuses, bodies, log }
}

/// Writes the chart's files (and the image's stand-in content) into a tree.
fn files_tree(c: &Container, data: &BTreeMap<String, String>, extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let target = dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, text).unwrap();
    };
    for (path, key) in &c.files {
        write(path, &data[key]);
    }
    for (path, text) in extra {
        write(path, text);
    }
    dir
}

#[test]
fn nginx_serves_the_storefront_and_proxies_the_six_apis_with_the_charts_configuration() {
    let c = container("web");
    let data = config_files("web-files");
    assert_eq!(c.command, vec!["nginx", "-g", "daemon off;"]);
    assert!(c.files.iter().any(|(p, _)| p == "/etc/nginx/nginx.conf"));
    let packages = debian_packages("nginx", NGINX_PACKAGES);
    // The image's static site, stood in for by two files (the pages include eum.html).
    let files = files_tree(
        &c,
        &data,
        &[
            ("/usr/share/nginx/html/index.html", "shop<!--# include file=\"eum.html\" -->front\n"),
            ("/usr/share/nginx/html/images/placeholder.png", "placeholder\n"),
        ],
    );
    // The upstreams: each API's host name resolves to an address of its own. ratings' port (80)
    // gets a stub server; the five on 8080 cannot have one in the same network namespace, since
    // nginx's `listen 8080` takes port 8080 on every address, so their requests reach nginx
    // itself, whose error log then shows the path and Host header each was proxied with.
    let apis =
        [("catalogue", 8080), ("user", 8080), ("cart", 8080), ("shipping", 8080), ("payment", 8080), ("ratings", 80)];
    let hosts: Vec<String> = apis.iter().enumerate().map(|(i, (api, _))| format!("127.0.0.{} {api}", i + 2)).collect();
    let mut requests =
        vec!["http://127.0.0.1:8080/".to_string(), "http://127.0.0.1:8080/images/RS-GARDEN-01.png".to_string()];
    requests.extend(apis.iter().map(|(api, _)| format!("http://127.0.0.1:8080/api/{api}/{api}.txt")));
    let command = c.command.iter().map(|w| shell_word(w)).collect::<Vec<_>>().join(" ");
    let run = sandbox(
        &packages,
        files.path(),
        &c,
        &format!("exec {command}"),
        &[("HOSTS", hosts.join("\n")), ("STUBS", "127.0.0.7:80:ratings".into()), ("WAIT_PORT", "8080".into())],
        &requests,
    );
    let expected: Vec<&str> = ["200", "200", "404", "404", "404", "404", "404", "200"].to_vec();
    assert_eq!(run.statuses, expected, "{requests:?}\nserver output:\n{}", run.log);
    assert_eq!(run.bodies[0], "shopfront\n", "server-side include of the empty eum.html");
    assert_eq!(run.bodies[1], "placeholder\n", "a picture the image lacks falls back to the placeholder");
    for (api, port) in &apis[..5] {
        let proxied = format!("request: \"GET /{api}.txt HTTP/1.0\", host: \"{api}:{port}\"");
        let proxied_11 = format!("request: \"GET /{api}.txt HTTP/1.1\", host: \"{api}:{port}\"");
        assert!(
            run.log.contains(&proxied) || run.log.contains(&proxied_11),
            "/api/{api}/ is not proxied to {api}:{port}:\n{}",
            run.log
        );
    }
    assert_eq!(run.bodies[7], "ratings\n", "/api/ratings/ reaches ratings on port 80");
    assert!(!run.log.contains("[emerg]") && !run.log.contains("[alert]"), "{}", run.log);
    drop(run.out);
}

#[test]
fn apache_serves_ratings_on_its_unprivileged_port_with_the_charts_configuration() {
    let c = container("ratings");
    let data = config_files("ratings-files");
    assert!(c.command.is_empty(), "ratings keeps the image's command");
    let packages = debian_packages("apache2", APACHE_PACKAGES);
    // What the image's build did to Debian's Apache (a2enmod, log links) and its document root.
    let extra: Vec<(String, String)> = vec![("/var/www/html/index.html".into(), "ratings\n".into())];
    let mut links: Vec<(String, String)> = Vec::new();
    for module in [
        "mpm_prefork",
        "authz_core",
        "authz_host",
        "dir",
        "mime",
        "rewrite",
        "status",
        "alias",
        "setenvif",
        "env",
        "filter",
        "deflate",
        "reqtimeout",
        "negotiation",
        "access_compat",
        "authn_core",
        "authn_file",
        "auth_basic",
        "authz_user",
        "autoindex",
    ] {
        for ext in ["load", "conf"] {
            if packages.join(format!("etc/apache2/mods-available/{module}.{ext}")).exists() {
                links.push((
                    format!("etc/apache2/mods-enabled/{module}.{ext}"),
                    format!("../mods-available/{module}.{ext}"),
                ));
            }
        }
    }
    for conf in ["charset", "security", "other-vhosts-access-log"] {
        links.push((format!("etc/apache2/conf-enabled/{conf}.conf"), format!("../conf-available/{conf}.conf")));
    }
    links.push(("etc/apache2/sites-enabled/000-default.conf".into(), "../sites-available/000-default.conf".into()));
    for (log, target) in
        [("access.log", "/dev/stdout"), ("other_vhosts_access.log", "/dev/stdout"), ("error.log", "/dev/stderr")]
    {
        links.push((format!("var/log/apache2/{log}"), target.into()));
    }
    let extra_refs: Vec<(&str, &str)> = extra.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let files = files_tree(&c, &data, &extra_refs);
    for (link, target) in &links {
        let path = files.path().join(link);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, &path).unwrap();
    }
    let port = data["ports-conf"].trim().strip_prefix("Listen ").expect("Listen PORT").to_string();
    assert_eq!(port, "8080");
    // What the image's apache2-foreground does, less its mkdir of the run folder (an emptyDir here).
    let run = sandbox(
        &packages,
        files.path(),
        &c,
        ". /etc/apache2/envvars && exec apache2 -DFOREGROUND",
        &[("HOSTS", String::new()), ("STUBS", String::new()), ("WAIT_PORT", port.clone())],
        &[format!("http://127.0.0.1:{port}/")],
    );
    assert_eq!(run.statuses, vec!["200"], "server output:\n{}", run.log);
    assert_eq!(run.bodies[0], "ratings\n");
    drop(run.out);
}
