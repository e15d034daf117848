//! The run's model gateway, as the launcher wires it (roles.yaml `gateway:`).
//!
//! Cost-control owns the gateway: it runs in cost-control's process (see
//! `agents::roles::cost_gateway`) for the run's lifetime, so the upstream key is read by
//! cost-control's OS user alone and lives in no other process. Cost-control keeps its own network
//! namespace (loopback only, every TCP connect denied by Landlock): it reaches the upstream through
//! the *egress bridge*, a unix socket in a directory only cost-control's user can enter, which this
//! orchestrator process forwards, byte for byte, to the one `host:port` roles.yaml names. A role
//! whose roles.yaml network is `gateway` (codegen) gets the gateway's socket directory bound into
//! its root, the per-run token and one loopback TCP port for its relay — never the key.
//!
//! An `https://` upstream: the bridge still only pipes bytes to `host:port`; cost-control's gateway
//! speaks TLS through it (SNI and the certificate's name = the configured host), trusting the
//! webpki roots built into the binary or, with `ca_file`, that private CA. The orchestrator reads
//! `ca_file` when the run starts (a missing or unparsable file refuses the run before any role
//! runs) and hands the PEM to cost-control in its launch file: nothing is bound into
//! cost-control's view for it, and the file may live where cost-control's user cannot read.
//!
//! | path (run volume)              | owner        | who sees it                         |
//! |--------------------------------|--------------|-------------------------------------|
//! | `gateway/socket/gateway.sock`  | cost-control | cost-control (rw), codegen (bound)  |
//! | `gateway/egress/upstream.sock` | orchestrator | cost-control only (dir 0700)        |
//! | `gateway/egress/launch.json`   | cost-control | cost-control only (0400): token etc |
//! | `<state>/gateway/ledger.db`    | cost-control | cost-control (the month's spend)    |

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use agents::gateway::launch::{
    GatewayLaunch, CONFIG_ENV, RELAY_PORT_ENV, SOCKET_ENV, SOCKET_NAME, TOKEN_ENV,
};
use agents::gateway::tls::{self, TlsSettings};
use agents::gateway::token::RunToken;
use agents::gateway::GatewayConfig;
use protocol::roles::{Budgets, GatewaySettings, RoleName};
use sandbox::plan::{Identity, Network};

/// Wiring the gateway for a role failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayWiringError {
    /// The upstream base URL is neither `https://host[:port][/prefix]` nor `http://host:port[/prefix]`.
    #[error("roles.yaml gateway.upstream.base_url `{0}`: expected https://host[:port][/prefix] or http://host:port[/prefix]")]
    BaseUrl(String),
    /// `ca_file` with a plain `http://` upstream.
    #[error("roles.yaml gateway.upstream.ca_file: only an https:// base_url uses a CA (base_url is `{0}`)")]
    CaWithoutHttps(String),
    /// `ca_file` could not be read.
    #[error("roles.yaml gateway.upstream.ca_file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// `ca_file` holds no usable certificate.
    #[error("roles.yaml gateway.upstream.ca_file {path}: {source}")]
    CaPem {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: tls::TlsError,
    },
    /// A directory or file could not be prepared.
    #[error("prepare {path} for the gateway: {source}")]
    Prepare {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The launch file could not be serialised.
    #[error("serialise the gateway launch file: {0}")]
    Json(#[from] serde_json::Error),
}

/// What a role gets from the gateway wiring, added to its sandbox plan.
#[derive(Debug, Default)]
pub struct RoleWiring {
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Extra read-only paths.
    pub read: Vec<PathBuf>,
    /// Extra writable paths.
    pub write: Vec<PathBuf>,
    /// The network the role gets (`None`: loopback only).
    pub network: Option<Network>,
    /// TCP ports Landlock allows (the relay's).
    pub tcp_ports: Vec<u16>,
}

/// The run's gateway wiring (one per launcher, so per run).
#[derive(Debug)]
pub struct RunGateway {
    settings: GatewaySettings,
    budgets: Budgets,
    token: String,
    root: PathBuf,
    ledger_dir: PathBuf,
    upstream: (String, String),
    tls: Option<TlsSettings>,
    bridge: Mutex<Option<EgressBridge>>,
}

/// The upstream address (`host:port`, path prefix) and, for https, what TLS needs: the one place
/// roles.yaml's `gateway.upstream` is checked, by preflight (a bad block is invalid input, exit 2)
/// and again when the run wires the gateway.
fn upstream_of(
    settings: &GatewaySettings,
) -> Result<((String, String), Option<TlsSettings>), GatewayWiringError> {
    let url = &settings.upstream.base_url;
    match agents::gateway::upstream::parse_https(url) {
        Some((authority, connect, prefix)) => Ok((
            (connect, prefix),
            Some(TlsSettings {
                ca_pem: read_ca(settings.upstream.ca_file.as_deref(), &authority)?,
                authority,
            }),
        )),
        None => {
            if settings.upstream.ca_file.is_some() {
                return Err(GatewayWiringError::CaWithoutHttps(url.clone()));
            }
            let up = parse_http(url).ok_or_else(|| GatewayWiringError::BaseUrl(url.clone()))?;
            Ok((up, None))
        }
    }
}

/// Checks roles.yaml's `gateway.upstream` (base URL, CA file) before a run starts.
pub fn check_upstream(settings: &GatewaySettings) -> Result<(), GatewayWiringError> {
    upstream_of(settings).map(drop)
}

impl RunGateway {
    /// The wiring for a run whose volume is `volume` (`<state>/runs/<id>/volume`).
    pub fn new(
        settings: &GatewaySettings,
        budgets: Budgets,
        volume: &Path,
    ) -> Result<Self, GatewayWiringError> {
        let (upstream, tls) = upstream_of(settings)?;
        let state = volume.ancestors().nth(3).unwrap_or(volume);
        Ok(Self {
            settings: settings.clone(),
            budgets,
            token: RunToken::generate().as_str().to_owned(),
            root: volume.join("gateway"),
            ledger_dir: state.join("gateway"),
            upstream,
            tls,
            bridge: Mutex::new(None),
        })
    }

    fn socket_dir(&self) -> PathBuf {
        self.root.join("socket")
    }

    /// The socket cost-control's gateway listens on.
    pub fn socket(&self) -> PathBuf {
        self.socket_dir().join(SOCKET_NAME)
    }

    fn egress_dir(&self) -> PathBuf {
        self.root.join("egress")
    }

    /// The wiring of `role` (`gateway_network`: its roles.yaml network is `gateway`), as the
    /// user `identity` (cost-control's user is `cost`).
    pub fn wire(
        &self,
        role: RoleName,
        run_id: &str,
        gateway_network: bool,
        cost: Option<Identity>,
    ) -> Result<RoleWiring, GatewayWiringError> {
        let socket_dir = self.socket_dir();
        prepare_dir(&self.root, None, 0o755)?;
        prepare_dir(&socket_dir, cost, 0o755)?;
        if role == RoleName::CostControl {
            return self.wire_cost_control(run_id, cost);
        }
        if !gateway_network {
            return Ok(RoleWiring::default());
        }
        Ok(RoleWiring {
            env: vec![
                (
                    SOCKET_ENV.to_owned(),
                    socket_dir.join(SOCKET_NAME).display().to_string(),
                ),
                (TOKEN_ENV.to_owned(), self.token.clone()),
                (
                    RELAY_PORT_ENV.to_owned(),
                    self.settings.relay_port.to_string(),
                ),
            ],
            network: Some(Network::Gateway { socket: socket_dir }),
            tcp_ports: vec![self.settings.relay_port],
            ..RoleWiring::default()
        })
    }

    fn wire_cost_control(
        &self,
        run_id: &str,
        cost: Option<Identity>,
    ) -> Result<RoleWiring, GatewayWiringError> {
        let egress = self.egress_dir();
        prepare_dir(&egress, cost, 0o700)?;
        prepare_dir(&self.ledger_dir, cost, 0o700)?;
        let key = PathBuf::from(&self.settings.upstream.api_key_file);
        // The upstream key: readable by cost-control's user alone.
        if let Some(id) = cost {
            std::os::unix::fs::chown(&key, Some(id.uid), Some(id.gid)).map_err(prep(&key))?;
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400))
            .map_err(prep(&key))?;
        let upstream_sock = egress.join("upstream.sock");
        {
            let mut bridge = self.bridge.lock().unwrap_or_else(|p| p.into_inner());
            if bridge.is_none() {
                *bridge = Some(EgressBridge::start(
                    &upstream_sock,
                    self.upstream.0.clone(),
                    cost,
                )?);
            }
        }
        let file = egress.join("launch.json");
        // An earlier launch of this run's cost-control: the run is being resumed, which needs a
        // person's `--reauthorize`.
        let reauthorized = file.exists();
        let launch = GatewayLaunch {
            config: GatewayConfig::from_settings(
                &self.settings,
                format!("unix:{}:{}", upstream_sock.display(), self.upstream.1),
                self.tls.clone(),
            ),
            run_id: run_id.to_owned(),
            socket: self.socket_dir().join(SOCKET_NAME),
            ledger_db: self.ledger_dir.join("ledger.db"),
            month: agents::gateway::ledger::current_month(),
            budgets: self.budgets,
            token: self.token.clone(),
            reauthorized,
        };
        write_private(&file, &serde_json::to_vec_pretty(&launch)?, cost)?;
        Ok(RoleWiring {
            env: vec![(CONFIG_ENV.to_owned(), file.display().to_string())],
            read: vec![key],
            write: vec![self.socket_dir(), egress, self.ledger_dir.clone()],
            network: None,
            tcp_ports: vec![],
        })
    }
}

/// The PEM of `ca_file` for the upstream `authority`, checked the way cost-control's gateway will
/// use it (certificates that parse as trust anchors), so a bad file refuses the run at its start.
fn read_ca(path: Option<&str>, authority: &str) -> Result<Option<String>, GatewayWiringError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    let pem = std::fs::read_to_string(&path).map_err(|source| GatewayWiringError::CaFile {
        path: path.clone(),
        source,
    })?;
    let settings = TlsSettings {
        authority: authority.to_owned(),
        ca_pem: Some(pem),
    };
    tls::TlsUpstream::new(&settings)
        .map_err(|source| GatewayWiringError::CaPem { path, source })?;
    Ok(settings.ca_pem)
}

/// `http://host:port/prefix` → (`host:port`, `/prefix`).
fn parse_http(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (_, port) = authority.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Some((
        authority.to_owned(),
        prefix.trim_end_matches('/').to_owned(),
    ))
}

fn prep(path: &Path) -> impl Fn(std::io::Error) -> GatewayWiringError + '_ {
    move |source| GatewayWiringError::Prepare {
        path: path.to_path_buf(),
        source,
    }
}

fn prepare_dir(dir: &Path, owner: Option<Identity>, mode: u32) -> Result<(), GatewayWiringError> {
    std::fs::create_dir_all(dir).map_err(prep(dir))?;
    if let Some(id) = owner {
        std::os::unix::fs::chown(dir, Some(id.uid), Some(id.gid)).map_err(prep(dir))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(prep(dir))
}

fn write_private(
    path: &Path,
    bytes: &[u8],
    owner: Option<Identity>,
) -> Result<(), GatewayWiringError> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o400)
        .open(path)
        .map_err(prep(path))?;
    f.write_all(bytes).map_err(prep(path))?;
    if let Some(id) = owner {
        std::os::unix::fs::chown(path, Some(id.uid), Some(id.gid)).map_err(prep(path))?;
    }
    Ok(())
}

/// Forwards connections on a unix socket to one TCP `host:port` (cost-control's only way out).
/// Stops accepting when dropped.
#[derive(Debug)]
pub struct EgressBridge {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl EgressBridge {
    /// Listen on `path` (mode 0600, owned by `owner`) and forward each connection to `target`.
    pub fn start(
        path: &Path,
        target: String,
        owner: Option<Identity>,
    ) -> Result<Self, GatewayWiringError> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(prep(path))?;
        if let Some(id) = owner {
            std::os::unix::fs::chown(path, Some(id.uid), Some(id.gid)).map_err(prep(path))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(prep(path))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("gateway-egress".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(unix) = conn else { continue };
                    let target = target.clone();
                    let _ = std::thread::Builder::new()
                        .name("gateway-egress-conn".into())
                        .spawn(move || pipe(unix, &target));
                }
            })
            .map_err(prep(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            stop,
        })
    }
}

impl Drop for EgressBridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn pipe(unix: UnixStream, target: &str) {
    let tcp = match TcpStream::connect(target) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(target, error = %e, "gateway egress cannot reach the upstream");
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let (Ok(mut unix_r), Ok(mut tcp_w)) = (unix.try_clone(), tcp.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut unix_r, &mut tcp_w);
        let _ = tcp_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut tcp_r, mut unix_w) = (tcp, unix);
    let _ = std::io::copy(&mut tcp_r, &mut unix_w);
    let _ = unix_w.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn base_urls_parse_to_authority_and_prefix() {
        assert_eq!(
            parse_http("http://127.0.0.1:4000/v1/"),
            Some(("127.0.0.1:4000".into(), "/v1".into()))
        );
        assert_eq!(
            parse_http("http://h:80"),
            Some(("h:80".into(), String::new()))
        );
        assert_eq!(parse_http("https://api.openai.com/v1"), None);
        assert_eq!(parse_http("http://noport/v1"), None);
    }

    fn settings(base_url: &str, ca_file: Option<&Path>) -> GatewaySettings {
        GatewaySettings {
            upstream: protocol::roles::UpstreamSettings {
                base_url: base_url.into(),
                api_key_file: "/nonexistent/key".into(),
                ca_file: ca_file.map(|p| p.display().to_string()),
            },
            prices: Default::default(),
            default_max_output_tokens: 16,
            relay_port: 18080,
        }
    }

    fn budgets() -> Budgets {
        Budgets {
            per_request_usd: 1.0,
            per_run_usd: 2.0,
            per_month_usd: 10.0,
            warn_pct: 70,
            escalate_pct: 90,
            stop_pct: 100,
        }
    }

    #[test]
    fn an_https_upstream_is_bridged_to_port_443_and_its_ca_file_read_at_run_start() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("state/runs/r/volume");
        let g = RunGateway::new(
            &settings("https://api.openai.com/v1", None),
            budgets(),
            &volume,
        )
        .unwrap();
        assert_eq!(g.upstream, ("api.openai.com:443".into(), "/v1".into()));
        assert_eq!(
            g.tls,
            Some(TlsSettings {
                authority: "api.openai.com".into(),
                ca_pem: None
            })
        );
        // A private CA: the PEM travels in the launch file, read here.
        let ca = dir.path().join("ca.pem");
        let pem = concat!(
            "-----BEGIN CERTIFICATE-----\n",
            "MIIBoTCCAUegAwIBAgIUNXCRdHfj4wbZ2vkEkA5EJYgnGcYwCgYIKoZIzj0EAwIw\n",
            "JTEjMCEGA1UEAwwab3JjaGVzdHJhdGUgd2lyaW5nIHRlc3QgQ0EwIBcNMjYxMTIz\n",
            "MTYxMzI0WhgPMjEyNjEwMzAxNjEzMjRaMCUxIzAhBgNVBAMMGm9yY2hlc3RyYXRl\n",
            "IHdpcmluZyB0ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9cNm0szu\n",
            "dlLZxGnBRKxUrTwLtKVQmAC8opRAjFccW9lDMImbkirjpy6kCe49H13nZyqEhNSr\n",
            "94Kj1r+QwMxeeaNTMFEwHQYDVR0OBBYEFEi5vkCG7uBrFEmn8HeqxJircKPDMB8G\n",
            "A1UdIwQYMBaAFEi5vkCG7uBrFEmn8HeqxJircKPDMA8GA1UdEwEB/wQFMAMBAf8w\n",
            "CgYIKoZIzj0EAwIDSAAwRQIgTiyos7sCSoPL2WBC6gxLp8+hT7K07GEvhfs/R18L\n",
            "v0sCIQCvkdZ1VAIuip/vU3u6iY4gVNBQSkWOAFg3gVWoIlE5cw==\n",
            "-----END CERTIFICATE-----\n",
        );
        std::fs::write(&ca, pem).unwrap();
        let g = RunGateway::new(
            &settings("https://llm.internal:8443/api/v1", Some(&ca)),
            budgets(),
            &volume,
        )
        .unwrap();
        assert_eq!(g.upstream, ("llm.internal:8443".into(), "/api/v1".into()));
        assert_eq!(g.tls.unwrap().ca_pem.as_deref(), Some(pem));
        // Refused with the file named: missing, not PEM, or a CA for a plain http upstream.
        let missing = dir.path().join("missing.pem");
        let e = RunGateway::new(
            &settings("https://h/v1", Some(&missing)),
            budgets(),
            &volume,
        )
        .unwrap_err();
        assert!(matches!(e, GatewayWiringError::CaFile { .. }), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        for bad in [
            "not a certificate\n",
            "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
        ] {
            std::fs::write(&ca, bad).unwrap();
            let e = RunGateway::new(&settings("https://h/v1", Some(&ca)), budgets(), &volume)
                .unwrap_err();
            assert!(matches!(e, GatewayWiringError::CaPem { .. }), "{e}");
        }
        let e = RunGateway::new(&settings("http://h:80/v1", Some(&ca)), budgets(), &volume)
            .unwrap_err();
        assert!(matches!(e, GatewayWiringError::CaWithoutHttps(_)), "{e}");
        let e = RunGateway::new(&settings("ftp://h/v1", None), budgets(), &volume).unwrap_err();
        assert!(matches!(e, GatewayWiringError::BaseUrl(_)), "{e}");
    }

    #[test]
    fn the_egress_bridge_forwards_bytes_both_ways_and_stops_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = upstream.local_addr().unwrap().to_string();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf.map(|b| b.to_ascii_uppercase())).unwrap();
        });
        let sock = dir.path().join("up.sock");
        let bridge = EgressBridge::start(&sock, addr, None).unwrap();
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut c = UnixStream::connect(&sock).unwrap();
        c.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"HELLO");
        echo.join().unwrap();
        drop(bridge);
        assert!(!sock.exists());
        assert!(UnixStream::connect(&sock).is_err());
    }
}
