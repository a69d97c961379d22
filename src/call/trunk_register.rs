//! Outbound registration to carriers (`outbound.register: true` on a trunk): REGISTER, answer
//! the digest challenge, refresh before expiry, retry after failures.

use super::{Switch, USER_AGENT};
use crate::sip::auth;
use crate::sip::message::{HeaderName, Method, Request, Response, Uri};
use crate::sip::transaction::TxId;
use crate::sip::transport::{Peer, Transport};
use rand::Rng;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long to wait after a failed registration before trying again.
const RETRY: Duration = Duration::from_secs(30);

/// The state of one trunk's registration.
#[derive(Debug)]
pub(crate) struct TrunkRegistration {
    pub trunk: String,
    pub call_id: String,
    pub tag: String,
    pub cseq: u32,
    /// When to send the next REGISTER.
    pub next_at: Option<Instant>,
    /// The transaction in flight.
    pub tx: Option<TxId>,
    /// The challenge answered with the request in flight (to avoid answering it in a loop).
    pub answered_challenge: bool,
    pub registered_until: Option<Instant>,
}

impl Switch {
    /// Sets up a registration per trunk that asks for one; the first REGISTER goes out now.
    pub(crate) fn init_trunk_registrations(&mut self, now: Instant) {
        let trunks: Vec<String> = self
            .profile
            .trunks
            .iter()
            .filter(|t| t.outbound.as_ref().is_some_and(|o| o.register))
            .map(|t| t.name.clone())
            .collect();
        for trunk in trunks {
            let call_id = format!("{}@switchboard", self.token(20));
            let tag = self.token(10);
            self.trunk_regs.push(TrunkRegistration {
                trunk,
                call_id,
                tag,
                cseq: 0,
                next_at: Some(now),
                tx: None,
                answered_challenge: false,
                registered_until: None,
            });
        }
    }

    /// Whether a trunk's registration is currently accepted by the carrier.
    pub fn trunk_registered(&self, trunk: &str, now: Instant) -> bool {
        self.trunk_regs
            .iter()
            .any(|r| r.trunk == trunk && r.registered_until.is_some_and(|u| u > now))
    }

    pub(crate) fn trunk_reg_timeout(&self) -> Option<Instant> {
        self.trunk_regs.iter().filter_map(|r| r.next_at).min()
    }

    pub(crate) fn trunk_reg_fire(&mut self, now: Instant) {
        for i in 0..self.trunk_regs.len() {
            if self.trunk_regs[i].next_at.is_some_and(|at| at <= now) {
                self.trunk_regs[i].next_at = None;
                self.trunk_regs[i].answered_challenge = false;
                self.send_trunk_register(now, i, None);
            }
        }
    }

    fn send_trunk_register(
        &mut self,
        now: Instant,
        i: usize,
        authorization: Option<(HeaderName, String)>,
    ) {
        let name = self.trunk_regs[i].trunk.clone();
        let Some(trunk) = self.profile.trunk(&name).cloned() else {
            return;
        };
        let Some(out) = trunk.outbound.clone() else {
            return;
        };
        let Some(addr) = self.trunk_addrs.get(&name).copied() else {
            self.trunk_regs[i].next_at = Some(now + RETRY);
            return;
        };
        let user = out
            .auth
            .as_ref()
            .map(|a| a.username.clone())
            .unwrap_or_else(|| "switchboard".into());
        let transport = match out.transport {
            crate::config::TransportKind::Udp => Transport::Udp,
            crate::config::TransportKind::Tcp => Transport::Tcp,
            crate::config::TransportKind::Tls => Transport::Tls,
        };
        let reg = &mut self.trunk_regs[i];
        reg.cseq += 1;
        let mut uri = Uri::sip(None, &out.host, Some(out.port));
        if transport != Transport::Udp {
            uri.params.set("transport", Some(transport.param()));
        }
        let mut r = Request::new(Method::Register, uri);
        let aor = format!("<sip:{}@{}>", user, out.host);
        r.headers.push(HeaderName::MaxForwards, "70");
        r.headers
            .push(HeaderName::From, format!("{aor};tag={}", reg.tag));
        r.headers.push(HeaderName::To, aor);
        r.headers.push(HeaderName::CallId, reg.call_id.clone());
        r.headers
            .push(HeaderName::CSeq, format!("{} REGISTER", reg.cseq));
        r.headers
            .push(HeaderName::Expires, out.register_expires.to_string());
        r.headers.push(HeaderName::UserAgent, USER_AGENT);
        if let Some((h, v)) = authorization {
            r.headers.push(h, v);
        }
        let contact = format!("<sip:{}@{}>", user, self.local.host_port(transport));
        r.headers.push(HeaderName::Contact, contact);
        r.headers.push_front(HeaderName::Via, self.via(transport));
        let tx = self.layer.send_request(now, r, Peer { transport, addr });
        self.trunk_regs[i].tx = Some(tx);
        self.reg_txs.insert(tx, i);
    }

    /// A response to one of our trunk REGISTERs.
    pub(crate) fn on_trunk_register_response(&mut self, now: Instant, i: usize, resp: Response) {
        if resp.status < 200 {
            return;
        }
        let name = self.trunk_regs[i].trunk.clone();
        let expires_cfg = self
            .profile
            .trunk(&name)
            .and_then(|t| t.outbound.as_ref())
            .map(|o| o.register_expires)
            .unwrap_or(600);
        match resp.status {
            200..=299 => {
                let granted = resp
                    .contacts()
                    .ok()
                    .and_then(|c| {
                        c.first().and_then(|c| {
                            c.params
                                .value("expires")
                                .and_then(|v| v.parse::<u64>().ok())
                        })
                    })
                    .or(resp.expires().map(u64::from))
                    .unwrap_or(expires_cfg as u64)
                    .max(10);
                let reg = &mut self.trunk_regs[i];
                reg.registered_until = Some(now + Duration::from_secs(granted));
                // Refresh at 80% of the granted interval, with a little jitter.
                let jitter = self.rng.gen_range(0..=granted / 20 + 1);
                self.trunk_regs[i].next_at =
                    Some(now + Duration::from_secs(granted * 4 / 5 - jitter.min(granted * 4 / 5)));
                info!(trunk = %name, granted, "registered with carrier");
            }
            401 | 407 if !self.trunk_regs[i].answered_challenge => {
                let creds = self
                    .profile
                    .trunk(&name)
                    .and_then(|t| t.outbound.as_ref())
                    .and_then(|o| o.auth.clone());
                let (hname, aname) = if resp.status == 401 {
                    (HeaderName::WwwAuthenticate, HeaderName::Authorization)
                } else {
                    (
                        HeaderName::ProxyAuthenticate,
                        HeaderName::ProxyAuthorization,
                    )
                };
                let challenge = resp
                    .headers
                    .get(&hname)
                    .and_then(|v| auth::parse_digest(v).ok());
                let (Some(creds), Some(challenge)) = (creds, challenge) else {
                    warn!(trunk = %name, "carrier wants credentials we do not have");
                    self.trunk_regs[i].next_at = Some(now + RETRY);
                    return;
                };
                let out = self
                    .profile
                    .trunk(&name)
                    .and_then(|t| t.outbound.clone())
                    .expect("trunk with outbound");
                let uri = Uri::sip(None, &out.host, Some(out.port)).to_string();
                let cnonce = format!("{:016x}", self.rng.gen::<u64>());
                match auth::authorization_header(
                    &challenge,
                    "REGISTER",
                    &uri,
                    &creds.username,
                    &creds.password,
                    &cnonce,
                    1,
                ) {
                    Ok(v) => {
                        self.trunk_regs[i].answered_challenge = true;
                        self.send_trunk_register(now, i, Some((aname, v)));
                    }
                    Err(e) => {
                        warn!(trunk = %name, error = %e, "cannot answer the carrier's challenge");
                        self.trunk_regs[i].next_at = Some(now + RETRY);
                    }
                }
            }
            status => {
                warn!(trunk = %name, status, "carrier refused registration");
                self.trunk_regs[i].registered_until = None;
                self.trunk_regs[i].next_at = Some(now + RETRY);
            }
        }
    }

    /// The REGISTER got no answer.
    pub(crate) fn on_trunk_register_timeout(&mut self, now: Instant, i: usize) {
        warn!(trunk = %self.trunk_regs[i].trunk, "carrier did not answer REGISTER");
        self.trunk_regs[i].next_at = Some(now + RETRY);
    }
}
