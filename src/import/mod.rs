//! Importers: other tools' files -> deploy-agent spec files.

pub mod compose;
pub mod quadlet;
