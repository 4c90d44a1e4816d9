//! The state folder: which checkpoint adapter keeps the runs, and the CLI's own files next to
//! them (each run's captured output and a copy of the workflow it ran).
//!
//! ```text
//! <state-dir>/
//!   runs/ quarantine/ ...        the file adapter's layout (or sled/ with --adapter sled)
//!   locks/<hash>.lock            one per workflow and scope: held by the process that
//!                                decides about and drives their runs
//!   output/<run_id>/
//!     .workflow.toml             the workflow text the run was started from
//!     .origin.json               where that file was and the folder task cwds are relative to
//!     <task>.<attempt>.stdout    captured output (see `shell`)
//!     <task>.<attempt>.stderr
//!     <task>.starts              the task's attempts in the order they started (see `logs`)
//!   output/.removed-<run_id>-<pid>/  a pruned run's folder being deleted (`cairn runs prune`)
//! ```
//!
//! The workflow copy is what `cairn resume <run>` rebuilds the plan from, so editing the file
//! after a failure cannot make a resumed run's tasks differ from its journal.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use cairn_checkpoint::{CheckpointerFactory, LeftInPlaceRun, QuarantinedRun, RunId};
use cairn_checkpoint_file::FileFactory;
use cairn_checkpoint_sled::SledFactory;
use serde::{Deserialize, Serialize};

use crate::app::UsageError;
use crate::workflow::{self, Workflow};

/// A run's folder under `output/` ([`StateDir::output_folders`]).
#[derive(Debug, Clone)]
pub struct OutputFolder {
    /// The run it is named for.
    pub run_id: RunId,
    /// Where it is.
    pub path: PathBuf,
    /// When it last changed (a file was added or removed in it).
    pub modified: std::time::SystemTime,
}

/// Which checkpoint adapter keeps the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Adapter {
    /// The embedded file adapter (default): `<state-dir>/runs/...`.
    File,
    /// The sled adapter: a sled database at `<state-dir>/sled`.
    Sled,
}

impl Adapter {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Adapter::File => "file",
            Adapter::Sled => "sled",
        }
    }
}

/// An open state folder.
#[derive(Debug, Clone)]
pub struct StateDir {
    /// The folder.
    pub root: PathBuf,
    /// The adapter in use.
    pub adapter: Adapter,
    /// The checkpoint store.
    pub factory: Arc<dyn CheckpointerFactory>,
}

impl StateDir {
    /// Opens (creating if needed) the state folder with the given adapter.
    ///
    /// # Errors
    ///
    /// When the folder cannot be created or the adapter cannot open its store (for sled:
    /// another process has the database open).
    pub fn open(root: &Path, adapter: Adapter) -> anyhow::Result<StateDir> {
        refuse_a_second_store(root, adapter)?;
        create_state_root(root)?;
        let factory: Arc<dyn CheckpointerFactory> =
            match adapter {
                Adapter::File => {
                    let factory = FileFactory::builder(root).build().with_context(|| {
                        format!("cannot open the file store in {}", root.display())
                    })?;
                    Arc::new(factory)
                }
                Adapter::Sled => {
                    let path = root.join("sled");
                    // The adapter's error says what to do when another process holds it.
                    Arc::new(SledFactory::open(&path).with_context(|| {
                        format!("cannot open the sled store at {}", path.display())
                    })?)
                }
            };
        Ok(StateDir {
            root: root.to_path_buf(),
            adapter,
            factory,
        })
    }

    /// The locations of every quarantined run, to tell which runs a listing moved there: the
    /// port's `list` quarantines damaged runs it meets without saying so. Empty when the
    /// store cannot list them (then nothing is reported, which is what happened before this
    /// check existed).
    pub async fn quarantine_locations(&self) -> BTreeSet<String> {
        self.factory
            .list_quarantined()
            .await
            .map(|listed| listed.into_iter().map(|entry| entry.location).collect())
            .unwrap_or_default()
    }

    /// Where, why and when `run_id` was quarantined: the store's newest quarantine entry for
    /// it. `None` when the id was never quarantined, or the store cannot list them.
    pub async fn quarantine_of(&self, run_id: &RunId) -> Option<QuarantineNote> {
        let listed = self.factory.list_quarantined().await.ok()?;
        listed
            .into_iter()
            .rev()
            .find(|entry| entry.run_id == *run_id)
            .map(QuarantineNote::from)
    }

    /// The runs that were moved to quarantine since `before` was taken
    /// ([`StateDir::quarantine_locations`]), with where and why.
    pub async fn newly_quarantined(&self, before: &BTreeSet<String>) -> Vec<QuarantineNote> {
        self.factory
            .list_quarantined()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| !before.contains(&entry.location))
            .map(QuarantineNote::from)
            .collect()
    }

    /// The runs the latest listing found damaged but could not move to quarantine, with
    /// where they are, why, and what to do. Empty when the store cannot say.
    pub async fn left_in_place(&self) -> Vec<LeftInPlaceNote> {
        self.factory
            .left_in_place()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|run| LeftInPlaceNote {
                run,
                root: self.root.clone(),
                flags: self.flags(),
            })
            .collect()
    }

    /// ` --state-dir D` (and ` --adapter A` when not the default), for printed commands.
    fn flags(&self) -> String {
        let dir = crate::app::shell_quote(&self.root.display().to_string());
        match self.adapter {
            Adapter::File => format!(" --state-dir {dir}"),
            other => format!(" --state-dir {dir} --adapter {}", other.as_str()),
        }
    }

    /// Takes this process's lock on one workflow and scope of the state folder, held until
    /// the returned guard is dropped (or the process dies). `cairn run` holds it from its
    /// decision through the whole drive, and `cairn resume` while it drives, so two cairn
    /// processes can never both decide to start or resume a run of the same workflow and
    /// scope: the resume policy's own check for a live writer cannot see a run that another
    /// process decided to begin a moment ago but has not begun yet.
    ///
    /// # Errors
    ///
    /// [`ScopeBusy`] when another process holds the lock; an I/O error when the lock file
    /// cannot be created or locked.
    ///
    /// Every run in a scheduled job's scope (`job-<id>`) is that job's run, whatever its
    /// workflow is called now (the scheduler refuses to start one beside any of them), so
    /// those runs share one lock, which the scheduler takes around each run of the job.
    pub fn lock_scope(&self, workflow: &str, scope: &str) -> anyhow::Result<ScopeLock> {
        let dir = self.root.join(LOCKS_DIR);
        create_private_dir(&dir)?;
        let keyed_workflow = if scope.starts_with(JOB_SCOPE_PREFIX) {
            ""
        } else {
            workflow
        };
        let path = dir.join(format!("{:016x}.lock", scope_key(keyed_workflow, scope)));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(ScopeBusy {
                    workflow: workflow.to_owned(),
                    scope: scope.to_owned(),
                    holder: holder.trim().to_owned(),
                    lock_file: path,
                }
                .into());
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(
                    anyhow::Error::new(error).context(format!("cannot lock {}", path.display()))
                );
            }
        }
        // Who holds it, for the message another process prints; the lock itself is the
        // truth, so a failed write only makes that message vaguer.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "pid {}", std::process::id()));
        Ok(ScopeLock { _file: file })
    }

    /// Where captured output of all runs goes.
    pub fn output_root(&self) -> PathBuf {
        self.root.join("output")
    }

    /// The CLI's folder of one run.
    pub fn run_output(&self, run_id: &RunId) -> PathBuf {
        self.output_root().join(run_id.as_str())
    }

    /// Deletes the CLI's folder of a run that was removed from the store (`cairn runs
    /// prune`): renames it to a hidden `output/.removed-<run_id>-<pid>` name, syncs
    /// `output/`, then deletes it, so a crash leaves either the whole folder or a hidden one
    /// that [`StateDir::sweep_removed_output`] deletes. `Ok(false)` when the run had none.
    ///
    /// # Errors
    ///
    /// When the folder cannot be renamed or deleted, or `output/` cannot be synced.
    pub fn remove_run_output(&self, run_id: &RunId) -> anyhow::Result<bool> {
        let dir = self.run_output(run_id);
        if !dir.exists() {
            return Ok(false);
        }
        let root = self.output_root();
        let hidden = root.join(format!(
            "{REMOVED_OUTPUT_PREFIX}{run_id}-{}",
            std::process::id()
        ));
        std::fs::rename(&dir, &hidden)
            .with_context(|| format!("cannot move {} out of the way", dir.display()))?;
        sync_dir(&root)?;
        std::fs::remove_dir_all(&hidden)
            .with_context(|| format!("cannot delete {}", hidden.display()))?;
        Ok(true)
    }

    /// The run output folders under `output/` (named as a run id, holding the run's origin
    /// record), each with the time it last changed, oldest first. Hidden and foreign entries
    /// are left out.
    pub fn output_folders(&self) -> Vec<OutputFolder> {
        let Ok(entries) = std::fs::read_dir(self.output_root()) else {
            return Vec::new();
        };
        let mut folders: Vec<OutputFolder> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let run_id = RunId::new(entry.file_name().to_str()?).ok()?;
                let metadata = entry.metadata().ok().filter(std::fs::Metadata::is_dir)?;
                // Only a folder this CLI made for a run: anything else is not ours to judge.
                if !entry.path().join(ORIGIN_FILE).is_file() {
                    return None;
                }
                Some(OutputFolder {
                    run_id,
                    path: entry.path(),
                    modified: metadata.modified().ok()?,
                })
            })
            .collect();
        folders.sort_by_key(|folder| folder.modified);
        folders
    }

    /// Deletes the hidden folders that output removals cut short (a crash, a failed delete)
    /// left in `output/`. Best effort: a folder that cannot be deleted now is tried again by
    /// the next prune. Returns the folders it could not delete.
    pub fn sweep_removed_output(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.output_root()) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with(REMOVED_OUTPUT_PREFIX))
            })
            .filter(|path| std::fs::remove_dir_all(path).is_err() && path.exists())
            .collect()
    }

    /// Records the workflow a run was started from, durably (temp file, fsync, rename, fsync
    /// the folder), so `cairn resume` can rebuild the same plan.
    ///
    /// # Errors
    ///
    /// When a file cannot be written or synced.
    pub fn save_origin(
        &self,
        run_id: &RunId,
        workflow: &Workflow,
        text: &str,
    ) -> anyhow::Result<()> {
        let dir = self.run_output(run_id);
        create_private_dir(&dir)?;
        let origin = Origin {
            workflow_path: absolute(&workflow.path),
            workflow_dir: absolute(&workflow.dir),
        };
        let origin_json = serde_json::to_vec_pretty(&origin)?;
        write_durably(&dir, WORKFLOW_COPY, text.as_bytes())?;
        write_durably(&dir, ORIGIN_FILE, &origin_json)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// The run's origin file, when it is certainly missing: the run's output folder was
    /// removed, or the run was not started by this CLI. An error while checking gives `None`,
    /// so that `load_origin` reports it.
    pub fn missing_origin(&self, run_id: &RunId) -> Option<PathBuf> {
        let path = self.run_output(run_id).join(ORIGIN_FILE);
        matches!(path.try_exists(), Ok(false)).then_some(path)
    }

    /// Loads the workflow a run was started from.
    ///
    /// # Errors
    ///
    /// When the run has no recorded workflow (it was not started by this CLI, or its output
    /// folder was removed), or the recorded text no longer parses.
    pub fn load_origin(&self, run_id: &RunId) -> anyhow::Result<Workflow> {
        let dir = self.run_output(run_id);
        let origin_path = dir.join(ORIGIN_FILE);
        let origin: Origin = serde_json::from_slice(
            &std::fs::read(&origin_path).with_context(|| {
                format!(
                    "run {run_id} has no recorded workflow ({} is missing); it was not started by this cairn CLI or its output folder was removed",
                    origin_path.display()
                )
            })?,
        )
        .with_context(|| format!("{} is not valid", origin_path.display()))?;
        let copy = dir.join(WORKFLOW_COPY);
        let text = std::fs::read_to_string(&copy)
            .with_context(|| format!("cannot read {}", copy.display()))?;
        // A copy that no longer parses is damaged state, not a bad workflow file: the error
        // names the copy and is a store error (exit 5), not a usage error.
        let mut parsed = workflow::parse_copy(&origin.workflow_path, &text).map_err(|error| {
            anyhow::anyhow!(
                "the workflow copy {} of run {run_id} does not parse: {error}",
                copy.display()
            )
        })?;
        parsed.dir = origin.workflow_dir;
        Ok(parsed)
    }
}

/// A run whose state the store moved to quarantine (damaged or foreign metadata), as its
/// audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineNote {
    /// The run.
    pub run_id: RunId,
    /// When it was quarantined (ms since the Unix epoch; 0 when not recorded).
    pub at_ms: u64,
    /// Where its state is now, when the store says.
    pub location: Option<String>,
    /// Why.
    pub reason: String,
    /// Whether it was quarantined before it finished, with metadata that names its workflow:
    /// its progress is lost, and `cairn run` of that workflow asks until it is settled.
    pub lost_progress: bool,
}

impl From<QuarantinedRun> for QuarantineNote {
    fn from(entry: QuarantinedRun) -> Self {
        QuarantineNote {
            lost_progress: entry
                .meta
                .as_ref()
                .is_some_and(|meta| !meta.status.is_terminal()),
            run_id: entry.run_id,
            at_ms: entry.at.0,
            location: Some(entry.location),
            reason: if entry.reason.is_empty() {
                "no reason recorded".to_owned()
            } else {
                entry.reason
            },
        }
    }
}

impl QuarantineNote {
    /// The note as one JSON object (`event: run_quarantined`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "event": "run_quarantined", "run_id": self.run_id.as_str(),
            "reason": self.reason, "location": self.location,
        })
    }
}

impl std::fmt::Display for QuarantineNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} is in quarantine: its stored state was damaged ({}) and was moved",
            self.run_id,
            crate::out::escape_controls(&self.reason)
        )?;
        if let Some(location) = &self.location {
            write!(f, " to {}", crate::out::escape_controls(location))?;
        }
        if self.at_ms > 0 {
            write!(f, " at {} UTC", crate::app::format_timestamp(self.at_ms))?;
        }
        write!(
            f,
            "; it is kept there for inspection, never deleted, and can no longer be shown or resumed (`cairn audit {}` prints what is recorded about it)",
            self.run_id
        )?;
        if self.lost_progress {
            write!(
                f,
                "; it had not finished, so `cairn run` of its workflow and scope asks before running its tasks again until `cairn abandon {}` gives its progress up (or a run is forced past it)",
                self.run_id
            )?;
        }
        Ok(())
    }
}

/// A run whose stored state is damaged but could not be moved to quarantine (a read-only
/// state folder, or one this user may not write): it stays where it is, untouched, and is
/// left out of every listing until it moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftInPlaceNote {
    /// What the store reports.
    pub run: LeftInPlaceRun,
    /// The state folder.
    pub root: PathBuf,
    /// The `--state-dir` (and `--adapter`) flags of the commands printed.
    pub flags: String,
}

impl LeftInPlaceNote {
    /// The note as one JSON object (`event: run_left_in_place`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "event": "run_left_in_place", "run_id": self.run.run_id.as_str(),
            "reason": self.run.reason, "error": self.run.error, "path": self.run.at,
        })
    }
}

impl std::fmt::Display for LeftInPlaceNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let escape = crate::out::escape_controls;
        write!(
            f,
            "run {id} is damaged ({reason}) but could not be moved to quarantine ({error}), so it is left in place at {at}, untouched, and left out of listings; to have it moved, make {root} writable again (remount it read-write, or fix its permissions), then any cairn command moves it (`cairn runs{flags}`), or move {at} out of {runs} by hand",
            id = self.run.run_id,
            reason = escape(&self.run.reason),
            error = escape(&self.run.error),
            at = escape(&self.run.at),
            root = self.root.display(),
            flags = self.flags,
            runs = self.root.join("runs").display(),
        )
    }
}

/// How the scope of a scheduled job's runs starts (`job-<id>`).
pub const JOB_SCOPE_PREFIX: &str = "job-";

/// The folder of the CLI's workflow-and-scope locks, in the state folder.
const LOCKS_DIR: &str = "locks";

/// A held lock on one workflow and scope of a state folder (see [`StateDir::lock_scope`]).
#[derive(Debug)]
pub struct ScopeLock {
    _file: File,
}

/// Another process holds the lock on a workflow and scope: it is deciding about or driving
/// a run of them right now.
#[derive(Debug)]
pub struct ScopeBusy {
    /// The workflow name.
    pub workflow: String,
    /// The scope.
    pub scope: String,
    /// What the holder wrote into the lock file (`pid N`), if anything.
    pub holder: String,
    /// The lock file.
    pub lock_file: PathBuf,
}

impl std::fmt::Display for ScopeBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let holder = if self.holder.is_empty() {
            "another cairn process".to_owned()
        } else {
            format!("another cairn process ({})", self.holder)
        };
        write!(
            f,
            "workflow `{}` (scope `{}`) is being driven right now by {holder}, which holds {}; a second writer is never started, even with --force",
            crate::out::escape_controls(&self.workflow),
            crate::out::escape_controls(&self.scope),
            self.lock_file.display()
        )
    }
}

impl std::error::Error for ScopeBusy {}

/// A stable 64-bit FNV-1a hash of a workflow and scope, naming their lock file (names and
/// scopes can hold any character and any length, file names cannot). A collision only makes
/// two workflows wait for each other.
fn scope_key(workflow: &str, scope: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = workflow.bytes().chain([0xff]).chain(scope.bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The name prefix of a pruned run's output folder while it is being deleted. It starts
/// with '.', which no run id can, so it never names a run's folder.
const REMOVED_OUTPUT_PREFIX: &str = ".removed-";

const WORKFLOW_COPY: &str = ".workflow.toml";
const ORIGIN_FILE: &str = ".origin.json";

#[derive(Debug, Serialize, Deserialize)]
struct Origin {
    workflow_path: PathBuf,
    workflow_dir: PathBuf,
}

/// Creates the state folder (and its parents) if needed.
///
/// # Errors
///
/// Whether `root` holds `adapter`'s store with something in it: runs or jobs of the file
/// adapter, or a sled database.
fn holds_store(root: &Path, adapter: Adapter) -> bool {
    let has_entries =
        |dir: &Path| std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    match adapter {
        Adapter::File => has_entries(&root.join("runs")) || has_entries(&root.join("jobs")),
        Adapter::Sled => root.join("sled").exists(),
    }
}

/// A [`UsageError`] when `root` holds the other adapter's store and none of `adapter`'s:
/// the two stores are separate, so opening this one would start a second, empty world
/// beside the first (its failed runs passed over, its runs and jobs not listed). A folder
/// that holds both already is left as it is.
pub(crate) fn refuse_a_second_store(root: &Path, adapter: Adapter) -> anyhow::Result<()> {
    let other = match adapter {
        Adapter::File => Adapter::Sled,
        Adapter::Sled => Adapter::File,
    };
    if holds_store(root, other) && !holds_store(root, adapter) {
        let (what, flag) = match other {
            Adapter::File => (
                "the file adapter's runs (runs/, jobs/)",
                "--adapter file (the default)",
            ),
            Adapter::Sled => ("a sled store (sled/)", "--adapter sled"),
        };
        return Err(UsageError(format!(
            "the state folder {} holds {what}, and the {} adapter's store is separate from it: pass {flag}, or use another --state-dir for the {} adapter",
            root.display(),
            adapter.as_str(),
            adapter.as_str()
        ))
        .into());
    }
    Ok(())
}

/// Creates the state folder `root` if it is missing.
///
/// # Errors
///
/// A [`UsageError`] when `root` exists and is not a folder (`--state-dir` names a file); an
/// I/O error when it cannot be created.
pub fn create_state_root(root: &Path) -> anyhow::Result<()> {
    if root.exists() && !root.is_dir() {
        return Err(UsageError(format!(
            "the state folder {} is not a folder (it is a file); pass --state-dir with a folder",
            root.display()
        ))
        .into());
    }
    // A symbolic link that leads nowhere (dangling, or a loop) is not a folder to create:
    // `create_dir_all` would only say "File exists".
    if !root.exists() && std::fs::symlink_metadata(root).is_ok() {
        let why = match std::fs::metadata(root) {
            Err(error) if error.raw_os_error() == Some(40) => "a symbolic link loop".to_owned(),
            _ => match std::fs::read_link(root) {
                Ok(target) => format!(
                    "a symbolic link to {}, which does not exist",
                    target.display()
                ),
                Err(_) => "a symbolic link that leads nowhere".to_owned(),
            },
        };
        return Err(UsageError(format!(
            "the state folder {} is not a folder (it is {why}); pass --state-dir with a folder",
            root.display()
        ))
        .into());
    }
    // A path under a file (`afile/sub`) can never be a folder either.
    if let Some(blocking) = root
        .ancestors()
        .skip(1)
        .find(|a| !a.as_os_str().is_empty() && a.exists() && !a.is_dir())
    {
        return Err(UsageError(format!(
            "the state folder {} cannot be made: {} is a file, not a folder; pass --state-dir with a folder",
            root.display(),
            blocking.display()
        ))
        .into());
    }
    create_dirs_durably(root, &mut std::fs::DirBuilder::new())
        .with_context(|| format!("cannot create the state folder {}", root.display()))
}

/// An absolute form of `path` (not resolving symlinks); `path` itself when the current
/// folder is unknown.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Creates a folder (and its parents) readable by the owner only: captured output can hold
/// secrets.
///
/// # Errors
///
/// When the folder cannot be created.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    create_dirs_durably(dir, std::fs::DirBuilder::new().mode(0o700))
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Creates `dir` and its missing parents with `builder`, then fsyncs the folder holding each
/// new one, shallowest first. POSIX makes a new folder's entry durable only through an fsync
/// of its parent; ext4, xfs and btrfs happen to do it with later fsyncs, other file systems
/// need not, and a lost state or output folder would lose everything under it.
fn create_dirs_durably(dir: &Path, builder: &mut std::fs::DirBuilder) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .collect();
    builder.recursive(true).create(dir)?;
    for created in missing.iter().rev() {
        let parent = created
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let temp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut file =
        File::create(&temp).with_context(|| format!("cannot create {}", temp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, &target)
        .with_context(|| format!("cannot rename {} into place", temp.display()))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the folder {}", dir.display()))
}
