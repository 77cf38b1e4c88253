//! Calls: one actor per SIP dialog ([`CallSession`]), the thin shell of a sans-IO leg machine
//! (`leg`: the call we answer and the leg we place, one machine with two roles), fed by the
//! [`Dispatcher`] on the transport's threads; trunk accounts: digest answers (`auth`) and
//! registrations ([`registration`]). Talks upward only through the `Recipient`s in
//! [`events`]; never imports `engine`.

pub(crate) mod auth;
pub mod dispatch;
pub mod events;
mod id;
pub mod info;
mod leg;
pub mod outbound;
pub mod overload;
pub mod party;
pub mod phones;
pub mod registration;
pub mod registry;
pub mod session;
mod shared;
pub mod span;
pub mod trunk;

pub use dispatch::{Dispatcher, DispatcherConfig};
pub use events::{CallCommand, CallEndCause, CallEvent, CallOffer, HangupCause, Refusal};
pub use id::CallId;
pub use info::{CallInfo, CallStatus};
pub use overload::OverloadGuard;
pub use phones::PhoneGate;
pub use registry::CallRegistry;
pub use session::CallSession;
pub use trunk::Trunk;
