//! Sentry envelope framing.
//!
//! ```text
//! Envelope = Headers { "\n" Item } [ "\n" ]
//! Item     = Headers "\n" Payload
//! ```
//!
//! Headers are one line of JSON. An item header with `length` is followed by exactly that
//! many payload bytes and then a newline or the end; without `length` the payload runs to
//! the next newline or the end. Only `\n` separates lines (`\r` belongs to the payload).
//! Unknown item types are kept: skipping them is the reader's choice.
//!
//! The parser borrows payloads from the input, never allocates per payload byte, and returns
//! an error that says what is wrong and where for any malformed input; it never panics.

use serde_json::{Map, Value};
use std::fmt;

/// Longest header line accepted (envelope or item), in bytes.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Most items accepted in one envelope.
pub const MAX_ITEMS: usize = 1000;

/// A parsed envelope whose item payloads borrow from the input bytes.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// The envelope headers (`event_id`, `dsn`, `sdk`, `sent_at`, `trace`, …).
    pub headers: Map<String, Value>,
    /// The items, in order.
    pub items: Vec<Item<'a>>,
}

/// One item of an envelope.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    /// The item headers (`type`, `length`, `content_type`, …).
    pub headers: Map<String, Value>,
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl Item<'_> {
    /// The item type (`event`, `transaction`, `session`, …).
    pub fn item_type(&self) -> &str {
        self.headers
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// The item types Lookout knows. Others are accepted and skipped.
pub const KNOWN_ITEM_TYPES: &[&str] = &[
    "event",
    "transaction",
    "attachment",
    "session",
    "sessions",
    "check_in",
    "client_report",
    "log",
    "trace_metric",
    "span",
    "user_report",
    "feedback",
    "profile",
    "profile_chunk",
    "replay_event",
    "replay_recording",
    "replay_video",
    "statsd",
    "metric_buckets",
    "otel_log",
];

/// Whether Lookout knows this item type.
pub fn is_known_item_type(item_type: &str) -> bool {
    KNOWN_ITEM_TYPES.contains(&item_type)
}

/// Why an envelope could not be parsed. The message names the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The body was empty.
    #[error("empty envelope")]
    Empty,
    /// A header line is longer than [`MAX_HEADER_BYTES`].
    #[error("{place} header is longer than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLong {
        /// `envelope` or `item N`.
        place: Place,
    },
    /// A header line is not valid UTF-8.
    #[error("{place} header is not valid UTF-8 (at byte {offset})")]
    HeaderNotUtf8 {
        /// `envelope` or `item N`.
        place: Place,
        /// Byte offset of the header line in the body.
        offset: usize,
    },
    /// A header line is not a JSON object.
    #[error("{place} header is not a JSON object (at byte {offset}): {reason}")]
    HeaderNotJson {
        /// `envelope` or `item N`.
        place: Place,
        /// Byte offset of the header line in the body.
        offset: usize,
        /// What the JSON parser said.
        reason: String,
    },
    /// An item header has no string `type`.
    #[error("{place} header has no \"type\"")]
    MissingType {
        /// `item N`.
        place: Place,
    },
    /// An item header has a `length` that is not a non-negative integer.
    #[error("{place} header has an invalid \"length\": {value}")]
    InvalidLength {
        /// `item N`.
        place: Place,
        /// The value found.
        value: String,
    },
    /// The body ends before the declared payload length.
    #[error("{place} declares length {declared} but only {available} bytes follow")]
    Truncated {
        /// `item N`.
        place: Place,
        /// Declared `length`.
        declared: usize,
        /// Bytes left in the body.
        available: usize,
    },
    /// A payload of declared length is not followed by a newline.
    #[error("{place} payload of length {declared} is followed by {found:?} instead of a newline")]
    MissingNewline {
        /// `item N`.
        place: Place,
        /// Declared `length`.
        declared: usize,
        /// The byte found.
        found: char,
    },
    /// An item header is followed by the end of the body with no newline.
    #[error("{place} header is not followed by a payload")]
    MissingPayload {
        /// `item N`.
        place: Place,
    },
    /// More than [`MAX_ITEMS`] items.
    #[error("envelope has more than {MAX_ITEMS} items")]
    TooManyItems,
    /// The `event_id` header is neither 32 hex digits nor a hyphenated UUID.
    #[error("envelope header \"event_id\" is not a UUID: {0:?}")]
    InvalidEventId(String),
}

/// Where in an envelope an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The envelope header line.
    Envelope,
    /// Item number N, counting from 1.
    Item(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Envelope => f.write_str("envelope"),
            Place::Item(n) => write!(f, "item {n}"),
        }
    }
}

/// Parse an envelope.
pub fn parse(body: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    if body.is_empty() {
        return Err(EnvelopeError::Empty);
    }
    let (header_line, mut pos) = read_line(body, 0, Place::Envelope)?;
    let headers = parse_header(header_line, 0, Place::Envelope)?;
    if let Some(id) = headers.get("event_id")
        && !id.is_null()
        && id.as_str().and_then(normalize_uuid).is_none()
    {
        return Err(EnvelopeError::InvalidEventId(id.to_string()));
    }

    let mut items = Vec::new();
    while pos < body.len() {
        let place = Place::Item(items.len() + 1);
        if items.len() >= MAX_ITEMS {
            return Err(EnvelopeError::TooManyItems);
        }
        let start = pos;
        let (line, next) = read_line(body, pos, place)?;
        if line.is_empty() {
            // A blank line between items or at the end is tolerated, as Relay does.
            pos = next;
            continue;
        }
        let item_headers = parse_header(line, start, place)?;
        if !item_headers.get("type").is_some_and(Value::is_string) {
            return Err(EnvelopeError::MissingType { place });
        }
        // `next` is past the header's newline; if the header ran to EOF there is no newline.
        let header_had_newline = next > start + line.len();
        match item_headers.get("length") {
            Some(Value::Null) | None => {
                if !header_had_newline {
                    // A header at EOF: empty payload.
                    items.push(Item {
                        headers: item_headers,
                        payload: &body[body.len()..],
                    });
                    pos = body.len();
                    continue;
                }
                let end = memchr_newline(body, next).unwrap_or(body.len());
                items.push(Item {
                    headers: item_headers,
                    payload: &body[next..end],
                });
                pos = (end + 1).min(body.len());
            }
            Some(len) => {
                let declared = len
                    .as_u64()
                    .and_then(|l| usize::try_from(l).ok())
                    .ok_or_else(|| EnvelopeError::InvalidLength {
                        place,
                        value: len.to_string(),
                    })?;
                if !header_had_newline {
                    if declared == 0 {
                        items.push(Item {
                            headers: item_headers,
                            payload: &body[body.len()..],
                        });
                        pos = body.len();
                        continue;
                    }
                    return Err(EnvelopeError::MissingPayload { place });
                }
                let available = body.len() - next;
                if declared > available {
                    return Err(EnvelopeError::Truncated {
                        place,
                        declared,
                        available,
                    });
                }
                let end = next + declared;
                match body.get(end) {
                    None => pos = end,
                    Some(b'\n') => pos = end + 1,
                    Some(&other) => {
                        return Err(EnvelopeError::MissingNewline {
                            place,
                            declared,
                            found: char::from(other),
                        });
                    }
                }
                items.push(Item {
                    headers: item_headers,
                    payload: &body[next..end],
                });
            }
        }
    }
    Ok(Envelope { headers, items })
}

/// Normalise a UUID given as 32 hex digits or hyphenated into 32 lowercase hex digits.
pub fn normalize_uuid(s: &str) -> Option<String> {
    let s = s.trim();
    let hex: String = match s.len() {
        32 => s.to_owned(),
        36 => {
            let b = s.as_bytes();
            if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
                return None;
            }
            s.chars().filter(|c| *c != '-').collect()
        }
        _ => return None,
    };
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(hex.to_ascii_lowercase())
    } else {
        None
    }
}

impl Envelope<'_> {
    /// The envelope's `event_id` as 32 lowercase hex digits, if present.
    pub fn event_id(&self) -> Option<String> {
        self.headers
            .get("event_id")
            .and_then(Value::as_str)
            .and_then(normalize_uuid)
    }

    /// The `dsn` header, if present.
    pub fn dsn(&self) -> Option<&str> {
        self.headers.get("dsn").and_then(Value::as_str)
    }
}

/// Serialise an envelope: headers as one line of JSON, every item with an explicit `length`.
pub fn serialize(headers: &Map<String, Value>, items: &[(Map<String, Value>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    // Serialising a `Map` of `Value`s cannot fail.
    out.extend_from_slice(Value::Object(headers.clone()).to_string().as_bytes());
    out.push(b'\n');
    for (item_headers, payload) in items {
        let mut h = item_headers.clone();
        h.insert("length".into(), Value::from(payload.len()));
        out.extend_from_slice(Value::Object(h).to_string().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(payload);
        out.push(b'\n');
    }
    out
}

fn memchr_newline(body: &[u8], from: usize) -> Option<usize> {
    body.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i)
}

/// Read one header line starting at `pos`: returns the line (without newline) and the
/// position after the newline (or the end of the body).
fn read_line(body: &[u8], pos: usize, place: Place) -> Result<(&[u8], usize), EnvelopeError> {
    let limit = body.len().min(pos.saturating_add(MAX_HEADER_BYTES + 1));
    let window = &body[pos..limit];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => Ok((&body[pos..pos + i], pos + i + 1)),
        None if limit == body.len() && window.len() <= MAX_HEADER_BYTES => Ok((window, body.len())),
        None => Err(EnvelopeError::HeaderTooLong { place }),
    }
}

fn parse_header(
    line: &[u8],
    offset: usize,
    place: Place,
) -> Result<Map<String, Value>, EnvelopeError> {
    let text = std::str::from_utf8(line).map_err(|e| EnvelopeError::HeaderNotUtf8 {
        place,
        offset: offset + e.valid_up_to(),
    })?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(EnvelopeError::HeaderNotJson {
            place,
            offset,
            reason: format!("found {}", json_kind(&other)),
        }),
        Err(e) => Err(EnvelopeError::HeaderNotJson {
            place,
            offset,
            reason: e.to_string(),
        }),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn types(env: &Envelope<'_>) -> Vec<String> {
        env.items.iter().map(|i| i.item_type().to_owned()).collect()
    }

    #[test]
    fn items_with_length() {
        let body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\",\"length\":11}\n{\"a\":\"b\nc\"}\n{\"type\":\"attachment\",\"length\":3,\"filename\":\"x\"}\n\n\n\n";
        let env = parse(body).unwrap();
        assert_eq!(types(&env), ["event", "attachment"]);
        assert_eq!(env.items[0].payload, b"{\"a\":\"b\nc\"}");
        assert_eq!(env.items[1].payload, b"\n\n\n");
        assert_eq!(env.event_id().unwrap(), "9ec79c33ec9942ab8353589fcb2e04dc");
    }

    #[test]
    fn items_without_length_and_optional_final_newline() {
        let a =
            parse(b"{}\n{\"type\":\"session\"}\n{\"sid\":1}\n{\"type\":\"log\"}\n{\"items\":[]}")
                .unwrap();
        assert_eq!(types(&a), ["session", "log"]);
        assert_eq!(a.items[1].payload, b"{\"items\":[]}");
        let b = parse(b"{}\n{\"type\":\"session\"}\n{\"sid\":1}\n").unwrap();
        assert_eq!(b.items[0].payload, b"{\"sid\":1}");
    }

    #[test]
    fn empty_envelope_and_header_only() {
        assert_eq!(parse(b"{}").unwrap().items.len(), 0);
        assert_eq!(parse(b"{}\n").unwrap().items.len(), 0);
        assert_eq!(parse(b"").unwrap_err(), EnvelopeError::Empty);
    }

    #[test]
    fn carriage_return_belongs_to_payload() {
        // JSON allows `\r` as whitespace, so a CRLF header line still parses.
        assert_eq!(parse(b"{}\r\n").unwrap().items.len(), 0);
        let env = parse(b"{}\n{\"type\":\"event\"}\n{}\r\n").unwrap();
        assert_eq!(env.items[0].payload, b"{}\r");
    }

    #[test]
    fn hyphenated_event_id() {
        let env = parse(b"{\"event_id\":\"9EC79C33-EC99-42AB-8353-589FCB2E04DC\"}\n").unwrap();
        assert_eq!(env.event_id().unwrap(), "9ec79c33ec9942ab8353589fcb2e04dc");
        assert!(matches!(
            parse(b"{\"event_id\":\"nope\"}\n"),
            Err(EnvelopeError::InvalidEventId(_))
        ));
    }

    #[test]
    fn errors_say_where() {
        let e = parse(b"{}\n{\"type\":\"event\",\"length\":50}\n{}\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "item 1 declares length 50 but only 3 bytes follow"
        );
        let e = parse(b"{}\n{\"type\":\"event\",\"length\":2}\n{}X").unwrap_err();
        assert_eq!(
            e.to_string(),
            "item 1 payload of length 2 is followed by 'X' instead of a newline"
        );
        let e = parse(b"{}\n{\"type\":\"event\"}\n{}\n{\"length\":2}\n{}").unwrap_err();
        assert_eq!(e.to_string(), "item 2 header has no \"type\"");
        let e = parse(b"{}\n{\"type\":\"event\",\"length\":-1}\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("item 1 header has an invalid \"length\"")
        );
        let e = parse(b"[1]\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "envelope header is not a JSON object (at byte 0): found an array"
        );
        let e = parse(b"{}\n{\"type\":\"ev\xffent\"}\n{}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "item 1 header is not valid UTF-8 (at byte 14)"
        );
        let e = parse(b"{}\n{\"type\":\"event\",\"length\":4}").unwrap_err();
        assert_eq!(
            e,
            EnvelopeError::MissingPayload {
                place: Place::Item(1)
            }
        );
    }

    #[test]
    fn huge_header_rejected_without_scanning_everything() {
        let mut body = b"{\"x\":\"".to_vec();
        body.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
        body.extend_from_slice(b"\"}\n");
        assert_eq!(
            parse(&body).unwrap_err(),
            EnvelopeError::HeaderTooLong {
                place: Place::Envelope
            }
        );
    }

    #[test]
    fn serialize_round_trips() {
        let mut h = Map::new();
        h.insert("event_id".into(), "9ec79c33ec9942ab8353589fcb2e04dc".into());
        let mut ih = Map::new();
        ih.insert("type".into(), "event".into());
        let payload: &[u8] = b"{\"message\":\"a\nb\"}";
        let bytes = serialize(&h, &[(ih, payload)]);
        let env = parse(&bytes).unwrap();
        assert_eq!(env.items[0].payload, payload);
        assert_eq!(env.items[0].item_type(), "event");
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_envelope_like_input(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(b"{}".to_vec()),
                    Just(b"\n".to_vec()),
                    Just(b"{\"type\":\"event\"}".to_vec()),
                    Just(b"{\"type\":\"event\",\"length\":".to_vec()),
                    (0u32..40).prop_map(|n| n.to_string().into_bytes()),
                    Just(b"}".to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..16),
                ],
                0..24,
            )
        ) {
            let body: Vec<u8> = parts.concat();
            if let Ok(env) = parse(&body) {
                // Every payload lies inside the body.
                for item in &env.items {
                    prop_assert!(item.payload.len() <= body.len());
                }
            }
        }

        #[test]
        fn serialized_envelopes_parse_back(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)
        ) {
            let items: Vec<(Map<String, Value>, &[u8])> = payloads
                .iter()
                .map(|p| {
                    let mut h = Map::new();
                    h.insert("type".into(), "attachment".into());
                    (h, p.as_slice())
                })
                .collect();
            let bytes = serialize(&Map::new(), &items);
            let env = parse(&bytes).unwrap();
            prop_assert_eq!(env.items.len(), payloads.len());
            for (item, p) in env.items.iter().zip(&payloads) {
                prop_assert_eq!(item.payload, p.as_slice());
            }
        }
    }
}
