//! SIP: messages, transactions, digest auth, registrar, transports.

pub mod auth;
pub mod message;
pub mod registrar;
pub mod transaction;
pub mod transport;
