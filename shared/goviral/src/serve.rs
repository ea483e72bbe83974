//! The local server: every endpoint on one listener, plus the timers the cloud runs as
//! scheduled jobs (here: purging expired counters).

use std::net::SocketAddr;
use std::time::Duration;

use domain::ports::Counters;
use goviral_app::Config;

pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(config.bind).await.map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let local = listener.local_addr()?;
    let public_url = config.public_url.clone().unwrap_or_else(|| default_public_url(local));
    let wired = goviral_app::wire(&config, Some(&public_url)).await?;
    let blobs = goviral_api::LocalBlobs {
        signer: wired.url_signer.clone().expect("wired with a public URL"),
        blobs: wired.blobs.clone(),
        store: wired.app.store.clone(),
    };
    let router = goviral_api::local_router(wired.app.clone(), blobs);

    let store = wired.store.clone();
    let purge = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            let now_us = domain::model::to_micros(domain::model::now());
            if let Err(e) = Counters::purge_expired(&store, now_us).await {
                tracing::warn!(error = %e, "purging expired counters failed");
            }
        }
    });

    let (stop_runner, runner_stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(wired.runner.clone().run(runner_stopped));

    // The one line scripts wait for; stdout so it can be parsed.
    println!("{}", serde_json::json!({"listening": format!("http://{local}"), "database": redact(&config.database_url)}));
    tracing::info!(%local, "GoViralNow serving on the embedded default");
    goviral_api::server::serve(listener, router, config.server.clone(), shutdown_signal()).await?;
    purge.abort();
    let _ = stop_runner.send(true);
    let _ = runner.await;
    wired.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Where clients reach this server when `GOVIRAL_PUBLIC_URL` does not say: the bound address,
/// with loopback standing in for "every interface".
fn default_public_url(local: SocketAddr) -> String {
    let ip = if local.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { local.ip() };
    format!("http://{}", SocketAddr::new(ip, local.port()))
}

/// Drops the password from a database URL before it is printed.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
