//! `peek_live` beside a busy writer: while appends, snapshot installs and the writer's own
//! compaction go on, every live read is a state the writer passed through, never older than
//! what was acknowledged before the read began, and the writer is never disturbed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cairn_checkpoint::{CheckpointerFactory, Durability, RunStatus};
use cairn_checkpoint_file::FileFactory;
use cairn_queue::{EnqueuedBy, Handoff, Queue, QueueConfig, Status, TaskSpec, Timestamp};

mod common;

const STEPS: usize = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_reads_beside_appends_and_compaction_are_states_the_writer_passed_through() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let build = || {
        FileFactory::builder(dir.path())
            .durability(Durability::None)
            // Compaction every few appends, so reads meet it often.
            .compact_after_records(16)
            .build()
            .expect("build the factory")
    };
    let writer_factory = build();
    let reader_factory = build();
    let meta = common::meta("live");
    let run_id = meta.run_id.clone();
    let run = writer_factory.begin(meta).await.expect("begin");

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let reader = {
        let acknowledged = Arc::clone(&acknowledged);
        let finished = Arc::clone(&finished);
        let run_id = run_id.clone();
        tokio::spawn(async move {
            let mut reads = 0usize;
            let mut seen = 0usize;
            while !finished.load(Ordering::Acquire) {
                let before = acknowledged.load(Ordering::Acquire);
                let live = reader_factory
                    .peek_live(&run_id)
                    .await
                    .expect("a live read beside the writer")
                    .expect("the run exists");
                assert_eq!(live.meta.status, RunStatus::Running);
                assert_eq!(live.torn_tail, None);
                let queue = Queue::replay(live.snapshot, &live.events, QueueConfig::default())
                    .expect("a live read replays");
                let tasks: Vec<Status> = queue.tasks().map(|t| t.status).collect();
                assert!(
                    tasks.len() >= before,
                    "read {} tasks after {before} were acknowledged",
                    tasks.len()
                );
                assert!(
                    tasks.len() >= seen,
                    "went back from {seen} to {}",
                    tasks.len()
                );
                // The writer starts each task and completes it before the next, so every
                // state it passes through has all tasks done but perhaps the last.
                if let Some((last, earlier)) = tasks.split_last() {
                    assert!(earlier.iter().all(|s| *s == Status::Done), "{tasks:?}");
                    assert!(
                        matches!(last, Status::Running | Status::Done),
                        "last task {last:?}"
                    );
                }
                seen = tasks.len();
                reads += 1;
            }
            reads
        })
    };

    let mut queue = Queue::new(QueueConfig::default());
    for step in 0..STEPS {
        let now = Timestamp(step as u64);
        let spec = TaskSpec::new("step").inputs(serde_json::json!(step));
        let id = queue
            .enqueue(spec, EnqueuedBy::Root, now)
            .expect("enqueue")
            .id;
        queue.start(id, now).expect("start");
        run.append(queue.events()).await.expect("append");
        queue.clear_events();
        queue
            .complete(id, Handoff::default(), now)
            .expect("complete");
        run.append(queue.events()).await.expect("append");
        queue.clear_events();
        acknowledged.store(step + 1, Ordering::Release);
        if step % 97 == 0 {
            run.install_snapshot(&queue.snapshot())
                .await
                .expect("install a snapshot beside live reads");
        }
        if step % 50 == 0 {
            // Room for the reader on two cores.
            tokio::task::yield_now().await;
        }
    }
    finished.store(true, Ordering::Release);
    let reads = reader.await.expect("the reader did not panic");
    assert!(reads > 0, "no live read happened");
    drop(run);

    // The writer was never disturbed: what it wrote opens whole.
    let opened = build()
        .open(&run_id)
        .await
        .expect("open")
        .expect("the run exists");
    let replayed = Queue::replay(
        opened.recovered.snapshot,
        &opened.recovered.events,
        QueueConfig::default(),
    )
    .expect("replay");
    assert_eq!(replayed.snapshot(), queue.snapshot());
    println!("{reads} live reads beside {STEPS} steps");
}
