//! Connecting to an endpoint within a bounded time, and telling the user exactly what went wrong.
//!
//! mysql_async has no connect timeout of its own, and a server that accepts the TCP connection but
//! never greets would hang it forever, so every connect runs under one deadline. When the deadline
//! passes, a short TCP probe tells "no TCP answer" (a firewall, a wrong host) from "TCP answered but
//! no MySQL greeting" (a wrong port, a stuck proxy); both fit inside the same deadline.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, SslOpts};
use secrecy::{ExposeSecret, SecretString};
use tidemark_core::ports::SecretVersion;
use tidemark_core::{EndpointSpec, TlsMode, TlsSpec};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use crate::error::ConnectError;

/// The connect timeout when the task spec does not set one (DTS's "Test Connectivity" waits about
/// as long).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// MySQL's "Access denied for user" error code.
const ER_ACCESS_DENIED_ERROR: u16 = 1045;
/// "Connections using insecure transport are prohibited while --require_secure_transport=ON."
const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;

/// How to reach one server. The password is a [`SecretString`]: it is never printed by `Debug`, and
/// leaves this struct only when the driver options are built.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    password: SecretString,
    pub tls: TlsSpec,
    pub connect_timeout: Duration,
    /// Statements run on every new session (and after every pool reset), e.g. `SET time_zone`.
    pub setup: Vec<String>,
    /// The secret and version the password was read from, when it came from a secret store:
    /// what tells a rotated password from the one before (see [`ConnectOptions::fingerprint`]).
    pub secret: Option<SecretVersion>,
    /// The address to connect to instead of resolving `host`: one the allowlist checked `host`
    /// resolved to, so nothing resolves the name again. TLS still checks the certificate
    /// against `host`.
    pub address: Option<IpAddr>,
}

impl ConnectOptions {
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        password: SecretString,
    ) -> Self {
        ConnectOptions {
            host: host.into(),
            port,
            user: user.into(),
            password,
            tls: TlsSpec::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            setup: Vec::new(),
            secret: None,
            address: None,
        }
    }

    /// These options with the secret version their password was read at.
    pub fn with_secret(self, secret: Option<SecretVersion>) -> Self {
        ConnectOptions { secret, ..self }
    }

    /// The options for an endpoint of a task spec, with its password already looked up (the
    /// password may live in an environment variable or a secret store, which the caller resolves)
    /// and the spec's `user` (empty when the spec has none: a secret's `username` is then given
    /// with [`ConnectOptions::with_user`]).
    pub fn from_endpoint(endpoint: &EndpointSpec, password: SecretString) -> Self {
        ConnectOptions {
            tls: endpoint.tls.clone(),
            connect_timeout: Duration::from_secs(u64::from(endpoint.connect_timeout_seconds)),
            ..ConnectOptions::new(
                endpoint.host.clone(),
                endpoint.port,
                endpoint.user.clone().unwrap_or_default(),
                password,
            )
        }
    }

    /// These options connecting to `address` (checked by the caller) instead of resolving the
    /// host name.
    pub fn with_address(self, address: Option<IpAddr>) -> Self {
        ConnectOptions { address, ..self }
    }

    /// These options logging in as `user` (a secret's `username`, which wins over the spec's).
    pub fn with_user(self, user: impl Into<String>) -> Self {
        ConnectOptions {
            user: user.into(),
            ..self
        }
    }

    /// Tells two options apart without showing them: equal for the same place (see
    /// [`ConnectOptions::place_fingerprint`]), the same user and the same credential — the same
    /// version of the same secret when the password came from a secret store
    /// ([`ConnectOptions::secret`]: a rotation changes it), else the same password, hashed in
    /// this process's memory only (never logged, never stored).
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.place_fingerprint().hash(&mut hasher);
        self.user.hash(&mut hasher);
        match &self.secret {
            Some(secret) => secret.hash(&mut hasher),
            None => self.password.expose_secret().hash(&mut hasher),
        }
        hasher.finish()
    }

    /// Tells two places apart: the same server (and address it was resolved to), TLS, connect
    /// timeout and setup, whatever the password — and the same user, unless the login comes from a secret, whose version
    /// carries the user (a rotation may move to the other of two users: the same place).
    pub fn place_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.host.hash(&mut hasher);
        self.address.hash(&mut hasher);
        self.port.hash(&mut hasher);
        if self.secret.is_none() {
            self.user.hash(&mut hasher);
        }
        format!("{:?}", self.tls).hash(&mut hasher);
        self.connect_timeout.hash(&mut hasher);
        self.setup.hash(&mut hasher);
        hasher.finish()
    }

    /// `host:port` as users write it (`[::1]:3306` for IPv6), for messages.
    pub fn endpoint(&self) -> String {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }

    fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// What the TCP connection goes to: the checked address, else the host as given.
    fn dial_host(&self) -> String {
        match self.address {
            Some(address) => address.to_string(),
            None => self.bare_host().to_owned(),
        }
    }

    /// The driver's options. `prefer_socket(false)`: mysql_async otherwise moves a connection to
    /// 127.0.0.1 onto the unix socket it finds in `@@socket`, which is another server's socket as
    /// often as not on a machine with several servers.
    pub fn to_mysql_opts(&self) -> Opts {
        self.mysql_opts_with(None)
    }

    /// The driver's options, with the name the TLS layer checks the certificate against
    /// replaced (see [`verify_ca_name`]). Connecting to a checked address, the TLS name stays
    /// the host name (mysql_async's `tls_hostname_override`, which sets the server name that
    /// rustls sends and verifies separately from the address connected to).
    fn mysql_opts_with(&self, tls_name: Option<String>) -> Opts {
        let tls_name = tls_name.or_else(|| {
            self.address
                .is_some()
                .then(|| self.bare_host().to_owned())
                .filter(|host| host.parse::<IpAddr>().is_err())
        });
        let ssl = ssl_opts(&self.tls).map(|ssl| match tls_name {
            Some(name) => ssl.with_danger_tls_hostname_override(Some(name)),
            None => ssl,
        });
        let builder = OptsBuilder::default()
            .ip_or_hostname(self.dial_host())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose_secret().to_owned()))
            .prefer_socket(false)
            .tcp_nodelay(true)
            .stmt_cache_size(0)
            .setup(self.setup.clone())
            .ssl_opts(ssl);
        Opts::from(builder)
    }
}

/// `verify_ca` checks the certificate's chain and not its name. mysql_async 0.37.1 skips the name
/// check only when rustls's error text says `NotValidForName`, which current rustls words as
/// "certificate not valid for name ...; certificate is only valid for DnsName(\"x\")", so the
/// skip never happens. When that is the only failure, the connection is retried once with the TLS
/// name set to one the certificate carries: the chain is verified again, the name then matches.
fn verify_ca_name(error: &ConnectError, tls: &TlsSpec) -> Option<String> {
    let ConnectError::Tls { detail, .. } = error else {
        return None;
    };
    if tls.mode != TlsMode::VerifyCa {
        return None;
    }
    let valid_for = detail.split("certificate is only valid for").nth(1)?;
    let first = valid_for
        .split([',', ']', ':'])
        .next()?
        .trim()
        .trim_start_matches('[');
    let name = first
        .strip_prefix("DnsName(")
        .or_else(|| first.strip_prefix("IpAddress("))?
        .trim_end_matches(')')
        .trim_matches('"');
    (!name.is_empty()).then(|| name.to_owned())
}

fn ensure_tls_provider() {
    // An error means a provider is installed already, which is all that is needed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn ssl_opts(tls: &TlsSpec) -> Option<SslOpts> {
    if tls.mode != TlsMode::Disabled {
        ensure_tls_provider();
    }
    // With a CA given, trust that CA alone: a certificate from any public root must not pass.
    let verified = || match &tls.ca_pem {
        Some(pem) => SslOpts::default()
            .with_root_certs(vec![pem.as_bytes().to_vec().into()])
            .with_disable_built_in_roots(true),
        None => SslOpts::default(),
    };
    match tls.mode {
        TlsMode::Disabled => None,
        // Encrypted, but neither the chain nor the name is checked (MySQL's --ssl-mode=REQUIRED).
        TlsMode::Required => Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        TlsMode::VerifyCa => Some(verified().with_danger_skip_domain_validation(true)),
        TlsMode::VerifyIdentity => Some(verified()),
    }
}

/// Which server family answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flavor::MariaDb => "MariaDB",
            Flavor::MySql => "MySQL",
        })
    }
}

/// What a connection learned about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub flavor: Flavor,
    /// `major.minor.patch`, e.g. `10.11.19`.
    pub version: String,
    /// `@@version` as the server reports it, e.g. `10.11.19-MariaDB-0+deb12u1`.
    pub version_string: String,
    /// `@@version_comment`, e.g. `Debian 12`.
    pub version_comment: String,
}

impl ServerInfo {
    /// `(major, minor)` of the version.
    pub fn major_minor(&self) -> (u32, u32) {
        let mut parts = self.version.split('.').map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    /// Whether the server runs prepared statements in bulk (`COM_STMT_BULK_EXECUTE`): MariaDB
    /// 10.2 and later. MySQL has no such command.
    pub fn runs_bulk_executions(&self) -> bool {
        self.flavor == Flavor::MariaDb && self.major_minor() >= (10, 2)
    }

    /// Reads the server's facts over an open connection.
    pub async fn read(conn: &mut Conn) -> Result<ServerInfo, mysql_async::Error> {
        let (major, minor, patch) = conn.server_version();
        let row: Option<(String, String)> = conn
            .query_first("SELECT @@version, @@version_comment")
            .await?;
        let (version_string, version_comment) = row.unwrap_or_default();
        let flavor = if version_string.to_ascii_lowercase().contains("mariadb")
            || version_comment.to_ascii_lowercase().contains("mariadb")
        {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        Ok(ServerInfo {
            flavor,
            version: format!("{major}.{minor}.{patch}"),
            version_string,
            version_comment,
        })
    }
}

/// Opens one session within `opts.connect_timeout`, or says precisely why it could not.
pub async fn connect(opts: &ConnectOptions) -> Result<Conn, ConnectError> {
    let endpoint = opts.endpoint();
    let total = opts.connect_timeout;
    let started = Instant::now();
    // Keep a slice of the budget to classify a timeout, so that the whole call stays within it.
    let classify_budget = (total / 5).min(Duration::from_secs(1));
    let attempt = timeout(total - classify_budget, Conn::new(opts.to_mysql_opts())).await;
    match attempt {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(err)) => {
            let error = classify(err, opts, &endpoint);
            if matches!(error, ConnectError::AccessDenied { .. })
                && opts.tls.mode == TlsMode::Disabled
            {
                return Err(explain_denial(error, opts, started + total - classify_budget).await);
            }
            let Some(name) = verify_ca_name(&error, &opts.tls) else {
                return Err(error);
            };
            let retry = timeout_at(
                started + total - classify_budget,
                Conn::new(opts.mysql_opts_with(Some(name))),
            )
            .await;
            match retry {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(err)) => Err(classify(err, opts, &endpoint)),
                Err(_elapsed) => Err(error),
            }
        }
        Err(_elapsed) => {
            let deadline = started + total;
            let tcp = timeout_at(deadline, TcpStream::connect((opts.dial_host(), opts.port))).await;
            Err(match tcp {
                Ok(Ok(_stream)) => ConnectError::NoGreeting {
                    endpoint,
                    timeout: total,
                },
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    ConnectError::Refused { endpoint }
                }
                _ => ConnectError::Unreachable {
                    endpoint,
                    timeout: total,
                },
            })
        }
    }
}

/// MariaDB answers a plain connection that only TLS may make (`require_secure_transport`, or an
/// account that `REQUIRE`s SSL) with the same "access denied" as a wrong password. One attempt
/// over TLS tells the two apart: if it gets in, the fix is TLS, not the password.
async fn explain_denial(
    denied: ConnectError,
    opts: &ConnectOptions,
    deadline: Instant,
) -> ConnectError {
    let mut over_tls = opts.clone();
    over_tls.tls = TlsSpec {
        mode: TlsMode::Required,
        ca_pem: None,
    };
    match timeout_at(deadline, Conn::new(over_tls.to_mysql_opts())).await {
        Ok(Ok(conn)) => {
            let _ = conn.disconnect().await;
            ConnectError::Tls {
                endpoint: opts.endpoint(),
                detail: "the server requires TLS for this user (require_secure_transport or REQUIRE SSL): set tls.mode to \"required\", \"verify_ca\" or \"verify_identity\"".into(),
            }
        }
        _ => denied,
    }
}

/// Connects, reads the server's facts and disconnects: "Test Connectivity".
pub async fn probe(opts: &ConnectOptions) -> Result<ServerInfo, ConnectError> {
    let mut conn = connect(opts).await?;
    let endpoint = opts.endpoint();
    let info = ServerInfo::read(&mut conn)
        .await
        .map_err(|e| classify(e, opts, &endpoint))?;
    // A failed goodbye changes nothing for the caller: the facts were read.
    let _ = conn.disconnect().await;
    Ok(info)
}

fn classify(err: mysql_async::Error, opts: &ConnectOptions, endpoint: &str) -> ConnectError {
    use mysql_async::{DriverError, Error, IoError};
    let endpoint = endpoint.to_owned();
    match err {
        Error::Io(IoError::Io(e)) => match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused { endpoint },
            io::ErrorKind::TimedOut => ConnectError::Unreachable {
                endpoint,
                timeout: opts.connect_timeout,
            },
            // rustls reports certificate failures as I/O errors of the TLS stream.
            _ if is_tls_failure(&e) => ConnectError::Tls {
                endpoint,
                detail: tls_detail(&e.to_string(), opts),
            },
            _ if e.to_string().contains("lookup") => ConnectError::Resolve {
                host: opts.host.clone(),
                detail: e.to_string(),
            },
            _ => ConnectError::Other {
                endpoint,
                detail: e.to_string(),
            },
        },
        Error::Io(IoError::Tls(e)) => ConnectError::Tls {
            endpoint,
            detail: tls_detail(&e.to_string(), opts),
        },
        Error::Driver(DriverError::NoClientSslFlagFromServer) => ConnectError::Tls {
            endpoint,
            detail: "the server does not offer TLS; enable TLS on the server or set tls.mode to \"disabled\"".into(),
        },
        Error::Server(e) if e.code == ER_SECURE_TRANSPORT_REQUIRED => ConnectError::Tls {
            endpoint,
            detail: "the server requires TLS (require_secure_transport): set tls.mode to \"required\", \"verify_ca\" or \"verify_identity\"".into(),
        },
        Error::Server(e) if e.code == ER_ACCESS_DENIED_ERROR => ConnectError::AccessDenied {
            endpoint,
            user: opts.user.clone(),
        },
        Error::Server(e) => ConnectError::Server {
            endpoint,
            detail: format!("ERROR {} ({}): {}", e.code, e.state, e.message),
        },
        other => ConnectError::Other {
            endpoint,
            detail: other.to_string(),
        },
    }
}

fn is_tls_failure(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        || e.to_string().contains("peer certificate")
}

/// Adds the likely fix to rustls's terse certificate errors.
fn tls_detail(raw: &str, opts: &ConnectOptions) -> String {
    let lower = raw.to_ascii_lowercase();
    if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        format!(
            "{raw}: the server's certificate is not issued for host `{}`; connect with the name the certificate carries, or use tls.mode \"verify_ca\"",
            opts.bare_host()
        )
    } else if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
        format!(
            "{raw}: the server's certificate is not signed by the given CA; set tls.ca_pem to the CA that issued it"
        )
    } else {
        raw.to_owned()
    }
}

#[cfg(test)]
mod tests;
