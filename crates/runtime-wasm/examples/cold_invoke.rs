//! Cold function invocations inside a worker: the code path an agent runs for each event
//! (`WasmRuntime::call_function`: a fresh instance of the cached compiled component, one call,
//! dropped, with fuel metered and charged to a namespace meter as workers do). Prints
//! p50/p90/p99/max of sequential calls, the same calls on a runtime without fuel (interleaved
//! call by call, so both see the same machine) with the cost of metering as a ratio, then the
//! time until a burst of concurrent calls on one runtime has all been answered. Used by
//! `bench/functions.sh`.
//!
//! ```text
//! cargo run --release -p skiff-runtime-wasm --example cold_invoke -- FUNCTION.wasm [CALLS] [BURST]
//! ```
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_runtime_wasm::{Event, FunctionOptions, RuntimeConfig, WasmRuntime};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn event(n: usize) -> Event {
    Event {
        id: format!("bench-{n}"),
        source: "/bench".into(),
        type_: "echo".into(),
        subject: None,
        time: None,
        datacontenttype: Some("application/json".into()),
        data: br#"{"t":21.5}"#.to_vec(),
        extensions: Vec::new(),
    }
}

/// One call that must answer with a payload.
async fn call(
    runtime: &WasmRuntime,
    component: &skiff_runtime_wasm::LoadedComponent,
    n: usize,
    opts: &FunctionOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    match runtime.call_function(component, &event(n), opts.clone()).await? {
        Ok(Ok(Some(_))) => Ok(()),
        other => Err(format!("call {n} did not answer with a payload: {other:?}").into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: cold_invoke FUNCTION.wasm [CALLS] [BURST]")?;
    let calls: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5000);
    let burst: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let cache = tempfile::tempdir()?;
    let bytes = std::fs::read(&path)?;
    let make = |fuel: bool, dir: &str| {
        WasmRuntime::new(RuntimeConfig {
            cache_dir: cache.path().join(dir),
            max_instances: u32::try_from(burst + 16).unwrap_or(u32::MAX),
            fuel,
            ..RuntimeConfig::default()
        })
    };
    let runtime = make(true, "fuel")?;
    let plain = make(false, "plain")?;
    let component = runtime.load(bytes.clone()).await?;
    let plain_component = plain.load(bytes).await?;
    let mut opts = FunctionOptions::new("bench/echo");
    opts.memory_limit = 64 << 20;
    // As on a worker: every call's burn is charged to its namespace's meter.
    let meter = skiff_runtime_wasm::FuelMeter::new(None);
    opts.fuel_meter = Some(meter.clone());
    let mut plain_opts = opts.clone();
    plain_opts.fuel_meter = None;
    // Compiled code cached, no instance alive: every call below instantiates.
    for n in 0..100 {
        call(&runtime, &component, n, &opts).await?;
        call(&plain, &plain_component, n, &plain_opts).await?;
    }
    let mut times = Vec::with_capacity(calls);
    let mut plain_times = Vec::with_capacity(calls);
    for n in 0..calls {
        let start = Instant::now();
        call(&runtime, &component, n, &opts).await?;
        times.push(start.elapsed());
        let start = Instant::now();
        call(&plain, &plain_component, n, &plain_opts).await?;
        plain_times.push(start.elapsed());
    }
    times.sort();
    plain_times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "cold_invoke calls={calls} p50_us={:.0} p90_us={:.0} p99_us={:.0} max_us={:.0} fuel_per_call={}",
        us(percentile(&times, 0.50)),
        us(percentile(&times, 0.90)),
        us(percentile(&times, 0.99)),
        us(*times.last().unwrap_or(&Duration::ZERO)),
        meter.consumed() / (calls as u64 + 100)
    );
    println!(
        "without_fuel calls={calls} p50_us={:.0} p99_us={:.0} fuel_cost_p50={:.2}x fuel_cost_p99={:.2}x",
        us(percentile(&plain_times, 0.50)),
        us(percentile(&plain_times, 0.99)),
        percentile(&times, 0.50).as_secs_f64() / percentile(&plain_times, 0.50).as_secs_f64(),
        percentile(&times, 0.99).as_secs_f64() / percentile(&plain_times, 0.99).as_secs_f64(),
    );

    let runtime = Arc::new(runtime);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(burst);
    for n in 0..burst {
        let (rt, comp, o) = (runtime.clone(), component.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = rt.call_function(&comp, &event(n), o).await;
            (t.elapsed(), matches!(r, Ok(Ok(Ok(_)))))
        }));
    }
    let mut lat = Vec::with_capacity(burst);
    let mut ok = 0;
    for t in tasks {
        let (d, good) = t.await?;
        lat.push(d);
        ok += usize::from(good);
    }
    let total = start.elapsed();
    lat.sort();
    println!(
        "burst concurrent={burst} answered={ok} all_done_ms={:.1} p50_ms={:.2} p99_ms={:.2}",
        total.as_secs_f64() * 1e3,
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    if ok != burst {
        return Err(format!("{} of {burst} burst calls failed", burst - ok).into());
    }
    Ok(())
}
