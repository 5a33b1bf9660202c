//! A test-only global allocator that counts heap bytes per thread, so that tests can assert
//! that a decoder fed hostile input stays within a memory bound.
//!
//! Counters are thread-local `Cell`s with const initialisers and no destructors, so reading
//! them never allocates and parallel tests do not see each other's allocations. Only Rust
//! allocations are seen: the C libraries (zstd, liblzma) call `malloc` directly, so their
//! limits are tested through their own refusals instead.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn record(change: isize) {
    // `try_with` because a thread's last frees may come after its locals are gone.
    let _ = CURRENT.try_with(|current| {
        let now = current.get().saturating_add(change);
        current.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

struct Tracking;

// SAFETY: every call is forwarded unchanged to the system allocator; we only count.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            record(signed(layout.size()));
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            record(signed(layout.size()));
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(pointer, layout) };
        record(-signed(layout.size()));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            record(signed(new_size) - signed(layout.size()));
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and returns its result with the peak heap growth on this thread while it ran.
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = CURRENT.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (result, usize::try_from(peak - start).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_large_allocation_on_this_thread_only() {
        let (_, peak) = peak_during(|| vec![1u8; 4 << 20].len());
        assert!(peak >= 4 << 20, "{peak}");
        let (_, peak) = peak_during(|| {
            std::thread::spawn(|| vec![1u8; 4 << 20].len())
                .join()
                .unwrap_or(0)
        });
        assert!(peak < 1 << 20, "{peak}");
    }
}
