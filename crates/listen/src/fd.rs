//! The process's open-file limit: read it, and raise the soft limit to the hard one.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Upper bound we raise the soft limit to when the hard limit is unlimited.
const CEILING: u64 = 1 << 20;

/// The soft open-file limit (`RLIMIT_NOFILE`), or `None` when it is unlimited.
pub fn fd_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// Raises the soft open-file limit to the hard limit (at most 2^20) and returns the soft limit
/// in force afterwards. A server holds one descriptor per connection; the soft default of many
/// systems (1024) is far below what a listener should be able to hold.
pub fn raise_fd_limit() -> Option<u64> {
    let now = getrlimit(Resource::Nofile);
    let hard = now.maximum.unwrap_or(CEILING).min(CEILING);
    if now.current.is_some_and(|soft| soft < hard) {
        let raised = Rlimit {
            current: Some(hard),
            maximum: now.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, soft = ?now.current, hard, "could not raise the open-file limit");
        }
    }
    fd_limit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_the_limit() {
        let before = fd_limit();
        let after = raise_fd_limit();
        match (before, after) {
            (Some(b), Some(a)) => assert!(a >= b, "{b} -> {a}"),
            (None, None) | (Some(_), None) => {}
            (None, Some(a)) => panic!("an unlimited limit became {a}"),
        }
    }
}
