//! The node's memory for guest instances, accounted per live instance: every linear memory a
//! guest grows (at instantiation too) is taken from one budget shared by all instances of the
//! runtime, and given back when the instance is dropped. A growth past the budget is refused
//! like one past the instance's own limit, but answered 503 (retry elsewhere or later): the
//! guest did nothing wrong, the node is full.
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// No memory growth was refused.
pub(crate) const NOT_REFUSED: u8 = 0;
/// A growth past the instance's own memory limit was refused.
pub(crate) const INSTANCE_LIMIT: u8 = 1;
/// A growth past the node's memory for instances was refused.
pub(crate) const NODE_LIMIT: u8 = 2;

/// Which memory growth of a store was refused: [`NOT_REFUSED`], [`INSTANCE_LIMIT`] or
/// [`NODE_LIMIT`].
pub(crate) type Refusal = AtomicU8;

/// Bytes of linear memory all live instances may hold together.
#[derive(Debug)]
pub struct NodeMemory {
    budget: u64,
    used: AtomicU64,
}

impl NodeMemory {
    /// A budget of `budget` bytes.
    pub fn new(budget: u64) -> Self {
        NodeMemory {
            budget,
            used: AtomicU64::new(0),
        }
    }

    /// The budget, in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes the live instances hold now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget; false (nothing taken) when they do not fit.
    pub(crate) fn reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(bytes).filter(|n| *n <= self.budget)
            })
            .is_ok()
    }

    /// Gives `bytes` back.
    pub(crate) fn release(&self, bytes: u64) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            Some(u.saturating_sub(bytes))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_budget_and_come_back() {
        let m = NodeMemory::new(100);
        assert!(m.reserve(60));
        assert!(!m.reserve(41), "past the budget: nothing taken");
        assert_eq!(m.used(), 60);
        assert!(m.reserve(40));
        m.release(60);
        assert_eq!(m.used(), 40);
        m.release(1000);
        assert_eq!(m.used(), 0, "never below zero");
    }
}
