//! The B2BUA call core: every call is two legs bridged through Switchboard.
//!
//! Contract: [`Switch`] is sans-IO. The runtime feeds it datagrams or framed stream messages
//! (`handle_message(now, peer, bytes)`) and wake-ups (`handle_timeout(now)`), then drains
//! `poll_transmit()` and asks `poll_timeout()` when to wake it next. It never reads the clock,
//! owns no socket and draws randomness only from the seeded generator it was given, so whole
//! calls run on simulated time in tests.
//!
//! Inside: the transaction layer, the registrar with digest authentication, routing by the
//! profile, and the calls. A call's A leg is the caller's dialog (we are its UAS), its B leg
//! the dialog we place towards a registered user or a trunk (we are its UAC). Everything one
//! leg says that matters to the other is relayed: provisional and final responses, ACK with
//! late-offer answers, BYE, CANCEL (with the CANCEL/2xx race), re-INVITE, UPDATE, INFO, and
//! session timers (RFC 4028) end calls whose peers died. Media is passed through in the SDP
//! until the media engine anchors it.

mod app;
#[cfg(test)]
mod app_tests;
mod callback;
mod leg;
mod media;
mod queue;
mod register;
mod routing;
#[cfg(test)]
mod tests;
mod trunk_register;

pub use app::{AppInput, AppRequest, AppServices, HttpRequest, RecordedApps};
pub use leg::{Leg, SessionTimer, Side};
pub use media::{MediaControl, MediaLog, RecordedMedia};
pub use queue::{AgentRequestError, CONTACT_HISTORY, DEFAULT_HOLD_MUSIC};
pub use routing::{Identity, RouteDecision};

use crate::config::Profile;
use crate::media::engine::{LegId, MediaCommand, MediaEvent};
use crate::sdp::Direction;
use crate::sip::auth::{NonceIssuer, Verifier};
use crate::sip::message::{
    self, parse, response_to, HeaderName, Message, Method, NameAddr, Request, Response, Uri,
};
use crate::sip::registrar::{Registrar, RegistrarLimits};
use crate::sip::transaction::{Incoming, Timers, TransactionLayer, Transmit, TuEvent, TxId};
use crate::sip::transport::{Peer, Transport};
use bytes::Bytes;
use media::{CallMedia, MediaLeg, SDP};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::VecDeque;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, info_span, warn};

const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY, REGISTER";
const SUPPORTED: &str = "100rel, timer, replaces";
const USER_AGENT: &str = concat!("Switchboard/", env!("CARGO_PKG_VERSION"));

/// Our own addresses, per transport, as written in Via and Contact.
#[derive(Debug, Clone, Default)]
pub struct LocalAddrs {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    /// Host (or host:port) to advertise instead of the bound address (NAT).
    pub advertised: Option<String>,
}

impl LocalAddrs {
    /// `host:port` to put in Via/Contact for a transport.
    pub fn host_port(&self, t: Transport) -> String {
        let addr = match t {
            Transport::Udp => self.udp.or(self.tcp),
            Transport::Tcp => self.tcp.or(self.udp),
            Transport::Tls => self.tls.or(self.tcp),
        };
        let port = addr.map(|a| a.port()).unwrap_or(5060);
        match &self.advertised {
            Some(a) if a.contains(':') && !a.starts_with('[') => a.clone(),
            Some(a) => format!("{a}:{port}"),
            None => match addr {
                Some(SocketAddr::V6(v6)) => format!("[{}]:{}", v6.ip(), port),
                Some(a) => a.to_string(),
                None => format!("127.0.0.1:{port}"),
            },
        }
    }
}

/// Everything the switch needs to start.
pub struct SwitchConfig {
    pub profile: Arc<Profile>,
    pub local: LocalAddrs,
    /// Trunk name → resolved outbound address (the runtime resolves host names).
    pub trunk_addrs: HashMap<String, SocketAddr>,
    pub seed: u64,
    pub nonce_secret: [u8; 32],
    /// The media engine's ports and commands.
    pub media: Box<dyn MediaControl>,
    /// Where recordings go (`recordings/` below it).
    pub data_dir: PathBuf,
    /// Prompts, speech and HTTP for calls run by IVR flows.
    pub apps: Box<dyn AppServices>,
    /// The IVR flows routes may send calls to.
    pub flows: crate::ivr::Flows,
    /// The business's local time at the `now` given to [`Switch::new`].
    pub local_epoch: crate::ivr::LocalDateTime,
    /// Queues and agents.
    pub acd: crate::acd::AcdConfig,
}

/// Where a new leg goes.
#[derive(Debug, Clone)]
struct Destination {
    uri: Uri,
    peer: Peer,
    /// The To header value for the new leg.
    to: String,
    /// Trunks whose capacity the leg takes.
    trunks: Vec<String>,
    /// Who the far end is, for the decisions it may ask of us (transfers).
    identity: Identity,
    /// The route asks for recording.
    record: bool,
}

/// Counters for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub messages_received: u64,
    pub parse_errors: u64,
    pub bad_requests_answered: u64,
    pub rate_limited: u64,
    pub calls_started: u64,
    pub calls_answered: u64,
    pub calls_failed: u64,
    pub calls_active: u64,
    pub registrations_ok: u64,
    pub auth_failures: u64,
    pub foreign_in_dialog_rejected: u64,
    pub dtmf_digits: u64,
}

type CallKey = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CallTimer {
    /// The B leg rang too long.
    Ring,
    /// Retransmit our 2xx on a side until its ACK.
    Retransmit2xx(u8),
    /// Retransmit a reliable provisional to A until PRACK.
    Reliable1xx,
    /// The peer on a side did not refresh the session.
    SessionExpiry(u8),
    /// We refresh the session on a side.
    SessionRefresh(u8),
    /// Forget an ended call after late retransmissions have passed.
    Linger,
    /// The IVR flow's next deadline.
    App,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Waiting for the B leg to answer.
    Early,
    Answered,
    /// BYE sent or received; waiting for the last transactions.
    Ending,
}

/// What a client transaction of a call is for.
#[derive(Debug, Clone)]
enum TxRole {
    /// The initial INVITE on B.
    BInvite,
    /// A CANCEL on B.
    Cancel,
    /// A BYE we sent on a side.
    Bye,
    /// PRACK we sent on B.
    Prack,
    /// A session refresh we sent on a side.
    Refresh(Side),
    /// A request forwarded from the other side's server transaction `origin`.
    Forwarded { origin: TxId, origin_side: Side },
    /// The INVITE to a transfer target.
    TransferInvite,
    /// A NOTIFY about a transfer's progress.
    Notify,
    /// The initial INVITE from A (server side).
    AInvite,
    /// An in-dialog request we answer ourselves (server side).
    Local,
    /// Our INVITE on an A leg we place (a callback's agent).
    OriginateA,
    /// An INVITE to another agent rung with the B leg (ring-all).
    Ring,
}

/// A blind transfer (RFC 3515 REFER) the switch carries out: the transferor asked that the
/// transferee be connected to a new party. The new party gets our offer on a media leg of
/// its own; when it answers, the media engine bridges it to the transferee (who notices
/// nothing), the transferor is told (NOTIFY with a sipfrag) and released.
#[derive(Debug)]
struct Transfer {
    transferor: Side,
    /// The new leg, with its INVITE and destination identity.
    leg: Leg,
    invite: Request,
    invite_tx: TxId,
    identity: Identity,
    trunks: Vec<String>,
    /// The new party's media leg.
    media: MediaLeg,
}

#[derive(Debug)]
struct Retrans2xx {
    tx: TxId,
    bytes: Bytes,
    interval: Duration,
    give_up: Instant,
}

#[derive(Debug)]
struct Call {
    span: tracing::Span,
    state: CallState,
    a: Leg,
    b: Option<Leg>,
    a_invite_tx: TxId,
    a_invite: Request,
    b_invite: Option<Request>,
    b_invite_tx: Option<TxId>,
    /// Who is on each side (A, B), for decisions the parties ask of us (transfers).
    identities: [Identity; 2],
    /// A blind transfer in progress.
    transfer: Option<Box<Transfer>>,
    /// Trunks whose call counters include this call.
    trunks: Vec<String>,
    /// A CANCEL arrived before B sent any provisional: send it when one comes.
    cancel_pending: bool,
    b_provisional: bool,
    b_auth_tried: bool,
    /// A 2xx we sent per side, retransmitted until ACK.
    retrans: [Option<Retrans2xx>; 2],
    /// An ACK held for a side until the other side's ACK brings the late-offer answer.
    /// Reliable provisional to A awaiting PRACK: (bytes, rseq, interval, give_up).
    reliable_1xx: Option<(Bytes, u32, Duration, Instant)>,
    a_rseq: u32,
    a_requires_100rel: bool,
    timers: Vec<(CallTimer, Instant)>,
    /// Transactions of this call still open (BYE/CANCEL), so the call lingers until they end.
    open_client_txs: u32,
    /// Trunk counters already released.
    released: bool,
    /// Every transaction id this call put in the switch's index.
    tx_ids: Vec<TxId>,
    /// Media legs and recording.
    media: CallMedia,
    /// An echo test: the caller hears itself, there is no B leg.
    echo: bool,
    /// DTMF digits received, in order (RFC 4733, in-band, SIP INFO).
    digits: String,
    recording_path: Option<PathBuf>,
    answered_at: Option<Instant>,
    /// The IVR flow running this call (no B leg until it transfers or queues).
    app: Option<app::App>,
    /// The B leg answered (its dialog is confirmed).
    b_answered: bool,
    /// The call's place in the contact centre.
    queued: Option<queue::Queued>,
    /// Hang up when the prompt playing ends (feature-code confirmations).
    hangup_after_prompt: bool,
    /// A callback this call carries out (A is the agent, B the customer).
    callback: Option<callback::CallbackCall>,
    /// The A leg is ours (we sent its INVITE): a callback's agent leg.
    outbound_a: bool,
    /// The caller number the B leg presents, when not the A leg's.
    present: Option<String>,
    /// The queue and agent that served the call, once the agent is gone (survey).
    served: Option<(String, String)>,
}

/// What the API shows of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSummary {
    pub id: u64,
    pub state: &'static str,
    pub caller: String,
    pub called: String,
    pub codecs: [Option<String>; 2],
    /// Our media address per leg (caller, callee), as advertised in SDP.
    pub media: [Option<SocketAddr>; 2],
    pub digits: String,
    pub recording: Option<PathBuf>,
    pub duration_ms: u64,
    /// For calls run by an IVR flow: where it is (`flow/step`) or where it sent the caller.
    pub flow: Option<String>,
    /// What the caller pressed or said in the flow.
    pub inputs: Vec<String>,
    /// The queue the caller waits in (or was answered from), and the agent who answered.
    pub queue: Option<String>,
    pub agent: Option<String>,
    /// The post-call survey's score (the survey flow's `survey.score`).
    pub survey: Option<String>,
}

impl Call {
    /// A call in its first state: the A leg and its INVITE (received, or ours for calls we
    /// place), nothing else yet.
    fn new(
        span: tracing::Span,
        a: Leg,
        a_invite: Request,
        a_invite_tx: TxId,
        identity: routing::Identity,
        trunks: Vec<String>,
    ) -> Call {
        Call {
            span,
            state: CallState::Early,
            a,
            b: None,
            a_invite_tx,
            a_invite,
            b_invite: None,
            b_invite_tx: None,
            identities: [identity.clone(), identity],
            transfer: None,
            trunks,
            cancel_pending: false,
            b_provisional: false,
            b_auth_tried: false,
            retrans: [None, None],
            reliable_1xx: None,
            a_rseq: 0,
            a_requires_100rel: false,
            timers: vec![],
            open_client_txs: 0,
            released: false,
            tx_ids: vec![a_invite_tx],
            media: CallMedia::default(),
            echo: false,
            digits: String::new(),
            recording_path: None,
            answered_at: None,
            app: None,
            b_answered: false,
            queued: None,
            hangup_after_prompt: false,
            callback: None,
            outbound_a: false,
            present: None,
            served: None,
        }
    }

    /// Switchboard answered the caller itself (IVR, queue) or placed the call (callback): a
    /// B leg comes and goes later.
    fn answered_by_us(&self) -> bool {
        self.app.is_some() || self.queued.is_some() || self.callback.is_some()
    }

    fn leg(&self, side: Side) -> Option<&Leg> {
        match side {
            Side::A => Some(&self.a),
            Side::B => self.b.as_ref(),
        }
    }
    fn leg_mut(&mut self, side: Side) -> Option<&mut Leg> {
        match side {
            Side::A => Some(&mut self.a),
            Side::B => self.b.as_mut(),
        }
    }
    fn set_timer(&mut self, t: CallTimer, at: Instant) {
        self.timers.retain(|(k, _)| *k != t);
        self.timers.push((t, at));
    }
    fn clear_timer(&mut self, t: CallTimer) {
        self.timers.retain(|(k, _)| *k != t);
    }
    fn next_timer(&self) -> Option<Instant> {
        self.timers.iter().map(|(_, at)| *at).min()
    }
}

#[derive(Debug, Default)]
struct TrunkUse {
    active: u32,
    second: u64,
    in_second: u32,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The switch: transaction layer, registrar, routing and calls.
pub struct Switch {
    profile: Arc<Profile>,
    local: LocalAddrs,
    trunk_addrs: HashMap<String, SocketAddr>,
    timers: Timers,
    epoch: Instant,
    rng: SmallRng,
    layer: TransactionLayer,
    registrar: Registrar,
    verifier: Verifier,
    /// Boxed: a `Call` is several kB and the table keeps spare slots.
    calls: HashMap<CallKey, Box<Call>>,
    next_call: CallKey,
    /// (Call-ID, our tag) → call and side.
    dialogs: HashMap<(String, String), (CallKey, Side)>,
    txs: HashMap<TxId, (CallKey, TxRole)>,
    wakeups: BinaryHeap<Reverse<(Instant, CallKey)>>,
    trunk_use: HashMap<String, TrunkUse>,
    buckets: HashMap<IpAddr, Bucket>,
    stats: Stats,
    trunk_regs: Vec<trunk_register::TrunkRegistration>,
    /// INVITE client transactions that got a 2xx → the ACK we sent for it (None while the
    /// ACK waits for a late-offer answer). Every retransmitted 2xx gets the same ACK again
    /// (RFC 3261 §13.2.2.4).
    acks: HashMap<TxId, Option<(Peer, Bytes)>>,
    media: Box<dyn MediaControl>,
    /// Media leg → call and side, for the engine's events.
    leg_index: HashMap<LegId, (CallKey, Side)>,
    data_dir: PathBuf,
    /// Calls that ended, newest last (bounded).
    recent: VecDeque<CallSummary>,
    /// Transactions of trunk registrations → index in `trunk_regs`.
    reg_txs: HashMap<TxId, usize>,
    apps: Box<dyn AppServices>,
    flows: crate::ivr::Flows,
    local_epoch: crate::ivr::LocalDateTime,
    acd: crate::acd::Acd,
    /// Offers ringing an agent → the caller's call.
    offers: HashMap<crate::acd::OfferId, CallKey>,
    /// Agents by phone extension, and back; their API tokens.
    agent_ext: HashMap<String, crate::acd::AgentId>,
    agent_extension: HashMap<crate::acd::AgentId, String>,
    agent_tokens: HashMap<crate::acd::AgentId, Option<String>>,
    /// Each caller number's last agent (sticky routing), bounded.
    last_agent: HashMap<String, crate::acd::AgentId>,
    /// Hold music per queue (prompt file).
    queue_music: HashMap<String, String>,
    /// The post-call survey flow per queue.
    queue_survey: HashMap<String, String>,
    /// Queues that take callbacks.
    queue_callbacks: std::collections::HashSet<String>,
    /// B INVITEs given up while ringing: the leg, the INVITE, whether it rang (CANCEL sent).
    orphans: HashMap<TxId, (Leg, Request, bool)>,
    /// Durable records (callbacks) for the runtime to store.
    persist_out: VecDeque<crate::acd::PersistRecord>,
    /// Addresses-of-record whose bindings changed since the runtime last stored them.
    reg_dirty: std::collections::BTreeSet<String>,
    /// Agents' chosen states (ready, not ready with a reason, logged out) to store.
    agent_out: VecDeque<(String, Option<crate::acd::AgentStateChange>)>,
    /// Records of ended calls for the runtime to store.
    cdr_out: VecDeque<CallSummary>,
}

impl Switch {
    /// A switch with no calls and no registrations.
    pub fn new(now: Instant, cfg: SwitchConfig) -> Switch {
        let p = &cfg.profile;
        let timers = Timers {
            t1: p.timers.t1,
            t2: p.timers.t2,
            t4: p.timers.t4,
        };
        let registrar = Registrar::new(RegistrarLimits {
            min_expires: p.registrar.min_expires,
            max_expires: p.registrar.max_expires,
            default_expires: p.registrar.default_expires,
        });
        let issuer = NonceIssuer::new(
            cfg.nonce_secret,
            p.registrar.nonce_lifetime.as_secs().max(1),
        );
        let mut sw = Switch {
            profile: cfg.profile.clone(),
            local: cfg.local,
            trunk_addrs: cfg.trunk_addrs,
            timers,
            epoch: now,
            rng: SmallRng::seed_from_u64(cfg.seed),
            layer: TransactionLayer::new(timers),
            registrar,
            verifier: Verifier::new(issuer),
            calls: HashMap::new(),
            next_call: 1,
            dialogs: HashMap::new(),
            txs: HashMap::new(),
            wakeups: BinaryHeap::new(),
            trunk_use: HashMap::new(),
            buckets: HashMap::new(),
            stats: Stats::default(),
            trunk_regs: Vec::new(),
            acks: HashMap::new(),
            media: cfg.media,
            leg_index: HashMap::new(),
            data_dir: cfg.data_dir,
            recent: VecDeque::new(),
            reg_txs: HashMap::new(),
            apps: cfg.apps,
            flows: cfg.flows,
            local_epoch: cfg.local_epoch,
            agent_ext: cfg
                .acd
                .agents
                .iter()
                .map(|a| (a.extension.clone(), crate::acd::AgentId(a.id.clone())))
                .collect(),
            agent_extension: cfg
                .acd
                .agents
                .iter()
                .map(|a| (crate::acd::AgentId(a.id.clone()), a.extension.clone()))
                .collect(),
            agent_tokens: cfg
                .acd
                .agents
                .iter()
                .map(|a| (crate::acd::AgentId(a.id.clone()), a.api_token.clone()))
                .collect(),
            queue_music: cfg
                .acd
                .queues
                .iter()
                .filter_map(|q| Some((q.name.clone(), q.hold_music.clone()?)))
                .collect(),
            queue_survey: cfg
                .acd
                .queues
                .iter()
                .filter_map(|q| Some((q.name.clone(), q.survey_flow.clone()?)))
                .collect(),
            queue_callbacks: cfg
                .acd
                .queues
                .iter()
                .filter(|q| q.callback.is_some())
                .map(|q| q.name.clone())
                .collect(),
            acd: crate::acd::Acd::new(cfg.acd),
            offers: HashMap::new(),
            last_agent: HashMap::new(),
            orphans: HashMap::new(),
            persist_out: VecDeque::new(),
            reg_dirty: Default::default(),
            agent_out: VecDeque::new(),
            cdr_out: VecDeque::new(),
        };
        sw.init_trunk_registrations(now);
        sw
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.calls_active = self
            .calls
            .values()
            .filter(|c| c.state != CallState::Ending)
            .count() as u64;
        s
    }

    /// Live registrations (bindings).
    pub fn registrations(&self) -> usize {
        self.registrar.binding_count()
    }

    /// Live transactions (for tests and metrics).
    pub fn transactions(&self) -> usize {
        self.layer.len()
    }

    /// Next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.layer.poll_transmit()
    }

    /// When to call `handle_timeout` next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, key))) = self.wakeups.peek().copied() {
            match self.calls.get(&key).and_then(|c| c.next_timer()) {
                Some(due) if due == at => break,
                Some(due) => {
                    // The call's timers changed: replace the stale wake-up with the real one.
                    self.wakeups.pop();
                    self.wakeups.push(Reverse((due, key)));
                }
                None => {
                    self.wakeups.pop();
                }
            }
        }
        let calls = self.wakeups.peek().map(|Reverse((at, _))| *at);
        let reg = self.registrar.next_expiry();
        [
            self.layer.poll_timeout(),
            calls,
            reg,
            self.trunk_reg_timeout(),
            self.acd.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn secs(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() + 1
    }

    fn token(&mut self, n: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| CHARS[self.rng.gen_range(0..CHARS.len())] as char)
            .collect()
    }

    fn via(&mut self, t: Transport) -> String {
        let branch = self.token(16);
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK{};rport",
            t.via_token(),
            self.local.host_port(t),
            branch
        )
    }

    fn contact(&self, t: Transport) -> String {
        match t {
            Transport::Udp => format!("<sip:switchboard@{}>", self.local.host_port(t)),
            _ => format!(
                "<sip:switchboard@{};transport={}>",
                self.local.host_port(t),
                t.param()
            ),
        }
    }

    fn track(&mut self, tx: TxId, key: CallKey, role: TxRole) {
        self.txs.insert(tx, (key, role));
        if let Some(call) = self.calls.get_mut(&key) {
            call.tx_ids.push(tx);
        }
    }

    fn schedule(&mut self, key: CallKey) {
        if let Some(at) = self.calls.get(&key).and_then(|c| c.next_timer()) {
            self.wakeups.push(Reverse((at, key)));
        }
    }

    // ------------------------------------------------------------------------------------
    // Input

    /// One datagram or framed stream message from `peer`.
    pub fn handle_message(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        self.stats.messages_received += 1;
        if bytes.len() > self.profile.limits.max_message_size {
            self.stats.parse_errors += 1;
            if let Err(e) = parse(bytes) {
                debug!(%peer, reason = %e, "oversized message dropped");
            } else if let Ok(Message::Request(r)) = parse(bytes) {
                if r.method != Method::Ack {
                    let resp = response_to(&r, 513, None, None);
                    self.send_response_stateless(peer, &resp);
                }
            }
            return;
        }
        let msg = match parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.parse_errors += 1;
                debug!(%peer, reason = %e.reason, "malformed message");
                if let Some(req) = e.request {
                    if req.method != Method::Ack {
                        let tag = self.token(10);
                        let resp = response_to(&req, e.status, Some(&e.reason), Some(&tag));
                        self.stats.bad_requests_answered += 1;
                        self.send_response_stateless(peer, &resp);
                    }
                }
                return;
            }
        };
        match msg {
            Message::Request(req) => {
                if !self.admit(now, peer.addr.ip()) {
                    self.stats.rate_limited += 1;
                    return;
                }
                self.handle_request(now, peer, req)
            }
            Message::Response(resp) => self.handle_response(now, resp),
        }
    }

    /// Per-source token bucket (limits.per_source_rate; 0 = unlimited).
    fn admit(&mut self, now: Instant, ip: IpAddr) -> bool {
        let rate = self.profile.limits.per_source_rate;
        if rate == 0 {
            return true;
        }
        let burst = (rate as f64 * 2.0).max(10.0);
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * rate as f64).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Sends the ACK for the 2xx that answered INVITE client transaction `tx`, and remembers
    /// it for that 2xx's retransmissions.
    fn send_ack(&mut self, tx: TxId, peer: Peer, mut ack: Request) {
        if !ack.headers.contains(&HeaderName::Via) {
            ack.headers
                .push_front(HeaderName::Via, self.via(peer.transport));
        }
        let bytes = Bytes::from(ack.to_bytes());
        self.acks.insert(tx, Some((peer, bytes.clone())));
        self.layer.send_stateless(peer, bytes);
    }

    /// Sends a response again outside its transaction (2xx and reliable 1xx retransmission).
    fn resend_response(&mut self, peer: Peer, bytes: Bytes) {
        match parse(&bytes) {
            Ok(Message::Response(r)) => {
                let to = response_peer(peer, &r);
                self.layer.send_stateless(to, bytes);
            }
            _ => self.layer.send_stateless(peer, bytes),
        }
    }

    fn send_response_stateless(&mut self, peer: Peer, resp: &Response) {
        let to = response_peer(peer, resp);
        self.layer.send_stateless(to, Bytes::from(resp.to_bytes()));
    }

    /// Adds received/rport to the top Via (RFC 3261 §18.2.1, RFC 3581).
    fn stamp_via(req: &mut Request, peer: Peer) {
        let Some(top) = req.headers.get(&HeaderName::Via) else {
            return;
        };
        let Some(mut via) = message::Via::parse(top) else {
            return;
        };
        let ip = peer.addr.ip().to_string();
        if via.host != ip {
            via.params.set("received", Some(&ip));
        }
        if via.params.has("rport") {
            via.params.set("rport", Some(&peer.addr.port().to_string()));
            via.params.set("received", Some(&ip));
        }
        req.headers.remove_first(&HeaderName::Via);
        req.headers.push_front(HeaderName::Via, via.to_string());
    }

    fn handle_request(&mut self, now: Instant, peer: Peer, mut req: Request) {
        Self::stamp_via(&mut req, peer);
        match self.layer.receive_request(now, req, peer) {
            Incoming::Absorbed => {}
            Incoming::Ack(ack) => self.on_ack(now, peer, ack),
            Incoming::Cancel { tx, req, invite } => self.on_cancel(now, tx, req, invite),
            Incoming::Request { tx, req } => self.on_request(now, peer, tx, req),
            Incoming::Response { .. } | Incoming::Stray2xx(_) => {}
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &Request,
        status: u16,
        reason: Option<&str>,
        tag: Option<&str>,
    ) {
        let mut resp = response_to(req, status, reason, tag);
        resp.headers.push(HeaderName::Server, USER_AGENT);
        if status == 405 || status == 501 {
            resp.headers.push(HeaderName::Allow, ALLOW);
        }
        self.layer.respond(now, tx, &resp);
    }

    fn on_request(&mut self, now: Instant, peer: Peer, tx: TxId, req: Request) {
        let to_tag = req.to().ok().and_then(|t| t.tag().map(str::to_string));
        if let Some(tag) = to_tag {
            return self.on_in_dialog(now, peer, tx, req, tag);
        }
        match req.method {
            Method::Invite => self.on_invite(now, peer, tx, req),
            Method::Register => self.on_register(now, peer, tx, req),
            Method::Options => {
                let tag = self.token(10);
                let mut resp = response_to(&req, 200, None, Some(&tag));
                resp.headers.push(HeaderName::Allow, ALLOW);
                resp.headers.push(HeaderName::Supported, SUPPORTED);
                resp.headers.push(HeaderName::Accept, "application/sdp");
                resp.headers.push(HeaderName::Server, USER_AGENT);
                self.layer.respond(now, tx, &resp);
            }
            Method::Bye
            | Method::Prack
            | Method::Update
            | Method::Info
            | Method::Refer
            | Method::Notify => self.respond(now, tx, &req, 481, None, None),
            Method::Subscribe | Method::Message | Method::Publish => {
                self.respond(now, tx, &req, 405, None, None)
            }
            _ => self.respond(now, tx, &req, 501, None, None),
        }
    }

    // ------------------------------------------------------------------------------------
    // New calls

    fn on_invite(&mut self, now: Instant, peer: Peer, tx: TxId, req: Request) {
        self.respond(now, tx, &req, 100, None, None);
        match req.max_forwards() {
            Ok(0) => return self.respond(now, tx, &req, 483, None, None),
            Err(_) => {
                return self.respond(now, tx, &req, 400, Some("malformed Max-Forwards"), None)
            }
            _ => {}
        }
        if self.calls.len() >= self.profile.limits.max_dialogs {
            return self.respond(now, tx, &req, 503, Some("Too many calls"), None);
        }
        if let Some(bad) = req
            .headers
            .get_all(&HeaderName::Require)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|t| {
                !t.is_empty()
                    && !["100rel", "timer", "replaces"]
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(t))
            })
        {
            let mut resp = response_to(&req, 420, None, None);
            resp.headers.push(HeaderName::Unsupported, bad);
            return self.layer.respond(now, tx, &resp);
        }
        // Session-Expires below our minimum: 422 (RFC 4028 §8.1).
        if let Some(se) = session_expires(&req.headers) {
            if se.0 < self.profile.timers.min_se {
                let mut resp = response_to(&req, 422, None, None);
                resp.headers.push(
                    HeaderName::MinSe,
                    self.profile.timers.min_se.as_secs().to_string(),
                );
                return self.layer.respond(now, tx, &resp);
            }
        }
        let identity = match self.identify(now, peer, &req) {
            Ok(id) => id,
            Err(reject) => return self.reject(now, tx, &req, reject),
        };
        if self.try_feature_code(now, peer, tx, &req, &identity) {
            return;
        }
        let from_user = req.from().ok().and_then(|f| f.uri.user);
        let (decision, record) = self.route(
            &identity,
            req.uri.user.as_deref().unwrap_or(""),
            from_user.as_deref(),
        );
        debug!(?identity, ?decision, "routed");
        match decision {
            RouteDecision::Reject { status, reason } => {
                self.respond(now, tx, &req, status, reason.as_deref(), None)
            }
            RouteDecision::Challenge => {
                self.reject(now, tx, &req, routing::Reject::Challenge { stale: false })
            }
            RouteDecision::Unavailable(what) => self.respond(now, tx, &req, 480, Some(&what), None),
            RouteDecision::Echo => self.start_echo(now, peer, tx, req, identity, record),
            RouteDecision::Flow(flow) => {
                let call_id = req.call_id().unwrap_or_default().to_string();
                if let (Some(key), true) =
                    (self.start_flow(now, peer, tx, req, identity, &flow), record)
                {
                    self.media_record(key, &call_id);
                }
            }
            RouteDecision::Queue(queue) => {
                self.start_queue_call(now, peer, tx, req, identity, &queue)
            }
            RouteDecision::User(_) | RouteDecision::Trunk(_) => {
                let number = req.uri.user.clone().unwrap_or_default();
                match self.resolve(now, &decision, &number) {
                    Ok(mut dest) => {
                        dest.record = record;
                        self.start_call(now, peer, tx, req, identity, dest)
                    }
                    Err((status, reason)) => {
                        self.respond(now, tx, &req, status, Some(&reason), None)
                    }
                }
            }
        }
    }

    /// Turns a routing decision into a destination for a new leg (registered contact or
    /// trunk), taking a trunk's capacity when it goes there.
    fn resolve(
        &mut self,
        now: Instant,
        decision: &RouteDecision,
        number: &str,
    ) -> Result<Destination, (u16, String)> {
        match decision {
            RouteDecision::User(ext) => {
                let binding = self
                    .registrar
                    .lookup(now, ext)
                    .first()
                    .map(|b| (b.contact_uri.clone(), b.source, b.transport.clone()));
                let (contact, source, transport) =
                    binding.ok_or((480, "Not registered".to_string()))?;
                let uri =
                    Uri::parse(&contact).ok_or((480, "Bad registered contact".to_string()))?;
                let transport = Transport::parse(&transport).unwrap_or(Transport::Udp);
                let addr = contact_destination(&uri, source, transport);
                Ok(Destination {
                    uri,
                    peer: Peer { transport, addr },
                    to: format!("<sip:{}@{}>", ext, self.profile.realm),
                    trunks: vec![],
                    identity: Identity::LocalUser(ext.clone()),
                    record: false,
                })
            }
            RouteDecision::Trunk(name) => {
                let trunk = self
                    .profile
                    .trunk(name)
                    .cloned()
                    .ok_or((500, "Unknown trunk".to_string()))?;
                let (Some(out), Some(addr)) =
                    (trunk.outbound.as_ref(), self.trunk_addrs.get(name).copied())
                else {
                    return Err((503, "Trunk has no outbound route".into()));
                };
                if !self.trunk_admit(now, name) {
                    return Err((503, "Trunk capacity reached".into()));
                }
                let transport = match out.transport {
                    crate::config::TransportKind::Udp => Transport::Udp,
                    crate::config::TransportKind::Tcp => Transport::Tcp,
                    crate::config::TransportKind::Tls => Transport::Tls,
                };
                let mut uri = Uri::sip(Some(number), &out.host, Some(out.port));
                if transport != Transport::Udp {
                    uri.params.set("transport", Some(transport.param()));
                }
                Ok(Destination {
                    uri,
                    peer: Peer { transport, addr },
                    to: format!("<sip:{}@{}>", number, out.host),
                    trunks: vec![name.clone()],
                    identity: Identity::Trunk(name.clone()),
                    record: false,
                })
            }
            RouteDecision::Reject { status, reason } => {
                Err((*status, reason.clone().unwrap_or_default()))
            }
            RouteDecision::Challenge => Err((403, "Not allowed".into())),
            RouteDecision::Unavailable(what) => Err((480, what.clone())),
            RouteDecision::Echo => Err((480, "The echo test cannot be a transfer target".into())),
            RouteDecision::Flow(_) | RouteDecision::Queue(_) => Err((
                480,
                "Only users and numbers can be dialled from here".into(),
            )),
        }
    }

    fn trunk_admit(&mut self, now: Instant, name: &str) -> bool {
        let Some(trunk) = self.profile.trunk(name) else {
            return false;
        };
        let (max_calls, max_cps) = (trunk.max_calls, trunk.max_cps);
        let sec = self.secs(now);
        let u = self.trunk_use.entry(name.to_string()).or_default();
        if u.second != sec {
            u.second = sec;
            u.in_second = 0;
        }
        if max_calls.is_some_and(|m| u.active >= m) || max_cps.is_some_and(|m| u.in_second >= m) {
            return false;
        }
        u.in_second += 1;
        true
    }

    /// Creates a call for an INVITE with its A leg (no B leg yet) and takes the trunk's
    /// capacity for an inbound trunk call. `None` when the INVITE was refused.
    fn new_call(
        &mut self,
        now: Instant,
        peer: Peer,
        tx: TxId,
        req: Request,
        identity: Identity,
        mut trunks: Vec<String>,
    ) -> Option<CallKey> {
        if let Identity::Trunk(name) = &identity {
            if !trunks.contains(name) {
                // Inbound trunk calls count against the trunk's caps too.
                if !self.trunk_admit(now, name) {
                    self.respond(now, tx, &req, 503, Some("Trunk capacity reached"), None);
                    return None;
                }
                trunks.push(name.clone());
            }
        }
        let (Ok(from), Ok(to_a), Ok(call_id)) =
            (req.from(), req.to(), req.call_id().map(str::to_string))
        else {
            return None;
        };
        for t in &trunks {
            self.trunk_use.entry(t.clone()).or_default().active += 1;
        }
        let key = self.next_call;
        self.next_call += 1;
        self.stats.calls_started += 1;
        let span = info_span!("call", id = key);
        let a_tag = self.token(10);
        let a_target = req
            .contacts()
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.uri)
            .unwrap_or_else(|| from.uri.clone());
        let a = Leg {
            side: Side::A,
            peer,
            call_id: call_id.clone(),
            local_tag: a_tag.clone(),
            remote_tag: from.tag().map(str::to_string),
            local_uri: leg::without_tag(&to_a),
            remote_uri: leg::without_tag(&from),
            local_cseq: self.rng.gen_range(1..10_000),
            remote_cseq: req.cseq().ok().map(|c| c.seq),
            remote_target: a_target,
            route_set: req
                .record_routes()
                .unwrap_or_default()
                .iter()
                .map(|r| r.to_string())
                .collect(),
            contact: self.contact(peer.transport),
            peer_allows_update: leg::allows_update(&req.headers),
            session: None,
            span: info_span!(parent: &span, "leg", side = "a", call_id = %call_id),
        };
        let a_requires_100rel = req.has_option_tag(&HeaderName::Require, "100rel");
        let mut call = Call::new(span, a, req, tx, identity, trunks);
        call.a_rseq = self.rng.gen_range(1..10_000);
        call.a_requires_100rel = a_requires_100rel;
        call.set_timer(CallTimer::Ring, now + self.profile.timers.ring_timeout);
        self.calls.insert(key, Box::new(call));
        self.txs.insert(tx, (key, TxRole::AInvite));
        self.dialogs.insert((call_id, a_tag), (key, Side::A));
        // A media leg for the caller; its offer is answered now, so a bad one fails early.
        if let Err(e) = self.media_allocate(key, Side::A) {
            warn!(error = %e, "no media ports");
            self.fail_call(now, key, 503, Some("No media resources"));
            return None;
        }
        let offer = self
            .calls
            .get(&key)
            .map(|c| c.a_invite.body.clone())
            .unwrap_or_default();
        if !offer.is_empty() {
            if let Err(e) = self.media_answer(key, Side::A, &offer) {
                info!(error = %e, "caller's offer refused");
                self.fail_call(now, key, 488, Some(&e.to_string()));
                return None;
            }
        }
        Some(key)
    }

    /// A call to a destination: the A leg, then the B leg's INVITE with our own offer.
    fn start_call(
        &mut self,
        now: Instant,
        peer: Peer,
        tx: TxId,
        req: Request,
        identity: Identity,
        dest: Destination,
    ) {
        let Destination {
            uri: target,
            peer: target_peer,
            to,
            trunks,
            identity: b_identity,
            record,
        } = dest;
        let caller = req.from().ok().map(|f| {
            (
                f.uri.user.clone().unwrap_or_else(|| "anonymous".into()),
                f.display.clone(),
            )
        });
        let called = req.uri.user.clone().unwrap_or_default();
        let Some(key) = self.new_call(now, peer, tx, req, identity.clone(), trunks) else {
            return;
        };
        let call_id = self
            .calls
            .get(&key)
            .map(|c| c.a.call_id.clone())
            .unwrap_or_default();
        if record {
            self.media_record(key, &call_id);
        }
        if let Some(call) = self.calls.get(&key) {
            let (caller_user, _) = caller.clone().unwrap_or_else(|| ("anonymous".into(), None));
            let _g = call.span.enter();
            info!(from = %redact(&caller_user), to = %redact(&called), ?identity, dest = %target_peer, "call started");
        }
        self.dial_b(
            now,
            key,
            Destination {
                uri: target,
                peer: target_peer,
                to,
                trunks: vec![],
                identity: b_identity,
                record,
            },
        );
    }

    /// A leg we place towards `dest` (we are its UAC): a new Call-ID and tag, `from` as our
    /// identity, our Contact for its transport, a span `label` under the call's.
    fn uac_leg(
        &mut self,
        side: Side,
        dest: &Destination,
        from: &NameAddr,
        parent: &tracing::Span,
        label: &'static str,
    ) -> Leg {
        let call_id = format!("{}@switchboard", self.token(20));
        let local_tag = self.token(10);
        Leg {
            side,
            peer: dest.peer,
            span: info_span!(parent: parent, "leg", side = label, call_id = %call_id),
            call_id,
            local_tag,
            remote_tag: None,
            local_uri: from.to_string(),
            remote_uri: dest.to.clone(),
            local_cseq: 0,
            remote_cseq: None,
            remote_target: dest.uri.clone(),
            route_set: vec![],
            contact: self.contact(dest.peer.transport),
            peer_allows_update: false,
            session: None,
        }
    }

    /// Places the B leg of a call towards `dest` with our own offer (its trunks are already
    /// counted against the call).
    fn dial_b(&mut self, now: Instant, key: CallKey, dest: Destination) {
        let target_peer = dest.peer;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        for t in &dest.trunks {
            if !call.trunks.contains(t) {
                call.trunks.push(t.clone());
            }
        }
        if let Err(e) = self.media_allocate(key, Side::B) {
            warn!(error = %e, "no media ports");
            if self.calls.get(&key).is_some_and(|c| c.answered_by_us()) {
                return self.app_b_failed(now, key, 503);
            }
            return self.fail_call(now, key, 503, Some("No media resources"));
        }
        let offer = self.media_offer(key, Side::B, Direction::SendRecv);
        let Some((b, invite)) = self.b_request(key, &dest, offer) else {
            return;
        };
        let (b_call_id, b_tag) = (b.call_id.clone(), b.local_tag.clone());
        let call = self.calls.get_mut(&key).expect("present");
        call.identities[Side::B.idx()] = dest.identity;
        call.b = Some(b);
        call.b_invite = Some(invite.clone());
        let b_tx = self.layer.send_request(now, invite, target_peer);
        let call = self.calls.get_mut(&key).expect("present");
        call.b_invite_tx = Some(b_tx);
        if call.answered_by_us() {
            call.set_timer(CallTimer::Ring, now + self.profile.timers.ring_timeout);
        }
        self.track(b_tx, key, TxRole::BInvite);
        self.dialogs.insert((b_call_id, b_tag), (key, Side::B));
        self.schedule(key);
    }

    /// A B leg towards `dest` and its INVITE carrying `offer`, presenting the caller (or the
    /// number the call presents instead).
    fn b_request(
        &mut self,
        key: CallKey,
        dest: &Destination,
        offer: Option<Bytes>,
    ) -> Option<(Leg, Request)> {
        let call = self.calls.get(&key)?;
        let from = NameAddr::parse(&call.a.remote_uri);
        let caller_user = call.present.clone().unwrap_or_else(|| {
            from.as_ref()
                .and_then(|f| f.uri.user.clone())
                .unwrap_or_else(|| "anonymous".into())
        });
        let display = from
            .and_then(|f| f.display)
            .filter(|_| call.present.is_none());
        let mf = call.a_invite.max_forwards().unwrap_or(70).saturating_sub(1);
        let parent = call.span.clone();
        let mut b_from = NameAddr::new(Uri::sip(Some(&caller_user), &self.profile.realm, None));
        b_from.display = display;
        let mut b = self.uac_leg(Side::B, dest, &b_from, &parent, "b");
        let via = self.via(dest.peer.transport);
        let mut invite = invite_on(&mut b, via, offer);
        invite.headers.set(HeaderName::MaxForwards, mf.to_string());
        invite.headers.push(
            HeaderName::SessionExpires,
            self.profile.timers.session_expires.as_secs().to_string(),
        );
        invite.headers.push(
            HeaderName::MinSe,
            self.profile.timers.min_se.as_secs().to_string(),
        );
        Some((b, invite))
    }

    /// The echo test: answer at once and send the caller's audio back to it.
    fn start_echo(
        &mut self,
        now: Instant,
        peer: Peer,
        tx: TxId,
        req: Request,
        identity: Identity,
        record: bool,
    ) {
        let Some(key) = self.new_call(now, peer, tx, req, identity, vec![]) else {
            return;
        };
        if record {
            let call_id = self
                .calls
                .get(&key)
                .map(|c| c.a.call_id.clone())
                .unwrap_or_default();
            self.media_record(key, &call_id);
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.echo = true;
        {
            let _g = call.span.enter();
            info!("echo test answered");
        }
        self.answer_a(now, key);
    }

    /// Answers `req` (from `side`) with 200: Contact, Session-Expires echoed, an SDP body when
    /// given; INVITE 2xx are retransmitted until their ACK (RFC 3261 §13.3.1.4).
    fn respond_2xx(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        req: &Request,
        body: Option<Bytes>,
    ) {
        let t1 = self.timers.t1;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.leg(side) else { return };
        let mut ok = response_to(req, 200, None, Some(&leg.local_tag));
        if req.method != Method::Info {
            ok.headers.push(HeaderName::Contact, leg.contact.as_str());
            ok.headers.push(HeaderName::Allow, ALLOW);
            ok.headers.push(HeaderName::Supported, SUPPORTED);
        }
        if matches!(req.method, Method::Invite | Method::Update) {
            let initial = tx == call.a_invite_tx;
            let a_supports = req.has_option_tag(&HeaderName::Supported, "timer")
                || req.has_option_tag(&HeaderName::Require, "timer");
            let (interval, refresher) = match session_expires(&req.headers) {
                Some((se, r)) => (se, r.unwrap_or_else(|| "uac".into())),
                None => (
                    self.profile.timers.session_expires,
                    if a_supports {
                        "uac".into()
                    } else {
                        "uas".into()
                    },
                ),
            };
            ok.headers.push(
                HeaderName::SessionExpires,
                format!("{};refresher={}", interval.as_secs(), refresher),
            );
            if a_supports {
                ok.headers.push(HeaderName::Require, "timer");
            }
            if initial || session_expires(&req.headers).is_some() {
                if let Some(l) = call.leg_mut(side) {
                    l.session = Some(SessionTimer {
                        interval,
                        we_refresh: refresher == "uas",
                    });
                }
            }
        }
        ok.headers.push(HeaderName::Server, USER_AGENT);
        if let Some(b) = body {
            ok.headers.push(HeaderName::ContentType, SDP);
            ok.body = b;
        }
        self.layer.respond(now, tx, &ok);
        if req.method == Method::Invite {
            let call = self.calls.get_mut(&key).expect("present");
            let s = side.idx();
            call.retrans[s] = Some(Retrans2xx {
                tx,
                bytes: Bytes::from(ok.to_bytes()),
                interval: t1,
                give_up: now + 64 * t1,
            });
            call.set_timer(CallTimer::Retransmit2xx(s as u8), now + t1);
            self.schedule(key);
        }
    }

    // ------------------------------------------------------------------------------------
    // Responses on our client transactions

    fn handle_response(&mut self, now: Instant, resp: Response) {
        match self.layer.receive_response(now, resp) {
            Incoming::Response { tx, resp } => self.on_response(now, tx, resp),
            Incoming::Stray2xx(resp) => self.on_stray_2xx(now, resp),
            _ => {}
        }
    }

    fn on_response(&mut self, now: Instant, tx: TxId, resp: Response) {
        if let Some(&i) = self.reg_txs.get(&tx) {
            if resp.status >= 200 {
                self.reg_txs.remove(&tx);
            }
            return self.on_trunk_register_response(now, i, resp);
        }
        if self.orphan_response(now, tx, &resp) {
            return;
        }
        let invite_2xx = resp.is_success() && resp.cseq().is_ok_and(|c| c.method == Method::Invite);
        if invite_2xx {
            match self.acks.get(&tx) {
                Some(Some((peer, bytes))) => {
                    let (peer, bytes) = (*peer, bytes.clone());
                    return self.layer.send_stateless(peer, bytes);
                }
                // The ACK waits for the other side's answer; it goes out when that comes.
                Some(None) => return,
                None => {
                    self.acks.insert(tx, None);
                }
            }
        }
        let Some((key, role)) = self.txs.get(&tx).cloned() else {
            return;
        };
        if resp.status >= 200 && !invite_2xx {
            self.txs.remove(&tx);
        }
        match role {
            TxRole::BInvite => self.on_b_invite_response(now, key, tx, resp),
            TxRole::OriginateA => self.on_originate_response(now, key, tx, resp),
            TxRole::Ring => self.on_ring_response(now, key, tx, resp),
            TxRole::Cancel | TxRole::Prack | TxRole::Notify => {}
            TxRole::TransferInvite => self.on_transfer_response(now, key, tx, resp),
            TxRole::Bye => {
                if resp.status >= 200 {
                    self.client_tx_done(now, key);
                }
            }
            TxRole::Refresh(side) => {
                if resp.status >= 200 {
                    if let Some(call) = self.calls.get_mut(&key) {
                        call.open_client_txs = call.open_client_txs.saturating_sub(1);
                    }
                }
                if resp.is_success() {
                    let is_invite = resp
                        .cseq()
                        .map(|c| c.method == Method::Invite)
                        .unwrap_or(false);
                    let ack = self
                        .calls
                        .get(&key)
                        .and_then(|c| c.leg(side))
                        .filter(|_| is_invite)
                        .map(|leg| (leg.ack(resp.cseq().map(|c| c.seq).unwrap_or(0)), leg.peer));
                    if let Some((ack, peer)) = ack {
                        self.send_ack(tx, peer, ack);
                    }
                    self.arm_session(now, key, side, &resp.headers, false);
                } else if matches!(resp.status, 408 | 481) {
                    self.end_call(now, key, Some(side), "session refresh failed");
                }
            }
            TxRole::Forwarded {
                origin,
                origin_side,
            } => self.relay_response(now, key, tx, origin, origin_side, resp),
            TxRole::AInvite | TxRole::Local => {}
        }
    }

    fn on_b_invite_response(&mut self, now: Instant, key: CallKey, tx: TxId, resp: Response) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _g = call.span.clone().entered();
        if call.b_invite_tx != Some(tx) {
            return;
        }
        let status = resp.status;
        if status < 200 {
            if status == 100 {
                return;
            }
            call.b_provisional = true;
            if let Some(b) = call.b.as_mut() {
                if forms_dialog(&resp) {
                    b.learn_from_response(&resp);
                }
            }
            if call.cancel_pending {
                call.cancel_pending = false;
                self.send_cancel_b(now, key);
                return;
            }
            // PRACK a reliable provisional (RFC 3262).
            if resp.has_option_tag(&HeaderName::Require, "100rel") {
                if let Some(rseq) = resp
                    .headers
                    .get(&HeaderName::RSeq)
                    .and_then(|v| v.trim().parse::<u32>().ok())
                {
                    self.send_prack(now, key, rseq, &resp);
                }
            }
            if call_state(self, key) == Some(CallState::Early) {
                self.relay_provisional(now, key, &resp);
            }
            return;
        }
        call.clear_timer(CallTimer::Ring);
        if resp.is_success() {
            self.on_b_answered(now, key, tx, resp);
            return;
        }
        // Failure: maybe authenticate to the trunk and try again.
        if matches!(status, 401 | 407) && !call.b_auth_tried {
            if let Some(retry) = self.authenticated_retry(key, &resp) {
                let call = self.calls.get_mut(&key).expect("present");
                call.b_auth_tried = true;
                let peer = call.b.as_ref().map(|b| b.peer).expect("b leg");
                let new_tx = self.layer.send_request(now, retry.clone(), peer);
                let call = self.calls.get_mut(&key).expect("present");
                call.b_invite = Some(retry);
                call.b_invite_tx = Some(new_tx);
                call.set_timer(CallTimer::Ring, now + self.profile.timers.ring_timeout);
                self.track(new_tx, key, TxRole::BInvite);
                self.schedule(key);
                return;
            }
        }
        let (code, reason) = map_failure(status, &resp.reason);
        info!(status, mapped = code, "callee failed");
        if self.calls.get(&key).is_some_and(|c| c.answered_by_us()) {
            return self.app_b_failed(now, key, status);
        }
        self.fail_call(now, key, code, Some(&reason));
    }

    /// Rebuilds the B INVITE with an Authorization for a trunk's 401/407.
    fn authenticated_retry(&mut self, key: CallKey, resp: &Response) -> Option<Request> {
        let call = self.calls.get(&key)?;
        let trunk = call.trunks.iter().find_map(|t| {
            let tr = self.profile.trunk(t)?;
            tr.outbound.as_ref()?.auth.clone()
        })?;
        let (hname, aname) = if resp.status == 401 {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        let challenge = crate::sip::auth::parse_digest(resp.headers.get(&hname)?).ok()?;
        let mut invite = call.b_invite.clone()?;
        let uri = invite.uri.to_string();
        let cnonce = {
            let c: u64 = self.rng.gen();
            format!("{c:016x}")
        };
        let auth = crate::sip::auth::authorization_header(
            &challenge,
            "INVITE",
            &uri,
            &trunk.username,
            &trunk.password,
            &cnonce,
            1,
        )
        .ok()?;
        let cseq = invite.cseq().ok()?.seq + 1;
        let call = self.calls.get_mut(&key)?;
        if let Some(b) = call.b.as_mut() {
            b.local_cseq = cseq;
        }
        invite
            .headers
            .set(HeaderName::CSeq, format!("{cseq} INVITE"));
        invite.headers.set(aname, auth);
        invite.headers.remove_first(&HeaderName::Via);
        let t = call.b.as_ref()?.peer.transport;
        invite.headers.push_front(HeaderName::Via, self.via(t));
        Some(invite)
    }

    fn send_prack(&mut self, now: Instant, key: CallKey, rseq: u32, resp: &Response) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(b) = call.b.as_mut() else { return };
        let Ok(cseq) = resp.cseq() else { return };
        let mut prack = b.request(Method::Prack);
        prack
            .headers
            .push(HeaderName::RAck, format!("{rseq} {} INVITE", cseq.seq));
        let peer = b.peer;
        prack
            .headers
            .push_front(HeaderName::Via, self.via(peer.transport));
        let tx = self.layer.send_request(now, prack, peer);
        self.track(tx, key, TxRole::Prack);
    }

    fn relay_provisional(&mut self, now: Instant, key: CallKey, resp: &Response) {
        // An early answer from B (183 with SDP) completes B's plan; A then gets our answer
        // to its offer and early media flows. A caller who made no offer gets none here: an
        // offer may only go in a reliable provisional or the 200.
        let early = !resp.body.is_empty() && self.media_accept(key, Side::B, &resp.body).is_ok();
        let a_offered = self
            .calls
            .get(&key)
            .is_some_and(|c| !c.a_invite.body.is_empty());
        let body = if early && a_offered {
            self.media_answer_body(key, Side::A)
        } else {
            None
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let mut out = response_to(
            &call.a_invite,
            resp.status,
            Some(&resp.reason),
            Some(&call.a.local_tag),
        );
        out.headers
            .push(HeaderName::Contact, call.a.contact.as_str());
        out.headers.push(HeaderName::Allow, ALLOW);
        let with_sdp = body.is_some();
        if let Some(b) = body {
            out.headers.push(HeaderName::ContentType, SDP);
            out.body = b;
        }
        if call.a_requires_100rel {
            if call.reliable_1xx.is_some() {
                // One reliable provisional at a time (RFC 3262 §3): later ones wait for PRACK.
                return;
            }
            call.a_rseq += 1;
            out.headers.push(HeaderName::Require, "100rel");
            out.headers.push(HeaderName::RSeq, call.a_rseq.to_string());
            let bytes = Bytes::from(out.to_bytes());
            call.reliable_1xx = Some((
                bytes,
                call.a_rseq,
                self.timers.t1,
                now + 64 * self.timers.t1,
            ));
            call.set_timer(CallTimer::Reliable1xx, now + self.timers.t1);
        }
        let tx = call.a_invite_tx;
        self.layer.respond(now, tx, &out);
        if with_sdp {
            self.media_commit_answer(key, Side::A);
        }
        self.schedule(key);
    }

    fn on_b_answered(&mut self, now: Instant, key: CallKey, tx: TxId, resp: Response) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(b) = call.b.as_mut() else { return };
        b.learn_from_response(&resp);
        let seq = resp.cseq().map(|c| c.seq).unwrap_or(1);
        let ack = b.ack(seq);
        let b_peer = b.peer;
        if call.answered_by_us() && call.state == CallState::Answered {
            return self.on_app_b_answered(now, key, tx, ack, b_peer, resp);
        }
        if call.state != CallState::Early {
            // The caller is gone (CANCEL/2xx race, ring timeout): ACK the answer and hang up.
            let _g = call.span.clone().entered();
            info!("callee answered after the call ended; hanging up");
            self.send_ack(tx, b_peer, ack);
            self.send_bye(now, key, Side::B);
            return;
        }
        self.send_ack(tx, b_peer, ack);
        // B's answer to our offer, unless it already came in a 183.
        let answered = if !resp.body.is_empty() {
            self.media_accept(key, Side::B, &resp.body)
                .map_err(|e| e.to_string())
        } else if self.media_awaiting_answer(key, Side::B) {
            Err("no SDP answer in the 200".to_string())
        } else {
            Ok(())
        };
        if let Err(why) = answered {
            info!(%why, "callee's answer refused");
            self.send_bye(now, key, Side::B);
            return self.fail_call(now, key, 488, Some("Callee's media is not acceptable"));
        }
        let call = self.calls.get_mut(&key).expect("present");
        call.state = CallState::Answered;
        call.b_answered = true;
        call.answered_at = Some(now);
        self.stats.calls_answered += 1;
        // 200 to A: our answer to its offer, or our own offer (late offer: the answer comes
        // in A's ACK).
        let a_offered = !call.a_invite.body.is_empty();
        let body = if a_offered {
            self.media_answer_body(key, Side::A)
        } else {
            self.media_offer(key, Side::A, Direction::SendRecv)
        };
        let call = self.calls.get_mut(&key).expect("present");
        call.reliable_1xx = None;
        call.clear_timer(CallTimer::Reliable1xx);
        let (a_tx, a_req) = (call.a_invite_tx, call.a_invite.clone());
        {
            let _g = call.span.enter();
            info!("answered");
        }
        self.respond_2xx(now, key, Side::A, a_tx, &a_req, body);
        if a_offered {
            self.media_commit_answer(key, Side::A);
        }
        self.arm_session(now, key, Side::A, &Default::default(), true);
        self.arm_session(now, key, Side::B, &resp.headers, false);
        self.schedule(key);
    }

    /// Starts the session timer of a leg from a 2xx's Session-Expires (or our own choice).
    fn arm_session(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        headers: &message::Headers,
        keep: bool,
    ) {
        let default = self.profile.timers.session_expires;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.leg_mut(side) else {
            return;
        };
        if !keep {
            leg.session = Some(match session_expires(headers) {
                // We sent the request on this leg: refresher=uac means us.
                Some((se, r)) => SessionTimer {
                    interval: se,
                    we_refresh: r.as_deref() != Some("uas"),
                },
                None => SessionTimer {
                    interval: default,
                    we_refresh: true,
                },
            });
        }
        let Some(st) = leg.session else { return };
        let s = side.idx() as u8;
        if st.we_refresh {
            call.clear_timer(CallTimer::SessionExpiry(s));
            call.set_timer(CallTimer::SessionRefresh(s), now + st.interval / 2);
        } else {
            call.clear_timer(CallTimer::SessionRefresh(s));
            let grace = (st.interval / 3).min(Duration::from_secs(32));
            call.set_timer(CallTimer::SessionExpiry(s), now + st.interval - grace);
        }
        self.schedule(key);
    }

    fn on_stray_2xx(&mut self, _now: Instant, resp: Response) {
        // A retransmitted 2xx for an INVITE whose transaction is gone: ACK it again.
        let (Ok(call_id), Ok(from)) = (resp.call_id(), resp.from()) else {
            return;
        };
        let Some(tag) = from.tag() else { return };
        let Some(&(key, side)) = self.dialogs.get(&(call_id.to_string(), tag.to_string())) else {
            return;
        };
        let Some(leg) = self.calls.get(&key).and_then(|c| c.leg(side)) else {
            return;
        };
        let seq = resp.cseq().map(|c| c.seq).unwrap_or(0);
        let mut ack = leg.ack(seq);
        let peer = leg.peer;
        ack.headers
            .push_front(HeaderName::Via, self.via(peer.transport));
        self.layer.send_stateless(peer, Bytes::from(ack.to_bytes()));
    }

    // ------------------------------------------------------------------------------------
    // Ending calls

    /// Fails a call that is still early: final response to A, CANCEL or nothing to B.
    fn fail_call(&mut self, now: Instant, key: CallKey, status: u16, reason: Option<&str>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let tx = call.a_invite_tx;
        let tag = call.a.local_tag.clone();
        let inv = call.a_invite.clone();
        call.state = CallState::Ending;
        self.stats.calls_failed += 1;
        self.respond(now, tx, &inv, status, reason, Some(&tag));
        self.linger(now, key);
    }

    /// Ends an answered (or early) call from one side: BYE the other, or both.
    fn end_call(&mut self, now: Instant, key: CallKey, except: Option<Side>, why: &str) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        {
            let _g = call.span.enter();
            info!(why, "call ending");
        }
        let was_early = call.state == CallState::Early;
        if was_early && call.outbound_a {
            return self.cancel_originated(now, key);
        }
        call.state = CallState::Ending;
        call.retrans = [None, None];
        call.timers.retain(|(t, _)| *t == CallTimer::Linger);
        if was_early {
            // Nothing answered yet: cancel B, fail A.
            if except != Some(Side::B) {
                self.send_cancel_b(now, key);
            }
            if except != Some(Side::A) {
                let call = self.calls.get(&key).expect("present");
                let (tx, inv, tag) = (
                    call.a_invite_tx,
                    call.a_invite.clone(),
                    call.a.local_tag.clone(),
                );
                self.respond(now, tx, &inv, 487, None, Some(&tag));
            }
        } else {
            let call = self.calls.get(&key).expect("present");
            let b_ringing = call.b_invite_tx.is_some() && !call.b_answered;
            for side in [Side::A, Side::B] {
                if Some(side) == except {
                    continue;
                }
                if side == Side::B && b_ringing {
                    self.send_cancel_b(now, key);
                } else {
                    self.send_bye(now, key, side);
                }
            }
        }
        self.linger(now, key);
    }

    fn send_bye(&mut self, now: Instant, key: CallKey, side: Side) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.leg_mut(side) else {
            return;
        };
        if leg.remote_tag.is_none() {
            return;
        }
        let mut bye = leg.request(Method::Bye);
        let peer = leg.peer;
        call.open_client_txs += 1;
        bye.headers
            .push_front(HeaderName::Via, self.via(peer.transport));
        let tx = self.layer.send_request(now, bye, peer);
        self.track(tx, key, TxRole::Bye);
    }

    fn send_cancel_b(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(invite) = call.b_invite.clone() else {
            return;
        };
        if !call.b_provisional {
            call.cancel_pending = true;
            return;
        }
        let Some(b) = call.b.as_ref() else { return };
        let peer = b.peer;
        let cancel = cancel_for(&invite, &b.remote_uri);
        let tx = self.layer.send_request(now, cancel, peer);
        self.track(tx, key, TxRole::Cancel);
    }

    fn client_tx_done(&mut self, now: Instant, key: CallKey) {
        if let Some(call) = self.calls.get_mut(&key) {
            call.open_client_txs = call.open_client_txs.saturating_sub(1);
        }
        self.linger(now, key);
    }

    /// Keeps an ending call around long enough to absorb retransmissions, then forgets it.
    /// Its media and trunk capacity are freed now.
    fn linger(&mut self, now: Instant, key: CallKey) {
        self.release(key);
        if let Some(call) = self.calls.get(&key) {
            if call.transfer.is_some() {
                self.transfer_failed(now, key, 487, "Request Terminated", false);
            }
        }
        let had_media = self
            .calls
            .get(&key)
            .is_some_and(|c| c.media.legs.iter().any(Option::is_some));
        if had_media {
            let summary = self.summary(now, key);
            self.media_release(key);
            if let Some(s) = summary {
                if self.recent.len() >= 200 {
                    self.recent.pop_front();
                }
                self.cdr_out.push_back(s.clone());
                self.recent.push_back(s);
            }
        }
        self.queue_call_over(now, key);
        self.callback_call_over(now, key);
        let t4 = self.timers.t4;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.set_timer(
            CallTimer::Linger,
            now + t4.max(Duration::from_secs(1)) + Duration::from_secs(5),
        );
        self.schedule(key);
    }

    fn summary(&self, now: Instant, key: CallKey) -> Option<CallSummary> {
        let c = self.calls.get(&key)?;
        let codec = |side: Side| {
            c.media
                .leg(side)
                .and_then(|l| l.plan.as_ref())
                .map(|p| p.codec.encoding.clone())
        };
        Some(CallSummary {
            id: key,
            state: match c.state {
                CallState::Early => "ringing",
                CallState::Answered => "answered",
                CallState::Ending => {
                    if c.answered_at.is_some() {
                        "ended"
                    } else {
                        "failed"
                    }
                }
            },
            caller: NameAddr::parse(&c.a.remote_uri)
                .and_then(|n| n.uri.user)
                .unwrap_or_default(),
            called: c.a_invite.uri.user.clone().unwrap_or_default(),
            codecs: [codec(Side::A), codec(Side::B)],
            media: [
                c.media.leg(Side::A).map(|l| l.local),
                c.media.leg(Side::B).map(|l| l.local),
            ],
            digits: c.digits.clone(),
            recording: c.recording_path.clone(),
            duration_ms: c
                .answered_at
                .map(|a| now.saturating_duration_since(a).as_millis() as u64)
                .unwrap_or(0),
            flow: c
                .app
                .as_ref()
                .map(|a| a.outcome.clone().unwrap_or_else(|| a.position())),
            inputs: c
                .app
                .as_ref()
                .map(|a| a.inputs().to_vec())
                .unwrap_or_default(),
            queue: c
                .queued
                .as_ref()
                .map(|q| q.queue.clone())
                .or_else(|| c.served.as_ref().map(|s| s.0.clone())),
            agent: c
                .queued
                .as_ref()
                .and_then(|q| q.agent_name())
                .or_else(|| c.served.as_ref().map(|s| s.1.clone())),
            survey: c
                .app
                .as_ref()
                .and_then(|a| a.variables().get("survey.score"))
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }

    /// The record of a call that ended, for the runtime to store.
    pub fn poll_cdr(&mut self) -> Option<CallSummary> {
        self.cdr_out.pop_front()
    }

    /// Calls in progress and the most recent ended ones (newest last), for the API.
    pub fn call_summaries(&self, now: Instant) -> Vec<CallSummary> {
        let mut out: Vec<CallSummary> = self.recent.iter().cloned().collect();
        let mut live: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| c.state != CallState::Ending)
            .map(|(k, _)| *k)
            .collect();
        live.sort();
        out.extend(live.into_iter().filter_map(|k| self.summary(now, k)));
        out
    }

    /// An event from the media engine.
    pub fn handle_media_event(&mut self, now: Instant, event: MediaEvent) {
        match event {
            MediaEvent::Dtmf { leg, digit, inband } => {
                if let Some(&(key, side)) = self.leg_index.get(&leg) {
                    self.on_digit(
                        now,
                        key,
                        side,
                        digit,
                        if inband { "in-band" } else { "rfc4733" },
                    );
                }
            }
            MediaEvent::Inactive { leg } => {
                if let Some(&(key, side)) = self.leg_index.get(&leg) {
                    if self
                        .calls
                        .get(&key)
                        .is_some_and(|c| c.state == CallState::Answered)
                    {
                        self.end_call(
                            now,
                            key,
                            None,
                            if side == Side::A {
                                "no RTP from the caller"
                            } else {
                                "no RTP from the callee"
                            },
                        );
                    }
                }
            }
            MediaEvent::PlayFinished { leg, interrupted } => {
                if let Some(&(key, Side::A)) = self.leg_index.get(&leg) {
                    self.app_play_finished(now, key, interrupted);
                }
            }
            MediaEvent::RecordingStopped { rec } => debug!(rec, "recording stopped"),
        }
    }

    /// A DTMF digit from a side of a call.
    fn on_digit(&mut self, now: Instant, key: CallKey, side: Side, digit: char, how: &'static str) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.digits.push(digit);
        self.stats.dtmf_digits += 1;
        {
            let _g = call.span.enter();
            info!(%digit, side = ?side, how, "dtmf");
        }
        if side == Side::A && self.queue_digit(now, key, digit) {
            return;
        }
        if side == Side::A && self.calls.get(&key).is_some_and(|c| c.app.is_some()) {
            self.app_event(now, key, crate::ivr::Event::Dtmf(digit));
        }
    }

    /// Gives back the call's trunk capacity once it has ended.
    fn release(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.released {
            return;
        }
        call.released = true;
        for t in &call.trunks {
            if let Some(u) = self.trunk_use.get_mut(t) {
                u.active = u.active.saturating_sub(1);
            }
        }
    }

    fn forget(&mut self, key: CallKey) {
        self.release(key);
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        self.dialogs
            .remove(&(call.a.call_id.clone(), call.a.local_tag.clone()));
        if let Some(b) = &call.b {
            self.dialogs
                .remove(&(b.call_id.clone(), b.local_tag.clone()));
        }
        for tx in &call.tx_ids {
            self.txs.remove(tx);
            self.acks.remove(tx);
        }
        let _g = call.span.enter();
        debug!("call forgotten");
    }

    // ------------------------------------------------------------------------------------
    // CANCEL and ACK

    fn on_cancel(&mut self, now: Instant, tx: TxId, req: Request, invite: Option<TxId>) {
        let Some(invite_tx) = invite else {
            return self.respond(now, tx, &req, 481, None, None);
        };
        self.respond(now, tx, &req, 200, None, None);
        let Some(&(key, _)) = self.txs.get(&invite_tx) else {
            // The INVITE was already answered finally without a call (e.g. rejected).
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.state != CallState::Early || self.layer.is_final(invite_tx) {
            return; // Too late: the 200 went out (the CANCEL/200 race); the caller will BYE.
        }
        let _g = call.span.clone().entered();
        info!("caller cancelled");
        self.end_call(now, key, None, "caller cancelled");
    }

    fn on_ack(&mut self, now: Instant, peer: Peer, ack: Request) {
        let (Ok(call_id), Ok(to)) = (ack.call_id(), ack.to()) else {
            return;
        };
        let Some(tag) = to.tag() else { return };
        let Some(&(key, side)) = self.dialogs.get(&(call_id.to_string(), tag.to_string())) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.leg(side).map(|l| l.peer.addr.ip()) != Some(peer.addr.ip()) {
            return;
        }
        let s = side.idx();
        if call.retrans[s].take().is_some() {
            call.clear_timer(CallTimer::Retransmit2xx(s as u8));
        }
        // Late offer: the ACK carries the answer to the offer in our 2xx.
        if !ack.body.is_empty() && self.media_awaiting_answer(key, side) {
            if let Err(e) = self.media_accept(key, side, &ack.body) {
                info!(error = %e, "answer in ACK refused");
                self.end_call(now, key, None, "unacceptable SDP answer");
            }
        }
        self.schedule(key);
    }

    // ------------------------------------------------------------------------------------
    // In-dialog requests

    fn on_in_dialog(&mut self, now: Instant, peer: Peer, tx: TxId, req: Request, tag: String) {
        let Ok(call_id) = req.call_id().map(str::to_string) else {
            return;
        };
        let Some(&(key, side)) = self.dialogs.get(&(call_id, tag)) else {
            return self.respond(now, tx, &req, 481, None, None);
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return self.respond(now, tx, &req, 481, None, None);
        };
        let leg = call.leg_mut(side).expect("dialog side exists");
        if leg.peer.addr.ip() != peer.addr.ip() {
            self.stats.foreign_in_dialog_rejected += 1;
            warn!(%peer, "in-dialog request from a stranger refused");
            return self.respond(now, tx, &req, 403, Some("Not a party to this dialog"), None);
        }
        let seq = req.cseq().map(|c| c.seq).unwrap_or(0);
        if let Some(last) = leg.remote_cseq {
            if seq < last || (seq == last && req.method != Method::Prack) {
                return self.respond(now, tx, &req, 500, Some("CSeq out of order"), None);
            }
        }
        leg.remote_cseq = Some(seq);
        let _g = call.span.clone().entered();
        let state = call.state;
        match req.method {
            Method::Bye => {
                self.track(tx, key, TxRole::Local);
                self.respond(now, tx, &req, 200, None, None);
                let who = if side == Side::A {
                    "caller hung up"
                } else {
                    "callee hung up"
                };
                if state == CallState::Early && side == Side::B {
                    // BYE on an early dialog from B: fail A.
                    self.fail_call(now, key, 487, None);
                    return;
                }
                if side == Side::B && self.start_survey(now, key) {
                    return;
                }
                self.end_call(now, key, Some(side), who);
            }
            Method::Prack => {
                let call = self.calls.get_mut(&key).expect("present");
                let rack = req
                    .headers
                    .get(&HeaderName::RAck)
                    .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok());
                match (&call.reliable_1xx, rack) {
                    (Some((_, rseq, _, _)), Some(r)) if *rseq == r && side == Side::A => {
                        call.reliable_1xx = None;
                        call.clear_timer(CallTimer::Reliable1xx);
                        self.respond(now, tx, &req, 200, None, None);
                    }
                    _ => self.respond(
                        now,
                        tx,
                        &req,
                        481,
                        Some("No matching reliable provisional"),
                        None,
                    ),
                }
            }
            Method::Options => self.respond(now, tx, &req, 200, None, None),
            Method::Invite | Method::Update | Method::Info => {
                if state == CallState::Ending {
                    return self.respond(now, tx, &req, 481, None, None);
                }
                if req.method == Method::Info && !(state == CallState::Answered) {
                    return self.respond(now, tx, &req, 200, None, None);
                }
                if state == CallState::Early
                    && req.method != Method::Update
                    && req.method != Method::Info
                {
                    return self.respond(now, tx, &req, 491, None, None);
                }
                self.forward_request(now, key, side, tx, req);
            }
            Method::Refer => self.on_refer(now, key, side, tx, req),
            _ => self.respond(now, tx, &req, 405, None, None),
        }
    }

    /// An in-dialog re-INVITE, UPDATE or INFO from `side`. Offers are answered by us and
    /// turned into our own offer to the other side (in the same direction, so hold and
    /// unhold carry across); the answer to the origin waits for the other side's answer.
    /// A re-INVITE without an offer gets our offer in the 200; an UPDATE without one is a
    /// session refresh. DTMF in INFO is taken here; other INFO passes through.
    fn forward_request(&mut self, now: Instant, key: CallKey, side: Side, tx: TxId, req: Request) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if req.method == Method::Invite
            && (call.retrans.iter().any(Option::is_some) || call.transfer.is_some())
        {
            return self.respond(now, tx, &req, 491, None, None);
        }
        let echo = call.echo;
        let leg = call.leg_mut(side).expect("side exists");
        if matches!(req.method, Method::Invite | Method::Update) {
            leg.learn_from_request(&req);
            if let Some((se, _)) = session_expires(&req.headers) {
                if let Some(st) = leg.session.as_mut() {
                    st.interval = se;
                }
            }
            self.arm_session(now, key, side, &Default::default(), true);
        }
        self.track(tx, key, TxRole::Local);
        if req.method == Method::Info {
            if let Some(digit) = dtmf_from_info(&req) {
                self.respond(now, tx, &req, 200, None, None);
                self.on_digit(now, key, side, digit, "info");
                // The other side hears it as RFC 4733 when it negotiated events, else as INFO.
                let other = self
                    .calls
                    .get(&key)
                    .and_then(|c| c.media.leg(side.other()))
                    .and_then(|l| l.plan.as_ref().map(|p| (l.id, p.telephone_event.is_some())));
                match other {
                    Some((id, true)) => self
                        .media
                        .command(MediaCommand::SendDigit { leg: id, digit }),
                    _ if !echo => self.send_in_dialog(now, key, side.other(), &req, None, None),
                    _ => {}
                }
                return;
            }
            if echo {
                return self.respond(now, tx, &req, 200, None, None);
            }
            return self.send_in_dialog(now, key, side.other(), &req, None, Some((tx, side)));
        }
        if req.body.is_empty() {
            // No offer: a re-INVITE wants ours (the ACK answers); an UPDATE just refreshes.
            let body = if req.method == Method::Invite {
                self.media_offer(key, side, Direction::SendRecv)
            } else {
                None
            };
            return self.respond_2xx(now, key, side, tx, &req, body);
        }
        let direction = match self.media_answer(key, side, &req.body) {
            Ok(()) => self
                .calls
                .get(&key)
                .and_then(|c| c.media.leg(side))
                .and_then(|l| l.pending_answer.as_ref())
                .map(|(_, p)| p.direction.reverse()),
            Err(e) => return self.respond(now, tx, &req, 488, Some(&e.to_string()), None),
        };
        let direction = direction.unwrap_or(Direction::SendRecv);
        let other_ready = self
            .calls
            .get(&key)
            .and_then(|c| c.leg(side.other()))
            .is_some_and(|l| l.remote_tag.is_some());
        if echo || !other_ready {
            // Nobody to tell: answer here.
            let body = self.media_answer_body(key, side);
            self.respond_2xx(now, key, side, tx, &req, body);
            return self.media_commit_answer(key, side);
        }
        // The forwarded request carries our offer, not the origin's.
        let body = self.media_offer(key, side.other(), direction);
        self.send_in_dialog(now, key, side.other(), &req, body, Some((tx, side)));
    }

    /// Sends `req`'s method on `to_side`'s dialog; with `origin`, the answer is relayed back
    /// to that server transaction. An INVITE/UPDATE carries `offer` (ours, for that leg);
    /// other methods carry `req`'s own body.
    fn send_in_dialog(
        &mut self,
        now: Instant,
        key: CallKey,
        to_side: Side,
        req: &Request,
        offer: Option<Bytes>,
        origin: Option<(TxId, Side)>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(other) = call.leg_mut(to_side) else {
            if let Some((tx, _)) = origin {
                self.respond(now, tx, req, 481, None, None);
            }
            return;
        };
        let mut fwd = other.request(req.method.clone());
        if matches!(req.method, Method::Invite | Method::Update) {
            fwd.headers.push(HeaderName::Allow, ALLOW);
            fwd.headers.push(HeaderName::Supported, SUPPORTED);
            if let Some(body) = offer {
                fwd.headers.push(HeaderName::ContentType, SDP);
                fwd.body = body;
            }
        } else {
            for h in [
                HeaderName::ContentType,
                HeaderName::Other("Info-Package".into()),
                HeaderName::Event,
            ] {
                if let Some(v) = req.headers.get(&h) {
                    fwd.headers.push(h, v);
                }
            }
            fwd.body = req.body.clone();
        }
        let peer = other.peer;
        fwd.headers
            .push_front(HeaderName::Via, self.via(peer.transport));
        let client = self.layer.send_request(now, fwd, peer);
        match origin {
            Some((origin, origin_side)) => self.track(
                client,
                key,
                TxRole::Forwarded {
                    origin,
                    origin_side,
                },
            ),
            None => self.track(client, key, TxRole::Notify),
        }
    }

    /// Relays the other leg's answer to a forwarded request back to its origin.
    fn relay_response(
        &mut self,
        now: Instant,
        key: CallKey,
        tx: TxId,
        origin: TxId,
        origin_side: Side,
        resp: Response,
    ) {
        let Some(orig_req) = self.layer.request(origin).cloned() else {
            return;
        };
        let other_side = origin_side.other();
        let sdp_method = matches!(orig_req.method, Method::Invite | Method::Update);
        if orig_req.method == Method::Invite && resp.is_success() {
            // ACK the other leg now: its answer came in this 2xx.
            if let Some(other) = self.calls.get(&key).and_then(|c| c.leg(other_side)) {
                let ack = other.ack(resp.cseq().map(|c| c.seq).unwrap_or(0));
                let peer = other.peer;
                self.send_ack(tx, peer, ack);
            }
        }
        if resp.status < 200 {
            if resp.status > 100 && !sdp_method {
                let tag = self
                    .calls
                    .get(&key)
                    .and_then(|c| c.leg(origin_side))
                    .map(|l| l.local_tag.clone());
                let out = response_to(&orig_req, resp.status, Some(&resp.reason), tag.as_deref());
                self.layer.respond(now, origin, &out);
            }
            return;
        }
        if !sdp_method {
            // INFO and the like: status and body as they are.
            let tag = self
                .calls
                .get(&key)
                .and_then(|c| c.leg(origin_side))
                .map(|l| l.local_tag.clone());
            let mut out = response_to(&orig_req, resp.status, Some(&resp.reason), tag.as_deref());
            if let Some(ct) = resp.headers.get(&HeaderName::ContentType) {
                out.headers.push(HeaderName::ContentType, ct);
                out.body = resp.body.clone();
            }
            return self.layer.respond(now, origin, &out);
        }
        if !resp.is_success() {
            // The other side refused: the origin's offer is refused too; old plans stay.
            if let Some(l) = self
                .calls
                .get_mut(&key)
                .and_then(|c| c.media.leg_mut(origin_side))
            {
                l.pending_answer = None;
            }
            if let Some(l) = self
                .calls
                .get_mut(&key)
                .and_then(|c| c.media.leg_mut(other_side))
            {
                l.our_offer = None;
            }
            let tag = self
                .calls
                .get(&key)
                .and_then(|c| c.leg(origin_side))
                .map(|l| l.local_tag.clone());
            let out = response_to(&orig_req, resp.status, Some(&resp.reason), tag.as_deref());
            return self.layer.respond(now, origin, &out);
        }
        if !resp.body.is_empty() {
            if let Err(e) = self.media_accept(key, other_side, &resp.body) {
                info!(error = %e, "answer to our re-offer refused");
            }
        }
        let body = self.media_answer_body(key, origin_side);
        self.respond_2xx(now, key, origin_side, origin, &orig_req, body);
        self.media_commit_answer(key, origin_side);
    }

    // ------------------------------------------------------------------------------------
    // Timers

    /// Fires everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.trunk_reg_fire(now);
        for (tx, ev) in self.layer.handle_timeout(now) {
            // A cancelled INVITE that never got its final response.
            self.orphans.remove(&tx);
            if let Some(i) = self.reg_txs.remove(&tx) {
                if ev == TuEvent::Timeout {
                    self.on_trunk_register_timeout(now, i);
                }
                continue;
            }
            let Some((key, role)) = self.txs.remove(&tx) else {
                continue;
            };
            match (role, ev) {
                (TxRole::BInvite, TuEvent::Timeout)
                    if self.calls.get(&key).and_then(|c| c.b_invite_tx) == Some(tx) =>
                {
                    if self.calls.get(&key).is_some_and(|c| c.answered_by_us()) {
                        self.app_b_failed(now, key, 408);
                    } else {
                        self.fail_call(now, key, 408, Some("Callee did not answer the INVITE"));
                    }
                }
                (TxRole::Bye, _) => self.client_tx_done(now, key),
                (TxRole::OriginateA, TuEvent::Timeout) => self.originate_gave_up(now, key, 408),
                (TxRole::Ring, TuEvent::Timeout) => self.ring_failed(now, key, tx, 408),
                (TxRole::TransferInvite, TuEvent::Timeout) => {
                    self.transfer_failed(now, key, 408, "Request Timeout", false)
                }
                (TxRole::Refresh(side), TuEvent::Timeout) => {
                    self.end_call(now, key, Some(side), "session refresh timed out")
                }
                (
                    TxRole::Forwarded {
                        origin,
                        origin_side,
                    },
                    TuEvent::Timeout,
                ) => {
                    if let Some(req) = self.layer.request(origin).cloned() {
                        let tag = self
                            .calls
                            .get(&key)
                            .and_then(|c| c.leg(origin_side))
                            .map(|l| l.local_tag.clone());
                        self.respond(now, origin, &req, 408, None, tag.as_deref());
                    }
                    if self
                        .calls
                        .get(&key)
                        .is_some_and(|c| c.state == CallState::Answered)
                    {
                        self.end_call(now, key, None, "peer stopped answering");
                    }
                }
                _ => {}
            }
        }
        for b in self.registrar.expire(now) {
            info!(aor = %b.aor, "registration expired");
            self.reg_dirty.insert(b.aor.clone());
            self.phone_gone(now, &b.aor);
        }
        self.acd_timeout(now);
        while let Some(Reverse((at, key))) = self.wakeups.peek().copied() {
            if at > now {
                break;
            }
            self.wakeups.pop();
            self.call_timeouts(now, key);
        }
    }

    fn call_timeouts(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let due: Vec<CallTimer> = call
            .timers
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(t, _)| *t)
            .collect();
        call.timers.retain(|(_, at)| *at > now);
        for t in due {
            self.fire(now, key, t);
        }
        self.schedule(key);
    }

    fn fire(&mut self, now: Instant, key: CallKey, t: CallTimer) {
        let t2 = self.timers.t2;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        match t {
            CallTimer::Ring => {
                if call.answered_by_us() && call.state == CallState::Answered {
                    if call.b_invite_tx.is_some() && !call.b_answered {
                        let _g = call.span.clone().entered();
                        info!("ring timeout");
                        if !self.queue_ring_timeout(now, key) {
                            self.abandon_b(now, key);
                            self.app_b_failed(now, key, 408);
                        }
                    }
                } else if call.outbound_a && call.state == CallState::Early {
                    let _g = call.span.clone().entered();
                    info!("the agent's phone rang out");
                    self.callback_give_up(now, key, crate::acd::CallbackOutcome::NoAnswer);
                    self.cancel_originated(now, key);
                } else if call.state == CallState::Early {
                    let _g = call.span.clone().entered();
                    info!("ring timeout");
                    self.send_cancel_b(now, key);
                    self.fail_call(now, key, 480, Some("No answer"));
                }
            }
            CallTimer::App => self.app_timeout(now, key),
            CallTimer::Retransmit2xx(s) => {
                let Some(r) = call.retrans[s as usize].as_mut() else {
                    return;
                };
                if now >= r.give_up {
                    call.retrans[s as usize] = None;
                    self.end_call(now, key, None, "2xx never acknowledged");
                    return;
                }
                r.interval = (r.interval * 2).min(t2);
                let (tx, bytes, next) = (r.tx, r.bytes.clone(), now + r.interval);
                call.set_timer(CallTimer::Retransmit2xx(s), next);
                let side = if s == 0 { Side::A } else { Side::B };
                let peer = self
                    .layer
                    .peer(tx)
                    .or_else(|| call.leg(side).map(|l| l.peer));
                if let Some(peer) = peer {
                    self.resend_response(peer, bytes);
                }
            }
            CallTimer::Reliable1xx => {
                let Some((bytes, _, interval, give_up)) = call.reliable_1xx.as_mut() else {
                    return;
                };
                if now >= *give_up {
                    call.reliable_1xx = None;
                    self.end_call(now, key, None, "reliable provisional never acknowledged");
                    return;
                }
                *interval *= 2;
                let (bytes, next) = (bytes.clone(), now + *interval);
                call.set_timer(CallTimer::Reliable1xx, next);
                let peer = call.a.peer;
                self.resend_response(peer, bytes);
            }
            CallTimer::SessionExpiry(s) => {
                let side = if s == 0 { Side::A } else { Side::B };
                self.end_call(
                    now,
                    key,
                    None,
                    if side == Side::A {
                        "caller session expired"
                    } else {
                        "callee session expired"
                    },
                );
            }
            CallTimer::SessionRefresh(s) => {
                let side = if s == 0 { Side::A } else { Side::B };
                self.send_refresh(now, key, side);
            }
            CallTimer::Linger => {
                if call.open_client_txs > 0 && call.timers.is_empty() {
                    // A BYE still runs; its own timeout (64*T1) ends it.
                    call.set_timer(CallTimer::Linger, now + 64 * self.timers.t1);
                    return;
                }
                self.forget(key);
            }
        }
    }

    fn send_refresh(&mut self, now: Instant, key: CallKey, side: Side) {
        let sdp = self.media_last_sent(key, side);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state != CallState::Answered {
            return;
        }
        let Some(leg) = call.leg_mut(side) else {
            return;
        };
        let Some(st) = leg.session else { return };
        let method = if leg.peer_allows_update {
            Method::Update
        } else {
            Method::Invite
        };
        let mut req = leg.request(method.clone());
        req.headers.push(
            HeaderName::SessionExpires,
            format!("{};refresher=uac", st.interval.as_secs()),
        );
        req.headers.push(HeaderName::Supported, SUPPORTED);
        if method == Method::Invite {
            // The same description again (same version): nothing changes but the timer.
            if let Some(sdp) = sdp {
                req.headers.push(HeaderName::ContentType, SDP);
                req.body = sdp;
            }
        }
        let peer = leg.peer;
        call.open_client_txs += 1;
        call.set_timer(
            CallTimer::SessionRefresh(side.idx() as u8),
            now + st.interval / 2,
        );
        req.headers
            .push_front(HeaderName::Via, self.via(peer.transport));
        let tx = self.layer.send_request(now, req, peer);
        self.track(tx, key, TxRole::Refresh(side));
        self.schedule(key);
    }
}

impl Switch {
    fn on_refer(&mut self, now: Instant, key: CallKey, side: Side, tx: TxId, req: Request) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.state != CallState::Answered {
            return self.respond(now, tx, &req, 491, None, None);
        }
        if call.transfer.is_some() || call.retrans.iter().any(Option::is_some) {
            return self.respond(
                now,
                tx,
                &req,
                491,
                Some("A transfer is already in progress"),
                None,
            );
        }
        let Some(target) = req
            .headers
            .get(&HeaderName::ReferTo)
            .and_then(NameAddr::parse)
        else {
            return self.respond(
                now,
                tx,
                &req,
                400,
                Some("missing or malformed Refer-To"),
                None,
            );
        };
        if target.uri.headers.is_some() {
            // Refer-To with embedded headers (Replaces: attended transfer) is not ours to do.
            return self.respond(
                now,
                tx,
                &req,
                501,
                Some("Attended transfer not supported"),
                None,
            );
        }
        let number = target.uri.user.clone().unwrap_or_default();
        let identity = call.identities[side.idx()].clone();
        // The transfer target is routed as if the transferor dialled it.
        let (decision, _) = self.route(&identity, &number, None);
        let dest = match decision {
            RouteDecision::User(_) | RouteDecision::Trunk(_) => {
                self.resolve(now, &decision, &number)
            }
            RouteDecision::Reject { status, reason } => Err((status, reason.unwrap_or_default())),
            RouteDecision::Challenge => Err((403, "Transfer target not allowed".into())),
            RouteDecision::Unavailable(w) => Err((480, w)),
            RouteDecision::Echo | RouteDecision::Flow(_) | RouteDecision::Queue(_) => {
                Err((480, "Only users and numbers can be transfer targets".into()))
            }
        };
        let dest = match dest {
            Ok(d) => d,
            Err((status, reason)) => {
                info!(status, %reason, "transfer refused");
                return self.respond(
                    now,
                    tx,
                    &req,
                    if status == 404 { 404 } else { 403 },
                    Some(&reason),
                    None,
                );
            }
        };
        let media = match self.new_media_leg() {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "no media ports for a transfer");
                return self.respond(now, tx, &req, 503, Some("No media resources"), None);
            }
        };
        self.respond(now, tx, &req, 202, None, None);
        let transferee = side.other();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(other) = call.leg(transferee) else {
            return;
        };
        let caller = NameAddr::parse(&other.remote_uri)
            .and_then(|n| n.uri.user)
            .unwrap_or_else(|| "anonymous".into());
        let parent = call.span.clone();
        {
            let _g = call.span.enter();
            info!(to = %redact(&number), "blind transfer");
        }
        for t in &dest.trunks {
            self.trunk_use.entry(t.clone()).or_default().active += 1;
        }
        let from = NameAddr::new(Uri::sip(Some(&caller), &self.profile.realm, None));
        let mut leg = self.uac_leg(side, &dest, &from, &parent, "transfer");
        let (call_id, local_tag) = (leg.call_id.clone(), leg.local_tag.clone());
        let mut media = media;
        let first = self
            .calls
            .get(&key)
            .and_then(|c| c.media.leg(transferee))
            .and_then(|l| l.plan.as_ref())
            .and_then(|p| media::codec_of(&p.codec.encoding));
        let prefs = self.codec_prefs(first);
        let offer = media::offer_on(
            &mut media,
            &prefs,
            self.profile.media.ptime.as_millis() as u32,
            Direction::SendRecv,
        );
        let via = self.via(dest.peer.transport);
        let invite = invite_on(&mut leg, via, Some(offer));
        let invite_tx = self.layer.send_request(now, invite.clone(), dest.peer);
        self.dialogs.insert((call_id, local_tag), (key, side));
        self.track(invite_tx, key, TxRole::TransferInvite);
        let call = self.calls.get_mut(&key).expect("present");
        call.transfer = Some(Box::new(Transfer {
            transferor: side,
            leg,
            invite,
            invite_tx,
            identity: dest.identity,
            trunks: dest.trunks,
            media,
        }));
        self.notify_transferor(now, key, side, "SIP/2.0 100 Trying", false);
    }

    /// Tells the transferor how its REFER is going (RFC 3515 §2.4.5).
    fn notify_transferor(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        frag: &str,
        done: bool,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.leg_mut(side) else {
            return;
        };
        let mut n = leg.request(Method::Notify);
        n.headers.push(HeaderName::Event, "refer");
        n.headers.push(
            HeaderName::Other("Subscription-State".into()),
            if done {
                "terminated;reason=noresource".to_string()
            } else {
                "active;expires=60".to_string()
            },
        );
        n.headers
            .push(HeaderName::ContentType, "message/sipfrag;version=2.0");
        n.body = Bytes::from(format!("{frag}\r\n"));
        let peer = leg.peer;
        n.headers
            .push_front(HeaderName::Via, self.via(peer.transport));
        let tx = self.layer.send_request(now, n, peer);
        self.track(tx, key, TxRole::Notify);
    }

    fn on_transfer_response(&mut self, now: Instant, key: CallKey, tx: TxId, resp: Response) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(tr) = call.transfer.as_mut() else {
            return;
        };
        if tr.invite_tx != tx {
            return;
        }
        if resp.status < 200 {
            if forms_dialog(&resp) {
                tr.leg.learn_from_response(&resp);
            }
            return;
        }
        if !resp.is_success() {
            let (code, reason) = map_failure(resp.status, &resp.reason);
            return self.transfer_failed(now, key, code, &reason, false);
        }
        tr.leg.learn_from_response(&resp);
        let ack = tr.leg.ack(resp.cseq().map(|c| c.seq).unwrap_or(1));
        let peer = tr.leg.peer;
        let accepted = media::accept_on(&mut tr.media, &resp.body);
        self.send_ack(tx, peer, ack);
        if let Err(e) = accepted {
            info!(error = %e, "transfer target's answer refused");
            return self.transfer_failed(now, key, 488, "Not Acceptable Here", true);
        }
        // Done: tell the transferor, release it, and put the new party in its place.
        let call = self.calls.get_mut(&key).expect("present");
        let tr = call.transfer.take().expect("present");
        let transferor = tr.transferor;
        self.notify_transferor(now, key, transferor, "SIP/2.0 200 OK", true);
        self.send_bye(now, key, transferor);
        let call = self.calls.get_mut(&key).expect("present");
        let mut new_leg = tr.leg;
        new_leg.side = transferor;
        let old = match transferor {
            Side::A => Some(std::mem::replace(&mut call.a, new_leg)),
            Side::B => call.b.replace(new_leg),
        };
        call.identities[transferor.idx()] = tr.identity;
        call.trunks.extend(tr.trunks);
        {
            let _g = call.span.enter();
            info!("transfer completed");
        }
        if let Some(old) = old {
            // The old leg's BYE is on its way (matched by its transaction); its dialog is over.
            self.dialogs.remove(&(old.call_id, old.local_tag));
        }
        self.media_replace(key, transferor, tr.media);
        self.arm_session(now, key, transferor, &resp.headers, false);
    }

    /// A transfer did not happen: the new party is released (hung up when it had answered),
    /// the transferor told, the call goes on as it was.
    fn transfer_failed(
        &mut self,
        now: Instant,
        key: CallKey,
        code: u16,
        reason: &str,
        answered: bool,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(tr) = call.transfer.take() else {
            return;
        };
        for t in &tr.trunks {
            if let Some(u) = self.trunk_use.get_mut(t) {
                u.active = u.active.saturating_sub(1);
            }
        }
        {
            let _g = call.span.enter();
            info!(code, reason, "transfer failed");
        }
        self.media
            .command(MediaCommand::Release { leg: tr.media.id });
        let mut leg = tr.leg;
        if answered {
            let mut bye = leg.request(Method::Bye);
            let p = leg.peer;
            bye.headers
                .push_front(HeaderName::Via, self.via(p.transport));
            let tx = self.layer.send_request(now, bye, p);
            self.track(tx, key, TxRole::Bye);
        } else if code == 487 {
            // Abandoned while ringing: cancel it.
            let cancel = cancel_for(&tr.invite, &leg.remote_uri);
            let tx = self.layer.send_request(now, cancel, leg.peer);
            self.track(tx, key, TxRole::Cancel);
        }
        self.dialogs.remove(&(leg.call_id, leg.local_tag));
        self.notify_transferor(
            now,
            key,
            tr.transferor,
            &format!("SIP/2.0 {code} {reason}"),
            true,
        );
    }
}

/// A provisional response (not 100) with a To tag: it creates an early dialog.
/// Our INVITE on a leg we place: the given Via, Allow, Supported, User-Agent, and our SDP
/// offer when there is one.
pub(crate) fn invite_on(leg: &mut Leg, via: String, offer: Option<Bytes>) -> Request {
    let mut invite = leg.request(Method::Invite);
    invite.headers.push_front(HeaderName::Via, via);
    invite.headers.push(HeaderName::Allow, ALLOW);
    invite.headers.push(HeaderName::Supported, SUPPORTED);
    invite.headers.push(HeaderName::UserAgent, USER_AGENT);
    if let Some(body) = offer {
        invite.headers.push(HeaderName::ContentType, SDP);
        invite.body = body;
    }
    invite
}

pub(crate) fn forms_dialog(resp: &Response) -> bool {
    resp.status > 100
        && resp
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
            .is_some()
}

fn call_state(sw: &Switch, key: CallKey) -> Option<CallState> {
    sw.calls.get(&key).map(|c| c.state)
}

/// Where a response to a request from `peer` goes: by the top Via over UDP (RFC 3261
/// §18.2.2, RFC 3581), back on the connection over a stream.
fn response_peer(peer: Peer, resp: &Response) -> Peer {
    match resp.top_via() {
        Ok(v) if peer.transport == Transport::Udp => Peer {
            transport: peer.transport,
            addr: v.response_target(peer.addr),
        },
        _ => peer,
    }
}

/// A DTMF digit carried by SIP INFO: `application/dtmf-relay` (`Signal=5`) or
/// `application/dtmf` (`5`).
pub fn dtmf_from_info(req: &Request) -> Option<char> {
    let ct = req.content_type()?;
    let body = std::str::from_utf8(&req.body).ok()?;
    let value = match ct.as_str() {
        "application/dtmf-relay" => body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    let c = match value {
        "10" => '*',
        "11" => '#',
        v => v.chars().next()?.to_ascii_uppercase(),
    };
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

/// The CANCEL for an INVITE we sent (RFC 3261 §9.1): same Request-URI, Via, From, Call-ID,
/// Route and CSeq number; To without a tag.
pub(crate) fn cancel_for(invite: &Request, to: &str) -> Request {
    let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
    for n in [HeaderName::Via, HeaderName::From, HeaderName::CallId] {
        if let Some(v) = invite.headers.get(&n) {
            cancel.headers.push(n, v);
        }
    }
    cancel.headers.push(HeaderName::To, to);
    for r in invite.headers.get_all(&HeaderName::Route) {
        cancel.headers.push(HeaderName::Route, r);
    }
    cancel.headers.push(HeaderName::MaxForwards, "70");
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
    cancel
        .headers
        .push(HeaderName::CSeq, format!("{seq} CANCEL"));
    cancel
}

/// `Session-Expires: 1800;refresher=uac` → (interval, refresher).
fn session_expires(h: &message::Headers) -> Option<(Duration, Option<String>)> {
    let v = h.get(&HeaderName::SessionExpires)?;
    let mut parts = v.split(';');
    let secs: u64 = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().to_ascii_lowercase())
    });
    Some((Duration::from_secs(secs), refresher))
}

/// Where to send requests for a registered contact (nathelper-style NAT handling): the
/// Contact's own address when it is reachable as written (same IP as the REGISTER's source,
/// or a public literal address); the REGISTER's source when the Contact names a private or
/// loopback address other than the source (the phone is behind NAT, so only the flow it
/// opened reaches it), or a host name. For TCP/TLS the runtime reuses an open connection to
/// the chosen address or opens one.
pub fn contact_destination(contact: &Uri, source: SocketAddr, _transport: Transport) -> SocketAddr {
    let Some(addr) = contact.socket_addr(5060) else {
        return source;
    };
    if addr.ip() == source.ip() {
        return addr;
    }
    let private = match addr.ip() {
        IpAddr::V4(v4) => {
            v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00
        }
    };
    if private {
        source
    } else {
        addr
    }
}

/// Maps the callee's failure to what the caller hears.
fn map_failure(status: u16, reason: &str) -> (u16, String) {
    match status {
        300..=399 => (480, "Redirect not followed".into()),
        401 | 407 => (403, "Callee requires authentication".into()),
        _ => (status, reason.to_string()),
    }
}

/// Phone numbers in logs: keep the last three digits.
pub fn redact(number: &str) -> String {
    let n = number.chars().count();
    if n <= 3 {
        return "***".into();
    }
    let tail: String = number.chars().skip(n - 3).collect();
    format!("***{tail}")
}
