//! Where and how one webhook is called: its URI, HTTP method and body format, resolved once per
//! publish from the flow (`webhook_uri`, `webhook_method`, `webhook_format`) and the
//! `[events]` defaults, and what publishing asks of it (build a hook, take a snapshot). Plain
//! data; sends nothing (see `webhook`).

use std::sync::Arc;

use uuid::Uuid;

use super::EventBus;
use crate::flow::{Flow, WebhookFormat, WebhookMethod};

/// A flow's (one activeflow's) own webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowHook {
    pub uri: Arc<str>,
    /// VoIPBIN's `webhook_method` (POST when the flow gives none).
    pub method: WebhookMethod,
    /// The flow's `webhook_format`, else `events.webhook_format`.
    pub format: WebhookFormat,
    /// The activeflow it reports (its calls' VoIPBIN-shaped events carry it as
    /// `activeflow_id`).
    pub activeflow: Uuid,
}

impl FlowHook {
    /// `flow`'s webhook for activeflow `activeflow`; `None` when the flow has no `webhook_uri`.
    pub fn of(flow: &Flow, activeflow: Uuid, default_format: WebhookFormat) -> Option<FlowHook> {
        let uri = flow.webhook_uri.as_deref().filter(|u| !u.is_empty())?;
        Some(FlowHook {
            uri: Arc::from(uri),
            method: flow.webhook_method.unwrap_or_default(),
            format: flow.webhook_format.unwrap_or(default_format),
            activeflow,
        })
    }
}

impl EventBus {
    /// The webhook of `flow` for activeflow `activeflow` (`None` when the flow has none, or
    /// this bus sends no webhooks): allocates only for a flow with a `webhook_uri`.
    pub fn flow_hook(&self, flow: &Flow, activeflow: Uuid) -> Option<Arc<FlowHook>> {
        self.inner.webhooks.as_ref()?;
        FlowHook::of(flow, activeflow, self.inner.default_format).map(Arc::new)
    }

    /// Whether an activeflow event published with `flow_hook` goes to a webhook in VoIPBIN's
    /// format, so it must go with a snapshot of the activeflow (`EventBus::publish_with`).
    /// False, for nothing, in the default native-only configuration.
    pub fn wants_snapshot(&self, flow_hook: Option<&FlowHook>) -> bool {
        self.inner.webhooks.as_ref().is_some_and(|f| {
            f.global_wants_voipbin()
                || flow_hook.is_some_and(|h| h.format == WebhookFormat::Voipbin)
        })
    }
}

/// The global webhook (`events.webhook_uri`): always POST, in `events.webhook_format`.
#[derive(Debug, Clone)]
pub(super) struct GlobalHook {
    pub(super) uri: Arc<str>,
    pub(super) format: WebhookFormat,
}

impl GlobalHook {
    /// Whether `hook` would get the very same request as the global webhook (sent once then).
    pub(super) fn same_as(&self, hook: &FlowHook) -> bool {
        self.uri == hook.uri && self.format == hook.format && hook.method == WebhookMethod::Post
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::events::{webhook, ReaderLimits};

    fn flow(json: &str) -> Flow {
        Flow::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn a_flow_without_a_webhook_uri_has_no_hook() {
        let f = flow(r#"{"actions":[{"type":"answer"}]}"#);
        assert_eq!(FlowHook::of(&f, Uuid::nil(), WebhookFormat::Voipbin), None);
    }

    #[test]
    fn method_defaults_to_post_and_format_to_the_events_default() {
        let f = flow(r#"{"webhook_uri":"http://h/x","actions":[{"type":"answer"}]}"#);
        let h = FlowHook::of(&f, Uuid::nil(), WebhookFormat::Voipbin).unwrap();
        assert_eq!(
            (&*h.uri, h.method, h.format),
            ("http://h/x", WebhookMethod::Post, WebhookFormat::Voipbin)
        );
        let f = flow(
            r#"{"webhook_uri":"http://h/x","webhook_method":"PUT","webhook_format":"native",
                "actions":[{"type":"answer"}]}"#,
        );
        let h = FlowHook::of(&f, Uuid::nil(), WebhookFormat::Voipbin).unwrap();
        assert_eq!(
            (h.method, h.format),
            (WebhookMethod::Put, WebhookFormat::Native)
        );
    }

    #[test]
    fn the_same_request_as_the_global_one_is_recognised() {
        let global = GlobalHook {
            uri: Arc::from("http://h/x"),
            format: WebhookFormat::Native,
        };
        let mut hook = FlowHook {
            uri: Arc::from("http://h/x"),
            method: WebhookMethod::Post,
            format: WebhookFormat::Native,
            activeflow: Uuid::nil(),
        };
        assert!(global.same_as(&hook));
        hook.method = WebhookMethod::Put;
        assert!(!global.same_as(&hook));
        hook.method = WebhookMethod::Post;
        hook.format = WebhookFormat::Voipbin;
        assert!(!global.same_as(&hook));
    }

    #[test]
    fn a_snapshot_is_wanted_only_by_a_voipbin_webhook() {
        let plain =
            Flow::from_json(br#"{"webhook_uri":"http://h/x","actions":[{"type":"answer"}]}"#)
                .unwrap();
        let mut voipbin = plain.clone();
        voipbin.webhook_format = Some(WebhookFormat::Voipbin);
        let no_hook = Flow::from_json(br#"{"actions":[{"type":"answer"}]}"#).unwrap();
        let id = Uuid::from_u128(1);
        let bus = |global, default| {
            let feed = webhook::detached(global);
            EventBus::build(
                8,
                Duration::from_secs(1),
                Some((feed, default)),
                ReaderLimits::default(),
            )
        };
        let wants = |bus: &EventBus, flow: &Flow| {
            let hook = bus.flow_hook(flow, id);
            bus.wants_snapshot(hook.as_deref())
        };
        // No webhooks at all: no hook is even built.
        let none = EventBus::without_webhooks(8, Duration::from_secs(1));
        assert!(none.flow_hook(&voipbin, id).is_none() && !wants(&none, &voipbin));
        // The default: a native global webhook.
        let native = bus(Some(WebhookFormat::Native), WebhookFormat::Native);
        assert!(!wants(&native, &no_hook) && !wants(&native, &plain));
        assert!(wants(&native, &voipbin));
        // A VoIPBIN global webhook wants every activeflow's; a flow naming no format follows it.
        let global = bus(Some(WebhookFormat::Voipbin), WebhookFormat::Voipbin);
        assert!(wants(&global, &no_hook));
        assert_eq!(
            global.flow_hook(&plain, id).unwrap().format,
            WebhookFormat::Voipbin
        );
        // No global webhook, VoIPBIN by default: only flows with a webhook.
        let flows_only = bus(None, WebhookFormat::Voipbin);
        assert!(!wants(&flows_only, &no_hook) && wants(&flows_only, &plain));
    }
}
