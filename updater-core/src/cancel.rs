//! Cancellation: a [`CancelToken`] the app (or Ctrl-C in `appupdate`) trips to stop an
//! operation part-way.
//!
//! Why a token and not dropping a thread: a check or update runs on the caller's thread and
//! holds the install lock, a staging folder and `.partial` downloads. Stopping it from
//! outside must let it unwind through its own clean-up, so the install is left exactly as it
//! was and verified downloads stay in `state/cache` for the next run. Every network read
//! ([`crate::watched::Watched`]), every wait between retries ([`crate::download::RetryPolicy`])
//! and every file loop (staging, verifying) checks the token and returns
//! [`Error::Cancelled`].
//!
//! ```
//! let token = updater_core::CancelToken::new();
//! let for_the_ui = token.clone();
//! for_the_ui.cancel();
//! assert!(token.is_cancelled());
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A shared "stop now" flag. Clones share it; cancelling is final.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    /// Wakes [`CancelToken::sleep`] at once when cancelled.
    lock: Mutex<()>,
    wake: Condvar,
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// Asks every operation holding this token to stop. Safe from any thread (and from a
    /// signal handler thread such as the `ctrlc` crate's).
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        // A poisoned lock only means another thread panicked while sleeping: still wake all.
        let _guard = self.inner.lock.lock();
        self.inner.wake.notify_all();
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// `Err(Error::Cancelled)` once cancelled: the check every loop makes.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Sleeps for `duration`, or until cancelled (then `Err(Error::Cancelled)`).
    pub fn sleep(&self, duration: Duration) -> Result<()> {
        let deadline = Instant::now() + duration;
        let mut guard = self
            .inner
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            self.check()?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            guard = match self.inner.wake.wait_timeout(guard, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_is_shared_by_clones_and_wakes_a_sleeper() {
        let token = CancelToken::new();
        assert!(token.check().is_ok());
        let sleeper = token.clone();
        let thread = std::thread::spawn(move || sleeper.sleep(Duration::from_secs(600)));
        std::thread::sleep(Duration::from_millis(50));
        token.cancel();
        // Would block for 10 minutes if cancel did not wake the sleeper.
        let result = thread.join().expect("the sleeper does not panic");
        assert!(matches!(result, Err(Error::Cancelled)));
        assert!(matches!(token.check(), Err(Error::Cancelled)));
        assert!(CancelToken::new().sleep(Duration::from_millis(1)).is_ok());
    }
}
