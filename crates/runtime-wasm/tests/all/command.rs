//! `world: command` components run once to their exit: codes, traps, time limits, output.
use std::time::Duration;

use skiff_runtime_wasm::{CommandOptions, Error};

use crate::guests;

fn opts(args: &[&str]) -> CommandOptions {
    let mut o = CommandOptions::new("default/job-1/main");
    o.args = args.iter().map(|a| a.to_string()).collect();
    o.env = vec![("GREETING".into(), "hi".into())];
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_to_their_exit_code() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let job = runtime.load(guests::job()).await.expect("load job");

    let o = opts(&["ok"]);
    let logs = o.logs.clone();
    let exit = runtime.run_command(&job, o).await.unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        logs.lines().iter().any(|l| l.line == "job done: hi"),
        "{:?}",
        logs.lines()
    );

    // WASI 0.2's wasi:cli/exit carries success or failure only: any failing exit is code 1.
    let exit = runtime.run_command(&job, opts(&["fail"])).await.unwrap();
    assert_eq!(exit.code, 1);
    assert_eq!(exit.message.as_deref(), Some("exited with code 1"));

    let exit = runtime.run_command(&job, opts(&["trap"])).await.unwrap();
    assert_eq!(exit.code, 137);
    assert!(exit.message.unwrap().contains("trapped"));

    let mut o = opts(&["sleep", "5000"]);
    o.timeout = Some(Duration::from_millis(200));
    let exit = runtime.run_command(&job, o).await.unwrap();
    assert_eq!(exit.code, 137);
    assert!(exit.message.unwrap().contains("time limit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_component_is_not_a_command() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let hostile = runtime.load(guests::hostile()).await.expect("load");
    let err = runtime.run_command(&hostile, opts(&[])).await.unwrap_err();
    assert!(matches!(err, Error::NotCommand { .. }), "{err:?}");
    assert!(err.to_string().contains("wasi:cli/run"), "{err}");
}
