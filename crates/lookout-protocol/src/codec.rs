//! The content encodings of Sentry request bodies, and of the bodies the inbox keeps.
//!
//! Ingest [`decode`]s what a client sent under `Content-Encoding`; the inbox stores an
//! envelope either as the client compressed it or [`pack`]ed (zstd when that pays) and names
//! the encoding in a column, which the digest reads back with [`Encoding::from_name`] and
//! [`decode`]. Decoding writes into a buffer that stops one byte past the caller's limit, so
//! a decompression bomb costs at most that limit.
//!
//! Pure functions over byte slices; the HTTP side (size limits, memory budget, status codes)
//! stays with the server's ingest.

use std::io::Read;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The `Content-Encoding` is not one of the supported ones (the lowercased token).
    #[error("unsupported Content-Encoding {0:?}; use gzip, deflate, br, zstd or none")]
    Unsupported(String),
    /// The body is not valid data of its encoding.
    #[error("body is not valid {}: {message}", encoding.name())]
    Invalid {
        /// The encoding the body claimed.
        encoding: Encoding,
        /// What the decoder reported.
        message: String,
    },
    /// The decoded body would be larger than the limit.
    #[error("decompressed body exceeds the limit of {max} bytes")]
    TooLarge {
        /// The limit in bytes.
        max: usize,
    },
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
    /// Parse a `Content-Encoding` header value (case-insensitive; absent or empty is
    /// [`Encoding::Identity`]).
    ///
    /// # Errors
    ///
    /// [`CodecError::Unsupported`] for any other token.
    pub fn parse(value: Option<&str>) -> Result<Self, CodecError> {
        let v = value.unwrap_or("").trim().to_ascii_lowercase();
        Ok(match v.as_str() {
            "" | "identity" => Self::Identity,
            "gzip" | "x-gzip" => Self::Gzip,
            "deflate" => Self::Deflate,
            "br" => Self::Brotli,
            "zstd" => Self::Zstd,
            _ => return Err(CodecError::Unsupported(v)),
        })
    }

    /// The encoding named by an inbox row's `encoding` column (what [`Encoding::name`]
    /// wrote), or `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Encoding> {
        Encoding::parse(Some(name)).ok()
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

/// Encode a plain envelope for the inbox: zstd level 1 when the body is large enough for
/// that to pay, else as is. Returns the bytes and the encoding used.
pub fn pack(plain: Vec<u8>) -> (Vec<u8>, Encoding) {
    if plain.len() >= 1024
        && let Ok(z) = zstd::bulk::compress(&plain, 1)
        && z.len() < plain.len()
    {
        return (z, Encoding::Zstd);
    }
    (plain, Encoding::Identity)
}

/// Decode `body` with at most `max` bytes of output.
///
/// The decoders read `body` in place (the `bufread` forms: no intermediate buffer to
/// allocate and zero per request), into an output sized for a typical ratio up front.
///
/// # Errors
///
/// [`CodecError::Invalid`] when `body` is not valid data of `encoding`;
/// [`CodecError::TooLarge`] when the output would exceed `max` bytes.
pub fn decode(body: &[u8], encoding: Encoding, max: usize) -> Result<Vec<u8>, CodecError> {
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
                Err(CodecError::Invalid { .. }) => read_capped(
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
                CodecError::Invalid {
                    encoding,
                    message: e.to_string(),
                }
            })?;
            read_capped(decoder, body, encoding, max)?
        }
    };
    if out.len() > max {
        return Err(CodecError::TooLarge { max });
    }
    Ok(out)
}

fn read_capped(
    reader: impl Read,
    body: &[u8],
    encoding: Encoding,
    max: usize,
) -> Result<Vec<u8>, CodecError> {
    // Envelopes compress about 5:1; start there (within the limit) and grow if needed.
    let mut out = Vec::with_capacity(body.len().saturating_mul(6).min(max).max(1024));
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Invalid {
            encoding,
            message: e.to_string(),
        })?;
    if out.len() > max {
        return Err(CodecError::TooLarge { max });
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
    fn pack_compresses_only_when_it_pays() {
        let small = b"{}".to_vec();
        assert_eq!(pack(small.clone()), (small, Encoding::Identity));
        let large = b"{\"message\":\"the same line again\"}\n".repeat(100);
        let (packed, encoding) = pack(large.clone());
        assert_eq!(encoding, Encoding::Zstd);
        assert!(packed.len() < large.len());
        assert_eq!(decode(&packed, encoding, 1 << 20).unwrap(), large);
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
        assert!(bomb.len() < 128 * 1024);
        let e = decode(&bomb, Encoding::Gzip, 1024 * 1024).unwrap_err();
        assert_eq!(e, CodecError::TooLarge { max: 1024 * 1024 });
        assert_eq!(
            e.to_string(),
            "decompressed body exceeds the limit of 1048576 bytes"
        );
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = decode(b"not gzip", Encoding::Gzip, 1024).unwrap_err();
        assert!(matches!(
            e,
            CodecError::Invalid {
                encoding: Encoding::Gzip,
                ..
            }
        ));
        assert!(e.to_string().contains("not valid gzip"), "{e}");
        assert_eq!(
            Encoding::parse(Some("lzma")),
            Err(CodecError::Unsupported("lzma".into()))
        );
        assert_eq!(Encoding::parse(Some("X-GZIP")), Ok(Encoding::Gzip));
        assert_eq!(Encoding::from_name("br"), Some(Encoding::Brotli));
        assert_eq!(Encoding::from_name("lzma"), None);
    }
}
