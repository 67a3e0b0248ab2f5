//! A seeded, single-threaded simulation of a raft group running the production driver.
//!
//! Each simulated node is the driver's real core (the same Ready processing, batching, apply,
//! snapshots and membership code the thread runs) over redb on a [`SimDisk`], applying proposals
//! to a [`SimMachine`]. One thread steps every node in turn with simulated ticks; a seeded
//! generator decides everything else:
//!
//! - **network**: each message may be dropped, delayed by a random number of rounds (which also
//!   reorders), or duplicated; partitions cut off a random minority or the leader, then heal;
//!   snapshot transfers stream their file in small chunks and may be lost, cut off half-way or
//!   damaged (the receiver must refuse them by their digest and the leader send them again);
//! - **crashes**: a node is killed between steps or by a power loss in the middle of a redb
//!   write; either way the disk keeps only what was synced, and the node restarts later from it;
//! - **clients** propose unique writes to whoever seems to lead and record which were
//!   acknowledged; in some seeds nodes join as learners, get promoted, or are removed.
//!
//! Checked during the run: at most one leader per term, log matching, and that committed
//! entries never change. After a final heal and a quiet period: every node's log matches, the
//! state machines applied prefixes of one sequence with no duplicates, every acknowledged
//! write is applied on every member at the position its acknowledgement named, and every
//! snapshot directory holds its stored snapshot's file and nothing it supersedes or left half
//! written.
//!
//! ```text
//!  seed ─► Rng ─┬─► faults (drop, delay, duplicate, partition, crash, power loss)
//!               ├─► clients (writes, membership changes)
//!               ▼
//!  per round: deliver due messages ─► Core::step(tick) for each node ─► collect messages
//!             └─► invariants (one leader per term, log matching, committed entries stable)
//!  end: heal, restart, quiet ─► agreement + every acknowledged write on every member
//! ```
//!
//! A failure names its seed; [`run`] with [`SimConfig::for_seed`] replays it exactly, since
//! nothing in a run reads a clock, the thread-local RNG or a randomly seeded hash map.

mod check;
mod disk;
mod files;
mod machine;
mod transfer;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use raft::StateRole;
use raft::eraftpb::Message;
use tokio::sync::oneshot;

pub use self::disk::SimDisk;
pub use self::machine::SimMachine;
use crate::driver::core::{Core, Exit};
use crate::handle::{Cmd, Reply, Shared};
use crate::snapshot::{OutgoingSnapshot, SnapshotFiles};
use crate::transport::Transport;
use crate::{Membership, MembershipChange, RaftConfig, RaftError, StartOptions};

/// Network rounds per tick: messages travel faster than the election clock.
const ROUNDS: u64 = 3;

/// What one simulated run does. [`SimConfig::for_seed`] derives a varied one from a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The seed of every random decision.
    pub seed: u64,
    /// Voters the group is bootstrapped with (3 or 5).
    pub voters: usize,
    /// Extra nodes that may join (as learners, then voters) during the run; 0 for none.
    pub spares: usize,
    /// Ticks of the faulty phase.
    pub ticks: u64,
    /// Most ticks of the final quiet phase before the run counts as not converging.
    pub quiet_ticks: u64,
    /// Chance that a message is dropped.
    pub drop: f64,
    /// Chance that a message is delivered twice.
    pub duplicate: f64,
    /// Most rounds a message is delayed (1 = next round).
    pub max_delay: u64,
    /// Chance per tick that a node crashes.
    pub crash: f64,
    /// Chance per tick that a partition starts (or, while one is on, that it heals).
    pub partition: f64,
    /// Chance per tick that a client proposes a write.
    pub write: f64,
    /// The nodes' [`RaftConfig::snapshot_every`].
    pub snapshot_every: u64,
    /// The nodes' [`RaftConfig::keep_entries`].
    pub keep_entries: u64,
}

impl SimConfig {
    /// A configuration varied by `seed`: 3 or 5 voters, membership changes in every fourth
    /// seed, different fault rates and snapshot intervals.
    pub fn for_seed(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x5eed_c0f1_6a11_0000);
        SimConfig {
            seed,
            voters: if rng.chance(0.5) { 3 } else { 5 },
            spares: if seed % 4 == 3 { 2 } else { 0 },
            ticks: 150 + rng.below(100),
            quiet_ticks: 400,
            drop: [0.0, 0.05, 0.15][rng.below(3) as usize],
            duplicate: [0.0, 0.05][rng.below(2) as usize],
            max_delay: 1 + rng.below(6),
            crash: [0.005, 0.02][rng.below(2) as usize],
            partition: [0.0, 0.02, 0.05][rng.below(3) as usize],
            write: 0.3 + rng.below(50) as f64 / 100.0,
            snapshot_every: [5, 20, 1000][rng.below(3) as usize],
            keep_entries: rng.below(4),
        }
    }
}

/// What a successful run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Writes proposed by the clients.
    pub writes: u64,
    /// Writes acknowledged to the clients (all were checked on every member).
    pub acknowledged: u64,
    /// Crashes, power losses included.
    pub crashes: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Terms that had a leader.
    pub terms_with_leader: u64,
    /// Membership changes acknowledged.
    pub membership_changes: u64,
    /// The final voters.
    pub voters: Vec<u64>,
    /// Snapshot transfers that reached their node and were installed or refused there.
    pub snapshot_transfers: u64,
    /// Of those, the ones the receiver refused (damaged or cut off on the way).
    pub snapshots_refused: u64,
}

/// A failed run: what went wrong, the seed to replay it, and the last events.
#[derive(Debug, Clone)]
pub struct SimFailure {
    /// The seed that failed.
    pub seed: u64,
    /// The violated property or the error.
    pub reason: String,
    /// The last events of the run, oldest first.
    pub trace: Vec<String>,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "simulation failed: {}", self.reason)?;
        writeln!(
            f,
            "replay: SKIFF_SIM_SEED={} cargo test -p skiff-raft sim",
            self.seed
        )?;
        writeln!(f, "last events:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SimFailure {}

/// A small deterministic generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// Runs one simulation.
///
/// # Errors
///
/// A [`SimFailure`] naming the violated property (or the driver error) with the seed and a trace.
pub fn run(config: &SimConfig) -> Result<SimReport, SimFailure> {
    let mut world = World::new(config);
    // raft-rs panics when a node's state breaks one of its invariants (for example a commit
    // index past the log a node persisted): that is a failure of this seed too.
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.run())).unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("a node panicked: {msg}"))
        });
    match result {
        Ok(()) => Ok(world.report()),
        Err(reason) => Err(SimFailure {
            seed: config.seed,
            reason,
            trace: world.trace.into_iter().collect(),
        }),
    }
}

/// Messages and snapshots a node sent, waiting for the simulation to route them.
#[derive(Clone, Default)]
struct Outbox {
    msgs: Arc<Mutex<Vec<Message>>>,
    snapshots: Arc<Mutex<Vec<OutgoingSnapshot>>>,
}

impl Transport for Outbox {
    fn send(&self, msgs: Vec<Message>) {
        self.msgs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(msgs);
    }

    fn send_snapshot(&self, snapshot: OutgoingSnapshot) {
        self.snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(snapshot);
    }
}

impl Outbox {
    fn take(&self) -> Vec<Message> {
        std::mem::take(&mut *self.msgs.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn take_snapshots(&self) -> Vec<OutgoingSnapshot> {
        std::mem::take(&mut *self.snapshots.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

struct Node {
    id: u64,
    disk: SimDisk,
    files: SnapshotFiles,
    /// The bootstrap voters (empty for a node that joins).
    voters: Vec<u64>,
    core: Option<Core<SimMachine>>,
    shared: Arc<Shared>,
    outbox: Outbox,
    /// Set to make the next Ready stop between persisting and applying (a crash there).
    crash_before_apply: Arc<AtomicBool>,
    /// When a crashed node comes back (in ticks).
    restart_at: u64,
    /// Started at least once (spares start when they join).
    started: bool,
    /// Removed from the group: never restarted.
    retired: bool,
}

type Answer<T> = oneshot::Receiver<Result<T, RaftError>>;

struct World {
    config: SimConfig,
    rng: Rng,
    nodes: Vec<Node>,
    /// Messages in flight by (due round, random order key, sequence).
    net: BTreeMap<(u64, u64, u64), Message>,
    /// Snapshot transfers in flight, keyed like `net`.
    transfers: BTreeMap<(u64, u64, u64), OutgoingSnapshot>,
    sent: u64,
    round: u64,
    /// Nodes cut off from the rest, while a partition is on.
    isolated: BTreeSet<u64>,
    leaders: BTreeMap<u64, u64>,
    committed: BTreeMap<u64, (u64, Vec<u8>)>,
    writes: BTreeMap<u64, Answer<u64>>,
    /// Acknowledged writes and the position their acknowledgement named.
    acked: BTreeMap<u64, u64>,
    next_write: u64,
    change: Option<(MembershipChange, Answer<Membership>)>,
    report: SimReport,
    trace: VecDeque<String>,
    tick: u64,
}

impl World {
    fn new(config: &SimConfig) -> Self {
        let voters: Vec<u64> = (1..=config.voters as u64).collect();
        let nodes = (1..=(config.voters + config.spares) as u64)
            .map(|id| {
                let disk = SimDisk::new();
                let files = disk.snapshot_files();
                Node {
                    id,
                    disk,
                    files: files.clone(),
                    voters: if voters.contains(&id) {
                        voters.clone()
                    } else {
                        Vec::new()
                    },
                    core: None,
                    shared: Arc::new(Shared::new(&RaftConfig::default(), files)),
                    outbox: Outbox::default(),
                    crash_before_apply: Arc::new(AtomicBool::new(false)),
                    restart_at: 0,
                    started: false,
                    retired: false,
                }
            })
            .collect();
        World {
            config: config.clone(),
            rng: Rng::new(config.seed),
            nodes,
            net: BTreeMap::new(),
            transfers: BTreeMap::new(),
            sent: 0,
            round: 0,
            isolated: BTreeSet::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            writes: BTreeMap::new(),
            acked: BTreeMap::new(),
            next_write: 1,
            change: None,
            report: SimReport {
                seed: config.seed,
                ..SimReport::default()
            },
            trace: VecDeque::new(),
            tick: 0,
        }
    }

    fn log(&mut self, event: String) {
        if self.trace.len() == 200 {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("t={} {event}", self.tick));
    }

    fn node_config(&self, id: u64, voters: Vec<u64>) -> RaftConfig {
        RaftConfig {
            id,
            voters,
            meta: format!("node{id}").into_bytes(),
            election_tick: 10,
            heartbeat_tick: 2,
            max_batch: 4,
            snapshot_every: self.config.snapshot_every,
            keep_entries: self.config.keep_entries,
            ..RaftConfig::default()
        }
    }

    /// Boots node `i` from its disk.
    fn boot(&mut self, i: usize) -> Result<(), String> {
        let n = &self.nodes[i];
        let config = self.node_config(n.id, n.voters.clone());
        let db = n
            .disk
            .open()
            .map_err(|e| format!("node {} cannot open its disk: {e}", n.id))?;
        let shared = Arc::new(Shared::new(&config, n.files.clone()));
        n.crash_before_apply.store(false, Ordering::SeqCst);
        let options = StartOptions {
            transport: Arc::new(n.outbox.clone()),
            crash_before_apply: Some(n.crash_before_apply.clone()),
            bootstrap_snapshot: None,
            fixed_election_timeout: true,
        };
        let core = Core::boot(Arc::new(db), SimMachine, config, &options, shared.clone())
            .map_err(|e| format!("node {} cannot restart: {e}", n.id))?;
        let n = &mut self.nodes[i];
        n.core = Some(core);
        n.shared = shared;
        n.started = true;
        let id = n.id;
        self.log(format!("node {id} started"));
        Ok(())
    }

    /// Kills node `i`: its memory is gone and its disk keeps only what was synced.
    fn crash(&mut self, i: usize, why: &str) {
        let n = &mut self.nodes[i];
        n.disk.fail_after_writes(1);
        drop(n.core.take());
        n.disk.crash();
        // What the node handed to its transport before the crash point has left the machine.
        let snapshots = n.outbox.take_snapshots();
        for m in n.outbox.take() {
            self.route(m);
        }
        for s in snapshots {
            self.route_snapshot(s);
        }
        let down = 5 + self.rng.below(40);
        let n = &mut self.nodes[i];
        n.restart_at = self.tick + down;
        let id = n.id;
        self.report.crashes += 1;
        self.log(format!("node {id} crashed ({why}), back in {down} ticks"));
    }

    fn run(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].voters.is_empty() {
                self.boot(i)?;
            }
        }
        for _ in 0..self.config.ticks {
            self.faults()?;
            self.clients();
            self.tick_once()?;
            if self.tick.is_multiple_of(25) {
                self.check_logs()?;
            }
        }
        self.quiet()
    }

    /// Injects this tick's faults and restarts nodes whose downtime is over.
    fn faults(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if n.core.is_none() && n.started && !n.retired && self.tick >= n.restart_at {
                self.boot(i)?;
            }
        }
        if self.rng.chance(self.config.crash) {
            let i = self.rng.below(self.nodes.len() as u64) as usize;
            if self.nodes[i].core.is_some() {
                match self.rng.below(3) {
                    0 => self.crash(i, "killed"),
                    1 => {
                        let k = 1 + self.rng.below(30);
                        self.nodes[i].disk.fail_after_writes(k);
                        let id = self.nodes[i].id;
                        self.log(format!("node {id} loses power at its {k}th write from now"));
                    }
                    _ => {
                        self.nodes[i].crash_before_apply.store(true, Ordering::SeqCst);
                        let id = self.nodes[i].id;
                        self.log(format!("node {id} crashes after its next persist"));
                    }
                }
            }
        }
        if self.rng.chance(self.config.partition) {
            if self.isolated.is_empty() {
                let ids: Vec<u64> = self.nodes.iter().filter(|n| n.started).map(|n| n.id).collect();
                let leader = self.leader();
                let minority = (ids.len() - 1) / 2;
                if let (Some(l), true) = (leader, self.rng.chance(0.5)) {
                    self.isolated.insert(l);
                } else {
                    while self.isolated.len() < minority.max(1) {
                        let pick = ids[self.rng.below(ids.len() as u64) as usize];
                        self.isolated.insert(pick);
                    }
                }
                self.report.partitions += 1;
                let cut = self.isolated.clone();
                self.log(format!("partition: {cut:?} cut off"));
            } else {
                self.isolated.clear();
                self.log("partition healed".to_string());
            }
        }
        Ok(())
    }

    /// The lowest-id node that believes it leads.
    fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .find(|c| c.raw().raft.state == StateRole::Leader)
            .map(|c| c.id())
    }

    /// Proposes writes and membership changes, and collects answers.
    fn clients(&mut self) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].core.is_some())
            .collect();
        if !running.is_empty() && self.rng.chance(self.config.write) {
            // Mostly the leader; sometimes any node (a follower refuses with NotLeader).
            let target = match self.leader() {
                Some(l) if self.rng.chance(0.9) => self.index_of(l),
                _ => running[self.rng.below(running.len() as u64) as usize],
            };
            let id = self.next_write;
            self.next_write += 1;
            if let Some(rx) = self.request(target, |reply| Cmd::Propose {
                data: format!("w{id}").into_bytes(),
                reply,
            }) {
                self.writes.insert(id, rx);
                self.report.writes += 1;
            }
        }
        if self.config.spares > 0 && self.change.is_none() && self.rng.chance(0.03) {
            self.propose_change();
        }
        self.collect_answers();
    }

    fn index_of(&self, id: u64) -> usize {
        (id - 1) as usize
    }

    /// Hands a request to node `i`'s core; the receiver gets the answer.
    fn request<T>(&mut self, i: usize, cmd: impl FnOnce(Reply<T>) -> Cmd<u64>) -> Option<Answer<T>> {
        let n = &mut self.nodes[i];
        let core = n.core.as_mut()?;
        let permit = n.shared.permits.clone().try_acquire_owned().ok()?;
        let (reply, rx) = Reply::new(permit);
        core.on_cmd(cmd(reply));
        Some(rx)
    }

    fn propose_change(&mut self) {
        let Some(leader) = self.leader() else { return };
        let li = self.index_of(leader);
        let Some(m) = self.nodes[li].core.as_ref().map(|c| c.membership()) else {
            return;
        };
        let spare = self
            .nodes
            .iter()
            .find(|n| !n.started && n.voters.is_empty())
            .map(|n| n.id);
        let change = if let Some(&learner) = m.learners.first() {
            MembershipChange::Promote { id: learner }
        } else if let Some(id) = spare {
            let i = self.index_of(id);
            if self.boot(i).is_err() {
                return;
            }
            MembershipChange::AddLearner {
                id,
                meta: format!("node{id}").into_bytes(),
            }
        } else if m.voters.len() > 3 {
            let others: Vec<u64> = m.voters.iter().copied().filter(|v| *v != leader).collect();
            MembershipChange::Remove {
                id: others[self.rng.below(others.len() as u64) as usize],
            }
        } else {
            return;
        };
        self.log(format!("membership change proposed on node {leader}: {change:?}"));
        let c = change.clone();
        if let Some(rx) = self.request(li, |reply| Cmd::ChangeMembership { change: c, reply }) {
            self.change = Some((change, rx));
        }
    }

    fn collect_answers(&mut self) {
        let mut done = Vec::new();
        for (id, rx) in &mut self.writes {
            match rx.try_recv() {
                Ok(Ok(pos)) => done.push((*id, Some(pos))),
                Ok(Err(_)) | Err(oneshot::error::TryRecvError::Closed) => done.push((*id, None)),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
        }
        for (id, pos) in done {
            self.writes.remove(&id);
            if let Some(pos) = pos {
                self.acked.insert(id, pos);
                self.log(format!("write w{id} acknowledged at position {pos}"));
            }
        }
        let answer = match &mut self.change {
            Some((_, rx)) => match rx.try_recv() {
                Ok(r) => Some(r.ok()),
                Err(oneshot::error::TryRecvError::Closed) => Some(None),
                Err(oneshot::error::TryRecvError::Empty) => None,
            },
            None => None,
        };
        if let Some(result) = answer {
            let Some((change, _)) = self.change.take() else {
                return;
            };
            self.log(format!("membership change {change:?} answered: {result:?}"));
            if let (Some(_), MembershipChange::Remove { id }) = (&result, &change) {
                let i = self.index_of(*id);
                self.nodes[i].retired = true;
                drop(self.nodes[i].core.take());
            }
            if result.is_some() {
                self.report.membership_changes += 1;
            }
        }
    }

    /// One tick: `ROUNDS` rounds of delivering messages and stepping every running node.
    fn tick_once(&mut self) -> Result<(), String> {
        for r in 0..ROUNDS {
            self.deliver();
            for i in 0..self.nodes.len() {
                // A skipped tick now and then: clocks drift, which breaks symmetric elections.
                let tick = r == 0 && !self.rng.chance(0.1);
                self.step(i, tick)?;
            }
            self.round += 1;
        }
        self.tick += 1;
        Ok(())
    }

    fn step(&mut self, i: usize, tick: bool) -> Result<(), String> {
        let Some(core) = self.nodes[i].core.as_mut() else {
            return Ok(());
        };
        let result = core.step(tick);
        let (id, role, term) = (core.id(), core.raw().raft.state, core.raw().raft.term);
        match result {
            Ok(None) => {}
            Ok(Some(Exit::Crash)) => {
                self.crash(i, "stopped between persist and apply");
                return Ok(());
            }
            Ok(Some(_)) => return Err(format!("node {id} stopped unexpectedly")),
            Err(e) if self.nodes[i].disk.failed() => {
                self.crash(i, &format!("power loss: {e}"));
                return Ok(());
            }
            Err(e) => return Err(format!("node {id} failed: {e}")),
        }
        if role == StateRole::Leader {
            match self.leaders.insert(term, id) {
                Some(other) if other != id => {
                    return Err(format!(
                        "election safety violated: nodes {other} and {id} both led term {term}"
                    ));
                }
                Some(_) => {}
                None => {
                    self.report.terms_with_leader += 1;
                    self.log(format!("node {id} leads term {term}"));
                }
            }
        }
        let msgs = self.nodes[i].outbox.take();
        for m in msgs {
            self.route(m);
        }
        for s in self.nodes[i].outbox.take_snapshots() {
            self.route_snapshot(s);
        }
        Ok(())
    }

    fn route(&mut self, m: Message) {
        if self.rng.chance(self.config.drop) {
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.round + 1 + self.rng.below(self.config.max_delay);
            let key = self.rng.next_u64();
            self.sent += 1;
            self.net.insert((at, key, self.sent), m.clone());
        }
    }

    fn deliver(&mut self) {
        while let Some(entry) = self.net.first_entry() {
            if entry.key().0 > self.round {
                break;
            }
            let m = entry.remove();
            let cut = self.isolated.contains(&m.from) != self.isolated.contains(&m.to);
            let to = m.to as usize;
            if cut || to == 0 || to > self.nodes.len() {
                continue;
            }
            if let Some(core) = self.nodes[to - 1].core.as_mut() {
                core.step_message(m);
            }
        }
        self.deliver_transfers();
    }

    /// Heals everything, restarts every node, lets the group settle, and checks the outcome.
    fn quiet(&mut self) -> Result<(), String> {
        self.isolated.clear();
        self.config.drop = 0.0;
        self.config.duplicate = 0.0;
        self.config.max_delay = 1;
        for n in &self.nodes {
            n.disk.disarm();
            n.crash_before_apply.store(false, Ordering::SeqCst);
        }
        self.log("final heal".to_string());
        let mut settled = false;
        for _ in 0..self.config.quiet_ticks {
            for i in 0..self.nodes.len() {
                let n = &self.nodes[i];
                if n.core.is_none() && n.started && !n.retired {
                    self.boot(i)?;
                }
            }
            self.collect_answers();
            self.tick_once()?;
            if self.tick.is_multiple_of(5) && self.settled() {
                settled = true;
                break;
            }
        }
        self.collect_answers();
        self.check_logs()?;
        self.check_files()?;
        if !settled {
            return Err(format!(
                "the group did not converge within {} quiet ticks; {}",
                self.config.quiet_ticks,
                self.describe()
            ));
        }
        self.check_acknowledged()
    }

    fn report(&self) -> SimReport {
        self.report.clone()
    }
}
