//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and served
//! at `/v1/openapi.json`.

use actix_web::HttpResponse;
use utoipa::OpenApi;

use super::nodes;
use super::{
    activeflows, calls, conferences, events, flows, health, outbound_calls, queues, recordings,
    registrations, routes, trunks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "activeflow", description = "Operator API of the activeflow telephony engine. \
Every `/v1/...` path also answers as `/v1.0/...` (VoIPBIN's prefix): same handlers, same scopes. \
The token goes in `Authorization: Bearer <token>` or, as VoIPBIN's clients send it, in `?token=<token>`."),
    paths(
        flows::list, flows::create, flows::get, flows::replace, flows::delete,
        activeflows::list, activeflows::create, activeflows::get, activeflows::delete,
        activeflows::stop, activeflows::resume, activeflows::get_variables,
        activeflows::put_variables,
        calls::list, calls::get, calls::hangup, outbound_calls::create,
        conferences::list, conferences::create, conferences::get, conferences::delete,
        conferences::kick, conferences::mute, conferences::unmute,
        recordings::list, recordings::get, recordings::file, recordings::delete,
        registrations::list,
        events::stream,
        trunks::list,
        routes::list,
        nodes::list,
        queues::list, queues::create, queues::get, queues::replace, queues::delete,
        health::healthz, health::readyz, spec,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // VoIPBIN's `?token=`: the same tokens as the bearer header.
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("token"))),
        );
        openapi.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("token", Vec::<String>::new()),
        ]);
        // Each operation names the token scope it needs, from the guard's own classification.
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("GET", &mut item.get),
                ("PUT", &mut item.put),
                ("POST", &mut item.post),
                ("DELETE", &mut item.delete),
                ("PATCH", &mut item.patch),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation.as_mut() else {
                    continue;
                };
                operation.security = Some(match super::auth::scope::required_scope(method, path) {
                    Some(scope) => vec![
                        SecurityRequirement::new("bearer", [scope.as_str()]),
                        SecurityRequirement::new("token", [scope.as_str()]),
                    ],
                    // Open: an empty requirement.
                    None => vec![SecurityRequirement::default()],
                });
            }
        }
    }
}

#[utoipa::path(operation_id = "openapi_spec", get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "this document")))]
pub(super) async fn spec() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
