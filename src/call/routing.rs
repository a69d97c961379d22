//! Who is calling (trunk by source address, local user by digest) and where the call goes.

use super::Switch;
use crate::config::{RouteSource, RouteTarget, Secret};
use crate::sip::auth::{self, Algorithm, Verdict};
use crate::sip::message::{HeaderName, Request};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use std::time::Instant;
use tracing::info;

/// The caller's identity, as established for this INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Came from a trunk's allowed source (or authenticated with its inbound credentials).
    Trunk(String),
    /// A local user who answered our digest challenge.
    LocalUser(String),
}

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    User(String),
    Trunk(String),
    /// Challenge the caller: the number is allowed only for authenticated local users.
    Challenge,
    Reject {
        status: u16,
        reason: Option<String>,
    },
    /// The echo test: answer and send the caller's audio back.
    Echo,
    /// Answered by Switchboard and run through this IVR flow.
    Flow(String),
    /// Answered by Switchboard and queued for an agent.
    Queue(String),
    /// A target this build cannot serve yet (flows, queues) or that is not loaded.
    Unavailable(String),
}

/// Why an INVITE is refused before routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reject {
    Challenge { stale: bool },
    Forbidden(&'static str),
}

impl Switch {
    /// Verifies an Authorization/Proxy-Authorization value; trunk inbound credentials count too.
    pub(crate) fn verify_digest(
        &mut self,
        now: Instant,
        method: &str,
        value: &str,
    ) -> Result<String, Reject> {
        let Ok(params) = auth::parse_digest(value) else {
            self.stats.auth_failures += 1;
            return Err(Reject::Forbidden("Malformed credentials"));
        };
        let secs = self.secs(now);
        let realm = self.profile.realm.clone();
        let profile = self.profile.clone();
        let lookup = |user: &str, alg: Algorithm| -> Option<String> {
            if let Some(u) = profile.user(user) {
                return match (&u.secret, alg) {
                    (Secret::Password(p), _) => Some(auth::ha1(alg, user, &realm, p)),
                    (Secret::Ha1 { md5, .. }, Algorithm::Md5) => md5.clone(),
                    (Secret::Ha1 { sha256, .. }, Algorithm::Sha256) => sha256.clone(),
                };
            }
            profile.trunks.iter().find_map(|t| {
                let c = t.inbound.digest.as_ref()?;
                (c.username == user).then(|| auth::ha1(alg, user, &realm, &c.password))
            })
        };
        match self
            .verifier
            .verify(secs, method, &params, &self.profile.realm, lookup)
        {
            Verdict::Ok { username } => Ok(username),
            Verdict::Stale => Err(Reject::Challenge { stale: true }),
            Verdict::Failed(reason) => {
                self.stats.auth_failures += 1;
                info!(?reason, user = ?params.username, "digest authentication failed");
                Err(match reason {
                    auth::FailureReason::BadNonce => Reject::Challenge { stale: false },
                    _ => Reject::Forbidden("Bad credentials"),
                })
            }
        }
    }

    /// Establishes who sent an INVITE.
    pub(crate) fn identify(
        &mut self,
        now: Instant,
        peer: Peer,
        req: &Request,
    ) -> Result<Identity, Reject> {
        if let Some(v) = req
            .headers
            .get(&HeaderName::ProxyAuthorization)
            .map(str::to_string)
        {
            let user = self.verify_digest(now, "INVITE", &v)?;
            if self.profile.user(&user).is_some() {
                return Ok(Identity::LocalUser(user));
            }
            if let Some(t) = self.profile.trunks.iter().find(|t| {
                t.inbound
                    .digest
                    .as_ref()
                    .is_some_and(|c| c.username == user)
            }) {
                return Ok(Identity::Trunk(t.name.clone()));
            }
            return Err(Reject::Forbidden("Unknown user"));
        }
        if let Some(t) = self.profile.trunk_for_source(peer.addr.ip()) {
            if t.inbound.digest.is_none() || !t.inbound.allow.is_empty() {
                return Ok(Identity::Trunk(t.name.clone()));
            }
        }
        Err(Reject::Challenge { stale: false })
    }

    /// Sends the refusal for `reject`.
    pub(crate) fn reject(&mut self, now: Instant, tx: TxId, req: &Request, reject: Reject) {
        match reject {
            Reject::Forbidden(why) => self.respond(now, tx, req, 403, Some(why), None),
            Reject::Challenge { stale } => {
                let mut resp =
                    crate::sip::message::response_to(req, 407, None, Some(&self.token(10)));
                let secs = self.secs(now);
                for alg in self.challenge_algorithms() {
                    let h = self
                        .verifier
                        .challenge(secs, &self.profile.realm, alg, stale);
                    resp.headers.push(HeaderName::ProxyAuthenticate, h);
                }
                self.layer.respond(now, tx, &resp);
            }
        }
    }

    pub(crate) fn challenge_algorithms(&self) -> Vec<Algorithm> {
        self.profile
            .registrar
            .algorithms
            .iter()
            .map(|a| match a {
                crate::config::DigestAlgorithm::Md5 => Algorithm::Md5,
                crate::config::DigestAlgorithm::Sha256 => Algorithm::Sha256,
            })
            .collect()
    }

    /// The first route whose number and source match. A number that matches only routes for
    /// other sources is refused (403), or challenged when the caller could be a local user.
    /// `from_user` is the caller's own user part (From), used to offer a challenge to a
    /// softphone that shares a trunk's address. The flag says whether the route records.
    pub fn route(
        &self,
        identity: &Identity,
        number: &str,
        from_user: Option<&str>,
    ) -> (RouteDecision, bool) {
        let number = number.to_string();
        let mut blocked_for_source = false;
        let mut local_only = false;
        for r in &self.profile.routes {
            if !r.matcher.matches(&number) {
                continue;
            }
            let allowed = match (&r.from, identity) {
                (RouteSource::Any, _) => true,
                (RouteSource::LocalUsers, Identity::LocalUser(_)) => true,
                (RouteSource::Trunks, Identity::Trunk(_)) => true,
                (RouteSource::Trunk(n), Identity::Trunk(t)) => n == t,
                _ => false,
            };
            if !allowed {
                blocked_for_source = true;
                local_only |= r.from == RouteSource::LocalUsers;
                continue;
            }
            if blocked_for_source && matches!(r.target, RouteTarget::Reject { .. }) {
                break;
            }
            let decision = match &r.target {
                RouteTarget::User(Some(ext)) => RouteDecision::User(ext.clone()),
                RouteTarget::User(None) => {
                    if self.profile.user(&number).is_some() {
                        RouteDecision::User(number)
                    } else {
                        RouteDecision::Reject {
                            status: 404,
                            reason: None,
                        }
                    }
                }
                RouteTarget::Trunk(t) => RouteDecision::Trunk(t.clone()),
                RouteTarget::Flow(f) if self.has_flow(f) => RouteDecision::Flow(f.clone()),
                RouteTarget::Flow(f) => {
                    RouteDecision::Unavailable(format!("IVR flow {f} is not loaded"))
                }
                RouteTarget::Queue(q) if self.acd.queue_names().any(|n| n == q) => {
                    RouteDecision::Queue(q.clone())
                }
                RouteTarget::Queue(q) => {
                    RouteDecision::Unavailable(format!("Queue {q} is not configured"))
                }
                RouteTarget::Echo => RouteDecision::Echo,
                RouteTarget::Reject { code, reason } => RouteDecision::Reject {
                    status: *code,
                    reason: reason.clone(),
                },
            };
            return (decision, r.record);
        }
        if blocked_for_source {
            // A trunk caller presenting a local extension as From may be a softphone on a
            // trunk's address: let it authenticate.
            let from_local = from_user.is_some_and(|u| self.profile.user(u).is_some());
            if local_only && from_local && !matches!(identity, Identity::LocalUser(_)) {
                return (RouteDecision::Challenge, false);
            }
            let forbidden = RouteDecision::Reject {
                status: 403,
                reason: Some("Not allowed from this source".into()),
            };
            return (forbidden, false);
        }
        (
            RouteDecision::Reject {
                status: 404,
                reason: None,
            },
            false,
        )
    }
}
