//! SIP stack: message fixes over rsip, TCP framing, UDP/TCP transport and the RFC 3261 §17
//! transaction state machines. Knows nothing of calls, flows or actors.

pub mod message;
pub mod transaction;
pub mod transport;
