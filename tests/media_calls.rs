//! Media through a real `switchboard` process, checked by content.
//!
//! SIPp does the signalling on both sides (caller from the demo trunk, callee registered
//! as 1001), but the SDP each sends names an RTP socket owned by this test (SIPp's
//! `-key rtp_port`), so the test plays known tones into each leg and measures the frequency
//! and level of what comes out of the other: through the relay fast path, through
//! transcoding (PCMU↔PCMA, G.711↔Opus), into a recording, back from the echo test. DTMF
//! comes from SIPp's own RFC 4733 captures and a SIP INFO.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use switchboard::media::{g711, rtp, tone, wav};

const USER: &str = "1001";
const PASS: &str = "secret1001";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Codec {
    Pcmu,
    Pcma,
    Opus,
}

impl Codec {
    fn pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::Opus => 111,
        }
    }
    fn rtpmap(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU/8000",
            Codec::Pcma => "PCMA/8000",
            Codec::Opus => "opus/48000/2",
        }
    }
}

/// One end of a call's media, owned by the test: sends a tone, keeps what it hears.
struct RtpEnd {
    sock: UdpSocket,
    codec: Codec,
    gen: tone::ToneGenerator,
    enc: Option<opus::Encoder>,
    dec: Option<opus::Decoder>,
    seq: u16,
    ts: u32,
    heard: Vec<i16>,
    from: Option<SocketAddr>,
}

impl RtpEnd {
    fn new(codec: Codec, freq: f32) -> RtpEnd {
        let sock = UdpSocket::bind((LOCALHOST, 0)).unwrap();
        sock.set_nonblocking(true).unwrap();
        let rate = if codec == Codec::Opus { 48000 } else { 8000 };
        RtpEnd {
            sock,
            codec,
            gen: tone::ToneGenerator::single(rate, freq, -12.0).unwrap(),
            enc: (codec == Codec::Opus).then(|| {
                opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip).unwrap()
            }),
            dec: (codec == Codec::Opus)
                .then(|| opus::Decoder::new(8000, opus::Channels::Mono).unwrap()),
            seq: 1,
            ts: 0,
            heard: vec![],
            from: None,
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    fn send_frame(&mut self, to: SocketAddr) {
        let mut payload = vec![0u8; 400];
        let n = match self.codec {
            Codec::Opus => {
                let mut pcm = vec![0i16; 960];
                self.gen.fill(&mut pcm);
                self.enc
                    .as_mut()
                    .unwrap()
                    .encode(&pcm, &mut payload)
                    .unwrap()
            }
            c => {
                let mut pcm = vec![0i16; 160];
                self.gen.fill(&mut pcm);
                if c == Codec::Pcmu {
                    g711::pcm_to_ulaw(&pcm, &mut payload[..160]);
                } else {
                    g711::pcm_to_alaw(&pcm, &mut payload[..160]);
                }
                160
            }
        };
        let h = rtp::RtpHeader {
            marker: self.seq == 1,
            payload_type: self.codec.pt(),
            sequence: self.seq,
            timestamp: self.ts,
            ssrc: 0x5eed + self.port() as u32,
            csrc_count: 0,
            has_extension: false,
            padding: false,
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = self
            .ts
            .wrapping_add(if self.codec == Codec::Opus { 960 } else { 160 });
        let mut pkt = vec![0u8; 12 + n];
        rtp::write_header(&h, &mut pkt[..12]);
        pkt[12..].copy_from_slice(&payload[..n]);
        let _ = self.sock.send_to(&pkt, to);
    }

    fn receive(&mut self) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            let Ok((h, range)) = rtp::parse(&buf[..n]) else {
                continue;
            };
            if h.payload_type != self.codec.pt() {
                continue;
            }
            self.from = Some(from);
            let payload = &buf[range];
            match self.codec {
                Codec::Pcmu => {
                    let mut pcm = vec![0i16; payload.len()];
                    g711::ulaw_to_pcm(payload, &mut pcm);
                    self.heard.extend(pcm);
                }
                Codec::Pcma => {
                    let mut pcm = vec![0i16; payload.len()];
                    g711::alaw_to_pcm(payload, &mut pcm);
                    self.heard.extend(pcm);
                }
                Codec::Opus => {
                    let mut pcm = vec![0i16; 960];
                    if let Ok(n) = self.dec.as_mut().unwrap().decode(payload, &mut pcm, false) {
                        self.heard.extend(&pcm[..n]);
                    }
                }
            }
        }
    }

    /// The dominant frequency and level of what it heard (the first half second skipped).
    fn tone_heard(&self) -> Option<(f32, f32)> {
        if self.heard.len() < 8000 {
            return None;
        }
        tone::dominant_frequency(&self.heard[4000..], 8000)
    }
}

/// Streams both ends for `secs` in real time (one frame every 20 ms).
fn stream(ends: &mut [(&mut RtpEnd, SocketAddr)], secs: f32) {
    let start = Instant::now();
    let frames = (secs * 50.0) as u32;
    for i in 0..frames {
        for (end, to) in ends.iter_mut() {
            end.send_frame(*to);
            end.receive();
        }
        let due = start + Duration::from_millis(20 * (i as u64 + 1));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    for (end, _) in ends.iter_mut() {
        end.receive();
    }
}

/// Waits (bounded) for an answered call in the switch's API; returns it as JSON.
fn answered_call(sw: &Switchboard) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((200, body)) = http_get(sw.http_port, "/api/v1/calls") {
            let calls: serde_json::Value = serde_json::from_str(&body).unwrap();
            if let Some(c) = calls
                .as_array()
                .and_then(|a| a.iter().rev().find(|c| c["state"] == "answered"))
            {
                return c.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no answered call; stderr:\n{}",
            sw.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn addr(v: &serde_json::Value) -> SocketAddr {
    v.as_str().unwrap().parse().unwrap()
}

fn last_call(sw: &Switchboard) -> serde_json::Value {
    let (_, body) = http_get(sw.http_port, "/api/v1/calls").unwrap();
    let calls: serde_json::Value = serde_json::from_str(&body).unwrap();
    calls.as_array().unwrap().last().cloned().unwrap()
}

/// A call from the trunk to 1001 with the given codecs; the caller sends `f_caller` Hz,
/// the callee `f_callee` Hz; returns (what the caller heard, what the callee heard, the
/// call's API record).
fn tone_call(
    sw: &Switchboard,
    dir: &TempDir,
    caller_codec: Codec,
    callee_codec: Codec,
    f_caller: f32,
    f_callee: f32,
) -> (RtpEnd, RtpEnd, serde_json::Value) {
    let mut caller = RtpEnd::new(caller_codec, f_caller);
    let mut callee = RtpEnd::new(callee_codec, f_callee);
    let uas = start_uas(
        dir,
        "uas",
        "uas_media.xml",
        1,
        &[
            "-key",
            "rtp_port",
            &callee.port().to_string(),
            "-key",
            "pt",
            &callee_codec.pt().to_string(),
            "-key",
            "rtpmap",
            callee_codec.rtpmap(),
        ],
        Transport::Udp,
    );
    register(sw, dir, USER, PASS, uas.port);
    let uac = uac("uac", "uac_media.xml", sw, USER, 1)
        .args([
            "-key",
            "rtp_port",
            &caller.port().to_string(),
            "-key",
            "pt",
            &caller_codec.pt().to_string(),
            "-key",
            "rtpmap",
            caller_codec.rtpmap(),
        ])
        .args(["-d", "4000"])
        .spawn(dir);
    let call = answered_call(sw);
    let (a, b) = (
        addr(&call["media"]["caller"]),
        addr(&call["media"]["callee"]),
    );
    stream(&mut [(&mut caller, a), (&mut callee, b)], 2.5);
    uac.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    uas.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    (caller, callee, call)
}

fn assert_tone(end: &RtpEnd, freq: f32, who: &str) {
    let (f, level) = end
        .tone_heard()
        .unwrap_or_else(|| panic!("{who} heard only {} samples", end.heard.len()));
    assert!(
        (f - freq).abs() < 15.0,
        "{who} heard {f} Hz, expected {freq} Hz"
    );
    assert!(
        level > -22.0 && level < -6.0,
        "{who} heard the tone at {level} dBFS"
    );
    assert!(end.from.is_some());
}

#[test]
fn same_codec_is_relayed_both_ways() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("media-relay");
    let (caller, callee, call) = tone_call(&sw, &dir, Codec::Pcmu, Codec::Pcmu, 440.0, 1000.0);
    assert_eq!(call["codecs"]["caller"], "PCMU");
    assert_eq!(call["codecs"]["callee"], "PCMU");
    assert_tone(&callee, 440.0, "callee");
    assert_tone(&caller, 1000.0, "caller");
    // The engine's counters reach /metrics (published about once a second).
    let relayed = sw.wait_metric(
        "switchboard_rtp_packets_relayed_total",
        Duration::from_secs(5),
        |v| v >= 200.0,
    );
    assert!(
        relayed.is_some_and(|v| v >= 200.0),
        "relayed packets in /metrics: {relayed:?}\n{}",
        sw.metrics()
    );
    assert_eq!(
        sw.metric("switchboard_rtp_dropped_stranger_total"),
        Some(0.0)
    );
    // Where the kernel has io_uring, the default (`media.io: auto`) must have taken it, not
    // fallen back to epoll unnoticed; elsewhere it must have fallen back.
    let want = if kernel_offers_io_uring() { 1.0 } else { 0.0 };
    assert_eq!(sw.metric("switchboard_media_io_uring"), Some(want));
}

/// `media.io: epoll` (for kernels or sandboxes without io_uring) carries the same audio
/// through relay and transcoding.
#[test]
fn the_epoll_path_relays_and_transcodes_too() {
    let _serial = serial();
    let dir = TempDir::new("media-epoll");
    let path = demo_profile_with(
        &dir,
        "epoll.yaml",
        "rtp_timeout: 60s }",
        "rtp_timeout: 60s, io: epoll }",
    );
    let sw = Switchboard::start_with(&path);
    assert_eq!(sw.metric("switchboard_media_io_uring"), Some(0.0));
    let (caller, callee, _) = tone_call(&sw, &dir, Codec::Pcmu, Codec::Pcmu, 440.0, 1000.0);
    assert_tone(&callee, 440.0, "callee (relay, epoll)");
    assert_tone(&caller, 1000.0, "caller (relay, epoll)");
    let (caller, callee, _) = tone_call(&sw, &dir, Codec::Pcma, Codec::Opus, 440.0, 1000.0);
    assert_tone(&callee, 440.0, "callee (Opus, epoll)");
    assert_tone(&caller, 1000.0, "caller (PCMA, epoll)");
}

#[test]
fn pcmu_and_pcma_are_transcoded_both_ways() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("media-g711");
    let (caller, callee, call) = tone_call(&sw, &dir, Codec::Pcmu, Codec::Pcma, 440.0, 1000.0);
    assert_eq!(call["codecs"]["callee"], "PCMA");
    assert_tone(&callee, 440.0, "callee");
    assert_tone(&caller, 1000.0, "caller");
}

#[test]
fn g711_and_opus_are_transcoded_both_ways() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("media-opus");
    let (caller, callee, call) = tone_call(&sw, &dir, Codec::Pcma, Codec::Opus, 440.0, 1000.0);
    assert_eq!(call["codecs"]["caller"], "PCMA");
    assert_eq!(call["codecs"]["callee"], "opus");
    assert_tone(&callee, 440.0, "callee (Opus)");
    assert_tone(&caller, 1000.0, "caller (PCMA)");
}

#[test]
fn a_recording_has_the_caller_left_and_the_callee_right() {
    let _serial = serial();
    let dir = TempDir::new("media-rec");
    let path = demo_profile_with(
        &dir,
        "recording.yaml",
        r#"- { range: "1001-1010", to: user }"#,
        r#"- { range: "1001-1010", to: user, record: true }"#,
    );
    let sw = Switchboard::start_with(&path);
    tone_call(&sw, &dir, Codec::Pcmu, Codec::Pcmu, 440.0, 1000.0);
    // The caller hung up; the file is complete once the call is gone.
    sw.wait_metric("switchboard_calls_active", Duration::from_secs(10), |v| {
        v == 0.0
    });
    let rec = last_call(&sw)["recording"]
        .as_str()
        .expect("a recording path")
        .to_string();
    let mut w = None;
    for _ in 0..50 {
        if let Ok(bytes) = std::fs::read(&rec) {
            if let Ok(parsed) = wav::Wav::from_bytes(&bytes) {
                if parsed.frames() > 8000 {
                    w = Some(parsed);
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let w = w.unwrap_or_else(|| panic!("no readable recording at {rec}"));
    assert_eq!((w.rate, w.channels), (8000, 2));
    let left: Vec<i16> = w.samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = w.samples.iter().skip(1).step_by(2).copied().collect();
    let (fl, _) = tone::dominant_frequency(&left[4000..], 8000).expect("a tone on the left");
    let (fr, _) = tone::dominant_frequency(&right[4000..], 8000).expect("a tone on the right");
    assert!(
        (fl - 440.0).abs() < 15.0,
        "left channel (caller) is {fl} Hz"
    );
    assert!(
        (fr - 1000.0).abs() < 15.0,
        "right channel (callee) is {fr} Hz"
    );
}

#[test]
fn the_echo_test_plays_the_caller_back() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("media-echo");
    let mut caller = RtpEnd::new(Codec::Pcma, 800.0);
    let uac = uac("uac-echo", "uac_media.xml", &sw, "600", 1)
        .args([
            "-key",
            "rtp_port",
            &caller.port().to_string(),
            "-key",
            "pt",
            "8",
            "-key",
            "rtpmap",
            "PCMA/8000",
        ])
        .args(["-d", "4000"])
        .spawn(&dir);
    let call = answered_call(&sw);
    stream(&mut [(&mut caller, addr(&call["media"]["caller"]))], 2.5);
    uac.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    assert_tone(&caller, 800.0, "caller of 600");
}

#[test]
fn dtmf_from_rfc4733_captures_and_sip_info_is_reported_in_order() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("media-dtmf");
    let uas = start_uas(&dir, "uas", "uas_answer.xml", 1, &[], Transport::Udp);
    register(&sw, &dir, USER, PASS, uas.port);
    let run = uac("uac-dtmf", "uac_dtmf.xml", &sw, USER, 1).run(&dir);
    run.assert_ok(Some(1));
    uas.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    sw.wait_metric("switchboard_calls_active", Duration::from_secs(10), |v| {
        v == 0.0
    });
    assert_eq!(
        last_call(&sw)["digits"],
        "1235",
        "digits seen by the switch"
    );
}

#[test]
fn a_call_whose_media_stopped_is_ended() {
    let _serial = serial();
    let dir = TempDir::new("media-timeout");
    let path = demo_profile_with(&dir, "timeout.yaml", "rtp_timeout: 60s", "rtp_timeout: 2s");
    let sw = Switchboard::start_with(&path);
    // Neither side sends RTP: after 2 s the switch hangs up both (both scenarios expect BYE).
    let uas = start_uas(&dir, "uas", "uas_answer.xml", 1, &[], Transport::Udp);
    register(&sw, &dir, USER, PASS, uas.port);
    let started = Instant::now();
    uac("uac-dead", "uac_callee_hangs_up.xml", &sw, USER, 1)
        .run(&dir)
        .assert_ok(Some(1));
    uas.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the call lasted {:?}",
        started.elapsed()
    );
}

/// The RTP payloads in a pcap of UDP/IPv4 over Ethernet (SIPp's captures).
fn pcap_payloads(path: &str) -> Vec<Vec<u8>> {
    let d = std::fs::read(path).unwrap();
    let mut out = vec![];
    let mut off = 24;
    while off + 16 <= d.len() {
        let incl = u32::from_le_bytes(d[off + 8..off + 12].try_into().unwrap()) as usize;
        let pkt = &d[off + 16..(off + 16 + incl).min(d.len())];
        off += 16 + incl;
        // Ethernet (14) + IPv4 (IHL) + UDP (8), then RTP.
        if pkt.len() < 14 + 20 + 8 + 12 {
            continue;
        }
        let ihl = (pkt[14] & 0x0f) as usize * 4;
        if let Ok((_, range)) = rtp::parse(&pkt[14 + ihl + 8..]) {
            out.push(pkt[14 + ihl + 8..][range].to_vec());
        }
    }
    out
}

#[test]
fn sipp_streams_its_g711_capture_through_to_the_callee_unchanged() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("media-pcap");
    let mut callee = RtpEnd::new(Codec::Pcma, 1000.0);
    let uas = start_uas(
        &dir,
        "uas",
        "uas_media.xml",
        1,
        &[
            "-key",
            "rtp_port",
            &callee.port().to_string(),
            "-key",
            "pt",
            "8",
            "-key",
            "rtpmap",
            "PCMA/8000",
        ],
        Transport::Udp,
    );
    register(&sw, &dir, USER, PASS, uas.port);
    let uac = uac("uac-pcap", "uac_pcap.xml", &sw, USER, 1).spawn(&dir);
    let call = answered_call(&sw);
    assert_eq!(call["codecs"]["caller"], "PCMA");
    // Collect what reaches the callee's socket while SIPp streams (7 s).
    let mut got: Vec<Vec<u8>> = vec![];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match callee.sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                if let Ok((h, range)) = rtp::parse(&buf[..n]) {
                    if h.payload_type == 8 {
                        got.push(buf[range].to_vec());
                    }
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    uac.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    uas.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    let sent = pcap_payloads("/usr/share/sip-tester/g711a.pcap");
    assert!(
        sent.len() > 200,
        "the capture has {} RTP packets",
        sent.len()
    );
    // Same codec on both legs: relayed without decoding, so the bytes arrive as captured.
    let arrived = sent.iter().filter(|p| got.contains(p)).count();
    assert!(
        arrived * 100 >= sent.len() * 99,
        "{arrived} of {} captured payloads arrived unchanged",
        sent.len()
    );
    let mut pcm = vec![];
    for p in &got {
        let mut f = vec![0i16; p.len()];
        g711::alaw_to_pcm(p, &mut f);
        pcm.extend(f);
    }
    assert!(
        tone::level_dbfs(&pcm) > -40.0,
        "the capture's audio is not silence"
    );
    callee.receive();
}
