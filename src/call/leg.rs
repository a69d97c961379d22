//! One side of a bridged call: a dialog (RFC 3261 §12) in which Switchboard is a UA.

use crate::sip::message::{HeaderName, Method, NameAddr, Request, Response, Uri};
use crate::sip::transport::Peer;
use std::time::Duration;

/// Which side of the bridge: `A` is the caller's leg (we are its UAS), `B` the leg we placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    pub(crate) fn idx(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// RFC 4028 state of one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    pub interval: Duration,
    /// Whether Switchboard sends the refreshes on this leg.
    pub we_refresh: bool,
}

/// A dialog with one peer.
#[derive(Debug, Clone)]
pub struct Leg {
    pub side: Side,
    /// Where requests to this leg go, and the only source accepted for its requests.
    pub peer: Peer,
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    /// Our name-addr in this dialog (without tag).
    pub local_uri: String,
    /// The peer's name-addr (without tag).
    pub remote_uri: String,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    pub remote_target: Uri,
    /// Route headers for requests we send (in order).
    pub route_set: Vec<String>,
    /// Our Contact header value for this leg.
    pub contact: String,
    /// Methods the peer allows (from Allow), for choosing UPDATE vs re-INVITE.
    pub peer_allows_update: bool,
    pub session: Option<SessionTimer>,
    pub span: tracing::Span,
}

impl Leg {
    /// Builds an in-dialog request (RFC 3261 §12.2.1.1) with the next CSeq (ACK and CANCEL
    /// reuse the current one); the caller adds Via.
    pub fn request(&mut self, method: Method) -> Request {
        if method != Method::Ack && method != Method::Cancel {
            self.local_cseq += 1;
        }
        let mut r = self.with_cseq(method.clone(), self.local_cseq);
        if matches!(
            method,
            Method::Invite | Method::Update | Method::Refer | Method::Notify
        ) {
            r.headers.push(HeaderName::Contact, self.contact.as_str());
        }
        r
    }

    /// The ACK for a 2xx to our INVITE with CSeq `seq` (RFC 3261 §13.2.2.4); the caller adds Via.
    pub fn ack(&self, seq: u32) -> Request {
        self.with_cseq(Method::Ack, seq)
    }

    fn with_cseq(&self, method: Method, seq: u32) -> Request {
        let mut r = Request::new(method.clone(), self.remote_target.clone());
        r.headers.push(HeaderName::MaxForwards, "70");
        for rt in &self.route_set {
            r.headers.push(HeaderName::Route, rt.as_str());
        }
        r.headers.push(
            HeaderName::From,
            format!("{};tag={}", self.local_uri, self.local_tag),
        );
        match &self.remote_tag {
            Some(t) => r
                .headers
                .push(HeaderName::To, format!("{};tag={}", self.remote_uri, t)),
            None => r.headers.push(HeaderName::To, self.remote_uri.as_str()),
        }
        r.headers.push(HeaderName::CallId, self.call_id.as_str());
        r.headers.push(HeaderName::CSeq, format!("{seq} {method}"));
        r
    }

    /// Learns the remote target and route set from a dialog-creating response (UAC side).
    pub fn learn_from_response(&mut self, resp: &Response) {
        if let Ok(to) = resp.to() {
            if let Some(tag) = to.tag() {
                self.remote_tag = Some(tag.to_string());
            }
        }
        if let Some(c) = resp.contacts().ok().and_then(|c| c.into_iter().next()) {
            self.remote_target = c.uri;
        }
        if let Ok(rr) = resp.record_routes() {
            if !rr.is_empty() {
                self.route_set = rr.iter().rev().map(|r| r.to_string()).collect();
            }
        }
        self.peer_allows_update |= allows_update(&resp.headers);
    }

    /// Learns a new remote target from a target-refresh request (re-INVITE, UPDATE).
    pub fn learn_from_request(&mut self, req: &Request) {
        if let Some(c) = req.contacts().ok().and_then(|c| c.into_iter().next()) {
            self.remote_target = c.uri;
        }
    }
}

/// Whether an Allow header lists UPDATE.
pub fn allows_update(h: &crate::sip::message::Headers) -> bool {
    h.get_all(&HeaderName::Allow)
        .flat_map(|v| v.split(','))
        .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"))
}

/// A name-addr printed without its tag (for dialog state).
pub fn without_tag(na: &NameAddr) -> String {
    let mut na = na.clone();
    na.params.remove("tag");
    na.to_string()
}
