//! Cold function invocations inside a worker: the code path an agent runs for each event
//! (`WasmRuntime::call_function`: a fresh instance of the cached compiled component, one call,
//! dropped). Prints p50/p90/p99/max of sequential calls, then the time until a burst of
//! concurrent calls on one runtime has all been answered. Used by `bench/functions.sh`.
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
    let runtime = WasmRuntime::new(RuntimeConfig {
        cache_dir: cache.path().to_path_buf(),
        max_instances: u32::try_from(burst + 16)?,
        ..RuntimeConfig::default()
    })?;
    let component = runtime.load(std::fs::read(&path)?).await?;
    let mut opts = FunctionOptions::new("bench/echo");
    opts.memory_limit = 64 << 20;
    // Compiled code cached, no instance alive: every call below instantiates.
    for n in 0..100 {
        call(&runtime, &component, n, &opts).await?;
    }
    let mut times = Vec::with_capacity(calls);
    for n in 0..calls {
        let start = Instant::now();
        call(&runtime, &component, n, &opts).await?;
        times.push(start.elapsed());
    }
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "cold_invoke calls={calls} p50_us={:.0} p90_us={:.0} p99_us={:.0} max_us={:.0}",
        us(percentile(&times, 0.50)),
        us(percentile(&times, 0.90)),
        us(percentile(&times, 0.99)),
        us(*times.last().unwrap_or(&Duration::ZERO))
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
