//! The local stack itself: two distinct servers, private servers with their own settings.

use mysql_async::prelude::Queryable;
use tidemark_tests::harness::{PrivateServer, destination, source, unique_name};

#[tokio::test]
async fn source_and_destination_are_distinct_servers() {
    let (src, dst) = (source(), destination());
    assert_ne!(src.port, dst.port);
    assert_ne!(
        src.query_one("SELECT @@datadir").await,
        dst.query_one("SELECT @@datadir").await,
        "both roles point at one datadir"
    );

    let db = unique_name("distinct");
    src.exec(&[
        &format!("CREATE DATABASE `{db}`"),
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(10))"),
        &format!("INSERT INTO `{db}`.t VALUES (1, 'source')"),
    ])
    .await;
    let on_source = src
        .query_one(&format!("SELECT v FROM `{db}`.t WHERE id = 1"))
        .await;
    assert_eq!(on_source.as_deref(), Some("source"));
    let on_destination = dst
        .query_one(&format!(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{db}'"
        ))
        .await;
    assert_eq!(
        on_destination.as_deref(),
        Some("0"),
        "a database written on the source is visible on the destination"
    );
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}

#[tokio::test]
async fn stack_servers_have_time_zone_tables_and_local_infile() {
    for server in [source(), destination()] {
        let zones = server
            .query_one("SELECT COUNT(*) FROM mysql.time_zone_name")
            .await
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        assert!(zones > 400, "{} has {zones} named time zones", server.role);
        let converted = server
            .query_one("SELECT CONVERT_TZ('2026-07-01 12:00:00', 'UTC', 'Asia/Shanghai')")
            .await;
        assert_eq!(converted.as_deref(), Some("2026-07-01 20:00:00"));
        assert_eq!(
            server.query_one("SELECT @@local_infile").await.as_deref(),
            Some("1")
        );
    }
}

#[tokio::test]
async fn a_private_server_has_its_own_settings_and_stops_when_dropped() {
    let private = PrivateServer::start(
        "private_settings",
        &["--local-infile=0", "--default-time-zone=Europe/Berlin"],
    );
    let port = private.server.port;
    let mut conn = private.server.conn().await;
    let (infile, tz): (String, String) = conn
        .query_first("SELECT @@global.local_infile, @@global.time_zone")
        .await
        .expect("query the private server")
        .expect("one row");
    assert_eq!((infile.as_str(), tz.as_str()), ("0", "Europe/Berlin"));
    // The shared servers are untouched by it.
    assert_eq!(
        source()
            .query_one("SELECT @@global.local_infile")
            .await
            .as_deref(),
        Some("1")
    );
    drop(conn);
    drop(private);
    let reconnect = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(
        reconnect.is_err(),
        "the private server on port {port} still listens after drop"
    );
}
