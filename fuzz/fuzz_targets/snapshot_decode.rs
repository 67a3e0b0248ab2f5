//! Snapshot data as a member reads it: the descriptor a raft snapshot message carries
//! (`skiff_raft::snapshot::SnapshotDescriptor::decode`) and the state stream a follower restores
//! from a snapshot file (`Machine::restore`), which `skiff_state::check_export` reads the same way
//! for backups. Nothing may panic; a descriptor that decodes encodes to the same bytes; the check
//! and the restore accept the same streams; a restored state exports a stream that checks to the
//! same revision and restores and exports to itself.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use redb::backends::InMemoryBackend;
use skiff_raft::snapshot::SnapshotDescriptor;
use skiff_state::{Machine, check_export};

/// A fresh machine on an in-memory database.
fn machine() -> (Arc<redb::Database>, Machine) {
    let db = Arc::new(
        redb::Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .expect("an in-memory database"),
    );
    let mut machine = Machine::new(db.clone());
    let txn = db.begin_write().expect("a write transaction");
    machine.init(&txn).expect("creating the tables");
    txn.commit().expect("committing");
    (db, machine)
}

/// Restores `data` into a fresh machine and exports it again.
fn round_trip(data: &[u8]) -> Result<Vec<u8>, String> {
    let (db, mut machine) = machine();
    let txn = db.begin_write().expect("a write transaction");
    machine.restore(&txn, &mut &data[..])?;
    txn.commit().expect("committing");
    let mut out = Vec::new();
    let txn = redb::ReadableDatabase::begin_read(&*db).expect("a read transaction");
    machine.snapshot(&txn, &mut out).expect("exporting");
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(descriptor) = SnapshotDescriptor::decode(data) {
        assert_eq!(
            descriptor.encode(),
            data,
            "a descriptor changed through decode/encode"
        );
    }
    match (check_export(data), round_trip(data)) {
        (Ok(revision), Ok(export)) => {
            assert_eq!(
                check_export(&export).ok(),
                Some(revision),
                "the export lost the revision"
            );
            let again = round_trip(&export).expect("an export restores");
            assert_eq!(again, export, "restore and export are not a fixpoint");
        }
        (Err(_), Err(_)) => {}
        (checked, restored) => panic!(
            "check and restore disagree: check {checked:?}, restore {:?}",
            restored.map(|_| "ok")
        ),
    }
});
