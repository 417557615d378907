//! `/api/followups`: the voicemails and callback requests someone must deal with, each with
//! its state, owner and age against `[desk] follow_up_within_h`; changing one (take, release,
//! done, fail with a reason); and a voicemail's audio. An agent sees and acts on their queues'
//! items, a supervisor (or the API's token) on every one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::events::Event;
use super::{ApiState, Who, error, login_required, with_store};
use crate::store::StoreError;
use crate::store::followup::{Action, FollowUp, Kind};

/// How long a closed follow-up stays listed.
const CLOSED_LISTED_H: i64 = 24;

/// One follow-up as the pages show it.
#[derive(Debug, Serialize)]
pub struct FollowUpRow {
    #[serde(flatten)]
    pub item: FollowUp,
    /// When it is due (RFC 3339), its age, and whether it is open past its due time.
    pub due_at: String,
    pub age_s: u64,
    pub overdue: bool,
    /// A voicemail's length, and where its audio is.
    pub duration_s: Option<f64>,
    pub audio: Option<String>,
}

/// Whether `who` may see and act on follow-ups of `queue`.
fn may(state: &ApiState, who: &Who, queue: &str) -> bool {
    who.sees_all()
        || who
            .agent()
            .is_some_and(|a| state.status.config.queues_of(a).iter().any(|q| q == queue))
}

fn row(state: &ApiState, item: FollowUp, duration_ms: Option<u64>) -> FollowUpRow {
    let now = super::wall_now();
    let within = jiff::SignedDuration::from_hours(i64::from(
        state.status.config.desk.follow_up_within_h.max(1),
    ));
    let due = item
        .created_at
        .parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| t.checked_add(within).ok());
    FollowUpRow {
        due_at: due.map(|d| d.to_string()).unwrap_or_default(),
        age_s: item.age_s(now),
        overdue: item.state.is_open() && due.is_some_and(|d| d < now),
        duration_s: duration_ms.map(|ms| ms as f64 / 1000.0),
        audio: (item.kind == Kind::Voicemail).then(|| format!("/api/followups/{}/audio", item.id)),
        item,
    }
}

/// `GET /api/followups`: open ones (overdue first, then oldest first) and those closed in the
/// last day.
pub async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(who) = state.who(&headers) else {
        return login_required();
    };
    let since = (super::wall_now() - jiff::SignedDuration::from_hours(CLOSED_LISTED_H)).to_string();
    let items = match with_store(&state, move |s| {
        let items = s.followups(&since, 1000)?;
        items
            .into_iter()
            .map(|f| {
                let ms = match f.kind {
                    Kind::Voicemail => s.voicemail_file(f.item)?.map(|v| v.1),
                    Kind::Callback => None,
                };
                Ok((f, ms))
            })
            .collect::<Result<Vec<_>, StoreError>>()
    })
    .await
    {
        Ok(items) => items,
        Err(e) => return e,
    };
    let mut rows: Vec<FollowUpRow> = items
        .into_iter()
        .filter(|(f, _)| may(&state, &who, &f.queue))
        .map(|(f, ms)| row(&state, f, ms))
        .collect();
    rows.sort_by_key(|r| {
        (
            !r.item.state.is_open(),
            !r.overdue,
            std::cmp::Reverse(r.age_s),
        )
    });
    Json(rows).into_response()
}

#[derive(Deserialize)]
pub struct ChangeBody {
    action: String,
    reason: Option<String>,
}

/// `POST /api/followups/{id}`: `{"action": "take" | "release" | "done" | "fail", "reason": …}`,
/// from a page (its token) or with the API's bearer token.
pub async fn change(
    State(state): State<ApiState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let who = match state.writer(&headers) {
        Ok(w) => w,
        Err(e) => return *e,
    };
    let Ok(b) = serde_json::from_slice::<ChangeBody>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"action\": \"take\" | \"release\" | \"done\" | \"fail\", \"reason\": ...}",
        );
    };
    if b.action == "call" {
        return call_back(&state, who, id).await;
    }
    let Some(action) = Action::parse(&b.action, b.reason) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the action is take, release, done, fail (with a reason) or call",
        );
    };
    let before = match with_store(&state, move |s| s.followup(id)).await {
        Ok(Some(f)) => f,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such follow-up"),
        Err(e) => return e,
    };
    if !may(&state, &who, &before.queue) {
        return error(StatusCode::FORBIDDEN, "not one of your queues' follow-ups");
    }
    let name = who.agent().unwrap_or("api").to_string();
    let now = super::wall_now().to_string();
    let after = match before.apply(&action, &name, who.sees_all(), &now) {
        Ok(a) => a,
        Err(refused) => return error(StatusCode::CONFLICT, &refused.to_string()),
    };
    let written = {
        let (b, a) = (before.clone(), after.clone());
        with_store(&state, move |s| s.change_followup(&b, &a)).await
    };
    match written {
        Ok(true) => {
            tracing::info!(
                id,
                by = name,
                state = after.state.as_str(),
                "follow-up changed"
            );
            state.status.events.publish(Event::FollowUps);
            Json(row(&state, after, None)).into_response()
        }
        Ok(false) => error(
            StatusCode::CONFLICT,
            "someone changed it meanwhile: look again",
        ),
        Err(e) => e,
    }
}

/// `{"action": "call"}`: the agent takes the follow-up (if nobody has) and calls the caller
/// back now: their own phone rings, then the caller's.
async fn call_back(state: &ApiState, who: Who, id: i64) -> Response {
    let Who::Desk(session) = &who else {
        return error(
            StatusCode::BAD_REQUEST,
            "calling back rings an agent's phone: from the agent's desk",
        );
    };
    let before = match with_store(state, move |s| s.followup(id)).await {
        Ok(Some(f)) => f,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such follow-up"),
        Err(e) => return e,
    };
    if !may(state, &who, &before.queue) {
        return error(StatusCode::FORBIDDEN, "not one of your queues' follow-ups");
    }
    let agent = session.agent.clone();
    let mut item = before.clone();
    if before.owner.as_deref() != Some(agent.as_str()) {
        let now = super::wall_now().to_string();
        let taken = match before.apply(&Action::Take, &agent, false, &now) {
            Ok(t) => t,
            Err(refused) => return error(StatusCode::CONFLICT, &refused.to_string()),
        };
        let (b, t) = (before.clone(), taken.clone());
        match with_store(state, move |s| s.change_followup(&b, &t)).await {
            Ok(true) => item = taken,
            Ok(false) => {
                return error(
                    StatusCode::CONFLICT,
                    "someone changed it meanwhile: look again",
                );
            }
            Err(e) => return e,
        }
        state.status.events.publish(Event::FollowUps);
    } else if !item.state.is_open() {
        return error(
            StatusCode::CONFLICT,
            &format!("it is {} already", item.state.as_str()),
        );
    }
    let rang = super::ask(state, |reply| super::ApiQuery::CallBackNow {
        agent: agent.clone(),
        caller: item.caller.clone(),
        queue: item.queue.clone(),
        call_id: item.call_id.clone(),
        reply,
    })
    .await;
    match rang {
        Some(Ok(())) => {
            tracing::info!(id, agent, "calling back now");
            Json(row(state, item, None)).into_response()
        }
        Some(Err(why)) => error(StatusCode::CONFLICT, &why),
        None => super::unavailable(),
    }
}

/// `GET /api/followups/{id}/audio`: a voicemail's WAV, for whoever may see the follow-up.
pub async fn audio(
    State(state): State<ApiState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let Some(who) = state.who(&headers) else {
        return login_required();
    };
    let found = with_store(&state, move |s| {
        let Some(f) = s.followup(id)? else {
            return Ok(None);
        };
        let file = match f.kind {
            Kind::Voicemail => s.voicemail_file(f.item)?.map(|v| v.0),
            Kind::Callback => None,
        };
        Ok(Some((f.queue, file)))
    })
    .await;
    let (queue, file) = match found {
        Ok(Some(v)) => v,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such follow-up"),
        Err(e) => return e,
    };
    if !may(&state, &who, &queue) {
        return error(StatusCode::FORBIDDEN, "not one of your queues' messages");
    }
    let Some(file) = file else {
        return error(StatusCode::NOT_FOUND, "a callback request has no recording");
    };
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
            &format!("the recording is gone: {e}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
