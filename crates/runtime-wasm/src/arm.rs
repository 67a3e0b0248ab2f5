//! Arming a store for one call: the wall-clock deadline, enforced at every epoch tick (the
//! guest yields to other tasks at each tick meanwhile), and fuel — the per-call limit, and the
//! burn charged to a [`FuelMeter`] at each tick, stopping the guest when its budget is empty.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use wasmtime::{Store, UpdateDeadline};

use crate::fuel::{FuelMeter, FuelTracker};
use crate::state::HostState;

/// What one call may use.
pub(crate) struct Armor {
    /// Stop the guest at this time (`None`: never).
    pub(crate) deadline: Option<Instant>,
    /// Fuel for the call; `None` when the engine does not meter fuel.
    pub(crate) fuel: Option<u64>,
    /// The budget burn is charged to, and what stopped the call is recorded in.
    pub(crate) meter: Option<(Arc<FuelMeter>, Arc<BudgetStop>)>,
}

/// Whether a call's fuel ran out because of its budget (then it is throttled, not failed).
#[derive(Debug, Default)]
pub(crate) struct BudgetStop {
    /// The budget ran out at an epoch tick.
    pub(crate) exhausted: Arc<AtomicBool>,
    /// The call was given the budget's remainder, less than its own fuel.
    pub(crate) capped: AtomicBool,
}

impl BudgetStop {
    /// Whether the call ending with `error` was stopped by its budget.
    pub(crate) fn stopped(&self, error: &wasmtime::Error) -> bool {
        self.exhausted.load(Ordering::Relaxed)
            || (self.capped.load(Ordering::Relaxed)
                && matches!(
                    error.downcast_ref::<wasmtime::Trap>(),
                    Some(wasmtime::Trap::OutOfFuel)
                ))
    }
}

/// Arms `store` for one call.
pub(crate) fn arm(store: &mut Store<HostState>, armor: Armor) -> wasmtime::Result<()> {
    let Armor {
        deadline,
        fuel,
        meter,
    } = armor;
    store.set_epoch_deadline(1);
    if let Some(mut fuel) = fuel {
        if let Some((m, stop)) = &meter
            && let Some(left) = m.left()
            && left < fuel
        {
            fuel = left;
            stop.capped.store(true, Ordering::Relaxed);
        }
        store.set_fuel(fuel)?;
        store.data_mut().fuel = meter.map(|(m, stop)| FuelTracker::new(m, fuel, stop.exhausted.clone()));
    }
    store.epoch_deadline_callback(move |mut ctx| {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(UpdateDeadline::Interrupt);
        }
        if let Ok(left) = ctx.get_fuel()
            && let Some(tracker) = ctx.data_mut().fuel.as_mut()
            && !tracker.charge(left)
        {
            return Ok(UpdateDeadline::Interrupt);
        }
        Ok(UpdateDeadline::Yield(1))
    });
    Ok(())
}

/// Charges what `store` burned since the last tick to its meter (when the call ends).
pub(crate) fn settle(store: &mut Store<HostState>) {
    if let Ok(left) = store.get_fuel()
        && let Some(tracker) = store.data_mut().fuel.as_mut()
    {
        tracker.charge(left);
    }
}
