//! `skiff_state::Command::decode`: the bytes of a Raft log entry, as every member decodes them
//! before applying. Nothing may panic, and a command that decodes encodes to bytes that decode to
//! the same command (a leader re-proposing or a snapshot replaying it sees what was proposed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_state::{COMMAND_VERSION, Command};

fuzz_target!(|data: &[u8]| {
    let Ok(command) = Command::decode(data) else {
        return;
    };
    assert!(command.v <= COMMAND_VERSION, "a newer command decoded");
    let encoded = command.encode();
    let again = Command::decode(&encoded).expect("an encoded command decodes");
    assert_eq!(again, command, "the command changed through encode/decode");
    assert_eq!(again.encode(), encoded, "encoding is not stable");
});
