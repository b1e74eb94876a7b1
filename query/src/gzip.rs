//! Gzipped answers for clients that ask for them, as Prometheus's and Loki's APIs give them.
//!
//! Grafana's Go client sends `Accept-Encoding: gzip` with every request; a range query's
//! JSON (timestamps and decimal values) shrinks about tenfold, which matters once Grafana
//! and Strata are not on one machine. Answers are built whole in memory before they are
//! sent, so this layer compresses the built body: at level 1 (a few hundred MB/s), on the
//! blocking pool for large bodies so that the reactor keeps serving.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, UPGRADE, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;

/// Answers shorter than this go out as they are (a gzip header and trailer cost 18 bytes,
/// and a small JSON answer compresses little).
const MIN_BYTES: usize = 1024;
/// Answers longer than this are compressed on the blocking pool.
const BLOCKING_BYTES: usize = 64 * 1024;

/// Whether an `Accept-Encoding` header accepts gzip: gzip's own quality when it is
/// listed, else that of `*`; a quality of 0 (or one that does not parse) refuses.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None, None);
    for item in headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let mut accepted = true;
        for p in parts {
            if let Some((name, q)) = p.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                accepted = q.trim().parse::<f32>().is_ok_and(|q| q > 0.0);
            }
        }
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(gzip.unwrap_or(false) || accepted);
        } else if coding == "*" {
            any = Some(any.unwrap_or(false) || accepted);
        }
    }
    gzip.or(any).unwrap_or(false)
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
    enc.write_all(bytes)?;
    enc.finish()
}

/// Middleware: the inner answer, gzipped when the request accepts gzip and the answer is
/// long enough and not encoded already. Protocol upgrades (WebSockets) pass untouched.
pub(crate) async fn gzip_answers(req: Request, next: Next) -> Response {
    let upgrade = req.headers().contains_key(UPGRADE);
    let wanted = accepts_gzip(req.headers()) && !upgrade;
    let mut resp = next.run(req).await;
    if upgrade || resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return resp;
    }
    // The answer depends on the header, whether or not this one is gzipped.
    resp.headers_mut()
        .append(VARY, HeaderValue::from_static("accept-encoding"));
    if !wanted || resp.headers().contains_key(CONTENT_ENCODING) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "an answer's body could not be read to gzip it");
            let msg = "the answer could not be read";
            return (StatusCode::INTERNAL_SERVER_ERROR, msg).into_response();
        }
    };
    if bytes.len() < MIN_BYTES {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let packed = if bytes.len() < BLOCKING_BYTES {
        gzip(&bytes)
    } else {
        let plain = bytes.clone();
        tokio::task::spawn_blocking(move || gzip(&plain))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    };
    match packed {
        Ok(packed) => {
            parts
                .headers
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            parts.headers.remove(CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(packed))
        }
        // Writing to memory does not fail; should it, the answer goes out as it is.
        Err(_) => Response::from_parts(parts, Body::from(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn accept_encoding_is_read_as_http_defines_it() {
        assert!(accepts_gzip(&headers("gzip")));
        assert!(accepts_gzip(&headers("deflate, gzip;q=0.5")));
        assert!(accepts_gzip(&headers("GZIP")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("gzip; q=0.0, br")));
        assert!(!accepts_gzip(&headers("identity")));
        assert!(!accepts_gzip(&headers("x-gzip-ish")));
        assert!(!accepts_gzip(&HeaderMap::new()));
        // gzip's own quality wins over `*`'s, whichever comes first.
        assert!(!accepts_gzip(&headers("gzip;q=0, *")));
        assert!(!accepts_gzip(&headers("*, gzip;Q=0")));
        assert!(accepts_gzip(&headers("*;q=0, gzip")));
        assert!(!accepts_gzip(&headers("*;q=0")));
        assert!(!accepts_gzip(&headers("gzip;q=NaN")));
        assert!(accepts_gzip(&headers("x-gzip")));
    }
}
