//! The set of due tasks: a bitmap over task indexes with a summary bit per 64-bit word.
//!
//! Adding or removing a task is a bit flip, with no allocation and no rebalancing, at any
//! size. Listing the set in id order skips empty words through the summary, so it costs one
//! summary word per 4,096 tasks plus one step per due task.

/// Due task indexes, iterated in increasing order.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadySet {
    /// Bit `i % 64` of word `i / 64` is set when task `i` is due.
    words: Vec<u64>,
    /// Bit `w % 64` of summary word `w / 64` is set when `words[w]` is not zero.
    summary: Vec<u64>,
    len: usize,
}

impl ReadySet {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, i: usize) {
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        if w >= self.words.len() {
            // Grow to cover the new index; tasks arrive in id order, so this is amortized.
            self.words.resize((w + 1).next_power_of_two(), 0);
            self.summary.resize(self.words.len().div_ceil(64), 0);
        }
        if self.words[w] & bit == 0 {
            self.words[w] |= bit;
            self.summary[w / 64] |= 1 << (w % 64);
            self.len += 1;
        }
    }

    pub(crate) fn remove(&mut self, i: usize) {
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        if let Some(word) = self.words.get_mut(w)
            && *word & bit != 0
        {
            *word &= !bit;
            if *word == 0 {
                self.summary[w / 64] &= !(1 << (w % 64));
            }
            self.len -= 1;
        }
    }

    /// Every member, in increasing order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        set_bits(&self.summary)
            .flat_map(move |w| set_bits(&self.words[w..=w]).map(move |b| w * 64 + b))
    }
}

/// The positions of the set bits of `words`, in increasing order.
fn set_bits(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(k, &word)| {
        let mut rest = word;
        std::iter::from_fn(move || {
            (rest != 0).then(|| {
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                k * 64 + bit
            })
        })
    })
}

#[cfg(test)]
mod tests {
    //! The set is private; these tests cross its word and summary-word boundaries directly.

    use super::ReadySet;

    #[test]
    fn members_come_back_in_order_across_word_and_summary_boundaries() {
        let mut set = ReadySet::default();
        let members = [0, 1, 63, 64, 65, 4095, 4096, 4097, 9000, 64 * 64 * 3 + 1];
        // Inserted out of order, and twice, to show order and set semantics.
        for &i in members.iter().rev().chain(&members) {
            set.insert(i);
        }
        assert_eq!(set.len(), members.len());
        assert_eq!(set.iter().collect::<Vec<_>>(), members);
    }

    #[test]
    fn removal_empties_words_and_summaries_without_losing_neighbours() {
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
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![4096, 4097, 4098, 4099]);
        for i in 4096..4100 {
            set.remove(i);
        }
        assert_eq!(set.len(), 0);
        assert_eq!(set.iter().count(), 0);
    }
}
