//! HTTP: health and Prometheus metrics (the API grows here).

use super::ToSwitch;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::{mpsc, oneshot};

pub(super) async fn serve(listener: tokio::net::TcpListener, to_switch: mpsc::Sender<ToSwitch>) {
    let app = Router::new()
        .route("/api/v1/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(to_switch);
    let _ = axum::serve(listener, app).await;
}

async fn health() -> &'static str {
    "ok\n"
}

async fn metrics(State(to_switch): State<mpsc::Sender<ToSwitch>>) -> impl IntoResponse {
    let (tx, rx) = oneshot::channel();
    if to_switch.send(ToSwitch::Stats(tx)).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    }
    let Ok((s, regs)) = rx.await else {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    };
    let mut out = String::new();
    let mut put = |name: &str, kind: &str, help: &str, v: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    };
    put(
        "switchboard_sip_messages_received_total",
        "counter",
        "SIP messages received.",
        s.messages_received,
    );
    put(
        "switchboard_sip_parse_errors_total",
        "counter",
        "Malformed SIP messages.",
        s.parse_errors,
    );
    put(
        "switchboard_sip_bad_requests_answered_total",
        "counter",
        "Malformed requests answered with 4xx.",
        s.bad_requests_answered,
    );
    put(
        "switchboard_sip_rate_limited_total",
        "counter",
        "Requests dropped by the per-source rate limit.",
        s.rate_limited,
    );
    put(
        "switchboard_calls_started_total",
        "counter",
        "Calls routed to a destination.",
        s.calls_started,
    );
    put(
        "switchboard_calls_answered_total",
        "counter",
        "Calls answered.",
        s.calls_answered,
    );
    put(
        "switchboard_calls_failed_total",
        "counter",
        "Calls that ended before answer.",
        s.calls_failed,
    );
    put(
        "switchboard_calls_active",
        "gauge",
        "Calls in progress.",
        s.calls_active,
    );
    put(
        "switchboard_registrations_total",
        "counter",
        "Successful REGISTERs.",
        s.registrations_ok,
    );
    put(
        "switchboard_registrations_active",
        "gauge",
        "Live registration bindings.",
        regs as u64,
    );
    put(
        "switchboard_auth_failures_total",
        "counter",
        "Failed digest authentications.",
        s.auth_failures,
    );
    put(
        "switchboard_in_dialog_foreign_rejected_total",
        "counter",
        "In-dialog requests from strangers refused.",
        s.foreign_in_dialog_rejected,
    );
    (StatusCode::OK, out)
}
