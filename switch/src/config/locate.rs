//! Where things are in the TOML text: dotted key paths and line numbers for error messages.
//!
//! `toml` reports a deserialization error with a byte span but no key path, and stops at the
//! first error. So the file is read twice: once into a tree that records the span of every key
//! and value ([`Locator`]), and once into `toml::Table`. Each section, and each element of an
//! array of tables, is then deserialized on its own from a small TOML text of its own
//! ([`deserialize_part`]), so one broken element does not hide the errors of the others, and the
//! span of an error in that small text is turned back into a dotted path (`accounts[1].pool_size`)
//! and a line of the original file.
//!
//! Messages never quote the source text (`toml`'s `Display` does, and a mis-pasted key could sit
//! there); only `toml`'s one-line message is kept, and not even that for a value of a key-reference
//! field.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

/// A TOML value with the span of every key and value below it.
#[derive(Debug)]
struct Node {
    span: Range<usize>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Table(Vec<(Spanned<String>, Node)>),
    Array(Vec<Node>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        let spanned = Spanned::<Kind>::deserialize(d)?;
        Ok(Node {
            span: spanned.span(),
            kind: spanned.into_inner(),
        })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value (date-times are not used in this file)")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Kind::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Spanned<String>>()? {
            let v = map.next_value::<Node>()?;
            entries.push((k, v));
        }
        Ok(Kind::Table(entries))
    }
}

/// Dotted path → line (1-based) of every key, array element and table in one TOML text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Locator {
    lines: HashMap<String, usize>,
}

impl Locator {
    /// Reads `text`; a syntax error comes back as one message with its line and column.
    pub(crate) fn new(text: &str, file: &str) -> Result<Locator, ConfigError> {
        let root: Node = toml::from_str(text).map_err(|e| syntax_error(text, file, &e))?;
        let mut spans = Vec::new();
        walk(&root, String::new(), &mut spans);
        let lines = spans
            .into_iter()
            .map(|(path, at)| (path, line_col(text, at).0))
            .collect();
        Ok(Locator { lines })
    }

    /// The line of `path`, or of its nearest ancestor that is in the file.
    pub(crate) fn line(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return Some(*line);
            }
            let cut = p.rfind(['.', '['])?;
            p = p.get(..cut)?;
        }
    }
}

/// Every path under `node` with the byte offset where it starts (keys: the key itself).
fn walk(node: &Node, path: String, out: &mut Vec<(String, usize)>) {
    match &node.kind {
        Kind::Table(entries) => {
            for (key, value) in entries {
                let child = join(&path, key.get_ref());
                out.push((child.clone(), key.span().start));
                walk(value, child, out);
            }
        }
        Kind::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let child = format!("{path}[{i}]");
                out.push((child.clone(), item.span.start));
                walk(item, child, out);
            }
        }
        Kind::Scalar => {}
    }
}

/// `a` + `.b` (or `b` at the top).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The innermost path whose key or value span holds all of `at`.
fn path_at(node: &Node, at: &Range<usize>, path: String) -> String {
    let holds = |span: &Range<usize>| span.start <= at.start && at.end <= span.end;
    match &node.kind {
        Kind::Table(entries) => {
            for (key, value) in entries {
                let child = join(&path, key.get_ref());
                if holds(&key.span()) {
                    return child;
                }
                if holds(&value.span) {
                    return path_at(value, at, child);
                }
            }
            path
        }
        Kind::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if holds(&item.span) {
                    return path_at(item, at, format!("{path}[{i}]"));
                }
            }
            path
        }
        Kind::Scalar => path,
    }
}

/// Deserializes one part of the file (a section, or one element of an array of tables) on its
/// own. `prefix` is its dotted path in the whole file; an error names the path inside it.
pub(crate) fn deserialize_part<T: DeserializeOwned>(
    value: &toml::Value,
    prefix: &str,
) -> Result<T, (String, String)> {
    let toml::Value::Table(table) = value else {
        return Err((prefix.to_owned(), "must be a table".to_owned()));
    };
    let text = toml::to_string(table).map_err(|e| (prefix.to_owned(), e.to_string()))?;
    let e = match toml::from_str::<T>(&text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let message = e.message().trim().to_owned();
    let mut path = prefix.to_owned();
    if let (Some(span), Ok(tree)) = (e.span(), toml::from_str::<Node>(&text)) {
        let inner = path_at(&tree, &span, String::new());
        if !inner.is_empty() {
            path = join(prefix, &inner);
        }
    }
    // "missing field `x`" points at the table that lacks it; name the field itself.
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        return Err((join(&path, field), "is required".to_owned()));
    }
    if is_key_ref_path(&path) {
        let message = "must be a file path, { file = \"PATH\" } or { env = \"VARIABLE\" } \
                       (the value is not shown)";
        return Err((path, message.to_owned()));
    }
    Err((path, message))
}

/// Fields that reference key material: their values are never quoted in a message.
pub(crate) const KEY_REF_FIELDS: &[&str] = &["key", "alipay_public_key", "rsa_private_key"];

fn is_key_ref_path(path: &str) -> bool {
    path.split('.').any(|seg| {
        let name = seg.split('[').next().unwrap_or(seg);
        KEY_REF_FIELDS.contains(&name)
    })
}

/// (line, column), both 1-based, of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A TOML syntax error as "line L, column C: message" — never the source text, which `toml`'s
/// own `Display` quotes. On a line that sets a key-reference field even the message is withheld,
/// since a message about a bad value can quote the value.
fn syntax_error(text: &str, file: &str, e: &toml::de::Error) -> ConfigError {
    let Some(span) = e.span() else {
        return ConfigError::new(file, "", e.message().trim().to_owned(), None);
    };
    let (line, column) = line_col(text, span.start);
    let line_text = text
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim_start();
    let is_key_line = KEY_REF_FIELDS.iter().any(|k| {
        line_text
            .strip_prefix(k)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    let message = if is_key_line {
        "not valid TOML (the value of a key field is not shown)"
    } else if e.message().contains("$__toml_private") {
        "date-times are not used in this file; quote the value if it is a string"
    } else {
        e.message().trim()
    };
    let message = format!("line {line}, column {column}: {message}");
    ConfigError::new(file, "", message, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Ep {
        name: String,
        url: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Acc {
        name: String,
        pool_size: Option<u32>,
        endpoints: Vec<Ep>,
    }

    const TEXT: &str = "[node]\nid = \"sw1\"\n\n[[accounts]]\nname = \"a\"\n\
        endpoints = [{ name = \"p\", url = \"u\" }, { name = \"b\", url = \"v\", bogus = 1 }]\n\n\
        [[accounts]]\nname = \"b\"\npool_size = \"x\"\nendpoints = [{ name = \"p\" }]\n";

    fn part(i: usize) -> Result<Acc, (String, String)> {
        let table: toml::Table = toml::from_str(TEXT).unwrap();
        let accounts = table["accounts"].as_array().unwrap();
        deserialize_part(&accounts[i], &format!("accounts[{i}]"))
    }

    #[test]
    fn errors_get_the_path_inside_the_part() {
        let (path, message) = part(0).unwrap_err();
        assert_eq!(path, "accounts[0].endpoints[1].bogus");
        assert!(message.starts_with("unknown field `bogus`"), "{message}");
        let (path, message) = part(1).unwrap_err();
        assert!(
            path == "accounts[1].pool_size" || path == "accounts[1].endpoints[0].url",
            "{path}: {message}"
        );
    }

    #[test]
    fn lines_of_paths_and_their_ancestors() {
        let loc = Locator::new(TEXT, "t.toml").unwrap();
        assert_eq!(loc.line("node.id"), Some(2));
        assert_eq!(loc.line("accounts[0].endpoints[1].bogus"), Some(6));
        assert_eq!(loc.line("accounts[1].pool_size"), Some(10));
        assert_eq!(loc.line("accounts[1].missing"), loc.line("accounts[1]"));
        assert_eq!(loc.line("nothing"), None);
    }

    #[test]
    fn syntax_errors_never_show_the_value_of_a_key_line() {
        let text = "[gateway]\nrsa_private_key = MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n";
        let e = Locator::new(text, "t.toml").unwrap_err().to_string();
        assert!(e.starts_with("t.toml: line 2, column "), "{e}");
        assert!(!e.contains("MIIE"), "{e}");
    }
}
