//! `mute` / `unmute` in the media session: which directions of the call's audio are muted.
//! Muted `incoming`: the caller's audio reaches nothing (relay peer, external media, echo and
//! recording get silence; its DTMF events are not passed on, though the flow still sees digits
//! and AMD still analyses the real audio: mute is about what others hear, not local analysis).
//! Muted `outgoing`: the caller gets silence in place of audio and no DTMF events.

use serde_json::{json, Value};

use super::Session;
use crate::media::request::MediaJob;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(in crate::media) struct Mute {
    pub(super) incoming: bool,
    pub(super) outgoing: bool,
}

impl Mute {
    /// Mutes (`on`) or unmutes the named directions, leaving the others as they are.
    pub(super) fn apply(&mut self, incoming: bool, outgoing: bool, on: bool) {
        if incoming {
            self.incoming = on;
        }
        if outgoing {
            self.outgoing = on;
        }
    }

    pub(super) fn to_json(self) -> Value {
        json!({ "mute_in": self.incoming, "mute_out": self.outgoing })
    }
}

impl Session {
    pub(super) fn set_mute(&mut self, job: MediaJob, incoming: bool, outgoing: bool, on: bool) {
        self.mute.apply(incoming, outgoing, on);
        self.report(job, Ok(self.mute.to_json()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_mute_and_unmute_independently() {
        let mut m = Mute::default();
        m.apply(true, true, true);
        assert_eq!(
            m,
            Mute {
                incoming: true,
                outgoing: true
            }
        );
        m.apply(false, true, false);
        assert_eq!(
            m,
            Mute {
                incoming: true,
                outgoing: false
            }
        );
        assert_eq!(m.to_json(), json!({"mute_in": true, "mute_out": false}));
        m.apply(true, false, false);
        assert_eq!(m, Mute::default());
    }
}
