//! Measuring the memory a piece of work allocates: [`Tracking`] wraps the
//! system allocator and, only while a [`measure`] runs, counts the bytes
//! allocated and freed and keeps their peak. Outside a measurement it adds
//! one relaxed load per allocation and per free. A binary opts in with
//! `#[global_allocator] static A: keel_core::alloc::Tracking = keel_core::alloc::Tracking;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The system allocator with byte counting during a [`measure`].
pub struct Tracking;

static ON: AtomicBool = AtomicBool::new(false);
static CURRENT: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);
/// One measurement at a time.
static MEASURING: Mutex<()> = Mutex::new(());

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes as i64, Ordering::Relaxed) + bytes as i64;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    CURRENT.fetch_sub(bytes as i64, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; the counters are
// atomics that never allocate.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && ON.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && ON.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        if ON.load(Ordering::Relaxed) {
            shrank(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && ON.load(Ordering::Relaxed) {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Runs `work` and returns its result with the peak of the bytes allocated
/// and not yet freed while it ran (memory freed that was allocated before
/// counts against it, so the peak is of the net new allocation, ≥ 0).
/// Other threads' allocations in that window count too. `None` when the
/// binary has not installed [`Tracking`].
pub fn measure<T>(work: impl FnOnce() -> T) -> (T, Option<u64>) {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let start = || {
        CURRENT.store(0, Ordering::Relaxed);
        PEAK.store(0, Ordering::Relaxed);
        ON.store(true, Ordering::SeqCst);
    };
    // An allocation that is counted proves the allocator is installed.
    start();
    drop(std::hint::black_box(Box::new(0u64)));
    if PEAK.load(Ordering::Relaxed) == 0 {
        ON.store(false, Ordering::SeqCst);
        return (work(), None);
    }
    start();
    let out = work();
    ON.store(false, Ordering::SeqCst);
    let peak = PEAK.load(Ordering::Relaxed).max(0) as u64;
    (out, Some(peak))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static A: Tracking = Tracking;

    #[test]
    fn the_peak_of_a_vector_is_its_bytes() {
        let (sum, peak) = measure(|| {
            let v = vec![1u64; 1_000_000];
            let w: Vec<u64> = v.iter().map(|x| x * 2).collect();
            drop(v);
            w.iter().sum::<u64>()
        });
        assert_eq!(sum, 2_000_000);
        let peak = peak.expect("installed in this test binary");
        // Two 8 MB vectors alive at once; the test harness may allocate a
        // little on other threads.
        assert!((16_000_000..17_000_000).contains(&peak), "{peak}");
        let (_, none) = measure(|| 1 + 1);
        assert!(none.expect("installed") < 100_000);
    }
}
