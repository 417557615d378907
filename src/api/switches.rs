//! `/api/switches`: the `[switches]` of the config, where each stands and who flipped it;
//! flipping one (`POST /api/switches/NAME`, the bearer token or a supervisor's login), for a
//! while (`for_s`), until a time (`until`), or until flipped back. Each flip is logged, kept
//! in the store and published to the pages; the next call takes it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiState, error, wall_now, with_store};
use crate::status::events::Event;
use crate::status::switches::Flip;

/// The longest a flip may be set for: a month (longer is a config change).
const MAX_FOR_S: u64 = 31 * 24 * 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlipBody {
    on: bool,
    /// Seconds from now until the switch returns where the config sets it.
    #[serde(default)]
    for_s: Option<u64>,
    /// Or a time (RFC 3339).
    #[serde(default)]
    until: Option<String>,
}

const USAGE: &str = "expected {\"on\": true|false} with, optionally, \"for_s\": seconds (at most a month) or \"until\": an RFC 3339 time";

pub async fn list(State(state): State<ApiState>) -> Response {
    let flows = state.status.flows();
    Json(state.status.switches.rows(&flows.set.switches, wall_now())).into_response()
}

pub async fn flip(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let who = match state.writer(&headers) {
        Ok(w) => w,
        Err(e) => return *e,
    };
    if !who.sees_all() {
        return error(StatusCode::FORBIDDEN, "only a supervisor flips a switch");
    }
    let flows = state.status.flows();
    if !flows.set.switches.contains_key(&name) {
        return error(
            StatusCode::NOT_FOUND,
            "no such switch (see [switches] in hotline.toml)",
        );
    }
    let Ok(b) = serde_json::from_slice::<FlipBody>(&body) else {
        return error(StatusCode::BAD_REQUEST, USAGE);
    };
    // Whole seconds: what the wall and the log show.
    let now = wall_now();
    let now = now.round(jiff::Unit::Second).unwrap_or(now);
    let until = match (b.for_s, b.until.as_deref()) {
        (None, None) => None,
        (Some(s), None) if (1..=MAX_FOR_S).contains(&s) => now
            .checked_add(jiff::SignedDuration::from_secs(s as i64))
            .ok(),
        (None, Some(t)) => match t
            .parse::<jiff::Timestamp>()
            .or_else(|_| t.parse::<jiff::Zoned>().map(|z| z.timestamp()))
        {
            Ok(t) if t > now && t.duration_since(now).as_secs() as u64 <= MAX_FOR_S => Some(t),
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "\"until\" must be in the coming month",
                );
            }
            Err(_) => return error(StatusCode::BAD_REQUEST, USAGE),
        },
        _ => return error(StatusCode::BAD_REQUEST, USAGE),
    };
    let flip = Flip {
        on: b.on,
        until: until.map(|t| t.to_string()),
        by: who.agent().unwrap_or("api").to_string(),
        at: now.to_string(),
    };
    let kept = flip.clone();
    let key = name.clone();
    if let Err(e) = with_store(&state, move |s| s.set_switch(&key, &kept)).await {
        return e;
    }
    state.status.switches.set(&name, flip.clone());
    tracing::info!(
        switch = name,
        on = flip.on,
        until = flip.until.as_deref().unwrap_or("flipped back"),
        by = flip.by,
        "switch flipped"
    );
    let rows = state.status.switches.rows(&flows.set.switches, now);
    state.status.events.publish(Event::Switches {
        switches: rows.clone(),
    });
    match rows.into_iter().find(|r| r.name == name) {
        Some(row) => Json(row).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such switch"),
    }
}
