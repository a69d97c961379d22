//! Untyped headers: names canonicalised (compact forms expanded), values kept as text.

use std::fmt;

/// A header name. Well-known names are variants; the rest keep their spelling and compare
/// case-insensitively.
#[derive(Debug, Clone)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    MaxForwards,
    Route,
    RecordRoute,
    ContentLength,
    ContentType,
    ContentEncoding,
    Expires,
    MinExpires,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    Allow,
    Supported,
    Require,
    ProxyRequire,
    Unsupported,
    UserAgent,
    Server,
    Subject,
    ReferTo,
    ReferredBy,
    Event,
    SessionExpires,
    MinSe,
    RSeq,
    RAck,
    RetryAfter,
    Reason,
    AllowEvents,
    Accept,
    Other(String),
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}
impl Eq for HeaderName {}

impl HeaderName {
    /// Canonicalises a name as read from the wire (compact forms expanded).
    pub fn from_wire(name: &str) -> HeaderName {
        if name.len() == 1 {
            return match name.as_bytes()[0].to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'e' => HeaderName::ContentEncoding,
                b'k' => HeaderName::Supported,
                b's' => HeaderName::Subject,
                b'r' => HeaderName::ReferTo,
                b'b' => HeaderName::ReferredBy,
                b'o' => HeaderName::Event,
                b'x' => HeaderName::SessionExpires,
                b'u' => HeaderName::AllowEvents,
                _ => HeaderName::Other(name.to_string()),
            };
        }
        let known = [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::Contact,
            HeaderName::MaxForwards,
            HeaderName::Route,
            HeaderName::RecordRoute,
            HeaderName::ContentLength,
            HeaderName::ContentType,
            HeaderName::ContentEncoding,
            HeaderName::Expires,
            HeaderName::MinExpires,
            HeaderName::Authorization,
            HeaderName::ProxyAuthorization,
            HeaderName::WwwAuthenticate,
            HeaderName::ProxyAuthenticate,
            HeaderName::Allow,
            HeaderName::Supported,
            HeaderName::Require,
            HeaderName::ProxyRequire,
            HeaderName::Unsupported,
            HeaderName::UserAgent,
            HeaderName::Server,
            HeaderName::Subject,
            HeaderName::ReferTo,
            HeaderName::ReferredBy,
            HeaderName::Event,
            HeaderName::SessionExpires,
            HeaderName::MinSe,
            HeaderName::RSeq,
            HeaderName::RAck,
            HeaderName::RetryAfter,
            HeaderName::Reason,
            HeaderName::AllowEvents,
            HeaderName::Accept,
        ];
        for k in known {
            if k.as_str().eq_ignore_ascii_case(name) {
                return k;
            }
        }
        HeaderName::Other(name.to_string())
    }

    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::Contact => "Contact",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::Expires => "Expires",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::Authorization => "Authorization",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::Allow => "Allow",
            HeaderName::Supported => "Supported",
            HeaderName::Require => "Require",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Server => "Server",
            HeaderName::Subject => "Subject",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::ReferredBy => "Referred-By",
            HeaderName::Event => "Event",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::MinSe => "Min-SE",
            HeaderName::RSeq => "RSeq",
            HeaderName::RAck => "RAck",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::Reason => "Reason",
            HeaderName::AllowEvents => "Allow-Events",
            HeaderName::Accept => "Accept",
            HeaderName::Other(s) => s,
        }
    }

    /// Headers whose comma-joined values are separate entries (RFC 3261 §7.3.1) and that we
    /// split on parse so that each entry is one value.
    pub(crate) fn is_split_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via | HeaderName::Route | HeaderName::RecordRoute | HeaderName::Contact
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Headers in wire order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headers {
    entries: Vec<(HeaderName, String)>,
}

impl Headers {
    /// Appends a header.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.entries.push((name, value.into()));
    }
    /// Inserts a header before all others (used for Via).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        self.entries.insert(0, (name, value.into()));
    }
    /// Replaces every header of that name with one value (appended where the first was).
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        if let Some(pos) = self.entries.iter().position(|(n, _)| *n == name) {
            self.entries[pos].1 = value;
            let mut i = 0;
            self.entries.retain(|(n, _)| {
                i += 1;
                i - 1 == pos || *n != name
            });
        } else {
            self.entries.push((name, value));
        }
    }
    /// Removes every header of that name.
    pub fn remove(&mut self, name: &HeaderName) {
        self.entries.retain(|(n, _)| n != name);
    }
    /// Removes the first header of that name and returns its value.
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<String> {
        let pos = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(pos).1)
    }
    /// The first value of that name.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// Every value of that name, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// Whether a header of that name is present.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }
    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &str)> {
        self.entries.iter().map(|(n, v)| (n, v.as_str()))
    }
    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// No headers at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the headers (Content-Length from `body_len`, replacing any stored one) and the
    /// blank line.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>, body_len: usize) {
        for (n, v) in &self.entries {
            if *n == HeaderName::ContentLength {
                continue;
            }
            out.extend_from_slice(n.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(body_len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
    }
}

/// RFC 3261 `token` characters.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Splits a header value at top-level commas (outside quotes and angle brackets).
pub(crate) fn split_commas(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_q, mut in_a, mut esc) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' if in_q => esc = true,
            '"' => in_q = !in_q,
            '<' if !in_q => in_a = true,
            '>' if !in_q => in_a = false,
            ',' if !in_q && !in_a => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}
