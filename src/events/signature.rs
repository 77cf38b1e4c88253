//! Signed event webhooks (issue 21, `events.webhook_secret`): each request carries
//! `X-Activeflow-Timestamp: <unix seconds>` and `X-Activeflow-Signature: v1=<hex>`, the hex
//! HMAC-SHA256 under the secret of `<timestamp>.<body>` (the exact bytes sent), so a receiver
//! can tell the engine's requests from forgeries, and old ones (replays) by the timestamp.
//! Signs; sends nothing. The secret lives only in the HMAC key: never logged, not in `Debug`.

use std::fmt;

use ring::hmac;

/// The Unix time (seconds) the request was signed at.
pub const TIMESTAMP_HEADER: &str = "X-Activeflow-Timestamp";
/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "X-Activeflow-Signature";

/// The key webhook requests are signed with.
#[derive(Clone)]
pub struct WebhookSigner {
    key: hmac::Key,
}

impl WebhookSigner {
    /// The signer for `secret`; `None` for an empty one (requests go unsigned).
    pub fn new(secret: &str) -> Option<WebhookSigner> {
        (!secret.is_empty()).then(|| WebhookSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        })
    }

    /// The signature header's value for `body` sent at `timestamp` (Unix seconds).
    pub fn signature(&self, timestamp: i64, body: &[u8]) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        let tag = context.sign();
        let mut value = String::with_capacity(3 + 64);
        value.push_str("v1=");
        for byte in tag.as_ref() {
            value.push_str(&format!("{byte:02x}"));
        }
        value
    }

    /// The two headers for `body`, signed now.
    pub fn headers(&self, body: &[u8]) -> Vec<(&'static str, String)> {
        let now = chrono::Utc::now().timestamp();
        vec![
            (TIMESTAMP_HEADER, now.to_string()),
            (SIGNATURE_HEADER, self.signature(now, body)),
        ]
    }
}

impl fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSigner(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The HMAC itself against a published vector: RFC 4231 test case 2 (key "Jefe").
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// The signature of a body with a JSON event, computed independently by
    /// `openssl dgst -sha256 -hmac` over `<timestamp>.<body>`.
    #[test]
    fn the_signature_is_what_openssl_computes() {
        let secret = "whsec_3x4mple";
        let body = br#"{"type":"call_ended","event_id":7,"data":"caf\u00e9, \"x\""}"#;
        let timestamp = 1_767_225_600;
        let signer = WebhookSigner::new(secret).unwrap();
        let ours = signer.signature(timestamp, body);

        let mut signed = format!("{timestamp}.").into_bytes();
        signed.extend_from_slice(body);
        let mut child = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", secret, "-r"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("openssl (scripts/test.sh installs it)");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&signed).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let theirs = text.split_whitespace().next().unwrap();
        assert_eq!(ours, format!("v1={theirs}"));
        assert_eq!(ours.len(), 3 + 64);
        // Another secret, timestamp or body: another signature.
        let other = WebhookSigner::new("whsec_other").unwrap();
        assert_ne!(other.signature(timestamp, body), ours);
        assert_ne!(signer.signature(timestamp + 1, body), ours);
        assert_ne!(signer.signature(timestamp, b"{}"), ours);
    }

    #[test]
    fn an_empty_secret_signs_nothing_and_debug_hides_the_secret() {
        assert!(WebhookSigner::new("").is_none());
        let signer = WebhookSigner::new("hunter2").unwrap();
        assert!(!format!("{signer:?}").contains("hunter2"));
        let headers = signer.headers(b"{}");
        assert_eq!(headers[0].0, TIMESTAMP_HEADER);
        let at: i64 = headers[0].1.parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - at).abs() < 60);
        assert_eq!(headers[1].1, signer.signature(at, b"{}"));
    }
}
