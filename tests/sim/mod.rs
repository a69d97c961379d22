//! In-memory harness for whole calls through `switchboard::call::Switch`.
//!
//! Three pieces, all sans-IO and on simulated time:
//! - [`Net`]: a seeded network that delays every datagram (fixed, or uniformly random in a
//!   range) and drops a seeded fraction of them, plus an optional targeted drop rule. It logs
//!   every datagram, delivered or not, so tests can count what went over the wire.
//! - [`Ua`]: a simulated SIP user agent built on the crate's `TransactionLayer` (so it
//!   retransmits like a real UA under loss). It registers with digest, places calls (answering
//!   407 with Proxy-Authorization), answers calls per its [`Behaviour`], retransmits its 2xx
//!   until ACK (RFC 3261 §13.3.1.4) and reliable provisionals until PRACK (RFC 3262), ACKs
//!   every 2xx it receives, and answers in-dialog requests. A `dead` UA neither hears nor
//!   speaks.
//! - [`Sim`]: owns the switch, the network and the UAs and steps them: each step jumps the
//!   clock to the earliest of the next delivery, the switch's `poll_timeout` and the UAs'
//!   timeouts. A step cap turns a livelock into a test failure.
//!
//! `Instant::now()` is read once per simulation, as an arbitrary origin; nothing sleeps.
#![allow(dead_code)]

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::call::{LocalAddrs, RecordedMedia, Switch, SwitchConfig};
use switchboard::config::parse_profile;
use switchboard::sip::auth::{authorization_header, parse_digest, Algorithm};
use switchboard::sip::message::{
    parse, response_to, HeaderName, Message, Method, NameAddr, Request, Response, Uri,
};
use switchboard::sip::transaction::{Incoming, Timers, TransactionLayer, Transmit, TuEvent, TxId};
use switchboard::sip::transport::{Peer, Transport};

pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
pub const T4: Duration = Duration::from_secs(5);

pub const SWITCH: &str = "127.0.0.1:5060";
pub const CARRIER: &str = "127.0.0.1:5090";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn sdp(owner: &str, port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no={owner} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a={direction}\r\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Network

/// How long a datagram takes.
#[derive(Debug, Clone, Copy)]
pub enum Delay {
    Fixed(Duration),
    /// Uniformly random whole milliseconds in `min..=max`.
    UniformMs(u64, u64),
}

/// One datagram put on the network.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub seq: usize,
    pub sent: Instant,
    pub at: Instant,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub bytes: Bytes,
    pub dropped: bool,
}

impl Datagram {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    pub fn start_line(&self) -> String {
        self.text().lines().next().unwrap_or("").to_string()
    }
    /// The first value of a header, by its canonical name, read from the raw text (works for
    /// messages our parser rejects).
    pub fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
    pub fn is_request(&self, method: &str) -> bool {
        self.start_line().starts_with(&format!("{method} "))
    }
    pub fn status(&self) -> Option<u16> {
        let l = self.start_line();
        let rest = l.strip_prefix("SIP/2.0 ")?;
        rest.get(..3)?.parse().ok()
    }
    pub fn reason(&self) -> Option<String> {
        let l = self.start_line();
        l.strip_prefix("SIP/2.0 ")?.get(4..).map(str::to_string)
    }
    /// Method named in CSeq.
    pub fn cseq_method(&self) -> Option<String> {
        self.header("CSeq")?
            .split_whitespace()
            .nth(1)
            .map(str::to_string)
    }
    /// A response with this status to this method.
    pub fn is_response(&self, status: u16, method: &str) -> bool {
        self.status() == Some(status) && self.cseq_method().as_deref() == Some(method)
    }
}

type DropRule = Box<dyn FnMut(&Datagram) -> bool>;

/// The seeded lossy network.
pub struct Net {
    rng: SmallRng,
    pub loss: f64,
    pub delay: Delay,
    /// Drops the datagrams it returns true for (before random loss is applied).
    pub drop_rule: Option<DropRule>,
    pub log: Vec<Datagram>,
    queue: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Net {
    pub fn new(seed: u64, loss: f64, delay: Delay) -> Net {
        Net {
            rng: SmallRng::seed_from_u64(seed ^ 0x5eed_0f10),
            loss,
            delay,
            drop_rule: None,
            log: Vec::new(),
            queue: BinaryHeap::new(),
        }
    }

    /// No loss, 10 ms every hop: deterministic ordering for protocol checks.
    pub fn perfect() -> Net {
        Net::new(0, 0.0, Delay::Fixed(ms(10)))
    }

    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: Bytes) {
        let delay = match self.delay {
            Delay::Fixed(d) => d,
            Delay::UniformMs(lo, hi) => ms(self.rng.gen_range(lo..=hi)),
        };
        let lost = self.loss > 0.0 && self.rng.gen_bool(self.loss);
        let seq = self.log.len();
        let mut d = Datagram {
            seq,
            sent: now,
            at: now + delay,
            from,
            to,
            bytes,
            dropped: false,
        };
        let ruled = self.drop_rule.as_mut().is_some_and(|rule| rule(&d));
        d.dropped = ruled || lost;
        if !d.dropped {
            self.queue.push(Reverse((d.at, seq)));
        }
        self.log.push(d);
    }

    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _))| *at)
    }

    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    fn pop_due(&mut self, now: Instant) -> Option<usize> {
        match self.queue.peek() {
            Some(Reverse((at, _))) if *at <= now => self.queue.pop().map(|Reverse((_, i))| i),
            _ => None,
        }
    }

    /// Datagrams (delivered or dropped) from `from` to `to` matching `pred`.
    pub fn count(
        &self,
        from: SocketAddr,
        to: SocketAddr,
        pred: impl Fn(&Datagram) -> bool,
    ) -> usize {
        self.between(from, to).filter(|d| pred(d)).count()
    }

    pub fn between(
        &self,
        from: SocketAddr,
        to: SocketAddr,
    ) -> impl Iterator<Item = &Datagram> + '_ {
        self.log
            .iter()
            .filter(move |d| d.from == from && d.to == to)
    }

    /// A readable trace of the last `n` datagrams, for failure messages.
    pub fn transcript(&self, t0: Instant, n: usize) -> String {
        let skip = self.log.len().saturating_sub(n);
        let mut s = String::new();
        for d in self.log.iter().skip(skip) {
            s.push_str(&format!(
                "  {:>9.3}s {} -> {} {} [{}]{}\n",
                (d.sent - t0).as_secs_f64(),
                d.from,
                d.to,
                d.start_line(),
                d.header("CSeq").unwrap_or_default(),
                if d.dropped { " DROPPED" } else { "" }
            ));
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// User agent

/// How a UA answers a new INVITE.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    /// Ring forever (until CANCEL).
    Never,
    /// Final response `status` after a delay.
    After(Duration, u16),
}

/// What a UA does on its own when called.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Send 180 Ringing on a new INVITE.
    pub ring: bool,
    /// Send the 180 reliably (Require: 100rel, RSeq: 1) and retransmit it until PRACK.
    pub reliable_ringing: bool,
    pub answer: Answer,
    /// Our session description (offer in INVITEs, answer in 2xx).
    pub sdp: String,
    /// A Session-Expires value to put in our 2xx to an initial INVITE.
    pub session_expires: Option<String>,
}

impl Behaviour {
    pub fn new(owner: &str, port: u16) -> Behaviour {
        Behaviour {
            ring: true,
            reliable_ringing: false,
            answer: Answer::After(secs(1), 200),
            sdp: sdp(owner, port, "sendrecv"),
            session_expires: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Uac,
    Uas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// INVITE sent or received, no dialog-creating response yet.
    Trying,
    Early,
    Confirmed,
    Terminated,
}

/// A response retransmitted by the UA core until its PRACK/ACK.
#[derive(Debug, Clone)]
pub struct Retrans {
    pub cseq: u32,
    pub bytes: Bytes,
    pub interval: Duration,
    pub next: Instant,
    pub give_up: Instant,
}

/// The outcome of an in-dialog request we sent.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub method: Method,
    pub cseq: u32,
    pub status: u16,
    pub body: Bytes,
    pub at: Instant,
}

/// One call (an INVITE dialog) as one UA sees it.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub role: Role,
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    pub local_uri: String,
    pub remote_uri: String,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    pub remote_target: Uri,
    pub state: DialogState,
    /// UAC: the last initial INVITE sent. UAS: the INVITE received.
    pub invite: Option<Request>,
    pub invite_tx: Option<TxId>,
    pub auth_tried: bool,
    pub cancelled: bool,
    /// UAC: statuses of the initial INVITE as the TU saw them (2xx retransmissions included).
    pub invite_statuses: Vec<u16>,
    pub final_status: Option<u16>,
    pub answered_at: Option<Instant>,
    pub cancel_status: Option<u16>,
    /// UAS: when to send the final response, and which.
    pub answer_at: Option<(Instant, u16)>,
    pub pending_2xx: Option<Retrans>,
    pub pending_1xx: Option<Retrans>,
    pub retransmitted_2xx: u32,
    pub acks_received: u32,
    pub acks_sent: u32,
    /// Our 2xx was never ACKed within 64*T1 (we then sent BYE).
    pub ack_timeout: bool,
    pub bye_received: Option<Instant>,
    pub bye_status: Option<u16>,
    pub last_remote_sdp: Option<Bytes>,
    pub outcomes: Vec<Outcome>,
}

impl Dialog {
    fn new(
        role: Role,
        call_id: String,
        local_tag: String,
        local_uri: String,
        remote_uri: String,
        remote_target: Uri,
    ) -> Dialog {
        Dialog {
            role,
            call_id,
            local_tag,
            remote_tag: None,
            local_uri,
            remote_uri,
            local_cseq: 1,
            remote_cseq: None,
            remote_target,
            state: DialogState::Trying,
            invite: None,
            invite_tx: None,
            auth_tried: false,
            cancelled: false,
            invite_statuses: Vec::new(),
            final_status: None,
            answered_at: None,
            cancel_status: None,
            answer_at: None,
            pending_2xx: None,
            pending_1xx: None,
            retransmitted_2xx: 0,
            acks_received: 0,
            acks_sent: 0,
            ack_timeout: false,
            bye_received: None,
            bye_status: None,
            last_remote_sdp: None,
            outcomes: Vec::new(),
        }
    }

    /// The outcome of our in-dialog request of this method (the last one).
    pub fn outcome(&self, method: Method) -> Option<&Outcome> {
        self.outcomes.iter().rev().find(|o| o.method == method)
    }
}

/// Registration as the UA sees it.
#[derive(Debug, Clone, Default)]
pub struct RegState {
    pub statuses: Vec<u16>,
    pub registered: bool,
    /// The algorithms of the challenges we got, in order.
    pub challenge_algorithms: Vec<String>,
    /// The Authorization value we sent.
    pub authorization: Option<String>,
    /// The 200's Contact values.
    pub contacts: Vec<String>,
}

impl RegState {
    pub fn final_status(&self) -> Option<u16> {
        self.statuses
            .iter()
            .rev()
            .copied()
            .find(|s| *s >= 200 && *s != 401)
    }
}

/// What reached a UA's transaction user.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub msg: Message,
}

#[derive(Debug, Clone)]
enum Purpose {
    Register,
    Invite(usize),
    Cancel(usize),
    InDialog(usize, Method),
}

/// A simulated user agent.
pub struct Ua {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub switch: SocketAddr,
    pub user: String,
    pub password: Option<String>,
    /// Which challenge to answer when several are offered.
    pub digest: Algorithm,
    pub domain: String,
    pub behaviour: Behaviour,
    /// A dead UA drops everything it receives and sends nothing.
    pub dead: bool,
    pub dialogs: Vec<Dialog>,
    pub reg: RegState,
    pub log: Vec<Seen>,
    pub parse_failures: usize,
    /// Client transactions that timed out (timer B/F).
    pub timeouts: Vec<(Instant, Method)>,
    layer: TransactionLayer,
    rng: SmallRng,
    clients: HashMap<TxId, Purpose>,
    /// Client transactions whose final response was recorded.
    finished: HashSet<TxId>,
    reg_call_id: String,
    reg_tag: String,
    reg_cseq: u32,
}

impl Ua {
    pub fn new(name: &'static str, at: &str, user: &str, password: Option<&str>, seed: u64) -> Ua {
        let mut rng = SmallRng::seed_from_u64(seed);
        let reg_call_id = format!("reg-{:x}@{}", rng.gen::<u64>(), name);
        let reg_tag = format!("{:x}", rng.gen::<u32>());
        let port = addr(at).port();
        Ua {
            name,
            addr: addr(at),
            switch: addr(SWITCH),
            user: user.to_string(),
            password: password.map(str::to_string),
            digest: Algorithm::Md5,
            domain: "switchboard.local".into(),
            behaviour: Behaviour::new(name, port * 10),
            dead: false,
            dialogs: Vec::new(),
            reg: RegState::default(),
            log: Vec::new(),
            parse_failures: 0,
            timeouts: Vec::new(),
            layer: TransactionLayer::new(Timers {
                t1: T1,
                t2: T2,
                t4: T4,
            }),
            rng,
            clients: HashMap::new(),
            finished: HashSet::new(),
            reg_call_id,
            reg_tag,
            reg_cseq: 0,
        }
    }

    // ---- queries

    /// Live transactions in this UA.
    pub fn transactions(&self) -> usize {
        self.layer.len()
    }

    /// Nothing running: no transactions, no pending retransmissions or answers.
    pub fn is_idle(&self) -> bool {
        self.dead
            || (self.layer.is_empty()
                && self.dialogs.iter().all(|d| {
                    d.pending_2xx.is_none() && d.pending_1xx.is_none() && d.answer_at.is_none()
                }))
    }

    /// Requests of a method that reached the TU, in order.
    pub fn requests(&self, m: Method) -> Vec<&Request> {
        self.log
            .iter()
            .filter_map(|s| match &s.msg {
                Message::Request(r) if r.method == m => Some(r),
                _ => None,
            })
            .collect()
    }

    /// When the first request of a method reached the TU.
    pub fn first_request_at(&self, m: Method) -> Option<Instant> {
        self.log.iter().find_map(|s| match &s.msg {
            Message::Request(r) if r.method == m => Some(s.at),
            _ => None,
        })
    }

    /// Responses (to requests of `m`, by CSeq) that reached the TU, in order.
    pub fn responses(&self, m: Method) -> Vec<&Response> {
        self.log
            .iter()
            .filter_map(|s| match &s.msg {
                Message::Response(r) if r.cseq().map(|c| c.method == m).unwrap_or(false) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The UAS dialog created by the n-th INVITE we received.
    pub fn uas_dialog(&self, n: usize) -> Option<usize> {
        self.dialogs
            .iter()
            .enumerate()
            .filter(|(_, d)| d.role == Role::Uas)
            .nth(n)
            .map(|(i, _)| i)
    }

    // ---- building blocks

    fn token(&mut self) -> String {
        format!("{:016x}", self.rng.gen::<u64>())
    }

    fn via(&mut self) -> String {
        let branch = self.token();
        format!("SIP/2.0/UDP {};branch=z9hG4bK{branch};rport", self.addr)
    }

    pub fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.user, self.addr)
    }

    fn to_switch(&self) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: self.switch,
        }
    }

    fn find_dialog(&self, call_id: &str, local_tag: &str) -> Option<usize> {
        self.dialogs
            .iter()
            .position(|d| d.call_id == call_id && d.local_tag == local_tag)
    }

    fn seen(&mut self, at: Instant, msg: Message) {
        self.log.push(Seen { at, msg });
    }

    // ---- registration

    /// Sends REGISTER (no credentials; the 401 is answered automatically).
    pub fn register(&mut self, now: Instant) {
        self.send_register(now, None);
    }

    fn send_register(&mut self, now: Instant, authorization: Option<String>) {
        self.reg_cseq += 1;
        let aor = format!("<sip:{}@{}>", self.user, self.domain);
        let mut r = Request::new(
            Method::Register,
            Uri::parse(&format!("sip:{}", self.domain)).expect("registrar uri"),
        );
        r.headers.push(HeaderName::Via, self.via());
        r.headers.push(HeaderName::MaxForwards, "70");
        r.headers
            .push(HeaderName::From, format!("{aor};tag={}", self.reg_tag));
        r.headers.push(HeaderName::To, aor);
        r.headers
            .push(HeaderName::CallId, self.reg_call_id.as_str());
        r.headers
            .push(HeaderName::CSeq, format!("{} REGISTER", self.reg_cseq));
        r.headers.push(HeaderName::Contact, self.contact());
        r.headers.push(HeaderName::Expires, "3600");
        if let Some(a) = authorization {
            self.reg.authorization = Some(a.clone());
            r.headers.push(HeaderName::Authorization, a);
        }
        let tx = self.layer.send_request(now, r, self.to_switch());
        self.clients.insert(tx, Purpose::Register);
    }

    fn on_register_response(&mut self, now: Instant, resp: Response) {
        self.reg.statuses.push(resp.status);
        match resp.status {
            200..=299 => {
                self.reg.registered = true;
                self.reg.contacts = resp
                    .headers
                    .get_all(&HeaderName::Contact)
                    .map(str::to_string)
                    .collect();
            }
            401 => {
                let challenges: Vec<_> = resp
                    .headers
                    .get_all(&HeaderName::WwwAuthenticate)
                    .filter_map(|v| parse_digest(v).ok())
                    .collect();
                self.reg.challenge_algorithms = challenges
                    .iter()
                    .map(|c| c.algorithm.clone().unwrap_or_else(|| "MD5".into()))
                    .collect();
                let Some(password) = self.password.clone() else {
                    return;
                };
                if self.reg.statuses.iter().filter(|s| **s == 401).count() > 1 {
                    return; // rejected twice: give up
                }
                let Some(ch) = challenges
                    .iter()
                    .find(|c| c.algorithm().ok() == Some(self.digest))
                else {
                    return;
                };
                let cnonce = self.token();
                let uri = format!("sip:{}", self.domain);
                let auth =
                    authorization_header(ch, "REGISTER", &uri, &self.user, &password, &cnonce, 1)
                        .expect("answerable challenge");
                self.send_register(now, Some(auth));
            }
            _ => {}
        }
    }

    // ---- calls we place

    /// Sends an INVITE for `target` (the user part) with our SDP offer; returns the dialog.
    pub fn invite(&mut self, now: Instant, target: &str) -> usize {
        let call_id = format!("{}@{}", self.token(), self.addr.ip());
        let local_tag = self.token();
        let local_uri = format!("<sip:{}@{}>", self.user, self.addr);
        let remote_uri = format!("<sip:{}@{}>", target, self.domain);
        let ruri = Uri::parse(&format!("sip:{}@{}", target, self.switch)).expect("uri");
        self.dialogs.push(Dialog::new(
            Role::Uac,
            call_id,
            local_tag,
            local_uri,
            remote_uri,
            ruri,
        ));
        let d = self.dialogs.len() - 1;
        self.send_invite(now, d, None);
        d
    }

    fn send_invite(&mut self, now: Instant, d: usize, proxy_auth: Option<String>) {
        let via = self.via();
        let contact = self.contact();
        let body = self.behaviour.sdp.clone();
        let dl = &mut self.dialogs[d];
        let mut r = Request::new(Method::Invite, dl.remote_target.clone());
        r.headers.push(HeaderName::Via, via);
        r.headers.push(HeaderName::MaxForwards, "70");
        r.headers.push(
            HeaderName::From,
            format!("{};tag={}", dl.local_uri, dl.local_tag),
        );
        r.headers.push(HeaderName::To, dl.remote_uri.as_str());
        r.headers.push(HeaderName::CallId, dl.call_id.as_str());
        r.headers
            .push(HeaderName::CSeq, format!("{} INVITE", dl.local_cseq));
        r.headers.push(HeaderName::Contact, contact);
        r.headers.push(
            HeaderName::Allow,
            "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK",
        );
        if let Some(a) = proxy_auth {
            r.headers.push(HeaderName::ProxyAuthorization, a);
        }
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = Bytes::from(body);
        dl.invite = Some(r.clone());
        let tx = self.layer.send_request(now, r, self.to_switch());
        self.dialogs[d].invite_tx = Some(tx);
        self.clients.insert(tx, Purpose::Invite(d));
    }

    /// CANCELs our pending INVITE.
    pub fn cancel(&mut self, now: Instant, d: usize) {
        let inv = self.dialogs[d].invite.clone().expect("an INVITE to cancel");
        let mut c = Request::new(Method::Cancel, inv.uri.clone());
        for h in [
            HeaderName::Via,
            HeaderName::MaxForwards,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
        ] {
            if let Some(v) = inv.headers.get(&h) {
                c.headers.push(h, v);
            }
        }
        let seq = inv.cseq().expect("cseq").seq;
        c.headers.push(HeaderName::CSeq, format!("{seq} CANCEL"));
        self.dialogs[d].cancelled = true;
        let tx = self.layer.send_request(now, c, self.to_switch());
        self.clients.insert(tx, Purpose::Cancel(d));
    }

    /// Builds an in-dialog request (RFC 3261 §12.2.1.1), Via included.
    fn in_dialog(&mut self, d: usize, method: Method) -> Request {
        let via = self.via();
        let contact = self.contact();
        let dl = &mut self.dialogs[d];
        if method != Method::Ack && method != Method::Cancel {
            dl.local_cseq += 1;
        }
        let mut r = Request::new(method.clone(), dl.remote_target.clone());
        r.headers.push(HeaderName::Via, via);
        r.headers.push(HeaderName::MaxForwards, "70");
        r.headers.push(
            HeaderName::From,
            format!("{};tag={}", dl.local_uri, dl.local_tag),
        );
        match &dl.remote_tag {
            Some(t) => r
                .headers
                .push(HeaderName::To, format!("{};tag={t}", dl.remote_uri)),
            None => r.headers.push(HeaderName::To, dl.remote_uri.as_str()),
        }
        r.headers.push(HeaderName::CallId, dl.call_id.as_str());
        r.headers
            .push(HeaderName::CSeq, format!("{} {method}", dl.local_cseq));
        if matches!(method, Method::Invite | Method::Update) {
            r.headers.push(HeaderName::Contact, contact);
        }
        r
    }

    /// Sends an in-dialog request (re-INVITE, UPDATE, INFO, BYE...) with an optional body.
    pub fn send_in_dialog(
        &mut self,
        now: Instant,
        d: usize,
        method: Method,
        body: Option<(&str, &str)>,
    ) -> TxId {
        let mut r = self.in_dialog(d, method.clone());
        if let Some((ct, b)) = body {
            r.headers.push(HeaderName::ContentType, ct);
            r.body = Bytes::from(b.to_string());
        }
        if method == Method::Bye {
            let dl = &mut self.dialogs[d];
            dl.state = DialogState::Terminated;
            dl.pending_2xx = None;
            dl.pending_1xx = None;
            dl.answer_at = None;
        }
        let tx = self.layer.send_request(now, r, self.to_switch());
        self.clients.insert(tx, Purpose::InDialog(d, method));
        tx
    }

    pub fn bye(&mut self, now: Instant, d: usize) {
        self.send_in_dialog(now, d, Method::Bye, None);
    }

    /// ACK for a 2xx (RFC 3261 §13.2.2.4), sent outside any transaction.
    fn send_ack(&mut self, d: usize, seq: u32) {
        let mut ack = self.in_dialog(d, Method::Ack);
        ack.headers.set(HeaderName::CSeq, format!("{seq} ACK"));
        ack.headers.remove(&HeaderName::Contact);
        self.dialogs[d].acks_sent += 1;
        let peer = self.to_switch();
        self.layer.send_stateless(peer, Bytes::from(ack.to_bytes()));
    }

    // ---- calls we answer

    fn response(&self, d: usize, req: &Request, status: u16) -> Response {
        let mut r = response_to(req, status, None, Some(&self.dialogs[d].local_tag));
        if (101..300).contains(&status) && matches!(req.method, Method::Invite | Method::Update) {
            r.headers.push(HeaderName::Contact, self.contact());
        }
        if req.method == Method::Invite && (200..300).contains(&status) {
            r.headers.push(
                HeaderName::Allow,
                "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK",
            );
        }
        r
    }

    fn answer_sdp(&self, offer: &[u8]) -> String {
        let offer = String::from_utf8_lossy(offer);
        if offer.contains("a=sendonly") {
            self.behaviour.sdp.replace("a=sendrecv", "a=recvonly")
        } else {
            self.behaviour.sdp.clone()
        }
    }

    fn on_new_invite(&mut self, now: Instant, tx: TxId, req: Request) {
        let (Ok(from), Ok(to), Ok(call_id), Ok(cseq)) =
            (req.from(), req.to(), req.call_id(), req.cseq())
        else {
            return;
        };
        let target = req
            .contacts()
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.uri)
            .unwrap_or_else(|| from.uri.clone());
        let local_tag = self.token();
        let mut dl = Dialog::new(
            Role::Uas,
            call_id.to_string(),
            local_tag,
            without_tag(&to),
            without_tag(&from),
            target,
        );
        dl.local_cseq = self.rng.gen_range(100..1000);
        dl.remote_tag = from.tag().map(str::to_string);
        dl.remote_cseq = Some(cseq.seq);
        dl.invite = Some(req.clone());
        dl.invite_tx = Some(tx);
        dl.state = DialogState::Early;
        if !req.body.is_empty() {
            dl.last_remote_sdp = Some(req.body.clone());
        }
        self.dialogs.push(dl);
        let d = self.dialogs.len() - 1;
        if self.behaviour.ring {
            let mut r = self.response(d, &req, 180);
            if self.behaviour.reliable_ringing {
                r.headers.push(HeaderName::Require, "100rel");
                r.headers.push(HeaderName::RSeq, "1");
                self.dialogs[d].pending_1xx = Some(Retrans {
                    cseq: cseq.seq,
                    bytes: Bytes::from(r.to_bytes()),
                    interval: T1,
                    next: now + T1,
                    give_up: now + 64 * T1,
                });
            }
            self.layer.respond(now, tx, &r);
        }
        match self.behaviour.answer {
            Answer::Never => {}
            Answer::After(delay, status) if delay.is_zero() => self.answer(now, d, status),
            Answer::After(delay, status) => self.dialogs[d].answer_at = Some((now + delay, status)),
        }
    }

    /// Sends the final response to the INVITE of UAS dialog `d` (if not final already).
    pub fn answer(&mut self, now: Instant, d: usize, status: u16) {
        let (Some(tx), Some(req)) = (self.dialogs[d].invite_tx, self.dialogs[d].invite.clone())
        else {
            return;
        };
        self.dialogs[d].answer_at = None;
        if self.layer.is_final(tx) {
            return;
        }
        let mut r = self.response(d, &req, status);
        if (200..300).contains(&status) {
            r.headers.push(HeaderName::ContentType, "application/sdp");
            r.body = Bytes::from(self.answer_sdp(&req.body));
            if let Some(se) = &self.behaviour.session_expires {
                r.headers.push(HeaderName::SessionExpires, se.as_str());
                r.headers.push(HeaderName::Require, "timer");
            }
            let dl = &mut self.dialogs[d];
            dl.state = DialogState::Confirmed;
            dl.answered_at = Some(now);
            dl.pending_1xx = None;
            dl.pending_2xx = Some(Retrans {
                cseq: req.cseq().map(|c| c.seq).unwrap_or(0),
                bytes: Bytes::from(r.to_bytes()),
                interval: T1,
                next: now + T1,
                give_up: now + 64 * T1,
            });
        } else {
            let dl = &mut self.dialogs[d];
            dl.state = DialogState::Terminated;
            dl.pending_1xx = None;
        }
        self.layer.respond(now, tx, &r);
    }

    fn on_request(&mut self, now: Instant, tx: TxId, req: Request) {
        let to_tag = req.to().ok().and_then(|t| t.tag().map(str::to_string));
        let Some(tag) = to_tag else {
            match req.method {
                Method::Invite => self.on_new_invite(now, tx, req),
                Method::Options => {
                    let r = response_to(&req, 200, None, Some("opt"));
                    self.layer.respond(now, tx, &r);
                }
                _ => {
                    let r = response_to(&req, 481, None, Some("none"));
                    self.layer.respond(now, tx, &r);
                }
            }
            return;
        };
        let call_id = req.call_id().unwrap_or("").to_string();
        let Some(d) = self.find_dialog(&call_id, &tag) else {
            let r = response_to(&req, 481, None, None);
            return self.layer.respond(now, tx, &r);
        };
        let seq = req.cseq().map(|c| c.seq).unwrap_or(0);
        if self.dialogs[d].state == DialogState::Terminated && req.method != Method::Bye {
            let r = response_to(&req, 481, None, None);
            return self.layer.respond(now, tx, &r);
        }
        if let Some(last) = self.dialogs[d].remote_cseq {
            if seq <= last && req.method != Method::Prack {
                let r = response_to(&req, 500, Some("CSeq out of order"), None);
                return self.layer.respond(now, tx, &r);
            }
        }
        self.dialogs[d].remote_cseq = Some(seq);
        match req.method {
            Method::Bye => {
                let dl = &mut self.dialogs[d];
                dl.state = DialogState::Terminated;
                dl.bye_received = Some(now);
                dl.pending_2xx = None;
                dl.pending_1xx = None;
                dl.answer_at = None;
                let r = self.response(d, &req, 200);
                self.layer.respond(now, tx, &r);
            }
            Method::Invite => {
                if let Some(c) = req.contacts().ok().and_then(|c| c.into_iter().next()) {
                    self.dialogs[d].remote_target = c.uri;
                }
                if !req.body.is_empty() {
                    self.dialogs[d].last_remote_sdp = Some(req.body.clone());
                }
                let mut r = self.response(d, &req, 200);
                r.headers.push(HeaderName::ContentType, "application/sdp");
                r.body = Bytes::from(self.answer_sdp(&req.body));
                self.dialogs[d].pending_2xx = Some(Retrans {
                    cseq: seq,
                    bytes: Bytes::from(r.to_bytes()),
                    interval: T1,
                    next: now + T1,
                    give_up: now + 64 * T1,
                });
                self.layer.respond(now, tx, &r);
            }
            Method::Update => {
                let mut r = self.response(d, &req, 200);
                if !req.body.is_empty() {
                    self.dialogs[d].last_remote_sdp = Some(req.body.clone());
                    r.headers.push(HeaderName::ContentType, "application/sdp");
                    r.body = Bytes::from(self.answer_sdp(&req.body));
                }
                self.layer.respond(now, tx, &r);
            }
            Method::Prack => {
                self.dialogs[d].pending_1xx = None;
                let r = self.response(d, &req, 200);
                self.layer.respond(now, tx, &r);
            }
            Method::Info | Method::Options => {
                let r = self.response(d, &req, 200);
                self.layer.respond(now, tx, &r);
            }
            _ => {
                let r = self.response(d, &req, 405);
                self.layer.respond(now, tx, &r);
            }
        }
    }

    fn on_cancel(&mut self, now: Instant, tx: TxId, req: Request, invite: Option<TxId>) {
        let Some(inv_tx) = invite else {
            let r = response_to(&req, 481, None, None);
            return self.layer.respond(now, tx, &r);
        };
        let d = self
            .dialogs
            .iter()
            .position(|d| d.role == Role::Uas && d.invite_tx == Some(inv_tx));
        let tag = d.map(|d| self.dialogs[d].local_tag.clone());
        let r = response_to(&req, 200, None, tag.as_deref());
        self.layer.respond(now, tx, &r);
        let Some(d) = d else { return };
        if !self.layer.is_final(inv_tx) {
            let inv = self.dialogs[d].invite.clone().expect("invite");
            let r = self.response(d, &inv, 487);
            self.layer.respond(now, inv_tx, &r);
            let dl = &mut self.dialogs[d];
            dl.state = DialogState::Terminated;
            dl.cancelled = true;
            dl.answer_at = None;
            dl.pending_1xx = None;
        }
    }

    fn on_ack(&mut self, ack: Request) {
        let call_id = ack.call_id().unwrap_or("").to_string();
        let Some(tag) = ack.to().ok().and_then(|t| t.tag().map(str::to_string)) else {
            return;
        };
        let Some(d) = self.find_dialog(&call_id, &tag) else {
            return;
        };
        let seq = ack.cseq().map(|c| c.seq).unwrap_or(0);
        let dl = &mut self.dialogs[d];
        dl.acks_received += 1;
        if dl.pending_2xx.as_ref().is_some_and(|r| r.cseq == seq) {
            dl.pending_2xx = None;
        }
    }

    // ---- responses to our requests

    fn on_response(&mut self, now: Instant, tx: TxId, resp: Response) {
        let Some(purpose) = self.clients.get(&tx).cloned() else {
            return;
        };
        let first_final = resp.status >= 200 && self.finished.insert(tx);
        match purpose {
            Purpose::Register => {
                if first_final {
                    self.on_register_response(now, resp);
                }
            }
            Purpose::Cancel(d) => {
                if first_final {
                    self.dialogs[d].cancel_status = Some(resp.status);
                }
            }
            Purpose::Invite(d) => self.on_invite_response(now, d, first_final, resp),
            Purpose::InDialog(d, method) => {
                let seq = resp.cseq().map(|c| c.seq).unwrap_or(0);
                if method == Method::Invite && resp.is_success() {
                    self.send_ack(d, seq);
                }
                if first_final {
                    if method == Method::Bye {
                        self.dialogs[d].bye_status = Some(resp.status);
                    }
                    if !resp.body.is_empty() {
                        self.dialogs[d].last_remote_sdp = Some(resp.body.clone());
                    }
                    self.dialogs[d].outcomes.push(Outcome {
                        method,
                        cseq: seq,
                        status: resp.status,
                        body: resp.body.clone(),
                        at: now,
                    });
                }
            }
        }
    }

    fn on_invite_response(&mut self, now: Instant, d: usize, first_final: bool, resp: Response) {
        let status = resp.status;
        self.dialogs[d].invite_statuses.push(status);
        let tag = resp.to().ok().and_then(|t| t.tag().map(str::to_string));
        let contact = resp
            .contacts()
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.uri);
        if status < 200 {
            let dl = &mut self.dialogs[d];
            if tag.is_some() && dl.state == DialogState::Trying {
                dl.state = DialogState::Early;
                dl.remote_tag = tag;
                if let Some(c) = contact {
                    dl.remote_target = c;
                }
            }
            return;
        }
        if resp.is_success() {
            let seq = resp.cseq().map(|c| c.seq).unwrap_or(0);
            if first_final {
                let dl = &mut self.dialogs[d];
                dl.final_status = Some(status);
                dl.answered_at = Some(now);
                dl.remote_tag = tag;
                if let Some(c) = contact {
                    dl.remote_target = c;
                }
                if !resp.body.is_empty() {
                    dl.last_remote_sdp = Some(resp.body.clone());
                }
                if dl.state != DialogState::Terminated {
                    dl.state = DialogState::Confirmed;
                }
            }
            self.send_ack(d, seq);
            return;
        }
        if !first_final {
            return;
        }
        if matches!(status, 401 | 407) && !self.dialogs[d].auth_tried {
            if let Some(password) = self.password.clone() {
                let hname = if status == 401 {
                    HeaderName::WwwAuthenticate
                } else {
                    HeaderName::ProxyAuthenticate
                };
                let challenges: Vec<_> = resp
                    .headers
                    .get_all(&hname)
                    .filter_map(|v| parse_digest(v).ok())
                    .collect();
                let ch = challenges
                    .iter()
                    .find(|c| c.algorithm().ok() == Some(self.digest))
                    .or(challenges.first());
                if let Some(ch) = ch {
                    let uri = self.dialogs[d].remote_target.to_string();
                    let cnonce = self.token();
                    let auth =
                        authorization_header(ch, "INVITE", &uri, &self.user, &password, &cnonce, 1)
                            .expect("answerable challenge");
                    let dl = &mut self.dialogs[d];
                    dl.auth_tried = true;
                    dl.local_cseq += 1;
                    self.send_invite(now, d, Some(auth));
                    return;
                }
            }
        }
        let dl = &mut self.dialogs[d];
        dl.final_status = Some(status);
        dl.state = DialogState::Terminated;
    }

    fn on_stray_2xx(&mut self, resp: Response) {
        let call_id = resp.call_id().unwrap_or("").to_string();
        let Some(tag) = resp.from().ok().and_then(|f| f.tag().map(str::to_string)) else {
            return;
        };
        if let Some(d) = self.find_dialog(&call_id, &tag) {
            let seq = resp.cseq().map(|c| c.seq).unwrap_or(0);
            self.send_ack(d, seq);
        }
    }

    // ---- I/O

    /// One datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.dead {
            return;
        }
        let msg = match parse(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.parse_failures += 1;
                return;
            }
        };
        let peer = Peer {
            transport: Transport::Udp,
            addr: from,
        };
        match msg {
            Message::Request(req) => match self.layer.receive_request(now, req, peer) {
                Incoming::Request { tx, req } => {
                    self.seen(now, Message::Request(req.clone()));
                    self.on_request(now, tx, req);
                }
                Incoming::Ack(ack) => {
                    self.seen(now, Message::Request(ack.clone()));
                    self.on_ack(ack);
                }
                Incoming::Cancel { tx, req, invite } => {
                    self.seen(now, Message::Request(req.clone()));
                    self.on_cancel(now, tx, req, invite);
                }
                _ => {}
            },
            Message::Response(resp) => match self.layer.receive_response(now, resp) {
                Incoming::Response { tx, resp } => {
                    self.seen(now, Message::Response(resp.clone()));
                    self.on_response(now, tx, resp);
                }
                Incoming::Stray2xx(resp) => {
                    self.seen(now, Message::Response(resp.clone()));
                    self.on_stray_2xx(resp);
                }
                _ => {}
            },
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.dead {
            while self.layer.poll_transmit().is_some() {}
            return None;
        }
        self.layer.poll_transmit()
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.dead {
            return None;
        }
        let mut next = self.layer.poll_timeout();
        for d in &self.dialogs {
            let times = [
                d.answer_at.map(|(t, _)| t),
                d.pending_2xx.as_ref().map(|r| r.next),
                d.pending_1xx.as_ref().map(|r| r.next),
            ];
            for t in times.into_iter().flatten() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.dead {
            return;
        }
        for (tx, ev) in self.layer.handle_timeout(now) {
            if ev != TuEvent::Timeout {
                continue;
            }
            let Some(purpose) = self.clients.remove(&tx) else {
                continue;
            };
            match purpose {
                Purpose::Register => self.timeouts.push((now, Method::Register)),
                Purpose::Cancel(_) => self.timeouts.push((now, Method::Cancel)),
                Purpose::Invite(d) => {
                    self.timeouts.push((now, Method::Invite));
                    let dl = &mut self.dialogs[d];
                    dl.invite_statuses.push(408);
                    dl.final_status.get_or_insert(408);
                    dl.state = DialogState::Terminated;
                }
                Purpose::InDialog(d, m) => {
                    self.timeouts.push((now, m.clone()));
                    if m == Method::Bye {
                        self.dialogs[d].bye_status.get_or_insert(408);
                    }
                }
            }
        }
        let peer = self.to_switch();
        for d in 0..self.dialogs.len() {
            if let Some((at, status)) = self.dialogs[d].answer_at {
                if at <= now {
                    self.answer(now, d, status);
                }
            }
            let mut give_up = false;
            let dl = &mut self.dialogs[d];
            for (slot, is_2xx) in [(&mut dl.pending_2xx, true), (&mut dl.pending_1xx, false)] {
                let Some(r) = slot.as_mut() else { continue };
                if r.next > now {
                    continue;
                }
                if now >= r.give_up {
                    *slot = None;
                    give_up |= is_2xx;
                    continue;
                }
                r.interval = if is_2xx {
                    (r.interval * 2).min(T2)
                } else {
                    r.interval * 2
                };
                r.next = (now + r.interval).min(r.give_up);
                self.layer.send_stateless(peer, r.bytes.clone());
                if is_2xx {
                    dl.retransmitted_2xx += 1;
                }
            }
            if give_up {
                // RFC 3261 §13.3.1.4: no ACK for our 2xx within 64*T1: end the session.
                dl.ack_timeout = true;
                if dl.state != DialogState::Terminated {
                    self.bye(now, d);
                }
            }
        }
    }
}

fn without_tag(na: &NameAddr) -> String {
    let mut na = na.clone();
    na.params.remove("tag");
    na.to_string()
}

// ---------------------------------------------------------------------------------------------
// Simulation

/// The switch, the network and the UAs on one simulated clock.
pub struct Sim {
    pub t0: Instant,
    pub now: Instant,
    pub switch: Switch,
    /// What the switch asked of the media engine.
    pub media: RecordedMedia,
    pub switch_addr: SocketAddr,
    pub net: Net,
    pub uas: Vec<Ua>,
    pub steps: u64,
    pub max_steps: u64,
}

impl Sim {
    /// A switch with `profile_yaml`, UDP on 127.0.0.1:5060, demo-carrier at 127.0.0.1:5090.
    pub fn new(profile_yaml: &str, seed: u64, net: Net) -> Sim {
        let profile = parse_profile(Path::new("sim.yaml"), profile_yaml)
            .unwrap_or_else(|e| panic!("profile does not load: {e:?}"));
        let t0 = Instant::now();
        let media = RecordedMedia::default();
        let switch = Switch::new(
            t0,
            SwitchConfig {
                profile: Arc::new(profile),
                local: LocalAddrs {
                    udp: Some(addr(SWITCH)),
                    tcp: None,
                    tls: None,
                    advertised: None,
                },
                trunk_addrs: HashMap::from([("demo-carrier".to_string(), addr(CARRIER))]),
                seed,
                nonce_secret: [7; 32],
                media: Box::new(media.clone()),
                data_dir: std::env::temp_dir().join("switchboard-sim"),
                apps: Box::new(switchboard::call::RecordedApps::default()),
                flows: switchboard::ivr::Flows::default(),
                local_epoch: switchboard::ivr::LocalDateTime::new(
                    switchboard::ivr::Date::new(2026, 11, 23).unwrap(),
                    9,
                    0,
                    0,
                )
                .unwrap(),
                acd: switchboard::acd::AcdConfig {
                    queues: vec![],
                    agents: vec![],
                    seed: 1,
                },
            },
        );
        Sim {
            t0,
            now: t0,
            switch,
            media,
            switch_addr: addr(SWITCH),
            net,
            uas: Vec::new(),
            steps: 0,
            max_steps: 500_000,
        }
    }

    pub fn add_ua(&mut self, ua: Ua) -> usize {
        assert!(
            self.uas.iter().all(|u| u.addr != ua.addr),
            "two UAs on {}",
            ua.addr
        );
        self.uas.push(ua);
        self.uas.len() - 1
    }

    pub fn ua(&self, i: usize) -> &Ua {
        &self.uas[i]
    }

    pub fn ua_mut(&mut self, i: usize) -> &mut Ua {
        &mut self.uas[i]
    }

    /// Seconds since the start, for messages.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Puts raw bytes on the wire from `from` to the switch.
    pub fn inject(&mut self, from: SocketAddr, bytes: &[u8]) {
        let to = self.switch_addr;
        self.net
            .send(self.now, from, to, Bytes::copy_from_slice(bytes));
    }

    /// Moves everything the switch and the UAs want to send onto the network.
    pub fn flush(&mut self) {
        let now = self.now;
        while let Some(t) = self.switch.poll_transmit() {
            assert_eq!(t.peer.transport, Transport::Udp);
            self.net.send(now, self.switch_addr, t.peer.addr, t.bytes);
        }
        for ua in &mut self.uas {
            while let Some(t) = ua.poll_transmit() {
                self.net.send(now, ua.addr, t.peer.addr, t.bytes);
            }
        }
    }

    fn deliver(&mut self, i: usize) {
        let (from, to, bytes) = {
            let d = &self.net.log[i];
            (d.from, d.to, d.bytes.clone())
        };
        let now = self.now;
        if to == self.switch_addr {
            self.switch.handle_message(
                now,
                Peer {
                    transport: Transport::Udp,
                    addr: from,
                },
                &bytes,
            );
        } else if let Some(ua) = self.uas.iter_mut().find(|u| u.addr == to) {
            ua.handle_datagram(now, from, &bytes);
        }
        // Anything else goes to an address nobody listens on; the log keeps it.
    }

    /// The earliest thing due anywhere.
    fn next_event(&mut self) -> Option<Instant> {
        let mut next = self.net.next_delivery();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        consider(self.switch.poll_timeout());
        for ua in &mut self.uas {
            consider(ua.poll_timeout());
        }
        next
    }

    /// One step: jump to the earliest event not after `limit` and run everything due then.
    /// Returns false (with the clock at `limit`) when nothing is due by `limit`.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.steps += 1;
        assert!(
            self.steps <= self.max_steps,
            "drive loop exceeded {} steps at +{:?}: livelock\n{}",
            self.max_steps,
            self.elapsed(),
            self.net.transcript(self.t0, 40)
        );
        self.flush();
        let Some(at) = self.next_event().filter(|t| *t <= limit) else {
            self.now = self.now.max(limit);
            return false;
        };
        self.now = self.now.max(at);
        let now = self.now;
        while let Some(i) = self.net.pop_due(now) {
            self.deliver(i);
            self.flush();
        }
        if self.switch.poll_timeout().is_some_and(|t| t <= now) {
            self.switch.handle_timeout(now);
        }
        for ua in &mut self.uas {
            if ua.poll_timeout().is_some_and(|t| t <= now) {
                ua.handle_timeout(now);
            }
        }
        self.flush();
        true
    }

    /// Runs until `done` holds (true) or the clock reaches `limit` (false, clock at `limit`).
    pub fn run_until(&mut self, limit: Instant, mut done: impl FnMut(&Sim) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if !self.step(limit) {
                return done(self);
            }
        }
    }

    /// Runs for at most `d` until `done` holds.
    pub fn within(&mut self, d: Duration, done: impl FnMut(&Sim) -> bool) -> bool {
        let limit = self.now + d;
        self.run_until(limit, done)
    }

    /// Runs everything due up to and including `now + d`.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        self.run_until(limit, |_| false);
    }

    /// Runs everything due strictly before `t`, then sets the clock to `t` (nothing due at
    /// `t` has run yet).
    pub fn run_before(&mut self, t: Instant) {
        assert!(t > self.now);
        self.run_until(t - Duration::from_nanos(1), |_| false);
        self.flush();
        self.now = t;
    }

    /// No transaction anywhere, nothing pending in any UA, nothing on the wire.
    pub fn quiet(&self) -> bool {
        self.switch.transactions() == 0
            && self.net.in_flight() == 0
            && self.uas.iter().all(Ua::is_idle)
    }

    pub fn transcript(&self, n: usize) -> String {
        self.net.transcript(self.t0, n)
    }
}
