//! Freeing an update's large structures on another thread.
//!
//! An update of an app of 10,000 files holds two installed versions' records, the index of
//! their files and the new manifest: a few hundred thousand small allocations (a path and two
//! hashes per file, each its own `String`). Freeing them one by one took about 15 % of the
//! update's time on the calling thread (`update-bench`, `perf`), after the work was done
//! and before the caller got its result. They are handed to a short-lived thread instead;
//! below [`WORTH_A_THREAD`] items they are freed in place, where a thread costs more than
//! it saves. If the process ends first, the system takes the memory back all at once.

/// Items (files, index entries) below which a structure is freed on the calling thread.
pub(crate) const WORTH_A_THREAD: usize = 2_000;

/// Drops `value` on a new thread when `items` (its size, in files or entries) is at least
/// [`WORTH_A_THREAD`]; else, or when no thread can be started, here.
pub(crate) fn drop_in_background<T: Send + 'static>(value: T, items: usize) {
    if items < WORTH_A_THREAD {
        return;
    }
    // On failure the closure, and the value with it, is dropped here.
    let spawned = std::thread::Builder::new()
        .name("appstart-free".into())
        .spawn(move || drop(value));
    if let Err(err) = spawned {
        log::debug!("freed on the calling thread: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Sets its flag when dropped, and says on which thread.
    struct Flag(Arc<AtomicBool>, Arc<std::sync::Mutex<Option<String>>>);

    impl Drop for Flag {
        fn drop(&mut self) {
            if let Ok(mut name) = self.1.lock() {
                *name = std::thread::current().name().map(str::to_string);
            }
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn dropped_on(items: usize) -> Option<String> {
        let done = Arc::new(AtomicBool::new(false));
        let thread = Arc::new(std::sync::Mutex::new(None));
        drop_in_background(Flag(Arc::clone(&done), Arc::clone(&thread)), items);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !done.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "never dropped");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        thread.lock().unwrap().clone()
    }

    /// A large structure is freed on its own thread, a small one at once on the caller's;
    /// both are freed.
    #[test]
    fn large_structures_are_freed_on_another_thread_small_ones_here() {
        assert_eq!(dropped_on(WORTH_A_THREAD).as_deref(), Some("appstart-free"));
        let here = std::thread::current().name().map(str::to_string);
        assert_eq!(dropped_on(WORTH_A_THREAD - 1), here);
    }
}
