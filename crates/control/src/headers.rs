//! HTTP headers the control plane reads and writes between its own parts.

/// The request id header, accepted from clients (when well-formed) and always answered.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Marks a request a control node forwarded, so it is never forwarded twice.
pub const FORWARDED_HEADER: &str = "x-skiff-forwarded-by";
