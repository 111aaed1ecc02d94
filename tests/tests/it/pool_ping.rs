//! A pooled session that its network dropped silently — a NAT that forgot the flow, a Lambda
//! container frozen while the server closed the session — is pinged before use when it has been
//! idle longer than `idle_ping`, and replaced, so the next statement works. The same sever
//! without the ping fails that statement: mysql_async's own check (a socket the server closed)
//! does not see it.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use tidemark_engine::copy::CopyEndpoints;
use tidemark_tests::harness::net::SeveringProxy;
use tidemark_tests::harness::{Server, destination, source};

/// The source's pool through a proxy, pinging after `idle_ping`: the session id the first use
/// got, and what the first statement after the sever returned (its session id).
async fn after_a_sever(idle_ping: Duration) -> (u64, Result<u64, mysql_async::Error>) {
    let proxy = SeveringProxy::start(source().port).await;
    let src = source();
    let via_proxy = Server::new(
        "source via proxy",
        proxy.port,
        &src.user,
        src.password().clone(),
    );
    let mut endpoints = CopyEndpoints::open(
        &via_proxy.connect_options(),
        &destination().connect_options(),
        1,
    )
    .await
    .expect("open the pools");
    endpoints.idle_ping = idle_ping;
    let first: u64 = {
        let mut session = endpoints.source_conn().await.expect("a session");
        session
            .query_first("SELECT CONNECTION_ID()")
            .await
            .expect("the first statement")
            .expect("a row")
    };
    // Back in the pool (and reset there), idle past the ping threshold of the short case.
    tokio::time::sleep(Duration::from_millis(400)).await;
    proxy.sever();
    let after = match endpoints.source_conn().await {
        Ok(mut session) => session
            .query_first("SELECT CONNECTION_ID()")
            .await
            .map(|id: Option<u64>| id.unwrap_or_default()),
        Err(e) => panic!("no session at all after the sever: {e}"),
    };
    endpoints.disconnect().await;
    (first, after)
}

#[tokio::test]
async fn an_idle_session_dropped_by_the_network_is_pinged_and_replaced() {
    let (first, after) = after_a_sever(Duration::from_millis(100)).await;
    let after = after.expect("the statement after the sever runs on a new session");
    assert_ne!(after, first, "the severed session was handed out");
}

#[tokio::test]
async fn without_the_ping_the_first_statement_after_the_sever_fails() {
    let (_, after) = after_a_sever(Duration::from_secs(3600)).await;
    let error = after.expect_err("the severed session was handed out and failed");
    assert!(matches!(error, mysql_async::Error::Io(_)), "{error:?}");
}
