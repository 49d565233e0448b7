//! Building images: the `Job` strategy, and finding and confirming images
//! in registries, which both strategies rely on.

pub mod images;
pub mod job;

/// The former name of [`images`], kept so `build::registry::Registry`
/// keeps working.
pub use images as registry;
