//! How many watches each caller holds open: a cap, so one caller cannot tie up a member.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::ApiError;

/// Most watches one caller (token, node certificate, admin) holds open on one member.
pub(crate) const MAX_WATCHES_PER_CALLER: usize = 128;

/// Who holds a watch: the name the audit log gives the caller.
#[derive(Debug, Clone)]
pub(crate) struct Watcher(pub(crate) String);

/// Open watches per caller.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open watch; dropping it (the stream ends) frees its place.
pub(crate) struct Ticket {
    open: Arc<Mutex<HashMap<String, usize>>>,
    caller: String,
}

impl Watchers {
    /// A place for one more watch of `caller`, or 429 when it holds the most it may.
    pub(crate) fn open(&self, caller: &str) -> Result<Ticket, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(caller.to_owned()).or_default();
        if *n >= MAX_WATCHES_PER_CALLER {
            return Err(ApiError::new(
                skiff_api::ErrorCode::TooManyWatches,
                format!(
                    "{caller} holds {MAX_WATCHES_PER_CALLER} open watches on this member, the most one \
                     caller may: close some (each `get -w` or informer holds one), or use another token"
                ),
            ));
        }
        *n += 1;
        Ok(Ticket {
            open: self.open.clone(),
            caller: caller.to_owned(),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}
