//! Free space where the state lives: below a watermark, writes are refused with a clear error
//! before the database fails in the middle of a transaction.
//!
//! Deletes are let through (they are how an operator frees space in the state), and so is
//! everything once space returns: the check runs on every write, nothing is latched.

use std::path::Path;

use skiff_state::Op;

use crate::error::WriteError;

/// Free space a member keeps by default where its state lives.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 << 20;

/// Bytes free for unprivileged writes on the filesystem holding `dir`.
pub(crate) fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Refuses a write of `ops` when less than `min_free` bytes are free under `dir`, unless it
/// only deletes. A filesystem that cannot be asked lets the write through (the database then
/// reports what fails).
pub(crate) fn check(dir: &Path, min_free: u64, ops: &[Op]) -> Result<(), WriteError> {
    if ops
        .iter()
        .all(|op| matches!(op, Op::Delete { .. } | Op::KvDelete { .. }))
    {
        return Ok(());
    }
    ensure_room(dir, min_free, 0)
}

/// Refuses to write `size` more bytes under `dir` when that would leave less than `min_free`
/// free (an artifact upload).
pub(crate) fn ensure_room(dir: &Path, min_free: u64, size: u64) -> Result<(), WriteError> {
    if min_free == 0 {
        return Ok(());
    }
    match free_bytes(dir) {
        Ok(free) if free < min_free.saturating_add(size) => Err(WriteError::DiskFull {
            dir: dir.to_owned(),
            free,
            min_free,
        }),
        _ => Ok(()),
    }
}
