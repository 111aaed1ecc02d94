//! `infra/openapi.yaml` matches the router: every documented operation is served, every route
//! of the router is documented, and no other method is served on a documented path.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tidemark_core::ports::SystemClock;
use tidemark_local::{LocalScheduler, LocalSecretStore, MemoryQueue, SqliteStore};
use tidemark_service::http::ROUTES;
use tidemark_service::{Allowlist, Host, Ports, TaskService, WorkerConfig, router};
use tower::ServiceExt;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `(METHOD, path)` of every operation under `paths:` (the document keeps paths at two spaces
/// of indentation and operations at four).
fn documented() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/openapi.yaml"
    ))
    .expect("infra/openapi.yaml");
    let mut ops = BTreeSet::new();
    let mut in_paths = false;
    let mut path = None;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = Some(format!("/{}", p.trim_end_matches(':')));
        } else if let Some(m) = line.strip_prefix("    ").and_then(|m| m.strip_suffix(':'))
            && METHODS.contains(&m)
        {
            let path = path.clone().expect("an operation under a path");
            ops.insert((m.to_uppercase(), path));
        }
    }
    ops
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "tsk-0000000000000000")
        .replace("{run}", "2026-12-01T02:30:00Z")
}

async fn answer(app: &axum::Router, method: &str, path: &str) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("a method"))
        .uri(concrete(path))
        .body(Body::from("{}"))
        .expect("a request");
    let response = app.clone().oneshot(request).await.expect("an answer");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn the_document_and_the_router_serve_the_same_operations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(SystemClock);
    let service = TaskService::new(
        Ports {
            store: Arc::new(SqliteStore::in_memory().expect("store")),
            secrets: Arc::new(LocalSecretStore::new(&dir.path().join("secrets.json"))),
            scheduler: Arc::new(
                LocalScheduler::open(&dir.path().join("schedules.sqlite"), clock.clone())
                    .expect("scheduler"),
            ),
            clock,
        },
        Allowlist::parse("127.0.0.1/32").expect("allowlist"),
        Host::new(WorkerConfig::new(
            Arc::new(MemoryQueue::new(Arc::new(SystemClock), 5)),
            "test",
        )),
    );
    let app = router(service);

    let doc = documented();
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(doc, routes, "infra/openapi.yaml and http::ROUTES differ");

    let paths: BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
    for path in paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let (status, body) = answer(&app, method, path).await;
            let served = routes.contains(&(method.to_owned(), path.to_owned()));
            if served {
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}: {body}"
                );
                assert_ne!(body["error"]["code"], "no_route", "{method} {path}: {body}");
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented: {body}"
                );
            }
        }
    }
    let (status, body) = answer(&app, "GET", "/undocumented").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &serde_json::json!("no_route"))
    );
}
