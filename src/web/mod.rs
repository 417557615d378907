//! The humans' pages, served by `hotline serve` beside the JSON API: `/` leads to the agent
//! desk, `/login` and `/logout`, `/desk` (an agent's state and the buttons that change it),
//! `/wall` (supervisors: every queue and agent, live), and `GET /api/events`, the Server-Sent
//! Events stream both pages follow. Templates and scripts are built into the binary.

pub mod pages;
pub mod session;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use crate::api::events::{Published, Viewer as EventViewer};
use crate::api::{ApiQuery, ApiState, LoginRefused, ask, change_state, error, unavailable};
use pages::Viewer;
use session::{Session, Sessions};

/// The cookie that names a desk session.
pub const COOKIE: &str = "hotline_session";

#[derive(Clone)]
pub struct WebState {
    pub api: ApiState,
    pub sessions: Arc<Mutex<Sessions>>,
}

impl WebState {
    pub fn new(api: ApiState) -> WebState {
        let idle =
            Duration::from_secs(u64::from(api.shared.config.desk.session_idle_h.max(1)) * 3600);
        WebState {
            api,
            sessions: Arc::new(Mutex::new(Sessions::new(idle))),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        match self.sessions.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The session the request's cookie names, if open.
    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let token = cookie(headers, COOKIE)?;
        self.sessions().get(&token, now())
    }
}

#[allow(clippy::disallowed_methods)] // the web edge reads the clock; the session core does not
fn now() -> Instant {
    Instant::now()
}

pub fn router(state: WebState) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/desk") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/desk", get(desk))
        .route("/desk/state", post(desk_state))
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

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
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
    State(state): State<WebState>,
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

async fn login(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
    let answer = ask(&state.api, |reply| ApiQuery::Login {
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
    let cookie = format!("{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict");
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
    State(state): State<WebState>,
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
    let gone = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, gone),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

async fn desk(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let Some(s) = state.session(&headers) else {
        return to_login("/desk");
    };
    let after = state.api.shared.events.last_id();
    let Some(agents) = ask(&state.api, ApiQuery::Agents).await else {
        return unavailable();
    };
    let me = agents.iter().find(|a| a.id == s.agent);
    let reasons = &state.api.shared.config.desk.not_ready_reasons;
    html(StatusCode::OK, pages::desk(&viewer(&s), me, reasons, after))
}

async fn wall(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let Some(s) = state.session(&headers) else {
        return to_login("/wall");
    };
    if !s.supervisor {
        return html(
            StatusCode::FORBIDDEN,
            pages::refused(&viewer(&s), "The wall is for supervisors."),
        );
    }
    let after = state.api.shared.events.last_id();
    let (Some(agents), Some(queues)) = (
        ask(&state.api, ApiQuery::Agents).await,
        ask(&state.api, ApiQuery::Queues).await,
    ) else {
        return unavailable();
    };
    html(
        StatusCode::OK,
        pages::wall(&viewer(&s), &queues, &agents, after),
    )
}

/// A change from a page: the session's own token in `X-CSRF-Token`, and, when the browser
/// says where the page came from, that it came from here.
fn checked(state: &WebState, headers: &HeaderMap) -> Result<Session, (StatusCode, &'static str)> {
    let Some(s) = state.session(headers) else {
        return Err((StatusCode::UNAUTHORIZED, "log in first"));
    };
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !crate::api::constant_time_eq(sent.as_bytes(), s.csrf.as_bytes()) {
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

#[derive(Deserialize)]
struct StateForm {
    /// Whose state: the agent's own when absent; another's only for a supervisor.
    agent: Option<String>,
    state: String,
    reason: Option<String>,
}

async fn desk_state(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let s = match checked(&state, &headers) {
        Ok(s) => s,
        Err((status, why)) => return error(status, why),
    };
    let Ok(form) = serde_json::from_slice::<StateForm>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"state\": \"available\" | \"not-ready\" | \"offline\", \"reason\": ...}",
        );
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
    change_state(&state.api, agent, &form.state, form.reason).await
}

#[derive(Deserialize)]
struct EventsQuery {
    /// The last event the page has (its render's number), when it has no Last-Event-ID yet.
    after: Option<u64>,
}

/// `GET /api/events`: the live stream, for a desk session (its own row and the queues; a
/// supervisor's session everything) or the API's bearer token (everything).
async fn events(
    State(state): State<WebState>,
    headers: HeaderMap,
    q: Query<EventsQuery>,
) -> Response {
    let viewer = match state.session(&headers) {
        Some(s) if s.supervisor => EventViewer::Supervisor,
        Some(s) => EventViewer::Agent(s.agent),
        None if bearer_ok(&state, &headers) => EventViewer::Supervisor,
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "log in, or give the API's bearer token",
            );
        }
    };
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(q.after);
    let sub = state.api.shared.events.subscribe(last);
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

fn bearer_ok(state: &WebState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.api.token else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    crate::api::constant_time_eq(given.trim().as_bytes(), token.as_bytes())
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
