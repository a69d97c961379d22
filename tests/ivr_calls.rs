//! IVR flows on live calls through a real `switchboard` process.
//!
//! SIPp places the calls; the SDP names an RTP socket of this test (SIPp's `-key rtp_port`),
//! so the test hears the prompts (checked by content: bursts of speech energy) and speaks to
//! the flow: words rendered by espeak-ng in several voices, band-limited to a phone line by
//! sox and sent as G.711 µ-law. DTMF comes from SIPp's own RFC 4733 captures.

mod common;

use common::*;
use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use switchboard::media::{g711, rtp, wav};

/// A test flow: look the caller up at a backend that never answers (1 s timeout), then a
/// short menu by speech or DTMF with a 2 s no-input timeout, one retry, and a default.
const QUICK_FLOW: &str = r#"
name: quick
description: Test flow for live calls.
start: answer
steps:
  answer:
    type: answer
    next: lookup
  lookup:
    type: http
    method: GET
    url: "http://127.0.0.1:${SLOW_PORT}/customers/${caller.number}"
    timeout: 1s
    set:
      customer.name: /name
    on_success: ask
    on_failure: ask
  ask:
    type: menu
    prompt: "Please say billing or technical support, or press 1 or 2."
    barge_in: true
    speech: true
    timeout: 2s
    retries: 1
    no_input: "Sorry, I did not hear you."
    choices:
      billing:
        dtmf: "1"
        phrases: [billing, bill, pay my bill]
        next: billing
      support:
        dtmf: "2"
        phrases: [technical support, tech support, support]
        next: support
    default: fallback
  billing:
    type: queue
    queue: billing
  support:
    type: queue
    queue: support
  fallback:
    type: queue
    queue: agents
"#;

/// A backend that accepts connections and never answers.
struct SlowBackend {
    listener: std::net::TcpListener,
}

impl SlowBackend {
    fn start() -> SlowBackend {
        SlowBackend {
            listener: std::net::TcpListener::bind((LOCALHOST, 0)).unwrap(),
        }
    }
    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }
}

fn start(slow: &SlowBackend) -> Switchboard {
    let flow = QUICK_FLOW.replace("${SLOW_PORT}", &slow.port().to_string());
    Switchboard::start_ivr_with(
        None,
        &[("quick.yaml", &flow)],
        &[r#"- { number: "101", to: { flow: quick } }"#],
    )
}

/// The caller's phone: µ-law RTP from a socket of this test.
struct Phone {
    sock: UdpSocket,
    seq: u16,
    ts: u32,
    say: VecDeque<i16>,
    /// What was heard, on the phone's own timeline (silence where nothing came).
    heard: Vec<i16>,
    ticks: usize,
}

impl Phone {
    fn new() -> Phone {
        let sock = UdpSocket::bind((LOCALHOST, 0)).unwrap();
        sock.set_nonblocking(true).unwrap();
        Phone {
            sock,
            seq: 1,
            ts: 0,
            say: VecDeque::new(),
            heard: vec![],
            ticks: 0,
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    /// One 20 ms frame out (what is queued to say, else silence), everything waiting in.
    fn tick(&mut self, to: SocketAddr) {
        let pcm: Vec<i16> = (0..160)
            .map(|_| self.say.pop_front().unwrap_or(0))
            .collect();
        let mut payload = [0u8; 160];
        g711::pcm_to_ulaw(&pcm, &mut payload);
        let h = rtp::RtpHeader {
            marker: self.seq == 1,
            payload_type: 0,
            sequence: self.seq,
            timestamp: self.ts,
            ssrc: 0xCA11E4,
            csrc_count: 0,
            has_extension: false,
            padding: false,
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        let mut pkt = [0u8; 172];
        rtp::write_header(&h, &mut pkt[..12]);
        pkt[12..].copy_from_slice(&payload);
        let _ = self.sock.send_to(&pkt, to);
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
            if let Ok((h, range)) = rtp::parse(&buf[..n]) {
                if h.payload_type == 0 {
                    let mut out = vec![0i16; range.len()];
                    g711::ulaw_to_pcm(&buf[range], &mut out);
                    self.heard.extend(out);
                }
            }
        }
        self.ticks += 1;
        if self.heard.len() < self.ticks * 160 {
            self.heard.resize(self.ticks * 160, 0);
        }
    }

    /// Runs in real time until `done` says so or `limit` passes.
    fn run(&mut self, to: SocketAddr, limit: Duration, mut done: impl FnMut(&Phone) -> bool) {
        let start = Instant::now();
        let mut i = 0u64;
        while start.elapsed() < limit && !done(self) {
            self.tick(to);
            i += 1;
            let due = start + Duration::from_millis(20 * i);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// Stretches of sound (start, end) in seconds of what was heard: 50 ms windows above
    /// -40 dBFS, gaps under 600 ms bridged.
    fn bursts(&self) -> Vec<(f32, f32)> {
        let win = 400;
        let mut out: Vec<(f32, f32)> = vec![];
        for (i, w) in self.heard.chunks(win).enumerate() {
            let rms = (w.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
            let db = 20.0 * (rms / 32768.0).max(1e-9).log10();
            if db > -40.0 {
                let (s, e) = (i as f32 * 0.05, (i + 1) as f32 * 0.05);
                match out.last_mut() {
                    Some(last) if s - last.1 < 0.6 => last.1 = e,
                    _ => out.push((s, e)),
                }
            }
        }
        out
    }
}

/// The newest answered call in the API newer than call `after` (ids grow).
fn live_call(sw: &Switchboard, after: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((200, body)) = http_get(sw.http_port, "/api/v1/calls") {
            let calls: serde_json::Value = serde_json::from_str(&body).unwrap();
            if let Some(c) = calls.as_array().and_then(|a| {
                a.iter().rev().find(|c| {
                    c["state"] == "answered" && c["id"].as_u64().is_some_and(|id| id > after)
                })
            }) {
                return c.clone();
            }
        }
        assert!(Instant::now() < deadline, "no answered call");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn call_by_id(sw: &Switchboard, id: &serde_json::Value) -> serde_json::Value {
    let (_, body) = http_get(sw.http_port, "/api/v1/calls").unwrap();
    let calls: serde_json::Value = serde_json::from_str(&body).unwrap();
    calls
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|c| &c["id"] == id)
        .cloned()
        .unwrap()
}

/// A SIPp caller to `number` whose media is `phone`, on the line for `hold_ms`.
fn caller(
    sw: &Switchboard,
    dir: &TempDir,
    name: &str,
    phone: &Phone,
    number: &str,
    hold_ms: u64,
) -> SippProc {
    uac(name, "uac_media.xml", sw, number, 1)
        .args([
            "-key",
            "rtp_port",
            &phone.port().to_string(),
            "-key",
            "pt",
            "0",
            "-key",
            "rtpmap",
            "PCMU/8000",
            "-d",
            &hold_ms.to_string(),
        ])
        .timeout(Duration::from_secs(60))
        .spawn(dir)
}

fn media_addr(call: &serde_json::Value) -> SocketAddr {
    call["media"]["caller"].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_dead_backend_takes_the_failure_branch_and_no_input_replays_the_prompt_then_the_default() {
    let _g = serial();
    let slow = SlowBackend::start();
    let sw = start(&slow);
    let dir = TempDir::new("ivr-noinput");
    let mut phone = Phone::new();
    let t0 = Instant::now();
    let uac = caller(&sw, &dir, "silent", &phone, "101", 30_000);
    let call = live_call(&sw, 0);
    let to = media_addr(&call);
    // The look-up hangs; the flow moves to the menu when its 1 s timeout expires.
    let mut reached_menu = None;
    phone.run(to, Duration::from_secs(4), |_| {
        let c = call_by_id(&sw, &call["id"]);
        if c["flow"] == "quick/ask" {
            reached_menu = Some(t0.elapsed());
            true
        } else {
            false
        }
    });
    let at = reached_menu.expect("the flow never reached the menu");
    assert!(
        at >= Duration::from_millis(900) && at < Duration::from_millis(3000),
        "menu after {at:?}"
    );
    // The caller says nothing: prompt, 2 s, "sorry" and the prompt again, 2 s, default.
    let mut outcome = serde_json::Value::Null;
    phone.run(to, Duration::from_secs(25), |_| {
        outcome = call_by_id(&sw, &call["id"])["flow"].clone();
        outcome == "queue agents"
    });
    assert_eq!(outcome, "queue agents");
    let bursts = phone.bursts();
    // First prompt, then "sorry" + prompt again (one stretch), then hold music.
    let speech: Vec<&(f32, f32)> = bursts.iter().filter(|(s, e)| e - s > 1.0).collect();
    assert!(
        speech.len() >= 2,
        "expected the prompt twice, heard {bursts:?}"
    );
    let gap = speech[1].0 - speech[0].1;
    assert!(
        (1.5..3.5).contains(&gap),
        "no-input pause of {gap} s between prompts: {bursts:?}"
    );
    drop(uac);
}

#[test]
fn dtmf_from_sipp_captures_selects_the_menu_choice() {
    let _g = serial();
    let slow = SlowBackend::start();
    let sw = start(&slow);
    let dir = TempDir::new("ivr-dtmf");
    // SIPp presses 1 (its RFC 4733 capture) 3 s after the answer.
    uac("dtmf", "uac_ivr_dtmf.xml", &sw, "101", 1)
        .args(["-key", "caller", "15550000001", "-d", "3000"])
        .timeout(Duration::from_secs(40))
        .run(&dir)
        .assert_ok(Some(1));
    let (_, body) = http_get(sw.http_port, "/api/v1/calls").unwrap();
    let calls: serde_json::Value = serde_json::from_str(&body).unwrap();
    let call = calls.as_array().unwrap().last().unwrap();
    assert_eq!(call["flow"], "queue billing", "{call}");
    assert_eq!(call["inputs"], serde_json::json!(["pressed 1"]), "{call}");
}

/// `text` spoken by espeak-ng in `voice` at `speed` words a minute, band-limited to a phone
/// line (300-3400 Hz) at 8 kHz.
fn spoken(dir: &TempDir, text: &str, voice: &str, speed: u32) -> Vec<i16> {
    let raw = dir.join(&format!("{voice}-{speed}-raw.wav"));
    let tel = dir.join(&format!("{voice}-{speed}-tel.wav"));
    let ok = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng is installed by tools/setup.sh");
    assert!(ok.success());
    let ok = Command::new("sox")
        .arg(&raw)
        .args(["-r", "8000", "-c", "1", "-b", "16"])
        .arg(&tel)
        .args(["sinc", "300-3400"])
        .status()
        .expect("sox is installed by tools/setup.sh");
    assert!(ok.success());
    read_wav(&tel)
}

fn read_wav(path: &Path) -> Vec<i16> {
    let w = wav::Wav::from_bytes(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!((w.rate, w.channels), (8000, 1));
    w.samples
}

#[test]
fn spoken_words_select_billing_or_technical_support() {
    let _g = serial();
    let slow = SlowBackend::start();
    let sw = start(&slow);
    let dir = TempDir::new("ivr-speech");
    let cases = [
        ("billing", "en-us", 150, "queue billing"),
        ("technical support", "en-gb", 165, "queue support"),
        ("pay my bill", "en-us+f3", 140, "queue billing"),
        ("tech support", "en-us+m3", 175, "queue support"),
    ];
    let mut last = 0;
    for (i, (text, voice, speed, expected)) in cases.iter().enumerate() {
        let words = spoken(&dir, text, voice, *speed);
        let mut phone = Phone::new();
        let uac = caller(&sw, &dir, &format!("speech{i}"), &phone, "101", 20_000);
        let call = live_call(&sw, last);
        last = call["id"].as_u64().unwrap();
        let to = media_addr(&call);
        // Wait for the menu prompt to be playing, then speak over it (barge-in).
        phone.run(to, Duration::from_secs(6), |p| {
            p.bursts().iter().any(|(s, e)| e - s > 0.5 && *s > 0.9)
        });
        let spoke_at = phone.heard.len() as f32 / 8000.0;
        phone.say.extend(words.iter().copied());
        let mut outcome = serde_json::Value::Null;
        phone.run(to, Duration::from_secs(8), |_| {
            outcome = call_by_id(&sw, &call["id"])["flow"].clone();
            outcome.as_str().is_some_and(|o| o.starts_with("queue"))
        });
        assert_eq!(
            outcome, *expected,
            "said {text:?} in {voice} at {speed} wpm"
        );
        // The prompt stopped when the caller spoke (within a second), long before its end.
        let prompt_end = phone
            .bursts()
            .iter()
            .find(|(s, e)| *s < spoke_at && *e >= spoke_at)
            .map(|b| b.1);
        if let Some(end) = prompt_end {
            assert!(
                end - spoke_at < 1.5,
                "prompt went on {} s after the caller spoke",
                end - spoke_at
            );
        }
        drop(uac);
    }
}

/// The demo's queues (the sample flows name them) and one that offers callbacks at once.
const CALLBACK_CC: &str = r#"
queues:
  - { name: billing, strategy: best-skill, skills: { billing: 2 }, callback: { offer_when_wait_over: 2m, retry_delay: 2m, max_attempts: 2, mode: agent-first } }
  - { name: support, strategy: longest-idle, skills: { technical: 2 }, callback: { offer_when_wait_over: 2m, retry_delay: 2m, max_attempts: 2, mode: agent-first } }
  - { name: sales, strategy: round-robin, skills: { sales: 2 }, callback: { offer_when_wait_over: 2m, retry_delay: 2m, max_attempts: 2, mode: agent-first } }
  - { name: agents, strategy: longest-idle, callback: { offer_when_wait_over: 2m, retry_delay: 2m, max_attempts: 2, mode: agent-first } }
  - { name: callme, strategy: longest-idle, skills: { technical: 2 }, announce_every: 60s, callback: { offer_when_wait_over: 0s, retry_delay: 2s, max_attempts: 2, mode: agent-first } }
agents:
  - { id: "1004", name: Dev, extension: "1004", skills: { technical: 5 }, api_token: test-only-token-1004 }
"#;

#[test]
fn a_waiting_caller_says_call_me_back_and_keeps_their_place_as_a_callback() {
    let _g = serial();
    let dir = TempDir::new("queue-speech");
    let cc = dir.join("contact-centre.yaml");
    std::fs::write(&cc, CALLBACK_CC).unwrap();
    let sw = Switchboard::start_ivr_with(
        Some(&cc),
        &[],
        &[r#"- { number: "300", to: { queue: callme } }"#],
    );
    let words = spoken(&dir, "call me back", "en-us", 150);
    let pending = |sw: &Switchboard| queue_json(sw, "callme")["callbacks_pending"].clone();
    let mut phone = Phone::new();
    let uac = caller(&sw, &dir, "cb-speech", &phone, "300", 30_000);
    let call = live_call(&sw, 0);
    let to = media_addr(&call);
    // Nobody can serve the caller: position, wait and the callback offer play. The caller
    // speaks over the offer.
    phone.run(to, Duration::from_secs(5), |_| false);
    assert_eq!(pending(&sw), 0, "nothing booked before the caller spoke");
    phone.say.extend(words.iter().copied());
    let mut booked = serde_json::Value::Null;
    phone.run(to, Duration::from_secs(10), |_| {
        booked = pending(&sw);
        booked == 1
    });
    assert_eq!(booked, 1, "\"call me back\" did not book a callback");
    // The confirmation reads the caller's number back: speech is heard after booking.
    let heard_before = phone.heard.len();
    phone.run(to, Duration::from_secs(3), |_| false);
    let confirmation: f64 = phone.heard[heard_before..]
        .iter()
        .map(|s| (*s as f64).powi(2))
        .sum::<f64>()
        / (phone.heard.len() - heard_before).max(1) as f64;
    assert!(confirmation.sqrt() > 100.0, "no confirmation heard");
    drop(uac);
}

#[test]
fn an_invalid_flow_edit_is_reported_and_the_running_version_stays_until_a_valid_one() {
    let _g = serial();
    let slow = SlowBackend::start();
    let sw = start(&slow);
    let dir = TempDir::new("ivr-reload");
    let file = sw.dir.join("flows").join("quick.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    // A typo in a transition: reported with its position, not loaded.
    std::fs::write(&file, original.replace("next: lookup", "next: lookpu")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(6);
    while !sw.stderr_text().contains("not reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload error: {}",
            sw.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = sw.stderr_text();
    let line = original
        .lines()
        .position(|l| l.contains("next: lookup"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("quick.yaml:{line}:11")), "{err}");
    assert!(err.contains("lookpu"), "{err}");
    // Calls still run the previous version: the look-up, then the menu.
    let mut phone = Phone::new();
    let uac = caller(&sw, &dir, "old", &phone, "101", 10_000);
    let call = live_call(&sw, 0);
    let mut at = serde_json::Value::Null;
    phone.run(media_addr(&call), Duration::from_secs(5), |_| {
        at = call_by_id(&sw, &call["id"])["flow"].clone();
        at == "quick/ask"
    });
    assert_eq!(at, "quick/ask");
    drop(uac);
    // A valid edit takes effect for new calls: a failed look-up now goes to billing.
    std::fs::write(
        &file,
        original.replace("on_failure: ask", "on_failure: billing"),
    )
    .unwrap();
    // The directory is looked at every second.
    std::thread::sleep(Duration::from_millis(2500));
    let mut phone = Phone::new();
    let uac = caller(&sw, &dir, "new", &phone, "101", 10_000);
    let call = live_call(&sw, call["id"].as_u64().unwrap());
    phone.run(media_addr(&call), Duration::from_secs(4), |_| {
        at = call_by_id(&sw, &call["id"])["flow"].clone();
        at == "queue billing"
    });
    assert_eq!(at, "queue billing");
    drop(uac);
}
