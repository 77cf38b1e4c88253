//! How a flow's (or one activeflow's) own webhook is called: the HTTP method (VoIPBIN's
//! `webhook_method`) and the body shape (`native` events or VoIPBIN's `{type, data}`). Names
//! and parsing only; must not send anything (see `events::webhook`).

use serde::{Deserialize, Serialize};

/// VoIPBIN's `webhook_method`; `""` in a VoIPBIN document means the default, POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum WebhookMethod {
    #[default]
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "DELETE")]
    Delete,
}

impl WebhookMethod {
    /// Parses VoIPBIN's spelling (upper case; `""` = POST).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "POST" => Self::Post,
            "PUT" => Self::Put,
            "GET" => Self::Get,
            "DELETE" => Self::Delete,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Get => "GET",
            Self::Delete => "DELETE",
        }
    }
}

impl<'de> Deserialize<'de> for WebhookMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "webhook_method: unknown method {s:?} (expected POST, PUT, GET or DELETE)"
            ))
        })
    }
}

/// The body a webhook gets: this engine's event shape, or VoIPBIN's
/// `{"type": "activeflow_updated", "data": {the full activeflow}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Native,
    Voipbin,
}

impl WebhookFormat {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "native" => Self::Native,
            "voipbin" => Self::Voipbin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Voipbin => "voipbin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_parses_voipbin_spellings() {
        assert_eq!(WebhookMethod::parse(""), Some(WebhookMethod::Post));
        assert_eq!(WebhookMethod::parse("PUT"), Some(WebhookMethod::Put));
        assert_eq!(WebhookMethod::parse("post"), None);
        for m in [
            WebhookMethod::Post,
            WebhookMethod::Put,
            WebhookMethod::Get,
            WebhookMethod::Delete,
        ] {
            assert_eq!(WebhookMethod::parse(m.as_str()), Some(m));
        }
    }

    #[test]
    fn format_parses() {
        assert_eq!(
            WebhookFormat::parse("voipbin"),
            Some(WebhookFormat::Voipbin)
        );
        assert_eq!(WebhookFormat::parse("native"), Some(WebhookFormat::Native));
        assert_eq!(WebhookFormat::parse("VoIPBIN"), None);
    }
}
