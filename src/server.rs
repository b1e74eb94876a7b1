//! Wiring: opens storage, binds every listener, serves until a signal, then shuts down in
//! order (stop accepting, drain, final flush).

use crate::config::Config;
use anyhow::Context;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use strata_ingest::Ingester;
use strata_query::http::QueryState;
use strata_storage::Storage;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Sends responses as soon as they are written: without TCP_NODELAY a response written in
/// more than one piece (headers, then a streamed body) waits for the client's delayed ACK,
/// which adds ~40 ms to every request on a kept-alive connection.
fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

fn process_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

async fn metrics_handler() -> impl IntoResponse {
    let mut out = String::new();
    strata_storage::telemetry::render_all(strata_storage::telemetry::STORAGE_METRICS, &mut out);
    strata_storage::telemetry::render_all(strata_ingest::telemetry::INGEST_METRICS, &mut out);
    strata_storage::telemetry::render_all(
        strata_storage::token_index::TOKEN_INDEX_METRICS,
        &mut out,
    );
    strata_storage::telemetry::render_all(strata_query::prom::source::cache::METRICS, &mut out);
    out.push_str("# HELP strata_process_resident_memory_bytes Resident memory of the Strata process.\n# TYPE strata_process_resident_memory_bytes gauge\n");
    out.push_str(&format!(
        "strata_process_resident_memory_bytes {}\n",
        process_rss_bytes()
    ));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

async fn ready_handler() -> impl IntoResponse {
    if strata_storage::telemetry::WAL_FAILED.get() != 0 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Strata is not ready: the WAL refuses writes.\n",
        )
    } else {
        (StatusCode::OK, "Strata is Ready.\n")
    }
}

/// The API port's routes.
pub fn api_router(config: &Config, storage: Storage, ingester: Ingester) -> Router {
    let query = QueryState {
        storage,
        sql_limits: std::sync::Arc::new(config.query.sql.clone()),
    };
    let prometheus =
        strata_query::prom::router(query.storage.clone(), config.query.prometheus.clone());
    let loki = strata_query::loki::router(query.storage.clone(), config.query.loki.clone());
    let traces = strata_query::traces::router(query.storage.clone(), config.query.traces.clone());
    Router::new()
        .route("/-/healthy", get(|| async { "Strata is Healthy.\n" }))
        .route("/-/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler))
        .merge(strata_ingest::remote_write_http::router(ingester.clone()))
        .merge(strata_ingest::loki_push::router(ingester))
        .merge(loki)
        .merge(strata_query::http::router(query))
        .merge(prometheus)
        .merge(traces)
}

/// Runs Strata until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let storage_config = config.storage.clone();
    let storage = tokio::task::spawn_blocking(move || Storage::open(storage_config))
        .await?
        .context("cannot open storage")?;
    let ingester = Ingester::new(storage.clone(), config.ingest.clone());

    let grpc_listener = bind(config.server.otlp_grpc_addr, "OTLP/gRPC").await?;
    let otlp_http_listener = bind(config.server.otlp_http_addr, "OTLP/HTTP").await?;
    let api_listener = bind(config.server.http_addr, "the HTTP API").await?;

    let cancel = CancellationToken::new();
    let background = tokio::spawn(storage.clone().run_background(cancel.clone()));

    let c = cancel.clone();
    let grpc = tokio::spawn(strata_ingest::otlp::grpc::serve(
        ingester.clone(),
        grpc_listener,
        async move { c.cancelled().await },
    ));
    let c = cancel.clone();
    let otlp_http = tokio::spawn(
        axum::serve(
            otlp_http_listener.tap_io(no_delay),
            strata_ingest::otlp::http::router(ingester.clone()),
        )
        .with_graceful_shutdown(async move { c.cancelled().await })
        .into_future(),
    );
    let c = cancel.clone();
    let span_metrics = tokio::spawn(
        ingester
            .clone()
            .run_span_metrics(async move { c.cancelled().await }),
    );
    let c = cancel.clone();
    let api = tokio::spawn(
        axum::serve(
            api_listener.tap_io(no_delay),
            api_router(&config, storage.clone(), ingester),
        )
        .with_graceful_shutdown(async move { c.cancelled().await })
        .into_future(),
    );
    tracing::info!(
        otlp_grpc = %config.server.otlp_grpc_addr,
        otlp_http = %config.server.otlp_http_addr,
        http = %config.server.http_addr,
        data_dir = %config.storage.data_dir.display(),
        "Strata is running"
    );

    shutdown_signal().await;
    tracing::info!("shutting down: draining requests, then flushing");
    cancel.cancel();
    let _ = grpc.await;
    let _ = otlp_http.await;
    let _ = api.await;
    let _ = span_metrics.await;
    background.await?;
    tracing::info!("Strata stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
