//! Reading typed values out of a [`Node`] tree while collecting every error.
//!
//! Contract: a [`Reader`] belongs to one file. Each helper either returns the
//! value or records a [`FlowError`] at the offending node and returns `None`, so
//! the caller can keep going and report everything in one pass. [`Fields`]
//! checks a mapping's keys against the allowed set (unknown keys get a "did you
//! mean" suggestion; duplicate keys are reported) before fields are read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{suggest, DidYouMean, FlowError, FlowErrorKind};
use super::template::Template;
use super::time::parse_duration;
use super::yaml::{find_on_line, Key, Node, Pos, Value};

/// Error collection for one file.
pub(crate) struct Reader<'s> {
    pub(crate) file: PathBuf,
    pub(crate) source: &'s str,
    pub(crate) errors: Vec<FlowError>,
}

/// The checked keys of one mapping.
pub(crate) struct Fields<'n> {
    pub(crate) entries: &'n [(Key, Node)],
    /// Position of the mapping (its first key, or the node itself when empty).
    pub(crate) pos: Pos,
    pub(crate) context: String,
}

impl<'n> Fields<'n> {
    /// The node of `name`, if present (the first one if written twice).
    pub(crate) fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }

    /// The key of `name`, if present.
    pub(crate) fn key(&self, name: &str) -> Option<&'n Key> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(k, _)| k)
    }

    /// Whether `name` is present.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<'s> Reader<'s> {
    pub(crate) fn new(file: &Path, source: &'s str) -> Reader<'s> {
        Reader {
            file: file.to_path_buf(),
            source,
            errors: Vec::new(),
        }
    }

    /// Record an error.
    pub(crate) fn error(&mut self, pos: Pos, kind: FlowErrorKind) {
        self.errors.push(kind.at(&self.file, pos));
    }

    /// A mapping whose keys must all be in `allowed`. Unknown keys are reported
    /// (with a suggestion), duplicates too; the mapping is still returned.
    pub(crate) fn fields<'n>(
        &mut self,
        node: &'n Node,
        field: &str,
        context: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.wrong_type(node, field, "a mapping");
            return None;
        };
        self.check_duplicates(entries, |key, first_line| FlowErrorKind::DuplicateKey {
            key: key.to_owned(),
            first_line,
        });
        for (key, _) in entries {
            if !allowed.contains(&key.name.as_str()) {
                let suggestion = DidYouMean(suggest(&key.name, allowed.iter().copied()));
                self.error(
                    key.pos,
                    FlowErrorKind::UnknownField {
                        found: key.name.clone(),
                        context: context.to_owned(),
                        suggestion,
                    },
                );
            }
        }
        Some(Fields {
            entries,
            pos: entries.first().map_or(node.pos, |(k, _)| k.pos),
            context: context.to_owned(),
        })
    }

    /// Report keys written twice in one mapping, using `make` for the message.
    pub(crate) fn check_duplicates(
        &mut self,
        entries: &[(Key, Node)],
        make: impl Fn(&str, u32) -> FlowErrorKind,
    ) {
        for (i, (key, _)) in entries.iter().enumerate() {
            if let Some((first, _)) = entries[..i].iter().find(|(k, _)| k.name == key.name) {
                self.error(key.pos, make(&key.name, first.pos.line));
            }
        }
    }

    /// Report a missing required field at the mapping.
    pub(crate) fn missing(&mut self, fields: &Fields<'_>, field: &'static str) {
        let kind = FlowErrorKind::MissingField {
            field,
            context: fields.context.clone(),
        };
        self.error(fields.pos, kind);
    }

    pub(crate) fn wrong_type(&mut self, node: &Node, field: &str, expected: &'static str) {
        self.error(
            node.pos,
            FlowErrorKind::WrongType {
                field: field.to_owned(),
                expected,
                found: node.value.kind(),
            },
        );
    }

    pub(crate) fn invalid(&mut self, pos: Pos, field: &str, problem: impl Into<String>) {
        self.error(
            pos,
            FlowErrorKind::InvalidValue {
                field: field.to_owned(),
                problem: problem.into(),
            },
        );
    }

    /// A scalar as text (numbers and booleans as written).
    pub(crate) fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match node.scalar_text() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.wrong_type(node, field, "a string");
                None
            }
        }
    }

    /// A required string field.
    pub(crate) fn req_string(&mut self, f: &Fields<'_>, name: &'static str) -> Option<String> {
        match f.get(name) {
            Some(node) => self.string(node, name),
            None => {
                self.missing(f, name);
                None
            }
        }
    }

    /// An optional string field.
    pub(crate) fn opt_string(&mut self, f: &Fields<'_>, name: &str) -> Option<String> {
        f.get(name).and_then(|n| self.string(n, name))
    }

    /// A scalar parsed as a template. The template's position is the node's.
    pub(crate) fn template(&mut self, node: &Node, field: &str) -> Option<Template> {
        let text = self.string(node, field)?;
        match Template::parse(&text, node.pos) {
            Ok(t) => Some(t),
            Err(e) => {
                let pos = find_on_line(self.source, node.pos, "${").unwrap_or(node.pos);
                self.invalid(pos, field, e.to_string());
                None
            }
        }
    }

    /// Position of `${var}` inside the template's string when it can be found
    /// on the same source line, else the string's position.
    pub(crate) fn var_pos(&self, template: &Template, var: &str) -> Pos {
        find_on_line(self.source, template.pos, &format!("${{{var}"))
            .or_else(|| find_on_line(self.source, template.pos, "${"))
            .unwrap_or(template.pos)
    }

    /// A boolean field (`true`/`false`).
    pub(crate) fn opt_bool(&mut self, f: &Fields<'_>, name: &str) -> Option<bool> {
        let node = f.get(name)?;
        match &node.value {
            Value::Bool(b, _) => Some(*b),
            _ => {
                self.wrong_type(node, name, "`true` or `false`");
                None
            }
        }
    }

    /// A duration field.
    pub(crate) fn opt_duration(&mut self, f: &Fields<'_>, name: &str) -> Option<Duration> {
        let node = f.get(name)?;
        let text = self.string(node, name)?;
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.invalid(node.pos, name, e.to_string());
                None
            }
        }
    }

    /// A whole number in `range`.
    pub(crate) fn opt_int(
        &mut self,
        f: &Fields<'_>,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let node = f.get(name)?;
        match &node.value {
            Value::Int(i, _) if range.contains(i) => Some(*i),
            Value::Int(..) => {
                self.invalid(
                    node.pos,
                    name,
                    format!("must be from {} to {}", range.start(), range.end()),
                );
                None
            }
            _ => {
                self.wrong_type(node, name, "a whole number");
                None
            }
        }
    }

    /// A list node's items (a single scalar counts as a one-item list when
    /// `allow_single`).
    pub(crate) fn list<'n>(
        &mut self,
        node: &'n Node,
        field: &str,
        allow_single: bool,
    ) -> Option<Vec<&'n Node>> {
        match &node.value {
            Value::Seq(items) => Some(items.iter().collect()),
            Value::Map(_) | Value::Null => {
                self.wrong_type(node, field, "a list");
                None
            }
            _ if allow_single => Some(vec![node]),
            _ => {
                self.wrong_type(node, field, "a list");
                None
            }
        }
    }
}
