//! What a run request asks for, and what the resume policy decided.

use std::fmt::Write as _;

use cairn_checkpoint::{Owner, RunError, RunId, RunMeta, RunStatus};
use cairn_queue::Timestamp;
use serde::{Deserialize, Serialize};

use crate::command::{CommandRenderer, SuggestedCommand};
use crate::preview::InputPreview;
pub use crate::quarantine::QuarantinedRunPrompt;

/// A request for a run of `workflow` in `scope` with `input`.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::RunId;
/// use cairn_runs::RunRequest;
/// let request = RunRequest::new("site", "default", "build B").force();
/// assert!(request.force);
/// let approval = RunRequest::new("site", "default", "").approve(RunId::new("r1")?);
/// assert_eq!(approval.approval.unwrap().run_id.as_str(), "r1");
/// # Ok::<(), cairn_checkpoint::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// The workflow's name.
    pub workflow: String,
    /// What the run belongs to (an install directory, a conversation, a tenant...).
    pub scope: String,
    /// What the caller asks for now. Never discarded: every decision carries it.
    pub input: String,
    /// An approval of a paused run: resume exactly that run, with no lookup and no prompt.
    pub approval: Option<Approval>,
    /// Start a fresh run even past a failed or paused one (which is left as it is).
    pub force: bool,
}

impl RunRequest {
    /// A plain request: no approval, not forced.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_runs::RunRequest;
    ///
    /// let request = RunRequest::new("site", "default", "build B");
    /// assert_eq!((request.workflow.as_str(), request.scope.as_str()), ("site", "default"));
    /// assert_eq!(request.input, "build B");
    /// assert!(request.approval.is_none());
    /// assert!(!request.force);
    /// ```
    pub fn new(
        workflow: impl Into<String>,
        scope: impl Into<String>,
        input: impl Into<String>,
    ) -> RunRequest {
        RunRequest {
            workflow: workflow.into(),
            scope: scope.into(),
            input: input.into(),
            approval: None,
            force: false,
        }
    }

    /// Carries the approval of the paused run `run_id`.
    ///
    /// # Examples
    ///
    /// An approval resumes exactly the run it names, and only for the request's workflow and
    /// scope:
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{Error, ResumePolicy, RunRequest};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// drop(store.begin(RunMeta::new(id.clone(), "deploy", "prod", "v2", Timestamp(1))).await?);
    /// store.compare_and_swap_status(&id, RunStatus::Running, RunStatus::Paused).await?.unwrap();
    ///
    /// let policy = ResumePolicy::new(store);
    /// let elsewhere = RunRequest::new("deploy", "staging", "").approve(id.clone());
    /// let Err(Error::ApprovalMismatch { found_scope, .. }) = policy.decide(&elsewhere).await
    /// else {
    ///     panic!("an approval for another scope must be refused");
    /// };
    /// assert_eq!(found_scope, "prod");
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn approve(mut self, run_id: RunId) -> RunRequest {
        self.approval = Some(Approval { run_id });
        self
    }

    /// Forces a fresh run past a failed or paused one.
    ///
    /// # Examples
    ///
    /// Force goes past a failed or paused run (see the crate example), never beside a live
    /// one:
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{Decision, ResumePolicy, RunRequest};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// // A writer drives this run right now.
    /// let meta = RunMeta::new(id.clone(), "site", "default", "build A", Timestamp(1));
    /// let writer = store.begin(meta).await?;
    ///
    /// let policy = ResumePolicy::new(store);
    /// let forced = RunRequest::new("site", "default", "build B").force();
    /// let Decision::Live(live) = policy.decide(&forced).await? else {
    ///     panic!("a live run is never given a second writer");
    /// };
    /// assert_eq!(live.run_id, id);
    /// drop(writer);
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn force(mut self) -> RunRequest {
        self.force = true;
        self
    }
}

/// The approval a paused run was waiting for. It names the run, so it can never be confused
/// with a request for a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The approved run.
    pub run_id: RunId,
}

/// What to do about a run request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Begin a new run (no prior run matched, or the caller forced one).
    Fresh(FreshRun),
    /// Drive this run: the policy already claimed it (status `running`, a new lease epoch).
    Resume(ResumedRun),
    /// A failed run matched. Nothing was resumed and nothing was started: ask the caller.
    FailedPrompt(FailedRunPrompt),
    /// A paused run matched but the request carries no approval. Nothing was started.
    AwaitingApproval(PausedRun),
    /// A run of this workflow and scope is live: a writer drives it right now, or another
    /// process on this host that is still alive claimed it and is about to drive it (a
    /// claim comes before the open). Starting another, or claiming it again, would make two
    /// writers; nothing was started and nothing was changed.
    Live(LiveRun),
    /// The newest run of this workflow and scope was quarantined before it finished: its
    /// stored state could not be used, so which of its tasks were done is unknown, and a fresh
    /// run would run them all again. Nothing was started: ask the caller.
    QuarantinePrompt(QuarantinedRunPrompt),
}

/// A run to begin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreshRun {
    /// The id to begin the run with (time-sortable, generated by the policy, so the record
    /// of a forced run, `ResumePolicy::fresh_run_begun`, names the run the host began).
    pub run_id: RunId,
    /// The workflow.
    pub workflow: String,
    /// The scope.
    pub scope: String,
    /// The caller's input.
    pub input: String,
    /// The failed or paused (or quarantined) run this fresh run was forced past, if any. That
    /// run is left exactly as it was and can still be resumed by id. Its `ForcedFresh` audit
    /// record is written by `ResumePolicy::fresh_run_begun` once this run has begun.
    pub forced_past: Option<RunId>,
    /// The status the run forced past had when the policy decided (`failed` or `paused`, or
    /// what a quarantined run had when it was quarantined). `None` when not forced.
    #[serde(default)]
    pub forced_past_status: Option<RunStatus>,
}

impl FreshRun {
    /// Metadata to `begin` this run with.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{MemoryFactory, RunStatus};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{Decision, ResumePolicy, RunRequest};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let policy = ResumePolicy::new(MemoryFactory::new());
    /// let request = RunRequest::new("site", "default", "build A");
    /// let Decision::Fresh(fresh) = policy.decide(&request).await? else { panic!() };
    /// let meta = fresh.meta(Timestamp(1_000));
    /// // Begun under the id the policy chose, with the request's input.
    /// assert_eq!(meta.run_id, fresh.run_id);
    /// assert_eq!((meta.workflow.as_str(), meta.input.as_str()), ("site", "build A"));
    /// assert_eq!((meta.status, meta.created_at), (RunStatus::Running, Timestamp(1_000)));
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn meta(&self, now: Timestamp) -> RunMeta {
        RunMeta::new(
            self.run_id.clone(),
            self.workflow.clone(),
            self.scope.clone(),
            self.input.clone(),
            now,
        )
    }
}

/// Why a run is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResumeReason {
    /// It was `running` with no live writer: the process driving it died (crash recovery).
    Interrupted,
    /// The request carried its approval.
    Approved,
    /// `resume(run_id)`: explicit intent.
    ById,
}

/// A run the policy claimed for the caller to drive. For the executor, both with
/// `meta.lease_epoch` (the executor refuses the run if another claim moved the lease on
/// since): `Start::Adopt` when `previous_status` is `failed` or `paused` (failed tasks get
/// fresh attempts), and `Start::AdoptInterrupted` when it is `running` (the interrupted run
/// only continues).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumedRun {
    /// The run's metadata right after the claim: status `running`, the new lease epoch,
    /// this process as owner. Its `input` is the run's own (prior) input.
    pub meta: RunMeta,
    /// The status it was claimed from.
    pub previous_status: RunStatus,
    /// Why it is resumed.
    pub reason: ResumeReason,
    /// The input of the request that led here, which the resumed run does NOT use (it
    /// re-runs its own). Kept so the caller can tell the user. `None` for `resume(run_id)`.
    pub requested_input: Option<String>,
}

/// A failed run that matched a request: the caller must choose a way forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRunPrompt {
    /// The failed run.
    pub run_id: RunId,
    /// Its workflow.
    pub workflow: String,
    /// Its scope.
    pub scope: String,
    /// When it failed.
    pub failed_at: Option<Timestamp>,
    /// Why it failed, as stored.
    pub error: Option<RunError>,
    /// The start of its input.
    pub prior_input: InputPreview,
    /// The input the caller gave now, in full.
    pub new_input: String,
}

impl FailedRunPrompt {
    /// The three ways forward, in the order they are offered.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// use cairn_runs::{FailedRunPrompt, InputPreview, WayForward};
    ///
    /// let prompt = FailedRunPrompt {
    ///     run_id: RunId::new("r1")?,
    ///     workflow: "site".into(),
    ///     scope: "default".into(),
    ///     failed_at: None,
    ///     error: None,
    ///     prior_input: InputPreview::new("build A"),
    ///     new_input: "build B".into(),
    /// };
    /// let [resume, abandon, force] = prompt.ways_forward();
    /// assert_eq!(resume, WayForward::ResumeById { run_id: prompt.run_id.clone() });
    /// // The other two carry the new input; resuming re-runs the failed run's own.
    /// assert!(matches!(abandon, WayForward::AbandonThenRun { input, .. } if input == "build B"));
    /// assert!(matches!(force, WayForward::ForceFresh { past, .. } if past == prompt.run_id));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn ways_forward(&self) -> [WayForward; 3] {
        ways_forward(&self.run_id, &self.new_input)
    }

    /// A plain-text message for a terminal, with shell command lines.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunError, RunId};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{CommandRenderer, FailedRunPrompt, InputPreview};
    /// let prompt = FailedRunPrompt {
    ///     run_id: RunId::new("r1")?,
    ///     workflow: "site".into(),
    ///     scope: "default".into(),
    ///     failed_at: Some(Timestamp(0)),
    ///     error: Some(RunError::new("task_failed", "build exited with 2")),
    ///     prior_input: InputPreview::new("build A"),
    ///     new_input: "build B".into(),
    /// };
    /// let text = prompt.render(&CommandRenderer::new("cairn").workflow("site.toml"));
    /// assert!(text.contains("1970-01-01 00:00:00 UTC"));
    /// assert!(text.contains("cairn resume r1"));
    /// assert!(text.contains("cairn run site.toml --force --input \"build B\""));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn render(&self, renderer: &CommandRenderer) -> String {
        let mut out = format!(
            "A previous run of workflow {} in scope {} failed. It was not resumed and nothing \
             was started.\n",
            terminal_safe(&self.workflow),
            terminal_safe(&self.scope)
        );
        let _ = writeln!(out, "  run:        {}", self.run_id);
        let _ = writeln!(out, "  failed at:  {}", timestamp_text(self.failed_at));
        let _ = writeln!(
            out,
            "  error:      {}",
            terminal_safe(&error_text(self.error.as_ref()))
        );
        let _ = writeln!(
            out,
            "  its input:  {}",
            terminal_safe(&self.prior_input.to_string())
        );
        let _ = writeln!(out, "  your input: {}", terminal_safe(&self.new_input));
        render_ways(&mut out, &self.ways_forward(), renderer, false);
        out
    }

    /// The same message as markdown: values in code spans, commands in fenced blocks, so
    /// no input can inject markup or close a fence.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// use cairn_runs::{CommandRenderer, FailedRunPrompt, InputPreview};
    ///
    /// let prompt = FailedRunPrompt {
    ///     run_id: RunId::new("r1")?,
    ///     workflow: "site".into(),
    ///     scope: "default".into(),
    ///     failed_at: None,
    ///     error: None,
    ///     prior_input: InputPreview::new("build A"),
    ///     new_input: "a `tick` and ```fences```".into(),
    /// };
    /// let md = prompt.render_markdown(&CommandRenderer::new("cairn"));
    /// assert!(md.contains("- run: `r1`"));
    /// // The input's backticks cannot close the code span around it...
    /// assert!(md.contains("- your input: ```` a `tick` and ```fences``` ````"));
    /// // ...and each command is in a fenced block of its list item.
    /// assert!(md.contains("   ```sh\n   cairn resume r1\n   ```"));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn render_markdown(&self, renderer: &CommandRenderer) -> String {
        let mut out = format!(
            "A previous run of workflow {} in scope {} **failed**. It was not resumed and \
             nothing was started.\n\n",
            code_span(&self.workflow),
            code_span(&self.scope)
        );
        let _ = writeln!(out, "- run: {}", code_span(self.run_id.as_str()));
        let _ = writeln!(
            out,
            "- failed at: {}",
            code_span(&timestamp_text(self.failed_at))
        );
        let _ = writeln!(
            out,
            "- error: {}",
            code_span(&error_text(self.error.as_ref()))
        );
        let _ = writeln!(
            out,
            "- its input: {}",
            code_span(&self.prior_input.to_string())
        );
        let _ = writeln!(out, "- your input: {}", code_span(&self.new_input));
        render_ways(&mut out, &self.ways_forward(), renderer, true);
        out
    }
}

/// A paused run that matched a request without an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedRun {
    /// The paused run.
    pub run_id: RunId,
    /// Its workflow.
    pub workflow: String,
    /// Its scope.
    pub scope: String,
    /// When its status last changed (when it paused).
    pub paused_since: Timestamp,
    /// The start of its input.
    pub prior_input: InputPreview,
    /// The input the caller gave now, in full.
    pub new_input: String,
}

impl PausedRun {
    /// The ways forward: approve it (resume by id), abandon it then run, or force a fresh run.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{InputPreview, PausedRun, WayForward};
    ///
    /// let paused = PausedRun {
    ///     run_id: RunId::new("r1")?,
    ///     workflow: "deploy".into(),
    ///     scope: "prod".into(),
    ///     paused_since: Timestamp(0),
    ///     prior_input: InputPreview::new("v1"),
    ///     new_input: "v2".into(),
    /// };
    /// let [approve, _, force] = paused.ways_forward();
    /// // Resuming a paused run by id is its approval.
    /// assert_eq!(approve, WayForward::ResumeById { run_id: paused.run_id.clone() });
    /// assert!(matches!(force, WayForward::ForceFresh { input, .. } if input == "v2"));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn ways_forward(&self) -> [WayForward; 3] {
        ways_forward(&self.run_id, &self.new_input)
    }

    /// A plain-text message for a terminal, with shell command lines.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{CommandRenderer, InputPreview, PausedRun};
    ///
    /// let paused = PausedRun {
    ///     run_id: RunId::new("r1")?,
    ///     workflow: "deploy".into(),
    ///     scope: "prod".into(),
    ///     paused_since: Timestamp(0),
    ///     // Stored input may hold escape sequences; they never reach the terminal.
    ///     prior_input: InputPreview::new("v1\u{1b}[2J"),
    ///     new_input: "v2".into(),
    /// };
    /// let renderer = CommandRenderer::new("cairn").workflow("deploy.toml").scope("prod");
    /// let text = paused.render(&renderer);
    /// assert!(text.contains("paused since: 1970-01-01 00:00:00 UTC"));
    /// assert!(text.contains("its input:    v1\u{FFFD}[2J"));
    /// assert!(text.contains("cairn resume r1"));
    /// assert!(text.contains("cairn run deploy.toml --scope prod --force --input v2"));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn render(&self, renderer: &CommandRenderer) -> String {
        let mut out = format!(
            "A run of workflow {} in scope {} is paused, waiting for an approval. Nothing was \
             started.\n",
            terminal_safe(&self.workflow),
            terminal_safe(&self.scope)
        );
        let _ = writeln!(out, "  run:          {}", self.run_id);
        let _ = writeln!(
            out,
            "  paused since: {}",
            timestamp_text(Some(self.paused_since))
        );
        let _ = writeln!(
            out,
            "  its input:    {}",
            terminal_safe(&self.prior_input.to_string())
        );
        let _ = writeln!(out, "  your input:   {}", terminal_safe(&self.new_input));
        render_ways(&mut out, &self.ways_forward(), renderer, false);
        out
    }
}

/// A run that a live writer is driving, or that a live process claimed to drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRun {
    /// The run.
    pub run_id: RunId,
    /// Its latest recorded owner.
    pub owner: Option<Owner>,
    /// Its lease epoch as last read.
    pub lease_epoch: u64,
}

/// One way forward from a failed (or paused) run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "way")]
#[non_exhaustive]
pub enum WayForward {
    /// Resume that run by id: it re-runs its own prior input.
    ResumeById {
        /// The run.
        run_id: RunId,
    },
    /// Abandon that run (it becomes `cancelled`), then run the new input.
    AbandonThenRun {
        /// The run to abandon.
        run_id: RunId,
        /// The new input.
        input: String,
    },
    /// Start the new input fresh and leave that run exactly as it is.
    ForceFresh {
        /// The run left as it is.
        past: RunId,
        /// The new input.
        input: String,
    },
    /// Start the new input fresh past a quarantined run, whose state stays where it is. Its
    /// done tasks run again.
    ForceFreshPastQuarantine {
        /// The quarantined run.
        past: RunId,
        /// The new input.
        input: String,
    },
}

impl WayForward {
    /// One sentence describing this way forward.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// use cairn_runs::WayForward;
    ///
    /// let way = WayForward::AbandonThenRun { run_id: RunId::new("r1")?, input: "B".into() };
    /// assert_eq!(way.summary(), "Abandon that run, then run your input");
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn summary(&self) -> &'static str {
        match self {
            WayForward::ResumeById { .. } => {
                "Resume that run (it re-runs its own input, not yours)"
            }
            WayForward::AbandonThenRun { .. } => "Abandon that run, then run your input",
            WayForward::ForceFresh { .. } => {
                "Run your input fresh and leave that run as it is (it can still be resumed)"
            }
            WayForward::ForceFreshPastQuarantine { .. } => {
                "Run your input fresh and leave that run's state where it is (its done tasks run \
                 again)"
            }
        }
    }

    /// The command line for this way forward.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// use cairn_runs::{CommandRenderer, WayForward};
    ///
    /// let way = WayForward::AbandonThenRun { run_id: RunId::new("r1")?, input: "say hi".into() };
    /// let command = way.command(&CommandRenderer::new("cairn").workflow("site.toml"));
    /// assert_eq!(command.steps.len(), 2);
    /// assert_eq!(command.shell(), r#"cairn abandon r1 && cairn run site.toml --input "say hi""#);
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn command(&self, renderer: &CommandRenderer) -> SuggestedCommand {
        match self {
            WayForward::ResumeById { run_id } => renderer.resume(run_id),
            WayForward::AbandonThenRun { run_id, input } => {
                renderer.abandon_then_run(run_id, input)
            }
            WayForward::ForceFresh { input, .. }
            | WayForward::ForceFreshPastQuarantine { input, .. } => renderer.run_forced(input),
        }
    }
}

fn ways_forward(run_id: &RunId, new_input: &str) -> [WayForward; 3] {
    [
        WayForward::ResumeById {
            run_id: run_id.clone(),
        },
        WayForward::AbandonThenRun {
            run_id: run_id.clone(),
            input: new_input.to_owned(),
        },
        WayForward::ForceFresh {
            past: run_id.clone(),
            input: new_input.to_owned(),
        },
    ]
}

pub(crate) fn render_ways(
    out: &mut String,
    ways: &[WayForward],
    renderer: &CommandRenderer,
    markdown: bool,
) {
    if markdown {
        out.push_str("\nWays forward:\n");
    } else {
        out.push_str("Ways forward:\n");
    }
    for (n, way) in ways.iter().enumerate() {
        let command = way.command(renderer);
        if markdown {
            let _ = write!(out, "\n{}. {}:\n\n", n + 1, way.summary());
            // Indent the fenced block so it belongs to the list item.
            for line in command.markdown().lines() {
                let _ = writeln!(out, "   {line}");
            }
        } else {
            let _ = writeln!(out, "  {}. {}:", n + 1, way.summary());
            // Shown to a terminal, so control characters are masked here; callers that
            // need the exact line use `SuggestedCommand::shell`.
            let _ = writeln!(out, "       {}", terminal_safe(&command.shell()));
        }
    }
}

fn error_text(error: Option<&RunError>) -> String {
    error.map_or_else(|| "(none recorded)".to_owned(), ToString::to_string)
}

/// A markdown code span that no backtick inside `text` can close: the delimiter is one
/// backtick longer than the longest run inside, padded with spaces (CommonMark strips one).
pub(crate) fn code_span(text: &str) -> String {
    let mut longest = 0;
    let mut current = 0;
    for c in text.chars() {
        if c == '`' {
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    // Newlines would end a list item's paragraph oddly; a code span shows them as spaces anyway.
    let flat = text.replace(['\n', '\r'], " ");
    if flat.is_empty() {
        return "` `".to_owned();
    }
    let fence = "`".repeat(longest + 1);
    if longest == 0 {
        format!("{fence}{flat}{fence}")
    } else {
        // The spaces keep a backtick at either end from joining the fence; CommonMark
        // strips one space on each side.
        format!("{fence} {flat} {fence}")
    }
}

/// Text for a terminal: control characters other than newline and tab become U+FFFD, so
/// stored input cannot send escape sequences to the user's terminal.
pub(crate) fn terminal_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// Formats a millisecond Unix timestamp as `YYYY-MM-DD HH:MM:SS UTC` (the queue's
/// `Display` of `Timestamp`, so every message shows time the same way).
pub(crate) fn timestamp_text(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "(unknown)".to_owned(), |at| at.to_string())
}
