//! The engine on simulated time, checked by content: tones in, frequencies and levels out.

use super::*;
use crate::media::tone;

const CALLER: &str = "127.0.0.1:6000";
const CALLEE: &str = "127.0.0.1:7000";

#[derive(Default)]
struct Sink {
    sent: Vec<(LegId, bool, SocketAddr, Vec<u8>)>,
    events: Vec<MediaEvent>,
    recorded: Vec<i16>,
}

impl MediaSink for Sink {
    fn send(&mut self, leg: LegId, rtcp: bool, to: SocketAddr, data: &[u8]) {
        self.sent.push((leg, rtcp, to, data.to_vec()));
    }
    fn event(&mut self, event: MediaEvent) {
        self.events.push(event);
    }
    fn record(&mut self, _rec: RecordingId, stereo: &[i16]) {
        self.recorded.extend_from_slice(stereo);
    }
}

fn spec(codec: Codec) -> CodecSpec {
    match codec {
        Codec::Pcmu => CodecSpec {
            codec,
            pt: 0,
            clock_rate: 8000,
        },
        Codec::Pcma => CodecSpec {
            codec,
            pt: 8,
            clock_rate: 8000,
        },
        Codec::Opus => CodecSpec {
            codec,
            pt: 111,
            clock_rate: 48000,
        },
    }
}

fn params(remote: &str, codec: Codec, te: bool) -> LegParams {
    let r: SocketAddr = remote.parse().unwrap();
    let clock = spec(codec).clock_rate;
    LegParams {
        remote: Some(r),
        remote_rtcp: Some(SocketAddr::new(r.ip(), r.port() + 1)),
        codec: spec(codec),
        telephone_event: te.then_some((101, clock)),
        send: true,
        recv: true,
        ptime_ms: 20,
    }
}

/// Two legs (1: caller side, 2: callee side), configured and bridged.
fn bridged(t0: Instant, a: Codec, b: Codec, te: bool) -> (MediaEngine, Sink) {
    let mut e = MediaEngine::new(t0, Duration::from_secs(30), 7);
    let mut sink = Sink::default();
    e.command(
        t0,
        MediaCommand::AddLeg {
            leg: 1,
            local: "127.0.0.1:40002".parse().unwrap(),
        },
        &mut sink,
    );
    e.command(
        t0,
        MediaCommand::AddLeg {
            leg: 2,
            local: "127.0.0.1:40004".parse().unwrap(),
        },
        &mut sink,
    );
    e.command(
        t0,
        MediaCommand::Configure {
            leg: 1,
            params: params(CALLER, a, te),
        },
        &mut sink,
    );
    e.command(
        t0,
        MediaCommand::Configure {
            leg: 2,
            params: params(CALLEE, b, te),
        },
        &mut sink,
    );
    e.command(t0, MediaCommand::Bridge { a: 1, b: 2 }, &mut sink);
    (e, sink)
}

/// A peer sending a tone in 20 ms RTP packets with its own codec.
struct TonePeer {
    codec: Codec,
    gen: tone::ToneGenerator,
    opus: Option<opus::Encoder>,
    seq: u16,
    ts: u32,
}

impl TonePeer {
    fn new(codec: Codec, freq: f32) -> TonePeer {
        let rate = if codec == Codec::Opus { 48000 } else { 8000 };
        let opus = (codec == Codec::Opus).then(|| {
            opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip).unwrap()
        });
        TonePeer {
            codec,
            gen: tone::ToneGenerator::single(rate, freq, -12.0).unwrap(),
            opus,
            seq: 100,
            ts: 1000,
        }
    }
    fn packet(&mut self) -> Vec<u8> {
        let mut payload = vec![0u8; 400];
        let n = match self.codec {
            Codec::Opus => {
                let mut pcm = vec![0i16; 960];
                self.gen.fill(&mut pcm);
                self.opus
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
            marker: false,
            payload_type: spec(self.codec).pt,
            sequence: self.seq,
            timestamp: self.ts,
            ssrc: 0xabc,
            csrc_count: 0,
            has_extension: false,
            padding: false,
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(spec(self.codec).clock_rate / 50);
        let mut out = vec![0u8; 12 + n];
        rtp::write_header(&h, &mut out[..12]);
        out[12..].copy_from_slice(&payload[..n]);
        out
    }
}

/// Runs `frames` × 20 ms with the peer sending to leg `into` from `from`.
fn run(
    e: &mut MediaEngine,
    sink: &mut Sink,
    t0: Instant,
    peer: &mut TonePeer,
    into: LegId,
    from: &str,
    frames: u32,
) {
    let from: SocketAddr = from.parse().unwrap();
    for i in 0..frames {
        let now = t0 + Duration::from_millis(20 * i as u64 + 3);
        let p = peer.packet();
        e.handle_rtp(now, into, from, &p, sink);
        let tick = t0 + Duration::from_millis(20 * (i as u64 + 1));
        e.handle_tick(tick, sink);
    }
}

/// Decodes what leg `leg` sent to `to` (RTP only) into 8 kHz PCM.
fn heard(sink: &Sink, leg: LegId, to: &str, codec: Codec) -> Vec<i16> {
    let to: SocketAddr = to.parse().unwrap();
    let mut dec = super::super::codec::Decoder::new(codec, 8000).unwrap();
    let mut pcm = vec![];
    let mut frame = vec![];
    for (l, rtcp, dest, data) in &sink.sent {
        if *l != leg || *rtcp || *dest != to {
            continue;
        }
        let (h, range) = rtp::parse(data).unwrap();
        if h.payload_type != spec(codec).pt {
            continue;
        }
        dec.decode(&data[range], &mut frame, 160);
        pcm.extend_from_slice(&frame);
    }
    pcm
}

fn assert_tone(pcm: &[i16], freq: f32) {
    assert!(pcm.len() >= 8000, "only {} samples arrived", pcm.len());
    // Skip the start (jitter buffer, codec warm-up).
    let tail = &pcm[pcm.len() / 4..];
    let (f, level) = tone::dominant_frequency(tail, 8000).expect("a tone");
    assert!((f - freq).abs() < 15.0, "heard {f} Hz, sent {freq} Hz");
    assert!(level > -20.0 && level < -8.0, "level {level} dBFS");
}

#[test]
fn same_codec_is_relayed_without_decoding_both_ways() {
    let t0 = Instant::now();
    let (mut e, mut sink) = bridged(t0, Codec::Pcmu, Codec::Pcmu, true);
    run(
        &mut e,
        &mut sink,
        t0,
        &mut TonePeer::new(Codec::Pcmu, 440.0),
        1,
        CALLER,
        100,
    );
    run(
        &mut e,
        &mut sink,
        t0 + Duration::from_secs(2),
        &mut TonePeer::new(Codec::Pcmu, 1000.0),
        2,
        CALLEE,
        100,
    );
    assert_tone(&heard(&sink, 2, CALLEE, Codec::Pcmu), 440.0);
    assert_tone(&heard(&sink, 1, CALLER, Codec::Pcmu), 1000.0);
    assert_eq!(e.stats().packets_transcoded, 0);
    assert_eq!(e.stats().packets_relayed, 200);
    // Relayed legs have nothing to do per tick: visited once a second, not 50 times.
    assert!(
        e.stats().legs_ticked <= 2 * 5,
        "{} leg visits in 200 ticks",
        e.stats().legs_ticked
    );
    // Our own SSRC and continuous sequence numbers on the way out.
    let seqs: Vec<u16> = sink
        .sent
        .iter()
        .filter(|s| s.0 == 2 && !s.1)
        .map(|s| rtp::parse(&s.3).unwrap().0.sequence)
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    assert!(sink
        .sent
        .iter()
        .filter(|s| !s.1)
        .all(|s| rtp::parse(&s.3).unwrap().0.ssrc != 0xabc));
}

#[test]
fn pcmu_to_pcma_is_transcoded_both_ways() {
    let t0 = Instant::now();
    let (mut e, mut sink) = bridged(t0, Codec::Pcmu, Codec::Pcma, true);
    run(
        &mut e,
        &mut sink,
        t0,
        &mut TonePeer::new(Codec::Pcmu, 440.0),
        1,
        CALLER,
        100,
    );
    run(
        &mut e,
        &mut sink,
        t0 + Duration::from_secs(2),
        &mut TonePeer::new(Codec::Pcma, 1000.0),
        2,
        CALLEE,
        100,
    );
    assert_tone(&heard(&sink, 2, CALLEE, Codec::Pcma), 440.0);
    assert_tone(&heard(&sink, 1, CALLER, Codec::Pcmu), 1000.0);
    assert!(e.stats().packets_transcoded >= 190);
    // Transcoded legs are decoded and encoded on every tick.
    assert!(e.stats().legs_ticked >= 2 * 190);
}

#[test]
fn g711_to_opus_is_transcoded_both_ways() {
    let t0 = Instant::now();
    let (mut e, mut sink) = bridged(t0, Codec::Pcmu, Codec::Opus, false);
    run(
        &mut e,
        &mut sink,
        t0,
        &mut TonePeer::new(Codec::Pcmu, 440.0),
        1,
        CALLER,
        100,
    );
    run(
        &mut e,
        &mut sink,
        t0 + Duration::from_secs(2),
        &mut TonePeer::new(Codec::Opus, 1000.0),
        2,
        CALLEE,
        100,
    );
    assert_tone(&heard(&sink, 2, CALLEE, Codec::Opus), 440.0);
    assert_tone(&heard(&sink, 1, CALLER, Codec::Pcmu), 1000.0);
}

#[test]
fn strangers_are_not_played_into_a_call() {
    let t0 = Instant::now();
    let (mut e, mut sink) = bridged(t0, Codec::Pcmu, Codec::Pcmu, false);
    run(
        &mut e,
        &mut sink,
        t0,
        &mut TonePeer::new(Codec::Pcmu, 440.0),
        1,
        CALLER,
        10,
    );
    let before = sink.sent.len();
    // Same IP, other port: not the latched source.
    run(
        &mut e,
        &mut sink,
        t0 + Duration::from_secs(1),
        &mut TonePeer::new(Codec::Pcmu, 440.0),
        1,
        "127.0.0.1:6666",
        10,
    );
    assert_eq!(sink.sent.iter().skip(before).filter(|s| !s.1).count(), 0);
    assert_eq!(e.stats().packets_dropped_stranger, 10);
}

#[test]
fn rfc4733_digits_are_reported_once_and_relayed() {
    let t0 = Instant::now();
    let (mut e, mut sink) = bridged(t0, Codec::Pcmu, Codec::Pcmu, true);
    let from: SocketAddr = CALLER.parse().unwrap();
    let mut seq = 1u16;
    for (i, digit) in ['1', '2', '#'].into_iter().enumerate() {
        let ts = 8000 * (i as u32 + 1);
        for pk in super::super::dtmf::EventSender::new(8000, 20)
            .unwrap()
            .packets(digit, ts, 100)
            .unwrap()
        {
            let (payload, marker) = (pk.payload, pk.marker);
            let h = rtp::RtpHeader {
                marker,
                payload_type: 101,
                sequence: seq,
                timestamp: pk.timestamp,
                ssrc: 9,
                csrc_count: 0,
                has_extension: false,
                padding: false,
            };
            seq += 1;
            let mut p = vec![0u8; 12 + payload.len()];
            rtp::write_header(&h, &mut p[..12]);
            p[12..].copy_from_slice(&payload);
            e.handle_rtp(
                t0 + Duration::from_millis(seq as u64 * 20),
                1,
                from,
                &p,
                &mut sink,
            );
        }
    }
    let digits: String = sink
        .events
        .iter()
        .filter_map(|ev| {
            if let MediaEvent::Dtmf {
                digit,
                inband: false,
                ..
            } = ev
            {
                Some(*digit)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(digits, "12#");
    assert!(sink
        .sent
        .iter()
        .filter(|s| s.0 == 2 && !s.1)
        .all(|s| rtp::parse(&s.3).unwrap().0.payload_type == 101));
}

#[test]
fn inband_dtmf_is_detected_on_g711_without_telephone_event() {
    let t0 = Instant::now();
    let (mut e, mut sink) = bridged(t0, Codec::Pcmu, Codec::Pcmu, false);
    let from: SocketAddr = CALLER.parse().unwrap();
    let mut gen = tone::ToneGenerator::dual(8000, 770.0, 1336.0, -10.0).unwrap(); // '5'
    for i in 0..30u32 {
        let mut pcm = vec![0i16; 160];
        if (5..10).contains(&i) {
            gen.fill(&mut pcm);
        }
        let mut payload = vec![0u8; 160];
        g711::pcm_to_ulaw(&pcm, &mut payload);
        let h = rtp::RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: i as u16,
            timestamp: i * 160,
            ssrc: 5,
            csrc_count: 0,
            has_extension: false,
            padding: false,
        };
        let mut p = vec![0u8; 172];
        rtp::write_header(&h, &mut p[..12]);
        p[12..].copy_from_slice(&payload);
        e.handle_rtp(
            t0 + Duration::from_millis(i as u64 * 20),
            1,
            from,
            &p,
            &mut sink,
        );
    }
    let digits: Vec<char> = sink
        .events
        .iter()
        .filter_map(|ev| {
            if let MediaEvent::Dtmf {
                digit,
                inband: true,
                ..
            } = ev
            {
                Some(*digit)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(digits, vec!['5']);
}

#[test]
fn echo_returns_the_callers_audio() {
    let t0 = Instant::now();
    let mut e = MediaEngine::new(t0, Duration::from_secs(30), 1);
    let mut sink = Sink::default();
    e.command(
        t0,
        MediaCommand::AddLeg {
            leg: 1,
            local: "127.0.0.1:40002".parse().unwrap(),
        },
        &mut sink,
    );
    e.command(
        t0,
        MediaCommand::Configure {
            leg: 1,
            params: params(CALLER, Codec::Pcma, false),
        },
        &mut sink,
    );
    e.command(t0, MediaCommand::Echo { leg: 1 }, &mut sink);
    run(
        &mut e,
        &mut sink,
        t0,
        &mut TonePeer::new(Codec::Pcma, 800.0),
        1,
        CALLER,
        100,
    );
    assert_tone(&heard(&sink, 1, CALLER, Codec::Pcma), 800.0);
}

#[test]
fn recording_puts_the_caller_left_and_the_callee_right() {
    let t0 = Instant::now();
    let (mut e, mut sink) = bridged(t0, Codec::Pcmu, Codec::Pcmu, false);
    e.command(
        t0,
        MediaCommand::Record {
            rec: 1,
            left: 1,
            right: 2,
        },
        &mut sink,
    );
    let mut caller = TonePeer::new(Codec::Pcmu, 440.0);
    let mut callee = TonePeer::new(Codec::Pcmu, 1000.0);
    let (a, b): (SocketAddr, SocketAddr) = (CALLER.parse().unwrap(), CALLEE.parse().unwrap());
    for i in 0..100u64 {
        let now = t0 + Duration::from_millis(20 * i + 3);
        e.handle_rtp(now, 1, a, &caller.packet(), &mut sink);
        e.handle_rtp(now, 2, b, &callee.packet(), &mut sink);
        e.handle_tick(t0 + Duration::from_millis(20 * (i + 1)), &mut sink);
    }
    e.command(
        t0 + Duration::from_secs(3),
        MediaCommand::Release { leg: 1 },
        &mut sink,
    );
    e.command(
        t0 + Duration::from_secs(3),
        MediaCommand::Release { leg: 2 },
        &mut sink,
    );
    assert!(sink
        .events
        .contains(&MediaEvent::RecordingStopped { rec: 1 }));
    let left: Vec<i16> = sink.recorded.iter().step_by(2).copied().collect();
    let right: Vec<i16> = sink.recorded.iter().skip(1).step_by(2).copied().collect();
    assert_tone(&left, 440.0);
    assert_tone(&right, 1000.0);
}

#[test]
fn a_silent_leg_is_reported_inactive() {
    let t0 = Instant::now();
    let mut e = MediaEngine::new(t0, Duration::from_secs(2), 1);
    let mut sink = Sink::default();
    e.command(
        t0,
        MediaCommand::AddLeg {
            leg: 1,
            local: "127.0.0.1:40002".parse().unwrap(),
        },
        &mut sink,
    );
    e.command(
        t0,
        MediaCommand::Configure {
            leg: 1,
            params: params(CALLER, Codec::Pcmu, false),
        },
        &mut sink,
    );
    let mut now = t0;
    while now < t0 + Duration::from_secs(3) {
        now = e.poll_timeout().unwrap();
        e.handle_tick(now, &mut sink);
    }
    assert_eq!(
        sink.events
            .iter()
            .filter(|ev| matches!(ev, MediaEvent::Inactive { leg: 1 }))
            .count(),
        1
    );
}

#[test]
fn rtcp_reports_go_to_the_rtcp_port() {
    let t0 = Instant::now();
    let (mut e, mut sink) = bridged(t0, Codec::Pcmu, Codec::Pcmu, false);
    run(
        &mut e,
        &mut sink,
        t0,
        &mut TonePeer::new(Codec::Pcmu, 440.0),
        1,
        CALLER,
        600,
    );
    let rtcp: Vec<_> = sink.sent.iter().filter(|s| s.1).collect();
    assert!(rtcp
        .iter()
        .any(|s| s.0 == 1 && s.2 == "127.0.0.1:6001".parse().unwrap()));
    assert!(rtcp.iter().all(|s| rtp::is_rtcp(&s.3)));
}

fn leg(e: &mut MediaEngine, sink: &mut Sink, t0: Instant, id: LegId, remote: &str, codec: Codec) {
    e.command(
        t0,
        MediaCommand::AddLeg {
            leg: id,
            local: format!("127.0.0.1:{}", 40000 + 2 * id).parse().unwrap(),
        },
        sink,
    );
    e.command(
        t0,
        MediaCommand::Configure {
            leg: id,
            params: params(remote, codec, false),
        },
        sink,
    );
}

/// Runs 2 s with each (leg, remote, peer) sending its tone; returns what each remote heard.
fn run_all(
    e: &mut MediaEngine,
    sink: &mut Sink,
    t0: Instant,
    peers: &mut [(LegId, &str, TonePeer)],
) {
    for i in 0..100u64 {
        let now = t0 + Duration::from_millis(20 * i + 3);
        for (id, from, peer) in peers.iter_mut() {
            let p = peer.packet();
            e.handle_rtp(now, *id, from.parse().unwrap(), &p, sink);
        }
        e.handle_tick(t0 + Duration::from_millis(20 * (i + 1)), sink);
    }
}

/// The strongest of the given frequencies in `pcm` and their levels.
fn has_tone(pcm: &[i16], freq: f32) -> bool {
    pcm.len() > 4000 && tone::goertzel_power(&pcm[pcm.len() / 4..], 8000, freq) > 1e-4
}

#[test]
fn a_mixer_follows_who_hears_whom() {
    // Caller (440 Hz, leg 1), agent (1000 Hz, leg 2), supervisor (1800 Hz, leg 3), whisper:
    // the caller hears the agent only; the agent hears both; the supervisor hears both.
    let t0 = Instant::now();
    let mut e = MediaEngine::new(t0, Duration::from_secs(30), 3);
    let mut sink = Sink::default();
    leg(&mut e, &mut sink, t0, 1, CALLER, Codec::Pcmu);
    leg(&mut e, &mut sink, t0, 2, CALLEE, Codec::Pcma);
    leg(&mut e, &mut sink, t0, 3, "127.0.0.1:8000", Codec::Pcmu);
    let hears = vec![(1, 2), (2, 1), (2, 3), (3, 1), (3, 2)];
    e.command(
        t0,
        MediaCommand::Mix {
            mix: 9,
            legs: vec![1, 2, 3],
            hears,
        },
        &mut sink,
    );
    run_all(
        &mut e,
        &mut sink,
        t0,
        &mut [
            (1, CALLER, TonePeer::new(Codec::Pcmu, 440.0)),
            (2, CALLEE, TonePeer::new(Codec::Pcma, 1000.0)),
            (3, "127.0.0.1:8000", TonePeer::new(Codec::Pcmu, 1800.0)),
        ],
    );
    let caller = heard(&sink, 1, CALLER, Codec::Pcmu);
    let agent = heard(&sink, 2, CALLEE, Codec::Pcma);
    let supervisor = heard(&sink, 3, "127.0.0.1:8000", Codec::Pcmu);
    assert!(
        has_tone(&caller, 1000.0) && !has_tone(&caller, 1800.0),
        "the caller must not hear the whisper"
    );
    assert!(!has_tone(&caller, 440.0), "nobody hears themselves");
    assert!(
        has_tone(&agent, 440.0) && has_tone(&agent, 1800.0),
        "the agent hears caller and supervisor"
    );
    assert!(has_tone(&supervisor, 440.0) && has_tone(&supervisor, 1000.0));
    assert!(!has_tone(&supervisor, 1800.0));
}

#[test]
fn prompts_queue_and_a_digit_barges_in() {
    let t0 = Instant::now();
    let (mut e, mut sink) = bridged(t0, Codec::Pcmu, Codec::Pcmu, true);
    let first: Prompt = crate::media::prompt::tone(
        tone::ToneGenerator::single(8000, 600.0, -12.0).unwrap(),
        400,
    );
    let hold: Prompt = crate::media::prompt::tone(
        tone::ToneGenerator::single(8000, 300.0, -12.0).unwrap(),
        400,
    );
    e.command(
        t0,
        MediaCommand::Play {
            leg: 1,
            prompt: first,
            looped: false,
            barge_in: false,
            enqueue: true,
        },
        &mut sink,
    );
    e.command(
        t0,
        MediaCommand::Play {
            leg: 1,
            prompt: hold,
            looped: true,
            barge_in: true,
            enqueue: true,
        },
        &mut sink,
    );
    // 1 s: 400 ms of the first prompt, then looping hold music; the callee's audio is not heard.
    run(
        &mut e,
        &mut sink,
        t0,
        &mut TonePeer::new(Codec::Pcmu, 1000.0),
        2,
        CALLEE,
        50,
    );
    let pcm = heard(&sink, 1, CALLER, Codec::Pcmu);
    assert!(
        tone::goertzel_power(&pcm[400..3000], 8000, 600.0) > 1e-4,
        "first prompt"
    );
    assert!(
        tone::goertzel_power(&pcm[4000..], 8000, 300.0) > 1e-4,
        "then the hold music"
    );
    assert!(
        !has_tone(&pcm, 1000.0),
        "the prompt replaces the other party"
    );
    assert!(sink.events.contains(&MediaEvent::PlayFinished {
        leg: 1,
        interrupted: false
    }));
    // The caller presses a key: the hold music stops and the callee is heard again.
    let before = sink.sent.len();
    let from: SocketAddr = CALLER.parse().unwrap();
    for pk in super::super::dtmf::EventSender::new(8000, 20)
        .unwrap()
        .packets('4', 5000, 60)
        .unwrap()
    {
        let h = rtp::RtpHeader {
            marker: pk.marker,
            payload_type: 101,
            sequence: 7,
            timestamp: pk.timestamp,
            ssrc: 77,
            csrc_count: 0,
            has_extension: false,
            padding: false,
        };
        let mut p = vec![0u8; 16];
        rtp::write_header(&h, &mut p[..12]);
        p[12..].copy_from_slice(&pk.payload);
        e.handle_rtp(t0 + Duration::from_millis(1010), 1, from, &p, &mut sink);
    }
    assert!(sink.events.contains(&MediaEvent::PlayFinished {
        leg: 1,
        interrupted: true
    }));
    run(
        &mut e,
        &mut sink,
        t0 + Duration::from_millis(1020),
        &mut TonePeer::new(Codec::Pcmu, 1000.0),
        2,
        CALLEE,
        60,
    );
    let after: Vec<i16> = {
        let s2 = Sink {
            sent: sink.sent[before..].to_vec(),
            ..Default::default()
        };
        heard(&s2, 1, CALLER, Codec::Pcmu)
    };
    assert!(
        has_tone(&after, 1000.0),
        "after barge-in the caller hears the callee"
    );
}

#[test]
fn a_late_tick_is_caught_up_without_losing_transcoded_frames() {
    let t0 = Instant::now();
    let (mut e, mut sink) = bridged(t0, Codec::Pcmu, Codec::Pcma, false);
    let mut peer = TonePeer::new(Codec::Pcmu, 440.0);
    let from: SocketAddr = CALLER.parse().unwrap();
    // 50 packets arrive on time, but the engine only wakes every 80 ms (an overloaded core).
    for i in 0..50u64 {
        e.handle_rtp(
            t0 + Duration::from_millis(20 * i + 3),
            1,
            from,
            &peer.packet(),
            &mut sink,
        );
        if i % 4 == 3 {
            e.handle_tick(t0 + Duration::from_millis(20 * (i + 1)), &mut sink);
        }
    }
    e.handle_tick(t0 + Duration::from_millis(1060), &mut sink);
    let out = sink.sent.iter().filter(|s| s.0 == 2 && !s.1).count();
    assert!(out >= 45, "only {out} of 50 frames went out");
    assert_eq!(e.stats().ticks_skipped, 0);
}
