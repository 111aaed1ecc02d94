//! The allowlist's rules over a table resolver: names with several addresses, suffix and CIDR
//! rules combined, and a resolver whose answer changes.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tidemark_engine::ConnectOptions;

use super::*;

/// Answers from a table: each name's answers in turn, the last one repeated; counts the calls.
#[derive(Default)]
struct TableResolver {
    answers: Mutex<HashMap<String, Vec<Vec<IpAddr>>>>,
    calls: Mutex<Vec<String>>,
}

impl TableResolver {
    fn new(table: &[(&str, &[&str])]) -> Arc<TableResolver> {
        let resolver = TableResolver::default();
        for (name, addresses) in table {
            resolver.then(name, addresses);
        }
        Arc::new(resolver)
    }

    /// `name`'s next answer.
    fn then(&self, name: &str, addresses: &[&str]) {
        let answer = addresses
            .iter()
            .map(|a| a.parse().expect("an address"))
            .collect();
        self.answers
            .lock()
            .expect("lock")
            .entry(name.to_owned())
            .or_default()
            .push(answer);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

#[async_trait]
impl HostResolver for TableResolver {
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        self.calls.lock().expect("lock").push(host.to_owned());
        let mut answers = self.answers.lock().expect("lock");
        let queue = answers.get_mut(host).filter(|q| !q.is_empty());
        match queue {
            Some(queue) if queue.len() > 1 => Ok(queue.remove(0)),
            Some(queue) => Ok(queue[0].clone()),
            None => Err(ResolveError {
                host: host.to_owned(),
                detail: "Name or service not known".into(),
            }),
        }
    }
}

fn list(rules: &str, resolver: &Arc<TableResolver>) -> Allowlist {
    Allowlist::parse(rules)
        .expect("a list")
        .with_resolver(resolver.clone())
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("an address"))
}

/// The reason of a refusal, or a panic naming what came instead.
fn refused(outcome: Result<impl std::fmt::Debug, ServiceError>, field: &str, host: &str) -> String {
    match outcome {
        Err(ServiceError::HostNotAllowed {
            field: f,
            host: h,
            reason,
        }) => {
            assert_eq!((f.as_str(), h.as_str()), (field, host));
            reason
        }
        other => panic!("{host}: {other:?}"),
    }
}

#[tokio::test]
async fn allows_listed_networks_and_names_only() {
    let resolver = TableResolver::new(&[("localhost", &["127.0.0.1"])]);
    let list = list("127.0.0.1/32, ::1 10.1.0.0/16,db.internal", &resolver);
    for ok in [
        "127.0.0.1",
        "::1",
        "[::1]",
        "10.1.200.3",
        "DB.internal",
        "::ffff:127.0.0.1",
        // Not listed by name, but it resolves inside a listed network.
        "localhost",
    ] {
        assert!(list.check("source.host", ok).await.is_ok(), "{ok}");
    }
    for bad in ["127.0.0.2", "10.2.0.1", "db.internal.evil", "::2"] {
        refused(
            list.check("destination.host", bad).await,
            "destination.host",
            bad,
        );
    }
    assert!(
        Allowlist::allow_all()
            .check("source.host", "192.0.2.1")
            .await
            .is_ok()
    );
}

#[test]
fn refuses_a_malformed_list_and_takes_a_lone_star_for_any_host() {
    for bad in [
        "",
        "10.0.0.0/33",
        "bad_name!",
        "*, 10.0.0.0/8",
        "*.com",
        "*.*.example.com",
        "db.*.example.com",
    ] {
        assert!(Allowlist::parse(bad).is_err(), "{bad}");
    }
    assert!(!Allowlist::parse(" * ").expect("any").is_restricted());
}

#[tokio::test]
async fn a_name_is_allowed_only_when_every_address_it_resolves_to_is() {
    let resolver = TableResolver::new(&[
        ("inside.db", &["10.1.0.5", "10.1.0.6"]),
        ("mixed.db", &["10.1.0.5", "192.0.2.9"]),
        ("mapped.db", &["::ffff:10.1.0.7"]),
    ]);
    let list = list("10.1.0.0/16", &resolver);
    assert!(list.check("source.host", "inside.db").await.is_ok());
    // The connection goes to the first address of the answer, all of which were checked.
    assert_eq!(
        list.reach("source", "inside.db").await.expect("allowed"),
        ip("10.1.0.5")
    );
    let reason = refused(
        list.check("source.host", "mixed.db").await,
        "source.host",
        "mixed.db",
    );
    assert!(reason.contains("every address"), "{reason}");
    assert!(
        !reason.contains("192.0.2.9"),
        "the answer is not told: {reason}"
    );
    refused(
        list.reach("destination", "mixed.db").await,
        "destination.host",
        "mixed.db",
    );
    assert_eq!(
        list.reach("source", "mapped.db").await.expect("allowed"),
        ip("10.1.0.7")
    );
    // A name that does not resolve: refused at the gate, a connect error when connecting.
    let reason = refused(
        list.check("source.host", "gone.db").await,
        "source.host",
        "gone.db",
    );
    assert!(reason.contains("not known"), "{reason}");
    match list.reach("source", "gone.db").await {
        Err(ServiceError::Connect { role, source }) => {
            assert_eq!((role, source.code()), ("source", "resolve"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn suffix_and_network_rules_combine_as_either() {
    let rds = "abc123xyz.us-east-1.rds.amazonaws.com";
    let orders = format!("orders.{rds}");
    let deep = format!("replica.orders.{rds}");
    let other_account = "orders.zzz999qqq.us-east-1.rds.amazonaws.com";
    let lookalike = format!("{orders}.evil.example");
    let resolver = TableResolver::new(&[
        (orders.as_str(), &["172.31.4.5"]),
        (deep.as_str(), &["172.31.4.6"]),
        (rds, &["52.0.0.1"]),
        (other_account, &["10.0.3.4"]),
        ("in-vpc.example", &["10.0.9.9", "10.0.1.1"]),
        (lookalike.as_str(), &["203.0.113.5"]),
    ]);
    let list = list(&format!("*.{rds}, 10.0.0.0/16"), &resolver);

    // The suffix allows its names at any depth, whatever their addresses; the gate does not
    // resolve them, the connection does, once, and goes to that address.
    assert!(list.check("source.host", &orders).await.is_ok());
    assert!(
        list.check("source.host", &deep.to_uppercase())
            .await
            .is_ok()
    );
    assert!(resolver.calls().is_empty(), "{:?}", resolver.calls());
    assert_eq!(
        list.reach("source", &orders).await.expect("allowed"),
        ip("172.31.4.5")
    );
    assert_eq!(resolver.calls(), std::slice::from_ref(&orders));
    // Not the bare domain, nor a name that only starts like one of its names.
    refused(list.check("source.host", rds).await, "source.host", rds);
    refused(
        list.check("source.host", &lookalike).await,
        "source.host",
        &lookalike,
    );
    // Names outside the suffix pass by the networks: every address inside one.
    assert!(list.check("source.host", other_account).await.is_ok());
    assert_eq!(
        list.reach("destination", "in-vpc.example")
            .await
            .expect("allowed"),
        ip("10.0.9.9")
    );
    // An IP address passes by the networks only, and is connected to as given.
    assert_eq!(
        list.reach("source", "10.0.7.7").await.expect("allowed"),
        None
    );
    refused(
        list.check("source.host", "172.31.4.5").await,
        "source.host",
        "172.31.4.5",
    );
}

#[tokio::test]
async fn a_resolver_that_answers_differently_the_second_time_cannot_redirect_the_connection() {
    let resolver = TableResolver::new(&[]);
    resolver.then("db.rebind.test", &["127.0.0.1"]);
    resolver.then("db.rebind.test", &["10.9.9.9"]);
    let list = list("127.0.0.0/8", &resolver);

    // One resolution, checked, and the options dial that address: the driver never resolves
    // the name, so the later answer cannot reach this connection.
    let address = list
        .reach("source", "db.rebind.test")
        .await
        .expect("allowed");
    assert_eq!(address, ip("127.0.0.1"));
    let options =
        ConnectOptions::new("db.rebind.test", 3306, "dts", "pw".into()).with_address(address);
    assert_eq!(options.to_mysql_opts().ip_or_hostname(), "127.0.0.1");
    assert_eq!(resolver.calls().len(), 1);

    // The next connection resolves again and checks that answer: outside, it is refused.
    let reason = refused(
        list.reach("source", "db.rebind.test").await,
        "source.host",
        "db.rebind.test",
    );
    assert!(reason.contains("resolves to an address"), "{reason}");
}
