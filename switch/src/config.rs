//! The configuration file (being written).
