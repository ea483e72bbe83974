//! The AWS emulator and tables the suites share (goviral_testkit::aws).

pub use goviral_testkit::aws::*;
