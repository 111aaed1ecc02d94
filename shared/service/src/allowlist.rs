//! The endpoint allowlist: with one, the service connects only to the hosts and networks listed,
//! so the API cannot be used to probe a network. Checked before any connection (create, patch,
//! test connection, precheck, run).
//!
//! An IP literal is allowed when a listed network (CIDR, or a single address) contains it. A host
//! name is allowed only when it is listed by name: resolving it here and connecting later would
//! let a name that changes its answer in between (DNS rebinding) slip through.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::ServiceError;

#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    /// `None`: every host is allowed (no list was given).
    rules: Option<Rules>,
}

#[derive(Debug, Clone)]
struct Rules {
    nets: Vec<IpNet>,
    names: Vec<String>,
}

impl Allowlist {
    /// No list: every host is allowed.
    pub fn allow_all() -> Allowlist {
        Allowlist { rules: None }
    }

    /// Parses `127.0.0.1/32,::1,10.0.0.0/8,db.internal` (commas or whitespace between entries).
    pub fn parse(list: &str) -> Result<Allowlist, String> {
        let mut nets = Vec::new();
        let mut names = Vec::new();
        for entry in list.split([',', ' ', '\n', '\t']).filter(|e| !e.is_empty()) {
            let bare = entry.trim_start_matches('[').trim_end_matches(']');
            if let Ok(net) = bare.parse::<IpNet>() {
                nets.push(net.trunc());
            } else if let Ok(ip) = bare.parse::<IpAddr>() {
                nets.push(IpNet::from(ip));
            } else if is_host_name(bare) {
                names.push(bare.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "`{entry}` is neither an IP address, a CIDR network (10.0.0.0/8) nor a host name"
                ));
            }
        }
        if nets.is_empty() && names.is_empty() {
            return Err("the allowlist is empty: give at least one host or CIDR".into());
        }
        Ok(Allowlist {
            rules: Some(Rules { nets, names }),
        })
    }

    /// Whether a list is in force.
    pub fn is_restricted(&self) -> bool {
        self.rules.is_some()
    }

    /// `Ok` when `host` may be connected to; otherwise a 422 naming the host and `field`.
    pub fn check(&self, field: &str, host: &str) -> Result<(), ServiceError> {
        let Some(rules) = &self.rules else {
            return Ok(());
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let allowed = match bare.parse::<IpAddr>() {
            Ok(ip) => rules.nets.iter().any(|net| net.contains(&canonical(ip))),
            Err(_) => rules.names.iter().any(|n| n.eq_ignore_ascii_case(bare)),
        };
        if allowed {
            Ok(())
        } else {
            Err(ServiceError::HostNotAllowed {
                field: field.to_owned(),
                host: host.to_owned(),
            })
        }
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
mod tests {
    use super::*;

    #[test]
    fn allows_listed_networks_and_names_only() {
        let list = Allowlist::parse("127.0.0.1/32, ::1 10.1.0.0/16,db.internal").expect("parse");
        for ok in [
            "127.0.0.1",
            "::1",
            "[::1]",
            "10.1.200.3",
            "DB.internal",
            "::ffff:127.0.0.1",
        ] {
            assert!(list.check("source.host", ok).is_ok(), "{ok}");
        }
        for refused in [
            "127.0.0.2",
            "10.2.0.1",
            "localhost",
            "db.internal.evil",
            "::2",
        ] {
            match list.check("destination.host", refused) {
                Err(ServiceError::HostNotAllowed { field, host }) => {
                    assert_eq!(field, "destination.host");
                    assert_eq!(host, refused);
                }
                other => panic!("{refused}: {other:?}"),
            }
        }
        assert!(
            Allowlist::allow_all()
                .check("source.host", "192.0.2.1")
                .is_ok()
        );
    }

    #[test]
    fn refuses_a_malformed_list() {
        assert!(Allowlist::parse("").is_err());
        assert!(Allowlist::parse("10.0.0.0/33").is_err());
        assert!(Allowlist::parse("bad_name!").is_err());
    }
}
