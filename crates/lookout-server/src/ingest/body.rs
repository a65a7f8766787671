//! Reading request bodies within bounds, and decoding them.
//!
//! Bodies are read frame by frame (chunked bodies have no `Content-Length`), the size cap is
//! enforced while streaming, and every byte held is paid for from a server-wide memory budget
//! (a semaphore counted in KiB): when the budget is spent the request gets 503 instead of the
//! server growing without bound. Decompression writes into a buffer that stops one byte past
//! the configured limit, so a decompression bomb costs at most that limit
//! ([`lookout_protocol::codec`] decodes; this module maps its errors to HTTP answers).

use crate::http::error::ApiError;
use axum::body::Body;
use http_body_util::BodyExt;
use lookout_protocol::codec::CodecError;
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

impl From<CodecError> for ApiError {
    /// A body that cannot be decoded is the client's fault: 400, or 413 when it inflates
    /// past the limit.
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::TooLarge { .. } => ApiError::TooLarge {
                reason: "envelope_too_large",
                detail: e.to_string(),
            },
            CodecError::Unsupported(_) => {
                ApiError::bad_request("unsupported_encoding", e.to_string())
            }
            _ => ApiError::bad_request("bad_compression", e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_protocol::codec::{Encoding, decode};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn bombs_are_a_413() {
        let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
        let e = ApiError::from(decode(&bomb, Encoding::Gzip, 1024 * 1024).unwrap_err());
        assert_eq!(e.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.reason(), "envelope_too_large");
    }

    #[test]
    fn garbage_is_a_clear_400() {
        let e = ApiError::from(decode(b"not gzip", Encoding::Gzip, 1024).unwrap_err());
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(e.reason(), "bad_compression");
        assert!(e.to_string().contains("not valid gzip"), "{e}");
        let e = ApiError::from(Encoding::parse(Some("lzma")).unwrap_err());
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(e.reason(), "unsupported_encoding");
        assert_eq!(
            e.to_string(),
            "unsupported Content-Encoding \"lzma\"; use gzip, deflate, br, zstd or none"
        );
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
