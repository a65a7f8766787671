//! Typed async client for the six Purple Flea services.
