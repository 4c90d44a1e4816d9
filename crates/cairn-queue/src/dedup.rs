//! The dedup guard's index: canonical `(kind, inputs)` hash → task, in one flat table.
//!
//! Each slot is a single `u64`: the hash's high 32 bits as a tag, and the task index plus one
//! (zero marks an empty slot). Probing is linear, so a lookup usually reads one cache line,
//! where a general-purpose map reads a control line and then a slot line. At a million tasks
//! the table no longer fits in cache, and that second miss was most of the enqueue cost.
//!
//! Tags may repeat: every slot with the probed tag is a candidate, and the caller confirms a
//! candidate against the task itself, so a collision can never merge two different tasks.
//! Entries are never removed, because tasks are never removed.

/// Slots stay at most this full (numerator over 8), keeping linear probe runs short.
const MAX_LOAD_EIGHTHS: usize = 5;

/// The smallest table, in slots.
const MIN_SLOTS: usize = 64;

/// Hash → task index, with duplicate tags allowed.
#[derive(Debug, Clone, Default)]
pub(crate) struct DedupIndex {
    slots: Vec<u64>,
    len: usize,
}

fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl DedupIndex {
    /// Task indexes whose entry carries `hash`'s tag, in probe order.
    pub(crate) fn candidates(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let tag = tag_of(hash);
        let mask = self.slots.len().wrapping_sub(1);
        let start = tag as usize & mask;
        // An empty table yields nothing: `take_while` stops at once on `None`.
        (0..self.slots.len())
            .map(move |step| self.slots[(start + step) & mask])
            .take_while(|slot| *slot != 0)
            .filter(move |slot| (slot >> 32) as u32 == tag)
            .map(|slot| (slot & u64::from(u32::MAX)) as usize - 1)
    }

    /// Adds an entry. `index` must be below `u32::MAX - 1` (the queue's hard task limit).
    pub(crate) fn insert(&mut self, hash: u64, index: usize) {
        if (self.len + 1) * 8 > self.slots.len() * MAX_LOAD_EIGHTHS {
            self.grow();
        }
        let slot = (u64::from(tag_of(hash)) << 32) | (index as u64 + 1);
        Self::place(&mut self.slots, slot);
        self.len += 1;
    }

    fn place(slots: &mut [u64], slot: u64) {
        let mask = slots.len() - 1;
        let mut at = (slot >> 32) as usize & mask;
        while slots[at] != 0 {
            at = (at + 1) & mask;
        }
        slots[at] = slot;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        let mut slots = vec![0u64; size];
        for slot in self.slots.iter().copied().filter(|slot| *slot != 0) {
            Self::place(&mut slots, slot);
        }
        self.slots = slots;
    }
}

#[cfg(test)]
mod tests {
    //! The table is private, and collisions cannot be forced through the public API, so
    //! these tests drive it directly.

    use super::DedupIndex;

    #[test]
    fn an_empty_index_has_no_candidates() {
        let index = DedupIndex::default();
        assert_eq!(index.candidates(42).count(), 0);
    }

    #[test]
    fn equal_tags_all_come_back_and_other_tags_do_not() {
        let mut index = DedupIndex::default();
        let shared = 0xDEAD_BEEF_0000_0001;
        let same_tag_other_low_bits = 0xDEAD_BEEF_FFFF_0002;
        index.insert(shared, 3);
        index.insert(0x1234_5678_0000_0000, 4);
        index.insert(same_tag_other_low_bits, 9);
        let found: Vec<usize> = index.candidates(shared).collect();
        assert_eq!(found, vec![3, 9]);
        assert_eq!(
            index.candidates(0x1234_5678_9999_9999).collect::<Vec<_>>(),
            vec![4]
        );
        assert_eq!(index.candidates(0x0BAD_0BAD_0000_0000).count(), 0);
    }

    #[test]
    fn growth_keeps_every_entry_findable() {
        let mut index = DedupIndex::default();
        // Multiplying by an odd constant spreads the tags, and every fourth one repeats.
        let hash = |n: u64| (n / 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n;
        for n in 0..10_000u64 {
            index.insert(hash(n), n as usize);
        }
        for n in 0..10_000u64 {
            assert!(
                index.candidates(hash(n)).any(|i| i == n as usize),
                "entry {n} was lost while the table grew"
            );
        }
    }
}
