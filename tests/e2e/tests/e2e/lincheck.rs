//! A linearizability checker for histories of register operations (Wing & Gong's search with
//! Lowe's memoization, per key).
//!
//! Each key is an independent register (an object whose label holds the value). An operation has
//! an invocation time and, if its answer came, a completion time; a write whose answer never came
//! (timeout, cut connection) may have taken effect at any point after it was invoked, so it is
//! kept with no completion. Operations that certainly did not happen (refused with `NoLeader`)
//! are left out by the recorder.
use std::collections::{BTreeMap, HashSet};

/// One recorded operation on one key.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    /// The register.
    pub(crate) key: String,
    /// Nanoseconds since the run started, when the request was sent.
    pub(crate) invoke: u64,
    /// When the answer came; `None` = outcome unknown (only for writes).
    pub(crate) complete: Option<u64>,
    /// What it did.
    pub(crate) kind: OpKind,
}

/// A read (with the value it returned) or a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// Wrote this value.
    Write(String),
    /// Read this value (`None`: the register had no value).
    Read(Option<String>),
}

/// The verdict for one key.
#[derive(Debug)]
pub(crate) struct Violation {
    pub(crate) key: String,
}

/// Checks every key's history; returns the keys whose history is not linearizable.
///
/// `initial` gives each register's value before the run.
pub(crate) fn check(history: &[Op], initial: &BTreeMap<String, Option<String>>) -> Vec<Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut bad = Vec::new();
    for (key, ops) in by_key {
        let init = initial.get(key).cloned().flatten();
        if !linearizable(&ops, init) {
            bad.push(Violation { key: key.to_owned() });
        }
    }
    bad
}

/// An entry of the doubly linked list of call and return events.
#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    /// For a call: the index of its return entry.
    matching: usize,
    prev: usize,
    next: usize,
}

const NONE: usize = usize::MAX;

fn linearizable(ops: &[&Op], initial: Option<String>) -> bool {
    // Events sorted by time; at equal times calls before returns (overlap is the lenient reading).
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoke, true, i));
        events.push((op.complete.unwrap_or(u64::MAX), false, i));
    }
    events.sort_by_key(|(t, is_call, i)| (*t, !*is_call, *i));
    // List with a head sentinel at index 0.
    let n = events.len();
    let mut list: Vec<Entry> = Vec::with_capacity(n + 1);
    list.push(Entry {
        op: NONE,
        is_call: false,
        matching: NONE,
        prev: NONE,
        next: if n > 0 { 1 } else { NONE },
    });
    let mut return_of = vec![NONE; ops.len()];
    for (k, (_, is_call, op)) in events.iter().enumerate() {
        let idx = k + 1;
        list.push(Entry {
            op: *op,
            is_call: *is_call,
            matching: NONE,
            prev: k,
            next: if idx < n { idx + 1 } else { NONE },
        });
        if !is_call {
            return_of[*op] = idx;
        }
    }
    for e in list.iter_mut().skip(1) {
        if e.is_call {
            e.matching = return_of[e.op];
        }
    }
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Option<String>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    let mut state = initial;
    let mut entry = list[0].next;
    while list[0].next != NONE {
        // A return whose call is not linearized yet (or the end of the list): some earlier choice
        // was wrong, so undo the latest one and try the next candidate after it.
        if entry == NONE || !list[entry].is_call {
            let Some((call, old)) = stack.pop() else {
                return false;
            };
            state = old;
            let op = list[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            unlift(&mut list, call);
            entry = list[call].next;
            continue;
        }
        let e = list[entry];
        let (ok, next_state) = step(&state, &ops[e.op].kind);
        if ok {
            let mut lin = linearized.clone();
            lin[e.op / 64] |= 1 << (e.op % 64);
            if cache.insert((lin.clone(), next_state.clone())) {
                stack.push((entry, state));
                state = next_state;
                linearized = lin;
                lift(&mut list, entry);
                entry = list[0].next;
                continue;
            }
        }
        entry = e.next;
    }
    true
}

/// The register model: whether `kind` is allowed in `state`, and the state after it.
fn step(state: &Option<String>, kind: &OpKind) -> (bool, Option<String>) {
    match kind {
        OpKind::Write(v) => (true, Some(v.clone())),
        OpKind::Read(v) => (v == state, state.clone()),
    }
}

/// Removes a call entry and its return entry from the list.
fn lift(list: &mut [Entry], call: usize) {
    let ret = list[call].matching;
    for idx in [call, ret] {
        let (p, n) = (list[idx].prev, list[idx].next);
        list[p].next = n;
        if n != NONE {
            list[n].prev = p;
        }
    }
}

/// Puts a lifted call entry and its return entry back (in reverse order of removal).
fn unlift(list: &mut [Entry], call: usize) {
    let ret = list[call].matching;
    for idx in [ret, call] {
        let (p, n) = (list[idx].prev, list[idx].next);
        list[p].next = idx;
        if n != NONE {
            list[n].prev = idx;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(invoke: u64, complete: Option<u64>, v: &str) -> Op {
        Op {
            key: "k".into(),
            invoke,
            complete,
            kind: OpKind::Write(v.into()),
        }
    }

    fn r(invoke: u64, complete: u64, v: Option<&str>) -> Op {
        Op {
            key: "k".into(),
            invoke,
            complete: Some(complete),
            kind: OpKind::Read(v.map(str::to_owned)),
        }
    }

    fn ok(h: &[Op]) -> bool {
        check(h, &BTreeMap::new()).is_empty()
    }

    #[test]
    fn sequential_histories() {
        assert!(ok(&[w(0, Some(1), "a"), r(2, 3, Some("a"))]));
        assert!(
            !ok(&[w(0, Some(1), "a"), r(2, 3, None)]),
            "stale read after a completed write"
        );
        assert!(!ok(&[w(0, Some(1), "a"), w(2, Some(3), "b"), r(4, 5, Some("a"))]));
    }

    #[test]
    fn concurrent_operations_may_order_either_way() {
        assert!(ok(&[w(0, Some(10), "a"), r(1, 2, None), r(3, 4, Some("a"))]));
        // Once a read saw the new value, a later read may not see the old one.
        assert!(!ok(&[w(0, Some(10), "a"), r(1, 2, Some("a")), r(3, 4, None)]));
        assert!(ok(&[w(0, Some(5), "a"), w(1, Some(6), "b"), r(7, 8, Some("a"))]));
    }

    #[test]
    fn a_write_with_unknown_outcome_may_apply_late_or_never() {
        assert!(ok(&[w(0, None, "a"), r(5, 6, None), r(7, 8, Some("a"))]));
        assert!(ok(&[w(0, None, "a"), r(5, 6, None)]));
        assert!(!ok(&[w(0, None, "a"), r(5, 6, Some("a")), r(7, 8, None)]));
        // A lost acknowledged write is a violation.
        assert!(!ok(&[w(0, Some(1), "a"), r(7, 8, None)]));
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut other = r(0, 1, Some("zzz"));
        other.key = "other".into();
        let bad = check(&[w(0, Some(1), "a"), other], &BTreeMap::new());
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].key, "other");
    }
}
