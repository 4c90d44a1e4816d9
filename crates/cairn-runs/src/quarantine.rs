//! Runs whose state was quarantined before they finished: the question a fresh run must ask
//! first, and how an operator settles it.
//!
//! A quarantined run cannot be opened or resumed, so cairn no longer knows which of its tasks
//! were done. A fresh run of its workflow and scope would run them all again, which is the
//! kind of decision a person must make: [`ResumePolicy::decide`] returns
//! [`Decision::QuarantinePrompt`] until the run is abandoned
//! ([`ResumePolicy::abandon_quarantined`]) or a run is forced past it.

use std::fmt::Write as _;

use cairn_checkpoint::{AuditAction, QuarantinedRun, RunId, RunMeta, RunStatus};
use cairn_queue::Timestamp;
use cairn_telemetry::{emit, names};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::command::CommandRenderer;
use crate::decision::{
    Decision, RunRequest, WayForward, code_span, render_ways, terminal_safe, timestamp_text,
};
use crate::error::{Error, Result};
use crate::policy::ResumePolicy;
use crate::preview::InputPreview;

/// The newest run of a workflow and scope, quarantined before it finished: the caller must
/// choose a way forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedRunPrompt {
    /// The quarantined run.
    pub run_id: RunId,
    /// Its workflow.
    pub workflow: String,
    /// Its scope.
    pub scope: String,
    /// The status it had when it was quarantined (`running`, `paused` or `failed`).
    pub status: RunStatus,
    /// When it was quarantined.
    pub quarantined_at: Timestamp,
    /// Why, as its audit log says.
    pub reason: String,
    /// Where its state was moved (kept, never deleted).
    pub location: String,
    /// The start of its input.
    pub prior_input: InputPreview,
    /// The input the caller gave now, in full.
    pub new_input: String,
    /// Set when its audit log cannot be read (why): an abandon could not be recorded where
    /// the lookup reads it, so only the forced run is offered.
    pub audit_damage: Option<String>,
}

impl QuarantinedRunPrompt {
    /// The ways forward, in the order they are offered: abandon it (its state stays where
    /// it is) then run, unless its audit log cannot be read; and force a fresh run past it.
    /// Resuming it is not one: nothing can open its state.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunId, RunStatus};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{InputPreview, QuarantinedRunPrompt, WayForward};
    ///
    /// let mut prompt = QuarantinedRunPrompt {
    ///     run_id: RunId::new("r1")?,
    ///     workflow: "site".into(),
    ///     scope: "default".into(),
    ///     status: RunStatus::Running,
    ///     quarantined_at: Timestamp(0),
    ///     reason: "journal.log is damaged at byte 96".into(),
    ///     location: "/s/quarantine/r1-0".into(),
    ///     prior_input: InputPreview::new("build A"),
    ///     new_input: "build B".into(),
    ///     audit_damage: None,
    /// };
    /// let ways = prompt.ways_forward();
    /// assert!(matches!(ways[..], [
    ///     WayForward::AbandonThenRun { .. },
    ///     WayForward::ForceFreshPastQuarantine { .. },
    /// ]));
    /// // An abandon could not be recorded in an unreadable audit log: only force is left.
    /// prompt.audit_damage = Some("audit.log is damaged".into());
    /// let ways = prompt.ways_forward();
    /// assert!(matches!(ways[..], [WayForward::ForceFreshPastQuarantine { .. }]));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn ways_forward(&self) -> Vec<WayForward> {
        let mut ways = Vec::with_capacity(2);
        if self.audit_damage.is_none() {
            ways.push(WayForward::AbandonThenRun {
                run_id: self.run_id.clone(),
                input: self.new_input.clone(),
            });
        }
        ways.push(WayForward::ForceFreshPastQuarantine {
            past: self.run_id.clone(),
            input: self.new_input.clone(),
        });
        ways
    }

    /// A plain-text message for a terminal, with shell command lines.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunId, RunStatus};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{CommandRenderer, InputPreview, QuarantinedRunPrompt};
    /// let prompt = QuarantinedRunPrompt {
    ///     run_id: RunId::new("r1")?,
    ///     workflow: "site".into(),
    ///     scope: "default".into(),
    ///     status: RunStatus::Running,
    ///     quarantined_at: Timestamp(0),
    ///     reason: "journal.log is damaged at byte 96".into(),
    ///     location: "/s/quarantine/r1-0".into(),
    ///     prior_input: InputPreview::new("build A"),
    ///     new_input: "build B".into(),
    ///     audit_damage: None,
    /// };
    /// let text = prompt.render(&CommandRenderer::new("cairn").workflow("site.toml"));
    /// assert!(text.contains("/s/quarantine/r1-0"));
    /// assert!(text.contains("cairn abandon r1 && cairn run site.toml --input \"build B\""));
    /// assert!(text.contains("cairn run site.toml --force --input \"build B\""));
    /// assert!(!text.contains("cairn resume"));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn render(&self, renderer: &CommandRenderer) -> String {
        let mut out = format!(
            "The last run of workflow {} in scope {} was quarantined before it finished: its \
             stored state could not be used, so which of its tasks were done is unknown. \
             Nothing was started: a fresh run would run them all again.\n",
            terminal_safe(&self.workflow),
            terminal_safe(&self.scope)
        );
        let _ = writeln!(out, "  run:            {}", self.run_id);
        let _ = writeln!(out, "  it was:         {}", self.status);
        let _ = writeln!(
            out,
            "  quarantined at: {}",
            timestamp_text(Some(self.quarantined_at))
        );
        let _ = writeln!(out, "  why:            {}", terminal_safe(&self.reason));
        let _ = writeln!(out, "  state kept at:  {}", terminal_safe(&self.location));
        let _ = writeln!(
            out,
            "  its input:      {}",
            terminal_safe(&self.prior_input.to_string())
        );
        let _ = writeln!(out, "  your input:     {}", terminal_safe(&self.new_input));
        if let Some(damage) = &self.audit_damage {
            let _ = writeln!(
                out,
                "  audit log:      unreadable ({}), so it cannot be abandoned",
                terminal_safe(damage)
            );
        }
        render_ways(&mut out, &self.ways_forward(), renderer, false);
        out
    }

    /// The same message as markdown: values in code spans, commands in fenced blocks.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunId, RunStatus};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{CommandRenderer, InputPreview, QuarantinedRunPrompt};
    ///
    /// let prompt = QuarantinedRunPrompt {
    ///     run_id: RunId::new("r1")?,
    ///     workflow: "site".into(),
    ///     scope: "default".into(),
    ///     status: RunStatus::Failed,
    ///     quarantined_at: Timestamp(0),
    ///     reason: "journal.log is damaged at byte 96".into(),
    ///     location: "/s/quarantine/r1-0".into(),
    ///     prior_input: InputPreview::new("build A"),
    ///     new_input: "build B".into(),
    ///     audit_damage: Some("audit.log is damaged".into()),
    /// };
    /// let md = prompt.render_markdown(&CommandRenderer::new("cairn"));
    /// assert!(md.contains("- it was: `failed`"));
    /// assert!(md.contains("- state kept at: `/s/quarantine/r1-0`"));
    /// assert!(md.contains("so it cannot be abandoned"));
    /// // Only the forced run is offered.
    /// assert!(!md.contains("cairn abandon"));
    /// assert!(md.contains("cairn run --force --input \"build B\""));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn render_markdown(&self, renderer: &CommandRenderer) -> String {
        let mut out = format!(
            "The last run of workflow {} in scope {} was **quarantined** before it finished: \
             which of its tasks were done is unknown. Nothing was started: a fresh run would run \
             them all again.\n\n",
            code_span(&self.workflow),
            code_span(&self.scope)
        );
        let _ = writeln!(out, "- run: {}", code_span(self.run_id.as_str()));
        let _ = writeln!(out, "- it was: {}", code_span(self.status.as_str()));
        let _ = writeln!(
            out,
            "- quarantined at: {}",
            code_span(&timestamp_text(Some(self.quarantined_at)))
        );
        let _ = writeln!(out, "- why: {}", code_span(&self.reason));
        let _ = writeln!(out, "- state kept at: {}", code_span(&self.location));
        let _ = writeln!(
            out,
            "- its input: {}",
            code_span(&self.prior_input.to_string())
        );
        let _ = writeln!(out, "- your input: {}", code_span(&self.new_input));
        if let Some(damage) = &self.audit_damage {
            let _ = writeln!(
                out,
                "- audit log: unreadable ({}), so it cannot be abandoned",
                code_span(damage)
            );
        }
        render_ways(&mut out, &self.ways_forward(), renderer, true);
        out
    }
}

/// A quarantined run as [`ResumePolicy::quarantined_runs`] lists it: what the store says
/// about it, and whether its lost progress was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// What the store lists.
    pub run: QuarantinedRun,
    /// When it was settled: abandoned ([`ResumePolicy::abandon_quarantined`]) or a fresh run
    /// forced past it. `None` while its lost progress still asks before a fresh run of its
    /// workflow and scope, and when its audit log cannot be read.
    pub settled_at: Option<Timestamp>,
}

/// A quarantined run of the request's workflow and scope, as the lookup weighs it.
pub(crate) struct LostRun {
    /// What the store lists about it.
    pub(crate) entry: QuarantinedRun,
    /// Its metadata as quarantined (only entries whose metadata could be parsed can belong
    /// to a workflow and scope), with `run_id` set to the id it was stored under (stored
    /// metadata may name another run).
    pub(crate) meta: RunMeta,
}

/// When the quarantined run `audit` belongs to was settled: the first `Abandoned` or
/// `ForcedFresh` record after its newest `Quarantined` record. A person decided about its
/// lost progress either way, so the question is not asked again, even once the forced run is
/// pruned.
fn settled_at(audit: &[cairn_checkpoint::AuditRecord]) -> Option<Timestamp> {
    let quarantined = audit
        .iter()
        .rposition(|record| record.action == AuditAction::Quarantined)?;
    audit[quarantined..]
        .iter()
        .find(|record| {
            matches!(
                record.action,
                AuditAction::Abandoned | AuditAction::ForcedFresh
            )
        })
        .map(|record| record.at)
}

impl ResumePolicy {
    /// Settles a run that was quarantined before it finished: an operator gives up its lost
    /// progress, so a plain request for its workflow and scope starts fresh again. Its state
    /// stays where the quarantine moved it; only its audit log gains an `Abandoned` record
    /// (`detail.quarantined: true` and the location).
    ///
    /// # Errors
    ///
    /// - `Error::NotFound` when no quarantined run has this id.
    /// - `Error::QuarantineAbandoned` when it was settled already (abandoned, or a fresh run
    ///   was forced past it), with when.
    /// - `Error::QuarantineUnattributed` when its metadata cannot be parsed: it belongs to no
    ///   known workflow, never makes a run ask, and has nothing to abandon.
    /// - `Error::QuarantineAuditUnreadable` when its audit log cannot be read, so the abandon
    ///   could not be recorded where the lookup reads it (force a run past it instead).
    /// - `Error::Storage` when the store fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{Decision, Error, ResumePolicy, RunRequest};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// drop(store.begin(RunMeta::new(id.clone(), "site", "default", "A", Timestamp(1))).await?);
    /// store.quarantine(&id, "its journal is damaged").await?;
    ///
    /// let policy = ResumePolicy::new(store);
    /// let request = RunRequest::new("site", "default", "B");
    /// assert!(matches!(policy.decide(&request).await?, Decision::QuarantinePrompt(_)));
    /// assert!(matches!(policy.abandon(&id).await, Err(Error::Quarantined { .. })));
    /// policy.abandon_quarantined(&id).await?;
    /// assert!(matches!(policy.decide(&request).await?, Decision::Fresh(_)));
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Safe to call again after a drop. It only reads until its one write, the `Abandoned`
    /// record: dropped before that was stored, nothing changed; once it is stored, the run
    /// is settled, and a second call fails with `QuarantineAbandoned`. A drop during that
    /// write may store the record without emitting `orchestrator run_abandoned`.
    pub async fn abandon_quarantined(&self, run_id: &RunId) -> Result<QuarantinedRun> {
        let entry = self
            .factory()
            .list_quarantined()
            .await?
            .into_iter()
            .rev()
            .find(|entry| entry.run_id == *run_id)
            .ok_or_else(|| Error::NotFound {
                run_id: run_id.clone(),
            })?;
        if entry.meta.is_none() {
            return Err(Error::QuarantineUnattributed {
                run_id: run_id.clone(),
                location: entry.location,
            });
        }
        // An abandon is only worth recording where the next lookup can read it.
        let audit = match self.factory().read_audit(run_id).await {
            Ok(audit) => audit,
            Err(source) => {
                return Err(Error::QuarantineAuditUnreadable {
                    run_id: run_id.clone(),
                    source,
                });
            }
        };
        if let Some(at) = settled_at(&audit) {
            return Err(Error::QuarantineAbandoned {
                run_id: run_id.clone(),
                at,
            });
        }
        let previous = entry
            .meta
            .as_ref()
            .map_or("unknown", |meta| meta.status.as_str());
        let detail = json!({
            "quarantined": true,
            "location": entry.location,
            "previous_status": previous,
            "forced": false,
        });
        self.audit(
            run_id,
            AuditAction::Abandoned,
            format!(
                "quarantined run abandoned: its lost progress will not be recovered; its state \
                 stays at {}",
                entry.location
            ),
            detail,
        )
        .await?;
        emit::run_abandoned(run_id.as_str(), previous);
        Ok(entry)
    }

    /// Every quarantined run in the store, oldest quarantine first, with whether it was
    /// settled. An audit log that cannot be read counts as not settled.
    ///
    /// # Errors
    ///
    /// `Error::Storage` when the store cannot list them.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::ResumePolicy;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// drop(store.begin(RunMeta::new(id.clone(), "site", "default", "A", Timestamp(1))).await?);
    /// store.quarantine(&id, "damaged").await?;
    /// let policy = ResumePolicy::new(store);
    /// assert_eq!(policy.quarantined_runs().await?[0].settled_at, None);
    /// policy.abandon_quarantined(&id).await?;
    /// assert!(policy.quarantined_runs().await?[0].settled_at.is_some());
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn quarantined_runs(&self) -> Result<Vec<QuarantineEntry>> {
        let mut listed = Vec::new();
        for run in self.factory().list_quarantined().await? {
            let audit = self
                .factory()
                .read_audit(&run.run_id)
                .await
                .unwrap_or_default();
            listed.push(QuarantineEntry {
                settled_at: settled_at(&audit),
                run,
            });
        }
        Ok(listed)
    }

    /// The quarantined runs of the request's workflow and scope whose metadata could be read,
    /// oldest first (by `created_at`, then id, like `list`).
    pub(crate) async fn lost_runs(&self, request: &RunRequest) -> Result<Vec<LostRun>> {
        let mut lost: Vec<LostRun> = self
            .factory()
            .list_quarantined()
            .await?
            .into_iter()
            .filter_map(|entry| {
                let mut meta = entry.meta.clone()?;
                meta.run_id = entry.run_id.clone();
                (meta.workflow == request.workflow && meta.scope == request.scope)
                    .then_some(LostRun { entry, meta })
            })
            .collect();
        lost.sort_by(|a, b| {
            (a.meta.created_at, &a.meta.run_id).cmp(&(b.meta.created_at, &b.meta.run_id))
        });
        Ok(lost)
    }

    /// The decision when the newest run of the scope is `lost`: the prompt, a forced fresh
    /// run, or (when it finished before the quarantine or was abandoned since) a fresh run,
    /// since a settled or finished run supersedes older ones like a finished run does.
    pub(crate) async fn past_lost_run(
        &self,
        lost: &LostRun,
        request: &RunRequest,
    ) -> Result<Decision> {
        if lost.meta.status.is_terminal() {
            return self.fresh(request, None).await;
        }
        // A damaged audit log cannot say it was settled: ask (the safe answer), offering only
        // the forced run, since an abandon could not be recorded where this lookup reads.
        let audit_damage = match self.factory().read_audit(&lost.entry.run_id).await {
            Ok(audit) if settled_at(&audit).is_some() => {
                return self.fresh(request, None).await;
            }
            Ok(_) => None,
            Err(source) => Some(source.to_string()),
        };
        if request.force {
            return self.fresh(request, Some(&lost.meta)).await;
        }
        tracing::warn!(
            target: names::DETAIL_TARGET,
            run_id = lost.entry.run_id.as_str(),
            workflow = request.workflow.as_str(),
            scope = request.scope.as_str(),
            location = lost.entry.location.as_str(),
            "resume policy: the newest run was quarantined before it finished; not starting a \
             fresh run that would repeat its done tasks"
        );
        Ok(Decision::QuarantinePrompt(QuarantinedRunPrompt {
            run_id: lost.entry.run_id.clone(),
            workflow: lost.meta.workflow.clone(),
            scope: lost.meta.scope.clone(),
            status: lost.meta.status,
            quarantined_at: lost.entry.at,
            reason: lost.entry.reason.clone(),
            location: lost.entry.location.clone(),
            prior_input: InputPreview::new(&lost.meta.input),
            new_input: request.input.clone(),
            audit_damage,
        }))
    }
}
