//! Versions and Helm's version constraints: what a `dependencies[].version`
//! range (Masterminds semver, as Helm reads it) allows. Part of the model,
//! used by in-repo resolution, `bump` and `package`.

/// What a `dependencies[].version` constraint says about a new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// One exact version (`1.0.0`, `=1.0.0`, `v1.0.0`): rewritten by `bump`.
    Exact(semver::Version),
    /// A range that allows the version: left as it is.
    Allows,
    /// A range that does not allow the version, or one we cannot read.
    Refuses(String),
}

/// Reads a Helm constraint against `version` the way Helm does: a port of
/// Masterminds semver v3.5.0 (`NewConstraint` and `Constraints.Check`), the
/// library Helm 4.3.1 uses for dependencies and sprig's `semverCompare`.
///
/// Not the `semver` crate's `VersionReq`: its grammar and rules differ from
/// Masterminds' in ways that change answers (found by the differential tests
/// against helm): Masterminds takes `!=`, `~>`, `=>`, `=<`, hyphen ranges
/// (`1.2 - 1.4`), a space after the operator (`>= 1.2`) and partial versions
/// with a prerelease (`>0-rc.1`); it lets prereleases through an AND group
/// as soon as one comparator of the group names a prerelease (the crate only
/// for the same major.minor.patch); and its partial versions are "dirty"
/// (`<=1.2` allows 1.2.9, `>1.2` needs 1.3).
pub fn check_constraint(constraint: &str, version: &semver::Version) -> Constraint {
    let text = constraint.trim();
    let groups = match masterminds::parse(constraint) {
        Ok(groups) => groups,
        Err(why) => return Constraint::Refuses(format!("{text:?} is not a constraint Helm can read: {why}")),
    };
    let bare = constraint.trim_matches(masterminds::is_space);
    let bare = bare.strip_prefix('=').unwrap_or(bare).trim_start_matches(masterminds::is_space);
    let bare = bare.strip_prefix('v').unwrap_or(bare);
    if let Ok(exact) = semver::Version::parse(bare) {
        // Masterminds compares without build metadata: `1.0.0` allows
        // 1.0.0+b1, which `Exact` (compared with `==`) would refuse.
        let same = (exact.major, exact.minor, exact.patch, &exact.pre)
            == (version.major, version.minor, version.patch, &version.pre);
        if same && exact != *version {
            return Constraint::Allows;
        }
        return Constraint::Exact(exact);
    }
    let version = masterminds::Version::of(version);
    if groups.iter().any(|group| masterminds::group_allows(group, &version)) {
        Constraint::Allows
    } else {
        Constraint::Refuses(format!("{text:?} does not allow {version}", version = version.shown))
    }
}

/// Masterminds semver v3.5.0's constraints. Its regular expressions are
/// matched here by hand (the crate has no regex dependency): the characters
/// a version may hold (`v`, digits, `x X * |`, `.`, `-`, `+`, letters in the
/// prerelease and metadata) never start an operator, a separator or a
/// space, so each expression matches the longest run at each place, and the
/// scanners below find exactly what Go's `regexp` finds.
mod masterminds {
    use std::cmp::Ordering;

    /// `MaxConstraintLen`, `MaxConstraintGroups`, `MaxVersionLen`.
    const MAX_CONSTRAINT_LEN: usize = 512;
    const MAX_GROUPS: usize = 32;
    const MAX_VERSION_LEN: usize = 256;

    /// The operators of `ops`; the empty one means `=`.
    const OPS: [&str; 12] = ["", "=", "!=", ">", "<", ">=", "=>", "<=", "=<", "~", "~>", "^"];

    /// A version as Masterminds compares it: build metadata never counts.
    pub struct Version {
        major: u64,
        minor: u64,
        patch: u64,
        pre: String,
        pub shown: String,
    }

    impl Version {
        pub fn of(version: &semver::Version) -> Version {
            Version {
                major: version.major,
                minor: version.minor,
                patch: version.patch,
                pre: version.pre.as_str().to_string(),
                shown: version.to_string(),
            }
        }

        /// `Version.Compare`.
        fn compare(&self, other: &Version) -> Ordering {
            let numbers = (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
            numbers.then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &other.pre),
            })
        }
    }

    /// `comparePrerelease`: part by part, a missing part is the empty one.
    fn compare_prerelease(a: &str, b: &str) -> Ordering {
        let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
        for i in 0..a.len().max(b.len()) {
            let order = compare_part(a.get(i).copied().unwrap_or(""), b.get(i).copied().unwrap_or(""));
            if order != Ordering::Equal {
                return order;
            }
        }
        Ordering::Equal
    }

    /// `comparePrePart`, quirks included: numbers sort before words, and
    /// two different spellings of one number (`01`, `1`) are never equal.
    fn compare_part(s: &str, o: &str) -> Ordering {
        if s == o {
            return Ordering::Equal;
        }
        if s.is_empty() {
            return Ordering::Less;
        }
        if o.is_empty() {
            return Ordering::Greater;
        }
        // Go's ParseUint takes digits only (Rust's parse would take a `+`).
        let number = |t: &str| t.bytes().all(|b| b.is_ascii_digit()).then(|| t.parse::<u64>().ok()).flatten();
        match (number(s), number(o)) {
            (None, None) if s > o => Ordering::Greater,
            (None, None) => Ordering::Less,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) if a > b => Ordering::Greater,
            (Some(_), Some(_)) => Ordering::Less,
        }
    }

    /// One comparator: `constraint` in Go.
    pub struct Comparator {
        op: &'static str,
        con: Version,
        dirty: bool,
        minor_dirty: bool,
        patch_dirty: bool,
    }

    /// Go's regexp `\s`: ASCII only.
    pub fn is_space(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
    }

    fn skip_spaces(s: &[u8], mut i: usize) -> usize {
        while i < s.len() && is_space(char::from(s[i])) {
            i += 1;
        }
        i
    }

    /// `[0-9|x|X|\*]`: the class of a version number (the `|` is in it too).
    fn is_number(b: u8) -> bool {
        b.is_ascii_digit() || matches!(b, b'|' | b'x' | b'X' | b'*')
    }

    fn is_ident(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'-'
    }

    /// What `cvRegex` captures at the start of a text.
    struct Cv<'a> {
        text: &'a str,
        first: &'a str,
        /// With its leading `.`, or empty; likewise `third` and `pre` (`-`).
        second: &'a str,
        third: &'a str,
        pre: &'a str,
    }

    /// `cvRegex` at the start of `s`, longest match.
    fn scan_version(s: &str) -> Option<Cv<'_>> {
        let b = s.as_bytes();
        let mut i = usize::from(b.first() == Some(&b'v'));
        let run = |mut i: usize, class: fn(u8) -> bool| {
            while i < b.len() && class(b[i]) {
                i += 1;
            }
            i
        };
        let start = i;
        i = run(i, is_number);
        if i == start {
            return None;
        }
        let first = &s[start..i];
        let mut dotted = || {
            let from = i;
            if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(|&c| is_number(c)) {
                i = run(i + 1, is_number);
            }
            &s[from..i]
        };
        let (second, third) = (dotted(), dotted());
        // `(-(ident+(\.ident+)*))?` and the same after `+`.
        let mut tail = |mark: u8| {
            let from = i;
            if b.get(i) == Some(&mark) && b.get(i + 1).is_some_and(|&c| is_ident(c)) {
                i = run(i + 1, is_ident);
                while b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(|&c| is_ident(c)) {
                    i = run(i + 1, is_ident);
                }
            }
            &s[from..i]
        };
        let pre = tail(b'-');
        tail(b'+');
        Some(Cv { text: &s[..i], first, second, third, pre })
    }

    /// `\s*(ops)\s*(cv)` at the start of `s`: operator, version, length.
    fn scan_item(s: &str) -> Option<(&'static str, Cv<'_>, usize)> {
        let b = s.as_bytes();
        let mut i = skip_spaces(b, 0);
        let start = i;
        while i < b.len() && b"=!<>~^".contains(&b[i]) {
            i += 1;
        }
        let op = OPS.into_iter().find(|op| *op == &s[start..i])?;
        i = skip_spaces(b, i);
        let cv = scan_version(&s[i..])?;
        let end = i + cv.text.len();
        Some((op, cv, end))
    }

    /// `rewriteRange`: each `A - B` becomes `>= A, <= B `, found as Go's
    /// `FindAllStringSubmatch` finds them and replaced as `strings.Replace`
    /// does (the first occurrence of the matched text).
    fn rewrite_ranges(c: &str) -> String {
        let range_at = |s: &str| -> Option<(usize, String)> {
            let b = s.as_bytes();
            let mut i = skip_spaces(b, 0);
            let low = scan_version(&s[i..])?;
            i += low.text.len();
            let after = skip_spaces(b, i);
            if after == i || b.get(after) != Some(&b'-') {
                return None;
            }
            i = skip_spaces(b, after + 1);
            if i == after + 1 {
                return None;
            }
            let high = scan_version(&s[i..])?;
            i = skip_spaces(b, i + high.text.len());
            Some((i, format!(">= {}, <= {} ", low.text, high.text)))
        };
        let mut found = Vec::new();
        let mut at = 0;
        while at < c.len() {
            match c.is_char_boundary(at).then(|| range_at(&c[at..])).flatten() {
                Some((len, replacement)) => {
                    found.push((&c[at..at + len], replacement));
                    at += len;
                }
                None => at += 1,
            }
        }
        let mut out = c.to_string();
        for (matched, replacement) in found {
            out = out.replacen(matched, &replacement, 1);
        }
        out
    }

    /// `NewConstraint`: the OR-ed groups of AND-ed comparators.
    pub fn parse(c: &str) -> Result<Vec<Vec<Comparator>>, String> {
        if c.len() > MAX_CONSTRAINT_LEN {
            return Err(format!("longer than {MAX_CONSTRAINT_LEN} bytes"));
        }
        let rewritten = rewrite_ranges(c);
        let groups: Vec<&str> = rewritten.split("||").collect();
        if groups.len() > MAX_GROUPS {
            return Err(format!("more than {MAX_GROUPS} groups"));
        }
        groups.into_iter().map(parse_group).collect()
    }

    /// `validConstraintRegex`: items separated by spaces or a comma.
    fn parse_group(group: &str) -> Result<Vec<Comparator>, String> {
        let improper = || format!("improper constraint: {group:?}");
        let b = group.as_bytes();
        let mut comparators = Vec::new();
        let mut i = 0;
        loop {
            let (op, cv, len) = scan_item(&group[i..]).ok_or_else(improper)?;
            comparators.push(comparator(op, &cv)?);
            i += len;
            let spaced = skip_spaces(b, i);
            if spaced == b.len() {
                return Ok(comparators);
            }
            if b[spaced] == b',' {
                i = spaced + 1;
            } else if spaced > i {
                i = spaced;
            } else {
                return Err(improper());
            }
        }
    }

    fn is_x(part: &str) -> bool {
        matches!(part, "x" | "X" | "*")
    }

    /// `parseConstraint`: a partial or wildcard version is "dirty".
    fn comparator(op: &'static str, cv: &Cv<'_>) -> Result<Comparator, String> {
        let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
        let second = cv.second.strip_prefix('.').unwrap_or(cv.second);
        let third = cv.third.strip_prefix('.').unwrap_or(cv.third);
        let version = if is_x(cv.first) {
            dirty = true;
            format!("0.0.0{}", cv.pre)
        } else if second.is_empty() || is_x(second) {
            (dirty, minor_dirty) = (true, true);
            format!("{}.0.0{}", cv.first, cv.pre)
        } else if third.is_empty() || is_x(third) {
            (dirty, patch_dirty) = (true, true);
            format!("{}{}.0{}", cv.first, cv.second, cv.pre)
        } else {
            cv.text.to_string()
        };
        let con = new_version(&version).ok_or_else(|| format!("constraint parser error: {:?}", cv.text))?;
        Ok(Comparator { op, con, dirty, minor_dirty, patch_dirty })
    }

    /// `NewVersion` with `CoerceNewVersion` (the default): leading zeros are
    /// read as numbers, a prerelease number with one is refused.
    fn new_version(text: &str) -> Option<Version> {
        if text.len() > MAX_VERSION_LEN {
            return None;
        }
        let body = text.strip_prefix('v').unwrap_or(text);
        let (body, _metadata) = match body.split_once('+') {
            Some((body, metadata)) => (body, Some(metadata)),
            None => (body, None),
        };
        let (numbers, pre) = body.split_once('-').unwrap_or((body, ""));
        let parts: Vec<&str> = numbers.split('.').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        let number = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u64>().ok());
        let numeric_with_zero = |p: &str| p.len() > 1 && p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit());
        if pre.split('.').any(numeric_with_zero) {
            return None;
        }
        // The scanner only lets identifiers through for the prerelease and
        // the metadata, so nothing else needs checking.
        Some(Version {
            major: number(0)?,
            minor: number(1)?,
            patch: number(2)?,
            pre: pre.to_string(),
            shown: text.into(),
        })
    }

    /// `Constraints.Check` for one AND group: prereleases count when a
    /// comparator of the group names one.
    pub fn group_allows(group: &[Comparator], v: &Version) -> bool {
        let include_pre = group.iter().any(|c| !c.con.pre.is_empty());
        group.iter().all(|c| c.allows(v, include_pre))
    }

    impl Comparator {
        /// The `constraint*` functions of Masterminds, one per operator.
        fn allows(&self, v: &Version, include_pre: bool) -> bool {
            if !v.pre.is_empty() && !include_pre {
                return false;
            }
            let c = &self.con;
            let order = v.compare(c);
            match self.op {
                "" | "=" if self.dirty => self.tilde(v, order),
                "" | "=" => order == Ordering::Equal,
                "!=" => self.not_equal(v, order),
                ">" => {
                    if !self.dirty || v.major != c.major {
                        return if self.dirty { v.major > c.major } else { order == Ordering::Greater };
                    }
                    if self.minor_dirty {
                        false
                    } else if self.patch_dirty {
                        v.minor > c.minor
                    } else {
                        order == Ordering::Greater
                    }
                }
                "<" => order == Ordering::Less,
                ">=" | "=>" => order != Ordering::Less,
                "<=" | "=<" if !self.dirty => order != Ordering::Greater,
                "<=" | "=<" => !(v.major > c.major || (v.major == c.major && v.minor > c.minor && !self.minor_dirty)),
                "~" | "~>" => self.tilde(v, order),
                _ => self.caret(v, order),
            }
        }

        fn not_equal(&self, v: &Version, order: Ordering) -> bool {
            let c = &self.con;
            if self.dirty {
                if c.major != v.major {
                    return true;
                }
                if c.minor != v.minor && !self.minor_dirty {
                    return true;
                } else if self.minor_dirty {
                    return false;
                } else if c.patch != v.patch && !self.patch_dirty {
                    return true;
                } else if self.patch_dirty {
                    if !v.pre.is_empty() || !c.pre.is_empty() {
                        return compare_prerelease(&v.pre, &c.pre) != Ordering::Equal;
                    }
                    return false;
                }
            }
            order != Ordering::Equal
        }

        fn tilde(&self, v: &Version, order: Ordering) -> bool {
            let c = &self.con;
            if order == Ordering::Less {
                return false;
            }
            // ~0.0.0 allows everything.
            if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
                return true;
            }
            v.major == c.major && (v.minor == c.minor || self.minor_dirty)
        }

        fn caret(&self, v: &Version, order: Ordering) -> bool {
            let c = &self.con;
            if order == Ordering::Less {
                return false;
            }
            if c.major > 0 || self.minor_dirty {
                return v.major == c.major;
            }
            if v.major > 0 {
                return false;
            }
            if c.minor > 0 || self.patch_dirty {
                return v.minor == c.minor;
            }
            if v.minor > 0 {
                return false;
            }
            c.patch == v.patch
        }
    }
}
