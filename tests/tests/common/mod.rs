//! What the explicit-resume flows share: a two-task plan whose first task fails once.

use std::sync::{Arc, Mutex};

use cairn_checkpoint::CheckpointerFactory;
use cairn_executor::{
    Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, TaskFailure, handler_fn,
};
use cairn_queue::{Handoff, TaskSpec};

/// The bodies run so far in this process, by task kind.
#[derive(Clone, Default)]
pub(crate) struct Bodies(Arc<Mutex<Vec<&'static str>>>);

impl Bodies {
    /// Records a body of `kind`; returns how many of that kind ran, this one included.
    fn record(&self, kind: &'static str) -> usize {
        let mut bodies = self.0.lock().unwrap();
        bodies.push(kind);
        bodies.iter().filter(|k| **k == kind).count()
    }

    /// How many bodies of `kind` ran.
    pub(crate) fn count(&self, kind: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|k| **k == kind)
            .count()
    }
}

/// An executor on `store` and the plan `wf`/`scope`: `flaky` fails permanently on its first
/// body in this process and completes after that; `after` depends on it.
pub(crate) fn flaky_then_after(
    store: impl CheckpointerFactory + Clone,
    bodies: &Bodies,
) -> (Executor, RunPlan) {
    let (flaky, after) = (bodies.clone(), bodies.clone());
    let registry = Registry::new()
        .with(
            "flaky",
            handler_fn(move |_ctx| {
                let first = flaky.record("flaky") == 1;
                async move {
                    if first {
                        Err(TaskFailure::permanent("outage", "provider down"))
                    } else {
                        Ok(Finish::Complete(Handoff::default()))
                    }
                }
            }),
        )
        .with(
            "after",
            handler_fn(move |_ctx| {
                after.record("after");
                async { Ok::<_, TaskFailure>(Finish::Complete(Handoff::default())) }
            }),
        );
    let executor =
        Executor::new(store, registry, ExecutorConfig::default()).expect("the executor builds");
    let mut phase = Phase::new("p");
    let first = phase.task(TaskSpec::new("flaky"), []);
    phase.task(TaskSpec::new("after"), [first]);
    (executor, RunPlan::new("wf", "scope").phase(phase))
}
