//! SOAR pipeline overhead (placeholder until the pipeline lands).

fn main() {}
