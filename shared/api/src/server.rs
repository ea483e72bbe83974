//! The embedded default's HTTP server: the router on a TCP listener with the limits a public
//! server needs, which `axum::serve` does not set. A client must send its request headers
//! within `header_timeout` (the same clock closes a keep-alive connection that sits idle), a
//! body that stops arriving for `body_idle_timeout` fails, and no more than
//! `max_connections` are served at once (further clients wait in the listen backlog).
//!
//! No one client can take them all: one address (an IPv6 client's whole /64) holds at most
//! `per_address` connections, and the last `reserve` places are kept for work that matters
//! when the server is full. A connection let in there serves one request and closes, and
//! answers only `/healthz` and requests that carry credentials (the others get 503); every
//! idle keep-alive connection is closed at once, so the pool frees itself.
//! On AWS, API Gateway plays this part.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Headers must be complete this long after the connection opens or after the previous
    /// response; also the keep-alive idle timeout.
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long fails.
    pub body_idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections one client address may hold at once (IPv6: per /64); more are closed as
    /// they arrive.
    pub per_address: usize,
    /// Of `max_connections`, how many are kept for `/healthz` and requests with credentials
    /// (at most a quarter of them).
    pub reserve: usize,
    /// How long a graceful shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
            per_address: 128,
            reserve: 64,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Put on a request that came in on a reserved place: only `/healthz` and requests with
/// credentials are answered there ([`reserve_gate`]).
#[derive(Debug, Clone, Copy)]
pub struct Reserved;

/// Answers 503 to a request on a reserved place that neither checks health nor carries
/// credentials: under a flood, those places are for the clients we know.
pub async fn reserve_gate(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    if request.extensions().get::<Reserved>().is_some() && request.uri().path() != "/healthz" && !carries_credentials(request.headers()) {
        return crate::error::ApiError::Domain(domain::Error::Overloaded(
            "the server is at its connection limit; only authenticated requests are answered now".into(),
        ))
        .into_response();
    }
    next.run(request).await
}

/// A credential header or the session cookie (checked for real by the handler).
fn carries_credentials(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::AUTHORIZATION)
        || headers.contains_key("x-api-key")
        || headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(';').any(|c| c.trim().starts_with(&format!("{}=", crate::extract::SESSION_COOKIE))))
}

/// Whom a connection is counted against: an IPv4 address, or an IPv6 address's /64 (one
/// subscriber usually has a whole /64).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// Connections open now, in all and per client.
#[derive(Default)]
struct Tracker {
    open: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

impl Tracker {
    /// Counts a connection from `client`, unless it already holds `cap`.
    fn admit(self: &Arc<Self>, client: IpAddr, cap: usize) -> Option<Counted> {
        let mut per_client = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let held = per_client.entry(client).or_insert(0);
        if *held >= cap {
            return None;
        }
        *held += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Counted { tracker: self.clone(), client })
    }
}

/// One counted connection, uncounted when dropped.
struct Counted {
    tracker: Arc<Tracker>,
    client: IpAddr,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut per_client = self.tracker.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = per_client.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                per_client.remove(&self.client);
            }
        }
        self.tracker.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Requests being answered right now, by every server in this process (the pipeline runner
/// yields to them).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Whether any request is being answered right now.
pub fn answering() -> bool {
    IN_FLIGHT.load(Ordering::Relaxed) > 0
}

/// Counts a request in flight, in the process and on its connection, until dropped (also
/// when the client goes away mid-request).
struct Answering(Arc<AtomicUsize>);

impl Answering {
    fn start(on_connection: Arc<AtomicUsize>) -> Answering {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        on_connection.fetch_add(1, Ordering::Relaxed);
        Answering(on_connection)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `router` until `shutdown` completes, then lets requests in flight finish (up to
/// `drain_timeout`). Each request carries the peer's address as `ConnectInfo<std::net::SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(limits.body_idle_timeout));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = limits.reserve.min(limits.max_connections / 4);
    let tracker = Arc::new(Tracker::default());
    // `stop` closes every connection once its request is answered; `shed` closes idle ones.
    let (stop, _) = watch::channel(false);
    let (shed, _) = watch::channel(0u64);
    let mut http = hyper::server::conn::http1::Builder::new();
    // 64 KiB of buffered headers at most (hyper's default is ~400 KiB).
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_buf_size(64 * 1024);
    // A reserved place: one request, and its headers soon.
    let mut reserved_http = http.clone();
    reserved_http.keep_alive(false).header_read_timeout(limits.header_timeout.min(Duration::from_secs(5)));
    tokio::pin!(shutdown);
    loop {
        // Take a permit before accepting: at the cap, new clients wait in the backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(counted) = tracker.admit(client_key(peer.ip()), limits.per_address) else {
            // Closed at once: this client already holds its share.
            domain::telemetry::metrics().count(domain::telemetry::Metric::ConnectionsRefused, &[("why", "per_address")]);
            tracing::debug!(%peer, "connection refused: the address holds its share");
            continue;
        };
        let reserved = permits.available_permits() < reserve;
        if reserved {
            // Full but for the reserve: every idle keep-alive connection is closed, so the
            // places come back without waiting for their timeouts.
            shed.send_modify(|n| *n += 1);
            domain::telemetry::metrics().count(domain::telemetry::Metric::ConnectionsRefused, &[("why", "reserve")]);
        }
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let requests = in_flight.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            if reserved {
                request.extensions_mut().insert(Reserved);
            }
            let answering = Answering::start(requests.clone());
            let response = router.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let response = response.await;
                drop(answering);
                response
            }
        });
        let builder = if reserved { &reserved_http } else { &http };
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let (mut stop, mut shed) = (stop.subscribe(), shed.subscribe());
        tokio::spawn(async move {
            tokio::pin!(connection);
            let mut closing = false;
            loop {
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stop.changed(), if !closing => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    changed = shed.changed(), if !closing => {
                        // Idle (no request in flight) or the server is going away: close it.
                        if changed.is_err() || in_flight.load(Ordering::Relaxed) == 0 {
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                        }
                    }
                }
            }
            drop(counted);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = async {
        while tracker.open.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(limits.drain_timeout, drained).await.is_err() {
        tracing::warn!("requests still in flight at shutdown were cut off");
    }
    Ok(())
}
