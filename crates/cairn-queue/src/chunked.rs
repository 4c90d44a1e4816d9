//! A growable list stored in chunks that never move.
//!
//! A `Vec` doubles when full: it copies everything it holds and touches a fresh region twice
//! its size, so at a million tasks a single push can move hundreds of megabytes. Chunks never
//! move once allocated, so a push never copies. The first chunk holds 1,024 items, the next
//! ones double up to 65,536 items, and the rest hold 65,536 each: a million items take 22
//! allocations instead of 977 chunks of 1,024. Each large allocation made glibc's allocator
//! consolidate the small blocks freed since the last one (a host clearing its outbox frees
//! two per enqueued task). The cap keeps every chunk (13.6 MB of tasks) under glibc's largest
//! `mmap` threshold, 32 MiB: bigger chunks are always mapped fresh and unmapped when the queue
//! is dropped, and uncapped doubling chunks made the queue bench fault in 3.4 times as many
//! pages.

use std::ops::{Index, IndexMut};

/// Items in the first chunk, as a power of two.
const FIRST_BITS: u32 = 10;
const FIRST_LEN: usize = 1 << FIRST_BITS;

/// Items in the largest chunks, as a power of two: 65,536 tasks take 13.6 MB.
const LAST_BITS: u32 = 16;
const LAST_LEN: usize = 1 << LAST_BITS;

/// An append-only list whose items never move.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedVec<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        ChunkedVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

/// The chunk that holds item `i`, and `i`'s place in it. Chunk 0 holds items
/// `0..FIRST_LEN`; a doubling chunk `k >= 1` holds `FIRST_LEN << (k - 1) .. FIRST_LEN << k`,
/// up to the one that ends at `2 * LAST_LEN`; after it every chunk holds `LAST_LEN` items.
fn locate(i: usize) -> (usize, usize) {
    if i < FIRST_LEN {
        (0, i)
    } else if i < 2 * LAST_LEN {
        let top = usize::BITS - 1 - i.leading_zeros();
        ((top - FIRST_BITS + 1) as usize, i - (1 << top))
    } else {
        (
            (i >> LAST_BITS) + (LAST_BITS - FIRST_BITS) as usize,
            i & (LAST_LEN - 1),
        )
    }
}

/// How many items chunk `k` holds.
fn chunk_len(k: usize) -> usize {
    match k {
        0 => FIRST_LEN,
        k if k <= (LAST_BITS - FIRST_BITS + 1) as usize => FIRST_LEN << (k - 1),
        _ => LAST_LEN,
    }
}

impl<T> ChunkedVec<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn push(&mut self, item: T) {
        let (k, at) = locate(self.len);
        if at == 0 {
            self.chunks.push(Vec::with_capacity(chunk_len(k)));
        }
        // A chunk is pushed above whenever the item opens a new one, so the last one is `k`.
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(item);
            self.len += 1;
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        let (k, at) = locate(i);
        self.chunks.get(k).and_then(|chunk| chunk.get(at))
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    pub(crate) fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        let mut out = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            out.extend_from_slice(chunk);
        }
        out
    }
}

impl<T> Index<usize> for ChunkedVec<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        let (k, at) = locate(i);
        &self.chunks[k][at]
    }
}

impl<T> IndexMut<usize> for ChunkedVec<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        let (k, at) = locate(i);
        &mut self.chunks[k][at]
    }
}

#[cfg(test)]
mod tests {
    //! `locate` is private; these tests pin its chunk boundaries.

    use super::{ChunkedVec, LAST_LEN, chunk_len, locate};

    #[test]
    fn chunks_tile_the_indexes_without_gaps() {
        let mut start = 0;
        for k in 0..40 {
            assert_eq!(locate(start), (k, 0), "chunk {k} starts at {start}");
            let last = start + chunk_len(k) - 1;
            assert_eq!(
                locate(last),
                (k, chunk_len(k) - 1),
                "chunk {k} ends at {last}"
            );
            start += chunk_len(k);
        }
    }

    #[test]
    fn items_come_back_at_their_index_across_chunks() {
        let mut list = ChunkedVec::default();
        let n = LAST_LEN * 3 + 3;
        for i in 0..n {
            list.push(i);
        }
        assert_eq!(list.len(), n);
        assert!((0..n).all(|i| list[i] == i && list.get(i) == Some(&i)));
        assert_eq!(list.get(n), None);
        assert_eq!(list.iter().copied().collect::<Vec<_>>(), list.to_vec());
        assert_eq!(list.to_vec(), (0..n).collect::<Vec<_>>());
    }
}
