//! The GoViralNow domain: entities, use cases, ports and errors.
//! Adapters (SQL, AWS, local) implement the ports; edges (HTTP, stages, CLI) call the use cases.

pub mod accounts;
pub mod auth;
pub mod baseline;
pub mod billing;
pub mod collect;
pub mod error;
pub mod features;
pub mod guard;
pub mod media;
pub mod media_insights;
pub mod model;
pub mod net;
pub mod outcomes;
pub mod pipeline;
pub mod ports;
pub mod registry;
pub mod service;
pub mod telemetry;
pub mod uploads;
pub mod usage;

pub use error::{Error, FieldError, Result};
