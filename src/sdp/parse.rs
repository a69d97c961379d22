//! Text ↔ [`Sdp`]: the tolerant parser and the canonical printer.

use std::fmt;

use super::{Attribute, Connection, Media, Origin, Sdp};

/// Why a text is not an SDP we can use. Line numbers are 1-based and count
/// every line of the input, blank ones included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The input holds no line at all (empty or only blank lines).
    #[error("empty session description")]
    Empty,
    /// The first line is not `v=0`.
    #[error("line {line}: expected `v=0` as the first line, found `{found}`")]
    BadVersion {
        /// Where the offending line is.
        line: usize,
        /// The line as found, shortened to 40 characters.
        found: String,
    },
    /// The line is not of the form `<lower-case letter>=<value>`.
    #[error("line {line}: not a `<type>=<value>` line")]
    MalformedLine {
        /// Where the offending line is.
        line: usize,
    },
    /// The `o=` line is malformed.
    #[error("line {line}: bad o= line: {reason}")]
    BadOrigin {
        /// Where the offending line is.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A `c=` line is malformed.
    #[error("line {line}: bad c= line: {reason}")]
    BadConnection {
        /// Where the offending line is.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A `t=` line is malformed.
    #[error("line {line}: bad t= line: {reason}")]
    BadTiming {
        /// Where the offending line is.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An `m=` line is malformed.
    #[error("line {line}: bad m= line: {reason}")]
    BadMedia {
        /// Where the offending line is.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An `a=` line has an empty attribute name.
    #[error("line {line}: attribute with an empty name")]
    BadAttribute {
        /// Where the offending line is.
        line: usize,
    },
    /// A session-only line (`v=`, `o=`, `s=`, `t=`) appears inside an m-line
    /// section.
    #[error("line {line}: `{kind}=` is not allowed after the first m= line")]
    Misplaced {
        /// Where the offending line is.
        line: usize,
        /// The type letter.
        kind: char,
    },
    /// A line that may appear only once (`v=`, `o=`, `s=`) appears again.
    #[error("line {line}: second `{kind}=` line")]
    Duplicate {
        /// Where the offending line is.
        line: usize,
        /// The type letter.
        kind: char,
    },
    /// A mandatory line is absent (only `o=` is treated as mandatory).
    #[error("missing `{kind}=` line")]
    Missing {
        /// The type letter.
        kind: char,
    },
}

impl SdpError {
    /// The 1-based line number the error is about, when it is about a line.
    pub fn line(&self) -> Option<usize> {
        match self {
            SdpError::Empty | SdpError::Missing { .. } => None,
            SdpError::BadVersion { line, .. }
            | SdpError::MalformedLine { line }
            | SdpError::BadOrigin { line, .. }
            | SdpError::BadConnection { line, .. }
            | SdpError::BadTiming { line, .. }
            | SdpError::BadMedia { line, .. }
            | SdpError::BadAttribute { line }
            | SdpError::Misplaced { line, .. }
            | SdpError::Duplicate { line, .. } => Some(*line),
        }
    }
}

/// Parses a session description (CRLF or LF line endings).
///
/// See the module documentation for what is tolerated.
pub fn parse(text: &str) -> Result<Sdp, SdpError> {
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty());

    let (first_no, first) = lines.next().ok_or(SdpError::Empty)?;
    if first.trim_end() != "v=0" {
        return Err(SdpError::BadVersion {
            line: first_no,
            found: first.chars().take(40).collect(),
        });
    }

    let mut sdp = Sdp::default();
    let mut origin: Option<Origin> = None;
    let mut session_name: Option<String> = None;

    for (no, line) in lines {
        let (kind, value) = split_line(no, line)?;
        if let Some(media) = sdp.media.last_mut() {
            match kind {
                'm' => sdp.media.push(parse_media(no, value)?),
                'c' => {
                    let c = parse_connection(no, value)?;
                    media.connection.get_or_insert(c);
                }
                'b' => media.bandwidths.push(value.to_string()),
                'a' => media.attributes.push(parse_attribute(no, value)?),
                'v' | 'o' | 's' | 't' => return Err(SdpError::Misplaced { line: no, kind }),
                _ => {} // i=, k= and anything unknown
            }
            continue;
        }
        match kind {
            'v' => return Err(SdpError::Duplicate { line: no, kind }),
            'o' => {
                if origin.is_some() {
                    return Err(SdpError::Duplicate { line: no, kind });
                }
                origin = Some(parse_origin(no, value)?);
            }
            's' => {
                if session_name.is_some() {
                    return Err(SdpError::Duplicate { line: no, kind });
                }
                session_name = Some(value.to_string());
            }
            'c' => {
                let c = parse_connection(no, value)?;
                sdp.connection.get_or_insert(c);
            }
            'b' => sdp.bandwidths.push(value.to_string()),
            't' => sdp.times.push(parse_time(no, value)?),
            'a' => sdp.attributes.push(parse_attribute(no, value)?),
            'm' => sdp.media.push(parse_media(no, value)?),
            _ => {} // i=, u=, e=, p=, k=, z=, r= and anything unknown
        }
    }

    sdp.origin = origin.ok_or(SdpError::Missing { kind: 'o' })?;
    sdp.session_name = session_name.unwrap_or_else(|| "-".to_string());
    if sdp.times.is_empty() {
        sdp.times.push((0, 0));
    }
    Ok(sdp)
}

fn split_line(no: usize, line: &str) -> Result<(char, &str), SdpError> {
    let b = line.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_lowercase() && b[1] == b'=' {
        Ok((char::from(b[0]), &line[2..]))
    } else {
        Err(SdpError::MalformedLine { line: no })
    }
}

fn parse_origin(line: usize, value: &str) -> Result<Origin, SdpError> {
    let bad = |reason: &str| SdpError::BadOrigin {
        line,
        reason: reason.to_string(),
    };
    let tokens: Vec<&str> = value.split_whitespace().collect();
    if tokens.len() < 6 {
        return Err(bad(
            "expected `<user> <id> <version> IN <IP4|IP6> <address>`",
        ));
    }
    // Be lenient with user names that contain spaces: the last five tokens
    // are fixed, everything before them is the user name.
    let n = tokens.len();
    let username = tokens[..n - 5].join(" ");
    let session_id = tokens[n - 5]
        .parse()
        .map_err(|_| bad("session id is not a 64-bit number"))?;
    let session_version = tokens[n - 4]
        .parse()
        .map_err(|_| bad("session version is not a 64-bit number"))?;
    check_net(tokens[n - 3], tokens[n - 2]).map_err(bad)?;
    Ok(Origin {
        username,
        session_id,
        session_version,
        address: tokens[n - 1].to_string(),
    })
}

fn check_net(net_type: &str, addr_type: &str) -> Result<(), &'static str> {
    if !net_type.eq_ignore_ascii_case("IN") {
        return Err("network type is not IN");
    }
    if !(addr_type.eq_ignore_ascii_case("IP4") || addr_type.eq_ignore_ascii_case("IP6")) {
        return Err("address type is neither IP4 nor IP6");
    }
    Ok(())
}

fn parse_connection(line: usize, value: &str) -> Result<Connection, SdpError> {
    let bad = |reason: &str| SdpError::BadConnection {
        line,
        reason: reason.to_string(),
    };
    let tokens: Vec<&str> = value.split_whitespace().collect();
    let [net, addr_type, address] = tokens[..] else {
        return Err(bad("expected `IN <IP4|IP6> <address>`"));
    };
    check_net(net, addr_type).map_err(bad)?;
    Ok(Connection {
        address: address.to_string(),
    })
}

fn parse_time(line: usize, value: &str) -> Result<(u64, u64), SdpError> {
    let bad = |reason: &str| SdpError::BadTiming {
        line,
        reason: reason.to_string(),
    };
    let tokens: Vec<&str> = value.split_whitespace().collect();
    let [start, stop] = tokens[..] else {
        return Err(bad("expected `<start> <stop>`"));
    };
    let start = start.parse().map_err(|_| bad("start is not a number"))?;
    let stop = stop.parse().map_err(|_| bad("stop is not a number"))?;
    Ok((start, stop))
}

fn parse_media(line: usize, value: &str) -> Result<Media, SdpError> {
    let bad = |reason: &str| SdpError::BadMedia {
        line,
        reason: reason.to_string(),
    };
    let mut tokens = value.split_whitespace();
    let (Some(kind), Some(port_spec), Some(proto)) = (tokens.next(), tokens.next(), tokens.next())
    else {
        return Err(bad("expected `<media> <port> <proto> <fmt> ...`"));
    };
    let (port, port_count) = match port_spec.split_once('/') {
        Some((p, n)) => (p, Some(n)),
        None => (port_spec, None),
    };
    let port = port.parse().map_err(|_| bad("port is not 0..=65535"))?;
    let port_count = port_count
        .map(|n| n.parse().map_err(|_| bad("port count is not 0..=65535")))
        .transpose()?;
    Ok(Media {
        kind: kind.to_string(),
        port,
        port_count,
        proto: proto.to_string(),
        formats: tokens.map(str::to_string).collect(),
        ..Media::default()
    })
}

fn parse_attribute(line: usize, value: &str) -> Result<Attribute, SdpError> {
    let (name, value) = match value.split_once(':') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (value, None),
    };
    if name.is_empty() {
        return Err(SdpError::BadAttribute { line });
    }
    Ok(Attribute {
        name: name.to_string(),
        value,
    })
}

impl fmt::Display for Attribute {
    /// The part after `a=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Display for Connection {
    /// The part after `c=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IN {} {}", self.addr_type(), self.address)
    }
}

impl fmt::Display for Origin {
    /// The part after `o=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} IN {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.addr_type(),
            self.address
        )
    }
}

impl fmt::Display for Media {
    /// The whole section, from `m=` on, each line ending in CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.proto)?;
        for fmt in &self.formats {
            write!(f, " {fmt}")?;
        }
        f.write_str("\r\n")?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        Ok(())
    }
}

impl fmt::Display for Sdp {
    /// The whole description in canonical order with CRLF line endings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=0\r\n")?;
        write!(f, "o={}\r\n", self.origin)?;
        write!(f, "s={}\r\n", self.session_name)?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        if self.times.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        for (start, stop) in &self.times {
            write!(f, "t={start} {stop}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}
