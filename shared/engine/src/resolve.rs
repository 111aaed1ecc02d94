//! The system's resolver as a [`HostResolver`]: `getaddrinfo` (tokio's `lookup_host`), which
//! reads `/etc/hosts` and the configured DNS servers as every other program on the machine does.

use std::net::IpAddr;

use async_trait::async_trait;
use tidemark_core::ports::{HostResolver, ResolveError};

/// Resolves through the operating system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl HostResolver for SystemResolver {
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let error = |detail: String| ResolveError {
            host: host.to_owned(),
            detail,
        };
        let answers = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| error(e.to_string()))?;
        let mut addresses: Vec<IpAddr> = Vec::new();
        // One line per socket type in the answer: each address once, in the resolver's order.
        for answer in answers {
            if !addresses.contains(&answer.ip()) {
                addresses.push(answer.ip());
            }
        }
        if addresses.is_empty() {
            return Err(error("the name has no address".into()));
        }
        Ok(addresses)
    }
}
