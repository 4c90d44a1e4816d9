//! The queue compaction keeps in memory between snapshots, with the tasks' inputs kept as
//! JSON text.
//!
//! Compaction brings a queue up to date with the records written since the last snapshot
//! and writes that queue's snapshot. Keeping it between compactions spares reading the
//! snapshot back each time, but it is a second copy of every task beside the executor's
//! own queue. A task's inputs are most of a task (a shell task's six fields as a JSON value
//! take about 900 bytes, their text about 100), and nothing but the snapshot ever reads
//! them here: the queue's transitions never look at inputs. So [`Shadow`] keeps its queue
//! with every task's inputs null and the inputs apart, encoded, and writes them back into
//! the snapshot as it is serialized.

use cairn_queue::{Event, Queue, QueueConfig, Snapshot, Task};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// A queue whose tasks' inputs are held as JSON text; see the module docs.
#[derive(Debug)]
pub(crate) struct Shadow {
    /// The queue, every task's `inputs` null.
    queue: Queue,
    /// Each task's inputs, encoded, by task index.
    inputs: Vec<Box<RawValue>>,
}

impl Shadow {
    /// An empty queue.
    pub(crate) fn new(config: QueueConfig) -> Shadow {
        Shadow {
            queue: Queue::new(config),
            inputs: Vec::new(),
        }
    }

    /// The queue of `snapshot` (`Queue::from_snapshot`), or an empty one for `None`.
    ///
    /// # Errors
    ///
    /// What `Queue::from_snapshot` returns (its checks do not look at inputs).
    pub(crate) fn from_snapshot(
        snapshot: Option<Snapshot>,
        config: QueueConfig,
    ) -> Result<Shadow, Refused> {
        let Some(mut snapshot) = snapshot else {
            return Ok(Shadow::new(config));
        };
        let mut inputs = Vec::with_capacity(snapshot.tasks.len());
        for task in &mut snapshot.tasks {
            inputs.push(encode(&std::mem::take(&mut task.inputs))?);
        }
        Ok(Shadow {
            queue: Queue::from_snapshot(snapshot, config).map_err(Refused::Queue)?,
            inputs,
        })
    }

    /// Applies `event` as `Queue::apply` does, keeping an enqueued task's inputs apart.
    ///
    /// # Errors
    ///
    /// As [`Shadow::apply_kept`].
    pub(crate) fn apply(&mut self, event: Event) -> Result<(), Refused> {
        self.apply_kept(Kept::owned(event)?)
    }

    /// Applies a kept event as `Queue::apply` applies the event it was made from.
    ///
    /// An amendment's new inputs are applied as they are, since the queue checks them
    /// against its dedup guard, and then replace the text kept for the task. The queue's
    /// copy of an amended task's inputs stays (amendments are few). Because the other tasks'
    /// inputs are null here, an amendment to null inputs of a dedup-guarded task can be
    /// refused here where the executor's queue took it; compaction then turns off for the
    /// writer, and nothing is lost (the journal just grows).
    ///
    /// # Errors
    ///
    /// What `Queue::apply` returns for the event, inputs included: inputs nested too deep
    /// were left in the event (see [`Kept::of`]), so that the queue refuses them as it
    /// always did.
    pub(crate) fn apply_kept(&mut self, kept: Kept) -> Result<(), Refused> {
        let amended = match &kept.event {
            Event::Amended { id, inputs, .. } if !cairn_queue::nests_too_deep(inputs) => {
                Some((*id, encode(inputs)?))
            }
            _ => None,
        };
        self.queue.apply(&kept.event).map_err(Refused::Queue)?;
        if let Some(inputs) = kept.inputs {
            // Only an `Enqueued` carries inputs apart, and an applied one added exactly one
            // task, the last.
            self.inputs.push(inputs);
        }
        if let Some((id, inputs)) = amended {
            // An applied `Amended` names a task the queue holds, so one this holds too.
            if let Some(kept) = self.inputs.get_mut(id.0 as usize) {
                *kept = inputs;
            }
        }
        Ok(())
    }

    /// The snapshot, serializing exactly as the same queue with its inputs in place
    /// (`Queue::snapshot_view`) does. `pretty` is for a pretty-printing serializer, which
    /// would write the stored text as it is (on one line): each task's inputs are then
    /// decoded again first, so the file looks as it always did.
    pub(crate) fn snapshot(&self, pretty: bool) -> impl Serialize + '_ {
        self.queue.snapshot_view().with_inputs(move |task: &Task| {
            let text = &self.inputs[task.id.0 as usize];
            if pretty {
                Inputs::Decoded(text)
            } else {
                Inputs::Text(text)
            }
        })
    }
}

/// An event as compaction keeps it between the append that wrote it and the compaction
/// that applies it: an `Enqueued` event's inputs are taken out as JSON text (the event
/// holds null instead), which takes a fraction of a JSON value's memory and is what
/// [`Shadow`] holds anyway. Keeping events this way, rather than the records' bytes,
/// spares compaction decoding every record again.
#[derive(Debug)]
pub(crate) struct Kept {
    /// The event, with an `Enqueued` event's inputs null when `inputs` holds them.
    event: Event,
    /// An `Enqueued` event's inputs, encoded; `None` for every other event.
    inputs: Option<Box<RawValue>>,
}

impl Kept {
    /// `event` as compaction keeps it. Inputs nested too deep stay in the event, so that
    /// [`Shadow::apply_kept`] refuses them as the queue always did.
    ///
    /// # Errors
    ///
    /// The encoder's error if the inputs cannot be encoded (a JSON value always can be).
    pub(crate) fn of(event: &Event) -> Result<Kept, serde_json::Error> {
        match event {
            Event::Enqueued {
                id,
                kind,
                inputs,
                depends_on,
                max_attempts,
                enqueued_by,
                dedup,
                at,
            } if !cairn_queue::nests_too_deep(inputs) => Ok(Kept {
                // Built field by field so that the inputs are never cloned.
                event: Event::Enqueued {
                    id: *id,
                    kind: kind.clone(),
                    inputs: serde_json::Value::Null,
                    depends_on: depends_on.clone(),
                    max_attempts: *max_attempts,
                    enqueued_by: *enqueued_by,
                    dedup: *dedup,
                    at: *at,
                },
                inputs: Some(serde_json::value::to_raw_value(inputs)?),
            }),
            other => Ok(Kept {
                event: other.clone(),
                inputs: None,
            }),
        }
    }

    /// As [`Kept::of`], taking the inputs out of an owned event instead of copying it.
    fn owned(mut event: Event) -> Result<Kept, Refused> {
        let inputs = match &mut event {
            Event::Enqueued { inputs, .. } if !cairn_queue::nests_too_deep(inputs) => {
                Some(encode(&std::mem::take(inputs))?)
            }
            _ => None,
        };
        Ok(Kept { event, inputs })
    }
}

/// A task's inputs as [`Shadow::snapshot`] writes them.
enum Inputs<'a> {
    /// The text, as it is.
    Text(&'a RawValue),
    /// The text decoded to a JSON value, for a pretty-printer to lay out.
    Decoded(&'a RawValue),
}

impl Serialize for Inputs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Inputs::Text(text) => text.serialize(serializer),
            Inputs::Decoded(text) => serde_json::from_str::<serde_json::Value>(text.get())
                .map_err(serde::ser::Error::custom)?
                .serialize(serializer),
        }
    }
}

/// Why [`Shadow`] refused a snapshot or an event.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The queue refused it.
    Queue(cairn_queue::Error),
    /// Inputs could not be encoded (a JSON value always can be).
    Encoding(serde_json::Error),
}

/// `value` as JSON text, exactly as a task's inputs are written into a snapshot.
fn encode(value: &serde_json::Value) -> Result<Box<RawValue>, Refused> {
    serde_json::value::to_raw_value(value).map_err(Refused::Encoding)
}

#[cfg(test)]
mod tests {
    //! A shadow must write the snapshot its queue would with the inputs in place, byte for
    //! byte, however it was built.

    use cairn_queue::{
        EnqueuedBy, Event, Handoff, MAX_VALUE_DEPTH, Queue, QueueConfig, TaskError, TaskSpec,
        Timestamp,
    };
    use serde_json::json;

    use super::{Kept, Shadow};

    /// A queue with varied inputs and every kind of event, the events it produced, and its
    /// snapshot after the first `mid` of them.
    fn history(mid: usize) -> (Queue, Vec<Event>, cairn_queue::Snapshot) {
        let mut q = Queue::new(QueueConfig::default());
        let t = Timestamp;
        let mut events = Vec::new();
        q.start_phase(0, "build").unwrap();
        let inputs = [
            json!({"id": "a", "run": "echo \"quoted\"\n\ttabbed \u{e9}\u{1f600}", "env": {"B": "2", "A": "1"},
                   "cwd": null, "timeout_ms": 30000, "permanent_exit_codes": [3, 4]}),
            json!(null),
            json!([1, -2, 3.5, 1e300, 0.1, "x", [], {}, {"nested": [{"deep": true}]}]),
            json!("just text"),
            json!({}),
        ];
        let mut ids = Vec::new();
        for (n, inputs) in inputs.into_iter().enumerate() {
            let spec = TaskSpec::new(if n % 2 == 0 { "shell" } else { "other" })
                .inputs(inputs)
                .depends_on(ids.last().copied());
            ids.push(q.enqueue(spec, EnqueuedBy::Root, t(1)).unwrap().id);
        }
        events.extend(q.take_events());
        q.start(ids[0], t(2)).unwrap();
        let follow = TaskSpec::new("child").inputs(json!({"from": 0}));
        let child = q
            .enqueue(follow, EnqueuedBy::Task(ids[0]), t(3))
            .unwrap()
            .id;
        let handoff = Handoff {
            done: vec!["`a` exited 0".to_owned()],
            extra: json!({"n": 1.25}),
            ..Handoff::default()
        };
        q.complete(ids[0], handoff, t(4)).unwrap();
        q.start(ids[1], t(5)).unwrap();
        q.fail(
            ids[1],
            TaskError::new("exit_code", "exited 1"),
            false,
            t(6),
            t(6),
        )
        .unwrap();
        q.start(child, t(7)).unwrap();
        q.skip(child, Handoff::default(), t(8)).unwrap();
        // Amended inputs must reach the snapshot (the failed task, then a pending one).
        q.amend(ids[1], json!({"run": "fixed"}), Some(3), t(9))
            .unwrap();
        q.amend(ids[3], json!(["amended", 2]), None, t(9)).unwrap();
        q.complete_phase(0, "build").ok();
        events.extend(q.take_events());
        let mut replayed = Queue::new(QueueConfig::default());
        for event in &events[..mid] {
            replayed.apply(event).unwrap();
        }
        (q, events, replayed.snapshot())
    }

    fn assert_same(shadow: &Shadow, queue: &Queue) {
        assert_eq!(
            serde_json::to_string(&shadow.snapshot(false)).unwrap(),
            serde_json::to_string(&queue.snapshot_view()).unwrap()
        );
        assert_eq!(
            serde_json::to_string_pretty(&shadow.snapshot(true)).unwrap(),
            serde_json::to_string_pretty(&queue.snapshot_view()).unwrap()
        );
    }

    #[test]
    fn a_shadow_replayed_from_events_writes_the_queues_snapshot() {
        let (queue, events, _) = history(0);
        let mut shadow = Shadow::new(QueueConfig::default());
        for event in events {
            shadow.apply(event).unwrap();
        }
        assert_same(&shadow, &queue);
    }

    #[test]
    fn a_shadow_replayed_from_kept_events_writes_the_queues_snapshot() {
        // The writer's path: each event kept by reference at append, applied later.
        let (queue, events, _) = history(0);
        let kept: Vec<Kept> = events.iter().map(|e| Kept::of(e).unwrap()).collect();
        // An enqueue keeps its inputs apart; nothing else does.
        for (event, kept) in events.iter().zip(&kept) {
            let enqueued = matches!(event, Event::Enqueued { .. });
            assert_eq!(kept.inputs.is_some(), enqueued, "{event:?}");
            if enqueued {
                assert!(matches!(
                    &kept.event,
                    Event::Enqueued { inputs, .. } if inputs.is_null()
                ));
            }
        }
        let mut shadow = Shadow::new(QueueConfig::default());
        for kept in kept {
            shadow.apply_kept(kept).unwrap();
        }
        assert_same(&shadow, &queue);
    }

    #[test]
    fn a_shadow_from_a_snapshot_and_later_events_writes_the_queues_snapshot() {
        // Every cut, so that some snapshots hold an amended task and some see the amendment
        // as a later event.
        let count = history(0).1.len();
        assert!(
            history(0)
                .1
                .iter()
                .any(|e| matches!(e, Event::Amended { .. }))
        );
        for mid in 0..=count {
            let (queue, events, snapshot) = history(mid);
            let mut shadow = Shadow::from_snapshot(Some(snapshot), QueueConfig::default()).unwrap();
            for event in events.into_iter().skip(mid) {
                shadow.apply(event).unwrap();
            }
            assert_same(&shadow, &queue);
        }
    }

    #[test]
    fn inputs_nested_too_deep_are_refused_as_the_queue_refuses_them() {
        let mut deep = json!(1);
        for _ in 0..=MAX_VALUE_DEPTH {
            deep = json!([deep]);
        }
        let event = Event::Enqueued {
            id: cairn_queue::TaskId(0),
            kind: "t".to_owned(),
            inputs: deep,
            depends_on: Vec::new(),
            max_attempts: 1,
            enqueued_by: EnqueuedBy::Root,
            dedup: true,
            at: Timestamp(0),
        };
        let expected = Queue::new(QueueConfig::default())
            .apply(&event)
            .unwrap_err();
        let mut shadow = Shadow::new(QueueConfig::default());
        match shadow.apply_kept(Kept::of(&event).unwrap()) {
            Err(super::Refused::Queue(error)) => assert_eq!(error, expected),
            other => panic!("expected the queue's refusal, got {other:?}"),
        }
        match shadow.apply(event) {
            Err(super::Refused::Queue(error)) => assert_eq!(error, expected),
            other => panic!("expected the queue's refusal, got {other:?}"),
        }
        assert_same(&shadow, &Queue::new(QueueConfig::default()));
    }
}
