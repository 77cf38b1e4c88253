//! Fetching http(s) prompts with the shared client (`crate::http`: timeouts, the `[http]`
//! destination policy, at most three redirects); the body is streamed and abandoned at the size
//! limit. Returns bytes only: decoding and caching are the library's.

use std::time::Duration;

use super::AudioError;

/// GETs `url` and returns its body, refusing non-2xx answers and bodies over `limit` bytes.
pub(super) async fn fetch(
    client: &reqwest::Client,
    url: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, AudioError> {
    let failed = |source: reqwest::Error| {
        if crate::http::is_denied(&source) {
            AudioError::Denied {
                url: url.to_owned(),
            }
        } else if source.is_timeout() {
            AudioError::FetchTimeout {
                url: url.to_owned(),
                timeout,
            }
        } else {
            AudioError::Fetch {
                url: url.to_owned(),
                source,
            }
        }
    };
    let too_large = || AudioError::TooLarge {
        url: url.to_owned(),
        limit,
    };
    let mut response = client.get(url).send().await.map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(AudioError::HttpStatus {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    crate::http::read_body(&mut response, limit)
        .await
        .map_err(|e| match e {
            crate::http::BodyError::TooLarge => too_large(),
            crate::http::BodyError::Transport(source) => failed(source),
        })
}
