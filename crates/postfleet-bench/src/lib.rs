//! The benchmark lives in `benches/fleet` (run `cargo bench --bench fleet`); this library is empty.
