//! A group-commit leader whose blocking task panics (here: inside the journal's fdatasync,
//! through the `Filesystem` seam) gives leadership up: the appends waiting on it fail with
//! `SyncFailed` (their batches' durability is unknown), the writer is poisoned, every later
//! call fails with `Poisoned`, and the writer's drop returns.
//!
//! Each test drives its own runtime and shuts it down in the background, and leaks the writer
//! if the test fails, so a stuck leader fails the test instead of hanging it. The timeouts
//! below only detect such a hang; nothing here measures speed.

mod common;

use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use cairn_checkpoint::conformance::{sample_event, sample_events, sample_snapshot};
use cairn_checkpoint::{CheckpointerFactory, Durability, Error, RunId};
use cairn_checkpoint_file::{FileFactory, Filesystem, FsFile, OpenMode, StdFilesystem};
use common::{
    FileHarness, PROMPT, drops_promptly, meta, promptly, run_bounded, unwound_not_dropped,
};

/// The message of the injected panic.
const INJECTED: &str = "injected panic in the journal's fdatasync";

/// Makes the journal's next `sync_data` panic once armed, optionally after holding it until
/// `release`, so other appends can queue behind the doomed batch first.
#[derive(Debug, Default)]
struct Trap {
    state: Mutex<TrapState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct TrapState {
    armed: bool,
    holding: bool,
    sprung: u64,
}

impl Trap {
    fn state(&self) -> MutexGuard<'_, TrapState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Arms the trap for the journal's next `sync_data`; with `hold`, that call waits for
    /// `release` before it panics.
    fn arm(&self, hold: bool) {
        let mut state = self.state();
        state.armed = true;
        state.holding = hold;
    }

    /// Lets a held call go on (to its panic).
    fn release(&self) {
        self.state().holding = false;
        self.changed.notify_all();
    }

    /// How many calls the trap caught.
    fn sprung(&self) -> u64 {
        self.state().sprung
    }

    /// Called at the start of the journal's `sync_data`.
    fn spring(&self) {
        let mut state = self.state();
        if !state.armed {
            return;
        }
        state.armed = false;
        state.sprung += 1;
        while state.holding {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(state);
        panic!("{INJECTED}");
    }
}

/// The real file system, except that the journal's `sync_data` goes through a `Trap`.
#[derive(Debug)]
struct PanickingFs {
    trap: Arc<Trap>,
}

#[derive(Debug)]
struct PanickingFile {
    inner: Box<dyn FsFile>,
    /// Set for the journal only.
    trap: Option<Arc<Trap>>,
}

impl FsFile for PanickingFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_at(offset, buf)
    }
    fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        self.inner.read_all()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read_at(offset, buf)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if let Some(trap) = &self.trap {
            trap.spring();
        }
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn size(&self) -> std::io::Result<u64> {
        self.inner.size()
    }
    fn try_lock(&self) -> std::io::Result<bool> {
        self.inner.try_lock()
    }
    fn try_lock_shared(&self) -> std::io::Result<bool> {
        self.inner.try_lock_shared()
    }
    fn lock(&self) -> std::io::Result<()> {
        self.inner.lock()
    }
    fn unlock(&self) -> std::io::Result<()> {
        self.inner.unlock()
    }
}

impl Filesystem for PanickingFs {
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn FsFile>> {
        let journal = path.file_name().is_some_and(|name| name == "journal");
        Ok(Box::new(PanickingFile {
            inner: StdFilesystem.open(path, mode)?,
            trap: journal.then(|| Arc::clone(&self.trap)),
        }))
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        StdFilesystem.read(path)
    }
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        StdFilesystem.create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        StdFilesystem.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        StdFilesystem.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        StdFilesystem.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        StdFilesystem.list_dir(path)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        StdFilesystem.exists(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        StdFilesystem.remove_dir_all(path)
    }
}

/// A factory over `h`'s root whose journal syncs go through `trap`.
fn trapped_factory(h: &FileHarness, trap: &Arc<Trap>, durability: Durability) -> FileFactory {
    FileFactory::builder(h.root())
        .durability(durability)
        .filesystem(Arc::new(PanickingFs {
            trap: Arc::clone(trap),
        }))
        .build()
        .expect("build the factory")
}

/// Waits until `trap` has caught a call, failing the test on a hang.
async fn sprung(trap: &Trap) {
    promptly("the leader reaching the journal's fdatasync", async {
        while trap.sprung() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// Polls `future` exactly once, in the calling task. An `append`'s first poll buffers its
/// records (and makes it leader, or a follower of the leader there is).
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

/// Asserts `result` is the `SyncFailed` of a leader panic, naming the run's journal.
fn assert_leader_panic<T: std::fmt::Debug>(what: &str, result: Result<T, Error>, journal: &Path) {
    match result {
        Err(Error::SyncFailed { path, .. }) => assert_eq!(path, journal, "{what}"),
        other => panic!("{what}: expected SyncFailed, got {other:?}"),
    }
}

/// Asserts `result` is `Poisoned` for run `id`.
fn assert_poisoned<T: std::fmt::Debug>(what: &str, result: Result<T, Error>, id: &RunId) {
    match result {
        Err(Error::Poisoned { run_id }) => assert_eq!(&run_id, id, "{what}"),
        other => panic!("{what}: expected Poisoned, got {other:?}"),
    }
}

fn journal_of(h: &FileHarness, id: &RunId) -> PathBuf {
    h.run_dir(id).join("journal")
}

#[test]
fn a_panicking_leader_fails_the_appends_waiting_on_it_and_poisons_the_writer() {
    for durability in [
        Durability::Sync,
        Durability::Group {
            max_delay: Duration::from_millis(2),
        },
    ] {
        run_bounded(async move {
            let h = FileHarness::with(durability);
            let trap = Arc::new(Trap::default());
            let factory = trapped_factory(&h, &trap, durability);
            let id = RunId::new("panics").unwrap();
            let journal = journal_of(&h, &id);
            let run = unwound_not_dropped(factory.begin(meta("panics")).await.unwrap());
            promptly("an append before the panic", run.append(&[sample_event(0)]))
                .await
                .expect("acknowledged before the trap is armed");

            // Batch 2's leader is held inside its fdatasync while two more appends queue
            // behind it (batch 3); then that fdatasync panics.
            trap.arm(true);
            let first_events = [sample_event(1)];
            let mut first = run.append(&first_events);
            assert!(
                poll_once(&mut first).await.is_pending(),
                "batch 2 is syncing"
            );
            sprung(&trap).await;
            let second_events = [sample_event(2)];
            let mut second = run.append(&second_events);
            assert!(
                poll_once(&mut second).await.is_pending(),
                "queued behind batch 2"
            );
            let third_events = [sample_event(3)];
            let mut third = run.append(&third_events);
            assert!(
                poll_once(&mut third).await.is_pending(),
                "queued behind batch 2"
            );
            trap.release();

            // Every append waiting on the panicked leader gets the typed error, none hangs and
            // none is acknowledged: batch 2 was never known to be durable, batch 3 never
            // written.
            let first = promptly("the append whose leader panicked", first).await;
            assert_leader_panic("the append whose leader panicked", first, &journal);
            let second = promptly("an append queued behind the panic", second).await;
            assert_leader_panic("an append queued behind the panic", second, &journal);
            let third = promptly("an append queued behind the panic", third).await;
            assert_leader_panic("an append queued behind the panic", third, &journal);

            // From now on the writer is poisoned: nothing is retried, every call fails.
            let later = promptly("an append after the panic", run.append(&[sample_event(4)])).await;
            assert_poisoned("an append after the panic", later, &id);
            let empty = promptly("an empty append after the panic", run.append(&[])).await;
            assert_poisoned("an empty append after the panic", empty, &id);
            let snapshot = sample_snapshot(1);
            let install = promptly(
                "an install after the panic",
                run.install_snapshot(&snapshot),
            )
            .await;
            assert_poisoned("an install after the panic", install, &id);
            let load = promptly("a load after the panic", run.load()).await;
            assert_poisoned("a load after the panic", load, &id);
            let complete = promptly("complete after the panic", run.complete()).await;
            assert_poisoned("complete after the panic", complete, &id);
            assert_eq!(
                trap.sprung(),
                1,
                "nothing after the panic reached a journal sync"
            );

            assert!(
                drops_promptly(ManuallyDrop::into_inner(run)),
                "the writer's drop returns"
            );
            // The lock is released and the run recovers: the acknowledged record is there,
            // the panicked batch may or may not be, and the batch behind it never was written.
            let opened = promptly("reopening the run", factory.open(&id))
                .await
                .expect("the run reopens")
                .expect("the run exists");
            let events = opened.recovered.events;
            assert!(
                events == sample_events(0, 1) || events == sample_events(0, 2),
                "{events:?}"
            );
        });
    }
}

#[test]
fn dropping_the_writer_while_its_leader_panics_returns() {
    run_bounded(async {
        let h = FileHarness::new();
        let trap = Arc::new(Trap::default());
        let factory = trapped_factory(&h, &trap, Durability::Sync);
        let id = RunId::new("dropped").unwrap();
        let run = unwound_not_dropped(factory.begin(meta("dropped")).await.unwrap());

        // A cancelled append leaves its leader behind, held inside its fdatasync: the drop
        // waits for that started leader work, which then panics.
        trap.arm(true);
        let events = [sample_event(0)];
        let mut append = run.append(&events);
        assert!(
            poll_once(&mut append).await.is_pending(),
            "the batch is syncing"
        );
        drop(append);
        sprung(&trap).await;
        let run = ManuallyDrop::into_inner(run);
        let (done, dropped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(run);
            let _ = done.send(());
        });
        trap.release();
        let returned = tokio::task::spawn_blocking(move || dropped.recv_timeout(PROMPT).is_ok());
        assert!(returned.await.unwrap(), "the writer's drop returns");

        let opened = promptly("reopening the run", factory.open(&id))
            .await
            .expect("the run reopens after the drop released its lock")
            .expect("the run exists");
        assert!(opened.recovered.events.len() <= 1);
    });
}

#[test]
fn a_panic_in_a_snapshot_install_poisons_the_writer_and_gives_leadership_up() {
    run_bounded(async {
        let h = FileHarness::new();
        let trap = Arc::new(Trap::default());
        let factory = trapped_factory(&h, &trap, Durability::Sync);
        let id = RunId::new("install").unwrap();
        let journal = journal_of(&h, &id);
        let run = unwound_not_dropped(factory.begin(meta("install")).await.unwrap());
        promptly("an append", run.append(&[sample_event(0)]))
            .await
            .unwrap();

        // The install runs as leader: it panics in the journal's fdatasync after truncating.
        trap.arm(false);
        let snapshot = sample_snapshot(1);
        let install = promptly("the install", run.install_snapshot(&snapshot)).await;
        assert_leader_panic("the install whose leader work panicked", install, &journal);
        assert_eq!(trap.sprung(), 1);

        let later = promptly("an append after the panic", run.append(&[sample_event(1)])).await;
        assert_poisoned("an append after the panic", later, &id);
        let load = promptly("a load after the panic", run.load()).await;
        assert_poisoned("a load after the panic", load, &id);
        assert!(
            drops_promptly(ManuallyDrop::into_inner(run)),
            "the writer's drop returns"
        );
        assert!(
            promptly("reopening the run", factory.open(&id))
                .await
                .expect("the run reopens")
                .is_some()
        );
    });
}

#[test]
fn an_append_whose_leader_task_is_dropped_unstarted_fails_instead_of_hanging() {
    let h = FileHarness::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let factory = h.file_factory();
    let id = RunId::new("unstarted").unwrap();
    let journal = journal_of(&h, &id);
    let run = unwound_not_dropped(runtime.block_on(factory.begin(meta("unstarted"))).unwrap());
    runtime
        .block_on(run.append(&[sample_event(0)]))
        .expect("acknowledged while the runtime runs");

    // A runtime that is shut down drops every blocking task spawned on it without running
    // it, so the next append's leader task never runs.
    let handle = runtime.handle().clone();
    runtime.shutdown_background();
    let (done, outcome) = std::sync::mpsc::channel();
    let appender = std::thread::spawn({
        let run = Arc::clone(&run);
        move || {
            let first = handle.block_on(run.append(&[sample_event(1)]));
            let later = handle.block_on(run.append(&[sample_event(2)]));
            let _ = done.send((first, later));
        }
    });
    let (first, later) = outcome
        .recv_timeout(PROMPT)
        .expect("appends on a shut-down runtime return instead of hanging");
    // The thread still holds its clone of the writer (and so the run's lock) until it ends,
    // just after it sent: without the join, the reopen below raced it and read `Locked`.
    appender.join().expect("the appending thread ends");
    assert_leader_panic("the append whose leader never ran", first, &journal);
    assert_poisoned("an append after it", later, &id);
    assert!(
        drops_promptly(ManuallyDrop::into_inner(run)),
        "the writer's drop returns"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let opened = runtime
        .block_on(factory.open(&id))
        .expect("the run reopens")
        .expect("the run exists");
    assert_eq!(
        opened.recovered.events,
        sample_events(0, 1),
        "the batch whose leader never ran was never written"
    );
}
