//! Strata storage engine.

pub mod model;
