//! The transaction engine (being written).
