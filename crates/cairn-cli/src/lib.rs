//! The `cairn` command: run durable workflows of shell commands and resume them after a crash.
//!
//! The binary (`src/main.rs`) parses the command line, installs telemetry and calls
//! [`app::run`]. The pieces:
//!
//! - [`workflow`]: the TOML workflow format, validated before anything runs, with errors that
//!   name file, line and column; and the run plan it becomes.
//! - [`shell`]: the `shell` task handler (process groups, timeouts, output capture).
//! - [`progress`]: the live terminal display, plain lines, or JSON lines.
//! - [`policy`]: what a new run does about earlier runs (resume interrupted ones, ask about
//!   failed ones), and `resume` / `abandon`.
//! - [`store`]: the state folder, the adapter choice and the CLI's own files.
//! - [`out`]: printing that never panics on a closed stdout, and escaping stored text.
//! - [`cli`] and [`app`]: the clap commands, exit codes, and the drive with signal handling.
//! - [`logs`]: `cairn logs`, the saved output of a run's commands.
//! - [`reload`]: `cairn resume RUN --reload`, which gives a stopped run the fixed workflow file.
//! - [`jobs`] and [`scheduler`]: `cairn jobs` (scheduled jobs in the state folder) and
//!   `cairn scheduler` (runs the due ones until Ctrl-C).
//!
//! # Examples
//!
//! ```
//! use std::path::Path;
//! use cairn_cli::workflow::parse;
//!
//! let workflow = parse(
//!     Path::new("hello.toml"),
//!     "name = \"hello\"\n[[task]]\nid = \"greet\"\nrun = \"echo hi\"\ntimeout = \"5s\"\n",
//! )
//! .unwrap();
//! let plan = workflow.plan("default", "");
//! assert_eq!(plan.workflow, "hello");
//! assert_eq!(plan.phases[0].tasks.len(), 1);
//! ```

pub mod app;
pub mod cli;
pub mod duration;
pub mod jobs;
pub mod logs;
pub mod open_files;
pub mod out;
pub mod policy;
pub mod progress;
pub mod reload;
pub mod scheduler;
pub mod shell;
pub mod store;
pub mod workflow;
