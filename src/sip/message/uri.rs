//! Typed views: URIs (`sip:`, `sips:`, `tel:`), name-addr (From, To, Contact, Route) and Via.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// `;name=value` parameters in order; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// Parses `;a=b;c` (the leading `;` optional).
    pub fn parse(s: &str) -> Params {
        let mut out = Vec::new();
        for part in split_outside_quotes(s, ';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match part.split_once('=') {
                Some((k, v)) => out.push((k.trim().to_string(), Some(v.trim().to_string()))),
                None => out.push((part.to_string(), None)),
            }
        }
        Params(out)
    }
    /// The value of a parameter: `Some(None)` for a flag, `None` if absent.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
    /// The value of a parameter, if it has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }
    /// Whether a parameter is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// Sets (or adds) a parameter.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let v = value.map(str::to_string);
        if let Some(e) = self
            .0
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            e.1 = v;
        } else {
            self.0.push((name.to_string(), v));
        }
    }
    /// Removes a parameter.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{k}={v}")?,
                None => write!(f, ";{k}")?,
            }
        }
        Ok(())
    }
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_q, mut esc, mut start) = (false, false, 0);
    for (i, c) in s.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' if in_q => esc = true,
            '"' => in_q = !in_q,
            c if c == sep && !in_q => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// URI scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

/// A `sip:`, `sips:` or `tel:` URI. For `tel:` the number is in `user` and `host` is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host name or IP; IPv6 addresses are kept without brackets.
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
    /// Raw `?headers` part, without the `?`.
    pub headers: Option<String>,
}

impl Uri {
    /// A `sip:` URI.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_string),
            password: None,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            params: Params::default(),
            headers: None,
        }
    }

    /// Parses a URI; `None` if it is not a sip/sips/tel URI of valid shape.
    pub fn parse(s: &str) -> Option<Uri> {
        let s = s.trim();
        let (scheme, rest) = s.split_once(':')?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "sip" => Scheme::Sip,
            "sips" => Scheme::Sips,
            "tel" => Scheme::Tel,
            _ => return None,
        };
        if scheme == Scheme::Tel {
            let (num, params) = match rest.split_once(';') {
                Some((n, p)) => (n, Params::parse(p)),
                None => (rest, Params::default()),
            };
            let valid = !num.is_empty()
                && num
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b"+-.()*#".contains(&b));
            if !valid {
                return None;
            }
            return Some(Uri {
                scheme,
                user: Some(num.to_string()),
                password: None,
                host: String::new(),
                port: None,
                params,
                headers: None,
            });
        }
        let (rest, headers) = match rest.split_once('?') {
            Some((r, h)) => (r, Some(h.to_string())),
            None => (rest, None),
        };
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(ui.to_string()), None),
            },
            None => (None, None),
        };
        if user.as_deref() == Some("") {
            return None;
        }
        let (hostport, params) = match hostpart.split_once(';') {
            Some((h, p)) => (h, Params::parse(p)),
            None => (hostpart, Params::default()),
        };
        let (host, port) = parse_hostport(hostport)?;
        Some(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// `host:port` with brackets for IPv6, port only when set.
    pub fn host_port(&self) -> String {
        let h = bracket(&self.host);
        match self.port {
            Some(p) => format!("{h}:{p}"),
            None => h,
        }
    }

    /// The socket address this URI names, if its host is an IP literal.
    pub fn socket_addr(&self, default_port: u16) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port.unwrap_or(default_port)))
    }

    /// The `transport` parameter, lowercased (`udp` when absent).
    pub fn transport(&self) -> String {
        self.params
            .value("transport")
            .unwrap_or("udp")
            .to_ascii_lowercase()
    }
}

/// Parses `host`, `host:port`, `[v6]`, `[v6]:port`.
fn parse_hostport(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        h.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((h.to_string(), port));
    }
    let (h, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
        None => (s, None),
    };
    let valid = !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if !valid {
        return None;
    }
    Some((h.to_string(), port))
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::Tel => {
                write!(
                    f,
                    "tel:{}{}",
                    self.user.as_deref().unwrap_or(""),
                    self.params
                )?;
                return Ok(());
            }
            Scheme::Sip => f.write_str("sip:")?,
            Scheme::Sips => f.write_str("sips:")?,
        }
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}{}", self.host_port(), self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// `[display-name] <uri>;params` or `uri;params` (From, To, Contact, Route, Refer-To).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: Uri,
    /// Header parameters (tag, expires, q, ...), not the URI's.
    pub params: Params,
}

impl NameAddr {
    /// A name-addr for a URI with no display name or parameters.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Params::default(),
        }
    }

    /// Parses one name-addr / addr-spec value.
    pub fn parse(s: &str) -> Option<NameAddr> {
        let s = s.trim();
        if let Some(lt) = find_unquoted(s, '<') {
            let display = s[..lt].trim();
            let display = if display.is_empty() {
                None
            } else if display.starts_with('"') {
                let inner = display.strip_prefix('"')?.strip_suffix('"')?;
                Some(inner.replace("\\\"", "\"").replace("\\\\", "\\"))
            } else {
                Some(display.to_string())
            };
            let rest = &s[lt + 1..];
            let gt = rest.find('>')?;
            let uri = Uri::parse(&rest[..gt])?;
            let params = Params::parse(&rest[gt + 1..]);
            Some(NameAddr {
                display,
                uri,
                params,
            })
        } else {
            // addr-spec: parameters after the URI belong to the header (RFC 3261 §20).
            let (u, p) = match s.split_once(';') {
                Some((u, p)) => (u, Params::parse(p)),
                None => (s, Params::default()),
            };
            let uri = Uri::parse(u)?;
            Some(NameAddr {
                display: None,
                uri,
                params: p,
            })
        }
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    let (mut in_q, mut esc) = (false, false);
    for (i, c) in s.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' if in_q => esc = true,
            '"' => in_q = !in_q,
            c if c == needle && !in_q => return Some(i),
            _ => {}
        }
    }
    None
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// One Via value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token, uppercased (UDP, TCP, TLS, WS, WSS, SCTP).
    pub transport: String,
    /// Sent-by host; IPv6 without brackets.
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    /// Parses `SIP/2.0/UDP host:port;params`.
    pub fn parse(s: &str) -> Option<Via> {
        let s = s.trim();
        let mut parts = s.splitn(3, '/');
        let proto = parts.next()?.trim();
        let ver = parts.next()?.trim();
        let rest = parts.next()?.trim_start();
        if !proto.eq_ignore_ascii_case("SIP") || ver != "2.0" {
            return None;
        }
        let sp = rest.find(|c: char| c.is_ascii_whitespace())?;
        let transport = rest[..sp].to_ascii_uppercase();
        if transport.is_empty() || !transport.bytes().all(super::header::is_token_char) {
            return None;
        }
        let rest = rest[sp..].trim_start();
        let (hp, params) = match rest.split_once(';') {
            Some((h, p)) => (h, Params::parse(p)),
            None => (rest, Params::default()),
        };
        let (host, port) = parse_hostport(hp)?;
        Some(Via {
            transport,
            host,
            port,
            params,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// Where a response to this Via goes (RFC 3261 §18.2.2 with RFC 3581 rport): the
    /// `received`/`rport` values when present, else sent-by.
    pub fn response_target(&self, source: SocketAddr) -> SocketAddr {
        let default_port = if self.transport == "TLS" { 5061 } else { 5060 };
        let ip = self
            .params
            .value("received")
            .and_then(|r| r.trim_matches(|c| c == '[' || c == ']').parse().ok())
            .or_else(|| self.host.parse().ok())
            .unwrap_or(source.ip());
        let port = match self.params.get("rport") {
            Some(Some(p)) => p.parse().unwrap_or(source.port()),
            Some(None) => source.port(),
            None => self.port.unwrap_or(default_port),
        };
        SocketAddr::new(ip, port)
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, bracket(&self.host))?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}
