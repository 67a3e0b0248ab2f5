//! Files of the state directory: written atomically, secrets with mode 0600.
use std::path::Path;

use crate::error::ControlError;

/// Reads the token in `path`, or makes one and writes it there (mode 0600).
pub(crate) fn load_or_create_token(path: &Path) -> Result<String, ControlError> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(state_dir(path, e)),
    }
    let token = crate::ids::token();
    write_file_atomic(path, token.as_bytes(), 0o600).map_err(|e| state_dir(path, e))?;
    Ok(token)
}

/// Writes `content` to `path` through a temporary file and a rename, with `mode` permissions.
pub(crate) fn write_file_atomic(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A state-directory error about `dir`.
pub(crate) fn state_dir(dir: &Path, e: impl std::fmt::Display) -> ControlError {
    ControlError::StateDir {
        path: dir.display().to_string(),
        message: e.to_string(),
    }
}
