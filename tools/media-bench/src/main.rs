//! media-bench: holds N concurrent bridged calls through a running Switchboard with RTP both
//! ways and reports the switch's CPU per relayed packet, its memory per call and the packets
//! delivered. A benchmark, not a test: `tools/bench_media.sh` builds and runs it.
//!
//! The tool is both ends of every call. It registers as one or more local users (digest) with
//! a Contact on its own SIP socket (the callee side, a UAS that answers every INVITE with 200
//! and SDP) and calls those users as the demo trunk (a UAC from 127.0.0.1). Each call's caller
//! and callee RTP ends are tool sockets (a few shared sockets, told apart by the switch's
//! source port), each sending one 20 ms frame every 20 ms for the duration.
//!
//! Loopback only; every phase is bounded in time; it stops by itself.

mod media;
mod net;
mod sip;
mod sys;

use net::{Epoll, RxBatch, TxBatch};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const USAGE: &str = "\
media-bench --pid SWITCH_PID [options]

  --pid PID            Switchboard's process id (CPU and memory are read from /proc/PID)
  --sip ADDR:PORT      Switchboard's SIP UDP address            [127.0.0.1:5060]
  --http ADDR:PORT     Switchboard's HTTP address               [127.0.0.1:8080]
  --mode MODE          relay (PCMU both legs) | transcode (PCMU caller, Opus callee) [relay]
  --calls LIST         concurrent calls per step, comma-separated [100,400,800,1200,1600]
  --duration SECS      measured streaming window per step       [30]
  --warmup SECS        streaming before the window opens        [2]
  --users LIST         extensions to register and call           [1001,...,1010]
  --password-prefix P  password = P + extension                 [secret]
  --domain D           domain in REGISTER/From/To               [switchboard.local]
  --cps N              calls placed (and hung up) per second    [200]
  --sockets K          RTP sockets per side (shared by calls)   [16]
  --rtp-base PORT      first local RTP port of the tool         [62000]
  --no-telephone-event offer/answer no telephone-event (G.711 legs then get in-band DTMF detection)
  --gap SECS           pause between steps (after the last step's calls are gone), e.g. past
                       SIP's 32 s transaction timers                [0]
  --quiet-wait SECS    before each step, wait up to SECS for the machine to be idle (<15% busy) [90]
";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Relay,
    Transcode,
}

struct Opts {
    pid: u32,
    sip: SocketAddr,
    http: SocketAddr,
    mode: Mode,
    calls: Vec<usize>,
    duration: f64,
    warmup: f64,
    users: Vec<String>,
    password_prefix: String,
    domain: String,
    cps: f64,
    sockets: usize,
    rtp_base: u16,
    te: bool,
    quiet_wait: f64,
    gap: f64,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        pid: 0,
        sip: "127.0.0.1:5060".parse().unwrap(),
        http: "127.0.0.1:8080".parse().unwrap(),
        mode: Mode::Relay,
        calls: vec![100, 400, 800, 1200, 1600],
        duration: 30.0,
        warmup: 2.0,
        users: (1001..=1010).map(|u| u.to_string()).collect(),
        password_prefix: "secret".into(),
        domain: "switchboard.local".into(),
        cps: 200.0,
        sockets: 16,
        rtp_base: 62000,
        te: true,
        quiet_wait: 90.0,
        gap: 0.0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        let bad = |a: &str, v: &str| format!("bad value for {a}: {v}");
        match a.as_str() {
            "--pid" => {
                let v = val()?;
                o.pid = v.parse().map_err(|_| bad(&a, &v))?
            }
            "--sip" => {
                let v = val()?;
                o.sip = v.parse().map_err(|_| bad(&a, &v))?
            }
            "--http" => {
                let v = val()?;
                o.http = v.parse().map_err(|_| bad(&a, &v))?
            }
            "--mode" => {
                o.mode = match val()?.as_str() {
                    "relay" => Mode::Relay,
                    "transcode" => Mode::Transcode,
                    v => return Err(bad(&a, v)),
                }
            }
            "--calls" => {
                let v = val()?;
                o.calls = v
                    .split(',')
                    .map(|x| x.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad(&a, &v))?;
                if o.calls.iter().any(|n| *n == 0 || *n > 30_000) {
                    return Err(bad(&a, &v));
                }
            }
            "--duration" => {
                let v = val()?;
                o.duration = v.parse().map_err(|_| bad(&a, &v))?;
                if !(0.5..=3600.0).contains(&o.duration) {
                    return Err(bad(&a, &v));
                }
            }
            "--warmup" => {
                let v = val()?;
                o.warmup = v.parse().map_err(|_| bad(&a, &v))?;
                if !(0.0..=600.0).contains(&o.warmup) {
                    return Err(bad(&a, &v));
                }
            }
            "--users" => o.users = val()?.split(',').map(|s| s.trim().to_string()).collect(),
            "--password-prefix" => o.password_prefix = val()?,
            "--domain" => o.domain = val()?,
            "--cps" => {
                let v = val()?;
                o.cps = v.parse().map_err(|_| bad(&a, &v))?;
                if !(1.0..=10_000.0).contains(&o.cps) {
                    return Err(bad(&a, &v));
                }
            }
            "--sockets" => {
                let v = val()?;
                o.sockets = v.parse().map_err(|_| bad(&a, &v))?;
                if !(1..=1024).contains(&o.sockets) {
                    return Err(bad(&a, &v));
                }
            }
            "--rtp-base" => {
                let v = val()?;
                o.rtp_base = v.parse().map_err(|_| bad(&a, &v))?
            }
            "--no-telephone-event" => o.te = false,
            "--gap" => {
                let v = val()?;
                o.gap = v.parse().map_err(|_| bad(&a, &v))?;
                if !(0.0..=600.0).contains(&o.gap) {
                    return Err(bad(&a, &v));
                }
            }
            "--quiet-wait" => {
                let v = val()?;
                o.quiet_wait = v.parse().map_err(|_| bad(&a, &v))?;
                if !(0.0..=3600.0).contains(&o.quiet_wait) {
                    return Err(bad(&a, &v));
                }
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if o.pid == 0 {
        return Err("--pid is required".into());
    }
    if o.users.is_empty() {
        return Err("--users is empty".into());
    }
    Ok(o)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AState {
    Inviting,
    Up,
    Failed,
    Byeing,
    Ended,
}

/// One bridged call: the tool's caller end (A, a trunk UAC) and callee end (B, the
/// registered user's UAS), and the switch's RTP address on each leg.
struct Call {
    id: u64,
    user: usize,
    /// Index of the shared RTP socket this call uses on each side.
    k: usize,
    caller: String,
    a_call_id: String,
    a_ruri: String,
    a_branch: String,
    a_state: AState,
    a_status: u16,
    a_provisional: bool,
    /// The INVITE, then the BYE: what is retransmitted.
    a_msg: Vec<u8>,
    a_first: Instant,
    a_sent: Instant,
    a_tries: u32,
    a_ack: Vec<u8>,
    a_to: String,
    a_target: String,
    /// The switch hung up the caller leg (not asked by us).
    a_dropped: bool,
    sw_a: Option<SocketAddr>,
    b_call_id: Option<String>,
    b_ok: Vec<u8>,
    b_ok_sent: Instant,
    b_ok_tries: u32,
    b_acked: bool,
    b_bye: bool,
    b_pt: u8,
    sw_b: Option<SocketAddr>,
    ready: bool,
    a_seq: u16,
    a_ts: u32,
    a_ssrc: u32,
    b_seq: u16,
    b_ts: u32,
    b_ssrc: u32,
    a_sent_pkts: u64,
    b_sent_pkts: u64,
    a_recv: u64,
    b_recv: u64,
    /// Send times (µs since the bench epoch) of the last RING packets of each end.
    a_tx_us: Box<[u32; RING]>,
    b_tx_us: Box<[u32; RING]>,
    /// The (rewritten) sequence number of the first packet each end received.
    a_first_rx: Option<u16>,
    b_first_rx: Option<u16>,
}

/// Send times kept per direction for the latency measurement.
const RING: usize = 256;
/// Latency histogram: 50 µs buckets up to 2 s (the last bucket holds everything above).
const LAT_BUCKET_US: u32 = 50;
const LAT_BUCKETS: usize = 40_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum RegState {
    Sent,
    SentAuth,
    Ok,
    Failed,
}

struct Reg {
    user: String,
    state: RegState,
    cseq: u32,
    msg: Vec<u8>,
    sent: Instant,
    tries: u32,
}

#[derive(Default, Clone, Copy, Debug)]
struct Counters {
    sent: u64,
    recv: u64,
    tx_failed: u64,
    misdirected: u64,
    unknown_src: u64,
    bad_pt: u64,
    payload_mismatch: u64,
    rtcp: u64,
    late_slots: u64,
    skipped_slots: u64,
    slots: u64,
    max_lag_us: u64,
}

#[derive(Default, Clone, Copy)]
struct Census {
    inviting: usize,
    up: usize,
    failed: usize,
    byeing: usize,
    ended: usize,
    ready: usize,
    b_open: usize,
    dropped: usize,
}

struct Bench {
    o: Opts,
    ep: Epoll,
    uac: UdpSocket,
    uas: UdpSocket,
    uac_port: u16,
    uas_port: u16,
    rtp_a: Vec<UdpSocket>,
    rtp_b: Vec<UdpSocket>,
    rtcp: Vec<UdpSocket>,
    calls: Vec<Call>,
    by_a: HashMap<String, usize>,
    by_b: HashMap<String, usize>,
    /// Switch RTP port -> 1 + (call index << 1 | leg), leg 0 = caller, 1 = callee.
    port_map: Vec<u32>,
    step_base: u64,
    regs: Vec<Reg>,
    pcmu: Vec<u8>,
    opus: Vec<Vec<u8>>,
    run_tag: u32,
    seq: u64,
    c: Counters,
    census: Census,
    last_scan: Instant,
    // Phases.
    target: usize,
    placed: usize,
    placing: Option<Instant>,
    hanging: Option<Instant>,
    bye_cursor: usize,
    byes_sent: usize,
    streaming: bool,
    slot: usize,
    next_slot_at: Instant,
    slots: Vec<Vec<usize>>,
    rx: RxBatch,
    tx: TxBatch,
    sipbuf: Vec<u8>,
    epoch: Instant,
    /// One-way latency through the switch (relay mode), counted while `lat_on`.
    lat: Vec<u32>,
    lat_on: bool,
}

const TOK_UAC: u64 = 0;
const TOK_UAS: u64 = 1;
const TOK_RTP: u64 = 2;
/// Slots per 20 ms frame period (one every millisecond): calls are spread over them.
const SLOTS: usize = 20;
/// How far behind the generator may fall and still send the frames it owes.
const MAX_CATCH_UP: Duration = Duration::from_millis(60);

fn backoff(tries: u32, base_ms: u64) -> Duration {
    Duration::from_millis((base_ms << tries.min(4)).min(4000))
}

impl Bench {
    fn new(o: Opts) -> std::io::Result<Bench> {
        let ip = Ipv4Addr::LOCALHOST;
        let ep = Epoll::new()?;
        let uac = net::bind(ip, 0)?;
        let uas = net::bind(ip, 0)?;
        ep.add(uac.as_raw_fd(), TOK_UAC)?;
        ep.add(uas.as_raw_fd(), TOK_UAS)?;
        let mut next = o.rtp_base as u32;
        let (mut rtp_a, mut rtp_b, mut rtcp) = (Vec::new(), Vec::new(), Vec::new());
        for side in 0..2 {
            for _ in 0..o.sockets {
                let (r, c) = net::bind_pair(ip, &mut next)?;
                if side == 0 {
                    rtp_a.push(r)
                } else {
                    rtp_b.push(r)
                }
                rtcp.push(c);
            }
        }
        let k = o.sockets as u64;
        for (i, s) in rtp_a.iter().chain(rtp_b.iter()).enumerate() {
            ep.add(s.as_raw_fd(), TOK_RTP + i as u64)?;
        }
        for (i, s) in rtcp.iter().enumerate() {
            ep.add(s.as_raw_fd(), TOK_RTP + 2 * k + i as u64)?;
        }
        let opus = media::opus_frames(50).map_err(|e| std::io::Error::other(e.to_string()))?;
        let now = Instant::now();
        Ok(Bench {
            uac_port: uac.local_addr()?.port(),
            uas_port: uas.local_addr()?.port(),
            ep,
            uac,
            uas,
            rtp_a,
            rtp_b,
            rtcp,
            calls: Vec::new(),
            by_a: HashMap::new(),
            by_b: HashMap::new(),
            port_map: vec![0; 65_536],
            step_base: 0,
            regs: Vec::new(),
            pcmu: media::pcmu_frame(),
            opus,
            run_tag: (now.elapsed().as_nanos() as u32) ^ std::process::id().rotate_left(16),
            seq: 0,
            c: Counters::default(),
            census: Census::default(),
            last_scan: now,
            target: 0,
            placed: 0,
            placing: None,
            hanging: None,
            bye_cursor: 0,
            byes_sent: 0,
            streaming: false,
            slot: 0,
            next_slot_at: now,
            slots: vec![Vec::new(); SLOTS],
            rx: RxBatch::new(),
            tx: TxBatch::new(),
            sipbuf: vec![0; 65_536],
            epoch: now,
            lat: vec![0; LAT_BUCKETS],
            lat_on: false,
            o,
        })
    }

    fn token(&mut self) -> String {
        self.seq += 1;
        format!("{:08x}{:06x}", self.run_tag, self.seq)
    }

    fn send_sip(&self, sock: &UdpSocket, to: SocketAddr, msg: &[u8]) {
        for _ in 0..50 {
            match sock.send_to(msg, to) {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(_) => return,
            }
        }
    }

    // ---------------------------------------------------------------- the event loop

    /// Runs everything (SIP, pacing, RTP) until `done` or `deadline`; true when done.
    fn run_until(&mut self, deadline: Instant, done: impl Fn(&Bench) -> bool) -> bool {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut ready = Vec::with_capacity(256);
        loop {
            let now = Instant::now();
            if now.duration_since(self.last_scan) >= Duration::from_millis(50) {
                self.scan(now);
            }
            if done(self) {
                return true;
            }
            if now >= deadline {
                return false;
            }
            self.pump(now);
            if self.streaming {
                self.send_due();
            }
            let now = Instant::now();
            let mut next = (now + Duration::from_millis(5)).min(deadline);
            if self.streaming {
                next = next.min(self.next_slot_at);
            }
            let wait = next.saturating_duration_since(now);
            let ms = wait.as_micros().div_ceil(1000) as i32;
            self.ep.wait(&mut events, ms, &mut ready);
            for &t in &ready {
                self.on_ready(t);
            }
        }
    }

    fn on_ready(&mut self, token: u64) {
        match token {
            TOK_UAC | TOK_UAS => {
                for _ in 0..256 {
                    let sock = if token == TOK_UAC { &self.uac } else { &self.uas };
                    let Ok((n, from)) = sock.recv_from(&mut self.sipbuf) else {
                        break;
                    };
                    let data = self.sipbuf[..n].to_vec();
                    if token == TOK_UAC {
                        self.on_uac(&data, from);
                    } else {
                        self.on_uas(&data, from);
                    }
                }
            }
            t => {
                let k = self.o.sockets as u64;
                let i = (t - TOK_RTP) as usize;
                if t - TOK_RTP >= 2 * k {
                    let fd = self.rtcp[i - 2 * k as usize].as_raw_fd();
                    for _ in 0..64 {
                        let n = self.rx.recv(fd);
                        self.c.rtcp += n as u64;
                        if n < net::BATCH {
                            break;
                        }
                    }
                } else {
                    let side = i / self.o.sockets;
                    let k = i % self.o.sockets;
                    self.on_rtp(side, k);
                }
            }
        }
    }

    fn on_rtp(&mut self, side: usize, k: usize) {
        let fd = if side == 0 {
            self.rtp_a[k].as_raw_fd()
        } else {
            self.rtp_b[k].as_raw_fd()
        };
        for _ in 0..64 {
            let n = self.rx.recv(fd);
            let now_us = self.epoch.elapsed().as_micros() as u32;
            for i in 0..n {
                let (data, port) = self.rx.get(i);
                let e = self.port_map[port as usize];
                if e == 0 {
                    self.c.unknown_src += 1;
                    continue;
                }
                let idx = ((e - 1) >> 1) as usize;
                let leg = ((e - 1) & 1) as usize;
                let Some(call) = self.calls.get_mut(idx) else {
                    self.c.unknown_src += 1;
                    continue;
                };
                if leg != side || call.k != k {
                    self.c.misdirected += 1;
                    continue;
                }
                let Some((pt, off)) = media::parse(data) else {
                    self.c.rtcp += 1;
                    continue;
                };
                let want = if side == 0 { 0 } else { call.b_pt };
                let relay = self.o.mode == Mode::Relay;
                if pt != want {
                    self.c.bad_pt += 1;
                } else if relay && data[off..] != self.pcmu[..]
                    || side == 0 && data.len() - off != self.pcmu.len()
                {
                    // Relay must pass the payload on untouched; G.711 frames are 160 bytes.
                    self.c.payload_mismatch += 1;
                }
                if side == 0 {
                    call.a_recv += 1;
                } else {
                    call.b_recv += 1;
                }
                self.c.recv += 1;
                if relay {
                    // The relay keeps the sender's numbering up to a fixed offset: the k-th
                    // packet received on this direction is the k-th the other end sent.
                    let seq = u16::from_be_bytes([data[2], data[3]]);
                    let (first, sent, ring) = if side == 0 {
                        (&mut call.a_first_rx, call.b_sent_pkts, &call.b_tx_us)
                    } else {
                        (&mut call.b_first_rx, call.a_sent_pkts, &call.a_tx_us)
                    };
                    let f = *first.get_or_insert(seq);
                    let k16 = seq.wrapping_sub(f) as u64;
                    if sent > 0 && self.lat_on {
                        let last = sent - 1;
                        let back = last.wrapping_sub(k16) & 0xffff;
                        if back < RING as u64 && back <= last {
                            let k = last - back;
                            let lat = now_us.saturating_sub(ring[(k as usize) % RING]);
                            let b = ((lat / LAT_BUCKET_US) as usize).min(LAT_BUCKETS - 1);
                            self.lat[b] += 1;
                        }
                    }
                }
            }
            if n < net::BATCH {
                break;
            }
        }
    }

    /// Places calls and sends BYEs at the configured rate.
    fn pump(&mut self, now: Instant) {
        let max_outstanding = (self.o.cps as usize).max(50);
        if let Some(start) = self.placing {
            let allowed = (now.duration_since(start).as_secs_f64() * self.o.cps) as usize + 1;
            while self.placed < self.target.min(allowed) {
                let outstanding = self.calls[..self.placed]
                    .iter()
                    .rev()
                    .take(max_outstanding + 1)
                    .filter(|c| c.a_state == AState::Inviting)
                    .count();
                if outstanding >= max_outstanding {
                    break;
                }
                let idx = self.placed;
                self.placed += 1;
                self.place(idx, now);
            }
        }
        if let Some(start) = self.hanging {
            let allowed = (now.duration_since(start).as_secs_f64() * self.o.cps * 2.0) as usize + 1;
            while self.byes_sent < allowed && self.bye_cursor < self.calls.len() {
                let idx = self.bye_cursor;
                self.bye_cursor += 1;
                if self.calls[idx].a_state == AState::Up {
                    self.bye(idx, now);
                    self.byes_sent += 1;
                }
            }
        }
    }

    /// Retransmissions, timeouts and the census (every 50 ms).
    fn scan(&mut self, now: Instant) {
        self.last_scan = now;
        let mut n = Census::default();
        let mut resend_a = Vec::new();
        let mut resend_b = Vec::new();
        let mut byes = Vec::new();
        for (i, c) in self.calls.iter_mut().enumerate() {
            match c.a_state {
                AState::Inviting => {
                    if now.duration_since(c.a_first) > Duration::from_secs(32) {
                        c.a_state = AState::Failed;
                        c.a_status = 408;
                    } else if !c.a_provisional
                        && now.duration_since(c.a_sent) > backoff(c.a_tries, 500)
                    {
                        resend_a.push(i);
                    }
                }
                AState::Byeing => {
                    if c.a_tries >= 7 {
                        c.a_state = AState::Ended;
                        c.a_status = 408;
                    } else if now.duration_since(c.a_sent) > backoff(c.a_tries, 500) {
                        resend_a.push(i);
                    }
                }
                AState::Up if self.hanging.is_some() && i < self.bye_cursor => byes.push(i),
                _ => {}
            }
            if !c.b_ok.is_empty()
                && !c.b_acked
                && !c.b_bye
                && c.b_ok_tries < 7
                && now.duration_since(c.b_ok_sent) > backoff(c.b_ok_tries, 500)
            {
                resend_b.push(i);
            }
            match c.a_state {
                AState::Inviting => n.inviting += 1,
                AState::Up => n.up += 1,
                AState::Failed => n.failed += 1,
                AState::Byeing => n.byeing += 1,
                AState::Ended => n.ended += 1,
            }
            n.ready += c.ready as usize;
            n.dropped += c.a_dropped as usize;
            if c.b_call_id.is_some() && !c.b_bye {
                n.b_open += 1;
            }
        }
        for i in resend_a {
            let c = &mut self.calls[i];
            c.a_tries += 1;
            c.a_sent = now;
            let msg = std::mem::take(&mut c.a_msg);
            self.send_sip(&self.uac, self.o.sip, &msg);
            self.calls[i].a_msg = msg;
        }
        for i in resend_b {
            let c = &mut self.calls[i];
            c.b_ok_tries += 1;
            c.b_ok_sent = now;
            let msg = std::mem::take(&mut c.b_ok);
            self.send_sip(&self.uas, self.o.sip, &msg);
            self.calls[i].b_ok = msg;
        }
        for i in byes {
            self.bye(i, now);
        }
        self.census = n;
    }

    // ---------------------------------------------------------------- SIP: registration

    fn register_all(&mut self) -> Result<(), String> {
        let now = Instant::now();
        self.regs = self
            .o
            .users
            .iter()
            .map(|u| Reg {
                user: u.clone(),
                state: RegState::Sent,
                cseq: 0,
                msg: Vec::new(),
                sent: now,
                tries: 0,
            })
            .collect();
        for i in 0..self.regs.len() {
            self.send_register(i, None);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last_retry = Instant::now();
        while Instant::now() < deadline {
            let step = (Instant::now() + Duration::from_millis(200)).min(deadline);
            self.run_until(step, |b| {
                b.regs
                    .iter()
                    .all(|r| matches!(r.state, RegState::Ok | RegState::Failed))
            });
            if self
                .regs
                .iter()
                .all(|r| matches!(r.state, RegState::Ok | RegState::Failed))
            {
                break;
            }
            if last_retry.elapsed() > Duration::from_secs(1) {
                last_retry = Instant::now();
                for i in 0..self.regs.len() {
                    let r = &mut self.regs[i];
                    if matches!(r.state, RegState::Sent | RegState::SentAuth) && r.tries < 5 {
                        r.tries += 1;
                        r.sent = Instant::now();
                        let msg = r.msg.clone();
                        self.send_sip(&self.uas, self.o.sip, &msg);
                    }
                }
            }
        }
        let failed: Vec<&str> = self
            .regs
            .iter()
            .filter(|r| r.state != RegState::Ok)
            .map(|r| r.user.as_str())
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("registration failed for {}", failed.join(",")))
        }
    }

    fn send_register(&mut self, i: usize, auth: Option<String>) {
        let branch = self.token();
        let (uas_port, domain, run) = (self.uas_port, self.o.domain.clone(), self.run_tag);
        let r = &mut self.regs[i];
        r.cseq += 1;
        let user = r.user.clone();
        let mut h = format!(
            "REGISTER sip:{domain} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{uas_port};rport;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{domain}>;tag=r{user}{run:x}\r\n\
             To: <sip:{user}@{domain}>\r\n\
             Call-ID: reg-{run:x}-{user}@127.0.0.1\r\n\
             CSeq: {} REGISTER\r\n\
             Contact: <sip:{user}@127.0.0.1:{uas_port}>\r\n\
             Expires: 3600\r\n\
             User-Agent: media-bench\r\n",
            r.cseq
        );
        if let Some(a) = auth {
            h.push_str(&format!("Authorization: {a}\r\n"));
        }
        r.msg = sip::finish(h, "");
        r.sent = Instant::now();
        let msg = r.msg.clone();
        self.send_sip(&self.uas, self.o.sip, &msg);
    }

    fn on_register_response(&mut self, m: &sip::Msg) {
        let call_id = m.call_id();
        let Some(i) = self
            .regs
            .iter()
            .position(|r| call_id.starts_with(&format!("reg-{:x}-{}@", self.run_tag, r.user)))
        else {
            return;
        };
        let status = m.status().unwrap_or(0);
        let state = self.regs[i].state;
        match (status, state) {
            (200..=299, _) => self.regs[i].state = RegState::Ok,
            (401 | 407, RegState::Sent) => {
                let hdr = if status == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                let chal = m
                    .all(hdr)
                    .filter_map(sip::parse_challenge)
                    .find(|c| c.algorithm.eq_ignore_ascii_case("MD5"));
                let Some(chal) = chal else {
                    eprintln!("media-bench: no MD5 digest challenge for {}", self.regs[i].user);
                    self.regs[i].state = RegState::Failed;
                    return;
                };
                let user = self.regs[i].user.clone();
                let pass = format!("{}{}", self.o.password_prefix, user);
                let uri = format!("sip:{}", self.o.domain);
                let cnonce = self.token();
                let auth = sip::authorization(&chal, &user, &pass, "REGISTER", &uri, &cnonce);
                let auth = if status == 401 {
                    auth
                } else {
                    auth.replace("Authorization", "Proxy-Authorization")
                };
                self.regs[i].state = RegState::SentAuth;
                self.regs[i].tries = 0;
                self.send_register(i, Some(auth));
            }
            (100..=199, _) => {}
            _ => {
                eprintln!(
                    "media-bench: REGISTER {} answered {}",
                    self.regs[i].user, m.start
                );
                self.regs[i].state = RegState::Failed;
            }
        }
    }

    // ---------------------------------------------------------------- SIP: the caller (A)

    fn new_calls(&mut self, n: usize) {
        self.step_base += self.calls.len() as u64 + 1_000;
        for c in &self.calls {
            for a in [c.sw_a, c.sw_b].into_iter().flatten() {
                self.port_map[a.port() as usize] = 0;
            }
        }
        self.by_a.clear();
        self.by_b.clear();
        let now = Instant::now();
        let users = self.o.users.len();
        self.calls = (0..n)
            .map(|i| {
                let id = self.step_base + i as u64;
                let r = (id as u32).wrapping_mul(2_654_435_761) ^ self.run_tag;
                Call {
                    id,
                    user: i % users,
                    k: i % self.o.sockets,
                    caller: format!("55{id:08}"),
                    a_call_id: format!("mb-{:x}-{id}@127.0.0.1", self.run_tag),
                    a_ruri: String::new(),
                    a_branch: String::new(),
                    a_state: AState::Inviting,
                    a_status: 0,
                    a_provisional: false,
                    a_msg: Vec::new(),
                    a_first: now,
                    a_sent: now,
                    a_tries: 0,
                    a_ack: Vec::new(),
                    a_to: String::new(),
                    a_target: String::new(),
                    a_dropped: false,
                    sw_a: None,
                    b_call_id: None,
                    b_ok: Vec::new(),
                    b_ok_sent: now,
                    b_ok_tries: 0,
                    b_acked: false,
                    b_bye: false,
                    b_pt: 0,
                    sw_b: None,
                    ready: false,
                    a_seq: r as u16,
                    a_ts: r.rotate_left(7),
                    a_ssrc: r ^ 0xa5a5_0001,
                    b_seq: (r >> 16) as u16,
                    b_ts: r.rotate_left(19),
                    b_ssrc: r ^ 0x5a5a_0002,
                    a_sent_pkts: 0,
                    b_sent_pkts: 0,
                    a_recv: 0,
                    b_recv: 0,
                    a_tx_us: Box::new([0; RING]),
                    b_tx_us: Box::new([0; RING]),
                    a_first_rx: None,
                    b_first_rx: None,
                }
            })
            .collect();
        for (i, c) in self.calls.iter().enumerate() {
            self.by_a.insert(c.a_call_id.clone(), i);
        }
        self.target = n;
        self.placed = 0;
        self.bye_cursor = 0;
        self.byes_sent = 0;
        self.census = Census::default();
    }

    fn place(&mut self, idx: usize, now: Instant) {
        let branch = self.token();
        let k = self.calls[idx].k;
        let rtp = self.rtp_a[k].local_addr().expect("bound");
        let mut formats: Vec<(u8, &str, Option<&str>)> = vec![(0, "PCMU/8000", None)];
        if self.o.te {
            formats.push((101, "telephone-event/8000", Some("0-16")));
        }
        let c = &self.calls[idx];
        let body = sip::sdp(c.id, rtp, &formats);
        let user = &self.o.users[c.user];
        let (sip_addr, uac_port) = (self.o.sip, self.uac_port);
        let ruri = format!("sip:{user}@{sip_addr}");
        let h = format!(
            "INVITE {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{uac_port};rport;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{caller}@127.0.0.1>;tag=a{id}\r\n\
             To: <sip:{user}@{sip_addr}>\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:{caller}@127.0.0.1:{uac_port}>\r\n\
             User-Agent: media-bench\r\n",
            caller = c.caller,
            id = c.id,
            cid = c.a_call_id,
        );
        let msg = sip::finish(h, &body);
        self.send_sip(&self.uac, self.o.sip, &msg);
        let c = &mut self.calls[idx];
        c.a_msg = msg;
        c.a_ruri = ruri;
        c.a_branch = branch;
        c.a_first = now;
        c.a_sent = now;
        c.a_tries = 0;
    }

    fn bye(&mut self, idx: usize, now: Instant) {
        let branch = self.token();
        let uac_port = self.uac_port;
        let c = &mut self.calls[idx];
        let h = format!(
            "BYE {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{uac_port};rport;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{caller}@127.0.0.1>;tag=a{id}\r\n\
             To: {to}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 2 BYE\r\n\
             User-Agent: media-bench\r\n",
            target = c.a_target,
            caller = c.caller,
            id = c.id,
            to = c.a_to,
            cid = c.a_call_id,
        );
        c.a_msg = sip::finish(h, "");
        c.a_state = AState::Byeing;
        c.a_sent = now;
        c.a_tries = 0;
        c.ready = false;
        let msg = c.a_msg.clone();
        self.send_sip(&self.uac, self.o.sip, &msg);
    }

    fn on_uac(&mut self, data: &[u8], from: SocketAddr) {
        let Some(m) = sip::Msg::parse(data) else {
            return;
        };
        if let Some(method) = m.method() {
            // A request on the caller's dialog: the switch hangs up (or refreshes).
            if method == "ACK" {
                return;
            }
            if method == "BYE" {
                if let Some(&i) = self.by_a.get(m.call_id()) {
                    let c = &mut self.calls[i];
                    if matches!(c.a_state, AState::Up | AState::Inviting) {
                        c.a_state = AState::Ended;
                        c.a_dropped = true;
                        c.ready = false;
                    }
                }
            }
            let resp = response(&m, 200, "OK", None, "", None);
            self.send_sip(&self.uac, from, &resp);
            return;
        }
        let Some(&i) = self.by_a.get(m.call_id()) else {
            return;
        };
        let status = m.status().unwrap_or(0);
        let (_, method) = m.cseq();
        let now = Instant::now();
        match method {
            "INVITE" => {
                if status < 200 {
                    self.calls[i].a_provisional = true;
                    return;
                }
                let to = m.header("To").unwrap_or("").to_string();
                if (200..300).contains(&status) {
                    let c = &mut self.calls[i];
                    if c.a_state == AState::Inviting {
                        c.a_to = to.clone();
                        c.a_target = m
                            .header("Contact")
                            .map(sip::uri_of)
                            .unwrap_or(c.a_ruri.as_str())
                            .to_string();
                        c.sw_a = sip::parse_sdp(m.body).addr;
                        c.a_state = AState::Up;
                        c.a_status = status;
                        let branch = self.token();
                        let c = &mut self.calls[i];
                        let h = format!(
                            "ACK {target} SIP/2.0\r\n\
                             Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK{branch}\r\n\
                             Max-Forwards: 70\r\n\
                             From: <sip:{caller}@127.0.0.1>;tag=a{id}\r\n\
                             To: {to}\r\n\
                             Call-ID: {cid}\r\n\
                             CSeq: 1 ACK\r\n",
                            target = c.a_target,
                            port = self.uac_port,
                            caller = c.caller,
                            id = c.id,
                            cid = c.a_call_id,
                        );
                        c.a_ack = sip::finish(h, "");
                        self.check_ready(i);
                    }
                    // First 200 or a retransmission: (re-)ACK.
                    let ack = self.calls[i].a_ack.clone();
                    if !ack.is_empty() {
                        self.send_sip(&self.uac, self.o.sip, &ack);
                    }
                } else {
                    let c = &mut self.calls[i];
                    let h = format!(
                        "ACK {ruri} SIP/2.0\r\n\
                         Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK{branch}\r\n\
                         Max-Forwards: 70\r\n\
                         From: <sip:{caller}@127.0.0.1>;tag=a{id}\r\n\
                         To: {to}\r\n\
                         Call-ID: {cid}\r\n\
                         CSeq: 1 ACK\r\n",
                        ruri = c.a_ruri,
                        port = self.uac_port,
                        branch = c.a_branch,
                        caller = c.caller,
                        id = c.id,
                        cid = c.a_call_id,
                    );
                    if c.a_state == AState::Inviting {
                        c.a_state = AState::Failed;
                        c.a_status = status;
                    }
                    let ack = sip::finish(h, "");
                    self.send_sip(&self.uac, self.o.sip, &ack);
                }
            }
            "BYE" if status >= 200 => {
                let c = &mut self.calls[i];
                if c.a_state == AState::Byeing {
                    c.a_state = AState::Ended;
                    c.a_status = status;
                }
                let _ = now;
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------- SIP: the callee (B)

    fn on_uas(&mut self, data: &[u8], from: SocketAddr) {
        let Some(m) = sip::Msg::parse(data) else {
            return;
        };
        let Some(method) = m.method() else {
            if m.cseq().1 == "REGISTER" {
                self.on_register_response(&m);
            }
            return;
        };
        match method {
            "INVITE" => self.on_b_invite(&m, from),
            "ACK" => {
                if let Some(&i) = self.by_b.get(m.call_id()) {
                    self.calls[i].b_acked = true;
                }
            }
            "BYE" => {
                if let Some(&i) = self.by_b.get(m.call_id()) {
                    let c = &mut self.calls[i];
                    c.b_bye = true;
                    if c.a_state == AState::Up {
                        // The switch hung up the callee while we did not ask.
                        c.a_dropped = true;
                        c.ready = false;
                    }
                }
                let resp = response(&m, 200, "OK", None, "", None);
                self.send_sip(&self.uas, from, &resp);
            }
            "CANCEL" => {
                let resp = response(&m, 200, "OK", None, "", None);
                self.send_sip(&self.uas, from, &resp);
            }
            _ => {
                let resp = response(&m, 200, "OK", None, "", None);
                self.send_sip(&self.uas, from, &resp);
            }
        }
    }

    fn on_b_invite(&mut self, m: &sip::Msg, from: SocketAddr) {
        let call_id = m.call_id().to_string();
        let idx = match self.by_b.get(&call_id) {
            Some(&i) => Some(i),
            None => m
                .header("From")
                .map(sip::uri_of)
                .and_then(sip::user_of)
                .and_then(|u| u.strip_prefix("55"))
                .and_then(|n| n.parse::<u64>().ok())
                .and_then(|id| id.checked_sub(self.step_base))
                .map(|i| i as usize)
                .filter(|i| *i < self.calls.len()),
        };
        let Some(i) = idx else {
            let resp = response(m, 480, "Not In This Run", Some("x"), "", None);
            self.send_sip(&self.uas, from, &resp);
            return;
        };
        let offer = sip::parse_sdp(m.body);
        let (codec, te_enc) = match self.o.mode {
            Mode::Relay => ("PCMU/8000", "telephone-event/8000"),
            Mode::Transcode => ("opus/48000", "telephone-event/48000"),
        };
        let (Some(pt), Some(remote)) = (offer.pt_of(codec), offer.addr) else {
            if !m.body.is_empty() {
                eprintln!(
                    "media-bench: the switch's offer has no {codec}: {}",
                    String::from_utf8_lossy(m.body)
                );
            }
            let resp = response(m, 488, "Not Acceptable Here", Some("x"), "", None);
            self.send_sip(&self.uas, from, &resp);
            return;
        };
        let mut formats: Vec<(u8, &str, Option<&str>)> = vec![match self.o.mode {
            Mode::Relay => (pt, "PCMU/8000", None),
            Mode::Transcode => (pt, "opus/48000/2", Some("useinbandfec=0")),
        }];
        let te_pt = offer.pt_of(te_enc);
        if let (true, Some(te)) = (self.o.te, te_pt) {
            formats.push((te, te_enc, Some("0-16")));
        }
        let k = self.calls[i].k;
        let rtp = self.rtp_b[k].local_addr().expect("bound");
        let (id, user) = (self.calls[i].id, self.calls[i].user);
        let body = sip::sdp(id + 1_000_000_000, rtp, &formats);
        let contact = format!(
            "<sip:{}@127.0.0.1:{}>",
            self.o.users[user], self.uas_port
        );
        let resp = response(m, 200, "OK", Some(&format!("b{id}")), &body, Some(&contact));
        self.send_sip(&self.uas, from, &resp);
        let c = &mut self.calls[i];
        if c.b_call_id.is_none() {
            c.b_call_id = Some(call_id.clone());
            c.b_pt = pt;
            c.sw_b = Some(remote);
            c.b_ok = resp;
            c.b_ok_sent = Instant::now();
            self.by_b.insert(call_id, i);
            self.check_ready(i);
        }
    }

    fn check_ready(&mut self, i: usize) {
        let c = &mut self.calls[i];
        if c.ready || c.a_state != AState::Up {
            return;
        }
        let (Some(a), Some(b)) = (c.sw_a, c.sw_b) else {
            return;
        };
        c.ready = true;
        self.port_map[a.port() as usize] = 1 + ((i as u32) << 1);
        self.port_map[b.port() as usize] = 1 + (((i as u32) << 1) | 1);
    }

    // ---------------------------------------------------------------- RTP out

    fn start_streaming(&mut self) {
        for s in &mut self.slots {
            s.clear();
        }
        for (i, c) in self.calls.iter().enumerate() {
            if c.ready {
                self.slots[i % SLOTS].push(i);
            }
        }
        for s in &mut self.slots {
            let calls = &self.calls;
            s.sort_by_key(|&i| calls[i].k);
        }
        self.streaming = true;
        self.slot = 0;
        self.next_slot_at = Instant::now();
    }

    fn send_due(&mut self) {
        let now = Instant::now();
        // Starved for longer than MAX_CATCH_UP (the CPU was taken from us): the frames of
        // the missed slots are not sent at all (a phone does not burst old audio either);
        // they are counted and show in the send rate.
        let behind = now.saturating_duration_since(self.next_slot_at);
        if behind > MAX_CATCH_UP {
            let skip = (behind.as_millis() as u64).saturating_sub(MAX_CATCH_UP.as_millis() as u64);
            self.c.skipped_slots += skip;
            self.slot = (self.slot + skip as usize) % SLOTS;
            self.next_slot_at += Duration::from_millis(skip);
        }
        while self.next_slot_at <= now {
            let lag = now.duration_since(self.next_slot_at).as_micros() as u64;
            if lag > 2_000 {
                self.c.late_slots += 1;
            }
            self.c.max_lag_us = self.c.max_lag_us.max(lag);
            self.c.slots += 1;
            self.send_slot(self.slot);
            self.slot = (self.slot + 1) % SLOTS;
            self.next_slot_at += Duration::from_millis(1);
        }
    }

    fn send_slot(&mut self, s: usize) {
        let list = std::mem::take(&mut self.slots[s]);
        let now_us = self.epoch.elapsed().as_micros() as u32;
        for side in 0..2 {
            let mut cur_k = usize::MAX;
            for &i in &list {
                let (ready, ck) = (self.calls[i].ready, self.calls[i].k);
                if !ready {
                    continue;
                }
                if ck != cur_k || self.tx.is_full() {
                    self.flush_tx(side, cur_k);
                    cur_k = ck;
                }
                let c = &mut self.calls[i];
                if side == 0 {
                    let to = c.sw_a.expect("ready");
                    let (seq, ts, ssrc) = (c.a_seq, c.a_ts, c.a_ssrc);
                    let payload = &self.pcmu;
                    let first = c.a_sent_pkts == 0;
                    self.tx.push(to, |b| {
                        media::write_header(b, 0, first, seq, ts, ssrc);
                        b[12..12 + payload.len()].copy_from_slice(payload);
                        12 + payload.len()
                    });
                    c.a_seq = seq.wrapping_add(1);
                    c.a_ts = ts.wrapping_add(160);
                    c.a_tx_us[(c.a_sent_pkts as usize) % RING] = now_us;
                    c.a_sent_pkts += 1;
                } else {
                    let to = c.sw_b.expect("ready");
                    let (seq, ts, ssrc, pt) = (c.b_seq, c.b_ts, c.b_ssrc, c.b_pt);
                    let first = c.b_sent_pkts == 0;
                    let (payload, step) = match self.o.mode {
                        Mode::Relay => (&self.pcmu, 160),
                        Mode::Transcode => {
                            (&self.opus[(c.b_sent_pkts as usize) % self.opus.len()], 960)
                        }
                    };
                    self.tx.push(to, |b| {
                        media::write_header(b, pt, first, seq, ts, ssrc);
                        b[12..12 + payload.len()].copy_from_slice(payload);
                        12 + payload.len()
                    });
                    c.b_seq = seq.wrapping_add(1);
                    c.b_ts = ts.wrapping_add(step);
                    c.b_tx_us[(c.b_sent_pkts as usize) % RING] = now_us;
                    c.b_sent_pkts += 1;
                }
            }
            self.flush_tx(side, cur_k);
        }
        self.slots[s] = list;
    }

    fn flush_tx(&mut self, side: usize, k: usize) {
        if k == usize::MAX {
            return;
        }
        let fd = if side == 0 {
            self.rtp_a[k].as_raw_fd()
        } else {
            self.rtp_b[k].as_raw_fd()
        };
        let (ok, failed) = self.tx.flush(fd);
        self.c.sent += ok as u64;
        self.c.tx_failed += failed as u64;
    }
}

/// A response to `m`: Via, From, To (with `to_tag` added when it has none), Call-ID, CSeq.
fn response(
    m: &sip::Msg,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    body: &str,
    contact: Option<&str>,
) -> Vec<u8> {
    let mut h = format!("SIP/2.0 {code} {reason}\r\n");
    for v in m.all("Via") {
        h.push_str(&format!("Via: {v}\r\n"));
    }
    if let Some(f) = m.header("From") {
        h.push_str(&format!("From: {f}\r\n"));
    }
    if let Some(t) = m.header("To") {
        match (to_tag, sip::param(t, "tag")) {
            (Some(tag), None) => h.push_str(&format!("To: {t};tag={tag}\r\n")),
            _ => h.push_str(&format!("To: {t}\r\n")),
        }
    }
    h.push_str(&format!("Call-ID: {}\r\n", m.call_id()));
    if let Some(c) = m.header("CSeq") {
        h.push_str(&format!("CSeq: {c}\r\n"));
    }
    if let Some(c) = contact {
        h.push_str(&format!("Contact: {c}\r\n"));
    }
    h.push_str("User-Agent: media-bench\r\n");
    sip::finish(h, body)
}

// -------------------------------------------------------------------- steps and the report

#[derive(Default, Clone)]
struct StepResult {
    asked: usize,
    up: usize,
    failed: usize,
    fail_codes: String,
    setup_s: f64,
    api_matched: usize,
    api_codecs: String,
    window_s: f64,
    sent_win: u64,
    sent: u64,
    recv: u64,
    min_leg_pct: f64,
    dead_legs: usize,
    dropped: usize,
    sw_cpu_us: u64,
    sw_threads: Vec<(String, u64)>,
    gen_cpu_us: u64,
    expected_win: f64,
    rss_before: u64,
    rss_up: u64,
    rss_stream: u64,
    rss_after: u64,
    /// Switch descriptors: before the step, with the calls up, after hang-up.
    fds: [usize; 3],
    active_after: Option<u64>,
    counters: Counters,
    kernel_drops: net::KernelDrops,
    /// Per CPU over the window: (busy %, softirq %).
    cpus: Vec<(f64, f64)>,
    drain_s: f64,
    /// One-way latency through the switch (p50, p99, max) in ms; relay only.
    latency_ms: Option<(f64, f64, f64)>,
    hangup_left: usize,
}

fn latency_percentiles(hist: &[u32]) -> Option<(f64, f64, f64)> {
    let total: u64 = hist.iter().map(|&n| n as u64).sum();
    if total == 0 {
        return None;
    }
    let at = |q: f64| -> f64 {
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut acc = 0u64;
        for (i, &n) in hist.iter().enumerate() {
            acc += n as u64;
            if acc >= want {
                return (i as f64 + 1.0) * LAT_BUCKET_US as f64 / 1000.0;
            }
        }
        hist.len() as f64 * LAT_BUCKET_US as f64 / 1000.0
    };
    Some((at(0.5), at(0.99), at(1.0)))
}

impl StepResult {
    fn delivered_pct(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        100.0 * self.recv as f64 / self.sent as f64
    }
    fn us_per_pkt(&self) -> f64 {
        if self.sent_win == 0 {
            return 0.0;
        }
        self.sw_cpu_us as f64 / self.sent_win as f64
    }
    fn sw_cpu_pct(&self) -> f64 {
        100.0 * self.sw_cpu_us as f64 / (self.window_s * 1e6)
    }
    fn gen_cpu_pct(&self) -> f64 {
        100.0 * self.gen_cpu_us as f64 / (self.window_s * 1e6)
    }
    /// CPU busy on CPU 0 and CPU 1 beyond the generator and the switch (other processes).
    fn noise(&self) -> String {
        let (Some(c0), Some(c1)) = (self.cpus.first(), self.cpus.get(1)) else {
            return "?".into();
        };
        format!(
            "{:.0}/{:.0}",
            (c0.0 - self.gen_cpu_pct()).max(0.0),
            (c1.0 - self.sw_cpu_pct()).max(0.0)
        )
    }
    fn gen_rate_pct(&self) -> f64 {
        if self.expected_win <= 0.0 {
            return 0.0;
        }
        100.0 * self.sent_win as f64 / self.expected_win
    }
    fn kb_per_call(&self, base: u64) -> f64 {
        if self.up == 0 {
            return 0.0;
        }
        (self.rss_stream.max(self.rss_up) as f64 - base as f64) / self.up as f64
    }
}

fn metric(body: &str, name: &str) -> Option<u64> {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

impl Bench {
    fn step(&mut self, n: usize) -> StepResult {
        let pid = self.o.pid;
        let mut r = StepResult {
            asked: n,
            rss_before: sys::rss_kb(pid).unwrap_or(0),
            fds: [sys::fd_count(pid).unwrap_or(0), 0, 0],
            ..StepResult::default()
        };
        // Set-up.
        self.new_calls(n);
        let t0 = Instant::now();
        self.placing = Some(t0);
        let limit = t0 + Duration::from_secs_f64(n as f64 / self.o.cps + 40.0);
        self.run_until(limit, |b| {
            b.placed == b.target && b.census.inviting == 0 && b.last_scan >= b.placing.unwrap()
        });
        self.placing = None;
        // Let late ACKs settle.
        self.run_until(Instant::now() + Duration::from_millis(500), |_| false);
        self.scan(Instant::now());
        r.setup_s = t0.elapsed().as_secs_f64();
        r.up = self.census.ready;
        r.failed = self.census.failed + self.census.inviting;
        let mut codes: HashMap<u16, usize> = HashMap::new();
        for c in &self.calls {
            if c.a_state != AState::Up || !c.ready {
                *codes.entry(c.a_status).or_default() += 1;
            }
        }
        let mut codes: Vec<_> = codes.into_iter().collect();
        codes.sort();
        r.fail_codes = codes
            .iter()
            .map(|(c, n)| format!("{n}x{}", if *c == 0 { "none".into() } else { c.to_string() }))
            .collect::<Vec<_>>()
            .join(" ");
        eprintln!(
            "media-bench: {n} calls: {} up, {} not ({}) in {:.1} s",
            r.up, r.failed, r.fail_codes, r.setup_s
        );
        // Cross-check with the switch's own list of calls.
        self.api_check(&mut r);
        r.rss_up = sys::rss_kb(pid).unwrap_or(0);
        r.fds[1] = sys::fd_count(pid).unwrap_or(0);

        // Streaming.
        self.start_streaming();
        let warm_end = Instant::now() + Duration::from_secs_f64(self.o.warmup);
        self.run_until(warm_end, |_| false);
        let c0 = self.c;
        self.lat.iter_mut().for_each(|b| *b = 0);
        self.lat_on = true;
        let sw0 = sys::cpu_us(pid).unwrap_or(0);
        let th0 = sys::thread_cpu_us(pid);
        let me0 = sys::cpu_us(std::process::id()).unwrap_or(0);
        let k0 = net::KernelDrops::read();
        let cpus0 = sys::cpu_times();
        let w0 = Instant::now();
        self.run_until(w0 + Duration::from_secs_f64(self.o.duration), |_| false);
        let sw1 = sys::cpu_us(pid).unwrap_or(0);
        let th1 = sys::thread_cpu_us(pid);
        let me1 = sys::cpu_us(std::process::id()).unwrap_or(0);
        let cpus1 = sys::cpu_times();
        let c1 = self.c;
        self.lat_on = false;
        r.latency_ms = latency_percentiles(&self.lat);
        r.window_s = w0.elapsed().as_secs_f64();
        self.streaming = false;
        // Drain what is in flight: until nothing came for 500 ms (at most 10 s), so that
        // packets the switch queued count as late, not lost.
        let d0 = Instant::now();
        loop {
            let before = self.c.recv;
            self.run_until(Instant::now() + Duration::from_millis(500), |_| false);
            if self.c.recv == before || d0.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        r.drain_s = d0.elapsed().as_secs_f64();
        r.kernel_drops = net::KernelDrops::read().since(&k0);
        r.cpus = cpus0
            .iter()
            .zip(cpus1.iter())
            .map(|(a, b)| {
                let total = b.2.saturating_sub(a.2).max(1) as f64;
                (
                    100.0 * b.0.saturating_sub(a.0) as f64 / total,
                    100.0 * b.1.saturating_sub(a.1) as f64 / total,
                )
            })
            .collect();
        r.rss_stream = sys::rss_kb(pid).unwrap_or(0);
        r.sw_cpu_us = sw1.saturating_sub(sw0);
        r.gen_cpu_us = me1.saturating_sub(me0);
        let mut th: Vec<(String, u64)> = th1
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(*th0.get(k).unwrap_or(&0))))
            .collect();
        th.sort_by_key(|t| std::cmp::Reverse(t.1));
        r.sw_threads = th;
        r.sent_win = c1.sent - c0.sent;
        let ready = self.calls.iter().filter(|c| c.a_sent_pkts > 0).count();
        r.expected_win = ready as f64 * 2.0 * 50.0 * r.window_s;
        let mut min_pct = f64::INFINITY;
        for c in &self.calls {
            if c.a_sent_pkts == 0 && c.b_sent_pkts == 0 {
                continue;
            }
            r.sent += c.a_sent_pkts + c.b_sent_pkts;
            r.recv += c.a_recv + c.b_recv;
            for (recv, sent) in [(c.b_recv, c.a_sent_pkts), (c.a_recv, c.b_sent_pkts)] {
                if sent > 0 {
                    if recv == 0 {
                        r.dead_legs += 1;
                    }
                    min_pct = min_pct.min(100.0 * recv as f64 / sent as f64);
                }
            }
        }
        r.min_leg_pct = if min_pct.is_finite() { min_pct } else { 0.0 };
        r.counters = Counters {
            sent: c1.sent - c0.sent,
            recv: c1.recv - c0.recv,
            tx_failed: self.c.tx_failed,
            misdirected: self.c.misdirected,
            unknown_src: self.c.unknown_src,
            bad_pt: self.c.bad_pt,
            payload_mismatch: self.c.payload_mismatch,
            rtcp: self.c.rtcp,
            late_slots: self.c.late_slots,
            skipped_slots: self.c.skipped_slots,
            slots: self.c.slots,
            max_lag_us: self.c.max_lag_us,
        };
        self.c = Counters::default();
        self.scan(Instant::now());
        r.dropped = self.census.dropped;

        // Hang up.
        let h0 = Instant::now();
        self.hanging = Some(h0);
        let limit = h0 + Duration::from_secs_f64(n as f64 / (self.o.cps * 2.0) + 20.0);
        self.run_until(limit, |b| {
            b.bye_cursor == b.calls.len()
                && b.last_scan > b.hanging.unwrap()
                && b.census.up == 0
                && b.census.byeing == 0
                && b.census.inviting == 0
                && b.census.b_open == 0
        });
        self.hanging = None;
        self.scan(Instant::now());
        r.hangup_left = self.census.up + self.census.byeing + self.census.b_open;
        // Let the switch finish its transactions, then see what is left.
        self.run_until(Instant::now() + Duration::from_secs(1), |_| false);
        r.active_after = sys::http_get(self.o.http, "/metrics")
            .ok()
            .and_then(|(_, body)| metric(&body, "switchboard_calls_active"));
        r.rss_after = sys::rss_kb(pid).unwrap_or(0);
        r.fds[2] = sys::fd_count(pid).unwrap_or(0);
        r
    }

    fn api_check(&mut self, r: &mut StepResult) {
        let Ok((200, body)) = sys::http_get(self.o.http, "/api/v1/calls") else {
            eprintln!("media-bench: GET /api/v1/calls failed");
            return;
        };
        let Ok(serde_json::Value::Array(list)) = serde_json::from_str::<serde_json::Value>(&body)
        else {
            eprintln!("media-bench: /api/v1/calls is not a JSON array");
            return;
        };
        let mine: HashMap<(SocketAddr, SocketAddr), ()> = self
            .calls
            .iter()
            .filter_map(|c| Some(((c.sw_a?, c.sw_b?), ())))
            .collect();
        let mut codecs: HashMap<String, usize> = HashMap::new();
        for v in &list {
            let addr = |k: &str| -> Option<SocketAddr> { v["media"][k].as_str()?.parse().ok() };
            if let (Some(a), Some(b)) = (addr("caller"), addr("callee")) {
                if mine.contains_key(&(a, b)) {
                    r.api_matched += 1;
                    let name = |k: &str| v["codecs"][k].as_str().unwrap_or("-").to_string();
                    *codecs
                        .entry(format!("{}/{}", name("caller"), name("callee")))
                        .or_default() += 1;
                }
            }
        }
        r.api_codecs = codecs
            .iter()
            .map(|(k, n)| format!("{n}x{k}"))
            .collect::<Vec<_>>()
            .join(" ");
    }
}

fn print_table(o: &Opts, rows: &[StepResult], fresh_rss: u64) {
    println!();
    println!(
        "media-bench: mode {} ({}), telephone-event {}; {:.0} s window after {:.0} s warm-up; switch pid {}",
        match o.mode {
            Mode::Relay => "relay",
            Mode::Transcode => "transcode",
        },
        match o.mode {
            Mode::Relay => "PCMU both legs",
            Mode::Transcode => "PCMU caller leg, Opus callee leg",
        },
        if o.te { "on" } else { "off" },
        o.duration,
        o.warmup,
        o.pid
    );
    println!(
        "{:>6} {:>6} {:>10} {:>10} {:>8} {:>8} {:>5} {:>12} {:>8} {:>7} {:>7} {:>7} {:>6} {:>7} {:>7}",
        "calls",
        "up",
        "pkts sent",
        "pkts recv",
        "deliv%",
        "minleg%",
        "dead",
        "lat p50/p99",
        "sw us/pk",
        "sw CPU%",
        "gen CPU",
        "gen rt%",
        "RSS MB",
        "kB/call",
        "noise%",
    );
    for r in rows {
        println!(
            "{:>6} {:>6} {:>10} {:>10} {:>8.3} {:>8.2} {:>5} {:>12} {:>8.2} {:>7.1} {:>7.1} {:>7.2} {:>6.1} {:>7.1} {:>7}",
            r.asked,
            r.up,
            r.sent,
            r.recv,
            r.delivered_pct(),
            r.min_leg_pct,
            r.dead_legs,
            r.latency_ms
                .map(|(a, b, _)| format!("{a:.2}/{b:.1}"))
                .unwrap_or_else(|| "-".into()),
            r.us_per_pkt(),
            r.sw_cpu_pct(),
            r.gen_cpu_pct(),
            r.gen_rate_pct(),
            r.rss_stream as f64 / 1024.0,
            r.kb_per_call(fresh_rss),
            r.noise(),
        );
    }
    println!();
    println!("columns: up = calls bridged with both RTP addresses known; pkts = RTP over the whole run");
    println!("  (warm-up + window + drain), sent by the tool's ends / received at the opposite ends;");
    println!("  minleg% = worst direction of any call; dead = directions that got nothing; lat = one-way");
    println!("  latency in ms, tool send -> switch -> tool receive, over the window (relay only); sw us/pk =");
    println!("  switch utime+stime in the window / packets sent into it in the window (each relayed once);");
    println!("  sw CPU% and gen CPU = % of one core (switch / this tool); gen rt% = packets the tool sent");
    println!("  in the window / (2 x 50 x calls x seconds); kB/call = (switch VmRSS while streaming -");
    println!("  VmRSS of the fresh switch before the first step) / calls up; noise% = CPU 0 / CPU 1 busy");
    println!("  beyond the generator / the switch during the window (other processes on this machine).");
    for r in rows {
        let c = &r.counters;
        let threads: Vec<String> = r
            .sw_threads
            .iter()
            .filter(|(_, us)| *us > 0)
            .map(|(n, us)| format!("{n} {:.1}%", 100.0 * *us as f64 / (r.window_s * 1e6)))
            .collect();
        println!(
            "  {} calls: setup {:.1} s, not up: {} ({}); /api/v1/calls matched {} ({}); switch threads: {}",
            r.asked,
            r.setup_s,
            r.failed,
            if r.fail_codes.is_empty() { "-" } else { &r.fail_codes },
            r.api_matched,
            r.api_codecs,
            threads.join(", "),
        );
        println!(
            "    window {:.1} s: sent {} recv {}; latency max {}; drain {:.1} s; late slots {}/{} (max lag {:.1} ms, skipped {}); \
             tx failed {}; kernel drops: UDP rcvbuf {} no-port {} sndbuf {} backlog {}; CPUs busy \
             (softirq): {}; misdirected {}; unknown source {}; wrong PT {}; payload changed {}; \
             RTCP {}; calls dropped by switch {}",
            r.window_s,
            c.sent,
            c.recv,
            r.latency_ms
                .map(|l| format!("{:.1} ms", l.2))
                .unwrap_or_else(|| "-".into()),
            r.drain_s,
            c.late_slots,
            c.slots,
            c.max_lag_us as f64 / 1000.0,
            c.skipped_slots,
            c.tx_failed,
            r.kernel_drops.udp_in_errors,
            r.kernel_drops.udp_no_ports,
            r.kernel_drops.udp_sndbuf_errors,
            r.kernel_drops.backlog,
            r.cpus
                .iter()
                .enumerate()
                .map(|(i, (b, s))| format!("cpu{i} {b:.0}% ({s:.0}%)"))
                .collect::<Vec<_>>()
                .join(", "),
            c.misdirected,
            c.unknown_src,
            c.bad_pt,
            c.payload_mismatch,
            c.rtcp,
            r.dropped,
        );
        println!(
            "    RSS kB: before {} / calls up {} / streaming {} / after hang-up {}; descriptors {} / {} / after {}; \
             calls active after hang-up: {}{}",
            r.rss_before,
            r.rss_up,
            r.rss_stream,
            r.rss_after,
            r.fds[0],
            r.fds[1],
            r.fds[2],
            r.active_after
                .map(|v| v.to_string())
                .unwrap_or_else(|| "?".into()),
            if r.hangup_left > 0 {
                format!(" (tool: {} not hung up cleanly)", r.hangup_left)
            } else {
                String::new()
            }
        );
    }
}

/// Waits (at most `--quiet-wait`) until the machine is idle apart from us: less than 15% of
/// the CPUs busy over a second. Other processes on a shared machine distort every figure.
fn wait_quiet(o: &Opts) {
    if o.quiet_wait <= 0.0 {
        return;
    }
    let start = Instant::now();
    let mut busy = 0.0;
    while start.elapsed() < Duration::from_secs_f64(o.quiet_wait) {
        let a = sys::cpu_times();
        std::thread::sleep(Duration::from_secs(1));
        let b = sys::cpu_times();
        let (mut used, mut total) = (0u64, 0u64);
        for (x, y) in a.iter().zip(b.iter()) {
            used += y.0.saturating_sub(x.0);
            total += y.2.saturating_sub(x.2);
        }
        busy = 100.0 * used as f64 / total.max(1) as f64;
        if busy < 15.0 {
            if start.elapsed() > Duration::from_secs(2) {
                eprintln!(
                    "media-bench: waited {:.0} s for other processes to quieten",
                    start.elapsed().as_secs_f64()
                );
            }
            return;
        }
    }
    eprintln!("media-bench: the machine stays busy ({busy:.0}% of all CPUs); figures will be disturbed");
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("media-bench: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let nofile = sys::raise_nofile();
    if nofile < (4 * o.sockets + 64) as u64 {
        eprintln!("media-bench: RLIMIT_NOFILE {nofile} is too low");
        std::process::exit(1);
    }
    if !sys::alive(o.pid) {
        eprintln!("media-bench: no process {}", o.pid);
        std::process::exit(1);
    }
    match sys::http_get(o.http, "/api/v1/health") {
        Ok((200, _)) => {}
        other => {
            eprintln!("media-bench: switch not healthy at {}: {other:?}", o.http);
            std::process::exit(1);
        }
    }
    let fresh_rss = sys::rss_kb(o.pid).unwrap_or(0);
    let mut b = match Bench::new(o) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("media-bench: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = b.register_all() {
        eprintln!("media-bench: {e}");
        std::process::exit(1);
    }
    eprintln!(
        "media-bench: registered {} user(s); SIP UAC :{} UAS :{}; {} RTP sockets per side",
        b.o.users.len(),
        b.uac_port,
        b.uas_port,
        b.o.sockets
    );
    let mut rows = Vec::new();
    let mut crashed = false;
    for (i, n) in b.o.calls.clone().into_iter().enumerate() {
        if !sys::alive(b.o.pid) {
            crashed = true;
            break;
        }
        if i > 0 && b.o.gap > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(b.o.gap));
        }
        wait_quiet(&b.o);
        let r = b.step(n);
        eprintln!(
            "media-bench: {n} calls: delivered {:.3}%, switch {:.2} us/packet ({:.1}% CPU), generator {:.1}% CPU, {:.1} kB/call",
            r.delivered_pct(),
            r.us_per_pkt(),
            r.sw_cpu_pct(),
            r.gen_cpu_pct(),
            r.kb_per_call(fresh_rss)
        );
        rows.push(r);
        if !sys::alive(b.o.pid) {
            crashed = true;
            break;
        }
    }
    print_table(&b.o, &rows, fresh_rss);
    if crashed {
        println!("SWITCH PROCESS {} DIED during the run", b.o.pid);
        std::process::exit(3);
    }
}
