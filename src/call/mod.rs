//! Call sessions: one actor per SIP dialog ([`CallSession`]) owning its transactions, SDP and RTP
//! port, fed by the [`Dispatcher`] on the transport's threads. Talks upward only through the
//! `Recipient`s in [`events`]; never imports `engine`.

mod dialog;
pub mod dispatch;
pub mod events;
mod id;
pub mod info;
pub mod outbound;
pub mod overload;
pub mod registry;
pub mod session;
mod session_sip;

pub use dispatch::{Dispatcher, DispatcherConfig};
pub use events::{CallCommand, CallEndCause, CallEvent, CallOffer, HangupCause};
pub use id::CallId;
pub use info::{CallInfo, CallStatus};
pub use overload::OverloadGuard;
pub use registry::CallRegistry;
pub use session::CallSession;
