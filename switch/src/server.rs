//! Listeners and the HTTP transport (being written).
