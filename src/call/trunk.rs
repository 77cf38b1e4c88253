//! A trunk as the call layer uses it: its name, the source networks it takes requests from
//! (the ACL every request passes) and the outbound proxy legs and messages go through, with
//! the transport configured for it (`None`: RFC 3263 NAPTR picks one).

use crate::net::Cidr;
use crate::sip::resolve::{ProxyAddress, Transport};

/// A trunk with its parsed ACL (`[[trunks]]`, validated by the config).
#[derive(Debug, Clone)]
pub struct Trunk {
    pub name: String,
    pub allow: Vec<Cidr>,
    pub outbound_proxy: Option<ProxyAddress>,
    pub transport: Option<Transport>,
}
