//! The connection to the upstream provider: parse the configured base URL, open HTTP/1.1
//! connections (TCP or unix socket, with TLS on top for an `https` upstream — see [`super::tls`])
//! and send requests on them. A connection whose response body has been read goes back to a small
//! idle pool, so consecutive requests skip the TCP and TLS set-up; one found closed before the
//! request went out is passed over for a fresh connection. Streams pass through unbuffered.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::tls::{TlsError, TlsSettings, TlsUpstream};

/// Upstream errors. They name the address, never the key.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The base URL is neither `https://`, `http://` nor `unix:`.
    #[error("upstream base_url `{0}`: expected https://host[:port][/prefix], http://host:port[/prefix] or unix:/path[:/prefix]")]
    Scheme(String),
    /// The TLS client could not be set up.
    #[error("TLS to upstream: {0}")]
    TlsSetup(#[from] TlsError),
    /// The TLS handshake failed (certificate not trusted, wrong name, no TLS at all).
    #[error("TLS handshake with upstream {authority} (trusting {trust}): {source}")]
    Handshake {
        /// `host[:port]` the certificate had to name.
        authority: String,
        /// Where trust came from.
        trust: &'static str,
        /// Cause (rustls' certificate error inside).
        source: std::io::Error,
    },
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
    /// Parse a configured `http://` or `unix:` base URL (see [`Upstream::new`] for `https://`).
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
}

/// `https://host[:port][/prefix]` → (`host[:port]` as written, `host:port` to connect to, prefix).
pub fn parse_https(base_url: &str) -> Option<(String, String, String)> {
    let rest = base_url.strip_prefix("https://")?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let connect = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']')? {
            (_, "") => format!("{authority}:443"),
            (_, port) => {
                port.strip_prefix(':')?.parse::<u16>().ok()?;
                authority.to_owned()
            }
        }
    } else {
        match authority.rsplit_once(':') {
            None => format!("{authority}:443"),
            Some((host, port)) => {
                if host.is_empty() {
                    return None;
                }
                port.parse::<u16>().ok()?;
                authority.to_owned()
            }
        }
    };
    Some((
        authority.to_owned(),
        connect,
        prefix.trim_end_matches('/').to_owned(),
    ))
}

/// Idle upstream connections kept for reuse, at most.
const MAX_IDLE: usize = 8;

type Sender = SendRequest<Full<Bytes>>;

/// The upstream: where to connect, TLS on top when it is `https`, idle connections to reuse.
#[derive(Debug, Clone)]
pub struct Upstream {
    addr: UpstreamAddr,
    tls: Option<TlsUpstream>,
    idle: Arc<Mutex<Vec<Sender>>>,
}

impl Upstream {
    /// The upstream of `base_url`. `https://host[:port][/prefix]` connects to `host:port` (443 by
    /// default) and speaks TLS; `tls` (the run's bridged `https` upstream behind a `unix:` base
    /// URL, or the `ca_file` of an `https` one) adds TLS to any transport.
    pub fn new(base_url: &str, tls: Option<&TlsSettings>) -> Result<Self, UpstreamError> {
        if let Some((authority, connect, prefix)) = parse_https(base_url) {
            let settings = TlsSettings {
                authority,
                ca_pem: tls.and_then(|t| t.ca_pem.clone()),
            };
            return Ok(Self {
                addr: UpstreamAddr::Tcp {
                    authority: connect,
                    prefix,
                },
                tls: Some(TlsUpstream::new(&settings)?),
                idle: Arc::default(),
            });
        }
        if base_url.starts_with("https://") {
            return Err(UpstreamError::Scheme(base_url.to_owned()));
        }
        Ok(Self {
            addr: UpstreamAddr::parse(base_url)?,
            tls: tls.map(TlsUpstream::new).transpose()?,
            idle: Arc::default(),
        })
    }

    /// Where it connects.
    pub fn addr(&self) -> &UpstreamAddr {
        &self.addr
    }

    /// Whether TLS is spoken.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The upstream path for an incoming path.
    pub fn map_path(&self, incoming: &str) -> String {
        self.addr.map_path(incoming)
    }

    /// The `Host` header value.
    pub fn host(&self) -> &str {
        match &self.tls {
            Some(t) => t.authority(),
            None => self.addr.host(),
        }
    }

    /// Send `req` on an idle connection, or a fresh one.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let addr = self.addr.describe();
        let mut req = req;
        while let Some(mut sender) = self.take_idle() {
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.park(sender);
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    // Closed before anything was written: try the next one.
                    Some(r) => req = r,
                    None => {
                        return Err(UpstreamError::Http {
                            addr,
                            source: e.into_error(),
                        })
                    }
                },
            }
        }
        let mut sender = self.connect(&addr).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|source| UpstreamError::Http {
                addr: addr.clone(),
                source,
            })?;
        self.park(sender);
        Ok(resp)
    }

    /// Idle connections in the pool now (for tests).
    pub fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |v| v.len())
    }

    fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if s.is_ready() && !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// Back to the pool once its response has been read (a connection carries one exchange at a
    /// time); dropped if the connection ends first or the pool is full.
    fn park(&self, mut sender: Sender) {
        let idle = Arc::clone(&self.idle);
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < MAX_IDLE {
                    idle.push(sender);
                }
            }
        });
    }

    /// A new connection, TLS on top when configured.
    async fn connect(&self, addr: &str) -> Result<Sender, UpstreamError> {
        let connect = |source| UpstreamError::Connect {
            addr: addr.to_owned(),
            source,
        };
        match &self.addr {
            UpstreamAddr::Tcp { authority, .. } => {
                let s = TcpStream::connect(authority.as_str())
                    .await
                    .map_err(connect)?;
                let _ = s.set_nodelay(true);
                self.over(s, addr).await
            }
            UpstreamAddr::Unix { path, .. } => {
                let s = UnixStream::connect(path).await.map_err(connect)?;
                self.over(s, addr).await
            }
        }
    }

    async fn over<S>(&self, s: S, addr: &str) -> Result<Sender, UpstreamError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        match &self.tls {
            None => handshake(s, addr).await,
            Some(tls) => {
                let s = tls
                    .connect(s)
                    .await
                    .map_err(|source| UpstreamError::Handshake {
                        authority: tls.authority().to_owned(),
                        trust: tls.trust(),
                        source,
                    })?;
                handshake(s, addr).await
            }
        }
    }
}

async fn handshake<S>(s: S, addr: &str) -> Result<Sender, UpstreamError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .map_err(|source| UpstreamError::Http {
            addr: addr.to_owned(),
            source,
        })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    Ok(sender)
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

    #[test]
    fn https_base_urls_connect_to_443_unless_a_port_is_given() {
        let p = |u: &str| parse_https(u);
        assert_eq!(
            p("https://api.openai.com/v1/"),
            Some((
                "api.openai.com".into(),
                "api.openai.com:443".into(),
                "/v1".into()
            ))
        );
        assert_eq!(
            p("https://localhost:8443"),
            Some(("localhost:8443".into(), "localhost:8443".into(), "".into()))
        );
        assert_eq!(
            p("https://[::1]/v1"),
            Some(("[::1]".into(), "[::1]:443".into(), "/v1".into()))
        );
        assert_eq!(
            p("https://[::1]:9/v1"),
            Some(("[::1]:9".into(), "[::1]:9".into(), "/v1".into()))
        );
        for bad in [
            "https:///v1",
            "https://h:notaport/v1",
            "https://u:p@h/v1",
            "https://:443",
            "http://h:1",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
        let u = Upstream::new("https://api.anthropic.com/v1", None).unwrap();
        assert!(u.is_tls());
        assert_eq!(u.host(), "api.anthropic.com");
        assert_eq!(u.map_path("/v1/messages"), "/v1/messages");
        assert!(matches!(
            Upstream::new("https://h:x/v1", None),
            Err(UpstreamError::Scheme(_))
        ));
        // The run's bridged form: TLS over the egress socket, the configured host as SNI.
        let tls = TlsSettings {
            authority: "api.openai.com".into(),
            ca_pem: None,
        };
        let b = Upstream::new("unix:/run/up.sock:/v1", Some(&tls)).unwrap();
        assert!(b.is_tls());
        assert_eq!(b.host(), "api.openai.com");
        assert!(!Upstream::new("http://127.0.0.1:1/v1", None)
            .unwrap()
            .is_tls());
    }
}
