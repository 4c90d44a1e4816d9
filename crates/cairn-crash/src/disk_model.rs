//! An in-memory model of a file system that knows what a power cut keeps.
//!
//! [`DiskModel`] implements the file adapter's [`Filesystem`] port. Besides the current
//! contents it keeps, per file, the bytes as of its last `sync_data`, and per directory the
//! entries as of its last `sync_dir`; directory changes not yet synced wait in one ordered
//! list. [`DiskState::crash_image`] turns any instant into the disk a power cut could leave:
//!
//! - writes never synced are dropped;
//! - the last unsynced write may survive torn at any byte (a prefix of it is kept), or as
//!   any subset of its 4 KiB pages, each whole or torn ([`WriteFate::Pages`]): writeback of
//!   an in-place overwrite is not ordered, so a later page may land without an earlier one;
//! - directory changes (new files, renames, new folders) whose folder was not synced are
//!   kept only up to a chosen point of their order, so renames may be undone;
//! - a file's size change (a truncate, `set_len`) not yet synced may persist or not
//!   ([`CrashChoice::resizes_persist`]): it is metadata, which a file system commits on its
//!   own schedule, so a cut made without an fsync can reach the disk before anything else.
//!
//! A recorder ([`DiskModel::set_recorder`]) sees the state before every Nth operation, which
//! is how the power-loss driver picks crash points.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, MutexGuard};

use cairn_checkpoint_file::{Filesystem, FsFile, OpenMode};

/// A file or folder, by index into the state's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(usize),
    Dir(usize),
}

/// The last write to a file since its last sync.
#[derive(Debug, Clone)]
struct LastWrite {
    seq: u64,
    offset: usize,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
struct FileNode {
    data: Vec<u8>,
    durable: Vec<u8>,
    last_write: Option<LastWrite>,
    /// Size changes since the last sync: the shortest length the file was cut to, and the
    /// length the last one left.
    resized: Option<Resize>,
}

/// The size changes made to a file since its last sync.
#[derive(Debug, Clone, Copy)]
struct Resize {
    shortest: usize,
    last: usize,
}

impl FileNode {
    /// Records a size change to `len`.
    fn resize(&mut self, len: usize) {
        self.data.resize(len, 0);
        self.resized = Some(match self.resized {
            Some(before) => Resize {
                shortest: before.shortest.min(len),
                last: len,
            },
            None => Resize {
                shortest: len,
                last: len,
            },
        });
    }
}

#[derive(Debug, Clone, Default)]
struct DirNode {
    entries: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
}

/// One change of a directory entry: `node` `None` removes the name.
#[derive(Debug, Clone)]
struct EntryChange {
    dir: usize,
    name: String,
    node: Option<Node>,
}

/// A namespace operation not yet durable; a rename is two changes that persist together.
#[derive(Debug, Clone)]
struct PendingOp {
    changes: Vec<EntryChange>,
}

/// The page size of the modelled disk: the unit in which writeback reaches it.
pub const PAGE_SIZE: usize = 4096;

/// What reaches the disk of one file page touched by the last unsynced write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PageFate {
    /// Nothing: the page keeps its durable bytes.
    Lost,
    /// All of the write's bytes in this page.
    Whole,
    /// The first this-many of the write's bytes in this page (more than there are: all).
    Torn(usize),
}

/// What reaches the disk of the last unsynced write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteFate {
    /// Nothing of it.
    Dropped,
    /// Its first this-many bytes (more than there are: all of it), as a write cut short in
    /// order.
    Prefix(usize),
    /// Some of its pages, in no order: entry `i` is the fate of the `i`th file page the
    /// write touches (the page holding its first byte is entry 0). Pages past the end of
    /// the list are lost.
    Pages(Vec<PageFate>),
}

/// What a power cut keeps of the not-yet-durable changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CrashChoice {
    /// How many pending directory operations (in order) persist.
    pub keep_dir_ops: usize,
    /// What persists of the last unsynced write.
    pub last_write: WriteFate,
    /// Whether every file's size changes not yet synced persist (the bytes a cut removed
    /// are gone; a file grown by `set_len` reads zeros there), or none of them.
    pub resizes_persist: bool,
}

/// The byte ranges, relative to a write's start, of the file pages a write of `len` bytes
/// at `offset` touches, in page order.
fn page_spans(offset: usize, len: usize) -> Vec<std::ops::Range<usize>> {
    let end = offset + len;
    let mut spans = Vec::new();
    let mut at = offset;
    while at < end {
        let page_end = ((at / PAGE_SIZE) + 1) * PAGE_SIZE;
        let stop = page_end.min(end);
        spans.push(at - offset..stop - offset);
        at = stop;
    }
    spans
}

/// The whole modelled disk: current contents, durable contents and pending directory changes.
#[derive(Debug, Clone)]
pub struct DiskState {
    files: Vec<FileNode>,
    dirs: Vec<DirNode>,
    pending: Vec<PendingOp>,
    write_seq: u64,
}

impl Default for DiskState {
    fn default() -> Self {
        DiskState {
            files: Vec::new(),
            dirs: vec![DirNode::default()],
            pending: Vec::new(),
            write_seq: 0,
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

fn names(path: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => out.push(name.to_string_lossy().into_owned()),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the disk model takes plain absolute paths, not {}",
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

impl DiskState {
    fn resolve(&self, path: &Path) -> io::Result<Option<Node>> {
        let mut node = Node::Dir(0);
        for name in names(path)? {
            let Node::Dir(dir) = node else {
                return Ok(None);
            };
            match self.dirs[dir].entries.get(&name) {
                Some(next) => node = *next,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    /// The folder holding `path` and the last name of `path`.
    fn parent(&self, path: &Path) -> io::Result<(usize, String)> {
        let mut parts = names(path)?;
        let name = parts
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the root has no parent"))?;
        let mut dir = 0;
        for part in parts {
            match self.dirs[dir].entries.get(&part) {
                Some(Node::Dir(next)) => dir = *next,
                _ => return Err(not_found(path)),
            }
        }
        Ok((dir, name))
    }

    fn change(&mut self, changes: Vec<EntryChange>) {
        for change in &changes {
            let entries = &mut self.dirs[change.dir].entries;
            match change.node {
                Some(node) => entries.insert(change.name.clone(), node),
                None => entries.remove(&change.name),
            };
        }
        self.pending.push(PendingOp { changes });
    }

    fn apply_durably(dirs: &mut [DirNode], op: &PendingOp) {
        for change in &op.changes {
            let durable = &mut dirs[change.dir].durable;
            match change.node {
                Some(node) => durable.insert(change.name.clone(), node),
                None => durable.remove(&change.name),
            };
        }
    }

    /// Directory operations not yet made durable by a `sync_dir`.
    pub fn pending_dir_ops(&self) -> usize {
        self.pending.len()
    }

    /// The length of the last unsynced write, if there is one.
    pub fn last_unsynced_write(&self) -> Option<usize> {
        self.last_write().map(|w| w.bytes.len())
    }

    /// Whether some file has a size change not yet synced.
    pub fn has_unsynced_resizes(&self) -> bool {
        self.files.iter().any(|f| f.resized.is_some())
    }

    /// How many file pages the last unsynced write touches, if there is one.
    pub fn last_unsynced_pages(&self) -> Option<usize> {
        self.last_write()
            .map(|w| page_spans(w.offset, w.bytes.len()).len())
    }

    fn last_write(&self) -> Option<&LastWrite> {
        self.files
            .iter()
            .filter_map(|f| f.last_write.as_ref())
            .max_by_key(|w| w.seq)
    }

    /// The disk a power cut at this instant leaves, as `choice` says: durable contents,
    /// plus the first `keep_dir_ops` pending directory operations, plus what
    /// `choice.last_write` keeps of the last unsynced write. Everything in it is durable.
    ///
    /// A kept byte past the durable end of the file extends the file; bytes between the
    /// old end and it read as zeros.
    pub fn crash_image(&self, choice: &CrashChoice) -> DiskState {
        let mut image = self.clone();
        for op in self.pending.iter().take(choice.keep_dir_ops) {
            DiskState::apply_durably(&mut image.dirs, op);
        }
        image.pending.clear();
        for dir in &mut image.dirs {
            dir.entries = dir.durable.clone();
        }
        let torn = self
            .files
            .iter()
            .enumerate()
            .filter_map(|(id, f)| f.last_write.as_ref().map(|w| (w.seq, id)))
            .max()
            .map(|(_, id)| id);
        for (id, file) in image.files.iter_mut().enumerate() {
            file.data = file.durable.clone();
            if let (true, Some(resized)) = (choice.resizes_persist, self.files[id].resized) {
                file.data.truncate(resized.shortest);
                file.data.resize(resized.last, 0);
            }
            if let (Some(target), Some(write)) = (torn, self.files[id].last_write.as_ref())
                && target == id
            {
                for kept in kept_ranges(write, &choice.last_write) {
                    let end = write.offset + kept.end;
                    if file.data.len() < end {
                        file.data.resize(end, 0);
                    }
                    file.data[write.offset + kept.start..end].copy_from_slice(&write.bytes[kept]);
                }
            }
            file.durable = file.data.clone();
            file.last_write = None;
            file.resized = None;
        }
        image
    }
}

/// The byte ranges of `write` (relative to its start) that `fate` keeps.
fn kept_ranges(write: &LastWrite, fate: &WriteFate) -> Vec<std::ops::Range<usize>> {
    let len = write.bytes.len();
    match fate {
        WriteFate::Dropped => Vec::new(),
        WriteFate::Prefix(keep) => std::iter::once(0..(*keep).min(len)).collect(),
        WriteFate::Pages(fates) => page_spans(write.offset, len)
            .into_iter()
            .zip(fates)
            .filter_map(|(span, fate)| match fate {
                PageFate::Lost => None,
                PageFate::Whole => Some(span),
                PageFate::Torn(keep) => Some(span.start..span.end.min(span.start + keep)),
            })
            .collect(),
    }
}

/// Called with the state before a recorded operation, its number (from 1) and its name.
pub type RecorderSink = Box<dyn FnMut(&DiskState, u64, &'static str) + Send>;

struct Recorder {
    every: u64,
    offset: u64,
    sink: RecorderSink,
}

struct Inner {
    state: DiskState,
    locks: HashMap<usize, u64>,
    next_handle: u64,
    ops: u64,
    recorder: Option<Recorder>,
}

impl Inner {
    /// Counts one operation and shows the state before it to the recorder when its turn.
    fn op(&mut self, name: &'static str) {
        self.ops += 1;
        if let Some(recorder) = &mut self.recorder
            && self.ops % recorder.every == recorder.offset % recorder.every
        {
            (recorder.sink)(&self.state, self.ops, name);
        }
    }
}

/// The in-memory file system. Clones share one disk.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// use cairn_checkpoint_file::{Filesystem, OpenMode};
/// use cairn_crash::disk_model::{CrashChoice, DiskModel, WriteFate};
///
/// let disk = DiskModel::new();
/// disk.create_durable_dir(Path::new("/data"))?;
/// let mut file = disk.open(Path::new("/data/log"), OpenMode::Append)?;
/// file.write_all(b"synced")?;
/// file.sync_data()?;
/// disk.sync_dir(Path::new("/data"))?;
/// file.write_all(b" lost")?;
///
/// let image = disk.state().crash_image(&CrashChoice {
///     keep_dir_ops: 0,
///     last_write: WriteFate::Dropped,
///     resizes_persist: false,
/// });
/// let after = DiskModel::from_state(image);
/// assert_eq!(after.read(Path::new("/data/log"))?, b"synced");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct DiskModel {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for DiskModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("DiskModel")
            .field("files", &inner.state.files.len())
            .field("dirs", &inner.state.dirs.len())
            .field("ops", &inner.ops)
            .finish()
    }
}

impl Default for DiskModel {
    fn default() -> Self {
        DiskModel::new()
    }
}

impl DiskModel {
    /// An empty disk holding only the root folder.
    pub fn new() -> DiskModel {
        DiskModel::from_state(DiskState::default())
    }

    /// A disk holding `state` (typically a crash image).
    pub fn from_state(state: DiskState) -> DiskModel {
        DiskModel {
            inner: Arc::new(Mutex::new(Inner {
                state,
                locks: HashMap::new(),
                next_handle: 0,
                ops: 0,
                recorder: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// A copy of the current state.
    pub fn state(&self) -> DiskState {
        self.lock().state.clone()
    }

    /// Operations counted so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Creates `path` and its missing parents as already durable folders (test setup: a
    /// folder that existed long before the workload).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a path that is not plain and absolute; `AlreadyExists` when a
    /// file is in the way.
    pub fn create_durable_dir(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.lock();
        let state = &mut inner.state;
        let mut dir = 0;
        for name in names(path)? {
            dir = match state.dirs[dir].entries.get(&name) {
                Some(Node::Dir(next)) => *next,
                Some(Node::File(_)) => {
                    return Err(io::Error::new(io::ErrorKind::AlreadyExists, name));
                }
                None => {
                    state.dirs.push(DirNode::default());
                    let id = state.dirs.len() - 1;
                    state.dirs[dir].entries.insert(name.clone(), Node::Dir(id));
                    state.dirs[dir].durable.insert(name, Node::Dir(id));
                    id
                }
            };
        }
        Ok(())
    }

    /// Shows the state before every `every`th operation (those whose number is `offset`
    /// modulo `every`) to `sink`. `every` 0 is taken as 1.
    pub fn set_recorder(&self, every: u64, offset: u64, sink: RecorderSink) {
        self.lock().recorder = Some(Recorder {
            every: every.max(1),
            offset,
            sink,
        });
    }

    /// Stops recording (and drops the sink).
    pub fn clear_recorder(&self) {
        let recorder = self.lock().recorder.take();
        drop(recorder);
    }

    fn new_file(inner: &mut Inner, dir: usize, name: String) -> usize {
        inner.op("create");
        inner.state.files.push(FileNode::default());
        let id = inner.state.files.len() - 1;
        inner.state.change(vec![EntryChange {
            dir,
            name,
            node: Some(Node::File(id)),
        }]);
        id
    }
}

/// An open file of [`DiskModel`].
struct MemFile {
    disk: DiskModel,
    id: usize,
    pos: usize,
    append: bool,
    handle: u64,
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFile")
            .field("id", &self.id)
            .field("handle", &self.handle)
            .finish()
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let mut inner = self.disk.lock();
        if inner.locks.get(&self.id) == Some(&self.handle) {
            inner.locks.remove(&self.id);
        }
    }
}

impl FsFile for MemFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut inner = self.disk.lock();
        inner.op("write");
        inner.state.write_seq += 1;
        let seq = inner.state.write_seq;
        let file = &mut inner.state.files[self.id];
        let offset = if self.append {
            file.data.len()
        } else {
            self.pos
        };
        let end = offset + buf.len();
        if file.data.len() < end {
            file.data.resize(end, 0);
        }
        file.data[offset..end].copy_from_slice(buf);
        file.last_write = Some(LastWrite {
            seq,
            offset,
            bytes: buf.to_vec(),
        });
        self.pos = end;
        Ok(())
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut inner = self.disk.lock();
        inner.op("write");
        inner.state.write_seq += 1;
        let seq = inner.state.write_seq;
        let file = &mut inner.state.files[self.id];
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = offset + buf.len();
        if file.data.len() < end {
            file.data.resize(end, 0);
        }
        file.data[offset..end].copy_from_slice(buf);
        file.last_write = Some(LastWrite {
            seq,
            offset,
            bytes: buf.to_vec(),
        });
        Ok(())
    }

    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let data = self.disk.lock().state.files[self.id].data.clone();
        self.pos = data.len();
        Ok(data)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let inner = self.disk.lock();
        let data = &inner.state.files[self.id].data;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut inner = self.disk.lock();
        inner.op("fdatasync");
        let file = &mut inner.state.files[self.id];
        file.durable = file.data.clone();
        file.last_write = None;
        file.resized = None;
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut inner = self.disk.lock();
        inner.op("set_len");
        let file = &mut inner.state.files[self.id];
        file.resize(usize::try_from(len).unwrap_or(usize::MAX));
        // A later tear must not resurrect bytes the truncate removed.
        file.last_write = None;
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.disk.lock().state.files[self.id].data.len() as u64)
    }

    fn try_lock(&self) -> io::Result<bool> {
        let mut inner = self.disk.lock();
        match inner.locks.get(&self.id) {
            Some(holder) => Ok(*holder == self.handle),
            None => {
                inner.locks.insert(self.id, self.handle);
                Ok(true)
            }
        }
    }

    fn try_lock_shared(&self) -> io::Result<bool> {
        // Shared locks are not modelled: an exclusive one stands in, which keeps out the
        // same writers (and other probes too).
        self.try_lock()
    }

    fn lock(&self) -> io::Result<()> {
        while !self.try_lock()? {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        Ok(())
    }

    fn unlock(&self) -> io::Result<()> {
        let mut inner = self.disk.lock();
        if inner.locks.get(&self.id) == Some(&self.handle) {
            inner.locks.remove(&self.id);
        }
        Ok(())
    }
}

impl Filesystem for DiskModel {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let mut inner = self.lock();
        let (dir, name) = inner.state.parent(path)?;
        let existing = inner.state.dirs[dir].entries.get(&name).copied();
        let id = match (mode, existing) {
            (_, Some(Node::Dir(_))) => {
                return Err(io::Error::other(format!(
                    "{} is a directory",
                    path.display()
                )));
            }
            (OpenMode::Read, None) => return Err(not_found(path)),
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ));
            }
            (OpenMode::Truncate, Some(Node::File(id))) => {
                inner.op("truncate");
                let file = &mut inner.state.files[id];
                file.resize(0);
                file.last_write = None;
                id
            }
            (_, Some(Node::File(id))) => id,
            (_, None) => DiskModel::new_file(&mut inner, dir, name),
        };
        inner.next_handle += 1;
        let handle = inner.next_handle;
        drop(inner);
        Ok(Box::new(MemFile {
            disk: self.clone(),
            id,
            pos: 0,
            append: mode == OpenMode::Append,
            handle,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let inner = self.lock();
        match inner.state.resolve(path)? {
            Some(Node::File(id)) => Ok(inner.state.files[id].data.clone()),
            Some(Node::Dir(_)) => Err(io::Error::other(format!(
                "{} is a directory",
                path.display()
            ))),
            None => Err(not_found(path)),
        }
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.lock();
        let (dir, name) = inner.state.parent(path)?;
        if inner.state.dirs[dir].entries.contains_key(&name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        inner.op("mkdir");
        inner.state.dirs.push(DirNode::default());
        let id = inner.state.dirs.len() - 1;
        inner.state.change(vec![EntryChange {
            dir,
            name,
            node: Some(Node::Dir(id)),
        }]);
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut prefix = std::path::PathBuf::from("/");
        for name in names(path)? {
            prefix.push(&name);
            match self.lock().state.resolve(&prefix)? {
                Some(Node::Dir(_)) => continue,
                Some(Node::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} is a file", prefix.display()),
                    ));
                }
                None => {}
            }
            self.create_dir(&prefix)?;
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut inner = self.lock();
        let (from_dir, from_name) = inner.state.parent(from)?;
        let node = *inner.state.dirs[from_dir]
            .entries
            .get(&from_name)
            .ok_or_else(|| not_found(from))?;
        let (to_dir, to_name) = inner.state.parent(to)?;
        if from_dir == to_dir && from_name == to_name {
            return Ok(());
        }
        if let Some(Node::Dir(target)) = inner.state.dirs[to_dir].entries.get(&to_name)
            && !inner.state.dirs[*target].entries.is_empty()
        {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{} is not empty", to.display()),
            ));
        }
        inner.op("rename");
        inner.state.change(vec![
            EntryChange {
                dir: from_dir,
                name: from_name,
                node: None,
            },
            EntryChange {
                dir: to_dir,
                name: to_name,
                node: Some(node),
            },
        ]);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.lock();
        let Some(Node::Dir(dir)) = inner.state.resolve(path)? else {
            return Err(not_found(path));
        };
        inner.op("fsync_dir");
        let state = &mut inner.state;
        let pending = std::mem::take(&mut state.pending);
        for op in pending {
            if op.changes.iter().any(|c| c.dir == dir) {
                DiskState::apply_durably(&mut state.dirs, &op);
            } else {
                state.pending.push(op);
            }
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let inner = self.lock();
        match inner.state.resolve(path)? {
            Some(Node::Dir(dir)) => Ok(inner.state.dirs[dir].entries.keys().cloned().collect()),
            Some(Node::File(_)) => Err(io::Error::other(format!(
                "{} is not a directory",
                path.display()
            ))),
            None => Err(not_found(path)),
        }
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().state.resolve(path)?.is_some())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.lock();
        let (dir, name) = inner.state.parent(path)?;
        if !inner.state.dirs[dir].entries.contains_key(&name) {
            return Err(not_found(path));
        }
        inner.op("remove");
        inner.state.change(vec![EntryChange {
            dir,
            name,
            node: None,
        }]);
        Ok(())
    }
}
