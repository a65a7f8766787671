//! The Sentry protocol as the Lookout server reads it: envelope framing, payload
//! normalisation, secret scrubbing, grouping and latency sketches. Pure functions, no I/O,
//! so the server, its benchmarks and its property tests share one implementation.

pub mod codec;
pub mod envelope;
pub mod grouping;
pub mod normalize;
pub mod profile;
pub mod scrub;
pub mod sketch;
pub mod stacktrace;
