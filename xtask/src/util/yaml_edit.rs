//! The comment-keeping YAML editor: edits that change a few bytes of a
//! file a person wrote (a version, an item appended to a block list, a new
//! top-level section) and keep every comment, quote and blank line.
//!
//! Re-serialising the YAML would drop comments and reflow the file, so edits
//! work on lines and byte spans of the block style these files are written
//! in, and refuse anything else (flow style, anchors, multi-line scalars)
//! rather than guess. Every edit is then proved by [`verify`]: the intended
//! change applied to the parsed original must equal the parsed result, so
//! an edit changed exactly what it meant to and nothing else. Used by
//! `package`/`bump` (Chart.yaml versions) and `new-service` (the matrix,
//! the umbrella, the NetworkPolicy clients). A crate (`yaml-edit`,
//! `yamlpatch`) would cover many more shapes than these files have, at the
//! cost of a second parser (and, for `yamlpatch`, a C tree-sitter build).

use yaml_serde::Value;

/// The indentation of a line, in spaces.
pub fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Neither blank nor only a comment.
pub fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// A line that starts a new top-level key (or ends the document).
pub fn is_top_level(line: &str) -> bool {
    is_content(line) && indent(line) == 0 && !line.starts_with('-')
}

/// The index of the last content line of the block under the top-level key
/// on line `start`: comments and blank lines after it belong to what follows.
pub fn block_end(lines: &[&str], start: usize) -> usize {
    let mut last = start;
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        if is_top_level(line) {
            break;
        }
        if is_content(line) {
            last = i;
        }
    }
    last
}

pub fn top_level_line(lines: &[&str], key: &str) -> Option<usize> {
    let prefix = format!("{key}:");
    lines.iter().position(|l| indent(l) == 0 && l.starts_with(&prefix))
}

/// Parses both texts and checks that the edit made exactly `change`: the
/// change applied to the parsed original must equal the parsed edited text.
/// `change` returns false when it cannot be applied. The error is the
/// reason, for the caller to wrap with its own advice.
pub fn verify(before: &str, after: &str, file: &str, change: impl FnOnce(&mut Value) -> bool) -> Result<(), String> {
    let mut expected: Value = crate::util::yaml::parse(before, file).map_err(|err| err.to_string())?;
    let actual: Value =
        crate::util::yaml::parse(after, file).map_err(|err| format!("the edited text does not parse: {err}"))?;
    if !change(&mut expected) || expected != actual {
        return Err("the edited text does not parse to the intended change".to_string());
    }
    Ok(())
}

pub fn join_lines(lines: &[String], trailing_newline: bool) -> String {
    let mut text = lines.join("\n");
    if trailing_newline {
        text.push('\n');
    }
    text
}

/// One line with its byte offset in the file.
pub struct Line<'a> {
    pub start: usize,
    pub text: &'a str,
}

pub fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut start = 0;
    for piece in text.split_inclusive('\n') {
        let body = piece.trim_end_matches('\n').trim_end_matches('\r');
        lines.push(Line { start, text: body });
        start += piece.len();
    }
    lines
}

/// A scalar's place in the file and its quoting.
#[derive(Debug, Clone)]
pub struct Scalar {
    pub start: usize,
    pub end: usize,
    pub quote: Option<char>,
    pub value: String,
}

impl Scalar {
    pub fn replaced_by(&self, value: &str) -> (usize, usize, String) {
        let text = match self.quote {
            Some(q) => format!("{q}{value}{q}"),
            None => value.to_string(),
        };
        (self.start, self.end, text)
    }
}

/// `key: scalar [# comment]` starting at byte `at` of `line`: the scalar.
pub fn key_scalar(line: &Line<'_>, at: usize, key: &str) -> Option<Scalar> {
    let rest = line.text.get(at..)?.strip_prefix(key)?;
    let after_key = rest.trim_start_matches(' ');
    let rest = after_key.strip_prefix(':')?;
    let value_text = rest.trim_start_matches(' ');
    if value_text.len() == rest.len() && !value_text.is_empty() {
        return None; // `key:value` is not a mapping entry in YAML
    }
    let offset = line.start + line.text.len() - value_text.len();
    let (quote, len, value) = match value_text.chars().next()? {
        q @ ('"' | '\'') => {
            let close = value_text[1..].find(q)? + 1;
            let inner = &value_text[1..close];
            if inner.contains('\\') || (q == '\'' && value_text[close + 1..].starts_with('\'')) {
                return None; // escapes: leave to a person
            }
            (Some(q), close + 1, inner.to_string())
        }
        '&' | '*' | '!' | '|' | '>' | '{' | '[' | '#' => return None,
        _ => {
            let len = value_text.find(" #").unwrap_or(value_text.len());
            let value = value_text[..len].trim_end();
            (None, value.len(), value.to_string())
        }
    };
    let trailing = value_text[len..].trim_start();
    if !(trailing.is_empty() || trailing.starts_with('#')) {
        return None;
    }
    Some(Scalar { start: offset, end: offset + len, quote, value })
}

/// The top-level `key:` scalar (column 0).
pub fn top_level_scalar(lines: &[Line<'_>], key: &str) -> Option<Scalar> {
    let mut found = None;
    for line in lines {
        if line.text.starts_with(key) {
            if let Some(scalar) = key_scalar(line, 0, key) {
                if found.is_some() {
                    return None; // a duplicate key: not valid YAML anyway
                }
                found = Some(scalar);
            }
        }
    }
    found
}
