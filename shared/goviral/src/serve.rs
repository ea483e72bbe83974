//! The local server: every endpoint on one listener, the pipeline runner, and the timers the
//! cloud runs as scheduled jobs (here: purging expired counters, the quota job, the outcome
//! collection, weekly retraining). Everything comes from the one composition root.

use std::net::SocketAddr;
use std::time::Duration;

use domain::ports::Counters;
use goviral_app::Config;

pub async fn run(mut config: Config, run_pipeline: bool) -> Result<(), goviral_app::InitError> {
    let listener = tokio::net::TcpListener::bind(config.bind).await.map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let local = listener.local_addr()?;
    // Signed blob URLs point at this server; known only once it is bound (port 0).
    config.public_url.get_or_insert_with(|| default_public_url(local));
    let (server_limits, database_url) = (config.server.clone(), config.database_url.clone());
    let composition = goviral_app::Composition::new(config);
    let (app, router) = composition.local_router().await?;
    let store = composition.store().await?;
    let runner = composition.runner().await?;

    let purge = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                let now_us = domain::model::to_micros(domain::model::now());
                if let Err(e) = Counters::purge_expired(store.as_ref(), now_us).await {
                    tracing::warn!(error = %e, "purging expired counters failed");
                }
            }
        })
    };

    // The quota job (`cron-quota` on AWS): usage notices and the billing export to Stripe
    // (where configured) every minute; usage totals reconciled with the ledger hourly.
    let quota = {
        let (store, sink) = (store.clone(), composition.meter_sink());
        let (webhooks, terms) = (composition.webhook_sender(), composition.usage_terms());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            let job = domain::usage::QuotaJob { store: store.as_ref(), webhooks: webhooks.as_ref(), sink: sink.as_deref(), terms: &terms };
            for minute in 0u64.. {
                every.tick().await;
                if let Some(e) = job.run(domain::model::now(), minute % 60 == 0).await.error() {
                    tracing::warn!(error = %e, "a step of the quota job failed; it runs again in a minute");
                }
            }
        })
    };

    // The outcome collection (`cron-outcomes` on AWS): followed posts read when due.
    let outcomes = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(300));
        loop {
            every.tick().await;
            match app.collect_outcomes(500).await {
                Ok(r) if r.due > 0 || r.tokens_refreshed > 0 => {
                    tracing::info!(due = r.due, observed = r.observed, deferred = r.deferred, ended = r.ended, "collected outcomes")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the outcome collection failed; it runs again in 5 minutes"),
            }
        }
    });

    // Retraining (`cron-retrain` on AWS): weekly, where training data is configured. A
    // candidate is registered; nothing serves until an admin approves and promotes it.
    let retrain = match composition.config.training_dir.clone() {
        None => None,
        Some(dir) => {
            let (store, blobs, serving) = (store.clone(), composition.blobs()?, composition.serving(store.clone())?);
            Some(tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(7 * 86_400));
                every.tick().await; // not at start-up
                loop {
                    every.tick().await;
                    let done = match goviral_scoring::retrain::TrainingData::from_dir(&dir) {
                        Ok(data) => {
                            let (data, code) = (std::sync::Arc::new(data), goviral_app::code_version());
                            goviral_scoring::retrain::retrain(store.as_ref(), blobs.as_ref(), &serving, data, 20261124, code)
                                .await
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e),
                    };
                    match done {
                        Ok(r) => tracing::info!(version = %r.version.label(), gate_passed = r.version.gate_passed, "retrained a candidate"),
                        Err(e) => tracing::warn!(error = %e, "retraining failed; it runs again next week"),
                    }
                }
            }))
        }
    };

    let (stop_runner, runner_stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(async move {
        if run_pipeline {
            runner.run(runner_stopped).await
        }
    });

    // The one line scripts wait for; stdout so it can be parsed.
    println!("{}", serde_json::json!({"listening": format!("http://{local}"), "database": redact(&database_url)}));
    tracing::info!(%local, "GoViralNow serving on the embedded default");
    goviral_api::server::serve(listener, router, server_limits, shutdown_signal()).await?;
    purge.abort();
    quota.abort();
    outcomes.abort();
    if let Some(r) = retrain {
        r.abort();
    }
    let _ = stop_runner.send(true);
    let _ = runner.await;
    store.close().await;
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
