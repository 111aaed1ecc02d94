//! The shared stack started by `infra/local/stack.sh start`: two servers and the AWS emulator.
//!
//! The stack writes its environment to `$TIDEMARK_STACK_DIR/env`; the test command sources it.
//! When a developer runs `cargo test` by hand, the harness reads that file itself.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use secrecy::SecretString;

use super::server::Server;

/// The stack's settings: the process environment first, then `.stack/env`.
pub struct StackEnv {
    vars: HashMap<String, String>,
}

impl StackEnv {
    pub fn get() -> &'static StackEnv {
        static ENV: OnceLock<StackEnv> = OnceLock::new();
        ENV.get_or_init(StackEnv::load)
    }

    fn load() -> StackEnv {
        let mut vars = HashMap::new();
        let file = stack_dir().join("env");
        if let Ok(text) = std::fs::read_to_string(&file) {
            for line in text.lines() {
                let Some(rest) = line.strip_prefix("export ") else {
                    continue;
                };
                if let Some((key, value)) = rest.split_once('=') {
                    vars.insert(key.to_owned(), value.trim_matches('\'').to_owned());
                }
            }
        }
        for (key, value) in std::env::vars() {
            if key.starts_with("TIDEMARK_") || key.starts_with("AWS_") {
                vars.insert(key, value);
            }
        }
        StackEnv { vars }
    }

    /// A setting, or a panic that says how to bring the stack up.
    pub fn var(&self, key: &str) -> &str {
        match self.vars.get(key) {
            Some(v) => v,
            None => panic!(
                "{key} is not set and {} has no such line: start the stack first \
                 (infra/local/install.sh && infra/local/stack.sh start), or run infra/local/test.sh",
                stack_dir().join("env").display()
            ),
        }
    }

    pub fn port(&self, key: &str) -> u16 {
        let raw = self.var(key);
        raw.parse()
            .unwrap_or_else(|_| panic!("{key}={raw} is not a port number"))
    }

    fn server(&self, role: &str, port_key: &str) -> Server {
        Server::new(
            role,
            self.port(port_key),
            self.var("TIDEMARK_DB_USER"),
            SecretString::from(self.var("TIDEMARK_DB_PASSWORD").to_owned()),
        )
    }
}

/// `$TIDEMARK_STACK_DIR`, or `.stack/` at the repository's top.
pub fn stack_dir() -> PathBuf {
    match std::env::var_os("TIDEMARK_STACK_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => repo_dir().join(".stack"),
    }
}

/// The repository's top folder.
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The shared source server.
pub fn source() -> Server {
    StackEnv::get().server("source", "TIDEMARK_SOURCE_PORT")
}

/// The shared destination server.
pub fn destination() -> Server {
    StackEnv::get().server("destination", "TIDEMARK_DEST_PORT")
}
