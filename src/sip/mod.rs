//! SIP stack: message fixes over rsip, TCP framing, UDP/TCP transport, the RFC 3261 §17
//! transaction state machines and the §12 dialog, digest authentication (§22), per-source rate
//! limits, RFC 3263 server location (`resolve`). Knows nothing of calls, flows or actors.

pub mod auth;
pub mod dialog;
pub mod message;
pub mod rate_limit;
pub mod registrar;
pub mod resolve;
pub mod transaction;
pub mod transport;
