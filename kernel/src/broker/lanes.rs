//! Round-robin lanes: one queue per principal, served in turn, first in first out within each,
//! so an agent that queues a hundred requests delays another's next one by one request, not by
//! a hundred.

use std::collections::{HashMap, VecDeque};

/// Items queued by key (the principal), taken one key at a time.
#[derive(Debug, Clone)]
pub struct Lanes<T> {
    /// Keys with queued items, the next to serve first.
    turn: VecDeque<String>,
    lanes: HashMap<String, VecDeque<T>>,
    len: usize,
}

impl<T> Default for Lanes<T> {
    fn default() -> Lanes<T> {
        Lanes {
            turn: VecDeque::new(),
            lanes: HashMap::new(),
            len: 0,
        }
    }
}

impl<T> Lanes<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Items queued under `key`.
    pub fn count(&self, key: &str) -> usize {
        self.lanes.get(key).map_or(0, VecDeque::len)
    }

    /// Queue `item` at the end of `key`'s lane; a key new to the lanes takes its turn last.
    pub fn push(&mut self, key: &str, item: T) {
        let lane = self.lanes.entry(key.to_string()).or_default();
        if lane.is_empty() {
            self.turn.push_back(key.to_string());
        }
        lane.push_back(item);
        self.len += 1;
    }

    /// The first item of the key whose turn it is; the key goes to the end of the turn.
    pub fn pop(&mut self) -> Option<T> {
        let key = self.turn.pop_front()?;
        let lane = self.lanes.get_mut(&key)?;
        let item = lane.pop_front();
        if lane.is_empty() {
            self.lanes.remove(&key);
        } else {
            self.turn.push_back(key);
        }
        if item.is_some() {
            self.len -= 1;
        }
        item
    }

    /// Take out every item `f` selects, in queue order within each lane.
    pub fn remove_where(&mut self, mut f: impl FnMut(&T) -> bool) -> Vec<T> {
        let mut removed = Vec::new();
        for lane in self.lanes.values_mut() {
            let (out, keep): (VecDeque<T>, VecDeque<T>) = lane.drain(..).partition(&mut f);
            *lane = keep;
            removed.extend(out);
        }
        self.lanes.retain(|_, lane| !lane.is_empty());
        let lanes = &self.lanes;
        self.turn.retain(|k| lanes.contains_key(k));
        self.len -= removed.len();
        removed
    }

    /// Every queued item, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.lanes.values().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_take_turns_and_each_lane_is_fifo() {
        let mut l = Lanes::default();
        for i in 0..3 {
            l.push("a", ("a", i));
        }
        l.push("b", ("b", 0));
        l.push("c", ("c", 0));
        l.push("b", ("b", 1));
        let order: Vec<_> = std::iter::from_fn(|| l.pop()).collect();
        assert_eq!(
            order,
            [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("a", 2)]
        );
        assert!(l.is_empty());
    }

    #[test]
    fn removing_keeps_the_turns_of_the_rest() {
        let mut l = Lanes::default();
        l.push("a", 1);
        l.push("b", 2);
        l.push("a", 3);
        l.push("c", 4);
        assert_eq!(l.remove_where(|i| *i == 2), [2]);
        assert_eq!(l.len(), 3);
        assert_eq!(l.count("a"), 2);
        assert_eq!(
            std::iter::from_fn(|| l.pop()).collect::<Vec<_>>(),
            [1, 4, 3]
        );
    }
}
