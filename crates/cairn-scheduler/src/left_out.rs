//! `LeftOutTracker`: tells which of a job listing's left-out entries are news, so a
//! long-lived scheduler warns about each one once, not on every tick.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use cairn_checkpoint::{LeftOutJob, LeftOutPlace};

/// Remembers the left-out entries (`JobListing::left_out`) already reported.
///
/// A job store reports an entry it quarantined once, in the listing that moved it; an entry
/// it left in place (also one left for the newer build that wrote it) is reported by every
/// listing while it stays. `news` passes the first on
/// every time and the second only while it was not in the previous listing, so an entry that
/// is fixed and later left out again is news again.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{JobId, LeftOutJob, LeftOutPlace};
/// use cairn_scheduler::LeftOutTracker;
///
/// let stuck = LeftOutJob {
///     id: Some(JobId::new("stuck").unwrap()),
///     name: "stuck".to_owned(),
///     reason: "cannot be read".to_owned(),
///     place: LeftOutPlace::LeftInPlace { at: "jobs/stuck.json".to_owned() },
/// };
/// let tracker = LeftOutTracker::default();
/// assert_eq!(tracker.news(std::slice::from_ref(&stuck)), vec![stuck.clone()]);
/// // Still there at the next listing: nothing new to say.
/// assert!(tracker.news(std::slice::from_ref(&stuck)).is_empty());
/// // Gone, then back: news again.
/// assert!(tracker.news(&[]).is_empty());
/// assert_eq!(tracker.news(&[stuck.clone()]).len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct LeftOutTracker {
    /// The entries left in place at the previous listing, as `name` and place.
    in_place: Mutex<HashSet<(String, String)>>,
}

impl LeftOutTracker {
    /// The entries of a listing's `left_out` not reported before, in the listing's order.
    /// Call it with every listing's `left_out` (also an empty one).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, LeftOutJob, LeftOutPlace};
    /// use cairn_scheduler::LeftOutTracker;
    ///
    /// let moved = LeftOutJob {
    ///     id: Some(JobId::new("nightly").unwrap()),
    ///     name: "nightly".to_owned(),
    ///     reason: "fails its checksum".to_owned(),
    ///     place: LeftOutPlace::Quarantined {
    ///         location: "jobs/quarantine/nightly-5.json".to_owned(),
    ///     },
    /// };
    /// let tracker = LeftOutTracker::default();
    /// // A store reports each move once, so every report of one is news.
    /// assert_eq!(tracker.news(std::slice::from_ref(&moved)).len(), 1);
    /// assert_eq!(tracker.news(std::slice::from_ref(&moved)).len(), 1);
    /// assert!(tracker.news(&[]).is_empty());
    /// ```
    pub fn news(&self, left_out: &[LeftOutJob]) -> Vec<LeftOutJob> {
        let mut in_place = self.in_place.lock().unwrap_or_else(PoisonError::into_inner);
        let mut now = HashSet::new();
        let mut news = Vec::new();
        for entry in left_out {
            match &entry.place {
                // Still there at every listing while it stays: news only the first time.
                LeftOutPlace::LeftInPlace { at } | LeftOutPlace::NewerFormat { at } => {
                    let key = (entry.name.clone(), at.clone());
                    if !in_place.contains(&key) {
                        news.push(entry.clone());
                    }
                    now.insert(key);
                }
                // Quarantined by that listing: each report is a new move.
                _ => news.push(entry.clone()),
            }
        }
        *in_place = now;
        news
    }
}

/// What an operator should do about a left-out entry, for log lines and messages.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{JobId, LeftOutJob, LeftOutPlace};
/// use cairn_scheduler::what_to_do_about;
///
/// let moved = LeftOutJob {
///     id: Some(JobId::new("nightly").unwrap()),
///     name: "nightly".to_owned(),
///     reason: "fails its checksum".to_owned(),
///     place: LeftOutPlace::Quarantined { location: "jobs/quarantine/nightly-5.json".to_owned() },
/// };
/// assert!(what_to_do_about(&moved).contains("jobs/quarantine/nightly-5.json"));
///
/// let newer = LeftOutJob {
///     place: LeftOutPlace::NewerFormat { at: "jobs/nightly.json".to_owned() },
///     ..moved
/// };
/// assert!(what_to_do_about(&newer).contains("newer build"));
/// ```
pub fn what_to_do_about(entry: &LeftOutJob) -> String {
    match (&entry.place, &entry.id) {
        (LeftOutPlace::Quarantined { location }, _) => format!(
            "the job no longer exists and will not run; look at the copy kept at {location} and add the job again"
        ),
        // `cairn jobs rm` cannot help here: deleting goes through the same read and move
        // that just failed, and damaged state is never deleted.
        (LeftOutPlace::LeftInPlace { at }, Some(id)) => format!(
            "job {id} will not run while it stays; fix what keeps {at} from being read or moved (its permissions, the quarantine folder), or move it out of the job store by hand"
        ),
        (LeftOutPlace::LeftInPlace { at }, None) => {
            format!("no job can have this name; move {at} out of the job store by hand")
        }
        // Nothing is wrong with it: deleting or moving it would lose a newer build's job.
        (LeftOutPlace::NewerFormat { .. }, _) => "nothing is wrong with it: this build leaves it as it is and does not run it; use the newer build of cairn that wrote it (or a later one) to run, change or delete it, and do not delete or move it by hand".to_owned(),
        (_, _) => "look at the job store".to_owned(),
    }
}
