//! The dedup guard's index: canonical `(kind, inputs)` hash → task.
//!
//! Three parts, so that enqueueing a task with new inputs (the common case) touches no memory
//! that a million-task queue has pushed out of cache:
//! - a flat table of `u64` slots, each the hash's high 32 bits as a tag and the task index
//!   plus one (zero marks an empty slot), probed linearly. At a million tasks it is 16 MB.
//! - a filter of one bit-set word per few tags, a sixteenth of the table's size (1 MB at a
//!   million tasks), that answers "certainly absent" for most new tags;
//! - a short list of entries not yet placed in the table. A random probe into the big table
//!   costs a cache miss; placing a batch of entries in one loop lets the processor overlap
//!   those misses instead of paying them one enqueue at a time.
//!
//! Tags may repeat: every entry with the probed tag is a candidate, and the caller confirms a
//! candidate against the task itself, so a collision can never merge two different tasks.
//! The filter is built from tags alone, so it can be rebuilt from the table when the table
//! grows. Entries are never removed, because tasks are never removed.

/// Slots stay at most this full (numerator over 8), keeping linear probe runs short.
const MAX_LOAD_EIGHTHS: usize = 5;

/// The smallest table, in slots.
const MIN_SLOTS: usize = 64;

/// Table slots per filter word: the filter is a sixteenth of the table's bytes, about 6 to 13
/// bits per entry depending on how full the table is (false positives roughly 2% to 8%).
const SLOTS_PER_FILTER_WORD: usize = 16;

/// Entries held back before they are placed in the table together.
const PENDING_BATCH: usize = 64;

/// Bits the filter sets per tag, all in one word.
const FILTER_BITS: u32 = 4;

/// Hash → task index, with duplicate tags allowed.
#[derive(Debug, Clone, Default)]
pub(crate) struct DedupIndex {
    slots: Vec<u64>,
    /// Entries in `slots`.
    placed: usize,
    filter: Vec<u64>,
    /// Entries not yet in `slots`, in insertion order; they are in `filter`.
    pending: Vec<u64>,
}

fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

fn entry(tag: u32, index: usize) -> u64 {
    (u64::from(tag) << 32) | (index as u64 + 1)
}

fn entry_tag(entry: u64) -> u32 {
    (entry >> 32) as u32
}

fn entry_index(entry: u64) -> usize {
    (entry & u64::from(u32::MAX)) as usize - 1
}

/// The filter word and bit mask for `tag`. The tag is mixed first: its low bits already pick
/// the table slot, and the filter's positions should not follow them.
fn filter_position(tag: u32, words: usize) -> (usize, u64) {
    let mut mixed = u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    mixed ^= mixed >> 29;
    mixed = mixed.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed ^= mixed >> 32;
    // The low bits pick the word and the top 24 bits the positions in it; a table of 2^40
    // slots would be needed before the two overlap.
    let word = (mixed as usize) & (words - 1);
    let bits = (0..FILTER_BITS).fold(0u64, |bits, i| bits | 1 << ((mixed >> (40 + 6 * i)) & 63));
    (word, bits)
}

impl DedupIndex {
    /// Whether `hash` may have an entry: `false` means certainly not. One read of the filter.
    pub(crate) fn may_contain(&self, hash: u64) -> bool {
        !self.filter.is_empty() && {
            let (word, bits) = filter_position(tag_of(hash), self.filter.len());
            self.filter[word] & bits == bits
        }
    }

    /// Task indexes whose entry carries `hash`'s tag: held-back entries first, then the
    /// table's in probe order.
    pub(crate) fn candidates(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let tag = tag_of(hash);
        let (pending, slots) = if self.may_contain(hash) {
            (&self.pending[..], &self.slots[..])
        } else {
            (&[][..], &[][..])
        };
        let mask = slots.len().wrapping_sub(1);
        let start = tag as usize & mask;
        // An empty table yields nothing: `take_while` stops at once on `None`.
        let placed = (0..slots.len())
            .map(move |step| slots[(start + step) & mask])
            .take_while(|slot| *slot != 0);
        pending
            .iter()
            .copied()
            .chain(placed)
            .filter(move |entry| entry_tag(*entry) == tag)
            .map(entry_index)
    }

    /// Adds an entry. `index` must be below `u32::MAX - 1` (the queue's hard task limit).
    pub(crate) fn insert(&mut self, hash: u64, index: usize) {
        // The filter is sized with the table, so the table grows before it would pass its
        // load limit counting held-back entries too; otherwise a small table's filter would
        // fill up with held-back tags and stop rejecting anything.
        let entries = self.placed + self.pending.len() + 1;
        if entries * 8 > self.slots.len() * MAX_LOAD_EIGHTHS {
            self.grow(entries);
        }
        let tag = tag_of(hash);
        let (word, bits) = filter_position(tag, self.filter.len());
        self.filter[word] |= bits;
        self.pending.push(entry(tag, index));
        if self.pending.len() >= PENDING_BATCH {
            self.place_pending();
        }
    }

    /// Moves every held-back entry into the table, which `insert` has already sized for them.
    fn place_pending(&mut self) {
        // One tight loop with no dependence between iterations, so the cache misses of
        // different entries overlap.
        for &entry in &self.pending {
            Self::place(&mut self.slots, entry);
        }
        self.placed += self.pending.len();
        self.pending.clear();
    }

    fn place(slots: &mut [u64], entry: u64) {
        let mask = slots.len() - 1;
        let mut at = entry_tag(entry) as usize & mask;
        while slots[at] != 0 {
            at = (at + 1) & mask;
        }
        slots[at] = entry;
    }

    /// Resizes the table to hold `entries` within the load limit, places the held-back
    /// entries in it, and rebuilds the filter to match.
    fn grow(&mut self, entries: usize) {
        let mut size = self.slots.len().max(MIN_SLOTS);
        while entries * 8 > size * MAX_LOAD_EIGHTHS {
            size *= 2;
        }
        let mut slots = vec![0u64; size];
        let mut filter = vec![0u64; size / SLOTS_PER_FILTER_WORD];
        let held_back = self.pending.drain(..);
        let mut placed = 0;
        for entry in self
            .slots
            .iter()
            .copied()
            .filter(|slot| *slot != 0)
            .chain(held_back)
        {
            Self::place(&mut slots, entry);
            let (word, bits) = filter_position(entry_tag(entry), filter.len());
            filter[word] |= bits;
            placed += 1;
        }
        self.placed = placed;
        self.slots = slots;
        self.filter = filter;
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
    fn an_entry_is_found_while_it_is_held_back_and_after_it_is_placed() {
        let mut index = DedupIndex::default();
        index.insert(0xAAAA_0000_0000_0001, 0);
        assert_eq!(index.pending.len(), 1, "the first entry is held back");
        assert!(index.may_contain(0xAAAA_0000_0000_0001));
        assert_eq!(
            index.candidates(0xAAAA_0000_0000_0001).collect::<Vec<_>>(),
            vec![0]
        );
        // Every entry stays findable at every step: held back, placed in a batch, or moved
        // by growth.
        let hash = |n: u64| n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut saw_placed = false;
        for n in 1..1_000u64 {
            index.insert(hash(n), n as usize);
            saw_placed |= index.placed > 0;
            for m in 1..=n {
                assert!(
                    index.candidates(hash(m)).any(|i| i == m as usize),
                    "entry {m} lost"
                );
            }
        }
        assert!(saw_placed && index.pending.len() < super::PENDING_BATCH);
        assert_eq!(
            index.candidates(0xAAAA_0000_0000_0001).collect::<Vec<_>>(),
            vec![0]
        );
    }

    #[test]
    fn the_filter_turns_away_most_absent_tags() {
        let mut index = DedupIndex::default();
        let present = |n: u64| n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let absent = |n: u64| (n | 1 << 40).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        for n in 0..100_000u64 {
            index.insert(present(n), n as usize);
        }
        assert!((0..100_000u64).all(|n| index.may_contain(present(n))));
        let passed = (0..100_000u64)
            .filter(|n| index.may_contain(absent(*n)))
            .count();
        // About 8 bits per entry and 4 bits per tag give roughly 3%; 10% would mean the
        // filter no longer spares most new tasks the table probe.
        assert!(
            passed < 10_000,
            "{passed} of 100000 absent tags passed the filter"
        );
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
