//! Running `wasi:cli/command` components once, to their exit (the pods of Jobs).
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::arm::{Armor, arm};
use crate::egress::OutboundPolicy;
use crate::error::Error;
use crate::logs::LogBuffer;
use crate::runtime::{LoadedComponent, WasmRuntime};
use crate::state::HostState;

/// How to run a command component.
#[derive(Debug, Clone)]
pub struct CommandOptions {
    /// `namespace/pod/component`, for messages.
    pub name: String,
    /// Arguments after the program name (`wasi:cli/environment.get-arguments`).
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// `wasi:config/store` values.
    pub config: Vec<(String, String)>,
    /// Largest linear memory, in bytes.
    pub memory_limit: u64,
    /// Wall-clock limit of the whole run (`None`: none).
    pub timeout: Option<Duration>,
    /// Where stdout and stderr go.
    pub logs: Arc<LogBuffer>,
    /// Key-value stores the guest may open through `wasi:keyvalue` (none: every `open` is
    /// denied).
    pub key_value: Option<crate::KeyValueGrant>,
    /// Where the guest may send outbound `wasi:http` requests (none by default).
    pub egress: crate::Egress,
}

impl CommandOptions {
    /// Defaults: no args, env or config, 128 MiB, no time limit, a private 1 MiB log.
    pub fn new(name: impl Into<String>) -> Self {
        CommandOptions {
            name: name.into(),
            args: Vec::new(),
            env: Vec::new(),
            config: Vec::new(),
            memory_limit: 128 * 1024 * 1024,
            timeout: None,
            logs: Arc::new(LogBuffer::new(1024 * 1024)),
            egress: crate::Egress::default(),
            key_value: None,
        }
    }
}

/// How a command run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandExit {
    /// The exit code: 0 for success, 1 for a failing exit (WASI 0.2's `wasi:cli/exit` carries
    /// only success or failure) or `run` returning an error, 137 after a trap or the time limit.
    pub code: i32,
    /// Why it ended when that was not a plain exit (a trap, the time limit).
    pub message: Option<String>,
}

impl CommandExit {
    /// Whether the run succeeded.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

impl WasmRuntime {
    /// Instantiates `component` as a `wasi:cli/command` and calls `wasi:cli/run` once.
    ///
    /// # Errors
    /// [`Error::NotCommand`] when the component does not export `wasi:cli/run`. A trap, an exit code
    /// or the time limit are not errors: they are the [`CommandExit`].
    pub async fn run_command(
        &self,
        component: &LoadedComponent,
        opts: CommandOptions,
    ) -> Result<CommandExit, Error> {
        let pre = CommandPre::new(component.instance_pre().clone()).map_err(|e| Error::NotCommand {
            digest: component.digest().to_owned(),
            reason: format!("{e:#}"),
        })?;
        let mut args = vec![opts.name.rsplit('/').next().unwrap_or("command").to_owned()];
        args.extend(opts.args.iter().cloned());
        let mut state = HostState::new(
            &opts.env,
            &args,
            Arc::new(opts.config.iter().cloned().collect()),
            &opts.logs,
            usize::try_from(opts.memory_limit).unwrap_or(usize::MAX),
            OutboundPolicy::new(
                opts.egress.clone(),
                Arc::from(opts.name.as_str()),
                opts.logs.clone(),
            ),
            self.node_memory_shared(),
        );
        state.key_value = opts.key_value.clone();
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        arm(
            &mut store,
            Armor {
                deadline: opts.timeout.map(|t| Instant::now() + t),
                fuel: self.meters_fuel().then_some(u64::MAX),
                meter: None,
            },
        )
        .map_err(|e| Error::Engine {
            reason: crate::error::chain(&e),
        })?;
        let run = async {
            let command = pre.instantiate_async(&mut store).await?;
            command.wasi_cli_run().call_run(&mut store).await
        };
        let outcome = match opts.timeout {
            Some(t) => match tokio::time::timeout(t, run).await {
                Ok(r) => r,
                Err(_) => {
                    return Ok(CommandExit {
                        code: 137,
                        message: Some(format!("{} ran past its time limit of {t:?}", opts.name)),
                    });
                }
            },
            None => run.await,
        };
        Ok(match outcome {
            Ok(Ok(())) => CommandExit {
                code: 0,
                message: None,
            },
            Ok(Err(())) => CommandExit {
                code: 1,
                message: Some("wasi:cli/run returned an error".into()),
            },
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => CommandExit {
                    code: exit.0,
                    message: (exit.0 != 0).then(|| format!("exited with code {}", exit.0)),
                },
                None => CommandExit {
                    code: 137,
                    message: Some(format!("{} trapped: {}", opts.name, crate::error::chain(&e))),
                },
            },
        })
    }
}
