//! The `switch` binary (being written).
fn main() {}
