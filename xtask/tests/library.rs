//! Unit tests of the library chart `charts/_common` (named `common`) with
//! helm-unittest, in the style of bjw-s's `common` library: a library chart
//! renders nothing on its own, so the application chart `test-charts/common`
//! depends on it, includes its object templates the way the service charts
//! do, and holds one helm-unittest suite file per area of the library in
//! `tests/<area>_test.yaml`.
//!
//! The test chart sits outside `charts/` and `helm/`, the folders the xtask
//! scans, so it is never linted, listed in CI or published as a chart. Both
//! charts are copied into a temporary folder, keeping their relative places
//! (the test chart names `file://../../charts/_common`), `helm dependency
//! build` vendors the library there, and the pinned helm runs the pinned
//! helm-unittest plugin (`cargo xtask tools --chart-testing` provides both; a
//! missing tool fails the test, it is never skipped). Nothing is written into
//! the checkout.
//!
//! A second test reads every `fail` (and `required`) message of
//! `charts/_common/templates/*.tpl` and requires a `failedTemplate:
//! errorMessage:` assertion of that message in the suites, so a new check of
//! the library cannot land without a test.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use support::{copy_dir, describe, repo_root, run_ok, xtask};
use yaml_serde::Value;

/// The test chart, relative to the repository root.
const TEST_CHART: &str = "test-charts/common";
/// The library chart, relative to the repository root.
const LIBRARY: &str = "charts/_common";

/// The pinned helm and the plugins folder holding the pinned helm-unittest.
struct UnittestTools {
    helm: PathBuf,
    plugins: PathBuf,
}

/// Reads `xtask tools --chart-testing` (`name<TAB>version<TAB>path` lines):
/// `helm` is the helm binary, `helm-unittest` a folder to use as
/// `HELM_PLUGINS`. Panics when either is missing.
fn unittest_tools() -> UnittestTools {
    let output = run_ok(xtask().args(["tools", "--chart-testing"]));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let helm = support::parse_tools(&stdout).helm;
    let plugins = stdout
        .lines()
        .find_map(|line| line.strip_prefix("helm-unittest\t"))
        .and_then(|rest| rest.split('\t').nth(1))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("`xtask tools --chart-testing` printed no helm-unittest line:\n{stdout}"));
    assert!(helm.is_file(), "the pinned helm {} is not a file", helm.display());
    assert!(
        plugins.join("unittest").join("plugin.yaml").is_file(),
        "the helm-unittest plugins folder {} holds no unittest/plugin.yaml",
        plugins.display()
    );
    UnittestTools { helm, plugins }
}

/// Every YAML document of a file, parsed (a suite file may hold several
/// suites separated by `---`, as helm-unittest allows).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|err| panic!("{} is not YAML: {err}", path.display())))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The suite files of the test chart, sorted; each must match helm-unittest's
/// default glob `tests/*_test.yaml`, or it would silently not run.
fn suite_files() -> Vec<PathBuf> {
    let dir = repo_root().join(TEST_CHART).join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("list {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        assert!(
            name.ends_with("_test.yaml"),
            "{} does not match tests/*_test.yaml: helm-unittest would not run it",
            file.display()
        );
    }
    assert!(!files.is_empty(), "no suite in {}", dir.display());
    files
}

/// Every string under a `failedTemplate.errorMessage` key of a suite document.
fn error_messages(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Mapping(map) => {
            for (key, inner) in map {
                if key.as_str() == Some("failedTemplate") {
                    if let Some(message) = inner.get("errorMessage").and_then(Value::as_str) {
                        found.push(message.to_string());
                    }
                }
                error_messages(inner, found);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|item| error_messages(item, found)),
        _ => {}
    }
}

/// A message given to `fail` or `required` in a library template.
#[derive(Debug)]
struct FailMessage {
    /// `_check.tpl:22`.
    place: String,
    /// The Go string literal, unquoted; `printf` verbs (`%q`, `%s`, `%d`)
    /// stand for values.
    format: String,
}

impl FailMessage {
    /// The fixed parts between the `printf` verbs.
    fn fragments(&self) -> Vec<String> {
        let mut fragments = vec![String::new()];
        let mut chars = self.format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                fragments.last_mut().unwrap().push(c);
                continue;
            }
            match chars.next() {
                Some('%') => fragments.last_mut().unwrap().push('%'),
                Some(_) => fragments.push(String::new()),
                None => fragments.last_mut().unwrap().push('%'),
            }
        }
        fragments
    }

    /// Whether `message` is this format with some values put in.
    fn matches(&self, message: &str) -> bool {
        let fragments = self.fragments();
        let (first, last) = (&fragments[0], &fragments[fragments.len() - 1]);
        if fragments.len() == 1 {
            return message == first;
        }
        if message.len() < first.len() + last.len()
            || !message.starts_with(first.as_str())
            || !message.ends_with(last.as_str())
        {
            return false;
        }
        let mut rest = &message[first.len()..message.len() - last.len()];
        for middle in &fragments[1..fragments.len() - 1] {
            match rest.find(middle.as_str()) {
                Some(at) => rest = &rest[at + middle.len()..],
                None => return false,
            }
        }
        true
    }
}

/// The text of a template with its `/* ... */` comments blanked (newlines
/// kept, so line numbers stay right).
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("*/").map(|at| start + at + 2).unwrap_or(rest.len());
        out.extend(rest[start..end].chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Reads the Go string literal at the start of `text` (which starts with `"`).
fn go_string(text: &str) -> Option<String> {
    let mut chars = text.strip_prefix('"')?.chars();
    let mut out = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
}

/// Every `fail` and `required` call of the library's templates with its
/// message. The templates are read as tokens, so a word inside a string or a
/// comment is no call. Panics on a call whose message is not a literal (or a
/// `printf` of one): the coverage check could not read it.
fn library_fail_messages() -> Vec<FailMessage> {
    let dir = repo_root().join(LIBRARY).join("templates");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("list {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "tpl"))
        .collect();
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("read {}: {err}", file.display()));
        let code = without_comments(&text);
        let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$';
        // Only the actions ({{ ... }}) hold calls; the text between them is YAML.
        let mut at = 0;
        let mut in_action = false;
        while let Some(c) = code[at..].chars().next() {
            if !in_action {
                match code[at..].find("{{") {
                    Some(open) => (at, in_action) = (at + open + 2, true),
                    None => break,
                }
            } else if code[at..].starts_with("}}") {
                (at, in_action) = (at + 2, false);
            } else if c == '"' || c == '`' {
                // Skip a string: "..." with escapes, or a raw `...`.
                let mut escaped = false;
                let close = code[at + 1..].char_indices().find(|&(_, d)| {
                    let end = d == c && !escaped;
                    escaped = c == '"' && d == '\\' && !escaped;
                    end
                });
                at = close.map(|(i, _)| at + 1 + i + 1).unwrap_or(code.len());
            } else if is_ident(c) {
                let len = code[at..].find(|d: char| !is_ident(d)).unwrap_or(code.len() - at);
                let word = &code[at..at + len];
                if word == "fail" || word == "required" {
                    let line = code[..at].matches('\n').count() + 1;
                    let args = code[at + len..].trim_start();
                    let literal = args.strip_prefix("(printf").map(str::trim_start).unwrap_or(args);
                    let format = go_string(literal).unwrap_or_else(|| {
                        panic!(
                            "{name}:{line}: `{word}` without a literal message (or a printf of one): \
                             the coverage check of tests/library.rs cannot read it"
                        )
                    });
                    found.push(FailMessage { place: format!("{name}:{line}"), format });
                }
                at += len;
            } else {
                at += c.len_utf8();
            }
        }
    }
    found
}

/// Every `fail` of the library is reached by a test of the suites that
/// asserts its exact message.
#[test]
fn every_fail_message_of_the_library_is_tested() {
    let fails = library_fail_messages();
    assert!(fails.len() >= 20, "found only {} fail calls in {LIBRARY}/templates: {fails:#?}", fails.len());
    let mut messages = Vec::new();
    for file in suite_files() {
        for doc in documents(&file) {
            error_messages(&doc, &mut messages);
        }
    }
    let untested: Vec<String> = fails
        .iter()
        .filter(|fail| !messages.iter().any(|message| fail.matches(message)))
        .map(|fail| format!("  {}: {:?}", fail.place, fail.format))
        .collect();
    assert!(
        untested.is_empty(),
        "these `fail` messages of {LIBRARY} have no `failedTemplate: errorMessage:` test in {TEST_CHART}/tests \
         (give each a test that reaches it and asserts the exact message):\n{}",
        untested.join("\n")
    );
    println!(
        "{} fail calls of {LIBRARY}, each asserted by a test ({} failedTemplate messages)",
        fails.len(),
        messages.len()
    );
}

/// The version of a Chart.yaml, or of its dependency `dependency`.
fn chart_version(chart: &Path, dependency: Option<&str>) -> String {
    let path = chart.join("Chart.yaml");
    let doc = documents(&path).into_iter().next().unwrap_or_else(|| panic!("{} is empty", path.display()));
    let node = match dependency {
        None => Some(&doc),
        Some(name) => doc
            .get("dependencies")
            .and_then(Value::as_sequence)
            .and_then(|deps| deps.iter().find(|dep| dep.get("name").and_then(Value::as_str) == Some(name))),
    };
    node.and_then(|node| node.get("version"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no version for {dependency:?} in {}", path.display()))
        .to_string()
}

/// The number of suites helm-unittest should find: every document of the
/// suite files.
fn suite_count() -> usize {
    suite_files().iter().map(|file| documents(file).len()).sum()
}

/// helm-unittest passes on the test chart, with the library vendored in a
/// temporary copy.
#[test]
fn helm_unittest_passes_on_the_library() {
    let root = repo_root();
    let library_version = chart_version(&root.join(LIBRARY), None);
    let wanted = chart_version(&root.join(TEST_CHART), Some("common"));
    assert_eq!(wanted, library_version, "{TEST_CHART}/Chart.yaml must depend on the version of {LIBRARY}/Chart.yaml");

    let tools = unittest_tools();
    let temp = tempfile::tempdir().expect("temp dir");
    // The same relative places as in the repository, for file://../../charts/_common.
    // copy_dir leaves out a vendored charts/ and Chart.lock a developer may have.
    let chart = temp.path().join(TEST_CHART);
    copy_dir(&root.join(TEST_CHART), &chart);
    copy_dir(&root.join(LIBRARY), &temp.path().join(LIBRARY));

    let helm = |args: &[&str]| {
        let mut command = Command::new(&tools.helm);
        command
            .current_dir(&chart)
            .args(args)
            .env("HELM_PLUGINS", &tools.plugins)
            .env("HELM_CONFIG_HOME", temp.path().join("helm/config"))
            .env("HELM_CACHE_HOME", temp.path().join("helm/cache"))
            .env("HELM_DATA_HOME", temp.path().join("helm/data"));
        command
    };
    run_ok(&mut helm(&["dependency", "build", "."]));
    assert!(
        chart.join("charts").join(format!("common-{library_version}.tgz")).is_file(),
        "helm dependency build did not vendor common-{library_version}.tgz"
    );

    let started = std::time::Instant::now();
    // --strict: an unknown key in a suite (a misspelt assertion) is an error, not ignored.
    let output = helm(&["unittest", "--strict", "."]).output().expect("run helm unittest");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "helm unittest failed on {TEST_CHART}: {}", describe(&output));

    let suites = suite_count();
    let summary = format!("Test Suites: {suites} passed, {suites} total");
    assert!(
        stdout.contains(&summary),
        "helm unittest did not run the {suites} suites of {TEST_CHART}/tests (wanted {summary:?}): {}",
        describe(&output)
    );
    assert!(!stdout.contains("skipped"), "a suite or test was skipped: {}", describe(&output));
    let totals: Vec<&str> =
        stdout.lines().filter(|line| line.starts_with("Test Suites:") || line.starts_with("Tests:")).collect();
    println!("helm unittest on {TEST_CHART} in {elapsed:.2?}: {}", totals.join("; "));
}
