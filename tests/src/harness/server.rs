//! One MariaDB server a test talks to, over TCP on loopback, as the `tidemark` user.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use secrecy::{ExposeSecret, SecretString};
use tidemark_engine::ConnectOptions;

#[derive(Debug, Clone)]
pub struct Server {
    /// `source`, `destination`, or a private server's tag; for messages.
    pub role: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    password: SecretString,
}

impl Server {
    pub fn new(role: &str, port: u16, user: &str, password: SecretString) -> Server {
        Server {
            role: role.to_owned(),
            host: "127.0.0.1".to_owned(),
            port,
            user: user.to_owned(),
            password,
        }
    }

    pub fn password(&self) -> &SecretString {
        &self.password
    }

    /// The engine's view of this server.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions::new(
            self.host.clone(),
            self.port,
            self.user.clone(),
            self.password.clone(),
        )
    }

    /// The endpoint as a task spec writes it, with the password inline.
    pub fn endpoint_json(&self) -> serde_json::Value {
        serde_json::json!({
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password.expose_secret(),
        })
    }

    /// Driver options for the harness's own admin sessions (TCP, never the unix socket).
    pub fn opts(&self) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose_secret().to_owned()))
            .prefer_socket(false)
            .into()
    }

    /// An admin session. Panics with the server's role and port: the harness is test code.
    pub async fn conn(&self) -> Conn {
        match Conn::new(self.opts()).await {
            Ok(conn) => conn,
            Err(e) => panic!(
                "cannot connect to the {} server on 127.0.0.1:{}: {e}; is the stack up? (infra/local/stack.sh start)",
                self.role, self.port
            ),
        }
    }

    /// Runs statements in one session, panicking with the statement on error.
    pub async fn exec(&self, statements: &[&str]) {
        let mut conn = self.conn().await;
        for sql in statements {
            if let Err(e) = conn.query_drop(*sql).await {
                panic!("on the {} server, `{sql}` failed: {e}", self.role);
            }
        }
        let _ = conn.disconnect().await;
    }

    /// The first column of the first row of a query, as a string (NULL -> None).
    pub async fn query_one(&self, sql: &str) -> Option<String> {
        let mut conn = self.conn().await;
        let value: Option<Option<String>> = match conn.query_first(sql).await {
            Ok(v) => v,
            Err(e) => panic!("on the {} server, `{sql}` failed: {e}", self.role),
        };
        let _ = conn.disconnect().await;
        value.flatten()
    }
}
