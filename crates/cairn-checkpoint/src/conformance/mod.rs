//! The adapter conformance suite: public async cases that every adapter and wrapper runs.
//!
//! An adapter's test file implements [`ConformanceHarness`] (one fresh storage per value)
//! and expands [`conformance_tests!`](crate::conformance_tests) once; every case becomes its
//! own `#[tokio::test]`. Cases that need to damage stored bytes ask the harness, which may
//! answer [`Damage::Unsupported`]; the case then returns [`CaseResult::Skipped`] so a skip
//! is visible and can be asserted on. A failing case panics with a message naming what broke.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use cairn_checkpoint::conformance::{self, CaseResult, ConformanceHarness, Damage};
//! use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId};
//!
//! struct Memory(MemoryFactory);
//! impl ConformanceHarness for Memory {
//!     fn factory(&self) -> Arc<dyn CheckpointerFactory> {
//!         Arc::new(self.0.clone())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let harness = Memory(MemoryFactory::new());
//! assert_eq!(conformance::round_trip(&harness).await, CaseResult::Passed);
//! assert!(matches!(conformance::torn_tail(&harness).await, CaseResult::Skipped(_)));
//! # });
//! ```

mod bounds;
mod cancel;
mod cases;
mod epoch_swap;
pub mod jobs;
mod reads;
mod removal;

use std::sync::Arc;

use crate::meta::RunId;
use crate::port::CheckpointerFactory;

pub use bounds::*;
pub use cancel::*;
pub use cases::*;
pub use epoch_swap::*;
pub use reads::*;
pub use removal::*;

/// What a conformance case concluded. Failures panic instead, so the test harness reports
/// them with their message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseResult {
    /// Every check held.
    Passed,
    /// The adapter declared it cannot do what the case needs; the reason says what.
    Skipped(String),
}

/// The answer of a damage hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The damage was done. `offset` is where the first bad record now starts, when the
    /// harness knows it (the corruption case then checks the error names that offset).
    Applied {
        /// Byte offset (or record index) of the first damaged record.
        offset: Option<u64>,
    },
    /// This storage cannot be damaged that way; the case is skipped with this reason.
    Unsupported(String),
}

/// Storage under test, as the suite sees it. One value is one fresh, empty storage.
///
/// Damage hooks are called only while no writer holds the run. Their defaults answer
/// `Unsupported`.
pub trait ConformanceHarness: Send + Sync + 'static {
    /// A NEW factory over this harness's storage. Calling it twice simulates two processes
    /// (or a restart) over the same storage: nothing may be shared but the storage.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::conformance::ConformanceHarness;
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// struct Memory(MemoryFactory);
    /// impl ConformanceHarness for Memory {
    ///     fn factory(&self) -> Arc<dyn CheckpointerFactory> {
    ///         // A clone shares only the store, as a second process would.
    ///         Arc::new(self.0.clone())
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let harness = Memory(MemoryFactory::new());
    /// let (first, second) = (harness.factory(), harness.factory());
    /// let id = RunId::new("r1")?;
    /// first.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// assert!(second.load_meta(&id).await?.is_some());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    fn factory(&self) -> Arc<dyn CheckpointerFactory>;

    /// Tears the run's last journal record, as a crash in the middle of a write would.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::conformance::{self, CaseResult, ConformanceHarness, Damage};
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId};
    ///
    /// struct Memory(MemoryFactory);
    /// impl ConformanceHarness for Memory {
    ///     fn factory(&self) -> Arc<dyn CheckpointerFactory> {
    ///         Arc::new(self.0.clone())
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let harness = Memory(MemoryFactory::new());
    /// // Memory has no bytes to tear, so it keeps the default and the case is skipped.
    /// let run_id = RunId::new("r1").expect("a valid id");
    /// assert!(matches!(harness.tear_last_record(&run_id), Damage::Unsupported(_)));
    /// assert!(matches!(conformance::torn_tail(&harness).await, CaseResult::Skipped(_)));
    /// # });
    /// ```
    fn tear_last_record(&self, run_id: &RunId) -> Damage {
        let _ = run_id;
        Damage::Unsupported("the harness cannot tear a journal record".to_owned())
    }

    /// Damages a journal record that is followed by at least one good record.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::conformance::{self, CaseResult, ConformanceHarness, Damage};
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId};
    ///
    /// struct Memory(MemoryFactory);
    /// impl ConformanceHarness for Memory {
    ///     fn factory(&self) -> Arc<dyn CheckpointerFactory> {
    ///         Arc::new(self.0.clone())
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let harness = Memory(MemoryFactory::new());
    /// let run_id = RunId::new("r1").expect("a valid id");
    /// assert!(matches!(harness.corrupt_middle_record(&run_id), Damage::Unsupported(_)));
    /// // The skip names what the harness could not do.
    /// let case = conformance::corruption_in_the_middle(&harness).await;
    /// let CaseResult::Skipped(reason) = case else {
    ///     panic!("a harness that cannot corrupt a record skips the case");
    /// };
    /// assert!(reason.contains("corrupt"));
    /// # });
    /// ```
    fn corrupt_middle_record(&self, run_id: &RunId) -> Damage {
        let _ = run_id;
        Damage::Unsupported("the harness cannot corrupt a journal record".to_owned())
    }

    /// Rewrites the run's stored metadata with an older format version that this build does
    /// not read (0, say).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::conformance::{self, CaseResult, ConformanceHarness, Damage};
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId};
    ///
    /// struct Memory(MemoryFactory);
    /// impl ConformanceHarness for Memory {
    ///     fn factory(&self) -> Arc<dyn CheckpointerFactory> {
    ///         Arc::new(self.0.clone())
    ///     }
    ///     fn plant_version_mismatch(&self, run_id: &RunId) -> Damage {
    ///         let Some(mut meta) = self.0.stored_meta(run_id) else {
    ///             return Damage::Unsupported(format!("run {run_id} is not stored"));
    ///         };
    ///         // Version 0 was never written by any build, so no build reads it.
    ///         meta.format_version = 0;
    ///         self.0.plant_meta(run_id, meta);
    ///         Damage::Applied { offset: None }
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let harness = Memory(MemoryFactory::new());
    /// assert_eq!(conformance::version_mismatch(&harness).await, CaseResult::Passed);
    /// # });
    /// ```
    fn plant_version_mismatch(&self, run_id: &RunId) -> Damage {
        let _ = run_id;
        Damage::Unsupported("the harness cannot plant a wrong format version".to_owned())
    }

    /// Rewrites the run's stored metadata with a format version above this build's, as a
    /// newer build would write it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::conformance::{self, CaseResult, ConformanceHarness, Damage};
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId};
    ///
    /// struct Memory(MemoryFactory);
    /// impl ConformanceHarness for Memory {
    ///     fn factory(&self) -> Arc<dyn CheckpointerFactory> {
    ///         Arc::new(self.0.clone())
    ///     }
    ///     fn plant_newer_format(&self, run_id: &RunId) -> Damage {
    ///         let Some(mut meta) = self.0.stored_meta(run_id) else {
    ///             return Damage::Unsupported(format!("run {run_id} is not stored"));
    ///         };
    ///         meta.format_version += 1;
    ///         self.0.plant_meta(run_id, meta);
    ///         Damage::Applied { offset: None }
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let harness = Memory(MemoryFactory::new());
    /// let case = conformance::newer_format_is_left_in_place(&harness).await;
    /// assert_eq!(case, CaseResult::Passed);
    /// # });
    /// ```
    fn plant_newer_format(&self, run_id: &RunId) -> Damage {
        let _ = run_id;
        Damage::Unsupported("the harness cannot plant a newer format version".to_owned())
    }

    /// Rewrites the run's stored state so that it names `foreign` instead of `run_id`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::conformance::{self, CaseResult, ConformanceHarness, Damage};
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId};
    ///
    /// struct Memory(MemoryFactory);
    /// impl ConformanceHarness for Memory {
    ///     fn factory(&self) -> Arc<dyn CheckpointerFactory> {
    ///         Arc::new(self.0.clone())
    ///     }
    ///     fn plant_foreign_run(&self, run_id: &RunId, foreign: &RunId) -> Damage {
    ///         let Some(mut meta) = self.0.stored_meta(run_id) else {
    ///             return Damage::Unsupported(format!("run {run_id} is not stored"));
    ///         };
    ///         // The state stays under `run_id` but names the other run.
    ///         meta.run_id = foreign.clone();
    ///         self.0.plant_meta(run_id, meta);
    ///         Damage::Applied { offset: None }
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let harness = Memory(MemoryFactory::new());
    /// assert_eq!(conformance::foreign_run(&harness).await, CaseResult::Passed);
    /// # });
    /// ```
    fn plant_foreign_run(&self, run_id: &RunId, foreign: &RunId) -> Damage {
        let _ = (run_id, foreign);
        Damage::Unsupported("the harness cannot plant a foreign run id".to_owned())
    }
}

impl<H: ConformanceHarness + ?Sized> ConformanceHarness for Arc<H> {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        (**self).factory()
    }
    fn tear_last_record(&self, run_id: &RunId) -> Damage {
        (**self).tear_last_record(run_id)
    }
    fn corrupt_middle_record(&self, run_id: &RunId) -> Damage {
        (**self).corrupt_middle_record(run_id)
    }
    fn plant_version_mismatch(&self, run_id: &RunId) -> Damage {
        (**self).plant_version_mismatch(run_id)
    }
    fn plant_newer_format(&self, run_id: &RunId) -> Damage {
        (**self).plant_newer_format(run_id)
    }
    fn plant_foreign_run(&self, run_id: &RunId, foreign: &RunId) -> Damage {
        (**self).plant_foreign_run(run_id, foreign)
    }
}

/// A harness whose factories are wrapped in `FaultyFactory` with an empty plan, so the
/// wrapper itself runs the suite. Damage goes to the inner harness.
#[derive(Debug)]
pub struct FaultyHarness<H>(pub H);

impl<H: ConformanceHarness> ConformanceHarness for FaultyHarness<H> {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(crate::fault::FaultyFactory::new(
            self.0.factory(),
            crate::fault::FaultPlan::new(),
        ))
    }
    fn tear_last_record(&self, run_id: &RunId) -> Damage {
        self.0.tear_last_record(run_id)
    }
    fn corrupt_middle_record(&self, run_id: &RunId) -> Damage {
        self.0.corrupt_middle_record(run_id)
    }
    fn plant_version_mismatch(&self, run_id: &RunId) -> Damage {
        self.0.plant_version_mismatch(run_id)
    }
    fn plant_newer_format(&self, run_id: &RunId) -> Damage {
        self.0.plant_newer_format(run_id)
    }
    fn plant_foreign_run(&self, run_id: &RunId, foreign: &RunId) -> Damage {
        self.0.plant_foreign_run(run_id, foreign)
    }
}

/// Prints a skipped case so skips show up in test output.
pub fn report(case: &str, result: &CaseResult) {
    if let CaseResult::Skipped(reason) = result {
        println!("conformance case {case} skipped: {reason}");
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each over a fresh harness built by
/// the given expression. [`huge_events_read_back_or_are_refused`] is not among them: it moves
/// hundreds of megabytes, so each adapter's tests call it once, on the configuration most
/// likely to keep every record where its reader meets it (no compaction, say). The calling crate needs `tokio` (with `macros` and
/// `rt-multi-thread`) among its dev-dependencies.
///
/// ```text
/// mod memory {
///     cairn_checkpoint::conformance_tests!(crate::MemoryHarness::new());
/// }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            round_trip,
            deepest_values_read_back,
            reopen_after_drop,
            reopen_after_crash,
            torn_tail,
            corruption_in_the_middle,
            version_mismatch,
            newer_format_is_left_in_place,
            foreign_run,
            compare_and_swap_from_threads,
            claim_bumps_epoch,
            claim_at_the_read_epoch_wins,
            claim_at_a_stale_epoch_changes_nothing,
            claims_racing_from_threads_have_one_winner,
            claim_of_a_terminal_run_changes_nothing,
            claim_while_a_writer_holds_the_run_changes_nothing,
            swap_at_the_read_epoch_wins,
            swap_at_a_stale_epoch_changes_nothing,
            swap_at_refuses_a_run_resumed_since_it_was_read,
            swap_at_of_a_terminal_run_changes_nothing,
            swap_at_to_running_is_refused,
            swaps_at_one_epoch_racing_from_threads_have_one_winner,
            swaps_at_and_claims_racing_have_one_winner,
            lock_held_by_another_opener,
            peek_reads_what_open_reads,
            peek_live_reads_beside_the_writer,
            list_filters_and_order,
            list_quarantines_unmatchable_metadata,
            audit_records,
            complete_and_fail,
            terminal_runs_never_change,
            begin_existing_id,
            unknown_run,
            quarantine_moves_state_aside,
            list_quarantined_reports_moved_runs,
            injected_faults_lose_nothing_acknowledged,
            remove_completed_and_cancelled_runs,
            remove_refuses_unfinished_runs,
            remove_refuses_a_held_run,
            remove_never_touches_quarantined_state,
            remove_refuses_bad_metadata,
            remove_terminal_with_injected_faults,
            dropped_appends_are_whole_or_absent,
            dropped_installs_keep_later_appends,
            dropped_audits_are_whole_or_absent,
            dropped_claims_win_at_most_once,
            dropped_swaps_at_never_land_on_a_later_epoch,
            dropped_begins_leave_no_lock,
            open_changes_no_status,
            a_writer_never_finishes_a_run_cancelled_under_it,
            quarantine_of_a_held_run_moves_nothing,
            peek_leaves_a_torn_tail_for_open,
            load_meta_reports_bad_metadata,
            peek_leaves_bad_metadata_for_open,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $make;
                let result = $crate::conformance::$case(&harness).await;
                $crate::conformance::report(stringify!($case), &result);
            }
        )*
    };
}

/// The names of every case `conformance_tests!` expands, in order.
pub const ALL_CASES: &[&str] = &[
    "round_trip",
    "deepest_values_read_back",
    "reopen_after_drop",
    "reopen_after_crash",
    "torn_tail",
    "corruption_in_the_middle",
    "version_mismatch",
    "newer_format_is_left_in_place",
    "foreign_run",
    "compare_and_swap_from_threads",
    "claim_bumps_epoch",
    "claim_at_the_read_epoch_wins",
    "claim_at_a_stale_epoch_changes_nothing",
    "claims_racing_from_threads_have_one_winner",
    "claim_of_a_terminal_run_changes_nothing",
    "claim_while_a_writer_holds_the_run_changes_nothing",
    "swap_at_the_read_epoch_wins",
    "swap_at_a_stale_epoch_changes_nothing",
    "swap_at_refuses_a_run_resumed_since_it_was_read",
    "swap_at_of_a_terminal_run_changes_nothing",
    "swap_at_to_running_is_refused",
    "swaps_at_one_epoch_racing_from_threads_have_one_winner",
    "swaps_at_and_claims_racing_have_one_winner",
    "lock_held_by_another_opener",
    "peek_reads_what_open_reads",
    "peek_live_reads_beside_the_writer",
    "list_filters_and_order",
    "list_quarantines_unmatchable_metadata",
    "audit_records",
    "complete_and_fail",
    "terminal_runs_never_change",
    "begin_existing_id",
    "unknown_run",
    "quarantine_moves_state_aside",
    "list_quarantined_reports_moved_runs",
    "injected_faults_lose_nothing_acknowledged",
    "remove_completed_and_cancelled_runs",
    "remove_refuses_unfinished_runs",
    "remove_refuses_a_held_run",
    "remove_never_touches_quarantined_state",
    "remove_refuses_bad_metadata",
    "remove_terminal_with_injected_faults",
    "dropped_appends_are_whole_or_absent",
    "dropped_installs_keep_later_appends",
    "dropped_audits_are_whole_or_absent",
    "dropped_claims_win_at_most_once",
    "dropped_swaps_at_never_land_on_a_later_epoch",
    "dropped_begins_leave_no_lock",
    "open_changes_no_status",
    "a_writer_never_finishes_a_run_cancelled_under_it",
    "quarantine_of_a_held_run_moves_nothing",
    "peek_leaves_a_torn_tail_for_open",
    "load_meta_reports_bad_metadata",
    "peek_leaves_bad_metadata_for_open",
];
