//! `infra/openapi.yaml` matches the router: every documented operation is served, every route
//! of the router is documented, and no other method is served on a documented path.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use openapiv3::{
    AdditionalProperties, OpenAPI, ReferenceOr, Schema, SchemaKind, Type as SchemaType,
};
use tidemark_core::ports::SystemClock;
use tidemark_local::{LocalScheduler, LocalSecretStore, MemoryQueue, SqliteStore};
use tidemark_service::http::ROUTES;
use tidemark_service::{Allowlist, Host, Ports, TaskService, WorkerConfig, router};
use tower::ServiceExt;

/// infra/openapi.yaml, read as a typed OpenAPI 3.0 document.
fn document() -> OpenAPI {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/openapi.yaml"
    ))
    .expect("infra/openapi.yaml");
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("infra/openapi.yaml: {e}"))
}

/// `(METHOD, path)` of every operation of the document.
fn documented() -> BTreeSet<(String, String)> {
    let doc = document();
    let mut ops = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let ReferenceOr::Item(item) = item else {
            panic!("{path}: a path item by reference");
        };
        for (method, _) in item.iter() {
            ops.insert((method.to_uppercase(), path.clone()));
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

/// The schemas of `components` by name.
fn schemas(doc: &OpenAPI) -> BTreeMap<String, Schema> {
    doc.components
        .as_ref()
        .expect("components")
        .schemas
        .iter()
        .map(|(name, s)| match s {
            ReferenceOr::Item(s) => (name.clone(), s.clone()),
            ReferenceOr::Reference { reference } => panic!("{name} is a reference to {reference}"),
        })
        .collect()
}

/// A boxed schema or reference as a plain one.
fn unboxed(r: &ReferenceOr<Box<Schema>>) -> ReferenceOr<Schema> {
    match r {
        ReferenceOr::Item(b) => ReferenceOr::Item((**b).clone()),
        ReferenceOr::Reference { reference } => ReferenceOr::Reference {
            reference: reference.clone(),
        },
    }
}

/// Every object schema reachable from `schema` (following component references), with a path
/// to it for messages.
fn objects_under(
    schema: &Schema,
    at: String,
    all: &BTreeMap<String, Schema>,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<(String, Schema)>,
) {
    let children: Vec<(ReferenceOr<Schema>, String)> = match &schema.schema_kind {
        SchemaKind::Type(SchemaType::Object(object)) => {
            out.push((at.clone(), schema.clone()));
            object
                .properties
                .iter()
                .map(|(name, p)| (unboxed(p), format!("{at}.{name}")))
                .collect()
        }
        SchemaKind::Type(SchemaType::Array(array)) => array
            .items
            .iter()
            .map(|i| (unboxed(i), format!("{at}[]")))
            .collect(),
        SchemaKind::OneOf { one_of: list }
        | SchemaKind::AnyOf { any_of: list }
        | SchemaKind::AllOf { all_of: list } => list
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), format!("{at}<{i}>")))
            .collect(),
        _ => Vec::new(),
    };
    for (child, at) in children {
        match child {
            ReferenceOr::Item(s) => objects_under(&s, at, all, seen, out),
            ReferenceOr::Reference { reference } => {
                let name = reference
                    .trim_start_matches("#/components/schemas/")
                    .to_owned();
                if seen.insert(name.clone()) {
                    let s = all
                        .get(&name)
                        .unwrap_or_else(|| panic!("{at}: no schema {name}"));
                    objects_under(s, name, all, seen, out);
                }
            }
        }
    }
}

/// The server refuses unknown fields anywhere in a task spec (serde's deny_unknown_fields), so
/// the document says so of every object in it: schemathesis then sends unknown fields and
/// expects them refused.
#[test]
fn every_object_of_the_task_spec_refuses_unknown_fields() {
    let doc = document();
    let all = schemas(&doc);
    let mut objects = Vec::new();
    let mut seen = BTreeSet::new();
    objects_under(
        &all["TaskSpec"],
        "TaskSpec".into(),
        &all,
        &mut seen,
        &mut objects,
    );
    for name in [
        "Policy",
        "Schedule",
        "DatabaseSelection",
        "TableSelection",
        "Channel",
    ] {
        assert!(
            seen.contains(name),
            "TaskSpec does not reach {name}: {seen:?}"
        );
    }
    assert!(objects.len() >= 10, "{} objects", objects.len());
    for (at, schema) in &objects {
        let SchemaKind::Type(SchemaType::Object(object)) = &schema.schema_kind else {
            unreachable!()
        };
        assert_eq!(
            object.additional_properties,
            Some(AdditionalProperties::Any(false)),
            "{at} does not say additionalProperties: false"
        );
        assert!(!object.properties.is_empty(), "{at} lists no properties");
    }
}

/// `(status, code)` of every error the service answers: the router's own, the mapping of
/// `ServiceError` in http.rs, and every conflict code the service raises.
fn codes_in_the_source() -> BTreeSet<(u16, String)> {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut codes = BTreeSet::new();
    let status = |name: &str| match name {
        "BAD_REQUEST" => 400,
        "NOT_FOUND" => 404,
        "METHOD_NOT_ALLOWED" => 405,
        "CONFLICT" => 409,
        "UNPROCESSABLE_ENTITY" => 422,
        "INTERNAL_SERVER_ERROR" => 500,
        "BAD_GATEWAY" => 502,
        other => panic!("a status the test does not know: {other}"),
    };
    let http = std::fs::read_to_string(format!("{src}/http.rs")).expect("http.rs");
    let flat: String = http.split_whitespace().collect::<Vec<_>>().join(" ");
    for part in flat.split("StatusCode::").skip(1) {
        let (name, rest) = part.split_once([',', ')']).unwrap_or((part, ""));
        if let Some(code) = rest
            .trim_start()
            .strip_prefix('"')
            .and_then(|r| r.split_once('"'))
            .map(|(c, _)| c)
            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            && name.ends_with(|c: char| c.is_ascii_uppercase())
            && status_is_error(name)
        {
            codes.insert((status(name), code.to_owned()));
        }
    }
    // Conflicts: `code: "..."` and the precheck gate's `conflict("...", ...)`.
    let mut files = vec![std::path::PathBuf::from(src)];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(&path)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file");
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for marker in ["code: \"", "conflict( \"", "conflict(\""] {
            for part in flat.split(marker).skip(1) {
                if let Some((code, _)) = part.split_once('"')
                    && code.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                {
                    codes.insert((409, code.to_owned()));
                }
            }
        }
    }
    codes
}

fn status_is_error(name: &str) -> bool {
    !matches!(name, "OK" | "CREATED" | "ACCEPTED" | "NO_CONTENT")
}

#[test]
fn every_error_code_the_service_answers_is_in_the_documents_table() {
    let doc = document();
    let table = doc.info.description.clone().unwrap_or_default();
    let codes = codes_in_the_source();
    for expected in [
        (400, "invalid"),
        (405, "method_not_allowed"),
        (409, "precheck_stale"),
        (409, "run_finished"),
        (422, "secret_not_allowed"),
        (502, "endpoint_failed"),
    ] {
        assert!(
            codes.contains(&(expected.0, expected.1.to_owned())),
            "the source scan misses {expected:?}: {codes:?}"
        );
    }
    for (status, code) in &codes {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {status} |")) && l.contains(&format!("`{code}`")));
        assert!(
            row.is_some(),
            "infra/openapi.yaml's error table has no row for {status} `{code}`"
        );
    }
    // Every operation but /health documents 500.
    for (path, item) in &doc.paths.paths {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        for (method, op) in item.iter() {
            let has = |s: u16| {
                op.responses
                    .responses
                    .contains_key(&openapiv3::StatusCode::Code(s))
            };
            if path != "/health" {
                assert!(has(500), "{method} {path} does not document 500");
            }
        }
    }
}
