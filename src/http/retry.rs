//! Retrying a request whose failure may pass: 5xx answers and transient transport failures
//! (connection refused or reset, timeouts) are tried again after a doubling backoff. Shared by
//! `webhook_send` and the event webhooks, so both follow one policy. Policy refusals, bad URLs
//! and oversized answers are final at once.

use std::time::Duration;

use super::{HttpClient, HttpError, Response};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the first retry; doubled before each next one.
    pub backoff: Duration,
}

/// Webhooks (`webhook_send`, event webhooks): the first attempt and two retries, 0.5 s then
/// 1 s apart.
pub const WEBHOOK_RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    backoff: Duration::from_millis(500),
};

/// The last answer (or failure) and how many attempts it took.
#[derive(Debug)]
pub struct Attempted {
    pub outcome: Result<Response, HttpError>,
    pub attempts: u32,
}

impl HttpClient {
    /// Sends a request, retrying 5xx answers and transient failures under `policy`.
    pub async fn send_retrying(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<(&str, &[u8])>,
        policy: RetryPolicy,
    ) -> Attempted {
        self.send_retrying_with(method, url, body, policy, Vec::new)
            .await
    }

    /// As [`HttpClient::send_retrying`], with extra headers made afresh for each attempt by
    /// `headers` (a signature carries the time of its own attempt).
    pub async fn send_retrying_with(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<(&str, &[u8])>,
        policy: RetryPolicy,
        headers: impl Fn() -> Vec<(&'static str, String)>,
    ) -> Attempted {
        let mut backoff = policy.backoff;
        let mut attempts = 1;
        loop {
            let payload = body.map(|(content_type, bytes)| (content_type, bytes.to_vec()));
            let outcome = self
                .send_with_headers(method.clone(), url, payload, headers())
                .await;
            let retry = match &outcome {
                Ok(r) => r.status >= 500,
                Err(e) => e.is_transient(),
            };
            if !retry || attempts >= policy.attempts.max(1) {
                return Attempted { outcome, attempts };
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempts += 1;
        }
    }
}
