//! TLS to an `https` upstream, spoken by the gateway itself (rustls, ring provider).
//!
//! Cost-control's sandbox has no network: its one way out is the orchestrator's egress bridge, a
//! byte pipe from a unix socket to the upstream's `host:port`. So the TLS session runs *through*
//! the bridge, end to end between cost-control and the provider: the orchestrator never sees the
//! key or the traffic in clear. The server certificate is checked against the public webpki roots
//! compiled into the binary (no CA files needed inside the sandbox) or, when roles.yaml names a
//! `ca_file`, against that private CA only; SNI and the hostname check use the configured host.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// TLS settings of an upstream (the launch file carries them to cost-control).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// `host[:port]` of the `https` base URL: SNI, the certificate's name, the `Host` header.
    pub authority: String,
    /// PEM of a private CA (roles.yaml `ca_file`, read by the orchestrator at run start); the
    /// certificate must chain to it. `None`: the public webpki roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// TLS set-up errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA PEM does not parse.
    #[error("CA certificates (PEM): {0}")]
    Pem(#[source] rustls::pki_types::pem::Error),
    /// The CA PEM holds no certificate.
    #[error("CA certificates (PEM): no CERTIFICATE section")]
    NoCertificate,
    /// A CA certificate is not usable as a trust anchor.
    #[error("CA certificate {index}: {source}")]
    Anchor {
        /// Position in the file, from 0.
        index: usize,
        /// Cause.
        source: rustls::Error,
    },
    /// The host is not a DNS name or IP address.
    #[error("https upstream host `{0}` is not a valid DNS name or IP address")]
    ServerName(String),
    /// The protocol versions could not be set.
    #[error("TLS client configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The certificates in a CA PEM (at least one).
pub fn parse_ca_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// The host part of `host[:port]` (`[v6]:port` included), as TLS names it.
pub fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => h,
        _ => authority,
    }
}

/// A TLS client for one upstream.
#[derive(Clone)]
pub struct TlsUpstream {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    authority: String,
    private_ca: bool,
}

impl std::fmt::Debug for TlsUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsUpstream")
            .field("authority", &self.authority)
            .field("private_ca", &self.private_ca)
            .finish_non_exhaustive()
    }
}

impl TlsUpstream {
    /// The client for `s`: ring provider, TLS 1.2/1.3, ALPN `http/1.1`, roots from `s.ca_pem` or
    /// webpki.
    pub fn new(s: &TlsSettings) -> Result<Self, TlsError> {
        let host = host_of(&s.authority);
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| TlsError::ServerName(host.to_owned()))?;
        let mut roots = RootCertStore::empty();
        match &s.ca_pem {
            Some(pem) => {
                for (index, cert) in parse_ca_pem(pem)?.into_iter().enumerate() {
                    roots
                        .add(cert)
                        .map_err(|source| TlsError::Anchor { index, source })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            authority: s.authority.clone(),
            private_ca: s.ca_pem.is_some(),
        })
    }

    /// `host[:port]` as configured (the `Host` header).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Where trust comes from, for messages.
    pub fn trust(&self) -> &'static str {
        if self.private_ca {
            "the private CA of gateway.upstream.ca_file"
        } else {
            "the public webpki roots (set gateway.upstream.ca_file for a private CA)"
        }
    }

    /// Handshake over `stream` (TCP, or the egress bridge's unix socket).
    pub async fn connect<S>(&self, stream: S) -> std::io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.connector
            .connect(self.server_name.clone(), stream)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_out_of_authorities() {
        assert_eq!(host_of("api.openai.com"), "api.openai.com");
        assert_eq!(host_of("api.openai.com:443"), "api.openai.com");
        assert_eq!(host_of("127.0.0.1:8443"), "127.0.0.1");
        assert_eq!(host_of("[::1]:8443"), "::1");
        assert_eq!(host_of("[::1]"), "::1");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        assert!(matches!(
            parse_ca_pem("not a pem\n"),
            Err(TlsError::NoCertificate)
        ));
        assert!(matches!(
            parse_ca_pem("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            Err(TlsError::Pem(_))
        ));
        assert!(matches!(
            TlsUpstream::new(&TlsSettings {
                authority: "bad host:443".into(),
                ca_pem: None
            }),
            Err(TlsError::ServerName(_))
        ));
    }
}
