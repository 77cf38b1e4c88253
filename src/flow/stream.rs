//! Typed options of the streaming actions: `external_media_start` (VoIPBIN field names:
//! bin-flow-manager `OptionExternalMediaStart`), `mute` / `unmute` (`direction`) and
//! `stream_echo` (`duration`, as `echo`). Parses and bounds them; must not open sockets.

use super::error::FlowError;
use super::options::{path, Opt};

/// Which of the call's audio a direction names, as Asterisk's snoop (VoIPBIN's
/// `direction_listen` is the snoop's spy, `direction_speak` its whisper): `in` is what the
/// caller sends us, `out` what we send the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
    Both,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
            Self::Both => "both",
        }
    }

    pub fn has_in(self) -> bool {
        matches!(self, Self::In | Self::Both)
    }

    pub fn has_out(self) -> bool {
        matches!(self, Self::Out | Self::Both)
    }

    /// `""`/missing is `None`; anything else must be `in`, `out` or `both`.
    fn parse(o: &Opt<'_>, name: &str) -> Result<Option<Self>, FlowError> {
        match o.str(name)? {
            None | Some("") => Ok(None),
            Some("in") => Ok(Some(Self::In)),
            Some("out") => Ok(Some(Self::Out)),
            Some("both") => Ok(Some(Self::Both)),
            Some(other) => Err(FlowError::field(
                path(name),
                format!(r#"must be "in", "out", "both" or empty, not "{other}""#),
            )),
        }
    }
}

/// How the audio travels to the external host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encapsulation {
    /// RTP over UDP (RFC 3550), PCMU.
    Rtp,
    /// Binary WebSocket frames of 20 ms µ-law (a `ws://` or `wss://` URL).
    Websocket,
}

impl Encapsulation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rtp => "rtp",
            Self::Websocket => "websocket",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalMediaStart {
    /// `host:port` for RTP (a `${...}` value is checked when the action runs).
    pub external_host: String,
    pub encapsulation: Encapsulation,
    /// The caller's audio (`direction_listen` includes `in`) goes to the host.
    pub listen: bool,
    /// The host's audio is played to the caller (`direction_speak` includes `out`).
    pub speak: bool,
    /// Passed on to a WebSocket host in its first text frame; kept in the result otherwise.
    pub data: String,
}

/// Longest `external_host` and `data` accepted.
pub const MAX_HOST_LEN: usize = 2048;
pub const MAX_DATA_LEN: usize = 4096;

impl ExternalMediaStart {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let external_host = o.str_req("external_host")?;
        if external_host.len() > MAX_HOST_LEN {
            return Err(FlowError::field(
                path("external_host"),
                format!("is longer than {MAX_HOST_LEN} bytes"),
            ));
        }
        let encapsulation = encapsulation(o)?;
        match o.str("format")? {
            None | Some("") | Some("ulaw") => {}
            Some(other) => {
                return Err(FlowError::field(
                    path("format"),
                    format!(r#"only "ulaw" (G.711 µ-law, 8 kHz) is supported, not "{other}""#),
                ))
            }
        }
        match o.str("connection_type")? {
            None | Some("") | Some("client") => {}
            Some(other) => {
                return Err(FlowError::field(
                    path("connection_type"),
                    format!(
                        r#"only "client" (the engine sends first) is supported, not "{other}""#
                    ),
                ))
            }
        }
        let (listen, speak) = directions(o)?;
        let data = o.str("data")?.unwrap_or_default();
        if data.len() > MAX_DATA_LEN {
            return Err(FlowError::field(
                path("data"),
                format!("is longer than {MAX_DATA_LEN} bytes"),
            ));
        }
        if !external_host.contains("${") {
            match encapsulation {
                Encapsulation::Rtp => check_host(external_host)?,
                Encapsulation::Websocket => check_url(external_host)?,
            }
        }
        Ok(Self {
            external_host: external_host.to_owned(),
            encapsulation,
            listen,
            speak,
            data: data.to_owned(),
        })
    }
}

/// `direction_listen` / `direction_speak`. Both empty (VoIPBIN's default, which Asterisk's snoop
/// would refuse) means the usual speech-bot stream: listen `in`, speak `out`. Otherwise an empty
/// one is none, as in the snoop. Supported: listen `in` (the caller's audio; `out` and `both`
/// would need our own sent audio mixed in) and speak `out` (played to the caller; `in` would be
/// whispered into what the relay peer hears).
fn directions(o: &Opt<'_>) -> Result<(bool, bool), FlowError> {
    let listen = Direction::parse(o, "direction_listen")?;
    let speak = Direction::parse(o, "direction_speak")?;
    if listen.is_none() && speak.is_none() {
        return Ok((true, true));
    }
    if let Some(d) = listen.filter(|d| *d != Direction::In) {
        return Err(FlowError::field(
            path("direction_listen"),
            format!(
                r#"only "in" (the caller's audio) or empty is supported, not "{}""#,
                d.as_str()
            ),
        ));
    }
    if let Some(d) = speak.filter(|d| *d != Direction::Out) {
        return Err(FlowError::field(
            path("direction_speak"),
            format!(
                r#"only "out" (played to the caller) or empty is supported, not "{}""#,
                d.as_str()
            ),
        ));
    }
    Ok((listen.is_some(), speak.is_some()))
}

/// `encapsulation` `rtp` (default; `transport` `udp`) or `websocket` (also VoIPBIN's spelling:
/// `transport` `websocket`).
fn encapsulation(o: &Opt<'_>) -> Result<Encapsulation, FlowError> {
    let transport = o.str("transport")?.unwrap_or_default();
    let encapsulation = match (o.str("encapsulation")?.unwrap_or_default(), transport) {
        ("" | "none", "websocket") | ("websocket", _) => Encapsulation::Websocket,
        ("" | "rtp", _) => Encapsulation::Rtp,
        (other, _) => {
            return Err(FlowError::field(
                path("encapsulation"),
                format!(r#"must be "rtp" or "websocket", not "{other}""#),
            ))
        }
    };
    let (want, ok) = match encapsulation {
        Encapsulation::Rtp => ("udp", matches!(transport, "" | "udp")),
        Encapsulation::Websocket => ("websocket", matches!(transport, "" | "websocket")),
    };
    if !ok {
        return Err(FlowError::field(
            path("transport"),
            format!(
                r#"only "{want}" is supported with {}, not "{transport}""#,
                encapsulation.as_str()
            ),
        ));
    }
    Ok(encapsulation)
}

/// A `ws://` or `wss://` URL with a host.
fn check_url(url: &str) -> Result<(), FlowError> {
    let ok = url::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "ws" | "wss") && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(FlowError::field(
            path("external_host"),
            format!(r#"must be a ws:// or wss:// URL with websocket, not "{url}""#),
        ))
    }
}

/// `host:port` with a port other than 0.
fn check_host(host: &str) -> Result<(), FlowError> {
    let bad = || {
        FlowError::field(
            path("external_host"),
            format!(r#"must be host:port (e.g. "203.0.113.5:10000"), not "{host}""#),
        )
    };
    let (name, port) = host.rsplit_once(':').ok_or_else(bad)?;
    let name = name.trim_start_matches('[').trim_end_matches(']');
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !name.is_empty() && !name.contains('/') => Ok(()),
        _ => Err(bad()),
    }
}

/// `mute` / `unmute`'s `direction`: missing or empty is `both`.
pub(crate) fn mute_direction(o: &Opt<'_>) -> Result<Direction, FlowError> {
    Ok(Direction::parse(o, "direction")?.unwrap_or(Direction::Both))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(v: Value) -> Result<ExternalMediaStart, FlowError> {
        ExternalMediaStart::from_opt(&Opt::new(&v).unwrap())
    }

    fn field(v: Value) -> String {
        match parse(v).unwrap_err() {
            FlowError::Field { field, .. } => field,
            e => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_are_a_two_way_rtp_stream() {
        let s = parse(json!({"external_host": "127.0.0.1:4000"})).unwrap();
        assert_eq!(s.encapsulation, Encapsulation::Rtp);
        assert!(s.listen && s.speak);
        let s = parse(json!({"external_host": "h:1", "direction_listen": "in"})).unwrap();
        assert!(s.listen && !s.speak);
        let s = parse(json!({"external_host": "h:1", "direction_speak": "out"})).unwrap();
        assert!(!s.listen && s.speak);
        let s = parse(json!({"external_host": "[::1]:9", "format": "ulaw",
            "transport": "udp", "connection_type": "client", "data": "x"}))
        .unwrap();
        assert_eq!(s.data, "x");
        assert!(parse(json!({"external_host": "${host}"})).is_ok());
        for option in [
            json!({"external_host": "ws://127.0.0.1:9/x", "encapsulation": "websocket"}),
            json!({"external_host": "wss://bot.example/x", "transport": "websocket"}),
        ] {
            assert_eq!(
                parse(option).unwrap().encapsulation,
                Encapsulation::Websocket
            );
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field(json!({})), "option.external_host");
        for host in ["nohost", "h:0", "h:x", ":5", "h:70000"] {
            assert_eq!(
                field(json!({"external_host": host})),
                "option.external_host"
            );
        }
        let h = "127.0.0.1:4000";
        for (k, v, f) in [
            ("format", "slin16", "option.format"),
            ("encapsulation", "audiosocket", "option.encapsulation"),
            ("transport", "tcp", "option.transport"),
            ("connection_type", "server", "option.connection_type"),
            ("direction_listen", "both", "option.direction_listen"),
            ("direction_listen", "sideways", "option.direction_listen"),
            ("direction_speak", "in", "option.direction_speak"),
            ("encapsulation", "websocket", "option.external_host"),
        ] {
            assert_eq!(field(json!({"external_host": h, k: v})), f, "{k}={v}");
        }
    }

    #[test]
    fn websocket_needs_a_ws_url_and_no_udp() {
        let ws = |h: &str, t: &str| {
            field(json!({"external_host": h, "encapsulation": "websocket", "transport": t}))
        };
        assert_eq!(ws("http://h/", ""), "option.external_host");
        assert_eq!(ws("ws://h/", "tcp"), "option.transport");
        assert_eq!(ws("ws://h/", "udp"), "option.transport");
    }

    #[test]
    fn mute_direction_defaults_to_both() {
        let d = |v: Value| mute_direction(&Opt::new(&v).unwrap());
        assert_eq!(d(json!({})).unwrap(), Direction::Both);
        assert_eq!(d(json!({"direction": "in"})).unwrap(), Direction::In);
        assert_eq!(d(json!({"direction": "out"})).unwrap(), Direction::Out);
        assert!(d(json!({"direction": "up"})).is_err());
    }
}
