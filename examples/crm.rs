//! A small CRM stand-in for the demo line's `lookup` node: it knows the callers in
//! `examples/crm.json` by number and answers `GET /caller?caller_number=+34600111222` with
//! what it knows of them (`{"tier": "vip", "name": "Ana García"}`), `{}` for a stranger.
//!
//!     cargo run --example crm                      # on 127.0.0.1:8090, examples/crm.json
//!     cargo run --example crm -- 127.0.0.1:8091 my-callers.json
//!
//! The demo config (`examples/hotline.toml`, `[lookups.crm]`) asks it; with it stopped, the
//! demo line's callers go the lookup's `on_error` way, to the menu.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};

type Callers = Arc<HashMap<String, serde_json::Value>>;

async fn caller(
    State(callers): State<Callers>,
    Query(params): Query<HashMap<String, String>>,
) -> Json<serde_json::Value> {
    let number = params.get("caller_number").cloned().unwrap_or_default();
    let known = callers.get(&number).cloned();
    println!(
        "crm: {} on line {} -> {}",
        if number.is_empty() {
            "(withheld)"
        } else {
            &number
        },
        params.get("line").map_or("?", String::as_str),
        known
            .as_ref()
            .map_or("a stranger".to_string(), |v| v.to_string())
    );
    Json(known.unwrap_or_else(|| serde_json::json!({})))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8090".to_string());
    let file = args
        .next()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/crm.json").to_string());
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
    let callers: HashMap<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    // The address it took (port 0 picks a free one): the first line it prints.
    println!(
        "crm: {} callers from {file}, on http://{}/caller",
        callers.len(),
        listener.local_addr()?
    );
    let app = Router::new()
        .route("/caller", get(caller))
        .with_state(Arc::new(callers));
    axum::serve(listener, app).await?;
    Ok(())
}
