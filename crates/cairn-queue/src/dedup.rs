//! The dedup guard's index: canonical `(kind, inputs)` hash → task.
//!
//! Three parts, so that enqueueing a task with new inputs (the common case) touches as little
//! memory as possible that a million-task queue has pushed out of cache:
//! - every entry in insertion order: the hash's high 32 bits as a tag, the task index, and a
//!   link to the next older entry of its bucket. It is only appended to, so writing it streams.
//! - one chain head per bucket (`u32`, two entries per bucket at most on average): the only
//!   part an insert writes at random. At a million tasks it is 2 MB, where an open-addressing
//!   table of `u64` slots was 16 MB.
//! - a filter of one bit-set word per four buckets (1 MB at a million tasks) that answers
//!   "certainly absent" for most new tags, so chains are walked only for likely duplicates.
//!
//! New entries wait a short while before they are linked into their chains: linking a batch
//! in one loop lets the processor overlap the chain heads' cache misses instead of paying
//! them one enqueue at a time. Lookups check the waiting entries too.
//!
//! Tags may repeat: every entry with the probed tag is a candidate, and the caller confirms a
//! candidate against the task itself, so a collision can never merge two different tasks.
//! The filter and the heads are built from the entries alone, so both are rebuilt when the
//! bucket count grows. Entries are never removed, because tasks are never removed; the entry
//! of a task whose inputs are amended moves to its new tag (`rekey`), so a task has one at most.

/// Entries per bucket, on average, before the bucket count doubles.
const MAX_ENTRIES_PER_BUCKET: usize = 2;

/// The smallest bucket count.
const MIN_BUCKETS: usize = 32;

/// Buckets per filter word: about 8 to 16 filter bits per entry depending on how full the
/// buckets are (false positives roughly 0.5% to 3%).
const BUCKETS_PER_FILTER_WORD: usize = 4;

/// Entries held back before they are linked into their chains together.
const PENDING_BATCH: usize = 64;

/// Bits the filter sets per tag, all in one word.
const FILTER_BITS: u32 = 4;

/// "No entry" in a chain head or link; an entry number is stored plus one.
const NONE: u32 = 0;

// A task holds at most one entry (an amended task's entry moves with it, see `rekey`), so
// there are never more entries than tasks. Entry `n` is stored as `n + 1` and task indexes
// as they are, so both fit a `u32` as long as the queue's hard task limit is below
// `u32::MAX`; this keeps that true.
const _: () = assert!(crate::queue::MAX_TASKS_HARD_LIMIT < u32::MAX as usize);

/// One indexed task.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u32,
    task: u32,
    /// The next older entry in this entry's bucket, plus one; `NONE` ends the chain.
    next: u32,
}

/// Hash → task index, with duplicate tags allowed.
#[derive(Debug, Clone, Default)]
pub(crate) struct DedupIndex {
    /// Per bucket, the newest linked entry's number plus one.
    heads: Vec<u32>,
    /// Every entry, in insertion order.
    entries: Vec<Entry>,
    /// Entries before this one are linked into their chains; the rest are held back.
    placed: usize,
    filter: Vec<u64>,
}

fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// The filter word and bit mask for `tag`. The tag is mixed first: its low bits already pick
/// the bucket, and the filter's positions should not follow them.
fn filter_position(tag: u32, words: usize) -> (usize, u64) {
    let mut mixed = u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    mixed ^= mixed >> 29;
    mixed = mixed.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed ^= mixed >> 32;
    // The low bits pick the word and the top 24 bits the positions in it; 2^40 filter words
    // would be needed before the two overlap.
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
    /// bucket's chain, newest first.
    pub(crate) fn candidates(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let tag = tag_of(hash);
        let (held_back, first) = if self.may_contain(hash) {
            let bucket = tag as usize & (self.heads.len() - 1);
            (&self.entries[self.placed..], self.heads[bucket])
        } else {
            (&[][..], NONE)
        };
        let chain = std::iter::successors(self.entry(first), |entry| self.entry(entry.next));
        held_back
            .iter()
            .chain(chain)
            .filter(move |entry| entry.tag == tag)
            .map(|entry| entry.task as usize)
    }

    /// The entry a head or link names.
    fn entry(&self, link: u32) -> Option<&Entry> {
        link.checked_sub(1).map(|at| &self.entries[at as usize])
    }

    /// Adds an entry. `index` must be below `u32::MAX - 1` (the queue's hard task limit).
    pub(crate) fn insert(&mut self, hash: u64, index: usize) {
        // The filter is sized with the buckets, so the buckets grow before they would pass
        // their load limit counting held-back entries too; otherwise a small index's filter
        // would fill up with held-back tags and stop rejecting anything.
        if (self.entries.len() + 1) > self.heads.len() * MAX_ENTRIES_PER_BUCKET {
            self.grow(self.entries.len() + 1);
        }
        let tag = tag_of(hash);
        let (word, bits) = filter_position(tag, self.filter.len());
        self.filter[word] |= bits;
        self.entries.push(Entry {
            tag,
            task: index as u32,
            next: NONE,
        });
        if self.entries.len() - self.placed >= PENDING_BATCH {
            self.link_from(self.placed);
        }
    }

    /// Moves `task`'s entry from `old`'s tag to `new`'s, for a task whose inputs changed, so
    /// that it keeps one entry rather than gaining a second one. Returns `false`, changing
    /// nothing, when the task has no entry under `old`. Walks one chain; amendments only.
    pub(crate) fn rekey(&mut self, task: usize, old: u64, new: u64) -> bool {
        let (old_tag, new_tag) = (tag_of(old), tag_of(new));
        let is_it = |entry: &Entry| entry.tag == old_tag && entry.task as usize == task;
        let held_back = self.entries[self.placed..]
            .iter_mut()
            .find(|entry| is_it(entry));
        let moved = if let Some(entry) = held_back {
            // Not linked yet: `link_from` will link it under its new tag.
            entry.tag = new_tag;
            true
        } else if self.heads.is_empty() {
            false
        } else {
            let mask = self.heads.len() - 1;
            let bucket = old_tag as usize & mask;
            // The link that names the current entry: the bucket's head, then each `next`.
            let mut previous: Option<usize> = None;
            let mut link = self.heads[bucket];
            let mut found = false;
            while let Some(at) = link.checked_sub(1).map(|at| at as usize) {
                let entry = self.entries[at];
                if is_it(&entry) {
                    match previous {
                        None => self.heads[bucket] = entry.next,
                        Some(before) => self.entries[before].next = entry.next,
                    }
                    let target = new_tag as usize & mask;
                    self.entries[at].tag = new_tag;
                    self.entries[at].next = self.heads[target];
                    self.heads[target] = link;
                    found = true;
                    break;
                }
                previous = Some(at);
                link = entry.next;
            }
            found
        };
        if moved {
            // The old tag's filter bits stay set: the filter may say "maybe" wrongly, never
            // "no" wrongly.
            let (word, bits) = filter_position(new_tag, self.filter.len());
            self.filter[word] |= bits;
        }
        moved
    }

    /// Links every entry from `first` on into its bucket's chain.
    fn link_from(&mut self, first: usize) {
        let mask = self.heads.len() - 1;
        // One tight loop: the heads of different entries are independent, so their cache
        // misses overlap.
        for at in first..self.entries.len() {
            let entry = &mut self.entries[at];
            let head = &mut self.heads[entry.tag as usize & mask];
            entry.next = *head;
            *head = at as u32 + 1;
        }
        self.placed = self.entries.len();
    }

    /// Doubles the buckets until `entries` fit within the load limit, then rebuilds the
    /// chains and the filter from the entries.
    fn grow(&mut self, entries: usize) {
        let mut buckets = self.heads.len().max(MIN_BUCKETS);
        while entries > buckets * MAX_ENTRIES_PER_BUCKET {
            buckets *= 2;
        }
        self.heads = vec![NONE; buckets];
        let mut filter = vec![0u64; buckets / BUCKETS_PER_FILTER_WORD];
        for entry in &self.entries {
            let (word, bits) = filter_position(entry.tag, filter.len());
            filter[word] |= bits;
        }
        self.filter = filter;
        self.link_from(0);
    }

    /// Entries not yet linked into their chains.
    #[cfg(test)]
    fn held_back(&self) -> usize {
        self.entries.len() - self.placed
    }

    /// Entries in all.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    //! The table is private, and collisions cannot be forced through the public API, so
    //! these tests drive it directly.

    use proptest::prelude::*;

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
        assert_eq!(index.held_back(), 1, "the first entry is held back");
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
        assert!(saw_placed && index.held_back() < super::PENDING_BATCH);
        assert_eq!(
            index.candidates(0xAAAA_0000_0000_0001).collect::<Vec<_>>(),
            vec![0]
        );
    }

    #[test]
    fn rekey_moves_a_held_back_or_linked_entry_and_leaves_its_chain_whole() {
        let mut index = DedupIndex::default();
        // Tags that share their low bits share a bucket, so these three form one chain.
        let same_bucket = |n: u64| (n << 48) << 8 | 0x0000_0005_0000_0000;
        for n in 0..3u64 {
            index.insert(same_bucket(n + 1), n as usize);
        }
        let moved_to = 0x7777_0006_0000_0000;
        // Held back: only the tag changes.
        assert!(index.rekey(1, same_bucket(2), moved_to));
        assert_eq!(index.candidates(moved_to).collect::<Vec<_>>(), vec![1]);
        assert_eq!(index.candidates(same_bucket(2)).count(), 0);
        // Linked: fill a batch so every entry is placed, then move the middle of the chain.
        for n in 3..200u64 {
            index.insert(n.wrapping_mul(0x9E37_79B9_7F4A_7C15), n as usize);
        }
        assert!(index.placed > 2, "the three chained entries are linked");
        assert!(index.rekey(1, moved_to, same_bucket(9)));
        assert!(index.rekey(2, same_bucket(3), same_bucket(8)));
        assert_eq!(
            index.candidates(same_bucket(1)).collect::<Vec<_>>(),
            vec![0]
        );
        assert_eq!(
            index.candidates(same_bucket(9)).collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(
            index.candidates(same_bucket(8)).collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!(index.candidates(moved_to).count(), 0);
        assert_eq!(index.candidates(same_bucket(3)).count(), 0);
        for n in 3..200u64 {
            let hash = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert!(
                index.candidates(hash).any(|i| i == n as usize),
                "entry {n} lost"
            );
        }
        // No entry for that task under that tag: nothing moves.
        assert!(!index.rekey(0, same_bucket(2), same_bucket(7)));
        assert_eq!(
            index.candidates(same_bucket(1)).collect::<Vec<_>>(),
            vec![0]
        );
        assert_eq!(index.len(), 200, "moving adds no entry");
    }

    /// One step of `rekey_and_insert_agree_with_a_plain_map`.
    #[derive(Debug, Clone)]
    enum Step {
        Insert(u64),
        Rekey(usize, u64),
    }

    /// Hashes from a few tags whose low bits often agree, so chains are long and shared.
    fn hash() -> impl Strategy<Value = u64> {
        (0u64..24, any::<u32>())
            .prop_map(|(tag, low)| (((tag % 3) | (tag << 20)) << 32) | u64::from(low))
    }

    proptest! {
        /// Every task's entry is found under its current tag and under no other, through
        /// held-back batches, linking and growth, whatever order inserts and moves come in.
        #[test]
        fn rekey_and_insert_agree_with_a_plain_map(
            steps in prop::collection::vec(
                prop_oneof![
                    hash().prop_map(Step::Insert),
                    (0usize..400, hash()).prop_map(|(task, to)| Step::Rekey(task, to)),
                ],
                1..400,
            )
        ) {
            let mut index = DedupIndex::default();
            let mut model: Vec<u64> = Vec::new();
            let tag = |hash: u64| hash >> 32;
            for step in steps {
                match step {
                    Step::Insert(hash) => {
                        index.insert(hash, model.len());
                        model.push(hash);
                    }
                    Step::Rekey(task, to) => {
                        let Some(&from) = model.get(task) else {
                            prop_assert!(!index.rekey(task, to, to), "no task {} yet", task);
                            continue;
                        };
                        prop_assert!(index.rekey(task, from, to));
                        model[task] = to;
                    }
                }
                prop_assert_eq!(index.len(), model.len());
            }
            for probe in model.iter().copied() {
                let mut found: Vec<usize> = index.candidates(probe).collect();
                found.sort_unstable();
                let expected: Vec<usize> = (0..model.len())
                    .filter(|&task| tag(model[task]) == tag(probe))
                    .collect();
                prop_assert_eq!(found, expected);
            }
        }
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
