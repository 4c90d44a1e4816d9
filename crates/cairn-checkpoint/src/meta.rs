//! Run identity and metadata: `RunId`, `RunStatus`, `RunMeta`, owners and run errors.

use std::fmt;
use std::str::FromStr;

use cairn_queue::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The run-metadata format this build writes and reads.
pub const META_FORMAT_VERSION: u32 = 1;

/// The longest run id accepted.
pub const MAX_RUN_ID_LEN: usize = 64;

/// What [`why_not_an_id`] says of an id that is too long. The reason is `&'static str`, so
/// it cannot name `max_len`: the build fails if either id kind's limit leaves 64 bytes.
const TOO_LONG: &str = "it is longer than 64 bytes";
const _: () = assert!(MAX_RUN_ID_LEN == 64 && crate::jobs::MAX_JOB_ID_LEN == 64);

/// Why `text` cannot be an id that is safe as a single path component, if it cannot: ids are
/// 1 to `max_len` bytes of `[A-Za-z0-9_-]`, so no `.`, `..` or separator can sneak in.
pub(crate) fn why_not_an_id(text: &str, max_len: usize) -> Option<&'static str> {
    if text.is_empty() {
        Some("it is empty")
    } else if text.len() > max_len {
        Some(TOO_LONG)
    } else if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Some("only ASCII letters, digits, '-' and '_' are allowed")
    } else {
        None
    }
}

/// A validated run id: 1 to 64 characters from `[A-Za-z0-9_-]`, not starting with `-`, so it
/// is always safe as a single path component (no `.`, `..` or separator can sneak in) and as
/// a single command-line argument (it never reads as an option, as in `cairn resume <id>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// Validates `text` as a run id.
    ///
    /// # Errors
    ///
    /// `Error::InvalidRunId` when `text` is empty, longer than 64 bytes, holds a character
    /// outside `[A-Za-z0-9_-]`, or starts with `-`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// assert!(RunId::new("01JD3ZK8Q2").is_ok());
    /// assert!(RunId::new("nightly-build").is_ok());
    /// assert!(RunId::new("../etc").is_err());
    /// assert!(RunId::new("-lead").is_err());
    /// ```
    pub fn new(text: impl Into<String>) -> Result<RunId, Error> {
        let text = text.into();
        // Stores skip a folder or key whose name is no run id, so a run stored under such a
        // name before this rule is left where it is, unlisted, never deleted.
        let reason = why_not_an_id(&text, MAX_RUN_ID_LEN).or_else(|| {
            text.starts_with('-').then_some(
                "it must not start with '-', which would read as an option on a command line",
            )
        });
        match reason {
            Some(reason) => Err(Error::InvalidRunId { id: text, reason }),
            None => Ok(RunId(text)),
        }
    }

    /// A fresh id that sorts by creation time: 48 bits of milliseconds then 80 random bits,
    /// in Crockford base32 (26 characters, ULID layout).
    ///
    /// `now_ms` is passed in so callers control time; `entropy` should be unpredictable
    /// (callers typically mix the pid, a counter and the clock's nanoseconds).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// let earlier = RunId::generate(1_000, 42);
    /// let later = RunId::generate(2_000, 7);
    /// assert_eq!(earlier.as_str().len(), 26);
    /// // The milliseconds come first, so a later id sorts after, whatever the entropy.
    /// assert!(earlier < later);
    /// // Other entropy in the same millisecond gives another id.
    /// assert_ne!(RunId::generate(1_000, 43), earlier);
    /// // A generated id always passes validation.
    /// assert_eq!(RunId::new(earlier.as_str())?, earlier);
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn generate(now_ms: u64, entropy: u128) -> RunId {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        // Callers pass structured entropy (pid, counter, nanos) whose high bits are mostly
        // zero; mixing spreads it over all 80 bits so ids look random and differ everywhere.
        let mixed = mix64(entropy as u64 ^ mix64((entropy >> 64) as u64));
        let mixed = (u128::from(mix64(mixed ^ 0x9e37_79b9_7f4a_7c15)) << 64) | u128::from(mixed);
        let value: u128 = ((now_ms as u128 & ((1 << 48) - 1)) << 80) | (mixed & ((1 << 80) - 1));
        let mut out = [0u8; 26];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (25 - i);
            *slot = ALPHABET[((value >> shift) & 31) as usize];
        }
        RunId(out.iter().map(|&b| b as char).collect())
    }

    /// The id as text.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// let id: RunId = "nightly-1".parse()?;
    /// assert_eq!(id.as_str(), "nightly-1");
    /// // `Display` prints the same text.
    /// assert_eq!(id.to_string(), id.as_str());
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RunId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunId::new(s)
    }
}

impl TryFrom<String> for RunId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RunId::new(s)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

/// SplitMix64's finalizer: a bijective bit mixer, so distinct inputs stay distinct.
fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A run's lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Being driven, or interrupted (a crash leaves a run `running`, for recovery).
    Running,
    /// Waiting on an approval.
    Paused,
    /// Ended with an error; resumable only by explicit intent.
    Failed,
    /// Ended successfully. Terminal.
    Completed,
    /// Abandoned. Terminal.
    Cancelled,
}

impl RunStatus {
    /// `Completed` and `Cancelled` never change again.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunStatus;
    /// assert!(RunStatus::Completed.is_terminal());
    /// assert!(RunStatus::Cancelled.is_terminal());
    /// // A failed run can still be resumed on purpose, so it is not terminal.
    /// assert!(!RunStatus::Failed.is_terminal());
    /// assert!(!RunStatus::Paused.is_terminal());
    /// ```
    pub fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Cancelled)
    }

    /// The lower-case name used in JSON and messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunStatus;
    /// assert_eq!(RunStatus::Cancelled.as_str(), "cancelled");
    /// assert_eq!(RunStatus::Running.to_string(), "running");
    /// // Stored metadata uses the same name.
    /// assert_eq!(serde_json::to_string(&RunStatus::Paused)?, r#""paused""#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Failed => "failed",
            RunStatus::Completed => "completed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The process that owns (or last owned) a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When the process started, as its host's kernel counts it, so a later process that got
    /// the same pid (after a reboot, or once pids wrap) is not taken for it. `None` when it
    /// could not be read (no `/proc`) or the record predates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<ProcessStart>,
}

/// A process's start as Linux records it: the boot it started in and the clock ticks from
/// that boot to its start (`/proc/<pid>/stat`, field 22). Two processes of one host with the
/// same pid and the same start are the same process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStart {
    /// `/proc/sys/kernel/random/boot_id` of the boot the process ran in.
    pub boot_id: String,
    /// Clock ticks from that boot to the process's start.
    pub ticks: u64,
}

impl ProcessStart {
    /// The start of process `pid` on this host, if `/proc` has it.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::ProcessStart;
    /// // This process, on a host with /proc.
    /// if let Some(me) = ProcessStart::of(std::process::id()) {
    ///     assert_eq!(ProcessStart::current_boot_id().as_deref(), Some(me.boot_id.as_str()));
    /// }
    /// assert_eq!(ProcessStart::of(u32::MAX), None);
    /// ```
    pub fn of(pid: u32) -> Option<ProcessStart> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(ProcessStart {
            boot_id: ProcessStart::current_boot_id()?,
            ticks: start_ticks(&stat)?,
        })
    }

    /// The id of the boot this host is running, if `/proc` has it.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::ProcessStart;
    /// let boot = ProcessStart::current_boot_id();
    /// // The boot cannot change while this process runs.
    /// assert_eq!(boot, ProcessStart::current_boot_id());
    /// if let Some(id) = boot {
    ///     assert!(!id.is_empty() && id.trim() == id);
    /// }
    /// ```
    pub fn current_boot_id() -> Option<String> {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (!id.is_empty()).then(|| id.to_owned())
    }
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so fields are counted after the
/// last `)`.
fn start_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (the state) is the first one after the name.
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// This process's start, read once: it never changes.
fn own_start() -> Option<ProcessStart> {
    static START: std::sync::OnceLock<Option<ProcessStart>> = std::sync::OnceLock::new();
    START
        .get_or_init(|| ProcessStart::of(std::process::id()))
        .clone()
}

/// The name this host goes by in owner records: `$CAIRN_HOST` when set (an explicit
/// identity, for tests and for hosts whose kernel name is not unique), else the kernel's
/// host name (`/proc/sys/kernel/hostname`, the same for every process of the host whatever
/// its environment), else `/etc/hostname`, else `$HOSTNAME`, else `localhost`.
fn host_name() -> String {
    let file = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|h| h.trim().to_owned())
    };
    let env = |name: &str| std::env::var(name).ok();
    env("CAIRN_HOST")
        .into_iter()
        .chain(file("/proc/sys/kernel/hostname"))
        .chain(file("/etc/hostname"))
        .chain(env("HOSTNAME"))
        .find(|h| !h.trim().is_empty())
        .map_or_else(|| "localhost".to_owned(), |h| h.trim().to_owned())
}

impl Owner {
    /// The current process on this host: its pid, the host name (see below) and, where
    /// `/proc` has it, when the process started.
    ///
    /// The host is `$CAIRN_HOST` when set, else the kernel's host name
    /// (`/proc/sys/kernel/hostname`), else `/etc/hostname`, else `$HOSTNAME`, else
    /// `localhost`.
    ///
    /// # Examples
    ///
    /// ```
    /// let me = cairn_checkpoint::Owner::current();
    /// assert_eq!(me.pid, std::process::id());
    /// assert!(!me.host.is_empty());
    /// ```
    pub fn current() -> Owner {
        Owner {
            pid: std::process::id(),
            host: host_name(),
            start: own_start(),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)
    }
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// A short machine-readable class (`task_failed`, `panic`, `deadline`, `build`, ...).
    pub kind: String,
    /// A message for people.
    pub message: String,
}

impl RunError {
    /// Builds a run error.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunError;
    /// let err = RunError::new("deadline", "the run passed its 10 minute deadline");
    /// assert_eq!(err.kind, "deadline");
    /// assert_eq!(err.to_string(), "deadline: the run passed its 10 minute deadline");
    /// ```
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> RunError {
        RunError {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Everything the store knows about a run besides its queue state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    /// `META_FORMAT_VERSION` when written by this build.
    pub format_version: u32,
    /// The run.
    pub run_id: RunId,
    /// The workflow's name.
    pub workflow: String,
    /// What the run belongs to: an install directory, a conversation, a tenant...
    pub scope: String,
    /// What the user asked for.
    pub input: String,
    /// When the run was begun.
    pub created_at: Timestamp,
    /// When the metadata last changed.
    pub updated_at: Timestamp,
    /// When the run reached `failed`, `completed` or `cancelled`.
    pub finished_at: Option<Timestamp>,
    /// Lifecycle status.
    pub status: RunStatus,
    /// The latest owner.
    pub owner: Option<Owner>,
    /// Increases by one every time the run is claimed (`begin` sets 1; each claim and each
    /// status swap to `running` adds 1).
    pub lease_epoch: u64,
    /// Set by `Checkpointer::fail`.
    pub error: Option<RunError>,
}

impl RunMeta {
    /// Metadata for a run about to be begun: status `running`, epoch 1, owner the current process.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// let meta = RunMeta::new(RunId::new("r1")?, "site", "default", "build it", Timestamp(0));
    /// assert_eq!(meta.status, RunStatus::Running);
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn new(
        run_id: RunId,
        workflow: impl Into<String>,
        scope: impl Into<String>,
        input: impl Into<String>,
        now: Timestamp,
    ) -> RunMeta {
        RunMeta {
            format_version: META_FORMAT_VERSION,
            run_id,
            workflow: workflow.into(),
            scope: scope.into(),
            input: input.into(),
            created_at: now,
            updated_at: now,
            finished_at: None,
            status: RunStatus::Running,
            owner: Some(Owner::current()),
            lease_epoch: 1,
            error: None,
        }
    }
}

impl RunMeta {
    /// Applies the port's status compare-and-swap rules in place, for adapters.
    ///
    /// Fails with the conflict when the status is not `from`. Moving to `Running` is a claim:
    /// the lease epoch goes up by one, the owner becomes the current process and
    /// `finished_at` is cleared. Moving to a terminal status or `Failed` sets `finished_at`.
    ///
    /// # Errors
    ///
    /// `Ok(Err(StatusConflict))` when the stored status is not `from`; `self` is left
    /// unchanged then. `Err(Error::Terminal)` when `from` matches but is `completed` or
    /// `cancelled`: terminal runs never change again. Every adapter applies this one rule.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// let mut meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// meta.swap_status(RunStatus::Running, RunStatus::Paused, Timestamp(1))?.unwrap();
    /// let claimed = meta.swap_status(RunStatus::Paused, RunStatus::Running, Timestamp(2))?.unwrap();
    /// assert_eq!(claimed.lease_epoch, 2);
    /// assert!(meta.swap_status(RunStatus::Paused, RunStatus::Failed, Timestamp(3))?.is_err());
    /// meta.swap_status(RunStatus::Running, RunStatus::Completed, Timestamp(4))?.unwrap();
    /// let refused = meta.swap_status(RunStatus::Completed, RunStatus::Running, Timestamp(5));
    /// assert!(matches!(refused, Err(cairn_checkpoint::Error::Terminal { .. })));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn swap_status(
        &mut self,
        from: RunStatus,
        to: RunStatus,
        now: Timestamp,
    ) -> Result<Result<RunMeta, crate::StatusConflict>, Error> {
        if self.status != from {
            return Ok(Err(self.conflict(from, None)));
        }
        self.refuse_terminal()?;
        self.status = to;
        self.updated_at = now;
        if to == RunStatus::Running {
            self.take_lease();
        }
        if to.is_terminal() || to == RunStatus::Failed {
            self.finished_at = Some(now);
        }
        Ok(Ok(self.clone()))
    }

    /// Applies the port's claim rules in place, for adapters: a claim wins only when the
    /// status is `from` and the lease epoch is `expected_epoch`.
    ///
    /// A won claim sets the status to `running`, the epoch to `expected_epoch + 1`, the owner
    /// to the current process, `updated_at` to `now`, and clears `finished_at`.
    ///
    /// # Errors
    ///
    /// `Ok(Err(StatusConflict))` naming the stored status, epoch and owner when the status is
    /// not `from` or the epoch is not `expected_epoch`; `self` is left unchanged then.
    /// `Err(Error::Terminal)` when `from` matches but is `completed` or `cancelled`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// let mut meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// let won = meta.claim(RunStatus::Running, 1, Timestamp(1))?.unwrap();
    /// assert_eq!(won.lease_epoch, 2);
    /// // A second claimer that also read epoch 1 loses, and nothing changes.
    /// let lost = meta.claim(RunStatus::Running, 1, Timestamp(2))?.unwrap_err();
    /// assert_eq!((lost.current_epoch, meta.updated_at), (2, Timestamp(1)));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn claim(
        &mut self,
        from: RunStatus,
        expected_epoch: u64,
        now: Timestamp,
    ) -> Result<Result<RunMeta, crate::StatusConflict>, Error> {
        if self.status != from {
            return Ok(Err(self.conflict(from, Some(expected_epoch))));
        }
        self.refuse_terminal()?;
        if self.lease_epoch != expected_epoch {
            return Ok(Err(self.conflict(from, Some(expected_epoch))));
        }
        self.status = RunStatus::Running;
        self.updated_at = now;
        self.take_lease();
        Ok(Ok(self.clone()))
    }

    /// Applies the port's epoch-checked status swap rules in place, for adapters
    /// (`CheckpointerFactory::compare_and_swap_status_at`): the swap wins only when the
    /// status is `from` and the lease epoch is `expected_epoch`.
    ///
    /// A won swap sets the status to `to` and `updated_at` to `now`, and `finished_at` to
    /// `now` when `to` is terminal or `Failed`. It never takes the lease: the epoch and the
    /// owner stay as they are, which is why `to` may not be `Running`.
    ///
    /// # Errors
    ///
    /// `Err(Error::ClaimRequired)` when `to` is `Running`, checked first (see
    /// [`refuse_claim_by_swap`]). `Ok(Err(StatusConflict))` naming the stored status, epoch
    /// and owner when the status is not `from` or the epoch is not `expected_epoch`.
    /// `Err(Error::Terminal)` when `from` matches but is `completed` or `cancelled`, whatever
    /// the epoch. `self` is left unchanged on every one of these.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{Error, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// let mut meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// meta.swap_status(RunStatus::Running, RunStatus::Failed, Timestamp(1))?.unwrap();
    /// // Resumed (epoch 2) and failed again: a swap that read `failed` at epoch 1 loses.
    /// meta.claim(RunStatus::Failed, 1, Timestamp(2))?.unwrap();
    /// meta.swap_status(RunStatus::Running, RunStatus::Failed, Timestamp(3))?.unwrap();
    /// let stale = meta.swap_status_at(RunStatus::Failed, 1, RunStatus::Cancelled, Timestamp(4))?;
    /// assert_eq!(stale.unwrap_err().current_epoch, 2);
    /// assert_eq!((meta.status, meta.updated_at), (RunStatus::Failed, Timestamp(3)));
    /// let won = meta.swap_status_at(RunStatus::Failed, 2, RunStatus::Cancelled, Timestamp(5))?;
    /// let won = won.unwrap();
    /// assert_eq!((won.lease_epoch, won.finished_at), (2, Some(Timestamp(5))));
    /// // Moving to `running` takes the lease: that is a claim.
    /// let mut paused = RunMeta::new(RunId::new("r2")?, "wf", "scope", "", Timestamp(0));
    /// paused.swap_status(RunStatus::Running, RunStatus::Paused, Timestamp(1))?.unwrap();
    /// let refused = paused.swap_status_at(RunStatus::Paused, 1, RunStatus::Running, Timestamp(2));
    /// assert!(matches!(refused, Err(Error::ClaimRequired { .. })));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn swap_status_at(
        &mut self,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
        now: Timestamp,
    ) -> Result<Result<RunMeta, crate::StatusConflict>, Error> {
        refuse_claim_by_swap(&self.run_id, to)?;
        if self.status != from {
            return Ok(Err(self.conflict(from, Some(expected_epoch))));
        }
        self.refuse_terminal()?;
        if self.lease_epoch != expected_epoch {
            return Ok(Err(self.conflict(from, Some(expected_epoch))));
        }
        // The status and the epoch match, and `to` is no claim: the plain swap's rules
        // (`updated_at`, `finished_at`) apply, and it leaves the lease alone.
        self.swap_status(from, to, now)
    }

    /// [`RunMeta::claim`] with the port's writer-lock rule on top, for adapters: `held_by`
    /// names the live writer that holds the run's writer lock, if any, as the adapter saw
    /// it under the same lock that makes the claim atomic. A claim that would win is
    /// refused while a writer holds the run, so the stored lease never moves under a live
    /// writer; a claim that would lose anyway reports that loss.
    ///
    /// # Errors
    ///
    /// As [`RunMeta::claim`]; a refusal for a held run is `Ok(Err(conflict))` with
    /// `conflict.held_by` set, and `self` is left unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// let mut meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// let held = meta.claim_unless_held(RunStatus::Running, 1, Timestamp(1), Some("pid 7"))?;
    /// assert_eq!(held.unwrap_err().held_by.as_deref(), Some("pid 7"));
    /// let won = meta.claim_unless_held(RunStatus::Running, 1, Timestamp(2), None)?.unwrap();
    /// assert_eq!(won.lease_epoch, 2);
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn claim_unless_held(
        &mut self,
        from: RunStatus,
        expected_epoch: u64,
        now: Timestamp,
        held_by: Option<&str>,
    ) -> Result<Result<RunMeta, crate::StatusConflict>, Error> {
        let Some(holder) = held_by else {
            return self.claim(from, expected_epoch, now);
        };
        // Decided on a copy, so a refusal leaves `self` exactly as it was.
        let mut next = self.clone();
        Ok(match next.claim(from, expected_epoch, now)? {
            Ok(_) => Err(self.held_conflict(from, Some(expected_epoch), holder)),
            Err(conflict) => Err(conflict),
        })
    }

    /// [`RunMeta::swap_status`] with the port's writer-lock rule on top, for adapters: a
    /// swap to `Running` is a claim, so while `held_by` names a live writer of the run it
    /// is refused as [`RunMeta::claim_unless_held`] refuses. Swaps to other statuses ignore
    /// `held_by`.
    ///
    /// # Errors
    ///
    /// As [`RunMeta::swap_status`]; a refusal for a held run is `Ok(Err(conflict))` with
    /// `conflict.held_by` set, and `self` is left unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// let mut meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// let held = Some("pid 7");
    /// meta.swap_status_unless_held(RunStatus::Running, RunStatus::Paused, Timestamp(1), held)?.unwrap();
    /// let refused = meta.swap_status_unless_held(RunStatus::Paused, RunStatus::Running, Timestamp(2), held)?;
    /// assert!(refused.unwrap_err().held_by_writer());
    /// assert_eq!((meta.status, meta.lease_epoch), (RunStatus::Paused, 1));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn swap_status_unless_held(
        &mut self,
        from: RunStatus,
        to: RunStatus,
        now: Timestamp,
        held_by: Option<&str>,
    ) -> Result<Result<RunMeta, crate::StatusConflict>, Error> {
        let Some(holder) = held_by.filter(|_| to == RunStatus::Running) else {
            return self.swap_status(from, to, now);
        };
        let mut next = self.clone();
        Ok(match next.swap_status(from, to, now)? {
            Ok(_) => Err(self.held_conflict(from, None, holder)),
            Err(conflict) => Err(conflict),
        })
    }

    /// The conflict a swap or claim expecting `expected` (at `expected_epoch`) meets here.
    fn conflict(&self, expected: RunStatus, expected_epoch: Option<u64>) -> crate::StatusConflict {
        crate::StatusConflict {
            expected,
            current: self.status,
            expected_epoch,
            current_epoch: self.lease_epoch,
            current_owner: self.owner.clone(),
            held_by: None,
        }
    }

    /// The conflict of a claim that would have won but meets a live writer, `holder`.
    fn held_conflict(
        &self,
        expected: RunStatus,
        expected_epoch: Option<u64>,
        holder: &str,
    ) -> crate::StatusConflict {
        crate::StatusConflict {
            held_by: Some(holder.to_owned()),
            ..self.conflict(expected, expected_epoch)
        }
    }

    /// Completed and cancelled runs never change again, whatever the caller expected.
    fn refuse_terminal(&self) -> Result<(), Error> {
        if self.status.is_terminal() {
            return Err(Error::Terminal {
                run_id: self.run_id.clone(),
                status: self.status,
            });
        }
        Ok(())
    }

    /// The lease moves to the current process, one epoch on; a claimed run is not finished.
    fn take_lease(&mut self) {
        self.lease_epoch += 1;
        self.owner = Some(Owner::current());
        self.finished_at = None;
    }
}

/// The port's first rule for an epoch-checked status swap
/// (`CheckpointerFactory::compare_and_swap_status_at`), for adapters to apply before they
/// read anything: a swap to `Running` would take the lease, which only a claim does, so it
/// is refused whatever is stored, for an unknown run too.
///
/// # Errors
///
/// `Error::ClaimRequired` naming `run_id` when `to` is `Running`.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{Error, RunId, RunStatus, refuse_claim_by_swap};
/// let id = RunId::new("r1")?;
/// assert!(refuse_claim_by_swap(&id, RunStatus::Cancelled).is_ok());
/// let refused = refuse_claim_by_swap(&id, RunStatus::Running);
/// assert!(matches!(refused, Err(Error::ClaimRequired { run_id }) if run_id == id));
/// # Ok::<(), Error>(())
/// ```
pub fn refuse_claim_by_swap(run_id: &RunId, to: RunStatus) -> Result<(), Error> {
    if to == RunStatus::Running {
        return Err(Error::ClaimRequired {
            run_id: run_id.clone(),
        });
    }
    Ok(())
}

/// Which runs `CheckpointerFactory::list` returns. `None` fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs in this scope.
    pub scope: Option<String>,
    /// Only runs in one of these statuses (empty: any).
    pub statuses: Vec<RunStatus>,
}

impl RunFilter {
    /// Whether `meta` passes this filter.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunFilter, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// let meta = RunMeta::new(RunId::new("r1")?, "nightly", "team-a", "", Timestamp(0));
    /// assert!(RunFilter::default().matches(&meta));
    /// let mut filter = RunFilter {
    ///     workflow: Some("nightly".to_owned()),
    ///     ..RunFilter::default()
    /// };
    /// assert!(filter.matches(&meta));
    /// // Every field that is set must match: this running run is in neither status.
    /// filter.statuses = vec![RunStatus::Failed, RunStatus::Paused];
    /// assert!(!filter.matches(&meta));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn matches(&self, meta: &RunMeta) -> bool {
        self.workflow.as_ref().is_none_or(|w| *w == meta.workflow)
            && self.scope.as_ref().is_none_or(|s| *s == meta.scope)
            && (self.statuses.is_empty() || self.statuses.contains(&meta.status))
    }
}

#[cfg(test)]
mod tests {
    use super::start_ticks;

    // Private: the `/proc/<pid>/stat` field parser, with command names that would shift a
    // naive whitespace split.
    #[test]
    fn start_ticks_is_field_22_whatever_the_command_name_holds() {
        let rest = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 19 20";
        for name in ["sleep", "a b", "x) (y", ") ) )", ""] {
            let stat = format!("1234 ({name}) {rest}");
            assert_eq!(start_ticks(&stat), Some(424_242), "name {name:?}");
        }
        assert_eq!(start_ticks("1234 (cut short) S 1 2"), None);
        assert_eq!(start_ticks("no parenthesis at all"), None);
    }
}
