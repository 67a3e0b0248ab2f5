//! Snapshot transfers in the simulation: routed like messages (lost, delayed, cut off by
//! partitions), streamed in small chunks into the receiver's snapshot directory, and now and then
//! cut off half-way or damaged, which the receiver must notice.

use std::io::Read as _;

use super::World;
use crate::snapshot::{IncomingSnapshot, OutgoingSnapshot};

/// Chunk size in the simulation: small, so even its tiny snapshots take several chunks.
const CHUNK: usize = 16;

/// What happens to one transfer on the way.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The connection breaks after this many bytes.
    Cut(u64),
    /// The byte at this offset arrives with one bit flipped.
    Flip(u64),
}

impl World {
    /// Puts a snapshot transfer on the network, or loses it.
    pub(super) fn route_snapshot(&mut self, s: OutgoingSnapshot) {
        if self.rng.chance(self.config.drop) {
            let (to, index) = (s.to(), s.index());
            // Dropping the transfer reports its failure to the sender.
            drop(s);
            self.log(format!("snapshot {index} to node {to} lost"));
            return;
        }
        let at = self.round + 1 + self.rng.below(self.config.max_delay);
        let key = self.rng.next_u64();
        self.sent += 1;
        self.transfers.insert((at, key, self.sent), s);
    }

    /// Performs the transfers that are due.
    pub(super) fn deliver_transfers(&mut self) {
        while let Some(entry) = self.transfers.first_entry() {
            if entry.key().0 > self.round {
                break;
            }
            let s = entry.remove();
            self.transfer(s);
        }
    }

    /// Streams one snapshot into its node and steps its message there if it arrived intact.
    fn transfer(&mut self, s: OutgoingSnapshot) {
        let (from, to, index, size) = (s.message().from, s.to(), s.index(), s.size());
        let cut = self.isolated.contains(&from) != self.isolated.contains(&to);
        let Some(i) = (to as usize).checked_sub(1).filter(|&i| i < self.nodes.len()) else {
            return;
        };
        if cut || self.nodes[i].core.is_none() {
            return;
        }
        let fault = if self.rng.chance(self.config.drop) {
            Some(Fault::Cut(self.rng.below(size.max(1))))
        } else if self.rng.chance(self.config.drop) {
            Some(Fault::Flip(self.rng.below(size.max(1))))
        } else {
            None
        };
        let n = &self.nodes[i];
        let Ok(permit) = n.shared.incoming.clone().try_acquire_owned() else {
            return;
        };
        let (msg, mut data, report) = s.into_parts();
        let received = (|| -> Result<_, String> {
            let mut incoming = IncomingSnapshot::begin(&n.files, msg, permit).map_err(|e| e.to_string())?;
            let mut buf = [0u8; CHUNK];
            let mut offset = 0u64;
            loop {
                let got = data.read(&mut buf).map_err(|e| e.to_string())?;
                if got == 0 {
                    break;
                }
                let chunk = &mut buf[..got];
                match fault {
                    Some(Fault::Cut(at)) if offset + got as u64 > at => {
                        incoming
                            .write(&chunk[..(at - offset) as usize])
                            .map_err(|e| e.to_string())?;
                        return Err(format!("the connection broke after {at} bytes"));
                    }
                    Some(Fault::Flip(at)) if (offset..offset + got as u64).contains(&at) => {
                        chunk[(at - offset) as usize] ^= 0x10;
                    }
                    _ => {}
                }
                incoming.write(chunk).map_err(|e| e.to_string())?;
                offset += got as u64;
            }
            incoming.finish().map_err(|e| e.to_string())
        })();
        self.report.snapshot_transfers += 1;
        match received {
            Ok(msg) => {
                if let Some(core) = self.nodes[i].core.as_mut() {
                    core.step_message(msg);
                }
                report.finished();
                self.log(format!(
                    "snapshot {index} ({size} bytes) from node {from} delivered to node {to}"
                ));
            }
            Err(why) => {
                self.report.snapshots_refused += 1;
                self.log(format!(
                    "snapshot {index} from node {from} to node {to} failed: {why}"
                ));
                report.failed(why);
            }
        }
    }
}
