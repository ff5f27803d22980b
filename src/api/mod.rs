//! api (in progress)
pub mod frame;
pub mod json;
