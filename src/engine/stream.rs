//! The media requests of the streaming actions (`external_media_start`, `mute`, `unmute`), as
//! pure functions of their typed options, for `execute`. No I/O.

use crate::flow::stream::{Direction, ExternalMediaStart};
use crate::flow::{VariableError, VariableLimits, Variables};
use crate::media::external::ExternalMediaRequest;
use crate::media::MediaRequest;

/// The variable holding the id of the external media stream a flow started last.
pub(crate) const EXTERNAL_MEDIA_ID: &str = "external_media.id";

/// The variable holding the local address (`ip:port`) of the stream a flow started last.
pub(crate) const EXTERNAL_MEDIA_LOCAL_ADDRESS: &str = "external_media.local_address";

/// Variables a finished media job sets from its result: a started external media stream's
/// local address (VoIPBIN exposes it as the external media's `local_ip`/`local_port`).
pub(crate) fn result_variables(result: &serde_json::Value) -> Option<(&'static str, String)> {
    let started = result.get("external_media_id").is_some();
    let local = result.get("local_address")?.as_str()?;
    started.then(|| (EXTERNAL_MEDIA_LOCAL_ADDRESS, local.to_owned()))
}

/// A new stream's request; its id goes in the `external_media.id` variable.
pub(super) fn external_media_start(
    s: &ExternalMediaStart,
    variables: &mut Variables,
    limits: &VariableLimits,
) -> Result<MediaRequest, VariableError> {
    let id = uuid::Uuid::new_v4().to_string();
    variables.try_set(EXTERNAL_MEDIA_ID, id.clone(), limits)?;
    Ok(MediaRequest::ExternalMediaStart(ExternalMediaRequest {
        id,
        encapsulation: s.encapsulation,
        host: s.external_host.clone(),
        activeflow_id: variables
            .get(crate::flow::ACTIVEFLOW_ID)
            .unwrap_or_default()
            .to_owned(),
        data: s.data.clone(),
        listen: s.listen,
        speak: s.speak,
    }))
}

/// `mute` (`on`) or `unmute` of `direction`.
pub(super) fn mute(direction: Direction, on: bool) -> MediaRequest {
    MediaRequest::Mute {
        incoming: direction.has_in(),
        outgoing: direction.has_out(),
        on,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_stream_sets_its_local_address() {
        let started =
            serde_json::json!({"external_media_id": "x", "local_address": "10.0.0.1:20000"});
        assert_eq!(
            result_variables(&started),
            Some((EXTERNAL_MEDIA_LOCAL_ADDRESS, "10.0.0.1:20000".to_owned()))
        );
        assert_eq!(result_variables(&serde_json::json!({"played_ms": 1})), None);
    }

    #[test]
    fn mute_names_its_directions() {
        assert_eq!(
            mute(Direction::In, true),
            MediaRequest::Mute {
                incoming: true,
                outgoing: false,
                on: true
            }
        );
        assert_eq!(
            mute(Direction::Both, false),
            MediaRequest::Mute {
                incoming: true,
                outgoing: true,
                on: false
            }
        );
    }
}
