//! grouping (in progress).
