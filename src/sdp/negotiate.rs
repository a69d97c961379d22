//! RFC 3264 offer/answer for one anchored audio stream.

use std::net::{IpAddr, SocketAddr};

use super::{Attribute, Connection, Direction, Media, Origin, RtpMap, Sdp, STATIC_PAYLOAD_TYPES};

/// `ptime` assumed when the description does not say (RFC 3551 §4.5).
pub const DEFAULT_PTIME: u32 = 20;

/// Events we advertise for telephone-event when the preference gives no
/// `fmtp`: DTMF digits 0-9, `*`, `#`, A-D and flash (RFC 4733).
pub const DEFAULT_EVENTS: &str = "0-16";

/// Why an offer or answer cannot be used. The call core answers every one of
/// these with SIP 488 Not Acceptable Here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// There is no usable audio m-line: none at all, or every audio line has
    /// port 0 (disabled by the offerer, or rejected by the answerer).
    #[error("no audio stream")]
    NoAudio,
    /// The audio line holds no codec that both sides support.
    #[error("no common codec")]
    NoCommonCodec,
    /// The audio lines only use a transport profile this path does not do
    /// (e.g. `RTP/SAVP`, or WebRTC's `UDP/TLS/RTP/SAVPF`); carries the proto.
    #[error("unsupported media profile {0}")]
    UnsupportedProfile(String),
    /// The description lacks something negotiation needs (e.g. no `c=` for
    /// the audio line, an address that is not an IP literal, a non-numeric
    /// RTP format).
    #[error("malformed session description: {0}")]
    Malformed(String),
    /// The answer does not fit our offer (m-line count or kinds differ, a
    /// payload type we never offered, a direction we did not allow, ...).
    #[error("answer does not match the offer: {0}")]
    AnswerMismatch(String),
}

/// One codec we are willing to use, in preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecPref {
    /// `"PCMU"`, `"PCMA"`, `"opus"`, `"telephone-event"`, ... compared
    /// case-insensitively.
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Channels we want (opus always matches `opus/48000/2`, RFC 7587).
    pub channels: u8,
    /// Format parameters we offer (or answer with when the offer gives none).
    pub fmtp: Option<String>,
    /// Our payload type when we offer a codec without a static one, e.g.
    /// opus 111, telephone-event 101.
    pub dynamic_pt: Option<u8>,
}

impl CodecPref {
    /// A preference without fmtp or dynamic payload type.
    pub fn new(encoding: &str, clock_rate: u32, channels: u8) -> Self {
        CodecPref {
            encoding: encoding.to_string(),
            clock_rate,
            channels,
            fmtp: None,
            dynamic_pt: None,
        }
    }

    /// G.711 µ-law (static payload type 0).
    pub fn pcmu() -> Self {
        CodecPref::new("PCMU", 8000, 1)
    }

    /// G.711 A-law (static payload type 8).
    pub fn pcma() -> Self {
        CodecPref::new("PCMA", 8000, 1)
    }

    /// Opus, offered as `opus/48000/2` on payload type `pt`.
    pub fn opus(pt: u8) -> Self {
        CodecPref {
            dynamic_pt: Some(pt),
            ..CodecPref::new("opus", 48000, 1)
        }
    }

    /// RFC 4733 events at `clock_rate`, offered on payload type `pt`.
    pub fn telephone_event(pt: u8, clock_rate: u32) -> Self {
        CodecPref {
            fmtp: Some(DEFAULT_EVENTS.to_string()),
            dynamic_pt: Some(pt),
            ..CodecPref::new("telephone-event", clock_rate, 1)
        }
    }

    /// Whether this is an RFC 4733 telephone-event preference.
    pub fn is_event(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("telephone-event")
    }

    /// Whether an offered mapping is this codec: same encoding name (ASCII
    /// case-insensitive) and clock rate, and same channel count except for
    /// opus, which is always signalled as two channels.
    pub fn matches(&self, map: &RtpMap) -> bool {
        map.is(&self.encoding)
            && map.clock_rate == self.clock_rate
            && (map.channels == self.channels || map.is("opus"))
    }

    /// The payload type we use when offering this codec: the static one when
    /// RFC 3551 assigns one, else [`CodecPref::dynamic_pt`].
    fn offer_pt(&self) -> Option<u8> {
        STATIC_PAYLOAD_TYPES
            .iter()
            .find(|(_, enc, rate, ch)| {
                enc.eq_ignore_ascii_case(&self.encoding)
                    && *rate == self.clock_rate
                    && *ch == self.channels.max(1)
            })
            .map(|(pt, ..)| *pt)
            .or(self.dynamic_pt)
            .filter(|pt| *pt <= 127)
    }
}

/// What we advertise about ourselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// The address we put in `c=` and `o=`.
    pub address: IpAddr,
    /// Our RTP port.
    pub port: u16,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version (the caller bumps it on each new offer).
    pub session_version: u64,
}

/// The codec both sides send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedCodec {
    /// Encoding name as the offer wrote it.
    pub encoding: String,
    /// Payload type (the offer's number).
    pub pt: u8,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Channels as signalled (2 for opus).
    pub channels: u8,
    /// Format parameters of the peer for this codec, else ours.
    pub fmtp: Option<String>,
}

/// What the media layer must do on one call leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlan {
    /// Where to send RTP: m= port with the media or session `c=`; `None` when
    /// the port is 0 or the address is `0.0.0.0`/`::` (hold, disabled).
    pub remote: Option<SocketAddr>,
    /// The one codec both sides send.
    pub codec: NegotiatedCodec,
    /// Payload type and clock rate of RFC 4733 events, when both agreed.
    pub telephone_event: Option<(u8, u32)>,
    /// OUR direction on this leg: what we may do.
    pub direction: Direction,
    /// Packetisation time in ms.
    pub ptime: u32,
    /// Whether RTP and RTCP share the port (RFC 5761).
    pub rtcp_mux: bool,
}

/// Builds an offer with one `RTP/AVP` audio m-line listing our codecs in
/// preference order.
///
/// Codecs with a static payload type (PCMU 0, PCMA 8, ...) use it; others use
/// [`CodecPref::dynamic_pt`] and are left out without one, as is a codec whose
/// payload type is already taken. Every codec gets an `a=rtpmap` (opus as
/// `opus/48000/2`), an `a=fmtp` when it has parameters (telephone-event
/// defaults to `0-16`), then `a=ptime` (unless 0) and the direction.
pub fn build_offer(
    local: &LocalEndpoint,
    prefs: &[CodecPref],
    direction: Direction,
    ptime: u32,
) -> Sdp {
    let mut formats: Vec<String> = Vec::new();
    let mut attributes = Vec::new();
    let mut used = Vec::new();
    for pref in prefs {
        let Some(pt) = pref.offer_pt() else { continue };
        if used.contains(&pt) {
            continue;
        }
        used.push(pt);
        formats.push(pt.to_string());
        let map = RtpMap {
            pt,
            encoding: pref.encoding.clone(),
            clock_rate: pref.clock_rate,
            channels: pref.channels.max(1),
        };
        attributes.push(Attribute::value("rtpmap", map.to_value()));
        let fmtp = pref
            .fmtp
            .clone()
            .or_else(|| pref.is_event().then(|| DEFAULT_EVENTS.to_string()));
        if let Some(fmtp) = fmtp {
            attributes.push(Attribute::value("fmtp", format!("{pt} {fmtp}")));
        }
    }
    if ptime > 0 {
        attributes.push(Attribute::value("ptime", ptime.to_string()));
    }
    attributes.push(Attribute::flag(direction.as_attr()));
    let media = Media {
        kind: "audio".to_string(),
        port: local.port,
        port_count: None,
        proto: "RTP/AVP".to_string(),
        formats,
        connection: None,
        bandwidths: Vec::new(),
        attributes,
    };
    skeleton(local, vec![media])
}

/// Answers `offer` (RFC 3264 §6).
///
/// The first audio m-line with port ≠ 0 over `RTP/AVP` or `RTP/AVPF` is
/// accepted; every other m-line is answered with port 0. The codec is the
/// first of `prefs` (telephone-event aside) that the offer lists, on the
/// offer's payload type; telephone-event is added when both have it, at the
/// codec's clock rate if offered. Our direction is the offer's reversed,
/// limited to `direction`, and without sending when the offer holds with
/// `c=0.0.0.0`.
pub fn answer(
    offer: &Sdp,
    local: &LocalEndpoint,
    prefs: &[CodecPref],
    direction: Direction,
) -> Result<(Sdp, MediaPlan), NegotiationError> {
    let index = select_offered_audio(offer)?;
    let m = &offer.media[index];
    let offered = m.rtpmaps();

    let (pref, map) = prefs
        .iter()
        .filter(|p| !p.is_event())
        .find_map(|p| {
            offered
                .iter()
                .find(|o| is_primary(o) && p.matches(o))
                .map(|o| (p, o))
        })
        .ok_or(NegotiationError::NoCommonCodec)?;
    let codec = NegotiatedCodec {
        encoding: map.encoding.clone(),
        pt: map.pt,
        clock_rate: map.clock_rate,
        channels: map.channels,
        fmtp: m.fmtp(map.pt).map(str::to_string).or(pref.fmtp.clone()),
    };

    let event = pick_event(
        offered
            .iter()
            .filter(|o| o.is("telephone-event"))
            .filter_map(|o| {
                prefs
                    .iter()
                    .find(|p| p.is_event() && p.matches(o))
                    .map(|p| (o, p))
            }),
        codec.clock_rate,
    );

    let (remote, hold) = remote_of(offer, m)?;
    let mut ours = m
        .direction(&offer.attributes)
        .reverse()
        .intersect(direction);
    if hold {
        ours = ours.without_send();
    }
    let ptime = m.ptime().unwrap_or(DEFAULT_PTIME);
    let rtcp_mux = m.has_attribute("rtcp-mux");

    let mut formats = vec![codec.pt.to_string()];
    let mut attributes = vec![Attribute::value("rtpmap", rtpmap_value(&codec))];
    if let Some(fmtp) = &codec.fmtp {
        attributes.push(Attribute::value("fmtp", format!("{} {fmtp}", codec.pt)));
    }
    if let Some((o, p)) = event {
        formats.push(o.pt.to_string());
        attributes.push(Attribute::value("rtpmap", o.to_value()));
        let fmtp = p
            .fmtp
            .clone()
            .or_else(|| m.fmtp(o.pt).map(str::to_string))
            .unwrap_or_else(|| DEFAULT_EVENTS.to_string());
        attributes.push(Attribute::value("fmtp", format!("{} {fmtp}", o.pt)));
    }
    attributes.push(Attribute::value("ptime", ptime.to_string()));
    attributes.push(Attribute::flag(ours.as_attr()));
    if rtcp_mux {
        attributes.push(Attribute::flag("rtcp-mux"));
    }

    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, om)| {
            if i == index {
                Media {
                    kind: om.kind.clone(),
                    port: local.port,
                    port_count: None,
                    proto: om.proto.clone(),
                    formats: formats.clone(),
                    connection: None,
                    bandwidths: Vec::new(),
                    attributes: attributes.clone(),
                }
            } else {
                rejected(om)
            }
        })
        .collect();

    let plan = MediaPlan {
        remote,
        telephone_event: event.map(|(o, _)| (o.pt, o.clock_rate)),
        codec,
        direction: ours,
        ptime,
        rtcp_mux,
    };
    Ok((skeleton(local, media), plan))
}

/// Checks `answer` against the offer we sent and derives the plan from the
/// first audio m-line the answer accepted (RFC 3264 §7).
pub fn accept_answer(our_offer: &Sdp, answer: &Sdp) -> Result<MediaPlan, NegotiationError> {
    use NegotiationError::{AnswerMismatch, Malformed};

    if answer.media.len() != our_offer.media.len() {
        return Err(AnswerMismatch(format!(
            "answer has {} m-lines, the offer had {}",
            answer.media.len(),
            our_offer.media.len()
        )));
    }
    for (i, (o, a)) in our_offer.media.iter().zip(&answer.media).enumerate() {
        if !a.kind.eq_ignore_ascii_case(&o.kind) {
            return Err(AnswerMismatch(format!(
                "m-line {} is {} in the answer but {} in the offer",
                i + 1,
                a.kind,
                o.kind
            )));
        }
        if o.port == 0 && a.port != 0 {
            return Err(AnswerMismatch(format!(
                "m-line {} was disabled in the offer but accepted in the answer",
                i + 1
            )));
        }
    }

    let (o, a) = our_offer
        .media
        .iter()
        .zip(&answer.media)
        .find(|(_, a)| is_audio(a) && a.port != 0)
        .ok_or(NegotiationError::NoAudio)?;
    if !a.proto.eq_ignore_ascii_case(&o.proto) {
        return Err(AnswerMismatch(format!(
            "answer uses {} where the offer had {}",
            a.proto, o.proto
        )));
    }
    if !supported_proto(&a.proto) {
        return Err(NegotiationError::UnsupportedProfile(a.proto.clone()));
    }

    // Every payload type the answer lists must be one we offered, with the
    // same codec behind it; unknown ones are skipped unless the answer picks
    // one as its codec.
    let mut agreed: Vec<RtpMap> = Vec::new();
    for f in &a.formats {
        let pt: u8 = f
            .parse()
            .map_err(|_| Malformed(format!("RTP format `{f}` is not a payload type")))?;
        let offered = o.formats.iter().any(|of| of.parse() == Ok(pt));
        let ours = o.rtpmap(pt).filter(|_| offered);
        let Some(ours) = ours else {
            if agreed.iter().any(is_primary) {
                continue;
            }
            return Err(AnswerMismatch(format!(
                "answer chose payload type {pt}, which we never offered"
            )));
        };
        if let Some(theirs) = a.rtpmap(pt) {
            if !theirs.is(&ours.encoding) || theirs.clock_rate != ours.clock_rate {
                return Err(AnswerMismatch(format!(
                    "payload type {pt} is {}/{} in the answer but {}/{} in the offer",
                    theirs.encoding, theirs.clock_rate, ours.encoding, ours.clock_rate
                )));
            }
        }
        agreed.push(ours);
    }
    let map = agreed
        .iter()
        .find(|m| is_primary(m))
        .ok_or(NegotiationError::NoCommonCodec)?;
    let codec = NegotiatedCodec {
        encoding: map.encoding.clone(),
        pt: map.pt,
        clock_rate: map.clock_rate,
        channels: map.channels,
        fmtp: a.fmtp(map.pt).or(o.fmtp(map.pt)).map(str::to_string),
    };
    let telephone_event = pick_event(
        agreed
            .iter()
            .filter(|m| m.is("telephone-event"))
            .map(|m| (m, ())),
        codec.clock_rate,
    )
    .map(|(m, ())| (m.pt, m.clock_rate));

    let offered_dir = o.direction(&our_offer.attributes);
    let answered_dir = a.direction(&answer.attributes);
    if answered_dir.intersect(offered_dir.reverse()) != answered_dir {
        return Err(AnswerMismatch(format!(
            "answer is {} to our {} offer",
            answered_dir.as_attr(),
            offered_dir.as_attr()
        )));
    }
    let (remote, hold) = remote_of(answer, a)?;
    let mut direction = answered_dir.reverse();
    if hold {
        direction = direction.without_send();
    }

    Ok(MediaPlan {
        remote,
        codec,
        telephone_event,
        direction,
        ptime: a.ptime().or(o.ptime()).unwrap_or(DEFAULT_PTIME),
        rtcp_mux: a.has_attribute("rtcp-mux") && o.has_attribute("rtcp-mux"),
    })
}

/// `o=`, `s=`, `c=`, `t=` around the given m-lines.
fn skeleton(local: &LocalEndpoint, media: Vec<Media>) -> Sdp {
    Sdp {
        origin: Origin {
            username: "-".to_string(),
            session_id: local.session_id,
            session_version: local.session_version,
            address: local.address.to_string(),
        },
        session_name: "-".to_string(),
        connection: Some(Connection::from_ip(local.address)),
        bandwidths: Vec::new(),
        times: vec![(0, 0)],
        attributes: Vec::new(),
        media,
    }
}

/// The answer to an m-line we do not take: port 0, same kind and proto, one
/// of the offer's formats.
fn rejected(offered: &Media) -> Media {
    Media {
        kind: offered.kind.clone(),
        port: 0,
        port_count: None,
        proto: offered.proto.clone(),
        formats: offered.formats.iter().take(1).cloned().collect(),
        connection: None,
        bandwidths: Vec::new(),
        attributes: Vec::new(),
    }
}

fn is_audio(m: &Media) -> bool {
    m.kind.eq_ignore_ascii_case("audio")
}

fn supported_proto(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

/// A codec that can carry the call on its own (not events, not comfort noise).
fn is_primary(map: &RtpMap) -> bool {
    !map.is("telephone-event") && !map.is("CN")
}

/// The index of the offer's m-line we accept.
fn select_offered_audio(offer: &Sdp) -> Result<usize, NegotiationError> {
    let mut first_proto: Option<&str> = None;
    let mut any_supported = false;
    for (i, m) in offer.media.iter().enumerate().filter(|(_, m)| is_audio(m)) {
        first_proto.get_or_insert(&m.proto);
        if supported_proto(&m.proto) {
            any_supported = true;
            if m.port != 0 {
                return Ok(i);
            }
        }
    }
    match first_proto {
        Some(proto) if !any_supported => {
            Err(NegotiationError::UnsupportedProfile(proto.to_string()))
        }
        _ => Err(NegotiationError::NoAudio),
    }
}

/// Among agreed telephone-event mappings (in offer order), the one at the
/// codec's clock rate, else the first.
fn pick_event<'a, T>(
    candidates: impl Iterator<Item = (&'a RtpMap, T)>,
    codec_clock: u32,
) -> Option<(&'a RtpMap, T)> {
    let mut first = None;
    for (m, extra) in candidates {
        if m.clock_rate == codec_clock {
            return Some((m, extra));
        }
        first.get_or_insert((m, extra));
    }
    first
}

/// Where the peer receives this stream, and whether it is on old-style hold
/// (`c=0.0.0.0`, RFC 3264 §8.4).
fn remote_of(sdp: &Sdp, m: &Media) -> Result<(Option<SocketAddr>, bool), NegotiationError> {
    let conn = sdp.connection_for(m).ok_or_else(|| {
        NegotiationError::Malformed(format!("no c= line for the {} m-line", m.kind))
    })?;
    let ip = conn.ip().ok_or_else(|| {
        NegotiationError::Malformed(format!(
            "connection address `{}` is not an IP address",
            conn.address
        ))
    })?;
    let hold = ip.is_unspecified();
    let remote = (!hold && m.port != 0).then(|| SocketAddr::new(ip, m.port));
    Ok((remote, hold))
}

fn rtpmap_value(codec: &NegotiatedCodec) -> String {
    RtpMap {
        pt: codec.pt,
        encoding: codec.encoding.clone(),
        clock_rate: codec.clock_rate,
        channels: codec.channels,
    }
    .to_value()
}
