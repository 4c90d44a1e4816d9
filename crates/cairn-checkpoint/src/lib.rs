//! The storage port of cairn: runs, journals, snapshots, the audit log and run-status
//! compare-and-swap.
//!
//! The executor and the resume policy know only this crate. Adapters live in their own
//! crates (`cairn-checkpoint-file`, the embedded default, and `cairn-checkpoint-sled`), so
//! choosing one never compiles the other. `MemoryFactory` keeps runs in memory for the
//! factory's lifetime (for tests and non-durable hosts); `NoopFactory` keeps nothing.
//!
//! With the `conformance` feature, the crate also exports the conformance suite that every
//! adapter and every wrapper runs, and the fault-injecting wrappers of both ports
//! (`fault::FaultyFactory` for runs, `fault::FaultyJobStore` for jobs).
//!
//! # Examples
//!
//! ```
//! use cairn_checkpoint::{CheckpointerFactory, NoopFactory, RunId, RunMeta};
//! use cairn_queue::Timestamp;
//!
//! # async fn demo() -> Result<(), cairn_checkpoint::Error> {
//! let factory = NoopFactory;
//! let meta = RunMeta::new(RunId::new("r1")?, "site", "default", "build it", Timestamp(0));
//! let run = factory.begin(meta).await?;
//! run.append(&[]).await?;
//! run.complete().await?;
//! # Ok(()) }
//! ```

mod audit;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
#[cfg(feature = "conformance")]
pub mod fault;
#[cfg(feature = "conformance")]
mod job_fault;
mod jobs;
mod memory;
mod meta;
mod noop;
mod port;

pub use audit::{AuditAction, AuditRecord};
pub use error::{Error, Result, unknown_event_type};
pub use jobs::{
    InvalidJobId, JobAuditAction, JobAuditRecord, JobId, JobStore, MAX_JOB_ID_LEN, MemoryJobStore,
    StoredJob, UNREAD_VERSION_STEP, VersionConflict, refuse_newer_floor,
};
pub use jobs::{JobListing, LeftOutJob, LeftOutPlace};
pub use memory::{MemoryCheckpointer, MemoryFactory};
pub use meta::{
    MAX_RUN_ID_LEN, META_FORMAT_VERSION, Owner, ProcessStart, RunError, RunFilter, RunId, RunMeta,
    RunStatus, refuse_claim_by_swap,
};
pub use noop::{NoopCheckpointer, NoopFactory};
pub use port::{
    Checkpointer, CheckpointerFactory, Durability, LeftInPlaceRun, Opened, Quarantined,
    QuarantinedRun, Recovered, StatusConflict, TornTail,
};

/// The wall clock as a `Timestamp` (milliseconds since the Unix epoch).
///
/// Adapters and hosts use it; `cairn-queue` itself never reads a clock.
///
/// # Examples
///
/// ```
/// let now = cairn_checkpoint::wall_clock_now();
/// // Milliseconds, not seconds: well past 2020-01-01 (1 577 836 800 000 ms).
/// assert!(now.0 > 1_577_836_800_000);
/// ```
pub fn wall_clock_now() -> cairn_queue::Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    cairn_queue::Timestamp(ms)
}
