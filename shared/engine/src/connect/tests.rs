//! The options' fingerprints and driver options, the TLS name retry, the bulk-execution rule.

use super::*;

fn tls_error(detail: &str) -> ConnectError {
    ConnectError::Tls {
        endpoint: "h:1".into(),
        detail: detail.into(),
    }
}

#[test]
fn a_secret_version_tells_credentials_apart_and_an_inline_password_itself() {
    let at = |password: &str, version: Option<&str>| {
        ConnectOptions::new("db", 3306, "dts", SecretString::from(password)).with_secret(
            version.map(|v| SecretVersion {
                reference: "arn:secret:db".into(),
                version: v.into(),
            }),
        )
    };
    let v1 = at("pw-1", Some("v1"));
    assert_eq!(v1.fingerprint(), at("pw-1", Some("v1")).fingerprint());
    // A rotation: a new version, whatever the password.
    assert_ne!(v1.fingerprint(), at("pw-1", Some("v2")).fingerprint());
    assert_ne!(v1.fingerprint(), at("pw-2", Some("v2")).fingerprint());
    assert_eq!(
        v1.place_fingerprint(),
        at("pw-2", Some("v2")).place_fingerprint()
    );
    // A rotation to the other of two users: the same place (its old pools are closed),
    // another credential.
    let other_user = at("pw-2", Some("v2")).with_user("dts_b");
    assert_eq!(v1.place_fingerprint(), other_user.place_fingerprint());
    assert_ne!(v1.fingerprint(), other_user.fingerprint());
    // Without a secret, another user is another place.
    assert_ne!(
        at("pw-1", None).place_fingerprint(),
        at("pw-1", None).with_user("dts_b").place_fingerprint()
    );
    // Without a secret, the password itself.
    assert_eq!(
        at("pw-1", None).fingerprint(),
        at("pw-1", None).fingerprint()
    );
    assert_ne!(
        at("pw-1", None).fingerprint(),
        at("pw-2", None).fingerprint()
    );
    assert!(!format!("{v1:?}").contains("pw-1"), "{v1:?}");
}

#[test]
fn a_checked_address_is_dialled_and_tls_still_checks_the_host_name() {
    let named = ConnectOptions {
        tls: TlsSpec {
            mode: TlsMode::VerifyIdentity,
            ca_pem: None,
        },
        ..ConnectOptions::new("db.example.internal", 3306, "dts", "pw".into())
    };
    let pinned = named
        .clone()
        .with_address(Some("10.0.0.7".parse().expect("ip")));
    let opts = pinned.to_mysql_opts();
    assert_eq!(opts.ip_or_hostname(), "10.0.0.7", "no second resolution");
    let ssl = opts.ssl_opts().expect("TLS");
    assert_eq!(ssl.tls_hostname_override(), Some("db.example.internal"));
    assert!(!ssl.skip_domain_validation() && !ssl.accept_invalid_certs());
    assert_ne!(named.place_fingerprint(), pinned.place_fingerprint());
    // Unpinned, the driver resolves the name itself; an IP literal needs no TLS name.
    assert_eq!(
        named.to_mysql_opts().ip_or_hostname(),
        "db.example.internal"
    );
    let literal = ConnectOptions::new("10.0.0.7", 3306, "dts", "pw".into())
        .with_address(Some("10.0.0.7".parse().expect("ip")));
    assert_eq!(literal.to_mysql_opts().ssl_opts(), None);
}

#[test]
fn only_mariadb_10_2_and_later_runs_bulk_executions() {
    let info = |flavor, version: &str| ServerInfo {
        flavor,
        version: version.into(),
        version_string: String::new(),
        version_comment: String::new(),
    };
    for (flavor, version, bulk) in [
        (Flavor::MariaDb, "10.11.19", true),
        (Flavor::MariaDb, "10.2.44", true),
        (Flavor::MariaDb, "11.4.2", true),
        (Flavor::MariaDb, "10.1.48", false),
        (Flavor::MySql, "8.0.36", false),
        (Flavor::MySql, "10.2.0", false),
    ] {
        assert_eq!(
            info(flavor, version).runs_bulk_executions(),
            bulk,
            "{flavor} {version}"
        );
    }
}

#[test]
fn verify_ca_takes_a_name_the_certificate_carries() {
    let verify_ca = TlsSpec {
        mode: TlsMode::VerifyCa,
        ca_pem: None,
    };
    let ip = tls_error(
        "invalid peer certificate: certificate not valid for name \"localhost\"; certificate is only valid for IpAddress(127.0.0.1)",
    );
    assert_eq!(
        verify_ca_name(&ip, &verify_ca).as_deref(),
        Some("127.0.0.1")
    );
    let dns = tls_error(
        "invalid peer certificate: certificate not valid for name \"10.0.0.9\"; certificate is only valid for [DnsName(\"db.internal\"), DnsName(\"db\")]",
    );
    assert_eq!(
        verify_ca_name(&dns, &verify_ca).as_deref(),
        Some("db.internal")
    );
    // Other failures, and other modes, are not retried.
    assert_eq!(
        verify_ca_name(
            &tls_error("invalid peer certificate: UnknownIssuer"),
            &verify_ca
        ),
        None
    );
    let identity = TlsSpec {
        mode: TlsMode::VerifyIdentity,
        ca_pem: None,
    };
    assert_eq!(verify_ca_name(&ip, &identity), None);
}
