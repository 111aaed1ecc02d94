//! The HTTP API on Lambda: the one [`axum::Router`] of `tidemark serve`
//! ([`tidemark_service::router`]), served by `lambda_http` — the same routes, the same JSON.
//!
//! API Gateway's HTTP API (payload 2.0) puts a named stage in the path (`/prod/tasks`), and
//! `lambda_http` keeps it there (it adds it when missing), so the router would see no route.
//! [`without_stage`] takes it off first; the `$default` stage has none.

use std::sync::Arc;

use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, LambdaEvent, Request, RequestExt};
use tidemark_service::TaskService;
use tower::util::MapRequest;

/// The router behind the stage remover: what every HTTP function serves.
pub type HttpApp = MapRequest<Router, fn(Request) -> Request>;

/// The API over `service`, ready for `lambda_http`.
pub fn http_app(service: Arc<TaskService>) -> HttpApp {
    MapRequest::new(
        tidemark_service::router(service),
        without_stage as fn(Request) -> Request,
    )
}

/// Serves the API until Lambda stops the function.
pub async fn serve(service: Arc<TaskService>) -> Result<(), lambda_http::Error> {
    lambda_http::run(http_app(service)).await
}

/// One API Gateway event through the app, exactly as [`serve`] handles it: the answer as the
/// JSON the function returns to API Gateway (`statusCode`, `headers`, `body`, ...).
pub async fn answer(
    app: &HttpApp,
    event: LambdaEvent<lambda_http::request::LambdaRequest>,
) -> Result<serde_json::Value, lambda_http::Error> {
    let response = Adapter::from(app.clone()).oneshot(event).await?;
    Ok(serde_json::to_value(response)?)
}

/// The request with its API Gateway stage taken off the front of the path.
pub fn without_stage(mut request: Request) -> Request {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else {
        return request;
    };
    let uri = request.uri();
    let rest = match uri.path().strip_prefix(&format!("/{stage}")) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return request,
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(stripped) = lambda_http::http::Uri::from_parts(parts) {
        *request.uri_mut() = stripped;
    }
    request
}
