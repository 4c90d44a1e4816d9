//! Group commit with a `max_delay` too large to add to the clock (`Duration::MAX`): it means
//! "wait for company as long as possible", never a panic, a lone writer still never waits,
//! and dropping the writer ends any wait.
//!
//! Each test drives its own runtime and shuts it down in the background, so a leader stuck
//! in a wait fails the test instead of hanging it in the runtime's drop.

mod common;

use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::conformance::{sample_event, sample_events};
use cairn_checkpoint::{Checkpointer, CheckpointerFactory, Durability, RunId};
use common::{
    FileHarness, IoPlan, drops_promptly, meta, promptly, run_bounded, unwound_not_dropped,
};

/// Appends event `n`, abandoning the append after `patience`; whether it was abandoned
/// (its first poll has buffered the record, which dropping the future does not withdraw).
async fn abandoned_append(run: &dyn Checkpointer, n: u64, patience: Duration) -> bool {
    let events = [sample_event(n)];
    tokio::time::timeout(patience, run.append(&events))
        .await
        .is_err()
}

#[test]
fn a_lone_writer_with_an_unbounded_max_delay_appends_and_drops_promptly() {
    // `from_secs(u64::MAX)` overflows the clock just as `MAX` does.
    for max_delay in [Duration::MAX, Duration::from_secs(u64::MAX)] {
        run_bounded(async move {
            let h = FileHarness::with(Durability::Group { max_delay });
            let factory = h.file_factory();
            let id = RunId::new("lone").unwrap();
            let run = unwound_not_dropped(factory.begin(meta("lone")).await.unwrap());
            // A lone writer's batches hold one append, so its leader never waits for company.
            promptly("20 lone appends", async {
                for n in 0..20 {
                    run.append(&[sample_event(n)]).await.unwrap();
                }
            })
            .await;
            assert!(
                drops_promptly(ManuallyDrop::into_inner(run)),
                "the writer's drop returns"
            );
            let opened = factory.open(&id).await.unwrap().unwrap();
            assert_eq!(opened.recovered.events, sample_events(0, 20));
        });
    }
}

#[test]
fn a_leader_waiting_without_deadline_is_released_by_company_and_by_the_drop() {
    run_bounded(async {
        let h = FileHarness::with(Durability::Group {
            max_delay: Duration::MAX,
        });
        let plan = Arc::new(IoPlan::default());
        let factory = h.failing_factory(&plan, h.durability);
        let id = RunId::new("company").unwrap();
        let run = unwound_not_dropped(factory.begin(meta("company")).await.unwrap());
        let syncs = plan.calls("sync_data", "journal");

        // Batch 1 is held in its fdatasync while two appends buffer behind it, so batch 2
        // holds two appends and the leader learns to expect company of two.
        plan.hold("sync_data", "journal");
        let first = tokio::spawn({
            let run = Arc::clone(&run);
            async move { run.append(&[sample_event(0)]).await }
        });
        promptly("batch 1 reaching its fdatasync", async {
            while plan.waiting() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        for n in 1..3 {
            let held = abandoned_append(&**run, n, Duration::from_millis(20)).await;
            assert!(held, "held behind batch 1");
        }
        plan.release();
        promptly("the first append", first).await.unwrap().unwrap();
        promptly("batch 2 reaching its fdatasync", async {
            while plan.calls("sync_data", "journal") < syncs + 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;

        // Alone now, an append waits for the second caller it expects, as long as it takes.
        let waited = abandoned_append(&**run, 3, Duration::from_millis(200)).await;
        assert!(waited, "an unbounded max_delay waits for company");
        // The company it waited for arrives: both are written in one batch.
        promptly(
            "the append that completes the company",
            run.append(&[sample_event(4)]),
        )
        .await
        .unwrap();

        // Left waiting again, with its caller gone: the drop ends the wait, and the record
        // is still written before the lock is released.
        let waited = abandoned_append(&**run, 5, Duration::from_millis(200)).await;
        assert!(waited, "an unbounded max_delay waits for company");
        assert!(
            drops_promptly(ManuallyDrop::into_inner(run)),
            "the writer's drop ends the leader's wait"
        );

        let opened = h.file_factory().open(&id).await.unwrap().unwrap();
        assert_eq!(opened.recovered.events, sample_events(0, 6));
    });
}
