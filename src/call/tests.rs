//! Message-level tests of the call core on simulated time: media anchoring, transfers, trunk
//! registration. (Whole-call scenarios with lossy networks live in `tests/switch_sim.rs`.)

use super::*;
use crate::media::engine::MediaCommand;
use crate::sip::auth;
use crate::sip::message::{parse, response_to, HeaderName, Message, Method, Request, Response};

const EXTRA_TRUNK: &str = "
  - name: upstream
    inbound: { allow: [127.0.0.9] }
    outbound: { host: 127.0.0.1, port: 5099, transport: udp, auth: { username: acct, password: pw }, register: true, register_expires: 120 }
";

fn switch(t0: Instant, extra_trunks: &str) -> Switch {
    switch_with(t0, extra_trunks, RecordedMedia::default())
}

fn switch_with(t0: Instant, extra_trunks: &str, media: RecordedMedia) -> Switch {
    switch_full(
        t0,
        extra_trunks,
        media,
        RecordedApps::default(),
        crate::ivr::Flows::default(),
        crate::acd::AcdConfig::default(),
    )
}

/// A switch with the demo profile (routes 101 → flow `test`, 201 → queue `q`), these
/// flows and this contact centre.
pub(super) fn switch_full(
    t0: Instant,
    extra_trunks: &str,
    media: RecordedMedia,
    apps: RecordedApps,
    flows: crate::ivr::Flows,
    acd: crate::acd::AcdConfig,
) -> Switch {
    let text = include_str!("../../sip-profiles/default.yaml")
        .replace("trunks:\n", &format!("trunks:{extra_trunks}\n"))
        .replace(
            "  - { number: \"600\", to: echo }",
            "  - { number: \"600\", to: echo }\n  - { number: \"601\", to: echo, record: true }\n  - { number: \"101\", to: { flow: test } }\n  - { number: \"201\", to: { queue: q } }",
        );
    let profile =
        crate::config::parse_profile(std::path::Path::new("test.yaml"), &text).expect("profile");
    let local = LocalAddrs {
        udp: Some("127.0.0.1:5060".parse().unwrap()),
        ..Default::default()
    };
    let trunk_addrs = HashMap::from([
        (
            "demo-carrier".to_string(),
            "127.0.0.1:5090".parse().unwrap(),
        ),
        ("upstream".to_string(), "127.0.0.1:5099".parse().unwrap()),
    ]);
    let data_dir = std::env::temp_dir().join("switchboard-call-tests");
    let cfg = SwitchConfig {
        profile: Arc::new(profile),
        local,
        trunk_addrs,
        seed: 3,
        nonce_secret: [9; 32],
        media: Box::new(media),
        data_dir,
        apps: Box::new(apps),
        flows,
        local_epoch: crate::ivr::LocalDateTime::new(
            crate::ivr::Date::new(2026, 11, 23).unwrap(),
            9,
            0,
            0,
        )
        .unwrap(),
        acd,
    };
    Switch::new(t0, cfg)
}

/// An SDP offer or answer from a test UA at `port` with these payload types.
pub(super) fn sdp(port: u16, pts: &[u8], direction: &str) -> String {
    let mut s = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP");
    for pt in pts {
        s.push_str(&format!(" {pt}"));
    }
    s.push_str("\r\n");
    for pt in pts {
        match pt {
            0 => s.push_str("a=rtpmap:0 PCMU/8000\r\n"),
            8 => s.push_str("a=rtpmap:8 PCMA/8000\r\n"),
            101 => s.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"),
            111 => s.push_str("a=rtpmap:111 opus/48000/2\r\n"),
            _ => {}
        }
    }
    s.push_str(&format!("a={direction}\r\n"));
    s
}

fn parsed_sdp(body: &[u8]) -> crate::sdp::Sdp {
    crate::sdp::parse(std::str::from_utf8(body).unwrap()).expect("valid SDP from the switch")
}

/// The payload type the first audio line puts first, and its port.
fn first_pt_and_port(body: &[u8]) -> (String, u16) {
    let s = parsed_sdp(body);
    (s.media[0].formats[0].clone(), s.media[0].port)
}

pub(super) fn udp(port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// Everything the switch wants to send, parsed, with its destination port.
pub(super) fn drain(sw: &mut Switch) -> Vec<(u16, Message)> {
    let mut out = vec![];
    while let Some(t) = sw.poll_transmit() {
        out.push((
            t.peer.addr.port(),
            parse(&t.bytes).expect("switch sends valid SIP"),
        ));
    }
    out
}

pub(super) fn requests(out: &[(u16, Message)], port: u16, method: Method) -> Vec<Request> {
    out.iter()
        .filter_map(|(p, m)| match m {
            Message::Request(r) if *p == port && r.method == method => Some(r.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn responses(out: &[(u16, Message)], port: u16) -> Vec<Response> {
    out.iter()
        .filter_map(|(p, m)| match m {
            Message::Response(r) if *p == port => Some(r.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn send(sw: &mut Switch, now: Instant, from: u16, text: &str) {
    sw.handle_message(now, udp(from), text.replace('\n', "\r\n").as_bytes());
}

pub(super) fn send_msg(sw: &mut Switch, now: Instant, from: u16, m: &[u8]) {
    sw.handle_message(now, udp(from), m);
}

/// A reply from a UA at `port`, with a To tag, Contact and optional SDP body.
pub(super) fn reply(req: &Request, status: u16, tag: &str, port: u16, body: &str) -> Vec<u8> {
    let mut r = response_to(req, status, None, Some(tag));
    r.headers
        .push(HeaderName::Contact, format!("<sip:ua@127.0.0.1:{port}>"));
    if !body.is_empty() {
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = bytes::Bytes::from(body.to_string());
    }
    r.to_bytes()
}

fn register_1001(sw: &mut Switch, now: Instant) {
    let reg = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:switchboard.local SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKreg{cseq}\nFrom: <sip:1001@switchboard.local>;tag=r1\nTo: <sip:1001@switchboard.local>\nCall-ID: reg-1001\nCSeq: {cseq} REGISTER\nContact: <sip:1001@127.0.0.1:5070>\n{auth}Expires: 3600\nContent-Length: 0\n\n"
        )
    };
    send(sw, now, 5070, &reg(1, ""));
    let out = drain(sw);
    let challenge = responses(&out, 5070)[0]
        .headers
        .get(&HeaderName::WwwAuthenticate)
        .unwrap()
        .to_string();
    let ch = auth::parse_digest(&challenge).unwrap();
    let a = auth::authorization_header(
        &ch,
        "REGISTER",
        "sip:switchboard.local",
        "1001",
        "secret1001",
        "c1",
        1,
    )
    .unwrap();
    send(sw, now, 5070, &reg(2, &format!("Authorization: {a}\n")));
    let out = drain(sw);
    assert_eq!(responses(&out, 5070)[0].status, 200);
}

/// A message from LF-separated header lines and a body (sent as it is), with CRLF line ends
/// and the right Content-Length.
pub(super) fn with_body(headers: &str, body: &str) -> Vec<u8> {
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        headers.trim_end().replace('\n', "\r\n"),
        body.len()
    )
    .into_bytes()
}

pub(super) fn invite_from_trunk(called: &str, body: &str) -> Vec<u8> {
    with_body(&format!("INVITE sip:{called}@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv{called}\nFrom: \"Carol\" <sip:+15551234@carrier>;tag=c1\nTo: <sip:{called}@127.0.0.1>\nCall-ID: call-{called}\nCSeq: 1 INVITE\nContact: <sip:carol@127.0.0.1:5080>"), body)
}

fn ack_from_caller(called: &str, a_tag: &str, body: &str) -> Vec<u8> {
    with_body(&format!("ACK sip:switchboard@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKack{called}\nFrom: \"Carol\" <sip:+15551234@carrier>;tag=c1\nTo: <sip:{called}@127.0.0.1>;tag={a_tag}\nCall-ID: call-{called}\nCSeq: 1 ACK"), body)
}

/// Sets up a trunk call 5080 → 1001 (at 5070), answered; returns the switch's INVITE to 1001
/// and the 200 the caller got.
fn answered_call(sw: &mut Switch, now: Instant) -> (Request, Response) {
    register_1001(sw, now);
    send_msg(
        sw,
        now,
        5080,
        &invite_from_trunk("1001", &sdp(6000, &[0, 101], "sendrecv")),
    );
    let out = drain(sw);
    let inv = requests(&out, 5070, Method::Invite)
        .pop()
        .expect("INVITE to 1001");
    // The callee gets our own offer on our B-leg port, the caller's codec first.
    let (pt, port) = first_pt_and_port(&inv.body);
    assert_eq!(pt, "0");
    assert_eq!(port, 40004, "B leg's media port");
    assert_eq!(inv.from().unwrap().uri.user.as_deref(), Some("+15551234"));
    send_msg(
        sw,
        now,
        5070,
        &reply(&inv, 200, "b1", 5070, &sdp(7000, &[0, 101], "sendrecv")),
    );
    let out = drain(sw);
    assert_eq!(
        requests(&out, 5070, Method::Ack).len(),
        1,
        "switch ACKs the callee"
    );
    let ok = responses(&out, 5080)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("200 to caller");
    let (pt, port) = first_pt_and_port(&ok.body);
    assert_eq!(
        (pt.as_str(), port),
        ("0", 40002),
        "the caller gets our answer on the A-leg port"
    );
    let a_tag = ok.to().unwrap().tag().unwrap().to_string();
    send_msg(sw, now, 5080, &ack_from_caller("1001", &a_tag, ""));
    assert!(
        drain(sw).is_empty(),
        "the ACK stops 2xx retransmission quietly"
    );
    (inv, ok)
}

/// An in-dialog request from the callee (1001 at 5070) on the B leg.
fn from_callee(inv: &Request, method: &str, cseq: u32, extra: &str) -> String {
    let from_tag = inv.from().unwrap().tag().unwrap().to_string();
    let call_id = inv.call_id().unwrap();
    format!(
        "{method} sip:switchboard@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{method}{cseq}\nFrom: <sip:1001@switchboard.local>;tag=b1\nTo: <sip:+15551234@switchboard.local>;tag={from_tag}\nCall-ID: {call_id}\nCSeq: {cseq} {method}\nContact: <sip:ua@127.0.0.1:5070>\n{extra}Content-Length: 0\n\n"
    )
}

fn bridges(log: &MediaLog) -> Vec<(LegId, LegId)> {
    log.commands
        .iter()
        .filter_map(|c| {
            if let MediaCommand::Bridge { a, b } = c {
                Some((*a, *b))
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn a_call_is_anchored_and_bridged_once_both_legs_answer() {
    let t0 = Instant::now();
    let media = RecordedMedia::default();
    let mut sw = switch_with(t0, "", media.clone());
    answered_call(&mut sw, t0);
    let log = media.log();
    assert_eq!(bridges(&log), vec![(1, 2)]);
    let configured: Vec<_> = log
        .commands
        .iter()
        .filter_map(|c| {
            if let MediaCommand::Configure { leg, params } = c {
                Some((*leg, params.remote, params.codec.pt))
            } else {
                None
            }
        })
        .collect();
    assert!(
        configured.contains(&(1, Some("127.0.0.1:6000".parse().unwrap()), 0)),
        "{configured:?}"
    );
    assert!(
        configured.contains(&(2, Some("127.0.0.1:7000".parse().unwrap()), 0)),
        "{configured:?}"
    );
}

#[test]
fn an_offer_without_a_common_codec_gets_488() {
    let t0 = Instant::now();
    let mut sw = switch(t0, "");
    register_1001(&mut sw, t0);
    let offer = sdp(6000, &[18], "sendrecv").replace(
        "m=audio 6000 RTP/AVP 18\r\n",
        "m=audio 6000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
    );
    send_msg(&mut sw, t0, 5080, &invite_from_trunk("1001", &offer));
    let out = drain(&mut sw);
    assert!(responses(&out, 5080).iter().any(|r| r.status == 488));
    assert!(
        requests(&out, 5070, Method::Invite).is_empty(),
        "the callee never rings"
    );
}

#[test]
fn late_offer_caller_gets_our_offer_and_answers_in_the_ack() {
    let t0 = Instant::now();
    let media = RecordedMedia::default();
    let mut sw = switch_with(t0, "", media.clone());
    register_1001(&mut sw, t0);
    send_msg(&mut sw, t0, 5080, &invite_from_trunk("1001", ""));
    let out = drain(&mut sw);
    let inv = requests(&out, 5070, Method::Invite)
        .pop()
        .expect("the callee still gets our offer");
    send_msg(
        &mut sw,
        t0,
        5070,
        &reply(&inv, 200, "b1", 5070, &sdp(7000, &[8, 101], "sendrecv")),
    );
    let out = drain(&mut sw);
    let ok = responses(&out, 5080)
        .into_iter()
        .find(|r| r.status == 200)
        .unwrap();
    let offer = parsed_sdp(&ok.body);
    assert_eq!(
        offer.media[0].formats[0], "8",
        "the callee's codec offered first, to relay"
    );
    assert!(
        bridges(&media.log()).is_empty(),
        "no bridge before the caller answers"
    );
    let a_tag = ok.to().unwrap().tag().unwrap().to_string();
    send_msg(
        &mut sw,
        t0,
        5080,
        &ack_from_caller("1001", &a_tag, &sdp(6000, &[8], "sendrecv")),
    );
    assert_eq!(bridges(&media.log()), vec![(1, 2)]);
}

#[test]
fn hold_from_the_caller_is_offered_to_the_callee_as_hold() {
    let t0 = Instant::now();
    let mut sw = switch(t0, "");
    let (inv, ok) = answered_call(&mut sw, t0);
    let a_tag = ok.to().unwrap().tag().unwrap().to_string();
    let hold = sdp(6000, &[0, 101], "sendonly");
    let reinvite = with_body(&format!("INVITE sip:switchboard@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKhold\nFrom: <sip:+15551234@carrier>;tag=c1\nTo: <sip:1001@127.0.0.1>;tag={a_tag}\nCall-ID: call-1001\nCSeq: 2 INVITE\nContact: <sip:carol@127.0.0.1:5080>"), &hold);
    send_msg(&mut sw, t0, 5080, &reinvite);
    let out = drain(&mut sw);
    let reinv = requests(&out, 5070, Method::Invite)
        .pop()
        .expect("re-INVITE to the callee");
    let offer = parsed_sdp(&reinv.body);
    assert_eq!(
        offer.media[0].direction(&offer.attributes),
        crate::sdp::Direction::SendOnly
    );
    assert!(
        responses(&out, 5080).iter().all(|r| r.status < 200),
        "the caller waits for the callee"
    );
    send_msg(
        &mut sw,
        t0,
        5070,
        &reply(&reinv, 200, "b1", 5070, &sdp(7000, &[0, 101], "recvonly")),
    );
    let out = drain(&mut sw);
    let ok2 = responses(&out, 5080)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("200 to the hold");
    let answer = parsed_sdp(&ok2.body);
    assert_eq!(
        answer.media[0].direction(&answer.attributes),
        crate::sdp::Direction::RecvOnly
    );
    let _ = inv;
}

#[test]
fn echo_test_answers_at_once_and_loops_the_leg() {
    let t0 = Instant::now();
    let media = RecordedMedia::default();
    let mut sw = switch_with(t0, "", media.clone());
    send_msg(
        &mut sw,
        t0,
        5080,
        &invite_from_trunk("600", &sdp(6000, &[8, 0], "sendrecv")),
    );
    let out = drain(&mut sw);
    let ok = responses(&out, 5080)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("answered");
    assert_eq!(
        first_pt_and_port(&ok.body).0,
        "0",
        "our preference (PCMU) among the caller's"
    );
    assert!(media
        .log()
        .commands
        .iter()
        .any(|c| matches!(c, MediaCommand::Echo { leg: 1 })));
}

#[test]
fn recorded_route_opens_a_recording_named_by_call_id() {
    let t0 = Instant::now();
    let media = RecordedMedia::default();
    let mut sw = switch_with(t0, "", media.clone());
    send_msg(
        &mut sw,
        t0,
        5080,
        &invite_from_trunk("601", &sdp(6000, &[0], "sendrecv")),
    );
    drain(&mut sw);
    let log = media.log();
    assert_eq!(log.recordings.len(), 1);
    assert!(log.recordings[0].1.ends_with("recordings/call-601.wav"));
    assert!(log
        .commands
        .iter()
        .any(|c| matches!(c, MediaCommand::Record { .. })));
}

#[test]
fn dtmf_by_info_is_counted_and_sent_as_rfc4733() {
    let t0 = Instant::now();
    let media = RecordedMedia::default();
    let mut sw = switch_with(t0, "", media.clone());
    let (inv, _) = answered_call(&mut sw, t0);
    let info = from_callee(&inv, "INFO", 5, "Content-Type: application/dtmf-relay\n")
        .replace("Content-Length: 0\n\n", "Content-Length: 24\n\n")
        .replace('\n', "\r\n")
        + "Signal=5\r\nDuration=160\r\n";
    send_msg(&mut sw, t0, 5070, info.as_bytes());
    let out = drain(&mut sw);
    assert_eq!(responses(&out, 5070)[0].status, 200);
    assert!(media
        .log()
        .commands
        .iter()
        .any(|c| matches!(c, MediaCommand::SendDigit { leg: 1, digit: '5' })));
    assert_eq!(sw.call_summaries(t0).last().unwrap().digits, "5");
}

#[test]
fn blind_transfer_bridges_the_caller_to_the_target_and_releases_the_agent() {
    let t0 = Instant::now();
    let media = RecordedMedia::default();
    let mut sw = switch_with(t0, "", media.clone());
    let (inv, _) = answered_call(&mut sw, t0);
    // The agent (a local user) transfers the caller to an outside number.
    send(
        &mut sw,
        t0,
        5070,
        &from_callee(
            &inv,
            "REFER",
            10,
            "Refer-To: <sip:+15550100@switchboard.local>\n",
        ),
    );
    let out = drain(&mut sw);
    assert_eq!(responses(&out, 5070)[0].status, 202);
    let notify = requests(&out, 5070, Method::Notify);
    assert_eq!(&notify[0].body[..], b"SIP/2.0 100 Trying\r\n");
    let c_inv = requests(&out, 5090, Method::Invite)
        .pop()
        .expect("INVITE to the transfer target via the trunk");
    assert_eq!(c_inv.uri.user.as_deref(), Some("+15550100"));
    assert_eq!(
        first_pt_and_port(&c_inv.body),
        ("0".to_string(), 40006),
        "our offer on a new media leg"
    );
    // The target answers: it is bridged to the caller, who sees nothing.
    send_msg(
        &mut sw,
        t0,
        5090,
        &reply(&c_inv, 200, "c9", 5090, &sdp(9000, &[0], "sendrecv")),
    );
    let out = drain(&mut sw);
    assert_eq!(requests(&out, 5090, Method::Ack).len(), 1);
    assert!(
        requests(&out, 5080, Method::Invite).is_empty(),
        "no re-INVITE to the caller"
    );
    let notify = requests(&out, 5070, Method::Notify);
    assert_eq!(&notify[0].body[..], b"SIP/2.0 200 OK\r\n");
    assert!(notify[0]
        .headers
        .get(&HeaderName::Other("Subscription-State".into()))
        .unwrap()
        .starts_with("terminated"));
    assert_eq!(
        requests(&out, 5070, Method::Bye).len(),
        1,
        "the transferor is released"
    );
    let log = media.log();
    assert_eq!(bridges(&log), vec![(1, 2), (1, 3)]);
    assert!(log
        .commands
        .iter()
        .any(|c| matches!(c, MediaCommand::Release { leg: 2 })));
    // The caller hangs up: the BYE now reaches the new party.
    let tag = first_tag(&sw);
    send(
        &mut sw,
        t0,
        5080,
        &format!("BYE sip:switchboard@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKbye1\nFrom: \"Carol\" <sip:+15551234@carrier>;tag=c1\nTo: <sip:1001@127.0.0.1>;tag={}\nCall-ID: call-1001\nCSeq: 2 BYE\nContent-Length: 0\n\n", tag),
    );
    let out = drain(&mut sw);
    assert_eq!(responses(&out, 5080)[0].status, 200);
    assert_eq!(requests(&out, 5090, Method::Bye).len(), 1);
}

/// The tag the switch gave the caller's dialog (the only call).
fn first_tag(sw: &Switch) -> String {
    sw.calls.values().next().unwrap().a.local_tag.clone()
}

#[test]
fn a_trunk_caller_cannot_transfer_to_an_outside_number() {
    let t0 = Instant::now();
    let mut sw = switch(t0, "");
    answered_call(&mut sw, t0);
    let tag = first_tag(&sw);
    send(
        &mut sw,
        t0,
        5080,
        &format!("REFER sip:switchboard@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKref\nFrom: <sip:+15551234@carrier>;tag=c1\nTo: <sip:1001@127.0.0.1>;tag={}\nCall-ID: call-1001\nCSeq: 2 REFER\nRefer-To: <sip:+15550199@carrier>\nContact: <sip:carol@127.0.0.1:5080>\nContent-Length: 0\n\n", tag),
    );
    let out = drain(&mut sw);
    assert_eq!(
        responses(&out, 5080)[0].status,
        403,
        "no toll fraud through REFER"
    );
    assert!(requests(&out, 5090, Method::Invite).is_empty());
}

#[test]
fn failed_transfer_keeps_the_call_and_notifies_the_failure() {
    let t0 = Instant::now();
    let mut sw = switch(t0, "");
    let (inv, _) = answered_call(&mut sw, t0);
    send(
        &mut sw,
        t0,
        5070,
        &from_callee(
            &inv,
            "REFER",
            10,
            "Refer-To: <sip:+15550100@switchboard.local>\n",
        ),
    );
    let out = drain(&mut sw);
    let c_inv = requests(&out, 5090, Method::Invite).pop().unwrap();
    send_msg(&mut sw, t0, 5090, &reply(&c_inv, 486, "c9", 5090, ""));
    let out = drain(&mut sw);
    let notify = requests(&out, 5070, Method::Notify);
    assert_eq!(&notify[0].body[..], b"SIP/2.0 486 Busy Here\r\n");
    assert!(
        requests(&out, 5070, Method::Bye).is_empty(),
        "the agent stays connected"
    );
    assert_eq!(sw.stats().calls_active, 1);
}

#[test]
fn trunk_registration_answers_the_challenge_and_refreshes() {
    let t0 = Instant::now();
    let mut sw = switch(t0, EXTRA_TRUNK);
    let out = drain(&mut sw);
    assert!(out.is_empty(), "nothing before the first wake-up");
    assert_eq!(sw.poll_timeout(), Some(t0));
    sw.handle_timeout(t0);
    let out = drain(&mut sw);
    let reg = requests(&out, 5099, Method::Register)
        .pop()
        .expect("REGISTER to the carrier");
    assert_eq!(reg.to().unwrap().uri.user.as_deref(), Some("acct"));
    // The carrier challenges.
    let mut ch = response_to(&reg, 401, None, Some("x"));
    ch.headers.push(
        HeaderName::WwwAuthenticate,
        auth::challenge_header("carrier", "abc123", auth::Algorithm::Md5, None, false),
    );
    send_msg(&mut sw, t0, 5099, &ch.to_bytes());
    let out = drain(&mut sw);
    let reg2 = requests(&out, 5099, Method::Register)
        .pop()
        .expect("REGISTER with credentials");
    let creds = auth::parse_digest(reg2.headers.get(&HeaderName::Authorization).unwrap()).unwrap();
    assert_eq!(creds.username.as_deref(), Some("acct"));
    let ha1 = auth::ha1(auth::Algorithm::Md5, "acct", "carrier", "pw");
    let expected = auth::expected_response(
        auth::Algorithm::Md5,
        &ha1,
        "abc123",
        creds.nc.as_deref(),
        creds.cnonce.as_deref(),
        creds.qop.as_deref(),
        "REGISTER",
        creds.uri.as_deref().unwrap(),
    )
    .unwrap();
    assert_eq!(creds.response.as_deref(), Some(expected.as_str()));
    assert!(reg2.cseq().unwrap().seq > reg.cseq().unwrap().seq);
    let mut ok = response_to(&reg2, 200, None, Some("x"));
    ok.headers
        .push(HeaderName::Contact, "<sip:acct@127.0.0.1:5060>;expires=100");
    send_msg(&mut sw, t0, 5099, &ok.to_bytes());
    assert!(sw.trunk_registered("upstream", t0));
    // The refresh comes before the registration runs out.
    let at = next_register(&mut sw, t0 + Duration::from_secs(200)) - t0;
    assert!(
        at > Duration::from_secs(70) && at <= Duration::from_secs(80),
        "{at:?}"
    );
}

/// Steps through wake-ups until the switch sends a REGISTER to the carrier; returns when.
fn next_register(sw: &mut Switch, limit: Instant) -> Instant {
    while let Some(at) = sw.poll_timeout() {
        assert!(at <= limit, "no REGISTER before the limit");
        sw.handle_timeout(at);
        if !requests(&drain(sw), 5099, Method::Register).is_empty() {
            return at;
        }
    }
    panic!("the switch went idle without registering");
}

#[test]
fn trunk_registration_retries_after_refusal() {
    let t0 = Instant::now();
    let mut sw = switch(t0, EXTRA_TRUNK);
    sw.handle_timeout(t0);
    let reg = requests(&drain(&mut sw), 5099, Method::Register)
        .pop()
        .unwrap();
    send_msg(
        &mut sw,
        t0,
        5099,
        &response_to(&reg, 403, None, Some("x")).to_bytes(),
    );
    assert!(!sw.trunk_registered("upstream", t0));
    assert_eq!(
        next_register(&mut sw, t0 + Duration::from_secs(60)),
        t0 + Duration::from_secs(30)
    );
}

#[test]
fn contact_destination_handles_nat() {
    let src: SocketAddr = "203.0.113.5:40000".parse().unwrap();
    let c = Uri::parse("sip:1001@192.168.1.20:5060").unwrap();
    assert_eq!(
        contact_destination(&c, src, Transport::Udp),
        src,
        "private contact behind NAT"
    );
    let c = Uri::parse("sip:1001@203.0.113.5:5062").unwrap();
    assert_eq!(
        contact_destination(&c, src, Transport::Udp),
        "203.0.113.5:5062".parse().unwrap()
    );
    let c = Uri::parse("sip:1001@192.168.1.20:5060;transport=tcp").unwrap();
    assert_eq!(
        contact_destination(&c, src, Transport::Tcp),
        src,
        "NATed stream: the phone's own connection"
    );
    let c = Uri::parse("sip:1001@198.51.100.7").unwrap();
    assert_eq!(
        contact_destination(&c, src, Transport::Udp),
        "198.51.100.7:5060".parse().unwrap(),
        "public literal address: as written"
    );
    let c = Uri::parse("sip:1001@phone.example.com").unwrap();
    assert_eq!(contact_destination(&c, src, Transport::Udp), src);
    let c = Uri::parse("sip:1001@192.168.1.20:5060;transport=tcp").unwrap();
    assert_eq!(
        contact_destination(&c, src, Transport::Tcp),
        src,
        "NATed stream: the phone's own connection"
    );
    assert_eq!(
        contact_destination(&c, src, Transport::Tcp),
        src,
        "streams reuse the connection"
    );
}

#[test]
fn redaction_keeps_three_digits() {
    assert_eq!(redact("+15551234"), "***234");
    assert_eq!(redact("12"), "***");
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    const TEMPLATES: &[&str] = &[
        "INVITE sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKp1\r\nFrom: <sip:+1555@c>;tag=c1\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: fz\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:5080>\r\nContent-Length: 3\r\n\r\nv=0",
        "CANCEL sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKp1\r\nFrom: <sip:+1555@c>;tag=c1\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: fz\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
        "BYE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKp2\r\nFrom: <sip:+1555@c>;tag=c1\r\nTo: <sip:1001@127.0.0.1>;tag=zz\r\nCall-ID: fz\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        "ACK sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKp3\r\nFrom: <sip:+1555@c>;tag=c1\r\nTo: <sip:1001@127.0.0.1>;tag=zz\r\nCall-ID: fz\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        "REGISTER sip:switchboard.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKp4\r\nFrom: <sip:1001@switchboard.local>;tag=r\r\nTo: <sip:1001@switchboard.local>\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\nContact: *\r\nAuthorization: Digest username=\"1001\", realm=\"switchboard.local\", nonce=\"00\", uri=\"sip:x\", response=\"00\"\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n",
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp5\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: fz\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Whatever a peer sends, in whatever order, the switch neither panics nor leaks calls
        /// past their timers.
        #[test]
        fn random_traffic_never_panics(ops in proptest::collection::vec((0usize..6, any::<u16>(), any::<u8>(), 0u64..3000, 0u16..4), 1..60)) {
            let t0 = Instant::now();
            let mut sw = switch(t0, EXTRA_TRUNK);
            let mut now = t0;
            for (tpl, pos, byte, dt, port) in ops {
                now += Duration::from_millis(dt);
                let mut m = TEMPLATES[tpl].as_bytes().to_vec();
                if byte % 3 != 0 {
                    let p = pos as usize % m.len();
                    m[p] = byte;
                }
                sw.handle_message(now, udp(5070 + port * 10), &m);
                while let Some(at) = sw.poll_timeout() {
                    if at > now { break; }
                    sw.handle_timeout(now);
                }
                while sw.poll_transmit().is_some() {}
            }
            // Let every timer run out: nothing stays.
            let end = now + Duration::from_secs(4000);
            let mut steps = 0;
            while let Some(at) = sw.poll_timeout() {
                if at > end { break; }
                sw.handle_timeout(at);
                while sw.poll_transmit().is_some() {}
                steps += 1;
                prop_assert!(steps < 100_000, "livelock");
            }
            prop_assert_eq!(sw.stats().calls_active, 0);
        }
    }
}
