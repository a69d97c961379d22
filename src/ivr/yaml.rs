//! A position-carrying YAML tree.
//!
//! Contract: [`parse`] turns one YAML document into a [`Node`] tree in which every
//! scalar, sequence, mapping and mapping key knows its 1-based line and column
//! (captured with serde-saphyr's [`Spanned`]). Scalars that YAML typed as
//! booleans or numbers also keep the exact source text, so `010` or `yes` can be
//! read back as the string the designer wrote. Duplicate mapping keys are kept,
//! in order, so the flow compiler can name them. Nothing here knows about flows.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Location, MessageFormatter, Spanned, UserMessageFormatter};

/// A 1-based source position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Pos {
    pub(crate) line: u32,
    pub(crate) col: u32,
}

impl Pos {
    pub(crate) const START: Pos = Pos { line: 1, col: 1 };

    fn from_location(location: &Location) -> Pos {
        if location.line() == 0 {
            return Pos::START;
        }
        Pos {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            col: u32::try_from(location.column().max(1)).unwrap_or(u32::MAX),
        }
    }
}

/// One YAML node with its position.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) pos: Pos,
}

/// A mapping key: its text (scalars of any YAML type are rendered as written) and position.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) pos: Pos,
}

/// The value of a node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    /// A boolean and the text it was written as.
    Bool(bool, String),
    /// An integer and the text it was written as.
    Int(i64, String),
    /// A float and the text it was written as.
    Float(f64, String),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// A short name of the node kind for "expected X, found Y" messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(..) => "a boolean",
            Value::Int(..) => "a number",
            Value::Float(..) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The text of a scalar as the designer wrote it (strings as parsed).
    pub(crate) fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            Value::Bool(_, raw) | Value::Int(_, raw) | Value::Float(_, raw) => Some(raw),
            _ => None,
        }
    }

    /// The entries of a mapping.
    #[cfg(test)]
    pub(crate) fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
}

/// A YAML syntax error: where and what.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SyntaxError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
}

/// Parse one YAML document. An empty document is `Null` at 1:1.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let options = serde_saphyr::options!(duplicate_keys: DuplicateKeyPolicy::PassThrough);
    match serde_saphyr::from_str_with_options::<Option<Spanned<Raw>>>(text, options) {
        Ok(Some(raw)) => {
            let lines: Vec<&str> = text.lines().collect();
            Ok(lower(raw, &lines))
        }
        Ok(None) => Ok(Node {
            value: Value::Null,
            pos: Pos::START,
        }),
        Err(err) => Err(syntax_error(&err)),
    }
}

fn syntax_error(err: &serde_saphyr::Error) -> SyntaxError {
    let mut inner = err;
    while let serde_saphyr::Error::WithSnippet { error, .. }
    | serde_saphyr::Error::AliasError { error, .. } = inner
    {
        inner = error;
    }
    let location = err
        .location()
        .filter(|l| l.line() != 0)
        .or_else(|| inner.location())
        .unwrap_or(Location::UNKNOWN);
    let message = match inner {
        serde_saphyr::Error::MultipleDocuments { .. } => {
            "a flow file must hold a single YAML document (remove the extra `---`)".to_owned()
        }
        other => UserMessageFormatter.format_message(other).into_owned(),
    };
    SyntaxError {
        pos: Pos::from_location(&location),
        message: sanitize(&message),
    }
}

/// Replace control characters so a hostile file cannot fake extra lines or
/// terminal escapes in diagnostics.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The tree as serde-saphyr hands it over, before positions are flattened.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<RawKey>, Spanned<Raw>)>),
}

/// A key's text; `typed` when YAML read it as a boolean or number, so the
/// source spelling should be used instead (`y:` is a step name, not `true`).
struct RawKey {
    text: String,
    typed: bool,
}

fn lower(raw: Spanned<Raw>, lines: &[&str]) -> Node {
    let pos = Pos::from_location(&raw.referenced);
    let source = || raw_text(lines, pos);
    let value = match raw.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b, source().unwrap_or_else(|| b.to_string())),
        Raw::Int(i) => Value::Int(i, source().unwrap_or_else(|| i.to_string())),
        Raw::Float(f) => Value::Float(f, source().unwrap_or_else(|| f.to_string())),
        Raw::Str(s) => Value::Str(s),
        Raw::Seq(items) => Value::Seq(items.into_iter().map(|i| lower(i, lines)).collect()),
        Raw::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let pos = Pos::from_location(&k.referenced);
                    let name = if k.value.typed {
                        raw_text(lines, pos).unwrap_or(k.value.text)
                    } else {
                        k.value.text
                    };
                    (Key { name, pos }, lower(v, lines))
                })
                .collect(),
        ),
    };
    Node { value, pos }
}

/// The plain-scalar token at `pos`, as written.
fn raw_text(lines: &[&str], pos: Pos) -> Option<String> {
    let line = lines.get(usize::try_from(pos.line).ok()?.checked_sub(1)?)?;
    let rest: String = line
        .chars()
        .skip(usize::try_from(pos.col).ok()?.checked_sub(1)?)
        .collect();
    let chars: Vec<char> = rest.chars().collect();
    let mut end = chars.len();
    for (i, &c) in chars.iter().enumerate() {
        let next_blank = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        let prev_blank = i == 0 || chars[i - 1].is_whitespace();
        if matches!(c, ',' | ']' | '}') || (c == '#' && prev_blank) || (c == ':' && next_blank) {
            end = i;
            break;
        }
    }
    let token: String = chars[..end].iter().collect();
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// Where `needle` starts on the source line of `pos`, at or after its column.
pub(crate) fn find_on_line(text: &str, pos: Pos, needle: &str) -> Option<Pos> {
    let line = text
        .lines()
        .nth(usize::try_from(pos.line).ok()?.checked_sub(1)?)?;
    let skip = usize::try_from(pos.col).ok()?.saturating_sub(1);
    let byte_start = line.char_indices().nth(skip).map(|(b, _)| b)?;
    let found = line[byte_start..].find(needle)? + byte_start;
    let col = line[..found].chars().count() + 1;
    Some(Pos {
        line: pos.line,
        col: u32::try_from(col).ok()?,
    })
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Raw::Int(i),
            Err(_) => Raw::Str(v.to_string()),
        })
    }
    fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

impl RawKey {
    fn typed(text: String) -> RawKey {
        RawKey { text, typed: true }
    }
}

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = RawKey;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }
    fn visit_unit<E>(self) -> Result<RawKey, E> {
        Ok(RawKey::typed(String::new()))
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawKey, E> {
        Ok(RawKey::typed(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawKey, E> {
        Ok(RawKey::typed(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawKey, E> {
        Ok(RawKey::typed(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawKey, E> {
        Ok(RawKey::typed(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawKey, E> {
        Ok(RawKey {
            text: v.to_owned(),
            typed: false,
        })
    }
    fn visit_string<E>(self, v: String) -> Result<RawKey, E> {
        Ok(RawKey {
            text: v,
            typed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_and_raw_scalars() {
        let node = parse("a: 1\nb:\n  - yes\n  - \"x\"\n  - 010\n").unwrap();
        let map = node.as_map().unwrap();
        assert_eq!(map[0].0.name, "a");
        assert_eq!(map[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(map[0].1.scalar_text(), Some("1"));
        let Value::Seq(items) = &map[1].1.value else {
            panic!("not a list")
        };
        assert_eq!(items[0].scalar_text(), Some("yes"));
        assert_eq!(items[1].scalar_text(), Some("x"));
        assert_eq!(items[2].scalar_text(), Some("010"));
        assert_eq!(items[2].pos, Pos { line: 5, col: 5 });
    }

    #[test]
    fn typed_keys_keep_their_spelling() {
        let node = parse("y: 1\nno: 2\n010: 3\n").unwrap();
        let names: Vec<&str> = node
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.name.as_str())
            .collect();
        assert_eq!(names, ["y", "no", "010"]);
    }

    #[test]
    fn duplicate_keys_are_kept() {
        let node = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(node.as_map().unwrap().len(), 2);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("name: [a\nstart: b\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, col: 6 });
        assert!(!err.message.contains('\n'));
    }
}
