//! The secret scope on the deployed functions, shown by the calls the IAM emulator recorded and
//! by the simulator over the unmodified policies: a secret outside `AllowedSecretArns` is refused
//! by the service before any read and would be denied by IAM; a secret under a customer-managed
//! KMS key is read only on a stack whose `SecretKmsKeyArns` names the key (the implied
//! `kms:Decrypt` allowed, or refused and denied); and a rotation to the other database user
//! between two cycles keeps the runs working in the same warm environments.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use mysql_async::prelude::Queryable;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tidemark_tests::harness::fixtures::{rows_hash, user};
use tidemark_tests::harness::{Server, destination, source, unique_name};
use tidemark_tests::lambda_host::iam::{IamEmulator, StackFiles, simulate};
use tidemark_tests::lambda_host::{AwsStack, StackOptions};

use crate::support::Scenario;

const FIRST: &str = "2027-12-01T02:30:00Z";

/// A secret holding `server`'s login in RDS's format, made with the harness's key under `name`
/// (encrypted with `kms_key` when given): its ARN.
async fn login_secret(
    stack: &AwsStack,
    name: &str,
    server: &Server,
    kms_key: Option<&str>,
) -> String {
    let value = json!({ "username": server.user, "password": server.password().expose_secret() });
    aws_sdk_secretsmanager::Client::new(&stack.sdk)
        .create_secret()
        .name(name)
        .secret_string(value.to_string())
        .set_kms_key_id(kms_key.map(str::to_owned))
        .send()
        .await
        .expect("CreateSecret")
        .arn
        .expect("its ARN")
}

/// A task copying `db` to a new database (its name too), whose destination logs in with
/// `secret` alone (the secret's username).
fn task_with_secret(s: &Scenario, secret: &str, db: &str) -> (Value, String) {
    let target = s.target(&format!("{db}_dw"));
    let mut body = s.task(
        json!({ "mode": "resync" }),
        json!([{ "database": db, "rename": target }]),
    );
    body["destination"] =
        json!({ "host": s.writer.host, "port": s.writer.port, "password_secret": secret });
    (body, target)
}

/// A task over a new table copied once with `secret` as the destination's login: the task's
/// id, the source database and the destination's.
async fn copied_once(s: &Scenario, secret: &str, tag: &str) -> (String, String, String) {
    let db = s
        .source_db(
            tag,
            &[
                "CREATE TABLE t (id INT PRIMARY KEY)",
                "INSERT INTO t VALUES (1), (2), (3)",
            ],
        )
        .await;
    let (body, target) = task_with_secret(s, secret, &db);
    let id = s.create(&body).await;
    s.start(&id).await;
    let run = s.cycle(&id, FIRST).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    same_rows(&db, &target).await;
    (id, db, target)
}

async fn same_rows(db: &str, target: &str) {
    assert_eq!(
        rows_hash(&destination(), target, "t", "id").await,
        rows_hash(&source(), db, "t", "id").await
    );
}

/// A customer-managed key made in the emulator, a scenario on a stack whose `SecretKmsKeyArns`
/// names it or not, and the writer's login in a secret under it, in scope by its ARN: the key
/// and the secret. A stack that does not name the key is judged by its scenario, not by the
/// suite's check that every recorded call is allowed: its refused read is meant.
async fn under_a_key(named: bool) -> (Scenario, String, String) {
    let key = IamEmulator::from_stack_env()
        .create_key("the users' secrets")
        .unwrap_or_else(|e| panic!("{e}"));
    let options = if named {
        StackOptions {
            parameters: vec![("SecretKmsKeyArns".into(), key.clone())],
            ..StackOptions::default()
        }
    } else {
        StackOptions {
            judged_after: false,
            ..StackOptions::default()
        }
    };
    let s = Scenario::with(options).await;
    let name = format!("rds!{}", unique_name("kms"));
    let secret = login_secret(&s.stack, &name, &s.writer, Some(&key)).await;
    (s, key, secret)
}

/// The recorded `GetSecretValue` calls on `secret` by `stack`'s functions.
fn reads(stack: &AwsStack, secret: &str) -> Vec<Value> {
    recorded_calls(stack)
        .into_iter()
        .filter(|c| c["api"] == "secretsmanager:GetSecretValue" && on(c, secret))
        .collect()
}

/// `POST /tasks` for a task whose destination logs in with `secret`, refused with a 422
/// `secret_not_allowed` naming the field: the answer.
async fn refused_task(s: &Scenario, secret: &str, tag: &str) -> Value {
    let (body, _) = task_with_secret(s, secret, tag);
    let (status, refused) = s
        .stack
        .http("POST", "/tasks", Some(&body.to_string()))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "secret_not_allowed", "{refused}");
    assert_eq!(refused["error"]["field"], "destination.password_secret");
    refused
}

/// The calls the emulator recorded with a key of one of `stack`'s roles.
fn recorded_calls(stack: &AwsStack) -> Vec<Value> {
    let keys: Vec<&str> = stack
        .roles
        .values()
        .map(|c| c.access_key_id.as_str())
        .collect();
    std::fs::read_to_string(&stack.iam.calls)
        .expect("the recorded calls")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|c| c["access_key"].as_str().is_some_and(|k| keys.contains(&k)))
        .collect()
}

/// Whether a recorded call's checked actions name `arn`.
fn on(call: &Value, arn: &str) -> bool {
    call["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(call["implied"].as_array().into_iter().flatten())
        .any(|a| {
            a["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r == arn)
        })
}

/// simulate.mjs over `stack`'s recorded calls and `probes` (judged against `stack`): its report.
fn simulated(stack: &AwsStack, probes: &[Value]) -> Value {
    let path: PathBuf = stack.dir.join(format!("{}.jsonl", unique_name("probes")));
    let lines: String = probes.iter().map(|p| format!("{p}\n")).collect();
    std::fs::write(&path, lines).expect("the probes");
    let files = StackFiles {
        stack_json: stack.dir.join("stack.json"),
        creds_json: stack.dir.join("creds.json"),
    };
    let (_, report) =
        simulate(&stack.iam.calls, &[files], Some(&path), false).unwrap_or_else(|e| panic!("{e}"));
    report
}

/// The probes of `report` that are not as they expected.
fn unexpected(report: &Value) -> Vec<Value> {
    report["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["as_expected"] != true)
        .cloned()
        .collect()
}

/// The implied `kms:Decrypt` of `key` among `report`'s verdicts.
fn decrypts(report: &Value, key: &str) -> Vec<Value> {
    report["verdicts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| {
            v["source"] == "implied" && v["action"] == "kms:Decrypt" && v["resource"] == key
        })
        .cloned()
        .collect()
}

/// `kms:Decrypt` of `key` through Secrets Manager, as the functions' reads imply it.
fn decrypt_probe(function: &str, key: &str, expect: &str) -> Value {
    json!({ "function": function, "action": "kms:Decrypt", "resources": [key],
            "context": { "kms:ViaService": "secretsmanager.us-east-1.amazonaws.com" },
            "expect": expect })
}

pub async fn a_secret_outside_the_scope_is_refused_before_any_read() {
    let s = Scenario::new().await;
    // Not `rds!...`: outside the suite's AllowedSecretArns.
    let name = format!("payroll!{}", unique_name("db"));
    let secret = login_secret(&s.stack, &name, &s.writer, None).await;
    refused_task(&s, &secret, "aws_scope").await;
    // No function called Secrets Manager on it: nothing was read, not even described.
    let touched: Vec<Value> = recorded_calls(&s.stack)
        .into_iter()
        .filter(|c| on(c, &secret))
        .collect();
    assert!(touched.is_empty(), "calls on {secret}: {touched:#?}");
    // And IAM would deny a read under the unmodified policies.
    let probes: Vec<Value> = ["CreateTaskFunction", "RunWorkerFunction"]
        .iter()
        .map(|f| {
            json!({ "function": f, "action": "secretsmanager:GetSecretValue",
                    "resources": [secret], "expect": "denied" })
        })
        .collect();
    let wrong = unexpected(&simulated(&s.stack, &probes));
    assert!(wrong.is_empty(), "{wrong:#?}");
    s.finish().await;
}

pub async fn a_secret_under_a_named_customer_key_is_read() {
    let (s, key, secret) = under_a_key(true).await;
    copied_once(&s, &secret, "aws_kms").await;
    // The functions read it, each read decrypting with the key: allowed by the policies.
    let reads = reads(&s.stack, &secret);
    assert!(!reads.is_empty(), "no function read {secret}");
    assert!(
        reads.iter().all(|c| c["status"] == 200 && on(c, &key)),
        "{reads:#?}"
    );
    let report = simulated(
        &s.stack,
        &[decrypt_probe("RunWorkerFunction", &key, "allowed")],
    );
    let decrypted = decrypts(&report, &key);
    assert!(
        !decrypted.is_empty(),
        "no implied kms:Decrypt of {key} judged"
    );
    assert!(
        decrypted.iter().all(|v| v["result"] == "Allowed"),
        "{decrypted:#?}"
    );
    let wrong = unexpected(&report);
    assert!(wrong.is_empty(), "{wrong:#?}");
    s.finish().await;
}

pub async fn a_secret_under_an_unnamed_customer_key_is_refused() {
    // The suite's parameters: no SecretKmsKeyArns.
    let (s, key, secret) = under_a_key(false).await;
    // Creating the task reads the secret (its username): the emulator refuses the implied
    // kms:Decrypt, and the service answers naming the secret, never its password.
    let text = refused_task(&s, &secret, "aws_nokms").await.to_string();
    // The fix said: the key named in SecretKmsKeyArns.
    assert!(
        text.contains(&secret) && text.contains("SecretKmsKeyArns"),
        "{text}"
    );
    assert!(
        !text.contains(s.writer.password().expose_secret()),
        "{text}"
    );
    let reads = reads(&s.stack, &secret);
    assert!(!reads.is_empty(), "no function tried to read {secret}");
    assert!(
        reads.iter().all(|c| c["status"] != 200 && on(c, &key)),
        "a read under an unnamed key was let through: {reads:#?}"
    );
    // The simulator denies the implied kms:Decrypt too, recorded or probed.
    let report = simulated(
        &s.stack,
        &[
            decrypt_probe("CreateTaskFunction", &key, "denied"),
            decrypt_probe("RunWorkerFunction", &key, "denied"),
        ],
    );
    let decrypted = decrypts(&report, &key);
    assert!(
        !decrypted.is_empty(),
        "no implied kms:Decrypt of {key} judged"
    );
    assert!(
        decrypted.iter().all(|v| v["result"] != "Allowed"),
        "{decrypted:#?}"
    );
    let wrong = unexpected(&report);
    assert!(wrong.is_empty(), "{wrong:#?}");
    s.finish().await;
}

pub async fn a_rotation_to_the_other_user_keeps_the_runs_working() {
    let s = Scenario::new().await;
    let secret = s.user_secret(&s.writer).await;
    let (id, db, target) = copied_once(&s, &secret, "aws_rotate").await;

    // Rotated as RDS alternates users: a second user with the same grants, the secret's new
    // version naming it. The first user's password then changes and its sessions end, as the
    // next rotation would do, so the next run can only log in as the second.
    let other = user(
        &destination(),
        "aws_dst_b",
        &["ALL PRIVILEGES ON *.*".to_owned()],
    )
    .await;
    aws_sdk_secretsmanager::Client::new(&s.stack.sdk)
        .put_secret_value()
        .secret_id(&secret)
        .secret_string(
            json!({ "username": other.user, "password": other.password().expose_secret() })
                .to_string(),
        )
        .send()
        .await
        .expect("PutSecretValue");
    let old = &s.writer.user;
    destination()
        .exec(&[&format!(
            "ALTER USER '{old}'@'127.0.0.1' IDENTIFIED BY '{}'",
            unique_name("rotated")
        )])
        .await;
    let sessions = destination()
        .query_one(&format!(
            "SELECT GROUP_CONCAT(ID) FROM information_schema.PROCESSLIST WHERE USER = '{old}'"
        ))
        .await;
    let mut conn = destination().conn().await;
    for session in sessions.iter().flat_map(|ids| ids.split(',')) {
        // One that ended meanwhile is as good.
        let _ = conn.query_drop(format!("KILL {session}")).await;
    }
    let _ = conn.disconnect().await;
    source()
        .exec(&[&format!("INSERT INTO `{db}`.t VALUES (4)")])
        .await;

    let worker = s.stack.function("RunWorkerFunction");
    let cold = worker.stats.cold_starts.load(Ordering::Relaxed);
    let (_, run) = s.run_now(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    same_rows(&db, &target).await;
    assert_eq!(
        worker.stats.cold_starts.load(Ordering::Relaxed),
        cold,
        "the second run started new worker environments"
    );
    s.settled_task(&id).await;
    destination()
        .exec(&[&format!("DROP USER IF EXISTS '{}'@'127.0.0.1'", other.user)])
        .await;
    s.finish().await;
}
