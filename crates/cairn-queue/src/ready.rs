//! The set of due tasks: a bitmap over task indexes with summary levels above it.
//!
//! Level 0 has one bit per task. Each level above has one bit per word of the level below,
//! set when that word is not zero, up to a top level of one word. Adding or removing a task
//! flips a bit per level, with no allocation and no rebalancing. Listing the set in id order
//! descends only into non-zero words, so it costs a few word reads per listed task however
//! many tasks the queue holds: no step of it scans the whole queue.

/// Due task indexes, listed in increasing order.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadySet {
    /// `levels[0]` holds a bit per task; `levels[k + 1]` a bit per word of `levels[k]`.
    levels: Vec<Vec<u64>>,
    len: usize,
}

impl ReadySet {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, i: usize) {
        self.cover(i);
        let mut at = i;
        for (k, level) in self.levels.iter_mut().enumerate() {
            let (w, bit) = (at / 64, 1u64 << (at % 64));
            let was = level[w];
            level[w] |= bit;
            if k == 0 {
                if was & bit != 0 {
                    return; // Already a member.
                }
                self.len += 1;
            }
            if was != 0 {
                return; // The levels above already mark this word.
            }
            at = w;
        }
    }

    pub(crate) fn remove(&mut self, i: usize) {
        let member = self
            .levels
            .first()
            .and_then(|leaves| leaves.get(i / 64))
            .is_some_and(|word| word & (1 << (i % 64)) != 0);
        if !member {
            return;
        }
        self.len -= 1;
        let mut at = i;
        for level in &mut self.levels {
            let w = at / 64;
            level[w] &= !(1u64 << (at % 64));
            if level[w] != 0 {
                return; // Still non-zero: the levels above stay as they are.
            }
            at = w;
        }
    }

    /// Every member, in increasing order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize)) {
        if let Some(top) = self.levels.len().checked_sub(1) {
            for word in 0..self.levels[top].len() {
                self.visit(top, word, &mut f);
            }
        }
    }

    fn visit(&self, level: usize, word: usize, f: &mut impl FnMut(usize)) {
        let mut bits = self.levels[level][word];
        while bits != 0 {
            let child = word * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if level == 0 {
                f(child);
            } else {
                self.visit(level - 1, child, f);
            }
        }
    }

    /// Grows the levels so that index `i` has a bit, keeping one word at the top.
    fn cover(&mut self, i: usize) {
        let needed = i / 64 + 1;
        if self
            .levels
            .first()
            .is_some_and(|leaves| leaves.len() >= needed)
        {
            return;
        }
        // Powers of two, so that growing a level never re-groups the bits above it.
        let mut words = needed.next_power_of_two();
        let mut k = 0;
        loop {
            if k == self.levels.len() {
                // A new top level: one bit per word of the old top, set where it is non-zero.
                let below = &self.levels.last().map(Vec::as_slice).unwrap_or_default();
                let mut level = vec![0u64; words];
                for (w, word) in below.iter().enumerate() {
                    if *word != 0 {
                        level[w / 64] |= 1 << (w % 64);
                    }
                }
                self.levels.push(level);
            } else if self.levels[k].len() < words {
                self.levels[k].resize(words, 0);
            }
            if words == 1 {
                break;
            }
            words = words.div_ceil(64);
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The set is private; these tests cross its word and level boundaries directly.

    use super::ReadySet;

    fn members(set: &ReadySet) -> Vec<usize> {
        let mut out = Vec::new();
        set.for_each(|i| out.push(i));
        out
    }

    #[test]
    fn members_come_back_in_order_across_word_and_level_boundaries() {
        let mut set = ReadySet::default();
        let wanted = [
            0, 1, 63, 64, 65, 4095, 4096, 4097, 9000, 262_143, 262_144, 300_001,
        ];
        // Inserted out of order, and twice, to show order and set semantics; the largest
        // first and last so that levels are added both before and after other members.
        for &i in wanted.iter().rev().chain(&wanted) {
            set.insert(i);
        }
        assert_eq!(set.len(), wanted.len());
        assert_eq!(members(&set), wanted);
        assert_eq!(
            set.levels.last().map(Vec::len),
            Some(1),
            "one word at the top"
        );
    }

    #[test]
    fn levels_added_later_still_mark_earlier_members() {
        let mut set = ReadySet::default();
        set.insert(5);
        set.insert(70);
        set.insert(5_000_000);
        assert_eq!(members(&set), vec![5, 70, 5_000_000]);
    }

    #[test]
    fn removal_clears_levels_without_losing_neighbours() {
        let mut set = ReadySet::default();
        for i in 4090..4100 {
            set.insert(i);
        }
        for i in 4090..4096 {
            set.remove(i);
        }
        set.remove(4090);
        set.remove(1_000_000);
        assert_eq!(set.len(), 4);
        assert_eq!(members(&set), vec![4096, 4097, 4098, 4099]);
        for i in 4096..4100 {
            set.remove(i);
        }
        assert_eq!(set.len(), 0);
        assert!(members(&set).is_empty());
        assert!(
            set.levels.iter().flatten().all(|word| *word == 0),
            "no stale summary bits"
        );
        set.insert(4097);
        assert_eq!(members(&set), vec![4097]);
    }
}
