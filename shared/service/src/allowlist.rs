//! The endpoint allowlist: with one, the service connects only to the hosts and networks listed,
//! so the API cannot be used to probe a network. Checked before any connection (create, patch,
//! test connection, precheck, run).
//!
//! A rule is a network (`10.0.0.0/16`, or one address), an exact host name (`db.internal`) or a
//! domain suffix (`*.abc123xyz.us-east-1.rds.amazonaws.com`: any name ending in
//! `.abc123xyz.us-east-1.rds.amazonaws.com`, at any depth, not the bare domain); `*` alone allows
//! any host. A host is allowed when:
//!
//! - it is an IP address inside a listed network; or
//! - it is a name that a listed name or suffix matches; or
//! - it is a name and every address it resolves to is inside a listed network.
//!
//! A name is resolved through a [`HostResolver`] once per connection, and the connection goes to
//! the first address of that answer (all of which were checked), never resolving the name again:
//! a name whose answer changes in between (DNS rebinding) cannot send it elsewhere. With
//! `verify_identity` the server's certificate is still checked against the name.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use tidemark_core::ports::{HostResolver, ResolveError};
use tidemark_engine::{ConnectError, SystemResolver};

use crate::error::ServiceError;

#[derive(Clone)]
pub struct Allowlist {
    /// `None`: every host is allowed (no list was given, or `*`).
    rules: Option<Rules>,
    resolver: Arc<dyn HostResolver>,
}

impl fmt::Debug for Allowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allowlist")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Default for Allowlist {
    fn default() -> Self {
        Allowlist::allow_all()
    }
}

#[derive(Debug, Clone)]
struct Rules {
    nets: Vec<IpNet>,
    /// Exact names, lowercase.
    names: Vec<String>,
    /// Suffixes with their leading dot (`.abc123xyz.us-east-1.rds.amazonaws.com`), lowercase.
    suffixes: Vec<String>,
}

/// Why a host is not allowed, or could not be checked.
enum Refusal {
    NotAllowed(String),
    Unresolved(ResolveError),
}

impl Allowlist {
    /// No list: every host is allowed.
    pub fn allow_all() -> Allowlist {
        Allowlist {
            rules: None,
            resolver: Arc::new(SystemResolver),
        }
    }

    /// Parses `127.0.0.1/32,::1,10.0.0.0/8,db.internal,*.abc123xyz.us-east-1.rds.amazonaws.com`
    /// (commas or whitespace between entries), or `*` alone for any host. Names are resolved by
    /// the system's resolver unless [`Allowlist::with_resolver`] says otherwise.
    pub fn parse(list: &str) -> Result<Allowlist, String> {
        let entries: Vec<&str> = list
            .split([',', ' ', '\n', '\t'])
            .filter(|e| !e.is_empty())
            .collect();
        if entries.contains(&"*") {
            if entries.len() > 1 {
                return Err(
                    "`*` allows any host and stands alone; remove it, or the other entries".into(),
                );
            }
            return Ok(Allowlist::allow_all());
        }
        let mut rules = Rules {
            nets: Vec::new(),
            names: Vec::new(),
            suffixes: Vec::new(),
        };
        for entry in entries {
            let bare = entry.trim_start_matches('[').trim_end_matches(']');
            if let Ok(net) = bare.parse::<IpNet>() {
                rules.nets.push(net.trunc());
            } else if let Ok(ip) = bare.parse::<IpAddr>() {
                rules.nets.push(IpNet::from(canonical(ip)));
            } else if let Some(domain) = bare.strip_prefix("*.")
                && is_host_name(domain)
                && domain.contains('.')
            {
                rules
                    .suffixes
                    .push(format!(".{}", domain.to_ascii_lowercase()));
            } else if is_host_name(bare) {
                rules.names.push(bare.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "`{entry}` is neither an IP address, a CIDR network (10.0.0.0/8), a host \
                     name nor a domain suffix (*.abc123xyz.us-east-1.rds.amazonaws.com, at least \
                     two labels after `*.`)"
                ));
            }
        }
        if rules.nets.is_empty() && rules.names.is_empty() && rules.suffixes.is_empty() {
            return Err("the allowlist is empty: give at least one host or CIDR, or `*`".into());
        }
        Ok(Allowlist {
            rules: Some(rules),
            resolver: Arc::new(SystemResolver),
        })
    }

    /// The same list, resolving names through `resolver`.
    pub fn with_resolver(self, resolver: Arc<dyn HostResolver>) -> Allowlist {
        Allowlist { resolver, ..self }
    }

    /// Whether a list is in force.
    pub fn is_restricted(&self) -> bool {
        self.rules.is_some()
    }

    /// `Ok` when `host` may be connected to; otherwise a 422 naming `field` and the host. A name
    /// that a listed name or suffix matches is not resolved here; any other name is, and must
    /// resolve into the listed networks (the connection itself resolves it again and checks that
    /// answer: see [`Allowlist::reach`]).
    pub async fn check(&self, field: &str, host: &str) -> Result<(), ServiceError> {
        match self.admit(host, false).await {
            Ok(_) => Ok(()),
            Err(Refusal::NotAllowed(reason)) => Err(not_allowed(field, host, reason)),
            Err(Refusal::Unresolved(e)) => Err(not_allowed(
                field,
                host,
                format!(
                    "no listed name matches it, and its addresses could not be checked: {}",
                    e.detail
                ),
            )),
        }
    }

    /// Where a connection to `host` (the endpoint `role`'s) goes: `None` to connect as given (no
    /// list, or an IP address that is allowed), else the first address of the one answer the
    /// name resolved to now, every address of which the list allows. A host outside the list is
    /// a 422 naming `<role>.host`; a name that does not resolve, a connect error of `role`.
    pub async fn reach(
        &self,
        role: &'static str,
        host: &str,
    ) -> Result<Option<IpAddr>, ServiceError> {
        match self.admit(host, true).await {
            Ok(address) => Ok(address),
            Err(Refusal::NotAllowed(reason)) => {
                Err(not_allowed(&format!("{role}.host"), host, reason))
            }
            Err(Refusal::Unresolved(e)) => Err(ServiceError::Connect {
                role,
                source: ConnectError::Resolve {
                    host: e.host,
                    detail: e.detail,
                },
            }),
        }
    }

    /// Decides on `host`; with `pin`, resolves a name even when a name rule allows it, and
    /// returns the address to connect to.
    async fn admit(&self, host: &str, pin: bool) -> Result<Option<IpAddr>, Refusal> {
        let Some(rules) = &self.rules else {
            return Ok(None);
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return if rules.holds(ip) {
                Ok(None)
            } else {
                Err(Refusal::NotAllowed(
                    "no listed network holds this address".into(),
                ))
            };
        }
        let by_name = rules.names_match(bare);
        if by_name && !pin {
            return Ok(None);
        }
        if !by_name && rules.nets.is_empty() {
            return Err(Refusal::NotAllowed(
                "no listed name or domain suffix matches it".into(),
            ));
        }
        let addresses = self
            .resolver
            .resolve(bare)
            .await
            .map_err(Refusal::Unresolved)?;
        if !by_name && let Some(outside) = addresses.iter().find(|ip| !rules.holds(**ip)) {
            // The address goes to the operator's log, not to the caller: the answer would tell
            // an API caller what an internal name resolves to.
            tracing::warn!(host = bare, address = %outside, "a host resolves outside the allowed networks");
            return Err(Refusal::NotAllowed(
                "it resolves to an address that no listed network holds (every address a name \
                 resolves to must be allowed)"
                    .into(),
            ));
        }
        match addresses.first() {
            Some(first) => Ok(Some(canonical(*first))),
            None => Err(Refusal::Unresolved(ResolveError {
                host: bare.to_owned(),
                detail: "the name has no address".into(),
            })),
        }
    }
}

impl Rules {
    fn holds(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    fn names_match(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.names.contains(&name) || self.suffixes.iter().any(|s| name.ends_with(s.as_str()))
    }
}

fn not_allowed(field: &str, host: &str, reason: String) -> ServiceError {
    ServiceError::HostNotAllowed {
        field: field.to_owned(),
        host: host.to_owned(),
        reason,
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is the IPv4 address it maps.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests;
