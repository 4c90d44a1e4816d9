//! `CrashFs` is transparent outside its crash points: what the file adapter asks of an open
//! file reaches the real file below, including whether the file is still at its path (the
//! adapter's check that a run's lock is on the lock file there now).

use std::sync::Arc;

use cairn_checkpoint_file::{Filesystem as _, OpenMode, StdFilesystem};
use cairn_crash::crash_point::CrashFs;

#[test]
fn an_open_file_knows_whether_it_is_still_at_its_path() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let path = dir.path().join("lock");
    let fs = CrashFs::new(Arc::new(StdFilesystem), None);
    let file = fs.open(&path, OpenMode::CreateNew).expect("create");
    assert_eq!(file.is_at(&path).expect("stat"), Some(true));

    // Replaced by another file of the same name, as a removed and re-begun run's lock is.
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(file.is_at(&path).expect("stat"), Some(false));
    drop(fs.open(&path, OpenMode::CreateNew).expect("create again"));
    assert_eq!(file.is_at(&path).expect("stat"), Some(false));
}
