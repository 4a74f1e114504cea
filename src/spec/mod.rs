//! Spec files: loading, parsing and validation into the typed model.
//!
//! Owns the operator-facing spec format (`shared/spec-format.md`): every
//! error names the file, line, column and key, and all errors are collected.

pub mod model;

pub use model::*;
