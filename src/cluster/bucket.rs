//! JetStream key-value buckets that work against nats-server 2.9: async-nats 0.52's
//! `create_key_value` first reads the account info and fails on a 2.9 server's answer (it lacks
//! `reserved_memory`/`reserved_storage`), so the bucket's stream is created here with the
//! config `create_key_value` would send, and opened with `get_key_value`.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::ClusterError;

/// Opens bucket `name`, creating it (one value per key, entries expire after `max_age`; zero =
/// never) when absent; an existing bucket whose `max_age` differs is updated to `max_age`. Several nodes may race to create it: the same config is accepted twice.
pub async fn key_value(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
) -> Result<kv::Store, ClusterError> {
    if let Ok(mut stream) = js.get_stream(format!("KV_{name}")).await {
        let info = stream.info().await.map_err(bucket_err(name))?;
        if info.config.max_age != max_age {
            // The TTL follows the config (`cluster.node_timeout_ms`), not the first creator.
            let mut config = info.config.clone();
            config.max_age = max_age;
            // The server refuses a duplicates window longer than the TTL.
            if !max_age.is_zero() && config.duplicate_window > max_age {
                config.duplicate_window = max_age;
            }
            js.update_stream(config).await.map_err(bucket_err(name))?;
            tracing::info!(bucket = name, ?max_age, "cluster: bucket TTL updated");
        }
        return js.get_key_value(name).await.map_err(bucket_err(name));
    }
    let config = stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    let created = js.get_or_create_stream(config).await;
    if let Err(e) = created {
        tracing::debug!(bucket = name, error = %e, "cluster: bucket stream not created");
    }
    js.get_key_value(name).await.map_err(bucket_err(name))
}

fn bucket_err<E: std::fmt::Display>(name: &str) -> impl Fn(E) -> ClusterError + '_ {
    move |e| ClusterError::JetStream {
        what: "key-value bucket",
        message: format!("{name}: {e}"),
    }
}
