//! Transaction machines on simulated time, alone and across a seeded lossy network.

use super::*;
use crate::sip::message::{parse, response_to, HeaderName, Message, Method, Request, Uri};
use crate::sip::transport::{Peer, Transport};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

fn request(method: Method, branch: &str) -> Request {
    let mut r = Request::new(
        method.clone(),
        Uri::parse("sip:bob@127.0.0.1:5070").unwrap(),
    );
    r.headers.push(
        HeaderName::Via,
        format!("SIP/2.0/UDP 127.0.0.1:5060;branch={branch}"),
    );
    r.headers
        .push(HeaderName::From, "<sip:alice@127.0.0.1>;tag=a1");
    r.headers.push(HeaderName::To, "<sip:bob@127.0.0.1>");
    r.headers.push(HeaderName::CallId, "call-1");
    r.headers.push(HeaderName::CSeq, format!("1 {method}"));
    r
}

fn peer(port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    }
}

fn ms(t0: Instant, t: Instant) -> u128 {
    (t - t0).as_millis()
}

#[test]
fn invite_client_retransmits_with_timer_a_then_times_out_with_b() {
    let t0 = Instant::now();
    let mut tx = ClientInvite::new(
        t0,
        request(Method::Invite, "z9hG4bK1"),
        false,
        Timers::default(),
    );
    let mut sent = vec![];
    let mut now = t0;
    while tx.poll_transmit().is_some() {
        sent.push(ms(t0, now));
    }
    let mut result = None;
    while let Some(at) = tx.next_timeout() {
        now = at;
        if let Some(ev) = tx.handle_timeout(now) {
            result = Some((ev, ms(t0, now)));
        }
        while tx.poll_transmit().is_some() {
            sent.push(ms(t0, now));
        }
    }
    assert_eq!(sent, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(result, Some((TuEvent::Timeout, 32000)));
}

#[test]
fn non_invite_client_caps_timer_e_at_t2() {
    let t0 = Instant::now();
    let mut tx = ClientNonInvite::new(
        t0,
        request(Method::Options, "z9hG4bK2"),
        false,
        Timers::default(),
    );
    let mut sent = vec![];
    let mut now = t0;
    let mut result = None;
    loop {
        while tx.poll_transmit().is_some() {
            sent.push(ms(t0, now));
        }
        let Some(at) = tx.next_timeout() else { break };
        now = at;
        if let Some(ev) = tx.handle_timeout(now) {
            result = Some((ev, ms(t0, now)));
        }
    }
    assert_eq!(
        sent,
        vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(result, Some((TuEvent::Timeout, 32000)));
}

#[test]
fn non_invite_client_proceeding_retransmits_every_t2_and_completed_waits_t4() {
    let t0 = Instant::now();
    let req = request(Method::Bye, "z9hG4bK3");
    let mut tx = ClientNonInvite::new(t0, req.clone(), false, Timers::default());
    tx.poll_transmit();
    let ev = tx.handle_response(t0, response_to(&req, 100, None, None));
    assert!(matches!(ev, Some(TuEvent::Response(r)) if r.status == 100));
    assert_eq!(tx.next_timeout(), Some(t0 + Duration::from_millis(500)));
    tx.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(tx.next_timeout(), Some(t0 + Duration::from_millis(4500)));
    let ev = tx.handle_response(
        t0 + Duration::from_secs(1),
        response_to(&req, 200, None, Some("b")),
    );
    assert!(matches!(ev, Some(TuEvent::Response(r)) if r.status == 200));
    // Retransmitted final is absorbed.
    assert_eq!(
        tx.handle_response(
            t0 + Duration::from_secs(2),
            response_to(&req, 200, None, Some("b"))
        ),
        None
    );
    assert_eq!(tx.next_timeout(), Some(t0 + Duration::from_secs(6)));
    tx.handle_timeout(t0 + Duration::from_secs(6));
    assert!(tx.is_terminated());
}

#[test]
fn invite_client_acks_non_2xx_and_reacks_retransmissions() {
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bK4");
    let mut tx = ClientInvite::new(t0, req.clone(), false, Timers::default());
    tx.poll_transmit();
    let busy = response_to(&req, 486, None, Some("callee"));
    assert!(tx.handle_response(t0, busy.clone()).is_some());
    let ack = tx.poll_transmit().expect("ACK sent");
    let Message::Request(ack) = parse(&ack).unwrap() else {
        panic!()
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.cseq().unwrap().seq, 1);
    assert_eq!(ack.to().unwrap().tag(), Some("callee"));
    assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bK4"));
    assert_eq!(tx.handle_response(t0, busy), None);
    assert!(
        tx.poll_transmit().is_some(),
        "ACK resent for a retransmitted 486"
    );
    assert_eq!(tx.next_timeout(), Some(t0 + Duration::from_secs(32)));
}

#[test]
fn invite_client_passes_every_2xx_in_accepted() {
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bK5");
    let mut tx = ClientInvite::new(t0, req.clone(), false, Timers::default());
    let ok = response_to(&req, 200, None, Some("callee"));
    assert!(tx.handle_response(t0, ok.clone()).is_some());
    assert!(
        tx.handle_response(t0 + Duration::from_secs(1), ok)
            .is_some(),
        "2xx retransmission reaches the TU"
    );
    tx.handle_timeout(t0 + Duration::from_secs(32));
    assert!(tx.is_terminated(), "timer M");
}

#[test]
fn invite_server_retransmits_final_with_g_until_ack_then_i() {
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bK6");
    let mut tx = ServerInvite::new(req.clone(), false, Timers::default());
    tx.send_response(t0, &response_to(&req, 100, None, None));
    assert!(tx.poll_transmit().is_some());
    tx.handle_request(t0, req.clone());
    assert!(
        tx.poll_transmit().is_some(),
        "retransmitted INVITE gets the 100 again"
    );
    tx.send_response(t0, &response_to(&req, 486, None, Some("x")));
    tx.poll_transmit();
    let mut sent = vec![];
    for _ in 0..4 {
        let at = tx.next_timeout().unwrap();
        tx.handle_timeout(at);
        if tx.poll_transmit().is_some() {
            sent.push(ms(t0, at));
        }
    }
    assert_eq!(sent, vec![500, 1500, 3500, 7500]);
    let now = t0 + Duration::from_secs(8);
    let ack =
        crate::sip::transaction::machines::ack_for(&req, &response_to(&req, 486, None, Some("x")));
    assert_eq!(tx.handle_request(now, ack), None);
    assert_eq!(tx.next_timeout(), Some(now + Duration::from_secs(5)));
    tx.handle_timeout(now + Duration::from_secs(5));
    assert!(tx.is_terminated());
}

#[test]
fn invite_server_without_ack_reports_timer_h() {
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bK7");
    let mut tx = ServerInvite::new(req.clone(), true, Timers::default());
    tx.send_response(t0, &response_to(&req, 503, None, Some("x")));
    assert_eq!(
        tx.next_timeout(),
        Some(t0 + Duration::from_secs(32)),
        "reliable: no timer G, only H"
    );
    assert_eq!(
        tx.handle_timeout(t0 + Duration::from_secs(32)),
        Some(TuEvent::AckTimeout)
    );
}

#[test]
fn invite_server_accepted_absorbs_invites_and_passes_ack() {
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bK8");
    let mut tx = ServerInvite::new(req.clone(), false, Timers::default());
    tx.send_response(t0, &response_to(&req, 200, None, Some("x")));
    tx.poll_transmit();
    assert_eq!(tx.handle_request(t0, req.clone()), None);
    assert!(
        tx.poll_transmit().is_none(),
        "the TU retransmits 2xx, not the transaction"
    );
    let mut ack = req.clone();
    ack.method = Method::Ack;
    assert!(matches!(tx.handle_request(t0, ack), Some(TuEvent::Ack(_))));
    tx.handle_timeout(t0 + Duration::from_secs(32));
    assert!(tx.is_terminated(), "timer L");
}

/// Two layers talking over a seeded lossy network on simulated time.
struct Net {
    rng: SmallRng,
    loss: f64,
    in_flight: Vec<(Instant, Peer, Peer, bytes::Bytes)>, // (arrival, from, to, bytes)
}

impl Net {
    fn send(&mut self, now: Instant, from: Peer, t: Transmit) {
        if self.rng.gen_bool(self.loss) {
            return;
        }
        let delay = Duration::from_millis(self.rng.gen_range(5..60));
        self.in_flight.push((now + delay, from, t.peer, t.bytes));
    }
}

/// A UAS layer answers INVITE with 180 then `final_status`; the UAC layer ACKs non-2xx.
/// Returns (final status seen by the UAC, whether the UAS saw the transaction end cleanly).
fn run_invite(seed: u64, loss: f64, final_status: u16) -> (Option<u16>, bool, usize) {
    let t0 = Instant::now();
    let (a, b) = (peer(5060), peer(5070));
    let mut uac = TransactionLayer::new(Timers::default());
    let mut uas = TransactionLayer::new(Timers::default());
    let mut net = Net {
        rng: SmallRng::seed_from_u64(seed),
        loss,
        in_flight: vec![],
    };
    let mut now = t0;
    uac.send_request(now, request(Method::Invite, "z9hG4bKsim"), b);
    let mut final_seen = None;
    let mut uas_timeout = false;
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 10_000, "livelock");
        for t in uac.drain_transmit().collect::<Vec<_>>() {
            net.send(now, a, t);
        }
        for t in uas.drain_transmit().collect::<Vec<_>>() {
            net.send(now, b, t);
        }
        let next_net = net.in_flight.iter().map(|f| f.0).min();
        let next = [next_net, uac.poll_timeout(), uas.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        now = next;
        for (_, ev) in uac.handle_timeout(now) {
            if ev == TuEvent::Timeout {
                final_seen = Some(408);
            }
        }
        for (_, ev) in uas.handle_timeout(now) {
            if ev == TuEvent::AckTimeout {
                uas_timeout = true;
            }
        }
        let due: Vec<_> = net
            .in_flight
            .iter()
            .filter(|f| f.0 <= now)
            .cloned()
            .collect();
        net.in_flight.retain(|f| f.0 > now);
        for (_, from, to, bytes) in due {
            let msg = parse(&bytes).unwrap();
            if to == b {
                if let Message::Request(req) = msg {
                    if let Incoming::Request { tx, req } = uas.receive_request(now, req, from) {
                        uas.respond(now, tx, &response_to(&req, 180, None, Some("uas")));
                        uas.respond(now, tx, &response_to(&req, final_status, None, Some("uas")));
                    }
                }
            } else if let Message::Response(resp) = msg {
                if let Incoming::Response { resp, .. } = uac.receive_response(now, resp) {
                    if resp.status >= 200 {
                        final_seen.get_or_insert(resp.status);
                    }
                }
            }
        }
    }
    (final_seen, !uas_timeout, steps)
}

#[test]
fn invite_with_486_survives_loss_across_seeds() {
    let mut completed = 0;
    for seed in 0..200 {
        let (fin, clean, _) = run_invite(seed, 0.3, 486);
        assert!(
            fin.is_some(),
            "seed {seed}: the UAC always learns an outcome"
        );
        if fin == Some(486) && clean {
            completed += 1;
        }
    }
    // With 30% loss each way, nearly every transaction completes within timer B/H.
    assert!(completed >= 195, "completed {completed}/200");
}

#[test]
fn invite_without_loss_is_quiet() {
    let (fin, clean, steps) = run_invite(7, 0.0, 486);
    assert_eq!(fin, Some(486));
    assert!(clean);
    assert!(steps < 20, "no retransmission storms: {steps} steps");
}

#[test]
fn layer_matches_cancel_to_invite_and_ack_to_accepted() {
    let t0 = Instant::now();
    let mut uas = TransactionLayer::new(Timers::default());
    let inv = request(Method::Invite, "z9hG4bKc");
    let Incoming::Request { tx, .. } = uas.receive_request(t0, inv.clone(), peer(5060)) else {
        panic!()
    };
    let mut cancel = inv.clone();
    cancel.method = Method::Cancel;
    cancel.headers.set(HeaderName::CSeq, "1 CANCEL");
    match uas.receive_request(t0, cancel, peer(5060)) {
        Incoming::Cancel { invite, .. } => assert_eq!(invite, Some(tx)),
        other => panic!("{other:?}"),
    }
    // Retransmitted INVITE is absorbed.
    assert_eq!(
        uas.receive_request(t0, inv.clone(), peer(5060)),
        Incoming::Absorbed
    );
    // ACK with a new branch (for a 2xx) goes to the dialog.
    let mut ack = request(Method::Ack, "z9hG4bKother");
    ack.headers.set(HeaderName::CSeq, "1 ACK");
    assert!(matches!(
        uas.receive_request(t0, ack, peer(5060)),
        Incoming::Ack(_)
    ));
    // Stray 2xx with no client transaction.
    let ok = response_to(&inv, 200, None, Some("t"));
    let mut uac = TransactionLayer::new(Timers::default());
    assert!(matches!(
        uac.receive_response(t0, ok),
        Incoming::Stray2xx(_)
    ));
}

#[test]
fn udp_responses_follow_via_received_and_rport() {
    let t0 = Instant::now();
    let mut uas = TransactionLayer::new(Timers::default());
    let src = peer(40000);
    // No rport: received IP + sent-by port.
    let mut req = request(Method::Options, "z9hG4bKv1");
    req.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bKv1;received=127.0.0.1",
    );
    let Incoming::Request { tx, req } = uas.receive_request(t0, req, src) else {
        panic!()
    };
    uas.respond(t0, tx, &response_to(&req, 200, None, Some("x")));
    assert_eq!(
        uas.poll_transmit().unwrap().peer.addr,
        "127.0.0.1:5062".parse().unwrap()
    );
    // rport filled in: back to the source port.
    let mut req = request(Method::Options, "z9hG4bKv2");
    req.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bKv2;received=127.0.0.1;rport=40000",
    );
    let Incoming::Request { tx, req } = uas.receive_request(t0, req, src) else {
        panic!()
    };
    uas.respond(t0, tx, &response_to(&req, 200, None, Some("x")));
    assert_eq!(uas.poll_transmit().unwrap().peer.addr, src.addr);
}
