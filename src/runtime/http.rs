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
    data: std::path::PathBuf,
}

pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    to_switch: mpsc::Sender<ToSwitch>,
    media: super::media::MediaCounters,
    data: std::path::PathBuf,
) {
    let app = Router::new()
        .route("/api/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/calls", get(calls))
        .route("/api/v1/demo/customers/{number}", get(demo_customer))
        .route("/api/v1/agents", get(agents))
        .route(
            "/api/v1/agents/{id}/state",
            axum::routing::post(agent_state),
        )
        .route("/api/v1/queues", get(queues))
        .route("/api/v1/callbacks", axum::routing::post(schedule_callback))
        .route(
            "/api/v1/calls/{id}/priority",
            axum::routing::post(set_priority),
        )
        .with_state(AppState {
            to_switch,
            media,
            data,
        });
    let _ = axum::serve(listener, app).await;
}

/// The demo customer file's default contents, written to the data directory on first use.
const DEMO_CUSTOMERS: &str = include_str!("demo_customers.json");

/// The demo customer service the sample flow looks callers up in: `demo-customers.json` in
/// the data directory, keyed by calling number (digits only; a leading `+` is ignored).
async fn demo_customer(
    State(AppState { data, .. }): State<AppState>,
    axum::extract::Path(number): axum::extract::Path<String>,
) -> impl IntoResponse {
    let path = data.join("demo-customers.json");
    if !path.exists() {
        let _ = tokio::fs::write(&path, DEMO_CUSTOMERS).await;
    }
    let text = tokio::fs::read_to_string(&path)
        .await
        .unwrap_or_else(|_| DEMO_CUSTOMERS.to_string());
    let all: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({ "error": format!("{}: {e}", path.display()) })),
            )
        }
    };
    let key = number.trim_start_matches('+');
    match all.get(key) {
        Some(c) => {
            let today = super::local_now().date().to_string();
            let text = c.to_string().replace("\"today\"", &format!("\"{today}\""));
            let v = serde_json::from_str(&text).unwrap_or_else(|_| c.clone());
            (StatusCode::OK, axum::Json(v))
        }
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": "no such customer" })),
        ),
    }
}

async fn health() -> &'static str {
    "ok\n"
}

/// Asks the switch task something; `None` when it is gone.
async fn ask<T>(
    to_switch: &mpsc::Sender<ToSwitch>,
    msg: impl FnOnce(oneshot::Sender<T>) -> ToSwitch,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    to_switch.send(msg(tx)).await.ok()?;
    rx.await.ok()
}

fn unavailable() -> (StatusCode, axum::Json<serde_json::Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({ "error": "shutting down" })),
    )
}

fn status_name(s: crate::acd::AgentStatus) -> &'static str {
    use crate::acd::AgentStatus::*;
    match s {
        LoggedOut => "logged_out",
        Ready => "ready",
        NotReady => "not_ready",
        Offered => "offered",
        OnCall => "on_call",
        WrapUp => "wrap_up",
    }
}

fn secs(d: Option<std::time::Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0)
}

/// Every agent and their state.
async fn agents(State(AppState { to_switch, .. }): State<AppState>) -> impl IntoResponse {
    let Some(list) = ask(&to_switch, ToSwitch::Agents).await else {
        return unavailable();
    };
    let json: Vec<serde_json::Value> = list
        .into_iter()
        .map(|a| {
            serde_json::json!({
                "id": a.id.0,
                "name": a.name,
                "extension": a.extension,
                "state": status_name(a.status),
                "reason": a.reason,
                "queue": a.queue,
                "calls_handled": a.calls_handled,
                "talk_time_s": a.talk_time.as_secs(),
            })
        })
        .collect();
    (StatusCode::OK, axum::Json(serde_json::Value::Array(json)))
}

#[derive(serde::Deserialize)]
struct StateRequest {
    state: String,
    reason: Option<String>,
}

/// Changes an agent's state: `{"state": "ready" | "not_ready" | "logged_out", "reason": …}`,
/// with the agent's token as `Authorization: Bearer TOKEN`.
async fn agent_state(
    State(AppState { to_switch, .. }): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let bad = |m: String| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": m })),
        )
    };
    let req: StateRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("body: {e}")),
    };
    let state = match req.state.as_str() {
        "ready" => crate::acd::AgentStateChange::Ready,
        "not_ready" => {
            crate::acd::AgentStateChange::NotReady(req.reason.unwrap_or_else(|| "break".into()))
        }
        "logged_out" => crate::acd::AgentStateChange::LoggedOut,
        other => {
            return bad(format!(
                "unknown state `{other}`: use ready, not_ready or logged_out"
            ))
        }
    };
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let Some(result) = ask(&to_switch, |reply| ToSwitch::AgentState {
        agent: id,
        token,
        state,
        reply,
    })
    .await
    else {
        return unavailable();
    };
    match result {
        Ok(s) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "state": status_name(s) })),
        ),
        Err(crate::call::AgentRequestError::UnknownAgent) => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": "no such agent" })),
        ),
        Err(crate::call::AgentRequestError::Forbidden) => (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({ "error": "wrong or missing token" })),
        ),
    }
}

#[derive(serde::Deserialize)]
struct CallbackRequest {
    queue: String,
    number: String,
    /// Local time `YYYY-MM-DDTHH:MM`; now when absent.
    at: Option<String>,
}

fn reply_result(r: Option<Result<(), String>>) -> (StatusCode, axum::Json<serde_json::Value>) {
    match r {
        None => unavailable(),
        Some(Ok(())) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "ok": true })),
        ),
        Some(Err(e)) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": e })),
        ),
    }
}

/// Books a callback: `{"queue": "billing", "number": "+15551234", "at": "2026-11-23T15:00"}`.
async fn schedule_callback(
    State(AppState { to_switch, .. }): State<AppState>,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let req: CallbackRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return reply_result(Some(Err(format!("body: {e}")))),
    };
    let at = match req
        .at
        .as_deref()
        .map(str::parse::<crate::ivr::LocalDateTime>)
    {
        None => super::local_now(),
        Some(Ok(t)) => t,
        Some(Err(e)) => return reply_result(Some(Err(e.to_string()))),
    };
    let r = ask(&to_switch, |reply| ToSwitch::ScheduleCallback {
        queue: req.queue,
        number: req.number,
        at,
        reply,
    })
    .await;
    reply_result(r)
}

#[derive(serde::Deserialize)]
struct PriorityRequest {
    priority: i32,
}

/// Changes a waiting caller's priority: `{"priority": 10}`.
async fn set_priority(
    State(AppState { to_switch, .. }): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<u64>,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let req: PriorityRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return reply_result(Some(Err(format!("body: {e}")))),
    };
    let r = ask(&to_switch, |reply| ToSwitch::SetPriority {
        call: id,
        priority: req.priority,
        reply,
    })
    .await;
    reply_result(r)
}

/// Every queue's live and cumulative figures.
async fn queues(State(AppState { to_switch, .. }): State<AppState>) -> impl IntoResponse {
    let Some(list) = ask(&to_switch, ToSwitch::Queues).await else {
        return unavailable();
    };
    let json: Vec<serde_json::Value> = list
        .into_iter()
        .map(|q| {
            serde_json::json!({
                "queue": q.queue,
                "waiting": q.waiting,
                "longest_wait_s": secs(q.longest_wait),
                "agents": {
                    "logged_out": q.agents.logged_out, "ready": q.agents.ready,
                    "not_ready": q.agents.not_ready, "offered": q.agents.offered,
                    "on_call": q.agents.on_call, "wrap_up": q.agents.wrap_up,
                },
                "callbacks_pending": q.callbacks_pending,
                "callbacks_completed": q.callbacks_completed,
                "callbacks_failed": q.callbacks_failed,
                "entered": q.entered,
                "answered": q.answered,
                "abandoned": q.abandoned,
                "service_level": q.service_level,
                "abandon_rate": q.abandon_rate,
                "asa_s": secs(q.asa),
                "ewt_mae_s": secs(q.ewt_mae),
                "ewt_mae_relative": q.ewt_mae_relative,
                "aht_s": secs(q.aht),
            })
        })
        .collect();
    (StatusCode::OK, axum::Json(serde_json::Value::Array(json)))
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
                "flow": c.flow,
                "inputs": c.inputs,
                "queue": c.queue,
                "agent": c.agent,
                "survey": c.survey,
                "duration_ms": c.duration_ms,
            })
        })
        .collect();
    (StatusCode::OK, axum::Json(serde_json::Value::Array(json)))
}

async fn metrics(
    State(AppState {
        to_switch, media, ..
    }): State<AppState>,
) -> impl IntoResponse {
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
    let report = media.lock().map(|g| g.clone()).unwrap_or_default();
    let (m, legs) = (report.stats, report.legs);
    put(
        "switchboard_media_io_uring",
        "gauge",
        "1 when the media thread does its socket I/O on io_uring, 0 on epoll.",
        report.io_uring as u64,
    );
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
