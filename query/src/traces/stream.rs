//! Response bodies written in chunks by blocking code: a trace of 100k spans is sent as it
//! is encoded instead of being built whole in memory first, so the client starts reading
//! at once and no response waits on one huge buffer.

use crate::error::{Error, Result};
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

/// Bytes buffered before a chunk is handed to the connection.
const CHUNK_BYTES: usize = 256 * 1024;

/// Where blocking code writes a response body.
pub struct ChunkSink {
    buf: Vec<u8>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl ChunkSink {
    /// The buffer to append to; call [`ChunkSink::maybe_flush`] after each item.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Sends the buffer once it is large; fails when the client went away.
    pub fn maybe_flush(&mut self) -> Result<()> {
        if self.buf.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| Error::Internal("the client closed the connection".into()))
    }
}

/// A 200 response whose body `produce` writes on the blocking pool. An error after the
/// first bytes went out can only cut the body short (it is logged).
pub fn streamed(
    content_type: &'static str,
    produce: impl FnOnce(&mut ChunkSink) -> Result<()> + Send + 'static,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut sink = ChunkSink {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx: tx.clone(),
        };
        let result = produce(&mut sink).and_then(|()| sink.flush());
        if let Err(e) = result {
            tracing::warn!(error = %e, "streamed trace response cut short");
            let _ = tx.blocking_send(Err(std::io::Error::other("response cut short")));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}
