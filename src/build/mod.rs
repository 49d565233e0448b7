//! Building images: the `Job` strategy, and finding and confirming images
//! in registries, which both strategies rely on.

pub mod images;
pub mod job;
pub mod pull_secret;

/// The former name of [`images`], kept so `build::registry::Registry`
/// keeps working.
pub use images as registry;
