//! Errors with the documented codes: 400 naming the field, 404, 405, 409 listing the failing
//! checks, 422 naming a host outside the allowlist or a secret outside the secret scope.

use hyper::{Method, StatusCode};
use serde_json::json;
use tidemark_tests::harness::unique_name;

use tidemark_service::SecretScope;

use crate::helpers::{Api, drop_databases, sample, spec};

#[tokio::test]
async fn a_bad_spec_is_a_400_naming_the_field() {
    let api = Api::start().await;
    let mut bad = spec("shop", "shop_dw");
    bad["schedule"]["at"] = json!("25:00");
    let (status, body) = api.post("/tasks", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_spec");
    assert_eq!(body["error"]["field"], "schedule.at");

    let mut unknown = spec("shop", "shop_dw");
    unknown["colour"] = json!("blue");
    let (status, body) = api.post("/tasks", &unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "colour");

    // A task's id is the service's to assign: one in the body is refused, not silently replaced.
    let mut with_id = spec("shop", "shop_dw");
    with_id["id"] = json!("shop-nightly");
    let (status, body) = api.post("/tasks", &with_id).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "id");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("tidemark run"), "{message}");

    let (status, body) = api.call(Method::POST, "/tasks", Some("{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The password of a bad spec is never echoed.
    let mut typed = spec("shop", "shop_dw");
    typed["source"]["password"] = json!(12345678);
    let (status, body) = api.post("/tasks", &typed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "source.password");
    assert!(!body.to_string().contains("12345678"), "{body}");

    let (status, body) = api.get("/tasks?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "limit");
    // A cursor this store did not hand out is refused, as on DynamoDB.
    let (status, body) = api.get("/tasks?next=not-a-cursor-of-ours").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "next");

    let (status, body) = api.get("/tasks/tsk-missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = api.call(Method::PUT, "/tasks/tsk-missing", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let (status, body) = api.get("/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn an_endpoint_outside_the_allowlist_is_a_422_naming_the_host() {
    let api = Api::start().await;
    // TEST-NET-1: never contacted — the allowlist refuses it before any connection.
    let mut outside = spec("shop", "shop_dw");
    outside["destination"]["host"] = json!("192.0.2.10");
    let (status, body) = api.post("/tasks", &outside).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "host_not_allowed");
    assert_eq!(body["error"]["field"], "destination.host");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("192.0.2.10")
    );
    let (_, listed) = api.get("/tasks").await;
    assert_eq!(listed["items"], json!([]), "nothing was created");

    let endpoint = json!({ "host": "198.51.100.7", "port": 3306, "user": "u", "password": "p" });
    let (status, body) = api.post("/connections/test", &endpoint).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["host"], "198.51.100.7");

    // Inside the list, the test answers with what it found.
    let mut inside = spec("shop", "shop_dw")["source"].clone();
    let (status, body) = api.post("/connections/test", &inside).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    inside["password"] = json!("wrong-password");
    let (status, body) = api.post("/connections/test", &inside).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], "access_denied", "{body}");
    assert!(!body.to_string().contains("wrong-password"));
}

#[tokio::test]
async fn a_password_secret_outside_the_scope_is_a_422_naming_the_field_before_any_read() {
    let scope = SecretScope::parse(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:allowed/*",
        "",
    )
    .expect("a scope");
    let api = Api::start_with(|host| host.with_secret_scope(scope)).await;
    let outside = "arn:aws:secretsmanager:us-east-1:123456789012:secret:payroll/db-AbCdEf";
    let mut task = spec("shop", "shop_dw");
    task["source"]["password_secret"] = json!(outside);
    task["source"]
        .as_object_mut()
        .expect("an object")
        .remove("password");
    // This store holds no such secret: a read would answer 400, so the 422 came first.
    let (status, body) = api.post("/tasks", &task).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "secret_not_allowed");
    assert_eq!(body["error"]["field"], "source.password_secret");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(outside) && message.contains("allowed/*"),
        "{message}"
    );
    let (_, listed) = api.get("/tasks").await;
    assert_eq!(listed["items"], json!([]), "nothing was created");
    let mut endpoint = task["source"].clone();
    let (status, body) = api.post("/connections/test", &endpoint).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "password_secret");

    // A secret this server made for another task's inline password is that task's alone.
    let id = api.create(&spec("shop", "shop_dw")).await;
    let (_, made) = api.get(&format!("/tasks/{id}")).await;
    endpoint["password_secret"] = made["spec"]["source"]["password_secret"].clone();
    let (status, body) = api.post("/connections/test", &endpoint).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("only that task")),
        "{body}"
    );

    // Without a scope (the local default) the secret is read, and this store has none.
    let open = Api::start().await;
    let (status, body) = open.post("/tasks", &task).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "source.password_secret");
}

#[tokio::test]
async fn a_failed_precheck_blocks_start_with_the_failing_checks() {
    let api = Api::start().await;
    let missing = unique_name("http_missing");
    let id = api.create(&spec(&missing, "anything_dw")).await;
    let report = api.precheck(&id).await;
    assert_eq!(report["state"], "failed", "{report}");
    assert!(
        report["failed"]
            .as_array()
            .expect("failed")
            .contains(&json!("objects_exist"))
    );

    let (status, body) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "precheck_failed");
    assert!(
        body["error"]["checks"]
            .as_array()
            .expect("checks")
            .contains(&json!("objects_exist"))
    );
    let (_, task) = api.get(&format!("/tasks/{id}")).await;
    assert_eq!(task["status"], "precheck_failed");

    // Fixed by a patch (the database now exists): the old precheck no longer counts.
    let db = unique_name("http_fixed");
    sample(&db, 10).await;
    let patch = json!({ "objects": [ { "database": db, "rename": format!("{db}_dw") } ] });
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/tasks/{id}"),
            Some(&patch.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = api.precheck(&id).await;
    assert_eq!(report["state"], "passed", "{report}");
    let (status, body) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop_databases(&[&db]).await;
}
