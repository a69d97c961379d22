//! RFC 3261 §17 transactions with RFC 6026's Accepted states, sans-IO.
//!
//! Contract: four machines ([`ClientInvite`], [`ClientNonInvite`], [`ServerInvite`],
//! [`ServerNonInvite`]), each one type with one `State` enum. They take `now` and a message or a
//! timeout, queue what to transmit (`poll_transmit`) and report what the transaction user must
//! know (returned [`TuEvent`]s); `next_timeout` tells when to wake them. They never read the
//! clock or touch a socket. [`TransactionLayer`] owns all of them, matches incoming messages to
//! transactions (RFC 3261 §17.1.3, §17.2.3), and absorbs retransmissions.

mod layer;
mod machines;

pub use layer::{Incoming, TransactionLayer, Transmit, TxId};
pub use machines::{ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite};

use crate::sip::message::{Request, Response};
use std::time::Duration;

/// The base timers of RFC 3261 §17.1.1.1.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// What a transaction tells its user.
#[derive(Debug, Clone, PartialEq)]
pub enum TuEvent {
    /// A response for a client transaction (not a retransmission, except 2xx to INVITE,
    /// which the TU must ACK each time).
    Response(Response),
    /// Timer B or F fired: no final response came.
    Timeout,
    /// Timer H fired: the final non-2xx response was never ACKed.
    AckTimeout,
    /// An ACK for a 2xx reached an INVITE server transaction in Accepted state.
    Ack(Request),
}

#[cfg(test)]
mod tests;
