//! Backup files: a consistent export of the state with a header that makes the file self-checking.
//!
//! ```text
//! SKIFF-BACKUP 1\n
//! {"revision":42,"createdAt":"…","bytes":1234,"sha256":"…","skiffVersion":"0.1.0"}\n
//! <bytes of the state export>
//! ```
//!
//! `skiff snapshot save FILE` writes one from a live cluster (`GET /api/v1/snapshot`, taken in one
//! read transaction after a linearizable read barrier, so writes go on while it is taken), and
//! `skiff server --restore FILE` starts a new one-member cluster from it. [`decode`] checks the
//! magic line, the header, the length and the sha256 of the export, and that the export decodes,
//! before anything is written.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first line of every backup file.
pub const BACKUP_MAGIC: &[u8] = b"SKIFF-BACKUP 1\n";

/// Largest header line accepted.
const MAX_HEADER: usize = 4096;

/// What a backup file says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupHeader {
    /// The state revision the export was taken at.
    pub revision: u64,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// Length of the export in bytes.
    pub bytes: u64,
    /// Hex sha256 of the export.
    pub sha256: String,
    /// The Skiff version that wrote it.
    pub skiff_version: String,
}

/// Why a backup file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// The file does not start with the backup magic line.
    #[error(
        "not a Skiff backup file (it does not start with \"SKIFF-BACKUP 1\"); pass a file made by `skiff snapshot save`"
    )]
    NotABackup,
    /// The header line is missing or does not parse.
    #[error("the backup header is damaged: {0}")]
    BadHeader(String),
    /// The file is shorter or longer than its header says.
    #[error(
        "the backup is truncated or padded: the header promises {expected} bytes of state, the file holds {actual}"
    )]
    Length {
        /// Bytes promised.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The content does not match its checksum.
    #[error("the backup is corrupt: sha256 of the state is {actual}, the header says {expected}")]
    Checksum {
        /// The header's checksum.
        expected: String,
        /// The computed one.
        actual: String,
    },
    /// The checksum matches but the content is not a state export.
    #[error("the backup content is not a Skiff state export: {0}")]
    BadContent(String),
}

/// Wraps a state export taken at `revision` into a backup file.
pub fn encode(revision: u64, export: &[u8], created_at: &str) -> Vec<u8> {
    let header = BackupHeader {
        revision,
        created_at: created_at.to_owned(),
        bytes: export.len() as u64,
        sha256: hex::encode(Sha256::digest(export)),
        skiff_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let mut out = Vec::with_capacity(export.len() + 256);
    out.extend_from_slice(BACKUP_MAGIC);
    // A struct of strings and integers always serializes.
    out.extend_from_slice(&serde_json::to_vec(&header).unwrap_or_default());
    out.push(b'\n');
    out.extend_from_slice(export);
    out
}

/// Checks a backup file and returns its header and the state export inside it.
///
/// # Errors
/// [`BackupError`] saying what is wrong; nothing is trusted before every check passed.
pub fn decode(file: &[u8]) -> Result<(BackupHeader, &[u8]), BackupError> {
    let rest = file.strip_prefix(BACKUP_MAGIC).ok_or(BackupError::NotABackup)?;
    let end = rest
        .iter()
        .take(MAX_HEADER)
        .position(|b| *b == b'\n')
        .ok_or_else(|| BackupError::BadHeader("no header line after the magic line".into()))?;
    let header: BackupHeader =
        serde_json::from_slice(&rest[..end]).map_err(|e| BackupError::BadHeader(e.to_string()))?;
    let export = &rest[end + 1..];
    if export.len() as u64 != header.bytes {
        return Err(BackupError::Length {
            expected: header.bytes,
            actual: export.len() as u64,
        });
    }
    let actual = hex::encode(Sha256::digest(export));
    if actual != header.sha256 {
        return Err(BackupError::Checksum {
            expected: header.sha256,
            actual,
        });
    }
    Ok((header, export))
}

/// [`decode`], then `check` (which reads the export and answers its revision, or why it cannot)
/// must agree with the header: the state's own reader checks the content this way.
///
/// # Errors
/// What [`decode`] finds, or [`BackupError::BadContent`].
pub fn decode_checked<E: std::fmt::Display>(
    file: &[u8],
    check: impl FnOnce(&[u8]) -> Result<u64, E>,
) -> Result<(BackupHeader, &[u8]), BackupError> {
    let (header, export) = decode(file)?;
    let revision = check(export).map_err(|e| BackupError::BadContent(e.to_string()))?;
    if revision != header.revision {
        return Err(BackupError::BadContent(format!(
            "the export is at revision {revision}, the header says {}",
            header.revision
        )));
    }
    Ok((header, export))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &[u8] = br#"{"revision":7,"compacted":0,"objects":[],"events":[]}"#;

    #[test]
    fn round_trip() {
        let file = encode(7, EXPORT, "2026-11-23T00:00:00Z");
        let (h, data) = decode(&file).expect("decodes");
        assert_eq!(h.revision, 7);
        assert_eq!(data, EXPORT);
    }

    #[test]
    fn every_kind_of_damage_is_named() {
        let file = encode(7, EXPORT, "2026-11-23T00:00:00Z");
        assert_eq!(decode(b"hello"), Err(BackupError::NotABackup));
        assert!(matches!(
            decode(&file[..file.len() - 3]),
            Err(BackupError::Length { .. })
        ));
        let mut flipped = file.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 0x20;
        assert!(matches!(decode(&flipped), Err(BackupError::Checksum { .. })));
        let mut bad_header = BACKUP_MAGIC.to_vec();
        bad_header.extend_from_slice(b"{not json}\n");
        assert!(matches!(decode(&bad_header), Err(BackupError::BadHeader(_))));
        // The content check is the caller's (the state's reader); here a stand-in that reads the
        // revision field.
        let revision_of = |e: &[u8]| -> Result<u64, String> {
            let v: serde_json::Value = serde_json::from_slice(e).map_err(|e| e.to_string())?;
            v["revision"].as_u64().ok_or_else(|| "no revision".to_owned())
        };
        let garbage = encode(7, b"not an export", "2026-11-23T00:00:00Z");
        assert!(matches!(
            decode_checked(&garbage, revision_of),
            Err(BackupError::BadContent(_))
        ));
        let wrong_rev = encode(8, EXPORT, "2026-11-23T00:00:00Z");
        assert!(matches!(
            decode_checked(&wrong_rev, revision_of),
            Err(BackupError::BadContent(_))
        ));
        assert!(decode_checked(&file, revision_of).is_ok());
    }
}
