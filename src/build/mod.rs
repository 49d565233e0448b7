//! Building images: the `Job` strategy and the registry client both
//! strategies confirm digests with.

pub mod job;
pub mod registry;
