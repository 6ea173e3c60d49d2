//! Reading YAML files with errors a person can act on.
//!
//! Every YAML file the tool reads goes through here so that an error always
//! names the file and, where the parser knows it, the line and column
//! (`charts/cart/Chart.yaml:3:7: ...`). The parser (`yaml_serde`) bounds
//! recursion and alias repetition, so an alias bomb ("billion laughs") is
//! rejected after a bounded amount of work instead of being expanded; we add a
//! size cap and a check for binary content before parsing at all.
//!
//! `yaml_serde`'s parser needs time quadratic in the nesting depth before
//! its recursion limit applies (100,000 nested brackets: 49 s), so every text
//! is first read by `saphyr-parser`'s streaming parser, which stops at the
//! first node nested deeper than [`MAX_DEPTH`] after reading only that far,
//! and which also counts documents and aliases. The same event stream gives
//! the line and column of a value ([`locate`]), which `yaml_serde` does not
//! keep, so a name refused after parsing is still shown where it stands.

use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

/// Values and Chart.yaml files in a chart repository are small; anything over
/// this is almost certainly a mistake (a packaged archive renamed, a dump).
const MAX_YAML_BYTES: u64 = 8 * 1024 * 1024;

/// Nesting deeper than this is refused before `yaml_serde` sees the text.
/// A Kubernetes object nests about 15 levels; values files fewer.
pub const MAX_DEPTH: usize = 64;

/// Documents in one text: a render of 200 charts in one umbrella holds about
/// 3,300.
pub const MAX_DOCUMENTS: usize = 100_000;

/// Alias nodes (`*name`) in one text; `yaml_serde` separately bounds how
/// often an alias may be expanded.
pub const MAX_ALIASES: usize = 10_000;

/// A parse error with its place in the file, formatted `file:line:col: message`.
#[derive(Debug)]
pub struct YamlError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{}:{}: {}", self.file, line, column, self.message)
            }
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}
impl std::error::Error for YamlError {}

impl YamlError {
    /// The message with its place but without the file, for callers that
    /// name the file themselves: `message at line L column C`.
    pub fn reason(&self) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{} at line {line} column {column}", self.message),
            _ => self.message.clone(),
        }
    }
}

/// Reads `path` and deserialises it; `shown_as` is the name used in errors
/// (usually the path relative to the repository root).
pub fn load<T: DeserializeOwned>(path: &Path, shown_as: &str) -> Result<T> {
    let text = read_text(path, shown_as)?;
    parse(&text, shown_as).map_err(Into::into)
}

/// Reads a YAML file as text, refusing binary or oversized content with an
/// error that names the file.
pub fn read_text(path: &Path, shown_as: &str) -> Result<String> {
    let size = std::fs::metadata(path).with_context(|| format!("{shown_as}: cannot read file"))?.len();
    if size > MAX_YAML_BYTES {
        return Err(YamlError {
            file: shown_as.to_string(),
            line: None,
            column: None,
            message: format!("file is {size} bytes, over the {MAX_YAML_BYTES}-byte limit for YAML"),
        }
        .into());
    }
    let bytes = std::fs::read(path).with_context(|| format!("{shown_as}: cannot read file"))?;
    check_text(&bytes, shown_as)?;
    Ok(String::from_utf8(bytes).expect("checked by check_text"))
}

/// Binary content (NUL bytes or invalid UTF-8) is reported with the byte
/// offset's line and column, so the user finds the garbage.
fn check_text(bytes: &[u8], shown_as: &str) -> Result<(), YamlError> {
    let nul = bytes.iter().position(|&b| b == 0);
    let invalid = std::str::from_utf8(bytes).err().map(|err| err.valid_up_to());
    let bad_at = match (nul, invalid) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(offset) = bad_at {
        let before = &bytes[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        return Err(YamlError {
            file: shown_as.to_string(),
            line: Some(line),
            column: Some(offset - line_start + 1),
            message: "binary content: YAML files must be UTF-8 text".to_string(),
        });
    }
    Ok(())
}

/// Parses YAML text; errors carry `shown_as` and the parser's location.
pub fn parse<T: DeserializeOwned>(text: &str, shown_as: &str) -> Result<T, YamlError> {
    check_bounds(text, shown_as)?;
    yaml_serde::from_str(text).map_err(|err| {
        let location = err.location();
        YamlError {
            file: shown_as.to_string(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message: strip_location(&err.to_string()),
        }
    })
}

/// Refuses, in time linear in the text, nesting deeper than [`MAX_DEPTH`],
/// more than [`MAX_DOCUMENTS`] documents or more than [`MAX_ALIASES`]
/// aliases. A syntax error is left to `yaml_serde`, whose messages users
/// know; then the text is only checked for flow nesting, which is the one
/// shape that stays deep in few bytes (block nesting costs its indentation).
pub fn check_bounds(text: &str, shown_as: &str) -> Result<(), YamlError> {
    let refuse = |line: usize, column: usize, message: String| YamlError {
        file: shown_as.to_string(),
        line: Some(line),
        column: Some(column),
        message,
    };
    let (mut depth, mut documents, mut aliases) = (0usize, 0usize, 0usize);
    for event in saphyr_parser::Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(event) => event,
            Err(err) => {
                let at = err.marker();
                if err.info().contains("recursion limit") {
                    return Err(refuse(at.line(), at.col() + 1, too_deep()));
                }
                return check_flow_depth(text).map_err(|(line, column)| refuse(line, column, too_deep()));
            }
        };
        let (line, column) = (span.start.line(), span.start.col() + 1);
        match event {
            saphyr_parser::Event::MappingStart(..) | saphyr_parser::Event::SequenceStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(refuse(line, column, too_deep()));
                }
            }
            saphyr_parser::Event::MappingEnd | saphyr_parser::Event::SequenceEnd => depth = depth.saturating_sub(1),
            saphyr_parser::Event::DocumentStart(_) => {
                documents += 1;
                if documents > MAX_DOCUMENTS {
                    return Err(refuse(line, column, format!("more than {MAX_DOCUMENTS} documents")));
                }
            }
            saphyr_parser::Event::Alias(_) => {
                aliases += 1;
                if aliases > MAX_ALIASES {
                    return Err(refuse(line, column, format!("more than {MAX_ALIASES} aliases")));
                }
            }
            saphyr_parser::Event::StreamEnd => break,
            _ => {}
        }
    }
    Ok(())
}

fn too_deep() -> String {
    format!("nested more than {MAX_DEPTH} levels deep: refused before parsing")
}

/// The place of the first `[` or `{` nested deeper than [`MAX_DEPTH`],
/// skipping quoted text and comments (conservatively: a bracket inside a
/// plain scalar counts too, which can only refuse more).
fn check_flow_depth(text: &str) -> Result<(), (usize, usize)> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    // Quoted scalars may span lines, so a quote stays open across them; a
    // comment ends with its line.
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = '\n';
    for c in text.chars() {
        column += 1;
        match (c, quote) {
            ('\n', _) => (line, column, comment) = (line + 1, 0, false),
            _ if comment => {}
            (c, Some(q)) if c == q => quote = None,
            (_, Some(_)) => {}
            ('#', None) if previous.is_whitespace() => comment = true,
            ('"' | '\'', None) => quote = Some(c),
            ('[' | '{', None) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err((line, column));
                }
            }
            (']' | '}', None) => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    Ok(())
}

/// One step of a path into a YAML document: a mapping key or a list index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The line and column (both from 1) where the node at `path` starts in the
/// first document of `text`, if it is there. Used to point at a value that
/// was refused after `yaml_serde` read it.
pub fn locate(text: &str, path: &[Seg<'_>]) -> Option<(usize, usize)> {
    /// A mapping waiting for a key (`None`) or holding the key of the value
    /// that comes next; a sequence with the index of its next item.
    enum Frame {
        Map(Option<String>),
        Seq(usize),
    }
    fn at(frames: &[Frame], path: &[Seg<'_>]) -> bool {
        frames.len() == path.len()
            && frames.iter().zip(path).all(|(frame, seg)| match (frame, seg) {
                (Frame::Map(Some(key)), Seg::Key(want)) => key == want,
                (Frame::Seq(index), Seg::Index(want)) => index == want,
                _ => false,
            })
    }
    fn advance(frames: &mut [Frame]) {
        match frames.last_mut() {
            Some(Frame::Map(key)) => *key = None,
            Some(Frame::Seq(index)) => *index += 1,
            None => {}
        }
    }
    let mut frames: Vec<Frame> = Vec::new();
    let mut depth_guard = 0usize;
    for event in saphyr_parser::Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        let place = (span.start.line(), span.start.col() + 1);
        match event {
            saphyr_parser::Event::Scalar(value, ..) => {
                if let Some(Frame::Map(key @ None)) = frames.last_mut() {
                    *key = Some(value.into_owned());
                    continue;
                }
                if at(&frames, path) {
                    return Some(place);
                }
                advance(&mut frames);
            }
            saphyr_parser::Event::Alias(_) => {
                if at(&frames, path) {
                    return Some(place);
                }
                advance(&mut frames);
            }
            saphyr_parser::Event::MappingStart(..) | saphyr_parser::Event::SequenceStart(..) => {
                if at(&frames, path) {
                    return Some(place);
                }
                depth_guard += 1;
                if depth_guard > MAX_DEPTH {
                    return None;
                }
                frames.push(if matches!(event, saphyr_parser::Event::MappingStart(..)) {
                    Frame::Map(None)
                } else {
                    Frame::Seq(0)
                });
            }
            saphyr_parser::Event::MappingEnd | saphyr_parser::Event::SequenceEnd => {
                frames.pop();
                depth_guard = depth_guard.saturating_sub(1);
                advance(&mut frames);
            }
            saphyr_parser::Event::DocumentEnd | saphyr_parser::Event::StreamEnd => return None,
            _ => {}
        }
    }
    None
}

/// An error at the place of the node at `path` in `text` (or at the file
/// alone when the node cannot be found).
pub fn error_at(text: &str, shown_as: &str, path: &[Seg<'_>], message: String) -> YamlError {
    let place = locate(text, path);
    YamlError { file: shown_as.to_string(), line: place.map(|p| p.0), column: place.map(|p| p.1), message }
}

/// yaml_serde appends " at line L column C" to its messages; we print the
/// location up front instead, so drop the duplicate.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_file_line_and_column() {
        let err = parse::<yaml_serde::Value>("a: 1\nb: [1, 2\n", "x/Chart.yaml").unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("x/Chart.yaml:"), "{shown}");
        assert!(err.line.is_some() && err.column.is_some(), "{shown}");
    }

    #[test]
    fn alias_bomb_is_rejected_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let err = parse::<yaml_serde::Value>(&text, "bomb.yaml").unwrap_err();
        assert!(err.message.contains("repetition limit"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn deep_nesting_is_refused_in_linear_time() {
        for text in [
            format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            format!("services: {}\n", "[".repeat(100_000)),
            format!("a: {}\n", "{".repeat(100_000)),
            format!("%BAD\n\u{1}x: {}\n", "[".repeat(100_000)),
        ] {
            let started = std::time::Instant::now();
            let err = parse::<yaml_serde::Value>(&text, "deep.yaml").unwrap_err();
            assert!(err.message.contains("nested more than 64"), "{err}");
            assert_eq!(err.line, Some(if text.starts_with('%') { 2 } else { 1 }), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        }
        let mut block = String::new();
        for i in 0..100 {
            block.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        let err = parse::<yaml_serde::Value>(&block, "block.yaml").unwrap_err();
        assert_eq!((err.line, err.column), (Some(65), Some(65)), "{err}");
        // 64 levels are fine.
        let ok = format!("a: {}1{}\n", "[".repeat(63), "]".repeat(63));
        assert!(parse::<yaml_serde::Value>(&ok, "ok.yaml").is_ok());
    }

    #[test]
    fn documents_and_aliases_are_counted() {
        let many = "---\na: 1\n".repeat(MAX_DOCUMENTS + 1);
        assert!(check_bounds(&many, "m.yaml").unwrap_err().message.contains("documents"));
        let mut aliases = String::from("a: &x 1\nb: [");
        aliases.push_str(&"*x, ".repeat(MAX_ALIASES + 1));
        aliases.push_str("1]\n");
        assert!(check_bounds(&aliases, "a.yaml").unwrap_err().message.contains("aliases"));
    }

    #[test]
    fn values_are_located_by_path() {
        let text =
            "apiVersion: v2\nname: \"../x\"\ndependencies:\n  - name: a\n    alias: b\n  - name: c\n    alias: ../d\n";
        assert_eq!(locate(text, &[Seg::Key("name")]), Some((2, 7)));
        assert_eq!(locate(text, &[Seg::Key("dependencies"), Seg::Index(1), Seg::Key("alias")]), Some((7, 12)));
        assert_eq!(locate(text, &[Seg::Key("dependencies"), Seg::Index(0), Seg::Key("name")]), Some((4, 11)));
        assert_eq!(locate(text, &[Seg::Key("missing")]), None);
        let flow = "services: [{name: a}, {name: B_}]\n";
        assert_eq!(locate(flow, &[Seg::Key("services"), Seg::Index(1), Seg::Key("name")]), Some((1, 30)));
    }

    #[test]
    fn binary_content_is_located() {
        let err = check_text(b"a: 1\nb: \xff\xfe\n", "v.yaml").unwrap_err();
        assert_eq!((err.line, err.column), (Some(2), Some(4)));
    }
}
