//! A slog drain that forwards raft-rs's log records to `tracing`.

use std::fmt::Write as _;

use slog::KV as _;

/// Forwards slog records to `tracing` events with target `skiff_raft::raft_rs`.
struct TracingDrain;

/// Collects a record's key-value pairs as ` key=value` text.
struct KvText(String);

impl slog::Serializer for KvText {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        // Writing into a String cannot fail.
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record<'_>, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        let mut kv = KvText(String::new());
        // Serialising into a String cannot fail; a failure would only lose key-value context.
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let msg = record.msg();
        let kv = kv.0;
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "skiff_raft::raft_rs", "{msg}{kv}")
            }
            slog::Level::Warning => tracing::warn!(target: "skiff_raft::raft_rs", "{msg}{kv}"),
            slog::Level::Info => tracing::info!(target: "skiff_raft::raft_rs", "{msg}{kv}"),
            slog::Level::Debug => tracing::debug!(target: "skiff_raft::raft_rs", "{msg}{kv}"),
            slog::Level::Trace => tracing::trace!(target: "skiff_raft::raft_rs", "{msg}{kv}"),
        }
        Ok(())
    }
}

/// The logger handed to raft-rs for node `id`.
pub(crate) fn raft_logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("raft_id" => id))
}
