//! Benchmarks `goviral serve` on the embedded default, over loopback, as a client would.
//!   goviral-bench <goviral binary> api [requests] [connections]
//!     POST /api/v1/analyze then GET /api/v1/analyze/{id}: req/s, p50/p99, server peak memory.
//!   goviral-bench <goviral binary> pipeline [jobs] [connections]
//!     submits text jobs and waits for all to complete: submit→complete p50/p95/p99 (server
//!     timestamps) and jobs/s.
//!   goviral-bench <goviral binary> load [submissions] [clients]
//!   goviral-bench <goviral binary> crash [submissions] [clients]
//!     submissions with idempotency keys while the runner works; `crash` SIGKILLs the server
//!     half way and restarts it. Every acknowledged job must complete, scored exactly once.
//!   goviral-bench <goviral binary> media [runs]
//!     a 60 s 720p clip with speech, upload → complete, `runs` times (p50/p95), then a 180 s
//!     1080×1920 clip once; the server's peak memory.
//!   goviral-bench <goviral binary> attack [seconds] [attackers]
//!     unauthenticated clients (each from its own 127.0.1.x address, so the per-address
//!     throttle does not shield the hashing pool) flood the token exchange and API-key
//!     authentication while one real client works: the server's memory against idle, and
//!     the real client's latency. Then, on a fresh server, three floods one at a time:
//!     1,100 keep-alive connections from one address, 1,100 live streams from one user, and
//!     20 videos from one user whose source sends a byte every 100 ms; during each, another
//!     user's read latency (p50/p99), how long their caption takes to complete, and how
//!     long `/healthz` takes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Phase {
    name: &'static str,
    requests: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    errors: usize,
}

impl Phase {
    fn percentile(&self, p: f64) -> f64 {
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn report(&self) -> Value {
        json!({
            "phase": self.name,
            "requests": self.requests,
            "errors": self.errors,
            "req_per_sec": (self.requests as f64 / self.elapsed.as_secs_f64()).round(),
            "p50_ms": self.percentile(0.50),
            "p99_ms": self.percentile(0.99),
            "max_ms": self.percentile(1.0),
        })
    }
}

async fn request(client: &HttpClient, method: &str, url: &str, headers: &[(&str, &str)], body: Option<String>) -> (u16, Bytes) {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.unwrap_or_default()))).expect("request");
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default())
        }
        Err(_) => (0, Bytes::new()),
    }
}

/// Runs `total` requests over `connections` concurrent workers; `make(i)` builds request i.
async fn run_phase<F, Fut>(name: &'static str, total: usize, connections: usize, make: F) -> (Phase, Vec<Bytes>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (u16, Bytes)> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (make, next) = (make.clone(), next.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let t = Instant::now();
                    let (status, body) = make(i).await;
                    out.push((t.elapsed().as_micros() as u64, status, body));
                }
                out
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut bodies = Vec::with_capacity(total);
    let mut errors = 0;
    for w in workers {
        for (us, status, body) in w.await.expect("worker") {
            latencies.push(us);
            if !(200..300).contains(&status) {
                errors += 1;
            }
            bodies.push(body);
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    (Phase { name, requests: total, elapsed, latencies_us: latencies, errors }, bodies)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let binary = args.get(1).expect("usage: goviral-bench <goviral binary> [api|pipeline|scorer] [count] [connections]").clone();
    let mode = args.get(2).map_or("api", String::as_str).to_string();
    if mode == "load" || mode == "crash" {
        let total: usize = args.get(3).map_or(10_000, |s| s.parse().expect("submissions"));
        let clients: usize = args.get(4).map_or(200, |s| s.parse().expect("clients"));
        let report = reliability_bench(&binary, &mode, total, clients).await;
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        let a = &report["audit"];
        let ok = a["lost"] == 0 && a["not_complete"] == 0 && a["scored_more_than_once"] == 0 && a["distinct_acknowledged"] == total;
        if !ok {
            eprintln!("error: acknowledged jobs were lost, duplicated or left unfinished");
            std::process::exit(1);
        }
        return;
    }
    if mode == "media" {
        let report = media_bench(&binary, args.get(3).map_or(5, |s| s.parse().expect("runs"))).await;
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return;
    }
    if mode == "scorer" {
        scorer_bench(&binary, args.get(3).map_or(20_000, |s| s.parse().expect("count")));
        return;
    }
    if mode == "streams" {
        let report = streams_bench(&binary, args.get(3).map_or(1_000, |s| s.parse().expect("streams"))).await;
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return;
    }
    let pipeline_mode = match mode.as_str() {
        "api" | "attack" | "reconcile" => false,
        "pipeline" => true,
        other => panic!("unknown mode {other}: api, pipeline, attack, reconcile, streams or scorer"),
    };
    let default_total = match mode.as_str() {
        "pipeline" => 1_000,
        "reconcile" => 100_000,
        _ => 20_000,
    };
    let total: usize = args.get(3).map_or(default_total, |s| s.parse().expect("count"));
    let connections: usize = args.get(4).map_or(if pipeline_mode { 8 } else { 32 }, |s| s.parse().expect("connections"));
    let data_dir = std::env::temp_dir().join(format!("goviral-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let env = [("GOVIRAL_DATA_DIR", data_dir.to_str().unwrap()), ("GOVIRAL_RATE_LIMIT_ENTERPRISE", "1000000000"), ("RUST_LOG", "warn")];

    let user = create_user(&binary, &env, "bench@example.com");

    let (mut server, base) = start_server(&binary, &env);
    let pid = server.id();

    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(connections).build_http();
    let creds = json!({"client_id": user["client_id"], "client_secret": user["client_secret"]}).to_string();
    let (status, body) =
        request(&client, "POST", &format!("{base}/api/v1/auth/token"), &[("content-type", "application/json")], Some(creds)).await;
    assert_eq!(status, 200, "token: {}", String::from_utf8_lossy(&body));
    let token: Value = serde_json::from_slice(&body).unwrap();
    let auth = Arc::new(format!("Bearer {}", token["access_token"].as_str().unwrap()));
    let user_id = user["user_id"].as_str().unwrap().to_string();

    let submit = {
        let (client, auth, base) = (client.clone(), auth.clone(), base.clone());
        move |i: usize| {
            let (client, auth, base, user_id) = (client.clone(), auth.clone(), base.clone(), user_id.clone());
            async move {
                let body = json!({"content_type": "text", "caption": format!("Post {i}: 5 habits that changed my mornings"), "platform_hint": "tiktok", "user_id": user_id}).to_string();
                request(
                    &client,
                    "POST",
                    &format!("{base}/api/v1/analyze"),
                    &[("authorization", &auth), ("content-type", "application/json")],
                    Some(body),
                )
                .await
            }
        }
    };
    if mode == "attack" {
        let seconds: u64 = args.get(3).map_or(8, |s| s.parse().expect("seconds"));
        let attackers: usize = args.get(4).map_or(128, |s| s.parse().expect("attackers"));
        let (status, body) = submit(0).await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let job = serde_json::from_slice::<Value>(&body).unwrap()["job_id"].as_str().unwrap().to_string();
        let api_key = user["api_key"].as_str().unwrap().to_string();
        let mut report = attack_bench(&client, &base, pid, &auth, &api_key, &job, Duration::from_secs(seconds), attackers).await;
        let _ = server.kill();
        let _ = server.wait();
        let _ = std::fs::remove_dir_all(&data_dir);
        report["floods"] = floods_bench(&binary, Duration::from_secs(seconds.max(5))).await;
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return;
    }
    if pipeline_mode {
        let report = pipeline_bench(&client, &base, auth.clone(), total, connections, submit).await;
        let peak = peak_rss_kib(pid);
        let _ = server.kill();
        let _ = server.wait();
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut report = report;
        report["server_peak_rss_mib"] = json!(peak.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0));
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return;
    }
    if mode == "reconcile" {
        // `total` ledger entries (one per accepted submission), then the quota job's check over
        // them, run by the operator command against the same database.
        let (post, _) = run_phase("POST /api/v1/analyze", total, connections, submit).await;
        let started = Instant::now();
        let out = Command::new(&binary).args(["usage", "reconcile"]).envs(env).output().expect("run goviral usage reconcile");
        let seconds = started.elapsed().as_secs_f64();
        assert!(out.status.success(), "usage reconcile: {}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).expect("reconcile report");
        let _ = server.kill();
        let _ = server.wait();
        let _ = std::fs::remove_dir_all(&data_dir);
        let report = json!({
            "ledger_entries": total - post.errors,
            "reconcile_s": (seconds * 1000.0).round() / 1000.0,
            "note": "the whole `goviral usage reconcile` process: start, migrations check, the check over every entry of the period",
            "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return;
    }
    // Warm-up: connections, caches, SQLite pages.
    run_phase("warmup", 1_000.min(total), connections, submit.clone()).await;
    let (post, bodies) = run_phase("POST /api/v1/analyze", total, connections, submit).await;
    let ids: Arc<Vec<String>> =
        Arc::new(bodies.iter().filter_map(|b| serde_json::from_slice::<Value>(b).ok()?["job_id"].as_str().map(String::from)).collect());
    assert!(!ids.is_empty(), "no job was created");
    let read = {
        let (client, auth, base, ids) = (client.clone(), auth.clone(), base.clone(), ids.clone());
        move |i: usize| {
            let (client, auth, base, ids) = (client.clone(), auth.clone(), base.clone(), ids.clone());
            async move {
                request(&client, "GET", &format!("{base}/api/v1/analyze/{}", ids[i % ids.len()]), &[("authorization", &auth)], None).await
            }
        }
    };
    let (get, _) = run_phase("GET /api/v1/analyze/{id}", total, connections, read).await;
    let peak = peak_rss_kib(pid);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&data_dir);

    let report = json!({
        "server": "goviral serve (embedded default: SQLite WAL, one machine)",
        "connections": connections,
        "results": [post.report(), get.report()],
        "server_peak_rss_mib": peak.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0),
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    if post.errors + get.errors > 0 {
        eprintln!("error: {} requests failed", post.errors + get.errors);
        std::process::exit(1);
    }
}

/// Starts `goviral serve` with `env` (its data dir among it) and returns the process and its base URL.
/// An enterprise account made with `goviral users create`: its ids and keys as JSON.
fn create_user(binary: &str, env: &[(&str, &str)], email: &str) -> Value {
    let created = Command::new(binary)
        .args(["users", "create", "--email", email, "--plan", "enterprise"])
        .envs(env.iter().copied())
        .output()
        .expect("run goviral users create");
    assert!(created.status.success(), "users create failed: {}", String::from_utf8_lossy(&created.stderr));
    serde_json::from_slice(&created.stdout).expect("the new user as JSON")
}

fn start_server(binary: &str, env: &[(&str, &str)]) -> (std::process::Child, String) {
    start_server_with(binary, env, &[])
}

fn start_server_with(binary: &str, env: &[(&str, &str)], extra: &[&str]) -> (std::process::Child, String) {
    let mut server = Command::new(binary)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).expect("listening line");
    let base = serde_json::from_str::<Value>(&line).expect("listening json")["listening"].as_str().unwrap().to_string();
    (server, base)
}

/// Every acknowledged job, read back from the database itself: how many exist, how many
/// completed, and how many model runs (scorings) each has.
async fn audit_jobs(db: &std::path::Path, acknowledged: &[String]) -> Value {
    use sqlx::Connection;
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open the bench database");
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT j.id, j.status, (SELECT COUNT(*) FROM model_runs r WHERE r.job_id = j.id) FROM analysis_jobs j")
            .fetch_all(&mut conn)
            .await
            .expect("read jobs");
    let by_id: std::collections::HashMap<&str, (&str, i64)> = rows.iter().map(|(id, s, n)| (id.as_str(), (s.as_str(), *n))).collect();
    let lost = acknowledged.iter().filter(|id| !by_id.contains_key(id.as_str())).count();
    let unfinished = acknowledged.iter().filter(|id| by_id.get(id.as_str()).is_some_and(|(s, _)| *s != "complete")).count();
    let scored_twice = rows.iter().filter(|(_, _, n)| *n > 1).count();
    let unique: std::collections::HashSet<&String> = acknowledged.iter().collect();
    json!({
        "acknowledged": acknowledged.len(),
        "distinct_acknowledged": unique.len(),
        "jobs_in_store": rows.len(),
        "lost": lost,
        "not_complete": unfinished,
        "scored_more_than_once": scored_twice,
    })
}

/// Waits until every acknowledged job is complete (or `limit` passes), polling the API.
async fn wait_complete(client: &HttpClient, base: &str, auth: &str, ids: &[String], limit: Duration) -> Duration {
    let started = Instant::now();
    let mut pending: Vec<String> = ids.to_vec();
    while !pending.is_empty() && started.elapsed() < limit {
        let mut still = Vec::new();
        for chunk in pending.chunks(64) {
            let checks = chunk.iter().map(|id| {
                let url = format!("{base}/api/v1/analyze/{id}");
                async move { (id.clone(), request(client, "GET", &url, &[("authorization", auth)], None).await) }
            });
            for (id, (_, body)) in futures_util::future::join_all(checks).await {
                let status = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["status"].as_str().map(String::from));
                if !matches!(status.as_deref(), Some("complete") | Some("failed")) {
                    still.push(id);
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    started.elapsed()
}

/// `load`: `total` text submissions from `clients` concurrent clients, each with its own
/// Idempotency-Key, against the server with its runner working alongside; then every
/// acknowledged job must be complete and scored exactly once. `crash`: the same, but the
/// server is killed (SIGKILL) half way through the burst and started again on the same data
/// dir; the clients retry what got no answer with the same key.
async fn reliability_bench(binary: &str, mode: &str, total: usize, clients: usize) -> Value {
    let data_dir = std::env::temp_dir().join(format!("goviral-bench-{mode}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let dir = data_dir.to_str().unwrap().to_string();
    // Every client is this process on 127.0.0.1: lift the per-address share above them.
    let env = [
        ("GOVIRAL_DATA_DIR", dir.as_str()),
        ("GOVIRAL_RATE_LIMIT_ENTERPRISE", "1000000000"),
        ("GOVIRAL_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "1024"),
        ("RUST_LOG", "warn"),
    ];
    let user = create_user(binary, &env, "load@example.com");
    let (server, base) = start_server(binary, &env);
    let server = Arc::new(std::sync::Mutex::new(server));
    let base = Arc::new(std::sync::Mutex::new(base));
    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(clients).build_http();
    let auth = Arc::new(format!("X-API-Key:{}", user["api_key"].as_str().unwrap()));
    let user_id = user["user_id"].as_str().unwrap().to_string();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let restarts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // The killer: once half the burst is acknowledged, SIGKILL and start again.
    let killer = (mode == "crash").then(|| {
        let (server, base, acked, restarts, env) =
            (server.clone(), base.clone(), acked.clone(), restarts.clone(), env.map(|(k, v)| (k.to_string(), v.to_string())));
        let binary = binary.to_string();
        tokio::spawn(async move {
            while acked.load(std::sync::atomic::Ordering::Relaxed) < total / 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            {
                let mut s = server.lock().unwrap();
                let _ = s.kill(); // SIGKILL: nothing is flushed or finished on the way out
                let _ = s.wait();
            }
            let (again, url) = tokio::task::spawn_blocking(move || {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                start_server(&binary, &env)
            })
            .await
            .expect("restart");
            *server.lock().unwrap() = again;
            *base.lock().unwrap() = url;
            restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            eprintln!("bench: server killed (SIGKILL) and started again");
        })
    });
    let watcher = {
        let (server, peak) = (server.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let pid = server.lock().unwrap().id();
                match rss_kib(pid) {
                    Some(kib) => {
                        peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                    }
                    None => {}
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (client, base, auth, user_id, acked, next) = (client.clone(), base.clone(), auth.clone(), user_id.clone(), acked.clone(), next.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let mut retries: std::collections::BTreeMap<u16, u64> = Default::default();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let body = json!({"content_type": "text", "caption": format!("Load {i}: the three edits that doubled our watch time"), "user_id": user_id}).to_string();
                    let key = format!("load-{i}");
                    let (name, value) = auth.split_once(':').unwrap();
                    // Retried with the same key until acknowledged: a crash must not lose it or make it twice.
                    loop {
                        let url = format!("{}/api/v1/analyze", base.lock().unwrap().clone());
                        let headers = [(name, value), ("content-type", "application/json"), ("idempotency-key", key.as_str())];
                        let (status, answer) = request(&client, "POST", &url, &headers, Some(body.clone())).await;
                        if status == 201 {
                            let id = serde_json::from_slice::<Value>(&answer).unwrap()["job_id"].as_str().unwrap().to_string();
                            ids.push(id);
                            acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                        *retries.entry(status).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                (ids, retries)
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(total);
    let mut retries: std::collections::BTreeMap<String, u64> = Default::default();
    for w in workers {
        let (mine, r) = w.await.unwrap();
        ids.extend(mine);
        for (status, n) in r {
            // 0: no answer at all (the connection dropped or was refused).
            *retries.entry(status.to_string()).or_default() += n;
        }
    }
    let submitted = started.elapsed();
    eprintln!("bench: {} submissions acknowledged in {:.1} s; waiting for every job", ids.len(), submitted.as_secs_f64());
    if let Some(k) = killer {
        let _ = k.await;
    }
    let (name, value) = auth.split_once(':').unwrap();
    let _ = (name, value);
    let bearer = {
        let creds = json!({"client_id": user["client_id"], "client_secret": user["client_secret"]}).to_string();
        let url = format!("{}/api/v1/auth/token", base.lock().unwrap().clone());
        let (_, body) = request(&client, "POST", &url, &[("content-type", "application/json")], Some(creds)).await;
        format!("Bearer {}", serde_json::from_slice::<Value>(&body).unwrap()["access_token"].as_str().unwrap())
    };
    let url = base.lock().unwrap().clone();
    let drained = wait_complete(&client, &url, &bearer, &ids, Duration::from_secs(600)).await;
    watcher.abort();
    {
        let mut s = server.lock().unwrap();
        let _ = s.kill();
        let _ = s.wait();
    }
    let audit = audit_jobs(&data_dir.join("goviral.db"), &ids).await;
    let _ = std::fs::remove_dir_all(&data_dir);
    json!({
        "mode": mode,
        "submissions": total,
        "clients": clients,
        "server_restarts_after_sigkill": restarts.load(std::sync::atomic::Ordering::Relaxed),
        "client_retries_by_status": retries,
        "submit_seconds": (submitted.as_secs_f64() * 100.0).round() / 100.0,
        "acknowledged_per_sec": (ids.len() as f64 / submitted.as_secs_f64()).round(),
        "all_complete_after_secs": ((submitted + drained).as_secs_f64() * 10.0).round() / 10.0,
        "jobs_per_sec_end_to_end": (ids.len() as f64 / (submitted + drained).as_secs_f64()).round(),
        "server_peak_rss_mib": mib(peak.load(std::sync::atomic::Ordering::Relaxed)),
        "audit": audit,
    })
}

/// `n` live streams held open at once on `n` waiting jobs (the server runs no pipeline, so
/// every stream stays open on heartbeats): the server's memory idle and with them all open,
/// and whether each stream got its job's first event and heartbeats.
async fn streams_bench(binary: &str, n: usize) -> Value {
    let data_dir = std::env::temp_dir().join(format!("goviral-bench-streams-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let env = [
        ("GOVIRAL_DATA_DIR", data_dir.to_str().unwrap()),
        ("GOVIRAL_RATE_LIMIT_ENTERPRISE", "1000000000"),
        ("GOVIRAL_HTTP_MAX_CONNECTIONS", "4096"),
        // Capacity, not fairness: one client holds every stream here.
        ("GOVIRAL_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "4096"),
        ("GOVIRAL_STREAMS_PER_USER", "100000"),
        ("GOVIRAL_STREAMS_PER_KEY", "100000"),
        ("GOVIRAL_STREAM_HEARTBEAT_MS", "1000"),
        ("RUST_LOG", "warn"),
    ];
    let user = create_user(binary, &env, "streams@example.com");
    let (mut server, base) = start_server_with(binary, &env, &["--no-pipeline"]);
    let pid = server.id();
    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(n + 8).build_http();
    let key = user["api_key"].as_str().unwrap().to_string();
    let mut jobs = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"content_type": "text", "caption": format!("Stream {i}: 3 habits"), "user_id": user["user_id"]}).to_string();
        let (status, bytes) = request(
            &client,
            "POST",
            &format!("{base}/api/v1/analyze"),
            &[("x-api-key", &key), ("content-type", "application/json")],
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
        jobs.push(serde_json::from_slice::<Value>(&bytes).unwrap()["job_id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(pid).unwrap_or(0);
    let hold = Duration::from_secs(5);
    let opened = Instant::now();
    let streams: Vec<_> = jobs
        .iter()
        .map(|job| {
            let (client, key, url) = (client.clone(), key.clone(), format!("{base}/api/v1/analyze/{job}/events"));
            tokio::spawn(async move {
                let req = http::Request::builder().uri(url).header("x-api-key", key).body(Full::new(Bytes::new())).unwrap();
                let Ok(resp) = client.request(req).await else { return (0u16, String::new()) };
                let status = resp.status().as_u16();
                let mut body = resp.into_body();
                let mut text = String::new();
                let deadline = tokio::time::Instant::now() + hold;
                while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
                    if let Some(data) = frame.data_ref() {
                        text.push_str(&String::from_utf8_lossy(data));
                    }
                }
                (status, text)
            })
        })
        .collect();
    let mut peak = 0;
    while opened.elapsed() < hold {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ok = 0;
    for s in streams {
        let (status, text) = s.await.expect("stream task");
        if status == 200 && text.starts_with("id: 1\nevent: queued\n") && text.contains(": heartbeat") {
            ok += 1;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&data_dir);
    json!({
        "streams": n,
        "held_secs": hold.as_secs(),
        "streams_with_their_event_and_heartbeats": ok,
        "server_rss_idle_mib": mib(idle),
        "server_rss_with_streams_open_mib": mib(peak),
        "per_stream_kib": ((peak.saturating_sub(idle)) as f64 / n.max(1) as f64 * 10.0).round() / 10.0,
    })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// The unauthenticated flood (see the module doc). Each attacker alternates an unknown client
/// id at the token exchange and an unknown, well-formed API key on an authenticated route.
#[allow(clippy::too_many_arguments)]
async fn attack_bench(
    client: &HttpClient,
    base: &str,
    pid: u32,
    auth: &str,
    api_key: &str,
    job: &str,
    length: Duration,
    attackers: usize,
) -> Value {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(pid).unwrap_or(0);
    let deadline = Instant::now() + length;
    let statuses: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let flood: Vec<_> = (0..attackers)
        .map(|i| {
            let (base, statuses) = (base.to_string(), statuses.clone());
            tokio::spawn(async move {
                let mut connector = HttpConnector::new();
                connector.set_local_address(Some(std::net::IpAddr::from([127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8])));
                let attacker: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let (status, _) = if n % 2 == 0 {
                        let body = json!({"client_id": uuid::Uuid::new_v4(), "client_secret": "guess"}).to_string();
                        request(
                            &attacker,
                            "POST",
                            &format!("{base}/api/v1/auth/token"),
                            &[("content-type", "application/json")],
                            Some(body),
                        )
                        .await
                    } else {
                        let key = format!("gvk_{:012x}_{}", (i as u64) << 24 | n, "A".repeat(43));
                        request(&attacker, "GET", &format!("{base}/api/v1/keys"), &[("x-api-key", &key)], None).await
                    };
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(idle));
    let watcher = {
        let peak = peak.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // The real client: a bearer token and a (verified, cached) API key, one request at a time.
    let mut latencies = Vec::new();
    let mut failures = 0;
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let url = format!("{base}/api/v1/analyze/{job}");
        let header = if i % 2 == 0 { ("authorization", auth) } else { ("x-api-key", api_key) };
        let started = Instant::now();
        let (status, _) = request(client, "GET", &url, &[header], None).await;
        latencies.push(started.elapsed().as_micros() as u64);
        if status != 200 {
            failures += 1;
        }
    }
    for f in flood {
        let _ = f.await;
    }
    let _ = watcher.await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid).unwrap_or(0);
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    json!({
        "attackers": attackers,
        "seconds": length.as_secs(),
        "flood_answers": statuses.lock().unwrap().iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "server_rss_mib": {"idle": mib(idle), "peak": mib(peak), "peak_over_idle": mib(peak.saturating_sub(idle)), "2_s_after": mib(after)},
        "real_client": {"requests": latencies.len(), "failed": failures, "p50_ms": pct(0.5), "p99_ms": pct(0.99)},
    })
}

/// What another user sees during a flood, on connections of their own opened during it (as a
/// new visitor's would be): their reads' latency, their caption's time to complete, and
/// health's answer time. A request not answered within 5 s counts as failed.
async fn victim_probe(base: &str, key: &str, user_id: &str, job: &str, length: Duration) -> Value {
    const PATIENCE: Duration = Duration::from_secs(5);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let ask = |method: &'static str, url: String, headers: Vec<(&'static str, String)>, body: Option<String>| {
        let client = client.clone();
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            tokio::time::timeout(PATIENCE, request(&client, method, &url, &headers, body)).await.ok()
        }
    };
    let healthz_started = Instant::now();
    let healthz = ask("GET", format!("{base}/healthz"), vec![], None).await.map(|(s, _)| s);
    let healthz_ms = healthz.map(|_| (healthz_started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0);
    let caption_started = Instant::now();
    let body = json!({"content_type": "text", "caption": "5 mistakes everyone makes with sourdough", "user_id": user_id}).to_string();
    let submitted = ask(
        "POST",
        format!("{base}/api/v1/analyze"),
        vec![("x-api-key", key.to_string()), ("content-type", "application/json".to_string())],
        Some(body),
    )
    .await;
    let caption = submitted
        .filter(|(status, _)| *status == 201)
        .and_then(|(_, bytes)| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|b| b["job_id"].as_str().map(str::to_string));
    let mut caption_ms = None;
    if let Some(id) = caption {
        while caption_started.elapsed() < Duration::from_secs(30) {
            let read = ask("GET", format!("{base}/api/v1/analyze/{id}"), vec![("x-api-key", key.to_string())], None).await;
            if read.is_some_and(|(_, bytes)| serde_json::from_slice::<Value>(&bytes).is_ok_and(|b| b["status"] == "complete")) {
                caption_ms = Some(caption_started.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    let until = Instant::now() + length;
    while Instant::now() < until {
        let started = Instant::now();
        match ask("GET", format!("{base}/api/v1/analyze/{job}"), vec![("x-api-key", key.to_string())], None).await {
            Some((200, _)) => latencies.push(started.elapsed().as_micros() as u64),
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies.get(((latencies.len().max(1) as f64 - 1.0) * p).round() as usize).map(|us| *us as f64 / 1000.0);
    json!({
        "healthz_status": healthz, "healthz_ms": healthz_ms,
        "caption_complete_ms": caption_ms.map(f64::round),
        "reads": latencies.len(), "reads_failed": failed, "read_p50_ms": pct(0.5), "read_p99_ms": pct(0.99),
    })
}

/// A source that answers an MP4's first bytes, then a byte every 100 ms, forever.
async fn trickling_source() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let head = b"HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\n\r\n\0\0\0\x18ftypmp42\0\0\0\0mp42isom";
                if stream.write_all(head).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if stream.write_all(b"\0").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, task)
}

/// The three floods of issue 23, one after another on one server (see the module doc).
async fn floods_bench(binary: &str, length: Duration) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data_dir = std::env::temp_dir().join(format!("goviral-bench-floods-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let env = [
        ("GOVIRAL_DATA_DIR", data_dir.to_str().unwrap()),
        ("GOVIRAL_RATE_LIMIT_ENTERPRISE", "1000000000"),
        // The slow sources are on this machine.
        ("GOVIRAL_MEDIA_ALLOW_LOOPBACK", "true"),
        ("RUST_LOG", "error"),
    ];
    let attacker = create_user(binary, &env, "attacker@example.com");
    let victim = create_user(binary, &env, "victim@example.com");
    let (mut server, base) = start_server(binary, &env);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let (victim_key, victim_id) = (victim["api_key"].as_str().unwrap().to_string(), victim["user_id"].as_str().unwrap().to_string());
    let (attacker_key, attacker_id) =
        (attacker["api_key"].as_str().unwrap().to_string(), attacker["user_id"].as_str().unwrap().to_string());
    let submit = |key: String, body: Value| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let (status, bytes) = request(
                &client,
                "POST",
                &format!("{base}/api/v1/analyze"),
                &[("x-api-key", &key), ("content-type", "application/json")],
                Some(body.to_string()),
            )
            .await;
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
            serde_json::from_slice::<Value>(&bytes).unwrap()["job_id"].as_str().unwrap().to_string()
        }
    };
    let victim_job = submit(victim_key.clone(), json!({"content_type": "text", "caption": "A post of mine", "user_id": victim_id})).await;
    let server_addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let quiet = victim_probe(&base, &victim_key, &victim_id, &victim_job, length).await;

    // 1. One address holds 1,100 keep-alive connections, each asking for health every 20 s.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let holders: Vec<_> = (0..1_100)
        .map(|_| {
            let (stop, served) = (stop.clone(), served.clone());
            tokio::spawn(async move {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(std::net::SocketAddr::from(([127, 0, 2, 1], 0))).unwrap();
                let Ok(mut stream) = socket.connect(server_addr).await else { return };
                let mut buf = [0u8; 1024];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.is_err() {
                        return;
                    }
                    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => served.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        _ => return,
                    };
                    for _ in 0..200 {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();
    // Every holder is answered or has given up (5 s) before the victim comes.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let keep_alive = victim_probe(&base, &victim_key, &victim_id, &victim_job, length).await;
    let keep_alive_served = served.load(std::sync::atomic::Ordering::Relaxed);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in holders {
        let _ = h.await;
    }

    // 2. One user opens 1,100 live streams on a job of theirs that stays under way (its source
    //    trickles), from many addresses, so the per-user and per-key caps are what stop them.
    let (source, source_task) = trickling_source().await;
    let streamed_job = submit(
        attacker_key.clone(),
        json!({"content_type": "video", "source_url": format!("{source}/v/streamed.mp4"), "user_id": attacker_id}),
    )
    .await;
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let streams: Vec<_> = (0..1_100usize)
        .map(|i| {
            let (stop, statuses, key, url) =
                (stop.clone(), statuses.clone(), attacker_key.clone(), format!("{base}/api/v1/analyze/{streamed_job}/events"));
            tokio::spawn(async move {
                let mut connector = HttpConnector::new();
                connector.set_local_address(Some(std::net::IpAddr::from([127, 0, 3 + (i / 250) as u8, 1 + (i % 250) as u8])));
                let attacker: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
                let req = http::Request::builder().uri(url).header("x-api-key", key).body(Full::new(Bytes::new())).unwrap();
                let Ok(resp) = attacker.request(req).await else { return };
                *statuses.lock().unwrap().entry(resp.status().as_u16()).or_default() += 1;
                let mut body = resp.into_body();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(200), body.frame()).await {
                        Ok(Some(Ok(_))) | Err(_) => {}
                        _ => return,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stream_flood = victim_probe(&base, &victim_key, &victim_id, &victim_job, length).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in streams {
        let _ = s.await;
    }
    let stream_statuses: std::collections::BTreeMap<String, u64> =
        statuses.lock().unwrap().iter().map(|(s, n)| (s.to_string(), *n)).collect();

    // 3. One user sends 20 videos whose source trickles.
    for i in 0..20 {
        let body =
            json!({"content_type": "video", "source_url": format!("{source}/v/{i}.mp4"), "caption": "Wait for it", "user_id": attacker_id});
        submit(attacker_key.clone(), body).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let slow_sources = victim_probe(&base, &victim_key, &victim_id, &victim_job, length).await;
    source_task.abort();

    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&data_dir);
    json!({
        "quiet": quiet,
        "keep_alive_1100_from_one_address": {"victim": keep_alive, "attacker_requests_answered": keep_alive_served},
        "streams_1100_from_one_user": {"victim": stream_flood, "attacker_answers": stream_statuses},
        "slow_sources_20_from_one_user": {"victim": slow_sources},
    })
}

fn rfc3339_us(v: &Value) -> Option<i64> {
    let t = time::OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000) as i64)
}

/// Submits `total` jobs, waits until every one is complete, and reports submit→complete latency
/// from the server's own timestamps (created_at → completed_at).
async fn pipeline_bench<F, Fut>(client: &HttpClient, base: &str, auth: Arc<String>, total: usize, connections: usize, submit: F) -> Value
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (u16, Bytes)> + Send,
{
    let (submitted, bodies) = run_phase("submit", total, connections, submit).await;
    let ids: Vec<String> =
        bodies.iter().filter_map(|b| serde_json::from_slice::<Value>(b).ok()?["job_id"].as_str().map(String::from)).collect();
    assert_eq!(ids.len(), total, "every submission was accepted");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut pending: Vec<String> = ids.clone();
    let mut finished: Vec<Value> = Vec::new();
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "{} jobs still unfinished after 300 s", pending.len());
        let mut still = Vec::new();
        for id in pending {
            let (_, body) = request(client, "GET", &format!("{base}/api/v1/analyze/{id}"), &[("authorization", &auth)], None).await;
            let job: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match job["status"].as_str() {
                Some("complete") | Some("failed") => finished.push(job),
                _ => still.push(id),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let failed = finished.iter().filter(|j| j["status"] == "failed").count();
    let mut latencies: Vec<i64> =
        finished.iter().filter_map(|j| Some(rfc3339_us(&j["completed_at"])? - rfc3339_us(&j["created_at"])?)).collect();
    latencies.sort_unstable();
    let first = finished.iter().filter_map(|j| rfc3339_us(&j["created_at"])).min().unwrap();
    let last = finished.iter().filter_map(|j| rfc3339_us(&j["completed_at"])).max().unwrap();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    json!({
        "server": "goviral serve (embedded default: SQLite WAL, in-process pipeline runner)",
        "jobs": total,
        "failed": failed,
        "submit_connections": connections,
        "submit_req_per_sec": submitted.report()["req_per_sec"],
        "submit_to_complete_ms": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)},
        "jobs_per_sec": (total as f64 / ((last - first) as f64 / 1e6)).round(),
    })
}

/// Captions of varied shape, generated so the bench needs no data files.
fn captions(n: usize) -> Vec<String> {
    const OPENERS: &[&str] = &[
        "5 mistakes everyone makes with",
        "Here's why nobody talks about",
        "I tried",
        "What happens when you stop",
        "The truth about",
        "This 9-year-old changed how we think about",
    ];
    const TOPICS: &[&str] =
        &["sourdough", "morning routines", "city cycling", "budget travel", "houseplants", "public speaking", "cold showers"];
    const TAILS: &[&str] = &[
        "",
        " for 30 days",
        " and it changed everything!",
        " (watch till the end) #tips #learn",
        "\nFollow for part 2 🔥",
        "?",
        // Posts of several sentences: each later one is also tried as the opening.
        ". I finally figured out what works after 3 years of getting it wrong. Here is the exact routine I use every single week. Save this so you have it later!",
        "\nMost people skip the first step because nobody explains it. I tested 4 methods over 30 days and one was clearly better. The results surprised me more than I expected.\n#learn #tips",
    ];
    (0..n).map(|i| format!("{} {}{}", OPENERS[i % OPENERS.len()], TOPICS[(i / 6) % TOPICS.len()], TAILS[(i / 42) % TAILS.len()])).collect()
}

/// In-process: model load time and per-text latency. Then `goviral score` end to end: texts/s
/// and the process's peak memory.
fn scorer_bench(binary: &str, total: usize) {
    use std::io::Write;
    let started = Instant::now();
    let model = goviral_scoring::Model::embedded();
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let texts = captions(total);
    let mut latencies: Vec<f64> = texts
        .iter()
        .map(|t| {
            let s = Instant::now();
            std::hint::black_box(goviral_scoring::score(model, t, None));
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];

    let input: String =
        texts.iter().map(|t| format!("{}\n", json!({"content_type": "text", "caption": t, "platform_hint": "tiktok"}))).collect();
    let started = Instant::now();
    let mut child = Command::new(binary).arg("score").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("run goviral score");
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut stdout = child.stdout.take().unwrap();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let peak = peak.clone();
        std::thread::spawn(move || {
            while let Some(kib) = peak_rss_kib(pid) {
                peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    let status = child.wait().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    writer.join().unwrap().unwrap();
    watcher.join().unwrap();
    assert!(status.success() && out.lines().count() == total, "goviral score failed");
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "model": model.header.name,
            "model_load_ms": (load_ms * 100.0).round() / 100.0,
            "per_text_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
            "in_process_texts_per_sec": (total as f64 / latencies.iter().sum::<f64>() * 1000.0).round(),
            "cli": {"texts": total, "seconds": elapsed, "texts_per_sec": (total as f64 / elapsed).round(), "peak_rss_mib": peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0},
        }))
        .unwrap()
    );
}

/// A clip of `seconds` at `size` (test pattern, a burned-in caption in the hook, hard cuts
/// every 10 s) with LibriVox speech (Debian pocketsphinx-testdata) looped under it.
fn media_clip(dir: &std::path::Path, size: &str, seconds: u32) -> std::path::PathBuf {
    let librivox = "/usr/share/pocketsphinx/test/data/librivox";
    let mut wavs: Vec<_> = std::fs::read_dir(librivox)
        .expect("pocketsphinx-testdata is installed (scripts/media-tools --test)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    wavs.sort();
    let out = dir.join(format!("clip-v2-{size}-{seconds}s.mp4"));
    if out.is_file() {
        return out;
    }
    let partial = dir.join(format!("partial-{}.mp4", std::process::id()));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y"]);
    // A new shot every 10 s: a different test source each time.
    const SHOTS: &[&str] = &["testsrc2", "smptehdbars", "testsrc", "rgbtestsrc", "yuvtestsrc", "pal100bars"];
    let shots = (seconds as usize).div_ceil(10);
    for i in 0..shots {
        cmd.args(["-f", "lavfi", "-i", &format!("{}=s={size}:r=30:d=10", SHOTS[i % SHOTS.len()])]);
    }
    for w in &wavs {
        cmd.arg("-i").arg(w);
    }
    let n = wavs.len();
    let video_inputs: String = (0..shots).map(|i| format!("[{i}:v]")).collect();
    let inputs: String = (shots..shots + n).map(|i| format!("[{i}:a]")).collect();
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";
    let graph = format!(
        "{video_inputs}concat=n={shots}:v=1:a=0,drawtext=fontfile={font}:text='WAIT FOR IT':fontsize=h/12:fontcolor=white:borderw=4:bordercolor=black:x=(w-text_w)/2:y=h*0.7:enable='lt(t,3)'[v];\
         {inputs}concat=n={n}:v=0:a=1,aloop=loop=-1:size=2e9,atrim=0:{seconds}[a]"
    );
    cmd.args(["-filter_complex", &graph, "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]);
    cmd.args(["-c:a", "aac", "-t", &seconds.to_string()]).arg(&partial);
    let made = cmd.output().expect("run ffmpeg");
    assert!(made.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&made.stderr));
    std::fs::rename(&partial, &out).unwrap();
    out
}

/// Upload → `complete` for real videos through `goviral serve`: the upload (signed PUT to
/// the local blob route), the submission, and polling until the job is done.
async fn media_bench(binary: &str, runs: usize) -> Value {
    let whisper = std::env::var("GOVIRAL_WHISPER_DIR").expect("GOVIRAL_WHISPER_DIR (scripts/bench sets it up)");
    let faces = std::env::var("GOVIRAL_FACE_MODEL").expect("GOVIRAL_FACE_MODEL (scripts/bench sets it up)");
    let data_dir = std::env::temp_dir().join(format!("goviral-bench-media-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let env = [
        ("GOVIRAL_DATA_DIR", data_dir.to_str().unwrap()),
        ("GOVIRAL_RATE_LIMIT_ENTERPRISE", "1000000"),
        ("GOVIRAL_WHISPER_DIR", whisper.as_str()),
        ("GOVIRAL_FACE_MODEL", faces.as_str()),
        ("RUST_LOG", "warn"),
    ];
    let user = create_user(binary, &env, "bench@example.com");
    // Made once per machine (a minute of encoding), then reused.
    let clips = std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache/goviral/bench-clips");
    std::fs::create_dir_all(&clips).unwrap();
    let started = Instant::now();
    let short = media_clip(&clips, "1280x720", 60);
    let tall = media_clip(&clips, "1080x1920", 180);
    eprintln!("clips made in {:.1} s", started.elapsed().as_secs_f64());

    let (mut server, base) = start_server(binary, &env);
    let pid = server.id();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let key = user["api_key"].as_str().unwrap().to_string();
    let user_id = user["user_id"].as_str().unwrap().to_string();

    let one = |file: std::path::PathBuf| {
        let (client, base, key, user_id) = (client.clone(), base.clone(), key.clone(), user_id.clone());
        async move {
            let bytes = std::fs::read(&file).unwrap();
            let t0 = Instant::now();
            let body = json!({"media_type": "video/mp4", "size_bytes": bytes.len()}).to_string();
            let (status, up) = request(
                &client,
                "POST",
                &format!("{base}/api/v1/uploads"),
                &[("x-api-key", &key), ("content-type", "application/json")],
                Some(body),
            )
            .await;
            assert_eq!(status, 201, "upload: {}", String::from_utf8_lossy(&up));
            let up: Value = serde_json::from_slice(&up).unwrap();
            let url = up["upload"]["url"].as_str().expect("an upload URL").to_string();
            let put = hyper::Request::builder()
                .method("PUT")
                .uri(&url)
                .header("content-type", "video/mp4")
                .body(Full::new(Bytes::from(bytes)))
                .unwrap();
            let resp = client.request(put).await.expect("PUT");
            assert!(resp.status().is_success(), "PUT {}", resp.status());
            let body =
                json!({"content_type": "video", "upload_id": up["upload_id"], "user_id": user_id, "platform_hint": "tiktok"}).to_string();
            let deadline = Instant::now() + Duration::from_secs(120);
            let job = loop {
                let (status, b) = request(
                    &client,
                    "POST",
                    &format!("{base}/api/v1/analyze"),
                    &[("x-api-key", &key), ("content-type", "application/json")],
                    Some(body.clone()),
                )
                .await;
                if status == 201 {
                    break serde_json::from_slice::<Value>(&b).unwrap()["job_id"].as_str().unwrap().to_string();
                }
                // The upload is taken in asynchronously (409 until then).
                assert!(status == 409 && Instant::now() < deadline, "analyze: {status} {}", String::from_utf8_lossy(&b));
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            loop {
                let (_, b) =
                    request(&client, "GET", &format!("{base}/api/v1/analyze/{job}?expand=metrics"), &[("x-api-key", &key)], None).await;
                let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                match v["status"].as_str() {
                    Some("complete") => break (t0.elapsed(), v),
                    Some("failed") => panic!("the job failed: {v}"),
                    _ => {
                        assert!(Instant::now() < deadline, "not complete in 120 s");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    };
    let mut times = Vec::new();
    let mut last = Value::Null;
    for _ in 0..runs {
        let (elapsed, job) = one(short.clone()).await;
        times.push(elapsed.as_secs_f64());
        last = job;
    }
    let (tall_elapsed, tall_job) = one(tall.clone()).await;
    let peak = peak_rss_kib(pid);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| (sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] * 100.0).round() / 100.0;
    let media = &last["metrics"]["media"];
    json!({
        "server": "goviral serve (embedded default: SQLite, in-process runner, ffmpeg + whisper-tiny.en + tesseract)",
        "clip_60s_720p": {
            "runs": runs,
            "upload_to_complete_s": {"p50": pct(0.5), "p95": pct(0.95), "all": times.iter().map(|t| (t * 100.0).round() / 100.0).collect::<Vec<_>>()},
            "measured": {"cuts_per_minute": media["scenes"]["cuts_per_minute"], "words": media["speech"]["words"], "words_per_minute": media["speech"]["words_per_minute"], "loudness_lufs": media["audio"]["loudness_lufs"], "on_screen_text": media["on_screen_text"]},
        },
        "clip_180s_1080x1920": {
            "upload_to_complete_s": (tall_elapsed.as_secs_f64() * 100.0).round() / 100.0,
            "words": tall_job["metrics"]["media"]["speech"]["words"],
        },
        "server_peak_rss_mib": peak.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0),
        "note": "peak RSS is the server's own; ffmpeg and tesseract run as child processes",
    })
}
