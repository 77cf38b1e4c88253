//! Validation of SIP over TLS: `sip.tls_listen` with its key pair (loaded now, so a bad file
//! stops the start naming its key), and each trunk's `tls_ca`.

use std::net::SocketAddr;

use super::{invalid, parse_addr, tls_files, ConfigError, SipConfig, TrunkConfig};
use crate::sip::resolve::Transport;
use crate::sip::transport::TlsClient;
use crate::tls::TlsConfig;

/// `sip.tls_listen` + `sip.tls_cert` + `sip.tls_key`: all three or none.
pub(super) fn sip_tls(sip: &SipConfig) -> Result<Option<(SocketAddr, TlsConfig)>, ConfigError> {
    if sip.tls_listen.is_empty() {
        if !sip.tls_cert.is_empty() || !sip.tls_key.is_empty() {
            return Err(invalid(
                "sip.tls_listen",
                "required with sip.tls_cert and sip.tls_key (the address to serve SIP over TLS on)",
            ));
        }
        return Ok(None);
    }
    let listen = parse_addr("sip.tls_listen", &sip.tls_listen)?;
    match tls_files("sip", &sip.tls_cert, &sip.tls_key)? {
        Some(config) => Ok(Some((listen, config))),
        None => Err(invalid(
            "sip.tls_cert",
            "sip.tls_cert and sip.tls_key are required with sip.tls_listen",
        )),
    }
}

/// A trunk's `tls_ca`: a PEM CA file, only with `transport = "tls"`.
pub(super) fn tls_ca(
    i: usize,
    t: &TrunkConfig,
    transport: Option<Transport>,
) -> Result<Option<TlsClient>, ConfigError> {
    if t.tls_ca.is_empty() {
        return Ok(None);
    }
    if transport != Some(Transport::Tls) {
        return Err(invalid(
            format!("trunks[{i}].tls_ca"),
            "only with transport = \"tls\"",
        ));
    }
    TlsClient::from_ca_file(t.tls_ca.as_ref())
        .map(Some)
        .map_err(|e| invalid(format!("trunks[{i}].tls_ca"), e.to_string()))
}

/// A trunk registering over TLS binds a `;transport=tls` Contact naming our TLS listener's port
/// (`call/registration/client.rs`, `Env::sent_by_over`). Without `sip.tls_listen` that port is
/// the plain SIP one, where nothing speaks TLS: every call the carrier sends to the binding
/// would fail, so the trunk is refused.
pub(super) fn register_over_tls(
    i: usize,
    t: &TrunkConfig,
    transport: Option<Transport>,
    sip: &SipConfig,
) -> Result<(), ConfigError> {
    if t.register && transport == Some(Transport::Tls) && sip.tls_listen.is_empty() {
        return Err(invalid(
            format!("trunks[{i}].register"),
            "with transport = \"tls\" needs sip.tls_listen (with sip.tls_cert and sip.tls_key): \
             the registered Contact names the SIP/TLS listener's port",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, DEFAULT_TOML};

    fn with_trunk(trunk: &str) -> Result<(), ConfigError> {
        let text = format!(
            "{DEFAULT_TOML}\n[[trunks]]\nname = \"c\"\noutbound_proxy = \"sbc.example\"\n\
             username = \"u\"\npassword = \"p\"\nrealm = \"r\"\n{trunk}\n"
        );
        Config::from_toml_with_env(&text, Vec::<(String, String)>::new())?
            .validate()
            .map(drop)
    }

    /// Only a TLS trunk that registers needs the TLS listener; others are taken as before.
    #[test]
    fn registering_over_tls_needs_the_tls_listener() {
        let e = with_trunk("transport = \"tls\"\nregister = true")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config key trunks[1].register: ") && e.contains("sip.tls_listen"),
            "{e}"
        );
        for fine in [
            "transport = \"tls\"",
            "transport = \"tcp\"\nregister = true",
            "transport = \"udp\"\nregister = true",
            "register = true",
        ] {
            with_trunk(fine).unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
    }
}
