//! The connection to the upstream provider: parse the configured base URL, open one HTTP/1.1
//! connection per request (TCP or unix socket) and send the request on it. The connection task
//! lives until the response body has been read, so streams pass through unbuffered.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// Upstream errors. They name the address, never the key.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The base URL is neither `http://` nor `unix:`.
    #[error("upstream base_url `{0}`: expected http://host:port[/prefix] or unix:/path[:/prefix] (https: put a TLS-terminating forwarder on loopback)")]
    Scheme(String),
    /// Connecting failed.
    #[error("connect to upstream {addr}: {source}")]
    Connect {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("exchange with upstream {addr}: {source}")]
    Http {
        /// Address.
        addr: String,
        /// Cause.
        source: hyper::Error,
    },
}

/// Where the upstream listens, and the path prefix that replaces the incoming `/v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddr {
    /// `host:port` over TCP.
    Tcp {
        /// `host:port`.
        authority: String,
        /// Path prefix, e.g. `/v1`.
        prefix: String,
    },
    /// A unix socket.
    Unix {
        /// Socket path.
        path: PathBuf,
        /// Path prefix.
        prefix: String,
    },
}

impl UpstreamAddr {
    /// Parse a configured base URL.
    pub fn parse(base_url: &str) -> Result<Self, UpstreamError> {
        if let Some(rest) = base_url.strip_prefix("http://") {
            let (authority, prefix) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            if authority.is_empty() {
                return Err(UpstreamError::Scheme(base_url.to_owned()));
            }
            Ok(Self::Tcp {
                authority: authority.to_owned(),
                prefix: prefix.trim_end_matches('/').to_owned(),
            })
        } else if let Some(rest) = base_url.strip_prefix("unix:") {
            let (path, prefix) = match rest.find(":/") {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, ""),
            };
            Ok(Self::Unix {
                path: PathBuf::from(path),
                prefix: prefix.trim_end_matches('/').to_owned(),
            })
        } else {
            Err(UpstreamError::Scheme(base_url.to_owned()))
        }
    }

    /// The upstream path for an incoming path (`/v1/x` or `/x` → prefix + `/x`).
    pub fn map_path(&self, incoming: &str) -> String {
        let suffix = incoming
            .strip_prefix("/v1")
            .filter(|s| s.is_empty() || s.starts_with('/'))
            .unwrap_or(incoming);
        let prefix = match self {
            Self::Tcp { prefix, .. } | Self::Unix { prefix, .. } => prefix,
        };
        format!("{prefix}{suffix}")
    }

    /// The `Host` header value.
    pub fn host(&self) -> &str {
        match self {
            Self::Tcp { authority, .. } => authority,
            Self::Unix { .. } => "localhost",
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Tcp { authority, .. } => authority.clone(),
            Self::Unix { path, .. } => path.display().to_string(),
        }
    }

    /// Send `req` on a fresh connection.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let addr = self.describe();
        let connect = |source| UpstreamError::Connect {
            addr: addr.clone(),
            source,
        };
        match self {
            Self::Tcp { authority, .. } => {
                let s = TcpStream::connect(authority.as_str())
                    .await
                    .map_err(connect)?;
                let _ = s.set_nodelay(true);
                exchange(s, req, &addr).await
            }
            Self::Unix { path, .. } => {
                let s = UnixStream::connect(path).await.map_err(connect)?;
                exchange(s, req, &addr).await
            }
        }
    }
}

async fn exchange<S>(
    s: S,
    req: Request<Full<Bytes>>,
    addr: &str,
) -> Result<Response<Incoming>, UpstreamError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let http = |source| UpstreamError::Http {
        addr: addr.to_owned(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .map_err(http)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    sender.send_request(req).await.map_err(http)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse_and_map_paths() {
        let t = UpstreamAddr::parse("http://127.0.0.1:4000/v1/").unwrap();
        assert_eq!(
            t,
            UpstreamAddr::Tcp {
                authority: "127.0.0.1:4000".into(),
                prefix: "/v1".into()
            }
        );
        assert_eq!(t.map_path("/v1/responses"), "/v1/responses");
        assert_eq!(t.map_path("/chat/completions"), "/v1/chat/completions");
        let u = UpstreamAddr::parse("unix:/run/m.sock:/api/v1").unwrap();
        assert_eq!(
            u,
            UpstreamAddr::Unix {
                path: "/run/m.sock".into(),
                prefix: "/api/v1".into()
            }
        );
        assert_eq!(u.map_path("/v1/messages"), "/api/v1/messages");
        assert_eq!(
            UpstreamAddr::parse("unix:/s").unwrap().map_path("/v1/x"),
            "/x"
        );
        assert!(matches!(
            UpstreamAddr::parse("https://api.openai.com/v1"),
            Err(UpstreamError::Scheme(_))
        ));
        assert!(matches!(
            UpstreamAddr::parse("http:///v1"),
            Err(UpstreamError::Scheme(_))
        ));
    }
}
