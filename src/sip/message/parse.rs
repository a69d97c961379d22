//! Wire parsing: start line, untyped headers, body; stream framing for TCP/TLS.

use super::header::{is_token_char, split_commas};
use super::{CSeq, HeaderName, Headers, Message, Method, Request, Response, Uri};
use bytes::Bytes;

/// Why bytes are not a SIP message we accept.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// What is wrong, fit for a 400's reason phrase.
    pub reason: String,
    /// The status to answer with (400, 416, 505, 513).
    pub status: u16,
    /// The request as far as it could be read, when it can be answered at all (start line and
    /// the headers a response copies were readable). `None` for responses and garbage.
    pub request: Option<Box<Request>>,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}
impl std::error::Error for ParseError {}

fn err(reason: impl Into<String>) -> ParseError {
    ParseError {
        reason: reason.into(),
        status: 400,
        request: None,
    }
}

/// One step of framing a byte stream (TCP, TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// More bytes are needed.
    Incomplete,
    /// A whole message occupies the first `len` bytes.
    Message(usize),
    /// RFC 5626 keep-alive: `len` bytes of CRLF; `ping` when it was a double CRLF that wants
    /// a single CRLF back.
    KeepAlive { len: usize, ping: bool },
    /// The stream cannot be framed (headers too large, bad Content-Length): close it.
    Invalid(String),
}

/// Finds the first message in a stream buffer.
pub fn frame(buf: &[u8], max_size: usize) -> Frame {
    if buf.starts_with(b"\r\n\r\n") {
        return Frame::KeepAlive { len: 4, ping: true };
    }
    if buf.starts_with(b"\r\n") {
        if buf.len() < 4 && b"\r\n\r\n".starts_with(buf) {
            return Frame::Incomplete;
        }
        return Frame::KeepAlive {
            len: 2,
            ping: false,
        };
    }
    let Some((head_end, body_start)) = find_header_end(buf) else {
        if buf.len() > max_size {
            return Frame::Invalid("headers too large".into());
        }
        return Frame::Incomplete;
    };
    let head = &buf[..head_end];
    let mut clen = 0usize;
    for line in head.split(|&b| b == b'\n') {
        let line = trim_cr(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim_ascii(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let v = trim_ascii(&line[colon + 1..]);
            match std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
            {
                Some(n) => clen = n,
                None => return Frame::Invalid("bad Content-Length".into()),
            }
        }
    }
    let total = body_start + clen;
    if total > max_size {
        return Frame::Invalid("message too large".into());
    }
    if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Message(total)
    }
}

/// (end of the header block, start of the body).
fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Parses one message (a datagram, or a frame from [`frame`]). Leading CRLFs are skipped.
/// A datagram may omit Content-Length (the body is the rest); a Content-Length larger than
/// the bytes present is an error, a smaller one truncates.
pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
    let mut start = 0;
    while start < buf.len() && (buf[start] == b'\r' || buf[start] == b'\n') {
        start += 1;
    }
    let buf = &buf[start..];
    if buf.is_empty() {
        return Err(err("empty message"));
    }
    let (head_end, body_start) = find_header_end(buf).unwrap_or((buf.len(), buf.len()));
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| err("headers are not UTF-8"))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or("");

    // Headers, with folded lines unfolded.
    let mut raw: Vec<(String, String)> = Vec::new();
    let mut header_error: Option<String> = None;
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            match raw.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => {
                    header_error
                        .get_or_insert_with(|| "continuation line before any header".into());
                }
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        match line.split_once(':') {
            Some((n, v)) => {
                let n = n.trim_end();
                if n.is_empty() || !n.bytes().all(is_token_char) {
                    header_error
                        .get_or_insert_with(|| format!("bad header name {:?}", truncate(n)));
                    continue;
                }
                raw.push((n.to_string(), v.trim().to_string()));
            }
            None => {
                header_error.get_or_insert_with(|| {
                    format!("header line without colon: {:?}", truncate(line))
                });
            }
        }
    }
    let mut headers = Headers::default();
    for (n, v) in raw {
        let name = HeaderName::from_wire(&n);
        if name.is_split_list() {
            for part in split_commas(&v) {
                headers.push(name.clone(), part);
            }
        } else {
            headers.push(name, v);
        }
    }

    // Body by Content-Length.
    let rest = &buf[body_start.min(buf.len())..];
    let body = match headers.get(&HeaderName::ContentLength) {
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n <= rest.len() => Ok(Bytes::copy_from_slice(&rest[..n])),
            Ok(_) => Err("Content-Length larger than the body"),
            Err(_) => Err("malformed Content-Length"),
        },
        None => Ok(Bytes::copy_from_slice(rest)),
    };

    if let Some(rest) = start_line.strip_prefix("SIP/") {
        // Response.
        let mut parts = rest.splitn(3, ' ');
        let ver = parts.next().unwrap_or("");
        if ver != "2.0" {
            return Err(err("unsupported SIP version"));
        }
        let code = parts.next().unwrap_or("");
        let status: u16 = match code.parse() {
            Ok(c) if (100..700).contains(&c) && code.len() == 3 => c,
            _ => return Err(err("bad status code")),
        };
        let reason = parts.next().unwrap_or("").to_string();
        if let Some(e) = header_error {
            return Err(err(e));
        }
        let resp = Response {
            status,
            reason,
            headers,
            body: body.map_err(err)?,
        };
        check_common(&resp.headers, resp.cseq().ok().as_ref(), |_| Ok(())).map_err(err)?;
        return Ok(Message::Response(resp));
    }

    // Request.
    let mut parts = start_line.split(' ');
    let (m, u, v) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    if parts.next().is_some() || m.is_empty() || u.is_empty() || v.is_empty() {
        return Err(err("malformed request line"));
    }
    let method = Method::parse(m).ok_or_else(|| err("malformed method"))?;
    let uri_parsed = Uri::parse(u);
    let lenient = |headers: Headers| Request {
        method: method.clone(),
        uri: uri_parsed
            .clone()
            .unwrap_or_else(|| Uri::sip(None, "invalid", None)),
        headers,
        body: Bytes::new(),
    };
    let answerable = headers.contains(&HeaderName::Via)
        && headers.contains(&HeaderName::CallId)
        && headers.contains(&HeaderName::CSeq)
        && headers.contains(&HeaderName::From)
        && headers.contains(&HeaderName::To);
    let fail = |reason: String, status: u16, headers: Headers| ParseError {
        reason,
        status,
        request: answerable.then(|| Box::new(lenient(headers))),
    };
    if v != "SIP/2.0" {
        return Err(fail("unsupported SIP version".into(), 505, headers));
    }
    if let Some(e) = header_error {
        return Err(fail(e, 400, headers));
    }
    let Some(uri) = uri_parsed.clone() else {
        let scheme_ok = u
            .split_once(':')
            .map(|(s, _)| ["sip", "sips", "tel"].contains(&s.to_ascii_lowercase().as_str()));
        return Err(match scheme_ok {
            Some(false) => fail("unsupported URI scheme".into(), 416, headers),
            _ => fail("malformed Request-URI".into(), 400, headers),
        });
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return Err(fail(e.into(), 400, headers)),
    };
    let req = Request {
        method: method.clone(),
        uri,
        headers,
        body,
    };
    let cseq = req.cseq().ok();
    if let Err(e) = check_common(&req.headers, cseq.as_ref(), |c| {
        if c.method == req.method || (req.method == Method::Ack && c.method == Method::Invite) {
            Ok(())
        } else {
            Err("CSeq method does not match the request method")
        }
    }) {
        return Err(fail(e.into(), 400, req.headers));
    }
    if let Err(e) = req.max_forwards() {
        return Err(fail(e.to_string(), 400, req.headers));
    }
    Ok(Message::Request(req))
}

/// The checks every message must pass: the mandatory headers are present and parse.
fn check_common(
    h: &Headers,
    cseq: Option<&CSeq>,
    cseq_rule: impl Fn(&CSeq) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    let via = h.get(&HeaderName::Via).ok_or("missing Via header")?;
    super::Via::parse(via).ok_or("malformed Via header")?;
    for v in h.get_all(&HeaderName::Via).skip(1) {
        super::Via::parse(v).ok_or("malformed Via header")?;
    }
    let from = h.get(&HeaderName::From).ok_or("missing From header")?;
    super::NameAddr::parse(from).ok_or("malformed From header")?;
    let to = h.get(&HeaderName::To).ok_or("missing To header")?;
    super::NameAddr::parse(to).ok_or("malformed To header")?;
    let cid = h.get(&HeaderName::CallId).ok_or("missing Call-ID header")?;
    if cid.is_empty() || cid.contains(char::is_whitespace) {
        return Err("malformed Call-ID header");
    }
    h.get(&HeaderName::CSeq).ok_or("missing CSeq header")?;
    let cseq = cseq.ok_or("malformed CSeq header")?;
    cseq_rule(cseq)
}

/// Parses `123 INVITE`.
pub(crate) fn parse_cseq(v: &str) -> Option<CSeq> {
    let mut it = v.split_whitespace();
    let seq: u32 = it.next()?.parse().ok()?;
    let method = Method::parse(it.next()?)?;
    if it.next().is_some() {
        return None;
    }
    Some(CSeq { seq, method })
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}
