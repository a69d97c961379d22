//! SDP (RFC 8866, formerly RFC 4566) parsing and printing, and RFC 3264
//! offer/answer that turns a session description into a [`MediaPlan`].
//!
//! # Contract
//!
//! * **Sans-IO and pure.** Nothing here reads a clock, opens a socket, resolves
//!   a name or draws a random number. Everything that varies per call (our
//!   address and port, the `o=` session id and version, codec preferences) is
//!   passed in by the caller, so the same inputs always give the same output.
//! * **Parsing** ([`parse`]) accepts CRLF or bare-LF line endings, skips blank
//!   lines, and tolerates (drops) lines it has no field for: `i=`, `u=`, `e=`,
//!   `p=`, `k=`, `z=`, `r=` and any other lower-case type letter. It insists on
//!   `v=0` as the first line and on exactly one `o=` line; a missing `s=`
//!   becomes `"-"` and a missing `t=` becomes `t=0 0`. A second `c=` in the same
//!   section is ignored (multicast layering). Every error names the 1-based
//!   line number and what was wrong with it ([`SdpError`]).
//! * **Printing** (`impl Display for Sdp`) uses CRLF and the canonical RFC 8866
//!   order (`v o s c b t a`, then per media `m c b a`). Field values are printed
//!   verbatim, so any [`Sdp`] produced by [`parse`] prints to text that parses
//!   back to an equal value. The address type (`IP4`/`IP6`) of `o=` and `c=` is
//!   not stored: it is derived from the address (a `:` means IPv6).
//! * **Offer/answer** ([`build_offer`], [`answer`], [`accept_answer`]) handles
//!   one anchored audio stream over `RTP/AVP` or `RTP/AVPF`. Every other m-line
//!   is rejected with port 0, as RFC 3264 §6 prescribes. Secure profiles
//!   (`RTP/SAVP`, WebRTC's `UDP/TLS/RTP/SAVPF`) are refused with
//!   [`NegotiationError::UnsupportedProfile`]: WebRTC goes through another path.
//!   Any [`NegotiationError`] is meant to be answered with SIP 488.
//! * **Direction** is always reported from *our* side: [`MediaPlan::direction`]
//!   says what we may do on this leg. Old-style hold (`c=0.0.0.0`, RFC 3264
//!   §8.4) means the peer will not receive, so we never send to it and
//!   [`MediaPlan::remote`] is `None`.

mod negotiate;
mod parse;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use negotiate::{
    accept_answer, answer, build_offer, CodecPref, LocalEndpoint, MediaPlan, NegotiatedCodec,
    NegotiationError,
};
pub use parse::{parse, SdpError};

/// A whole session description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sdp {
    /// The `o=` line.
    pub origin: Origin,
    /// The `s=` line (`"-"` when there is nothing to say).
    pub session_name: String,
    /// Session-level `c=`, the default for every m-line without its own.
    pub connection: Option<Connection>,
    /// Session-level `b=` values, verbatim (e.g. `"AS:64"`).
    pub bandwidths: Vec<String>,
    /// Every `t=` line as `(start, stop)`; `(0, 0)` is a permanent session.
    pub times: Vec<(u64, u64)>,
    /// Session-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// The m-line sections, in order.
    pub media: Vec<Media>,
}

/// The `o=` line. The net type is always `IN`; the address type is implied
/// by [`Origin::address`] (see [`addr_type`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// `-` when the originator has no user id.
    pub username: String,
    /// Numeric session id, stable for the life of the session.
    pub session_id: u64,
    /// Incremented on every change of the description.
    pub session_version: u64,
    /// Unicast address (or FQDN) of the originator.
    pub address: String,
}

impl Origin {
    /// `"IP6"` or `"IP4"`, as printed on the `o=` line.
    pub fn addr_type(&self) -> &'static str {
        addr_type(&self.address)
    }
}

/// A `c=` line: `IN IP4 x` or `IN IP6 y`. A multicast `/ttl[/count]` suffix
/// is kept as part of [`Connection::address`] so that it prints back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connection {
    /// The address, possibly with a multicast `/ttl` or `/count` suffix.
    pub address: String,
}

impl Connection {
    /// A connection line for one of our own addresses.
    pub fn from_ip(ip: IpAddr) -> Self {
        Connection {
            address: ip.to_string(),
        }
    }

    /// `"IP6"` or `"IP4"`, as printed on the `c=` line.
    pub fn addr_type(&self) -> &'static str {
        addr_type(&self.address)
    }

    /// The address as an IP literal, without any multicast suffix; `None`
    /// when it is a host name.
    pub fn ip(&self) -> Option<IpAddr> {
        let bare = self.address.split('/').next().unwrap_or_default();
        bare.parse().ok()
    }
}

/// The address type that goes with an address: `"IP6"` when it contains a
/// colon, else `"IP4"`.
pub fn addr_type(address: &str) -> &'static str {
    if address.contains(':') {
        "IP6"
    } else {
        "IP4"
    }
}

/// One `a=` line: `a=name` (property, `value` is `None`) or `a=name:value`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribute {
    /// Everything before the first `:`.
    pub name: String,
    /// Everything after the first `:`, verbatim; `None` when there is no `:`.
    pub value: Option<String>,
}

impl Attribute {
    /// A property attribute such as `a=sendrecv`.
    pub fn flag(name: &str) -> Self {
        Attribute {
            name: name.to_string(),
            value: None,
        }
    }

    /// A value attribute such as `a=ptime:20`.
    pub fn value(name: &str, value: impl Into<String>) -> Self {
        Attribute {
            name: name.to_string(),
            value: Some(value.into()),
        }
    }
}

/// One m-line section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Media {
    /// `audio`, `video`, `application`, ...
    pub kind: String,
    /// Transport port; 0 means the stream is disabled/rejected.
    pub port: u16,
    /// The `/n` suffix of the port, when present.
    pub port_count: Option<u16>,
    /// Transport protocol, e.g. `RTP/AVP`.
    pub proto: String,
    /// Format list: payload type numbers for RTP profiles.
    pub formats: Vec<String>,
    /// Media-level `c=`, overriding the session-level one.
    pub connection: Option<Connection>,
    /// Media-level `b=` values, verbatim.
    pub bandwidths: Vec<String>,
    /// Media-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
}

/// Payload types assigned statically by RFC 3551 that we know by heart:
/// `(pt, encoding, clock rate, channels)`.
pub const STATIC_PAYLOAD_TYPES: &[(u8, &str, u32, u8)] = &[
    (0, "PCMU", 8000, 1),
    (3, "GSM", 8000, 1),
    (4, "G723", 8000, 1),
    (8, "PCMA", 8000, 1),
    (9, "G722", 8000, 1),
    (13, "CN", 8000, 1),
    (15, "G728", 8000, 1),
    (18, "G729", 8000, 1),
];

/// The static mapping of a payload type, if RFC 3551 gives it one we know.
pub fn static_rtpmap(pt: u8) -> Option<RtpMap> {
    STATIC_PAYLOAD_TYPES.iter().find(|(p, ..)| *p == pt).map(
        |&(pt, encoding, clock_rate, channels)| RtpMap {
            pt,
            encoding: encoding.to_string(),
            clock_rate,
            channels,
        },
    )
}

impl Media {
    /// The codec of every format on the m-line, in m-line order: the
    /// `a=rtpmap` when there is one, else the RFC 3551 static assignment.
    /// Formats that are not payload type numbers, and dynamic payload types
    /// without an (understandable) `a=rtpmap`, are left out.
    pub fn rtpmaps(&self) -> Vec<RtpMap> {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter_map(|pt| self.rtpmap(pt))
            .collect()
    }

    /// The codec of one payload type: its `a=rtpmap`, else the static table.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        self.attributes
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case("rtpmap"))
            .filter_map(|a| a.value.as_deref())
            .filter_map(RtpMap::parse_value)
            .find(|m| m.pt == pt)
            .or_else(|| static_rtpmap(pt))
    }

    /// The parameters of `a=fmtp:<pt> <params>`, trimmed.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case("fmtp"))
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let v = v.trim_start();
                let end = v.find(char::is_whitespace).unwrap_or(v.len());
                match v[..end].parse::<u8>() {
                    Ok(p) if p == pt => Some(v[end..].trim()),
                    _ => None,
                }
            })
    }

    /// The stream's direction: the media-level attribute, else the
    /// session-level one (pass [`Sdp::attributes`]), else `sendrecv`.
    pub fn direction(&self, session_attributes: &[Attribute]) -> Direction {
        direction_of(&self.attributes)
            .or_else(|| direction_of(session_attributes))
            .unwrap_or_default()
    }

    /// `a=ptime` in whole milliseconds, when present and positive.
    pub fn ptime(&self) -> Option<u32> {
        let v = self.attribute("ptime")??.trim();
        let ms = match v.parse::<u32>() {
            Ok(ms) => ms,
            Err(_) => {
                let f = v.parse::<f64>().ok()?;
                if !(0.5..f64::from(u32::MAX)).contains(&f) {
                    return None;
                }
                f.round() as u32
            }
        };
        (ms > 0).then_some(ms)
    }

    /// The first attribute called `name` (ASCII case-insensitive):
    /// `Some(None)` for a property attribute, `Some(Some(value))` otherwise.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        find_attribute(&self.attributes, name)
    }

    /// Whether an attribute called `name` is present.
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }
}

impl Sdp {
    /// The first session-level attribute called `name` (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        find_attribute(&self.attributes, name)
    }

    /// The connection that applies to `media`: its own `c=`, else the
    /// session's.
    pub fn connection_for<'a>(&'a self, media: &'a Media) -> Option<&'a Connection> {
        media.connection.as_ref().or(self.connection.as_ref())
    }
}

fn find_attribute<'a>(attributes: &'a [Attribute], name: &str) -> Option<Option<&'a str>> {
    attributes
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .map(|a| a.value.as_deref())
}

fn direction_of(attributes: &[Attribute]) -> Option<Direction> {
    attributes
        .iter()
        .filter(|a| a.value.is_none())
        .find_map(|a| Direction::from_attr(&a.name))
}

/// A payload type's codec, from `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`
/// or the static table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RtpMap {
    /// RTP payload type, 0..=127.
    pub pt: u8,
    /// Encoding name as written (compare case-insensitively).
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels; 1 when the rtpmap does not say.
    pub channels: u8,
}

impl RtpMap {
    /// Parses the value of an `a=rtpmap` attribute; `None` when malformed.
    pub fn parse_value(value: &str) -> Option<RtpMap> {
        let mut it = value.split_whitespace();
        let pt: u8 = it.next()?.parse().ok()?;
        let spec = it.next()?;
        if pt > 127 || it.next().is_some() {
            return None;
        }
        let mut parts = spec.split('/');
        let encoding = parts.next().filter(|e| !e.is_empty())?;
        let clock_rate: u32 = parts.next()?.parse().ok()?;
        let channels: u8 = match parts.next() {
            Some(c) => c.parse().ok()?,
            None => 1,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(RtpMap {
            pt,
            encoding: encoding.to_string(),
            clock_rate,
            channels,
        })
    }

    /// The value of the `a=rtpmap` attribute for this mapping. Opus is always
    /// written `opus/48000/2` (RFC 7587); other codecs carry `/channels` only
    /// when there is more than one.
    pub fn to_value(&self) -> String {
        if self.is("opus") {
            format!("{} {}/{}/2", self.pt, self.encoding, self.clock_rate)
        } else if self.channels > 1 {
            format!(
                "{} {}/{}/{}",
                self.pt, self.encoding, self.clock_rate, self.channels
            )
        } else {
            format!("{} {}/{}", self.pt, self.encoding, self.clock_rate)
        }
    }

    /// Whether the encoding name is `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.encoding.eq_ignore_ascii_case(name)
    }
}

/// Media direction (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Send and receive (the default when nothing is said).
    #[default]
    SendRecv,
    /// Send only.
    SendOnly,
    /// Receive only.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The same stream seen from the other end: sendonly ↔ recvonly.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// The attribute name: `sendrecv`, `sendonly`, `recvonly`, `inactive`.
    pub fn as_attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses an attribute name (case-insensitive).
    pub fn from_attr(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_attr().eq_ignore_ascii_case(name))
    }

    /// Whether this direction allows sending.
    pub fn can_send(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this direction allows receiving.
    pub fn can_recv(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction that allows sending and/or receiving as told.
    pub fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// What both allow: the "minimum" of two directions seen from the same
    /// side.
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.can_send() && other.can_send(),
            self.can_recv() && other.can_recv(),
        )
    }

    /// This direction with sending taken away.
    pub fn without_send(self) -> Direction {
        Direction::from_flags(false, self.can_recv())
    }
}
