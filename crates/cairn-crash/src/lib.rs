//! The crash-test harness behind `cargo xtask crash-test`: proof that a cairn run resumes
//! after a crash without losing or repeating acknowledged work.
//!
//! Two independent methods (see `docs/crash-testing.md`):
//!
//! - **Real process kills** ([`kill`]): a [`worker`] process drains a generated DAG
//!   ([`dag`]) on the file or sled adapter while the harness SIGKILLs it at seeded random
//!   moments and restarts it, until the run completes. Forced crash points
//!   ([`crash_point`]) abort the worker at exact places in the file adapter's I/O. The
//!   [`verify`] module then checks the final state, the journal, the audit log and the
//!   side-effect [`ledger`].
//! - **Simulated power loss** ([`power_loss`]): an in-memory model of a file system
//!   ([`disk_model`]) records every write, fdatasync, rename and directory fsync, and turns
//!   any instant into the disk image a power cut could leave (including a later page of an
//!   in-place write landing without an earlier one). Recovery must open every such image
//!   with every acknowledged transition; stopping with `Corruption` counts as a violation.
//!
//! # Examples
//!
//! ```
//! use cairn_crash::dag::Dag;
//! use cairn_crash::verify::{RunEvidence, verify};
//!
//! // The verifier is pure: evidence in, findings out.
//! let findings = verify(&Dag::generate(3, 20, 0), &RunEvidence::default());
//! assert!(findings.violations() > 0, "a run that does not exist loses every task");
//! ```

pub mod crash_point;
pub mod dag;
pub mod disk_model;
pub mod error;
pub mod kill;
pub mod ledger;
pub mod power_loss;
pub mod rng;
pub mod verify;
pub mod worker;

pub use error::{Error, Result};
