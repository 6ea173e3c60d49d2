//! `.helmignore`: which files of a chart folder Helm leaves out of the chart.
//!
//! A change to a file that Helm never loads cannot change the chart, so the
//! affected-set computation and the lint cache skip such files. That is only
//! safe if we decide exactly as Helm does, so this is a port of Helm 4's
//! `pkg/ignore/rules.go` and of Go's `path/filepath.Match`, including their
//! surprises, rather than a gitignore matcher (`globset`, `ignore`), whose
//! rules differ:
//! - a pattern without `/` is matched against the base name only; one with
//!   `/` against the whole path relative to the chart, where `*` and `?`
//!   never cross a `/`, and a leading `/` is stripped;
//! - `**` is refused (Helm fails to load the chart), and so is a malformed
//!   pattern (`[a`), but only when Go's check (matching `abc`) reaches the
//!   malformed part: `é*[]` is taken and matches nothing;
//! - a trailing `/` makes a rule apply to folders only;
//! - rules are tried in order and the first match decides; a negated rule
//!   (`!pattern`) does not re-include: it *ignores* every path it does not
//!   match and lets the next rules decide for paths it does match;
//! - `templates/.?*` (hidden files under `templates/`) is always appended;
//! - Helm walks the folder and skips an ignored folder whole, so a file is
//!   left out when it or any folder above it is ignored.

use std::path::Path;

use anyhow::Result;

/// The file name Helm reads at the top of a chart folder.
pub const FILE_NAME: &str = ".helmignore";

/// The rules of one chart's `.helmignore` plus Helm's default rule.
#[derive(Debug, Clone)]
pub struct HelmIgnore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Glob,
    negate: bool,
    dir_only: bool,
    /// Matched against the base name only (the pattern has no `/`).
    base_name: bool,
}

impl HelmIgnore {
    /// The rules of `<chart_dir>/.helmignore`. A file Helm could not parse
    /// (it would then refuse to load the chart, which lint reports) gives
    /// rules that ignore nothing: every file then counts as part of the
    /// chart, which can only make an affected set larger, never smaller.
    pub fn load(chart_dir: &Path) -> HelmIgnore {
        Self::try_load(chart_dir).unwrap_or_else(|_| Self::parse("").expect("the default rule parses"))
    }

    /// Like [`HelmIgnore::load`], but a malformed file is an error naming the
    /// line.
    pub fn try_load(chart_dir: &Path) -> Result<HelmIgnore> {
        let path = chart_dir.join(FILE_NAME);
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => anyhow::bail!("{}: cannot read file: {err}", path.display()),
        };
        Self::parse(&text).map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))
    }

    /// Parses the text of a `.helmignore` file.
    pub fn parse(text: &str) -> Result<HelmIgnore> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if let Some(rule) = parse_rule(line).map_err(|err| anyhow::anyhow!("line {}: {err}", index + 1))? {
                rules.push(rule);
            }
        }
        // Helm's `AddDefaults`: hidden files in templates/ are never templates.
        rules.push(parse_rule("templates/.?*")?.expect("the default rule is not blank"));
        Ok(HelmIgnore { rules })
    }

    /// Whether Helm leaves `rel` (a path relative to the chart folder, with
    /// `/` separators) out of the chart: it, or a folder above it, is ignored.
    pub fn is_ignored(&self, rel: &str, is_dir: bool) -> bool {
        let rel = rel.trim_start_matches("./").trim_end_matches('/');
        let mut end = 0;
        // Each folder above the path, as Helm's walk meets it.
        while let Some(slash) = rel[end..].find('/') {
            end += slash;
            if self.ignores_one(&rel[..end], true) {
                return true;
            }
            end += 1;
        }
        self.ignores_one(rel, is_dir)
    }

    /// Helm's `Rules.Ignore` for one path, without looking at its folders.
    fn ignores_one(&self, path: &str, is_dir: bool) -> bool {
        if path.is_empty() || path == "." {
            return false;
        }
        for rule in &self.rules {
            let subject = if rule.base_name { path.rsplit('/').next().unwrap_or(path) } else { path };
            if rule.negate {
                if rule.dir_only && !is_dir {
                    return true;
                }
                if !rule.pattern.matches(subject) {
                    return true;
                }
                continue;
            }
            if rule.dir_only && !is_dir {
                continue;
            }
            if rule.pattern.matches(subject) {
                return true;
            }
        }
        false
    }
}

/// Helm's `parseRule`: `None` for blank lines and comments.
fn parse_rule(line: &str) -> Result<Option<Rule>> {
    let rule = line.trim();
    if rule.is_empty() || rule.starts_with('#') {
        return Ok(None);
    }
    if rule.contains("**") {
        anyhow::bail!("{rule:?}: double-star (**) syntax is not supported by Helm");
    }
    // Helm validates the raw rule, `!` and trailing `/` included, by matching
    // it against "abc". Go's Match only checks the chunks it gets to, so a
    // rule like `é*[]` passes (its bad chunk is never reached).
    if Glob::compile(rule).try_match("abc").is_none() {
        anyhow::bail!("{rule:?}: syntax error in pattern");
    }
    let (negate, rule) = match rule.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, rule),
    };
    let (dir_only, rule) = match rule.strip_suffix('/') {
        Some(rest) => (true, rest),
        None => (false, rule),
    };
    let (base_name, rule) =
        if let Some(rest) = rule.strip_prefix('/') { (false, rest) } else { (!rule.contains('/'), rule) };
    Ok(Some(Rule { pattern: Glob::compile(rule), negate, dir_only, base_name }))
}

/// A compiled Go `filepath.Match` pattern (Unix separator `/`), split as Go
/// splits it into chunks: a run of stars, then the tokens up to the next
/// star.
#[derive(Debug, Clone)]
struct Glob {
    chunks: Vec<Chunk>,
}

/// Go's `scanChunk`: whether stars come before the tokens, and the tokens.
#[derive(Debug, Clone)]
struct Chunk {
    star: bool,
    tokens: Vec<Token>,
    /// Malformed (Go's `ErrBadPattern` once matching gets here); the last
    /// chunk then, as what follows it can never be reached.
    bad: bool,
}

#[derive(Debug, Clone)]
enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    One,
    /// `[...]`: unlike `?`, a class can match `/` (as in Go).
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    /// Compiles a pattern. A malformed part does not fail here: like Go,
    /// the pattern is refused only when matching reaches it.
    fn compile(pattern: &str) -> Glob {
        let mut chunks = vec![Chunk { star: false, tokens: Vec::new(), bad: false }];
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => {
                    // Stars start a new chunk; a run of stars is one star.
                    let current = chunks.last().filter(|chunk| chunk.tokens.is_empty() && chunk.star);
                    if current.is_none() {
                        chunks.push(Chunk { star: true, tokens: Vec::new(), bad: false });
                    }
                    continue;
                }
                '?' => Some(Token::One),
                '\\' => chars.next().map(Token::Literal),
                '[' => class(&mut chars),
                other => Some(Token::Literal(other)),
            };
            let Some(chunk) = chunks.last_mut() else { break };
            match token {
                Some(token) => chunk.tokens.push(token),
                None => {
                    chunk.bad = true;
                    break;
                }
            }
        }
        if chunks.len() > 1 && chunks[0].tokens.is_empty() && !chunks[0].star {
            chunks.remove(0);
        }
        Glob { chunks }
    }

    /// Whether the pattern matches; a malformed one matches nothing (Helm
    /// logs Go's error and counts it as no match).
    fn matches(&self, name: &str) -> bool {
        self.try_match(name).unwrap_or(false)
    }

    /// Go's `filepath.Match` loop: each chunk is matched at the leftmost
    /// place it fits after the previous one (trying later places only when
    /// stars precede it, and never across a `/`), without going back to an
    /// earlier chunk. That is linear in the chunks times the name, where a
    /// backtracking matcher is exponential in the stars (`*a*a*a*a*b`).
    /// `None` is Go's `ErrBadPattern`: the match got to a malformed chunk.
    fn try_match(&self, name: &str) -> Option<bool> {
        let chars: Vec<char> = name.chars().collect();
        let mut name: &[char] = &chars;
        for (index, chunk) in self.chunks.iter().enumerate() {
            let last = index + 1 == self.chunks.len();
            if chunk.bad {
                return None;
            }
            if chunk.star && chunk.tokens.is_empty() {
                // A trailing star matches the rest unless it holds a `/`.
                return Some(!name.contains(&'/'));
            }
            if let Some(rest) = match_chunk(&chunk.tokens, name) {
                if rest.is_empty() || !last {
                    name = rest;
                    continue;
                }
            }
            let mut found = None;
            if chunk.star {
                for skip in 0..name.len() {
                    if name[skip] == '/' {
                        break;
                    }
                    if let Some(rest) = match_chunk(&chunk.tokens, &name[skip + 1..]) {
                        if last && !rest.is_empty() {
                            continue;
                        }
                        found = Some(rest);
                        break;
                    }
                }
            }
            match found {
                Some(rest) => name = rest,
                None => return Some(false),
            }
        }
        Some(name.is_empty())
    }
}

/// Go's `matchChunk`: the tokens of one chunk against the start of `name`;
/// what is left of the name when they match.
fn match_chunk<'n>(tokens: &[Token], mut name: &'n [char]) -> Option<&'n [char]> {
    for token in tokens {
        let (&c, rest) = name.split_first()?;
        let ok = match token {
            Token::Literal(want) => c == *want,
            Token::One => c != '/',
            Token::Class { negated, ranges } => ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated,
        };
        if !ok {
            return None;
        }
        name = rest;
    }
    Some(name)
}

/// A `[...]` class after its `[`; `None` when it is malformed.
fn class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Token> {
    let negated = chars.peek() == Some(&'^');
    if negated {
        chars.next();
    }
    let mut ranges = Vec::new();
    loop {
        if chars.peek() == Some(&']') && !ranges.is_empty() {
            chars.next();
            return Some(Token::Class { negated, ranges });
        }
        let lo = class_char(chars)?;
        let hi = if chars.peek() == Some(&'-') {
            chars.next();
            class_char(chars)?
        } else {
            lo
        };
        ranges.push((lo, hi));
    }
}

/// Go's `getEsc`: one character of a class; `-` and `]` must be escaped.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    match chars.next()? {
        '-' | ']' => None,
        '\\' => chars.next(),
        c => Some(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> HelmIgnore {
        HelmIgnore::parse(text).unwrap()
    }

    #[test]
    fn glob_follows_go_filepath_match() {
        let m = |p: &str, n: &str| Glob::compile(p).matches(n);
        assert!(m("*.txt", "a.txt"));
        assert!(!m("*.txt", "d/a.txt"), "* never crosses /");
        assert!(m("d/*.txt", "d/a.txt"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "a/c"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[^a-c]x", "bx"));
        assert!(m("[^a]", "/"), "a negated class matches / as in Go");
        assert!(m("\\*", "*"));
        assert!(m(".*", ".git"));
        assert!(!m("*.txt", "a.txt.bak"));
        assert!(m("*", "abc") && !m("*", "a/b"));
        assert!(m("a*", "a") && m("*c", "abc") && m("a*b*c", "a-b-b-c") && !m("a*b*c", "a-b-b-c-d"));
        assert!(m("**x", "yx"), "a run of stars is one star");
        assert!(m("", "") && !m("", "a"));
        for bad in ["[", "[]", "[a-", "a\\", "[-a]", "[]a]"] {
            assert!(Glob::compile(bad).try_match("abc").is_none(), "{bad} should be refused");
        }
    }

    #[test]
    fn rules_follow_helm() {
        let r = rules("# comment\n\n*.tmp\n.git/\n/ci/*.yaml\nsecret/\ndocs/*.md\n");
        assert!(r.is_ignored("a.tmp", false));
        assert!(r.is_ignored("templates/x.tmp", false), "no slash: base name only");
        assert!(r.is_ignored(".git", true));
        assert!(!r.is_ignored(".git", false), "trailing / means folders only");
        assert!(r.is_ignored(".git/config", false), "a file inside an ignored folder");
        assert!(r.is_ignored("ci/dev.yaml", false), "leading / is stripped");
        assert!(!r.is_ignored("x/ci/dev.yaml", false));
        assert!(r.is_ignored("secret/a/b.txt", false));
        assert!(r.is_ignored("docs/a.md", false));
        assert!(!r.is_ignored("docs/sub/a.md", false));
        assert!(!r.is_ignored("values.yaml", false));
        assert!(r.is_ignored("templates/.hidden", false), "Helm's default rule");
        assert!(!r.is_ignored("", true));
    }

    #[test]
    fn negation_works_as_in_helm_not_as_in_git() {
        // In Helm a negated rule ignores every path it does NOT match.
        let r = rules("!keep.txt\n");
        assert!(!r.is_ignored("keep.txt", false));
        assert!(r.is_ignored("values.yaml", false));
        // And a folder that does not match is skipped whole.
        assert!(r.is_ignored("templates/keep.txt", false));
    }

    #[test]
    fn double_star_and_bad_patterns_are_refused() {
        let err = HelmIgnore::parse("ok\n**/x\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("double-star"), "{err}");
        assert!(HelmIgnore::parse("[a\n").is_err());
        // Go checks only the chunks its match reaches: Helm takes `é*[]`
        // (matching "abc" fails at `é`), which then matches nothing.
        let lazy = rules("é*[]\n");
        assert!(!lazy.is_ignored("é", false) && !lazy.is_ignored("éa", false) && !lazy.is_ignored("a", false));
    }

    #[test]
    fn many_stars_match_in_linear_time() {
        let glob = Glob::compile(&"*a".repeat(30));
        let name = "a".repeat(29) + "b";
        let started = std::time::Instant::now();
        assert!(!glob.matches(&(name.repeat(20))));
        assert!(glob.matches(&"a".repeat(60)));
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn byte_order_mark_is_dropped() {
        assert!(rules("\u{feff}*.tmp\n").is_ignored("a.tmp", false));
    }
}
