//! Jobs the job store leaves out of its listing (moved aside, or left in place) are reported
//! by the scheduler once each, not silently skipped forever, and listed by `list_readable`.

mod common;

use std::sync::Arc;

use cairn_checkpoint::{JobStore, LeftOutPlace, MemoryJobStore};
use cairn_checkpoint_file::FileJobStore;
use cairn_scheduler::SchedulerConfig;
use common::{Rig, every_minute, id};

#[tokio::test]
async fn a_tick_reports_each_left_out_job_once_and_runs_the_others() {
    let store = MemoryJobStore::new();
    let rig = Rig::over(Arc::new(store.clone()), SchedulerConfig::default());
    for name in ["broken", "healthy", "stuck"] {
        rig.scheduler.jobs().add(every_minute(name)).await.unwrap();
    }
    assert!(store.damage_job(&id("broken")));
    assert!(store.damage_job_in_place(&id("stuck")));

    let first = rig.tick_when_due(&id("healthy")).await;
    let ran: Vec<&str> = first.runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(ran, ["healthy"], "{first:?}");
    let reported: Vec<(&str, bool)> = first
        .left_out
        .iter()
        .map(|entry| {
            let quarantined = matches!(entry.place, LeftOutPlace::Quarantined { .. });
            (entry.name.as_str(), quarantined)
        })
        .collect();
    assert_eq!(reported, [("broken", true), ("stuck", false)], "{first:?}");

    // The next ticks say nothing new: `broken` is gone, `stuck` is still there (and still
    // listed by `list_readable`, which reports every entry left out right now).
    for _ in 0..2 {
        let later = rig.tick_when_due(&id("healthy")).await;
        assert_eq!(later.runs.len(), 1, "{later:?}");
        assert!(later.left_out.is_empty(), "reported again: {later:?}");
    }
    let listed = rig.scheduler.jobs().list_readable().await.unwrap();
    let names: Vec<&str> = listed.left_out.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["stuck"]);
    assert_eq!(listed.jobs.len(), 1);
}

#[tokio::test]
async fn a_damaged_job_file_is_reported_by_the_tick_that_moves_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let file = FileJobStore::open(dir.path()).unwrap();
    let rig = Rig::over(Arc::new(file.clone()), SchedulerConfig::default());
    for name in ["damaged", "healthy"] {
        rig.scheduler.jobs().add(every_minute(name)).await.unwrap();
    }
    let path = file.job_path(&id("damaged"));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"crc32c\": ", "\"crc32c\": 1", 1)).unwrap();

    let report = rig.tick_when_due(&id("healthy")).await;
    assert_eq!(report.left_out.len(), 1, "{report:?}");
    let entry = &report.left_out[0];
    assert_eq!(entry.id, Some(id("damaged")));
    let LeftOutPlace::Quarantined { location } = &entry.place else {
        panic!("expected a quarantined entry: {entry:?}");
    };
    assert!(std::path::Path::new(location).is_file(), "{location}");
    assert!(!path.exists());
    let again = rig.tick_when_due(&id("healthy")).await;
    assert!(again.left_out.is_empty(), "{again:?}");
    assert!(file.listing().await.unwrap().left_out.is_empty());
}
