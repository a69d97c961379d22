//! The transaction layer: owns every transaction, matches messages, runs timers.

use super::machines::{ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite};
use super::{Timers, TuEvent};
use crate::sip::message::{Method, Request, Response};
use crate::sip::transport::Peer;
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

/// A transaction's id, unique for the life of the layer.
pub type TxId = u64;

/// Bytes to send to a peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Bytes,
}

/// What an incoming message is, once matched (the one pure dispatch of RFC 3261 §17.2.3).
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A new request: a server transaction `tx` was created for it (never for ACK).
    Request { tx: TxId, req: Request },
    /// An ACK for a 2xx (no transaction of its own, RFC 3261 §17.1.1.3): for the dialog.
    Ack(Request),
    /// A CANCEL: a server transaction `tx` was created for it; `invite` is the INVITE server
    /// transaction it cancels, if any matches.
    Cancel {
        tx: TxId,
        req: Request,
        invite: Option<TxId>,
    },
    /// A response for client transaction `tx`.
    Response { tx: TxId, resp: Response },
    /// A 2xx that matches no transaction (retransmission after timer M, or a fork): the
    /// dialog may ACK it again.
    Stray2xx(Response),
    /// A retransmission or stray handled here; nothing for the user.
    Absorbed,
}

#[derive(Debug)]
#[allow(clippy::enum_variant_names)]
enum Tx {
    ClientInvite(ClientInvite),
    ClientNonInvite(ClientNonInvite),
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
}

impl Tx {
    fn next_timeout(&self) -> Option<Instant> {
        match self {
            Tx::ClientInvite(t) => t.next_timeout(),
            Tx::ClientNonInvite(t) => t.next_timeout(),
            Tx::ServerInvite(t) => t.next_timeout(),
            Tx::ServerNonInvite(t) => t.next_timeout(),
        }
    }
    fn handle_timeout(&mut self, now: Instant) -> Option<TuEvent> {
        match self {
            Tx::ClientInvite(t) => t.handle_timeout(now),
            Tx::ClientNonInvite(t) => t.handle_timeout(now),
            Tx::ServerInvite(t) => t.handle_timeout(now),
            Tx::ServerNonInvite(t) => t.handle_timeout(now),
        }
    }
    fn poll_transmit(&mut self) -> Option<Bytes> {
        match self {
            Tx::ClientInvite(t) => t.poll_transmit(),
            Tx::ClientNonInvite(t) => t.poll_transmit(),
            Tx::ServerInvite(t) => t.poll_transmit(),
            Tx::ServerNonInvite(t) => t.poll_transmit(),
        }
    }
    fn is_terminated(&self) -> bool {
        match self {
            Tx::ClientInvite(t) => t.is_terminated(),
            Tx::ClientNonInvite(t) => t.is_terminated(),
            Tx::ServerInvite(t) => t.is_terminated(),
            Tx::ServerNonInvite(t) => t.is_terminated(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: String,
    sent_by: String,
    method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: String,
    method: Method,
}

struct Entry {
    tx: Tx,
    peer: Peer,
    server_key: Option<ServerKey>,
    client_key: Option<ClientKey>,
}

/// Owns all transactions.
pub struct TransactionLayer {
    timers: Timers,
    next_id: TxId,
    txns: HashMap<TxId, Entry>,
    servers: HashMap<ServerKey, TxId>,
    clients: HashMap<ClientKey, TxId>,
    wakeups: BinaryHeap<Reverse<(Instant, TxId)>>,
    out: VecDeque<Transmit>,
}

impl TransactionLayer {
    /// An empty layer with these base timers.
    pub fn new(timers: Timers) -> Self {
        TransactionLayer {
            timers,
            next_id: 1,
            txns: HashMap::new(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            wakeups: BinaryHeap::new(),
            out: VecDeque::new(),
        }
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// No live transactions.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    fn server_key(req: &Request) -> Option<ServerKey> {
        let via = req.top_via().ok()?;
        let cseq = req.cseq().ok()?;
        let method = if req.method == Method::Ack {
            Method::Invite
        } else {
            req.method.clone()
        };
        let branch = match via.branch() {
            Some(b) if b.starts_with("z9hG4bK") => b.to_string(),
            // RFC 2543 peers: fall back to dialog-ish identifiers.
            other => format!(
                "{}|{}|{}|{}",
                other.unwrap_or(""),
                req.call_id().unwrap_or(""),
                cseq.seq,
                req.from()
                    .ok()
                    .and_then(|f| f.tag().map(str::to_string))
                    .unwrap_or_default()
            ),
        };
        Some(ServerKey {
            branch,
            sent_by: format!("{}:{:?}", via.host, via.port),
            method,
        })
    }

    /// Matches an incoming request; creates a server transaction for a new one.
    pub fn receive_request(&mut self, now: Instant, req: Request, peer: Peer) -> Incoming {
        let Some(key) = Self::server_key(&req) else {
            return Incoming::Absorbed;
        };
        if let Some(&id) = self.servers.get(&key) {
            let entry = self.txns.get_mut(&id).expect("indexed transaction exists");
            let ev = match &mut entry.tx {
                Tx::ServerInvite(t) => t.handle_request(now, req),
                Tx::ServerNonInvite(t) => t.handle_request(now, req),
                _ => None,
            };
            self.after(now, id);
            return match ev {
                Some(TuEvent::Ack(ack)) => Incoming::Ack(ack),
                _ => Incoming::Absorbed,
            };
        }
        if req.method == Method::Ack {
            return Incoming::Ack(req);
        }
        let id = self.alloc();
        let reliable = peer.transport.is_reliable();
        let is_cancel = req.method == Method::Cancel;
        // Responses over UDP go where the top Via says (RFC 3261 §18.2.2 with RFC 3581
        // rport); over a stream, back on the connection the request came in on.
        let peer = match (reliable, req.top_via()) {
            (false, Ok(via)) => Peer {
                transport: peer.transport,
                addr: via.response_target(peer.addr),
            },
            _ => peer,
        };
        let tx = if req.method == Method::Invite {
            Tx::ServerInvite(ServerInvite::new(req.clone(), reliable, self.timers))
        } else {
            Tx::ServerNonInvite(ServerNonInvite::new(req.clone(), reliable, self.timers))
        };
        self.servers.insert(key.clone(), id);
        self.txns.insert(
            id,
            Entry {
                tx,
                peer,
                server_key: Some(key.clone()),
                client_key: None,
            },
        );
        if is_cancel {
            let invite_key = ServerKey {
                method: Method::Invite,
                ..key
            };
            let invite = self.servers.get(&invite_key).copied();
            return Incoming::Cancel {
                tx: id,
                req,
                invite,
            };
        }
        Incoming::Request { tx: id, req }
    }

    /// Matches an incoming response to its client transaction.
    pub fn receive_response(&mut self, now: Instant, resp: Response) -> Incoming {
        let (Ok(via), Ok(cseq)) = (resp.top_via(), resp.cseq()) else {
            return Incoming::Absorbed;
        };
        let Some(branch) = via.branch() else {
            return Incoming::Absorbed;
        };
        let key = ClientKey {
            branch: branch.to_string(),
            method: cseq.method.clone(),
        };
        let Some(&id) = self.clients.get(&key) else {
            if cseq.method == Method::Invite && resp.is_success() {
                return Incoming::Stray2xx(resp);
            }
            return Incoming::Absorbed;
        };
        let entry = self.txns.get_mut(&id).expect("indexed transaction exists");
        let ev = match &mut entry.tx {
            Tx::ClientInvite(t) => t.handle_response(now, resp),
            Tx::ClientNonInvite(t) => t.handle_response(now, resp),
            _ => None,
        };
        self.after(now, id);
        match ev {
            Some(TuEvent::Response(resp)) => Incoming::Response { tx: id, resp },
            _ => Incoming::Absorbed,
        }
    }

    /// Starts a client transaction for `req` (not ACK) towards `peer`. The request must carry
    /// its top Via with a fresh branch.
    pub fn send_request(&mut self, now: Instant, req: Request, peer: Peer) -> TxId {
        let id = self.alloc();
        let reliable = peer.transport.is_reliable();
        let branch = req
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let key = ClientKey {
            branch,
            method: req.method.clone(),
        };
        let tx = if req.method == Method::Invite {
            Tx::ClientInvite(ClientInvite::new(now, req, reliable, self.timers))
        } else {
            Tx::ClientNonInvite(ClientNonInvite::new(now, req, reliable, self.timers))
        };
        self.clients.insert(key.clone(), id);
        self.txns.insert(
            id,
            Entry {
                tx,
                peer,
                server_key: None,
                client_key: Some(key),
            },
        );
        self.after(now, id);
        id
    }

    /// Sends bytes outside any transaction (ACK for 2xx, stateless responses).
    pub fn send_stateless(&mut self, peer: Peer, bytes: Bytes) {
        self.out.push_back(Transmit { peer, bytes });
    }

    /// The user answers server transaction `tx`. Unknown or finished transactions are ignored.
    pub fn respond(&mut self, now: Instant, tx: TxId, resp: &Response) {
        let Some(entry) = self.txns.get_mut(&tx) else {
            return;
        };
        match &mut entry.tx {
            Tx::ServerInvite(t) => t.send_response(now, resp),
            Tx::ServerNonInvite(t) => t.send_response(now, resp),
            _ => return,
        }
        self.after(now, tx);
    }

    /// Whether server transaction `tx` has sent its final response (or is gone).
    pub fn is_final(&self, tx: TxId) -> bool {
        match self.txns.get(&tx).map(|e| &e.tx) {
            Some(Tx::ServerInvite(t)) => t.is_final(),
            Some(Tx::ServerNonInvite(t)) => t.is_final(),
            _ => true,
        }
    }

    /// The request of a live transaction.
    pub fn request(&self, tx: TxId) -> Option<&Request> {
        Some(match &self.txns.get(&tx)?.tx {
            Tx::ClientInvite(t) => &t.request,
            Tx::ClientNonInvite(t) => &t.request,
            Tx::ServerInvite(t) => &t.request,
            Tx::ServerNonInvite(t) => &t.request,
        })
    }

    /// The peer of a live transaction.
    pub fn peer(&self, tx: TxId) -> Option<Peer> {
        self.txns.get(&tx).map(|e| e.peer)
    }

    /// Fires every due timer; returns what the user must know.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(TxId, TuEvent)> {
        let mut events = Vec::new();
        while let Some(Reverse((at, id))) = self.wakeups.peek().copied() {
            if at > now {
                break;
            }
            self.wakeups.pop();
            let Some(entry) = self.txns.get_mut(&id) else {
                continue;
            };
            match entry.tx.next_timeout() {
                Some(due) if due <= now => {}
                _ => continue,
            }
            if let Some(ev) = entry.tx.handle_timeout(now) {
                events.push((id, ev));
            }
            self.after(now, id);
        }
        events
    }

    /// The next deadline of any transaction.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.wakeups.peek().copied() {
            match self.txns.get(&id).and_then(|e| e.tx.next_timeout()) {
                Some(due) if due == at => return Some(at),
                _ => {
                    self.wakeups.pop();
                }
            }
        }
        None
    }

    /// Next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// Drains everything to send, in order.
    pub fn drain_transmit(&mut self) -> std::collections::vec_deque::Drain<'_, Transmit> {
        self.out.drain(..)
    }

    fn alloc(&mut self) -> TxId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// After any change to `id`: collect its output, reschedule, drop it when terminated.
    fn after(&mut self, _now: Instant, id: TxId) {
        let Some(entry) = self.txns.get_mut(&id) else {
            return;
        };
        while let Some(bytes) = entry.tx.poll_transmit() {
            self.out.push_back(Transmit {
                peer: entry.peer,
                bytes,
            });
        }
        if entry.tx.is_terminated() {
            let entry = self.txns.remove(&id).expect("present");
            if let Some(k) = entry.server_key {
                self.servers.remove(&k);
            }
            if let Some(k) = entry.client_key {
                self.clients.remove(&k);
            }
            return;
        }
        if let Some(at) = entry.tx.next_timeout() {
            self.wakeups.push(Reverse((at, id)));
        }
    }
}
