//! `GET /loki/api/v1/tail`: live tail over a WebSocket, as Loki serves it.
//!
//! Parameters: `query` (a LogQL log query: selector, line filters, parsers, label filters,
//! formatting; metric queries are refused), `delay_for` (seconds, 0 to 5: how long new
//! lines are held back so late ones can be put in order), `limit` (lines of history sent
//! first, default 100) and `start` (where that history begins, default one hour ago).
//! Every text frame is Loki's tail response,
//! `{"streams":[{"stream":{...},"values":[["<ns>","<line>"],...]}],"dropped_entries":[...]}`,
//! with `dropped_entries` (`{"labels":{...},"timestamp":"<ns>"}`) only when lines were
//! dropped because the client read too slowly.
//!
//! How lines arrive: the session subscribes to storage's broadcast of written log batches
//! ([`Storage::subscribe_logs`](strata_storage::Storage::subscribe_logs); storage sends
//! nothing while no one is subscribed) *before* reading the history, so no line written
//! meanwhile is missed; lines in both are sent once (Loki drops a repeated timestamp and
//! line in a stream too). Each batch is cut to the selected streams and run through the
//! query's pipeline off the reactor. Frames go to a writer task through a queue of
//! [`MAX_BUFFERED_FRAMES`]; when it is full the frame's lines are reported as dropped in the
//! next frame that fits, as Loki does. The session ends when the client closes or goes
//! away, after `tail_max_duration`, or when the server stops; at most `max_tail_sessions`
//! run at once.

use super::api::{
    LokiError, LokiState, StorageLogSource, blocking, check_range, engine_limits, index_matcher,
    now_ns, parse_time, to_stream,
};
use super::source::{LogReader, ReadStream};
use crate::prom::params::{BadRequest, Req};
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value as Json, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use strata_logql::{
    Direction, Engine, Expr, Limits, MemorySource, QueryResult, Stream, labels_string,
};
use strata_storage::TenantId;
use strata_storage::model::Labels;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// Frames queued for a slow client before new lines are dropped (Loki keeps 10 too).
pub(crate) const MAX_BUFFERED_FRAMES: usize = 10;
/// Loki's upper bound on `delay_for`, in seconds.
const MAX_DELAY_FOR_SECS: u64 = 5;
/// Most dropped entries one frame lists; beyond it they are only counted in the log.
const MAX_DROPPED_LISTED: usize = 10_000;

/// A validated tail request.
struct TailRequest {
    tenant: TenantId,
    expr: Expr,
    start_ns: i64,
    delay: Duration,
    limit: usize,
}

fn parse_request(
    state: &LokiState,
    req: Result<Req, BadRequest>,
) -> Result<TailRequest, LokiError> {
    let req = req?;
    let p = &req.params;
    let q = p.get("query");
    if q.is_empty() {
        return Err(LokiError::bad_request("query parameter is required"));
    }
    let expr = strata_logql::parse(q).map_err(|e| LokiError::bad_request(e.to_string()))?;
    if !expr.is_log_query() {
        return Err(LokiError::bad_request(format!(
            "tail supports log queries only, and {q:?} is a metric query: drop the range aggregation to tail its lines"
        )));
    }
    let delay = match p.get("delay_for") {
        "" => 0,
        v => v.parse::<u64>().map_err(|_| {
            LokiError::bad_request(format!(
                "invalid parameter \"delay_for\": {v:?} is not a whole number of seconds"
            ))
        })?,
    };
    if delay > MAX_DELAY_FOR_SECS {
        return Err(LokiError::bad_request(format!(
            "delay_for can't be greater than {MAX_DELAY_FOR_SECS}"
        )));
    }
    let limit = match p.get("limit") {
        "" => 100,
        v => v.parse::<usize>().map_err(|_| {
            LokiError::bad_request(format!(
                "invalid parameter \"limit\": {v:?} is not a non-negative integer"
            ))
        })?,
    };
    let max = state.config.max_entries_limit;
    if limit > max {
        return Err(LokiError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {max})"
        )));
    }
    let now = now_ns();
    let start_ns = match p.get("start") {
        "" => now.saturating_sub(3600 * 1_000_000_000),
        v => parse_time(v)
            .map_err(|e| LokiError::bad_request(format!("invalid parameter \"start\": {e}")))?,
    };
    check_range(start_ns.min(now), now, &state.config)?;
    Ok(TailRequest {
        tenant: req.tenant,
        expr,
        start_ns,
        delay: Duration::from_secs(delay),
        limit,
    })
}

/// The `/loki/api/v1/tail` handler: validates, takes a session slot, upgrades.
pub(crate) async fn tail(
    State(state): State<LokiState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    req: Result<Req, BadRequest>,
) -> Response {
    let req = match parse_request(&state, req) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return LokiError::bad_request(format!(
                "/loki/api/v1/tail is a WebSocket endpoint: connect with a WebSocket client ({e})"
            ))
            .into_response();
        }
    };
    let permit = match state.tails.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            let max = state.config.max_tail_sessions;
            return LokiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: format!(
                    "max concurrent tail requests limit exceeded, count > limit ({} > {max}): close a tail or raise query.loki.max_tail_sessions",
                    max + 1
                ),
            }
            .into_response();
        }
    };
    ws.on_upgrade(move |socket| session(state, socket, req, permit))
}

/// Lines that passed the pipeline, waiting for their `delay_for`.
struct Pending {
    arrived: Instant,
    streams: Vec<Stream>,
}

/// What the filter of one session keeps between batches.
struct LiveFilter {
    reader: LogReader,
    engine: Engine,
    expr: Expr,
    /// Stream ids seen so far: their labels when they match the selector, else `None`.
    known: HashMap<u64, Option<Labels>>,
    matchers: Vec<strata_storage::index::LabelMatcher>,
    /// (stream labels, timestamp, line) of the history sent, so a line is not sent twice.
    sent: HashSet<(String, i64, String)>,
}

impl LiveFilter {
    /// The lines of one written batch that the query keeps, as the engine returns them.
    fn run(
        &mut self,
        batch: &datafusion::arrow::array::RecordBatch,
    ) -> Result<Vec<Stream>, String> {
        let ids = batch
            .column_by_name("stream_id")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<datafusion::arrow::array::UInt64Array>()
            })
            .ok_or("logs batch without stream_id")?;
        if ids.values().iter().any(|id| !self.known.contains_key(id)) {
            let matching = self.reader.streams(&self.matchers);
            for id in ids.values().iter() {
                self.known
                    .entry(*id)
                    .or_insert_with(|| matching.get(id).cloned());
            }
        }
        let wanted: HashMap<u64, Labels> = ids
            .values()
            .iter()
            .filter_map(|id| Some((*id, self.known.get(id)?.clone()?)))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let streams: Vec<ReadStream> = self
            .reader
            .select_batch(batch, &wanted)
            .map_err(|e| format!("{e:?}"))?;
        let mut entries = 0usize;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let streams: Vec<Stream> = streams
            .into_iter()
            .map(|s| {
                for e in &s.entries {
                    lo = lo.min(e.ts_ns);
                    hi = hi.max(e.ts_ns);
                }
                entries += s.entries.len();
                to_stream(s)
            })
            .collect();
        if entries == 0 {
            return Ok(Vec::new());
        }
        let source = MemorySource::new(streams);
        let result = self
            .engine
            .query_range(
                &source,
                &self.expr,
                lo,
                hi.saturating_add(1),
                1_000_000_000,
                None,
                entries,
                Direction::Forward,
            )
            .map_err(|e| e.to_string())?;
        let QueryResult::Streams(mut out) = result else {
            return Ok(Vec::new());
        };
        if !self.sent.is_empty() {
            for s in &mut out {
                let key = labels_string(&s.labels);
                s.entries
                    .retain(|e| !self.sent.contains(&(key.clone(), e.ts_ns, e.line.clone())));
            }
            out.retain(|s| !s.entries.is_empty());
        }
        Ok(out)
    }
}

/// `{"streams": [...]}` plus `dropped_entries` when some were dropped.
fn frame(streams: &[Stream], dropped: &[(Vec<(String, String)>, i64)]) -> String {
    let labels_obj = |labels: &[(String, String)]| {
        Json::Object(
            labels
                .iter()
                .map(|(n, v)| (n.clone(), Json::String(v.clone())))
                .collect::<Map<String, Json>>(),
        )
    };
    let mut obj = Map::new();
    obj.insert(
        "streams".into(),
        Json::Array(
            streams
                .iter()
                .map(strata_logql::result::stream_json)
                .collect(),
        ),
    );
    if !dropped.is_empty() {
        obj.insert(
            "dropped_entries".into(),
            Json::Array(
                dropped
                    .iter()
                    .map(|(l, ts)| json!({"labels": labels_obj(l), "timestamp": ts.to_string()}))
                    .collect(),
            ),
        );
    }
    Json::Object(obj).to_string()
}

/// Merges streams with equal labels and puts every stream's entries in time order.
fn merge(parts: Vec<Stream>) -> Vec<Stream> {
    let mut by_labels: Vec<Stream> = Vec::new();
    for s in parts {
        match by_labels.iter_mut().find(|m| m.labels == s.labels) {
            Some(m) => m.entries.extend(s.entries),
            None => by_labels.push(s),
        }
    }
    for s in &mut by_labels {
        s.entries.sort_by_key(|e| e.ts_ns);
    }
    by_labels.sort_by(|a, b| a.labels.cmp(&b.labels));
    by_labels
}

/// Sends frames to the client; a full queue turns a frame's lines into dropped entries.
struct Outbox {
    tx: mpsc::Sender<Message>,
    dropped: Vec<(Vec<(String, String)>, i64)>,
    dropped_unlisted: u64,
}

impl Outbox {
    /// False once the client is gone.
    fn send(&mut self, streams: Vec<Stream>) -> bool {
        if streams.is_empty() && self.dropped.is_empty() {
            return true;
        }
        let text = frame(&streams, &self.dropped);
        match self.tx.try_send(Message::Text(text.into())) {
            Ok(()) => {
                self.dropped.clear();
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                for s in streams {
                    for e in s.entries {
                        if self.dropped.len() < MAX_DROPPED_LISTED {
                            self.dropped.push((s.labels.clone(), e.ts_ns));
                        } else {
                            self.dropped_unlisted += 1;
                        }
                    }
                }
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

async fn session(
    state: LokiState,
    socket: WebSocket,
    req: TailRequest,
    _permit: OwnedSemaphorePermit,
) {
    let TailRequest {
        tenant,
        expr,
        start_ns,
        delay,
        limit,
    } = req;
    let deadline = tokio::time::Instant::now() + state.config.tail_max_duration;
    // Subscribe before reading the history: a line written in between is in one or both.
    let mut appended = state.storage.subscribe_logs();
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(MAX_BUFFERED_FRAMES);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let closing = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut out = Outbox {
        tx,
        dropped: Vec::new(),
        dropped_unlisted: 0,
    };

    // History: the newest `limit` lines in [start, now), oldest first.
    let history_expr = expr.clone();
    let config = state.config.clone();
    let history = blocking(&state, tenant.clone(), move |reader| {
        let engine = Engine::new(engine_limits(&config));
        let source = StorageLogSource::new(reader);
        let now = now_ns();
        match engine.query_range(
            &source,
            &history_expr,
            start_ns.min(now),
            now,
            1_000_000_000,
            None,
            limit,
            Direction::Backward,
        ) {
            Ok(QueryResult::Streams(s)) => Ok(s),
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(LokiError::bad_request(e.to_string())),
        }
    })
    .await;
    let history = match history {
        Ok(h) => merge(h),
        Err(e) => {
            let _ = out
                .tx
                .send(Message::Close(Some(CloseFrame {
                    code: close_code::ERROR,
                    reason: truncate_reason(&e.message).into(),
                })))
                .await;
            drop(out);
            let _ = writer.await;
            return;
        }
    };
    let mut sent = HashSet::new();
    for s in &history {
        let key = labels_string(&s.labels);
        for e in &s.entries {
            sent.insert((key.clone(), e.ts_ns, e.line.clone()));
        }
    }
    if !history.is_empty()
        && out
            .tx
            .send(Message::Text(frame(&history, &[]).into()))
            .await
            .is_err()
    {
        return;
    }

    let matchers = match &expr {
        Expr::Log(log) => log.matchers.iter().map(index_matcher).collect(),
        _ => Ok(Vec::new()),
    };
    let Ok(matchers) = matchers else {
        return;
    };
    let mut filter = Some(LiveFilter {
        reader: LogReader::new(
            state.storage.clone(),
            tenant.clone(),
            None,
            Arc::new(AtomicBool::new(false)),
            0,
        ),
        engine: Engine::new(live_limits(usize::MAX)),
        expr,
        known: HashMap::new(),
        matchers,
        sent,
    });
    let mut pending: Vec<Pending> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lagged = 0u64;
    let close = loop {
        tokio::select! {
            msg = incoming.next() => match msg {
                // The client closed or went away.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                Some(Ok(_)) => {}
            },
            r = appended.recv() => match r {
                Ok(a) if a.tenant == tenant => {
                    let Some(mut f) = filter.take() else { break None };
                    let batch = a.batch;
                    let joined = tokio::task::spawn_blocking(move || {
                        let r = f.run(&batch);
                        (f, r)
                    })
                    .await;
                    let Ok((f, r)) = joined else { break None };
                    filter = Some(f);
                    match r {
                        Ok(streams) if !streams.is_empty() => {
                            pending.push(Pending { arrived: Instant::now(), streams });
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "live tail could not filter a batch"),
                    }
                    if delay.is_zero() && !flush(&mut pending, delay, &mut out) {
                        break None;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    lagged += n;
                    tracing::warn!(batches = n, "a live tail fell behind the writes and missed batches");
                }
                Err(RecvError::Closed) => break Some((close_code::AWAY, "server shutting down")),
            },
            _ = tick.tick() => {
                if !flush(&mut pending, delay, &mut out) {
                    break None;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                break Some((close_code::NORMAL, "tail_max_duration reached"));
            }
            _ = out.tx.closed() => break None,
        }
    };
    if let Some((code, reason)) = close {
        // Lines already past the pipeline still go out before the close.
        flush(&mut pending, Duration::ZERO, &mut out);
        let _ = out
            .tx
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
    if lagged > 0 || out.dropped_unlisted > 0 {
        tracing::info!(
            lagged_batches = lagged,
            dropped_unlisted = out.dropped_unlisted,
            "live tail ended after dropping lines"
        );
    }
    drop(out);
    let _ = writer.await;
}

/// Sends the pending lines whose delay has passed, in time order; false once the client
/// is gone.
fn flush(pending: &mut Vec<Pending>, delay: Duration, out: &mut Outbox) -> bool {
    let now = Instant::now();
    let (ready, wait): (Vec<Pending>, Vec<Pending>) = std::mem::take(pending)
        .into_iter()
        .partition(|p| now.duration_since(p.arrived) >= delay);
    *pending = wait;
    let streams = merge(ready.into_iter().flat_map(|p| p.streams).collect());
    out.send(streams)
}

/// Close reasons must fit a control frame (123 bytes).
fn truncate_reason(s: &str) -> String {
    let mut end = s.len().min(120);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn live_limits(max_entries: usize) -> Limits {
    Limits {
        max_entries,
        max_bytes_scanned: u64::MAX,
        max_series: usize::MAX,
        timeout: None,
        max_points: usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_logql::Entry;

    fn stream(labels: &[(&str, &str)], entries: &[(i64, &str)]) -> Stream {
        Stream {
            labels: labels
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            entries: entries.iter().map(|(t, l)| Entry::new(*t, *l)).collect(),
        }
    }

    #[test]
    fn merges_streams_in_time_order() {
        let merged = merge(vec![
            stream(&[("job", "b")], &[(5, "b5")]),
            stream(&[("job", "a")], &[(3, "a3")]),
            stream(&[("job", "b")], &[(1, "b1")]),
        ]);
        assert_eq!(
            merged,
            vec![
                stream(&[("job", "a")], &[(3, "a3")]),
                stream(&[("job", "b")], &[(1, "b1"), (5, "b5")]),
            ]
        );
    }

    #[test]
    fn a_full_queue_reports_the_lines_as_dropped_in_the_next_frame() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut out = Outbox {
            tx,
            dropped: Vec::new(),
            dropped_unlisted: 0,
        };
        assert!(out.send(vec![stream(&[("job", "a")], &[(1, "one")])]));
        // The queue holds one frame: this one is dropped and remembered.
        assert!(out.send(vec![stream(&[("job", "a")], &[(2, "two"), (3, "three")])]));
        assert_eq!(out.dropped.len(), 2);
        let first = rx.try_recv().expect("first frame");
        let Message::Text(first) = first else {
            panic!("text frame expected")
        };
        let first: Json = serde_json::from_str(first.as_str()).expect("json");
        assert_eq!(
            first,
            json!({"streams": [{"stream": {"job": "a"}, "values": [["1", "one"]]}]})
        );
        assert!(out.send(vec![stream(&[("job", "a")], &[(4, "four")])]));
        let Some(Message::Text(next)) = rx.try_recv().ok() else {
            panic!("second frame expected")
        };
        let next: Json = serde_json::from_str(next.as_str()).expect("json");
        assert_eq!(
            next,
            json!({
                "streams": [{"stream": {"job": "a"}, "values": [["4", "four"]]}],
                "dropped_entries": [
                    {"labels": {"job": "a"}, "timestamp": "2"},
                    {"labels": {"job": "a"}, "timestamp": "3"},
                ],
            })
        );
        assert!(out.dropped.is_empty());
        drop(rx);
        assert!(!out.send(vec![stream(&[("job", "a")], &[(5, "five")])]));
    }
}
