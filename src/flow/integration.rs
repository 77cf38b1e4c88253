//! Typed options of the HTTP actions (`fetch`, `webhook_send`): URL, method, body. Checks what
//! can be checked before substitution; must not send anything.

use super::error::FlowError;
use super::options::{path, Opt};

/// Longest `webhook_send` body (bytes) a flow may give.
pub const MAX_WEBHOOK_DATA: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }

    fn from_opt(o: &Opt<'_>, name: &str, allowed: &[HttpMethod]) -> Result<Self, FlowError> {
        let value = o.str(name)?.unwrap_or("POST").to_ascii_uppercase();
        allowed
            .iter()
            .copied()
            .find(|m| m.as_str() == value)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
                FlowError::field(path(name), format!("must be one of {}", names.join(", ")))
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub event_url: String,
    /// GET asks with no body; POST sends the activeflow's id and variables as JSON.
    pub event_method: HttpMethod,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSend {
    pub uri: String,
    pub method: HttpMethod,
    /// The body's content type.
    pub data_type: String,
    pub data: String,
    /// Wait for the answer (its status goes in `result`); otherwise send in the background.
    pub sync: bool,
}

impl Fetch {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        Ok(Fetch {
            event_url: url(o, "event_url")?,
            event_method: HttpMethod::from_opt(
                o,
                "event_method",
                &[HttpMethod::Get, HttpMethod::Post],
            )?,
        })
    }
}

impl WebhookSend {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let data = o.str("data")?.unwrap_or_default();
        if data.len() > MAX_WEBHOOK_DATA {
            return Err(FlowError::field(
                path("data"),
                format!("is longer than {MAX_WEBHOOK_DATA} bytes"),
            ));
        }
        let sync = match o.raw("sync") {
            None => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => return Err(FlowError::field(path("sync"), "must be true or false")),
        };
        Ok(WebhookSend {
            uri: url(o, "uri")?,
            method: HttpMethod::from_opt(
                o,
                "method",
                &[
                    HttpMethod::Post,
                    HttpMethod::Put,
                    HttpMethod::Patch,
                    HttpMethod::Get,
                    HttpMethod::Delete,
                ],
            )?,
            data_type: match o.str("data_type")? {
                None | Some("") => "application/json".to_owned(),
                Some(t) => t.to_owned(),
            },
            data: data.to_owned(),
            sync,
        })
    }
}

/// An http(s) URL (or one still holding `${...}`, checked again when it runs).
fn url(o: &Opt<'_>, name: &str) -> Result<String, FlowError> {
    let value = o.str_req(name)?;
    let lower = value.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://") || value.starts_with("${")) {
        return Err(FlowError::field(
            path(name),
            "must be an http:// or https:// URL",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(e: FlowError) -> String {
        match e {
            FlowError::Field { field, .. } => field,
            e => panic!("{e}"),
        }
    }

    #[test]
    fn options_and_errors() {
        let v = json!({"event_url": "https://x/y", "event_method": "get"});
        let f = Fetch::from_opt(&Opt::new(&v).unwrap()).unwrap();
        assert_eq!(f.event_method, HttpMethod::Get);
        let v = json!({"event_url": "ftp://x"});
        assert_eq!(
            field(Fetch::from_opt(&Opt::new(&v).unwrap()).unwrap_err()),
            "option.event_url"
        );
        let v = json!({"event_url": "http://x", "event_method": "PUT"});
        assert_eq!(
            field(Fetch::from_opt(&Opt::new(&v).unwrap()).unwrap_err()),
            "option.event_method"
        );
        let v = json!({"uri": "http://x", "data": "{}", "sync": true});
        let w = WebhookSend::from_opt(&Opt::new(&v).unwrap()).unwrap();
        assert_eq!(
            (w.method, w.data_type.as_str(), w.sync),
            (HttpMethod::Post, "application/json", true)
        );
        let v = json!({"uri": "http://x", "sync": "yes"});
        assert_eq!(
            field(WebhookSend::from_opt(&Opt::new(&v).unwrap()).unwrap_err()),
            "option.sync"
        );
        let v = json!({"data": "x"});
        assert_eq!(
            field(WebhookSend::from_opt(&Opt::new(&v).unwrap()).unwrap_err()),
            "option.uri"
        );
    }
}
