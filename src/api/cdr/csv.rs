//! The CDR export's CSV: its columns, one ended call as one record, and field quoting
//! (RFC 4180: fields holding a comma, a double quote, CR or LF are quoted, quotes doubled;
//! records end with CRLF) with a guard against formula injection in spreadsheet tools.
//! Pure text; reads no storage.

use crate::storage::EndedCall;

/// The header row's names, in column order.
pub(crate) const COLUMNS: [&str; 17] = [
    "call_id",
    "activeflow_id",
    "direction",
    "from",
    "to",
    "sip_call_id",
    "peer",
    "node_id",
    "created",
    "answered",
    "ended",
    "ring_seconds",
    "duration_seconds",
    "end_cause",
    "sip_code",
    "hangup_side",
    "codec",
];

/// The header row, CRLF-terminated.
pub(crate) fn header() -> String {
    let mut line = COLUMNS.join(",");
    line.push_str("\r\n");
    line
}

/// Appends `call` as one record.
pub(crate) fn record(out: &mut String, call: &EndedCall) {
    let answered = call.tm_answer.as_deref();
    // Ringing lasts until the answer, or until the end for a call never answered.
    let ring = seconds_between(&call.tm_create, answered.unwrap_or(&call.tm_end));
    let duration = answered.map_or(Some(0), |at| seconds_between(at, &call.tm_end));
    let sip_code = match (call.end_code, answered) {
        (Some(code), _) => code.to_string(),
        (None, Some(_)) => "200".to_owned(),
        (None, None) => String::new(),
    };
    let seconds = |s: Option<i64>| s.map_or_else(String::new, format_millis);
    let end_cause = call.end_cause.as_deref().unwrap_or_default();
    let fields: [&str; 17] = [
        &call.id,
        call.activeflow_id.as_deref().unwrap_or_default(),
        &call.direction,
        &call.source,
        &call.destination,
        &call.sip_call_id,
        &call.peer,
        call.node_id.as_deref().unwrap_or_default(),
        &call.tm_create,
        answered.unwrap_or_default(),
        &call.tm_end,
        &seconds(ring),
        &seconds(duration),
        end_cause,
        &sip_code,
        hangup_side(end_cause, &call.direction),
        call.codec.as_deref().unwrap_or_default(),
    ];
    for (i, value) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, value);
    }
    out.push_str("\r\n");
}

/// Who ended the call, from its end cause and direction: `remote` (the SIP peer: BYE,
/// CANCEL, a refusal, a transfer), `engine` (the flow, an operator, a timer, the engine's own
/// failure, restart or node loss), `network` (the peer unreachable: no ACK for our 200, no
/// RTP); "" for a cause this does not know. `failed` depends on who placed the call: an
/// incoming call fails by the engine's own doing (503 when no RTP port is free, 500, 504
/// when it gives up waiting for a PRACK, its session dying), a call the engine placed when
/// its callee cannot be reached (no DNS answer, a transport error, no response to the
/// INVITE, an unusable SDP answer).
pub(crate) fn hangup_side(end_cause: &str, direction: &str) -> &'static str {
    match end_cause {
        "remote_bye" | "cancelled" | "rejected" | "transferred" => "remote",
        "ack_timeout" | "rtp_timeout" => "network",
        "failed" if direction == "outgoing" => "network",
        "failed" | "local" | "max_duration" | "session_expired" | "no_answer" | "node_lost"
        | "engine_restart" => "engine",
        _ => "",
    }
}

/// Appends `value` as one field: quoted when it holds a comma, a double quote, CR or LF
/// (quotes doubled); prefixed with `'` when a spreadsheet would take it for a formula.
pub(crate) fn field(out: &mut String, value: &str) {
    let guard = is_formula_like(value);
    let quote = value.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if guard {
        out.push('\'');
    }
    if quote {
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// OWASP's CSV injection rule: a cell starting with `=`, `+`, `-`, `@`, a tab or CR may be
/// evaluated as a formula (`=HYPERLINK(...)`, `=cmd|' /C calc'!A0`). A plain signed number
/// (`+15550100`, `-1.5`) cannot carry one, so telephone numbers in E.164 stay as they are.
fn is_formula_like(value: &str) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    if !matches!(first, '=' | '+' | '-' | '@' | '\t' | '\r') {
        return false;
    }
    !is_signed_number(value)
}

/// `[+-]digits[.digits]`.
fn is_signed_number(value: &str) -> bool {
    let Some(rest) = value.strip_prefix(['+', '-']) else {
        return false;
    };
    let (whole, fraction) = rest.split_once('.').unwrap_or((rest, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction)
}

/// Milliseconds from `from` to `to` (stored RFC 3339 timestamps); `None` if either does not
/// parse or `to` is earlier.
fn seconds_between(from: &str, to: &str) -> Option<i64> {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    let ms = (parse(to)? - parse(from)?).num_milliseconds();
    (ms >= 0).then_some(ms)
}

/// Milliseconds as seconds with three decimals (`12.345`).
fn format_millis(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(value: &str) -> String {
        let mut out = String::new();
        field(&mut out, value);
        out
    }

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(quoted("plain"), "plain");
        assert_eq!(quoted(""), "");
        assert_eq!(quoted("a,b"), "\"a,b\"");
        assert_eq!(quoted("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quoted("two\r\nlines"), "\"two\r\nlines\"");
        assert_eq!(quoted("lf\nonly"), "\"lf\nonly\"");
    }

    #[test]
    fn formulas_are_defused_and_numbers_left_alone() {
        assert_eq!(quoted("=1+2"), "'=1+2");
        assert_eq!(quoted("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(quoted("-2+3"), "'-2+3");
        assert_eq!(quoted("+cmd|' /C calc'!A0"), "'+cmd|' /C calc'!A0");
        assert_eq!(quoted("\t=1"), "'\t=1");
        assert_eq!(quoted("\r=1"), "\"'\r=1\"");
        // Quoting and the guard together: the quote comes first, the guard inside it.
        assert_eq!(quoted("=cmd|x, y"), "\"'=cmd|x, y\"");
        assert_eq!(quoted("=\"a\""), "\"'=\"\"a\"\"\"");
        for number in ["+15550100", "-1", "-1.5", "+0.25"] {
            assert_eq!(quoted(number), number);
        }
        for not_number in ["+", "-.5", "+1.", "+1e3", "+1 555"] {
            assert_eq!(quoted(not_number), format!("'{not_number}"), "{not_number}");
        }
        assert_eq!(
            quoted("alice=bob"),
            "alice=bob",
            "only a leading sign counts"
        );
    }

    fn call(answer: Option<&str>, end_code: Option<u16>, end_cause: &str) -> EndedCall {
        EndedCall {
            id: "c1".into(),
            activeflow_id: Some("a1".into()),
            node_id: None,
            sip_call_id: "x@y".into(),
            direction: "incoming".into(),
            source: "\"Mallory, Inc\" <sip:=cmd@h>".into(),
            destination: "100".into(),
            peer: "127.0.0.1:5060/udp".into(),
            end_cause: Some(end_cause.into()),
            end_code,
            codec: answer.map(|_| "PCMU".into()),
            tm_create: "2026-01-01T00:00:00.000000Z".into(),
            tm_answer: answer.map(str::to_owned),
            tm_end: "2026-01-01T00:00:12.345678Z".into(),
        }
    }

    #[test]
    fn a_record_has_durations_codes_and_sides() {
        let mut out = String::new();
        record(
            &mut out,
            &call(Some("2026-01-01T00:00:02.000000Z"), None, "remote_bye"),
        );
        assert_eq!(
            out,
            "c1,a1,incoming,\"\"\"Mallory, Inc\"\" <sip:=cmd@h>\",100,x@y,127.0.0.1:5060/udp,,\
             2026-01-01T00:00:00.000000Z,2026-01-01T00:00:02.000000Z,\
             2026-01-01T00:00:12.345678Z,2.000,10.345,remote_bye,200,remote,PCMU\r\n"
        );
        let mut out = String::new();
        record(&mut out, &call(None, Some(486), "local"));
        let fields: Vec<&str> = out.trim_end().rsplit(',').take(6).collect();
        assert_eq!(fields, ["", "engine", "486", "local", "0.000", "12.345"]);
        assert_eq!(header().matches(',').count(), COLUMNS.len() - 1);
    }

    /// Every end cause the engine writes (`CallEndCause::as_str`, and recovery's
    /// `engine_restart`) has a side.
    #[test]
    fn every_end_cause_has_a_side() {
        use crate::call::CallEndCause as C;
        let causes = [
            C::RemoteBye,
            C::Cancelled,
            C::AckTimeout,
            C::RtpTimeout,
            C::MaxDuration,
            C::SessionExpired,
            C::Local,
            C::Failed,
            C::Rejected(486),
            C::NoAnswer,
            C::Transferred,
            C::NodeLost,
        ];
        for cause in causes.map(C::as_str).into_iter().chain(["engine_restart"]) {
            for direction in ["incoming", "outgoing"] {
                assert!(!hangup_side(cause, direction).is_empty(), "{cause}");
            }
        }
        assert_eq!(hangup_side("something_new", "incoming"), "");
    }

    #[test]
    fn the_peer_unreachable_is_the_network_and_an_engine_failure_the_engine() {
        for cause in ["ack_timeout", "rtp_timeout"] {
            for direction in ["incoming", "outgoing"] {
                assert_eq!(hangup_side(cause, direction), "network", "{cause}");
            }
        }
        assert_eq!(hangup_side("failed", "incoming"), "engine");
        assert_eq!(hangup_side("failed", "outgoing"), "network");
        let mut out = String::new();
        record(&mut out, &call(None, Some(503), "failed"));
        assert!(out.ends_with(",failed,503,engine,\r\n"), "{out}");
    }
}
