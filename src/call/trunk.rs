//! A trunk as the call layer uses it: its name, the source networks it takes requests from
//! (the ACL every request passes) and the outbound proxy legs and messages go through, with
//! the transport configured for it (`None`: RFC 3263 NAPTR picks one) and, over TLS, whom to
//! trust.

use crate::net::Cidr;
use crate::sip::resolve::{ProxyAddress, Transport};
use crate::sip::transport::TlsClient;

/// A trunk with its parsed ACL (`[[trunks]]`, validated by the config).
#[derive(Debug, Clone)]
pub struct Trunk {
    pub name: String,
    pub allow: Vec<Cidr>,
    pub outbound_proxy: Option<ProxyAddress>,
    pub transport: Option<Transport>,
    /// Over TLS, the only CA the proxy's certificate may chain to (`trunks[].tls_ca`); `None`
    /// trusts the system roots.
    pub tls_ca: Option<TlsClient>,
}
