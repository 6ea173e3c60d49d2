//! Differential property tests of our four ports of Helm's Go code against
//! the real, pinned helm: the `--set` parser (`core/values/set.rs`), the
//! values merge (`core/values/coalesce.rs`), the `.helmignore` matcher
//! (`util/helmignore.rs`) and the version-constraint check
//! (`core/versions.rs`, Masterminds semver as helm and sprig's
//! `semverCompare` use it).
//!
//! Each test generates inputs with proptest, computes our answer in-process,
//! asks helm for its answer, and the two must agree, refusals included. A
//! helm process costs ~90 ms on two cores, so cases are batched: the cases
//! our port accepts go into one helm run (each under its own key, chart or
//! template line; a batch that helm refuses anyway is split in halves until
//! the case is alone), and each case our port refuses gets a run of its own,
//! since helm stops at the first refusal. A difference is pinned to its case
//! and shrunk (one helm run per step) to a small input.
//!
//! The seed is fixed (each test's name), so a run is reproducible; the
//! default numbers of cases keep the four tests well under a minute
//! together. `XTASK_PROPTEST_CASES=<n>` runs n cases per test instead. Every
//! difference found is kept in `regressions`: a literal list of the inputs
//! that differed, checked against helm on every run.
//!
//! Helm is found as the xtask finds it (`$XTASK_HELM`, the per-user cache,
//! PATH at the pinned version) and never installed here: a missing helm
//! fails the tests with a message to run `cargo xtask tools`.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value as Json;

/// Raises the number of generated cases per test (the default is small).
const CASES_VAR: &str = "XTASK_PROPTEST_CASES";

/// Shrinking steps after a difference; each costs about one helm run.
const MAX_SHRINK_STEPS: usize = 200;

// ---------------------------------------------------------------------------
// The harness shared by the four tests.

/// The pinned helm, found without installing anything.
fn helm() -> &'static Path {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match HELM.get_or_init(find_helm) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

/// `tools::locate`'s order: `$XTASK_HELM`, `<cache>/tools/helm/<version>/helm`,
/// then PATH if it reports the pinned version. The pin is read from
/// `pins.toml`, so an upgrade needs no edit here.
fn find_helm() -> Result<PathBuf, String> {
    let pins: toml::Table =
        toml::from_str(include_str!("exec/tools/pins.toml")).map_err(|e| format!("pins.toml: {e}"))?;
    let pin = pins.get("helm").and_then(|t| t.as_table()).ok_or("pins.toml has no [helm]")?;
    let field = |name: &str| pin.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let version = field("version").ok_or("pins.toml: [helm] has no version")?;
    let env = field("env").ok_or("pins.toml: [helm] has no env")?;
    let fix = "run `cargo xtask tools` to install the pinned tools";
    if let Some(value) = std::env::var_os(&env) {
        let path = PathBuf::from(value);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{env}={}: no such file; unset it and {fix}", path.display()))
        };
    }
    let cache = crate::core::context::cache_dir().map_err(|e| format!("{e:#}"))?;
    let cached = cache.join("tools").join("helm").join(&version).join("helm");
    if cached.is_file() {
        return Ok(cached);
    }
    if let Ok(on_path) = which::which("helm") {
        let reported = Command::new(&on_path).args(["version", "--template", "{{.Version}}"]).output();
        if let Ok(out) = reported {
            if String::from_utf8_lossy(&out.stdout).trim().trim_start_matches('v') == version {
                return Ok(on_path);
            }
        }
    }
    Err(format!(
        "the differential tests need helm {version}, which is not installed (looked at ${env}, {}, PATH): {fix}",
        cached.display()
    ))
}

thread_local! {
    /// Helm runs of the test on this thread (each test runs on its own thread).
    static HELM_RUNS: Cell<usize> = const { Cell::new(0) };
    /// Cases that our port refuses, each checked with a helm run of its own.
    static REFUSED_ALONE: Cell<usize> = const { Cell::new(0) };
}

/// A helm command whose home folders are in `scratch`, so that no user
/// configuration (repositories, plugins) changes the answer.
fn helm_command(scratch: &Path) -> Command {
    let mut command = Command::new(helm());
    for (var, sub) in [("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")] {
        command.env(var, scratch.join("helm-home").join(sub));
    }
    command.env_remove("HELM_DEBUG");
    command
}

/// Runs helm: `Ok(stdout)` when it succeeds, `Err(stderr)` when it refuses.
fn run_helm(command: &mut Command) -> Result<String, String> {
    HELM_RUNS.with(|runs| runs.set(runs.get() + 1));
    let output = command.output().unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A scratch folder outside the repository, removed when dropped.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("xtask-differential-").tempdir().expect("a temporary folder")
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// A difference between our port and helm.
#[derive(Debug)]
struct Mismatch {
    /// The index of the case it belongs to in the checked slice, if known.
    case: Option<usize>,
    reason: String,
}

impl Mismatch {
    fn at(case: usize, reason: impl Into<String>) -> Mismatch {
        Mismatch { case: Some(case), reason: reason.into() }
    }

    fn somewhere(reason: impl Into<String>) -> Mismatch {
        Mismatch { case: None, reason: reason.into() }
    }
}

type Checked = Result<(), Mismatch>;

/// Checks `cases` with `run`: the ones our port refuses one at a time (helm
/// stops at the first refusal, so each needs its own run to show that helm
/// refuses it too), the others in one batch, split by [`bisect`] if helm
/// refuses it after all.
fn batched<C: Clone>(
    cases: &[C],
    we_refuse: &dyn Fn(&C) -> bool,
    run: &mut dyn FnMut(&[C]) -> Option<Checked>,
) -> Checked {
    let (alone, together): (Vec<usize>, Vec<usize>) = (0..cases.len()).partition(|&i| we_refuse(&cases[i]));
    let batch: Vec<C> = together.iter().map(|&i| cases[i].clone()).collect();
    bisect(&batch, run).map_err(|m| Mismatch { case: m.case.map(|c| together[c]), reason: m.reason })?;
    REFUSED_ALONE.with(|n| n.set(n.get() + alone.len()));
    for index in alone {
        bisect(std::slice::from_ref(&cases[index]), run).map_err(|m| Mismatch::at(index, m.reason))?;
    }
    Ok(())
}

/// Runs `run` on all cases; when it returns `None` (helm refused a batch of
/// several) on each half, recursively. A lone case must always be compared.
fn bisect<C>(cases: &[C], run: &mut dyn FnMut(&[C]) -> Option<Checked>) -> Checked {
    if cases.is_empty() {
        return Ok(());
    }
    if let Some(result) = run(cases) {
        return result;
    }
    assert!(cases.len() > 1, "a single case must be compared, not split");
    let middle = cases.len() / 2;
    bisect(&cases[..middle], run)?;
    bisect(&cases[middle..], run).map_err(|m| Mismatch { case: m.case.map(|c| c + middle), reason: m.reason })
}

/// The number of cases a test generates: its default, or `$XTASK_PROPTEST_CASES`.
fn case_count(default: usize) -> usize {
    match std::env::var(CASES_VAR) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("{CASES_VAR}={text:?}: not a number of cases")),
        Err(_) => default,
    }
}

/// Generates `case_count(default_cases)` cases from `strategy` with a fixed
/// seed, checks them `batch` at a time, and on a difference shrinks the case
/// it belongs to and fails with it.
fn differential<S>(name: &str, default_cases: usize, batch: usize, strategy: S, check: impl Fn(&[S::Value]) -> Checked)
where
    S: Strategy,
    S::Value: Clone + Debug,
{
    let total = case_count(default_cases);
    let started = Instant::now();
    HELM_RUNS.with(|runs| runs.set(0));
    REFUSED_ALONE.with(|n| n.set(0));
    // The seed is the test's name, so each test has its own reproducible stream.
    let mut seed = [0u8; 32];
    for (slot, byte) in seed.iter_mut().zip(name.bytes()) {
        *slot = byte;
    }
    let config = Config { failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let mut done = 0;
    while done < total {
        let size = batch.min(total - done);
        let mut trees: Vec<S::Tree> =
            (0..size).map(|_| strategy.new_tree(&mut runner).expect("the strategies never reject")).collect();
        let cases: Vec<S::Value> = trees.iter().map(ValueTree::current).collect();
        if let Err(mismatch) = check(&cases) {
            // A difference in a batch is pinned to one case, by its key in
            // helm's output or else by trying each case alone.
            let index = mismatch.case.or_else(|| (0..cases.len()).find(|&i| check(&cases[i..=i]).is_err()));
            let Some(index) = index else {
                panic!("{name}: a batch differs but no case does alone: {}\nbatch: {cases:#?}", mismatch.reason);
            };
            let (minimal, reason) = shrink(&mut trees[index], &check);
            panic!(
                "{name}: our port and helm differ: {reason}\nminimal case: {minimal:#?}\n(first seen as {:#?})\n\
                 fix the port (or the test) and keep the case in `regressions`",
                cases[index]
            );
        }
        done += size;
    }
    eprintln!(
        "{name}: {total} cases agree with helm ({} helm runs, {} cases refused and run alone, {:.1?}; \
         {CASES_VAR} raises the count)",
        HELM_RUNS.with(Cell::get),
        REFUSED_ALONE.with(Cell::get),
        started.elapsed()
    );
}

/// proptest's shrinking loop on one case: simplify while it still differs.
fn shrink<T: ValueTree>(tree: &mut T, check: &impl Fn(&[T::Value]) -> Checked) -> (T::Value, String)
where
    T::Value: Clone,
{
    let mut best = tree.current();
    let mut reason = match check(std::slice::from_ref(&best)) {
        Err(m) => m.reason,
        Ok(()) => return (best, "it differs only together with other cases of its batch".into()),
    };
    let mut steps = 0;
    let mut more = tree.simplify();
    while more && steps < MAX_SHRINK_STEPS {
        steps += 1;
        let candidate = tree.current();
        match check(std::slice::from_ref(&candidate)) {
            Err(m) => {
                best = candidate;
                reason = m.reason;
                more = tree.simplify();
            }
            Ok(()) => more = tree.complicate(),
        }
    }
    (best, reason)
}

/// `differential-<key>: <json string>` lines of a helm render: the chart
/// templates below print `.Values | toJson | toJson` so, which is valid YAML
/// and read back exactly.
fn printed_values(stdout: &str) -> BTreeMap<String, Json> {
    let mut found = BTreeMap::new();
    for line in stdout.lines() {
        let Some(rest) = line.trim_start().strip_prefix("differential-") else { continue };
        let Some((key, text)) = rest.split_once(": ") else { continue };
        let json: String = serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON string ({e}): {line}"));
        let value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
        found.insert(key.to_string(), value);
    }
    found
}

/// A template that prints its chart's `.Values` under `key`.
fn values_template(key: &str) -> String {
    let head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: differential\ndata:\n";
    format!("{head}  differential-{key}: {{{{ .Values | toJson | toJson }}}}\n")
}

fn chart_yaml(name: &str, dependencies: Vec<Json>) -> String {
    let mut chart = serde_json::json!({"apiVersion": "v2", "name": name, "version": "0.1.0"});
    if !dependencies.is_empty() {
        chart["dependencies"] = Json::Array(dependencies);
    }
    // JSON is YAML.
    chart.to_string()
}

fn select(items: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop::sample::select(items).prop_map(str::to_string)
}

// ---------------------------------------------------------------------------
// 1. `--set` (core/values/set.rs) against `helm template --set`.

mod set_flags {
    use super::*;
    use crate::core::values::{set, tree};

    /// One case: `--set` flags applied in order, each a list of assignments
    /// joined by commas (an empty one makes `a=1,` or `a=1,,b=2`).
    #[derive(Debug, Clone)]
    pub struct SetCase {
        pub flags: Vec<Vec<String>>,
    }

    impl SetCase {
        pub fn new(flags: &[&[&str]]) -> SetCase {
            SetCase { flags: flags.iter().map(|f| f.iter().map(|a| a.to_string()).collect()).collect() }
        }

        /// The flags as given to helm; with a prefix every assignment goes
        /// below `<prefix>.` so that cases of a batch stay apart.
        fn rendered(&self, prefix: Option<&str>) -> Vec<String> {
            self.flags
                .iter()
                .map(|flag| {
                    let parts: Vec<String> = flag
                        .iter()
                        .map(|a| match prefix {
                            Some(p) if !a.is_empty() => format!("{p}.{a}"),
                            _ => a.clone(),
                        })
                        .collect();
                    parts.join(",")
                })
                .collect()
        }
    }

    fn name() -> impl Strategy<Value = String> + Clone {
        prop_oneof![
            6 => select(&["a", "b", "ab", "c", "d"]),
            1 => select(&["ſ", "é", r"a\.b", r"a\,b", r"a\=b", r"a\[0]", "x y", "true", "0"]),
        ]
    }

    fn index() -> impl Strategy<Value = String> {
        prop_oneof![30 => select(&["0", "1", "2"]), 1 => select(&["-1", "x", "", "65537", " 1", "01", "+1"])]
    }

    fn path() -> impl Strategy<Value = String> {
        let segment = prop_oneof![name().prop_map(|n| format!(".{n}")), index().prop_map(|i| format!("[{i}]"))];
        (name(), prop::collection::vec(segment, 0..3)).prop_map(|(first, rest)| first + &rest.concat())
    }

    fn scalar() -> impl Strategy<Value = String> + Clone {
        select(&[
            "",
            "true",
            "TRUE",
            "False",
            "falſe",
            "trUe",
            "null",
            "NULL",
            "nuLL",
            "0",
            "00",
            "-0",
            "010",
            "7",
            "-3",
            "+5",
            "1.5",
            "1e3",
            "0x1f",
            "1_000",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "x",
            r"x\,y",
            "a b",
            "é",
            r"\{",
            "x=y",
            "a.b",
            "[0]",
            "}",
            r"x\",
            "ſ",
        ])
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            24 => scalar(),
            9 => prop::collection::vec(scalar(), 0..4).prop_map(|items| format!("{{{}}}", items.join(","))),
            1 => select(&["{", "{x", "{a}b", "{a},", "{{a}}"]),
        ]
    }

    fn assignment() -> impl Strategy<Value = String> {
        prop_oneof![
            // Mostly well-formed: each refused case costs a helm run of its own.
            60 => (path(), value()).prop_map(|(p, v)| format!("{p}={v}")),
            1 => path(),
            1 => Just(String::new()),
            // Noise without commas (a comma would start an assignment
            // outside the case's key in a batch).
            1 => proptest::string::string_regex(r"[ab.=\[\]{}\\0-9 ]{0,8}").expect("a valid regex"),
        ]
    }

    pub fn case() -> impl Strategy<Value = SetCase> {
        prop::collection::vec(prop::collection::vec(assignment(), 1..4), 1..3).prop_map(|flags| SetCase { flags })
    }

    /// Our parse of the flags: `Err(index of the flag)` when one is refused.
    fn ours(flags: &[String]) -> Result<Json, usize> {
        let table = tree::new_table();
        for (index, flag) in flags.iter().enumerate() {
            set::parse_into(flag, &table, 1).map_err(|_| index)?;
        }
        Ok(tree::table_to_plain(&table))
    }

    /// A chart without values whose template prints `.Values`: what it
    /// prints is then exactly what `--set` parsed.
    pub struct Chart {
        dir: tempfile::TempDir,
    }

    impl Chart {
        pub fn new() -> Chart {
            let dir = scratch();
            write(&dir.path().join("c/Chart.yaml"), &chart_yaml("c", Vec::new()));
            write(&dir.path().join("c/templates/values.yaml"), &values_template("values"));
            Chart { dir }
        }

        fn helm(&self, flags: &[String]) -> Result<Json, String> {
            let mut command = helm_command(self.dir.path());
            command.arg("template").arg("x").arg(self.dir.path().join("c"));
            for flag in flags {
                // `--set=` so that a flag starting with `-` stays a value.
                command.arg(format!("--set={flag}"));
            }
            let stdout = run_helm(&mut command)?;
            let mut printed = printed_values(&stdout);
            Ok(printed.remove("values").unwrap_or_else(|| panic!("helm printed no values:\n{stdout}")))
        }

        pub fn check(&self, cases: &[SetCase]) -> Checked {
            batched(cases, &|case: &SetCase| ours(&case.rendered(None)).is_err(), &mut |cases| self.run(cases))
        }

        fn run(&self, cases: &[SetCase]) -> Option<Checked> {
            if let [case] = cases {
                let flags = case.rendered(None);
                return Some(match (ours(&flags), self.helm(&flags)) {
                    (Ok(a), Ok(b)) if a == b => Ok(()),
                    (Err(_), Err(_)) => Ok(()),
                    (a, b) => Err(Mismatch::at(0, format!("--set {flags:?}: ours {a:?}, helm {b:?}"))),
                });
            }
            let mut flags = Vec::new();
            let mut owner = Vec::new();
            for (index, case) in cases.iter().enumerate() {
                for flag in case.rendered(Some(&format!("c{index}"))) {
                    flags.push(flag);
                    owner.push(index);
                }
            }
            let helm = self.helm(&flags).ok()?;
            let ours = match ours(&flags) {
                Ok(ours) => ours,
                Err(flag) => {
                    return Some(Err(Mismatch::at(owner[flag], format!("we refuse {:?}, helm does not", flags[flag]))))
                }
            };
            let empty = serde_json::Map::new();
            let (ours, helm) = (ours.as_object().unwrap_or(&empty), helm.as_object().unwrap_or(&empty));
            let keys: BTreeSet<&String> = ours.keys().chain(helm.keys()).collect();
            for key in keys {
                if ours.get(key) != helm.get(key) {
                    let case = key.strip_prefix('c').and_then(|n| n.parse::<usize>().ok()).filter(|&n| n < cases.len());
                    let reason = format!("key {key}: ours {:?}, helm {:?}", ours.get(key), helm.get(key));
                    return Some(Err(Mismatch { case, reason }));
                }
            }
            Some(Ok(()))
        }
    }

    #[test]
    fn set_flags_parse_as_helm_parses_them() {
        let chart = Chart::new();
        differential("set", 600, 60, case(), |cases| chart.check(cases));
    }
}

// ---------------------------------------------------------------------------
// 2. The values merge (core/values/coalesce.rs) against `helm template` of a
//    chart with subcharts.

mod coalesce {
    use super::*;
    use crate::core::values::coalesce::{self as port, ChartNode, Coalescer, DependencyDecl};
    use crate::core::values::{load, tree};

    /// A subchart: its values.yaml, how its parent declares it, its own subcharts.
    #[derive(Debug, Clone)]
    pub struct Sub {
        pub name: String,
        pub values: Json,
        pub condition: Option<String>,
        /// Tag names (`t1`, `t2`); made unique per case when rendered.
        pub tags: Vec<String>,
        pub subs: Vec<Sub>,
    }

    /// One case: a chart (`k<i>` of the batch's umbrella) with its values
    /// and subcharts, and its sections of two `-f` files. A `tags` key in a
    /// section goes to the top level (where Helm reads tags), renamed.
    #[derive(Debug, Clone)]
    pub struct MergeCase {
        pub values: Json,
        pub subs: Vec<Sub>,
        pub user: [Json; 2],
    }

    const INNER: &[&str] = &["a", "b", "c"];
    const LEVEL1: &[&str] = &["s1", "s2", "s3"];
    const LEVEL2: &[&str] = &["u1", "u2"];
    const TAGS: &[&str] = &["t1", "t2"];

    fn scalar() -> BoxedStrategy<Json> {
        prop_oneof![
            2 => Just(Json::Null),
            2 => any::<bool>().prop_map(Json::Bool),
            3 => (-3i64..100).prop_map(Json::from),
            1 => select(&["1.5", "2.0", "1e3"]).prop_map(|f| serde_json::from_str(&f).unwrap_or(Json::Null)),
            3 => select(&["x", "", "true", "y z"]).prop_map(Json::from),
        ]
        .boxed()
    }

    /// Any value: scalars, lists and maps of keys `a`, `b`, `c`.
    fn plain(depth: u32) -> BoxedStrategy<Json> {
        let leaf = prop_oneof![4 => scalar(), 1 => prop::collection::vec(scalar(), 0..3).prop_map(Json::Array)];
        if depth == 0 {
            return leaf.boxed();
        }
        prop_oneof![3 => leaf, 2 => map_of(INNER, depth - 1)].boxed()
    }

    fn map_of(keys: &'static [&'static str], depth: u32) -> BoxedStrategy<Json> {
        object(keys.iter().map(|k| (*k, plain(depth))).collect(), 0.5)
    }

    /// An object whose entries each appear with probability `p`.
    fn object(entries: Vec<(&'static str, BoxedStrategy<Json>)>, p: f64) -> BoxedStrategy<Json> {
        let entries: Vec<_> = entries
            .into_iter()
            .map(|(key, value)| proptest::option::weighted(p, value).prop_map(move |v| v.map(|v| (key, v))))
            .collect();
        entries
            .prop_map(|pairs| Json::Object(pairs.into_iter().flatten().map(|(k, v)| (k.to_string(), v)).collect()))
            .boxed()
    }

    /// Values for a chart whose subcharts may be called `children`: plain
    /// keys, `global`, `enabled`, and sections for the children (maps
    /// mostly; a scalar makes helm refuse, a null deletes).
    fn section(children: &'static [&'static str], depth: u32) -> BoxedStrategy<Json> {
        let mut entries: Vec<(&'static str, BoxedStrategy<Json>)> = vec![
            ("a", plain(2)),
            ("b", plain(1)),
            ("enabled", prop_oneof![4 => any::<bool>().prop_map(Json::Bool), 1 => scalar()].boxed()),
            ("global", prop_oneof![6 => map_of(INNER, 2), 1 => scalar()].boxed()),
        ];
        if depth > 0 {
            for child in children {
                let inner = if depth > 1 { next_level(children) } else { &[] };
                entries.push((*child, prop_oneof![12 => section(inner, depth - 1), 1 => scalar()].boxed()));
            }
        }
        object(entries, 0.4)
    }

    /// The names the subcharts of a chart called one of `names` may have.
    fn next_level(names: &[&str]) -> &'static [&'static str] {
        if names == LEVEL1 {
            LEVEL2
        } else {
            &[]
        }
    }

    fn subs(names: &'static [&'static str], children: &'static [&'static str], depth: u32) -> BoxedStrategy<Vec<Sub>> {
        let max = if depth > 1 { 3 } else { 1 };
        prop::sample::subsequence(names, 0..=max.min(names.len()))
            .prop_flat_map(move |chosen| {
                chosen
                    .into_iter()
                    .map(|name| {
                        let condition = prop::option::weighted(
                            0.3,
                            select(&["{n}.enabled", "{n}.a", "a", "{n}.enabled,a", "{n}"])
                                .prop_map(move |c| c.replace("{n}", name)),
                        );
                        let tags = prop::sample::subsequence(TAGS, 0..=2)
                            .prop_map(|t| t.into_iter().map(str::to_string).collect::<Vec<_>>());
                        let grandchildren =
                            if depth > 1 { subs(children, &[], depth - 1) } else { Just(Vec::new()).boxed() };
                        let own = if depth > 1 { children } else { &[] };
                        (section(own, depth), condition, prop::option::weighted(0.2, tags), grandchildren).prop_map(
                            move |(values, condition, tags, subs)| Sub {
                                name: name.to_string(),
                                values,
                                condition,
                                tags: tags.unwrap_or_default(),
                                subs,
                            },
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .boxed()
    }

    fn user_section() -> BoxedStrategy<Json> {
        let tags = object(vec![("t1", scalar()), ("t2", any::<bool>().prop_map(Json::Bool).boxed())], 0.5);
        prop_oneof![
            20 => (section(LEVEL1, 2), prop::option::weighted(0.2, tags)).prop_map(|(mut s, tags)| {
                if let (Some(map), Some(tags)) = (s.as_object_mut(), tags) {
                    map.insert("tags".into(), tags);
                }
                s
            }),
            1 => scalar(),
        ]
        .boxed()
    }

    pub fn case() -> impl Strategy<Value = MergeCase> {
        (section(LEVEL1, 2), subs(LEVEL1, LEVEL2, 2), user_section(), user_section())
            .prop_map(|(values, subs, a, b)| MergeCase { values, subs, user: [a, b] })
    }

    /// What the batch looks like on disk and to our port.
    struct Rendered {
        /// Top-level `-f` files.
        files: [Json; 2],
    }

    fn tag_name(case: usize, tag: &str) -> String {
        format!("k{case}{tag}")
    }

    /// Writes `<dir>/Chart.yaml`, values.yaml, the template and the subcharts.
    fn write_chart(dir: &Path, name: &str, key: &str, values: &Json, subs: &[Sub], case: usize) {
        let dependencies = subs
            .iter()
            .map(|sub| {
                let mut dep = serde_json::json!({"name": sub.name, "version": "0.1.0"});
                if let Some(condition) = &sub.condition {
                    dep["condition"] = Json::from(condition.clone());
                }
                if !sub.tags.is_empty() {
                    dep["tags"] = sub.tags.iter().map(|t| Json::from(tag_name(case, t))).collect();
                }
                dep
            })
            .collect();
        write(&dir.join("Chart.yaml"), &chart_yaml(name, dependencies));
        write(&dir.join("values.yaml"), &values.to_string());
        write(&dir.join("templates/values.yaml"), &values_template(key));
        for sub in subs {
            write_chart(
                &dir.join("charts").join(&sub.name),
                &sub.name,
                &format!("{key}.{}", sub.name),
                &sub.values,
                &sub.subs,
                case,
            );
        }
    }

    fn render(dir: &Path, cases: &[MergeCase]) -> Rendered {
        let umbrella = dir.join("umbrella");
        let dependencies =
            (0..cases.len()).map(|i| serde_json::json!({"name": format!("k{i}"), "version": "0.1.0"})).collect();
        write(&umbrella.join("Chart.yaml"), &chart_yaml("umbrella", dependencies));
        for (index, case) in cases.iter().enumerate() {
            let name = format!("k{index}");
            write_chart(&umbrella.join("charts").join(&name), &name, &name, &case.values, &case.subs, index);
        }
        let rendered = user_files(cases);
        for (index, file) in rendered.files.iter().enumerate() {
            write(&dir.join(format!("user-{index}.yaml")), &file.to_string());
        }
        rendered
    }

    /// The two `-f` files: each case's sections under `k<i>`, its tags at the top.
    fn user_files(cases: &[MergeCase]) -> Rendered {
        let mut files = [serde_json::Map::new(), serde_json::Map::new()];
        for (index, case) in cases.iter().enumerate() {
            for (file, section) in files.iter_mut().zip(&case.user) {
                let mut section = section.clone();
                if let Some(tags) = section.as_object_mut().and_then(|s| s.remove("tags")) {
                    let top = file.entry("tags").or_insert_with(|| Json::Object(Default::default()));
                    if let (Some(top), Some(tags)) = (top.as_object_mut(), tags.as_object()) {
                        for (tag, value) in tags {
                            top.insert(tag_name(index, tag), value.clone());
                        }
                    }
                }
                file.insert(format!("k{index}"), section);
            }
        }
        let [a, b] = files;
        Rendered { files: [Json::Object(a), Json::Object(b)] }
    }

    /// The same charts as our port sees them (what `values::charts` loads).
    fn node(name: &str, values: &Json, subs: &[Sub], case: usize) -> anyhow::Result<ChartNode> {
        let values = load::parse(&values.to_string(), &format!("{name}/values.yaml"), 1)?;
        let decls = subs
            .iter()
            .map(|sub| DependencyDecl {
                name: sub.name.clone(),
                condition: sub.condition.clone(),
                tags: sub.tags.iter().map(|t| tag_name(case, t)).collect(),
                import_values: false,
                enabled: true,
            })
            .collect();
        let deps =
            subs.iter().map(|sub| node(&sub.name, &sub.values, &sub.subs, case)).collect::<anyhow::Result<_>>()?;
        Ok(ChartNode { name: name.to_string(), label: name.to_string(), values, decls, deps, remote: None })
    }

    /// Our `.Values` of every chart that is rendered, keyed like the templates.
    fn ours(cases: &[MergeCase], rendered: &Rendered) -> anyhow::Result<BTreeMap<String, Json>> {
        let mut top = ChartNode {
            name: "umbrella".into(),
            label: "umbrella".into(),
            values: tree::new_table(),
            decls: (0..cases.len())
                .map(|i| DependencyDecl {
                    name: format!("k{i}"),
                    condition: None,
                    tags: Vec::new(),
                    import_values: false,
                    enabled: true,
                })
                .collect(),
            deps: cases
                .iter()
                .enumerate()
                .map(|(i, case)| node(&format!("k{i}"), &case.values, &case.subs, i))
                .collect::<anyhow::Result<_>>()?,
            remote: None,
        };
        // What `values::compute` does: -f files merged, then the three passes.
        let mut user = tree::new_table();
        for (index, file) in rendered.files.iter().enumerate() {
            user = load::merge_maps(&user, &load::parse(&file.to_string(), "user.yaml", 2 + index)?);
        }
        let mut notes = Vec::new();
        let mut coalescer = Coalescer::default();
        port::process_enabled(&mut coalescer, &mut top, &user, "", &[], &mut notes)?;
        port::process_import_values(&mut coalescer, &mut top, &mut notes)?;
        let all = Coalescer::default().coalesce_final(&top, &user)?;
        let mut found = BTreeMap::new();
        for dep in &top.deps {
            collect(dep, &all, &dep.name, &mut found);
        }
        Ok(found)
    }

    /// Helm's engine gives a subchart `.Values.<name>` if it is a map, else `{}`.
    fn collect(chart: &ChartNode, parent: &tree::Table, key: &str, found: &mut BTreeMap<String, Json>) {
        let section =
            tree::get(parent, &chart.name).and_then(|n| n.as_table().cloned()).unwrap_or_else(tree::new_table);
        found.insert(key.to_string(), tree::table_to_plain(&section));
        for dep in &chart.deps {
            collect(dep, &section, &format!("{key}.{}", dep.name), found);
        }
    }

    /// Numbers compared by value: helm reads values files' numbers as
    /// float64 (2.0 prints as 2), we keep integers and floats apart.
    fn numbers_as_floats(value: &Json) -> Json {
        match value {
            Json::Number(n) => n.as_f64().and_then(serde_json::Number::from_f64).map_or(Json::Null, Json::Number),
            Json::Array(items) => Json::Array(items.iter().map(numbers_as_floats).collect()),
            Json::Object(map) => Json::Object(map.iter().map(|(k, v)| (k.clone(), numbers_as_floats(v))).collect()),
            other => other.clone(),
        }
    }

    fn case_of(key: &str, cases: usize) -> Option<usize> {
        let digits: String = key.strip_prefix('k')?.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok().filter(|&n| n < cases)
    }

    pub fn check(cases: &[MergeCase]) -> Checked {
        let we_refuse = |case: &MergeCase| {
            let alone = std::slice::from_ref(case);
            ours(alone, &user_files(alone)).is_err()
        };
        batched(cases, &we_refuse, &mut run)
    }

    fn run(cases: &[MergeCase]) -> Option<Checked> {
        let dir = scratch();
        let rendered = render(dir.path(), cases);
        let mut command = helm_command(dir.path());
        command.current_dir(dir.path()).args(["template", "x", "umbrella", "-f", "user-0.yaml", "-f", "user-1.yaml"]);
        let helm = run_helm(&mut command);
        let ours = ours(cases, &rendered);
        let (helm, ours) = match (helm, ours) {
            (Ok(helm), Ok(ours)) => (printed_values(&helm), ours),
            (Err(_), _) if cases.len() > 1 => return None,
            (Err(_), Err(_)) => return Some(Ok(())),
            (Err(err), Ok(_)) => {
                return Some(Err(Mismatch::at(0, format!("helm refuses ({}), we do not", err.trim()))))
            }
            (Ok(_), Err(err)) => return Some(Err(Mismatch::somewhere(format!("we refuse ({err:#}), helm does not")))),
        };
        let keys: BTreeSet<&String> = ours.keys().chain(helm.keys()).collect();
        for key in keys {
            let (a, b) = (ours.get(key).map(numbers_as_floats), helm.get(key).map(numbers_as_floats));
            if a != b {
                let reason = format!(
                    ".Values of {key}: ours {}, helm {}",
                    a.map_or("(not rendered)".into(), |v| v.to_string()),
                    b.map_or("(not rendered)".into(), |v| v.to_string())
                );
                return Some(Err(Mismatch { case: case_of(key, cases.len()), reason }));
            }
        }
        Some(Ok(()))
    }

    #[test]
    fn values_merge_as_helm_merges_them() {
        differential("coalesce", 240, 40, case(), check);
    }
}

// ---------------------------------------------------------------------------
// 3. `.helmignore` (util/helmignore.rs) against the files `helm package` keeps.

mod helmignore {
    use super::*;
    use crate::util::helmignore::HelmIgnore;

    /// One case: a `.helmignore` and the files of a chart (besides
    /// Chart.yaml and the .helmignore itself).
    #[derive(Debug, Clone)]
    pub struct IgnoreCase {
        pub ignore: String,
        pub files: Vec<String>,
    }

    impl IgnoreCase {
        pub fn new(ignore: &str, files: &[&str]) -> IgnoreCase {
            IgnoreCase { ignore: ignore.to_string(), files: files.iter().map(|f| f.to_string()).collect() }
        }

        fn all_files(&self) -> Vec<String> {
            let mut all = vec!["Chart.yaml".to_string(), ".helmignore".to_string()];
            all.extend(self.files.iter().cloned());
            all
        }

        /// What we expect in the archive; `None` when helm must refuse (a
        /// rule it cannot parse, or Chart.yaml left out).
        fn expected(&self) -> Option<BTreeSet<String>> {
            let rules = HelmIgnore::parse(&self.ignore).ok()?;
            let kept: BTreeSet<String> = self.all_files().into_iter().filter(|f| !rules.is_ignored(f, false)).collect();
            kept.contains("Chart.yaml").then_some(kept)
        }
    }

    fn atom() -> impl Strategy<Value = String> {
        prop_oneof![
            80 => select(&["a", "b", "ab", ".a", "*", "?", "[ab]", "[^a]", "[a-b]", r"\a", "é", "/", "a/", "/a"]),
            12 => select(&["templates", "Chart.yaml", ".helmignore", "*.yaml", "[!a]", r"[\]]", r"\*", "[é]", "[^/]"]),
            1 => select(&["[", r"\", "**", "[]", "[a-", "[-a]", "[]a]", "[^]"]),
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        let pattern = prop::collection::vec(atom(), 1..4).prop_map(|atoms| atoms.concat());
        prop_oneof![
            12 => (prop::bool::weighted(0.05), prop::bool::weighted(0.15), pattern, prop::bool::weighted(0.2))
                .prop_map(|(negate, root, pattern, dir)| {
                    let flag = |on: bool, text: &'static str| if on { text } else { "" };
                    format!("{}{}{pattern}{}", flag(negate, "!"), flag(root, "/"), flag(dir, "/"))
                }),
            1 => select(&["", "# a comment", "  *.b  ", "\t#x", " !a"]),
            // A negated rule ignores every path it does not match, so one
            // that lets Chart.yaml through (else helm refuses the chart).
            2 => select(&["!*.yaml", "!*", "!C*", "!*.*", "![A-Z]*", "!Chart.yaml", "!*a*", "!/*", "!*/"]),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        (prop::bool::weighted(0.05), prop::collection::vec(line(), 0..5), prop::bool::weighted(0.1)).prop_map(
            |(bom, lines, crlf)| {
                let body = lines.join(if crlf { "\r\n" } else { "\n" });
                format!("{}{body}\n", if bom { "\u{feff}" } else { "" })
            },
        )
    }

    fn files() -> impl Strategy<Value = Vec<String>> {
        let segment = select(&["a", "b", "ab", ".a", "a.b", "b.a", "é", "templates", "x.yaml"]);
        let path = prop::collection::vec(segment, 1..4).prop_map(|segments| segments.join("/"));
        prop::collection::vec(path, 1..7).prop_map(|paths| {
            // A path cannot be both a file and a folder; Chart.yaml and
            // .helmignore are always there; charts/ would hold subcharts.
            let mut kept: Vec<String> = Vec::new();
            for path in paths {
                let clashes = kept
                    .iter()
                    .any(|k| k == &path || k.starts_with(&format!("{path}/")) || path.starts_with(&format!("{k}/")));
                if !clashes && path != "Chart.yaml" && path != ".helmignore" {
                    kept.push(path);
                }
            }
            kept
        })
    }

    pub fn case() -> impl Strategy<Value = IgnoreCase> {
        (text(), files()).prop_map(|(ignore, files)| IgnoreCase { ignore, files })
    }

    /// The files in `<name>-0.1.0.tgz`, relative to the chart.
    fn archive_files(archive: &Path, name: &str) -> BTreeSet<String> {
        let file = std::fs::File::open(archive).unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut found = BTreeSet::new();
        for entry in tar.entries().expect("a tar archive") {
            let entry = entry.expect("a tar entry");
            let path = entry.path().expect("a path").to_string_lossy().into_owned();
            let rel = path.strip_prefix(&format!("{name}/")).unwrap_or_else(|| panic!("{path} is outside {name}/"));
            found.insert(rel.to_string());
        }
        found
    }

    pub fn check(cases: &[IgnoreCase]) -> Checked {
        batched(cases, &|case: &IgnoreCase| case.expected().is_none(), &mut run)
    }

    fn run(cases: &[IgnoreCase]) -> Option<Checked> {
        let dir = scratch();
        let mut command = helm_command(dir.path());
        command.current_dir(dir.path()).args(["package", "-d", "out"]);
        for (index, case) in cases.iter().enumerate() {
            let name = format!("h{index}");
            let chart = dir.path().join(&name);
            write(&chart.join("Chart.yaml"), &chart_yaml(&name, Vec::new()));
            write(&chart.join(".helmignore"), &case.ignore);
            for file in &case.files {
                write(&chart.join(file), "x: 1\n");
            }
            command.arg(&name);
        }
        let packaged = run_helm(&mut command);
        if packaged.is_err() && cases.len() > 1 {
            return None;
        }
        for (index, case) in cases.iter().enumerate() {
            let expected = case.expected();
            let name = format!("h{index}");
            let reason = match (&packaged, expected) {
                (Err(_), None) => continue,
                (Err(err), Some(kept)) => format!("helm refuses ({}), we keep {kept:?}", err.trim()),
                (Ok(_), None) => "we expect helm to refuse (a bad rule, or Chart.yaml ignored), it does not".into(),
                (Ok(_), Some(kept)) => {
                    let archived = archive_files(&dir.path().join(format!("out/{name}-0.1.0.tgz")), &name);
                    if archived == kept {
                        continue;
                    }
                    format!("we keep {kept:?}, helm packages {archived:?}")
                }
            };
            return Some(Err(Mismatch::at(index, reason)));
        }
        Some(Ok(()))
    }

    #[test]
    fn helmignore_matches_what_helm_packages() {
        differential("helmignore", 400, 50, case(), check);
    }
}

// ---------------------------------------------------------------------------
// 4. Version constraints (core/versions.rs) against sprig's `semverCompare`.

mod constraints {
    use super::*;
    use crate::core::versions::{check_constraint, Constraint};

    /// One case: a constraint and a (strict semver) version.
    #[derive(Debug, Clone)]
    pub struct ConstraintCase {
        pub constraint: String,
        pub version: String,
    }

    impl ConstraintCase {
        pub fn new(constraint: &str, version: &str) -> ConstraintCase {
            ConstraintCase { constraint: constraint.to_string(), version: version.to_string() }
        }

        /// Whether our check allows the version, as `inrepo` reads it.
        fn ours(&self) -> bool {
            let version = semver::Version::parse(&self.version).expect("the generated versions are strict semver");
            match check_constraint(&self.constraint, &version) {
                Constraint::Exact(exact) => exact == version,
                Constraint::Allows => true,
                Constraint::Refuses(_) => false,
            }
        }
    }

    fn number() -> impl Strategy<Value = String> + Clone {
        prop_oneof![10 => select(&["0", "1", "2"]), 1 => select(&["10", "00", "01"])]
    }

    fn prerelease() -> impl Strategy<Value = String> + Clone {
        prop_oneof![8 => Just(String::new()), 1 => select(&["-rc.1", "-alpha", "-0", "-beta.2", "-rc.1.2", "-1"])]
    }

    fn build() -> impl Strategy<Value = String> + Clone {
        prop_oneof![12 => Just(String::new()), 1 => select(&["+b1", "+001"])]
    }

    pub fn version() -> impl Strategy<Value = String> {
        (select(&["0", "1", "2"]), select(&["0", "1", "2"]), select(&["0", "1", "2"]), prerelease(), build())
            .prop_map(|(a, b, c, pre, build)| format!("{a}.{b}.{c}{pre}{build}"))
    }

    /// A version in a constraint: partial, with wildcards, a `v`.
    fn partial() -> impl Strategy<Value = String> {
        let part = prop_oneof![8 => number(), 1 => select(&["x", "X", "*"])];
        (
            prop::bool::weighted(0.1),
            part.clone(),
            prop::option::weighted(0.8, part.clone()),
            prop::option::weighted(0.7, part),
            prerelease(),
            build(),
        )
            .prop_map(|(v, a, b, c, pre, build)| {
                let mut text = format!("{}{a}", if v { "v" } else { "" });
                if let Some(b) = b {
                    text.push('.');
                    text.push_str(&b);
                    if let Some(c) = c {
                        text.push('.');
                        text.push_str(&c);
                    }
                }
                text + &pre + &build
            })
    }

    fn comparator() -> impl Strategy<Value = String> {
        let op = prop_oneof![
            10 => select(&["", "=", ">", "<", ">=", "<=", "~", "^"]),
            3 => select(&["!=", "~>", "=>", "=<"]),
        ];
        prop_oneof![
            36 => (op, select(&["", "", "", " "]), partial()).prop_map(|(op, space, v)| format!("{op}{space}{v}")),
            // Masterminds refuses a range after another comparator (its
            // rewrite takes the space before the range along).
            3 => (partial(), partial()).prop_map(|(a, b)| format!("{a} - {b}")),
            1 => select(&["*", "x", "", "latest", ">=", "1.2.3.4", "=>1", "~=1", "1 -2", "a"]),
        ]
    }

    fn constraint() -> impl Strategy<Value = String> {
        let separator = select(&[" ", ", ", ",", "  "]);
        let group = (comparator(), prop::collection::vec((separator, comparator()), 0..3))
            .prop_map(|(first, rest)| rest.into_iter().fold(first, |acc, (sep, c)| acc + &sep + &c));
        (prop::collection::vec(group, 1..3), select(&["||", " || ", "|| "]), select(&["", " "]))
            .prop_map(|(groups, or, pad)| format!("{pad}{}{pad}", groups.join(&or)))
    }

    pub fn case() -> impl Strategy<Value = ConstraintCase> {
        (constraint(), version()).prop_map(|(constraint, version)| ConstraintCase { constraint, version })
    }

    pub fn check(cases: &[ConstraintCase]) -> Checked {
        let dir = scratch();
        // Only a hint for batching (each case is compared either way): the
        // constraints we cannot read go alone, helm stops at the first one.
        let we_refuse = |case: &ConstraintCase| {
            let version = semver::Version::parse(&case.version).expect("the generated versions are strict semver");
            let answer = check_constraint(&case.constraint, &version);
            matches!(answer, Constraint::Refuses(why) if why.contains("Helm can read"))
        };
        batched(cases, &we_refuse, &mut |cases| run(dir.path(), cases))
    }

    /// One template line per case; raw Go strings need no escaping (the
    /// generated text has no backquote).
    fn run(dir: &Path, cases: &[ConstraintCase]) -> Option<Checked> {
        let mut template = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: semver\ndata:\n");
        for (index, case) in cases.iter().enumerate() {
            assert!(!case.constraint.contains('`') && !case.version.contains('`'));
            template.push_str(&format!(
                "  semver-{index}: \"{{{{ semverCompare `{}` `{}` }}}}\"\n",
                case.constraint, case.version
            ));
        }
        write(&dir.join("c/Chart.yaml"), &chart_yaml("c", Vec::new()));
        write(&dir.join("c/templates/semver.yaml"), &template);
        let mut command = helm_command(dir);
        command.arg("template").arg("x").arg(dir.join("c"));
        let stdout = match run_helm(&mut command) {
            Ok(stdout) => stdout,
            Err(_) if cases.len() > 1 => return None,
            // Helm cannot read the constraint: we must not allow anything.
            Err(err) if cases[0].ours() => {
                return Some(Err(Mismatch::at(0, format!("helm refuses ({}), we allow", err.trim()))))
            }
            Err(_) => return Some(Ok(())),
        };
        let mut answers = BTreeMap::new();
        for line in stdout.lines() {
            if let Some((key, value)) = line.trim().strip_prefix("semver-").and_then(|rest| rest.split_once(": ")) {
                answers.insert(key.parse::<usize>().expect("an index"), value.trim_matches('"') == "true");
            }
        }
        for (index, case) in cases.iter().enumerate() {
            let helm = *answers.get(&index).unwrap_or_else(|| panic!("helm printed no semver-{index}:\n{stdout}"));
            let ours = case.ours();
            if ours != helm {
                return Some(Err(Mismatch::at(
                    index,
                    format!("semverCompare {:?} {:?}: ours {ours}, helm {helm}", case.constraint, case.version),
                )));
            }
        }
        Some(Ok(()))
    }

    #[test]
    fn constraints_allow_what_helm_allows() {
        differential("constraints", 1500, 150, case(), check);
    }
}

// ---------------------------------------------------------------------------
// Inputs that once differed from helm, checked against helm on every run.

mod regressions {
    use super::constraints::{self, ConstraintCase};
    use super::helmignore::{self, IgnoreCase};
    use super::set_flags::{self, SetCase};
    use super::*;

    fn assert_agrees<C: Debug>(name: &str, cases: &[C], check: impl Fn(&[C]) -> Checked) {
        if let Err(mismatch) = check(cases) {
            let case = mismatch.case.and_then(|i| cases.get(i));
            panic!("{name}: our port and helm differ again: {}\ncase: {case:#?}", mismatch.reason);
        }
    }

    #[test]
    fn set_flags() {
        let cases = [
            // Go's EqualFold folds U+017F (ſ) to s: helm reads a boolean.
            SetCase::new(&[&["a=falſe"]]),
            // A plain value at the end of the input is not an EOF to Helm:
            // the new map in the list is kept, an empty nested key refused.
            SetCase::new(&[&["a[0].a=true"]]),
            SetCase::new(&[&["a.=x"]]),
        ];
        let chart = set_flags::Chart::new();
        assert_agrees("set", &cases, |cases| chart.check(cases));
    }

    #[test]
    fn helmignore() {
        let cases = [
            // Go's Match validates only the chunks it reaches: helm takes
            // the rule (matching "abc" fails at `é`) and it matches nothing.
            IgnoreCase::new("é*[]\n", &["a", "é", "éa"]),
            IgnoreCase::new("!C*\né*[-a]\n", &["a", "éb"]),
        ];
        assert_agrees("helmignore", &cases, helmignore::check);
    }

    /// Each of these differed while `check_constraint` translated
    /// Masterminds constraints into the `semver` crate's `VersionReq`.
    #[test]
    fn constraints() {
        let cases = [
            // A partial version with a prerelease (the crate cannot read it).
            ConstraintCase::new(">0 >0-rc.1", "1.0.0"),
            // A space after the operator.
            ConstraintCase::new(">= 1.2.3", "1.2.4"),
            // Operators and ranges the crate does not have.
            ConstraintCase::new("1.2 - 1.4", "1.3.0"),
            ConstraintCase::new("!=1.2.3", "1.2.4"),
            ConstraintCase::new("~>1.2", "1.2.5"),
            ConstraintCase::new("=>1.0.0", "1.0.0"),
            ConstraintCase::new("=<1.0.0", "0.9.0"),
            // A prerelease in the group lets every prerelease through.
            ConstraintCase::new(">=1.0.0-0", "2.0.0-rc.1"),
            ConstraintCase::new("1.2.x-rc.1", "1.2.1-rc.1"),
            // Build metadata does not count.
            ConstraintCase::new("1.0.0", "1.0.0+b1"),
        ];
        assert_agrees("constraints", &cases, constraints::check);
    }
}
