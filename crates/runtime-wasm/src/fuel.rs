//! Fuel as the CPU unit: every guest instruction costs fuel, so the fuel a request burned is
//! the CPU it used, counted exactly and the same on every machine.
//!
//! A [`FuelMeter`] is one budget shared by many handlers (the agent keeps one per namespace):
//! a token bucket of `per_minute` fuel refilled continuously. A request is admitted while the
//! bucket is not empty and is given at most the fuel left in it, so a guest that would burn
//! past the budget runs out of fuel there and is stopped; what it burned is taken from the
//! bucket as it runs (at epoch ticks) and when it ends. Concurrent requests may together
//! overdraw the bucket by what they burn at once; the overdraft is refilled before the next
//! request is admitted. Refusals and stops are answered 429 with `retry-after`, and counted per
//! handler for the agent to report. A meter without a budget only counts.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Handlers a meter keeps throttle counts for at most (their names are bounded by the pods of a
/// namespace on one node; this only caps a pathological case).
const MAX_COUNTED: usize = 4096;

/// One fuel budget, shared by the handlers given it ([`crate::HandlerOptions::fuel_meter`]).
#[derive(Debug, Default)]
pub struct FuelMeter {
    /// Fuel per minute; 0: no budget.
    per_minute: AtomicU64,
    bucket: Mutex<Bucket>,
    consumed: AtomicU64,
    throttled: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug, Default)]
struct Bucket {
    /// Fuel left (negative: burned past the budget, to be refilled first).
    balance: i128,
    refilled: Option<Instant>,
}

/// A request refused because the budget is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// When the budget will have fuel again.
    pub retry_after: Duration,
    /// The budget, per minute.
    pub per_minute: u64,
}

impl FuelMeter {
    /// A meter with `per_minute` fuel (`None`: no budget, it only counts).
    pub fn new(per_minute: Option<u64>) -> Arc<Self> {
        let m = Arc::new(FuelMeter::default());
        m.set_budget(per_minute);
        m
    }

    /// Changes the budget; the bucket starts full at a new budget.
    pub fn set_budget(&self, per_minute: Option<u64>) {
        let n = per_minute.unwrap_or(0);
        if self.per_minute.swap(n, Ordering::Relaxed) != n {
            let mut b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
            b.balance = i128::from(n);
            b.refilled = Some(Instant::now());
        }
    }

    /// The budget per minute (`None`: none).
    pub fn budget(&self) -> Option<u64> {
        Some(self.per_minute.load(Ordering::Relaxed)).filter(|n| *n > 0)
    }

    /// Fuel burned under this meter so far.
    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    /// The requests refused or stopped per handler name since the last call (and forgets them).
    pub fn take_throttled(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.throttled.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Fuel left now (`None`: no budget); refills first.
    fn available(&self) -> Option<i128> {
        let per_minute = self.budget()?;
        let mut b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let since = b.refilled.map_or(Duration::ZERO, |t| now.duration_since(t));
        let refill =
            i128::from(per_minute) * i128::try_from(since.as_micros()).unwrap_or(i128::MAX / 2) / 60_000_000;
        if refill > 0 {
            b.balance = (b.balance + refill).min(i128::from(per_minute));
            b.refilled = Some(now);
        }
        Some(b.balance)
    }

    /// Fuel a call may still burn now (`None`: no budget): the bucket's level, at least 1.
    pub(crate) fn left(&self) -> Option<u64> {
        self.available()
            .map(|b| u64::try_from(b.max(1)).unwrap_or(u64::MAX))
    }

    /// Admits a request of handler `name`, or says when to come back.
    pub(crate) fn admit(&self, name: &str) -> Result<(), Throttled> {
        match self.available() {
            Some(left) if left <= 0 => {
                let per_minute = self.budget().unwrap_or(1).max(1);
                let wait_us = (-left + 1) * 60_000_000 / i128::from(per_minute);
                let retry_after = Duration::from_micros(u64::try_from(wait_us).unwrap_or(u64::MAX))
                    .max(Duration::from_secs(1));
                self.count_throttled(name);
                Err(Throttled {
                    retry_after,
                    per_minute,
                })
            }
            _ => Ok(()),
        }
    }

    /// Takes `fuel` burned from the budget; false when the budget is now empty.
    pub(crate) fn charge(&self, fuel: u64) -> bool {
        self.consumed.fetch_add(fuel, Ordering::Relaxed);
        if self.budget().is_none() {
            return true;
        }
        let mut b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        b.balance -= i128::from(fuel);
        b.balance > 0
    }

    pub(crate) fn count_throttled(&self, name: &str) {
        let mut t = self.throttled.lock().unwrap_or_else(PoisonError::into_inner);
        if t.len() < MAX_COUNTED || t.contains_key(name) {
            *t.entry(name.to_owned()).or_default() += 1;
        }
    }
}

/// What to answer for a call of handler `name` its budget stopped (recorded as throttled).
pub(crate) fn stopped(meter: Option<&FuelMeter>, name: &str) -> Throttled {
    if let Some(m) = meter {
        m.count_throttled(name);
    }
    Throttled {
        retry_after: Duration::from_secs(1),
        per_minute: meter.and_then(FuelMeter::budget).unwrap_or(0),
    }
}

/// What one store burned so far, charged to its meter as the guest runs.
#[derive(Debug)]
pub(crate) struct FuelTracker {
    meter: Arc<FuelMeter>,
    /// The store's fuel at the last charge.
    last: u64,
    /// Set when the guest was stopped because the budget ran out.
    exhausted: Arc<AtomicBool>,
}

impl FuelTracker {
    /// Tracks a store that now holds `fuel`; `exhausted` is set when the budget runs out.
    pub(crate) fn new(meter: Arc<FuelMeter>, fuel: u64, exhausted: Arc<AtomicBool>) -> Self {
        FuelTracker {
            meter,
            last: fuel,
            exhausted,
        }
    }

    /// Charges what was burned since the last call, the store holding `fuel` now; false when
    /// the budget is empty (the guest is to be stopped).
    pub(crate) fn charge(&mut self, fuel: u64) -> bool {
        let burned = self.last.saturating_sub(fuel);
        self.last = fuel;
        let ok = self.meter.charge(burned);
        if !ok {
            self.exhausted.store(true, Ordering::Relaxed);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_admits_until_its_budget_is_burned_and_refills_over_the_minute() {
        let m = FuelMeter::new(Some(6_000_000));
        assert!(m.admit("a").is_ok());
        assert!(m.charge(5_000_000));
        assert!(!m.charge(2_000_000), "past the budget");
        let t = m.admit("a").unwrap_err();
        // 1,000,001 fuel short at 100,000 fuel/s: about ten seconds.
        assert!(
            t.retry_after > Duration::from_secs(9) && t.retry_after <= Duration::from_secs(11),
            "{t:?}"
        );
        assert_eq!(m.take_throttled().get("a"), Some(&1));
        assert!(m.take_throttled().is_empty(), "taken");
        assert_eq!(m.consumed(), 7_000_000);
    }

    #[test]
    fn a_meter_without_budget_only_counts_and_a_new_budget_starts_full() {
        let m = FuelMeter::new(None);
        assert!(m.charge(u64::MAX / 2));
        assert!(m.admit("a").is_ok());
        m.set_budget(Some(10));
        assert!(m.admit("a").is_ok());
        assert!(!m.charge(11));
        m.set_budget(None);
        assert!(m.admit("a").is_ok());
    }

    #[test]
    fn a_tracker_charges_the_difference_once() {
        let m = FuelMeter::new(Some(1_000));
        let exhausted = Arc::new(AtomicBool::new(false));
        let mut t = FuelTracker::new(m.clone(), 10_000, exhausted.clone());
        assert!(t.charge(9_600));
        assert!(t.charge(9_600), "nothing burned since");
        assert!(!t.charge(9_000));
        assert!(exhausted.load(Ordering::Relaxed));
        assert_eq!(m.consumed(), 1_000);
    }
}
