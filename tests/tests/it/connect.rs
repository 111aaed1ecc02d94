//! The engine's connect: flavour and version, and a distinct, clear error for each way it fails,
//! within the connect timeout.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tidemark_engine::{ConnectError, ConnectOptions, DEFAULT_CONNECT_TIMEOUT, Flavor, probe};
use tidemark_tests::harness::net::{SilentListener, closed_port};
use tidemark_tests::harness::{destination, source};

#[tokio::test]
async fn connects_with_user_and_password_and_reports_flavour_and_version() {
    for server in [source(), destination()] {
        let info = probe(&server.connect_options())
            .await
            .unwrap_or_else(|e| panic!("probe {}: {e}", server.role));
        assert_eq!(info.flavor, Flavor::MariaDb);
        let expected = server
            .query_one("SELECT SUBSTRING_INDEX(@@version, '-', 1)")
            .await
            .expect("version");
        assert_eq!(info.version, expected);
        assert!(info.version_string.starts_with(&info.version), "{info:?}");
    }
}

#[tokio::test]
async fn a_wrong_password_is_access_denied_and_never_echoed() {
    let server = source();
    let wrong = format!("{}-but-wrong", server.password().expose_secret());
    let opts = ConnectOptions::new(
        "127.0.0.1",
        server.port,
        server.user.clone(),
        SecretString::from(wrong.clone()),
    );
    let started = Instant::now();
    let err = probe(&opts).await.expect_err("a wrong password connected");
    assert!(started.elapsed() < DEFAULT_CONNECT_TIMEOUT);
    assert!(
        matches!(err, ConnectError::AccessDenied { .. }),
        "expected access denied, got {err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("access denied for user `tidemark`"),
        "{message}"
    );
    assert!(
        message.contains("check the user name and password"),
        "{message}"
    );
    assert!(!message.contains(&wrong), "the password leaked: {message}");
    assert!(
        !format!("{err:?}").contains(&wrong),
        "the password leaked into Debug"
    );
    assert!(
        !format!("{opts:?}").contains(&wrong),
        "ConnectOptions' Debug shows the password"
    );
}

#[tokio::test]
async fn a_closed_port_is_refused_at_once() {
    let port = closed_port();
    let opts = ConnectOptions::new("127.0.0.1", port, "tidemark", SecretString::from("x"));
    let started = Instant::now();
    let err = probe(&opts).await.expect_err("a closed port connected");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refusal took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, ConnectError::Refused { .. }), "got {err:?}");
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(
        message.contains("nothing listens on that port"),
        "{message}"
    );
}

#[tokio::test]
async fn a_silent_listener_times_out_with_its_own_error_within_the_default_timeout() {
    let listener = SilentListener::start();
    let opts = ConnectOptions::new(
        "127.0.0.1",
        listener.addr.port(),
        "tidemark",
        SecretString::from("x"),
    );
    assert_eq!(opts.connect_timeout, Duration::from_secs(10));
    let started = Instant::now();
    let err = probe(&opts).await.expect_err("a silent listener connected");
    let took = started.elapsed();
    assert!(
        took <= DEFAULT_CONNECT_TIMEOUT + Duration::from_millis(500),
        "gave up after {took:?}, past the 10 s timeout"
    );
    assert!(
        took >= Duration::from_secs(5),
        "gave up too early: {took:?}"
    );
    assert!(
        matches!(err, ConnectError::NoGreeting { .. }),
        "got {err:?}"
    );
    assert!(listener.accepted() >= 1, "the listener saw no connection");
    let message = err.to_string();
    assert!(
        message.contains("accepted the TCP connection but sent no MySQL greeting"),
        "{message}"
    );
    assert!(message.contains("within 10 s"), "{message}");
}

#[tokio::test]
async fn the_three_failures_have_distinct_codes() {
    let codes = [
        ConnectError::AccessDenied {
            endpoint: "e".into(),
            user: "u".into(),
        }
        .code(),
        ConnectError::Refused {
            endpoint: "e".into(),
        }
        .code(),
        ConnectError::NoGreeting {
            endpoint: "e".into(),
            timeout: Duration::from_secs(1),
        }
        .code(),
    ];
    assert_eq!(codes, ["access_denied", "refused", "no_greeting"]);
}
