//! ACL enforcement as a Consul agent with ACLs on and `default_policy = "deny"` does it,
//! with one management token.
//!
//! Owns finding the token in a request and deciding who the request runs as. The token
//! value never leaves this module except to be compared.

use hyper::header::{HeaderMap, AUTHORIZATION};

use crate::error::ApiError;
use crate::journal::TokenSource;

/// The token a request presented, found the way Consul's `parseTokenInternal` looks:
/// `?token=` first, then `X-Consul-Token`, then `Authorization: Bearer`.
pub(crate) struct PresentedToken {
    pub source: TokenSource,
    value: Option<String>,
}

impl PresentedToken {
    pub fn find(headers: &HeaderMap, query: &str) -> Self {
        let from_query = form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "token")
            .map(|(_, value)| value.into_owned());
        let from_header = header_text(headers, "x-consul-token");
        let from_bearer = header_text(headers, AUTHORIZATION.as_str()).and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .map(|token| token.trim().to_string())
        });
        [
            (TokenSource::QueryParameter, from_query),
            (TokenSource::Header, from_header),
            (TokenSource::Bearer, from_bearer),
        ]
        .into_iter()
        .find_map(|(source, value)| value.filter(|v| !v.is_empty()).map(|v| (source, v)))
        .map_or(
            PresentedToken {
                source: TokenSource::None,
                value: None,
            },
            |(source, value)| PresentedToken {
                source,
                value: Some(value),
            },
        )
    }

    /// Whether this is the token the double accepts.
    pub fn is(&self, accepted: Option<&str>) -> bool {
        accepted.is_some() && self.value.as_deref() == accepted
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// Who a request runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Principal {
    /// ACLs off, or the management token: everything is allowed.
    Management,
    /// No token under `default_policy = "deny"`: writes are denied, reads see nothing.
    Anonymous,
}

impl Principal {
    /// Resolves the presented token against the accepted one (`None`: ACLs are off).
    pub fn resolve(accepted: Option<&str>, presented: &PresentedToken) -> Result<Self, ApiError> {
        match (accepted, presented.value.as_deref()) {
            (None, _) => Ok(Principal::Management),
            (Some(_), None) => Ok(Principal::Anonymous),
            (Some(_), Some(_)) if presented.is(accepted) => Ok(Principal::Management),
            (Some(_), Some(_)) => Err(ApiError::AclNotFound),
        }
    }

    /// `service:write` on a service name.
    pub fn require_service_write(self, service_name: &str) -> Result<(), ApiError> {
        self.require("service:write", service_name)
    }

    /// Only the management token may do anything that needs `permission` on `resource`.
    pub fn require(self, permission: &'static str, resource: &str) -> Result<(), ApiError> {
        match self {
            Principal::Management => Ok(()),
            Principal::Anonymous => Err(ApiError::AnonymousDenied {
                permission,
                resource: resource.to_string(),
            }),
        }
    }

    /// Whether reads return anything (ACL filtering leaves the anonymous token nothing).
    pub fn can_read(self) -> bool {
        self == Principal::Management
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.parse().unwrap(), HeaderValue::from_static(value)))
            .collect()
    }

    #[test]
    fn query_parameter_wins_over_header_and_bearer() {
        let both = headers(&[("x-consul-token", "h"), ("authorization", "Bearer b")]);
        assert_eq!(
            PresentedToken::find(&both, "token=q").source,
            TokenSource::QueryParameter
        );
        assert_eq!(PresentedToken::find(&both, "").source, TokenSource::Header);
        let bearer = headers(&[("authorization", "Bearer b")]);
        assert!(PresentedToken::find(&bearer, "").is(Some("b")));
        assert_eq!(
            PresentedToken::find(&HeaderMap::new(), "token=").source,
            TokenSource::None
        );
    }

    #[test]
    fn resolution_follows_default_deny() {
        let none = PresentedToken::find(&HeaderMap::new(), "");
        let good = PresentedToken::find(&headers(&[("x-consul-token", "t")]), "");
        let bad = PresentedToken::find(&headers(&[("x-consul-token", "x")]), "");
        assert_eq!(Principal::resolve(None, &bad), Ok(Principal::Management));
        assert_eq!(
            Principal::resolve(Some("t"), &good),
            Ok(Principal::Management)
        );
        assert_eq!(
            Principal::resolve(Some("t"), &none),
            Ok(Principal::Anonymous)
        );
        assert_eq!(
            Principal::resolve(Some("t"), &bad),
            Err(ApiError::AclNotFound)
        );
    }
}
