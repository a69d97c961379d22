//! A YAML document as a tree of nodes that keep their position, so the
//! validator can check everything in one pass (unknown fields included)
//! instead of stopping at serde's first error.

use std::fmt;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, col: 1 };

    pub fn of<T>(s: &Spanned<T>) -> Pos {
        let l = s.referenced;
        if l.line() == 0 {
            Pos::START
        } else {
            Pos {
                line: usize::try_from(l.line()).unwrap_or(usize::MAX),
                col: usize::try_from(l.column().max(1)).unwrap_or(usize::MAX),
            }
        }
    }
}

#[derive(Debug)]
pub(super) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug)]
pub(super) struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug)]
pub(super) struct Key {
    pub pos: Pos,
    pub name: String,
}

impl Value {
    /// What the value is, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// The raw deserialized form: `Spanned` wrappers around values.
struct RawValue(Value);

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawValue, D::Error> {
        d.deserialize_any(RawVisitor).map(RawValue)
    }
}

struct RawVisitor;

fn to_node(s: Spanned<RawValue>) -> Node {
    Node {
        pos: Pos::of(&s),
        value: s.value.0,
    }
}

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(x) = a.next_element::<Spanned<RawValue>>()? {
            out.push(to_node(x));
        }
        Ok(Value::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = a.next_entry::<Spanned<RawValue>, Spanned<RawValue>>()? {
            let pos = Pos::of(&k);
            let name = match k.value.0 {
                Value::Str(s) => s,
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Null => "~".to_owned(),
                Value::Seq(_) | Value::Map(_) => "<complex key>".to_owned(),
            };
            out.push((Key { pos, name }, to_node(v)));
        }
        Ok(Value::Map(out))
    }
}

/// Parse a whole document. A syntax error gives its position and message.
pub(super) fn parse_document(text: &str) -> Result<Node, (Pos, String)> {
    match serde_saphyr::from_str::<Spanned<RawValue>>(text) {
        Ok(doc) => Ok(to_node(doc)),
        Err(e) => Err(syntax_error(&e)),
    }
}

fn syntax_error(err: &serde_saphyr::Error) -> (Pos, String) {
    let mut inner = err;
    while let serde_saphyr::Error::WithSnippet { error, .. }
    | serde_saphyr::Error::AliasError { error, .. } = inner
    {
        inner = error;
    }
    let loc = err
        .location()
        .filter(|l| l.line() != 0)
        .or_else(|| inner.location());
    let pos = match loc {
        Some(l) if l.line() != 0 => Pos {
            line: usize::try_from(l.line()).unwrap_or(usize::MAX),
            col: usize::try_from(l.column().max(1)).unwrap_or(usize::MAX),
        },
        _ => Pos::START,
    };
    // The first line of the message, without serde-saphyr's own position
    // prefix (we print ours).
    let text = inner.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let msg = match first.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest.to_owned(),
        _ => first.to_owned(),
    };
    (pos, sanitize(&msg))
}

/// Replace control characters so a hostile file cannot inject terminal
/// escapes or fake lines into diagnostics.
pub(super) fn sanitize(text: &str) -> String {
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
