//! The few SIP messages the benchmark needs, written and read by hand: REGISTER with digest,
//! INVITE/ACK/BYE as a trunk caller, 200 OK as the registered callee. Only what a loopback
//! benchmark against Switchboard needs; not a general SIP stack.

use md5::{Digest, Md5};
use std::net::SocketAddr;

/// A received SIP message, split into its start line, headers and body.
pub struct Msg<'a> {
    pub start: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

/// Full header names for the compact forms (RFC 3261 §7.3.3) the benchmark reads.
fn expand(name: &str) -> &str {
    match name {
        "i" | "I" => "Call-ID",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "v" | "V" => "Via",
        "m" | "M" => "Contact",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        other => other,
    }
}

impl<'a> Msg<'a> {
    /// Splits a datagram; `None` when it is not a SIP message at all.
    pub fn parse(data: &'a [u8]) -> Option<Msg<'a>> {
        let split = find(data, b"\r\n\r\n");
        let (head, body) = match split {
            Some(i) => (&data[..i], &data[i + 4..]),
            None => (data, &data[data.len()..]),
        };
        let head = std::str::from_utf8(head).ok()?;
        let mut lines = head.split("\r\n");
        let start = lines.next()?.trim();
        let mut headers = Vec::new();
        for line in lines {
            if let Some((n, v)) = line.split_once(':') {
                headers.push((expand(n.trim()), v.trim()));
            }
        }
        Some(Msg {
            start,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &'a str> + '_ {
        let name = name.to_string();
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| *v)
    }

    /// The status code of a response, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        let rest = self.start.strip_prefix("SIP/2.0 ")?;
        rest.get(..3)?.parse().ok()
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&'a str> {
        if self.start.starts_with("SIP/2.0") {
            return None;
        }
        self.start.split(' ').next()
    }

    pub fn call_id(&self) -> &'a str {
        self.header("Call-ID").unwrap_or("")
    }

    /// `(number, method)` of CSeq.
    pub fn cseq(&self) -> (u32, &'a str) {
        let v = self.header("CSeq").unwrap_or("");
        let mut it = v.split_whitespace();
        let n = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        (n, it.next().unwrap_or(""))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A header parameter (`;tag=...`), outside of `<...>`.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let after = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The URI inside a name-addr (`"x" <sip:a@b>;tag=1` -> `sip:a@b`) or a bare addr-spec.
pub fn uri_of(value: &str) -> &str {
    if let (Some(a), Some(b)) = (value.find('<'), value.find('>')) {
        if a < b {
            return &value[a + 1..b];
        }
    }
    value.split(';').next().unwrap_or(value).trim()
}

/// The user part of a SIP URI.
pub fn user_of(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("sip:").or_else(|| uri.strip_prefix("sips:"))?;
    let (user, _) = rest.split_once('@')?;
    Some(user.split(';').next().unwrap_or(user))
}

fn hex_md5(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// One digest challenge's parameters (RFC 7616).
#[derive(Debug, Default)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub qop_auth: bool,
    pub algorithm: String,
}

/// Reads `Digest realm="...", nonce="...", ...`; `None` when it is not a digest challenge.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let rest = value.trim().strip_prefix("Digest")?;
    let mut c = Challenge {
        algorithm: "MD5".into(),
        ..Challenge::default()
    };
    // Split on commas outside quotes.
    let mut parts = Vec::new();
    let (mut cur, mut quoted) = (String::new(), false);
    for ch in rest.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch)
            }
            ',' if !quoted => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    parts.push(cur);
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "realm" => c.realm = v,
            "nonce" => c.nonce = v,
            "opaque" => c.opaque = Some(v),
            "qop" => c.qop_auth = v.split(',').any(|q| q.trim() == "auth"),
            "algorithm" => c.algorithm = v,
            _ => {}
        }
    }
    Some(c)
}

/// The Authorization header value answering an MD5 challenge.
pub fn authorization(
    c: &Challenge,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> String {
    let ha1 = hex_md5(&format!("{user}:{}:{password}", c.realm));
    let ha2 = hex_md5(&format!("{method}:{uri}"));
    let nc = "00000001";
    let mut v = if c.qop_auth {
        let resp = hex_md5(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", c.nonce));
        format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{resp}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
            c.realm, c.nonce
        )
    } else {
        let resp = hex_md5(&format!("{ha1}:{}:{ha2}", c.nonce));
        format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{resp}\", algorithm=MD5",
            c.realm, c.nonce
        )
    };
    if let Some(o) = &c.opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}

/// Appends Content-Length and the blank line, then the body.
pub fn finish(mut head: String, body: &str) -> Vec<u8> {
    if !body.is_empty() {
        head.push_str("Content-Type: application/sdp\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    head.push_str(body);
    head.into_bytes()
}

/// What an SDP body says about its audio stream.
#[derive(Debug, Default, Clone)]
pub struct SdpInfo {
    pub addr: Option<SocketAddr>,
    /// `(payload type, encoding/clock[/channels])` from the m-line and its rtpmaps.
    pub formats: Vec<(u8, String)>,
}

impl SdpInfo {
    /// The payload type of an encoding (`"PCMU/8000"`, `"opus/48000"`,
    /// `"telephone-event/8000"`), case-insensitive, ignoring the channel count.
    pub fn pt_of(&self, enc: &str) -> Option<u8> {
        self.formats.iter().find_map(|(pt, e)| {
            let base: Vec<&str> = e.split('/').take(2).collect();
            base.join("/").eq_ignore_ascii_case(enc).then_some(*pt)
        })
    }
}

/// Reads the connection address, the audio port and the formats.
pub fn parse_sdp(body: &[u8]) -> SdpInfo {
    let text = String::from_utf8_lossy(body);
    let mut ip: Option<std::net::IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut pts: Vec<u8> = Vec::new();
    let mut maps: Vec<(u8, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix("c=") {
            if let Some(a) = c.split_whitespace().nth(2) {
                ip = a.parse().ok().or(ip);
            }
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            let mut it = m.split_whitespace();
            port = it.next().and_then(|p| p.parse().ok());
            let _proto = it.next();
            pts = it.filter_map(|p| p.parse().ok()).collect();
        } else if let Some(r) = line.strip_prefix("a=rtpmap:") {
            if let Some((pt, enc)) = r.split_once(' ') {
                if let Ok(pt) = pt.parse() {
                    maps.push((pt, enc.trim().to_string()));
                }
            }
        }
    }
    let formats = pts
        .iter()
        .map(|pt| {
            let enc = maps
                .iter()
                .find(|(p, _)| p == pt)
                .map(|(_, e)| e.clone())
                .unwrap_or_else(|| match pt {
                    0 => "PCMU/8000".into(),
                    8 => "PCMA/8000".into(),
                    _ => String::new(),
                });
            (*pt, enc)
        })
        .collect();
    SdpInfo {
        addr: match (ip, port) {
            (Some(ip), Some(port)) if port != 0 => Some(SocketAddr::new(ip, port)),
            _ => None,
        },
        formats,
    }
}

/// An SDP body for one audio stream. `formats` are `(pt, rtpmap, fmtp)`.
pub fn sdp(session: u64, rtp: SocketAddr, formats: &[(u8, &str, Option<&str>)]) -> String {
    let ip = rtp.ip();
    let mut s = format!(
        "v=0\r\no=- {session} 1 IN IP4 {ip}\r\ns=media-bench\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP",
        rtp.port()
    );
    for (pt, _, _) in formats {
        s.push_str(&format!(" {pt}"));
    }
    s.push_str("\r\n");
    for (pt, map, fmtp) in formats {
        s.push_str(&format!("a=rtpmap:{pt} {map}\r\n"));
        if let Some(f) = fmtp {
            s.push_str(&format!("a=fmtp:{pt} {f}\r\n"));
        }
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_rfc2617_example() {
        // RFC 2617 §3.5 example (qop=auth).
        let c = Challenge {
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            opaque: None,
            qop_auth: true,
            algorithm: "MD5".into(),
        };
        let v = authorization(
            &c,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
        );
        assert!(v.contains("response=\"6629fae49393a05397450978507c4ef1\""), "{v}");
    }

    #[test]
    fn reads_headers_params_and_sdp() {
        let m = Msg::parse(
            b"SIP/2.0 200 OK\r\ni: abc\r\nTo: <sip:1001@x>;tag=zz\r\nCSeq: 2 BYE\r\n\r\n\
              v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 20000 RTP/AVP 0 111 101\r\n\
              a=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n",
        )
        .unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.call_id(), "abc");
        assert_eq!(param(m.header("To").unwrap(), "tag"), Some("zz"));
        assert_eq!(m.cseq(), (2, "BYE"));
        let s = parse_sdp(m.body);
        assert_eq!(s.addr, Some("127.0.0.1:20000".parse().unwrap()));
        assert_eq!(s.pt_of("opus/48000"), Some(111));
        assert_eq!(s.pt_of("pcmu/8000"), Some(0));
        assert_eq!(s.pt_of("telephone-event/8000"), Some(101));
        assert_eq!(user_of(uri_of("\"x\" <sip:5500012@h>;tag=1")), Some("5500012"));
    }
}
