//! axum on gort: `cargo run --release --example axum_app [-- --addr 127.0.0.1:3000]`.
//!
//! A small REST API of notes kept in memory behind a `gort::sync::RwLock`:
//!
//! ```text
//! curl localhost:3000/notes                                     # list
//! curl -XPOST localhost:3000/notes -H 'content-type: application/json' -d '{"text":"hi"}'
//! curl localhost:3000/notes/1                                   # one (404 if absent)
//! curl -XDELETE localhost:3000/notes/1                          # remove
//! curl localhost:3000/whoami                                    # the client's address
//! ```
//!
//! axum is built with its default features off (no `tokio`), so nothing tokio-only can
//! be called by mistake; the router is served by `gort::hyper::serve` through
//! `TowerToHyperService`. Ctrl-C or SIGTERM stops it gracefully.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use gort::hyper::{PeerAddr, TowerToHyperService};
use gort::net::TcpListener;
use gort::signal::unix::{signal, SignalKind};
use gort::sync::RwLock;
use serde::{Deserialize, Serialize};

/// A note as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// The id the server gave it.
    pub id: u64,
    /// What the note says.
    pub text: String,
}

/// The body of `POST /notes`.
#[derive(Debug, Deserialize)]
pub struct NewNote {
    /// What the new note says.
    pub text: String,
}

#[derive(Default)]
struct Notes {
    next_id: u64,
    by_id: BTreeMap<u64, String>,
}

/// The application's state, shared by every request.
#[derive(Clone, Default)]
pub struct AppState {
    notes: Arc<RwLock<Notes>>,
}

/// The routes; the tests serve this same router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/notes", get(list).post(create))
        .route("/notes/{id}", get(read).delete(remove))
        .route("/whoami", get(whoami))
        .with_state(state)
}

async fn list(State(state): State<AppState>) -> Json<Vec<Note>> {
    let notes = state.notes.read().await;
    Json(
        notes
            .by_id
            .iter()
            .map(|(&id, text)| Note {
                id,
                text: text.clone(),
            })
            .collect(),
    )
}

async fn create(
    State(state): State<AppState>,
    Json(new): Json<NewNote>,
) -> (StatusCode, Json<Note>) {
    let mut notes = state.notes.write().await;
    notes.next_id += 1;
    let id = notes.next_id;
    notes.by_id.insert(id, new.text.clone());
    (StatusCode::CREATED, Json(Note { id, text: new.text }))
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Note>, StatusCode> {
    let notes = state.notes.read().await;
    let text = notes.by_id.get(&id).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(Note {
        id,
        text: text.clone(),
    }))
}

async fn remove(State(state): State<AppState>, Path(id): Path<u64>) -> StatusCode {
    match state.notes.write().await.by_id.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT,
        None => StatusCode::NOT_FOUND,
    }
}

async fn whoami(Extension(PeerAddr(peer)): Extension<PeerAddr>) -> String {
    format!("{peer}\n")
}

/// Completes on the first Ctrl-C or SIGTERM (handlers installed by this call).
pub fn stop_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        gort::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

#[allow(dead_code)] // the tests include this file for `app` only
#[gort::main]
async fn main() -> io::Result<()> {
    let addr = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => "127.0.0.1:3000".to_owned(),
        [flag, addr] if flag == "--addr" => addr.clone(),
        _ => {
            eprintln!("usage: axum_app [--addr HOST:PORT]");
            std::process::exit(2);
        }
    };
    let stop = stop_signal()?;
    let listener = TcpListener::bind(addr).await?;
    println!(
        "axum_app listening on http://{}; Ctrl-C to stop",
        listener.local_addr()?
    );
    let service = TowerToHyperService::new(app(AppState::default()));
    gort::hyper::serve(listener, service)
        .with_graceful_shutdown(stop)
        .await?;
    println!("axum_app: stopped");
    Ok(())
}
