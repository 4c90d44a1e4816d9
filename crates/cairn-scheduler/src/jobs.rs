//! `Jobs`: creating, showing, pausing, resuming and deleting jobs (no runner needed).

use std::sync::Arc;

use cairn_checkpoint::{JobAuditAction, JobAuditRecord, JobId, JobStore, LeftOutJob, LeftOutPlace};
use cairn_queue::Timestamp;
use serde_json::json;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::job::{JOB_FORMAT_VERSION, Job, JobStatus, NewJob};
use crate::schedule::Schedule;

/// The longest job name, in bytes: a name is shown on one line of `jobs list` and in every
/// message about the job.
pub const MAX_NAME_BYTES: usize = 1024;

/// How many lost compare-and-swaps an operator's update tolerates before giving up with
/// `Contended` (the operator can try again).
const UPDATE_ATTEMPTS: u32 = 16;

/// How many lost compare-and-swaps recording a run's outcome tolerates. Far more than an
/// operator's update: the run already happened, and giving up loses its outcome (the breaker
/// never sees the failure) and stops `run_until`. An operator looping pause/resume as fast as
/// the disk allows made 16 lost races in a row happen in about one run in 25.
pub(crate) const RECORD_ATTEMPTS: u32 = 256;

/// The operations on jobs that need no runner: what `cairn jobs ...` calls.
///
/// Every change is a compare-and-swap on the job's stored version, retried on a lost race, so
/// an operator's `pause` and a running scheduler's bookkeeping never overwrite each other.
/// Audit records go to the job store's own per-job audit list, after the change committed.
///
/// A store call can fail after its change landed (an I/O error lost the answer). `add`,
/// `delete` and `delete_unreadable` then read the job back, and when the change stands they
/// audit it with `answer_lost: true` and the error in the detail, so the log has no hole,
/// and still return the `Store` error: the store failed, and what it wrote may not be
/// durable. (A delete found gone may also have been another writer's; the record's
/// `answer_lost` says that the log cannot be sure.) `pause` and `resume` read back the same
/// way, as the scheduler does for a run's outcome. The read-back compares the job as stored
/// with the job as written: the store has no lock on a job, so another writer's change
/// between the lost answer and the read-back makes a write that landed look as if it did
/// not (its record is then missing; the error is still returned), and another writer's
/// identical change looks like this one's (the `answer_lost` note says so).
///
/// # Cancel safety
///
/// No operation holds a lock or a lease, so a dropped one leaves nothing to release. Each
/// store call commits on its own, so a dropped operation may have made its change without
/// the audit record that follows it. Whether a store call still lands once its future is
/// dropped depends on the adapter: `MemoryJobStore` finishes each call in its first poll;
/// `FileJobStore` runs each call on a blocking thread, which finishes it after the drop;
/// `SledJobStore` makes the change before it awaits its flush, so a drop during the flush
/// leaves the change made but perhaps not yet durable. Each method says what a retry does.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use cairn_checkpoint::{JobId, MemoryJobStore};
/// use cairn_queue::Timestamp;
/// use cairn_scheduler::{JobStatus, Jobs, ManualClock, NewJob, Schedule};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), Arc::new(ManualClock::new(Timestamp(0))));
/// let id = JobId::new("report")?;
/// let every_minute = Schedule::every(Duration::from_secs(60))?;
/// let job = jobs.add(NewJob::new(id.clone(), "report", every_minute, "report.toml")).await?;
/// assert_eq!(job.next_run_at, Some(Timestamp(60_000)));
/// assert_eq!(jobs.pause(&id).await?.status, JobStatus::Paused);
/// assert_eq!(jobs.resume(&id, false).await?.status, JobStatus::Active);
/// # Ok::<(), cairn_scheduler::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Jobs {
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
}

impl Jobs {
    /// Jobs kept in `store`, with `clock` as the time source.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// // Two handles over one store, as two processes would be: each sees the other's jobs.
    /// let store = MemoryJobStore::new();
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let cli = Jobs::new(Arc::new(store.clone()), clock.clone());
    /// let scheduler_side = Jobs::new(Arc::new(store), clock);
    /// let id = JobId::new("report")?;
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// cli.add(NewJob::new(id.clone(), "report", every, "report.toml")).await?;
    /// assert_eq!(scheduler_side.show(&id).await?.name, "report");
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn new(store: Arc<dyn JobStore>, clock: Arc<dyn Clock>) -> Self {
        Jobs { store, clock }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Creates a job. It is `active` (or `paused` if asked) and due at its schedule's first
    /// time after now; a one-shot job whose time has passed is due at once.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` for a taken id; `InvalidSchedule` for a schedule that does not
    /// validate or never fires after now (for example `0 0 31 2 *`), `InvalidZone` for an
    /// out-of-range zone (both name the job in their `job` field and message), `InvalidJob`
    /// for another bad definition (a name longer than [`MAX_NAME_BYTES`], say); `Store` when
    /// the store fails. When only the `Created` audit record fails to be written, the job
    /// exists already: `Unaudited`. A `Store` error may come after the job was written (an
    /// I/O error lost the store's answer): `add` reads the job back, and when it stands as
    /// written, audits `Created` with `answer_lost: true` and the error in the detail before
    /// it returns the error (the store failed, so the write may not be durable; a retry
    /// fails with `AlreadyExists` if it is).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. Dropped, the job may have been created or not, and a created job may lack
    /// its `Created` audit record; a write in flight may still land after the drop, depending on
    /// the job store (see [`Jobs`]). Retrying is safe: it fails with `AlreadyExists` when the
    /// first try created the job.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Error, JobStatus, Jobs, ManualClock, NewJob, Schedule, Zone};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock);
    /// let id = JobId::new("report")?;
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// let job = jobs.add(NewJob::new(id.clone(), "report", every.clone(), "report.toml")).await?;
    /// assert_eq!((job.status, job.next_run_at), (JobStatus::Active, Some(Timestamp(60_000))));
    ///
    /// // The id is taken.
    /// let again = jobs.add(NewJob::new(id, "report", every, "report.toml")).await;
    /// assert!(matches!(again, Err(Error::AlreadyExists { .. })));
    /// // February has no 31st: a job that could never run is refused, naming the job.
    /// let never = Schedule::cron("0 0 31 2 *", Zone::Utc)?;
    /// let refused = jobs.add(NewJob::new(JobId::new("never")?, "never", never, "x.toml")).await;
    /// assert!(matches!(refused, Err(Error::InvalidSchedule { job: Some(_), .. })));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn add(&self, new: NewJob) -> Result<Job> {
        new.schedule
            .validate_new()
            .map_err(|err| err.for_job(&new.id))?;
        if new.max_consecutive_errors == 0 {
            return Err(Error::InvalidJob {
                id: new.id,
                reason: "max_consecutive_errors must be at least 1".to_owned(),
            });
        }
        if new.name.len() > MAX_NAME_BYTES {
            return Err(Error::InvalidJob {
                id: new.id,
                reason: format!(
                    "its name is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
                    new.name.len()
                ),
            });
        }
        if new.delete_after_run && !matches!(new.schedule, Schedule::Once { .. }) {
            return Err(Error::InvalidJob {
                id: new.id,
                reason: "delete_after_run is only for one-shot jobs".to_owned(),
            });
        }
        let now = self.clock.now();
        let mut job = Job {
            format_version: JOB_FORMAT_VERSION,
            id: new.id,
            name: new.name,
            schedule: new.schedule,
            workflow: new.workflow,
            input: new.input,
            status: if new.paused {
                JobStatus::Paused
            } else {
                JobStatus::Active
            },
            consecutive_errors: 0,
            max_consecutive_errors: new.max_consecutive_errors,
            next_run_at: None,
            last_run_at: None,
            last_error: None,
            delete_after_run: new.delete_after_run,
            created_at: now,
            store_failed_runs: Vec::new(),
            claimed_run: None,
            version: 0,
            unknown_fields: serde_json::Map::new(),
        };
        let due = first_due(&job, now).map_err(|err| err.for_job(&job.id))?;
        if due.is_none() {
            // An active job that can never run would look healthy and do nothing, forever:
            // `0 0 31 2 *`, a year field in the past, or an interval too long to add to now.
            return Err(Error::InvalidSchedule {
                job: Some(job.id),
                expression: job.schedule.to_string(),
                reason: "it never fires after now (no time matches it)".to_owned(),
            });
        }
        if !new.paused {
            job.next_run_at = due;
        }
        let created = |detail| {
            JobAuditRecord::new(now, job.id.clone(), JobAuditAction::Created, "job created")
                .with_detail(detail)
        };
        let detail = json!({ "schedule": job.schedule.to_string(), "workflow": job.workflow });
        match self.store.put(&job.id, None, &job.to_document()).await {
            Ok(Ok(version)) => job.version = version,
            Ok(Err(_)) => return Err(Error::AlreadyExists { id: job.id }),
            Err(err) => {
                let err = Error::from(err);
                // The answer may be lost after the job was written: if it stands, the
                // log says so, and the error is still returned (the store failed).
                if self.stands(&job, &err).await {
                    self.audit(created(lost_answer(detail, &err))).await?;
                }
                return Err(err);
            }
        }
        self.audit(created(detail)).await?;
        Ok(job)
    }

    /// The job `id`.
    ///
    /// # Errors
    ///
    /// `NotFound`, `BadDocument`, or `Store`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads, so it can be dropped and called again. (A store that finds the
    /// job damaged moves it aside as it reads, see `JobStore::get`; a drop does not undo that.)
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Error, Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock);
    /// let id = JobId::new("report")?;
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// jobs.add(NewJob::new(id.clone(), "report", every, "report.toml")).await?;
    /// assert_eq!(jobs.show(&id).await?.workflow, "report.toml");
    /// let unknown = jobs.show(&JobId::new("nope")?).await;
    /// assert!(matches!(unknown, Err(Error::NotFound { .. })));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn show(&self, id: &JobId) -> Result<Job> {
        match self.store.get(id).await? {
            Some(stored) => Job::from_stored(stored),
            None => Err(Error::NotFound { id: id.clone() }),
        }
    }

    /// Every job, ordered by id.
    ///
    /// # Errors
    ///
    /// `BadDocument` for the first job whose document does not decode (see
    /// [`Jobs::list_readable`] for a listing that reports it and goes on), or `Store`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Jobs::show`]: it only reads. A damaged job the store moved aside during
    /// the listing stays moved, and audited as `Quarantined`, if the listing is then dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock);
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// for id in ["zeta", "alpha"] {
    ///     jobs.add(NewJob::new(JobId::new(id)?, id, every.clone(), "wf.toml")).await?;
    /// }
    /// let listed = jobs.list().await?;
    /// let ids: Vec<&str> = listed.iter().map(|job| job.id.as_str()).collect();
    /// assert_eq!(ids, ["alpha", "zeta"]);
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn list(&self) -> Result<Vec<Job>> {
        self.store
            .list()
            .await?
            .into_iter()
            .map(Job::from_stored)
            .collect()
    }

    /// Every job that decodes, ordered by id; apart, the jobs whose stored document does not
    /// decode or no longer validates (with the reason), as `tick` sees them; and the stored
    /// entries the job store itself left out (quarantined by this listing, or left in place).
    /// Use this where one damaged job must not hide the others (a listing, a startup count).
    ///
    /// # Errors
    ///
    /// `Store` when the store fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Jobs::list`], with one loss: a damaged job this listing moved aside
    /// is reported in `left_out` by this listing only. Dropped, that report is lost (later
    /// listings do not repeat it), but the job's `Quarantined` audit record stays, and
    /// [`Jobs::last_damage`] finds it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, JobStore, LeftOutPlace, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = Arc::new(MemoryJobStore::new());
    /// let jobs = Jobs::new(store.clone(), Arc::new(ManualClock::new(Timestamp(0))));
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// jobs.add(NewJob::new(JobId::new("good")?, "good", every.clone(), "wf.toml")).await?;
    /// jobs.add(NewJob::new(JobId::new("damaged")?, "damaged", every, "wf.toml")).await?;
    /// store.damage_job(&JobId::new("damaged")?);
    /// // A document written by something else.
    /// store.put(&JobId::new("odd")?, None, &serde_json::json!({"hello": 1})).await?.unwrap();
    /// let listed = jobs.list_readable().await?;
    /// assert_eq!(listed.jobs.len(), 1);
    /// assert_eq!(listed.unreadable[0].0.as_str(), "odd");
    /// // The listing that moved the damaged job aside reports it (later ones do not).
    /// assert_eq!(listed.left_out[0].name, "damaged");
    /// assert!(matches!(listed.left_out[0].place, LeftOutPlace::Quarantined { .. }));
    /// // The strict `list` stops at the undecodable job.
    /// assert!(jobs.list().await.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn list_readable(&self) -> Result<ReadableJobs> {
        let listing = self.store.listing().await?;
        let mut readable = ReadableJobs {
            left_out: listing.left_out,
            ..ReadableJobs::default()
        };
        for stored in listing.jobs {
            let id = stored.id.clone();
            match Job::from_stored(stored) {
                Ok(job) => readable.jobs.push(job),
                Err(Error::NewerFormat { detail, .. }) => {
                    readable.newer.push(newer_document(&id, detail));
                }
                Err(err) => readable.unreadable.push((id, err.to_string())),
            }
        }
        Ok(readable)
    }

    /// Pauses an active job: it stops running until `resume`.
    ///
    /// # Errors
    ///
    /// `NotActive` (nothing changed) for a paused, failed or completed job; `NotFound`;
    /// `Store`; `Contended`; `Unaudited` when the job was paused but its `Paused` record
    /// could not be written. A `Store` error may come after the job was written (its answer
    /// was lost): the job is read back, and when it stands paused, `Paused` is audited with
    /// `answer_lost: true` and the error before the error is returned.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. Dropped, the job may be paused already without its `Paused` audit record
    /// (a write in flight may still land after the drop, depending on the job store, see
    /// [`Jobs`]). Retrying is safe: it fails with `NotActive` when the job is paused already.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Error, JobStatus, Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock);
    /// let id = JobId::new("report")?;
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// jobs.add(NewJob::new(id.clone(), "report", every, "report.toml")).await?;
    /// let paused = jobs.pause(&id).await?;
    /// assert_eq!((paused.status, paused.next_run_at), (JobStatus::Paused, None));
    /// // Only an active job can be paused; nothing changes.
    /// let again = jobs.pause(&id).await;
    /// assert!(matches!(again, Err(Error::NotActive { status: JobStatus::Paused, .. })));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn pause(&self, id: &JobId) -> Result<Job> {
        let (_, job, lost) = self
            .update_reading_back(id, |job| {
                if job.status != JobStatus::Active {
                    return Err(Error::NotActive {
                        id: job.id.clone(),
                        status: job.status,
                    });
                }
                job.status = JobStatus::Paused;
                job.next_run_at = None;
                Ok(())
            })
            .await?;
        let mut record = JobAuditRecord::new(
            self.clock.now(),
            id.clone(),
            JobAuditAction::Paused,
            "job paused",
        );
        if let Some(err) = &lost {
            record = record.with_detail(lost_answer(serde_json::Value::Null, err));
        }
        self.audit(record).await?;
        lost.map_or(Ok(job), Err)
    }

    /// Resumes a job.
    ///
    /// - `paused` → `active`, with or without `force` (the same either way); its error count
    ///   is kept, so pausing never launders a failing job.
    /// - `failed` (circuit breaker tripped) → `active` only with `force`: a revive. It resets
    ///   `consecutive_errors` to 0, is audited as `Revived` and emitted as `job_revived`.
    ///   A one-shot job the scheduler set `failed` because a run of it was claimed and never
    ///   recorded ([`crate::ClaimedRun`]) is revived the same way, and `force` also clears
    ///   that claim, so the job runs again: `force` says a person checked that run (a
    ///   paused job resumed without `force` keeps the claim, and is held again).
    /// - `completed` (a one-shot job that ran, or a recurring job whose schedule ran out)
    ///   → never, not even with `force`.
    /// - `active` → nothing to do.
    ///
    /// A resume recomputes `next_run_at` from the schedule (the first time after now; a
    /// one-shot job whose time passed is due at once).
    ///
    /// # Errors
    ///
    /// Nothing is changed on these errors: `AlreadyActive`, `NeedsForce` (a failed job
    /// without `force`; the message names the force option), `Completed`, `InvalidSchedule`
    /// (its schedule has no time left, for example a past year field), `NotFound`, `Store`,
    /// `Contended`. `Unaudited` says the opposite: the job was resumed (or revived, and
    /// `job_revived` emitted), but its `Resumed` or `Revived` record could not be written.
    /// A `Store` error may come after the job was written (its answer was lost): the job is
    /// read back, and when it stands as written, the resume is audited (and a revive
    /// emitted) with `answer_lost: true` and the error in the detail before the error is
    /// returned.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. Dropped, the job may be active again without its `Resumed` or `Revived`
    /// audit record (and, for a revive, without the `job_revived` event); a write in flight may
    /// still land after the drop, depending on the job store (see [`Jobs`]). Retrying is safe: it
    /// fails with `AlreadyActive` when the first try went through.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Error, JobStatus, Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock.clone());
    /// let id = JobId::new("report")?;
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// jobs.add(NewJob::new(id.clone(), "report", every, "report.toml")).await?;
    /// jobs.pause(&id).await?;
    /// clock.advance(Duration::from_secs(150));
    /// // Due at the first tick of its grid after now, not at the ticks missed while paused.
    /// let resumed = jobs.resume(&id, false).await?;
    /// assert_eq!(resumed.status, JobStatus::Active);
    /// assert_eq!(resumed.next_run_at, Some(Timestamp(180_000)));
    /// assert!(matches!(jobs.resume(&id, false).await, Err(Error::AlreadyActive { .. })));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn resume(&self, id: &JobId, force: bool) -> Result<Job> {
        let now = self.clock.now();
        let (before, job, lost) = self
            .update_reading_back(id, |job| {
                match job.status {
                    JobStatus::Active => return Err(Error::AlreadyActive { id: job.id.clone() }),
                    JobStatus::Completed => return Err(Error::Completed { id: job.id.clone() }),
                    JobStatus::Failed if !force => {
                        return Err(Error::NeedsForce {
                            id: job.id.clone(),
                            consecutive_errors: job.consecutive_errors,
                            last_error: job.last_error.clone().unwrap_or_default(),
                        });
                    }
                    JobStatus::Failed => job.consecutive_errors = 0,
                    JobStatus::Paused => {}
                }
                if force {
                    // A person decided about the run claimed and never recorded (see
                    // `ClaimedRun`); without force, the scheduler's next look holds the job
                    // again.
                    job.claimed_run = None;
                }
                job.status = JobStatus::Active;
                job.next_run_at = first_due(job, now).map_err(|err| err.for_job(&job.id))?;
                if job.next_run_at.is_none() {
                    // As in `add`: an active job that can never run would look healthy.
                    return Err(Error::InvalidSchedule {
                        job: Some(job.id.clone()),
                        expression: job.schedule.to_string(),
                        reason: "it never fires after now (no time of its schedule is left)"
                            .to_owned(),
                    });
                }
                Ok(())
            })
            .await?;
        let next = job.next_run_at.map(|t| t.0);
        let noted = |detail| match &lost {
            Some(err) => lost_answer(detail, err),
            None => detail,
        };
        if before.status == JobStatus::Failed {
            // Emitted before the record is written, so a revive that stands is always heard
            // of, even when its record cannot be written (`Unaudited`).
            cairn_telemetry::emit::job_revived(id.as_str(), true);
            self.audit(
                JobAuditRecord::new(
                    now,
                    id.clone(),
                    JobAuditAction::Revived,
                    "failed job revived with force; its error count was reset",
                )
                .with_detail(noted(json!({
                    "forced": true,
                    "previous_consecutive_errors": before.consecutive_errors,
                    "unrecorded_run": before.claimed_run.is_some(),
                    "last_error": before.last_error,
                    "next_run_at": next,
                }))),
            )
            .await?;
        } else {
            self.audit(
                JobAuditRecord::new(
                    now,
                    id.clone(),
                    JobAuditAction::Resumed,
                    "paused job resumed",
                )
                .with_detail(noted(json!({ "forced": force, "next_run_at": next }))),
            )
            .await?;
        }
        lost.map_or(Ok(job), Err)
    }

    /// Deletes a job (in any status). Its audit records are kept.
    ///
    /// # Errors
    ///
    /// `NotFound`, `BadDocument` for a job whose document does not decode (see
    /// [`Jobs::delete_unreadable`]), `Store`, `Contended`; `Unaudited` when the job was
    /// deleted but its `Deleted` record could not be written. When the delete's answer is
    /// lost (a `Store` error) and a read-back finds the job gone, `Deleted` is audited with
    /// `answer_lost: true` and the error before the error is returned.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. Dropped, the job may be deleted already without its `Deleted` audit record
    /// (a delete in flight may still land after the drop, depending on the job store, see
    /// [`Jobs`]). Retrying is safe: it fails with `NotFound` when the job is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobAuditAction, JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Error, Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock);
    /// let id = JobId::new("report")?;
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// jobs.add(NewJob::new(id.clone(), "report", every, "report.toml")).await?;
    /// assert_eq!(jobs.delete(&id).await?.name, "report");
    /// assert!(matches!(jobs.show(&id).await, Err(Error::NotFound { .. })));
    /// // Its audit records are kept.
    /// let last = jobs.audit_log(&id).await?.pop().expect("records");
    /// assert_eq!(last.action, JobAuditAction::Deleted);
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn delete(&self, id: &JobId) -> Result<Job> {
        self.delete_with_reason(id, "job deleted").await
    }

    /// Deletes job `id` whose stored document does not decode (or no longer validates): the
    /// operator's way out for the job `show` and `delete` report as `BadDocument`. A job that
    /// decodes is refused (`NotDamaged`): `delete` is for it.
    ///
    /// The document is never lost: before the delete, a `Quarantined` audit record is made
    /// durable holding the stored document whole (detail `document`, with `version` and
    /// `reason`), and a `Deleted` record follows the delete. If another writer changes the
    /// job in between, the delete loses its compare-and-swap and is tried again from the
    /// start (the earlier record stays, as a true copy of what was stored then).
    ///
    /// # Errors
    ///
    /// `NotFound`, `NotDamaged` (nothing changed), `Store`, `Contended`; `Unaudited` when the
    /// job was deleted but its `Deleted` record could not be written (the `Quarantined` one,
    /// with the document, was). A `Store` error of the delete itself whose answer was lost
    /// (a read-back finds the job gone) is audited as `Deleted` with `answer_lost: true`
    /// before it is returned.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, but the document is never lost: the delete is only sent once the
    /// `Quarantined` record holding the document is durable. Dropped, the job may be deleted
    /// without its `Deleted` record (a call in flight may still land after the drop,
    /// depending on the job store, see [`Jobs`]). Retrying is safe: it fails with `NotFound`
    /// when the job is gone, and otherwise writes a second `Quarantined` record before the
    /// delete.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::{JobAuditAction, JobId, JobStore, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Error, Jobs, ManualClock};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = Arc::new(MemoryJobStore::new());
    /// let jobs = Jobs::new(store.clone(), Arc::new(ManualClock::new(Timestamp(0))));
    /// let id = JobId::new("odd")?;
    /// let document = serde_json::json!({"hello": 1});
    /// store.put(&id, None, &document).await?.unwrap();
    /// assert!(matches!(jobs.delete(&id).await, Err(Error::BadDocument { .. })));
    /// let gone = jobs.delete_unreadable(&id).await?;
    /// assert_eq!(gone.document, document);
    /// assert!(store.get(&id).await?.is_none());
    /// let audit = jobs.audit_log(&id).await?;
    /// assert_eq!(audit[0].action, JobAuditAction::Quarantined);
    /// assert_eq!(audit[0].detail["document"], document);
    /// assert_eq!(audit[1].action, JobAuditAction::Deleted);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn delete_unreadable(&self, id: &JobId) -> Result<UnreadableJob> {
        for attempt in 0..UPDATE_ATTEMPTS {
            if attempt > 0 {
                tokio::task::yield_now().await;
            }
            let Some(stored) = self.store.get(id).await? else {
                return Err(Error::NotFound { id: id.clone() });
            };
            let (version, document) = (stored.version, stored.document.clone());
            let reason = match Job::from_stored(stored) {
                Ok(_) => return Err(Error::NotDamaged { id: id.clone() }),
                Err(Error::BadDocument { detail, .. }) => detail,
                Err(other) => return Err(other),
            };
            // Kept first and durably: once the delete below happens, this record is the
            // only copy of the document. Nothing has changed yet, so a failure is `Store`.
            let kept = JobAuditRecord::new(
                    self.clock.now(),
                    id.clone(),
                    JobAuditAction::Quarantined,
                    format!(
                        "job {id}: its stored document (version {version}) does not decode ({reason}); the operator deletes it, and this record keeps the document whole"
                    ),
                )
                .with_detail(json!({
                    "kept_in": "audit",
                    "version": version,
                    "reason": reason,
                    "document": document,
                }));
            self.store.append_audit(&kept).await?;
            let deleted = |detail| {
                JobAuditRecord::new(
                    self.clock.now(),
                    id.clone(),
                    JobAuditAction::Deleted,
                    "undecodable job deleted by the operator; its document is in the quarantined record before this one",
                )
                .with_detail(with_fields(detail, json!({ "version": version, "undecodable": true })))
            };
            if self.delete_or_audit_lost(id, version, deleted).await? {
                self.audit(deleted(serde_json::Value::Null)).await?;
                return Ok(UnreadableJob {
                    id: id.clone(),
                    version,
                    reason,
                    document,
                });
            }
        }
        Err(Error::Contended {
            id: id.clone(),
            attempts: UPDATE_ATTEMPTS,
        })
    }

    pub(crate) async fn delete_with_reason(&self, id: &JobId, reason: &str) -> Result<Job> {
        for _ in 0..UPDATE_ATTEMPTS {
            let job = self.show(id).await?;
            if self.delete_exactly(&job, reason).await? {
                return Ok(job);
            }
        }
        Err(Error::Contended {
            id: id.clone(),
            attempts: UPDATE_ATTEMPTS,
        })
    }

    /// Deletes `job` at its version, audited as `Deleted` with `reason`; `Ok(false)`, with
    /// nothing deleted, when the stored job has another version (it changed, or was deleted
    /// and maybe added again). Never tried again: the caller decides whether the job it
    /// meant is still the one stored.
    pub(crate) async fn delete_exactly(&self, job: &Job, reason: &str) -> Result<bool> {
        let deleted = |detail| {
            JobAuditRecord::new(
                self.clock.now(),
                job.id.clone(),
                JobAuditAction::Deleted,
                reason,
            )
            .with_detail(detail)
        };
        if !self
            .delete_or_audit_lost(&job.id, job.version, deleted)
            .await?
        {
            return Ok(false);
        }
        self.audit(deleted(serde_json::Value::Null)).await?;
        Ok(true)
    }

    /// Deletes job `id` at `expected`: `Ok(true)` when deleted, `Ok(false)` on a version
    /// conflict. When the store fails, and the job is gone on a read-back (the delete
    /// landed, its answer was lost), `record` is audited with `answer_lost` in its detail
    /// before the store error is returned, so the log has no hole where the job went.
    async fn delete_or_audit_lost(
        &self,
        id: &JobId,
        expected: u64,
        record: impl Fn(serde_json::Value) -> JobAuditRecord,
    ) -> Result<bool> {
        match self.store.delete(id, expected).await {
            Ok(deleted) => Ok(deleted.is_ok()),
            Err(err) => {
                let err = Error::from(err);
                let gone = matches!(err, Error::Store { .. })
                    && matches!(self.store.get(id).await, Ok(None));
                if gone {
                    self.audit(record(lost_answer(json!({ "version": expected }), &err)))
                        .await?;
                }
                Err(err)
            }
        }
    }

    /// Whether `job` is stored as written (its version aside) after store error `err` of
    /// the write: the write landed and only its answer was lost. `false` when it was not
    /// written, or cannot be read back, or `err` is not a plain store failure.
    async fn stands(&self, job: &Job, err: &Error) -> bool {
        let damaged = matches!(
            err,
            Error::Store {
                source: cairn_checkpoint::Error::Encoding { .. },
                ..
            }
        );
        if damaged || !matches!(err, Error::Store { .. }) {
            return false;
        }
        match self.show(&job.id).await {
            Ok(current) => {
                let mut written = job.clone();
                written.version = current.version;
                current == written
            }
            Err(_) => false,
        }
    }

    /// The job's audit records, oldest first (kept after the job is deleted).
    ///
    /// # Errors
    ///
    /// `Store`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads, so it can be dropped and called again.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobAuditAction, JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock);
    /// let id = JobId::new("report")?;
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// jobs.add(NewJob::new(id.clone(), "report", every, "report.toml")).await?;
    /// jobs.pause(&id).await?;
    /// let actions: Vec<_> = jobs.audit_log(&id).await?.into_iter().map(|r| r.action).collect();
    /// assert_eq!(actions, [JobAuditAction::Created, JobAuditAction::Paused]);
    /// // An unknown job has none.
    /// assert!(jobs.audit_log(&JobId::new("nope")?).await?.is_empty());
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn audit_log(&self, id: &JobId) -> Result<Vec<JobAuditRecord>> {
        Ok(self.store.read_audit(id).await?)
    }

    /// Why job `id` is gone or cannot be read, when its store moved it aside (or left it in
    /// place) as damaged: its audit log's last record of the job's existence (created,
    /// deleted, quarantined, left in place) is a `Quarantined` or `LeftInPlace` one. `None`
    /// when it was never damaged, was created again or deleted since, or the record does
    /// not name where the entry is.
    ///
    /// # Errors
    ///
    /// `Store` when the audit log cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads the audit log, so it can be dropped and called again.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::{
    ///     JobAuditAction, JobAuditRecord, JobId, JobStore, LeftOutPlace, MemoryJobStore,
    /// };
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Jobs, ManualClock};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = Arc::new(MemoryJobStore::new());
    /// let id = JobId::new("nightly")?;
    /// let reason = "fails its checksum";
    /// let action = JobAuditAction::Quarantined;
    /// let moved = JobAuditRecord::new(Timestamp(5), id.clone(), action, reason)
    ///     .with_detail(serde_json::json!({
    ///         "location": "jobs/quarantine/nightly-5.json",
    ///         "reason": reason,
    ///     }));
    /// store.append_audit(&moved).await?;
    /// let jobs = Jobs::new(store, Arc::new(ManualClock::new(Timestamp(9))));
    /// let damage = jobs.last_damage(&id).await?.expect("quarantined");
    /// assert_eq!(damage.at, Timestamp(5));
    /// assert!(matches!(damage.entry.place, LeftOutPlace::Quarantined { .. }));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn last_damage(&self, id: &JobId) -> Result<Option<JobDamage>> {
        let records = self.audit_log(id).await?;
        let Some(record) = records.iter().rev().find(|record| {
            matches!(
                record.action,
                JobAuditAction::Created
                    | JobAuditAction::Deleted
                    | JobAuditAction::Quarantined
                    | JobAuditAction::LeftInPlace
            )
        }) else {
            return Ok(None);
        };
        let text = |key: &str| {
            record
                .detail
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let place = match (record.action, text("location"), text("path")) {
            (JobAuditAction::Quarantined, Some(location), _) => {
                LeftOutPlace::Quarantined { location }
            }
            (JobAuditAction::LeftInPlace, _, Some(at)) => LeftOutPlace::LeftInPlace { at },
            _ => return Ok(None),
        };
        Ok(Some(JobDamage {
            at: record.at,
            entry: LeftOutJob {
                id: Some(id.clone()),
                name: id.to_string(),
                reason: text("reason").unwrap_or_else(|| record.message.clone()),
                place,
            },
        }))
    }

    /// Appends the audit record of a change to job `record.job_id` that is stored already.
    /// A failure is `Unaudited`, not `Store`: the change stands, and a caller told only that
    /// the store failed would take it for undone (and a retry finds nothing left to do).
    pub(crate) async fn audit(&self, record: JobAuditRecord) -> Result<()> {
        let (id, action) = (record.job_id.clone(), record.action);
        self.store
            .append_audit(&record)
            .await
            .map_err(|source| Error::Unaudited { id, action, source })
    }

    /// Reads job `id`, applies `change` and writes it back if nobody changed it meanwhile,
    /// retrying on a lost race. Returns the job before and after. An error from `change`
    /// aborts with nothing written.
    pub(crate) async fn update(
        &self,
        id: &JobId,
        change: impl FnMut(&mut Job) -> Result<()>,
    ) -> Result<(Job, Job)> {
        self.update_with_attempts(id, UPDATE_ATTEMPTS, change).await
    }

    /// As `update`, reading the job back when the store fails: when the write landed
    /// though its answer was lost (the job stands as written), returns the pair with the
    /// store's error, for the caller to audit the change (noting the lost answer) and then
    /// return the error. Any other error is returned as it is.
    async fn update_reading_back(
        &self,
        id: &JobId,
        mut change: impl FnMut(&mut Job) -> Result<()>,
    ) -> Result<(Job, Job, Option<Error>)> {
        let mut attempted = None;
        let updated = self
            .update(id, |job| {
                let read = job.clone();
                change(job)?;
                attempted = Some((read, job.clone()));
                Ok(())
            })
            .await;
        match (updated, attempted) {
            (Ok((before, after)), _) => Ok((before, after, None)),
            (Err(err), Some((before, after))) if self.stands(&after, &err).await => {
                Ok((before, after, Some(err)))
            }
            (Err(err), _) => Err(err),
        }
    }

    /// As `update`, giving up after `attempts` lost races.
    pub(crate) async fn update_with_attempts(
        &self,
        id: &JobId,
        attempts: u32,
        mut change: impl FnMut(&mut Job) -> Result<()>,
    ) -> Result<(Job, Job)> {
        for attempt in 0..attempts {
            if attempt > 0 {
                // Let the writer that won the race finish before reading again.
                tokio::task::yield_now().await;
            }
            let before = self.show(id).await?;
            let mut job = before.clone();
            change(&mut job)?;
            if let Ok(version) = self
                .store
                .put(id, Some(before.version), &job.to_document())
                .await?
            {
                job.version = version;
                return Ok((before, job));
            }
        }
        Err(Error::Contended {
            id: id.clone(),
            attempts,
        })
    }
}

/// What `Jobs::list_readable` found: the jobs that run, and the ones that do not, with why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadableJobs {
    /// Every job that decodes, ordered by id.
    pub jobs: Vec<Job>,
    /// Jobs whose stored document does not decode or no longer validates, with the reason
    /// (`cairn jobs rm` deletes one, keeping its document in the audit log).
    pub unreadable: Vec<(JobId, String)>,
    /// Jobs whose stored document a newer build wrote (its format version is above
    /// [`crate::JOB_FORMAT_VERSION`]), each as a [`LeftOutPlace::NewerFormat`] entry: this
    /// build leaves them as they are and never runs, rewrites or deletes them. (Jobs the
    /// store itself leaves for a newer build are in `left_out`, with the same place.)
    pub newer: Vec<LeftOutJob>,
    /// Stored entries the job store left out: damaged jobs it moved aside during this
    /// listing, and entries it could neither read nor move (reported while they stay).
    pub left_out: Vec<LeftOutJob>,
}

/// The left-out entry of job `id`, whose stored document a newer build wrote: the store
/// listed it, so it stays where the store keeps it.
pub(crate) fn newer_document(id: &JobId, detail: String) -> LeftOutJob {
    LeftOutJob {
        id: Some(id.clone()),
        name: id.to_string(),
        reason: format!("it was written by a newer cairn build ({detail})"),
        place: LeftOutPlace::NewerFormat {
            at: format!("the job store, as job {id}"),
        },
    }
}

/// A job its store moved aside (or left in place) as damaged, from its audit log
/// ([`Jobs::last_damage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDamage {
    /// When the store recorded it.
    pub at: Timestamp,
    /// What was left out, why, and where it is now.
    pub entry: LeftOutJob,
}

/// A job whose stored document did not decode, as `Jobs::delete_unreadable` removed it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableJob {
    /// The job.
    pub id: JobId,
    /// The store's version of the document that was deleted.
    pub version: u64,
    /// Why it did not decode.
    pub reason: String,
    /// The stored document, whole (also kept in the job's audit log).
    pub document: serde_json::Value,
}

/// `detail` (an object, or null) with `answer_lost: true` and the store's error added: the
/// audit detail of a change that landed though the store's answer to it was lost.
fn lost_answer(detail: serde_json::Value, err: &Error) -> serde_json::Value {
    with_fields(
        detail,
        json!({ "answer_lost": true, "error": err.to_string() }),
    )
}

/// `detail` (an object, or null) with the fields of `extra` (an object) added.
fn with_fields(detail: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut fields = match detail {
        serde_json::Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    if let serde_json::Value::Object(extra) = extra {
        fields.extend(extra);
    }
    serde_json::Value::Object(fields)
}

/// When a job that (re)starts now is first due.
pub(crate) fn first_due(job: &Job, now: Timestamp) -> Result<Option<Timestamp>> {
    match job.schedule {
        Schedule::Once { at } => Ok(Some(at.max(now))),
        ref schedule => schedule.next_after(job.created_at, now),
    }
}
