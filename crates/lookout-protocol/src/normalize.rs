//! normalize (in progress).
