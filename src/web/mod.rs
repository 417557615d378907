//! The humans' pages, served by `hotline serve` beside the JSON API: `/` leads to the agent
//! desk, `/login` and `/logout`, `/desk` (an agent's state and the buttons that change it),
//! `/wall` (supervisors: every queue and agent, live), and `GET /api/events`, the Server-Sent
//! Events stream both pages follow. Templates and scripts are built into the binary.

pub mod pages;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use crate::api::events::{Published, Viewer as EventViewer};
use crate::api::session::Session;
use crate::api::{
    ApiState, COOKIE, LoginRefused, ask, change_state, cookie, error, login_required, now,
    unavailable, with_store,
};
use crate::status::ApiQuery;
use pages::Viewer;

/// Everything `[http] listen` serves: the API, the desk and the wall, with the JSON errors,
/// the 404 page and the security headers.
pub fn app(state: ApiState) -> axum::Router {
    crate::api::router(state.clone())
        .merge(router(state))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::map_response(security_headers))
}

pub fn router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/desk") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/desk", get(desk))
        .route("/desk/state", post(desk_state))
        .route("/desk/history", get(history))
        .route("/desk/wrap-up", post(wrap_up))
        .route("/desk/transfer", post(transfer))
        .route("/desk/consult", post(consult))
        .route("/desk/consult/complete", post(consult_complete))
        .route("/desk/consult/cancel", post(consult_cancel))
        .route("/desk/recording", post(recording))
        .route("/wall", get(wall))
        .route("/api/events", get(events))
        .route("/assets/{file}", get(asset))
        .with_state(state)
}

/// Headers every response carries: no script but our own files, no framing, no sniffing.
pub async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// Errors under `/api/` and `/desk/` are JSON, whoever made them: the framework's own refusals
/// (a path segment that is not a number, a query string that cannot be read) come as plain
/// text and are rewritten here as `{"error": "..."}`.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/api/") || path.starts_with("/desk/");
    let res = next.run(req).await;
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !api || !plain || !(res.status().is_client_error() || res.status().is_server_error()) {
        return res;
    }
    let status = res.status();
    let text = axum::body::to_bytes(res.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    error(status, &text)
}

/// What answers a path nobody serves: JSON under `/api/`, a page elsewhere.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        error(StatusCode::NOT_FOUND, "no such API endpoint")
    } else {
        (
            StatusCode::NOT_FOUND,
            Html(pages::not_found(None).into_string()),
        )
            .into_response()
    }
}

/// 32 random bytes from the operating system, as hex.
fn token() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Where a login may lead: our own pages only (never an address from outside).
fn next_page(next: Option<&str>) -> &'static str {
    match next {
        Some("/wall") => "/wall",
        _ => "/desk",
    }
}

fn to_login(next: &str) -> Response {
    Redirect::to(&format!("/login?next={next}")).into_response()
}

fn viewer(s: &Session) -> Viewer<'_> {
    Viewer {
        id: &s.agent,
        name: &s.name,
        supervisor: s.supervisor,
        csrf: &s.csrf,
    }
}

fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(markup.into_string()),
    )
        .into_response()
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Query<NextQuery>,
) -> Response {
    let next = next_page(q.next.as_deref());
    if state.session(&headers).is_some() {
        return Redirect::to(next).into_response();
    }
    html(StatusCode::OK, pages::login(None, next, ""))
}

#[derive(Deserialize)]
struct LoginForm {
    agent: String,
    password: String,
    next: Option<String>,
}

/// The session cookie's attributes: `Secure` when the page came over TLS (a proxy in front
/// says so with `X-Forwarded-Proto: https`; the listener itself speaks plain HTTP).
fn cookie_attributes(headers: &HeaderMap) -> &'static str {
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    if tls {
        "Path=/; HttpOnly; SameSite=Strict; Secure"
    } else {
        "Path=/; HttpOnly; SameSite=Strict"
    }
}

async fn login(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&body) else {
        return html(
            StatusCode::BAD_REQUEST,
            pages::login(Some("Give your agent id and password."), "/desk", ""),
        );
    };
    let next = next_page(form.next.as_deref());
    let agent: String = form.agent.trim().chars().take(64).collect();
    let password: String = form.password.chars().take(256).collect();
    let answer = ask(&state, |reply| ApiQuery::Login {
        user: agent.clone(),
        password,
        source: peer.ip(),
        reply,
    })
    .await;
    let who = match answer {
        Some(Ok(who)) => who,
        Some(Err(refused)) => {
            let (status, message) = match refused {
                LoginRefused::Wrong => (StatusCode::UNAUTHORIZED, "Wrong agent id or password."),
                LoginRefused::LockedOut => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed attempts: try again in a minute.",
                ),
            };
            return html(status, pages::login(Some(message), next, &agent));
        }
        None => return unavailable(),
    };
    let (Some(session), Some(csrf)) = (token(), token()) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for a session token",
        );
    };
    state.sessions().open(
        session.clone(),
        csrf,
        &who.id,
        &who.name,
        who.supervisor,
        now(),
    );
    tracing::info!(agent = who.id, source = %peer.ip(), "desk login");
    let cookie = format!("{COOKIE}={session}; {}", cookie_attributes(&headers));
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, next.to_string()),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = serde_urlencoded::from_bytes::<LogoutForm>(&body).ok();
    if let (Some(token), Some(s)) = (cookie(&headers, COOKIE), state.session(&headers))
        && form.is_some_and(|f| f.csrf == s.csrf)
    {
        state.sessions().close(&token);
        tracing::info!(agent = s.agent, "desk logout");
    }
    let gone = format!("{COOKIE}=; {}; Max-Age=0", cookie_attributes(&headers));
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, gone),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

async fn desk(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(s) = state.session(&headers) else {
        return to_login("/desk");
    };
    let after = state.status.events.last_id();
    let Some(agents) = ask(&state, ApiQuery::Agents).await else {
        return unavailable();
    };
    let me = agents.iter().find(|a| a.id == s.agent);
    // The last call she answered, if it ended in the last hour without a wrap-up.
    let agent = s.agent.clone();
    let since = (crate::api::wall_now() - jiff::SignedDuration::from_hours(1)).to_string();
    let pending = with_store(&state, move |store| {
        let filter = crate::store::CallFilter {
            agent: Some(agent),
            since: Some(since),
            ..Default::default()
        };
        Ok(store
            .calls(&filter, 1)?
            .into_iter()
            .find(|c| c.ended.is_some() && c.wrap_up.is_none())
            .map(|c| (c.id, c.from)))
    })
    .await
    .unwrap_or(None);
    let config = &state.status.config;
    let desk = &config.desk;
    let targets = config
        .queues
        .iter()
        .map(|q| q.name.clone())
        .chain(
            config
                .agents
                .iter()
                .map(|a| a.id.clone())
                .filter(|a| *a != s.agent),
        )
        .collect();
    let d = pages::Desk {
        me,
        reasons: &desk.not_ready_reasons,
        codes: &desk.wrap_up_codes,
        pending,
        targets,
        after,
    };
    html(StatusCode::OK, pages::desk(&viewer(&s), &d))
}

async fn wall(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(s) = state.session(&headers) else {
        return to_login("/wall");
    };
    if !s.supervisor {
        return html(
            StatusCode::FORBIDDEN,
            pages::refused(&viewer(&s), "The wall is for supervisors."),
        );
    }
    let after = state.status.events.last_id();
    let (Some(agents), Some(queues), Some(calls), Some(trunks)) = (
        ask(&state, ApiQuery::Agents).await,
        ask(&state, ApiQuery::Queues).await,
        ask(&state, ApiQuery::LiveCalls).await,
        ask(&state, ApiQuery::Trunks).await,
    ) else {
        return unavailable();
    };
    html(
        StatusCode::OK,
        pages::wall(
            &viewer(&s),
            &queues,
            &agents,
            &calls,
            &trunks,
            &state
                .status
                .switches
                .rows(&state.status.flows().set.switches, crate::api::wall_now()),
            after,
        ),
    )
}

#[derive(Deserialize)]
struct StateForm {
    /// Whose state: the agent's own when absent; another's only for a supervisor.
    agent: Option<String>,
    state: String,
    reason: Option<String>,
}

async fn desk_state(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let usage = r#"{"state": "available" | "not-ready" | "offline", "reason": ...}"#;
    let (s, form) = match state.page_request::<StateForm>(&headers, &body, usage) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let agent = form.agent.unwrap_or_else(|| s.agent.clone());
    if agent != s.agent && !s.supervisor {
        return error(
            StatusCode::FORBIDDEN,
            "only a supervisor may change another agent's state",
        );
    }
    tracing::info!(
        by = s.agent,
        agent,
        state = form.state,
        "state set from a page"
    );
    change_state(&state, agent, &form.state, form.reason).await
}

#[derive(Deserialize)]
struct HistoryQuery {
    call: String,
}

/// One earlier call of the caller, as the desk lists it.
#[derive(serde::Serialize)]
struct Earlier {
    /// The call record's id (its recording is `/api/calls/{id}/recording`).
    id: String,
    started: String,
    outcome: String,
    agent: Option<String>,
    wrap_up_code: Option<String>,
    note: Option<String>,
    /// It was recorded and this viewer may listen (a supervisor, or an agent who took it).
    recording: bool,
}

/// How far back the desk looks for a caller's earlier calls.
const HISTORY_DAYS: i64 = 30;

/// `GET /desk/history?call=ID`: the caller's calls of the last 30 days before this one,
/// for the agent whose phone rings for it or who answered it (or a supervisor).
async fn history(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Query<HistoryQuery>,
) -> Response {
    let Some(s) = state.session(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "log in first");
    };
    let ringing_for_me = if s.supervisor {
        true
    } else {
        match ask(&state, ApiQuery::Agents).await {
            Some(rows) => rows
                .iter()
                .any(|a| a.id == s.agent && a.call.as_deref() == Some(q.call.as_str())),
            None => return unavailable(),
        }
    };
    let call = q.call.clone();
    let since =
        (crate::api::wall_now() - jiff::SignedDuration::from_hours(24 * HISTORY_DAYS)).to_string();
    let me = s.agent.clone();
    let (viewer, supervisor) = (s.agent.clone(), s.supervisor);
    let found = with_store(&state, move |store| {
        let Some(this) = store.call(&call)? else {
            return Ok(None);
        };
        if !ringing_for_me && this.agent.as_deref() != Some(me.as_str()) {
            return Ok(Some(Err(())));
        }
        let earlier = store.calls_from(&this.from, &since, 11)?;
        Ok(Some(Ok((this.from, earlier))))
    })
    .await;
    let (from, earlier) = match found {
        Ok(Some(Ok(v))) => v,
        Ok(Some(Err(()))) => {
            return error(StatusCode::FORBIDDEN, "not a call of yours");
        }
        Ok(None) => return error(StatusCode::NOT_FOUND, "no call with that id"),
        Err(e) => return e,
    };
    let calls: Vec<Earlier> = earlier
        .into_iter()
        .filter(|c| c.id != q.call)
        .take(10)
        .map(|c| Earlier {
            recording: c.recording.is_some()
                && (supervisor
                    || c.agent.as_deref() == Some(viewer.as_str())
                    || c.transfers.iter().any(|t| t.by == viewer)),
            id: c.id,
            started: c.started,
            outcome: c.outcome.to_string(),
            agent: c.agent,
            wrap_up_code: c.wrap_up.as_ref().map(|w| w.code.clone()),
            note: c.wrap_up.map(|w| w.note),
        })
        .collect();
    axum::Json(serde_json::json!({ "caller": from, "calls": calls })).into_response()
}

#[derive(Deserialize)]
struct TransferForm {
    /// A queue's or an agent's name, or a number.
    to: String,
    /// For whoever takes the caller next.
    #[serde(default)]
    note: String,
}

/// The longest note an agent passes on with a caller.
const MAX_TRANSFER_NOTE: usize = 500;

/// `POST /desk/transfer`: the agent passes her caller on to a queue or another agent, as
/// her phone's REFER would. `{"transferred": "queue:billing"}` (her phone is hung up), or
/// `{"transferred": "agent:bob", "ringing": true}` (she keeps the caller until he answers;
/// if he does not, they are hers again), the same with `"tel:+34600111222"` for a number
/// outside; 404 for no such name, 403 for a number the dial policy refuses, 409 when it
/// cannot be done.
async fn transfer(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let usage = r#"{"to": "<queue, agent or number>"}"#;
    let (s, form) = match state.page_request::<TransferForm>(&headers, &body, usage) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let to: String = form.to.trim().chars().take(64).collect();
    let note: String = form
        .note
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TRANSFER_NOTE)
        .collect();
    let agent = s.agent.clone();
    let reply = ask(&state, |reply| ApiQuery::Transfer {
        agent,
        to: to.clone(),
        note: (!note.is_empty()).then_some(note),
        reply,
    })
    .await;
    match reply {
        Some(Ok(to)) => {
            tracing::info!(agent = s.agent, to, "transfer from the desk");
            let ringing = !to.starts_with("queue:");
            axum::Json(serde_json::json!({ "transferred": to, "ringing": ringing })).into_response()
        }
        Some(Err((403, why))) => error(StatusCode::FORBIDDEN, &why),
        Some(Err((404, why))) => error(StatusCode::NOT_FOUND, &why),
        Some(Err((_, why))) => error(StatusCode::CONFLICT, &why),
        None => unavailable(),
    }
}

#[derive(Deserialize)]
struct ConsultForm {
    /// A queue's or an agent's name, or a number.
    to: String,
}

/// `POST /desk/consult`: the agent calls a colleague, a queue (its next available agent) or
/// a number about her caller before handing them over (an attended transfer). The caller
/// holds; her phone is bridged to whoever answers. `{"consulting": "agent:bob"}` while it
/// rings; 404 for no such name, 403 for a number the dial policy refuses, 409 when it
/// cannot be done (she is on no call, nobody is available).
async fn consult(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let usage = r#"{"to": "<queue, agent or number>"}"#;
    let (s, form) = match state.page_request::<ConsultForm>(&headers, &body, usage) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let to: String = form.to.trim().chars().take(64).collect();
    let agent = s.agent.clone();
    let reply = ask(&state, |reply| ApiQuery::Consult { agent, to, reply }).await;
    match reply {
        Some(Ok(to)) => {
            tracing::info!(agent = s.agent, to, "a call about the caller from the desk");
            axum::Json(serde_json::json!({ "consulting": to })).into_response()
        }
        Some(Err((403, why))) => error(StatusCode::FORBIDDEN, &why),
        Some(Err((404, why))) => error(StatusCode::NOT_FOUND, &why),
        Some(Err((_, why))) => error(StatusCode::CONFLICT, &why),
        None => unavailable(),
    }
}

#[derive(Deserialize)]
struct NoFields {}

/// `POST /desk/consult/complete`: the caller goes to whom she talks to about them (from the
/// desk or her phone), she wraps up: `{"transferred": "agent:bob"}`; 409 while they have
/// not answered, or when she calls nobody.
async fn consult_complete(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    consult_end(state, headers, body, true).await
}

/// `POST /desk/consult/cancel`: her call about the caller ends and the caller is hers
/// again: `{"back": "agent:bob"}` (whom she had called); 409 when she calls nobody.
async fn consult_cancel(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    consult_end(state, headers, body, false).await
}

async fn consult_end(
    state: ApiState,
    headers: HeaderMap,
    body: axum::body::Bytes,
    complete: bool,
) -> Response {
    let (s, _) = match state.page_request::<NoFields>(&headers, &body, "{}") {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let agent = s.agent.clone();
    let reply = ask(&state, |reply| ApiQuery::ConsultEnd {
        agent,
        complete,
        reply,
    })
    .await;
    match reply {
        Some(Ok(to)) if complete => {
            tracing::info!(agent = s.agent, to, "handed over from the desk");
            axum::Json(serde_json::json!({ "transferred": to })).into_response()
        }
        Some(Ok(to)) => axum::Json(serde_json::json!({ "back": to })).into_response(),
        Some(Err((_, why))) => error(StatusCode::CONFLICT, &why),
        None => unavailable(),
    }
}

#[derive(Deserialize)]
struct RecordingForm {
    /// `true` records (starts an on-demand recording, or resumes), `false` pauses; absent,
    /// the other of the two.
    on: Option<bool>,
}

/// `POST /desk/recording`: the agent pauses or resumes her call's recording (or starts it,
/// `on-demand`), as her phone's `[recording] pause_keys` would: `{"recording": true}` when
/// it records now; 409 when her call is not recorded or she is on none.
async fn recording(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use crate::media::recording_control::Want;
    let usage = r#"{"on": true | false}"#;
    let (s, form) = match state.page_request::<RecordingForm>(&headers, &body, usage) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let want = match form.on {
        Some(true) => Want::On,
        Some(false) => Want::Off,
        None => Want::Toggle,
    };
    let agent = s.agent.clone();
    match ask(&state, |reply| ApiQuery::Recording { agent, want, reply }).await {
        Some(Ok(on)) => {
            tracing::info!(
                agent = s.agent,
                recording = on,
                "recording set from the desk"
            );
            axum::Json(serde_json::json!({ "recording": on })).into_response()
        }
        Some(Err(why)) => error(StatusCode::CONFLICT, &why),
        None => unavailable(),
    }
}

#[derive(Deserialize)]
struct WrapUpForm {
    call: String,
    code: String,
    #[serde(default)]
    note: String,
}

/// The longest wrap-up note kept.
const MAX_NOTE: usize = 2000;

/// `POST /desk/wrap-up`: the agent who answered a call sums it up (a supervisor may for
/// anyone); saved on the call record.
async fn wrap_up(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let usage = r#"{"call": ..., "code": ..., "note": ...}"#;
    let (s, form) = match state.page_request::<WrapUpForm>(&headers, &body, usage) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let codes = &state.status.config.desk.wrap_up_codes;
    if !codes.is_empty() && !codes.contains(&form.code) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("the wrap-up code is one of: {}", codes.join(", ")),
        );
    }
    let note: String = form
        .note
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(MAX_NOTE)
        .collect();
    let w = crate::store::WrapUp {
        code: form.code,
        note: note.trim().to_string(),
        by: s.agent.clone(),
        at: crate::api::wall_now().to_string(),
    };
    let call = form.call.clone();
    let agent = (!s.supervisor).then(|| s.agent.clone());
    let saved = with_store(&state, move |store| {
        Ok(if store.set_wrap_up(&call, agent.as_deref(), &w)? {
            store.call(&call)?
        } else {
            None
        })
    })
    .await;
    match saved {
        Ok(Some(record)) => {
            tracing::info!(agent = s.agent, call = form.call, "wrap-up saved");
            axum::Json(record).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no call of yours with that id"),
        Err(e) => e,
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    /// The last event the page has (its render's number), when it has no Last-Event-ID yet.
    after: Option<u64>,
}

/// `GET /api/events`: the live stream, for a desk session (its own row and the queues; a
/// supervisor's session everything) or the API's bearer token (everything).
async fn events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Query<EventsQuery>,
) -> Response {
    let viewer = match state.session(&headers) {
        Some(s) if s.supervisor => EventViewer::Supervisor,
        Some(s) => EventViewer::Agent(s.agent),
        None if state.bearer_ok(&headers) => EventViewer::Supervisor,
        None => {
            return login_required();
        }
    };
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(q.after);
    let sub = state.status.events.subscribe(last);
    let first: Vec<Result<sse::Event, Infallible>> = sub
        .gap
        .then(|| Ok(sse::Event::default().event("reload").data("{}")))
        .into_iter()
        .chain(
            sub.missed
                .iter()
                .filter(|p| p.event.visible_to(&viewer))
                .map(|p| Ok(to_sse(p))),
        )
        .collect();
    let live = stream::unfold((sub.rx, viewer), |(mut rx, viewer)| async move {
        loop {
            match rx.recv().await {
                Ok(p) if p.event.visible_to(&viewer) => {
                    return Some((Ok(to_sse(&p)), (rx, viewer)));
                }
                Ok(_) => continue,
                // Too slow to keep up: the page reloads its state rather than miss a change.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let reload = sse::Event::default().event("reload").data("{}");
                    return Some((Ok(reload), (rx, viewer)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let body: std::pin::Pin<Box<dyn Stream<Item = Result<sse::Event, Infallible>> + Send>> =
        Box::pin(futures_util::StreamExt::chain(stream::iter(first), live));
    // The HTTP listener closes a connection idle for 30 s: a comment every 15 s keeps it.
    (
        [(header::CACHE_CONTROL, "no-store")],
        Sse::new(body).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    )
        .into_response()
}

fn to_sse(p: &Published) -> sse::Event {
    sse::Event::default()
        .id(p.id.to_string())
        .event(p.event.name())
        .data(p.json.as_str())
}

/// The pages' style and scripts, built into the binary.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static str, &'static str) = match file.as_str() {
        "style.css" => (include_str!("assets/style.css"), "text/css; charset=utf-8"),
        "desk.js" => (
            include_str!("assets/desk.js"),
            "text/javascript; charset=utf-8",
        ),
        "wall.js" => (
            include_str!("assets/wall.js"),
            "text/javascript; charset=utf-8",
        ),
        "common.js" => (
            include_str!("assets/common.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return error(StatusCode::NOT_FOUND, "no such asset"),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_secure_behind_a_tls_proxy() {
        let mut h = HeaderMap::new();
        assert!(!cookie_attributes(&h).contains("Secure"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(cookie_attributes(&h).ends_with("HttpOnly; SameSite=Strict; Secure"));
    }

    #[test]
    fn a_login_leads_only_to_our_own_pages() {
        assert_eq!(next_page(Some("/wall")), "/wall");
        assert_eq!(next_page(Some("https://evil.example/")), "/desk");
        assert_eq!(next_page(Some("//evil.example")), "/desk");
        assert_eq!(next_page(None), "/desk");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; hotline_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        let t = token().unwrap();
        assert_eq!(t.len(), 64);
        assert_ne!(t, token().unwrap());
    }
}
