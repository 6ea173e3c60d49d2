//! Helm's `--set` syntax, ported from `helm.sh/helm/v4/pkg/strvals`
//! (`ParseInto`, the plain `--set` flavour).
//!
//! Supported, as in Helm: dotted keys (`a.b.c=x`), list indexes
//! (`a[0]=x`, `a[0].b=x`, `a[0][1]=x`), several assignments in one flag
//! separated by commas (`a=1,b=2`), a backslash escaping the next character
//! (`a\.b=x` is the key `a.b`, `v=a\,b` the value `a,b`), list values in
//! braces (`a={x,y}`), and Helm's type inference: `true`/`false` (any case)
//! are booleans, `null` is null (which deletes the key from the chart
//! defaults), decimal integers that do not start with `0` (and `0` itself)
//! are integers, everything else (`1.5`, `010`, `1e3`) is a string. An empty
//! value is the empty string.
//!
//! Not supported here (use a values file instead): `--set-string`,
//! `--set-json`, `--set-file` and `--set-literal`.
//!
//! Where Helm's parser panics and recovers (a dotted key through something
//! that is not a map, an index into something that is not a list) this
//! returns an error instead, so the user gets the message Helm would fail with.

use anyhow::{bail, Result};

use super::tree::{get, new_table, LayerId, Node, Table, Value};

/// Helm's limits: an index above this, or keys nested deeper, are refused.
const MAX_INDEX: usize = 65536;
const MAX_NESTED_NAME_LEVEL: usize = 30;

/// Applies one `--set` flag to `dest` (the merged `-f` files), in place.
pub fn parse_into(flag: &str, dest: &Table, layer: LayerId) -> Result<()> {
    let mut parser = Parser { chars: flag.chars().collect(), pos: 0, layer };
    loop {
        match parser.key(dest, 0) {
            Ok(()) => continue,
            Err(Stop::Eof) => return Ok(()),
            Err(Stop::Error(message)) => bail!("--set {flag:?}: {message}"),
        }
    }
}

/// Why parsing stopped: the end of the input (Go's `io.EOF`, not an error
/// at the top) or a real error.
enum Stop {
    Eof,
    Error(String),
}

type Step<T> = std::result::Result<T, Stop>;

fn error<T>(message: impl Into<String>) -> Step<T> {
    Err(Stop::Error(message.into()))
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    layer: LayerId,
}

/// What `runes_until` stopped at.
enum Last {
    Eof,
    Char(char),
}

impl Parser {
    fn read(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    /// Reads up to (and consuming) one of `stop`; a backslash takes the next
    /// character literally.
    fn runes_until(&mut self, stop: &[char]) -> (String, Last) {
        let mut text = String::new();
        loop {
            match self.read() {
                None => return (text, Last::Eof),
                Some(c) if stop.contains(&c) => return (text, Last::Char(c)),
                Some('\\') => match self.read() {
                    None => return (text, Last::Eof),
                    Some(next) => text.push(next),
                },
                Some(c) => text.push(c),
            }
        }
    }

    fn node(&self, value: Value) -> Node {
        Node::new(value, self.layer)
    }

    /// Go's `set`: an empty key is ignored.
    fn set(&self, data: &Table, key: &str, mut node: Node) {
        if key.is_empty() {
            return;
        }
        let old = get(data, key);
        if let Some(old) = old {
            let same_table =
                matches!((&old.value, &node.value), (Value::Map(a), Value::Map(b)) if std::rc::Rc::ptr_eq(a, b));
            if !same_table {
                node.note_override(&old);
            }
        }
        data.borrow_mut().insert(key.to_string(), node);
    }

    fn key(&mut self, data: &Table, level: usize) -> Step<()> {
        let (key, last) = self.runes_until(&['=', '[', ',', '.']);
        match last {
            Last::Eof => {
                if key.is_empty() {
                    Err(Stop::Eof)
                } else {
                    error(format!("key {key:?} has no value"))
                }
            }
            Last::Char('[') => {
                let index = self.key_index()?;
                let list = match get(data, &key) {
                    None => Vec::new(),
                    Some(Node { value: Value::List(items), .. }) => items,
                    Some(_) => return error(format!("{key} is not a list, so {key}[{index}] cannot be set")),
                };
                // Helm stores the list even when the input ends early
                // (`--set l[0]` leaves `l: []`), so keep the one we had.
                let (list, result) = match self.list_item(list.clone(), index, level) {
                    Ok(list) => (list, Ok(())),
                    Err(Stop::Eof) => (list, Err(Stop::Eof)),
                    Err(stop) => return Err(stop),
                };
                self.set(data, &key, self.node(Value::List(list)));
                result
            }
            Last::Char('=') => match self.val_list() {
                Ok(list) => {
                    self.set(data, &key, self.node(Value::List(list)));
                    Ok(())
                }
                Err(ListStop::Eof) => {
                    self.set(data, &key, self.node(Value::Str(String::new())));
                    Err(Stop::Eof)
                }
                Err(ListStop::NotList) => {
                    let (text, _) = self.runes_until(&[',']);
                    self.set(data, &key, self.node(typed_value(&text)));
                    // Ok even at the end of the input: Helm's `v, e :=
                    // t.reader(rs)` shadows the EOF, so `a[0].b=x` stores the
                    // new map in the list and `a.=x` is "key map has no
                    // value". The next `key` call then meets the end.
                    Ok(())
                }
                Err(ListStop::Error(message)) => error(message),
            },
            Last::Char(',') => {
                self.set(data, &key, self.node(Value::Str(String::new())));
                error(format!("key {key:?} has no value (cannot end with ,)"))
            }
            Last::Char(_) => {
                // '.': a nested key.
                let level = level + 1;
                if level > MAX_NESTED_NAME_LEVEL {
                    return error(format!(
                        "value name nested level is greater than maximum supported nested level of {MAX_NESTED_NAME_LEVEL}"
                    ));
                }
                let inner = match get(data, &key) {
                    None => new_table(),
                    Some(Node { value: Value::Map(table), .. }) => table,
                    Some(_) => return error(format!("{key} is not a map, so a key below it cannot be set")),
                };
                let result = self.key(&inner, level);
                if result.is_ok() && inner.borrow().is_empty() {
                    return error(format!("key map {key:?} has no value"));
                }
                if !inner.borrow().is_empty() {
                    let origin = get(data, &key).map_or(self.layer, |n| n.origin);
                    self.set(data, &key, Node::table(inner, origin));
                }
                result
            }
        }
    }

    fn key_index(&mut self) -> Step<usize> {
        let (text, last) = self.runes_until(&[']']);
        if let Last::Eof = last {
            return Err(Stop::Eof);
        }
        match text.parse::<i64>() {
            Ok(i) if i < 0 => error(format!("negative {i} index not allowed")),
            Ok(i) => Ok(i as usize),
            Err(_) => error(format!("error parsing index: {text:?} is not a number")),
        }
    }

    fn list_item(&mut self, mut list: Vec<Node>, index: usize, level: usize) -> Step<Vec<Node>> {
        let (text, last) = self.runes_until(&['[', '.', '=']);
        if !text.is_empty() {
            return error(format!("unexpected data at end of array index: {text:?}"));
        }
        match last {
            Last::Eof => Err(Stop::Eof),
            Last::Char('=') => match self.val_list() {
                Ok(items) => self.set_index(list, index, self.node(Value::List(items))),
                Err(ListStop::Eof) => self.set_index(list, index, self.node(Value::Str(String::new()))),
                Err(ListStop::NotList) => {
                    let (text, _) = self.runes_until(&[',']);
                    self.set_index(list, index, self.node(typed_value(&text)))
                }
                Err(ListStop::Error(message)) => error(message),
            },
            Last::Char('[') => {
                // Helm recurses without a bound; a flag of a million `[0]`
                // must be an error here, not a stack overflow.
                if level > MAX_NESTED_NAME_LEVEL {
                    return error(format!("lists nested deeper than {MAX_NESTED_NAME_LEVEL} levels"));
                }
                let level = level + 1;
                let next = self.key_index()?;
                let current = match list.get(index) {
                    Some(Node { value: Value::List(items), .. }) => items.clone(),
                    Some(Node { value: Value::Null, .. }) | None => Vec::new(),
                    Some(_) => return error(format!("element {index} is not a list")),
                };
                let inner = self.list_item(current, next, level)?;
                self.set_index(list, index, self.node(Value::List(inner)))
            }
            Last::Char('.') => {
                let inner = match list.get(index) {
                    Some(Node { value: Value::Map(table), .. }) => table.clone(),
                    Some(_) => {
                        // Helm: "indices out of order", start an empty map.
                        let table = new_table();
                        list[index] = self.node(Value::Map(table.clone()));
                        table
                    }
                    None => new_table(),
                };
                self.key(&inner, level)?;
                self.set_index(list, index, self.node(Value::Map(inner)))
            }
            Last::Char(other) => error(format!("parse error: unexpected token {other:?}")),
        }
    }

    fn set_index(&self, mut list: Vec<Node>, index: usize, node: Node) -> Step<Vec<Node>> {
        if index > MAX_INDEX {
            return error(format!("index of {index} is greater than maximum supported index of {MAX_INDEX}"));
        }
        while list.len() <= index {
            list.push(self.node(Value::Null));
        }
        list[index] = node;
        Ok(list)
    }

    fn val_list(&mut self) -> std::result::Result<Vec<Node>, ListStop> {
        match self.read() {
            None => return Err(ListStop::Eof),
            Some('{') => {}
            Some(_) => {
                self.unread();
                return Err(ListStop::NotList);
            }
        }
        let mut items = Vec::new();
        loop {
            let (text, last) = self.runes_until(&[',', '}']);
            match last {
                Last::Eof => return Err(ListStop::Error("list must terminate with '}'".into())),
                Last::Char('}') => {
                    if let Some(c) = self.read() {
                        if c != ',' {
                            self.unread();
                        }
                    }
                    items.push(self.node(typed_value(&text)));
                    return Ok(items);
                }
                Last::Char(_) => items.push(self.node(typed_value(&text))),
            }
        }
    }
}

enum ListStop {
    Eof,
    NotList,
    Error(String),
}

/// Helm's `typedVal` for `--set`.
fn typed_value(text: &str) -> Value {
    if equal_fold(text, "true") {
        return Value::Bool(true);
    }
    if equal_fold(text, "false") {
        return Value::Bool(false);
    }
    if equal_fold(text, "null") {
        return Value::Null;
    }
    if text == "0" {
        return Value::Int(0);
    }
    if !text.is_empty() && !text.starts_with('0') {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Int(i);
        }
    }
    Value::Str(text.to_string())
}

/// Go's `strings.EqualFold(text, word)` for a lower-case ASCII `word`. Go
/// folds Unicode, not just ASCII: U+017F (ſ) folds to `s` and U+212A (the
/// Kelvin sign) to `k`, so Helm reads `--set a=falſe` as the boolean false.
fn equal_fold(text: &str, word: &str) -> bool {
    let folded = text.chars().map(|c| match c {
        '\u{17f}' => 's',
        '\u{212a}' => 'k',
        c => c.to_ascii_lowercase(),
    });
    folded.eq(word.chars())
}

#[cfg(test)]
mod tests {
    use super::super::tree::table_to_plain;
    use super::*;
    use serde_json::json;

    fn parse(flags: &[&str]) -> serde_json::Value {
        let table = new_table();
        for flag in flags {
            parse_into(flag, &table, 1).unwrap();
        }
        table_to_plain(&table)
    }

    #[test]
    fn dotted_keys_commas_and_types() {
        assert_eq!(
            parse(&["a.b=1,a.c=true,d=null,e=010,f=1.5,g=0,h=-3,i=", "a.b=x"]),
            json!({"a": {"b": "x", "c": true}, "d": null, "e": "010", "f": "1.5", "g": 0, "h": -3, "i": ""})
        );
    }

    #[test]
    fn escapes_lists_and_indexes() {
        assert_eq!(parse(&[r"a\.b=x\,y"]), json!({"a.b": "x,y"}));
        assert_eq!(parse(&["l={1,two,true}"]), json!({"l": [1, "two", true]}));
        assert_eq!(parse(&["l[1]=x"]), json!({"l": [null, "x"]}));
        assert_eq!(parse(&["l[0].name=a,l[0].port=80"]), json!({"l": [{"name": "a", "port": 80}]}));
        assert_eq!(parse(&["m[0][1]=z"]), json!({"m": [[null, "z"]]}));
    }

    #[test]
    fn helm_errors_are_errors_not_panics() {
        let table = new_table();
        assert!(parse_into("a=1", &table, 1).is_ok());
        assert!(parse_into("a.b=1", &table, 1).is_err());
        assert!(parse_into("a[0]=1", &table, 1).is_err());
        assert!(parse_into("novalue", &table, 1).is_err());
        assert!(parse_into("x=1,", &table, 1).is_ok());
        assert!(parse_into("k,", &table, 1).is_err());
        assert!(parse_into("l[-1]=1", &table, 1).is_err());
        assert!(parse_into("l[99999999]=1", &table, 1).is_err());
        assert!(parse_into("l={1,2", &table, 1).is_err());
        assert!(parse_into(&format!("deep{}=1", "[0]".repeat(100_000)), &table, 1).is_err());
    }
}
