//! `${variable}` templates and the variable store.
//!
//! Contract: a [`Template`] is parsed once at load time (syntax errors are
//! reported with the position of the `${`), knows the variables it uses, and
//! expands against [`Variables`] plus the clock-derived built-ins at run time.
//! An unset variable expands to the empty string; the validator rejects flows
//! where that can happen on some path. `$${` writes a literal `${`.
//!
//! Built-in variables: `caller.number`, `caller.name`, `called.number`,
//! `channel` (`trunk` or `browser`), `channel.trunk` (the trunk name, empty for
//! browser calls), and, computed from `now`, `time.now` (`HH:MM`), `time.date`
//! (`YYYY-MM-DD`) and `time.weekday` (`monday`...).

use std::collections::BTreeMap;
use std::fmt;

use super::time::LocalDateTime;
use super::yaml::Pos;

/// Variables supplied by the call itself.
pub const CALL_VARIABLES: [&str; 5] = [
    "caller.number",
    "caller.name",
    "called.number",
    "channel",
    "channel.trunk",
];

/// Variables computed from the current time.
pub const TIME_VARIABLES: [&str; 3] = ["time.now", "time.date", "time.weekday"];

/// Whether `name` is a built-in variable.
pub fn is_builtin(name: &str) -> bool {
    CALL_VARIABLES.contains(&name) || TIME_VARIABLES.contains(&name)
}

/// Whether `name` is a well-formed variable name: dot-separated segments of
/// letters, digits and `_`, the first segment starting with a letter or `_`.
pub fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').enumerate().all(|(i, seg)| {
            !seg.is_empty()
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && (i > 0 || !seg.starts_with(|c: char| c.is_ascii_digit()))
        })
}

/// How a call reached us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Through a SIP trunk, named.
    Trunk(String),
    /// From a web page or app over WebRTC.
    Browser,
    /// From a phone registered with us (a local user).
    Phone,
}

/// What the runtime knows about a call when the flow starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// The calling number (as presented; may be empty for anonymous calls).
    pub caller_number: String,
    /// The calling name, if presented.
    pub caller_name: String,
    /// The number dialled.
    pub called_number: String,
    /// How the call came in.
    pub channel: Channel,
}

/// The variables of one run: name to string value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variables(BTreeMap<String, String>);

impl Variables {
    /// No variables.
    pub fn new() -> Variables {
        Variables::default()
    }

    /// The built-in call variables for `call`.
    pub fn for_call(call: &CallInfo) -> Variables {
        let mut v = Variables::new();
        v.set("caller.number", &call.caller_number);
        v.set("caller.name", &call.caller_name);
        v.set("called.number", &call.called_number);
        match &call.channel {
            Channel::Trunk(name) => {
                v.set("channel", "trunk");
                v.set("channel.trunk", name);
            }
            Channel::Browser => {
                v.set("channel", "browser");
                v.set("channel.trunk", "");
            }
            Channel::Phone => {
                v.set("channel", "phone");
                v.set("channel.trunk", "");
            }
        }
        v
    }

    /// Set a variable.
    pub fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), value.to_owned());
    }

    /// A stored variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A variable as a template sees it: stored ones, then the time built-ins.
    pub fn lookup(&self, name: &str, now: LocalDateTime) -> Option<String> {
        if let Some(v) = self.get(name) {
            return Some(v.to_owned());
        }
        match name {
            "time.now" => Some(now.hhmm()),
            "time.date" => Some(now.date().to_string()),
            "time.weekday" => Some(now.weekday().full_name().to_owned()),
            _ => None,
        }
    }

    /// All stored variables in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Text(String),
    Var(String),
}

/// A parsed string with `${variables}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) parts: Vec<Part>,
    /// Position of the string in its file.
    pub(crate) pos: Pos,
}

/// A template that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TemplateError {
    Unclosed,
    BadName(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unclosed => f.write_str("`${` without a closing `}`"),
            TemplateError::BadName(n) => write!(
                f,
                "`${{{n}}}` is not a variable name (letters, digits, `_` and `.`)"
            ),
        }
    }
}

impl Template {
    /// A template of plain text.
    pub(crate) fn literal(text: &str, pos: Pos) -> Template {
        Template {
            parts: vec![Part::Text(text.to_owned())],
            pos,
        }
    }

    /// Parse `text`; `pos` is where the string starts in its file.
    pub(crate) fn parse(text: &str, pos: Pos) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("$${") {
                literal.push_str("${");
                rest = after;
            } else if let Some(after) = tail.strip_prefix("${") {
                let end = after.find('}').ok_or(TemplateError::Unclosed)?;
                let name = after[..end].trim();
                if !is_variable_name(name) {
                    return Err(TemplateError::BadName(after[..end].to_owned()));
                }
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Var(name.to_owned()));
                rest = &after[end + 1..];
            } else {
                literal.push('$');
                rest = &tail[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() || parts.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts, pos })
    }

    /// The variables used, in order of appearance.
    pub(crate) fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Text(_) => None,
        })
    }

    /// The text if the template has no variables.
    pub(crate) fn as_literal(&self) -> Option<String> {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                Part::Var(_) => None,
            })
            .collect()
    }

    /// Expand; unset variables become empty strings.
    pub(crate) fn expand(&self, vars: &Variables, now: LocalDateTime) -> String {
        self.expand_with(vars, now, |s| s.to_owned())
    }

    /// Expand, passing each variable's value through `encode` (e.g. for URLs).
    pub(crate) fn expand_with(
        &self,
        vars: &Variables,
        now: LocalDateTime,
        encode: impl Fn(&str) -> String,
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(&encode(&vars.lookup(v, now).unwrap_or_default())),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    /// The template as written (with `${...}` placeholders).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(t) => f.write_str(&t.replace("${", "$${"))?,
                Part::Var(v) => write!(f, "${{{v}}}")?,
            }
        }
        Ok(())
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters, for values
/// placed in URLs.
pub(crate) fn url_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> LocalDateTime {
        "2026-11-23T09:05".parse().unwrap()
    }

    #[test]
    fn parse_and_expand() {
        let t =
            Template::parse("Hi ${caller.name}, it is ${time.now} $${x} $5", Pos::START).unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["caller.name", "time.now"]);
        let mut v = Variables::new();
        v.set("caller.name", "Ann");
        assert_eq!(t.expand(&v, now()), "Hi Ann, it is 09:05 ${x} $5");
        assert_eq!(
            Template::parse("${a", Pos::START),
            Err(TemplateError::Unclosed)
        );
        assert!(matches!(
            Template::parse("${a b}", Pos::START),
            Err(TemplateError::BadName(_))
        ));
        let unset = Template::parse("[${nope}]", Pos::START).unwrap();
        assert_eq!(unset.expand(&v, now()), "[]");
    }

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("+49 30/1"), "%2B49%2030%2F1");
    }

    proptest! {
        #[test]
        fn display_roundtrips(text in "[a-z ${}.]{0,30}") {
            if let Ok(t) = Template::parse(&text, Pos::START) {
                let again = Template::parse(&t.to_string(), Pos::START).unwrap();
                prop_assert_eq!(again.parts, t.parts);
            }
        }
    }
}
