//! Watch streams: newline-delimited JSON events from a revision, history first, then live.
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use skiff_api::{ErrorBody, EventType, WatchEvent};
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::plane::ControlPlane;
use crate::reads::Filter;
use crate::watchers::Watcher;

/// How often an idle stream sends a blank line, so dead clients are noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Starts a watch. With `from`, replays history after that revision (410 when it is compacted);
/// without, sends every current object as `ADDED`, then follows live changes.
pub(crate) async fn serve(
    plane: ControlPlane,
    watcher: Option<Watcher>,
    filter: Filter,
    from: Option<u64>,
) -> Result<Response, ApiError> {
    let name = watcher.map_or_else(|| "anonymous".to_owned(), |w| w.0);
    let ticket = plane.inner.watchers.open(&name)?;
    // Subscribe before reading history, so nothing falls between the two.
    let mut rx = plane.inner.events.subscribe();
    let reader = plane.inner.reader.clone();
    let mut initial: Vec<WatchEvent> = Vec::new();
    let mut last = match from {
        Some(rev) => {
            let mut last = rev;
            for (r, ev) in reader.events_since(rev)? {
                last = r;
                if filter.matches(&ev.object) {
                    initial.push(ev);
                }
            }
            last
        }
        None => {
            let (rev, items) = reader.list(filter.kind, filter.namespace.as_deref(), &filter.labels)?;
            initial.extend(
                items
                    .into_iter()
                    .filter(|o| filter.fields.matches(o))
                    .map(|object| WatchEvent {
                        event_type: EventType::Added,
                        object,
                    }),
            );
            rev
        }
    };
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let _ticket = ticket;
        for ev in initial {
            if tx.send(Ok(line(&plane, &ev))).await.is_err() {
                return;
            }
        }
        loop {
            // A client that went away ends the stream (and frees its watch place) at once.
            let next = tokio::select! {
                () = tx.closed() => return,
                next = tokio::time::timeout(KEEPALIVE, rx.recv()) => next,
            };
            match next {
                Err(_) => {
                    if tx.send(Ok(Bytes::from_static(b"\n"))).await.is_err() {
                        return;
                    }
                }
                Ok(Ok(ev)) => {
                    if ev.revision <= last {
                        continue;
                    }
                    last = ev.revision;
                    if filter.matches(&ev.event.object) && tx.send(Ok(line(&plane, &ev.event))).await.is_err()
                    {
                        return;
                    }
                }
                Ok(Err(RecvError::Lagged(_))) => {
                    // Fell behind the channel: catch up from the table.
                    match reader.events_since(last) {
                        Ok(evs) => {
                            for (r, ev) in evs {
                                last = r;
                                if filter.matches(&ev.object) && tx.send(Ok(line(&plane, &ev))).await.is_err()
                                {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            let body = ErrorBody {
                                code: skiff_api::ErrorCode::Gone,
                                message: e.to_string(),
                                details: None,
                            };
                            let _ = tx.send(Ok(json_line(&body))).await;
                            return;
                        }
                    }
                }
                Ok(Err(RecvError::Closed)) => return,
            }
        }
    });
    let stream = futures::stream::unfold(
        body_rx,
        |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One watch line; a Secret's values are opened for the (authorised) watcher.
fn line(plane: &ControlPlane, ev: &WatchEvent) -> Bytes {
    if ev.object.kind() != skiff_api::Kind::Secret {
        return json_line(ev);
    }
    let mut ev = ev.clone();
    match plane.reveal(&mut ev.object) {
        Ok(()) => json_line(&ev),
        Err(e) => json_line(&e.body),
    }
}

fn json_line<T: serde::Serialize>(v: &T) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}
