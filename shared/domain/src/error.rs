//! The one error type of the domain. Each edge (HTTP, Step Functions, SQS) maps it once.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The thing does not exist, or the caller may not know that it does.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// An earlier request with the same idempotency key has not finished; retry shortly.
    #[error("{0}")]
    InProgress(String),
    /// `policy` names the limit (`submissions`, `auth-failures`) in the RateLimit headers.
    #[error("rate limit of {limit} requests per {window_secs} s exceeded")]
    RateLimited { policy: &'static str, limit: u64, window_secs: u64, retry_after_secs: u64 },
    /// The caller holds as many of something as one caller may at once (live streams): one
    /// must end before another starts.
    #[error("{message}")]
    TooMany { what: &'static str, limit: u64, message: String },
    /// The period's allowance is spent (a hard-capped plan): not worth retrying before
    /// `resets_at`.
    #[error("the monthly allowance of {allowance} units is used up ({used} used; this needs {required}); it resets at {resets_at}")]
    QuotaExceeded { allowance: u64, used: u64, required: u64, resets_at: time::OffsetDateTime },
    /// Prepaid credits do not cover the request.
    #[error("this needs {required} credits but the account has {balance}")]
    InsufficientCredits { required: u64, balance: u64 },
    /// A dependency (store, queue) cannot be reached; worth retrying.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// We are shedding load (the hashing pool is full); worth retrying shortly.
    #[error("overloaded: {0}")]
    Overloaded(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, message)])
    }

    /// Stable machine-readable code, shared by every edge.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not_found",
            Error::Validation(_) => "validation_failed",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::Conflict(_) => "conflict",
            Error::InProgress(_) => "in_progress",
            Error::RateLimited { .. } => "rate_limit_exceeded",
            Error::TooMany { .. } => "too_many",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::InsufficientCredits { .. } => "insufficient_credits",
            Error::Unavailable(_) => "unavailable",
            Error::Overloaded(_) => "overloaded",
            Error::Internal(_) => "internal",
        }
    }

    /// Whether trying again later may succeed (Step Functions Retry matches on this).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Overloaded(_) | Error::RateLimited { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and every error under it, `outer: inner: root`: what a library's error wraps
/// (the refused connection under "error sending request") is kept when it becomes ours.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        // Some libraries repeat their source in their own message already.
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

/// The fields a validation error names, in order (tests of the validators).
#[cfg(test)]
pub(crate) fn validation_fields(r: Result<()>) -> Vec<String> {
    match r {
        Err(Error::Validation(errs)) => errs.into_iter().map(|e| e.field).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_chain_keeps_every_cause_once() {
        let root = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        assert_eq!(super::chain(&Outer(root)), "error sending request: connection refused");
    }
}
