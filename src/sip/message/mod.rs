//! SIP messages (RFC 3261 §7, §20, §25) behind our own types.
//!
//! Contract: [`parse`] takes the bytes of one datagram (or one framed stream message, see
//! [`frame`]) and returns a [`Message`] whose headers are kept *untyped* (name + value, compact
//! names expanded, comma-joined list headers split, folded lines unfolded). Typed views
//! ([`Via`], [`NameAddr`], [`Uri`], CSeq) are parsed on demand, so one odd header never rejects
//! a call that does not need it. [`Message::to_bytes`] prints a message with a correct
//! `Content-Length`. Nothing here panics on any input (see the proptests and `tools/fuzz`).

mod header;
mod parse;
mod uri;

pub use header::{HeaderName, Headers};
pub use parse::{frame, parse, Frame, ParseError};
pub use uri::{NameAddr, Params, Scheme, Uri, Via};

use bytes::Bytes;
use std::fmt;

/// A SIP method. Unknown extension methods are kept by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Prack,
    Update,
    Refer,
    Subscribe,
    Notify,
    Message,
    Publish,
    Other(String),
}

impl Method {
    /// The method's token as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Refer => "REFER",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }

    /// Parses a method token (case-sensitive, as RFC 3261 says); `None` if not a token.
    pub fn parse(s: &str) -> Option<Method> {
        if s.is_empty() || !s.bytes().all(header::is_token_char) {
            return None;
        }
        Some(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "REFER" => Method::Refer,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_string()),
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// Why a typed view of a header could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The header is present but its value does not parse.
    #[error("malformed {0} header")]
    Malformed(&'static str),
}

/// CSeq: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

macro_rules! typed_views {
    () => {
        /// The value of Call-ID.
        pub fn call_id(&self) -> Result<&str, HeaderError> {
            self.headers
                .get(&HeaderName::CallId)
                .ok_or(HeaderError::Missing("Call-ID"))
        }
        /// CSeq, typed.
        pub fn cseq(&self) -> Result<CSeq, HeaderError> {
            let v = self
                .headers
                .get(&HeaderName::CSeq)
                .ok_or(HeaderError::Missing("CSeq"))?;
            parse::parse_cseq(v).ok_or(HeaderError::Malformed("CSeq"))
        }
        /// All Via values, top first.
        pub fn vias(&self) -> Result<Vec<Via>, HeaderError> {
            self.headers
                .get_all(&HeaderName::Via)
                .map(|v| Via::parse(v).ok_or(HeaderError::Malformed("Via")))
                .collect()
        }
        /// The top Via.
        pub fn top_via(&self) -> Result<Via, HeaderError> {
            let v = self
                .headers
                .get(&HeaderName::Via)
                .ok_or(HeaderError::Missing("Via"))?;
            Via::parse(v).ok_or(HeaderError::Malformed("Via"))
        }
        /// From, typed.
        pub fn from(&self) -> Result<NameAddr, HeaderError> {
            let v = self
                .headers
                .get(&HeaderName::From)
                .ok_or(HeaderError::Missing("From"))?;
            NameAddr::parse(v).ok_or(HeaderError::Malformed("From"))
        }
        /// To, typed.
        pub fn to(&self) -> Result<NameAddr, HeaderError> {
            let v = self
                .headers
                .get(&HeaderName::To)
                .ok_or(HeaderError::Missing("To"))?;
            NameAddr::parse(v).ok_or(HeaderError::Malformed("To"))
        }
        /// Contact values (not `*`), typed.
        pub fn contacts(&self) -> Result<Vec<NameAddr>, HeaderError> {
            self.headers
                .get_all(&HeaderName::Contact)
                .filter(|v| v.trim() != "*")
                .map(|v| NameAddr::parse(v).ok_or(HeaderError::Malformed("Contact")))
                .collect()
        }
        /// Record-Route values, top first.
        pub fn record_routes(&self) -> Result<Vec<NameAddr>, HeaderError> {
            self.headers
                .get_all(&HeaderName::RecordRoute)
                .map(|v| NameAddr::parse(v).ok_or(HeaderError::Malformed("Record-Route")))
                .collect()
        }
        /// Expires header as seconds.
        pub fn expires(&self) -> Option<u32> {
            self.headers
                .get(&HeaderName::Expires)
                .and_then(|v| v.trim().parse().ok())
        }
        /// Content-Type, without parameters, lowercased.
        pub fn content_type(&self) -> Option<String> {
            self.headers.get(&HeaderName::ContentType).map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
        }
        /// Whether an option tag is listed in a Supported/Require-like header.
        pub fn has_option_tag(&self, name: &HeaderName, tag: &str) -> bool {
            self.headers
                .get_all(name)
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(tag))
        }
    };
}

impl Request {
    /// A request with no headers and an empty body.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::default(),
            body: Bytes::new(),
        }
    }

    typed_views!();

    /// Max-Forwards (70 when absent, per RFC 3261 §8.1.1.6 for our own purposes).
    pub fn max_forwards(&self) -> Result<u32, HeaderError> {
        match self.headers.get(&HeaderName::MaxForwards) {
            None => Ok(70),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| HeaderError::Malformed("Max-Forwards")),
        }
    }

    /// Prints the request; Content-Length is written from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.uri.to_string().as_bytes());
        out.extend_from_slice(b" SIP/2.0\r\n");
        self.headers.write_to(&mut out, self.body.len());
        out.extend_from_slice(&self.body);
        out
    }
}

impl Response {
    /// A response with the given status and the standard reason phrase.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: reason_phrase(status).to_string(),
            headers: Headers::default(),
            body: Bytes::new(),
        }
    }

    typed_views!();

    /// Prints the response; Content-Length is written from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(b"SIP/2.0 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.headers.write_to(&mut out, self.body.len());
        out.extend_from_slice(&self.body);
        out
    }

    /// 1xx.
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Message {
    /// Headers of either kind.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
    /// Prints the message.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

/// The standard reason phrase of a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match status / 100 {
            1 => "Progress",
            2 => "OK",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// Builds a response to `req` per RFC 3261 §8.2.6: Via, From, To, Call-ID and CSeq copied
/// (raw, so this works for requests whose other headers are malformed), a To tag added when
/// `to_tag` is given and the To has none.
pub fn response_to(
    req: &Request,
    status: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> Response {
    let mut resp = Response::new(status);
    if let Some(r) = reason {
        resp.reason = r.to_string();
    }
    for v in req.headers.get_all(&HeaderName::Via) {
        resp.headers.push(HeaderName::Via, v);
    }
    if let Some(v) = req.headers.get(&HeaderName::From) {
        resp.headers.push(HeaderName::From, v);
    }
    if let Some(v) = req.headers.get(&HeaderName::To) {
        let has_tag = NameAddr::parse(v)
            .map(|n| n.tag().is_some())
            .unwrap_or(true);
        match to_tag {
            Some(tag) if !has_tag && status != 100 => {
                resp.headers.push(HeaderName::To, format!("{v};tag={tag}"))
            }
            _ => resp.headers.push(HeaderName::To, v),
        }
    }
    if let Some(v) = req.headers.get(&HeaderName::CallId) {
        resp.headers.push(HeaderName::CallId, v);
    }
    if let Some(v) = req.headers.get(&HeaderName::CSeq) {
        resp.headers.push(HeaderName::CSeq, v);
    }
    if status == 100 {
        if let Some(v) = req.headers.get(&HeaderName::Other("Timestamp".into())) {
            resp.headers.push(HeaderName::Other("Timestamp".into()), v);
        }
    }
    resp
}

#[cfg(test)]
mod tests;
