//! Liveness and readiness probes. Readiness also reports every watched part (see `health`):
//! one that is down makes `/readyz` answer 503 and name it.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::ApiState;
use crate::health::Health;

#[utoipa::path(operation_id = "health_healthz", get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "the process is alive")))]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 while the engine takes calls; 503 before start-up completes, once draining, and while a
/// watched part (`sip_udp`, `storage_writer`, `recording_writer`) is down or the database fails
/// its commits (`storage`: a full disk, say; calls go on), naming it in `down`.
#[utoipa::path(operation_id = "health_readyz", get, path = "/readyz", tag = "meta",
    responses((status = 200, description = "taking calls"), (status = 503, description = "starting, draining, a watched part is down, or storage fails its commits")))]
pub(super) async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    let (ready, body) = readiness(state.ready.load(Ordering::Relaxed), &state.health);
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Whether the engine is ready, and the body saying so: `status`, every watched part's state
/// under `components`, and the parts that are down under `down`.
fn readiness(started: bool, health: &Health) -> (bool, Value) {
    let components: Map<String, Value> = health
        .parts()
        .into_iter()
        .map(|(c, s)| (c.as_str().to_owned(), json!(s.as_str())))
        .collect();
    let down: Vec<&str> = health.down().into_iter().map(|c| c.as_str()).collect();
    let ready = started && down.is_empty();
    let status = if ready { "ready" } else { "not_ready" };
    let body = json!({ "status": status, "components": components, "down": down });
    (ready, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{spawn_watched, Component, Ended, OnDeath, PartState};

    /// A watched part that died makes the engine not ready, naming the part.
    #[test]
    fn a_dead_part_makes_readiness_fail_and_names_it() {
        let health = Health::new();
        let (ready, body) = readiness(true, &health);
        assert!(ready, "{body}");
        assert_eq!(body["components"]["storage_writer"], "off");
        let dies = || -> Ended { panic!("test: the part dies") };
        let c = Component::StorageWriter;
        spawn_watched("t", c, OnDeath::Exit, health.clone(), dies)
            .unwrap()
            .join()
            .unwrap();
        let (ready, body) = readiness(true, &health);
        assert!(!ready);
        assert_eq!(body["status"], "not_ready");
        assert_eq!(body["down"], json!(["storage_writer"]));
        assert_eq!(body["components"]["storage_writer"], "down");
    }

    /// Storage failing its commits (the writer's outage) makes the engine not ready, naming
    /// `storage`; ready again once commits succeed.
    #[test]
    fn failing_storage_makes_readiness_fail_and_names_it() {
        let health = Health::new();
        health.set(Component::Storage, PartState::Up);
        assert!(readiness(true, &health).0);
        health.set(Component::Storage, PartState::Down);
        let (ready, body) = readiness(true, &health);
        assert!(!ready);
        assert_eq!(body["down"], json!(["storage"]));
        health.set(Component::Storage, PartState::Up);
        assert!(readiness(true, &health).0);
    }
}
