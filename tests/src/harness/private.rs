//! A MariaDB server of one test's own, for tests that change server-wide settings.
//!
//! It is made by the same script as the shared servers (`infra/local/mariadb-instance.sh`), from
//! the same template datadir, under `$TIDEMARK_STACK_DIR/private/`. Dropping it stops it; if the
//! test process dies first, `stack.sh stop` (run by the test command on exit) stops it.

use std::path::PathBuf;
use std::process::Command;

use secrecy::SecretString;

use super::names::unique_name;
use super::net::closed_port;
use super::server::Server;
use super::stack::{StackEnv, repo_dir, stack_dir};

pub struct PrivateServer {
    pub server: Server,
    pub dir: PathBuf,
    options: Vec<String>,
}

impl PrivateServer {
    /// Starts a server with extra `mariadbd` options, e.g. `--local-infile=0`,
    /// `--default-time-zone=Europe/Berlin`, `--ssl-cert=...`.
    pub fn start(tag: &str, options: &[&str]) -> PrivateServer {
        let dir = stack_dir().join("private").join(unique_name(tag));
        let port = closed_port();
        let status = Command::new(instance_script())
            .arg("start")
            .arg(&dir)
            .arg(port.to_string())
            .args(options)
            .status()
            .expect("run infra/local/mariadb-instance.sh");
        assert!(
            status.success(),
            "starting a private server in {} failed; see its error.log",
            dir.display()
        );
        let env = StackEnv::get();
        let server = Server::new(
            tag,
            port,
            env.var("TIDEMARK_DB_USER"),
            SecretString::from(env.var("TIDEMARK_DB_PASSWORD").to_owned()),
        );
        PrivateServer {
            server,
            dir,
            options: options.iter().map(|o| (*o).to_owned()).collect(),
        }
    }

    /// Starts the server again after [`PrivateServer::stop`]: the same datadir, port and
    /// options (an outage that ends).
    pub fn start_again(&self) {
        let status = Command::new(instance_script())
            .arg("start")
            .arg(&self.dir)
            .arg(self.server.port.to_string())
            .args(&self.options)
            .status()
            .expect("run infra/local/mariadb-instance.sh");
        assert!(
            status.success(),
            "starting the private server in {} again failed; see its error.log",
            self.dir.display()
        );
    }

    /// Stops the server (also done on drop).
    pub fn stop(&self) {
        let _ = Command::new(instance_script())
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn instance_script() -> PathBuf {
    repo_dir().join("infra/local/mariadb-instance.sh")
}
