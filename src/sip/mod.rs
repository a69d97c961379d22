//! SIP: messages, transactions, digest auth, registrar, transports.

pub mod message;
