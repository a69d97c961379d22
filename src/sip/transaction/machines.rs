//! The four transaction state machines.

use super::{Timers, TuEvent};
use crate::sip::message::{HeaderName, Method, Request, Response};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Shared bookkeeping: what to send next and the wake-up.
#[derive(Debug, Default)]
struct Io {
    transmit: Vec<Bytes>,
}

/// Builds the ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
pub(crate) fn ack_for(request: &Request, resp: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, request.uri.clone());
    if let Some(v) = request.headers.get(&HeaderName::Via) {
        ack.headers.push(HeaderName::Via, v);
    }
    ack.headers.push(HeaderName::MaxForwards, "70");
    for v in request.headers.get_all(&HeaderName::Route) {
        ack.headers.push(HeaderName::Route, v);
    }
    if let Some(v) = request.headers.get(&HeaderName::From) {
        ack.headers.push(HeaderName::From, v);
    }
    if let Some(v) = resp.headers.get(&HeaderName::To) {
        ack.headers.push(HeaderName::To, v);
    }
    if let Some(v) = request.headers.get(&HeaderName::CallId) {
        ack.headers.push(HeaderName::CallId, v);
    }
    let seq = request.cseq().map(|c| c.seq).unwrap_or(1);
    ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
    ack
}

// ---------------------------------------------------------------------------------------------

/// States of the INVITE client transaction (RFC 3261 Figure 5, RFC 6026 Figure 3).
#[derive(Debug, Clone, PartialEq)]
pub enum ClientInviteState {
    /// Timer A retransmits (unreliable), timer B gives up.
    Calling {
        timer_a: Option<(Instant, Duration)>,
        timer_b: Instant,
    },
    Proceeding,
    /// A non-2xx final came and was ACKed; timer D absorbs retransmissions.
    Completed {
        ack: Bytes,
        timer_d: Instant,
    },
    /// A 2xx came; timer M lets further 2xx through to the TU.
    Accepted {
        timer_m: Instant,
    },
    Terminated,
}

/// The INVITE client transaction.
#[derive(Debug)]
pub struct ClientInvite {
    pub request: Request,
    bytes: Bytes,
    reliable: bool,
    timers: Timers,
    pub state: ClientInviteState,
    io: Io,
}

impl ClientInvite {
    /// Starts the transaction: the request is queued for transmission.
    pub fn new(now: Instant, request: Request, reliable: bool, timers: Timers) -> Self {
        let bytes = Bytes::from(request.to_bytes());
        let timer_a = (!reliable).then(|| (now + timers.t1, timers.t1));
        let state = ClientInviteState::Calling {
            timer_a,
            timer_b: now + 64 * timers.t1,
        };
        let io = Io {
            transmit: vec![bytes.clone()],
        };
        ClientInvite {
            request,
            bytes,
            reliable,
            timers,
            state,
            io,
        }
    }

    /// A response matched this transaction.
    pub fn handle_response(&mut self, now: Instant, resp: Response) -> Option<TuEvent> {
        use ClientInviteState::*;
        match (&self.state, resp.status) {
            (Calling { .. } | Proceeding, 100..=199) => {
                self.state = Proceeding;
                Some(TuEvent::Response(resp))
            }
            (Calling { .. } | Proceeding | Accepted { .. }, 200..=299) => {
                if !matches!(self.state, Accepted { .. }) {
                    self.state = Accepted {
                        timer_m: now + 64 * self.timers.t1,
                    };
                }
                Some(TuEvent::Response(resp))
            }
            (Calling { .. } | Proceeding, _) => {
                let ack = Bytes::from(ack_for(&self.request, &resp).to_bytes());
                self.io.transmit.push(ack.clone());
                let d = if self.reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                self.state = Completed {
                    ack,
                    timer_d: now + d,
                };
                Some(TuEvent::Response(resp))
            }
            (Completed { ack, .. }, 300..=699) => {
                self.io.transmit.push(ack.clone());
                None
            }
            _ => None,
        }
    }

    /// Fires what is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TuEvent> {
        use ClientInviteState::*;
        match &mut self.state {
            Calling { timer_b, .. } if now >= *timer_b => {
                self.state = Terminated;
                Some(TuEvent::Timeout)
            }
            Calling {
                timer_a: Some((at, interval)),
                ..
            } if now >= *at => {
                *interval *= 2;
                *at = now + *interval;
                self.io.transmit.push(self.bytes.clone());
                None
            }
            Completed { timer_d, .. } if now >= *timer_d => {
                self.state = Terminated;
                None
            }
            Accepted { timer_m } if now >= *timer_m => {
                self.state = Terminated;
                None
            }
            _ => None,
        }
    }

    /// The next deadline.
    pub fn next_timeout(&self) -> Option<Instant> {
        use ClientInviteState::*;
        match &self.state {
            Calling { timer_a, timer_b } => {
                Some(timer_a.map_or(*timer_b, |(a, _)| a.min(*timer_b)))
            }
            Completed { timer_d, .. } => Some(*timer_d),
            Accepted { timer_m } => Some(*timer_m),
            Proceeding | Terminated => None,
        }
    }

    /// Bytes to send to the transaction's destination.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        pop_front(&mut self.io.transmit)
    }

    /// Whether the machine is done.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientInviteState::Terminated
    }
}

fn pop_front(v: &mut Vec<Bytes>) -> Option<Bytes> {
    if v.is_empty() {
        None
    } else {
        Some(v.remove(0))
    }
}

// ---------------------------------------------------------------------------------------------

/// States of the non-INVITE client transaction (RFC 3261 Figure 6).
#[derive(Debug, Clone, PartialEq)]
pub enum ClientNonInviteState {
    Trying {
        timer_e: Option<(Instant, Duration)>,
        timer_f: Instant,
    },
    Proceeding {
        timer_e: Option<(Instant, Duration)>,
        timer_f: Instant,
    },
    Completed {
        timer_k: Instant,
    },
    Terminated,
}

/// The non-INVITE client transaction.
#[derive(Debug)]
pub struct ClientNonInvite {
    pub request: Request,
    bytes: Bytes,
    reliable: bool,
    timers: Timers,
    pub state: ClientNonInviteState,
    io: Io,
}

impl ClientNonInvite {
    /// Starts the transaction: the request is queued for transmission.
    pub fn new(now: Instant, request: Request, reliable: bool, timers: Timers) -> Self {
        let bytes = Bytes::from(request.to_bytes());
        let timer_e = (!reliable).then(|| (now + timers.t1, timers.t1));
        let state = ClientNonInviteState::Trying {
            timer_e,
            timer_f: now + 64 * timers.t1,
        };
        let io = Io {
            transmit: vec![bytes.clone()],
        };
        ClientNonInvite {
            request,
            bytes,
            reliable,
            timers,
            state,
            io,
        }
    }

    /// A response matched this transaction.
    pub fn handle_response(&mut self, now: Instant, resp: Response) -> Option<TuEvent> {
        use ClientNonInviteState::*;
        match (&self.state, resp.status) {
            (Trying { timer_e, timer_f } | Proceeding { timer_e, timer_f }, 100..=199) => {
                self.state = Proceeding {
                    timer_e: *timer_e,
                    timer_f: *timer_f,
                };
                Some(TuEvent::Response(resp))
            }
            (Trying { .. } | Proceeding { .. }, _) => {
                let k = if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                self.state = Completed { timer_k: now + k };
                Some(TuEvent::Response(resp))
            }
            _ => None,
        }
    }

    /// Fires what is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TuEvent> {
        use ClientNonInviteState::*;
        let t2 = self.timers.t2;
        match &mut self.state {
            Trying { timer_f, .. } | Proceeding { timer_f, .. } if now >= *timer_f => {
                self.state = Terminated;
                Some(TuEvent::Timeout)
            }
            Trying {
                timer_e: Some((at, interval)),
                ..
            } if now >= *at => {
                *interval = (*interval * 2).min(t2);
                *at = now + *interval;
                self.io.transmit.push(self.bytes.clone());
                None
            }
            Proceeding {
                timer_e: Some((at, interval)),
                ..
            } if now >= *at => {
                *interval = t2;
                *at = now + t2;
                self.io.transmit.push(self.bytes.clone());
                None
            }
            Completed { timer_k } if now >= *timer_k => {
                self.state = Terminated;
                None
            }
            _ => None,
        }
    }

    /// The next deadline.
    pub fn next_timeout(&self) -> Option<Instant> {
        use ClientNonInviteState::*;
        match &self.state {
            Trying { timer_e, timer_f } | Proceeding { timer_e, timer_f } => {
                Some(timer_e.map_or(*timer_f, |(e, _)| e.min(*timer_f)))
            }
            Completed { timer_k } => Some(*timer_k),
            Terminated => None,
        }
    }

    /// Bytes to send to the transaction's destination.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        pop_front(&mut self.io.transmit)
    }

    /// Whether the machine is done.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientNonInviteState::Terminated
    }
}

// ---------------------------------------------------------------------------------------------

/// States of the INVITE server transaction (RFC 3261 Figure 7, RFC 6026 Figure 5).
#[derive(Debug, Clone, PartialEq)]
pub enum ServerInviteState {
    /// The last provisional response sent, resent on request retransmission.
    Proceeding {
        last: Option<Bytes>,
    },
    /// A non-2xx final was sent; timer G retransmits it, timer H gives up waiting for ACK.
    Completed {
        last: Bytes,
        timer_g: Option<(Instant, Duration)>,
        timer_h: Instant,
    },
    /// The ACK came; timer I absorbs further ACKs.
    Confirmed {
        timer_i: Instant,
    },
    /// A 2xx was sent (the TU retransmits it); timer L absorbs INVITE retransmissions.
    Accepted {
        last: Bytes,
        timer_l: Instant,
    },
    Terminated,
}

/// The INVITE server transaction.
#[derive(Debug)]
pub struct ServerInvite {
    pub request: Request,
    reliable: bool,
    timers: Timers,
    pub state: ServerInviteState,
    io: Io,
}

impl ServerInvite {
    /// Created for a new INVITE.
    pub fn new(request: Request, reliable: bool, timers: Timers) -> Self {
        ServerInvite {
            request,
            reliable,
            timers,
            state: ServerInviteState::Proceeding { last: None },
            io: Io::default(),
        }
    }

    /// The TU sends a response.
    pub fn send_response(&mut self, now: Instant, resp: &Response) {
        use ServerInviteState::*;
        let bytes = Bytes::from(resp.to_bytes());
        match (&self.state, resp.status) {
            (Proceeding { .. }, 100..=199) => {
                self.io.transmit.push(bytes.clone());
                self.state = Proceeding { last: Some(bytes) };
            }
            (Proceeding { .. }, 200..=299) => {
                self.io.transmit.push(bytes.clone());
                self.state = Accepted {
                    last: bytes,
                    timer_l: now + 64 * self.timers.t1,
                };
            }
            (Accepted { .. }, 200..=299) => {
                // 2xx retransmission from the TU (RFC 6026 §7.1).
                self.io.transmit.push(bytes);
            }
            (Proceeding { .. }, _) => {
                self.io.transmit.push(bytes.clone());
                let timer_g = (!self.reliable).then(|| (now + self.timers.t1, self.timers.t1));
                self.state = Completed {
                    last: bytes,
                    timer_g,
                    timer_h: now + 64 * self.timers.t1,
                };
            }
            _ => {}
        }
    }

    /// A retransmitted INVITE, or an ACK, matched this transaction.
    pub fn handle_request(&mut self, now: Instant, req: Request) -> Option<TuEvent> {
        use ServerInviteState::*;
        if req.method == Method::Ack {
            match &self.state {
                Completed { .. } => {
                    let i = if self.reliable {
                        Duration::ZERO
                    } else {
                        self.timers.t4
                    };
                    self.state = Confirmed { timer_i: now + i };
                    None
                }
                Accepted { .. } => Some(TuEvent::Ack(req)),
                _ => None,
            }
        } else {
            match &self.state {
                Proceeding { last: Some(b) } | Completed { last: b, .. } => {
                    self.io.transmit.push(b.clone());
                }
                _ => {}
            }
            None
        }
    }

    /// Fires what is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TuEvent> {
        use ServerInviteState::*;
        let t2 = self.timers.t2;
        match &mut self.state {
            Completed { timer_h, .. } if now >= *timer_h => {
                self.state = Terminated;
                Some(TuEvent::AckTimeout)
            }
            Completed {
                last,
                timer_g: Some((at, interval)),
                ..
            } if now >= *at => {
                *interval = (*interval * 2).min(t2);
                *at = now + *interval;
                self.io.transmit.push(last.clone());
                None
            }
            Confirmed { timer_i } if now >= *timer_i => {
                self.state = Terminated;
                None
            }
            Accepted { timer_l, .. } if now >= *timer_l => {
                self.state = Terminated;
                None
            }
            _ => None,
        }
    }

    /// The next deadline.
    pub fn next_timeout(&self) -> Option<Instant> {
        use ServerInviteState::*;
        match &self.state {
            Completed {
                timer_g, timer_h, ..
            } => Some(timer_g.map_or(*timer_h, |(g, _)| g.min(*timer_h))),
            Confirmed { timer_i } => Some(*timer_i),
            Accepted { timer_l, .. } => Some(*timer_l),
            Proceeding { .. } | Terminated => None,
        }
    }

    /// Bytes to send back to the requester.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        pop_front(&mut self.io.transmit)
    }

    /// Whether a final response has been sent.
    pub fn is_final(&self) -> bool {
        !matches!(self.state, ServerInviteState::Proceeding { .. })
    }

    /// Whether the machine is done.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerInviteState::Terminated
    }
}

// ---------------------------------------------------------------------------------------------

/// States of the non-INVITE server transaction (RFC 3261 Figure 8).
#[derive(Debug, Clone, PartialEq)]
pub enum ServerNonInviteState {
    Trying,
    Proceeding { last: Bytes },
    Completed { last: Bytes, timer_j: Instant },
    Terminated,
}

/// The non-INVITE server transaction.
#[derive(Debug)]
pub struct ServerNonInvite {
    pub request: Request,
    reliable: bool,
    timers: Timers,
    pub state: ServerNonInviteState,
    io: Io,
}

impl ServerNonInvite {
    /// Created for a new non-INVITE request.
    pub fn new(request: Request, reliable: bool, timers: Timers) -> Self {
        ServerNonInvite {
            request,
            reliable,
            timers,
            state: ServerNonInviteState::Trying,
            io: Io::default(),
        }
    }

    /// The TU sends a response.
    pub fn send_response(&mut self, now: Instant, resp: &Response) {
        use ServerNonInviteState::*;
        if matches!(self.state, Completed { .. } | Terminated) {
            return;
        }
        let bytes = Bytes::from(resp.to_bytes());
        self.io.transmit.push(bytes.clone());
        if resp.status < 200 {
            self.state = Proceeding { last: bytes };
        } else {
            let j = if self.reliable {
                Duration::ZERO
            } else {
                64 * self.timers.t1
            };
            self.state = Completed {
                last: bytes,
                timer_j: now + j,
            };
        }
    }

    /// A retransmission of the request matched.
    pub fn handle_request(&mut self, _now: Instant, _req: Request) -> Option<TuEvent> {
        use ServerNonInviteState::*;
        match &self.state {
            Proceeding { last } | Completed { last, .. } => self.io.transmit.push(last.clone()),
            Trying | Terminated => {}
        }
        None
    }

    /// Fires what is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TuEvent> {
        if let ServerNonInviteState::Completed { timer_j, .. } = &self.state {
            if now >= *timer_j {
                self.state = ServerNonInviteState::Terminated;
            }
        }
        None
    }

    /// The next deadline.
    pub fn next_timeout(&self) -> Option<Instant> {
        match &self.state {
            ServerNonInviteState::Completed { timer_j, .. } => Some(*timer_j),
            _ => None,
        }
    }

    /// Bytes to send back to the requester.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        pop_front(&mut self.io.transmit)
    }

    /// Whether a final response has been sent.
    pub fn is_final(&self) -> bool {
        matches!(
            self.state,
            ServerNonInviteState::Completed { .. } | ServerNonInviteState::Terminated
        )
    }

    /// Whether the machine is done.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerNonInviteState::Terminated
    }
}
