//! The client address that rate limits count against. Forwarding headers are believed
//! only from the reverse proxies named in `TRUSTED_PROXIES`; anyone else could forge them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::Request;
use tower_governor::GovernorError;
use tower_governor::key_extractor::KeyExtractor;

#[derive(Clone, Debug, Default)]
pub struct ClientIp {
    trusted_proxies: Arc<[IpAddr]>,
}

impl ClientIp {
    pub fn new(trusted_proxies: &[IpAddr]) -> Self {
        Self {
            trusted_proxies: trusted_proxies.into(),
        }
    }

    /// The peer, or when the peer is a trusted proxy, the nearest untrusted address in
    /// `X-Forwarded-For` (read right to left, as each proxy appends).
    pub fn resolve(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        forwarded_for
            .into_iter()
            .flat_map(|h| h.rsplit(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .find(|ip| !self.trusted_proxies.contains(ip))
            .unwrap_or(peer)
    }
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or(GovernorError::UnableToExtractKey)?;
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        Ok(self.resolve(peer, forwarded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let none = ClientIp::default();
        assert_eq!(
            none.resolve(ip("203.0.113.9"), Some("1.2.3.4")),
            ip("203.0.113.9")
        );

        let proxied = ClientIp::new(&[ip("10.0.0.2"), ip("10.0.0.3")]);
        assert_eq!(
            proxied.resolve(ip("10.0.0.2"), Some("198.51.100.7")),
            ip("198.51.100.7")
        );
        // A client forging a leading entry does not escape its own address.
        assert_eq!(
            proxied.resolve(ip("10.0.0.2"), Some("1.1.1.1, 198.51.100.7, 10.0.0.3")),
            ip("198.51.100.7")
        );
        assert_eq!(proxied.resolve(ip("10.0.0.2"), None), ip("10.0.0.2"));
        assert_eq!(
            proxied.resolve(ip("10.0.0.2"), Some("garbage")),
            ip("10.0.0.2")
        );
    }
}
