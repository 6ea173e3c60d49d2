//! Reading YAML files with errors a person can act on.
//!
//! Every YAML file the tool reads goes through here so that an error always
//! names the file and, where the parser knows it, the line and column
//! (`charts/cart/Chart.yaml:3:7: ...`). The parser (`yaml_serde`) bounds
//! recursion and alias repetition, so an alias bomb ("billion laughs") is
//! rejected after a bounded amount of work instead of being expanded; we add a
//! size cap and a check for binary content before parsing at all.

use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

/// Values and Chart.yaml files in a chart repository are small; anything over
/// this is almost certainly a mistake (a packaged archive renamed, a dump).
const MAX_YAML_BYTES: u64 = 8 * 1024 * 1024;

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
    fn binary_content_is_located() {
        let err = check_text(b"a: 1\nb: \xff\xfe\n", "v.yaml").unwrap_err();
        assert_eq!((err.line, err.column), (Some(2), Some(4)));
    }
}
