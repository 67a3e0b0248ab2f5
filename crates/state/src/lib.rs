//! Skiff's deterministic replicated state machine: commands, apply, redb tables, revisions and watch events.
#![deny(missing_docs)]
