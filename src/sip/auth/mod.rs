//! SIP digest authentication (RFC 3261 §22, RFC 7616): the `Digest` challenge and credentials
//! headers and the response computation, shared by the UAC answering a trunk's 401/407 and the
//! UAS challenging phones (`server`: nonces, nonce counts, and the failed-auth ban table).
//! Sans-IO.

mod ban;
pub mod digest;
pub mod nonce;
mod params;
pub mod server;

pub use digest::{
    challenge_of, Algorithm, Challenge, ChallengeKind, Credentials, DigestError, QopAuth,
};
pub use params::ParamsError;
