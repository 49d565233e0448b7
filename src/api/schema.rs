//! Schema fragments shared by the resource types.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A Kubernetes DNS label.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A Kubernetes DNS subdomain (object names).
pub const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// An image repository without tag or digest: an optional registry host
/// (with port) and lower-case path components.
pub const IMAGE_REPOSITORY: &str =
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)+$";

/// An image repository pinned by a SHA-256 digest.
pub const IMAGE_BY_DIGEST: &str = r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)+@sha256:[0-9a-f]{64}$";

/// A duration such as `90s`, `15m` or `1h30m`.
pub const DURATION: &str = r"^([0-9]+(s|m|h|d))+$";

/// An object whose fields the API server keeps without checking them here
/// (the pod template is checked when the Job is created); keeps the CRD
/// small enough for client-side `kubectl apply`.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
