//! scrub (in progress).
