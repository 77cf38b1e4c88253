//! `queue_join`'s option (VoIPBIN bin-flow-manager option.go `OptionQueueJoin`): `queue_id`,
//! a queue defined over `/v1/queues`. Checks the shape only; whether the queue exists is
//! known when the action runs (`queue.result` = `not_found`).

use super::error::FlowError;
use super::options::{path, Opt};

/// The `queue_id`: a uuid, or a `${...}` reference resolved when the action runs.
pub(crate) fn queue_id(o: &Opt<'_>) -> Result<String, FlowError> {
    let id = o.str_req("queue_id")?;
    if !id.contains("${") && uuid::Uuid::parse_str(id).is_err() {
        return Err(FlowError::field(
            path("queue_id"),
            "must be a queue id (uuid)",
        ));
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::flow::ActionKind;

    #[test]
    fn queue_id_is_a_uuid_or_a_variable() {
        let id = "0b6ad8a8-1c7a-4f5e-9d7e-5d1c5e0f3b11";
        assert_eq!(
            ActionKind::parse("queue_join", &json!({"queue_id": id})).unwrap(),
            ActionKind::QueueJoin {
                queue_id: id.into()
            }
        );
        assert!(ActionKind::parse("queue_join", &json!({"queue_id": "${q}"})).is_ok());
        for bad in [
            json!({}),
            json!({"queue_id": "nope"}),
            json!({"queue_id": 5}),
        ] {
            let e = ActionKind::parse("queue_join", &bad).unwrap_err();
            assert!(e.to_string().starts_with("option.queue_id"), "{e}");
        }
    }
}
