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
