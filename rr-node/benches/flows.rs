//! Placeholder replaced by the flow benchmark.
fn main() {}
