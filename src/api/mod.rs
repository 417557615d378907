//! The HTTP API (SPEC §4): agents and their states, queues with live figures, the calls
//! handled, and Prometheus metrics. Reads go to the signalling task (which owns the routing
//! core) as queries with a reply channel, and to the store; writes need the bearer token
//! named by `[http] token_env`, and are refused when it is unset.

pub mod followups;
pub mod session;
pub mod switches;

pub use crate::status::{caller, events};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::routing::Requested;
use crate::sip::registrar::constant_time_eq;
use crate::status::metrics::Histogram;
pub use crate::status::{
    AgentRow, ApiQuery, Gauges, LoggedIn, LoginRefused, QueueRow, StateReply, Status,
};
use crate::store::CallFilter;

#[derive(Clone)]
pub struct ApiState {
    /// What the running server shows.
    pub status: Arc<Status>,
    /// The bearer token writes need; `None` refuses every write.
    pub token: Option<String>,
    /// Desk logins (the pages, and the API reads they make).
    pub sessions: Arc<std::sync::Mutex<session::Sessions>>,
}

/// The cookie that names a desk session.
pub const COOKIE: &str = "hotline_session";

#[allow(clippy::disallowed_methods)] // the HTTP edge reads the clock; the session core does not
pub fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// 401: the request needs a desk login or the API's bearer token.
pub fn login_required() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "log in, or give the API's bearer token",
    )
}

/// The wall clock, for the times the pages write and look back from.
#[allow(clippy::disallowed_methods)] // the HTTP edge reads the clock
pub fn wall_now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Who asks: the API's bearer token (everything), or a desk login.
#[derive(Debug, Clone)]
pub enum Who {
    Token,
    Desk(session::Session),
}

impl Who {
    /// Whether they may see every agent's and every call's details.
    pub fn sees_all(&self) -> bool {
        match self {
            Who::Token => true,
            Who::Desk(s) => s.supervisor,
        }
    }

    /// The agent logged in, if a desk login.
    pub fn agent(&self) -> Option<&str> {
        match self {
            Who::Token => None,
            Who::Desk(s) => Some(&s.agent),
        }
    }
}

impl ApiState {
    pub fn new(status: Arc<Status>, token: Option<String>) -> ApiState {
        let idle = std::time::Duration::from_secs(
            u64::from(status.config.desk.session_idle_h.max(1)) * 3600,
        );
        ApiState {
            status,
            token,
            sessions: Arc::new(std::sync::Mutex::new(session::Sessions::new(idle))),
        }
    }

    pub fn sessions(&self) -> std::sync::MutexGuard<'_, session::Sessions> {
        match self.sessions.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The desk session the request's cookie names, if open.
    pub fn session(&self, headers: &HeaderMap) -> Option<session::Session> {
        let token = cookie(headers, COOKIE)?;
        self.sessions().get(&token, now())
    }

    /// Whether the request carries the API's bearer token.
    pub fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.trim().as_bytes(), token.as_bytes())
    }

    /// A change from a page: the session's own token in `X-CSRF-Token`, and, when the browser
    /// says where the page came from, that it came from here.
    pub fn page_change(
        &self,
        headers: &HeaderMap,
    ) -> Result<session::Session, (StatusCode, &'static str)> {
        let Some(s) = self.session(headers) else {
            return Err((StatusCode::UNAUTHORIZED, "log in first"));
        };
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), s.csrf.as_bytes()) {
            return Err((
                StatusCode::FORBIDDEN,
                "the page's token is missing or stale: reload it",
            ));
        }
        if let (Some(origin), Some(host)) = (
            headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
            headers.get(header::HOST).and_then(|v| v.to_str().ok()),
        ) {
            let from = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            if from != host {
                return Err((StatusCode::FORBIDDEN, "a change from another site"));
            }
        }
        Ok(s)
    }

    /// A change from a page (see `page_change`) with its JSON body read as `T`; or the JSON
    /// error to answer, `usage` saying what the body should be.
    pub fn page_request<T: serde::de::DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        usage: &str,
    ) -> Result<(session::Session, T), Box<Response>> {
        let s = self
            .page_change(headers)
            .map_err(|(status, why)| Box::new(error(status, why)))?;
        let form = serde_json::from_slice(body)
            .map_err(|_| Box::new(error(StatusCode::BAD_REQUEST, &format!("expected {usage}"))))?;
        Ok((s, form))
    }

    /// Who makes a change: the bearer token, or a page with its token (`page_change`); the
    /// JSON error to answer otherwise.
    pub fn writer(&self, headers: &HeaderMap) -> Result<Who, Box<Response>> {
        if self.bearer_ok(headers) {
            return Ok(Who::Token);
        }
        self.page_change(headers)
            .map(Who::Desk)
            .map_err(|(status, why)| Box::new(error(status, why)))
    }

    /// Who the request comes from, if anyone known.
    pub fn who(&self, headers: &HeaderMap) -> Option<Who> {
        if self.bearer_ok(headers) {
            return Some(Who::Token);
        }
        self.session(headers).map(Who::Desk)
    }
}

/// With `[http] open_reads = false`, the API's reads need the bearer token or a desk login
/// (`/health` stays open for load balancers; the pages and the stream check their own).
async fn reads_guard(
    State(state): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    let guarded = path == "/metrics"
        || [
            "/api/agents",
            "/api/queues",
            "/api/calls",
            "/api/flows",
            "/api/trunks",
            "/api/switches",
        ]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if guarded
        && req.method() == axum::http::Method::GET
        && !state.status.config.http.open_reads
        && state.who(req.headers()).is_none()
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "log in, or give the API's bearer token ([http] open_reads = false)",
        );
    }
    next.run(req).await
}

/// An agent's own login reads only their own calls while reads are not open to all.
fn own_calls_only(state: &ApiState, who: Option<&Who>) -> Option<String> {
    if state.status.config.http.open_reads {
        return None;
    }
    who.filter(|w| !w.sees_all())
        .and_then(|w| w.agent().map(str::to_string))
}

pub fn router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/api/agents", get(agents))
        .route("/api/agents/{id}", get(agent))
        .route("/api/agents/{id}/state", post(set_state))
        .route("/api/queues", get(queues))
        .route("/api/trunks", get(trunks))
        .route("/api/calls", get(calls))
        .route("/api/calls/{id}", get(call))
        .route("/api/calls/{id}/recording", get(call_recording))
        .route("/api/followups", get(followups::list))
        .route("/api/followups/{id}", post(followups::change))
        .route("/api/followups/{id}/audio", get(followups::audio))
        .route("/api/flows", get(flows))
        .route("/api/switches", get(switches::list))
        .route("/api/switches/{name}", post(switches::flip))
        .route("/api/report", get(report))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            reads_guard,
        ))
        .with_state(state)
}

pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

pub async fn ask<T>(state: &ApiState, q: impl FnOnce(oneshot::Sender<T>) -> ApiQuery) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    state.status.queries.send(q(tx)).await.ok()?;
    rx.await.ok()
}

pub fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is shutting down",
    )
}

/// The caller card (who calls, what they typed) and whom she calls about them are for the
/// agent it rings for, supervisors and the token holder: anyone else reads the row without.
fn hide_caller(mut row: AgentRow, who: Option<&Who>) -> AgentRow {
    let may = who.is_some_and(|w| w.sees_all() || w.agent() == Some(row.id.as_str()));
    if !may {
        row.caller = None;
        row.consulting = None;
    }
    row
}

async fn agents(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let who = state.who(&headers);
    match ask(&state, ApiQuery::Agents).await {
        Some(rows) => Json(
            rows.into_iter()
                .map(|r| hide_caller(r, who.as_ref()))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        None => unavailable(),
    }
}

async fn agent(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let who = state.who(&headers);
    match ask(&state, ApiQuery::Agents).await {
        Some(rows) => match rows.into_iter().find(|a| a.id == id) {
            Some(row) => Json(hide_caller(row, who.as_ref())).into_response(),
            None => error(StatusCode::NOT_FOUND, "no such agent"),
        },
        None => unavailable(),
    }
}

async fn queues(State(state): State<ApiState>) -> Response {
    match ask(&state, ApiQuery::Queues).await {
        Some(rows) => Json(rows).into_response(),
        None => unavailable(),
    }
}

/// The carrier trunks, and whether hotline is registered to each.
async fn trunks(State(state): State<ApiState>) -> Response {
    match ask(&state, ApiQuery::Trunks).await {
        Some(rows) => Json(rows).into_response(),
        None => unavailable(),
    }
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/agents/{id}/state` with `{"state": "not-ready"}` (or the bare word as the
/// body) and `Authorization: Bearer <token>`.
async fn set_state(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if state.token.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "writes are disabled: the server has no API token (see [http] token_env)",
        );
    }
    if !state.bearer_ok(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({ "error": "a valid bearer token is required" })),
        )
            .into_response();
    }
    let text = String::from_utf8_lossy(&body);
    let (wanted, reason) = serde_json::from_str::<StateBody>(&text)
        .map(|b| (b.state, b.reason))
        .unwrap_or_else(|_| (text.trim().trim_matches('"').to_string(), None));
    change_state(&state, id, &wanted, reason).await
}

/// Sets an agent's state (`available`, `not-ready`, `offline`) with an optional reason, for
/// whoever the caller has already authorised: the agent's new row, or a JSON error.
pub async fn change_state(
    state: &ApiState,
    id: String,
    wanted: &str,
    reason: Option<String>,
) -> Response {
    // Shown back as given: printable, one line, bounded.
    let reason = reason
        .map(|r| {
            r.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        })
        .filter(|r| !r.trim().is_empty());
    let requested = match wanted {
        "available" => Requested::Available,
        "not-ready" => Requested::NotReady,
        "offline" => Requested::Offline,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "unknown state \"{}\": one of available, not-ready, offline",
                    other.chars().take(40).collect::<String>()
                ),
            );
        }
    };
    let reply = ask(state, |reply| ApiQuery::SetState {
        agent: id.clone(),
        state: requested,
        reason,
        reply,
    })
    .await;
    match reply {
        Some(StateReply::Done(row)) => Json(row).into_response(),
        Some(StateReply::NoSuchAgent) => error(StatusCode::NOT_FOUND, "no such agent"),
        Some(StateReply::NoPhone(row)) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": "the agent has no registered phone to ring: register one first",
                "agent": row,
            })),
        )
            .into_response(),
        None => unavailable(),
    }
}

#[derive(Deserialize)]
struct CallsQuery {
    limit: Option<u32>,
    #[serde(flatten)]
    filter: CallFilter,
}

pub use crate::store::utc_time;

/// The most recent calls first, live ones included; `limit` defaults to 50, at most 1000.
/// Filters: `since`, `until` (RFC 3339 or a date), `outcome`, `line`, `flow`, `from`, `agent`.
/// The query string of `GET /api/calls` (`limit`, then the filters): how many rows, and the
/// filter with its times in the store's form; or why it cannot be read.
pub fn calls_query(raw: Option<&str>) -> Result<(u32, CallFilter), String> {
    let q: CallsQuery =
        serde_urlencoded::from_str(raw.unwrap_or_default()).map_err(|e| e.to_string())?;
    let limit = q.limit.unwrap_or(50).min(1000);
    let mut filter = q.filter;
    for (name, value) in [("since", &mut filter.since), ("until", &mut filter.until)] {
        if let Some(v) = value.as_mut() {
            match utc_time(v) {
                Some(t) => *v = t,
                None => return Err(format!("{name}: \"{v}\" is not a date or an RFC 3339 time")),
            }
        }
    }
    if let Some(o) = &filter.outcome
        && crate::store::CallOutcome::parse(o).is_none()
    {
        let known: Vec<&str> = crate::store::CallOutcome::ALL
            .iter()
            .map(|o| o.as_str())
            .collect();
        return Err(format!(
            "outcome: \"{o}\" is not one of {}",
            known.join(", ")
        ));
    }
    Ok((limit, filter))
}

/// Runs a store call off the async threads.
pub async fn with_store<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&crate::store::Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    let store = std::sync::Arc::clone(&state.status.store);
    let r = tokio::task::spawn_blocking(move || {
        store
            .lock()
            .map_err(|_| "the store lock is poisoned".to_string())
            .and_then(|s| f(&s).map_err(|e| e.to_string()))
    })
    .await;
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    }
}

/// What agents wrote about a caller — the wrap-up note, the notes passed on with transfers —
/// is the business of the agents who took the call, supervisors and the API's token holder:
/// anyone else gets the record without it.
fn hide_notes(mut record: crate::store::CallRecord, who: Option<&Who>) -> crate::store::CallRecord {
    let me = who.and_then(Who::agent);
    let took = me.is_some_and(|me| {
        record.agent.as_deref() == Some(me) || record.transfers.iter().any(|t| t.by == me)
    });
    if !who.is_some_and(Who::sees_all) && !took {
        record.wrap_up = None;
        for t in &mut record.transfers {
            t.note = None;
        }
    }
    record
}

/// `GET /api/calls/{id}`: the newest call with that Call-ID.
async fn call(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let who = state.who(&headers);
    let record = match with_store(&state, move |s| s.call(&id)).await {
        Ok(Some(record)) => record,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no call with that id"),
        Err(e) => return e,
    };
    if own_calls_only(&state, who.as_ref())
        .is_some_and(|me| record.agent.as_deref() != Some(me.as_str()))
    {
        return error(StatusCode::FORBIDDEN, "not a call you took");
    }
    Json(hide_notes(record, who.as_ref())).into_response()
}

/// `GET /api/calls/{id}/recording`: the call's recorded conversation (WAV), for supervisors,
/// the API's token holder and the agents who took that call (also one who passed it on);
/// anyone else logged in gets 403.
async fn call_recording(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(who) = state.who(&headers) else {
        return login_required();
    };
    let record = match with_store(&state, move |s| s.call(&id)).await {
        Ok(Some(record)) => record,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no call with that id"),
        Err(e) => return e,
    };
    let took = |me: &str| {
        record.agent.as_deref() == Some(me) || record.transfers.iter().any(|t| t.by == me)
    };
    if !who.sees_all() && !who.agent().is_some_and(took) {
        return error(
            StatusCode::FORBIDDEN,
            "only supervisors and the agents who took the call may listen to it",
        );
    }
    let Some(meta) = record.recording else {
        return error(StatusCode::NOT_FOUND, "this call was not recorded");
    };
    // The name is ours, written by the server; still, nothing outside the data folder.
    if meta.file.split('/').any(|p| p == ".." || p.is_empty()) {
        return error(StatusCode::NOT_FOUND, "no such recording");
    }
    let file = state.status.config.paths.data.join(&meta.file);
    match tokio::task::spawn_blocking(move || std::fs::read(&file)).await {
        Ok(Ok(wav)) => (
            [
                (header::CONTENT_TYPE, "audio/wav"),
                (header::CACHE_CONTROL, "private, no-store"),
            ],
            wav,
        )
            .into_response(),
        Ok(Err(e)) => error(
            StatusCode::NOT_FOUND,
            &format!("the recording is gone (past its retention?): {e}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn calls(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let who = state.who(&headers);
    let (limit, mut filter) = match calls_query(raw.as_deref()) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    if let Some(me) = own_calls_only(&state, who.as_ref()) {
        filter.agent = Some(me);
    }
    match with_store(&state, move |s| s.calls(&filter, limit)).await {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|r| hide_notes(r, who.as_ref()))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => e,
    }
}

#[derive(Deserialize)]
struct ReportQuery {
    since: Option<String>,
}

/// `GET /api/report?since=DATE`: `hotline report --format json` (since midnight UTC by
/// default), for the API's token or a supervisor.
async fn report(
    State(state): State<ApiState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    match state.who(&headers) {
        Some(who) if who.sees_all() => {}
        Some(_) => return error(StatusCode::FORBIDDEN, "the report is for supervisors"),
        None => {
            return login_required();
        }
    }
    let q: ReportQuery = match serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let now = wall_now();
    let since = match q.since {
        Some(s) => match utc_time(&s) {
            Some(t) => t,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "since: \"{}\" is not a date or an RFC 3339 time",
                        s.chars().take(40).collect::<String>()
                    ),
                );
            }
        },
        None => {
            utc_time(&now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()).unwrap_or_default()
        }
    };
    let within_h = state.status.config.desk.follow_up_within_h;
    match with_store(&state, move |s| {
        crate::store::report::Report::read(s, Some(since), within_h, now)
    })
    .await
    {
        Ok(r) => Json(r).into_response(),
        Err(e) => e,
    }
}

/// One flow as it runs now, for `GET /api/flows`.
#[derive(Debug, Clone, Serialize)]
pub struct FlowRow {
    pub name: String,
    pub file: String,
    pub version: String,
    pub nodes: usize,
}

/// The flows new calls get, with their versions, and how the last reload went (with the
/// validator's report when it was refused).
async fn flows(State(state): State<ApiState>) -> Response {
    let flows = state.status.flows();
    let rows: Vec<FlowRow> = flows
        .set
        .flows
        .iter()
        .zip(&flows.versions)
        .filter(|(f, _)| f.reported)
        .map(|(f, v)| FlowRow {
            name: f.name.clone(),
            file: f.source.path.display().to_string(),
            version: v.clone(),
            nodes: f.nodes.len(),
        })
        .collect();
    let last_reload = state
        .status
        .reload_status
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    Json(serde_json::json!({
        "flows": rows,
        "warnings": flows.warning_count,
        "last_reload": last_reload,
    }))
    .into_response()
}

/// Prometheus text exposition format 0.0.4.
/// For a load balancer or a monitor: 200 while the line serves normally; 503 while it
/// drains, or while its data folder refuses writes (voicemail and callbacks are then refused,
/// call records wait in memory).
async fn health(State(state): State<ApiState>) -> Response {
    let shared = &state.status;
    let draining = shared.stats.draining.load(Ordering::Relaxed);
    let disk = shared.disk.problem();
    let body = serde_json::json!({
        "status": if draining { "draining" } else if disk.is_some() { "degraded" } else { "ok" },
        "disk": disk.as_deref().unwrap_or("ok"),
        "records_pending": shared.disk.pending_records(),
        "calls": shared.call_tasks.live(),
    });
    let status = if draining || disk.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let Some(g) = ask(&state, ApiQuery::Gauges).await else {
        return unavailable();
    };
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in samples {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    family(
        "hotline_active_calls",
        "gauge",
        "Calls in progress.",
        vec![(String::new(), g.active_calls as f64)],
    );
    family(
        "hotline_agents",
        "gauge",
        "Agents by state.",
        g.agents
            .iter()
            .map(|(s, n)| (format!("{{state=\"{s}\"}}"), *n as f64))
            .collect(),
    );
    family(
        "hotline_trunk_registered",
        "gauge",
        "1 while hotline is registered to the trunk's carrier, 0 otherwise (registering trunks only).",
        g.trunks
            .iter()
            .filter(|t| t.register)
            .map(|t| {
                (
                    format!("{{trunk=\"{}\"}}", label(&t.name)),
                    f64::from(u8::from(t.state == "registered")),
                )
            })
            .collect(),
    );
    family(
        "hotline_queue_waiting",
        "gauge",
        "Callers waiting in each queue.",
        g.queues
            .iter()
            .map(|q| {
                (
                    format!("{{queue=\"{}\"}}", label(&q.name)),
                    q.waiting as f64,
                )
            })
            .collect(),
    );
    family(
        "hotline_queue_longest_wait_seconds",
        "gauge",
        "How long the longest-waiting caller of each queue has waited.",
        g.queues
            .iter()
            .map(|q| {
                (
                    format!("{{queue=\"{}\"}}", label(&q.name)),
                    q.longest_wait_s,
                )
            })
            .collect(),
    );
    let m = &state.status.metrics;
    family(
        "hotline_calls_total",
        "counter",
        "Calls ended, by outcome.",
        m.outcomes()
            .into_iter()
            .map(|(o, n)| (format!("{{outcome=\"{}\"}}", label(&o)), n as f64))
            .collect(),
    );
    family(
        "hotline_escape_digit_presses_total",
        "counter",
        "Calls in which the escape digit took the caller to a live human.",
        vec![(
            String::new(),
            m.escape_presses.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_watchdog_interventions_total",
        "counter",
        "Calls the watchdog moved on to a live human.",
        vec![(
            String::new(),
            m.watchdog_interventions.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_abandoned_total",
        "counter",
        "Callers who hung up while waiting for a live human.",
        vec![(String::new(), m.abandoned.load(Ordering::Relaxed) as f64)],
    );
    family(
        "hotline_sip_transactions_total",
        "counter",
        "SIP transactions started (server and client).",
        vec![(
            String::new(),
            m.sip_transactions.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_sip_datagrams_dropped_total",
        "counter",
        "SIP datagrams dropped unread because signalling was behind (messages of calls under \
         way have their own queue, read first).",
        vec![(String::new(), g.sip_dropped as f64)],
    );
    family(
        "hotline_sip_banned_messages_total",
        "counter",
        "SIP messages dropped unanswered: from an address banned for flooding, or a scanner.",
        vec![(String::new(), g.sip_banned_messages as f64)],
    );
    family(
        "hotline_sip_bans_total",
        "counter",
        "Addresses banned ([sip] max_messages_per_s_per_address exceeded, or a scanner's User-Agent).",
        vec![(String::new(), g.sip_bans as f64)],
    );
    family(
        "hotline_sip_banned_addresses",
        "gauge",
        "Addresses banned now (each for [sip] ban_s).",
        vec![(String::new(), g.sip_banned_addresses as f64)],
    );
    family(
        "hotline_calls_refused_total",
        "counter",
        "INVITEs refused with 503 by admission control ([sip] max_calls, max_new_calls_per_s).",
        vec![(
            String::new(),
            m.refused_calls.load(Ordering::Relaxed) as f64,
        )],
    );
    let disk = &state.status.disk;
    family(
        "hotline_disk_ok",
        "gauge",
        "1 while the data folder takes writes, 0 while it refuses them (full or failing).",
        vec![(String::new(), if disk.ok() { 1.0 } else { 0.0 })],
    );
    family(
        "hotline_disk_write_failures_total",
        "counter",
        "Writes to the data folder that failed (records, voicemails, callback requests).",
        vec![(String::new(), disk.failures() as f64)],
    );
    family(
        "hotline_records_pending",
        "gauge",
        "Call records the disk refused, kept in memory to be written again.",
        vec![(String::new(), disk.pending_records() as f64)],
    );
    family(
        "hotline_sip_auth_failures_total",
        "counter",
        "Digest credentials refused (wrong password or unknown user).",
        vec![(
            String::new(),
            m.auth_failures.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_sip_auth_lockouts_total",
        "counter",
        "Times an (address, username) pair was locked out after repeated failures.",
        vec![(
            String::new(),
            m.auth_lockouts.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_sip_retransmissions_total",
        "counter",
        "SIP messages sent again on a transaction timer.",
        vec![(
            String::new(),
            state.status.stats.retransmissions.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_rtp_packets_sent_total",
        "counter",
        "RTP packets sent by the media loop.",
        vec![(
            String::new(),
            state.status.pacer.packets.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_rtp_packets_received_total",
        "counter",
        "RTP packets read by the media loop (audio no call uses is mostly dropped unread).",
        vec![(
            String::new(),
            state.status.pacer.received.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_rtp_packets_refused_total",
        "counter",
        "RTP packets refused: not from the call's far end (a stranger, or audio from another port).",
        vec![(
            String::new(),
            state.status.pacer.refused.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_srtp_legs_total",
        "counter",
        "Call legs whose audio was SRTP (keys by SDES), both ways.",
        vec![(
            String::new(),
            state.status.pacer.srtp_legs.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_srtp_packets_refused_total",
        "counter",
        "SRTP packets that failed authentication or were replays (also in hotline_rtp_packets_refused_total).",
        vec![(
            String::new(),
            state.status.pacer.srtp_refused.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_rtp_packets_lost_total",
        "counter",
        "RTP packets the far ends sent that never arrived (by sequence number; counted as each leg ends).",
        vec![(
            String::new(),
            state.status.pacer.rtp_lost.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        "hotline_rtcp_reports_total",
        "counter",
        "RTCP reports read from the far ends and sent to them.",
        vec![
            (
                "{direction=\"received\"}".to_string(),
                state.status.pacer.rtcp_received.load(Ordering::Relaxed) as f64,
            ),
            (
                "{direction=\"sent\"}".to_string(),
                state.status.pacer.rtcp_sent.load(Ordering::Relaxed) as f64,
            ),
        ],
    );
    family(
        "hotline_media_late_ticks_total",
        "counter",
        "Media loop ticks that ran more than 5 ms late.",
        vec![(
            String::new(),
            state.status.pacer.late_ticks.load(Ordering::Relaxed) as f64,
        )],
    );
    histogram(
        &mut out,
        "hotline_time_to_human_seconds",
        "From the answer to a live human offered (a queue or transfer).",
        &m.time_to_human,
    );
    wait_audit(&mut out, &g.queues);
    histogram(
        &mut out,
        "hotline_queue_wait_seconds",
        "Time spent in a queue, until answered, timed out, hung up or called back.",
        &m.queue_wait,
    );
    lookups(&mut out, m);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Per lookup endpoint: how long its answers took, and its failures by reason.
fn lookups(out: &mut String, m: &crate::status::metrics::Metrics) {
    let Ok(all) = m.lookups.lock() else { return };
    let name = "hotline_lookup_seconds";
    out.push_str(&format!(
        "# HELP {name} How long a flow's lookups took, answered or not, by endpoint.\n# TYPE {name} histogram\n"
    ));
    for (endpoint, s) in all.iter() {
        let e = label(endpoint);
        let (buckets, count, sum) = s.latency.snapshot();
        for (le, n) in buckets {
            out.push_str(&format!(
                "{name}_bucket{{endpoint=\"{e}\",le=\"{le}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "{name}_bucket{{endpoint=\"{e}\",le=\"+Inf\"}} {count}\n"
        ));
        out.push_str(&format!(
            "{name}_sum{{endpoint=\"{e}\"}} {sum}\n{name}_count{{endpoint=\"{e}\"}} {count}\n"
        ));
    }
    let name = "hotline_lookup_errors_total";
    out.push_str(&format!(
        "# HELP {name} Lookups that sent the caller down on_error, by endpoint and reason (timeout, unreachable, status, answer).\n# TYPE {name} counter\n"
    ));
    for (endpoint, s) in all.iter() {
        for (reason, n) in &s.errors {
            out.push_str(&format!(
                "{name}{{endpoint=\"{}\",reason=\"{reason}\"}} {n}\n",
                label(endpoint)
            ));
        }
    }
}

/// Per queue: the error of every announced wait (actual − told) as a histogram, the callers
/// who waited more than 1.5× what they were told, and the recent-average estimator's error on
/// the same announcements.
fn wait_audit(out: &mut String, queues: &[QueueRow]) {
    use crate::routing::audit::ERROR_BUCKETS;
    let name = "hotline_wait_estimate_error_seconds";
    out.push_str(&format!(
        "# HELP {name} What a waiting caller then waited minus the wait they were told (negative: answered sooner).\n# TYPE {name} histogram\n"
    ));
    for q in queues {
        let f = &q.wait_estimates.figures;
        let queue = label(&q.name);
        for (le, n) in ERROR_BUCKETS.iter().zip(f.buckets) {
            out.push_str(&format!(
                "{name}_bucket{{queue=\"{queue}\",le=\"{le}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "{name}_bucket{{queue=\"{queue}\",le=\"+Inf\"}} {n}\n{name}_sum{{queue=\"{queue}\"}} {sum}\n{name}_count{{queue=\"{queue}\"}} {n}\n",
            n = f.samples,
            sum = f.error_sum
        ));
    }
    type Figure = fn(&crate::routing::audit::AuditFigures) -> f64;
    let counters: [(&str, &str, Figure); 4] = [
        (
            "hotline_wait_estimate_abs_error_seconds_total",
            "Sum of the absolute errors of announced waits.",
            |f| f.abs_error_sum,
        ),
        (
            "hotline_wait_estimate_overruns_total",
            "Callers who waited more than 1.5 times the wait they were told.",
            |f| f.overruns as f64,
        ),
        (
            "hotline_wait_estimate_compared_abs_error_seconds_total",
            "Sum of the absolute errors of announced waits, over the announcements the recent-average estimator also had a figure for.",
            |f| f.compared_abs_error,
        ),
        (
            "hotline_wait_estimate_baseline_abs_error_seconds_total",
            "Sum of the absolute errors the queue's recent average wait would have made on the same announcements.",
            |f| f.baseline_abs_error,
        ),
    ];
    for (name, help, value) in counters {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        for q in queues {
            out.push_str(&format!(
                "{name}{{queue=\"{}\"}} {}\n",
                label(&q.name),
                value(&q.wait_estimates.figures)
            ));
        }
    }
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let (buckets, count, sum) = h.snapshot();
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
    for (le, n) in buckets {
        out.push_str(&format!("{name}_bucket{{le=\"{le}\"}} {n}\n"));
    }
    out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {count}\n"));
    out.push_str(&format!("{name}_sum {sum}\n{name}_count {count}\n"));
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unknown_outcome_filter_is_refused_by_name() {
        let e = super::calls_query(Some("outcome=teleported")).unwrap_err();
        assert!(
            e.contains("\"teleported\" is not one of live, queue,"),
            "{e}"
        );
        let (limit, f) = super::calls_query(Some("outcome=caller-hangup&limit=5")).unwrap();
        assert_eq!((limit, f.outcome.as_deref()), (5, Some("caller-hangup")));
    }
}
