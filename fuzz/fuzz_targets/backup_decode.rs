//! Backup files (`skiff_api::backup`): `skiff server --restore FILE` checks a file with
//! `decode_checked(file, skiff_state::check_export)` before anything is written. The input is
//! tried both as a whole backup file and as the state export inside a freshly encoded one.
//! Nothing may panic; what `decode` accepts matches its header; a file `encode` made from an
//! export always decodes to that export, and passes the content check exactly when the export is
//! one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_api::backup::{self, BackupError};
use skiff_state::check_export;

fuzz_target!(|data: &[u8]| {
    // The input as a backup file.
    if let Ok((header, export)) = backup::decode(data) {
        assert_eq!(
            export.len() as u64,
            header.bytes,
            "decode accepted a length mismatch"
        );
        let checked = backup::decode_checked(data, check_export);
        if let Ok((h, e)) = checked {
            assert_eq!((h, e), (header, export));
        }
    } else {
        assert!(backup::decode_checked(data, check_export).is_err());
    }

    // The input as the export inside a backup file.
    let revision = check_export(data).ok();
    let file = backup::encode(revision.unwrap_or(0), data, "2026-01-01T00:00:00Z");
    let (header, export) = backup::decode(&file).expect("an encoded backup decodes");
    assert_eq!(export, data);
    assert_eq!(header.revision, revision.unwrap_or(0));
    match (backup::decode_checked(&file, check_export), revision) {
        (Ok((_, export)), Some(_)) => assert_eq!(export, data),
        (Err(BackupError::BadContent(_)), None) => {}
        (other, revision) => panic!("decode_checked answered {other:?} for an export at {revision:?}"),
    }
});
