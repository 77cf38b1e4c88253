//! A trunk as the call layer uses it: its name, the source networks it takes requests from
//! (the ACL every request passes) and the outbound proxy legs and messages go through.

use std::net::SocketAddr;

use crate::net::Cidr;

/// A trunk with its parsed ACL (`[[trunks]]`, validated by the config).
#[derive(Debug, Clone)]
pub struct Trunk {
    pub name: String,
    pub allow: Vec<Cidr>,
    pub outbound_proxy: Option<SocketAddr>,
}
