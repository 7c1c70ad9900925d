//! Work over rows split into fixed-size chunks and spread on scoped threads.
//!
//! The chunks do not depend on the number of threads: each chunk is computed
//! by one thread in row order and per-chunk results are combined in chunk
//! order, so sums (losses) and every other result are bit-identical whether
//! training runs on one thread or many.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Rows per chunk.
pub(crate) const CHUNK: usize = 8192;

/// The number of threads to use: `requested`, or every core the process may
/// use; at least 1.
pub(crate) fn resolve_threads(requested: Option<usize>) -> usize {
    requested
        .filter(|&t| t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1)
}

fn chunk_ranges(n: usize) -> Vec<Range<usize>> {
    (0..n.div_ceil(CHUNK))
        .map(|c| c * CHUNK..((c + 1) * CHUNK).min(n))
        .collect()
}

/// `f(range)` for every chunk of `0..n`, results in chunk order.
pub(crate) fn map_chunks<T, F>(n: usize, threads: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(Range<usize>) -> T + Sync,
{
    let ranges = chunk_ranges(n);
    let threads = threads.min(ranges.len()).max(1);
    if threads == 1 {
        return ranges.into_iter().map(f).collect();
    }
    let per = ranges.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .chunks(per)
            .map(|group| s.spawn(move || group.iter().cloned().map(f).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// A chunk's first row and its parts of two slices.
type ChunkPair<'s, A, B> = (usize, &'s mut [A], &'s mut [B]);

/// `f(start, a_chunk, b_chunk)` for matching chunks of two equally long
/// slices (`start` is the chunk's first row), results in chunk order.
pub(crate) fn zip_chunks_mut<A, B, T, F>(a: &mut [A], b: &mut [B], threads: usize, f: F) -> Vec<T>
where
    A: Send,
    B: Send,
    T: Send,
    F: Fn(usize, &mut [A], &mut [B]) -> T + Sync,
{
    debug_assert_eq!(a.len(), b.len());
    let n_chunks = a.len().div_ceil(CHUNK);
    let threads = threads.min(n_chunks).max(1);
    let pairs = a.chunks_mut(CHUNK).zip(b.chunks_mut(CHUNK)).enumerate();
    if threads == 1 {
        return pairs.map(|(c, (x, y))| f(c * CHUNK, x, y)).collect();
    }
    let per = n_chunks.div_ceil(threads);
    let mut groups: Vec<Vec<ChunkPair<'_, A, B>>> = (0..threads).map(|_| Vec::new()).collect();
    for (c, (x, y)) in pairs {
        groups[c / per].push((c * CHUNK, x, y));
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|group| {
                s.spawn(move || {
                    group
                        .into_iter()
                        .map(|(start, x, y)| f(start, x, y))
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// `f(start, chunk)` for every chunk of `a`, results in chunk order.
pub(crate) fn chunks_mut<A, T, F>(a: &mut [A], threads: usize, f: F) -> Vec<T>
where
    A: Send,
    T: Send,
    F: Fn(usize, &mut [A]) -> T + Sync,
{
    // A vector of `()` allocates nothing.
    let mut units = vec![(); a.len()];
    zip_chunks_mut(a, &mut units, threads, |start, x, _| f(start, x))
}

/// `f(item)` for every item on up to `threads` threads (the calling thread
/// included), each thread taking the next unclaimed item; results in item
/// order. For independent tasks of uneven size, whose results do not
/// depend on which thread ran them.
pub(crate) fn map_items<I, T, F>(items: Vec<I>, threads: usize, f: F) -> Vec<T>
where
    I: Send,
    T: Send,
    F: Fn(I) -> T + Sync,
{
    let n = items.len();
    let threads = threads.min(n).max(1);
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let slots: Vec<Mutex<Option<I>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return out;
            }
            let item = slots[i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(item) = item {
                out.push((i, f(item)));
            }
        }
    };
    let mut all: Vec<(usize, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in handles {
            match h.join() {
                Ok(v) => all.extend(v),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_results_on_any_thread_count() {
        let n = 3 * CHUNK + 17;
        let xs: Vec<f64> = (0..n)
            .map(|i| (i as f64).sin() * 1e-3 + 1.0 / (i + 1) as f64)
            .collect();
        let sum = |threads| {
            map_chunks(n, threads, |r| xs[r].iter().sum::<f64>())
                .into_iter()
                .sum::<f64>()
        };
        let one = sum(1);
        for t in 2..6 {
            assert_eq!(one.to_bits(), sum(t).to_bits());
        }
        let mut a = vec![0.0; n];
        let mut b = vec![0u32; n];
        let starts = zip_chunks_mut(&mut a, &mut b, 3, |start, x, y| {
            for (i, (x, y)) in x.iter_mut().zip(y.iter_mut()).enumerate() {
                *x = (start + i) as f64;
                *y = (start + i) as u32;
            }
            start
        });
        assert_eq!(starts, vec![0, CHUNK, 2 * CHUNK, 3 * CHUNK]);
        assert!(a.iter().enumerate().all(|(i, &v)| v == i as f64));
        assert!(b.iter().enumerate().all(|(i, &v)| v == i as u32));
        for t in 1..5 {
            let squares = map_items((0..37u64).collect(), t, |i| i * i);
            assert_eq!(squares, (0..37u64).map(|i| i * i).collect::<Vec<_>>());
        }
    }
}
