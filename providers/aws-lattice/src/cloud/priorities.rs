//! Moving rule priorities on one Lattice listener with as few calls as possible.
//!
//! Lattice refuses two rules with one priority on a listener, judging a `BatchUpdateRule` (at
//! most 10 rules) on the state after the whole batch. Precedence shifts are common: a canary rule
//! inserted at the top moves every rule below it down by one. The schedule groups the moves so
//! each batch leaves priorities unique:
//!
//! - a move is *blocked* by the rule currently at its target priority; a batch must contain the
//!   blocker of each of its moves (or the target must be free or the rule's own);
//! - following blockers gives chains that end at a free priority, and cycles (swaps). Taking
//!   moves in order of their distance from the free end keeps every batch closed under
//!   "blocked by", so a chain of any length goes in batches of 10 and a cycle of up to 10 in one;
//! - a longer cycle is broken by parking one rule on a free priority first.
//!
//! Moves that keep their priority (a weight or match change) are blocked by nothing, so a pure
//! action change of up to 10 rules is one call.

use std::collections::{BTreeMap, HashMap};

/// One rule moved in a batch. `is_final`: the rule lands at its wanted priority (send its match
/// and action with it); otherwise it is parked on a free priority to break a cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub rule: String,
    pub priority: u32,
    pub is_final: bool,
}

/// `current`: every rule on the listener (after deletes) and its priority; `wanted`: the rules
/// to update and their final priority. Returns the batches in call order.
pub fn schedule(current: &BTreeMap<String, u32>, wanted: &BTreeMap<String, u32>, max_batch: usize, max_priority: u32) -> Result<Vec<Vec<Move>>, String> {
    let max_batch = max_batch.max(1);
    let mut seen: HashMap<u32, &str> = HashMap::new();
    for (r, p) in wanted {
        if !current.contains_key(r) {
            return Err(format!("rule {r} does not exist on the listener"));
        }
        if let Some(other) = seen.insert(*p, r) {
            return Err(format!("rules {other} and {r} both want priority {p}"));
        }
    }
    let mut cur = current.clone();
    let mut pending = wanted.clone();
    let mut batches = Vec::new();
    while !pending.is_empty() {
        let holder: HashMap<u32, &str> = cur.iter().map(|(r, p)| (*p, r.as_str())).collect();
        // The pending rule whose move has to happen with (or before) `u`'s, if any.
        let blocker = |u: &str| -> Result<Option<String>, String> {
            let t = pending[u];
            match holder.get(&t) {
                None => Ok(None),
                Some(h) if *h == u => Ok(None),
                Some(h) if pending.contains_key(*h) => Ok(Some(h.to_string())),
                Some(h) => Err(format!("priority {t} is held by rule {h}, which is not being moved")),
            }
        };
        let mut ready: Vec<(usize, String)> = Vec::new();
        for u in pending.keys() {
            let mut at = u.clone();
            let mut depth = 0;
            loop {
                match blocker(&at)? {
                    None => {
                        ready.push((depth, u.clone()));
                        break;
                    }
                    Some(_) if depth > pending.len() => break, // on or behind a cycle
                    Some(b) => {
                        at = b;
                        depth += 1;
                    }
                }
            }
        }
        let batch: Vec<Move> = if !ready.is_empty() {
            // A prefix in depth order contains the blocker of each member (depth - 1).
            ready.sort();
            ready.into_iter().take(max_batch).map(|(_, r)| Move { priority: pending[&r], rule: r, is_final: true }).collect()
        } else {
            // Only cycles (and rules waiting on them) are left: find the cycle through the first.
            let mut path: Vec<String> = vec![pending.keys().next().cloned().unwrap_or_default()];
            let cycle = loop {
                let next = blocker(path.last().map(String::as_str).unwrap_or_default())?.ok_or("inconsistent priority cycle")?;
                if let Some(i) = path.iter().position(|r| *r == next) {
                    break path.split_off(i);
                }
                path.push(next);
            };
            if cycle.len() <= max_batch {
                cycle.into_iter().map(|r| Move { priority: pending[&r], rule: r, is_final: true }).collect()
            } else {
                let wanted_now: Vec<u32> = pending.values().copied().collect();
                let free = (1..=max_priority)
                    .rev()
                    .find(|p| !holder.contains_key(p) && !wanted_now.contains(p))
                    .or_else(|| (1..=max_priority).rev().find(|p| !holder.contains_key(p)))
                    .ok_or_else(|| format!("no free priority on the listener to break a cycle of {} rules", cycle.len()))?;
                vec![Move { rule: cycle[0].clone(), priority: free, is_final: false }]
            }
        };
        for m in &batch {
            cur.insert(m.rule.clone(), m.priority);
            if m.is_final {
                pending.remove(&m.rule);
            }
        }
        batches.push(batch);
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: &[(&str, u32)]) -> BTreeMap<String, u32> {
        v.iter().map(|(r, p)| (r.to_string(), *p)).collect()
    }

    /// Runs the schedule like Lattice would (each batch judged on its final state) and returns
    /// the number of calls.
    fn run(current: &[(&str, u32)], wanted: &[(&str, u32)], batch: usize) -> usize {
        let (current, wanted) = (map(current), map(wanted));
        let batches = schedule(&current, &wanted, batch, 100).unwrap();
        let mut state = current.clone();
        for b in &batches {
            assert!(!b.is_empty() && b.len() <= batch, "{b:?}");
            for m in b {
                state.insert(m.rule.clone(), m.priority);
            }
            let mut ps: Vec<u32> = state.values().copied().collect();
            ps.sort();
            ps.dedup();
            assert_eq!(ps.len(), state.len(), "duplicate priority after {b:?}: {state:?}");
        }
        for (r, p) in &wanted {
            assert_eq!(state[r], *p, "{r}");
        }
        batches.len()
    }

    #[test]
    fn action_changes_without_moves_are_one_call() {
        assert_eq!(run(&[("a", 1), ("b", 2)], &[("a", 1)], 10), 1);
        assert_eq!(run(&[("a", 1), ("b", 2)], &[("a", 1), ("b", 2)], 10), 1);
    }

    #[test]
    fn shifting_down_for_a_new_top_rule_is_one_call() {
        assert_eq!(run(&[("a", 1), ("b", 2), ("c", 3)], &[("a", 2), ("b", 3), ("c", 4)], 10), 1);
    }

    #[test]
    fn swaps_are_one_call() {
        assert_eq!(run(&[("a", 1), ("b", 2)], &[("a", 2), ("b", 1)], 10), 1);
    }

    #[test]
    fn long_chains_go_in_full_batches() {
        let names: Vec<String> = (0..25).map(|i| format!("r{i:02}")).collect();
        let current: Vec<(&str, u32)> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32 + 1)).collect();
        let wanted: Vec<(&str, u32)> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32 + 2)).collect();
        assert_eq!(run(&current, &wanted, 10), 3);
    }

    #[test]
    fn cycles_longer_than_a_batch_are_broken_by_parking_one_rule() {
        let names: Vec<String> = (0..12).map(|i| format!("r{i:02}")).collect();
        let current: Vec<(&str, u32)> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32 + 1)).collect();
        // Rotate by one: r00 -> 2, ..., r11 -> 1.
        let wanted: Vec<(&str, u32)> = names.iter().enumerate().map(|(i, n)| (n.as_str(), (i as u32 + 1) % 12 + 1)).collect();
        assert_eq!(run(&current, &wanted, 10), 3, "park one, then a chain of 12 in two batches");
        // A tiny batch size still terminates.
        assert!(run(&current, &wanted, 1) <= 14);
    }

    #[test]
    fn a_target_held_by_a_rule_that_stays_is_an_error() {
        let e = schedule(&map(&[("a", 1), ("x", 2)]), &map(&[("a", 2)]), 10, 100).unwrap_err();
        assert!(e.contains("held by rule x"), "{e}");
        assert!(schedule(&map(&[("a", 1), ("b", 2)]), &map(&[("a", 3), ("b", 3)]), 10, 100).is_err());
    }
}
