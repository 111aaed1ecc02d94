//! Host names in the allowlist, resolved by the system's resolver — inside a network namespace of
//! this test's own, with its own `/etc/hosts`, so no query can leave the machine (the namespace
//! has nothing but its loopback). The test runs this binary again under
//! `unshare --net --mount`, which bind-mounts a hosts file over `/etc/hosts` and brings `lo` up;
//! inside, a loopback port forwards to the source server's unix socket, so the names reach a
//! real MariaDB.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use secrecy::ExposeSecret;
use serde_json::json;
use tidemark_core::ports::{HostResolver, ResolveError, SystemClock};
use tidemark_engine::SystemResolver;
use tidemark_local::{LocalScheduler, LocalSecretStore, MemoryQueue, SqliteStore};
use tidemark_service::{Allowlist, Host, Ports, ServiceError, TaskService, WorkerConfig};
use tidemark_tests::harness::source;
use tidemark_tests::harness::stack::stack_dir;

/// Set in the child: the test body runs there.
const INSIDE: &str = "TIDEMARK_NETNS_CHILD";

/// The names the namespace's hosts file gives.
const HOSTS: &str = "127.0.0.1 localhost\n\
                     ::1 localhost\n\
                     127.0.0.1 db.tidemark.test\n\
                     127.0.0.1 multi.tidemark.test\n\
                     10.9.9.9 multi.tidemark.test\n\
                     10.9.9.9 outside.tidemark.test\n";

#[test]
fn names_resolve_through_the_system_resolver_in_a_network_namespace() {
    if std::env::var_os(INSIDE).is_some() {
        return inside();
    }
    let probe = Command::new("unshare")
        .args(["--net", "--mount", "true"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "SKIPPED: unshare --net --mount is not permitted here ({}): the system resolver \
                 is tested only in a namespace of its own, so that no query leaves the machine",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED: unshare cannot run ({e})");
            return;
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, HOSTS).expect("the hosts file");
    let exe = std::env::current_exe().expect("this test binary");
    // `it::allowlist_netns` without the crate: the test's path in this binary.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let test =
        format!("{module}::names_resolve_through_the_system_resolver_in_a_network_namespace");
    let status = Command::new("unshare")
        .args(["--net", "--mount", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/hosts && ip link set lo up && exec "$2" --exact "$3" --nocapture --test-threads=1"#)
        .arg("sh")
        .arg(&hosts)
        .arg(&exe)
        .arg(&test)
        .env(INSIDE, "1")
        .env("TIDEMARK_STACK_DIR", stack_dir())
        .status()
        .expect("unshare");
    assert!(
        status.success(),
        "the test inside the namespace failed: {status}"
    );
}

/// Answers first what the system's resolver answers, then an address outside the list: a
/// connection that resolved the name a second time would go there.
struct Rebinding {
    calls: Mutex<u32>,
}

#[async_trait]
impl HostResolver for Rebinding {
    async fn resolve(&self, _host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let first = {
            let mut calls = self.calls.lock().expect("lock");
            *calls += 1;
            *calls == 1
        };
        if first {
            SystemResolver.resolve("db.tidemark.test").await
        } else {
            Ok(vec!["10.9.9.9".parse().expect("an address")])
        }
    }
}

fn service(allowlist: Allowlist, dir: &std::path::Path) -> Arc<TaskService> {
    let clock = Arc::new(SystemClock);
    TaskService::new(
        Ports {
            store: Arc::new(SqliteStore::open(&dir.join("state.sqlite")).expect("store")),
            secrets: Arc::new(LocalSecretStore::new(&dir.join("secrets.json"))),
            scheduler: Arc::new(
                LocalScheduler::open(&dir.join("schedules.sqlite"), clock.clone())
                    .expect("scheduler"),
            ),
            clock,
        },
        allowlist,
        Host::new(WorkerConfig::new(
            Arc::new(MemoryQueue::new(Arc::new(SystemClock), 5)),
            "netns",
        )),
    )
}

fn inside() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let port = forward_to_socket(stack_dir().join("source").join("mysqld.sock")).await;
        let server = source();
        let endpoint = |host: &str| {
            json!({ "host": host, "port": port, "user": server.user,
                    "password": server.password().expose_secret() })
        };
        let dir = tempfile::tempdir().expect("temp dir");

        // The system's resolver reads the namespace's hosts file: the name resolves inside
        // the listed network, is checked, and the connection reaches MariaDB at that address.
        let system = service(Allowlist::parse("127.0.0.0/8").expect("list"), dir.path());
        let found = system
            .test_connection(&endpoint("db.tidemark.test").to_string())
            .await
            .expect("an answer");
        assert!(found.ok, "{found:?}");
        assert!(found.message.contains("MariaDB"), "{found:?}");
        // A name with two addresses, one outside (10.9.9.9): refused, nothing connected to.
        for host in ["multi.tidemark.test", "outside.tidemark.test"] {
            match system.test_connection(&endpoint(host).to_string()).await {
                Err(ServiceError::HostNotAllowed { field, reason, .. }) => {
                    assert_eq!(field, "host");
                    assert!(reason.contains("resolves to an address"), "{reason}");
                }
                other => panic!("{host}: {other:?}"),
            }
        }
        // A name the hosts file does not hold: no answer (no DNS server is reachable here).
        let unknown = system
            .test_connection(&endpoint("nowhere.tidemark.test").to_string())
            .await;
        assert!(
            matches!(&unknown, Err(ServiceError::HostNotAllowed { reason, .. }) if reason.contains("resolve"))
                || matches!(&unknown, Ok(t) if t.code == Some("resolve")),
            "{unknown:?}"
        );

        // A resolver that answers differently the second time: the connection goes to the
        // address that was checked, and the name is never resolved again (by the driver, it
        // would not resolve at all here: the hosts file does not hold it).
        let rebinding = Arc::new(Rebinding {
            calls: Mutex::new(0),
        });
        let pinned = service(
            Allowlist::parse("127.0.0.0/8")
                .expect("list")
                .with_resolver(rebinding.clone()),
            dir.path(),
        );
        let found = pinned
            .test_connection(&endpoint("rebind.tidemark.test").to_string())
            .await
            .expect("an answer");
        assert!(found.ok, "{found:?}");
        assert_eq!(*rebinding.calls.lock().expect("lock"), 1);

        // A task over names passes the gate when it is created.
        let task = json!({
            "name": "netns",
            "source": endpoint("db.tidemark.test"),
            "destination": endpoint("db.tidemark.test"),
            "policy": { "mode": "resync" },
            "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                          "start": "2026-12-01", "end": "2027-11-30" },
            "objects": [ { "database": "mysql", "rename": "mysql_copy" } ]
        });
        let created = system.create(&task.to_string()).await.expect("created");
        assert_eq!(created.spec.source.host, "db.tidemark.test");
    });
}

/// A loopback TCP port (in this namespace) forwarding every connection to a unix socket.
async fn forward_to_socket(socket: PathBuf) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0 in the namespace");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Ok(mut unix) = tokio::net::UnixStream::connect(&socket).await {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    });
    port
}
