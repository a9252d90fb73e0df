//! The agent's HTTP endpoints: `/metrics`, `/healthz`, `/readyz` and `/` (the status page).

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use lifeboat_core::Cancel;

use super::Agent;

pub async fn serve(agent: Arc<Agent>, listener: tokio::net::TcpListener, stop: Cancel) {
    let router = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(agent);
    let shutdown = async move {
        stop.cancelled().await;
    };
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("the HTTP server stopped: {error}");
    }
}

async fn metrics(State(agent): State<Arc<Agent>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        agent.metrics.encode(),
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
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")).into_response(),
    }
}

async fn page(State(agent): State<Arc<Agent>>) -> Html<String> {
    Html(super::page::render(&agent, SystemTime::now()))
}
