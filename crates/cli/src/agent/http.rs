//! The agent's HTTP endpoints: `/metrics`, `/healthz`, `/readyz` and `/` (the status page).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use lifeboat_core::Cancel;

use super::Agent;
use super::http_access::{Access, Peer, guard};

/// How long a client has for the TLS handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

pub async fn serve(
    agent: Arc<Agent>,
    listener: tokio::net::TcpListener,
    (access, tls): (Arc<Access>, Option<tokio_rustls::TlsAcceptor>),
    stop: Cancel,
) {
    let guarded = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(access, guard));
    let router = guarded
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(agent);
    let Some(tls) = tls else {
        let plain = router.layer(Extension(Peer { certified: false }));
        let shutdown = async move {
            stop.cancelled().await;
        };
        if let Err(error) = axum::serve(listener, plain)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("the HTTP server stopped: {error}");
        }
        return;
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(error) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::warn!("the HTTP server cannot accept a connection: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, router) = (tls.clone(), router.clone());
        connections.spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_LIMIT, tls.accept(tcp)).await else {
                return;
            };
            let certified = stream
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let service =
                hyper_util::service::TowerToHyperService::new(router.layer(Extension(Peer { certified })));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
    // Requests in flight get a moment; the agent's stop must stay within its bound.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

async fn metrics(State(agent): State<Arc<Agent>>) -> Response {
    agent.refresh_capture_lag();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        agent.metrics.encode(&agent.cluster_label()),
    )
        .into_response()
}

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the repository answered at the last look and, with `leader: etcd`, the agent joined
/// the leader election.
async fn readyz(State(agent): State<Arc<Agent>>) -> Response {
    let status = agent.status();
    let reason = match (&status.repository_checked, status.leadership.known) {
        (None, _) => Some("the repository has not been listed yet".to_string()),
        (Some(Err(error)), _) => Some(format!("the repository is unreachable: {error}")),
        (Some(Ok(_)), false) => Some("the agent has not joined the leader election yet".to_string()),
        (Some(Ok(_)), true) => None,
    };
    match reason {
        None => (StatusCode::OK, "ready\n".to_string()).into_response(),
        // Probes read it without credentials: URLs lose what can carry one, as on the page.
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", super::page::redact(&reason)),
        )
            .into_response(),
    }
}

async fn page(State(agent): State<Arc<Agent>>) -> Html<String> {
    Html(super::page::render(&agent, SystemTime::now()))
}
