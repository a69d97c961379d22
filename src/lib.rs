//! Switchboard: a softswitch with a contact centre inside.
//!
//! Every piece of protocol or decision logic is a sans-IO core that takes `now` and an input
//! and returns what to send and when to wake; only `runtime` owns sockets, tasks and the clock.

pub mod sip;
