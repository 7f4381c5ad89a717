//! Pacing a participant loop: exponential backoff through outages, the
//! pause when there is nothing to do, and the stop signal checked between
//! units of work.

use std::time::Duration;

use tracing::warn;

/// Paces a participant loop after one step whose outcome is `Some(true)`
/// (did work), `Some(false)` (nothing to do: sleep `poll`), `None` (done) or
/// an error: transient ones back off, others are logged as `what failed`
/// and paused on. Returns false when the loop should end.
pub async fn pace<E: std::fmt::Display + Sync>(
    outcome: std::result::Result<Option<bool>, E>,
    is_transient: impl Fn(&E) -> bool,
    backoff: &mut Backoff,
    stop: &Stop,
    poll: Duration,
    what: &str,
) -> bool {
    match outcome {
        Ok(Some(true)) => backoff.reset(),
        Ok(Some(false)) => {
            backoff.reset();
            stop.sleep(poll).await;
        }
        Ok(None) => return false,
        Err(e) if is_transient(&e) => backoff.wait(&e).await,
        Err(e) => {
            // A refused request or a bad task: say why, pause, go on.
            warn!(error = %e, "{what} failed");
            if stop.sleep(poll.max(Duration::from_secs(1))).await {
                return false;
            }
        }
    }
    true
}

/// Exponential backoff between retries of transient failures.
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
    failures: u32,
}

impl Backoff {
    /// Starts at `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
            failures: 0,
        }
    }

    /// Forgets past failures after a success.
    pub fn reset(&mut self) {
        self.next = self.first;
        self.failures = 0;
    }

    /// Logs `what` and sleeps for the current pause, then doubles it.
    pub async fn wait(&mut self, what: &(dyn std::fmt::Display + Sync)) {
        self.failures += 1;
        warn!(
            retry_in_ms = self.next.as_millis() as u64,
            failures = self.failures,
            "{what}"
        );
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// A stop signal checked between units of work, so a task in flight (a
/// submission and its report) is never cut in half.
#[derive(Clone, Default)]
pub struct Stop {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    notify: std::sync::Arc<tokio::sync::Notify>,
}

impl Stop {
    /// A signal that is raised when `shutdown` completes.
    pub fn on(shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        let stop = Self::default();
        let raised = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            raised.raise();
        });
        stop
    }

    /// Raises the signal.
    pub fn raise(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// True once raised.
    pub fn is_raised(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sleeps for `d` or until the signal is raised; true if raised.
    pub async fn sleep(&self, d: Duration) -> bool {
        let notified = self.notify.notified();
        if self.is_raised() {
            return true;
        }
        tokio::select! {
            _ = notified => true,
            _ = tokio::time::sleep(d) => self.is_raised(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let start = tokio::time::Instant::now();
        b.wait(&"x").await;
        b.wait(&"x").await;
        b.wait(&"x").await;
        b.wait(&"x").await;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(100 + 200 + 350 + 350)
        );
        assert_eq!(b.failures(), 4);
        b.reset();
        let t = tokio::time::Instant::now();
        b.wait(&"x").await;
        assert_eq!(t.elapsed(), Duration::from_millis(100));
    }
}
