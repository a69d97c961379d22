//! HTTP: health and Prometheus metrics (the API grows here).

use super::ToSwitch;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::{mpsc, oneshot};

/// What the handlers share: the way to the switch task, and the media counters.
#[derive(Clone)]
struct AppState {
    to_switch: mpsc::Sender<ToSwitch>,
    media: super::media::MediaCounters,
}

pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    to_switch: mpsc::Sender<ToSwitch>,
    media: super::media::MediaCounters,
) {
    let app = Router::new()
        .route("/api/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/calls", get(calls))
        .with_state(AppState { to_switch, media });
    let _ = axum::serve(listener, app).await;
}

async fn health() -> &'static str {
    "ok\n"
}

/// Calls in progress and the most recent ended ones, newest last.
async fn calls(State(AppState { to_switch, .. }): State<AppState>) -> impl IntoResponse {
    let (tx, rx) = oneshot::channel();
    if to_switch.send(ToSwitch::Calls(tx)).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::Value::Null),
        );
    }
    let Ok(list) = rx.await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::Value::Null),
        );
    };
    let json: Vec<serde_json::Value> = list
        .into_iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "state": c.state,
                "caller": c.caller,
                "called": c.called,
                "codecs": { "caller": c.codecs[0], "callee": c.codecs[1] },
                "media": { "caller": c.media[0].map(|a| a.to_string()), "callee": c.media[1].map(|a| a.to_string()) },
                "digits": c.digits,
                "recording": c.recording.map(|p| p.display().to_string()),
                "duration_ms": c.duration_ms,
            })
        })
        .collect();
    (StatusCode::OK, axum::Json(serde_json::Value::Array(json)))
}

async fn metrics(State(AppState { to_switch, media }): State<AppState>) -> impl IntoResponse {
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
    put(
        "switchboard_dtmf_digits_total",
        "counter",
        "DTMF digits received (RFC 4733, in-band, SIP INFO).",
        s.dtmf_digits,
    );
    let (m, legs) = media.lock().map(|g| g.clone()).unwrap_or_default();
    put(
        "switchboard_media_legs",
        "gauge",
        "Media legs (socket pairs) in use.",
        legs as u64,
    );
    put(
        "switchboard_rtp_packets_received_total",
        "counter",
        "RTP packets received on media legs.",
        m.packets_in,
    );
    put(
        "switchboard_rtp_packets_relayed_total",
        "counter",
        "RTP packets relayed without decoding.",
        m.packets_relayed,
    );
    put(
        "switchboard_rtp_packets_generated_total",
        "counter",
        "RTP packets we encoded (transcoded, mixed, prompts).",
        m.packets_transcoded,
    );
    put(
        "switchboard_rtp_dropped_stranger_total",
        "counter",
        "RTP packets from a source that is not the leg's peer.",
        m.packets_dropped_stranger,
    );
    put(
        "switchboard_rtp_dropped_malformed_total",
        "counter",
        "Malformed RTP packets.",
        m.packets_dropped_malformed,
    );
    put(
        "switchboard_rtp_dropped_payload_type_total",
        "counter",
        "RTP packets with a payload type the leg did not negotiate.",
        m.packets_dropped_unexpected_pt,
    );
    put(
        "switchboard_rtp_concealed_frames_total",
        "counter",
        "Lost frames concealed on decoding paths.",
        m.concealed_frames,
    );
    put(
        "switchboard_media_ticks_skipped_total",
        "counter",
        "20 ms media ticks lost because the media thread fell more than 100 ms behind.",
        m.ticks_skipped,
    );
    (StatusCode::OK, out)
}
