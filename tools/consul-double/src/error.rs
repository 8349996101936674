//! Errors: the ones the HTTP API answers with (status code and Consul's own text), and the
//! ones the Rust API returns.
//!
//! Owns the mapping from an error to its HTTP status; the texts are Consul's (see the
//! comments for where each comes from), so clients that match on them behave as with Consul.

use std::time::Duration;

/// An error answered over HTTP, with Consul's status code and body text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: decode and validation failures.
    #[error("{0}")]
    BadRequest(String),
    /// 403: a token that does not exist (`acl.ErrNotFound`).
    #[error("ACL not found")]
    AclNotFound,
    /// 403: the anonymous token under `default_policy = "deny"` (`acl.PermissionDeniedError`).
    #[error(
        "Permission denied: anonymous token lacks permission '{permission}' on {resource:?}. \
         The anonymous token is used implicitly when a request does not specify a token."
    )]
    AnonymousDenied {
        permission: &'static str,
        resource: String,
    },
    /// 404: recent agents vet a check update against the local state first
    /// (`vetCheckUpdateWithAuthorizer`).
    #[error("Unknown check ID {0:?}. Ensure that the check ID is passed, not the check name.")]
    UnknownCheck(String),
    /// 404: recent agents vet a service update against the local state first
    /// (`vetServiceUpdateWithAuthorizer`).
    #[error(
        "Unknown service ID {0:?}. Ensure that the service ID is passed, not the service name."
    )]
    UnknownService(String),
    /// 404: what agents before the vetting answered to maintenance of an unknown service.
    #[error("No service registered with ID {0:?}")]
    LegacyNoSuchService(String),
    /// 500: `updateTTLCheck` on a check without a TTL timer: what older agents answered
    /// for unknown checks too.
    #[error("CheckID {0:?} does not have associated TTL")]
    NoAssociatedTtl(String),
    /// 500: `structs.ErrNoDCPath`.
    #[error("No path to datacenter")]
    NoPathToDatacenter,
    /// 404: renewing a session that does not exist (any more).
    #[error("Session id '{0}' not found")]
    NoSuchSession(String),
    /// 500 with the server's text: a request the state store refused (e.g. a session for
    /// a check that is critical).
    #[error("{0}")]
    Internal(String),
    /// 404 with an empty body: a KV key that does not exist.
    #[error("")]
    NoSuchKey,
    /// 404 from Go's default mux.
    #[error("404 page not found")]
    NoSuchEndpoint,
    /// 405 for a known path with the wrong method.
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
}

impl ApiError {
    pub fn status_code(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::AclNotFound | ApiError::AnonymousDenied { .. } => 403,
            ApiError::UnknownCheck(_)
            | ApiError::UnknownService(_)
            | ApiError::LegacyNoSuchService(_)
            | ApiError::NoSuchEndpoint
            | ApiError::NoSuchKey
            | ApiError::NoSuchSession(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::NoAssociatedTtl(_) | ApiError::NoPathToDatacenter | ApiError::Internal(_) => {
                500
            }
        }
    }
}

/// Why the double could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the double's runtime thread: {0}")]
    Runtime(std::io::Error),
}

/// A `wait_for*` whose condition did not hold before its deadline.
#[derive(Debug, thiserror::Error)]
#[error("condition not met within {waited:?}")]
pub struct WaitTimeout {
    pub waited: Duration,
}
