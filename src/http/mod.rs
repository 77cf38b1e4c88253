//! Outgoing HTTP for flows (`fetch`, `webhook_send`, http(s) prompts): one client per use with
//! timeouts, a response size limit and the `[http]` destination policy enforced where it cannot
//! be dodged — on every resolved address (our DNS resolver) and on every redirect. Knows no
//! flows or calls.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

mod own;
mod policy;
mod queue;

pub use own::OwnAddresses;
pub use policy::{HttpPolicy, WEBHOOK_WORKER_IDLE};
pub use queue::{Destination, DestinationQueues, Job, QueueFull, QueueLimits};

mod retry;
pub use retry::{Attempted, RetryPolicy, WEBHOOK_RETRY};

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: not an http(s) URL")]
    BadUrl { url: String },
    #[error("{url}: destination not allowed by the [http] policy")]
    Denied { url: String },
    #[error("{url}: no answer within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u128 },
    #[error("{url}: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("{url}: response larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("building the HTTP client: {0}")]
    Client(reqwest::Error),
}

impl HttpError {
    /// Worth another attempt: a connection or timeout failure (not a policy or size refusal).
    pub fn is_transient(&self) -> bool {
        matches!(self, HttpError::Timeout { .. } | HttpError::Request { .. })
    }
}

/// A response: status and the body (at most the policy's limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a webhook was not queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{url}: not an http(s) URL")]
    BadUrl { url: String },
    #[error("webhook to {destination} not sent: {full}")]
    Full {
        destination: Destination,
        full: QueueFull,
    },
}

/// An HTTP client that obeys the policy. Cheap to clone; clones share the webhook queues.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: Arc<HttpPolicy>,
    webhooks: Arc<DestinationQueues<Destination>>,
}

impl HttpClient {
    pub fn new(policy: HttpPolicy) -> Result<Self, HttpError> {
        let policy = Arc::new(policy);
        Ok(HttpClient {
            client: build_client(&policy).map_err(HttpError::Client)?,
            webhooks: DestinationQueues::new("webhook_send", policy.webhook_limits),
            policy,
        })
    }

    /// Queues `job` (a request to `url`) on its destination's bounded queue without waiting;
    /// a full queue refuses it.
    pub fn queue_webhook(&self, url: &str, job: Job) -> Result<(), QueueError> {
        let destination =
            Destination::of(url).ok_or_else(|| QueueError::BadUrl { url: url.into() })?;
        self.webhooks
            .submit(destination.clone(), job)
            .map_err(|full| QueueError::Full { destination, full })
    }

    /// Whether `ip` is one of the host's own addresses (the `[http]` policy's snapshot).
    pub fn is_own(&self, ip: std::net::IpAddr) -> bool {
        let ip = policy::canonical(ip);
        self.policy.own.as_ref().is_some_and(|own| own.contains(ip))
    }

    /// Destinations with a webhook worker now.
    pub fn webhook_destinations(&self) -> usize {
        self.webhooks.destinations()
    }

    /// Sends one request; any status is a response (the caller decides what a 5xx means).
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response, HttpError> {
        self.send_with_headers(method, url, body, Vec::new()).await
    }

    /// As [`HttpClient::send`], with extra request `headers` (a webhook's signature).
    pub async fn send_with_headers(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: Vec<(&'static str, String)>,
    ) -> Result<Response, HttpError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| HttpError::BadUrl { url: url.into() })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(HttpError::BadUrl { url: url.into() });
        }
        if !literal_host_permitted(&self.policy, &parsed) {
            return Err(HttpError::Denied { url: url.into() });
        }
        let mut request = self.client.request(method, parsed);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some((content_type, bytes)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let failed = |source: reqwest::Error| self.error(url, source);
        let mut response = request.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let limit = self.policy.max_response_bytes;
        let body = read_body(&mut response, limit).await.map_err(|e| match e {
            BodyError::TooLarge => HttpError::TooLarge {
                url: url.into(),
                limit,
            },
            BodyError::Transport(source) => failed(source),
        })?;
        Ok(Response { status, body })
    }

    fn error(&self, url: &str, source: reqwest::Error) -> HttpError {
        if source.is_timeout() {
            return HttpError::Timeout {
                url: url.into(),
                timeout_ms: self.policy.timeout.as_millis(),
            };
        }
        // A refusal by our resolver or redirect policy surfaces as a connect/redirect error.
        if is_denied(&source) {
            return HttpError::Denied { url: url.into() };
        }
        HttpError::Request {
            url: url.into(),
            source,
        }
    }
}

/// Why a response body was not read whole.
#[derive(Debug)]
pub enum BodyError {
    /// Declared or found longer than the limit; reading stopped there.
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads a response body, refusing (and abandoning) one longer than `limit` bytes.
pub async fn read_body(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Marker in errors raised by the policy inside reqwest.
const DENIED: &str = "denied by the [http] policy";

/// A reqwest client with the policy's timeouts, its resolver and redirect checks, no idle
/// connection pool (a pooled connection stays tied to the arbiter runtime that opened it) and no
/// proxy: `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` in the environment would send requests to the
/// proxy unresolved, past the policy's check of the address actually connected to.
pub fn build_client(policy: &Arc<HttpPolicy>) -> Result<reqwest::Client, reqwest::Error> {
    if let Some(own) = &policy.own {
        // The resolver checks own addresses on a snapshot this keeps fresh.
        own.refresh_in_background();
    }
    let redirect_policy = policy.clone();
    reqwest::Client::builder()
        .connect_timeout(policy.timeout)
        .timeout(policy.timeout)
        .pool_max_idle_per_host(0)
        .no_proxy()
        .dns_resolver(Arc::new(PolicyResolver(policy.clone())))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if !literal_host_permitted(&redirect_policy, attempt.url()) {
                attempt.error(DENIED)
            } else {
                attempt.follow()
            }
        }))
        .build()
}

/// Whether a request error is the policy refusing a resolved address or a redirect.
pub fn is_denied(error: &reqwest::Error) -> bool {
    format!("{error:?}").contains(DENIED)
}

/// URLs naming an IP address bypass DNS: check them here.
pub fn literal_host_permitted(policy: &HttpPolicy, url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => policy.permits(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => policy.permits(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => true,
        None => false,
    }
}

/// Resolves names, then keeps only the addresses the policy permits.
struct PolicyResolver(Arc<HttpPolicy>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{}: {DENIED}", name.as_str()).into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy(allow: &[&str], deny: &[&str]) -> HttpPolicy {
        HttpPolicy {
            allow: allow.iter().map(|c| c.parse().unwrap()).collect(),
            deny: deny.iter().map(|c| c.parse().unwrap()).collect(),
            own: None,
            ..HttpPolicy::permissive(Duration::from_millis(500), 64)
        }
    }

    /// A one-shot HTTP server on loopback answering `response` to one request.
    async fn serve(response: &'static str) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(response.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn policy_refuses_denied_addresses_by_ip_by_name_and_by_redirect() {
        let ok = serve("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi").await;
        let denied = HttpClient::new(policy(&[], &["127.0.0.0/8"])).unwrap();
        for url in [
            format!("http://{ok}/"),
            format!("http://localhost:{}/", ok.port()),
        ] {
            let e = denied
                .send(reqwest::Method::GET, &url, None)
                .await
                .unwrap_err();
            assert!(matches!(e, HttpError::Denied { .. }), "{url}: {e}");
        }
        let allowed = HttpClient::new(policy(&["127.0.0.1/32"], &["127.0.0.0/8"])).unwrap();
        let r = allowed
            .send(reqwest::Method::GET, &format!("http://{ok}/"), None)
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
        // A public-looking name that redirects into a denied range is refused at the redirect.
        let hop: &'static str = Box::leak(
            format!("HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1:{}/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", ok.port())
                .into_boxed_str(),
        );
        let redirect = serve(hop).await;
        let mixed =
            HttpClient::new(policy(&["127.0.0.1/32"], &["10.0.0.0/8", "127.0.0.0/8"])).unwrap();
        let e = mixed
            .send(reqwest::Method::GET, &format!("http://{redirect}/"), None)
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Denied { .. }), "{e}");
        assert!(matches!(
            mixed.send(reqwest::Method::GET, "ftp://x/", None).await,
            Err(HttpError::BadUrl { .. })
        ));
    }

    /// The host's own addresses are checked on what a name resolves to, and the connection
    /// goes to a checked address: `localhost` (127.0.0.1, ::1: both on `lo`) is refused with
    /// no deny list at all, while the same server by an allowed literal answers.
    #[tokio::test]
    async fn names_resolving_to_the_hosts_own_addresses_are_refused() {
        let ok = serve("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi").await;
        let own = HttpPolicy {
            own: Some(Arc::new(OwnAddresses::new([]))),
            ..policy(&[], &[])
        };
        let client = HttpClient::new(own.clone()).unwrap();
        for url in [
            format!("http://localhost:{}/", ok.port()),
            format!("http://{ok}/"),
            format!("http://[::ffff:127.0.0.1]:{}/", ok.port()),
        ] {
            let e = client
                .send(reqwest::Method::GET, &url, None)
                .await
                .unwrap_err();
            assert!(matches!(e, HttpError::Denied { .. }), "{url}: {e}");
        }
        let allowed = HttpClient::new(HttpPolicy {
            allow: vec!["127.0.0.1/32".parse().unwrap()],
            ..own
        })
        .unwrap();
        let r = allowed
            .send(
                reqwest::Method::GET,
                &format!("http://localhost:{}/", ok.port()),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            r.status, 200,
            "resolved, checked, and connected to 127.0.0.1"
        );
    }

    #[tokio::test]
    async fn size_limit_and_timeout() {
        let big = serve("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789").await;
        let c = HttpClient::new(policy(&["127.0.0.1/32"], &[])).unwrap();
        let e = c
            .send(reqwest::Method::GET, &format!("http://{big}/"), None)
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::TooLarge { limit: 64, .. }), "{e}");
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let e = c
            .send(reqwest::Method::GET, &format!("http://{addr}/"), None)
            .await
            .unwrap_err();
        assert!(
            matches!(e, HttpError::Timeout { .. }) && e.is_transient(),
            "{e}"
        );
    }
}
