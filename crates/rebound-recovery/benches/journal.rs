//! Journal benchmarks (see docs/benchmarks/recovery.md).
fn main() {}
