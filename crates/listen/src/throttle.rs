//! Warnings logged at a bounded rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest gap between two warnings of one kind from one listener.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// One kind of warning: at most one line per [`LOG_EVERY`].
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    /// Occurrences since the last logged line.
    since: u64,
}

impl Throttle {
    /// Counts one occurrence; `Some(n)` when a line should be logged now, `n` being the
    /// occurrences it stands for (this one included).
    pub(crate) fn note(&self) -> Option<u64> {
        self.note_at(Instant::now())
    }

    fn note_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.since += 1;
        if s.last.is_some_and(|l| now.duration_since(l) < LOG_EVERY) {
            return None;
        }
        s.last = Some(now);
        Some(std::mem::take(&mut s.since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_counts_what_it_stands_for() {
        let t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.note_at(t0), Some(1));
        for i in 1..1000 {
            assert_eq!(t.note_at(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.note_at(t0 + LOG_EVERY), Some(1000));
        assert_eq!(t.note_at(t0 + LOG_EVERY + Duration::from_secs(1)), None);
    }
}
