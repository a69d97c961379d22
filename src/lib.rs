//! Switchboard: a softswitch with a contact centre inside.
//!
//! Every piece of protocol or decision logic is a sans-IO core that takes `now` and an input
//! and returns what to send and when to wake: [`sip::transaction`], [`sip::registrar`],
//! [`sip::auth`], [`call::Switch`]. Only [`runtime`] owns sockets, tasks and the clock.
//!
//! The run loop contract, for every core: feed `handle_message(now, …)` /
//! `handle_timeout(now)`, then drain `poll_transmit()` until it returns `None`, then sleep
//! until `poll_timeout()`.

pub mod acd;
pub mod call;
pub mod config;
pub mod ivr;
pub mod media;
pub mod runtime;
pub mod sdp;
pub mod setup;
pub mod sip;
pub mod speech;
pub mod telemetry;
pub mod text;
