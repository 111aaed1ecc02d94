//! A `password_secret` the user gives, through the API functions on the emulator's Secrets
//! Manager: the secret's `username` logs in (the spec's `user` is optional, and a differing one
//! is a precheck warning naming both); a secret with no username and no `user` is a 400 naming
//! the field; a secret outside the deployment's scope (`TIDEMARK_ALLOWED_SECRET_ARNS`,
//! `TIDEMARK_ALLOWED_SECRET_TAG`) is a 422 naming the field, before it is read.

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tidemark_tests::harness::{Server, destination, source, unique_name};

use tidemark_lambda::env::{ALLOWED_SECRET_ARNS, ALLOWED_SECRET_TAG};

use super::{ACCOUNT, Deployment, REGION};
use crate::precheck::{database, user};

/// A secret in Secrets Manager holding `value`, named `t_<tag>_...`; its ARN.
pub async fn secret(deployment: &Deployment, tag: &str, value: Value) -> String {
    tagged_secret(deployment, tag, value, None).await
}

/// [`secret`], carrying a `key=value` tag when given.
async fn tagged_secret(
    deployment: &Deployment,
    tag: &str,
    value: Value,
    resource_tag: Option<(&str, &str)>,
) -> String {
    let mut create = aws_sdk_secretsmanager::Client::new(&deployment.sdk)
        .create_secret()
        .name(unique_name(tag))
        .secret_string(value.to_string());
    if let Some((key, value)) = resource_tag {
        create = create.tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        );
    }
    create.send().await.expect("a secret").arn.expect("its ARN")
}

/// The ARN pattern of this test run's secrets named `t_<tag>_...` (see [`secret`]).
fn secrets_named(tag: &str) -> String {
    format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:t_{tag}_*")
}

/// `server`'s endpoint with its login in `arn` (and the spec's `user`, when given).
pub fn endpoint_with_secret(server: &Server, arn: &str, user: Option<&str>) -> Value {
    let mut endpoint = json!({ "host": server.host, "port": server.port, "password_secret": arn });
    if let Some(user) = user {
        endpoint["user"] = json!(user);
    }
    endpoint
}

pub fn spec(source_endpoint: Value, db: &str) -> String {
    json!({
        "name": "lambda-secrets",
        "source": source_endpoint,
        "destination": destination().endpoint_json(),
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2027-12-01", "end": "2028-06-30" },
        "objects": [ { "database": db, "rename": format!("{db}_dw") } ]
    })
    .to_string()
}

#[tokio::test]
async fn the_secrets_username_logs_in_and_a_differing_user_is_a_precheck_warning() {
    let scope = format!("{},{}", secrets_named("rds_db"), secrets_named("plain_db"));
    let deployment = Deployment::with(&[(ALLOWED_SECRET_ARNS, &scope)]).await;
    let reader = user(&source(), "secret_user", &["ALL ON *.*".to_owned()]).await;
    let db = database(
        &source(),
        "lambda_secret",
        &["CREATE TABLE t (id INT PRIMARY KEY)"],
    )
    .await;
    let with_user = secret(
        &deployment,
        "rds_db",
        json!({"engine": "mysql", "username": reader.user,
               "password": reader.password().expose_secret()}),
    )
    .await;
    let without_user = secret(
        &deployment,
        "plain_db",
        json!({"password": reader.password().expose_secret()}),
    )
    .await;

    // No username anywhere: 400 naming the field.
    let body = spec(endpoint_with_secret(&reader, &without_user, None), &db);
    let (status, refused) = deployment.call("POST", "/tasks", Some(&body)).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "source.user", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("username"), "{message}");
    // The same secret with the spec's `user`: that user logs in.
    let (status, test) = deployment
        .call(
            "POST",
            "/connections/test",
            Some(&endpoint_with_secret(&reader, &without_user, Some(&reader.user)).to_string()),
        )
        .await;
    assert_eq!((status, &test["ok"]), (200, &json!(true)), "{test}");

    // No `user` in the spec: the secret's username logs in.
    let body = spec(endpoint_with_secret(&reader, &with_user, None), &db);
    let (status, created) = deployment.call("POST", "/tasks", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    assert!(created["spec"]["source"].get("user").is_none(), "{created}");
    let id = created["id"].as_str().expect("an id");
    let report = precheck(&deployment, id).await;
    assert_eq!(report["state"], "passed", "{report}");

    // A differing `user`: the secret's wins, and the precheck warns naming both.
    let body = spec(
        endpoint_with_secret(&reader, &with_user, Some("someone_else")),
        &db,
    );
    let (status, created) = deployment.call("POST", "/tasks", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    let report = precheck(&deployment, created["id"].as_str().expect("an id")).await;
    assert_eq!(
        report["state"], "passed",
        "a warning does not fail: {report}"
    );
    let check = report["report"]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "source_connectivity"))
        .expect("the source's connectivity")
        .clone();
    assert_eq!(check["status"], "warn", "{check}");
    let message = check["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("someone_else") && message.contains(&reader.user),
        "{message}"
    );
    crate::schema::drop_databases(&[&db]).await;
}

/// Prechecks task `id` through the queue; the report.
async fn precheck(deployment: &Deployment, id: &str) -> Value {
    let (status, accepted) = deployment
        .call("POST", &format!("/tasks/{id}/precheck"), None)
        .await;
    assert_eq!(status, 202, "{accepted}");
    deployment.deliver_prechecks().await;
    let (status, report) = deployment
        .call("GET", &format!("/tasks/{id}/precheck"), None)
        .await;
    assert_eq!(status, 200, "{report}");
    report
}

#[tokio::test]
async fn a_secret_outside_the_scope_is_a_422_before_it_is_read() {
    let deployment = Deployment::with(&[
        (ALLOWED_SECRET_ARNS, &secrets_named("allowed")),
        (ALLOWED_SECRET_TAG, "tidemark-access=e2e"),
    ])
    .await;
    let reader = user(&source(), "scoped", &["ALL ON *.*".to_owned()]).await;
    let db = database(
        &source(),
        "lambda_scope",
        &["CREATE TABLE t (id INT PRIMARY KEY)"],
    )
    .await;
    let login = json!({"username": reader.user, "password": reader.password().expose_secret()});
    let by_arn = secret(&deployment, "allowed", login.clone()).await;
    let by_tag = tagged_secret(
        &deployment,
        "tagged",
        login.clone(),
        Some(("tidemark-access", "e2e")),
    )
    .await;
    // Outside: not matched, untagged or tagged otherwise. Neither holds a password, so a read
    // would answer 400 (not RDS's format): the 422 shows none was read.
    let unreadable = json!({"not": "a login"});
    let untagged = secret(&deployment, "other", unreadable.clone()).await;
    let wrong_tag = tagged_secret(
        &deployment,
        "tagged",
        unreadable,
        Some(("tidemark-access", "payroll")),
    )
    .await;
    let missing = format!("{}-AbCdEf", secrets_named("missing").trim_end_matches('*'));

    for arn in [&by_arn, &by_tag] {
        let body = spec(endpoint_with_secret(&reader, arn, None), &db);
        let (status, created) = deployment.call("POST", "/tasks", Some(&body)).await;
        assert_eq!(status, 201, "{arn}: {created}");
    }
    for arn in [&untagged, &wrong_tag, &missing] {
        let body = spec(endpoint_with_secret(&reader, arn, None), &db);
        let (status, refused) = deployment.call("POST", "/tasks", Some(&body)).await;
        assert_eq!(status, 422, "{arn}: {refused}");
        assert_eq!(refused["error"]["code"], "secret_not_allowed");
        assert_eq!(refused["error"]["field"], "source.password_secret");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(arn.as_str()) && message.contains("tidemark-access=e2e"),
            "{message}"
        );
        let endpoint = endpoint_with_secret(&reader, arn, Some(&reader.user));
        let (status, refused) = deployment
            .call("POST", "/connections/test", Some(&endpoint.to_string()))
            .await;
        assert_eq!(status, 422, "{arn}: {refused}");
        assert_eq!(refused["error"]["field"], "password_secret");
    }
    let (_, listed) = deployment.call("GET", "/tasks?limit=100", None).await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(2),
        "only the tasks in scope: {listed}"
    );

    // A secret Tidemark made for another task's inline password is that task's alone.
    let inline = spec(reader.endpoint_json(), &db);
    let (status, created) = deployment.call("POST", "/tasks", Some(&inline)).await;
    assert_eq!(status, 201, "{created}");
    let theirs = created["spec"]["source"]["password_secret"]
        .as_str()
        .expect("the secret made for the password");
    let body = spec(endpoint_with_secret(&reader, theirs, None), &db);
    let (status, refused) = deployment.call("POST", "/tasks", Some(&body)).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["field"], "source.password_secret");
    crate::schema::drop_databases(&[&db]).await;
}
