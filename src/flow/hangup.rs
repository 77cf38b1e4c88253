//! Hangup reasons of the `hangup` action and their SIP mapping.
//! Owns the reason spelling and pre-answer SIP code; must not send SIP.

/// Why a call is hung up; decides the SIP code when not yet answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HangupReason {
    Normal,
    Busy,
    NoAnswer,
    /// Any other reason string, kept so it can be logged and reported.
    Other(String),
}

impl HangupReason {
    /// Parses the option value; empty means `normal`.
    pub fn parse(s: &str) -> Self {
        match s {
            "" | "normal" => Self::Normal,
            "busy" => Self::Busy,
            "noanswer" => Self::NoAnswer,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The option spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Normal => "normal",
            Self::Busy => "busy",
            Self::NoAnswer => "noanswer",
            Self::Other(s) => s,
        }
    }

    /// Final response code when rejecting an unanswered INVITE.
    pub fn sip_code_before_answer(&self) -> u16 {
        match self {
            Self::Busy => 486,
            Self::NoAnswer => 480,
            _ => 603,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_codes() {
        assert_eq!(HangupReason::parse(""), HangupReason::Normal);
        assert_eq!(HangupReason::parse("normal"), HangupReason::Normal);
        assert_eq!(HangupReason::parse("busy").sip_code_before_answer(), 486);
        assert_eq!(
            HangupReason::parse("noanswer").sip_code_before_answer(),
            480
        );
        assert_eq!(HangupReason::Normal.sip_code_before_answer(), 603);
        let other = HangupReason::parse("decline");
        assert_eq!(other, HangupReason::Other("decline".into()));
        assert_eq!(other.as_str(), "decline");
        assert_eq!(other.sip_code_before_answer(), 603);
        for r in ["normal", "busy", "noanswer"] {
            assert_eq!(HangupReason::parse(r).as_str(), r);
        }
    }
}
