//! The injected clock: the scheduler never reads the wall clock directly, so tests never sleep.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn_queue::Timestamp;

/// Where the scheduler gets "now" from. Object-safe; hold it as `Arc<dyn Clock>`.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time, in milliseconds since the Unix epoch.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        cairn_checkpoint::wall_clock_now()
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cairn_queue::Timestamp;
/// use cairn_scheduler::{Clock, ManualClock};
///
/// let clock = ManualClock::new(Timestamp(1_000));
/// let seen_by_scheduler = clock.clone();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(seen_by_scheduler.now(), Timestamp(61_000));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock showing `at`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new(Timestamp(1_767_225_600_000));
    /// assert_eq!(clock.now(), Timestamp(1_767_225_600_000));
    /// ```
    pub fn new(at: Timestamp) -> Self {
        ManualClock {
            millis: Arc::new(AtomicU64::new(at.0)),
        }
    }

    /// Sets the time (it may go backwards, as a wall clock can).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new(Timestamp(10_000));
    /// clock.set(Timestamp(4_000));
    /// assert_eq!(clock.now(), Timestamp(4_000));
    /// ```
    pub fn set(&self, at: Timestamp) {
        self.millis.store(at.0, Ordering::SeqCst);
    }

    /// Moves the time forward by `by`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new(Timestamp(0));
    /// clock.advance(Duration::from_millis(1_500));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(clock.now(), Timestamp(2_500));
    /// // The end of time stops it.
    /// clock.advance(Duration::MAX);
    /// assert_eq!(clock.now(), Timestamp(u64::MAX));
    /// ```
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(ms))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.millis.load(Ordering::SeqCst))
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}
