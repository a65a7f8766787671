//! Reading request bodies within bounds, and decoding them.
//!
//! Bodies are read frame by frame (chunked bodies have no `Content-Length`), the size cap is
//! enforced while streaming, and every byte held is paid for from a server-wide memory budget
//! (a semaphore counted in KiB): when the budget is spent the request gets 503 instead of the
//! server growing without bound. Decompression writes into a buffer that stops one byte past
//! the configured limit, so a decompression bomb costs at most that limit.

use crate::http::error::ApiError;
use axum::body::Body;
use http_body_util::BodyExt;
use std::io::Read;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Memory budget unit: one permit per KiB.
const UNIT: usize = 1024;

/// Bytes held by a request, with the budget they were paid from.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    reserved_units: usize,
}

impl Reservation {
    /// An empty reservation against `budget`.
    pub fn new(budget: Arc<Semaphore>) -> Self {
        Self {
            budget,
            permit: None,
            reserved_units: 0,
        }
    }

    /// Make sure at least `bytes` in total are reserved; 503 when the budget is spent.
    pub fn ensure(&mut self, bytes: usize) -> Result<(), ApiError> {
        let needed = bytes.div_ceil(UNIT);
        if needed <= self.reserved_units {
            return Ok(());
        }
        let more = needed - self.reserved_units;
        let more_u32 = u32::try_from(more).map_err(|_| overloaded())?;
        let permit = Arc::clone(&self.budget)
            .try_acquire_many_owned(more_u32)
            .map_err(|_| overloaded())?;
        match &mut self.permit {
            Some(p) => p.merge(permit),
            None => self.permit = Some(permit),
        }
        self.reserved_units = needed;
        Ok(())
    }

    /// Give the permit away (it is released when dropped).
    pub fn into_permit(self) -> Option<OwnedSemaphorePermit> {
        self.permit
    }
}

fn overloaded() -> ApiError {
    ApiError::Unavailable {
        reason: "overloaded",
        retry_after: 1,
        detail: "server overloaded: too many request bytes in flight, retry later".into(),
    }
}

/// Read a whole body of at most `max` bytes, reserving memory as it arrives.
pub async fn read_limited(
    body: Body,
    max: usize,
    reservation: &mut Reservation,
) -> Result<Vec<u8>, ApiError> {
    let mut body = body;
    let mut out: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request("body_read", format!("could not read the request body: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            let total = out.len() + data.len();
            if total > max {
                return Err(ApiError::TooLarge {
                    reason: "body_too_large",
                    detail: format!("request body exceeds the limit of {max} bytes"),
                });
            }
            reservation.ensure(total)?;
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// A supported `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No compression.
    Identity,
    /// gzip / x-gzip.
    Gzip,
    /// zlib-wrapped deflate (raw deflate is accepted too).
    Deflate,
    /// Brotli.
    Brotli,
    /// Zstandard.
    Zstd,
}

impl Encoding {
    /// Parse a `Content-Encoding` header value.
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        let v = value.unwrap_or("").trim().to_ascii_lowercase();
        Ok(match v.as_str() {
            "" | "identity" => Self::Identity,
            "gzip" | "x-gzip" => Self::Gzip,
            "deflate" => Self::Deflate,
            "br" => Self::Brotli,
            "zstd" => Self::Zstd,
            other => {
                return Err(ApiError::bad_request(
                    "unsupported_encoding",
                    format!(
                        "unsupported Content-Encoding {other:?}; use gzip, deflate, br, zstd or none"
                    ),
                ));
            }
        })
    }

    /// The `Content-Encoding` token (and the inbox `encoding` column value).
    pub fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }
}

/// The encoding named by an inbox row.
pub fn from_name(name: &str) -> Option<Encoding> {
    Encoding::parse(Some(name)).ok()
}

/// Encode a plain envelope for the inbox: zstd level 1 when the body is large enough for
/// that to pay, else as is. Returns the bytes and the encoding used.
pub fn pack(plain: Vec<u8>) -> (bytes::Bytes, Encoding) {
    if plain.len() >= 1024
        && let Ok(z) = zstd::bulk::compress(&plain, 1)
        && z.len() < plain.len()
    {
        return (bytes::Bytes::from(z), Encoding::Zstd);
    }
    (bytes::Bytes::from(plain), Encoding::Identity)
}

/// Decode `body` with at most `max` bytes of output.
///
/// The decoders read `body` in place (the `bufread` forms: no intermediate buffer to
/// allocate and zero per request), into an output sized for a typical ratio up front.
pub fn decode(body: &[u8], encoding: Encoding, max: usize) -> Result<Vec<u8>, ApiError> {
    let out = match encoding {
        Encoding::Identity => body.to_vec(),
        Encoding::Gzip => read_capped(
            flate2::bufread::MultiGzDecoder::new(body),
            body,
            encoding,
            max,
        )?,
        Encoding::Deflate => {
            match read_capped(flate2::bufread::ZlibDecoder::new(body), body, encoding, max) {
                Ok(v) => v,
                Err(ApiError::BadRequest { .. }) => read_capped(
                    flate2::bufread::DeflateDecoder::new(body),
                    body,
                    encoding,
                    max,
                )?,
                Err(e) => return Err(e),
            }
        }
        Encoding::Brotli => {
            read_capped(brotli::Decompressor::new(body, 4096), body, encoding, max)?
        }
        Encoding::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(body).map_err(|e| {
                ApiError::bad_request("bad_compression", format!("body is not valid zstd: {e}"))
            })?;
            read_capped(decoder, body, encoding, max)?
        }
    };
    if out.len() > max {
        return Err(too_large_decoded(max));
    }
    Ok(out)
}

fn too_large_decoded(max: usize) -> ApiError {
    ApiError::TooLarge {
        reason: "envelope_too_large",
        detail: format!("decompressed body exceeds the limit of {max} bytes"),
    }
}

fn read_capped(
    reader: impl Read,
    body: &[u8],
    encoding: Encoding,
    max: usize,
) -> Result<Vec<u8>, ApiError> {
    // Envelopes compress about 5:1; start there (within the limit) and grow if needed.
    let mut out = Vec::with_capacity(body.len().saturating_mul(6).min(max).max(1024));
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut out).map_err(|e| {
        ApiError::bad_request(
            "bad_compression",
            format!("body is not valid {}: {e}", encoding.name()),
        )
    })?;
    if out.len() > max {
        return Err(too_large_decoded(max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn all_encodings_round_trip() {
        let data = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n".repeat(20);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        let zlib = z.finish().unwrap();
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(&data).unwrap();
        let raw = d.finish().unwrap();
        let mut br = Vec::new();
        brotli::BrotliCompress(&mut &data[..], &mut br, &Default::default()).unwrap();
        let zst = zstd::encode_all(&data[..], 3).unwrap();
        for (enc, body) in [
            (Encoding::Gzip, gzip(&data)),
            (Encoding::Deflate, zlib),
            (Encoding::Deflate, raw),
            (Encoding::Brotli, br),
            (Encoding::Zstd, zst),
            (Encoding::Identity, data.clone()),
        ] {
            assert_eq!(decode(&body, enc, 1 << 20).unwrap(), data, "{enc:?}");
        }
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
        assert!(bomb.len() < 128 * 1024);
        let e = decode(&bomb, Encoding::Gzip, 1024 * 1024).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn garbage_is_a_clear_400() {
        let e = decode(b"not gzip", Encoding::Gzip, 1024).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("not valid gzip"), "{e}");
        assert!(Encoding::parse(Some("lzma")).is_err());
        assert_eq!(Encoding::parse(Some("X-GZIP")).unwrap(), Encoding::Gzip);
    }

    #[test]
    fn reservation_is_bounded() {
        let budget = Arc::new(Semaphore::new(4));
        let mut a = Reservation::new(Arc::clone(&budget));
        a.ensure(3000).unwrap();
        a.ensure(3500).unwrap();
        let mut b = Reservation::new(Arc::clone(&budget));
        assert!(b.ensure(2 * 1024).is_err());
        drop(a);
        b.ensure(4 * 1024).unwrap();
    }
}
