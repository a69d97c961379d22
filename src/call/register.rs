//! REGISTER: digest challenge, then the registrar's bindings (RFC 3261 §10.3).

use super::{Switch, USER_AGENT};
use crate::sip::message::{response_to, HeaderName, Request};
use crate::sip::registrar::{ContactParam, ContactSpec, RegisterOutcome, RegisterRequest};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use std::time::Instant;
use tracing::info;

impl Switch {
    pub(crate) fn on_register(&mut self, now: Instant, peer: Peer, tx: TxId, req: Request) {
        let Ok(to) = req.to() else {
            return self.respond(now, tx, &req, 400, Some("malformed To"), None);
        };
        let Some(aor) = to.uri.user.clone() else {
            return self.respond(now, tx, &req, 404, Some("No such user"), None);
        };
        let tag = self.token(10);
        let Some(cred) = req
            .headers
            .get(&HeaderName::Authorization)
            .map(str::to_string)
        else {
            return self.challenge_register(now, tx, &req, &tag, false);
        };
        let user = match self.verify_digest(now, "REGISTER", &cred) {
            Ok(u) => u,
            Err(super::routing::Reject::Challenge { stale }) => {
                return self.challenge_register(now, tx, &req, &tag, stale)
            }
            Err(super::routing::Reject::Forbidden(why)) => {
                return self.respond(now, tx, &req, 403, Some(why), Some(&tag))
            }
        };
        if user != aor || self.profile.user(&aor).is_none() {
            return self.respond(
                now,
                tx,
                &req,
                403,
                Some("Credentials do not match the AoR"),
                Some(&tag),
            );
        }
        let contacts = if req
            .headers
            .get_all(&HeaderName::Contact)
            .any(|c| c.trim() == "*")
        {
            Some(ContactSpec::Star)
        } else {
            match req.contacts() {
                Ok(list) if list.is_empty() => None,
                Ok(list) => Some(ContactSpec::List(
                    list.iter()
                        .map(|c| {
                            let mut extra = c.params.clone();
                            let expires = extra.value("expires").and_then(|v| v.parse().ok());
                            let q = extra.value("q").and_then(|v| v.parse().ok());
                            extra.remove("expires");
                            extra.remove("q");
                            ContactParam {
                                uri: c.uri.to_string(),
                                expires,
                                q,
                                params: extra.to_string(),
                            }
                        })
                        .collect(),
                )),
                Err(_) => {
                    return self.respond(now, tx, &req, 400, Some("malformed Contact"), Some(&tag))
                }
            }
        };
        let call_id = req.call_id().unwrap_or_default().to_string();
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let rr = RegisterRequest {
            aor: &aor,
            call_id: &call_id,
            cseq,
            contacts,
            expires_header: req.expires(),
            source: peer.addr,
            transport: peer.transport.param(),
        };
        match self.registrar.register(now, &rr) {
            RegisterOutcome::Ok(bindings) => {
                self.stats.registrations_ok += 1;
                self.reg_dirty.insert(aor.clone());
                let mut resp = response_to(&req, 200, None, Some(&tag));
                for b in &bindings {
                    let left = b.expires_at.saturating_duration_since(now).as_secs();
                    resp.headers.push(
                        HeaderName::Contact,
                        format!("<{}>{};expires={}", b.contact_uri, b.params, left),
                    );
                }
                resp.headers.push(HeaderName::Server, USER_AGENT);
                info!(aor = %aor, bindings = bindings.len(), source = %peer, "registered");
                self.layer.respond(now, tx, &resp);
                if bindings.is_empty() {
                    self.phone_gone(now, &aor);
                }
            }
            RegisterOutcome::IntervalTooBrief { min_expires } => {
                let mut resp = response_to(&req, 423, None, Some(&tag));
                resp.headers
                    .push(HeaderName::MinExpires, min_expires.to_string());
                self.layer.respond(now, tx, &resp);
            }
            RegisterOutcome::BadRequest(why) => {
                self.respond(now, tx, &req, 400, Some(why), Some(&tag))
            }
            RegisterOutcome::OutOfOrder => {
                self.respond(now, tx, &req, 500, Some("CSeq out of order"), Some(&tag))
            }
        }
    }

    fn challenge_register(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &Request,
        tag: &str,
        stale: bool,
    ) {
        let mut resp = response_to(req, 401, None, Some(tag));
        let secs = self.secs(now);
        for alg in self.challenge_algorithms() {
            let h = self
                .verifier
                .challenge(secs, &self.profile.realm, alg, stale);
            resp.headers.push(HeaderName::WwwAuthenticate, h);
        }
        self.layer.respond(now, tx, &resp);
    }
}

impl Switch {
    /// Whether some registrations changed since [`Switch::poll_registrations`] last ran.
    pub fn registrations_changed(&self) -> bool {
        !self.reg_dirty.is_empty()
    }

    /// The addresses-of-record whose bindings changed, each with its live bindings now
    /// (none: all gone), for the runtime to store.
    pub fn poll_registrations(
        &mut self,
        now: Instant,
    ) -> Vec<(String, Vec<crate::sip::registrar::Binding>)> {
        std::mem::take(&mut self.reg_dirty)
            .into_iter()
            .map(|aor| {
                let bindings = self
                    .registrar
                    .lookup(now, &aor)
                    .into_iter()
                    .cloned()
                    .collect();
                (aor, bindings)
            })
            .collect()
    }

    /// Bindings as stored before a restart (expired ones are dropped): phones are reachable
    /// again at once instead of at their next REGISTER.
    pub fn restore_registrations(
        &mut self,
        now: Instant,
        bindings: Vec<crate::sip::registrar::Binding>,
    ) {
        let n = bindings.len();
        for b in bindings {
            self.registrar.restore(now, b);
        }
        if n > 0 {
            info!(
                bindings = self.registrar.binding_count(),
                "registrations restored"
            );
        }
    }
}
