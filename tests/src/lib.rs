//! The suites live in tests/suite; this crate has no library code.
