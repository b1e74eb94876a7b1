//! Request bodies: size limits before and after decompression, gzip.

use crate::error::{Error, Result};
use axum::body::Body;
use bytes::Bytes;
use std::io::Read;

/// Reads a body of at most `limit` bytes.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| Error::TooLarge {
            limit,
            decompressed: false,
        })
}

/// A request's `Content-Type` as written (empty when missing) and its media type alone,
/// in lower case, without parameters such as `charset`.
pub fn content_type(headers: &axum::http::HeaderMap) -> (&str, String) {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (ct, mime)
}

/// Decodes a `Content-Encoding`: gzip is inflated without ever holding more than `limit`
/// bytes, so a gzip bomb fails fast instead of allocating.
pub fn decode_content(encoding: Option<&str>, raw: Bytes, limit: usize) -> Result<Bytes> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()) {
        None => Ok(raw),
        Some(e) if e.is_empty() || e == "identity" => Ok(raw),
        Some(e) if e == "gzip" || e == "x-gzip" => {
            let mut out = Vec::new();
            let mut reader = flate2::read::MultiGzDecoder::new(&raw[..]).take(limit as u64 + 1);
            reader
                .read_to_end(&mut out)
                .map_err(|e| Error::BadGzip(e.to_string()))?;
            if out.len() > limit {
                return Err(Error::TooLarge {
                    limit,
                    decompressed: true,
                });
            }
            Ok(out.into())
        }
        Some(other) => Err(Error::UnsupportedEncoding(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).expect("write");
        e.finish().expect("finish").into()
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 100 * 1024);
        let err = decode_content(Some("gzip"), bomb, 1024 * 1024);
        assert!(matches!(
            err,
            Err(Error::TooLarge {
                decompressed: true,
                ..
            })
        ));
    }

    #[test]
    fn gzip_within_limit_and_identity() {
        let data = decode_content(Some("gzip"), gzip(b"hello"), 100).expect("ok");
        assert_eq!(&data[..], b"hello");
        let raw = decode_content(None, Bytes::from_static(b"x"), 100).expect("ok");
        assert_eq!(&raw[..], b"x");
        assert!(matches!(
            decode_content(Some("br"), Bytes::new(), 100),
            Err(Error::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            decode_content(Some("gzip"), Bytes::from_static(b"not gzip"), 100),
            Err(Error::BadGzip(_))
        ));
    }
}
