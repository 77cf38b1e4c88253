//! RFC 3263 §4.1/§4.2 and RFC 2782 selection rules, without DNS.

use super::*;

fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        port: 5060,
        target: target.into(),
    }
}

fn naptr(order: u16, preference: u16, flags: &str, services: &str, to: &str) -> NaptrRecord {
    NaptrRecord {
        order,
        preference,
        flags: flags.into(),
        services: services.into(),
        replacement: to.into(),
    }
}

/// A small deterministic xorshift so the distribution test is repeatable.
fn rng(seed: u64) -> impl FnMut(u32) -> u32 {
    let mut x = seed;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % (u64::from(n) + 1)) as u32
    }
}

/// RFC 3263 §4.2: a numeric IP is used as is; an explicit port skips NAPTR and SRV; a known
/// transport skips NAPTR (§4.1); otherwise NAPTR first.
#[test]
fn the_plan_follows_what_the_address_says() {
    let p = |s: &str, t| plan(&ProxyAddress::parse(s).unwrap(), t);
    assert_eq!(
        p("10.0.0.9", None),
        Plan::Literal(ResolvedTarget {
            addr: "10.0.0.9:5060".parse().unwrap(),
            transport: Transport::Udp
        })
    );
    assert_eq!(
        p("[::1]:5099", Some(Transport::Tcp)),
        Plan::Literal(ResolvedTarget {
            addr: "[::1]:5099".parse().unwrap(),
            transport: Transport::Tcp
        })
    );
    assert_eq!(
        p("[::1]", Some(Transport::Tls)),
        Plan::Literal(ResolvedTarget {
            addr: "[::1]:5061".parse().unwrap(),
            transport: Transport::Tls
        })
    );
    assert_eq!(
        p("pbx.example.com:5070", None),
        Plan::Address {
            name: "pbx.example.com".into(),
            port: 5070,
            transport: Transport::Udp
        }
    );
    assert_eq!(
        p("pbx.example.com", Some(Transport::Tcp)),
        Plan::Srv {
            name: "pbx.example.com".into(),
            transport: Transport::Tcp
        }
    );
    assert_eq!(
        p("pbx.example.com", None),
        Plan::Naptr {
            name: "pbx.example.com".into()
        }
    );
}

/// RFC 3263 §4.1: only `S`-flagged records for SIP transports we support count, sorted by
/// order then preference; ENUM (`E2U+sip`) and SCTP records are discarded, and a client that
/// supports TLS keeps `SIPS+D2T` for a `sip:` URI ("SHOULD retain").
#[test]
fn naptr_keeps_supported_sip_transports_in_order() {
    let records = vec![
        naptr(50, 10, "s", "SIP+D2U", "_sip._udp.example.com."),
        naptr(10, 10, "s", "SIPS+D2T", "_sips._tcp.example.com."),
        naptr(10, 20, "S", "sip+d2t", "_sip._tcp.example.com."),
        naptr(10, 5, "s", "SIP+D2S", "_sip._sctp.example.com."),
        naptr(5, 5, "u", "E2U+sip", ""),
        naptr(5, 5, "a", "SIP+D2U", "a.example.com."),
    ];
    assert_eq!(
        naptr_choices(&records, SUPPORTED_TRANSPORTS),
        vec![
            (Transport::Tls, "_sips._tcp.example.com".to_string()),
            (Transport::Tcp, "_sip._tcp.example.com".to_string()),
            (Transport::Udp, "_sip._udp.example.com".to_string()),
        ]
    );
    let without_tls = [Transport::Udp, Transport::Tcp];
    assert_eq!(
        naptr_choices(&records, &without_tls),
        vec![
            (Transport::Tcp, "_sip._tcp.example.com".to_string()),
            (Transport::Udp, "_sip._udp.example.com".to_string()),
        ]
    );
    assert!(naptr_choices(&records[3..], SUPPORTED_TRANSPORTS).is_empty());
}

/// RFC 2782: lower priority always first, whatever the random draws; `.` means no service.
#[test]
fn srv_priority_comes_before_weight() {
    let records = vec![
        srv(20, 100, "b.example.com"),
        srv(10, 0, "a.example.com"),
        srv(30, 5, "."),
        srv(20, 0, "c.example.com"),
    ];
    for seed in 1..50 {
        let ordered = order_srv(&records, &mut rng(seed));
        let targets: Vec<_> = ordered.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets.len(), 3);
        assert_eq!(targets[0], "a.example.com");
        assert!(targets[1..].contains(&"b.example.com"));
        assert!(targets[1..].contains(&"c.example.com"));
    }
}

/// RFC 2782: within one priority a record is picked first with probability weight / sum, and
/// a zero-weight record only rarely (when the draw is 0).
#[test]
fn srv_weight_distributes_first_picks() {
    let records = vec![
        srv(10, 60, "a"),
        srv(10, 30, "b"),
        srv(10, 10, "c"),
        srv(10, 0, "z"),
    ];
    let mut random = rng(0x9e37_79b9_7f4a_7c15);
    let mut first = std::collections::HashMap::new();
    let runs = 20_000;
    for _ in 0..runs {
        let ordered = order_srv(&records, &mut random);
        assert_eq!(ordered.len(), 4);
        *first.entry(ordered[0].target.clone()).or_insert(0u32) += 1;
    }
    let share = |t: &str| f64::from(*first.get(t).unwrap_or(&0)) / f64::from(runs);
    assert!((share("a") - 0.60).abs() < 0.02, "a {}", share("a"));
    assert!((share("b") - 0.30).abs() < 0.02, "b {}", share("b"));
    assert!((share("c") - 0.10).abs() < 0.02, "c {}", share("c"));
    assert!(share("z") < 0.02, "z {}", share("z"));
}
