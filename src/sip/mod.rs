//! SIP: messages, transactions, digest auth, registrar, transports.

pub mod message;
pub mod transaction;
pub mod transport;
