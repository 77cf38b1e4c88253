//! Flow definitions for the activeflow engine: the VoIPBIN-compatible flow
//! document, typed actions, validation, variables, conditions and the flow
//! registry. Pure data: must not perform call I/O or run timers.

pub mod action;
pub mod amd;
pub mod call_action;
pub mod call_condition;
pub mod condition;
pub mod conference;
pub mod error;
pub mod hangup;
pub mod id;
pub mod integration;
pub mod limits;
pub mod media;
pub mod model;
mod options;
pub mod outbound;
pub mod queue_join;
pub mod store;
pub mod stream;
pub mod substitute;
pub mod types;
pub mod validate;
pub mod variables;
pub mod webhook;

pub use action::ActionKind;
pub use call_condition::{ConditionCallDigits, ConditionCallStatus, CALL_STATUSES};
pub use condition::{Comparison, ConditionDatetime, ConditionVariable, ValueType};
pub use error::FlowError;
pub use hangup::HangupReason;
pub use id::{ActionId, FlowId};
pub use limits::{VariableError, VariableLimits};
pub use media::{DigitsHandle, EndOfKey};
pub use model::{find_action, Action, Flow};
pub use store::FlowStore;
pub use substitute::SubstituteError;
pub use types::{NOT_YET_SUPPORTED_TYPES, SUPPORTED_TYPES};
pub use validate::{validate_actions, MAX_ACTIONS};
pub use variables::{
    Variables, ACTIVEFLOW_FLOW_ID, ACTIVEFLOW_ID, ACTIVEFLOW_REFERENCE_ID,
    ACTIVEFLOW_REFERENCE_TYPE, CALL_DESTINATION_TARGET, CALL_DIGITS, CALL_DIRECTION, CALL_ID,
    CALL_SOURCE_TARGET, CALL_SOURCE_USER, CALL_STATUS,
};
pub use webhook::{WebhookFormat, WebhookMethod};
