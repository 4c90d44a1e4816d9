//! The power-loss disk model: what a crash image keeps and what it loses.

use std::path::Path;

use cairn_checkpoint_file::{Filesystem, OpenMode};
use cairn_crash::disk_model::{CrashChoice, DiskModel, PAGE_SIZE, PageFate, WriteFate};

const DROP_ALL: CrashChoice = CrashChoice {
    keep_dir_ops: 0,
    last_write: WriteFate::Dropped,
    resizes_persist: false,
};

fn disk() -> DiskModel {
    let disk = DiskModel::new();
    disk.create_durable_dir(Path::new("/d")).unwrap();
    disk
}

/// A file created, written, synced, and its folder synced: durable.
fn durable_file(disk: &DiskModel, path: &str, bytes: &[u8]) {
    let mut file = disk.open(Path::new(path), OpenMode::Append).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_data().unwrap();
    disk.sync_dir(Path::new(path).parent().unwrap()).unwrap();
}

fn after_crash(disk: &DiskModel, choice: CrashChoice) -> DiskModel {
    DiskModel::from_state(disk.state().crash_image(&choice))
}

#[test]
fn unsynced_writes_are_dropped_and_synced_ones_kept() {
    let disk = disk();
    durable_file(&disk, "/d/log", b"one;");
    let mut file = disk.open(Path::new("/d/log"), OpenMode::Append).unwrap();
    file.write_all(b"two;").unwrap();
    file.write_all(b"three;").unwrap();
    assert_eq!(disk.read(Path::new("/d/log")).unwrap(), b"one;two;three;");

    let image = after_crash(&disk, DROP_ALL);
    assert_eq!(image.read(Path::new("/d/log")).unwrap(), b"one;");

    file.sync_data().unwrap();
    let image = after_crash(&disk, DROP_ALL);
    assert_eq!(image.read(Path::new("/d/log")).unwrap(), b"one;two;three;");
}

#[test]
fn the_last_unsynced_write_is_torn_at_the_chosen_byte() {
    let disk = disk();
    durable_file(&disk, "/d/log", b"head;");
    let mut file = disk.open(Path::new("/d/log"), OpenMode::Append).unwrap();
    file.write_all(b"abcdef").unwrap();
    assert_eq!(disk.state().last_unsynced_write(), Some(6));

    for keep in 0..=6 {
        let image = after_crash(
            &disk,
            CrashChoice {
                keep_dir_ops: 0,
                last_write: WriteFate::Prefix(keep),
                resizes_persist: false,
            },
        );
        let mut expected = b"head;".to_vec();
        expected.extend_from_slice(&b"abcdef"[..keep]);
        assert_eq!(
            image.read(Path::new("/d/log")).unwrap(),
            expected,
            "keep {keep}"
        );
    }
}

#[test]
fn a_new_file_needs_its_folder_synced() {
    let disk = disk();
    let mut file = disk.open(Path::new("/d/new"), OpenMode::Append).unwrap();
    file.write_all(b"data").unwrap();
    file.sync_data().unwrap();
    assert_eq!(disk.state().pending_dir_ops(), 1);

    let image = after_crash(&disk, DROP_ALL);
    assert!(!image.exists(Path::new("/d/new")).unwrap());

    disk.sync_dir(Path::new("/d")).unwrap();
    let image = after_crash(&disk, DROP_ALL);
    assert_eq!(image.read(Path::new("/d/new")).unwrap(), b"data");
}

#[test]
fn a_rename_whose_folder_was_not_synced_may_be_undone() {
    let disk = disk();
    durable_file(&disk, "/d/state", b"old");
    let mut tmp = disk
        .open(Path::new("/d/state.tmp"), OpenMode::Truncate)
        .unwrap();
    tmp.write_all(b"new").unwrap();
    tmp.sync_data().unwrap();
    disk.rename(Path::new("/d/state.tmp"), Path::new("/d/state"))
        .unwrap();
    let pending = disk.state().pending_dir_ops();
    assert_eq!(pending, 2, "creating the temp file and the rename");

    // Nothing of the folder persisted: the old file is back and the temp file is gone.
    let undone = after_crash(&disk, DROP_ALL);
    assert_eq!(undone.read(Path::new("/d/state")).unwrap(), b"old");
    assert!(!undone.exists(Path::new("/d/state.tmp")).unwrap());

    // Only the creation persisted: the temp file is there, the rename is undone.
    let half = after_crash(
        &disk,
        CrashChoice {
            keep_dir_ops: 1,
            last_write: WriteFate::Dropped,
            resizes_persist: false,
        },
    );
    assert_eq!(half.read(Path::new("/d/state")).unwrap(), b"old");
    assert_eq!(half.read(Path::new("/d/state.tmp")).unwrap(), b"new");

    // Everything persisted: the rename happened.
    let kept = after_crash(
        &disk,
        CrashChoice {
            keep_dir_ops: pending,
            last_write: WriteFate::Dropped,
            resizes_persist: false,
        },
    );
    assert_eq!(kept.read(Path::new("/d/state")).unwrap(), b"new");
    assert!(!kept.exists(Path::new("/d/state.tmp")).unwrap());

    // After the folder's fsync no crash undoes it.
    disk.sync_dir(Path::new("/d")).unwrap();
    let synced = after_crash(&disk, DROP_ALL);
    assert_eq!(synced.read(Path::new("/d/state")).unwrap(), b"new");
}

#[test]
fn an_unsynced_truncate_is_undone() {
    let disk = disk();
    durable_file(&disk, "/d/journal", b"records");
    let file = disk
        .open(Path::new("/d/journal"), OpenMode::Append)
        .unwrap();
    file.set_len(0).unwrap();
    assert_eq!(
        after_crash(&disk, DROP_ALL)
            .read(Path::new("/d/journal"))
            .unwrap(),
        b"records"
    );
    file.sync_data().unwrap();
    assert!(
        after_crash(&disk, DROP_ALL)
            .read(Path::new("/d/journal"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_folder_renamed_into_place_keeps_its_synced_contents() {
    let disk = disk();
    disk.create_dir(Path::new("/d/.staging")).unwrap();
    durable_file(&disk, "/d/.staging/meta", b"m");
    disk.rename(Path::new("/d/.staging"), Path::new("/d/run"))
        .unwrap();
    let undone = after_crash(&disk, DROP_ALL);
    assert!(!undone.exists(Path::new("/d/run")).unwrap());
    disk.sync_dir(Path::new("/d")).unwrap();
    let image = after_crash(&disk, DROP_ALL);
    assert_eq!(image.read(Path::new("/d/run/meta")).unwrap(), b"m");
}

#[test]
fn the_recorder_sees_every_nth_operation() {
    let disk = disk();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&seen);
    disk.set_recorder(
        2,
        0,
        Box::new(move |_, op, name| sink.lock().unwrap().push((op, name))),
    );
    let mut file = disk.open(Path::new("/d/f"), OpenMode::Append).unwrap(); // op 1: create
    file.write_all(b"x").unwrap(); // op 2: write
    file.sync_data().unwrap(); // op 3: fdatasync
    disk.sync_dir(Path::new("/d")).unwrap(); // op 4: fsync_dir
    disk.clear_recorder();
    assert_eq!(*seen.lock().unwrap(), vec![(2, "write"), (4, "fsync_dir")]);
}

#[test]
fn locks_exclude_other_handles_until_dropped() {
    let disk = disk();
    let first = disk
        .open(Path::new("/d/lock"), OpenMode::ReadWrite)
        .unwrap();
    let second = disk
        .open(Path::new("/d/lock"), OpenMode::ReadWrite)
        .unwrap();
    assert!(first.try_lock().unwrap());
    assert!(!second.try_lock().unwrap());
    drop(first);
    assert!(second.try_lock().unwrap());
}

#[test]
fn an_unsynced_overwrite_reverts_and_a_torn_one_keeps_a_prefix_over_the_old_bytes() {
    let disk = disk();
    // A preallocated journal: zeros made durable, then overwritten in place.
    durable_file(&disk, "/d/journal", &[0u8; 8]);
    let file = disk
        .open(Path::new("/d/journal"), OpenMode::ReadWrite)
        .unwrap();
    file.write_at(2, b"abcd").unwrap();
    assert_eq!(disk.read(Path::new("/d/journal")).unwrap(), b"\0\0abcd\0\0");
    assert_eq!(disk.state().last_unsynced_write(), Some(4));

    let image = after_crash(&disk, DROP_ALL);
    assert_eq!(image.read(Path::new("/d/journal")).unwrap(), [0u8; 8]);
    let torn = after_crash(
        &disk,
        CrashChoice {
            keep_dir_ops: 0,
            last_write: WriteFate::Prefix(3),
            resizes_persist: false,
        },
    );
    assert_eq!(
        torn.read(Path::new("/d/journal")).unwrap(),
        b"\0\0abc\0\0\0"
    );

    file.sync_data().unwrap();
    let image = after_crash(&disk, DROP_ALL);
    assert_eq!(
        image.read(Path::new("/d/journal")).unwrap(),
        b"\0\0abcd\0\0"
    );
}

/// A three-page overwrite of durable zeros, starting 100 bytes into page 1: page `i` of the
/// write holds byte value `i + 1`.
fn three_page_overwrite() -> (
    DiskModel,
    Box<dyn cairn_checkpoint_file::FsFile>,
    usize,
    usize,
) {
    let disk = disk();
    durable_file(&disk, "/d/journal", &vec![0u8; 5 * PAGE_SIZE]);
    let file = disk
        .open(Path::new("/d/journal"), OpenMode::ReadWrite)
        .unwrap();
    let start = PAGE_SIZE + 100;
    let end = 3 * PAGE_SIZE + 50;
    let bytes: Vec<u8> = (start..end).map(|at| (at / PAGE_SIZE) as u8).collect();
    file.write_at(start as u64, &bytes).unwrap();
    (disk, file, start, end)
}

#[test]
fn a_page_subset_keeps_later_pages_of_an_overwrite_without_earlier_ones() {
    let (disk, _file, start, end) = three_page_overwrite();
    assert_eq!(disk.state().last_unsynced_pages(), Some(3));

    let image = after_crash(
        &disk,
        CrashChoice {
            keep_dir_ops: 0,
            last_write: WriteFate::Pages(vec![PageFate::Lost, PageFate::Whole, PageFate::Whole]),
            resizes_persist: false,
        },
    );
    let data = image.read(Path::new("/d/journal")).unwrap();
    assert_eq!(
        data.len(),
        5 * PAGE_SIZE,
        "an overwrite does not change the size"
    );
    for (at, byte) in data.iter().enumerate() {
        let want = if (2 * PAGE_SIZE..end).contains(&at) {
            (at / PAGE_SIZE) as u8
        } else {
            0
        };
        assert_eq!(*byte, want, "byte {at} (write {start}..{end})");
    }
}

#[test]
fn a_torn_page_keeps_a_prefix_of_its_part_of_the_write_and_missing_fates_are_lost() {
    let (disk, _file, start, end) = three_page_overwrite();
    // The first page keeps 10 of its bytes, the second is lost, the third is not listed.
    let image = after_crash(
        &disk,
        CrashChoice {
            keep_dir_ops: 0,
            last_write: WriteFate::Pages(vec![PageFate::Torn(10), PageFate::Lost]),
            resizes_persist: false,
        },
    );
    let data = image.read(Path::new("/d/journal")).unwrap();
    for (at, byte) in data.iter().enumerate() {
        let want = if (start..start + 10).contains(&at) {
            1
        } else {
            0
        };
        assert_eq!(*byte, want, "byte {at} (write {start}..{end})");
    }
}

#[test]
fn kept_pages_of_a_growing_write_extend_the_file_with_zeros_before_them() {
    let disk = disk();
    durable_file(&disk, "/d/log", b"head");
    let mut file = disk.open(Path::new("/d/log"), OpenMode::Append).unwrap();
    file.write_all(&vec![7u8; 2 * PAGE_SIZE]).unwrap();
    assert_eq!(disk.state().last_unsynced_pages(), Some(3));
    let image = after_crash(
        &disk,
        CrashChoice {
            keep_dir_ops: 0,
            last_write: WriteFate::Pages(vec![PageFate::Lost, PageFate::Whole, PageFate::Lost]),
            resizes_persist: false,
        },
    );
    let data = image.read(Path::new("/d/log")).unwrap();
    assert_eq!(
        data.len(),
        2 * PAGE_SIZE,
        "the file reaches the last kept byte"
    );
    assert_eq!(&data[..4], b"head");
    assert!(
        data[4..PAGE_SIZE].iter().all(|b| *b == 0),
        "the lost page reads as zeros"
    );
    assert!(data[PAGE_SIZE..].iter().all(|b| *b == 7));
}

/// A cut is metadata: a file system may commit it before any fsync, while the data written
/// after it stays unsynced. The model offers both outcomes.
#[test]
fn an_unsynced_truncate_may_persist_without_the_writes_after_it() {
    let disk = disk();
    durable_file(&disk, "/d/journal", b"header;record-1;record-2;");
    let file = disk
        .open(Path::new("/d/journal"), OpenMode::ReadWrite)
        .unwrap();
    file.set_len(7).unwrap();
    file.write_at(7, b"new;").unwrap();
    assert!(disk.state().has_unsynced_resizes());

    let kept = after_crash(&disk, DROP_ALL);
    assert_eq!(
        kept.read(Path::new("/d/journal")).unwrap(),
        b"header;record-1;record-2;"
    );
    let cut = CrashChoice {
        resizes_persist: true,
        ..DROP_ALL
    };
    let image = after_crash(&disk, cut.clone());
    assert_eq!(image.read(Path::new("/d/journal")).unwrap(), b"header;");
    let image = after_crash(
        &disk,
        CrashChoice {
            last_write: WriteFate::Prefix(4),
            ..cut
        },
    );
    assert_eq!(image.read(Path::new("/d/journal")).unwrap(), b"header;new;");

    // Opening with truncation is a cut to nothing; a sync makes it durable either way.
    let mut fresh = disk
        .open(Path::new("/d/journal"), OpenMode::Truncate)
        .unwrap();
    fresh.write_all(b"x").unwrap();
    let image = after_crash(
        &disk,
        CrashChoice {
            resizes_persist: true,
            ..DROP_ALL
        },
    );
    assert_eq!(image.read(Path::new("/d/journal")).unwrap(), b"");
    fresh.sync_data().unwrap();
    assert!(!disk.state().has_unsynced_resizes());
    assert_eq!(
        after_crash(&disk, DROP_ALL)
            .read(Path::new("/d/journal"))
            .unwrap(),
        b"x"
    );
}

/// A file grown by `set_len` and not synced reads zeros past its old end when the growth
/// persists.
#[test]
fn an_unsynced_growth_may_persist_as_zeros() {
    let disk = disk();
    durable_file(&disk, "/d/log", b"abc");
    let file = disk.open(Path::new("/d/log"), OpenMode::ReadWrite).unwrap();
    file.set_len(6).unwrap();
    let image = after_crash(
        &disk,
        CrashChoice {
            resizes_persist: true,
            ..DROP_ALL
        },
    );
    assert_eq!(image.read(Path::new("/d/log")).unwrap(), b"abc\0\0\0");
    assert_eq!(
        after_crash(&disk, DROP_ALL)
            .read(Path::new("/d/log"))
            .unwrap(),
        b"abc"
    );
}
