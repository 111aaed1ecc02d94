//! TLS modes against a MariaDB server whose certificate comes from a CA the test makes: each mode
//! connects when it should, and is refused with a message that says why when it should not.

use mysql_async::prelude::Queryable;
use secrecy::SecretString;
use tidemark_core::{TlsMode, TlsSpec};
use tidemark_engine::{ConnectError, ConnectOptions, connect};
use tidemark_tests::harness::tls::TestCa;
use tidemark_tests::harness::{PrivateServer, Server, source, unique_name};

fn options(server: &Server, host: &str, mode: TlsMode, ca_pem: Option<String>) -> ConnectOptions {
    let mut opts = ConnectOptions::new(
        host,
        server.port,
        server.user.clone(),
        SecretString::from(server_password(server)),
    );
    opts.tls = TlsSpec { mode, ca_pem };
    opts
}

fn server_password(server: &Server) -> String {
    use secrecy::ExposeSecret;
    server.password().expose_secret().to_owned()
}

async fn cipher(opts: &ConnectOptions) -> Result<String, ConnectError> {
    let mut conn = connect(opts).await?;
    let row: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .expect("read Ssl_cipher");
    let _ = conn.disconnect().await;
    Ok(row.map(|(_, v)| v).unwrap_or_default())
}

/// A server with a certificate for 127.0.0.1 only, signed by `ca`, that refuses plain TCP.
fn tls_server(ca: &TestCa) -> PrivateServer {
    let dir = std::env::temp_dir().join(unique_name("tls_certs"));
    let mut args = ca.server_files(&dir, &["127.0.0.1"]);
    args.push("--require-secure-transport=ON".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    PrivateServer::start("tls", &refs)
}

#[tokio::test]
async fn every_mode_connects_when_it_should_and_says_why_when_it_must_not() {
    let ca = TestCa::new("right");
    let wrong_ca = TestCa::new("wrong");
    let private = tls_server(&ca);
    let server = &private.server;

    // required: encrypted, nothing verified.
    let c = cipher(&options(server, "127.0.0.1", TlsMode::Required, None)).await;
    assert!(
        !c.expect("required connects").is_empty(),
        "the session is not encrypted"
    );

    // verify_ca with the CA that signed the certificate.
    let c = cipher(&options(
        server,
        "127.0.0.1",
        TlsMode::VerifyCa,
        Some(ca.pem()),
    ))
    .await;
    assert!(!c.expect("verify_ca with the right CA connects").is_empty());

    // verify_ca with another CA: refused, and the message says the CA is the problem.
    let err = cipher(&options(
        server,
        "127.0.0.1",
        TlsMode::VerifyCa,
        Some(wrong_ca.pem()),
    ))
    .await
    .expect_err("verify_ca with the wrong CA connected");
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not signed by the given CA"),
        "{err}"
    );

    // verify_identity with the name on the certificate.
    let c = cipher(&options(
        server,
        "127.0.0.1",
        TlsMode::VerifyIdentity,
        Some(ca.pem()),
    ))
    .await;
    assert!(
        !c.expect("verify_identity with the right name connects")
            .is_empty()
    );

    // verify_identity with a name the certificate does not carry (`localhost` is this machine
    // too, so nothing leaves it): refused, and the message says the name is the problem.
    let err = cipher(&options(
        server,
        "localhost",
        TlsMode::VerifyIdentity,
        Some(ca.pem()),
    ))
    .await
    .expect_err("verify_identity with the wrong host name connected");
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not issued for host `localhost`"),
        "{err}"
    );
    // ... while verify_ca, which does not check the name, accepts the same connection.
    let c = cipher(&options(
        server,
        "localhost",
        TlsMode::VerifyCa,
        Some(ca.pem()),
    ))
    .await;
    assert!(!c.expect("verify_ca ignores the name").is_empty());

    // A server that requires TLS refuses `disabled`, and says what to change.
    let err = cipher(&options(server, "127.0.0.1", TlsMode::Disabled, None))
        .await
        .expect_err("a TLS-only server accepted a plain connection");
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("requires TLS"), "{err}");
}

#[tokio::test]
async fn disabled_is_plain_and_required_needs_a_server_that_offers_tls() {
    // The shared source has no certificate.
    let server = source();
    let c = cipher(&options(&server, "127.0.0.1", TlsMode::Disabled, None)).await;
    assert_eq!(c.expect("a plain connection").as_str(), "");
    let err = cipher(&options(&server, "127.0.0.1", TlsMode::Required, None))
        .await
        .expect_err("required connected to a server without TLS");
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("does not offer TLS"), "{err}");
}
