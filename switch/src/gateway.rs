//! The merchant-facing gateway (being written).
