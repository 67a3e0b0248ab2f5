//! The deterministic simulation over many seeds (see `skiff_raft::sim`).
//!
//! `SKIFF_SIM_SEED=n` replays one seed; `SKIFF_SIM_SEEDS=N` runs seeds `0..N` (default 500).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use skiff_raft::sim::{SimConfig, SimFailure, SimReport, run};

fn env(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
    )
}

#[test]
fn sim_seeds_keep_every_safety_property() {
    if let Some(seed) = env("SKIFF_SIM_SEED") {
        let config = SimConfig::for_seed(seed);
        eprintln!("{config:?}");
        match run(&config) {
            Ok(report) => eprintln!("{report:?}"),
            Err(failure) => panic!("{failure}"),
        }
        return;
    }
    let seeds = env("SKIFF_SIM_SEEDS").unwrap_or(500);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let next = AtomicU64::new(0);
    let failures: Mutex<Vec<SimFailure>> = Mutex::new(Vec::new());
    let reports: Mutex<Vec<SimReport>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds || !failures.lock().unwrap().is_empty() {
                        break;
                    }
                    match run(&SimConfig::for_seed(seed)) {
                        Ok(r) => reports.lock().unwrap().push(r),
                        Err(f) => failures.lock().unwrap().push(f),
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    if let Some(first) = failures.iter().min_by_key(|f| f.seed) {
        panic!("{first}");
    }
    let reports = reports.into_inner().unwrap();
    let sum = |f: fn(&SimReport) -> u64| reports.iter().map(f).sum::<u64>();
    eprintln!(
        "{} seeds in {:.1?}: {} writes, {} acknowledged, {} crashes, {} partitions, {} terms with a leader, {} membership changes, {} snapshot transfers ({} refused)",
        reports.len(),
        started.elapsed(),
        sum(|r| r.writes),
        sum(|r| r.acknowledged),
        sum(|r| r.crashes),
        sum(|r| r.partitions),
        sum(|r| r.terms_with_leader),
        sum(|r| r.membership_changes),
        sum(|r| r.snapshot_transfers),
        sum(|r| r.snapshots_refused),
    );
    assert_eq!(reports.len() as u64, seeds);
    assert!(sum(|r| r.acknowledged) > 0 && sum(|r| r.crashes) > 0);
    if seeds >= 100 {
        // Damaged and cut-off transfers happened, were refused, and every run still converged.
        assert!(
            sum(|r| r.snapshots_refused) > 0 && sum(|r| r.snapshot_transfers) > sum(|r| r.snapshots_refused)
        );
    }
}

#[test]
fn sim_replays_a_seed_exactly() {
    for seed in [3, 11] {
        let config = SimConfig::for_seed(seed);
        let a = run(&config).map_err(|f| f.to_string()).unwrap();
        let b = run(&config).map_err(|f| f.to_string()).unwrap();
        assert_eq!(a, b, "seed {seed} ran differently twice");
        assert!(a.writes > 0);
    }
}
