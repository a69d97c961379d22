use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------- samples

/// What SIPp's built-in `uac` scenario sends.
const SIPP_UAC: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.1.1\r\n\
s=-\r\n\
c=IN IP4 127.0.1.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// A Linphone-style offer (LF endings, session-level rtcp-xr, two
/// telephone-event rates, opus first).
const LINPHONE: &str = "v=0
o=alice 2786 1380 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 0 8 101 97
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:101 telephone-event/48000
a=rtpmap:97 telephone-event/8000
a=rtcp:7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
";

/// A baresip-style offer: media-level c=, b=, ptime, rtcp-mux, i= line.
const BARESIP: &str = "v=0\r\n\
o=- 1931716129 3826519262 IN IP4 10.0.0.5\r\n\
s=-\r\n\
i=baresip call\r\n\
t=0 0\r\n\
m=audio 10238 RTP/AVP 0 8 96 101\r\n\
c=IN IP4 10.0.0.5\r\n\
b=AS:64\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:30\r\n\
a=rtcp-mux\r\n\
a=sendrecv\r\n\
a=label:1\r\n";

/// A Chrome WebRTC offer (abridged only in the number of ssrc/extmap lines).
const CHROME: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1 2\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS 3sHn8Q8mUvP2vFb9e6bVbY6xXGl0x4e4cBzT\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:x9Ej\r\n\
a=ice-pwd:bV3j0rX2n7Y1d3Zq8mKpL0aB\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4C:1C:CA:43:85:15:1E:0D:7A:98:3B:C4\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=sendrecv\r\n\
a=msid:3sHn8Q8mUvP2vFb9e6bVbY6xXGl0x4e4cBzT 0d4b7c2e-7a3e-4b4e-9b8e-1f2a3b4c5d6e\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:1001730497 cname:cV8rYbJ0n6rG5a1Q\r\n\
a=ssrc:1001730497 msid:3sHn8Q8mUvP2vFb9e6bVbY6xXGl0x4e4cBzT 0d4b7c2e-7a3e-4b4e-9b8e-1f2a3b4c5d6e\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:x9Ej\r\n\
a=ice-pwd:bV3j0rX2n7Y1d3Zq8mKpL0aB\r\n\
a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4C:1C:CA:43:85:15:1E:0D:7A:98:3B:C4\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 goog-remb\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n\
a=ssrc-group:FID 2231627014 632943048\r\n\
a=ssrc:2231627014 cname:cV8rYbJ0n6rG5a1Q\r\n\
a=ssrc:632943048 cname:cV8rYbJ0n6rG5a1Q\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:x9Ej\r\n\
a=ice-pwd:bV3j0rX2n7Y1d3Zq8mKpL0aB\r\n\
a=setup:actpass\r\n\
a=mid:2\r\n\
a=sctp-port:5000\r\n\
a=max-message-size:262144\r\n";

/// IPv6, session-level c= overridden by a media-level one on the 2nd line.
const IPV6: &str = "v=0\r\n\
o=bob 42 7 IN IP6 2001:db8::10\r\n\
s=IPv6 call\r\n\
c=IN IP6 2001:db8::10\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 8 0\r\n\
m=audio 40002 RTP/AVP 0\r\n\
c=IN IP6 2001:db8::20\r\n";

fn local() -> LocalEndpoint {
    LocalEndpoint {
        address: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        port: 30000,
        session_id: 1234,
        session_version: 1,
    }
}

fn prefs() -> Vec<CodecPref> {
    vec![
        CodecPref::pcmu(),
        CodecPref::pcma(),
        CodecPref::telephone_event(101, 8000),
    ]
}

/// An offer with the given m= format list and extra media-level lines.
fn offer_with(fmts: &str, extra: &str) -> Sdp {
    let text = format!(
        "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
         m=audio 5004 RTP/AVP {fmts}\r\n{extra}"
    );
    parse(&text).unwrap()
}

fn roundtrip(text: &str) -> Sdp {
    let sdp = parse(text).unwrap();
    let printed = sdp.to_string();
    assert!(printed.starts_with("v=0\r\n"));
    assert!(printed.ends_with("\r\n"));
    assert!(!printed.replace("\r\n", "").contains('\n'));
    let again = parse(&printed).unwrap();
    assert_eq!(sdp, again, "round trip changed:\n{printed}");
    assert_eq!(printed, again.to_string());
    sdp
}

// ---------------------------------------------------------------- parsing

#[test]
fn parses_sipp_uac() {
    let sdp = roundtrip(SIPP_UAC);
    assert_eq!(sdp.origin.username, "user1");
    assert_eq!(sdp.origin.session_id, 53655765);
    assert_eq!(sdp.origin.session_version, 2353687637);
    assert_eq!(sdp.origin.address, "127.0.1.1");
    assert_eq!(sdp.session_name, "-");
    assert_eq!(sdp.times, vec![(0, 0)]);
    assert_eq!(sdp.media.len(), 1);
    let m = &sdp.media[0];
    assert_eq!(
        (m.kind.as_str(), m.port, m.proto.as_str()),
        ("audio", 6000, "RTP/AVP")
    );
    assert_eq!(m.formats, vec!["0"]);
    assert_eq!(m.rtpmaps()[0].encoding, "PCMU");
    assert_eq!(m.direction(&sdp.attributes), Direction::SendRecv);
    assert_eq!(m.ptime(), None);
    // SIPp's exact text is already canonical.
    assert_eq!(sdp.to_string(), SIPP_UAC);
}

#[test]
fn parses_linphone_offer() {
    let sdp = roundtrip(LINPHONE);
    assert_eq!(sdp.session_name, "Talk");
    assert_eq!(
        sdp.attribute("rtcp-xr"),
        Some(Some(
            "rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics"
        ))
    );
    let m = &sdp.media[0];
    let maps = m.rtpmaps();
    let names: Vec<_> = maps
        .iter()
        .map(|r| (r.pt, r.encoding.as_str(), r.clock_rate, r.channels))
        .collect();
    assert_eq!(
        names,
        vec![
            (96, "opus", 48000, 2),
            (0, "PCMU", 8000, 1),
            (8, "PCMA", 8000, 1),
            (101, "telephone-event", 48000, 1),
            (97, "telephone-event", 8000, 1),
        ]
    );
    assert_eq!(m.fmtp(96), Some("useinbandfec=1"));
    assert_eq!(m.fmtp(0), None);
    assert_eq!(m.attribute("rtcp"), Some(Some("7079")));
    assert_eq!(m.attribute("nope"), None);
    assert_eq!(
        sdp.connection_for(m).unwrap().ip(),
        Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)))
    );
}

#[test]
fn parses_baresip_offer_and_drops_unknown_lines() {
    let sdp = roundtrip(BARESIP);
    assert_eq!(sdp.connection, None);
    let m = &sdp.media[0];
    assert_eq!(m.connection.as_ref().unwrap().address, "10.0.0.5");
    assert_eq!(m.bandwidths, vec!["AS:64"]);
    assert_eq!(m.ptime(), Some(30));
    assert_eq!(m.attribute("rtcp-mux"), Some(None));
    assert_eq!(m.fmtp(101), Some("0-15"));
    assert_eq!(m.fmtp(96), Some("stereo=1;sprop-stereo=1"));
    assert!(!sdp.to_string().contains("i="));
}

#[test]
fn parses_chrome_offer_but_refuses_to_answer_it() {
    let sdp = roundtrip(CHROME);
    assert_eq!(sdp.media.len(), 3);
    let audio = &sdp.media[0];
    assert_eq!(audio.proto, "UDP/TLS/RTP/SAVPF");
    assert_eq!(audio.formats.len(), 8);
    assert_eq!(audio.attribute("mid"), Some(Some("0")));
    assert_eq!(audio.attribute("ice-ufrag"), Some(Some("x9Ej")));
    assert!(audio
        .attribute("fingerprint")
        .unwrap()
        .unwrap()
        .starts_with("sha-256 4A:AD"));
    assert_eq!(
        audio.attribute("rtcp"),
        Some(Some("9 IN IP4 0.0.0.0")),
        "only the first colon splits name from value"
    );
    assert_eq!(
        audio.attributes.iter().filter(|a| a.name == "ssrc").count(),
        2
    );
    assert_eq!(audio.fmtp(111), Some("minptime=10;useinbandfec=1"));
    assert_eq!(audio.rtpmaps().len(), 8);
    let app = &sdp.media[2];
    assert_eq!(app.formats, vec!["webrtc-datachannel"]);
    assert!(app.rtpmaps().is_empty());
    assert_eq!(
        sdp.attribute("msid-semantic"),
        Some(Some(" WMS 3sHn8Q8mUvP2vFb9e6bVbY6xXGl0x4e4cBzT"))
    );

    let err = answer(&sdp, &local(), &prefs(), Direction::SendRecv).unwrap_err();
    assert_eq!(
        err,
        NegotiationError::UnsupportedProfile("UDP/TLS/RTP/SAVPF".into())
    );
}

#[test]
fn parses_ipv6_and_media_level_connection() {
    let sdp = roundtrip(IPV6);
    assert_eq!(sdp.origin.addr_type(), "IP6");
    assert_eq!(sdp.connection.as_ref().unwrap().addr_type(), "IP6");
    let printed = sdp.to_string();
    assert!(printed.contains("o=bob 42 7 IN IP6 2001:db8::10\r\n"));
    assert!(printed.contains("c=IN IP6 2001:db8::20\r\n"));
    let first = sdp.connection_for(&sdp.media[0]).unwrap();
    let second = sdp.connection_for(&sdp.media[1]).unwrap();
    assert_eq!(first.address, "2001:db8::10");
    assert_eq!(second.address, "2001:db8::20");
    // Missing rtpmap: static payload types are known anyway.
    let maps = sdp.media[0].rtpmaps();
    assert_eq!(maps[0].encoding, "PCMA");
    assert_eq!(maps[1].encoding, "PCMU");

    let (_, plan) = answer(&sdp, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!(
        plan.remote,
        Some(SocketAddr::new(
            IpAddr::V6("2001:db8::10".parse::<Ipv6Addr>().unwrap()),
            40000
        ))
    );
    assert_eq!(plan.codec.pt, 0);
}

#[test]
fn static_payload_types_without_rtpmap() {
    let sdp = offer_with("0 8 9 3 18 13 96", "");
    let maps = sdp.media[0].rtpmaps();
    let names: Vec<_> = maps.iter().map(|r| r.encoding.as_str()).collect();
    // 96 has no rtpmap and is unknown.
    assert_eq!(names, vec!["PCMU", "PCMA", "G722", "GSM", "G729", "CN"]);
    assert!(maps.iter().all(|r| r.clock_rate == 8000 && r.channels == 1));
}

#[test]
fn multicast_ttl_suffix_is_tolerated() {
    let sdp = roundtrip(
        "v=0\no=- 1 1 IN IP4 10.1.1.1\ns=mc\nc=IN IP4 224.2.1.1/127/3\nt=0 0\nm=audio 49170/2 RTP/AVP 0\n",
    );
    let c = sdp.connection.as_ref().unwrap();
    assert_eq!(c.address, "224.2.1.1/127/3");
    assert_eq!(c.ip(), Some(IpAddr::V4(Ipv4Addr::new(224, 2, 1, 1))));
    assert_eq!(sdp.media[0].port_count, Some(2));
    assert!(sdp.to_string().contains("m=audio 49170/2 RTP/AVP 0\r\n"));
}

#[test]
fn canonical_order_and_lenient_sections() {
    // Lines out of canonical order, unknown letters, blank lines, no s=/t=.
    let text = "v=0\n\no=- 5 6 IN IP4 1.2.3.4\na=tool:x\nu=http://example.com\nc=IN IP4 1.2.3.4\nb=CT:100\nz=0 0\nk=prompt\nm=audio 1000 RTP/AVP 0\na=recvonly\nb=AS:80\nc=IN IP4 5.6.7.8\nc=IN IP4 9.9.9.9\n";
    let sdp = roundtrip(text);
    assert_eq!(sdp.session_name, "-");
    assert_eq!(sdp.times, vec![(0, 0)]);
    assert_eq!(sdp.media[0].connection.as_ref().unwrap().address, "5.6.7.8");
    assert_eq!(
        sdp.to_string(),
        "v=0\r\no=- 5 6 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nb=CT:100\r\nt=0 0\r\n\
         a=tool:x\r\nm=audio 1000 RTP/AVP 0\r\nc=IN IP4 5.6.7.8\r\nb=AS:80\r\na=recvonly\r\n"
    );
}

#[test]
fn session_level_direction_applies_unless_overridden() {
    let sdp = parse(
        "v=0\no=- 1 1 IN IP4 1.1.1.1\ns=-\nc=IN IP4 1.1.1.1\nt=0 0\na=sendonly\n\
         m=audio 1 RTP/AVP 0\nm=audio 2 RTP/AVP 0\na=inactive\n",
    )
    .unwrap();
    assert_eq!(sdp.media[0].direction(&sdp.attributes), Direction::SendOnly);
    assert_eq!(sdp.media[1].direction(&sdp.attributes), Direction::Inactive);
    assert_eq!(sdp.media[1].direction(&[]), Direction::Inactive);
    assert_eq!(sdp.media[0].direction(&[]), Direction::SendRecv);
}

#[test]
fn parse_errors_name_the_line() {
    let cases: &[(&str, SdpError)] = &[
        ("", SdpError::Empty),
        ("\r\n \r\n", SdpError::Empty),
        (
            "o=- 1 1 IN IP4 1.1.1.1\n",
            SdpError::BadVersion {
                line: 1,
                found: "o=- 1 1 IN IP4 1.1.1.1".into(),
            },
        ),
        ("v=0\ns=-\n", SdpError::Missing { kind: 'o' }),
        (
            "v=0\no=- x 1 IN IP4 1.1.1.1\n",
            SdpError::BadOrigin {
                line: 2,
                reason: "session id is not a 64-bit number".into(),
            },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nthis is not sdp\n",
            SdpError::MalformedLine { line: 3 },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nm=audio 70000 RTP/AVP 0\n",
            SdpError::BadMedia {
                line: 3,
                reason: "port is not 0..=65535".into(),
            },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nm=audio 1 RTP/AVP 0\nt=0 0\n",
            SdpError::Misplaced { line: 4, kind: 't' },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.1.1.1\no=- 1 1 IN IP4 1.1.1.1\n",
            SdpError::Duplicate { line: 3, kind: 'o' },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\n\r\na=:x\r\n",
            SdpError::BadAttribute { line: 4 },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text).unwrap_err(), *want, "input {text:?}");
    }
    let err = parse("v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4\n").unwrap_err();
    assert_eq!(err.line(), Some(3));
    assert!(err.to_string().starts_with("line 3: bad c= line"));
    let err = parse("v=0\no=- 1 1 IN IP4 1.1.1.1\nt=now 0\n").unwrap_err();
    assert!(matches!(err, SdpError::BadTiming { line: 3, .. }));
    assert!(parse("v=1\n").is_err());
    assert!(parse("v=0\no=- 1 1 ATM NSAP x\n").is_err());
}

#[test]
fn rtpmap_and_direction_helpers() {
    let m = RtpMap::parse_value("111 opus/48000/2").unwrap();
    assert_eq!((m.pt, m.clock_rate, m.channels), (111, 48000, 2));
    assert_eq!(m.to_value(), "111 opus/48000/2");
    assert!(RtpMap::parse_value("200 x/8000").is_none());
    assert!(RtpMap::parse_value("96 x").is_none());
    assert!(RtpMap::parse_value("96 /8000").is_none());
    for d in [
        Direction::SendRecv,
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ] {
        assert_eq!(Direction::from_attr(d.as_attr()), Some(d));
        assert_eq!(d.reverse().reverse(), d);
        assert_eq!(d.intersect(Direction::SendRecv), d);
        assert_eq!(d.intersect(Direction::Inactive), Direction::Inactive);
    }
    assert_eq!(Direction::SendOnly.reverse(), Direction::RecvOnly);
    assert_eq!(
        Direction::SendOnly.intersect(Direction::RecvOnly),
        Direction::Inactive
    );
}

// ---------------------------------------------------------------- offers

#[test]
fn build_offer_lists_codecs_in_preference_order() {
    let prefs = vec![
        CodecPref::opus(111),
        CodecPref::pcma(),
        CodecPref::pcmu(),
        CodecPref::new("G729", 8000, 1),
        CodecPref::new("iLBC", 8000, 1), // no PT: left out
        CodecPref::telephone_event(101, 8000),
    ];
    let sdp = build_offer(&local(), &prefs, Direction::SendRecv, 20);
    let text = sdp.to_string();
    assert_eq!(
        text,
        "v=0\r\n\
         o=- 1234 1 IN IP4 203.0.113.7\r\n\
         s=-\r\n\
         c=IN IP4 203.0.113.7\r\n\
         t=0 0\r\n\
         m=audio 30000 RTP/AVP 111 8 0 18 101\r\n\
         a=rtpmap:111 opus/48000/2\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:18 G729/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
    assert_eq!(parse(&text).unwrap(), sdp);

    let hold = build_offer(&local(), &prefs, Direction::SendOnly, 0);
    assert_eq!(
        hold.media[0].direction(&hold.attributes),
        Direction::SendOnly
    );
    assert_eq!(hold.media[0].ptime(), None);

    let v6 = LocalEndpoint {
        address: IpAddr::V6(Ipv6Addr::LOCALHOST),
        ..local()
    };
    let text = build_offer(&v6, &prefs, Direction::SendRecv, 20).to_string();
    assert!(text.contains("o=- 1234 1 IN IP6 ::1\r\n"));
    assert!(text.contains("c=IN IP6 ::1\r\n"));
}

// ---------------------------------------------------------------- answers

#[test]
fn pcmu_only_offer_gets_pcmu() {
    let offer = parse(SIPP_UAC).unwrap();
    let (ans, plan) = answer(&offer, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!(plan.codec.encoding, "PCMU");
    assert_eq!(plan.codec.pt, 0);
    assert_eq!(plan.telephone_event, None);
    assert_eq!(
        plan.remote,
        Some("127.0.1.1:6000".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(plan.direction, Direction::SendRecv);
    assert_eq!(plan.ptime, 20);
    assert!(!plan.rtcp_mux);
    assert_eq!(
        ans.to_string(),
        "v=0\r\n\
         o=- 1234 1 IN IP4 203.0.113.7\r\n\
         s=-\r\n\
         c=IN IP4 203.0.113.7\r\n\
         t=0 0\r\n\
         m=audio 30000 RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
}

#[test]
fn our_preference_wins_with_offer_pt() {
    let offer = offer_with("0 8", "");
    let prefs = vec![CodecPref::pcma(), CodecPref::pcmu()];
    let (ans, plan) = answer(&offer, &local(), &prefs, Direction::SendRecv).unwrap();
    assert_eq!(plan.codec.encoding, "PCMA");
    assert_eq!(plan.codec.pt, 8);
    assert_eq!(ans.media[0].formats, vec!["8"]);

    // The offer may put PCMA on a dynamic number; we keep its number.
    let offer = offer_with("0 98", "a=rtpmap:98 pcma/8000\r\n");
    let (ans, plan) = answer(&offer, &local(), &prefs, Direction::SendRecv).unwrap();
    assert_eq!(plan.codec.pt, 98);
    assert_eq!(ans.media[0].formats, vec!["98"]);
    assert_eq!(ans.media[0].rtpmap(98).unwrap().encoding, "pcma");
}

#[test]
fn opus_dynamic_pt_is_mapped_and_fmtp_copied() {
    let offer = offer_with(
        "96 0 101",
        "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1; minptime=10\r\n\
         a=rtpmap:101 telephone-event/48000\r\na=fmtp:101 0-15\r\n",
    );
    let prefs = vec![
        CodecPref::opus(111),
        CodecPref::pcmu(),
        CodecPref::telephone_event(100, 48000),
    ];
    let (ans, plan) = answer(&offer, &local(), &prefs, Direction::SendRecv).unwrap();
    assert_eq!(
        plan.codec,
        NegotiatedCodec {
            encoding: "opus".into(),
            pt: 96,
            clock_rate: 48000,
            channels: 2,
            fmtp: Some("useinbandfec=1; minptime=10".into()),
        }
    );
    assert_eq!(plan.telephone_event, Some((101, 48000)));
    let m = &ans.media[0];
    assert_eq!(m.formats, vec!["96", "101"]);
    assert_eq!(m.attribute("rtpmap"), Some(Some("96 opus/48000/2")));
    assert_eq!(m.fmtp(96), Some("useinbandfec=1; minptime=10"));
    assert_eq!(m.fmtp(101), Some("0-16"));
    assert_eq!(m.rtpmaps().len(), 2);
}

#[test]
fn telephone_event_rate_follows_the_codec() {
    let offer = parse(LINPHONE).unwrap();
    let prefs_te = |first: CodecPref| {
        vec![
            first,
            CodecPref::telephone_event(101, 8000),
            CodecPref::telephone_event(102, 48000),
        ]
    };
    let (ans, plan) = answer(
        &offer,
        &local(),
        &prefs_te(CodecPref::pcmu()),
        Direction::SendRecv,
    )
    .unwrap();
    assert_eq!(plan.codec.pt, 0);
    assert_eq!(plan.telephone_event, Some((97, 8000)));
    assert_eq!(ans.media[0].formats, vec!["0", "97"]);

    let (ans, plan) = answer(
        &offer,
        &local(),
        &prefs_te(CodecPref::opus(111)),
        Direction::SendRecv,
    )
    .unwrap();
    assert_eq!(plan.codec.pt, 96);
    assert_eq!(plan.telephone_event, Some((101, 48000)));
    assert_eq!(ans.media[0].formats, vec!["96", "101"]);

    // We only do 8000 Hz events: take them even with opus.
    let prefs = vec![CodecPref::opus(111), CodecPref::telephone_event(101, 8000)];
    let (_, plan) = answer(&offer, &local(), &prefs, Direction::SendRecv).unwrap();
    assert_eq!(plan.telephone_event, Some((97, 8000)));

    // No telephone-event preference: none negotiated.
    let (ans, plan) = answer(&offer, &local(), &[CodecPref::pcma()], Direction::SendRecv).unwrap();
    assert_eq!(plan.telephone_event, None);
    assert_eq!(ans.media[0].formats, vec!["8"]);
}

#[test]
fn no_common_codec() {
    let offer = offer_with("18 101", "a=rtpmap:101 telephone-event/8000\r\n");
    assert_eq!(
        answer(&offer, &local(), &prefs(), Direction::SendRecv).unwrap_err(),
        NegotiationError::NoCommonCodec
    );
    // Events or comfort noise alone cannot carry a call.
    let offer = offer_with("13 101", "a=rtpmap:101 telephone-event/8000\r\n");
    let mut prefs = prefs();
    prefs.insert(0, CodecPref::new("CN", 8000, 1));
    assert_eq!(
        answer(&offer, &local(), &prefs, Direction::SendRecv).unwrap_err(),
        NegotiationError::NoCommonCodec
    );
}

#[test]
fn video_line_is_rejected_with_port_zero() {
    let offer = parse(
        "v=0\r\no=- 7 7 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\n\
         m=video 5006 RTP/AVP 96 97\r\na=rtpmap:96 H264/90000\r\n\
         m=audio 5004 RTP/AVP 8 0\r\na=rtcp-mux\r\n\
         m=audio 5008 RTP/AVP 0\r\n",
    )
    .unwrap();
    let (ans, plan) = answer(&offer, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!(ans.media.len(), 3);
    let video = &ans.media[0];
    assert_eq!(
        (video.kind.as_str(), video.port, video.proto.as_str()),
        ("video", 0, "RTP/AVP")
    );
    assert_eq!(video.formats, vec!["96"]);
    assert_eq!(ans.media[1].port, 30000);
    assert_eq!(ans.media[2].port, 0, "only the first audio line is taken");
    assert_eq!(plan.codec.pt, 0);
    assert!(plan.rtcp_mux);
    assert_eq!(ans.media[1].attribute("rtcp-mux"), Some(None));
    assert_eq!(
        plan.remote,
        Some("198.51.100.9:5004".parse::<SocketAddr>().unwrap())
    );
    // Our own answer is acceptable to the offer it answers.
    assert_eq!(accept_answer(&offer, &ans).unwrap().codec.pt, 0);
}

#[test]
fn disabled_or_missing_audio() {
    let offer = offer_with("0", "");
    let mut disabled = offer.clone();
    disabled.media[0].port = 0;
    assert_eq!(
        answer(&disabled, &local(), &prefs(), Direction::SendRecv).unwrap_err(),
        NegotiationError::NoAudio
    );
    let mut video = offer.clone();
    video.media[0].kind = "video".into();
    assert_eq!(
        answer(&video, &local(), &prefs(), Direction::SendRecv).unwrap_err(),
        NegotiationError::NoAudio
    );
    let mut savp = offer.clone();
    savp.media[0].proto = "RTP/SAVP".into();
    assert_eq!(
        answer(&savp, &local(), &prefs(), Direction::SendRecv).unwrap_err(),
        NegotiationError::UnsupportedProfile("RTP/SAVP".into())
    );
    // A secure line next to a plain one: the plain one is taken.
    let mut both = savp.clone();
    both.media.push(offer.media[0].clone());
    let (ans, _) = answer(&both, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!((ans.media[0].port, ans.media[1].port), (0, 30000));
    assert_eq!(ans.media[0].proto, "RTP/SAVP");

    let mut no_c = offer.clone();
    no_c.connection = None;
    assert!(matches!(
        answer(&no_c, &local(), &prefs(), Direction::SendRecv),
        Err(NegotiationError::Malformed(_))
    ));
    let mut fqdn = offer;
    fqdn.connection = Some(Connection {
        address: "pbx.example.com".into(),
    });
    assert!(matches!(
        answer(&fqdn, &local(), &prefs(), Direction::SendRecv),
        Err(NegotiationError::Malformed(_))
    ));
}

#[test]
fn sendonly_offer_gets_recvonly_answer() {
    let offer = offer_with("0", "a=sendonly\r\n");
    let (ans, plan) = answer(&offer, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!(plan.direction, Direction::RecvOnly);
    assert!(plan.remote.is_some());
    assert_eq!(ans.media[0].direction(&ans.attributes), Direction::RecvOnly);
    assert_eq!(ans.media[0].attribute("recvonly"), Some(None));

    let offer = offer_with("0", "a=recvonly\r\n");
    let (_, plan) = answer(&offer, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!(plan.direction, Direction::SendOnly);

    // Our own wish limits it further.
    let offer = offer_with("0", "");
    let (ans, plan) = answer(&offer, &local(), &prefs(), Direction::SendOnly).unwrap();
    assert_eq!(plan.direction, Direction::SendOnly);
    assert_eq!(ans.media[0].attribute("sendonly"), Some(None));
}

#[test]
fn old_style_hold_with_zero_address() {
    let offer = parse(
        "v=0\r\no=- 1 2 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
         m=audio 5004 RTP/AVP 0\r\n",
    )
    .unwrap();
    let (ans, plan) = answer(&offer, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!(plan.remote, None);
    assert_eq!(plan.direction, Direction::RecvOnly);
    assert_eq!(ans.media[0].direction(&[]), Direction::RecvOnly);

    let offer = parse(
        "v=0\r\no=- 1 2 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
         m=audio 5004 RTP/AVP 0\r\na=sendonly\r\n",
    )
    .unwrap();
    let (_, plan) = answer(&offer, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!((plan.remote, plan.direction), (None, Direction::RecvOnly));

    // Media-level 0.0.0.0 overrides a real session address; IPv6 `::` too.
    let offer = offer_with("0", "c=IN IP6 ::\r\n");
    let (_, plan) = answer(&offer, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!((plan.remote, plan.direction), (None, Direction::RecvOnly));
}

#[test]
fn inactive_offer() {
    let offer = offer_with("8", "a=inactive\r\n");
    let (ans, plan) = answer(&offer, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!(plan.direction, Direction::Inactive);
    assert_eq!(ans.media[0].attribute("inactive"), Some(None));
    assert_eq!(plan.codec.pt, 8);

    // Session-level inactive.
    let offer = parse(
        "v=0\no=- 1 1 IN IP4 1.1.1.1\ns=-\nc=IN IP4 1.1.1.1\nt=0 0\na=inactive\nm=audio 4000 RTP/AVP 0\n",
    )
    .unwrap();
    let (_, plan) = answer(&offer, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!(plan.direction, Direction::Inactive);
}

#[test]
fn ptime_is_echoed() {
    let offer = parse(BARESIP).unwrap();
    let (ans, plan) = answer(&offer, &local(), &prefs(), Direction::SendRecv).unwrap();
    assert_eq!(plan.ptime, 30);
    assert_eq!(ans.media[0].ptime(), Some(30));
    assert!(plan.rtcp_mux);
    assert_eq!(plan.telephone_event, Some((101, 8000)));
    assert_eq!(
        plan.remote,
        Some("10.0.0.5:10238".parse::<SocketAddr>().unwrap())
    );
}

// ---------------------------------------------------------------- accept_answer

fn our_offer() -> Sdp {
    build_offer(
        &local(),
        &[
            CodecPref::opus(111),
            CodecPref::pcmu(),
            CodecPref::pcma(),
            CodecPref::telephone_event(101, 8000),
        ],
        Direction::SendRecv,
        20,
    )
}

fn answer_text(media: &str) -> Sdp {
    parse(&format!(
        "v=0\r\no=peer 9 9 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n{media}"
    ))
    .unwrap()
}

#[test]
fn accept_answer_happy_path() {
    let ans = answer_text(
        "m=audio 7000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:30\r\n",
    );
    let plan = accept_answer(&our_offer(), &ans).unwrap();
    assert_eq!(
        plan,
        MediaPlan {
            remote: Some("192.0.2.50:7000".parse().unwrap()),
            codec: NegotiatedCodec {
                encoding: "PCMA".into(),
                pt: 8,
                clock_rate: 8000,
                channels: 1,
                fmtp: None,
            },
            telephone_event: Some((101, 8000)),
            direction: Direction::SendRecv,
            ptime: 30,
            rtcp_mux: false,
        }
    );

    // Opus, no rtpmap-less surprises, recvonly answer to our sendrecv.
    let ans = answer_text(
        "m=audio 7000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n\
         a=fmtp:111 useinbandfec=1\r\na=recvonly\r\n",
    );
    let plan = accept_answer(&our_offer(), &ans).unwrap();
    assert_eq!(plan.codec.pt, 111);
    assert_eq!(plan.codec.channels, 2);
    assert_eq!(plan.codec.fmtp.as_deref(), Some("useinbandfec=1"));
    assert_eq!(plan.direction, Direction::SendOnly);
    assert_eq!(plan.ptime, 20);
    assert_eq!(plan.telephone_event, None);

    // The answer holds us with 0.0.0.0.
    let ans = parse(
        "v=0\r\no=peer 9 9 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
         m=audio 7000 RTP/AVP 0\r\n",
    )
    .unwrap();
    let plan = accept_answer(&our_offer(), &ans).unwrap();
    assert_eq!((plan.remote, plan.direction), (None, Direction::RecvOnly));

    // Full loop: our offer answered by our own answerer.
    let (ans, theirs) = answer(
        &our_offer(),
        &LocalEndpoint {
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)),
            port: 4000,
            session_id: 5,
            session_version: 5,
        },
        &[CodecPref::pcma(), CodecPref::telephone_event(96, 8000)],
        Direction::SendRecv,
    )
    .unwrap();
    let ours = accept_answer(&our_offer(), &ans).unwrap();
    assert_eq!(ours.codec, theirs.codec);
    assert_eq!(ours.telephone_event, theirs.telephone_event);
    assert_eq!(ours.remote, Some("192.0.2.9:4000".parse().unwrap()));
    assert_eq!(theirs.remote, Some("203.0.113.7:30000".parse().unwrap()));
}

#[test]
fn accept_answer_mismatches() {
    // A payload type we never offered.
    let ans = answer_text("m=audio 7000 RTP/AVP 18\r\n");
    assert!(matches!(
        accept_answer(&our_offer(), &ans),
        Err(NegotiationError::AnswerMismatch(_))
    ));
    let ans = answer_text("m=audio 7000 RTP/AVP 97\r\na=rtpmap:97 iLBC/8000\r\n");
    assert!(matches!(
        accept_answer(&our_offer(), &ans),
        Err(NegotiationError::AnswerMismatch(_))
    ));
    // An offered number remapped to another codec.
    let ans = answer_text("m=audio 7000 RTP/AVP 111\r\na=rtpmap:111 speex/16000\r\n");
    assert!(matches!(
        accept_answer(&our_offer(), &ans),
        Err(NegotiationError::AnswerMismatch(_))
    ));
    // m-line count differs.
    let ans = answer_text("m=audio 7000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n");
    let err = accept_answer(&our_offer(), &ans).unwrap_err();
    assert_eq!(
        err,
        NegotiationError::AnswerMismatch("answer has 2 m-lines, the offer had 1".into())
    );
    // Kind differs.
    let ans = answer_text("m=video 7000 RTP/AVP 0\r\n");
    assert!(matches!(
        accept_answer(&our_offer(), &ans),
        Err(NegotiationError::AnswerMismatch(_))
    ));
    // Proto differs.
    let ans = answer_text("m=audio 7000 RTP/SAVP 0\r\n");
    assert!(matches!(
        accept_answer(&our_offer(), &ans),
        Err(NegotiationError::AnswerMismatch(_))
    ));
    // Direction not allowed by our sendonly (hold) offer.
    let hold = build_offer(&local(), &prefs(), Direction::SendOnly, 20);
    let ans = answer_text("m=audio 7000 RTP/AVP 0\r\na=sendrecv\r\n");
    assert!(matches!(
        accept_answer(&hold, &ans),
        Err(NegotiationError::AnswerMismatch(_))
    ));
    let ans = answer_text("m=audio 7000 RTP/AVP 0\r\na=recvonly\r\n");
    assert_eq!(
        accept_answer(&hold, &ans).unwrap().direction,
        Direction::SendOnly
    );
    // Port 0 on the only audio line.
    let ans = answer_text("m=audio 0 RTP/AVP 0\r\n");
    assert_eq!(
        accept_answer(&our_offer(), &ans).unwrap_err(),
        NegotiationError::NoAudio
    );
    // Only events.
    let ans = answer_text("m=audio 7000 RTP/AVP 101\r\n");
    assert_eq!(
        accept_answer(&our_offer(), &ans).unwrap_err(),
        NegotiationError::NoCommonCodec
    );
    // No connection.
    let ans = parse("v=0\no=- 1 1 IN IP4 1.1.1.1\ns=-\nt=0 0\nm=audio 7000 RTP/AVP 0\n").unwrap();
    assert!(matches!(
        accept_answer(&our_offer(), &ans),
        Err(NegotiationError::Malformed(_))
    ));
}

// ---------------------------------------------------------------- properties

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.:/_+*#-]{1,12}"
}

fn free_text() -> impl Strategy<Value = String> {
    // Anything but line breaks, including spaces at either end.
    "[^\r\n]{0,24}"
}

fn connection() -> impl Strategy<Value = Option<Connection>> {
    proptest::option::of(token().prop_map(|address| Connection { address }))
}

fn attribute() -> impl Strategy<Value = Attribute> {
    ("[A-Za-z0-9 _.-]{1,10}", proptest::option::of(free_text()))
        .prop_map(|(name, value)| Attribute { name, value })
}

fn media() -> impl Strategy<Value = Media> {
    (
        (
            token(),
            any::<u16>(),
            proptest::option::of(any::<u16>()),
            token(),
        ),
        proptest::collection::vec(token(), 0..5),
        connection(),
        proptest::collection::vec(free_text(), 0..3),
        proptest::collection::vec(attribute(), 0..6),
    )
        .prop_map(
            |((kind, port, port_count, proto), formats, connection, bandwidths, attributes)| {
                Media {
                    kind,
                    port,
                    port_count,
                    proto,
                    formats,
                    connection,
                    bandwidths,
                    attributes,
                }
            },
        )
}

fn sdp() -> impl Strategy<Value = Sdp> {
    (
        (
            proptest::collection::vec(token(), 1..3),
            any::<u64>(),
            any::<u64>(),
            token(),
        ),
        free_text(),
        connection(),
        proptest::collection::vec(free_text(), 0..3),
        proptest::collection::vec((any::<u64>(), any::<u64>()), 1..3),
        proptest::collection::vec(attribute(), 0..6),
        proptest::collection::vec(media(), 0..4),
    )
        .prop_map(
            |(
                (user, session_id, session_version, address),
                session_name,
                connection,
                bandwidths,
                times,
                attributes,
                media,
            )| Sdp {
                origin: Origin {
                    username: user.join(" "),
                    session_id,
                    session_version,
                    address,
                },
                session_name,
                connection,
                bandwidths,
                times,
                attributes,
                media,
            },
        )
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    DropLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..20usize).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), "(.|\r|\n){1,8}").prop_map(|(a, s)| Mutation::Insert(a, s)),
        any::<usize>().prop_map(Mutation::DropLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn char_boundary(s: &str, at: usize) -> usize {
    let mut at = at % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    match m {
        Mutation::Delete(a, n) => {
            let start = char_boundary(text, *a);
            let end = char_boundary(text, (start + n).min(text.len()));
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Mutation::Insert(a, s) => {
            let at = char_boundary(text, *a);
            format!("{}{}{}", &text[..at], s, &text[at..])
        }
        Mutation::DropLine(i) => {
            if !lines.is_empty() {
                lines.remove(i % lines.len());
            }
            lines.concat()
        }
        Mutation::DuplicateLine(i) => {
            if !lines.is_empty() {
                let l = lines[i % lines.len()];
                lines.insert(i % lines.len(), l);
            }
            lines.concat()
        }
        Mutation::SwapLines(a, b) => {
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(a % n, b % n);
            }
            lines.concat()
        }
        Mutation::Truncate(a) => text[..char_boundary(text, *a)].to_string(),
    }
}

/// Exercises everything downstream of a successful parse.
fn exercise(sdp: &Sdp) {
    let printed = sdp.to_string();
    assert_eq!(&parse(&printed).unwrap(), sdp);
    for m in &sdp.media {
        let _ = (m.rtpmaps(), m.ptime(), m.direction(&sdp.attributes));
        for pt in 0..=127u8 {
            let _ = m.fmtp(pt);
        }
    }
    let _ = answer(sdp, &local(), &prefs(), Direction::SendRecv);
    let _ = accept_answer(&our_offer(), sdp);
    let _ = accept_answer(sdp, sdp);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_never_panics_on_arbitrary_input(text in "(.|\r|\n){0,400}") {
        if let Ok(sdp) = parse(&text) {
            exercise(&sdp);
        }
    }

    #[test]
    fn parse_never_panics_on_sdp_like_input(
        lines in proptest::collection::vec(("[a-z]", "[ -~]{0,30}"), 0..20)
    ) {
        let mut text = String::from("v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\n");
        for (k, v) in &lines {
            text.push_str(k);
            text.push('=');
            text.push_str(v);
            text.push_str("\r\n");
        }
        if let Ok(sdp) = parse(&text) {
            exercise(&sdp);
        }
    }

    #[test]
    fn parse_never_panics_on_mutated_samples(
        which in 0..5usize,
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut text = [SIPP_UAC, LINPHONE, BARESIP, CHROME, IPV6][which].to_string();
        for m in &mutations {
            text = apply(&text, m);
        }
        if let Ok(sdp) = parse(&text) {
            exercise(&sdp);
        }
    }

    #[test]
    fn printed_sdp_parses_back_equal(sdp in sdp()) {
        let printed = sdp.to_string();
        prop_assert!(printed.starts_with("v=0\r\n"));
        let back = parse(&printed);
        prop_assert_eq!(back.as_ref(), Ok(&sdp), "printed:\n{}", printed);
    }

    #[test]
    fn answers_are_well_formed(
        fmts in proptest::collection::vec(prop_oneof![Just("0"), Just("8"), Just("96"), Just("101"), Just("13"), Just("18")], 1..6),
        dir in prop_oneof![Just(""), Just("a=sendonly\r\n"), Just("a=recvonly\r\n"), Just("a=inactive\r\n")],
        ours in prop_oneof![Just(Direction::SendRecv), Just(Direction::SendOnly), Just(Direction::RecvOnly), Just(Direction::Inactive)],
    ) {
        let offer = offer_with(
            &fmts.join(" "),
            &format!("a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n{dir}"),
        );
        let prefs = vec![CodecPref::opus(111), CodecPref::pcma(), CodecPref::pcmu(), CodecPref::telephone_event(100, 8000)];
        match answer(&offer, &local(), &prefs, ours) {
            Ok((ans, plan)) => {
                prop_assert_eq!(ans.media.len(), offer.media.len());
                let reparsed = parse(&ans.to_string());
                prop_assert_eq!(reparsed.as_ref(), Ok(&ans));
                let accepted = accept_answer(&offer, &ans).unwrap();
                prop_assert_eq!(&accepted.codec, &plan.codec);
                prop_assert_eq!(accepted.telephone_event, plan.telephone_event);
                // What they may do is the mirror of what we may do.
                prop_assert_eq!(accepted.direction, plan.direction.reverse());
                prop_assert!(!plan.direction.can_send() || ours.can_send());
                prop_assert!(!plan.direction.can_recv() || ours.can_recv());
            }
            Err(e) => prop_assert_eq!(e, NegotiationError::NoCommonCodec),
        }
    }
}
