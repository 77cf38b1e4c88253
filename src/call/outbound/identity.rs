//! Who a request the engine sends says it is from (issue 17): the trunk it goes through
//! (named, or the first with a proxy for numbers), its `from_user` (else the flow's source)
//! and `from_domain` (else the proxy's host) in From; with `anonymous`, From is
//! `"Anonymous" <sip:anonymous@anonymous.invalid>` and the real identity travels in
//! P-Asserted-Identity with `Privacy: id` (RFC 3325 §9.1, RFC 3323 §4.2); the caller's
//! Diversion headers (RFC 5806) follow the leg. Pure.

use std::net::IpAddr;
use std::sync::Arc;

use super::target::Target;
use crate::call::trunk::{Trunk, TrunkCredentials};

/// From of an anonymous request (RFC 3323 §4.1.1.3, RFC 3325 §9.1).
pub(crate) const ANONYMOUS_FROM: &str = "\"Anonymous\" <sip:anonymous@anonymous.invalid>";

/// What a request through a trunk carries about its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// From, without its tag.
    pub(crate) from: String,
    /// P-Asserted-Identity, Privacy, Diversion, in that order.
    pub(crate) headers: Vec<(String, String)>,
    /// The trunk's digest credentials, for its challenges.
    pub(crate) credentials: Option<Arc<TrunkCredentials>>,
}

/// The trunk a request to `target` goes through: the one named, or for a number the first
/// with an outbound proxy (as `route` picks it); a `sip:` URI with no trunk named goes
/// directly, through none.
pub(crate) fn trunk_for<'a>(
    target: &Target,
    name: Option<&str>,
    trunks: &'a [Trunk],
) -> Option<&'a Trunk> {
    match (name, target) {
        // A phone is reached directly, never through a trunk (`route` does the same).
        (_, Target::Registered { .. }) => None,
        (Some(name), _) => trunks.iter().find(|t| t.name == name),
        (None, Target::Tel(_)) => trunks.iter().find(|t| t.outbound_proxy.is_some()),
        (None, Target::Sip(_)) => None,
    }
}

/// The URI user made of a flow's source: only URI-safe characters kept (`activeflow` when
/// none is left).
fn user_of(source: &str) -> String {
    let user: String = source
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+-_.*".contains(*c))
        .collect();
    if user.is_empty() {
        "activeflow".to_string()
    } else {
        user
    }
}

/// The identity of a request from `source` through `trunk` (our address when none).
pub(crate) fn identity(
    trunk: Option<&Trunk>,
    source: &str,
    anonymous: bool,
    diversion: &[String],
    public_ip: IpAddr,
) -> Identity {
    let user = trunk
        .and_then(|t| t.account.from_user.clone())
        .unwrap_or_else(|| user_of(source));
    let host = trunk
        .and_then(Trunk::from_host)
        .unwrap_or_else(|| crate::sip::dialog::host(public_ip));
    let real = format!("<sip:{user}@{host}>");
    let mut headers = Vec::new();
    let from = if anonymous {
        headers.push(("P-Asserted-Identity".to_string(), real));
        headers.push(("Privacy".to_string(), "id".to_string()));
        ANONYMOUS_FROM.to_string()
    } else {
        real
    };
    headers.extend(
        diversion
            .iter()
            .map(|d| ("Diversion".to_string(), d.clone())),
    );
    Identity {
        from,
        headers,
        credentials: trunk.and_then(|t| t.account.credentials.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::trunk::TrunkAccount;
    use crate::sip::resolve::ProxyAddress;

    fn carrier(account: TrunkAccount) -> Trunk {
        Trunk {
            name: "carrier".into(),
            allow: Vec::new(),
            outbound_proxy: Some(ProxyAddress::parse("10.0.0.9:5070").unwrap()),
            transport: None,
            tls_ca: None,
            account,
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    /// From is the trunk's `from_user`@`from_domain`, defaulting to the flow's source and the
    /// proxy's host; without a trunk, our own address.
    #[test]
    fn from_follows_the_trunk() {
        let plain = carrier(TrunkAccount::default());
        assert_eq!(
            identity(Some(&plain), "+1555 0100", false, &[], IP).from,
            "<sip:+15550100@10.0.0.9>"
        );
        let named = carrier(TrunkAccount {
            from_user: Some("4420".into()),
            from_domain: Some("sip.carrier.example".into()),
            ..TrunkAccount::default()
        });
        let id = identity(Some(&named), "+15550100", false, &[], IP);
        assert_eq!(id.from, "<sip:4420@sip.carrier.example>");
        assert!(id.headers.is_empty());
        let by_name = Trunk {
            outbound_proxy: Some(ProxyAddress::parse("sbc.example.com:5061").unwrap()),
            ..carrier(TrunkAccount::default())
        };
        assert_eq!(
            identity(Some(&by_name), "100", false, &[], IP).from,
            "<sip:100@sbc.example.com>"
        );
        assert_eq!(
            identity(None, "", false, &[], IP).from,
            "<sip:activeflow@192.0.2.1>"
        );
    }

    /// RFC 3325 §9.1 / RFC 3323: anonymous hides From, asserts the real identity, asks for
    /// `Privacy: id`; RFC 5806: Diversion values are copied in order.
    #[test]
    fn anonymous_and_diversion_headers() {
        let t = carrier(TrunkAccount::default());
        let div = vec![
            "<sip:100@a>;reason=busy".to_string(),
            "<sip:200@b>".to_string(),
        ];
        let id = identity(Some(&t), "+15550100", true, &div, IP);
        assert_eq!(id.from, ANONYMOUS_FROM);
        assert_eq!(
            id.headers,
            vec![
                (
                    "P-Asserted-Identity".to_string(),
                    "<sip:+15550100@10.0.0.9>".to_string()
                ),
                ("Privacy".to_string(), "id".to_string()),
                ("Diversion".to_string(), div[0].clone()),
                ("Diversion".to_string(), div[1].clone()),
            ]
        );
    }

    #[test]
    fn the_trunk_is_the_named_one_or_the_first_with_a_proxy_for_numbers() {
        let trunks = vec![
            Trunk {
                name: "acl".into(),
                allow: Vec::new(),
                outbound_proxy: None,
                transport: None,
                tls_ca: None,
                account: TrunkAccount::default(),
            },
            carrier(TrunkAccount::default()),
        ];
        let tel = Target::Tel("1".into());
        let sip = Target::Sip("sip:b@h".into());
        assert_eq!(trunk_for(&tel, None, &trunks).unwrap().name, "carrier");
        assert_eq!(trunk_for(&sip, Some("acl"), &trunks).unwrap().name, "acl");
        assert!(trunk_for(&sip, None, &trunks).is_none());
    }
}
